/*
 * tests/neural/test_neural_gradcheck.c — every backward pass of neural_ssm/ against central
 * finite differences. This program links ssmd_neural_f64: the very same sources compiled
 * with nssm_real = double, so the check has ~1e-10 of numerical noise instead of float's
 * ~1e-3 and a wrong term of any size shows. Loss = sum(out * r) for a random r (layers) or
 * the forecaster's pinball loss (whole network, Mamba and S4D, gaps and padding included).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

#define TOL 1e-6

typedef double (*loss_fn)(void *ctx);

static uint64_t rng_state = 12345;
static double urand(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}
static real *rnd(size_t n, double scale, double shift)
{
    real *a = malloc(sizeof(real) * n);
    for (size_t i = 0; i < n; i++)
        a[i] = (2 * urand() - 1) * scale + shift;
    return a;
}
static real *zeros(size_t n)
{
    return calloc(n, sizeof(real));
}

/* Compares analytic[i] with (f(x+eps) - f(x-eps)) / 2 eps for every i (or a stride). */
static double EPS = 1e-6;
/* gradients smaller than this are compared in absolute terms (see forecaster_case) */
static double GFLOOR = 1e-12;

static void fd_check(const char *what, real *x, size_t n, const real *analytic, loss_fn f,
                     void *ctx, size_t stride)
{
    double maxg = 0, maxd = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(analytic[i]) > maxg)
            maxg = fabs(analytic[i]);
    for (size_t i = 0; i < n; i += stride) {
        real keep = x[i];
        x[i] = keep + EPS;
        double lp = f(ctx);
        x[i] = keep - EPS;
        double lm = f(ctx);
        x[i] = keep;
        double fd = (lp - lm) / (2 * EPS), d = fabs(fd - analytic[i]);
        if (d > TOL * (maxg > GFLOOR ? maxg : GFLOOR)) {
            /* The pinball loss has kinks where a quantile meets its target; a step that
             * crosses one spoils the difference. Retry with an eighth of the step: a
             * wrong gradient stays wrong, a kink almost never survives. */
            x[i] = keep + EPS / 8;
            lp = f(ctx);
            x[i] = keep - EPS / 8;
            lm = f(ctx);
            x[i] = keep;
            double d2 = fabs((lp - lm) / (2 * EPS / 8) - analytic[i]);
            d = d2 < d ? d2 : d;
        }
        if (!(d <= maxd))
            maxd = d;
    }
    double rel = maxd / (maxg > GFLOOR ? maxg : GFLOOR);
    if (!(rel <= TOL))
        fail_msg("%s: finite differences disagree by %.3g (relative)", what, rel);
    assert_true(maxg > 0); /* a zero gradient would pass trivially */
}

static double dot(const real *a, const real *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* ---- Linear, RMSNorm, Conv1d, SiLU, softplus ------------------------------------------ */

typedef struct simple_ctx {
    int kind; /* 0 linear 1 rmsnorm 2 conv 3 silu 4 softplus */
    real *x, *w, *b, *r, *out, *aux;
    int BT, C, OC, B, L, K;
    size_t n;
} simple_ctx;

static double simple_loss(void *p)
{
    simple_ctx *c = p;
    switch (c->kind) {
    case 0: nssm_linear_forward(c->out, c->x, c->w, c->b, c->BT, c->C, c->OC); break;
    case 1: nssm_rmsnorm_forward(c->out, c->aux, c->x, c->w, c->BT, c->C, 1e-5); break;
    case 2: nssm_conv1d_forward(c->out, c->x, c->w, c->b, c->B, c->L, c->C, c->K); break;
    case 3: nssm_silu_forward(c->out, c->x, c->n); break;
    default: nssm_softplus_forward(c->out, c->x, c->n); break;
    }
    return dot(c->out, c->r, c->n);
}

static void test_linear_rmsnorm_conv(void **state)
{
    (void)state;
    /* Linear (BT=5, C=4, OC=3) */
    simple_ctx c = {.kind = 0, .BT = 5, .C = 4, .OC = 3, .n = 15};
    c.x = rnd(20, 1, 0), c.w = rnd(12, 1, 0), c.b = rnd(3, 1, 0), c.r = rnd(15, 1, 0);
    c.out = zeros(15);
    real *dx = zeros(20), *dw = zeros(12), *db = zeros(3);
    nssm_linear_backward(dx, dw, db, c.r, c.x, c.w, 5, 4, 3);
    fd_check("linear dx", c.x, 20, dx, simple_loss, &c, 1);
    fd_check("linear dw", c.w, 12, dw, simple_loss, &c, 1);
    fd_check("linear db", c.b, 3, db, simple_loss, &c, 1);
    free(c.x), free(c.w), free(c.b), free(c.r), free(c.out), free(dx), free(dw), free(db);

    /* RMSNorm (BT=4, C=6) */
    simple_ctx n = {.kind = 1, .BT = 4, .C = 6, .n = 24};
    n.x = rnd(24, 1, 0), n.w = rnd(6, 0.3, 1), n.r = rnd(24, 1, 0), n.out = zeros(24);
    n.aux = zeros(4);
    simple_loss(&n);
    dx = zeros(24), dw = zeros(6);
    nssm_rmsnorm_backward(dx, dw, n.r, n.x, n.w, n.aux, 4, 6);
    fd_check("rmsnorm dx", n.x, 24, dx, simple_loss, &n, 1);
    fd_check("rmsnorm dw", n.w, 6, dw, simple_loss, &n, 1);
    free(n.x), free(n.w), free(n.r), free(n.out), free(n.aux), free(dx), free(dw);

    /* Conv1d (B=2, L=6, C=3, K=4) */
    simple_ctx v = {.kind = 2, .B = 2, .L = 6, .C = 3, .K = 4, .n = 36};
    v.x = rnd(36, 1, 0), v.w = rnd(12, 1, 0), v.b = rnd(3, 1, 0), v.r = rnd(36, 1, 0);
    v.out = zeros(36);
    dx = zeros(36), dw = zeros(12), db = zeros(3);
    nssm_conv1d_backward(dx, dw, db, v.r, v.x, v.w, 2, 6, 3, 4);
    fd_check("conv1d dx", v.x, 36, dx, simple_loss, &v, 1);
    fd_check("conv1d dw", v.w, 12, dw, simple_loss, &v, 1);
    fd_check("conv1d db", v.b, 3, db, simple_loss, &v, 1);
    free(v.x), free(v.w), free(v.b), free(v.r), free(v.out), free(dx), free(dw), free(db);

    /* SiLU and softplus */
    for (int kind = 3; kind <= 4; kind++) {
        simple_ctx e = {.kind = kind, .n = 16};
        e.x = rnd(16, 6, 0), e.r = rnd(16, 1, 0), e.out = zeros(16);
        dx = zeros(16);
        if (kind == 3)
            nssm_silu_backward(dx, e.r, e.x, 16);
        else
            nssm_softplus_backward(dx, e.r, e.x, 16);
        fd_check(kind == 3 ? "silu" : "softplus", e.x, 16, dx, simple_loss, &e, 1);
        free(e.x), free(e.r), free(e.out), free(dx);
    }
}

/* ---- selective scan --------------------------------------------------------------------------- */

typedef struct scan_ctx {
    int B, L, D, N, gate;
    real *u, *delta, *A, *Bm, *Cm, *Dk, *z, *r, *y;
    const nssm_delta_act *act; /* NULL, or delta is the pre-activation */
} scan_ctx;

static double scan_loss(void *p)
{
    scan_ctx *c = p;
    nssm_selective_scan_forward(c->y, c->u, c->delta, c->act, c->A, c->Bm, c->Cm, c->Dk,
                                c->gate ? c->z : NULL, c->B, c->L, c->D, c->N, NULL, NULL, 1);
    return dot(c->y, c->r, (size_t)c->B * c->L * c->D);
}

/* Four cases: without and with the gate, then with the delta activation (softplus of
 * delta + bias, gated; and the bias alone, ungated), where ddelta is the gradient of the
 * pre-activation and dbias is checked too. */
static void test_selective_scan(void **state)
{
    (void)state;
    for (int cs = 0; cs < 4; cs++) {
        const int gate = cs == 1 || cs == 2, with_act = cs >= 2;
        scan_ctx c = {.B = 2, .L = 35, .D = 3, .N = 5, .gate = gate};
        size_t BLD = 2 * 35 * 3, BLN = 2 * 35 * 5, DN = 15;
        int NC = (35 + NSSM_SCAN_CHUNK - 1) / NSSM_SCAN_CHUNK;
        /* a pre-activation around -1.5 gives softplus values near 0.2, as delta elsewhere
         * (with the bias alone, delta + bias must stay positive) */
        c.u = rnd(BLD, 1, 0), c.delta = cs == 2 ? rnd(BLD, 1, -1.5) : rnd(BLD, 0.2, 0.3);
        c.A = rnd(DN, 0.5, -1);
        c.Bm = rnd(BLN, 1, 0), c.Cm = rnd(BLN, 1, 0), c.Dk = rnd(3, 1, 0), c.z = rnd(BLD, 1, 0);
        c.r = rnd(BLD, 1, 0), c.y = zeros(BLD);
        real *bias = cs == 3 ? rnd(3, 0.05, 0.1) : rnd(3, 0.5, 0), *dbias = zeros(3);
        const nssm_delta_act act = {bias, dbias, cs == 2};
        c.act = with_act ? &act : NULL;
        real *ypre = zeros(BLD), *hchk = zeros((size_t)2 * NC * DN);
        real *du = zeros(BLD), *ddl = zeros(BLD), *dA = zeros(DN), *dB = zeros(BLN);
        real *dC = zeros(BLN), *dD = zeros(3), *dz = zeros(BLD);
        nssm_selective_scan_forward(c.y, c.u, c.delta, c.act, c.A, c.Bm, c.Cm, c.Dk,
                                    gate ? c.z : NULL, 2, 35, 3, 5, ypre, hchk, 2);
        assert_int_equal(nssm_selective_scan_backward(du, ddl, dA, dB, dC, dD, dz, c.r, c.u,
                                                      c.delta, c.act, c.A, c.Bm, c.Cm, c.Dk,
                                                      gate ? c.z : NULL, 2, 35, 3, 5, ypre,
                                                      hchk, 2),
                         NSSM_OK);
        if (with_act)
            fd_check("scan dbias", bias, 3, dbias, scan_loss, &c, 1);
        fd_check("scan du", c.u, BLD, du, scan_loss, &c, 1);
        fd_check("scan ddelta", c.delta, BLD, ddl, scan_loss, &c, 1);
        fd_check("scan dA", c.A, DN, dA, scan_loss, &c, 1);
        fd_check("scan dB", c.Bm, BLN, dB, scan_loss, &c, 1);
        fd_check("scan dC", c.Cm, BLN, dC, scan_loss, &c, 1);
        fd_check("scan dD", c.Dk, 3, dD, scan_loss, &c, 1);
        if (gate)
            fd_check("scan dz", c.z, BLD, dz, scan_loss, &c, 1);
        free(c.u), free(c.delta), free(c.A), free(c.Bm), free(c.Cm), free(c.Dk), free(c.z);
        free(c.r), free(c.y), free(ypre), free(hchk), free(du), free(ddl), free(dA), free(dB);
        free(dC), free(dD), free(dz), free(bias), free(dbias);
    }
}

/* ---- S4D kernel and convolution ------------------------------------------------------------- */

typedef struct s4d_ctx {
    int B, L, D, N, fft;
    real *log_dt, *C_re, *C_im, *log_A_re, *A_im, *Dk, *u, *K, *y, *r;
} s4d_ctx;

static double s4d_loss(void *p)
{
    s4d_ctx *c = p;
    nssm_s4d_kernel_forward(c->K, c->log_dt, c->C_re, c->C_im, c->log_A_re, c->A_im, c->D, c->N,
                            c->L);
    nssm_s4d_conv_forward_algo(c->y, c->u, c->K, c->Dk, c->B, c->L, c->D, 1, c->fft);
    return dot(c->y, c->r, (size_t)c->B * c->L * c->D);
}

static void test_s4d(void **state)
{
    (void)state;
    for (int fft = 0; fft <= 1; fft++) {
        s4d_ctx c = {.B = 3, .L = fft ? 70 : 12, .D = 2, .N = 3, .fft = fft};
        size_t BLD = (size_t)c.B * c.L * c.D, DN = 6;
        c.log_dt = rnd(2, 1, -2.5), c.C_re = rnd(DN, 1, 0), c.C_im = rnd(DN, 1, 0);
        c.log_A_re = rnd(DN, 0.3, log(0.5)), c.A_im = rnd(DN, 2, 3), c.Dk = rnd(2, 1, 0);
        c.u = rnd(BLD, 1, 0), c.K = zeros((size_t)c.D * c.L), c.y = zeros(BLD);
        c.r = rnd(BLD, 1, 0);
        s4d_loss(&c);
        real *du = zeros(BLD), *dK = zeros((size_t)c.D * c.L), *dD = zeros(2);
        real *g0 = zeros(2), *g1 = zeros(DN), *g2 = zeros(DN), *g3 = zeros(DN), *g4 = zeros(DN);
        assert_int_equal(nssm_s4d_conv_backward_algo(du, dK, dD, c.r, c.u, c.K, c.Dk, c.B, c.L,
                                                     c.D, 2, fft),
                         NSSM_OK);
        nssm_s4d_kernel_backward(g0, g1, g2, g3, g4, dK, c.log_dt, c.C_re, c.C_im, c.log_A_re,
                                 c.A_im, c.D, c.N, c.L);
        fd_check("s4d du", c.u, BLD, du, s4d_loss, &c, fft ? 7 : 1);
        fd_check("s4d dD", c.Dk, 2, dD, s4d_loss, &c, 1);
        fd_check("s4d dlog_dt", c.log_dt, 2, g0, s4d_loss, &c, 1);
        fd_check("s4d dC_re", c.C_re, DN, g1, s4d_loss, &c, 1);
        fd_check("s4d dC_im", c.C_im, DN, g2, s4d_loss, &c, 1);
        fd_check("s4d dlog_A_re", c.log_A_re, DN, g3, s4d_loss, &c, 1);
        fd_check("s4d dA_im", c.A_im, DN, g4, s4d_loss, &c, 1);
        free(c.log_dt), free(c.C_re), free(c.C_im), free(c.log_A_re), free(c.A_im), free(c.Dk);
        free(c.u), free(c.K), free(c.y), free(c.r), free(du), free(dK), free(dD);
        free(g0), free(g1), free(g2), free(g3), free(g4);
    }
}

/* ---- the whole forecaster ---------------------------------------------------------------------- */

typedef struct model_ctx {
    nssm_model *m;
    double *win;
    int64_t cal0[3];
    int B;
} model_ctx;

static double model_loss(void *p)
{
    model_ctx *c = p;
    double loss = NAN;
    nssm_error err;
    assert_int_equal(nssm_model_loss(c->m, c->win, c->cal0, c->B, 0, &loss, &err), NSSM_OK);
    return loss;
}

static void forecaster_case(nssm_mixer mixer, int L)
{
    nssm_config cfg;
    nssm_config_default(&cfg, mixer);
    cfg.context = L;
    cfg.horizon = 3;
    cfg.d_model = 6;
    cfg.n_layers = 2;
    cfg.d_state = 3;
    cfg.n_periods = 1;
    cfg.periods[0] = 5;
    cfg.nq = 5;
    double qs[5] = {0.1, 0.3, 0.5, 0.7, 0.9};
    memcpy(cfg.quantiles, qs, sizeof qs);
    model_ctx c = {.B = 3, .cal0 = {0, 3, 99}};
    nssm_error err;
    assert_int_equal(nssm_model_create(&c.m, &cfg, 11, NULL, &err), NSSM_OK);
    /* perturb the init so no gradient is structurally tiny */
    real *p = nssm_model_params_(c.m);
    for (size_t i = 0; i < nssm_model_num_params(c.m); i++)
        p[i] += 0.05 * (2 * urand() - 1);
    int W = L + cfg.horizon;
    c.win = malloc(sizeof(double) * c.B * W);
    for (int i = 0; i < c.B * W; i++)
        c.win[i] = 10 + 3 * sin(i * 0.7) + urand();
    c.win[2] = NAN;            /* gap */
    c.win[W + 0] = NAN;        /* padding */
    c.win[W + 1] = NAN;
    c.win[2 * W + L + 1] = NAN; /* missing target */
    double loss;
    assert_int_equal(nssm_model_loss(c.m, c.win, c.cal0, c.B, 1, &loss, &err), NSSM_OK);
    size_t np = nssm_model_num_params(c.m);
    real *g = malloc(sizeof(real) * np);
    memcpy(g, nssm_model_grads_(c.m), sizeof(real) * np);
    /* the loss is a mean over hundreds of pinball terms, so its gradients are ~1e-4: a
     * larger step keeps the loss's rounding (~1e-16) well below the differences */
    EPS = 1e-4;
    /* a tensor whose gradient is a thousand times smaller than the largest (dt_proj with
     * small dt) is held to 1e-6 of 1e-3 of the largest gradient, not of its own */
    double gmax = 0;
    for (size_t i = 0; i < np; i++)
        gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
    GFLOOR = 1e-3 * gmax;
    for (int t = 0; t < nssm_model_num_tensors(c.m); t++) {
        const nssm_tensor *tt = nssm_model_tensor(c.m, t);
        char what[96];
        snprintf(what, sizeof what, "%s forecaster %s", mixer == NSSM_MIXER_MAMBA ? "mamba" : "s4d",
                 tt->name);
        fd_check(what, p + tt->offset, tt->size, g + tt->offset, model_loss, &c,
                 tt->size > 40 ? 3 : 1);
    }
    EPS = 1e-6;
    GFLOOR = 1e-12;
    free(g);
    free(c.win);
    nssm_model_free(c.m);
}

static void test_forecaster_mamba(void **state)
{
    (void)state;
    forecaster_case(NSSM_MIXER_MAMBA, 20);
}

static void test_forecaster_s4d(void **state)
{
    (void)state;
    forecaster_case(NSSM_MIXER_S4D, 12);  /* direct convolution */
    forecaster_case(NSSM_MIXER_S4D, 66);  /* FFT convolution */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_rmsnorm_conv),
        cmocka_unit_test(test_selective_scan),
        cmocka_unit_test(test_s4d),
        cmocka_unit_test(test_forecaster_mamba),
        cmocka_unit_test(test_forecaster_s4d),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
