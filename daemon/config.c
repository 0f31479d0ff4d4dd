/*
 * daemon/config.c — loads ssmd.yaml (libyaml) into an ssmd_config and checks it.
 *
 * Every key the file may hold is one row of `keys[]` below: where it may appear, its
 * type, its built-in default (as YAML text), its bounds and a line of documentation. The
 * loader, the defaults, `ssmd_config_describe` (the reference table in etc/CONFIG.md) and
 * `ssmd_config_print` (the effective configuration) are all driven by that table, so a
 * key cannot be parsed without being documented or documented without being parsed.
 *
 * The file is read into a libyaml document tree first; each node carries its line and
 * column, so every error says where it is and what was expected, e.g.
 *   ssmd.yaml:14:9: series "web_cpu": unknown key "horizn" (expected one of: name, ...)
 * Only the first error is reported. Unknown and duplicate keys are errors. Loading
 * never touches the database, the environment or anything but the one file; on any error
 * the partly built configuration is freed, so callers have nothing to clean up.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- the key table ----------------------------------------------------------------- */

/* Where a key may appear. Per-series keys (SEC_SERIES) may also appear under `defaults:`
 * when flagged K_DEFAULTS. */
typedef enum { SEC_TOP, SEC_DATABASE, SEC_SERIES, SEC_SOURCE } key_section;

typedef enum {
    CT_MAPPING,     /* a nested block (database, defaults) */
    CT_SERIES,      /* the list of series */
    CT_STRING,      /* any non-empty text */
    CT_NAME,        /* [A-Za-z0-9_.-]+ */
    CT_TABLE,       /* table or schema.table */
    CT_ENUM,        /* one of key->choices ("a|b|c") */
    CT_INT,         /* int within [min, max] */
    CT_DURATION,    /* int64_t seconds within [min, max] */
    CT_DURATION_MS, /* int milliseconds within [min, max] (also accepts "ms") */
    CT_FREQ,        /* ssm_freq (+ has_freq) */
    CT_QUANTILES,   /* nq + quantiles, ascending in (0,1), count within [min, max] */
    CT_MODELS,      /* nmodels + models, count within [min, max] */
    CT_SOURCE,      /* builtin | {table, time, value, where} */
    CT_WHERE        /* column: value pairs */
} key_type;

enum {
    K_SERIES = 1,   /* allowed in a series entry */
    K_DEFAULTS = 2, /* allowed under defaults: */
    K_REQUIRED = 4, /* must be given (for series keys: in the entry, or in defaults) */
    K_NULLABLE = 8  /* `key: ~` (or no key) leaves it unset (NULL) */
};

#define NO_FIELD ((size_t)-1)

typedef struct cfg_key {
    key_section section;
    const char *name;
    key_type type;
    int flags;
    size_t offset;        /* into ssmd_config, ssmd_series_cfg or ssmd_source */
    const char *def;      /* built-in default as YAML text; NULL: unset */
    int64_t min, max;     /* bounds: value (INT), seconds (DURATION), ms, list length */
    const char *choices;  /* CT_ENUM: "auto|cpu|cuda" */
    const char *doc;
} cfg_key;

#define DAY INT64_C(86400)
#define CFG(f) offsetof(ssmd_config, f)
#define SER(f) offsetof(ssmd_series_cfg, f)
#define SRC(f) offsetof(ssmd_source, f)

static const cfg_key keys[] = {
    /* top level */
    {SEC_TOP, "database", CT_MAPPING, 0, NO_FIELD, NULL, 0, 0, NULL,
     "connection settings, see the `database` table"},
    {SEC_TOP, "workers", CT_INT, 0, CFG(workers), "2", 1, 256, NULL,
     "worker threads; each holds one database connection and runs one series' cycle at a "
     "time"},
    {SEC_TOP, "device", CT_ENUM, 0, CFG(device), "auto", 0, 0, "auto|cpu|cuda",
     "where neural models train and forecast: `auto` uses a CUDA GPU when one is usable, "
     "else the CPU; `cuda` requires one"},
    {SEC_TOP, "lease", CT_DURATION, 0, CFG(lease_s), "5m", 10, DAY, NULL,
     "how long a daemon holds a series while it runs the series' cycle; when a daemon dies, "
     "another one takes the series over after this long, so make it longer than the "
     "slowest cycle (training included)"},
    {SEC_TOP, "defaults", CT_MAPPING, 0, NO_FIELD, NULL, 0, 0, NULL,
     "settings every series inherits unless it sets its own: the keys marked *yes* under "
     "*In `defaults`* in the `series` table"},
    {SEC_TOP, "series", CT_SERIES, 0, NO_FIELD, "[]", 0, 0, NULL,
     "the series to forecast, a list of mappings, see the `series` table; may be empty "
     "(e.g. for `ssmd migrate`)"},

    /* database: */
    {SEC_DATABASE, "dsn", CT_STRING, K_NULLABLE, CFG(dsn), NULL, 0, 0, NULL,
     "libpq connection string or URI, e.g. `postgresql:///ssmd` or `host=db dbname=ssmd "
     "user=ssmd`; unset: libpq's defaults (PGHOST, PGDATABASE, ...). `SSMD_DSN` and "
     "`--dsn` override it. Keep passwords in `~/.pgpass` (or `PGPASSFILE`), not here"},
    {SEC_DATABASE, "statement_timeout", CT_DURATION_MS, 0, CFG(statement_timeout_ms), "30s",
     0, 24 * DAY * 1000, NULL,
     "PostgreSQL `statement_timeout` for ssmd's sessions (`500ms` is allowed); 0 disables it"},

    /* series (and defaults) */
    {SEC_SERIES, "name", CT_NAME, K_SERIES | K_REQUIRED, SER(name), NULL, 0, 0, NULL,
     "unique name of the series: letters, digits, `_`, `.` and `-`; it names the series in "
     "`ssm.series` and so in every view and command"},
    {SEC_SERIES, "frequency", CT_FREQ, K_SERIES | K_DEFAULTS | K_REQUIRED, SER(freq), NULL,
     0, 0, NULL,
     "the grid the observations lie on: a count and a unit, `s`, `m` (minutes), `h`, `d`, "
     "`w`, `mo`, `q`, `y`, e.g. `5m`, `1h`, `1mo`; observations off the grid are rejected"},
    {SEC_SERIES, "source", CT_SOURCE, K_SERIES | K_REQUIRED, SER(source), NULL, 0, 0, NULL,
     "where the observations are: `builtin` (ssmd's own table `ssm.observations`, filled "
     "e.g. by `ssmd import`) or a mapping naming a table of yours, see the `source` table"},
    {SEC_SERIES, "group", CT_NAME, K_SERIES | K_NULLABLE, SER(group), NULL, 0, 0, NULL,
     "neural models are trained once across all the series of a group (same frequency "
     "expected); unset: the series is trained alone"},
    {SEC_SERIES, "every", CT_DURATION, K_SERIES | K_DEFAULTS, SER(every_s), "1h", 1,
     100 * 365 * DAY, NULL,
     "how often the series is forecast (new observations are read, the models updated and "
     "a forecast written)"},
    {SEC_SERIES, "refit_every", CT_DURATION, K_SERIES | K_DEFAULTS, SER(refit_every_s), "1d",
     1, 100 * 365 * DAY, NULL,
     "how often the parameters of the Kalman models are re-estimated on the whole history; "
     "in between, the stored state is only filtered forward over the new points"},
    {SEC_SERIES, "retrain_every", CT_DURATION, K_SERIES | K_DEFAULTS, SER(retrain_every_s),
     "7d", 1, 100 * 365 * DAY, NULL, "how often neural models are retrained"},
    {SEC_SERIES, "retention", CT_DURATION, K_SERIES | K_DEFAULTS, SER(retention_s), "0", 0,
     100 * 365 * DAY, NULL,
     "forecasts older than this (by issue time) are deleted; 0 keeps them forever"},
    {SEC_SERIES, "horizon", CT_INT, K_SERIES | K_DEFAULTS, SER(horizon), "24", 1, 100000,
     NULL, "number of grid steps forecast ahead"},
    {SEC_SERIES, "season", CT_INT, K_SERIES | K_DEFAULTS, SER(season), "0", 0, 100000, NULL,
     "season length in grid steps for seasonal models; 0: from the frequency (24 for 1h, "
     "7 for 1d, 12 for 1mo, 4 for 1q, 288 for 5m, ...); 1: no season"},
    {SEC_SERIES, "quantiles", CT_QUANTILES, K_SERIES | K_DEFAULTS, SER(quantiles),
     "[0.05, 0.5, 0.95]", 1, 99, NULL,
     "quantile levels written with each forecast step: strictly ascending, each in (0, 1)"},
    {SEC_SERIES, "models", CT_MODELS, K_SERIES | K_DEFAULTS, SER(models), "[local_level]", 1,
     32, NULL,
     "model specs, each fitted and forecast separately, e.g. `local_level`, `naive`, "
     "`\"sarima(1,0,1)\"`, `\"mamba(context=512)\"` (quote specs that contain `,` `[` or "
     "`:`); `ssmd check-config` builds each one to check it"},

    /* source: */
    {SEC_SOURCE, "table", CT_TABLE, K_REQUIRED, SRC(table), NULL, 0, 0, NULL,
     "table or view holding the observations, optionally schema-qualified (`metrics.cpu`); "
     "the role ssmd connects as needs SELECT on it"},
    {SEC_SOURCE, "time", CT_STRING, K_REQUIRED, SRC(time_col), NULL, 0, 0, NULL,
     "its timestamp column (`timestamptz`, or `timestamp` taken as UTC)"},
    {SEC_SOURCE, "value", CT_STRING, K_REQUIRED, SRC(value_col), NULL, 0, 0, NULL,
     "its value column (any numeric type; NULL is a missing observation)"},
    {SEC_SOURCE, "where", CT_WHERE, 0, NO_FIELD, NULL, 0, 64, NULL,
     "equality filters, `column: value` pairs, e.g. `{host: web01}`, for tables that hold "
     "many series (values are bound as parameters, never spliced into SQL)"},
};
#define NKEYS (sizeof keys / sizeof keys[0])
_Static_assert(sizeof keys / sizeof keys[0] <= 64, "`seen` masks hold 64 keys");

/* The contexts a mapping is read in; which keys each allows. */
typedef enum { CTX_TOP, CTX_DATABASE, CTX_DEFAULTS, CTX_SERIES, CTX_SOURCE } map_ctx;

static int key_allowed(const cfg_key *k, map_ctx ctx) {
    switch (ctx) {
    case CTX_TOP: return k->section == SEC_TOP;
    case CTX_DATABASE: return k->section == SEC_DATABASE;
    case CTX_DEFAULTS: return k->section == SEC_SERIES && (k->flags & K_DEFAULTS);
    case CTX_SERIES: return k->section == SEC_SERIES && (k->flags & K_SERIES);
    case CTX_SOURCE: return k->section == SEC_SOURCE;
    }
    return 0;
}

/* "a, b, c": the keys allowed in ctx, for messages. */
static const char *key_list(map_ctx ctx, char *buf, size_t len) {
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NKEYS && o < len; i++)
        if (key_allowed(&keys[i], ctx))
            o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", keys[i].name);
    return buf;
}

static const cfg_key *key_find(const char *name, map_ctx ctx) {
    for (size_t i = 0; i < NKEYS; i++)
        if (key_allowed(&keys[i], ctx) && strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

/* ---- small helpers ----------------------------------------------------------------- */

/* Our own strdup, so that every allocation of this file goes through malloc (the tests
 * make each one fail in turn). */
static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Writes text into buf as a double-quoted, escaped, one-line string, cut to about 40
 * characters, for messages. */
static const char *quote(const char *text, char *buf, size_t len) {
    size_t o = 0;
    buf[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)text; *p && o + 8 < len; p++) {
        if (p - (const unsigned char *)text >= 40) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (*p == '"' || *p == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
        } else {
            buf[o++] = (char)*p;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* Levenshtein distance of two short strings (for "did you mean"), capped at 9. */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 31 || lb > 31) return 9;
    int d[32][32];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

/* Durations: one or more <count><unit> terms ("90s", "1h30m"), or a bare "0". Units s, m,
 * h, d, w, and ms when allow_ms. Returns NULL and the total in milliseconds, or a
 * reason. */
static const char *duration_parse_ms(const char *text, int allow_ms, int64_t *ms) {
    static const struct { const char *unit; int64_t ms; } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
        {"w", 604800000}};
    if (!text || !*text) return "empty";
    if (strcmp(text, "0") == 0) {
        *ms = 0;
        return NULL;
    }
    if (text[0] == '-') return "negative";
    int64_t total = 0;
    const char *p = text;
    while (*p) {
        if (!isdigit((unsigned char)*p)) return "expected a number followed by a unit";
        int64_t n = 0;
        for (; isdigit((unsigned char)*p); p++) {
            if (n > (INT64_MAX - 9) / 10) return "too large";
            n = n * 10 + (*p - '0');
        }
        size_t ulen = 0;
        while (isalpha((unsigned char)p[ulen])) ulen++;
        if (ulen == 0) return "missing unit (s, m, h, d or w)";
        int64_t scale = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strlen(units[i].unit) == ulen && strncmp(p, units[i].unit, ulen) == 0)
                scale = units[i].ms;
        if (scale == 1 && !allow_ms) scale = 0;
        if (scale == 0) {
            if ((ulen == 2 && strncmp(p, "mo", 2) == 0) || (ulen == 1 && *p == 'y'))
                return "months and years have no fixed length; use days (30d, 365d)";
            return allow_ms ? "unknown unit (expected ms, s, m, h, d or w)"
                            : "unknown unit (expected s, m, h, d or w)";
        }
        if (n > INT64_MAX / scale || total > INT64_MAX - n * scale) return "too large";
        total += n * scale;
        p += ulen;
    }
    *ms = total;
    return NULL;
}

int ssmd_duration_parse(const char *text, int64_t *seconds) {
    int64_t ms;
    if (!seconds || duration_parse_ms(text, 0, &ms)) return -1;
    *seconds = ms / 1000;
    return 0;
}

/* Writes a duration in seconds in its largest exact unit ("90s", "5m", "7d", "2w"). */
static void duration_format(int64_t s, char *buf, size_t len) {
    static const struct { const char *unit; int64_t s; } units[] = {
        {"w", 604800}, {"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}};
    if (s == 0) {
        snprintf(buf, len, "0");
        return;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (s % units[i].s == 0) {
            snprintf(buf, len, "%lld%s", (long long)(s / units[i].s), units[i].unit);
            return;
        }
}

static void duration_ms_format(int64_t ms, char *buf, size_t len) {
    if (ms % 1000 == 0)
        duration_format(ms / 1000, buf, len);
    else
        snprintf(buf, len, "%lldms", (long long)ms);
}

static int name_ok(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-') return 0;
    return 1;
}

/* Model specs are only checked for shape here (non-empty, brackets balanced and
 * nested); what they mean is checked by ssm_model_create. */
static const char *spec_problem(const char *s) {
    char stack[32];
    size_t depth = 0;
    if (!*s) return "is empty";
    if (isspace((unsigned char)s[0]) || isspace((unsigned char)s[strlen(s) - 1]))
        return "has leading or trailing spaces";
    if (strlen(s) >= sizeof(((ssm_model *)0)->spec)) return "is too long";
    for (; *s; s++) {
        if (*s == '(' || *s == '[') {
            if (depth == sizeof stack) return "is nested too deeply";
            stack[depth++] = *s == '(' ? ')' : ']';
        } else if (*s == ')' || *s == ']') {
            if (depth == 0 || stack[depth - 1] != *s) return "has unbalanced brackets";
            depth--;
        }
    }
    return depth ? "has unbalanced brackets" : NULL;
}

/* ---- the loader -------------------------------------------------------------------- */

typedef struct loader {
    const char *file;        /* name used in messages */
    yaml_document_t *doc;
    char *err;
    size_t errlen;
    char where[200];         /* context prefix: `series "web_cpu": ` */
    const char *keyprefix;   /* "database.", "defaults.", "source." or "" */
    const char *text;        /* the whole file, for locating reader errors */
    size_t len;
} loader;

__attribute__((format(printf, 3, 4)))
static int fail(loader *L, yaml_mark_t mark, const char *fmt, ...) {
    if (!L->err || L->errlen == 0) return -1;
    int n = snprintf(L->err, L->errlen, "%s:%zu:%zu: %s", L->file, mark.line + 1,
                     mark.column + 1, L->where);
    if (n >= 0 && (size_t)n < L->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(L->err + n, L->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int oom(loader *L, yaml_mark_t mark) { return fail(L, mark, "out of memory"); }

static yaml_node_t *node(loader *L, int id) { return yaml_document_get_node(L->doc, id); }

static int is_null(const yaml_node_t *n) {
    if (n->type != YAML_SCALAR_NODE) return 0;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
           !strcmp(v, "NULL");
}

/* What was found, for "expected X, got Y". */
static const char *got(const yaml_node_t *n, char *buf, size_t len) {
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    if (n->type != YAML_SCALAR_NODE) return "nothing";
    if (is_null(n)) return "nothing";
    return quote((const char *)n->data.scalar.value, buf, len);
}

/* What a key expects, in words, for messages and for the reference table. */
static void key_expects(const cfg_key *k, char *buf, size_t len) {
    char a[32], b[32];
    switch (k->type) {
    case CT_MAPPING: snprintf(buf, len, "a mapping"); break;
    case CT_SERIES: snprintf(buf, len, "a list of series (mappings)"); break;
    case CT_STRING: snprintf(buf, len, "a string"); break;
    case CT_NAME: snprintf(buf, len, "a name made of letters, digits, '_', '.' and '-'"); break;
    case CT_TABLE: snprintf(buf, len, "a table name, optionally schema-qualified"); break;
    case CT_ENUM: {
        size_t o = (size_t)snprintf(buf, len, "one of");
        for (const char *c = k->choices; *c && o < len;) {
            size_t cl = strcspn(c, "|");
            o += (size_t)snprintf(buf + o, len - o, "%s %.*s", c == k->choices ? "" : ",",
                                  (int)cl, c);
            c += cl + (c[cl] == '|');
        }
        break;
    }
    case CT_INT:
        snprintf(buf, len, "an integer from %lld to %lld", (long long)k->min, (long long)k->max);
        break;
    case CT_DURATION:
        duration_format(k->min, a, sizeof a);
        duration_format(k->max, b, sizeof b);
        snprintf(buf, len, "a duration from %s to %s such as 30s, 5m, 1h, 7d", a, b);
        break;
    case CT_DURATION_MS:
        duration_ms_format(k->min, a, sizeof a);
        duration_ms_format(k->max, b, sizeof b);
        snprintf(buf, len, "a duration from %s to %s such as 500ms, 30s, 5m", a, b);
        break;
    case CT_FREQ: snprintf(buf, len, "a frequency such as 30s, 5m, 1h, 1d, 1w, 1mo, 1q, 1y"); break;
    case CT_QUANTILES:
        snprintf(buf, len, "a list of ascending levels in (0, 1) such as [0.05, 0.5, 0.95]");
        break;
    case CT_MODELS: snprintf(buf, len, "a list of model specs such as [local_level]"); break;
    case CT_SOURCE:
        snprintf(buf, len, "builtin or a mapping with keys table, time, value, where");
        break;
    case CT_WHERE: snprintf(buf, len, "a mapping of column: value"); break;
    }
}

static int fail_expected(loader *L, const cfg_key *k, const yaml_node_t *n) {
    char e[160], g[64];
    key_expects(k, e, sizeof e);
    return fail(L, n->start_mark, "%s%s: expected %s, got %s", L->keyprefix, k->name, e,
                got(n, g, sizeof g));
}

/* The scalar text of n, or fails with "expected ...". NUL bytes inside are refused
 * (libyaml allows "\0" in double-quoted scalars). */
static const char *scalar(loader *L, const cfg_key *k, const yaml_node_t *n) {
    if (n->type != YAML_SCALAR_NODE || is_null(n)) {
        fail_expected(L, k, n);
        return NULL;
    }
    const char *v = (const char *)n->data.scalar.value;
    if (strlen(v) != n->data.scalar.length) {
        fail(L, n->start_mark, "%s%s: contains a NUL character", L->keyprefix, k->name);
        return NULL;
    }
    return v;
}

static int parse_int(const char *t, long long *v) {
    const char *p = t;
    int neg = 0;
    if (*p == '-') neg = 1, p++;
    if (!isdigit((unsigned char)*p)) return -1;
    long long x = 0;
    for (; isdigit((unsigned char)*p); p++) {
        if (x > (LLONG_MAX - 9) / 10) return -1;
        x = x * 10 + (*p - '0');
    }
    if (*p) return -1;
    *v = neg ? -x : x;
    return 0;
}

/* Sets a scalar-typed key from text (from the file, or a built-in default with n ==
 * NULL). dst points at the field. */
static int set_scalar(loader *L, const cfg_key *k, const char *text, const yaml_node_t *n,
                      void *base) {
    void *dst = (char *)base + k->offset;
    yaml_mark_t mark = n ? n->start_mark : (yaml_mark_t){0, 0, 0};
    char e[160], q[64];
    switch (k->type) {
    case CT_STRING:
    case CT_NAME:
    case CT_TABLE:
    case CT_ENUM: {
        if (k->type == CT_NAME && !name_ok(text)) {
            key_expects(k, e, sizeof e);
            return fail(L, mark, "%s%s: invalid name %s (expected %s)", L->keyprefix,
                        k->name, quote(text, q, sizeof q), e);
        }
        if (k->type == CT_TABLE) {
            const char *dot = strchr(text, '.');
            if (!*text || text[0] == '.' || (dot && (!dot[1] || strchr(dot + 1, '.'))))
                return fail(L, mark, "%s%s: invalid table name %s (expected table or "
                            "schema.table)", L->keyprefix, k->name, quote(text, q, sizeof q));
        }
        if (k->type == CT_ENUM) {
            size_t tl = strlen(text);
            int ok = 0;
            for (const char *c = k->choices; *c;) {
                size_t cl = strcspn(c, "|");
                if (cl == tl && strncmp(c, text, cl) == 0) ok = 1;
                c += cl + (c[cl] == '|');
            }
            if (!ok) {
                key_expects(k, e, sizeof e);
                return fail(L, mark, "%s%s: expected %s, got %s", L->keyprefix, k->name, e,
                            quote(text, q, sizeof q));
            }
        }
        if (!*text)
            return fail(L, mark, "%s%s: expected a non-empty string", L->keyprefix, k->name);
        char *copy = xstrdup(text);
        if (!copy) return oom(L, mark);
        char **field = dst;
        free(*field);
        *field = copy;
        return 0;
    }
    case CT_INT: {
        long long v;
        if (parse_int(text, &v) || v < k->min || v > k->max) {
            key_expects(k, e, sizeof e);
            return fail(L, mark, "%s%s: expected %s, got %s", L->keyprefix, k->name, e,
                        quote(text, q, sizeof q));
        }
        *(int *)dst = (int)v;
        return 0;
    }
    case CT_DURATION:
    case CT_DURATION_MS: {
        int64_t ms;
        const char *why = duration_parse_ms(text, k->type == CT_DURATION_MS, &ms);
        int64_t v = k->type == CT_DURATION ? ms / 1000 : ms;
        if (!why && k->type == CT_DURATION && ms % 1000) why = "not a whole number of seconds";
        if (!why && (v < k->min || v > k->max)) why = "out of range";
        if (why) {
            key_expects(k, e, sizeof e);
            return fail(L, mark, "%s%s: invalid duration %s: %s (expected %s)", L->keyprefix,
                        k->name, quote(text, q, sizeof q), why, e);
        }
        if (k->type == CT_DURATION)
            *(int64_t *)dst = v;
        else
            *(int *)dst = (int)v;
        return 0;
    }
    case CT_FREQ: {
        ssm_error err = {0};
        ssm_freq f;
        if (ssm_freq_parse(text, &f, &err) != SSM_OK) {
            key_expects(k, e, sizeof e);
            return fail(L, mark, "%s%s: invalid frequency %s (expected %s)", L->keyprefix,
                        k->name, quote(text, q, sizeof q), e);
        }
        ssmd_series_cfg *s = base;
        s->freq = f;
        s->has_freq = 1;
        return 0;
    }
    default:
        return fail(L, mark, "%s%s: internal error: not a scalar key", L->keyprefix, k->name);
    }
}

/* One list item: its text and where it is (mark unused for built-in defaults). */
typedef struct item {
    const char *text;
    yaml_mark_t mark;
} item;

static int set_quantiles(loader *L, const cfg_key *k, const item *it, size_t n,
                         yaml_mark_t listmark, ssmd_series_cfg *s) {
    char q[64];
    if (n < (size_t)k->min || n > (size_t)k->max)
        return fail(L, listmark, "%s%s: expected from %lld to %lld levels, got %zu",
                    L->keyprefix, k->name, (long long)k->min, (long long)k->max, n);
    double *v = malloc(n * sizeof *v);
    if (!v) return oom(L, listmark);
    for (size_t i = 0; i < n; i++) {
        char *end;
        errno = 0;
        v[i] = strtod(it[i].text, &end);
        const char *why = NULL;
        if (end == it[i].text || *end || errno || !isfinite(v[i]))
            why = "not a number";
        else if (!(v[i] > 0.0 && v[i] < 1.0))
            why = "out of range (expected a level strictly between 0 and 1)";
        else if (i > 0 && v[i] == v[i - 1])
            why = "listed twice";
        else if (i > 0 && v[i] < v[i - 1])
            why = "not ascending (levels must be listed in increasing order)";
        if (why) {
            free(v);
            return fail(L, it[i].mark, "%s%s: level %s %s", L->keyprefix, k->name,
                        quote(it[i].text, q, sizeof q), why);
        }
    }
    free(s->quantiles);
    s->quantiles = v;
    s->nq = n;
    return 0;
}

static void models_free(char **m, size_t n) {
    for (size_t i = 0; i < n; i++) free(m[i]);
    free(m);
}

static int set_models(loader *L, const cfg_key *k, const item *it, size_t n,
                      yaml_mark_t listmark, ssmd_series_cfg *s) {
    char q[64];
    if (n < (size_t)k->min || n > (size_t)k->max)
        return fail(L, listmark, "%s%s: expected from %lld to %lld model specs, got %zu",
                    L->keyprefix, k->name, (long long)k->min, (long long)k->max, n);
    for (size_t i = 0; i < n; i++) {
        const char *why = spec_problem(it[i].text);
        if (why)
            return fail(L, it[i].mark, "%s%s: model spec %s %s (expected e.g. local_level or "
                        "\"sarima(1,0,1)\"; in a [flow, list], quote specs that contain commas)",
                        L->keyprefix, k->name, quote(it[i].text, q, sizeof q), why);
        for (size_t j = 0; j < i; j++)
            if (strcmp(it[i].text, it[j].text) == 0)
                return fail(L, it[i].mark, "%s%s: model spec %s is listed twice",
                            L->keyprefix, k->name, quote(it[i].text, q, sizeof q));
    }
    char **m = calloc(n, sizeof *m);
    int *lines = malloc(n * sizeof *lines), *cols = malloc(n * sizeof *cols);
    if (!m || !lines || !cols) {
        free(m);
        free(lines);
        free(cols);
        return oom(L, listmark);
    }
    for (size_t i = 0; i < n; i++) {
        /* built-in defaults have no position: their marks are all zero */
        int placed = it[i].mark.line || it[i].mark.column;
        lines[i] = placed ? (int)it[i].mark.line + 1 : 0;
        cols[i] = placed ? (int)it[i].mark.column + 1 : 0;
        if (!(m[i] = xstrdup(it[i].text))) {
            models_free(m, n);
            free(lines);
            free(cols);
            return oom(L, it[i].mark);
        }
    }
    models_free(s->models, s->nmodels);
    free(s->model_lines);
    free(s->model_cols);
    s->models = m;
    s->model_lines = lines;
    s->model_cols = cols;
    s->nmodels = n;
    return 0;
}

/* Gathers a sequence node's scalar items. *out is malloc'ed (NULL when empty). */
static int list_items(loader *L, const cfg_key *k, const yaml_node_t *n, item **out,
                      size_t *nout) {
    *out = NULL;
    *nout = 0;
    if (n->type != YAML_SEQUENCE_NODE) return fail_expected(L, k, n);
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt == 0) return 0;
    item *it = malloc(cnt * sizeof *it);
    if (!it) return oom(L, n->start_mark);
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *c = node(L, n->data.sequence.items.start[i]);
        char e[160], g[64];
        if (c->type != YAML_SCALAR_NODE || is_null(c) ||
            strlen((const char *)c->data.scalar.value) != c->data.scalar.length) {
            key_expects(k, e, sizeof e);
            free(it);
            return fail(L, c->start_mark, "%s%s: item %zu: expected %s, got %s%s",
                        L->keyprefix, k->name, i + 1, e, got(c, g, sizeof g),
                        c->type == YAML_SCALAR_NODE && !is_null(c) ? " (with a NUL)" : "");
        }
        it[i] = (item){(const char *)c->data.scalar.value, c->start_mark};
    }
    *out = it;
    *nout = cnt;
    return 0;
}

/* Splits a built-in list default "[a, b(1,2), c]" into items, in place in buf. */
static size_t split_default(char *buf, item *it, size_t max) {
    size_t n = 0, depth = 0;
    char *p = buf + 1, *start = p;
    buf[strlen(buf) - 1] = '\0';
    for (;; p++) {
        if (*p == '(' || *p == '[') depth++;
        if (*p == ')' || *p == ']') depth--;
        if ((*p == ',' && depth == 0) || !*p) {
            int end = !*p;
            *p = '\0';
            while (*start == ' ') start++;
            if (*start && n < max) it[n++] = (item){start, {0, 0, 0}};
            if (end) break;
            start = p + 1;
        }
    }
    return n;
}

static void source_free(ssmd_source *s) {
    free(s->table);
    free(s->time_col);
    free(s->value_col);
    for (size_t i = 0; i < s->nwhere; i++) {
        free(s->where_keys[i]);
        free(s->where_values[i]);
    }
    free(s->where_keys);
    free(s->where_values);
    memset(s, 0, sizeof *s);
}

static void series_free(ssmd_series_cfg *s) {
    free(s->name);
    free(s->group);
    source_free(&s->source);
    free(s->quantiles);
    models_free(s->models, s->nmodels);
    free(s->model_lines);
    free(s->model_cols);
    memset(s, 0, sizeof *s);
}

/* Applies a key's built-in default (the same parsing as the file's text). */
static int apply_default(loader *L, const cfg_key *k, void *base) {
    if (!k->def || k->offset == NO_FIELD) return 0;
    if (k->type == CT_QUANTILES || k->type == CT_MODELS) {
        char buf[128];
        item it[8];
        snprintf(buf, sizeof buf, "%s", k->def);
        size_t n = split_default(buf, it, 8);
        yaml_mark_t m = {0, 0, 0};
        return k->type == CT_QUANTILES ? set_quantiles(L, k, it, n, m, base)
                                       : set_models(L, k, it, n, m, base);
    }
    return set_scalar(L, k, k->def, NULL, base);
}

static int read_mapping(loader *L, const yaml_node_t *n, map_ctx ctx, void *base,
                        uint64_t *seen);

static int read_where(loader *L, const cfg_key *k, const yaml_node_t *n, ssmd_source *src) {
    if (n->type != YAML_MAPPING_NODE) return fail_expected(L, k, n);
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (cnt > (size_t)k->max)
        return fail(L, n->start_mark, "%swhere: at most %lld filters, got %zu", L->keyprefix,
                    (long long)k->max, cnt);
    if (cnt == 0) return 0;
    src->where_keys = calloc(cnt, sizeof(char *));
    src->where_values = calloc(cnt, sizeof(char *));
    if (!src->where_keys || !src->where_values) return oom(L, n->start_mark);
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        const yaml_node_t *kn = node(L, p->key), *vn = node(L, p->value);
        char g[64];
        if (kn->type != YAML_SCALAR_NODE || is_null(kn) ||
            strlen((const char *)kn->data.scalar.value) != kn->data.scalar.length)
            return fail(L, kn->start_mark, "%swhere: expected a column name, got %s",
                        L->keyprefix, got(kn, g, sizeof g));
        const char *col = (const char *)kn->data.scalar.value;
        for (size_t j = 0; j < i; j++)
            if (strcmp(src->where_keys[j], col) == 0)
                return fail(L, kn->start_mark, "%swhere: duplicate column %s", L->keyprefix,
                            quote(col, g, sizeof g));
        if (vn->type != YAML_SCALAR_NODE || is_null(vn) ||
            strlen((const char *)vn->data.scalar.value) != vn->data.scalar.length)
            return fail(L, vn->start_mark, "%swhere.%s: expected a value to compare the "
                        "column with, got %s", L->keyprefix, col, got(vn, g, sizeof g));
        src->where_keys[i] = xstrdup(col);
        src->where_values[i] = xstrdup((const char *)vn->data.scalar.value);
        src->nwhere = i + 1;  /* so that ssmd_config_free frees what this step allocated */
        if (!src->where_keys[i] || !src->where_values[i]) return oom(L, kn->start_mark);
    }
    return 0;
}

static int read_source(loader *L, const cfg_key *k, const yaml_node_t *n, ssmd_source *src) {
    source_free(src);
    src->line = (int)n->start_mark.line + 1;
    if (n->type == YAML_SCALAR_NODE && !is_null(n) &&
        strcmp((const char *)n->data.scalar.value, "builtin") == 0) {
        src->builtin = 1;
        return 0;
    }
    if (n->type != YAML_MAPPING_NODE) return fail_expected(L, k, n);
    const char *saved = L->keyprefix;
    L->keyprefix = "source.";
    uint64_t seen = 0;
    int rc = read_mapping(L, n, CTX_SOURCE, src, &seen);
    for (size_t i = 0; rc == 0 && i < NKEYS; i++)
        if (key_allowed(&keys[i], CTX_SOURCE) && (keys[i].flags & K_REQUIRED) &&
            !(seen & (UINT64_C(1) << i)))
            rc = fail(L, n->start_mark, "source: missing key \"%s\" (a source is `builtin` "
                      "or a mapping with table, time and value)", keys[i].name);
    L->keyprefix = saved;
    return rc;
}

/* Sets one key from its value node. */
static int set_key(loader *L, const cfg_key *k, const yaml_node_t *v, void *base) {
    switch (k->type) {
    case CT_MAPPING:
    case CT_SERIES:
        return 0;  /* structural, read by the caller */
    case CT_QUANTILES:
    case CT_MODELS: {
        item *it;
        size_t n;
        if (list_items(L, k, v, &it, &n)) return -1;
        int rc = k->type == CT_QUANTILES ? set_quantiles(L, k, it, n, v->start_mark, base)
                                         : set_models(L, k, it, n, v->start_mark, base);
        free(it);
        return rc;
    }
    case CT_SOURCE: return read_source(L, k, v, (ssmd_source *)((char *)base + k->offset));
    case CT_WHERE: return read_where(L, k, v, base);
    default:
        if ((k->flags & K_NULLABLE) &&
            (is_null(v) || (v->type == YAML_SCALAR_NODE && v->data.scalar.length == 0))) {
            char **field = (char **)((char *)base + k->offset);
            free(*field);
            *field = NULL;
            return 0;
        }
        {
            const char *t = scalar(L, k, v);
            return t ? set_scalar(L, k, t, v, base) : -1;
        }
    }
}

/* Reads a mapping in the given context: every key must be known there and given once.
 * seen collects the keys' table indices. */
static int read_mapping(loader *L, const yaml_node_t *n, map_ctx ctx, void *base,
                        uint64_t *seen) {
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        const yaml_node_t *kn = node(L, p->key), *vn = node(L, p->value);
        char g[64], q[64];
        if (kn->type != YAML_SCALAR_NODE || is_null(kn))
            return fail(L, kn->start_mark, "expected a key name, got %s", got(kn, g, sizeof g));
        const char *name = (const char *)kn->data.scalar.value;
        const cfg_key *k = key_find(name, ctx);
        if (!k) {
            char list[400];
            const char *best = NULL;
            int bestd = 3;
            for (size_t j = 0; j < NKEYS; j++) {
                if (!key_allowed(&keys[j], ctx)) continue;
                int d = edit_distance(name, keys[j].name);
                if (d < bestd) bestd = d, best = keys[j].name;
            }
            key_list(ctx, list, sizeof list);
            const char *what = ctx == CTX_TOP ? "unknown top-level key" : "unknown key";
            static const char *const ctxname[] = {"", "database: ", "defaults: ", "", "source: "};
            char hint[80] = "";
            if (best) snprintf(hint, sizeof hint, "; did you mean \"%s\"?", best);
            return fail(L, kn->start_mark, "%s%s %s (expected one of: %s)%s", ctxname[ctx], what, quote(name, q, sizeof q),
                        list, hint);
        }
        uint64_t bit = UINT64_C(1) << (size_t)(k - keys);
        if (*seen & bit) {
            size_t first = 0;
            for (size_t j = 0; j < i; j++) {
                const yaml_node_t *pk = node(L, n->data.mapping.pairs.start[j].key);
                if (pk->type == YAML_SCALAR_NODE &&
                    strcmp((const char *)pk->data.scalar.value, name) == 0) {
                    first = pk->start_mark.line + 1;
                    break;
                }
            }
            static const char *const ctxname[] = {"", "database: ", "defaults: ", "", "source: "};
            return fail(L, kn->start_mark, "%sduplicate key %s (first given at line %zu)",
                        ctxname[ctx], quote(name, q, sizeof q), first);
        }
        *seen |= bit;
        if (set_key(L, k, vn, base)) return -1;
    }
    return 0;
}

/* Copies the inherited settings of the defaults block into a fresh series entry. */
static int inherit(const ssmd_series_cfg *d, ssmd_series_cfg *s) {
    s->freq = d->freq;
    s->has_freq = d->has_freq;
    s->every_s = d->every_s;
    s->refit_every_s = d->refit_every_s;
    s->retrain_every_s = d->retrain_every_s;
    s->retention_s = d->retention_s;
    s->horizon = d->horizon;
    s->season = d->season;
    if (d->nq) {
        if (!(s->quantiles = malloc(d->nq * sizeof *s->quantiles))) return -1;
        memcpy(s->quantiles, d->quantiles, d->nq * sizeof *s->quantiles);
        s->nq = d->nq;
    }
    if (d->nmodels) {
        if (!(s->models = calloc(d->nmodels, sizeof *s->models))) return -1;
        s->nmodels = d->nmodels;
        if (!(s->model_lines = malloc(d->nmodels * sizeof *s->model_lines))) return -1;
        if (!(s->model_cols = malloc(d->nmodels * sizeof *s->model_cols))) return -1;
        memcpy(s->model_lines, d->model_lines, d->nmodels * sizeof *s->model_lines);
        memcpy(s->model_cols, d->model_cols, d->nmodels * sizeof *s->model_cols);
        for (size_t i = 0; i < d->nmodels; i++)
            if (!(s->models[i] = xstrdup(d->models[i]))) return -1;
    }
    return 0;
}

static int read_series_list(loader *L, const yaml_node_t *n, ssmd_config *cfg) {
    char list[400];
    if (is_null(n)) return 0;  /* `series:` with nothing under it */
    if (n->type != YAML_SEQUENCE_NODE) return fail_expected(L, key_find("series", CTX_TOP), n);
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt == 0) return 0;
    cfg->series = calloc(cnt, sizeof *cfg->series);
    if (!cfg->series) return oom(L, n->start_mark);
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *e = node(L, n->data.sequence.items.start[i]);
        ssmd_series_cfg *s = &cfg->series[i];
        cfg->nseries = i + 1;
        snprintf(L->where, sizeof L->where, "series #%zu: ", i + 1);
        L->keyprefix = "";
        if (e->type != YAML_MAPPING_NODE) {
            char g[64];
            return fail(L, e->start_mark, "expected a mapping with keys %s, got %s",
                        key_list(CTX_SERIES, list, sizeof list), got(e, g, sizeof g));
        }
        s->line = (int)e->start_mark.line + 1;
        /* Name the entry in messages as early as possible: find `name` first. */
        const yaml_node_t *name_node = NULL;
        size_t np = (size_t)(e->data.mapping.pairs.top - e->data.mapping.pairs.start);
        for (size_t j = 0; j < np; j++) {
            const yaml_node_t *kn = node(L, e->data.mapping.pairs.start[j].key);
            const yaml_node_t *vn = node(L, e->data.mapping.pairs.start[j].value);
            if (kn->type == YAML_SCALAR_NODE && strcmp((char *)kn->data.scalar.value, "name") == 0) {
                name_node = vn;
                if (vn->type == YAML_SCALAR_NODE && !is_null(vn) &&
                    strlen((const char *)vn->data.scalar.value) == vn->data.scalar.length &&
                    name_ok((const char *)vn->data.scalar.value)) {
                    char q[64];
                    snprintf(L->where, sizeof L->where, "series %s: ",
                             quote((const char *)vn->data.scalar.value, q, sizeof q));
                }
                break;
            }
        }
        if (inherit(&cfg->defaults, s)) return oom(L, e->start_mark);
        uint64_t seen = 0;
        if (read_mapping(L, e, CTX_SERIES, s, &seen)) return -1;
        for (size_t j = 0; j < NKEYS; j++) {
            const cfg_key *k = &keys[j];
            if (!key_allowed(k, CTX_SERIES) || !(k->flags & K_REQUIRED) || (seen & (UINT64_C(1) << j)))
                continue;
            if (k->type == CT_FREQ && s->has_freq) continue;  /* from defaults */
            const char *example = k->type == CT_FREQ     ? " (e.g. frequency: 1h)"
                                  : k->type == CT_SOURCE ? " (e.g. source: builtin)"
                                                         : " (e.g. name: web_cpu)";
            return fail(L, e->start_mark, "missing required key \"%s\"%s", k->name, example);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->series[j].name, s->name) == 0) {
                L->where[0] = '\0';
                char q[64];
                return fail(L, name_node->start_mark, "duplicate series name %s (also defined "
                            "at line %d)", quote(s->name, q, sizeof q), cfg->series[j].line);
            }
    }
    L->where[0] = '\0';
    return 0;
}

static int read_document(loader *L, ssmd_config *cfg) {
    const yaml_node_t *root = yaml_document_get_root_node(L->doc);
    yaml_mark_t start = {0, 0, 0};
    char list[400], g[64];
    if (!root)
        return fail(L, start, "the file is empty (expected a mapping with keys %s)",
                    key_list(CTX_TOP, list, sizeof list));
    if (root->type != YAML_MAPPING_NODE)
        return fail(L, root->start_mark, "expected a mapping with keys %s at the top level, "
                    "got %s", key_list(CTX_TOP, list, sizeof list), got(root, g, sizeof g));
    /* Built-in defaults first, from the same table. */
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_key *k = &keys[i];
        int rc = 0;
        if (k->section == SEC_TOP || k->section == SEC_DATABASE)
            rc = apply_default(L, k, cfg);
        else if (k->section == SEC_SERIES && (k->flags & K_DEFAULTS))
            rc = apply_default(L, k, &cfg->defaults);
        if (rc) return -1;
    }
    /* The top level, then database and defaults, then the series (which inherit from
     * defaults wherever it is in the file). */
    uint64_t seen = 0;
    if (read_mapping(L, root, CTX_TOP, cfg, &seen)) return -1;
    const yaml_node_t *sections[3] = {NULL, NULL, NULL};
    size_t cnt = (size_t)(root->data.mapping.pairs.top - root->data.mapping.pairs.start);
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_pair_t *p = &root->data.mapping.pairs.start[i];
        const char *name = (const char *)node(L, p->key)->data.scalar.value;
        if (!strcmp(name, "database")) sections[0] = node(L, p->value);
        if (!strcmp(name, "defaults")) sections[1] = node(L, p->value);
        if (!strcmp(name, "series")) sections[2] = node(L, p->value);
    }
    const cfg_key *mk[2] = {key_find("database", CTX_TOP), key_find("defaults", CTX_TOP)};
    static const char *const prefix[2] = {"database.", "defaults."};
    for (int s = 0; s < 2; s++) {
        const yaml_node_t *m = sections[s];
        if (!m || is_null(m)) continue;
        if (m->type != YAML_MAPPING_NODE) return fail_expected(L, mk[s], m);
        L->keyprefix = prefix[s];
        uint64_t sn = 0;
        if (read_mapping(L, m, s == 0 ? CTX_DATABASE : CTX_DEFAULTS,
                         s == 0 ? (void *)cfg : (void *)&cfg->defaults, &sn))
            return -1;
        L->keyprefix = "";
    }
    if (sections[2]) return read_series_list(L, sections[2], cfg);
    return 0;
}

/* The YAML syntax error of a failed parser, with libyaml's mark. */
static int syntax_error(loader *L, yaml_parser_t *p) {
    yaml_mark_t m = p->problem_mark;
    const char *problem = p->problem ? p->problem : "could not parse";
    if (p->error == YAML_MEMORY_ERROR) return oom(L, m);
    /* At the end of a text without a final newline libyaml moves to a line past it:
     * point at the end of the last line instead. */
    size_t nl = 0, last = 0;
    for (size_t i = 0; i < L->len; i++)
        if (L->text[i] == '\n') nl++, last = i + 1;
    if (m.line > nl) {
        m.line = nl;
        m.column = 0;
        for (size_t i = last; i < L->len; i++)
            m.column += ((unsigned char)L->text[i] & 0xc0) != 0x80;
    }
    if (p->error == YAML_READER_ERROR) {
        /* reader errors (bad UTF-8, control characters) carry a byte offset, not a mark */
        m = (yaml_mark_t){p->problem_offset, 0, 0};
        for (size_t i = 0; i < p->problem_offset && i < L->len; i++) {
            if (L->text[i] == '\n') {
                m.line++;
                m.column = 0;
            } else if (((unsigned char)L->text[i] & 0xc0) != 0x80) {
                m.column++;  /* count characters, not UTF-8 continuation bytes */
            }
        }
        return fail(L, m, "invalid text: %s (expected UTF-8 text without control "
                    "characters)", problem);
    }
    if (p->context)
        return fail(L, m, "YAML syntax error: %s %s (line %zu, column %zu)", problem,
                    p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    return fail(L, m, "YAML syntax error: %s", problem);
}

int ssmd_config_parse(const char *name, const char *text, size_t len, ssmd_config *out,
                      char *err, size_t errlen) {
    loader L = {.file = name ? name : "<config>", .err = err, .errlen = errlen, .keyprefix = "",
                .text = text, .len = len};
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (err && errlen) err[0] = '\0';
    if (!yaml_parser_initialize(&parser)) return oom(&L, (yaml_mark_t){0, 0, 0});
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(&L, &parser);
        yaml_parser_delete(&parser);
        return -1;
    }
    L.doc = &doc;
    if (!(out->path = xstrdup(L.file))) {
        oom(&L, (yaml_mark_t){0, 0, 0});
    } else if (read_document(&L, out) == 0) {
        /* One document per file: a second one is most likely a stray `---`. */
        if (!yaml_parser_load(&parser, &extra)) {
            syntax_error(&L, &parser);
        } else {
            yaml_node_t *r = yaml_document_get_root_node(&extra);
            if (r)
                fail(&L, r->start_mark, "a second YAML document (expected one document; "
                     "remove the extra `---`)");
            else
                rc = 0;
            yaml_document_delete(&extra);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc) ssmd_config_free(out);
    return rc;
}

int ssmd_config_load(const char *path, ssmd_config *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (err && errlen) snprintf(err, errlen, "%s: could not open: %s", path, strerror(errno));
        return -1;
    }
    /* Read the whole file: configs are small, and a buffer lets the same parser serve
     * ssmd_config_parse. */
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got_n = fread(buf + len, 1, cap - len, f);
        len += got_n;
        if (len < cap) break;
        if (cap >= (size_t)64 << 20) {
            free(buf);
            fclose(f);
            if (err && errlen) snprintf(err, errlen, "%s: file too large (over 64 MiB)", path);
            return -1;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int rerr = ferror(f);
    fclose(f);
    if (!buf || rerr) {
        free(buf);
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, buf ? "could not read" : "out of memory");
        return -1;
    }
    int rc = ssmd_config_parse(path, buf, len, out, err, errlen);
    free(buf);
    return rc;
}

void ssmd_config_free(ssmd_config *cfg) {
    if (!cfg) return;
    free(cfg->path);
    free(cfg->dsn);
    free(cfg->device);
    series_free(&cfg->defaults);
    for (size_t i = 0; i < cfg->nseries; i++) series_free(&cfg->series[i]);
    free(cfg->series);
    memset(cfg, 0, sizeof *cfg);
}

const ssmd_series_cfg *ssmd_config_find(const ssmd_config *cfg, const char *name) {
    if (!cfg || !name) return NULL;
    for (size_t i = 0; i < cfg->nseries; i++)
        if (cfg->series[i].name && strcmp(cfg->series[i].name, name) == 0)
            return &cfg->series[i];
    return NULL;
}

/* ---- documentation and the effective configuration --------------------------------- */

static const char *type_name(const cfg_key *k) {
    switch (k->type) {
    case CT_MAPPING: return "mapping";
    case CT_SERIES: return "list of mappings";
    case CT_STRING: return "string";
    case CT_NAME: return "name";
    case CT_TABLE: return "table name";
    case CT_ENUM: return "enum";
    case CT_INT: return "integer";
    case CT_DURATION: return "duration";
    case CT_DURATION_MS: return "duration";
    case CT_FREQ: return "frequency";
    case CT_QUANTILES: return "list of numbers";
    case CT_MODELS: return "list of model specs";
    case CT_SOURCE: return "`builtin` or mapping";
    case CT_WHERE: return "mapping";
    }
    return "?";
}

static void describe_allowed(const cfg_key *k, char *buf, size_t len) {
    char a[32], b[32];
    switch (k->type) {
    case CT_INT: snprintf(buf, len, "%lld – %lld", (long long)k->min, (long long)k->max); break;
    case CT_DURATION:
        duration_format(k->min, a, sizeof a);
        duration_format(k->max, b, sizeof b);
        snprintf(buf, len, "%s – %s", a, b);
        break;
    case CT_DURATION_MS:
        duration_ms_format(k->min, a, sizeof a);
        duration_ms_format(k->max, b, sizeof b);
        snprintf(buf, len, "%s – %s", a, b);
        break;
    case CT_ENUM: {
        size_t o = 0;
        buf[0] = '\0';
        for (const char *c = k->choices; *c && o < len;) {
            size_t cl = strcspn(c, "|");
            o += (size_t)snprintf(buf + o, len - o, "%s`%.*s`", o ? ", " : "", (int)cl, c);
            c += cl + (c[cl] == '|');
        }
        break;
    }
    case CT_QUANTILES:
        snprintf(buf, len, "%lld – %lld levels in (0, 1)", (long long)k->min, (long long)k->max);
        break;
    case CT_MODELS:
        snprintf(buf, len, "%lld – %lld specs", (long long)k->min, (long long)k->max);
        break;
    case CT_NAME: snprintf(buf, len, "`[A-Za-z0-9_.-]+`"); break;
    case CT_FREQ: snprintf(buf, len, "count 1 – 1000000; `s` `m` `h` `d` `w` `mo` `q` `y`"); break;
    case CT_TABLE: snprintf(buf, len, "`table` or `schema.table`"); break;
    case CT_SOURCE: snprintf(buf, len, "`builtin`, or `table`, `time`, `value`, `where`"); break;
    case CT_WHERE: snprintf(buf, len, "up to %lld pairs", (long long)k->max); break;
    default: snprintf(buf, len, " "); break;
    }
}

static void describe_table(FILE *out, map_ctx ctx, const char *prefix) {
    int series = ctx == CTX_SERIES;
    fprintf(out, "| Key | Type | Default | Allowed |%s Meaning |\n", series ? " In `defaults` |" : "");
    fprintf(out, "|-----|------|---------|---------|%s---------|\n", series ? "---------------|" : "");
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_key *k = &keys[i];
        if (!key_allowed(k, ctx)) continue;
        char allowed[96];
        describe_allowed(k, allowed, sizeof allowed);
        const char *def = k->def                     ? k->def
                          : (k->flags & K_REQUIRED) ? "*required*"
                          : (k->flags & K_NULLABLE) ? "*unset*"
                                                    : " ";
        fprintf(out, "| `%s%s` | %s | %s%s%s | %s |%s %s |\n", prefix, k->name, type_name(k),
                k->def ? "`" : "", def, k->def ? "`" : "", allowed,
                !series ? "" : (k->flags & K_DEFAULTS) ? " yes |" : " no |", k->doc);
    }
}

void ssmd_config_describe(FILE *out) {
    fprintf(out,
            "# ssmd.yaml reference\n\n"
            "<!-- Generated from the key table in daemon/config.c by ssmd_config_describe();\n"
            "     tests/daemon/test_config checks that this file is current. Do not edit. -->\n\n"
            "ssmd reads one YAML file (`--config`, else `$SSMD_CONFIG`, else "
            "`/etc/ssmd/ssmd.yaml`); `etc/ssmd.yaml` is a commented example. Unknown keys are "
            "errors, and every error names the file, line and column, e.g.\n\n"
            "    ssmd.yaml:14:9: series \"web_cpu\": unknown key \"horizn\" (expected one of: "
            "name, frequency, ...); did you mean \"horizon\"?\n\n"
            "`ssmd check-config` loads the file and reports the first error; it also builds "
            "every model spec once to check it.\n\n"
            "**Durations** are a count and a unit, `s`, `m` (minutes), `h`, `d` or `w`, "
            "optionally several (`1h30m`); `0` needs no unit. **Frequencies** are a count and "
            "a unit, `s`, `m`, `h`, `d`, `w`, `mo`, `q` or `y` (`5m`, `1h`, `1mo`). "
            "**Defaults**: a series takes every key it does not set from `defaults:`, which "
            "takes every key it does not set from the built-in defaults below.\n\n");
    fprintf(out, "## Top level\n\n");
    describe_table(out, CTX_TOP, "");
    fprintf(out, "\n## `database`\n\n");
    describe_table(out, CTX_DATABASE, "database.");
    fprintf(out, "\n## `series` entries (and `defaults`)\n\n"
                 "Keys with *yes* under *In `defaults`* may also be set under `defaults:`.\n\n");
    describe_table(out, CTX_SERIES, "");
    fprintf(out, "\n## `source` (in a series)\n\n"
                 "`source: builtin` reads ssmd's own table `ssm.observations`. Otherwise "
                 "`source` is a mapping naming a table or view of yours; identifiers are "
                 "quoted, so write them as they are spelled in the database:\n\n");
    describe_table(out, CTX_SOURCE, "source.");
}

/* A string as a YAML scalar: plain when it is a simple word (and not a null), else
 * double-quoted with escapes. */
static void print_quoted(FILE *out, const char *s) {
    if (name_ok(s) && (isalnum((unsigned char)s[0]) || s[0] == '_') && strcmp(s, "null") &&
        strcmp(s, "Null") && strcmp(s, "NULL")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

/* The keys of a series entry (or of defaults), one per line, each preceded by ind. */
static void print_series_keys(FILE *out, const ssmd_series_cfg *s, const char *ind,
                              int is_defaults) {
    char a[32], b[32], c[32], d[32];
    if (s->has_freq) {
        ssm_freq_format(s->freq, a, sizeof a);
        fprintf(out, "%sfrequency: %s\n", ind, a);
    }
    if (!is_defaults) {
        const ssmd_source *src = &s->source;
        if (src->builtin) {
            fprintf(out, "%ssource: builtin\n", ind);
        } else {
            fprintf(out, "%ssource: { table: ", ind);
            print_quoted(out, src->table);
            fprintf(out, ", time: ");
            print_quoted(out, src->time_col);
            fprintf(out, ", value: ");
            print_quoted(out, src->value_col);
            if (src->nwhere) {
                fprintf(out, ", where: { ");
                for (size_t i = 0; i < src->nwhere; i++) {
                    if (i) fprintf(out, ", ");
                    print_quoted(out, src->where_keys[i]);
                    fprintf(out, ": ");
                    print_quoted(out, src->where_values[i]);
                }
                fprintf(out, " }");
            }
            fprintf(out, " }\n");
        }
        if (s->group) {
            fprintf(out, "%sgroup: ", ind);
            print_quoted(out, s->group);
            fputc('\n', out);
        }
    }
    duration_format(s->every_s, a, sizeof a);
    duration_format(s->refit_every_s, b, sizeof b);
    duration_format(s->retrain_every_s, c, sizeof c);
    duration_format(s->retention_s, d, sizeof d);
    fprintf(out, "%severy: %s\n%srefit_every: %s\n%sretrain_every: %s\n%sretention: %s\n",
            ind, a, ind, b, ind, c, ind, d);
    fprintf(out, "%shorizon: %d\n%sseason: %d\n%squantiles: [", ind, s->horizon, ind,
            s->season, ind);
    for (size_t i = 0; i < s->nq; i++) {
        /* the shortest of %.15g / %.17g that reads back to the same double */
        char num[40];
        snprintf(num, sizeof num, "%.15g", s->quantiles[i]);
        if (strtod(num, NULL) != s->quantiles[i]) snprintf(num, sizeof num, "%.17g", s->quantiles[i]);
        fprintf(out, "%s%s", i ? ", " : "", num);
    }
    fprintf(out, "]\n%smodels: [", ind);
    for (size_t i = 0; i < s->nmodels; i++) {
        if (i) fprintf(out, ", ");
        print_quoted(out, s->models[i]);
    }
    fprintf(out, "]\n");
}

void ssmd_config_print(FILE *out, const ssmd_config *cfg) {
    char a[32];
    fprintf(out, "# effective configuration of %s (defaults applied)\n",
            cfg->path ? cfg->path : "?");
    fprintf(out, "database:\n  dsn: ");
    if (cfg->dsn)
        print_quoted(out, cfg->dsn);
    else
        fprintf(out, "~");
    duration_ms_format(cfg->statement_timeout_ms, a, sizeof a);
    fprintf(out, "\n  statement_timeout: %s\n", a);
    fprintf(out, "workers: %d\ndevice: %s\n", cfg->workers, cfg->device);
    duration_format(cfg->lease_s, a, sizeof a);
    fprintf(out, "lease: %s\ndefaults:\n", a);
    print_series_keys(out, &cfg->defaults, "  ", 1);
    if (cfg->nseries == 0) {
        fprintf(out, "series: []\n");
        return;
    }
    fprintf(out, "series:\n");
    for (size_t i = 0; i < cfg->nseries; i++) {
        fprintf(out, "  - name: ");
        print_quoted(out, cfg->series[i].name);
        fputc('\n', out);
        print_series_keys(out, &cfg->series[i], "    ", 0);
    }
}
