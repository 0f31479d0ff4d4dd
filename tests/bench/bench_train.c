/*
 * tests/bench/bench_train.c — one training step of the neural forecaster on the GPU path
 * (neural_ssm/backend_cuda.c over kernels/) against the CPU reference path, same model,
 * same parameters, same batch: the loss and every gradient compared (relative error,
 * max |gpu - cpu| / max |cpu| per parameter tensor), then windows per second of a training
 * step (forward + backward of the pinball loss; the optimiser update is not included) on
 * each, and then the whole trainer step (nssm_train, optimiser included) on each. Default:
 * Mamba, context 512, d_model 128, 4 layers, state 16, batch 256; the CPU
 * runs with as many OpenMP threads as the machine has (or argv[2]).
 * Usage: bench_train [mamba|s4d] [cpu_threads] [batch]
 * Exits 0 without a GPU (nothing to compare), 1 when a call fails.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels.h"
#include "neural_ssm.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

void openblas_set_num_threads(int n) __attribute__((weak));

static int step(nssm_model *m, const double *win, const int64_t *cal0, int B, double *loss,
                double *ms)
{
    nssm_error err;
    const double t0 = now_ms();
    if (nssm_model_loss(m, win, cal0, B, 1, loss, &err)) {
        fprintf(stderr, "bench_train: %s (%s)\n", err.message, err.detail);
        return 1;
    }
    *ms = now_ms() - t0;
    return 0;
}

int main(int argc, char **argv)
{
    const char *mixer = argc > 1 ? argv[1] : "mamba";
    int threads = argc > 2 ? atoi(argv[2]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    const int B = argc > 3 ? atoi(argv[3]) : 256;
    if (kern_device_count() == 0) {
        printf("bench_train: no CUDA device; nothing to compare\n");
        return 0;
    }
    nssm_config c;
    nssm_config_default(&c, strcmp(mixer, "s4d") == 0 ? NSSM_MIXER_S4D : NSSM_MIXER_MAMBA);
    c.context = 512, c.d_model = 128, c.n_layers = 4, c.d_state = 16, c.horizon = 24;
    c.n_periods = 1, c.periods[0] = 24;
    nssm_error err;
    const nssm_backend *cpu = nssm_backend_get(NSSM_DEVICE_CPU, &err);
    const nssm_backend *gpu = nssm_backend_get(NSSM_DEVICE_CUDA, &err);
    if (!cpu || !gpu) {
        fprintf(stderr, "bench_train: %s\n", err.message);
        return 1;
    }
    nssm_model *mc, *mg;
    if (nssm_model_create(&mc, &c, 1, cpu, &err) || nssm_model_create(&mg, &c, 1, gpu, &err)) {
        fprintf(stderr, "bench_train: %s (%s)\n", err.message, err.detail);
        return 1;
    }
    const size_t np = nssm_model_num_params(mc);
    float *p = malloc(np * sizeof(float)), *gc = malloc(np * sizeof(float)),
          *gg = malloc(np * sizeof(float));
    /* the same parameters on both sides, whatever the initialisers did */
    if (nssm_model_get_params(mc, p, &err) || nssm_model_set_params(mg, p, &err)) {
        fprintf(stderr, "bench_train: %s\n", err.message);
        return 1;
    }
    nssm_model_set_threads(mc, threads);
    if (openblas_set_num_threads)
        openblas_set_num_threads(threads);
    const int W = c.context + c.horizon;
    double *win = malloc(sizeof(double) * B * W);
    int64_t *cal0 = malloc(sizeof(int64_t) * B);
    for (int b = 0; b < B; b++) {
        cal0[b] = b;
        for (int t = 0; t < W; t++)
            win[(size_t)b * W + t] = 100 + 10 * sin(2 * M_PI * (t + 7 * b) / 24) + sin(t * 1.3 + b) +
                                     0.01 * b * t;
    }
    double lc, lg, tc[8], tg[8];
    /* BENCH_TRAIN_PROFILE=n: only n GPU steps, for a profiler (Nsight Systems) to look at */
    if (getenv("BENCH_TRAIN_PROFILE")) {
        const int n = atoi(getenv("BENCH_TRAIN_PROFILE"));
        for (int r = 0; r < n; r++) {
            if (step(mg, win, cal0, B, &lg, &tg[0]))
                return 1;
            printf("gpu step %d: %.2f ms (loss %.6g)\n", r, tg[0], lg);
        }
        free(p); free(gc); free(gg); free(win); free(cal0);
        nssm_model_free(mc);
        nssm_model_free(mg);
        return 0;
    }
    if (step(mc, win, cal0, B, &lc, &tc[0]) || step(mg, win, cal0, B, &lg, &tg[0]))
        return 1;
    if (nssm_model_get_grads(mc, gc, &err) || nssm_model_get_grads(mg, gg, &err)) {
        fprintf(stderr, "bench_train: %s\n", err.message);
        return 1;
    }
    printf("bench_train: %s, context %d, d_model %d, layers %d, state %d, batch %d, %zu parameters\n",
           mixer, c.context, c.d_model, c.n_layers, c.d_state, B, np);
    printf("loss: cpu %.9g  gpu %.9g  rel.diff %.2e\n", lc, lg, fabs(lg - lc) / fabs(lc));
    double worst = 0.0;
    const char *worst_name = "";
    for (int i = 0; i < nssm_model_num_tensors(mc); i++) {
        const nssm_tensor *t = nssm_model_tensor(mc, i);
        double me = 0.0, mr = 0.0;
        for (size_t k = 0; k < t->size; k++) {
            const double a = gc[t->offset + k], b2 = gg[t->offset + k];
            if (!isfinite(b2))
                me = INFINITY;
            if (fabs(a - b2) > me)
                me = fabs(a - b2);
            if (fabs(a) > mr)
                mr = fabs(a);
        }
        const double rel = me / (mr > 0 ? mr : 1.0);
        if (rel > worst || isnan(rel)) {
            worst = rel;
            worst_name = t->name;
        }
        if (getenv("BENCH_TRAIN_VERBOSE"))
            printf("  grad %-28s rel.err %.2e\n", t->name, rel);
    }
    printf("gradients: worst tensor %s, rel.err %.2e (max |gpu-cpu| / max |cpu|)\n", worst_name, worst);
    const int reps = 3;
    for (int r = 0; r < reps; r++)
        if (step(mg, win, cal0, B, &lg, &tg[r]))
            return 1;
    for (int r = 1; r < reps; r++)
        if (step(mc, win, cal0, B, &lc, &tc[r]))
            return 1;
    double bc = tc[0], bg = tg[0];
    for (int r = 1; r < reps; r++) {
        bc = tc[r] < bc ? tc[r] : bc;
        bg = tg[r] < bg ? tg[r] : bg;
    }
    printf("training step (loss + gradients), best of %d:\n", reps);
    printf("  cpu (%d threads) %9.1f ms  %9.1f windows/s\n", threads, bc, B / (bc * 1e-3));
    printf("  gpu             %9.1f ms  %9.1f windows/s   speed-up x%.1f\n", bg, B / (bg * 1e-3), bc / bg);
    /* The whole trainer step (nssm_train: window sampling and features, loss, gradients,
     * the clipping norm and AdamW, on each backend), from the difference of two runs of
     * different lengths: the set-up and the validation passes cancel. */
    {
        const int n = 4000;
        double *series = malloc(sizeof(double) * n);
        for (int t = 0; t < n; t++)
            series[t] = 100 + 10 * sin(2 * M_PI * t / 24) + sin(t * 1.3) + 0.01 * t;
        nssm_series_ref sr = {series, (size_t)n, 0};
        nssm_model *mt[2] = {mc, mg};
        const int lo = 2, hi[2] = {5, 12};
        double per[2];
        for (int k = 0; k < 2; k++) {
            double tk[2];
            for (int j = 0; j < 2; j++) {
                nssm_train_opts o = {.max_steps = j ? hi[k] : lo, .batch = B, .lr = 1e-3,
                                     .eval_every = 1 << 30, .seed = 1, .threads = threads};
                nssm_train_report rep;
                if (nssm_model_set_params(mt[k], p, &err)) {
                    fprintf(stderr, "bench_train: %s\n", err.message);
                    return 1;
                }
                const double t0 = now_ms();
                if (nssm_train(mt[k], &sr, 1, &o, &rep, &err)) {
                    fprintf(stderr, "bench_train: %s (%s)\n", err.message, err.detail);
                    return 1;
                }
                tk[j] = now_ms() - t0;
            }
            per[k] = (tk[1] - tk[0]) / (hi[k] - lo);
        }
        printf("whole trainer step (sampling, loss, gradients, norm, AdamW; nssm_train %d vs %d / %d vs %d steps):\n",
               hi[0], lo, hi[1], lo);
        printf("  cpu (%d threads) %9.1f ms  %9.1f windows/s\n", threads, per[0], B / (per[0] * 1e-3));
        printf("  gpu             %9.1f ms  %9.1f windows/s   speed-up x%.1f\n", per[1],
               B / (per[1] * 1e-3), per[0] / per[1]);
        free(series);
    }
    free(p); free(gc); free(gg); free(win); free(cal0);
    nssm_model_free(mc);
    nssm_model_free(mg);
    return 0;
}
