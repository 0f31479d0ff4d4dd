# tests/bench/bench_fleet.cmake — the daemon at fleet scale (10,000 series x 1,000 hourly
# points in a private PostgreSQL): a full and an incremental cycle with peak memory, and
# statsmodels on 100 of the series scaled to 10,000. Not a test; a script run by hand:
#   bash tests/bench/bench_fleet.sh BUILD_DIR [NSERIES] [NPOINTS] [WORKERS]
# or `cmake --build BUILD_DIR --target bench_fleet`.
if(NOT SSMD_NEURAL_ONLY)
  add_custom_target(bench_fleet
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/bench_fleet.sh ${CMAKE_BINARY_DIR}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    DEPENDS ssmd
    USES_TERMINAL
    COMMENT "fleet benchmark (several minutes)")
endif()
