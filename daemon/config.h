/*
 * daemon/config.h — ssmd's YAML configuration (libyaml), loaded into plain structs.
 *
 * All keys are described in one table in config.c (name, type, default, bounds), from
 * which parsing, validation and `ssmd check-config --keys` documentation come. Unknown
 * keys are errors. Every error names the file, line and column and what was expected:
 *   ssmd.yaml:14:9: series "web_cpu": unknown key "horizn" (expected one of: name, ...)
 * Loading never touches the database.
 */
#ifndef SSMD_CONFIG_H
#define SSMD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model.h"

/* Where a series' observations come from. */
typedef struct ssmd_source {
    int builtin;            /* 1: the built-in store ssm.observations */
    char *table;            /* user table as written, optionally schema-qualified ("metrics.cpu") */
    char *time_col;         /* timestamp column */
    char *value_col;        /* value column */
    size_t nwhere;          /* equality filters: where_keys[i] = where_values[i] */
    char **where_keys;
    char **where_values;
    int line;               /* line of `source:`'s value in the file (for hints) */
} ssmd_source;

/* One series' settings; the defaults block uses the same struct (name and source unset). */
typedef struct ssmd_series_cfg {
    char *name;
    char *group;            /* neural models train across a group; NULL: the series alone */
    ssm_freq freq;
    int has_freq;
    ssmd_source source;
    int64_t every_s;        /* forecast interval */
    int64_t refit_every_s;  /* re-estimate Kalman parameters */
    int64_t retrain_every_s;/* retrain neural models */
    int64_t retention_s;    /* keep forecasts this long; 0 = forever */
    int horizon;
    int season;             /* 0: from the frequency */
    size_t nq;
    double *quantiles;      /* ascending, in (0,1) */
    size_t nmodels;
    char **models;          /* model specs, e.g. "local_level", "sarima(1,1,1)" */
    int *model_lines;       /* nmodels: where each spec is written (line, column; 0 when */
    int *model_cols;        /* it is a built-in default), to locate ssm_model_create errors */
    int line;               /* line in the file where the entry starts (for hints) */
} ssmd_series_cfg;

typedef struct ssmd_config {
    char *path;             /* file it was read from */
    char *dsn;              /* database.dsn (may be NULL: libpq defaults) */
    int statement_timeout_ms;
    int workers;            /* worker threads, one connection each */
    char *device;           /* neural models: auto | cpu | cuda */
    int64_t lease_s;        /* lease length for a series' cycle */
    ssmd_series_cfg defaults;
    size_t nseries;
    ssmd_series_cfg *series;/* defaults already applied */
} ssmd_config;

/* Loads and validates path. On error returns -1 and writes a one-line message of the
 * form "FILE:LINE:COL: what was wrong (expected ...)" into err. */
int ssmd_config_load(const char *path, ssmd_config *out, char *err, size_t errlen);
void ssmd_config_free(ssmd_config *cfg);
/* Parses durations such as "30s", "5m", "1h", "2d", "1w"; 0 on success. */
int ssmd_duration_parse(const char *text, int64_t *seconds);
const ssmd_series_cfg *ssmd_config_find(const ssmd_config *cfg, const char *name);

/* Like ssmd_config_load, from len bytes of text; name stands for the file in messages
 * (and becomes cfg->path). */
int ssmd_config_parse(const char *name, const char *text, size_t len, ssmd_config *out,
                      char *err, size_t errlen);
/* Writes the reference of every key (type, default, bounds, meaning) as markdown: this is
 * etc/CONFIG.md (`ssmd check-config --keys`). */
void ssmd_config_describe(FILE *out);
/* Writes the effective configuration, every default applied, as YAML that loads back to
 * the same settings (`ssmd check-config`). */
void ssmd_config_print(FILE *out, const ssmd_config *cfg);

#endif
