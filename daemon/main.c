/*
 * daemon/main.c — the `ssmd` program's entry point: global options, then a subcommand.
 *
 *   ssmd [--config FILE] [--dsn URI] [--verbose] COMMAND [ARGS]
 *
 * Global options come before the subcommand. The configuration file is --config, else
 * $SSMD_CONFIG, else /etc/ssmd/ssmd.yaml; the database is --dsn, else $SSMD_DSN, else the
 * config's database.dsn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>

#include "cli.h"
#include "log.h"
#include "model.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv, const ssmd_cli *cli);
    const char *summary;
} command;

static const command commands[] = {
    {"run", ssmd_cmd_run, "forecast every configured series on schedule (--once: one cycle, then exit)"},
    {"migrate", ssmd_cmd_migrate, "create or upgrade the ssm schema (idempotent)"},
    {"check-config", ssmd_cmd_check_config, "validate the configuration file without touching the database"},
    {"import", ssmd_cmd_import, "load a ts,value CSV into ssm.observations (one transaction)"},
    {"forecast", ssmd_cmd_forecast, "fit a model to a CSV and print forecasts (no database)"},
    {"fit", ssmd_cmd_fit, "fit a model to a CSV and print parameters and fit statistics (no database)"},
    {"train", ssmd_cmd_train, "train a neural model on a CSV and save a checkpoint (no database)"},
    {"backtest", ssmd_cmd_backtest, "rolling-origin evaluation of models against baselines"},
    {"status", ssmd_cmd_status, "show series, last and next run, and errors"},
    {"demo", ssmd_cmd_demo, "start a private PostgreSQL, load sample data, run one cycle, show forecasts"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out) {
    fprintf(out,
            "ssmd — state space forecasting for PostgreSQL\n\n"
            "usage: ssmd [--config FILE] [--dsn URI] [--verbose] COMMAND [ARGS]\n\n"
            "global options (before the command):\n"
            "  --config FILE   configuration (default: $SSMD_CONFIG, then /etc/ssmd/ssmd.yaml)\n"
            "  --dsn URI       PostgreSQL connection string (default: $SSMD_DSN, then database.dsn)\n"
            "  --verbose       debug logging\n"
            "  --help          this text; `ssmd COMMAND --help` describes a command\n"
            "  --version       print the version\n\n"
            "commands:\n");
    for (const command *c = commands; c->name; c++) fprintf(out, "  %-13s %s\n", c->name, c->summary);
    fprintf(out, "\nmodels (--model SPEC, or `models:` in the configuration):\n");
    for (const ssm_model_kind *const *k = ssm_model_kinds(); *k; k++)
        fprintf(out, "  %-19s %s\n", (*k)->name, (*k)->summary ? (*k)->summary : "");
    fprintf(out, "\nquick start: `ssmd demo` runs the whole pipeline on sample data.\n");
}

int main(int argc, char **argv) {
    /* GSL's default handler aborts; ssmd's libraries check every GSL status instead */
    gsl_set_error_handler_off();
    ssmd_cli cli = {0};
    cli.config_path = getenv("SSMD_CONFIG");
    cli.config_explicit = cli.config_path && *cli.config_path;
    if (!cli.config_explicit) cli.config_path = "/etc/ssmd/ssmd.yaml";
    cli.dsn = getenv("SSMD_DSN");
    if (cli.dsn && !*cli.dsn) cli.dsn = NULL;

    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("ssmd 0.1.0\n");
            return 0;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            cli.verbose = 1;
        } else if ((strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) && i + 1 < argc) {
            cli.config_path = argv[++i];
            cli.config_explicit = 1;
        } else if (strncmp(a, "--config=", 9) == 0) {
            cli.config_path = a + 9;
            cli.config_explicit = 1;
        } else if (strcmp(a, "--dsn") == 0 && i + 1 < argc) {
            cli.dsn = argv[++i];
        } else if (strncmp(a, "--dsn=", 6) == 0) {
            cli.dsn = a + 6;
        } else {
            fprintf(stderr, "ssmd: unknown global option \"%s\"\n", a);
            fprintf(stderr, "HINT: global options come before the command; see `ssmd --help`\n");
            return 2;
        }
    }
    if (i == argc) {
        usage(stderr);
        return 2;
    }
    ssmd_log_set_level(cli.verbose ? SSMD_LOG_DEBUG : SSMD_LOG_INFO);
    for (const command *c = commands; c->name; c++)
        if (strcmp(argv[i], c->name) == 0) return c->run(argc - i, argv + i, &cli);
    fprintf(stderr, "ssmd: unknown command \"%s\"\n", argv[i]);
    fprintf(stderr, "HINT: `ssmd --help` lists the commands\n");
    return 2;
}
