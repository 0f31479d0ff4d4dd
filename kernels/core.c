/*
 * kernels/core.c — the plumbing under every kernel: error messages, the context (device,
 * stream, cuBLAS handle, properties, workspace), device memory and copies, the cuBLAS
 * matrix products. No arithmetic kernels live here; see scan.cu, s4d.cu, elementwise.cu.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- errors ------------------------------------------------------------------------- */

/* kern_err_set / _detail / _hint repeat neural_ssm/util.c's nssm_error_* (and kalman/'s
 * and models/' setters) on purpose: kernels/ is built alone on a machine with only the CUDA
 * toolkit and nothing in ssmd sits below it, and neural_ssm/ must build without kernels/,
 * so sharing these thirty lines would need a new folder under both layers. Each layer keeps
 * its own error type and prefix; keep the three setters alike when changing one. */
int kern_err_set(kern_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->code = code;
    err->detail[0] = '\0';
    err->hint[0] = '\0';
    return code;
}

void kern_err_detail(kern_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
}

void kern_err_hint(kern_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->hint, sizeof err->hint, fmt, ap);
    va_end(ap);
}

int kern_err_cuda(kern_error *err, int status, const char *what)
{
    if (status == (int)cudaSuccess)
        return KERN_OK;
    cudaError_t st = (cudaError_t)status;
    int code = st == cudaErrorMemoryAllocation ? KERN_ENOMEM
             : (st == cudaErrorNoDevice || st == cudaErrorInsufficientDriver) ? KERN_ENODEVICE
             : KERN_ECUDA;
    kern_err_set(err, code, "CUDA call failed: %s", what);
    kern_err_detail(err, "%s: %s", cudaGetErrorName(st), cudaGetErrorString(st));
    return code;
}

int kern_err_cublas(kern_error *err, int status, const char *what)
{
    if (status == (int)CUBLAS_STATUS_SUCCESS)
        return KERN_OK;
    int code = status == (int)CUBLAS_STATUS_ALLOC_FAILED ? KERN_ENOMEM : KERN_ECUDA;
    kern_err_set(err, code, "cuBLAS call failed: %s", what);
    kern_err_detail(err, "%s: %s", cublasGetStatusName((cublasStatus_t)status),
                    cublasGetStatusString((cublasStatus_t)status));
    return code;
}

int kern_check_launch(kern_error *err, const char *kernel)
{
    cudaError_t st = cudaGetLastError();
    if (st == cudaSuccess)
        return KERN_OK;
    kern_err_set(err, KERN_ECUDA, "could not launch kernel %s", kernel);
    kern_err_detail(err, "%s: %s", cudaGetErrorName(st), cudaGetErrorString(st));
    return KERN_ECUDA;
}

/* ---- context -------------------------------------------------------------------------- */

int kern_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky-free error so later calls start clean */
        return 0;
    }
    return n;
}

int kern_ctx_create(kern_ctx **out, int device, kern_error *err)
{
    if (!out)
        return kern_err_set(err, KERN_EINVAL, "kern_ctx_create: out is NULL");
    *out = NULL;
    int n = kern_device_count();
    if (n == 0) {
        kern_err_set(err, KERN_ENODEVICE, "no CUDA device is available");
        kern_err_hint(err, "use device: cpu, or check the NVIDIA driver with nvidia-smi");
        return KERN_ENODEVICE;
    }
    if (device < 0 || device >= n) {
        kern_err_set(err, KERN_EINVAL, "CUDA device %d does not exist", device);
        kern_err_detail(err, "%d device(s) found", n);
        return KERN_EINVAL;
    }
    kern_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return kern_err_set(err, KERN_ENOMEM, "out of memory creating a CUDA context");
    ctx->device = device;
    ctx->scan_variant = KERN_SCAN_AUTO; /* see scan_flags in scan.cu */
    int rc = kern_err_cuda(err, cudaSetDevice(device), "cudaSetDevice");
    struct cudaDeviceProp prop;
    if (!rc)
        rc = kern_err_cuda(err, cudaGetDeviceProperties(&prop, device),
                           "cudaGetDeviceProperties");
    if (!rc) {
        ctx->sm_count = prop.multiProcessorCount;
        ctx->smem_optin = prop.sharedMemPerBlockOptin;
        snprintf(ctx->name, sizeof ctx->name, "%s", prop.name);
        rc = kern_err_cuda(err, cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking),
                           "cudaStreamCreateWithFlags");
    }
    if (!rc)
        rc = kern_err_cublas(err, cublasCreate(&ctx->cublas), "cublasCreate");
    if (!rc)
        rc = kern_err_cublas(err, cublasSetStream(ctx->cublas, ctx->stream), "cublasSetStream");
    /* Plain float32 products: the CUDA path must agree with the CPU within float32
     * tolerance, so no TF32 shortcut. */
    if (!rc)
        rc = kern_err_cublas(err, cublasSetMathMode(ctx->cublas, CUBLAS_DEFAULT_MATH),
                             "cublasSetMathMode");
    if (rc) {
        kern_ctx_destroy(ctx);
        return rc;
    }
    *out = ctx;
    return KERN_OK;
}

void kern_ctx_destroy(kern_ctx *ctx)
{
    if (!ctx)
        return;
    if (ctx->ws)
        cudaFree(ctx->ws);
    if (ctx->cublas)
        cublasDestroy(ctx->cublas);
    if (ctx->stream)
        cudaStreamDestroy(ctx->stream);
    free(ctx);
}

const char *kern_ctx_device_name(const kern_ctx *ctx) { return ctx ? ctx->name : ""; }
int kern_ctx_sm_count(const kern_ctx *ctx) { return ctx ? ctx->sm_count : 0; }
void *kern_ctx_stream(kern_ctx *ctx) { return ctx ? (void *)ctx->stream : NULL; }

int kern_sync(kern_ctx *ctx, kern_error *err)
{
    KERN_CUDA(cudaStreamSynchronize(ctx->stream), err);
    return KERN_OK;
}

int kern_workspace(kern_ctx *ctx, size_t bytes, void **out, kern_error *err)
{
    if (bytes > ctx->ws_bytes) {
        if (ctx->ws) {
            KERN_CUDA(cudaStreamSynchronize(ctx->stream), err);
            KERN_CUDA(cudaFree(ctx->ws), err);
            ctx->ws = NULL;
            ctx->ws_bytes = 0;
        }
        KERN_CUDA(cudaMalloc(&ctx->ws, bytes), err);
        ctx->ws_bytes = bytes;
    }
    *out = ctx->ws;
    return KERN_OK;
}

/* ---- memory --------------------------------------------------------------------------- */

int kern_alloc(kern_ctx *ctx, void **p, size_t bytes, kern_error *err)
{
    (void)ctx;
    if (!p)
        return kern_err_set(err, KERN_EINVAL, "kern_alloc: p is NULL");
    *p = NULL;
    cudaError_t st = cudaMalloc(p, bytes ? bytes : 1);
    if (st != cudaSuccess) {
        *p = NULL;
        cudaGetLastError();
        kern_err_cuda(err, (int)st, "cudaMalloc");
        kern_err_detail(err, "%zu bytes requested: %s", bytes, cudaGetErrorString(st));
        return st == cudaErrorMemoryAllocation ? KERN_ENOMEM : KERN_ECUDA;
    }
    return KERN_OK;
}

void kern_free(kern_ctx *ctx, void *p)
{
    (void)ctx;
    if (p)
        cudaFree(p);
}

int kern_upload(kern_ctx *ctx, void *dst, const void *src, size_t bytes, kern_error *err)
{
    KERN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx->stream), err);
    KERN_CUDA(cudaStreamSynchronize(ctx->stream), err);
    return KERN_OK;
}

int kern_download(kern_ctx *ctx, void *dst, const void *src, size_t bytes, kern_error *err)
{
    KERN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream), err);
    KERN_CUDA(cudaStreamSynchronize(ctx->stream), err);
    return KERN_OK;
}

int kern_zero(kern_ctx *ctx, void *p, size_t bytes, kern_error *err)
{
    KERN_CUDA(cudaMemsetAsync(p, 0, bytes, ctx->stream), err);
    return KERN_OK;
}

int kern_copy_rows(kern_ctx *ctx, void *dst, size_t dpitch, const void *src, size_t spitch,
                   size_t width, size_t rows, kern_error *err)
{
    if (!ctx || (rows && width && (!dst || !src)) || width > dpitch || width > spitch)
        return kern_err_set(err, KERN_EINVAL, "kern_copy_rows: NULL pointer or row wider than its pitch");
    if (!rows || !width)
        return KERN_OK;
    KERN_CUDA(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyDefault,
                                ctx->stream),
              err);
    return KERN_OK;
}

size_t kern_dtype_size(kern_dtype dt) { return dt == KERN_BF16 ? 2 : 4; }

/* ---- matrix products ------------------------------------------------------------------ */

/* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands. */
int kern_gemm(kern_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
              kern_error *err)
{
    if (M < 0 || N < 0 || K < 0)
        return kern_err_set(err, KERN_EINVAL, "kern_gemm: negative size (%d, %d, %d)", M, N, K);
    if (M == 0 || N == 0)
        return KERN_OK;
    int rc = kern_err_cublas(
        err,
        cublasSgemm(ctx->cublas, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                    transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb, A, lda, &beta,
                    C, ldc),
        "cublasSgemm");
    if (rc)
        kern_err_hint(err, "M=%d N=%d K=%d lda=%d ldb=%d ldc=%d", M, N, K, lda, ldb, ldc);
    return rc;
}

int kern_linear_forward(kern_ctx *ctx, float *out, const float *inp, const float *w,
                        const float *bias, int BT, int C, int OC, kern_error *err)
{
    int rc;
    if (bias) {
        /* out = 1 bias^T first, then out += inp w^T: the bias rides on beta = 1. */
        rc = kern_bias_broadcast(ctx, out, bias, BT, OC, err);
        if (rc)
            return rc;
    }
    return kern_gemm(ctx, 0, 1, BT, OC, C, 1.0f, inp, C, w, C, bias ? 1.0f : 0.0f, out, OC,
                     err);
}

int kern_linear_backward(kern_ctx *ctx, int accumulate, float *dinp, float *dw, float *dbias,
                         const float *dout, const float *inp, const float *w, int BT, int C,
                         int OC, kern_error *err)
{
    int rc;
    if (dinp) { /* dinp (BT, C) (+)= dout (BT, OC) w (OC, C); beta 0 never reads dinp */
        rc = kern_gemm(ctx, 0, 0, BT, C, OC, 1.0f, dout, OC, w, C, accumulate ? 1.0f : 0.0f,
                       dinp, C, err);
        if (rc)
            return rc;
    }
    /* dw (OC, C) += dout^T (OC, BT) inp (BT, C) */
    rc = kern_gemm(ctx, 1, 0, OC, C, BT, 1.0f, dout, OC, inp, C, 1.0f, dw, C, err);
    if (rc)
        return rc;
    if (dbias)
        return kern_colsum_add(ctx, dbias, dout, BT, OC, err);
    return KERN_OK;
}
