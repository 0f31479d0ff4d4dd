/*
 * models/model_kalman.c — the adapter that wraps kalman/ into the ssm_model interface.
 *
 * fit: maximum likelihood (kalman_fit), then one filter pass over the whole series that
 * leaves the one-step prediction (a_{n+1}, P_{n+1}) in a kalman_state. update: the filter
 * continues from that state over the new points only (identical to refiltering from
 * scratch). forecast: h-step means/variances from the state, Gaussian quantiles.
 * save/load: a versioned little-endian blob of the kalman spec, season, parameters, fit
 * figures and the filter state (including the steady-state flag and gain), closed by an
 * FNV-1a checksum so truncated or corrupt blobs are rejected with SSM_EFORMAT.
 *
 * Kinds (ssm_kalman_kinds): local_level, local_linear_trend, smooth_trend, bsm,
 * structural(...). Each kind's create() parses its arguments into a kalman_impl and sets
 * impl->make, which builds the kalman_model once the season is known (at fit time the
 * series' frequency supplies it when the spec does not). Other Kalman kinds (SARIMA, ETS,
 * automatic selection) plug in the same way. To add a kind:
 *   1. write `static int create_x(ssm_model *m, const char *name, const char *args,
 *      ssm_error *err)`: parse args (ssm_spec_kv_parse), call new_impl(m, &k, err), fill
 *      k's field for the kind (sarima / ets / autoopts), set k->make (and k->needs_season /
 *      k->season_arg when a season matters) and write the canonical spec into m->spec;
 *   2. make(impl, season, kspec, err) returns a fresh kalman_model (kspec is the stored
 *      kalman_model->spec when called from load(); a kind whose model is chosen at fit
 *      time must rebuild it from kspec);
 *   3. for kinds that choose while fitting, set k->select too (it must set impl->model
 *      and fill the kalman_fit_result);
 *   4. add a row to ssm_kalman_kinds.
 * info() reports the fitted kalman_model's parameters; for select-kinds `chosen` is that
 * model's spec (kalman_model->spec, also saved in the blob).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kalman.h"
#include "model.h"

typedef struct kalman_impl kalman_impl;

struct kalman_impl {
    /* what create() parsed (each kind uses its own field) */
    kalman_structural_spec sspec;  /* structural kinds */
    kalman_sarima_spec sarima;     /* sarima kinds */
    kalman_ets_spec ets;           /* ets kinds */
    kalman_auto_opts autoopts;     /* automatic selection */
    char kspec[128];               /* sarima / ets kinds: the kalman spec (season may be
                                      left to fit time), see kalman_model_from_spec */
    int season_arg;                /* season from the spec; 0: from opts / the series */
    int needs_season;              /* the model cannot be built without a season >= 2 */
    /* Builds the kalman_model for a resolved season. kspec is the stored kalman spec when
     * called from load() (NULL from fit()); kinds whose model is fixed by the ssmd spec
     * may ignore it. */
    kalman_model *(*make)(kalman_impl *impl, int season, const char *kspec, kalman_error *err);
    /* Optional: chooses and fits the model in one go (automatic selection). Sets
     * impl->model and *res. NULL: make() + kalman_fit(). */
    int (*select)(kalman_impl *impl, const double *y, size_t n, int season, kalman_fit_result *res,
                  kalman_error *err);
    /* after fit / load */
    int season;                    /* the season used */
    kalman_model *model;
    kalman_fit_result fit;
    int fitted;
    kalman_ssm ssm;
    kalman_workspace *ws;
    kalman_state st;
};

static int kerr_to_ssm(ssm_error *err, const kalman_error *kerr, const char *spec)
{
    int code = kerr->code ? kerr->code : SSM_ENUMERIC;
    ssm_error_set(err, code, "%s", kerr->message[0] ? kerr->message : "kalman filter failure");
    ssm_error_detail(err, "model \"%s\"", spec);
    return code;
}

static void impl_release(kalman_impl *k)
{
    kalman_state_free(&k->st);
    kalman_workspace_free(k->ws);
    k->ws = NULL;
    kalman_ssm_free(&k->ssm);
    kalman_model_free(k->model);
    k->model = NULL;
    k->fitted = 0;
}

/* Allocates ssm / workspace / state for impl->model and builds the system at params. */
static int impl_prepare(kalman_impl *k, const double *params, kalman_error *kerr)
{
    kalman_model *mod = k->model;
    int rc = kalman_ssm_alloc(&k->ssm, mod->m, mod->r, kerr);
    if (rc)
        return rc;
    k->ws = kalman_workspace_create(mod->m, mod->r, kerr);
    if (!k->ws)
        return kerr->code ? kerr->code : KALMAN_ENOMEM;
    rc = kalman_state_alloc(&k->st, mod->m, kerr);
    if (rc)
        return rc;
    return mod->build(mod->ctx, params, &k->ssm, k->ws, kerr);
}

static int resolve_season(const ssm_model *m, const kalman_impl *k, ssm_freq freq, int *season,
                          ssm_error *err)
{
    int s = k->season_arg ? k->season_arg : m->opts.season;
    if (!s)
        s = ssm_freq_season(freq);
    if (k->needs_season && s < 2) {
        ssm_error_set(err, SSM_EINVAL, "model \"%s\" needs a season", m->spec);
        ssm_error_detail(err, "the series' frequency has no natural season");
        ssm_error_hint(err, "give one in the spec, e.g. bsm(season=12), or set the season option");
        return SSM_EINVAL;
    }
    *season = s;
    return SSM_OK;
}

/* ---- ops ---------------------------------------------------------------------------- */

static int kalman_fit_op(ssm_model *m, const ssm_series *y, ssm_error *err)
{
    kalman_impl *k = m->impl;
    kalman_error kerr = {0};
    int season;
    int rc = resolve_season(m, k, y->freq, &season, err);
    if (rc)
        return rc;
    impl_release(k);
    k->season = season;
    kalman_fit_result res;
    if (k->select) {
        rc = k->select(k, y->values, y->n, season, &res, &kerr);
    } else {
        k->model = k->make(k, season, NULL, &kerr);
        rc = k->model ? kalman_fit(k->model, y->values, y->n, NULL, &res, &kerr)
                      : (kerr.code ? kerr.code : KALMAN_EINVAL);
    }
    if (rc == 0)
        rc = impl_prepare(k, res.params, &kerr);
    if (rc == 0) {
        kalman_state_start(&k->st, &k->ssm);
        rc = kalman_filter(&k->ssm, y->values, y->n, &k->st, NULL, NULL, k->ws, &kerr);
    }
    if (rc) {
        impl_release(k);
        kerr_to_ssm(err, &kerr, m->spec);
        if (rc == SSM_ETOOSHORT)
            ssm_error_hint(err, "series \"%s\" has %zu points", y->name ? y->name : "?", y->n);
        return rc;
    }
    k->fit = res;
    k->fitted = 1;
    return SSM_OK;
}

static int kalman_update_op(ssm_model *m, const double *values, size_t n, ssm_error *err)
{
    kalman_impl *k = m->impl;
    if (!k->fitted)
        return ssm_error_set(err, SSM_EINVAL, "model \"%s\" is not fitted", m->spec);
    kalman_error kerr = {0};
    /* filter a copy so a failure leaves the stored state untouched */
    kalman_state tmp;
    if (kalman_state_alloc(&tmp, k->st.m, &kerr))
        return kerr_to_ssm(err, &kerr, m->spec);
    kalman_state_copy(&tmp, &k->st);
    int rc = kalman_filter(&k->ssm, values, n, &tmp, NULL, NULL, k->ws, &kerr);
    if (rc == 0)
        kalman_state_copy(&k->st, &tmp);
    kalman_state_free(&tmp);
    return rc ? kerr_to_ssm(err, &kerr, m->spec) : SSM_OK;
}

static int kalman_forecast_op(const ssm_model *m, ssm_forecast *f, ssm_error *err)
{
    kalman_impl *k = m->impl;
    if (!k->fitted)
        return ssm_error_set(err, SSM_EINVAL, "model \"%s\" is not fitted", m->spec);
    kalman_error kerr = {0};
    int rc = kalman_forecast(&k->ssm, &k->st, (int)f->horizon, f->mean, f->sd, k->ws, &kerr);
    if (rc) {
        kerr_to_ssm(err, &kerr, m->spec);
        if (rc == SSM_EUNSUPPORTED)
            ssm_error_hint(err, "the model needs more observations before it can forecast");
        return rc;
    }
    for (size_t h = 0; h < f->horizon; h++)
        f->sd[h] = sqrt(f->sd[h] > 0 ? f->sd[h] : 0.0);
    ssm_forecast_gaussian_quantiles(f);
    return SSM_OK;
}

static int kalman_info_op(const ssm_model *m, ssm_fit_info *out)
{
    const kalman_impl *k = m->impl;
    if (!k->fitted)
        return SSM_OK;
    out->converged = k->fit.converged;
    out->iterations = k->fit.iterations;
    out->nobs = (size_t)k->fit.nobs;
    out->loglik = k->fit.loglik;
    out->aic = k->fit.aic;
    out->aicc = k->fit.aicc;
    out->bic = k->fit.bic;
    if (k->select)
        snprintf(out->chosen, sizeof out->chosen, "%s", k->model->spec);
    int np = k->model->nparams < SSM_MAX_PARAMS ? k->model->nparams : SSM_MAX_PARAMS;
    out->nparams = (size_t)np;
    for (int i = 0; i < np; i++) {
        snprintf(out->params[i].name, sizeof out->params[i].name, "%s", k->model->names[i]);
        out->params[i].value = k->fit.params[i];
    }
    return SSM_OK;
}

/* ---- save / load -------------------------------------------------------------------- */

#define KBLOB_MAGIC 0x4e4d4c4bu /* "KLMN" little-endian */
#define KBLOB_VERSION 1u

static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* A little writer / reader over a byte array. */
typedef struct wbuf {
    ssm_buffer *b;
    int fail;
} wbuf;

static void w_u32(wbuf *w, uint32_t v)
{
    uint8_t x[4];
    put_u32(x, v);
    w->fail |= ssm_buffer_append(w->b, x, 4) != 0;
}
static void w_u64(wbuf *w, uint64_t v)
{
    uint8_t x[8];
    put_u64(x, v);
    w->fail |= ssm_buffer_append(w->b, x, 8) != 0;
}
static void w_f64(wbuf *w, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    w_u64(w, v);
}
static void w_f64s(wbuf *w, const double *d, size_t n)
{
    for (size_t i = 0; i < n; i++) w_f64(w, d[i]);
}

typedef struct rbuf {
    const uint8_t *p;
    size_t len, off;
    int fail;
} rbuf;

static uint32_t r_u32(rbuf *r)
{
    if (r->fail || r->len - r->off < 4) { r->fail = 1; return 0; }
    uint32_t v = get_u32(r->p + r->off);
    r->off += 4;
    return v;
}
static uint64_t r_u64(rbuf *r)
{
    if (r->fail || r->len - r->off < 8) { r->fail = 1; return 0; }
    uint64_t v = get_u64(r->p + r->off);
    r->off += 8;
    return v;
}
static double r_f64(rbuf *r)
{
    uint64_t v = r_u64(r);
    double d;
    memcpy(&d, &v, 8);
    if (!r->fail && isnan(d)) r->fail = 2; /* a stored number is never NaN */
    return d;
}
static void r_f64s(rbuf *r, double *d, size_t n)
{
    for (size_t i = 0; i < n; i++) d[i] = r_f64(r);
}

static int kalman_save_op(const ssm_model *m, ssm_buffer *out, ssm_error *err)
{
    const kalman_impl *k = m->impl;
    if (!k->fitted)
        return ssm_error_set(err, SSM_EINVAL, "model \"%s\" is not fitted: nothing to save", m->spec);
    size_t start = out->len;
    wbuf w = {out, 0};
    const kalman_model *mod = k->model;
    const int mm = mod->m;
    uint32_t speclen = (uint32_t)strlen(mod->spec);
    w_u32(&w, KBLOB_MAGIC);
    w_u32(&w, KBLOB_VERSION);
    w_u32(&w, (uint32_t)k->season);
    w_u32(&w, (uint32_t)mm);
    w_u32(&w, (uint32_t)mod->nparams);
    w_u32(&w, speclen);
    w.fail |= ssm_buffer_append(out, mod->spec, speclen) != 0;
    w_f64s(&w, k->fit.params, (size_t)mod->nparams);
    w_f64(&w, k->fit.loglik);
    w_f64(&w, k->fit.aic);
    w_f64(&w, k->fit.aicc);
    w_f64(&w, k->fit.bic);
    w_u32(&w, (uint32_t)k->fit.converged);
    w_u32(&w, (uint32_t)k->fit.iterations);
    w_u64(&w, (uint64_t)k->fit.nobs);
    w_u64(&w, (uint64_t)k->fit.ndiffuse);
    w_u64(&w, (uint64_t)k->fit.nfree);
    w_u64(&w, (uint64_t)k->fit.nobs_eff);
    /* filter state */
    w_u64(&w, (uint64_t)k->st.t);
    w_u32(&w, (uint32_t)k->st.diffuse);
    w_u32(&w, (uint32_t)k->st.steady);
    w_f64(&w, k->st.F);
    w_f64s(&w, k->st.a, (size_t)mm);
    w_f64s(&w, k->st.K, (size_t)mm);
    w_f64s(&w, k->st.P, (size_t)mm * mm);
    w_f64s(&w, k->st.Pinf, (size_t)mm * mm);
    if (!w.fail)
        w_u64(&w, fnv1a(out->data + start, out->len - start));
    if (w.fail)
        return ssm_error_set(err, SSM_ENOMEM, "out of memory serializing model \"%s\"", m->spec);
    return SSM_OK;
}

static int bad_blob(ssm_error *err, const ssm_model *m, const char *what)
{
    ssm_error_set(err, SSM_EFORMAT, "stored state of model \"%s\" is unusable", m->spec);
    ssm_error_detail(err, "%s", what);
    ssm_error_hint(err, "refit the model");
    return SSM_EFORMAT;
}

static int kalman_load_op(ssm_model *m, const uint8_t *data, size_t len, ssm_error *err)
{
    kalman_impl *k = m->impl;
    if (!data || len < 8 + 24)
        return bad_blob(err, m, "blob is truncated");
    if (fnv1a(data, len - 8) != get_u64(data + len - 8))
        return bad_blob(err, m, "checksum mismatch: blob is truncated or corrupt");
    rbuf r = {data, len - 8, 0, 0};
    if (r_u32(&r) != KBLOB_MAGIC)
        return bad_blob(err, m, "not a Kalman model blob");
    uint32_t version = r_u32(&r);
    if (version != KBLOB_VERSION)
        return bad_blob(err, m, "unsupported Kalman blob version");
    uint32_t season = r_u32(&r), mm = r_u32(&r), np = r_u32(&r), speclen = r_u32(&r);
    if (r.fail || speclen >= 128 || speclen > r.len - r.off || mm > KALMAN_MAX_STATES ||
        np > KALMAN_MAX_PARAMS || season > 1000000)
        return bad_blob(err, m, "corrupt header");
    char kspec[128];
    memcpy(kspec, r.p + r.off, speclen);
    kspec[speclen] = 0;
    r.off += speclen;

    kalman_error kerr = {0};
    kalman_impl fresh = *k;
    fresh.model = NULL;
    fresh.ws = NULL;
    memset(&fresh.ssm, 0, sizeof fresh.ssm);
    memset(&fresh.st, 0, sizeof fresh.st);
    fresh.fitted = 0;
    fresh.season = (int)season;
    fresh.model = k->make(&fresh, (int)season, kspec, &kerr);
    if (!fresh.model)
        return bad_blob(err, m, kerr.message);
    int rc = SSM_OK;
    const char *why = NULL;
    if (strcmp(fresh.model->spec, kspec) != 0)
        why = "blob was written by a different model";
    else if ((uint32_t)fresh.model->m != mm || (uint32_t)fresh.model->nparams != np)
        why = "state or parameter dimensions do not match the model";
    kalman_fit_result fit = {0};
    if (!why) {
        fit.nparams = (int)np;
        r_f64s(&r, fit.params, np);
        fit.loglik = r_f64(&r);
        fit.aic = r_f64(&r);
        fit.aicc = r_f64(&r);
        fit.bic = r_f64(&r);
        fit.converged = (int)r_u32(&r);
        fit.iterations = (int)r_u32(&r);
        fit.nobs = (long)r_u64(&r);
        fit.ndiffuse = (long)r_u64(&r);
        fit.nfree = (long)r_u64(&r);
        fit.nobs_eff = (long)r_u64(&r);
        if (r.fail)
            why = "blob is truncated or holds a NaN";
    }
    if (!why) {
        for (uint32_t i = 0; i < np; i++)
            if (!isfinite(fit.params[i]))
                why = "a stored parameter is not finite";
    }
    if (!why && impl_prepare(&fresh, fit.params, &kerr) != 0)
        why = "stored parameters are not admissible";
    if (!why) {
        kalman_state *st = &fresh.st;
        st->t = (long)r_u64(&r);
        st->diffuse = (int)r_u32(&r);
        st->steady = (int)r_u32(&r);
        st->F = r_f64(&r);
        r_f64s(&r, st->a, mm);
        r_f64s(&r, st->K, mm);
        r_f64s(&r, st->P, (size_t)mm * mm);
        r_f64s(&r, st->Pinf, (size_t)mm * mm);
        if (r.fail || r.off != r.len)
            why = "blob is truncated, too long or holds a NaN";
        else if (st->diffuse > 1 || st->steady > 1 || (st->steady && !(st->F > 0)))
            why = "corrupt filter state flags";
        else {
            /* finite everywhere; variances not negative beyond rounding (a state that the
             * data pins down exactly can carry -1e-17 on its diagonal) */
            double pmax = 0.0;
            for (uint32_t i = 0; i < mm * mm; i++)
                pmax = fmax(pmax, fabs(st->P[i]));
            for (uint32_t i = 0; i < mm && !why; i++) {
                if (!isfinite(st->a[i]) || !isfinite(st->K[i]))
                    why = "filter state is not finite";
                if (!(st->P[i * mm + i] >= -1e-9 * pmax))
                    why = "filter state has a negative variance";
                for (uint32_t j = 0; j < mm; j++)
                    if (!isfinite(st->P[i * mm + j]) || !isfinite(st->Pinf[i * mm + j]))
                        why = "filter state is not finite";
            }
        }
    }
    if (why) {
        impl_release(&fresh);
        return bad_blob(err, m, why);
    }
    impl_release(k);
    fresh.fit = fit;
    fresh.fitted = 1;
    *k = fresh;
    return rc;
}

static void kalman_destroy_op(ssm_model *m)
{
    kalman_impl *k = m->impl;
    if (!k)
        return;
    impl_release(k);
    free(k);
    m->impl = NULL;
}

static const ssm_model_ops kalman_ops = {
    kalman_fit_op, kalman_update_op, kalman_forecast_op, kalman_info_op,
    kalman_save_op, kalman_load_op, kalman_destroy_op,
};

/* ---- structural kinds ------------------------------------------------------------------ */

static kalman_model *make_structural(kalman_impl *impl, int season, const char *kspec,
                                     kalman_error *err)
{
    (void)kspec;
    kalman_structural_spec sp = impl->sspec;
    if (impl->needs_season)
        sp.seasonal = season;
    return kalman_structural_create(&sp, err);
}

static int new_impl(ssm_model *m, kalman_impl **out, ssm_error *err)
{
    kalman_impl *k = calloc(1, sizeof *k);
    if (!k)
        return ssm_error_set(err, SSM_ENOMEM, "out of memory creating model \"%s\"", m->spec);
    m->impl = k;
    m->ops = &kalman_ops;
    m->family = "kalman";
    *out = k;
    return SSM_OK;
}

static int parse_int(const char *v, int lo, int hi, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi)
        return -1;
    *out = (int)x;
    return 0;
}

static int bad_option(ssm_model *m, const ssm_spec_kv *kv, const char *expect, ssm_error *err)
{
    ssm_error_set(err, SSM_EINVAL, "bad option %s=%s for model \"%s\"", kv->key, kv->value, m->spec);
    ssm_error_hint(err, "%s", expect);
    return SSM_EINVAL;
}

/* local_level, local_linear_trend, smooth_trend, bsm[(season=S)] */
static int create_named(ssm_model *m, const char *name, const char *args, ssm_error *err)
{
    ssm_spec_kv kv[4];
    size_t nkv = 0;
    int rc = ssm_spec_kv_parse(args, kv, 4, &nkv, err);
    if (rc)
        return rc;
    int season = 0;
    for (size_t i = 0; i < nkv; i++) {
        if (!strcmp(name, "bsm") && !strcmp(kv[i].key, "season")) {
            if (parse_int(kv[i].value, 2, 10000, &season))
                return bad_option(m, &kv[i], "season is an integer of at least 2", err);
        } else {
            ssm_error_set(err, SSM_EINVAL, "unknown option \"%s\" for model \"%s\"", kv[i].key, name);
            ssm_error_hint(err, "%s", !strcmp(name, "bsm") ? "bsm takes season=S" : "this model takes no options");
            return SSM_EINVAL;
        }
    }
    kalman_impl *k = NULL;
    rc = new_impl(m, &k, err);
    if (rc)
        return rc;
    kalman_error kerr = {0};
    /* bsm's season is filled in at fit time; check the rest now */
    if (kalman_structural_named(name, strcmp(name, "bsm") ? 0 : 12, &k->sspec, &kerr))
        return ssm_error_set(err, SSM_EINVAL, "%s", kerr.message);
    k->needs_season = !strcmp(name, "bsm");
    k->season_arg = season;
    k->make = make_structural;
    if (k->needs_season && season)
        snprintf(m->spec, sizeof m->spec, "bsm(season=%d)", season);
    else
        snprintf(m->spec, sizeof m->spec, "%s", name);
    return SSM_OK;
}

/* structural(level=no|fixed|stochastic|llevel|lltrend|strend|rwalk, trend=no|fixed|stochastic,
 *            seasonal=S|season, harmonics=K, cycle=yes|no, irregular=yes|no) */
static int create_structural(ssm_model *m, const char *name, const char *args, ssm_error *err)
{
    (void)name;
    ssm_spec_kv kv[8];
    size_t nkv = 0;
    int rc = ssm_spec_kv_parse(args, kv, 8, &nkv, err);
    if (rc)
        return rc;
    kalman_structural_spec sp = {0};
    sp.level = sp.stochastic_level = 1;
    sp.irregular = 1;
    int seasonal_from_freq = 0, season = 0;
    for (size_t i = 0; i < nkv; i++) {
        const char *key = kv[i].key, *v = kv[i].value;
        if (!strcmp(key, "level")) {
            if (!strcmp(v, "no")) { sp.level = sp.stochastic_level = 0; }
            else if (!strcmp(v, "fixed")) { sp.level = 1; sp.stochastic_level = 0; }
            else if (!strcmp(v, "stochastic") || !strcmp(v, "llevel")) { sp.level = sp.stochastic_level = 1; }
            else if (!strcmp(v, "lltrend")) { sp.level = sp.stochastic_level = sp.trend = sp.stochastic_trend = 1; }
            else if (!strcmp(v, "strend")) { sp.level = 1; sp.stochastic_level = 0; sp.trend = sp.stochastic_trend = 1; }
            else if (!strcmp(v, "rwalk")) { sp.level = sp.stochastic_level = 1; sp.irregular = 0; }
            else return bad_option(m, &kv[i], "level is no, fixed, stochastic, llevel, lltrend, strend or rwalk", err);
        } else if (!strcmp(key, "trend")) {
            if (!strcmp(v, "no")) { sp.trend = sp.stochastic_trend = 0; }
            else if (!strcmp(v, "fixed")) { sp.trend = 1; sp.stochastic_trend = 0; }
            else if (!strcmp(v, "stochastic") || !strcmp(v, "yes")) { sp.trend = sp.stochastic_trend = 1; }
            else return bad_option(m, &kv[i], "trend is no, fixed or stochastic", err);
        } else if (!strcmp(key, "seasonal")) {
            if (!strcmp(v, "no") || !strcmp(v, "0")) { sp.seasonal = 0; }
            else if (!strcmp(v, "yes") || !strcmp(v, "season")) { seasonal_from_freq = 1; }
            else if (parse_int(v, 2, 10000, &season)) return bad_option(m, &kv[i], "seasonal is a period of at least 2, yes or no", err);
            else sp.seasonal = season;
            sp.stochastic_seasonal = 1;
        } else if (!strcmp(key, "harmonics")) {
            if (parse_int(v, 0, 5000, &sp.harmonics)) return bad_option(m, &kv[i], "harmonics is an integer >= 0", err);
        } else if (!strcmp(key, "cycle")) {
            if (!strcmp(v, "yes")) { sp.cycle = sp.stochastic_cycle = sp.damped_cycle = 1; }
            else if (!strcmp(v, "no")) { sp.cycle = 0; }
            else return bad_option(m, &kv[i], "cycle is yes or no", err);
        } else if (!strcmp(key, "irregular")) {
            if (!strcmp(v, "yes")) sp.irregular = 1;
            else if (!strcmp(v, "no")) sp.irregular = 0;
            else return bad_option(m, &kv[i], "irregular is yes or no", err);
        } else {
            ssm_error_set(err, SSM_EINVAL, "unknown option \"%s\" for model \"structural\"", key);
            ssm_error_hint(err, "options: level, trend, seasonal, harmonics, cycle, irregular");
            return SSM_EINVAL;
        }
    }
    if (sp.trend && !sp.level)
        return ssm_error_set(err, SSM_EINVAL, "model \"%s\": a trend needs a level", m->spec);
    /* validate now with a stand-in season when the real one comes from the series */
    kalman_structural_spec check = sp;
    if (seasonal_from_freq)
        check.seasonal = 2 * (sp.harmonics > 0 ? sp.harmonics : 1);
    kalman_error kerr = {0};
    kalman_model *probe = kalman_structural_create(&check, &kerr);
    if (!probe)
        return ssm_error_set(err, SSM_EINVAL, "model \"%s\": %s", m->spec, kerr.message);
    kalman_model_free(probe);
    kalman_impl *k = NULL;
    rc = new_impl(m, &k, err);
    if (rc)
        return rc;
    k->sspec = sp;
    k->needs_season = seasonal_from_freq;
    k->make = make_structural;
    char seas[32];
    if (seasonal_from_freq)
        snprintf(seas, sizeof seas, "season");
    else
        snprintf(seas, sizeof seas, "%d", sp.seasonal);
    snprintf(m->spec, sizeof m->spec,
             "structural(level=%s,trend=%s,seasonal=%s,harmonics=%d,cycle=%s,irregular=%s)",
             !sp.level ? "no" : sp.stochastic_level ? "stochastic" : "fixed",
             !sp.trend ? "no" : sp.stochastic_trend ? "stochastic" : "fixed", seas, sp.harmonics,
             sp.cycle ? "yes" : "no", sp.irregular ? "yes" : "no");
    return SSM_OK;
}

/* ---- SARIMA, ETS and automatic selection (kalman/sarima.c, ets.c, auto.c) --------------
 * sarima(p,d,q)(P,D,Q)[s][+c], ets(A,N|A|Ad,N|A)[m], kalman_auto. The kalman spec text is
 * the model's identity (kalman_model_from_spec rebuilds it at load); fitting goes through
 * the model's own estimator (model->fit: the fast exact SARIMA / profile ETS paths). */

static kalman_model *make_from_kspec(kalman_impl *impl, int season, const char *kspec,
                                     kalman_error *err)
{
    return kalman_model_from_spec(kspec ? kspec : impl->kspec, season, err);
}

static int select_own_fit(kalman_impl *k, const double *y, size_t n, int season,
                          kalman_fit_result *res, kalman_error *err)
{
    k->model = make_from_kspec(k, season, NULL, err);
    if (!k->model)
        return err->code ? err->code : KALMAN_EINVAL;
    return k->model->fit ? k->model->fit(k->model, y, n, NULL, res, err)
                         : kalman_fit(k->model, y, n, NULL, res, err);
}

static int select_auto(kalman_impl *k, const double *y, size_t n, int season,
                       kalman_fit_result *res, kalman_error *err)
{
    kalman_auto_opts o = {.season = season};
    kalman_auto_result out;
    int rc = kalman_auto(y, n, &o, &out, err);
    if (rc)
        return rc;
    k->model = out.model;
    *res = out.fit;
    return 0;
}

/* sarima and ets: the spec is checked now (with a stand-in season when it leaves the
 * season to the series), the season resolved at fit time */
static int create_sarima_ets(ssm_model *m, const char *name, const char *args, ssm_error *err)
{
    int is_sarima = !strcmp(name, "sarima");
    kalman_error kerr = {0};
    char text[128];
    int n = snprintf(text, sizeof text, "%s%s", name, args ? args : "");
    if (n < 0 || (size_t)n >= sizeof text)
        return ssm_error_set(err, SSM_EINVAL, "model spec \"%s\" is too long", m->spec);
    int needs_season = 0;
    if (is_sarima) {
        kalman_sarima_spec sp;
        if (kalman_sarima_parse(args, 0, &sp, &kerr)) {
            needs_season = kalman_sarima_parse(args, 12, &sp, NULL) == 0;
            if (!needs_season) {
                ssm_error_set(err, SSM_EINVAL, "%s", kerr.message);
                ssm_error_hint(err, "write sarima(p,d,q) or sarima(p,d,q)(P,D,Q)[s], +c for an intercept");
                return SSM_EINVAL;
            }
        }
        if (!needs_season)
            kalman_sarima_format(&sp, text, sizeof text);
    } else {
        kalman_ets_spec sp;
        if (kalman_ets_parse(args, 0, &sp, &kerr)) {
            needs_season = kalman_ets_parse(args, 12, &sp, NULL) == 0;
            if (!needs_season) {
                ssm_error_set(err, SSM_EINVAL, "%s", kerr.message);
                ssm_error_hint(err, "write ets(A,N,N), ets(A,A,N), ets(A,Ad,N), ets(A,N,A), ets(A,A,A) or ets(A,Ad,A)");
                return SSM_EINVAL;
            }
        }
        if (!needs_season)
            kalman_ets_format(&sp, text, sizeof text);
    }
    kalman_impl *k = NULL;
    int rc = new_impl(m, &k, err);
    if (rc)
        return rc;
    snprintf(k->kspec, sizeof k->kspec, "%s", text);
    k->needs_season = needs_season;
    k->make = make_from_kspec;
    k->select = select_own_fit;
    snprintf(m->spec, sizeof m->spec, "%s", text);
    return SSM_OK;
}

static int create_kalman_auto(ssm_model *m, const char *name, const char *args, ssm_error *err)
{
    (void)name;
    if (args && *args && strcmp(args, "()") != 0) {
        ssm_error_set(err, SSM_EINVAL, "model \"kalman_auto\" takes no options");
        ssm_error_hint(err, "the season comes from the series' frequency or the season option");
        return SSM_EINVAL;
    }
    kalman_impl *k = NULL;
    int rc = new_impl(m, &k, err);
    if (rc)
        return rc;
    k->make = make_from_kspec; /* at load: the winner's stored spec */
    k->select = select_auto;
    snprintf(m->spec, sizeof m->spec, "kalman_auto");
    return SSM_OK;
}

const ssm_model_kind ssm_kalman_kinds[] = {
    {"local_level", "kalman", "random walk plus noise (structural, MLE, exact diffuse)", create_named},
    {"local_linear_trend", "kalman", "stochastic level and slope plus noise", create_named},
    {"smooth_trend", "kalman", "integrated random walk trend plus noise", create_named},
    {"bsm", "kalman", "basic structural model: local linear trend + dummy seasonal + noise; bsm(season=S)",
     create_named},
    {"structural", "kalman",
     "unobserved components: structural(level=,trend=,seasonal=,harmonics=,cycle=,irregular=)",
     create_structural},
    {"sarima", "kalman", "seasonal ARIMA, exact likelihood: sarima(p,d,q)(P,D,Q)[s], +c for an intercept",
     create_sarima_ets},
    {"ets", "kalman", "additive exponential smoothing: ets(A,N,N), ets(A,A,N), ets(A,Ad,N), ets(A,N,A), ets(A,A,A), ets(A,Ad,A)",
     create_sarima_ets},
    {"kalman_auto", "kalman", "automatic choice among SARIMA, ETS and structural models (AICc, validation)",
     create_kalman_auto},
    {NULL, NULL, NULL, NULL},
};
