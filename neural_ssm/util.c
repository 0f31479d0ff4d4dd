/*
 * neural_ssm/util.c — the small pieces every other file needs: error messages, the
 * matrix multiply behind Linear (BLAS or a blocked fallback), the random number generator
 * and the device names. Nothing here knows about layers or models.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#ifndef SSMD_NO_BLAS
#include <cblas.h>
#endif

/* ---- errors ------------------------------------------------------------------------- */

/* The same three setters as kernels/core.c's kern_err_*, kept apart on purpose:
 * neural_ssm/ builds and runs without kernels/ (CUDA is optional) and kernels/ must not
 * depend on neural_ssm/, so each layer owns its error type and its setters. */
int nssm_error_set(nssm_error *err, int code, const char *fmt, ...)
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

void nssm_error_detail(nssm_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
}

void nssm_error_hint(nssm_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->hint, sizeof err->hint, fmt, ap);
    va_end(ap);
}

/* ---- gemm --------------------------------------------------------------------------- */

#ifdef SSMD_NO_BLAS
/* Cache-blocked fallback for machines without BLAS. Row-major; A is (M,K) or (K,M) when
 * transposed, B is (K,N) or (N,K). The i-k-j loop order keeps the innermost loop on
 * contiguous rows of B and C when B is not transposed. */
#define GEMM_BLOCK 64
void nssm_gemm(int transA, int transB, int M, int N, int K, real alpha, const real *A,
               int lda, const real *B, int ldb, real beta, real *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
    for (int i0 = 0; i0 < M; i0 += GEMM_BLOCK)
        for (int k0 = 0; k0 < K; k0 += GEMM_BLOCK)
            for (int j0 = 0; j0 < N; j0 += GEMM_BLOCK) {
                int i1 = i0 + GEMM_BLOCK < M ? i0 + GEMM_BLOCK : M;
                int k1 = k0 + GEMM_BLOCK < K ? k0 + GEMM_BLOCK : K;
                int j1 = j0 + GEMM_BLOCK < N ? j0 + GEMM_BLOCK : N;
                for (int i = i0; i < i1; i++) {
                    real *c_i = C + (size_t)i * ldc;
                    for (int k = k0; k < k1; k++) {
                        real a = transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                        a *= alpha;
                        if (!transB) {
                            const real *b_k = B + (size_t)k * ldb;
                            for (int j = j0; j < j1; j++)
                                c_i[j] += a * b_k[j];
                        } else {
                            for (int j = j0; j < j1; j++)
                                c_i[j] += a * B[(size_t)j * ldb + k];
                        }
                    }
                }
            }
}
#else
void nssm_gemm(int transA, int transB, int M, int N, int K, real alpha, const real *A,
               int lda, const real *B, int ldb, real beta, real *C, int ldc)
{
#ifdef NSSM_REAL_DOUBLE
    cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                ldc);
#else
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                ldc);
#endif
}
#endif

/* ---- random numbers ------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void nssm_rng_seed(nssm_rng *r, uint64_t seed)
{
    uint64_t x = seed ? seed : 1;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t nssm_rng_next(nssm_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double nssm_rng_uniform(nssm_rng *r)
{
    return (double)(nssm_rng_next(r) >> 11) * 0x1.0p-53;
}

double nssm_rng_normal(nssm_rng *r)
{
    double u1 = nssm_rng_uniform(r), u2 = nssm_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* ---- devices ------------------------------------------------------------------------- */

int nssm_device_parse(const char *text, nssm_device *out, nssm_error *err)
{
    if (!text || !*text || strcasecmp(text, "auto") == 0)
        *out = NSSM_DEVICE_AUTO;
    else if (strcasecmp(text, "cpu") == 0)
        *out = NSSM_DEVICE_CPU;
    else if (strcasecmp(text, "cuda") == 0 || strcasecmp(text, "gpu") == 0)
        *out = NSSM_DEVICE_CUDA;
    else {
        nssm_error_set(err, NSSM_EINVAL, "unknown device \"%s\"", text);
        nssm_error_hint(err, "use \"auto\", \"cpu\" or \"cuda\"");
        return NSSM_EINVAL;
    }
    return NSSM_OK;
}
