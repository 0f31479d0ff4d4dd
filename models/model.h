/*
 * models/model.h — the shared vocabulary of ssmd.
 *
 * Everything above the numerical libraries speaks in these terms: a series on a regular
 * time grid (values with NaN for a missing observation), a forecast (mean, standard
 * deviation and quantiles for steps 1..H), and the model interface, a struct of function
 * pointers that every model family (Kalman, neural, baselines, auto) implements through an
 * adapter in this folder. Models are created from a spec string such as "local_level",
 * "sarima(0,1,1)(0,1,1)[12]" or "mamba(context=512,layers=4)".
 *
 * This layer knows nothing about PostgreSQL, YAML, logging or time zones (all times are
 * Unix seconds, UTC). Functions return 0 on success or a negative SSM_E* code and fill an
 * ssm_error; they never print, exit or abort on bad input.
 */
#ifndef SSM_MODEL_H
#define SSM_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* ---- errors ------------------------------------------------------------------------- */

enum {
    SSM_OK = 0,
    SSM_EINVAL = -1,       /* bad input: NaN/inf where not allowed, bad spec, bad shape */
    SSM_ENOMEM = -2,       /* allocation failed */
    SSM_ENUMERIC = -3,     /* numerical failure: not positive definite, no convergence */
    SSM_EFORMAT = -4,      /* serialized state or checkpoint truncated / corrupt / mismatched */
    SSM_ETOOSHORT = -5,    /* series too short for the model */
    SSM_EUNSUPPORTED = -6, /* operation the model does not provide */
    SSM_EIO = -7           /* reading or writing a file */
};

/* Three-part errors in PostgreSQL's style: a short lower-case primary message, optional
 * detail (the facts) and hint (what to do). */
typedef struct ssm_error {
    int code;
    char message[256];
    char detail[512];
    char hint[256];
} ssm_error;

/* Sets code and message (printf-style); clears detail and hint. Returns code. Safe with
 * err == NULL. */
int ssm_error_set(ssm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ssm_error_detail(ssm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ssm_error_hint(ssm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ssm_error_clear(ssm_error *err);

/* ---- time grid ---------------------------------------------------------------------- */

typedef enum ssm_freq_unit {
    SSM_FREQ_SECOND,
    SSM_FREQ_MINUTE,
    SSM_FREQ_HOUR,
    SSM_FREQ_DAY,
    SSM_FREQ_WEEK,
    SSM_FREQ_MONTH,
    SSM_FREQ_QUARTER,
    SSM_FREQ_YEAR
} ssm_freq_unit;

/* A grid step: count units, e.g. {MINUTE, 5} is "5m", {MONTH, 1} is "1mo". */
typedef struct ssm_freq {
    ssm_freq_unit unit;
    int count;
} ssm_freq;

/* Parses "30s", "5m", "1h", "1d", "1w", "1mo", "1q", "1y" (count defaults to 1: "h"). */
int ssm_freq_parse(const char *text, ssm_freq *out, ssm_error *err);
/* Writes the canonical text ("5m", "1mo") into buf. */
void ssm_freq_format(ssm_freq f, char *buf, size_t len);
/* t advanced by k grid steps (k may be negative); calendar units use UTC civil dates. */
int64_t ssm_freq_advance(ssm_freq f, int64_t t, long k);
/* Grid index of t relative to t0 (t0 + index steps == t when *exact is set). */
long ssm_freq_index(ssm_freq f, int64_t t0, int64_t t, int *exact);
/* The natural season length of the grid: 24 for hourly, 7 for daily, 12 for monthly,
 * 4 for quarterly, 48 for 30m, 288 for 5m, 52 for weekly, 1 when there is none. */
int ssm_freq_season(ssm_freq f);
/* Infers the grid step from ascending timestamps (the most common difference, matched to
 * a calendar unit when the gaps are 28..31 days etc.). */
int ssm_freq_infer(const int64_t *ts, size_t n, ssm_freq *out, ssm_error *err);

/* ---- series and forecasts ----------------------------------------------------------- */

/* A series on a regular grid. values[i] is the observation at
 * ssm_freq_advance(freq, start, i); NaN marks a missing observation. */
typedef struct ssm_series {
    const char *name; /* borrowed, for messages */
    ssm_freq freq;
    int64_t start;
    size_t n;
    double *values;
} ssm_series;

/* Builds a grid series from (ts, value) pairs: ts strictly ascending and on the grid
 * anchored at ts[0]; gaps become NaN. Rejects duplicates, unordered or off-grid times and
 * infinite values with a message naming the series and the offending timestamp.
 * values may contain NaN (missing). out->values is malloc'ed; free with ssm_series_free. */
int ssm_series_from_points(const char *name, ssm_freq freq, const int64_t *ts,
                           const double *values, size_t n, ssm_series *out, ssm_error *err);
void ssm_series_free(ssm_series *s);

/* Multi-horizon probabilistic forecast. Arrays are owned by the struct. */
typedef struct ssm_forecast {
    size_t horizon;
    size_t nq;
    double *levels;  /* nq quantile levels in (0,1), ascending */
    int64_t *ts;     /* horizon target times (filled by ssm_model_forecast) */
    double *mean;    /* horizon point forecasts */
    double *sd;      /* horizon predictive standard deviations (NaN if the model has none) */
    double *q;       /* horizon*nq quantiles, q[h*nq + j] for step h+1 and levels[j] */
} ssm_forecast;

int ssm_forecast_init(ssm_forecast *f, size_t horizon, const double *levels, size_t nq,
                      ssm_error *err);
void ssm_forecast_free(ssm_forecast *f);
/* Fills q from mean and sd under a Gaussian predictive distribution. */
void ssm_forecast_gaussian_quantiles(ssm_forecast *f);

/* ---- growable byte buffer (serialized model state) ---------------------------------- */

typedef struct ssm_buffer {
    uint8_t *data;
    size_t len;
    size_t cap;
} ssm_buffer;

int ssm_buffer_append(ssm_buffer *b, const void *data, size_t len);
void ssm_buffer_free(ssm_buffer *b);

/* ---- the model interface ------------------------------------------------------------ */

#define SSM_MAX_PARAMS 64

typedef struct ssm_param {
    char name[48];   /* statsmodels' names where one exists: "sigma2.irregular", "ma.S.L12" */
    double value;
} ssm_param;

/* What a fitted model reports. NaN where a figure does not apply (no likelihood for a
 * neural model: loglik holds the validation loss there and is named in `criterion`). */
typedef struct ssm_fit_info {
    int converged;
    int iterations;
    size_t nobs;          /* observations used (missing ones excluded) */
    double loglik;
    double aic, aicc, bic;
    size_t nparams;
    ssm_param params[SSM_MAX_PARAMS];
    char chosen[256];     /* auto models: the spec that won; else the model's own spec */
} ssm_fit_info;

/* Options shared by all model families. Zero-initialise, then set what you need. */
typedef struct ssm_model_opts {
    int season;           /* season length; 0: from the series' frequency */
    int threads;          /* worker threads a fit may use; 0: all cores */
    uint64_t seed;        /* neural models: training seed; 0 means 1 */
    const char *device;   /* neural models: "auto", "cpu", "cuda"; NULL: auto */
    const char *checkpoint; /* neural models: load this file instead of training */
    int max_seconds;      /* neural models: training time budget; 0: default */
} ssm_model_opts;

typedef struct ssm_model ssm_model;

typedef struct ssm_model_ops {
    /* Estimates parameters on y and leaves the state at y's last observation. */
    int (*fit)(ssm_model *m, const ssm_series *y, ssm_error *err);
    /* Moves the state forward over n new observations that follow the last one seen
     * (NaN = missing), without re-estimating. */
    int (*update)(ssm_model *m, const double *values, size_t n, ssm_error *err);
    /* Fills f->mean, f->sd and f->q for steps 1..f->horizon after the last observation. */
    int (*forecast)(const ssm_model *m, ssm_forecast *f, ssm_error *err);
    int (*info)(const ssm_model *m, ssm_fit_info *out);
    /* Serializes parameters and state (little-endian, versioned) / restores them. */
    int (*save)(const ssm_model *m, ssm_buffer *out, ssm_error *err);
    int (*load)(ssm_model *m, const uint8_t *data, size_t len, ssm_error *err);
    void (*destroy)(ssm_model *m);
} ssm_model_ops;

struct ssm_model {
    const ssm_model_ops *ops;
    char spec[256];        /* canonical spec */
    const char *family;    /* "kalman", "neural", "baseline", "auto" */
    ssm_model_opts opts;
    ssm_freq freq;         /* grid of the series it was fitted on */
    int64_t last_ts;       /* time of the last observation seen (fit/update/load) */
    size_t nseen;          /* grid points seen, missing included */
    void *impl;            /* family-specific state */
};

/* A model kind: the spec names it answers to and its constructor. `args` is the text
 * after the name (e.g. "(0,1,1)(0,1,1)[12]" or "(context=512)"), possibly empty. */
typedef struct ssm_model_kind {
    const char *name;
    const char *family;
    const char *summary;
    int (*create)(ssm_model *m, const char *name, const char *args, ssm_error *err);
} ssm_model_kind;

/* Creates an unfitted model from a spec; NULL with err set on an unknown or bad spec. */
ssm_model *ssm_model_create(const char *spec, const ssm_model_opts *opts, ssm_error *err);
/* The registered kinds, NULL-terminated, for --help and validation. */
const ssm_model_kind *const *ssm_model_kinds(void);

/* Thin wrappers that check arguments and keep last_ts / nseen / freq up to date. */
int ssm_model_fit(ssm_model *m, const ssm_series *y, ssm_error *err);
int ssm_model_update(ssm_model *m, const double *values, size_t n, ssm_error *err);
int ssm_model_forecast(const ssm_model *m, ssm_forecast *f, ssm_error *err);
int ssm_model_info(const ssm_model *m, ssm_fit_info *out);
int ssm_model_save(const ssm_model *m, ssm_buffer *out, ssm_error *err);
int ssm_model_load(ssm_model *m, const uint8_t *data, size_t len, ssm_error *err);
void ssm_model_free(ssm_model *m);

/* Spec argument helpers for adapters: parses "(k=v,k=v)" into up to max pairs. */
typedef struct ssm_spec_kv {
    char key[32];
    char value[64];
} ssm_spec_kv;
int ssm_spec_kv_parse(const char *args, ssm_spec_kv *kv, size_t max, size_t *n, ssm_error *err);

#endif
