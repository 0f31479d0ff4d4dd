/*
 * tests/bench/bench_neural_cpu.c — the neural forecaster on the CPU, ssmd against PyTorch:
 * one training step (forward + backward of the pinball loss over a batch of windows) and
 * one single-series forecast, same architecture, sizes and threads on both sides (default:
 * Mamba, context 512, d_model 64, 4 layers, state 16, horizon 24, batch 32, 2 threads).
 * The PyTorch figure comes from tests/bench/bench_neural_torch.py run by this program in
 * the same run. The forecast is timed on one thread on both sides (nssm_forecast is
 * single-threaded by design; OpenBLAS is set to one thread when it is the BLAS linked).
 * Usage: bench_neural_cpu [mamba|s4d] [threads] [reps]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "neural_ssm.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* OpenBLAS's thread count, when OpenBLAS is the BLAS (weak: absent elsewhere) */
void openblas_set_num_threads(int n) __attribute__((weak));

/* CPU time of the calling thread: robust to other processes sharing the cores */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *mixer = argc > 1 ? argv[1] : "mamba";
    int threads = argc > 2 ? atoi(argv[2]) : 2, reps = argc > 3 ? atoi(argv[3]) : 5;
    const int batch = 32;
    nssm_config c;
    nssm_config_default(&c, strcmp(mixer, "s4d") == 0 ? NSSM_MIXER_S4D : NSSM_MIXER_MAMBA);
    c.context = 512, c.d_model = 64, c.n_layers = 4, c.d_state = 16, c.horizon = 24;
    c.n_periods = 1, c.periods[0] = 24;
    nssm_model *m;
    nssm_error err;
    if (nssm_model_create(&m, &c, 1, NULL, &err)) {
        fprintf(stderr, "bench: %s\n", err.message);
        return 1;
    }
    nssm_model_set_threads(m, threads);
    const int W = c.context + c.horizon;
    double *win = malloc(sizeof(double) * batch * W);
    int64_t cal0[32];
    for (int b = 0; b < batch; b++) {
        cal0[b] = b;
        for (int t = 0; t < W; t++)
            win[b * W + t] = 100 + 10 * sin(2 * M_PI * (t + 7 * b) / 24) + sin(t * 1.3 + b);
    }
    double loss, tr[64], fc[64], fcpu[64];
    if (openblas_set_num_threads)
        openblas_set_num_threads(threads);
    nssm_model_loss(m, win, cal0, batch, 1, &loss, &err); /* warm-up (allocations) */
    for (int r = 0; r < reps && r < 64; r++) {
        double t0 = now_ms();
        if (nssm_model_loss(m, win, cal0, batch, 1, &loss, &err)) {
            fprintf(stderr, "bench: %s\n", err.message);
            return 1;
        }
        tr[r] = now_ms() - t0;
    }
    nssm_series_ref s = {win, (size_t)c.context, 0};
    double *q = malloc(sizeof(double) * c.horizon * c.nq);
    int freps = reps < 20 ? 20 : reps;
    if (openblas_set_num_threads)
        openblas_set_num_threads(1);
    nssm_forecast(m, &s, q, &err); /* warm-up */
    for (int r = 0; r < freps && r < 64; r++) {
        double t0 = now_ms(), c0 = cpu_ms();
        nssm_forecast(m, &s, q, &err);
        fc[r] = now_ms() - t0;
        fcpu[r] = cpu_ms() - c0;
    }
    qsort(tr, reps, sizeof(double), cmp);
    qsort(fc, freps < 64 ? freps : 64, sizeof(double), cmp);
    qsort(fcpu, freps < 64 ? freps : 64, sizeof(double), cmp);
    double our_train = tr[reps / 2], our_fc = fc[(freps < 64 ? freps : 64) / 2];
    printf("neural %s: context %d, d_model %d, layers %d, state %d, horizon %d, batch %d, "
           "threads %d\n", mixer, c.context, c.d_model, c.n_layers, c.d_state, c.horizon,
           batch, threads);
    printf("ssmd  train step %9.1f ms   forecast (1 thread) %8.2f ms (CPU time %.2f ms)\n",
           our_train, our_fc, fcpu[(freps < 64 ? freps : 64) / 2]);

    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=%d /usr/bin/python3 %s/bench_neural_torch.py --mixer %s "
             "--threads %d --reps %d 2>/dev/null",
             threads, SSMD_BENCH_DIR, mixer, threads, 1);
    FILE *p = popen(cmd, "r");
    double tt = NAN, tf = NAN;
    if (p) {
        if (fscanf(p, "torch_train_ms %lf torch_forecast_ms %lf", &tt, &tf) != 2)
            tt = tf = NAN;
        pclose(p);
    }
    if (isnan(tt)) {
        printf("torch (not available: /usr/bin/python3 with torch is needed for the peer figure)\n");
    } else {
        printf("torch train step %9.1f ms   forecast (1 thread) %8.2f ms\n", tt, tf);
        printf("ratio (torch / ssmd): train %.2fx, forecast %.2fx\n", tt / our_train, tf / our_fc);
    }
    free(q);
    free(win);
    nssm_model_free(m);
    return 0;
}
