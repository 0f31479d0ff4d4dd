/*
 * neural_ssm/backend_cuda.c — the CUDA backend table: every heavy operation of the
 * forecaster mapped onto kernels/kernels.h, with the argument orders and semantics of the
 * CPU reference functions (backward functions accumulate). Compiled only with
 * SSMD_HAVE_CUDA. Memory comes from cudaMallocManaged so that model.c's host-side glue
 * (window features and targets, parameters in and out) can reach the same buffers after
 * synchronize().
 *
 * The table's functions take no context argument, so this file keeps the one piece of
 * process-wide state in the library: a kern_ctx (stream + cuBLAS handle) created once on
 * first use, and the first error a void operation met, reported by the next synchronize()
 * (the table has no error channel for void operations). Use one model per thread at a time;
 * the context serialises everything on one stream, and operations return once their work
 * is queued: the host waits only in synchronize() and where a value comes back (the loss,
 * the gradient norm). Clearing, the residual stream, the gathers, A = -exp(A_log), the
 * quantile head, the loss, the gradient norm and the AdamW step run here too, so
 * activations, gradients and parameters stay on the device; what the host still touches
 * per step is the window features and targets, written before the step's first operation.
 *
 * Layout note: the selective scan's hchk buffer (sized by model.c for NSSM_SCAN_CHUNK) is
 * filled in kernels/' own layout, (B, ceil(L/KERN_SCAN_CHUNK), N, D), which is smaller; the
 * CUDA backward recomputes y before gating itself, so ypre is left unwritten.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "internal.h"
#include "kernels.h"

static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;
static kern_ctx *cuda_ctx;
static pthread_mutex_t cuda_err_lock = PTHREAD_MUTEX_INITIALIZER;
static int cuda_err_code;

static void cuda_init(void)
{
    kern_error e;
    memset(&e, 0, sizeof e);
    if (kern_device_count() > 0 && kern_ctx_create(&cuda_ctx, 0, &e) != KERN_OK)
        cuda_ctx = NULL;
}

static kern_ctx *ctx(void)
{
    pthread_once(&cuda_once, cuda_init);
    return cuda_ctx;
}

/* kernels/ codes share SSM's numbers where they overlap; a CUDA failure becomes
 * NSSM_EUNSUPPORTED (the device could not do the work). */
static int to_nssm(int rc)
{
    if (rc == KERN_OK)
        return NSSM_OK;
    if (rc == KERN_EINVAL || rc == KERN_ENOMEM)
        return rc;
    return NSSM_EUNSUPPORTED;
}

/* Records the first error (a failed launch or argument check; a fault inside a kernel
 * surfaces at the next synchronize()). It does not wait: model.c touches these managed
 * buffers on the host only after synchronize(), so the stream runs ahead of the host, and
 * a training step is not a hundred launch round trips. */
static int note(int rc)
{
    if (rc) {
        pthread_mutex_lock(&cuda_err_lock);
        if (!cuda_err_code)
            cuda_err_code = to_nssm(rc);
        pthread_mutex_unlock(&cuda_err_lock);
    }
    return to_nssm(rc);
}

static int cuda_available(void)
{
    return ctx() != NULL;
}

static void *cuda_alloc(size_t bytes)
{
    void *p = NULL;
    if (!ctx())
        return NULL;
    if (cudaMallocManaged(&p, bytes ? bytes : 1, cudaMemAttachGlobal) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    if (cudaMemset(p, 0, bytes) != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) {
        cudaGetLastError();
        cudaFree(p);
        return NULL;
    }
    return p;
}

static void cuda_release(void *p)
{
    if (p) {
        cudaDeviceSynchronize();
        cudaFree(p);
    }
}

static int cuda_synchronize(void)
{
    kern_error e;
    if (!ctx())
        return NSSM_EUNSUPPORTED;
    int rc = note(kern_sync(ctx(), &e));
    pthread_mutex_lock(&cuda_err_lock);
    if (cuda_err_code) {
        rc = cuda_err_code;
        cuda_err_code = 0;
    }
    pthread_mutex_unlock(&cuda_err_lock);
    return rc;
}

static void cuda_zero(void *p, size_t bytes)
{
    kern_error e;
    note(kern_zero(ctx(), p, bytes, &e));
}

static void cuda_residual_forward(real *out, const real *a, const real *b, size_t n)
{
    kern_error e;
    note(kern_residual_forward(ctx(), out, a, b, n, &e));
}

static void cuda_copy_rows(void *dst, size_t dpitch, const void *src, size_t spitch,
                           size_t width, size_t rows)
{
    kern_error e;
    note(kern_copy_rows(ctx(), dst, dpitch, src, spitch, width, rows, &e));
}

static void cuda_quantile_head_forward(real *q, const real *raw, size_t rows, int Q, int mid)
{
    kern_error e;
    note(kern_quantile_head_forward(ctx(), q, raw, rows, Q, mid, &e));
}

/* The optimiser over the managed parameter arrays, on the device (the parameters never
 * travel to the host for the step; kern_sumsq brings back one double). */
static double cuda_sumsq(const real *x, size_t n)
{
    kern_error e;
    double s = NAN;
    if (note(kern_sumsq(ctx(), &s, x, n, &e)))
        return NAN;
    return s;
}

static void cuda_adamw_update(real *p, const real *grad, real *m, real *v, size_t n, double lr,
                              double b1, double b2, double eps, double wd, int step,
                              double gscale)
{
    kern_error e;
    note(kern_adamw_update(ctx(), p, grad, m, v, n, (float)lr, (float)b1, (float)b2, (float)eps,
                           (float)wd, step, (float)gscale, &e));
}

/* The loss comes back through the return value; a failure makes it NaN (and is reported by
 * the next synchronize(), as for the void operations). */
static double cuda_pinball_backward(real *draw, const real *raw, const real *q, const real *tgt,
                                    const double *taus, int B, int P, int H, int Q, int L,
                                    int mid, double scale)
{
    kern_error e;
    double loss = NAN;
    if (note(kern_pinball_backward(ctx(), draw, &loss, raw, q, tgt, taus, B, P, H, Q, L, mid,
                                   scale, &e)))
        return NAN;
    return loss;
}

static void cuda_linear_forward(real *out, const real *inp, const real *w, const real *bias,
                                int BT, int C, int OC)
{
    kern_error e;
    note(kern_linear_forward(ctx(), out, inp, w, bias, BT, C, OC, &e));
}

static void cuda_linear_backward(real *dinp, real *dw, real *dbias, const real *dout,
                                 const real *inp, const real *w, int BT, int C, int OC,
                                 int accumulate)
{
    kern_error e;
    note(kern_linear_backward(ctx(), accumulate, dinp, dw, dbias, dout, inp, w, BT, C, OC, &e));
}

static void cuda_rmsnorm_forward(real *out, real *rstd, const real *inp, const real *w, int BT,
                                 int C, real eps)
{
    kern_error e;
    note(kern_rmsnorm_forward(ctx(), out, rstd, inp, w, BT, C, eps, &e));
}

static void cuda_rmsnorm_backward(real *dinp, real *dw, const real *dout, const real *inp,
                                  const real *w, const real *rstd, int BT, int C)
{
    kern_error e;
    note(kern_rmsnorm_backward(ctx(), dinp, dw, dout, inp, w, rstd, BT, C, &e));
}

static void cuda_conv1d_silu_forward(real *out, real *act, const real *inp, const real *w,
                                     const real *bias, int B, int L, int C, int K)
{
    kern_error e;
    note(kern_conv1d_forward(ctx(), out, act, inp, w, bias, B, L, C, K, &e));
}

/* the SiLU's backward happens as the kernel loads dact and pre: no scratch needed */
static void cuda_conv1d_silu_backward(real *dinp, real *dw, real *dbias, const real *dact,
                                      const real *pre, const real *inp, const real *w, int B,
                                      int L, int C, int K, real *scratch, int accumulate)
{
    kern_error e;
    (void)scratch;
    note(kern_conv1d_backward(ctx(), accumulate, dinp, dw, dbias, dact, pre, inp, w, B, L, C,
                              K, &e));
}

static void cuda_silu_forward(real *out, const real *inp, size_t n)
{
    kern_error e;
    note(kern_silu_forward(ctx(), out, inp, n, &e));
}

static void cuda_glu_forward(real *out, const real *a, const real *b, size_t n)
{
    kern_error e;
    note(kern_glu_forward(ctx(), out, a, b, n, &e));
}

static void cuda_glu_backward(real *da, real *db, const real *dout, const real *a,
                              const real *b, size_t n)
{
    kern_error e;
    note(kern_glu_backward(ctx(), da, db, dout, a, b, n, &e));
}

static void cuda_silu_backward(real *dinp, const real *dout, const real *inp, size_t n,
                               int accumulate)
{
    kern_error e;
    note(kern_silu_backward(ctx(), accumulate, dinp, dout, inp, n, &e));
}

static void cuda_negexp_forward(real *out, const real *inp, size_t n)
{
    kern_error e;
    note(kern_negexp_forward(ctx(), out, inp, n, &e));
}

static void cuda_negexp_backward(real *dinp, const real *dout, const real *out, size_t n)
{
    kern_error e;
    note(kern_negexp_backward(ctx(), dinp, dout, out, n, &e));
}

/* The scan wants Bm, Cm (and dBm, dCm) on 16 bytes; model.c's arena slices usually are.
 * Otherwise work on aligned copies. */
static int aligned(const void *p)
{
    return ((uintptr_t)p & 15u) == 0;
}

static real *copy_aligned(const real *src, size_t n, int copy_in)
{
    kern_error e;
    void *p = NULL;
    if (kern_alloc(ctx(), &p, n * sizeof(real), &e))
        return NULL;
    if (copy_in && cudaMemcpyAsync(p, src, n * sizeof(real), cudaMemcpyDefault,
                                   (cudaStream_t)kern_ctx_stream(ctx())) != cudaSuccess) {
        cudaGetLastError();
        kern_free(ctx(), p);
        return NULL;
    }
    return p;
}

/* nssm_delta_act -> kern_delta_act (real is float here) */
static const kern_delta_act *kern_act(kern_delta_act *k, const nssm_delta_act *act)
{
    if (!act)
        return NULL;
    k->bias = act->bias;
    k->dbias = act->dbias;
    k->softplus = act->softplus;
    return k;
}

static void cuda_scan_forward(real *y, const real *u, const real *delta,
                              const nssm_delta_act *act, const real *A, const real *Bm,
                              const real *Cm, const real *Dskip, const real *z, int B, int L,
                              int D, int N, real *ypre, real *hchk, int threads)
{
    (void)ypre;
    (void)threads;
    kern_error e;
    const size_t nbc = (size_t)B * L * N;
    real *Bc = aligned(Bm) ? (real *)Bm : copy_aligned(Bm, nbc, 1);
    real *Cc = aligned(Cm) ? (real *)Cm : copy_aligned(Cm, nbc, 1);
    if (!Bc || !Cc) {
        note(KERN_ENOMEM);
    } else {
        kern_delta_act ka;
        note(kern_selective_scan_forward(ctx(), KERN_F32, y, hchk, u, delta, kern_act(&ka, act), A,
                                         Bc, Cc, Dskip, z, B, L, D, N, &e));
    }
    if (Bc && Bc != Bm)
        kern_free(ctx(), Bc); /* cudaFree waits for the kernel */
    if (Cc && Cc != Cm)
        kern_free(ctx(), Cc);
}

static int cuda_scan_backward(real *du, real *ddelta, real *dA, real *dBm, real *dCm,
                              real *dDskip, real *dz, const real *dy, const real *u,
                              const real *delta, const nssm_delta_act *act, const real *A,
                              const real *Bm, const real *Cm, const real *Dskip, const real *z,
                              int B, int L, int D, int N, const real *ypre, const real *hchk,
                              int threads, int accumulate)
{
    (void)ypre;
    (void)threads;
    kern_error e;
    const size_t nbc = (size_t)B * L * N;
    real *Bc = aligned(Bm) ? (real *)Bm : copy_aligned(Bm, nbc, 1);
    real *Cc = aligned(Cm) ? (real *)Cm : copy_aligned(Cm, nbc, 1);
    real *dBc = aligned(dBm) ? dBm : copy_aligned(dBm, nbc, accumulate);
    real *dCc = aligned(dCm) ? dCm : copy_aligned(dCm, nbc, accumulate);
    int rc;
    if (!Bc || !Cc || !dBc || !dCc) {
        rc = note(KERN_ENOMEM);
    } else {
        kern_delta_act ka;
        rc = note(kern_selective_scan_backward(ctx(), KERN_F32, accumulate, du, ddelta, dA, dBc, dCc,
                                               dDskip, dz, dy, u, delta, kern_act(&ka, act), A,
                                               Bc, Cc, Dskip, z, B, L, D, N, hchk, &e));
        cudaStream_t st = (cudaStream_t)kern_ctx_stream(ctx());
        if (!rc && dBc != dBm && cudaMemcpyAsync(dBm, dBc, nbc * sizeof(real), cudaMemcpyDefault, st))
            rc = note(KERN_ECUDA);
        if (!rc && dCc != dCm && cudaMemcpyAsync(dCm, dCc, nbc * sizeof(real), cudaMemcpyDefault, st))
            rc = note(KERN_ECUDA);
    }
    real *tmp[] = {Bc != Bm ? Bc : NULL, Cc != Cm ? Cc : NULL, dBc != dBm ? dBc : NULL,
                   dCc != dCm ? dCc : NULL};
    for (int i = 0; i < 4; i++)
        if (tmp[i])
            kern_free(ctx(), tmp[i]);
    return rc;
}

static void cuda_s4d_kernel_forward(real *K, const real *log_dt, const real *C_re,
                                    const real *C_im, const real *log_A_re, const real *A_im,
                                    int D, int N, int L)
{
    kern_error e;
    note(kern_s4d_kernel_forward(ctx(), K, log_dt, C_re, C_im, log_A_re, A_im, D, N, L, &e));
}

static void cuda_s4d_kernel_backward(real *dlog_dt, real *dC_re, real *dC_im, real *dlog_A_re,
                                     real *dA_im, const real *dK, const real *log_dt,
                                     const real *C_re, const real *C_im, const real *log_A_re,
                                     const real *A_im, int D, int N, int L)
{
    kern_error e;
    note(kern_s4d_kernel_backward(ctx(), dlog_dt, dC_re, dC_im, dlog_A_re, dA_im, dK, log_dt,
                                  C_re, C_im, log_A_re, A_im, D, N, L, &e));
}

static int cuda_s4d_conv_forward(real *y, const real *u, const real *K, const real *Dskip,
                                 int B, int L, int D, int threads)
{
    (void)threads;
    kern_error e;
    return note(kern_s4d_conv_forward(ctx(), y, u, K, Dskip, B, L, D, &e));
}

static int cuda_s4d_conv_backward(real *du, real *dK, real *dDskip, const real *dy,
                                  const real *u, const real *K, const real *Dskip, int B, int L,
                                  int D, int threads)
{
    (void)threads;
    kern_error e;
    return note(kern_s4d_conv_backward(ctx(), du, dK, dDskip, dy, u, K, Dskip, B, L, D, &e));
}

const nssm_backend nssm_backend_cuda = {
    .name = "cuda",
    .device = NSSM_DEVICE_CUDA,
    .available = cuda_available,
    .alloc = cuda_alloc,
    .release = cuda_release,
    .synchronize = cuda_synchronize,
    .zero = cuda_zero,
    .residual_forward = cuda_residual_forward,
    .copy_rows = cuda_copy_rows,
    .quantile_head_forward = cuda_quantile_head_forward,
    .pinball_backward = cuda_pinball_backward,
    .sumsq = cuda_sumsq,
    .adamw_update = cuda_adamw_update,
    .linear_forward = cuda_linear_forward,
    .linear_backward = cuda_linear_backward,
    .rmsnorm_forward = cuda_rmsnorm_forward,
    .rmsnorm_backward = cuda_rmsnorm_backward,
    .conv1d_silu_forward = cuda_conv1d_silu_forward,
    .conv1d_silu_backward = cuda_conv1d_silu_backward,
    .silu_forward = cuda_silu_forward,
    .silu_backward = cuda_silu_backward,
    .glu_forward = cuda_glu_forward,
    .glu_backward = cuda_glu_backward,
    .negexp_forward = cuda_negexp_forward,
    .negexp_backward = cuda_negexp_backward,
    .selective_scan_forward = cuda_scan_forward,
    .selective_scan_backward = cuda_scan_backward,
    .s4d_kernel_forward = cuda_s4d_kernel_forward,
    .s4d_kernel_backward = cuda_s4d_kernel_backward,
    .s4d_conv_forward = cuda_s4d_conv_forward,
    .s4d_conv_backward = cuda_s4d_conv_backward,
};
