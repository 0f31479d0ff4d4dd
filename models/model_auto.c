/*
 * models/model_auto.c — the `auto` model: per series, a short rolling-origin backtest of
 * candidate specs picks the one with the lowest MASE, which is then fitted on the whole
 * series and does all the work (update, forecast, save) from then on.
 *
 * Spec: auto, or auto(c1, c2, ..., key=value, ...) where the ci are model specs (commas
 * inside their parentheses are theirs: auto(local_level,ets(A,A,A),mamba)) and the keys
 * tune the inner backtest:
 *     h=H        horizon        (default: the season when > 1, else 6; at most n/5)
 *     origins=N  origins        (default 3; fewer when the series is short)
 *     refit=every|once          (default once: fit at the first origin, then filter
 *                                forward, which is cheap for state space models)
 * Without candidates the set is: naive, drift, snaive (seasonal series), snaive one week
 * back for intraday series with a daily season and three weeks of data, then those of
 * the Kalman kinds that are registered: local_level, local_linear_trend; without a
 * season ets(A,Ad,N), sarima(0,1,1) and kalman_auto; with a season up to 24 bsm,
 * ets(A,A,A), ets(A,Ad,A), the airline model sarima(0,1,1)(0,1,1) and kalman_auto;
 * then mamba and s4d when registered and the series has at least max(500, 10 * season)
 * points.
 *
 * Ties (MASE equal within 1e-9 relative) go to the simpler model: fewer parameters, then
 * earlier in the list. A candidate whose backtest fails is skipped; if no candidate can be
 * backtested (a series too short for even one origin) the first candidate that fits the
 * whole series wins. info() reports the winner in `chosen`, each candidate's MASE as a
 * parameter "mase:<spec>", then the winner's own parameters; save/load keep the choice.
 * The daemon decides when to choose again (on its refit schedule) by fitting afresh.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backtest.h"
#include "model.h"

#define AUTO_MAX_CANDS 24

typedef struct auto_model {
    size_t ncands;              /* explicit candidates (0: the default set at fit time) */
    char cands[AUTO_MAX_CANDS][256];
    size_t h, origins;          /* inner backtest; 0: default */
    int refit_every;
    /* after fit */
    size_t nscored;
    char scored[AUTO_MAX_CANDS][256];
    double score[AUTO_MAX_CANDS];
    size_t winner_idx;
    ssm_model *winner;
} auto_model;

/* ---- spec parsing ------------------------------------------------------------------- */

/* Splits "(a,b(c,d),e=f)" at top-level commas into trimmed items. */
static int split_args(const char *args, char items[][256], size_t max, size_t *n, ssm_error *err) {
    *n = 0;
    const char *p = args;
    while (isspace((unsigned char)*p)) p++;
    if (!*p) return SSM_OK;
    size_t len = strlen(p);
    while (len && isspace((unsigned char)p[len - 1])) len--;
    if (p[0] != '(' || p[len - 1] != ')')
        return ssm_error_set(err, SSM_EINVAL, "bad arguments \"%s\" for model \"auto\"", args);
    const char *s = p + 1, *end = p + len - 1;
    int depth = 0;
    const char *item = s;
    for (const char *c = s; c <= end; c++) {
        if (c < end && (*c == '(' || *c == '[')) depth++;
        else if (c < end && (*c == ')' || *c == ']')) {
            if (--depth < 0) return ssm_error_set(err, SSM_EINVAL, "unbalanced parentheses in \"auto%s\"", args);
        } else if (c == end || (*c == ',' && depth == 0)) {
            const char *a = item, *b = c;
            while (a < b && isspace((unsigned char)*a)) a++;
            while (b > a && isspace((unsigned char)b[-1])) b--;
            if (b == a) return ssm_error_set(err, SSM_EINVAL, "empty candidate in \"auto%s\"", args);
            if (*n >= max) return ssm_error_set(err, SSM_EINVAL, "too many candidates for auto (at most %zu)", max);
            if ((size_t)(b - a) >= 256) return ssm_error_set(err, SSM_EINVAL, "candidate spec too long in auto");
            snprintf(items[*n], 256, "%.*s", (int)(b - a), a);
            (*n)++;
            item = c + 1;
        }
    }
    if (depth != 0) return ssm_error_set(err, SSM_EINVAL, "unbalanced parentheses in \"auto%s\"", args);
    return SSM_OK;
}

/* "key=value" at top level (no parenthesis before the '='). */
static int is_option(const char *item, char *key, size_t klen, const char **value) {
    const char *eq = strchr(item, '=');
    const char *par = strpbrk(item, "([");
    if (!eq || (par && par < eq)) return 0;
    snprintf(key, klen, "%.*s", (int)(eq - item), item);
    *value = eq + 1;
    return 1;
}

static int parse_size(const char *v, size_t *out) {
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (!end || *end || x < 1 || x > 1000000) return -1;
    *out = (size_t)x;
    return 0;
}

static int auto_create(ssm_model *m, const char *name, const char *args, ssm_error *err);

/* ---- candidates --------------------------------------------------------------------- */

/* Whether spec names a registered kind that accepts it. Probed by creating the model
 * rather than by walking ssm_model_kinds(), whose flattened table is rebuilt in a static
 * array on each call: auto models are fitted on many threads at once. */
static int has_kind(const char *spec, int season) {
    ssm_error e;
    ssm_model_opts o;
    memset(&o, 0, sizeof o);
    o.season = season;
    ssm_model *m = ssm_model_create(spec, &o, &e);
    ssm_model_free(m);
    return m != NULL;
}

static size_t default_candidates(size_t n, int season, ssm_freq freq, char c[][256]) {
    size_t k = 0;
    snprintf(c[k++], 256, "naive");
    snprintf(c[k++], 256, "drift");
    if (season > 1) snprintf(c[k++], 256, "snaive");
    /* intraday data with a daily season usually has a weekly one too (the benchmark of
     * electricity demand forecasting, Taylor 2003): the same slot a week back */
    if (season > 1 && freq.unit <= SSM_FREQ_HOUR && n >= 3 * 7 * (size_t)season)
        snprintf(c[k++], 256, "snaive(season=%d)", 7 * season);
    if (has_kind("local_level", season)) snprintf(c[k++], 256, "local_level");
    if (has_kind("local_linear_trend", season)) snprintf(c[k++], 256, "local_linear_trend");
    if (season <= 1) {
        if (has_kind("ets(A,Ad,N)", season)) snprintf(c[k++], 256, "ets(A,Ad,N)");
        if (has_kind("sarima(0,1,1)", season)) snprintf(c[k++], 256, "sarima(0,1,1)");
        if (has_kind("kalman_auto", season)) snprintf(c[k++], 256, "kalman_auto");
    }
    /* seasonal state space models carry ~season states: beyond a day of hours the
     * likelihood search costs more than a short backtest should */
    if (season > 1 && season <= 24) {
        if (has_kind("bsm", season)) snprintf(c[k++], 256, "bsm");
        if (has_kind("ets(A,A,A)", season)) snprintf(c[k++], 256, "ets(A,A,A)");
        if (has_kind("ets(A,Ad,A)", season)) snprintf(c[k++], 256, "ets(A,Ad,A)");
        if (has_kind("sarima(0,1,1)(0,1,1)", season)) snprintf(c[k++], 256, "sarima(0,1,1)(0,1,1)");
        if (has_kind("kalman_auto", season)) snprintf(c[k++], 256, "kalman_auto");
    }
    size_t long_enough = 10 * (size_t)(season > 1 ? season : 1);
    if (long_enough < 500) long_enough = 500;
    if (n >= long_enough) {
        if (has_kind("mamba", season)) snprintf(c[k++], 256, "mamba");
        if (has_kind("s4d", season)) snprintf(c[k++], 256, "s4d");
    }
    return k;
}

/* ---- fit ---------------------------------------------------------------------------- */

static int auto_fit(ssm_model *m, const ssm_series *y, ssm_error *err) {
    auto_model *a = m->impl;
    int season = m->opts.season ? m->opts.season : ssm_freq_season(y->freq);
    ssm_model_free(a->winner);
    a->winner = NULL;
    a->nscored = a->ncands ? a->ncands : default_candidates(y->n, season, y->freq, a->scored);
    if (a->ncands) memcpy(a->scored, a->cands, sizeof a->cands);

    /* the inner backtest: short, and never longer than the series allows */
    size_t h = a->h ? a->h : (season > 1 ? (size_t)season : 6);
    if (!a->h && h > y->n / 5) h = y->n / 5 ? y->n / 5 : 1;
    size_t origins = a->origins ? a->origins : 3;
    size_t min_train = 2 * (size_t)(season > 1 ? season : 1) + 2;
    while (origins > 1 && y->n < h * origins + min_train) origins--;

    ssm_backtest_opts bo;
    memset(&bo, 0, sizeof bo);
    bo.horizon = h;
    bo.origins = origins;
    bo.refit_once = !a->refit_every;
    bo.season = season;
    bo.min_train = min_train;
    bo.model_opts = m->opts;
    bo.model_opts.season = season;
    static const double mid[1] = {0.5}; /* only the point forecast matters for MASE */
    bo.levels = mid;
    bo.nq = 1;

    size_t nparams[AUTO_MAX_CANDS];
    size_t best = (size_t)-1;
    for (size_t i = 0; i < a->nscored; i++) {
        ssm_backtest bt;
        ssm_error e;
        a->score[i] = NAN;
        nparams[i] = 0;
        if (ssm_backtest_run(y, a->scored[i], &bo, &bt, &e) == SSM_OK) {
            a->score[i] = bt.overall.mase;
            nparams[i] = bt.nparams;
        }
        ssm_backtest_free(&bt);
        if (isnan(a->score[i])) continue;
        if (best == (size_t)-1) {
            best = i;
            continue;
        }
        double sb = a->score[best], si = a->score[i];
        int tie = fabs(si - sb) <= 1e-9 * fmax(fabs(si), fabs(sb));
        if ((!tie && si < sb) || (tie && nparams[i] < nparams[best])) best = i;
    }

    /* fit the winner on the whole series; if it fails there, the next best in turn */
    int tried[AUTO_MAX_CANDS] = {0};
    ssm_error e;
    ssm_error_clear(&e);
    for (size_t round = 0; round < a->nscored; round++) {
        size_t pick = (size_t)-1;
        if (round == 0 && best != (size_t)-1) pick = best;
        else {
            /* next lowest score not yet tried; unscored candidates last, in list order */
            for (size_t i = 0; i < a->nscored; i++) {
                if (tried[i]) continue;
                if (pick == (size_t)-1) pick = i;
                else if (!isnan(a->score[i]) && (isnan(a->score[pick]) || a->score[i] < a->score[pick])) pick = i;
            }
        }
        if (pick == (size_t)-1) break;
        tried[pick] = 1;
        ssm_model_opts o = m->opts;
        o.season = season;
        ssm_model *w = ssm_model_create(a->scored[pick], &o, &e);
        if (!w) continue;
        if (ssm_model_fit(w, y, &e) == SSM_OK) {
            a->winner = w;
            a->winner_idx = pick;
            return SSM_OK;
        }
        ssm_model_free(w);
    }
    ssm_error_set(err, e.code ? e.code : SSM_ETOOSHORT, "auto: no candidate could be fitted on series \"%s\"",
                  y->name ? y->name : "?");
    ssm_error_detail(err, "last failure: %s", e.message);
    return err ? err->code : SSM_ETOOSHORT;
}

static int auto_update(ssm_model *m, const double *values, size_t n, ssm_error *err) {
    auto_model *a = m->impl;
    if (!a->winner) return ssm_error_set(err, SSM_EINVAL, "model \"%s\" is not fitted", m->spec);
    return ssm_model_update(a->winner, values, n, err);
}

static int auto_forecast(const ssm_model *m, ssm_forecast *f, ssm_error *err) {
    const auto_model *a = m->impl;
    if (!a->winner) return ssm_error_set(err, SSM_EINVAL, "model \"%s\" is not fitted", m->spec);
    return ssm_model_forecast(a->winner, f, err);
}

static int auto_info(const ssm_model *m, ssm_fit_info *out) {
    const auto_model *a = m->impl;
    if (!a->winner) return SSM_OK;
    ssm_fit_info w;
    int rc = ssm_model_info(a->winner, &w);
    if (rc != SSM_OK) return rc;
    *out = w;
    snprintf(out->chosen, sizeof out->chosen, "%s", a->winner->spec);
    /* the candidates' scores first, then as many of the winner's parameters as fit */
    out->nparams = 0;
    for (size_t i = 0; i < a->nscored && out->nparams < SSM_MAX_PARAMS; i++) {
        ssm_param *p = &out->params[out->nparams++];
        snprintf(p->name, sizeof p->name, "mase:%.42s", a->scored[i]);
        p->value = a->score[i];
    }
    for (size_t i = 0; i < w.nparams && out->nparams < SSM_MAX_PARAMS; i++) out->params[out->nparams++] = w.params[i];
    return SSM_OK;
}

/* ---- save / load -------------------------------------------------------------------- */
/* Payload: version u64, ncands u64, per candidate (speclen u64, spec, score f64),
 * winner index u64, blob length u64, the winner's own ssm_model_save blob. */
#define AUTO_VERSION 1u

static int put_u64(ssm_buffer *b, uint64_t v) {
    uint8_t p[8];
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
    return ssm_buffer_append(b, p, 8);
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int auto_save(const ssm_model *m, ssm_buffer *out, ssm_error *err) {
    const auto_model *a = m->impl;
    if (!a->winner) return ssm_error_set(err, SSM_EINVAL, "model \"%s\" is not fitted", m->spec);
    ssm_buffer inner = {0};
    int rc = ssm_model_save(a->winner, &inner, err);
    if (rc != SSM_OK) {
        ssm_buffer_free(&inner);
        return rc;
    }
    rc = put_u64(out, AUTO_VERSION) | put_u64(out, a->nscored);
    for (size_t i = 0; i < a->nscored; i++) {
        size_t len = strlen(a->scored[i]);
        uint64_t bits;
        memcpy(&bits, &a->score[i], 8);
        rc |= put_u64(out, len) | ssm_buffer_append(out, a->scored[i], len) | put_u64(out, bits);
    }
    rc |= put_u64(out, a->winner_idx) | put_u64(out, inner.len) | ssm_buffer_append(out, inner.data, inner.len);
    ssm_buffer_free(&inner);
    return rc ? ssm_error_set(err, SSM_ENOMEM, "out of memory") : SSM_OK;
}

static int auto_load(ssm_model *m, const uint8_t *data, size_t len, ssm_error *err) {
    auto_model *a = m->impl;
    size_t off = 0;
#define NEED(k)                                                                                     \
    do {                                                                                            \
        if (len - off < (size_t)(k))                                                                \
            return ssm_error_set(err, SSM_EFORMAT, "stored auto state is truncated at byte %zu", off); \
    } while (0)
    NEED(16);
    if (get_u64(data) != AUTO_VERSION)
        return ssm_error_set(err, SSM_EFORMAT, "stored auto state has version %llu, expected %u",
                             (unsigned long long)get_u64(data), AUTO_VERSION);
    uint64_t n = get_u64(data + 8);
    off = 16;
    if (n < 1 || n > AUTO_MAX_CANDS) return ssm_error_set(err, SSM_EFORMAT, "stored auto state is corrupt");
    char scored[AUTO_MAX_CANDS][256];
    double score[AUTO_MAX_CANDS];
    for (size_t i = 0; i < n; i++) {
        NEED(8);
        uint64_t sl = get_u64(data + off);
        off += 8;
        if (sl >= 256) return ssm_error_set(err, SSM_EFORMAT, "stored auto state is corrupt");
        NEED(sl + 8);
        snprintf(scored[i], 256, "%.*s", (int)sl, (const char *)(data + off));
        off += sl;
        uint64_t bits = get_u64(data + off);
        memcpy(&score[i], &bits, 8);
        off += 8;
    }
    NEED(16);
    uint64_t widx = get_u64(data + off), blen = get_u64(data + off + 8);
    off += 16;
    if (widx >= n) return ssm_error_set(err, SSM_EFORMAT, "stored auto state is corrupt");
    NEED(blen);
#undef NEED
    ssm_model *w = ssm_model_create(scored[widx], &m->opts, err);
    if (!w) return err ? err->code : SSM_EFORMAT;
    int rc = ssm_model_load(w, data + off, (size_t)blen, err);
    if (rc != SSM_OK) {
        ssm_model_free(w);
        return rc;
    }
    ssm_model_free(a->winner);
    a->winner = w;
    a->winner_idx = (size_t)widx;
    a->nscored = (size_t)n;
    memcpy(a->scored, scored, n * sizeof scored[0]);
    memcpy(a->score, score, n * sizeof score[0]);
    return SSM_OK;
}

static void auto_destroy(ssm_model *m) {
    auto_model *a = m->impl;
    if (a) ssm_model_free(a->winner);
    free(a);
    m->impl = NULL;
}

static const ssm_model_ops auto_ops = {
    .fit = auto_fit,
    .update = auto_update,
    .forecast = auto_forecast,
    .info = auto_info,
    .save = auto_save,
    .load = auto_load,
    .destroy = auto_destroy,
};

static int auto_create(ssm_model *m, const char *name, const char *args, ssm_error *err) {
    (void)name;
    auto_model *a = calloc(1, sizeof *a);
    if (!a) return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    m->impl = a;
    m->ops = &auto_ops;
    char items[AUTO_MAX_CANDS + 4][256];
    size_t n = 0;
    int rc = split_args(args ? args : "", items, AUTO_MAX_CANDS + 4, &n, err);
    if (rc != SSM_OK) return rc;
    for (size_t i = 0; i < n; i++) {
        char key[32];
        const char *value;
        if (is_option(items[i], key, sizeof key, &value)) {
            int bad = 0;
            if (strcmp(key, "h") == 0) bad = parse_size(value, &a->h);
            else if (strcmp(key, "origins") == 0) bad = parse_size(value, &a->origins);
            else if (strcmp(key, "refit") == 0 && (strcmp(value, "every") == 0 || strcmp(value, "once") == 0))
                a->refit_every = strcmp(value, "every") == 0;
            else bad = 1;
            if (bad) {
                ssm_error_set(err, SSM_EINVAL, "bad option \"%s\" for model \"auto\"", items[i]);
                ssm_error_hint(err, "auto takes h=N, origins=N and refit=every|once besides candidate specs");
                return SSM_EINVAL;
            }
            continue;
        }
        if (strncmp(items[i], "auto", 4) == 0 && !isalnum((unsigned char)items[i][4]) && items[i][4] != '_')
            return ssm_error_set(err, SSM_EINVAL, "auto cannot be a candidate of auto");
        if (a->ncands >= AUTO_MAX_CANDS)
            return ssm_error_set(err, SSM_EINVAL, "too many candidates for auto (at most %d)", AUTO_MAX_CANDS);
        /* validate now, so a typo fails at create time rather than after a backtest */
        ssm_model *probe = ssm_model_create(items[i], &m->opts, err);
        if (!probe) {
            ssm_error_detail(err, "in candidate \"%s\" of auto", items[i]);
            return err ? err->code : SSM_EINVAL;
        }
        snprintf(a->cands[a->ncands++], 256, "%s", probe->spec);
        ssm_model_free(probe);
    }
    return SSM_OK;
}

const ssm_model_kind ssm_auto_kinds[] = {
    {"auto", "auto",
     "per series, the candidate with the lowest MASE in a short backtest: auto(local_level,ets(A,A,A),mamba)",
     auto_create},
    {NULL, NULL, NULL, NULL},
};
