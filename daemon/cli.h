/*
 * daemon/cli.h — what every `ssmd` subcommand receives, and the subcommand entry points.
 *
 * main.c parses the global options (those before the subcommand: --config, --dsn,
 * --verbose) into an ssmd_cli and hands the remaining argv to the subcommand, whose
 * argv[0] is its own name. A subcommand returns the process exit status: 0 success,
 * 1 failure (already logged), 2 usage error.
 */
#ifndef SSMD_CLI_H
#define SSMD_CLI_H

typedef struct ssmd_cli {
    const char *config_path;   /* --config, else $SSMD_CONFIG, else /etc/ssmd/ssmd.yaml */
    int config_explicit;       /* 1 when given by --config or $SSMD_CONFIG */
    const char *dsn;           /* --dsn, else $SSMD_DSN, else NULL (use the config's) */
    int verbose;
} ssmd_cli;

/* Shared by the subcommands (cmd_common.c). Loads the configuration named by the CLI;
 * returns 0, 1 when optional and absent (no --config/$SSMD_CONFIG and no default file),
 * or -1 after logging the error. */
struct ssmd_config;
int ssmd_cli_load_config(const ssmd_cli *cli, struct ssmd_config *cfg, int required);
/* Connects to --dsn / $SSMD_DSN / the config's dsn (cfg may be NULL); logs on failure. */
struct pg_conn;
int ssmd_cli_connect(const ssmd_cli *cli, const struct ssmd_config *cfg, struct pg_conn **conn);

int ssmd_cmd_run(int argc, char **argv, const ssmd_cli *cli);
int ssmd_cmd_migrate(int argc, char **argv, const ssmd_cli *cli);
int ssmd_cmd_check_config(int argc, char **argv, const ssmd_cli *cli);
int ssmd_cmd_import(int argc, char **argv, const ssmd_cli *cli);
int ssmd_cmd_forecast(int argc, char **argv, const ssmd_cli *cli);
int ssmd_cmd_fit(int argc, char **argv, const ssmd_cli *cli);
int ssmd_cmd_train(int argc, char **argv, const ssmd_cli *cli);
int ssmd_cmd_backtest(int argc, char **argv, const ssmd_cli *cli);
int ssmd_cmd_status(int argc, char **argv, const ssmd_cli *cli);
int ssmd_cmd_demo(int argc, char **argv, const ssmd_cli *cli);

#endif
