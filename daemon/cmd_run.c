/*
 * daemon/cmd_run.c — `ssmd run`: the daemon's main mode. Parses the options, loads the
 * configuration and hands over to the scheduler (daemon/scheduler.c), which runs series
 * cycles on a worker pool as their schedules come due, sharing the database with other
 * instances through leases, until SIGTERM. `--once` runs one cycle of every series and
 * exits.
 */
#include <getopt.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "scheduler.h"

static const char *run_help =
    "usage: ssmd [--config FILE] [--dsn URI] run [--once] [--series NAME] [--refit]\n"
    "                                            [--stop-timeout SECONDS]\n\n"
    "Forecasts every configured series on its schedule (`every`): reads the observations\n"
    "that arrived since the series' watermark, updates each model's stored state (or\n"
    "re-estimates it when `refit_every` is due or late data arrived), and writes forecasts,\n"
    "model state and a run record in one transaction per series. A failing series is\n"
    "recorded in ssm.runs with its error and the others go on.\n\n"
    "Several instances may share one database: each series is leased to one instance at a\n"
    "time (`lease`), renewed while it works, and taken over by another instance when its\n"
    "holder dies. `workers` threads run cycles in parallel, one connection each.\n\n"
    "Signals: SIGHUP reloads the configuration (a file that does not load is logged and the\n"
    "running configuration kept); SIGTERM/SIGINT stop taking work, let running cycles\n"
    "finish (abandoning them after --stop-timeout), release the leases and exit 0.\n"
    "Under systemd (Type=notify) it reports READY=1, STATUS=, WATCHDOG=1 and STOPPING=1.\n\n"
    "  --once               one cycle for every series, ignoring the schedule, then exit\n"
    "                       (status 1 if any failed)\n"
    "  --series NAME        only this series\n"
    "  --refit              re-estimate every model, whatever refit_every says\n"
    "  --stop-timeout SECS  how long running cycles may finish after SIGTERM (default 30)\n";

int ssmd_cmd_run(int argc, char **argv, const ssmd_cli *cli) {
    static const struct option opts[] = {{"once", no_argument, 0, 'o'},
                                         {"series", required_argument, 0, 's'},
                                         {"refit", no_argument, 0, 'r'},
                                         {"stop-timeout", required_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    ssmd_sched_opts so = {.cli = cli, .stop_timeout_s = 30.0};
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'o') so.once = 1;
        else if (c == 's') so.only = optarg;
        else if (c == 'r') so.force_refit = 1;
        else if (c == 't') {
            char *end;
            so.stop_timeout_s = strtod(optarg, &end);
            if (*end || !(so.stop_timeout_s >= 0 && so.stop_timeout_s <= 86400)) {
                ssmd_log(SSMD_LOG_ERROR, "run: --stop-timeout \"%s\" is not a number of seconds between 0 and 86400",
                         optarg);
                return 2;
            }
        } else if (c == 'h') {
            fputs(run_help, stdout);
            return 0;
        } else {
            fputs(run_help, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        ssmd_log(SSMD_LOG_ERROR, "run: unexpected argument \"%s\"", argv[optind]);
        return 2;
    }
    ssmd_config cfg;
    if (ssmd_cli_load_config(cli, &cfg, 1) != 0) return 1;
    if (so.only && !ssmd_config_find(&cfg, so.only)) {
        ssmd_log(SSMD_LOG_ERROR, "run: series \"%s\" is not in %s", so.only, cfg.path);
        ssmd_config_free(&cfg);
        return 2;
    }
    if (so.once) {
        /* --once fails fast on an unreachable or unmigrated database; the daemon instead
         * waits for the database (scheduler.c) */
        PGconn *conn;
        if (ssmd_cli_connect(cli, &cfg, &conn) != 0) {
            ssmd_config_free(&cfg);
            return 1;
        }
        char err[1024];
        int bad = ssmd_db_check_migrated(conn, err, sizeof err);
        PQfinish(conn);
        if (bad) {
            ssmd_log(SSMD_LOG_ERROR, "%s", err);
            ssmd_config_free(&cfg);
            return 1;
        }
    }
    return ssmd_scheduler_run(&cfg, &so);
}
