/*
 * daemon/cmd_common.c — what the database subcommands share: finding and loading the
 * configuration, and connecting with the DSN precedence --dsn > $SSMD_DSN > database.dsn.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "log.h"

int ssmd_cli_load_config(const ssmd_cli *cli, ssmd_config *cfg, int required) {
    memset(cfg, 0, sizeof *cfg);
    if (!required && !cli->config_explicit && access(cli->config_path, F_OK) != 0) return 1;
    char err[1024];
    if (ssmd_config_load(cli->config_path, cfg, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "%s", err);
        return -1;
    }
    return 0;
}

int ssmd_cli_connect(const ssmd_cli *cli, const ssmd_config *cfg, PGconn **conn) {
    const char *dsn = cli->dsn ? cli->dsn : (cfg ? cfg->dsn : NULL);
    int timeout = cfg ? cfg->statement_timeout_ms : 0;
    char err[1024];
    if (ssmd_db_connect(dsn, timeout, conn, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_ERROR, "%s", err);
        return -1;
    }
    return 0;
}
