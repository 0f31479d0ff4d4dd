/*
 * models/model.c — errors, the time grid, series, forecasts, byte buffers, the spec
 * parser and the model registry: the plumbing every model family shares.
 *
 * The registry is a static list of per-family kind tables (Kalman, neural, baselines,
 * auto); a spec "name(args)" is matched by name and the family's constructor receives the
 * argument text. The ssm_model_* wrappers check arguments once so adapters need not, and
 * keep the grid bookkeeping (last_ts, nseen) that every family needs in one place.
 * Nothing here prints or touches a database.
 */
#include "model.h"

#include <ctype.h>
#include <pthread.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_cdf.h>

/* ---- errors ------------------------------------------------------------------------- */

int ssm_error_set(ssm_error *err, int code, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->detail[0] = '\0';
    err->hint[0] = '\0';
    return code;
}

void ssm_error_detail(ssm_error *err, const char *fmt, ...) {
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
}

void ssm_error_hint(ssm_error *err, const char *fmt, ...) {
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->hint, sizeof err->hint, fmt, ap);
    va_end(ap);
}

void ssm_error_clear(ssm_error *err) {
    if (!err) return;
    memset(err, 0, sizeof *err);
}

/* ---- time grid ---------------------------------------------------------------------- */

static const struct {
    const char *suffix;
    ssm_freq_unit unit;
} freq_suffixes[] = {
    /* "mo" before "m": the longest suffix wins */
    {"mo", SSM_FREQ_MONTH}, {"s", SSM_FREQ_SECOND}, {"m", SSM_FREQ_MINUTE},
    {"h", SSM_FREQ_HOUR},   {"d", SSM_FREQ_DAY},    {"w", SSM_FREQ_WEEK},
    {"q", SSM_FREQ_QUARTER}, {"y", SSM_FREQ_YEAR},
};

int ssm_freq_parse(const char *text, ssm_freq *out, ssm_error *err) {
    if (!text || !*text)
        return ssm_error_set(err, SSM_EINVAL, "empty frequency");
    const char *p = text;
    long count = 1;
    if (isdigit((unsigned char)*p)) {
        errno = 0;
        char *end;
        count = strtol(p, &end, 10);
        if (errno || count < 1 || count > 1000000) {
            ssm_error_set(err, SSM_EINVAL, "invalid frequency \"%s\"", text);
            ssm_error_detail(err, "the count must be between 1 and 1000000");
            return SSM_EINVAL;
        }
        p = end;
    }
    for (size_t i = 0; i < sizeof freq_suffixes / sizeof freq_suffixes[0]; i++) {
        if (strcmp(p, freq_suffixes[i].suffix) == 0) {
            out->unit = freq_suffixes[i].unit;
            out->count = (int)count;
            return SSM_OK;
        }
    }
    ssm_error_set(err, SSM_EINVAL, "invalid frequency \"%s\"", text);
    ssm_error_hint(err, "use a count and a unit: s, m (minutes), h, d, w, mo, q, y; e.g. 5m, 1h, 1mo");
    return SSM_EINVAL;
}

void ssm_freq_format(ssm_freq f, char *buf, size_t len) {
    static const char *names[] = {"s", "m", "h", "d", "w", "mo", "q", "y"};
    snprintf(buf, len, "%d%s", f.count, names[f.unit]);
}

/* Seconds in one step for the fixed-length units; 0 for calendar units. */
static int64_t freq_fixed_seconds(ssm_freq f) {
    switch (f.unit) {
    case SSM_FREQ_SECOND: return (int64_t)f.count;
    case SSM_FREQ_MINUTE: return 60LL * f.count;
    case SSM_FREQ_HOUR: return 3600LL * f.count;
    case SSM_FREQ_DAY: return 86400LL * f.count;
    case SSM_FREQ_WEEK: return 7 * 86400LL * f.count;
    default: return 0;
    }
}

static long freq_months(ssm_freq f) {
    switch (f.unit) {
    case SSM_FREQ_MONTH: return f.count;
    case SSM_FREQ_QUARTER: return 3L * f.count;
    case SSM_FREQ_YEAR: return 12L * f.count;
    default: return 0;
    }
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), Howard Hinnant's algorithm. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static unsigned days_in_month(int64_t y, unsigned m) {
    static const unsigned dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dm[m - 1];
}

int64_t ssm_freq_advance(ssm_freq f, int64_t t, long k) {
    int64_t fixed = freq_fixed_seconds(f);
    if (fixed) return t + fixed * (int64_t)k;
    /* Calendar step: move the civil month, clamp the day to the month's length (so a
     * month-end anchor stays a month end only when it started as one — as PostgreSQL's
     * timestamp + interval does). */
    int64_t days = floor_div(t, 86400);
    int64_t secs = t - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    int64_t mi = y * 12 + (m - 1) + (int64_t)freq_months(f) * k;
    int64_t ny = floor_div(mi, 12);
    unsigned nm = (unsigned)(mi - ny * 12) + 1;
    unsigned dim = days_in_month(ny, nm);
    if (d > dim) d = dim;
    return days_from_civil(ny, nm, d) * 86400 + secs;
}

long ssm_freq_index(ssm_freq f, int64_t t0, int64_t t, int *exact) {
    int64_t fixed = freq_fixed_seconds(f);
    long idx;
    if (fixed) {
        idx = (long)floor_div(t - t0, fixed);
    } else {
        int64_t y0, y1;
        unsigned m0, d0, m1, d1;
        civil_from_days(floor_div(t0, 86400), &y0, &m0, &d0);
        civil_from_days(floor_div(t, 86400), &y1, &m1, &d1);
        int64_t months = (y1 * 12 + m1) - (y0 * 12 + m0);
        idx = (long)floor_div(months, freq_months(f));
        /* step back if the day/time within the month puts t before the idx-th point */
        while (ssm_freq_advance(f, t0, idx) > t) idx--;
    }
    if (exact) *exact = ssm_freq_advance(f, t0, idx) == t;
    return idx;
}

int ssm_freq_season(ssm_freq f) {
    int64_t fixed = freq_fixed_seconds(f);
    if (fixed) {
        if (f.unit == SSM_FREQ_WEEK) return f.count == 1 ? 52 : 1;
        if (fixed < 86400 && 86400 % fixed == 0) return (int)(86400 / fixed); /* daily cycle */
        if (fixed == 86400) return 7;                                         /* weekly cycle */
        return 1;
    }
    long months = freq_months(f);
    if (months < 12 && 12 % months == 0) return (int)(12 / months);
    return 1;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int ssm_freq_infer(const int64_t *ts, size_t n, ssm_freq *out, ssm_error *err) {
    if (n < 2)
        return ssm_error_set(err, SSM_ETOOSHORT,
                             "cannot infer the frequency from fewer than two timestamps");
    int64_t *d = malloc((n - 1) * sizeof *d);
    if (!d) return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    for (size_t i = 1; i < n; i++) d[i - 1] = ts[i] - ts[i - 1];
    qsort(d, n - 1, sizeof *d, cmp_i64);
    /* the mode of the differences: robust to a few gaps */
    int64_t best = d[0];
    size_t best_run = 0, run = 0;
    for (size_t i = 0; i < n - 1; i++) {
        run = (i > 0 && d[i] == d[i - 1]) ? run + 1 : 1;
        if (run > best_run) best_run = run, best = d[i];
    }
    free(d);
    if (best <= 0)
        return ssm_error_set(err, SSM_EINVAL, "cannot infer the frequency: timestamps are not ascending");
    const int64_t day = 86400;
    if (best >= 28 * day && best <= 31 * day) *out = (ssm_freq){SSM_FREQ_MONTH, 1};
    else if (best >= 89 * day && best <= 92 * day) *out = (ssm_freq){SSM_FREQ_QUARTER, 1};
    else if (best >= 365 * day && best <= 366 * day) *out = (ssm_freq){SSM_FREQ_YEAR, 1};
    else if (best % (7 * day) == 0) *out = (ssm_freq){SSM_FREQ_WEEK, (int)(best / (7 * day))};
    else if (best % day == 0) *out = (ssm_freq){SSM_FREQ_DAY, (int)(best / day)};
    else if (best % 3600 == 0) *out = (ssm_freq){SSM_FREQ_HOUR, (int)(best / 3600)};
    else if (best % 60 == 0) *out = (ssm_freq){SSM_FREQ_MINUTE, (int)(best / 60)};
    else *out = (ssm_freq){SSM_FREQ_SECOND, (int)best};
    return SSM_OK;
}

/* ---- series ------------------------------------------------------------------------- */

static void format_ts(int64_t t, char *buf, size_t len) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm)) strftime(buf, len, "%Y-%m-%d %H:%M:%S+00", &tm);
    else snprintf(buf, len, "%lld", (long long)t);
}

int ssm_series_from_points(const char *name, ssm_freq freq, const int64_t *ts,
                           const double *values, size_t n, ssm_series *out, ssm_error *err) {
    memset(out, 0, sizeof *out);
    const char *nm = name ? name : "?";
    if (n == 0) return ssm_error_set(err, SSM_ETOOSHORT, "series \"%s\" has no observations", nm);
    char a[40], b[40];
    for (size_t i = 0; i < n; i++) {
        if (isinf(values[i])) {
            format_ts(ts[i], a, sizeof a);
            ssm_error_set(err, SSM_EINVAL, "series \"%s\" has an infinite value", nm);
            ssm_error_detail(err, "value %g at %s", values[i], a);
            return SSM_EINVAL;
        }
        if (i > 0 && ts[i] <= ts[i - 1]) {
            format_ts(ts[i - 1], a, sizeof a);
            format_ts(ts[i], b, sizeof b);
            ssm_error_set(err, SSM_EINVAL, "series \"%s\" has %s timestamps", nm,
                          ts[i] == ts[i - 1] ? "duplicate" : "unordered");
            ssm_error_detail(err, "%s follows %s", b, a);
            return SSM_EINVAL;
        }
    }
    int exact;
    long last = ssm_freq_index(freq, ts[0], ts[n - 1], &exact);
    if (last < 0 || (size_t)last + 1 > (size_t)50 * 1000 * 1000)
        return ssm_error_set(err, SSM_EINVAL, "series \"%s\" spans too many grid points", nm);
    size_t len = (size_t)last + 1;
    double *v = malloc(len * sizeof *v);
    if (!v) return ssm_error_set(err, SSM_ENOMEM, "out of memory for series \"%s\"", nm);
    for (size_t i = 0; i < len; i++) v[i] = NAN;
    for (size_t i = 0; i < n; i++) {
        long k = ssm_freq_index(freq, ts[0], ts[i], &exact);
        if (!exact) {
            char f[16];
            ssm_freq_format(freq, f, sizeof f);
            format_ts(ts[i], a, sizeof a);
            format_ts(ts[0], b, sizeof b);
            free(v);
            ssm_error_set(err, SSM_EINVAL, "series \"%s\" has a timestamp off its grid", nm);
            ssm_error_detail(err, "%s is not a whole number of %s steps after %s", a, f, b);
            ssm_error_hint(err, "check the series' frequency");
            return SSM_EINVAL;
        }
        v[k] = values[i];
    }
    out->name = name;
    out->freq = freq;
    out->start = ts[0];
    out->n = len;
    out->values = v;
    return SSM_OK;
}

void ssm_series_free(ssm_series *s) {
    if (!s) return;
    free(s->values);
    s->values = NULL;
    s->n = 0;
}

/* ---- forecasts ---------------------------------------------------------------------- */

int ssm_forecast_init(ssm_forecast *f, size_t horizon, const double *levels, size_t nq,
                      ssm_error *err) {
    memset(f, 0, sizeof *f);
    if (horizon == 0) return ssm_error_set(err, SSM_EINVAL, "horizon must be at least 1");
    for (size_t j = 0; j < nq; j++) {
        if (!(levels[j] > 0 && levels[j] < 1) || (j > 0 && levels[j] <= levels[j - 1]))
            return ssm_error_set(err, SSM_EINVAL,
                                 "quantile levels must be ascending and inside (0, 1)");
    }
    f->horizon = horizon;
    f->nq = nq;
    f->levels = malloc((nq ? nq : 1) * sizeof *f->levels);
    f->ts = calloc(horizon, sizeof *f->ts);
    f->mean = malloc(horizon * sizeof *f->mean);
    f->sd = malloc(horizon * sizeof *f->sd);
    f->q = malloc((nq ? horizon * nq : 1) * sizeof *f->q);
    if (!f->levels || !f->ts || !f->mean || !f->sd || !f->q) {
        ssm_forecast_free(f);
        return ssm_error_set(err, SSM_ENOMEM, "out of memory for a forecast of %zu steps", horizon);
    }
    if (nq) memcpy(f->levels, levels, nq * sizeof *levels);
    for (size_t h = 0; h < horizon; h++) f->mean[h] = f->sd[h] = NAN;
    for (size_t i = 0; i < horizon * nq; i++) f->q[i] = NAN;
    return SSM_OK;
}

void ssm_forecast_free(ssm_forecast *f) {
    if (!f) return;
    free(f->levels);
    free(f->ts);
    free(f->mean);
    free(f->sd);
    free(f->q);
    memset(f, 0, sizeof *f);
}

void ssm_forecast_gaussian_quantiles(ssm_forecast *f) {
    for (size_t j = 0; j < f->nq; j++) {
        double z = gsl_cdf_ugaussian_Pinv(f->levels[j]);
        for (size_t h = 0; h < f->horizon; h++) f->q[h * f->nq + j] = f->mean[h] + z * f->sd[h];
    }
}

/* ---- buffers ------------------------------------------------------------------------ */

int ssm_buffer_append(ssm_buffer *b, const void *data, size_t len) {
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len) cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p) return SSM_ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    return SSM_OK;
}

void ssm_buffer_free(ssm_buffer *b) {
    if (!b) return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ---- spec arguments ----------------------------------------------------------------- */

int ssm_spec_kv_parse(const char *args, ssm_spec_kv *kv, size_t max, size_t *n, ssm_error *err) {
    *n = 0;
    if (!args) return SSM_OK;
    while (isspace((unsigned char)*args)) args++;
    if (!*args) return SSM_OK;
    size_t len = strlen(args);
    if (args[0] != '(' || args[len - 1] != ')')
        return ssm_error_set(err, SSM_EINVAL, "model options must be written (key=value,...), not \"%s\"", args);
    const char *p = args + 1, *end = args + len - 1;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (!eq) return ssm_error_set(err, SSM_EINVAL, "model option \"%.*s\" is not key=value", (int)(stop - p), p);
        if (*n == max) return ssm_error_set(err, SSM_EINVAL, "too many model options in \"%s\"", args);
        const char *ks = p, *ke = eq, *vs = eq + 1, *ve = stop;
        while (ks < ke && isspace((unsigned char)*ks)) ks++;
        while (ke > ks && isspace((unsigned char)ke[-1])) ke--;
        while (vs < ve && isspace((unsigned char)*vs)) vs++;
        while (ve > vs && isspace((unsigned char)ve[-1])) ve--;
        if (ke == ks || ve == vs || (size_t)(ke - ks) >= sizeof kv->key || (size_t)(ve - vs) >= sizeof kv->value)
            return ssm_error_set(err, SSM_EINVAL, "bad model option \"%.*s\"", (int)(stop - p), p);
        memcpy(kv[*n].key, ks, (size_t)(ke - ks));
        kv[*n].key[ke - ks] = '\0';
        memcpy(kv[*n].value, vs, (size_t)(ve - vs));
        kv[*n].value[ve - vs] = '\0';
        (*n)++;
        p = stop + 1;
    }
    return SSM_OK;
}

/* ---- registry ----------------------------------------------------------------------- */

/* Each family's adapter exports a NULL-name-terminated table of kinds. models/CMakeLists.txt
 * defines SSM_HAVE_<FAMILY> for each adapter that is built (all of them in a full build;
 * SSMD_NEURAL_ONLY builds none of models/). */
#ifdef SSM_HAVE_KALMAN
extern const ssm_model_kind ssm_kalman_kinds[];
#endif
#ifdef SSM_HAVE_NEURAL
extern const ssm_model_kind ssm_neural_kinds[];
#endif
#ifdef SSM_HAVE_BASELINES
extern const ssm_model_kind ssm_baseline_kinds[];
#endif
#ifdef SSM_HAVE_AUTO
extern const ssm_model_kind ssm_auto_kinds[];
#endif

static const ssm_model_kind *const *registry_tables(void) {
    static const ssm_model_kind *const tables[] = {
#ifdef SSM_HAVE_BASELINES
        ssm_baseline_kinds,
#endif
#ifdef SSM_HAVE_KALMAN
        ssm_kalman_kinds,
#endif
#ifdef SSM_HAVE_NEURAL
        ssm_neural_kinds,
#endif
#ifdef SSM_HAVE_AUTO
        ssm_auto_kinds,
#endif
        NULL,
    };
    return tables;
}

/* The flattened list is built once (pthread_once), so concurrent callers never see it
 * half-written. */
static const ssm_model_kind *kinds_flat[128];

static void kinds_flatten(void) {
    size_t k = 0;
    for (const ssm_model_kind *const *t = registry_tables(); *t; t++)
        for (const ssm_model_kind *e = *t; e->name && k < 127; e++) kinds_flat[k++] = e;
    kinds_flat[k] = NULL;
}

const ssm_model_kind *const *ssm_model_kinds(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, kinds_flatten);
    return kinds_flat;
}

ssm_model *ssm_model_create(const char *spec, const ssm_model_opts *opts, ssm_error *err) {
    ssm_error_clear(err);
    if (!spec) {
        ssm_error_set(err, SSM_EINVAL, "no model spec given");
        return NULL;
    }
    while (isspace((unsigned char)*spec)) spec++;
    size_t nlen = 0;
    while (spec[nlen] && (isalnum((unsigned char)spec[nlen]) || spec[nlen] == '_')) nlen++;
    const char *args = spec + nlen;
    const ssm_model_kind *kind = NULL;
    for (const ssm_model_kind *const *t = registry_tables(); *t && !kind; t++)
        for (const ssm_model_kind *e = *t; e->name; e++)
            if (strlen(e->name) == nlen && strncmp(e->name, spec, nlen) == 0) {
                kind = e;
                break;
            }
    if (!kind) {
        ssm_error_set(err, SSM_EINVAL, "unknown model \"%.*s\"", (int)(nlen ? nlen : strlen(spec)), spec);
        ssm_error_hint(err, "`ssmd --help` lists the models");
        return NULL;
    }
    ssm_model *m = calloc(1, sizeof *m);
    if (!m) {
        ssm_error_set(err, SSM_ENOMEM, "out of memory");
        return NULL;
    }
    if (opts) m->opts = *opts;
    m->family = kind->family;
    snprintf(m->spec, sizeof m->spec, "%s", spec);
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)nlen, spec);
    int rc = kind->create(m, name, args, err);
    if (rc != SSM_OK) {
        if (m->ops && m->ops->destroy) m->ops->destroy(m);
        free(m);
        return NULL;
    }
    return m;
}

/* ---- wrappers ----------------------------------------------------------------------- */

int ssm_model_fit(ssm_model *m, const ssm_series *y, ssm_error *err) {
    if (!m || !y || !y->values || y->n == 0)
        return ssm_error_set(err, SSM_ETOOSHORT, "series \"%s\" is empty", y && y->name ? y->name : "?");
    for (size_t i = 0; i < y->n; i++)
        if (isinf(y->values[i]))
            return ssm_error_set(err, SSM_EINVAL, "series \"%s\" has an infinite value at position %zu",
                                 y->name ? y->name : "?", i);
    int rc = m->ops->fit(m, y, err);
    if (rc == SSM_OK) {
        m->freq = y->freq;
        m->nseen = y->n;
        m->last_ts = ssm_freq_advance(y->freq, y->start, (long)y->n - 1);
    }
    return rc;
}

int ssm_model_update(ssm_model *m, const double *values, size_t n, ssm_error *err) {
    if (n == 0) return SSM_OK;
    for (size_t i = 0; i < n; i++)
        if (isinf(values[i]))
            return ssm_error_set(err, SSM_EINVAL, "new observation %zu is infinite", i);
    if (!m->ops->update)
        return ssm_error_set(err, SSM_EUNSUPPORTED, "model \"%s\" cannot be updated incrementally", m->spec);
    int rc = m->ops->update(m, values, n, err);
    if (rc == SSM_OK) {
        m->nseen += n;
        m->last_ts = ssm_freq_advance(m->freq, m->last_ts, (long)n);
    }
    return rc;
}

int ssm_model_forecast(const ssm_model *m, ssm_forecast *f, ssm_error *err) {
    if (!f || f->horizon == 0) return ssm_error_set(err, SSM_EINVAL, "forecast horizon must be at least 1");
    for (size_t h = 0; h < f->horizon; h++) f->ts[h] = ssm_freq_advance(m->freq, m->last_ts, (long)h + 1);
    int rc = m->ops->forecast(m, f, err);
    if (rc != SSM_OK) return rc;
    for (size_t h = 0; h < f->horizon; h++) {
        if (!isfinite(f->mean[h]))
            return ssm_error_set(err, SSM_ENUMERIC, "model \"%s\" produced a non-finite forecast at step %zu",
                                 m->spec, h + 1);
        /* quantiles must not cross: enforce monotonicity whatever the family did */
        for (size_t j = 1; j < f->nq; j++)
            if (f->q[h * f->nq + j] < f->q[h * f->nq + j - 1]) f->q[h * f->nq + j] = f->q[h * f->nq + j - 1];
    }
    return SSM_OK;
}

int ssm_model_info(const ssm_model *m, ssm_fit_info *out) {
    memset(out, 0, sizeof *out);
    out->loglik = out->aic = out->aicc = out->bic = NAN;
    snprintf(out->chosen, sizeof out->chosen, "%s", m->spec);
    return m->ops->info ? m->ops->info(m, out) : SSM_OK;
}

/* Model blobs start with a small common header so the grid bookkeeping survives a
 * save/load round trip: magic "SSMB", version, freq, last_ts, nseen, spec length + spec. */
#define BLOB_MAGIC 0x424d5353u /* "SSMB" little-endian */
#define BLOB_VERSION 1u

static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get_u32(const uint8_t *p) { uint32_t v = 0; for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i); return v; }
static uint64_t get_u64(const uint8_t *p) { uint64_t v = 0; for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i); return v; }

#define BLOB_HEADER 36 /* magic, version, unit, count, last_ts(8), nseen(8), speclen(4) */

int ssm_model_save(const ssm_model *m, ssm_buffer *out, ssm_error *err) {
    if (!m->ops->save) return ssm_error_set(err, SSM_EUNSUPPORTED, "model \"%s\" cannot be saved", m->spec);
    uint8_t h[BLOB_HEADER];
    uint32_t speclen = (uint32_t)strlen(m->spec);
    put_u32(h, BLOB_MAGIC);
    put_u32(h + 4, BLOB_VERSION);
    put_u32(h + 8, (uint32_t)m->freq.unit);
    put_u32(h + 12, (uint32_t)m->freq.count);
    put_u64(h + 16, (uint64_t)m->last_ts);
    put_u64(h + 24, (uint64_t)m->nseen);
    put_u32(h + 32, speclen);
    if (ssm_buffer_append(out, h, sizeof h) || ssm_buffer_append(out, m->spec, speclen))
        return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    return m->ops->save(m, out, err);
}

int ssm_model_load(ssm_model *m, const uint8_t *data, size_t len, ssm_error *err) {
    if (!m->ops->load) return ssm_error_set(err, SSM_EUNSUPPORTED, "model \"%s\" cannot be loaded", m->spec);
    if (!data || len < BLOB_HEADER || get_u32(data) != BLOB_MAGIC)
        return ssm_error_set(err, SSM_EFORMAT, "stored model state is not an ssmd model blob");
    if (get_u32(data + 4) != BLOB_VERSION)
        return ssm_error_set(err, SSM_EFORMAT, "stored model state has version %u, expected %u",
                             get_u32(data + 4), BLOB_VERSION);
    uint32_t unit = get_u32(data + 8), count = get_u32(data + 12), speclen = get_u32(data + 32);
    if (unit > SSM_FREQ_YEAR || count < 1 || speclen > len - BLOB_HEADER)
        return ssm_error_set(err, SSM_EFORMAT, "stored model state has a corrupt header");
    if (speclen != strlen(m->spec) || memcmp(data + BLOB_HEADER, m->spec, speclen) != 0) {
        ssm_error_set(err, SSM_EFORMAT, "stored model state belongs to another model");
        ssm_error_detail(err, "stored \"%.*s\", expected \"%s\"", (int)(speclen > 200 ? 200 : speclen),
                         (const char *)(data + BLOB_HEADER), m->spec);
        return SSM_EFORMAT;
    }
    size_t off = BLOB_HEADER + speclen;
    int rc = m->ops->load(m, data + off, len - off, err);
    if (rc != SSM_OK) return rc;
    m->freq = (ssm_freq){(ssm_freq_unit)unit, (int)count};
    m->last_ts = (int64_t)get_u64(data + 16);
    m->nseen = (size_t)get_u64(data + 24);
    return SSM_OK;
}

void ssm_model_free(ssm_model *m) {
    if (!m) return;
    if (m->ops && m->ops->destroy) m->ops->destroy(m);
    free(m);
}
