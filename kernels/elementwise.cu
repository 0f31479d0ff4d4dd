/*
 * kernels/elementwise.cu — the small fused layers around the mixers, each the mirror of its
 * nssm_ CPU function: RMSNorm forward/backward (one warp per row), SiLU, the GLU gate, the
 * residual add, negexp, an AdamW update, a sum of squares for gradient clipping, and the helpers
 * the rest of the library needs (fill, bf16 conversion, bias broadcast and column sums for
 * Linear). All float32, all memory-bound: one pass over each array, grid-stride loops.
 * Backward functions accumulate (+=) into their gradients, as neural_ssm/ does; SiLU's
 * and Conv1d's take `accumulate` and with 0 write dinp instead (no zero-fill
 * and read-back of a fresh gradient buffer).
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "internal.h"

namespace {

constexpr int THREADS = 256;

int blocks_for(size_t n)
{
    size_t b = (n + THREADS - 1) / THREADS;
    return (int)(b > 65535u * 8u ? 65535u * 8u : (b ? b : 1));
}

__device__ __forceinline__ float sigmoid_(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__global__ void fill_kernel(float *p, float v, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = v;
}

__global__ void f32_to_bf16_kernel(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __bfloat16_as_ushort(__float2bfloat16_rn(src[i]));
}

__global__ void bf16_to_f32_kernel(float *dst, const uint16_t *src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __uint_as_float(((unsigned)src[i]) << 16);
}

/* inp, out (BT, C); one warp per row. */
__global__ void rmsnorm_forward_kernel(float *out, float *rstd, const float *inp, const float *w,
                                       int BT, int C, float eps)
{
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= BT)
        return;
    const float *x = inp + (size_t)row * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32)
        ss += x[c] * x[c];
    ss = warp_sum(ss);
    const float r = rsqrtf(ss / C + eps);
    float *o = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32)
        o[c] = x[c] * r * w[c];
    if (lane == 0 && rstd)
        rstd[row] = r;
}

/* forward: out_i = x_i r w_i with r = (mean(x^2) + eps)^(-1/2), so
 *   dx_j = r w_j dout_j - r^3 x_j / C * sum_i dout_i w_i x_i,   dw_i += dout_i x_i r.
 * A block takes ROWS rows; dw is summed in shared memory, then added once per block. */
constexpr int RMS_ROWS = 64;
__global__ void rmsnorm_backward_kernel(float *dinp, float *dw, const float *dout,
                                        const float *inp, const float *w, const float *rstd,
                                        int BT, int C)
{
    extern __shared__ float dw_s[];
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        dw_s[c] = 0.0f;
    __syncthreads();
    const int lane = threadIdx.x & 31, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    const int row0 = blockIdx.x * RMS_ROWS;
    for (int row = row0 + warp; row < min(row0 + RMS_ROWS, BT); row += nw) {
        const float *x = inp + (size_t)row * C, *go = dout + (size_t)row * C;
        const float r = rstd[row];
        float dot = 0.0f;
        for (int c = lane; c < C; c += 32)
            dot += go[c] * w[c] * x[c];
        dot = warp_sum(dot);
        float *gx = dinp + (size_t)row * C;
        const float k = r * r * r * dot / C;
        for (int c = lane; c < C; c += 32) {
            gx[c] += r * w[c] * go[c] - k * x[c];
            atomicAdd(&dw_s[c], go[c] * x[c] * r);
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        atomicAdd(&dw[c], dw_s[c]);
}

__global__ void silu_forward_kernel(float *out, const float *inp, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float x = inp[i];
        out[i] = x * sigmoid_(x);
    }
}

/* d/dx x s(x) = s (1 + x (1 - s)) */
__global__ void silu_backward_kernel(float *dinp, const float *dout, const float *inp, size_t n,
                                     int accumulate)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float x = inp[i], s = sigmoid_(x);
        const float v = dout[i] * s * (1.0f + x * (1.0f - s));
        dinp[i] = accumulate ? dinp[i] + v : v;
    }
}

__global__ void glu_forward_kernel(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] * sigmoid_(b[i]);
}

__global__ void glu_backward_kernel(float *da, float *db, const float *dout, const float *a,
                                    const float *b, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float s = sigmoid_(b[i]), g = dout[i];
        da[i] += g * s;
        db[i] += g * a[i] * s * (1.0f - s);
    }
}

__global__ void negexp_forward_kernel(float *out, const float *inp, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = -expf(inp[i]);
}

__global__ void negexp_backward_kernel(float *dinp, const float *dout, const float *out, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dinp[i] += dout[i] * out[i];
}

__global__ void residual_forward_kernel(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

__global__ void residual_backward_kernel(float *da, float *db, const float *dout, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float g = dout[i];
        da[i] += g;
        db[i] += g;
    }
}

__global__ void adamw_kernel(float *p, const float *grad, float *m, float *v, size_t n, float lr,
                             float b1, float b2, float eps, float wd, float bc1, float bc2,
                             float scale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float g = grad[i] * scale;
        const float mi = b1 * m[i] + (1.0f - b1) * g;
        const float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const float mhat = mi / bc1, vhat = vi / bc2;
        p[i] -= lr * (wd * p[i] + mhat / (sqrtf(vhat) + eps));
    }
}

/* Adds the sum of every thread's s over the block to *out (one atomic a block). Every
 * thread of the block (THREADS of them) must call it. */
__device__ void block_sum_add(double *out, double s)
{
    __shared__ double part[THREADS / 32];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    if ((threadIdx.x & 31) == 0)
        part[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int k = 0; k < (int)(blockDim.x / 32); k++)
            t += part[k];
        atomicAdd(out, t);
    }
}

__global__ void sumsq_kernel(double *out, const float *x, size_t n)
{
    double s = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        s += (double)x[i] * x[i];
    block_sum_add(out, s);
}

/* The forecaster's quantile head, one thread a row of Q (<= 32) values. */
__device__ __forceinline__ float softplus_(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

__global__ void quantile_head_kernel(float *q, const float *raw, size_t rows, int Q, int mid)
{
    for (size_t r = blockIdx.x * (size_t)blockDim.x + threadIdx.x; r < rows; r += (size_t)gridDim.x * blockDim.x) {
        const float *rw = raw + r * Q;
        float *qr = q + r * Q;
        float v = rw[mid];
        qr[mid] = v;
        for (int j = mid + 1; j < Q; j++)
            qr[j] = v = v + softplus_(rw[j]);
        v = qr[mid];
        for (int j = mid - 1; j >= 0; j--)
            qr[j] = v = v - softplus_(rw[j]);
    }
}

struct quantile_levels {
    float tau[KERN_MAX_QUANTILES];
};

/* Pinball loss and dL/draw, one thread a (b, position, step) row: the row's loss in double,
 * summed per block and added to *loss; the gradient through the head's transform as the
 * CPU's nssm_pinball_backward. */
__global__ void pinball_kernel(float *draw, double *loss, const float *raw, const float *q,
                               const float *tgt, quantile_levels lv, int B, int P, int H, int Q,
                               int L, int mid, float scale)
{
    const size_t rows = (size_t)B * P * H;
    double s = 0.0;
    for (size_t r = blockIdx.x * (size_t)blockDim.x + threadIdx.x; r < rows; r += (size_t)gridDim.x * blockDim.x) {
        const int h = (int)(r % H), pp = (int)((r / H) % P), b = (int)(r / ((size_t)H * P));
        const float y = tgt[(size_t)b * (L + H) + (L - P) + pp + 1 + h];
        const float *qr = q + r * Q, *rw = raw + r * Q;
        float d[KERN_MAX_QUANTILES];
        const bool ok = !isnan(y);
        for (int j = 0; j < Q; j++) {
            const float u = y - qr[j], ind = u < 0.0f ? 1.0f : 0.0f;
            if (ok)
                s += (double)u * (double)(lv.tau[j] - ind);
            d[j] = ok ? -(lv.tau[j] - ind) * scale : 0.0f;
        }
        if (!draw)
            continue;
        float *dr = draw + r * Q, up = 0.0f, down = 0.0f;
        for (int j = Q - 1; j > mid; j--) {
            up += d[j];
            dr[j] = up * sigmoid_(rw[j]);
        }
        for (int j = 0; j < mid; j++) {
            down += d[j];
            dr[j] = -down * sigmoid_(rw[j]);
        }
        dr[mid] = d[mid] + (up + down);
    }
    block_sum_add(loss, s);
}

__global__ void bias_broadcast_kernel(float *out, const float *bias, int rows, int cols)
{
    const size_t n = (size_t)rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = bias[i % cols];
}

/* block (32, 8): 32 columns, each thread sums every 8th row of a 256-row slab. */
__global__ void colsum_add_kernel(float *dbias, const float *dout, int rows, int cols)
{
    __shared__ float part[8][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    const int r0 = blockIdx.y * 256;
    float s = 0.0f;
    if (c < cols)
        for (int r = r0 + threadIdx.y; r < min(r0 + 256, rows); r += 8)
            s += dout[(size_t)r * cols + c];
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float t = 0.0f;
        for (int k = 0; k < 8; k++)
            t += part[k][threadIdx.x];
        atomicAdd(&dbias[c], t);
    }
}

/* Causal depthwise Conv1d. A block owns one sequence b, 32 channels and a segment of up to
 * CONV_SEG tiles of CONV_TT steps, which it walks in order: the tile's rows and the K-1
 * before it go through shared memory once (each row 32 consecutive channels, one 128-byte
 * line), so every input is read from device memory about once instead of K times, and no
 * thread divides a 64-bit index. Threads (32, CONV_TY): x the channel, y every CONV_TY-th
 * row of the tile. Blocks are numbered ((b * nseg + segment) * ncg + channel group). */
constexpr int CONV_TT = 64, CONV_TY = 8, CONV_SEG = 8;
/* The kernels take K at run time up to a bound KM fixed at compile time (the weights and
 * the backward's K + 1 sums live in registers): KM = 4 for Mamba's usual width, 16 else. */

struct conv_block {
    int b, c0, t_begin, t_end; /* sequence, first channel, steps [t_begin, t_end) */
};

__device__ __forceinline__ conv_block conv_block_of(int L, int C)
{
    const int ncg = (C + 31) / 32, seg_len = CONV_TT * CONV_SEG;
    const int nseg = (L + seg_len - 1) / seg_len;
    const int cg = blockIdx.x % ncg, rest = blockIdx.x / ncg;
    conv_block k;
    k.b = rest / nseg;
    k.c0 = cg * 32;
    k.t_begin = (rest % nseg) * seg_len;
    k.t_end = min(L, k.t_begin + seg_len);
    return k;
}

/* the grid of the Conv1d kernels (callers check it fits an int) */
long long conv_blocks(int B, int L, int C)
{
    const int seg_len = CONV_TT * CONV_SEG;
    return (long long)B * ((L + seg_len - 1) / seg_len) * ((C + 31) / 32);
}

/* rows [t0 - K + 1, t0 + CONV_TT) of src (B, L, C) for channels c0.., zero outside
 * [0, L) and past C, into tile[row][32]. With pre != NULL, src is the gradient of
 * silu(pre) and the tile gets the gradient of pre, src * silu'(pre), as silu_backward. */
template <int KM>
__device__ __forceinline__ void conv_load_tile(float (*tile)[32], const float *src,
                                               const float *pre, int b, int t0, int L, int C,
                                               int c0, int K)
{
    /* unrolled to the bound KM, so that all of a thread's loads are in flight before the
     * first is used (with pre, a rolled loop waited on two loads a row: 2x the time) */
    constexpr int J = (CONV_TT + KM - 1 + CONV_TY - 1) / CONV_TY;
    const int c = c0 + threadIdx.x;
    float v[J], x[J];
#pragma unroll
    for (int j = 0; j < J; j++) {
        const int r = threadIdx.y + j * CONV_TY, t = t0 - K + 1 + r;
        const bool in = r < CONV_TT + K - 1 && t >= 0 && t < L && c < C;
        const size_t i = ((size_t)b * L + t) * C + c;
        v[j] = in ? src[i] : 0.0f;
        x[j] = in && pre ? pre[i] : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < J; j++) {
        const int r = threadIdx.y + j * CONV_TY;
        if (pre) {
            const float sg = sigmoid_(x[j]);
            v[j] *= sg * (1.0f + x[j] * (1.0f - sg));
        }
        if (r < CONV_TT + K - 1)
            tile[r][threadIdx.x] = v[j];
    }
}

/* out[b,t,c] = bias[c] + sum_k w[c,k] inp[b, t-K+1+k, c]; act = silu(out) when not NULL
 * (Mamba's conv is always followed by SiLU: one pass instead of a second over out) */
template <int KM>
__global__ void conv1d_forward_kernel(float *out, float *act, const float *inp, const float *w,
                                      const float *bias, int L, int C, int K)
{
    __shared__ float tile[CONV_TT + KM - 1][32];
    const conv_block cb = conv_block_of(L, C);
    const int b = cb.b, c = cb.c0 + threadIdx.x;
    float wk[KM];
#pragma unroll
    for (int k = 0; k < KM; k++)
        wk[k] = (k < K && c < C) ? w[c * K + k] : 0.0f;
    const float b0 = (bias && c < C) ? bias[c] : 0.0f;
    for (int t0 = cb.t_begin; t0 < cb.t_end; t0 += CONV_TT) {
        __syncthreads(); /* the previous tile is read */
        conv_load_tile<KM>(tile, inp, nullptr, b, t0, L, C, cb.c0, K);
        __syncthreads();
        for (int r = threadIdx.y; r < CONV_TT && t0 + r < cb.t_end; r += CONV_TY) {
            float acc = b0;
#pragma unroll
            for (int k = 0; k < KM; k++)
                if (k < K)
                    acc += wk[k] * tile[r + k][threadIdx.x]; /* row r + k is step t-K+1+k */
            if (c < C) {
                const size_t i = ((size_t)b * L + t0 + r) * C + c;
                out[i] = acc;
                if (act) /* after out: act may be out itself (inference, in place) */
                    act[i] = acc * sigmoid_(acc);
            }
        }
    }
}

/* The backward, both halves in one pass over dout and inp (forward: out[t] += w[k]
 * inp[t-K+1+k]):
 *   dinp[s] += sum_k w[k] dout[s+K-1-k]           (dinp may be NULL; = with accumulate 0)
 *   dw[k]   += sum_{b,t} dout[t] inp[t-K+1+k],  dbias += sum_{b,t} dout[t]
 * With pre != NULL, dout is the gradient of silu(pre) (pre = the forward's out) and the
 * SiLU's backward is applied as dout's tile is loaded (no dout-of-the-conv array at all).
 * dout's tile runs K-1 rows past the tile's end, inp's K-1 rows before its start. The
 * weight sums stay in registers over the whole sequence, meet across the block's CONV_TY
 * rows in shared memory and go to dw with one atomic per (channel, tap) and block. */
template <int KM>
__global__ void conv1d_backward_kernel(float *dinp, float *dw, float *dbias, const float *dout,
                                       const float *pre, const float *inp, const float *w,
                                       int L, int C, int K, int accumulate)
{
    __shared__ float tin[CONV_TT + KM - 1][32];
    __shared__ float tdo[CONV_TT + KM - 1][32];
    const conv_block cb = conv_block_of(L, C);
    const int b = cb.b, c = cb.c0 + threadIdx.x;
    float wk[KM], acc[KM + 1];
#pragma unroll
    for (int k = 0; k < KM; k++) {
        wk[k] = (k < K && c < C) ? w[c * K + k] : 0.0f;
        acc[k] = 0.0f;
    }
    acc[KM] = 0.0f;
    for (int t0 = cb.t_begin; t0 < cb.t_end; t0 += CONV_TT) {
        __syncthreads();
        conv_load_tile<KM>(tin, inp, nullptr, b, t0, L, C, cb.c0, K);
        /* dout rows [t0, t0 + CONV_TT + K - 1): the same loader shifted by K - 1 */
        conv_load_tile<KM>(tdo, dout, pre, b, t0 + K - 1, L, C, cb.c0, K);
        __syncthreads();
        for (int r = threadIdx.y; r < CONV_TT && t0 + r < cb.t_end; r += CONV_TY) {
            /* step t = t0 + r: tdo[r] is dout[t], tin[r + k] is inp[t-K+1+k] */
            const float g = tdo[r][threadIdx.x];
            float di = 0.0f;
            acc[KM] += g;
#pragma unroll
            for (int k = 0; k < KM; k++)
                if (k < K) {
                    acc[k] += g * tin[r + k][threadIdx.x];
                    di += wk[k] * tdo[r + K - 1 - k][threadIdx.x]; /* dout[t+K-1-k] */
                }
            if (dinp && c < C) {
                float *p = dinp + ((size_t)b * L + t0 + r) * C + c;
                *p = accumulate ? *p + di : di;
            }
        }
    }
    __syncthreads();
    float (*part)[32] = tin; /* CONV_TY rows per tap: (K+1) * CONV_TY <= CONV_TT + K - 1 */
    for (int k = 0; k <= K; k += CONV_TT / CONV_TY - 1) {
        /* taps k .. k+6 at a time, so the partial sums fit in the tile */
        const int kn = min(K + 1 - k, CONV_TT / CONV_TY - 1);
#pragma unroll
        for (int j = 0; j < KM + 1; j++) {
            const int kk = j == KM ? K : j < K ? j : -1; /* acc[KM]: the bias, "tap K" */
            if (kk >= k && kk < k + kn)
                part[(kk - k) * CONV_TY + threadIdx.y][threadIdx.x] = acc[j];
        }
        __syncthreads();
        if (threadIdx.y < kn && c < C) {
            float s = 0.0f;
            for (int y = 0; y < CONV_TY; y++)
                s += part[threadIdx.y * CONV_TY + y][threadIdx.x];
            const int kk = k + threadIdx.y;
            if (kk < K)
                atomicAdd(&dw[c * K + kk], s);
            else if (dbias)
                atomicAdd(&dbias[c], s);
        }
        __syncthreads();
    }
}

int need(kern_error *err, const char *fn, bool ok)
{
    if (ok)
        return KERN_OK;
    return kern_err_set(err, KERN_EINVAL, "%s: a required pointer is NULL or a size is negative", fn);
}

} // namespace

#define GRID_STRIDE(kernel, n, ...)                                                          \
    do {                                                                                     \
        if ((n) == 0)                                                                        \
            return KERN_OK;                                                                  \
        kernel<<<blocks_for(n), THREADS, 0, ctx->stream>>>(__VA_ARGS__);                     \
        KERN_LAUNCHED(#kernel, err);                                                         \
        return KERN_OK;                                                                      \
    } while (0)

extern "C" int kern_fill(kern_ctx *ctx, float *p, float v, size_t n, kern_error *err)
{
    if (int rc = need(err, "kern_fill", ctx && p))
        return rc;
    GRID_STRIDE(fill_kernel, n, p, v, n);
}

extern "C" int kern_f32_to_bf16(kern_ctx *ctx, uint16_t *dst, const float *src, size_t n,
                                kern_error *err)
{
    if (int rc = need(err, "kern_f32_to_bf16", ctx && dst && src))
        return rc;
    GRID_STRIDE(f32_to_bf16_kernel, n, dst, src, n);
}

extern "C" int kern_bf16_to_f32(kern_ctx *ctx, float *dst, const uint16_t *src, size_t n,
                                kern_error *err)
{
    if (int rc = need(err, "kern_bf16_to_f32", ctx && dst && src))
        return rc;
    GRID_STRIDE(bf16_to_f32_kernel, n, dst, src, n);
}

extern "C" int kern_conv1d_forward(kern_ctx *ctx, float *out, float *act, const float *inp,
                                   const float *w, const float *bias, int B, int L, int C, int K,
                                   kern_error *err)
{
    if (int rc = need(err, "kern_conv1d_forward", ctx && out && inp && w && B >= 0 && L >= 0 &&
                                                      C > 0 && K > 0 && K <= 16))
        return rc;
    if ((size_t)B * L == 0)
        return KERN_OK;
    const long long nb = conv_blocks(B, L, C);
    if (nb > INT32_MAX)
        return kern_err_set(err, KERN_EINVAL, "kern_conv1d_forward: %d x %d x %d is too large", B, L, C);
    const dim3 block(32, CONV_TY);
    if (K <= 4)
        conv1d_forward_kernel<4><<<(unsigned)nb, block, 0, ctx->stream>>>(out, act, inp, w, bias, L, C, K);
    else
        conv1d_forward_kernel<16><<<(unsigned)nb, block, 0, ctx->stream>>>(out, act, inp, w, bias, L, C, K);
    KERN_LAUNCHED("conv1d_forward_kernel", err);
    return KERN_OK;
}

extern "C" int kern_conv1d_backward(kern_ctx *ctx, int accumulate, float *dinp, float *dw,
                                    float *dbias, const float *dout, const float *pre,
                                    const float *inp, const float *w, int B, int L, int C, int K,
                                    kern_error *err)
{
    if (int rc = need(err, "kern_conv1d_backward", ctx && dw && dout && inp && w && B >= 0 &&
                                                       L >= 0 && C > 0 && K > 0 && K <= 16))
        return rc;
    if ((size_t)B * L == 0)
        return KERN_OK;
    const long long nb = conv_blocks(B, L, C);
    if (nb > INT32_MAX)
        return kern_err_set(err, KERN_EINVAL, "kern_conv1d_backward: %d x %d x %d is too large", B, L, C);
    const dim3 block(32, CONV_TY);
    if (K <= 4)
        conv1d_backward_kernel<4><<<(unsigned)nb, block, 0, ctx->stream>>>(dinp, dw, dbias, dout, pre, inp, w, L, C, K, accumulate);
    else
        conv1d_backward_kernel<16><<<(unsigned)nb, block, 0, ctx->stream>>>(dinp, dw, dbias, dout, pre, inp, w, L, C, K, accumulate);
    KERN_LAUNCHED("conv1d_backward_kernel", err);
    return KERN_OK;
}

extern "C" int kern_rmsnorm_forward(kern_ctx *ctx, float *out, float *rstd, const float *inp,
                                    const float *w, int BT, int C, float eps, kern_error *err)
{
    if (int rc = need(err, "kern_rmsnorm_forward", ctx && out && inp && w && BT >= 0 && C > 0))
        return rc;
    if (BT == 0)
        return KERN_OK;
    const int rows_per_block = THREADS / 32;
    rmsnorm_forward_kernel<<<(BT + rows_per_block - 1) / rows_per_block, THREADS, 0, ctx->stream>>>(
        out, rstd, inp, w, BT, C, eps);
    KERN_LAUNCHED("rmsnorm_forward_kernel", err);
    return KERN_OK;
}

extern "C" int kern_rmsnorm_backward(kern_ctx *ctx, float *dinp, float *dw, const float *dout,
                                     const float *inp, const float *w, const float *rstd, int BT,
                                     int C, kern_error *err)
{
    if (int rc = need(err, "kern_rmsnorm_backward",
                      ctx && dinp && dw && dout && inp && w && rstd && BT >= 0 && C > 0))
        return rc;
    if (BT == 0)
        return KERN_OK;
    const size_t smem = (size_t)C * sizeof(float);
    if (smem > ctx->smem_optin)
        return kern_err_set(err, KERN_EINVAL, "kern_rmsnorm_backward: %d channels is too many", C);
    if (smem > 48 * 1024)
        KERN_CUDA(cudaFuncSetAttribute(rmsnorm_backward_kernel,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                  err);
    rmsnorm_backward_kernel<<<(BT + RMS_ROWS - 1) / RMS_ROWS, THREADS, smem, ctx->stream>>>(
        dinp, dw, dout, inp, w, rstd, BT, C);
    KERN_LAUNCHED("rmsnorm_backward_kernel", err);
    return KERN_OK;
}

extern "C" int kern_silu_forward(kern_ctx *ctx, float *out, const float *inp, size_t n,
                                 kern_error *err)
{
    if (int rc = need(err, "kern_silu_forward", ctx && out && inp))
        return rc;
    GRID_STRIDE(silu_forward_kernel, n, out, inp, n);
}

extern "C" int kern_glu_forward(kern_ctx *ctx, float *out, const float *a, const float *b,
                                size_t n, kern_error *err)
{
    if (int rc = need(err, "kern_glu_forward", ctx && out && a && b))
        return rc;
    GRID_STRIDE(glu_forward_kernel, n, out, a, b, n);
}

extern "C" int kern_glu_backward(kern_ctx *ctx, float *da, float *db, const float *dout,
                                 const float *a, const float *b, size_t n, kern_error *err)
{
    if (int rc = need(err, "kern_glu_backward", ctx && da && db && dout && a && b))
        return rc;
    GRID_STRIDE(glu_backward_kernel, n, da, db, dout, a, b, n);
}

extern "C" int kern_silu_backward(kern_ctx *ctx, int accumulate, float *dinp, const float *dout,
                                  const float *inp, size_t n, kern_error *err)
{
    if (int rc = need(err, "kern_silu_backward", ctx && dinp && dout && inp))
        return rc;
    GRID_STRIDE(silu_backward_kernel, n, dinp, dout, inp, n, accumulate);
}

extern "C" int kern_negexp_forward(kern_ctx *ctx, float *out, const float *inp, size_t n,
                                   kern_error *err)
{
    if (int rc = need(err, "kern_negexp_forward", ctx && out && inp))
        return rc;
    GRID_STRIDE(negexp_forward_kernel, n, out, inp, n);
}

extern "C" int kern_negexp_backward(kern_ctx *ctx, float *dinp, const float *dout,
                                    const float *out, size_t n, kern_error *err)
{
    if (int rc = need(err, "kern_negexp_backward", ctx && dinp && dout && out))
        return rc;
    GRID_STRIDE(negexp_backward_kernel, n, dinp, dout, out, n);
}

extern "C" int kern_residual_forward(kern_ctx *ctx, float *out, const float *a, const float *b,
                                     size_t n, kern_error *err)
{
    if (int rc = need(err, "kern_residual_forward", ctx && out && a && b))
        return rc;
    GRID_STRIDE(residual_forward_kernel, n, out, a, b, n);
}

extern "C" int kern_residual_backward(kern_ctx *ctx, float *da, float *db, const float *dout,
                                      size_t n, kern_error *err)
{
    if (int rc = need(err, "kern_residual_backward", ctx && da && db && dout))
        return rc;
    GRID_STRIDE(residual_backward_kernel, n, da, db, dout, n);
}

extern "C" int kern_adamw_update(kern_ctx *ctx, float *p, const float *grad, float *m, float *v,
                                 size_t n, float lr, float beta1, float beta2, float eps,
                                 float weight_decay, int t, float grad_scale, kern_error *err)
{
    if (int rc = need(err, "kern_adamw_update", ctx && p && grad && m && v))
        return rc;
    if (t < 1)
        return kern_err_set(err, KERN_EINVAL, "kern_adamw_update: step %d is not positive", t);
    const float bc1 = (float)(1.0 - pow((double)beta1, t));
    const float bc2 = (float)(1.0 - pow((double)beta2, t));
    GRID_STRIDE(adamw_kernel, n, p, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, bc1, bc2,
                grad_scale);
}

extern "C" int kern_sumsq(kern_ctx *ctx, double *out, const float *x, size_t n, kern_error *err)
{
    if (int rc = need(err, "kern_sumsq", ctx && out && x))
        return rc;
    double *acc;
    int rc = kern_workspace(ctx, sizeof(double), (void **)&acc, err);
    if (rc)
        return rc;
    KERN_CUDA(cudaMemsetAsync(acc, 0, sizeof(double), ctx->stream), err);
    if (n) {
        const int blocks = blocks_for(n) < 1024 ? blocks_for(n) : 1024;
        sumsq_kernel<<<blocks, THREADS, 0, ctx->stream>>>(acc, x, n);
        KERN_LAUNCHED("sumsq_kernel", err);
    }
    return kern_download(ctx, out, acc, sizeof(double), err);
}

extern "C" int kern_quantile_head_forward(kern_ctx *ctx, float *q, const float *raw,
                                          size_t rows, int Q, int mid, kern_error *err)
{
    if (int rc = need(err, "kern_quantile_head_forward",
                      ctx && q && raw && Q >= 1 && Q <= KERN_MAX_QUANTILES && mid >= 0 && mid < Q))
        return rc;
    GRID_STRIDE(quantile_head_kernel, rows, q, raw, rows, Q, mid);
}

extern "C" int kern_pinball_backward(kern_ctx *ctx, float *draw, double *loss, const float *raw,
                                     const float *q, const float *tgt, const double *taus, int B,
                                     int P, int H, int Q, int L, int mid, double scale,
                                     kern_error *err)
{
    if (int rc = need(err, "kern_pinball_backward",
                      ctx && loss && raw && q && tgt && taus && B >= 0 && P >= 1 && P <= L &&
                          H >= 1 && Q >= 1 && Q <= KERN_MAX_QUANTILES && mid >= 0 && mid < Q))
        return rc;
    quantile_levels lv;
    for (int j = 0; j < Q; j++)
        lv.tau[j] = (float)taus[j];
    double *acc;
    int rc = kern_workspace(ctx, sizeof(double), (void **)&acc, err);
    if (rc)
        return rc;
    KERN_CUDA(cudaMemsetAsync(acc, 0, sizeof(double), ctx->stream), err);
    const size_t rows = (size_t)B * P * H;
    if (rows) {
        pinball_kernel<<<blocks_for(rows), THREADS, 0, ctx->stream>>>(draw, acc, raw, q, tgt, lv, B, P,
                                                                      H, Q, L, mid, (float)scale);
        KERN_LAUNCHED("pinball_kernel", err);
    }
    double total;
    if ((rc = kern_download(ctx, &total, acc, sizeof(double), err)))
        return rc;
    *loss = total * scale;
    return KERN_OK;
}

extern "C" int kern_bias_broadcast(kern_ctx *ctx, float *out, const float *bias, int rows,
                                   int cols, kern_error *err)
{
    const size_t n = (size_t)rows * cols;
    GRID_STRIDE(bias_broadcast_kernel, n, out, bias, rows, cols);
}

extern "C" int kern_colsum_add(kern_ctx *ctx, float *dbias, const float *dout, int rows, int cols,
                               kern_error *err)
{
    if (rows <= 0 || cols <= 0)
        return KERN_OK;
    const dim3 grid((cols + 31) / 32, (rows + 255) / 256), block(32, 8);
    colsum_add_kernel<<<grid, block, 0, ctx->stream>>>(dbias, dout, rows, cols);
    KERN_LAUNCHED("colsum_add_kernel", err);
    return KERN_OK;
}
