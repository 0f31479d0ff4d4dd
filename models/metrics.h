/*
 * models/metrics.h — point and probabilistic forecast accuracy, as the literature defines it.
 *
 * Definitions follow Hyndman & Koehler (2006), "Another look at measures of forecast
 * accuracy", and the M4 competition (Makridakis et al. 2020). y are actuals, f point
 * forecasts, e = y - f. Every function skips a pair where y or f is NaN (a missing actual
 * or a failed forecast) and returns NaN when no pair is left. The rules for the edge cases
 * are part of the contract and are tested:
 *
 *   MAE     mean |e|
 *   RMSE    sqrt(mean e^2)
 *   MAPE    100 * mean |e / y|             pairs with y == 0 are skipped (undefined);
 *                                          NaN when every actual is zero
 *   sMAPE   200 * mean |e| / (|y| + |f|)   M4's definition; a pair with y == f == 0 is a
 *                                          perfect forecast and counts as 0
 *   MASE    mean |e| / scale               scale = mean |y_t - y_{t-m}| over the training
 *                                          window (in-sample seasonal naive MAE, M4); m = 1
 *                                          when the window has no more than m points;
 *                                          NaN when the scale is 0 (constant training
 *                                          window) or cannot be computed
 *   pinball mean over quantiles and points of rho_tau(y - q),
 *           rho_tau(u) = max(tau u, (tau - 1) u)   (no factor 2; CRPS ~ 2 x this average)
 *   coverage  share of actuals inside [q_lo, q_hi] (ends included), width mean(q_hi - q_lo)
 *
 * Aggregations that skip NaN (mean, median) are here as well, so the backtest engine and
 * the daemon summarise with the same rules. No I/O, no global state.
 */
#ifndef SSM_METRICS_H
#define SSM_METRICS_H

#include <stddef.h>

double ssm_metric_mae(const double *y, const double *f, size_t n);
double ssm_metric_rmse(const double *y, const double *f, size_t n);
double ssm_metric_mape(const double *y, const double *f, size_t n);
double ssm_metric_smape(const double *y, const double *f, size_t n);

/* In-sample seasonal naive MAE of train[0..n) with lag m (m < 1 is taken as 1; m >= n
 * falls back to 1). NaN when no pair (x_t, x_{t-m}) has both values present. Returns 0
 * for a constant window; ssm_metric_mase then gives NaN. */
double ssm_metric_mase_scale(const double *train, size_t n, int m);
/* mean |e| / scale; NaN when scale is NaN or 0. */
double ssm_metric_mase(const double *y, const double *f, size_t n, double scale);

/* Pinball loss of one quantile forecast q at level tau for one actual y. */
double ssm_metric_pinball1(double y, double q, double tau);
/* Mean pinball loss. q is n x nq row-major (q[i*nq + j] at levels[j]). Points with a NaN
 * actual are skipped, as are NaN quantiles. */
double ssm_metric_pinball(const double *y, const double *q, const double *levels, size_t nq,
                          size_t n);

/* Central intervals that a set of quantile levels contains: pairs (tau, 1 - tau) with
 * tau < 0.5, e.g. {0.025, 0.1, 0.5, 0.9, 0.975} gives 95% (0.025, 0.975) and 80%
 * (0.1, 0.9). Writes up to max intervals, widest first, as indices into levels and the
 * nominal coverage (0.95). Returns how many were found. Levels match within 1e-9. */
typedef struct ssm_interval {
    size_t lo, hi;     /* indices into levels */
    double coverage;   /* nominal, e.g. 0.95 */
} ssm_interval;
size_t ssm_metric_intervals(const double *levels, size_t nq, ssm_interval *out, size_t max);

/* Empirical coverage of [q_lo, q_hi] (share of actuals inside, ends included) and mean
 * width, over the points where the actual and both ends are present. q as in pinball. */
void ssm_metric_coverage(const double *y, const double *q, size_t nq, size_t n,
                         const ssm_interval *iv, double *coverage, double *width);

/* NaN-skipping summaries; median sorts a copy (returns NaN on allocation failure). */
double ssm_mean_skipnan(const double *x, size_t n);
double ssm_median_skipnan(const double *x, size_t n);
/* Average ranks (1 = smallest; ties share the mean of their ranks) of x[0..n) into rank;
 * NaN entries get rank NaN and do not take part. */
void ssm_rank_average(const double *x, size_t n, double *rank);

#endif
