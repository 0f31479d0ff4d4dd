#!/usr/bin/python3
"""Regenerates the structural-model fixtures tests/reference/fixtures/kalman/structural_*.txt.

Reference: statsmodels' UnobservedComponents (Debian's python3-statsmodels 0.13.5) with
exact diffuse initialization (use_exact_diffuse=True), fitted by its default MLE
(L-BFGS from its own starting values, then a Nelder-Mead polish from the same optimum
for robustness; the better of the two is kept). For each fit we record the parameters
(statsmodels' names), log-likelihood, AIC, AICc, BIC, nobs, nobs_diffuse, df_model, and,
at those parameters, the final predicted state a_{n+1}, P_{n+1} and 12-step forecasts
(mean, variance), so the C tests can check the filter and forecasts at fixed parameters
as well as the optimizer. structural_air_bsm_smooth.txt holds statsmodels' filter and
smoother output for the BSM with missing values at fixed parameters.

Run from the repository root:  /usr/bin/python3 tests/reference/structural_statsmodels.py
Output format: one "key value value ..." line per item; '#' starts a comment.
"""
import os
import warnings

import numpy as np
import pandas as pd
import statsmodels
from statsmodels.tsa.statespace.structural import UnobservedComponents

warnings.simplefilter("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "reference", "fixtures", "kalman")


def load(name, log):
    y = pd.read_csv(os.path.join(ROOT, "tests", "data", name))["value"].values.astype(float)
    return np.log(y) if log else y


def fit(y, **kw):
    mod = UnobservedComponents(y, use_exact_diffuse=True, **kw)
    res = mod.fit(disp=False, maxiter=2000)
    res2 = mod.fit(res.params, method="nm", disp=False, maxiter=20000)
    res3 = mod.fit(res2.params, disp=False, maxiter=2000)
    best = max([res, res2, res3], key=lambda r: r.llf)
    return mod, best


def write(path, label, data, mod, res, h=12):
    fc = res.get_forecast(h)
    with open(path, "w") as f:
        f.write("# statsmodels %s UnobservedComponents(%s, use_exact_diffuse=True) on %s\n"
                % (statsmodels.__version__, label, data))
        f.write("names %s\n" % " ".join(mod.param_names))
        f.write("params %s\n" % " ".join(repr(float(v)) for v in res.params))
        for key in ["llf", "aic", "aicc", "bic"]:
            f.write("%s %r\n" % (key, float(getattr(res, key))))
        f.write("nobs %d\n" % res.nobs)
        f.write("nobs_diffuse %d\n" % res.nobs_diffuse)
        f.write("df_model %d\n" % res.df_model)
        fr = res.filter_results
        f.write("a_end %s\n" % " ".join(repr(float(v)) for v in fr.predicted_state[:, -1]))
        f.write("P_end %s\n" % " ".join(repr(float(v)) for v in fr.predicted_state_cov[:, :, -1].ravel()))
        f.write("fc_mean %s\n" % " ".join(repr(float(v)) for v in fc.predicted_mean))
        f.write("fc_var %s\n" % " ".join(repr(float(v)) for v in fc.var_pred_mean))


def main():
    os.makedirs(OUT, exist_ok=True)
    nile = load("Nile.csv", False)
    air = load("AirPassengers.csv", True)
    cases = [
        ("structural_nile_llevel.txt", "'llevel'", "Nile", nile, dict(level="llevel")),
        ("structural_nile_lltrend.txt", "'lltrend'", "Nile", nile, dict(level="lltrend")),
        ("structural_air_lltrend.txt", "'lltrend'", "log(AirPassengers)", air, dict(level="lltrend")),
        ("structural_air_bsm.txt", "'lltrend', seasonal=12", "log(AirPassengers)", air,
         dict(level="lltrend", seasonal=12)),
        # trigonometric seasonal with the harmonic at pi: statsmodels keeps its (never
        # observed) sine state, ssmd drops it; likelihood and forecasts are the same
        ("structural_air_trig.txt", "'lltrend', freq_seasonal=[{'period': 12, 'harmonics': 6}]",
         "log(AirPassengers)", air,
         dict(level="lltrend", freq_seasonal=[{"period": 12, "harmonics": 6}])),
    ]
    for fname, label, data, y, kw in cases:
        mod, res = fit(y, **kw)
        write(os.path.join(OUT, fname), label, data, mod, res)
        print(fname, res.llf, res.params)
    smooth_fixture(air)


def smooth_fixture(air):
    """Filter + smoother of the BSM (13 states, exact diffuse) on log(AirPassengers) with
    observations 3, 20, 21 and 100 missing (one inside the diffuse phase), at fixed
    parameters: statsmodels' smoothed states, their variances (diagonal), the smoothed
    disturbances and their variances, the predicted states and the log-likelihood."""
    y = air.copy()
    y[[3, 20, 21, 100]] = np.nan
    params = [1.3e-4, 7.0e-4, 2.0e-6, 6.4e-5]
    mod = UnobservedComponents(y, level="lltrend", seasonal=12, use_exact_diffuse=True)
    res = mod.smooth(params)
    with open(os.path.join(OUT, "structural_air_bsm_smooth.txt"), "w") as f:
        f.write("# statsmodels %s UnobservedComponents('lltrend', seasonal=12, use_exact_diffuse=True)"
                " on log(AirPassengers), y[3,20,21,100] = NaN, smooth(params)\n" % statsmodels.__version__)
        f.write("params %s\n" % " ".join(map(repr, params)))
        f.write("missing 3 20 21 100\n")
        f.write("llf %r\n" % float(res.llf))
        f.write("nobs_diffuse %d\n" % res.nobs_diffuse)
        m = mod.k_states
        f.write("m %d\n" % m)
        flat = lambda a: " ".join(repr(float(v)) for v in np.asarray(a).ravel())
        # arrays are (n, ...) row-major: time first
        f.write("a_pred %s\n" % flat(res.predicted_state[:, :-1].T))
        f.write("ahat %s\n" % flat(res.smoothed_state.T))
        f.write("Vdiag %s\n" % flat(np.array([np.diag(res.smoothed_state_cov[:, :, t])
                                               for t in range(mod.nobs)])))
        f.write("eps_hat %s\n" % flat(res.smoothed_measurement_disturbance[0]))
        f.write("eps_var %s\n" % flat(res.smoothed_measurement_disturbance_cov[0, 0]))
        f.write("eta_hat %s\n" % flat(res.smoothed_state_disturbance.T))
        f.write("eta_vardiag %s\n" % flat(np.array([np.diag(res.smoothed_state_disturbance_cov[:, :, t])
                                                     for t in range(mod.nobs)])))


if __name__ == "__main__":
    main()
