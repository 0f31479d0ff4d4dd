#!/usr/bin/env python3
"""tests/bench/bench_scan_torch.py - the peer figure for bench_scan: the same selective scan
(kernels/kernels.h's contract, float32, with D skip and SiLU(z) gating) in pure PyTorch on
the same GPU. bench_scan runs this script itself and prints its figures beside ours.

Two formulations:
  loop     the recurrence as written, one time step per Python iteration (the reference);
  chunked  the fastest pure-PyTorch form found: the sequence cut into chunks of T steps; inside
           a chunk, h_t = P_t (h_0 + cumsum_s x_s / P_s) with P_t = exp(A cumsum(delta)) (a
           cumulative sum of log-decays), vectorised over (B, T, D, N); chunks run in order.
           T is small (8) so that 1/P_s stays inside float32's range on Mamba-like data.
Backward: autograd through `chunked` (forward + backward timed together, minus forward).

Prints `key value` lines that bench_scan parses; `error <text>` when something fails.
Usage: bench_scan_torch.py B L D N [reps]
"""
import sys
import time


def main():
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - report any import failure as "not available"
        print(f"error torch not importable: {e}")
        return 0
    if not torch.cuda.is_available():
        print(f"error torch {torch.__version__} sees no CUDA device")
        return 0
    B, L, D, N = (int(a) for a in sys.argv[1:5])
    reps = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"torch {torch.__version__} {torch.cuda.get_device_name(0)}")
    g = torch.Generator(device=dev).manual_seed(7)
    u = torch.randn(B, L, D, device=dev, generator=g)
    delta = torch.nn.functional.softplus(torch.randn(B, L, D, device=dev, generator=g) - 2.5)
    z = torch.randn(B, L, D, device=dev, generator=g)
    A = -torch.arange(1, N + 1, device=dev, dtype=torch.float32).repeat(D, 1)
    Bm = torch.randn(B, L, N, device=dev, generator=g)
    Cm = torch.randn(B, L, N, device=dev, generator=g)
    Dskip = torch.randn(D, device=dev, generator=g)

    def scan_loop(u, delta, A, Bm, Cm, Dskip, z, steps=None):
        steps = steps or u.shape[1]
        h = torch.zeros(u.shape[0], u.shape[2], A.shape[1], device=u.device)
        ys = []
        for t in range(steps):
            dt = delta[:, t, :, None]
            h = torch.exp(dt * A) * h + (dt * u[:, t, :, None]) * Bm[:, t, None, :]
            ys.append((h * Cm[:, t, None, :]).sum(-1))
        y = torch.stack(ys, 1) + Dskip * u[:, :steps]
        return y * torch.nn.functional.silu(z[:, :steps])

    def scan_chunked(u, delta, A, Bm, Cm, Dskip, z, T=8):
        Bsz, Lq, Dd = u.shape
        h = torch.zeros(Bsz, 1, Dd, A.shape[1], device=u.device)
        ys = []
        for t0 in range(0, Lq, T):
            dt = delta[:, t0:t0 + T]                                  # (B, T, D)
            logP = torch.cumsum(dt, 1)[..., None] * A                 # (B, T, D, N)
            P = torch.exp(logP)
            x = (dt * u[:, t0:t0 + T])[..., None] * Bm[:, t0:t0 + T, None, :]
            hs = P * (h + torch.cumsum(x / P, 1))
            ys.append(torch.einsum("btdn,btn->btd", hs, Cm[:, t0:t0 + T]))
            h = hs[:, -1:]
        y = torch.cat(ys, 1) + Dskip * u
        return y * torch.nn.functional.silu(z)

    def timed(fn, reps):
        torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            times.append(s.elapsed_time(e))
        times.sort()
        return times[len(times) // 2]

    # correctness of the two formulations against each other (a prefix, to keep the loop short)
    pre = min(L, 256)
    with torch.no_grad():
        a = scan_loop(u[:, :pre], delta[:, :pre], A, Bm[:, :pre], Cm[:, :pre], Dskip, z[:, :pre])
        b = scan_chunked(u[:, :pre], delta[:, :pre], A, Bm[:, :pre], Cm[:, :pre], Dskip, z[:, :pre])
        print(f"chunked_vs_loop_relerr {((a - b).abs().max() / a.abs().max()).item():.3e}")
        del a, b

    with torch.no_grad():
        scan_chunked(u, delta, A, Bm, Cm, Dskip, z)  # warm-up
        print(f"chunked_fwd_ms {timed(lambda: scan_chunked(u, delta, A, Bm, Cm, Dskip, z), reps):.4f}")
        # the loop is long: warm up on a few steps, time one full pass
        scan_loop(u, delta, A, Bm, Cm, Dskip, z, steps=8)
        torch.cuda.synchronize()
        t = time.perf_counter()
        scan_loop(u, delta, A, Bm, Cm, Dskip, z)
        torch.cuda.synchronize()
        print(f"loop_fwd_ms {1e3 * (time.perf_counter() - t):.4f}")
    sys.stdout.flush()

    try:
        params = [p.clone().requires_grad_(True) for p in (u, delta, A, Bm, Cm, Dskip, z)]
        dy = torch.randn(B, L, D, device=dev, generator=g)

        def fwd_bwd():
            y = scan_chunked(*params)
            y.backward(dy)

        fwd_bwd()
        for p in params:
            p.grad = None
        tb = timed(fwd_bwd, max(1, reps // 2))
        with torch.no_grad():
            tf = timed(lambda: scan_chunked(u, delta, A, Bm, Cm, Dskip, z), max(1, reps // 2))
        print(f"chunked_bwd_ms {max(tb - tf, 0.0):.4f}")
        print(f"chunked_fwdbwd_ms {tb:.4f}")
    except torch.cuda.OutOfMemoryError:
        print("chunked_bwd_ms nan")
        print("note chunked backward ran out of GPU memory (autograd keeps every chunk)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
