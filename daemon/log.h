/*
 * daemon/log.h — the one logging function of ssmd. Only daemon/ logs; libraries return
 * errors. Lines go to stderr: with journald priority prefixes ("<3>") when stderr is
 * connected to the journal (JOURNAL_STREAM set, as under systemd), plain with a level
 * word otherwise. Connection strings are passed through ssmd_log_redact_dsn first so a
 * password never reaches a log line.
 */
#ifndef SSMD_LOG_H
#define SSMD_LOG_H

#include <stddef.h>

#include "model.h"

typedef enum ssmd_log_level {
    SSMD_LOG_ERROR = 3,
    SSMD_LOG_WARNING = 4,
    SSMD_LOG_NOTICE = 5,
    SSMD_LOG_INFO = 6,
    SSMD_LOG_DEBUG = 7
} ssmd_log_level;

/* Lines above this level are dropped (default INFO; --verbose sets DEBUG). */
void ssmd_log_set_level(ssmd_log_level max_level);
void ssmd_log(ssmd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs an ssm_error as "context: message", then its detail and hint lines. */
void ssmd_log_error(const char *context, const ssm_error *err);
/* Copies dsn into out with any password (password=..., or user:pass@ in a URI) masked. */
void ssmd_log_redact_dsn(const char *dsn, char *out, size_t len);

#endif
