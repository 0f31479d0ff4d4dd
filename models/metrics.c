/*
 * models/metrics.c — forecast accuracy metrics (see metrics.h for the definitions and the
 * edge-case rules). Plain loops over arrays; every function is pure and reentrant.
 * Sums run in index order so results are reproducible to the last bit, which the R
 * reference test (tests/models/test_backtest_reference.c) relies on.
 */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int pair_ok(double y, double f) { return !isnan(y) && !isnan(f); }

double ssm_metric_mae(const double *y, const double *f, size_t n) {
    double s = 0.0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (pair_ok(y[i], f[i])) {
            s += fabs(y[i] - f[i]);
            k++;
        }
    return k ? s / (double)k : NAN;
}

double ssm_metric_rmse(const double *y, const double *f, size_t n) {
    double s = 0.0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (pair_ok(y[i], f[i])) {
            double e = y[i] - f[i];
            s += e * e;
            k++;
        }
    return k ? sqrt(s / (double)k) : NAN;
}

double ssm_metric_mape(const double *y, const double *f, size_t n) {
    /* a zero actual makes |e/y| undefined: the pair is skipped, not counted as infinite,
     * so one zero in a long series does not wipe out the figure */
    double s = 0.0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (pair_ok(y[i], f[i]) && y[i] != 0.0) {
            s += fabs((y[i] - f[i]) / y[i]);
            k++;
        }
    return k ? 100.0 * s / (double)k : NAN;
}

double ssm_metric_smape(const double *y, const double *f, size_t n) {
    double s = 0.0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (pair_ok(y[i], f[i])) {
            double d = fabs(y[i]) + fabs(f[i]);
            if (d > 0.0) s += fabs(y[i] - f[i]) / d; /* d == 0 only when y == f == 0: exact */
            k++;
        }
    return k ? 200.0 * s / (double)k : NAN;
}

double ssm_metric_mase_scale(const double *train, size_t n, int m) {
    /* train is n values (NaN = missing); the scale is the MAE of the seasonal naive
     * forecast inside the training window, mean |x_t - x_{t-m}|, t = m..n-1 */
    size_t lag = m < 1 ? 1 : (size_t)m;
    if (lag >= n) lag = 1;
    double s = 0.0;
    size_t k = 0;
    for (size_t t = lag; t < n; t++)
        if (pair_ok(train[t], train[t - lag])) {
            s += fabs(train[t] - train[t - lag]);
            k++;
        }
    return k ? s / (double)k : NAN;
}

double ssm_metric_mase(const double *y, const double *f, size_t n, double scale) {
    if (!(scale > 0.0) || !isfinite(scale)) return NAN;
    return ssm_metric_mae(y, f, n) / scale;
}

double ssm_metric_pinball1(double y, double q, double tau) {
    double u = y - q;
    return u >= 0.0 ? tau * u : (tau - 1.0) * u;
}

double ssm_metric_pinball(const double *y, const double *q, const double *levels, size_t nq,
                          size_t n) {
    /* y: n actuals; q: n x nq quantiles; the mean runs over every (point, level) pair */
    double s = 0.0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(y[i])) continue;
        const double *qi = q + i * nq;
        for (size_t j = 0; j < nq; j++)
            if (!isnan(qi[j])) {
                s += ssm_metric_pinball1(y[i], qi[j], levels[j]);
                k++;
            }
    }
    return k ? s / (double)k : NAN;
}

size_t ssm_metric_intervals(const double *levels, size_t nq, ssm_interval *out, size_t max) {
    size_t k = 0;
    /* levels ascending: the widest interval pairs the first level with the last */
    for (size_t lo = 0; lo < nq && k < max; lo++) {
        if (!(levels[lo] < 0.5 - 1e-12)) break;
        for (size_t hi = nq; hi-- > lo + 1;)
            if (fabs(levels[hi] - (1.0 - levels[lo])) < 1e-9) {
                out[k].lo = lo;
                out[k].hi = hi;
                out[k].coverage = 1.0 - 2.0 * levels[lo];
                k++;
                break;
            }
    }
    return k;
}

void ssm_metric_coverage(const double *y, const double *q, size_t nq, size_t n,
                         const ssm_interval *iv, double *coverage, double *width) {
    size_t inside = 0, k = 0;
    double w = 0.0;
    for (size_t i = 0; i < n; i++) {
        double lo = q[i * nq + iv->lo], hi = q[i * nq + iv->hi];
        if (isnan(y[i]) || isnan(lo) || isnan(hi)) continue;
        if (y[i] >= lo && y[i] <= hi) inside++;
        w += hi - lo;
        k++;
    }
    *coverage = k ? (double)inside / (double)k : NAN;
    *width = k ? w / (double)k : NAN;
}

double ssm_mean_skipnan(const double *x, size_t n) {
    double s = 0.0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i])) {
            s += x[i];
            k++;
        }
    return k ? s / (double)k : NAN;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double ssm_median_skipnan(const double *x, size_t n) {
    double *c = malloc((n ? n : 1) * sizeof *c);
    if (!c) return NAN;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i])) c[k++] = x[i];
    double med = NAN;
    if (k) {
        qsort(c, k, sizeof *c, cmp_double);
        med = k % 2 ? c[k / 2] : 0.5 * (c[k / 2 - 1] + c[k / 2]);
    }
    free(c);
    return med;
}

void ssm_rank_average(const double *x, size_t n, double *rank) {
    /* O(n^2) on purpose: n is the number of models in a comparison (a handful) */
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) {
            rank[i] = NAN;
            continue;
        }
        size_t less = 0, equal = 0;
        for (size_t j = 0; j < n; j++) {
            if (isnan(x[j])) continue;
            if (x[j] < x[i]) less++;
            else if (x[j] == x[i]) equal++;
        }
        rank[i] = (double)less + 0.5 * (double)(equal + 1); /* mean of less+1 .. less+equal */
    }
}
