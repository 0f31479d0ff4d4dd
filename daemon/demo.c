/*
 * daemon/demo.c — `ssmd demo`: the whole pipeline on sample data in one command.
 *
 * Starts a private PostgreSQL in a scratch folder, writes a configuration, migrates,
 * loads real public-domain series (Nile flows, airline passengers, UK gas; compiled into
 * the binary) plus generated hourly series with daily and weekly cycles (one in the
 * built-in store, two in a user table read through `source: {table: ...}`), runs one
 * cycle exactly as `ssmd run --once` does, reads the latest forecasts back with SQL,
 * prints the psql line to look further, and stops the server unless --keep.
 */
#include <getopt.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "csvio.h"
#include "cycle.h"
#include "db.h"
#include "embedded.h"
#include "log.h"
#include "pgserver.h"
#include "strbuf.h"

static const char *demo_help =
    "usage: ssmd demo [--keep] [--dir DIR]\n\n"
    "Starts a private PostgreSQL server (from the system's binaries, in a scratch folder,\n"
    "Unix socket only), migrates it, loads sample series, runs one forecasting cycle, and\n"
    "prints the latest forecasts read back with SQL.\n\n"
    "  --keep      leave the server running and print how to connect and stop it\n"
    "  --dir DIR   use DIR as the scratch folder (default: a new /tmp/ssmd-demo-XXXXXX)\n";

/* The demo's configuration: every kind of source and a few model families. */
static const char *demo_config =
    "# written by `ssmd demo`\n"
    "database:\n"
    "  dsn: \"%s\"\n"
    "workers: 2\n"
    "defaults:\n"
    "  every: 1h\n"
    "  horizon: 12\n"
    "  quantiles: [0.05, 0.5, 0.95]\n"
    "  models: [local_level]\n"
    "series:\n"
    "  - name: nile\n"
    "    frequency: 1y\n"
    "    horizon: 10\n"
    "    source: builtin\n"
    "  - name: air_passengers\n"
    "    frequency: 1mo\n"
    "    horizon: 24\n"
    "    models: [%s]\n"
    "    source: builtin\n"
    "  - name: uk_gas\n"
    "    frequency: 1q\n"
    "    horizon: 8\n"
    "    models: [%s]\n"
    "    source: builtin\n"
    "  - name: dc_power\n"
    "    frequency: 1h\n"
    "    horizon: 48\n"
    "    models: [%s]\n"
    "    source: builtin\n"
    "  - name: web01_load\n"
    "    frequency: 1h\n"
    "    horizon: 24\n"
    "    models: [%s]\n"
    "    source: { table: metrics.cpu, time: ts, value: load, where: { host: web01 } }\n"
    "  - name: web02_load\n"
    "    frequency: 1h\n"
    "    horizon: 24\n"
    "    models: [%s]\n"
    "    source: { table: metrics.cpu, time: ts, value: load, where: { host: web02 } }\n";

/* Picks the first spec of a list that this build knows, so the demo shows the richest
 * models available (the Kalman family always provides local_level). */
static const char *first_known(const char *const *specs) {
    for (; *specs; specs++) {
        ssm_error e = {0};
        ssm_model_opts mo = {0};
        ssm_model *m = ssm_model_create(*specs, &mo, &e);
        if (m) {
            ssm_model_free(m);
            return *specs;
        }
    }
    return "local_level";
}

/* Deterministic generator (splitmix64 + Box-Muller) so every demo shows the same data. */
typedef struct demo_rng {
    uint64_t s;
} demo_rng;

static double rng_uniform(demo_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(demo_rng *r) {
    double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* Hourly load with a daily and a weekly cycle, a slow drift and noise: 8 weeks. */
static void generate_hourly(ssmd_points *p, int64_t start, double level, double daily, double weekly, uint64_t seed) {
    demo_rng r = {seed};
    double drift = 0;
    for (int h = 0; h < 8 * 7 * 24; h++) {
        drift += 0.05 * rng_normal(&r);
        double v = level + drift + daily * sin(2 * M_PI * (h % 24 - 8) / 24.0) +
                   weekly * ((h / 24) % 7 >= 5 ? -1.0 : 0.4) + 1.5 * rng_normal(&r);
        ssmd_points_push(p, start + 3600LL * h, v, (size_t)h + 2);
    }
}

static int load_embedded(PGconn *c, const ssmd_config *cfg, const char *series, const char *file, char *err,
                         size_t errlen) {
    const ssmd_embedded_file *f = ssmd_demo_data;
    while (f->name && strcmp(f->name, file) != 0) f++;
    if (!f->name) {
        snprintf(err, errlen, "sample data %s is not compiled in", file);
        return -1;
    }
    /* the CSV reader wants a file: go through a pipe-free temporary file */
    char path[] = "/tmp/ssmd-demo-csv-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(err, errlen, "could not create a temporary file");
        return -1;
    }
    size_t len = strlen(f->text);
    int ok = write(fd, f->text, len) == (ssize_t)len;
    close(fd);
    ssmd_points pts = {0};
    int rc = -1;
    if (!ok) snprintf(err, errlen, "could not write a temporary file");
    else if (ssmd_csv_read_points(path, &pts, err, errlen) == 0) {
        const ssmd_series_cfg *sc = ssmd_config_find(cfg, series);
        int64_t id;
        if (sc && ssmd_db_ensure_series(c, sc, &id, err, errlen) == 0 &&
            ssmd_db_copy_observations(c, id, &pts, err, errlen) == 0)
            rc = 0;
    }
    unlink(path);
    ssmd_points_free(&pts);
    return rc;
}

static int load_sample_data(PGconn *c, const ssmd_config *cfg, char *err, size_t errlen) {
    if (ssmd_db_exec(c, "BEGIN", err, errlen)) return -1;
    int bad = load_embedded(c, cfg, "nile", "Nile.csv", err, errlen) ||
              load_embedded(c, cfg, "air_passengers", "AirPassengers.csv", err, errlen) ||
              load_embedded(c, cfg, "uk_gas", "UKgas.csv", err, errlen);
    int64_t start = 1767225600; /* 2026-01-01T00:00:00Z */
    if (!bad) {
        ssmd_points p = {0};
        generate_hourly(&p, start, 420, 80, 40, 11);
        int64_t id;
        const ssmd_series_cfg *sc = ssmd_config_find(cfg, "dc_power");
        bad = !sc || ssmd_db_ensure_series(c, sc, &id, err, errlen) || ssmd_db_copy_observations(c, id, &p, err, errlen);
        ssmd_points_free(&p);
    }
    if (!bad)
        bad = ssmd_db_exec(c, "CREATE SCHEMA metrics; "
                              "CREATE TABLE metrics.cpu (ts timestamptz NOT NULL, host text NOT NULL, load float8, "
                              "PRIMARY KEY (host, ts))", err, errlen);
    for (int host = 1; host <= 2 && !bad; host++) {
        ssmd_points p = {0};
        generate_hourly(&p, start, 40 + 10 * host, 15, 6, 100 + (uint64_t)host);
        ssmd_strbuf sb = {0};
        ssmd_sb_appendf(&sb, "INSERT INTO metrics.cpu (ts, host, load) SELECT to_timestamp(t), 'web0%d', v "
                             "FROM unnest($1::float8[], $2::float8[]) AS u(t, v)", host);
        ssmd_strbuf ts = {0}, vs = {0};
        ssmd_sb_appendf(&ts, "{");
        ssmd_sb_appendf(&vs, "{");
        for (size_t i = 0; i < p.n; i++) {
            ssmd_sb_appendf(&ts, "%s%lld", i ? "," : "", (long long)p.ts[i]);
            ssmd_sb_appendf(&vs, "%s%.6f", i ? "," : "", fmax(0, p.values[i]));
        }
        ssmd_sb_appendf(&ts, "}");
        ssmd_sb_appendf(&vs, "}");
        const char *params[] = {ssmd_sb_str(&ts), ssmd_sb_str(&vs)};
        bad = sb.failed || ts.failed || vs.failed || ssmd_db_execp(c, ssmd_sb_str(&sb), 2, params, err, errlen);
        ssmd_sb_free(&sb);
        ssmd_sb_free(&ts);
        ssmd_sb_free(&vs);
        ssmd_points_free(&p);
    }
    if (bad) {
        char ignore[64];
        ssmd_db_exec(c, "ROLLBACK", ignore, sizeof ignore);
        return -1;
    }
    return ssmd_db_exec(c, "COMMIT", err, errlen);
}

static void print_latest(PGconn *c) {
    PGresult *r = PQexec(c,
        "SELECT series, model, step, to_char(target_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), "
        "round(mean::numeric, 2), round(quantile_values[1]::numeric, 2), round(quantile_values[3]::numeric, 2) "
        "FROM ssm.latest_forecasts WHERE step IN (1, 2, 3) ORDER BY series, model, step");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ssmd_log(SSMD_LOG_ERROR, "reading ssm.latest_forecasts: %s", PQresultErrorMessage(r));
        PQclear(r);
        return;
    }
    printf("\nSELECT series, model, step, target_ts, mean, q05, q95 FROM ssm.latest_forecasts WHERE step <= 3:\n\n");
    printf("%-15s %-28s %4s  %-16s %12s %12s %12s\n", "series", "model", "step", "target (UTC)", "mean", "q0.05", "q0.95");
    for (int i = 0; i < PQntuples(r); i++)
        printf("%-15s %-28.28s %4s  %-16s %12s %12s %12s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
               PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
    PQclear(r);
    r = PQexec(c, "SELECT count(*), count(DISTINCT series_id) FROM ssm.forecasts");
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        printf("\n%s forecast rows for %s series in ssm.forecasts\n", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    PQclear(r);
}

int ssmd_cmd_demo(int argc, char **argv, const ssmd_cli *cli) {
    (void)cli;
    static const struct option opts[] = {{"keep", no_argument, 0, 'k'},
                                         {"dir", required_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int keep = 0;
    const char *dir = NULL;
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'k') keep = 1;
        else if (c == 'd') dir = optarg;
        else if (c == 'h') {
            fputs(demo_help, stdout);
            return 0;
        } else {
            fputs(demo_help, stderr);
            return 2;
        }
    }
    char err[2048];
    ssmd_pgserver srv;
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep our lines in order with the log's stderr lines */
    printf("starting a private PostgreSQL server ...\n");
    fflush(stdout);
    if (ssmd_pgserver_start(&srv, dir, "ssmd", err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "demo: %s", err);
        if (srv.dir[0] && srv.bindir[0]) ssmd_pgserver_stop(&srv, srv.owns_dir, err, sizeof err);
        return 1;
    }
    printf("server running in %s\n", srv.dir);

    static const char *const seasonal[] = {"kalman_auto", "bsm", "local_linear_trend", NULL};
    static const char *const hourly[] = {"bsm", "local_linear_trend", NULL};
    static const char *const air[] = {"sarima(0,1,1)(0,1,1)[12]", "bsm", NULL};
    static const char *const neural[] = {"s4d(context=96,d_model=16,layers=1,steps=150)", NULL};
    char models_air[256], models_gas[256], models_dc[256], models_web[256];
    const char *air_model = first_known(air);
    if (strcmp(air_model, "local_level") == 0) snprintf(models_air, sizeof models_air, "local_level");
    else snprintf(models_air, sizeof models_air, "local_level, \"%s\"", air_model);
    snprintf(models_gas, sizeof models_gas, "\"%s\"", first_known(seasonal));
    snprintf(models_dc, sizeof models_dc, "\"%s\"", first_known(hourly));
    const char *nn = first_known(neural);
    if (strcmp(nn, "local_level") != 0) snprintf(models_web, sizeof models_web, "\"%s\", \"%s\"", first_known(hourly), nn);
    else snprintf(models_web, sizeof models_web, "\"%s\"", first_known(hourly));

    char cfgpath[600];
    snprintf(cfgpath, sizeof cfgpath, "%s/ssmd.yaml", srv.dir);
    FILE *f = fopen(cfgpath, "w");
    int rc = 1;
    ssmd_config cfg;
    memset(&cfg, 0, sizeof cfg);
    PGconn *conn = NULL;
    if (!f) {
        ssmd_log(SSMD_LOG_ERROR, "demo: could not write %s", cfgpath);
        goto out;
    }
    fprintf(f, demo_config, srv.dsn, models_air, models_gas, models_dc, models_web, models_web);
    fclose(f);
    if (ssmd_config_load(cfgpath, &cfg, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "demo: %s", err);
        goto out;
    }
    if (ssmd_db_connect(srv.dsn, cfg.statement_timeout_ms, &conn, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "demo: %s", err);
        goto out;
    }
    int applied;
    if (ssmd_db_migrate(conn, &applied, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "demo: %s", err);
        goto out;
    }
    printf("migrated (%d migrations); configuration in %s\n", applied, cfgpath);
    if (load_sample_data(conn, &cfg, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "demo: loading sample data: %s", err);
        goto out;
    }
    printf("loaded sample data: Nile (yearly), AirPassengers (monthly), UKgas (quarterly), 3 generated hourly series\n");
    printf("running one cycle ...\n");
    fflush(stdout);
    ssmd_cycle_opts o = {.instance = "ssmd-demo", .device = cfg.device, .force_refit = 0, .threads = 0};
    int failed = 0;
    for (size_t i = 0; i < cfg.nseries; i++) {
        ssmd_cycle_result r;
        ssmd_cycle_run(conn, &cfg.series[i], &o, &r);
        if (r.status == SSMD_CYCLE_ERROR) {
            failed++;
            ssmd_log(SSMD_LOG_ERROR, "series \"%s\": %s", cfg.series[i].name, r.error);
        } else {
            printf("  %-15s %4zu points  %d model%s  %.2f s%s%s\n", cfg.series[i].name, r.new_points, r.models_ok,
                   r.models_ok == 1 ? " " : "s", r.seconds, r.models_failed ? "  (failed: " : "",
                   r.models_failed ? r.error : "");
        }
    }
    print_latest(conn);
    printf("\nlook further with:\n  psql \"%s\"\n", srv.dsn);
    printf("  e.g. SELECT * FROM ssm.runs;  SELECT * FROM ssm.latest_forecasts WHERE series = 'nile';\n");
    rc = failed ? 1 : 0;
out:
    PQfinish(conn);
    ssmd_config_free(&cfg);
    if (keep && rc == 0) {
        printf("\nthe server keeps running (--keep); stop it with:\n  %s%s/pg_ctl -D %s/data stop\n",
               srv.runas[0] ? "runuser -u postgres -- " : "", srv.bindir, srv.dir);
        printf("  or run the daemon against it: ssmd --config %s run\n", cfgpath);
    } else {
        ssmd_pgserver_stop(&srv, srv.owns_dir, err, sizeof err);
        printf("\nserver stopped%s\n", srv.owns_dir ? " and scratch folder removed (use --keep to keep it)" : "");
    }
    return rc;
}
