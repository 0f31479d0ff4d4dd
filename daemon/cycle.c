/*
 * daemon/cycle.c — one series' cycle: lock the series row, read new observations, fit or
 * incrementally update each model, forecast, write everything in one transaction.
 *
 * Incremental path: a model whose state is stored, whose refit is not due and whose
 * stored last observation is the series' watermark is loaded and filtered over the
 * points after the watermark only. Everything else is fitted on the whole series.
 * Forecasts go in with one INSERT ... ON CONFLICT per model (the rows as array
 * parameters), so a re-run of the same cycle rewrites the same rows instead of
 * duplicating them.
 *
 * Late data: observations inserted, corrected or deleted at or before the watermark set
 * ssm.series.dirty_from (triggers of sql/002_scheduler.sql); such a cycle refits from the
 * whole series and clears the mark in its transaction.
 *
 * Under the scheduler (opts->lease_owner set) the cycle runs only while its instance
 * holds the series' lease, checked under the row lock, and releases it on commit; next_run
 * keeps the `every` cadence (next_run + every, or now + every when that is already past).
 */
#include "cycle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csvio.h"
#include "db.h"
#include "log.h"
#include "model.h"
#include "strbuf.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* next_run after a cycle: `now + every` for a manual run; under the scheduler the cadence
 * `next_run + every`, or `now + every` when a late cycle would otherwise chase the past.
 * $every is the parameter number of every_s, $cadence of a boolean. */
#define NEXT_RUN_SQL(every, cadence) \
    "CASE WHEN " cadence "::boolean AND next_run + make_interval(secs => " every "::float8) > now() " \
    "THEN next_run + make_interval(secs => " every "::float8) ELSE now() + make_interval(secs => " every "::float8) END"
/* The lease is cleared when this instance holds it ($owner NULL: manual run, untouched). */
#define LEASE_RELEASE_SQL(owner) \
    "lease_expires = CASE WHEN lease_owner = " owner "::text THEN NULL ELSE lease_expires END, " \
    "lease_owner = CASE WHEN lease_owner = " owner "::text THEN NULL ELSE lease_owner END"


/* The statements of a cycle's two pipelines. A worker prepares them once per connection
 * (opts->prepared), which saves the server parsing and planning them every cycle. */
enum {
    Q_LOCK,        /* $1 series id, $2 lease owner (NULL: none) */
    Q_STATES,      /* $1 series id; binary results */
    Q_NEWER,       /* $1 series id */
    Q_NEXTVAL,
    Q_FORECASTS,   /* see send_forecasts */
    Q_MODEL_STATE, /* see send_model_state */
    Q_SERIES_OK,
    Q_RETENTION,   /* $1 series id, $2 seconds */
    Q_RUN_OK,
    Q_COUNT
};

static const char *const cycle_sql[Q_COUNT] = {
    [Q_LOCK] = "SELECT floor(extract(epoch FROM watermark))::bigint, next_refit <= now(), dirty_from IS NOT NULL, "
               "$2::text IS NULL OR lease_owner IS NOT DISTINCT FROM $2::text FROM ssm.series "
               "WHERE id = $1::bigint FOR UPDATE",
    [Q_STATES] = "SELECT model, state, extract(epoch FROM now() - fitted_at)::float8 "
                 "FROM ssm.model_state WHERE series_id = $1::bigint",
    [Q_NEWER] = "SELECT floor(extract(epoch FROM ts))::bigint, value::float8 FROM ssm.observations "
                "WHERE series_id = $1::bigint AND ts > (SELECT watermark FROM ssm.series WHERE id = $1::bigint) "
                "ORDER BY ts",
    [Q_NEXTVAL] = "SELECT nextval(pg_get_serial_sequence('ssm.runs', 'id'))",
    /* run_id: the run row of this cycle, whose id the pipeline drew first (currval) */
    /* $4 levels, $5 targets, $6 means, $7 sds, $8 quantiles (steps x levels, flat): binary
     * arrays; $9 the number of levels */
    [Q_FORECASTS] =
        "INSERT INTO ssm.forecasts (series_id, model, origin, step, target_ts, mean, sd, quantile_levels, "
        "quantile_values, run_id) "
        "SELECT $1::bigint, $2::text, $3::timestamptz, u.step::integer, u.target_ts, u.mean, u.sd, $4::float8[], "
        "($8::float8[])[(u.step - 1) * $9::integer + 1 : u.step * $9::integer], "
        "(SELECT currval(pg_get_serial_sequence('ssm.runs', 'id'))) " /* once, not per row */
        "FROM unnest($5::timestamptz[], $6::float8[], $7::float8[]) WITH ORDINALITY AS u(target_ts, mean, sd, step) "
        "ON CONFLICT (series_id, model, origin, step) DO UPDATE SET target_ts = EXCLUDED.target_ts, "
        "mean = EXCLUDED.mean, sd = EXCLUDED.sd, quantile_levels = EXCLUDED.quantile_levels, "
        "quantile_values = EXCLUDED.quantile_values, issued_at = EXCLUDED.issued_at, run_id = EXCLUDED.run_id",
    [Q_MODEL_STATE] =
        "INSERT INTO ssm.model_state (series_id, model, params, state, last_ts, nobs, loglik, aicc) "
        "VALUES ($1::bigint, $2::text, $3::jsonb, $4::bytea, $5::timestamptz, $6::integer, $7::float8, $8::float8) "
        "ON CONFLICT (series_id, model) DO UPDATE SET params = EXCLUDED.params, state = EXCLUDED.state, "
        "last_ts = EXCLUDED.last_ts, nobs = EXCLUDED.nobs, loglik = EXCLUDED.loglik, aicc = EXCLUDED.aicc, "
        "updated_at = now(), fitted_at = CASE WHEN $9::boolean THEN now() ELSE ssm.model_state.fitted_at END",
    [Q_SERIES_OK] =
        "UPDATE ssm.series SET watermark = $2::timestamptz, status = 'ok', last_error = $6::text, "
        "last_run = to_timestamp($7::float8), next_run = " NEXT_RUN_SQL("$3", "$9") ", "
        "next_refit = CASE WHEN $4::boolean THEN now() + make_interval(secs => $5::float8) ELSE next_refit END, "
        "dirty_from = NULL, " LEASE_RELEASE_SQL("$8") ", updated_at = now() WHERE id = $1::bigint",
    [Q_RETENTION] = "DELETE FROM ssm.forecasts WHERE series_id = $1::bigint "
                    "AND issued_at < now() - make_interval(secs => $2::float8)",
    [Q_RUN_OK] =
        "INSERT INTO ssm.runs (id, series_id, instance, started_at, duration_ms, new_points, refit, outcome, error, "
        "models, origin) VALUES (currval(pg_get_serial_sequence('ssm.runs', 'id')), $1::bigint, $2::text, "
        "to_timestamp($3::float8), 1e3 * extract(epoch FROM clock_timestamp() - to_timestamp($3::float8)), "
        "$4::integer, $5::boolean, 'ok', $6::text, $7::text[], $8::timestamptz)",
};

static const int cycle_nparams[Q_COUNT] = {
    [Q_LOCK] = 2, [Q_STATES] = 1, [Q_NEWER] = 1, [Q_NEXTVAL] = 0, [Q_FORECASTS] = 9,
    [Q_MODEL_STATE] = 9, [Q_SERIES_OK] = 9, [Q_RETENTION] = 2, [Q_RUN_OK] = 8,
};

/* Queues statement q (pipeline mode): by name when prepared on this connection. */
static int send_stmt(PGconn *conn, const ssmd_cycle_opts *o, int q, const char *const *params, const int *lengths,
                     const int *formats, int result_format) {
    if (o->prepared && *o->prepared) {
        char name[32];
        snprintf(name, sizeof name, "ssmd_cycle_%d", q);
        return PQsendQueryPrepared(conn, name, cycle_nparams[q], params, lengths, formats, result_format) == 1;
    }
    return PQsendQueryParams(conn, cycle_sql[q], cycle_nparams[q], NULL, params, lengths, formats, result_format) == 1;
}

/* The per-model work of a cycle. */
typedef struct model_slot {
    const char *spec;
    ssm_model *model;
    int loaded;          /* state came from ssm.model_state */
    double age_s;        /* seconds since its stored state was last fitted (loaded only) */
    int incremental;     /* this cycle updates the loaded state rather than fitting */
    int refit;           /* fitted in this cycle */
    int ok;
    ssm_forecast fc;
    ssm_buffer blob;
    char error[512];
} model_slot;

static void slot_free(model_slot *s) {
    ssm_model_free(s->model);
    ssm_forecast_free(&s->fc);
    ssm_buffer_free(&s->blob);
}

static void format_error(char *out, size_t len, const char *spec, const ssm_error *e) {
    snprintf(out, len, "model %s: %s%s%s%s%s", spec, e->message, e->detail[0] ? " (" : "", e->detail,
             e->detail[0] ? ")" : "", e->hint[0] ? "" : "");
}

/* Params as a jsonb object: {"sigma2.level": 1469.1, ..., "loglik": ..., "aicc": ...}. */
static void params_json(const ssm_fit_info *info, ssmd_strbuf *sb) {
    ssmd_sb_appendf(sb, "{");
    for (size_t i = 0; i < info->nparams; i++) {
        ssmd_sb_json_string(sb, info->params[i].name);
        ssmd_sb_appendf(sb, ": ");
        ssmd_sb_json_number(sb, info->params[i].value);
        ssmd_sb_appendf(sb, ", ");
    }
    ssmd_sb_appendf(sb, "\"loglik\": ");
    ssmd_sb_json_number(sb, info->loglik);
    ssmd_sb_appendf(sb, ", \"aicc\": ");
    ssmd_sb_json_number(sb, info->aicc);
    ssmd_sb_appendf(sb, ", \"converged\": %s, \"chosen\": ", info->converged ? "true" : "false");
    ssmd_sb_json_string(sb, info->chosen);
    ssmd_sb_appendf(sb, "}");
}

/* PostgreSQL's binary array format (array_send): ndim, has-nulls flag, element type,
 * then per dimension its length and lower bound, then per element its byte length (-1:
 * NULL) and bytes, all big-endian. One dimension of n float8 (values; non-finite become
 * NULL) or timestamptz (ts, Unix seconds). */
enum { OID_FLOAT8 = 701, OID_TIMESTAMPTZ = 1184 };

static int put_be(ssm_buffer *b, uint64_t v, int bytes) {
    unsigned char out[8];
    for (int i = 0; i < bytes; i++) out[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    return ssm_buffer_append(b, out, (size_t)bytes);
}

static int bin_array(ssm_buffer *b, uint32_t oid, const double *values, const int64_t *ts, size_t n) {
    int nulls = 0;
    for (size_t i = 0; values && i < n; i++) nulls |= !isfinite(values[i]);
    int rc = put_be(b, 1, 4) | put_be(b, (uint64_t)nulls, 4) | put_be(b, oid, 4) | put_be(b, n, 4) | put_be(b, 1, 4);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (values && !isfinite(values[i])) {
            rc = put_be(b, 0xffffffffu, 4);
            continue;
        }
        uint64_t bits;
        if (values) {
            memcpy(&bits, &values[i], sizeof bits);
        } else {
            int64_t us = (ts[i] - INT64_C(946684800)) * INT64_C(1000000); /* 2000-01-01 */
            memcpy(&bits, &us, sizeof bits);
        }
        rc = put_be(b, 8, 4) | put_be(b, bits, 8);
    }
    return rc ? -1 : 0;
}

/* Queues (pipeline mode) every slot's forecast as one INSERT ... SELECT FROM
 * unnest(arrays) ... ON CONFLICT per model: the H rows travel as array parameters, with
 * no temporary table (whose truncation at every commit cost more than the insert). */
static int send_forecasts(PGconn *conn, const ssmd_cycle_opts *o, int64_t series_id, model_slot *slots, size_t n,
                          int *nsent, char *err, size_t errlen) {
    for (size_t k = 0; k < n; k++) {
        if (!slots[k].ok) continue;
        const ssm_forecast *f = &slots[k].fc;
        char id[32], origin[40], nq[16];
        snprintf(id, sizeof id, "%lld", (long long)series_id);
        snprintf(nq, sizeof nq, "%zu", f->nq);
        ssmd_format_timestamp(slots[k].model->last_ts, origin, sizeof origin);
        /* binary arrays: no decimal formatting here, no parsing on the server; the
         * Unix seconds become PostgreSQL's microseconds since 2000-01-01 */
        ssm_buffer levels = {0}, targets = {0}, means = {0}, sds = {0}, qs = {0};
        int bad = bin_array(&levels, OID_FLOAT8, f->levels, NULL, f->nq) ||
                  bin_array(&targets, OID_TIMESTAMPTZ, NULL, f->ts, f->horizon) ||
                  bin_array(&means, OID_FLOAT8, f->mean, NULL, f->horizon) ||
                  bin_array(&sds, OID_FLOAT8, f->sd, NULL, f->horizon) ||
                  bin_array(&qs, OID_FLOAT8, f->q, NULL, f->horizon * f->nq);
        const char *p[] = {id, slots[k].spec, origin, (const char *)levels.data, (const char *)targets.data,
                           (const char *)means.data, (const char *)sds.data, (const char *)qs.data, nq};
        int lens[] = {0, 0, 0, (int)levels.len, (int)targets.len, (int)means.len, (int)sds.len, (int)qs.len, 0};
        int fmts[] = {0, 0, 0, 1, 1, 1, 1, 1, 0};
        if (bad) snprintf(err, errlen, "out of memory");
        else if (!send_stmt(conn, o, Q_FORECASTS, p, lens, fmts, 0)) {
            ssmd_db_error(conn, NULL, "sending forecasts", err, errlen);
            bad = 1;
        } else {
            (*nsent)++;
        }
        ssm_buffer_free(&levels);
        ssm_buffer_free(&targets);
        ssm_buffer_free(&means);
        ssm_buffer_free(&sds);
        ssm_buffer_free(&qs);
        if (bad) return -1;
    }
    return 0;
}

/* Queues (pipeline mode) the upsert of one model's parameters and state. */
static int send_model_state(PGconn *conn, const ssmd_cycle_opts *o, int64_t series_id, model_slot *s, char *err,
                            size_t errlen) {
    ssm_fit_info info;
    ssm_model_info(s->model, &info);
    ssmd_strbuf js = {0};
    params_json(&info, &js);
    char id[32], last[40], nobs[32], ll[40], aicc[40], refit[8];
    snprintf(id, sizeof id, "%lld", (long long)series_id);
    ssmd_format_timestamp(s->model->last_ts, last, sizeof last);
    snprintf(nobs, sizeof nobs, "%zu", s->model->nseen);
    snprintf(ll, sizeof ll, "%.17g", info.loglik);
    snprintf(aicc, sizeof aicc, "%.17g", info.aicc);
    snprintf(refit, sizeof refit, "%s", s->refit ? "true" : "false");
    const char *p[] = {id, s->spec, ssmd_sb_str(&js), (const char *)s->blob.data, last, nobs,
                       isfinite(info.loglik) ? ll : NULL, isfinite(info.aicc) ? aicc : NULL, refit};
    int lens[] = {0, 0, 0, (int)s->blob.len, 0, 0, 0, 0, 0};
    int fmts[] = {0, 0, 0, 1, 0, 0, 0, 0, 0};
    int sent = !js.failed && send_stmt(conn, o, Q_MODEL_STATE, p, lens, fmts, 0);
    ssmd_sb_free(&js);
    if (!sent) {
        ssmd_db_error(conn, NULL, "sending ssm.model_state", err, errlen);
        return -1;
    }
    return 0;
}

/* Ends a pipeline of nq queries: syncs, reads every result (keeping result i in keep[i]
 * when keep is given and it succeeded), leaves pipeline mode. Returns 0 when all
 * succeeded, else -1 with err from the first failure (later queries were skipped by the
 * server; a transaction the pipeline opened is then in the aborted state). */
static int pipeline_finish(PGconn *conn, int nq, PGresult **keep, char *err, size_t errlen) {
    int ok = PQpipelineSync(conn) == 1;
    if (!ok) ssmd_db_error(conn, NULL, "pipeline", err, errlen);
    int q = 0, nulls = 0;
    while (ok || PQstatus(conn) == CONNECTION_OK) {
        PGresult *res = PQgetResult(conn);
        if (!res) {
            /* a NULL ends each query's results; several in a row: nothing left to read */
            if (PQstatus(conn) != CONNECTION_OK || ++nulls > 2) break;
            continue;
        }
        nulls = 0;
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            if (ok) ssmd_db_error(conn, res, st == PGRES_PIPELINE_ABORTED ? "pipeline aborted" : "cycle query",
                                  err, errlen);
            ok = 0;
            PQclear(res);
        } else if (keep && q < nq) {
            keep[q] = res;
        } else {
            PQclear(res);
        }
        q++;
    }
    if (!PQexitPipelineMode(conn) && ok) {
        ssmd_db_error(conn, NULL, "leaving pipeline mode", err, errlen);
        ok = 0;
    }
    if (ok && q != nq) {
        snprintf(err, errlen, "pipeline returned %d results for %d queries", q, nq);
        ok = 0;
    }
    return ok ? 0 : -1;
}

/* (ts, value) rows of res (text) as points; a NULL value is a missing observation. */
static int points_from_result(const PGresult *res, ssmd_points *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t ts = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        double v = PQgetisnull(res, i, 1) ? NAN : strtod(PQgetvalue(res, i, 1), NULL);
        if (ssmd_points_push(out, ts, v, (size_t)i + 1)) {
            ssmd_points_free(out);
            return -1;
        }
    }
    return 0;
}

/* Prepares the cycle's statements on conn (one round trip). On failure no statement is
 * left prepared, so the next cycle simply tries again (this one runs unprepared). */
static int prepare_statements(PGconn *conn, char *err, size_t errlen) {
    int n = 0;
    int sent = PQenterPipelineMode(conn) == 1;
    for (int q = 0; q < Q_COUNT && sent; q++) {
        char name[32];
        snprintf(name, sizeof name, "ssmd_cycle_%d", q);
        sent = PQsendPrepare(conn, name, cycle_sql[q], 0, NULL) == 1;
        n += sent;
    }
    int rc = pipeline_finish(conn, n, NULL, err, errlen);
    if (rc == 0 && sent) return 0;
    char ignore[256];
    if (PQstatus(conn) == CONNECTION_OK) ssmd_db_exec(conn, "DEALLOCATE ALL", ignore, sizeof ignore);
    return -1;
}

/* Loads the stored states of res (model, state; binary) into slots (those whose blob
 * loads). */
static void apply_states(const PGresult *res, model_slot *slots, size_t n) {
    for (int i = 0; i < PQntuples(res); i++) {
        const char *model = PQgetvalue(res, i, 0);
        int mlen = PQgetlength(res, i, 0);
        for (size_t k = 0; k < n; k++) {
            if ((size_t)mlen != strlen(slots[k].spec) || memcmp(model, slots[k].spec, (size_t)mlen) != 0) continue;
            ssm_error e = {0};
            if (ssm_model_load(slots[k].model, (const uint8_t *)PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1),
                               &e) == SSM_OK) {
                slots[k].loaded = 1;
                /* float8 in binary: 8 bytes, big-endian */
                const unsigned char *b = (const unsigned char *)PQgetvalue(res, i, 2);
                uint64_t bits = 0;
                for (int j = 0; j < 8 && PQgetlength(res, i, 2) == 8; j++) bits = bits << 8 | b[j];
                memcpy(&slots[k].age_s, &bits, sizeof bits);
            } else
                ssmd_log(SSMD_LOG_WARNING, "series model %s: stored state not usable, refitting: %s", slots[k].spec,
                         e.message);
        }
    }
}

static int abandoned(const ssmd_cycle_opts *o) { return o->abandon && atomic_load(o->abandon); }

static void record_failure(PGconn *conn, int64_t series_id, const ssmd_series_cfg *sc, const ssmd_cycle_opts *o,
                           double started, const char *error) {
    char ignore[256], id[32], st[40], ms[40], every[32];
    snprintf(id, sizeof id, "%lld", (long long)series_id);
    snprintf(st, sizeof st, "%.6f", started);
    snprintf(ms, sizeof ms, "%.3f", (now_seconds() - started) * 1e3);
    snprintf(every, sizeof every, "%lld", (long long)sc->every_s);
    const char *p[] = {id, o->instance, st, ms, error, every, o->lease_owner, o->lease_owner ? "true" : "false"};
    if (ssmd_db_exec(conn, "BEGIN", ignore, sizeof ignore)) return;
    if (ssmd_db_execp(conn, "INSERT INTO ssm.runs (series_id, instance, started_at, duration_ms, outcome, error) "
                            "VALUES ($1, $2, to_timestamp($3::float8), $4, 'error', $5)", 5, p, ignore, sizeof ignore) ||
        ssmd_db_execp(conn, "UPDATE ssm.series SET status = 'error', last_error = $5, last_run = to_timestamp($3::float8), "
                            "next_run = " NEXT_RUN_SQL("$6", "$8") ", " LEASE_RELEASE_SQL("$7") ", updated_at = now() "
                            "WHERE id = $1::bigint AND $2::text IS NOT NULL AND $4::float8 IS NOT NULL",
                      8, p, ignore, sizeof ignore)) {
        ssmd_db_exec(conn, "ROLLBACK", ignore, sizeof ignore);
        return;
    }
    ssmd_db_exec(conn, "COMMIT", ignore, sizeof ignore);
}

void ssmd_cycle_run(PGconn *conn, const ssmd_series_cfg *sc, const ssmd_cycle_opts *o, ssmd_cycle_result *r) {
    memset(r, 0, sizeof *r);
    double started = now_seconds();
    char err[1024] = "";
    int64_t series_id = 0;
    size_t nm = sc->nmodels;
    model_slot *slots = calloc(nm ? nm : 1, sizeof *slots);
    ssmd_points pts = {0};
    ssm_series y = {0};
    int in_tx = 0;
    PGresult *states = NULL; /* stored model states, read with the row lock */
    PGresult *newer = NULL;  /* built-in store: the points after the watermark, likewise */
    if (!slots) {
        snprintf(r->error, sizeof r->error, "out of memory");
        r->status = SSMD_CYCLE_ERROR;
        return;
    }
    if (o->prepared && !*o->prepared && prepare_statements(conn, err, sizeof err) == 0) *o->prepared = 1;
    if (o->series_id > 0) series_id = o->series_id;
    else if (ssmd_db_ensure_series(conn, sc, &series_id, err, sizeof err)) goto fail;
    /* One round trip: BEGIN, lock the series row, read the stored states. The lock: a
     * second instance skips or waits, never doubles. Under the scheduler the lease must
     * still be ours: when it expired and another instance took the series, that
     * instance's cycle is the one that counts. (Round trips, not queries, are what a
     * cycle costs on a busy machine, hence the pipelines.) */
    char idtext[32], every[32], cadence[8];
    snprintf(idtext, sizeof idtext, "%lld", (long long)series_id);
    snprintf(every, sizeof every, "%lld", (long long)sc->every_s);
    snprintf(cadence, sizeof cadence, "%s", o->lease_owner ? "true" : "false");
    const char *pid[] = {idtext, o->lease_owner};
    PGresult *got[4] = {NULL, NULL, NULL, NULL};
    int nread = sc->source.builtin ? 4 : 3;
    in_tx = 1;
    int sent = PQenterPipelineMode(conn) == 1 && PQsendQueryParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) == 1 &&
        send_stmt(conn, o, Q_LOCK, pid, NULL, NULL, 0) &&
        /* binary results: bytea arrives as raw bytes, text as its characters */
        send_stmt(conn, o, Q_STATES, pid, NULL, NULL, 1) &&
        /* built-in store: the points after the watermark, which is all an incremental
         * cycle needs (its snapshot is taken after the lock, so it sees the watermark
         * the last cycle committed) */
        (nread == 3 || send_stmt(conn, o, Q_NEWER, pid, NULL, NULL, 0));
    if (!sent) ssmd_db_error(conn, NULL, "locking the series row", err, sizeof err);
    if (pipeline_finish(conn, sent ? nread : 0, got, err, sizeof err) != 0 || !sent || PQntuples(got[1]) != 1) {
        if (sent && got[1] && PQntuples(got[1]) != 1) snprintf(err, sizeof err, "series %s is not in ssm.series", idtext);
        for (int i = 0; i < 4; i++) PQclear(got[i]);
        goto fail;
    }
    PQclear(got[0]);
    states = got[2];
    newer = got[3];
    PGresult *res = got[1];
    int have_watermark = !PQgetisnull(res, 0, 0);
    int64_t watermark = have_watermark ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : INT64_MIN;
    int refit_due = o->force_refit || strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    int late = have_watermark && strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    int leased = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
    PQclear(res);
    if (!leased) {
        ssmd_db_exec(conn, "ROLLBACK", err, sizeof err);
        in_tx = 0;
        r->status = SSMD_CYCLE_SKIPPED;
        goto done;
    }
    r->late = late;
    /* late data: the stored states filtered values that have changed since */
    int refit_all = o->force_refit || late;

    ssm_model_opts mo = {0};
    mo.season = sc->season;
    mo.threads = o->threads;
    mo.device = o->device;
    for (size_t k = 0; k < nm; k++) {
        ssm_error e = {0};
        slots[k].spec = sc->models[k];
        slots[k].model = ssm_model_create(sc->models[k], &mo, &e);
        if (!slots[k].model) {
            format_error(err, sizeof err, sc->models[k], &e);
            goto fail;
        }
    }
    if (have_watermark && !refit_all) apply_states(states, slots, nm);

    /* Per model: update the stored state over the new points when it sits exactly at the
     * watermark and its refit is not due — refit_every (the series' next_refit) for
     * Kalman models and baselines, retrain_every since its last training for neural
     * models; otherwise fit it on the whole series. */
    int all_incremental = 1;
    for (size_t k = 0; k < nm; k++) {
        int neural = slots[k].model->family && strcmp(slots[k].model->family, "neural") == 0;
        int due = neural ? slots[k].age_s >= (double)sc->retrain_every_s : refit_due;
        slots[k].incremental = have_watermark && !refit_all && !due && slots[k].loaded &&
                               slots[k].model->last_ts == watermark;
        all_incremental &= slots[k].incremental;
    }

    if (all_incremental && newer) {
        if (points_from_result(newer, &pts) != 0) {
            snprintf(err, sizeof err, "out of memory");
            goto fail;
        }
    } else if (ssmd_db_fetch_points(conn, sc, series_id, all_incremental ? watermark : INT64_MIN, &pts, err,
                                    sizeof err)) {
        goto fail;
    }
    if (all_incremental && pts.n == 0) {
        /* nothing new: leave the data as it is; under the scheduler move next_run on and
         * give the lease back (no run record: an idle poll is not a cycle) */
        if (o->lease_owner) {
            const char *pi[] = {idtext, every, o->lease_owner};
            if (ssmd_db_execp(conn, "UPDATE ssm.series SET next_run = " NEXT_RUN_SQL("$2", "true") ", "
                                    LEASE_RELEASE_SQL("$3") " WHERE id = $1::bigint", 3, pi, err, sizeof err) ||
                ssmd_db_exec(conn, "COMMIT", err, sizeof err))
                goto fail;
        } else {
            ssmd_db_exec(conn, "ROLLBACK", err, sizeof err);
        }
        in_tx = 0;
        r->status = SSMD_CYCLE_IDLE;
        goto done;
    }
    if (abandoned(o)) goto abandon;
    if (pts.n == 0) {
        snprintf(err, sizeof err, "series \"%s\" has no observations", sc->name);
        goto fail;
    }
    ssm_error e = {0};
    if (ssm_series_from_points(sc->name, sc->freq, pts.ts, pts.values, pts.n, &y, &e) != SSM_OK) {
        snprintf(err, sizeof err, "%s%s%s", e.message, e.detail[0] ? ": " : "", e.detail);
        goto fail;
    }
    /* the values an incremental model is filtered over: the grid steps after the
     * watermark up to the last point (gaps as NaN) */
    double *after = NULL;
    size_t nafter = 0;
    if (all_incremental) {
        int exact;
        long first = ssm_freq_index(sc->freq, watermark, y.start, &exact);
        if (!exact || first < 1) {
            char a[40];
            ssmd_format_timestamp(y.start, a, sizeof a);
            snprintf(err, sizeof err, "series \"%s\": new observation at %s is off the %s grid", sc->name, a, "series'");
            goto fail;
        }
        r->new_points = pts.n;
        nafter = (size_t)first - 1 + y.n;
        after = malloc(nafter * sizeof *after);
        if (!after) {
            snprintf(err, sizeof err, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i + 1 < (size_t)first; i++) after[i] = NAN;
        memcpy(after + first - 1, y.values, y.n * sizeof *after);
    } else {
        r->new_points = have_watermark ? 0 : pts.n;
        if (have_watermark)
            for (size_t i = 0; i < pts.n; i++) r->new_points += pts.ts[i] > watermark;
        /* the whole series was read: models that can be updated take its tail */
        int exact = 0;
        long wi = have_watermark ? ssm_freq_index(sc->freq, y.start, watermark, &exact) : -1;
        if (exact && wi >= 0 && (size_t)wi < y.n) {
            nafter = y.n - (size_t)wi - 1;
            after = y.values + wi + 1; /* borrowed */
        } else {
            for (size_t k = 0; k < nm; k++) slots[k].incremental = 0;
        }
    }
    for (size_t k = 0; k < nm; k++) {
        ssm_error me = {0};
        if (abandoned(o)) {
            if (all_incremental) free(after);
            goto abandon;
        }
        int rc = SSM_OK;
        if (slots[k].incremental) {
            if (nafter > 0) rc = ssm_model_update(slots[k].model, after, nafter, &me);
        } else {
            slots[k].refit = 1;
            r->refit = 1;
            rc = ssm_model_fit(slots[k].model, &y, &me);
        }
        if (rc != SSM_OK) format_error(slots[k].error, sizeof slots[k].error, slots[k].spec, &me);
        else slots[k].ok = 1;
    }
    if (all_incremental) free(after);
    /* next_refit moves on when a model it governs (not neural) was fitted */
    int kalman_refit = 0;
    for (size_t k = 0; k < nm; k++)
        kalman_refit |= slots[k].refit && !(slots[k].model->family && strcmp(slots[k].model->family, "neural") == 0);
    for (size_t k = 0; k < nm; k++) {
        if (!slots[k].ok) continue;
        ssm_error me = {0};
        if (ssm_forecast_init(&slots[k].fc, (size_t)sc->horizon, sc->quantiles, sc->nq, &me) != SSM_OK ||
            ssm_model_forecast(slots[k].model, &slots[k].fc, &me) != SSM_OK ||
            ssm_model_save(slots[k].model, &slots[k].blob, &me) != SSM_OK) {
            format_error(slots[k].error, sizeof slots[k].error, slots[k].spec, &me);
            slots[k].ok = 0;
        }
    }
    ssmd_strbuf failures = {0};
    for (size_t k = 0; k < nm; k++) {
        r->models_fitted += slots[k].ok && slots[k].refit;
        if (slots[k].ok) r->models_ok++;
        else {
            r->models_failed++;
            ssmd_sb_appendf(&failures, "%s%s", failures.len ? "; " : "", slots[k].error);
        }
    }
    if (r->models_ok == 0) {
        snprintf(err, sizeof err, "series \"%s\": %s", sc->name, ssmd_sb_str(&failures));
        ssmd_sb_free(&failures);
        goto fail;
    }

    /* Everything computed: write it in this transaction. */
    if (abandoned(o)) {
        ssmd_sb_free(&failures);
        goto abandon;
    }
    int64_t last_ts = ssm_freq_advance(sc->freq, y.start, (long)y.n - 1);
    char st[40], np[32], refit[8], refit_every[32], last[40];
    snprintf(st, sizeof st, "%.6f", started);
    snprintf(np, sizeof np, "%zu", r->new_points);
    snprintf(refit, sizeof refit, "%s", r->refit ? "true" : "false");
    char next_refit[8];
    snprintf(next_refit, sizeof next_refit, "%s", kalman_refit ? "true" : "false");
    snprintf(refit_every, sizeof refit_every, "%lld", (long long)sc->refit_every_s);
    ssmd_format_timestamp(last_ts, last, sizeof last);
    ssmd_strbuf models = {0};
    ssmd_sb_appendf(&models, "{");
    for (size_t k = 0; k < nm; k++) {
        if (!slots[k].ok) continue;
        ssmd_sb_appendf(&models, "%s", models.len > 1 ? "," : "");
        ssmd_sb_json_string(&models, slots[k].spec); /* a JSON string is a valid array element */
    }
    ssmd_sb_appendf(&models, "}");
    /* One round trip: draw the run id, forecasts and states (which refer to it through
     * currval), the series row (watermark, schedule, lease back), retention, the run row
     * (its duration measured by the server at the end), COMMIT. */
    int nq = 0, bad = 0;
    if (PQenterPipelineMode(conn) != 1 || !send_stmt(conn, o, Q_NEXTVAL, NULL, NULL, NULL, 0)) {
        ssmd_db_error(conn, NULL, "writing the cycle", err, sizeof err);
        bad = 1;
    } else {
        nq++;
    }
    if (!bad) bad = send_forecasts(conn, o, series_id, slots, nm, &nq, err, sizeof err);
    for (size_t k = 0; k < nm && !bad; k++)
        if (slots[k].ok) bad = send_model_state(conn, o, series_id, &slots[k], err, sizeof err), nq += !bad;
    if (!bad) {
        const char *ps[] = {idtext, last, every, next_refit, refit_every, failures.len ? ssmd_sb_str(&failures) : NULL, st,
                            o->lease_owner, cadence};
        bad = !send_stmt(conn, o, Q_SERIES_OK, ps, NULL, NULL, 0);
        nq += !bad;
    }
    if (!bad && sc->retention_s > 0) {
        /* retention: forecasts issued longer ago than `retention` go, in this transaction */
        char keep[32];
        snprintf(keep, sizeof keep, "%lld", (long long)sc->retention_s);
        const char *pr[] = {idtext, keep};
        bad = !send_stmt(conn, o, Q_RETENTION, pr, NULL, NULL, 0);
        nq += !bad;
    }
    if (!bad) {
        const char *prun[] = {idtext, o->instance, st, np, refit, failures.len ? ssmd_sb_str(&failures) : NULL,
                              ssmd_sb_str(&models), last};
        bad = models.failed || !send_stmt(conn, o, Q_RUN_OK, prun, NULL, NULL, 0);
        nq += !bad;
    }
    if (!bad) {
        bad = PQsendQueryParams(conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) != 1;
        nq += !bad;
    }
    if (bad && !err[0]) ssmd_db_error(conn, NULL, "writing the cycle", err, sizeof err);
    ssmd_sb_free(&models);
    ssmd_sb_free(&failures);
    if (PQpipelineStatus(conn) != PQ_PIPELINE_OFF) {
        char perr[1024] = "";
        if (pipeline_finish(conn, nq, NULL, perr, sizeof perr) != 0 && !bad) {
            snprintf(err, sizeof err, "%s", perr);
            bad = 1;
        }
    }
    if (bad) goto fail;
    in_tx = 0;
    r->status = SSMD_CYCLE_OK;
    for (size_t k = 0; k < nm; k++)
        if (!slots[k].ok && !r->error[0]) snprintf(r->error, sizeof r->error, "%s", slots[k].error);
    goto done;

abandon:
    if (in_tx) {
        char ignore[256];
        ssmd_db_exec(conn, "ROLLBACK", ignore, sizeof ignore);
    }
    r->status = SSMD_CYCLE_ABANDONED;
    snprintf(r->error, sizeof r->error, "cycle abandoned at shutdown");
    goto done;

fail:
    if (in_tx) {
        char ignore[256];
        ssmd_db_exec(conn, "ROLLBACK", ignore, sizeof ignore);
    }
    r->status = SSMD_CYCLE_ERROR;
    snprintf(r->error, sizeof r->error, "%s", err);
    if (series_id && PQstatus(conn) == CONNECTION_OK) record_failure(conn, series_id, sc, o, started, err);
done:
    PQclear(states);
    PQclear(newer);
    for (size_t k = 0; k < nm; k++) slot_free(&slots[k]);
    free(slots);
    ssmd_points_free(&pts);
    ssm_series_free(&y);
    r->seconds = now_seconds() - started;
}
