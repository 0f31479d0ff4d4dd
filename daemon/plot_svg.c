/*
 * daemon/plot_svg.c — draws a backtest as a standalone SVG document (see plot_svg.h).
 *
 * Plain string building: a frame, "nice" axis ticks (1, 2, 5 x 10^k), polylines for the
 * actuals and point forecasts, translucent polygons for the 80% and 95% bands, a legend,
 * and a second panel with a metric by forecast step. Missing values break lines. Nothing
 * here depends on a browser feature beyond SVG 1.1, so any viewer shows the same picture.
 */
#include "plot_svg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};
#define NPAL (sizeof palette / sizeof palette[0])

typedef struct frame {
    double px0, px1, py0, py1; /* pixel box */
    double x0, x1, y0, y1;     /* data box */
} frame;

static double fx(const frame *f, double x) {
    return f->px0 + (x - f->x0) / (f->x1 - f->x0) * (f->px1 - f->px0);
}
static double fy(const frame *f, double y) {
    return f->py1 - (y - f->y0) / (f->y1 - f->y0) * (f->py1 - f->py0);
}

static void xml_text(ssmd_strbuf *sb, const char *s) {
    for (; *s; s++) {
        if (*s == '<') ssmd_sb_appendf(sb, "&lt;");
        else if (*s == '>') ssmd_sb_appendf(sb, "&gt;");
        else if (*s == '&') ssmd_sb_appendf(sb, "&amp;");
        else if (*s == '"') ssmd_sb_appendf(sb, "&quot;");
        else ssmd_sb_append(sb, s, 1);
    }
}

/* Tick step for a range: 1, 2 or 5 times a power of ten, about `want` ticks. */
static double nice_step(double range, int want) {
    if (!(range > 0)) return 1.0;
    double raw = range / want, p = pow(10.0, floor(log10(raw))), r = raw / p;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * p;
}

static void widen(double *lo, double *hi) {
    if (!isfinite(*lo) || !isfinite(*hi)) *lo = 0, *hi = 1;
    if (*hi - *lo <= 0) {
        double pad = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 1.0;
        *lo -= pad, *hi += pad;
    } else {
        double pad = 0.05 * (*hi - *lo);
        *lo -= pad, *hi += pad;
    }
}

static void y_axis(ssmd_strbuf *sb, const frame *f) {
    double st = nice_step(f->y1 - f->y0, 6);
    for (double v = ceil(f->y0 / st) * st; v <= f->y1 + 1e-9 * st; v += st) {
        double y = fy(f, v);
        ssmd_sb_appendf(sb, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", f->px0, y,
                        f->px1, y);
        ssmd_sb_appendf(sb, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\">%g</text>\n",
                        f->px0 - 6, y + 4, fabs(v) < 1e-12 * st ? 0.0 : v);
    }
    ssmd_sb_appendf(sb, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n",
                    f->px0, f->py0, f->px1 - f->px0, f->py1 - f->py0);
}

static void format_time(int64_t t, ssm_freq freq, char *buf, size_t len) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    const char *fmt = freq.unit >= SSM_FREQ_YEAR ? "%Y" : freq.unit >= SSM_FREQ_MONTH ? "%Y-%m"
                      : freq.unit >= SSM_FREQ_DAY ? "%Y-%m-%d" : "%m-%d %H:%M";
    strftime(buf, len, fmt, &tm);
}

static double metric_of(const ssm_bt_scores *s, const char *metric) {
    if (strcmp(metric, "mae") == 0) return s->mae;
    if (strcmp(metric, "rmse") == 0) return s->rmse;
    if (strcmp(metric, "smape") == 0) return s->smape;
    if (strcmp(metric, "mape") == 0) return s->mape;
    if (strcmp(metric, "pinball") == 0) return s->pinball;
    return s->mase;
}

/* A polyline through (x[i], y[i]) that breaks at NaN. */
static void polyline(ssmd_strbuf *sb, const frame *f, const double *x, const double *y, size_t n, const char *style) {
    int open = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(y[i])) {
            if (open) ssmd_sb_appendf(sb, "\" %s/>\n", style);
            open = 0;
            continue;
        }
        ssmd_sb_appendf(sb, "%s%.1f,%.1f", open ? " " : "<polyline fill=\"none\" points=\"", fx(f, x[i]), fy(f, y[i]));
        open = 1;
    }
    if (open) ssmd_sb_appendf(sb, "\" %s/>\n", style);
}

int ssmd_plot_backtest_svg(const ssmd_plot_spec *p, ssmd_strbuf *sb, char *err, size_t errlen) {
    const ssm_series *y = p->series;
    const char *metric = p->metric ? p->metric : "mase";
    double W = p->width ? p->width : 1200, Hpx = p->height ? p->height : 900;
    const ssm_backtest *ref = NULL;
    for (size_t k = 0; k < p->nmodels && !ref; k++)
        if (p->bt[k].norigins) ref = &p->bt[k];
    if (!y || !ref) {
        snprintf(err, errlen, "nothing to plot: no model could be backtested on the plotted series");
        return -1;
    }
    size_t H = ref->horizon, N = ref->norigins;
    size_t all[64], norig = p->origins ? p->norigins : (N < 64 ? N : 64);
    const size_t *orig = p->origins;
    if (!orig) {
        for (size_t i = 0; i < norig; i++) all[i] = N - norig + i;
        orig = all;
    }
    for (size_t i = 0; i < norig; i++)
        if (orig[i] >= N) {
            snprintf(err, errlen, "origin %zu does not exist (the backtest has %zu)", orig[i] + 1, N);
            return -1;
        }

    /* top panel data range: some context before the first drawn origin, to the last step */
    size_t first = y->n, last = 0;
    for (size_t i = 0; i < norig; i++) {
        size_t e = ref->train_end[orig[i]];
        if (e < first) first = e;
        if (e + H > last) last = e + H;
    }
    size_t context = 3 * H > 24 ? 3 * H : 24;
    size_t lo_i = first > context ? first - context : 0;
    double ymin = INFINITY, ymax = -INFINITY;
    for (size_t t = lo_i; t < last; t++)
        if (!isnan(y->values[t])) ymin = fmin(ymin, y->values[t]), ymax = fmax(ymax, y->values[t]);
    for (size_t k = 0; k < p->nmodels; k++) {
        const ssm_backtest *bt = &p->bt[k];
        if (!bt->norigins || bt->horizon != H) continue;
        for (size_t i = 0; i < norig; i++)
            for (size_t h = 0; h < H; h++) {
                size_t at = orig[i] * H + h;
                double v = bt->mean[at];
                if (!isnan(v)) ymin = fmin(ymin, v), ymax = fmax(ymax, v);
                if (p->bands && p->bands[k] && bt->nq) {
                    double a = bt->q[at * bt->nq], b = bt->q[at * bt->nq + bt->nq - 1];
                    if (isfinite(a)) ymin = fmin(ymin, a);
                    if (isfinite(b)) ymax = fmax(ymax, b);
                }
            }
    }
    widen(&ymin, &ymax);
    double legend_w = 230;
    frame top = {80, W - legend_w, 60, Hpx * 0.58, (double)lo_i - 0.5, (double)last - 0.5, ymin, ymax};

    ssmd_sb_appendf(sb, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                        "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
                        "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                    W, Hpx, W, Hpx);
    ssmd_sb_appendf(sb, "<text x=\"%.1f\" y=\"30\" font-size=\"18\" font-weight=\"bold\">", top.px0);
    xml_text(sb, p->title ? p->title : "backtest");
    ssmd_sb_appendf(sb, "</text>\n");
    y_axis(sb, &top);

    /* x ticks: about 6 time labels */
    size_t span = last - lo_i, xst = span / 6 ? span / 6 : 1;
    for (size_t t = lo_i; t < last; t += xst) {
        char lab[32];
        format_time(ssm_freq_advance(y->freq, y->start, (long)t), y->freq, lab, sizeof lab);
        ssmd_sb_appendf(sb, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n",
                        fx(&top, (double)t), top.py1 + 18, lab);
    }
    /* origins: a dashed line after the last training point */
    for (size_t i = 0; i < norig; i++) {
        double x = fx(&top, (double)ref->train_end[orig[i]] - 0.5);
        ssmd_sb_appendf(sb, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" "
                            "stroke-dasharray=\"4,4\"/>\n", x, top.py0, x, top.py1);
    }
    /* bands below lines */
    double xs[4096], ys[4096];
    for (size_t k = 0; k < p->nmodels; k++) {
        const ssm_backtest *bt = &p->bt[k];
        if (!bt->norigins || bt->horizon != H || !p->bands || !p->bands[k]) continue;
        ssm_interval iv[SSM_BT_MAX_INTERVALS];
        size_t niv = ssm_metric_intervals(bt->levels, bt->nq, iv, SSM_BT_MAX_INTERVALS);
        for (size_t j = 0; j < niv && j < 2; j++)
            for (size_t i = 0; i < norig; i++) {
                size_t e = bt->train_end[orig[i]];
                int ok = 1;
                for (size_t h = 0; h < H; h++) {
                    const double *q = bt->q + (orig[i] * H + h) * bt->nq;
                    if (!isfinite(q[iv[j].lo]) || !isfinite(q[iv[j].hi])) ok = 0;
                }
                if (!ok) continue;
                ssmd_sb_appendf(sb, "<polygon fill=\"%s\" fill-opacity=\"%.2f\" stroke=\"none\" points=\"",
                                palette[k % NPAL], j == 0 ? 0.12 : 0.22);
                for (size_t h = 0; h < H; h++)
                    ssmd_sb_appendf(sb, "%.1f,%.1f ", fx(&top, (double)(e + h)),
                                    fy(&top, bt->q[(orig[i] * H + h) * bt->nq + iv[j].hi]));
                for (size_t h = H; h-- > 0;)
                    ssmd_sb_appendf(sb, "%.1f,%.1f ", fx(&top, (double)(e + h)),
                                    fy(&top, bt->q[(orig[i] * H + h) * bt->nq + iv[j].lo]));
                ssmd_sb_appendf(sb, "\"/>\n");
            }
    }
    /* actuals */
    size_t na = span < 4096 ? span : 4096;
    for (size_t t = 0; t < na; t++) xs[t] = (double)(lo_i + t), ys[t] = y->values[lo_i + t];
    polyline(sb, &top, xs, ys, na, "stroke=\"#000\" stroke-width=\"1.6\"");
    /* point forecasts, joined to the last training value so each path starts at its origin */
    for (size_t k = 0; k < p->nmodels; k++) {
        const ssm_backtest *bt = &p->bt[k];
        if (!bt->norigins || bt->horizon != H || H + 1 > 4096) continue;
        char style[96];
        snprintf(style, sizeof style, "stroke=\"%s\" stroke-width=\"1.8\" stroke-dasharray=\"6,3\"", palette[k % NPAL]);
        for (size_t i = 0; i < norig; i++) {
            size_t e = bt->train_end[orig[i]];
            xs[0] = (double)e - 1, ys[0] = y->values[e - 1];
            for (size_t h = 0; h < H; h++) xs[h + 1] = (double)(e + h), ys[h + 1] = bt->mean[orig[i] * H + h];
            polyline(sb, &top, isnan(ys[0]) ? xs + 1 : xs, isnan(ys[0]) ? ys + 1 : ys, isnan(ys[0]) ? H : H + 1,
                     style);
        }
    }
    /* legend */
    double lx = W - legend_w + 20, ly = top.py0 + 10;
    ssmd_sb_appendf(sb, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\" stroke-width=\"1.6\"/>"
                        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\">actual</text>\n",
                    lx, ly, lx + 24, ly, lx + 30, ly + 4);
    for (size_t k = 0; k < p->nmodels; k++) {
        ly += 20;
        ssmd_sb_appendf(sb, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>"
                            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\">",
                        lx, ly, lx + 24, ly, palette[k % NPAL], lx + 30, ly + 4);
        xml_text(sb, p->names[k]);
        if (p->bands && p->bands[k]) ssmd_sb_appendf(sb, " (80%%, 95%%)");
        ssmd_sb_appendf(sb, "</text>\n");
    }

    /* bottom panel: metric by step */
    double bmin = INFINITY, bmax = -INFINITY;
    for (size_t k = 0; k < p->nmodels; k++)
        for (size_t h = 0; h < H; h++) {
            const ssm_bt_scores *s = p->summary ? (p->summary[k].by_step_mean && p->summary[k].horizon == H
                                                       ? &p->summary[k].by_step_mean[h] : NULL)
                                                : (p->bt[k].by_step && p->bt[k].horizon == H ? &p->bt[k].by_step[h] : NULL);
            double v = s ? metric_of(s, metric) : NAN;
            if (isfinite(v)) bmin = fmin(bmin, v), bmax = fmax(bmax, v);
        }
    if (!isfinite(bmin)) bmin = 0, bmax = 1;
    bmin = fmin(bmin, 0.0);
    widen(&bmin, &bmax);
    frame bot = {80, W - legend_w, Hpx * 0.68, Hpx - 60, 0.5, (double)H + 0.5, bmin, bmax};
    ssmd_sb_appendf(sb, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"15\" font-weight=\"bold\">%s by forecast step%s</text>\n",
                    bot.px0, bot.py0 - 12, metric, p->summary ? " (mean across series)" : "");
    y_axis(sb, &bot);
    size_t hst = H / 12 ? H / 12 : 1;
    for (size_t h = 1; h <= H; h += hst)
        ssmd_sb_appendf(sb, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">%zu</text>\n",
                        fx(&bot, (double)h), bot.py1 + 18, h);
    ssmd_sb_appendf(sb, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">forecast step</text>\n",
                    (bot.px0 + bot.px1) / 2, bot.py1 + 38);
    for (size_t k = 0; k < p->nmodels; k++) {
        size_t m = 0;
        for (size_t h = 0; h < H && h < 4096; h++) {
            const ssm_bt_scores *s = p->summary ? (p->summary[k].by_step_mean && p->summary[k].horizon == H
                                                       ? &p->summary[k].by_step_mean[h] : NULL)
                                                : (p->bt[k].by_step && p->bt[k].horizon == H ? &p->bt[k].by_step[h] : NULL);
            xs[m] = (double)(h + 1), ys[m] = s ? metric_of(s, metric) : NAN;
            m++;
        }
        char style[64];
        snprintf(style, sizeof style, "stroke=\"%s\" stroke-width=\"2\"", palette[k % NPAL]);
        polyline(sb, &bot, xs, ys, m, style);
        if (H <= 48)
            for (size_t h = 0; h < m; h++)
                if (isfinite(ys[h]))
                    ssmd_sb_appendf(sb, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", fx(&bot, xs[h]),
                                    fy(&bot, ys[h]), palette[k % NPAL]);
    }
    ssmd_sb_appendf(sb, "</svg>\n");
    if (sb->failed) {
        snprintf(err, errlen, "out of memory while drawing the plot");
        return -1;
    }
    return 0;
}
