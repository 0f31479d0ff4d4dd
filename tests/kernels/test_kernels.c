/*
 * tests/kernels/test_kernels.c — every CUDA kernel in kernels/ against the double-precision
 * reference in ref.c, on fresh random inputs, with every output poisoned (NaN) before the
 * run and checked to be fully written afterwards. Tolerance: max |gpu - ref| / max |ref|
 * <= 1e-4 for float32 (bf16 inputs/outputs: 1e-2, about two bf16 half-ulps).
 *
 * The reference itself is checked first against central finite differences of its own
 * forward passes; those tests and the argument checks need no GPU and always run. The GPU
 * tests call skip() when no CUDA device is present (CI has none).
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cuda_runtime_api.h>

#include "internal.h"
#include "kernels.h"
#include "ref.h"

/* ---- helpers ---------------------------------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double unif(rng *r, double lo, double hi)
{
    return lo + (hi - lo) * ((rng_next(r) >> 11) * (1.0 / 9007199254740992.0));
}
static double gauss(rng *r)
{
    double u1 = unif(r, 1e-12, 1.0), u2 = unif(r, 0.0, 1.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static uint16_t to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    x += 0x7fffu + ((x >> 16) & 1u); /* round to nearest even (inputs are finite) */
    return (uint16_t)(x >> 16);
}
static float from_bf16(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static float *fvec(size_t n) { float *p = malloc(sizeof(float) * (n ? n : 1)); assert_non_null(p); return p; }
static double *dvec(size_t n) { double *p = calloc(n ? n : 1, sizeof(double)); assert_non_null(p); return p; }
static double *todouble(const float *x, size_t n)
{
    double *d = dvec(n);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

static kern_ctx *g_ctx;

static kern_error g_err;
#define K_OK(call)                                                                          \
    do {                                                                                    \
        int rc_ = (call);                                                                   \
        if (rc_)                                                                            \
            fail_msg("%s -> %d: %s (%s)", #call, rc_, g_err.message, g_err.detail);        \
    } while (0)

/* Device copy of a host array of n elements of `esz` bytes. */
static void *dev_from(const void *h, size_t bytes)
{
    void *d = NULL;
    K_OK(kern_alloc(g_ctx, &d, bytes, &g_err));
    if (h)
        K_OK(kern_upload(g_ctx, d, h, bytes, &g_err));
    return d;
}
/* All bytes 0xff: NaN in float32 and in bf16. The context's stream does not wait for the
 * legacy default stream, so wait here. */
static void poison(void *d, size_t bytes)
{
    assert_int_equal(cudaMemset(d, 0xff, bytes), cudaSuccess);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
}
static void *dev_poisoned(size_t bytes)
{
    void *d = dev_from(NULL, bytes);
    poison(d, bytes);
    return d;
}
static float *host_from_dev(const void *d, size_t n, kern_dtype dt)
{
    float *h = fvec(n);
    if (dt == KERN_F32) {
        K_OK(kern_download(g_ctx, h, d, n * sizeof(float), &g_err));
    } else {
        uint16_t *t = malloc(n * 2 + 2);
        assert_non_null(t);
        K_OK(kern_download(g_ctx, t, d, n * 2, &g_err));
        for (size_t i = 0; i < n; i++)
            h[i] = from_bf16(t[i]);
        free(t);
    }
    return h;
}

/* The scan case being checked, named in check_close's failures ("" elsewhere). */
static char g_case[160];

/* max |got - ref| / max |ref|; fails on any non-finite value (an unwritten output). */
static double check_close(const char *what, const float *got, const double *ref, size_t n,
                          double tol)
{
    double maxerr = 0.0, maxref = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]))
            fail_msg("%s[%zu] = %g: not written or not finite%s", what, i, (double)got[i], g_case);
        const double e = fabs(got[i] - ref[i]);
        if (e > maxerr)
            maxerr = e;
        if (fabs(ref[i]) > maxref)
            maxref = fabs(ref[i]);
    }
    const double rel = maxerr / (maxref > 0 ? maxref : 1.0);
    if (!(rel <= tol))
        fail_msg("%s: relative error %.3g > %.1g (max err %.3g, max ref %.3g)%s", what, rel, tol,
                 maxerr, maxref, g_case);
    return rel;
}

/* check_close on a float32 device array, downloaded for the check */
static void check_dev(const char *what, const void *dev, const double *ref, size_t n, double tol)
{
    float *got = host_from_dev(dev, n, KERN_F32);
    check_close(what, got, ref, n, tol);
    free(got);
}

/* ---- finite-difference checks of the reference (no GPU) --------------------------------- */

/* Central difference of f at p[i] against analytic g; relative to max |g|. */
typedef double (*loss_fn)(void *state);

static void fd_check(const char *what, double *p, size_t n, const double *grad, loss_fn f,
                     void *state)
{
    double maxg = 0.0, maxe = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(grad[i]) > maxg)
            maxg = fabs(grad[i]);
    for (size_t i = 0; i < n; i++) {
        const double h = 1e-6 * (fabs(p[i]) > 1 ? fabs(p[i]) : 1.0), keep = p[i];
        p[i] = keep + h;
        const double fp = f(state);
        p[i] = keep - h;
        const double fm = f(state);
        p[i] = keep;
        const double e = fabs((fp - fm) / (2 * h) - grad[i]);
        if (e > maxe)
            maxe = e;
    }
    if (!(maxe <= 1e-6 * (maxg > 1 ? maxg : 1.0)))
        fail_msg("reference %s: finite-difference error %.3g (max grad %.3g)", what, maxe, maxg);
}

typedef struct scan_state {
    int B, L, D, N;
    double *u, *delta, *A, *Bm, *Cm, *Dskip, *z, *dy, *y;
} scan_state;

static double scan_loss(void *vs)
{
    scan_state *s = vs;
    ref_scan_forward(s->y, NULL, s->u, s->delta, s->A, s->Bm, s->Cm, s->Dskip, s->z, s->B, s->L,
                     s->D, s->N);
    double l = 0.0;
    for (size_t i = 0; i < (size_t)s->B * s->L * s->D; i++)
        l += s->dy[i] * s->y[i];
    return l;
}

static void test_ref_scan_fd(void **state)
{
    (void)state;
    rng r = {11};
    scan_state s = {2, 7, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const size_t BLD = (size_t)s.B * s.L * s.D, BLN = (size_t)s.B * s.L * s.N, DN = s.D * s.N;
    s.u = dvec(BLD); s.delta = dvec(BLD); s.z = dvec(BLD); s.dy = dvec(BLD); s.y = dvec(BLD);
    s.A = dvec(DN); s.Bm = dvec(BLN); s.Cm = dvec(BLN); s.Dskip = dvec(s.D);
    for (size_t i = 0; i < BLD; i++) {
        s.u[i] = gauss(&r); s.delta[i] = unif(&r, 0.05, 0.8); s.z[i] = gauss(&r); s.dy[i] = gauss(&r);
    }
    for (size_t i = 0; i < DN; i++) s.A[i] = -unif(&r, 0.3, 3.0);
    for (size_t i = 0; i < BLN; i++) { s.Bm[i] = gauss(&r); s.Cm[i] = gauss(&r); }
    for (int i = 0; i < s.D; i++) s.Dskip[i] = gauss(&r);
    double *du = dvec(BLD), *ddelta = dvec(BLD), *dz = dvec(BLD), *dA = dvec(DN),
           *dB = dvec(BLN), *dC = dvec(BLN), *dD = dvec(s.D);
    for (int with_z = 0; with_z < 2; with_z++) {
        double *zkeep = s.z;
        if (!with_z)
            s.z = NULL;
        ref_scan_backward(du, ddelta, dA, dB, dC, dD, dz, s.dy, s.u, s.delta, s.A, s.Bm, s.Cm,
                          s.Dskip, s.z, s.B, s.L, s.D, s.N);
        fd_check("scan du", s.u, BLD, du, scan_loss, &s);
        fd_check("scan ddelta", s.delta, BLD, ddelta, scan_loss, &s);
        fd_check("scan dA", s.A, DN, dA, scan_loss, &s);
        fd_check("scan dBm", s.Bm, BLN, dB, scan_loss, &s);
        fd_check("scan dCm", s.Cm, BLN, dC, scan_loss, &s);
        fd_check("scan dDskip", s.Dskip, s.D, dD, scan_loss, &s);
        s.z = zkeep;
        if (with_z)
            fd_check("scan dz", s.z, BLD, dz, scan_loss, &s);
    }
    free(s.u); free(s.delta); free(s.z); free(s.dy); free(s.y); free(s.A); free(s.Bm);
    free(s.Cm); free(s.Dskip); free(du); free(ddelta); free(dz); free(dA); free(dB); free(dC);
    free(dD);
}

typedef struct s4d_state {
    int D, N, L;
    double *log_dt, *C_re, *C_im, *log_A_re, *A_im, *dK, *K;
} s4d_state;

static double s4d_loss(void *vs)
{
    s4d_state *s = vs;
    ref_s4d_kernel_forward(s->K, s->log_dt, s->C_re, s->C_im, s->log_A_re, s->A_im, s->D, s->N, s->L);
    double l = 0.0;
    for (int i = 0; i < s->D * s->L; i++)
        l += s->dK[i] * s->K[i];
    return l;
}

static void s4d_init(rng *r, int D, int N, double *log_dt, double *C_re, double *C_im,
                     double *log_A_re, double *A_im)
{
    for (int d = 0; d < D; d++)
        log_dt[d] = unif(r, log(0.001), log(0.1));
    for (int i = 0; i < D * N; i++) {
        C_re[i] = gauss(r) * 0.7;
        C_im[i] = gauss(r) * 0.7;
        log_A_re[i] = log(0.5) + 0.1 * gauss(r);
        A_im[i] = 3.141592653589793 * (i % N) + 0.1 * gauss(r); /* S4D-Lin */
    }
}

static void test_ref_s4d_fd(void **state)
{
    (void)state;
    rng r = {12};
    s4d_state s = {3, 4, 40, 0, 0, 0, 0, 0, 0, 0};
    const int DN = s.D * s.N;
    s.log_dt = dvec(s.D); s.C_re = dvec(DN); s.C_im = dvec(DN); s.log_A_re = dvec(DN);
    s.A_im = dvec(DN); s.dK = dvec(s.D * s.L); s.K = dvec(s.D * s.L);
    s4d_init(&r, s.D, s.N, s.log_dt, s.C_re, s.C_im, s.log_A_re, s.A_im);
    for (int d = 0; d < s.D; d++)
        s.log_dt[d] = unif(&r, log(0.01), log(0.3)); /* larger dt: every term matters */
    for (int i = 0; i < s.D * s.L; i++)
        s.dK[i] = gauss(&r);
    double *g1 = dvec(s.D), *g2 = dvec(DN), *g3 = dvec(DN), *g4 = dvec(DN), *g5 = dvec(DN);
    ref_s4d_kernel_backward(g1, g2, g3, g4, g5, s.dK, s.log_dt, s.C_re, s.C_im, s.log_A_re,
                            s.A_im, s.D, s.N, s.L);
    fd_check("s4d dlog_dt", s.log_dt, s.D, g1, s4d_loss, &s);
    fd_check("s4d dC_re", s.C_re, DN, g2, s4d_loss, &s);
    fd_check("s4d dC_im", s.C_im, DN, g3, s4d_loss, &s);
    fd_check("s4d dlog_A_re", s.log_A_re, DN, g4, s4d_loss, &s);
    fd_check("s4d dA_im", s.A_im, DN, g5, s4d_loss, &s);
    free(s.log_dt); free(s.C_re); free(s.C_im); free(s.log_A_re); free(s.A_im); free(s.dK);
    free(s.K); free(g1); free(g2); free(g3); free(g4); free(g5);
}

typedef struct conv_state {
    int B, L, D;
    double *u, *K, *Dskip, *dy, *y;
} conv_state;

static double conv_loss(void *vs)
{
    conv_state *s = vs;
    ref_conv_forward(s->y, s->u, s->K, s->Dskip, s->B, s->L, s->D);
    double l = 0.0;
    for (size_t i = 0; i < (size_t)s->B * s->L * s->D; i++)
        l += s->dy[i] * s->y[i];
    return l;
}

typedef struct rms_state {
    int BT, C;
    double *inp, *w, *dout, *out;
} rms_state;

static double rms_loss(void *vs)
{
    rms_state *s = vs;
    ref_rmsnorm_forward(s->out, NULL, s->inp, s->w, s->BT, s->C, 1e-5);
    double l = 0.0;
    for (int i = 0; i < s->BT * s->C; i++)
        l += s->dout[i] * s->out[i];
    return l;
}

static void test_ref_conv_rmsnorm_fd(void **state)
{
    (void)state;
    rng r = {13};
    conv_state s = {2, 9, 3, 0, 0, 0, 0, 0};
    const size_t n = (size_t)s.B * s.L * s.D;
    s.u = dvec(n); s.dy = dvec(n); s.y = dvec(n); s.K = dvec(s.D * s.L); s.Dskip = dvec(s.D);
    for (size_t i = 0; i < n; i++) { s.u[i] = gauss(&r); s.dy[i] = gauss(&r); }
    for (int i = 0; i < s.D * s.L; i++) s.K[i] = gauss(&r);
    for (int i = 0; i < s.D; i++) s.Dskip[i] = gauss(&r);
    double *du = dvec(n), *dK = dvec(s.D * s.L), *dD = dvec(s.D);
    ref_conv_backward(du, dK, dD, s.dy, s.u, s.K, s.B, s.L, s.D);
    for (size_t i = 0; i < n; i++) /* the Dskip u term */
        du[i] += s.dy[i] * s.Dskip[i % s.D];
    fd_check("conv du", s.u, n, du, conv_loss, &s);
    fd_check("conv dK", s.K, s.D * s.L, dK, conv_loss, &s);
    fd_check("conv dDskip", s.Dskip, s.D, dD, conv_loss, &s);
    free(s.u); free(s.dy); free(s.y); free(s.K); free(s.Dskip); free(du); free(dK); free(dD);

    rms_state q = {3, 7, 0, 0, 0, 0};
    q.inp = dvec(21); q.w = dvec(7); q.dout = dvec(21); q.out = dvec(21);
    for (int i = 0; i < 21; i++) { q.inp[i] = gauss(&r); q.dout[i] = gauss(&r); }
    for (int i = 0; i < 7; i++) q.w[i] = 1.0 + 0.3 * gauss(&r);
    double *di = dvec(21), *dw = dvec(7);
    ref_rmsnorm_backward(di, dw, q.dout, q.inp, q.w, q.BT, q.C, 1e-5);
    fd_check("rmsnorm dinp", q.inp, 21, di, rms_loss, &q);
    fd_check("rmsnorm dw", q.w, 7, dw, rms_loss, &q);
    free(q.inp); free(q.w); free(q.dout); free(q.out); free(di); free(dw);
}

/* ---- argument checks (no GPU) -------------------------------------------------------------- */

static void test_bad_arguments(void **state)
{
    (void)state;
    kern_error err = {0};
    int rc = kern_selective_scan_forward(NULL, KERN_F32, NULL, NULL, NULL, NULL, NULL, NULL,
                                         NULL, NULL, NULL, NULL, 1, 1, 1, 1, &err);
    assert_int_equal(rc, KERN_EINVAL);
    assert_int_equal(err.code, KERN_EINVAL);
    assert_true(strstr(err.message, "kern_selective_scan_forward") != NULL);
    rc = kern_s4d_conv_forward(NULL, NULL, NULL, NULL, NULL, 1, 1, 1, &err);
    assert_int_equal(rc, KERN_EINVAL);
    rc = kern_rmsnorm_forward(NULL, NULL, NULL, NULL, NULL, 1, 1, 1e-5f, &err);
    assert_int_equal(rc, KERN_EINVAL);
    assert_int_equal(kern_scan_hchk_floats(2, 65, 3, 4), (size_t)2 * 2 * 3 * 4);
    assert_int_equal(kern_scan_hchk_floats(0, 65, 3, 4), 0);
    assert_int_equal(kern_ctx_set_scan_variant(NULL, 0, &err), KERN_EINVAL);
    kern_ctx *ctx = (kern_ctx *)1;
    rc = kern_ctx_create(&ctx, -1, &err);
    assert_true(rc == KERN_EINVAL || rc == KERN_ENODEVICE);
    assert_null(ctx);
    assert_true(err.message[0] != '\0');
    if (kern_device_count() == 0) {
        assert_int_equal(rc, KERN_ENODEVICE);
        assert_true(err.hint[0] != '\0');
    }
}

static void test_bad_shapes_on_device(void **state)
{
    (void)state;
    if (!g_ctx)
        skip();
    kern_error err = {0};
    float *buf = dev_from(NULL, 4096);
    /* misaligned Bm */
    int rc = kern_selective_scan_forward(g_ctx, KERN_F32, buf, NULL, buf, buf, NULL, buf,
                                         (const char *)buf + 4, buf, buf, NULL, 1, 4, 4, 4, &err);
    assert_int_equal(rc, KERN_EINVAL);
    assert_true(strstr(err.message, "aligned") != NULL);
    rc = kern_selective_scan_forward(g_ctx, KERN_F32, buf, NULL, buf, buf, NULL, buf, buf, buf,
                                     buf, NULL, 1, 0, 4, 4, &err);
    assert_int_equal(rc, KERN_EINVAL);
    assert_true(strstr(err.detail, "L=0") != NULL);
    rc = kern_selective_scan_backward(g_ctx, KERN_F32, 0, buf, buf, buf, buf, buf, buf, NULL,
                                      buf, buf, buf, NULL, buf, buf, buf, buf, NULL, 1, 4, 4, 6,
                                      NULL, &err);
    assert_int_equal(rc, KERN_EINVAL); /* N not a multiple of 4 */
    rc = kern_selective_scan_forward(g_ctx, KERN_BF16, buf, NULL, buf, buf, NULL, buf, buf, buf,
                                     buf, NULL, 1, 4, 3, 4, &err);
    assert_int_equal(rc, KERN_EINVAL); /* bf16 with an odd D */
    assert_true(strstr(err.message, "even") != NULL);
    const kern_delta_act act = {buf, NULL, 1};
    rc = kern_selective_scan_forward(g_ctx, KERN_BF16, buf, NULL, buf, buf, &act, buf, buf, buf,
                                     buf, NULL, 1, 4, 4, 4, &err);
    assert_int_equal(rc, KERN_EINVAL); /* the delta activation is float32 only */
    assert_true(strstr(err.message, "float32") != NULL);
    rc = kern_ctx_set_scan_variant(g_ctx, KERN_SCAN_VARIANTS_ALL + 1, &err);
    assert_int_equal(rc, KERN_EINVAL); /* not a set of KERN_SCAN_* flags */
    kern_free(g_ctx, buf);
    K_OK(kern_sync(g_ctx, &g_err));
}

/* ---- selective scan on the GPU --------------------------------------------------------------- */

typedef struct scan_case {
    int B, L, D, N, with_z, S, use_hchk, accumulate;
    kern_dtype dt;
    int act; /* delta activation (kern_delta_act): 0 none, 1 softplus(delta + bias), 2 bias */
} scan_case;

static double softplus_d(double x) { return x > 20.0 ? x : log1p(exp(x)); }

/* variant: KERN_SCAN_* flags (kernels/internal.h) for this case's forward and backward */
static void run_scan_case(const scan_case *c, uint64_t seed, int variant)
{
    const int B = c->B, L = c->L, D = c->D, N = c->N;
    const size_t BLD = (size_t)B * L * D, BLN = (size_t)B * L * N, DN = (size_t)D * N;
    const double tol = c->dt == KERN_F32 ? 1e-4 : 1e-2;
    rng r = {seed};
    float *u = fvec(BLD), *delta = fvec(BLD), *z = fvec(BLD), *dy = fvec(BLD);
    float *A = fvec(DN), *Bm = fvec(BLN), *Cm = fvec(BLN), *Dskip = fvec(D);
    for (size_t i = 0; i < BLD; i++) {
        u[i] = (float)gauss(&r);
        /* softplus of a Mamba-like dt; with an activation, the pre-activation itself (its
         * bias below), or for the bias alone a positive delta */
        delta[i] = (float)(c->act == 1 ? gauss(&r) - 2.5 : log1p(exp(gauss(&r) - 2.5)));
        z[i] = (float)gauss(&r);
        dy[i] = (float)gauss(&r);
    }
    for (size_t i = 0; i < DN; i++)
        A[i] = (float)(-(double)(i % N + 1) * exp(0.2 * gauss(&r))); /* S4D-real-like */
    for (size_t i = 0; i < BLN; i++) {
        Bm[i] = (float)gauss(&r);
        Cm[i] = (float)gauss(&r);
    }
    for (int i = 0; i < D; i++)
        Dskip[i] = (float)gauss(&r);
    if (c->act == 1) { /* both sides of softplus's threshold (20) and far below it */
        delta[0] = 25.0f;
        delta[BLD - 1] = -30.0f;
    }
    float *bias = fvec(D);
    for (int i = 0; i < D; i++)
        bias[i] = (float)(c->act == 1 ? 0.5 * gauss(&r) : 0.02 * (1.0 + gauss(&r) * gauss(&r)));
    float *acts[6] = {u, delta, z, dy, Bm, Cm};
    size_t acts_n[6] = {BLD, BLD, BLD, BLD, BLN, BLN};
    if (c->dt == KERN_BF16) /* both sides see the same rounded inputs */
        for (int k = 0; k < 6; k++)
            for (size_t i = 0; i < acts_n[k]; i++)
                acts[k][i] = from_bf16(to_bf16(acts[k][i]));

    /* reference */
    double *U = todouble(u, BLD), *Dt = todouble(delta, BLD), *Z = todouble(z, BLD),
           *DY = todouble(dy, BLD), *AA = todouble(A, DN), *BB = todouble(Bm, BLN),
           *CC = todouble(Cm, BLN), *DD = todouble(Dskip, D);
    double *y = dvec(BLD), *hall = dvec(BLD * N);
    const double *zz = c->with_z ? Z : NULL;
    /* the activation (float32 only): the reference runs on the activated delta and its
     * ddelta goes back through the slope; gdb sums it over b and t */
    double *slope = dvec(BLD), *gdb = dvec(D);
    for (size_t i = 0; i < BLD; i++) {
        const double x = Dt[i] + (c->act ? bias[i % D] : 0.0);
        slope[i] = c->act == 1 ? (x > 20.0 ? 1.0 : 1.0 / (1.0 + exp(-x))) : 1.0;
        if (c->act)
            Dt[i] = c->act == 1 ? softplus_d(x) : x;
    }
    ref_scan_forward(y, hall, U, Dt, AA, BB, CC, DD, zz, B, L, D, N);
    double *gu = dvec(BLD), *gdt = dvec(BLD), *gz = dvec(BLD), *gA = dvec(DN), *gB = dvec(BLN),
           *gC = dvec(BLN), *gD = dvec(D);
    ref_scan_backward(gu, gdt, gA, gB, gC, gD, gz, DY, U, Dt, AA, BB, CC, DD, zz, B, L, D, N);
    for (size_t i = 0; i < BLD; i++) {
        gdt[i] *= slope[i];
        gdb[i % D] += gdt[i];
    }

    /* device inputs */
    const size_t esz = kern_dtype_size(c->dt);
    void *dev[6];
    for (int k = 0; k < 6; k++) {
        if (c->dt == KERN_F32) {
            dev[k] = dev_from(acts[k], acts_n[k] * 4);
        } else {
            uint16_t *t = malloc(acts_n[k] * 2);
            assert_non_null(t);
            for (size_t i = 0; i < acts_n[k]; i++)
                t[i] = to_bf16(acts[k][i]);
            dev[k] = dev_from(t, acts_n[k] * 2);
            free(t);
        }
    }
    float *dA_ = dev_from(A, DN * 4), *dDs = dev_from(Dskip, (size_t)D * 4);
    float *dbias_ = dev_from(bias, (size_t)D * 4);
    kern_delta_act act = {dbias_, NULL, c->act == 1};
    K_OK(kern_ctx_set_scan_states(g_ctx, c->S, &g_err));
    K_OK(kern_ctx_set_scan_variant(g_ctx, variant, &g_err));
    snprintf(g_case, sizeof g_case,
             " [case B=%d L=%d D=%d N=%d S=%d z=%d hchk=%d acc=%d %s act=%d variant=%d]", B, L, D,
             N, c->S, c->with_z, c->use_hchk, c->accumulate, c->dt == KERN_F32 ? "f32" : "bf16",
             c->act, variant);

    /* forward, outputs poisoned */
    const size_t nh = kern_scan_hchk_floats(B, L, D, N);
    void *dy_out = dev_poisoned(BLD * esz);
    float *hchk = c->use_hchk ? dev_poisoned(nh * 4) : NULL;
    K_OK(kern_selective_scan_forward(g_ctx, c->dt, dy_out, hchk, dev[0], dev[1],
                                     c->act ? &act : NULL, dA_, dev[4], dev[5], dDs,
                                     c->with_z ? dev[2] : NULL, B, L, D, N, &g_err));
    K_OK(kern_sync(g_ctx, &g_err));
    float *got = host_from_dev(dy_out, BLD, c->dt);
    check_close("scan y", got, y, BLD, tol);
    free(got);
    if (hchk) { /* the state before each chunk, layout (B, NC, N, D) */
        const int NC = (L + KERN_SCAN_CHUNK - 1) / KERN_SCAN_CHUNK;
        double *want = dvec(nh);
        for (int b = 0; b < B; b++)
            for (int ch = 1; ch < NC; ch++)
                for (int n = 0; n < N; n++)
                    for (int d = 0; d < D; d++) {
                        const size_t t = (size_t)ch * KERN_SCAN_CHUNK - 1;
                        want[(((size_t)b * NC + ch) * N + n) * D + d] =
                            hall[(((size_t)b * L + t) * D + d) * N + n];
                    }
        check_dev("scan hchk", hchk, want, nh, tol);
        free(want);
    }

    /* backward: poisoned (overwrite) or pre-filled with known values (accumulate) */
    const size_t gn[8] = {BLD, BLD, BLD, DN, BLN, BLN, (size_t)D, (size_t)D};
    const int gbf[8] = {1, 1, 1, 0, 0, 0, 0, 0}; /* element type dt, else float */
    double *want[8] = {gu, gdt, gz, gA, gB, gC, gD, gdb};
    void *gdev[8];
    for (int k = 0; k < 8; k++) {
        const size_t bytes = gn[k] * (gbf[k] ? esz : 4);
        if (!c->accumulate) {
            gdev[k] = dev_poisoned(bytes);
            continue;
        }
        float *init = fvec(gn[k]);
        for (size_t i = 0; i < gn[k]; i++) {
            init[i] = (float)gauss(&r);
            if (gbf[k] && c->dt == KERN_BF16)
                init[i] = from_bf16(to_bf16(init[i]));
            want[k][i] += init[i];
        }
        if (gbf[k] && c->dt == KERN_BF16) {
            uint16_t *t = malloc(gn[k] * 2);
            assert_non_null(t);
            for (size_t i = 0; i < gn[k]; i++)
                t[i] = to_bf16(init[i]);
            gdev[k] = dev_from(t, bytes);
            free(t);
        } else {
            gdev[k] = dev_from(init, bytes);
        }
        free(init);
    }
    act.dbias = gdev[7];
    K_OK(kern_selective_scan_backward(g_ctx, c->dt, c->accumulate, gdev[0], gdev[1], gdev[3],
                                      gdev[4], gdev[5], gdev[6], c->with_z ? gdev[2] : NULL,
                                      dev[3], dev[0], dev[1], c->act ? &act : NULL, dA_, dev[4],
                                      dev[5], dDs, c->with_z ? dev[2] : NULL, B, L, D, N, hchk,
                                      &g_err));
    K_OK(kern_sync(g_ctx, &g_err));
    static const char *names[8] = {"scan du",  "scan ddelta", "scan dz",     "scan dA",
                                   "scan dBm", "scan dCm",    "scan dDskip", "scan dbias"};
    for (int k = 0; k < 8; k++) {
        if ((k == 2 && !c->with_z) || (k == 7 && !c->act))
            continue;
        got = host_from_dev(gdev[k], gn[k], gbf[k] ? c->dt : KERN_F32);
        check_close(names[k], got, want[k], gn[k], tol);
        free(got);
    }

    for (int k = 0; k < 8; k++)
        kern_free(g_ctx, gdev[k]);
    for (int k = 0; k < 6; k++)
        kern_free(g_ctx, dev[k]);
    kern_free(g_ctx, dy_out);
    kern_free(g_ctx, hchk);
    kern_free(g_ctx, dA_);
    kern_free(g_ctx, dDs);
    kern_free(g_ctx, dbias_);
    K_OK(kern_ctx_set_scan_states(g_ctx, 0, &g_err));
    K_OK(kern_ctx_set_scan_variant(g_ctx, 0, &g_err));
    g_case[0] = '\0';
    free(u); free(delta); free(z); free(dy); free(A); free(Bm); free(Cm); free(Dskip);
    free(U); free(Dt); free(Z); free(DY); free(AA); free(BB); free(CC); free(DD); free(y);
    free(hall); free(gu); free(gdt); free(gz); free(gA); free(gB); free(gC); free(gD);
    free(bias); free(slope); free(gdb);
}

static void test_scan_f32(void **state)
{
    (void)state;
    if (!g_ctx)
        skip();
    /* tails everywhere: L not a multiple of 8/16/64, D not a multiple of 32 */
    const scan_case cases[] = {
        {2, 200, 40, 16, 1, 1, 1, 0, KERN_F32, 0}, {2, 200, 40, 16, 1, 2, 1, 0, KERN_F32, 0},
        {2, 200, 40, 16, 1, 4, 1, 0, KERN_F32, 0}, {2, 200, 40, 16, 1, 8, 1, 0, KERN_F32, 0},
        {3, 37, 64, 8, 0, 0, 0, 0, KERN_F32, 0},   {1, 64, 32, 4, 1, 0, 1, 1, KERN_F32, 0},
        {2, 130, 33, 16, 1, 4, 0, 1, KERN_F32, 0}, {1, 1, 1, 4, 1, 0, 1, 0, KERN_F32, 0},
        {2, 71, 50, 32, 0, 0, 1, 0, KERN_F32, 0},
        /* the delta activation: softplus(delta + bias), with 16- and 4-byte copies, without
         * hchk (the backward's own states pass) and accumulating; the bias alone */
        {2, 200, 40, 16, 1, 4, 1, 0, KERN_F32, 1}, {2, 130, 33, 16, 1, 2, 0, 1, KERN_F32, 1},
        {3, 37, 64, 8, 0, 0, 1, 0, KERN_F32, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_scan_case(&cases[i], 100 + i, 0);
}

static void test_scan_bf16(void **state)
{
    (void)state;
    if (!g_ctx)
        skip();
    const scan_case cases[] = {
        {2, 150, 40, 16, 1, 4, 1, 0, KERN_BF16, 0},
        {2, 99, 64, 16, 0, 1, 0, 1, KERN_BF16, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_scan_case(&cases[i], 200 + i, 0);
}

/* The kernel variants (tile64, fma and split2 forward, lean backward: KERN_SCAN_* flags, see
 * kernels/README.md) on the same kinds of shapes: tails in L (not a multiple of 8, 32 or 64)
 * and D (not a multiple of 32), every states-per-thread choice (S = N: one warp, where
 * tile64 falls back to 16-step tiles), both copy widths (D = 33: 4-byte copies), no hchk
 * (the backward's own states pass), accumulate, N = 4, 8, 16, 32, bf16, the delta
 * activation. All flags together on every case (for float32 that is split2 with 64-step
 * tiles); on three, each flag alone and tile64+fma (what bench_scan times). */
static void test_scan_variants(void **state)
{
    (void)state;
    if (!g_ctx)
        skip();
    const scan_case cases[] = {
        {2, 200, 40, 16, 1, 1, 1, 0, KERN_F32, 0}, {2, 200, 40, 16, 1, 2, 1, 0, KERN_F32, 0},
        {2, 200, 40, 16, 1, 4, 1, 0, KERN_F32, 0}, {2, 200, 40, 16, 1, 8, 1, 1, KERN_F32, 0},
        {3, 37, 64, 8, 0, 0, 0, 0, KERN_F32, 0},   {1, 64, 32, 4, 1, 0, 1, 1, KERN_F32, 0},
        {2, 130, 33, 16, 1, 4, 0, 1, KERN_F32, 0}, {1, 1, 1, 4, 1, 0, 1, 0, KERN_F32, 0},
        {2, 71, 50, 32, 0, 0, 1, 0, KERN_F32, 0},  {1, 97, 64, 8, 1, 8, 1, 0, KERN_F32, 0},
        {2, 150, 40, 16, 1, 4, 1, 0, KERN_BF16, 0}, {2, 99, 64, 16, 0, 1, 0, 1, KERN_BF16, 0},
        {2, 130, 48, 16, 1, 4, 1, 0, KERN_F32, 1},
    };
    const int variants[] = {KERN_SCAN_VARIANTS_ALL, KERN_SCAN_FWD_TILE64, KERN_SCAN_FWD_FMA,
                            KERN_SCAN_FWD_TILE64 | KERN_SCAN_FWD_FMA, KERN_SCAN_FWD_SPLIT2,
                            KERN_SCAN_BWD_LEAN};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* every case with all the variants; the two usual paths (16-byte copies with
         * N = 16 at compile time; 4-byte copies without hchk) also with the others */
        const size_t nv = i == 2 || i == 6 || i == 12 ? sizeof variants / sizeof variants[0] : 1;
        for (size_t v = 0; v < nv; v++)
            run_scan_case(&cases[i], 300 + i, variants[v]);
    }
}

/* ---- S4D on the GPU --------------------------------------------------------------------------- */

static void test_s4d_kernel(void **state)
{
    (void)state;
    if (!g_ctx)
        skip();
    rng r = {300};
    const int D = 37, N = 32, L = 700, DN = D * N;
    double *ld = dvec(D), *cr = dvec(DN), *ci = dvec(DN), *lar = dvec(DN), *ai = dvec(DN);
    s4d_init(&r, D, N, ld, cr, ci, lar, ai);
    float *f[5];
    double *src[5] = {ld, cr, ci, lar, ai};
    const int sz[5] = {D, DN, DN, DN, DN};
    for (int k = 0; k < 5; k++) { /* the reference sees exactly the float inputs */
        f[k] = fvec(sz[k]);
        for (int i = 0; i < sz[k]; i++)
            src[k][i] = f[k][i] = (float)src[k][i];
    }
    double *K = dvec((size_t)D * L), *dK = dvec((size_t)D * L);
    ref_s4d_kernel_forward(K, ld, cr, ci, lar, ai, D, N, L);
    float *dKf = fvec((size_t)D * L);
    for (size_t i = 0; i < (size_t)D * L; i++)
        dK[i] = dKf[i] = (float)gauss(&r);
    double *g[5] = {dvec(D), dvec(DN), dvec(DN), dvec(DN), dvec(DN)};
    ref_s4d_kernel_backward(g[0], g[1], g[2], g[3], g[4], dK, ld, cr, ci, lar, ai, D, N, L);

    float *dev[5], *gdev[5];
    for (int k = 0; k < 5; k++)
        dev[k] = dev_from(f[k], sz[k] * 4);
    float *Kd = dev_poisoned((size_t)D * L * 4);
    K_OK(kern_s4d_kernel_forward(g_ctx, Kd, dev[0], dev[1], dev[2], dev[3], dev[4], D, N, L, &g_err));
    K_OK(kern_sync(g_ctx, &g_err));
    check_dev("s4d K", Kd, K, (size_t)D * L, 1e-4);
    /* backward accumulates: start from known values */
    float *dKd = dev_from(dKf, (size_t)D * L * 4);
    for (int k = 0; k < 5; k++) {
        float *init = fvec(sz[k]);
        for (int i = 0; i < sz[k]; i++) {
            init[i] = (float)gauss(&r);
            g[k][i] += init[i];
        }
        gdev[k] = dev_from(init, sz[k] * 4);
        free(init);
    }
    K_OK(kern_s4d_kernel_backward(g_ctx, gdev[0], gdev[1], gdev[2], gdev[3], gdev[4], dKd, dev[0],
                                  dev[1], dev[2], dev[3], dev[4], D, N, L, &g_err));
    K_OK(kern_sync(g_ctx, &g_err));
    static const char *names[5] = {"s4d dlog_dt", "s4d dC_re", "s4d dC_im", "s4d dlog_A_re",
                                   "s4d dA_im"};
    for (int k = 0; k < 5; k++) {
        check_dev(names[k], gdev[k], g[k], sz[k], 1e-4);
        kern_free(g_ctx, gdev[k]);
        kern_free(g_ctx, dev[k]);
        free(f[k]);
        free(g[k]);
        free(src[k]);
    }
    kern_free(g_ctx, Kd);
    kern_free(g_ctx, dKd);
    free(K); free(dK); free(dKf);
}

static void test_s4d_conv(void **state)
{
    (void)state;
    if (!g_ctx)
        skip();
    rng r = {301};
    const int shapes[][3] = {{3, 150, 40}, {2, 64, 32}, {1, 1, 5}, {4, 300, 70}};
    for (size_t sidx = 0; sidx < sizeof shapes / sizeof shapes[0]; sidx++) {
        const int B = shapes[sidx][0], L = shapes[sidx][1], D = shapes[sidx][2];
        const size_t n = (size_t)B * L * D, nk = (size_t)D * L;
        float *u = fvec(n), *dy = fvec(n), *K = fvec(nk), *Ds = fvec(D);
        for (size_t i = 0; i < n; i++) { u[i] = (float)gauss(&r); dy[i] = (float)gauss(&r); }
        for (size_t i = 0; i < nk; i++) K[i] = (float)(gauss(&r) * exp(-0.01 * (double)(i % L)));
        for (int i = 0; i < D; i++) Ds[i] = (float)gauss(&r);
        double *U = todouble(u, n), *DY = todouble(dy, n), *KK = todouble(K, nk), *DS = todouble(Ds, D);
        double *y = dvec(n), *du = dvec(n), *dK = dvec(nk), *dD = dvec(D);
        ref_conv_forward(y, U, KK, DS, B, L, D);
        ref_conv_backward(du, dK, dD, DY, U, KK, B, L, D);
        for (size_t i = 0; i < n; i++)
            du[i] += DY[i] * DS[i % D];
        float *ud = dev_from(u, n * 4), *dyd = dev_from(dy, n * 4), *Kd = dev_from(K, nk * 4),
              *Dd = dev_from(Ds, (size_t)D * 4), *yd = dev_poisoned(n * 4);
        K_OK(kern_s4d_conv_forward(g_ctx, yd, ud, Kd, Dd, B, L, D, &g_err));
        K_OK(kern_sync(g_ctx, &g_err));
        check_dev("conv y", yd, y, n, 1e-4);
        /* backward accumulates into zeroed gradients here (the += path is the same code) */
        float *dud = dev_from(NULL, n * 4), *dKd = dev_from(NULL, nk * 4), *dDd = dev_from(NULL, (size_t)D * 4);
        K_OK(kern_zero(g_ctx, dud, n * 4, &g_err));
        K_OK(kern_zero(g_ctx, dKd, nk * 4, &g_err));
        K_OK(kern_zero(g_ctx, dDd, (size_t)D * 4, &g_err));
        K_OK(kern_s4d_conv_backward(g_ctx, dud, dKd, dDd, dyd, ud, Kd, Dd, B, L, D, &g_err));
        K_OK(kern_sync(g_ctx, &g_err));
        check_dev("conv du", dud, du, n, 1e-4);
        check_dev("conv dK", dKd, dK, nk, 1e-4);
        check_dev("conv dDskip", dDd, dD, D, 1e-4);
        float *bufs[] = {ud, dyd, Kd, Dd, yd, dud, dKd, dDd};
        for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++)
            kern_free(g_ctx, bufs[k]);
        free(u); free(dy); free(K); free(Ds); free(U); free(DY); free(KK); free(DS);
        free(y); free(du); free(dK); free(dD);
    }
}

/* ---- elementwise layers, AdamW, Linear ------------------------------------------------------ */

static void test_rmsnorm(void **state)
{
    (void)state;
    if (!g_ctx)
        skip();
    rng r = {400};
    const int BT = 300, C = 72;
    const size_t n = (size_t)BT * C;
    float *x = fvec(n), *w = fvec(C), *go = fvec(n), *di0 = fvec(n), *dw0 = fvec(C);
    for (size_t i = 0; i < n; i++) { x[i] = (float)(gauss(&r) * 2); go[i] = (float)gauss(&r); di0[i] = (float)gauss(&r); }
    for (int i = 0; i < C; i++) { w[i] = (float)(1 + 0.3 * gauss(&r)); dw0[i] = (float)gauss(&r); }
    double *X = todouble(x, n), *W = todouble(w, C), *GO = todouble(go, n);
    double *out = dvec(n), *rstd = dvec(BT), *di = dvec(n), *dw = dvec(C);
    ref_rmsnorm_forward(out, rstd, X, W, BT, C, 1e-5);
    ref_rmsnorm_backward(di, dw, GO, X, W, BT, C, 1e-5);
    for (size_t i = 0; i < n; i++) di[i] += di0[i];
    for (int i = 0; i < C; i++) dw[i] += dw0[i];
    float *xd = dev_from(x, n * 4), *wd = dev_from(w, C * 4), *god = dev_from(go, n * 4);
    float *od = dev_poisoned(n * 4), *rd = dev_poisoned(BT * 4);
    float *did = dev_from(di0, n * 4), *dwd = dev_from(dw0, C * 4);
    K_OK(kern_rmsnorm_forward(g_ctx, od, rd, xd, wd, BT, C, 1e-5f, &g_err));
    K_OK(kern_rmsnorm_backward(g_ctx, did, dwd, god, xd, wd, rd, BT, C, &g_err));
    K_OK(kern_sync(g_ctx, &g_err));
    check_dev("rmsnorm out", od, out, n, 1e-4);
    check_dev("rmsnorm rstd", rd, rstd, BT, 1e-4);
    check_dev("rmsnorm dinp", did, di, n, 1e-4);
    check_dev("rmsnorm dw", dwd, dw, C, 1e-4);
    float *bufs[] = {xd, wd, god, od, rd, did, dwd};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++)
        kern_free(g_ctx, bufs[k]);
    free(x); free(w); free(go); free(di0); free(dw0); free(X); free(W); free(GO);
    free(out); free(rstd); free(di); free(dw);
}

static void test_pointwise(void **state)
{
    (void)state;
    if (!g_ctx)
        skip();
    rng r = {500};
    const size_t n = 100003;
    float *x = fvec(n), *y = fvec(n), *g = fvec(n), *a0 = fvec(n), *b0 = fvec(n);
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)(gauss(&r) * 8);
        y[i] = (float)gauss(&r);
        g[i] = (float)gauss(&r);
        a0[i] = (float)gauss(&r);
        b0[i] = (float)gauss(&r);
    }
    double *want = dvec(n), *want2 = dvec(n);
    float *xd = dev_from(x, n * 4), *yd = dev_from(y, n * 4), *gd = dev_from(g, n * 4);
    float *od = dev_poisoned(n * 4), *ad = dev_from(a0, n * 4), *bd = dev_from(b0, n * 4);
    /* SiLU */
    for (size_t i = 0; i < n; i++) want[i] = x[i] / (1.0 + exp(-(double)x[i]));
    K_OK(kern_silu_forward(g_ctx, od, xd, n, &g_err));
    check_dev("silu", od, want, n, 1e-5);
    for (size_t i = 0; i < n; i++) {
        const double s = 1.0 / (1.0 + exp(-(double)x[i]));
        want[i] = a0[i] + g[i] * s * (1 + x[i] * (1 - s));
    }
    K_OK(kern_silu_backward(g_ctx, 1, ad, gd, xd, n, &g_err));
    check_dev("silu backward", ad, want, n, 1e-5);
    for (size_t i = 0; i < n; i++) want[i] -= a0[i];
    poison(ad, n * 4); /* accumulate = 0 writes every element */
    K_OK(kern_silu_backward(g_ctx, 0, ad, gd, xd, n, &g_err));
    check_dev("silu backward (written)", ad, want, n, 1e-5);
    /* negexp (A = -exp(A_log)), on y; the backward takes the forward's output */
    for (size_t i = 0; i < n; i++) want[i] = -exp((double)y[i]);
    poison(od, n * 4);
    K_OK(kern_negexp_forward(g_ctx, od, yd, n, &g_err));
    check_dev("negexp", od, want, n, 1e-5);
    K_OK(kern_upload(g_ctx, ad, a0, n * 4, &g_err));
    for (size_t i = 0; i < n; i++) want[i] = a0[i] - g[i] * exp((double)y[i]);
    K_OK(kern_negexp_backward(g_ctx, ad, gd, od, n, &g_err));
    check_dev("negexp backward", ad, want, n, 1e-5);
    /* residual */
    for (size_t i = 0; i < n; i++) want[i] = (double)x[i] + y[i];
    poison(od, n * 4);
    K_OK(kern_residual_forward(g_ctx, od, xd, yd, n, &g_err));
    check_dev("residual", od, want, n, 1e-6);
    K_OK(kern_upload(g_ctx, ad, a0, n * 4, &g_err));
    for (size_t i = 0; i < n; i++) { want[i] = (double)a0[i] + g[i]; want2[i] = (double)b0[i] + g[i]; }
    K_OK(kern_residual_backward(g_ctx, ad, bd, gd, n, &g_err));
    check_dev("residual da", ad, want, n, 1e-6);
    check_dev("residual db", bd, want2, n, 1e-6);
    /* GLU gate: out = y sigmoid(x), the backward adding into a0 and b0 */
    for (size_t i = 0; i < n; i++) want[i] = y[i] / (1.0 + exp(-(double)x[i]));
    poison(od, n * 4);
    K_OK(kern_glu_forward(g_ctx, od, yd, xd, n, &g_err));
    check_dev("glu", od, want, n, 1e-5);
    K_OK(kern_upload(g_ctx, ad, a0, n * 4, &g_err));
    K_OK(kern_upload(g_ctx, bd, b0, n * 4, &g_err));
    for (size_t i = 0; i < n; i++) {
        const double s = 1.0 / (1.0 + exp(-(double)x[i]));
        want[i] = a0[i] + g[i] * s;
        want2[i] = b0[i] + g[i] * y[i] * s * (1 - s);
    }
    K_OK(kern_glu_backward(g_ctx, ad, bd, gd, yd, xd, n, &g_err));
    check_dev("glu da", ad, want, n, 1e-5);
    check_dev("glu db", bd, want2, n, 1e-5);
    /* sum of squares */
    double ss = 0.0, gotss = 0.0;
    for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    K_OK(kern_sumsq(g_ctx, &gotss, gd, n, &g_err));
    assert_true(fabs(gotss - ss) <= 1e-9 * ss);
    /* AdamW, three steps, against the same update in double */
    {
        float *p = fvec(n), *m = fvec(n), *v = fvec(n);
        double *P = dvec(n), *M = dvec(n), *V = dvec(n);
        for (size_t i = 0; i < n; i++) { P[i] = p[i] = (float)gauss(&r); m[i] = v[i] = 0; }
        float *pd = dev_from(p, n * 4), *md = dev_from(m, n * 4), *vd = dev_from(v, n * 4);
        const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01, scale = 0.5;
        for (int t = 1; t <= 3; t++) {
            K_OK(kern_adamw_update(g_ctx, pd, gd, md, vd, n, (float)lr, (float)b1, (float)b2,
                                   (float)eps, (float)wd, t, (float)scale, &g_err));
            for (size_t i = 0; i < n; i++) {
                const double gg = g[i] * scale;
                M[i] = b1 * M[i] + (1 - b1) * gg;
                V[i] = b2 * V[i] + (1 - b2) * gg * gg;
                P[i] -= lr * (wd * P[i] + (M[i] / (1 - pow(b1, t))) / (sqrt(V[i] / (1 - pow(b2, t))) + eps));
            }
        }
        check_dev("adamw p", pd, P, n, 1e-4);
        check_dev("adamw v", vd, V, n, 1e-4);
        kern_free(g_ctx, pd); kern_free(g_ctx, md); kern_free(g_ctx, vd);
        free(p); free(m); free(v); free(P); free(M); free(V);
    }
    float *bufs[] = {xd, yd, gd, od, ad, bd};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++)
        kern_free(g_ctx, bufs[k]);
    free(x); free(y); free(g); free(a0); free(b0); free(want); free(want2);
}

/* The causal depthwise Conv1d in double, from its definition: out (when not NULL) =
 * bias + sum_k w[k] x[t-K+1+k]; given the gradient ge at the output, adds into di, dw, db. */
static void conv_ref(double *out, double *di, double *dw, double *db, const double *ge,
                     const float *x, const float *w, const float *bias, int B, int L, int C,
                     int K)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++)
            for (int c = 0; c < C; c++) {
                const size_t i = ((size_t)b * L + t) * C + c;
                double acc = bias[c];
                db[c] += ge[i];
                for (int k = 0; k < K; k++) {
                    const int s = t - K + 1 + k;
                    if (s < 0)
                        continue;
                    const size_t j = ((size_t)b * L + s) * C + c;
                    acc += (double)w[c * K + k] * x[j];
                    di[j] += ge[i] * w[c * K + k];
                    dw[c * K + k] += ge[i] * x[j];
                }
                if (out)
                    out[i] = acc;
            }
}

static void test_conv1d(void **state)
{
    (void)state;
    if (!g_ctx)
        skip();
    /* shapes: a part tile and a part channel group; K = 7 over several tiles and two
     * segments of the kernels' time split (512 steps) */
    const int shapes[][4] = {{3, 77, 45, 4}, {2, 600, 70, 7}};
    for (int sh = 0; sh < 2; sh++) {
        rng r = {700 + (uint64_t)sh};
        const int B = shapes[sh][0], L = shapes[sh][1], C = shapes[sh][2], K = shapes[sh][3];
        const size_t n = (size_t)B * L * C;
        float *x = fvec(n), *go = fvec(n), *w = fvec(C * K), *bias = fvec(C), *di0 = fvec(n),
              *dw0 = fvec(C * K), *db0 = fvec(C);
        for (size_t i = 0; i < n; i++) { x[i] = (float)gauss(&r); go[i] = (float)gauss(&r); di0[i] = (float)gauss(&r); }
        for (int i = 0; i < C * K; i++) { w[i] = (float)gauss(&r); dw0[i] = (float)gauss(&r); }
        for (int i = 0; i < C; i++) { bias[i] = (float)gauss(&r); db0[i] = (float)gauss(&r); }
        double *out = dvec(n), *di = dvec(n), *dw = dvec(C * K), *db = dvec(C);
        for (size_t i = 0; i < n; i++) di[i] = di0[i];
        for (int i = 0; i < C * K; i++) dw[i] = dw0[i];
        for (int i = 0; i < C; i++) db[i] = db0[i];
        double *ge = dvec(n); /* the gradient at the conv's output */
        for (size_t i = 0; i < n; i++) ge[i] = go[i];
        conv_ref(out, di, dw, db, ge, x, w, bias, B, L, C, K);
        float *xd = dev_from(x, n * 4), *god = dev_from(go, n * 4), *wd = dev_from(w, C * K * 4),
              *bd = dev_from(bias, C * 4), *od = dev_poisoned(n * 4), *did = dev_from(di0, n * 4),
              *dwd = dev_from(dw0, C * K * 4), *dbd = dev_from(db0, C * 4);
        K_OK(kern_conv1d_forward(g_ctx, od, NULL, xd, wd, bd, B, L, C, K, &g_err));
        K_OK(kern_conv1d_backward(g_ctx, 1, did, dwd, dbd, god, NULL, xd, wd, B, L, C, K, &g_err));
        K_OK(kern_sync(g_ctx, &g_err));
        check_dev("conv1d out", od, out, n, 1e-5);
        check_dev("conv1d dinp", did, di, n, 1e-5);
        check_dev("conv1d dw", dwd, dw, C * K, 1e-5);
        check_dev("conv1d dbias", dbd, db, C, 1e-5);
        /* accumulate = 0 writes dinp (dw and dbias still add: not checked again) */
        for (size_t i = 0; i < n; i++) di[i] -= di0[i];
        poison(did, n * 4);
        K_OK(kern_conv1d_backward(g_ctx, 0, did, dwd, dbd, god, NULL, xd, wd, B, L, C, K, &g_err));
        check_dev("conv1d dinp (written)", did, di, n, 1e-5);

        /* with the SiLU after it: act = silu(out); the backward takes go as d act and
         * pre = the device's out, against go silu'(out) through the same sums */
        float *actd = dev_poisoned(n * 4);
        poison(od, n * 4);
        K_OK(kern_conv1d_forward(g_ctx, od, actd, xd, wd, bd, B, L, C, K, &g_err));
        double *act = dvec(n);
        for (size_t i = 0; i < n; i++) {
            const double sg = 1.0 / (1.0 + exp(-out[i]));
            act[i] = out[i] * sg;
            ge[i] = go[i] * sg * (1.0 + out[i] * (1.0 - sg));
            di[i] = 0.0;
        }
        for (int i = 0; i < C * K; i++) dw[i] = dw0[i];
        for (int i = 0; i < C; i++) db[i] = db0[i];
        conv_ref(NULL, di, dw, db, ge, x, w, bias, B, L, C, K);
        check_dev("conv1d+silu out", od, out, n, 1e-5);
        check_dev("conv1d+silu act", actd, act, n, 1e-5);
        K_OK(kern_upload(g_ctx, dwd, dw0, C * K * 4, &g_err));
        K_OK(kern_upload(g_ctx, dbd, db0, C * 4, &g_err));
        poison(did, n * 4);
        K_OK(kern_conv1d_backward(g_ctx, 0, did, dwd, dbd, god, od, xd, wd, B, L, C, K, &g_err));
        check_dev("conv1d+silu dinp", did, di, n, 1e-5);
        check_dev("conv1d+silu dw", dwd, dw, C * K, 1e-5);
        check_dev("conv1d+silu dbias", dbd, db, C, 1e-5);
        /* in place (act == out), as inference runs it */
        K_OK(kern_conv1d_forward(g_ctx, od, od, xd, wd, bd, B, L, C, K, &g_err));
        check_dev("conv1d+silu in place", od, act, n, 1e-5);
        kern_free(g_ctx, actd);
        free(act);
        free(ge);
        float *bufs[] = {xd, god, wd, bd, od, did, dwd, dbd};
        for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++)
            kern_free(g_ctx, bufs[k]);
        free(x); free(go); free(w); free(bias); free(di0); free(dw0); free(db0);
        free(out); free(di); free(dw); free(db);
    }
}

static void test_linear(void **state)
{
    (void)state;
    if (!g_ctx)
        skip();
    rng r = {600};
    const int BT = 257, C = 48, OC = 33;
    float *x = fvec((size_t)BT * C), *w = fvec((size_t)OC * C), *bias = fvec(OC), *go = fvec((size_t)BT * OC);
    float *di0 = fvec((size_t)BT * C), *dw0 = fvec((size_t)OC * C), *db0 = fvec(OC);
    for (int i = 0; i < BT * C; i++) { x[i] = (float)gauss(&r); di0[i] = (float)gauss(&r); }
    for (int i = 0; i < OC * C; i++) { w[i] = (float)gauss(&r); dw0[i] = (float)gauss(&r); }
    for (int i = 0; i < OC; i++) { bias[i] = (float)gauss(&r); db0[i] = (float)gauss(&r); }
    for (int i = 0; i < BT * OC; i++) go[i] = (float)gauss(&r);
    double *out = dvec((size_t)BT * OC), *di = dvec((size_t)BT * C), *dw = dvec((size_t)OC * C), *db = dvec(OC);
    for (int t = 0; t < BT; t++)
        for (int o = 0; o < OC; o++) {
            double s = bias[o];
            for (int c = 0; c < C; c++)
                s += (double)x[t * C + c] * w[o * C + c];
            out[t * OC + o] = s;
        }
    for (int i = 0; i < BT * C; i++) di[i] = di0[i];
    for (int i = 0; i < OC * C; i++) dw[i] = dw0[i];
    for (int i = 0; i < OC; i++) db[i] = db0[i];
    for (int t = 0; t < BT; t++)
        for (int o = 0; o < OC; o++) {
            const double gv = go[t * OC + o];
            db[o] += gv;
            for (int c = 0; c < C; c++) {
                di[t * C + c] += gv * w[o * C + c];
                dw[o * C + c] += gv * x[t * C + c];
            }
        }
    float *xd = dev_from(x, (size_t)BT * C * 4), *wd = dev_from(w, (size_t)OC * C * 4),
          *bd = dev_from(bias, OC * 4), *god = dev_from(go, (size_t)BT * OC * 4),
          *od = dev_poisoned((size_t)BT * OC * 4), *did = dev_from(di0, (size_t)BT * C * 4),
          *dwd = dev_from(dw0, (size_t)OC * C * 4), *dbd = dev_from(db0, OC * 4);
    K_OK(kern_linear_forward(g_ctx, od, xd, wd, bd, BT, C, OC, &g_err));
    K_OK(kern_linear_backward(g_ctx, 1, did, dwd, dbd, god, xd, wd, BT, C, OC, &g_err));
    K_OK(kern_sync(g_ctx, &g_err));
    check_dev("linear out", od, out, (size_t)BT * OC, 1e-5);
    check_dev("linear dinp", did, di, (size_t)BT * C, 1e-5);
    check_dev("linear dw", dwd, dw, (size_t)OC * C, 1e-5);
    check_dev("linear dbias", dbd, db, OC, 1e-5);
    /* accumulate = 0: beta 0, so the NaNs already in dinp must not reach the result */
    for (int i = 0; i < BT * C; i++) di[i] -= di0[i];
    poison(did, (size_t)BT * C * 4);
    K_OK(kern_linear_backward(g_ctx, 0, did, dwd, dbd, god, xd, wd, BT, C, OC, &g_err));
    check_dev("linear dinp (written)", did, di, (size_t)BT * C, 1e-5);
    float *bufs[] = {xd, wd, bd, god, od, did, dwd, dbd};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++)
        kern_free(g_ctx, bufs[k]);
    free(x); free(w); free(bias); free(go); free(di0); free(dw0); free(db0);
    free(out); free(di); free(dw); free(db);
}

static int setup(void **state)
{
    (void)state;
    if (kern_device_count() > 0) {
        kern_error err = {0};
        if (kern_ctx_create(&g_ctx, 0, &err)) {
            fprintf(stderr, "CUDA device present but unusable: %s (%s)\n", err.message, err.detail);
            return -1;
        }
        printf("[ device   ] %s, %d SMs\n", kern_ctx_device_name(g_ctx), kern_ctx_sm_count(g_ctx));
    } else {
        printf("[ device   ] none: GPU tests are skipped\n");
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kern_ctx_destroy(g_ctx);
    g_ctx = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_scan_fd),
        cmocka_unit_test(test_ref_s4d_fd),
        cmocka_unit_test(test_ref_conv_rmsnorm_fd),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_bad_shapes_on_device),
        cmocka_unit_test(test_scan_f32),
        cmocka_unit_test(test_scan_bf16),
        cmocka_unit_test(test_scan_variants),
        cmocka_unit_test(test_s4d_kernel),
        cmocka_unit_test(test_s4d_conv),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_pointwise),
        cmocka_unit_test(test_conv1d),
        cmocka_unit_test(test_linear),
    };
    /* KERN_TEST_FILTER=test_scan* runs a subset (the compute-sanitizer runs use it) */
    const char *filter = getenv("KERN_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, setup, teardown);
}
