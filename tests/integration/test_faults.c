/*
 * tests/integration/test_faults.c — faults injected on purpose while cycles are in flight.
 * A trigger on ssm.forecasts sleeps inside every cycle's transaction (after its run row is
 * inserted), so "mid-cycle" is a state the test can wait for and see in pg_stat_activity.
 *
 *  - kill -9 of an instance mid-cycle: nothing it had not committed is visible, its
 *    leases hold until they expire, and a second instance then completes its series
 *    without running any cycle twice;
 *  - PostgreSQL stopped (immediate shutdown, like a crash) mid-cycle and started again:
 *    nothing partial is visible, the daemon neither exits nor spins while the server is
 *    away, and it finishes every series by itself once the server is back. This test runs
 *    its own server (tests/integration/pg.sh), so other tests never see the outage.
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

enum { NSERIES = 24, HORIZON = 6 };

static const char *slow_sql =
    "CREATE FUNCTION ssm_test_slow() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN PERFORM pg_sleep(0.4); RETURN NULL; END $$;"
    "CREATE TRIGGER slow BEFORE INSERT ON ssm.forecasts FOR EACH STATEMENT EXECUTE FUNCTION ssm_test_slow()";

static const char *in_flight_sql =
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ssmd' AND wait_event = 'PgSleep'";

static void prepare(const char *dsn, const char *cfg) {
    const char *m[] = {"--config", cfg, "--dsn", dsn, "migrate", NULL};
    assert_int_equal(it_run(m, NULL, NULL), 0);
    PGconn *c = it_connect(dsn);
    fu_fleet_series(c, NSERIES);
    fu_feed(c, 0, 48);
    it_exec(c, slow_sql);
    PQfinish(c);
}

static void test_kill9_mid_cycle(void **state) {
    (void)state;
    char dsn[700], dir[256], cfg[300], log1[320], log2[320];
    it_tmpdir(dir, sizeof dir);
    snprintf(cfg, sizeof cfg, "%s/ssmd.yaml", dir);
    snprintf(log1, sizeof log1, "%s/a.log", dir);
    snprintf(log2, sizeof log2, "%s/b.log", dir);
    fu_fleet_config(cfg, NSERIES, "1h", "10s", 2, "naive");
    it_create_db("ssmd_it_kill9", dsn, sizeof dsn);
    prepare(dsn, cfg);
    PGconn *c = it_connect(dsn);

    const char *a[] = {"--config", cfg, "--dsn", dsn, "run", NULL};
    pid_t pa = fu_spawn(a, log1, NULL);
    /* let a few cycles commit, then catch it inside one */
    assert_true(fu_wait_count(c, "SELECT count(*) FROM ssm.runs", 4, 60) >= 4);
    assert_true(fu_wait_count(c, in_flight_sql, 1, 30) >= 1);
    kill(pa, SIGKILL);
    assert_int_equal(fu_wait(pa, 10), 128 + SIGKILL);
    /* once the dead sessions are gone (a cycle whose COMMIT the server had already
     * received still commits, whole), nothing half-written is visible */
    assert_int_equal(fu_wait_count(c, "SELECT -count(*) FROM pg_stat_activity WHERE application_name = 'ssmd'", 0, 30),
                     0);
    fu_check_cycles(c, HORIZON);
    long done_before = it_query_long(c, "SELECT count(*) FROM ssm.series WHERE watermark IS NOT NULL");
    assert_true(done_before < NSERIES);
    /* the killed instance's leases (queued series, and in-flight cycles that died) are
     * still there, unexpired */
    it_exec(c, "CREATE TEMP TABLE held AS SELECT id, lease_expires FROM ssm.series "
               "WHERE lease_owner IS NOT NULL AND lease_expires > now()");
    assert_true(it_query_long(c, "SELECT count(*) FROM held") >= 1);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM held h JOIN ssm.series s USING (id) "
                                      "WHERE s.watermark IS NOT NULL"), 0);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.runs WHERE outcome = 'ok'"), done_before);

    /* a second instance completes everything, waiting for the leases to expire */
    pid_t pb = fu_spawn(a, log2, NULL);
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM ssm.series WHERE watermark = '2026-01-01'::timestamptz + "
                              "make_interval(hours => 47)");
    assert_int_equal(fu_wait_count(c, sql, NSERIES, 90), NSERIES);
    assert_int_equal(fu_stop(pb, 30), 0);
    fu_check_cycles(c, HORIZON);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.runs WHERE outcome = 'ok'"), NSERIES);
    /* the series the dead instance held were not touched before its lease ran out */
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM held h JOIN ssm.runs r ON r.series_id = h.id "
                                      "WHERE r.started_at < h.lease_expires - interval '50 milliseconds'"), 0);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.series WHERE lease_owner IS NOT NULL"), 0);
    PQfinish(c);
}

/* ---- PostgreSQL restart ------------------------------------------------------------- */

static char pgdir[512], pgstate[320];

static void pg_ctl(const char *action) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1); "
             "as_pg() { if [ \"$(id -u)\" = 0 ]; then runuser -u postgres -- \"$@\"; else \"$@\"; fi; }; "
             "as_pg \"$bin/pg_ctl\" -D %s/data -l %s/server.log %s -w -t 60 "
             "-o \"-c listen_addresses='' -k %s -p 5432 -c fsync=off -c max_connections=200\" >/dev/null",
             pgdir, pgdir, action, pgdir);
    if (system(cmd) != 0) fail_msg("pg_ctl %s failed", action);
}

static long cpu_ticks(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char *s = fu_slurp(path);
    const char *p = strrchr(s, ')');
    long utime = 0, stime = 0;
    /* fields after the command: state(3) ... utime(14) stime(15) */
    if (p) sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime);
    free(s);
    return utime + stime;
}

static void test_postgres_restart_mid_cycle(void **state) {
    (void)state;
    char dir[256], cfg[300], log1[320], dsn[700], cmd[1200];
    it_tmpdir(dir, sizeof dir);
    snprintf(cfg, sizeof cfg, "%s/ssmd.yaml", dir);
    snprintf(log1, sizeof log1, "%s/ssmd.log", dir);
    snprintf(pgstate, sizeof pgstate, "%s/pg.state", dir);
    snprintf(cmd, sizeof cmd, "bash %s/../integration/pg.sh start %s >/dev/null", SSMD_TEST_DATA, pgstate);
    assert_int_equal(system(cmd), 0);
    char *d = fu_slurp(pgstate);
    d[strcspn(d, "\n")] = '\0';
    snprintf(pgdir, sizeof pgdir, "%s", d);
    free(d);
    PGconn *admin;
    snprintf(dsn, sizeof dsn, "host=%s port=5432 user=postgres dbname=postgres", pgdir);
    admin = it_connect(dsn);
    it_exec(admin, "CREATE DATABASE ssmd_it_restart");
    PQfinish(admin);
    snprintf(dsn, sizeof dsn, "host=%s port=5432 user=postgres dbname=ssmd_it_restart", pgdir);
    fu_fleet_config(cfg, NSERIES, "1h", "10s", 2, "naive");
    prepare(dsn, cfg);

    PGconn *c = it_connect(dsn);
    const char *a[] = {"--config", cfg, "--dsn", dsn, "run", NULL};
    pid_t p = fu_spawn(a, log1, NULL);
    assert_true(fu_wait_count(c, "SELECT count(*) FROM ssm.runs", 2, 60) >= 2);
    assert_true(fu_wait_count(c, in_flight_sql, 1, 30) >= 1);
    PQfinish(c);
    pg_ctl("-m immediate stop");
    /* the server is away: the daemon keeps running and does not spin */
    long t0 = cpu_ticks(p);
    fu_sleep(4.0);
    long used = cpu_ticks(p) - t0;
    assert_int_equal(fu_wait(p, 0), -1);
    assert_true(used < sysconf(_SC_CLK_TCK) / 2); /* under 0.5 s of CPU in 4 s */
    pg_ctl("start");

    c = it_connect(dsn);
    fu_check_cycles(c, HORIZON);
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM ssm.series WHERE watermark = '2026-01-01'::timestamptz + "
                              "make_interval(hours => 47)");
    assert_int_equal(fu_wait_count(c, sql, NSERIES, 120), NSERIES);
    assert_int_equal(fu_stop(p, 30), 0);
    fu_check_cycles(c, HORIZON);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.runs WHERE outcome = 'ok'"), NSERIES);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.series WHERE lease_owner IS NOT NULL"), 0);
    PQfinish(c);
    assert_true(fu_log_has(log1, "database unavailable"));
    assert_true(fu_log_has(log1, "database connection restored"));
    snprintf(cmd, sizeof cmd, "bash %s/../integration/pg.sh stop %s", SSMD_TEST_DATA, pgstate);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_mid_cycle),
        cmocka_unit_test(test_postgres_restart_mid_cycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
