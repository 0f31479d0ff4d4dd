/*
 * models/baselines.c — the benchmark forecasts every backtest reports: naive (random walk),
 * snaive (seasonal random walk) and drift (random walk with drift).
 *
 * They reproduce R's forecast::naive, forecast::snaive and forecast::rwf(drift = TRUE)
 * (forecast 8.x, lagwalk), whose intervals are those of Hyndman & Athanasopoulos, FPP
 * section 5.5: with lag m (1 for naive and drift) and residuals e_t = y_t - y_{t-m}
 * (minus the drift b for drift), the h-step forecast is y_{T+h-m(k)} (+ h b) and its
 * standard deviation
 *     naive, snaive:  sigma sqrt(k),  k = floor((h - 1) / m) + 1,  sigma^2 = mean(e^2)
 *     drift:          sqrt(sigma^2 h + h^2 se(b)^2),  sigma^2 = sum(e^2) / (K - 1),
 *                     b = mean(y_t - y_{t-1}), se(b) = sigma / sqrt(K)
 * over K residuals; quantiles are Gaussian around the point forecast. A missing value
 * (NaN) is replaced by the last observed value of the same season slot, as lagwalk does.
 *
 * `update` moves the state (the last observed value of each slot) forward without
 * touching sigma or b, which is what a "refit once" backtest and the daemon's incremental
 * cycle want. Not for: Box-Cox transforms or bootstrapped intervals (R's lambda/bootstrap).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

enum { BL_NAIVE, BL_SNAIVE, BL_DRIFT };

typedef struct baseline {
    int kind;
    int season_arg;   /* season given in the spec (snaive(season=7)); 0: from opts/freq */
    int fitted;
    size_t lag;       /* m: 1 for naive and drift, the season for snaive */
    double mse;       /* sigma^2 of the h = 1 forecast error */
    double b, b_se;   /* drift and its standard error (0 unless drift) */
    size_t nres;      /* residuals used for mse */
    size_t pos;       /* grid points seen: index of the next observation */
    double *ring;     /* lag values: ring[t % lag] is the last observed value of slot t % lag */
} baseline;

/* ---- little-endian serialization helpers --------------------------------------------- */

static int put_u64(ssm_buffer *b, uint64_t v) {
    uint8_t p[8];
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
    return ssm_buffer_append(b, p, 8);
}
static int put_f64(ssm_buffer *b, double x) {
    uint64_t v;
    memcpy(&v, &x, 8);
    return put_u64(b, v);
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static double get_f64(const uint8_t *p) {
    uint64_t v = get_u64(p);
    double x;
    memcpy(&x, &v, 8);
    return x;
}

/* ---- fit / update / forecast --------------------------------------------------------- */

static const char *kind_name(int kind) {
    return kind == BL_NAIVE ? "naive" : kind == BL_SNAIVE ? "snaive" : "drift";
}

/* Pushes one observation into the ring (a missing one leaves the slot's last value). */
static void ring_push(baseline *bl, double y) {
    if (!isnan(y)) bl->ring[bl->pos % bl->lag] = y;
    bl->pos++;
}

static int baseline_fit(ssm_model *m, const ssm_series *y, ssm_error *err) {
    /* y: n grid values (NaN = missing). Residuals e_t = y_t - (last observed value of the
     * slot of t - m), defined once the slot has been seen. */
    baseline *bl = m->impl;
    size_t lag = 1;
    if (bl->kind == BL_SNAIVE) {
        int s = bl->season_arg ? bl->season_arg : m->opts.season ? m->opts.season : ssm_freq_season(y->freq);
        lag = s > 1 ? (size_t)s : 1;
    }
    if (y->n <= lag)
        return ssm_error_set(err, SSM_ETOOSHORT, "series \"%s\" is too short for %s: %zu points, need more than %zu",
                             y->name ? y->name : "?", kind_name(bl->kind), y->n, lag);
    double *ring = malloc(lag * sizeof *ring);
    if (!ring) return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    for (size_t i = 0; i < lag; i++) ring[i] = NAN;
    free(bl->ring);
    bl->ring = ring;
    bl->lag = lag;
    bl->pos = 0;

    /* first pass: the lag differences, their sum and count */
    double sum = 0.0;
    size_t k = 0;
    for (size_t t = 0; t < y->n; t++) {
        double prev = bl->ring[t % lag];
        if (t >= lag && !isnan(y->values[t]) && !isnan(prev)) {
            sum += y->values[t] - prev;
            k++;
        }
        ring_push(bl, y->values[t]);
    }
    size_t need = bl->kind == BL_DRIFT ? 2 : 1;
    if (k < need)
        return ssm_error_set(err, SSM_ETOOSHORT, "series \"%s\" is too short for %s: %zu usable differences, need %zu",
                             y->name ? y->name : "?", kind_name(bl->kind), k, need);
    double b = bl->kind == BL_DRIFT ? sum / (double)k : 0.0;

    /* second pass: squared residuals around the drift (lm's residuals for drift) */
    for (size_t i = 0; i < lag; i++) bl->ring[i] = NAN;
    bl->pos = 0;
    double ss = 0.0;
    for (size_t t = 0; t < y->n; t++) {
        double prev = bl->ring[t % lag];
        if (t >= lag && !isnan(y->values[t]) && !isnan(prev)) {
            double e = y->values[t] - prev - b;
            ss += e * e;
        }
        ring_push(bl, y->values[t]);
    }
    bl->b = b;
    bl->nres = k;
    if (bl->kind == BL_DRIFT) {
        double sigma2 = ss / (double)(k - 1); /* lm's residual variance, 1 coefficient */
        bl->b_se = sqrt(sigma2 / (double)k);
        bl->mse = ss / (double)(k - (b != 0.0 ? 1 : 0)); /* as forecast.lagwalk divides */
    } else {
        bl->b_se = 0.0;
        bl->mse = ss / (double)k;
    }
    bl->fitted = 1;
    return SSM_OK;
}

static int baseline_update(ssm_model *m, const double *values, size_t n, ssm_error *err) {
    baseline *bl = m->impl;
    if (!bl->fitted) return ssm_error_set(err, SSM_EINVAL, "model \"%s\" is not fitted", m->spec);
    for (size_t i = 0; i < n; i++) ring_push(bl, values[i]);
    return SSM_OK;
}

static int baseline_forecast(const ssm_model *m, ssm_forecast *f, ssm_error *err) {
    const baseline *bl = m->impl;
    if (!bl->fitted) return ssm_error_set(err, SSM_EINVAL, "model \"%s\" is not fitted", m->spec);
    for (size_t h = 1; h <= f->horizon; h++) {
        /* target index pos - 1 + h falls in slot (pos - 1 + h) % lag; k full seasons ahead */
        double last = bl->ring[(bl->pos - 1 + h) % bl->lag];
        if (isnan(last))
            return ssm_error_set(err, SSM_ETOOSHORT, "model \"%s\" has no observation for season slot %zu",
                                 m->spec, (bl->pos - 1 + h) % bl->lag);
        double k = (double)((h - 1) / bl->lag + 1);
        double hd = (double)h;
        f->mean[h - 1] = last + (bl->kind == BL_DRIFT ? hd * bl->b : 0.0);
        f->sd[h - 1] = bl->kind == BL_DRIFT ? sqrt(bl->mse * hd + hd * hd * bl->b_se * bl->b_se)
                                            : sqrt(bl->mse * k);
    }
    ssm_forecast_gaussian_quantiles(f);
    return SSM_OK;
}

static void add_param(ssm_fit_info *out, const char *name, double v) {
    if (out->nparams >= SSM_MAX_PARAMS) return;
    snprintf(out->params[out->nparams].name, sizeof out->params[0].name, "%s", name);
    out->params[out->nparams].value = v;
    out->nparams++;
}

static int baseline_info(const ssm_model *m, ssm_fit_info *out) {
    const baseline *bl = m->impl;
    out->converged = bl->fitted;
    out->iterations = 0;
    out->nobs = bl->nres;
    if (!bl->fitted) return SSM_OK;
    if (bl->kind == BL_DRIFT) add_param(out, "drift", bl->b);
    add_param(out, "sigma2", bl->mse);
    return SSM_OK;
}

/* Payload: version, kind, lag, pos, nres (u64 each), mse, b, b_se, ring[lag] (f64). */
#define BL_VERSION 1u

static int baseline_save(const ssm_model *m, ssm_buffer *out, ssm_error *err) {
    const baseline *bl = m->impl;
    if (!bl->fitted) return ssm_error_set(err, SSM_EINVAL, "model \"%s\" is not fitted", m->spec);
    int rc = put_u64(out, BL_VERSION) | put_u64(out, (uint64_t)bl->kind) | put_u64(out, bl->lag) |
             put_u64(out, bl->pos) | put_u64(out, bl->nres) | put_f64(out, bl->mse) |
             put_f64(out, bl->b) | put_f64(out, bl->b_se);
    for (size_t i = 0; i < bl->lag; i++) rc |= put_f64(out, bl->ring[i]);
    return rc ? ssm_error_set(err, SSM_ENOMEM, "out of memory") : SSM_OK;
}

static int baseline_load(ssm_model *m, const uint8_t *data, size_t len, ssm_error *err) {
    baseline *bl = m->impl;
    if (len < 64 || get_u64(data) != BL_VERSION || get_u64(data + 8) != (uint64_t)bl->kind)
        return ssm_error_set(err, SSM_EFORMAT, "stored %s state is truncated or of another version",
                             kind_name(bl->kind));
    uint64_t lag = get_u64(data + 16);
    if (lag < 1 || lag > (len - 64) / 8 || len != 64 + 8 * lag)
        return ssm_error_set(err, SSM_EFORMAT, "stored %s state has a corrupt season length", kind_name(bl->kind));
    double *ring = malloc(lag * sizeof *ring);
    if (!ring) return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    for (size_t i = 0; i < lag; i++) ring[i] = get_f64(data + 64 + 8 * i);
    free(bl->ring);
    bl->ring = ring;
    bl->lag = (size_t)lag;
    bl->pos = (size_t)get_u64(data + 24);
    bl->nres = (size_t)get_u64(data + 32);
    bl->mse = get_f64(data + 40);
    bl->b = get_f64(data + 48);
    bl->b_se = get_f64(data + 56);
    bl->fitted = 1;
    return SSM_OK;
}

static void baseline_destroy(ssm_model *m) {
    baseline *bl = m->impl;
    if (bl) free(bl->ring);
    free(bl);
    m->impl = NULL;
}

static const ssm_model_ops baseline_ops = {
    .fit = baseline_fit,
    .update = baseline_update,
    .forecast = baseline_forecast,
    .info = baseline_info,
    .save = baseline_save,
    .load = baseline_load,
    .destroy = baseline_destroy,
};

static int baseline_create(ssm_model *m, const char *name, const char *args, ssm_error *err) {
    int kind = strcmp(name, "naive") == 0 ? BL_NAIVE : strcmp(name, "snaive") == 0 ? BL_SNAIVE : BL_DRIFT;
    int season = 0;
    if (args && *args) {
        ssm_spec_kv kv[4];
        size_t n = 0;
        int rc = ssm_spec_kv_parse(args, kv, 4, &n, err);
        if (rc != SSM_OK) return rc;
        for (size_t i = 0; i < n; i++) {
            char *end = NULL;
            long v = strtol(kv[i].value, &end, 10);
            if (kind == BL_SNAIVE && strcmp(kv[i].key, "season") == 0 && end && *end == '\0' && v >= 1 &&
                v <= 100000) {
                season = (int)v;
                continue;
            }
            ssm_error_set(err, SSM_EINVAL, "bad argument \"%s=%s\" for model \"%s\"", kv[i].key, kv[i].value, name);
            ssm_error_hint(err, kind == BL_SNAIVE ? "snaive takes only season=N" : "%s takes no arguments", name);
            return SSM_EINVAL;
        }
    }
    baseline *bl = calloc(1, sizeof *bl);
    if (!bl) return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    bl->kind = kind;
    bl->season_arg = season;
    bl->mse = bl->b = bl->b_se = NAN;
    m->impl = bl;
    m->ops = &baseline_ops;
    if (season) snprintf(m->spec, sizeof m->spec, "snaive(season=%d)", season);
    else snprintf(m->spec, sizeof m->spec, "%s", name);
    return SSM_OK;
}

const ssm_model_kind ssm_baseline_kinds[] = {
    {"naive", "baseline", "random walk: the last value; R forecast::naive", baseline_create},
    {"snaive", "baseline", "seasonal random walk: the value one season back; R forecast::snaive", baseline_create},
    {"drift", "baseline", "random walk with drift; R forecast::rwf(drift = TRUE)", baseline_create},
    {NULL, NULL, NULL, NULL},
};
