"""tests/bench/bench_fleet_statsmodels.py — the peer of bench_fleet.sh: statsmodels'
UnobservedComponents local level, fitted by MLE and forecast 48 steps with an interval, on
the series of a CSV (series_id, i, value ordered by series and i). Prints the seconds the
fits and forecasts took in total (CSV reading excluded). Run with Debian's /usr/bin/python3.
"""
import csv
import sys
import time
import warnings

import numpy as np
from statsmodels.tsa.statespace.structural import UnobservedComponents


def main():
    series = {}
    with open(sys.argv[1]) as f:
        for sid, _, value in csv.reader(f):
            series.setdefault(sid, []).append(float(value))
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    for values in series.values():
        res = UnobservedComponents(np.asarray(values), level="local level").fit(disp=False)
        fc = res.get_forecast(48)
        fc.predicted_mean, fc.conf_int(alpha=0.1)
    print(f"{time.perf_counter() - start:.6f}")


if __name__ == "__main__":
    main()
