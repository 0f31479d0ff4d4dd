#!/usr/bin/python3
"""statsmodels' side of tests/bench/bench_kalman: the same fits, timed in-process.

Usage: /usr/bin/python3 tests/bench/bench_kalman.py DATA_DIR SIM_CSV [REPEATS]
Times are CPU seconds of this process (the machine may be shared; BLAS threads count).
Prints one line per fit: "name median_seconds loglik nparams p1 p2 ..." with the
parameters in ssmd's order and names (statsmodels' own order for these models).
The simulated series (SIM_CSV, written by bench_kalman --write-sim) are each fitted once;
bench_kalman takes the median per series.
"""
import sys
import time
import warnings

import numpy as np
import pandas as pd
import statsmodels
import statsmodels.api as sm

warnings.simplefilter("ignore")


def timed(fn, repeats, calibrate=True):
    """Median CPU seconds per call over `repeats` batches; short fits run in batches of k
    calls so that a batch takes at least ~50 ms (calibrate=False: single calls)."""
    k = 1
    if calibrate:
        t0 = time.process_time()
        fn()
        first = time.process_time() - t0
        k = max(1, int(np.ceil(0.05 / max(first, 1e-4)))) if first < 0.02 else 1
    times, res = [], None
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(k):
            res = fn()
        times.append((time.process_time() - t0) / k)
    return float(np.median(times)), res


def emit(name, seconds, res):
    p = np.asarray(res.params, float)
    print("%s %.9g %.17g %d %s" % (name, seconds, res.llf, len(p),
                                   " ".join("%.17g" % x for x in p)), flush=True)


def main():
    data, sim = sys.argv[1], sys.argv[2]
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    print("# statsmodels %s" % statsmodels.__version__)
    nile = pd.read_csv("%s/Nile.csv" % data)["value"].values.astype(float)
    air = np.log(pd.read_csv("%s/AirPassengers.csv" % data)["value"].values.astype(float))
    t, r = timed(lambda: sm.tsa.UnobservedComponents(nile, "local level").fit(disp=0),
                 4 * repeats)
    emit("nile_local_level", t, r)
    t, r = timed(lambda: sm.tsa.SARIMAX(air, order=(0, 1, 1),
                                        seasonal_order=(0, 1, 1, 12)).fit(disp=0), repeats)
    emit("airline_sarima", t, r)
    t, r = timed(lambda: sm.tsa.UnobservedComponents(air, "local linear trend",
                                                     seasonal=12).fit(disp=0), repeats)
    emit("bsm_log_air", t, r)
    Y = np.loadtxt(sim, delimiter=",", ndmin=2)
    for i, y in enumerate(Y):
        t, r = timed(lambda: sm.tsa.UnobservedComponents(y, "local linear trend",
                                                         seasonal=24).fit(disp=0), 1, False)
        emit("sim:%d" % i, t, r)


if __name__ == "__main__":
    main()
