/*
 * tests/models/test_plot_render.c — the backtest SVG opens in a real browser.
 *
 * Writes a chart of an AirPassengers backtest, has headless Chromium take a screenshot,
 * decodes the PNG (a small zlib-based reader below: 8-bit RGB/RGBA, non-interlaced, the
 * five PNG filters) and checks the picture is not blank: enough non-white pixels, black
 * actuals and the palette's first two model colours present. A broken SVG shows
 * Chromium's XML error page instead, which has none of those colours.
 * Exits 77 (ctest: skipped) when no chromium is installed.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "backtest.h"
#include "plot_svg.h"
#include "test_util.h"

static const char *find_chromium(void) {
    static const char *const paths[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome",
                                        NULL};
    for (const char *const *p = paths; *p; p++)
        if (access(*p, X_OK) == 0) return *p;
    return NULL;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static int paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Decodes an 8-bit RGB or RGBA PNG into RGB (w*h*3, malloc'ed). 0 on success. */
static int png_decode(const char *path, uint8_t **rgb, uint32_t *w, uint32_t *h) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *file = malloc((size_t)len);
    if (!file || fread(file, 1, (size_t)len, fp) != (size_t)len) {
        fclose(fp);
        free(file);
        return -1;
    }
    fclose(fp);
    static const uint8_t sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    int rc = -1, ctype = -1;
    uint8_t *idat = NULL, *raw = NULL;
    size_t nidat = 0;
    if (len < 8 || memcmp(file, sig, 8) != 0) goto out;
    for (long off = 8; off + 12 <= len;) {
        uint32_t clen = be32(file + off);
        const uint8_t *type = file + off + 4, *data = file + off + 8;
        if (off + 12 + (long)clen > len) goto out;
        if (memcmp(type, "IHDR", 4) == 0) {
            *w = be32(data), *h = be32(data + 4);
            if (data[8] != 8 || data[12] != 0) goto out; /* 8-bit, not interlaced */
            ctype = data[9];
        } else if (memcmp(type, "IDAT", 4) == 0) {
            uint8_t *p = realloc(idat, nidat + clen);
            if (!p) goto out;
            idat = p;
            memcpy(idat + nidat, data, clen);
            nidat += clen;
        }
        off += 12 + (long)clen;
    }
    if (ctype != 2 && ctype != 6) goto out;
    size_t bpp = ctype == 6 ? 4 : 3, stride = (size_t)*w * bpp;
    uLongf rawlen = (uLongf)((stride + 1) * *h);
    raw = malloc(rawlen);
    *rgb = malloc((size_t)*w * *h * 3);
    if (!raw || !*rgb || uncompress(raw, &rawlen, idat, nidat) != Z_OK) goto out;
    /* unfilter in place: row y's bytes follow its filter byte */
    for (uint32_t y = 0; y < *h; y++) {
        uint8_t *row = raw + y * (stride + 1) + 1, *prev = y ? raw + (y - 1) * (stride + 1) + 1 : NULL;
        int f = row[-1];
        for (size_t i = 0; i < stride; i++) {
            int a = i >= bpp ? row[i - bpp] : 0, b = prev ? prev[i] : 0, c = prev && i >= bpp ? prev[i - bpp] : 0;
            int add = f == 0 ? 0 : f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : f == 4 ? paeth(a, b, c) : -1;
            if (add < 0) goto out;
            row[i] = (uint8_t)(row[i] + add);
        }
        for (uint32_t x = 0; x < *w; x++)
            for (int ch = 0; ch < 3; ch++) (*rgb)[((size_t)y * *w + x) * 3 + ch] = row[x * bpp + ch];
    }
    rc = 0;
out:
    if (rc) {
        free(*rgb);
        *rgb = NULL;
    }
    free(raw);
    free(idat);
    free(file);
    return rc;
}

static int near(const uint8_t *px, int r, int g, int b) {
    return abs(px[0] - r) < 24 && abs(px[1] - g) < 24 && abs(px[2] - b) < 24;
}

static void test_render(void **state) {
    const char *chromium = *state;
    double *v = NULL;
    size_t n = read_csv_values(SSMD_TEST_DATA "/AirPassengers.csv", &v);
    ssm_series y = {"AirPassengers", {SSM_FREQ_MONTH, 1}, -662688000, n, v};
    ssm_backtest_opts o;
    memset(&o, 0, sizeof o);
    o.horizon = 12;
    o.origins = 3;
    ssm_backtest bt[2];
    ssm_error err;
    assert_int_equal(ssm_backtest_run(&y, "snaive", &o, &bt[0], &err), SSM_OK);
    assert_int_equal(ssm_backtest_run(&y, "drift", &o, &bt[1], &err), SSM_OK);
    const char *names[] = {"snaive", "drift"};
    int bands[] = {1, 0};
    ssmd_plot_spec p = {.title = "AirPassengers", .series = &y, .nmodels = 2, .names = names, .bt = bt, .bands = bands};
    ssmd_strbuf sb = {0};
    char msg[256];
    assert_int_equal(ssmd_plot_backtest_svg(&p, &sb, msg, sizeof msg), 0);

    char dir[] = "/tmp/ssmd_plotXXXXXX";
    assert_non_null(mkdtemp(dir));
    char svg[256], png[256], profile[256], cmd[2048];
    snprintf(svg, sizeof svg, "%s/plot.svg", dir);
    snprintf(png, sizeof png, "%s/plot.png", dir);
    snprintf(profile, sizeof profile, "%s/profile", dir);
    FILE *fp = fopen(svg, "w");
    assert_non_null(fp);
    fwrite(ssmd_sb_str(&sb), 1, sb.len, fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd,
             "timeout 90 %s --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
             "--disable-background-networking --disable-component-update --disable-sync "
             "--user-data-dir=%s --screenshot=%s --window-size=1200,900 file://%s >/dev/null 2>&1",
             chromium, profile, png, svg);
    int rc = system(cmd);
    if (rc != 0) print_error("chromium exited with %d: %s\n", rc, cmd);
    uint8_t *rgb = NULL;
    uint32_t w = 0, h = 0;
    assert_int_equal(png_decode(png, &rgb, &w, &h), 0);
    assert_int_equal(w, 1200);
    assert_int_equal(h, 900);
    size_t nonwhite = 0, black = 0, blue = 0, red = 0;
    for (size_t i = 0; i < (size_t)w * h; i++) {
        const uint8_t *px = rgb + 3 * i;
        if (px[0] < 245 || px[1] < 245 || px[2] < 245) nonwhite++;
        if (near(px, 0, 0, 0)) black++;
        if (near(px, 0x1f, 0x77, 0xb4)) blue++;
        if (near(px, 0xd6, 0x27, 0x28)) red++;
    }
    printf("rendered %ux%u: %zu non-white pixels, %zu black, %zu blue (snaive), %zu red (drift)\n", w, h, nonwhite,
           black, blue, red);
    assert_true(nonwhite > (size_t)w * h / 100);
    assert_true(black > 500);
    assert_true(blue > 200);
    assert_true(red > 200);
    free(rgb);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    ssmd_sb_free(&sb);
    ssm_backtest_free(&bt[0]);
    ssm_backtest_free(&bt[1]);
    free(v);
}

int main(void) {
    const char *chromium = find_chromium();
    if (!chromium) {
        printf("chromium not installed: skipping the SVG render test\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_render, (void *)chromium),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
