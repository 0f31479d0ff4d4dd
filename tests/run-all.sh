#!/usr/bin/env bash
# tests/run-all.sh — the full test suite, as the README's second quick-start command and
# CI run it: install the Debian packages, build with AddressSanitizer + UBSan, run every
# test with ctest (the integration tests start their own PostgreSQL server), then run the
# unit tests once more under valgrind in a plain build to catch leaks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/deps.sh
jobs=$(nproc)

echo "== build (AddressSanitizer + UBSan)"
cmake -S . -B build-asan -DSSMD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"
echo "== ctest (sanitized)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 1200 -LE slow)

echo "== valgrind (unit tests, plain build)"
# CUDA stays off here: the host code under test is the same, and the CUDA libraries'
# own start-up (libcublasLt's dlopen) trips valgrind false positives inside ld.so.
cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSSMD_CUDA=OFF >/dev/null
cmake --build build-valgrind -j"$jobs"
(cd build-valgrind && ctest --output-on-failure -R "$(cat valgrind_tests.regex)" -LE slow -T memcheck \
   --overwrite MemoryCheckCommandOptions="--leak-check=full --suppressions=$PWD/../tests/valgrind.supp --errors-for-leak-kinds=definite,indirect --error-exitcode=99" \
   --timeout 1800 -j"$jobs")
echo "== all tests passed"
