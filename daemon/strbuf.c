/* daemon/strbuf.c — see strbuf.h. */
#include "strbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sb_reserve(ssmd_strbuf *sb, size_t extra) {
    if (sb->failed) return -1;
    if (sb->len + extra + 1 <= sb->cap) return 0;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < sb->len + extra + 1) cap *= 2;
    char *p = realloc(sb->data, cap);
    if (!p) {
        sb->failed = 1;
        return -1;
    }
    sb->data = p;
    sb->cap = cap;
    return 0;
}

void ssmd_sb_append(ssmd_strbuf *sb, const char *s, size_t n) {
    if (sb_reserve(sb, n)) return;
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void ssmd_sb_appendf(ssmd_strbuf *sb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || sb_reserve(sb, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void ssmd_sb_json_string(ssmd_strbuf *sb, const char *s) {
    ssmd_sb_append(sb, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': ssmd_sb_append(sb, "\\\"", 2); break;
        case '\\': ssmd_sb_append(sb, "\\\\", 2); break;
        case '\n': ssmd_sb_append(sb, "\\n", 2); break;
        case '\r': ssmd_sb_append(sb, "\\r", 2); break;
        case '\t': ssmd_sb_append(sb, "\\t", 2); break;
        default:
            if (*p < 0x20) ssmd_sb_appendf(sb, "\\u%04x", *p);
            else ssmd_sb_append(sb, (const char *)p, 1);
        }
    }
    ssmd_sb_append(sb, "\"", 1);
}

void ssmd_sb_json_number(ssmd_strbuf *sb, double v) {
    if (isfinite(v)) {
        /* the shortest of 15 or 17 digits that reads back as the same double */
        char buf[32];
        snprintf(buf, sizeof buf, "%.15g", v);
        if (strtod(buf, NULL) != v) snprintf(buf, sizeof buf, "%.17g", v);
        ssmd_sb_append(sb, buf, strlen(buf));
    } else ssmd_sb_append(sb, "null", 4);
}

const char *ssmd_sb_str(const ssmd_strbuf *sb) { return sb->data ? sb->data : ""; }

void ssmd_sb_reset(ssmd_strbuf *sb) {
    sb->len = 0;
    if (sb->data) sb->data[0] = '\0';
}

void ssmd_sb_free(ssmd_strbuf *sb) {
    free(sb->data);
    memset(sb, 0, sizeof *sb);
}
