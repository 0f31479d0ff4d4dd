/*
 * daemon/lease.c — the SQL of series leases: registering this instance's series, claiming
 * due ones with FOR UPDATE SKIP LOCKED, renewing and releasing leases, and the time until
 * the next series falls due. See lease.h for the protocol.
 */
#include "lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "strbuf.h"

/* ids as a PostgreSQL array literal "{1,2,3}". */
static void id_array(ssmd_strbuf *sb, const int64_t *ids, int n) {
    ssmd_sb_appendf(sb, "{");
    for (int i = 0; i < n; i++) ssmd_sb_appendf(sb, "%s%lld", i ? "," : "", (long long)ids[i]);
    ssmd_sb_appendf(sb, "}");
}

int ssmd_lease_register(PGconn *conn, const ssmd_config *cfg, const char *only, int64_t *ids,
                        char *err, size_t errlen) {
    if (ssmd_db_ensure_series_all(conn, cfg, only, ids, err, errlen)) return -1;
    ssmd_strbuf a = {0}, e = {0};
    ssmd_sb_appendf(&a, "{");
    ssmd_sb_appendf(&e, "{");
    int first = 1;
    for (size_t k = 0; k < cfg->nseries; k++) {
        if (!ids[k]) continue;
        ssmd_sb_appendf(&a, "%s%lld", first ? "" : ",", (long long)ids[k]);
        ssmd_sb_appendf(&e, "%s%lld", first ? "" : ",", (long long)cfg->series[k].every_s);
        first = 0;
    }
    ssmd_sb_appendf(&a, "}");
    ssmd_sb_appendf(&e, "}");
    int rc = -1;
    if (a.failed || e.failed) snprintf(err, errlen, "out of memory");
    else {
        const char *p[] = {ssmd_sb_str(&a), ssmd_sb_str(&e)};
        rc = ssmd_db_exec(conn, "CREATE TEMP TABLE IF NOT EXISTS ssmd_mine (id bigint PRIMARY KEY, every_s float8 NOT NULL)",
                          err, errlen);
        if (!rc) rc = ssmd_db_exec(conn, "TRUNCATE ssmd_mine", err, errlen);
        if (!rc) rc = ssmd_db_execp(conn, "INSERT INTO ssmd_mine SELECT * FROM unnest($1::bigint[], $2::float8[])",
                                    2, p, err, errlen);
        if (!rc) rc = ssmd_db_exec(conn, "ANALYZE ssmd_mine", err, errlen);
    }
    ssmd_sb_free(&a);
    ssmd_sb_free(&e);
    return rc;
}

int ssmd_lease_claim(PGconn *conn, const char *owner, int64_t lease_s, int max, int64_t *out, int *n,
                     char *err, size_t errlen) {
    *n = 0;
    if (max <= 0) return 0;
    char secs[32], lim[32];
    snprintf(secs, sizeof secs, "%lld", (long long)lease_s);
    snprintf(lim, sizeof lim, "%d", max);
    const char *p[] = {owner, secs, lim};
    PGresult *res = PQexecParams(conn,
        "UPDATE ssm.series s SET lease_owner = $1, lease_expires = now() + make_interval(secs => $2::float8) "
        "WHERE s.id IN (SELECT c.id FROM ssm.series c JOIN ssmd_mine m ON m.id = c.id "
        "  WHERE c.next_run <= now() AND (c.lease_owner IS NULL OR c.lease_expires < now()) "
        "  ORDER BY c.next_run LIMIT $3::integer FOR UPDATE OF c SKIP LOCKED) "
        "RETURNING s.id", 3, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ssmd_db_error(conn, res, "could not claim due series", err, errlen);
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < PQntuples(res) && i < max; i++) out[(*n)++] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    PQclear(res);
    return 0;
}

int ssmd_lease_renew(PGconn *conn, const char *owner, int64_t lease_s, const int64_t *ids, int n,
                     char *err, size_t errlen) {
    if (n <= 0) return 0;
    ssmd_strbuf a = {0};
    id_array(&a, ids, n);
    char secs[32];
    snprintf(secs, sizeof secs, "%lld", (long long)lease_s);
    const char *p[] = {owner, secs, ssmd_sb_str(&a)};
    int rc = a.failed ? -1 : ssmd_db_execp(conn,
        "UPDATE ssm.series s SET lease_expires = now() + make_interval(secs => $2::float8) "
        "WHERE s.id IN (SELECT id FROM ssm.series WHERE id = ANY ($3::bigint[]) AND lease_owner = $1 "
        "  FOR UPDATE SKIP LOCKED)", 3, p, err, errlen);
    if (a.failed) snprintf(err, errlen, "out of memory");
    ssmd_sb_free(&a);
    return rc;
}

int ssmd_lease_release(PGconn *conn, const char *owner, const int64_t *ids, int n, int except,
                       char *err, size_t errlen) {
    if (n <= 0 && !except) return 0;
    ssmd_strbuf a = {0};
    id_array(&a, ids, n);
    const char *p[] = {owner, ssmd_sb_str(&a), except ? "true" : "false"};
    int rc = a.failed ? -1 : ssmd_db_execp(conn,
        "UPDATE ssm.series s SET lease_owner = NULL, lease_expires = NULL "
        "WHERE s.id IN (SELECT id FROM ssm.series WHERE lease_owner = $1 "
        "  AND (id = ANY ($2::bigint[])) <> $3::boolean FOR UPDATE SKIP LOCKED)", 3, p, err, errlen);
    if (a.failed) snprintf(err, errlen, "out of memory");
    ssmd_sb_free(&a);
    return rc;
}

int ssmd_lease_next_due(PGconn *conn, const char *owner, double *seconds, char *err, size_t errlen) {
    const char *p[] = {owner};
    PGresult *res = PQexecParams(conn,
        "SELECT extract(epoch FROM min(CASE WHEN s.lease_owner IS NOT NULL AND s.lease_expires > now() "
        "  THEN greatest(s.next_run, s.lease_expires) ELSE s.next_run END) - now())::float8 "
        "FROM ssm.series s JOIN ssmd_mine m ON m.id = s.id WHERE s.lease_owner IS DISTINCT FROM $1",
        1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        ssmd_db_error(conn, res, "could not read the schedule", err, errlen);
        PQclear(res);
        return -1;
    }
    *seconds = PQgetisnull(res, 0, 0) ? 3600.0 : strtod(PQgetvalue(res, 0, 0), NULL);
    PQclear(res);
    return 0;
}

int ssmd_lease_wake(PGconn *conn, const int64_t *ids, int n, int *woken, char *err, size_t errlen) {
    *woken = 0;
    ssmd_strbuf a = {0};
    id_array(&a, ids, n);
    const char *p[] = {ssmd_sb_str(&a), n > 0 ? "false" : "true"};
    PGresult *res = a.failed ? NULL : PQexecParams(conn,
        "UPDATE ssm.series s SET next_run = now() WHERE s.id IN (SELECT c.id FROM ssm.series c "
        "  JOIN ssmd_mine m ON m.id = c.id WHERE ($2::boolean OR c.id = ANY ($1::bigint[])) AND c.next_run > now() "
        "  AND (c.last_run IS NULL OR c.last_run + make_interval(secs => m.every_s) <= now()) "
        "  FOR UPDATE OF c SKIP LOCKED)",
        2, NULL, p, NULL, NULL, 0);
    ssmd_sb_free(&a);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ssmd_db_error(conn, res, "could not wake series with new observations", err, errlen);
        PQclear(res);
        return -1;
    }
    *woken = atoi(PQcmdTuples(res));
    PQclear(res);
    return 0;
}
