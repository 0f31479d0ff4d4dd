/* tests/integration/harness.c — see harness.h. Failures abort the test via cmocka. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static void admin_dsn(char *dsn, size_t len, const char *db) {
    FILE *f = fopen(SSMD_PG_STATE, "r");
    if (!f) fail_msg("no PostgreSQL fixture state at %s (run through ctest)", SSMD_PG_STATE);
    char dir[512] = "";
    if (!fgets(dir, sizeof dir, f)) dir[0] = '\0';
    fclose(f);
    dir[strcspn(dir, "\n")] = '\0';
    snprintf(dsn, len, "host=%s port=5432 user=postgres dbname=%s", dir, db);
}

PGconn *it_connect(const char *dsn) {
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK) fail_msg("connect %s: %s", dsn, PQerrorMessage(c));
    return c;
}

void it_exec(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

void it_create_db(const char *name, char *dsn, size_t len) {
    char admin[600], sql[300];
    admin_dsn(admin, sizeof admin, "postgres");
    PGconn *c = it_connect(admin);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
    it_exec(c, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", name);
    it_exec(c, sql);
    PQfinish(c);
    admin_dsn(dsn, len, name);
}

long it_query_long(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

char *it_query_text(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    char *v = strdup(PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return v;
}

static char *slurp(FILE *f) {
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    return s;
}

int it_run(const char *const *args, char **out, char **err) {
    const char *bin = getenv("SSMD_BIN");
    if (!bin) fail_msg("SSMD_BIN is not set (run through ctest)");
    FILE *fo = tmpfile(), *fe = tmpfile();
    size_t n = 0;
    while (args[n]) n++;
    char **argv = calloc(n + 2, sizeof *argv);
    argv[0] = (char *)bin;
    for (size_t i = 0; i < n; i++) argv[i + 1] = (char *)args[i];
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fileno(fo), STDOUT_FILENO);
        dup2(fileno(fe), STDERR_FILENO);
        execv(bin, argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    free(argv);
    char *o = slurp(fo), *e = slurp(fe);
    fclose(fo);
    fclose(fe);
    if (out) *out = o;
    else free(o);
    if (err) *err = e;
    else free(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void it_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

void it_tmpdir(char *out, size_t len) {
    snprintf(out, len, "/tmp/ssmd-it-XXXXXX");
    if (!mkdtemp(out)) fail_msg("mkdtemp failed");
}
