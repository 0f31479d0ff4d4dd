/*
 * tests/neural/test_neural_data.c — the neural models (through the models/ adapter, as the
 * daemon uses them) on the shared real data sets in tests/data.
 *
 * Quick mode (default, part of the normal suite): small `mamba` and `s4d` networks trained
 * for a few dozen steps on AirPassengers and Nile must lower their validation loss, and
 * the adapter's contracts hold (update, forecast beyond the trained horizon, save/load
 * giving identical forecasts, NaN in the input accepted, bad specs refused).
 *
 * Slow mode (argument "slow", ctest label `slow`): the default bare `mamba` and `s4d` are
 * trained on the first part of each of Nile, AirPassengers, UKgas and taylor; then, from
 * several held-out origins (update() adds the actuals, no refit), the forecasts are scored
 * by MASE against the seasonal naive forecast from the same origins. Mamba must beat
 * seasonal naive on every data set (S4D's figures are printed, not required), and the
 * bare model must train on taylor (4032 points) in under two minutes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

#include <cmocka.h>

#include <unistd.h>

#include "model.h"
#include "neural_ssm.h"

static int slow_mode;

/* ---- reading tests/data/<name>.csv (ts,value; ISO dates or UTC timestamps) ---------------- */

static int64_t parse_ts(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int Y, M, D, h = 0, mi = 0, sec = 0;
    if (sscanf(s, "%d-%d-%d", &Y, &M, &D) != 3)
        return INT64_MIN;
    const char *t = strchr(s, 'T');
    if (t)
        sscanf(t + 1, "%d:%d:%d", &h, &mi, &sec);
    tm.tm_year = Y - 1900, tm.tm_mon = M - 1, tm.tm_mday = D;
    tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = sec;
    return (int64_t)timegm(&tm);
}

static void load_series(const char *name, ssm_series *out)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.csv", SSMD_TEST_DATA, name);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[256];
    size_t n = 0, cap = 1024;
    int64_t *ts = malloc(sizeof(int64_t) * cap);
    double *v = malloc(sizeof(double) * cap);
    assert_non_null(fgets(line, sizeof line, fp)); /* header */
    while (fgets(line, sizeof line, fp)) {
        char *comma = strchr(line, ',');
        if (!comma)
            continue;
        *comma = '\0';
        if (n == cap) {
            cap *= 2;
            ts = realloc(ts, sizeof(int64_t) * cap);
            v = realloc(v, sizeof(double) * cap);
        }
        ts[n] = parse_ts(line);
        v[n] = strtod(comma + 1, NULL);
        n++;
    }
    fclose(fp);
    ssm_freq f;
    ssm_error err;
    assert_int_equal(ssm_freq_infer(ts, n, &f, &err), SSM_OK);
    assert_int_equal(ssm_series_from_points(name, f, ts, v, n, out, &err), SSM_OK);
    free(ts);
    free(v);
}

/* ---- quick checks ------------------------------------------------------------------------------ */

static ssm_model *fit_or_fail(const char *spec, const ssm_series *y, int max_seconds)
{
    const char *seed = getenv("NSSM_SEED"); /* slow mode: try another seed */
    ssm_model_opts o = {.threads = 2, .seed = seed ? strtoull(seed, NULL, 10) : 7,
                        .max_seconds = max_seconds};
    ssm_error err;
    ssm_model *m = ssm_model_create(spec, &o, &err);
    if (!m)
        fail_msg("create %s: %s", spec, err.message);
    if (ssm_model_fit(m, y, &err) != SSM_OK)
        fail_msg("fit %s on %s: %s (%s)", spec, y->name, err.message, err.detail);
    return m;
}

static void test_quick_training(void **state)
{
    (void)state;
    const char *specs[2] = {"mamba(d_model=16,layers=1,state=8,steps=40,batch=16)",
                            "s4d(d_model=16,layers=1,state=8,steps=40,batch=16)"};
    const char *sets[2] = {"AirPassengers", "Nile"};
    for (int s = 0; s < 2; s++) {
        ssm_series y;
        load_series(sets[s], &y);
        for (int k = 0; k < 2; k++) {
            ssm_model *m = fit_or_fail(specs[k], &y, 60);
            ssm_fit_info info;
            ssm_model_info(m, &info);
            double first = NAN, best = NAN;
            for (size_t i = 0; i < info.nparams; i++) {
                if (strcmp(info.params[i].name, "first_val_loss") == 0)
                    first = info.params[i].value;
                if (strcmp(info.params[i].name, "val_loss") == 0)
                    best = info.params[i].value;
            }
            printf("# %-50s %-14s validation pinball %.4f -> %.4f\n", specs[k], sets[s], first,
                   best);
            assert_true(best < first);
            ssm_model_free(m);
        }
        ssm_series_free(&y);
    }
}

static void test_adapter_contracts(void **state)
{
    (void)state;
    ssm_series y;
    load_series("AirPassengers", &y);
    y.values[50] = NAN; /* missing observations are accepted */
    y.values[51] = NAN;
    ssm_error err;
    ssm_model *m = fit_or_fail("mamba(d_model=8,layers=1,state=4,steps=5,horizon=6)", &y, 30);
    /* forecast beyond the trained horizon (6): recursive */
    double levels[3] = {0.1, 0.5, 0.99};
    ssm_forecast f;
    assert_int_equal(ssm_forecast_init(&f, 15, levels, 3, &err), SSM_OK);
    assert_int_equal(ssm_model_forecast(m, &f, &err), SSM_OK);
    for (size_t h = 0; h < 15; h++) {
        assert_true(isfinite(f.mean[h]) && f.sd[h] > 0);
        assert_true(f.q[h * 3] <= f.q[h * 3 + 1] && f.q[h * 3 + 1] <= f.q[h * 3 + 2]);
        assert_true(fabs(f.q[h * 3 + 1] - f.mean[h]) < 1e-9 * (1 + fabs(f.mean[h])));
    }
    /* save -> load into a fresh model -> identical forecasts */
    ssm_buffer buf = {0};
    assert_int_equal(ssm_model_save(m, &buf, &err), SSM_OK);
    ssm_model_opts o = {.threads = 2};
    ssm_model *m2 = ssm_model_create("mamba(d_model=8,layers=1,state=4,steps=5,horizon=6)", &o, &err);
    assert_non_null(m2);
    assert_int_equal(ssm_model_load(m2, buf.data, buf.len, &err), SSM_OK);
    ssm_forecast f2;
    assert_int_equal(ssm_forecast_init(&f2, 15, levels, 3, &err), SSM_OK);
    assert_int_equal(ssm_model_forecast(m2, &f2, &err), SSM_OK);
    assert_memory_equal(f.q, f2.q, sizeof(double) * 45);
    /* every truncation of the blob is refused */
    for (size_t cut = 0; cut < buf.len; cut += 1 + cut / 16) {
        ssm_model *m3 = ssm_model_create("mamba(d_model=8,layers=1,state=4,steps=5,horizon=6)", &o, &err);
        assert_int_not_equal(ssm_model_load(m3, buf.data, cut, &err), SSM_OK);
        ssm_model_free(m3);
    }
    /* update moves the context: the forecast changes and stays finite */
    double newv[3] = {500, NAN, 520};
    assert_int_equal(ssm_model_update(m, newv, 3, &err), SSM_OK);
    assert_int_equal(ssm_model_forecast(m, &f2, &err), SSM_OK);
    assert_true(f2.mean[0] != f.mean[0] && isfinite(f2.mean[0]));
    ssm_forecast_free(&f);
    ssm_forecast_free(&f2);
    ssm_buffer_free(&buf);
    ssm_model_free(m);
    ssm_model_free(m2);
    /* bad specs and options */
    assert_null(ssm_model_create("mamba(context=0)", &o, &err));
    assert_null(ssm_model_create("mamba(colour=blue)", &o, &err));
    assert_non_null(strstr(err.message, "colour"));
    assert_null(ssm_model_create("s4d(init=random)", &o, &err));
    ssm_model_opts bad = {.device = "tpu"};
    assert_null(ssm_model_create("mamba", &bad, &err));
    /* a network from a checkpoint file (as `ssmd train` would write): fit() only keeps the
     * context, no training */
    {
        nssm_config nc;
        nssm_config_default(&nc, NSSM_MIXER_MAMBA);
        nc.context = 24, nc.horizon = 5, nc.d_model = 8, nc.n_layers = 1, nc.d_state = 4;
        nc.n_periods = 1, nc.periods[0] = 12;
        nssm_model *net;
        nssm_error ne;
        assert_int_equal(nssm_model_create(&net, &nc, 3, NULL, &ne), NSSM_OK);
        uint8_t *ckb;
        size_t ckl;
        assert_int_equal(nssm_checkpoint_save(net, &ckb, &ckl, &ne), NSSM_OK);
        char path[] = "/tmp/ssmd_neural_ckpt_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        FILE *fp = fdopen(fd, "wb");
        assert_int_equal(fwrite(ckb, 1, ckl, fp), ckl);
        fclose(fp);
        ssm_model_opts ok = {.checkpoint = path, .threads = 1};
        ssm_model *mc = ssm_model_create("mamba", &ok, &err);
        assert_int_equal(ssm_model_fit(mc, &y, &err), SSM_OK);
        ssm_forecast fc;
        assert_int_equal(ssm_forecast_init(&fc, 5, levels, 3, &err), SSM_OK);
        assert_int_equal(ssm_model_forecast(mc, &fc, &err), SSM_OK);
        /* the same numbers as the network itself on the same context */
        double grid[5 * 13];
        nssm_series_ref sr = {y.values, y.n, 0};
        int64_t t0 = y.start;
        struct tm tm;
        time_t tt = (time_t)t0;
        gmtime_r(&tt, &tm);
        sr.cal0 = ((int64_t)tm.tm_year + 1900) * 12 + tm.tm_mon;
        assert_int_equal(nssm_forecast(net, &sr, grid, &ne), NSSM_OK);
        for (int h = 0; h < 5; h++)
            assert_true(fabs(fc.mean[h] - grid[h * 13 + 6]) < 1e-9 * fabs(grid[h * 13 + 6]));
        ssm_forecast_free(&fc);
        ssm_model_free(mc);
        /* a mamba checkpoint is refused by s4d */
        ssm_model *ms = ssm_model_create("s4d", &ok, &err);
        assert_int_equal(ssm_model_fit(ms, &y, &err), SSM_EFORMAT);
        ssm_model_free(ms);
        remove(path);
        free(ckb);
        nssm_model_free(net);
    }
    /* a checkpoint file that does not exist */
    ssm_model_opts ck = {.checkpoint = "/nonexistent/ckpt.bin"};
    ssm_model *m4 = ssm_model_create("mamba", &ck, &err);
    assert_non_null(m4);
    assert_int_equal(ssm_model_fit(m4, &y, &err), SSM_EIO);
    ssm_model_free(m4);
    ssm_series_free(&y);
}

/* ---- slow: MASE against seasonal naive on held-out origins ------------------------------- */

/* Mean absolute scaled error of a forecast path, scale = in-sample seasonal naive MAE. */
static double scale_of(const double *v, size_t n, int m)
{
    double s = 0;
    size_t k = 0;
    for (size_t t = (size_t)m; t < n; t++)
        if (!isnan(v[t]) && !isnan(v[t - m])) {
            s += fabs(v[t] - v[t - m]);
            k++;
        }
    return k ? s / k : NAN;
}

typedef struct dataset {
    const char *name;
    int H, origins, step;
} dataset;

static void test_slow_mase(void **state)
{
    (void)state;
    if (!slow_mode) {
        skip();
    }
    const dataset sets[4] = {{"Nile", 10, 11, 1}, {"AirPassengers", 12, 13, 1},
                             {"UKgas", 8, 9, 1}, {"taylor", 48, 8, 24}};
    const char *specs[2] = {"mamba", "s4d"};
    const char *only = getenv("NSSM_SLOW_ONLY"); /* e.g. "taylor": one data set */
    const char *extra = getenv("NSSM_SLOW_SPEC");  /* e.g. "d_model=16": options to add */
    int failures = 0;
    for (int d = 0; d < 4; d++) {
        if (only && strcmp(only, sets[d].name) != 0)
            continue;
        ssm_series y;
        load_series(sets[d].name, &y);
        int m = ssm_freq_season(y.freq);
        int H = sets[d].H, K = (sets[d].origins - 1) * sets[d].step + H;
        ssm_series train = y;
        train.n = y.n - K;
        double scale = scale_of(y.values, train.n, m);
        for (int k = 0; k < 2; k++) {
            char spec[128];
            snprintf(spec, sizeof spec, "%s(horizon=%d%s%s)", specs[k], H, extra ? "," : "",
                     extra ? extra : "");
            clock_t c0 = clock();
            struct timespec w0, w1;
            clock_gettime(CLOCK_MONOTONIC, &w0);
            ssm_model *mod = fit_or_fail(spec, &train, 110);
            clock_gettime(CLOCK_MONOTONIC, &w1);
            (void)c0;
            ssm_fit_info info;
            ssm_model_info(mod, &info);
            double ae_model = 0, ae_snaive = 0;
            size_t cnt = 0, pos = train.n;
            ssm_error err;
            ssm_forecast f;
            double lv[1] = {0.5};
            assert_int_equal(ssm_forecast_init(&f, H, lv, 1, &err), SSM_OK);
            for (int o = 0; o < sets[d].origins; o++) {
                size_t origin = train.n + (size_t)o * sets[d].step;
                if (origin > pos) {
                    assert_int_equal(ssm_model_update(mod, y.values + pos, origin - pos, &err), SSM_OK);
                    pos = origin;
                }
                assert_int_equal(ssm_model_forecast(mod, &f, &err), SSM_OK);
                for (int h = 0; h < H; h++) {
                    double actual = y.values[origin + h];
                    /* seasonal naive from the same origin: the value one season back */
                    size_t back = origin + h - (size_t)m * ((h / m) + 1);
                    ae_model += fabs(actual - f.mean[h]);
                    ae_snaive += fabs(actual - y.values[back]);
                    cnt++;
                }
            }
            ssm_forecast_free(&f);
            double mase_model = ae_model / cnt / scale, mase_snaive = ae_snaive / cnt / scale;
            double secs = (w1.tv_sec - w0.tv_sec) + 1e-9 * (w1.tv_nsec - w0.tv_nsec);
            printf("# %-14s %-6s %-45s MASE %.3f  seasonal naive %.3f  (train %.1f s, %d steps)\n",
                   sets[d].name, specs[k], info.chosen, mase_model, mase_snaive, secs,
                   info.iterations);
            fflush(stdout);
            /* the requirement is on Mamba, the main network; S4D's figure is reported */
            if (!(mase_model < mase_snaive)) {
                printf("# %s: %s on %s does not beat seasonal naive\n",
                       k == 0 ? "FAIL" : "note", specs[k], sets[d].name);
                failures += k == 0;
            }
            if (strcmp(sets[d].name, "taylor") == 0 && !(secs < 120)) {
                printf("# FAIL: training on taylor took %.1f s\n", secs);
                failures++;
            }
            ssm_model_free(mod);
        }
        ssm_series_free(&y);
    }
    assert_int_equal(failures, 0);
}

int main(int argc, char **argv)
{
    slow_mode = argc > 1 && strcmp(argv[1], "slow") == 0;
    const struct CMUnitTest quick[] = {
        cmocka_unit_test(test_quick_training),
        cmocka_unit_test(test_adapter_contracts),
    };
    const struct CMUnitTest slow[] = {
        cmocka_unit_test(test_slow_mase),
    };
    return slow_mode ? cmocka_run_group_tests(slow, NULL, NULL)
                     : cmocka_run_group_tests(quick, NULL, NULL);
}
