/*
 * neural_ssm/s4d.c — the S4D mixer's numerical core on the CPU: the length-L convolution
 * kernel from the diagonal complex system (a Vandermonde product, ZOH discretization),
 * its backward to the parameters, the causal convolution with the kernel (direct loops
 * for short L, a zero-padded radix-2 FFT for long L) and the recurrent form used at
 * inference, which costs O(N) per step. Complex arithmetic is done in double precision
 * (the kernel and the FFT are a small part of the work). Shapes are in neural_ssm.h.
 */
#include <complex.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- the kernel K[d,l] = 2 Re sum_n Cbar_n z_n^l ------------------------------------- */

typedef struct s4d_mode {
    double complex A, z, C, Cbar;
    double dt;
} s4d_mode;

static s4d_mode s4d_mode_at(const real *log_dt, const real *C_re, const real *C_im,
                            const real *log_A_re, const real *A_im, int d, int n, int N)
{
    s4d_mode m;
    size_t i = (size_t)d * N + n;
    m.dt = exp((double)log_dt[d]);
    m.A = -exp((double)log_A_re[i]) + I * (double)A_im[i];
    m.z = cexp(m.dt * m.A);
    m.C = (double)C_re[i] + I * (double)C_im[i];
    m.Cbar = m.C * (m.z - 1) / m.A;
    return m;
}

void nssm_s4d_kernel_forward(real *K, const real *log_dt, const real *C_re, const real *C_im,
                             const real *log_A_re, const real *A_im, int D, int N, int L)
{
    double *acc = malloc(sizeof(double) * L);
    for (int d = 0; d < D; d++) {
        real *K_d = K + (size_t)d * L;
        if (!acc) { /* tiny allocation; fall back to accumulating in place */
            memset(K_d, 0, sizeof(real) * L);
        } else {
            memset(acc, 0, sizeof(double) * L);
        }
        for (int n = 0; n < N; n++) {
            s4d_mode m = s4d_mode_at(log_dt, C_re, C_im, log_A_re, A_im, d, n, N);
            double complex w = m.Cbar; /* Cbar z^l */
            for (int l = 0; l < L; l++) {
                if (acc)
                    acc[l] += 2 * creal(w);
                else
                    K_d[l] += (real)(2 * creal(w));
                w *= m.z;
            }
        }
        if (acc)
            for (int l = 0; l < L; l++)
                K_d[l] = (real)acc[l];
    }
    free(acc);
}

void nssm_s4d_kernel_backward(real *dlog_dt, real *dC_re, real *dC_im, real *dlog_A_re,
                              real *dA_im, const real *dK, const real *log_dt,
                              const real *C_re, const real *C_im, const real *log_A_re,
                              const real *A_im, int D, int N, int L)
{
    /* Gradients of complex quantities are written g(w) = dL/dRe w + i dL/dIm w; for a
     * holomorphic v = f(w), g(w) = conj(f'(w)) g(v); for a real x, dL/dx = Re(conj(g(v)) f'(x)). */
    for (int d = 0; d < D; d++) {
        const real *dK_d = dK + (size_t)d * L;
        double ddt = 0;
        for (int n = 0; n < N; n++) {
            size_t i = (size_t)d * N + n;
            s4d_mode m = s4d_mode_at(log_dt, C_re, C_im, log_A_re, A_im, d, n, N);
            /* S = sum_l dK[l] conj(z)^l, T = sum_l dK[l] l conj(z)^(l-1) */
            double complex S = 0, T = 0, p = 1, zc = conj(m.z);
            for (int l = 0; l < L; l++) {
                S += dK_d[l] * p;
                if (l + 1 < L)
                    T += dK_d[l + 1] * (l + 1) * p;
                p *= zc;
            }
            double complex gCbar = 2 * S;
            double complex gz = 2 * conj(m.Cbar) * T + conj(m.C / m.A) * gCbar;
            double complex gC = conj((m.z - 1) / m.A) * gCbar;
            double complex gA = conj(-m.C * (m.z - 1) / (m.A * m.A)) * gCbar +
                                conj(m.dt * m.z) * gz;
            dC_re[i] += (real)creal(gC);
            dC_im[i] += (real)cimag(gC);
            dlog_A_re[i] += (real)(creal(gA) * creal(m.A)); /* Re A = -exp(log_A_re) */
            dA_im[i] += (real)cimag(gA);
            ddt += creal(conj(gz) * m.A * m.z);
        }
        dlog_dt[d] += (real)(ddt * exp((double)log_dt[d]));
    }
}

/* ---- FFT ------------------------------------------------------------------------------ */

/* In-place iterative radix-2 FFT of x (n complex, n a power of two); inverse when inv
 * (unscaled: the caller divides by n). tw holds exp(-2 pi i k / n), k < n/2. */
static void fft(double complex *x, int n, const double complex *tw, int inv)
{
    for (int i = 1, j = 0; i < n; i++) {
        int bit = n >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j ^= bit;
        if (i < j) {
            double complex t = x[i];
            x[i] = x[j];
            x[j] = t;
        }
    }
    for (int len = 2; len <= n; len <<= 1) {
        int step = n / len;
        for (int i = 0; i < n; i += len) {
            for (int k = 0; k < len / 2; k++) {
                double complex w = inv ? conj(tw[k * step]) : tw[k * step];
                double complex a = x[i + k], b = x[i + k + len / 2] * w;
                x[i + k] = a + b;
                x[i + k + len / 2] = a - b;
            }
        }
    }
}

static int fft_size(int L)
{
    int n = 1;
    while (n < 2 * L)
        n <<= 1;
    return n;
}

static double complex *twiddles(int n)
{
    double complex *tw = malloc(sizeof(double complex) * (n / 2 > 0 ? n / 2 : 1));
    if (tw)
        for (int k = 0; k < n / 2; k++)
            tw[k] = cexp(-2.0 * M_PI * I * k / n);
    return tw;
}

/* One channel's FFT scratch: nbuf arrays of n complex in one zeroed block, the first
 * holding Kf = FFT(K_d zero-padded to n). NULL when out of memory; the caller frees it. */
static double complex *kernel_spectrum(const real *K_d, int L, int n, const double complex *tw,
                                       int nbuf)
{
    double complex *Kf = calloc((size_t)nbuf * n, sizeof(double complex));
    if (!Kf)
        return NULL;
    for (int l = 0; l < L; l++)
        Kf[l] = K_d[l];
    fft(Kf, n, tw, 0);
    return Kf;
}

/* ---- causal convolution with the kernel ------------------------------------------------ */

static void conv_direct_forward(real *y, const real *u, const real *K, const real *Dskip,
                                int B, int L, int D, int threads)
{
    (void)threads;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : 1)
#endif
    for (int d = 0; d < D; d++) {
        const real *K_d = K + (size_t)d * L;
        for (int b = 0; b < B; b++) {
            const real *u_b = u + (size_t)b * L * D;
            for (int t = 0; t < L; t++) {
                real acc = Dskip[d] * u_b[(size_t)t * D + d];
                for (int l = 0; l <= t; l++)
                    acc += K_d[l] * u_b[(size_t)(t - l) * D + d];
                y[((size_t)b * L + t) * D + d] = acc;
            }
        }
    }
}

static void conv_direct_backward(real *du, real *dK, real *dDskip, const real *dy,
                                 const real *u, const real *K, const real *Dskip, int B,
                                 int L, int D, int threads)
{
    (void)threads;
    /* forward: y[t] = sum_{l<=t} K[l] u[t-l] + Dskip u[t] */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : 1)
#endif
    for (int d = 0; d < D; d++) {
        const real *K_d = K + (size_t)d * L;
        real *dK_d = dK + (size_t)d * L;
        for (int b = 0; b < B; b++) {
            const real *u_b = u + (size_t)b * L * D, *dy_b = dy + (size_t)b * L * D;
            real *du_b = du + (size_t)b * L * D;
            for (int t = 0; t < L; t++) {
                real g = dy_b[(size_t)t * D + d];
                dDskip[d] += g * u_b[(size_t)t * D + d];
                du_b[(size_t)t * D + d] += g * Dskip[d];
                for (int l = 0; l <= t; l++) {
                    dK_d[l] += g * u_b[(size_t)(t - l) * D + d];
                    du_b[(size_t)(t - l) * D + d] += g * K_d[l];
                }
            }
        }
    }
}

/* FFT path, per channel d: Kf = FFT(K_d padded to n >= 2L). Forward packs two sequences
 * in one complex FFT (u_b1 + i u_b2): K is real, so the real and imaginary parts of the
 * inverse transform are the two convolutions. */
static int conv_fft_forward(real *y, const real *u, const real *K, const real *Dskip, int B,
                            int L, int D, int threads)
{
    (void)threads;
    const int n = fft_size(L);
    double complex *tw = twiddles(n);
    if (!tw)
        return NSSM_ENOMEM;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : 1) \
    reduction(| : failed)
#endif
    for (int d = 0; d < D; d++) {
        double complex *Kf = kernel_spectrum(K + (size_t)d * L, L, n, tw, 2);
        if (!Kf) {
            failed = 1;
            continue;
        }
        double complex *x = Kf + n;
        for (int b = 0; b < B; b += 2) {
            int two = b + 1 < B;
            for (int t = 0; t < n; t++) {
                double re = t < L ? u[((size_t)b * L + t) * D + d] : 0;
                double im = two && t < L ? u[((size_t)(b + 1) * L + t) * D + d] : 0;
                x[t] = re + I * im;
            }
            fft(x, n, tw, 0);
            for (int k = 0; k < n; k++)
                x[k] *= Kf[k];
            fft(x, n, tw, 1);
            for (int t = 0; t < L; t++) {
                size_t i0 = ((size_t)b * L + t) * D + d;
                y[i0] = (real)(creal(x[t]) / n) + Dskip[d] * u[i0];
                if (two) {
                    size_t i1 = ((size_t)(b + 1) * L + t) * D + d;
                    y[i1] = (real)(cimag(x[t]) / n) + Dskip[d] * u[i1];
                }
            }
        }
        free(Kf);
    }
    free(tw);
    return failed ? NSSM_ENOMEM : NSSM_OK;
}

/* Backward by FFT: with DY = FFT(dy), U = FFT(u) (one packed transform of dy + i u),
 *   du  = IFFT(DY conj(Kf))        (correlation: du[s] = sum_t dy[t] K[t-s])
 *   dK += IFFT(sum_b DY conj(U))   (correlation: dK[l] = sum_t dy[t] u[t-l])
 * Zero padding to n >= 2L keeps the circular wrap-around out of indices 0..L-1. */
static int conv_fft_backward(real *du, real *dK, real *dDskip, const real *dy, const real *u,
                             const real *K, const real *Dskip, int B, int L, int D,
                             int threads)
{
    (void)threads;
    const int n = fft_size(L);
    double complex *tw = twiddles(n);
    if (!tw)
        return NSSM_ENOMEM;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads > 0 ? threads : 1) \
    reduction(| : failed)
#endif
    for (int d = 0; d < D; d++) {
        double complex *Kf = kernel_spectrum(K + (size_t)d * L, L, n, tw, 4);
        if (!Kf) {
            failed = 1;
            continue;
        }
        double complex *x = Kf + n, *g = Kf + 2 * n, *acc = Kf + 3 * n;
        double dD = 0;
        /* two sequences at a time: du_b1 + i du_b2 = IFFT(G1 + i G2), both real */
        for (int b = 0; b < B; b += 2) {
            const int two = b + 1 < B;
            for (int k = 0; k < n; k++)
                g[k] = 0;
            for (int s = 0; s < 1 + two; s++) {
                const int bb = b + s;
                for (int t = 0; t < n; t++) {
                    size_t i = ((size_t)bb * L + t) * D + d;
                    x[t] = t < L ? dy[i] + I * (double)u[i] : 0;
                    if (t < L)
                        dD += (double)dy[i] * u[i];
                }
                fft(x, n, tw, 0);
                const double complex phase = s ? I : 1;
                for (int k = 0; k < n; k++) {
                    /* unpack the two real transforms */
                    double complex xk = x[k], xm = conj(x[(n - k) % n]);
                    double complex DY = 0.5 * (xk + xm), U = -0.5 * I * (xk - xm);
                    g[k] += phase * (DY * conj(Kf[k]));
                    acc[k] += DY * conj(U);
                }
            }
            fft(g, n, tw, 1);
            for (int t = 0; t < L; t++) {
                size_t i0 = ((size_t)b * L + t) * D + d;
                du[i0] += (real)(creal(g[t]) / n) + Dskip[d] * dy[i0];
                if (two) {
                    size_t i1 = ((size_t)(b + 1) * L + t) * D + d;
                    du[i1] += (real)(cimag(g[t]) / n) + Dskip[d] * dy[i1];
                }
            }
        }
        fft(acc, n, tw, 1);
        for (int l = 0; l < L; l++)
            dK[(size_t)d * L + l] += (real)(creal(acc[l]) / n);
        dDskip[d] += (real)dD;
        free(Kf);
    }
    free(tw);
    return failed ? NSSM_ENOMEM : NSSM_OK;
}

int nssm_s4d_conv_forward_algo(real *y, const real *u, const real *K, const real *Dskip,
                               int B, int L, int D, int threads, int use_fft)
{
    if (use_fft)
        return conv_fft_forward(y, u, K, Dskip, B, L, D, threads);
    conv_direct_forward(y, u, K, Dskip, B, L, D, threads);
    return NSSM_OK;
}

int nssm_s4d_conv_backward_algo(real *du, real *dK, real *dDskip, const real *dy,
                                const real *u, const real *K, const real *Dskip, int B,
                                int L, int D, int threads, int use_fft)
{
    if (use_fft)
        return conv_fft_backward(du, dK, dDskip, dy, u, K, Dskip, B, L, D, threads);
    conv_direct_backward(du, dK, dDskip, dy, u, K, Dskip, B, L, D, threads);
    return NSSM_OK;
}

int nssm_s4d_conv_forward(real *y, const real *u, const real *K, const real *Dskip, int B,
                          int L, int D, int threads)
{
    return nssm_s4d_conv_forward_algo(y, u, K, Dskip, B, L, D, threads, L >= NSSM_FFT_MIN_L);
}

int nssm_s4d_conv_backward(real *du, real *dK, real *dDskip, const real *dy, const real *u,
                           const real *K, const real *Dskip, int B, int L, int D,
                           int threads)
{
    return nssm_s4d_conv_backward_algo(du, dK, dDskip, dy, u, K, Dskip, B, L, D, threads,
                                       L >= NSSM_FFT_MIN_L);
}

/* ---- recurrent form (inference) --------------------------------------------------------- */

int nssm_s4d_recurrent_forward(real *y, const real *u, const real *log_dt, const real *C_re,
                               const real *C_im, const real *log_A_re, const real *A_im,
                               const real *Dskip, int B, int L, int D, int N)
{
    double complex *z = malloc(sizeof(double complex) * N);
    double complex *Cbar = malloc(sizeof(double complex) * N);
    double complex *h = malloc(sizeof(double complex) * N);
    if (!z || !Cbar || !h) {
        free(z);
        free(Cbar);
        free(h);
        return NSSM_ENOMEM;
    }
    for (int d = 0; d < D; d++) {
        for (int n = 0; n < N; n++) {
            s4d_mode m = s4d_mode_at(log_dt, C_re, C_im, log_A_re, A_im, d, n, N);
            z[n] = m.z;
            Cbar[n] = m.Cbar;
        }
        for (int b = 0; b < B; b++) {
            for (int n = 0; n < N; n++)
                h[n] = 0;
            for (int t = 0; t < L; t++) {
                size_t i = ((size_t)b * L + t) * D + d;
                double acc = 0;
                for (int n = 0; n < N; n++) {
                    h[n] = z[n] * h[n] + (double)u[i];
                    acc += 2 * creal(Cbar[n] * h[n]);
                }
                y[i] = (real)(acc + (double)Dskip[d] * u[i]);
            }
        }
    }
    free(z);
    free(Cbar);
    free(h);
    return NSSM_OK;
}
