/*
 * daemon/cycle.h — one forecasting cycle of one series: read what is new, fit or update
 * each configured model, forecast, and write forecasts + model state + a run record in
 * ONE transaction. A crash or a lost connection leaves the database as it was before the
 * cycle or as it is after it; re-running a cycle is idempotent (forecasts are keyed by
 * series, model, origin and step).
 */
#ifndef SSMD_CYCLE_H
#define SSMD_CYCLE_H

#include <stddef.h>
#include <stdint.h>

#include <stdatomic.h>

#include <libpq-fe.h>

#include "config.h"

typedef struct ssmd_cycle_opts {
    const char *instance;   /* recorded in ssm.runs.instance */
    const char *device;     /* neural models: auto | cpu | cuda */
    int force_refit;        /* refit every model whatever the schedule says */
    int threads;            /* threads one fit may use (1 inside a worker pool) */
    /* Set by the scheduler (daemon/scheduler.c); zero for a plain `run --once`: */
    int64_t series_id;      /* > 0: the series' ssm.series id, already registered */
    const char *lease_owner;/* non-NULL: the cycle runs only while this instance holds
                             * the series' lease (ssm.series.lease_owner), releases it in
                             * the cycle's transaction, keeps the `every` cadence, and
                             * commits an idle cycle's next_run */
    const atomic_int *abandon; /* when it becomes non-zero the cycle rolls back at its next
                                * check point (between models, before writing) */
    int *prepared;          /* non-NULL: the cycle's statements are prepared on conn once
                             * (*prepared becomes 1); the caller resets it to 0 whenever it
                             * opens a new connection */
} ssmd_cycle_opts;

typedef enum ssmd_cycle_status {
    SSMD_CYCLE_ABANDONED = -2, /* opts->abandon was set: rolled back, nothing written */
    SSMD_CYCLE_ERROR = -1,  /* nothing written but the error record */
    SSMD_CYCLE_IDLE = 0,    /* no new observations and nothing due: nothing written */
    SSMD_CYCLE_OK = 1,      /* forecasts written */
    SSMD_CYCLE_SKIPPED = 2  /* opts->lease_owner no longer holds the lease: nothing written */
} ssmd_cycle_status;

typedef struct ssmd_cycle_result {
    ssmd_cycle_status status;
    size_t new_points;
    int refit;              /* at least one model was (re)fitted rather than updated */
    int models_fitted;      /* how many were (re)fitted; the other models_ok were updated */
    int late;               /* late or corrected observations before the watermark forced
                             * a refilter from scratch */
    int models_ok;
    int models_failed;
    double seconds;
    char error[1024];       /* why the cycle (or one of its models) failed */
} ssmd_cycle_result;

/* Runs the cycle of sc on conn (which must not be inside a transaction). Always returns
 * with the result filled in; failures are recorded in ssm.runs and ssm.series. */
void ssmd_cycle_run(PGconn *conn, const ssmd_series_cfg *sc, const ssmd_cycle_opts *opts,
                    ssmd_cycle_result *res);

#endif
