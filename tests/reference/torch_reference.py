#!/usr/bin/python3
"""tests/reference/torch_reference.py — regenerates tests/reference/fixtures/neural/*.txt,
the PyTorch (Debian python3-torch, CPU, float64) reference for neural_ssm/.

    /usr/bin/python3 tests/reference/torch_reference.py

Inputs are drawn from a fixed numpy seed and rounded to float32 (so the C side reads exactly
the same numbers); outputs and gradients are computed by autograd in float64 from the
equations in torch_neural.py. File format: one record per line, `name count v1 v2 ...`.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_neural as tn  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "neural")
torch.set_default_dtype(torch.float64)


class Writer:
    def __init__(self, path):
        self.f = open(path, "w")

    def put(self, name, arr, exact32=False):
        a = np.asarray(arr.detach().numpy() if torch.is_tensor(arr) else arr,
                       dtype=np.float64).reshape(-1)
        fmt = "%.9g" if exact32 else "%.17g"
        self.f.write(name + " %d " % a.size + " ".join(fmt % v for v in a) + "\n")

    def close(self):
        self.f.close()


def f32(rng, *shape, scale=1.0, shift=0.0):
    return np.asarray(rng.standard_normal(shape) * scale + shift, dtype=np.float32)


def leaf(a):
    return torch.tensor(a.astype(np.float64), requires_grad=True)


def grads_of(out, dout, *leaves):
    for t in leaves:
        t.grad = None
    (out * torch.as_tensor(dout.astype(np.float64))).sum().backward()
    return [t.grad for t in leaves]


def layers(rng, w):
    # Linear
    x, W, b = f32(rng, 6, 5), f32(rng, 4, 5), f32(rng, 4)
    dout = f32(rng, 6, 4)
    tx, tW, tb = leaf(x), leaf(W), leaf(b)
    out = tn.linear(tx, tW, tb)
    gx, gW, gb = grads_of(out, dout, tx, tW, tb)
    for n, v in [("x", x), ("w", W), ("b", b), ("dout", dout)]:
        w.put("linear." + n, v, True)
    for n, v in [("out", out), ("dx", gx), ("dw", gW), ("db", gb)]:
        w.put("linear." + n, v)
    # RMSNorm
    x, g = f32(rng, 6, 5), f32(rng, 5, shift=1.0, scale=0.2)
    dout = f32(rng, 6, 5)
    tx, tg = leaf(x), leaf(g)
    out = tn.rmsnorm(tx, tg)
    gx, gg = grads_of(out, dout, tx, tg)
    for n, v in [("x", x), ("w", g), ("dout", dout)]:
        w.put("rmsnorm." + n, v, True)
    for n, v in [("out", out), ("dx", gx), ("dw", gg)]:
        w.put("rmsnorm." + n, v)
    # causal depthwise conv
    x, cw, cb = f32(rng, 2, 7, 3), f32(rng, 3, 4), f32(rng, 3)
    dout = f32(rng, 2, 7, 3)
    tx, tw, tb = leaf(x), leaf(cw), leaf(cb)
    out = tn.conv1d_causal(tx, tw, tb)
    gx, gw, gb = grads_of(out, dout, tx, tw, tb)
    for n, v in [("x", x), ("w", cw), ("b", cb), ("dout", dout)]:
        w.put("conv1d." + n, v, True)
    for n, v in [("out", out), ("dx", gx), ("dw", gw), ("db", gb)]:
        w.put("conv1d." + n, v)
    # SiLU, softplus (including the x > 20 branch)
    x = np.concatenate([f32(rng, 18, scale=3.0), np.array([25.0, -30.0], dtype=np.float32)])
    dout = f32(rng, 20)
    for name, fn in [("silu", tn.silu), ("softplus", tn.softplus)]:
        tx = leaf(x)
        out = fn(tx)
        (gx,) = grads_of(out, dout, tx)
        w.put(name + ".x", x, True)
        w.put(name + ".dout", dout, True)
        w.put(name + ".out", out)
        w.put(name + ".dx", gx)
    # selective scan, with and without the gate; L = 37 crosses two chunk boundaries
    B, L, D, N = 2, 37, 3, 4
    u = f32(rng, B, L, D)
    delta = np.asarray(np.log1p(np.exp(f32(rng, B, L, D, shift=-1.0))), dtype=np.float32)
    A = -np.asarray(np.exp(f32(rng, D, N, scale=0.5)), dtype=np.float32)
    Bm, Cm, Dk, z = f32(rng, B, L, N), f32(rng, B, L, N), f32(rng, D), f32(rng, B, L, D)
    dy = f32(rng, B, L, D)
    for n, v in [("u", u), ("delta", delta), ("A", A), ("B", Bm), ("C", Cm), ("D", Dk),
                 ("z", z), ("dy", dy)]:
        w.put("scan." + n, v, True)
    for gate in (1, 0):
        ts = [leaf(a) for a in (u, delta, A, Bm, Cm, Dk, z)]
        y = tn.selective_scan(*ts[:6], ts[6] if gate else None)
        gs = grads_of(y, dy, *ts)
        pre = "scan.gate%d." % gate
        w.put(pre + "y", y)
        for n, g in zip(["du", "ddelta", "dA", "dB", "dC", "dD", "dz"], gs):
            if n == "dz" and not gate:
                continue
            w.put(pre + n, g)
    # S4D kernel
    D, N, L = 3, 4, 20
    log_dt = np.asarray(rng.uniform(np.log(1e-2), np.log(0.5), D), dtype=np.float32)
    C_re, C_im = f32(rng, D, N, scale=0.7), f32(rng, D, N, scale=0.7)
    log_A_re = f32(rng, D, N, scale=0.2, shift=np.log(0.5))
    A_im = np.asarray(np.pi * np.arange(N)[None, :] + 0.3 * rng.standard_normal((D, N)),
                      dtype=np.float32)
    dK = f32(rng, D, L)
    ts = [leaf(a) for a in (log_dt, C_re, C_im, log_A_re, A_im)]
    K = tn.s4d_kernel(*ts, L)
    gs = grads_of(K, dK, *ts)
    for n, v in [("log_dt", log_dt), ("C_re", C_re), ("C_im", C_im), ("log_A_re", log_A_re),
                 ("A_im", A_im), ("dK", dK)]:
        w.put("s4dk." + n, v, True)
    w.put("s4dk.K", K)
    for n, g in zip(["dlog_dt", "dC_re", "dC_im", "dlog_A_re", "dA_im"], gs):
        w.put("s4dk." + n, g)
    # S4D convolution, short (direct loops in C) and long (FFT in C), odd batch
    for tag, L in (("short", 20), ("long", 70)):
        B, D = 3, 2
        u, K, Dk, dy = f32(rng, B, L, D), f32(rng, D, L, scale=0.3), f32(rng, D), f32(rng, B, L, D)
        ts = [leaf(a) for a in (u, K, Dk)]
        y = tn.s4d_conv(*ts)
        gs = grads_of(y, dy, *ts)
        pre = "s4dconv.%s." % tag
        for n, v in [("u", u), ("K", K), ("D", Dk), ("dy", dy)]:
            w.put(pre + n, v, True)
        w.put(pre + "y", y)
        for n, g in zip(["du", "dK", "dD"], gs):
            w.put(pre + n, g)


def forecaster(rng, mixer, path):
    c = tn.Config(mixer=mixer, context=16, horizon=3, d_model=8, n_layers=2, d_state=4,
                  periods=[7.0], quantiles=[0.1, 0.25, 0.5, 0.75, 0.9])
    p = tn.random_params(c, rng)
    B = 3
    wins = np.asarray(rng.standard_normal((B, c.context + c.horizon)) * 5 + 100, dtype=np.float64)
    wins = wins.astype(np.float32).astype(np.float64)
    wins[0, 3] = wins[0, 4] = np.nan      # a gap inside the context
    wins[1, :5] = np.nan                  # padding before the series starts
    wins[2, 17] = np.nan                  # a missing target
    cal0 = np.array([0, 5, 123456], dtype=np.float64)
    w = Writer(path)
    w.put("config", [1 if mixer == "s4d" else 2, c.context, c.horizon, c.d_model, c.n_layers,
                     c.d_state, c.expand, c.d_conv, c.dt_rank] + c.periods, True)
    w.put("quantiles", c.quantiles, True)
    w.put("params", tn.flat(p).numpy().astype(np.float32), True)
    w.put("windows", wins, True)
    w.put("cal0", cal0, True)
    P = c.context - c.context // 2
    loss, q = tn.forecaster_loss(c, p, wins, cal0, P)
    for t in p.values():
        t.grad = None
    loss.backward()
    w.put("loss", loss.reshape(1))
    w.put("q", q)
    w.put("grads", torch.cat([t.grad.reshape(-1) for t in p.values()]))
    with torch.no_grad():
        eloss, eq = tn.forecaster_loss(c, p, wins, cal0, 1)
    w.put("eval_loss", eloss.reshape(1))
    w.put("eval_q", eq)
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20260101)
    w = Writer(os.path.join(OUT, "layers.txt"))
    layers(rng, w)
    w.close()
    forecaster(rng, "mamba", os.path.join(OUT, "forecaster_mamba.txt"))
    forecaster(rng, "s4d", os.path.join(OUT, "forecaster_s4d.txt"))
    print("wrote", OUT, "(torch %s)" % torch.__version__)


if __name__ == "__main__":
    main()
