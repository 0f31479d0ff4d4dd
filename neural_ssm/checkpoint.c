/*
 * neural_ssm/checkpoint.c — the versioned little-endian checkpoint of a forecaster:
 *
 *   "NSSMCKPT" | u32 version | u32 architecture bytes | architecture | normalisation |
 *   u32 tensors | tensor table | u64 parameters | f32 data | u32 CRC32 of all before it
 *
 * (field by field in neural_ssm/README.md). Every integer is written byte by byte, so the
 * file is the same on any host and for any backend. Loading checks the size, the magic,
 * the version and the CRC before it trusts a single field, then reads through a bounds-
 * checked cursor, validates the architecture and requires the tensor table to match the
 * one the architecture implies: truncated, corrupted or mismatched input gives
 * NSSM_EFORMAT with a message, never a crash.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAGIC "NSSMCKPT"
#define NORM_INSTANCE_FIRST_HALF 1

uint32_t nssm_crc32(const uint8_t *data, size_t len)
{
    /* IEEE 802.3 polynomial (reflected 0xEDB88320), bitwise: no table, no global state */
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return crc ^ 0xFFFFFFFFu;
}

/* ---- writer -------------------------------------------------------------------------------- */

typedef struct writer {
    uint8_t *buf;
    size_t len, cap;
    int oom;
} writer;

static void put(writer *w, const void *src, size_t n)
{
    if (w->oom)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *nb = realloc(w->buf, cap);
        if (!nb) {
            w->oom = 1;
            return;
        }
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, src, n);
    w->len += n;
}

static void put_u16(writer *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(w, b, 2);
}

static void put_u32(writer *w, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put(w, b, 4);
}

static void put_u64(writer *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put(w, b, 8);
}

static void put_f64(writer *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    put_u64(w, u);
}

static void put_f32(writer *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    put_u32(w, u);
}

static void put_arch(writer *w, const nssm_config *c)
{
    put_u32(w, (uint32_t)c->mixer);
    put_u32(w, (uint32_t)c->context);
    put_u32(w, (uint32_t)c->horizon);
    put_u32(w, (uint32_t)c->d_model);
    put_u32(w, (uint32_t)c->n_layers);
    put_u32(w, (uint32_t)c->d_state);
    put_u32(w, (uint32_t)c->expand);
    put_u32(w, (uint32_t)c->d_conv);
    put_u32(w, (uint32_t)c->dt_rank);
    put_u32(w, (uint32_t)c->s4d_inv);
    put_u32(w, (uint32_t)c->n_periods);
    for (int i = 0; i < c->n_periods; i++)
        put_f64(w, c->periods[i]);
    put_u32(w, (uint32_t)c->nq);
    for (int j = 0; j < c->nq; j++)
        put_f64(w, c->quantiles[j]);
}

int nssm_checkpoint_save(const nssm_model *m, uint8_t **out, size_t *len, nssm_error *err)
{
    *out = NULL;
    *len = 0;
    const nssm_config *c = nssm_model_config(m);
    writer w = {0};
    put(&w, MAGIC, 8);
    put_u32(&w, NSSM_CHECKPOINT_VERSION);
    writer arch = {0};
    put_arch(&arch, c);
    put_u32(&w, (uint32_t)arch.len);
    if (arch.buf)
        put(&w, arch.buf, arch.len);
    w.oom |= arch.oom;
    free(arch.buf);
    /* normalisation: instance statistics over the first half of the context */
    put_u32(&w, NORM_INSTANCE_FIRST_HALF);
    put_u32(&w, 2);        /* statistics window = context / 2 */
    put_f64(&w, 1e-5);     /* sigma floor factor: sigma = sd + 1e-5 (|mu| + 1) */
    int nt = nssm_model_num_tensors(m);
    put_u32(&w, (uint32_t)nt);
    for (int i = 0; i < nt; i++) {
        const nssm_tensor *t = nssm_model_tensor(m, i);
        size_t nl = strlen(t->name);
        put_u16(&w, (uint16_t)nl);
        put(&w, t->name, nl);
        put_u32(&w, (uint32_t)t->ndim);
        for (int k = 0; k < t->ndim; k++)
            put_u32(&w, (uint32_t)t->shape[k]);
        put_u64(&w, t->offset);
        put_u64(&w, t->size);
    }
    size_t np = nssm_model_num_params(m);
    put_u64(&w, np);
    float *p = malloc(sizeof(float) * (np ? np : 1));
    if (!p) {
        free(w.buf);
        return nssm_error_set(err, NSSM_ENOMEM, "out of memory writing a checkpoint");
    }
    nssm_model_get_params(m, p, err);
    for (size_t i = 0; i < np; i++)
        put_f32(&w, p[i]);
    free(p);
    if (!w.oom)
        put_u32(&w, nssm_crc32(w.buf, w.len));
    if (w.oom) {
        free(w.buf);
        return nssm_error_set(err, NSSM_ENOMEM, "out of memory writing a checkpoint");
    }
    *out = w.buf;
    *len = w.len;
    return NSSM_OK;
}

/* ---- reader -------------------------------------------------------------------------------- */

typedef struct reader {
    const uint8_t *p;
    size_t len, pos;
    int short_read;
} reader;

static const uint8_t *get(reader *r, size_t n)
{
    if (r->short_read || n > r->len - r->pos) {
        r->short_read = 1;
        return NULL;
    }
    const uint8_t *q = r->p + r->pos;
    r->pos += n;
    return q;
}

static uint64_t get_le(reader *r, int n)
{
    const uint8_t *q = get(r, (size_t)n);
    uint64_t v = 0;
    if (q)
        for (int i = 0; i < n; i++)
            v |= (uint64_t)q[i] << (8 * i);
    return v;
}

static double get_f64(reader *r)
{
    uint64_t u = get_le(r, 8);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

static int fail(nssm_error *err, const char *detail_fmt, long a, long b)
{
    nssm_error_set(err, NSSM_EFORMAT, "invalid neural checkpoint");
    nssm_error_detail(err, detail_fmt, a, b);
    return NSSM_EFORMAT;
}

int nssm_checkpoint_load(nssm_model **out, const uint8_t *data, size_t len,
                         const nssm_backend *be, nssm_error *err)
{
    *out = NULL;
    if (!data || len < 8 + 4 + 4 + 4)
        return fail(err, "%ld bytes is shorter than the smallest checkpoint (%ld bytes)",
                    (long)len, 20);
    if (memcmp(data, MAGIC, 8) != 0) {
        nssm_error_set(err, NSSM_EFORMAT, "not a neural checkpoint");
        nssm_error_detail(err, "the data does not start with \"%s\"", MAGIC);
        return NSSM_EFORMAT;
    }
    reader r = {data, len - 4, 8, 0};
    uint32_t version = (uint32_t)get_le(&r, 4);
    if (version == 0 || version > NSSM_CHECKPOINT_VERSION) {
        nssm_error_set(err, NSSM_EFORMAT, "unsupported neural checkpoint version %u", version);
        nssm_error_hint(err, "this build reads versions 1..%d", NSSM_CHECKPOINT_VERSION);
        return NSSM_EFORMAT;
    }
    uint32_t stored = (uint32_t)data[len - 4] | (uint32_t)data[len - 3] << 8 |
                      (uint32_t)data[len - 2] << 16 | (uint32_t)data[len - 1] << 24;
    uint32_t crc = nssm_crc32(data, len - 4);
    if (stored != crc) {
        nssm_error_set(err, NSSM_EFORMAT, "neural checkpoint is truncated or corrupted");
        nssm_error_detail(err, "CRC32 mismatch: stored %08x, computed %08x over %zu bytes",
                          stored, crc, len - 4);
        return NSSM_EFORMAT;
    }
    uint32_t arch_len = (uint32_t)get_le(&r, 4);
    size_t arch_start = r.pos;
    nssm_config c;
    memset(&c, 0, sizeof c);
    c.mixer = (int)get_le(&r, 4);
    c.context = (int)get_le(&r, 4);
    c.horizon = (int)get_le(&r, 4);
    c.d_model = (int)get_le(&r, 4);
    c.n_layers = (int)get_le(&r, 4);
    c.d_state = (int)get_le(&r, 4);
    c.expand = (int)get_le(&r, 4);
    c.d_conv = (int)get_le(&r, 4);
    c.dt_rank = (int)get_le(&r, 4);
    c.s4d_inv = (int)get_le(&r, 4);
    uint32_t np_ = (uint32_t)get_le(&r, 4);
    if (np_ > NSSM_MAX_PERIODS)
        return fail(err, "%ld calendar periods (at most %ld)", (long)np_, NSSM_MAX_PERIODS);
    c.n_periods = (int)np_;
    for (int i = 0; i < c.n_periods; i++)
        c.periods[i] = get_f64(&r);
    uint32_t nq = (uint32_t)get_le(&r, 4);
    if (nq > NSSM_MAX_QUANTILES)
        return fail(err, "%ld quantile levels (at most %ld)", (long)nq, NSSM_MAX_QUANTILES);
    c.nq = (int)nq;
    for (int j = 0; j < c.nq; j++)
        c.quantiles[j] = get_f64(&r);
    if (r.short_read)
        return fail(err, "the architecture ends early (%ld of %ld bytes)", (long)(r.len - arch_start),
                    (long)arch_len);
    if (r.pos - arch_start != arch_len)
        return fail(err, "architecture section is %ld bytes, the header says %ld",
                    (long)(r.pos - arch_start), (long)arch_len);
    nssm_error cerr = {0};
    if (nssm_config_check(&c, &cerr)) {
        nssm_error_set(err, NSSM_EFORMAT, "invalid neural checkpoint");
        nssm_error_detail(err, "bad architecture: %s", cerr.detail);
        return NSSM_EFORMAT;
    }
    uint32_t norm_kind = (uint32_t)get_le(&r, 4);
    uint32_t norm_div = (uint32_t)get_le(&r, 4);
    double norm_eps = get_f64(&r);
    if (r.short_read)
        return fail(err, "the normalisation section ends early at byte %ld of %ld", (long)r.pos,
                    (long)len);
    if (norm_kind != NORM_INSTANCE_FIRST_HALF || norm_div != 2 || norm_eps != 1e-5)
        return fail(err, "unknown normalisation %ld (window divisor %ld)", (long)norm_kind,
                    (long)norm_div);

    nssm_model *m;
    int rc = nssm_model_create(&m, &c, 1, be, err);
    if (rc)
        return rc == NSSM_ENOMEM ? rc : fail(err, "cannot build the architecture (%ld)", rc, 0);
    uint32_t nt = (uint32_t)get_le(&r, 4);
    if (!r.short_read && nt != (uint32_t)nssm_model_num_tensors(m)) {
        int expected = nssm_model_num_tensors(m);
        nssm_model_free(m);
        nssm_error_set(err, NSSM_EFORMAT, "neural checkpoint does not match its architecture");
        nssm_error_detail(err, "%u tensors, the architecture has %d", nt, expected);
        return NSSM_EFORMAT;
    }
    for (uint32_t i = 0; i < nt && !r.short_read; i++) {
        const nssm_tensor *t = nssm_model_tensor(m, (int)i);
        size_t nl = (size_t)get_le(&r, 2);
        const uint8_t *name = get(&r, nl);
        uint32_t ndim = (uint32_t)get_le(&r, 4);
        int ok = name && nl == strlen(t->name) && memcmp(name, t->name, nl) == 0 &&
                 ndim == (uint32_t)t->ndim;
        for (uint32_t k = 0; ok && k < ndim; k++)
            ok = get_le(&r, 4) == (uint64_t)t->shape[k];
        ok = ok && get_le(&r, 8) == t->offset && get_le(&r, 8) == t->size;
        if (r.short_read)
            break;
        if (!ok) {
            nssm_error_set(err, NSSM_EFORMAT, "neural checkpoint does not match its architecture");
            nssm_error_detail(err, "tensor %u differs from \"%s\" in name, shape or offset", i,
                              t->name);
            nssm_model_free(m);
            return NSSM_EFORMAT;
        }
    }
    uint64_t np = get_le(&r, 8);
    if (!r.short_read && np != nssm_model_num_params(m)) {
        long expected = (long)nssm_model_num_params(m);
        nssm_model_free(m);
        return fail(err, "%ld parameters, the architecture has %ld", (long)np, expected);
    }
    if (r.short_read || r.len - r.pos != np * 4) {
        nssm_model_free(m);
        return fail(err, "parameter data is %ld bytes, expected %ld",
                    r.short_read ? 0L : (long)(r.len - r.pos), (long)(np * 4));
    }
    float *p = malloc(sizeof(float) * (np ? np : 1));
    if (!p) {
        nssm_model_free(m);
        return nssm_error_set(err, NSSM_ENOMEM, "out of memory reading a checkpoint");
    }
    for (size_t i = 0; i < np; i++) {
        uint32_t u = (uint32_t)get_le(&r, 4);
        memcpy(&p[i], &u, 4);
    }
    rc = nssm_model_set_params(m, p, err);
    free(p);
    if (rc) {
        nssm_model_free(m);
        nssm_error_set(err, NSSM_EFORMAT, "invalid neural checkpoint");
        nssm_error_detail(err, "a parameter is NaN or infinite");
        return NSSM_EFORMAT;
    }
    *out = m;
    return NSSM_OK;
}
