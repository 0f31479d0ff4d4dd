/*
 * models/backtest.c — the rolling-origin engine (see backtest.h for the origin arithmetic
 * and the scoring rules). One call runs one spec over one series: it fits (or updates) the
 * model at each origin, keeps every forecast, then scores them overall and per step.
 * The summaries across series live here too, so the command line and the `auto` model use
 * the same arithmetic. No I/O; callers run series in parallel.
 */
#include "backtest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double ssm_backtest_default_levels[5] = {0.025, 0.1, 0.5, 0.9, 0.975};

int ssm_backtest_origins(size_t n, const ssm_backtest_opts *o, size_t *train_end, ssm_error *err) {
    size_t H = o->horizon, N = o->origins, K = o->step ? o->step : o->horizon;
    size_t min_train = o->min_train ? o->min_train : 2;
    if (H < 1 || N < 1) return ssm_error_set(err, SSM_EINVAL, "horizon and origins must be at least 1");
    /* end_0 = n - H - (N-1) K must be >= min_train; written to avoid unsigned wrap */
    size_t back = H + (N - 1) * K;
    if (n < back + min_train) {
        ssm_error_set(err, SSM_ETOOSHORT, "series too short for %zu origins of horizon %zu", N, H);
        ssm_error_detail(err, "%zu points; the first origin needs at least %zu training points before %zu more",
                         n, min_train, back);
        if (n >= H + min_train)
            ssm_error_hint(err, "use at most %zu origins with step %zu", (n - H - min_train) / K + 1, K);
        else
            ssm_error_hint(err, "use a horizon of at most %zu", n > min_train ? n - min_train : 0);
        return SSM_ETOOSHORT;
    }
    for (size_t i = 0; i < N; i++) train_end[i] = n - H - (N - 1 - i) * K;
    return SSM_OK;
}

void ssm_backtest_free(ssm_backtest *bt) {
    if (!bt) return;
    free(bt->levels);
    free(bt->train_start);
    free(bt->train_end);
    free(bt->origin_ts);
    free(bt->scale);
    free(bt->actual);
    free(bt->mean);
    free(bt->q);
    free(bt->by_step);
    memset(bt, 0, sizeof *bt);
}

/* Scores of the points idx[0..k) (indices into actual/mean, i.e. i*H + h). */
static void score_points(const ssm_backtest *bt, const size_t *idx, size_t k, double *ya, double *fa,
                         double *qa, ssm_bt_scores *s) {
    /* gather into contiguous arrays so metrics.c sees the same shapes it documents */
    size_t nq = bt->nq, H = bt->horizon;
    double mase_sum = 0.0;
    size_t mase_n = 0;
    s->n = 0;
    for (size_t p = 0; p < k; p++) {
        size_t i = idx[p];
        ya[p] = bt->actual[i];
        fa[p] = bt->mean[i];
        memcpy(qa + p * nq, bt->q + i * nq, nq * sizeof *qa);
        if (isnan(ya[p]) || isnan(fa[p])) continue;
        s->n++;
        double scale = bt->scale[i / H];
        if (scale > 0.0 && isfinite(scale)) {
            mase_sum += fabs(ya[p] - fa[p]) / scale;
            mase_n++;
        }
    }
    s->mae = ssm_metric_mae(ya, fa, k);
    s->rmse = ssm_metric_rmse(ya, fa, k);
    s->mape = ssm_metric_mape(ya, fa, k);
    s->smape = ssm_metric_smape(ya, fa, k);
    s->mase = mase_n ? mase_sum / (double)mase_n : NAN;
    /* quantiles of an origin that failed are NaN; its actual is present, so mask by the
     * point forecast to score the same points for every figure */
    for (size_t p = 0; p < k; p++)
        if (isnan(fa[p])) ya[p] = NAN;
    s->pinball = nq ? ssm_metric_pinball(ya, qa, bt->levels, nq, k) : NAN;
    ssm_interval iv[SSM_BT_MAX_INTERVALS];
    s->nint = ssm_metric_intervals(bt->levels, nq, iv, SSM_BT_MAX_INTERVALS);
    for (size_t j = 0; j < s->nint; j++) {
        s->nominal[j] = iv[j].coverage;
        ssm_metric_coverage(ya, qa, nq, k, &iv[j], &s->coverage[j], &s->width[j]);
    }
}

int ssm_backtest_score(ssm_backtest *bt, ssm_error *err) {
    size_t N = bt->norigins, H = bt->horizon, nq = bt->nq, total = N * H;
    if (!bt->by_step) {
        bt->by_step = calloc(H, sizeof *bt->by_step);
        if (!bt->by_step) return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    }
    size_t *idx = malloc(total * sizeof *idx);
    double *ya = malloc(total * sizeof *ya), *fa = malloc(total * sizeof *fa);
    double *qa = malloc((total * nq + 1) * sizeof *qa);
    if (!idx || !ya || !fa || !qa) {
        free(idx), free(ya), free(fa), free(qa);
        return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    }
    for (size_t p = 0; p < total; p++) idx[p] = p;
    score_points(bt, idx, total, ya, fa, qa, &bt->overall);
    for (size_t h = 0; h < H; h++) {
        for (size_t i = 0; i < N; i++) idx[i] = i * H + h;
        score_points(bt, idx, N, ya, fa, qa, &bt->by_step[h]);
    }
    free(idx), free(ya), free(fa), free(qa);
    return SSM_OK;
}

static int alloc_result(ssm_backtest *bt, size_t N, size_t H, const double *levels, size_t nq) {
    bt->norigins = N;
    bt->horizon = H;
    bt->nq = nq;
    bt->levels = malloc((nq ? nq : 1) * sizeof *bt->levels);
    bt->train_start = calloc(N, sizeof *bt->train_start);
    bt->train_end = calloc(N, sizeof *bt->train_end);
    bt->origin_ts = calloc(N, sizeof *bt->origin_ts);
    bt->scale = calloc(N, sizeof *bt->scale);
    bt->actual = calloc(N * H, sizeof *bt->actual);
    bt->mean = calloc(N * H, sizeof *bt->mean);
    bt->q = calloc(N * H * nq + 1, sizeof *bt->q);
    if (!bt->levels || !bt->train_start || !bt->train_end || !bt->origin_ts || !bt->scale || !bt->actual ||
        !bt->mean || !bt->q)
        return SSM_ENOMEM;
    if (nq) memcpy(bt->levels, levels, nq * sizeof *levels);
    return SSM_OK;
}

static void set_origin_nan(ssm_backtest *bt, size_t i) {
    size_t H = bt->horizon, nq = bt->nq;
    for (size_t h = 0; h < H; h++) {
        bt->mean[i * H + h] = NAN;
        for (size_t j = 0; j < nq; j++) bt->q[(i * H + h) * nq + j] = NAN;
    }
}

static void note_failure(ssm_backtest *bt, size_t i, const ssm_error *e, const ssm_series *y) {
    if (bt->nfailed++ == 0) {
        bt->first_error = *e;
        if (!bt->first_error.detail[0])
            snprintf(bt->first_error.detail, sizeof bt->first_error.detail, "series \"%s\", origin %zu of %zu",
                     y->name ? y->name : "?", i + 1, bt->norigins);
    }
    set_origin_nan(bt, i);
}

int ssm_backtest_run(const ssm_series *y, const char *spec, const ssm_backtest_opts *o, ssm_backtest *out,
                     ssm_error *err) {
    memset(out, 0, sizeof *out);
    ssm_error_clear(err);
    const double *levels = o->levels ? o->levels : ssm_backtest_default_levels;
    size_t nq = o->levels ? o->nq : 5;
    for (size_t j = 0; j < nq; j++)
        if (!(levels[j] > 0.0 && levels[j] < 1.0) || (j && !(levels[j] > levels[j - 1])))
            return ssm_error_set(err, SSM_EINVAL, "quantile levels must be ascending and inside (0, 1)");
    size_t N = o->origins, H = o->horizon;
    if (N < 1 || H < 1) return ssm_error_set(err, SSM_EINVAL, "horizon and origins must be at least 1");
    snprintf(out->spec, sizeof out->spec, "%s", spec);
    if (alloc_result(out, N, H, levels, nq) != SSM_OK) return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    int rc = ssm_backtest_origins(y->n, o, out->train_end, err);
    if (rc != SSM_OK) {
        ssm_error_detail(err, "series \"%s\" has %zu points; %zu origins, step %zu, horizon %zu",
                         y->name ? y->name : "?", y->n, N, o->step ? o->step : H, H);
        return rc;
    }
    int season = o->season ? o->season : ssm_freq_season(y->freq);
    out->season = season;
    ssm_model_opts mopts = o->model_opts;
    mopts.season = season;

    ssm_model *m = NULL;
    ssm_forecast f;
    memset(&f, 0, sizeof f);
    if ((rc = ssm_forecast_init(&f, H, levels, nq, err)) != SSM_OK) return rc;
    ssm_error e;
    for (size_t i = 0; i < N; i++) {
        size_t end = out->train_end[i];
        size_t start = o->window && end > o->window ? end - o->window : 0;
        out->train_start[i] = start;
        out->origin_ts[i] = ssm_freq_advance(y->freq, y->start, (long)end - 1);
        out->scale[i] = ssm_metric_mase_scale(y->values + start, end - start, season);
        for (size_t h = 0; h < H; h++) out->actual[i * H + h] = y->values[end + h];

        ssm_error_clear(&e);
        int ok = 1;
        if (o->refit_once && m) {
            /* filter forward over the points between the previous origin and this one */
            size_t prev = out->train_end[i - 1];
            ok = ssm_model_update(m, y->values + prev, end - prev, &e) == SSM_OK;
            if (!ok) {
                ssm_model_free(m); /* its state is unknown now: refit at the next origin */
                m = NULL;
            }
        } else {
            ssm_model_free(m);
            m = ssm_model_create(spec, &mopts, &e);
            if (!m) {
                /* a bad spec fails the same way at every origin: report it as such */
                ssm_forecast_free(&f);
                if (err) *err = e;
                return e.code ? e.code : SSM_EINVAL;
            }
            ssm_series train = *y;
            train.start = ssm_freq_advance(y->freq, y->start, (long)start);
            train.values = y->values + start;
            train.n = end - start;
            ok = ssm_model_fit(m, &train, &e) == SSM_OK;
            if (!ok && o->refit_once) {
                ssm_model_free(m); /* try a fresh fit at the next origin */
                m = NULL;
            }
        }
        if (ok) ok = ssm_model_forecast(m, &f, &e) == SSM_OK;
        if (!ok) {
            note_failure(out, i, &e, y);
            continue;
        }
        memcpy(out->mean + i * H, f.mean, H * sizeof *f.mean);
        memcpy(out->q + i * H * nq, f.q, H * nq * sizeof *f.q);
        ssm_fit_info info;
        if (ssm_model_info(m, &info) == SSM_OK) {
            snprintf(out->chosen, sizeof out->chosen, "%s", info.chosen);
            out->nparams = info.nparams;
        }
    }
    ssm_model_free(m);
    ssm_forecast_free(&f);
    if (out->nfailed == N) {
        if (err) *err = out->first_error;
        return out->first_error.code ? out->first_error.code : SSM_ENUMERIC;
    }
    return ssm_backtest_score(out, err);
}

/* ---- across series ------------------------------------------------------------------ */

void ssm_bt_summary_free(ssm_bt_summary *s) {
    if (!s) return;
    free(s->by_step_mean);
    memset(s, 0, sizeof *s);
}

/* Applies fn (mean or median) to each field of the per-series scores xs[0..n). */
static void summarise_scores(const ssm_bt_scores *const *xs, size_t n, double *tmp,
                             double (*fn)(const double *, size_t), ssm_bt_scores *out) {
#define FIELD(f)                                       \
    do {                                               \
        for (size_t s = 0; s < n; s++) tmp[s] = xs[s]->f; \
        out->f = fn(tmp, n);                           \
    } while (0)
    memset(out, 0, sizeof *out);
    for (size_t s = 0; s < n; s++) out->n += xs[s]->n;
    FIELD(mae);
    FIELD(rmse);
    FIELD(mape);
    FIELD(smape);
    FIELD(mase);
    FIELD(pinball);
    if (n) {
        out->nint = xs[0]->nint;
        for (size_t j = 0; j < out->nint; j++) {
            out->nominal[j] = xs[0]->nominal[j];
            FIELD(coverage[j]);
            FIELD(width[j]);
        }
    }
#undef FIELD
}

int ssm_backtest_summarise(const ssm_backtest *grid, size_t nseries, size_t nmodels, ssm_bt_summary *out,
                           ssm_error *err) {
    memset(out, 0, nmodels * sizeof *out);
    const ssm_bt_scores **xs = malloc((nseries ? nseries : 1) * sizeof *xs);
    double *tmp = malloc((nseries + nmodels + 1) * sizeof *tmp);
    double *ranks = malloc((nseries * nmodels + 1) * sizeof *ranks);
    double *mase = malloc((nmodels + 1) * sizeof *mase);
    if (!xs || !tmp || !ranks || !mase) {
        free(xs), free(tmp), free(ranks), free(mase);
        return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    }
    /* ranks by MASE, series by series */
    for (size_t s = 0; s < nseries; s++) {
        for (size_t k = 0; k < nmodels; k++) {
            const ssm_backtest *bt = &grid[s * nmodels + k];
            mase[k] = bt->norigins ? bt->overall.mase : NAN;
        }
        ssm_rank_average(mase, nmodels, ranks + s * nmodels);
    }
    int rc = SSM_OK;
    for (size_t k = 0; k < nmodels && rc == SSM_OK; k++) {
        size_t n = 0, H = 0;
        for (size_t s = 0; s < nseries; s++) {
            const ssm_backtest *bt = &grid[s * nmodels + k];
            if (!bt->norigins) continue;
            xs[n++] = &bt->overall;
            if (!H) H = bt->horizon;
            if (!isnan(bt->overall.mase)) out[k].nseries++;
        }
        summarise_scores(xs, n, tmp, ssm_mean_skipnan, &out[k].mean);
        summarise_scores(xs, n, tmp, ssm_median_skipnan, &out[k].median);
        for (size_t s = 0; s < nseries; s++) tmp[s] = ranks[s * nmodels + k];
        out[k].rank = ssm_mean_skipnan(tmp, nseries);
        out[k].horizon = H;
        if (H) {
            out[k].by_step_mean = calloc(H, sizeof *out[k].by_step_mean);
            if (!out[k].by_step_mean) {
                rc = ssm_error_set(err, SSM_ENOMEM, "out of memory");
                break;
            }
            for (size_t h = 0; h < H; h++) {
                size_t m = 0;
                for (size_t s = 0; s < nseries; s++) {
                    const ssm_backtest *bt = &grid[s * nmodels + k];
                    if (bt->norigins && bt->horizon == H && bt->by_step) xs[m++] = &bt->by_step[h];
                }
                summarise_scores(xs, m, tmp, ssm_mean_skipnan, &out[k].by_step_mean[h]);
            }
        }
    }
    free(xs), free(tmp), free(ranks), free(mase);
    if (rc != SSM_OK)
        for (size_t k = 0; k < nmodels; k++) ssm_bt_summary_free(&out[k]);
    return rc;
}
