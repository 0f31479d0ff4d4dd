/*
 * tests/models/test_plot_svg.c — the backtest SVG: document structure, one band per
 * drawn origin and interval for the model that asked for bands, every model in the legend
 * with XML escaping, a metric-by-step panel, and errors for impossible requests.
 * Rendering in a real browser is test_plot_render.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backtest.h"
#include "plot_svg.h"
#include "test_util.h"

static size_t count(const char *s, const char *what) {
    size_t n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

static void test_structure(void **state) {
    (void)state;
    double *v = NULL;
    size_t n = read_csv_values(SSMD_TEST_DATA "/AirPassengers.csv", &v);
    assert_int_equal(n, 144);
    ssm_series y = {"AirPassengers", {SSM_FREQ_MONTH, 1}, -662688000 /* 1949-01-01 */, n, v};
    ssm_backtest_opts o;
    memset(&o, 0, sizeof o);
    o.horizon = 12;
    o.origins = 4;
    const char *specs[] = {"snaive", "naive", "drift"};
    ssm_backtest bt[3];
    ssm_error err;
    for (int k = 0; k < 3; k++) assert_int_equal(ssm_backtest_run(&y, specs[k], &o, &bt[k], &err), SSM_OK);
    ssm_bt_summary sum[3];
    assert_int_equal(ssm_backtest_summarise(bt, 1, 3, sum, &err), SSM_OK);
    const char *names[] = {"snaive", "naive <&>", "drift"};
    int bands[] = {1, 0, 0};
    size_t origins[] = {1, 3};
    ssmd_plot_spec p = {.title = "AirPassengers", .series = &y, .nmodels = 3, .names = names, .bt = bt,
                        .bands = bands, .origins = origins, .norigins = 2, .summary = sum};
    ssmd_strbuf sb = {0};
    char msg[256];
    assert_int_equal(ssmd_plot_backtest_svg(&p, &sb, msg, sizeof msg), 0);
    const char *svg = ssmd_sb_str(&sb);
    assert_true(strncmp(svg, "<?xml", 5) == 0);
    assert_non_null(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_true(strcmp(svg + sb.len - 7, "</svg>\n") == 0);
    /* bands: 2 intervals x 2 origins, only for snaive */
    assert_int_equal(count(svg, "<polygon"), 4);
    /* lines: actuals (1) + 3 models x 2 origins forecasts + 3 metric-by-step lines */
    assert_int_equal(count(svg, "<polyline"), 1 + 6 + 3);
    /* legend, escaped */
    assert_non_null(strstr(svg, "naive &lt;&amp;&gt;"));
    assert_null(strstr(svg, "naive <&>"));
    assert_non_null(strstr(svg, "snaive (80%, 95%)"));
    assert_non_null(strstr(svg, "mase by forecast step"));
    /* monthly axis labels */
    assert_non_null(strstr(svg, ">1958-"));
    ssmd_sb_free(&sb);

    /* an origin that does not exist */
    size_t bad[] = {4};
    p.origins = bad;
    p.norigins = 1;
    assert_int_equal(ssmd_plot_backtest_svg(&p, &sb, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "origin 5"));
    ssmd_sb_free(&sb);
    for (int k = 0; k < 3; k++) {
        ssm_bt_summary_free(&sum[k]);
        ssm_backtest_free(&bt[k]);
    }
    /* nothing that ran */
    ssm_backtest none;
    memset(&none, 0, sizeof none);
    p.bt = &none;
    p.nmodels = 1;
    p.summary = NULL;
    assert_int_equal(ssmd_plot_backtest_svg(&p, &sb, msg, sizeof msg), -1);
    ssmd_sb_free(&sb);
    free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
