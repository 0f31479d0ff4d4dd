/*
 * daemon/plot_svg.h — the `ssmd backtest --plot FILE.svg` chart, written by hand as SVG
 * (no plotting library): a top panel with one series' actuals and, for the chosen origins,
 * each model's point forecasts and (for the models asked for) its 80% and 95% bands; a
 * bottom panel with a metric (mean across series) by forecast step, one line per model.
 */
#ifndef SSMD_PLOT_SVG_H
#define SSMD_PLOT_SVG_H

#include <stddef.h>

#include "backtest.h"
#include "model.h"
#include "strbuf.h"

typedef struct ssmd_plot_spec {
    const char *title;
    const ssm_series *series;       /* the series drawn in the top panel */
    size_t nmodels;
    const char *const *names;       /* nmodels labels */
    const ssm_backtest *bt;         /* nmodels backtests of that series (norigins 0: none) */
    const int *bands;               /* nmodels flags: draw this model's intervals */
    const size_t *origins;          /* origins to draw (indices into bt[k]); NULL: all */
    size_t norigins;
    const ssm_bt_summary *summary;  /* nmodels summaries for the bottom panel; NULL: from bt */
    const char *metric;             /* "mase" (default), "mae", "rmse", "smape", "pinball" */
    int width, height;              /* pixels; 0: 1200 x 900 */
} ssmd_plot_spec;

/* Appends the SVG document to out. Returns 0, or -1 with a message in err. */
int ssmd_plot_backtest_svg(const ssmd_plot_spec *p, ssmd_strbuf *out, char *err, size_t errlen);

#endif
