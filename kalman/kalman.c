/*
 * kalman/kalman.c — the plumbing of kalman/: errors, allocation of systems, workspaces,
 * filter states and stores, and the initialization of a1 / P1 (exact diffuse states and
 * the unconditional distribution of stationary ones via the discrete Lyapunov equation).
 *
 * The numerical loops live in filter.c (filter, likelihood, forecast), smoother.c and
 * mle.c; builders in structural.c (and sarima.c / ets.c / auto.c).
 */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kalman_error_set(kalman_error *err, int code, const char *fmt, ...)
{
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- system ---------------------------------------------------------------------------- */

int kalman_ssm_alloc(kalman_ssm *s, int m, int r, kalman_error *err)
{
    memset(s, 0, sizeof *s);
    if (m < 1 || m > KALMAN_MAX_STATES || r < 0 || r > m)
        return kalman_error_set(err, KALMAN_EINVAL, "invalid state space dimensions: m=%d r=%d",
                                m, r);
    s->m = m;
    s->r = r;
    size_t mm = (size_t)m * m;
    s->Z = calloc((size_t)m, sizeof(double));
    s->T = calloc(mm, sizeof(double));
    s->c = calloc((size_t)m, sizeof(double));
    s->R = calloc((size_t)m * (r ? r : 1), sizeof(double));
    s->Q = calloc((size_t)(r ? r : 1) * (r ? r : 1), sizeof(double));
    s->init = calloc((size_t)m, sizeof(int));
    s->a1 = calloc((size_t)m, sizeof(double));
    s->P1star = calloc(mm, sizeof(double));
    s->P1inf = calloc(mm, sizeof(double));
    if (!s->Z || !s->T || !s->c || !s->R || !s->Q || !s->init || !s->a1 || !s->P1star ||
        !s->P1inf) {
        kalman_ssm_free(s);
        return kalman_error_set(err, KALMAN_ENOMEM, "out of memory allocating a system of %d states",
                                m);
    }
    return 0;
}

void kalman_ssm_free(kalman_ssm *s)
{
    if (!s)
        return;
    free(s->Z);
    free(s->T);
    free(s->c);
    free(s->R);
    free(s->Q);
    free(s->init);
    free(s->a1);
    free(s->P1star);
    free(s->P1inf);
    memset(s, 0, sizeof *s);
}

void kalman_ssm_copy(kalman_ssm *dst, const kalman_ssm *src)
{
    int m = src->m, r = src->r;
    size_t mm = (size_t)m * m;
    dst->d = src->d;
    dst->H = src->H;
    memcpy(dst->Z, src->Z, (size_t)m * sizeof(double));
    memcpy(dst->T, src->T, mm * sizeof(double));
    memcpy(dst->c, src->c, (size_t)m * sizeof(double));
    memcpy(dst->R, src->R, (size_t)m * r * sizeof(double));
    memcpy(dst->Q, src->Q, (size_t)r * r * sizeof(double));
    memcpy(dst->init, src->init, (size_t)m * sizeof(int));
    memcpy(dst->a1, src->a1, (size_t)m * sizeof(double));
    memcpy(dst->P1star, src->P1star, mm * sizeof(double));
    memcpy(dst->P1inf, src->P1inf, mm * sizeof(double));
}

static int all_finite(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

int kalman_ssm_check(const kalman_ssm *s, kalman_error *err)
{
    int m = s->m, r = s->r;
    size_t mm = (size_t)m * m;
    if (!isfinite(s->d) || !isfinite(s->H) || !all_finite(s->Z, (size_t)m) ||
        !all_finite(s->T, mm) || !all_finite(s->c, (size_t)m) ||
        !all_finite(s->R, (size_t)m * r) || !all_finite(s->Q, (size_t)r * r) ||
        !all_finite(s->a1, (size_t)m) || !all_finite(s->P1star, mm) ||
        !all_finite(s->P1inf, mm))
        return kalman_error_set(err, KALMAN_EINVAL, "state space system has a NaN or infinite entry");
    if (s->H < 0)
        return kalman_error_set(err, KALMAN_EINVAL, "observation variance is negative: H=%g", s->H);
    for (int i = 0; i < r; i++)
        if (s->Q[i * r + i] < 0)
            return kalman_error_set(err, KALMAN_EINVAL,
                                    "state disturbance variance %d is negative: %g", i,
                                    s->Q[i * r + i]);
    return 0;
}

/* ---- workspace ------------------------------------------------------------------------- */

kalman_workspace *kalman_workspace_create(int m, int r, kalman_error *err)
{
    if (m < 1 || m > KALMAN_MAX_STATES || r < 0 || r > m) {
        kalman_error_set(err, KALMAN_EINVAL, "invalid workspace dimensions: m=%d r=%d", m, r);
        return NULL;
    }
    kalman_workspace *ws = calloc(1, sizeof *ws);
    if (!ws) {
        kalman_error_set(err, KALMAN_ENOMEM, "out of memory allocating a kalman workspace");
        return NULL;
    }
    ws->m = m;
    ws->r = r;
    size_t mm = (size_t)m * m;
    int k = m < KALMAN_KRON_MAX ? m : KALMAN_KRON_MAX;
    size_t k2 = (size_t)k * k;
    ws->Trow = calloc((size_t)m + 1, sizeof(int));
    ws->Tidx = calloc(mm, sizeof(int));
    ws->Tval = calloc(mm, sizeof(double));
    ws->TtRow = calloc((size_t)m + 1, sizeof(int));
    ws->TtIdx = calloc(mm, sizeof(int));
    ws->TtVal = calloc(mm, sizeof(double));
    ws->Gsrc = calloc((size_t)m, sizeof(int));
    ws->Gval = calloc((size_t)m, sizeof(double));
    ws->Gtsrc = calloc((size_t)m, sizeof(int));
    ws->Gtval = calloc((size_t)m, sizeof(double));
    ws->Gruns = calloc((size_t)m * 3, sizeof(int));
    ws->Grunval = calloc((size_t)m, sizeof(double));
    ws->Gtruns = calloc((size_t)m * 3, sizeof(int));
    ws->Gtrunval = calloc((size_t)m, sizeof(double));
    ws->Erow = calloc((size_t)m, sizeof(int));
    ws->Estart = calloc((size_t)m + 1, sizeof(int));
    ws->Eidx = calloc(mm, sizeof(int));
    ws->Eval = calloc(mm, sizeof(double));
    ws->Zidx = calloc((size_t)m, sizeof(int));
    ws->Zval = calloc((size_t)m, sizeof(double));
    ws->RQR = calloc(mm, sizeof(double));
    ws->kron = calloc(k2 * k2, sizeof(double));
    ws->ipiv = calloc(k2 > (size_t)m ? k2 : (size_t)m, sizeof(int));
    if (kalman_state_alloc(&ws->st, m, err)) {
        kalman_workspace_free(ws);
        return NULL;
    }
    int ok = ws->Trow && ws->Tidx && ws->Tval && ws->TtRow && ws->TtIdx && ws->TtVal &&
             ws->Gsrc && ws->Gval && ws->Gtsrc && ws->Gtval && ws->Gruns && ws->Grunval &&
             ws->Gtruns && ws->Gtrunval && ws->Erow && ws->Estart &&
             ws->Eidx && ws->Eval && ws->Zidx && ws->Zval && ws->RQR && ws->kron &&
             ws->ipiv;
    for (int i = 0; i < 8 && ok; i++) {
        ws->mat[i] = calloc(mm, sizeof(double));
        ws->vec[i] = calloc((size_t)m, sizeof(double));
        ok = ws->mat[i] && ws->vec[i];
    }
    if (!ok) {
        kalman_workspace_free(ws);
        kalman_error_set(err, KALMAN_ENOMEM, "out of memory allocating a kalman workspace");
        return NULL;
    }
    return ws;
}

void kalman_workspace_free(kalman_workspace *ws)
{
    if (!ws)
        return;
    free(ws->Trow);
    free(ws->Tidx);
    free(ws->Tval);
    free(ws->TtRow);
    free(ws->TtIdx);
    free(ws->TtVal);
    free(ws->Gsrc);
    free(ws->Gval);
    free(ws->Gtsrc);
    free(ws->Gtval);
    free(ws->Gruns);
    free(ws->Grunval);
    free(ws->Gtruns);
    free(ws->Gtrunval);
    free(ws->Erow);
    free(ws->Estart);
    free(ws->Eidx);
    free(ws->Eval);
    free(ws->Zidx);
    free(ws->Zval);
    free(ws->RQR);
    free(ws->kron);
    free(ws->ipiv);
    kalman_state_free(&ws->st);
    for (int i = 0; i < 8; i++) {
        free(ws->mat[i]);
        free(ws->vec[i]);
    }
    free(ws);
}

/* Splits k = 0..m-1 into runs of consecutive sources with one value (src -1: zeros);
 * returns the number of runs. */
static int make_runs(int m, const int *src, const double *val, int *runs, double *runval)
{
    int n = 0;
    for (int k = 0; k < m;) {
        int len = 1;
        if (src[k] < 0) {
            while (k + len < m && src[k + len] < 0)
                len++;
        } else {
            while (k + len < m && src[k + len] == src[k] + len && val[k + len] == val[k])
                len++;
        }
        runs[3 * n] = k;
        runs[3 * n + 1] = len;
        runs[3 * n + 2] = src[k];
        runval[n] = src[k] < 0 ? 0.0 : val[k];
        n++;
        k += len;
    }
    return n;
}

void kalman__prepare(kalman_workspace *ws, const kalman_ssm *s)
{
    int m = s->m, r = s->r;
    int nnz = 0;
    for (int i = 0; i < m; i++) {
        ws->Trow[i] = nnz;
        for (int j = 0; j < m; j++) {
            double v = s->T[i * m + j];
            if (v != 0.0) {
                ws->Tidx[nnz] = j;
                ws->Tval[nnz] = v;
                nnz++;
            }
        }
    }
    ws->Trow[m] = nnz;
    nnz = 0;
    for (int j = 0; j < m; j++) { /* row j of T' = column j of T */
        ws->TtRow[j] = nnz;
        for (int i = 0; i < m; i++) {
            double v = s->T[i * m + j];
            if (v != 0.0) {
                ws->TtIdx[nnz] = i;
                ws->TtVal[nnz] = v;
                nnz++;
            }
        }
    }
    ws->TtRow[m] = nnz;
    /* T = G + E: a row with a single entry in a column no earlier G row uses goes to G,
     * every other nonzero row to E */
    for (int i = 0; i < m; i++)
        ws->Gsrc[i] = ws->Gtsrc[i] = -1;
    ws->nE = 0;
    nnz = 0;
    for (int i = 0; i < m; i++) {
        int e0 = ws->Trow[i], e1 = ws->Trow[i + 1];
        if (e1 == e0)
            continue;
        int j = ws->Tidx[e0];
        if (e1 - e0 == 1 && ws->Gtsrc[j] < 0) {
            ws->Gsrc[i] = j;
            ws->Gval[i] = ws->Tval[e0];
            ws->Gtsrc[j] = i;
            ws->Gtval[j] = ws->Tval[e0];
            continue;
        }
        ws->Erow[ws->nE] = i;
        ws->Estart[ws->nE] = nnz;
    ws->nGruns = make_runs(m, ws->Gsrc, ws->Gval, ws->Gruns, ws->Grunval);
    ws->nGtruns = make_runs(m, ws->Gtsrc, ws->Gtval, ws->Gtruns, ws->Gtrunval);
        for (int e = e0; e < e1; e++) {
            ws->Eidx[nnz] = ws->Tidx[e];
            ws->Eval[nnz] = ws->Tval[e];
            nnz++;
        }
        ws->nE++;
    }
    ws->Estart[ws->nE] = nnz;
    ws->nGruns = make_runs(m, ws->Gsrc, ws->Gval, ws->Gruns, ws->Grunval);
    ws->nGtruns = make_runs(m, ws->Gtsrc, ws->Gtval, ws->Gtruns, ws->Gtrunval);
    /* the E rows need 2 |E| rows of scratch; worth it while E is a small part of T */
    ws->ge_ok = 2 * ws->nE <= m && 4 * ws->nE <= m + 4;
    ws->nZ = 0;
    for (int j = 0; j < m; j++)
        if (s->Z[j] != 0.0) {
            ws->Zidx[ws->nZ] = j;
            ws->Zval[ws->nZ] = s->Z[j];
            ws->nZ++;
        }
    /* RQR' (m,m): R (m,r), Q (r,r) */
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
            ws->RQR[i * m + j] = acc;
            ws->RQR[j * m + i] = acc;
        }
}

/* out = S A S' for the sparse S given by (row, idx, val); see kalman__tat */
static void sas(const int *row, const int *idx, const double *val, int m, const double *A,
                double *W, double *out)
{
    /* Two sparse passes of contiguous row operations (they vectorize; shift rows with a
     * single unit entry are copies):
     *   W = T A        row i of W = sum_e T_ie A[j_e, :]
     *   T A T' = T W'  row k = sum_e T_ke W'[j_e, :]; W' is built in out, the product in W
     * and the upper triangle is mirrored into out, so the result is exactly symmetric. */
    for (int i = 0; i < m; i++) {
        double *restrict w_i = W + (size_t)i * m;
        int e0 = row[i], e1 = row[i + 1];
        if (e1 - e0 == 1 && val[e0] == 1.0) { /* shift row: a copy */
            memcpy(w_i, A + (size_t)idx[e0] * m, (size_t)m * sizeof(double));
            continue;
        }
        memset(w_i, 0, (size_t)m * sizeof(double));
        for (int e = e0; e < e1; e++) {
            const double *restrict a_j = A + (size_t)idx[e] * m;
            double t = val[e];
            for (int k = 0; k < m; k++)
                w_i[k] += t * a_j[k];
        }
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++)
            out[(size_t)j * m + i] = W[(size_t)i * m + j];
    for (int k = 0; k < m; k++) {
        double *restrict o_k = W + (size_t)k * m;
        int e0 = row[k], e1 = row[k + 1];
        if (e1 - e0 == 1 && val[e0] == 1.0) {
            memcpy(o_k, out + (size_t)idx[e0] * m, (size_t)m * sizeof(double));
            continue;
        }
        memset(o_k, 0, (size_t)m * sizeof(double));
        for (int e = e0; e < e1; e++) {
            const double *restrict wt_j = out + (size_t)idx[e] * m;
            double t = val[e];
            for (int c = 0; c < m; c++)
                o_k[c] += t * wt_j[c];
        }
    }
    for (int i = 0; i < m; i++) {
        const double *w_i = W + (size_t)i * m;
        for (int k = i; k < m; k++)
            out[(size_t)i * m + k] = out[(size_t)k * m + i] = w_i[k];
    }
}

/* out[i][k] = g_i g_k A[src_i][src_k] (0 where a G row is missing): G A G' for G with at
 * most one entry per row, given as (src, val). With `upper` only k >= i is written (the
 * caller mirrors), half the work; the entries written are the same numbers either way. */
static void gather_sandwich(int m, const int *src, const double *val, int nruns,
                            const int *runs, const double *runval, const double *A,
                            double *out, int upper)
{
    for (int i = 0; i < m; i++) {
        double *restrict o_i = out + (size_t)i * m;
        const int kmin = upper ? i : 0;
        if (src[i] < 0) {
            memset(o_i + kmin, 0, (size_t)(m - kmin) * sizeof(double));
            continue;
        }
        const double *restrict a_i = A + (size_t)src[i] * m;
        const double gi = val[i];
        for (int r = 0; r < nruns; r++) {
            const int k0 = runs[3 * r], len = runs[3 * r + 1], s0 = runs[3 * r + 2];
            const int skip = kmin > k0 ? kmin - k0 : 0; /* the run's part left of the diagonal */
            if (skip >= len)
                continue;
            if (s0 < 0) { /* usually a single column: a store, not a memset call */
                if (len - skip == 1)
                    o_i[k0 + skip] = 0.0;
                else
                    memset(o_i + k0 + skip, 0, (size_t)(len - skip) * sizeof(double));
                continue;
            }
            /* gi * val_k * a: the same product order as (gi * val_k) * a for every k */
            const double g = gi * runval[r];
            if (g == 1.0) /* the usual case (shifts): a plain copy, no per-run loop set-up */
                memcpy(o_i + k0 + skip, a_i + s0 + skip, (size_t)(len - skip) * sizeof(double));
            else
                for (int k = skip; k < len; k++)
                    o_i[k0 + k] = g * a_i[s0 + k];
        }
    }
}

/* the upper triangle of out mirrored into the lower: exactly symmetric */
static void mirror_upper(int m, double *out)
{
    /* row by row: contiguous stores, the strided side are loads */
    for (int k = 1; k < m; k++) {
        double *restrict row = out + (size_t)k * m;
        const double *restrict col = out + k;
        int i = 0;
        for (; i + 4 <= k; i += 4) { /* four at a time: a quarter of the loop overhead */
            const double x0 = col[(size_t)i * m], x1 = col[(size_t)(i + 1) * m];
            const double x2 = col[(size_t)(i + 2) * m], x3 = col[(size_t)(i + 3) * m];
            row[i] = x0;
            row[i + 1] = x1;
            row[i + 2] = x2;
            row[i + 3] = x3;
        }
        for (; i < k; i++)
            row[i] = col[(size_t)i * m];
    }
}

/* T A T' = G A G' + sum_q (z_q e_q' + e_q z_q') + sum_{q,q'} (t_q' A t_q') e_q e_q'
 * with E = sum_q e_q t_q' (q over the E rows), y_q = A t_q and z_q = G y_q. W holds y_q
 * (rows 0..|E|-1) and z_q (rows |E|..2|E|-1). */
static void ge_tat(const kalman_workspace *ws, int m, const double *A, double *W, double *out)
{
    const int nE = ws->nE;
    gather_sandwich(m, ws->Gsrc, ws->Gval, ws->nGruns, ws->Gruns, ws->Grunval, A, out, 1);
    for (int q = 0; q < nE; q++) {
        double *restrict y = W + (size_t)q * m, *restrict z = W + (size_t)(nE + q) * m;
        /* y = A t_q = sum_e t_qe A[idx_e, :] (A symmetric) */
        int e0 = ws->Estart[q], e1 = ws->Estart[q + 1];
        const double *a0 = A + (size_t)ws->Eidx[e0] * m;
        const double v0 = ws->Eval[e0];
        for (int k = 0; k < m; k++)
            y[k] = v0 * a0[k];
        for (int e = e0 + 1; e < e1; e++) {
            const double *restrict a_e = A + (size_t)ws->Eidx[e] * m;
            const double v = ws->Eval[e];
            for (int k = 0; k < m; k++)
                y[k] += v * a_e[k];
        }
        for (int i = 0; i < m; i++)
            z[i] = ws->Gsrc[i] < 0 ? 0.0 : ws->Gval[i] * y[ws->Gsrc[i]];
    }
    for (int q = 0; q < nE; q++) {
        const int r = ws->Erow[q];
        const double *z = W + (size_t)(nE + q) * m;
        double *o_r = out + (size_t)r * m;
        /* row r and column r, upper triangle only (mirrored below) */
        for (int k = r; k < m; k++)
            o_r[k] += z[k];
        for (int k = 0; k <= r; k++)
            out[(size_t)k * m + r] += z[k];
    }
    for (int q = 0; q < nE; q++) /* the E x E block: t_q' A t_q', one value for both */
        for (int q2 = q; q2 < nE; q2++) {
            const double *y2 = W + (size_t)q2 * m;
            double c = 0.0;
            for (int e = ws->Estart[q]; e < ws->Estart[q + 1]; e++)
                c += ws->Eval[e] * y2[ws->Eidx[e]];
            out[(size_t)ws->Erow[q] * m + ws->Erow[q2]] += c;
            if (q2 != q)
                out[(size_t)ws->Erow[q2] * m + ws->Erow[q]] += c;
        }
    /* only the upper triangle was formed (half the stores); the lower is its copy */
    mirror_upper(m, out);
}

/* T' A T = G' A G + sum_q (d_q t_q' + t_q d_q'), d_q = G' A e_q + 0.5 sum_q' A_qq' t_q'
 * (q, q' over the E rows; A_qq' the entries of A at those rows). W row q holds d_q. */
static void ge_ttat(const kalman_workspace *ws, int m, const double *A, double *W, double *out)
{
    const int nE = ws->nE;
    gather_sandwich(m, ws->Gtsrc, ws->Gtval, ws->nGtruns, ws->Gtruns, ws->Gtrunval, A, out, 1);
    for (int q = 0; q < nE; q++) {
        double *restrict d = W + (size_t)q * m;
        const double *a_q = A + (size_t)ws->Erow[q] * m; /* A e_q = row q (symmetric) */
        for (int i = 0; i < m; i++)
            d[i] = ws->Gtsrc[i] < 0 ? 0.0 : ws->Gtval[i] * a_q[ws->Gtsrc[i]];
        for (int q2 = 0; q2 < nE; q2++) {
            const double h = 0.5 * a_q[ws->Erow[q2]];
            for (int e = ws->Estart[q2]; e < ws->Estart[q2 + 1]; e++)
                d[ws->Eidx[e]] += h * ws->Eval[e];
        }
    }
    for (int q = 0; q < nE; q++) {
        const double *d = W + (size_t)q * m;
        for (int e = ws->Estart[q]; e < ws->Estart[q + 1]; e++) {
            const int j = ws->Eidx[e];
            const double v = ws->Eval[e];
            double *restrict o_j = out + (size_t)j * m;
            /* only the upper triangle: mirror_upper below overwrites the rest */
            for (int i = j; i < m; i++) /* row j: t_q d_q' */
                o_j[i] += v * d[i];
            for (int i = 0; i <= j; i++) /* column j: d_q t_q' */
                out[(size_t)i * m + j] += d[i] * v;
        }
    }
    mirror_upper(m, out);
}

void kalman__tat(const kalman_workspace *ws, int m, const double *A, double *W, double *out)
{
    if (ws->ge_ok)
        ge_tat(ws, m, A, W, out);
    else
        sas(ws->Trow, ws->Tidx, ws->Tval, m, A, W, out);
}

void kalman__ttat(const kalman_workspace *ws, int m, const double *A, double *W, double *out)
{
    if (ws->ge_ok)
        ge_ttat(ws, m, A, W, out);
    else
        sas(ws->TtRow, ws->TtIdx, ws->TtVal, m, A, W, out);
}

void kalman__tx(const kalman_workspace *ws, int m, const double *x, const double *c, double *out)
{
    for (int i = 0; i < m; i++) {
        double acc = c ? c[i] : 0.0;
        for (int e = ws->Trow[i]; e < ws->Trow[i + 1]; e++)
            acc += ws->Tval[e] * x[ws->Tidx[e]];
        out[i] = acc;
    }
}

void kalman__ttx(const kalman_workspace *ws, int m, const double *x, double *out)
{
    memset(out, 0, (size_t)m * sizeof(double));
    for (int i = 0; i < m; i++)
        for (int e = ws->Trow[i]; e < ws->Trow[i + 1]; e++)
            out[ws->Tidx[e]] += ws->Tval[e] * x[i];
}

void kalman__matmul(int n, const double *A, const double *B, double *C)
{
    memset(C, 0, (size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            double a = A[i * n + k];
            if (a == 0.0)
                continue;
            for (int j = 0; j < n; j++)
                C[i * n + j] += a * B[k * n + j];
        }
}

/* ---- initialization -------------------------------------------------------------------- */

/* Solves P = A P A' + B for the (k,k) stationary block. A, B (k,k); P out (k,k).
 * k <= KALMAN_KRON_MAX: the Kronecker system (I - A (x) A) vec P = vec B by LU (exact);
 * larger k: the doubling algorithm P <- P + A_j P A_j', A_j <- A_j^2, which converges
 * quadratically when the spectral radius of A is below one. */
static int lyapunov(kalman_workspace *ws, int k, const double *A, const double *B, double *P,
                    kalman_error *err)
{
    if (k <= KALMAN_KRON_MAX) {
        int k2 = k * k;
        double *K = ws->kron;
        /* row (i,j) of the system: P_ij - sum_{a,b} A_ia A_jb P_ab = B_ij; column-major
         * for LAPACK: element (row, col) at K[col*k2 + row] */
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                int row = i * k + j;
                for (int a = 0; a < k; a++)
                    for (int b = 0; b < k; b++) {
                        int col = a * k + b;
                        K[(size_t)col * k2 + row] = (row == col ? 1.0 : 0.0) -
                                                    A[i * k + a] * A[j * k + b];
                    }
                P[row] = B[row];
            }
        int nrhs = 1, info = 0;
        dgesv_(&k2, &nrhs, K, &k2, ws->ipiv, P, &k2, &info);
        if (info != 0)
            return kalman_error_set(err, KALMAN_ENUMERIC,
                                    "stationary initialization failed: transition has a unit root");
    } else {
        double *Aj = ws->mat[4], *W = ws->mat[5], *X = ws->mat[6], *Y = ws->mat[7];
        memcpy(P, B, (size_t)k * k * sizeof(double));
        memcpy(Aj, A, (size_t)k * k * sizeof(double));
        int it;
        for (it = 0; it < 64; it++) {
            /* P += Aj P Aj' */
            kalman__matmul(k, Aj, P, W);
            double diff = 0.0, big = 0.0;
            for (int i = 0; i < k; i++)
                for (int j = 0; j < k; j++) {
                    double acc = 0.0;
                    for (int l = 0; l < k; l++)
                        acc += W[i * k + l] * Aj[j * k + l];
                    X[i * k + j] = acc;
                }
            for (int i = 0; i < k * k; i++) {
                P[i] += X[i];
                diff = fmax(diff, fabs(X[i]));
                big = fmax(big, fabs(P[i]));
            }
            if (!isfinite(big) || big > 1e300)
                break;
            if (diff <= 1e-15 * big)
                break;
            kalman__matmul(k, Aj, Aj, Y);
            memcpy(Aj, Y, (size_t)k * k * sizeof(double));
        }
        if (it == 64 || !all_finite(P, (size_t)k * k))
            return kalman_error_set(err, KALMAN_ENUMERIC,
                                    "stationary initialization failed: transition is not stationary");
    }
    /* symmetrize and require a positive semi-definite diagonal */
    for (int i = 0; i < k; i++) {
        if (!(P[i * k + i] >= 0.0) || !isfinite(P[i * k + i]))
            return kalman_error_set(err, KALMAN_ENUMERIC,
                                    "stationary initialization failed: transition is not stationary");
        for (int j = i + 1; j < k; j++) {
            double v = 0.5 * (P[i * k + j] + P[j * k + i]);
            P[i * k + j] = P[j * k + i] = v;
        }
    }
    return 0;
}

int kalman_ssm_initialize(kalman_ssm *s, kalman_workspace *ws, kalman_error *err)
{
    int m = s->m;
    if (!ws || ws->m < m || ws->r < s->r)
        return kalman_error_set(err, KALMAN_EINVAL, "workspace too small for a system of %d states",
                                m);
    int k = 0;
    int iset[KALMAN_MAX_STATES];
    for (int i = 0; i < m; i++) {
        if (s->init[i] == KALMAN_INIT_STATIONARY)
            iset[k++] = i;
    }
    for (int i = 0; i < m; i++) {
        if (s->init[i] == KALMAN_INIT_KNOWN)
            continue;
        /* clear the rows/columns we own */
        s->a1[i] = 0.0;
        for (int j = 0; j < m; j++) {
            s->P1star[i * m + j] = s->P1star[j * m + i] = 0.0;
            s->P1inf[i * m + j] = s->P1inf[j * m + i] = 0.0;
        }
    }
    for (int i = 0; i < m; i++)
        if (s->init[i] == KALMAN_INIT_DIFFUSE)
            s->P1inf[i * m + i] = 1.0;
    if (k == 0)
        return 0;

    kalman__prepare(ws, s);
    double *A = ws->mat[0], *B = ws->mat[1], *P = ws->mat[2], *M = ws->mat[3];
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++) {
            A[a * k + b] = s->T[iset[a] * m + iset[b]];
            B[a * k + b] = ws->RQR[iset[a] * m + iset[b]];
        }
    int rc = lyapunov(ws, k, A, B, P, err);
    if (rc)
        return rc;
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++)
            s->P1star[iset[a] * m + iset[b]] = P[a * k + b];
    /* mean (I - A)^-1 c_S, only when the intercept is nonzero */
    int has_c = 0;
    for (int a = 0; a < k; a++)
        if (s->c[iset[a]] != 0.0)
            has_c = 1;
    if (has_c) {
        double *rhs = ws->vec[0];
        for (int a = 0; a < k; a++) {
            rhs[a] = s->c[iset[a]];
            for (int b = 0; b < k; b++) /* column-major I - A */
                M[b * k + a] = (a == b ? 1.0 : 0.0) - A[a * k + b];
        }
        int nrhs = 1, info = 0;
        dgesv_(&k, &nrhs, M, &k, ws->ipiv, rhs, &k, &info);
        if (info != 0)
            return kalman_error_set(err, KALMAN_ENUMERIC,
                                    "stationary initialization failed: I - T is singular");
        for (int a = 0; a < k; a++)
            s->a1[iset[a]] = rhs[a];
    }
    return 0;
}

/* ---- filter state ---------------------------------------------------------------------- */

int kalman_state_alloc(kalman_state *st, int m, kalman_error *err)
{
    memset(st, 0, sizeof *st);
    if (m < 1 || m > KALMAN_MAX_STATES)
        return kalman_error_set(err, KALMAN_EINVAL, "invalid state dimension %d", m);
    st->m = m;
    st->a = calloc((size_t)m, sizeof(double));
    st->K = calloc((size_t)m, sizeof(double));
    st->P = calloc((size_t)m * m, sizeof(double));
    st->Pinf = calloc((size_t)m * m, sizeof(double));
    if (!st->a || !st->K || !st->P || !st->Pinf) {
        kalman_state_free(st);
        return kalman_error_set(err, KALMAN_ENOMEM, "out of memory allocating a filter state");
    }
    return 0;
}

void kalman_state_free(kalman_state *st)
{
    if (!st)
        return;
    free(st->a);
    free(st->K);
    free(st->P);
    free(st->Pinf);
    memset(st, 0, sizeof *st);
}

void kalman_state_start(kalman_state *st, const kalman_ssm *s)
{
    int m = s->m;
    size_t mm = (size_t)m * m;
    st->t = 0;
    st->steady = 0;
    st->F = 0.0;
    memcpy(st->a, s->a1, (size_t)m * sizeof(double));
    memcpy(st->P, s->P1star, mm * sizeof(double));
    memcpy(st->Pinf, s->P1inf, mm * sizeof(double));
    memset(st->K, 0, (size_t)m * sizeof(double));
    st->diffuse = 0;
    for (size_t i = 0; i < mm; i++)
        if (s->P1inf[i] != 0.0)
            st->diffuse = 1;
}

void kalman_state_copy(kalman_state *dst, const kalman_state *src)
{
    int m = src->m;
    size_t mm = (size_t)m * m;
    dst->t = src->t;
    dst->diffuse = src->diffuse;
    dst->steady = src->steady;
    dst->F = src->F;
    memcpy(dst->a, src->a, (size_t)m * sizeof(double));
    memcpy(dst->K, src->K, (size_t)m * sizeof(double));
    memcpy(dst->P, src->P, mm * sizeof(double));
    memcpy(dst->Pinf, src->Pinf, mm * sizeof(double));
}

/* ---- store ----------------------------------------------------------------------------- */

int kalman_store_alloc(kalman_store *st, size_t n, int m, kalman_error *err)
{
    memset(st, 0, sizeof *st);
    st->n = n;
    st->m = m;
    size_t mm = (size_t)m * m;
    st->a_pred = calloc((n + 1) * m, sizeof(double));
    st->P_pred = calloc((n + 1) * mm, sizeof(double));
    st->Pinf_pred = calloc((n + 1) * mm, sizeof(double));
    st->a_filt = calloc(n * m + 1, sizeof(double));
    st->P_filt = calloc(n * mm + 1, sizeof(double));
    st->v = calloc(n + 1, sizeof(double));
    st->F = calloc(n + 1, sizeof(double));
    st->Finf = calloc(n + 1, sizeof(double));
    st->K = calloc(n * m + 1, sizeof(double));
    st->Kinf = calloc(n * m + 1, sizeof(double));
    st->M = calloc(n * m + 1, sizeof(double));
    st->Minf = calloc(n * m + 1, sizeof(double));
    if (!st->a_pred || !st->P_pred || !st->Pinf_pred || !st->a_filt || !st->P_filt || !st->v ||
        !st->F || !st->Finf || !st->K || !st->Kinf || !st->M || !st->Minf) {
        kalman_store_free(st);
        return kalman_error_set(err, KALMAN_ENOMEM, "out of memory storing %zu filter steps", n);
    }
    return 0;
}

void kalman_store_free(kalman_store *st)
{
    if (!st)
        return;
    free(st->a_pred);
    free(st->P_pred);
    free(st->Pinf_pred);
    free(st->a_filt);
    free(st->P_filt);
    free(st->v);
    free(st->F);
    free(st->Finf);
    free(st->K);
    free(st->Kinf);
    free(st->M);
    free(st->Minf);
    memset(st, 0, sizeof *st);
}

void kalman_model_free(kalman_model *model)
{
    if (model && model->destroy)
        model->destroy(model);
}
