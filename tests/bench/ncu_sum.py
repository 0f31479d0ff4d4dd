#!/usr/bin/env python3
"""tests/bench/ncu_sum.py — sum an Nsight Compute per-kernel summary (the `trainprof` mode of
bench_scan_device.sh: `--print-summary per-kernel` over BENCH_TRAIN_PROFILE=STEPS steps) into
milliseconds per training step per kernel, cuBLAS's GEMM kernels (and their split-K
reductions) counted together as SGEMM. Usage: ncu_sum.py NCU_OUTPUT [STEPS]"""
import re
import sys


def main():
    path = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    text = open(path).read()
    # one entry per (kernel, launch shape): name (grid)x(block) ... Invocations n ... average
    entry = re.compile(r"\n  (\S.*?) \(\d+, \d+, \d+\)x\(\d+, \d+, \d+\).*?Invocations (\d+)"
                       r".*?gpu__time_duration\.sum\s+(\w+)\s+[\d.]+\s+[\d.]+\s+([\d.]+)", re.S)
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0}
    per_kernel = {}
    for name, calls, unit, avg in entry.findall(text):
        short = name.split("(")[0].replace("<unnamed>::", "").replace("void ", "")
        if any(k in short for k in ("gemm", "splitKreduce")):
            short = "SGEMM (cuBLAS)"
        ms = float(avg) * scale[unit] * int(calls) / steps
        per_kernel[short] = per_kernel.get(short, 0.0) + ms
    if not per_kernel:
        sys.exit("ncu_sum: no kernel summaries in " + path)
    print("kernel time per training step (ms), %d steps" % steps)
    for name, ms in sorted(per_kernel.items(), key=lambda kv: -kv[1]):
        print("  %8.3f  %s" % (ms, name))
    print("  %8.3f  total" % sum(per_kernel.values()))


if __name__ == "__main__":
    main()
