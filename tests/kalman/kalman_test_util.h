/*
 * tests/kalman/kalman_test_util.h — small helpers shared by the kalman tests: reading the
 * committed reference fixtures (KFAS CSVs with a header row and NA for missing, and the
 * "key value value ..." text files written by the tests/reference scripts), reading the
 * ts,value data files, relative comparisons, and fitting / forecasting through the
 * ssm_model interface for the adapter tests.
 *
 * Header-only (static functions) so each test stays one self-contained executable. Not a
 * test framework: the helpers that fail the test use cmocka's assertions directly.
 */
#ifndef KALMAN_TEST_UTIL_H
#define KALMAN_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#ifndef SSMD_TEST_DATA
#define SSMD_TEST_DATA "tests/data"
#endif
#ifndef SSMD_TEST_FIXTURES
#define SSMD_TEST_FIXTURES "tests/reference/fixtures"
#endif

#define KT_MAX_COLS 64
#define KT_MAX_ROWS 512

/* A CSV table: names[c], values[r*ncols + c] (NaN for NA / empty). */
typedef struct kt_table {
    int ncols, nrows;
    char names[KT_MAX_COLS][32];
    double *values;
} kt_table;

static inline void kt_strip(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = 0;
}

static inline int kt_read_csv(const char *path, kt_table *t)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    static char line[1 << 16];
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return -1;
    }
    kt_strip(line);
    for (char *tok = strtok(line, ","); tok && t->ncols < KT_MAX_COLS; tok = strtok(NULL, ",")) {
        if (*tok == '"')
            tok++;
        size_t n = strlen(tok);
        if (n && tok[n - 1] == '"')
            tok[n - 1] = 0;
        snprintf(t->names[t->ncols++], 32, "%s", tok);
    }
    t->values = calloc((size_t)KT_MAX_ROWS * t->ncols, sizeof(double));
    while (t->nrows < KT_MAX_ROWS && fgets(line, sizeof line, f)) {
        kt_strip(line);
        if (!*line)
            continue;
        char *p = line;
        for (int c = 0; c < t->ncols; c++) {
            char *end = strchr(p, ',');
            if (end)
                *end = 0;
            double v = NAN;
            if (*p && strcmp(p, "NA") && strcmp(p, "\"NA\""))
                v = strtod(p, NULL);
            t->values[t->nrows * t->ncols + c] = v;
            p = end ? end + 1 : p + strlen(p);
        }
        t->nrows++;
    }
    fclose(f);
    return 0;
}

static inline int kt_col(const kt_table *t, const char *name)
{
    for (int c = 0; c < t->ncols; c++)
        if (!strcmp(t->names[c], name))
            return c;
    return -1;
}

static inline double kt_get(const kt_table *t, int row, const char *name)
{
    int c = kt_col(t, name);
    if (c < 0 || row >= t->nrows)
        return NAN;
    return t->values[row * t->ncols + c];
}

/* "key v1 v2 ..." file: returns the number of values of key (up to max) into out. */
static inline int kt_read_key(const char *path, const char *key, double *out, int max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    static char line[1 << 17];
    int n = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || strncmp(line, key, kl) || line[kl] != ' ')
            continue;
        n = 0;
        char *p = line + kl, *end;
        while (n < max) {
            while (*p == ' ')
                p++;
            if (!*p || *p == '\n')
                break;
            double v = strtod(p, &end);
            if (end == p)
                break;
            out[n++] = v;
            p = end;
        }
        break;
    }
    fclose(f);
    return n;
}

/* ts,value CSV: values into a malloc'ed array; returns n or -1. */
static inline long kt_read_series(const char *path, double **values)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long n = 0, cap = 256;
    double *v = malloc((size_t)cap * sizeof(double));
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        free(v);
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char *comma = strchr(line, ',');
        if (!comma)
            continue;
        if (n == cap) {
            cap *= 2;
            v = realloc(v, (size_t)cap * sizeof(double));
        }
        v[n++] = strtod(comma + 1, NULL);
    }
    fclose(f);
    *values = v;
    return n;
}

/* |a - b| <= rtol |b| + atol; prints the offending pair on failure */
static inline int kt_close(double a, double b, double rtol, double atol, const char *what, int i)
{
    if (isnan(a) && isnan(b))
        return 1;
    if (fabs(a - b) <= rtol * fabs(b) + atol)
        return 1;
    fprintf(stderr, "mismatch %s[%d]: got %.12g want %.12g (rel %.3g)\n", what, i, a, b,
            fabs(a - b) / (fabs(b) > 0 ? fabs(b) : 1));
    return 0;
}

/* Loads column `value` of the ts,value CSV tests/data/<name>, log-transformed when asked;
 * fails the test when the file is missing or has no rows. The caller frees the array. */
static inline double *kt_load_series(const char *name, int take_log, size_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SSMD_TEST_DATA, name);
    double *y = NULL;
    long k = kt_read_series(path, &y);
    assert_true(k > 0);
    if (take_log)
        for (long i = 0; i < k; i++)
            y[i] = log(y[i]);
    *n = (size_t)k;
    return y;
}

/* kt_read_key on the fixture tests/reference/fixtures/kalman/<file>: the numbers after
 * `key` on its line, how many (<= max), -1 when the file or the key is missing. */
static inline int kt_fixture_get(const char *file, const char *key, double *out, int max)
{
    char path[512];
    snprintf(path, sizeof path, "%s/kalman/%s", SSMD_TEST_FIXTURES, file);
    return kt_read_key(path, key, out, max);
}

/* The "names" line of fixture kalman/<file> into names[i] (space separated); returns the
 * count, -1 when the file or the line is missing. */
static inline int kt_fixture_names(const char *file, char names[][48], int max)
{
    char path[512];
    snprintf(path, sizeof path, "%s/kalman/%s", SSMD_TEST_FIXTURES, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[4096];
    int count = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "names ", 6) != 0)
            continue;
        count = 0;
        for (char *tok = strtok(line + 6, " \n"); tok && count < max; tok = strtok(NULL, " \n"))
            snprintf(names[count++], 48, "%s", tok);
        break;
    }
    fclose(f);
    return count;
}

/* Fails the test unless |got - want| <= tol max(|want|, 1e-12). */
static inline void kt_assert_rel(double got, double want, double tol, const char *what)
{
    double scale = fmax(fabs(want), 1e-12);
    if (!(fabs(got - want) <= tol * scale)) {
        print_error("%s: got %.12g, want %.12g (rel %.3g)\n", what, got, want,
                    fabs(got - want) / scale);
        fail();
    }
}

/* ---- the ssm_model interface (models/model.h) ---------------------------------------- */

/* Creates model `spec` and fits it to y[0..n) on a grid of `unit`; fails the test (after
 * printing the error) when either step fails. */
static inline ssm_model *kt_fitted(const char *spec, double *y, size_t n, ssm_freq_unit unit)
{
    ssm_error err = {0};
    ssm_model *m = ssm_model_create(spec, NULL, &err);
    if (!m)
        print_error("create %s: %s\n", spec, err.message);
    assert_non_null(m);
    ssm_series s = {"test", {unit, 1}, 0, n, y};
    int rc = ssm_model_fit(m, &s, &err);
    if (rc)
        print_error("fit %s: %s (%s)\n", spec, err.message, err.detail);
    assert_int_equal(rc, 0);
    return m;
}

/* h-step forecast means and sds of a fitted model into mean[h], sd[h]; checks that the
 * 10/50/90% quantiles are increasing and that the median is the mean. */
static inline void kt_forecast(const ssm_model *m, size_t h, double *mean, double *sd)
{
    ssm_error err = {0};
    ssm_forecast f;
    double levels[3] = {0.1, 0.5, 0.9};
    assert_int_equal(ssm_forecast_init(&f, h, levels, 3, &err), 0);
    assert_int_equal(ssm_model_forecast(m, &f, &err), 0);
    memcpy(mean, f.mean, h * sizeof(double));
    memcpy(sd, f.sd, h * sizeof(double));
    for (size_t i = 0; i < h; i++) {
        assert_true(f.q[i * 3] < f.q[i * 3 + 1] && f.q[i * 3 + 1] < f.q[i * 3 + 2]);
        assert_true(fabs(f.q[i * 3 + 1] - f.mean[i]) < 1e-9 * (1 + fabs(f.mean[i])));
    }
    ssm_forecast_free(&f);
}

#endif
