/*
 * kalman/ets.c — the additive ETS family, ETS(A,N,N), (A,A,N), (A,Ad,N), (A,N,A), (A,A,A)
 * and (A,Ad,A), as linear innovations state space models (Hyndman et al. 2008), with the
 * parameter space of R's forecast::ets and the likelihood of statsmodels' ETSModel.
 *
 * The model, x_t = (l_t, b_t, s_t, .., s_{t-m+1}):
 *     y_t = l_{t-1} + phi b_{t-1} + s_{t-m} + e_t,           e_t ~ N(0, sigma2)
 *     l_t = l_{t-1} + phi b_{t-1} + alpha e_t,  b_t = phi b_{t-1} + beta e_t,
 *     s_t = s_{t-m} + gamma e_t.
 * Its single source of error does not fit D&K's form (independent e_t, n_t) directly, so
 * the Kalman state carries the error too: a_t = (x_{t-1}, e_t), Z = (w', 1), H = 0,
 * T = [[F, g], [0, 0]], R = e_last, Q = sigma2. With the initial states known
 * (P1 = diag(0, .., 0, sigma2)) the filter reproduces the ETS recursion exactly and its
 * log-likelihood is ETSModel's (and, up to R's dropped constants, ets's).
 *
 * The initial states are parameters, as in R and statsmodels (not diffuse): that is what
 * makes the likelihood comparable with theirs. The last initial seasonal value is fixed at
 * 0 (statsmodels' normalisation; the level absorbs it, so the model is the same as R's
 * sum-to-zero one). Estimation (kalman_ets_fit) exploits that the innovations are affine
 * in the initial states for fixed smoothing parameters: those are solved by least squares
 * inside every likelihood evaluation, so the optimizer (Nelder-Mead from a small grid)
 * only sees the 1-4 smoothing parameters, and the optimum over the initial states is
 * exact, not approximate. (With missing observations the innovation at a gap is unknown,
 * not zero; the profile optimum is then only the start of a generic kalman_fit.)
 *
 * Parameters (statsmodels' names and order): smoothing_level, smoothing_trend,
 * smoothing_seasonal, damping_trend, initial_level, initial_trend, initial_seasonal.0 ..
 * initial_seasonal.<m-1> (initial_seasonal.j = s_{-j}), then sigma2. The admissible set is
 * R's "usual" region: alpha in [1e-4, 1 - 1e-4], beta in [1e-4, alpha],
 * gamma in [1e-4, 1 - alpha], phi in [0.8, 0.98]; the transforms map R^k onto its interior.
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
#define ETS_LO 1e-4
#define ETS_HI (1.0 - 1e-4)
#define ETS_PHI_LO 0.8
#define ETS_PHI_HI 0.98

typedef struct ets_ctx {
    kalman_ets_spec spec;
    int trend;      /* 1 with a slope */
    int m;          /* seasonal period, 0 without a seasonal */
    int nx;         /* ETS states: 1 + trend + m */
    int nsmooth;    /* smoothing parameters (incl. damping) */
    int i_alpha, i_beta, i_gamma, i_phi;   /* -1 when absent */
    int i_l0, i_b0, i_s0, i_sigma2;
    int ninit;      /* free initial states: 1 + trend + (m - 1) */
} ets_ctx;

/* ---- transforms ------------------------------------------------------------------------ */

static double logistic(double u)
{
    return 1.0 / (1.0 + exp(-u));
}

static double logit_clamped(double p)
{
    p = fmin(fmax(p, 1e-12), 1.0 - 1e-12);
    return log(p / (1.0 - p));
}

/* smoothing u (nsmooth) -> alpha, beta, gamma, phi in the admissible interior */
static void smooth_transform(const ets_ctx *cx, const double *u, double *p)
{
    double alpha = ETS_LO + (ETS_HI - ETS_LO) * logistic(u[cx->i_alpha]);
    p[cx->i_alpha] = alpha;
    if (cx->i_beta >= 0)
        p[cx->i_beta] = ETS_LO + (alpha - ETS_LO) * logistic(u[cx->i_beta]);
    if (cx->i_gamma >= 0)
        p[cx->i_gamma] = ETS_LO + (1.0 - alpha - ETS_LO) * logistic(u[cx->i_gamma]);
    if (cx->i_phi >= 0)
        p[cx->i_phi] = ETS_PHI_LO + (ETS_PHI_HI - ETS_PHI_LO) * logistic(u[cx->i_phi]);
}

static void smooth_untransform(const ets_ctx *cx, const double *p, double *u)
{
    double alpha = fmin(fmax(p[cx->i_alpha], ETS_LO), ETS_HI);
    u[cx->i_alpha] = logit_clamped((alpha - ETS_LO) / (ETS_HI - ETS_LO));
    if (cx->i_beta >= 0)
        u[cx->i_beta] = alpha - ETS_LO > 0.0
                            ? logit_clamped((p[cx->i_beta] - ETS_LO) / (alpha - ETS_LO))
                            : 0.0;
    if (cx->i_gamma >= 0) {
        double span = 1.0 - alpha - ETS_LO;
        u[cx->i_gamma] = span > 0.0 ? logit_clamped((p[cx->i_gamma] - ETS_LO) / span) : 0.0;
    }
    if (cx->i_phi >= 0)
        u[cx->i_phi] = logit_clamped((p[cx->i_phi] - ETS_PHI_LO) / (ETS_PHI_HI - ETS_PHI_LO));
}

static void ets_transform(void *vctx, const double *u, double *p)
{
    const ets_ctx *cx = vctx;
    smooth_transform(cx, u, p);
    for (int i = cx->nsmooth; i < cx->i_sigma2; i++)
        p[i] = u[i];
    p[cx->i_sigma2] = exp(u[cx->i_sigma2]);
}

static void ets_untransform(void *vctx, const double *p, double *u)
{
    const ets_ctx *cx = vctx;
    smooth_untransform(cx, p, u);
    for (int i = cx->nsmooth; i < cx->i_sigma2; i++)
        u[i] = p[i];
    double s2 = p[cx->i_sigma2];
    u[cx->i_sigma2] = log(s2 > 1e-300 ? s2 : 1e-300);
}

/* 1 when the smoothing parameters of p lie in R's usual (closed) region */
static int smooth_admissible(const ets_ctx *cx, const double *p)
{
    double alpha = p[cx->i_alpha];
    if (!(alpha >= ETS_LO && alpha <= ETS_HI))
        return 0;
    if (cx->i_beta >= 0 && !(p[cx->i_beta] >= ETS_LO && p[cx->i_beta] <= alpha))
        return 0;
    if (cx->i_gamma >= 0 && !(p[cx->i_gamma] >= ETS_LO && p[cx->i_gamma] <= 1.0 - alpha))
        return 0;
    if (cx->i_phi >= 0 && !(p[cx->i_phi] >= ETS_PHI_LO && p[cx->i_phi] <= ETS_PHI_HI))
        return 0;
    return 1;
}

/* ---- build ----------------------------------------------------------------------------- */

static int ets_build(void *vctx, const double *params, kalman_ssm *s, kalman_workspace *ws,
                     kalman_error *err)
{
    const ets_ctx *cx = vctx;
    (void)ws;
    const int nx = cx->nx, dim = nx + 1, E = nx;
    if (s->m != dim || s->r != 1)
        return kalman_error_set(err, KALMAN_EINVAL, "ets: system has the wrong dimensions");
    for (int i = 0; i <= cx->i_sigma2; i++)
        if (!isfinite(params[i]))
            return kalman_error_set(err, KALMAN_EINVAL, "ets: parameter %d is not finite", i);
    const double sigma2 = params[cx->i_sigma2];
    if (!(sigma2 > 0.0))
        return kalman_error_set(err, KALMAN_EINVAL, "ets: sigma2 must be positive");
    const double alpha = params[cx->i_alpha];
    const double beta = cx->i_beta >= 0 ? params[cx->i_beta] : 0.0;
    const double gamma = cx->i_gamma >= 0 ? params[cx->i_gamma] : 0.0;
    const double phi = cx->i_phi >= 0 ? params[cx->i_phi] : 1.0;
    const size_t dd = (size_t)dim * dim;
    memset(s->T, 0, dd * sizeof(double));
    memset(s->Z, 0, (size_t)dim * sizeof(double));
    memset(s->c, 0, (size_t)dim * sizeof(double));
    memset(s->R, 0, (size_t)dim * sizeof(double));
    memset(s->P1star, 0, dd * sizeof(double));
    memset(s->P1inf, 0, dd * sizeof(double));
    s->d = 0.0;
    s->H = 0.0;
    s->Q[0] = sigma2;

    const int L = 0, B = cx->trend ? 1 : -1, S = 1 + cx->trend; /* first seasonal slot */
    double *T = s->T;
    s->Z[L] = 1.0;
    T[L * dim + L] = 1.0;
    T[L * dim + E] = alpha;
    if (B >= 0) {
        s->Z[B] = phi;
        T[L * dim + B] = phi;
        T[B * dim + B] = phi;
        T[B * dim + E] = beta;
    }
    if (cx->m > 0) {
        const int last = S + cx->m - 1;
        s->Z[last] = 1.0;
        T[S * dim + last] = 1.0;
        T[S * dim + E] = gamma;
        for (int j = 1; j < cx->m; j++)
            T[(S + j) * dim + S + j - 1] = 1.0;
    }
    s->Z[E] = 1.0;
    s->R[E] = 1.0;

    /* known initial state: the ETS states from the parameters, the error slot N(0, sigma2) */
    for (int i = 0; i < dim; i++) {
        s->init[i] = KALMAN_INIT_KNOWN;
        s->a1[i] = 0.0;
    }
    s->a1[L] = params[cx->i_l0];
    if (B >= 0)
        s->a1[B] = params[cx->i_b0];
    for (int j = 0; j < cx->m; j++)
        s->a1[S + j] = params[cx->i_s0 + j];
    s->P1star[(size_t)E * dim + E] = sigma2;
    return 0;
}

/* ---- the profile likelihood over the initial states ------------------------------------ */

/* Scratch for one profile evaluation; sized at kalman_ets_fit / start time. */
typedef struct ets_work {
    const ets_ctx *cx;
    const double *y;
    size_t n;
    double *X;     /* (nx, 1 + ninit) states: column 0 driven by y from x0 = 0, column j
                      by the unit initial state j with no data */
    double *A;     /* (ninit, ninit) normal equations H'H */
    double *bvec;  /* (ninit) H'e0 */
    double *h;     /* (1 + ninit) one-step predictions of each column */
    long nevals;
} ets_work;

/* For smoothing params p (constrained; only the smoothing entries are read), the initial
 * states x0 (ninit, written to x0 when not NULL) minimizing the sum of squared innovations
 * and that minimum *sse; *nobs gets the number of observations. Returns 0, or -1 when the
 * normal equations are singular / the result not finite.
 *
 * Innovations are affine in x0: with D = F - g w', x_t = D x_{t-1} + g y_t, so
 * e_t = y_t - w' x_{t-1} = e0_t - h_t' x0, h_t' = w' (response of x_{t-1} to x0). */
static int ets_profile(ets_work *wk, const double *p, double *x0, double *sse, long *nobs)
{
    const ets_ctx *cx = wk->cx;
    const int nc = 1 + cx->ninit, ni = cx->ninit;
    const int trend = cx->trend, m = cx->m, S = 1 + trend;
    const double alpha = p[cx->i_alpha];
    const double beta = cx->i_beta >= 0 ? p[cx->i_beta] : 0.0;
    const double gamma = cx->i_gamma >= 0 ? p[cx->i_gamma] : 0.0;
    const double phi = cx->i_phi >= 0 ? p[cx->i_phi] : 1.0;
    double *X = wk->X, *A = wk->A, *bv = wk->bvec, *h = wk->h;
    wk->nevals++;

    /* X: (nx, nc), row-major by state. The seasonal states live in a ring: at step t the
     * slot t mod m holds s_{t+1-m} (1-based time), the value this step uses and then
     * replaces, so nothing shifts. Initially slot j holds initial_seasonal.(m-1-j).
     * Columns 1..ni: unit initial states (level, trend, initial_seasonal.0..m-2; the last
     * one is fixed at 0 and has no column). */
    memset(X, 0, (size_t)cx->nx * nc * sizeof(double));
    X[1] = 1.0; /* level */
    if (trend)
        X[(size_t)nc + 2] = 1.0;
    for (int i = 0; i + 1 < m; i++) /* initial_seasonal.i -> slot m-1-i */
        X[(size_t)(S + m - 1 - i) * nc + 1 + trend + 1 + i] = 1.0;
    memset(A, 0, (size_t)ni * ni * sizeof(double));
    memset(bv, 0, (size_t)ni * sizeof(double));
    double ee = 0.0;
    long cnt = 0;
    double *lv = X, *bt = trend ? X + nc : NULL;
    for (size_t t = 0; t < wk->n; t++) {
        double *sv = m ? X + (size_t)(S + (int)(t % (size_t)m)) * nc : NULL;
        /* one-step predictions w' x_{t-1} of each column */
        for (int c = 0; c < nc; c++) {
            double f = lv[c];
            if (trend)
                f += phi * bt[c];
            if (m)
                f += sv[c];
            h[c] = f;
        }
        double yt = wk->y[t];
        int have = !isnan(yt);
        double e0 = have ? yt - h[0] : 0.0;
        if (have) {
            /* accumulate the least-squares problem: e_t = e0 - h' x0 */
            ee += e0 * e0;
            for (int i = 0; i < ni; i++) {
                double hi = h[1 + i];
                bv[i] += hi * e0;
                double *a_i = A + (size_t)i * ni;
                for (int j = 0; j <= i; j++)
                    a_i[j] += hi * h[1 + j];
            }
            cnt++;
        }
        /* x_t = F x_{t-1} + g e_t, e_t = (e0 | -h_j) per column; missing: e_t = 0 */
        for (int c = 0; c < nc; c++) {
            double e = have ? (c == 0 ? e0 : -h[c]) : 0.0;
            double b = trend ? bt[c] : 0.0;
            lv[c] += phi * b + alpha * e;
            if (trend)
                bt[c] = phi * b + beta * e;
            if (m)
                sv[c] += gamma * e;
        }
    }
    *nobs = cnt;
    /* solve A x0 = b by Cholesky (lower triangle accumulated); a tiny ridge keeps
     * near-collinear initial states (short series) solvable */
    double tr = 0.0;
    for (int i = 0; i < ni; i++)
        tr += A[(size_t)i * ni + i];
    double ridge = 1e-12 * (tr > 0.0 ? tr / ni : 1.0);
    for (int i = 0; i < ni; i++) {
        double *a_i = A + (size_t)i * ni;
        for (int j = 0; j <= i; j++) {
            double acc = a_i[j] + (i == j ? ridge : 0.0);
            for (int k = 0; k < j; k++)
                acc -= a_i[k] * A[(size_t)j * ni + k];
            if (i == j) {
                if (!(acc > 0.0))
                    return -1;
                a_i[i] = sqrt(acc);
            } else {
                a_i[j] = acc / A[(size_t)j * ni + j];
            }
        }
    }
    /* forward / back substitution into h (scratch) */
    double *z = h;
    for (int i = 0; i < ni; i++) {
        double acc = bv[i];
        for (int k = 0; k < i; k++)
            acc -= A[(size_t)i * ni + k] * z[k];
        z[i] = acc / A[(size_t)i * ni + i];
    }
    double fit = 0.0;
    for (int i = 0; i < ni; i++)
        fit += z[i] * z[i];
    for (int i = ni - 1; i >= 0; i--) {
        double acc = z[i];
        for (int k = i + 1; k < ni; k++)
            acc -= A[(size_t)k * ni + i] * z[k];
        z[i] = acc / A[(size_t)i * ni + i];
    }
    if (x0)
        memcpy(x0, z, (size_t)ni * sizeof(double));
    /* minimum = e0'e0 - b' A^-1 b = ee - |L^-1 b|^2 */
    double s = ee - fit;
    if (!(s > 0.0) || !isfinite(s)) {
        /* cancellation: recompute the residual sum directly would need another pass; a
         * non-positive minimum only happens for perfect fits */
        s = fmax(ee * 1e-300, 1e-300);
    }
    *sse = s;
    return 0;
}

/* Profile log-likelihood -n/2 (log(2 pi SSE / n) + 1); -inf when not computable. */
static double ets_profile_loglik(ets_work *wk, const double *p)
{
    double sse;
    long nobs;
    if (ets_profile(wk, p, NULL, &sse, &nobs) || nobs < 1)
        return -INFINITY;
    double n = (double)nobs;
    return -0.5 * n * (LOG_2PI + log(sse / n) + 1.0);
}

/* ---- estimation ------------------------------------------------------------------------ */

typedef struct ets_opt {
    ets_work *wk;
    double p[KALMAN_MAX_PARAMS]; /* constrained parameter vector (smoothing part varies) */
} ets_opt;

static double ets_objective(const gsl_vector *x, void *vo)
{
    ets_opt *o = vo;
    const ets_ctx *cx = o->wk->cx;
    double u[KALMAN_MAX_PARAMS];
    for (int i = 0; i < cx->nsmooth; i++) {
        u[i] = gsl_vector_get(x, (size_t)i);
        if (!isfinite(u[i]) || fabs(u[i]) > 40.0)
            return 1e30;
    }
    smooth_transform(cx, u, o->p);
    double ll = ets_profile_loglik(o->wk, o->p);
    return isfinite(ll) ? -ll / (double)o->wk->n : 1e30;
}

/* Nelder-Mead over the smoothing parameters from u (in place); returns the objective and
 * sets *done when the simplex shrank below the tolerance. */
static double ets_nm(ets_opt *o, double *u, int max_iter, int *iters, int *done)
{
    const ets_ctx *cx = o->wk->cx;
    const size_t k = (size_t)cx->nsmooth;
    gsl_multimin_function fn = {ets_objective, k, o};
    gsl_multimin_fminimizer *s = gsl_multimin_fminimizer_alloc(gsl_multimin_fminimizer_nmsimplex2, k);
    gsl_vector *step = gsl_vector_alloc(k);
    if (!s || !step) {
        if (s)
            gsl_multimin_fminimizer_free(s);
        gsl_vector_free(step);
        return NAN;
    }
    gsl_vector_view xv = gsl_vector_view_array(u, k);
    gsl_vector_set_all(step, 1.0);
    gsl_multimin_fminimizer_set(s, &fn, &xv.vector, step);
    int it = 0, status = GSL_CONTINUE;
    while (it < max_iter && status == GSL_CONTINUE) {
        it++;
        if (gsl_multimin_fminimizer_iterate(s))
            break;
        status = gsl_multimin_test_size(gsl_multimin_fminimizer_size(s), 1e-5);
    }
    double f = s->fval;
    for (size_t i = 0; i < k; i++)
        u[i] = gsl_vector_get(s->x, i);
    *iters += it;
    *done = status == GSL_SUCCESS;
    gsl_multimin_fminimizer_free(s);
    gsl_vector_free(step);
    return f;
}

static int work_alloc(ets_work *wk, const ets_ctx *cx, const double *y, size_t n)
{
    const int nc = 1 + cx->ninit;
    memset(wk, 0, sizeof *wk);
    wk->cx = cx;
    wk->y = y;
    wk->n = n;
    double *buf = malloc(((size_t)cx->nx * nc + (size_t)cx->ninit * cx->ninit + cx->ninit +
                          nc) * sizeof(double));
    if (!buf)
        return -1;
    wk->X = buf;
    wk->A = wk->X + (size_t)cx->nx * nc;
    wk->bvec = wk->A + (size_t)cx->ninit * cx->ninit;
    wk->h = wk->bvec + cx->ninit;
    return 0;
}

static void work_free(ets_work *wk)
{
    free(wk->X);
    wk->X = NULL;
}

/* The smoothing parameters that maximize the profile likelihood: a coarse grid on the
 * unconstrained scale, Nelder-Mead from the best two grid points, then each parameter
 * that ended next to a bound tried exactly at the bound (R and statsmodels reach their
 * closed bounds; the logistic transforms only approach them). Fills p (all params: the
 * smoothing ones, the initial states by least squares, sigma2 = SSE / n). */
static int ets_estimate(const ets_ctx *cx, const double *y, size_t n, double *p, double *loglik,
                        int *iters, int *converged, kalman_error *err)
{
    ets_work wk;
    if (work_alloc(&wk, cx, y, n))
        return kalman_error_set(err, KALMAN_ENOMEM, "ets: out of memory");
    ets_opt o = {.wk = &wk};
    memset(o.p, 0, sizeof o.p);
    const int k = cx->nsmooth;
    /* grid: alpha-ish coordinates on {-3, 0, 3} (the rest of the grid cycles) */
    static const double levels[3] = {-3.0, 0.0, 3.0};
    int npts = 1;
    for (int i = 0; i < k; i++)
        npts *= 3;
    double best_u[2][4] = {{0}}, best_f[2] = {INFINITY, INFINITY};
    for (int g = 0; g < npts; g++) {
        double u[4];
        int code = g;
        for (int i = 0; i < k; i++) {
            u[i] = levels[code % 3];
            code /= 3;
        }
        gsl_vector_view xv = gsl_vector_view_array(u, (size_t)k);
        double f = ets_objective(&xv.vector, &o);
        if (f < best_f[0]) {
            best_f[1] = best_f[0];
            memcpy(best_u[1], best_u[0], sizeof best_u[0]);
            best_f[0] = f;
            memcpy(best_u[0], u, sizeof u);
        } else if (f < best_f[1]) {
            best_f[1] = f;
            memcpy(best_u[1], u, sizeof u);
        }
    }
    if (!(best_f[0] < 1e29)) {
        work_free(&wk);
        return kalman_error_set(err, KALMAN_ENUMERIC,
                                "ets: the likelihood could not be evaluated at any starting point");
    }
    double ubest[4] = {0}, fbest = INFINITY;
    int conv_best = 0;
    *iters = 0;
    for (int run = 0; run < 2; run++) {
        if (!(best_f[run] < 1e29))
            continue;
        double u[4];
        memcpy(u, best_u[run], sizeof u);
        int done = 0;
        double f = ets_nm(&o, u, 150, iters, &done);
        /* restart once from the end point: Nelder-Mead can stall on a simplex collapse */
        double f2 = ets_nm(&o, u, 150, iters, &done);
        if (f2 < f)
            f = f2;
        if (f < fbest) {
            fbest = f;
            conv_best = done;
            memcpy(ubest, u, sizeof u);
        }
    }
    /* converged: the simplex of the winning run shrank below its tolerance (a run that
     * ends pressed against a bound, where the objective is flat, may not) */
    *converged = fbest < 1e29 && conv_best;
    smooth_transform(cx, ubest, o.p);
    /* bounds: try each smoothing parameter exactly at a nearby bound */
    double pb[KALMAN_MAX_PARAMS];
    memcpy(pb, o.p, sizeof pb);
    double llb = ets_profile_loglik(&wk, pb);
    for (int i = 0; i < k; i++) {
        double lo, hi;
        if (i == cx->i_alpha) {
            lo = ETS_LO;
            hi = ETS_HI;
        } else if (i == cx->i_beta) {
            lo = ETS_LO;
            hi = pb[cx->i_alpha];
        } else if (i == cx->i_gamma) {
            lo = ETS_LO;
            hi = 1.0 - pb[cx->i_alpha];
        } else {
            lo = ETS_PHI_LO;
            hi = ETS_PHI_HI;
        }
        double span = hi - lo;
        double cand[2] = {lo, hi};
        for (int b = 0; b < 2; b++) {
            if (fabs(pb[i] - cand[b]) > 1e-3 * span)
                continue;
            double keep = pb[i];
            pb[i] = cand[b];
            if (!smooth_admissible(cx, pb)) {
                pb[i] = keep;
                continue;
            }
            double ll = ets_profile_loglik(&wk, pb);
            if (ll >= llb) {
                llb = ll;
                *converged = fbest < 1e29; /* an optimum on the boundary */
            } else {
                pb[i] = keep;
            }
        }
    }
    double sse;
    long nobs;
    if (ets_profile(&wk, pb, p + cx->i_l0, &sse, &nobs) || nobs < 1) {
        work_free(&wk);
        return kalman_error_set(err, KALMAN_ENUMERIC, "ets: the initial states are not identified");
    }
    for (int i = 0; i < k; i++)
        p[i] = pb[i];
    if (cx->m)
        p[cx->i_s0 + cx->m - 1] = 0.0;
    p[cx->i_sigma2] = sse / (double)nobs;
    *loglik = -0.5 * (double)nobs * (LOG_2PI + log(sse / (double)nobs) + 1.0);
    work_free(&wk);
    return 0;
}

static long count_obs(const double *y, size_t n)
{
    long c = 0;
    for (size_t t = 0; t < n; t++)
        c += !isnan(y[t]);
    return c;
}

static int ets_start(void *vctx, const double *y, size_t n, double *params, kalman_error *err)
{
    const ets_ctx *cx = vctx;
    long nobs = count_obs(y, n);
    if (nobs < cx->ninit + cx->nsmooth + 2)
        return kalman_error_set(err, KALMAN_ETOOSHORT,
                                "ets: %ld observations are too few for %d parameters", nobs,
                                cx->ninit + cx->nsmooth + 1);
    double ll;
    int iters, conv;
    return ets_estimate(cx, y, n, params, &ll, &iters, &conv, err);
}

int kalman_ets_fit(const kalman_model *model, const double *y, size_t n,
                   const kalman_fit_opts *opts, kalman_fit_result *res, kalman_error *err)
{
    (void)opts;
    if (!model || model->build != ets_build || !res || (!y && n))
        return kalman_error_set(err, KALMAN_EINVAL,
                                "kalman_ets_fit needs an ETS model, data and a result");
    const ets_ctx *cx = model->ctx;
    memset(res, 0, sizeof *res);
    for (size_t t = 0; t < n; t++)
        if (isinf(y[t]))
            return kalman_error_set(err, KALMAN_EINVAL, "observation %zu is infinite", t);
    for (int i = 0; i < model->nparams; i++)
        if (model->fixed[i] && !(cx->m && i == cx->i_s0 + cx->m - 1)) {
            /* holding parameters fixed is the generic optimizer's business */
            kalman_model plain = *model;
            plain.fit = NULL;
            return kalman_fit(&plain, y, n, opts, res, err);
        }
    long nobs = count_obs(y, n);
    if (nobs < cx->ninit + cx->nsmooth + 2)
        return kalman_error_set(err, KALMAN_ETOOSHORT,
                                "ets: %ld observations are too few for %d parameters", nobs,
                                cx->ninit + cx->nsmooth + 1);
    double p[KALMAN_MAX_PARAMS] = {0}, ll;
    int iters = 0, conv = 0;
    int rc = ets_estimate(cx, y, n, p, &ll, &iters, &conv, err);
    if (rc)
        return rc;
    if (nobs < (long)n) {
        /* A missing y_t leaves e_t unknown rather than zero: the exact likelihood (the
         * Kalman filter's) integrates it out, which the least-squares profile cannot. Its
         * optimum is close to the profile one, so the generic optimizer polishes from
         * there. */
        kalman_model plain = *model;
        plain.fit = NULL;
        kalman_fit_opts o = {0};
        if (opts)
            o = *opts;
        o.start = p;
        o.restarts = -1;
        rc = kalman_fit(&plain, y, n, &o, res, err);
        if (rc)
            return rc;
        res->iterations += iters;
        res->nfree = cx->nsmooth + cx->ninit + 1;
        res->nobs_eff = nobs;
        kalman_fit_criteria(res);
        return 0;
    }
    res->nparams = model->nparams;
    memcpy(res->params, p, (size_t)model->nparams * sizeof(double));
    res->loglik = ll;
    res->converged = conv;
    res->iterations = iters;
    res->nobs = nobs;
    res->ndiffuse = 0;
    /* R's count: smoothing + free initial states + sigma2; n_eff = observations */
    res->nfree = cx->nsmooth + cx->ninit + 1;
    res->nobs_eff = nobs;
    kalman_fit_criteria(res);
    return 0;
}

/* ---- create ---------------------------------------------------------------------------- */

static void ets_destroy(kalman_model *model)
{
    if (!model)
        return;
    free(model->ctx);
    free(model);
}

kalman_model *kalman_ets_create(const kalman_ets_spec *spec, kalman_error *err)
{
    if (!spec) {
        kalman_error_set(err, KALMAN_EINVAL, "ets: no specification given");
        return NULL;
    }
    if (spec->error != 'A' || (spec->trend != 'N' && spec->trend != 'A') ||
        (spec->seasonal != 'N' && spec->seasonal != 'A') || (spec->damped && spec->trend != 'A')) {
        kalman_error_set(err, KALMAN_EINVAL,
                         "ets: only additive models are supported: ets(A,N|A|Ad,N|A)");
        return NULL;
    }
    int m = spec->seasonal == 'A' ? spec->period : 0;
    if (spec->seasonal == 'A' && (m < 2 || m > KALMAN_MAX_STATES - 4)) {
        kalman_error_set(err, KALMAN_EINVAL, "ets: a seasonal model needs a period in 2..%d, got %d",
                         KALMAN_MAX_STATES - 4, spec->period);
        return NULL;
    }
    kalman_model *model = calloc(1, sizeof *model);
    ets_ctx *cx = calloc(1, sizeof *cx);
    if (!model || !cx) {
        free(model);
        free(cx);
        kalman_error_set(err, KALMAN_ENOMEM, "ets: out of memory");
        return NULL;
    }
    cx->spec = *spec;
    cx->spec.period = m;
    cx->trend = spec->trend == 'A';
    cx->m = m;
    cx->nx = 1 + cx->trend + m;
    cx->ninit = 1 + cx->trend + (m ? m - 1 : 0);
    int i = 0;
    cx->i_beta = cx->i_gamma = cx->i_phi = cx->i_b0 = cx->i_s0 = -1;
    cx->i_alpha = i;
    snprintf(model->names[i++], 48, "smoothing_level");
    if (cx->trend) {
        cx->i_beta = i;
        snprintf(model->names[i++], 48, "smoothing_trend");
    }
    if (m) {
        cx->i_gamma = i;
        snprintf(model->names[i++], 48, "smoothing_seasonal");
    }
    if (spec->damped) {
        cx->i_phi = i;
        snprintf(model->names[i++], 48, "damping_trend");
    }
    cx->nsmooth = i;
    cx->i_l0 = i;
    snprintf(model->names[i++], 48, "initial_level");
    if (cx->trend) {
        cx->i_b0 = i;
        snprintf(model->names[i++], 48, "initial_trend");
    }
    if (m) {
        cx->i_s0 = i;
        for (int j = 0; j < m; j++)
            snprintf(model->names[i++], 48, "initial_seasonal.%d", j);
        model->fixed[i - 1] = 1; /* the last initial seasonal value: 0 */
        model->fixed_value[i - 1] = 0.0;
    }
    cx->i_sigma2 = i;
    snprintf(model->names[i++], 48, "sigma2");
    model->is_variance[cx->i_sigma2] = 1;
    model->nparams = i;
    model->concentrate_ok = 1;
    model->m = cx->nx + 1;
    model->r = 1;
    model->ctx = cx;
    model->build = ets_build;
    model->transform = ets_transform;
    model->untransform = ets_untransform;
    model->start = ets_start;
    model->destroy = ets_destroy;
    model->fit = kalman_ets_fit;
    kalman_ets_format(&cx->spec, model->spec, sizeof model->spec);
    return model;
}

/* ---- spec text ------------------------------------------------------------------------- */

void kalman_ets_format(const kalman_ets_spec *sp, char *buf, size_t len)
{
    int n = snprintf(buf, len, "ets(A,%s,%c)", sp->trend == 'A' ? (sp->damped ? "Ad" : "A") : "N",
                     sp->seasonal == 'A' ? 'A' : 'N');
    if (sp->seasonal == 'A' && n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, "[%d]", sp->period);
}

int kalman_ets_parse(const char *args, int season, kalman_ets_spec *out, kalman_error *err)
{
    memset(out, 0, sizeof *out);
    char tok[3][8];
    const char *p = args ? args : "";
    while (isspace((unsigned char)*p))
        p++;
    if (*p != '(')
        return kalman_error_set(err, KALMAN_EINVAL,
                                "ets: expected (E,T,S) such as ets(A,Ad,A), got \"%s\"", p);
    p++;
    for (int i = 0; i < 3; i++) {
        size_t len = 0;
        while (isspace((unsigned char)*p))
            p++;
        while (isalpha((unsigned char)*p) && len < 7)
            tok[i][len++] = *p++;
        tok[i][len] = 0;
        while (isspace((unsigned char)*p))
            p++;
        if (*p != (i < 2 ? ',' : ')'))
            return kalman_error_set(err, KALMAN_EINVAL, "ets: expected (E,T,S) in \"%s\"", args);
        p++;
    }
    int period = season;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '[') {
        char *end;
        long s = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end != ']' || s < 2 || s > 1000)
            return kalman_error_set(err, KALMAN_EINVAL, "ets: bad period in \"%s\"", args);
        period = (int)s;
        p = end + 1;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p)
        return kalman_error_set(err, KALMAN_EINVAL, "ets: unexpected text \"%s\"", p);
    if (strcmp(tok[0], "A") != 0)
        return kalman_error_set(err, KALMAN_EINVAL,
                                "ets: error type \"%s\" is not supported (only additive errors, A)",
                                tok[0]);
    out->error = 'A';
    if (!strcmp(tok[1], "N"))
        out->trend = 'N';
    else if (!strcmp(tok[1], "A"))
        out->trend = 'A';
    else if (!strcmp(tok[1], "Ad")) {
        out->trend = 'A';
        out->damped = 1;
    } else
        return kalman_error_set(err, KALMAN_EINVAL,
                                "ets: trend type \"%s\" is not supported (N, A or Ad)", tok[1]);
    if (!strcmp(tok[2], "N"))
        out->seasonal = 'N';
    else if (!strcmp(tok[2], "A"))
        out->seasonal = 'A';
    else
        return kalman_error_set(err, KALMAN_EINVAL,
                                "ets: seasonal type \"%s\" is not supported (N or A)", tok[2]);
    if (out->seasonal == 'A') {
        if (period < 2)
            return kalman_error_set(err, KALMAN_EINVAL,
                                    "ets: a seasonal model needs a period: ets(A,N,A)[12] or a season");
        out->period = period;
    }
    return 0;
}
