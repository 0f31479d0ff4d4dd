/*
 * tests/models/test_backtest_reference.c — ssmd's backtest of the baselines against R.
 *
 * tests/reference/r_backtest.R ran R's forecast::naive, snaive and rwf(drift = TRUE) over
 * the same rolling origins of the shared data sets (Nile, AirPassengers, UKgas, taylor)
 * and scored them with the textbook metric definitions written in R. This test reruns
 * those backtests with models/backtest.c and requires, per series:
 *   - every point forecast and every 80%/95% limit equal to R's (1e-9 relative), and
 *   - MAE, RMSE, MAPE, sMAPE, MASE, pinball, coverage and width equal to R's (1e-9).
 * It also prints R's ets and auto.arima MASE beside the baselines, for the record.
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
#include "test_util.h"

#define REL 1e-9
#define DIR SSMD_TEST_FIXTURES "/backtest/"

typedef struct setting {
    char series[64], file[64];
    int season;
    size_t horizon, origins, step;
} setting;

/* Splits a CSV line (no quoting in these fixtures) into at most max fields in place. */
static size_t split(char *line, char **f, size_t max) {
    size_t n = 0;
    line[strcspn(line, "\r\n")] = '\0';
    for (char *p = line; n < max;) {
        f[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = '\0';
        p = c + 1;
    }
    return n;
}

static double num(const char *s) { return (!*s || strcmp(s, "NA") == 0) ? NAN : strtod(s, NULL); }

static size_t read_settings(setting *s, size_t max) {
    FILE *fp = fopen(DIR "settings.csv", "r");
    assert_non_null(fp);
    char line[512], *f[8];
    size_t n = 0;
    assert_non_null(fgets(line, sizeof line, fp)); /* header */
    while (n < max && fgets(line, sizeof line, fp)) {
        if (split(line, f, 8) < 6) continue;
        snprintf(s[n].series, sizeof s[n].series, "%s", f[0]);
        snprintf(s[n].file, sizeof s[n].file, "%s", f[1]);
        s[n].season = atoi(f[2]);
        s[n].horizon = (size_t)atoi(f[3]);
        s[n].origins = (size_t)atoi(f[4]);
        s[n].step = (size_t)atoi(f[5]);
        n++;
    }
    fclose(fp);
    return n;
}

static void run(const setting *st, const char *spec, ssm_backtest *bt) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SSMD_TEST_DATA, st->file);
    double *v = NULL;
    size_t n = read_csv_values(path, &v);
    assert_true(n > 0);
    /* the grid unit does not matter to these models: the season is given explicitly */
    ssm_series y = {st->series, {SSM_FREQ_DAY, 1}, 0, n, v};
    ssm_backtest_opts o;
    memset(&o, 0, sizeof o);
    o.horizon = st->horizon;
    o.origins = st->origins;
    o.step = st->step;
    o.season = st->season;
    ssm_error err;
    int rc = ssm_backtest_run(&y, spec, &o, bt, &err);
    if (rc != SSM_OK) print_error("%s on %s: %s\n", spec, st->series, err.message);
    assert_int_equal(rc, SSM_OK);
    assert_int_equal(bt->nfailed, 0);
    free(v);
}

static const char *const baselines[] = {"naive", "snaive", "drift"};

static void test_forecasts_equal_r(void **state) {
    (void)state;
    setting st[8];
    size_t ns = read_settings(st, 8);
    assert_int_equal(ns, 4);
    FILE *fp = fopen(DIR "forecasts.csv", "r");
    assert_non_null(fp);
    char line[1024], *f[16];
    assert_non_null(fgets(line, sizeof line, fp));
    /* forecasts.csv: series,model,origin,step,actual,mean,q025,q10,q50,q90,q975 */
    ssm_backtest bt[4][3];
    for (size_t s = 0; s < ns; s++)
        for (size_t k = 0; k < 3; k++) run(&st[s], baselines[k], &bt[s][k]);
    size_t checked = 0;
    while (fgets(line, sizeof line, fp)) {
        if (split(line, f, 16) < 11) continue;
        size_t s = 0, k = 0;
        while (s < ns && strcmp(st[s].series, f[0]) != 0) s++;
        while (k < 3 && strcmp(baselines[k], f[1]) != 0) k++;
        if (s == ns || k == 3) continue; /* ets, auto.arima: not ours to match */
        size_t i = (size_t)atoi(f[2]), h = (size_t)atoi(f[3]) - 1, H = st[s].horizon;
        const ssm_backtest *b = &bt[s][k];
        assert_double_equal(b->actual[i * H + h], num(f[4]), 0.0);
        assert_double_equal(b->mean[i * H + h], num(f[5]), REL);
        for (size_t j = 0; j < 5; j++) assert_double_equal(b->q[(i * H + h) * 5 + j], num(f[6 + j]), REL);
        checked++;
    }
    fclose(fp);
    /* 3 baselines x (5x10 + 5x12 + 5x8 + 3x48) points */
    assert_int_equal(checked, 3 * (50 + 60 + 40 + 144));
    for (size_t s = 0; s < ns; s++)
        for (size_t k = 0; k < 3; k++) ssm_backtest_free(&bt[s][k]);
}

static void test_metrics_equal_r(void **state) {
    (void)state;
    setting st[8];
    size_t ns = read_settings(st, 8);
    FILE *fp = fopen(DIR "metrics.csv", "r");
    assert_non_null(fp);
    char line[1024], *f[16];
    assert_non_null(fgets(line, sizeof line, fp));
    /* metrics.csv: series,model,mae,rmse,mape,smape,mase,pinball,coverage_80,coverage_95,
     * width_80,width_95 */
    size_t checked = 0;
    printf("%-14s %-11s %10s %10s\n", "series", "model", "MASE(R)", "MASE(ssmd)");
    while (fgets(line, sizeof line, fp)) {
        if (split(line, f, 16) < 12) continue;
        size_t s = 0, k = 0;
        while (s < ns && strcmp(st[s].series, f[0]) != 0) s++;
        while (k < 3 && strcmp(baselines[k], f[1]) != 0) k++;
        assert_true(s < ns);
        if (k == 3) {
            printf("%-14s %-11s %10.4f %10s\n", f[0], f[1], num(f[6]), "");
            continue;
        }
        ssm_backtest bt;
        run(&st[s], baselines[k], &bt);
        const ssm_bt_scores *o = &bt.overall;
        printf("%-14s %-11s %10.4f %10.4f\n", f[0], f[1], num(f[6]), o->mase);
        assert_double_equal(o->mae, num(f[2]), REL);
        assert_double_equal(o->rmse, num(f[3]), REL);
        assert_double_equal(o->mape, num(f[4]), REL);
        assert_double_equal(o->smape, num(f[5]), REL);
        assert_double_equal(o->mase, num(f[6]), REL);
        assert_double_equal(o->pinball, num(f[7]), REL);
        /* intervals widest first: [0] is 95%, [1] is 80% */
        assert_int_equal(o->nint, 2);
        assert_double_equal(o->coverage[1], num(f[8]), REL);
        assert_double_equal(o->coverage[0], num(f[9]), REL);
        assert_double_equal(o->width[1], num(f[10]), REL);
        assert_double_equal(o->width[0], num(f[11]), REL);
        ssm_backtest_free(&bt);
        checked++;
    }
    fclose(fp);
    assert_int_equal(checked, 3 * ns);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forecasts_equal_r),
        cmocka_unit_test(test_metrics_equal_r),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
