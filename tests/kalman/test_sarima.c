/*
 * tests/kalman/test_sarima.c — the SARIMA builder against statsmodels' SARIMAX.
 *
 * Fixtures: tests/reference/fixtures/kalman/sarima_<case>.txt, written by
 * tests/reference/sarima_statsmodels.py (airline model on log(AirPassengers), an ARMA(2,1)
 * with intercept on the Nile, SARIMA(1,1,1)(1,1,1)[4] on log(UKgas), an intercept with
 * d = 1). For fixed parameters the log-likelihood, the one-step predictions and their
 * variances and 24-step forecasts must match to 1e-6 relative; the MLE must reach at
 * least statsmodels' log-likelihood. Also: the parameter transforms, spec parsing,
 * missing observations and bad input.
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

typedef struct sarima_case {
    const char *file;
    kalman_sarima_spec spec;
    double *y;
    size_t n;
} sarima_case;

static void case_load(sarima_case *c, const char *file)
{
    double v[8], lg[1] = {0};
    char data[64];
    c->file = file;
    assert_int_equal(kt_fixture_get(file, "order", v, 8), 8);
    memset(&c->spec, 0, sizeof c->spec);
    c->spec.p = (int)v[0];
    c->spec.d = (int)v[1];
    c->spec.q = (int)v[2];
    c->spec.P = (int)v[3];
    c->spec.D = (int)v[4];
    c->spec.Q = (int)v[5];
    c->spec.s = (int)v[6];
    c->spec.constant = (int)v[7];
    assert_int_equal(kt_fixture_get(file, "log", lg, 1), 1);
    /* the data line holds a file name, not numbers: read it directly */
    char path[512], line[256];
    snprintf(path, sizeof path, "%s/kalman/%s", SSMD_TEST_FIXTURES, file);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    data[0] = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "data %63s", data) == 1)
            break;
    fclose(f);
    c->y = kt_load_series(data, (int)lg[0], &c->n);
    assert_non_null(c->y);
}

static const char *CASES[] = {"sarima_airline.txt", "sarima_nile_arma.txt", "sarima_ukgas.txt",
                              "sarima_airline_drift.txt"};

/* ---- fixed parameters: loglik, predictions, forecasts --------------------------------- */

static void check_fixed(const char *file)
{
    sarima_case c;
    case_load(&c, file);
    kalman_error err;
    kalman_model *mod = kalman_sarima_create(&c.spec, &err);
    assert_non_null(mod);

    char names[KALMAN_MAX_PARAMS][48];
    assert_int_equal(kt_fixture_names(file, names, KALMAN_MAX_PARAMS), mod->nparams);
    for (int i = 0; i < mod->nparams; i++)
        assert_string_equal(mod->names[i], names[i]);

    double params[KALMAN_MAX_PARAMS], ll_ref = NAN;
    assert_int_equal(kt_fixture_get(file, "fixed_params", params, KALMAN_MAX_PARAMS), mod->nparams);
    assert_int_equal(kt_fixture_get(file, "fixed_loglik", &ll_ref, 1), 1);

    kalman_ssm s;
    assert_int_equal(kalman_ssm_alloc(&s, mod->m, mod->r, &err), 0);
    kalman_workspace *ws = kalman_workspace_create(mod->m, mod->r, &err);
    assert_non_null(ws);
    assert_int_equal(mod->build(mod->ctx, params, &s, ws, &err), 0);

    double ll = NAN;
    kalman_loglik_acc acc;
    assert_int_equal(kalman_loglik(&s, c.y, c.n, 0, ws, &ll, NULL, &acc, &err), 0);
    kt_assert_rel(ll, ll_ref, 1e-6, "fixed-parameter loglik");
    /* the diffuse terms cancel by construction of the P1inf scale */
    assert_int_equal(acc.ndiffuse_obs, c.spec.d + c.spec.s * c.spec.D);

    /* one-step predictions y_t - v_t and F_t after the diffuse phase */
    kalman_store store;
    assert_int_equal(kalman_store_alloc(&store, c.n, mod->m, &err), 0);
    kalman_state st;
    assert_int_equal(kalman_state_alloc(&st, mod->m, &err), 0);
    kalman_state_start(&st, &s);
    assert_int_equal(kalman_filter(&s, c.y, c.n, &st, NULL, &store, ws, &err), 0);
    double nskip = 0.0;
    assert_int_equal(kt_fixture_get(file, "nskip", &nskip, 1), 1);
    size_t k = (size_t)nskip, npred = c.n - k;
    double *pred = malloc(npred * sizeof(double)), *pvar = malloc(npred * sizeof(double));
    assert_int_equal(kt_fixture_get(file, "pred", pred, (int)npred), (int)npred);
    assert_int_equal(kt_fixture_get(file, "pred_var", pvar, (int)npred), (int)npred);
    for (size_t t = k; t < c.n; t++) {
        kt_assert_rel(c.y[t] - store.v[t], pred[t - k], 1e-6, "one-step prediction");
        kt_assert_rel(store.F[t], pvar[t - k], 1e-6, "one-step prediction variance");
    }
    free(pred);
    free(pvar);

    /* forecasts from the end of the sample */
    double fm_ref[24], fv_ref[24], fm[24], fv[24];
    assert_int_equal(kt_fixture_get(file, "forecast_mean", fm_ref, 24), 24);
    assert_int_equal(kt_fixture_get(file, "forecast_var", fv_ref, 24), 24);
    assert_int_equal(kalman_forecast(&s, &st, 24, fm, fv, ws, &err), 0);
    for (int h = 0; h < 24; h++) {
        kt_assert_rel(fm[h], fm_ref[h], 1e-6, "forecast mean");
        kt_assert_rel(fv[h], fv_ref[h], 1e-6, "forecast variance");
    }

    kalman_state_free(&st);
    kalman_store_free(&store);
    kalman_workspace_free(ws);
    kalman_ssm_free(&s);
    kalman_model_free(mod);
    free(c.y);
}

static void test_fixed_airline(void **state)
{
    (void)state;
    check_fixed(CASES[0]);
}
static void test_fixed_nile_arma(void **state)
{
    (void)state;
    check_fixed(CASES[1]);
}
static void test_fixed_ukgas(void **state)
{
    (void)state;
    check_fixed(CASES[2]);
}
static void test_fixed_drift(void **state)
{
    (void)state;
    check_fixed(CASES[3]);
}

/* ---- maximum likelihood --------------------------------------------------------------- */

/* Fits with kalman_sarima_fit (the fast path; generic = 1: the generic kalman_fit on the
 * state-space-differenced system) and compares with statsmodels' MLE: the log-likelihood
 * must be at least statsmodels' (- 1e-6); where it is not clearly higher (the same
 * optimum) the parameters must agree to param_tol. */
static void check_mle(const char *file, double param_tol, int generic)
{
    sarima_case c;
    case_load(&c, file);
    kalman_error err;
    kalman_model *mod = kalman_sarima_create(&c.spec, &err);
    assert_non_null(mod);
    assert_non_null(mod->fit);
    double ref[KALMAN_MAX_PARAMS], ll_ref = NAN;
    assert_int_equal(kt_fixture_get(file, "mle_params", ref, KALMAN_MAX_PARAMS), mod->nparams);
    assert_int_equal(kt_fixture_get(file, "mle_loglik", &ll_ref, 1), 1);

    kalman_fit_result res;
    if (generic) {
        kalman_model plain = *mod;
        plain.fit = NULL;
        assert_int_equal(kalman_fit(&plain, c.y, c.n, NULL, &res, &err), 0);
    } else {
        assert_int_equal(kalman_sarima_fit(mod, c.y, c.n, NULL, &res, &err), 0);
    }
    assert_true(isfinite(res.loglik));
    if (!(res.loglik >= ll_ref - 1e-6)) {
        print_error("%s: MLE loglik %.10f below statsmodels' %.10f\n", file, res.loglik, ll_ref);
        fail();
    }
    if (res.loglik < ll_ref + 1e-4) {
        for (int i = 0; i < mod->nparams; i++) {
            double tol = param_tol * fmax(1.0, fabs(ref[i]));
            if (!(fabs(res.params[i] - ref[i]) <= tol)) {
                print_error("%s: %s = %.8g, statsmodels %.8g\n", file, mod->names[i],
                            res.params[i], ref[i]);
                fail();
            }
        }
    }
    for (int i = 0; i < mod->nparams; i++)
        assert_true(isfinite(res.params[i]));

    /* the reported figure is the state-space likelihood at the reported parameters */
    kalman_ssm s;
    assert_int_equal(kalman_ssm_alloc(&s, mod->m, mod->r, &err), 0);
    kalman_workspace *ws = kalman_workspace_create(mod->m, mod->r, &err);
    assert_int_equal(mod->build(mod->ctx, res.params, &s, ws, &err), 0);
    double ll;
    assert_int_equal(kalman_loglik(&s, c.y, c.n, 0, ws, &ll, NULL, NULL, &err), 0);
    kt_assert_rel(ll, res.loglik, 1e-8, "state-space loglik at the MLE");
    /* SARIMA's criteria count the parameters and the differenced observations (the
     * generic kalman_fit keeps statsmodels' exact-diffuse conventions instead) */
    double k = mod->nparams, ne = (double)c.n - (c.spec.d + c.spec.s * c.spec.D);
    if (!generic)
        kt_assert_rel(res.aicc, -2.0 * res.loglik + 2.0 * k * ne / (ne - k - 1.0), 1e-12, "aicc");
    kalman_workspace_free(ws);
    kalman_ssm_free(&s);
    kalman_model_free(mod);
    free(c.y);
}

static void test_mle_airline(void **state)
{
    (void)state;
    /* the figures: ma.L1 = -0.4018, ma.S.L12 = -0.5569, sigma2 = 0.001348, 244.70 */
    sarima_case c;
    case_load(&c, CASES[0]);
    kalman_error err;
    kalman_model *mod = kalman_sarima_create(&c.spec, &err);
    kalman_fit_result res;
    assert_int_equal(kalman_sarima_fit(mod, c.y, c.n, NULL, &res, &err), 0);
    assert_true(fabs(res.params[0] - -0.4018) < 5e-5);
    assert_true(fabs(res.params[1] - -0.5569) < 5e-5);
    assert_true(fabs(res.params[2] - 0.001348) < 5e-7);
    assert_true(fabs(res.loglik - 244.70) < 5e-3);
    assert_true(res.converged);
    kalman_model_free(mod);
    free(c.y);
    check_mle(CASES[0], 1e-3, 0);
    check_mle(CASES[0], 1e-3, 1);
    /* statsmodels' AICc for this model (k = 3, n_eff = 131) */
    double aicc_ref = NAN;
    assert_int_equal(kt_fixture_get(CASES[0], "mle_aicc", &aicc_ref, 1), 1);
    assert_true(fabs(res.aicc - aicc_ref) < 1e-4);
}

static void test_mle_others(void **state)
{
    (void)state;
    check_mle(CASES[1], 2e-2, 0);
    check_mle(CASES[2], 2e-2, 0);
    check_mle(CASES[3], 2e-2, 0);
    /* the generic optimizer on the full system reaches the same optimum (slow: one case) */
    check_mle(CASES[1], 2e-2, 1);
}

/* The fast path's likelihood (differenced series, Chandrasekhar) equals the state-space
 * one (K1's exact diffuse filter on the full system) at random admissible parameters. */
static void test_fast_equals_statespace(void **state)
{
    (void)state;
    const char *files[] = {CASES[0], CASES[1], CASES[2], CASES[3]};
    kalman_sarima_spec extra = {.p = 2, .d = 1, .q = 2, .P = 1, .D = 1, .Q = 1, .s = 12,
                                .constant = 1};
    srand(11);
    for (int f = 0; f < 5; f++) {
        sarima_case c;
        case_load(&c, files[f < 4 ? f : 0]);
        kalman_sarima_spec sp = f < 4 ? c.spec : extra;
        kalman_error err;
        kalman_model *mod = kalman_sarima_create(&sp, &err);
        assert_non_null(mod);
        kalman_ssm s;
        assert_int_equal(kalman_ssm_alloc(&s, mod->m, mod->r, &err), 0);
        kalman_workspace *ws = kalman_workspace_create(mod->m, mod->r, &err);
        for (int trial = 0; trial < 10; trial++) {
            double u[KALMAN_MAX_PARAMS], p[KALMAN_MAX_PARAMS];
            for (int i = 0; i < mod->nparams; i++)
                u[i] = 2.0 * ((double)rand() / RAND_MAX - 0.5);
            mod->transform(mod->ctx, u, p);
            p[mod->nparams - 1] = f == 1 ? 15000.0 : 0.01; /* sigma2 */
            if (sp.constant)
                p[0] = f == 1 ? 300.0 : 0.001;
            double fast, slow;
            assert_int_equal(kalman_sarima_loglik(mod, c.y, c.n, p, &fast, &err), 0);
            assert_int_equal(mod->build(mod->ctx, p, &s, ws, &err), 0);
            assert_int_equal(kalman_loglik(&s, c.y, c.n, 0, ws, &slow, NULL, NULL, &err), 0);
            kt_assert_rel(fast, slow, 1e-9, "fast vs state-space loglik");
        }
        kalman_workspace_free(ws);
        kalman_ssm_free(&s);
        kalman_model_free(mod);
        free(c.y);
    }
}

/* ---- transforms ----------------------------------------------------------------------- */

/* Largest modulus of the roots of z^n - phi_1 z^(n-1) - ... - phi_n by power iteration on
 * the companion matrix would be fiddly; instead check stationarity through the inverse
 * Durbin-Levinson recursion: all partial autocorrelations inside (-1, 1). */
static int is_stationary(const double *phi_in, int n)
{
    double phi[64], prev[64];
    memcpy(phi, phi_in, (size_t)n * sizeof(double));
    for (int k = n - 1; k >= 0; k--) {
        double rk = phi[k];
        if (!(fabs(rk) < 1.0))
            return 0;
        for (int j = 0; j < k; j++)
            prev[j] = phi[j];
        for (int j = 0; j < k; j++)
            phi[j] = (prev[j] + rk * prev[k - 1 - j]) / (1.0 - rk * rk);
    }
    return 1;
}

/* fits on awkward random series stay finite, stationary and invertible */
static void test_random_series_admissible(void **state)
{
    (void)state;
    const char *specs[] = {"(1,0,1)+c", "(2,1,2)", "(0,1,1)(0,1,1)[4]", "(1,1,0)(1,0,1)[4]+c",
                           "(3,0,0)", "(0,2,2)"};
    unsigned seed = 777;
    double y[60];
    for (int trial = 0; trial < 6; trial++) {
        double level = 0.0;
        for (int t = 0; t < 60; t++) {
            seed = seed * 1103515245u + 12345u;
            double u = ((seed >> 8) & 0xffff) / 65536.0 - 0.5;
            level += (trial % 2) ? u : 0.0;
            y[t] = level + u + (trial == 4 ? 0.2 * t : 0.0) + (trial == 5 && t == 30 ? 40 : 0);
        }
        for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
            kalman_sarima_spec sp;
            kalman_error err;
            assert_int_equal(kalman_sarima_parse(specs[k], 0, &sp, &err), 0);
            kalman_model *mod = kalman_sarima_create(&sp, &err);
            kalman_fit_result res;
            int rc = kalman_sarima_fit(mod, y, 60, NULL, &res, &err);
            if (rc) {
                print_error("trial %d %s: %s\n", trial, specs[k], err.message);
                fail();
            }
            assert_true(isfinite(res.loglik));
            int i = sp.constant ? 1 : 0;
            double neg[8];
            assert_true(is_stationary(res.params + i, sp.p));
            i += sp.p;
            for (int j = 0; j < sp.q; j++)
                neg[j] = -res.params[i + j];
            assert_true(is_stationary(neg, sp.q));
            i += sp.q;
            assert_true(is_stationary(res.params + i, sp.P));
            i += sp.P;
            for (int j = 0; j < sp.Q; j++)
                neg[j] = -res.params[i + j];
            assert_true(is_stationary(neg, sp.Q));
            assert_true(res.params[mod->nparams - 1] > 0.0);
            kalman_model_free(mod);
        }
    }
}

static void test_transform_roundtrip(void **state)
{
    (void)state;
    kalman_sarima_spec sp = {.p = 3, .d = 1, .q = 2, .P = 2, .D = 0, .Q = 1, .s = 7,
                             .constant = 1};
    kalman_error err;
    kalman_model *mod = kalman_sarima_create(&sp, &err);
    assert_non_null(mod);
    assert_int_equal(mod->nparams, 1 + 3 + 2 + 2 + 1 + 1);
    assert_string_equal(mod->names[0], "intercept");
    assert_string_equal(mod->names[6], "ar.S.L7");
    assert_string_equal(mod->names[7], "ar.S.L14");
    assert_string_equal(mod->names[8], "ma.S.L7");
    assert_string_equal(mod->names[9], "sigma2");
    srand(7);
    for (int trial = 0; trial < 200; trial++) {
        double u[KALMAN_MAX_PARAMS], p[KALMAN_MAX_PARAMS], u2[KALMAN_MAX_PARAMS];
        for (int i = 0; i < mod->nparams; i++)
            u[i] = 6.0 * ((double)rand() / RAND_MAX - 0.5);
        mod->transform(mod->ctx, u, p);
        /* AR stationary, MA invertible (-theta stationary as an AR) */
        double neg[4];
        assert_true(is_stationary(p + 1, 3));
        neg[0] = -p[4];
        neg[1] = -p[5];
        assert_true(is_stationary(neg, 2));
        assert_true(is_stationary(p + 6, 2));
        neg[0] = -p[8];
        assert_true(is_stationary(neg, 1));
        assert_true(p[9] > 0);
        mod->untransform(mod->ctx, p, u2);
        for (int i = 0; i < mod->nparams; i++)
            assert_true(fabs(u2[i] - u[i]) < 1e-8 * fmax(1.0, fabs(u[i])));
    }
    kalman_model_free(mod);
}

/* ---- specs ---------------------------------------------------------------------------- */

static void test_parse(void **state)
{
    (void)state;
    kalman_sarima_spec sp;
    kalman_error err;
    char buf[128];
    assert_int_equal(kalman_sarima_parse("(0,1,1)(0,1,1)[12]", 0, &sp, &err), 0);
    assert_int_equal(sp.q, 1);
    assert_int_equal(sp.D, 1);
    assert_int_equal(sp.s, 12);
    kalman_sarima_format(&sp, buf, sizeof buf);
    assert_string_equal(buf, "sarima(0,1,1)(0,1,1)[12]");
    assert_int_equal(kalman_sarima_parse(" ( 2 , 0 , 1 ) +c", 0, &sp, &err), 0);
    assert_int_equal(sp.constant, 1);
    kalman_sarima_format(&sp, buf, sizeof buf);
    assert_string_equal(buf, "sarima(2,0,1)+c");
    assert_int_equal(kalman_sarima_parse("(1,1,0)(0,1,1)", 4, &sp, &err), 0);
    assert_int_equal(sp.s, 4);
    assert_int_equal(kalman_sarima_parse("(1,1,0),drift", 0, &sp, &err), 0);
    assert_int_equal(sp.constant, 1);

    assert_int_equal(kalman_sarima_parse("(1,1,0)(0,1,1)", 0, &sp, &err), KALMAN_EINVAL);
    assert_non_null(strstr(err.message, "season"));
    assert_int_equal(kalman_sarima_parse("(1,2,0),drift", 0, &sp, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_sarima_parse("(1,1)", 0, &sp, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_sarima_parse("(1,1,1)[12]", 0, &sp, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_sarima_parse("(1,1,1)+x", 0, &sp, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_sarima_parse("(-1,1,1)", 0, &sp, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_sarima_parse(NULL, 0, &sp, &err), KALMAN_EINVAL);

    kalman_sarima_spec bad = {.p = 1, .P = 1, .s = 1};
    assert_null(kalman_sarima_create(&bad, &err));
    assert_int_equal(err.code, KALMAN_EINVAL);
    kalman_sarima_spec huge = {.p = 0, .q = 0, .P = 1, .Q = 1, .D = 1, .s = 200};
    assert_null(kalman_sarima_create(&huge, &err));
    assert_null(kalman_sarima_create(NULL, &err));
}

/* ---- missing values, bad parameters --------------------------------------------------- */

static void test_missing(void **state)
{
    (void)state;
    sarima_case c;
    case_load(&c, CASES[0]);
    c.y[0] = NAN; /* inside the diffuse phase */
    c.y[20] = NAN;
    c.y[21] = NAN;
    c.y[100] = NAN;
    kalman_error err;
    kalman_model *mod = kalman_sarima_create(&c.spec, &err);
    kalman_fit_result res;
    assert_int_equal(kalman_sarima_fit(mod, c.y, c.n, NULL, &res, &err), 0);
    assert_true(isfinite(res.loglik));
    for (int i = 0; i < mod->nparams; i++)
        assert_true(isfinite(res.params[i]));
    assert_true(res.params[0] > -1.0 && res.params[0] < 1.0);
    double ll;
    assert_int_equal(kalman_sarima_loglik(mod, c.y, c.n, res.params, &ll, &err),
                     KALMAN_EUNSUPPORTED);
    assert_true(res.params[2] > 0.0);
    assert_int_equal(res.nobs, (long)c.n - 4);
    /* close to the complete-data fit */
    assert_true(fabs(res.params[0] - -0.40) < 0.1);
    assert_true(fabs(res.params[1] - -0.56) < 0.1);
    kalman_model_free(mod);
    free(c.y);
}

static void test_bad_params(void **state)
{
    (void)state;
    kalman_sarima_spec sp = {.p = 1, .d = 0, .q = 0};
    kalman_error err;
    kalman_model *mod = kalman_sarima_create(&sp, &err);
    kalman_ssm s;
    assert_int_equal(kalman_ssm_alloc(&s, mod->m, mod->r, &err), 0);
    kalman_workspace *ws = kalman_workspace_create(mod->m, mod->r, &err);
    double p[2] = {1.5, 1.0}; /* explosive AR */
    assert_int_not_equal(mod->build(mod->ctx, p, &s, ws, &err), 0);
    double q[2] = {0.5, -1.0}; /* negative variance */
    assert_int_equal(mod->build(mod->ctx, q, &s, ws, &err), KALMAN_EINVAL);
    double r[2] = {NAN, 1.0};
    assert_int_equal(mod->build(mod->ctx, r, &s, ws, &err), KALMAN_EINVAL);
    double ok[2] = {0.5, 2.0};
    assert_int_equal(mod->build(mod->ctx, ok, &s, ws, &err), 0);
    /* AR(1) stationary variance sigma2 / (1 - phi^2) */
    assert_true(fabs(s.P1star[0] - 2.0 / 0.75) < 1e-12);
    /* too short */
    double y[2] = {1.0, 2.0};
    kalman_fit_result res;
    assert_int_not_equal(kalman_fit(mod, y, 2, NULL, &res, &err), 0);
    kalman_workspace_free(ws);
    kalman_ssm_free(&s);
    kalman_model_free(mod);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_airline),     cmocka_unit_test(test_fixed_nile_arma),
        cmocka_unit_test(test_fixed_ukgas),       cmocka_unit_test(test_fixed_drift),
        cmocka_unit_test(test_mle_airline),       cmocka_unit_test(test_mle_others),
        cmocka_unit_test(test_transform_roundtrip), cmocka_unit_test(test_parse),
        cmocka_unit_test(test_missing),           cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_fast_equals_statespace),
        cmocka_unit_test(test_random_series_admissible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
