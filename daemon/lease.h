/*
 * daemon/lease.h — how several ssmd instances share the series of one database.
 *
 * Work is leased per series in ssm.series (lease_owner, lease_expires). An instance
 * claims due series with UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED), so
 * two instances never claim the same row; it renews the leases of the series it holds by
 * heartbeat; the cycle checks the lease under the series' row lock and gives it back in
 * its own transaction. A killed instance's leases simply run out, and the other instances
 * claim its series once lease_expires has passed.
 *
 * Every function works on the scheduler's own connection, where ssmd_lease_register has
 * filled the session's temporary table ssmd_mine with this instance's series (the ids of
 * the configured series and their `every`), so claims only take configured series.
 * Functions return 0, or -1 with a message in err (nothing is logged here).
 */
#ifndef SSMD_LEASE_H
#define SSMD_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "config.h"

/* Registers the configured series in ssm.series (inserting or updating their rows) and
 * fills ssmd_mine; ids[i] receives the id of cfg->series[i], or 0 when only != NULL and
 * the series is not `only`. */
int ssmd_lease_register(PGconn *conn, const ssmd_config *cfg, const char *only, int64_t *ids,
                        char *err, size_t errlen);

/* Claims up to max due series not leased by a live instance (next_run order), leasing
 * them to owner for lease_s seconds. out (room for max) receives their ids, *n how many. */
int ssmd_lease_claim(PGconn *conn, const char *owner, int64_t lease_s, int max, int64_t *out, int *n,
                     char *err, size_t errlen);

/* Extends owner's leases of ids to now + lease_s. Rows locked by a running cycle are
 * skipped (that cycle holds the series anyway and releases the lease when it commits). */
int ssmd_lease_renew(PGconn *conn, const char *owner, int64_t lease_s, const int64_t *ids, int n,
                     char *err, size_t errlen);

/* Gives back owner's leases of ids (n >= 0), or all of owner's leases except those in ids
 * when except is set. Locked rows are skipped, as above. */
int ssmd_lease_release(PGconn *conn, const char *owner, const int64_t *ids, int n, int except,
                       char *err, size_t errlen);

/* Seconds until the next of this instance's series falls due (negative: overdue); a
 * series leased by a live instance counts from its lease expiry. *seconds is 3600 when
 * no series is registered. */
int ssmd_lease_next_due(PGconn *conn, const char *owner, double *seconds, char *err, size_t errlen);

/* New observations arrived (LISTEN ssm_observations): series ids (n > 0), or every
 * registered series when n == 0. Those whose last cycle is more than `every` ago are made
 * due now rather than at their next poll. *woken receives how many. */
int ssmd_lease_wake(PGconn *conn, const int64_t *ids, int n, int *woken, char *err, size_t errlen);

#endif
