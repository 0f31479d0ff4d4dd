/*
 * kalman/internal.h — private helpers shared by the files of kalman/ (not installed, not
 * part of the API: everything outside kalman/ uses kalman.h only).
 *
 * Holds the workspace layout, the sparse description of the system that the filter
 * prepares once per call (so the per-step work is O(nnz(T) m) instead of O(m^3)), and a
 * few small dense kernels.
 */
#ifndef KALMAN_INTERNAL_H
#define KALMAN_INTERNAL_H

#include "kalman.h"

struct kalman_workspace {
    int m, r;              /* capacity */
    /* sparse T: row i has entries Tidx[Trow[i] .. Trow[i+1]) with values Tval */
    int *Trow;             /* (m+1) */
    int *Tidx;             /* (m*m) */
    double *Tval;          /* (m*m) */
    /* sparse T' (the same entries by columns of T), for the smoother's T' N T */
    int *TtRow;            /* (m+1) */
    int *TtIdx;            /* (m*m) */
    double *TtVal;         /* (m*m) */
    /* T = G + E: G has at most one entry per row and per column (shifts, unit blocks:
     * gathers), E the few remaining rows (e.g. the level row [1 1] and the dummy
     * seasonal's sum row), so T A T' and T' A T cost a gather plus O(|E| m) instead of
     * two full sparse passes with transposes. ge_ok = 0: the decomposition does not pay
     * (too many E rows) and the plain sparse sandwich runs. */
    int ge_ok;
    int *Gsrc;             /* (m) column of row i's G entry, -1 when none */
    double *Gval;          /* (m) */
    int *Gtsrc;            /* (m) row of column i's G entry (G' row i), -1 when none */
    double *Gtval;         /* (m) */
    /* the gathers as runs: columns k0..k0+len of a row of G A G' are val * the row's
     * source row at src..src+len (val 0: zeros); Gruns for G, Gtruns for G' */
    int nGruns, nGtruns;
    int *Gruns;            /* (m, 3) k0, len, src */
    double *Grunval;       /* (m) */
    int *Gtruns;           /* (m, 3) */
    double *Gtrunval;      /* (m) */
    int nE;                /* number of E rows */
    int *Erow;             /* (m) which row of T each E row is */
    int *Estart;           /* (m+1) entries of E row q: Estart[q] .. Estart[q+1) */
    int *Eidx;             /* (m*m) */
    double *Eval;          /* (m*m) */
    int *Zidx;             /* (m) nonzero positions of Z */
    double *Zval;          /* (m) */
    int nZ;
    double *RQR;           /* (m,m) R Q R' */
    /* scratch */
    double *mat[8];        /* 8 (m,m) matrices */
    double *vec[8];        /* 8 (m) vectors */
    double *kron;          /* (k2,k2) Kronecker system for small Lyapunov solves, k<=12 */
    int *ipiv;             /* (max(k2, m)) */
    kalman_state st;       /* filter state for kalman_loglik */
};

#define KALMAN_KRON_MAX 12

/* Diffuse-phase tolerances: F_inf above FINF_TOL counts as nonzero; the diffuse phase
 * ends when every |P_inf| entry is below PINF_TOL (P_inf is unit-scaled). */
#define KALMAN_FINF_TOL 1e-9
#define KALMAN_PINF_TOL 1e-9
/* Steady-state switch: ||P_{t+1} - P_t|| <= STEADY_TOL ||P_{t+1}|| (Frobenius). */
#define KALMAN_STEADY_TOL 1e-11

/* Prepares the sparse T / Z lists and RQR' for s in ws. */
void kalman__prepare(kalman_workspace *ws, const kalman_ssm *s);
/* out = T A T' for symmetric A (m,m) using ws's sparse T; W is (m,m) scratch. out may
 * not alias A or W. The result is exactly symmetric when A is (the filter keeps every
 * covariance it passes exactly symmetric). */
void kalman__tat(const kalman_workspace *ws, int m, const double *A, double *W, double *out);
/* out = T' A T for symmetric A, as kalman__tat with T' in place of T (the smoother's
 * backward recursions). */
void kalman__ttat(const kalman_workspace *ws, int m, const double *A, double *W, double *out);
/* out = T x (+ c when c != NULL) using ws's sparse T; out may not alias x. */
void kalman__tx(const kalman_workspace *ws, int m, const double *x, const double *c, double *out);
/* out = T' x using sparse T. */
void kalman__ttx(const kalman_workspace *ws, int m, const double *x, double *out);
/* Dense C = A B ((n,n) matrices), C may not alias. */
void kalman__matmul(int n, const double *A, const double *B, double *C);

/* Derivative of the system with respect to one parameter that enters H, R Q R' and
 * P1star linearly (and nothing else): dH and the nonzero entries (flat index i*m + j) of
 * d(RQR') and dP1star. */
typedef struct kalman__dsys {
    double dH;
    int nq;
    const int *qidx;
    const double *qval;
    int np1;
    const int *pidx;
    const double *pval;
} kalman__dsys;

/* Score of the log-likelihood (D&K 2012 section 7.3.3, the disturbance-smoother form,
 * including the exact diffuse phase) with respect to np such parameters:
 *   g[i] = 0.5 [ sum_t (u_t^2 / s - D_t) dH + sum_t tr((r_t r_t' / s - N_t) dRQR')
 *                + tr((r_0 r_0' / s - N_0) dP1star) ]
 * from a filter run that stored v, F, Finf, K and Kinf (no P arrays needed). s is the
 * concentrated scale (1 when not concentrating): the score of the profile likelihood
 * with respect to the relative variances. */
int kalman__score(const kalman_ssm *s, const double *y, const kalman_store *store, double scale,
                  int np, const kalman__dsys *ds, double *g, kalman_workspace *ws);

/* LAPACK (Fortran interface). */
void dgesv_(const int *n, const int *nrhs, double *a, const int *lda, int *ipiv, double *b,
            const int *ldb, int *info);
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);

#endif
