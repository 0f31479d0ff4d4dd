#!/usr/bin/env bash
# tests/integration/pg.sh — start/stop the private PostgreSQL server the integration tests
# use (a ctest fixture). The cluster lives in a fresh folder under /tmp (so the postgres
# user can reach it wherever the build tree is), listens on a Unix socket only, and its
# location is written to STATEFILE for the tests to read.
#   pg.sh start STATEFILE      pg.sh stop STATEFILE
set -euo pipefail
cmd=$1 state=$2
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "pg.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case $cmd in
start)
  if [ -f "$state" ] && [ -d "$(cat "$state")/data" ]; then
    as_pg "$bindir/pg_ctl" -D "$(cat "$state")/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$(cat "$state")"
  fi
  dir=$(mktemp -d /tmp/ssmd-test-pg-XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
    -o "-c listen_addresses='' -k $dir -p 5432 -c fsync=off -c max_connections=200" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "$dir" > "$state"
  echo "PostgreSQL running in $dir"
  ;;
stop)
  [ -f "$state" ] || exit 0
  dir=$(cat "$state")
  as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir" "$state"
  ;;
*) echo "usage: pg.sh start|stop STATEFILE" >&2; exit 2 ;;
esac
