/*
 * neural_ssm/internal.h — private helpers shared by the files of neural_ssm/ (and its
 * tests): the `real` type with its math functions, the matrix multiply behind Linear,
 * a small deterministic random number generator and the direct/FFT convolution switches.
 * Not installed, not part of the public interface.
 */
#ifndef NSSM_INTERNAL_H
#define NSSM_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "neural_ssm.h"

typedef nssm_real real;

#ifdef NSSM_REAL_DOUBLE
#define real_exp exp
#define real_log log
#define real_log1p log1p
#define real_sqrt sqrt
#define real_fabs fabs
#else
#define real_exp expf
#define real_log logf
#define real_log1p log1pf
#define real_sqrt sqrtf
#define real_fabs fabsf
#endif

/* NSSM_HOT marks the loops a forecast spends its time in. Where CMake found an x86-64
 * build host with AVX2 (NSSM_CLONES), GCC builds such a function twice, for x86-64-v4
 * (AVX-512) and for the file's own target, and the loader picks one by the CPU it runs
 * on (target_clones, an ifunc): AVX-512 where the machine has it, AVX2 elsewhere and
 * under valgrind, whose virtual CPU has no AVX-512. */
#if defined(NSSM_CLONES) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define NSSM_HOT __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define NSSM_HOT
#endif

/* exp for the hot loops (the scan's exp(delta A), SiLU, the gates): Cephes' expf
 * polynomial after range reduction by ln 2, about 1 ulp on [-87, 88] (clamped outside),
 * written without calls or branches so the compiler vectorizes the loops around it.
 * The double build keeps libm's exp. */
#ifdef NSSM_REAL_DOUBLE
static inline real nssm_exp(real x)
{
    return exp(x);
}
#else
static inline float nssm_exp(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* round to nearest by the 1.5 * 2^23 trick: no call, no rounding instruction needed */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}
#endif

/* softplus(x) = log(1 + e^x), x itself above 20 (PyTorch's threshold). The float build
 * computes log1p(e^-|x|) with Cephes' logf polynomial on [sqrt(1/2), sqrt(2)) and the
 * log1p(y) = log(u) y / (u - 1), u = 1 + y correction, so small e^x stay accurate. */
#ifdef NSSM_REAL_DOUBLE
static inline real nssm_softplus(real x)
{
    return x > 20 ? x : log1p(exp(x));
}
#else
static inline float nssm_softplus(float x)
{
    float ax = x < 0 ? -x : x, y = nssm_exp(-ax); /* y in (0, 1] */
    float u = 1.0f + y;
    float e = u > 1.41421356f ? 1.0f : 0.0f;
    float m = e > 0 ? u * 0.5f : u, t = m - 1.0f, t2 = t * t;
    float p = 7.0376836292e-2f;
    p = p * t - 1.1514610310e-1f;
    p = p * t + 1.1676998740e-1f;
    p = p * t - 1.2420140846e-1f;
    p = p * t + 1.4249322787e-1f;
    p = p * t - 1.6668057665e-1f;
    p = p * t + 2.0000714765e-1f;
    p = p * t - 2.4999993993e-1f;
    p = p * t + 3.3333331174e-1f;
    float logu = t + (p * t * t2 - 0.5f * t2) + e * 0.693147180559945f;
    float l1p = u == 1.0f ? y : logu * (y / (u - 1.0f));
    float r = (x > 0 ? x : 0.0f) + l1p;
    return x > 20 ? x : r;
}
#endif

/* C (M, N) = alpha * op(A) op(B) + beta * C, row-major, op = transpose when the flag is
 * set. cblas_sgemm (cblas_dgemm in the double build) when BLAS was found, otherwise a
 * cache-blocked loop (SSMD_NO_BLAS). */
void nssm_gemm(int transA, int transB, int M, int N, int K, real alpha, const real *A,
               int lda, const real *B, int ldb, real beta, real *C, int ldc);

/* splitmix64-seeded xoshiro256** : deterministic across platforms. */
typedef struct nssm_rng {
    uint64_t s[4];
} nssm_rng;
void nssm_rng_seed(nssm_rng *r, uint64_t seed);
uint64_t nssm_rng_next(nssm_rng *r);
double nssm_rng_uniform(nssm_rng *r);   /* [0, 1) */
double nssm_rng_normal(nssm_rng *r);    /* N(0, 1), Box-Muller */

/* S4D convolution with an explicit algorithm choice (tests compare the two):
 * use_fft 0 = direct O(L^2) loops, 1 = zero-padded radix-2 FFT. */
int nssm_s4d_conv_forward_algo(real *y, const real *u, const real *K, const real *Dskip,
                               int B, int L, int D, int threads, int use_fft);
int nssm_s4d_conv_backward_algo(real *du, real *dK, real *dDskip, const real *dy,
                                const real *u, const real *K, const real *Dskip, int B,
                                int L, int D, int threads, int use_fft);
/* The model's flat parameter and gradient arrays (model.c), for the trainer and tests. */
real *nssm_model_params_(nssm_model *m);
real *nssm_model_grads_(nssm_model *m);
const nssm_backend *nssm_model_backend_(const nssm_model *m);

/* L at or above which nssm_s4d_conv_* switch to the FFT. */
#define NSSM_FFT_MIN_L 64

#endif
