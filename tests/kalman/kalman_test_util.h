/*
 * tests/kalman/kalman_test_util.h — small helpers shared by the kalman tests: reading the
 * committed reference fixtures (KFAS CSVs with a header row and NA for missing, and the
 * "key value value ..." text files written by the tests/reference scripts), reading the
 * ts,value data files, and relative comparisons.
 *
 * Header-only (static functions) so each test stays one self-contained executable.
 */
#ifndef KALMAN_TEST_UTIL_H
#define KALMAN_TEST_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
