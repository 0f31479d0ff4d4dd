/*
 * daemon/csvio.h — timestamps and `ts,value` CSV files, as `ssmd import`, `forecast`,
 * `fit`, `train` and `backtest --csv` read them.
 *
 * A CSV has a header line and two columns: an ISO 8601 timestamp (a date "1871-01-01",
 * or "2000-06-05T00:30:00Z", "2000-06-05 00:30:00+02:00"; no offset means UTC) and a
 * number. An empty value (or NA) is a missing observation. Errors name the file and line.
 */
#ifndef SSMD_CSVIO_H
#define SSMD_CSVIO_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* Parses an ISO 8601 date or date-time into Unix seconds (UTC); 0 on success. */
int ssmd_parse_timestamp(const char *text, int64_t *out);
/* "YYYY-MM-DDTHH:MM:SSZ" (RFC 3339, UTC). */
void ssmd_format_timestamp(int64_t t, char *buf, size_t len);

typedef struct ssmd_points {
    size_t n, cap;
    int64_t *ts;
    double *values;      /* NaN for a missing observation */
    size_t *lines;       /* source line of each point, for messages */
} ssmd_points;

int ssmd_points_push(ssmd_points *p, int64_t ts, double value, size_t line);
void ssmd_points_free(ssmd_points *p);

/* Reads every row of a ts,value CSV ("-" reads standard input). Returns 0, or -1 with
 * "FILE:LINE: what is wrong" in err. Points are returned in file order. */
int ssmd_csv_read_points(const char *path, ssmd_points *out, char *err, size_t errlen);

/* Reads a CSV onto its grid: freq_or_null, or the frequency inferred from the timestamps.
 * Rejects duplicate / unordered / off-grid timestamps naming the line. */
int ssmd_csv_read(const char *path, const char *name, const ssm_freq *freq_or_null,
                  ssm_series *out, char *err, size_t errlen);

#endif
