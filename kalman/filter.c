/*
 * kalman/filter.c — the Kalman filter for univariate observations with exact diffuse
 * initialization (Durbin & Koopman 2012, sections 4.3, 5.2 and 6.4), the log-likelihood
 * built from it, and h-step forecasts.
 *
 * One step at time t, with predicted a_t, P_t (P_star,t while diffuse) and P_inf,t:
 *   missing y_t:     a_{t|t} = a_t, P_{t|t} = P_t
 *   diffuse, F_inf > 0:
 *                    M_inf = P_inf Z', F_inf = Z M_inf, M_* = P_* Z', F_* = Z M_* + H
 *                    a_{t|t}   = a_t + M_inf v / F_inf
 *                    P_*,t|t   = P_* + M_inf M_inf' F_* / F_inf^2 - (M_* M_inf' + M_inf M_*') / F_inf
 *                    P_inf,t|t = P_inf - M_inf M_inf' / F_inf
 *   otherwise:       a_{t|t} = a_t + M v / F, P_{t|t} = P - M M' / F
 *   prediction:      a_{t+1} = c + T a_{t|t}, P_{t+1} = T P_{t|t} T' + R Q R',
 *                    P_inf,t+1 = T P_inf,t|t T'
 * The diffuse phase ends when P_inf vanishes. Afterwards, once ||P_{t+1} - P_t|| <=
 * KALMAN_STEADY_TOL ||P_{t+1}|| (Frobenius norms), the gain
 * K = T M / F and F are frozen and the step costs O(nnz(T)).
 *
 * The loop never allocates: every scratch array comes from the workspace, and products
 * with T and Z use their sparse patterns (prepared once per call).
 */
#include "internal.h"

#include <math.h>
#include <string.h>

static const double LOG_2PI = 1.8378770664093454835606594728112;

/* M = P Z' using Z's nonzeros; returns Z M (without H). */
static double pz(const kalman_workspace *ws, int m, const double *P, double *M)
{
    for (int i = 0; i < m; i++) {
        double acc = 0.0;
        const double *p_i = P + (size_t)i * m;
        for (int k = 0; k < ws->nZ; k++)
            acc += p_i[ws->Zidx[k]] * ws->Zval[k];
        M[i] = acc;
    }
    double f = 0.0;
    for (int k = 0; k < ws->nZ; k++)
        f += ws->Zval[k] * M[ws->Zidx[k]];
    return f;
}

static double za(const kalman_workspace *ws, const double *a)
{
    double acc = 0.0;
    for (int k = 0; k < ws->nZ; k++)
        acc += ws->Zval[k] * a[ws->Zidx[k]];
    return acc;
}

static int check_dims(const kalman_ssm *s, const kalman_state *st, const kalman_workspace *ws,
                      kalman_error *err)
{
    if (!s || !ws || s->m < 1 || ws->m < s->m || ws->r < s->r)
        return kalman_error_set(err, KALMAN_EINVAL, "workspace too small for the system");
    if (st && st->m != s->m)
        return kalman_error_set(err, KALMAN_EINVAL,
                                "filter state has %d states but the system has %d", st->m, s->m);
    return 0;
}

/* The filter for one state (local level, AR(1), ...): the same recursions as the general
 * loop below with every matrix a number, so a step is a few dozen instructions instead of
 * the general loop's sparse bookkeeping. Used when m == 1 and the store keeps only what
 * frozen steps can give (v, F, F_inf, K, K_inf), i.e. for likelihoods, scores and forecasts
 * (the smoother, which keeps P_t, takes the general loop). */
static int filter_scalar(const kalman_ssm *s, const double *y, size_t n, kalman_state *st,
                         kalman_loglik_acc *acc, kalman_store *store, const kalman_workspace *ws,
                         kalman_error *err)
{
    const double t = s->T[0], z = s->Z[0], c = s->c ? s->c[0] : 0.0, q = ws->RQR[0];
    const double tt = t * t;
    const long t0 = st->t;
    double a = st->a[0], P = st->P[0], Pinf = st->Pinf[0];
    double steady_F = NAN, steady_logF = NAN;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const double yt = y[i];
        const int missing = isnan(yt);
        if (!missing && !isfinite(yt)) {
            rc = kalman_error_set(err, KALMAN_EINVAL, "observation %zu is infinite", i);
            break;
        }
        const size_t k = (size_t)(st->t - t0);
        if (store && k >= store->n) {
            rc = kalman_error_set(err, KALMAN_EINVAL, "filter store holds only %zu steps",
                                  store->n);
            break;
        }
        if (st->steady && !missing) {
            const double v = yt - s->d - z * a, F = st->F;
            if (F != steady_F) {
                steady_F = F;
                steady_logF = log(F);
            }
            acc->loglik += -0.5 * (LOG_2PI + steady_logF + v * v / F);
            acc->sum_logF += steady_logF;
            acc->sum_v2F += v * v / F;
            acc->nobs++;
            a = (c + t * a) + st->K[0] * v;
            if (store) {
                if (store->v) store->v[k] = v;
                if (store->F) store->F[k] = F;
                if (store->Finf) store->Finf[k] = 0.0;
                if (store->K) store->K[k] = st->K[0];
                if (store->Kinf) store->Kinf[k] = 0.0;
            }
            st->t++;
            continue;
        }
        st->steady = 0;
        const int was_diffuse = st->diffuse;
        const double M = P * z, F = z * M + s->H;
        double v = NAN, Finf = 0.0, Minf = 0.0, af = a, Pf = P, Pinff = Pinf;
        double Kst = 0.0, Kinf = 0.0;
        if (was_diffuse) {
            Minf = Pinf * z;
            Finf = z * Minf;
        }
        if (missing) {
            acc->nmissing++;
        } else {
            v = yt - s->d - z * a;
            acc->nobs++;
            if (was_diffuse && Finf > KALMAN_FINF_TOL) {
                const double fs = F / (Finf * Finf);
                af = a + Minf * v / Finf;
                Pf = P + Minf * Minf * fs - (M * Minf + Minf * M) / Finf;
                Pinff = Pinf - Minf * Minf / Finf;
                const double logFinf = log(Finf);
                acc->loglik += -0.5 * (LOG_2PI + logFinf);
                acc->sum_logFinf += logFinf;
                acc->ndiffuse_obs++;
                Kinf = t * (Minf / Finf);
                Kst = t * ((M - Minf * F / Finf) / Finf);
            } else {
                if (!(F > 0.0) || !isfinite(F)) {
                    rc = kalman_error_set(err, KALMAN_ENUMERIC,
                                          "forecast error variance is not positive at step %ld: F=%g",
                                          st->t + 1, F);
                    break;
                }
                const double invF = 1.0 / F;
                af = a + M * invF * v;
                Pf = P - (M * M) * invF;
                const double logF = log(F);
                acc->loglik += -0.5 * (LOG_2PI + logF + v * v / F);
                acc->sum_logF += logF;
                acc->sum_v2F += v * v / F;
                Kst = t * (M / F);
            }
        }
        if (store) {
            if (store->K) store->K[k] = Kst;
            if (store->Kinf) store->Kinf[k] = Kinf;
            if (store->v) store->v[k] = v;
            if (store->F) store->F[k] = F;
            if (store->Finf) store->Finf[k] = (was_diffuse && !missing) ? Finf : 0.0;
        }
        /* prediction */
        a = c + t * af;
        const double Pnew = tt * Pf + q, dP = Pnew - P;
        P = Pnew;
        if (was_diffuse) {
            acc->ndiffuse++;
            Pinf = tt * Pinff;
            if (fabs(Pinf) <= KALMAN_PINF_TOL) {
                Pinf = 0.0;
                st->diffuse = 0;
            }
        } else if (!missing && dP * dP <= KALMAN_STEADY_TOL * KALMAN_STEADY_TOL * (Pnew * Pnew)) {
            st->K[0] = t * (M / F);
            st->F = F;
            st->steady = 1;
        }
        st->t++;
    }
    st->a[0] = a;
    st->P[0] = P;
    st->Pinf[0] = Pinf;
    if (store)
        store->ndiffuse = acc->ndiffuse;
    return rc;
}

int kalman_filter(const kalman_ssm *s, const double *y, size_t n, kalman_state *st,
                  kalman_loglik_acc *acc, kalman_store *store, kalman_workspace *ws,
                  kalman_error *err)
{
    int rc = check_dims(s, st, ws, err);
    if (rc)
        return rc;
    if (n > 0 && !y)
        return kalman_error_set(err, KALMAN_EINVAL, "no observations given");
    if (store && store->m != s->m)
        return kalman_error_set(err, KALMAN_EINVAL, "store has the wrong state dimension");
    const int m = s->m;
    const size_t mm = (size_t)m * m;
    kalman__prepare(ws, s);

    /* named scratch slices */
    double *W = ws->mat[0];      /* (m,m) T P_{t|t} */
    double *Pnew = ws->mat[1];   /* (m,m) P_{t+1} */
    double *Pf = ws->mat[2];     /* (m,m) P_{t|t} */
    double *Pinff = ws->mat[3];  /* (m,m) P_inf,t|t */
    double *M = ws->vec[0];      /* (m) P Z' */
    double *Minf = ws->vec[1];   /* (m) P_inf Z' */
    double *af = ws->vec[2];     /* (m) a_{t|t} */
    double *tmp = ws->vec[3];    /* (m) */

    /* frozen steps store only v, F, F_inf, K, K_inf: allow them when nothing else is kept */
    const int allow_steady = !store || (!store->P_pred && !store->Pinf_pred && !store->a_pred &&
                                        !store->a_filt && !store->P_filt && !store->M &&
                                        !store->Minf);
    const long t0 = st->t;
    double steady_F = NAN, steady_logF = NAN; /* log of the frozen F, computed once */
    kalman_loglik_acc local = {0};
    if (!acc)
        acc = &local;
    if (m == 1 && allow_steady)
        return filter_scalar(s, y, n, st, acc, store, ws, err);

    for (size_t i = 0; i < n; i++) {
        double *a = st->a, *P = st->P, *Pinf = st->Pinf;
        const double yt = y[i];
        const int missing = isnan(yt);
        if (!missing && !isfinite(yt))
            return kalman_error_set(err, KALMAN_EINVAL, "observation %zu is infinite", i);
        const size_t k = (size_t)(st->t - t0);
        if (store && k >= store->n)
            return kalman_error_set(err, KALMAN_EINVAL, "filter store holds only %zu steps",
                                    store->n);
        if (store) {
            if (store->a_pred) memcpy(store->a_pred + k * m, a, (size_t)m * sizeof(double));
            if (store->P_pred) memcpy(store->P_pred + k * mm, P, mm * sizeof(double));
            if (store->Pinf_pred) memcpy(store->Pinf_pred + k * mm, Pinf, mm * sizeof(double));
        }

        /* steady state: a_{t+1} = c + T a_t + K v_t with frozen K, F */
        if (st->steady && !missing) {
            double v = yt - s->d - za(ws, a);
            double F = st->F;
            if (F != steady_F) { /* log F once per frozen F, not twice per step */
                steady_F = F;
                steady_logF = log(F);
            }
            acc->loglik += -0.5 * (LOG_2PI + steady_logF + v * v / F);
            acc->sum_logF += steady_logF;
            acc->sum_v2F += v * v / F;
            acc->nobs++;
            kalman__tx(ws, m, a, s->c, tmp);
            for (int j = 0; j < m; j++)
                a[j] = tmp[j] + st->K[j] * v;
            if (store) {
                if (store->v) store->v[k] = v;
                if (store->F) store->F[k] = F;
                if (store->Finf) store->Finf[k] = 0.0;
                if (store->K) memcpy(store->K + k * m, st->K, (size_t)m * sizeof(double));
                if (store->Kinf) memset(store->Kinf + k * m, 0, (size_t)m * sizeof(double));
            }
            st->t++;
            continue;
        }
        st->steady = 0;

        double v = NAN, F = NAN, Finf = 0.0;
        int was_diffuse = st->diffuse;
        double fz = pz(ws, m, P, M);
        F = fz + s->H;
        if (missing) {
            memcpy(af, a, (size_t)m * sizeof(double));
            memcpy(Pf, P, mm * sizeof(double));
            if (was_diffuse) {
                memcpy(Pinff, Pinf, mm * sizeof(double));
                Finf = pz(ws, m, Pinf, Minf);
            }
            acc->nmissing++;
            if (store) {
                if (store->K) memset(store->K + k * m, 0, (size_t)m * sizeof(double));
                if (store->Kinf) memset(store->Kinf + k * m, 0, (size_t)m * sizeof(double));
            }
        } else {
            v = yt - s->d - za(ws, a);
            acc->nobs++;
            if (was_diffuse)
                Finf = pz(ws, m, Pinf, Minf);
            if (was_diffuse && Finf > KALMAN_FINF_TOL) {
                double fs = F / (Finf * Finf);
                for (int r = 0; r < m; r++) {
                    af[r] = a[r] + Minf[r] * v / Finf;
                    for (int c = r; c < m; c++) {
                        double ps = P[r * m + c] + Minf[r] * Minf[c] * fs -
                                    (M[r] * Minf[c] + Minf[r] * M[c]) / Finf;
                        double pi = Pinf[r * m + c] - Minf[r] * Minf[c] / Finf;
                        Pf[r * m + c] = Pf[c * m + r] = ps;
                        Pinff[r * m + c] = Pinff[c * m + r] = pi;
                    }
                }
                const double logFinf = log(Finf);
                acc->loglik += -0.5 * (LOG_2PI + logFinf);
                acc->sum_logFinf += logFinf;
                acc->ndiffuse_obs++;
                if (store) {
                    /* K^(0) = T M_inf / F_inf, K^(1) = T (M_* - M_inf F_* / F_inf) / F_inf */
                    if (store->Kinf) {
                        for (int r = 0; r < m; r++)
                            tmp[r] = Minf[r] / Finf;
                        kalman__tx(ws, m, tmp, NULL, store->Kinf + k * m);
                    }
                    if (store->K) {
                        for (int r = 0; r < m; r++)
                            tmp[r] = (M[r] - Minf[r] * F / Finf) / Finf;
                        kalman__tx(ws, m, tmp, NULL, store->K + k * m);
                    }
                }
            } else {
                if (!(F > 0.0) || !isfinite(F))
                    return kalman_error_set(err, KALMAN_ENUMERIC,
                                            "forecast error variance is not positive at step %ld: F=%g",
                                            st->t + 1, F);
                /* full rows (contiguous, vectorizable); (M_r M_c) / F is the same number in
                 * both triangles, so P_{t|t} is exactly symmetric as P_t is */
                const double invF = 1.0 / F;
                for (int r = 0; r < m; r++) {
                    const double mr = M[r];
                    af[r] = a[r] + mr * invF * v;
                    const double *restrict p_r = P + (size_t)r * m;
                    double *restrict pf_r = Pf + (size_t)r * m;
                    for (int c = 0; c < m; c++)
                        pf_r[c] = p_r[c] - (mr * M[c]) * invF;
                }
                if (was_diffuse)
                    memcpy(Pinff, Pinf, mm * sizeof(double));
                const double logF = log(F);
                acc->loglik += -0.5 * (LOG_2PI + logF + v * v / F);
                acc->sum_logF += logF;
                acc->sum_v2F += v * v / F;
                if (store) {
                    if (store->K) {
                        for (int r = 0; r < m; r++)
                            tmp[r] = M[r] / F;
                        kalman__tx(ws, m, tmp, NULL, store->K + k * m);
                    }
                    if (store->Kinf) memset(store->Kinf + k * m, 0, (size_t)m * sizeof(double));
                }
            }
        }
        if (store) {
            if (store->v) store->v[k] = v;
            if (store->F) store->F[k] = F;
            /* a missing step updates nothing: F_inf is reported as 0 (as KFAS does) */
            if (store->Finf) store->Finf[k] = (was_diffuse && !missing) ? Finf : 0.0;
            if (store->M) memcpy(store->M + k * m, M, (size_t)m * sizeof(double));
            if (store->Minf) {
                if (was_diffuse)
                    memcpy(store->Minf + k * m, Minf, (size_t)m * sizeof(double));
                else
                    memset(store->Minf + k * m, 0, (size_t)m * sizeof(double));
            }
            if (store->a_filt) memcpy(store->a_filt + k * m, af, (size_t)m * sizeof(double));
            if (store->P_filt) { /* stored exactly symmetric: the upper triangle, mirrored */
                double *pf = store->P_filt + k * mm;
                for (int r = 0; r < m; r++)
                    for (int c = 0; c < m; c++)
                        pf[r * m + c] = c >= r ? Pf[r * m + c] : Pf[c * m + r];
            }
        }

        /* prediction */
        kalman__tx(ws, m, af, s->c, a);
        kalman__tat(ws, m, Pf, W, Pnew);
        /* P_{t+1} = T P_{t|t} T' + RQR', with squared Frobenius norms of the change and of
         * P for the steady-state test (branch-free, so the loop vectorizes) */
        /* the steady-state test (below) every fourth step only: its two norms are
         * chains of dependent additions, the slowest loop of the filter on a 25-state
         * model when run every step, and freezing up to three steps later changes
         * nothing but the (exact) work done on those steps */
        const int check = allow_steady && !missing && !was_diffuse && (st->t & 3) == 0;
        double diff = 0.0, big = 1.0;
        {
            /* T P T' is exactly symmetric and so is RQR', hence so is the sum */
            const double *restrict pn = Pnew, *restrict q = ws->RQR;
            double *restrict pp = P;
            if (check) {
                /* four partial sums each, which vectorize (one running sum would not:
                 * C keeps the order of the additions) */
                double d4[4] = {0.0, 0.0, 0.0, 0.0}, b4[4] = {0.0, 0.0, 0.0, 0.0};
                size_t j = 0;
                for (; j + 4 <= mm; j += 4)
                    for (int l = 0; l < 4; l++) {
                        double x = pn[j + l] + q[j + l];
                        double dj = x - pp[j + l];
                        d4[l] += dj * dj;
                        b4[l] += x * x;
                        pp[j + l] = x;
                    }
                for (; j < mm; j++) {
                    double x = pn[j] + q[j];
                    double dj = x - pp[j];
                    d4[0] += dj * dj;
                    b4[0] += x * x;
                    pp[j] = x;
                }
                diff = (d4[0] + d4[1]) + (d4[2] + d4[3]);
                big = (b4[0] + b4[1]) + (b4[2] + b4[3]);
            } else {
                for (size_t j = 0; j < mm; j++)
                    pp[j] = pn[j] + q[j];
            }
        }
        if (was_diffuse) {
            acc->ndiffuse++;
            kalman__tat(ws, m, Pinff, W, Pinf);
            double pmax = 0.0;
            for (size_t j = 0; j < mm; j++) {
                double pj = fabs(Pinf[j]);
                pmax = pj > pmax ? pj : pmax;
            }
            if (pmax <= KALMAN_PINF_TOL) {
                memset(Pinf, 0, mm * sizeof(double));
                st->diffuse = 0;
            }
        } else if (check && diff <= KALMAN_STEADY_TOL * KALMAN_STEADY_TOL * big) {
            /* P has converged: freeze K = T M / F for the following steps */
            for (int r = 0; r < m; r++)
                tmp[r] = M[r] / F;
            kalman__tx(ws, m, tmp, NULL, st->K);
            st->F = F;
            st->steady = 1;
        }
        st->t++;
    }
    if (store) {
        size_t k = (size_t)(st->t - t0);
        if (k <= store->n) {
            if (store->a_pred) memcpy(store->a_pred + k * m, st->a, (size_t)m * sizeof(double));
            if (store->P_pred) memcpy(store->P_pred + k * mm, st->P, mm * sizeof(double));
            if (store->Pinf_pred) memcpy(store->Pinf_pred + k * mm, st->Pinf, mm * sizeof(double));
        }
        store->ndiffuse = acc->ndiffuse;
    }
    return 0;
}

int kalman_loglik(const kalman_ssm *s, const double *y, size_t n, int concentrated,
                  kalman_workspace *ws, double *loglik, double *sigma2,
                  kalman_loglik_acc *acc_out, kalman_error *err)
{
    int rc = check_dims(s, NULL, ws, err);
    if (rc)
        return rc;
    if (ws->st.m != ws->m)
        return kalman_error_set(err, KALMAN_EINVAL, "workspace filter state is not allocated");
    /* the workspace's state has capacity ws->m; run it at the system's size */
    kalman_state st = ws->st;
    st.m = s->m;
    kalman_state_start(&st, s);
    kalman_loglik_acc acc = {0};
    rc = kalman_filter(s, y, n, &st, &acc, NULL, ws, err);
    if (rc)
        return rc;
    double ll = acc.loglik;
    double s2 = 1.0;
    if (concentrated) {
        long ne = acc.nobs - acc.ndiffuse_obs;
        if (ne <= 0)
            return kalman_error_set(err, KALMAN_ETOOSHORT,
                                    "too few observations to estimate the scale: %ld after the diffuse phase",
                                    ne);
        s2 = acc.sum_v2F / (double)ne;
        if (!(s2 > 0.0))
            return kalman_error_set(err, KALMAN_ENUMERIC, "concentrated scale is not positive");
        ll = -0.5 * ((double)acc.nobs * LOG_2PI + acc.sum_logFinf + acc.sum_logF +
                     (double)ne * log(s2) + (double)ne);
    }
    if (!isfinite(ll))
        return kalman_error_set(err, KALMAN_ENUMERIC, "log-likelihood is not finite");
    if (loglik)
        *loglik = ll;
    if (sigma2)
        *sigma2 = s2;
    if (acc_out)
        *acc_out = acc;
    return 0;
}

int kalman_forecast(const kalman_ssm *s, const kalman_state *st, int h, double *mean,
                    double *var, kalman_workspace *ws, kalman_error *err)
{
    int rc = check_dims(s, st, ws, err);
    if (rc)
        return rc;
    if (h < 0)
        return kalman_error_set(err, KALMAN_EINVAL, "negative forecast horizon %d", h);
    if (st->diffuse)
        return kalman_error_set(err, KALMAN_EUNSUPPORTED,
                                "forecast variance is infinite: the state is still diffuse after %ld observations",
                                st->t);
    const int m = s->m;
    const size_t mm = (size_t)m * m;
    kalman__prepare(ws, s);
    double *W = ws->mat[0], *P = ws->mat[1], *Pn = ws->mat[2];
    double *a = ws->vec[0], *an = ws->vec[1], *M = ws->vec[2];
    memcpy(a, st->a, (size_t)m * sizeof(double));
    memcpy(P, st->P, mm * sizeof(double));
    for (int i = 0; i < h; i++) {
        if (mean)
            mean[i] = s->d + za(ws, a);
        if (var)
            var[i] = pz(ws, m, P, M) + s->H;
        if (i + 1 == h)
            break;
        kalman__tx(ws, m, a, s->c, an);
        memcpy(a, an, (size_t)m * sizeof(double));
        kalman__tat(ws, m, P, W, Pn);
        for (size_t j = 0; j < mm; j++)
            P[j] = Pn[j] + ws->RQR[j];
    }
    return 0;
}
