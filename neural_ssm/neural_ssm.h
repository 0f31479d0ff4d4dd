/*
 * neural_ssm/neural_ssm.h — the public interface of ssmd's neural state space library.
 *
 * Plain float arrays in, float arrays out: layers with forward and backward passes (Linear,
 * RMSNorm, causal depthwise Conv1d, SiLU, softplus, residual add, the S4D convolution
 * kernel and the Mamba selective scan), a forecaster network built from them (instance
 * normalisation, value + calendar embedding, a residual stack of S4D or Mamba mixers and a
 * quantile head), a trainer (AdamW, warm-up + cosine, clipping, early stopping) and a
 * versioned binary checkpoint. It is the CPU reference path: clear loops and BLAS, the
 * thing the CUDA kernels in kernels/ are checked against. No I/O, no printing, no global
 * mutable state; every function is reentrant. Errors come back as a negative NSSM_E* code
 * (same values as models/model.h's SSM_E*) with a message in an nssm_error.
 *
 * Shapes use B (batch), L (sequence length), D (channels), N (state size). Every activation
 * is row-major, so a (B, L, D) tensor is also a (B*L, D) matrix. Backward functions
 * ACCUMULATE (+=) into every gradient they write, llm.c style, so a tensor used twice
 * collects both contributions; callers zero gradients before a backward pass.
 *
 * nssm_real is float. Only the finite-difference tests compile the same sources a second
 * time with -DNSSM_REAL_DOUBLE (a separate test-only library), so the float code is checked
 * in double precision; nothing else should define it.
 */
#ifndef NSSM_NEURAL_SSM_H
#define NSSM_NEURAL_SSM_H

#include <stddef.h>
#include <stdint.h>

#ifdef NSSM_REAL_DOUBLE
typedef double nssm_real;
#else
typedef float nssm_real;
#endif

/* ---- errors ------------------------------------------------------------------------- */

enum {
    NSSM_OK = 0,
    NSSM_EINVAL = -1,
    NSSM_ENOMEM = -2,
    NSSM_ENUMERIC = -3,
    NSSM_EFORMAT = -4,
    NSSM_ETOOSHORT = -5,
    NSSM_EUNSUPPORTED = -6,
    NSSM_EIO = -7
};

/* PostgreSQL-style: short lower-case message, optional detail (facts) and hint. */
typedef struct nssm_error {
    int code;
    char message[256];
    char detail[512];
    char hint[256];
} nssm_error;

int nssm_error_set(nssm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void nssm_error_detail(nssm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nssm_error_hint(nssm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- layers (CPU reference; each X_forward has its X_backward) ------------------------ */

/* Linear: out (BT, OC) = inp (BT, C) @ w^T + bias; w is (OC, C) as in PyTorch, bias (OC)
 * or NULL. Backward: dinp (BT, C), dw (OC, C), dbias (OC) or NULL; dinp may be NULL. */
void nssm_linear_forward(nssm_real *out, const nssm_real *inp, const nssm_real *w,
                         const nssm_real *bias, int BT, int C, int OC);
void nssm_linear_backward(nssm_real *dinp, nssm_real *dw, nssm_real *dbias,
                          const nssm_real *dout, const nssm_real *inp, const nssm_real *w,
                          int BT, int C, int OC);

/* RMSNorm: out = inp / sqrt(mean(inp^2) + eps) * w over the last axis. inp, out (BT, C),
 * w (C), rstd (BT) saved for the backward. */
void nssm_rmsnorm_forward(nssm_real *out, nssm_real *rstd, const nssm_real *inp,
                          const nssm_real *w, int BT, int C, nssm_real eps);
void nssm_rmsnorm_backward(nssm_real *dinp, nssm_real *dw, const nssm_real *dout,
                           const nssm_real *inp, const nssm_real *w, const nssm_real *rstd,
                           int BT, int C);

/* Causal depthwise Conv1d: out[b,t,c] = bias[c] + sum_k w[c,k] inp[b, t-K+1+k, c] (zero
 * before t = 0), i.e. PyTorch's Conv1d(C, C, K, groups=C, padding=K-1) cut to L outputs.
 * inp, out (B, L, C), w (C, K), bias (C). */
void nssm_conv1d_forward(nssm_real *out, const nssm_real *inp, const nssm_real *w,
                         const nssm_real *bias, int B, int L, int C, int K);
void nssm_conv1d_backward(nssm_real *dinp, nssm_real *dw, nssm_real *dbias,
                          const nssm_real *dout, const nssm_real *inp, const nssm_real *w,
                          int B, int L, int C, int K);

/* Elementwise: SiLU x*sigmoid(x); softplus log(1+e^x) (x itself above 20, as PyTorch);
 * negexp out = -exp(inp) (Mamba's A = -exp(A_log); its backward dinp += dout * out, from
 * the forward's out); residual out = a + b. n elements. */
void nssm_silu_forward(nssm_real *out, const nssm_real *inp, size_t n);
void nssm_silu_backward(nssm_real *dinp, const nssm_real *dout, const nssm_real *inp, size_t n);
void nssm_softplus_forward(nssm_real *out, const nssm_real *inp, size_t n);
void nssm_softplus_backward(nssm_real *dinp, const nssm_real *dout, const nssm_real *inp,
                            size_t n);
void nssm_negexp_forward(nssm_real *out, const nssm_real *inp, size_t n);
void nssm_negexp_backward(nssm_real *dinp, const nssm_real *dout, const nssm_real *out,
                          size_t n);
void nssm_residual_forward(nssm_real *out, const nssm_real *a, const nssm_real *b, size_t n);
void nssm_residual_backward(nssm_real *da, nssm_real *db, const nssm_real *dout, size_t n);

/* The forecaster's quantile head. Rows of Q raw outputs, median index mid:
 * q_mid = raw_mid, q_j = q_{j-1} + softplus(raw_j) above it, q_j = q_{j+1} - softplus(raw_j)
 * below (monotone quantiles). */
void nssm_quantile_head_forward(nssm_real *q, const nssm_real *raw, size_t rows, int Q, int mid);
/* Pinball loss of the quantiles q (B, P, H, Q) against the normalised window tgt (B, L + H;
 * position p, step h targets tgt[b, L - P + p + 1 + h], NaN: no target): the sum over the
 * valid targets and the Q levels taus[] of u (tau - [u < 0]), u = y - q, times scale (the
 * caller's 1 / (count Q)). With draw != NULL also its gradient with respect to the raw head
 * outputs (through the head's transform), written, not accumulated. */
double nssm_pinball_backward(nssm_real *draw, const nssm_real *raw, const nssm_real *q,
                             const nssm_real *tgt, const double *taus, int B, int P, int H,
                             int Q, int L, int mid, double scale);

/* The S4D block's GLU gate: out = a sigmoid(b); the backward adds dout sigmoid(b) to da
 * and dout a s (1 - s) to db (s = sigmoid(b)). */
void nssm_glu_forward(nssm_real *out, const nssm_real *a, const nssm_real *b, size_t n);
void nssm_glu_backward(nssm_real *da, nssm_real *db, const nssm_real *dout, const nssm_real *a,
                       const nssm_real *b, size_t n);
/* The optimiser step (torch.optim.AdamW: decoupled weight decay), step >= 1, over n
 * parameters: g = grad * gscale (the clipping factor), m = b1 m + (1 - b1) g,
 * v = b2 v + (1 - b2) g^2, p -= lr (wd p + (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps)). */
void nssm_adamw_update(nssm_real *p, const nssm_real *grad, nssm_real *m, nssm_real *v,
                       size_t n, double lr, double beta1, double beta2, double eps,
                       double weight_decay, int step, double gscale);
/* Sum of squares of x, accumulated in double (the global gradient norm). */
double nssm_sumsq(const nssm_real *x, size_t n);

/* ---- selective scan (Mamba) — THE CONTRACT shared with kernels/ ---------------------
 *
 * Row-major float32 (nssm_real), both the CPU path here and the CUDA path in kernels/:
 *   u      (B, L, D)   input
 *   delta  (B, L, D)   softplus(dt_proj output + dt_bias), already positive (softplus is a
 *                      separate layer on the CPU)
 *   A      (D, N)      real, negative: A = -exp(A_log)
 *   Bm, Cm (B, L, N)   input-dependent B_t and C_t, shared by all D channels
 *   Dskip  (D)         skip connection
 *   z      (B, L, D)   gate, or NULL for no gating
 *   y      (B, L, D)   output
 * Recurrence per (b, d), h in R^N, h_{-1} = 0:
 *   h_t = exp(delta_t * A) (.) h_{t-1} + delta_t * B_t * u_t
 *   y_t = C_t . h_t + Dskip * u_t,    then  y_t *= silu(z_t)  when z != NULL.
 * Saved for the backward (pass NULL for both at inference):
 *   ypre   (B, L, D)          y before gating (needed only when z != NULL)
 *   hchk   (B, NC, D, N)      NC = ceil(L / NSSM_SCAN_CHUNK); hchk[b,c] is the state just
 *                             before step c*NSSM_SCAN_CHUNK (all zeros for c = 0)
 * The backward recomputes the states of one chunk at a time from hchk, never storing all L.
 * Given dy (B, L, D) it ACCUMULATES du, ddelta, dz (B, L, D), dBm, dCm (B, L, N),
 * dA (D, N) and dDskip (D); the shared dA and dDskip sum over the batch (CPU: per-sequence
 * partials summed in batch order, so results do not depend on the thread count). dz is
 * ignored when z == NULL. threads: OpenMP threads over the batch (<= 0: 1).
 *
 * act (NULL: none) is Mamba's delta_bias / delta_softplus: delta is then the
 * pre-activation, and the recurrence runs on softplus(delta + bias[d]) (delta + bias[d]
 * when softplus == 0; bias may be NULL), computed where it is used, never stored. The
 * backward's ddelta is then the gradient of the pre-activation, and it accumulates the
 * sum over b and t of that into dbias (D) when dbias is non-NULL. */
#define NSSM_SCAN_CHUNK 16
#define NSSM_MAX_STATE 256

typedef struct nssm_delta_act {
    const nssm_real *bias; /* (D) or NULL */
    nssm_real *dbias;      /* (D) or NULL; the backward's output */
    int softplus;
} nssm_delta_act;

void nssm_selective_scan_forward(nssm_real *y, const nssm_real *u, const nssm_real *delta,
                                 const nssm_delta_act *act, const nssm_real *A,
                                 const nssm_real *Bm, const nssm_real *Cm,
                                 const nssm_real *Dskip, const nssm_real *z, int B, int L,
                                 int D, int N, nssm_real *ypre, nssm_real *hchk, int threads);
int nssm_selective_scan_backward(nssm_real *du, nssm_real *ddelta, nssm_real *dA,
                                 nssm_real *dBm, nssm_real *dCm, nssm_real *dDskip,
                                 nssm_real *dz, const nssm_real *dy, const nssm_real *u,
                                 const nssm_real *delta, const nssm_delta_act *act,
                                 const nssm_real *A, const nssm_real *Bm, const nssm_real *Cm,
                                 const nssm_real *Dskip, const nssm_real *z, int B, int L,
                                 int D, int N, const nssm_real *ypre, const nssm_real *hchk,
                                 int threads);

/* ---- S4D ---------------------------------------------------------------------------
 * Per channel d, N complex modes (conjugate pairs implicit, hence the 2 Re below):
 *   A_n = -exp(log_A_re[d,n]) + i A_im[d,n],   dt = exp(log_dt[d])
 *   ZOH: z_n = exp(dt A_n), Cbar_n = C_n (z_n - 1) / A_n  (B is folded into C, as in S4D)
 *   kernel K[d,l] = 2 Re sum_n Cbar_n z_n^l,  l = 0..L-1   (a Vandermonde product)
 *   y[b,t,d] = sum_{l<=t} K[d,l] u[b,t-l,d] + Dskip[d] u[b,t,d]
 * Training builds K and convolves (direct for short L, FFT otherwise); inference steps
 * the recurrence h_n <- z_n h_n + u_t, y_t = 2 Re sum_n Cbar_n h_n + D u_t: O(N) a step.
 * Shapes: log_dt (D), C_re, C_im, log_A_re, A_im (D, N), K (D, L). */
void nssm_s4d_kernel_forward(nssm_real *K, const nssm_real *log_dt, const nssm_real *C_re,
                             const nssm_real *C_im, const nssm_real *log_A_re,
                             const nssm_real *A_im, int D, int N, int L);
void nssm_s4d_kernel_backward(nssm_real *dlog_dt, nssm_real *dC_re, nssm_real *dC_im,
                              nssm_real *dlog_A_re, nssm_real *dA_im, const nssm_real *dK,
                              const nssm_real *log_dt, const nssm_real *C_re,
                              const nssm_real *C_im, const nssm_real *log_A_re,
                              const nssm_real *A_im, int D, int N, int L);
/* y (B, L, D) = causal conv of u (B, L, D) with K (D, L) + Dskip (D) * u. */
int nssm_s4d_conv_forward(nssm_real *y, const nssm_real *u, const nssm_real *K,
                          const nssm_real *Dskip, int B, int L, int D, int threads);
int nssm_s4d_conv_backward(nssm_real *du, nssm_real *dK, nssm_real *dDskip,
                           const nssm_real *dy, const nssm_real *u, const nssm_real *K,
                           const nssm_real *Dskip, int B, int L, int D, int threads);
/* The same output as kernel_forward + conv_forward, computed by the recurrence. */
int nssm_s4d_recurrent_forward(nssm_real *y, const nssm_real *u, const nssm_real *log_dt,
                               const nssm_real *C_re, const nssm_real *C_im,
                               const nssm_real *log_A_re, const nssm_real *A_im,
                               const nssm_real *Dskip, int B, int L, int D, int N);

/* ---- backends ------------------------------------------------------------------------
 * The forecaster calls its heavy operations through an nssm_backend, a table of function
 * pointers with the argument orders of the CPU functions above. The CPU table lives in
 * backend_cpu.c. The CUDA table (kernels/kernels.h underneath) goes in
 * neural_ssm/backend_cuda.c, compiled only when SSMD_HAVE_CUDA is defined: it defines
 *     const nssm_backend nssm_backend_cuda;
 * and nssm_backend_get() (backend.c) returns it for NSSM_DEVICE_CUDA / AUTO. On a backend
 * with device memory, the op pointers take pointers from its alloc. Parameters are
 * always read and written as host float32 (nssm_model_get_params / set_params), so
 * checkpoints never depend on the device. */
typedef enum nssm_device { NSSM_DEVICE_AUTO = 0, NSSM_DEVICE_CPU = 1, NSSM_DEVICE_CUDA = 2 } nssm_device;

typedef struct nssm_backend {
    const char *name;
    nssm_device device;
    int (*available)(void); /* 1 when a device is present at run time */
    /* Memory the host can also read and write (CPU: calloc; CUDA: cudaMallocManaged),
     * zero-filled. model.c hands window features over with copy_rows and reads results
     * only after synchronize(), so a device's pages stay on the device during a step. */
    void *(*alloc)(size_t bytes);
    void (*release)(void *p);
    /* Waits for queued device work before the host touches shared memory (CPU: no-op). */
    int (*synchronize)(void);
    /* Buffer housekeeping done where the buffers live, so that a step on a device never
     * pulls activations over to the host just to clear or move them: zero-fill bytes,
     * out = a + b (the residual stream), and a strided copy of `rows` rows of `width` bytes
     * (pitches in bytes; the gather of the forecast positions and its backward). */
    void (*zero)(void *p, size_t bytes);
    void (*residual_forward)(nssm_real *out, const nssm_real *a, const nssm_real *b, size_t n);
    void (*copy_rows)(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                      size_t rows);
    /* the quantile head and its loss (nssm_quantile_head_forward, nssm_pinball_backward) */
    void (*quantile_head_forward)(nssm_real *, const nssm_real *, size_t, int, int);
    double (*pinball_backward)(nssm_real *, const nssm_real *, const nssm_real *,
                               const nssm_real *, const double *, int, int, int, int, int, int,
                               double);
    void (*linear_forward)(nssm_real *, const nssm_real *, const nssm_real *,
                           const nssm_real *, int, int, int);
    /* The backward entries add into their gradients, as the nssm_ functions they mirror;
     * linear's, Conv1d's and SiLU's take a last argument `accumulate` that
     * applies to dinp alone: 0 writes it (as the scan's below), so a fresh buffer needs no
     * clearing that a device would then read back in. */
    void (*linear_backward)(nssm_real *, nssm_real *, nssm_real *, const nssm_real *,
                            const nssm_real *, const nssm_real *, int, int, int, int);
    void (*rmsnorm_forward)(nssm_real *, nssm_real *, const nssm_real *, const nssm_real *,
                            int, int, nssm_real);
    void (*rmsnorm_backward)(nssm_real *, nssm_real *, const nssm_real *, const nssm_real *,
                             const nssm_real *, const nssm_real *, int, int);
    /* Mamba's causal Conv1d and the SiLU after it, fused where the backend can:
     * forward (out, act, inp, w, bias, B, L, C, K): out = conv1d(inp), act = silu(out)
     * (act may be out: inference keeps only act); backward (dinp, dw, dbias, dact, pre,
     * inp, w, B, L, C, K, scratch, accumulate): the gradients of the pair given dact, with
     * pre = the forward's out; scratch, (B, L, C), is for a backend that goes through
     * dout = dact silu'(pre) in memory (the CPU); a device applies it on the fly. */
    void (*conv1d_silu_forward)(nssm_real *, nssm_real *, const nssm_real *, const nssm_real *,
                                const nssm_real *, int, int, int, int);
    void (*conv1d_silu_backward)(nssm_real *, nssm_real *, nssm_real *, const nssm_real *,
                                 const nssm_real *, const nssm_real *, const nssm_real *, int,
                                 int, int, int, nssm_real *, int);
    void (*silu_forward)(nssm_real *, const nssm_real *, size_t);
    void (*silu_backward)(nssm_real *, const nssm_real *, const nssm_real *, size_t, int);
    void (*glu_forward)(nssm_real *, const nssm_real *, const nssm_real *, size_t);
    void (*glu_backward)(nssm_real *, nssm_real *, const nssm_real *, const nssm_real *,
                         const nssm_real *, size_t);
    void (*negexp_forward)(nssm_real *, const nssm_real *, size_t);
    void (*negexp_backward)(nssm_real *, const nssm_real *, const nssm_real *, size_t);
    void (*selective_scan_forward)(nssm_real *, const nssm_real *, const nssm_real *,
                                   const nssm_delta_act *, const nssm_real *,
                                   const nssm_real *, const nssm_real *, const nssm_real *,
                                   const nssm_real *, int, int, int, int, nssm_real *,
                                   nssm_real *, int);
    /* as nssm_selective_scan_backward, plus a last argument `accumulate`: 0 writes
     * every gradient instead of adding into it (a device then need not read the zeros
     * back in: three (B, L, D) arrays, a third of the scan backward's time) */
    int (*selective_scan_backward)(nssm_real *, nssm_real *, nssm_real *, nssm_real *,
                                   nssm_real *, nssm_real *, nssm_real *, const nssm_real *,
                                   const nssm_real *, const nssm_real *, const nssm_delta_act *,
                                   const nssm_real *, const nssm_real *, const nssm_real *,
                                   const nssm_real *,
                                   const nssm_real *, int, int, int, int, const nssm_real *,
                                   const nssm_real *, int, int);
    /* the optimiser where the parameters live (nssm_sumsq, nssm_adamw_update) */
    double (*sumsq)(const nssm_real *, size_t);
    void (*adamw_update)(nssm_real *, const nssm_real *, nssm_real *, nssm_real *, size_t,
                         double, double, double, double, double, int, double);
    void (*s4d_kernel_forward)(nssm_real *, const nssm_real *, const nssm_real *,
                               const nssm_real *, const nssm_real *, const nssm_real *, int,
                               int, int);
    void (*s4d_kernel_backward)(nssm_real *, nssm_real *, nssm_real *, nssm_real *,
                                nssm_real *, const nssm_real *, const nssm_real *,
                                const nssm_real *, const nssm_real *, const nssm_real *,
                                const nssm_real *, int, int, int);
    int (*s4d_conv_forward)(nssm_real *, const nssm_real *, const nssm_real *,
                            const nssm_real *, int, int, int, int);
    int (*s4d_conv_backward)(nssm_real *, nssm_real *, nssm_real *, const nssm_real *,
                             const nssm_real *, const nssm_real *, const nssm_real *, int,
                             int, int, int);
} nssm_backend;

extern const nssm_backend nssm_backend_cpu;
/* The table for a device: CPU always; CUDA when built with it (AUTO falls back to CPU). */
const nssm_backend *nssm_backend_get(nssm_device device, nssm_error *err);
/* "auto", "cpu", "cuda" (NULL: auto) -> device. */
int nssm_device_parse(const char *text, nssm_device *out, nssm_error *err);

/* ---- the forecaster ----------------------------------------------------------------- */

typedef enum nssm_mixer { NSSM_MIXER_S4D = 1, NSSM_MIXER_MAMBA = 2 } nssm_mixer;

#define NSSM_MAX_PERIODS 3
#define NSSM_MAX_QUANTILES 31
#define NSSM_MAX_LAYERS 64

/* Architecture. Features per step: the normalised value, a missing flag, and sin/cos of
 * 2*pi*index/period for each calendar period (index = calendar step index, see
 * nssm_series_ref). quantiles: the dense training grid, ascending, must contain 0.5. */
typedef struct nssm_config {
    int mixer;        /* nssm_mixer */
    int context;      /* L: context window length */
    int horizon;      /* H: forecast steps */
    int d_model;      /* D */
    int n_layers;
    int d_state;      /* N: Mamba state size, S4D complex modes */
    int expand;       /* Mamba: inner width E*D */
    int d_conv;       /* Mamba: causal conv width */
    int dt_rank;      /* Mamba: rank of dt_proj (0: ceil(D/16)) */
    int s4d_inv;      /* S4D: 1 for S4D-Inv initialisation, 0 for S4D-Lin */
    int n_periods;
    double periods[NSSM_MAX_PERIODS];
    int nq;
    double quantiles[NSSM_MAX_QUANTILES];
} nssm_config;

/* Fills defaults: context 512, horizon 24, d_model 64, 4 layers, state 16, expand 2,
 * conv 4, no periods, the 13-level grid 0.025 .. 0.975. */
void nssm_config_default(nssm_config *cfg, nssm_mixer mixer);
int nssm_config_check(const nssm_config *cfg, nssm_error *err);
/* Number of input features per step: 2 + 2 * n_periods. */
int nssm_config_features(const nssm_config *cfg);

/* One named parameter tensor inside the model's flat parameter array. */
typedef struct nssm_tensor {
    char name[40];
    int ndim;
    int shape[3];
    size_t offset; /* in elements */
    size_t size;
    int decay;     /* AdamW weight decay applies (matrices) */
} nssm_tensor;

typedef struct nssm_model nssm_model;

/* A series for training or forecasting: values (NaN = missing) and the calendar index of
 * values[0]: the number of grid steps since a fixed calendar epoch (so index mod period
 * is the phase: hour of day, day of week, month of year...). */
typedef struct nssm_series_ref {
    const double *values;
    size_t n;
    int64_t cal0;
} nssm_series_ref;

/* Creates a model with freshly initialised parameters (deterministic in seed). */
int nssm_model_create(nssm_model **out, const nssm_config *cfg, uint64_t seed,
                      const nssm_backend *backend, nssm_error *err);
void nssm_model_free(nssm_model *m);
const nssm_config *nssm_model_config(const nssm_model *m);
size_t nssm_model_num_params(const nssm_model *m);
int nssm_model_num_tensors(const nssm_model *m);
const nssm_tensor *nssm_model_tensor(const nssm_model *m, int i);
/* Host copies of parameters / gradients (n_params floats); set copies in. */
int nssm_model_get_params(const nssm_model *m, float *out, nssm_error *err);
int nssm_model_set_params(nssm_model *m, const float *in, nssm_error *err);
int nssm_model_get_grads(const nssm_model *m, float *out, nssm_error *err);
/* Worker threads for OpenMP loops (<= 0: 1). */
void nssm_model_set_threads(nssm_model *m, int threads);

/* One forward + backward pass on a batch of B windows. win (B, L+H) raw values (NaN =
 * missing; the first L are the context, the last H follow it), cal0 (B) calendar index
 * of each window's first value. Loss: mean pinball loss over the configured quantiles,
 * at every position t >= L/2 of the window for the next H steps, in normalised units,
 * missing targets masked. Gradients are left in the model (zeroed first) when
 * with_grad. */
int nssm_model_loss(nssm_model *m, const double *win, const int64_t *cal0, int B,
                    int with_grad, double *loss, nssm_error *err);
/* Validation-style loss: the forecast from the last context position only. */
int nssm_model_eval_loss(nssm_model *m, const double *win, const int64_t *cal0, int B,
                         double *loss, nssm_error *err);

/* Forecast from the last min(n, L) values of a series (NaN allowed, not all missing).
 * q_out: H * nq quantiles on the training grid (q_out[h*nq + j]), original units,
 * monotone in j. Reentrant on a const model (allocates its own workspace) and single-
 * threaded: run many series in parallel rather than one forecast on many threads (and
 * keep OpenBLAS to one thread, OPENBLAS_NUM_THREADS=1, when doing so). */
int nssm_forecast(const nssm_model *m, const nssm_series_ref *s, double *q_out,
                  nssm_error *err);

/* ---- trainer ------------------------------------------------------------------------- */

typedef struct nssm_train_opts {
    int max_steps;        /* optimiser steps (0: 600) */
    int batch;            /* windows per step (0: 32) */
    double lr;            /* peak learning rate (0: 2e-3) */
    double weight_decay;  /* AdamW decoupled decay on matrices (< 0: 0; 0: 0.01) */
    double warmup_frac;   /* fraction of max_steps for linear warm-up (0: 0.05) */
    double min_lr_frac;   /* cosine floor as a fraction of lr (0: 0.1) */
    double clip;          /* global gradient norm clip (0: 1.0) */
    int eval_every;       /* steps between validation evaluations (0: 25) */
    int patience;         /* evaluations without improvement before stopping (0: 8) */
    double val_frac;      /* validation split at the end of each series (0: 0.1) */
    double max_seconds;   /* wall-clock budget (0: none); when it binds, results depend on
                             the machine's speed — the step budget is deterministic */
    uint64_t seed;        /* window sampling; 0 means 1 */
    int threads;          /* OpenMP threads (<= 0: 1) */
} nssm_train_opts;

typedef struct nssm_train_report {
    int steps;
    int best_step;
    int evaluations;
    int stopped_early;
    int timed_out;
    double first_val_loss;
    double best_val_loss;
    double last_train_loss;
    double seconds;
} nssm_train_report;

/* Trains on every series (a global model when n_series > 1): windows sampled uniformly
 * over the training origins of all series, validation on the last val_frac of each.
 * Leaves the best parameters (lowest validation loss) in the model. */
int nssm_train(nssm_model *m, const nssm_series_ref *series, int n_series,
               const nssm_train_opts *opts, nssm_train_report *report, nssm_error *err);

/* ---- checkpoints ---------------------------------------------------------------------
 * Little-endian: magic "NSSMCKPT", u32 version, the architecture, the normalisation
 * settings, a tensor table (name, shape, offset) and float32 data, then a CRC32 of all
 * bytes before it. See neural_ssm/README.md. */
#define NSSM_CHECKPOINT_VERSION 1

/* *out is malloc'ed (free()). */
int nssm_checkpoint_save(const nssm_model *m, uint8_t **out, size_t *len, nssm_error *err);
/* Creates a model from a checkpoint on the given backend. Truncated, corrupted or
 * mismatched data fail with NSSM_EFORMAT. */
int nssm_checkpoint_load(nssm_model **out, const uint8_t *data, size_t len,
                         const nssm_backend *backend, nssm_error *err);
uint32_t nssm_crc32(const uint8_t *data, size_t len);

/* Inverse of the standard normal CDF (Acklam's rational approximation, refined by one
 * Halley step; |error| < 1e-12 on (1e-300, 1 - 1e-16)). */
double nssm_normal_quantile(double p);

#endif
