/*
 * tests/models/test_util.h — small helpers shared by the tests in this folder: a double
 * comparison with an absolute-or-relative tolerance that prints both values (cmocka 1.1.5
 * has only a float one), a reader for the values of a `ts,value` CSV, and creating and
 * fitting a model through models/model.h in one step. Include after <cmocka.h>.
 */
#ifndef TESTS_MODELS_TEST_UTIL_H
#define TESTS_MODELS_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* |a - b| <= tol * max(1, |b|); both NaN counts as equal. */
#define assert_double_equal(a, b, tol) assert_close_((a), (b), (tol), #a, __FILE__, __LINE__)

static inline void assert_close_(double a, double b, double tol, const char *expr, const char *file, int line) {
    if (isnan(a) && isnan(b)) return;
    double scale = fabs(b) > 1.0 ? fabs(b) : 1.0;
    if (!(fabs(a - b) <= tol * scale)) {
        print_error("%s:%d: %s = %.17g, expected %.17g (tolerance %g)\n", file, line, expr, a, b, tol);
        _fail(file, line);
    }
}

/* Reads the value column of a ts,value CSV (header skipped; empty or NA -> NaN) into a
 * malloc'ed array. Returns the count, 0 on error. */
static inline size_t read_csv_values(const char *path, double **out) {
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    char line[512];
    size_t n = 0, cap = 256;
    double *v = malloc(cap * sizeof *v);
    int header = 1;
    while (v && fgets(line, sizeof line, fp)) {
        if (header) {
            header = 0;
            continue;
        }
        char *comma = strchr(line, ',');
        if (!comma) continue;
        if (n == cap) {
            double *p = realloc(v, 2 * cap * sizeof *v);
            if (!p) break;
            v = p;
            cap *= 2;
        }
        char *end = NULL;
        double x = strtod(comma + 1, &end);
        v[n++] = end == comma + 1 ? NAN : x;
    }
    fclose(fp);
    *out = v;
    return v ? n : 0;
}

/* Creates model `spec` with default options and fits it to v[0..n) on grid `freq`; fails
 * the test, printing the error, when either step fails. */
static inline ssm_model *fit_model(const char *spec, double *v, size_t n, ssm_freq freq) {
    ssm_error err;
    ssm_model_opts opts;
    memset(&opts, 0, sizeof opts);
    ssm_model *m = ssm_model_create(spec, &opts, &err);
    if (!m) print_error("%s: %s (%s)\n", spec, err.message, err.detail);
    assert_non_null(m);
    ssm_series y = {"t", freq, 0, n, v};
    int rc = ssm_model_fit(m, &y, &err);
    if (rc != SSM_OK) print_error("%s\n", err.message);
    assert_int_equal(rc, SSM_OK);
    return m;
}

#endif
