/*
 * models/backtest.h — rolling-origin evaluation (time series cross-validation) of a model
 * spec on one series, and the summaries across series that `ssmd backtest` and the `auto`
 * model are built on.
 *
 * Origins are counted back from the end, as statsforecast's cross_validation does: with
 * n points, horizon H, N origins and a step K between them, origin i (0 = earliest) trains
 * on the points before
 *     end_i = n - H - (N - 1 - i) K
 * and is scored on points end_i .. end_i + H - 1, so the last window's horizon ends at the
 * last observation. The training window is expanding (it starts at 0) unless a window W is
 * given, when it is [end_i - W, end_i). With refit_once the model is fitted at the first
 * origin only and then filtered forward with ssm_model_update (fixed parameters), which is
 * cheap for state space models; the window then only applies to that first fit.
 *
 * Scoring uses models/metrics.h. MASE is scaled by the seasonal naive MAE of each
 * origin's own training window (M4): a point's scaled error is |e| / scale_i, and an origin
 * whose scale is 0 or undefined (constant window) does not count toward MASE.
 *
 * Pure: no I/O, no global state, so one process can run many backtests on many threads.
 */
#ifndef SSM_BACKTEST_H
#define SSM_BACKTEST_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "model.h"

#define SSM_BT_MAX_INTERVALS 8

/* The default quantile levels: 95% and 80% central intervals and the median. */
extern const double ssm_backtest_default_levels[5];

typedef struct ssm_backtest_opts {
    size_t horizon;        /* H >= 1 */
    size_t origins;        /* N >= 1 */
    size_t step;           /* K between origins; 0: H */
    size_t window;         /* sliding training window length; 0: expanding */
    int refit_once;        /* fit at the first origin only, then update forward */
    int season;            /* m for MASE and for the models; 0: from the frequency */
    size_t min_train;      /* shortest first training window accepted; 0: 2 */
    const double *levels;  /* nq quantile levels, ascending in (0,1); NULL: the defaults */
    size_t nq;
    ssm_model_opts model_opts; /* passed to ssm_model_create (season is overridden) */
} ssm_backtest_opts;

/* Accuracy of a set of forecasts (one series, one model; all origins, or one step). */
typedef struct ssm_bt_scores {
    size_t n;              /* points scored (actual and forecast present) */
    double mae, rmse, mape, smape, mase, pinball;
    size_t nint;           /* central intervals found in the quantile levels */
    double nominal[SSM_BT_MAX_INTERVALS];  /* widest first: 0.95, 0.80 */
    double coverage[SSM_BT_MAX_INTERVALS];
    double width[SSM_BT_MAX_INTERVALS];
} ssm_bt_scores;

/* One model on one series: every forecast made, and its scores. Arrays owned. */
typedef struct ssm_backtest {
    char spec[256];        /* the spec as run */
    char chosen[256];      /* info().chosen after the last fit (the winner for auto) */
    size_t nparams;        /* info().nparams after the last fit */
    int season;            /* m used */
    size_t horizon, norigins, nq;
    double *levels;        /* nq */
    size_t *train_start;   /* norigins: training window [train_start, train_end) */
    size_t *train_end;
    int64_t *origin_ts;    /* norigins: time of the last training point */
    double *scale;         /* norigins: MASE scale of each training window */
    double *actual;        /* norigins x horizon, actual[i*H + h] */
    double *mean;          /* norigins x horizon */
    double *q;             /* norigins x horizon x nq, q[(i*H + h)*nq + j] */
    size_t nfailed;        /* origins whose fit or forecast failed (their values are NaN) */
    ssm_error first_error; /* the first such failure */
    ssm_bt_scores overall;
    ssm_bt_scores *by_step; /* horizon: scores of step h+1 across origins */
} ssm_backtest;

/* The origins for n points: writes o->origins values end_i into train_end (ascending).
 * SSM_ETOOSHORT, with a hint giving the most origins that fit, when the first training
 * window would be shorter than min_train. */
int ssm_backtest_origins(size_t n, const ssm_backtest_opts *o, size_t *train_end, ssm_error *err);

/* Runs spec over y's origins into out (zeroed first; free with ssm_backtest_free, also
 * after an error). Origins whose fit or forecast fails are recorded as NaN and counted
 * in nfailed; it is an error only when every origin fails, or a bad spec or options. */
int ssm_backtest_run(const ssm_series *y, const char *spec, const ssm_backtest_opts *o,
                     ssm_backtest *out, ssm_error *err);

/* (Re)computes out->overall and out->by_step from the stored forecasts. */
int ssm_backtest_score(ssm_backtest *bt, ssm_error *err);

void ssm_backtest_free(ssm_backtest *bt);

/* Across series, per model. */
typedef struct ssm_bt_summary {
    size_t nseries;        /* series on which the model has a MASE */
    ssm_bt_scores mean;    /* mean across series of each per-series figure (NaN skipped) */
    ssm_bt_scores median;  /* median across series */
    double rank;           /* mean across series of the model's rank by MASE (1 = best,
                              ties share the average rank); series where some model has
                              no MASE are ranked among the models that have one */
    size_t horizon;
    ssm_bt_scores *by_step_mean; /* horizon: per-step figures averaged across series */
} ssm_bt_summary;

/* grid is nseries x nmodels, row-major (grid[s*nmodels + k] is model k on series s); an
 * entry with norigins == 0 is a model that could not run on that series. out has nmodels
 * entries; free each with ssm_bt_summary_free. */
int ssm_backtest_summarise(const ssm_backtest *grid, size_t nseries, size_t nmodels,
                           ssm_bt_summary *out, ssm_error *err);
void ssm_bt_summary_free(ssm_bt_summary *s);

#endif
