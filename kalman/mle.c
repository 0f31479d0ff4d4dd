/*
 * kalman/mle.c — maximum likelihood estimation of a kalman_model.
 *
 * The optimizer works on the unconstrained parameters (model->transform maps them to
 * admissible values) and minimizes -loglik / nobs, as statsmodels does, with GSL's BFGS2;
 * Nelder-Mead takes over when BFGS2 does not converge. The gradient is analytic for the
 * variance parameters (the disturbance-smoother score, kalman__score: one filter pass that
 * stores v, F, K and one backward pass, instead of 2k likelihood evaluations) and central
 * differences for the rest (cycle frequency, AR coefficients, ...).
 *
 * Models whose free parameters are all linear variances (the structural models without a
 * cycle) take a dedicated path, fit_variance_only below: concentrated scale, ratios on
 * the square-root scale, BFGS with analytic gradients and a screened multi-start; a few
 * dozen evaluations per fit. Every other model (or a variance-only model with a fixed
 * parameter, or no_concentrate) takes the generic stages:
 *
 * Stages:
 *  1. When the model allows it the scale is concentrated out: the variance with the
 *     largest starting value is fixed to 1, the others become ratios to it, and the profile
 *     likelihood is maximized over one dimension less.
 *  2. Restarts from the best point so far, perturbed; they stop as soon as one lands back
 *     on the same optimum. The best run wins.
 *  3. A final unconcentrated BFGS2 run polishes the result with the free variances on the
 *     square scale (p = x^2): an optimum at a zero variance is a finite point there,
 *     whereas on the log scale it is reached only in a slow tail (which stage 1/2 cut off
 *     once the objective stalls).
 *
 * The fit owns one system, one workspace and the score buffers for all evaluations, so an
 * evaluation never allocates.
 */
#include "internal.h"

#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_multimin.h>
#include <math.h>
#include <string.h>

typedef struct fit_ctx {
    const kalman_model *model;
    const double *y;
    size_t n;
    kalman_ssm ssm;
    kalman_workspace *ws;
    int nfree;
    int idx[KALMAN_MAX_PARAMS];   /* optimizer coordinate -> parameter index */
    double ubase[KALMAN_MAX_PARAMS];
    int concentrate;
    int scale_idx;
    int sqmode;                   /* free variances are x^2 instead of the model's transform */
    double nobs;                  /* objective scaling */
    long nevals;
    /* analytic score: a second system for derivative builds, a filter state, a store of
     * v, F, Finf, K, Kinf, and the sparse derivative lists (all allocated once per fit) */
    int analytic;
    kalman_ssm ssm2;
    kalman_state st;
    kalman_store store;
    double *rqr, *rqr2;           /* (m,m) R Q R' of ssm / ssm2 */
    int *didx;                    /* (np, 2, m*m) */
    double *dval;                 /* (np, 2, m*m) */
    /* variance-only models: the derivative systems do not depend on the parameters, so
     * score_params computes them once (ds_cached) and reuses them */
    int ds_cached;
    int nds, dmap[KALMAN_MAX_PARAMS], dlin[KALMAN_MAX_PARAMS];
    kalman__dsys ds[KALMAN_MAX_PARAMS];
} fit_ctx;

/* x (nfree) -> constrained params p (nparams); returns 0 when p is admissible */
static void x_to_params(fit_ctx *c, const double *x, double *p)
{
    const kalman_model *mod = c->model;
    double u[KALMAN_MAX_PARAMS];
    memcpy(u, c->ubase, (size_t)mod->nparams * sizeof(double));
    for (int i = 0; i < c->nfree; i++)
        u[c->idx[i]] = x[i];
    mod->transform(mod->ctx, u, p);
    if (c->sqmode) /* variances as squares: reaches 0 at a finite point */
        for (int i = 0; i < c->nfree; i++)
            if (mod->is_variance[c->idx[i]])
                p[c->idx[i]] = x[i] * x[i];
    for (int i = 0; i < mod->nparams; i++)
        if (mod->fixed[i])
            p[i] = mod->fixed_value[i];
    if (c->concentrate)
        p[c->scale_idx] = 1.0;
}

/* log-likelihood at constrained params (concentrated as set in c); NAN on failure */
static double eval_params(fit_ctx *c, const double *p, double *sigma2)
{
    const kalman_model *mod = c->model;
    for (int i = 0; i < mod->nparams; i++)
        if (!isfinite(p[i]))
            return NAN;
    c->nevals++;
    if (mod->build(mod->ctx, p, &c->ssm, c->ws, NULL))
        return NAN;
    double ll;
    if (kalman_loglik(&c->ssm, c->y, c->n, c->concentrate, c->ws, &ll, sigma2, NULL, NULL))
        return NAN;
    return ll;
}

static double objective(const gsl_vector *xv, void *params)
{
    fit_ctx *c = params;
    double x[KALMAN_MAX_PARAMS], p[KALMAN_MAX_PARAMS];
    for (int i = 0; i < c->nfree; i++)
        x[i] = gsl_vector_get(xv, (size_t)i);
    x_to_params(c, x, p);
    double ll = eval_params(c, p, NULL);
    if (!isfinite(ll))
        return 1e30;
    return -ll / c->nobs;
}

/* RQR' (m,m) of s into out */
static void rqr(const kalman_ssm *s, double *out)
{
    int m = s->m, r = s->r;
    for (int i = 0; i < m; i++)
        for (int j = i; j < m; j++) {
            double acc = 0.0;
            for (int k = 0; k < r; k++) {
                double rik = s->R[i * r + k];
                if (rik == 0.0)
                    continue;
                for (int l = 0; l < r; l++)
                    acc += rik * s->Q[k * r + l] * s->R[j * r + l];
            }
            out[i * m + j] = out[j * m + i] = acc;
        }
}

static int same(const double *a, const double *b, size_t n)
{
    return memcmp(a, b, n * sizeof(double)) == 0;
}

/* Objective and gradient at x in one filter + one backward pass. Coordinates that move
 * only linear variance parameters get the analytic score; the others (cycle frequency,
 * AR coefficients, ...) central differences. Returns 0, or -1 when the analytic path is
 * not available at x (the caller then differentiates numerically). */
/* Log-likelihood at constrained p (concentrated when c->concentrate) and its derivative
 * gp[i] with respect to every free linear variance parameter (lin[i] = 1); lin[i] = 0
 * for the others. Returns 0, or -1 when the likelihood cannot be evaluated at p. */
static int score_params(fit_ctx *c, const double *p, double *llout, double *gp, int *lin)
{
    const kalman_model *mod = c->model;
    const int np = mod->nparams, m = mod->m;
    const size_t mm = (size_t)m * m;
    for (int i = 0; i < np; i++)
        if (!isfinite(p[i]))
            return -1;
    c->nevals++;
    if (mod->build(mod->ctx, p, &c->ssm, c->ws, NULL))
        return -1;
    kalman_state_start(&c->st, &c->ssm);
    kalman_loglik_acc acc = {0};
    if (kalman_filter(&c->ssm, c->y, c->n, &c->st, &acc, &c->store, c->ws, NULL))
        return -1;
    double s2 = 1.0, ll = acc.loglik;
    if (c->concentrate) {
        long ne = acc.nobs - acc.ndiffuse_obs;
        if (ne <= 0 || !(acc.sum_v2F > 0))
            return -1;
        s2 = acc.sum_v2F / (double)ne;
        ll = -0.5 * ((double)acc.nobs * 1.8378770664093454835606594728112 + acc.sum_logFinf +
                     acc.sum_logF + (double)ne * log(s2) + (double)ne);
    }
    if (!isfinite(ll))
        return -1;
    *llout = ll;

    /* d(system)/d(p_i) for the linear variance parameters */
    kalman__dsys *ds = c->ds;
    int nds = 0, *map = c->dmap;
    if (c->ds_cached) {
        nds = c->nds;
        memcpy(lin, c->dlin, (size_t)np * sizeof(int));
        goto backward;
    }
    rqr(&c->ssm, c->rqr);
    for (int i = 0; i < np; i++) {
        lin[i] = 0;
        if (!mod->is_variance[i] || mod->fixed[i] || (c->concentrate && i == c->scale_idx))
            continue;
        double q[KALMAN_MAX_PARAMS];
        memcpy(q, p, (size_t)np * sizeof(double));
        double delta = fabs(p[i]) > 0 ? 0.5 * fabs(p[i]) : 1.0;
        q[i] = p[i] + delta;
        if (mod->build(mod->ctx, q, &c->ssm2, c->ws, NULL))
            continue;
        const kalman_ssm *a = &c->ssm, *b = &c->ssm2;
        if (a->d != b->d || !same(a->Z, b->Z, (size_t)m) || !same(a->T, b->T, mm) ||
            !same(a->c, b->c, (size_t)m) || !same(a->a1, b->a1, (size_t)m) ||
            !same(a->P1inf, b->P1inf, mm))
            continue;
        rqr(b, c->rqr2);
        int *qi = c->didx + (size_t)nds * 2 * mm, *pi = qi + mm;
        double *qv = c->dval + (size_t)nds * 2 * mm, *pv = qv + mm;
        int nq = 0, npp = 0;
        for (size_t e = 0; e < mm; e++) {
            double dq = (c->rqr2[e] - c->rqr[e]) / delta;
            double dp = (b->P1star[e] - a->P1star[e]) / delta;
            if (dq != 0.0) { qi[nq] = (int)e; qv[nq++] = dq; }
            if (dp != 0.0) { pi[npp] = (int)e; pv[npp++] = dp; }
        }
        ds[nds] = (kalman__dsys){(b->H - a->H) / delta, nq, qi, qv, npp, pi, pv};
        map[nds++] = i;
        lin[i] = 1;
    }
    c->nds = nds;
    memcpy(c->dlin, lin, (size_t)np * sizeof(int));
backward:;
    double gs[KALMAN_MAX_PARAMS];
    for (int i = 0; i < np; i++)
        gp[i] = 0.0;
    if (nds > 0) {
        /* backward pass over the quantities the filter stored for the system at p */
        kalman__score(&c->ssm, c->y, &c->store, s2, nds, ds, gs, c->ws);
        for (int k = 0; k < nds; k++)
            gp[map[k]] = gs[k];
    }
    return 0;
}

/* Objective and gradient at optimizer coordinates x (see score_params). */
static int analytic_fdf(fit_ctx *c, const double *x, double *f, double *g)
{
    const int np = c->model->nparams;
    double p[KALMAN_MAX_PARAMS], gp[KALMAN_MAX_PARAMS], ll;
    int lin[KALMAN_MAX_PARAMS];
    x_to_params(c, x, p);
    if (score_params(c, p, &ll, gp, lin))
        return -1;
    *f = -ll / c->nobs;
    /* chain rule through the transform; numeric for coordinates touching other params */
    for (int j = 0; j < c->nfree; j++) {
        double xp[KALMAN_MAX_PARAMS], pp[KALMAN_MAX_PARAMS], pm[KALMAN_MAX_PARAMS];
        double h = 1e-6 * fmax(1.0, fabs(x[j]));
        memcpy(xp, x, (size_t)c->nfree * sizeof(double));
        xp[j] = x[j] + h;
        x_to_params(c, xp, pp);
        xp[j] = x[j] - h;
        x_to_params(c, xp, pm);
        int ok = 1;
        double gj = 0.0;
        for (int i = 0; i < np && ok; i++) {
            double dpi = (pp[i] - pm[i]) / (2.0 * h);
            if (dpi == 0.0)
                continue;
            if (!lin[i])
                ok = 0;
            else
                gj += gp[i] * dpi;
        }
        if (ok) {
            g[j] = -gj / c->nobs;
            if (!isfinite(g[j])) /* GSL's minimizers must never see a non-finite value */
                g[j] = 0.0;
        } else {
            gsl_vector_view xv = gsl_vector_view_array(xp, (size_t)c->nfree);
            double hh = 1e-5 * fmax(1.0, fabs(x[j]));
            xp[j] = x[j] + hh;
            double fp = objective(&xv.vector, c);
            xp[j] = x[j] - hh;
            double fm = objective(&xv.vector, c);
            g[j] = (fp - fm) / (2.0 * hh);
            if (!isfinite(g[j]))
                g[j] = 0.0;
        }
    }
    return 0;
}

static void numeric_gradient(const gsl_vector *xv, void *params, gsl_vector *g);

static void gradient(const gsl_vector *xv, void *params, gsl_vector *g)
{
    fit_ctx *c = params;
    if (c->analytic) {
        double x[KALMAN_MAX_PARAMS], gg[KALMAN_MAX_PARAMS], f;
        for (int i = 0; i < c->nfree; i++)
            x[i] = gsl_vector_get(xv, (size_t)i);
        if (analytic_fdf(c, x, &f, gg) == 0) {
            for (int i = 0; i < c->nfree; i++)
                gsl_vector_set(g, (size_t)i, gg[i]);
            return;
        }
    }
    numeric_gradient(xv, params, g);
}

static void numeric_gradient(const gsl_vector *xv, void *params, gsl_vector *g)
{
    double buf[KALMAN_MAX_PARAMS];
    gsl_vector_view view = gsl_vector_view_array(buf, xv->size);
    gsl_vector *xw = &view.vector;
    gsl_vector_memcpy(xw, xv);
    for (size_t i = 0; i < xv->size; i++) {
        double xi = gsl_vector_get(xv, i);
        double h = 1e-5 * fmax(1.0, fabs(xi));
        gsl_vector_set(xw, i, xi + h);
        double fp = objective(xw, params);
        gsl_vector_set(xw, i, xi - h);
        double fm = objective(xw, params);
        gsl_vector_set(xw, i, xi);
        double gi = (fp - fm) / (2.0 * h);
        gsl_vector_set(g, i, isfinite(gi) ? gi : 0.0);
    }
}

static void objective_fdf(const gsl_vector *xv, void *params, double *f, gsl_vector *g)
{
    fit_ctx *c = params;
    if (c->analytic) {
        double x[KALMAN_MAX_PARAMS], gg[KALMAN_MAX_PARAMS];
        for (int i = 0; i < c->nfree; i++)
            x[i] = gsl_vector_get(xv, (size_t)i);
        if (analytic_fdf(c, x, f, gg) == 0) {
            for (int i = 0; i < c->nfree; i++)
                gsl_vector_set(g, (size_t)i, gg[i]);
            return;
        }
    }
    *f = objective(xv, params);
    numeric_gradient(xv, params, g);
}

typedef struct run_result {
    double x[KALMAN_MAX_PARAMS];
    double f;
    int converged;
    int iterations;
    int rescale;   /* qn_minimize stopped because a ratio outgrew the scale variance */
} run_result;

/* BFGS2 from x0 until the gradient norm is below tol. With stall != 0 it also stops when
 * the objective improved by less than 1e-8 (relative) over 5 iterations: the slow tail
 * of a log-variance walking towards zero, which the final polish on the square scale
 * finishes much faster. */
static int run_bfgs(fit_ctx *c, const double *x0, int max_iter, double tol, int stall,
                    run_result *out)
{
    double hist[5] = {INFINITY, INFINITY, INFINITY, INFINITY, INFINITY};
    int k = c->nfree;
    gsl_multimin_function_fdf fdf = {objective, gradient, objective_fdf, (size_t)k, c};
    gsl_vector *x = gsl_vector_alloc((size_t)k);
    gsl_multimin_fdfminimizer *s =
        gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, (size_t)k);
    if (!x || !s) {
        gsl_vector_free(x);
        if (s)
            gsl_multimin_fdfminimizer_free(s);
        return KALMAN_ENOMEM;
    }
    for (int i = 0; i < k; i++)
        gsl_vector_set(x, (size_t)i, x0[i]);
    gsl_multimin_fdfminimizer_set(s, &fdf, x, 0.1, 0.1);
    int iter = 0, status = GSL_CONTINUE;
    while (iter < max_iter && status == GSL_CONTINUE) {
        iter++;
        int st = gsl_multimin_fdfminimizer_iterate(s);
        if (st)
            break; /* no progress possible: judged by the gradient below */
        status = gsl_multimin_test_gradient(s->gradient, tol);
        if (stall && iter > 5 && hist[iter % 5] - s->f < 1e-8 * (1.0 + fabs(s->f)))
            break;
        hist[iter % 5] = s->f;
    }
    out->f = s->f;
    for (int i = 0; i < k; i++)
        out->x[i] = gsl_vector_get(s->x, (size_t)i);
    out->iterations = iter;
    out->converged = gsl_blas_dnrm2(s->gradient) < fmax(tol * 100.0, 1e-4) && out->f < 1e29;
    gsl_multimin_fdfminimizer_free(s);
    gsl_vector_free(x);
    return 0;
}

static int run_nm(fit_ctx *c, const double *x0, int max_iter, run_result *out)
{
    int k = c->nfree;
    gsl_multimin_function fn = {objective, (size_t)k, c};
    gsl_vector *x = gsl_vector_alloc((size_t)k), *step = gsl_vector_alloc((size_t)k);
    gsl_multimin_fminimizer *s =
        gsl_multimin_fminimizer_alloc(gsl_multimin_fminimizer_nmsimplex2, (size_t)k);
    if (!x || !step || !s) {
        gsl_vector_free(x);
        gsl_vector_free(step);
        if (s)
            gsl_multimin_fminimizer_free(s);
        return KALMAN_ENOMEM;
    }
    for (int i = 0; i < k; i++) {
        gsl_vector_set(x, (size_t)i, x0[i]);
        gsl_vector_set(step, (size_t)i, 0.5);
    }
    gsl_multimin_fminimizer_set(s, &fn, x, step);
    int iter = 0, status = GSL_CONTINUE;
    while (iter < max_iter && status == GSL_CONTINUE) {
        iter++;
        if (gsl_multimin_fminimizer_iterate(s))
            break;
        status = gsl_multimin_test_size(gsl_multimin_fminimizer_size(s), 1e-8);
    }
    out->f = s->fval;
    for (int i = 0; i < k; i++)
        out->x[i] = gsl_vector_get(s->x, (size_t)i);
    out->iterations = iter;
    out->converged = status == GSL_SUCCESS && out->f < 1e29;
    gsl_multimin_fminimizer_free(s);
    gsl_vector_free(x);
    gsl_vector_free(step);
    return 0;
}

/* One optimization from x0: BFGS2, then Nelder-Mead (and BFGS2 again) when BFGS2 did not
 * converge. */
static int optimize(fit_ctx *c, const double *x0, int max_iter, double tol, run_result *best)
{
    run_result r;
    int rc = run_bfgs(c, x0, max_iter, tol, 1, &r);
    if (rc)
        return rc;
    *best = r;
    if (!r.converged) {
        run_result nm;
        rc = run_nm(c, x0, max_iter * 4, &nm);
        if (rc)
            return rc;
        int its = best->iterations + nm.iterations;
        if (nm.f < best->f)
            *best = nm;
        best->iterations = its;
        run_result again;
        rc = run_bfgs(c, best->x, max_iter, tol, 1, &again);
        if (rc)
            return rc;
        its = best->iterations + again.iterations;
        if (again.f <= best->f)
            *best = again;
        best->iterations = its;
    }
    return 0;
}

/* ---- variance-only models: concentrated quasi-Newton on the square-root scale ----------
 *
 * When every free parameter is a linear variance (local level, local linear trend, BSM,
 * trigonometric seasonals: the structural models without a cycle), the fit runs a
 * dedicated path that needs a few dozen likelihood evaluations instead of hundreds:
 *  - the scale is concentrated out (one variance fixed to 1, the others are ratios);
 *  - the ratios are x^2: a zero variance is the finite point x = 0, an ordinary interior
 *    minimum in x (f(x^2) has zero slope there), so boundary optima converge as fast as
 *    interior ones and no separate polish is needed;
 *  - every evaluation returns the objective and its analytic gradient (one filter pass and
 *    one backward pass; the derivative systems are built once per fit);
 *  - BFGS with a weak-Wolfe line search that tries the quasi-Newton step first, so most
 *    iterations cost one evaluation;
 *  - starting points: the model's start and one variant per free variance with that
 *    variance dominant, screened by the likelihood alone (filter only); the optimizer runs
 *    from the best, and again from the best variant whose dominant variance ended at zero
 *    when the optimum has one there: such likelihoods are often bimodal (e.g. a level-driven
 *    and a slope-driven optimum of the BSM on AirPassengers), and the two runs cover both.
 */

/* at most this many parameters on the fast path (structural models have at most 7), which
 * keeps its Hessians and candidate tables small on the stack */
#define VFIT_MAX 16

/* f = -loglik/nobs (concentrated) and its gradient in x at coordinates x (ratios x^2 for
 * the free variances c->idx[], the scale variance fixed to 1). */
static int vfdf(fit_ctx *c, const double *x, double *f, double *g)
{
    double p[KALMAN_MAX_PARAMS], gp[KALMAN_MAX_PARAMS], ll;
    int lin[KALMAN_MAX_PARAMS];
    x_to_params(c, x, p);
    if (score_params(c, p, &ll, gp, lin))
        return -1;
    *f = -ll / c->nobs;
    for (int j = 0; j < c->nfree; j++) {
        g[j] = -2.0 * x[j] * gp[c->idx[j]] / c->nobs;
        if (!isfinite(g[j]))
            return -1;
    }
    return isfinite(*f) ? 0 : -1;
}

/* f only (filter without the backward pass), for screening starting points */
static double vf(fit_ctx *c, const double *x)
{
    double p[KALMAN_MAX_PARAMS];
    x_to_params(c, x, p);
    double ll = eval_params(c, p, NULL);
    return isfinite(ll) ? -ll / c->nobs : INFINITY;
}

/* BFGS on the inverse Hessian from x0. Stops when max |g| <= gtol or when f stalls
 * (relative change below 1e-14 over two iterations), or, with out->rescale set, as soon
 * as a ratio x^2 exceeds 100: the scale variance is heading for zero relative to another,
 * where the ratios diverge, so the caller concentrates on the largest variance and
 * resumes. */
static void qn_minimize(fit_ctx *c, const double *x0, int max_iter, double gtol,
                        const double *H0, double *Hout, run_result *out)
{
    const int k = c->nfree;
    double x[KALMAN_MAX_PARAMS], g[KALMAN_MAX_PARAMS], d[KALMAN_MAX_PARAMS];
    double xn[KALMAN_MAX_PARAMS], gn[KALMAN_MAX_PARAMS], sv[KALMAN_MAX_PARAMS];
    double yv[KALMAN_MAX_PARAMS], Hy[KALMAN_MAX_PARAMS];
    double H[VFIT_MAX * VFIT_MAX];
    double f, fn = 0.0;
    memcpy(x, x0, (size_t)k * sizeof(double));
    out->iterations = 0;
    out->converged = 0;
    out->rescale = 0;
    memcpy(out->x, x0, (size_t)k * sizeof(double));
    out->f = INFINITY;
    if (vfdf(c, x, &f, g))
        return;
    int scaled = H0 != NULL, stalls = 0, it;
    if (H0) {
        memcpy(H, H0, (size_t)k * k * sizeof(double));
    } else {
        for (int i = 0; i < k * k; i++)
            H[i] = 0.0;
        for (int i = 0; i < k; i++)
            H[i * k + i] = 1.0;
    }
    for (it = 0; it < max_iter; it++) {
        double gmax = 0.0;
        for (int i = 0; i < k; i++)
            gmax = fmax(gmax, fabs(g[i]));
        if (gmax <= gtol) {
            out->converged = 1;
            break;
        }
        double gd = 0.0, dmax = 0.0;
        for (int i = 0; i < k; i++) {
            double acc = 0.0;
            for (int j = 0; j < k; j++)
                acc -= H[i * k + j] * g[j];
            d[i] = acc;
            gd += g[i] * acc;
            dmax = fmax(dmax, fabs(acc));
        }
        if (!(gd < 0.0)) { /* not a descent direction: back to steepest descent */
            for (int i = 0; i < k * k; i++)
                H[i] = 0.0;
            for (int i = 0; i < k; i++)
                H[i * k + i] = 1.0;
            scaled = 0;
            gd = 0.0;
            dmax = 0.0;
            for (int i = 0; i < k; i++) {
                d[i] = -g[i];
                gd -= g[i] * g[i];
                dmax = fmax(dmax, fabs(g[i]));
            }
        }
        /* before the first update the step length is unknown: at most 0.5 in x */
        double alpha = scaled ? 1.0 : fmin(1.0, 0.5 / dmax);
        double lo = 0.0, hi = INFINITY;
        int accepted = 0;
        double flo = f, glo[KALMAN_MAX_PARAMS];
        int have_lo = 0;
        for (int ls = 0; ls < 30; ls++) {
            for (int i = 0; i < k; i++)
                xn[i] = x[i] + alpha * d[i];
            int bad = vfdf(c, xn, &fn, gn);
            double gdn = 0.0;
            if (!bad)
                for (int i = 0; i < k; i++)
                    gdn += gn[i] * d[i];
            if (bad || fn > f + 1e-4 * alpha * gd) {
                hi = alpha;
                if (!bad) { /* minimum of the quadratic through f, gd and fn */
                    double den = 2.0 * (fn - f - gd * alpha);
                    double aq = den > 0.0 ? -gd * alpha * alpha / den : 0.5 * alpha;
                    alpha = fmin(fmax(aq, lo + 0.1 * (hi - lo)), lo + 0.5 * (hi - lo));
                } else {
                    alpha = lo + 0.25 * (hi - lo);
                }
            } else if (gdn < 0.9 * gd) {
                /* sufficient decrease but still steep: remember it, go further */
                lo = alpha;
                flo = fn;
                memcpy(glo, gn, (size_t)k * sizeof(double));
                have_lo = 1;
                alpha = isfinite(hi) ? 0.5 * (lo + hi) : 4.0 * alpha;
            } else {
                accepted = 1;
                break;
            }
            if (isfinite(hi) && hi - lo <= 1e-12 * fmax(1.0, hi))
                break;
        }
        if (!accepted) {
            if (!have_lo)
                break; /* no decrease along d: done (judged by the gradient) */
            alpha = lo;
            fn = flo;
            memcpy(gn, glo, (size_t)k * sizeof(double));
            for (int i = 0; i < k; i++)
                xn[i] = x[i] + alpha * d[i];
        }
        double sy = 0.0, yy = 0.0, ss = 0.0;
        for (int i = 0; i < k; i++) {
            sv[i] = xn[i] - x[i];
            yv[i] = gn[i] - g[i];
            sy += sv[i] * yv[i];
            yy += yv[i] * yv[i];
            ss += sv[i] * sv[i];
        }
        double df = f - fn;
        memcpy(x, xn, (size_t)k * sizeof(double));
        memcpy(g, gn, (size_t)k * sizeof(double));
        f = fn;
        if (sy > 1e-14 * sqrt(ss * yy) && sy > 0.0) {
            if (!scaled) {
                for (int i = 0; i < k * k; i++)
                    H[i] *= sy / yy;
                scaled = 1;
            }
            /* H <- (I - rho s y') H (I - rho y s') + rho s s' */
            double rho = 1.0 / sy, yHy = 0.0;
            for (int i = 0; i < k; i++) {
                double acc = 0.0;
                for (int j = 0; j < k; j++)
                    acc += H[i * k + j] * yv[j];
                Hy[i] = acc;
                yHy += yv[i] * acc;
            }
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++)
                    H[i * k + j] += -rho * (Hy[i] * sv[j] + sv[i] * Hy[j]) +
                                    (rho * rho * yHy + rho) * sv[i] * sv[j];
        }
        stalls = df <= 1e-14 * (1.0 + fabs(f)) ? stalls + 1 : 0;
        if (stalls >= 2)
            break;
        double xmax = 0.0;
        for (int i = 0; i < k; i++)
            xmax = fmax(xmax, fabs(x[i]));
        if (xmax > 10.0) {
            out->rescale = 1;
            it++;
            break;
        }
    }
    double gmax = 0.0;
    for (int i = 0; i < k; i++)
        gmax = fmax(gmax, fabs(g[i]));
    out->converged = gmax <= fmax(100.0 * gtol, 1e-4);
    out->iterations = it;
    if (Hout)
        memcpy(Hout, H, (size_t)k * k * sizeof(double));
    out->f = f;
    memcpy(out->x, x, (size_t)k * sizeof(double));
}

/* Sets the concentration (scale variance s, others free as ratios) from constrained
 * variances p (absolute or relative) and writes the optimizer coordinates to x. */
static void vset_scale(fit_ctx *c, const double *p, int s, double *x)
{
    const kalman_model *mod = c->model;
    c->scale_idx = s;
    c->nfree = 0;
    for (int i = 0; i < mod->nparams; i++)
        if (!mod->fixed[i] && i != s) {
            x[c->nfree] = sqrt(fmax(p[i], 0.0) / p[s]);
            c->idx[c->nfree++] = i;
        }
}

/* The fast path; returns 1 when it does not apply (the caller runs the generic one),
 * 0 with pbest (absolute variances) filled, or a negative code. */
static int fit_variance_only(fit_ctx *c, const double *p0, int max_iter, double tol,
                             int restarts, double *pbest, int *converged, int *iterations)
{
    const kalman_model *mod = c->model;
    const int np = mod->nparams;
    int nvar = 0, s0 = -1;
    if (np > VFIT_MAX)
        return 1;
    for (int i = 0; i < np; i++) {
        /* a fixed variance is absolute and would not scale with the others: the
         * concentrated likelihood does not apply (the generic path handles it) */
        if (mod->fixed[i] || !mod->is_variance[i])
            return 1;
        nvar++;
        if (p0[i] > 0 && (s0 < 0 || p0[i] > p0[s0]))
            s0 = i;
    }
    if (nvar < 1 || s0 < 0 || !c->analytic)
        return 1;
    /* the derivative systems, once: every free variance must have the analytic score */
    c->concentrate = 1;
    c->sqmode = 1;
    mod->untransform(mod->ctx, p0, c->ubase);
    {
        double ll, gp[KALMAN_MAX_PARAMS], pr[KALMAN_MAX_PARAMS];
        int lin[KALMAN_MAX_PARAMS];
        memcpy(pr, p0, (size_t)np * sizeof(double));
        c->scale_idx = -1; /* derivatives for every free variance: the scale one changes */
        c->ds_cached = 0;
        if (score_params(c, pr, &ll, gp, lin))
            return 1;
        for (int i = 0; i < np; i++)
            if (!mod->fixed[i] && !lin[i])
                return 1;
        c->ds_cached = 1;
    }

    /* candidate starts (ratios to p0[s0]): the model's start, then each free variance
     * made dominant (10 x the largest) with the others kept */
    double cand[VFIT_MAX + 1][VFIT_MAX];
    int dom[VFIT_MAX + 1];
    int ncand = 0;
    memcpy(cand[ncand], p0, (size_t)np * sizeof(double));
    dom[ncand++] = -1;
    if (restarts > 0)
        for (int i = 0; i < np; i++) {
            if (mod->fixed[i])
                continue;
            memcpy(cand[ncand], p0, (size_t)np * sizeof(double));
            cand[ncand][i] = 10.0 * p0[s0];
            dom[ncand++] = i;
        }
    double fc[VFIT_MAX + 1];
    int best_c = 0;
    for (int k = 0; k < ncand; k++) {
        double x[KALMAN_MAX_PARAMS];
        for (int i = 0; i < np; i++) /* no exact zero: x = 0 never moves */
            if (!mod->fixed[i])
                cand[k][i] = fmax(cand[k][i], 1e-4 * p0[s0]);
        vset_scale(c, cand[k], s0, x);
        fc[k] = vf(c, x);
        if (fc[k] < fc[best_c])
            best_c = k;
    }

    run_result best = {.f = INFINITY};
    int tried[VFIT_MAX + 1] = {0};
    /* the inverse Hessian at the end of the first run, to seed later runs that work with
     * the same scale variance (their optimum is often the same one, or near it) */
    double Hkeep[VFIT_MAX * VFIT_MAX], Hrun[VFIT_MAX * VFIT_MAX], Hcont[VFIT_MAX * VFIT_MAX];
    int hkeep_scale = -1;
    int its = 0, conv = 0;
    int next = best_c;
    for (int run = 0; run <= restarts && next >= 0; run++) {
        tried[next] = 1;
        double x[KALMAN_MAX_PARAMS], p[KALMAN_MAX_PARAMS];
        /* concentrate on the candidate's largest variance */
        int sc = s0;
        for (int i = 0; i < np; i++)
            if (!mod->fixed[i] && cand[next][i] > cand[next][sc])
                sc = i;
        vset_scale(c, cand[next], sc, x);
        run_result r;
        int left = max_iter;
        /* a later run is probed first: after PROBE iterations it goes on only when its
         * objective is within 5 log-likelihood units of the best optimum so far (a run
         * heading for a better basin is usually below it by then; one that is far above
         * is mostly on its way back to the same optimum) */
        enum { PROBE = 4 };
        int probe = run > 0 ? PROBE : 0;
        const double *seed = c->scale_idx == hkeep_scale ? Hkeep : NULL;
        for (int round = 0;; round++) {
            int lim = probe > 0 && probe < left ? probe : left;
            qn_minimize(c, x, lim, tol, seed, Hrun, &r);
            its += r.iterations;
            left -= r.iterations;
            x_to_params(c, r.x, p);
            if (!r.rescale && run == 0 && round <= 8) {
                memcpy(Hkeep, Hrun, (size_t)c->nfree * c->nfree * sizeof(double));
                hkeep_scale = c->scale_idx;
            }
            if (probe > 0) {
                int stopped = !r.rescale && !r.converged && r.iterations >= lim;
                probe -= r.iterations;
                if (probe <= 0 || stopped) {
                    probe = 0;
                    if (!(r.f <= best.f + 5.0 / c->nobs))
                        break; /* abandoned: r stays above best */
                    if (stopped && left > 0) { /* go on from here with the same Hessian */
                        memcpy(Hcont, Hrun, (size_t)c->nfree * c->nfree * sizeof(double));
                        memcpy(x, r.x, (size_t)c->nfree * sizeof(double));
                        seed = Hcont;
                        continue;
                    }
                }
            }
            if (!r.rescale || round >= 8 || left <= 0)
                break;
            /* ratios far above 1: concentrate on the largest variance and go on */
            int smax = c->scale_idx;
            for (int i = 0; i < np; i++)
                if (!mod->fixed[i] && p[i] > p[smax])
                    smax = i;
            vset_scale(c, p, smax, x);
            seed = c->scale_idx == hkeep_scale ? Hkeep : NULL;
        }
        if (r.f < best.f) {
            best = r;
            memcpy(pbest, p, (size_t)np * sizeof(double));
            conv = r.converged;
        }
        /* next run: only when a variance ended at (or near) zero, from the best screened
         * candidate that makes one of those variances dominant */
        double vmax = 0.0;
        for (int i = 0; i < np; i++)
            if (!mod->fixed[i])
                vmax = fmax(vmax, p[i]);
        next = -1;
        for (int k = 1; k < ncand; k++)
            if (!tried[k] && dom[k] >= 0 && p[dom[k]] <= 1e-3 * vmax &&
                (next < 0 || fc[k] < fc[next]))
                next = k;
    }
    if (!(best.f < 1e29))
        return KALMAN_ENUMERIC;
    /* back to absolute variances with the concentrated scale at the optimum */
    double s2 = 1.0;
    double pr[KALMAN_MAX_PARAMS];
    memcpy(pr, pbest, (size_t)np * sizeof(double));
    c->sqmode = 0;
    double ll = eval_params(c, pr, &s2);
    if (!isfinite(ll))
        return KALMAN_ENUMERIC;
    for (int i = 0; i < np; i++)
        if (!mod->fixed[i])
            pbest[i] *= s2;
    c->concentrate = 0;
    c->ds_cached = 0;
    *converged = conv;
    *iterations = its;
    return 0;
}

void kalman_fit_criteria(kalman_fit_result *res)
{
    double ll = res->loglik;
    double k = (double)res->nfree;
    double n = (double)res->nobs_eff;
    res->aic = -2.0 * ll + 2.0 * k;
    res->bic = -2.0 * ll + k * log(n);
    res->aicc = (n - k - 1.0 > 0.0) ? -2.0 * ll + 2.0 * k * n / (n - k - 1.0) : INFINITY;
}

/* Sets up a fit context: one system and workspace for every evaluation, plus the
 * analytic-score buffers (store of v, F, F_inf, K, K_inf; derivative lists). */
static void ctx_free(fit_ctx *c)
{
    kalman_store_free(&c->store);
    free(c->rqr);
    free(c->rqr2);
    free(c->didx);
    free(c->dval);
    kalman_state_free(&c->st);
    kalman_ssm_free(&c->ssm2);
    kalman_workspace_free(c->ws);
    kalman_ssm_free(&c->ssm);
    memset(c, 0, sizeof *c);
}

static int ctx_init(fit_ctx *c, const kalman_model *model, const double *y, size_t n,
                    kalman_error *err)
{
    memset(c, 0, sizeof *c);
    c->model = model;
    c->y = y;
    c->n = n;
    c->nobs = 1.0;
    const int np = model->nparams;
    const size_t mm = (size_t)model->m * model->m;
    int rc = kalman_ssm_alloc(&c->ssm, model->m, model->r, err);
    if (rc)
        return rc;
    c->ws = kalman_workspace_create(model->m, model->r, err);
    if (!c->ws) {
        ctx_free(c);
        return err ? err->code : KALMAN_ENOMEM;
    }
    int nvar = 0;
    for (int i = 0; i < np; i++)
        nvar += model->is_variance[i] != 0;
    c->analytic = nvar > 0 && n > 0;
    if (!c->analytic)
        return 0;
    rc = kalman_ssm_alloc(&c->ssm2, model->m, model->r, err);
    if (!rc)
        rc = kalman_state_alloc(&c->st, model->m, err);
    if (rc) {
        ctx_free(c);
        return rc;
    }
    c->store.n = n;
    c->store.m = model->m;
    c->store.v = malloc(n * sizeof(double));
    c->store.F = malloc(n * sizeof(double));
    c->store.Finf = malloc(n * sizeof(double));
    c->store.K = malloc(n * (size_t)model->m * sizeof(double));
    c->store.Kinf = malloc(n * (size_t)model->m * sizeof(double));
    c->rqr = malloc(mm * sizeof(double));
    c->rqr2 = malloc(mm * sizeof(double));
    c->didx = malloc((size_t)nvar * 2 * mm * sizeof(int));
    c->dval = malloc((size_t)nvar * 2 * mm * sizeof(double));
    if (!c->store.v || !c->store.F || !c->store.Finf || !c->store.K || !c->store.Kinf ||
        !c->rqr || !c->rqr2 || !c->didx || !c->dval) {
        ctx_free(c);
        return kalman_error_set(err, KALMAN_ENOMEM, "out of memory preparing the fit");
    }
    return 0;
}

int kalman_model_score(const kalman_model *model, const double *params, const double *y,
                       size_t n, double *loglik, double *score, kalman_error *err)
{
    if (!model || !params || !y || n == 0)
        return kalman_error_set(err, KALMAN_EINVAL, "kalman_model_score needs a model, parameters and data");
    fit_ctx c;
    int rc = ctx_init(&c, model, y, n, err);
    if (rc)
        return rc;
    const int np = model->nparams;
    double p[KALMAN_MAX_PARAMS], gp[KALMAN_MAX_PARAMS], ll = NAN;
    int lin[KALMAN_MAX_PARAMS] = {0};
    memcpy(p, params, (size_t)np * sizeof(double));
    if (c.analytic) {
        if (score_params(&c, p, &ll, gp, lin)) {
            rc = kalman_error_set(err, KALMAN_ENUMERIC, "log-likelihood cannot be evaluated at these parameters");
            goto out;
        }
    } else {
        ll = eval_params(&c, p, NULL);
        if (!isfinite(ll)) {
            rc = kalman_error_set(err, KALMAN_ENUMERIC, "log-likelihood cannot be evaluated at these parameters");
            goto out;
        }
    }
    for (int i = 0; i < np; i++) {
        if (lin[i]) {
            score[i] = gp[i];
            continue;
        }
        /* central differences on the constrained scale */
        double h = 1e-6 * fmax(1e-3, fabs(p[i]));
        double q[KALMAN_MAX_PARAMS];
        memcpy(q, p, (size_t)np * sizeof(double));
        q[i] = p[i] + h;
        double fp = eval_params(&c, q, NULL);
        q[i] = p[i] - h;
        double fm = eval_params(&c, q, NULL);
        score[i] = (isfinite(fp) && isfinite(fm)) ? (fp - fm) / (2.0 * h) : NAN;
    }
    if (loglik)
        *loglik = ll;
out:
    ctx_free(&c);
    return rc;
}

int kalman_fit(const kalman_model *model, const double *y, size_t n,
               const kalman_fit_opts *opts, kalman_fit_result *res, kalman_error *err)
{
    if (!model || !res || (!y && n))
        return kalman_error_set(err, KALMAN_EINVAL, "kalman_fit needs a model, data and a result");
    if (model->nparams < 0 || model->nparams > KALMAN_MAX_PARAMS)
        return kalman_error_set(err, KALMAN_EINVAL, "model has %d parameters", model->nparams);
    kalman_fit_opts o = {0};
    if (opts)
        o = *opts;
    int max_iter = o.max_iter > 0 ? o.max_iter : 500;
    double tol = o.tol > 0 ? o.tol : 1e-6;
    int restarts = o.restarts < 0 ? 0 : (o.restarts == 0 ? 2 : o.restarts);
    memset(res, 0, sizeof *res);

    long nobs = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(y[i]))
            continue;
        if (!isfinite(y[i]))
            return kalman_error_set(err, KALMAN_EINVAL, "observation %zu is infinite", i);
        nobs++;
    }

    fit_ctx c;
    int rc = ctx_init(&c, model, y, n, err);
    if (rc)
        return rc;
    const int np = model->nparams;
    double p0[KALMAN_MAX_PARAMS] = {0};
    if (o.start) {
        memcpy(p0, o.start, (size_t)np * sizeof(double));
    } else if (model->start) {
        rc = model->start(model->ctx, y, n, p0, err);
        if (rc)
            goto done;
    }
    for (int i = 0; i < np; i++) {
        if (model->fixed[i])
            p0[i] = model->fixed_value[i];
        if (!isfinite(p0[i])) {
            rc = kalman_error_set(err, KALMAN_EINVAL, "starting value of %s is not finite",
                                  model->names[i]);
            goto done;
        }
    }
    /* the starting point must build */
    rc = model->build(model->ctx, p0, &c.ssm, c.ws, err);
    if (rc)
        goto done;
    int kdiffuse = 0;
    for (int i = 0; i < model->m; i++)
        kdiffuse += c.ssm.init[i] == KALMAN_INIT_DIFFUSE;
    int nfree_all = 0;
    for (int i = 0; i < np; i++)
        nfree_all += !model->fixed[i];
    if (nobs < (long)kdiffuse + nfree_all + 1 || nobs < 2) {
        rc = kalman_error_set(err, KALMAN_ETOOSHORT,
                              "series too short: %ld observations for %d parameters and %d diffuse states",
                              nobs, nfree_all, kdiffuse);
        goto done;
    }

    double pbest[KALMAN_MAX_PARAMS];
    int converged = 1, iterations = 0;
    c.nobs = (double)(nobs > 0 ? nobs : 1);
    if (model->concentrate_ok && !o.no_concentrate) {
        /* default: one more run at most (see fit_variance_only) */
        rc = fit_variance_only(&c, p0, max_iter, tol, o.restarts == 0 ? 1 : restarts, pbest,
                               &converged, &iterations);
        if (rc < 0) {
            kalman_error_set(err, rc, "likelihood could not be evaluated at any parameter tried");
            goto done;
        }
        if (rc == 0)
            goto final;
        c.concentrate = 0;
        c.sqmode = 0;
        c.ds_cached = 0;
    }

    /* concentrate the scale out? */
    c.concentrate = 0;
    c.scale_idx = -1;
    if (model->concentrate_ok && !o.no_concentrate) {
        for (int i = 0; i < np; i++)
            if (model->is_variance[i] && !model->fixed[i] && p0[i] > 0 &&
                (c.scale_idx < 0 || p0[i] > p0[c.scale_idx]))
                c.scale_idx = i;
        if (c.scale_idx >= 0) {
            c.concentrate = 1;
            double s0 = p0[c.scale_idx];
            for (int i = 0; i < np; i++)
                if (model->is_variance[i] && !model->fixed[i])
                    p0[i] /= s0;
            p0[c.scale_idx] = 1.0;
        }
    }
    c.nobs = (double)(nobs > 0 ? nobs : 1);

    model->untransform(model->ctx, p0, c.ubase);
    c.nfree = 0;
    for (int i = 0; i < np; i++)
        if (!model->fixed[i] && !(c.concentrate && i == c.scale_idx))
            c.idx[c.nfree++] = i;

    if (c.nfree > 0) {
        double x0[KALMAN_MAX_PARAMS];
        for (int i = 0; i < c.nfree; i++)
            x0[i] = c.ubase[c.idx[i]];
        run_result best = {.f = INFINITY};
        for (int rs = 0; rs <= restarts; rs++) {
            double xs[KALMAN_MAX_PARAMS];
            memcpy(xs, rs > 0 ? best.x : x0, sizeof xs);
            if (rs > 0) {
                /* restart from the best point so far, perturbed: variance coordinates by
                 * factors of e^{+-1} / e^{+-2} (log scale for the built-in builders), the others
                 * towards zero; a run that finds a better basin replaces the best */
                double shift = (rs % 2 ? -2.0 : 2.0) * (double)((rs + 1) / 2);
                for (int i = 0; i < c.nfree; i++)
                    if (model->is_variance[c.idx[i]])
                        xs[i] += shift * ((i % 2) ? 1.0 : 0.5);
                    else
                        xs[i] *= 0.5;
            }
            run_result r;
            rc = optimize(&c, xs, max_iter, tol, &r);
            if (rc) {
                kalman_error_set(err, rc, "out of memory in the optimizer");
                goto done;
            }
            iterations += r.iterations;
            /* a restart that lands back on the best optimum is evidence enough: stop */
            int same_optimum = rs > 0 && best.converged && r.converged &&
                               fabs(r.f - best.f) <= 1e-9 * (1.0 + fabs(best.f));
            if (rs == 0 || r.f < best.f)
                best = r;
            if (same_optimum)
                break;
        }
        if (!(best.f < 1e29)) {
            rc = kalman_error_set(err, KALMAN_ENUMERIC,
                                  "likelihood could not be evaluated at any parameter tried");
            goto done;
        }
        converged = best.converged;
        x_to_params(&c, best.x, pbest);
    } else {
        x_to_params(&c, NULL, pbest);
    }
    if (c.concentrate) {
        double s2 = 1.0;
        double ll = eval_params(&c, pbest, &s2);
        if (!isfinite(ll)) {
            rc = kalman_error_set(err, KALMAN_ENUMERIC, "log-likelihood is not finite at the optimum");
            goto done;
        }
        for (int i = 0; i < np; i++)
            if (model->is_variance[i] && !model->fixed[i])
                pbest[i] *= s2;
        c.concentrate = 0;
    }
    /* polish without concentration, free variances on the square scale (zero is a finite
     * point there, so boundary optima converge quickly) */
    if (nfree_all > 0) {
        c.concentrate = 0;
        c.sqmode = 1;
        model->untransform(model->ctx, pbest, c.ubase);
        c.nfree = 0;
        double vmax = 0.0;
        for (int i = 0; i < np; i++)
            if (model->is_variance[i])
                vmax = fmax(vmax, pbest[i]);
        double x0[KALMAN_MAX_PARAMS];
        for (int i = 0; i < np; i++)
            if (!model->fixed[i]) {
                x0[c.nfree] = model->is_variance[i] ? sqrt(fmax(pbest[i], 1e-12 * vmax))
                                                    : c.ubase[i];
                c.idx[c.nfree++] = i;
            }
        double f0 = -eval_params(&c, pbest, NULL) / c.nobs;
        run_result r;
        rc = run_bfgs(&c, x0, max_iter, tol, 0, &r);
        if (rc) {
            kalman_error_set(err, rc, "out of memory in the optimizer");
            goto done;
        }
        iterations += r.iterations;
        if (r.f < f0 && isfinite(r.f)) {
            x_to_params(&c, r.x, pbest);
            if (!converged)
                converged = r.converged;
        }
        c.sqmode = 0;
    }

final:
    /* final, unconcentrated likelihood at admissible parameters */
    c.concentrate = 0;
    double ll = eval_params(&c, pbest, NULL);
    if (!isfinite(ll)) {
        rc = kalman_error_set(err, KALMAN_ENUMERIC, "log-likelihood is not finite at the optimum");
        goto done;
    }
    kalman_loglik_acc acc;
    rc = kalman_loglik(&c.ssm, y, n, 0, c.ws, &ll, NULL, &acc, err);
    if (rc)
        goto done;
    res->nparams = np;
    memcpy(res->params, pbest, (size_t)np * sizeof(double));
    res->loglik = ll;
    res->converged = converged;
    res->iterations = iterations;
    res->nobs = acc.nobs;
    res->ndiffuse = acc.ndiffuse;
    res->nfree = nfree_all + kdiffuse;
    res->nobs_eff = (long)n;
    kalman_fit_criteria(res);
    rc = 0;
done:
    ctx_free(&c);
    return rc;
}
