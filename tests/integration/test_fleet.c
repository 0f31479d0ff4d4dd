/*
 * tests/integration/test_fleet.c — several daemons share one database: two and then four
 * `ssmd run` instances against 200 series with `every: 2s` while a feeder appends a new
 * hourly point to every series each second. Afterwards every series must have reached the
 * last point, no series cycle may have run twice (no two successful runs share a series
 * and origin; every observation was counted new by exactly one run), no cycle may be half
 * written, and every instance must have done part of the work.
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

enum { NSERIES = 200, HORIZON = 6 };

static void fleet(int ninstances, const char *dbname) {
    char dsn[700], dir[256], cfg[300];
    it_tmpdir(dir, sizeof dir);
    snprintf(cfg, sizeof cfg, "%s/ssmd.yaml", dir);
    fu_fleet_config(cfg, NSERIES, "2s", "10s", 2, "naive");
    it_create_db(dbname, dsn, sizeof dsn);
    const char *m[] = {"--config", cfg, "--dsn", dsn, "migrate", NULL};
    assert_int_equal(it_run(m, NULL, NULL), 0);

    /* 48 hours of history (the rows are those the daemons register), then one new hour
     * per second for 8 seconds, so several cycles of every series see new points */
    PGconn *c = it_connect(dsn);
    fu_fleet_series(c, NSERIES);
    fu_feed(c, 0, 48);
    pid_t pids[4];
    char logs[4][320];
    for (int i = 0; i < ninstances; i++) {
        snprintf(logs[i], sizeof logs[i], "%s/ssmd-%d.log", dir, i);
        const char *a[] = {"--config", cfg, "--dsn", dsn, "run", NULL};
        pids[i] = fu_spawn(a, logs[i], NULL);
    }
    int last = 48;
    for (int round = 0; round < 8; round++) {
        fu_sleep(1.0);
        fu_feed(c, last, last + 1);
        last++;
    }
    /* all series reach the last point */
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM ssm.series WHERE watermark = '2026-01-01'::timestamptz + make_interval(hours => %d)",
             last - 1);
    assert_int_equal(fu_wait_count(c, sql, NSERIES, 90), NSERIES);
    for (int i = 0; i < ninstances; i++) {
        int st = fu_stop(pids[i], 30);
        if (st != 0) {
            char *log = fu_slurp(logs[i]);
            fprintf(stderr, "instance %d exited %d; its log:\n%s\n", i, st, log);
            free(log);
        }
        assert_int_equal(st, 0);
        assert_false(fu_log_has(logs[i], "ERROR"));
    }
    fu_check_cycles(c, HORIZON);
    /* several cycles per series happened, and every instance took part */
    long runs = it_query_long(c, "SELECT count(*) FROM ssm.runs WHERE outcome = 'ok'");
    assert_true(runs >= 3 * NSERIES);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.runs WHERE outcome <> 'ok'"), 0);
    assert_int_equal(it_query_long(c, "SELECT count(DISTINCT instance) FROM ssm.runs"), ninstances);
    /* every lease was given back at shutdown */
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.series WHERE lease_owner IS NOT NULL"), 0);
    fprintf(stderr, "fleet of %d: %ld successful runs over %d series; per instance:", ninstances, runs, NSERIES);
    PGresult *r = PQexec(c, "SELECT count(*) FROM ssm.runs GROUP BY instance ORDER BY 1");
    for (int i = 0; i < PQntuples(r); i++) fprintf(stderr, " %s", PQgetvalue(r, i, 0));
    fprintf(stderr, "\n");
    PQclear(r);
    PQfinish(c);
}

static void test_two_instances(void **state) {
    (void)state;
    fleet(2, "ssmd_it_fleet2");
}

static void test_four_instances(void **state) {
    (void)state;
    fleet(4, "ssmd_it_fleet4");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_instances),
        cmocka_unit_test(test_four_instances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
