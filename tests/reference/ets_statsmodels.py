#!/usr/bin/python3
"""Regenerates the ETS fixtures tests/reference/fixtures/kalman/ets_<case>_sm.txt.

Reference: statsmodels' ETSModel (Debian's python3-statsmodels 0.13.5), additive errors,
initialization_method="estimated": the initial states are parameters, like R's ets, and
the log-likelihood is the exact Gaussian one with the scale concentrated out,
-n/2 (log(2 pi SSE / n) + 1). Parameter order and names are statsmodels'; the last
initial seasonal value is fixed at 0 (the level absorbs it), and initial_seasonal.j is
the seasonal state j steps before the first observation's season, i.e. s_{-j}.

Besides the fit we record, at the fitted parameters, the one-step predictions and the
h-step forecast means and variances (analytic, additive model), which do not depend on
how a state space form is laid out.

Run from the repository root:  /usr/bin/python3 tests/reference/ets_statsmodels.py
"""
import os
import warnings

import numpy as np
import pandas as pd
from statsmodels import __version__ as smversion
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

warnings.simplefilter("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "reference", "fixtures", "kalman")

CASES = [
    # name, data, log, trend, damped, seasonal, period
    ("ann_nile", "Nile.csv", False, None, False, None, 1),
    ("aan_air", "AirPassengers.csv", True, "add", False, None, 1),
    ("aadn_air", "AirPassengers.csv", True, "add", True, None, 1),
    ("ana_ukgas", "UKgas.csv", True, None, False, "add", 4),
    ("aaa_air", "AirPassengers.csv", False, "add", False, "add", 12),
    ("aada_ukgas", "UKgas.csv", True, "add", True, "add", 4),
]


def fmt(v):
    return " ".join("%.17g" % x for x in np.atleast_1d(v))


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data, log, trend, damped, seasonal, period in CASES:
        y = pd.read_csv(os.path.join(ROOT, "tests", "data", data))["value"].values
        y = y.astype(float)
        if log:
            y = np.log(y)
        y = pd.Series(y)
        mod = ETSModel(y, error="add", trend=trend, damped_trend=damped,
                       seasonal=seasonal, seasonal_periods=period if seasonal else None)
        res = mod.fit(disp=0, maxiter=5000)
        ll = mod.loglike(res.params)
        h = 2 * max(period, 6)
        fc = res.get_prediction(start=len(y), end=len(y) + h - 1).summary_frame()
        with open(os.path.join(OUT, "ets_%s_sm.txt" % name), "w") as f:
            f.write("# ETS fixture written by tests/reference/ets_statsmodels.py\n")
            f.write("# statsmodels %s ETSModel(error=add, trend=%s, damped=%s, seasonal=%s,"
                    " period=%d) on %s%s\n" % (smversion, trend, damped, seasonal, period,
                                               "log " if log else "", data))
            f.write("data %s\n" % data)
            f.write("log %d\n" % int(log))
            f.write("model A %s %d %s %d\n" % ("A" if trend else "N", int(damped),
                                             "A" if seasonal else "N", period))
            f.write("names %s\n" % " ".join(mod.param_names))
            f.write("params %s\n" % fmt(np.asarray(res.params)))
            f.write("loglik %s\n" % fmt(ll))
            f.write("aicc %s\n" % fmt(res.aicc))
            f.write("pred %s\n" % fmt(np.asarray(res.fittedvalues)))
            f.write("forecast_mean %s\n" % fmt(fc["mean"].values))
            # the prediction interval's variance: ((pi_upper - mean) / z_0.975)^2
            z = 1.959963984540054
            sd = (fc["pi_upper"].values - fc["mean"].values) / z
            f.write("forecast_var %s\n" % fmt(sd * sd))
        print(name, np.asarray(res.params)[:4], ll)


if __name__ == "__main__":
    main()
