/*
 * tests/models/test_baselines.c — naive, snaive and drift against forecasts and interval
 * widths worked out by hand from FPP section 5.5 / forecast::lagwalk (the arithmetic is in
 * the comments), plus update, save/load, missing values and bad input. The comparison
 * with R itself over real data is in test_backtest_reference.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "model.h"
#include "test_util.h"

#define TOL 1e-12
#define Z975 1.959963984540054 /* qnorm(0.975) */

static const double levels[] = {0.025, 0.5, 0.975};

static void forecast(const ssm_model *m, size_t H, ssm_forecast *f) {
    ssm_error err;
    assert_int_equal(ssm_forecast_init(f, H, levels, 3, &err), SSM_OK);
    assert_int_equal(ssm_model_forecast(m, f, &err), SSM_OK);
}

static const ssm_freq yearly = {SSM_FREQ_YEAR, 1};

static void test_naive(void **state) {
    (void)state;
    /* y = 1 3 2 5 4: differences 2 -1 3 -1, sigma^2 = (4+1+9+1)/4 = 3.75 */
    double v[] = {1, 3, 2, 5, 4};
    ssm_model *m = fit_model("naive", v, 5, yearly);
    ssm_forecast f;
    forecast(m, 3, &f);
    for (size_t h = 1; h <= 3; h++) {
        assert_double_equal(f.mean[h - 1], 4.0, TOL);
        assert_double_equal(f.sd[h - 1], sqrt(3.75 * (double)h), TOL);
        assert_double_equal(f.q[(h - 1) * 3 + 0], 4.0 - Z975 * sqrt(3.75 * (double)h), 1e-12);
        assert_double_equal(f.q[(h - 1) * 3 + 1], 4.0, TOL);
        assert_double_equal(f.q[(h - 1) * 3 + 2], 4.0 + Z975 * sqrt(3.75 * (double)h), 1e-12);
    }
    ssm_fit_info info;
    assert_int_equal(ssm_model_info(m, &info), SSM_OK);
    assert_int_equal(info.nparams, 1);
    assert_string_equal(info.params[0].name, "sigma2");
    assert_double_equal(info.params[0].value, 3.75, TOL);
    assert_string_equal(info.chosen, "naive");
    ssm_forecast_free(&f);
    ssm_model_free(m);
}

static void test_snaive(void **state) {
    (void)state;
    /* season 2, y = 1 3 2 5 4 6: lag-2 differences 1 2 2 1, sigma^2 = 10/4 = 2.5.
     * Steps 1..4 repeat the last season (4, 6) with k = 1, 1, 2, 2 seasons ahead. */
    double v[] = {1, 3, 2, 5, 4, 6};
    ssm_model *m = fit_model("snaive(season=2)", v, 6, yearly);
    ssm_forecast f;
    forecast(m, 4, &f);
    double mean[] = {4, 6, 4, 6}, k[] = {1, 1, 2, 2};
    for (size_t h = 0; h < 4; h++) {
        assert_double_equal(f.mean[h], mean[h], TOL);
        assert_double_equal(f.sd[h], sqrt(2.5 * k[h]), TOL);
    }
    ssm_forecast_free(&f);
    ssm_model_free(m);

    /* the season from the opts, then from the grid: quarterly data -> 4 */
    double q[] = {1, 2, 3, 4, 2, 3, 4, 5};
    m = fit_model("snaive", q, 8, (ssm_freq){SSM_FREQ_QUARTER, 1});
    forecast(m, 5, &f);
    double qm[] = {2, 3, 4, 5, 2};
    for (size_t h = 0; h < 5; h++) assert_double_equal(f.mean[h], qm[h], TOL);
    /* lag-4 differences all 1: sigma^2 = 1; step 5 is two seasons ahead */
    assert_double_equal(f.sd[0], 1.0, TOL);
    assert_double_equal(f.sd[4], sqrt(2.0), TOL);
    ssm_forecast_free(&f);
    ssm_model_free(m);
}

static void test_drift(void **state) {
    (void)state;
    /* y = 1 3 2 5 4: b = (4-1)/4 = 0.75; residuals 1.25 -1.75 2.25 -1.75, sum of squares
     * 12.75; sigma^2 = 12.75/3 = 4.25; se(b)^2 = 4.25/4.
     * mean_h = 4 + 0.75 h, sd_h = sqrt(4.25 h + h^2 4.25/4) */
    double v[] = {1, 3, 2, 5, 4};
    ssm_model *m = fit_model("drift", v, 5, yearly);
    ssm_forecast f;
    forecast(m, 3, &f);
    for (size_t h = 1; h <= 3; h++) {
        double hd = (double)h;
        assert_double_equal(f.mean[h - 1], 4.0 + 0.75 * hd, TOL);
        assert_double_equal(f.sd[h - 1], sqrt(4.25 * hd + hd * hd * 4.25 / 4.0), TOL);
    }
    ssm_fit_info info;
    ssm_model_info(m, &info);
    assert_int_equal(info.nparams, 2);
    assert_double_equal(info.params[0].value, 0.75, TOL);
    ssm_forecast_free(&f);
    ssm_model_free(m);
}

static void test_missing_values(void **state) {
    (void)state;
    /* y = 1 3 NaN: only the difference 3-1 exists (sigma^2 = 4); the forecast carries the
     * last observed value 3, as lagwalk fills a missing value from its slot */
    double v[] = {1, 3, NAN};
    ssm_model *m = fit_model("naive", v, 3, yearly);
    ssm_forecast f;
    forecast(m, 1, &f);
    assert_double_equal(f.mean[0], 3.0, TOL);
    assert_double_equal(f.sd[0], 2.0, TOL);
    ssm_forecast_free(&f);
    ssm_model_free(m);
}

static void test_update_and_save_load(void **state) {
    (void)state;
    double v[] = {1, 3, 2, 5, 4, 6};
    ssm_model *m = fit_model("snaive(season=2)", v, 6, yearly);
    ssm_error err;
    /* update keeps sigma, moves the state: new season 7, 8 */
    double nv[] = {7, 8};
    assert_int_equal(ssm_model_update(m, nv, 2, &err), SSM_OK);
    ssm_forecast f, g;
    forecast(m, 3, &f);
    assert_double_equal(f.mean[0], 7.0, TOL);
    assert_double_equal(f.mean[1], 8.0, TOL);
    assert_double_equal(f.sd[0], sqrt(2.5), TOL);

    ssm_buffer buf = {0};
    assert_int_equal(ssm_model_save(m, &buf, &err), SSM_OK);
    ssm_model_opts opts;
    memset(&opts, 0, sizeof opts);
    ssm_model *r = ssm_model_create("snaive(season=2)", &opts, &err);
    assert_non_null(r);
    assert_int_equal(ssm_model_load(r, buf.data, buf.len, &err), SSM_OK);
    assert_int_equal(r->nseen, 8);
    forecast(r, 3, &g);
    for (size_t i = 0; i < 3 * 3; i++) assert_double_equal(g.q[i], f.q[i], 0.0);
    /* truncated blob: a format error, not a crash */
    ssm_model *t = ssm_model_create("snaive(season=2)", &opts, &err);
    assert_int_equal(ssm_model_load(t, buf.data, buf.len - 3, &err), SSM_EFORMAT);
    ssm_model_free(t);
    ssm_forecast_free(&f);
    ssm_forecast_free(&g);
    ssm_buffer_free(&buf);
    ssm_model_free(r);
    ssm_model_free(m);
}

static void test_bad_input(void **state) {
    (void)state;
    ssm_error err;
    ssm_model_opts opts;
    memset(&opts, 0, sizeof opts);
    assert_null(ssm_model_create("naive(season=3)", &opts, &err));
    assert_int_equal(err.code, SSM_EINVAL);
    assert_null(ssm_model_create("snaive(season=0)", &opts, &err));
    assert_null(ssm_model_create("snaive(foo=1)", &opts, &err));

    /* one point: no difference to estimate sigma from */
    ssm_model *m = ssm_model_create("naive", &opts, &err);
    double one[] = {5};
    ssm_series y = {"short", yearly, 0, 1, one};
    assert_int_equal(ssm_model_fit(m, &y, &err), SSM_ETOOSHORT);
    assert_non_null(strstr(err.message, "short"));
    ssm_forecast f;
    assert_int_equal(ssm_forecast_init(&f, 1, levels, 3, &err), SSM_OK);
    assert_int_equal(ssm_model_forecast(m, &f, &err), SSM_EINVAL); /* not fitted */
    ssm_forecast_free(&f);
    ssm_model_free(m);

    /* drift needs two differences; snaive needs more than a season */
    m = ssm_model_create("drift", &opts, &err);
    double two[] = {1, 2};
    y.n = 2;
    y.values = two;
    assert_int_equal(ssm_model_fit(m, &y, &err), SSM_ETOOSHORT);
    ssm_model_free(m);
    m = ssm_model_create("snaive(season=4)", &opts, &err);
    double four[] = {1, 2, 3, 4};
    y.n = 4;
    y.values = four;
    assert_int_equal(ssm_model_fit(m, &y, &err), SSM_ETOOSHORT);
    ssm_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_naive),
        cmocka_unit_test(test_snaive),
        cmocka_unit_test(test_drift),
        cmocka_unit_test(test_missing_values),
        cmocka_unit_test(test_update_and_save_load),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
