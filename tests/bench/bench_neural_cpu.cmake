# tests/bench/bench_neural_cpu.cmake — neural forecaster training step and forecast, ssmd
# against PyTorch on the CPU. Run: build/tests/bench_neural_cpu [mamba|s4d] [threads] [reps]
add_executable(bench_neural_cpu ${CMAKE_CURRENT_LIST_DIR}/bench_neural_cpu.c)
target_link_libraries(bench_neural_cpu PRIVATE ssmd_neural)
target_compile_definitions(bench_neural_cpu PRIVATE SSMD_BENCH_DIR="${CMAKE_CURRENT_LIST_DIR}")
