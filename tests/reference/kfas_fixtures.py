#!/usr/bin/python3
"""Copies R KFAS reference outputs shipped with statsmodels into
tests/reference/fixtures/kalman/ and writes the extra pieces the C tests need.

Source: Debian's python3-statsmodels (0.13.5),
/usr/lib/python3/dist-packages/statsmodels/tsa/statespace/tests/results/ — KFAS (R)
output for exact diffuse filtering/smoothing (test_exact_diffuse_filtering.py) and for
an AR(3) with missing values (results_smoothing3_R.csv, test_smoothing.py).
The CSVs are copied verbatim (kfas_*.csv); SOURCES.txt records their origin and sha256.

results_smoothing3_R.csv has no data column and no log-likelihood, so this script also
writes kfas_smoothing3_data.txt (the observations: differenced WPI with observations
10..20 missing, from results_wpi1_ar3_stata.csv, as test_smoothing.py builds them) and
kfas_smoothing3_statsmodels.txt (statsmodels' log-likelihood and filtered states for the
same model: SARIMAX(3,0,0), hamilton representation, params .5270715 .0952613 .2580355
sigma2 .5307459, stationary initialization).

Run from the repository root:  /usr/bin/python3 tests/reference/kfas_fixtures.py
"""
import hashlib
import os
import shutil
import warnings

import numpy as np
import pandas as pd
import statsmodels
from statsmodels.tsa.statespace import sarimax

warnings.simplefilter("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "reference", "fixtures", "kalman")
SRC = os.path.join(os.path.dirname(statsmodels.__file__), "tsa", "statespace", "tests", "results")

FILES = {
    "results_exact_initial_local_level_R.csv": "kfas_local_level.csv",
    "results_exact_initial_local_linear_trend_R.csv": "kfas_local_linear_trend.csv",
    "results_exact_initial_local_linear_trend_missing_R.csv": "kfas_local_linear_trend_missing.csv",
    "results_smoothing3_R.csv": "kfas_smoothing3.csv",
}


def main():
    os.makedirs(OUT, exist_ok=True)
    lines = ["# KFAS reference outputs copied from statsmodels %s" % statsmodels.__version__,
             "# source directory: %s" % SRC]
    for src, dst in FILES.items():
        shutil.copyfile(os.path.join(SRC, src), os.path.join(OUT, dst))
        digest = hashlib.sha256(open(os.path.join(OUT, dst), "rb").read()).hexdigest()
        lines.append("%s <- %s sha256 %s" % (dst, src, digest))
    with open(os.path.join(OUT, "SOURCES.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

    # smoothing3: data and statsmodels' figures
    stata = pd.read_csv(os.path.join(SRC, "results_wpi1_ar3_stata.csv"))
    dwpi = stata["wpi"].diff()
    dwpi.iloc[10:21] = np.nan
    y = dwpi.iloc[1:].values
    mod = sarimax.SARIMAX(y, order=(3, 0, 0), hamilton_representation=True)
    params = np.r_[.5270715, .0952613, .2580355, .5307459]
    res = mod.smooth(params, return_ssm=True)
    with open(os.path.join(OUT, "kfas_smoothing3_data.txt"), "w") as f:
        f.write("# y: diff(wpi)[1:], observations 10..20 (0-based, before dropping the first) missing\n")
        f.write("n %d\n" % len(y))
        f.write("y %s\n" % " ".join("nan" if np.isnan(v) else repr(float(v)) for v in y))
    with open(os.path.join(OUT, "kfas_smoothing3_statsmodels.txt"), "w") as f:
        f.write("# statsmodels %s: SARIMAX(3,0,0) hamilton, params %s\n"
                % (statsmodels.__version__, " ".join(map(repr, params))))
        f.write("llf %r\n" % float(res.llf))
        att = res.filtered_state  # (3, n)
        for i in range(3):
            f.write("att_%d %s\n" % (i + 1, " ".join(repr(float(v)) for v in att[i])))
        P1 = res.predicted_state_cov[:, :, 0]
        f.write("P1 %s\n" % " ".join(repr(float(v)) for v in P1.ravel()))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
