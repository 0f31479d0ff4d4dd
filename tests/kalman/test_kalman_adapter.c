/*
 * tests/kalman/test_kalman_adapter.c — the Kalman family through the ssm_model interface
 * (models/model_kalman.c): fit / info with statsmodels' names and figures, incremental
 * update equal to refiltering from scratch (1e-9), save/load round trips, rejection of
 * truncated / corrupt / mismatched blobs, bad input (NaN/inf, too short, missing values),
 * season resolution for bsm and the structural(...) spec.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kalman.h"
#include "kalman_test_util.h"
#include "model.h"

static ssm_series series(double *v, size_t n, ssm_freq_unit unit)
{
    ssm_series s = {"test", {unit, 1}, 0, n, v};
    return s;
}

static void test_nile_info(void **state)
{
    (void)state;
    size_t n;
    double *y = kt_load_series("Nile.csv", 0, &n);
    ssm_model *m = kt_fitted("local_level", y, n, SSM_FREQ_YEAR);
    ssm_fit_info info;
    assert_int_equal(ssm_model_info(m, &info), 0);
    assert_int_equal(info.nparams, 2);
    assert_string_equal(info.params[0].name, "sigma2.irregular");
    assert_string_equal(info.params[1].name, "sigma2.level");
    assert_true(fabs(info.params[0].value / 15098.5 - 1) < 1e-3);
    assert_true(fabs(info.params[1].value / 1469.18 - 1) < 1e-3);
    assert_true(fabs(info.loglik - -633.4646) < 1e-3);
    assert_true(fabs(info.aic - 1272.929) < 2e-3);
    assert_true(fabs(info.bic - 1280.745) < 2e-3);
    assert_true(fabs(info.aicc - 1273.179) < 2e-3);
    assert_int_equal(info.nobs, 100);
    assert_true(info.converged);
    /* forecasts: statsmodels' 12-step mean/variance at its parameters are within the
     * parameter tolerance of ours */
    double fm[12] = {0}, fv[12] = {0}, mean[12], sd[12];
    kt_read_key(SSMD_TEST_FIXTURES "/kalman/structural_nile_llevel.txt", "fc_mean", fm, 12);
    kt_read_key(SSMD_TEST_FIXTURES "/kalman/structural_nile_llevel.txt", "fc_var", fv, 12);
    kt_forecast(m, 12, mean, sd);
    for (int i = 0; i < 12; i++) {
        assert_true(fabs(mean[i] / fm[i] - 1) < 1e-4);
        assert_true(fabs(sd[i] * sd[i] / fv[i] - 1) < 1e-3);
    }
    ssm_model_free(m);
    free(y);
}

/* Refilters y[0..n) from scratch at the model's parameters and compares h-step forecasts
 * (linear functionals of a_{n+1} and P_{n+1}) with the model's. */
static void check_refilter(const ssm_model *m, const char *kname, int season, const double *y,
                           size_t n)
{
    ssm_fit_info info;
    assert_int_equal(ssm_model_info(m, &info), 0);
    kalman_structural_spec sp;
    kalman_error kerr = {0};
    assert_int_equal(kalman_structural_named(kname, season, &sp, &kerr), 0);
    kalman_model *mod = kalman_structural_create(&sp, &kerr);
    assert_non_null(mod);
    double p[KALMAN_MAX_PARAMS];
    for (size_t i = 0; i < info.nparams; i++)
        p[i] = info.params[i].value;
    kalman_ssm s;
    assert_int_equal(kalman_ssm_alloc(&s, mod->m, mod->r, &kerr), 0);
    kalman_workspace *ws = kalman_workspace_create(mod->m, mod->r, &kerr);
    assert_int_equal(mod->build(mod->ctx, p, &s, ws, &kerr), 0);
    kalman_state st;
    assert_int_equal(kalman_state_alloc(&st, mod->m, &kerr), 0);
    kalman_state_start(&st, &s);
    assert_int_equal(kalman_filter(&s, y, n, &st, NULL, NULL, ws, &kerr), 0);
    enum { H = 24 };
    double km[H], kv[H], mean[H], sd[H];
    assert_int_equal(kalman_forecast(&s, &st, H, km, kv, ws, &kerr), 0);
    kt_forecast(m, H, mean, sd);
    for (int i = 0; i < H; i++) {
        assert_true(kt_close(mean[i], km[i], 1e-9, 1e-12, "mean", i));
        assert_true(kt_close(sd[i] * sd[i], kv[i], 1e-9, 0, "var", i));
    }
    kalman_state_free(&st);
    kalman_workspace_free(ws);
    kalman_ssm_free(&s);
    kalman_model_free(mod);
}

static void test_update_equals_refilter(void **state)
{
    (void)state;
    size_t n;
    double *y = kt_load_series("Nile.csv", 0, &n);
    y[85] = NAN; /* a missing value among the new points */
    ssm_model *m = kt_fitted("local_level", y, 70, SSM_FREQ_YEAR);
    ssm_error err = {0};
    assert_int_equal(ssm_model_update(m, y + 70, 10, &err), 0);
    assert_int_equal(ssm_model_update(m, y + 80, n - 80, &err), 0);
    assert_int_equal(m->nseen, n);
    check_refilter(m, "local_level", 0, y, n);
    ssm_model_free(m);
    free(y);

    double *a = kt_load_series("AirPassengers.csv", 1, &n);
    m = kt_fitted("bsm", a, 120, SSM_FREQ_MONTH);
    for (size_t i = 120; i < n; i += 5)
        assert_int_equal(ssm_model_update(m, a + i, (n - i) < 5 ? n - i : 5, &err), 0);
    check_refilter(m, "bsm", 12, a, n);
    ssm_model_free(m);
    free(a);
}

static void test_save_load(void **state)
{
    (void)state;
    size_t n;
    double *a = kt_load_series("AirPassengers.csv", 1, &n);
    ssm_model *m = kt_fitted("bsm", a, 130, SSM_FREQ_MONTH);
    ssm_error err = {0};
    ssm_buffer blob = {0};
    assert_int_equal(ssm_model_save(m, &blob, &err), 0);

    ssm_model *m2 = ssm_model_create("bsm", NULL, &err);
    assert_non_null(m2);
    assert_int_equal(ssm_model_load(m2, blob.data, blob.len, &err), 0);
    ssm_fit_info i1, i2;
    ssm_model_info(m, &i1);
    ssm_model_info(m2, &i2);
    assert_int_equal(i1.nparams, i2.nparams);
    for (size_t i = 0; i < i1.nparams; i++)
        assert_true(i1.params[i].value == i2.params[i].value);
    assert_true(i1.loglik == i2.loglik && i1.aicc == i2.aicc);
    /* both continue identically */
    assert_int_equal(ssm_model_update(m, a + 130, n - 130, &err), 0);
    assert_int_equal(ssm_model_update(m2, a + 130, n - 130, &err), 0);
    double m1m[18], m1s[18], m2m[18], m2s[18];
    kt_forecast(m, 18, m1m, m1s);
    kt_forecast(m2, 18, m2m, m2s);
    for (int i = 0; i < 18; i++)
        assert_true(m1m[i] == m2m[i] && m1s[i] == m2s[i]);
    assert_true(m2->last_ts == m->last_ts && m2->nseen == m->nseen);

    /* every truncation is rejected */
    for (size_t len = 0; len < blob.len; len++) {
        ssm_model *t = ssm_model_create("bsm", NULL, &err);
        assert_int_equal(ssm_model_load(t, blob.data, len, &err), SSM_EFORMAT);
        ssm_model_free(t);
    }
    /* every single-byte corruption is rejected (or, in the common header's time fields,
     * accepted but then the model still works) */
    for (size_t i = 0; i < blob.len; i++) {
        ssm_model *t = ssm_model_create("bsm", NULL, &err);
        blob.data[i] ^= 0x5a;
        int rc = ssm_model_load(t, blob.data, blob.len, &err);
        blob.data[i] ^= 0x5a;
        if (rc == SSM_OK) {
            double fm[3], fs[3];
            kt_forecast(t, 3, fm, fs);
            assert_true(i < 36); /* only last_ts / nseen of the common header can pass */
        } else {
            assert_int_equal(rc, SSM_EFORMAT);
            assert_true(strlen(err.message) > 0);
        }
        ssm_model_free(t);
    }
    /* a blob of another model */
    ssm_model *other = ssm_model_create("local_linear_trend", NULL, &err);
    assert_int_equal(ssm_model_load(other, blob.data, blob.len, &err), SSM_EFORMAT);
    ssm_model_free(other);
    ssm_model *other2 = ssm_model_create("bsm(season=4)", NULL, &err);
    assert_int_equal(ssm_model_load(other2, blob.data, blob.len, &err), SSM_EFORMAT);
    ssm_model_free(other2);
    /* unfitted models cannot be saved or forecast */
    ssm_model *un = ssm_model_create("local_level", NULL, &err);
    ssm_buffer b2 = {0};
    assert_int_not_equal(ssm_model_save(un, &b2, &err), 0);
    ssm_buffer_free(&b2);
    ssm_model_free(un);

    ssm_buffer_free(&blob);
    ssm_model_free(m);
    ssm_model_free(m2);
    free(a);
}

static void test_bad_input(void **state)
{
    (void)state;
    ssm_error err = {0};
    ssm_model *m = ssm_model_create("local_level", NULL, &err);
    double y3[3] = {1, 2, 3};
    ssm_series s = series(y3, 3, SSM_FREQ_DAY);
    assert_int_equal(ssm_model_fit(m, &s, &err), SSM_ETOOSHORT);
    double yinf[6] = {1, 2, INFINITY, 3, 4, 5};
    s = series(yinf, 6, SSM_FREQ_DAY);
    assert_int_equal(ssm_model_fit(m, &s, &err), SSM_EINVAL);
    double yn[8] = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    s = series(yn, 8, SSM_FREQ_DAY);
    assert_int_not_equal(ssm_model_fit(m, &s, &err), 0);
    double ymiss[14] = {10, 12, NAN, 11, 14, NAN, 13, 15, 14, 16, 15, NAN, 17, 16};
    s = series(ymiss, 14, SSM_FREQ_DAY);
    assert_int_equal(ssm_model_fit(m, &s, &err), 0);
    ssm_fit_info info;
    ssm_model_info(m, &info);
    assert_int_equal(info.nobs, 11);
    for (size_t i = 0; i < info.nparams; i++)
        assert_true(isfinite(info.params[i].value) && info.params[i].value >= 0);
    double upd[2] = {1, INFINITY};
    assert_int_equal(ssm_model_update(m, upd, 2, &err), SSM_EINVAL);
    double nanupd[3] = {NAN, NAN, 18};
    assert_int_equal(ssm_model_update(m, nanupd, 3, &err), 0);
    double mean[4], sd[4];
    kt_forecast(m, 4, mean, sd);
    for (int i = 0; i < 4; i++)
        assert_true(isfinite(mean[i]) && sd[i] > 0);
    ssm_model_free(m);

    /* bsm needs a season: yearly data has none */
    m = ssm_model_create("bsm", NULL, &err);
    double y20[20];
    for (int i = 0; i < 20; i++)
        y20[i] = i % 3;
    s = series(y20, 20, SSM_FREQ_YEAR);
    assert_int_equal(ssm_model_fit(m, &s, &err), SSM_EINVAL);
    ssm_model_free(m);
    /* bad specs */
    assert_null(ssm_model_create("bsm(season=1)", NULL, &err));
    assert_null(ssm_model_create("local_level(x=1)", NULL, &err));
    assert_null(ssm_model_create("structural(level=bogus)", NULL, &err));
    assert_null(ssm_model_create("structural(level=no,trend=stochastic)", NULL, &err));
    assert_null(ssm_model_create("structural(seasonal=12,harmonics=7)", NULL, &err));
}

static void test_structural_specs(void **state)
{
    (void)state;
    size_t n;
    double *a = kt_load_series("AirPassengers.csv", 1, &n);
    ssm_model *m =
        kt_fitted("structural(level=lltrend,seasonal=12,harmonics=6)", a, n, SSM_FREQ_MONTH);
    ssm_fit_info info;
    ssm_model_info(m, &info);
    assert_int_equal(info.nparams, 4);
    assert_string_equal(info.params[3].name, "sigma2.freq_seasonal_12(6)");
    assert_true(isfinite(info.loglik));
    ssm_model_free(m);
    m = kt_fitted("structural(level=lltrend,seasonal=season)", a, n, SSM_FREQ_MONTH);
    ssm_model_info(m, &info);
    /* same model as the BSM: the same optimum */
    ssm_model *b = kt_fitted("bsm", a, n, SSM_FREQ_MONTH);
    ssm_fit_info ib;
    ssm_model_info(b, &ib);
    assert_true(fabs(info.loglik - ib.loglik) < 1e-4);
    assert_true(ib.loglik >= 217.420373 - 1e-6);
    ssm_model_free(b);
    ssm_model_free(m);
    free(a);

    double *y = kt_load_series("Nile.csv", 0, &n);
    m = kt_fitted("structural(cycle=yes)", y, n, SSM_FREQ_YEAR);
    ssm_model_info(m, &info);
    assert_int_equal(info.nparams, 5);
    assert_string_equal(info.params[4].name, "damping.cycle");
    for (size_t i = 0; i < info.nparams; i++)
        assert_true(isfinite(info.params[i].value));
    assert_true(info.params[3].value > 0 && info.params[3].value < M_PI);
    assert_true(info.params[4].value >= 0 && info.params[4].value <= 1);
    ssm_model_free(m);
    /* odd but legal combinations: fit or fail cleanly, never crash or return NaN */
    const char *odd[] = {"structural(level=fixed)", "structural(level=no,irregular=yes)",
                         "structural(level=fixed,irregular=no)", "structural(level=rwalk)",
                         "structural(level=strend,cycle=yes)", "structural(level=no,seasonal=4)",
                         "structural(level=fixed,trend=fixed)", "structural(seasonal=4,harmonics=2)"};
    for (size_t k = 0; k < sizeof odd / sizeof odd[0]; k++) {
        ssm_error err = {0};
        ssm_model *o = ssm_model_create(odd[k], NULL, &err);
        assert_non_null(o);
        ssm_series s = series(y, n, SSM_FREQ_YEAR);
        int rc = ssm_model_fit(o, &s, &err);
        if (rc == 0) {
            ssm_model_info(o, &info);
            assert_true(isfinite(info.loglik));
            for (size_t i = 0; i < info.nparams; i++)
                assert_true(isfinite(info.params[i].value));
            double fm[3], fs[3];
            kt_forecast(o, 3, fm, fs);
        } else {
            assert_true(strlen(err.message) > 0);
        }
        ssm_model_free(o);
    }
    m = kt_fitted("smooth_trend", y, n, SSM_FREQ_YEAR);
    ssm_model_info(m, &info);
    assert_int_equal(info.nparams, 2);
    assert_string_equal(info.params[1].name, "sigma2.trend");
    ssm_model_free(m);
    free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nile_info),
        cmocka_unit_test(test_update_equals_refilter),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_structural_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
