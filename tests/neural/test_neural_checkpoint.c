/*
 * tests/neural/test_neural_checkpoint.c — checkpoints and the forecaster's contracts:
 * save/load round trip (identical forecasts), every truncation length and every single-byte
 * corruption of a small checkpoint refused with NSSM_EFORMAT (never a crash), mismatched
 * tables refused, determinism of training for a seed and across thread counts, a global
 * model trained over two series, the
 * recurrent S4D path equal to the convolution, FFT equal to direct loops, and bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

static nssm_model *small_model(nssm_mixer mixer, uint64_t seed)
{
    nssm_config c;
    nssm_config_default(&c, mixer);
    c.context = 24;
    c.horizon = 4;
    c.d_model = 8;
    c.n_layers = 2;
    c.d_state = 4;
    c.n_periods = 1;
    c.periods[0] = 12;
    nssm_model *m = NULL;
    nssm_error err;
    assert_int_equal(nssm_model_create(&m, &c, seed, NULL, &err), NSSM_OK);
    return m;
}

static double *wave(size_t n, double period)
{
    double *v = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++)
        v[i] = 50 + 10 * sin(2 * M_PI * i / period) + 0.05 * i + 0.5 * sin(i * 1.7);
    return v;
}

static void test_roundtrip(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nssm_model *m = small_model(k ? NSSM_MIXER_S4D : NSSM_MIXER_MAMBA, 3);
        uint8_t *buf;
        size_t len;
        nssm_error err;
        assert_int_equal(nssm_checkpoint_save(m, &buf, &len, &err), NSSM_OK);
        nssm_model *m2;
        assert_int_equal(nssm_checkpoint_load(&m2, buf, len, NULL, &err), NSSM_OK);
        double *v = wave(60, 12);
        nssm_series_ref s = {v, 60, 0};
        const nssm_config *c = nssm_model_config(m);
        double q1[4 * 13], q2[4 * 13];
        assert_int_equal(nssm_forecast(m, &s, q1, &err), NSSM_OK);
        assert_int_equal(nssm_forecast(m2, &s, q2, &err), NSSM_OK);
        for (int i = 0; i < c->horizon * c->nq; i++)
            assert_true(q1[i] == q2[i]);
        for (int h = 0; h < c->horizon; h++)
            for (int j = 1; j < c->nq; j++)
                assert_true(q1[h * c->nq + j] >= q1[h * c->nq + j - 1]); /* monotone */
        /* save again: byte-identical */
        uint8_t *buf2;
        size_t len2;
        assert_int_equal(nssm_checkpoint_save(m2, &buf2, &len2, &err), NSSM_OK);
        assert_int_equal(len, len2);
        assert_memory_equal(buf, buf2, len);
        free(v);
        free(buf);
        free(buf2);
        nssm_model_free(m);
        nssm_model_free(m2);
    }
}

static void test_truncation_and_corruption(void **state)
{
    (void)state;
    nssm_model *m = small_model(NSSM_MIXER_MAMBA, 5);
    uint8_t *buf;
    size_t len;
    nssm_error err;
    assert_int_equal(nssm_checkpoint_save(m, &buf, &len, &err), NSSM_OK);
    /* every truncation, including 0 bytes; a fresh copy so ASan sees reads past the end */
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *part = malloc(cut ? cut : 1);
        memcpy(part, buf, cut);
        nssm_model *m2 = NULL;
        memset(&err, 0, sizeof err);
        int rc = nssm_checkpoint_load(&m2, part, cut, NULL, &err);
        if (rc != NSSM_EFORMAT)
            fail_msg("truncation to %zu of %zu bytes gave %d", cut, len, rc);
        assert_null(m2);
        assert_true(err.message[0] != '\0');
        free(part);
    }
    /* a flipped bit in each byte (the CRC catches it, or the magic/version check) */
    for (size_t i = 0; i < len; i += 1 + i / 64) {
        uint8_t *bad = malloc(len);
        memcpy(bad, buf, len);
        bad[i] ^= 0x10;
        nssm_model *m2 = NULL;
        assert_int_equal(nssm_checkpoint_load(&m2, bad, len, NULL, &err), NSSM_EFORMAT);
        assert_null(m2);
        free(bad);
    }
    /* extra bytes at the end are refused too */
    uint8_t *longer = malloc(len + 3);
    memcpy(longer, buf, len);
    memset(longer + len, 0, 3);
    nssm_model *m2 = NULL;
    assert_int_equal(nssm_checkpoint_load(&m2, longer, len + 3, NULL, &err), NSSM_EFORMAT);
    free(longer);
    free(buf);
    nssm_model_free(m);
}

/* Rewrites the CRC after an edit, so the structural checks behind it are exercised. */
static void fix_crc(uint8_t *b, size_t len)
{
    uint32_t crc = nssm_crc32(b, len - 4);
    for (int i = 0; i < 4; i++)
        b[len - 4 + i] = (uint8_t)(crc >> (8 * i));
}

static void test_mismatch(void **state)
{
    (void)state;
    nssm_model *m = small_model(NSSM_MIXER_S4D, 5);
    uint8_t *buf;
    size_t len;
    nssm_error err;
    assert_int_equal(nssm_checkpoint_save(m, &buf, &len, &err), NSSM_OK);
    nssm_model *m2 = NULL;
    /* version from the future */
    uint8_t *b = malloc(len);
    memcpy(b, buf, len);
    b[8] = 99;
    fix_crc(b, len);
    assert_int_equal(nssm_checkpoint_load(&m2, b, len, NULL, &err), NSSM_EFORMAT);
    assert_non_null(strstr(err.message, "version"));
    /* d_model changed in the architecture: the tensor table no longer matches */
    memcpy(b, buf, len);
    b[16 + 12] = 9; /* arch: mixer, context, horizon, d_model (u32 each) */
    fix_crc(b, len);
    assert_int_equal(nssm_checkpoint_load(&m2, b, len, NULL, &err), NSSM_EFORMAT);
    /* a tensor renamed */
    memcpy(b, buf, len);
    uint8_t *hit = NULL;
    for (size_t i = 0; i + 7 <= len && !hit; i++)
        if (memcmp(b + i, "embed.w", 7) == 0)
            hit = b + i;
    assert_non_null(hit);
    hit[0] = 'E';
    fix_crc(b, len);
    assert_int_equal(nssm_checkpoint_load(&m2, b, len, NULL, &err), NSSM_EFORMAT);
    assert_non_null(strstr(err.message, "does not match"));
    /* an invalid architecture value (context 1) */
    memcpy(b, buf, len);
    b[16 + 4] = 1;
    b[16 + 5] = b[16 + 6] = b[16 + 7] = 0;
    fix_crc(b, len);
    assert_int_equal(nssm_checkpoint_load(&m2, b, len, NULL, &err), NSSM_EFORMAT);
    /* a huge architecture behind a valid CRC: refused before any allocation */
    memcpy(b, buf, len);
    b[16 + 12] = 0xA0, b[16 + 13] = 0x0F; /* d_model 4000 */
    b[16 + 16] = 64;                     /* 64 layers */
    fix_crc(b, len);
    assert_int_equal(nssm_checkpoint_load(&m2, b, len, NULL, &err), NSSM_EFORMAT);
    assert_non_null(strstr(err.detail, "parameters"));
    /* a NaN parameter */
    memcpy(b, buf, len);
    uint32_t nan_bits = 0x7fc00000u;
    for (int i = 0; i < 4; i++)
        b[len - 8 + i] = (uint8_t)(nan_bits >> (8 * i));
    fix_crc(b, len);
    assert_int_equal(nssm_checkpoint_load(&m2, b, len, NULL, &err), NSSM_EFORMAT);
    assert_null(m2);
    free(b);
    free(buf);
    nssm_model_free(m);
}

static void test_s4d_paths_agree(void **state)
{
    (void)state;
    /* recurrence (inference) == kernel + convolution (training); FFT == direct */
    enum { B = 3, L = 80, D = 4, N = 5 };
    float log_dt[D], C_re[D * N], C_im[D * N], lar[D * N], aim[D * N], Dk[D];
    float *u = malloc(sizeof(float) * B * L * D), *y1 = malloc(sizeof(float) * B * L * D);
    float *y2 = malloc(sizeof(float) * B * L * D), *y3 = malloc(sizeof(float) * B * L * D);
    float *K = malloc(sizeof(float) * D * L);
    for (int i = 0; i < D; i++) {
        log_dt[i] = -2.0f - 0.3f * i;
        Dk[i] = 0.5f - 0.2f * i;
    }
    for (int i = 0; i < D * N; i++) {
        C_re[i] = sinf(i * 1.3f), C_im[i] = cosf(i * 0.7f);
        lar[i] = logf(0.5f) + 0.05f * i, aim[i] = (float)M_PI * (i % N);
    }
    for (int i = 0; i < B * L * D; i++)
        u[i] = sinf(0.37f * i) + 0.1f * cosf(3.1f * i);
    nssm_s4d_kernel_forward(K, log_dt, C_re, C_im, lar, aim, D, N, L);
    assert_int_equal(nssm_s4d_conv_forward_algo(y1, u, K, Dk, B, L, D, 1, 0), NSSM_OK);
    assert_int_equal(nssm_s4d_conv_forward_algo(y2, u, K, Dk, B, L, D, 2, 1), NSSM_OK);
    assert_int_equal(nssm_s4d_recurrent_forward(y3, u, log_dt, C_re, C_im, lar, aim, Dk, B, L, D, N),
                     NSSM_OK);
    double maxy = 0, d12 = 0, d13 = 0;
    for (int i = 0; i < B * L * D; i++) {
        maxy = fmax(maxy, fabs(y1[i]));
        d12 = fmax(d12, fabs(y1[i] - y2[i]));
        d13 = fmax(d13, fabs(y1[i] - y3[i]));
    }
    assert_true(maxy > 0.1);
    assert_true(d12 <= 1e-5 * maxy);
    assert_true(d13 <= 1e-5 * maxy);
    free(u), free(y1), free(y2), free(y3), free(K);
}

static void test_training_deterministic(void **state)
{
    (void)state;
    double *v = wave(150, 12);
    v[40] = v[41] = NAN; /* missing observations are accepted */
    nssm_series_ref s = {v, 150, 7};
    float *p[3];
    for (int run = 0; run < 3; run++) {
        nssm_model *m = small_model(run == 2 ? NSSM_MIXER_MAMBA : NSSM_MIXER_MAMBA, 9);
        nssm_train_opts o = {.max_steps = 6, .batch = 4, .eval_every = 3, .seed = 42,
                             .threads = run == 1 ? 2 : 1};
        nssm_train_report rep;
        nssm_error err;
        assert_int_equal(nssm_train(m, &s, 1, &o, &rep, &err), NSSM_OK);
        assert_int_equal(rep.steps, 6);
        assert_true(isfinite(rep.best_val_loss));
        p[run] = malloc(sizeof(float) * nssm_model_num_params(m));
        nssm_model_get_params(m, p[run], &err);
        if (run)
            assert_memory_equal(p[0], p[run], sizeof(float) * nssm_model_num_params(m));
        nssm_model_free(m);
    }
    free(p[0]), free(p[1]), free(p[2]);
    free(v);
}

static void test_global_model(void **state)
{
    (void)state;
    /* one model over a group: two series of different lengths, scales and starts */
    double *a = wave(120, 12), *b = wave(90, 12);
    for (int i = 0; i < 90; i++)
        b[i] = 1000 + 30 * b[i];
    nssm_series_ref group[2] = {{a, 120, 0}, {b, 90, 5}};
    float *p[2];
    for (int run = 0; run < 2; run++) {
        nssm_model *m = small_model(NSSM_MIXER_S4D, 4);
        nssm_train_opts o = {.max_steps = 8, .batch = 6, .eval_every = 4, .seed = 3};
        nssm_train_report rep;
        nssm_error err;
        assert_int_equal(nssm_train(m, group, 2, &o, &rep, &err), NSSM_OK);
        assert_true(isfinite(rep.first_val_loss) && rep.best_val_loss <= rep.first_val_loss);
        p[run] = malloc(sizeof(float) * nssm_model_num_params(m));
        nssm_model_get_params(m, p[run], &err);
        if (run)
            assert_memory_equal(p[0], p[1], sizeof(float) * nssm_model_num_params(m));
        double q[4 * 13];
        assert_int_equal(nssm_forecast(m, &group[1], q, &err), NSSM_OK);
        assert_true(q[6] > 500); /* in the second series' units */
        nssm_model_free(m);
    }
    free(p[0]), free(p[1]), free(a), free(b);
}

static void test_bad_input(void **state)
{
    (void)state;
    nssm_config c;
    nssm_error err;
    nssm_model *m = NULL;
    nssm_config_default(&c, NSSM_MIXER_MAMBA);
    c.quantiles[6] = 0.55; /* no median in the grid */
    assert_int_equal(nssm_model_create(&m, &c, 1, NULL, &err), NSSM_EINVAL);
    assert_null(m);
    nssm_config_default(&c, NSSM_MIXER_MAMBA);
    c.context = 1;
    assert_int_equal(nssm_model_create(&m, &c, 1, NULL, &err), NSSM_EINVAL);
    assert_non_null(strstr(err.detail, "context"));
    m = small_model(NSSM_MIXER_S4D, 1);
    double allnan[10], q[4 * 13];
    for (int i = 0; i < 10; i++)
        allnan[i] = NAN;
    nssm_series_ref s = {allnan, 10, 0};
    assert_int_equal(nssm_forecast(m, &s, q, &err), NSSM_ETOOSHORT);
    allnan[9] = INFINITY;
    assert_int_equal(nssm_forecast(m, &s, q, &err), NSSM_EINVAL);
    double tiny[5] = {1, 2, 3, 4, 5};
    nssm_series_ref t = {tiny, 5, 0};
    nssm_train_opts o = {.max_steps = 2};
    assert_int_equal(nssm_train(m, &t, 1, &o, NULL, &err), NSSM_ETOOSHORT);
    /* a one-point context forecasts (flat, from padding) */
    nssm_series_ref one = {tiny, 1, 0};
    assert_int_equal(nssm_forecast(m, &one, q, &err), NSSM_OK);
    nssm_device dev;
    assert_int_equal(nssm_device_parse("tpu", &dev, &err), NSSM_EINVAL);
    assert_int_equal(nssm_device_parse("cpu", &dev, &err), NSSM_OK);
    assert_ptr_equal(nssm_backend_get(dev, &err), &nssm_backend_cpu);
    nssm_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_truncation_and_corruption),
        cmocka_unit_test(test_mismatch),
        cmocka_unit_test(test_s4d_paths_agree),
        cmocka_unit_test(test_training_deterministic),
        cmocka_unit_test(test_global_model),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
