/*
 * kernels/kernels.h — the CUDA kernels of ssmd behind a small plain-C interface.
 *
 * This is the GPU mirror of neural_ssm/'s CPU reference: the Mamba selective scan
 * (forward and backward, dt's bias and softplus fused in), the S4D convolution kernel
 * (Vandermonde generation and its causal application, forward and backward), fused
 * elementwise layers (RMSNorm, SiLU, residual add, an AdamW update) and matrix products
 * through cuBLAS. It is not a
 * tensor library: every function takes raw DEVICE pointers and explicit sizes, the shapes
 * are those of neural_ssm/neural_ssm.h, and the semantics match the CPU functions there
 * (llm.c style: backward functions ACCUMULATE into gradients unless a function says
 * otherwise). The library is compiled only when CUDA is available (SSMD_HAVE_CUDA).
 *
 * Work is queued on the context's stream and is asynchronous: a function returns once its
 * launches are queued and checked. kern_sync() waits and reports errors that happened on
 * the device. Functions never print, exit or abort: they return 0 or a negative KERN_E*
 * code (the same numbers as SSM_E* / NSSM_E* where they overlap) and fill a kern_error
 * in PostgreSQL's style. No global mutable state: one kern_ctx per thread of work.
 */
#ifndef KERN_KERNELS_H
#define KERN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------------------- */

enum {
    KERN_OK = 0,
    KERN_EINVAL = -1,       /* bad argument: shape, NULL pointer, misaligned pointer */
    KERN_ENOMEM = -2,       /* host or device allocation failed */
    KERN_ENODEVICE = -6,    /* no usable CUDA device (same value as SSM_EUNSUPPORTED) */
    KERN_ECUDA = -8         /* the CUDA runtime or cuBLAS reported an error */
};

typedef struct kern_error {
    int code;
    char message[256];
    char detail[512];
    char hint[256];
} kern_error;

/* ---- context, memory, streams ------------------------------------------------------- */

typedef struct kern_ctx kern_ctx;

/* Number of CUDA devices (0 when there is none or no driver). Never fails. */
int kern_device_count(void);
/* Creates a context on `device`: a stream, a cuBLAS handle, the device's properties. */
int kern_ctx_create(kern_ctx **out, int device, kern_error *err);
void kern_ctx_destroy(kern_ctx *ctx);
const char *kern_ctx_device_name(const kern_ctx *ctx);
int kern_ctx_sm_count(const kern_ctx *ctx);
/* The stream everything is queued on (a cudaStream_t, as void * to keep this header
 * free of CUDA's). */
void *kern_ctx_stream(kern_ctx *ctx);
/* Waits for the queued work; reports asynchronous device errors. */
int kern_sync(kern_ctx *ctx, kern_error *err);

int kern_alloc(kern_ctx *ctx, void **p, size_t bytes, kern_error *err);
void kern_free(kern_ctx *ctx, void *p);
int kern_upload(kern_ctx *ctx, void *dst, const void *src, size_t bytes, kern_error *err);
int kern_download(kern_ctx *ctx, void *dst, const void *src, size_t bytes, kern_error *err);
int kern_zero(kern_ctx *ctx, void *p, size_t bytes, kern_error *err);
/* rows rows of width bytes from src (row pitch spitch bytes) to dst (pitch dpitch). */
int kern_copy_rows(kern_ctx *ctx, void *dst, size_t dpitch, const void *src, size_t spitch,
                   size_t width, size_t rows, kern_error *err);
/* Sets n floats to v (NaN to poison outputs in tests). */
int kern_fill(kern_ctx *ctx, float *p, float v, size_t n, kern_error *err);

/* Element types of the activations in the scan. bf16 is stored as uint16_t (the top
 * half of a float32, round-to-nearest-even); arithmetic and states are always float32. */
typedef enum kern_dtype { KERN_F32 = 0, KERN_BF16 = 1 } kern_dtype;
size_t kern_dtype_size(kern_dtype dt);
int kern_f32_to_bf16(kern_ctx *ctx, uint16_t *dst, const float *src, size_t n,
                     kern_error *err);
int kern_bf16_to_f32(kern_ctx *ctx, float *dst, const uint16_t *src, size_t n,
                     kern_error *err);

/* ---- selective scan (Mamba) -----------------------------------------------------------
 * The contract of nssm_selective_scan_forward/backward (neural_ssm/neural_ssm.h):
 *   u, delta, z, y (B, L, D); A (D, N) real negative; Bm, Cm (B, L, N); Dskip (D)
 *   h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,  y_t = C_t . h_t + Dskip u_t,
 *   y_t *= silu(z_t) when z != NULL.
 * u, delta, Bm, Cm, z, y, dy, du, ddelta, dz are of type `dt`; A, Dskip and the
 * parameter gradients are float32; dBm and dCm are float32 (B, L, N) whatever `dt` is
 * (they are sums over D made with atomics). Bm, Cm (and dBm, dCm) must be 16-byte
 * aligned. Forward: N <= KERN_SCAN_MAX_STATE; backward: N a multiple of 4 and at most 64;
 * bf16: D and N even. Other shapes fail with KERN_EINVAL and a message.
 *
 * hchk (optional in the forward, B * ceil(L/KERN_SCAN_CHUNK) * N * D floats, see
 * kern_scan_hchk_floats): the state just before each chunk, in this library's own layout
 * (B, NC, N, D). The backward recomputes the states of one chunk at a time from it; when
 * hchk is NULL the backward first reruns the forward recurrence itself (more traffic).
 *
 * The backward OVERWRITES every gradient when accumulate == 0 and adds into every
 * gradient when accumulate != 0 (the nssm_ convention). dz is ignored when z == NULL.
 *
 * act (optional, as nssm_delta_act): delta is then the pre-activation and the scan runs on
 * softplus(delta + bias[d]) (delta + bias[d] when softplus == 0; bias may be NULL), the
 * way Mamba's kernel takes delta_bias and delta_softplus: the activated delta never
 * exists in device memory. float32 only (KERN_EINVAL for bf16). The backward's ddelta is
 * then the gradient of the pre-activation, and dbias (D, float32; may be NULL) gets its
 * sum over b and t, under `accumulate` like the other gradients. */
#define KERN_SCAN_CHUNK 64
#define KERN_SCAN_MAX_STATE 128

typedef struct kern_delta_act {
    const float *bias; /* (D) or NULL */
    float *dbias;      /* (D) or NULL; the backward's output */
    int softplus;
} kern_delta_act;

size_t kern_scan_hchk_floats(int B, int L, int D, int N);

int kern_selective_scan_forward(kern_ctx *ctx, kern_dtype dt, void *y, float *hchk,
                                const void *u, const void *delta, const kern_delta_act *act,
                                const float *A, const void *Bm, const void *Cm,
                                const float *Dskip, const void *z, int B, int L, int D, int N,
                                kern_error *err);
int kern_selective_scan_backward(kern_ctx *ctx, kern_dtype dt, int accumulate, void *du,
                                 void *ddelta, float *dA, float *dBm, float *dCm,
                                 float *dDskip, void *dz, const void *dy, const void *u,
                                 const void *delta, const kern_delta_act *act, const float *A,
                                 const void *Bm, const void *Cm, const float *Dskip,
                                 const void *z, int B, int L, int D, int N, const float *hchk,
                                 kern_error *err);

/* ---- S4D ------------------------------------------------------------------------------
 * As nssm_s4d_kernel_forward/backward and nssm_s4d_conv_forward/backward:
 *   A_n = -exp(log_A_re[d,n]) + i A_im[d,n],  dt = exp(log_dt[d]),  z_n = exp(dt A_n),
 *   Cbar_n = (C_re + i C_im)[d,n] (z_n - 1) / A_n,  K[d,l] = 2 Re sum_n Cbar_n z_n^l,
 *   y[b,t,d] = sum_{l<=t} K[d,l] u[b,t-l,d] + Dskip[d] u[b,t,d].
 * log_dt (D); C_re, C_im, log_A_re, A_im (D, N); K, dK (D, L); u, y (B, L, D).
 * Backward functions accumulate into their gradients. float32 only. */
int kern_s4d_kernel_forward(kern_ctx *ctx, float *K, const float *log_dt, const float *C_re,
                            const float *C_im, const float *log_A_re, const float *A_im,
                            int D, int N, int L, kern_error *err);
int kern_s4d_kernel_backward(kern_ctx *ctx, float *dlog_dt, float *dC_re, float *dC_im,
                             float *dlog_A_re, float *dA_im, const float *dK,
                             const float *log_dt, const float *C_re, const float *C_im,
                             const float *log_A_re, const float *A_im, int D, int N, int L,
                             kern_error *err);
int kern_s4d_conv_forward(kern_ctx *ctx, float *y, const float *u, const float *K,
                          const float *Dskip, int B, int L, int D, kern_error *err);
int kern_s4d_conv_backward(kern_ctx *ctx, float *du, float *dK, float *dDskip,
                           const float *dy, const float *u, const float *K,
                           const float *Dskip, int B, int L, int D, kern_error *err);

/* ---- fused elementwise layers (float32; backward accumulates) -------------------------
 * Where a backward takes `accumulate`, it applies to dinp alone: 0 writes dinp, so a
 * caller need not clear a fresh gradient buffer that the kernel would then read back.
 * RMSNorm over the last axis: out = inp / sqrt(mean(inp^2) + eps) * w; inp, out (BT, C),
 * w (C), rstd (BT) saved for the backward. SiLU x sigmoid(x); residual out = a + b.
 * (Mamba's softplus of dt rides on the selective scan: kern_delta_act.) */
int kern_rmsnorm_forward(kern_ctx *ctx, float *out, float *rstd, const float *inp,
                         const float *w, int BT, int C, float eps, kern_error *err);
int kern_rmsnorm_backward(kern_ctx *ctx, float *dinp, float *dw, const float *dout,
                          const float *inp, const float *w, const float *rstd, int BT, int C,
                          kern_error *err);
int kern_silu_forward(kern_ctx *ctx, float *out, const float *inp, size_t n, kern_error *err);
int kern_silu_backward(kern_ctx *ctx, int accumulate, float *dinp, const float *dout,
                       const float *inp, size_t n, kern_error *err);
/* out = -exp(inp) (Mamba's A from A_log); backward dinp += dout * out */
int kern_negexp_forward(kern_ctx *ctx, float *out, const float *inp, size_t n, kern_error *err);
int kern_negexp_backward(kern_ctx *ctx, float *dinp, const float *dout, const float *out,
                         size_t n, kern_error *err);
int kern_residual_forward(kern_ctx *ctx, float *out, const float *a, const float *b, size_t n,
                          kern_error *err);
int kern_residual_backward(kern_ctx *ctx, float *da, float *db, const float *dout, size_t n,
                           kern_error *err);
/* The GLU gate of the S4D block, as nssm_glu_*: out = a sigmoid(b); the backward adds
 * dout sigmoid(b) to da and dout a s (1 - s) to db. */
int kern_glu_forward(kern_ctx *ctx, float *out, const float *a, const float *b, size_t n,
                     kern_error *err);
int kern_glu_backward(kern_ctx *ctx, float *da, float *db, const float *dout, const float *a,
                      const float *b, size_t n, kern_error *err);

/* Causal depthwise Conv1d as nssm_conv1d_*: out[b,t,c] = bias[c] + sum_k w[c,k]
 * inp[b, t-K+1+k, c] (zero before t = 0); inp, out (B, L, C), w (C, K) with K <= 16, bias
 * (C) or NULL. The backward accumulates dinp (may be NULL; written when accumulate == 0),
 * dw, dbias (may be NULL).
 * A SiLU after the conv (Mamba's) can ride along: the forward also writes act = silu(out)
 * when act is not NULL (act may be out itself), and with pre != NULL the backward takes
 * dout as the gradient of silu(pre), pre being the forward's out, and applies the SiLU's
 * backward on the way in. NULL for both gives the plain Conv1d. */
int kern_conv1d_forward(kern_ctx *ctx, float *out, float *act, const float *inp,
                        const float *w, const float *bias, int B, int L, int C, int K,
                        kern_error *err);
int kern_conv1d_backward(kern_ctx *ctx, int accumulate, float *dinp, float *dw, float *dbias,
                         const float *dout, const float *pre, const float *inp, const float *w,
                         int B, int L, int C, int K, kern_error *err);

/* The forecaster's quantile head and its loss, the mirrors of neural_ssm's
 * nssm_quantile_head_forward and nssm_pinball_backward (see neural_ssm.h): q (rows, Q) from
 * raw; the pinball loss of q against tgt (B, L + H) times scale into *loss (host), and, with
 * draw != NULL, its gradient with respect to raw (written). Q <= KERN_MAX_QUANTILES. */
#define KERN_MAX_QUANTILES 32
int kern_quantile_head_forward(kern_ctx *ctx, float *q, const float *raw, size_t rows, int Q,
                               int mid, kern_error *err);
int kern_pinball_backward(kern_ctx *ctx, float *draw, double *loss, const float *raw,
                          const float *q, const float *tgt, const double *taus, int B, int P,
                          int H, int Q, int L, int mid, double scale, kern_error *err);

/* AdamW (PyTorch's torch.optim.AdamW, decoupled decay), step t >= 1, on n parameters:
 *   g = grad * grad_scale (e.g. a clipping factor)
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p = p - lr * (wd * p + (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps))  */
int kern_adamw_update(kern_ctx *ctx, float *p, const float *grad, float *m, float *v,
                      size_t n, float lr, float beta1, float beta2, float eps,
                      float weight_decay, int t, float grad_scale, kern_error *err);
/* Sum of squares of x (n floats), computed in double on the device, returned on the host
 * (synchronises). For global gradient-norm clipping. */
int kern_sumsq(kern_ctx *ctx, double *out, const float *x, size_t n, kern_error *err);

/* ---- matrix products (cuBLAS, float32, row-major) -------------------------------------
 * C (M, N) = alpha op(A) op(B) + beta C, op(X) = X^T when the flag is set; lda, ldb, ldc
 * are row strides. Linear as in nssm_linear_*: out (BT, OC) = inp (BT, C) w^T + bias,
 * w (OC, C), bias (OC) or NULL; the backward accumulates dinp (may be NULL; written when
 * accumulate == 0), dw, dbias. */
int kern_gemm(kern_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
              kern_error *err);
int kern_linear_forward(kern_ctx *ctx, float *out, const float *inp, const float *w,
                        const float *bias, int BT, int C, int OC, kern_error *err);
int kern_linear_backward(kern_ctx *ctx, int accumulate, float *dinp, float *dw, float *dbias,
                         const float *dout, const float *inp, const float *w, int BT, int C,
                         int OC, kern_error *err);

#ifdef __cplusplus
}
#endif

#endif
