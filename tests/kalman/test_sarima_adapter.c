/*
 * tests/kalman/test_sarima_adapter.c — the sarima, ets and kalman_auto kinds through the
 * model interface (models/model.h): spec parsing and errors, fit (the figures must be the
 * kalman/ layer's: airline loglik 244.6965, AICc -483.204 as R and SARIMAX count it),
 * forecasts with growing variance,
 * save/load round trips that forecast identically, and an incremental update.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kalman.h"
#include "kalman_test_util.h"
#include "model.h"

static void test_sarima_kind(void **state)
{
    (void)state;
    size_t n;
    double *y = kt_load_series("AirPassengers.csv", 1, &n);
    ssm_model *m = kt_fitted("sarima(0,1,1)(0,1,1)[12]", y, n, SSM_FREQ_MONTH);
    assert_string_equal(m->spec, "sarima(0,1,1)(0,1,1)[12]");
    ssm_fit_info info;
    assert_int_equal(ssm_model_info(m, &info), 0);
    assert_true(fabs(info.loglik - 244.6965) < 1e-3);
    assert_true(fabs(info.aicc - -483.204) < 1e-2);
    assert_int_equal(info.nparams, 3);
    assert_string_equal(info.params[0].name, "ma.L1");
    assert_string_equal(info.params[1].name, "ma.S.L12");
    assert_string_equal(info.params[2].name, "sigma2");
    assert_true(fabs(info.params[0].value - -0.4018) < 1e-4);

    /* the season comes from the monthly grid when the spec leaves it out */
    ssm_model *m2 = kt_fitted("sarima(0,1,1)(0,1,1)", y, n, SSM_FREQ_MONTH);
    double a[24], sa[24], b[24], sb[24];
    kt_forecast(m, 24, a, sa);
    kt_forecast(m2, 24, b, sb);
    for (int h = 0; h < 24; h++) {
        assert_true(fabs(a[h] - b[h]) < 1e-9);
        assert_true(sa[h] > 0 && (h == 0 || sa[h] >= sa[h - 1]));
    }

    /* save / load: identical forecasts */
    ssm_buffer buf = {0};
    ssm_error err = {0};
    assert_int_equal(ssm_model_save(m, &buf, &err), 0);
    ssm_model *m3 = ssm_model_create("sarima(0,1,1)(0,1,1)[12]", NULL, &err);
    int rc = ssm_model_load(m3, buf.data, buf.len, &err);
    if (rc)
        print_error("load: %s (%s)\n", err.message, err.detail);
    assert_int_equal(rc, 0);
    kt_forecast(m3, 24, b, sb);
    for (int h = 0; h < 24; h++) {
        assert_true(fabs(a[h] - b[h]) < 1e-12);
        assert_true(fabs(sa[h] - sb[h]) < 1e-12);
    }
    ssm_buffer_free(&buf);

    /* fit on n - 12, update over the last 12: the state moves to the end of the sample,
     * so the one-step forecast changes and lands near the full fit's */
    ssm_model *m4 = kt_fitted("sarima(0,1,1)(0,1,1)[12]", y, n - 12, SSM_FREQ_MONTH);
    double c[24], sc[24];
    kt_forecast(m4, 1, c, sc);
    assert_int_equal(ssm_model_update(m4, y + n - 12, 12, &err), 0);
    assert_int_equal(m4->nseen, n);
    double d[24], sd[24];
    kt_forecast(m4, 1, d, sd);
    assert_true(fabs(d[0] - c[0]) > 1e-6);
    assert_true(fabs(d[0] - a[0]) < 0.02);
    ssm_model_free(m4);

    ssm_model_free(m);
    ssm_model_free(m2);
    ssm_model_free(m3);
    free(y);
}

static void test_ets_kind(void **state)
{
    (void)state;
    size_t n;
    double *y = kt_load_series("AirPassengers.csv", 0, &n);
    ssm_model *m = kt_fitted("ets(A,A,A)", y, n, SSM_FREQ_MONTH);
    assert_string_equal(m->spec, "ets(A,A,A)");
    ssm_fit_info info;
    assert_int_equal(ssm_model_info(m, &info), 0);
    /* at least R's (-612.44) and statsmodels' admissible optimum */
    assert_true(info.loglik > -566.0);
    assert_string_equal(info.params[0].name, "smoothing_level");
    double a[12], sa[12];
    kt_forecast(m, 12, a, sa);
    for (int h = 0; h < 12; h++)
        assert_true(isfinite(a[h]) && sa[h] > 0);
    ssm_model_free(m);

    ssm_model *n1 = kt_fitted("ets(A,Ad,N)", y, n, SSM_FREQ_MONTH);
    ssm_model_free(n1);
    free(y);
}

static void test_auto_kind(void **state)
{
    (void)state;
    size_t n;
    double *y = kt_load_series("Nile.csv", 0, &n);
    ssm_model *m = kt_fitted("kalman_auto", y, n, SSM_FREQ_YEAR);
    ssm_fit_info info;
    assert_int_equal(ssm_model_info(m, &info), 0);
    assert_true(info.chosen[0] != 0);
    assert_true(isfinite(info.loglik));
    double a[5], sa[5], b[5], sb[5];
    kt_forecast(m, 5, a, sa);
    ssm_buffer buf = {0};
    ssm_error err = {0};
    assert_int_equal(ssm_model_save(m, &buf, &err), 0);
    ssm_model *m2 = ssm_model_create("kalman_auto", NULL, &err);
    assert_int_equal(ssm_model_load(m2, buf.data, buf.len, &err), 0);
    kt_forecast(m2, 5, b, sb);
    for (int h = 0; h < 5; h++)
        assert_true(fabs(a[h] - b[h]) < 1e-9 && fabs(sa[h] - sb[h]) < 1e-9);
    ssm_buffer_free(&buf);
    ssm_model_free(m);
    ssm_model_free(m2);
    free(y);
}

static void test_bad_specs(void **state)
{
    (void)state;
    ssm_error err = {0};
    const char *bad[] = {"sarima", "sarima(1,1)", "sarima(1,1,1)+x", "sarima(1,2,1)+drift",
                         "ets(M,A,A)", "ets(A,M,N)", "ets", "kalman_auto(x=1)"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ssm_model *m = ssm_model_create(bad[i], NULL, &err);
        if (m)
            print_error("spec \"%s\" was accepted\n", bad[i]);
        assert_null(m);
        assert_int_equal(err.code, SSM_EINVAL);
    }
    /* a seasonal part without a season on a grid that has none */
    size_t n;
    double *y = kt_load_series("Nile.csv", 0, &n);
    ssm_model *m = ssm_model_create("ets(A,N,A)", NULL, &err);
    assert_non_null(m);
    ssm_series s = {"nile", {SSM_FREQ_YEAR, 1}, 0, n, y};
    assert_int_equal(ssm_model_fit(m, &s, &err), SSM_EINVAL);
    ssm_model_free(m);
    free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sarima_kind),
        cmocka_unit_test(test_ets_kind),
        cmocka_unit_test(test_auto_kind),
        cmocka_unit_test(test_bad_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
