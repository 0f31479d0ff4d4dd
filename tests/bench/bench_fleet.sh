#!/usr/bin/env bash
# tests/bench/bench_fleet.sh — the daemon at fleet scale: NSERIES series x NPOINTS hourly
# points in the built-in store of a private PostgreSQL (started here with
# tests/integration/pg.sh, removed at exit).
#   full cycle:        `ssmd run --once`, every series fitted (local level, MLE), 48 steps
#                      forecast with quantiles, forecasts + state + run written
#   incremental cycle: 24 new points per series, `ssmd run --once` again: each stored state
#                      loaded, filtered over the new points, forecast and written, no refit
# Each with wall time and the daemon's peak resident memory (GNU time's %M). Beside them
# statsmodels (UnobservedComponents, local level: fit + 48-step forecast) on 100 of the
# same series, scaled to NSERIES, measured in the same run (bench_fleet_statsmodels.py).
# Usage, from the repository root (not a test; takes a few minutes):
#   bash tests/bench/bench_fleet.sh [BUILD_DIR] [NSERIES] [NPOINTS] [WORKERS]
set -euo pipefail
build=${1:-build}
nseries=${2:-10000}
npoints=${3:-1000}
workers=${4:-2}
ssmd=$(realpath "$build/daemon/ssmd")
[ -x "$ssmd" ] || { echo "no $ssmd: build it first (cmake --build $build --target ssmd)"; exit 1; }
here=$(dirname "$(realpath "$0")")
work=$(mktemp -d /tmp/bench_fleet.XXXXXX)
chmod 755 "$work"
state=$work/pg.state
cleanup() { bash "$here/../integration/pg.sh" stop "$state" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
bash "$here/../integration/pg.sh" start "$state" >/dev/null
pgdir=$(cat "$state")
psql_() { psql -h "$pgdir" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
psql_ -d postgres -c "CREATE DATABASE bench"
dsn="host=$pgdir port=5432 user=postgres dbname=bench"

{
  echo "database: {dsn: \"postgresql:///nowhere\", statement_timeout: 5m}"
  echo "workers: $workers"
  echo "defaults:"
  echo "  frequency: 1h"
  echo "  every: 1h"
  echo "  refit_every: 30d"
  echo "  horizon: 48"
  echo "  quantiles: [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]"
  echo "  models: [local_level]"
  echo "series:"
  for ((i = 0; i < nseries; i++)); do printf '  - {name: b%05d, source: builtin}\n' $i; done
} > "$work/ssmd.yaml"
"$ssmd" --config "$work/ssmd.yaml" --dsn "$dsn" migrate >/dev/null

# random walk plus noise per series (level sd 1, noise sd 2), reproducible
echo "loading $nseries series x $npoints points ..."
t0=$(date +%s.%N)
psql_ -d bench <<SQL
SELECT setseed(0.42);
INSERT INTO ssm.series (name, frequency) SELECT format('b%s', lpad(i::text, 5, '0')), '1h'
  FROM generate_series(0, $nseries - 1) i;
CREATE UNLOGGED TABLE shocks AS
  SELECT s.id AS series_id, i, (random() + random() + random() - 1.5) * 2 AS level_shock,
         (random() + random() + random() - 1.5) * 4 AS noise
  FROM ssm.series s, generate_series(0, $npoints + 47) i;
CREATE UNLOGGED TABLE sim AS
  SELECT series_id, i, 100 + sum(level_shock) OVER (PARTITION BY series_id ORDER BY i) + noise AS value
  FROM shocks;
DROP TABLE shocks;
INSERT INTO ssm.observations (series_id, ts, value)
  SELECT series_id, '2026-01-01'::timestamptz + make_interval(hours => i), value FROM sim WHERE i < $npoints;
VACUUM ANALYZE ssm.observations;
SQL
t1=$(date +%s.%N)
echo "loaded in $(echo "$t1 - $t0" | bc) s"

# statsmodels on 100 of the same series
psql_ -d bench -c "\\copy (SELECT series_id, i, value FROM sim WHERE i < $npoints AND series_id <= 100 ORDER BY 1, 2) TO '$work/sample.csv' CSV"

# CPU seconds the server's backends used so far: the postmaster reaps them, so their time
# accumulates in its cutime + cstime (fields 16 and 17 of /proc/PID/stat)
pmpid=$(head -n 1 "$pgdir/data/postmaster.pid")
tck=$(getconf CLK_TCK)
server_cpu() { awk -v t="$tck" '{ print ($16 + $17) / t }' "/proc/$pmpid/stat"; }
timed() { # label, then the command: prints wall seconds, peak RSS (kB), ssmd CPU s, server CPU s
  local label=$1; shift
  local before; before=$(server_cpu)
  /usr/bin/time -f "%e %M %U %S" -o "$work/time.txt" "$@" > "$work/$label.out" 2> "$work/$label.err" || {
    echo "$label failed:"; tail -5 "$work/$label.err"; exit 1; }
  sleep 1 # let the postmaster reap the sessions
  read -r secs rss us ss < "$work/time.txt"
  echo "$secs $rss $(echo "$us + $ss" | bc -l) $(echo "$(server_cpu) - $before" | bc -l)"
}
echo "full cycle ..."
read -r full_s full_kb full_cpu full_pg < <(timed full "$ssmd" --config "$work/ssmd.yaml" --dsn "$dsn" run --once)
ok=$(psql_ -d bench -c "SELECT count(*) FROM ssm.runs WHERE outcome = 'ok' AND refit")
rows=$(psql_ -d bench -c "SELECT count(*) FROM ssm.forecasts")
[ "$ok" = "$nseries" ] || { echo "full cycle: only $ok of $nseries series fitted"; tail -3 "$work/full.err"; exit 1; }

psql_ -d bench -c "INSERT INTO ssm.observations (series_id, ts, value)
  SELECT series_id, '2026-01-01'::timestamptz + make_interval(hours => i), value FROM sim
  WHERE i >= $npoints AND i < $npoints + 24"
echo "incremental cycle ..."
read -r inc_s inc_kb inc_cpu inc_pg < <(timed inc "$ssmd" --config "$work/ssmd.yaml" --dsn "$dsn" run --once)
upd=$(psql_ -d bench -c "SELECT count(*) FROM ssm.runs WHERE outcome = 'ok' AND NOT refit AND new_points = 24")
[ "$upd" = "$nseries" ] || { echo "incremental cycle: only $upd of $nseries series updated"; tail -3 "$work/inc.err"; exit 1; }
rows2=$(psql_ -d bench -c "SELECT count(*) FROM ssm.forecasts")

# the same incremental cycle in daemon mode: every series due, leases, heartbeats; timed
# from start until every watermark has moved, then SIGTERM
psql_ -d bench -c "INSERT INTO ssm.observations (series_id, ts, value)
  SELECT series_id, '2026-01-01'::timestamptz + make_interval(hours => i), value FROM sim
  WHERE i >= $npoints + 24; UPDATE ssm.series SET next_run = now()"
echo "incremental cycle, daemon mode ..."
last=$(psql_ -d bench -c "SELECT max(ts) FROM ssm.observations")
pg0=$(server_cpu)
t0=$(date +%s.%N)
/usr/bin/time -f "%e %M %U %S" -o "$work/time_d.txt" "$ssmd" --config "$work/ssmd.yaml" --dsn "$dsn" run \
  > "$work/d.out" 2> "$work/d.err" &
tpid=$!
# poll slowly (a psql per poll costs CPU the daemon would miss); the end is the commit
# time of the last run, read from ssm.runs afterwards
until [ "$(psql_ -d bench -c "SELECT count(*) FROM ssm.series WHERE watermark = '$last'")" = "$nseries" ]; do
  sleep 1
  kill -0 $tpid 2>/dev/null || { echo "daemon died:"; tail -5 "$work/d.err"; exit 1; }
done
t1=$(psql_ -d bench -c "SELECT extract(epoch FROM max(finished_at)) FROM ssm.runs WHERE origin = '$last'")
dmn_s=$(echo "$t1 - $t0" | bc -l)
kill -TERM "$(pgrep -P $tpid)"
wait $tpid || { echo "daemon did not exit 0:"; tail -5 "$work/d.err"; exit 1; }
sleep 1
read -r _ dmn_kb dmn_us dmn_ss < "$work/time_d.txt"
dmn_cpu=$(echo "$dmn_us + $dmn_ss" | bc -l)
dmn_pg=$(echo "$(server_cpu) - $pg0" | bc -l)

echo "statsmodels ..."
sm_s=$(/usr/bin/python3 "$here/bench_fleet_statsmodels.py" "$work/sample.csv")
sm_scaled=$(echo "$sm_s * $nseries / 100" | bc -l)

echo
echo "ssmd fleet benchmark: $nseries series x $npoints hourly points, local_level, horizon 48, 7 quantiles,"
echo "$workers workers, $(nproc) cores, PostgreSQL $(psql_ -d bench -c 'SHOW server_version') on the same machine"
printf '| %-44s | %10s | %10s | %-32s |\n' "measure" "ssmd" "target" "peer"
printf '|%s|%s|%s|%s|\n' "----------------------------------------------" "------------" "------------" "----------------------------------"
printf '| %-44s | %9.1fs | %10s | statsmodels %7.1fs (x%.1f)     |\n' "full cycle (fit+forecast+write, $ok series)" "$full_s" "< 60 s" \
  "$sm_scaled" "$(echo "$sm_scaled / $full_s" | bc -l)"
printf '| %-44s | %9.1fs | %10s | %-32s |\n' "incremental cycle (24 new points, $upd series)" "$inc_s" "< 10 s" "-"
printf '| %-44s | %9.1fs | %10s | %-32s |\n' "incremental cycle, daemon mode (leases)" "$dmn_s" "< 10 s" "-"
printf '| %-44s | %8.0fMB | %10s | %-32s |\n' "peak RSS, full cycle" "$(echo "$full_kb / 1024" | bc -l)" "< 500 MB" ""
printf '| %-44s | %8.0fMB | %10s | %-32s |\n' "peak RSS, incremental cycle" "$(echo "$inc_kb / 1024" | bc -l)" "< 500 MB" ""
printf '| %-44s | %8.0fMB | %10s | %-32s |\n' "peak RSS, daemon mode" "$(echo "$dmn_kb / 1024" | bc -l)" "< 500 MB" ""
echo
echo "forecast rows: $rows after the full cycle, $rows2 after the incremental one"
echo "statsmodels: UnobservedComponents(level='local level') fit + 48-step forecast of 100 series took"
echo "  $(printf '%.2f' "$sm_s") s, scaled to $nseries series: $(printf '%.1f' "$sm_scaled") s (its fits only: no database I/O);"
echo "  xN = statsmodels' scaled time / ssmd's full cycle time."
printf 'CPU time (load-independent): full cycle ssmd %.1f s + PostgreSQL %.1f s; incremental ssmd %.1f s + PostgreSQL %.1f s\n' \
  "$full_cpu" "$full_pg" "$inc_cpu" "$inc_pg"
printf '  daemon mode (incremental, whole run from start to SIGTERM) ssmd %.1f s + PostgreSQL %.1f s\n' "$dmn_cpu" "$dmn_pg"
printf '  i.e. on an otherwise idle %d-core machine at best %.1f s and %.1f s of wall time\n' "$(nproc)" \
  "$(echo "($full_cpu + $full_pg) / $(nproc)" | bc -l)" "$(echo "($inc_cpu + $inc_pg) / $(nproc)" | bc -l)"
echo "load average while measuring: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine inflates every figure)"
