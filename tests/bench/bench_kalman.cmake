# tests/bench/bench_kalman.cmake — Kalman maximum likelihood fits, ssmd against statsmodels
# and R on the same data (Nile local level, airline SARIMA, BSM, 1,000 simulated series).
# Not a test. Run everything with: bash tests/bench/bench_kalman.sh [--install] [BUILD_DIR]
if(NOT SSMD_NEURAL_ONLY)
  add_executable(bench_kalman ${CMAKE_CURRENT_LIST_DIR}/bench_kalman.c)
  target_link_libraries(bench_kalman PRIVATE ssmd_kalman Threads::Threads m)
  target_compile_definitions(bench_kalman PRIVATE SSMD_TEST_DATA="${SSMD_TEST_DATA}")
endif()
