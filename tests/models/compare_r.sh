#!/usr/bin/env bash
# tests/models/compare_r.sh — ssmd's models next to R's ets and auto.arima on the
# reference backtest (the settings and R's scores in tests/reference/fixtures/backtest/,
# written by tests/reference/r_backtest.R). Not a ctest test: it takes minutes (auto and
# kalman_auto fit many models per origin). Prints MASE per series and the median across
# series; the target is a median no worse than R's best of ets / auto.arima.
#   tests/models/compare_r.sh BUILD/daemon/ssmd [MODELS]     (default: auto,kalman_auto)
set -euo pipefail
ssmd=${1:?usage: compare_r.sh PATH/TO/ssmd [MODELS]}
models=${2:-auto,kalman_auto}
root=$(cd "$(dirname "$0")/../.." && pwd)
fix=$root/tests/reference/fixtures/backtest
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tail -n +2 "$fix/settings.csv" | while IFS=, read -r series file season horizon origins step; do
  start=$(date +%s)
  "$ssmd" backtest --csv "$root/tests/data/$file" --season "$season" --horizon "$horizon" \
    --origins "$origins" --step "$step" --model "$models" --format json >"$tmp/$series.json" 2>"$tmp/$series.err"
  echo "$series: $(( $(date +%s) - start ))s" >&2
done
/usr/bin/python3 - "$fix" "$tmp" <<'PY'
import csv, json, statistics, sys
fix, tmp = sys.argv[1], sys.argv[2]
r = {}
for row in csv.DictReader(open(f"{fix}/metrics.csv")):
    r.setdefault(row["model"], {})[row["series"]] = float(row["mase"])
series = [row["series"] for row in csv.DictReader(open(f"{fix}/settings.csv"))]
ours = {}
for s in series:
    for e in json.load(open(f"{tmp}/{s}.json"))["series"]:
        if e.get("mase") is not None:
            ours.setdefault("ssmd " + e["model"], {})[s] = e["mase"]
rows = {**{"R " + k: v for k, v in r.items()}, **ours}
print(f"{'model':<22}" + "".join(f"{s:>15}" for s in series) + f"{'median':>10}")
for name, v in rows.items():
    cells = "".join(f"{v[s]:>15.4f}" if s in v else f"{'-':>15}" for s in series)
    med = statistics.median(v[s] for s in series if s in v)
    print(f"{name:<22}{cells}{med:>10.4f}")
best = min(statistics.median(r[m][s] for s in series) for m in ("ets", "auto.arima"))
print(f"\nR's best median MASE (ets or auto.arima): {best:.4f}")
for name, v in ours.items():
    if all(s in v for s in series):
        med = statistics.median(v[s] for s in series)
        print(f"{name}: median {med:.4f} ({'no worse than' if med <= best else 'WORSE than'} R's best)")
PY
