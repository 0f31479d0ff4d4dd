/*
 * tests/integration/test_fleet_retention.c — `retention`: a daemon forecasting every
 * second with `retention: 3s` keeps only the forecasts issued in the last three seconds
 * (plus those of the cycle that deletes), and deletes them in the cycle's own
 * transaction, while the runs and the newest forecast stay.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "test_fleet_util.h"

static void test_retention(void **state) {
    (void)state;
    char dsn[700], dir[256], cfg[300], logp[320];
    it_tmpdir(dir, sizeof dir);
    snprintf(cfg, sizeof cfg, "%s/ssmd.yaml", dir);
    snprintf(logp, sizeof logp, "%s/ssmd.log", dir);
    fu_fleet_config(cfg, 2, "1s", "10s", 1, "naive");
    char *text = fu_slurp(cfg);
    char *pos = strstr(text, "  horizon: 6\n");
    assert_non_null(pos);
    FILE *f = fopen(cfg, "w");
    fwrite(text, 1, (size_t)(pos - text), f);
    fputs("  retention: 3s\n", f);
    fputs(pos, f);
    fclose(f);
    free(text);
    it_create_db("ssmd_it_retention", dsn, sizeof dsn);
    const char *m[] = {"--config", cfg, "--dsn", dsn, "migrate", NULL};
    assert_int_equal(it_run(m, NULL, NULL), 0);
    PGconn *c = it_connect(dsn);
    fu_fleet_series(c, 2);
    fu_feed(c, 0, 24);
    const char *a[] = {"--config", cfg, "--dsn", dsn, "run", NULL};
    pid_t p = fu_spawn(a, logp, NULL);
    /* eight seconds of one new point per second: eight or so cycles per series */
    for (int h = 24; h < 32; h++) {
        fu_sleep(1.0);
        fu_feed(c, h, h + 1);
    }
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM ssm.series WHERE watermark = '2026-01-01'::timestamptz + "
                              "make_interval(hours => 31)");
    assert_int_equal(fu_wait_count(c, sql, 2, 60), 2);
    assert_int_equal(fu_stop(p, 30), 0);
    long runs = it_query_long(c, "SELECT count(*) FROM ssm.runs WHERE outcome = 'ok'");
    long origins = it_query_long(c, "SELECT count(*) FROM (SELECT DISTINCT series_id, origin FROM ssm.forecasts) o");
    assert_true(runs >= 8);
    assert_true(origins < runs);
    /* what is left was issued within `retention` of the last cycle of its series */
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.forecasts f WHERE f.issued_at < "
                                      "(SELECT max(issued_at) FROM ssm.forecasts g WHERE g.series_id = f.series_id) "
                                      "- interval '3 seconds'"), 0);
    /* the newest forecast of each series is complete */
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.latest_forecasts"), 2 * 6);
    PQfinish(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_retention)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
