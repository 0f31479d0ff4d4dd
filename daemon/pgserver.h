/*
 * daemon/pgserver.h — a private, throw-away PostgreSQL server started from the system's
 * binaries in a scratch folder: initdb, pg_ctl start on a Unix socket only (no TCP
 * port is opened), a database, and pg_ctl stop. `ssmd demo` and the integration test
 * harness use it. As root the server runs as the `postgres` user (initdb and pg_ctl
 * refuse to run as root).
 */
#ifndef SSMD_PGSERVER_H
#define SSMD_PGSERVER_H

#include <stddef.h>

typedef struct ssmd_pgserver {
    char dir[512];      /* scratch folder: data/, server.log and the socket */
    char bindir[512];   /* folder of initdb and pg_ctl */
    char runas[64];     /* user the server runs as ("" = the current user) */
    char dsn[1024];     /* connection string of the created database */
    int owns_dir;       /* dir was created by start and is removed by stop */
} ssmd_pgserver;

/* Creates dir (or a fresh /tmp/ssmd-demo-XXXXXX when dir is NULL), initialises a cluster,
 * starts it and creates database dbname. Returns 0, or -1 with err (the server log's
 * tail is included when the server failed to start). */
int ssmd_pgserver_start(ssmd_pgserver *s, const char *dir, const char *dbname, char *err, size_t errlen);
/* Stops the server; remove_dir also deletes the scratch folder. */
int ssmd_pgserver_stop(ssmd_pgserver *s, int remove_dir, char *err, size_t errlen);

#endif
