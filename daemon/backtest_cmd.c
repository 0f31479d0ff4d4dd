/*
 * daemon/backtest_cmd.c — `ssmd backtest`: rolling-origin evaluation of model specs on
 * series from the database (the configuration's series, by name or glob) or from CSV
 * files, always next to the naive, snaive and drift baselines.
 *
 * The work is a grid of (series, model) jobs run on a pool of pthreads (models are
 * reentrant; each job is one ssm_backtest_run from models/backtest.h). Then: a summary per
 * model across series (mean, median, rank by MASE), printed as a table, CSV or JSON;
 * optionally per-series detail files (--out), an SVG chart (--plot) and, for database
 * series, rows in ssm.backtests. A progress bar goes to stderr only when it is a terminal.
 * What this file is not: the metrics and the origin arithmetic (models/), the chart
 * drawing (plot_svg.c), or the choice of models for `auto` (models/model_auto.c).
 */
#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backtest.h"
#include "cli.h"
#include "config.h"
#include "csvio.h"
#include "db.h"
#include "log.h"
#include "model.h"
#include "plot_svg.h"
#include "strbuf.h"

#define MAX_MODELS 32
#define MAX_QUANTILES 32

static const char *const baseline_specs[] = {"naive", "snaive", "drift"};

typedef struct bt_series {
    char *name;                  /* owned */
    ssm_series y;                /* values owned */
    int season;                  /* 0: from the frequency */
    const ssmd_series_cfg *sc;   /* database series: its configuration; NULL for a CSV */
} bt_series;

typedef struct bt_cmd {
    /* arguments */
    const char *series_pat[64];
    size_t nseries_pat;
    const char *csv[64];
    size_t ncsv;
    const char *frequency;
    char models[MAX_MODELS][256];
    size_t nmodels;
    size_t horizon, origins, step, window;
    int refit_once;
    int season;
    double levels[MAX_QUANTILES];
    size_t nq;
    const char *format;          /* table | csv | json */
    const char *out_dir;
    const char *plot;
    const char *plot_series;
    size_t plot_origins[64];
    size_t nplot_origins;
    const char *plot_metric;
    int threads;
    int per_series;              /* -1: when few series */
    int store;
    /* state */
    ssmd_config cfg;
    int have_cfg;
    bt_series *series;
    size_t nseries;
    ssm_backtest *grid;          /* nseries x nmodels */
    ssm_error *errors;           /* nseries x nmodels */
    int *ran;                    /* nseries x nmodels: 1 ok, -1 failed */
    ssm_bt_summary summary[MAX_MODELS];
} bt_cmd;

static void usage(FILE *out) {
    fprintf(out,
            "usage: ssmd backtest (--series NAME|GLOB ... | --csv FILE|GLOB|DIR ...) [options]\n\n"
            "Rolling-origin backtest: at each origin fit on the past, forecast H steps, score the\n"
            "forecasts. Origins are counted back from the end, so the last horizon ends at the last\n"
            "observation. The baselines naive, snaive and drift are always included.\n\n"
            "  --series PATTERN    configured series by name or glob (repeatable; default: all)\n"
            "  --csv FILE          a ts,value CSV, a glob of them or a directory (repeatable)\n"
            "  --frequency F       grid of the CSV series (30m, 1h, 1d, 1mo, ...; default: inferred)\n"
            "  --model SPEC        model spec(s), repeatable and/or comma separated:\n"
            "                      --model 'local_level,sarima(0,1,1)(0,1,1)[12]' --model auto\n"
            "                      (default: the series' configured models; none for CSV)\n"
            "  --horizon H         steps per forecast (default: configured horizon, else the\n"
            "                      season when > 1, else 10)\n"
            "  --origins N         forecast origins (default 5)\n"
            "  --step K            points between origins (default H)\n"
            "  --window W          sliding training window of W points (default: expanding)\n"
            "  --refit every|once  refit at every origin (default), or fit at the first and\n"
            "                      then only filter forward (cheap for state space models)\n"
            "  --season S          season length for MASE, snaive and the models (default:\n"
            "                      configured, else from the frequency)\n"
            "  --quantiles LIST    quantile levels (default 0.025,0.1,0.5,0.9,0.975)\n"
            "  --format F          table (default), csv or json, on stdout\n"
            "  --per-series        the table lists every series (default when 20 or fewer)\n"
            "  --out DIR           per-series CSVs of every origin and step: actual, mean, quantiles\n"
            "  --plot FILE.svg     chart of one series' forecasts and of a metric by step\n"
            "  --plot-series NAME  series to draw (default: the first)\n"
            "  --plot-origins LIST origins to draw, 1-based, comma separated (default: the last 3)\n"
            "  --plot-metric M     mase (default), mae, rmse, smape or pinball\n"
            "  --threads N         worker threads (default: all cores)\n"
            "  --no-store          do not record database runs in ssm.backtests\n\n"
            "metrics: MAE, RMSE, MAPE (zero actuals skipped), sMAPE, MASE (scaled by the in-sample\n"
            "seasonal naive MAE of each training window, as in M4), pinball loss averaged over the\n"
            "quantiles, and coverage and width of each central interval.\n");
}

/* ---- argument parsing ------------------------------------------------------------ */

/* Splits a list of specs at commas outside parentheses/brackets:
 * "local_level,sarima(0,1,1)(0,1,1)[12]" -> "local_level", "sarima(0,1,1)(0,1,1)[12]". */
static int add_specs(bt_cmd *c, const char *text) {
    int depth = 0;
    const char *item = text;
    for (const char *p = text;; p++) {
        if (*p == '(' || *p == '[') depth++;
        else if (*p == ')' || *p == ']') depth--;
        if (depth < 0) {
            ssmd_log(SSMD_LOG_ERROR, "unbalanced parentheses in --model \"%s\"", text);
            return -1;
        }
        if (*p == '\0' || (*p == ',' && depth == 0)) {
            const char *a = item, *b = p;
            while (a < b && (*a == ' ' || *a == '\t')) a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
            if (b > a) {
                if (c->nmodels >= MAX_MODELS - 3) {
                    ssmd_log(SSMD_LOG_ERROR, "too many models (at most %d)", MAX_MODELS - 3);
                    return -1;
                }
                snprintf(c->models[c->nmodels++], 256, "%.*s", (int)(b - a), a);
            }
            item = p + 1;
        }
        if (*p == '\0') break;
    }
    if (depth != 0) {
        ssmd_log(SSMD_LOG_ERROR, "unbalanced parentheses in --model \"%s\"", text);
        return -1;
    }
    return 0;
}

static int parse_count(const char *opt, const char *v, size_t *out, size_t min) {
    char *end = NULL;
    errno = 0;
    long x = strtol(v ? v : "", &end, 10);
    if (!v || !*v || *end || errno || x < (long)min || x > 100000000L) {
        ssmd_log(SSMD_LOG_ERROR, "%s needs an integer of at least %zu, got \"%s\"", opt, min, v ? v : "");
        return -1;
    }
    *out = (size_t)x;
    return 0;
}

static int parse_levels(bt_cmd *c, const char *v) {
    c->nq = 0;
    const char *p = v;
    while (*p) {
        char *end = NULL;
        double x = strtod(p, &end);
        if (end == p || !(x > 0 && x < 1) || c->nq >= MAX_QUANTILES ||
            (c->nq && !(x > c->levels[c->nq - 1]))) {
            ssmd_log(SSMD_LOG_ERROR, "--quantiles must be ascending levels in (0, 1), got \"%s\"", v);
            return -1;
        }
        c->levels[c->nq++] = x;
        p = end;
        if (*p == ',') p++;
        else if (*p) {
            ssmd_log(SSMD_LOG_ERROR, "--quantiles: unexpected \"%s\"", p);
            return -1;
        }
    }
    return c->nq ? 0 : -1;
}

static int parse_origin_list(bt_cmd *c, const char *v) {
    c->nplot_origins = 0;
    const char *p = v;
    while (*p) {
        char *end = NULL;
        long x = strtol(p, &end, 10);
        if (end == p || x < 1 || c->nplot_origins >= 64) {
            ssmd_log(SSMD_LOG_ERROR, "--plot-origins takes 1-based origin numbers, got \"%s\"", v);
            return -1;
        }
        c->plot_origins[c->nplot_origins++] = (size_t)x - 1;
        p = end;
        if (*p == ',') p++;
        else if (*p) {
            ssmd_log(SSMD_LOG_ERROR, "--plot-origins: unexpected \"%s\"", p);
            return -1;
        }
    }
    return 0;
}

/* Returns 0 to go on, 1 for --help (exit 0), 2 for a usage error. */
static int parse_args(bt_cmd *c, int argc, char **argv) {
    c->origins = 5;
    c->per_series = -1;
    c->store = 1;
    c->format = "table";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
            v = eq + 1;
            a = name;
        }
#define VALUE()                                                                \
    do {                                                                       \
        if (!v) {                                                              \
            if (i + 1 >= argc) {                                               \
                ssmd_log(SSMD_LOG_ERROR, "backtest: %s needs a value", a);     \
                return 2;                                                      \
            }                                                                  \
            v = argv[++i];                                                     \
        }                                                                      \
    } while (0)
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 1;
        else if (strcmp(a, "--series") == 0) {
            VALUE();
            if (c->nseries_pat < 64) c->series_pat[c->nseries_pat++] = v;
        } else if (strcmp(a, "--csv") == 0) {
            VALUE();
            if (c->ncsv < 64) c->csv[c->ncsv++] = v;
        } else if (strcmp(a, "--frequency") == 0) {
            VALUE();
            c->frequency = v;
        } else if (strcmp(a, "--model") == 0) {
            VALUE();
            if (add_specs(c, v)) return 2;
        } else if (strcmp(a, "--horizon") == 0) {
            VALUE();
            if (parse_count(a, v, &c->horizon, 1)) return 2;
        } else if (strcmp(a, "--origins") == 0) {
            VALUE();
            if (parse_count(a, v, &c->origins, 1)) return 2;
        } else if (strcmp(a, "--step") == 0) {
            VALUE();
            if (parse_count(a, v, &c->step, 1)) return 2;
        } else if (strcmp(a, "--window") == 0) {
            VALUE();
            if (parse_count(a, v, &c->window, 2)) return 2;
        } else if (strcmp(a, "--refit") == 0) {
            VALUE();
            if (strcmp(v, "every") && strcmp(v, "once")) {
                ssmd_log(SSMD_LOG_ERROR, "--refit is every or once, got \"%s\"", v);
                return 2;
            }
            c->refit_once = strcmp(v, "once") == 0;
        } else if (strcmp(a, "--season") == 0) {
            VALUE();
            size_t s;
            if (parse_count(a, v, &s, 1)) return 2;
            c->season = (int)s;
        } else if (strcmp(a, "--quantiles") == 0) {
            VALUE();
            if (parse_levels(c, v)) return 2;
        } else if (strcmp(a, "--format") == 0) {
            VALUE();
            if (strcmp(v, "table") && strcmp(v, "csv") && strcmp(v, "json")) {
                ssmd_log(SSMD_LOG_ERROR, "--format is table, csv or json, got \"%s\"", v);
                return 2;
            }
            c->format = v;
        } else if (strcmp(a, "--out") == 0) {
            VALUE();
            c->out_dir = v;
        } else if (strcmp(a, "--plot") == 0) {
            VALUE();
            c->plot = v;
        } else if (strcmp(a, "--plot-series") == 0) {
            VALUE();
            c->plot_series = v;
        } else if (strcmp(a, "--plot-origins") == 0) {
            VALUE();
            if (parse_origin_list(c, v)) return 2;
        } else if (strcmp(a, "--plot-metric") == 0) {
            VALUE();
            if (strcmp(v, "mase") && strcmp(v, "mae") && strcmp(v, "rmse") && strcmp(v, "smape") &&
                strcmp(v, "pinball")) {
                ssmd_log(SSMD_LOG_ERROR, "--plot-metric is mase, mae, rmse, smape or pinball, got \"%s\"", v);
                return 2;
            }
            c->plot_metric = v;
        } else if (strcmp(a, "--threads") == 0) {
            VALUE();
            size_t t;
            if (parse_count(a, v, &t, 1)) return 2;
            c->threads = (int)t;
        } else if (strcmp(a, "--per-series") == 0) {
            c->per_series = 1;
        } else if (strcmp(a, "--no-store") == 0) {
            c->store = 0;
        } else {
            ssmd_log(SSMD_LOG_ERROR, "backtest: unknown option \"%s\" (see ssmd backtest --help)", argv[i]);
            return 2;
        }
#undef VALUE
    }
    if (c->ncsv && c->nseries_pat) {
        ssmd_log(SSMD_LOG_ERROR, "backtest: give --series (database) or --csv (files), not both");
        return 2;
    }
    if (c->frequency && !c->ncsv) {
        ssmd_log(SSMD_LOG_ERROR, "backtest: --frequency applies to --csv series only");
        return 2;
    }
    return 0;
}

/* ---- loading series -------------------------------------------------------------- */

static int push_series(bt_cmd *c, bt_series *s) {
    bt_series *p = realloc(c->series, (c->nseries + 1) * sizeof *p);
    if (!p) return -1;
    c->series = p;
    c->series[c->nseries++] = *s;
    return 0;
}

static char *name_from_path(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    if (len > 4 && strcmp(base + len - 4, ".csv") == 0) len -= 4;
    char *name = malloc(len + 1);
    if (name) snprintf(name, len + 1, "%.*s", (int)len, base);
    return name;
}

static int load_csv_file(bt_cmd *c, const char *path, const ssm_freq *freq) {
    bt_series s;
    memset(&s, 0, sizeof s);
    s.name = name_from_path(path);
    if (!s.name) return -1;
    char err[1024];
    if (ssmd_csv_read(path, s.name, freq, &s.y, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "%s", err);
        free(s.name);
        return -1;
    }
    s.y.name = s.name;
    s.season = c->season;
    if (push_series(c, &s)) {
        ssm_series_free(&s.y);
        free(s.name);
        return -1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int load_csv(bt_cmd *c) {
    ssm_freq freq, *fp = NULL;
    if (c->frequency) {
        ssm_error e;
        if (ssm_freq_parse(c->frequency, &freq, &e) != SSM_OK) {
            ssmd_log_error("--frequency", &e);
            return -1;
        }
        fp = &freq;
    }
    for (size_t i = 0; i < c->ncsv; i++) {
        struct stat st;
        glob_t g;
        memset(&g, 0, sizeof g);
        int rc;
        if (stat(c->csv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            char pat[4096];
            snprintf(pat, sizeof pat, "%s/*.csv", c->csv[i]);
            rc = glob(pat, 0, NULL, &g);
        } else if (strcmp(c->csv[i], "-") == 0 || stat(c->csv[i], &st) == 0) {
            if (load_csv_file(c, c->csv[i], fp)) return -1;
            continue;
        } else {
            rc = glob(c->csv[i], 0, NULL, &g);
        }
        if (rc != 0 || g.gl_pathc == 0) {
            ssmd_log(SSMD_LOG_ERROR, "--csv \"%s\": no such file", c->csv[i]);
            globfree(&g);
            return -1;
        }
        qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, cmp_str);
        for (size_t j = 0; j < g.gl_pathc; j++)
            if (load_csv_file(c, g.gl_pathv[j], fp)) {
                globfree(&g);
                return -1;
            }
        globfree(&g);
    }
    return 0;
}

static int load_db(bt_cmd *c, const ssmd_cli *cli, PGconn **conn_out) {
    if (ssmd_cli_load_config(cli, &c->cfg, 1) != 0) return -1;
    c->have_cfg = 1;
    int *pick = calloc(c->cfg.nseries + 1, sizeof *pick);
    if (!pick) return -1;
    for (size_t p = 0; p < c->nseries_pat; p++) {
        int any = 0;
        for (size_t i = 0; i < c->cfg.nseries; i++)
            if (fnmatch(c->series_pat[p], c->cfg.series[i].name, 0) == 0) pick[i] = any = 1;
        if (!any) {
            ssmd_log(SSMD_LOG_ERROR, "--series \"%s\" matches no series in %s", c->series_pat[p], c->cfg.path);
            free(pick);
            return -1;
        }
    }
    if (!c->nseries_pat)
        for (size_t i = 0; i < c->cfg.nseries; i++) pick[i] = 1;
    PGconn *conn = NULL;
    if (ssmd_cli_connect(cli, &c->cfg, &conn) != 0) {
        free(pick);
        return -1;
    }
    *conn_out = conn;
    int rc = 0;
    for (size_t i = 0; i < c->cfg.nseries && rc == 0; i++) {
        if (!pick[i]) continue;
        const ssmd_series_cfg *sc = &c->cfg.series[i];
        bt_series s;
        memset(&s, 0, sizeof s);
        char err[1024];
        if (ssmd_db_load_series(conn, sc, &s.y, err, sizeof err) != 0) {
            ssmd_log(SSMD_LOG_ERROR, "%s", err);
            rc = -1;
            break;
        }
        s.name = strdup(sc->name);
        s.y.name = s.name;
        s.sc = sc;
        s.season = c->season ? c->season : sc->season;
        if (!s.name || push_series(c, &s)) {
            ssm_series_free(&s.y);
            free(s.name);
            rc = -1;
        }
        /* models: the configured ones, in order, when --model was not given */
    }
    free(pick);
    return rc;
}

/* ---- the pool ---------------------------------------------------------------------- */

typedef struct pool {
    bt_cmd *c;
    ssm_backtest_opts base;
    pthread_mutex_t mu;
    size_t next, done_jobs, done_series, total;
    size_t *left;                /* per series: model jobs not yet done */
    int tty;
    struct timespec t0, last_draw;
} pool;

static double seconds_between(struct timespec a, struct timespec b) {
    return (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
}

static void fmt_duration(double s, char *buf, size_t len) {
    if (!isfinite(s) || s < 0) snprintf(buf, len, "--:--");
    else if (s < 3600) snprintf(buf, len, "%02d:%02d", (int)s / 60, (int)s % 60);
    else snprintf(buf, len, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
}

/* Called with the mutex held. */
static void draw_progress(pool *p, int final) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!final && seconds_between(p->last_draw, now) < 0.1) return;
    p->last_draw = now;
    size_t S = p->c->nseries, done = p->done_series;
    double el = seconds_between(p->t0, now);
    double frac = p->total ? (double)p->done_jobs / (double)p->total : 1.0;
    double rem = frac > 0 ? el / frac - el : NAN;
    char e[32], r[32], bar[41];
    fmt_duration(el, e, sizeof e);
    fmt_duration(rem, r, sizeof r);
    size_t fill = (size_t)(frac * 40.0);
    for (size_t i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
    bar[40] = '\0';
    fprintf(stderr, "\r[%s] %zu/%zu series  elapsed %s  remaining %s ", bar, done, S, e, final ? "00:00" : r);
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

static void *worker(void *arg) {
    pool *p = arg;
    bt_cmd *c = p->c;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t j = p->next < p->total ? p->next++ : p->total;
        pthread_mutex_unlock(&p->mu);
        if (j >= p->total) break;
        size_t s = j / c->nmodels, k = j % c->nmodels;
        ssm_backtest_opts o = p->base;
        o.season = c->series[s].season;
        int rc = ssm_backtest_run(&c->series[s].y, c->models[k], &o, &c->grid[j], &c->errors[j]);
        if (rc != SSM_OK) {
            ssm_backtest_free(&c->grid[j]); /* norigins 0 marks "could not run" */
            c->ran[j] = -1;
        } else {
            c->ran[j] = 1;
        }
        pthread_mutex_lock(&p->mu);
        p->done_jobs++;
        if (--p->left[s] == 0) p->done_series++;
        if (p->tty) draw_progress(p, 0);
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

static int run_pool(bt_cmd *c, const ssm_backtest_opts *base) {
    pool p;
    memset(&p, 0, sizeof p);
    p.c = c;
    p.base = *base;
    p.total = c->nseries * c->nmodels;
    p.left = malloc(c->nseries * sizeof *p.left);
    if (!p.left) return -1;
    for (size_t s = 0; s < c->nseries; s++) p.left[s] = c->nmodels;
    p.tty = isatty(STDERR_FILENO);
    pthread_mutex_init(&p.mu, NULL);
    clock_gettime(CLOCK_MONOTONIC, &p.t0);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nt = c->threads ? (size_t)c->threads : (size_t)(cores > 0 ? cores : 1);
    if (nt > p.total) nt = p.total ? p.total : 1;
    pthread_t *th = malloc(nt * sizeof *th);
    size_t started = 0;
    if (th)
        for (; started < nt; started++)
            if (pthread_create(&th[started], NULL, worker, &p) != 0) break;
    if (started == 0) worker(&p); /* no thread could start: do the work here */
    for (size_t i = 0; i < started; i++) pthread_join(th[i], NULL);
    if (p.tty) {
        pthread_mutex_lock(&p.mu);
        draw_progress(&p, 1);
        pthread_mutex_unlock(&p.mu);
    }
    pthread_mutex_destroy(&p.mu);
    free(th);
    free(p.left);
    return 0;
}

/* ---- output ------------------------------------------------------------------------ */

/* "coverage_95", "width_80" for a nominal level. */
static void interval_key(char *buf, size_t len, const char *what, double nominal) {
    snprintf(buf, len, "%s_%g", what, round(nominal * 1000.0) / 10.0);
}

static void json_scores(ssmd_strbuf *sb, const ssm_bt_scores *s, const char *suffix) {
    ssmd_sb_appendf(sb, "\"mae%s\":", suffix);
    ssmd_sb_json_number(sb, s->mae);
    ssmd_sb_appendf(sb, ",\"rmse%s\":", suffix);
    ssmd_sb_json_number(sb, s->rmse);
    ssmd_sb_appendf(sb, ",\"mape%s\":", suffix);
    ssmd_sb_json_number(sb, s->mape);
    ssmd_sb_appendf(sb, ",\"smape%s\":", suffix);
    ssmd_sb_json_number(sb, s->smape);
    ssmd_sb_appendf(sb, ",\"mase%s\":", suffix);
    ssmd_sb_json_number(sb, s->mase);
    ssmd_sb_appendf(sb, ",\"pinball%s\":", suffix);
    ssmd_sb_json_number(sb, s->pinball);
    for (size_t j = 0; j < s->nint; j++) {
        char key[48];
        interval_key(key, sizeof key, "coverage", s->nominal[j]);
        ssmd_sb_appendf(sb, ",\"%s%s\":", key, suffix);
        ssmd_sb_json_number(sb, s->coverage[j]);
        interval_key(key, sizeof key, "width", s->nominal[j]);
        ssmd_sb_appendf(sb, ",\"%s%s\":", key, suffix);
        ssmd_sb_json_number(sb, s->width[j]);
    }
}

static void json_by_step(ssmd_strbuf *sb, const ssm_bt_scores *by, size_t H) {
    ssmd_sb_appendf(sb, ",\"by_step\":[");
    for (size_t h = 0; by && h < H; h++) {
        ssmd_sb_appendf(sb, "%s{\"step\":%zu,", h ? "," : "", h + 1);
        json_scores(sb, &by[h], "");
        ssmd_sb_appendf(sb, "}");
    }
    ssmd_sb_appendf(sb, "]");
}

static void emit_json(bt_cmd *c, const ssm_backtest_opts *o, ssmd_strbuf *sb) {
    size_t M = c->nmodels;
    ssmd_sb_appendf(sb, "{\"settings\":{\"horizon\":%zu,\"origins\":%zu,\"step\":%zu,\"window\":", o->horizon,
                    o->origins, o->step ? o->step : o->horizon);
    if (o->window) ssmd_sb_appendf(sb, "%zu", o->window);
    else ssmd_sb_appendf(sb, "null");
    ssmd_sb_appendf(sb, ",\"refit\":\"%s\",\"quantiles\":[", o->refit_once ? "once" : "every");
    for (size_t j = 0; j < o->nq; j++) {
        if (j) ssmd_sb_appendf(sb, ",");
        ssmd_sb_json_number(sb, o->levels[j]);
    }
    ssmd_sb_appendf(sb, "],\"series\":%zu},\n\"summary\":[", c->nseries);
    for (size_t k = 0; k < M; k++) {
        const ssm_bt_summary *s = &c->summary[k];
        ssmd_sb_appendf(sb, "%s\n{\"model\":", k ? "," : "");
        ssmd_sb_json_string(sb, c->models[k]);
        ssmd_sb_appendf(sb, ",\"n_series\":%zu,\"n_points\":%zu,", s->nseries, s->mean.n);
        json_scores(sb, &s->mean, "");
        ssmd_sb_appendf(sb, ",");
        json_scores(sb, &s->median, "_median");
        ssmd_sb_appendf(sb, ",\"rank\":");
        ssmd_sb_json_number(sb, s->rank);
        json_by_step(sb, s->by_step_mean, s->horizon);
        ssmd_sb_appendf(sb, "}");
    }
    ssmd_sb_appendf(sb, "],\n\"series\":[");
    int first = 1;
    for (size_t s = 0; s < c->nseries; s++)
        for (size_t k = 0; k < M; k++) {
            size_t j = s * M + k;
            const ssm_backtest *bt = &c->grid[j];
            ssmd_sb_appendf(sb, "%s\n{\"series\":", first ? "" : ",");
            first = 0;
            ssmd_sb_json_string(sb, c->series[s].name);
            ssmd_sb_appendf(sb, ",\"model\":");
            ssmd_sb_json_string(sb, c->models[k]);
            if (c->ran[j] < 0) {
                ssmd_sb_appendf(sb, ",\"error\":");
                ssmd_sb_json_string(sb, c->errors[j].message);
                ssmd_sb_appendf(sb, "}");
                continue;
            }
            ssmd_sb_appendf(sb, ",\"chosen\":");
            ssmd_sb_json_string(sb, bt->chosen);
            ssmd_sb_appendf(sb, ",\"n_points\":%zu,\"failed_origins\":%zu,", bt->overall.n, bt->nfailed);
            json_scores(sb, &bt->overall, "");
            json_by_step(sb, bt->by_step, bt->horizon);
            ssmd_sb_appendf(sb, "}");
        }
    ssmd_sb_appendf(sb, "]}\n");
}

static void csv_num(ssmd_strbuf *sb, double v) {
    if (isfinite(v)) ssmd_sb_appendf(sb, ",%.10g", v);
    else ssmd_sb_appendf(sb, ",");
}

static void csv_scores(ssmd_strbuf *sb, const ssm_bt_scores *s, const ssm_bt_scores *shape) {
    ssmd_sb_appendf(sb, ",%zu", s->n);
    csv_num(sb, s->mae);
    csv_num(sb, s->rmse);
    csv_num(sb, s->mape);
    csv_num(sb, s->smape);
    csv_num(sb, s->mase);
    csv_num(sb, s->pinball);
    for (size_t j = 0; j < shape->nint; j++) {
        csv_num(sb, j < s->nint ? s->coverage[j] : NAN);
        csv_num(sb, j < s->nint ? s->width[j] : NAN);
    }
}

static void csv_field(ssmd_strbuf *sb, const char *s) {
    /* quote specs: they contain commas */
    ssmd_sb_appendf(sb, "\"");
    for (; *s; s++) {
        if (*s == '"') ssmd_sb_appendf(sb, "\"");
        ssmd_sb_append(sb, s, 1);
    }
    ssmd_sb_appendf(sb, "\"");
}

static void emit_csv(bt_cmd *c, ssmd_strbuf *sb) {
    size_t M = c->nmodels;
    const ssm_bt_scores *shape = NULL;
    for (size_t k = 0; k < M && !shape; k++)
        if (c->summary[k].nseries) shape = &c->summary[k].mean;
    ssm_bt_scores none;
    memset(&none, 0, sizeof none);
    if (!shape) shape = &none;
    ssmd_sb_appendf(sb, "scope,series,model,step,n,mae,rmse,mape,smape,mase,pinball");
    for (size_t j = 0; j < shape->nint; j++) {
        char k1[48], k2[48];
        interval_key(k1, sizeof k1, "coverage", shape->nominal[j]);
        interval_key(k2, sizeof k2, "width", shape->nominal[j]);
        ssmd_sb_appendf(sb, ",%s,%s", k1, k2);
    }
    ssmd_sb_appendf(sb, ",rank,chosen,failed_origins\n");
    for (size_t k = 0; k < M; k++) {
        const ssm_bt_summary *s = &c->summary[k];
        const char *scope[2] = {"mean", "median"};
        const ssm_bt_scores *sc[2] = {&s->mean, &s->median};
        for (int w = 0; w < 2; w++) {
            ssmd_sb_appendf(sb, "%s,,", scope[w]);
            csv_field(sb, c->models[k]);
            ssmd_sb_appendf(sb, ",all");
            csv_scores(sb, sc[w], shape);
            csv_num(sb, w == 0 ? s->rank : NAN);
            ssmd_sb_appendf(sb, ",,\n");
        }
        for (size_t h = 0; s->by_step_mean && h < s->horizon; h++) {
            ssmd_sb_appendf(sb, "mean,,");
            csv_field(sb, c->models[k]);
            ssmd_sb_appendf(sb, ",%zu", h + 1);
            csv_scores(sb, &s->by_step_mean[h], shape);
            ssmd_sb_appendf(sb, ",,,\n");
        }
    }
    for (size_t s = 0; s < c->nseries; s++)
        for (size_t k = 0; k < M; k++) {
            size_t j = s * M + k;
            const ssm_backtest *bt = &c->grid[j];
            if (c->ran[j] < 0) continue;
            for (size_t h = 0; h <= bt->horizon; h++) {
                ssmd_sb_appendf(sb, "series,");
                csv_field(sb, c->series[s].name);
                ssmd_sb_appendf(sb, ",");
                csv_field(sb, c->models[k]);
                if (h == 0) ssmd_sb_appendf(sb, ",all");
                else ssmd_sb_appendf(sb, ",%zu", h);
                csv_scores(sb, h == 0 ? &bt->overall : &bt->by_step[h - 1], shape);
                ssmd_sb_appendf(sb, ",,");
                if (h == 0) {
                    csv_field(sb, bt->chosen);
                    ssmd_sb_appendf(sb, ",%zu", bt->nfailed);
                } else {
                    ssmd_sb_appendf(sb, ",");
                }
                ssmd_sb_appendf(sb, "\n");
            }
        }
}

static void table_num(ssmd_strbuf *sb, double v, int width, int prec) {
    if (isfinite(v)) ssmd_sb_appendf(sb, " %*.*f", width, prec, v);
    else ssmd_sb_appendf(sb, " %*s", width, "-");
}

static void emit_table(bt_cmd *c, const ssm_backtest_opts *o, ssmd_strbuf *sb) {
    size_t M = c->nmodels, H = o->horizon;
    size_t mw = 12;
    for (size_t k = 0; k < M; k++)
        if (strlen(c->models[k]) > mw) mw = strlen(c->models[k]);
    if (mw > 40) mw = 40;
    ssmd_sb_appendf(sb, "backtest: %zu series, horizon %zu, %zu origins, step %zu, %s window", c->nseries, H,
                    o->origins, o->step ? o->step : H, o->window ? "sliding" : "expanding");
    if (o->window) ssmd_sb_appendf(sb, " of %zu", o->window);
    ssmd_sb_appendf(sb, ", refit %s\n\n", o->refit_once ? "once" : "every");
    const ssm_bt_scores *shape = NULL;
    for (size_t k = 0; k < M && !shape; k++)
        if (c->summary[k].nseries) shape = &c->summary[k].mean;
    ssmd_sb_appendf(sb, "%-*s %6s %10s %10s %8s %8s %8s %8s %10s", (int)mw, "model", "series", "MAE", "RMSE", "MAPE",
                    "sMAPE", "MASE", "MASE~", "pinball");
    for (size_t j = 0; shape && j < shape->nint; j++) {
        char key[32];
        snprintf(key, sizeof key, "cov%g", round(shape->nominal[j] * 1000.0) / 10.0);
        ssmd_sb_appendf(sb, " %7s", key);
    }
    ssmd_sb_appendf(sb, " %6s\n", "rank");
    for (size_t k = 0; k < M; k++) {
        const ssm_bt_summary *s = &c->summary[k];
        ssmd_sb_appendf(sb, "%-*.*s %6zu", (int)mw, (int)mw, c->models[k], s->nseries);
        table_num(sb, s->mean.mae, 10, 3);
        table_num(sb, s->mean.rmse, 10, 3);
        table_num(sb, s->mean.mape, 8, 2);
        table_num(sb, s->mean.smape, 8, 2);
        table_num(sb, s->mean.mase, 8, 3);
        table_num(sb, s->median.mase, 8, 3);
        table_num(sb, s->mean.pinball, 10, 3);
        for (size_t j = 0; shape && j < shape->nint; j++) table_num(sb, j < s->mean.nint ? s->mean.coverage[j] : NAN, 7, 3);
        table_num(sb, s->rank, 6, 2);
        ssmd_sb_appendf(sb, "\n");
    }
    ssmd_sb_appendf(sb, "\n(means across series; MASE~ is the median; rank is the mean rank by MASE, 1 = best)\n");

    /* MASE by step, at most 12 columns */
    size_t hst = (H + 11) / 12;
    ssmd_sb_appendf(sb, "\nMASE by forecast step (mean across series)\n%-*s", (int)mw, "model");
    for (size_t h = 0; h < H; h += hst) ssmd_sb_appendf(sb, " %7zu", h + 1);
    ssmd_sb_appendf(sb, "\n");
    for (size_t k = 0; k < M; k++) {
        const ssm_bt_summary *s = &c->summary[k];
        ssmd_sb_appendf(sb, "%-*.*s", (int)mw, (int)mw, c->models[k]);
        for (size_t h = 0; h < H; h += hst)
            table_num(sb, s->by_step_mean && h < s->horizon ? s->by_step_mean[h].mase : NAN, 7, 3);
        ssmd_sb_appendf(sb, "\n");
    }

    int per = c->per_series < 0 ? c->nseries <= 20 : c->per_series;
    if (per) {
        size_t sw = 10;
        for (size_t s = 0; s < c->nseries; s++)
            if (strlen(c->series[s].name) > sw) sw = strlen(c->series[s].name);
        if (sw > 32) sw = 32;
        ssmd_sb_appendf(sb, "\nper series\n%-*s %-*s %10s %10s %8s %8s %10s", (int)sw, "series", (int)mw, "model",
                        "MAE", "RMSE", "sMAPE", "MASE", "pinball");
        for (size_t j = 0; shape && j < shape->nint; j++) {
            char key[32];
            snprintf(key, sizeof key, "cov%g", round(shape->nominal[j] * 1000.0) / 10.0);
            ssmd_sb_appendf(sb, " %7s", key);
        }
        ssmd_sb_appendf(sb, "  chosen\n");
        for (size_t s = 0; s < c->nseries; s++)
            for (size_t k = 0; k < M; k++) {
                size_t j = s * M + k;
                const ssm_backtest *bt = &c->grid[j];
                ssmd_sb_appendf(sb, "%-*.*s %-*.*s", (int)sw, (int)sw, c->series[s].name, (int)mw, (int)mw,
                                c->models[k]);
                if (c->ran[j] < 0) {
                    ssmd_sb_appendf(sb, " failed: %s\n", c->errors[j].message);
                    continue;
                }
                table_num(sb, bt->overall.mae, 10, 3);
                table_num(sb, bt->overall.rmse, 10, 3);
                table_num(sb, bt->overall.smape, 8, 2);
                table_num(sb, bt->overall.mase, 8, 3);
                table_num(sb, bt->overall.pinball, 10, 3);
                for (size_t i = 0; shape && i < shape->nint; i++)
                    table_num(sb, i < bt->overall.nint ? bt->overall.coverage[i] : NAN, 7, 3);
                ssmd_sb_appendf(sb, "  %s%s\n", strcmp(bt->chosen, c->models[k]) ? bt->chosen : "",
                                bt->nfailed ? " (some origins failed)" : "");
            }
    }
}

/* ---- --out: per-series detail ------------------------------------------------------ */

static int mkdir_p(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0777) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(path, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

static int write_detail(bt_cmd *c) {
    if (mkdir_p(c->out_dir) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "could not create directory \"%s\": %s", c->out_dir, strerror(errno));
        return -1;
    }
    size_t M = c->nmodels;
    for (size_t s = 0; s < c->nseries; s++) {
        char path[4096], safe[256];
        snprintf(safe, sizeof safe, "%s", c->series[s].name);
        for (char *p = safe; *p; p++)
            if (*p == '/' || *p == '\\') *p = '_';
        snprintf(path, sizeof path, "%s/%s.csv", c->out_dir, safe);
        FILE *fp = fopen(path, "w");
        if (!fp) {
            ssmd_log(SSMD_LOG_ERROR, "could not write \"%s\": %s", path, strerror(errno));
            return -1;
        }
        /* the header names the quantile levels of the first model that ran */
        const ssm_backtest *ref = NULL;
        for (size_t k = 0; k < M && !ref; k++)
            if (c->ran[s * M + k] > 0) ref = &c->grid[s * M + k];
        fprintf(fp, "model,origin,origin_ts,step,ts,actual,mean");
        for (size_t j = 0; ref && j < ref->nq; j++) fprintf(fp, ",q%g", ref->levels[j]);
        fprintf(fp, "\n");
        for (size_t k = 0; k < M; k++) {
            const ssm_backtest *bt = &c->grid[s * M + k];
            if (c->ran[s * M + k] < 0) continue;
            for (size_t i = 0; i < bt->norigins; i++)
                for (size_t h = 0; h < bt->horizon; h++) {
                    char ots[40], ts[40];
                    ssmd_format_timestamp(bt->origin_ts[i], ots, sizeof ots);
                    ssmd_format_timestamp(ssm_freq_advance(c->series[s].y.freq, bt->origin_ts[i], (long)h + 1), ts,
                                          sizeof ts);
                    fprintf(fp, "\"%s\",%zu,%s,%zu,%s,%.17g,%.17g", c->models[k], i + 1, ots, h + 1, ts,
                            bt->actual[i * bt->horizon + h], bt->mean[i * bt->horizon + h]);
                    for (size_t j = 0; j < bt->nq; j++) fprintf(fp, ",%.17g", bt->q[(i * bt->horizon + h) * bt->nq + j]);
                    fprintf(fp, "\n");
                }
        }
        if (fclose(fp) != 0) {
            ssmd_log(SSMD_LOG_ERROR, "could not write \"%s\": %s", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* ---- --plot -------------------------------------------------------------------------- */

static int write_plot(bt_cmd *c) {
    size_t s = 0, M = c->nmodels;
    if (c->plot_series) {
        for (s = 0; s < c->nseries; s++)
            if (strcmp(c->series[s].name, c->plot_series) == 0) break;
        if (s == c->nseries) {
            ssmd_log(SSMD_LOG_ERROR, "--plot-series \"%s\" is not among the backtested series", c->plot_series);
            return -1;
        }
    }
    const char *names[MAX_MODELS];
    int bands[MAX_MODELS];
    size_t first_model = M;
    for (size_t k = 0; k < M; k++) {
        names[k] = c->models[k];
        int baseline = 0;
        for (size_t b = 0; b < 3; b++) baseline |= strcmp(c->models[k], baseline_specs[b]) == 0;
        if (!baseline && first_model == M && c->ran[s * M + k] > 0) first_model = k;
        bands[k] = 0;
    }
    /* intervals for the first non-baseline model (else the first that ran): more bands
     * would hide each other */
    if (first_model == M)
        for (size_t k = 0; k < M && first_model == M; k++)
            if (c->ran[s * M + k] > 0) first_model = k;
    if (first_model < M) bands[first_model] = 1;
    size_t orig[64], norig = 0, N = 0;
    for (size_t k = 0; k < M && !N; k++) N = c->grid[s * M + k].norigins;
    if (c->nplot_origins) {
        norig = c->nplot_origins;
        memcpy(orig, c->plot_origins, norig * sizeof *orig);
    } else {
        norig = N < 3 ? N : 3;
        for (size_t i = 0; i < norig; i++) orig[i] = N - norig + i;
    }
    char title[512];
    snprintf(title, sizeof title, "ssmd backtest: %s (%zu origins drawn of %zu)", c->series[s].name, norig, N);
    ssmd_plot_spec p = {
        .title = title,
        .series = &c->series[s].y,
        .nmodels = M,
        .names = names,
        .bt = c->grid + s * M,
        .bands = bands,
        .origins = orig,
        .norigins = norig,
        .summary = c->summary,
        .metric = c->plot_metric,
    };
    ssmd_strbuf sb = {0};
    char err[512];
    if (ssmd_plot_backtest_svg(&p, &sb, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "--plot: %s", err);
        ssmd_sb_free(&sb);
        return -1;
    }
    FILE *fp = fopen(c->plot, "w");
    int rc = 0;
    if (!fp || fwrite(ssmd_sb_str(&sb), 1, sb.len, fp) != sb.len) rc = -1;
    if (fp && fclose(fp) != 0) rc = -1;
    if (rc) ssmd_log(SSMD_LOG_ERROR, "could not write \"%s\": %s", c->plot, strerror(errno));
    ssmd_sb_free(&sb);
    return rc;
}

/* ---- ssm.backtests ----------------------------------------------------------------- */

static void num_param(char *buf, size_t len, double v, const char **param) {
    if (isfinite(v)) {
        snprintf(buf, len, "%.17g", v);
        *param = buf;
    } else {
        *param = NULL;
    }
}

static double coverage_at(const ssm_bt_scores *s, double nominal, int width) {
    for (size_t j = 0; j < s->nint; j++)
        if (fabs(s->nominal[j] - nominal) < 1e-9) return width ? s->width[j] : s->coverage[j];
    return NAN;
}

static int insert_row(PGconn *conn, const char *run_id, const char *scope, const char *series, const char *model,
                      const char *chosen, const ssm_backtest_opts *o, int season, size_t nseries,
                      size_t nfailed, const ssm_bt_scores *sc, double rank, const ssm_bt_scores *by, size_t H,
                      char *err, size_t errlen) {
    char b[32][40];
    const char *pv[32];
    int n = 0;
    pv[n++] = run_id;
    pv[n++] = scope;
    pv[n++] = series;
    pv[n++] = model;
    pv[n++] = chosen;
    snprintf(b[n], 40, "%zu", o->horizon), pv[n] = b[n], n++;
    snprintf(b[n], 40, "%zu", o->origins), pv[n] = b[n], n++;
    snprintf(b[n], 40, "%zu", o->step ? o->step : o->horizon), pv[n] = b[n], n++;
    if (o->window) snprintf(b[n], 40, "%zu", o->window), pv[n] = b[n];
    else pv[n] = NULL;
    n++;
    pv[n++] = o->refit_once ? "once" : "every";
    if (season > 0) snprintf(b[n], 40, "%d", season), pv[n] = b[n];
    else pv[n] = NULL;
    n++;
    ssmd_strbuf q = {0}, js = {0};
    ssmd_sb_appendf(&q, "{");
    for (size_t j = 0; j < o->nq; j++) ssmd_sb_appendf(&q, "%s%.17g", j ? "," : "", o->levels[j]);
    ssmd_sb_appendf(&q, "}");
    pv[n++] = ssmd_sb_str(&q);
    snprintf(b[n], 40, "%zu", nseries), pv[n] = b[n], n++;
    snprintf(b[n], 40, "%zu", sc->n), pv[n] = b[n], n++;
    snprintf(b[n], 40, "%zu", nfailed), pv[n] = b[n], n++;
    double vals[] = {sc->mae, sc->rmse, sc->mape, sc->smape, sc->mase, sc->pinball, coverage_at(sc, 0.8, 0),
                     coverage_at(sc, 0.8, 1), coverage_at(sc, 0.95, 0), coverage_at(sc, 0.95, 1), rank};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++, n++) num_param(b[n], 40, vals[i], &pv[n]);
    if (by) {
        ssmd_sb_appendf(&js, "[");
        for (size_t h = 0; h < H; h++) {
            ssmd_sb_appendf(&js, "%s{\"step\":%zu,", h ? "," : "", h + 1);
            json_scores(&js, &by[h], "");
            ssmd_sb_appendf(&js, "}");
        }
        ssmd_sb_appendf(&js, "]");
        pv[n++] = ssmd_sb_str(&js);
    } else {
        pv[n++] = NULL;
    }
    static const char *sql =
        "INSERT INTO ssm.backtests (run_id, scope, series_id, series_name, model, chosen, horizon, origins, step,"
        " train_window, refit, season, quantiles, n_series, n_points, failed_origins, mae, rmse, mape, smape, mase,"
        " pinball, coverage_80, width_80, coverage_95, width_95, rank, by_step)"
        " VALUES ($1, $2, (SELECT id FROM ssm.series WHERE name = $3), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
        " $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27::jsonb)";
    int rc = q.failed || js.failed ? -1 : ssmd_db_execp(conn, sql, n, pv, err, errlen);
    if (q.failed || js.failed) snprintf(err, errlen, "out of memory");
    ssmd_sb_free(&q);
    ssmd_sb_free(&js);
    return rc;
}

static int store_results(bt_cmd *c, PGconn *conn, const ssm_backtest_opts *o) {
    char err[1024];
    if (ssmd_db_exec(conn, "BEGIN", err, sizeof err) != 0) goto fail;
    PGresult *res = PQexec(conn, "SELECT nextval('ssm.backtest_run_id')");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ssmd_db_error(conn, res, "could not start a backtest run record", err, sizeof err);
        PQclear(res);
        goto fail;
    }
    char run_id[32];
    snprintf(run_id, sizeof run_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    size_t M = c->nmodels;
    for (size_t k = 0; k < M; k++) {
        const ssm_bt_summary *s = &c->summary[k];
        if (insert_row(conn, run_id, "mean", NULL, c->models[k], NULL, o, c->season, s->nseries, 0, &s->mean, s->rank,
                       s->by_step_mean, s->horizon, err, sizeof err) ||
            insert_row(conn, run_id, "median", NULL, c->models[k], NULL, o, c->season, s->nseries, 0, &s->median, NAN,
                       NULL, 0, err, sizeof err))
            goto fail;
    }
    for (size_t s = 0; s < c->nseries; s++)
        for (size_t k = 0; k < M; k++) {
            size_t j = s * M + k;
            if (c->ran[j] < 0) continue;
            const ssm_backtest *bt = &c->grid[j];
            if (insert_row(conn, run_id, "series", c->series[s].name, c->models[k], bt->chosen, o, bt->season, 1,
                           bt->nfailed, &bt->overall, NAN, bt->by_step, bt->horizon, err, sizeof err))
                goto fail;
        }
    if (ssmd_db_exec(conn, "COMMIT", err, sizeof err) != 0) goto fail;
    ssmd_log(SSMD_LOG_INFO, "backtest stored in ssm.backtests as run %s", run_id);
    return 0;
fail:
    ssmd_log(SSMD_LOG_ERROR, "could not store the backtest: %s", err);
    PGresult *r = PQexec(conn, "ROLLBACK");
    PQclear(r);
    return -1;
}

/* ---- the command ----------------------------------------------------------------- */

static void cleanup(bt_cmd *c) {
    for (size_t s = 0; s < c->nseries; s++) {
        ssm_series_free(&c->series[s].y);
        free(c->series[s].name);
    }
    if (c->grid)
        for (size_t j = 0; j < c->nseries * c->nmodels; j++) ssm_backtest_free(&c->grid[j]);
    for (size_t k = 0; k < c->nmodels; k++) ssm_bt_summary_free(&c->summary[k]);
    free(c->series);
    free(c->grid);
    free(c->errors);
    free(c->ran);
    if (c->have_cfg) ssmd_config_free(&c->cfg);
}

int ssmd_cmd_backtest(int argc, char **argv, const ssmd_cli *cli) {
    bt_cmd *c = calloc(1, sizeof *c);
    if (!c) {
        ssmd_log(SSMD_LOG_ERROR, "out of memory");
        return 1;
    }
    int status = 1;
    PGconn *conn = NULL;
    int pr = parse_args(c, argc, argv);
    if (pr == 1) {
        usage(stdout);
        free(c);
        return 0;
    }
    if (pr == 2) {
        usage(stderr);
        free(c);
        return 2;
    }
    if (c->ncsv ? load_csv(c) : load_db(c, cli, &conn)) goto done;
    if (c->nseries == 0) {
        ssmd_log(SSMD_LOG_ERROR, "backtest: no series to evaluate");
        goto done;
    }
    /* models: as given, else the configured ones; then the baselines that are missing */
    if (!c->nmodels && c->have_cfg)
        for (size_t s = 0; s < c->nseries; s++) {
            const ssmd_series_cfg *sc = c->series[s].sc;
            for (size_t m = 0; sc && m < sc->nmodels; m++) {
                int seen = 0;
                for (size_t k = 0; k < c->nmodels; k++) seen |= strcmp(c->models[k], sc->models[m]) == 0;
                if (!seen && c->nmodels < MAX_MODELS - 3) snprintf(c->models[c->nmodels++], 256, "%s", sc->models[m]);
            }
        }
    for (size_t b = 0; b < 3; b++) {
        int seen = 0;
        for (size_t k = 0; k < c->nmodels; k++) seen |= strcmp(c->models[k], baseline_specs[b]) == 0;
        if (!seen) snprintf(c->models[c->nmodels++], 256, "%s", baseline_specs[b]);
    }
    /* a bad spec is a usage error before any work */
    for (size_t k = 0; k < c->nmodels; k++) {
        ssm_error e;
        ssm_model_opts mo;
        memset(&mo, 0, sizeof mo);
        ssm_model *m = ssm_model_create(c->models[k], &mo, &e);
        if (!m) {
            ssmd_log_error("--model", &e);
            status = 2;
            goto done;
        }
        ssm_model_free(m);
    }

    ssm_backtest_opts o;
    memset(&o, 0, sizeof o);
    const bt_series *s0 = &c->series[0];
    int season0 = s0->season ? s0->season : ssm_freq_season(s0->y.freq);
    o.horizon = c->horizon ? c->horizon : s0->sc && s0->sc->horizon > 0 ? (size_t)s0->sc->horizon
                                         : season0 > 1 ? (size_t)season0 : 10;
    o.origins = c->origins;
    o.step = c->step ? c->step : o.horizon;
    o.window = c->window;
    o.refit_once = c->refit_once;
    o.levels = c->nq ? c->levels : ssm_backtest_default_levels;
    o.nq = c->nq ? c->nq : 5;
    o.model_opts.threads = 1; /* the pool already uses every core */
    o.model_opts.device = c->have_cfg ? c->cfg.device : NULL;

    size_t total = c->nseries * c->nmodels;
    c->grid = calloc(total, sizeof *c->grid);
    c->errors = calloc(total, sizeof *c->errors);
    c->ran = calloc(total, sizeof *c->ran);
    if (!c->grid || !c->errors || !c->ran || run_pool(c, &o) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "out of memory");
        goto done;
    }
    size_t nok = 0;
    for (size_t k = 0; k < c->nmodels; k++) {
        size_t nfail = 0, first = 0;
        for (size_t s = 0; s < c->nseries; s++)
            if (c->ran[s * c->nmodels + k] < 0 && nfail++ == 0) first = s;
        nok += c->nseries - nfail;
        if (nfail) {
            ssm_error *e = &c->errors[first * c->nmodels + k];
            ssmd_log(SSMD_LOG_WARNING, "model \"%s\" failed on %zu of %zu series; first, \"%s\": %s%s%s%s",
                     c->models[k], nfail, c->nseries, c->series[first].name, e->message, e->detail[0] ? " (" : "",
                     e->detail, e->detail[0] ? ")" : "");
            if (e->hint[0]) ssmd_log(SSMD_LOG_WARNING, "hint: %s", e->hint);
        }
    }
    ssm_error e;
    if (ssm_backtest_summarise(c->grid, c->nseries, c->nmodels, c->summary, &e) != SSM_OK) {
        ssmd_log_error("backtest", &e);
        goto done;
    }

    ssmd_strbuf sb = {0};
    if (strcmp(c->format, "json") == 0) emit_json(c, &o, &sb);
    else if (strcmp(c->format, "csv") == 0) emit_csv(c, &sb);
    else emit_table(c, &o, &sb);
    if (sb.failed) {
        ssmd_log(SSMD_LOG_ERROR, "out of memory");
        ssmd_sb_free(&sb);
        goto done;
    }
    fwrite(ssmd_sb_str(&sb), 1, sb.len, stdout);
    fflush(stdout);
    ssmd_sb_free(&sb);

    status = nok ? 0 : 1;
    if (c->out_dir && write_detail(c)) status = 1;
    if (c->plot && write_plot(c)) status = 1;
    if (conn && c->store && store_results(c, conn, &o)) status = 1;
done:
    if (conn) PQfinish(conn);
    cleanup(c);
    free(c);
    return status;
}
