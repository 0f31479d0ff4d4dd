/*
 * kalman/structural.c — the structural (unobserved components) model builder, laid out as
 * statsmodels' UnobservedComponents lays it out so parameters and states line up:
 *
 *   states:  level, trend (slope), seasonal (dummy: s-1 states; trigonometric: 2 per
 *            harmonic), cycle (2); every state exact diffuse (as statsmodels does)
 *   params:  sigma2.irregular, sigma2.level, sigma2.trend, sigma2.seasonal
 *            (sigma2.freq_seasonal_<s>(<k>) when trigonometric), sigma2.cycle,
 *            frequency.cycle, damping.cycle — only those the spec makes stochastic
 *
 *   level/trend  T = [1 1; 0 1] (or [1] without a slope), Z = [1 0]
 *   dummy        seasonal_{t+1} = -sum_{j=1}^{s-1} seasonal_{t+1-j} + w_t
 *   trig         per harmonic j: [cos l, sin l; -sin l, cos l], l = 2 pi j / s, Z = [1 0];
 *                the harmonic at l = pi (j = s/2) keeps only its cosine state (T = -1): its
 *                sine state never reaches y and would keep the diffuse phase open forever
 *   cycle        rho [cos l, sin l; -sin l, cos l], both states disturbed with sigma2.cycle
 *
 * Variances are optimized on the log scale; the cycle frequency by a logistic map into
 * (0, pi) and the damping by a logistic map into (0, 1).
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct structural_ctx {
    kalman_structural_spec spec;
    int m, r;
    /* parameter indices, -1 when absent */
    int p_irr, p_level, p_trend, p_seas, p_cvar, p_cfreq, p_cdamp;
    /* state offsets, -1 when absent */
    int s_level, s_trend, s_seas, n_seas, s_cyc, s_dummy;
    /* disturbance columns */
    int e_level, e_trend, e_seas, n_eseas, e_cyc;
    double freq_lo, freq_hi;
} structural_ctx;

static double logistic(double x) { return 1.0 / (1.0 + exp(-x)); }

static void structural_transform(void *vctx, const double *u, double *p)
{
    structural_ctx *c = vctx;
    int np = 0;
    int idx[7] = {c->p_irr, c->p_level, c->p_trend, c->p_seas, c->p_cvar, c->p_cfreq, c->p_cdamp};
    for (int i = 0; i < 7; i++)
        if (idx[i] >= 0)
            np++;
    for (int i = 0; i < np; i++)
        p[i] = exp(u[i]);
    if (c->p_cfreq >= 0)
        p[c->p_cfreq] = c->freq_lo + (c->freq_hi - c->freq_lo) * logistic(u[c->p_cfreq]);
    if (c->p_cdamp >= 0)
        p[c->p_cdamp] = logistic(u[c->p_cdamp]);
}

static double logit(double x)
{
    if (x <= 1e-12)
        x = 1e-12;
    if (x >= 1 - 1e-12)
        x = 1 - 1e-12;
    return log(x / (1 - x));
}

static void structural_untransform(void *vctx, const double *p, double *u)
{
    structural_ctx *c = vctx;
    int idx[7] = {c->p_irr, c->p_level, c->p_trend, c->p_seas, c->p_cvar, c->p_cfreq, c->p_cdamp};
    for (int i = 0; i < 7; i++) {
        int k = idx[i];
        if (k < 0)
            continue;
        if (k == c->p_cfreq)
            u[k] = logit((p[k] - c->freq_lo) / (c->freq_hi - c->freq_lo));
        else if (k == c->p_cdamp)
            u[k] = logit(p[k]);
        else
            u[k] = log(p[k] > 1e-300 ? p[k] : 1e-300);
    }
}

static int structural_build(void *vctx, const double *p, kalman_ssm *s, kalman_workspace *ws,
                            kalman_error *err)
{
    structural_ctx *c = vctx;
    const int m = c->m, r = c->r;
    if (s->m != m || s->r != r)
        return kalman_error_set(err, KALMAN_EINVAL, "system has the wrong dimensions for this model");
    int idx[5] = {c->p_irr, c->p_level, c->p_trend, c->p_seas, c->p_cvar};
    for (int i = 0; i < 5; i++)
        if (idx[i] >= 0 && !(p[idx[i]] >= 0.0 && isfinite(p[idx[i]])))
            return kalman_error_set(err, KALMAN_EINVAL, "variance parameter %d is negative or not finite: %g",
                                    idx[i], p[idx[i]]);
    double lambda = 0.0, rho = 1.0;
    if (c->p_cfreq >= 0) {
        lambda = p[c->p_cfreq];
        if (!isfinite(lambda) || lambda < c->freq_lo || lambda > c->freq_hi)
            return kalman_error_set(err, KALMAN_EINVAL, "frequency.cycle out of range: %g", lambda);
    }
    if (c->p_cdamp >= 0) {
        rho = p[c->p_cdamp];
        if (!isfinite(rho) || rho < 0.0 || rho > 1.0)
            return kalman_error_set(err, KALMAN_EINVAL, "damping.cycle out of range: %g", rho);
    }
    memset(s->Z, 0, (size_t)m * sizeof(double));
    memset(s->T, 0, (size_t)m * m * sizeof(double));
    memset(s->c, 0, (size_t)m * sizeof(double));
    memset(s->R, 0, (size_t)m * r * sizeof(double));
    memset(s->Q, 0, (size_t)r * r * sizeof(double));
    s->d = 0.0;
    s->H = c->p_irr >= 0 ? p[c->p_irr] : 0.0;
    double *T = s->T;
    if (c->s_level >= 0) {
        int l = c->s_level;
        s->Z[l] = 1.0;
        T[l * m + l] = 1.0;
        if (c->s_trend >= 0) {
            int b = c->s_trend;
            T[l * m + b] = 1.0;
            T[b * m + b] = 1.0;
        }
    }
    if (c->s_seas >= 0) {
        int o = c->s_seas, k = c->n_seas;
        if (c->spec.harmonics == 0) {
            s->Z[o] = 1.0;
            for (int j = 0; j < k; j++)
                T[o * m + o + j] = -1.0;
            for (int j = 1; j < k; j++)
                T[(o + j) * m + o + j - 1] = 1.0;
        } else {
            for (int h = 0; h < c->spec.harmonics; h++) {
                double lam = 2.0 * M_PI * (h + 1) / c->spec.seasonal;
                int a = o + 2 * h;
                s->Z[a] = 1.0;
                if (2 * (h + 1) == c->spec.seasonal) {
                    /* lambda = pi: the sine state never reaches y; one state, T = -1 */
                    T[a * m + a] = -1.0;
                    continue;
                }
                T[a * m + a] = cos(lam);
                T[a * m + a + 1] = sin(lam);
                T[(a + 1) * m + a] = -sin(lam);
                T[(a + 1) * m + a + 1] = cos(lam);
            }
        }
    }
    if (c->s_cyc >= 0) {
        int a = c->s_cyc;
        s->Z[a] = 1.0;
        T[a * m + a] = rho * cos(lambda);
        T[a * m + a + 1] = rho * sin(lambda);
        T[(a + 1) * m + a] = -rho * sin(lambda);
        T[(a + 1) * m + a + 1] = rho * cos(lambda);
    }
    if (c->e_level >= 0) {
        s->R[c->s_level * r + c->e_level] = 1.0;
        s->Q[c->e_level * r + c->e_level] = p[c->p_level];
    }
    if (c->e_trend >= 0) {
        s->R[c->s_trend * r + c->e_trend] = 1.0;
        s->Q[c->e_trend * r + c->e_trend] = p[c->p_trend];
    }
    for (int j = 0; j < c->n_eseas; j++) {
        s->R[(c->s_seas + j) * r + c->e_seas + j] = 1.0;
        s->Q[(c->e_seas + j) * r + c->e_seas + j] = p[c->p_seas];
    }
    if (c->e_cyc >= 0) {
        for (int j = 0; j < 2; j++) {
            s->R[(c->s_cyc + j) * r + c->e_cyc + j] = 1.0;
            s->Q[(c->e_cyc + j) * r + c->e_cyc + j] = p[c->p_cvar];
        }
    }
    for (int i = 0; i < m; i++)
        s->init[i] = KALMAN_INIT_DIFFUSE;
    if (c->s_dummy >= 0) {
        /* irregular-only model: one unused, known state (statsmodels does the same) */
        s->init[c->s_dummy] = KALMAN_INIT_KNOWN;
        s->a1[c->s_dummy] = 0.0;
        s->P1star[0] = 0.0;
    }
    return kalman_ssm_initialize(s, ws, err);
}

/* variance of the lag-`lag` differences of y (NaN pairs skipped); -1 when too few */
static double diff_var(const double *y, size_t n, int order)
{
    /* order 0: y, 1: first differences, 2: second differences */
    double sum = 0.0, sum2 = 0.0;
    long k = 0;
    for (size_t t = (size_t)order; t < n; t++) {
        double v;
        if (order == 0)
            v = y[t];
        else if (order == 1)
            v = y[t] - y[t - 1];
        else
            v = y[t] - 2.0 * y[t - 1] + y[t - 2];
        if (!isfinite(v))
            continue;
        sum += v;
        sum2 += v * v;
        k++;
    }
    if (k < 2)
        return -1.0;
    double mean = sum / k;
    double var = sum2 / k - mean * mean;
    return var > 0 ? var : -1.0;
}

static int structural_start(void *vctx, const double *y, size_t n, double *p, kalman_error *err)
{
    structural_ctx *c = vctx;
    double v0 = diff_var(y, n, 0), v1 = diff_var(y, n, 1), v2 = diff_var(y, n, 2);
    if (v0 <= 0 && v1 <= 0)
        return kalman_error_set(err, KALMAN_ETOOSHORT,
                                "series too short or constant: cannot choose starting values");
    if (v1 <= 0)
        v1 = v0;
    if (v2 <= 0)
        v2 = v1;
    double base = c->spec.level ? v1 : v0;
    if (c->p_irr >= 0)
        p[c->p_irr] = 0.5 * base;
    if (c->p_level >= 0)
        p[c->p_level] = 0.25 * base;
    if (c->p_trend >= 0)
        p[c->p_trend] = 0.05 * (v2 < v1 ? v2 : v1) + 1e-6 * base;
    if (c->p_seas >= 0)
        p[c->p_seas] = 0.1 * base;
    if (c->p_cvar >= 0)
        p[c->p_cvar] = 0.25 * base;
    if (c->p_cfreq >= 0)
        p[c->p_cfreq] = 0.5 * (c->freq_lo + c->freq_hi);
    if (c->p_cdamp >= 0)
        p[c->p_cdamp] = 0.9;
    return 0;
}

static void structural_destroy(kalman_model *model)
{
    if (!model)
        return;
    free(model->ctx);
    free(model);
}

int kalman_structural_named(const char *name, int season, kalman_structural_spec *out,
                            kalman_error *err)
{
    memset(out, 0, sizeof *out);
    if (!name)
        return kalman_error_set(err, KALMAN_EINVAL, "no structural model name given");
    if (!strcmp(name, "local_level") || !strcmp(name, "llevel")) {
        out->level = out->stochastic_level = out->irregular = 1;
    } else if (!strcmp(name, "random_walk") || !strcmp(name, "rwalk")) {
        out->level = out->stochastic_level = 1;
    } else if (!strcmp(name, "local_linear_trend") || !strcmp(name, "lltrend")) {
        out->level = out->stochastic_level = out->trend = out->stochastic_trend = 1;
        out->irregular = 1;
    } else if (!strcmp(name, "smooth_trend") || !strcmp(name, "strend")) {
        out->level = out->trend = out->stochastic_trend = out->irregular = 1;
    } else if (!strcmp(name, "bsm")) {
        if (season < 2)
            return kalman_error_set(err, KALMAN_EINVAL,
                                    "bsm needs a season length of at least 2, got %d", season);
        out->level = out->stochastic_level = out->trend = out->stochastic_trend = 1;
        out->seasonal = season;
        out->stochastic_seasonal = 1;
        out->irregular = 1;
    } else {
        return kalman_error_set(err, KALMAN_EINVAL, "unknown structural model \"%s\"", name);
    }
    return 0;
}

kalman_model *kalman_structural_create(const kalman_structural_spec *spec, kalman_error *err)
{
    if (!spec) {
        kalman_error_set(err, KALMAN_EINVAL, "no structural spec given");
        return NULL;
    }
    kalman_structural_spec sp = *spec;
    if (sp.trend && !sp.level) {
        kalman_error_set(err, KALMAN_EINVAL, "a trend (slope) needs a level");
        return NULL;
    }
    if (sp.seasonal == 1 || sp.seasonal < 0) {
        kalman_error_set(err, KALMAN_EINVAL, "seasonal period must be 0 (none) or at least 2, got %d",
                         sp.seasonal);
        return NULL;
    }
    if (sp.harmonics < 0 || (sp.seasonal && sp.harmonics > sp.seasonal / 2) ||
        (!sp.seasonal && sp.harmonics)) {
        kalman_error_set(err, KALMAN_EINVAL, "harmonics must be between 1 and season/2 (%d), got %d",
                         sp.seasonal / 2, sp.harmonics);
        return NULL;
    }
    if (!sp.level && !sp.seasonal && !sp.cycle && !sp.irregular) {
        kalman_error_set(err, KALMAN_EINVAL, "structural model has no component");
        return NULL;
    }
    structural_ctx *c = calloc(1, sizeof *c);
    kalman_model *mod = calloc(1, sizeof *mod);
    if (!c || !mod) {
        free(c);
        free(mod);
        kalman_error_set(err, KALMAN_ENOMEM, "out of memory creating a structural model");
        return NULL;
    }
    c->spec = sp;
    c->freq_lo = 0.0;
    c->freq_hi = M_PI;
    /* states */
    int m = 0, r = 0;
    c->s_level = c->s_trend = c->s_seas = c->s_cyc = c->s_dummy = -1;
    c->e_level = c->e_trend = c->e_seas = c->e_cyc = -1;
    if (sp.level) {
        c->s_level = m++;
        if (sp.stochastic_level)
            c->e_level = r++;
    }
    if (sp.trend) {
        c->s_trend = m++;
        if (sp.stochastic_trend)
            c->e_trend = r++;
    }
    if (sp.seasonal) {
        c->s_seas = m;
        /* trigonometric: 2 states per harmonic, 1 for lambda = pi (even period, k = s/2) */
        int nyq = sp.harmonics && 2 * sp.harmonics == sp.seasonal;
        c->n_seas = sp.harmonics ? 2 * sp.harmonics - nyq : sp.seasonal - 1;
        m += c->n_seas;
        if (sp.stochastic_seasonal) {
            c->e_seas = r;
            c->n_eseas = sp.harmonics ? c->n_seas : 1;
            r += c->n_eseas;
        }
    }
    if (sp.cycle) {
        c->s_cyc = m;
        m += 2;
        if (sp.stochastic_cycle) {
            c->e_cyc = r;
            r += 2;
        }
    }
    if (m == 0)
        c->s_dummy = m++;
    if (m > KALMAN_MAX_STATES) {
        free(c);
        free(mod);
        kalman_error_set(err, KALMAN_EINVAL, "structural model needs %d states, at most %d supported",
                         m, KALMAN_MAX_STATES);
        return NULL;
    }
    c->m = m;
    c->r = r;
    /* parameters, statsmodels' order */
    int np = 0;
    c->p_irr = c->p_level = c->p_trend = c->p_seas = c->p_cvar = c->p_cfreq = c->p_cdamp = -1;
    if (sp.irregular) {
        c->p_irr = np;
        snprintf(mod->names[np], sizeof mod->names[np], "sigma2.irregular");
        mod->is_variance[np++] = 1;
    }
    if (c->e_level >= 0) {
        c->p_level = np;
        snprintf(mod->names[np], sizeof mod->names[np], "sigma2.level");
        mod->is_variance[np++] = 1;
    }
    if (c->e_trend >= 0) {
        c->p_trend = np;
        snprintf(mod->names[np], sizeof mod->names[np], "sigma2.trend");
        mod->is_variance[np++] = 1;
    }
    if (c->e_seas >= 0) {
        c->p_seas = np;
        if (sp.harmonics)
            snprintf(mod->names[np], sizeof mod->names[np], "sigma2.freq_seasonal_%d(%d)",
                     sp.seasonal, sp.harmonics);
        else
            snprintf(mod->names[np], sizeof mod->names[np], "sigma2.seasonal");
        mod->is_variance[np++] = 1;
    }
    if (sp.cycle) {
        if (c->e_cyc >= 0) {
            c->p_cvar = np;
            snprintf(mod->names[np], sizeof mod->names[np], "sigma2.cycle");
            mod->is_variance[np++] = 1;
        }
        c->p_cfreq = np;
        snprintf(mod->names[np++], sizeof mod->names[0], "frequency.cycle");
        if (sp.damped_cycle) {
            c->p_cdamp = np;
            snprintf(mod->names[np++], sizeof mod->names[0], "damping.cycle");
        }
    }
    mod->nparams = np;
    mod->m = m;
    mod->r = r;
    mod->ctx = c;
    mod->concentrate_ok = 1;
    mod->build = structural_build;
    mod->transform = structural_transform;
    mod->untransform = structural_untransform;
    mod->start = structural_start;
    mod->destroy = structural_destroy;
    /* canonical spec */
    if (sp.level && sp.stochastic_level && sp.irregular && !sp.trend && !sp.seasonal && !sp.cycle)
        snprintf(mod->spec, sizeof mod->spec, "local_level");
    else if (sp.level && sp.stochastic_level && sp.trend && sp.stochastic_trend && sp.irregular &&
             !sp.seasonal && !sp.cycle)
        snprintf(mod->spec, sizeof mod->spec, "local_linear_trend");
    else if (sp.level && !sp.stochastic_level && sp.trend && sp.stochastic_trend && sp.irregular &&
             !sp.seasonal && !sp.cycle)
        snprintf(mod->spec, sizeof mod->spec, "smooth_trend");
    else if (sp.level && sp.stochastic_level && sp.trend && sp.stochastic_trend && sp.irregular &&
             sp.seasonal && !sp.harmonics && sp.stochastic_seasonal && !sp.cycle)
        snprintf(mod->spec, sizeof mod->spec, "bsm(season=%d)", sp.seasonal);
    else
        snprintf(mod->spec, sizeof mod->spec,
                 "structural(level=%s,trend=%s,seasonal=%d,harmonics=%d,cycle=%s,irregular=%s)",
                 !sp.level ? "no" : sp.stochastic_level ? "stochastic" : "fixed",
                 !sp.trend ? "no" : sp.stochastic_trend ? "stochastic" : "fixed", sp.seasonal,
                 sp.harmonics, !sp.cycle ? "no" : "yes", sp.irregular ? "yes" : "no");
    return mod;
}
