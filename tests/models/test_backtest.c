/*
 * tests/models/test_backtest.c — the rolling-origin engine: origin arithmetic (counted
 * back from the end, expanding and sliding windows), scores on series whose errors are
 * known in closed form, refit-once against refit-every, failures at some origins, a
 * single origin, MASE with a constant training window, and the summaries across series
 * (means, medians, ranks).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "backtest.h"
#include "test_util.h"

#define TOL 1e-12

static const ssm_freq yearly = {SSM_FREQ_YEAR, 1};

static ssm_backtest_opts opts(size_t H, size_t N, size_t K) {
    ssm_backtest_opts o;
    memset(&o, 0, sizeof o);
    o.horizon = H;
    o.origins = N;
    o.step = K;
    return o;
}

static void test_origins(void **state) {
    (void)state;
    size_t ends[4];
    ssm_error err;
    /* n = 20, H = 3, N = 4, K = 2: 20-3-6 = 11, 13, 15, 17 (17 + 3 = 20: ends at the end) */
    ssm_backtest_opts o = opts(3, 4, 2);
    assert_int_equal(ssm_backtest_origins(20, &o, ends, &err), SSM_OK);
    size_t want[] = {11, 13, 15, 17};
    for (int i = 0; i < 4; i++) assert_int_equal(ends[i], want[i]);
    /* step 0 means the horizon: 20-3-9 = 8, 11, 14, 17 */
    o = opts(3, 4, 0);
    assert_int_equal(ssm_backtest_origins(20, &o, ends, &err), SSM_OK);
    assert_int_equal(ends[0], 8);
    assert_int_equal(ends[3], 17);
    /* too many origins: the hint says how many fit. 10 points, H 3, K 3, min_train 2:
     * (10 - 3 - 2) / 3 + 1 = 2 */
    o = opts(3, 4, 3);
    assert_int_equal(ssm_backtest_origins(10, &o, ends, &err), SSM_ETOOSHORT);
    assert_non_null(strstr(err.hint, "at most 2 origins"));
    /* exactly enough: 2 training points before 3 origins of 3 + ... n = 2 + 3 + 2*3 = 11 */
    o = opts(3, 3, 3);
    assert_int_equal(ssm_backtest_origins(11, &o, ends, &err), SSM_OK);
    assert_int_equal(ends[0], 2);
    assert_int_equal(ssm_backtest_origins(10, &o, ends, &err), SSM_ETOOSHORT);
}

static void test_naive_on_a_line(void **state) {
    (void)state;
    /* y_t = t: the naive forecast from origin end is end-1 at every step, the actual at
     * step h is end-1+h, so e = h exactly; the in-sample naive MAE is 1. With H = 3:
     * MAE = 2, RMSE = sqrt(14/3), MASE = 2, and step h has MAE h. */
    double v[20];
    for (int t = 0; t < 20; t++) v[t] = t;
    ssm_series y = {"line", yearly, 0, 20, v};
    ssm_backtest_opts o = opts(3, 2, 0);
    ssm_backtest bt;
    ssm_error err;
    assert_int_equal(ssm_backtest_run(&y, "naive", &o, &bt, &err), SSM_OK);
    assert_int_equal(bt.norigins, 2);
    assert_int_equal(bt.train_end[0], 14);
    assert_int_equal(bt.train_end[1], 17);
    assert_int_equal(bt.nfailed, 0);
    assert_double_equal(bt.overall.mae, 2.0, TOL);
    assert_double_equal(bt.overall.rmse, sqrt(14.0 / 3), TOL);
    assert_double_equal(bt.overall.mase, 2.0, TOL);
    assert_int_equal(bt.overall.n, 6);
    for (size_t h = 0; h < 3; h++) assert_double_equal(bt.by_step[h].mae, (double)(h + 1), TOL);
    /* every difference of a line is 1, so sigma^2 = mean(1^2) = 1 (naive does not remove
     * a mean): the 97.5% quantile of step 3 from origin 0 is 13 + z sqrt(3) */
    assert_double_equal(bt.q[(0 * 3 + 2) * 5 + 4], 13.0 + 1.959963984540054 * sqrt(3.0), 1e-12);
    assert_int_equal(bt.overall.nint, 2);
    assert_double_equal(bt.overall.nominal[0], 0.95, TOL);
    ssm_backtest_free(&bt);

    /* drift is exact on a line: b = 1, residuals 0 */
    assert_int_equal(ssm_backtest_run(&y, "drift", &o, &bt, &err), SSM_OK);
    assert_double_equal(bt.overall.mae, 0.0, TOL);
    assert_double_equal(bt.overall.mase, 0.0, TOL);
    assert_double_equal(bt.overall.coverage[0], 1.0, TOL);
    ssm_backtest_free(&bt);
}

static void test_refit_once_and_window(void **state) {
    (void)state;
    /* a random-walk-like series; naive's point forecast does not depend on refitting, its
     * sigma does: with refit once the interval widths are those of the first fit */
    double v[30];
    unsigned s = 7;
    v[0] = 10;
    for (int t = 1; t < 30; t++) {
        s = s * 1103515245u + 12345u;
        v[t] = v[t - 1] + (double)((s >> 16) % 200) / 50.0 - 2.0;
    }
    ssm_series y = {"walk", yearly, 0, 30, v};
    ssm_backtest_opts o = opts(2, 4, 0);
    ssm_backtest every, once, win;
    ssm_error err;
    assert_int_equal(ssm_backtest_run(&y, "naive", &o, &every, &err), SSM_OK);
    o.refit_once = 1;
    assert_int_equal(ssm_backtest_run(&y, "naive", &o, &once, &err), SSM_OK);
    for (size_t i = 0; i < 8; i++) assert_double_equal(once.mean[i], every.mean[i], 0.0);
    assert_double_equal(once.overall.mae, every.overall.mae, 0.0);
    /* sigma from the first window [0, 22) only, applied at every origin */
    double ss = 0;
    for (int t = 1; t < 22; t++) ss += (v[t] - v[t - 1]) * (v[t] - v[t - 1]);
    double sd1 = sqrt(ss / 21);
    double z = 1.959963984540054;
    for (size_t i = 0; i < 4; i++)
        assert_double_equal(once.q[(i * 2) * 5 + 4] - once.mean[i * 2], z * sd1, 1e-12);
    /* sliding window of 5: training [end-5, end), the MASE scale from that window */
    o.refit_once = 0;
    o.window = 5;
    assert_int_equal(ssm_backtest_run(&y, "naive", &o, &win, &err), SSM_OK);
    assert_int_equal(win.train_start[0], 17);
    assert_int_equal(win.train_end[0], 22);
    double sc = 0;
    for (int t = 18; t < 22; t++) sc += fabs(v[t] - v[t - 1]);
    assert_double_equal(win.scale[0], sc / 4, TOL);
    ssm_backtest_free(&every);
    ssm_backtest_free(&once);
    ssm_backtest_free(&win);
}

static void test_single_origin_and_constant_window(void **state) {
    (void)state;
    /* 5 5 5 5 5 | 6 7: one origin, horizon 2; the training window is constant, so MASE is
     * NaN (documented rule) while MAE etc. are defined: naive 5, errors 1, 2 */
    double v[] = {5, 5, 5, 5, 5, 6, 7};
    ssm_series y = {"flat", yearly, 0, 7, v};
    ssm_backtest_opts o = opts(2, 1, 0);
    ssm_backtest bt;
    ssm_error err;
    assert_int_equal(ssm_backtest_run(&y, "naive", &o, &bt, &err), SSM_OK);
    assert_double_equal(bt.overall.mae, 1.5, TOL);
    assert_double_equal(bt.scale[0], 0.0, 0.0);
    assert_true(isnan(bt.overall.mase));
    assert_double_equal(bt.overall.mape, 100.0 * (1.0 / 6 + 2.0 / 7) / 2, TOL);
    /* sigma is 0: the intervals collapse on 5 and cover nothing */
    assert_double_equal(bt.overall.coverage[0], 0.0, 0.0);
    ssm_backtest_free(&bt);
}

static void test_failures_and_bad_spec(void **state) {
    (void)state;
    /* snaive(season=12) needs more than 12 points: the first origin (10 points) fails,
     * the other four (13, 16, 19, 22 points) run; scores come from those */
    double v[25];
    for (int t = 0; t < 25; t++) v[t] = (double)(t % 12) + 0.1 * t;
    ssm_series y = {"seasonal", yearly, 0, 25, v};
    ssm_backtest_opts o = opts(3, 5, 0);
    ssm_backtest bt;
    ssm_error err;
    assert_int_equal(ssm_backtest_run(&y, "snaive(season=12)", &o, &bt, &err), SSM_OK);
    assert_int_equal(bt.train_end[0], 10);
    assert_int_equal(bt.nfailed, 1);
    assert_int_equal(bt.first_error.code, SSM_ETOOSHORT);
    assert_true(isnan(bt.mean[0]));
    assert_false(isnan(bt.mean[3]));
    /* the 4 scored origins: snaive errors are 0.1 * 12 = 1.2 at every point */
    assert_int_equal(bt.overall.n, 12);
    assert_double_equal(bt.overall.mae, 1.2, 1e-9);
    ssm_backtest_free(&bt);

    /* every origin failing is an error carrying the model's message */
    o = opts(3, 2, 0);
    double w[] = {1, 2, 3, 4, 5, 6, 7, 8};
    ssm_series s = {"short", yearly, 0, 8, w};
    assert_int_equal(ssm_backtest_run(&s, "snaive(season=12)", &o, &bt, &err), SSM_ETOOSHORT);
    ssm_backtest_free(&bt);
    assert_int_equal(ssm_backtest_run(&s, "nosuchmodel", &o, &bt, &err), SSM_EINVAL);
    assert_non_null(strstr(err.message, "nosuchmodel"));
    ssm_backtest_free(&bt);
    /* bad quantile levels */
    double bad[] = {0.5, 0.1};
    o.levels = bad;
    o.nq = 2;
    assert_int_equal(ssm_backtest_run(&s, "naive", &o, &bt, &err), SSM_EINVAL);
    ssm_backtest_free(&bt);
}

static void test_summarise(void **state) {
    (void)state;
    /* 3 series x 2 models with MASE set by hand: model 0: 1, 3, 2; model 1: 2, 1, NaN
     * (could not run on series 2). Means 2 and 1.5, medians 2 and 1.5.
     * Ranks per series: s0: 1, 2; s1: 2, 1; s2: 1 alone -> means 4/3 and 1.5 */
    ssm_backtest grid[6];
    memset(grid, 0, sizeof grid);
    double mase[6] = {1, 2, 3, 1, 2, NAN};
    for (int i = 0; i < 6; i++) {
        grid[i].norigins = isnan(mase[i]) ? 0 : 1;
        grid[i].horizon = 1;
        grid[i].overall.mase = mase[i];
        grid[i].overall.mae = 10 * mase[i];
        grid[i].overall.n = 1;
        grid[i].by_step = &grid[i].overall;
    }
    ssm_bt_summary sum[2];
    ssm_error err;
    assert_int_equal(ssm_backtest_summarise(grid, 3, 2, sum, &err), SSM_OK);
    assert_int_equal(sum[0].nseries, 3);
    assert_int_equal(sum[1].nseries, 2);
    assert_double_equal(sum[0].mean.mase, 2.0, TOL);
    assert_double_equal(sum[1].mean.mase, 1.5, TOL);
    assert_double_equal(sum[0].median.mase, 2.0, TOL);
    assert_double_equal(sum[1].median.mase, 1.5, TOL);
    assert_double_equal(sum[0].mean.mae, 20.0, TOL);
    assert_double_equal(sum[0].rank, 4.0 / 3, TOL);
    assert_double_equal(sum[1].rank, 1.5, TOL);
    assert_double_equal(sum[0].by_step_mean[0].mase, 2.0, TOL);
    ssm_bt_summary_free(&sum[0]);
    ssm_bt_summary_free(&sum[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origins),
        cmocka_unit_test(test_naive_on_a_line),
        cmocka_unit_test(test_refit_once_and_window),
        cmocka_unit_test(test_single_origin_and_constant_window),
        cmocka_unit_test(test_failures_and_bad_spec),
        cmocka_unit_test(test_summarise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
