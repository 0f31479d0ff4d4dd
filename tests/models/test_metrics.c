/*
 * tests/models/test_metrics.c — every metric of models/metrics.h against values computed
 * by hand (the arithmetic is in the comments), plus the documented edge-case rules:
 * zero actuals for MAPE, y == f == 0 for sMAPE, a constant training window for MASE,
 * missing values everywhere, and the NaN-skipping summaries and ranks.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "metrics.h"
#include "test_util.h"

#define TOL 1e-12

static void test_point_metrics(void **state) {
    (void)state;
    /* y = 1 2 3 4, f = 2 2 2 2: e = -1 0 1 2 */
    double y[] = {1, 2, 3, 4}, f[] = {2, 2, 2, 2};
    assert_double_equal(ssm_metric_mae(y, f, 4), 1.0, TOL);                /* (1+0+1+2)/4 */
    assert_double_equal(ssm_metric_rmse(y, f, 4), sqrt(1.5), TOL);         /* (1+0+1+4)/4 */
    /* |e/y| = 1, 0, 1/3, 1/2 */
    assert_double_equal(ssm_metric_mape(y, f, 4), 100.0 * (1 + 0 + 1.0 / 3 + 0.5) / 4, TOL);
    /* |e|/(|y|+|f|) = 1/3, 0, 1/5, 2/6 */
    assert_double_equal(ssm_metric_smape(y, f, 4), 200.0 * (1.0 / 3 + 0 + 0.2 + 2.0 / 6) / 4, TOL);
}

static void test_missing_pairs_are_skipped(void **state) {
    (void)state;
    double y[] = {1, NAN, 3, 4}, f[] = {2, 2, NAN, 2};
    /* only pairs 0 and 3 remain: e = -1, 2 */
    assert_double_equal(ssm_metric_mae(y, f, 4), 1.5, TOL);
    assert_double_equal(ssm_metric_rmse(y, f, 4), sqrt(2.5), TOL);
    double ny[] = {NAN, NAN}, nf[] = {1, 2};
    assert_true(isnan(ssm_metric_mae(ny, nf, 2)));
    assert_true(isnan(ssm_metric_rmse(ny, nf, 2)));
    assert_true(isnan(ssm_metric_smape(ny, nf, 2)));
    assert_true(isnan(ssm_metric_mae(y, f, 0)));
}

static void test_mape_zero_actuals(void **state) {
    (void)state;
    /* rule: a zero actual is skipped; y = 0 2, f = 1 1 -> only |1/2| -> 50 */
    double y[] = {0, 2}, f[] = {1, 1};
    assert_double_equal(ssm_metric_mape(y, f, 2), 50.0, TOL);
    /* every actual zero: NaN */
    double z[] = {0, 0};
    assert_true(isnan(ssm_metric_mape(z, f, 2)));
}

static void test_smape_both_zero(void **state) {
    (void)state;
    /* rule: y == f == 0 is a perfect forecast, counted as 0: (0 + 1/3) / 2 * 200 */
    double y[] = {0, 2}, f[] = {0, 1};
    assert_double_equal(ssm_metric_smape(y, f, 2), 200.0 * (1.0 / 3) / 2, TOL);
    /* y = 0, f = 5: |e|/(|y|+|f|) = 1 -> the maximum 200 */
    double y2[] = {0}, f2[] = {5};
    assert_double_equal(ssm_metric_smape(y2, f2, 1), 200.0, TOL);
}

static void test_mase_scale(void **state) {
    (void)state;
    double x[] = {1, 3, 2, 5};
    /* m = 1: |3-1|, |2-3|, |5-2| = 2, 1, 3 -> 2 */
    assert_double_equal(ssm_metric_mase_scale(x, 4, 1), 2.0, TOL);
    /* m = 2: |2-1|, |5-3| = 1, 2 -> 1.5 */
    assert_double_equal(ssm_metric_mase_scale(x, 4, 2), 1.5, TOL);
    /* m >= n falls back to m = 1; m = 0 means 1 */
    assert_double_equal(ssm_metric_mase_scale(x, 4, 4), 2.0, TOL);
    assert_double_equal(ssm_metric_mase_scale(x, 4, 0), 2.0, TOL);
    /* a missing value drops the pairs it is in: 1 3 NaN 5 with m = 1: only |3-1| */
    double xm[] = {1, 3, NAN, 5};
    assert_double_equal(ssm_metric_mase_scale(xm, 4, 1), 2.0, TOL);
    /* one point: no pair */
    assert_true(isnan(ssm_metric_mase_scale(x, 1, 1)));
}

static void test_mase_constant_window(void **state) {
    (void)state;
    /* rule: a constant training window has scale 0, and MASE is then NaN (skipped) */
    double c[] = {7, 7, 7, 7};
    double s = ssm_metric_mase_scale(c, 4, 1);
    assert_double_equal(s, 0.0, 0.0);
    double y[] = {8}, f[] = {7};
    assert_true(isnan(ssm_metric_mase(y, f, 1, s)));
    assert_true(isnan(ssm_metric_mase(y, f, 1, NAN)));
    /* otherwise MAE / scale: |8-7| / 2 */
    assert_double_equal(ssm_metric_mase(y, f, 1, 2.0), 0.5, TOL);
}

static void test_pinball(void **state) {
    (void)state;
    /* y = 10: q = 8 at tau 0.9 -> 0.9 * 2 = 1.8; q = 12 at tau 0.9 -> (0.9-1)(-2) = 0.2 */
    assert_double_equal(ssm_metric_pinball1(10, 8, 0.9), 1.8, TOL);
    assert_double_equal(ssm_metric_pinball1(10, 12, 0.9), 0.2, TOL);
    assert_double_equal(ssm_metric_pinball1(10, 10, 0.3), 0.0, TOL);
    /* two points x two levels {0.1, 0.9}:
     * y=10, q=(8,12): 0.1*2=0.2, 0.1*2=0.2 ; y=0, q=(1,3): 0.9*1=0.9, 0.1*3=0.3 -> 1.6/4 */
    double levels[] = {0.1, 0.9};
    double y[] = {10, 0};
    double q[] = {8, 12, 1, 3};
    assert_double_equal(ssm_metric_pinball(y, q, levels, 2, 2), 1.6 / 4, TOL);
    /* a missing actual drops its row */
    double ym[] = {10, NAN};
    assert_double_equal(ssm_metric_pinball(ym, q, levels, 2, 2), 0.4 / 2, TOL);
}

static void test_intervals_and_coverage(void **state) {
    (void)state;
    double levels[] = {0.025, 0.1, 0.5, 0.9, 0.975};
    ssm_interval iv[4];
    size_t k = ssm_metric_intervals(levels, 5, iv, 4);
    assert_int_equal(k, 2);
    assert_int_equal(iv[0].lo, 0);
    assert_int_equal(iv[0].hi, 4);
    assert_double_equal(iv[0].coverage, 0.95, TOL);
    assert_int_equal(iv[1].lo, 1);
    assert_int_equal(iv[1].hi, 3);
    assert_double_equal(iv[1].coverage, 0.80, TOL);
    double lonely[] = {0.1, 0.5};
    assert_int_equal(ssm_metric_intervals(lonely, 2, iv, 4), 0);

    /* y = 1, 5, 10 and intervals [0,2], [0,4], [9,11]: inside, outside, inside -> 2/3;
     * widths 2, 4, 2 -> 8/3. An actual on the edge counts as inside. */
    double lv[] = {0.1, 0.9};
    double y[] = {1, 5, 10, 11};
    double q[] = {0, 2, 0, 4, 9, 11, 11, 12};
    ssm_metric_intervals(lv, 2, iv, 1);
    double cov, width;
    ssm_metric_coverage(y, q, 2, 3, &iv[0], &cov, &width);
    assert_double_equal(cov, 2.0 / 3, TOL);
    assert_double_equal(width, 8.0 / 3, TOL);
    ssm_metric_coverage(y + 3, q + 6, 2, 1, &iv[0], &cov, &width);
    assert_double_equal(cov, 1.0, TOL);
}

static void test_single_point(void **state) {
    (void)state;
    /* a single origin with horizon 1: every figure from one error e = 3 - 5 = -2 */
    double y[] = {3}, f[] = {5};
    assert_double_equal(ssm_metric_mae(y, f, 1), 2.0, TOL);
    assert_double_equal(ssm_metric_rmse(y, f, 1), 2.0, TOL);
    assert_double_equal(ssm_metric_mape(y, f, 1), 100.0 * 2 / 3, TOL);
    assert_double_equal(ssm_metric_smape(y, f, 1), 200.0 * 2 / 8, TOL);
    assert_double_equal(ssm_metric_mase(y, f, 1, 4.0), 0.5, TOL);
}

static void test_summaries_and_ranks(void **state) {
    (void)state;
    double x[] = {3, NAN, 1, 2};
    assert_double_equal(ssm_mean_skipnan(x, 4), 2.0, TOL);
    assert_double_equal(ssm_median_skipnan(x, 4), 2.0, TOL);
    double even[] = {4, 1, 3, 2};
    assert_double_equal(ssm_median_skipnan(even, 4), 2.5, TOL);
    double none[] = {NAN};
    assert_true(isnan(ssm_mean_skipnan(none, 1)));
    assert_true(isnan(ssm_median_skipnan(none, 1)));
    assert_true(isnan(ssm_median_skipnan(none, 0)));
    /* ranks of 2, 1, 2, NaN: 1 is first; the two 2s share ranks 2 and 3 -> 2.5 */
    double r[4], v[] = {2, 1, 2, NAN};
    ssm_rank_average(v, 4, r);
    assert_double_equal(r[0], 2.5, TOL);
    assert_double_equal(r[1], 1.0, TOL);
    assert_double_equal(r[2], 2.5, TOL);
    assert_true(isnan(r[3]));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_point_metrics),
        cmocka_unit_test(test_missing_pairs_are_skipped),
        cmocka_unit_test(test_mape_zero_actuals),
        cmocka_unit_test(test_smape_both_zero),
        cmocka_unit_test(test_mase_scale),
        cmocka_unit_test(test_mase_constant_window),
        cmocka_unit_test(test_pinball),
        cmocka_unit_test(test_intervals_and_coverage),
        cmocka_unit_test(test_single_point),
        cmocka_unit_test(test_summaries_and_ranks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
