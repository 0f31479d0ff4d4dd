/*
 * daemon/pgserver.c — see pgserver.h. The server listens on a Unix socket inside the
 * scratch folder only, so several demos or test runs never collide on a TCP port and
 * nothing is reachable from outside the machine.
 */
#define _GNU_SOURCE /* mkdtemp, nftw flags */
#include "pgserver.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <glob.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The newest /usr/lib/postgresql/N/bin, or the folder of initdb on PATH. */
static int find_bindir(char *out, size_t len) {
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
        /* versions sort as strings within a major-digit count; pick the longest, then last */
        const char *best = g.gl_pathv[0];
        for (size_t i = 1; i < g.gl_pathc; i++)
            if (strlen(g.gl_pathv[i]) > strlen(best) ||
                (strlen(g.gl_pathv[i]) == strlen(best) && strcmp(g.gl_pathv[i], best) > 0))
                best = g.gl_pathv[i];
        snprintf(out, len, "%.*s", (int)(strlen(best) - strlen("/initdb")), best);
        globfree(&g);
        return 0;
    }
    globfree(&g);
    const char *path = getenv("PATH");
    if (!path) return -1;
    char *copy = strdup(path), *save = NULL;
    int found = -1;
    for (char *d = strtok_r(copy, ":", &save); d && found; d = strtok_r(NULL, ":", &save)) {
        char p[1024];
        snprintf(p, sizeof p, "%s/initdb", d);
        if (access(p, X_OK) == 0) {
            snprintf(out, len, "%s", d);
            found = 0;
        }
    }
    free(copy);
    return found;
}

/* Runs argv (as s->runas when set) with output appended to log; returns exit status. */
static int run_tool(const ssmd_pgserver *s, char *const argv[], const char *log) {
    fflush(stdout); /* the child's freopen would flush our buffered output a second time */
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (log) {
            FILE *f = freopen(log, "a", stdout);
            if (f) dup2(fileno(stdout), STDERR_FILENO);
        }
        if (s->runas[0]) {
            /* runuser -u USER -- TOOL ARGS... */
            size_t n = 0;
            while (argv[n]) n++;
            char **v = calloc(n + 5, sizeof *v);
            if (!v) _exit(127);
            v[0] = "runuser";
            v[1] = "-u";
            v[2] = (char *)s->runas;
            v[3] = "--";
            for (size_t i = 0; i < n; i++) v[4 + i] = argv[i];
            execvp("runuser", v);
            _exit(127);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void log_tail(const char *path, char *out, size_t len) {
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long start = size > (long)len - 1 ? size - (long)len + 1 : 0;
    fseek(f, start, SEEK_SET);
    size_t n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    fclose(f);
}

int ssmd_pgserver_start(ssmd_pgserver *s, const char *dir, const char *dbname, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    if (find_bindir(s->bindir, sizeof s->bindir) != 0) {
        snprintf(err, errlen, "could not find PostgreSQL's initdb (HINT: apt-get install postgresql)");
        return -1;
    }
    if (dir) {
        snprintf(s->dir, sizeof s->dir, "%s", dir);
        if (mkdir(s->dir, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "could not create %s: %s", s->dir, strerror(errno));
            return -1;
        }
    } else {
        snprintf(s->dir, sizeof s->dir, "/tmp/ssmd-demo-XXXXXX");
        if (!mkdtemp(s->dir)) {
            snprintf(err, errlen, "could not create a scratch folder: %s", strerror(errno));
            return -1;
        }
        s->owns_dir = 1;
    }
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw) {
            snprintf(err, errlen, "running as root, but there is no postgres user to run the server as");
            return -1;
        }
        snprintf(s->runas, sizeof s->runas, "postgres");
        if (chown(s->dir, pw->pw_uid, pw->pw_gid) != 0) {
            snprintf(err, errlen, "could not hand %s to the postgres user: %s", s->dir, strerror(errno));
            return -1;
        }
    }
    char data[600], log[600], initdb[600], pgctl[600], opts[1200];
    snprintf(data, sizeof data, "%s/data", s->dir);
    snprintf(log, sizeof log, "%s/server.log", s->dir);
    snprintf(initdb, sizeof initdb, "%s/initdb", s->bindir);
    snprintf(pgctl, sizeof pgctl, "%s/pg_ctl", s->bindir);
    char initlog[600];
    snprintf(initlog, sizeof initlog, "%s/initdb.log", s->dir);
    char *init_argv[] = {initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", NULL};
    if (run_tool(s, init_argv, initlog) != 0) {
        snprintf(err, errlen, "initdb failed in %s", data);
        return -1;
    }
    snprintf(opts, sizeof opts, "-c listen_addresses='' -k %s -p 5432 -c fsync=off -c max_connections=120", s->dir);
    char *start_argv[] = {pgctl, "-D", data, "-l", log, "-o", opts, "-w", "-t", "60", "start", NULL};
    if (run_tool(s, start_argv, initlog) != 0) {
        char tail[600];
        log_tail(log, tail, sizeof tail);
        snprintf(err, errlen, "the PostgreSQL server did not start; %s says: %s", log, tail);
        return -1;
    }
    char admin[700];
    snprintf(admin, sizeof admin, "host=%s port=5432 user=postgres dbname=postgres", s->dir);
    PGconn *c = PQconnectdb(admin);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "could not connect to the new server: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    char *ident = PQescapeIdentifier(c, dbname, strlen(dbname));
    char sql[300];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", ident ? ident : "ssmd");
    PQfreemem(ident);
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) snprintf(err, errlen, "could not create database %s: %s", dbname, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    if (!ok) return -1;
    snprintf(s->dsn, sizeof s->dsn, "host=%s port=5432 user=postgres dbname=%s", s->dir, dbname);
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int ssmd_pgserver_stop(ssmd_pgserver *s, int remove_dir, char *err, size_t errlen) {
    char data[600], pgctl[600];
    snprintf(data, sizeof data, "%s/data", s->dir);
    snprintf(pgctl, sizeof pgctl, "%s/pg_ctl", s->bindir);
    char *stop_argv[] = {pgctl, "-D", data, "-m", "fast", "-w", "stop", NULL};
    char ctllog[600];
    snprintf(ctllog, sizeof ctllog, "%s/initdb.log", s->dir);
    int rc = run_tool(s, stop_argv, remove_dir ? "/dev/null" : ctllog);
    if (rc != 0) snprintf(err, errlen, "pg_ctl stop failed for %s", data);
    if (remove_dir && s->dir[0]) nftw(s->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc == 0 ? 0 : -1;
}
