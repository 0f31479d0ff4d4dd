-- 002_scheduler.sql — what the long-running daemon needs beyond the base schema: an index
-- for finding due series, the origin of each run (so a duplicated cycle is visible), late
-- and corrected observations flagged on their series, a NOTIFY when observations arrive,
-- the forecast_accuracy view, and two least-privilege roles.

-- ---- scheduling -----------------------------------------------------------------------

-- The scheduler claims due series in next_run order (FOR UPDATE SKIP LOCKED).
CREATE INDEX series_next_run_idx ON ssm.series (next_run);

-- Earliest observation at or before the watermark that was inserted, corrected or deleted
-- after the models saw it. Set by the triggers below, read and cleared by the cycle, which
-- then refilters the series from scratch instead of filtering only the new points.
ALTER TABLE ssm.series ADD COLUMN dirty_from timestamptz;

-- The origin (last observation) a run forecast from; NULL for failed runs.
ALTER TABLE ssm.runs ADD COLUMN origin timestamptz;

-- ---- late data and wake-ups (built-in store) ------------------------------------------

-- Statement-level triggers with transition tables, so a bulk load costs one pass. Each one
-- locks the affected series rows first: a cycle holds its series row FOR UPDATE, so a load
-- either commits before the cycle reads (and is read by it) or waits for the cycle and then
-- compares against the watermark that cycle wrote. Nothing slips between the two.
CREATE FUNCTION ssm.observations_mark(changed_series bigint[], changed_min timestamptz[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM ssm.series WHERE id = ANY (changed_series) ORDER BY id FOR NO KEY UPDATE;
    UPDATE ssm.series s
       SET dirty_from = least(s.dirty_from, c.min_ts)
      FROM unnest(changed_series, changed_min) AS c(series_id, min_ts)
     WHERE s.id = c.series_id AND s.watermark IS NOT NULL AND c.min_ts <= s.watermark;
END $$;

CREATE FUNCTION ssm.observations_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    mins timestamptz[];
BEGIN
    SELECT array_agg(series_id ORDER BY series_id), array_agg(min_ts ORDER BY series_id)
      INTO ids, mins
      FROM (SELECT series_id, min(ts) AS min_ts FROM new_rows GROUP BY series_id) g;
    IF ids IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM ssm.observations_mark(ids, mins);
    -- wake listening daemons: one notification per series (one for all on big loads)
    IF cardinality(ids) <= 100 THEN
        PERFORM pg_notify('ssm_observations', i::text) FROM unnest(ids) AS i;
    ELSE
        PERFORM pg_notify('ssm_observations', '');
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ssm.observations_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    mins timestamptz[];
BEGIN
    SELECT array_agg(series_id ORDER BY series_id), array_agg(min_ts ORDER BY series_id)
      INTO ids, mins
      FROM (SELECT series_id, min(ts) AS min_ts
              FROM (SELECT series_id, ts FROM old_rows UNION ALL SELECT series_id, ts FROM new_rows) u
             GROUP BY series_id) g;
    IF ids IS NOT NULL THEN
        PERFORM ssm.observations_mark(ids, mins);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION ssm.observations_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    mins timestamptz[];
BEGIN
    SELECT array_agg(series_id ORDER BY series_id), array_agg(min_ts ORDER BY series_id)
      INTO ids, mins
      FROM (SELECT series_id, min(ts) AS min_ts FROM old_rows GROUP BY series_id) g;
    IF ids IS NOT NULL THEN
        PERFORM ssm.observations_mark(ids, mins);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER observations_insert AFTER INSERT ON ssm.observations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ssm.observations_after_insert();
CREATE TRIGGER observations_update AFTER UPDATE ON ssm.observations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ssm.observations_after_update();
CREATE TRIGGER observations_delete AFTER DELETE ON ssm.observations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ssm.observations_after_delete();

-- ---- forecast accuracy (built-in store) -------------------------------------------------

-- Every forecast whose target time has an actual in ssm.observations, summarised per
-- series, model and horizon step:
--   n            forecasts scored
--   mae, rmse    of actual - mean
--   bias         mean of actual - mean (positive: forecasts too low)
--   mase         mae divided by the mean absolute one-step change of the stored series
--                (the in-sample naive forecast's error, Hyndman & Koehler 2006); below 1
--                beats the random walk on average
--   interval     the nominal level of the widest central interval stored (0.9 for the
--                quantiles 0.05 and 0.95), coverage the share of actuals inside it
-- Example: SELECT * FROM ssm.forecast_accuracy WHERE series = 'nile' ORDER BY model, step;
-- Series read from a table of yours are not in ssm.observations: join ssm.forecasts on
-- target_ts with your time column (see daemon/README.md).
CREATE VIEW ssm.forecast_accuracy AS
WITH scale AS (
    SELECT series_id, avg(abs(d)) AS naive_mae
      FROM (SELECT series_id, value - lag(value) OVER (PARTITION BY series_id ORDER BY ts) AS d
              FROM ssm.observations) x
     WHERE d IS NOT NULL
     GROUP BY series_id
), scored AS (
    SELECT f.series_id, f.model, f.step, f.origin, o.value - f.mean AS err,
           f.quantile_levels[cardinality(f.quantile_levels)] - f.quantile_levels[1] AS nominal,
           o.value BETWEEN f.quantile_values[1] AND f.quantile_values[cardinality(f.quantile_values)] AS inside
      FROM ssm.forecasts f
      JOIN ssm.observations o ON o.series_id = f.series_id AND o.ts = f.target_ts
     WHERE o.value IS NOT NULL
)
SELECT s.name AS series, sc.model, sc.step,
       count(*) AS n,
       avg(abs(sc.err)) AS mae,
       sqrt(avg(sc.err * sc.err)) AS rmse,
       avg(sc.err) AS bias,
       avg(abs(sc.err)) / nullif(scale.naive_mae, 0) AS mase,
       round(max(sc.nominal)::numeric, 6)::float8 AS interval,
       avg(CASE WHEN sc.inside THEN 1.0 ELSE 0.0 END) AS coverage,
       min(sc.origin) AS first_origin,
       max(sc.origin) AS last_origin
  FROM scored sc
  JOIN ssm.series s ON s.id = sc.series_id
  LEFT JOIN scale ON scale.series_id = sc.series_id
 GROUP BY s.name, sc.model, sc.step, scale.naive_mae;

-- ---- roles ----------------------------------------------------------------------------

-- ssm_reader may only read forecasts (and the series names to join them with);
-- ssm_daemon is what the daemon needs. Both are NOLOGIN group roles: grant them to login
-- roles (GRANT ssm_daemon TO ssmd). Roles are cluster-wide, so they are created only when
-- missing, and only when the migrating role may create roles; the grants are per database.
DO $$
DECLARE
    may_create boolean;
BEGIN
    SELECT rolsuper OR rolcreaterole INTO may_create FROM pg_roles WHERE rolname = current_user;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ssm_reader') THEN
        IF may_create THEN
            CREATE ROLE ssm_reader NOLOGIN;
        ELSE
            RAISE NOTICE 'role ssm_reader not created: % may not create roles', current_user
                USING HINT = 'create it as a superuser: CREATE ROLE ssm_reader NOLOGIN, then run ssmd migrate again';
        END IF;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ssm_daemon') THEN
        IF may_create THEN
            CREATE ROLE ssm_daemon NOLOGIN;
        ELSE
            RAISE NOTICE 'role ssm_daemon not created: % may not create roles', current_user
                USING HINT = 'create it as a superuser: CREATE ROLE ssm_daemon NOLOGIN, then run ssmd migrate again';
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ssm_reader') THEN
        GRANT USAGE ON SCHEMA ssm TO ssm_reader;
        GRANT SELECT ON ssm.forecasts, ssm.series, ssm.latest_forecasts, ssm.forecast_accuracy TO ssm_reader;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ssm_daemon') THEN
        GRANT USAGE ON SCHEMA ssm TO ssm_daemon;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ssm TO ssm_daemon;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ssm TO ssm_daemon;
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ssm TO ssm_daemon;
        EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO ssm_daemon', current_database());
        -- tables later migrations create (by this same role) follow
        ALTER DEFAULT PRIVILEGES IN SCHEMA ssm GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ssm_daemon;
        ALTER DEFAULT PRIVILEGES IN SCHEMA ssm GRANT USAGE, SELECT ON SEQUENCES TO ssm_daemon;
    END IF;
END $$;
