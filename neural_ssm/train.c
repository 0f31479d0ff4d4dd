/*
 * neural_ssm/train.c — the trainer: windows sampled from one series or every series of a
 * group, AdamW with linear warm-up and a cosine schedule, global-norm gradient clipping,
 * early stopping on a validation split taken from the end of each series, and the best
 * parameters restored at the end. Deterministic for a given seed and thread count as long
 * as the step budget (not the wall-clock budget) ends training.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

typedef struct split {
    size_t n, n_train;   /* training part is values[0 .. n_train) */
    long o_lo, o_hi;     /* training origins (last context index), inclusive */
} split;

/* A window of L + H values ending H after origin o; indices outside [0, limit) are NaN. */
static void build_window(const nssm_config *c, const nssm_series_ref *s, long o, size_t limit,
                         double *win, int64_t *cal0)
{
    const int L = c->context, H = c->horizon;
    long first = o - L + 1;
    for (int t = 0; t < L + H; t++) {
        long i = first + t;
        win[t] = i >= 0 && (size_t)i < limit && (size_t)i < s->n ? s->values[i] : NAN;
    }
    *cal0 = s->cal0 + first;
}

void nssm_adamw_update(real *p, const real *grad, real *m, real *v, size_t n, double lr,
                       double b1, double b2, double eps, double wd, int step, double gscale)
{
    const double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
    for (size_t i = 0; i < n; i++) {
        double g = grad[i] * gscale;
        m[i] = (real)(b1 * m[i] + (1 - b1) * g);
        v[i] = (real)(b2 * v[i] + (1 - b2) * g * g);
        double mh = m[i] / bc1, vh = v[i] / bc2;
        p[i] = (real)(p[i] - lr * (mh / (sqrt(vh) + eps) + wd * p[i]));
    }
}

double nssm_sumsq(const real *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct val_set {
    int count;
    double *win;     /* (count, L + H) */
    int64_t *cal0;   /* (count) */
    double *weight;  /* valid targets per window (count) */
} val_set;

static double validate(nssm_model *m, const val_set *v, int chunk, int *rc, nssm_error *err)
{
    const nssm_config *c = nssm_model_config(m);
    const int W = c->context + c->horizon;
    double total = 0, wsum = 0;
    for (int i = 0; i < v->count; i += chunk) {
        int b = v->count - i < chunk ? v->count - i : chunk;
        double loss, w = 0;
        *rc = nssm_model_eval_loss(m, v->win + (size_t)i * W, v->cal0 + i, b, &loss, err);
        if (*rc)
            return NAN;
        for (int k = 0; k < b; k++)
            w += v->weight[i + k];
        total += loss * w;
        wsum += w;
    }
    return wsum > 0 ? total / wsum : NAN;
}

int nssm_train(nssm_model *m, const nssm_series_ref *series, int n_series,
               const nssm_train_opts *opts_in, nssm_train_report *report, nssm_error *err)
{
    nssm_train_opts o = opts_in ? *opts_in : (nssm_train_opts){0};
    nssm_train_report rep_local;
    nssm_train_report *rep = report ? report : &rep_local;
    memset(rep, 0, sizeof *rep);
    const double t_start = now_seconds();
    if (o.max_steps <= 0) o.max_steps = 600;
    if (o.batch <= 0) o.batch = 32;
    if (o.lr <= 0) o.lr = 2e-3;
    if (o.weight_decay == 0) o.weight_decay = 0.01;
    if (o.weight_decay < 0) o.weight_decay = 0;
    if (o.warmup_frac <= 0) o.warmup_frac = 0.05;
    if (o.min_lr_frac <= 0) o.min_lr_frac = 0.1;
    if (o.clip <= 0) o.clip = 1.0;
    if (o.eval_every <= 0) o.eval_every = 25;
    if (o.patience <= 0) o.patience = 8;
    if (o.val_frac <= 0 || o.val_frac >= 0.5) o.val_frac = 0.1;
    if (o.threads <= 0) o.threads = 1;
    nssm_model_set_threads(m, o.threads);

    const nssm_config *c = nssm_model_config(m);
    const int L = c->context, H = c->horizon, W = L + H;
    if (n_series < 1 || !series)
        return nssm_error_set(err, NSSM_EINVAL, "no series to train on");

    /* splits and origins */
    split *sp = calloc(n_series, sizeof *sp);
    if (!sp)
        return nssm_error_set(err, NSSM_ENOMEM, "out of memory");
    long total_origins = 0;
    int val_total = 0;
    for (int s = 0; s < n_series; s++) {
        size_t n = series[s].n;
        for (size_t i = 0; i < n; i++)
            if (isinf(series[s].values[i])) {
                free(sp);
                nssm_error_set(err, NSSM_EINVAL, "series %d has an infinite value", s);
                nssm_error_detail(err, "value %zu", i);
                return NSSM_EINVAL;
            }
        size_t n_val = (size_t)ceil(o.val_frac * n);
        if (n_val < (size_t)H + 1)
            n_val = H + 1;
        sp[s].n = n;
        if (n < n_val + 8) {
            sp[s].n_train = 0;
            continue; /* too short to split; contributes nothing */
        }
        sp[s].n_train = n - n_val;
        long half = L / 2;
        if (half > (long)sp[s].n_train / 2)
            half = (long)sp[s].n_train / 2;
        sp[s].o_lo = half;
        sp[s].o_hi = (long)sp[s].n_train - 2;
        if (sp[s].o_hi >= sp[s].o_lo)
            total_origins += sp[s].o_hi - sp[s].o_lo + 1;
        val_total += (int)(n - sp[s].n_train - 1);
    }
    if (total_origins <= 0 || val_total <= 0) {
        free(sp);
        nssm_error_set(err, NSSM_ETOOSHORT, "series too short to train a neural model");
        nssm_error_detail(err, "a series needs at least %d observations for horizon %d "
                               "(%d training points plus a validation split of %d)",
                          H + 1 + 8 + 2, H, 8, H + 1);
        nssm_error_hint(err, "use a shorter horizon or a classical model");
        return NSSM_ETOOSHORT;
    }

    /* validation windows: every origin of the validation part, at most 256, evenly spread */
    const int max_val = 256;
    val_set vs = {0};
    vs.count = val_total < max_val ? val_total : max_val;
    vs.win = malloc(sizeof(double) * vs.count * W);
    vs.cal0 = malloc(sizeof(int64_t) * vs.count);
    vs.weight = malloc(sizeof(double) * vs.count);
    /* the moments live with the parameters (device memory on a GPU backend), where the
     * backend's optimiser step runs */
    const nssm_backend *be = nssm_model_backend_(m);
    real *adam_m = be->alloc(nssm_model_num_params(m) * sizeof(real));
    real *adam_v = be->alloc(nssm_model_num_params(m) * sizeof(real));
    real *best = malloc(sizeof(real) * nssm_model_num_params(m));
    double *bwin = malloc(sizeof(double) * o.batch * W);
    int64_t *bcal = malloc(sizeof(int64_t) * o.batch);
    int rc = NSSM_OK;
    if (!vs.win || !vs.cal0 || !vs.weight || !adam_m || !adam_v || !best || !bwin || !bcal) {
        rc = nssm_error_set(err, NSSM_ENOMEM, "out of memory for training");
        goto done;
    }
    {
        int k = 0;
        long idx = 0;
        for (int s = 0; s < n_series; s++) {
            if (!sp[s].n_train)
                continue;
            for (long org = (long)sp[s].n_train - 1; org <= (long)sp[s].n - 2; org++, idx++) {
                /* pick idx when it is the k-th of vs.count evenly spaced picks */
                long want = (long)((double)k * val_total / vs.count);
                if (idx != want || k >= vs.count)
                    continue;
                double *w = vs.win + (size_t)k * W;
                build_window(c, &series[s], org, sp[s].n, w, &vs.cal0[k]);
                double cnt = 0;
                for (int t = L; t < W; t++)
                    cnt += !isnan(w[t]);
                vs.weight[k] = cnt;
                k++;
            }
        }
        vs.count = k;
    }

    real *params = nssm_model_params_(m), *grads = nssm_model_grads_(m);
    const size_t np = nssm_model_num_params(m);
    nssm_rng rng;
    nssm_rng_seed(&rng, o.seed ? o.seed : 1);
    const int chunk = 32;
    int bad = 0;
    double val = validate(m, &vs, chunk, &rc, err);
    if (rc)
        goto done;
    rep->first_val_loss = rep->best_val_loss = val;
    rep->evaluations = 1;
    memcpy(best, params, sizeof(real) * np);
    const int warm = (int)ceil(o.warmup_frac * o.max_steps);
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (int step = 1; step <= o.max_steps; step++) {
        /* learning rate: linear warm-up, then cosine down to min_lr_frac * lr */
        double lr;
        if (step <= warm)
            lr = o.lr * step / warm;
        else {
            double prog = (double)(step - warm) / (double)(o.max_steps - warm > 0 ? o.max_steps - warm : 1);
            lr = o.lr * (o.min_lr_frac + (1 - o.min_lr_frac) * 0.5 * (1 + cos(M_PI * prog)));
        }
        for (int b = 0; b < o.batch; b++) {
            long r = (long)(nssm_rng_uniform(&rng) * total_origins);
            int s = 0;
            for (;; s++) {
                if (!sp[s].n_train || sp[s].o_hi < sp[s].o_lo)
                    continue;
                long cnt = sp[s].o_hi - sp[s].o_lo + 1;
                if (r < cnt)
                    break;
                r -= cnt;
            }
            build_window(c, &series[s], sp[s].o_lo + r, sp[s].n_train, bwin + (size_t)b * W,
                         &bcal[b]);
        }
        double loss;
        if ((rc = nssm_model_loss(m, bwin, bcal, o.batch, 1, &loss, err)))
            goto done;
        rep->last_train_loss = loss;
        double norm = sqrt(be->sumsq(grads, np));
        if (!isfinite(norm) && (rc = be->synchronize())) {
            nssm_error_set(err, rc, "the %s backend failed computing the gradient norm", be->name);
            goto done;
        }
        if (!isfinite(norm)) {
            rc = nssm_error_set(err, NSSM_ENUMERIC, "training diverged");
            nssm_error_detail(err, "the gradient norm is not finite at step %d", step);
            nssm_error_hint(err, "lower the learning rate");
            goto done;
        }
        double gscale = norm > o.clip ? o.clip / norm : 1;
        /* one update per run of consecutive tensors with the same weight decay */
        for (int ti = 0; ti < nssm_model_num_tensors(m);) {
            const nssm_tensor *t = nssm_model_tensor(m, ti);
            size_t end = t->offset + t->size;
            int tj = ti + 1;
            for (; tj < nssm_model_num_tensors(m); tj++) {
                const nssm_tensor *u = nssm_model_tensor(m, tj);
                if (u->decay != t->decay || u->offset != end)
                    break;
                end += u->size;
            }
            be->adamw_update(params + t->offset, grads + t->offset, adam_m + t->offset,
                             adam_v + t->offset, end - t->offset, lr, b1, b2, eps,
                             t->decay ? o.weight_decay : 0, step, gscale);
            ti = tj;
        }
        if ((rc = be->synchronize())) {
            nssm_error_set(err, rc, "the %s backend failed in the optimiser step", be->name);
            nssm_error_detail(err, "at step %d", step);
            goto done;
        }
        rep->steps = step;
        int timed_out = o.max_seconds > 0 && now_seconds() - t_start > o.max_seconds;
        if (step % o.eval_every == 0 || step == o.max_steps || timed_out) {
            val = validate(m, &vs, chunk, &rc, err);
            if (rc)
                goto done;
            rep->evaluations++;
            if (val < rep->best_val_loss) {
                rep->best_val_loss = val;
                rep->best_step = step;
                memcpy(best, params, sizeof(real) * np);
                bad = 0;
            } else if (++bad >= o.patience) {
                rep->stopped_early = 1;
                break;
            }
        }
        if (timed_out) {
            rep->timed_out = 1;
            break;
        }
    }
    memcpy(params, best, sizeof(real) * np);
done:
    rep->seconds = now_seconds() - t_start;
    free(sp);
    free(vs.win);
    free(vs.cal0);
    free(vs.weight);
    be->release(adam_m);
    be->release(adam_v);
    free(best);
    free(bwin);
    free(bcal);
    return rc;
}
