/*
 * tests/models/db/test_backtest_db.c — `ssmd backtest --series` against a real PostgreSQL
 * (the integration fixture's server): series read from ssm.observations through the
 * configuration, a glob selecting them, and the run recorded in ssm.backtests: one row
 * per series and model with its series_id, plus mean and median rows per model whose
 * figures agree with the per-series rows and with the JSON printed on stdout.
 */
#include <libpq-fe.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static void test_backtest_from_database(void **state) {
    (void)state;
    char dir[256], cfg[512], dsn[1024], text[2048];
    it_tmpdir(dir, sizeof dir);
    it_create_db("ssmd_models_backtest", dsn, sizeof dsn);
    snprintf(cfg, sizeof cfg, "%s/ssmd.yaml", dir);
    snprintf(text, sizeof text,
             "database:\n  dsn: \"%s\"\n"
             "series:\n"
             "  - name: air\n    frequency: 1mo\n    source: builtin\n    horizon: 12\n    models: [naive]\n"
             "  - name: gas\n    frequency: 1q\n    source: builtin\n"
             "  - name: nile\n    frequency: 1y\n    source: builtin\n",
             dsn);
    it_write_file(cfg, text);
    const char *mig[] = {"--config", cfg, "migrate", NULL};
    assert_int_equal(it_run(mig, NULL, NULL), 0);
    const char *imp1[] = {"--config", cfg, "import", "--series", "air", "--csv", SSMD_TEST_DATA "/AirPassengers.csv", NULL};
    const char *imp2[] = {"--config", cfg, "import", "--series", "gas", "--csv", SSMD_TEST_DATA "/UKgas.csv", NULL};
    const char *imp3[] = {"--config", cfg, "import", "--series", "nile", "--csv", SSMD_TEST_DATA "/Nile.csv", NULL};
    assert_int_equal(it_run(imp1, NULL, NULL), 0);
    assert_int_equal(it_run(imp2, NULL, NULL), 0);
    assert_int_equal(it_run(imp3, NULL, NULL), 0);

    /* "[ag]*" picks air and gas, not nile; horizon 12 from air's configuration */
    const char *bt[] = {"--config", cfg, "backtest", "--series", "[ag]*", "--origins", "3", "--model",
                        "auto(naive,snaive)", "--format", "json", NULL};
    char *out = NULL, *err = NULL;
    int rc = it_run(bt, &out, &err);
    if (rc != 0) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"horizon\":12"));
    assert_null(strstr(out, "\"series\":\"nile\""));

    PGconn *c = it_connect(dsn);
    /* 2 series x 4 models (auto + 3 baselines) + 4 models x (mean, median) */
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.backtests"), 2 * 4 + 4 * 2);
    assert_int_equal(it_query_long(c, "SELECT count(DISTINCT run_id) FROM ssm.backtests"), 1);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.backtests b JOIN ssm.series s ON s.id = b.series_id"
                                      " AND s.name = b.series_name WHERE scope = 'series'"),
                     8);
    /* the mean row is the mean of the series rows, per model */
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.backtests m WHERE scope = 'mean' AND abs(m.mase -"
                                      " (SELECT avg(s.mase) FROM ssm.backtests s WHERE s.scope = 'series'"
                                      " AND s.model = m.model)) < 1e-9"),
                     4);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.backtests WHERE horizon = 12 AND origins = 3 AND"
                                      " refit = 'every' AND quantiles = '{0.025,0.1,0.5,0.9,0.975}'"
                                      " AND jsonb_array_length(by_step) = 12 AND scope <> 'median'"),
                     12);
    /* the stored figure for air / snaive is the one printed */
    char *v = it_query_text(c, "SELECT mase FROM ssm.backtests WHERE series_name = 'air' AND model = 'snaive'");
    const char *obj = strstr(out, "{\"series\":\"air\",\"model\":\"snaive\"");
    assert_non_null(obj);
    const char *m = strstr(obj, "\"mase\":");
    assert_non_null(m);
    double printed = strtod(m + 7, NULL), stored = strtod(v, NULL);
    assert_true(fabs(printed - stored) <= 1e-9 * fabs(stored));
    free(v);
    /* auto's choice is kept */
    v = it_query_text(c, "SELECT chosen FROM ssm.backtests WHERE series_name = 'gas' AND model = 'auto(naive,snaive)'");
    assert_true(strcmp(v, "naive") == 0 || strcmp(v, "snaive") == 0);
    free(v);

    /* --no-store leaves the table alone; a pattern that matches nothing fails */
    const char *ns[] = {"--config", cfg, "backtest", "--series", "nile", "--origins", "2", "--no-store", NULL};
    assert_int_equal(it_run(ns, NULL, NULL), 0);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.backtests"), 16);
    const char *none[] = {"--config", cfg, "backtest", "--series", "zz*", NULL};
    assert_int_equal(it_run(none, NULL, NULL), 1);
    PQfinish(c);
    free(out);
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backtest_from_database),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
