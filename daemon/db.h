/*
 * daemon/db.h — ssmd's PostgreSQL I/O through libpq: connecting, migrations, the series
 * registry, reading observations (built-in store or a user's table) and bulk loading.
 *
 * Rules kept here for everyone: identifiers from the configuration are quoted with
 * PQescapeIdentifier and every value is a bound parameter, so no SQL is built from
 * config strings; errors come back as text in err (never logged here, the caller logs);
 * each function that writes does so inside a transaction it is given or opens itself.
 */
#ifndef SSMD_DB_H
#define SSMD_DB_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "config.h"
#include "csvio.h"
#include "model.h"

/* Connects with keepalives and application_name=ssmd; statement_timeout_ms > 0 sets the
 * session's statement_timeout. Returns 0, or -1 with err (password redacted). */
int ssmd_db_connect(const char *dsn, int statement_timeout_ms, PGconn **out, char *err, size_t errlen);

/* Runs a command that returns no rows (BEGIN, COMMIT, ...). */
int ssmd_db_exec(PGconn *conn, const char *sql, char *err, size_t errlen);
/* Runs a parameterised command; texts are bound as text (type inferred by the server). */
int ssmd_db_execp(PGconn *conn, const char *sql, int nparams, const char *const *params,
                  char *err, size_t errlen);
/* Copies libpq's error for res (or conn) into err as "context: message". */
void ssmd_db_error(PGconn *conn, const PGresult *res, const char *context, char *err, size_t errlen);

/* Applies the embedded migrations that are not yet recorded in ssm.schema_migrations,
 * each in its own transaction, under an advisory lock so two instances cannot race.
 * *applied receives how many were applied (0 on a second run). */
int ssmd_db_migrate(PGconn *conn, int *applied, char *err, size_t errlen);
/* 0 when every embedded migration is applied; else -1 with a hint to run `ssmd migrate`. */
int ssmd_db_check_migrated(PGconn *conn, char *err, size_t errlen);

/* Inserts or updates the ssm.series row of a configured series (source, frequency) and
 * returns its id. */
int ssmd_db_ensure_series(PGconn *conn, const ssmd_series_cfg *sc, int64_t *id, char *err, size_t errlen);
/* The same for every series of cfg (only: just that one) in one statement, for the
 * scheduler: ids[i] receives the id of cfg->series[i] (0 when skipped). Rows are written
 * only when their source or frequency changed. */
int ssmd_db_ensure_series_all(PGconn *conn, const ssmd_config *cfg, const char *only, int64_t *ids,
                              char *err, size_t errlen);
/* Looks a series up by name: id and frequency text ("" when absent). Returns 1 found, 0 not. */
int ssmd_db_find_series(PGconn *conn, const char *name, int64_t *id, char *freq, size_t freqlen,
                        char *err, size_t errlen);

/* Reads the observations of a series ordered by time: all of them (after == INT64_MIN)
 * or only those strictly after `after`. NULL values become NaN. */
int ssmd_db_fetch_points(PGconn *conn, const ssmd_series_cfg *sc, int64_t series_id, int64_t after,
                         ssmd_points *out, char *err, size_t errlen);

/* Reads every observation of a configured series onto its grid (ensuring its ssm.series
 * row exists). Duplicate, unordered, off-grid or infinite values are errors naming the
 * series and the timestamp. */
int ssmd_db_load_series(PGconn *conn, const ssmd_series_cfg *sc, ssm_series *out, char *err, size_t errlen);

/* COPYs points into ssm.observations for series_id inside the caller's transaction
 * (a later value for the same timestamp replaces the stored one). */
int ssmd_db_copy_observations(PGconn *conn, int64_t series_id, const ssmd_points *pts, char *err, size_t errlen);

#endif
