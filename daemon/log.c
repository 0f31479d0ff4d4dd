/*
 * daemon/log.c — stderr logging with journald priority prefixes under systemd.
 * Each line is written with a single write() so lines from worker threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int log_max_level = SSMD_LOG_INFO;

void ssmd_log_set_level(ssmd_log_level max_level) { atomic_store(&log_max_level, (int)max_level); }

static const char *level_word(ssmd_log_level level) {
    switch (level) {
    case SSMD_LOG_ERROR: return "ERROR";
    case SSMD_LOG_WARNING: return "WARNING";
    case SSMD_LOG_NOTICE: return "NOTICE";
    case SSMD_LOG_INFO: return "INFO";
    default: return "DEBUG";
    }
}

void ssmd_log(ssmd_log_level level, const char *fmt, ...) {
    if ((int)level > atomic_load(&log_max_level)) return;
    char line[2048];
    size_t n;
    if (getenv("JOURNAL_STREAM")) n = (size_t)snprintf(line, sizeof line, "<%d>", (int)level);
    else n = (size_t)snprintf(line, sizeof line, "ssmd: %s: ", level_word(level));
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    n += (size_t)k < sizeof line - n - 1 ? (size_t)k : sizeof line - n - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void ssmd_log_error(const char *context, const ssm_error *err) {
    if (context && *context) ssmd_log(SSMD_LOG_ERROR, "%s: %s", context, err->message);
    else ssmd_log(SSMD_LOG_ERROR, "%s", err->message);
    if (err->detail[0]) ssmd_log(SSMD_LOG_ERROR, "DETAIL: %s", err->detail);
    if (err->hint[0]) ssmd_log(SSMD_LOG_ERROR, "HINT: %s", err->hint);
}

/* Replaces out[from, to) with "***", keeping the result NUL-terminated within len. */
static void mask_span(char *out, size_t len, size_t from, size_t to) {
    char *rest = strdup(out + to);
    if (!rest) {
        snprintf(out, len, "(dsn hidden)");
        return;
    }
    snprintf(out + from, len - from, "***%s", rest);
    free(rest);
}

void ssmd_log_redact_dsn(const char *dsn, char *out, size_t len) {
    if (!dsn) {
        snprintf(out, len, "(libpq defaults)");
        return;
    }
    snprintf(out, len, "%s", dsn);
    /* URI form: scheme://user:secret@host -> scheme://user:***@host */
    char *scheme = strstr(out, "://");
    if (scheme) {
        char *at = strchr(scheme + 3, '@');
        char *colon = strchr(scheme + 3, ':');
        if (at && colon && colon < at) mask_span(out, len, (size_t)(colon + 1 - out), (size_t)(at - out));
    }
    /* key/value form and URI query: password=secret -> password=*** */
    size_t pos = 0;
    char *p;
    while ((p = strstr(out + pos, "password=")) != NULL) {
        size_t v = (size_t)(p - out) + 9, e = v;
        if (out[e] == '\'') {
            e++;
            while (out[e] && out[e] != '\'') e++;
            if (out[e]) e++;
        } else {
            while (out[e] && out[e] != ' ' && out[e] != '&') e++;
        }
        mask_span(out, len, v, e);
        pos = v + 3 < strlen(out) ? v + 3 : strlen(out);
    }
}
