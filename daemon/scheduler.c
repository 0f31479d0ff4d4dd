/*
 * daemon/scheduler.c — the daemon's main loop and worker pool (see scheduler.h).
 *
 * Threads: the main thread owns the scheduler connection (claims, heartbeats, LISTEN,
 * the temporary table ssmd_mine) and never runs a cycle; N workers each own one
 * connection and run one series' cycle at a time. They meet in a small array of slots
 * (FREE -> QUEUED by main -> RUNNING by a worker -> DONE -> FREE by main) guarded by one
 * mutex; workers wake the main thread through a pipe, which signal handlers also write
 * to, so the main thread's single poll() sees workers, signals and NOTIFYs alike.
 *
 * A job holds a reference to the configuration it was claimed under, so SIGHUP can swap
 * the configuration while cycles of the old one finish.
 *
 * Failure model: nothing a cycle writes is visible before its COMMIT (daemon/cycle.c), so
 * the scheduler may lose a cycle at any point — a dead connection, SIGKILL, a timeout —
 * and the worst outcome is that the series runs again later, never that it is half
 * written or run twice: the lease is checked under the series' row lock.
 */
#include "scheduler.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cycle.h"
#include "db.h"
#include "lease.h"
#include "log.h"
#include "sdnotify.h"

/* ---- time and backoff ----------------------------------------------------------------- */

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Exponential backoff with jitter: attempt 0, 1, 2, ... waits about 0.5, 1, 2, ... s, at
 * most 30 s, each drawn uniformly from [d/2, d] so instances that lost the database
 * together do not come back in lockstep. */
static double backoff_seconds(int attempt, unsigned *seed) {
    double d = 0.5;
    for (int i = 0; i < attempt && d < 30.0; i++) d *= 2.0;
    if (d > 30.0) d = 30.0;
    return d * (0.5 + 0.5 * ((double)rand_r(seed) / RAND_MAX));
}

/* ---- signals -------------------------------------------------------------------------- */

static volatile sig_atomic_t got_stop = 0, got_hup = 0;
static int wake_write_fd = -1;

static void on_signal(int sig) {
    int saved = errno;
    if (sig == SIGHUP) got_hup = 1;
    else got_stop = 1;
    if (wake_write_fd >= 0) {
        char c = 's';
        ssize_t r = write(wake_write_fd, &c, 1);
        (void)r;
    }
    errno = saved;
}

/* ---- configuration references --------------------------------------------------------- */

typedef struct cfg_ref {
    ssmd_config cfg;
    int64_t *ids;     /* ssm.series id of cfg.series[i]; 0: not registered (--series) */
    size_t *order;    /* indices of registered series, sorted by id */
    size_t norder;
    int refs;         /* the scheduler's own + one per job; under sched.mu */
} cfg_ref;

static cfg_ref *ref_new(ssmd_config *cfg) {
    cfg_ref *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    size_t n = r->cfg.nseries ? r->cfg.nseries : 1;
    r->ids = calloc(n, sizeof *r->ids);
    r->order = calloc(n, sizeof *r->order);
    r->refs = 1;
    if (!r->ids || !r->order) {
        free(r->ids);
        free(r->order);
        *cfg = r->cfg;
        free(r);
        return NULL;
    }
    return r;
}

static void ref_put(cfg_ref *r) {
    if (!r || --r->refs > 0) return;
    ssmd_config_free(&r->cfg);
    free(r->ids);
    free(r->order);
    free(r);
}

static const int64_t *sort_ids;
static int by_id(const void *a, const void *b) {
    int64_t x = sort_ids[*(const size_t *)a], y = sort_ids[*(const size_t *)b];
    return (x > y) - (x < y);
}

/* Builds the id index after ssmd_lease_register filled ids (main thread only). */
static void ref_index(cfg_ref *r) {
    r->norder = 0;
    for (size_t i = 0; i < r->cfg.nseries; i++)
        if (r->ids[i]) r->order[r->norder++] = i;
    sort_ids = r->ids;
    qsort(r->order, r->norder, sizeof *r->order, by_id);
}

static const ssmd_series_cfg *ref_find(const cfg_ref *r, int64_t id) {
    size_t lo = 0, hi = r->norder;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t v = r->ids[r->order[mid]];
        if (v == id) return &r->cfg.series[r->order[mid]];
        if (v < id) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* ---- slots and workers ---------------------------------------------------------------- */

enum { SLOT_FREE, SLOT_QUEUED, SLOT_RUNNING, SLOT_DONE };

typedef struct slot {
    int state;
    int64_t id;                  /* series id in ssm.series */
    const ssmd_series_cfg *sc;
    cfg_ref *ref;
    int leased;                  /* claimed through a lease (daemon mode) */
    int conn_lost;               /* the worker's connection broke during the cycle */
    ssmd_cycle_result res;
} slot;

typedef struct sched sched;

typedef struct worker {
    sched *s;
    int index;
    pthread_t thread;
    int started;
    int backend_pid;             /* of its connection; under sched.mu */
    int job;                     /* slot it runs, -1 when none; under sched.mu */
} worker;

struct sched {
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* workers wait here for QUEUED slots (and quit) */
    slot *slots;
    int nslots;
    int quit;
    int stopping;                /* shutdown: wake the main thread on every finished cycle */
    atomic_int abandon;
    int wake_rd, wake_wr;
    char instance[200];
    char *dsn;
    int stmt_timeout_ms;
    int force_refit;
    char device[32];
    worker *workers;
    int nworkers;
    long n_ok, n_idle, n_failed, n_skipped, n_abandoned; /* since start; under mu */
};

static void wake_main(sched *s) {
    char c = 'w';
    ssize_t r = write(s->wake_wr, &c, 1); /* a full pipe already means "wake up" */
    (void)r;
}

static int count_state(sched *s, int state) {
    int n = 0;
    for (int i = 0; i < s->nslots; i++) n += s->slots[i].state == state;
    return n;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    sched *s = w->s;
    PGconn *conn = NULL;
    int attempt = 0, prepared = 0;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(w->index * 7919);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        slot *job = NULL;
        while (!s->quit) {
            for (int i = 0; i < s->nslots && !job; i++)
                if (s->slots[i].state == SLOT_QUEUED) {
                    job = &s->slots[i];
                    w->job = i;
                }
            if (job) break;
            pthread_cond_wait(&s->cv, &s->mu);
        }
        if (!job) break;
        job->state = SLOT_RUNNING;
        pthread_mutex_unlock(&s->mu);

        memset(&job->res, 0, sizeof job->res);
        job->conn_lost = 0;
        if (conn && PQstatus(conn) != CONNECTION_OK) {
            PQfinish(conn);
            conn = NULL;
        }
        if (!conn) {
            char err[1024];
            if (ssmd_db_connect(s->dsn, s->stmt_timeout_ms, &conn, err, sizeof err) != 0) {
                job->res.status = SSMD_CYCLE_ERROR;
                snprintf(job->res.error, sizeof job->res.error, "%s", err);
                job->conn_lost = 1;
            } else {
                prepared = 0;
                pthread_mutex_lock(&s->mu);
                w->backend_pid = PQbackendPID(conn);
                pthread_mutex_unlock(&s->mu);
            }
        }
        if (conn) {
            ssmd_cycle_opts o = {.instance = s->instance,
                                 .device = s->device,
                                 .force_refit = s->force_refit,
                                 .threads = 1,
                                 .series_id = job->id,
                                 .lease_owner = job->leased ? s->instance : NULL,
                                 .abandon = &s->abandon,
                                 .prepared = &prepared};
            ssmd_cycle_run(conn, job->sc, &o, &job->res);
            job->conn_lost = PQstatus(conn) != CONNECTION_OK;
            /* a cycle whose session was terminated at shutdown was abandoned, not broken */
            if (job->res.status == SSMD_CYCLE_ERROR && atomic_load(&s->abandon))
                job->res.status = SSMD_CYCLE_ABANDONED;
        }
        double pause = 0;
        if (job->conn_lost) {
            /* the database went away: do not hammer it, the main thread reconnects too */
            pause = backoff_seconds(attempt++, &seed);
            if (conn) PQfinish(conn);
            conn = NULL;
        } else {
            attempt = 0;
        }
        pthread_mutex_lock(&s->mu);
        job->state = SLOT_DONE;
        w->job = -1;
        /* the main thread only needs waking when the queue runs low (or it is stopping):
         * fewer context switches on a small machine; finished slots wait to be reaped */
        if (s->stopping || count_state(s, SLOT_QUEUED) < s->nworkers) wake_main(s);
        if (pause > 0 && !s->quit) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            double t = until.tv_sec + until.tv_nsec * 1e-9 + pause;
            until.tv_sec = (time_t)t;
            until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
            pthread_cond_timedwait(&s->cv, &s->mu, &until);
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (conn) PQfinish(conn);
    return NULL;
}

/* libpq's messages span lines ("...\n\tThis probably means..."): one log line each */
static void one_line(char *s) {
    char *w = s;
    for (const char *p = s; *p; p++) {
        if (*p == '\n' || *p == '\t' || *p == '\r') {
            if (w > s && w[-1] != ' ') *w++ = ' ';
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
}

/* Logs a finished cycle. Daemon mode keeps routine cycles at debug level. */
static void log_result(slot *j, int daemon) {
    ssmd_cycle_result *r = &j->res;
    const char *name = j->sc->name;
    one_line(r->error);
    switch (r->status) {
    case SSMD_CYCLE_OK: {
        char how[64];
        if (r->late) snprintf(how, sizeof how, "refitted after late data");
        else if (r->models_fitted == 0) snprintf(how, sizeof how, "updated");
        else if (r->models_fitted == r->models_ok) snprintf(how, sizeof how, "fitted");
        else snprintf(how, sizeof how, "%d fitted, %d updated", r->models_fitted, r->models_ok - r->models_fitted);
        ssmd_log(daemon ? SSMD_LOG_DEBUG : SSMD_LOG_INFO,
                 "series \"%s\": %zu new point%s, %s, %d model%s forecast in %.3f s%s%s", name, r->new_points,
                 r->new_points == 1 ? "" : "s", how, r->models_ok, r->models_ok == 1 ? "" : "s", r->seconds,
                 r->models_failed ? "; " : "", r->models_failed ? r->error : "");
        if (daemon && r->models_failed)
            ssmd_log(SSMD_LOG_WARNING, "series \"%s\": %d model%s failed: %s", name, r->models_failed,
                     r->models_failed == 1 ? "" : "s", r->error);
        break;
    }
    case SSMD_CYCLE_IDLE:
        ssmd_log(daemon ? SSMD_LOG_DEBUG : SSMD_LOG_INFO, "series \"%s\": no new observations", name);
        break;
    case SSMD_CYCLE_SKIPPED:
        ssmd_log(SSMD_LOG_DEBUG, "series \"%s\": lease taken over by another instance; cycle skipped", name);
        break;
    case SSMD_CYCLE_ABANDONED:
        ssmd_log(SSMD_LOG_NOTICE, "series \"%s\": cycle abandoned at shutdown (rolled back)%s%s", name,
                 r->error[0] ? ": " : "", r->error);
        break;
    default:
        ssmd_log(daemon && j->conn_lost ? SSMD_LOG_WARNING : SSMD_LOG_ERROR, "series \"%s\": cycle failed: %s", name,
                 r->error);
    }
}

/* Frees DONE slots; ids whose lease may still be ours (the cycle did not commit) go to
 * release[] (room for nslots; NULL: not collected). Returns how many were reaped;
 * *failed (may be NULL) counts errors. */
static int reap(sched *s, int daemon, int64_t *release, int *nrelease, int *failed) {
    int n = 0;
    *nrelease = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nslots; i++) {
        slot *j = &s->slots[i];
        if (j->state != SLOT_DONE) continue;
        log_result(j, daemon);
        switch (j->res.status) {
        case SSMD_CYCLE_OK: s->n_ok++; break;
        case SSMD_CYCLE_IDLE: s->n_idle++; break;
        case SSMD_CYCLE_SKIPPED: s->n_skipped++; break;
        case SSMD_CYCLE_ABANDONED: s->n_abandoned++; break;
        default: s->n_failed++; if (failed) (*failed)++;
        }
        if (release && j->leased && j->res.status != SSMD_CYCLE_OK && j->res.status != SSMD_CYCLE_IDLE &&
            j->res.status != SSMD_CYCLE_SKIPPED)
            release[(*nrelease)++] = j->id;
        ref_put(j->ref);
        memset(j, 0, sizeof *j);
        j->state = SLOT_FREE;
        n++;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Waits until the pipe is written (a worker finished, a signal) or the socket is
 * readable or timeout seconds pass. Returns 1 when the socket is readable. */
static int wait_events(sched *s, PGconn *conn, double timeout) {
    struct pollfd fds[2] = {{.fd = s->wake_rd, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
    if (conn && PQstatus(conn) == CONNECTION_OK) fds[1].fd = PQsocket(conn);
    if (timeout < 0) timeout = 0;
    if (timeout > 60) timeout = 60;
    int rc = poll(fds, 2, (int)(timeout * 1000.0 + 0.5));
    if (rc > 0 && (fds[0].revents & POLLIN)) {
        char buf[256];
        while (read(s->wake_rd, buf, sizeof buf) > 0) {
        }
    }
    return rc > 0 && fds[1].fd >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR));
}

/* ---- --once ----------------------------------------------------------------------------- */

static int run_once(sched *s, cfg_ref *cur, const char *only) {
    size_t next = 0, total = 0;
    int failed = 0;
    int nrelease;
    /* register every series up front, so the cycles need not */
    PGconn *conn;
    char err[1024];
    if (ssmd_db_connect(s->dsn, s->stmt_timeout_ms, &conn, err, sizeof err) != 0 ||
        ssmd_lease_register(conn, &cur->cfg, only, cur->ids, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "%s", err);
        PQfinish(conn);
        return 1;
    }
    PQfinish(conn);
    for (;;) {
        reap(s, 0, NULL, &nrelease, &failed);
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < s->nslots && next < cur->cfg.nseries && !got_stop; i++) {
            if (s->slots[i].state != SLOT_FREE) continue;
            while (next < cur->cfg.nseries && only && strcmp(cur->cfg.series[next].name, only) != 0) next++;
            if (next == cur->cfg.nseries) break;
            slot *j = &s->slots[i];
            j->state = SLOT_QUEUED;
            j->id = cur->ids[next];
            j->sc = &cur->cfg.series[next++];
            j->ref = cur;
            cur->refs++;
            total++;
        }
        while (next < cur->cfg.nseries && only && strcmp(cur->cfg.series[next].name, only) != 0) next++;
        int busy = s->nslots - count_state(s, SLOT_FREE);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (!busy && (next == cur->cfg.nseries || got_stop)) break;
        wait_events(s, NULL, 1.0);
    }
    ssmd_log(SSMD_LOG_INFO, "cycle done: %zu series, %d failed", total, failed);
    return failed ? 1 : 0;
}

/* ---- daemon mode ---------------------------------------------------------------------- */

typedef struct daemon_state {
    sched *s;
    cfg_ref *cur;
    const ssmd_sched_opts *o;
    PGconn *conn;                /* the scheduler's connection; NULL while away */
    int attempt;                 /* reconnect attempts since the last success */
    double retry_at;             /* monotonic time of the next reconnect attempt */
    unsigned seed;
    char last_db_error[512];
    double next_heartbeat, next_watchdog, next_status, next_summary;
    double watchdog_s;           /* 0: no watchdog */
    double next_due;             /* seconds, as last read */
    long summary_ok, summary_idle, summary_failed;
} daemon_state;

static void collect_ids(sched *s, int64_t *out, int *n, int queued_only) {
    *n = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nslots; i++) {
        const slot *j = &s->slots[i];
        if (!j->leased) continue;
        if (j->state == SLOT_QUEUED || (!queued_only && (j->state == SLOT_RUNNING || j->state == SLOT_DONE)))
            out[(*n)++] = j->id;
    }
    pthread_mutex_unlock(&s->mu);
}

static void db_lost(daemon_state *d, const char *why) {
    char err[1024];
    snprintf(err, sizeof err, "%s", why);
    one_line(err);
    if (d->conn) PQfinish(d->conn);
    d->conn = NULL;
    d->retry_at = mono_now() + backoff_seconds(d->attempt, &d->seed);
    d->attempt++;
    /* one warning per distinct problem, not one per retry */
    if (strcmp(err, d->last_db_error) != 0) {
        ssmd_log(SSMD_LOG_WARNING, "database unavailable: %s; retrying with backoff", err);
        snprintf(d->last_db_error, sizeof d->last_db_error, "%s", err);
    }
    ssmd_notify("STATUS=database unavailable, retrying: %.200s", err);
}

/* Connects the scheduler's session: schema check, LISTEN, registration, and releasing
 * leases this instance held before the connection dropped (except running cycles'). */
static int main_connect(daemon_state *d, int *fatal) {
    char err[1024];
    *fatal = 0;
    if (ssmd_db_connect(d->s->dsn, d->s->stmt_timeout_ms, &d->conn, err, sizeof err) != 0) {
        db_lost(d, err);
        return -1;
    }
    if (ssmd_db_check_migrated(d->conn, err, sizeof err) != 0) {
        if (PQstatus(d->conn) == CONNECTION_OK) {
            /* reachable but not migrated: a setup problem, reported once */
            ssmd_log(SSMD_LOG_ERROR, "%s", err);
            *fatal = 1;
        }
        db_lost(d, err);
        return -1;
    }
    int64_t *active = malloc((size_t)d->s->nslots * sizeof *active);
    int nactive = 0;
    if (!active) {
        snprintf(err, sizeof err, "out of memory");
        db_lost(d, err);
        return -1;
    }
    collect_ids(d->s, active, &nactive, 0);
    int bad = ssmd_db_exec(d->conn, "LISTEN ssm_observations", err, sizeof err) ||
              ssmd_lease_register(d->conn, &d->cur->cfg, d->o->only, d->cur->ids, err, sizeof err) ||
              ssmd_lease_release(d->conn, d->s->instance, active, nactive, 1, err, sizeof err);
    free(active);
    if (bad) {
        db_lost(d, err);
        return -1;
    }
    ref_index(d->cur);
    if (d->attempt > 0) ssmd_log(SSMD_LOG_NOTICE, "database connection restored");
    d->attempt = 0;
    d->last_db_error[0] = '\0';
    return 0;
}

static void reload(daemon_state *d) {
    ssmd_config ncfg;
    char err[1024];
    const char *path = d->o->cli->config_path;
    if (ssmd_config_load(path, &ncfg, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "configuration reload failed, keeping the running configuration: %s", err);
        ssmd_notify("STATUS=configuration reload failed (running configuration kept): %.200s", err);
        return;
    }
    if (d->o->only && !ssmd_config_find(&ncfg, d->o->only)) {
        ssmd_log(SSMD_LOG_ERROR, "configuration reload failed, keeping the running configuration: "
                                 "series \"%s\" (--series) is not in %s", d->o->only, path);
        ssmd_config_free(&ncfg);
        return;
    }
    if (ncfg.workers != d->cur->cfg.workers)
        ssmd_log(SSMD_LOG_WARNING, "workers changed from %d to %d: takes effect after a restart", d->cur->cfg.workers,
                 ncfg.workers);
    if ((ncfg.dsn == NULL) != (d->cur->cfg.dsn == NULL) || (ncfg.dsn && strcmp(ncfg.dsn, d->cur->cfg.dsn) != 0) ||
        ncfg.statement_timeout_ms != d->cur->cfg.statement_timeout_ms)
        ssmd_log(SSMD_LOG_WARNING, "database settings changed: they take effect after a restart");
    cfg_ref *nr = ref_new(&ncfg);
    if (!nr) {
        ssmd_config_free(&ncfg);
        ssmd_log(SSMD_LOG_ERROR, "configuration reload failed: out of memory");
        return;
    }
    if (d->conn) {
        if (ssmd_lease_register(d->conn, &nr->cfg, d->o->only, nr->ids, err, sizeof err) != 0) {
            ssmd_log(SSMD_LOG_ERROR, "configuration reload failed, keeping the running configuration: %s", err);
            ref_put(nr);
            if (PQstatus(d->conn) != CONNECTION_OK) db_lost(d, err);
            return;
        }
        ref_index(nr);
    } /* else: registered by main_connect when the database is back */
    pthread_mutex_lock(&d->s->mu);
    cfg_ref *old = d->cur;
    d->cur = nr;
    ref_put(old);
    pthread_mutex_unlock(&d->s->mu);
    ssmd_log(SSMD_LOG_NOTICE, "configuration reloaded from %s: %zu series", path, nr->cfg.nseries);
}

static void handle_notifies(daemon_state *d) {
    if (!d->conn) return;
    if (PQconsumeInput(d->conn) == 0 || PQstatus(d->conn) != CONNECTION_OK) {
        /* the server closed the connection: the socket stays readable, so deal with it
         * now rather than spin on it */
        db_lost(d, PQerrorMessage(d->conn));
        return;
    }
    int64_t ids[256];
    int n = 0, all = 0;
    PGnotify *nt;
    while ((nt = PQnotifies(d->conn)) != NULL) {
        if (!nt->extra || !*nt->extra) all = 1;
        else if (n < 256) ids[n++] = strtoll(nt->extra, NULL, 10);
        else all = 1;
        PQfreemem(nt);
    }
    if (!all && n == 0) return;
    int woken = 0;
    char err[1024];
    if (ssmd_lease_wake(d->conn, ids, all ? 0 : n, &woken, err, sizeof err) != 0) db_lost(d, err);
    else if (woken) ssmd_log(SSMD_LOG_DEBUG, "new observations: %d series due now", woken);
}

static void status_line(daemon_state *d) {
    sched *s = d->s;
    pthread_mutex_lock(&s->mu);
    long ok = s->n_ok, idle = s->n_idle, failed = s->n_failed;
    int running = count_state(s, SLOT_RUNNING);
    pthread_mutex_unlock(&s->mu);
    if (d->conn)
        ssmd_notify("STATUS=%zu series, %d/%d workers busy; %ld cycles ok, %ld idle, %ld failed; next due in %.0f s",
                    d->cur->norder, running, s->nworkers, ok, idle, failed, d->next_due > 0 ? d->next_due : 0.0);
}

static void summary(daemon_state *d) {
    sched *s = d->s;
    pthread_mutex_lock(&s->mu);
    long ok = s->n_ok - d->summary_ok, idle = s->n_idle - d->summary_idle, failed = s->n_failed - d->summary_failed;
    d->summary_ok = s->n_ok;
    d->summary_idle = s->n_idle;
    d->summary_failed = s->n_failed;
    pthread_mutex_unlock(&s->mu);
    if (ok || failed)
        ssmd_log(SSMD_LOG_INFO, "last minute: %ld cycle%s written, %ld idle, %ld failed", ok, ok == 1 ? "" : "s", idle,
                 failed);
}

static void pings(daemon_state *d, double now) {
    if (d->watchdog_s > 0 && now >= d->next_watchdog) {
        ssmd_notify("WATCHDOG=1");
        d->next_watchdog = now + d->watchdog_s;
    }
    if (now >= d->next_status) {
        status_line(d);
        d->next_status = now + 5.0;
    }
    if (now >= d->next_summary) {
        summary(d);
        d->next_summary = now + 60.0;
    }
}

/* Releases the leases of reaped cycles that did not commit. */
static void release_ids(daemon_state *d, const int64_t *ids, int n) {
    char err[1024];
    if (n > 0 && d->conn && ssmd_lease_release(d->conn, d->s->instance, ids, n, 0, err, sizeof err) != 0)
        db_lost(d, err);
}

static void shutdown_daemon(daemon_state *d) {
    sched *s = d->s;
    char err[1024];
    int64_t *ids = calloc((size_t)s->nslots, sizeof *ids);
    int n = 0;
    ssmd_notify("STOPPING=1\nSTATUS=stopping");
    /* queued cycles never start: give their leases back now */
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    for (int i = 0; i < s->nslots; i++) {
        slot *j = &s->slots[i];
        if (j->state != SLOT_QUEUED) continue;
        if (ids) ids[n++] = j->id;
        ref_put(j->ref);
        memset(j, 0, sizeof *j);
    }
    int running = s->nslots - count_state(s, SLOT_FREE);
    pthread_mutex_unlock(&s->mu);
    ssmd_log(SSMD_LOG_NOTICE, "stopping: %d cycle%s in flight, waiting up to %.0f s", running, running == 1 ? "" : "s",
             d->o->stop_timeout_s);
    if (ids) release_ids(d, ids, n);

    /* let running cycles finish, then abandon them (they roll back at their next check),
     * then terminate the sessions of any that are stuck in the database */
    double start = mono_now(), deadline = start + d->o->stop_timeout_s;
    int phase = 0;
    for (;;) {
        int nr = 0;
        reap(s, 1, ids, &nr, NULL);
        if (ids) release_ids(d, ids, nr);
        pthread_mutex_lock(&s->mu);
        running = s->nslots - count_state(s, SLOT_FREE);
        pthread_mutex_unlock(&s->mu);
        double now = mono_now();
        if (!running) break;
        if (now >= deadline) {
            if (phase == 0) {
                ssmd_log(SSMD_LOG_WARNING, "stop timeout: abandoning %d cycle%s", running, running == 1 ? "" : "s");
                atomic_store(&s->abandon, 1);
                deadline = now + 2.0;
                phase = 1;
            } else if (phase == 1 && d->conn) {
                pthread_mutex_lock(&s->mu);
                for (int w = 0; w < s->nworkers; w++) {
                    if (s->workers[w].job < 0 || !s->workers[w].backend_pid) continue;
                    char pid[32];
                    snprintf(pid, sizeof pid, "%d", s->workers[w].backend_pid);
                    const char *p[] = {pid};
                    ssmd_db_execp(d->conn, "SELECT pg_terminate_backend($1::integer)", 1, p, err, sizeof err);
                }
                pthread_mutex_unlock(&s->mu);
                deadline = now + 3.0;
                phase = 2;
            } else {
                break;
            }
        }
        pings(d, now);
        wait_events(s, NULL, deadline - now);
    }
    /* whatever this instance still holds (except rows a stuck cycle keeps locked) */
    if (d->conn && ssmd_lease_release(d->conn, s->instance, NULL, 0, 1, err, sizeof err) != 0)
        ssmd_log(SSMD_LOG_WARNING, "could not release leases: %s (they expire on their own)", err);
    free(ids);
}

static int run_daemon(sched *s, cfg_ref **curp, const ssmd_sched_opts *o) {
    daemon_state d;
    memset(&d, 0, sizeof d);
    d.s = s;
    d.cur = *curp;
    d.o = o;
    d.seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    uint64_t wd = ssmd_notify_watchdog_usec();
    d.watchdog_s = wd ? (double)wd / 2e6 : 0; /* ping at half the interval, as systemd advises */
    int ready = 0, rc = 0, fatal = 0;
    int64_t *ids = calloc((size_t)s->nslots, sizeof *ids);
    if (!ids) {
        ssmd_log(SSMD_LOG_ERROR, "out of memory");
        return 1;
    }
    ssmd_log(SSMD_LOG_INFO, "ssmd running as %s: %zu series, %d workers, lease %llds", s->instance, d.cur->cfg.nseries,
             s->nworkers, (long long)d.cur->cfg.lease_s);
    double now = mono_now();
    d.next_summary = now + 60.0;
    while (!got_stop) {
        now = mono_now();
        if (got_hup) {
            got_hup = 0;
            reload(&d);
        }
        int nrel = 0;
        reap(s, 1, ids, &nrel, NULL);
        release_ids(&d, ids, nrel);

        if (!d.conn) {
            if (now < d.retry_at) {
                pings(&d, now);
                wait_events(s, NULL, d.retry_at - now);
                continue;
            }
            if (main_connect(&d, &fatal) != 0) {
                if (fatal && !ready) {
                    rc = 1; /* no schema: a configuration problem, not an outage */
                    break;
                }
                continue;
            }
            d.next_heartbeat = 0;
        }
        char err[1024];
        int64_t lease_s = d.cur->cfg.lease_s;

        /* claim as many due series as there are free slots, once fewer than one per
         * worker are left queued: claims go in batches, not one per finished cycle */
        pthread_mutex_lock(&s->mu);
        int free_slots = count_state(s, SLOT_FREE);
        int want = free_slots > 0 && count_state(s, SLOT_QUEUED) < s->nworkers;
        pthread_mutex_unlock(&s->mu);
        int claimed = 0;
        if (want) {
            if (ssmd_lease_claim(d.conn, s->instance, lease_s, free_slots, ids, &claimed, err, sizeof err) != 0) {
                db_lost(&d, err);
                continue;
            }
            int nstray = 0;
            pthread_mutex_lock(&s->mu);
            for (int k = 0, i = 0; k < claimed; k++) {
                const ssmd_series_cfg *sc = ref_find(d.cur, ids[k]);
                while (i < s->nslots && s->slots[i].state != SLOT_FREE) i++;
                if (!sc || i == s->nslots) {
                    ids[nstray++] = ids[k]; /* not ours after all (cannot happen): give it back */
                    continue;
                }
                slot *j = &s->slots[i];
                j->state = SLOT_QUEUED;
                j->id = ids[k];
                j->sc = sc;
                j->ref = d.cur;
                j->leased = 1;
                d.cur->refs++;
            }
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            release_ids(&d, ids, nstray);
            if (!d.conn) continue;
        }

        /* heartbeat: keep the leases of queued and running cycles alive */
        if (now >= d.next_heartbeat) {
            int n = 0;
            collect_ids(s, ids, &n, 0);
            if (ssmd_lease_renew(d.conn, s->instance, lease_s, ids, n, err, sizeof err) != 0) {
                db_lost(&d, err);
                continue;
            }
            d.next_heartbeat = now + (lease_s / 3.0 > 1.0 ? lease_s / 3.0 : 1.0);
        }

        /* how long to sleep: until the next due series when there is room for it (a
         * series that is due but not claimable is locked or leased: look again soon),
         * else until a worker finishes; never past a heartbeat or watchdog ping */
        double timeout = d.next_heartbeat - now;
        if (want && claimed < free_slots) {
            if (ssmd_lease_next_due(d.conn, s->instance, &d.next_due, err, sizeof err) != 0) {
                db_lost(&d, err);
                continue;
            }
            double due = d.next_due;
            if (due < 0.25) due = claimed > 0 ? 0.0 : 0.25;
            if (due < timeout) timeout = due;
        }
        if (!ready) {
            ssmd_notify("READY=1");
            ready = 1;
            d.next_status = 0;
        }
        pings(&d, now);
        if (d.watchdog_s > 0 && d.next_watchdog - now < timeout) timeout = d.next_watchdog - now;
        if (d.next_status - now < timeout) timeout = d.next_status - now;
        if (got_stop || got_hup) continue;
        if (wait_events(s, d.conn, timeout)) handle_notifies(&d);
    }
    if (rc == 0) shutdown_daemon(&d);
    if (d.conn) PQfinish(d.conn);
    *curp = d.cur;
    free(ids);
    return rc;
}

/* ---- entry point ---------------------------------------------------------------------- */

int ssmd_scheduler_run(ssmd_config *cfg, const ssmd_sched_opts *o) {
    sched s;
    memset(&s, 0, sizeof s);
    int fds[2];
    if (pipe(fds) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "could not create a pipe: %s", strerror(errno));
        ssmd_config_free(cfg);
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    s.wake_rd = fds[0];
    s.wake_wr = fds[1];
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    atomic_init(&s.abandon, 0);
    const char *dsn = o->cli->dsn ? o->cli->dsn : cfg->dsn;
    s.dsn = dsn ? strdup(dsn) : NULL;
    s.stmt_timeout_ms = cfg->statement_timeout_ms;
    s.force_refit = o->force_refit;
    snprintf(s.device, sizeof s.device, "%s", cfg->device ? cfg->device : "auto");
    char host[128] = "ssmd";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    /* pid alone repeats across containers (pid 1); a random tag keeps instances apart */
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)&s;
    snprintf(s.instance, sizeof s.instance, "%s:%d:%04x", host, (int)getpid(), (unsigned)rand_r(&seed) & 0xffff);
    s.nworkers = cfg->workers > 0 ? cfg->workers : 1;
    s.nslots = 4 * s.nworkers; /* a few queued per worker: none waits for the main thread */
    s.slots = calloc((size_t)s.nslots, sizeof *s.slots);
    s.workers = calloc((size_t)s.nworkers, sizeof *s.workers);
    cfg_ref *cur = ref_new(cfg);
    if (!s.slots || !s.workers || !cur || (dsn && !s.dsn)) {
        ssmd_log(SSMD_LOG_ERROR, "out of memory");
        free(s.slots);
        free(s.workers);
        free(s.dsn);
        if (cur) ref_put(cur);
        else ssmd_config_free(cfg);
        close(fds[0]);
        close(fds[1]);
        return 1;
    }

    /* Signals go to the main thread only: workers start with them blocked. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    got_stop = got_hup = 0;
    wake_write_fd = s.wake_wr;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (int i = 0; i < s.nworkers; i++) {
        s.workers[i].s = &s;
        s.workers[i].index = i;
        s.workers[i].job = -1;
        s.workers[i].started = pthread_create(&s.workers[i].thread, NULL, worker_main, &s.workers[i]) == 0;
        if (!s.workers[i].started) ssmd_log(SSMD_LOG_ERROR, "could not start worker %d", i);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    int rc = o->once ? run_once(&s, cur, o->only) : run_daemon(&s, &cur, o);

    pthread_mutex_lock(&s.mu);
    s.quit = 1;
    pthread_cond_broadcast(&s.cv);
    int stuck = 0;
    for (int i = 0; i < s.nworkers; i++) stuck += s.workers[i].job >= 0;
    pthread_mutex_unlock(&s.mu);
    if (stuck) {
        /* a cycle that ignores abandon and outlived its terminated session: its
         * transaction is gone with the session, so exiting now loses nothing */
        ssmd_log(SSMD_LOG_WARNING, "%d worker%s still busy; exiting without waiting", stuck, stuck == 1 ? "" : "s");
        _exit(rc);
    }
    for (int i = 0; i < s.nworkers; i++)
        if (s.workers[i].started) pthread_join(s.workers[i].thread, NULL);
    int n;
    reap(&s, !o->once, NULL, &n, NULL);
    wake_write_fd = -1;
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    ref_put(cur);
    free(s.slots);
    free(s.workers);
    free(s.dsn);
    close(s.wake_rd);
    close(s.wake_wr);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    if (!o->once) ssmd_log(SSMD_LOG_INFO, "stopped");
    return rc;
}
