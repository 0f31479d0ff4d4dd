/*
 * daemon/csvio.c — ISO 8601 timestamps and the two-column CSV files ssmd reads.
 * Parsing is strict: a row that is not a timestamp and a number (or empty) is an error
 * naming its line, because silently skipping rows would silently change forecasts.
 */
#include "csvio.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int read_digits(const char **p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int ssmd_parse_timestamp(const char *text, int64_t *out) {
    const char *p = text;
    while (isspace((unsigned char)*p)) p++;
    int y, mo, d, h = 0, mi = 0, s = 0;
    if (read_digits(&p, 4, &y) || *p++ != '-' || read_digits(&p, 2, &mo) || *p++ != '-' ||
        read_digits(&p, 2, &d))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31) return -1;
    long offset = 0;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (read_digits(&p, 2, &h) || *p++ != ':' || read_digits(&p, 2, &mi)) return -1;
        if (*p == ':') {
            p++;
            if (read_digits(&p, 2, &s)) return -1;
            if (*p == '.')
                for (p++; isdigit((unsigned char)*p); p++) {
                }
        }
        if (h > 23 || mi > 59 || s > 60) return -1;
        if (*p == 'Z') p++;
        else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1, oh, om = 0;
            p++;
            if (read_digits(&p, 2, &oh)) return -1;
            if (*p == ':') p++;
            if (isdigit((unsigned char)*p) && read_digits(&p, 2, &om)) return -1;
            offset = sign * (oh * 3600L + om * 60L);
        }
    }
    while (isspace((unsigned char)*p)) p++;
    if (*p) return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    time_t t = timegm(&tm);
    /* timegm normalises 2001-02-30 to March: reject dates that do not exist */
    struct tm back;
    if (!gmtime_r(&t, &back) || back.tm_mday != d || back.tm_mon != mo - 1) return -1;
    *out = (int64_t)t - offset;
    return 0;
}

void ssmd_format_timestamp(int64_t t, char *buf, size_t len) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm)) {
        snprintf(buf, len, "%lld", (long long)t);
        return;
    }
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int ssmd_points_push(ssmd_points *p, int64_t ts, double value, size_t line) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 1024;
        int64_t *t = realloc(p->ts, cap * sizeof *t);
        if (!t) return -1;
        p->ts = t;
        double *v = realloc(p->values, cap * sizeof *v);
        if (!v) return -1;
        p->values = v;
        size_t *l = realloc(p->lines, cap * sizeof *l);
        if (!l) return -1;
        p->lines = l;
        p->cap = cap;
    }
    p->ts[p->n] = ts;
    p->values[p->n] = value;
    p->lines[p->n] = line;
    p->n++;
    return 0;
}

void ssmd_points_free(ssmd_points *p) {
    free(p->ts);
    free(p->values);
    free(p->lines);
    memset(p, 0, sizeof *p);
}

/* Trims spaces and one pair of double quotes in place. */
static char *trim_field(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

int ssmd_csv_read_points(const char *path, ssmd_points *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: could not open: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t got;
    int rc = 0, header_seen = 0;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *s = trim_field(line);
        if (!*s) continue; /* blank lines are allowed, e.g. at the end */
        char *comma = strchr(s, ',');
        if (!comma) {
            snprintf(err, errlen, "%s:%zu: expected two columns \"ts,value\"", path, lineno);
            rc = -1;
            break;
        }
        *comma = '\0';
        char *ts_text = trim_field(s), *val_text = trim_field(comma + 1);
        if (strchr(val_text, ',')) {
            snprintf(err, errlen, "%s:%zu: expected two columns \"ts,value\", found more", path, lineno);
            rc = -1;
            break;
        }
        int64_t ts;
        if (ssmd_parse_timestamp(ts_text, &ts) != 0) {
            if (!header_seen && out->n == 0) {
                header_seen = 1; /* the header line */
                continue;
            }
            snprintf(err, errlen, "%s:%zu: invalid timestamp \"%.64s\" (expected ISO 8601, e.g. 2024-01-31 or 2024-01-31T12:00:00Z)",
                     path, lineno, ts_text);
            rc = -1;
            break;
        }
        double v = NAN;
        if (*val_text && strcmp(val_text, "NA") != 0) {
            char *end;
            errno = 0;
            v = strtod(val_text, &end);
            if (end == val_text || *end || errno == ERANGE) {
                snprintf(err, errlen, "%s:%zu: invalid value \"%.64s\" (expected a number, or empty for a missing observation)",
                         path, lineno, val_text);
                rc = -1;
                break;
            }
            if (!isfinite(v)) {
                snprintf(err, errlen, "%s:%zu: value \"%.64s\" is not finite (leave it empty for a missing observation)",
                         path, lineno, val_text);
                rc = -1;
                break;
            }
        }
        if (ssmd_points_push(out, ts, v, lineno) != 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    if (!is_stdin) fclose(f);
    if (rc != 0) ssmd_points_free(out);
    return rc;
}

int ssmd_csv_read(const char *path, const char *name, const ssm_freq *freq_or_null,
                  ssm_series *out, char *err, size_t errlen) {
    ssmd_points pts;
    memset(out, 0, sizeof *out);
    if (ssmd_csv_read_points(path, &pts, err, errlen) != 0) return -1;
    if (pts.n == 0) {
        snprintf(err, errlen, "%s: no observations", path);
        ssmd_points_free(&pts);
        return -1;
    }
    for (size_t i = 1; i < pts.n; i++) {
        if (pts.ts[i] <= pts.ts[i - 1]) {
            snprintf(err, errlen, "%s:%zu: %s timestamp (the previous row is line %zu)", path, pts.lines[i],
                     pts.ts[i] == pts.ts[i - 1] ? "duplicate" : "out-of-order", pts.lines[i - 1]);
            ssmd_points_free(&pts);
            return -1;
        }
    }
    ssm_freq freq;
    ssm_error e = {0};
    if (freq_or_null) freq = *freq_or_null;
    else if (ssm_freq_infer(pts.ts, pts.n, &freq, &e) != SSM_OK) {
        snprintf(err, errlen, "%s: %s (give --frequency)", path, e.message);
        ssmd_points_free(&pts);
        return -1;
    }
    if (ssm_series_from_points(name, freq, pts.ts, pts.values, pts.n, out, &e) != SSM_OK) {
        snprintf(err, errlen, "%s: %s%s%s", path, e.message, e.detail[0] ? ": " : "", e.detail);
        ssmd_points_free(&pts);
        return -1;
    }
    ssmd_points_free(&pts);
    return 0;
}
