-- 001_schema.sql — ssmd's schema: series, observations, model state, forecasts, runs.
-- Applied by `ssmd migrate` in one transaction and recorded in ssm.schema_migrations.
-- Times are timestamptz; tables that refer to a series carry series_id.

CREATE SCHEMA IF NOT EXISTS ssm;

-- One row per configured series. The scheduler's state lives here: watermark (time of the
-- last observation seen), next run / refit, and the lease that lets several daemons share
-- the work (FOR UPDATE SKIP LOCKED on this table).
CREATE TABLE ssm.series (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.-]+$'),
    source        jsonb NOT NULL DEFAULT '{"builtin": true}',
    frequency     text NOT NULL,
    watermark     timestamptz,
    next_run      timestamptz NOT NULL DEFAULT now(),
    next_refit    timestamptz NOT NULL DEFAULT now(),
    lease_owner   text,
    lease_expires timestamptz,
    status        text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'ok', 'error')),
    last_error    text,
    last_run      timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The built-in store for users who push data to ssmd. A NULL value is a missing
-- observation; a corrected value replaces the old one (same key).
CREATE TABLE ssm.observations (
    series_id   bigint NOT NULL REFERENCES ssm.series (id) ON DELETE CASCADE,
    ts          timestamptz NOT NULL,
    value       double precision CHECK (value IS NULL OR value NOT IN ('NaN', 'Infinity', '-Infinity')),
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (series_id, ts)
);

-- Per series and model: parameters (readable jsonb) and the serialized state / checkpoint
-- (bytea) at the last observation, so a cycle only filters what arrived since.
CREATE TABLE ssm.model_state (
    series_id   bigint NOT NULL REFERENCES ssm.series (id) ON DELETE CASCADE,
    model       text NOT NULL,
    params      jsonb NOT NULL DEFAULT '{}',
    state       bytea NOT NULL,
    last_ts     timestamptz NOT NULL,
    nobs        integer NOT NULL,
    loglik      double precision,
    aicc        double precision,
    val_loss    double precision,
    fitted_at   timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (series_id, model)
);

-- Long, not wide: one row per series, model, forecast origin (the last observation the
-- forecast saw) and step. The natural key makes re-running a cycle idempotent.
CREATE TABLE ssm.forecasts (
    series_id       bigint NOT NULL REFERENCES ssm.series (id) ON DELETE CASCADE,
    model           text NOT NULL,
    origin          timestamptz NOT NULL,
    step            integer NOT NULL CHECK (step >= 1),
    target_ts       timestamptz NOT NULL,
    mean            double precision NOT NULL,
    sd              double precision,
    quantile_levels double precision[] NOT NULL,
    quantile_values double precision[] NOT NULL,
    issued_at       timestamptz NOT NULL DEFAULT now(),
    run_id          bigint,
    PRIMARY KEY (series_id, model, origin, step)
);
CREATE INDEX forecasts_target_idx ON ssm.forecasts (series_id, target_ts);

-- One row per cycle per series.
CREATE TABLE ssm.runs (
    id          bigserial PRIMARY KEY,
    series_id   bigint NOT NULL REFERENCES ssm.series (id) ON DELETE CASCADE,
    instance    text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    duration_ms double precision NOT NULL,
    new_points  integer NOT NULL DEFAULT 0,
    refit       boolean NOT NULL DEFAULT false,
    outcome     text NOT NULL CHECK (outcome IN ('ok', 'error')),
    error       text,
    models      text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_series_idx ON ssm.runs (series_id, started_at DESC);

-- The newest forecast of every series and model, one row per step, quantiles unnested
-- into columns people can read: SELECT * FROM ssm.latest_forecasts WHERE series = 'nile'.
CREATE VIEW ssm.latest_forecasts AS
SELECT s.name AS series, f.model, f.origin, f.step, f.target_ts, f.mean, f.sd,
       f.quantile_levels, f.quantile_values, f.issued_at
FROM ssm.forecasts f
JOIN ssm.series s ON s.id = f.series_id
JOIN (SELECT series_id, model, max(origin) AS origin
      FROM ssm.forecasts GROUP BY series_id, model) latest
  USING (series_id, model, origin);
