/*
 * kalman/sarima.c — the SARIMA(p,d,q)(P,D,Q)[s] builder: parameters -> state space system,
 * with the exact likelihood statsmodels' SARIMAX computes when simple_differencing=False
 * and R's arima reports (the likelihood of the differenced data).
 *
 * The model: w_t = (1-L)^d (1-L^s)^D y_t follows the ARMA
 *     phi(L) Phi(L^s) w_t = c + theta(L) Theta(L^s) e_t,   e_t ~ N(0, sigma2),
 * phi(L) = 1 - sum phi_i L^i, theta(L) = 1 + sum theta_i L^i (statsmodels' signs).
 *
 * State (m = k + r):  a_t = (y_{t-1}, ..., y_{t-k},  x_t)
 *   - the k = d + s*D most recent observations (the differencing lives in the state, so
 *     the likelihood, the smoother and the forecasts are those of y itself, with missing
 *     values anywhere); they are exact diffuse;
 *   - x_t, the r = max(p + sP, q + sQ + 1) states of the ARMA in Harvey's companion form
 *     (x_{1,t} = w_t), initialised from their stationary distribution, which this file
 *     computes itself in O(np^3 + r^2) from the autocovariances (no Lyapunov solve).
 *   y_t = sum_j delta_j y_{t-j} + w_t, delta(L) = 1 - (1-L)^d (1-L^s)^D, so
 *   Z = (delta_1..delta_k, 1, 0..0), H = 0, and T is two companion blocks joined by a
 *   single 1: sparse, which the filter's sparse products exploit.
 *
 * The diffuse scale. D&K's exact diffuse likelihood charges each of the k diffuse
 * observations -0.5 (log 2 pi + log F_inf,t); those terms do not depend on the parameters
 * but make the figure differ from SARIMAX's default and from R (244.70 vs 232.75 on the
 * airline model). Scaling P1inf by any kappa > 0 leaves the exact diffuse filter unchanged
 * except for those terms (F_inf scales with kappa), so we pick kappa such that they sum to
 * zero: the reported log-likelihood is then exactly that of the differenced data.
 *
 * Estimation (kalman_sarima_fit). When no differenced value is missing, the likelihood
 * above equals the exact likelihood of the differenced series w under the stationary
 * ARMA, so the optimizer works on w alone: r states instead of k + r, no diffuse phase,
 * and the Riccati recursion replaced by the Chandrasekhar recursions (Morf, Sidhu and
 * Kailath 1974): for a time-invariant system started at its stationary covariance,
 * P_{t+1} - P_t has rank one, so each step costs O(r) instead of O(r^2). sigma2 is
 * concentrated out. With missing values the generic kalman_fit runs on the full system.
 *
 * Parameters (statsmodels' order and names): intercept, ar.L1..p, ma.L1..q,
 * ar.S.L<s>..ar.S.L<Ps>, ma.S.L<s>..ma.S.L<Qs>, sigma2. The optimizer sees each AR
 * polynomial through partial autocorrelations r_k = u_k / sqrt(1 + u_k^2) and the
 * Durbin-Levinson recursion (Monahan 1984, as statsmodels' constrain_stationary_univariate),
 * so every AR polynomial is stationary and every MA polynomial invertible; sigma2 via log.
 */
#include "internal.h"

#include <ctype.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_multimin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double LOG_2PI = 1.8378770664093454835606594728112;

typedef struct sarima_ctx {
    kalman_sarima_spec spec;
    int k;                 /* differencing states d + s*D */
    int r;                 /* ARMA states */
    int np, nq;            /* p + sP, q + sQ: orders of the product polynomials */
    int i_c, i_ar, i_ma, i_sar, i_sma, i_sigma2; /* first index of each block, -1: none */
    double delta[KALMAN_MAX_STATES];            /* delta_1..delta_k (index 0 = lag 1) */
    double kappa;          /* P1inf scale, see the header comment */
} sarima_ctx;

/* ---- polynomial transforms ----------------------------------------------------------- */

/* u (n) unconstrained -> phi (n), coefficients of a stationary 1 - sum phi_i z^i: partial
 * autocorrelations r_k = u_k / sqrt(1 + u_k^2) through Durbin-Levinson. */
static void pacf_to_ar(const double *u, int n, double *phi)
{
    double prev[KALMAN_MAX_PARAMS];
    for (int k = 0; k < n; k++) {
        /* |u| <= 1e4 keeps |r_k| <= 1 - 5e-9: strictly inside, even after rounding */
        double uk = fmax(-1e4, fmin(1e4, u[k]));
        double rk = uk / sqrt(1.0 + uk * uk);
        for (int j = 0; j < k; j++)
            prev[j] = phi[j];
        for (int j = 0; j < k; j++)
            phi[j] = prev[j] - rk * prev[k - 1 - j];
        phi[k] = rk;
    }
}

/* The inverse of pacf_to_ar. A non-stationary phi (only from a user's start) is pulled
 * inside by clamping each partial autocorrelation to +-0.99. */
static void ar_to_pacf(const double *phi_in, int n, double *u)
{
    double phi[KALMAN_MAX_PARAMS], prev[KALMAN_MAX_PARAMS];
    for (int j = 0; j < n; j++)
        phi[j] = phi_in[j];
    for (int k = n - 1; k >= 0; k--) {
        double rk = phi[k];
        if (!isfinite(rk))
            rk = 0.0;
        if (rk > 0.99)
            rk = 0.99;
        if (rk < -0.99)
            rk = -0.99;
        u[k] = rk / sqrt(1.0 - rk * rk);
        double den = 1.0 - rk * rk;
        for (int j = 0; j < k; j++)
            prev[j] = phi[j];
        for (int j = 0; j < k; j++)
            phi[j] = (prev[j] + rk * prev[k - 1 - j]) / den;
    }
}

static void sarima_transform(void *vctx, const double *u, double *p)
{
    const sarima_ctx *cx = vctx;
    const kalman_sarima_spec *sp = &cx->spec;
    if (cx->i_c >= 0)
        p[cx->i_c] = u[cx->i_c];
    if (sp->p)
        pacf_to_ar(u + cx->i_ar, sp->p, p + cx->i_ar);
    if (sp->q) {
        pacf_to_ar(u + cx->i_ma, sp->q, p + cx->i_ma);
        for (int j = 0; j < sp->q; j++)
            p[cx->i_ma + j] = -p[cx->i_ma + j];
    }
    if (sp->P)
        pacf_to_ar(u + cx->i_sar, sp->P, p + cx->i_sar);
    if (sp->Q) {
        pacf_to_ar(u + cx->i_sma, sp->Q, p + cx->i_sma);
        for (int j = 0; j < sp->Q; j++)
            p[cx->i_sma + j] = -p[cx->i_sma + j];
    }
    p[cx->i_sigma2] = exp(u[cx->i_sigma2]);
}

static void sarima_untransform(void *vctx, const double *p, double *u)
{
    const sarima_ctx *cx = vctx;
    const kalman_sarima_spec *sp = &cx->spec;
    double neg[KALMAN_MAX_PARAMS];
    if (cx->i_c >= 0)
        u[cx->i_c] = p[cx->i_c];
    if (sp->p)
        ar_to_pacf(p + cx->i_ar, sp->p, u + cx->i_ar);
    if (sp->q) {
        for (int j = 0; j < sp->q; j++)
            neg[j] = -p[cx->i_ma + j];
        ar_to_pacf(neg, sp->q, u + cx->i_ma);
    }
    if (sp->P)
        ar_to_pacf(p + cx->i_sar, sp->P, u + cx->i_sar);
    if (sp->Q) {
        for (int j = 0; j < sp->Q; j++)
            neg[j] = -p[cx->i_sma + j];
        ar_to_pacf(neg, sp->Q, u + cx->i_sma);
    }
    double s2 = p[cx->i_sigma2];
    u[cx->i_sigma2] = log(s2 > 1e-300 ? s2 : 1e-300);
}

/* phi_full (np): 1 - sum phi_full_i L^i = (1 - sum phi_i L^i)(1 - sum Phi_j L^{sj});
 * theta_full (nq): 1 + sum theta_full_i L^i = (1 + sum theta_i L^i)(1 + sum Theta_j L^{sj}).
 * Index 0 is lag 1. */
static void product_polynomials(const sarima_ctx *cx, const double *params, double *phi_full,
                                double *theta_full)
{
    const kalman_sarima_spec *sp = &cx->spec;
    const int s = sp->s;
    /* work with full polynomials a(L) = 1 + sum a_i L^i; AR: a_i = -phi_i */
    for (int i = 0; i < cx->np; i++)
        phi_full[i] = 0.0;
    for (int i = 0; i <= sp->p; i++) {
        double a = i == 0 ? 1.0 : -params[cx->i_ar + i - 1];
        for (int j = 0; j <= sp->P; j++) {
            double b = j == 0 ? 1.0 : -params[cx->i_sar + j - 1];
            int lag = i + j * s;
            if (lag > 0)
                phi_full[lag - 1] -= a * b; /* back to 1 - sum phi L^i */
        }
    }
    for (int i = 0; i < cx->nq; i++)
        theta_full[i] = 0.0;
    for (int i = 0; i <= sp->q; i++) {
        double a = i == 0 ? 1.0 : params[cx->i_ma + i - 1];
        for (int j = 0; j <= sp->Q; j++) {
            double b = j == 0 ? 1.0 : params[cx->i_sma + j - 1];
            int lag = i + j * s;
            if (lag > 0)
                theta_full[lag - 1] += a * b;
        }
    }
}

/* ---- the stationary ARMA block ------------------------------------------------------- */

/* The stationary covariance P (r,r) of the Harvey-form ARMA state for unit innovations
 * variance: P = T P T' + g g', T with first column phi (np) and ones on the
 * superdiagonal, g = (1, theta_1, .., theta_{r-1})' (theta (nq)).
 *
 * O(np^3 + r^2) instead of a dense Lyapunov solve: the first row follows from the
 * autocovariances gamma(h) and the MA(infinity) weights psi_h of w,
 *   P_1j = sum_{k>=j} phi_k gamma(k+1-j) + sum_{k>=j-1} theta_k psi_{k+1-j}
 * (x_j,t = sum_{k>=j} phi_k w_{t+j-1-k} + sum_{k>=j-1} theta_k e_{t+j-1-k}, theta_0 = 1),
 * and the Lyapunov equation read entrywise fills the rest from the bottom-right corner:
 *   P_ij = phi_i phi_j P_11 + phi_i P_1,j+1 + phi_j P_i+1,1 + P_i+1,j+1 + g_i g_j.
 * gamma(0..np) solve gamma(k) - sum_j phi_j gamma(|k-j|) = sum_{j>=k} theta_j psi_{j-k};
 * later lags follow by the AR recursion. Scratch: Ab ((np+1)^2), V (3 (r+1)). Returns 0, or
 * KALMAN_ENUMERIC when phi is not stationary. */
static int arma_stationary_cov(int r, const double *phi, int np, const double *theta, int nq,
                               double *P, double *Ab, double *V, kalman_error *err)
{
    const int n1 = np + 1;               /* Ab: (np+1, np+1) system */
    double *gam = V;                     /* gamma(0..r) */
    double *psi = gam + r + 1;           /* psi_0..r */
    double *cr = psi + r + 1;            /* right-hand sides c_0..r */
#define PHI(j) ((j) >= 1 && (j) <= np ? phi[(j) - 1] : 0.0)
#define THETA(j) ((j) == 0 ? 1.0 : ((j) >= 1 && (j) <= nq ? theta[(j) - 1] : 0.0))
    for (int m = 0; m <= r; m++) {
        double acc = THETA(m);
        for (int k = 1; k <= m && k <= np; k++)
            acc += phi[k - 1] * psi[m - k];
        psi[m] = acc;
    }
    for (int k = 0; k <= r; k++) {
        double acc = 0.0;
        for (int j = k; j <= nq; j++)
            acc += THETA(j) * psi[j - k];
        cr[k] = acc;
    }
    /* solve for gamma(0..np), Gaussian elimination with partial pivoting */
    memset(Ab, 0, (size_t)n1 * n1 * sizeof(double));
    for (int k = 0; k < n1; k++) {
        Ab[k * n1 + k] += 1.0;
        for (int j = 1; j <= np; j++) {
            int l = k - j < 0 ? j - k : k - j;
            Ab[k * n1 + l] -= phi[j - 1];
        }
        gam[k] = cr[k];
    }
    for (int col = 0; col < n1; col++) {
        int piv = col;
        for (int i = col + 1; i < n1; i++)
            if (fabs(Ab[i * n1 + col]) > fabs(Ab[piv * n1 + col]))
                piv = i;
        if (!(fabs(Ab[piv * n1 + col]) > 1e-13))
            return kalman_error_set(err, KALMAN_ENUMERIC,
                                    "sarima: the autoregressive polynomial is not stationary");
        if (piv != col) {
            for (int j = 0; j < n1; j++) {
                double tmp = Ab[col * n1 + j];
                Ab[col * n1 + j] = Ab[piv * n1 + j];
                Ab[piv * n1 + j] = tmp;
            }
            double tmp = gam[col];
            gam[col] = gam[piv];
            gam[piv] = tmp;
        }
        double inv = 1.0 / Ab[col * n1 + col];
        for (int i = col + 1; i < n1; i++) {
            double f = Ab[i * n1 + col] * inv;
            if (f == 0.0)
                continue;
            for (int j = col; j < n1; j++)
                Ab[i * n1 + j] -= f * Ab[col * n1 + j];
            gam[i] -= f * gam[col];
        }
    }
    for (int i = n1 - 1; i >= 0; i--) {
        double acc = gam[i];
        for (int j = i + 1; j < n1; j++)
            acc -= Ab[i * n1 + j] * gam[j];
        gam[i] = acc / Ab[i * n1 + i];
    }
    for (int k = n1; k <= r; k++) {
        double acc = cr[k];
        for (int j = 1; j <= np; j++)
            acc += phi[j - 1] * gam[k - j];
        gam[k] = acc;
    }
    if (!(gam[0] > 0.0) || !isfinite(gam[0]))
        return kalman_error_set(err, KALMAN_ENUMERIC,
                                "sarima: the autoregressive polynomial is not stationary");
    /* first row (1-based j = 1..r) */
    for (int j = 1; j <= r; j++) {
        double acc = 0.0;
        for (int k = j; k <= r; k++)
            acc += PHI(k) * gam[k + 1 - j];
        for (int k = j - 1; k <= r - 1; k++)
            acc += THETA(k) * psi[k + 1 - j];
        P[j - 1] = acc;
        P[(size_t)(j - 1) * r] = acc;
    }
    P[0] = gam[0];
    /* the rest from the bottom-right corner */
    for (int i = r; i >= 2; i--)
        for (int j = r; j >= i; j--) {
            double acc = PHI(i) * PHI(j) * P[0] + THETA(i - 1) * THETA(j - 1);
            if (j < r)
                acc += PHI(i) * P[j]; /* P_1,j+1 */
            if (i < r)
                acc += PHI(j) * P[i]; /* P_i+1,1 = P_1,i+1 */
            if (i < r && j < r)
                acc += P[(size_t)i * r + j]; /* P_i+1,j+1 */
            P[(size_t)(i - 1) * r + (j - 1)] = acc;
            P[(size_t)(j - 1) * r + (i - 1)] = acc;
        }
#undef PHI
#undef THETA
    return 0;
}

/* The same covariance by doubling, P <- P + A_j P A_j', A_j <- A_j^2 (exact after
 * ceil(log2 r) steps for a pure MA, quadratic convergence otherwise): the fallback for the
 * few systems whose workspace is too small for the direct method's scratch. A, W, X: (r,r). */
static int arma_stationary_cov_doubling(int r, const double *phi, int np, const double *g,
                                        double *P, double *A, double *W, double *X,
                                        kalman_error *err)
{
    const size_t rr = (size_t)r * r;
    for (int i = 0; i < r; i++)
        for (int j = 0; j < r; j++)
            P[i * r + j] = g[i] * g[j];
    memset(A, 0, rr * sizeof(double));
    for (int i = 0; i < np; i++)
        A[i * r] = phi[i];
    for (int i = 0; i + 1 < r; i++)
        A[i * r + i + 1] = 1.0;
    for (int it = 0; it < 80; it++) {
        double anorm = 0.0;
        for (size_t i = 0; i < rr; i++)
            anorm = fmax(anorm, fabs(A[i]));
        if (anorm == 0.0)
            return 0;
        for (int i = 0; i < r; i++) /* W = A P */
            for (int j = 0; j < r; j++) {
                double acc = 0.0;
                for (int l = 0; l < r; l++)
                    acc += A[i * r + l] * P[l * r + j];
                W[i * r + j] = acc;
            }
        double inc = 0.0, big = 0.0;
        for (int i = 0; i < r; i++) /* P += W A', exactly symmetric */
            for (int j = i; j < r; j++) {
                double acc = 0.0;
                for (int l = 0; l < r; l++)
                    acc += W[i * r + l] * A[j * r + l];
                P[i * r + j] += acc;
                P[j * r + i] = P[i * r + j];
                inc = fmax(inc, fabs(acc));
                big = fmax(big, fabs(P[i * r + j]));
            }
        if (!isfinite(big) || big > 1e250)
            break;
        if (inc <= 1e-16 * big)
            return 0;
        for (int i = 0; i < r; i++) /* A <- A^2 */
            for (int j = 0; j < r; j++) {
                double acc = 0.0;
                for (int l = 0; l < r; l++)
                    acc += A[i * r + l] * A[l * r + j];
                X[i * r + j] = acc;
            }
        memcpy(A, X, rr * sizeof(double));
    }
    return kalman_error_set(err, KALMAN_ENUMERIC,
                            "sarima: the autoregressive polynomial is not stationary");
}

/* ---- build ---------------------------------------------------------------------------- */

static int sarima_build(void *vctx, const double *params, kalman_ssm *s, kalman_workspace *ws,
                        kalman_error *err)
{
    const sarima_ctx *cx = vctx;
    const int k = cx->k, r = cx->r, m = k + r;
    const int np = cx->np;
    if (s->m != m || s->r != 1 || ws->m < m)
        return kalman_error_set(err, KALMAN_EINVAL, "sarima: system has the wrong dimensions");
    for (int i = 0; i <= cx->i_sigma2; i++)
        if (!isfinite(params[i]))
            return kalman_error_set(err, KALMAN_EINVAL, "sarima: parameter %d is not finite", i);
    const double sigma2 = params[cx->i_sigma2];
    if (!(sigma2 > 0.0))
        return kalman_error_set(err, KALMAN_EINVAL, "sarima: sigma2 must be positive");

    /* scratch from the workspace: three (m,m) matrices and two vectors (r <= m) */
    double *phi = ws->vec[0], *theta = ws->vec[1], *g = ws->vec[2];
    double *Pa = ws->mat[0];
    product_polynomials(cx, params, phi, theta);

    const size_t mm = (size_t)m * m;
    memset(s->T, 0, mm * sizeof(double));
    memset(s->Z, 0, (size_t)m * sizeof(double));
    memset(s->c, 0, (size_t)m * sizeof(double));
    memset(s->a1, 0, (size_t)m * sizeof(double));
    memset(s->P1star, 0, mm * sizeof(double));
    memset(s->P1inf, 0, mm * sizeof(double));
    s->d = 0.0;
    s->H = 0.0;
    s->Q[0] = sigma2;

    /* observation: y_t = sum delta_j y_{t-j} + x_{1,t} */
    for (int j = 0; j < k; j++)
        s->Z[j] = cx->delta[j];
    s->Z[k] = 1.0;

    /* differencing block: row 0 makes y_t, rows 1..k-1 shift the lags */
    double *T = s->T;
    if (k > 0) {
        for (int j = 0; j < k; j++)
            T[j] = cx->delta[j];
        T[k] = 1.0;
        for (int i = 1; i < k; i++)
            T[(size_t)i * m + i - 1] = 1.0;
    }
    /* ARMA block, Harvey's form: x_{i,t+1} = phi_i x_{1,t} + x_{i+1,t} + g_i e_{t+1} */
    for (int i = 0; i < r; i++) {
        double *t_i = T + (size_t)(k + i) * m + k;
        if (i < np)
            t_i[0] += phi[i];
        if (i + 1 < r)
            t_i[i + 1] = 1.0;
        g[i] = i == 0 ? 1.0 : (i - 1 < cx->nq ? theta[i - 1] : 0.0);
    }
    for (int i = 0; i < m; i++)
        s->R[i] = i < k ? 0.0 : g[i - k];
    if (cx->i_c >= 0)
        s->c[k] = params[cx->i_c];

    /* initial state: the lags diffuse (scaled, see the header), the ARMA stationary */
    for (int i = 0; i < m; i++)
        s->init[i] = i < k ? KALMAN_INIT_DIFFUSE : KALMAN_INIT_KNOWN;
    for (int i = 0; i < k; i++)
        s->P1inf[(size_t)i * m + i] = cx->kappa;
    /* the direct method needs (np+1)^2 and 3(r+1) doubles of scratch; the workspace's
     * (m,m) matrices hold that unless the system is a tiny or pure AR one */
    size_t cap = (size_t)ws->m * ws->m;
    int rc;
    if ((size_t)(np + 1) * (np + 1) <= cap && 3 * (size_t)(r + 1) <= cap)
        rc = arma_stationary_cov(r, phi, np, theta, cx->nq, Pa, ws->mat[1], ws->mat[2], err);
    else
        rc = arma_stationary_cov_doubling(r, phi, np, g, Pa, ws->mat[1], ws->mat[2], ws->mat[3],
                                          err);
    if (rc)
        return rc;
    for (int i = 0; i < r; i++)
        for (int j = 0; j < r; j++)
            s->P1star[(size_t)(k + i) * m + k + j] = sigma2 * Pa[i * r + j];
    if (cx->i_c >= 0) {
        /* stationary mean of the Harvey state: x_1 = c / phi(1), x_i = x_1 sum_{j>=i} phi_j */
        double sum = 0.0;
        for (int i = 0; i < np; i++)
            sum += phi[i];
        double mu = params[cx->i_c] / (1.0 - sum);
        for (int i = 0; i < r; i++) {
            double tail = 0.0;
            for (int j = i; j < np; j++)
                tail += phi[j];
            s->a1[k + i] = i == 0 ? mu : mu * tail;
        }
    }
    return 0;
}

/* ---- starting values ------------------------------------------------------------------ */

/* Partial autocorrelations of x (n, NaN skipped pairwise) at lags step, 2 step, .. n_ar
 * step by Levinson on the sample autocorrelations; phi gets the AR(n_ar) coefficients. */
static void yule_walker(const double *x, size_t n, int step, int n_ar, double *phi)
{
    double acf[KALMAN_MAX_PARAMS + 1] = {0};
    double mean = 0.0;
    size_t cnt = 0;
    for (size_t t = 0; t < n; t++)
        if (isfinite(x[t])) {
            mean += x[t];
            cnt++;
        }
    for (int j = 0; j < n_ar; j++)
        phi[j] = 0.0;
    if (cnt < 3)
        return;
    mean /= (double)cnt;
    for (int l = 0; l <= n_ar; l++) {
        size_t lag = (size_t)l * (size_t)step;
        double acc = 0.0;
        for (size_t t = lag; t < n; t++)
            if (isfinite(x[t]) && isfinite(x[t - lag]))
                acc += (x[t] - mean) * (x[t - lag] - mean);
        acf[l] = acc / (double)cnt;
    }
    if (!(acf[0] > 0.0))
        return;
    /* Levinson-Durbin, partial autocorrelations shrunk a little towards zero so the start
     * stays well inside the stationary region */
    double prev[KALMAN_MAX_PARAMS], v = acf[0];
    for (int k = 0; k < n_ar; k++) {
        double num = acf[k + 1];
        for (int j = 0; j < k; j++)
            num -= phi[j] * acf[k - j];
        double rk = v > 0.0 ? num / v : 0.0;
        rk = fmax(-0.9, fmin(0.9, 0.9 * rk));
        for (int j = 0; j < k; j++)
            prev[j] = phi[j];
        for (int j = 0; j < k; j++)
            phi[j] = prev[j] - rk * prev[k - 1 - j];
        phi[k] = rk;
        v *= 1.0 - rk * rk;
    }
}

/* The invertible MA(1) coefficient matching x's autocorrelation at `lag` (|rho| clipped
 * to 0.45); 0 when x is too short. */
static double ma1_from_acf(const double *x, size_t n, size_t lag)
{
    double mean = 0.0, c0 = 0.0, c1 = 0.0;
    size_t cnt = 0;
    for (size_t t = 0; t < n; t++)
        if (isfinite(x[t])) {
            mean += x[t];
            cnt++;
        }
    if (cnt < lag + 3)
        return 0.0;
    mean /= (double)cnt;
    for (size_t t = 0; t < n; t++)
        if (isfinite(x[t])) {
            c0 += (x[t] - mean) * (x[t] - mean);
            if (t >= lag && isfinite(x[t - lag]))
                c1 += (x[t] - mean) * (x[t - lag] - mean);
        }
    if (!(c0 > 0.0))
        return 0.0;
    double rho = fmax(-0.45, fmin(0.45, c1 / c0));
    if (fabs(rho) < 1e-8)
        return 0.0;
    return (1.0 - sqrt(1.0 - 4.0 * rho * rho)) / (2.0 * rho);
}

static int sarima_start(void *vctx, const double *y, size_t n, double *params, kalman_error *err)
{
    const sarima_ctx *cx = vctx;
    const kalman_sarima_spec *sp = &cx->spec;
    const size_t k = (size_t)cx->k;
    if (n <= k + 1)
        return kalman_error_set(err, KALMAN_ETOOSHORT,
                                "sarima: series of %zu points is too short for %d differences",
                                n, cx->k);
    double *w = malloc((n - k) * sizeof(double));
    if (!w)
        return kalman_error_set(err, KALMAN_ENOMEM, "sarima: out of memory");
    /* w_t = y_t - sum delta_j y_{t-j}; NaN when any term is missing */
    size_t nw = n - k, cnt = 0;
    double mean = 0.0, var = 0.0;
    for (size_t t = k; t < n; t++) {
        double acc = y[t];
        for (size_t j = 0; j < k; j++)
            if (cx->delta[j] != 0.0)
                acc -= cx->delta[j] * y[t - 1 - j];
        w[t - k] = acc;
        if (isfinite(acc)) {
            mean += acc;
            cnt++;
        }
    }
    if (cnt < 2) {
        free(w);
        return kalman_error_set(err, KALMAN_ETOOSHORT,
                                "sarima: fewer than two differenced observations");
    }
    mean /= (double)cnt;
    for (size_t t = 0; t < nw; t++)
        if (isfinite(w[t]))
            var += (w[t] - mean) * (w[t] - mean);
    var /= (double)cnt;
    if (!(var > 0.0))
        var = fmax(1e-8 * mean * mean, 1e-12);

    double sum_phi = 0.0;
    if (sp->p) {
        yule_walker(w, nw, 1, sp->p, params + cx->i_ar);
        for (int j = 0; j < sp->p; j++)
            sum_phi += params[cx->i_ar + j];
    }
    if (sp->P)
        yule_walker(w, nw, sp->s, sp->P, params + cx->i_sar);
    double sum_sphi = 0.0;
    for (int j = 0; j < sp->P; j++)
        sum_sphi += params[cx->i_sar + j];
    for (int j = 0; j < sp->q; j++)
        params[cx->i_ma + j] = 0.0;
    for (int j = 0; j < sp->Q; j++)
        params[cx->i_sma + j] = 0.0;
    /* without an AR part, the first MA coefficient from the lag's autocorrelation
     * (MA(1): rho = theta / (1 + theta^2)), which saves the optimizer most of its way */
    if (sp->q && !sp->p)
        params[cx->i_ma] = ma1_from_acf(w, nw, 1);
    if (sp->Q && !sp->P)
        params[cx->i_sma] = ma1_from_acf(w, nw, (size_t)sp->s);
    if (cx->i_c >= 0)
        params[cx->i_c] = mean * (1.0 - sum_phi) * (1.0 - sum_sphi);
    /* innovations variance of the AR fit, roughly: var * prod (1 - r_k^2) */
    params[cx->i_sigma2] = var * fmax(0.1, (1.0 - sum_phi * sum_phi) * (1.0 - sum_sphi * sum_sphi));
    free(w);
    return 0;
}

/* ---- create --------------------------------------------------------------------------- */

static void sarima_destroy(kalman_model *model)
{
    if (!model)
        return;
    free(model->ctx);
    free(model);
}

/* Sum of log F_inf over the diffuse phase of the lags block with P1inf = I and no missing
 * observations: the differencing companion T_d (first row delta), Z_d = delta. Returns the
 * number of diffuse observations (k when the recursion behaves) via *count. */
static double diffuse_logdet(const double *delta, int k, int *count)
{
    double *Pinf = calloc((size_t)k * k, sizeof(double));
    double *TP = calloc((size_t)k * k, sizeof(double));
    double *M = calloc((size_t)k, sizeof(double));
    double *L = calloc((size_t)k * k, sizeof(double));
    double total = 0.0;
    *count = 0;
    if (!Pinf || !TP || !M || !L)
        goto done;
    for (int i = 0; i < k; i++)
        Pinf[i * k + i] = 1.0;
    for (int step = 0; step < 4 * k + 4; step++) {
        double big = 0.0;
        for (int i = 0; i < k * k; i++)
            big = fmax(big, fabs(Pinf[i]));
        if (big <= KALMAN_PINF_TOL)
            break;
        /* M = Pinf Z', F = Z M */
        double F = 0.0;
        for (int i = 0; i < k; i++) {
            double acc = 0.0;
            for (int j = 0; j < k; j++)
                acc += Pinf[i * k + j] * delta[j];
            M[i] = acc;
        }
        for (int i = 0; i < k; i++)
            F += delta[i] * M[i];
        if (F > KALMAN_FINF_TOL) {
            total += log(F);
            (*count)++;
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++)
                    Pinf[i * k + j] -= M[i] * M[j] / F;
        }
        /* Pinf <- T_d Pinf T_d': row 0 of T_d is delta, row i>0 picks row i-1 */
        for (int j = 0; j < k; j++) {
            double acc = 0.0;
            for (int l = 0; l < k; l++)
                acc += delta[l] * Pinf[l * k + j];
            TP[j] = acc;
            for (int i = 1; i < k; i++)
                TP[i * k + j] = Pinf[(i - 1) * k + j];
        }
        for (int i = 0; i < k; i++) {
            double acc = 0.0;
            for (int l = 0; l < k; l++)
                acc += TP[i * k + l] * delta[l];
            L[i * k + 0] = acc;
            for (int j = 1; j < k; j++)
                L[i * k + j] = TP[i * k + j - 1];
        }
        memcpy(Pinf, L, (size_t)k * k * sizeof(double));
    }
done:
    free(Pinf);
    free(TP);
    free(M);
    free(L);
    return total;
}

kalman_model *kalman_sarima_create(const kalman_sarima_spec *spec, kalman_error *err)
{
    if (!spec) {
        kalman_error_set(err, KALMAN_EINVAL, "sarima: no specification given");
        return NULL;
    }
    kalman_sarima_spec sp = *spec;
    if (sp.p < 0 || sp.d < 0 || sp.q < 0 || sp.P < 0 || sp.D < 0 || sp.Q < 0 || sp.s < 0) {
        kalman_error_set(err, KALMAN_EINVAL, "sarima: orders must not be negative");
        return NULL;
    }
    if (sp.P == 0 && sp.D == 0 && sp.Q == 0)
        sp.s = 0;
    if (sp.s == 1 || (sp.s == 0 && (sp.P || sp.D || sp.Q))) {
        kalman_error_set(err, KALMAN_EINVAL,
                         "sarima: a seasonal part needs a season length of at least 2");
        return NULL;
    }
    int np = sp.p + sp.s * sp.P, nq = sp.q + sp.s * sp.Q;
    int k = sp.d + sp.s * sp.D;
    int r = np > nq + 1 ? np : nq + 1;
    int nparams = (sp.constant ? 1 : 0) + sp.p + sp.q + sp.P + sp.Q + 1;
    if (k + r > KALMAN_MAX_STATES || nparams > KALMAN_MAX_PARAMS || sp.d > 3 || sp.D > 2) {
        kalman_error_set(err, KALMAN_EINVAL,
                         "sarima: model too large: %d states (at most %d), d <= 3, D <= 2",
                         k + r, KALMAN_MAX_STATES);
        return NULL;
    }
    kalman_model *model = calloc(1, sizeof(*model));
    sarima_ctx *cx = calloc(1, sizeof(*cx));
    if (!model || !cx) {
        free(model);
        free(cx);
        kalman_error_set(err, KALMAN_ENOMEM, "sarima: out of memory");
        return NULL;
    }
    cx->spec = sp;
    cx->k = k;
    cx->r = r;
    cx->np = np;
    cx->nq = nq;

    /* delta(L) = 1 - (1-L)^d (1-L^s)^D: expand the product, coefficients c_0..c_k */
    double poly[KALMAN_MAX_STATES + 1] = {1.0};
    int deg = 0;
    for (int i = 0; i < sp.d + sp.D; i++) {
        int lag = i < sp.d ? 1 : sp.s;
        for (int j = deg + lag; j >= 0; j--) {
            double v = j <= deg ? poly[j] : 0.0;
            if (j >= lag)
                v -= poly[j - lag];
            poly[j] = v;
        }
        deg += lag;
    }
    for (int j = 0; j < k; j++)
        cx->delta[j] = -poly[j + 1];

    cx->kappa = 1.0;
    if (k > 0) {
        int count = 0;
        double logdet = diffuse_logdet(cx->delta, k, &count);
        if (count > 0)
            cx->kappa = exp(-logdet / count - LOG_2PI);
    }

    /* parameters, statsmodels' order */
    int i = 0;
    cx->i_c = cx->i_ar = cx->i_ma = cx->i_sar = cx->i_sma = -1;
    if (sp.constant) {
        cx->i_c = i;
        snprintf(model->names[i++], sizeof(model->names[0]), "intercept");
    }
    if (sp.p)
        cx->i_ar = i;
    for (int j = 1; j <= sp.p; j++)
        snprintf(model->names[i++], sizeof(model->names[0]), "ar.L%d", j);
    if (sp.q)
        cx->i_ma = i;
    for (int j = 1; j <= sp.q; j++)
        snprintf(model->names[i++], sizeof(model->names[0]), "ma.L%d", j);
    if (sp.P)
        cx->i_sar = i;
    for (int j = 1; j <= sp.P; j++)
        snprintf(model->names[i++], sizeof(model->names[0]), "ar.S.L%d", j * sp.s);
    if (sp.Q)
        cx->i_sma = i;
    for (int j = 1; j <= sp.Q; j++)
        snprintf(model->names[i++], sizeof(model->names[0]), "ma.S.L%d", j * sp.s);
    cx->i_sigma2 = i;
    snprintf(model->names[i], sizeof(model->names[0]), "sigma2");
    model->is_variance[i] = 1;
    model->nparams = nparams;
    model->concentrate_ok = 1;
    model->m = k + r;
    model->r = 1;
    model->ctx = cx;
    model->build = sarima_build;
    model->transform = sarima_transform;
    model->untransform = sarima_untransform;
    model->start = sarima_start;
    model->destroy = sarima_destroy;
    model->fit = kalman_sarima_fit;
    kalman_sarima_format(&sp, model->spec, sizeof(model->spec));
    return model;
}

/* ---- fast exact likelihood of the differenced series ------------------------------------ */

typedef struct arma_work {
    const sarima_ctx *cx;
    const double *w;        /* (nw) differenced series, no NaN */
    size_t nw;
    int nfree;
    int idx[KALMAN_MAX_PARAMS];      /* optimizer coordinate -> parameter index */
    double ubase[KALMAN_MAX_PARAMS]; /* unconstrained values of the fixed coordinates */
    const kalman_model *model;
    long nevals;
    /* scratch, r or (r,r) */
    double *P, *A, *W, *X, *phi, *theta, *g, *a, *K, *Wc, *TW, *a1c;
    int profile_c;          /* 1: the intercept is profiled out (not an optimizer coordinate) */
} arma_work;

/* Exact log-likelihood of w (nw) under the ARMA part of params (constrained). With
 * concentrated != 0 sigma2 is concentrated out (its MLE goes to *sigma2_hat). Returns NAN
 * when the parameters are not admissible.
 *
 * Predicting form, Z = e_1, H = 0: F_t = P_t[0][0], K_t = T P_t e_1 (unnormalized gain),
 *   v_t = w_t - a_t[0], a_{t+1} = T a_t + K_t v_t / F_t + c e_1.
 * Chandrasekhar: P_{t+1} - P_t = W_t M_t W_t' (rank one, scalar M_t), started from the
 * stationary P_1 where P_2 - P_1 = -K_1 K_1' / F_1, and with L_t = T - K_t e_1' / F_t:
 *   F_{t+1} = F_t + M_t W_t[0]^2,        K_{t+1} = K_t + M_t W_t[0] T W_t,
 *   W_{t+1} = L_t W_t,                   M_{t+1} = M_t - M_t^2 W_t[0]^2 / F_{t+1}. */
static double arma_loglik(arma_work *wk, const double *params, int concentrated,
                          double *sigma2_hat, double *c_hat)
{
    const sarima_ctx *cx = wk->cx;
    const int r = cx->r, np = cx->np;
    double *phi = wk->phi, *g = wk->g, *a = wk->a, *K = wk->K, *Wc = wk->Wc, *TW = wk->TW;
    double *a1c = wk->a1c;
    wk->nevals++;
    for (int i = 0; i <= cx->i_sigma2; i++)
        if (!isfinite(params[i]))
            return NAN;
    product_polynomials(cx, params, phi, wk->theta);
    for (int i = 0; i < r; i++)
        g[i] = i == 0 ? 1.0 : (i - 1 < cx->nq ? wk->theta[i - 1] : 0.0);
    if (arma_stationary_cov(r, phi, np, wk->theta, cx->nq, wk->P, wk->A, wk->W, NULL))
        return NAN;
    const double s2 = concentrated ? 1.0 : params[cx->i_sigma2];
    if (!(s2 > 0.0))
        return NAN;
    const double *P = wk->P;
    const int has_c = cx->i_c >= 0;

    /* The innovations are affine in the intercept: v_t = v0_t + c v1_t, where v0 runs the
     * filter on w with c = 0 and v1 on zero data with c = 1 (same gains). a holds the
     * first filter's state, a1c the second's: its initial mean is the stationary mean
     * for c = 1, x_1 = 1 / phi(1), x_i = x_1 sum_{j>=i} phi_j. */
    double sum = 0.0;
    for (int i = 0; i < np; i++)
        sum += phi[i];
    double mu = 1.0 / (1.0 - sum);
    for (int i = 0; i < r; i++) {
        double tail = 0.0;
        for (int j = i; j < np; j++)
            tail += phi[j];
        a[i] = 0.0;
        a1c[i] = i == 0 ? mu : mu * tail;
    }
    double F = P[0] * s2;
    for (int i = 0; i < r; i++) /* (T P e_1)_i = phi_i P_00 + P_{i+1,0} */
        K[i] = ((i < np ? phi[i] * P[0] : 0.0) + (i + 1 < r ? P[(i + 1) * r] : 0.0)) * s2;
    if (!(F > 0.0))
        return NAN;
    memcpy(Wc, K, (size_t)r * sizeof(double));
    double M = -1.0 / F;
    int steady = 0;

    /* phi padded with zeros to r, a / a1c / Wc with a zero at index r: branch-free loops */
    for (int i = np; i < r; i++)
        phi[i] = 0.0;
    a[r] = a1c[r] = Wc[r] = 0.0;
    double sum_logF = 0.0, S00 = 0.0, S01 = 0.0, S11 = 0.0;
    double prodF = 1.0; /* product of F over a few steps: one log per 16 steps */
    int nprod = 0;
    for (size_t t = 0; t < wk->nw; t++) {
        double v0 = wk->w[t] - a[0];
        double invF = 1.0 / F;
        prodF *= F;
        if (++nprod == 16) {
            sum_logF += log(prodF);
            prodF = 1.0;
            nprod = 0;
        }
        S00 += v0 * v0 * invF;
        /* a_{t+1} = T a + K v / F (+ c e_1) */
        double a0 = a[0], kv = v0 * invF;
        for (int i = 0; i < r; i++)
            a[i] = phi[i] * a0 + a[i + 1] + K[i] * kv;
        if (has_c) {
            double v1 = -a1c[0];
            S01 += v0 * v1 * invF;
            S11 += v1 * v1 * invF;
            double b0 = a1c[0], kv1 = v1 * invF;
            for (int i = 0; i < r; i++)
                a1c[i] = phi[i] * b0 + a1c[i + 1] + K[i] * kv1;
            a1c[0] += 1.0;
        }
        if (steady)
            continue;
        /* Chandrasekhar step */
        double zw = Wc[0];
        for (int i = 0; i < r; i++)
            TW[i] = phi[i] * zw + Wc[i + 1];
        double Fn = F + M * zw * zw;
        if (!(Fn > 0.0))
            return NAN;
        double kf = zw / F, mz = M * zw, big = 0.0;
        for (int i = 0; i < r; i++) {
            Wc[i] = TW[i] - K[i] * kf;
            K[i] += mz * TW[i];
            big = fmax(big, Wc[i] * Wc[i]);
        }
        M -= mz * mz / Fn;
        F = Fn;
        if (big * fabs(M) < 1e-15 * F)
            steady = 1;
    }
    sum_logF += log(prodF);
    /* the intercept: given, or profiled out (GLS) */
    double c = has_c ? params[cx->i_c] : 0.0;
    if (has_c && c_hat) {
        c = S11 > 0.0 ? -S01 / S11 : 0.0;
        *c_hat = c;
    }
    double ssq = S00 + 2.0 * c * S01 + c * c * S11;
    double n = (double)wk->nw;
    if (concentrated) {
        double sh = ssq / n;
        if (!(sh > 0.0) || !isfinite(sh))
            return NAN;
        if (sigma2_hat)
            *sigma2_hat = sh;
        return -0.5 * (n * LOG_2PI + sum_logF + n * log(sh) + n);
    }
    return -0.5 * (n * LOG_2PI + sum_logF + ssq);
}

static void arma_x_to_params(const arma_work *wk, const double *x, double *p)
{
    const kalman_model *mod = wk->model;
    double u[KALMAN_MAX_PARAMS];
    memcpy(u, wk->ubase, (size_t)mod->nparams * sizeof(double));
    for (int i = 0; i < wk->nfree; i++)
        u[wk->idx[i]] = x[i];
    mod->transform(mod->ctx, u, p);
    for (int i = 0; i < mod->nparams; i++)
        if (mod->fixed[i])
            p[i] = mod->fixed_value[i];
    p[wk->cx->i_sigma2] = 1.0;
}

static double arma_objective(const gsl_vector *xv, void *vwk)
{
    arma_work *wk = vwk;
    double x[KALMAN_MAX_PARAMS], p[KALMAN_MAX_PARAMS];
    for (int i = 0; i < wk->nfree; i++)
        x[i] = gsl_vector_get(xv, (size_t)i);
    arma_x_to_params(wk, x, p);
    double chat;
    double ll = arma_loglik(wk, p, 1, NULL, wk->profile_c ? &chat : NULL);
    return isfinite(ll) ? -ll / (double)wk->nw : 1e30;
}

/* central differences on the unconstrained scale */
static void arma_gradient(const gsl_vector *xv, void *vwk, gsl_vector *grad)
{
    arma_work *wk = vwk;
    double x[KALMAN_MAX_PARAMS];
    gsl_vector_view xw_view;
    for (int i = 0; i < wk->nfree; i++)
        x[i] = gsl_vector_get(xv, (size_t)i);
    xw_view = gsl_vector_view_array(x, (size_t)wk->nfree);
    for (int i = 0; i < wk->nfree; i++) {
        double xi = x[i], h = 1e-6 * fmax(1.0, fabs(xi));
        x[i] = xi + h;
        double fp = arma_objective(&xw_view.vector, wk);
        x[i] = xi - h;
        double fm = arma_objective(&xw_view.vector, wk);
        x[i] = xi;
        double gi = (fp - fm) / (2.0 * h);
        gsl_vector_set(grad, (size_t)i, isfinite(gi) && fp < 1e29 && fm < 1e29 ? gi : 0.0);
    }
}

static void arma_fdf(const gsl_vector *x, void *vwk, double *f, gsl_vector *grad)
{
    *f = arma_objective(x, vwk);
    arma_gradient(x, vwk, grad);
}

/* BFGS2 from x (nfree, in place); Nelder-Mead then BFGS2 again when BFGS2 stalls away
 * from a stationary point. Returns the objective; *converged, *iters accumulate. */
static double arma_minimize(arma_work *wk, double *x, int max_iter, double tol, int *converged,
                            int *iters)
{
    const size_t k = (size_t)wk->nfree;
    gsl_multimin_function_fdf fdf = {arma_objective, arma_gradient, arma_fdf, k, wk};
    gsl_vector_view xv = gsl_vector_view_array(x, k);
    gsl_multimin_fdfminimizer *s =
        gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, k);
    if (!s)
        return NAN;
    gsl_multimin_fdfminimizer_set(s, &fdf, &xv.vector, 0.05, 0.1);
    int it = 0, status = GSL_CONTINUE;
    while (it < max_iter && status == GSL_CONTINUE) {
        it++;
        if (gsl_multimin_fdfminimizer_iterate(s))
            break;
        status = gsl_multimin_test_gradient(s->gradient, tol);
    }
    double gnorm = 0.0;
    for (size_t i = 0; i < k; i++)
        gnorm += gsl_vector_get(s->gradient, i) * gsl_vector_get(s->gradient, i);
    double f = s->f;
    for (size_t i = 0; i < k; i++)
        x[i] = gsl_vector_get(s->x, i);
    gsl_multimin_fdfminimizer_free(s);
    *iters += it;
    int ok = sqrt(gnorm) < fmax(100.0 * tol, 1e-5) && f < 1e29;
    if (!ok) {
        /* Nelder-Mead from the BFGS point, then BFGS again */
        gsl_multimin_function fn = {arma_objective, k, wk};
        gsl_multimin_fminimizer *nm =
            gsl_multimin_fminimizer_alloc(gsl_multimin_fminimizer_nmsimplex2, k);
        gsl_vector *step = gsl_vector_alloc(k);
        if (!nm || !step) {
            if (nm)
                gsl_multimin_fminimizer_free(nm);
            gsl_vector_free(step);
            *converged = 0;
            return f;
        }
        gsl_vector_set_all(step, 0.3);
        xv = gsl_vector_view_array(x, k);
        gsl_multimin_fminimizer_set(nm, &fn, &xv.vector, step);
        int nit = 0;
        status = GSL_CONTINUE;
        while (nit < 20 * max_iter && status == GSL_CONTINUE) {
            nit++;
            if (gsl_multimin_fminimizer_iterate(nm))
                break;
            status = gsl_multimin_test_size(gsl_multimin_fminimizer_size(nm), 1e-9);
        }
        if (nm->fval < f) {
            f = nm->fval;
            for (size_t i = 0; i < k; i++)
                x[i] = gsl_vector_get(nm->x, i);
        }
        *iters += nit;
        gsl_multimin_fminimizer_free(nm);
        gsl_vector_free(step);
        s = gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, k);
        if (!s) {
            *converged = 0;
            return f;
        }
        double xs[KALMAN_MAX_PARAMS];
        memcpy(xs, x, k * sizeof(double));
        xv = gsl_vector_view_array(xs, k);
        gsl_multimin_fdfminimizer_set(s, &fdf, &xv.vector, 0.01, 0.1);
        it = 0;
        status = GSL_CONTINUE;
        while (it < max_iter && status == GSL_CONTINUE) {
            it++;
            if (gsl_multimin_fdfminimizer_iterate(s))
                break;
            status = gsl_multimin_test_gradient(s->gradient, tol);
        }
        *iters += it;
        gnorm = 0.0;
        for (size_t i = 0; i < k; i++)
            gnorm += gsl_vector_get(s->gradient, i) * gsl_vector_get(s->gradient, i);
        if (s->f <= f) {
            f = s->f;
            for (size_t i = 0; i < k; i++)
                x[i] = gsl_vector_get(s->x, i);
        }
        ok = sqrt(gnorm) < fmax(100.0 * tol, 1e-5) || status == GSL_SUCCESS;
        gsl_multimin_fdfminimizer_free(s);
    }
    if (!ok)
        *converged = 0;
    return f;
}

/* SARIMA's information criteria: k = free parameters (sigma2 included), n_eff = the
 * differenced series' length, as statsmodels' SARIMAX (default) and R's arima count. */
static void sarima_criteria(const sarima_ctx *cx, const kalman_model *model, size_t n,
                            kalman_fit_result *res)
{
    long nfree = 0;
    for (int i = 0; i < model->nparams; i++)
        nfree += !model->fixed[i];
    res->nfree = nfree;
    res->nobs_eff = (long)n - cx->k;
    kalman_fit_criteria(res);
}

static int generic_fit(const sarima_ctx *cx, const kalman_model *model, const double *y,
                       size_t n, const kalman_fit_opts *opts, kalman_fit_result *res,
                       kalman_error *err)
{
    kalman_model plain = *model;
    plain.fit = NULL; /* the generic path, never back here */
    int rc = kalman_fit(&plain, y, n, opts, res, err);
    if (rc == 0)
        sarima_criteria(cx, model, n, res);
    return rc;
}

/* Sets up the fast path for y[0..n) (n > k): one malloc'ed block *buf holding the
 * differenced series w (nw = n - k; w[t - k] = y_t - sum_j delta_j y_{t-1-j}) and the
 * scratch of arma_loglik (r-vectors phi .. a1c at stride r + 1, P (r,r), A, W, X
 * (r+2,r+2)), with *wk pointing into it; the caller frees *buf. Returns 0;
 * KALMAN_EUNSUPPORTED, err untouched and nothing allocated, when a differenced value is
 * missing; KALMAN_ENOMEM. */
static int arma_work_init(arma_work *wk, const sarima_ctx *cx, const kalman_model *model,
                          const double *y, size_t n, double **buf, kalman_error *err)
{
    const int k = cx->k, r = cx->r;
    size_t nw = n - (size_t)k;
    double *b = malloc((nw + 8 * (size_t)(r + 1) + 4 * (size_t)(r + 2) * (r + 2)) * sizeof(double));
    if (!b)
        return kalman_error_set(err, KALMAN_ENOMEM, "sarima: out of memory");
    double *w = b;
    for (size_t t = (size_t)k; t < n; t++) {
        double acc = y[t];
        for (int j = 0; j < k; j++)
            if (cx->delta[j] != 0.0)
                acc -= cx->delta[j] * y[t - 1 - (size_t)j];
        if (isnan(acc)) {
            free(b);
            return KALMAN_EUNSUPPORTED;
        }
        w[t - (size_t)k] = acc;
    }
    *wk = (arma_work){.cx = cx, .w = w, .nw = nw, .model = model};
    double *p = b + nw;
    const int r1 = r + 1;
    wk->phi = p;
    wk->theta = p + r1;
    wk->g = p + 2 * r1;
    wk->a = p + 3 * r1;
    wk->K = p + 4 * r1;
    wk->Wc = p + 5 * r1;
    wk->TW = p + 6 * r1;
    wk->a1c = p + 7 * r1;
    wk->P = p + 8 * r1;
    wk->A = wk->P + (size_t)r * r;
    wk->W = wk->A + (size_t)(r + 2) * (r + 2);
    wk->X = wk->W + (size_t)(r + 2) * (r + 2);
    *buf = b;
    return 0;
}

int kalman_sarima_fit(const kalman_model *model, const double *y, size_t n,
                      const kalman_fit_opts *opts, kalman_fit_result *res, kalman_error *err)
{
    if (!model || model->build != sarima_build || !res || (!y && n))
        return kalman_error_set(err, KALMAN_EINVAL,
                                "kalman_sarima_fit needs a SARIMA model, data and a result");
    const sarima_ctx *cx = model->ctx;
    const int np = model->nparams, k = cx->k;
    kalman_fit_opts o = {0};
    if (opts)
        o = *opts;
    int max_iter = o.max_iter > 0 ? o.max_iter : 500;
    double tol = o.tol > 0 ? o.tol : 1e-6;
    memset(res, 0, sizeof *res);
    for (size_t t = 0; t < n; t++)
        if (isinf(y[t]))
            return kalman_error_set(err, KALMAN_EINVAL, "observation %zu is infinite", t);

    /* the differenced series; any gap sends us down the generic path */
    if (n <= (size_t)k + (size_t)np + 1 || model->fixed[cx->i_sigma2] || o.no_concentrate)
        return generic_fit(cx, model, y, n, opts, res, err);
    const size_t nw = n - (size_t)k;
    arma_work wk;
    double *buf;
    int rc = arma_work_init(&wk, cx, model, y, n, &buf, err);
    if (rc == KALMAN_EUNSUPPORTED)
        return generic_fit(cx, model, y, n, opts, res, err);
    if (rc)
        return rc;

    /* start, coordinates */
    double p0[KALMAN_MAX_PARAMS] = {0};
    if (o.start)
        memcpy(p0, o.start, (size_t)np * sizeof(double));
    else if ((rc = sarima_start(model->ctx, y, n, p0, err)) != 0)
        goto done;
    for (int i = 0; i < np; i++)
        if (model->fixed[i])
            p0[i] = model->fixed_value[i];
    p0[cx->i_sigma2] = 1.0;
    model->untransform(model->ctx, p0, wk.ubase);
    wk.profile_c = cx->i_c >= 0 && !model->fixed[cx->i_c];
    for (int i = 0; i < np; i++)
        if (!model->fixed[i] && i != cx->i_sigma2 && !(wk.profile_c && i == cx->i_c))
            wk.idx[wk.nfree++] = i;

    double xbest[KALMAN_MAX_PARAMS], fbest = INFINITY;
    int converged = 1, iters = 0;
    if (wk.nfree == 0) {
        double pp[KALMAN_MAX_PARAMS];
        arma_x_to_params(&wk, NULL, pp);
        double chat;
        double ll = arma_loglik(&wk, pp, 1, NULL, wk.profile_c ? &chat : NULL);
        fbest = isfinite(ll) ? -ll / (double)nw : INFINITY;
    } else {
        /* runs: the data-based start, then (restarts) the origin of the unconstrained
         * space and shrunken versions of the start; the best wins */
        /* default: a second run only where local optima are common (AR and MA terms
         * together) or when the first did not converge */
        const kalman_sarima_spec *sp = &cx->spec;
        int mixed = (sp->p + sp->P) > 0 && (sp->q + sp->Q) > 0;
        int restarts = o.restarts < 0 ? 0 : (o.restarts == 0 ? 1 : o.restarts);
        for (int run = 0; run <= restarts; run++) {
            if (run == 1 && o.restarts == 0 && !mixed && converged)
                break;
            double x[KALMAN_MAX_PARAMS];
            for (int i = 0; i < wk.nfree; i++) {
                double u = wk.ubase[wk.idx[i]];
                x[i] = run == 0 ? u : (run == 1 ? 0.0 : u * pow(0.5, run - 1));
                if (run > 0 && wk.idx[i] == cx->i_c)
                    x[i] = u; /* a fixed-scale intercept keeps its data-based start */
            }
            int conv = 1;
            double f = arma_minimize(&wk, x, max_iter, tol, &conv, &iters);
            if (run == 0 || f < fbest - 1e-12) {
                fbest = f;
                converged = conv;
                memcpy(xbest, x, (size_t)wk.nfree * sizeof(double));
            }
        }
    }
    if (!(fbest < 1e29)) {
        free(buf);
        return generic_fit(cx, model, y, n, opts, res, err);
    }
    double pbest[KALMAN_MAX_PARAMS], s2 = NAN, chat = NAN;
    arma_x_to_params(&wk, xbest, pbest);
    double ll = arma_loglik(&wk, pbest, 1, &s2, wk.profile_c ? &chat : NULL);
    if (wk.profile_c)
        pbest[cx->i_c] = chat;
    if (!isfinite(ll) || !(s2 > 0.0)) {
        free(buf);
        return generic_fit(cx, model, y, n, opts, res, err);
    }
    pbest[cx->i_sigma2] = s2;
    res->nparams = np;
    memcpy(res->params, pbest, (size_t)np * sizeof(double));
    res->loglik = ll;
    res->converged = converged;
    res->iterations = iters;
    res->nobs = (long)n;
    res->ndiffuse = k;
    sarima_criteria(cx, model, n, res);
done:
    free(buf);
    return rc;
}

/* Exact log-likelihood of y at constrained params through the fast path (no missing
 * differenced value) — for tests and benchmarks; KALMAN_EUNSUPPORTED when a differenced
 * value is missing. */
int kalman_sarima_loglik(const kalman_model *model, const double *y, size_t n,
                         const double *params, double *loglik, kalman_error *err)
{
    if (!model || model->build != sarima_build || !y || !params || !loglik)
        return kalman_error_set(err, KALMAN_EINVAL, "kalman_sarima_loglik: bad arguments");
    const sarima_ctx *cx = model->ctx;
    if (n <= (size_t)cx->k)
        return kalman_error_set(err, KALMAN_ETOOSHORT, "sarima: series too short");
    arma_work wk;
    double *buf;
    int rc = arma_work_init(&wk, cx, model, y, n, &buf, err);
    if (rc == KALMAN_EUNSUPPORTED)
        return kalman_error_set(err, KALMAN_EUNSUPPORTED,
                                "sarima: fast likelihood needs complete differenced data");
    if (rc)
        return rc;
    *loglik = arma_loglik(&wk, params, 0, NULL, NULL);
    free(buf);
    if (!isfinite(*loglik))
        return kalman_error_set(err, KALMAN_EINVAL, "sarima: parameters not admissible");
    return 0;
}

/* ---- spec text ------------------------------------------------------------------------ */

void kalman_sarima_format(const kalman_sarima_spec *sp, char *buf, size_t len)
{
    int n;
    if (sp->s > 0 && (sp->P || sp->D || sp->Q))
        n = snprintf(buf, len, "sarima(%d,%d,%d)(%d,%d,%d)[%d]", sp->p, sp->d, sp->q, sp->P,
                     sp->D, sp->Q, sp->s);
    else
        n = snprintf(buf, len, "sarima(%d,%d,%d)", sp->p, sp->d, sp->q);
    if (sp->constant && n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, "+c");
}

static const char *skip_ws(const char *p)
{
    while (*p && isspace((unsigned char)*p))
        p++;
    return p;
}

/* Reads "(a,b,c)" into v[0..2]; returns the position after ')' or NULL. */
static const char *read_triple(const char *p, int *v)
{
    p = skip_ws(p);
    if (*p != '(')
        return NULL;
    p++;
    for (int i = 0; i < 3; i++) {
        char *end;
        p = skip_ws(p);
        if (!isdigit((unsigned char)*p))
            return NULL;
        long x = strtol(p, &end, 10);
        if (x > 1000)
            return NULL;
        v[i] = (int)x;
        p = skip_ws(end);
        if (*p != (i < 2 ? ',' : ')'))
            return NULL;
        p++;
    }
    return p;
}

int kalman_sarima_parse(const char *args, int season, kalman_sarima_spec *out,
                        kalman_error *err)
{
    memset(out, 0, sizeof(*out));
    const char *p = args ? args : "";
    int v[3];
    const char *q = read_triple(p, v);
    if (!q)
        return kalman_error_set(err, KALMAN_EINVAL,
                                "sarima: expected (p,d,q), e.g. sarima(0,1,1)(0,1,1)[12], got \"%s\"",
                                p);
    out->p = v[0];
    out->d = v[1];
    out->q = v[2];
    p = skip_ws(q);
    if (*p == '(') {
        q = read_triple(p, v);
        if (!q)
            return kalman_error_set(err, KALMAN_EINVAL,
                                    "sarima: expected a seasonal part (P,D,Q)[s] in \"%s\"", args);
        out->P = v[0];
        out->D = v[1];
        out->Q = v[2];
        p = skip_ws(q);
        if (*p == '[') {
            char *end;
            long s = strtol(p + 1, &end, 10);
            if (end == p + 1 || *end != ']' || s < 2 || s > 1000)
                return kalman_error_set(err, KALMAN_EINVAL,
                                        "sarima: bad season length in \"%s\"", args);
            out->s = (int)s;
            p = skip_ws(end + 1);
        } else {
            if (season < 2)
                return kalman_error_set(err, KALMAN_EINVAL,
                                        "sarima: seasonal part without a season length: write (P,D,Q)[s]");
            out->s = season;
        }
    }
    if (*p == '+' || *p == ',') {
        p = skip_ws(p + 1);
        size_t len = strcspn(p, " \t");
        if ((len == 1 && *p == 'c') || (len == 5 && !strncmp(p, "const", 5)) ||
            (len == 8 && !strncmp(p, "constant", 8)) || (len == 9 && !strncmp(p, "intercept", 9))) {
            out->constant = 1;
        } else if (len == 5 && !strncmp(p, "drift", 5)) {
            if (out->d + out->D != 1)
                return kalman_error_set(err, KALMAN_EINVAL,
                                        "sarima: drift needs exactly one difference (d + D = 1); "
                                        "use +c for an intercept of the differenced series");
            out->constant = 1;
        } else {
            return kalman_error_set(err, KALMAN_EINVAL,
                                    "sarima: unknown option \"%.*s\" (expected c or drift)",
                                    (int)len, p);
        }
        p = skip_ws(p + len);
    }
    if (*p)
        return kalman_error_set(err, KALMAN_EINVAL, "sarima: unexpected text \"%s\" in spec", p);
    if (out->P + out->D + out->Q == 0)
        out->s = 0;
    return 0;
}
