/*
 * neural_ssm/scan.c — the Mamba selective scan on the CPU, forward and backward, exactly
 * the contract written in neural_ssm.h (kernels/ implements the same on the GPU).
 *
 * Work is split over the batch: each sequence b is independent, so threads never share
 * a write except for the gradients of the shared parameters A and Dskip, which go to
 * per-sequence partial buffers and are summed in batch order afterwards. That keeps the
 * result bit-identical for any thread count. Inside a sequence the state is held as
 * (N, D) so the innermost loop runs over the D channels: contiguous, independent lanes
 * that vectorize without horizontal sums. The saved checkpoints keep the contract's
 * (D, N) layout. The backward recomputes the states of one chunk of NSSM_SCAN_CHUNK steps
 * at a time from those checkpoints, never storing all L states. With a delta activation
 * (nssm_delta_act) each step's row of activated deltas is formed where it is used.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SCAN_TILE 32

static int nchunks(int L)
{
    return (L + NSSM_SCAN_CHUNK - 1) / NSSM_SCAN_CHUNK;
}

/* The D activated deltas of one step (act: see neural_ssm.h) into row, and when slope is
 * non-NULL d(activated)/d(pre-activation) beside them; returns the row the recurrence
 * reads: delta itself when there is no activation. */
static const real *act_row(real *row, real *slope, const real *delta, const nssm_delta_act *act,
                           int D)
{
    if (!act)
        return delta;
    for (int d = 0; d < D; d++) {
        const real x = delta[d] + (act->bias ? act->bias[d] : 0);
        row[d] = act->softplus ? nssm_softplus(x) : x;
        if (slope) /* softplus' = sigmoid; 1 above softplus's threshold, where it is x */
            slope[d] = !act->softplus || x > 20 ? 1 : 1 / (1 + nssm_exp(-x));
    }
    return row;
}

/* dst (C, R) = src (R, C)^T */
static void transpose(real *dst, const real *src, int R, int C)
{
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            dst[(size_t)c * R + r] = src[(size_t)r * C + c];
}

/* One work unit of the forward: sequence b, channels d0..d0+nd-1, all L steps. Built
 * twice (NSSM_HOT): most of a forecast's time is here. */
NSSM_HOT static void scan_forward_unit(real *y, const real *u, const real *delta,
                                       const nssm_delta_act *act, const real *At,
                                       const real *Bm, const real *Cm, const real *Dskip,
                                       const real *z, int b, int d0, int nd, int L, int D,
                                       int N, real *ypre, real *hchk)
{
    const int NC = nchunks(L);
    const size_t DN = (size_t)D * N;
    real *h = calloc((size_t)N * nd, sizeof(real)); /* (N, nd): channels d0..d0+nd-1 */
    real *dlrow = act ? malloc(sizeof(real) * nd) : NULL; /* the step's activated deltas */
    /* the unit's slice of the activation: bias from d0 on */
    const nssm_delta_act uact = {act && act->bias ? act->bias + d0 : NULL, NULL,
                                 act ? act->softplus : 0};
    if (!h || (act && !dlrow)) {
        free(h);
        free(dlrow);
        for (int t = 0; t < L; t++)
            for (int d = d0; d < d0 + nd; d++)
                y[((size_t)b * L + t) * D + d] = NAN;
        return;
    }
    for (int t = 0; t < L; t++) {
        size_t bt = (size_t)b * L + t;
        if (hchk && t % NSSM_SCAN_CHUNK == 0) {
            real *hc = hchk + ((size_t)b * NC + t / NSSM_SCAN_CHUNK) * DN;
            for (int n = 0; n < N; n++)
                for (int k = 0; k < nd; k++)
                    hc[(size_t)(d0 + k) * N + n] = h[(size_t)n * nd + k];
        }
        const real *u_bt = u + bt * D + d0;
        const real *dl_bt = act_row(dlrow, NULL, delta + bt * D + d0, act ? &uact : NULL, nd);
        const real *B_bt = Bm + bt * N, *C_bt = Cm + bt * N;
        real *y_bt = y + bt * D + d0;
        /* tiles of SCAN_TILE channels: y accumulates in registers over n, the state
         * rows h[n][tile] are independent loads and stores */
        for (int k0 = 0; k0 < nd; k0 += SCAN_TILE) {
            real acc[SCAN_TILE], dl[SCAN_TILE], dlu[SCAN_TILE];
            const int kw = nd - k0 < SCAN_TILE ? nd - k0 : SCAN_TILE;
            for (int j = 0; j < SCAN_TILE; j++) {
                int k = k0 + (j < kw ? j : 0);
                dl[j] = dl_bt[k];
                dlu[j] = dl[j] * u_bt[k];
                acc[j] = Dskip[d0 + k] * u_bt[k];
            }
            if (kw == SCAN_TILE) {
                for (int n = 0; n < N; n++) {
                    const real Bn = B_bt[n], Cn = C_bt[n];
                    const real *A_n = At + (size_t)n * D + d0 + k0;
                    real *h_n = h + (size_t)n * nd + k0;
#ifdef _OPENMP
#pragma omp simd
#endif
                    for (int j = 0; j < SCAN_TILE; j++) {
                        h_n[j] = nssm_exp(dl[j] * A_n[j]) * h_n[j] + dlu[j] * Bn;
                        acc[j] += Cn * h_n[j];
                    }
                }
            } else {
                for (int n = 0; n < N; n++) {
                    const real Bn = B_bt[n], Cn = C_bt[n];
                    const real *A_n = At + (size_t)n * D + d0 + k0;
                    real *h_n = h + (size_t)n * nd + k0;
                    for (int j = 0; j < kw; j++) {
                        h_n[j] = nssm_exp(dl[j] * A_n[j]) * h_n[j] + dlu[j] * Bn;
                        acc[j] += Cn * h_n[j];
                    }
                }
            }
            for (int j = 0; j < kw; j++)
                y_bt[k0 + j] = acc[j];
        }
        if (z) {
            const real *z_bt = z + bt * D + d0;
            for (int k = 0; k < nd; k++) {
                if (ypre)
                    ypre[bt * D + d0 + k] = y_bt[k];
                y_bt[k] *= z_bt[k] / (1 + nssm_exp(-z_bt[k]));
            }
        }
    }
    free(h);
    free(dlrow);
}

void nssm_selective_scan_forward(real *y, const real *u, const real *delta,
                                 const nssm_delta_act *act, const real *A,
                                 const real *Bm, const real *Cm, const real *Dskip,
                                 const real *z, int B, int L, int D, int N, real *ypre,
                                 real *hchk, int threads)
{
    (void)threads;
    const size_t DN = (size_t)D * N;
    real *At = malloc(sizeof(real) * DN); /* (N, D) */
    if (!At) {
        for (size_t i = 0; i < (size_t)B * L * D; i++)
            y[i] = NAN; /* the only way to say "out of memory" from a void contract */
        return;
    }
    transpose(At, A, D, N);
    /* work units: (sequence, block of channels), so one long sequence (a forecast) still
     * spreads over the threads; channels never interact in the forward */
    const int DB = D > 64 ? 64 : D, nblk = (D + DB - 1) / DB;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : 1)
#endif
    for (int unit = 0; unit < B * nblk; unit++) {
        const int b = unit / nblk, d0 = (unit % nblk) * DB, nd = D - d0 < DB ? D - d0 : DB;
        scan_forward_unit(y, u, delta, act, At, Bm, Cm, Dskip, z, b, d0, nd, L, D, N, ypre,
                          hchk);
    }
    free(At);
}

int nssm_selective_scan_backward(real *du, real *ddelta, real *dA, real *dBm, real *dCm,
                                 real *dDskip, real *dz, const real *dy, const real *u,
                                 const real *delta, const nssm_delta_act *act, const real *A,
                                 const real *Bm,
                                 const real *Cm, const real *Dskip, const real *z, int B,
                                 int L, int D, int N, const real *ypre, const real *hchk,
                                 int threads)
{
    (void)threads;
    if (N > NSSM_MAX_STATE || (z && !ypre) || !hchk)
        return NSSM_EINVAL;
    const int NC = nchunks(L), K = NSSM_SCAN_CHUNK;
    const size_t DN = (size_t)D * N;
    real *At = malloc(sizeof(real) * DN);
    /* per-sequence partial gradients of the shared A (as (N, D)) and Dskip */
    real *dA_part = calloc((size_t)B * DN, sizeof(real));
    real *dD_part = calloc((size_t)B * D, sizeof(real));
    /* and of the delta bias, when there is one to return */
    const int want_db = act && act->dbias;
    real *db_part = want_db ? calloc((size_t)B * D, sizeof(real)) : NULL;
    if (!At || !dA_part || !dD_part || (want_db && !db_part)) {
        free(At);
        free(dA_part);
        free(dD_part);
        free(db_part);
        return NSSM_ENOMEM;
    }
    transpose(At, A, D, N);
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : 1) \
    reduction(| : failed)
#endif
    for (int b = 0; b < B; b++) {
        /* hs[k] = h (N, D) after step c*K + k of the current chunk, h0 the state before it;
         * carry = a_{t+1} (.) dL/dh_{t+1}; gy, ddl, duu: per-channel temporaries */
        real *hs = malloc(sizeof(real) * (2 * K + 1) * DN);
        real *carry = calloc(DN, sizeof(real));
        real *tmp = malloc(sizeof(real) * (3 + 2 * K) * D);
        if (!hs || !carry || !tmp) {
            free(hs);
            free(carry);
            free(tmp);
            failed = 1;
            continue;
        }
        /* as[k] = exp(delta A) of the chunk's step k, kept from the recomputation */
        real *h0 = hs + (size_t)K * DN, *as = hs + (size_t)(K + 1) * DN;
        real *gy = tmp, *ddl = tmp + D, *duu = tmp + 2 * D;
        /* with an activation, the chunk's activated deltas and their slopes, one row a step:
         * formed once by the recomputation, read again by the backward walk */
        real *dlrows = tmp + 3 * D, *slopes = tmp + (3 + K) * (size_t)D;
        real *dA_b = dA_part + (size_t)b * DN, *dD_b = dD_part + (size_t)b * D;
        for (int c = NC - 1; c >= 0; c--) {
            int t0 = c * K, t1 = t0 + K < L ? t0 + K : L;
            transpose(h0, hchk + ((size_t)b * NC + c) * DN, D, N);
            /* recompute the chunk's states, as in the forward */
            for (int t = t0; t < t1; t++) {
                size_t bt = (size_t)b * L + t;
                const real *hp = t == t0 ? h0 : hs + (size_t)(t - t0 - 1) * DN;
                real *ht = hs + (size_t)(t - t0) * DN, *at = as + (size_t)(t - t0) * DN;
                const real *u_bt = u + bt * D;
                const real *dl_bt = act_row(dlrows + (size_t)(t - t0) * D,
                                            slopes + (size_t)(t - t0) * D, delta + bt * D, act, D);
                for (int n = 0; n < N; n++) {
                    const real Bn = Bm[bt * N + n], *A_n = At + (size_t)n * D;
                    const real *hp_n = hp + (size_t)n * D;
                    real *ht_n = ht + (size_t)n * D, *at_n = at + (size_t)n * D;
#ifdef _OPENMP
#pragma omp simd
#endif
                    for (int d = 0; d < D; d++) {
                        at_n[d] = nssm_exp(dl_bt[d] * A_n[d]);
                        ht_n[d] = at_n[d] * hp_n[d] + dl_bt[d] * u_bt[d] * Bn;
                    }
                }
            }
            /* walk the chunk backwards */
            for (int t = t1 - 1; t >= t0; t--) {
                size_t bt = (size_t)b * L + t;
                const real *hp = t == t0 ? h0 : hs + (size_t)(t - t0 - 1) * DN;
                const real *ht = hs + (size_t)(t - t0) * DN;
                const real *u_bt = u + bt * D;
                const real *dl_bt = act ? dlrows + (size_t)(t - t0) * D : delta + bt * D;
                const real *slope = slopes + (size_t)(t - t0) * D;
                for (int d = 0; d < D; d++) {
                    real g = dy[bt * D + d];
                    if (z) {
                        /* forward: y = ypre * silu(z) */
                        real zz = z[bt * D + d], s = 1 / (1 + nssm_exp(-zz));
                        dz[bt * D + d] += g * ypre[bt * D + d] * s * (1 + zz * (1 - s));
                        g *= zz * s;
                    }
                    gy[d] = g;
                    /* forward: ypre = C_t . h_t + Dskip u_t */
                    dD_b[d] += g * u_bt[d];
                    duu[d] = g * Dskip[d];
                    ddl[d] = 0;
                }
                /* tiles of SCAN_TILE channels: ddl and duu stay in registers over n */
                const real *B_bt = Bm + bt * N, *C_bt = Cm + bt * N;
                real *dB_bt = dBm + bt * N, *dC_bt = dCm + bt * N;
                for (int k0 = 0; k0 < D; k0 += SCAN_TILE) {
                    const int kw = D - k0 < SCAN_TILE ? D - k0 : SCAN_TILE;
                    real dl[SCAN_TILE], uu[SCAN_TILE], g_y[SCAN_TILE], dacc[SCAN_TILE],
                        uacc[SCAN_TILE];
                    for (int j = 0; j < SCAN_TILE; j++) {
                        int k = k0 + (j < kw ? j : 0);
                        dl[j] = dl_bt[k];
                        uu[j] = u_bt[k];
                        g_y[j] = j < kw ? gy[k] : 0;
                        dacc[j] = 0;
                        uacc[j] = duu[k];
                    }
                    for (int n = 0; n < N; n++) {
                        const real Bn = B_bt[n], Cn = C_bt[n];
                        const real *A_n = At + (size_t)n * D + k0;
                        const real *hp_n = hp + (size_t)n * D + k0, *ht_n = ht + (size_t)n * D + k0;
                        const real *at_n = as + (size_t)(t - t0) * DN + (size_t)n * D + k0;
                        real *carry_n = carry + (size_t)n * D + k0;
                        real *dA_n = dA_b + (size_t)n * D + k0;
                        real dCn = 0, dBn = 0;
                        if (kw == SCAN_TILE) {
#ifdef _OPENMP
#pragma omp simd reduction(+ : dCn, dBn)
#endif
                            for (int j = 0; j < SCAN_TILE; j++) {
                                real a = at_n[j];
                                real g = carry_n[j] + g_y[j] * Cn; /* dL/dh_t */
                                dCn += g_y[j] * ht_n[j];
                                /* forward: h_t = a h_{t-1} + dl B u, a = exp(dl A) */
                                real ga = g * hp_n[j];
                                dacc[j] += ga * a * A_n[j] + g * Bn * uu[j];
                                dA_n[j] += ga * a * dl[j];
                                dBn += g * dl[j] * uu[j];
                                uacc[j] += g * dl[j] * Bn;
                                carry_n[j] = g * a;
                            }
                        } else {
                            for (int j = 0; j < kw; j++) {
                                real a = at_n[j];
                                real g = carry_n[j] + g_y[j] * Cn;
                                dCn += g_y[j] * ht_n[j];
                                real ga = g * hp_n[j];
                                dacc[j] += ga * a * A_n[j] + g * Bn * uu[j];
                                dA_n[j] += ga * a * dl[j];
                                dBn += g * dl[j] * uu[j];
                                uacc[j] += g * dl[j] * Bn;
                                carry_n[j] = g * a;
                            }
                        }
                        dC_bt[n] += dCn;
                        dB_bt[n] += dBn;
                    }
                    for (int j = 0; j < kw; j++) {
                        ddl[k0 + j] = dacc[j];
                        duu[k0 + j] = uacc[j];
                    }
                }
                if (act) /* to the pre-activation: times the slope */
                    for (int d = 0; d < D; d++)
                        ddl[d] *= slope[d];
                for (int d = 0; d < D; d++) {
                    ddelta[bt * D + d] += ddl[d];
                    du[bt * D + d] += duu[d];
                }
                if (want_db)
                    for (int d = 0; d < D; d++)
                        db_part[(size_t)b * D + d] += ddl[d];
            }
        }
        free(hs);
        free(carry);
        free(tmp);
    }
    if (!failed) {
        for (int b = 0; b < B; b++) {
            for (int n = 0; n < N; n++)
                for (int d = 0; d < D; d++)
                    dA[(size_t)d * N + n] += dA_part[(size_t)b * DN + (size_t)n * D + d];
            for (int d = 0; d < D; d++)
                dDskip[d] += dD_part[(size_t)b * D + d];
            if (want_db)
                for (int d = 0; d < D; d++)
                    act->dbias[d] += db_part[(size_t)b * D + d];
        }
    }
    free(At);
    free(dA_part);
    free(dD_part);
    free(db_part);
    return failed ? NSSM_ENOMEM : NSSM_OK;
}
