/*
 * tests/kalman/test_kalman_kfas.c — the filter and smoother against R's KFAS (the
 * reference outputs statsmodels ships; copied by tests/reference/kfas_fixtures.py).
 *
 * Models (as in statsmodels' test_exact_diffuse_filtering.py / test_smoothing.py):
 *  - local level, y = 10.2394, 1 x 9, H = 1.993, Q = 8.253, exact diffuse
 *  - local linear trend, y = 10.2394, 4.2039, 6.123123, 1 x 7, H = 1.993,
 *    Q = diag(8.253, 2.334), exact diffuse; and the same with y_2 missing
 *  - AR(3) (Hamilton form) with 11 missing observations, stationary initialization
 * Checked: predicted states and variances (KFAS stores sums of P / P_inf entries),
 * forecast errors and variances (F_star, F_inf), filtered states, smoothed states and
 * variances, smoothed disturbances and variances, and the log-likelihood (KFAS leaves out
 * -0.5 log 2 pi for each diffuse step with F_inf > 0; we add it back, as statsmodels'
 * tests do). Tolerance: 1e-6 relative (+ a tiny absolute floor for values that are 0).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kalman.h"
#include "kalman_test_util.h"

#define FIX SSMD_TEST_FIXTURES "/kalman/"
#define RTOL 1e-6
#define ATOL 1e-9

typedef struct run {
    kalman_ssm s;
    kalman_workspace *ws;
    kalman_state st;
    kalman_store store;
    kalman_loglik_acc acc;
    double *ahat, *V, *eps, *epsv, *eta, *etav;
} run;

static void run_model(run *R, const double *y, size_t n)
{
    kalman_error err = {0};
    int m = R->s.m, r = R->s.r;
    R->ws = kalman_workspace_create(m, r, &err);
    assert_non_null(R->ws);
    assert_int_equal(kalman_ssm_initialize(&R->s, R->ws, &err), 0);
    assert_int_equal(kalman_state_alloc(&R->st, m, &err), 0);
    kalman_state_start(&R->st, &R->s);
    assert_int_equal(kalman_store_alloc(&R->store, n, m, &err), 0);
    memset(&R->acc, 0, sizeof R->acc);
    assert_int_equal(kalman_filter(&R->s, y, n, &R->st, &R->acc, &R->store, R->ws, &err), 0);
    R->ahat = calloc(n * m, sizeof(double));
    R->V = calloc(n * m * m, sizeof(double));
    R->eps = calloc(n, sizeof(double));
    R->epsv = calloc(n, sizeof(double));
    R->eta = calloc(n * r, sizeof(double));
    R->etav = calloc(n * r * r, sizeof(double));
    kalman_smooth_out out = {R->ahat, R->V, R->eps, R->epsv, R->eta, R->etav};
    assert_int_equal(kalman_smooth(&R->s, y, &R->store, &out, R->ws, &err), 0);
}

static void run_free(run *R)
{
    free(R->ahat);
    free(R->V);
    free(R->eps);
    free(R->epsv);
    free(R->eta);
    free(R->etav);
    kalman_store_free(&R->store);
    kalman_state_free(&R->st);
    kalman_workspace_free(R->ws);
    kalman_ssm_free(&R->s);
}

static double sum_mat(const double *A, int m)
{
    double s = 0;
    for (int i = 0; i < m * m; i++)
        s += A[i];
    return s;
}

/* Compares the exact-diffuse KFAS outputs (local level / local linear trend). */
static void check_exact(const char *file, run *R, const double *y, size_t n)
{
    kt_table t;
    assert_int_equal(kt_read_csv(file, &t), 0);
    int m = R->s.m, r = R->s.r, ok = 1;
    char name[32];
    int ndiff_obs = 0;
    for (size_t i = 0; i < n; i++) {
        int k = (int)i;
        ok &= kt_close(R->store.v[i], kt_get(&t, k, "v_1"), RTOL, ATOL, "v", k);
        if (!isnan(y[i]))
            ok &= kt_close(R->store.F[i], kt_get(&t, k, "F_1"), RTOL, ATOL, "F", k);
        double finf = kt_get(&t, k, "Finf_1");
        ok &= kt_close(R->store.Finf[i], isnan(finf) ? 0.0 : finf, RTOL, ATOL, "Finf", k);
        if (!isnan(finf) && finf > 0 && !isnan(y[i]))
            ndiff_obs++;
        double zx = 0;
        for (int j = 0; j < m; j++)
            zx += R->s.Z[j] * R->store.a_pred[i * m + j];
        ok &= kt_close(zx, kt_get(&t, k, "m_1"), RTOL, ATOL, "m", k);
        for (int j = 0; j < m; j++) {
            snprintf(name, sizeof name, "att_%d", j + 1);
            ok &= kt_close(R->store.a_filt[i * m + j], kt_get(&t, k, name), RTOL, ATOL, name, k);
            snprintf(name, sizeof name, "alphahat_%d", j + 1);
            ok &= kt_close(R->ahat[i * m + j], kt_get(&t, k, name), RTOL, ATOL, name, k);
        }
        ok &= kt_close(sum_mat(R->V + i * m * m, m), kt_get(&t, k, "sumV"), RTOL, ATOL, "sumV", k);
        for (int j = 0; j < r; j++) {
            snprintf(name, sizeof name, "etahat_%d", j + 1);
            ok &= kt_close(R->eta[i * r + j], kt_get(&t, k, name), RTOL, ATOL, name, k);
        }
        ok &= kt_close(sum_mat(R->etav + i * r * r, r), kt_get(&t, k, "sumVeta"), RTOL, ATOL,
                       "sumVeta", k);
        ok &= kt_close(R->eps[i], kt_get(&t, k, "epshat_1"), RTOL, ATOL, "epshat", k);
        ok &= kt_close(R->epsv[i], kt_get(&t, k, "Veps_1"), RTOL, ATOL, "Veps", k);
    }
    for (size_t i = 0; i <= n; i++) {
        int k = (int)i;
        for (int j = 0; j < m; j++) {
            snprintf(name, sizeof name, "a_%d", j + 1);
            ok &= kt_close(R->store.a_pred[i * m + j], kt_get(&t, k, name), RTOL, ATOL, name, k);
        }
        ok &= kt_close(sum_mat(R->store.P_pred + i * m * m, m), kt_get(&t, k, "sumP"), RTOL, ATOL,
                       "sumP", k);
        double spinf = kt_get(&t, k, "sumPinf");
        ok &= kt_close(sum_mat(R->store.Pinf_pred + i * m * m, m), isnan(spinf) ? 0.0 : spinf,
                       RTOL, ATOL, "sumPinf", k);
    }
    double llf = kt_get(&t, 0, "llf") - 0.5 * log(2 * M_PI) * ndiff_obs;
    ok &= kt_close(R->acc.loglik, llf, RTOL, 0, "llf", 0);
    free(t.values);
    assert_true(ok);
}

static const double Y_LL[10] = {10.2394, 1, 1, 1, 1, 1, 1, 1, 1, 1};

static void test_local_level(void **state)
{
    (void)state;
    run R = {0};
    assert_int_equal(kalman_ssm_alloc(&R.s, 1, 1, NULL), 0);
    R.s.Z[0] = R.s.T[0] = R.s.R[0] = 1;
    R.s.Q[0] = 8.253;
    R.s.H = 1.993;
    R.s.init[0] = KALMAN_INIT_DIFFUSE;
    run_model(&R, Y_LL, 10);
    assert_int_equal(R.acc.ndiffuse, 1);
    check_exact(FIX "kfas_local_level.csv", &R, Y_LL, 10);
    run_free(&R);
}

static void setup_llt(run *R)
{
    assert_int_equal(kalman_ssm_alloc(&R->s, 2, 2, NULL), 0);
    R->s.Z[0] = 1;
    double T[4] = {1, 1, 0, 1};
    memcpy(R->s.T, T, sizeof T);
    R->s.R[0] = R->s.R[3] = 1;
    R->s.Q[0] = 8.253;
    R->s.Q[3] = 2.334;
    R->s.H = 1.993;
    R->s.init[0] = R->s.init[1] = KALMAN_INIT_DIFFUSE;
}

static void test_local_linear_trend(void **state)
{
    (void)state;
    double y[10] = {10.2394, 4.2039, 6.123123, 1, 1, 1, 1, 1, 1, 1};
    run R = {0};
    setup_llt(&R);
    run_model(&R, y, 10);
    assert_int_equal(R.acc.ndiffuse, 2);
    check_exact(FIX "kfas_local_linear_trend.csv", &R, y, 10);
    run_free(&R);
}

static void test_local_linear_trend_missing(void **state)
{
    (void)state;
    double y[10] = {10.2394, NAN, 6.123123, 1, 1, 1, 1, 1, 1, 1};
    run R = {0};
    setup_llt(&R);
    run_model(&R, y, 10);
    assert_int_equal(R.acc.ndiffuse, 3);
    assert_int_equal(R.acc.nmissing, 1);
    check_exact(FIX "kfas_local_linear_trend_missing.csv", &R, y, 10);
    run_free(&R);
}

static double det3(const double *A)
{
    return A[0] * (A[4] * A[8] - A[5] * A[7]) - A[1] * (A[3] * A[8] - A[5] * A[6]) +
           A[2] * (A[3] * A[7] - A[4] * A[6]);
}

static void test_ar3_missing(void **state)
{
    (void)state;
    static double y[200];
    double nn = 0;
    assert_int_equal(kt_read_key(FIX "kfas_smoothing3_data.txt", "n", &nn, 1), 1);
    size_t n = (size_t)nn;
    assert_int_equal(kt_read_key(FIX "kfas_smoothing3_data.txt", "y", y, 200), (int)n);
    run R = {0};
    assert_int_equal(kalman_ssm_alloc(&R.s, 3, 1, NULL), 0);
    double T[9] = {.5270715, .0952613, .2580355, 1, 0, 0, 0, 1, 0};
    memcpy(R.s.T, T, sizeof T);
    R.s.Z[0] = 1;
    R.s.R[0] = 1;
    R.s.Q[0] = .5307459;
    R.s.H = 0;
    for (int i = 0; i < 3; i++)
        R.s.init[i] = KALMAN_INIT_STATIONARY;
    run_model(&R, y, n);
    assert_int_equal(R.acc.ndiffuse, 0);

    kt_table t;
    assert_int_equal(kt_read_csv(FIX "kfas_smoothing3.csv", &t), 0);
    assert_int_equal(t.nrows, (int)n);
    int ok = 1;
    char name[32];
    static double att[3][200];
    for (int j = 0; j < 3; j++) {
        snprintf(name, sizeof name, "att_%d", j + 1);
        assert_int_equal(kt_read_key(FIX "kfas_smoothing3_statsmodels.txt", name, att[j], 200),
                         (int)n);
    }
    for (size_t i = 0; i < n; i++) {
        int k = (int)i;
        ok &= kt_close(R.store.v[i], kt_get(&t, k, "v"), RTOL, ATOL, "v", k);
        ok &= kt_close(R.store.a_pred[i * 3], kt_get(&t, k, "m"), RTOL, ATOL, "m", k);
        if (!isnan(y[i]))
            ok &= kt_close(R.store.F[i], kt_get(&t, k, "F"), RTOL, ATOL, "F", k);
        for (int j = 0; j < 3; j++) {
            /* this file's a / detP columns are a_{t+1}, P_{t+1} (m = Z a_t is 0 at t=1) */
            snprintf(name, sizeof name, "a%d", j + 1);
            ok &= kt_close(R.store.a_pred[(i + 1) * 3 + j], kt_get(&t, k, name), RTOL, ATOL, name, k);
            snprintf(name, sizeof name, "alphahat%d", j + 1);
            ok &= kt_close(R.ahat[i * 3 + j], kt_get(&t, k, name), RTOL, ATOL, name, k);
            ok &= kt_close(R.store.a_filt[i * 3 + j], att[j][i], RTOL, ATOL, "att", k);
        }
        /* determinants of (near-)singular 3x3 covariances: absolute floor */
        ok &= kt_close(det3(R.store.P_pred + (i + 1) * 9), kt_get(&t, k, "detP"), RTOL, 1e-12, "detP", k);
        ok &= kt_close(det3(R.V + i * 9), kt_get(&t, k, "detV"), RTOL, 1e-12, "detV", k);
        ok &= kt_close(R.eta[i], kt_get(&t, k, "etahat"), RTOL, ATOL, "etahat", k);
        ok &= kt_close(R.etav[i], kt_get(&t, k, "detVeta"), RTOL, ATOL, "detVeta", k);
        ok &= kt_close(R.eps[i], kt_get(&t, k, "epshat"), RTOL, ATOL, "epshat", k);
        ok &= kt_close(R.epsv[i], kt_get(&t, k, "Veps"), RTOL, ATOL, "Veps", k);
    }
    double llf = NAN;
    assert_int_equal(kt_read_key(FIX "kfas_smoothing3_statsmodels.txt", "llf", &llf, 1), 1);
    ok &= kt_close(R.acc.loglik, llf, RTOL, 0, "llf", 0);
    free(t.values);
    run_free(&R);
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_level),
        cmocka_unit_test(test_local_linear_trend),
        cmocka_unit_test(test_local_linear_trend_missing),
        cmocka_unit_test(test_ar3_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
