-- 090_backtests.sql — results of `ssmd backtest` runs over series from the database.
-- One row per series and model (scope 'series') plus, per model, the mean and the median
-- across the run's series (scope 'mean' / 'median', series_id NULL). Rows of one run share
-- run_id, so "how did the models compare last time" is one SELECT:
--   SELECT model, mase, rank FROM ssm.backtests
--    WHERE scope = 'mean' AND run_id = (SELECT max(run_id) FROM ssm.backtests)
--    ORDER BY rank;
-- Metrics are defined in models/metrics.h (Hyndman & Koehler 2006, M4); coverage_XX and
-- width_XX are the empirical coverage and mean width of the central XX% interval.

CREATE SEQUENCE ssm.backtest_run_id;

CREATE TABLE ssm.backtests (
    id             bigserial PRIMARY KEY,
    run_id         bigint NOT NULL,
    run_at         timestamptz NOT NULL DEFAULT now(),
    scope          text NOT NULL CHECK (scope IN ('series', 'mean', 'median')),
    series_id      bigint REFERENCES ssm.series (id) ON DELETE CASCADE,
    series_name    text,               -- kept for reading without a join; NULL across series
    model          text NOT NULL,      -- the spec as given, e.g. 'sarima(0,1,1)(0,1,1)[12]'
    chosen         text,               -- what `auto` picked at the last origin
    horizon        integer NOT NULL CHECK (horizon >= 1),
    origins        integer NOT NULL CHECK (origins >= 1),
    step           integer NOT NULL CHECK (step >= 1),
    train_window   integer,            -- sliding window length; NULL: expanding
    refit          text NOT NULL CHECK (refit IN ('every', 'once')),
    season         integer,
    quantiles      double precision[] NOT NULL,
    n_series       integer NOT NULL DEFAULT 1,   -- series averaged (scope mean / median)
    n_points       bigint NOT NULL DEFAULT 0,    -- forecast points scored
    failed_origins integer NOT NULL DEFAULT 0,
    mae            double precision,
    rmse           double precision,
    mape           double precision,
    smape          double precision,
    mase           double precision,
    pinball        double precision,
    coverage_80    double precision,
    width_80       double precision,
    coverage_95    double precision,
    width_95       double precision,
    rank           double precision,   -- mean rank by MASE across series (1 = best)
    by_step        jsonb,              -- [{"step":1,"mae":..,"mase":..,...}, ...]
    CHECK ((scope = 'series') = (series_name IS NOT NULL))
);

CREATE INDEX backtests_run_idx ON ssm.backtests (run_id);
CREATE INDEX backtests_series_idx ON ssm.backtests (series_id, run_at);
