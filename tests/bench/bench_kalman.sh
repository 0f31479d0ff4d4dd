#!/usr/bin/env bash
# tests/bench/bench_kalman.sh — runs the Kalman benchmark: statsmodels and R (each where
# installed) fit the same models on the same data in their own processes, then
# bench_kalman fits them with ssmd and prints everything side by side, a markdown table
# last. Usage, from the repository root:
#   bash tests/bench/bench_kalman.sh [--install] [BUILD_DIR] [bench_kalman options]
# --install: apt-get install python3-statsmodels r-cran-forecast first (needs root).
set -uo pipefail
install=0
if [ "${1:-}" = "--install" ]; then install=1; shift; fi
build=${1:-build}
# One BLAS thread everywhere: the fits are single-threaded, and an OpenBLAS pool's idle
# spinning would otherwise be counted in the CPU times (it doubled ssmd's; the peers run
# under the same setting).
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
[ $# -gt 0 ] && shift
if [ $install = 1 ]; then
  apt-get install -y python3-statsmodels r-cran-forecast >/dev/null || echo "apt-get failed"
fi
bin=$build/tests/bench_kalman
[ -x "$bin" ] || { echo "no $bin: build it first (cmake --build $build --target bench_kalman)"; exit 1; }
work=$(mktemp -d /tmp/bench_kalman.XXXXXX)
trap 'rm -rf "$work"' EXIT
data=tests/data
"$bin" --write-sim "$work/sim.csv" "$@" || exit 1
peers=()
if /usr/bin/python3 -c 'import statsmodels' 2>/dev/null; then
  echo "== statsmodels"
  /usr/bin/python3 tests/bench/bench_kalman.py $data "$work/sim.csv" > "$work/statsmodels.txt" \
    && peers+=(--peer "statsmodels=$work/statsmodels.txt") || echo "statsmodels run failed"
else
  echo "statsmodels not installed (use --install)"
fi
if command -v Rscript >/dev/null; then
  echo "== R"
  Rscript tests/bench/bench_kalman.R $data "$work/sim.csv" > "$work/R.txt" \
    && peers+=(--peer "R=$work/R.txt") || echo "R run failed"
else
  echo "R not installed (use --install)"
fi
echo "== ssmd"
"$bin" --data $data "${peers[@]}" "$@"
