/*
 * kernels/internal.h — what the files of kernels/ share and nobody else sees: the context
 * structure, the error helpers and the macros that turn a failed CUDA or cuBLAS call, or a
 * failed launch, into a KERN_ECUDA error naming the call. Included from C and CUDA files.
 */
#ifndef KERN_INTERNAL_H
#define KERN_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kern_ctx {
    int device;
    cudaStream_t stream;
    cublasHandle_t cublas;
    int sm_count;
    size_t smem_optin;  /* largest dynamic shared memory a block may ask for */
    char name[256];
    void *ws;           /* grow-only device workspace (scan backward without hchk) */
    int scan_states;    /* 0: choose; else states per thread in the scan (tests, bench) */
    int scan_variant;   /* KERN_SCAN_* flags (tests, bench); KERN_SCAN_AUTO by default, 0: baseline kernels */
    size_t ws_bytes;
};

int kern_err_set(kern_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kern_err_detail(kern_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kern_err_hint(kern_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Turns a CUDA status into an error naming `what` (returns KERN_OK for cudaSuccess). */
int kern_err_cuda(kern_error *err, int status, const char *what);
int kern_err_cublas(kern_error *err, int status, const char *what);
/* After a launch: the launch error, if any, as KERN_ECUDA naming the kernel. */
int kern_check_launch(kern_error *err, const char *kernel);
/* out (rows, cols) = bias broadcast over rows; dbias (cols) += column sums of dout. */
int kern_bias_broadcast(kern_ctx *ctx, float *out, const float *bias, int rows, int cols,
                        kern_error *err);
int kern_colsum_add(kern_ctx *ctx, float *dbias, const float *dout, int rows, int cols,
                    kern_error *err);
/* Tests and benchmarks: force the scan's states per thread (1, 2, 4, 8, 16 (forward only); 0 = choose). */
int kern_ctx_set_scan_states(kern_ctx *ctx, int S, kern_error *err);
/* Tests and benchmarks: scan kernel variants, a set of the flags below (0 = the baseline
 * kernels; a new context has KERN_SCAN_AUTO). Each flag picks an alternative kernel for one pass; the
 * results are the same to float32 rounding. See kernels/README.md. */
#define KERN_SCAN_FWD_TILE64 1 /* forward: 64-step tiles (a quarter of the barriers per step) */
#define KERN_SCAN_BWD_LEAN 2   /* backward: 4 barriers per 8-step sub-tile, fewer FLOPs */
#define KERN_SCAN_FWD_FMA 4    /* forward: C.h as one FMA chain (S-1 fewer instructions) */
#define KERN_SCAN_FWD_SPLIT2 8 /* forward, float32: two blocks per sequence (time halves),
                                  with the FMA chain */
#define KERN_SCAN_AUTO 16      /* the library's choice per shape (a new context's setting):
                                  backward lean; forward FMA chain, plus 64-step tiles when
                                  the grid is small (measured on an H100, kernels/README.md) */
#define KERN_SCAN_VARIANTS_ALL                                                              \
    (KERN_SCAN_FWD_TILE64 | KERN_SCAN_BWD_LEAN | KERN_SCAN_FWD_FMA | KERN_SCAN_FWD_SPLIT2 | \
     KERN_SCAN_AUTO)
int kern_ctx_set_scan_variant(kern_ctx *ctx, int flags, kern_error *err);
/* Device workspace of at least `bytes`, owned by the context (grown on demand). */
int kern_workspace(kern_ctx *ctx, size_t bytes, void **out, kern_error *err);

#define KERN_CUDA(call, err)                                                                \
    do {                                                                                    \
        int kern_rc_ = kern_err_cuda((err), (int)(call), #call);                            \
        if (kern_rc_)                                                                       \
            return kern_rc_;                                                                \
    } while (0)

#define KERN_LAUNCHED(name, err)                                                            \
    do {                                                                                    \
        int kern_rc_ = kern_check_launch((err), (name));                                    \
        if (kern_rc_)                                                                       \
            return kern_rc_;                                                                \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
