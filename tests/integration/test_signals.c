/*
 * tests/integration/test_signals.c — the daemon under a stand-in for systemd: the test
 * binds the Unix datagram socket named by NOTIFY_SOCKET and sets WATCHDOG_USEC, as
 * systemd does for a Type=notify unit with WatchdogSec=.
 *
 *  - READY=1 arrives once the schedule is loaded, WATCHDOG=1 at half the interval, STATUS=
 *    lines say what it does; SIGHUP with a broken file logs the error and keeps the
 *    running configuration (cycles go on with it), SIGHUP with a good file applies it
 *    (a new horizon shows in the next forecasts); SIGTERM sends STOPPING=1, exits 0 and
 *    gives every lease back.
 *  - SIGTERM while a cycle is stuck in the database: after --stop-timeout the cycle is
 *    abandoned (its session terminated), nothing of it is visible, the leases are given
 *    back and the daemon still exits 0, well within systemd's stop timeout.
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

enum { NSERIES = 3 };

static void watermark_sql(char *sql, size_t len, int hour) {
    snprintf(sql, len,
             "SELECT count(*) FROM ssm.series WHERE watermark = '2026-01-01'::timestamptz + make_interval(hours => %d)",
             hour);
}

static void test_notify_reload_stop(void **state) {
    (void)state;
    char dsn[700], dir[256], cfg[300], logp[320], sock[320], env_sock[400], seen[16384] = "";
    it_tmpdir(dir, sizeof dir);
    snprintf(cfg, sizeof cfg, "%s/ssmd.yaml", dir);
    snprintf(logp, sizeof logp, "%s/ssmd.log", dir);
    snprintf(sock, sizeof sock, "%s/notify.sock", dir);
    snprintf(env_sock, sizeof env_sock, "NOTIFY_SOCKET=%s", sock);
    fu_fleet_config(cfg, NSERIES, "1s", "10s", 1, "naive");
    it_create_db("ssmd_it_signals", dsn, sizeof dsn);
    const char *m[] = {"--config", cfg, "--dsn", dsn, "migrate", NULL};
    assert_int_equal(it_run(m, NULL, NULL), 0);
    PGconn *c = it_connect(dsn);
    fu_fleet_series(c, NSERIES);
    fu_feed(c, 0, 24);

    int fd = fu_notify_socket(sock);
    const char *env[] = {env_sock, "WATCHDOG_USEC=1000000", NULL};
    const char *a[] = {"--config", cfg, "--dsn", dsn, "run", NULL};
    pid_t p = fu_spawn(a, logp, env);
    assert_true(fu_notify_wait(fd, "READY=1", 60, seen, sizeof seen));
    assert_true(fu_notify_wait(fd, "WATCHDOG=1", 5, seen, sizeof seen));
    assert_true(fu_notify_wait(fd, "STATUS=", 10, seen, sizeof seen));
    char sql[300];
    watermark_sql(sql, sizeof sql, 23);
    assert_int_equal(fu_wait_count(c, sql, NSERIES, 60), NSERIES);

    /* a broken file: logged, the running configuration kept and still working */
    it_write_file(cfg, "workers: 1\nseries:\n  - name: f0000\n    frequency: [not, a, frequency\n");
    kill(p, SIGHUP);
    double end = fu_now() + 20;
    while (!fu_log_has(logp, "configuration reload failed, keeping the running configuration") && fu_now() < end)
        fu_sleep(0.1);
    assert_true(fu_log_has(logp, "configuration reload failed, keeping the running configuration"));
    fu_feed(c, 24, 25);
    watermark_sql(sql, sizeof sql, 24);
    assert_int_equal(fu_wait_count(c, sql, NSERIES, 60), NSERIES);
    assert_int_equal(fu_wait(p, 0), -1); /* still running */
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.forecasts f JOIN ssm.series s ON s.id = f.series_id "
                                      "WHERE f.origin = s.watermark"), NSERIES * 6);

    /* a good file: applied (horizon 6 -> 3 in the next cycles) */
    fu_fleet_config(cfg, NSERIES, "1s", "10s", 1, "naive");
    char *text = fu_slurp(cfg);
    char *h = strstr(text, "horizon: 6");
    assert_non_null(h);
    h[9] = '3';
    it_write_file(cfg, text);
    free(text);
    kill(p, SIGHUP);
    end = fu_now() + 20;
    while (!fu_log_has(logp, "configuration reloaded") && fu_now() < end) fu_sleep(0.1);
    assert_true(fu_log_has(logp, "configuration reloaded"));
    fu_feed(c, 25, 26);
    watermark_sql(sql, sizeof sql, 25);
    assert_int_equal(fu_wait_count(c, sql, NSERIES, 60), NSERIES);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.forecasts f JOIN ssm.series s ON s.id = f.series_id "
                                      "WHERE f.origin = s.watermark"), NSERIES * 3);

    /* SIGTERM: STOPPING=1, exit 0, no lease left */
    double t0 = fu_now();
    kill(p, SIGTERM);
    assert_true(fu_notify_wait(fd, "STOPPING=1", 30, seen, sizeof seen));
    assert_int_equal(fu_wait(p, 30), 0);
    assert_true(fu_now() - t0 < 30);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.series WHERE lease_owner IS NOT NULL"), 0);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.runs WHERE outcome <> 'ok'"), 0);
    fu_check_cycles(c, 0); /* the horizon changed on the way: row counts not compared */
    close(fd);
    PQfinish(c);
}

static void test_sigterm_abandons_stuck_cycle(void **state) {
    (void)state;
    char dsn[700], dir[256], cfg[300], logp[320];
    it_tmpdir(dir, sizeof dir);
    snprintf(cfg, sizeof cfg, "%s/ssmd.yaml", dir);
    snprintf(logp, sizeof logp, "%s/ssmd.log", dir);
    fu_fleet_config(cfg, NSERIES, "1h", "10s", 2, "naive");
    it_create_db("ssmd_it_sigterm", dsn, sizeof dsn);
    const char *m[] = {"--config", cfg, "--dsn", dsn, "migrate", NULL};
    assert_int_equal(it_run(m, NULL, NULL), 0);
    PGconn *c = it_connect(dsn);
    fu_fleet_series(c, NSERIES);
    fu_feed(c, 0, 24);
    /* every cycle sticks in the database for a minute, inside its transaction */
    it_exec(c, "CREATE FUNCTION ssm_test_stuck() RETURNS trigger LANGUAGE plpgsql AS "
               "$$ BEGIN PERFORM pg_sleep(60); RETURN NULL; END $$;"
               "CREATE TRIGGER stuck BEFORE INSERT ON ssm.forecasts FOR EACH STATEMENT "
               "EXECUTE FUNCTION ssm_test_stuck()");
    const char *a[] = {"--config", cfg, "--dsn", dsn, "run", "--stop-timeout", "1", NULL};
    pid_t p = fu_spawn(a, logp, NULL);
    assert_int_equal(fu_wait_count(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ssmd' "
                                      "AND wait_event = 'PgSleep'", 2, 60), 2);
    double t0 = fu_now();
    kill(p, SIGTERM);
    int st = fu_wait(p, 20);
    double took = fu_now() - t0;
    assert_int_equal(st, 0);
    assert_true(took < 15); /* 1 s to finish + 2 s to notice the abandon + termination */
    assert_true(fu_log_has(logp, "abandoning 2 cycles"));
    assert_int_equal(fu_wait_count(c, "SELECT -count(*) FROM pg_stat_activity WHERE application_name = 'ssmd'", 0, 30),
                     0);
    /* nothing of the abandoned cycles is visible; the leases are back */
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.runs"), 0);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.forecasts"), 0);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.series WHERE lease_owner IS NOT NULL"), 0);
    PQfinish(c);
}

/* LISTEN/NOTIFY: new observations in the built-in store wake the daemon, and a series
 * whose last forecast is older than `every` runs at once instead of at its next poll; one
 * forecast recently waits for its schedule. */
static void test_new_observations_wake(void **state) {
    (void)state;
    char dsn[700], dir[256], cfg[300], logp[320], sql[300];
    it_tmpdir(dir, sizeof dir);
    snprintf(cfg, sizeof cfg, "%s/ssmd.yaml", dir);
    snprintf(logp, sizeof logp, "%s/ssmd.log", dir);
    fu_fleet_config(cfg, 1, "1h", "10s", 1, "naive");
    it_create_db("ssmd_it_wake", dsn, sizeof dsn);
    const char *m[] = {"--config", cfg, "--dsn", dsn, "migrate", NULL};
    assert_int_equal(it_run(m, NULL, NULL), 0);
    PGconn *c = it_connect(dsn);
    fu_fleet_series(c, 1);
    fu_feed(c, 0, 24);
    const char *a[] = {"--config", cfg, "--dsn", dsn, "run", NULL};
    pid_t p = fu_spawn(a, logp, NULL);
    watermark_sql(sql, sizeof sql, 23);
    assert_int_equal(fu_wait_count(c, sql, 1, 60), 1);
    fu_sleep(0.5);
    /* the last forecast is two hours old (more than every), the next poll an hour away */
    it_exec(c, "UPDATE ssm.series SET last_run = now() - interval '2 hours', next_run = now() + interval '1 hour'");
    fu_feed(c, 24, 25);
    watermark_sql(sql, sizeof sql, 24);
    assert_int_equal(fu_wait_count(c, sql, 1, 10), 1);
    /* a fresh forecast: new data waits for the schedule */
    fu_sleep(0.5);
    it_exec(c, "UPDATE ssm.series SET last_run = now(), next_run = now() + interval '1 hour'");
    fu_feed(c, 25, 26);
    fu_sleep(3.0);
    assert_int_equal(it_query_long(c, sql), 1);
    assert_int_equal(fu_stop(p, 30), 0);
    fu_check_cycles(c, 6);
    PQfinish(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_reload_stop),
        cmocka_unit_test(test_sigterm_abandons_stuck_cycle),
        cmocka_unit_test(test_new_observations_wake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
