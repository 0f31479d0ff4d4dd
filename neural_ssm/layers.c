/*
 * neural_ssm/layers.c — the plain layers of the forecaster, each a forward/backward pair
 * on row-major arrays: Linear (through nssm_gemm, i.e. BLAS), RMSNorm, causal depthwise
 * Conv1d, SiLU, softplus and the residual add. These are the CPU reference the CUDA
 * kernels mirror; the loops are written for clarity first. Backward functions accumulate.
 */
#include "internal.h"

/* ---- Linear ------------------------------------------------------------------------- */

void nssm_linear_forward(real *out, const real *inp, const real *w, const real *bias, int BT,
                         int C, int OC)
{
    /* out (BT, OC) = inp (BT, C) @ w^T, w (OC, C) */
    nssm_gemm(0, 1, BT, OC, C, 1, inp, C, w, C, 0, out, OC);
    if (bias) {
        for (int i = 0; i < BT; i++) {
            real *out_i = out + (size_t)i * OC;
            for (int o = 0; o < OC; o++)
                out_i[o] += bias[o];
        }
    }
}

void nssm_linear_backward(real *dinp, real *dw, real *dbias, const real *dout, const real *inp,
                          const real *w, int BT, int C, int OC)
{
    /* forward was out = inp @ w^T + bias, so:
     * dinp (BT, C) += dout (BT, OC) @ w (OC, C); dw (OC, C) += dout^T @ inp */
    if (dinp)
        nssm_gemm(0, 0, BT, C, OC, 1, dout, OC, w, C, 1, dinp, C);
    if (dw)
        nssm_gemm(1, 0, OC, C, BT, 1, dout, OC, inp, C, 1, dw, C);
    if (dbias) /* a sum over BT rows (10^5 in a training batch): in double, see conv1d */
        for (int o0 = 0; o0 < OC; o0 += 64) {
            const int no = OC - o0 < 64 ? OC - o0 : 64;
            double acc[64] = {0};
            for (int i = 0; i < BT; i++) {
                const real *dout_i = dout + (size_t)i * OC + o0;
                for (int o = 0; o < no; o++)
                    acc[o] += dout_i[o];
            }
            for (int o = 0; o < no; o++)
                dbias[o0 + o] += (real)acc[o];
        }
}

/* ---- RMSNorm ------------------------------------------------------------------------ */

NSSM_HOT void nssm_rmsnorm_forward(real *out, real *rstd, const real *inp, const real *w, int BT, int C,
                          real eps)
{
    for (int i = 0; i < BT; i++) {
        const real *x = inp + (size_t)i * C;
        real *o = out + (size_t)i * C;
        real ss = 0;
        for (int c = 0; c < C; c++)
            ss += x[c] * x[c];
        real r = 1 / real_sqrt(ss / C + eps);
        for (int c = 0; c < C; c++)
            o[c] = x[c] * r * w[c];
        rstd[i] = r;
    }
}

void nssm_rmsnorm_backward(real *dinp, real *dw, const real *dout, const real *inp,
                           const real *w, const real *rstd, int BT, int C)
{
    /* forward: xhat = x * r, r = (mean(x^2) + eps)^-1/2, out = xhat * w, so
     * dw += dout * xhat and dx = r * (dxhat - xhat * mean(dxhat * xhat)), dxhat = dout * w.
     * dw sums over BT rows (10^5 in a training batch): float partial sums over blocks of 64
     * rows, added up in double (C <= 4096, the model's limit, so the buffers fit the stack). */
    double dwacc[C];
    real part[C];
    memset(dwacc, 0, sizeof dwacc);
    for (int i0 = 0; i0 < BT; i0 += 64) {
        memset(part, 0, sizeof part);
        const int i1 = BT - i0 < 64 ? BT : i0 + 64;
        for (int i = i0; i < i1; i++) {
            const real *x = inp + (size_t)i * C;
            const real *g = dout + (size_t)i * C;
            real *dx = dinp + (size_t)i * C;
            real r = rstd[i];
            real dot = 0;
            for (int c = 0; c < C; c++)
                dot += g[c] * w[c] * x[c] * r;
            dot /= C;
            for (int c = 0; c < C; c++) {
                real xhat = x[c] * r;
                part[c] += g[c] * xhat;
                dx[c] += r * (g[c] * w[c] - xhat * dot);
            }
        }
        for (int c = 0; c < C; c++)
            dwacc[c] += part[c];
    }
    for (int c = 0; c < C; c++)
        dw[c] += (real)dwacc[c];
}

/* ---- causal depthwise Conv1d ----------------------------------------------------------- */

NSSM_HOT void nssm_conv1d_forward(real *out, const real *inp, const real *w, const real *bias, int B,
                         int L, int C, int K)
{
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < L; t++) {
            real *out_bt = out + ((size_t)b * L + t) * C;
            for (int c = 0; c < C; c++)
                out_bt[c] = bias ? bias[c] : 0;
            for (int k = 0; k < K; k++) {
                int s = t - K + 1 + k;
                if (s < 0)
                    continue;
                const real *inp_bs = inp + ((size_t)b * L + s) * C;
                for (int c = 0; c < C; c++)
                    out_bt[c] += w[c * K + k] * inp_bs[c];
            }
        }
    }
}

void nssm_conv1d_backward(real *dinp, real *dw, real *dbias, const real *dout, const real *inp,
                          const real *w, int B, int L, int C, int K)
{
    /* forward: out[b,t,c] = bias[c] + sum_k w[c,k] inp[b,t-K+1+k,c] */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            const real *dout_bt = dout + ((size_t)b * L + t) * C;
            for (int k = 0; k < K; k++) {
                int s = t - K + 1 + k;
                if (s < 0)
                    continue;
                real *dinp_bs = dinp + ((size_t)b * L + s) * C;
                for (int c = 0; c < C; c++)
                    dinp_bs[c] += w[c * K + k] * dout_bt[c];
            }
        }
    /* dw and dbias are sums over every (b, t): 10^5 rows in a training batch, where a float
     * running sum drifts by ~1e-4 relative (and the GPU's tree of partial sums does not).
     * They are summed in double, 32 channels by up to 16 taps at a time on the stack. */
    enum { CB = 32, KB = 16 };
    for (int c0 = 0; c0 < C; c0 += CB) {
        const int nc = C - c0 < CB ? C - c0 : CB;
        for (int k0 = 0; k0 < K; k0 += KB) {
            const int nk = K - k0 < KB ? K - k0 : KB;
            const int with_bias = dbias && k0 == 0;
            double aw[KB][CB], ab[CB];
            memset(aw, 0, sizeof aw);
            memset(ab, 0, sizeof ab);
            for (int b = 0; b < B; b++)
                for (int t = 0; t < L; t++) {
                    const real *g = dout + ((size_t)b * L + t) * C + c0;
                    if (with_bias)
                        for (int c = 0; c < nc; c++)
                            ab[c] += g[c];
                    for (int k = 0; k < nk; k++) {
                        int s = t - K + 1 + k0 + k;
                        if (s < 0)
                            continue;
                        const real *x = inp + ((size_t)b * L + s) * C + c0;
                        for (int c = 0; c < nc; c++)
                            aw[k][c] += (double)x[c] * g[c];
                    }
                }
            for (int c = 0; c < nc; c++) {
                for (int k = 0; k < nk; k++)
                    dw[(c0 + c) * K + k0 + k] += (real)aw[k][c];
                if (with_bias)
                    dbias[c0 + c] += (real)ab[c];
            }
        }
    }
}

/* ---- elementwise ---------------------------------------------------------------------- */

NSSM_HOT void nssm_silu_forward(real *out, const real *inp, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = inp[i] / (1 + nssm_exp(-inp[i]));
}

void nssm_silu_backward(real *dinp, const real *dout, const real *inp, size_t n)
{
    /* d/dx x s(x) = s (1 + x (1 - s)) */
    for (size_t i = 0; i < n; i++) {
        real s = 1 / (1 + nssm_exp(-inp[i]));
        dinp[i] += dout[i] * s * (1 + inp[i] * (1 - s));
    }
}

void nssm_glu_forward(real *out, const real *a, const real *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] / (1 + nssm_exp(-b[i]));
}

void nssm_glu_backward(real *da, real *db, const real *dout, const real *a, const real *b,
                       size_t n)
{
    for (size_t i = 0; i < n; i++) {
        real s = 1 / (1 + nssm_exp(-b[i]));
        da[i] += dout[i] * s;
        db[i] += dout[i] * a[i] * s * (1 - s);
    }
}

NSSM_HOT void nssm_softplus_forward(real *out, const real *inp, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = nssm_softplus(inp[i]);
}

void nssm_softplus_backward(real *dinp, const real *dout, const real *inp, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dinp[i] += inp[i] > 20 ? dout[i] : dout[i] / (1 + nssm_exp(-inp[i]));
}

void nssm_negexp_forward(real *out, const real *inp, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = -real_exp(inp[i]);
}

/* d/dx (-e^x) = -e^x: the forward's own output */
void nssm_negexp_backward(real *dinp, const real *dout, const real *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dinp[i] += dout[i] * out[i];
}

void nssm_residual_forward(real *out, const real *a, const real *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void nssm_residual_backward(real *da, real *db, const real *dout, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

void nssm_quantile_head_forward(real *q_out, const real *raw_in, size_t rows, int Q, int mid)
{
    for (size_t r = 0; r < rows; r++) {
        const real *raw = raw_in + r * Q;
        real *q = q_out + r * Q;
        q[mid] = raw[mid];
        for (int j = mid + 1; j < Q; j++)
            q[j] = q[j - 1] + nssm_softplus(raw[j]);
        for (int j = mid - 1; j >= 0; j--)
            q[j] = q[j + 1] - nssm_softplus(raw[j]);
    }
}

double nssm_pinball_backward(real *draw, const real *raw, const real *q, const real *tgt,
                             const double *taus, int B, int P, int H, int Q, int L, int mid,
                             double scale)
{
    const int t0 = L - P;
    double total = 0;
    for (int b = 0; b < B; b++)
        for (int pp = 0; pp < P; pp++)
            for (int h = 0; h < H; h++) {
                const size_t r = (((size_t)b * P + pp) * H + h) * Q;
                const double y = tgt[(size_t)b * (L + H) + t0 + pp + 1 + h];
                real *d = draw ? draw + r : NULL;
                if (isnan(y)) {
                    if (d)
                        memset(d, 0, sizeof(real) * Q);
                    continue;
                }
                for (int j = 0; j < Q; j++) {
                    double tau = taus[j], u = y - q[r + j];
                    double ind = u < 0 ? 1 : 0;
                    total += u * (tau - ind);
                    if (d)
                        d[j] = (real)(-(tau - ind) * scale);
                }
                if (!d)
                    continue;
                /* dL/dq into dL/draw in place: above mid every q_k, k >= j, depends on
                 * raw_j with slope sigmoid(raw_j); below mid the same with a minus sign */
                const real *rw = raw + r;
                real up = 0, down = 0;
                for (int j = Q - 1; j > mid; j--) {
                    up += d[j];
                    d[j] = up / (1 + real_exp(-rw[j]));
                }
                for (int j = 0; j < mid; j++) {
                    down += d[j];
                    d[j] = -down / (1 + real_exp(-rw[j]));
                }
                d[mid] += up + down;
            }
    return total * scale;
}
