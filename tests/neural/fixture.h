/*
 * tests/neural/fixture.h — reading the PyTorch fixtures of tests/reference/fixtures/neural
 * (one record per line: `name count v1 v2 ...`) and comparing arrays, for the neural tests.
 * Header-only so each test program stays one file plus this.
 */
#ifndef NSSM_TEST_FIXTURE_H
#define NSSM_TEST_FIXTURE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fx_record {
    char name[64];
    size_t n;
    double *v;
} fx_record;

typedef struct fx_file {
    size_t count;
    fx_record *rec;
} fx_file;

static void fx_free(fx_file *f)
{
    for (size_t i = 0; i < f->count; i++)
        free(f->rec[i].v);
    free(f->rec);
    f->rec = NULL;
    f->count = 0;
}

/* Returns 0 on success. */
static int fx_load(fx_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    size_t cap = 0;
    char name[64];
    size_t n;
    while (fscanf(fp, "%63s %zu", name, &n) == 2) {
        if (f->count == cap) {
            cap = cap ? 2 * cap : 32;
            fx_record *nr = realloc(f->rec, cap * sizeof *nr);
            if (!nr)
                break;
            f->rec = nr;
        }
        fx_record *r = &f->rec[f->count++];
        snprintf(r->name, sizeof r->name, "%s", name);
        r->n = n;
        r->v = malloc(sizeof(double) * (n ? n : 1));
        for (size_t i = 0; i < n; i++) {
            char tok[64];
            if (fscanf(fp, "%63s", tok) != 1)
                tok[0] = '\0';
            r->v[i] = strtod(tok, NULL);
        }
    }
    fclose(fp);
    return f->count ? 0 : -1;
}

static const fx_record *fx_get(const fx_file *f, const char *name)
{
    for (size_t i = 0; i < f->count; i++)
        if (strcmp(f->rec[i].name, name) == 0)
            return &f->rec[i];
    fprintf(stderr, "fixture record %s missing\n", name);
    return NULL;
}

/* malloc'ed float copy of a record */
static float *fx_floats(const fx_file *f, const char *name, size_t *n)
{
    const fx_record *r = fx_get(f, name);
    if (!r)
        return NULL;
    float *out = malloc(sizeof(float) * (r->n ? r->n : 1));
    for (size_t i = 0; i < r->n; i++)
        out[i] = (float)r->v[i];
    if (n)
        *n = r->n;
    return out;
}

/* max |got - want| / max |want| (the relative error of the array as a whole) */
static double fx_relerr_f(const float *got, const double *want, size_t n)
{
    double maxw = 0, maxd = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(want[i]) > maxw)
            maxw = fabs(want[i]);
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= maxd))
            maxd = d; /* NaN propagates */
    }
    return maxw > 0 ? maxd / maxw : maxd;
}

#endif
