#!/usr/bin/env bash
# tests/bench/bench_scan_device.sh — everything the kernels need on a GPU machine in one
# go: configure + build (neural-only), the cmocka tests, compute-sanitizer memcheck and
# racecheck on the test sizes, then bench_scan (its table comes last). Logs go to $OUT
# when set. Usage, from the repository root:
#   bash tests/bench/bench_scan_device.sh [tests|bench|train|teststrain|trainshape|profile|trainprof|all]
set -uo pipefail
what=${1:-all}
out=${OUT:-/tmp/kernels-out}
mkdir -p "$out"
bdir=build-kernels
echo "== machine"; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
nvcc --version | tail -1
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1 | tail -1
# cmocka and pkg-config travel in _g1_cmocka/ when the machine has none
if [ ! -f /usr/include/cmocka.h ] && [ -d _g1_cmocka ]; then
  echo "cmocka: using the carried copy in _g1_cmocka"
  export PKG_CONFIG_PATH=$PWD/_g1_cmocka/lib/pkgconfig
  export LD_LIBRARY_PATH=$PWD/_g1_cmocka/lib:${LD_LIBRARY_PATH:-}
  command -v pkg-config >/dev/null || export PATH=$PWD/_g1_cmocka/bin:$PATH
fi
cmake -S . -B $bdir -DSSMD_NEURAL_ONLY=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$out/configure.log" 2>&1 \
  || { tail -30 "$out/configure.log"; exit 1; }
cmake --build $bdir -j16 --target test_kernels test_neural_device bench_scan bench_train > "$out/build.log" 2>&1 \
  || { grep -E "error|Error" "$out/build.log" | head -30; exit 1; }
echo "== built"
rc=0
if [ "$what" = tests ] || [ "$what" = all ] || [ "$what" = teststrain ]; then
  echo "== test_kernels"
  ./$bdir/tests/kernels/test_kernels 2>&1 | tee "$out/test_kernels.log" | grep -E "OK|FAIL|SKIP|PASSED|device|error" ; rc=${PIPESTATUS[0]}
  echo "test_kernels exit $rc"
  echo "== test_neural_device (whole training steps, GPU against CPU)"
  ./$bdir/tests/neural/test_neural_device 2>&1 | tee "$out/test_neural_device.log" | grep -vE "^\[ RUN|^\[       OK"
  s=${PIPESTATUS[0]}; echo "test_neural_device exit $s"; [ $s -ne 0 ] && rc=$s
  for tool in ${SAN_TOOLS-memcheck racecheck}; do
    echo "== compute-sanitizer --tool $tool"
    KERN_TEST_FILTER="${KERN_SAN_FILTER:-test_*}" timeout 400 compute-sanitizer --tool $tool --error-exitcode 3 \
      ./$bdir/tests/kernels/test_kernels > "$out/sanitizer_$tool.log" 2>&1
    s=$?; echo "$tool exit $s"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|FAILED|Error" "$out/sanitizer_$tool.log" | head -8
    [ $s -ne 0 ] && rc=$s
  done
  if [ -n "${SAN_TOOLS-memcheck racecheck}" ]; then
    echo "== compute-sanitizer --tool memcheck test_neural_device"
    timeout 400 compute-sanitizer --tool memcheck --error-exitcode 3 \
      ./$bdir/tests/neural/test_neural_device > "$out/sanitizer_neural_device.log" 2>&1
    s=$?; echo "memcheck (neural device) exit $s"; grep -E "ERROR SUMMARY|FAILED|PASSED" "$out/sanitizer_neural_device.log" | head -4
    [ $s -ne 0 ] && rc=$s
  fi
fi
if [ "$what" = trainprof ]; then
  # where a training step's time goes: Nsight Compute's duration of every kernel of two GPU
  # steps (clocks left free; the machine has no Nsight Systems), summed per kernel
  echo "== ncu bench_train"
  BENCH_TRAIN_PROFILE=2 ncu --clock-control none --metrics gpu__time_duration.sum --print-summary per-kernel \
    ./$bdir/tests/bench_train mamba > "$out/ncu_train.txt" 2>&1
  echo "ncu exit $?"
  grep -E "gpu step" "$out/ncu_train.txt"
  python3 tests/bench/ncu_sum.py "$out/ncu_train.txt" 2
  exit 0
fi
if [ "$what" = trainshape ]; then
  # the scan at the shape of bench_train's batch (B 256, L 512, D 256, N 16): S sweep, variants
  ./$bdir/tests/bench_scan --case 256 512 256 16 2>&1 | tee "$out/bench_scan_train.log" | tail -32
  echo "== bench_train"
  timeout 300 ./$bdir/tests/bench_train mamba 2>&1 | tee "$out/bench_train.log" | tail -12
  exit 0
fi
if [ "$what" = profile ]; then
  echo "== ncu"
  ncu --kernel-name regex:"scan_(forward|backward)_kernel" --launch-count 4 \
      --section SpeedOfLight --section Occupancy --section ComputeWorkloadAnalysis \
      --section InstructionStats --section SourceCounters \
      --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,lts__t_requests_op_red.sum,smsp__inst_executed.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum \
      ./$bdir/tests/bench_scan --profile > "$out/ncu.txt" 2>&1
  echo "ncu exit $?"
  grep -E "scan_(forward|backward)_kernel|Duration|Memory Throughput|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Stall|Warp Cycles Per Issued|Issued Ipc|No Eligible|Executed Ipc|Block Limit|Dynamic Shared" "$out/ncu.txt" | cut -c1-150 | head -120
  exit 0
fi
if [ "$what" = all ] || [ "$what" = train ] || [ "$what" = teststrain ]; then
  echo "== bench_train"
  timeout 300 ./$bdir/tests/bench_train mamba 2>&1 | tee "$out/bench_train.log" | tail -12
  [ "$what" = train ] || [ "$what" = teststrain ] && exit $rc
fi
if [ "$what" != tests ]; then
  echo "== bench_scan"
  ./$bdir/tests/bench_scan 2>&1 | tee "$out/bench_scan.log" | grep -vE "^    torch\|" | tail -60
fi
exit $rc
