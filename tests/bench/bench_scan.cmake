# bench_scan — the selective scan kernels against the memory-bandwidth floor, with the
# PyTorch peer (bench_scan_torch.py) measured in the same run. Not a test; run by hand on
# a GPU machine: ./tests/bench_scan (see kernels/README.md for the figures).
if(SSMD_HAVE_CUDA)
  add_executable(bench_scan ${CMAKE_CURRENT_LIST_DIR}/bench_scan.c)
  target_include_directories(bench_scan PRIVATE ${PROJECT_SOURCE_DIR}/kernels)
  target_link_libraries(bench_scan PRIVATE ssmd_kernels m)
  target_compile_definitions(bench_scan PRIVATE
    SSMD_BENCH_TORCH_SCRIPT="${CMAKE_CURRENT_LIST_DIR}/bench_scan_torch.py")
endif()
