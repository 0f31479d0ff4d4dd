/*
 * tests/integration/test_fleet_util.h — helpers the daemon tests (test_fleet*.c,
 * test_faults*.c, test_signals*.c) share on top of harness.h: starting `ssmd run` in the
 * background with its log in a file, waiting for it with a deadline, a socket that plays
 * systemd's NOTIFY_SOCKET, a fleet configuration of many cheap series and a feeder that
 * appends one hourly point to every series. Header-only (static functions), because the
 * integration CMakeLists builds each test_*.c with harness.c alone.
 */
#ifndef SSMD_IT_FLEET_UTIL_H
#define SSMD_IT_FLEET_UTIL_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* every helper is optional for a given test file */
#define FU_STATIC static __attribute__((unused))

FU_STATIC double fu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

FU_STATIC void fu_sleep(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Starts $SSMD_BIN with args, stdout and stderr appended to logpath; env is a
 * NULL-terminated list of "NAME=value" set in the child (may be NULL). */
FU_STATIC pid_t fu_spawn(const char *const *args, const char *logpath, const char *const *env) {
    const char *bin = getenv("SSMD_BIN");
    if (!bin) fail_msg("SSMD_BIN is not set (run through ctest)");
    size_t n = 0;
    while (args[n]) n++;
    char **argv = calloc(n + 2, sizeof *argv);
    argv[0] = (char *)bin;
    for (size_t i = 0; i < n; i++) argv[i + 1] = (char *)args[i];
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = fopen(logpath, "a");
        if (!f) _exit(126);
        dup2(fileno(f), STDOUT_FILENO);
        dup2(fileno(f), STDERR_FILENO);
        for (size_t i = 0; env && env[i]; i++) putenv((char *)env[i]);
        execv(bin, argv);
        _exit(127);
    }
    free(argv);
    if (pid < 0) fail_msg("fork failed");
    return pid;
}

/* Waits up to timeout seconds; returns the exit status (128 + signal when killed), or -1
 * when it is still running (it is then left running). */
FU_STATIC int fu_wait(pid_t pid, double timeout) {
    double end = fu_now() + timeout;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0) return -2;
        if (fu_now() > end) return -1;
        fu_sleep(0.05);
    }
}

/* SIGTERM, then the exit status within timeout (SIGKILL and -1 past it). */
FU_STATIC int fu_stop(pid_t pid, double timeout) {
    kill(pid, SIGTERM);
    int st = fu_wait(pid, timeout);
    if (st == -1) {
        kill(pid, SIGKILL);
        fu_wait(pid, 10);
    }
    return st;
}

FU_STATIC char *fu_slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

FU_STATIC int fu_log_has(const char *path, const char *needle) {
    char *s = fu_slurp(path);
    int found = strstr(s, needle) != NULL;
    free(s);
    return found;
}

/* A value of a printf-formatted query. */
FU_STATIC long fu_q(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
FU_STATIC long fu_q(PGconn *c, const char *fmt, ...) {
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return it_query_long(c, sql);
}

/* Polls a count query until it reaches want or timeout passes; returns the last value. */
FU_STATIC long fu_wait_count(PGconn *c, const char *sql, long want, double timeout) {
    double end = fu_now() + timeout;
    long v;
    while ((v = it_query_long(c, sql)) < want && fu_now() < end) fu_sleep(0.2);
    return v;
}

/* A configuration of nseries built-in hourly series f0000, f0001, ... */
FU_STATIC void fu_fleet_config(const char *path, int nseries, const char *every, const char *lease, int workers,
                            const char *model) {
    FILE *f = fopen(path, "w");
    if (!f) fail_msg("cannot write %s", path);
    fprintf(f, "database:\n  dsn: \"postgresql:///nowhere\"   # --dsn overrides\n  statement_timeout: 20s\n");
    fprintf(f, "workers: %d\nlease: %s\n", workers, lease);
    fprintf(f, "defaults:\n  frequency: 1h\n  every: %s\n  refit_every: 30d\n  horizon: 6\n"
               "  quantiles: [0.1, 0.5, 0.9]\n  models: [%s]\nseries:\n", every, model);
    for (int i = 0; i < nseries; i++) fprintf(f, "  - {name: f%04d, source: builtin}\n", i);
    fclose(f);
}

/* Registers the series of fu_fleet_config the way the daemon does (same name, source
 * and frequency), so observations can be loaded before a daemon starts. */
FU_STATIC void fu_fleet_series(PGconn *c, int nseries) {
    char sql[300];
    snprintf(sql, sizeof sql, "INSERT INTO ssm.series (name, frequency) SELECT format('f%%s', lpad(i::text, 4, '0')), "
                              "'1h' FROM generate_series(0, %d) i", nseries - 1);
    it_exec(c, sql);
}

/* Appends points [from, to) (hours after 2026-01-01) to every series in ssm.series. */
FU_STATIC void fu_feed(PGconn *c, int from, int to) {
    char sql[600];
    snprintf(sql, sizeof sql,
             "INSERT INTO ssm.observations (series_id, ts, value) "
             "SELECT s.id, '2026-01-01'::timestamptz + make_interval(hours => i), "
             "       100 + 10 * sin(i / 5.0 + s.id) + (i %% 7) "
             "FROM ssm.series s, generate_series(%d, %d) i",
             from, to - 1);
    it_exec(c, sql);
}

/* The cycle invariants every fleet test checks:
 *  - no (series, origin) was forecast by two successful runs (no duplicated cycle);
 *  - every observation was counted as new by exactly one run of its series (no point
 *    processed twice, none skipped);
 *  - every successful run has its forecasts and every series with a watermark its
 *    state (no half-written cycle): horizon rows per model, or at least one when
 *    horizon is 0. */
FU_STATIC void fu_check_cycles(PGconn *c, int horizon) {
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM (SELECT series_id, origin FROM ssm.runs WHERE outcome = 'ok' "
                                      "GROUP BY 1, 2 HAVING count(*) > 1) d"), 0);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.series s WHERE (SELECT coalesce(sum(new_points), 0) "
                                      "FROM ssm.runs r WHERE r.series_id = s.id AND r.outcome = 'ok') <> "
                                      "(SELECT count(*) FROM ssm.observations o WHERE o.series_id = s.id "
                                      " AND o.ts <= s.watermark)"), 0);
    char sql[600];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM ssm.runs r WHERE r.outcome = 'ok' AND (SELECT count(*) FROM ssm.forecasts f "
             "WHERE f.series_id = r.series_id AND f.origin = r.origin) %s %d * cardinality(r.models)",
             horizon > 0 ? "<>" : "<", horizon > 0 ? horizon : 1);
    assert_int_equal(it_query_long(c, sql), 0);
    assert_int_equal(it_query_long(c, "SELECT count(*) FROM ssm.series s WHERE watermark IS NOT NULL AND NOT EXISTS "
                                      "(SELECT 1 FROM ssm.model_state m WHERE m.series_id = s.id "
                                      "AND m.last_ts = s.watermark)"), 0);
}

/* A Unix datagram socket standing in for systemd's notification socket. */
FU_STATIC int fu_notify_socket(const char *path) {
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) fail_msg("cannot bind %s", path);
    return fd;
}

/* Reads notifications until one contains what (1) or timeout passes (0); everything read
 * is appended to seen (size len) when given. */
FU_STATIC int fu_notify_wait(int fd, const char *what, double timeout, char *seen, size_t len) {
    double end = fu_now() + timeout;
    while (fu_now() < end) {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(fd, &rd);
        struct timeval tv = {0, 100000};
        if (select(fd + 1, &rd, NULL, NULL, &tv) <= 0) continue;
        char buf[1100];
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n <= 0) continue;
        buf[n] = '\0';
        if (seen) {
            size_t used = strlen(seen);
            snprintf(seen + used, len - used, "%s\n", buf);
        }
        if (strstr(buf, what)) return 1;
    }
    return 0;
}

#endif
