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
#include "model.h"

#ifndef SSMD_TEST_DATA
#define SSMD_TEST_DATA "tests/data"
#endif

static double *load_series(const char *name, int take_log, size_t *n)
{
    char path[512], line[256];
    snprintf(path, sizeof path, "%s/%s", SSMD_TEST_DATA, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t cap = 512, len = 0;
    double *y = malloc(cap * sizeof(double));
    assert_non_null(fgets(line, sizeof line, f));
    while (fgets(line, sizeof line, f) && len < cap) {
        char *comma = strchr(line, ',');
        if (comma)
            y[len++] = take_log ? log(strtod(comma + 1, NULL)) : strtod(comma + 1, NULL);
    }
    fclose(f);
    *n = len;
    return y;
}

static ssm_model *fitted(const char *spec, double *y, size_t n, ssm_freq_unit unit)
{
    ssm_error err = {0};
    ssm_model *m = ssm_model_create(spec, NULL, &err);
    if (!m)
        print_error("create %s: %s\n", spec, err.message);
    assert_non_null(m);
    ssm_series s = {"test", {unit, 1}, 0, n, y};
    int rc = ssm_model_fit(m, &s, &err);
    if (rc)
        print_error("fit %s: %s (%s)\n", spec, err.message, err.detail);
    assert_int_equal(rc, 0);
    return m;
}

static void forecast(const ssm_model *m, size_t h, double *mean, double *sd)
{
    ssm_error err = {0};
    ssm_forecast f;
    double levels[3] = {0.1, 0.5, 0.9};
    assert_int_equal(ssm_forecast_init(&f, h, levels, 3, &err), 0);
    assert_int_equal(ssm_model_forecast(m, &f, &err), 0);
    memcpy(mean, f.mean, h * sizeof(double));
    memcpy(sd, f.sd, h * sizeof(double));
    ssm_forecast_free(&f);
}

static void test_sarima_kind(void **state)
{
    (void)state;
    size_t n;
    double *y = load_series("AirPassengers.csv", 1, &n);
    ssm_model *m = fitted("sarima(0,1,1)(0,1,1)[12]", y, n, SSM_FREQ_MONTH);
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
    ssm_model *m2 = fitted("sarima(0,1,1)(0,1,1)", y, n, SSM_FREQ_MONTH);
    double a[24], sa[24], b[24], sb[24];
    forecast(m, 24, a, sa);
    forecast(m2, 24, b, sb);
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
    forecast(m3, 24, b, sb);
    for (int h = 0; h < 24; h++) {
        assert_true(fabs(a[h] - b[h]) < 1e-12);
        assert_true(fabs(sa[h] - sb[h]) < 1e-12);
    }
    ssm_buffer_free(&buf);

    /* fit on n - 12, update over the last 12: the state moves to the end of the sample,
     * so the one-step forecast changes and lands near the full fit's */
    ssm_model *m4 = fitted("sarima(0,1,1)(0,1,1)[12]", y, n - 12, SSM_FREQ_MONTH);
    double c[24], sc[24];
    forecast(m4, 1, c, sc);
    assert_int_equal(ssm_model_update(m4, y + n - 12, 12, &err), 0);
    assert_int_equal(m4->nseen, n);
    double d[24], sd[24];
    forecast(m4, 1, d, sd);
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
    double *y = load_series("AirPassengers.csv", 0, &n);
    ssm_model *m = fitted("ets(A,A,A)", y, n, SSM_FREQ_MONTH);
    assert_string_equal(m->spec, "ets(A,A,A)");
    ssm_fit_info info;
    assert_int_equal(ssm_model_info(m, &info), 0);
    /* at least R's (-612.44) and statsmodels' admissible optimum */
    assert_true(info.loglik > -566.0);
    assert_string_equal(info.params[0].name, "smoothing_level");
    double a[12], sa[12];
    forecast(m, 12, a, sa);
    for (int h = 0; h < 12; h++)
        assert_true(isfinite(a[h]) && sa[h] > 0);
    ssm_model_free(m);

    ssm_model *n1 = fitted("ets(A,Ad,N)", y, n, SSM_FREQ_MONTH);
    ssm_model_free(n1);
    free(y);
}

static void test_auto_kind(void **state)
{
    (void)state;
    size_t n;
    double *y = load_series("Nile.csv", 0, &n);
    ssm_model *m = fitted("kalman_auto", y, n, SSM_FREQ_YEAR);
    ssm_fit_info info;
    assert_int_equal(ssm_model_info(m, &info), 0);
    assert_true(info.chosen[0] != 0);
    assert_true(isfinite(info.loglik));
    double a[5], sa[5], b[5], sb[5];
    forecast(m, 5, a, sa);
    ssm_buffer buf = {0};
    ssm_error err = {0};
    assert_int_equal(ssm_model_save(m, &buf, &err), 0);
    ssm_model *m2 = ssm_model_create("kalman_auto", NULL, &err);
    assert_int_equal(ssm_model_load(m2, buf.data, buf.len, &err), 0);
    forecast(m2, 5, b, sb);
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
    double *y = load_series("Nile.csv", 0, &n);
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
