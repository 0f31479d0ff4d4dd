#!/usr/bin/env bash
# tests/deps.sh — installs the Debian packages ssmd builds, tests and benchmarks with.
# Needs root (or sudo); does nothing when everything is already installed.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libgsl-dev libopenblas-dev liblapack-dev libpq-dev libyaml-dev
      libcmocka-dev libsystemd-dev zlib1g-dev postgresql valgrind python3 python3-numpy python3-statsmodels
      chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# PostgreSQL's package may start a cluster on port 5432; ssmd's tests use their own
# private servers on Unix sockets, so the system cluster is neither needed nor touched.
