/*
 * daemon/cmd_db.c — the small database subcommands: `ssmd migrate`, `ssmd import`,
 * `ssmd status` and `ssmd check-config` (which deliberately never connects).
 */
#include <getopt.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "csvio.h"
#include "db.h"
#include "log.h"

static int want_help(int argc, char **argv, const char *help) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(help, stdout);
            return 1;
        }
    return 0;
}

/* ---- migrate ------------------------------------------------------------------------ */

static const char *migrate_help =
    "usage: ssmd [--config FILE] [--dsn URI] migrate\n\n"
    "Applies the schema migrations that the database does not have yet, each in its own\n"
    "transaction, and records them in ssm.schema_migrations. Running it twice is a no-op.\n";

int ssmd_cmd_migrate(int argc, char **argv, const ssmd_cli *cli) {
    if (want_help(argc, argv, migrate_help)) return 0;
    if (argc > 1) {
        fprintf(stderr, "ssmd migrate: unexpected argument \"%s\"\n", argv[1]);
        return 2;
    }
    ssmd_config cfg;
    int have = ssmd_cli_load_config(cli, &cfg, 0);
    if (have < 0) return 1;
    PGconn *conn;
    int rc = ssmd_cli_connect(cli, have == 0 ? &cfg : NULL, &conn);
    if (rc == 0) {
        char err[1024];
        int applied;
        if (ssmd_db_migrate(conn, &applied, err, sizeof err) != 0) {
            ssmd_log(SSMD_LOG_ERROR, "%s", err);
            rc = -1;
        } else if (applied) {
            printf("applied %d migration%s\n", applied, applied == 1 ? "" : "s");
        } else {
            printf("schema is up to date\n");
        }
        PQfinish(conn);
    }
    if (have == 0) ssmd_config_free(&cfg);
    return rc ? 1 : 0;
}

/* ---- import ------------------------------------------------------------------------- */

static const char *import_help =
    "usage: ssmd [--config FILE] [--dsn URI] import --series NAME --csv FILE [--frequency F]\n\n"
    "Loads the ts,value rows of FILE into ssm.observations for series NAME with COPY, in\n"
    "one transaction: a bad row rejects the whole file with its line number. A value for\n"
    "a timestamp already stored replaces it (a correction). The series is registered if\n"
    "needed; its frequency comes from the configuration, the database, --frequency, or\n"
    "is inferred from the timestamps.\n";

typedef struct ts_line {
    int64_t ts;
    size_t line;
} ts_line;

static int cmp_ts_line(const void *x, const void *y) {
    const ts_line *a = x, *b = y;
    if (a->ts != b->ts) return (a->ts > b->ts) - (a->ts < b->ts);
    return (a->line > b->line) - (a->line < b->line);
}

/* 1 when two rows share a timestamp (lines *a < *b), 0 otherwise (or out of memory:
 * the database's primary key still rejects a duplicate then). */
static int find_duplicate(const ssmd_points *p, size_t *a, size_t *b) {
    ts_line *v = malloc((p->n ? p->n : 1) * sizeof *v);
    if (!v) return 0;
    for (size_t i = 0; i < p->n; i++) v[i] = (ts_line){p->ts[i], p->lines[i]};
    qsort(v, p->n, sizeof *v, cmp_ts_line);
    int found = 0;
    for (size_t i = 1; i < p->n && !found; i++)
        if (v[i].ts == v[i - 1].ts) {
            *a = v[i - 1].line;
            *b = v[i].line;
            found = 1;
        }
    free(v);
    return found;
}

int ssmd_cmd_import(int argc, char **argv, const ssmd_cli *cli) {
    static const struct option opts[] = {{"series", required_argument, 0, 's'},
                                         {"csv", required_argument, 0, 'c'},
                                         {"frequency", required_argument, 0, 'f'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *name = NULL, *csv = NULL, *freq_text = NULL;
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's') name = optarg;
        else if (c == 'c') csv = optarg;
        else if (c == 'f') freq_text = optarg;
        else if (c == 'h') {
            fputs(import_help, stdout);
            return 0;
        } else {
            fputs(import_help, stderr);
            return 2;
        }
    }
    if (!name || !csv || optind < argc) {
        fprintf(stderr, "ssmd import: --series NAME and --csv FILE are required\n%s", import_help);
        return 2;
    }
    ssmd_config cfg;
    int have = ssmd_cli_load_config(cli, &cfg, 0);
    if (have < 0) return 1;
    const ssmd_series_cfg *sc = have == 0 ? ssmd_config_find(&cfg, name) : NULL;
    if (sc && !sc->source.builtin) {
        ssmd_log(SSMD_LOG_ERROR, "import: series \"%s\" reads from table %s, not from the built-in store", name,
                 sc->source.table);
        ssmd_log(SSMD_LOG_ERROR, "HINT: load the rows into %s, or set `source: builtin` for the series", sc->source.table);
        ssmd_config_free(&cfg);
        return 1;
    }
    char err[1024];
    ssmd_points pts;
    if (ssmd_csv_read_points(csv, &pts, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "import rejected: %s", err);
        if (have == 0) ssmd_config_free(&cfg);
        return 1;
    }
    size_t dup_a, dup_b;
    if (find_duplicate(&pts, &dup_a, &dup_b)) {
        ssmd_log(SSMD_LOG_ERROR, "import rejected: %s:%zu: duplicate timestamp (also on line %zu)", csv, dup_b, dup_a);
        ssmd_points_free(&pts);
        if (have == 0) ssmd_config_free(&cfg);
        return 1;
    }
    PGconn *conn;
    if (ssmd_cli_connect(cli, have == 0 ? &cfg : NULL, &conn) != 0) {
        ssmd_points_free(&pts);
        if (have == 0) ssmd_config_free(&cfg);
        return 1;
    }
    int rc = 1;
    ssmd_series_cfg tmp;
    memset(&tmp, 0, sizeof tmp);
    ssm_error e = {0};
    int64_t id = 0;
    char dbfreq[32] = "";
    if (ssmd_db_check_migrated(conn, err, sizeof err) != 0) goto out;
    if (ssmd_db_exec(conn, "BEGIN", err, sizeof err) != 0) goto out;
    /* the frequency: configuration > database > --frequency > inferred */
    int found = ssmd_db_find_series(conn, name, &id, dbfreq, sizeof dbfreq, err, sizeof err);
    if (found < 0) goto rollback;
    if (sc) {
        tmp = *sc;
        if (ssmd_db_ensure_series(conn, &tmp, &id, err, sizeof err)) goto rollback;
    } else if (!found) {
        tmp.name = (char *)name;
        tmp.source.builtin = 1;
        if (freq_text) {
            if (ssm_freq_parse(freq_text, &tmp.freq, &e) != SSM_OK) {
                snprintf(err, sizeof err, "--frequency: %s", e.message);
                goto rollback;
            }
        } else {
            /* infer from the file's timestamps, sorted copy not needed: COPY keeps any order */
            int64_t *ts = malloc(pts.n * sizeof *ts);
            if (!ts) {
                snprintf(err, sizeof err, "out of memory");
                goto rollback;
            }
            memcpy(ts, pts.ts, pts.n * sizeof *ts);
            int ok = ssm_freq_infer(ts, pts.n, &tmp.freq, &e) == SSM_OK;
            free(ts);
            if (!ok) {
                snprintf(err, sizeof err, "%s (give --frequency)", e.message);
                goto rollback;
            }
        }
        if (ssmd_db_ensure_series(conn, &tmp, &id, err, sizeof err)) goto rollback;
    }
    if (ssmd_db_copy_observations(conn, id, &pts, err, sizeof err)) goto rollback;
    if (ssmd_db_exec(conn, "COMMIT", err, sizeof err)) goto out;
    printf("imported %zu rows into series \"%s\"\n", pts.n, name);
    rc = 0;
    goto out;
rollback: {
    char ignore[64];
    ssmd_db_exec(conn, "ROLLBACK", ignore, sizeof ignore);
}
out:
    if (rc) ssmd_log(SSMD_LOG_ERROR, "import of %s into \"%s\" failed: %s", csv, name, err);
    PQfinish(conn);
    ssmd_points_free(&pts);
    if (have == 0) ssmd_config_free(&cfg);
    return rc;
}

/* ---- status ------------------------------------------------------------------------- */

static const char *status_help =
    "usage: ssmd [--config FILE] [--dsn URI] status\n\n"
    "Shows every series: its status, the last observation seen, the last and next run,\n"
    "the lease holder and the last error.\n";

int ssmd_cmd_status(int argc, char **argv, const ssmd_cli *cli) {
    if (want_help(argc, argv, status_help)) return 0;
    ssmd_config cfg;
    int have = ssmd_cli_load_config(cli, &cfg, 0);
    if (have < 0) return 1;
    PGconn *conn;
    int rc = ssmd_cli_connect(cli, have == 0 ? &cfg : NULL, &conn);
    if (have == 0) ssmd_config_free(&cfg);
    if (rc) return 1;
    PGresult *res = PQexec(conn,
        "SELECT name, status, frequency, to_char(watermark AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), "
        "to_char(last_run AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), "
        "to_char(next_run AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), coalesce(lease_owner, ''), "
        "coalesce(last_error, '') FROM ssm.series ORDER BY name");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char err[1024];
        ssmd_db_error(conn, res, "reading ssm.series", err, sizeof err);
        ssmd_log(SSMD_LOG_ERROR, "%s (HINT: run `ssmd migrate`)", err);
        PQclear(res);
        PQfinish(conn);
        return 1;
    }
    printf("%-20s %-6s %-5s %-16s %-19s %-19s %-12s %s\n", "series", "status", "freq", "last observation", "last run (UTC)",
           "next run (UTC)", "lease", "error");
    for (int i = 0; i < PQntuples(res); i++)
        printf("%-20s %-6s %-5s %-16s %-19s %-19s %-12s %.80s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
               PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4), PQgetvalue(res, i, 5),
               PQgetvalue(res, i, 6), PQgetvalue(res, i, 7));
    printf("(%d series)\n", PQntuples(res));
    PQclear(res);
    PQfinish(conn);
    return 0;
}

/* ---- check-config ------------------------------------------------------------------- */

static const char *check_help =
    "usage: ssmd [--config FILE] check-config [--print | --keys]\n\n"
    "Validates the configuration file (syntax, keys, types, model specs) without touching\n"
    "the database. Exit status 0 when it is valid.\n\n"
    "  --print   also print the effective configuration (defaults applied) as YAML\n"
    "  --keys    print the reference of every configuration key (markdown) and exit\n";

int ssmd_cmd_check_config(int argc, char **argv, const ssmd_cli *cli) {
    if (want_help(argc, argv, check_help)) return 0;
    int print = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--keys") == 0) {
            ssmd_config_describe(stdout);
            return 0;
        } else if (strcmp(argv[i], "--print") == 0) {
            print = 1;
        } else {
            fprintf(stderr, "ssmd check-config: unexpected argument \"%s\"\n%s", argv[i], check_help);
            return 2;
        }
    }
    ssmd_config cfg;
    if (ssmd_cli_load_config(cli, &cfg, 1) != 0) return 1;
    /* model specs are checked by building each model once */
    int bad = 0;
    for (size_t i = 0; i < cfg.nseries; i++) {
        const ssmd_series_cfg *sc = &cfg.series[i];
        for (size_t k = 0; k < sc->nmodels; k++) {
            ssm_model_opts mo = {0};
            mo.season = sc->season;
            ssm_error e = {0};
            ssm_model *m = ssm_model_create(sc->models[k], &mo, &e);
            if (!m) {
                int line = sc->model_lines && sc->model_lines[k] ? sc->model_lines[k] : sc->line;
                int col = sc->model_cols && sc->model_lines[k] ? sc->model_cols[k] : 1;
                ssmd_log(SSMD_LOG_ERROR, "%s:%d:%d: series \"%s\": model \"%s\": %s", cfg.path, line, col, sc->name,
                         sc->models[k], e.message);
                if (e.hint[0]) ssmd_log(SSMD_LOG_ERROR, "HINT: %s", e.hint);
                bad = 1;
            }
            ssm_model_free(m);
        }
    }
    if (!bad && print) ssmd_config_print(stdout, &cfg);
    if (!bad) printf("%s%s: ok (%zu series)\n", print ? "# " : "", cfg.path, cfg.nseries);
    ssmd_config_free(&cfg);
    return bad;
}
