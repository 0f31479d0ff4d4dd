#!/usr/bin/python3
"""tests/reference/torch_neural.py — the neural forecaster of neural_ssm/ written again in
PyTorch, straight from the equations (not from the C code), in float64.

Imported by torch_reference.py (which writes the committed fixtures the C tests read) and by
tests/bench/bench_neural_torch.py (the peer figure of bench_neural_cpu). Shapes: B batch,
L length, D channels, N state size; every activation is (B, L, D), row-major like the C side.
Parameters are kept in one ordered dict whose names, shapes and order are those of the C
model's tensor table, so a flat float32 vector moves between the two unchanged.
"""
import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

# ---- layers ---------------------------------------------------------------------------------


def linear(x, w, b=None):
    y = x @ w.t()
    return y + b if b is not None else y


def rmsnorm(x, w, eps=1e-5):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def conv1d_causal(x, w, b):
    """depthwise causal conv: x (B, L, C), w (C, K), b (C)"""
    C, K = w.shape
    xp = F.pad(x.transpose(1, 2), (K - 1, 0))
    return F.conv1d(xp, w.unsqueeze(1), b, groups=C).transpose(1, 2)


def silu(x):
    return x * torch.sigmoid(x)


def softplus(x):
    return F.softplus(x)  # log(1 + e^x), x above 20


def selective_scan(u, delta, A, Bm, Cm, Dskip, z=None):
    """h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t; y_t = C_t . h_t + D u_t; y *= silu(z)"""
    Bsz, L, D = u.shape
    N = A.shape[1]
    h = u.new_zeros(Bsz, D, N)
    ys = []
    for t in range(L):
        dl = delta[:, t, :, None]
        h = torch.exp(dl * A) * h + dl * Bm[:, t, None, :] * u[:, t, :, None]
        ys.append((h * Cm[:, t, None, :]).sum(-1) + Dskip * u[:, t])
    y = torch.stack(ys, 1)
    return y * silu(z) if z is not None else y


def s4d_kernel(log_dt, C_re, C_im, log_A_re, A_im, L):
    """K[d, l] = 2 Re sum_n Cbar_n exp(dt A_n)^l, Cbar = C (exp(dt A) - 1) / A (ZOH)"""
    dt = torch.exp(log_dt)[:, None]
    A = torch.complex(-torch.exp(log_A_re), A_im)
    C = torch.complex(C_re, C_im)
    dtA = A * dt
    Cbar = C * (torch.exp(dtA) - 1) / A
    ar = torch.arange(L, dtype=log_dt.dtype)
    vand = torch.exp(dtA[:, :, None] * ar)  # (D, N, L)
    return 2 * (Cbar[:, :, None] * vand).sum(1).real


def s4d_conv(u, K, Dskip):
    """y[b,t,d] = sum_{l<=t} K[d,l] u[b,t-l,d] + D u (rfft with 2L zero padding)"""
    Bsz, L, D = u.shape
    n = 2 * L
    uf = torch.fft.rfft(u.transpose(1, 2), n=n)
    kf = torch.fft.rfft(K, n=n)
    y = torch.fft.irfft(uf * kf, n=n)[..., :L].transpose(1, 2)
    return y + Dskip * u


# ---- the forecaster ----------------------------------------------------------------------------

DEFAULT_GRID = [0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975]


class Config:
    def __init__(self, mixer="mamba", context=16, horizon=3, d_model=8, n_layers=2, d_state=4,
                 expand=2, d_conv=4, dt_rank=0, periods=(), quantiles=DEFAULT_GRID):
        self.mixer, self.context, self.horizon = mixer, context, horizon
        self.d_model, self.n_layers, self.d_state = d_model, n_layers, d_state
        self.expand, self.d_conv = expand, d_conv
        self.dt_rank = dt_rank if dt_rank > 0 else (d_model + 15) // 16
        self.periods = list(periods)
        self.quantiles = list(quantiles)

    @property
    def features(self):
        return 2 + 2 * len(self.periods)


def param_shapes(c):
    """The C tensor table: ordered (name, shape)."""
    D, Fn, N, Di, R = c.d_model, c.features, c.d_state, c.expand * c.d_model, c.dt_rank
    HQ = c.horizon * len(c.quantiles)
    s = [("embed.w", (D, Fn)), ("embed.b", (D,))]
    for i in range(c.n_layers):
        p = "layers.%d." % i
        s.append((p + "norm.w", (D,)))
        if c.mixer == "mamba":
            s += [(p + "in_proj.w", (2 * Di, D)), (p + "conv.w", (Di, c.d_conv)),
                  (p + "conv.b", (Di,)), (p + "x_proj.w", (R + 2 * N, Di)),
                  (p + "dt_proj.w", (Di, R)), (p + "dt_proj.b", (Di,)),
                  (p + "A_log", (Di, N)), (p + "D", (Di,)), (p + "out_proj.w", (D, Di))]
        else:
            s += [(p + "log_dt", (D,)), (p + "C_re", (D, N)), (p + "C_im", (D, N)),
                  (p + "log_A_re", (D, N)), (p + "A_im", (D, N)), (p + "D", (D,)),
                  (p + "out_proj.w", (2 * D, D)), (p + "out_proj.b", (2 * D,))]
    s += [("norm_f.w", (D,)), ("head.w", (HQ, D)), ("head.b", (HQ,))]
    return s


def random_params(c, rng, dtype=torch.float64):
    """Random but well-conditioned parameters (float32-representable values)."""
    out = OrderedDict()
    for name, shape in param_shapes(c):
        v = rng.standard_normal(shape) * 0.3
        base = name.split(".")[-1] if "layers." in name else name
        if name.endswith("norm.w") or name == "norm_f.w":
            v = 1 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("A_log"):
            v = np.log(np.arange(1, shape[1] + 1))[None, :].repeat(shape[0], 0) + 0.1 * v
        elif name.endswith("dt_proj.b"):
            v = -3 + 0.5 * rng.standard_normal(shape)
        elif name.endswith("log_dt"):
            v = rng.uniform(math.log(1e-2), math.log(1e-1), shape)
        elif name.endswith("log_A_re"):
            v = math.log(0.5) + 0.1 * rng.standard_normal(shape)
        elif name.endswith("A_im"):
            v = math.pi * np.arange(shape[1])[None, :].repeat(shape[0], 0) + 0.1 * v
        elif base in ("w",) or name.endswith(".w"):
            v = v / math.sqrt(shape[-1])
        out[name] = torch.tensor(np.asarray(v, dtype=np.float32).astype(np.float64),
                                 dtype=dtype, requires_grad=True)
    return out


def flat(params):
    return torch.cat([p.detach().reshape(-1) for p in params.values()])


def prepare_window(c, w, cal0):
    """features (L, F), mu, sigma, normalised window (L+H, NaN = no target); as C."""
    L, H = c.context, c.horizon
    s = ss = 0.0
    cnt = 0
    for pas in range(2):
        if cnt >= 2:
            break
        end = max(L // 2, 1) if pas == 0 else L
        obs = [x for x in w[:end] if not math.isnan(x)]
        cnt = len(obs)
        if cnt:
            mean = sum(obs) / cnt
            s = sum(obs)
            ss = sum((x - mean) ** 2 for x in obs)
    mu = s / cnt if cnt else 0.0
    sigma = math.sqrt(ss / cnt) + 1e-5 * (abs(mu) + 1) if cnt else 1.0
    feat = np.zeros((L, c.features))
    obs_idx = [t for t in range(L) if not math.isnan(w[t])]
    for t in range(L):
        if not math.isnan(w[t]):
            v, miss = w[t], 0.0
        else:
            prev = max([i for i in obs_idx if i < t], default=None)
            nxt = min([i for i in obs_idx if i > t], default=None)
            if prev is None and nxt is None:
                v = mu
            elif prev is None:
                v = w[nxt]
            elif nxt is None:
                v = w[prev]
            else:
                v = w[prev] + (w[nxt] - w[prev]) * (t - prev) / (nxt - prev)
            miss = 1.0
        feat[t, 0] = np.float32((v - mu) / sigma)
        feat[t, 1] = miss
        for k, P in enumerate(c.periods):
            ph = math.fmod(cal0 + t, P)
            if ph < 0:
                ph += P
            feat[t, 2 + 2 * k] = np.float32(math.sin(2 * math.pi * ph / P))
            feat[t, 3 + 2 * k] = np.float32(math.cos(2 * math.pi * ph / P))
    wn = np.array([(x - mu) / sigma if cnt and not math.isnan(x) else np.nan for x in w])
    return feat, mu, sigma, wn


def mamba_mixer(c, p, pre, x):
    D, N, Di, R = c.d_model, c.d_state, c.expand * c.d_model, c.dt_rank
    W = p[pre + "in_proj.w"]
    xin, z = linear(x, W[:Di]), linear(x, W[Di:])
    xs = silu(conv1d_causal(xin, p[pre + "conv.w"], p[pre + "conv.b"]))
    Wx = p[pre + "x_proj.w"]
    dtr, Bm, Cm = linear(xs, Wx[:R]), linear(xs, Wx[R:R + N]), linear(xs, Wx[R + N:])
    delta = softplus(linear(dtr, p[pre + "dt_proj.w"], p[pre + "dt_proj.b"]))
    A = -torch.exp(p[pre + "A_log"])
    y = selective_scan(xs, delta, A, Bm, Cm, p[pre + "D"], z)
    return linear(y, p[pre + "out_proj.w"])


def s4d_mixer(c, p, pre, x):
    K = s4d_kernel(p[pre + "log_dt"], p[pre + "C_re"], p[pre + "C_im"], p[pre + "log_A_re"],
                   p[pre + "A_im"], x.shape[1])
    y = s4d_conv(x, K, p[pre + "D"])
    g = linear(silu(y), p[pre + "out_proj.w"], p[pre + "out_proj.b"])  # GLU output
    D = x.shape[-1]
    return g[..., :D] * torch.sigmoid(g[..., D:])


def network(c, p, feat, P):
    """feat (B, L, F) -> monotone quantiles (B, P, H, Q) of positions L-P..L-1"""
    x = linear(feat, p["embed.w"], p["embed.b"])
    for i in range(c.n_layers):
        pre = "layers.%d." % i
        h = rmsnorm(x, p[pre + "norm.w"])
        x = x + (mamba_mixer if c.mixer == "mamba" else s4d_mixer)(c, p, pre, h)
    hP = rmsnorm(x[:, c.context - P:], p["norm_f.w"])
    raw = linear(hP, p["head.w"], p["head.b"])
    Q = len(c.quantiles)
    raw = raw.reshape(raw.shape[0], P, c.horizon, Q)
    mid = c.quantiles.index(0.5)
    sp = softplus(raw)
    up = torch.cumsum(sp[..., mid + 1:], -1)
    down = torch.flip(torch.cumsum(torch.flip(sp[..., :mid], [-1]), -1), [-1])
    med = raw[..., mid:mid + 1]
    return torch.cat([med - down, med, med + up], -1)


def pinball(c, q, wn, P):
    """mean pinball over valid targets; wn (B, L+H) normalised, NaN = missing"""
    L, H = c.context, c.horizon
    Bsz = q.shape[0]
    idx = torch.arange(P)[:, None] + (L - P) + 1 + torch.arange(H)[None, :]
    y = torch.as_tensor(wn)[:, idx]  # (B, P, H)
    valid = ~torch.isnan(y)
    y = torch.where(valid, y, torch.zeros_like(y))
    tau = torch.tensor(c.quantiles, dtype=q.dtype)
    u = y[..., None] - q
    loss = u * (tau - (u < 0).to(q.dtype))
    loss = (loss * valid[..., None]).sum()
    count = valid.sum().item()
    return loss / (count * len(c.quantiles)) if count else loss * 0


def forecaster_loss(c, p, wins, cal0s, P):
    feats, wns = [], []
    for w, k in zip(wins, cal0s):
        f, mu, sg, wn = prepare_window(c, list(w), int(k))
        feats.append(f)
        wns.append(wn)
    feat = torch.tensor(np.stack(feats), dtype=torch.float64)
    q = network(c, p, feat, P)
    return pinball(c, q, np.stack(wns), P), q
