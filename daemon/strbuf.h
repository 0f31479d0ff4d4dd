/*
 * daemon/strbuf.h — a growable string for building JSON, COPY data and messages.
 * An allocation failure sets `failed` and later appends do nothing, so callers check once
 * at the end instead of after every append.
 */
#ifndef SSMD_STRBUF_H
#define SSMD_STRBUF_H

#include <stddef.h>

typedef struct ssmd_strbuf {
    char *data;     /* NUL-terminated (an empty buffer's data may be NULL: use ssmd_sb_str) */
    size_t len, cap;
    int failed;
} ssmd_strbuf;

void ssmd_sb_appendf(ssmd_strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ssmd_sb_append(ssmd_strbuf *sb, const char *s, size_t n);
/* Appends s as a JSON string literal, quotes included. */
void ssmd_sb_json_string(ssmd_strbuf *sb, const char *s);
/* Appends a JSON number, or null when v is not finite. */
void ssmd_sb_json_number(ssmd_strbuf *sb, double v);
const char *ssmd_sb_str(const ssmd_strbuf *sb);
void ssmd_sb_reset(ssmd_strbuf *sb);
void ssmd_sb_free(ssmd_strbuf *sb);

#endif
