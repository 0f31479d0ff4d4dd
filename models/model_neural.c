/*
 * models/model_neural.c — the adapter that makes neural_ssm/'s forecaster a model of the
 * ssm_model interface: kinds `mamba` and `s4d`, e.g. "mamba(context=512,d_model=64,
 * layers=4,state=16)". Options not given are chosen from the series (length, frequency,
 * season) so a bare `mamba` trains a few-thousand-point series in well under two minutes
 * on a small CPU.
 *
 * Design choices:
 *  - Calendar features come from the series' frequency: the time of each grid point is
 *    turned into a calendar step index (steps since the Unix epoch for fixed-length units,
 *    months/quarters/years since year 0 for calendar units), and the network sees sin/cos
 *    of index / period for the periods of the grid (day and week for sub-daily data, week
 *    and year for daily, year for weekly/monthly/quarterly).
 *  - Quantiles: the network is trained on a fixed dense grid (0.025 .. 0.975, 13 levels)
 *    with the pinball loss; forecast() interpolates the grid to the requested levels
 *    linearly in normal-score space (z = Phi^-1(level)), extrapolating with the outermost
 *    segment's slope beyond 0.025/0.975. mean = the median; sd = (q90 - q10) / 2.563.
 *  - Steps beyond the trained horizon H are produced recursively: the median path is
 *    appended to the context and the network run again.
 *  - Missing observations (NaN) are accepted: imputed for the inputs, masked in the loss.
 *  - update() appends to the stored context (the last `context` values); forecast() runs
 *    from it. save()/load() carry the context and the neural checkpoint.
 *  - opts.checkpoint names a file written by nssm_checkpoint_save (e.g. a network trained
 *    once over a group of series): fit() then loads it instead of training and only keeps
 *    the series' context. opts.device picks the backend ("cuda" fails when absent).
 * Not for: training one model across a group of series (call nssm_train directly with
 * several nssm_series_ref for that).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model.h"
#include "neural_ssm.h"

typedef struct neural {
    nssm_mixer mixer;
    /* options from the spec; 0 = choose from the series */
    int context, d_model, layers, state, horizon, expand, steps, batch, s4d_inv;
    double lr;
    /* fitted */
    nssm_model *net;
    double *ctx;         /* the last nctx values (NaN = missing) */
    size_t nctx;
    int64_t cal_next;    /* calendar index of the grid point after the last one seen */
    nssm_train_report report;
    char chosen[256];
} neural;

/* ---- errors ------------------------------------------------------------------------- */

static int from_nssm(ssm_error *err, const nssm_error *ne, int rc)
{
    ssm_error_set(err, rc, "%s", ne->message);
    if (ne->detail[0])
        ssm_error_detail(err, "%s", ne->detail);
    if (ne->hint[0])
        ssm_error_hint(err, "%s", ne->hint);
    return rc;
}

/* ---- calendar ------------------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64_t unit_seconds(ssm_freq_unit u)
{
    switch (u) {
    case SSM_FREQ_SECOND: return 1;
    case SSM_FREQ_MINUTE: return 60;
    case SSM_FREQ_HOUR: return 3600;
    case SSM_FREQ_DAY: return 86400;
    case SSM_FREQ_WEEK: return 604800;
    default: return 0;
    }
}

/* Calendar step index of time t on grid f (see the file comment). */
static int64_t calendar_index(ssm_freq f, int64_t t)
{
    int64_t count = f.count > 0 ? f.count : 1;
    int64_t s = unit_seconds(f.unit);
    if (s)
        return floor_div(t, s * count);
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm))
        return 0;
    int64_t months = ((int64_t)tm.tm_year + 1900) * 12 + tm.tm_mon;
    if (f.unit == SSM_FREQ_MONTH)
        return floor_div(months, count);
    if (f.unit == SSM_FREQ_QUARTER)
        return floor_div(floor_div(months, 3), count);
    return floor_div((int64_t)tm.tm_year + 1900, count);
}

/* Calendar periods (in grid steps) of grid f; season (if > 1) comes first. */
static int calendar_periods(ssm_freq f, int season, double *p)
{
    int n = 0;
    int64_t step = unit_seconds(f.unit) * (f.count > 0 ? f.count : 1);
    if (season > 1)
        p[n++] = season;
#define ADD(v)                                                       \
    do {                                                             \
        double v_ = (v);                                             \
        int dup_ = 0;                                                \
        for (int k_ = 0; k_ < n; k_++)                               \
            dup_ |= fabs(p[k_] - v_) < 1e-9;                         \
        if (!dup_ && v_ >= 2 && v_ < 1e8 && n < NSSM_MAX_PERIODS)    \
            p[n++] = v_;                                             \
    } while (0)
    if (step > 0 && step < 86400 && 86400 % step == 0) {
        ADD(86400.0 / step);
        ADD(7 * 86400.0 / step);
    } else if (step == 86400) {
        ADD(7);
        ADD(365.25);
    } else if (step == 604800) {
        ADD(365.25 / 7);
    } else if (f.unit == SSM_FREQ_MONTH && 12 % f.count == 0) {
        ADD(12.0 / f.count);
    } else if (f.unit == SSM_FREQ_QUARTER && f.count == 1) {
        ADD(4);
    }
#undef ADD
    return n;
}

/* ---- spec ------------------------------------------------------------------------------ */

static int parse_int(const ssm_spec_kv *kv, int lo, int hi, int *out, ssm_error *err)
{
    char *end = NULL;
    long v = strtol(kv->value, &end, 10);
    if (!end || *end || v < lo || v > hi) {
        ssm_error_set(err, SSM_EINVAL, "bad value \"%s\" for neural model option \"%s\"",
                      kv->value, kv->key);
        ssm_error_hint(err, "%s takes an integer in %d..%d", kv->key, lo, hi);
        return SSM_EINVAL;
    }
    *out = (int)v;
    return SSM_OK;
}

static int neural_parse(neural *nn, const char *name, const char *args, ssm_error *err)
{
    ssm_spec_kv kv[16];
    size_t n = 0;
    int rc = ssm_spec_kv_parse(args, kv, 16, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const char *k = kv[i].key;
        if (strcmp(k, "context") == 0)
            rc = parse_int(&kv[i], 2, 65536, &nn->context, err);
        else if (strcmp(k, "d_model") == 0)
            rc = parse_int(&kv[i], 1, 4096, &nn->d_model, err);
        else if (strcmp(k, "layers") == 0)
            rc = parse_int(&kv[i], 0, NSSM_MAX_LAYERS, &nn->layers, err);
        else if (strcmp(k, "state") == 0)
            rc = parse_int(&kv[i], 1, NSSM_MAX_STATE, &nn->state, err);
        else if (strcmp(k, "horizon") == 0)
            rc = parse_int(&kv[i], 1, 10000, &nn->horizon, err);
        else if (strcmp(k, "expand") == 0 && nn->mixer == NSSM_MIXER_MAMBA)
            rc = parse_int(&kv[i], 1, 16, &nn->expand, err);
        else if (strcmp(k, "steps") == 0)
            rc = parse_int(&kv[i], 1, 1000000, &nn->steps, err);
        else if (strcmp(k, "batch") == 0)
            rc = parse_int(&kv[i], 1, 4096, &nn->batch, err);
        else if (strcmp(k, "lr") == 0) {
            char *end = NULL;
            nn->lr = strtod(kv[i].value, &end);
            if (!end || *end || !(nn->lr > 0 && nn->lr < 1)) {
                ssm_error_set(err, SSM_EINVAL, "bad value \"%s\" for neural model option \"lr\"",
                              kv[i].value);
                return SSM_EINVAL;
            }
        } else if (strcmp(k, "init") == 0 && nn->mixer == NSSM_MIXER_S4D) {
            if (strcmp(kv[i].value, "lin") == 0)
                nn->s4d_inv = 0;
            else if (strcmp(kv[i].value, "inv") == 0)
                nn->s4d_inv = 1;
            else {
                ssm_error_set(err, SSM_EINVAL, "bad value \"%s\" for s4d option \"init\"",
                              kv[i].value);
                ssm_error_hint(err, "use init=lin (S4D-Lin) or init=inv (S4D-Inv)");
                return SSM_EINVAL;
            }
        } else {
            ssm_error_set(err, SSM_EINVAL, "unknown option \"%s\" for model \"%s\"", k, name);
            ssm_error_hint(err, "%s takes context, d_model, layers, state, horizon, steps, batch, "
                                "lr%s",
                           name, nn->mixer == NSSM_MIXER_MAMBA ? ", expand" : ", init");
            return SSM_EINVAL;
        }
        if (rc)
            return rc;
    }
    return SSM_OK;
}

/* ---- fit -------------------------------------------------------------------------------- */

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int threads_of(const ssm_model *m)
{
    if (m->opts.threads > 0)
        return m->opts.threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Keeps the last `keep` values of y (NaN allowed) as the stored context. */
static int store_context(neural *nn, const double *v, size_t n, size_t keep, ssm_error *err)
{
    size_t take = n < keep ? n : keep;
    double *c = malloc(sizeof(double) * (take ? take : 1));
    if (!c)
        return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    memcpy(c, v + (n - take), sizeof(double) * take);
    free(nn->ctx);
    nn->ctx = c;
    nn->nctx = take;
    return SSM_OK;
}

static int neural_fit(ssm_model *m, const ssm_series *y, ssm_error *err)
{
    neural *nn = m->impl;
    nssm_error ne = {0};
    nssm_device dev;
    int rc = nssm_device_parse(m->opts.device, &dev, &ne);
    if (rc)
        return from_nssm(err, &ne, SSM_EINVAL);
    const nssm_backend *be = nssm_backend_get(dev, &ne);
    if (!be)
        return from_nssm(err, &ne, SSM_EUNSUPPORTED);
    int season = m->opts.season > 0 ? m->opts.season : ssm_freq_season(y->freq);
    size_t observed = 0;
    for (size_t i = 0; i < y->n; i++)
        observed += !isnan(y->values[i]);
    const int64_t cal0 = calendar_index(y->freq, y->start);

    nssm_model *net = NULL;
    if (m->opts.checkpoint) {
        /* a trained network from a checkpoint file: no training */
        FILE *fp = fopen(m->opts.checkpoint, "rb");
        if (!fp) {
            ssm_error_set(err, SSM_EIO, "could not open neural checkpoint \"%s\"",
                          m->opts.checkpoint);
            return SSM_EIO;
        }
        ssm_buffer buf = {0};
        uint8_t chunk[65536];
        size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0)
            if (ssm_buffer_append(&buf, chunk, got)) {
                fclose(fp);
                ssm_buffer_free(&buf);
                return ssm_error_set(err, SSM_ENOMEM, "out of memory");
            }
        int ferr = ferror(fp);
        fclose(fp);
        if (ferr) {
            ssm_buffer_free(&buf);
            return ssm_error_set(err, SSM_EIO, "could not read neural checkpoint \"%s\"",
                                 m->opts.checkpoint);
        }
        rc = nssm_checkpoint_load(&net, buf.data, buf.len, be, &ne);
        ssm_buffer_free(&buf);
        if (rc) {
            from_nssm(err, &ne, SSM_EFORMAT);
            ssm_error_detail(err, "file \"%s\": %s", m->opts.checkpoint, ne.detail);
            return SSM_EFORMAT;
        }
        if (nssm_model_config(net)->mixer != (int)nn->mixer) {
            nssm_model_free(net);
            ssm_error_set(err, SSM_EFORMAT, "neural checkpoint \"%s\" holds another architecture",
                          m->opts.checkpoint);
            ssm_error_detail(err, "the model is %s", nn->mixer == NSSM_MIXER_MAMBA ? "mamba" : "s4d");
            return SSM_EFORMAT;
        }
        memset(&nn->report, 0, sizeof nn->report);
        nn->report.best_val_loss = NAN;
    } else {
        if (observed < 16)
            return ssm_error_set(err, SSM_ETOOSHORT,
                                 "series \"%s\" has %zu observations, a neural model needs at "
                                 "least 16",
                                 y->name ? y->name : "?", observed);
        nssm_config c;
        nssm_config_default(&c, nn->mixer);
        int n = (int)(y->n < 1000000 ? y->n : 1000000);
        c.horizon = nn->horizon ? nn->horizon : clampi(2 * season, 8, 96);
        /* leave room for the validation split and a few dozen training origins */
        int max_h = n / 4 > 1 ? n / 4 : 1;
        if (!nn->horizon && c.horizon > max_h)
            c.horizon = max_h;
        c.context = nn->context ? nn->context : clampi(4 * season, 32, 512);
        if (!nn->context && c.context > n / 2)
            c.context = n / 2 > 8 ? n / 2 : 8;
        c.d_model = nn->d_model ? nn->d_model : 32;
        c.n_layers = nn->layers ? nn->layers : 2;
        c.d_state = nn->state ? nn->state : 16;
        if (nn->expand)
            c.expand = nn->expand;
        c.s4d_inv = nn->s4d_inv;
        c.n_periods = calendar_periods(y->freq, season, c.periods);
        rc = nssm_model_create(&net, &c, m->opts.seed ? m->opts.seed : 1, be, &ne);
        if (rc)
            return from_nssm(err, &ne, rc);
        nssm_train_opts o = {0};
        o.max_steps = nn->steps ? nn->steps : 600;
        o.batch = nn->batch ? nn->batch : 32;
        o.lr = nn->lr > 0 ? nn->lr : 3e-3;
        o.eval_every = 20;
        o.patience = 6;
        o.max_seconds = m->opts.max_seconds > 0 ? m->opts.max_seconds : 100;
        o.seed = m->opts.seed ? m->opts.seed : 1;
        o.threads = threads_of(m);
        nssm_series_ref s = {y->values, y->n, cal0};
        rc = nssm_train(net, &s, 1, &o, &nn->report, &ne);
        if (rc) {
            nssm_model_free(net);
            from_nssm(err, &ne, rc);
            if (rc == NSSM_ETOOSHORT)
                ssm_error_detail(err, "series \"%s\" has %zu points: %s", y->name ? y->name : "?",
                                 y->n, ne.detail);
            return rc;
        }
    }
    nssm_model_set_threads(net, threads_of(m));
    const nssm_config *c = nssm_model_config(net);
    if ((rc = store_context(nn, y->values, y->n, (size_t)c->context, err))) {
        nssm_model_free(net);
        return rc;
    }
    nssm_model_free(nn->net);
    nn->net = net;
    nn->cal_next = cal0 + (int64_t)y->n;
    snprintf(nn->chosen, sizeof nn->chosen,
             "%s(context=%d,d_model=%d,layers=%d,state=%d,horizon=%d)",
             nn->mixer == NSSM_MIXER_MAMBA ? "mamba" : "s4d", c->context, c->d_model,
             c->n_layers, c->d_state, c->horizon);
    return SSM_OK;
}

static int neural_update(ssm_model *m, const double *values, size_t n, ssm_error *err)
{
    neural *nn = m->impl;
    if (!nn->net)
        return ssm_error_set(err, SSM_EINVAL, "model \"%s\" is not fitted", m->spec);
    size_t keep = (size_t)nssm_model_config(nn->net)->context;
    size_t total = nn->nctx + n;
    double *all = malloc(sizeof(double) * total);
    if (!all)
        return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    memcpy(all, nn->ctx, sizeof(double) * nn->nctx);
    memcpy(all + nn->nctx, values, sizeof(double) * n);
    int rc = store_context(nn, all, total, keep, err);
    free(all);
    if (rc == SSM_OK)
        nn->cal_next += (int64_t)n;
    return rc;
}

/* ---- forecast ---------------------------------------------------------------------------- */

/* Quantile at level p from the grid (levels tau, values q, nq ascending), linear in normal
 * scores, extrapolated with the end segments. */
static double grid_quantile(const double *tau, const double *q, int nq, double p)
{
    if (nq == 1)
        return q[0];
    double z = nssm_normal_quantile(p);
    int k = 0;
    while (k < nq - 2 && nssm_normal_quantile(tau[k + 1]) < z)
        k++;
    double z0 = nssm_normal_quantile(tau[k]), z1 = nssm_normal_quantile(tau[k + 1]);
    return q[k] + (q[k + 1] - q[k]) * (z - z0) / (z1 - z0);
}

static int neural_forecast(const ssm_model *m, ssm_forecast *f, ssm_error *err)
{
    const neural *nn = m->impl;
    if (!nn->net)
        return ssm_error_set(err, SSM_EINVAL, "model \"%s\" is not fitted", m->spec);
    const nssm_config *c = nssm_model_config(nn->net);
    const int H = c->horizon, Q = c->nq, L = c->context;
    int mid = 0;
    for (int j = 0; j < Q; j++)
        if (c->quantiles[j] == 0.5)
            mid = j;
    /* the working context grows by the median path for steps beyond H */
    size_t cap = (size_t)L + f->horizon + H;
    double *work = malloc(sizeof(double) * cap);
    double *grid = malloc(sizeof(double) * H * Q);
    if (!work || !grid) {
        free(work);
        free(grid);
        return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    }
    memcpy(work, nn->ctx, sizeof(double) * nn->nctx);
    size_t nw = nn->nctx;
    int64_t cal_first = nn->cal_next - (int64_t)nn->nctx;
    nssm_error ne = {0};
    int rc = SSM_OK;
    for (size_t done = 0; done < f->horizon && rc == SSM_OK;) {
        nssm_series_ref s = {work, nw, cal_first};
        if ((rc = nssm_forecast(nn->net, &s, grid, &ne))) {
            rc = from_nssm(err, &ne, rc);
            break;
        }
        for (int h = 0; h < H && done < f->horizon; h++, done++) {
            const double *gq = grid + (size_t)h * Q;
            f->mean[done] = gq[mid];
            f->sd[done] = (grid_quantile(c->quantiles, gq, Q, 0.9) -
                           grid_quantile(c->quantiles, gq, Q, 0.1)) / (2 * 1.2815515655446004);
            for (size_t j = 0; j < f->nq; j++)
                f->q[done * f->nq + j] = grid_quantile(c->quantiles, gq, Q, f->levels[j]);
            work[nw++] = gq[mid];
        }
    }
    free(work);
    free(grid);
    return rc;
}

static int neural_info(const ssm_model *m, ssm_fit_info *out)
{
    const neural *nn = m->impl;
    out->converged = nn->net != NULL;
    out->iterations = nn->report.steps;
    out->loglik = nn->report.best_val_loss; /* the validation pinball loss, not a likelihood */
    if (nn->net) {
        size_t k = 0;
#define P(nm, v)                                                                  \
    do {                                                                          \
        snprintf(out->params[k].name, sizeof out->params[k].name, "%s", nm);      \
        out->params[k++].value = (v);                                             \
    } while (0)
        const nssm_config *c = nssm_model_config(nn->net);
        P("val_loss", nn->report.best_val_loss);
        P("first_val_loss", nn->report.first_val_loss);
        P("train_steps", nn->report.steps);
        P("best_step", nn->report.best_step);
        P("train_seconds", nn->report.seconds);
        P("context", c->context);
        P("horizon", c->horizon);
        P("d_model", c->d_model);
        P("layers", c->n_layers);
        P("state", c->d_state);
        P("n_weights", (double)nssm_model_num_params(nn->net));
#undef P
        out->nparams = k;
        snprintf(out->chosen, sizeof out->chosen, "%s", nn->chosen);
    }
    return SSM_OK;
}

/* ---- save / load -------------------------------------------------------------------------- */

/* Payload: "NSAD" | u32 version | u32 mixer | i64 cal_next | u64 nctx | f64 ctx[nctx] |
 * f64 val_loss, first_val_loss, seconds | u32 steps, best_step | u16 chosen length +
 * bytes | u64 checkpoint length | checkpoint (neural_ssm's own format, CRC-protected). */
#define NSAD_MAGIC 0x4441534eu
#define NSAD_VERSION 1u

static int put_le(ssm_buffer *b, uint64_t v, int n)
{
    uint8_t p[8];
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return ssm_buffer_append(b, p, (size_t)n);
}

static int put_f64(ssm_buffer *b, double x)
{
    uint64_t v;
    memcpy(&v, &x, 8);
    return put_le(b, v, 8);
}

static int neural_save(const ssm_model *m, ssm_buffer *out, ssm_error *err)
{
    const neural *nn = m->impl;
    if (!nn->net)
        return ssm_error_set(err, SSM_EINVAL, "model \"%s\" is not fitted", m->spec);
    nssm_error ne = {0};
    uint8_t *ck;
    size_t cklen;
    int rc = nssm_checkpoint_save(nn->net, &ck, &cklen, &ne);
    if (rc)
        return from_nssm(err, &ne, rc);
    size_t chl = strlen(nn->chosen);
    rc = put_le(out, NSAD_MAGIC, 4) | put_le(out, NSAD_VERSION, 4) |
         put_le(out, (uint64_t)nn->mixer, 4) | put_le(out, (uint64_t)nn->cal_next, 8) |
         put_le(out, nn->nctx, 8);
    for (size_t i = 0; i < nn->nctx; i++)
        rc |= put_f64(out, nn->ctx[i]);
    rc |= put_f64(out, nn->report.best_val_loss) | put_f64(out, nn->report.first_val_loss) |
          put_f64(out, nn->report.seconds) | put_le(out, (uint64_t)nn->report.steps, 4) |
          put_le(out, (uint64_t)nn->report.best_step, 4) | put_le(out, chl, 2) |
          ssm_buffer_append(out, nn->chosen, chl) | put_le(out, cklen, 8) |
          ssm_buffer_append(out, ck, cklen);
    free(ck);
    return rc ? ssm_error_set(err, SSM_ENOMEM, "out of memory") : SSM_OK;
}

typedef struct cursor {
    const uint8_t *p;
    size_t len, pos;
    int bad;
} cursor;

static uint64_t get_le(cursor *c, int n)
{
    if (c->bad || (size_t)n > c->len - c->pos) {
        c->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)c->p[c->pos + i] << (8 * i);
    c->pos += (size_t)n;
    return v;
}

static double get_f64(cursor *c)
{
    uint64_t v = get_le(c, 8);
    double x;
    memcpy(&x, &v, 8);
    return x;
}

static int neural_load(ssm_model *m, const uint8_t *data, size_t len, ssm_error *err)
{
    neural *nn = m->impl;
    cursor c = {data, len, 0, 0};
    if (get_le(&c, 4) != NSAD_MAGIC || get_le(&c, 4) != NSAD_VERSION || c.bad)
        return ssm_error_set(err, SSM_EFORMAT, "stored neural model state is truncated or of "
                                               "another version");
    if (get_le(&c, 4) != (uint64_t)nn->mixer)
        return ssm_error_set(err, SSM_EFORMAT, "stored neural model state is of another kind");
    int64_t cal_next = (int64_t)get_le(&c, 8);
    uint64_t nctx = get_le(&c, 8);
    if (c.bad || nctx > (len - c.pos) / 8)
        return ssm_error_set(err, SSM_EFORMAT, "stored neural model state is truncated");
    double *ctx = malloc(sizeof(double) * (nctx ? nctx : 1));
    if (!ctx)
        return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    for (uint64_t i = 0; i < nctx; i++)
        ctx[i] = get_f64(&c);
    nssm_train_report rep = {0};
    rep.best_val_loss = get_f64(&c);
    rep.first_val_loss = get_f64(&c);
    rep.seconds = get_f64(&c);
    rep.steps = (int)get_le(&c, 4);
    rep.best_step = (int)get_le(&c, 4);
    size_t chl = (size_t)get_le(&c, 2);
    char chosen[256] = "";
    if (!c.bad && chl < sizeof chosen && chl <= len - c.pos) {
        memcpy(chosen, data + c.pos, chl);
        chosen[chl] = '\0';
        c.pos += chl;
    } else {
        c.bad = 1;
    }
    uint64_t cklen = get_le(&c, 8);
    if (c.bad || cklen != len - c.pos) {
        free(ctx);
        return ssm_error_set(err, SSM_EFORMAT, "stored neural model state is truncated");
    }
    nssm_error ne = {0};
    nssm_device dev;
    const nssm_backend *be = NULL;
    if (nssm_device_parse(m->opts.device, &dev, &ne) == NSSM_OK)
        be = nssm_backend_get(dev, &ne);
    if (!be) {
        free(ctx);
        return from_nssm(err, &ne, SSM_EUNSUPPORTED);
    }
    nssm_model *net;
    int rc = nssm_checkpoint_load(&net, data + c.pos, (size_t)cklen, be, &ne);
    if (rc) {
        free(ctx);
        return from_nssm(err, &ne, rc);
    }
    if (nctx > (uint64_t)nssm_model_config(net)->context) {
        free(ctx);
        nssm_model_free(net);
        return ssm_error_set(err, SSM_EFORMAT, "stored neural context is longer than the model's");
    }
    nssm_model_set_threads(net, threads_of(m));
    nssm_model_free(nn->net);
    free(nn->ctx);
    nn->net = net;
    nn->ctx = ctx;
    nn->nctx = (size_t)nctx;
    nn->cal_next = cal_next;
    nn->report = rep;
    memcpy(nn->chosen, chosen, sizeof chosen);
    return SSM_OK;
}

static void neural_destroy(ssm_model *m)
{
    neural *nn = m->impl;
    if (nn) {
        nssm_model_free(nn->net);
        free(nn->ctx);
    }
    free(nn);
    m->impl = NULL;
}

static const ssm_model_ops neural_ops = {
    .fit = neural_fit,
    .update = neural_update,
    .forecast = neural_forecast,
    .info = neural_info,
    .save = neural_save,
    .load = neural_load,
    .destroy = neural_destroy,
};

static int neural_create(ssm_model *m, const char *name, const char *args, ssm_error *err)
{
    neural *nn = calloc(1, sizeof *nn);
    if (!nn)
        return ssm_error_set(err, SSM_ENOMEM, "out of memory");
    nn->mixer = strcmp(name, "s4d") == 0 ? NSSM_MIXER_S4D : NSSM_MIXER_MAMBA;
    m->impl = nn;
    m->ops = &neural_ops;
    int rc = neural_parse(nn, name, args, err);
    if (rc)
        return rc;
    nssm_device dev;
    nssm_error ne = {0};
    if (nssm_device_parse(m->opts.device, &dev, &ne))
        return from_nssm(err, &ne, SSM_EINVAL);
    return SSM_OK;
}

const ssm_model_kind ssm_neural_kinds[] = {
    {"mamba", "neural",
     "Mamba selective state space network, quantile forecasts (context, d_model, layers, state, "
     "horizon, expand, steps, batch, lr)",
     neural_create},
    {"s4d", "neural",
     "S4D diagonal state space network, quantile forecasts (context, d_model, layers, state, "
     "horizon, init=lin|inv, steps, batch, lr)",
     neural_create},
    {NULL, NULL, NULL, NULL},
};
