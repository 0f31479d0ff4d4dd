/*
 * tests/kalman/test_kalman_core.c — invariants of the filter machinery that the reference
 * comparisons do not reach: the stationary initialization on both paths (Kronecker LU for
 * up to 12 states, doubling beyond) including a state intercept and a mixed diffuse /
 * stationary state, the steady-state switch (same likelihood and state as the full
 * Riccati recursion), incremental filtering equal to one pass, forecasts from a diffuse
 * state refused, and bad input (dimensions, NaN/inf, non-stationary blocks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kalman.h"
#include "kalman_test_util.h"

/* deterministic pseudo-random numbers in [-1, 1) */
static double rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* A random stable system: T = 0.9 * (orthogonal-ish contraction) via a companion form of
 * an AR(k) with small coefficients, R = I_k (first r columns), Q diagonal. */
static void random_ar(kalman_ssm *s, int k, uint64_t seed)
{
    uint64_t st = seed;
    memset(s->T, 0, sizeof(double) * k * k);
    for (int j = 0; j < k; j++)
        s->T[j] = 0.6 * rnd(&st) / k;
    for (int i = 1; i < k; i++)
        s->T[i * k + i - 1] = 1.0;
    s->Z[0] = 1.0;
    for (int i = 0; i < s->r; i++) {
        s->R[i * s->r + i] = 1.0;
        s->Q[i * s->r + i] = 0.5 + 0.5 * fabs(rnd(&st));
    }
    for (int i = 0; i < k; i++)
        s->init[i] = KALMAN_INIT_STATIONARY;
    s->H = 0.3;
}

static void check_lyapunov(int k)
{
    kalman_error err = {0};
    kalman_ssm s;
    const int r = k < 2 ? k : 2;
    assert_int_equal(kalman_ssm_alloc(&s, k, r, &err), 0);
    random_ar(&s, k, 42 + k);
    s.c[0] = 0.7;
    kalman_workspace *ws = kalman_workspace_create(k, r, &err);
    assert_int_equal(kalman_ssm_initialize(&s, ws, &err), 0);
    /* residual of P = T P T' + R Q R' and a = c + T a */
    double maxres = 0, maxp = 0;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) {
            double tpt = 0;
            for (int a = 0; a < k; a++)
                for (int b = 0; b < k; b++)
                    tpt += s.T[i * k + a] * s.P1star[a * k + b] * s.T[j * k + b];
            double rqr = 0;
            for (int a = 0; a < r; a++)
                rqr += s.R[i * r + a] * s.Q[a * r + a] * s.R[j * r + a];
            maxres = fmax(maxres, fabs(s.P1star[i * k + j] - tpt - rqr));
            maxp = fmax(maxp, fabs(s.P1star[i * k + j]));
            assert_true(s.P1star[i * k + j] == s.P1star[j * k + i]);
            assert_true(s.P1inf[i * k + j] == 0.0);
        }
    assert_true(maxres <= 1e-12 * maxp);
    for (int i = 0; i < k; i++) {
        double ta = s.c[i];
        for (int j = 0; j < k; j++)
            ta += s.T[i * k + j] * s.a1[j];
        assert_true(fabs(ta - s.a1[i]) < 1e-12);
    }
    /* a unit root is refused */
    s.T[0] = 1.0;
    for (int j = 1; j < k; j++)
        s.T[j] = 0.0;
    assert_int_equal(kalman_ssm_initialize(&s, ws, &err), KALMAN_ENUMERIC);
    s.T[0] = 1.05;
    assert_int_equal(kalman_ssm_initialize(&s, ws, &err), KALMAN_ENUMERIC);
    assert_true(strlen(err.message) > 0);
    kalman_workspace_free(ws);
    kalman_ssm_free(&s);
}

static void test_lyapunov_small(void **state)
{
    (void)state;
    check_lyapunov(1);
    check_lyapunov(3);
    check_lyapunov(12);
}

static void test_lyapunov_doubling(void **state)
{
    (void)state;
    check_lyapunov(13);
    check_lyapunov(30);
}

/* local level + AR(1) in one state: level diffuse, AR stationary */
static void test_mixed_init_and_steady(void **state)
{
    (void)state;
    kalman_error err = {0};
    kalman_ssm s;
    assert_int_equal(kalman_ssm_alloc(&s, 2, 2, &err), 0);
    s.Z[0] = s.Z[1] = 1.0;
    s.T[0] = 1.0;
    s.T[3] = 0.6;
    s.R[0] = s.R[3] = 1.0;
    s.Q[0] = 0.2;
    s.Q[3] = 1.0;
    s.H = 0.5;
    s.init[0] = KALMAN_INIT_DIFFUSE;
    s.init[1] = KALMAN_INIT_STATIONARY;
    kalman_workspace *ws = kalman_workspace_create(2, 2, &err);
    assert_int_equal(kalman_ssm_initialize(&s, ws, &err), 0);
    assert_true(s.P1inf[0] == 1.0 && s.P1inf[3] == 0.0);
    assert_true(fabs(s.P1star[3] - 1.0 / (1 - 0.36)) < 1e-14);
    assert_true(s.P1star[0] == 0.0 && s.P1star[1] == 0.0);

    enum { N = 400 };
    static double y[N];
    uint64_t seed = 7;
    double lev = 3, ar = 0;
    for (int t = 0; t < N; t++) {
        lev += 0.45 * rnd(&seed);
        ar = 0.6 * ar + rnd(&seed);
        y[t] = lev + ar + 0.7 * rnd(&seed);
    }
    y[250] = NAN; /* leaves and re-enters the steady state */
    /* steady-state switch on (no store) */
    kalman_state a, b;
    assert_int_equal(kalman_state_alloc(&a, 2, &err), 0);
    assert_int_equal(kalman_state_alloc(&b, 2, &err), 0);
    kalman_state_start(&a, &s);
    kalman_loglik_acc acc_a = {0}, acc_b = {0};
    assert_int_equal(kalman_filter(&s, y, N, &a, &acc_a, NULL, ws, &err), 0);
    assert_true(a.steady);
    /* full recursion (a store with P disables the switch) */
    kalman_store store;
    assert_int_equal(kalman_store_alloc(&store, N, 2, &err), 0);
    kalman_state_start(&b, &s);
    assert_int_equal(kalman_filter(&s, y, N, &b, &acc_b, &store, ws, &err), 0);
    assert_false(b.steady);
    assert_true(fabs(acc_a.loglik - acc_b.loglik) < 1e-8 * fabs(acc_b.loglik));
    for (int i = 0; i < 2; i++)
        assert_true(fabs(a.a[i] - b.a[i]) < 1e-8 * (1 + fabs(b.a[i])));
    for (int i = 0; i < 4; i++)
        assert_true(fabs(a.P[i] - b.P[i]) < 1e-9 * (1 + fabs(b.P[i])));
    assert_int_equal(acc_a.nobs, N - 1);
    assert_int_equal(acc_a.nmissing, 1);
    assert_int_equal(acc_a.ndiffuse, 1);
    /* incremental filtering in uneven chunks is bit-identical to one pass */
    kalman_state c;
    assert_int_equal(kalman_state_alloc(&c, 2, &err), 0);
    kalman_state_start(&c, &s);
    kalman_loglik_acc acc_c = {0};
    size_t cuts[] = {0, 1, 2, 7, 100, 249, 251, 333, N};
    for (size_t k = 0; k + 1 < sizeof cuts / sizeof cuts[0]; k++)
        assert_int_equal(kalman_filter(&s, y + cuts[k], cuts[k + 1] - cuts[k], &c, &acc_c, NULL, ws, &err), 0);
    assert_true(acc_c.loglik == acc_a.loglik);
    assert_true(memcmp(c.a, a.a, 2 * sizeof(double)) == 0);
    assert_true(memcmp(c.P, a.P, 4 * sizeof(double)) == 0);
    assert_true(c.steady == a.steady && c.F == a.F && c.t == a.t);
    /* forecasts from the steady and the full state agree */
    double ma[5], va[5], mb[5], vb[5];
    assert_int_equal(kalman_forecast(&s, &a, 5, ma, va, ws, &err), 0);
    assert_int_equal(kalman_forecast(&s, &b, 5, mb, vb, ws, &err), 0);
    for (int i = 0; i < 5; i++) {
        assert_true(fabs(ma[i] - mb[i]) < 1e-8 * (1 + fabs(mb[i])));
        assert_true(fabs(va[i] - vb[i]) < 1e-9 * vb[i]);
        assert_true(i == 0 || vb[i] > vb[i - 1]);
    }
    /* concentrated likelihood: at sigma2-scaled variances it equals the plain one */
    double llc, s2;
    assert_int_equal(kalman_loglik(&s, y, N, 1, ws, &llc, &s2, NULL, &err), 0);
    kalman_ssm s2sys;
    assert_int_equal(kalman_ssm_alloc(&s2sys, 2, 2, &err), 0);
    kalman_ssm_copy(&s2sys, &s);
    s2sys.H *= s2;
    s2sys.Q[0] *= s2;
    s2sys.Q[3] *= s2;
    assert_int_equal(kalman_ssm_initialize(&s2sys, ws, &err), 0);
    double ll2;
    assert_int_equal(kalman_loglik(&s2sys, y, N, 0, ws, &ll2, NULL, NULL, &err), 0);
    assert_true(fabs(llc - ll2) < 1e-8 * fabs(ll2));
    kalman_ssm_free(&s2sys);

    kalman_store_free(&store);
    kalman_state_free(&a);
    kalman_state_free(&b);
    kalman_state_free(&c);
    kalman_workspace_free(ws);
    kalman_ssm_free(&s);
}

static void test_errors(void **state)
{
    (void)state;
    kalman_error err = {0};
    kalman_ssm s;
    assert_int_equal(kalman_ssm_alloc(&s, 0, 0, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_ssm_alloc(&s, 3, 4, &err), KALMAN_EINVAL);
    assert_null(kalman_workspace_create(KALMAN_MAX_STATES + 1, 1, &err));
    assert_int_equal(kalman_ssm_alloc(&s, 1, 1, &err), 0);
    s.Z[0] = s.T[0] = s.R[0] = 1;
    s.Q[0] = 1;
    s.H = 1;
    s.init[0] = KALMAN_INIT_DIFFUSE;
    kalman_workspace *ws = kalman_workspace_create(1, 1, &err);
    assert_int_equal(kalman_ssm_initialize(&s, ws, &err), 0);
    assert_int_equal(kalman_ssm_check(&s, &err), 0);
    kalman_state st;
    assert_int_equal(kalman_state_alloc(&st, 1, &err), 0);
    kalman_state_start(&st, &s);
    /* a forecast from a diffuse state is refused; all-missing data keeps it diffuse */
    double nan3[3] = {NAN, NAN, NAN}, mean[2], var[2];
    assert_int_equal(kalman_filter(&s, nan3, 3, &st, NULL, NULL, ws, &err), 0);
    assert_true(st.diffuse);
    assert_int_equal(kalman_forecast(&s, &st, 2, mean, var, ws, &err), KALMAN_EUNSUPPORTED);
    double one = 4.0;
    assert_int_equal(kalman_filter(&s, &one, 1, &st, NULL, NULL, ws, &err), 0);
    assert_false(st.diffuse);
    assert_int_equal(kalman_forecast(&s, &st, 2, mean, var, ws, &err), 0);
    assert_true(mean[0] == 4.0 && var[0] == 3.0 && var[1] == 4.0);
    /* infinite observations and NaN systems */
    double inf = INFINITY;
    assert_int_equal(kalman_filter(&s, &inf, 1, &st, NULL, NULL, ws, &err), KALMAN_EINVAL);
    s.Q[0] = NAN;
    assert_int_equal(kalman_ssm_check(&s, &err), KALMAN_EINVAL);
    double y4[4] = {1, 2, 3, 4}, ll;
    assert_int_not_equal(kalman_loglik(&s, y4, 4, 0, ws, &ll, NULL, NULL, &err), 0);
    s.Q[0] = 1;
    s.H = -1;
    assert_int_equal(kalman_ssm_check(&s, &err), KALMAN_EINVAL);
    /* state / workspace of the wrong size */
    kalman_ssm big;
    assert_int_equal(kalman_ssm_alloc(&big, 3, 1, &err), 0);
    assert_int_equal(kalman_filter(&big, y4, 4, &st, NULL, NULL, ws, &err), KALMAN_EINVAL);
    assert_int_equal(kalman_loglik(&big, y4, 4, 0, ws, &ll, NULL, NULL, &err), KALMAN_EINVAL);
    kalman_ssm_free(&big);
    kalman_state_free(&st);
    kalman_workspace_free(ws);
    kalman_ssm_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lyapunov_small),
        cmocka_unit_test(test_lyapunov_doubling),
        cmocka_unit_test(test_mixed_init_and_steady),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
