/*
 * daemon/cmd_model.c — the database-free subcommands: `ssmd forecast`, `ssmd fit` and
 * `ssmd train`. Each reads a ts,value CSV, builds a model from a spec and prints a table,
 * CSV or JSON. They share option parsing and output code so the three stay consistent.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "csvio.h"
#include "log.h"
#include "model.h"
#include "strbuf.h"

#define MAX_QUANTILES 32

typedef struct model_args {
    const char *csv;
    const char *model;
    const char *format;
    const char *checkpoint;
    const char *save;
    const char *device;
    int horizon;
    int season;
    int repeat;
    int threads;
    int max_seconds;
    unsigned long long seed;
    int has_freq;
    ssm_freq freq;
    size_t nq;
    double q[MAX_QUANTILES];
} model_args;

static int parse_quantiles(const char *text, double *q, size_t *nq) {
    *nq = 0;
    const char *p = text;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !(v > 0 && v < 1) || *nq == MAX_QUANTILES || (*nq && v <= q[*nq - 1])) return -1;
        q[(*nq)++] = v;
        p = end;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return *nq ? 0 : -1;
}

static int parse_int(const char *text, int lo, int hi, int *out) {
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static const char *forecast_help =
    "usage: ssmd forecast --csv FILE [--model SPEC] [--horizon H] [options]\n\n"
    "Fits SPEC to the series in FILE (a ts,value CSV with a header; an empty value is a\n"
    "missing observation) and prints the forecast for steps 1..H. No database is used.\n\n"
    "  --csv FILE          input series (\"-\" reads standard input)\n"
    "  --model SPEC        model spec (default local_level); `ssmd --help` lists them\n"
    "  --horizon H         steps ahead (default: 2 seasons, or 10 without a season)\n"
    "  --frequency F       grid step (5m, 1h, 1d, 1mo, 1q, 1y, ...); inferred when omitted\n"
    "  --season S          season length (default: from the frequency)\n"
    "  --quantiles LIST    quantile levels, ascending (default 0.05,0.5,0.95)\n"
    "  --format FMT        table (default), csv or json\n"
    "  --checkpoint FILE   neural models: load this checkpoint instead of training\n"
    "  --device D          neural models: auto, cpu or cuda\n"
    "  --seed N            neural models: training seed\n"
    "  --threads N         threads a fit may use (default: all cores)\n";

static const char *fit_help =
    "usage: ssmd fit --csv FILE --model SPEC [--season S] [--format json|table] [--repeat N]\n\n"
    "Fits SPEC to the series in FILE and prints the parameters (statsmodels' names), the\n"
    "log-likelihood, AIC, AICc, BIC, convergence and fit_seconds (the fit alone, measured\n"
    "in-process; with --repeat N the fit is done N times and the median is reported).\n\n"
    "  --csv FILE, --model SPEC, --frequency F, --season S, --threads N, --seed N as for forecast\n"
    "  --format FMT        json (default) or table\n"
    "  --repeat N          fit N times, report the median time (default 1)\n";

static const char *train_help =
    "usage: ssmd train --csv FILE --model SPEC --save CKPT [options]\n\n"
    "Trains a neural model (mamba, s4d, with options in the spec) on FILE and writes its\n"
    "checkpoint to CKPT, for `ssmd forecast --checkpoint CKPT`.\n\n"
    "  --csv FILE, --model SPEC, --frequency F, --season S, --quantiles LIST as for forecast\n"
    "  --save CKPT         where to write the checkpoint\n"
    "  --seed N, --threads N, --device D, --max-seconds N (training time budget)\n";

/* Parses the options the three commands share; returns 0, 1 (help printed) or 2. */
static int parse_model_args(int argc, char **argv, const char *help, model_args *a) {
    static const struct option opts[] = {
        {"csv", required_argument, 0, 'c'},       {"model", required_argument, 0, 'm'},
        {"horizon", required_argument, 0, 'H'},   {"frequency", required_argument, 0, 'f'},
        {"season", required_argument, 0, 's'},    {"quantiles", required_argument, 0, 'q'},
        {"format", required_argument, 0, 'F'},    {"checkpoint", required_argument, 0, 'k'},
        {"save", required_argument, 0, 'S'},      {"device", required_argument, 0, 'd'},
        {"seed", required_argument, 0, 'r'},      {"threads", required_argument, 0, 't'},
        {"repeat", required_argument, 0, 'R'},    {"max-seconds", required_argument, 0, 'x'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0},
    };
    memset(a, 0, sizeof *a);
    a->model = "local_level";
    a->repeat = 1;
    a->q[0] = 0.05, a->q[1] = 0.5, a->q[2] = 0.95, a->nq = 3;
    optind = 0; /* GNU getopt: full re-initialisation */
    int c;
    ssm_error e = {0};
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': a->csv = optarg; break;
        case 'm': a->model = optarg; break;
        case 'F': a->format = optarg; break;
        case 'k': a->checkpoint = optarg; break;
        case 'S': a->save = optarg; break;
        case 'd': a->device = optarg; break;
        case 'H':
            if (parse_int(optarg, 1, 1000000, &a->horizon)) {
                fprintf(stderr, "ssmd %s: --horizon must be a whole number >= 1, not \"%s\"\n", argv[0], optarg);
                return 2;
            }
            break;
        case 's':
            if (parse_int(optarg, 1, 100000, &a->season)) {
                fprintf(stderr, "ssmd %s: --season must be a whole number >= 1, not \"%s\"\n", argv[0], optarg);
                return 2;
            }
            break;
        case 't':
            if (parse_int(optarg, 0, 1024, &a->threads)) {
                fprintf(stderr, "ssmd %s: --threads must be a whole number, not \"%s\"\n", argv[0], optarg);
                return 2;
            }
            break;
        case 'R':
            if (parse_int(optarg, 1, 100000, &a->repeat)) {
                fprintf(stderr, "ssmd %s: --repeat must be a whole number >= 1, not \"%s\"\n", argv[0], optarg);
                return 2;
            }
            break;
        case 'x':
            if (parse_int(optarg, 1, 86400 * 7, &a->max_seconds)) {
                fprintf(stderr, "ssmd %s: --max-seconds must be a whole number >= 1, not \"%s\"\n", argv[0], optarg);
                return 2;
            }
            break;
        case 'r': a->seed = strtoull(optarg, NULL, 10); break;
        case 'f':
            if (ssm_freq_parse(optarg, &a->freq, &e) != SSM_OK) {
                fprintf(stderr, "ssmd %s: --frequency: %s\n", argv[0], e.message);
                if (e.hint[0]) fprintf(stderr, "HINT: %s\n", e.hint);
                return 2;
            }
            a->has_freq = 1;
            break;
        case 'q':
            if (parse_quantiles(optarg, a->q, &a->nq)) {
                fprintf(stderr, "ssmd %s: --quantiles must be ascending levels in (0,1) separated by commas, not \"%s\"\n",
                        argv[0], optarg);
                return 2;
            }
            break;
        case 'h': fputs(help, stdout); return 1;
        default: fputs(help, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ssmd %s: unexpected argument \"%s\"\n", argv[0], argv[optind]);
        return 2;
    }
    if (!a->csv) {
        fprintf(stderr, "ssmd %s: --csv FILE is required\n%s", argv[0], help);
        return 2;
    }
    return 0;
}

static double monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static void opts_from_args(const model_args *a, ssm_model_opts *mo) {
    memset(mo, 0, sizeof *mo);
    mo->season = a->season;
    mo->threads = a->threads;
    mo->seed = a->seed;
    mo->device = a->device;
    mo->checkpoint = a->checkpoint;
    mo->max_seconds = a->max_seconds;
}

/* Reads the CSV and fits the model; on failure logs and returns NULL. fit_seconds gets
 * the median of `repeat` fits. */
static ssm_model *load_and_fit(const model_args *a, const char *cmd, ssm_series *y, double *fit_seconds) {
    char err[1024];
    if (ssmd_csv_read(a->csv, a->csv, a->has_freq ? &a->freq : NULL, y, err, sizeof err)) {
        ssmd_log(SSMD_LOG_ERROR, "%s: %s", cmd, err);
        return NULL;
    }
    ssm_model_opts mo;
    opts_from_args(a, &mo);
    double *times = calloc((size_t)a->repeat, sizeof *times);
    ssm_model *m = NULL;
    ssm_error e = {0};
    for (int r = 0; r < a->repeat && times; r++) {
        ssm_model_free(m);
        m = ssm_model_create(a->model, &mo, &e);
        if (!m) break;
        double t0 = monotonic_seconds();
        int rc = ssm_model_fit(m, y, &e);
        times[r] = monotonic_seconds() - t0;
        if (rc != SSM_OK) {
            ssm_model_free(m);
            m = NULL;
            break;
        }
    }
    if (!m) {
        char ctx[300];
        snprintf(ctx, sizeof ctx, "%s: model %s on %s", cmd, a->model, a->csv);
        if (!times) ssm_error_set(&e, SSM_ENOMEM, "out of memory");
        ssmd_log_error(ctx, &e);
        free(times);
        ssm_series_free(y);
        return NULL;
    }
    qsort(times, (size_t)a->repeat, sizeof *times, cmp_double);
    *fit_seconds = times[a->repeat / 2];
    free(times);
    return m;
}

static void json_fit_fields(ssmd_strbuf *sb, const ssm_model *m, const ssm_series *y) {
    ssm_fit_info info;
    ssm_model_info(m, &info);
    char freq[16];
    ssm_freq_format(y->freq, freq, sizeof freq);
    ssmd_sb_appendf(sb, "  \"model\": ");
    ssmd_sb_json_string(sb, m->spec);
    ssmd_sb_appendf(sb, ",\n  \"chosen\": ");
    ssmd_sb_json_string(sb, info.chosen);
    ssmd_sb_appendf(sb, ",\n  \"frequency\": \"%s\",\n  \"n\": %zu,\n  \"nobs\": %zu,\n  \"params\": {", freq, y->n,
                    info.nobs);
    for (size_t i = 0; i < info.nparams; i++) {
        ssmd_sb_appendf(sb, "%s\n    ", i ? "," : "");
        ssmd_sb_json_string(sb, info.params[i].name);
        ssmd_sb_appendf(sb, ": ");
        ssmd_sb_json_number(sb, info.params[i].value);
    }
    ssmd_sb_appendf(sb, "%s},\n  \"loglik\": ", info.nparams ? "\n  " : "");
    ssmd_sb_json_number(sb, info.loglik);
    ssmd_sb_appendf(sb, ",\n  \"aic\": ");
    ssmd_sb_json_number(sb, info.aic);
    ssmd_sb_appendf(sb, ",\n  \"aicc\": ");
    ssmd_sb_json_number(sb, info.aicc);
    ssmd_sb_appendf(sb, ",\n  \"bic\": ");
    ssmd_sb_json_number(sb, info.bic);
    ssmd_sb_appendf(sb, ",\n  \"converged\": %s,\n  \"iterations\": %d", info.converged ? "true" : "false",
                    info.iterations);
}

static void print_fit_table(const ssm_model *m, double fit_seconds) {
    ssm_fit_info info;
    ssm_model_info(m, &info);
    printf("model       %s\n", m->spec);
    if (strcmp(info.chosen, m->spec) != 0) printf("chosen      %s\n", info.chosen);
    for (size_t i = 0; i < info.nparams; i++) printf("%-22s %.10g\n", info.params[i].name, info.params[i].value);
    printf("loglik      %.6f\naic         %.6f\naicc        %.6f\nbic         %.6f\n", info.loglik, info.aic, info.aicc,
           info.bic);
    printf("converged   %s (%d iterations)\nnobs        %zu\nfit time    %.6f s\n", info.converged ? "yes" : "no",
           info.iterations, info.nobs, fit_seconds);
}

int ssmd_cmd_forecast(int argc, char **argv, const ssmd_cli *cli) {
    (void)cli;
    model_args a;
    int rc = parse_model_args(argc, argv, forecast_help, &a);
    if (rc) return rc == 1 ? 0 : rc;
    const char *fmt = a.format ? a.format : "table";
    if (strcmp(fmt, "table") && strcmp(fmt, "csv") && strcmp(fmt, "json")) {
        fprintf(stderr, "ssmd forecast: --format must be table, csv or json, not \"%s\"\n", fmt);
        return 2;
    }
    ssm_series y;
    double fit_seconds = 0;
    ssm_model *m = load_and_fit(&a, "forecast", &y, &fit_seconds);
    if (!m) return 1;
    if (a.horizon == 0) {
        int s = a.season ? a.season : ssm_freq_season(y.freq);
        a.horizon = s > 1 ? 2 * s : 10;
    }
    ssm_forecast f;
    ssm_error e = {0};
    if (ssm_forecast_init(&f, (size_t)a.horizon, a.q, a.nq, &e) != SSM_OK || ssm_model_forecast(m, &f, &e) != SSM_OK) {
        ssmd_log_error("forecast", &e);
        ssm_forecast_free(&f);
        ssm_model_free(m);
        ssm_series_free(&y);
        return 1;
    }
    ssmd_strbuf sb = {0};
    char ts[40];
    if (strcmp(fmt, "json") == 0) {
        ssmd_sb_appendf(&sb, "{\n");
        json_fit_fields(&sb, m, &y);
        ssmd_sb_appendf(&sb, ",\n  \"fit_seconds\": %.6f,\n  \"horizon\": %d,\n  \"forecast\": [", fit_seconds, a.horizon);
        for (size_t h = 0; h < f.horizon; h++) {
            ssmd_format_timestamp(f.ts[h], ts, sizeof ts);
            ssmd_sb_appendf(&sb, "%s\n    {\"step\": %zu, \"ts\": \"%s\", \"mean\": ", h ? "," : "", h + 1, ts);
            ssmd_sb_json_number(&sb, f.mean[h]);
            ssmd_sb_appendf(&sb, ", \"sd\": ");
            ssmd_sb_json_number(&sb, f.sd[h]);
            ssmd_sb_appendf(&sb, ", \"quantiles\": {");
            for (size_t j = 0; j < f.nq; j++) {
                ssmd_sb_appendf(&sb, "%s\"%g\": ", j ? ", " : "", f.levels[j]);
                ssmd_sb_json_number(&sb, f.q[h * f.nq + j]);
            }
            ssmd_sb_appendf(&sb, "}}");
        }
        ssmd_sb_appendf(&sb, "\n  ]\n}\n");
    } else if (strcmp(fmt, "csv") == 0) {
        ssmd_sb_appendf(&sb, "step,ts,mean,sd");
        for (size_t j = 0; j < f.nq; j++) ssmd_sb_appendf(&sb, ",q%g", f.levels[j]);
        ssmd_sb_appendf(&sb, "\n");
        for (size_t h = 0; h < f.horizon; h++) {
            ssmd_format_timestamp(f.ts[h], ts, sizeof ts);
            ssmd_sb_appendf(&sb, "%zu,%s,%.10g,%.10g", h + 1, ts, f.mean[h], f.sd[h]);
            for (size_t j = 0; j < f.nq; j++) ssmd_sb_appendf(&sb, ",%.10g", f.q[h * f.nq + j]);
            ssmd_sb_appendf(&sb, "\n");
        }
    } else {
        ssm_fit_info info;
        ssm_model_info(m, &info);
        ssmd_sb_appendf(&sb, "model %s", m->spec);
        if (strcmp(info.chosen, m->spec) != 0) ssmd_sb_appendf(&sb, " -> %s", info.chosen);
        ssmd_sb_appendf(&sb, " on %s (%zu points), loglik %.4f, AICc %.4f\n", a.csv, y.n, info.loglik, info.aicc);
        ssmd_sb_appendf(&sb, "%5s  %-20s  %12s  %12s", "step", "ts", "mean", "sd");
        for (size_t j = 0; j < f.nq; j++) {
            char lab[32];
            snprintf(lab, sizeof lab, "q%g", f.levels[j]);
            ssmd_sb_appendf(&sb, "  %12s", lab);
        }
        ssmd_sb_appendf(&sb, "\n");
        for (size_t h = 0; h < f.horizon; h++) {
            ssmd_format_timestamp(f.ts[h], ts, sizeof ts);
            ssmd_sb_appendf(&sb, "%5zu  %-20s  %12.4f  %12.4f", h + 1, ts, f.mean[h], f.sd[h]);
            for (size_t j = 0; j < f.nq; j++) ssmd_sb_appendf(&sb, "  %12.4f", f.q[h * f.nq + j]);
            ssmd_sb_appendf(&sb, "\n");
        }
    }
    fputs(ssmd_sb_str(&sb), stdout);
    ssmd_sb_free(&sb);
    ssm_forecast_free(&f);
    ssm_model_free(m);
    ssm_series_free(&y);
    return 0;
}

int ssmd_cmd_fit(int argc, char **argv, const ssmd_cli *cli) {
    (void)cli;
    model_args a;
    int rc = parse_model_args(argc, argv, fit_help, &a);
    if (rc) return rc == 1 ? 0 : rc;
    const char *fmt = a.format ? a.format : "json";
    if (strcmp(fmt, "table") && strcmp(fmt, "json")) {
        fprintf(stderr, "ssmd fit: --format must be json or table, not \"%s\"\n", fmt);
        return 2;
    }
    ssm_series y;
    double fit_seconds = 0;
    ssm_model *m = load_and_fit(&a, "fit", &y, &fit_seconds);
    if (!m) return 1;
    if (strcmp(fmt, "json") == 0) {
        ssmd_strbuf sb = {0};
        ssmd_sb_appendf(&sb, "{\n");
        json_fit_fields(&sb, m, &y);
        ssmd_sb_appendf(&sb, ",\n  \"fit_seconds\": %.9f,\n  \"repeat\": %d\n}\n", fit_seconds, a.repeat);
        fputs(ssmd_sb_str(&sb), stdout);
        ssmd_sb_free(&sb);
    } else {
        print_fit_table(m, fit_seconds);
    }
    ssm_model_free(m);
    ssm_series_free(&y);
    return 0;
}

int ssmd_cmd_train(int argc, char **argv, const ssmd_cli *cli) {
    (void)cli;
    model_args a;
    int rc = parse_model_args(argc, argv, train_help, &a);
    if (rc) return rc == 1 ? 0 : rc;
    if (!a.save) {
        fprintf(stderr, "ssmd train: --save CKPT is required\n%s", train_help);
        return 2;
    }
    ssm_series y;
    double fit_seconds = 0;
    ssm_model *m = load_and_fit(&a, "train", &y, &fit_seconds);
    if (!m) return 1;
    /* The checkpoint is the family's own blob (no ssmd model header), so `forecast
     * --checkpoint` and other tools read it directly. */
    ssm_buffer buf = {0};
    ssm_error e = {0};
    int ok = 0;
    if (!m->ops->save) ssm_error_set(&e, SSM_EUNSUPPORTED, "model \"%s\" has no checkpoint", m->spec);
    else if (m->ops->save(m, &buf, &e) == SSM_OK) {
        FILE *f = fopen(a.save, "wb");
        if (!f) ssm_error_set(&e, SSM_EIO, "could not open \"%s\" for writing", a.save);
        else {
            ok = fwrite(buf.data, 1, buf.len, f) == buf.len;
            ok = (fclose(f) == 0) && ok;
            if (!ok) ssm_error_set(&e, SSM_EIO, "could not write \"%s\"", a.save);
        }
    }
    if (ok) {
        ssm_fit_info info;
        ssm_model_info(m, &info);
        printf("trained %s on %s (%zu points) in %.1f s; wrote %s (%zu bytes)\n", m->spec, a.csv, y.n, fit_seconds,
               a.save, buf.len);
    } else {
        ssmd_log_error("train", &e);
    }
    ssm_buffer_free(&buf);
    ssm_model_free(m);
    ssm_series_free(&y);
    return ok ? 0 : 1;
}
