/*
 * tests/kernels/ref.h — a plain-C, double-precision reference for every kernel in
 * kernels/, written straight from the equations in kernels/kernels.h and nothing else (no
 * chunking, no recomputation, all states stored), so that a bug in the CUDA code cannot be
 * copied into its check. Its own backward passes are checked against central finite
 * differences of its forward passes (test_kernels.c), which needs no GPU.
 */
#ifndef KERN_TEST_REF_H
#define KERN_TEST_REF_H

#include <stddef.h>

/* Selective scan. u, delta, z, y, ypre (B,L,D); A (D,N); Bm, Cm (B,L,N); Dskip (D);
 * z may be NULL. hall (B,L,D,N) gets every state when not NULL. */
void ref_scan_forward(double *y, double *hall, const double *u, const double *delta,
                      const double *A, const double *Bm, const double *Cm, const double *Dskip,
                      const double *z, int B, int L, int D, int N);
/* Gradients of sum(dy * y), OVERWRITTEN: du, ddelta, dz (B,L,D); dA (D,N); dBm, dCm
 * (B,L,N); dDskip (D). dz unused when z is NULL. */
void ref_scan_backward(double *du, double *ddelta, double *dA, double *dBm, double *dCm,
                       double *dDskip, double *dz, const double *dy, const double *u,
                       const double *delta, const double *A, const double *Bm,
                       const double *Cm, const double *Dskip, const double *z, int B, int L,
                       int D, int N);

/* S4D kernel K (D, L) and its gradients (overwritten) for dK. */
void ref_s4d_kernel_forward(double *K, const double *log_dt, const double *C_re,
                            const double *C_im, const double *log_A_re, const double *A_im,
                            int D, int N, int L);
void ref_s4d_kernel_backward(double *dlog_dt, double *dC_re, double *dC_im, double *dlog_A_re,
                             double *dA_im, const double *dK, const double *log_dt,
                             const double *C_re, const double *C_im, const double *log_A_re,
                             const double *A_im, int D, int N, int L);
/* Causal convolution y (B,L,D) = K * u + Dskip u, and its gradients (overwritten). */
void ref_conv_forward(double *y, const double *u, const double *K, const double *Dskip, int B,
                      int L, int D);
void ref_conv_backward(double *du, double *dK, double *dDskip, const double *dy,
                       const double *u, const double *K, int B, int L, int D);

void ref_rmsnorm_forward(double *out, double *rstd, const double *inp, const double *w, int BT,
                         int C, double eps);
/* Gradients (overwritten) of sum(dout * out). */
void ref_rmsnorm_backward(double *dinp, double *dw, const double *dout, const double *inp,
                          const double *w, int BT, int C, double eps);

#endif
