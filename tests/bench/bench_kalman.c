/*
 * tests/bench/bench_kalman.c — maximum likelihood fits of Kalman models, ssmd against
 * statsmodels and R, timed in-process on the same data.
 *
 * Cases: the Nile local level; the airline model SARIMA(0,1,1)(0,1,1)[12] on
 * log(AirPassengers); the basic structural model (local linear trend + dummy seasonal +
 * irregular) on log(AirPassengers); 1,000 simulated series of length 500 from a local
 * linear trend + seasonal(24) + noise, fitted as BSMs with season 24 on all cores
 * (pthreads). Each fit is timed alone (model construction and data loading excluded);
 * single fits report the median CPU time over repeats (the peers too), the batch its wall
 * time.
 *
 * The peers run in separate processes (tests/bench/bench_kalman.py for statsmodels,
 * tests/bench/bench_kalman.R for R; tests/bench/bench_kalman.sh runs everything) and write
 * "name seconds loglik nparams p1 p2 .." lines with their parameters in ssmd's order;
 * this program reads them (--peer NAME=FILE), evaluates ssmd's own likelihood at the
 * peers' estimates (so the log-likelihoods are compared on one function: the peers'
 * figures use their own constants, R's StructTS in particular) and prints the table.
 * For the 1,000-series case the peers fit the first --peer-series series (default 20),
 * their time is the median per series times 1,000 (single-threaded, scaled, as labelled),
 * and the log-likelihoods are summed over those series.
 *
 * Usage: bench_kalman [--data DIR] [--repeats N] [--threads T] [--nsim N] [--simlen L]
 *                     [--write-sim FILE] [--peer-series K] [--peer NAME=FILE ...]
 * --write-sim writes the first K simulated series (one per line, comma-separated) and
 * exits.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kalman.h"

#ifndef SSMD_TEST_DATA
#define SSMD_TEST_DATA "tests/data"
#endif

#define MAX_PEERS 4
#define MAX_RESULTS 256

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of this process: single fits are timed in CPU time, so a busy machine
 * (other processes) does not inflate them; the peers do the same. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double *load_csv(const char *dir, const char *name, int take_log, size_t *n)
{
    char path[1024], line[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 1024, len = 0;
    double *y = malloc(cap * sizeof(double));
    if (!y || !fgets(line, sizeof line, f)) {
        free(y);
        fclose(f);
        return NULL;
    }
    while (fgets(line, sizeof line, f) && len < cap) {
        char *comma = strchr(line, ',');
        if (!comma)
            continue;
        double v = strtod(comma + 1, NULL);
        y[len++] = take_log ? log(v) : v;
    }
    fclose(f);
    *n = len;
    return y;
}

static int fit(const kalman_model *m, const double *y, size_t n, kalman_fit_result *res,
               kalman_error *err)
{
    return m->fit ? m->fit(m, y, n, NULL, res, err) : kalman_fit(m, y, n, NULL, res, err);
}

/* ssmd's exact log-likelihood of y at constrained params p */
static double loglik_at(const kalman_model *m, const double *p, const double *y, size_t n)
{
    kalman_error err;
    kalman_ssm s;
    double ll = NAN;
    if (kalman_ssm_alloc(&s, m->m, m->r, &err))
        return NAN;
    kalman_workspace *ws = kalman_workspace_create(m->m, m->r, &err);
    if (ws && m->build(m->ctx, p, &s, ws, &err) == 0)
        if (kalman_loglik(&s, y, n, 0, ws, &ll, NULL, NULL, &err))
            ll = NAN;
    kalman_workspace_free(ws);
    kalman_ssm_free(&s);
    return ll;
}

/* ---- simulation: local linear trend + dummy seasonal + noise ------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_normal(uint64_t *s)
{
    double u1 = ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* series i (len L, season 24): irregular 1, level 0.1, slope 1e-4, seasonal 0.05 */
static void simulate(int i, size_t L, double *y)
{
    enum { S = 24 };
    uint64_t st = 0x5eed0000ull + (uint64_t)i * 7919u;
    double level = 10.0 + 2.0 * rng_normal(&st), slope = 0.01 * rng_normal(&st);
    double seas[S];
    double mean = 0.0;
    for (int j = 0; j < S; j++) {
        seas[j] = 3.0 * sin(6.283185307179586 * j / S) + 0.5 * rng_normal(&st);
        mean += seas[j] / S;
    }
    for (int j = 0; j < S; j++)
        seas[j] -= mean;
    for (size_t t = 0; t < L; t++) {
        double s_t = seas[t % S];
        y[t] = level + s_t + 1.0 * rng_normal(&st);
        level += slope + sqrt(0.1) * rng_normal(&st);
        slope += sqrt(1e-4) * rng_normal(&st);
        /* dummy seasonal: the new value makes the last S sum to -noise */
        double sum = 0.0;
        for (int j = 1; j < S; j++)
            sum += seas[(t + j) % S];
        seas[t % S] = -sum + sqrt(0.05) * rng_normal(&st);
    }
}

/* ---- peers ---------------------------------------------------------------------------- */

typedef struct peer_result {
    char name[64];
    double seconds, loglik;
    int np;
    double params[KALMAN_MAX_PARAMS];
} peer_result;

typedef struct peer {
    char name[32];
    int n;
    peer_result r[MAX_RESULTS];
} peer;

static int peer_load(peer *p, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq)
        return -1;
    snprintf(p->name, sizeof p->name, "%.*s", (int)(eq - arg), arg);
    FILE *f = fopen(eq + 1, "r");
    if (!f)
        return -1;
    char line[4096];
    p->n = 0;
    while (fgets(line, sizeof line, f) && p->n < MAX_RESULTS) {
        peer_result *r = &p->r[p->n];
        int off = 0;
        if (line[0] == '#' ||
            sscanf(line, "%63s %lf %lf %d%n", r->name, &r->seconds, &r->loglik, &r->np, &off) != 4)
            continue;
        char *q = line + off;
        int k = 0;
        for (; k < r->np && k < KALMAN_MAX_PARAMS; k++) {
            char *end;
            r->params[k] = strtod(q, &end);
            if (end == q)
                break;
            q = end;
        }
        if (k == r->np)
            p->n++;
    }
    fclose(f);
    return 0;
}

static const peer_result *peer_find(const peer *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->r[i].name, name))
            return &p->r[i];
    return NULL;
}

/* ---- the 1,000-series case ------------------------------------------------------------- */

typedef struct sim_job {
    const kalman_model *model;
    const double *Y;     /* (nsim, L) */
    size_t L;
    int nsim, nthreads, tid;
    double *loglik;      /* (nsim) */
    double *params;      /* (nsim, KALMAN_MAX_PARAMS) */
    int failures;
} sim_job;

static void *sim_worker(void *arg)
{
    sim_job *j = arg;
    for (int i = j->tid; i < j->nsim; i += j->nthreads) {
        kalman_fit_result res;
        kalman_error err;
        if (fit(j->model, j->Y + (size_t)i * j->L, j->L, &res, &err)) {
            j->loglik[i] = NAN;
            j->failures++;
            continue;
        }
        j->loglik[i] = res.loglik;
        memcpy(j->params + (size_t)i * KALMAN_MAX_PARAMS, res.params,
               (size_t)res.nparams * sizeof(double));
    }
    return NULL;
}

/* ---- main ------------------------------------------------------------------------------ */

typedef struct row {
    char name[48];
    char unit[16];
    double ssmd_s;               /* seconds (for sim: the whole batch) */
    double ssmd_ll;
    double peer_s[MAX_PEERS];    /* NAN when absent */
    double peer_ll[MAX_PEERS];
    double ssmd_at_peer[MAX_PEERS];
    int peer_worse[MAX_PEERS];   /* sim: series where ssmd's optimum is below ssmd at peer */
} row;

static void usage(void)
{
    fprintf(stderr, "usage: bench_kalman [--data DIR] [--repeats N] [--threads T] [--nsim N] "
                    "[--simlen L] [--peer-series K] [--write-sim FILE] [--peer NAME=FILE ...]\n");
}

int main(int argc, char **argv)
{
    const char *data = SSMD_TEST_DATA, *write_sim = NULL;
    int repeats = 21, nthreads = 2, nsim = 1000, peer_series = 20;
    size_t L = 500;
    peer peers[MAX_PEERS];
    int npeers = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            nthreads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--nsim") && i + 1 < argc)
            nsim = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--simlen") && i + 1 < argc)
            L = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--peer-series") && i + 1 < argc)
            peer_series = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--write-sim") && i + 1 < argc)
            write_sim = argv[++i];
        else if (!strcmp(argv[i], "--peer") && i + 1 < argc && npeers < MAX_PEERS) {
            if (peer_load(&peers[npeers], argv[++i])) {
                fprintf(stderr, "bench_kalman: cannot read peer results \"%s\"\n", argv[i]);
                return 2;
            }
            npeers++;
        } else {
            usage();
            return 2;
        }
    }
    if (repeats < 1 || nthreads < 1 || nsim < 1 || L < 60 || peer_series < 1) {
        usage();
        return 2;
    }
    if (peer_series > nsim)
        peer_series = nsim;

    double *Y = malloc((size_t)nsim * L * sizeof(double));
    if (!Y)
        return 1;
    for (int i = 0; i < nsim; i++)
        simulate(i, L, Y + (size_t)i * L);
    if (write_sim) {
        FILE *f = fopen(write_sim, "w");
        if (!f) {
            fprintf(stderr, "bench_kalman: cannot write %s\n", write_sim);
            free(Y);
            return 1;
        }
        for (int i = 0; i < peer_series; i++)
            for (size_t t = 0; t < L; t++)
                fprintf(f, "%.17g%c", Y[(size_t)i * L + t], t + 1 < L ? ',' : '\n');
        fclose(f);
        free(Y);
        return 0;
    }

    size_t n_nile, n_air;
    double *nile = load_csv(data, "Nile.csv", 0, &n_nile);
    double *air = load_csv(data, "AirPassengers.csv", 1, &n_air);
    if (!nile || !air) {
        fprintf(stderr, "bench_kalman: cannot read Nile.csv / AirPassengers.csv in %s\n", data);
        return 1;
    }
    struct {
        const char *name, *spec;
        const double *y;
        size_t n;
    } cases[3] = {
        {"nile_local_level", "local_level", nile, n_nile},
        {"airline_sarima", "sarima(0,1,1)(0,1,1)[12]", air, n_air},
        {"bsm_log_air", "bsm(season=12)", air, n_air},
    };
    row rows[4];
    memset(rows, 0, sizeof rows);
    kalman_error err;
    printf("ssmd bench_kalman: %d repeats per single fit, %d threads for %d simulated series of "
           "length %zu\n", repeats, nthreads, nsim, L);
    for (int c = 0; c < 3; c++) {
        kalman_model *m = kalman_model_from_spec(cases[c].spec, 12, &err);
        if (!m) {
            fprintf(stderr, "bench_kalman: %s: %s\n", cases[c].spec, err.message);
            return 1;
        }
        double *ts = malloc((size_t)repeats * sizeof(double));
        double *wall = malloc((size_t)repeats * sizeof(double));
        kalman_fit_result res;
        for (int r = 0; r < repeats; r++) {
            double t0 = cpu_now(), w0 = now();
            if (fit(m, cases[c].y, cases[c].n, &res, &err)) {
                fprintf(stderr, "bench_kalman: %s fit failed: %s\n", cases[c].name, err.message);
                return 1;
            }
            ts[r] = cpu_now() - t0;
            wall[r] = now() - w0;
        }
        row *rw = &rows[c];
        snprintf(rw->name, sizeof rw->name, "%s", cases[c].name);
        snprintf(rw->unit, sizeof rw->unit, "ms");
        rw->ssmd_s = median(ts, repeats);
        rw->ssmd_ll = res.loglik;
        printf("ssmd %-18s %9.3f ms cpu (%.3f ms wall)  loglik %.6f  converged %d  %s:",
               cases[c].name, 1e3 * rw->ssmd_s, 1e3 * median(wall, repeats), res.loglik,
               res.converged, m->spec);
        for (int i = 0; i < m->nparams; i++)
            printf(" %s=%.6g", m->names[i], res.params[i]);
        printf("\n");
        for (int p = 0; p < npeers; p++) {
            const peer_result *pr = peer_find(&peers[p], cases[c].name);
            rw->peer_s[p] = pr ? pr->seconds : NAN;
            rw->peer_ll[p] = pr ? pr->loglik : NAN;
            rw->ssmd_at_peer[p] =
                pr && pr->np == m->nparams ? loglik_at(m, pr->params, cases[c].y, cases[c].n) : NAN;
        }
        if (m->fit) {
            /* for the record: the same model through the generic optimizer on the full
             * system (what the model's own estimator replaces) */
            kalman_model plain = *m;
            plain.fit = NULL;
            int reps = repeats < 3 ? repeats : 3;
            for (int r = 0; r < reps; r++) {
                double t0 = cpu_now();
                if (kalman_fit(&plain, cases[c].y, cases[c].n, NULL, &res, &err))
                    break;
                ts[r] = cpu_now() - t0;
            }
            printf("     %-18s %9.3f ms cpu through the generic kalman_fit (loglik %.6f)\n",
                   "", 1e3 * median(ts, reps), res.loglik);
        }
        free(ts);
        free(wall);
        kalman_model_free(m);
    }

    /* the batch: nsim BSM(24) fits on nthreads threads, timed as a whole */
    {
        kalman_model *m = kalman_model_from_spec("bsm(season=24)", 24, &err);
        if (!m) {
            fprintf(stderr, "bench_kalman: bsm(season=24): %s\n", err.message);
            return 1;
        }
        double *ll = malloc((size_t)nsim * sizeof(double));
        double *pp = calloc((size_t)nsim * KALMAN_MAX_PARAMS, sizeof(double));
        sim_job *jobs = calloc((size_t)nthreads, sizeof(sim_job));
        pthread_t *th = calloc((size_t)nthreads, sizeof(pthread_t));
        if (!ll || !pp || !jobs || !th)
            return 1;
        double t0 = now(), c0 = cpu_now();
        for (int t = 0; t < nthreads; t++) {
            jobs[t] = (sim_job){.model = m, .Y = Y, .L = L, .nsim = nsim, .nthreads = nthreads,
                                .tid = t, .loglik = ll, .params = pp};
            pthread_create(&th[t], NULL, sim_worker, &jobs[t]);
        }
        int failures = 0;
        for (int t = 0; t < nthreads; t++) {
            pthread_join(th[t], NULL);
            failures += jobs[t].failures;
        }
        double total = now() - t0, cpu = cpu_now() - c0;
        row *rw = &rows[3];
        snprintf(rw->name, sizeof rw->name, "sim_bsm24 x%d", nsim);
        snprintf(rw->unit, sizeof rw->unit, "s cpu");
        /* the ratio is core for core: the peers fit one series at a time on one core, so
         * ssmd's batch counts the CPU time of all its threads, not its wall time */
        rw->ssmd_s = cpu;
        double sum_ll = 0.0;
        for (int i = 0; i < peer_series; i++)
            sum_ll += ll[i];
        rw->ssmd_ll = sum_ll;
        printf("ssmd %-18s %9.3f s wall for %d series on %d threads, %.3f s CPU (%.3f ms CPU "
               "per series), %d failed; loglik summed over the first %d: %.4f\n", "sim_bsm24",
               total, nsim, nthreads, cpu, 1e3 * cpu / nsim, failures, peer_series, sum_ll);
        for (int p = 0; p < npeers; p++) {
            double ts[MAX_RESULTS], pl = 0.0, at = 0.0;
            int k = 0, worse = 0;
            for (int i = 0; i < peer_series; i++) {
                char name[64];
                snprintf(name, sizeof name, "sim:%d", i);
                const peer_result *pr = peer_find(&peers[p], name);
                if (!pr)
                    continue;
                ts[k++] = pr->seconds;
                pl += pr->loglik;
                double a = pr->np == m->nparams ? loglik_at(m, pr->params, Y + (size_t)i * L, L)
                                                : NAN;
                at += a;
                if (ll[i] < a - 1e-6)
                    worse++;
            }
            rw->peer_s[p] = k ? median(ts, k) * nsim : NAN;
            rw->peer_ll[p] = k == peer_series ? pl : NAN;
            rw->ssmd_at_peer[p] = k == peer_series ? at : NAN;
            rw->peer_worse[p] = worse;
            if (k)
                printf("%s sim_bsm24: %d series timed, median %.3f ms per series, scaled x%d; "
                       "ssmd's optimum below ssmd's likelihood at %s's estimate on %d of them\n",
                       peers[p].name, k, 1e3 * rw->peer_s[p] / nsim, nsim, peers[p].name, worse);
        }
        free(ll);
        free(pp);
        free(jobs);
        free(th);
        kalman_model_free(m);
    }

    /* the table */
    printf("\n| case | ssmd |");
    for (int p = 0; p < npeers; p++)
        printf(" %s |", peers[p].name);
    printf(" speedup vs faster peer | loglik ssmd |");
    for (int p = 0; p < npeers; p++)
        printf(" loglik %s (own) | ssmd at %s's params |", peers[p].name, peers[p].name);
    printf("\n|---|---|");
    for (int p = 0; p < npeers; p++)
        printf("---|");
    printf("---|---|");
    for (int p = 0; p < npeers; p++)
        printf("---|---|");
    printf("\n");
    for (int c = 0; c < 4; c++) {
        row *rw = &rows[c];
        double scale = c < 3 ? 1e3 : 1.0;
        const char *u = c < 3 ? " ms" : " s CPU";
        printf("| %s | %.3f%s |", rw->name, scale * rw->ssmd_s, u);
        double fastest = INFINITY;
        for (int p = 0; p < npeers; p++) {
            if (isfinite(rw->peer_s[p])) {
                printf(" %.3f%s%s |", scale * rw->peer_s[p], u, c == 3 ? " (scaled)" : "");
                fastest = fmin(fastest, rw->peer_s[p]);
            } else {
                printf(" n/a |");
            }
        }
        if (isfinite(fastest))
            printf(" %.1fx |", fastest / rw->ssmd_s);
        else
            printf(" n/a |");
        printf(" %.4f%s |", rw->ssmd_ll, c == 3 ? " (sum of first K)" : "");
        for (int p = 0; p < npeers; p++) {
            if (isfinite(rw->peer_ll[p]))
                printf(" %.4f |", rw->peer_ll[p]);
            else
                printf(" n/a |");
            if (isfinite(rw->ssmd_at_peer[p]))
                printf(" %.4f |", rw->ssmd_at_peer[p]);
            else
                printf(" n/a |");
        }
        printf("\n");
    }
    printf("\nTimes: median CPU time per fit (ssmd, statsmodels and R alike). speedup: the "
           "faster peer's time / ssmd's. The 1,000-series row: ssmd fits all on "
           "%d threads and counts the CPU time of all of them (core for core); each peer's time "
           "is its median per series over the first %d, times %d, one thread (CPU time). Log-likelihoods: 'ssmd at X's params' is ssmd's exact likelihood at X's "
           "estimate, the like-for-like comparison with 'loglik ssmd' (peers' own figures use "
           "their own constants).\n", nthreads, peer_series, nsim);
    free(Y);
    free(nile);
    free(air);
    return 0;
}
