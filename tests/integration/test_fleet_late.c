/*
 * tests/integration/test_fleet_late.c — the data path of the daemon's cycles end to end,
 * checked against the same models run in this process (models/model.h):
 *
 *  - incremental: a local level fitted on 80 years of the Nile, stored in
 *    ssm.model_state, loaded back by the next cycle and filtered over 20 new years gives
 *    the forecast of the in-process model fitted on the 80 years and updated over the 20
 *    (to 1e-9): the bytea round trip and the grid alignment lose nothing;
 *  - late data: a corrected value before the watermark marks the series (dirty_from) and
 *    the next cycle refits the whole corrected series: its forecast equals an in-process
 *    fit on the corrected data (to 1e-9), and the mark is cleared;
 *  - ssm.forecast_accuracy: MAE, MASE and coverage per step of the first forecast against
 *    the 20 actuals that arrived later, recomputed here;
 *  - roles: ssm_reader and ssm_daemon exist, cannot log in, and the reader can read
 *    forecasts but not model state;
 *  - neural models: checkpoint stored and updated between trainings, retrained on
 *    retrain_every while the Kalman model beside it is only updated.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csvio.h"
#include "harness.h"
#include "model.h"
#include "test_fleet_util.h"

enum { N1 = 80, H = 10 };
static const double levels[] = {0.05, 0.5, 0.95};

static char dsn[700], dir[256], cfgpath[300];
static ssmd_points nile;

static int setup(void **state) {
    (void)state;
    char err[512];
    if (ssmd_csv_read_points(SSMD_TEST_DATA "/Nile.csv", &nile, err, sizeof err) != 0 || nile.n != 100) return -1;
    it_tmpdir(dir, sizeof dir);
    snprintf(cfgpath, sizeof cfgpath, "%s/ssmd.yaml", dir);
    it_write_file(cfgpath, "database:\n  dsn: \"postgresql:///nowhere\"\nworkers: 1\n"
                           "series:\n  - name: nile\n    frequency: 1y\n    horizon: 10\n"
                           "    quantiles: [0.05, 0.5, 0.95]\n    models: [local_level]\n    source: builtin\n");
    it_create_db("ssmd_it_late", dsn, sizeof dsn);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ssmd_points_free(&nile);
    return 0;
}

/* In-process: local_level fitted on values[0..nfit), then updated over values[nfit..n). */
static void reference(const double *values, size_t nfit, size_t n, ssm_forecast *fc) {
    ssm_model_opts mo = {0};
    mo.threads = 1;
    ssm_error e = {0};
    ssm_model *m = ssm_model_create("local_level", &mo, &e);
    assert_non_null(m);
    ssm_freq f;
    assert_int_equal(ssm_freq_parse("1y", &f, &e), SSM_OK);
    ssm_series y = {.name = "nile", .freq = f, .start = nile.ts[0], .n = nfit, .values = (double *)values};
    assert_int_equal(ssm_model_fit(m, &y, &e), SSM_OK);
    if (n > nfit) assert_int_equal(ssm_model_update(m, values + nfit, n - nfit, &e), SSM_OK);
    assert_int_equal(ssm_forecast_init(fc, H, levels, 3, &e), SSM_OK);
    assert_int_equal(ssm_model_forecast(m, fc, &e), SSM_OK);
    ssm_model_free(m);
}

/* Compares the stored forecast of origin (Unix seconds) with fc, to 1e-9 relative. */
static void compare(PGconn *c, int64_t origin, const ssm_forecast *fc) {
    char sql[400];
    snprintf(sql, sizeof sql,
             "SELECT mean, sd, quantile_values[1], quantile_values[3] FROM ssm.forecasts "
             "WHERE origin = to_timestamp(%lld) ORDER BY step", (long long)origin);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), H);
    for (int h = 0; h < H; h++) {
        double mean = strtod(PQgetvalue(r, h, 0), NULL), sd = strtod(PQgetvalue(r, h, 1), NULL);
        double lo = strtod(PQgetvalue(r, h, 2), NULL), hi = strtod(PQgetvalue(r, h, 3), NULL);
        assert_true(fabs(mean - fc->mean[h]) <= 1e-9 * fabs(fc->mean[h]));
        assert_true(fabs(sd - fc->sd[h]) <= 1e-9 * fabs(fc->sd[h]));
        assert_true(fabs(lo - fc->q[h * 3]) <= 1e-9 * fabs(fc->q[h * 3]));
        assert_true(fabs(hi - fc->q[h * 3 + 2]) <= 1e-9 * fabs(fc->q[h * 3 + 2]));
    }
    PQclear(r);
}

static void run_once(const char *expect) {
    const char *a[] = {"--config", cfgpath, "--dsn", dsn, "run", "--once", NULL};
    char *err = NULL;
    int st = it_run(a, NULL, &err);
    if (st != 0 || !strstr(err, expect)) fprintf(stderr, "run --once (expecting \"%s\"):\n%s", expect, err);
    assert_int_equal(st, 0);
    assert_non_null(strstr(err, expect));
    free(err);
}

static void insert_points(PGconn *c, size_t from, size_t to, const double *values) {
    char sql[300];
    for (size_t i = from; i < to; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO ssm.observations (series_id, ts, value) SELECT id, to_timestamp(%lld), "
                                  "%.17g FROM ssm.series WHERE name = 'nile'", (long long)nile.ts[i], values[i]);
        it_exec(c, sql);
    }
}

static void test_incremental_and_late(void **state) {
    (void)state;
    const char *m[] = {"--config", cfgpath, "--dsn", dsn, "migrate", NULL};
    assert_int_equal(it_run(m, NULL, NULL), 0);
    PGconn *c = it_connect(dsn);
    it_exec(c, "INSERT INTO ssm.series (name, frequency) VALUES ('nile', '1y')");
    insert_points(c, 0, N1, nile.values);
    run_once("80 new points, fitted");

    /* 20 new years: filtered from the stored state */
    insert_points(c, N1, 100, nile.values);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.series WHERE dirty_from IS NOT NULL"), 0);
    run_once("20 new points, updated");
    ssm_forecast fc = {0};
    reference(nile.values, N1, 100, &fc);
    compare(c, nile.ts[99], &fc);
    ssm_forecast_free(&fc);

    /* the accuracy of the first forecast (origin 1950) against the 20 later actuals */
    ssm_forecast first = {0};
    reference(nile.values, N1, N1, &first);
    double scale = 0;
    for (size_t i = 1; i < 100; i++) scale += fabs(nile.values[i] - nile.values[i - 1]);
    scale /= 99;
    PGresult *r = PQexec(c, "SELECT step, n, mae, mase, interval, coverage FROM ssm.forecast_accuracy "
                            "WHERE series = 'nile' AND model = 'local_level' ORDER BY step");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), H);
    for (int h = 0; h < H; h++) {
        double err = fabs(nile.values[N1 + h] - first.mean[h]);
        int inside = nile.values[N1 + h] >= first.q[h * 3] && nile.values[N1 + h] <= first.q[h * 3 + 2];
        assert_int_equal(atoi(PQgetvalue(r, h, 0)), h + 1);
        assert_int_equal(atoi(PQgetvalue(r, h, 1)), 1);
        assert_true(fabs(strtod(PQgetvalue(r, h, 2), NULL) - err) <= 1e-9 * (1 + err));
        assert_true(fabs(strtod(PQgetvalue(r, h, 3), NULL) - err / scale) <= 1e-9 * (1 + err / scale));
        assert_true(fabs(strtod(PQgetvalue(r, h, 4), NULL) - 0.9) < 1e-12);
        assert_true(fabs(strtod(PQgetvalue(r, h, 5), NULL) - inside) < 1e-12);
    }
    PQclear(r);
    ssm_forecast_free(&first);

    /* a corrected value 30 years before the watermark: refit on the corrected series */
    double corrected[100];
    memcpy(corrected, nile.values, sizeof corrected);
    corrected[29] += 300;
    it_exec(c, "UPDATE ssm.observations SET value = value + 300 WHERE ts = '1900-01-01'");
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.series WHERE dirty_from = '1900-01-01'"), 1);
    run_once("0 new points, refitted after late data");
    reference(corrected, 100, 100, &fc);
    compare(c, nile.ts[99], &fc);
    ssm_forecast_free(&fc);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.series WHERE dirty_from IS NOT NULL"), 0);
    run_once("no new observations");
    /* three runs: fit (80 new), update (20 new), refit after late data at the same origin
     * (0 new: it re-forecasts 1970 from corrected data), and no run for the idle cycle */
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.runs WHERE outcome = 'ok'"), 3);
    char *seq = it_query_text(c, "SELECT string_agg(new_points::text || '/' || refit::text, ',' ORDER BY id) FROM ssm.runs");
    assert_string_equal(seq, "80/true,20/false,0/true");
    free(seq);
    PQfinish(c);
}

static void test_roles(void **state) {
    (void)state;
    PGconn *c = it_connect(dsn);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM pg_roles WHERE rolname IN ('ssm_reader', 'ssm_daemon') "
                                      "AND NOT rolcanlogin"), 2);
    it_exec(c, "SET ROLE ssm_reader");
    assert_true(it_query_long(c, "SELECT count(*) FROM ssm.latest_forecasts") > 0);
    assert_true(it_query_long(c, "SELECT count(*) FROM ssm.forecast_accuracy") > 0);
    PGresult *r = PQexec(c, "SELECT count(*) FROM ssm.model_state");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_non_null(strstr(PQresultErrorMessage(r), "permission denied"));
    PQclear(r);
    r = PQexec(c, "DELETE FROM ssm.forecasts");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    it_exec(c, "RESET ROLE");
    /* the daemon's role may do a cycle's work */
    it_exec(c, "SET ROLE ssm_daemon");
    it_exec(c, "BEGIN; SELECT id FROM ssm.series FOR UPDATE; UPDATE ssm.series SET lease_owner = NULL; "
               "SELECT count(*) FROM ssm.model_state; ROLLBACK");
    it_exec(c, "RESET ROLE");
    PQfinish(c);
}

/* A neural model beside a Kalman one: its checkpoint is stored in ssm.model_state and
 * updated with new points between trainings (forecast from the latest context); when
 * retrain_every has passed since its last training it is retrained while the Kalman model
 * is only updated (refit_every not due). */
static void test_neural_retrain(void **state) {
    (void)state;
    char ndsn[700], cfg[300];
    snprintf(cfg, sizeof cfg, "%s/neural.yaml", dir);
    it_write_file(cfg, "database:\n  dsn: \"postgresql:///nowhere\"\nworkers: 1\ndevice: cpu\n"
                       "defaults: {every: 1h, refit_every: 1d, retrain_every: 1h, horizon: 6, frequency: 1h,"
                       " quantiles: [0.1, 0.9]}\n"
                       "series:\n  - name: n1\n    source: builtin\n"
                       "    models: [\"s4d(context=24,d_model=8,layers=1,steps=20)\", local_level]\n");
    it_create_db("ssmd_it_neural", ndsn, sizeof ndsn);
    const char *m[] = {"--config", cfg, "--dsn", ndsn, "migrate", NULL};
    assert_int_equal(it_run(m, NULL, NULL), 0);
    PGconn *c = it_connect(ndsn);
    it_exec(c, "INSERT INTO ssm.series (name, frequency) VALUES ('n1', '1h')");
    const char *feed = "INSERT INTO ssm.observations SELECT 1, '2026-01-01'::timestamptz + make_interval(hours => i), "
                       "10 + sin(i / 3.0) FROM generate_series(%d, %d) i";
    char sql[300];
    snprintf(sql, sizeof sql, feed, 0, 199);
    it_exec(c, sql);
    const char *a[] = {"--config", cfg, "--dsn", ndsn, "run", "--once", NULL};
    char *err = NULL;
    assert_int_equal(it_run(a, NULL, &err), 0);
    assert_non_null(strstr(err, "200 new points, fitted, 2 models"));
    free(err);
    assert_true(it_query_long(c, "SELECT length(state) FROM ssm.model_state WHERE model LIKE 's4d%'") > 1000);
    /* new points: both updated */
    snprintf(sql, sizeof sql, feed, 200, 205);
    it_exec(c, sql);
    assert_int_equal(it_run(a, NULL, &err), 0);
    assert_non_null(strstr(err, "6 new points, updated, 2 models"));
    free(err);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.model_state WHERE fitted_at < updated_at "
                                      "AND last_ts = '2026-01-09 13:00+00'"), 2);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.forecasts WHERE origin = '2026-01-09 13:00+00'"), 12);
    /* the network's last training is two hours old: retrained; the local level updated */
    it_exec(c, "UPDATE ssm.model_state SET fitted_at = now() - interval '2 hours' WHERE model LIKE 's4d%'");
    snprintf(sql, sizeof sql, feed, 206, 209);
    it_exec(c, sql);
    assert_int_equal(it_run(a, NULL, &err), 0);
    assert_non_null(strstr(err, "4 new points, 1 fitted, 1 updated"));
    free(err);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.model_state WHERE model LIKE 's4d%' "
                                      "AND fitted_at = updated_at AND nobs = 210"), 1);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.model_state WHERE model = 'local_level' "
                                      "AND fitted_at < updated_at AND nobs = 210"), 1);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.forecasts WHERE origin = '2026-01-09 17:00+00'"), 12);
    PQfinish(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_incremental_and_late),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_neural_retrain),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
