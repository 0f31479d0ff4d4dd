/*
 * tests/kalman/test_auto.c — automatic model selection (kalman_auto).
 *
 * The SARIMA search against R's auto.arima (fixture tests/reference/fixtures/kalman/
 * sarima_auto_R.txt, written by tests/reference/sarima_auto_R.R): the same orders on
 * log(AirPassengers) and the Nile, and the same AICc (to R's approximate-diffuse
 * likelihood, 0.01). Then the selection rule's invariants: family masks, the winner's
 * reported fit is a fit of its spec, gaps, bad and short input.
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

/* R's choice for case: orders o[0..7] = p d q P D Q s constant, loglik, aicc. */
static void r_choice(const char *name, int *o, double *loglik, double *aicc)
{
    char path[512], line[512], key[64];
    snprintf(path, sizeof path, "%s/kalman/sarima_auto_R.txt", SSMD_TEST_FIXTURES);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        if (sscanf(line, "%63s %d %d %d %d %d %d %d %d %lf %lf", key, &o[0], &o[1], &o[2], &o[3],
                   &o[4], &o[5], &o[6], &o[7], loglik, aicc) == 11 &&
            !strcmp(key, name)) {
            found = 1;
            break;
        }
    }
    fclose(f);
    assert_true(found);
}

static void check_like_r(const char *name, const char *data, int lg, int season)
{
    int o[8];
    double ll_r, aicc_r;
    r_choice(name, o, &ll_r, &aicc_r);
    size_t n;
    double *y = kt_load_series(data, lg, &n);
    assert_non_null(y);
    kalman_auto_opts opts = {.season = season, .families = KALMAN_AUTO_SARIMA};
    kalman_auto_result res;
    kalman_error err;
    assert_int_equal(kalman_auto(y, n, &opts, &res, &err), 0);
    kalman_sarima_spec sp = {.p = o[0], .d = o[1], .q = o[2], .P = o[3], .D = o[4], .Q = o[5],
                             .s = o[6], .constant = o[7]};
    char want[128];
    kalman_sarima_format(&sp, want, sizeof want);
    print_message("%s: ssmd %s (AICc %.4f), R %s (AICc %.4f), %d candidates\n", name, res.spec,
                  res.fit.aicc, want, aicc_r, res.ncandidates);
    assert_string_equal(res.spec, want);
    assert_true(fabs(res.fit.aicc - aicc_r) < 0.01);
    assert_true(res.fit.loglik >= ll_r - 0.01);
    assert_true(res.ncandidates >= 4);
    kalman_model_free(res.model);
    free(y);
}

static void test_like_auto_arima(void **state)
{
    (void)state;
    check_like_r("air_log", "AirPassengers.csv", 1, 12);
    check_like_r("nile", "Nile.csv", 0, 1);
}

/* the winner's fit is a fit of the spec it names */
static void check_winner(const kalman_auto_result *res, const double *y, size_t n)
{
    assert_non_null(res->model);
    assert_string_equal(res->spec, res->model->spec);
    assert_true(isfinite(res->fit.loglik) && isfinite(res->fit.aicc));
    for (int i = 0; i < res->model->nparams; i++)
        assert_true(isfinite(res->fit.params[i]));
    kalman_fit_result again;
    kalman_error err;
    const kalman_model *m = res->model;
    int rc = m->fit ? m->fit(m, y, n, NULL, &again, &err) : kalman_fit(m, y, n, NULL, &again, &err);
    assert_int_equal(rc, 0);
    assert_true(fabs(again.loglik - res->fit.loglik) < 1e-6 * fmax(1.0, fabs(again.loglik)));
}

static void test_families(void **state)
{
    (void)state;
    size_t n;
    double *y = kt_load_series("AirPassengers.csv", 1, &n);
    kalman_error err;
    kalman_auto_result res;
    kalman_auto_opts ets = {.season = 12, .families = KALMAN_AUTO_ETS};
    assert_int_equal(kalman_auto(y, n, &ets, &res, &err), 0);
    assert_int_equal(strncmp(res.spec, "ets(", 4), 0);
    assert_int_equal(res.ncandidates, 6);
    check_winner(&res, y, n);
    kalman_model_free(res.model);

    kalman_auto_opts st = {.season = 12, .families = KALMAN_AUTO_STRUCTURAL};
    assert_int_equal(kalman_auto(y, n, &st, &res, &err), 0);
    assert_int_equal(res.ncandidates, 3);
    check_winner(&res, y, n);
    kalman_model_free(res.model);

    kalman_auto_opts all = {.season = 12};
    assert_int_equal(kalman_auto(y, n, &all, &res, &err), 0);
    print_message("all families on log(AirPassengers): %s, %d candidates\n", res.spec,
                  res.ncandidates);
    assert_true(res.ncandidates >= 6 + 3 + 4);
    check_winner(&res, y, n);
    kalman_model_free(res.model);
    free(y);
}

static void test_gaps_and_bad_input(void **state)
{
    (void)state;
    size_t n;
    double *y = kt_load_series("Nile.csv", 0, &n);
    y[10] = NAN;
    y[11] = NAN;
    y[60] = NAN;
    kalman_error err;
    kalman_auto_result res;
    kalman_auto_opts opts = {.season = 1};
    assert_int_equal(kalman_auto(y, n, &opts, &res, &err), 0);
    check_winner(&res, y, n);
    assert_int_equal(res.fit.nobs, (long)n - 3);
    kalman_model_free(res.model);

    assert_int_equal(kalman_auto(y, 3, &opts, &res, &err), KALMAN_ETOOSHORT);
    assert_null(res.model);
    y[5] = INFINITY;
    assert_int_equal(kalman_auto(y, n, &opts, &res, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_auto(NULL, 5, &opts, &res, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_auto(y, n, &opts, NULL, &err), KALMAN_EINVAL);
    free(y);
}

static void test_model_from_spec(void **state)
{
    (void)state;
    const char *ok[] = {"sarima(0,1,1)(0,1,1)[12]", "sarima(2,0,1)+c", "ets(A,Ad,A)[4]",
                        "ets(A,N,N)", "local_level", "local_linear_trend", "smooth_trend",
                        "bsm(season=12)"};
    kalman_error err;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        kalman_model *m = kalman_model_from_spec(ok[i], 0, &err);
        if (!m)
            print_error("%s: %s\n", ok[i], err.message);
        assert_non_null(m);
        assert_string_equal(m->spec, ok[i]);
        kalman_model_free(m);
    }
    /* the season fills in what the text leaves out */
    kalman_model *m = kalman_model_from_spec("bsm", 7, &err);
    assert_non_null(m);
    assert_string_equal(m->spec, "bsm(season=7)");
    kalman_model_free(m);
    m = kalman_model_from_spec("ets(A,A,A)", 4, &err);
    assert_non_null(m);
    assert_string_equal(m->spec, "ets(A,A,A)[4]");
    kalman_model_free(m);
    const char *bad[] = {"arima(1,1,1)", "bsm(season=12", "bsm(season=12)x", "ets(A,A,A)",
                         "sarima(1,1,1)(0,1,1)", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(kalman_model_from_spec(bad[i], 0, &err));
        assert_int_equal(err.code, KALMAN_EINVAL);
    }
    assert_null(kalman_model_from_spec(NULL, 0, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_like_auto_arima),
        cmocka_unit_test(test_families),
        cmocka_unit_test(test_gaps_and_bad_input),
        cmocka_unit_test(test_model_from_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
