/*
 * tests/kalman/test_ets.c — the additive ETS builder and estimator against statsmodels'
 * ETSModel and R's forecast::ets.
 *
 * Fixtures: tests/reference/fixtures/kalman/ets_<case>_sm.txt (tests/reference/
 * ets_statsmodels.py) and ets_<case>_R.txt (tests/reference/ets_forecast.R), six cases
 * covering ETS(A,N,N), (A,A,N), (A,Ad,N), (A,N,A), (A,A,A), (A,Ad,A).
 *
 * How we compare: the initial states are parameters in all three implementations, so the
 * likelihoods are the same function. At statsmodels' and at R's fitted parameters our
 * Kalman-filter log-likelihood must equal theirs to 1e-6 relative (R's figure converted
 * to the full Gaussian one, -n/2 (log(2 pi SSE/n) + 1)); our MLE must reach at least the
 * better of the two (- 1e-6) wherever their optimum lies in R's admissible region, and its
 * parameters must be admissible. One-step predictions and forecasts at statsmodels'
 * parameters match too.
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

/* ---- fixture and data helpers -------------------------------------------------------- */

static const char *CASES[] = {"ann_nile", "aan_air", "aadn_air", "ana_ukgas", "aaa_air",
                              "aada_ukgas"};
#define NCASES 6

typedef struct ets_case {
    kalman_ets_spec spec;
    double *y;
    size_t n;
    char sm[64], R[64];
} ets_case;

/* Loads case `name` (its spec from the statsmodels fixture, its data) and returns the
 * model of its spec; fails the test when either is missing. */
static kalman_model *case_load(ets_case *c, const char *name)
{
    snprintf(c->sm, sizeof c->sm, "ets_%s_sm.txt", name);
    snprintf(c->R, sizeof c->R, "ets_%s_R.txt", name);
    char path[512], line[256], data[64] = "", trend[8] = "", seas[8] = "";
    int damped = 0, period = 0, lg = 0;
    snprintf(path, sizeof path, "%s/kalman/%s", SSMD_TEST_FIXTURES, c->sm);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "data %63s", data);
        sscanf(line, "log %d", &lg);
        sscanf(line, "model A %7s %d %7s %d", trend, &damped, seas, &period);
    }
    fclose(f);
    memset(&c->spec, 0, sizeof c->spec);
    c->spec.error = 'A';
    c->spec.trend = trend[0];
    c->spec.damped = damped;
    c->spec.seasonal = seas[0];
    c->spec.period = seas[0] == 'A' ? period : 0;
    c->y = kt_load_series(data, lg, &c->n);
    assert_non_null(c->y);
    kalman_error err;
    kalman_model *mod = kalman_ets_create(&c->spec, &err);
    assert_non_null(mod);
    return mod;
}

/* Concentrated Kalman log-likelihood of the ETS system at params (sigma2 entry ignored),
 * with optional one-step predictions (n) and h forecasts at sigma2 = SSE / n. */
static double kalman_ll(const kalman_model *mod, const double *params_in, const double *y,
                        size_t n, double *pred, int h, double *fmean, double *fvar)
{
    kalman_error err;
    double p[KALMAN_MAX_PARAMS];
    memcpy(p, params_in, (size_t)mod->nparams * sizeof(double));
    p[mod->nparams - 1] = 1.0;
    kalman_ssm s;
    assert_int_equal(kalman_ssm_alloc(&s, mod->m, mod->r, &err), 0);
    kalman_workspace *ws = kalman_workspace_create(mod->m, mod->r, &err);
    assert_int_equal(mod->build(mod->ctx, p, &s, ws, &err), 0);
    double ll, s2;
    assert_int_equal(kalman_loglik(&s, y, n, 1, ws, &ll, &s2, NULL, &err), 0);
    if (pred || fmean) {
        p[mod->nparams - 1] = s2;
        assert_int_equal(mod->build(mod->ctx, p, &s, ws, &err), 0);
        kalman_store store;
        assert_int_equal(kalman_store_alloc(&store, n, mod->m, &err), 0);
        kalman_state st;
        assert_int_equal(kalman_state_alloc(&st, mod->m, &err), 0);
        kalman_state_start(&st, &s);
        assert_int_equal(kalman_filter(&s, y, n, &st, NULL, &store, ws, &err), 0);
        if (pred)
            for (size_t t = 0; t < n; t++)
                pred[t] = y[t] - store.v[t];
        if (fmean)
            assert_int_equal(kalman_forecast(&s, &st, h, fmean, fvar, ws, &err), 0);
        kalman_state_free(&st);
        kalman_store_free(&store);
    }
    kalman_workspace_free(ws);
    kalman_ssm_free(&s);
    return ll;
}

static void test_fixed_statsmodels(void **state)
{
    (void)state;
    for (int k = 0; k < NCASES; k++) {
        ets_case c;
        kalman_model *mod = case_load(&c, CASES[k]);
        char names[KALMAN_MAX_PARAMS][48];
        int np = kt_fixture_names(c.sm, names, KALMAN_MAX_PARAMS);
        assert_int_equal(np, mod->nparams - 1); /* + our sigma2 */
        for (int i = 0; i < np; i++)
            assert_string_equal(mod->names[i], names[i]);
        assert_string_equal(mod->names[np], "sigma2");
        double p[KALMAN_MAX_PARAMS], ll_ref = NAN;
        assert_int_equal(kt_fixture_get(c.sm, "params", p, KALMAN_MAX_PARAMS), np);
        p[np] = 1.0;
        assert_int_equal(kt_fixture_get(c.sm, "loglik", &ll_ref, 1), 1);

        double *pred = malloc(c.n * sizeof(double)), *pred_ref = malloc(c.n * sizeof(double));
        double fm[24], fv[24], fm_ref[24], fv_ref[24];
        int h = kt_fixture_get(c.sm, "forecast_mean", fm_ref, 24);
        assert_true(h > 0);
        assert_int_equal(kt_fixture_get(c.sm, "forecast_var", fv_ref, 24), h);
        assert_int_equal(kt_fixture_get(c.sm, "pred", pred_ref, (int)c.n), (int)c.n);
        double ll = kalman_ll(mod, p, c.y, c.n, pred, h, fm, fv);
        kt_assert_rel(ll, ll_ref, 1e-6, CASES[k]);
        for (size_t t = 0; t < c.n; t++)
            kt_assert_rel(pred[t], pred_ref[t], 1e-6, "one-step prediction");
        for (int i = 0; i < h; i++) {
            kt_assert_rel(fm[i], fm_ref[i], 1e-6, "forecast mean");
            kt_assert_rel(fv[i], fv_ref[i], 1e-6, "forecast variance");
        }
        free(pred);
        free(pred_ref);
        kalman_model_free(mod);
        free(c.y);
    }
}

/* R's parameters: alpha, beta, gamma, phi (NaN when absent), initial states l, b, s1..sm
 * (s1 the most recent = our initial_seasonal.0; R's seasonal states sum to zero instead of
 * ending in 0, the same model). */
static void r_params(const kalman_model *mod, const ets_case *c, double *p)
{
    double sm[4], init[KALMAN_MAX_PARAMS];
    assert_int_equal(kt_fixture_get(c->R, "smoothing", sm, 4), 4);
    int ni = kt_fixture_get(c->R, "initstate", init, KALMAN_MAX_PARAMS);
    int i = 0;
    p[i++] = sm[0];
    if (c->spec.trend == 'A')
        p[i++] = sm[1];
    if (c->spec.seasonal == 'A')
        p[i++] = sm[2];
    if (c->spec.damped)
        p[i++] = sm[3];
    for (int j = 0; j < ni; j++)
        p[i++] = init[j];
    p[i++] = 1.0;
    assert_int_equal(i, mod->nparams);
}

static void test_fixed_r(void **state)
{
    (void)state;
    for (int k = 0; k < NCASES; k++) {
        ets_case c;
        kalman_model *mod = case_load(&c, CASES[k]);
        double p[KALMAN_MAX_PARAMS], ll_ref = NAN;
        r_params(mod, &c, p);
        assert_int_equal(kt_fixture_get(c.R, "loglik", &ll_ref, 1), 1);
        double ll = kalman_ll(mod, p, c.y, c.n, NULL, 0, NULL, NULL);
        kt_assert_rel(ll, ll_ref, 1e-6, CASES[k]);
        kalman_model_free(mod);
        free(c.y);
    }
}

static int admissible(const kalman_model *mod, const kalman_ets_spec *sp, const double *p)
{
    int i = 0;
    double alpha = p[i++];
    if (!(alpha >= 1e-4 && alpha <= 1 - 1e-4))
        return 0;
    if (sp->trend == 'A') {
        double beta = p[i++];
        if (!(beta >= 1e-4 && beta <= alpha))
            return 0;
    }
    if (sp->seasonal == 'A') {
        double gamma = p[i++];
        if (!(gamma >= 1e-4 && gamma <= 1 - alpha))
            return 0;
    }
    if (sp->damped) {
        double phi = p[i++];
        if (!(phi >= 0.8 && phi <= 0.98))
            return 0;
    }
    for (int j = 0; j < mod->nparams; j++)
        if (!isfinite(p[j]))
            return 0;
    return p[mod->nparams - 1] > 0.0;
}

static void test_mle(void **state)
{
    (void)state;
    for (int k = 0; k < NCASES; k++) {
        ets_case c;
        kalman_model *mod = case_load(&c, CASES[k]);
        kalman_error err;
        assert_non_null(mod->fit);
        kalman_fit_result res;
        assert_int_equal(kalman_ets_fit(mod, c.y, c.n, NULL, &res, &err), 0);
        assert_true(admissible(mod, &c.spec, res.params));
        if (c.spec.seasonal == 'A')
            assert_true(res.params[mod->nparams - 2] == 0.0);
        /* the reported figure is the Kalman filter's at the reported parameters */
        kt_assert_rel(kalman_ll(mod, res.params, c.y, c.n, NULL, 0, NULL, NULL), res.loglik, 1e-9,
                   "loglik at the MLE");
        double ll_sm = NAN, ll_r = NAN, p_sm[KALMAN_MAX_PARAMS], p_r[KALMAN_MAX_PARAMS];
        assert_int_equal(kt_fixture_get(c.sm, "loglik", &ll_sm, 1), 1);
        assert_int_equal(kt_fixture_get(c.R, "loglik", &ll_r, 1), 1);
        int np = kt_fixture_get(c.sm, "params", p_sm, KALMAN_MAX_PARAMS);
        p_sm[np] = 1.0;
        r_params(mod, &c, p_r);
        /* statsmodels' lower bound for beta is 1e-4 * alpha, below R's 1e-4: compare only
         * where its optimum is admissible for R's bounds */
        double best = ll_r;
        if (admissible(mod, &c.spec, p_sm) && ll_sm > best)
            best = ll_sm;
        print_message("%-10s ssmd %.6f  statsmodels %.6f  R %.6f\n", CASES[k], res.loglik, ll_sm,
                      ll_r);
        if (!(res.loglik >= best - 1e-6)) {
            print_error("%s: MLE %.8f below the best reference %.8f\n", CASES[k], res.loglik, best);
            fail();
        }
        /* criteria: R's parameter count */
        int nfree = 0;
        for (int i = 0; i < mod->nparams; i++)
            nfree += !mod->fixed[i];
        assert_int_equal(res.nfree, nfree);
        double n = (double)res.nobs, kk = (double)nfree;
        kt_assert_rel(res.aicc, -2 * res.loglik + 2 * kk * n / (n - kk - 1), 1e-12, "aicc");
        kalman_model_free(mod);
        free(c.y);
    }
}

static void test_missing_and_short(void **state)
{
    (void)state;
    ets_case c;
    kalman_model *mod = case_load(&c, "aaa_air");
    kalman_error err;
    kalman_fit_result full, gap;
    assert_int_equal(kalman_ets_fit(mod, c.y, c.n, NULL, &full, &err), 0);
    c.y[0] = NAN;
    c.y[50] = NAN;
    c.y[51] = NAN;
    c.y[c.n - 1] = NAN;
    assert_int_equal(kalman_ets_fit(mod, c.y, c.n, NULL, &gap, &err), 0);
    assert_int_equal(gap.nobs, (long)c.n - 4);
    assert_true(admissible(mod, &c.spec, gap.params));
    kt_assert_rel(kalman_ll(mod, gap.params, c.y, c.n, NULL, 0, NULL, NULL), gap.loglik, 1e-9,
               "loglik with gaps");
    /* too short for 16 parameters */
    assert_int_equal(kalman_ets_fit(mod, c.y + 1, 12, NULL, &gap, &err), KALMAN_ETOOSHORT);
    c.y[3] = INFINITY;
    assert_int_equal(kalman_ets_fit(mod, c.y, c.n, NULL, &gap, &err), KALMAN_EINVAL);
    kalman_model_free(mod);
    free(c.y);
}

/* fits on awkward random series (white noise, random walks, trends, a spike) stay finite
 * and admissible for every model */
static void test_random_series_admissible(void **state)
{
    (void)state;
    const char *specs[] = {"(A,N,N)", "(A,A,N)", "(A,Ad,N)", "(A,N,A)", "(A,A,A)", "(A,Ad,A)"};
    unsigned seed = 12345;
    double y[48];
    for (int trial = 0; trial < 8; trial++) {
        double level = 0.0;
        for (int t = 0; t < 48; t++) {
            seed = seed * 1103515245u + 12345u;
            double u = ((seed >> 8) & 0xffff) / 65536.0 - 0.5;
            level += (trial % 2) ? u : 0.0;
            y[t] = level + u + (trial % 3 == 2 ? 0.3 * t : 0.0) + (trial == 5 && t == 20 ? 50 : 0);
        }
        for (int k = 0; k < 6; k++) {
            kalman_ets_spec sp;
            kalman_error err;
            assert_int_equal(kalman_ets_parse(specs[k], 4, &sp, &err), 0);
            kalman_model *mod = kalman_ets_create(&sp, &err);
            kalman_fit_result res;
            assert_int_equal(kalman_ets_fit(mod, y, 48, NULL, &res, &err), 0);
            assert_true(isfinite(res.loglik));
            if (!admissible(mod, &sp, res.params)) {
                print_error("trial %d %s: inadmissible fit\n", trial, specs[k]);
                fail();
            }
            kalman_model_free(mod);
        }
    }
}

static void test_transform(void **state)
{
    (void)state;
    kalman_ets_spec sp = {.error = 'A', .trend = 'A', .damped = 1, .seasonal = 'A', .period = 4};
    kalman_error err;
    kalman_model *mod = kalman_ets_create(&sp, &err);
    assert_int_equal(mod->nparams, 4 + 2 + 4 + 1);
    assert_true(mod->fixed[9]);
    srand(3);
    for (int trial = 0; trial < 500; trial++) {
        double u[KALMAN_MAX_PARAMS], p[KALMAN_MAX_PARAMS], u2[KALMAN_MAX_PARAMS];
        for (int i = 0; i < mod->nparams; i++)
            u[i] = 16.0 * ((double)rand() / RAND_MAX - 0.5);
        mod->transform(mod->ctx, u, p);
        assert_true(admissible(mod, &sp, p));
        mod->untransform(mod->ctx, p, u2);
        for (int i = 0; i < mod->nparams; i++)
            if (fabs(u[i]) < 6.0)
                assert_true(fabs(u2[i] - u[i]) < 1e-6 * fmax(1.0, fabs(u[i])));
    }
    kalman_model_free(mod);
}

static void test_parse(void **state)
{
    (void)state;
    kalman_ets_spec sp;
    kalman_error err;
    char buf[64];
    const char *ok[] = {"(A,N,N)", "(A,A,N)", "(A,Ad,N)", "(A,N,A)", "(A,A,A)", "(A,Ad,A)"};
    const char *canon[] = {"ets(A,N,N)", "ets(A,A,N)", "ets(A,Ad,N)", "ets(A,N,A)[12]",
                           "ets(A,A,A)[12]", "ets(A,Ad,A)[12]"};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(kalman_ets_parse(ok[i], 12, &sp, &err), 0);
        kalman_ets_format(&sp, buf, sizeof buf);
        assert_string_equal(buf, canon[i]);
        kalman_model *mod = kalman_ets_create(&sp, &err);
        assert_non_null(mod);
        assert_string_equal(mod->spec, canon[i]);
        kalman_model_free(mod);
    }
    assert_int_equal(kalman_ets_parse(" ( A , Ad , A ) [4]", 0, &sp, &err), 0);
    assert_int_equal(sp.period, 4);
    assert_int_equal(kalman_ets_parse("(A,A,A)", 0, &sp, &err), KALMAN_EINVAL);
    assert_non_null(strstr(err.message, "period"));
    assert_int_equal(kalman_ets_parse("(M,A,A)", 12, &sp, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_ets_parse("(A,M,N)", 12, &sp, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_ets_parse("(A,A,M)", 12, &sp, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_ets_parse("(A,A)", 12, &sp, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_ets_parse("(A,A,N) x", 12, &sp, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_ets_parse(NULL, 12, &sp, &err), KALMAN_EINVAL);
    kalman_ets_spec bad = {.error = 'M', .trend = 'N', .seasonal = 'N'};
    assert_null(kalman_ets_create(&bad, &err));
    kalman_ets_spec bad2 = {.error = 'A', .trend = 'N', .damped = 1, .seasonal = 'N'};
    assert_null(kalman_ets_create(&bad2, &err));
    kalman_ets_spec bad3 = {.error = 'A', .trend = 'N', .seasonal = 'A', .period = 1};
    assert_null(kalman_ets_create(&bad3, &err));
    assert_null(kalman_ets_create(NULL, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_statsmodels), cmocka_unit_test(test_fixed_r),
        cmocka_unit_test(test_mle),               cmocka_unit_test(test_missing_and_short),
        cmocka_unit_test(test_transform),         cmocka_unit_test(test_parse),
        cmocka_unit_test(test_random_series_admissible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
