/*
 * tests/bench/bench_scan.c — the selective scan kernels against the memory-bandwidth floor.
 *
 * In one run: the device-to-device copy bandwidth (cudaMemcpy of a 2 GiB buffer, counted as
 * bytes read + bytes written per second: the floor's denominator), then the forward and
 * backward scan at (B=16, D=1536, L=2048, N=16) and (B=4, D=2048, L=8192, N=16): median
 * time, the bytes that must move (each input read once, each output written once), the
 * achieved GB/s and that as a fraction of the copy bandwidth; then the same scan in pure
 * PyTorch on the same GPU (bench_scan_torch.py, run from here) and the ratio.
 * Not a test: it checks nothing but that every call succeeded. Exits 0 without a GPU.
 *
 * Every case is timed with the default kernels and with the variants (KERN_SCAN_* flags of
 * kernels/internal.h): forward tile64+fma, split2 and backward lean over the states-per-thread
 * sweep, each forward flag alone and split2+tile64 at the library's choice of S.
 *
 * Usage: bench_scan [--quick | --profile | --case B L D N | --auto B L D N]   (--quick: one
 *        small case, for sanitizer runs; --profile: one forward and one backward per case,
 *        for Nsight Compute; --case: the sweep and table at one shape, e.g. a training
 *        batch's; --auto: the library's choice alone at one shape, forward and backward,
 *        20 timings each: a quick comparison of two builds)
 * Env: SSMD_BENCH_PYTHON (default python3) runs the PyTorch peer; "none" skips it.
 *      SSMD_BENCH_SCAN_VARIANT (--profile only): the KERN_SCAN_* flags to profile (default 0).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "internal.h"
#include "kernels.h"

#ifndef SSMD_BENCH_TORCH_SCRIPT
#define SSMD_BENCH_TORCH_SCRIPT "tests/bench/bench_scan_torch.py"
#endif

static kern_error err;

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_scan: %s failed (%d): %s %s\n", what, rc, err.message, err.detail);
    exit(1);
}
#define OK(call)                                                                            \
    do {                                                                                    \
        int rc_ = (call);                                                                   \
        if (rc_)                                                                            \
            die(#call, rc_);                                                                \
    } while (0)
#define CU(call)                                                                            \
    do {                                                                                    \
        cudaError_t st_ = (call);                                                           \
        if (st_ != cudaSuccess) {                                                           \
            fprintf(stderr, "bench_scan: %s: %s\n", #call, cudaGetErrorString(st_));        \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

static uint64_t rs = 88172645463325252ull;
static double unif(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return ((rs >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static float gauss(void) { return (float)(sqrt(-2.0 * log(unif())) * cos(6.283185307179586 * unif())); }

/* A device array of n floats: normal(0,1), or softplus(normal - 2.5) when positive. */
static float *dev_random(kern_ctx *ctx, size_t n, int positive)
{
    float *h = malloc(n * sizeof(float)), *d;
    if (!h) {
        fprintf(stderr, "bench_scan: out of host memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        const float g = gauss();
        h[i] = positive ? (float)log1p(exp(g - 2.5)) : g;
    }
    OK(kern_alloc(ctx, (void **)&d, n * sizeof(float), &err));
    OK(kern_upload(ctx, d, h, n * sizeof(float), &err));
    free(h);
    return d;
}

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median of `reps` timed calls of fn(arg) on the context's stream, after 2 warm-ups; the
 * fastest of them goes to last_min_ms. */
typedef int (*bench_fn)(kern_ctx *ctx, void *arg);
static float last_min_ms;
static float time_ms(kern_ctx *ctx, bench_fn fn, void *arg, int reps)
{
    cudaStream_t st = (cudaStream_t)kern_ctx_stream(ctx);
    cudaEvent_t a, b;
    CU(cudaEventCreate(&a));
    CU(cudaEventCreate(&b));
    for (int i = 0; i < 2; i++)
        OK(fn(ctx, arg));
    float t[64];
    if (reps > 64)
        reps = 64;
    for (int i = 0; i < reps; i++) {
        CU(cudaEventRecord(a, st));
        OK(fn(ctx, arg));
        CU(cudaEventRecord(b, st));
        CU(cudaEventSynchronize(b));
        CU(cudaEventElapsedTime(&t[i], a, b));
    }
    CU(cudaEventDestroy(a));
    CU(cudaEventDestroy(b));
    qsort(t, reps, sizeof t[0], cmp_float);
    last_min_ms = t[0];
    return t[reps / 2];
}

typedef struct copy_arg {
    void *dst, *src;
    size_t bytes;
} copy_arg;

static int run_copy(kern_ctx *ctx, void *v)
{
    copy_arg *c = v;
    return cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice,
                           (cudaStream_t)kern_ctx_stream(ctx)) == cudaSuccess ? 0 : KERN_ECUDA;
}

typedef struct scan_bufs {
    int B, L, D, N, use_hchk;
    kern_dtype dt;
    void *u, *delta, *z, *y, *dy, *du, *ddelta, *dz, *Bm, *Cm;
    float *A, *Dskip, *dA, *dBm, *dCm, *dDskip, *hchk;
} scan_bufs;

static int run_fwd(kern_ctx *ctx, void *v)
{
    scan_bufs *s = v;
    return kern_selective_scan_forward(ctx, s->dt, s->y, s->use_hchk ? s->hchk : NULL, s->u,
                                       s->delta, NULL, s->A, s->Bm, s->Cm, s->Dskip, s->z, s->B, s->L,
                                       s->D, s->N, &err);
}

static int run_bwd(kern_ctx *ctx, void *v)
{
    scan_bufs *s = v;
    return kern_selective_scan_backward(ctx, s->dt, 0, s->du, s->ddelta, s->dA, s->dBm, s->dCm,
                                        s->dDskip, s->dz, s->dy, s->u, s->delta, NULL, s->A, s->Bm,
                                        s->Cm, s->Dskip, s->z, s->B, s->L, s->D, s->N,
                                        s->use_hchk ? s->hchk : NULL, &err);
}

/* Result rows, printed together at the end. */
typedef struct row {
    char name[96];
    double ms, mb, gbs, frac;
    int S;
} row;
static row rows[64];
static int nrows;
static double copy_gbs;

static void add_row(const char *name, float ms, double bytes, int S)
{
    row *r = &rows[nrows++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->ms = ms;
    r->mb = bytes / 1e6;
    r->gbs = bytes / (ms * 1e-3) / 1e9;
    r->frac = r->gbs / copy_gbs;
    r->S = S;
    printf("  %-44s S=%d %9.4f ms %9.1f MB %8.1f GB/s %5.1f%%\n", name, S, ms, r->mb, r->gbs,
           100 * r->frac);
    fflush(stdout);
}

/* Torch peer: runs the script, returns its figures (NAN when absent). */
typedef struct torch_res {
    double loop_fwd, chunked_fwd, chunked_bwd, relerr;
    char note[512];
} torch_res;

static void run_torch(int B, int L, int D, int N, torch_res *t)
{
    t->loop_fwd = t->chunked_fwd = t->chunked_bwd = t->relerr = NAN;
    t->note[0] = '\0';
    const char *py = getenv("SSMD_BENCH_PYTHON");
    if (!py)
        py = "python3";
    if (!strcmp(py, "none")) {
        snprintf(t->note, sizeof t->note, "skipped (SSMD_BENCH_PYTHON=none)");
        return;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s %d %d %d %d 5 2>&1", py, SSMD_BENCH_TORCH_SCRIPT, B, L, D, N);
    FILE *p = popen(cmd, "r");
    if (!p) {
        snprintf(t->note, sizeof t->note, "could not run %s", py);
        return;
    }
    char line[1024];
    while (fgets(line, sizeof line, p)) {
        printf("    torch| %s", line);
        double v;
        if (sscanf(line, "loop_fwd_ms %lf", &v) == 1) t->loop_fwd = v;
        else if (sscanf(line, "chunked_fwd_ms %lf", &v) == 1) t->chunked_fwd = v;
        else if (sscanf(line, "chunked_bwd_ms %lf", &v) == 1) t->chunked_bwd = v;
        else if (sscanf(line, "chunked_vs_loop_relerr %lf", &v) == 1) t->relerr = v;
        else if (!strncmp(line, "error ", 6) || !strncmp(line, "note ", 5)) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(t->note, sizeof t->note, "%s", line);
        }
    }
    int rc = pclose(p);
    if (rc && !t->note[0])
        snprintf(t->note, sizeof t->note, "PyTorch script exited with status %d", rc);
}

static void free_bufs(kern_ctx *ctx, scan_bufs *s)
{
    void *all[] = {s->u, s->delta, s->z, s->dy, s->Bm, s->Cm, s->Dskip, s->A, s->y, s->du,
                   s->ddelta, s->dz, s->dBm, s->dCm, s->dA, s->dDskip, s->hchk};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        kern_free(ctx, all[k]);
}

static int profile_mode; /* --profile: one forward and one backward per case, for ncu */
static int auto_mode;    /* --auto: the library's choice alone */

static void bench_case(kern_ctx *ctx, int B, int L, int D, int N, int reps, int with_torch,
                       char *summary, size_t summary_len)
{
    printf("\n== B=%d D=%d L=%d N=%d ==\n", B, D, L, N);
    const size_t BLD = (size_t)B * L * D, BLN = (size_t)B * L * N, DN = (size_t)D * N;
    const size_t nh = kern_scan_hchk_floats(B, L, D, N);
    scan_bufs s = {B, L, D, N, 1, KERN_F32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    s.u = dev_random(ctx, BLD, 0);
    s.delta = dev_random(ctx, BLD, 1);
    s.z = dev_random(ctx, BLD, 0);
    s.dy = dev_random(ctx, BLD, 0);
    s.Bm = dev_random(ctx, BLN, 0);
    s.Cm = dev_random(ctx, BLN, 0);
    s.Dskip = dev_random(ctx, D, 0);
    {
        float *hA = malloc(DN * sizeof(float));
        for (size_t i = 0; i < DN; i++)
            hA[i] = -(float)(i % N + 1); /* S4D-real initialisation */
        OK(kern_alloc(ctx, (void **)&s.A, DN * 4, &err));
        OK(kern_upload(ctx, s.A, hA, DN * 4, &err));
        free(hA);
    }
    void **outs[] = {&s.y, &s.du, &s.ddelta, &s.dz};
    for (int k = 0; k < 4; k++)
        OK(kern_alloc(ctx, outs[k], BLD * 4, &err));
    OK(kern_alloc(ctx, (void **)&s.dBm, BLN * 4, &err));
    OK(kern_alloc(ctx, (void **)&s.dCm, BLN * 4, &err));
    OK(kern_alloc(ctx, (void **)&s.dA, DN * 4, &err));
    OK(kern_alloc(ctx, (void **)&s.dDskip, D * 4, &err));
    OK(kern_alloc(ctx, (void **)&s.hchk, nh * 4, &err));

    const double e = 4.0;
    const double small_in = (double)(DN + D) * 4, small_out = (double)(DN + D) * 4;
    const double fwd_bytes = 3 * BLD * e + 2 * BLN * e + small_in + BLD * e;
    const double hchk_bytes = (double)nh * 4;
    const double bwd_bytes = 4 * BLD * e + 2 * BLN * e + small_in + 3 * BLD * e + 2 * BLN * 4 + small_out;

    if (auto_mode) { /* the library's choice alone: min and median of 20 */
        const double gb = copy_gbs * 1e9;
        s.use_hchk = 0;
        const float tf = time_ms(ctx, run_fwd, &s, 20), tf_min = last_min_ms;
        s.use_hchk = 1;
        const float tfh = time_ms(ctx, run_fwd, &s, 20);
        const float tb = time_ms(ctx, run_bwd, &s, 20), tb_min = last_min_ms;
        /* the backward reads hchk: its bytes count, as in the table's "(from hchk)" rows */
        printf("  auto fwd %.4f ms (min %.4f) %.1f%%  fwd+hchk %.4f ms  bwd %.4f ms (min %.4f) %.1f%%\n",
               tf, tf_min, 100 * fwd_bytes / (tf * 1e-3) / gb, tfh, tb, tb_min,
               100 * (bwd_bytes + hchk_bytes) / (tb * 1e-3) / gb);
        free_bufs(ctx, &s);
        return;
    }
    if (profile_mode) { /* SSMD_BENCH_SCAN_VARIANT: KERN_SCAN_* flags for these runs */
        const char *v = getenv("SSMD_BENCH_SCAN_VARIANT");
        OK(kern_ctx_set_scan_variant(ctx, v ? atoi(v) : 0, &err));
        OK(run_fwd(ctx, &s));
        OK(run_bwd(ctx, &s));
        OK(kern_sync(ctx, &err));
        return;
    }
    /* states per thread: the library's choice (0) and each fixed value; at each, the
     * default kernels and the variants (KERN_SCAN_* flags, kernels/README.md): forward
     * tile64+fma and split2 (with its FMA chain), backward lean */
    enum { V_T64FMA, V_SPLIT, V_LEAN, NV };
    const int Ss[] = {0, 1, 2, 4, 8, 16};
    float best_f = 1e30f, best_b = 1e30f, best_v[NV];
    int best_fS = 0, best_bS = 0, best_vS[NV];
    float auto_f = 0, auto_fh = 0, auto_b = 0, auto_bn = 0, auto_v[NV];
    for (int v = 0; v < NV; v++) {
        best_v[v] = 1e30f;
        best_vS[v] = 0;
        auto_v[v] = NAN;
    }
    printf("  states-per-thread sweep (0 = library's choice):\n");
    for (size_t k = 0; k < sizeof Ss / sizeof Ss[0]; k++) {
        if (Ss[k] && (N % Ss[k] || N / Ss[k] > 16))
            continue;
        OK(kern_ctx_set_scan_states(ctx, Ss[k], &err));
        OK(kern_ctx_set_scan_variant(ctx, 0, &err));
        s.use_hchk = 0;
        const float tf = time_ms(ctx, run_fwd, &s, reps);
        s.use_hchk = 1;
        const float tfh = time_ms(ctx, run_fwd, &s, reps);
        const float tb = Ss[k] <= 8 ? time_ms(ctx, run_bwd, &s, reps) : NAN; /* bwd: S <= 8 */
        float tv[NV];
        s.use_hchk = 0;
        OK(kern_ctx_set_scan_variant(ctx, KERN_SCAN_FWD_TILE64 | KERN_SCAN_FWD_FMA, &err));
        tv[V_T64FMA] = time_ms(ctx, run_fwd, &s, reps);
        OK(kern_ctx_set_scan_variant(ctx, KERN_SCAN_FWD_SPLIT2, &err));
        tv[V_SPLIT] = time_ms(ctx, run_fwd, &s, reps);
        s.use_hchk = 1;
        OK(kern_ctx_set_scan_variant(ctx, KERN_SCAN_BWD_LEAN, &err));
        tv[V_LEAN] = Ss[k] <= 8 ? time_ms(ctx, run_bwd, &s, reps) : NAN;
        OK(kern_ctx_set_scan_variant(ctx, 0, &err));
        printf("    S=%-2d fwd %.4f  fwd+hchk %.4f  bwd %.4f | fwd tile64+fma %.4f  split2 %.4f  bwd lean %.4f ms\n",
               Ss[k], tf, tfh, tb, tv[V_T64FMA], tv[V_SPLIT], tv[V_LEAN]);
        if (Ss[k] == 0) {
            auto_f = tf;
            auto_fh = tfh;
            auto_b = tb;
            for (int v = 0; v < NV; v++)
                auto_v[v] = tv[v];
        } else {
            if (tf < best_f) { best_f = tf; best_fS = Ss[k]; }
            if (!isnan(tb) && tb < best_b) { best_b = tb; best_bS = Ss[k]; }
            for (int v = 0; v < NV; v++)
                if (!isnan(tv[v]) && tv[v] < best_v[v]) { best_v[v] = tv[v]; best_vS[v] = Ss[k]; }
        }
    }
    OK(kern_ctx_set_scan_states(ctx, 0, &err));
    s.use_hchk = 0;
    auto_bn = time_ms(ctx, run_bwd, &s, reps);
    OK(kern_ctx_set_scan_variant(ctx, KERN_SCAN_BWD_LEAN, &err));
    const float auto_lean_n = time_ms(ctx, run_bwd, &s, reps);
    OK(kern_ctx_set_scan_variant(ctx, KERN_SCAN_FWD_TILE64, &err));
    const float auto_t64 = time_ms(ctx, run_fwd, &s, reps);
    OK(kern_ctx_set_scan_variant(ctx, KERN_SCAN_FWD_FMA, &err));
    const float auto_fma = time_ms(ctx, run_fwd, &s, reps);
    OK(kern_ctx_set_scan_variant(ctx, KERN_SCAN_FWD_SPLIT2 | KERN_SCAN_FWD_TILE64, &err));
    const float auto_split_t64 = time_ms(ctx, run_fwd, &s, reps);
    s.use_hchk = 1;
    OK(kern_ctx_set_scan_variant(ctx, KERN_SCAN_FWD_SPLIT2, &err));
    const float auto_split_h = time_ms(ctx, run_fwd, &s, reps);
    /* the library's default (KERN_SCAN_AUTO: a variant chosen per shape) */
    OK(kern_ctx_set_scan_variant(ctx, KERN_SCAN_AUTO, &err));
    s.use_hchk = 0;
    const float def_f = time_ms(ctx, run_fwd, &s, reps);
    s.use_hchk = 1;
    const float def_fh = time_ms(ctx, run_fwd, &s, reps);
    const float def_b = time_ms(ctx, run_bwd, &s, reps);
    OK(kern_ctx_set_scan_variant(ctx, 0, &err));

    char nm[96];
    snprintf(nm, sizeof nm, "B%d D%d L%d fwd f32", B, D, L);
    add_row(nm, auto_f, fwd_bytes, 0);
    snprintf(nm, sizeof nm, "B%d D%d L%d fwd f32 (+hchk for bwd)", B, D, L);
    add_row(nm, auto_fh, fwd_bytes + hchk_bytes, 0);
    snprintf(nm, sizeof nm, "B%d D%d L%d bwd f32 (from hchk)", B, D, L);
    add_row(nm, auto_b, bwd_bytes + hchk_bytes, 0);
    snprintf(nm, sizeof nm, "B%d D%d L%d bwd f32 (no hchk, recompute)", B, D, L);
    add_row(nm, auto_bn, bwd_bytes, 0);
    snprintf(nm, sizeof nm, "B%d D%d L%d fwd f32 best S", B, D, L);
    add_row(nm, best_f, fwd_bytes, best_fS);
    snprintf(nm, sizeof nm, "B%d D%d L%d bwd f32 best S", B, D, L);
    add_row(nm, best_b, bwd_bytes + hchk_bytes, best_bS);
    snprintf(nm, sizeof nm, "B%d D%d L%d DEFAULT fwd f32 (auto variant)", B, D, L);
    add_row(nm, def_f, fwd_bytes, 0);
    snprintf(nm, sizeof nm, "B%d D%d L%d DEFAULT fwd f32 (+hchk)", B, D, L);
    add_row(nm, def_fh, fwd_bytes + hchk_bytes, 0);
    snprintf(nm, sizeof nm, "B%d D%d L%d DEFAULT bwd f32 (from hchk)", B, D, L);
    add_row(nm, def_b, bwd_bytes + hchk_bytes, 0);
    /* the variants */
    snprintf(nm, sizeof nm, "B%d D%d L%d fwd f32 tile64", B, D, L);
    add_row(nm, auto_t64, fwd_bytes, 0);
    snprintf(nm, sizeof nm, "B%d D%d L%d fwd f32 fma", B, D, L);
    add_row(nm, auto_fma, fwd_bytes, 0);
    snprintf(nm, sizeof nm, "B%d D%d L%d fwd f32 tile64+fma", B, D, L);
    add_row(nm, auto_v[V_T64FMA], fwd_bytes, 0);
    snprintf(nm, sizeof nm, "B%d D%d L%d fwd f32 tile64+fma best S", B, D, L);
    add_row(nm, best_v[V_T64FMA], fwd_bytes, best_vS[V_T64FMA]);
    snprintf(nm, sizeof nm, "B%d D%d L%d fwd f32 split2", B, D, L);
    add_row(nm, auto_v[V_SPLIT], fwd_bytes, 0);
    snprintf(nm, sizeof nm, "B%d D%d L%d fwd f32 split2 (+hchk)", B, D, L);
    add_row(nm, auto_split_h, fwd_bytes + hchk_bytes, 0);
    snprintf(nm, sizeof nm, "B%d D%d L%d fwd f32 split2 best S", B, D, L);
    add_row(nm, best_v[V_SPLIT], fwd_bytes, best_vS[V_SPLIT]);
    snprintf(nm, sizeof nm, "B%d D%d L%d fwd f32 split2+tile64", B, D, L);
    add_row(nm, auto_split_t64, fwd_bytes, 0);
    snprintf(nm, sizeof nm, "B%d D%d L%d bwd f32 lean (from hchk)", B, D, L);
    add_row(nm, auto_v[V_LEAN], bwd_bytes + hchk_bytes, 0);
    snprintf(nm, sizeof nm, "B%d D%d L%d bwd f32 lean (no hchk)", B, D, L);
    add_row(nm, auto_lean_n, bwd_bytes, 0);
    snprintf(nm, sizeof nm, "B%d D%d L%d bwd f32 lean best S", B, D, L);
    add_row(nm, best_v[V_LEAN], bwd_bytes + hchk_bytes, best_vS[V_LEAN]);

    /* bf16 activations (inputs and outputs), float32 states */
    {
        scan_bufs h = s;
        h.dt = KERN_BF16;
        void **src[] = {&s.u, &s.delta, &s.z, &s.dy, &s.Bm, &s.Cm};
        void **dst[] = {&h.u, &h.delta, &h.z, &h.dy, &h.Bm, &h.Cm};
        const size_t cnt[] = {BLD, BLD, BLD, BLD, BLN, BLN};
        for (int k = 0; k < 6; k++) {
            OK(kern_alloc(ctx, dst[k], cnt[k] * 2, &err));
            OK(kern_f32_to_bf16(ctx, *dst[k], *src[k], cnt[k], &err));
        }
        /* bf16 outputs live in the first half of the float buffers */
        const float tf = time_ms(ctx, run_fwd, &h, reps);
        h.use_hchk = 1;
        const float tb = time_ms(ctx, run_bwd, &h, reps);
        snprintf(nm, sizeof nm, "B%d D%d L%d fwd bf16", B, D, L);
        add_row(nm, tf, fwd_bytes / 2, 0);
        const double bwd16_bytes = (4 * BLD + 3 * BLD + 2 * BLN) * 2.0 + 2 * BLN * 4 + small_in + small_out + hchk_bytes;
        snprintf(nm, sizeof nm, "B%d D%d L%d bwd bf16 (from hchk)", B, D, L);
        add_row(nm, tb, bwd16_bytes, 0);
        OK(kern_ctx_set_scan_variant(ctx, KERN_SCAN_FWD_TILE64 | KERN_SCAN_FWD_FMA | KERN_SCAN_BWD_LEAN, &err));
        const float tvf = time_ms(ctx, run_fwd, &h, reps);
        const float tvb = time_ms(ctx, run_bwd, &h, reps);
        OK(kern_ctx_set_scan_variant(ctx, 0, &err));
        snprintf(nm, sizeof nm, "B%d D%d L%d fwd bf16 tile64+fma", B, D, L);
        add_row(nm, tvf, fwd_bytes / 2, 0);
        snprintf(nm, sizeof nm, "B%d D%d L%d bwd bf16 lean (from hchk)", B, D, L);
        add_row(nm, tvb, bwd16_bytes, 0);
        for (int k = 0; k < 6; k++)
            kern_free(ctx, *dst[k]);
    }
    OK(kern_sync(ctx, &err));
    free_bufs(ctx, &s);

    size_t used = strlen(summary);
    if (!with_torch) {
        snprintf(summary + used, summary_len - used, "  B%d D%d L%d: PyTorch not run\n", B, D, L);
        return;
    }
    torch_res t;
    run_torch(B, L, D, N, &t);
    if (isnan(t.chunked_fwd)) {
        snprintf(summary + used, summary_len - used, "  B%d D%d L%d: PyTorch not available: %s\n",
                 B, D, L, t.note);
        return;
    }
    snprintf(summary + used, summary_len - used,
             "  B%d D%d L%d  fwd: ours %.3f ms | torch loop %.1f ms (x%.0f) | torch chunked %.2f ms (x%.1f)"
             "   bwd: ours %.3f ms | torch chunked autograd %.2f ms (x%.1f)   [chunked vs loop rel.err %.1e]%s%s\n",
             B, D, L, def_f, t.loop_fwd, t.loop_fwd / def_f, t.chunked_fwd, t.chunked_fwd / def_f,
             def_b, t.chunked_bwd, t.chunked_bwd / def_b, t.relerr, t.note[0] ? " " : "", t.note);
}

int main(int argc, char **argv)
{
    const int quick = argc > 1 && !strcmp(argv[1], "--quick");
    profile_mode = argc > 1 && !strcmp(argv[1], "--profile");
    if (kern_device_count() == 0) {
        printf("bench_scan: no CUDA device; nothing to measure\n");
        return 0;
    }
    kern_ctx *ctx;
    OK(kern_ctx_create(&ctx, 0, &err));
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    printf("bench_scan: %s, %d SMs, %s\n", kern_ctx_device_name(ctx), kern_ctx_sm_count(ctx), date);

    /* the floor's denominator: a large device-to-device copy, read + write bytes */
    copy_arg c = {0, 0, quick ? ((size_t)64 << 20) : ((size_t)2 << 30)};
    OK(kern_alloc(ctx, &c.src, c.bytes, &err));
    OK(kern_alloc(ctx, &c.dst, c.bytes, &err));
    OK(kern_zero(ctx, c.src, c.bytes, &err));
    const float tc = time_ms(ctx, run_copy, &c, 10);
    copy_gbs = 2.0 * c.bytes / (tc * 1e-3) / 1e9;
    printf("copy bandwidth: %.1f GB/s (cudaMemcpy D2D of %.2f GiB in %.4f ms, read + write)\n",
           copy_gbs, c.bytes / 1073741824.0, tc);
    kern_free(ctx, c.src);
    kern_free(ctx, c.dst);

    char summary[4096] = "";
    if (profile_mode) {
        bench_case(ctx, 16, 2048, 1536, 16, 1, 0, summary, sizeof summary);
        bench_case(ctx, 4, 8192, 2048, 16, 1, 0, summary, sizeof summary);
        kern_ctx_destroy(ctx);
        return 0;
    }
    if (argc > 5 && !strcmp(argv[1], "--auto")) {
        auto_mode = 1;
        bench_case(ctx, atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), 20, 0,
                   summary, sizeof summary);
        kern_ctx_destroy(ctx);
        return 0;
    }
    if (argc > 5 && !strcmp(argv[1], "--case")) { /* --case B L D N: one shape, no PyTorch */
        bench_case(ctx, atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), 10, 0,
                   summary, sizeof summary);
    } else if (quick) {
        bench_case(ctx, 2, 300, 96, 16, 3, 0, summary, sizeof summary);
    } else {
        bench_case(ctx, 16, 2048, 1536, 16, 10, 1, summary, sizeof summary);
        bench_case(ctx, 4, 8192, 2048, 16, 10, 1, summary, sizeof summary);
    }

    printf("\n==== bench_scan summary: %s (%d SMs), %s ====\n", kern_ctx_device_name(ctx),
           kern_ctx_sm_count(ctx), date);
    printf("copy bandwidth (D2D, read+write): %.1f GB/s; targets: fwd >= 70%%, bwd >= 50%%\n", copy_gbs);
    printf("%-46s %3s %9s %9s %8s %7s\n", "case", "S", "ms", "MB", "GB/s", "%copy");
    for (int i = 0; i < nrows; i++)
        printf("%-46s %3d %9.4f %9.1f %8.1f %6.1f%%\n", rows[i].name, rows[i].S, rows[i].ms,
               rows[i].mb, rows[i].gbs, 100 * rows[i].frac);
    printf("PyTorch on the same GPU (time ratio torch/ours, ours = the DEFAULT rows):\n%s", summary);
    kern_ctx_destroy(ctx);
    return 0;
}
