/*
 * tests/models/test_model_auto.c — the `auto` model: it picks the candidate with the
 * lowest backtest MASE (drift on a trend, snaive on a seasonal series), breaks exact ties
 * toward fewer parameters and then the earlier candidate, reports scores and the choice
 * through info(), keeps the choice across save/load and update, and rejects bad specs.
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

static const ssm_freq yearly = {SSM_FREQ_YEAR, 1};
static const double levels[] = {0.1, 0.5, 0.9};

static const char *chosen(const ssm_model *m, ssm_fit_info *info) {
    assert_int_equal(ssm_model_info(m, info), SSM_OK);
    return info->chosen;
}

static void test_picks_drift_on_a_trend(void **state) {
    (void)state;
    double v[60];
    for (int t = 0; t < 60; t++) v[t] = 3.0 * t + ((t * 7) % 5) * 0.1;
    ssm_model *m = fit_model("auto(naive,drift)", v, 60, yearly);
    ssm_fit_info info;
    assert_string_equal(chosen(m, &info), "drift");
    /* scores first: mase:naive, mase:drift, then drift's own parameters */
    assert_string_equal(info.params[0].name, "mase:naive");
    assert_string_equal(info.params[1].name, "mase:drift");
    assert_true(info.params[1].value < info.params[0].value);
    assert_string_equal(info.params[2].name, "drift");
    ssm_model_free(m);
}

static void test_picks_snaive_on_a_season(void **state) {
    (void)state;
    double v[48];
    double pattern[] = {10, 30, 20, 5};
    for (int t = 0; t < 48; t++) v[t] = pattern[t % 4] + 0.01 * ((t * 13) % 7);
    /* quarterly: the season 4 comes from the grid */
    ssm_model *m = fit_model("auto(naive, drift, snaive)", v, 48, (ssm_freq){SSM_FREQ_QUARTER, 1});
    ssm_fit_info info;
    assert_string_equal(chosen(m, &info), "snaive");
    ssm_model_free(m);
}

static void test_ties(void **state) {
    (void)state;
    /* y_t = t % 2. Inner backtest h = 2, origins = 2, refit once: the first training window
     * is [0, 9) (13 - 2 - 2), whose first and last values are 0, so drift's b = 0 and its
     * forecasts equal naive's: an exact tie, won by naive (1 parameter against 2) although
     * drift comes first. Between naive and snaive on a series with season 1 (both lag 1,
     * 1 parameter) the earlier one wins. */
    double v[13];
    for (int t = 0; t < 13; t++) v[t] = t % 2;
    ssm_model *m = fit_model("auto(drift,naive,h=2,origins=2)", v, 13, yearly);
    ssm_fit_info info;
    assert_string_equal(chosen(m, &info), "naive");
    assert_double_equal(info.params[0].value, info.params[1].value, 0.0);
    ssm_model_free(m);
    m = fit_model("auto(snaive,naive,h=2,origins=2)", v, 13, yearly);
    assert_string_equal(chosen(m, &info), "snaive");
    ssm_model_free(m);
}

static void test_save_load_update(void **state) {
    (void)state;
    double v[60];
    for (int t = 0; t < 60; t++) v[t] = 3.0 * t + ((t * 7) % 5) * 0.1;
    ssm_model *m = fit_model("auto(naive,drift)", v, 60, yearly);
    ssm_error err;
    double nv[] = {181, 184};
    assert_int_equal(ssm_model_update(m, nv, 2, &err), SSM_OK);
    ssm_buffer buf = {0};
    assert_int_equal(ssm_model_save(m, &buf, &err), SSM_OK);
    ssm_model_opts opts;
    memset(&opts, 0, sizeof opts);
    ssm_model *r = ssm_model_create("auto(naive,drift)", &opts, &err);
    assert_int_equal(ssm_model_load(r, buf.data, buf.len, &err), SSM_OK);
    ssm_fit_info a, b;
    assert_string_equal(chosen(r, &b), "drift");
    chosen(m, &a);
    assert_double_equal(b.params[0].value, a.params[0].value, 0.0);
    ssm_forecast f, g;
    assert_int_equal(ssm_forecast_init(&f, 4, levels, 3, &err), SSM_OK);
    assert_int_equal(ssm_forecast_init(&g, 4, levels, 3, &err), SSM_OK);
    assert_int_equal(ssm_model_forecast(m, &f, &err), SSM_OK);
    assert_int_equal(ssm_model_forecast(r, &g, &err), SSM_OK);
    for (size_t i = 0; i < 12; i++) assert_double_equal(g.q[i], f.q[i], 0.0);
    assert_true(f.mean[0] > 184.0); /* drift goes on from the updated last value */
    /* every truncation is a clean format error */
    for (size_t len = 0; len < buf.len; len += 7) {
        ssm_model *t = ssm_model_create("auto(naive,drift)", &opts, &err);
        assert_int_not_equal(ssm_model_load(t, buf.data, len, &err), SSM_OK);
        ssm_model_free(t);
    }
    ssm_forecast_free(&f);
    ssm_forecast_free(&g);
    ssm_buffer_free(&buf);
    ssm_model_free(r);
    ssm_model_free(m);
}

static void test_default_set_and_short_series(void **state) {
    (void)state;
    /* the default set always includes the baselines; on 8 points no inner backtest fits
     * a season-12 model, and a choice is still made */
    double v[40];
    for (int t = 0; t < 40; t++) v[t] = sin(t * 0.5) * 10 + t;
    ssm_model *m = fit_model("auto", v, 40, yearly);
    ssm_fit_info info;
    chosen(m, &info);
    assert_true(info.nparams >= 2);
    assert_string_equal(info.params[0].name, "mase:naive");
    ssm_model_free(m);
    double s[] = {1, 2, 4, 3};
    m = fit_model("auto(naive,drift)", s, 4, yearly);
    chosen(m, &info);
    assert_true(strcmp(info.chosen, "naive") == 0 || strcmp(info.chosen, "drift") == 0);
    ssm_model_free(m);
}

static void test_bad_specs(void **state) {
    (void)state;
    ssm_error err;
    ssm_model_opts opts;
    memset(&opts, 0, sizeof opts);
    assert_null(ssm_model_create("auto(nosuch)", &opts, &err));
    assert_non_null(strstr(err.message, "nosuch"));
    assert_null(ssm_model_create("auto(auto)", &opts, &err));
    assert_null(ssm_model_create("auto(naive,h=0)", &opts, &err));
    assert_null(ssm_model_create("auto(naive,colour=red)", &opts, &err));
    assert_null(ssm_model_create("auto(naive,(drift)", &opts, &err));
    assert_null(ssm_model_create("auto(naive,,drift)", &opts, &err));
    ssm_model *m = ssm_model_create("auto(snaive(season=2), naive)", &opts, &err);
    assert_non_null(m);
    ssm_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_picks_drift_on_a_trend),
        cmocka_unit_test(test_picks_snaive_on_a_season),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_save_load_update),
        cmocka_unit_test(test_default_set_and_short_series),
        cmocka_unit_test(test_bad_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
