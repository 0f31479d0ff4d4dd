# bench_train — a training step of the neural forecaster, GPU path (neural_ssm/backend_cuda.c
# over kernels/) against the CPU path: loss and gradients compared, windows per second.
# Run by hand on a GPU machine: ./tests/bench_train [mamba|s4d] [cpu_threads] [batch]
if(SSMD_HAVE_CUDA AND TARGET ssmd_neural AND TARGET ssmd_kernels)
  add_executable(bench_train ${CMAKE_CURRENT_LIST_DIR}/bench_train.c)
  target_link_libraries(bench_train PRIVATE ssmd_neural ssmd_kernels m)
endif()
