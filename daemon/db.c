/*
 * daemon/db.c — libpq plumbing shared by every subcommand: connections, migrations, the
 * series registry, reading observations and bulk loading with COPY.
 *
 * User tables are read with a query assembled from PQescapeIdentifier-quoted identifiers
 * only; the where-filter values and every other value are bound parameters.
 */
#include "db.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedded.h"
#include "log.h"
#include "strbuf.h"

void ssmd_db_error(PGconn *conn, const PGresult *res, const char *context, char *err, size_t errlen) {
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (!msg || !*msg) msg = conn ? PQerrorMessage(conn) : "no connection";
    char clean[1024];
    snprintf(clean, sizeof clean, "%s", msg);
    size_t n = strlen(clean);
    while (n && (clean[n - 1] == '\n' || clean[n - 1] == ' ')) clean[--n] = '\0';
    /* libpq prefixes "ERROR:  "; the caller's context says what we were doing */
    const char *body = strncmp(clean, "ERROR:  ", 8) == 0 ? clean + 8 : clean;
    snprintf(err, errlen, "%s: %s", context, body);
}

/* Server notices ("relation already exists, skipping") are routine: debug level only. */
static void notice_to_debug_log(void *arg, const char *message) {
    (void)arg;
    size_t n = strlen(message);
    ssmd_log(SSMD_LOG_DEBUG, "server: %.*s", (int)(n && message[n - 1] == '\n' ? n - 1 : n), message);
}

int ssmd_db_connect(const char *dsn, int statement_timeout_ms, PGconn **out, char *err, size_t errlen) {
    /* The DSN is expanded first; the keys after it fill in what it leaves unset. */
    const char *keys[] = {"dbname", "application_name", "keepalives", "keepalives_idle",
                          "keepalives_interval", "keepalives_count", "connect_timeout", NULL};
    const char *vals[] = {dsn ? dsn : "", "ssmd", "1", "30", "10", "3", "10", NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        char safe[512];
        ssmd_log_redact_dsn(dsn, safe, sizeof safe);
        char ctx[600];
        snprintf(ctx, sizeof ctx, "could not connect to the database (%s)", safe);
        ssmd_db_error(conn, NULL, ctx, err, errlen);
        PQfinish(conn);
        *out = NULL;
        return -1;
    }
    PQsetNoticeProcessor(conn, notice_to_debug_log, NULL);
    if (statement_timeout_ms > 0) {
        char v[32];
        snprintf(v, sizeof v, "%d", statement_timeout_ms);
        const char *p[] = {v};
        if (ssmd_db_execp(conn, "SELECT set_config('statement_timeout', $1, false)", 1, p, err, errlen)) {
            PQfinish(conn);
            *out = NULL;
            return -1;
        }
    }
    *out = conn;
    return 0;
}

int ssmd_db_exec(PGconn *conn, const char *sql, char *err, size_t errlen) {
    return ssmd_db_execp(conn, sql, 0, NULL, err, errlen);
}

int ssmd_db_execp(PGconn *conn, const char *sql, int nparams, const char *const *params,
                  char *err, size_t errlen) {
    PGresult *res = nparams ? PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0) : PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char ctx[160];
        snprintf(ctx, sizeof ctx, "%.60s failed", sql);
        ssmd_db_error(conn, res, ctx, err, errlen);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* ---- migrations --------------------------------------------------------------------- */

static const char *migrations_table_sql =
    "CREATE SCHEMA IF NOT EXISTS ssm;"
    "CREATE TABLE IF NOT EXISTS ssm.schema_migrations ("
    "  version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())";

/* Any fixed 64-bit number: serialises concurrent `ssmd migrate` runs. */
#define MIGRATE_LOCK_KEY "7305751148016381001"

int ssmd_db_migrate(PGconn *conn, int *applied, char *err, size_t errlen) {
    *applied = 0;
    if (ssmd_db_exec(conn, "BEGIN", err, errlen)) return -1;
    if (ssmd_db_exec(conn, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", err, errlen) ||
        ssmd_db_exec(conn, migrations_table_sql, err, errlen) ||
        ssmd_db_exec(conn, "COMMIT", err, errlen)) {
        ssmd_db_exec(conn, "ROLLBACK", err + strlen(err), 0);
        return -1;
    }
    for (const ssmd_embedded_file *m = ssmd_migrations; m->name; m++) {
        if (ssmd_db_exec(conn, "BEGIN", err, errlen)) return -1;
        const char *p[] = {m->name};
        PGresult *res = NULL;
        int ok = ssmd_db_exec(conn, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", err, errlen) == 0;
        if (ok) {
            res = PQexecParams(conn, "SELECT 1 FROM ssm.schema_migrations WHERE version = $1", 1, NULL, p, NULL, NULL, 0);
            if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                ssmd_db_error(conn, res, "reading ssm.schema_migrations", err, errlen);
                ok = 0;
            }
        }
        int done = ok && PQntuples(res) > 0;
        PQclear(res);
        if (ok && !done) {
            char ctx[200];
            snprintf(ctx, sizeof ctx, "migration %s", m->name);
            res = PQexec(conn, m->text);
            if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
                ssmd_db_error(conn, res, ctx, err, errlen);
                ok = 0;
            }
            PQclear(res);
            if (ok && ssmd_db_execp(conn, "INSERT INTO ssm.schema_migrations (version) VALUES ($1)", 1, p, err, errlen))
                ok = 0;
        }
        if (!ok) {
            char ignore[8];
            ssmd_db_exec(conn, "ROLLBACK", ignore, sizeof ignore);
            return -1;
        }
        if (ssmd_db_exec(conn, "COMMIT", err, errlen)) return -1;
        if (!done) (*applied)++;
    }
    return 0;
}

int ssmd_db_check_migrated(PGconn *conn, char *err, size_t errlen) {
    PGresult *res = PQexec(conn, "SELECT version FROM ssm.schema_migrations");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        snprintf(err, errlen, "the database has no ssmd schema (HINT: run `ssmd migrate`)");
        return -1;
    }
    for (const ssmd_embedded_file *m = ssmd_migrations; m->name; m++) {
        int found = 0;
        for (int i = 0; i < PQntuples(res) && !found; i++) found = strcmp(PQgetvalue(res, i, 0), m->name) == 0;
        if (!found) {
            PQclear(res);
            snprintf(err, errlen, "migration %s is not applied (HINT: run `ssmd migrate`)", m->name);
            return -1;
        }
    }
    PQclear(res);
    return 0;
}

/* ---- series ------------------------------------------------------------------------- */

static void source_json(const ssmd_series_cfg *sc, ssmd_strbuf *sb) {
    const ssmd_source *s = &sc->source;
    if (s->builtin) {
        ssmd_sb_appendf(sb, "{\"builtin\": true}");
        return;
    }
    ssmd_sb_appendf(sb, "{\"table\": ");
    ssmd_sb_json_string(sb, s->table);
    ssmd_sb_appendf(sb, ", \"time\": ");
    ssmd_sb_json_string(sb, s->time_col);
    ssmd_sb_appendf(sb, ", \"value\": ");
    ssmd_sb_json_string(sb, s->value_col);
    ssmd_sb_appendf(sb, ", \"where\": {");
    for (size_t i = 0; i < s->nwhere; i++) {
        if (i) ssmd_sb_appendf(sb, ", ");
        ssmd_sb_json_string(sb, s->where_keys[i]);
        ssmd_sb_appendf(sb, ": ");
        ssmd_sb_json_string(sb, s->where_values[i]);
    }
    ssmd_sb_appendf(sb, "}}");
}

int ssmd_db_ensure_series(PGconn *conn, const ssmd_series_cfg *sc, int64_t *id, char *err, size_t errlen) {
    ssmd_strbuf src = {0};
    source_json(sc, &src);
    char freq[16];
    ssm_freq_format(sc->freq, freq, sizeof freq);
    if (src.failed) {
        ssmd_sb_free(&src);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *p[] = {sc->name, ssmd_sb_str(&src), freq};
    PGresult *res = PQexecParams(conn,
        "INSERT INTO ssm.series (name, source, frequency) VALUES ($1, $2::jsonb, $3) "
        "ON CONFLICT (name) DO UPDATE SET source = EXCLUDED.source, frequency = EXCLUDED.frequency, "
        "  updated_at = CASE WHEN ssm.series.source IS DISTINCT FROM EXCLUDED.source "
        "    OR ssm.series.frequency IS DISTINCT FROM EXCLUDED.frequency THEN now() ELSE ssm.series.updated_at END "
        "RETURNING id", 3, NULL, p, NULL, NULL, 0);
    ssmd_sb_free(&src);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char ctx[200];
        snprintf(ctx, sizeof ctx, "could not register series \"%s\"", sc->name);
        ssmd_db_error(conn, res, ctx, err, errlen);
        PQclear(res);
        return -1;
    }
    *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* Appends s as one element of a PostgreSQL array literal: double-quoted, with " and \
 * backslash-escaped. */
static void array_element(ssmd_strbuf *sb, const char *s, int first) {
    ssmd_sb_appendf(sb, "%s\"", first ? "" : ",");
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\') ssmd_sb_append(sb, "\\", 1);
        ssmd_sb_append(sb, p, 1);
    }
    ssmd_sb_append(sb, "\"", 1);
}

static const char *const *sort_names;
static int by_name(const void *a, const void *b) {
    return strcmp(sort_names[*(const size_t *)a], sort_names[*(const size_t *)b]);
}

static int ensure_all(PGconn *conn, const ssmd_config *cfg, const char *only, int64_t *ids, int retries_left,
                      char *err, size_t errlen) {
    /* one statement for all: rows whose source or frequency changed are updated, new ones
     * inserted, and the ids of all of them come back */
    ssmd_strbuf names = {0}, sources = {0}, freqs = {0};
    ssmd_sb_appendf(&names, "{");
    ssmd_sb_appendf(&sources, "{");
    ssmd_sb_appendf(&freqs, "{");
    size_t n = 0;
    for (size_t i = 0; i < cfg->nseries; i++) {
        ids[i] = 0;
        const ssmd_series_cfg *sc = &cfg->series[i];
        if (only && strcmp(sc->name, only) != 0) continue;
        ssmd_strbuf src = {0};
        source_json(sc, &src);
        char freq[16];
        ssm_freq_format(sc->freq, freq, sizeof freq);
        array_element(&names, sc->name, n == 0);
        array_element(&sources, ssmd_sb_str(&src), n == 0);
        array_element(&freqs, freq, n == 0);
        if (src.failed) names.failed = 1;
        ssmd_sb_free(&src);
        n++;
    }
    ssmd_sb_appendf(&names, "}");
    ssmd_sb_appendf(&sources, "}");
    ssmd_sb_appendf(&freqs, "}");
    size_t *order = malloc((cfg->nseries ? cfg->nseries : 1) * sizeof *order);
    PGresult *res = NULL;
    if (!order || names.failed || sources.failed || freqs.failed) {
        snprintf(err, errlen, "out of memory");
    } else {
        const char *p[] = {ssmd_sb_str(&names), ssmd_sb_str(&sources), ssmd_sb_str(&freqs)};
        /* New rows are inserted and changed rows updated; unchanged rows are neither
         * written nor locked, so instances (re)starting never queue behind each other or
         * behind running cycles. The ids: rows the statement's snapshot sees, plus the
         * ones it inserted (data-modifying CTEs always run to completion). */
        res = PQexecParams(conn,
            "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS u(name, source, frequency)), "
            "ins AS (INSERT INTO ssm.series (name, source, frequency) SELECT name, source::jsonb, frequency FROM u "
            "  ON CONFLICT (name) DO NOTHING RETURNING id, name), "
            "upd AS (UPDATE ssm.series s SET source = u.source::jsonb, frequency = u.frequency, updated_at = now() "
            "  FROM u WHERE s.name = u.name AND (s.source IS DISTINCT FROM u.source::jsonb "
            "  OR s.frequency IS DISTINCT FROM u.frequency) RETURNING s.id) "
            "SELECT id, name FROM ins UNION ALL "
            "SELECT s.id, s.name FROM ssm.series s JOIN u USING (name)",
            3, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            ssmd_db_error(conn, res, "could not register the configured series", err, errlen);
            PQclear(res);
            res = NULL;
        }
    }
    ssmd_sb_free(&names);
    ssmd_sb_free(&sources);
    ssmd_sb_free(&freqs);
    if (!res) {
        free(order);
        return -1;
    }
    /* match rows to configured series by name */
    const char **cfgnames = malloc((cfg->nseries ? cfg->nseries : 1) * sizeof *cfgnames);
    if (!cfgnames) {
        free(order);
        PQclear(res);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->nseries; i++) {
        order[i] = i;
        cfgnames[i] = cfg->series[i].name;
    }
    sort_names = cfgnames;
    qsort(order, cfg->nseries, sizeof *order, by_name);
    for (int r = 0; r < PQntuples(res); r++) {
        const char *name = PQgetvalue(res, r, 1);
        size_t lo = 0, hi = cfg->nseries;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = strcmp(cfgnames[order[mid]], name);
            if (c == 0) {
                ids[order[mid]] = strtoll(PQgetvalue(res, r, 0), NULL, 10);
                break;
            }
            if (c < 0) lo = mid + 1;
            else hi = mid;
        }
    }
    PQclear(res);
    free(order);
    free(cfgnames);
    /* a row another instance inserted after this statement's snapshot was taken is
     * neither seen nor inserted here: look again */
    for (size_t i = 0; i < cfg->nseries; i++)
        if (!ids[i] && !(only && strcmp(cfg->series[i].name, only) != 0))
            return retries_left > 0 ? ensure_all(conn, cfg, only, ids, retries_left - 1, err, errlen)
                                    : (snprintf(err, errlen, "could not register series \"%s\"", cfg->series[i].name), -1);
    return 0;
}

int ssmd_db_ensure_series_all(PGconn *conn, const ssmd_config *cfg, const char *only, int64_t *ids,
                              char *err, size_t errlen) {
    return ensure_all(conn, cfg, only, ids, 3, err, errlen);
}

int ssmd_db_find_series(PGconn *conn, const char *name, int64_t *id, char *freq, size_t freqlen,
                        char *err, size_t errlen) {
    const char *p[] = {name};
    PGresult *res = PQexecParams(conn, "SELECT id, frequency FROM ssm.series WHERE name = $1", 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ssmd_db_error(conn, res, "could not read ssm.series", err, errlen);
        PQclear(res);
        return -1;
    }
    int found = PQntuples(res) > 0;
    if (found) {
        *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        if (freq) snprintf(freq, freqlen, "%s", PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return found;
}

/* Appends a quoted, possibly schema-qualified identifier ("metrics.cpu" ->
 * "metrics"."cpu"), each part quoted by libpq. */
static int append_qualified(PGconn *conn, ssmd_strbuf *sb, const char *name) {
    const char *p = name;
    int first = 1;
    while (1) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        char *quoted = PQescapeIdentifier(conn, p, n);
        if (!quoted) return -1;
        if (!first) ssmd_sb_append(sb, ".", 1);
        ssmd_sb_appendf(sb, "%s", quoted);
        PQfreemem(quoted);
        first = 0;
        if (!dot) break;
        p = dot + 1;
    }
    return 0;
}

static int append_ident(PGconn *conn, ssmd_strbuf *sb, const char *name) {
    char *quoted = PQescapeIdentifier(conn, name, strlen(name));
    if (!quoted) return -1;
    ssmd_sb_appendf(sb, "%s", quoted);
    PQfreemem(quoted);
    return 0;
}

int ssmd_db_fetch_points(PGconn *conn, const ssmd_series_cfg *sc, int64_t series_id, int64_t after,
                         ssmd_points *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    ssmd_strbuf sql = {0};
    const ssmd_source *s = &sc->source;
    enum { MAXP = 66 };
    const char *params[MAXP];
    int np = 0;
    char idtext[32], aftertext[32];
    snprintf(aftertext, sizeof aftertext, "%lld", (long long)after);
    if (s->builtin) {
        snprintf(idtext, sizeof idtext, "%lld", (long long)series_id);
        ssmd_sb_appendf(&sql, "SELECT floor(extract(epoch FROM ts))::bigint, value::float8 "
                              "FROM ssm.observations WHERE series_id = $1");
        params[np++] = idtext;
        if (after != INT64_MIN) {
            ssmd_sb_appendf(&sql, " AND ts > to_timestamp($2::bigint)");
            params[np++] = aftertext;
        }
        ssmd_sb_appendf(&sql, " ORDER BY ts");
    } else {
        if (s->nwhere > MAXP - 2) {
            snprintf(err, errlen, "series \"%s\": too many where filters", sc->name);
            return -1;
        }
        int bad = 0;
        ssmd_sb_appendf(&sql, "SELECT floor(extract(epoch FROM ");
        bad |= append_ident(conn, &sql, s->time_col);
        ssmd_sb_appendf(&sql, "))::bigint, (");
        bad |= append_ident(conn, &sql, s->value_col);
        ssmd_sb_appendf(&sql, ")::float8 FROM ");
        bad |= append_qualified(conn, &sql, s->table);
        ssmd_sb_appendf(&sql, " WHERE true");
        for (size_t i = 0; i < s->nwhere; i++) {
            ssmd_sb_appendf(&sql, " AND ");
            bad |= append_ident(conn, &sql, s->where_keys[i]);
            ssmd_sb_appendf(&sql, " = $%d", np + 1);
            params[np++] = s->where_values[i];
        }
        if (after != INT64_MIN) {
            ssmd_sb_appendf(&sql, " AND ");
            bad |= append_ident(conn, &sql, s->time_col);
            ssmd_sb_appendf(&sql, " > to_timestamp($%d::bigint)", np + 1);
            params[np++] = aftertext;
        }
        ssmd_sb_appendf(&sql, " ORDER BY 1");
        if (bad) {
            ssmd_sb_free(&sql);
            snprintf(err, errlen, "series \"%s\": could not quote the source identifiers", sc->name);
            return -1;
        }
    }
    if (sql.failed) {
        ssmd_sb_free(&sql);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    PGresult *res = PQexecParams(conn, ssmd_sb_str(&sql), np, NULL, params, NULL, NULL, 0);
    ssmd_sb_free(&sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char ctx[400];
        if (s->builtin) snprintf(ctx, sizeof ctx, "could not read series \"%s\" from ssm.observations", sc->name);
        else
            snprintf(ctx, sizeof ctx, "could not read series \"%s\" from table %s (columns %s, %s; check source in %s)",
                     sc->name, s->table, s->time_col, s->value_col, "the configuration");
        ssmd_db_error(conn, res, ctx, err, errlen);
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        if (PQgetisnull(res, i, 0)) {
            PQclear(res);
            ssmd_points_free(out);
            snprintf(err, errlen, "series \"%s\": a row has a NULL timestamp in column %s", sc->name,
                     s->builtin ? "ts" : s->time_col);
            return -1;
        }
        int64_t ts = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        double v = PQgetisnull(res, i, 1) ? NAN : strtod(PQgetvalue(res, i, 1), NULL);
        if (ssmd_points_push(out, ts, v, (size_t)i + 1)) {
            PQclear(res);
            ssmd_points_free(out);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    PQclear(res);
    return 0;
}

int ssmd_db_load_series(PGconn *conn, const ssmd_series_cfg *sc, ssm_series *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    int64_t id;
    if (ssmd_db_ensure_series(conn, sc, &id, err, errlen)) return -1;
    ssmd_points pts;
    if (ssmd_db_fetch_points(conn, sc, id, INT64_MIN, &pts, err, errlen)) return -1;
    if (pts.n == 0) {
        ssmd_points_free(&pts);
        snprintf(err, errlen, "series \"%s\" has no observations", sc->name);
        return -1;
    }
    ssm_error e = {0};
    int rc = ssm_series_from_points(sc->name, sc->freq, pts.ts, pts.values, pts.n, out, &e);
    ssmd_points_free(&pts);
    if (rc != SSM_OK) {
        snprintf(err, errlen, "%s%s%s", e.message, e.detail[0] ? ": " : "", e.detail);
        return -1;
    }
    return 0;
}

int ssmd_db_copy_observations(PGconn *conn, int64_t series_id, const ssmd_points *pts, char *err, size_t errlen) {
    if (ssmd_db_exec(conn, "CREATE TEMP TABLE IF NOT EXISTS ssmd_obs_load "
                           "(ts timestamptz NOT NULL, value double precision) ON COMMIT DELETE ROWS", err, errlen) ||
        ssmd_db_exec(conn, "TRUNCATE ssmd_obs_load", err, errlen)) /* several loads in one transaction */
        return -1;
    PGresult *res = PQexec(conn, "COPY ssmd_obs_load (ts, value) FROM STDIN");
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        ssmd_db_error(conn, res, "COPY into ssm.observations", err, errlen);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    ssmd_strbuf sb = {0};
    int ok = 1;
    for (size_t i = 0; i < pts->n && ok; i++) {
        char ts[40];
        ssmd_format_timestamp(pts->ts[i], ts, sizeof ts);
        if (isnan(pts->values[i])) ssmd_sb_appendf(&sb, "%s\t\\N\n", ts);
        else ssmd_sb_appendf(&sb, "%s\t%.17g\n", ts, pts->values[i]);
        if (sb.len > (1 << 16) || i + 1 == pts->n) {
            if (sb.failed || PQputCopyData(conn, ssmd_sb_str(&sb), (int)sb.len) != 1) ok = 0;
            ssmd_sb_reset(&sb);
        }
    }
    ssmd_sb_free(&sb);
    if (PQputCopyEnd(conn, ok ? NULL : "client failed") != 1) ok = 0;
    res = PQgetResult(conn);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ssmd_db_error(conn, res, "COPY into ssm.observations", err, errlen);
        ok = 0;
    }
    PQclear(res);
    while ((res = PQgetResult(conn)) != NULL) PQclear(res);
    if (!ok) return -1;
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%lld", (long long)series_id);
    const char *p[] = {idtext};
    return ssmd_db_execp(conn,
        "INSERT INTO ssm.observations (series_id, ts, value) SELECT $1::bigint, ts, value FROM ssmd_obs_load "
        "ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value, inserted_at = now() "
        "WHERE ssm.observations.value IS DISTINCT FROM EXCLUDED.value",
        1, p, err, errlen);
}
