#!/usr/bin/python3
"""tests/bench/bench_neural_torch.py — the PyTorch side of bench_neural_cpu: times one
training step (forward + backward of the pinball loss) and one single-series forecast of the
forecaster in tests/reference/torch_neural.py, float32 on the CPU, with the given threads
and sizes. Prints `torch_train_ms <ms> torch_forecast_ms <ms>` (medians)."""
import argparse
import os
import sys
import time

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "reference"))
import torch_neural as tn  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixer", default="mamba")
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--d_model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--state", type=int, default=16)
    ap.add_argument("--horizon", type=int, default=24)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=1, help="timed training steps")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    c = tn.Config(mixer=a.mixer, context=a.context, horizon=a.horizon, d_model=a.d_model,
                  n_layers=a.layers, d_state=a.state, periods=[24.0])
    rng = np.random.default_rng(1)
    p = tn.random_params(c, rng, dtype=torch.float32)
    L, H = c.context, c.horizon
    t = np.arange(L + H)
    wins = [100 + 10 * np.sin(2 * np.pi * (t + 7 * b) / 24) + rng.standard_normal(L + H)
            for b in range(a.batch)]
    feats, wns = [], []
    for b, w in enumerate(wins):
        f, mu, sg, wn = tn.prepare_window(c, list(w), b)
        feats.append(f)
        wns.append(wn)
    feat = torch.tensor(np.stack(feats), dtype=torch.float32)
    wn = torch.tensor(np.stack(wns), dtype=torch.float32)
    P = L - L // 2

    def step():
        for v in p.values():
            v.grad = None
        q = tn.network(c, p, feat, P)
        loss = tn.pinball(c, q, wn, P)
        loss.backward()

    step()  # warm-up (allocator, thread pool)
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    train_ms = 1000 * sorted(times)[len(times) // 2]
    f1 = feat[:1]
    torch.set_num_threads(1)  # a single-series forecast, one thread, as on the C side
    ftimes = []
    with torch.no_grad():
        for _ in range(max(5, a.reps)):
            t0 = time.perf_counter()
            tn.network(c, p, f1, 1)
            ftimes.append(time.perf_counter() - t0)
    forecast_ms = 1000 * sorted(ftimes)[len(ftimes) // 2]
    print("torch_train_ms %.3f torch_forecast_ms %.3f" % (train_ms, forecast_ms))


if __name__ == "__main__":
    main()
