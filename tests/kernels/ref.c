/*
 * tests/kernels/ref.c — the double-precision reference of ref.h: direct loops over the
 * equations, every intermediate kept. Slow on purpose; test sizes only.
 */
#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"

static double silu(double x) { return x / (1.0 + exp(-x)); }
static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

void ref_scan_forward(double *y, double *hall, const double *u, const double *delta,
                      const double *A, const double *Bm, const double *Cm, const double *Dskip,
                      const double *z, int B, int L, int D, int N)
{
    double *h = malloc(sizeof(double) * N);
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            for (int n = 0; n < N; n++)
                h[n] = 0.0;
            for (int t = 0; t < L; t++) {
                const size_t i = ((size_t)b * L + t) * D + d;
                const double *B_t = Bm + ((size_t)b * L + t) * N;
                const double *C_t = Cm + ((size_t)b * L + t) * N;
                double acc = Dskip[d] * u[i];
                for (int n = 0; n < N; n++) {
                    h[n] = exp(delta[i] * A[d * N + n]) * h[n] + delta[i] * B_t[n] * u[i];
                    acc += C_t[n] * h[n];
                    if (hall)
                        hall[i * N + n] = h[n];
                }
                y[i] = z ? acc * silu(z[i]) : acc;
            }
        }
    free(h);
}

void ref_scan_backward(double *du, double *ddelta, double *dA, double *dBm, double *dCm,
                       double *dDskip, double *dz, const double *dy, const double *u,
                       const double *delta, const double *A, const double *Bm,
                       const double *Cm, const double *Dskip, const double *z, int B, int L,
                       int D, int N)
{
    const size_t BLD = (size_t)B * L * D;
    double *hall = malloc(sizeof(double) * BLD * N);
    double *y = malloc(sizeof(double) * BLD);
    double *g = malloc(sizeof(double) * N);
    ref_scan_forward(y, hall, u, delta, A, Bm, Cm, Dskip, NULL, B, L, D, N); /* y before gate */
    memset(dA, 0, sizeof(double) * D * N);
    memset(dBm, 0, sizeof(double) * B * L * N);
    memset(dCm, 0, sizeof(double) * B * L * N);
    memset(dDskip, 0, sizeof(double) * D);
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            for (int n = 0; n < N; n++)
                g[n] = 0.0;
            for (int t = L - 1; t >= 0; t--) {
                const size_t i = ((size_t)b * L + t) * D + d;
                const double *B_t = Bm + ((size_t)b * L + t) * N;
                const double *C_t = Cm + ((size_t)b * L + t) * N;
                double dys = dy[i];
                if (z) { /* y = ys silu(z) */
                    dz[i] = dy[i] * y[i] * sigm(z[i]) * (1.0 + z[i] * (1.0 - sigm(z[i])));
                    dys = dy[i] * silu(z[i]);
                }
                dDskip[d] += dys * u[i];
                double dui = Dskip[d] * dys, ddi = 0.0;
                for (int n = 0; n < N; n++) {
                    /* g_t = dL/dh_t: from y_t and from h_{t+1} = e^{delta_{t+1} A} h_t + ... */
                    if (t + 1 < L) {
                        const size_t i1 = ((size_t)b * L + t + 1) * D + d;
                        g[n] *= exp(delta[i1] * A[d * N + n]);
                    }
                    g[n] += C_t[n] * dys;
                    const double hprev = t > 0 ? hall[(i - D) * N + n] : 0.0;
                    const double e = exp(delta[i] * A[d * N + n]);
                    dCm[((size_t)b * L + t) * N + n] += dys * hall[i * N + n];
                    dBm[((size_t)b * L + t) * N + n] += g[n] * delta[i] * u[i];
                    dui += g[n] * delta[i] * B_t[n];
                    ddi += g[n] * (A[d * N + n] * e * hprev + B_t[n] * u[i]);
                    dA[d * N + n] += g[n] * delta[i] * e * hprev;
                }
                du[i] = dui;
                ddelta[i] = ddi;
            }
        }
    free(hall);
    free(y);
    free(g);
}

static double complex mode_cbar(double dt, double complex C, double complex A)
{
    return C * (cexp(dt * A) - 1.0) / A;
}

void ref_s4d_kernel_forward(double *K, const double *log_dt, const double *C_re,
                            const double *C_im, const double *log_A_re, const double *A_im,
                            int D, int N, int L)
{
    for (int d = 0; d < D; d++) {
        const double dt = exp(log_dt[d]);
        for (int l = 0; l < L; l++) {
            double complex acc = 0.0;
            for (int n = 0; n < N; n++) {
                const int i = d * N + n;
                const double complex A = -exp(log_A_re[i]) + I * A_im[i];
                const double complex C = C_re[i] + I * C_im[i];
                acc += mode_cbar(dt, C, A) * cexp((double)l * dt * A);
            }
            K[(size_t)d * L + l] = 2.0 * creal(acc);
        }
    }
}

/* Derivatives taken one real parameter at a time with complex arithmetic:
 * dK_l/dp = 2 Re(d(Cbar z^l)/dp). */
void ref_s4d_kernel_backward(double *dlog_dt, double *dC_re, double *dC_im, double *dlog_A_re,
                             double *dA_im, const double *dK, const double *log_dt,
                             const double *C_re, const double *C_im, const double *log_A_re,
                             const double *A_im, int D, int N, int L)
{
    for (int d = 0; d < D; d++) {
        const double dt = exp(log_dt[d]);
        double gdt = 0.0;
        for (int n = 0; n < N; n++) {
            const int i = d * N + n;
            const double complex A = -exp(log_A_re[i]) + I * A_im[i];
            const double complex C = C_re[i] + I * C_im[i];
            const double complex z = cexp(dt * A);
            const double complex cb = C * (z - 1.0) / A;
            const double complex dcb_dA = C * (dt * z * A - (z - 1.0)) / (A * A);
            const double complex dcb_ddt = C * z;
            double gr = 0, gi = 0, gare = 0, gaim = 0;
            for (int l = 0; l < L; l++) {
                const double complex zl = cexp((double)l * dt * A);
                const double w = 2.0 * dK[(size_t)d * L + l];
                /* C_re: d/dC_re (C..) = (z-1)/A z^l; C_im: i (z-1)/A z^l */
                gr += w * creal((z - 1.0) / A * zl);
                gi += w * creal(I * (z - 1.0) / A * zl);
                /* A: dw/dA = dcb_dA z^l + cb l dt z^l; A_re = -exp(log): times A_re */
                const double complex dwdA = dcb_dA * zl + cb * (double)l * dt * zl;
                gare += w * creal(dwdA) * creal(A);
                gaim += w * creal(I * dwdA);
                /* dt: dw/ddt = dcb_ddt z^l + cb l A z^l; log_dt: times dt */
                gdt += w * creal(dcb_ddt * zl + cb * (double)l * A * zl) * dt;
            }
            dC_re[i] = gr;
            dC_im[i] = gi;
            dlog_A_re[i] = gare;
            dA_im[i] = gaim;
        }
        dlog_dt[d] = gdt;
    }
}

void ref_conv_forward(double *y, const double *u, const double *K, const double *Dskip, int B,
                      int L, int D)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++)
            for (int d = 0; d < D; d++) {
                const size_t i = ((size_t)b * L + t) * D + d;
                double acc = Dskip ? Dskip[d] * u[i] : 0.0;
                for (int l = 0; l <= t; l++)
                    acc += K[(size_t)d * L + l] * u[((size_t)b * L + t - l) * D + d];
                y[i] = acc;
            }
}

void ref_conv_backward(double *du, double *dK, double *dDskip, const double *dy,
                       const double *u, const double *K, int B, int L, int D)
{
    memset(du, 0, sizeof(double) * B * L * D);
    memset(dK, 0, sizeof(double) * D * L);
    memset(dDskip, 0, sizeof(double) * D);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++)
            for (int d = 0; d < D; d++) {
                const size_t i = ((size_t)b * L + t) * D + d;
                dDskip[d] += dy[i] * u[i];
                for (int l = 0; l <= t; l++) {
                    const size_t j = ((size_t)b * L + t - l) * D + d;
                    dK[(size_t)d * L + l] += dy[i] * u[j];
                    du[j] += dy[i] * K[(size_t)d * L + l];
                }
            }
}

void ref_rmsnorm_forward(double *out, double *rstd, const double *inp, const double *w, int BT,
                         int C, double eps)
{
    for (int r = 0; r < BT; r++) {
        double ss = 0.0;
        for (int c = 0; c < C; c++)
            ss += inp[(size_t)r * C + c] * inp[(size_t)r * C + c];
        const double rs = 1.0 / sqrt(ss / C + eps);
        if (rstd)
            rstd[r] = rs;
        for (int c = 0; c < C; c++)
            out[(size_t)r * C + c] = inp[(size_t)r * C + c] * rs * w[c];
    }
}

void ref_rmsnorm_backward(double *dinp, double *dw, const double *dout, const double *inp,
                          const double *w, int BT, int C, double eps)
{
    memset(dw, 0, sizeof(double) * C);
    for (int r = 0; r < BT; r++) {
        const double *x = inp + (size_t)r * C, *g = dout + (size_t)r * C;
        double ss = 0.0, dot = 0.0;
        for (int c = 0; c < C; c++) {
            ss += x[c] * x[c];
            dot += g[c] * w[c] * x[c];
        }
        const double rs = 1.0 / sqrt(ss / C + eps);
        for (int c = 0; c < C; c++) {
            dinp[(size_t)r * C + c] = rs * w[c] * g[c] - rs * rs * rs * x[c] * dot / C;
            dw[c] += g[c] * x[c] * rs;
        }
    }
}
