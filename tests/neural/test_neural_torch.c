/*
 * tests/neural/test_neural_torch.c — neural_ssm/ against the PyTorch reference: every
 * layer's forward output and input/parameter gradients, and the whole forecaster's loss,
 * quantiles and every parameter gradient (Mamba and S4D), read from the committed fixtures
 * that tests/reference/torch_reference.py wrote (float64 autograd). Tolerance: 1e-5 of
 * each array's largest magnitude.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fixture.h"
#include "neural_ssm.h"

#define TOL 1e-5

static fx_file layers_fx;

#define GET(name) fx_floats(&layers_fx, name, NULL)

static void expect_close(const char *what, const float *got, const char *ref, size_t n)
{
    const fx_record *r = fx_get(&layers_fx, ref);
    assert_non_null(r);
    assert_int_equal(r->n, n);
    double e = fx_relerr_f(got, r->v, n);
    if (!(e <= TOL))
        fail_msg("%s: relative error %.3g > %.1g", what, e, TOL);
}

static void test_linear(void **state)
{
    (void)state;
    float *x = GET("linear.x"), *w = GET("linear.w"), *b = GET("linear.b");
    float *dout = GET("linear.dout");
    float out[24], dx[30] = {0}, dw[20] = {0}, db[4] = {0};
    nssm_linear_forward(out, x, w, b, 6, 5, 4);
    nssm_linear_backward(dx, dw, db, dout, x, w, 6, 5, 4);
    expect_close("linear out", out, "linear.out", 24);
    expect_close("linear dx", dx, "linear.dx", 30);
    expect_close("linear dw", dw, "linear.dw", 20);
    expect_close("linear db", db, "linear.db", 4);
    free(x), free(w), free(b), free(dout);
}

static void test_rmsnorm(void **state)
{
    (void)state;
    float *x = GET("rmsnorm.x"), *w = GET("rmsnorm.w"), *dout = GET("rmsnorm.dout");
    float out[30], rstd[6], dx[30] = {0}, dw[5] = {0};
    nssm_rmsnorm_forward(out, rstd, x, w, 6, 5, 1e-5f);
    nssm_rmsnorm_backward(dx, dw, dout, x, w, rstd, 6, 5);
    expect_close("rmsnorm out", out, "rmsnorm.out", 30);
    expect_close("rmsnorm dx", dx, "rmsnorm.dx", 30);
    expect_close("rmsnorm dw", dw, "rmsnorm.dw", 5);
    free(x), free(w), free(dout);
}

static void test_conv1d(void **state)
{
    (void)state;
    float *x = GET("conv1d.x"), *w = GET("conv1d.w"), *b = GET("conv1d.b");
    float *dout = GET("conv1d.dout");
    float out[42], dx[42] = {0}, dw[12] = {0}, db[3] = {0};
    nssm_conv1d_forward(out, x, w, b, 2, 7, 3, 4);
    nssm_conv1d_backward(dx, dw, db, dout, x, w, 2, 7, 3, 4);
    expect_close("conv1d out", out, "conv1d.out", 42);
    expect_close("conv1d dx", dx, "conv1d.dx", 42);
    expect_close("conv1d dw", dw, "conv1d.dw", 12);
    expect_close("conv1d db", db, "conv1d.db", 3);
    free(x), free(w), free(b), free(dout);
}

static void test_elementwise(void **state)
{
    (void)state;
    float out[20], dx[20];
    float *x = GET("silu.x"), *dout = GET("silu.dout");
    nssm_silu_forward(out, x, 20);
    memset(dx, 0, sizeof dx);
    nssm_silu_backward(dx, dout, x, 20);
    expect_close("silu out", out, "silu.out", 20);
    expect_close("silu dx", dx, "silu.dx", 20);
    free(x), free(dout);
    x = GET("softplus.x"), dout = GET("softplus.dout");
    nssm_softplus_forward(out, x, 20);
    memset(dx, 0, sizeof dx);
    nssm_softplus_backward(dx, dout, x, 20);
    expect_close("softplus out", out, "softplus.out", 20);
    expect_close("softplus dx", dx, "softplus.dx", 20);
    free(x), free(dout);
    /* residual add: out = a + b; both gradients are dout */
    float a[3] = {1, 2, 3}, b[3] = {4, -5, 6}, o[3], da[3] = {0}, dbb[3] = {0}, g[3] = {1, 2, 3};
    nssm_residual_forward(o, a, b, 3);
    nssm_residual_backward(da, dbb, g, 3);
    assert_true(o[1] == -3 && da[2] == 3 && dbb[0] == 1);
}

static void test_scan(void **state)
{
    (void)state;
    enum { B = 2, L = 37, D = 3, N = 4, NC = (L + NSSM_SCAN_CHUNK - 1) / NSSM_SCAN_CHUNK };
    float *u = GET("scan.u"), *delta = GET("scan.delta"), *A = GET("scan.A");
    float *Bm = GET("scan.B"), *Cm = GET("scan.C"), *Dk = GET("scan.D"), *z = GET("scan.z");
    float *dy = GET("scan.dy");
    for (int gate = 1; gate >= 0; gate--) {
        for (int threads = 1; threads <= 2; threads++) {
            float y[B * L * D], ypre[B * L * D], hchk[B * NC * D * N];
            float du[B * L * D] = {0}, ddelta[B * L * D] = {0}, dA[D * N] = {0};
            float dB[B * L * N] = {0}, dC[B * L * N] = {0}, dD[D] = {0}, dz[B * L * D] = {0};
            const float *zz = gate ? z : NULL;
            nssm_selective_scan_forward(y, u, delta, NULL, A, Bm, Cm, Dk, zz, B, L, D, N, ypre,
                                        hchk, threads);
            assert_int_equal(nssm_selective_scan_backward(du, ddelta, dA, dB, dC, dD, dz, dy, u,
                                                          delta, NULL, A, Bm, Cm, Dk, zz, B, L,
                                                          D, N, ypre, hchk, threads),
                             NSSM_OK);
            char ref[64];
#define CHECK(arr, nm, n)                                          \
    snprintf(ref, sizeof ref, "scan.gate%d.%s", gate, nm);         \
    expect_close(ref, arr, ref, n)
            CHECK(y, "y", B * L * D);
            CHECK(du, "du", B * L * D);
            CHECK(ddelta, "ddelta", B * L * D);
            CHECK(dA, "dA", D * N);
            CHECK(dB, "dB", B * L * N);
            CHECK(dC, "dC", B * L * N);
            CHECK(dD, "dD", D);
            if (gate) {
                CHECK(dz, "dz", B * L * D);
            }
#undef CHECK
        }
    }
    free(u), free(delta), free(A), free(Bm), free(Cm), free(Dk), free(z), free(dy);
}

static void test_s4d_kernel(void **state)
{
    (void)state;
    enum { D = 3, N = 4, L = 20 };
    float *log_dt = GET("s4dk.log_dt"), *C_re = GET("s4dk.C_re"), *C_im = GET("s4dk.C_im");
    float *log_A_re = GET("s4dk.log_A_re"), *A_im = GET("s4dk.A_im"), *dK = GET("s4dk.dK");
    float K[D * L], g0[D] = {0}, g1[D * N] = {0}, g2[D * N] = {0}, g3[D * N] = {0},
                    g4[D * N] = {0};
    nssm_s4d_kernel_forward(K, log_dt, C_re, C_im, log_A_re, A_im, D, N, L);
    nssm_s4d_kernel_backward(g0, g1, g2, g3, g4, dK, log_dt, C_re, C_im, log_A_re, A_im, D, N, L);
    expect_close("s4d K", K, "s4dk.K", D * L);
    expect_close("s4d dlog_dt", g0, "s4dk.dlog_dt", D);
    expect_close("s4d dC_re", g1, "s4dk.dC_re", D * N);
    expect_close("s4d dC_im", g2, "s4dk.dC_im", D * N);
    expect_close("s4d dlog_A_re", g3, "s4dk.dlog_A_re", D * N);
    expect_close("s4d dA_im", g4, "s4dk.dA_im", D * N);
    free(log_dt), free(C_re), free(C_im), free(log_A_re), free(A_im), free(dK);
}

static void test_s4d_conv(void **state)
{
    (void)state;
    const char *tags[2] = {"short", "long"};
    const int Ls[2] = {20, 70};
    for (int i = 0; i < 2; i++) {
        const int B = 3, L = Ls[i], D = 2;
        char nm[64];
#define LOAD(var, key) (snprintf(nm, sizeof nm, "s4dconv.%s.%s", tags[i], key), var = GET(nm))
        float *u, *K, *Dk, *dy;
        LOAD(u, "u");
        LOAD(K, "K");
        LOAD(Dk, "D");
        LOAD(dy, "dy");
#undef LOAD
        float *y = calloc(B * L * D, sizeof(float)), *du = calloc(B * L * D, sizeof(float));
        float *dK = calloc(D * L, sizeof(float)), dD[2] = {0};
        /* the public entry picks direct loops for L = 20 and the FFT for L = 70 */
        assert_int_equal(nssm_s4d_conv_forward(y, u, K, Dk, B, L, D, 2), NSSM_OK);
        assert_int_equal(nssm_s4d_conv_backward(du, dK, dD, dy, u, K, Dk, B, L, D, 2), NSSM_OK);
#define CMP(arr, key, n) (snprintf(nm, sizeof nm, "s4dconv.%s.%s", tags[i], key), expect_close(nm, arr, nm, n))
        CMP(y, "y", B * L * D);
        CMP(du, "du", B * L * D);
        CMP(dK, "dK", D * L);
        CMP(dD, "dD", D);
#undef CMP
        free(u), free(K), free(Dk), free(dy), free(y), free(du), free(dK);
    }
}

/* ---- the whole forecaster ------------------------------------------------------------------ */

static void forecaster_case(const char *file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/neural/%s", SSMD_TEST_FIXTURES, file);
    fx_file fx;
    assert_int_equal(fx_load(&fx, path), 0);
    const fx_record *cf = fx_get(&fx, "config"), *qs = fx_get(&fx, "quantiles");
    nssm_config c;
    nssm_config_default(&c, (nssm_mixer)(int)cf->v[0]);
    c.context = (int)cf->v[1];
    c.horizon = (int)cf->v[2];
    c.d_model = (int)cf->v[3];
    c.n_layers = (int)cf->v[4];
    c.d_state = (int)cf->v[5];
    c.expand = (int)cf->v[6];
    c.d_conv = (int)cf->v[7];
    c.dt_rank = (int)cf->v[8];
    c.n_periods = (int)cf->n - 9;
    for (int k = 0; k < c.n_periods; k++)
        c.periods[k] = cf->v[9 + k];
    c.nq = (int)qs->n;
    for (int j = 0; j < c.nq; j++)
        c.quantiles[j] = qs->v[j];
    nssm_model *m;
    nssm_error err = {0};
    assert_int_equal(nssm_model_create(&m, &c, 7, NULL, &err), NSSM_OK);
    size_t np;
    float *params = fx_floats(&fx, "params", &np);
    assert_int_equal(np, nssm_model_num_params(m));
    assert_int_equal(nssm_model_set_params(m, params, &err), NSSM_OK);
    const fx_record *wr = fx_get(&fx, "windows"), *cr = fx_get(&fx, "cal0");
    int B = (int)cr->n;
    int64_t cal0[8];
    for (int b = 0; b < B; b++)
        cal0[b] = (int64_t)cr->v[b];
    double loss;
    assert_int_equal(nssm_model_loss(m, wr->v, cal0, B, 1, &loss, &err), NSSM_OK);
    const fx_record *lr = fx_get(&fx, "loss");
    if (!(fabs(loss - lr->v[0]) <= TOL * fabs(lr->v[0])))
        fail_msg("%s loss %.9g vs torch %.9g", file, loss, lr->v[0]);
    float *g = malloc(sizeof(float) * np);
    nssm_model_get_grads(m, g, &err);
    const fx_record *gr = fx_get(&fx, "grads");
    for (int t = 0; t < nssm_model_num_tensors(m); t++) {
        const nssm_tensor *tt = nssm_model_tensor(m, t);
        double e = fx_relerr_f(g + tt->offset, gr->v + tt->offset, tt->size);
        if (!(e <= TOL))
            fail_msg("%s: gradient of %s off by %.3g relative", file, tt->name, e);
    }
    double eloss;
    assert_int_equal(nssm_model_eval_loss(m, wr->v, cal0, B, &eloss, &err), NSSM_OK);
    const fx_record *el = fx_get(&fx, "eval_loss");
    if (!(fabs(eloss - el->v[0]) <= TOL * fabs(el->v[0])))
        fail_msg("%s eval loss %.9g vs torch %.9g", file, eloss, el->v[0]);
    free(g);
    free(params);
    nssm_model_free(m);
    fx_free(&fx);
}

static void test_forecaster_mamba(void **state)
{
    (void)state;
    forecaster_case("forecaster_mamba.txt");
}

static void test_forecaster_s4d(void **state)
{
    (void)state;
    forecaster_case("forecaster_s4d.txt");
}

int main(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/neural/layers.txt", SSMD_TEST_FIXTURES);
    if (fx_load(&layers_fx, path) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),          cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_conv1d),          cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_scan),            cmocka_unit_test(test_s4d_kernel),
        cmocka_unit_test(test_s4d_conv),        cmocka_unit_test(test_forecaster_mamba),
        cmocka_unit_test(test_forecaster_s4d),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    fx_free(&layers_fx);
    return rc;
}
