/*
 * tests/neural/test_neural_device.c — the CUDA backend against the CPU path for whole
 * training steps of the forecaster (Mamba and S4D): the same parameters and the same
 * batch give the same loss and the same gradient for every tensor (relative error within
 * 1e-4, max |gpu - cpu| over max |cpu| per tensor), and two AdamW steps of nssm_train give
 * the same updated weights; and forecasts from the same parameters (nssm_forecast: the
 * device queues its work, the S4D recurrence runs on the host) give the same quantiles.
 * Skips (cmocka skip) when the build has no CUDA or the machine has no device, as in CI.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "neural_ssm.h"

#define REL_TOL 1e-4

static const nssm_backend *gpu_or_skip(void)
{
    nssm_error err;
    const nssm_backend *gpu = nssm_backend_get(NSSM_DEVICE_CUDA, &err);
    if (!gpu || !gpu->available()) {
        printf("      no CUDA device (%s): skipped\n", gpu ? "none present" : err.message);
        skip();
    }
    return gpu;
}

static nssm_config small_config(int mixer)
{
    nssm_config c;
    nssm_config_default(&c, mixer);
    c.context = 96, c.horizon = 12, c.d_model = 32, c.n_layers = 2, c.d_state = 16;
    c.n_periods = 1, c.periods[0] = 12;
    return c;
}

/* A pair of models, one per backend, holding the CPU model's initial parameters. */
static void make_pair(const nssm_config *c, const nssm_backend *gpu, nssm_model **mc,
                      nssm_model **mg, float *p)
{
    nssm_error err;
    assert_int_equal(nssm_model_create(mc, c, 5, nssm_backend_get(NSSM_DEVICE_CPU, &err), &err),
                     NSSM_OK);
    assert_int_equal(nssm_model_create(mg, c, 6, gpu, &err), NSSM_OK);
    assert_int_equal(nssm_model_get_params(*mc, p, &err), NSSM_OK);
    assert_int_equal(nssm_model_set_params(*mg, p, &err), NSSM_OK);
}

/* max |b - a| / max |a| over one tensor's slice */
static double rel_err(const float *a, const float *b, size_t n)
{
    double me = 0, ma = 0;
    for (size_t k = 0; k < n; k++) {
        if (!isfinite(b[k]))
            return INFINITY;
        me = fmax(me, fabs((double)b[k] - a[k]));
        ma = fmax(ma, fabs((double)a[k]));
    }
    return me / (ma > 0 ? ma : 1);
}

static void loss_and_gradients(int mixer)
{
    const nssm_backend *gpu = gpu_or_skip();
    nssm_config c = small_config(mixer);
    nssm_model *mc, *mg;
    nssm_error err;
    nssm_model_create(&mc, &c, 5, NULL, &err); /* just for the parameter count */
    const size_t np = nssm_model_num_params(mc);
    nssm_model_free(mc);
    float *p = malloc(np * sizeof *p), *gc = malloc(np * sizeof *gc), *gg = malloc(np * sizeof *gg);
    make_pair(&c, gpu, &mc, &mg, p);

    const int B = 8, W = c.context + c.horizon;
    double *win = malloc(sizeof(double) * B * W);
    int64_t cal0[8];
    for (int b = 0; b < B; b++) {
        cal0[b] = 3 * b;
        for (int t = 0; t < W; t++)
            win[(size_t)b * W + t] = 50 + 8 * sin(2 * M_PI * (t + 3 * b) / 12) + cos(1.7 * t + b);
    }
    win[5] = win[W + 40] = NAN; /* missing values take the masked path */
    double lc, lg;
    assert_int_equal(nssm_model_loss(mc, win, cal0, B, 1, &lc, &err), NSSM_OK);
    assert_int_equal(nssm_model_loss(mg, win, cal0, B, 1, &lg, &err), NSSM_OK);
    assert_int_equal(nssm_model_get_grads(mc, gc, &err), NSSM_OK);
    assert_int_equal(nssm_model_get_grads(mg, gg, &err), NSSM_OK);
    printf("      loss cpu %.9g gpu %.9g\n", lc, lg);
    assert_true(fabs(lg - lc) <= REL_TOL * fabs(lc));
    double worst = 0;
    for (int i = 0; i < nssm_model_num_tensors(mc); i++) {
        const nssm_tensor *t = nssm_model_tensor(mc, i);
        const double r = rel_err(gc + t->offset, gg + t->offset, t->size);
        if (r > REL_TOL)
            printf("      gradient of %s: relative error %.2e\n", t->name, r);
        assert_true(r <= REL_TOL);
        worst = fmax(worst, r);
    }
    printf("      %zu gradients, worst relative error %.2e\n", np, worst);

    /* two AdamW steps through the trainer (the gradient norm and the update run on each
     * backend: nssm_adamw_update in double on the CPU, kern_adamw_update in float on the
     * GPU), so the weights differ through the gradients and the update's rounding; Adam's
     * first steps normalise each gradient element, so an element whose gradient is ~0 may
     * move by up to 2 lr in either direction and is held to that instead */
    double *series = malloc(sizeof(double) * 400);
    for (int t = 0; t < 400; t++)
        series[t] = 20 + 5 * sin(2 * M_PI * t / 12) + 0.02 * t + sin(0.9 * t);
    nssm_series_ref s = {series, 400, 0};
    nssm_train_opts o = {.max_steps = 2, .batch = 8, .eval_every = 100, .seed = 7, .lr = 1e-3};
    nssm_train_report rc_, rg_;
    assert_int_equal(nssm_model_set_params(mc, p, &err), NSSM_OK);
    assert_int_equal(nssm_model_set_params(mg, p, &err), NSSM_OK);
    assert_int_equal(nssm_train(mc, &s, 1, &o, &rc_, &err), NSSM_OK);
    assert_int_equal(nssm_train(mg, &s, 1, &o, &rg_, &err), NSSM_OK);
    assert_int_equal(rc_.best_step, rg_.best_step);
    float *pc = malloc(np * sizeof *pc), *pg = malloc(np * sizeof *pg);
    assert_int_equal(nssm_model_get_params(mc, pc, &err), NSSM_OK);
    assert_int_equal(nssm_model_get_params(mg, pg, &err), NSSM_OK);
    size_t moved = 0, loose = 0;
    double worst_w = 0;
    for (size_t k = 0; k < np; k++) {
        moved += pc[k] != p[k];
        const double d = fabs((double)pg[k] - pc[k]);
        if (d > 1e-5 * fmax(1.0, fabs(pc[k]))) {
            loose++;
            assert_true(d <= 2 * 2 * o.lr + 1e-6);
        }
        worst_w = fmax(worst_w, d);
    }
    printf("      after %d AdamW steps (best step %d): %zu of %zu weights moved, %zu beyond 1e-5 "
           "(near-zero gradients), largest difference %.2e\n",
           o.max_steps, rc_.best_step, moved, np, loose, worst_w);
    assert_true(loose * 100 <= np); /* only the rare near-zero-gradient elements */
    free(series);
    free(pc);
    free(pg);
    free(win);
    free(p);
    free(gc);
    free(gg);
    nssm_model_free(mc);
    nssm_model_free(mg);
}

/* One forecast per backend from the same parameters, twice on the device (the second must
 * not see the first's buffers): every quantile within REL_TOL of the CPU path's, relative to
 * the largest. */
static void forecast_matches(int mixer)
{
    const nssm_backend *gpu = gpu_or_skip();
    nssm_config c = small_config(mixer);
    nssm_model *mc, *mg;
    nssm_error err;
    nssm_model_create(&mc, &c, 5, NULL, &err);
    const size_t np = nssm_model_num_params(mc);
    nssm_model_free(mc);
    float *p = malloc(np * sizeof *p);
    make_pair(&c, gpu, &mc, &mg, p);
    const size_t n = 300, nq = (size_t)c.horizon * c.nq;
    double *v = malloc(n * sizeof *v), *qc = malloc(nq * sizeof *qc), *qg = malloc(nq * sizeof *qg);
    for (size_t t = 0; t < n; t++)
        v[t] = t % 37 == 5 ? NAN : 50 + 8 * sin(2 * M_PI * t / 12) + 0.05 * t + sin(1.7 * t);
    for (int rep = 0; rep < 2; rep++) {
        nssm_series_ref s = {v, n - 20 * (size_t)rep, 3};
        assert_int_equal(nssm_forecast(mc, &s, qc, &err), NSSM_OK);
        assert_int_equal(nssm_forecast(mg, &s, qg, &err), NSSM_OK);
        double me = 0, ma = 0;
        for (size_t k = 0; k < nq; k++) {
            assert_true(isfinite(qg[k]));
            me = fmax(me, fabs(qg[k] - qc[k]));
            ma = fmax(ma, fabs(qc[k]));
        }
        printf("      forecast %d: %zu quantiles, largest difference %.2e of %.3g\n", rep, nq, me, ma);
        assert_true(me <= REL_TOL * ma);
    }
    free(v);
    free(qc);
    free(qg);
    free(p);
    nssm_model_free(mc);
    nssm_model_free(mg);
}

static void test_mamba_forecast(void **state)
{
    (void)state;
    forecast_matches(NSSM_MIXER_MAMBA);
}

static void test_s4d_forecast(void **state)
{
    (void)state;
    forecast_matches(NSSM_MIXER_S4D);
}

static void test_mamba_step(void **state)
{
    (void)state;
    loss_and_gradients(NSSM_MIXER_MAMBA);
}

static void test_s4d_step(void **state)
{
    (void)state;
    loss_and_gradients(NSSM_MIXER_S4D);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mamba_step),
        cmocka_unit_test(test_s4d_step),
        cmocka_unit_test(test_mamba_forecast),
        cmocka_unit_test(test_s4d_forecast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
