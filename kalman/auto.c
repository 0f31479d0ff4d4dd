/*
 * kalman/auto.c — automatic model selection over the Kalman family (kalman_auto): a
 * stepwise SARIMA search in the spirit of Hyndman & Khandakar's auto.arima, the additive
 * ETS models and a few structural models, and one rule for choosing among them.
 *
 * The rule (also in kalman/README.md, "Automatic selection"):
 *  1. Candidates fall into likelihood classes whose log-likelihoods are comparable:
 *       FULL    the likelihood of y itself with every initial condition either a parameter
 *               or stationary: ETS (initial states are parameters) and SARIMA with
 *               d = D = 0;
 *       DIFF    SARIMA with the chosen d + s*D > 0 differences: the likelihood of the
 *               differenced data (all SARIMA candidates share d and D);
 *       DIFFUSE structural models: D&K's exact diffuse likelihood.
 *     Within a class the lowest AICc wins (each family counts its parameters as its
 *     reference implementation does: R for SARIMA and ETS, statsmodels for structural).
 *  2. Across classes the likelihoods are not comparable (different data or different
 *     treatment of the initial state), so the class winners are compared by a one-step
 *     validation score: each is refitted on all but the last h observations
 *     (h = the season length, at least 8, at most a quarter of the series), the filter
 *     then runs over the whole series with those parameters, and the mean squared
 *     one-step-ahead error over the last h observations decides. When the series is too
 *     short for that, the class winner with the lowest AICc is kept.
 *
 * SARIMA orders: d from repeated KPSS tests (5% level, at most 2), D from the seasonal
 * strength of a classical decomposition (> 0.64, as forecast::nsdiffs' default), then the
 * stepwise search from (2,d,2)(1,D,1), (0,d,0)(0,D,0), (1,d,0)(1,D,0), (0,d,1)(0,D,1) over
 * neighbours p, q, P, Q +-1, (p,q) and (P,Q) +-1 together and the constant toggled (a
 * constant only when d + D <= 1), p, q <= 5, P, Q <= 2, p + q + P + Q <= max_order.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CLS_FULL = 0, CLS_DIFF = 1, CLS_DIFFUSE = 2, NCLS = 3 };

typedef struct cand {
    kalman_model *model;
    kalman_fit_result fit;
    int cls;
} cand;

static int fit_model(const kalman_model *m, const double *y, size_t n, kalman_fit_result *res,
                     kalman_error *err)
{
    return m->fit ? m->fit(m, y, n, NULL, res, err) : kalman_fit(m, y, n, NULL, res, err);
}

/* Keeps c in best[c.cls] when its AICc is lower (takes ownership of c.model either way). */
static void offer(cand *best, cand c)
{
    cand *b = &best[c.cls];
    if (!b->model || c.fit.aicc < b->fit.aicc) {
        kalman_model_free(b->model);
        *b = c;
    } else {
        kalman_model_free(c.model);
    }
}

/* ---- tests for the number of differences ----------------------------------------------- */

/* x without its missing values (malloc'ed), *m its length. */
static double *compress(const double *x, size_t n, size_t *m)
{
    double *out = malloc((n ? n : 1) * sizeof(double));
    size_t k = 0;
    if (!out)
        return NULL;
    for (size_t t = 0; t < n; t++)
        if (!isnan(x[t]))
            out[k++] = x[t];
    *m = k;
    return out;
}

/* KPSS statistic for level stationarity with the Bartlett long-run variance and
 * lag trunc(3 sqrt(n) / 13), as forecast::ndiffs calls urca::ur.kpss. */
static double kpss_stat(const double *x, size_t n)
{
    double mean = 0.0;
    for (size_t t = 0; t < n; t++)
        mean += x[t];
    mean /= (double)n;
    double s = 0.0, eta = 0.0, s0 = 0.0;
    for (size_t t = 0; t < n; t++) {
        double e = x[t] - mean;
        s += e;
        eta += s * s;
        s0 += e * e;
    }
    eta /= (double)n * (double)n;
    size_t lag = (size_t)floor(3.0 * sqrt((double)n) / 13.0);
    double lrv = s0 / (double)n;
    for (size_t l = 1; l <= lag && l < n; l++) {
        double acc = 0.0;
        for (size_t t = l; t < n; t++)
            acc += (x[t] - mean) * (x[t - l] - mean);
        lrv += 2.0 * (1.0 - (double)l / (double)(lag + 1)) * acc / (double)n;
    }
    return lrv > 0.0 ? eta / lrv : 0.0;
}

/* Differences x (n, in place) at lag; returns the new length. */
static size_t diff_inplace(double *x, size_t n, size_t lag)
{
    if (n <= lag)
        return 0;
    for (size_t t = 0; t + lag < n; t++)
        x[t] = x[t + lag] - x[t];
    return n - lag;
}

/* Seasonal strength max(0, 1 - var(R) / var(S + R)) of a classical decomposition: trend by
 * a centred moving average of length s (2 x s when s is even), seasonal by period means. */
static double seasonal_strength(const double *x, size_t n, int s)
{
    if (s < 2 || n < 2 * (size_t)s + 2)
        return 0.0;
    double *detr = malloc(n * sizeof(double));
    double *seas = calloc((size_t)s, sizeof(double));
    size_t *cnt = calloc((size_t)s, sizeof(size_t));
    double strength = 0.0;
    if (!detr || !seas || !cnt)
        goto done;
    size_t half = (size_t)s / 2;
    for (size_t t = 0; t < n; t++) {
        detr[t] = NAN;
        if (t < half || t + half >= n)
            continue;
        double acc = 0.0;
        if (s % 2 == 0) {
            acc = 0.5 * (x[t - half] + x[t + half]);
            for (size_t j = t - half + 1; j < t + half; j++)
                acc += x[j];
        } else {
            for (size_t j = t - half; j <= t + half; j++)
                acc += x[j];
        }
        detr[t] = x[t] - acc / (double)s;
    }
    for (size_t t = 0; t < n; t++)
        if (isfinite(detr[t])) {
            seas[t % (size_t)s] += detr[t];
            cnt[t % (size_t)s]++;
        }
    double mean_s = 0.0;
    for (int j = 0; j < s; j++) {
        seas[j] = cnt[j] ? seas[j] / (double)cnt[j] : 0.0;
        mean_s += seas[j] / s;
    }
    double sr = 0.0, sr2 = 0.0, rr = 0.0, rr2 = 0.0;
    size_t k = 0;
    for (size_t t = 0; t < n; t++) {
        if (!isfinite(detr[t]))
            continue;
        double sv = seas[t % (size_t)s] - mean_s, rv = detr[t] - sv;
        sr += detr[t];
        sr2 += detr[t] * detr[t];
        rr += rv;
        rr2 += rv * rv;
        k++;
    }
    if (k > 2) {
        double var_sr = sr2 / k - (sr / k) * (sr / k), var_r = rr2 / k - (rr / k) * (rr / k);
        strength = var_sr > 0.0 ? fmax(0.0, 1.0 - var_r / var_sr) : 0.0;
    }
done:
    free(detr);
    free(seas);
    free(cnt);
    return strength;
}

/* D (0/1) and d (0..2) as auto.arima chooses them (see the header). */
static void choose_differences(const double *y, size_t n, int season, int *d_out, int *D_out)
{
    size_t m;
    double *x = compress(y, n, &m);
    *d_out = 0;
    *D_out = 0;
    if (!x)
        return;
    if (season >= 2 && m >= 3 * (size_t)season && seasonal_strength(x, m, season) > 0.64) {
        *D_out = 1;
        m = diff_inplace(x, m, (size_t)season);
    }
    while (*d_out < 2 && m > 10 && kpss_stat(x, m) > 0.463) {
        m = diff_inplace(x, m, 1);
        (*d_out)++;
    }
    free(x);
}

/* ---- SARIMA search ---------------------------------------------------------------------- */

typedef struct order {
    int p, q, P, Q, c;
} order;

static int order_ok(order o, int max_order, int seasonal, int allow_c)
{
    if (o.p < 0 || o.q < 0 || o.P < 0 || o.Q < 0 || o.p > 5 || o.q > 5 || o.P > 2 || o.Q > 2)
        return 0;
    if (!seasonal && (o.P || o.Q))
        return 0;
    if (o.c && !allow_c)
        return 0;
    return o.p + o.q + o.P + o.Q <= max_order;
}

typedef struct search {
    const double *y;
    size_t n;
    int d, D, s;
    order seen[256];
    int nseen;
    int ncand;
    cand best;     /* best SARIMA so far */
} search;

/* Fits order o (once); returns its AICc (INFINITY when it cannot be fitted). */
static double try_order(search *S, order o)
{
    for (int i = 0; i < S->nseen; i++)
        if (!memcmp(&S->seen[i], &o, sizeof o))
            return INFINITY; /* already tried: never an improvement */
    if (S->nseen < 256)
        S->seen[S->nseen++] = o;
    kalman_sarima_spec sp = {.p = o.p, .d = S->d, .q = o.q, .P = o.P, .D = S->D, .Q = o.Q,
                             .s = S->s, .constant = o.c};
    kalman_error err;
    kalman_model *m = kalman_sarima_create(&sp, &err);
    if (!m)
        return INFINITY;
    cand c = {.model = m, .cls = (S->d + S->D) ? CLS_DIFF : CLS_FULL};
    S->ncand++;
    if (fit_model(m, S->y, S->n, &c.fit, &err) || !isfinite(c.fit.aicc)) {
        kalman_model_free(m);
        return INFINITY;
    }
    double aicc = c.fit.aicc;
    if (!S->best.model || aicc < S->best.fit.aicc) {
        kalman_model_free(S->best.model);
        S->best = c;
    } else {
        kalman_model_free(m);
    }
    return aicc;
}

static order best_order(const search *S)
{
    /* recover the order of S->best from its spec */
    kalman_sarima_spec sp;
    order o = {0, 0, 0, 0, 0};
    const char *txt = S->best.model->spec;
    if (!strncmp(txt, "sarima", 6) && !kalman_sarima_parse(txt + 6, S->s, &sp, NULL)) {
        o.p = sp.p;
        o.q = sp.q;
        o.P = sp.P;
        o.Q = sp.Q;
        o.c = sp.constant;
    }
    return o;
}

static void sarima_search(search *S, int seasonal, int max_order, int stepwise)
{
    int allow_c = S->d + S->D <= 1;
    if (stepwise >= 0) {
        order init[4] = {{2, 2, 1, 1, allow_c}, {0, 0, 0, 0, allow_c}, {1, 0, 1, 0, allow_c},
                         {0, 1, 0, 1, allow_c}};
        for (int i = 0; i < 4; i++) {
            order o = init[i];
            if (!seasonal)
                o.P = o.Q = 0;
            while (o.p + o.q + o.P + o.Q > max_order) {
                /* shrink the largest order until the start fits the bound */
                if (o.p >= o.q && o.p > 0)
                    o.p--;
                else if (o.q > 0)
                    o.q--;
                else if (o.P > 0)
                    o.P--;
                else
                    o.Q--;
            }
            if (order_ok(o, max_order, seasonal, allow_c))
                try_order(S, o);
        }
        for (int step = 0; step < 94 && S->best.model; step++) {
            order cur = best_order(S);
            double cur_aicc = S->best.fit.aicc;
            order nb[14];
            int k = 0;
            for (int dl = -1; dl <= 1; dl += 2) {
                nb[k++] = (order){cur.p + dl, cur.q, cur.P, cur.Q, cur.c};
                nb[k++] = (order){cur.p, cur.q + dl, cur.P, cur.Q, cur.c};
                nb[k++] = (order){cur.p, cur.q, cur.P + dl, cur.Q, cur.c};
                nb[k++] = (order){cur.p, cur.q, cur.P, cur.Q + dl, cur.c};
                nb[k++] = (order){cur.p + dl, cur.q + dl, cur.P, cur.Q, cur.c};
                nb[k++] = (order){cur.p, cur.q, cur.P + dl, cur.Q + dl, cur.c};
            }
            nb[k++] = (order){cur.p, cur.q, cur.P, cur.Q, !cur.c};
            int improved = 0;
            for (int i = 0; i < k; i++) {
                if (!order_ok(nb[i], max_order, seasonal, allow_c))
                    continue;
                if (try_order(S, nb[i]) < cur_aicc - 1e-9) {
                    improved = 1;
                    break; /* move to the better model at once, as auto.arima does */
                }
            }
            if (!improved)
                break;
        }
    } else {
        for (int c = 0; c <= allow_c; c++)
            for (int p = 0; p <= 3; p++)
                for (int q = 0; q <= 3; q++)
                    for (int P = 0; P <= (seasonal ? 1 : 0); P++)
                        for (int Q = 0; Q <= (seasonal ? 1 : 0); Q++) {
                            order o = {p, q, P, Q, c};
                            if (order_ok(o, max_order, seasonal, allow_c))
                                try_order(S, o);
                        }
    }
}

/* ---- validation ------------------------------------------------------------------------- */

/* Mean squared one-step error over y[n-h..n) of c's model refitted on y[0..n-h). */
static double validation_score(const cand *c, const double *y, size_t n, size_t h)
{
    const kalman_model *m = c->model;
    kalman_error err;
    kalman_fit_result tr;
    if (fit_model(m, y, n - h, &tr, &err))
        return INFINITY;
    kalman_ssm s;
    if (kalman_ssm_alloc(&s, m->m, m->r, &err))
        return INFINITY;
    double score = INFINITY;
    kalman_workspace *ws = kalman_workspace_create(m->m, m->r, &err);
    kalman_state st;
    int st_ok = 0;
    double *v = malloc(n * sizeof(double));
    kalman_store store;
    memset(&store, 0, sizeof store);
    store.n = n;
    store.m = m->m;
    store.v = v;
    if (!ws || !v || kalman_state_alloc(&st, m->m, &err))
        goto done;
    st_ok = 1;
    if (m->build(m->ctx, tr.params, &s, ws, &err))
        goto done;
    kalman_state_start(&st, &s);
    if (kalman_filter(&s, y, n, &st, NULL, &store, ws, &err))
        goto done;
    double acc = 0.0;
    long cnt = 0;
    for (size_t t = n - h; t < n; t++)
        if (isfinite(v[t])) {
            acc += v[t] * v[t];
            cnt++;
        }
    if (cnt > 0)
        score = acc / (double)cnt;
done:
    if (st_ok)
        kalman_state_free(&st);
    free(v);
    kalman_workspace_free(ws);
    kalman_ssm_free(&s);
    return score;
}

/* ---- the driver ------------------------------------------------------------------------- */

int kalman_auto(const double *y, size_t n, const kalman_auto_opts *opts,
                kalman_auto_result *out, kalman_error *err)
{
    if (!out || (!y && n))
        return kalman_error_set(err, KALMAN_EINVAL, "kalman_auto needs data and a result");
    memset(out, 0, sizeof *out);
    kalman_auto_opts o = {0};
    if (opts)
        o = *opts;
    unsigned fam = o.families ? o.families
                              : (KALMAN_AUTO_STRUCTURAL | KALMAN_AUTO_SARIMA | KALMAN_AUTO_ETS);
    int season = o.season >= 2 ? o.season : 0;
    int max_order = o.max_order > 0 ? o.max_order : 5;
    size_t nobs = 0;
    for (size_t t = 0; t < n; t++) {
        if (isinf(y[t]))
            return kalman_error_set(err, KALMAN_EINVAL, "observation %zu is infinite", t);
        nobs += !isnan(y[t]);
    }
    if (nobs < 4)
        return kalman_error_set(err, KALMAN_ETOOSHORT,
                                "kalman_auto: %zu observations are too few to choose a model",
                                nobs);
    /* a seasonal model needs two full seasons at least */
    if (season && nobs < 2 * (size_t)season + 2)
        season = 0;

    cand best[NCLS];
    memset(best, 0, sizeof best);
    int ncand = 0;
    kalman_error ferr;

    if (fam & KALMAN_AUTO_SARIMA) {
        search S;
        memset(&S, 0, sizeof S);
        S.y = y;
        S.n = n;
        S.s = season;
        choose_differences(y, n, season, &S.d, &S.D);
        sarima_search(&S, season >= 2, max_order, o.stepwise);
        ncand += S.ncand;
        if (S.best.model)
            offer(best, S.best);
    }
    if (fam & KALMAN_AUTO_ETS) {
        static const char trends[3] = {'N', 'A', 'A'};
        static const int damped[3] = {0, 0, 1};
        for (int seas = 0; seas <= (season >= 2 && season <= 60 ? 1 : 0); seas++)
            for (int t = 0; t < 3; t++) {
                kalman_ets_spec sp = {.error = 'A', .trend = trends[t], .damped = damped[t],
                                      .seasonal = seas ? 'A' : 'N', .period = seas ? season : 0};
                kalman_model *m = kalman_ets_create(&sp, &ferr);
                if (!m)
                    continue;
                ncand++;
                cand c = {.model = m, .cls = CLS_FULL};
                if (fit_model(m, y, n, &c.fit, &ferr) || !isfinite(c.fit.aicc))
                    kalman_model_free(m);
                else
                    offer(best, c);
            }
    }
    if (fam & KALMAN_AUTO_STRUCTURAL) {
        const char *names[3] = {"local_level", "local_linear_trend", "bsm"};
        for (int i = 0; i < (season >= 2 ? 3 : 2); i++) {
            kalman_structural_spec sp;
            if (kalman_structural_named(names[i], season, &sp, &ferr))
                continue;
            kalman_model *m = kalman_structural_create(&sp, &ferr);
            if (!m)
                continue;
            ncand++;
            cand c = {.model = m, .cls = CLS_DIFFUSE};
            if (fit_model(m, y, n, &c.fit, &ferr) || !isfinite(c.fit.aicc))
                kalman_model_free(m);
            else
                offer(best, c);
        }
    }

    /* across classes: one-step validation over the last h observations */
    int nwin = 0, win = -1;
    for (int k = 0; k < NCLS; k++)
        nwin += best[k].model != NULL;
    if (nwin == 0)
        return kalman_error_set(err, KALMAN_ENUMERIC,
                                "kalman_auto: no candidate model could be fitted (%d tried)", ncand);
    size_t h = (size_t)(season >= 8 ? season : 8);
    if (h > n / 4)
        h = n / 4;
    if (nwin > 1 && h >= 2) {
        double best_score = INFINITY;
        for (int k = 0; k < NCLS; k++) {
            if (!best[k].model)
                continue;
            double sc = validation_score(&best[k], y, n, h);
            if (sc < best_score) {
                best_score = sc;
                win = k;
            }
        }
    }
    if (win < 0) /* one class, or no validation possible: the lowest AICc */
        for (int k = 0; k < NCLS; k++)
            if (best[k].model && (win < 0 || best[k].fit.aicc < best[win].fit.aicc))
                win = k;
    out->model = best[win].model;
    out->fit = best[win].fit;
    snprintf(out->spec, sizeof out->spec, "%s", best[win].model->spec);
    out->ncandidates = ncand;
    for (int k = 0; k < NCLS; k++)
        if (k != win)
            kalman_model_free(best[k].model);
    return 0;
}

/* ---- models from their spec text -------------------------------------------------------- */

kalman_model *kalman_model_from_spec(const char *spec, int season, kalman_error *err)
{
    if (!spec) {
        kalman_error_set(err, KALMAN_EINVAL, "no model spec given");
        return NULL;
    }
    if (!strncmp(spec, "sarima", 6)) {
        kalman_sarima_spec sp;
        if (kalman_sarima_parse(spec + 6, season, &sp, err))
            return NULL;
        return kalman_sarima_create(&sp, err);
    }
    if (!strncmp(spec, "ets", 3)) {
        kalman_ets_spec sp;
        if (kalman_ets_parse(spec + 3, season, &sp, err))
            return NULL;
        return kalman_ets_create(&sp, err);
    }
    static const char *names[] = {"local_level", "local_linear_trend", "smooth_trend"};
    kalman_structural_spec sp;
    for (int i = 0; i < 3; i++)
        if (!strcmp(spec, names[i])) {
            if (kalman_structural_named(names[i], season, &sp, err))
                return NULL;
            return kalman_structural_create(&sp, err);
        }
    int s = 0, end = -1;
    if (!strcmp(spec, "bsm") ||
        (sscanf(spec, "bsm(season=%d)%n", &s, &end) == 1 && end > 0 && spec[end] == 0)) {
        if (kalman_structural_named("bsm", s ? s : season, &sp, err))
            return NULL;
        return kalman_structural_create(&sp, err);
    }
    kalman_error_set(err, KALMAN_EINVAL, "unknown kalman model spec \"%s\"", spec);
    return NULL;
}
