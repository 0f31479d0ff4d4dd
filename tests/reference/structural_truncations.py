#!/usr/bin/python3
"""Regenerates tests/reference/fixtures/kalman/structural_air_bsm_truncations.txt.

Reference: statsmodels' UnobservedComponents('lltrend', seasonal=12, use_exact_diffuse=True)
(the BSM) on the first k points of AirPassengers, raw and logged, k = 120..144: the windows
a backtest trains on. statsmodels' default MLE (L-BFGS from its own starting values) is kept as is
("default"), and a best-effort optimum is searched as well ("best": L-BFGS, Nelder-Mead and
L-BFGS again from the default optimum and from a few other starting points, the highest
log-likelihood kept), so the C test can require ssmd's optimum to be at least as good as
both.

Run from the repository root:  /usr/bin/python3 tests/reference/structural_truncations.py
Output: one line per window "raw|log k llf_default llf_best p1 p2 p3 p4" (p: the best
parameters, statsmodels' order sigma2.irregular sigma2.level sigma2.trend sigma2.seasonal).
"""
import os
import warnings

import numpy as np
import pandas as pd
import statsmodels
from statsmodels.tsa.statespace.structural import UnobservedComponents

warnings.simplefilter("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "reference", "fixtures", "kalman",
                   "structural_air_bsm_truncations.txt")


def main():
    raw = pd.read_csv(os.path.join(ROOT, "tests", "data", "AirPassengers.csv"))["value"]
    raw = raw.values.astype(float)
    lines = []
    for scale, y, k in [(s, y, k) for s, y in [("raw", raw), ("log", np.log(raw))]
                        for k in range(120, 145)]:
        mod = UnobservedComponents(y[:k], "lltrend", seasonal=12, use_exact_diffuse=True)
        default = mod.fit(disp=False)
        cands = [default]
        v = np.var(np.diff(y[:k]))
        starts = [default.params, mod.start_params,
                  np.array([0.5, 0.25, 1e-4, 0.1]) * v, np.array([0.1, 1.0, 1e-3, 0.05]) * v,
                  np.array([1.0, 0.1, 0.5, 0.1]) * v]
        for s in starts:
            r1 = mod.fit(s, disp=False, maxiter=2000)
            r2 = mod.fit(r1.params, method="nm", disp=False, maxiter=20000)
            r3 = mod.fit(r2.params, disp=False, maxiter=2000)
            cands += [r1, r2, r3]
        best = max(cands, key=lambda r: r.llf)
        lines.append("%s %d %r %r %s" % (scale, k, float(default.llf), float(best.llf),
                                         " ".join(repr(float(p)) for p in best.params)))
        print(lines[-1], flush=True)
    with open(OUT, "w") as f:
        f.write("# statsmodels %s UnobservedComponents('lltrend', seasonal=12, "
                "use_exact_diffuse=True) on AirPassengers[:k] (raw) and log(AirPassengers)[:k]\n"
                % statsmodels.__version__)
        f.write("# scale k llf_default llf_best sigma2.irregular sigma2.level sigma2.trend "
                "sigma2.seasonal (best)\n")
        for line in lines:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
