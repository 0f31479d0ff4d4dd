/*
 * tests/kalman/test_kalman_mle.c — structural models fitted by maximum likelihood against
 * statsmodels' UnobservedComponents with exact diffuse initialization (fixtures written by
 * tests/reference/structural_statsmodels.py).
 *
 *  - Nile local level: sigma2.irregular 15098.5, sigma2.level 1469.18 (0.1%), loglik
 *    -633.4646 (1e-3), AIC/AICc/BIC with statsmodels' conventions
 *  - Nile and log(AirPassengers) local linear trend, log(AirPassengers) BSM: our loglik
 *    at least statsmodels' - 1e-6, parameters close
 *  - at statsmodels' parameters: final state a_{n+1}, P_{n+1} and 12-step forecasts
 *    (mean, variance) to 1e-6 relative
 *  - the analytic score (kalman_model_score) against central differences of the
 *    log-likelihood, with missing values in and after the diffuse phase
 *  - the BSM on the first k = 120..144 points of AirPassengers, raw and logged (the windows
 *    a backtest trains on; the raw series has two optima, level-driven and slope-driven):
 *    our loglik at least the better of statsmodels' default fit and its best of several
 *    starts - 1e-6, and our likelihood at statsmodels' best parameters equal to its own to
 *    1e-6 (tests/reference/structural_truncations.py)
 *  - bad input: NaN starting values, too-short series, infinite observations
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kalman.h"
#include "kalman_test_util.h"

#define FIX SSMD_TEST_FIXTURES "/kalman/"

static kalman_model *make(const char *name, int season)
{
    kalman_structural_spec sp;
    kalman_error err = {0};
    assert_int_equal(kalman_structural_named(name, season, &sp, &err), 0);
    kalman_model *mod = kalman_structural_create(&sp, &err);
    assert_non_null(mod);
    return mod;
}

/* Checks filter + forecasts at statsmodels' parameters. */
static void check_at_reference_opt(const kalman_model *mod, const double *y, size_t n,
                                   const char *fix, int compare_state)
{
    double p[KALMAN_MAX_PARAMS] = {0}, a_end[64] = {0}, P_end[4096] = {0}, fm[12] = {0}, fv[12] = {0};
    assert_int_equal(kt_read_key(fix, "params", p, KALMAN_MAX_PARAMS), mod->nparams);
    int m = mod->m;
    if (compare_state) {
        assert_int_equal(kt_read_key(fix, "a_end", a_end, 64), m);
        assert_int_equal(kt_read_key(fix, "P_end", P_end, 4096), m * m);
    }
    assert_int_equal(kt_read_key(fix, "fc_mean", fm, 12), 12);
    assert_int_equal(kt_read_key(fix, "fc_var", fv, 12), 12);
    kalman_error err = {0};
    kalman_ssm s;
    assert_int_equal(kalman_ssm_alloc(&s, m, mod->r, &err), 0);
    kalman_workspace *ws = kalman_workspace_create(m, mod->r, &err);
    assert_non_null(ws);
    assert_int_equal(mod->build(mod->ctx, p, &s, ws, &err), 0);
    kalman_state st;
    assert_int_equal(kalman_state_alloc(&st, m, &err), 0);
    kalman_state_start(&st, &s);
    kalman_loglik_acc acc = {0};
    assert_int_equal(kalman_filter(&s, y, n, &st, &acc, NULL, ws, &err), 0);
    double llf = NAN;
    assert_int_equal(kt_read_key(fix, "llf", &llf, 1), 1);
    int ok = kt_close(acc.loglik, llf, 1e-8, 0, "llf", 0);
    double scale = 0;
    for (int i = 0; compare_state && i < m * m; i++)
        scale = fmax(scale, fabs(P_end[i]));
    for (int i = 0; compare_state && i < m; i++)
        ok &= kt_close(st.a[i], a_end[i], 1e-6, 1e-9, "a_end", i);
    for (int i = 0; compare_state && i < m * m; i++)
        ok &= kt_close(st.P[i], P_end[i], 1e-6, 1e-9 * scale, "P_end", i);
    double mean[12], var[12];
    assert_int_equal(kalman_forecast(&s, &st, 12, mean, var, ws, &err), 0);
    for (int i = 0; i < 12; i++) {
        ok &= kt_close(mean[i], fm[i], 1e-6, 0, "fc_mean", i);
        ok &= kt_close(var[i], fv[i], 1e-6, 0, "fc_var", i);
    }
    kalman_state_free(&st);
    kalman_workspace_free(ws);
    kalman_ssm_free(&s);
    assert_true(ok);
}

static void check_at_reference(const kalman_model *mod, const double *y, size_t n, const char *fix)
{
    check_at_reference_opt(mod, y, n, fix, 1);
}

/* Fits and compares with the statsmodels fixture. Returns the fit. */
static kalman_fit_result fit_and_compare(const kalman_model *mod, const double *y, size_t n,
                                         const char *fix, double param_rtol)
{
    kalman_fit_result res;
    kalman_error err = {0};
    int rc = kalman_fit(mod, y, n, NULL, &res, &err);
    if (rc)
        fprintf(stderr, "fit failed: %s\n", err.message);
    assert_int_equal(rc, 0);
    double p[KALMAN_MAX_PARAMS], llf = NAN, aic = NAN, aicc = NAN, bic = NAN, df = NAN, nobs = NAN;
    assert_int_equal(kt_read_key(fix, "params", p, KALMAN_MAX_PARAMS), mod->nparams);
    kt_read_key(fix, "llf", &llf, 1);
    kt_read_key(fix, "aic", &aic, 1);
    kt_read_key(fix, "aicc", &aicc, 1);
    kt_read_key(fix, "bic", &bic, 1);
    kt_read_key(fix, "df_model", &df, 1);
    kt_read_key(fix, "nobs", &nobs, 1);
    fprintf(stderr, "%s: loglik %.6f (statsmodels %.6f) iterations %d converged %d\n", mod->spec,
            res.loglik, llf, res.iterations, res.converged);
    double pmax = 0;
    for (int i = 0; i < mod->nparams; i++)
        pmax = fmax(pmax, fabs(p[i]));
    for (int i = 0; i < mod->nparams; i++) {
        fprintf(stderr, "  %-20s %.8g (statsmodels %.8g)\n", mod->names[i], res.params[i], p[i]);
        assert_true(isfinite(res.params[i]));
        assert_true(res.params[i] >= 0);
        /* parameters at (numerically) zero in both fits compare on the scale of the largest */
        assert_true(fabs(res.params[i] - p[i]) <= param_rtol * fmax(fabs(p[i]), 1e-3 * pmax));
    }
    assert_true(res.loglik >= llf - 1e-6);
    assert_int_equal(res.nfree, (long)df);
    assert_int_equal(res.nobs_eff, (long)nobs);
    /* criteria: statsmodels' formulas at our loglik */
    double k = df, ne = nobs;
    assert_true(kt_close(res.aic, -2 * res.loglik + 2 * k, 1e-12, 0, "aic", 0));
    assert_true(kt_close(res.bic, -2 * res.loglik + k * log(ne), 1e-12, 0, "bic", 0));
    assert_true(kt_close(res.aicc, -2 * res.loglik + 2 * k * ne / (ne - k - 1), 1e-12, 0, "aicc", 0));
    /* and equal to statsmodels' own figures up to the loglik difference */
    assert_true(fabs(res.aic - aic) <= 2 * fabs(res.loglik - llf) + 1e-6);
    assert_true(fabs(res.aicc - aicc) <= 2 * fabs(res.loglik - llf) + 1e-6);
    assert_true(fabs(res.bic - bic) <= 2 * fabs(res.loglik - llf) + 1e-6);
    return res;
}

static void test_nile_local_level(void **state)
{
    (void)state;
    size_t n;
    double *y = kt_load_series("Nile.csv", 0, &n);
    assert_int_equal(n, 100);
    kalman_model *mod = make("local_level", 0);
    assert_string_equal(mod->names[0], "sigma2.irregular");
    assert_string_equal(mod->names[1], "sigma2.level");
    kalman_fit_result res = fit_and_compare(mod, y, n, FIX "structural_nile_llevel.txt", 1e-3);
    assert_true(fabs(res.params[0] / 15098.5 - 1) < 1e-3);
    assert_true(fabs(res.params[1] / 1469.18 - 1) < 1e-3);
    assert_true(fabs(res.loglik - -633.4646) < 1e-3);
    assert_true(res.converged);
    assert_int_equal(res.ndiffuse, 1);
    check_at_reference(mod, y, n, FIX "structural_nile_llevel.txt");
    /* holding sigma2.level at its optimum gives the same sigma2.irregular; k drops by 1 */
    mod->fixed[1] = 1;
    mod->fixed_value[1] = res.params[1];
    kalman_fit_result r2;
    kalman_error err = {0};
    assert_int_equal(kalman_fit(mod, y, n, NULL, &r2, &err), 0);
    assert_true(r2.params[1] == res.params[1]);
    assert_true(fabs(r2.params[0] / res.params[0] - 1) < 1e-4);
    assert_true(fabs(r2.loglik - res.loglik) < 1e-6);
    assert_int_equal(r2.nfree, res.nfree - 1);
    kalman_model_free(mod);
    free(y);
}

/* Structural model `name` (season; state dimension m) on data file `data` (logged when
 * asked) against statsmodels' fixture `fix`: the MLE (parameters to param_rtol) and the
 * filter and forecasts at statsmodels' parameters. */
static void check_structural(const char *data, int logged, const char *name, int season, int m,
                             const char *fix, double param_rtol)
{
    size_t n;
    double *y = kt_load_series(data, logged, &n);
    kalman_model *mod = make(name, season);
    assert_int_equal(mod->m, m);
    fit_and_compare(mod, y, n, fix, param_rtol);
    check_at_reference(mod, y, n, fix);
    kalman_model_free(mod);
    free(y);
}

static void test_nile_local_linear_trend(void **state)
{
    (void)state;
    check_structural("Nile.csv", 0, "local_linear_trend", 0, 2, FIX "structural_nile_lltrend.txt",
                     1e-2);
}

static void test_air_local_linear_trend(void **state)
{
    (void)state;
    check_structural("AirPassengers.csv", 1, "local_linear_trend", 0, 2,
                     FIX "structural_air_lltrend.txt", 1e-2);
}

static void test_air_bsm(void **state)
{
    (void)state;
    check_structural("AirPassengers.csv", 1, "bsm", 12, 13, FIX "structural_air_bsm.txt", 2e-2);
}

/* numeric d loglik / d p_i by central differences through build + kalman_loglik */
static double numeric_dll(const kalman_model *mod, const double *p, const double *y, size_t n,
                          int i)
{
    kalman_error err = {0};
    kalman_ssm s;
    assert_int_equal(kalman_ssm_alloc(&s, mod->m, mod->r, &err), 0);
    kalman_workspace *ws = kalman_workspace_create(mod->m, mod->r, &err);
    double q[KALMAN_MAX_PARAMS], lp, lm;
    memcpy(q, p, (size_t)mod->nparams * sizeof(double));
    double h = 1e-5 * fabs(p[i]);
    q[i] = p[i] + h;
    assert_int_equal(mod->build(mod->ctx, q, &s, ws, &err), 0);
    assert_int_equal(kalman_loglik(&s, y, n, 0, ws, &lp, NULL, NULL, &err), 0);
    q[i] = p[i] - h;
    assert_int_equal(mod->build(mod->ctx, q, &s, ws, &err), 0);
    assert_int_equal(kalman_loglik(&s, y, n, 0, ws, &lm, NULL, NULL, &err), 0);
    kalman_workspace_free(ws);
    kalman_ssm_free(&s);
    return (lp - lm) / (2 * h);
}

static void check_score(const kalman_model *mod, const double *p, const double *y, size_t n)
{
    double g[KALMAN_MAX_PARAMS], ll;
    kalman_error err = {0};
    assert_int_equal(kalman_model_score(mod, p, y, n, &ll, g, &err), 0);
    assert_true(isfinite(ll));
    for (int i = 0; i < mod->nparams; i++) {
        double num = numeric_dll(mod, p, y, n, i);
        /* scale: the derivative times the parameter (a change of the log-parameter) */
        double scale = fmax(fabs(num * p[i]), 1e-3);
        if (fabs((g[i] - num) * p[i]) > 1e-5 * scale + 1e-7) {
            fprintf(stderr, "%s %s: analytic %.10g numeric %.10g\n", mod->spec, mod->names[i], g[i], num);
            fail();
        }
    }
}

/* Trigonometric seasonal, 6 harmonics of period 12: statsmodels keeps the never-observed
 * sine state of the harmonic at pi (14 states, df_model 18), we drop it (13 states): same
 * likelihood and forecasts, information criteria with one diffuse state less. */
static void test_air_trig(void **state)
{
    (void)state;
    size_t n;
    double *y = kt_load_series("AirPassengers.csv", 1, &n);
    kalman_structural_spec sp = {0};
    sp.level = sp.stochastic_level = sp.trend = sp.stochastic_trend = sp.irregular = 1;
    sp.seasonal = 12;
    sp.harmonics = 6;
    sp.stochastic_seasonal = 1;
    kalman_error err = {0};
    kalman_model *mod = kalman_structural_create(&sp, &err);
    assert_non_null(mod);
    assert_int_equal(mod->m, 13);
    assert_string_equal(mod->names[3], "sigma2.freq_seasonal_12(6)");
    const char *fix = FIX "structural_air_trig.txt";
    kalman_fit_result res;
    assert_int_equal(kalman_fit(mod, y, n, NULL, &res, &err), 0);
    double llf = NAN, p[4] = {NAN, NAN, NAN, NAN};
    kt_read_key(fix, "llf", &llf, 1);
    kt_read_key(fix, "params", p, 4);
    fprintf(stderr, "%s: loglik %.6f (statsmodels %.6f)\n", mod->spec, res.loglik, llf);
    assert_true(res.loglik >= llf - 1e-6);
    for (int i = 0; i < 4; i++)
        assert_true(fabs(res.params[i] - p[i]) <= 2e-2 * fmax(p[i], 1e-3 * p[1]));
    assert_int_equal(res.nfree, 4 + 13);
    check_at_reference_opt(mod, y, n, fix, 0);
    kalman_model_free(mod);
    free(y);
}

/* Filter + smoother of the 13-state BSM with missing values (one inside the diffuse
 * phase) at fixed parameters against statsmodels: predicted and smoothed states, smoothed
 * state variances (diagonal), smoothed disturbances and variances, log-likelihood. */
static void test_air_bsm_smoother(void **state)
{
    (void)state;
    size_t n;
    double *y = kt_load_series("AirPassengers.csv", 1, &n);
    const char *fix = FIX "structural_air_bsm_smooth.txt";
    double miss[8] = {0}, p[4] = {0}, llf = NAN, nd = NAN;
    int nm = kt_read_key(fix, "missing", miss, 8);
    assert_int_equal(nm, 4);
    for (int i = 0; i < nm; i++)
        y[(size_t)miss[i]] = NAN;
    assert_int_equal(kt_read_key(fix, "params", p, 4), 4);
    kt_read_key(fix, "llf", &llf, 1);
    kt_read_key(fix, "nobs_diffuse", &nd, 1);
    kalman_model *mod = make("bsm", 12);
    const int m = mod->m, r = mod->r;
    kalman_error err = {0};
    kalman_ssm s;
    assert_int_equal(kalman_ssm_alloc(&s, m, r, &err), 0);
    kalman_workspace *ws = kalman_workspace_create(m, r, &err);
    assert_int_equal(mod->build(mod->ctx, p, &s, ws, &err), 0);
    kalman_state st;
    assert_int_equal(kalman_state_alloc(&st, m, &err), 0);
    kalman_state_start(&st, &s);
    kalman_store store;
    assert_int_equal(kalman_store_alloc(&store, n, m, &err), 0);
    kalman_loglik_acc acc = {0};
    assert_int_equal(kalman_filter(&s, y, n, &st, &acc, &store, ws, &err), 0);
    double *ahat = calloc(n * m, sizeof(double)), *V = calloc(n * m * m, sizeof(double));
    double *eps = calloc(n, sizeof(double)), *epsv = calloc(n, sizeof(double));
    double *eta = calloc(n * r, sizeof(double)), *etav = calloc(n * r * r, sizeof(double));
    kalman_smooth_out out = {ahat, V, eps, epsv, eta, etav};
    assert_int_equal(kalman_smooth(&s, y, &store, &out, ws, &err), 0);
    size_t cap = n * m;
    double *ref = calloc(cap, sizeof(double));
    int ok = kt_close(acc.loglik, llf, 1e-9, 0, "llf", 0);
    fprintf(stderr, "bsm smoother: ndiffuse %ld (statsmodels %g)\n", acc.ndiffuse, nd);
    assert_int_equal(kt_read_key(fix, "a_pred", ref, (int)cap), (int)cap);
    for (size_t i = 0; i < cap; i++)
        ok &= kt_close(store.a_pred[i], ref[i], 1e-6, 1e-9, "a_pred", (int)i);
    assert_int_equal(kt_read_key(fix, "ahat", ref, (int)cap), (int)cap);
    for (size_t i = 0; i < cap; i++)
        ok &= kt_close(ahat[i], ref[i], 1e-6, 1e-9, "ahat", (int)i);
    assert_int_equal(kt_read_key(fix, "Vdiag", ref, (int)cap), (int)cap);
    for (size_t t = 0; t < n; t++)
        for (int j = 0; j < m; j++)
            ok &= kt_close(V[(t * m + j) * m + j], ref[t * m + j], 1e-6, 1e-12, "Vdiag", (int)(t * m + j));
    assert_int_equal(kt_read_key(fix, "eps_hat", ref, (int)n), (int)n);
    for (size_t t = 0; t < n; t++)
        ok &= kt_close(eps[t], ref[t], 1e-6, 1e-12, "eps_hat", (int)t);
    assert_int_equal(kt_read_key(fix, "eps_var", ref, (int)n), (int)n);
    for (size_t t = 0; t < n; t++)
        ok &= kt_close(epsv[t], ref[t], 1e-6, 1e-12, "eps_var", (int)t);
    assert_int_equal(kt_read_key(fix, "eta_hat", ref, (int)(n * r)), (int)(n * r));
    for (size_t i = 0; i < n * (size_t)r; i++)
        ok &= kt_close(eta[i], ref[i], 1e-6, 1e-12, "eta_hat", (int)i);
    assert_int_equal(kt_read_key(fix, "eta_vardiag", ref, (int)(n * r)), (int)(n * r));
    for (size_t t = 0; t < n; t++)
        for (int j = 0; j < r; j++)
            ok &= kt_close(etav[(t * r + j) * r + j], ref[t * r + j], 1e-6, 1e-12, "eta_var", (int)(t * r + j));
    free(ref);
    free(ahat);
    free(V);
    free(eps);
    free(epsv);
    free(eta);
    free(etav);
    kalman_store_free(&store);
    kalman_state_free(&st);
    kalman_workspace_free(ws);
    kalman_ssm_free(&s);
    kalman_model_free(mod);
    free(y);
    assert_true(ok);
}

static void test_score(void **state)
{
    (void)state;
    size_t n;
    double *y = kt_load_series("Nile.csv", 0, &n);
    y[1] = NAN; /* missing in the diffuse phase of the local linear trend */
    y[40] = y[41] = NAN;
    kalman_model *mod = make("local_level", 0);
    double p1[2] = {12000, 2000};
    check_score(mod, p1, y, n);
    kalman_model_free(mod);
    mod = make("local_linear_trend", 0);
    double p2[3] = {14000, 1500, 30};
    check_score(mod, p2, y, n);
    kalman_model_free(mod);
    free(y);
    double *a = kt_load_series("AirPassengers.csv", 1, &n);
    a[5] = NAN;
    mod = make("bsm", 12);
    double p3[4] = {2e-4, 8e-4, 1e-5, 7e-5};
    check_score(mod, p3, a, n);
    kalman_model_free(mod);
    /* mixed: cycle frequency and damping by differences, variances analytic */
    kalman_structural_spec sp = {0};
    sp.level = sp.stochastic_level = sp.irregular = 1;
    sp.cycle = sp.stochastic_cycle = sp.damped_cycle = 1;
    kalman_error err = {0};
    mod = kalman_structural_create(&sp, &err);
    assert_non_null(mod);
    double p4[5] = {1e-4, 5e-3, 2e-4, 0.3, 0.8};
    check_score(mod, p4, a, n);
    kalman_model_free(mod);
    free(a);
}

static void test_air_bsm_truncations(void **state)
{
    (void)state;
    size_t n = 0;
    double *raw = kt_load_series("AirPassengers.csv", 0, &n);
    assert_int_equal(n, 144);
    double *logy = malloc(144 * sizeof(double)); /* n is 144, asserted above */
    assert_non_null(logy);
    for (size_t i = 0; i < n; i++)
        logy[i] = log(raw[i]);
    kalman_model *mod = make("bsm", 12);
    kalman_ssm s;
    kalman_error err = {0};
    assert_int_equal(kalman_ssm_alloc(&s, mod->m, mod->r, &err), 0);
    kalman_workspace *ws = kalman_workspace_create(mod->m, mod->r, &err);
    assert_non_null(ws);
    FILE *f = fopen(FIX "structural_air_bsm_truncations.txt", "r");
    assert_non_null(f);
    char line[1024];
    int windows = 0;
    while (fgets(line, sizeof line, f)) {
        char scale[8];
        int k;
        double lld, llb, p[4];
        if (line[0] == '#' || sscanf(line, "%7s %d %lf %lf %lf %lf %lf %lf", scale, &k, &lld, &llb,
                                     &p[0], &p[1], &p[2], &p[3]) != 8)
            continue;
        assert_true(k >= 120 && k <= 144);
        const double *y = strcmp(scale, "raw") ? logy : raw;
        /* the same likelihood function: ours at statsmodels' best parameters */
        double ll_at;
        assert_int_equal(mod->build(mod->ctx, p, &s, ws, &err), 0);
        assert_int_equal(kalman_loglik(&s, y, (size_t)k, 0, ws, &ll_at, NULL, NULL, &err), 0);
        assert_true(fabs(ll_at - llb) < 1e-6);
        kalman_fit_result res;
        assert_int_equal(kalman_fit(mod, y, (size_t)k, NULL, &res, &err), 0);
        if (res.loglik < fmax(lld, llb) - 1e-6)
            print_error("%s k=%d: loglik %.9f below statsmodels' %.9f\n", scale, k, res.loglik,
                        fmax(lld, llb));
        assert_true(res.loglik >= fmax(lld, llb) - 1e-6);
        windows++;
    }
    fclose(f);
    assert_int_equal(windows, 50);
    kalman_workspace_free(ws);
    kalman_ssm_free(&s);
    kalman_model_free(mod);
    free(logy);
    free(raw);
}

static void test_bad_input(void **state)
{
    (void)state;
    kalman_model *mod = make("local_level", 0);
    kalman_fit_result res;
    kalman_error err = {0};
    double y3[3] = {1, 2, 3};
    assert_int_equal(kalman_fit(mod, y3, 3, NULL, &res, &err), KALMAN_ETOOSHORT);
    assert_true(strlen(err.message) > 0);
    double yinf[6] = {1, 2, INFINITY, 3, 4, 5};
    assert_int_equal(kalman_fit(mod, yinf, 6, NULL, &res, &err), KALMAN_EINVAL);
    double start[2] = {NAN, 1};
    double y8[8] = {1, 3, 2, 5, 4, 6, 5, 7};
    kalman_fit_opts o = {.start = start};
    assert_int_equal(kalman_fit(mod, y8, 8, &o, &res, &err), KALMAN_EINVAL);
    double allnan[8] = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    assert_int_not_equal(kalman_fit(mod, allnan, 8, NULL, &res, &err), 0);
    /* missing values in the middle are fine */
    double ymiss[12] = {1, 3, NAN, 5, 4, 6, NAN, 7, 6, 8, 7, 9};
    assert_int_equal(kalman_fit(mod, ymiss, 12, NULL, &res, &err), 0);
    assert_int_equal(res.nobs, 10);
    for (int i = 0; i < res.nparams; i++)
        assert_true(isfinite(res.params[i]) && res.params[i] >= 0);
    assert_true(isfinite(res.loglik));
    /* a constant series: the optimizer must still return admissible numbers or an error */
    double yc[20];
    for (int i = 0; i < 20; i++)
        yc[i] = 5.0;
    int rc = kalman_fit(mod, yc, 20, NULL, &res, &err);
    if (rc == 0) {
        for (int i = 0; i < res.nparams; i++)
            assert_true(isfinite(res.params[i]) && res.params[i] >= 0);
        assert_true(isfinite(res.loglik));
    }
    kalman_model_free(mod);
    /* bad specs */
    kalman_structural_spec sp;
    assert_int_equal(kalman_structural_named("bsm", 1, &sp, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_structural_named("nope", 12, &sp, &err), KALMAN_EINVAL);
    memset(&sp, 0, sizeof sp);
    sp.trend = 1;
    assert_null(kalman_structural_create(&sp, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nile_local_level),
        cmocka_unit_test(test_nile_local_linear_trend),
        cmocka_unit_test(test_air_local_linear_trend),
        cmocka_unit_test(test_air_bsm),
        cmocka_unit_test(test_air_trig),
        cmocka_unit_test(test_air_bsm_smoother),
        cmocka_unit_test(test_score),
        cmocka_unit_test(test_air_bsm_truncations),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
