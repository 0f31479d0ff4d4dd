#!/usr/bin/python3
"""Regenerates the SARIMA fixtures under tests/reference/fixtures/kalman/sarima_*.txt.

Reference: statsmodels' SARIMAX (Debian's python3-statsmodels 0.13.5) with the default
simple_differencing=False, i.e. differencing inside the state vector. Its default
log-likelihood initialises the differencing states approximately diffuse (variance 1e6)
and burns the first d + s*D observations; that is the likelihood of the differenced data,
which is also what R's arima reports. We record both that figure and the exact one (the
same ARMA model fitted to the explicitly differenced series, stationary initialisation,
no approximation), and check here that they agree.

Run from the repository root:  /usr/bin/python3 tests/reference/sarima_statsmodels.py
Output format: one "key value value ..." line per item; '#' starts a comment.
"""
import os
import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm

warnings.simplefilter("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "reference", "fixtures", "kalman")


def load(name, log):
    y = pd.read_csv(os.path.join(ROOT, "tests", "data", name))["value"].values.astype(float)
    return np.log(y) if log else y


def difference(y, d, D, s):
    w = y.copy()
    for _ in range(d):
        w = w[1:] - w[:-1]
    for _ in range(D):
        w = w[s:] - w[:-s]
    return w


def fmt(v):
    return " ".join("%.17g" % x for x in np.atleast_1d(v))


def case(name, data, log, order, sorder, trend, fixed, horizon=24):
    y = load(data, log)
    p, d, q = order
    P, D, Q, s = sorder
    mod = sm.tsa.SARIMAX(y, order=order, seasonal_order=sorder, trend=trend)
    res = mod.fit(disp=0, maxiter=1000)
    fixed = np.asarray(fixed, float)
    approx = mod.loglike(fixed)

    # exact likelihood of the differenced data: the same ARMA on w, stationary init
    w = difference(y, d, D, s)
    modw = sm.tsa.SARIMAX(w, order=(p, 0, q), seasonal_order=(P, 0, Q, s if s else 0),
                          trend=trend)
    exact = modw.loglike(fixed)
    assert abs(exact - approx) < 1e-6 * abs(exact), (exact, approx)

    # one-step predictions, their variances and forecasts at the fixed parameters from
    # the exact diffuse filter (these do not depend on the state basis)
    mode = sm.tsa.SARIMAX(y, order=order, seasonal_order=sorder, trend=trend,
                          use_exact_diffuse=True)
    fe = mode.filter(fixed)
    k = d + s * D
    pred = fe.forecasts[0]
    predvar = fe.forecasts_error_cov[0, 0]
    fc = fe.get_forecast(horizon)
    with open(os.path.join(OUT, "sarima_%s.txt" % name), "w") as f:
        f.write("# SARIMA fixture written by tests/reference/sarima_statsmodels.py\n")
        f.write("# statsmodels %s, SARIMAX%s%s trend=%s on %s%s\n"
                % (sm.__version__, order, sorder, trend, "log " if log else "", data))
        f.write("data %s\n" % data)
        f.write("log %d\n" % int(log))
        f.write("order %d %d %d %d %d %d %d %d\n"
                % (p, d, q, P, D, Q, s, int(trend == "c")))
        f.write("names %s\n" % " ".join(mod.param_names))
        f.write("mle_params %s\n" % fmt(res.params))
        f.write("mle_loglik %s\n" % fmt(res.llf))
        f.write("mle_aicc %s\n" % fmt(res.aicc))
        f.write("fixed_params %s\n" % fmt(fixed))
        f.write("fixed_loglik %s\n" % fmt(exact))
        f.write("fixed_loglik_approx_diffuse %s\n" % fmt(approx))
        f.write("nskip %d\n" % k)
        f.write("pred %s\n" % fmt(pred[k:]))
        f.write("pred_var %s\n" % fmt(predvar[k:]))
        f.write("forecast_mean %s\n" % fmt(fc.predicted_mean))
        f.write("forecast_var %s\n" % fmt(fc.var_pred_mean))
    print(name, res.params, res.llf, exact)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    # the airline model on log(AirPassengers)
    case("airline", "AirPassengers.csv", True, (0, 1, 1), (0, 1, 1, 12), None,
         [-0.4018, -0.5569, 0.001348])
    # a stationary ARMA(2,1) with an intercept on the Nile (no differencing, stationary init)
    case("nile_arma", "Nile.csv", False, (2, 0, 1), (0, 0, 0, 0), "c",
         [367.0, 0.5, 0.1, -0.1, 20000.0])
    # seasonal AR and MA with both differences on log(UKgas): product polynomials
    case("ukgas", "UKgas.csv", True, (1, 1, 1), (1, 1, 1, 4), None,
         [-0.2, -0.85, -0.2, -0.05, 0.011])
    # an intercept with d = 1 (a drift in y)
    case("airline_drift", "AirPassengers.csv", True, (1, 1, 0), (0, 1, 1, 12), "c",
         [0.0005, -0.35, -0.55, 0.0014])
