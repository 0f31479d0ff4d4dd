/*
 * kalman/smoother.c — fixed-interval state and disturbance smoothing (Durbin & Koopman
 * 2012, sections 4.4-4.5 and, for the exact diffuse phase, 5.3-5.4), run backwards over
 * a kalman_store written by kalman_filter.
 *
 * After the diffuse phase (t > d), with L_t = T - K_t Z and K_t = T M_t / F_t:
 *   r_{t-1} = Z' v_t / F_t + L_t' r_t,       N_{t-1} = Z' Z / F_t + L_t' N_t L_t
 *   ahat_t = a_t + P_t r_{t-1},              V_t = P_t - P_t N_{t-1} P_t
 *   epshat_t = H (v_t / F_t - K_t' r_t),     Var = H - H^2 (1/F_t + K_t' N_t K_t)
 *   etahat_t = Q R' r_t,                     Var = Q - Q R' N_t R Q
 * In the diffuse phase (t <= d, F_inf > 0) the recursions run on (r0, r1, N0, N1, N2)
 * with L0 = T - K0 Z, L1 = -K1 Z (K0 = T M_inf / F_inf, K1 = T (M_* - M_inf F_* / F_inf) /
 * F_inf), and ahat_t = a_t + P_* r0 + P_inf r1, V_t = P_* - P_* N0 P_* - (P_inf N1 P_*)'
 * - P_inf N1 P_* - P_inf N2 P_inf, where
 *   N1_{t-1} = Z'Z / F_inf + L0' N1 L0 + L1' N0 L0                 (F_inf > 0)
 *   N2_{t-1} = -Z'Z F_* / F_inf^2 + L0' N2 L0 + L0' N1 L1 + L1' N1' L0 + L1' N0 L1
 *   N1_{t-1} = T' N1 L0,  N2_{t-1} = T' N2 T                       (F_inf = 0)
 * (the form statsmodels implements; N1 is not symmetric in general). Missing
 * observations propagate through T only.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* How lxl_acc reads its middle matrix: N0 (and N2) are symmetric, N1 in general is not. */
enum { X_SYM = 0, X_PLAIN = 1, X_TRANS = 2 };

/* out += (aA T - Ka Z)' Xe (aB T - Kb Z), all (m,m), where Xe is X (X_SYM, X_PLAIN) or X'
 * (X_TRANS); Ka/Kb may be NULL (zero), aA/aB are 0 or 1. Y and S are (m,m) scratch; out
 * must not alias X, Y or S. Row operations only (they vectorize):
 * Xe T = (T' Xe')', with Xe' = X for X_SYM / X_TRANS and a transposed copy otherwise. */
static void lxl_acc(const kalman_workspace *ws, int m, int aA, const double *Ka,
                    const double *X, int xmode, int aB, const double *Kb, double *Y, double *S,
                    double *out)
{
    const size_t mm = (size_t)m * m;
    /* Y = Xe B = aB (Xe T) - (Xe Kb) Z */
    memset(Y, 0, mm * sizeof(double));
    if (aB) {
        const double *Xt = X; /* rows of Xe' */
        if (xmode == X_PLAIN) {
            for (int i = 0; i < m; i++)
                for (int j = 0; j < m; j++)
                    S[(size_t)j * m + i] = X[(size_t)i * m + j];
            Xt = S;
        }
        for (int k = 0; k < m; k++) {
            const double *restrict x_k = Xt + (size_t)k * m;
            for (int e = ws->Trow[k]; e < ws->Trow[k + 1]; e++) {
                double *restrict y_j = Y + (size_t)ws->Tidx[e] * m;
                double t = ws->Tval[e];
                for (int c = 0; c < m; c++)
                    y_j[c] += t * x_k[c];
            }
        }
        for (int i = 0; i < m; i++) /* Y' -> Y */
            for (int j = i + 1; j < m; j++) {
                double tmp = Y[(size_t)i * m + j];
                Y[(size_t)i * m + j] = Y[(size_t)j * m + i];
                Y[(size_t)j * m + i] = tmp;
            }
    }
    if (Kb) {
        for (int i = 0; i < m; i++) {
            double u = 0.0; /* (Xe Kb)_i */
            if (xmode == X_TRANS)
                for (int k = 0; k < m; k++)
                    u += X[(size_t)k * m + i] * Kb[k];
            else
                for (int k = 0; k < m; k++)
                    u += X[(size_t)i * m + k] * Kb[k];
            if (u != 0.0)
                for (int z = 0; z < ws->nZ; z++)
                    Y[(size_t)i * m + ws->Zidx[z]] -= u * ws->Zval[z];
        }
    }
    /* out += aA T' Y - Z' (Ka' Y) */
    if (aA) {
        for (int k = 0; k < m; k++) {
            const double *restrict y_k = Y + (size_t)k * m;
            for (int e = ws->Trow[k]; e < ws->Trow[k + 1]; e++) {
                double *restrict o_j = out + (size_t)ws->Tidx[e] * m;
                double t = ws->Tval[e];
                for (int c = 0; c < m; c++)
                    o_j[c] += t * y_k[c];
            }
        }
    }
    if (Ka) {
        double *w = ws->vec[7];
        memset(w, 0, (size_t)m * sizeof(double));
        for (int k = 0; k < m; k++) {
            double a = Ka[k];
            if (a == 0.0)
                continue;
            const double *y_k = Y + (size_t)k * m;
            for (int c = 0; c < m; c++)
                w[c] += a * y_k[c];
        }
        for (int z = 0; z < ws->nZ; z++) {
            double *o_z = out + (size_t)ws->Zidx[z] * m;
            for (int c = 0; c < m; c++)
                o_z[c] -= ws->Zval[z] * w[c];
        }
    }
}

/* out = (T - K Z)' r = T' r - Z' (K' r); K may be NULL. */
static void ltr(const kalman_workspace *ws, int m, const double *K, const double *r,
                double *out)
{
    kalman__ttx(ws, m, r, out);
    if (K) {
        double kr = 0.0;
        for (int i = 0; i < m; i++)
            kr += K[i] * r[i];
        for (int z = 0; z < ws->nZ; z++)
            out[ws->Zidx[z]] -= ws->Zval[z] * kr;
    }
}

/* The backward step of (r, N) where t adds no observation term: rn = L' r and
 * Nn = L' N L (N symmetric; Nn zeroed first) with L = T - KL Z, KL = NULL (L = T) for a
 * missing observation and K0 in the diffuse phase with F_inf > 0. Y and S as in lxl_acc. */
static void back_step_plain(const kalman_workspace *ws, int m, const double *KL, const double *r,
                            const double *N, double *rn, double *Nn, double *Y, double *S)
{
    memset(Nn, 0, (size_t)m * m * sizeof(double));
    ltr(ws, m, KL, r, rn);
    lxl_acc(ws, m, 1, KL, N, X_SYM, 1, KL, Y, S, Nn);
}

/* rn = L' r + Z' v / F with L = T - K Z: the r step at an observed t after the diffuse
 * phase. */
static void back_step_r(const kalman_workspace *ws, int m, const double *K, double v, double F,
                        const double *r, double *rn)
{
    ltr(ws, m, K, r, rn);
    for (int z = 0; z < ws->nZ; z++)
        rn[ws->Zidx[z]] += ws->Zval[z] * v / F;
}

/* out -= X B (+ (X B)' when both), dense (m,m). */
static void sub_xb(int m, const double *X, const double *B, double *out, int both)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            double acc = 0.0;
            for (int k = 0; k < m; k++)
                acc += X[i * m + k] * B[k * m + j];
            out[i * m + j] -= acc;
            if (both)
                out[j * m + i] -= acc;
        }
}

/* y = A x, dense (m,m) */
static void matvec(int m, const double *A, const double *x, double *y)
{
    /* A is symmetric (N, P, P_inf all are, exactly): y_i = sum_k A_ki x_k, accumulated in
     * the same k order as the row form, so the same bits, but as row updates that
     * vectorize over i instead of one dependent chain of additions per i */
    for (int i = 0; i < m; i++)
        y[i] = 0.0;
    for (int k = 0; k < m; k++) {
        const double xk = x[k];
        const double *restrict a_k = A + (size_t)k * m;
        for (int i = 0; i < m; i++)
            y[i] += a_k[i] * xk;
    }
}

/* Disturbances from (r, N) at step t: u = uv - K' r, D = dv + K' N K. */
static void disturbances(const kalman_ssm *s, const kalman_workspace *ws, int missing,
                         double uv, double dv, const double *K, const double *r,
                         const double *N, size_t k, kalman_smooth_out *out, double *tmp)
{
    int m = s->m, rr = s->r;
    (void)ws;
    if (out->eps_hat || out->eps_var) {
        double ehat = 0.0, evar = s->H;
        if (!missing) {
            double kr = 0.0, knk = 0.0;
            if (K) {
                for (int i = 0; i < m; i++)
                    kr += K[i] * r[i];
                matvec(m, N, K, tmp);
                for (int i = 0; i < m; i++)
                    knk += K[i] * tmp[i];
            }
            ehat = s->H * (uv - kr);
            evar = s->H - s->H * s->H * (dv + knk);
        }
        if (out->eps_hat) out->eps_hat[k] = ehat;
        if (out->eps_var) out->eps_var[k] = evar;
    }
    if (rr > 0 && (out->eta_hat || out->eta_var)) {
        /* QR' (r,m) */
        for (int a = 0; a < rr; a++) {
            if (out->eta_hat) {
                double acc = 0.0;
                for (int i = 0; i < m; i++) {
                    double qr = 0.0;
                    for (int b = 0; b < rr; b++)
                        qr += s->Q[a * rr + b] * s->R[i * rr + b];
                    acc += qr * r[i];
                }
                out->eta_hat[k * rr + a] = acc;
            }
        }
        if (out->eta_var) {
            /* Q - (QR') N (R Q) */
            for (int a = 0; a < rr; a++)
                for (int b = 0; b < rr; b++) {
                    double acc = 0.0;
                    for (int i = 0; i < m; i++) {
                        double qr_ai = 0.0;
                        for (int c = 0; c < rr; c++)
                            qr_ai += s->Q[a * rr + c] * s->R[i * rr + c];
                        if (qr_ai == 0.0)
                            continue;
                        for (int j = 0; j < m; j++) {
                            double rq_jb = 0.0;
                            for (int c = 0; c < rr; c++)
                                rq_jb += s->R[j * rr + c] * s->Q[c * rr + b];
                            acc += qr_ai * N[i * m + j] * rq_jb;
                        }
                    }
                    out->eta_var[(k * rr + a) * rr + b] = s->Q[a * rr + b] - acc;
                }
        }
    }
}

int kalman_smooth(const kalman_ssm *s, const double *y, const kalman_store *store,
                  kalman_smooth_out *out, kalman_workspace *ws, kalman_error *err)
{
    if (!s || !store || !out || !ws || !y)
        return kalman_error_set(err, KALMAN_EINVAL, "smoother needs a system, data and a store");
    if (ws->m < s->m || ws->r < s->r || store->m != s->m)
        return kalman_error_set(err, KALMAN_EINVAL, "smoother dimensions do not match");
    if (!store->a_pred || !store->P_pred || !store->Pinf_pred || !store->v || !store->F ||
        !store->Finf || !store->K || !store->Kinf)
        return kalman_error_set(err, KALMAN_EINVAL, "filter store lacks arrays the smoother needs");
    const int m = s->m;
    const size_t mm = (size_t)m * m;
    const size_t n = store->n;
    const size_t d = (size_t)store->ndiffuse;
    kalman__prepare(ws, s);

    double *N0 = ws->mat[0], *N1 = ws->mat[1], *N2 = ws->mat[2], *Y = ws->mat[3];
    double *N0n = ws->mat[4], *N1n = ws->mat[5], *N2n = ws->mat[6], *X = ws->mat[7];
    double *S = X; /* lxl_acc scratch; X is only used for V, after the N updates */
    double *r0 = ws->vec[0], *r1 = ws->vec[1], *r0n = ws->vec[2], *r1n = ws->vec[3];
    double *tmp = ws->vec[4];
    memset(N0, 0, mm * sizeof(double));
    memset(N1, 0, mm * sizeof(double));
    memset(N2, 0, mm * sizeof(double));
    memset(r0, 0, (size_t)m * sizeof(double));
    memset(r1, 0, (size_t)m * sizeof(double));

    for (size_t kk = n; kk-- > 0;) {
        const int missing = isnan(y[kk]);
        const int diffuse = kk < d;
        const double v = store->v[kk], F = store->F[kk], Finf = store->Finf[kk];
        const double *K = store->K + kk * m, *Kinf = store->Kinf + kk * m;
        const double *a = store->a_pred + kk * m;
        const double *P = store->P_pred + kk * mm, *Pinf = store->Pinf_pred + kk * mm;
        const int use_inf = diffuse && !missing && Finf > KALMAN_FINF_TOL;

        /* disturbances from (r0, N0) at t */
        if (use_inf)
            disturbances(s, ws, 0, 0.0, 0.0, Kinf, r0, N0, kk, out, tmp);
        else
            disturbances(s, ws, missing, missing ? 0.0 : v / F, missing ? 0.0 : 1.0 / F,
                         missing ? NULL : K, r0, N0, kk, out, tmp);

        /* backward step to t-1 */
        if (missing || use_inf) {
            /* r0 = L0' r0 (T' r0 when missing); with F_inf > 0 r1 = Z' v/Finf + L0' r1 +
             * L1' r0 (L1' r0 = -Z' (K1' r0)), below */
            back_step_plain(ws, m, missing ? NULL : Kinf, r0, N0, r0n, N0n, Y, S);
        } else {
            memset(N0n, 0, mm * sizeof(double));
            back_step_r(ws, m, K, v, F, r0, r0n);
            lxl_acc(ws, m, 1, K, N0, X_SYM, 1, K, Y, S, N0n);
            for (int z1 = 0; z1 < ws->nZ; z1++)
                for (int z2 = 0; z2 < ws->nZ; z2++)
                    N0n[ws->Zidx[z1] * m + ws->Zidx[z2]] += ws->Zval[z1] * ws->Zval[z2] / F;
        }
        if (diffuse) {
            memset(N1n, 0, mm * sizeof(double));
            memset(N2n, 0, mm * sizeof(double));
            if (missing) {
                ltr(ws, m, NULL, r1, r1n);
                lxl_acc(ws, m, 1, NULL, N1, X_PLAIN, 1, NULL, Y, S, N1n);
                lxl_acc(ws, m, 1, NULL, N2, X_SYM, 1, NULL, Y, S, N2n);
            } else if (use_inf) {
                double f2 = -F / (Finf * Finf);
                ltr(ws, m, Kinf, r1, r1n);
                double k1r0 = 0.0;
                for (int i = 0; i < m; i++)
                    k1r0 += K[i] * r0[i];
                for (int z = 0; z < ws->nZ; z++)
                    r1n[ws->Zidx[z]] += ws->Zval[z] * (v / Finf - k1r0);
                /* N1 = Z'Z/Finf + L0'N1L0 + L1'N0L0 (D&K 5.3 as statsmodels implements it;
                 * N1 is not symmetric in general) */
                lxl_acc(ws, m, 1, Kinf, N1, X_PLAIN, 1, Kinf, Y, S, N1n);
                lxl_acc(ws, m, 0, K, N0, X_SYM, 1, Kinf, Y, S, N1n);
                /* N2 = Z'Z F2 + L0'N2L0 + L0'N1L1 + L1'N1'L0 + L1'N0L1 (symmetric) */
                lxl_acc(ws, m, 1, Kinf, N2, X_SYM, 1, Kinf, Y, S, N2n);
                lxl_acc(ws, m, 1, Kinf, N1, X_PLAIN, 0, K, Y, S, N2n);
                lxl_acc(ws, m, 0, K, N1, X_TRANS, 1, Kinf, Y, S, N2n);
                lxl_acc(ws, m, 0, K, N0, X_SYM, 0, K, Y, S, N2n);
                for (int z1 = 0; z1 < ws->nZ; z1++)
                    for (int z2 = 0; z2 < ws->nZ; z2++) {
                        double zz = ws->Zval[z1] * ws->Zval[z2];
                        N1n[ws->Zidx[z1] * m + ws->Zidx[z2]] += zz / Finf;
                        N2n[ws->Zidx[z1] * m + ws->Zidx[z2]] += zz * f2;
                    }
            } else {
                /* F_inf = 0: r1 = T' r1, N1 = T' N1 L0 (not symmetric), N2 = T' N2 T */
                ltr(ws, m, NULL, r1, r1n);
                lxl_acc(ws, m, 1, NULL, N1, X_PLAIN, 1, K, Y, S, N1n);
                lxl_acc(ws, m, 1, NULL, N2, X_SYM, 1, NULL, Y, S, N2n);
            }
            memcpy(r1, r1n, (size_t)m * sizeof(double));
            memcpy(N1, N1n, mm * sizeof(double));
            memcpy(N2, N2n, mm * sizeof(double));
        }
        memcpy(r0, r0n, (size_t)m * sizeof(double));
        memcpy(N0, N0n, mm * sizeof(double));

        /* smoothed state at t from (r_{t-1}, N_{t-1}) */
        if (out->ahat) {
            double *ah = out->ahat + kk * m;
            matvec(m, P, r0, tmp);
            for (int i = 0; i < m; i++)
                ah[i] = a[i] + tmp[i];
            if (diffuse) {
                matvec(m, Pinf, r1, tmp);
                for (int i = 0; i < m; i++)
                    ah[i] += tmp[i];
            }
        }
        if (out->V) {
            double *V = out->V + kk * mm;
            memcpy(V, P, mm * sizeof(double));
            kalman__matmul(m, P, N0, X);
            sub_xb(m, X, P, V, 0);
            if (diffuse) {
                kalman__matmul(m, Pinf, N1, X);
                sub_xb(m, X, P, V, 1);
                kalman__matmul(m, Pinf, N2, X);
                sub_xb(m, X, Pinf, V, 0);
            }
            for (int i = 0; i < m; i++)
                for (int j = i + 1; j < m; j++) {
                    double sym = 0.5 * (V[i * m + j] + V[j * m + i]);
                    V[i * m + j] = V[j * m + i] = sym;
                }
        }
        /* leaving the diffuse phase backwards: r1, N1, N2 start at zero (already are) */
    }
    return 0;
}

/* kalman__score for one state: the same backward recursion with every matrix a number
 * (L = t - K z, N_{t-1} = L N L + z^2 / F); see the general loop below. */
static int score_scalar(const kalman_ssm *s, const double *y, const kalman_store *store,
                        double scale, int np, const kalman__dsys *ds, double *g)
{
    const double t = s->T[0], z = s->Z[0], inv_s = 1.0 / scale;
    const size_t d = (size_t)store->ndiffuse;
    /* every derivative entry is at (0, 0): sum its values once */
    double dq[KALMAN_MAX_PARAMS], dp1[KALMAN_MAX_PARAMS];
    for (int i = 0; i < np; i++) {
        dq[i] = 0.0;
        for (int e = 0; e < ds[i].nq; e++)
            dq[i] += ds[i].qval[e];
        dp1[i] = 0.0;
        for (int e = 0; e < ds[i].np1; e++)
            dp1[i] += ds[i].pval[e];
    }
    double r = 0.0, N = 0.0, sum_h = 0.0, sum_q = 0.0; /* sum_q: sum_t (r_t^2 / s - N_t) */
    for (size_t kk = store->n; kk-- > 0;) {
        const int missing = isnan(y[kk]);
        const double v = store->v[kk], F = store->F[kk], Finf = store->Finf[kk];
        const int use_inf = kk < d && !missing && Finf > KALMAN_FINF_TOL;
        const double Kx = use_inf ? store->Kinf[kk] : store->K[kk];
        if (!missing) {
            const double kr = Kx * r, knk = Kx * (N * Kx);
            const double u = use_inf ? -kr : v / F - kr;
            const double D = use_inf ? knk : 1.0 / F + knk;
            sum_h += u * u * inv_s - D;
        }
        sum_q += r * r * inv_s - N;
        if (missing) {
            r = t * r;
            N = t * N * t;
        } else {
            const double L = t - Kx * z;
            const double rn = L * r + (use_inf ? 0.0 : z * v / F);
            N = L * N * L + (use_inf ? 0.0 : z * z / F);
            r = rn;
        }
    }
    for (int i = 0; i < np; i++)
        g[i] = 0.5 * (sum_q * dq[i] + (r * r * inv_s - N) * dp1[i] + sum_h * ds[i].dH);
    return 0;
}

int kalman__score(const kalman_ssm *s, const double *y, const kalman_store *store, double scale,
                  int np, const kalman__dsys *ds, double *g, kalman_workspace *ws)
{
    const int m = s->m;
    const size_t mm = (size_t)m * m;
    const size_t n = store->n;
    const size_t d = (size_t)store->ndiffuse;
    if (m == 1)
        return score_scalar(s, y, store, scale, np, ds, g);
    kalman__prepare(ws, s);
    double *N0 = ws->mat[0], *Y = ws->mat[3], *N0n = ws->mat[4], *S = ws->mat[7];
    double *r0 = ws->vec[0], *r0n = ws->vec[2], *tmp = ws->vec[4];
    memset(N0, 0, mm * sizeof(double));
    memset(r0, 0, (size_t)m * sizeof(double));
    double sum_h = 0.0; /* sum_t (u_t^2 / s - D_t) */
    for (int i = 0; i < np; i++)
        g[i] = 0.0;
    const double inv_s = 1.0 / scale;

    for (size_t kk = n; kk-- > 0;) {
        const int missing = isnan(y[kk]);
        const double v = store->v[kk], F = store->F[kk], Finf = store->Finf[kk];
        const double *K = store->K + kk * m, *Kinf = store->Kinf + kk * m;
        const int use_inf = kk < d && !missing && Finf > KALMAN_FINF_TOL;

        /* disturbance terms at t from (r_t, N_t) */
        if (!missing) {
            const double *Kx = use_inf ? Kinf : K;
            double kr = 0.0, knk = 0.0;
            matvec(m, N0, Kx, tmp);
            for (int i = 0; i < m; i++) {
                kr += Kx[i] * r0[i];
                knk += Kx[i] * tmp[i];
            }
            double u = use_inf ? -kr : v / F - kr;
            double D = use_inf ? knk : 1.0 / F + knk;
            sum_h += u * u * inv_s - D;
        }
        for (int i = 0; i < np; i++) {
            double acc = 0.0;
            for (int e = 0; e < ds[i].nq; e++) {
                int a = ds[i].qidx[e] / m, b = ds[i].qidx[e] % m;
                acc += (r0[a] * r0[b] * inv_s - N0[a * m + b]) * ds[i].qval[e];
            }
            g[i] += acc;
        }
        /* step back to t-1 (N0n is overwritten below, or accumulated into from zero) */
        if (missing || use_inf) {
            back_step_plain(ws, m, missing ? NULL : Kinf, r0, N0, r0n, N0n, Y, S);
        } else {
            back_step_r(ws, m, K, v, F, r0, r0n);
            /* N_{t-1} = L' N L + Z'Z / F with L = T - K Z and w = N K (in tmp, from the
             * disturbance terms above): T' N T - (T'w) Z - Z' (T'w)' + (K'w + 1/F) Z'Z,
             * one sparse sandwich plus rank-one corrections on the rows / columns of Z */
            double *u = ws->vec[3]; /* (m) T' w */
            kalman__ttat(ws, m, N0, Y, N0n);
            kalman__ttx(ws, m, tmp, u);
            double kw = 0.0;
            for (int i = 0; i < m; i++)
                kw += K[i] * tmp[i];
            for (int z = 0; z < ws->nZ; z++) {
                const int a = ws->Zidx[z];
                const double za = ws->Zval[z];
                double *row_a = N0n + (size_t)a * m;
                for (int i = 0; i < m; i++) {
                    N0n[(size_t)i * m + a] -= u[i] * za;
                    row_a[i] -= u[i] * za;
                }
            }
            for (int z1 = 0; z1 < ws->nZ; z1++)
                for (int z2 = 0; z2 < ws->nZ; z2++)
                    N0n[ws->Zidx[z1] * m + ws->Zidx[z2]] +=
                        ws->Zval[z1] * ws->Zval[z2] * (kw + 1.0 / F);
        }
        memcpy(r0, r0n, (size_t)m * sizeof(double));
        double *swap = N0; /* N_{t-1} becomes current: swap the buffers */
        N0 = N0n;
        N0n = swap;
    }
    for (int i = 0; i < np; i++) {
        double acc = 0.0;
        for (int e = 0; e < ds[i].np1; e++) {
            int a = ds[i].pidx[e] / m, b = ds[i].pidx[e] % m;
            acc += (r0[a] * r0[b] * inv_s - N0[a * m + b]) * ds[i].pval[e];
        }
        g[i] = 0.5 * (g[i] + acc + sum_h * ds[i].dH);
    }
    return 0;
}
