/*
 * daemon/scheduler.h — the daemon's engine behind `ssmd run`: a pool of worker threads
 * (one database connection each) runs series cycles that the main thread claims as
 * leases (daemon/lease.h) when their next_run comes due. The main thread sleeps until the
 * next series falls due, a worker finishes, new observations are NOTIFYed or a signal
 * arrives; it renews leases by heartbeat, reconnects with exponential backoff and jitter
 * when the database goes away, reloads the configuration on SIGHUP (keeping the old one
 * when the new file is bad) and stops cleanly on SIGTERM / SIGINT, and talks to systemd
 * (daemon/sdnotify.h): READY=1, STATUS=, WATCHDOG=1, STOPPING=1.
 *
 * `run --once` uses the same pool without leases or schedule: every series once.
 */
#ifndef SSMD_SCHEDULER_H
#define SSMD_SCHEDULER_H

#include "cli.h"
#include "config.h"

typedef struct ssmd_sched_opts {
    const ssmd_cli *cli;       /* configuration path (SIGHUP reloads it) and --dsn */
    const char *only;          /* --series NAME: only this series; NULL: all */
    int once;                  /* every series once, ignoring schedule and leases, then return */
    int force_refit;           /* --refit */
    double stop_timeout_s;     /* SIGTERM: how long in-flight cycles may take to finish */
} ssmd_sched_opts;

/* Runs until SIGTERM / SIGINT (or, with once, until every series ran). Takes ownership of
 * cfg. Returns the exit status: 0, or 1 when the database schema is missing / not
 * migrated, or (once) when a series failed. */
int ssmd_scheduler_run(ssmd_config *cfg, const ssmd_sched_opts *opts);

#endif
