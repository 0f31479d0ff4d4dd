/*
 * tests/daemon/test_config.c — ssmd.yaml loading (daemon/config.c).
 *
 * Good files (tests/daemon/configs/minimal.yaml, full.yaml, etc/ssmd.yaml) load to the
 * values written in them, with defaults inherited as documented. Each bad_*.yaml file
 * holds its expected message on its first line ("# expect: LINE:COL: message"); the
 * loader's message must start with the file's path followed by exactly that, so every
 * error is checked for its location as well as its words. Then the robustness checks:
 * every prefix of the full files (a truncated file must load or fail with a located
 * message, never crash or leak), every allocation made to fail in turn (through the
 * linker's --wrap, see CMakeLists.txt), a print/reload round trip, and etc/CONFIG.md
 * compared with what ssmd_config_describe writes now.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#ifndef SSMD_TEST_CONFIGS
#error "SSMD_TEST_CONFIGS (the tests/daemon/configs folder) must be defined"
#endif
#ifndef SSMD_ETC_DIR
#error "SSMD_ETC_DIR (the etc folder) must be defined"
#endif
#ifndef SSMD_TEST_OUT
#define SSMD_TEST_OUT "."
#endif

/* ---- allocation failure injection ---------------------------------------------------
 * The test is linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc, so calls made
 * from this program's own objects (config.c, models/) come here; libyaml's and libc's
 * internal allocations do not. fail_at < 0: never fail. */
static long alloc_calls, fail_at = -1;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
static int alloc_fails(void) { return fail_at >= 0 && alloc_calls++ == fail_at; }
void *__wrap_malloc(size_t n) { return alloc_fails() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return alloc_fails() ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return alloc_fails() ? NULL : __real_realloc(p, n); }

/* ---- helpers ---------------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = __real_malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

static int load(const char *name, ssmd_config *cfg, char *err, size_t errlen) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", SSMD_TEST_CONFIGS, name);
    int rc = ssmd_config_load(path, cfg, err, errlen);
    if (rc) print_message("%s\n", err);
    return rc;
}

/* Parses text given inline; returns rc and leaves the message in err. */
static int parse(const char *text, ssmd_config *cfg, char *err, size_t errlen) {
    return ssmd_config_parse("t.yaml", text, strlen(text), cfg, err, errlen);
}

/* Checks that text fails with a message starting with "t.yaml:" + want. */
static void expect_error(const char *text, const char *want) {
    ssmd_config cfg;
    char err[1024];
    int rc = parse(text, &cfg, err, sizeof err);
    if (rc == 0) {
        ssmd_config_free(&cfg);
        fail_msg("loaded, expected an error starting with t.yaml:%s", want);
    }
    char full[1100];
    snprintf(full, sizeof full, "t.yaml:%s", want);
    if (strncmp(err, full, strlen(full)) != 0)
        fail_msg("got      %s\nexpected %s...", err, full);
    /* a failed load leaves a zeroed config (nothing to free, nothing dangling) */
    assert_null(cfg.series);
    assert_null(cfg.path);
    assert_int_equal(cfg.nseries, 0);
}

/* "FILE:LINE:COL: " with positive LINE and COL at the start of err. */
static int located(const char *err, const char *file, long *line, long *col) {
    size_t fl = strlen(file);
    if (strncmp(err, file, fl) != 0 || err[fl] != ':') return 0;
    char *end;
    *line = strtol(err + fl + 1, &end, 10);
    if (*end != ':' || *line < 1) return 0;
    *col = strtol(end + 1, &end, 10);
    return *end == ':' && end[1] == ' ' && *col >= 1 && end[2] != '\0';
}

/* ---- good files -------------------------------------------------------------------- */

static void test_minimal(void **state) {
    (void)state;
    ssmd_config cfg;
    char err[512];
    assert_int_equal(load("minimal.yaml", &cfg, err, sizeof err), 0);
    /* built-in defaults */
    assert_null(cfg.dsn);
    assert_int_equal(cfg.statement_timeout_ms, 30000);
    assert_int_equal(cfg.workers, 2);
    assert_string_equal(cfg.device, "auto");
    assert_int_equal(cfg.lease_s, 300);
    assert_non_null(strstr(cfg.path, "minimal.yaml"));
    assert_int_equal(cfg.nseries, 1);
    const ssmd_series_cfg *s = &cfg.series[0];
    assert_string_equal(s->name, "nile");
    assert_null(s->group);
    assert_int_equal(s->has_freq, 1);
    assert_int_equal(s->freq.unit, SSM_FREQ_YEAR);
    assert_int_equal(s->freq.count, 1);
    assert_int_equal(s->source.builtin, 1);
    assert_null(s->source.table);
    assert_int_equal(s->source.line, 5);
    assert_int_equal(s->every_s, 3600);
    assert_int_equal(s->refit_every_s, 86400);
    assert_int_equal(s->retrain_every_s, 7 * 86400);
    assert_int_equal(s->retention_s, 0);
    assert_int_equal(s->horizon, 24);
    assert_int_equal(s->season, 0);
    assert_int_equal(s->nq, 3);
    assert_true(s->quantiles[0] == 0.05 && s->quantiles[1] == 0.5 && s->quantiles[2] == 0.95);
    assert_int_equal(s->nmodels, 1);
    assert_string_equal(s->models[0], "local_level");
    assert_int_equal(s->model_lines[0], 0); /* built in: no position */
    assert_int_equal(s->model_cols[0], 0);
    assert_int_equal(s->line, 3);
    ssmd_config_free(&cfg);
    ssmd_config_free(&cfg); /* freeing twice is harmless: free zeroes the struct */
}

static void test_full(void **state) {
    (void)state;
    ssmd_config cfg;
    char err[512];
    assert_int_equal(load("full.yaml", &cfg, err, sizeof err), 0);
    assert_string_equal(cfg.dsn, "host=db.example dbname=ssmd user=ssmd");
    assert_int_equal(cfg.statement_timeout_ms, 1500);
    assert_int_equal(cfg.workers, 4);
    assert_string_equal(cfg.device, "cuda");
    assert_int_equal(cfg.lease_s, 600);
    assert_int_equal(cfg.defaults.every_s, 1800);
    assert_int_equal(cfg.defaults.has_freq, 0);
    assert_int_equal(cfg.nseries, 3);

    /* nile: everything from defaults */
    const ssmd_series_cfg *n = ssmd_config_find(&cfg, "nile");
    assert_ptr_equal(n, &cfg.series[0]);
    assert_int_equal(n->every_s, 1800);
    assert_int_equal(n->refit_every_s, 12 * 3600);
    assert_int_equal(n->retrain_every_s, 14 * 86400);
    assert_int_equal(n->retention_s, 90 * 86400);
    assert_int_equal(n->horizon, 48);
    assert_int_equal(n->season, 7);
    assert_int_equal(n->nq, 3);
    assert_true(n->quantiles[0] == 0.1 && n->quantiles[2] == 0.9);
    assert_int_equal(n->nmodels, 2);
    assert_string_equal(n->models[1], "naive");
    assert_int_equal(n->model_lines[1], 16); /* where defaults.models wrote it */
    assert_int_equal(n->model_cols[1], 25);
    /* the series' copies are its own, not the defaults' arrays */
    assert_ptr_not_equal(n->quantiles, cfg.defaults.quantiles);
    assert_ptr_not_equal(n->models, cfg.defaults.models);

    /* web_cpu: everything overridden */
    const ssmd_series_cfg *w = ssmd_config_find(&cfg, "web_cpu");
    assert_non_null(w);
    assert_int_equal(w->freq.unit, SSM_FREQ_MINUTE);
    assert_int_equal(w->freq.count, 5);
    assert_int_equal(w->horizon, 288);
    assert_int_equal(w->season, 288);
    assert_string_equal(w->group, "web");
    assert_int_equal(w->every_s, 5400);
    assert_int_equal(w->refit_every_s, 86400);
    assert_int_equal(w->retrain_every_s, 86400);
    assert_int_equal(w->retention_s, 0);
    assert_int_equal(w->nq, 5);
    assert_true(w->quantiles[1] == 0.25 && w->quantiles[3] == 0.75);
    assert_int_equal(w->nmodels, 3);
    assert_string_equal(w->models[1], "sarima(1,0,1)");
    assert_string_equal(w->models[2], "sarima(0,1,1)(0,1,1)[12]");
    assert_int_equal(w->model_lines[2], 31);
    assert_int_equal(w->model_cols[2], 44);
    assert_int_equal(w->source.builtin, 0);
    assert_string_equal(w->source.table, "metrics.cpu");
    assert_string_equal(w->source.time_col, "ts");
    assert_string_equal(w->source.value_col, "load");
    assert_int_equal(w->source.nwhere, 4);
    assert_string_equal(w->source.where_keys[0], "host");
    assert_string_equal(w->source.where_values[0], "web01");
    assert_string_equal(w->source.where_keys[1], "dc");
    assert_string_equal(w->source.where_values[1], "eu-1");
    assert_string_equal(w->source.where_keys[2], "a b");
    assert_string_equal(w->source.where_values[2], "null"); /* quoted: text, not a null */
    assert_string_equal(w->source.where_values[3], "x\ty");
    assert_int_equal(w->line, 21);

    const ssmd_series_cfg *m = ssmd_config_find(&cfg, "-.sales.monthly-eu_2");
    assert_non_null(m);
    assert_int_equal(m->freq.unit, SSM_FREQ_MONTH);
    assert_string_equal(m->source.table, "sales");
    assert_string_equal(m->source.time_col, "month");
    assert_int_equal(m->source.nwhere, 0);
    assert_int_equal(m->source.line, 36);

    assert_null(ssmd_config_find(&cfg, "web"));
    assert_null(ssmd_config_find(&cfg, NULL));
    assert_null(ssmd_config_find(NULL, "nile"));
    ssmd_config_free(&cfg);
}

static void test_defaults_frequency(void **state) {
    (void)state;
    ssmd_config cfg;
    char err[512];
    assert_int_equal(load("defaults_frequency.yaml", &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.series[0].freq.unit, SSM_FREQ_HOUR);
    assert_int_equal(cfg.series[0].has_freq, 1);
    assert_int_equal(cfg.series[1].freq.unit, SSM_FREQ_DAY);
    ssmd_config_free(&cfg);
}

/* The shipped example must load, and say what its comments say. */
static void test_example(void **state) {
    (void)state;
    ssmd_config cfg;
    char err[512];
    int rc = ssmd_config_load(SSMD_ETC_DIR "/ssmd.yaml", &cfg, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_string_equal(cfg.dsn, "postgresql:///ssmd");
    assert_int_equal(cfg.nseries, 3);
    const ssmd_series_cfg *w = ssmd_config_find(&cfg, "web_cpu");
    assert_non_null(w);
    assert_int_equal(w->source.nwhere, 1);
    assert_int_equal(w->retention_s, 90 * 86400);
    assert_string_equal(ssmd_config_find(&cfg, "web_cpu_02")->source.where_values[0], "web02");
    ssmd_config_free(&cfg);
}

static void test_small_cases(void **state) {
    (void)state;
    ssmd_config cfg;
    char err[512];
    /* empty sections, null and empty dsn, no series at all */
    assert_int_equal(parse("database:\ndefaults:\nseries:\n", &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.nseries, 0);
    assert_null(cfg.series);
    assert_int_equal(cfg.defaults.horizon, 24);
    ssmd_config_free(&cfg);
    assert_int_equal(parse("database: { dsn: ~ }\nseries: []\n", &cfg, err, sizeof err), 0);
    assert_null(cfg.dsn);
    ssmd_config_free(&cfg);
    assert_int_equal(parse("database: { dsn: \"\" }\n", &cfg, err, sizeof err), 0);
    assert_null(cfg.dsn);
    ssmd_config_free(&cfg);
    /* anchors and aliases are plain YAML and work */
    assert_int_equal(parse("defaults: { models: &m [naive, drift] }\n"
                           "series:\n"
                           "  - { name: a, frequency: 1h, source: builtin, models: *m }\n"
                           "  - { name: b, frequency: 1h, source: builtin, quantiles: [0.5] }\n",
                           &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.series[0].nmodels, 2);
    assert_string_equal(cfg.series[0].models[1], "drift");
    assert_int_equal(cfg.series[1].nq, 1);
    ssmd_config_free(&cfg);
    /* durations with several terms, ms for the statement timeout, 0 disables it */
    assert_int_equal(parse("database: { statement_timeout: 0 }\nlease: 1h30m\n", &cfg, err,
                           sizeof err), 0);
    assert_int_equal(cfg.statement_timeout_ms, 0);
    assert_int_equal(cfg.lease_s, 5400);
    ssmd_config_free(&cfg);
    /* quoted numbers are numbers */
    assert_int_equal(parse("workers: \"8\"\n", &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.workers, 8);
    ssmd_config_free(&cfg);
    /* where values that look like numbers stay text */
    assert_int_equal(parse("series:\n  - { name: a, frequency: 1h, source: { table: t, time: ts, "
                           "value: v, where: { id: 007, on: \"\" } } }\n", &cfg, err, sizeof err), 0);
    assert_string_equal(cfg.series[0].source.where_values[0], "007");
    assert_string_equal(cfg.series[0].source.where_values[1], "");
    ssmd_config_free(&cfg);
}

/* Errors that are awkward to keep in files: control bytes, bad UTF-8, NUL. */
static void test_inline_errors(void **state) {
    (void)state;
    expect_error("workers: 2\nlease: \x01\n", "2:8: invalid text: control characters are not allowed");
    expect_error("workers: 2\ndevice: \xff\n", "2:9: invalid text: invalid leading UTF-8 octet");
    expect_error("series:\n  - name: \"a\\0b\"\n", "2:11: series #1: name: contains a NUL character");
    expect_error("defaults: { models: [\"a\\0b\"] }\n", "1:22: defaults.models: item 1: expected a list");
    expect_error("database: { dsn: [a] }\n", "1:18: database.dsn: expected a string, got a list");
    expect_error("? [a]\n: 1\n", "1:3: expected a key name, got a list");
    expect_error("workers: 0\n", "1:10: workers: expected an integer from 1 to 256, got \"0\"");
    expect_error("workers: 99999999999999999999999\n", "1:10: workers: expected an integer");
    expect_error("workers: 2.5\n", "1:10: workers: expected an integer");
    expect_error("workers:\n", "1:9: workers: expected an integer from 1 to 256, got nothing");
    expect_error("lease: 5s\n", "1:8: lease: invalid duration \"5s\": out of range");
    expect_error("defaults: { every: 0 }\n", "1:20: defaults.every: invalid duration \"0\": out of range");
    expect_error("defaults: { every: 500ms }\n", "1:20: defaults.every: invalid duration \"500ms\": unknown unit");
    expect_error("defaults: { quantiles: [0.5, nan] }\n", "1:30: defaults.quantiles: level \"nan\" not a number");
    expect_error("defaults: { quantiles: [0.5, 0x1] }\n", "1:30: defaults.quantiles: level \"0x1\" out of range");
    expect_error("defaults: { quantiles: [0.5, [0.6]] }\n", "1:30: defaults.quantiles: item 2: expected a list of ascending");
    expect_error("defaults: { models: [\"\"] }\n", "1:22: defaults.models: model spec \"\" is empty");
    expect_error("defaults: { models: [\" naive\"] }\n", "1:22: defaults.models: model spec \" naive\" has leading or trailing spaces");
    expect_error("defaults: { models: [\"a)(\"] }\n", "1:22: defaults.models: model spec \"a)(\" has unbalanced brackets");
    expect_error("defaults: { group: web }\n", "1:13: defaults: unknown key \"group\"");
    expect_error("series:\n  - { name: a, frequency: 1h, source: builtin, group: \"w b\" }\n",
                 "2:55: series \"a\": group: invalid name \"w b\"");
    expect_error("series:\n  - { name: a, frequency: 1h, source: { table: t, time: ts, value: v, "
                 "where: { h: 1, h: 2 } } }\n", "2:86: series \"a\": source.where: duplicate column \"h\"");
    expect_error("series:\n  - { name: a, frequency: 1h, source: { table: t, time: ts, value: v, "
                 "where: { h: [1] } } }\n", "2:83: series \"a\": source.where.h: expected a value");
    expect_error("series:\n  - { name: a, frequency: 1h, source: { table: t, time: ts, value: v, "
                 "where: { h: ~ } } }\n", "2:83: series \"a\": source.where.h: expected a value "
                 "to compare the column with, got nothing");
    expect_error("series:\n  - { name: a, frequency: 1h, source: { table: t, time: ts, value: ~ } }\n",
                 "2:68: series \"a\": source.value: expected a string, got nothing");
    expect_error("series:\n  - { name: a, frequency: 1h, source: }\n",
                 "2:39: series \"a\": source: expected builtin or a mapping");
    /* an unknown key in a series without a usable name is reported by position */
    expect_error("series:\n  - { frequency: 1h, nmae: a }\n",
                 "2:22: series #1: unknown key \"nmae\" (expected one of: name,");
    {
        /* at most 64 where filters (the daemon binds each as a parameter) */
        char text[2048] = "series:\n  - { name: a, frequency: 1h, source: { table: t, time: ts, "
                          "value: v, where: {";
        for (int i = 0; i < 65; i++)
            snprintf(text + strlen(text), sizeof text - strlen(text), " c%d: %d,", i, i);
        strcat(text, " } } }\n");
        expect_error(text, "2:78: series \"a\": source.where: at most 64 filters, got 65");
    }
    expect_error("defaults: [1]\n", "1:11: defaults: expected a mapping, got a list");
    expect_error("series: builtin\n", "1:9: series: expected a list of series (mappings), got \"builtin\"");
    expect_error("workers: 2\n...\n--- !x\n[1\n", "5:1: YAML syntax error: did not find expected ',' or ']' while parsing a flow sequence (line 4, column 1)");
    /* a long value is cut in the message, which stays one line */
    expect_error("device: \"0123456789012345678901234567890123456789012345\\n\"\n",
                 "1:9: device: expected one of auto, cpu, cuda, got \"0123456789012345678901234567890123456789...\"");
    /* a too small error buffer is filled and terminated, not overrun */
    ssmd_config cfg;
    char small[12];
    memset(small, 'x', sizeof small);
    assert_int_equal(parse("wokers: 2\n", &cfg, small, sizeof small), -1);
    assert_string_equal(small, "t.yaml:1:1:");
    assert_int_equal(parse("wokers: 2\n", &cfg, NULL, 0), -1);
}

static void test_missing_file(void **state) {
    (void)state;
    ssmd_config cfg;
    char err[512];
    assert_int_equal(ssmd_config_load(SSMD_TEST_CONFIGS "/no-such.yaml", &cfg, err, sizeof err), -1);
    assert_string_equal(err, SSMD_TEST_CONFIGS "/no-such.yaml: could not open: No such file or directory");
    assert_int_equal(ssmd_config_load(SSMD_TEST_CONFIGS, &cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, SSMD_TEST_CONFIGS ": "));
}

/* ---- bad files: the expectation is the file's first line --------------------------- */

static void test_bad_file(void **state) {
    const char *name = *state;
    char path[1024], err[1024], want[1200];
    snprintf(path, sizeof path, "%s/%s", SSMD_TEST_CONFIGS, name);
    char *text = read_file(path, NULL);
    const char *tag = "# expect: ";
    assert_true(strncmp(text, tag, strlen(tag)) == 0);
    const char *exp = text + strlen(tag);
    size_t el = strcspn(exp, "\n");
    snprintf(want, sizeof want, "%s:%.*s", path, (int)el, exp);
    free(text);
    ssmd_config cfg;
    int rc = ssmd_config_load(path, &cfg, err, sizeof err);
    if (rc == 0) {
        ssmd_config_free(&cfg);
        fail_msg("%s loaded, expected: %s", name, want);
    }
    if (strncmp(err, want, strlen(want)) != 0) fail_msg("got      %s\nexpected %s", err, want);
}

static const char *const bad_names[] = {
    "bad_syntax.yaml", "bad_syntax_indent.yaml", "bad_type_workers.yaml",
    "bad_type_database.yaml", "bad_type_series.yaml", "bad_type_series_item.yaml",
    "bad_type_horizon.yaml", "bad_type_top.yaml", "bad_empty.yaml", "bad_two_documents.yaml",
    "bad_unknown_top.yaml", "bad_unknown_database.yaml", "bad_unknown_defaults.yaml",
    "bad_unknown_series.yaml", "bad_unknown_source.yaml", "bad_duplicate_key.yaml",
    "bad_missing_name.yaml", "bad_missing_frequency.yaml", "bad_missing_source.yaml",
    "bad_source_missing_value.yaml", "bad_source_scalar.yaml", "bad_source_table.yaml",
    "bad_source_where.yaml", "bad_duplicate_series.yaml", "bad_name.yaml",
    "bad_quantiles_range.yaml", "bad_quantiles_zero.yaml", "bad_quantiles_order.yaml",
    "bad_quantiles_duplicate.yaml", "bad_quantiles_number.yaml", "bad_quantiles_empty.yaml",
    "bad_duration.yaml", "bad_duration_negative.yaml", "bad_duration_overflow.yaml",
    "bad_duration_years.yaml", "bad_duration_unitless.yaml", "bad_frequency.yaml",
    "bad_frequency_zero.yaml", "bad_horizon.yaml", "bad_device.yaml", "bad_models_empty.yaml",
    "bad_models_unquoted.yaml", "bad_models_nested.yaml", "bad_models_duplicate.yaml",
    "bad_models_type.yaml",
};
#define NBAD (sizeof bad_names / sizeof bad_names[0])

/* Every bad_*.yaml in the folder is in the list above (none is silently skipped). */
static void test_bad_files_listed(void **state) {
    (void)state;
    DIR *d = opendir(SSMD_TEST_CONFIGS);
    assert_non_null(d);
    struct dirent *e;
    size_t found = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "bad_", 4) != 0) continue;
        found++;
        int listed = 0;
        for (size_t i = 0; i < NBAD; i++) listed |= strcmp(bad_names[i], e->d_name) == 0;
        if (!listed) {
            closedir(d);
            fail_msg("%s is not listed in bad_names[]", e->d_name);
        }
    }
    closedir(d);
    assert_int_equal(found, NBAD);
}

/* ---- durations ---------------------------------------------------------------------- */

static void test_duration_parse(void **state) {
    (void)state;
    static const struct { const char *text; int64_t s; } good[] = {
        {"0", 0}, {"0s", 0}, {"30s", 30}, {"5m", 300}, {"1h", 3600}, {"2d", 172800},
        {"1w", 604800}, {"1h30m", 5400}, {"1d12h", 129600}, {"90m", 5400},
        {"007s", 7}, {"15250w", INT64_C(15250) * 604800},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t s = -1;
        if (ssmd_duration_parse(good[i].text, &s) != 0) fail_msg("rejected %s", good[i].text);
        assert_int_equal(s, good[i].s);
    }
    static const char *const bad[] = {
        "", "5", "-5m", "+5m", "5x", "m", "1.5h", " 5m", "5m ", "5 m", "5M", "1mo", "1y",
        "500ms", "5m-", "1h30", "h1", "99999999999999999999s", "9223372036854775807w",
        "9223372036854775s9223372036854775s", "0x10s", "1e3s",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t s = 42;
        if (ssmd_duration_parse(bad[i], &s) == 0) fail_msg("accepted \"%s\" as %lld", bad[i], (long long)s);
        assert_int_equal(s, 42);  /* untouched on error */
    }
    int64_t s;
    assert_int_equal(ssmd_duration_parse(NULL, &s), -1);
    assert_int_equal(ssmd_duration_parse("1h", NULL), -1);
}

/* ---- round trip, documentation ------------------------------------------------------ */

static void assert_series_equal(const ssmd_series_cfg *a, const ssmd_series_cfg *b) {
    if (a->name || b->name) assert_string_equal(a->name, b->name);
    assert_true((a->group == NULL) == (b->group == NULL));
    if (a->group) assert_string_equal(a->group, b->group);
    assert_int_equal(a->has_freq, b->has_freq);
    assert_int_equal(a->freq.unit, b->freq.unit);
    assert_int_equal(a->freq.count, b->freq.count);
    assert_int_equal(a->source.builtin, b->source.builtin);
    if (!a->source.builtin && a->name) {
        assert_string_equal(a->source.table, b->source.table);
        assert_string_equal(a->source.time_col, b->source.time_col);
        assert_string_equal(a->source.value_col, b->source.value_col);
        assert_int_equal(a->source.nwhere, b->source.nwhere);
        for (size_t i = 0; i < a->source.nwhere; i++) {
            assert_string_equal(a->source.where_keys[i], b->source.where_keys[i]);
            assert_string_equal(a->source.where_values[i], b->source.where_values[i]);
        }
    }
    assert_int_equal(a->every_s, b->every_s);
    assert_int_equal(a->refit_every_s, b->refit_every_s);
    assert_int_equal(a->retrain_every_s, b->retrain_every_s);
    assert_int_equal(a->retention_s, b->retention_s);
    assert_int_equal(a->horizon, b->horizon);
    assert_int_equal(a->season, b->season);
    assert_int_equal(a->nq, b->nq);
    for (size_t i = 0; i < a->nq; i++) assert_true(a->quantiles[i] == b->quantiles[i]);
    assert_int_equal(a->nmodels, b->nmodels);
    for (size_t i = 0; i < a->nmodels; i++) assert_string_equal(a->models[i], b->models[i]);
}

static void roundtrip(const char *path) {
    ssmd_config a, b;
    char err[512];
    if (ssmd_config_load(path, &a, err, sizeof err)) fail_msg("%s", err);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    ssmd_config_print(f, &a);
    fclose(f);
    if (ssmd_config_parse("printed.yaml", text, len, &b, err, sizeof err))
        fail_msg("%s\n%s", err, text);
    free(text);
    if (a.dsn || b.dsn) assert_string_equal(a.dsn, b.dsn);
    assert_int_equal(a.statement_timeout_ms, b.statement_timeout_ms);
    assert_int_equal(a.workers, b.workers);
    assert_string_equal(a.device, b.device);
    assert_int_equal(a.lease_s, b.lease_s);
    assert_series_equal(&a.defaults, &b.defaults);
    assert_int_equal(a.nseries, b.nseries);
    for (size_t i = 0; i < a.nseries; i++) assert_series_equal(&a.series[i], &b.series[i]);
    ssmd_config_free(&a);
    ssmd_config_free(&b);
}

static void test_roundtrip(void **state) {
    (void)state;
    roundtrip(SSMD_TEST_CONFIGS "/full.yaml");
    roundtrip(SSMD_TEST_CONFIGS "/minimal.yaml");
    roundtrip(SSMD_TEST_CONFIGS "/defaults_frequency.yaml");
    roundtrip(SSMD_ETC_DIR "/ssmd.yaml");
}

/* etc/CONFIG.md is exactly what ssmd_config_describe writes: the docs cannot drift from
 * the key table. On a mismatch the current text is left in the build folder. */
static void test_config_md_current(void **state) {
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    ssmd_config_describe(f);
    fclose(f);
    /* every key of every section appears in it */
    static const char *const some[] = {"`workers`", "`database.dsn`", "`database.statement_timeout`",
                                       "`horizon`", "`quantiles`", "`source.where`", "`lease`"};
    for (size_t i = 0; i < sizeof some / sizeof some[0]; i++)
        assert_non_null(strstr(text, some[i]));
    size_t dlen = 0;
    FILE *exists = fopen(SSMD_ETC_DIR "/CONFIG.md", "rb");
    int same = 0;
    if (exists) {
        fclose(exists);
        char *doc = read_file(SSMD_ETC_DIR "/CONFIG.md", &dlen);
        same = dlen == len && memcmp(doc, text, len) == 0;
        free(doc);
    }
    if (!same) {
        FILE *o = fopen(SSMD_TEST_OUT "/CONFIG.md.new", "wb");
        if (o) {
            fwrite(text, 1, len, o);
            fclose(o);
        }
        free(text);
        fail_msg("etc/CONFIG.md is out of date: cp %s/CONFIG.md.new %s/CONFIG.md", SSMD_TEST_OUT,
                 SSMD_ETC_DIR);
    }
    free(text);
}

/* ---- robustness ----------------------------------------------------------------------- */

/* Every prefix of a good file loads or fails with "NAME:LINE:COL: message", with the
 * location inside the prefix. */
static void prefixes(const char *path) {
    size_t len;
    char *text = read_file(path, &len);
    size_t ok = 0, failed = 0;
    for (size_t n = 0; n <= len; n++) {
        ssmd_config cfg;
        char err[1024];
        if (ssmd_config_parse("p.yaml", text, n, &cfg, err, sizeof err) == 0) {
            ok++;
            ssmd_config_free(&cfg);
            continue;
        }
        failed++;
        long line, col, lines = 1;
        for (size_t i = 0; i < n; i++) lines += text[i] == '\n';
        if (!located(err, "p.yaml", &line, &col)) fail_msg("prefix %zu: no location: %s", n, err);
        if (line > lines) fail_msg("prefix %zu (%ld lines): line %ld: %s", n, lines, line, err);
        if (strchr(err, '\n')) fail_msg("prefix %zu: message is not one line: %s", n, err);
    }
    print_message("%s: %zu prefixes load, %zu fail with a location\n", path, ok, failed);
    assert_true(ok > 0 && failed > 0);
    free(text);
}

static void test_prefixes(void **state) {
    (void)state;
    prefixes(SSMD_TEST_CONFIGS "/full.yaml");
    prefixes(SSMD_ETC_DIR "/ssmd.yaml");
}

/* Every byte of full.yaml replaced in turn by characters that matter to YAML or to the
 * loader: each result loads or fails with a one-line located message. */
static void test_mutations(void **state) {
    (void)state;
    static const char repl[] = {':', '{', '[', '-', '\n', ' ', '"', '*', '&', '#', '0', '\0', '\t', ','};
    size_t len;
    char *text = read_file(SSMD_TEST_CONFIGS "/full.yaml", &len);
    size_t ok = 0, failed = 0;
    for (size_t i = 0; i < len; i++) {
        char saved = text[i];
        for (size_t r = 0; r < sizeof repl; r++) {
            if (repl[r] == saved) continue;
            text[i] = repl[r];
            ssmd_config cfg;
            char err[1024];
            long line, col;
            if (ssmd_config_parse("f.yaml", text, len, &cfg, err, sizeof err) == 0) {
                ok++;
                ssmd_config_free(&cfg);
            } else {
                failed++;
                if (!located(err, "f.yaml", &line, &col) || strchr(err, '\n'))
                    fail_msg("byte %zu -> 0x%02x: %s", i, (unsigned char)repl[r], err);
            }
        }
        text[i] = saved;
    }
    print_message("full.yaml mutated: %zu load, %zu fail with a location\n", ok, failed);
    assert_true(ok > 0 && failed > 0);
    free(text);
}

/* Each allocation of the loader made to fail in turn: the load fails with a located "out
 * of memory" and frees everything (ASan/valgrind check the leaks), until the load needs no
 * more allocations than those allowed and succeeds. */
static void test_alloc_failures(void **state) {
    (void)state;
    size_t len;
    char *text = read_file(SSMD_TEST_CONFIGS "/full.yaml", &len);
    long n;
    for (n = 0;; n++) {
        ssmd_config cfg;
        char err[1024];
        alloc_calls = 0;
        fail_at = n;
        int rc = ssmd_config_parse("m.yaml", text, len, &cfg, err, sizeof err);
        fail_at = -1;
        if (rc == 0) {
            assert_true(alloc_calls <= n);  /* nothing failed */
            assert_int_equal(cfg.nseries, 3);
            ssmd_config_free(&cfg);
            break;
        }
        long line, col;
        if (!located(err, "m.yaml", &line, &col) || !strstr(err, "out of memory"))
            fail_msg("allocation %ld failing gave: %s", n, err);
    }
    print_message("full.yaml: %ld allocations, each made to fail once\n", n);
    assert_true(n > 30);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_defaults_frequency),
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_small_cases),
        cmocka_unit_test(test_inline_errors),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_bad_files_listed),
        cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_config_md_current),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_alloc_failures),
    };
    struct CMUnitTest bad[NBAD];
    for (size_t i = 0; i < NBAD; i++)
        bad[i] = (struct CMUnitTest){bad_names[i], test_bad_file, NULL, NULL, (void *)bad_names[i]};
    int failed = cmocka_run_group_tests_name("config", tests, NULL, NULL);
    failed += _cmocka_run_group_tests("config bad files", bad, NBAD, NULL, NULL);
    return failed ? 1 : 0;
}
