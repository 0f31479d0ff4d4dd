/*
 * kernels/scan.cu — the Mamba selective scan on the GPU, forward and backward, the mirror
 * of nssm_selective_scan_forward/backward (neural_ssm/scan.c) with the contract spelled out
 * in kernels.h. Every (B, L, D) input is read from device memory once and every output
 * written once; the N-vector states never leave registers. Inputs travel to shared memory
 * through cp.async pipelines a few tiles ahead of the arithmetic, so the recurrence never
 * waits on a load; what limits the kernels now is their instruction count (see README.md).
 *
 * Work split. A block owns one sequence b and 32 consecutive channels d (one per lane, so
 * every warp-wide load of a (B, L, D) row is one coalesced 128-byte line) and walks the
 * whole sequence in order. Its K = N/S warps split the N states: warp q keeps states
 * q*S .. q*S+S-1 of its 32 channels in registers, so there are B * D * N / S threads in
 * flight to hide the latencies of the exp(delta A) (one MUFU ex2 per state and step) and of
 * the recurrence. The partial sums C_t . h_t of the K warps meet in shared memory once per
 * tile.
 *
 * Backward. The adjoint g_t = C_t dy'_t + exp(delta_{t+1} A) g_{t+1} runs backwards in
 * time and needs h_{t-1} at every step. The forward leaves the state before every chunk of
 * KERN_SCAN_CHUNK steps in hchk; the backward walks the chunks from the last to the first,
 * re-runs the chunk's recurrence from hchk once to keep the state before every 8-step
 * sub-tile in shared memory, then for each sub-tile from the last recomputes its 8 states
 * in registers and runs the adjoint over them. Sums over d (dBm, dCm) are reduced across
 * the block's 32 channels in shared memory and added to device memory with float4 atomics;
 * sums over b and t (dA, dDskip) stay in registers until the end.
 */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits> /* std::is_same: which element types get the SPLIT kernels */

#include "internal.h"

namespace {

constexpr float LOG2E = 1.4426950408889634f;
constexpr int FWD_TILE = 16;                 /* steps between two y reductions */
constexpr int FWD_LONG = 64;                 /* the same with KERN_SCAN_FWD_TILE64 */
constexpr int SUB = 8;                       /* backward sub-tile (steps held in registers) */
constexpr int CHUNK = KERN_SCAN_CHUNK;       /* steps between two saved states */
constexpr int NSUB = CHUNK / SUB;
constexpr int RSTRIDE = 36;                  /* padded row of the d-reduction buffers */
static_assert(CHUNK % FWD_TILE == 0 && CHUNK % SUB == 0, "chunk must hold whole tiles");

__device__ __forceinline__ float ex2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* Stores and reads of one activation element; bf16 lives in uint16_t. */
__device__ __forceinline__ float cvt(uint16_t x) { return __uint_as_float(((unsigned)x) << 16); }
__device__ __forceinline__ void stf(float *p, float v) { *p = v; }
__device__ __forceinline__ void stf(uint16_t *p, float v)
{
    *p = __bfloat16_as_ushort(__float2bfloat16_rn(v));
}
__device__ __forceinline__ float rdf(const float *p) { return *p; }
__device__ __forceinline__ float rdf(const uint16_t *p) { return cvt(*p); }

__device__ __forceinline__ float sigmoidf_(float x) { return __fdividef(1.0f, 1.0f + __expf(-x)); }

/* kern_delta_act as the kernels take it (by value); float32 activations only. */
struct dact {
    const float *bias; /* (D) or NULL */
    float *dbias;      /* (D) or NULL, backward only */
    int softplus;
};
__device__ __forceinline__ float rcp(float x)
{
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
/* softplus(x) = max(x, 0) + log1p(t), t = e^-|x| in (0, 1], and x itself above 20
 * (PyTorch's threshold). log1p(t) = 2 atanh(s), s = t / (2 + t) in (0, 1/3]: the odd
 * series to s^15 is within 2e-9 relative, so the value is as good as ex2's and rcp's
 * rounding (a few 1e-7) in 2 MUFU and 12 FMA-pipe instructions; libm's log1pf(expf(x))
 * took about 40, and added a third to the forward's time at one warp a channel group.
 * t comes back for the slope: sigmoid(x) = 1 / (1 + t) for x >= 0, t / (1 + t) below. */
__device__ __forceinline__ float softplus_(float x, float &t)
{
    t = ex2(-fabsf(x) * LOG2E);
    const float s = t * rcp(2.0f + t), s2 = s * s;
    float p = 1.0f / 15.0f;
    p = fmaf(p, s2, 1.0f / 13.0f);
    p = fmaf(p, s2, 1.0f / 11.0f);
    p = fmaf(p, s2, 1.0f / 9.0f);
    p = fmaf(p, s2, 1.0f / 7.0f);
    p = fmaf(p, s2, 1.0f / 5.0f);
    p = fmaf(p, s2, 1.0f / 3.0f);
    p = fmaf(p, s2, 1.0f);
    return x > 20.0f ? x : fmaf(2.0f * s, p, fmaxf(x, 0.0f));
}
/* softplus(raw + bias) (or raw + bias), and its derivative with respect to raw:
 * sigmoid(raw + bias), or 1. */
__device__ __forceinline__ float act_one(float x, int softplus, float &slope)
{
    slope = 1.0f;
    if (!softplus)
        return x;
    float t;
    const float sp = softplus_(x, t);
    slope = x > 20.0f ? 1.0f : (x >= 0.0f ? 1.0f : t) * rcp(1.0f + t);
    return sp;
}

/* The backward's delta activation of one sub-tile of `n` (rows x 32 channels) delta values
 * in shared memory, in place, by the whole block, after the barrier that publishes the
 * copies (the caller's next barrier publishes the result): the raw values become the
 * activated delta, the one value the forward and the backward's recomputation both use,
 * and with `slope` its derivative goes there too, for the pre-activation's gradient.
 * Element e is channel e % 32 == lane, whose bias is db. (Activating each thread's own
 * 16-byte copies before the first barrier instead, as the forward does, left half the
 * block idle there and was slower: 6.40 against 6.12 ms a training step; so was doing it
 * with 4-byte copies.) */
template <typename T>
__device__ __forceinline__ void act_rows(T *sdt, int n, float *slope, float db, int softplus)
{
    for (int e = threadIdx.x; e < n; e += blockDim.x) {
        float sl;
        const float x = act_one(rdf(sdt + e) + db, softplus, sl);
        if (slope)
            slope[e] = sl;
        stf(sdt + e, x);
    }
}

/* The forward's delta activation, in place in shared memory, of exactly the elements this
 * thread copied there (the loop of load_rows<VEC>, float32): once the thread's cp_wait has
 * seen its own copies land it needs no barrier of its own, and the barrier that publishes
 * the tile publishes them. Each delta is activated once a tile, not by every warp that
 * reads it. A thread's chunks all sit at one column (blockDim is a multiple of the chunks
 * a row holds), so db holds the biases of its EPC channels (own_bias). */
template <bool VEC>
__device__ __forceinline__ void act_own(float *sdt, int rows, const float (&db)[4], int softplus)
{
    constexpr int EPC = VEC ? 4 : 1, CPR = 32 / EPC;
    for (int e = threadIdx.x; e < rows * CPR; e += blockDim.x) {
        const int o = (e / CPR) * 32 + (e % CPR) * EPC;
#pragma unroll
        for (int j = 0; j < EPC; j++) {
            float sl;
            sdt[o + j] = act_one(sdt[o + j] + db[j], softplus, sl);
        }
    }
}
/* The biases of the channels this thread copies (act_own); 0 past D and without a bias. */
template <bool VEC>
__device__ __forceinline__ void own_bias(float (&db)[4], const float *bias, int d0, int D)
{
    constexpr int EPC = VEC ? 4 : 1, CPR = 32 / EPC;
    const int c = d0 + (threadIdx.x % CPR) * EPC;
#pragma unroll
    for (int j = 0; j < 4; j++)
        db[j] = bias && j < EPC && c + j < D ? bias[c + j] : 0.0f;
}

/* ---- asynchronous copies into shared memory ------------------------------------------ */

__device__ __forceinline__ void cp4(void *smem, const void *gmem, bool ok)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(gmem),
                 "r"(ok ? 4 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int P>
__device__ __forceinline__ void cp_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(P) : "memory");
}

/* a 16-byte copy known to be in bounds: no source-size operand to compute or pass */
__device__ __forceinline__ void cp16_full(void *smem, const void *gmem)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(
                     (unsigned)__cvta_generic_to_shared(smem)),
                 "l"(gmem)
                 : "memory");
}
__device__ __forceinline__ void cp16(void *smem, const void *gmem, bool ok)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem),
                 "r"(ok ? 16 : 0)
                 : "memory");
}

/* `rows` rows x 32 channels of a (B, L, D) array, src pointing at (b, t0, d0), into
 * dst[rows][32]; rows past rows_valid (t >= L) and channels past dvalid (d >= D) are zero,
 * so padded steps and channels are exact no-ops (delta = 0: h unchanged; dy = 0: no
 * gradient). VEC: 16-byte copies (D a multiple of 16 bytes, aligned pointers), else 4. */
template <bool VEC, typename T>
__device__ __forceinline__ void load_rows(T *dst, const T *src, int rows, int rows_valid, int D,
                                          int dvalid)
{
    constexpr int EPC = (VEC ? 16 : 4) / sizeof(T), CPR = 32 / EPC;
    for (int e = threadIdx.x; e < rows * CPR; e += blockDim.x) {
        const int r = e / CPR, c = (e % CPR) * EPC;
        const bool ok = r < rows_valid && c < dvalid;
        const T *g = ok ? src + r * D + c : src;
        if constexpr (VEC)
            cp16(dst + r * 32 + c, g, ok);
        else
            cp4(dst + r * 32 + c, g, ok);
    }
}
/* `rows` rows of a (B, L, N) array (contiguous from src = (b, t0, 0)) into dst[rows][N]. */
template <bool VEC, typename T>
__device__ __forceinline__ void load_bc(T *dst, const T *src, int rows, int rows_valid, int N)
{
    constexpr int EPC = (VEC ? 16 : 4) / sizeof(T);
    const int n = rows * N / EPC;
    for (int e = threadIdx.x; e < n; e += blockDim.x) {
        const bool ok = rows_valid == rows || e * EPC / N < rows_valid;
        if constexpr (VEC)
            cp16(dst + e * EPC, ok ? src + e * EPC : src, ok);
        else
            cp4(dst + e * EPC, ok ? src + e * EPC : src, ok);
    }
}

/* S consecutive elements from shared memory (the same address across a warp: broadcast). */
template <int S>
__device__ __forceinline__ void ldsm(float (&v)[S], const float *p)
{
    if constexpr (S % 4 == 0) {
#pragma unroll
        for (int k = 0; k < S; k += 4) {
            const float4 w = *(const float4 *)(p + k);
            v[k] = w.x; v[k + 1] = w.y; v[k + 2] = w.z; v[k + 3] = w.w;
        }
    } else if constexpr (S == 2) {
        const float2 w = *(const float2 *)p;
        v[0] = w.x; v[1] = w.y;
    } else {
        v[0] = *p;
    }
}
template <int S>
__device__ __forceinline__ void ldsm(float (&v)[S], const uint16_t *p)
{
    if constexpr (S % 4 == 0) {
#pragma unroll
        for (int k = 0; k < S; k += 4) {
            const uint2 w = *(const uint2 *)(p + k);
            v[k] = __uint_as_float(w.x << 16); v[k + 1] = __uint_as_float(w.x & 0xffff0000u);
            v[k + 2] = __uint_as_float(w.y << 16); v[k + 3] = __uint_as_float(w.y & 0xffff0000u);
        }
    } else if constexpr (S == 2) {
        const unsigned w = *(const unsigned *)p;
        v[0] = __uint_as_float(w << 16); v[1] = __uint_as_float(w & 0xffff0000u);
    } else {
        v[0] = rdf(p);
    }
}

__host__ __device__ constexpr size_t align16(size_t bytes) { return (bytes + 15) & ~(size_t)15; }

/* ---- forward ---------------------------------------------------------------------------
 * grid (ceil(D/32), B), block 32*K threads, K = N/S. Shared memory: FWD_STAGES tiles of
 * inputs (u, delta, z [FWD_TILE][32], B, C [FWD_TILE][N], element type T) filled by
 * cp.async FWD_STAGES-1 tiles ahead of the compute, then the partial outputs
 * ypart[K][FWD_TILE][32] (float). STATES_ONLY skips C, z and y: the backward's own pass
 * that fills hchk when the caller kept none. */
constexpr int FWD_STAGES = 3;

__host__ __device__ constexpr size_t fwd_stage_elems(int N, int tile) { return 3 * (size_t)tile * 32 + 2 * (size_t)tile * N; }
/* long tiles take two stages: the copies run a whole tile ahead */
__host__ __device__ constexpr int fwd_stages(int tile) { return tile == FWD_TILE ? FWD_STAGES : 2; }
template <typename T>
__host__ __device__ constexpr size_t fwd_smem_bytes(int N, int K, int tile)
{
    return align16(fwd_stages(tile) * fwd_stage_elems(N, tile) * sizeof(T)) + (size_t)K * tile * 32 * sizeof(float);
}

/* Variants (kernels/internal.h flags, chosen by the host):
 * TILE: steps between two y reductions (two barriers each). FWD_TILE (16) is the default;
 * FWD_LONG (64) is KERN_SCAN_FWD_TILE64: a quarter of the barriers and per-tile work per
 * step, in two stages of 4x the shared memory; with VEC it needs 64 to 256 threads (MJ
 * below). Long tiles also issue each step's exp(delta A) AHEAD steps before its
 * recurrence, one step at a time, instead of a group's exps in a burst (see the loop).
 * Bounds (256, 2): with no minimum ptxas 13.0 held a 32-step tile to 64 registers and
 * spilled at S=8; with 1 it took up to 251 (SPLIT), too many for the 4 blocks an SM that
 * SPLIT needs at B=4 D=2048; with 2 (<= 128) none spills. The default tile keeps its bounds
 * (512; a 0 minimum is the same as none: the same registers as before the variants).
 * FMA_CHAIN (KERN_SCAN_FWD_FMA): each thread's part of C_t . h_t as one chain of S FMAs
 * instead of S products and a pairwise tree of S-1 adds (S-1 fewer instructions a step;
 * the G independent steps of a group still overlap the chain's latency).
 * SPLIT (KERN_SCAN_FWD_SPLIT2): grid.z = 2 halves of the sequence (cut at a chunk boundary)
 * for twice the blocks where B * D is small. Half 0 runs as usual; half 1 first runs the
 * recurrence alone (u, delta, B; no C, z, y or hchk) over half 0 to get its starting state,
 * then the full forward over its own half: 1.3x the instructions of the whole sequence,
 * but the longest block does 0.8x of the serial walk and twice the warps hide latency. */
template <typename T, int S, bool STATES_ONLY, bool VEC, int NT, int TILE = FWD_TILE,
          bool FMA_CHAIN = false, bool SPLIT = false, bool ACT = false>
__global__ void __launch_bounds__(TILE == FWD_TILE ? 512 : 256, TILE == FWD_TILE ? 0 : 2)
scan_forward_kernel(T *__restrict__ y, float *__restrict__ hchk, const T *__restrict__ u,
                    const T *__restrict__ delta, dact act, const float *__restrict__ A,
                    const T *__restrict__ Bm, const T *__restrict__ Cm,
                    const float *__restrict__ Dskip, const T *__restrict__ z, int L, int D,
                    int N_)
{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    /* NT != 0: the state size known at compile time (16, the common case), so every
     * shared-memory offset below is an immediate */
    const int N = NT ? NT : N_;
    const int lane = threadIdx.x & 31, q = threadIdx.x >> 5, K = NT ? NT / S : blockDim.x >> 5;
    const int b = blockIdx.y;
    const int d0 = blockIdx.x * 32, d = d0 + lane;
    const bool dok = d < D;
    const bool dfull = D - d0 >= 32; /* all 32 channels of the block exist */
    const int dc = dok ? d : D - 1;
    const int n0 = q * S;
    const int NC = (L + CHUNK - 1) / CHUNK;
    const int ntiles = (L + TILE - 1) / TILE;
    /* tiles [0, kend) are walked; below kout only the recurrence (SPLIT's half 1), in a
     * loop of its own so that the default kernel's loop is the same code as before */
    int kend = ntiles, kout = 0;
    if constexpr (SPLIT) {
        constexpr int TPC = CHUNK / TILE;
        const int half = min(ntiles, ((ntiles + 1) / 2 + TPC - 1) / TPC * TPC);
        if (blockIdx.z == 0)
            kend = half;
        else
            kout = half;
    }
    const size_t se = fwd_stage_elems(N, TILE);
    constexpr int STAGES = fwd_stages(TILE);
    T *stages = (T *)smem_raw;
    float *ypart = (float *)(smem_raw + align16(STAGES * se * sizeof(T)));

    float a2[S], h[S];
#pragma unroll
    for (int s = 0; s < S; s++) {
        a2[s] = A[(size_t)dc * N + n0 + s] * LOG2E; /* exp(dt A) = 2^(dt A log2 e) */
        h[s] = 0.0f;
    }
    const float Dd = Dskip ? Dskip[dc] : 0.0f;
    /* ACT: the delta activation (act_own), compiled only into the kernels that take it:
     * with its code present but unused, the plain kernels ran 4-7 % slower */
    float dbo[4];
    if constexpr (ACT)
        own_bias<VEC>(dbo, act.bias, d0, D);

    /* VEC: this thread's 16-byte copies of a tile, worked out once: row job m copies
     * chunk e = tid + m*blockDim of every row array (row e / CPR, column (e % CPR) * EPC),
     * bc job m chunk e of B and C. At most 4 of each with TILE 16 (>= 32 threads), 8 with
     * FWD_LONG (>= 64 threads, which the host checks before choosing it). */
    static_assert(CHUNK % TILE == 0, "a chunk must hold whole tiles");
    constexpr int EPC = 16 / sizeof(T), CPR = 32 / EPC, MJ = TILE > 32 ? 8 : 4;
    int roff[MJ], rsm[MJ], rrow[MJ], boff[MJ], brow[MJ];
    bool rin[MJ], rok[MJ], bok[MJ];
    if constexpr (VEC) {
#pragma unroll
        for (int m = 0; m < MJ; m++) {
            const int e = threadIdx.x + m * blockDim.x;
            const int r = e / CPR, c = (e % CPR) * EPC;
            rin[m] = e < TILE * CPR;
            rok[m] = c < D - d0; /* whole 16-byte chunks: D is a multiple of EPC */
            roff[m] = r * D + c;
            rsm[m] = r * 32 + c;
            rrow[m] = r;
            bok[m] = e < TILE * N / EPC;
            boff[m] = e * EPC;
            brow[m] = e * EPC / N;
        }
    }

    auto issue = [&](int k) {
        const bool quiet_k = STATES_ONLY || (SPLIT && k < kout); /* no C, z for this tile */
        if constexpr (VEC) {
            if (k < kend) {
                T *st = stages + (k % STAGES) * se;
                const int t0 = k * TILE;
                const size_t off = ((size_t)b * L + t0) * D + d0, offn = ((size_t)b * L + t0) * N;
                const int rv = min(TILE, L - t0);
                const T *srcs[3] = {u + off, delta + off, quiet_k ? nullptr : z ? z + off : nullptr};
                const T *bsrc[2] = {Bm + offn, quiet_k ? nullptr : Cm + offn};
                if constexpr (NT != 0) {
                    /* the common case, every step and channel of the tile in bounds: with the
                     * block size known at compile time each thread's copies are a fixed list,
                     * with no job test, no bounds test and no source size. The predicated
                     * form below issues about 12 instructions a copy; this path made the
                     * forward 11-13 % faster (kernels/README.md, "What was tried", row 7).
                     * The same copies follow act_own's element map (e = tid + m * NTHR). */
                    if (rv == TILE && dfull) {
                        constexpr int NTHR = 32 * (NT / S), RE = TILE * CPR, BE = TILE * NT / EPC;
#pragma unroll
                        for (int a = 0; a < 3; a++) {
                            if (!srcs[a])
                                continue;
#pragma unroll
                            for (int m = 0; m < (RE + NTHR - 1) / NTHR; m++)
                                if (RE % NTHR == 0 || rin[m])
                                    cp16_full(st + a * TILE * 32 + rsm[m], srcs[a] + roff[m]);
                        }
#pragma unroll
                        for (int a = 0; a < 2; a++) {
                            if (!bsrc[a])
                                continue;
#pragma unroll
                            for (int m = 0; m < (BE + NTHR - 1) / NTHR; m++)
                                if (BE % NTHR == 0 || bok[m])
                                    cp16_full(st + 3 * TILE * 32 + a * TILE * N + boff[m], bsrc[a] + boff[m]);
                        }
                        cp_commit();
                        return;
                    }
                }
#pragma unroll
                for (int a = 0; a < 3; a++) {
                    if (!srcs[a])
                        continue;
#pragma unroll
                    for (int m = 0; m < MJ; m++)
                        if (rin[m]) {
                            const bool ok = rok[m] && rrow[m] < rv;
                            cp16(st + a * TILE * 32 + rsm[m], ok ? srcs[a] + roff[m] : srcs[a], ok);
                        }
                }
#pragma unroll
                for (int a = 0; a < 2; a++) {
                    if (!bsrc[a])
                        continue;
#pragma unroll
                    for (int m = 0; m < MJ; m++)
                        if (bok[m]) {
                            const bool ok = brow[m] < rv;
                            cp16(st + 3 * TILE * 32 + a * TILE * N + boff[m],
                                 ok ? bsrc[a] + boff[m] : bsrc[a], ok);
                        }
                }
            }
            cp_commit();
            return;
        }
        if (k < kend) {
            T *st = stages + (k % STAGES) * se;
            const int t0 = k * TILE;
            const size_t off = ((size_t)b * L + t0) * D + d0, offn = ((size_t)b * L + t0) * N;
            const int rv = min(TILE, L - t0), dv = D - d0;
            load_rows<VEC>(st, u + off, TILE, rv, D, dv);
            load_rows<VEC>(st + TILE * 32, delta + off, TILE, rv, D, dv);
            load_bc<VEC>(st + 3 * TILE * 32, Bm + offn, TILE, rv, N);
            if (!quiet_k) {
                if (z)
                    load_rows<VEC>(st + 2 * TILE * 32, z + off, TILE, rv, D, dv);
                load_bc<VEC>(st + 3 * TILE * 32 + TILE * N, Cm + offn, TILE, rv, N);
            }
        }
        cp_commit(); /* always: keeps the group count in step with the tile count */
    };

#pragma unroll
    for (int k = 0; k < STAGES - 1; k++)
        issue(k);
    if constexpr (SPLIT) { /* half 1: the recurrence alone over half 0, for its start state */
        for (int k = 0; k < kout; k++) {
            cp_wait<STAGES - 2>();
            if constexpr (ACT)
                act_own<VEC>(stages + (k % STAGES) * se + TILE * 32, TILE, dbo, act.softplus);
            __syncthreads(); /* tile k has landed; tile k-1's stage is free */
            issue(k + STAGES - 1);
            const T *st = stages + (k % STAGES) * se;
            const T *su = st, *sdt = st + TILE * 32, *sB = st + 3 * TILE * 32;
            constexpr int G = S >= 16 ? 2 : S >= 8 ? 4 : 8;
#pragma unroll
            for (int i0 = 0; i0 < TILE; i0 += G) {
                float E[G][S], dts[G];
#pragma unroll
                for (int i = 0; i < G; i++) {
                    dts[i] = rdf(sdt + (i0 + i) * 32 + lane);
#pragma unroll
                    for (int s = 0; s < S; s++)
                        E[i][s] = ex2(dts[i] * a2[s]);
                }
#pragma unroll
                for (int i = 0; i < G; i++) {
                    const int ii = i0 + i;
                    const float dtu = dts[i] * rdf(su + ii * 32 + lane);
                    float bv[S];
                    ldsm<S>(bv, sB + ii * N + n0);
#pragma unroll
                    for (int s = 0; s < S; s++)
                        h[s] = fmaf(E[i][s], h[s], dtu * bv[s]);
                }
            }
        }
    }
    for (int k = kout; k < kend; k++) {
        cp_wait<STAGES - 2>();
        if constexpr (ACT) /* this thread's part of tile k, published by the barrier */
            act_own<VEC>(stages + (k % STAGES) * se + TILE * 32, TILE, dbo, act.softplus);
        __syncthreads(); /* tile k has landed; tile k-1's stage and ypart are free */
        issue(k + STAGES - 1);
        const T *st = stages + (k % STAGES) * se;
        const T *su = st, *sdt = st + TILE * 32, *sz = st + 2 * TILE * 32;
        const T *sB = st + 3 * TILE * 32, *sC = sB + TILE * N;
        const int t0 = k * TILE;
        if (hchk && t0 % CHUNK == 0 && dok) {
            float *hc = hchk + (((size_t)b * NC + t0 / CHUNK) * N + n0) * D + d;
#pragma unroll
            for (int s = 0; s < S; s++)
                hc[(size_t)s * D] = h[s];
        }
        if constexpr (TILE == FWD_LONG && S <= 8) {
            /* One step of the recurrence, from its exp(delta A) E and its delta dt. */
            auto recur = [&](int ii, const float (&E)[S], float dt) {
                const float dtu = dt * rdf(su + ii * 32 + lane);
                float bv[S];
                ldsm<S>(bv, sB + ii * N + n0);
#pragma unroll
                for (int s = 0; s < S; s++)
                    h[s] = fmaf(E[s], h[s], dtu * bv[s]);
            };
            /* This thread's part of C_t . h_t for step ii, from that step's state hh, to ypart. */
            auto cpart = [&](int ii, const float (&hh)[S]) {
                if constexpr (!STATES_ONLY) {
                    float cv[S];
                    ldsm<S>(cv, sC + ii * N + n0);
                    float part[S];
                    if constexpr (FMA_CHAIN) {
                        part[0] = cv[0] * hh[0];
#pragma unroll
                        for (int s = 1; s < S; s++)
                            part[0] = fmaf(cv[s], hh[s], part[0]);
                    } else {
#pragma unroll
                        for (int s = 0; s < S; s++)
                            part[s] = cv[s] * hh[s];
#pragma unroll
                        for (int w = 1; w < S; w *= 2) /* pairwise sum: a short dependency chain */
#pragma unroll
                            for (int s = 0; s + w < S; s += 2 * w)
                                part[s] += part[s + w];
                    }
                    ypart[(q * TILE + ii) * 32 + lane] = part[0];
                }
            };
            /* The instruction stream is reordered for the few warps of a small grid (ptxas
             * keeps much of the source order, and two warps a scheduler cannot hide what it
             * leaves back to back):
             *  - each step's exps are issued AHEAD steps before its recurrence, one step's at
             *    a time. The MUFU unit takes a warp's ex2 in 8 cycles of its scheduler, about
             *    the time the rest of a state-step takes to issue; in bursts (a group's exps,
             *    then its recurrence, as below) the warps, kept in step by the barriers, all
             *    wait on the MUFU queue at once and then leave it idle;
             *  - the C.h chain of step j (S dependent FMAs) is issued after the recurrence of
             *    step j + 1, which does not depend on it, instead of right after its own.
             * B=4 D=2048: 0.54 ms in groups, 0.52 with the exps ahead, 0.49 with the chain
             * after (73 % of copy bandwidth). At B=16 D=1536 (S=8, 16-step tiles) the exps
             * ahead were 3 % slower than the groups, which stay there; so do S = 16's long
             * tiles (the copies of the states spilled there). */
            constexpr int AHEAD = 4;
            /* all indices compile-time: registers, each live a few steps */
            float E[TILE][S], dts[TILE], hs[TILE][S];
#pragma unroll
            for (int ii = 0; ii < TILE + AHEAD; ii++) {
                if (ii < TILE) {
                    dts[ii] = rdf(sdt + ii * 32 + lane);
#pragma unroll
                    for (int s = 0; s < S; s++)
                        E[ii][s] = ex2(dts[ii] * a2[s]);
                }
                if (ii >= AHEAD) {
                    const int j = ii - AHEAD;
                    recur(j, E[j], dts[j]);
#pragma unroll
                    for (int s = 0; s < S; s++)
                        hs[j][s] = h[s];
                    if (j >= 1)
                        cpart(j - 1, hs[j - 1]);
                }
            }
            cpart(TILE - 1, hs[TILE - 1]);
        } else {
            /* G steps at a time: first their exp(delta A) (independent MUFU work the scheduler
             * can overlap), then the recurrence, whose only serial dependency is one FFMA. */
            constexpr int G = S >= 16 ? 2 : S >= 8 ? 4 : 8;
#pragma unroll
            for (int i0 = 0; i0 < TILE; i0 += G) {
                float E[G][S], dts[G];
#pragma unroll
                for (int i = 0; i < G; i++) {
                    dts[i] = rdf(sdt + (i0 + i) * 32 + lane);
#pragma unroll
                    for (int s = 0; s < S; s++)
                        E[i][s] = ex2(dts[i] * a2[s]);
                }
#pragma unroll
                for (int i = 0; i < G; i++) {
                    const int ii = i0 + i;
                    const float dtu = dts[i] * rdf(su + ii * 32 + lane);
                    float bv[S];
                    ldsm<S>(bv, sB + ii * N + n0);
#pragma unroll
                    for (int s = 0; s < S; s++)
                        h[s] = fmaf(E[i][s], h[s], dtu * bv[s]);
                    if constexpr (!STATES_ONLY) {
                        float cv[S];
                        ldsm<S>(cv, sC + ii * N + n0);
                        float part[S];
                        if constexpr (FMA_CHAIN) {
                            part[0] = cv[0] * h[0];
#pragma unroll
                            for (int s = 1; s < S; s++)
                                part[0] = fmaf(cv[s], h[s], part[0]);
                        } else {
#pragma unroll
                            for (int s = 0; s < S; s++)
                                part[s] = cv[s] * h[s];
#pragma unroll
                            for (int w = 1; w < S; w *= 2) /* pairwise sum: a short dependency chain */
#pragma unroll
                                for (int s = 0; s + w < S; s += 2 * w)
                                    part[s] += part[s + w];
                        }
                        ypart[(q * TILE + ii) * 32 + lane] = part[0];
                    }
                }
            }
        }
        if constexpr (!STATES_ONLY) {
            __syncthreads();
            if (dok) {
                T *y_t = y + ((size_t)b * L + t0 + q) * D + d;
                const int iend = min(TILE, L - t0);
                for (int i = q; i < iend; i += K, y_t += (size_t)K * D) {
                    float acc = Dd * rdf(su + i * 32 + lane);
                    const float *yp = ypart + i * 32 + lane;
                    for (int kk = 0; kk < K; kk++, yp += TILE * 32)
                        acc += *yp;
                    if (z) {
                        const float zv = rdf(sz + i * 32 + lane);
                        acc *= zv * sigmoidf_(zv);
                    }
                    stf(y_t, acc);
                }
            }
        }
    }
    cp_wait<0>();
}

/* ---- backward --------------------------------------------------------------------------
 * Same grid and block as the forward. The work of a block is a stream of sub-tiles of SUB
 * steps: for each chunk from the last, its "sweep" sub-tiles 0 .. ns-2 (u, delta, B: the
 * recurrence from hchk, leaving the state before every sub-tile in ckpt), then its
 * "reverse" sub-tiles ns-1 .. 0 (u, delta, B, C, z, dy). cp.async fetches the stream
 * BWD_STAGES-1 sub-tiles ahead into a ring of slots; u, delta and B are fetched twice per
 * chunk (the second time from L2: a chunk of a block is 20 KB).
 * Shared memory: slots [BWD_STAGES] of (su, sdt, sz, sdy [SUB][32], sB, sC [SUB][N]) in T,
 * then floats: ckpt [NSUB][N][32], p1, p2 [K][SUB][32], sdyss [SUB][32],
 * red [SUB][N][RSTRIDE] (per-channel terms of dBm, then of dCm, before the sum over d;
 * one buffer used twice measured faster than two at B=16 D=1536: more blocks fit). */
constexpr int BWD_STAGES = 3;

__host__ __device__ constexpr size_t bwd_slot_elems(int N) { return 4 * SUB * 32 + 2 * (size_t)SUB * N; }
template <typename T>
__host__ __device__ constexpr size_t bwd_smem_bytes(int N, int K)
{
    return align16(BWD_STAGES * bwd_slot_elems(N) * sizeof(T)) +
           sizeof(float) * ((size_t)NSUB * N * 32 + 2 * (size_t)K * SUB * 32 + 2 * SUB * 32 +
                            (size_t)SUB * N * RSTRIDE);
}

template <typename T>
__device__ __forceinline__ void put(T *p, float v, int accumulate)
{
    stf(p, accumulate ? rdf(p) + v : v);
}

/* Sum over the block's 32 channels of red[SUB][N][RSTRIDE], four states at a time, added
 * to dst (b's (L, N) slice) for the sub-tile's valid steps. N % 4 == 0. */
__device__ __forceinline__ void reduce_red_add(float *dst, const float *red, int ts, int L, int N)
{
    const int R = SUB * N;
    for (int o0 = 0; o0 < R; o0 += blockDim.x) {
        const int o = o0 + threadIdx.x;
        float sum = 0.0f;
        if (o < R) {
            const float *row = red + o * RSTRIDE;
#pragma unroll
            for (int k = 0; k < 32; k += 4) {
                const float4 w = *(const float4 *)(row + k);
                sum += (w.x + w.y) + (w.z + w.w);
            }
        }
        const float s1 = __shfl_down_sync(0xffffffffu, sum, 1);
        const float s2 = __shfl_down_sync(0xffffffffu, sum, 2);
        const float s3 = __shfl_down_sync(0xffffffffu, sum, 3);
        if (o < R && o % 4 == 0) {
            const int t = ts + o / N;
            if (t < L)
                atomicAdd((float4 *)(dst + (size_t)t * N + o % N), make_float4(sum, s1, s2, s3));
        }
    }
}

/* Wider state slices hold 2*SUB*S floats of history in registers: fewer threads a block
 * for them, so the compiler may use up to 255 registers. */
__host__ __device__ constexpr int bwd_max_warps(int S) { return S >= 4 ? 8 : 16; }

/* (Capping registers so that 3 blocks of 4 warps fit an SM instead of 2 was measured: no
 * change at B=16 D=1536 or B=4 D=2048. The backward is bound by its instruction count.) */
template <typename T, int S, bool HAS_Z, bool VEC, int NT>
__global__ void __launch_bounds__(32 * bwd_max_warps(S))
scan_backward_kernel(T *__restrict__ du, T *__restrict__ ddelta, float *__restrict__ dA,
                     float *__restrict__ dBm, float *__restrict__ dCm,
                     float *__restrict__ dDskip, T *__restrict__ dz, const T *__restrict__ dy,
                     const T *__restrict__ u, const T *__restrict__ delta, dact act,
                     const float *__restrict__ A, const T *__restrict__ Bm,
                     const T *__restrict__ Cm, const float *__restrict__ Dskip,
                     const T *__restrict__ z, const float *__restrict__ hchk, int L, int D,
                     int N_, int accumulate)
{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int N = NT ? NT : N_; /* see the forward */
    const int lane = threadIdx.x & 31, q = threadIdx.x >> 5, K = NT ? NT / S : blockDim.x >> 5;
    const size_t se = bwd_slot_elems(N);
    T *slots = (T *)smem_raw;
    float *ckpt = (float *)(smem_raw + align16(BWD_STAGES * se * sizeof(T)));
    float *p1 = ckpt + NSUB * N * 32;
    float *p2 = p1 + K * SUB * 32;
    float *sdyss = p2 + K * SUB * 32;
    float *ssig = sdyss + SUB * 32;
    float *red = ssig + SUB * 32;

    const int b = blockIdx.y;
    const int d0 = blockIdx.x * 32, d = d0 + lane;
    const bool dok = d < D;
    const int dc = dok ? d : D - 1;
    const int n0 = q * S;
    const int NC = (L + CHUNK - 1) / CHUNK;
    const size_t bLD = (size_t)b * L * D;
    float *dB_b = dBm + (size_t)b * L * N, *dC_b = dCm + (size_t)b * L * N;

    float a[S], a2[S], g[S], En[S], dAacc[S];
#pragma unroll
    for (int s = 0; s < S; s++) {
        a[s] = A[(size_t)dc * N + n0 + s];
        a2[s] = a[s] * LOG2E;
        g[s] = 0.0f;  /* dL/dh_t, carried backwards */
        En[s] = 1.0f; /* exp(delta_{t+1} A), the factor that carries g */
        dAacc[s] = 0.0f;
    }
    const float Dd = Dskip ? Dskip[dc] : 0.0f;
    float dDacc = 0.0f;
    /* the delta activation: float32 only (the host refuses it for bf16) */
    const bool acton = std::is_same<T, float>::value && (act.bias || act.softplus);
    const float db = acton && act.bias ? act.bias[dc] : 0.0f;
    float dbacc = 0.0f; /* this thread's part of dbias[d] */

    auto nsub_of = [&](int c) { return (min(CHUNK, L - c * CHUNK) + SUB - 1) / SUB; };
    int pc = NC - 1, pi = 0, pseq = 0; /* the next sub-tile to fetch */
    auto issue = [&]() {
        if (pc >= 0) {
            const int ns = nsub_of(pc);
            const bool rev = pi >= ns - 1;
            const int j = rev ? 2 * (ns - 1) - pi : pi;
            const int t0 = pc * CHUNK + j * SUB;
            T *sl = slots + (pseq % BWD_STAGES) * se;
            const size_t off = ((size_t)b * L + t0) * D + d0, offn = ((size_t)b * L + t0) * N;
            const int rv = min(SUB, L - t0), dv = D - d0;
            load_rows<VEC>(sl, u + off, SUB, rv, D, dv);
            load_rows<VEC>(sl + SUB * 32, delta + off, SUB, rv, D, dv);
            load_bc<VEC>(sl + 4 * SUB * 32, Bm + offn, SUB, rv, N);
            if (rev) {
                if constexpr (HAS_Z)
                    load_rows<VEC>(sl + 2 * SUB * 32, z + off, SUB, rv, D, dv);
                load_rows<VEC>(sl + 3 * SUB * 32, dy + off, SUB, rv, D, dv);
                load_bc<VEC>(sl + 4 * SUB * 32 + SUB * N, Cm + offn, SUB, rv, N);
            }
            if (++pi == 2 * ns - 1) {
                pc--;
                pi = 0;
            }
        }
        pseq++;
        cp_commit();
    };
#pragma unroll
    for (int k = 0; k < BWD_STAGES - 1; k++)
        issue();

    int seq = 0;
    float hnext[S];
#pragma unroll
    for (int s = 0; s < S; s++)
        hnext[s] = dok ? hchk[(((size_t)b * NC + NC - 1) * N + n0 + s) * D + d] : 0.0f;
    for (int c = NC - 1; c >= 0; c--) {
        const int ns = nsub_of(c);
        float h[S];
#pragma unroll
        for (int s = 0; s < S; s++) {
            h[s] = hnext[s];
            ckpt[(n0 + s) * 32 + lane] = h[s]; /* ckpt[0]: the state before the chunk */
        }
        if (c > 0) /* prefetch the next chunk's saved state */
#pragma unroll
            for (int s = 0; s < S; s++)
                hnext[s] = dok ? hchk[(((size_t)b * NC + c - 1) * N + n0 + s) * D + d] : 0.0f;

        for (int idx = 0; idx < 2 * ns - 1; idx++, seq++) {
            cp_wait<BWD_STAGES - 2>();
            __syncthreads();
            issue();
            const T *sl = slots + (seq % BWD_STAGES) * se;
            if (acton) { /* uniform: one more barrier a sub-tile, only with the activation */
                act_rows<T>(slots + (seq % BWD_STAGES) * se + SUB * 32, SUB * 32, ssig, db,
                            act.softplus);
                __syncthreads();
            }
            const T *su = sl, *sdt = sl + SUB * 32, *sz = sl + 2 * SUB * 32, *sdy = sl + 3 * SUB * 32;
            const T *sB = sl + 4 * SUB * 32, *sC = sB + SUB * N;

            if (idx < ns - 1) { /* sweep: advance h over sub-tile idx, keep the state after it */
#pragma unroll
                for (int i = 0; i < SUB; i++) {
                    const float dtv = rdf(sdt + i * 32 + lane), uv = rdf(su + i * 32 + lane);
                    float bv[S];
                    ldsm<S>(bv, sB + i * N + n0);
#pragma unroll
                    for (int s = 0; s < S; s++)
                        h[s] = ex2(dtv * a2[s]) * h[s] + dtv * uv * bv[s];
                }
#pragma unroll
                for (int s = 0; s < S; s++)
                    ckpt[((idx + 1) * N + n0 + s) * 32 + lane] = h[s];
                continue;
            }
            const int j = 2 * (ns - 1) - idx;
            const int ts = c * CHUNK + j * SUB;

            /* 1. Recompute the sub-tile's states in registers; partial C.h per warp. */
            float H[SUB][S], E[SUB][S], h0[S], hc[S];
#pragma unroll
            for (int s = 0; s < S; s++)
                hc[s] = h0[s] = ckpt[(j * N + n0 + s) * 32 + lane];
#pragma unroll
            for (int i = 0; i < SUB; i++) {
                const float dtv = rdf(sdt + i * 32 + lane), uv = rdf(su + i * 32 + lane);
                float bv[S], cv[S];
                ldsm<S>(bv, sB + i * N + n0);
                ldsm<S>(cv, sC + i * N + n0);
                float acc = 0.0f;
#pragma unroll
                for (int s = 0; s < S; s++) {
                    E[i][s] = ex2(dtv * a2[s]);
                    hc[s] = E[i][s] * hc[s] + dtv * uv * bv[s];
                    H[i][s] = hc[s];
                    acc += cv[s] * hc[s];
                }
                p1[(q * SUB + i) * 32 + lane] = acc;
            }
            __syncthreads();

            /* 2. y before gating, the gate's gradient and dy' = dy silu(z). */
            for (int e = threadIdx.x; e < SUB * 32; e += blockDim.x) {
                const int i = e / 32;
                const float uv = rdf(su + e), dyv = rdf(sdy + e);
                float dyss = dyv;
                if constexpr (HAS_Z) {
                    float yss = Dd * uv;
                    for (int k = 0; k < K; k++)
                        yss += p1[(k * SUB + i) * 32 + lane];
                    /* forward: y = yss * z sigmoid(z); silu'(z) = s (1 + z (1 - s)) */
                    const float zv = rdf(sz + e), sg = sigmoidf_(zv);
                    dyss = dyv * zv * sg;
                    if (ts + i < L && dok)
                        put(dz + bLD + (size_t)(ts + i) * D + d,
                            dyv * yss * sg * (1.0f + zv * (1.0f - sg)), accumulate);
                }
                sdyss[e] = dyss;
                dDacc += dyss * uv; /* e % 32 == lane: this thread's channel */
            }
            __syncthreads();

            /* 3. The adjoint backwards through the sub-tile. */
#pragma unroll
            for (int i = SUB - 1; i >= 0; i--) {
                const float dyss = sdyss[i * 32 + lane];
                const float dtv = rdf(sdt + i * 32 + lane), uv = rdf(su + i * 32 + lane);
                float bv[S], cv[S];
                ldsm<S>(bv, sB + i * N + n0);
                ldsm<S>(cv, sC + i * N + n0);
                float dup = 0.0f, ddp = 0.0f;
#pragma unroll
                for (int s = 0; s < S; s++) {
                    /* forward: y_t += C_t h_t and h_{t+1} = E_{t+1} h_t + ..., so
                     * dL/dh_t = C_t dy'_t + E_{t+1} dL/dh_{t+1} */
                    g[s] = En[s] * g[s] + cv[s] * dyss;
                    const float hp = i > 0 ? H[i > 0 ? i - 1 : 0][s] : h0[s];
                    /* forward: h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t */
                    const float gEh = g[s] * E[i][s] * hp;
                    dup += g[s] * bv[s];
                    ddp += gEh * a[s] + g[s] * bv[s] * uv;
                    dAacc[s] += gEh * dtv;
                    red[(i * N + n0 + s) * RSTRIDE + lane] = g[s] * dtv * uv; /* dB term */
                    En[s] = E[i][s];
                }
                p1[(q * SUB + i) * 32 + lane] = dup * dtv;
                p2[(q * SUB + i) * 32 + lane] = ddp;
            }
            __syncthreads();

            /* 4. du, ddelta: sums over the K warps; dBm: the sum over the 32 channels. */
            for (int e = threadIdx.x; e < SUB * 32; e += blockDim.x) {
                const int i = e / 32, t = ts + i;
                if (t < L && dok) {
                    float duv = Dd * sdyss[e], ddv = 0.0f;
                    for (int k = 0; k < K; k++) {
                        duv += p1[(k * SUB + i) * 32 + lane];
                        ddv += p2[(k * SUB + i) * 32 + lane];
                    }
                    const size_t o = bLD + (size_t)t * D + d;
                    put(du + o, duv, accumulate);
                    if (acton) { /* the gradient of the pre-activation */
                        ddv *= ssig[e];
                        dbacc += ddv;
                    }
                    put(ddelta + o, ddv, accumulate);
                }
            }
            reduce_red_add(dB_b, red, ts, L, N);
            __syncthreads();

            /* 5. dCm = sum over channels of dy'_t h_t, through the same buffer. */
#pragma unroll
            for (int i = 0; i < SUB; i++) {
                const float dyss = sdyss[i * 32 + lane];
#pragma unroll
                for (int s = 0; s < S; s++)
                    red[(i * N + n0 + s) * RSTRIDE + lane] = dyss * H[i][s];
            }
            __syncthreads();
            reduce_red_add(dC_b, red, ts, L, N);
        }
    }
    cp_wait<0>();

    if (dok) {
#pragma unroll
        for (int s = 0; s < S; s++)
            atomicAdd(&dA[(size_t)d * N + n0 + s], dAacc[s]);
        if (dDskip)
            atomicAdd(&dDskip[d], dDacc);
        if (act.dbias)
            atomicAdd(&act.dbias[d], dbacc);
    }
}

/* ---- backward, "lean" variant (KERN_SCAN_BWD_LEAN) ---------------------------------------
 * The same walk as scan_backward_kernel (sweep sub-tiles leaving checkpoints, then the
 * reverse sub-tiles with their states recomputed in registers), with fewer barriers and
 * fewer instructions per state-step:
 *  - the dCm terms dy'_t h_t are written in the adjoint loop, next to the dBm terms, into a
 *    second buffer, and one pass sums both over the channels: four barriers per reverse
 *    sub-tile instead of six;
 *  - the two buffers are unpadded [SUB*N][32] rows with an XOR swizzle (column
 *    lane ^ 4*(row % 8)) instead of 36-float rows: conflict-free for the warp's row writes
 *    and for the float4 row reads, and 32 KB for both, so three blocks of 4 warps
 *    (72 KB each) still fit an SM's shared memory;
 *  - ddelta_t = sum_n q_n A_n + u_t sum_n g_n B_n (q_n = g_n E_n h_{t-1,n}) with the second
 *    sum shared with du_t = delta_t sum_n g_n B_n, and delta_t u_t formed once per step;
 *  - the recomputation issues each step's exps a step ahead of its recurrence and its C.h
 *    chain a step after, and the adjoint each step's du / ddelta chains a step late: the
 *    same instructions, fewer of them waiting on the one before (kernels/README.md, row 11);
 *  - the sweep takes its sub-tiles two at a time: u, delta [2*SUB][32] and B [2*SUB][N] fill
 *    a slot exactly, for any N, so a whole chunk's sweep is 4 iterations instead of 7, with
 *    as many fewer barriers, waits and fetch set-ups (row 12).
 * Shared memory: slots as the base kernel, then floats ckpt [NSUB][N][32],
 * p1, p2 [K][SUB][32], sdyss [SUB][32], redB, redC [SUB][N][32]. */
template <typename T>
__host__ __device__ constexpr size_t bwd_lean_smem_bytes(int N, int K)
{
    return align16(BWD_STAGES * bwd_slot_elems(N) * sizeof(T)) +
           sizeof(float) * ((size_t)NSUB * N * 32 + 2 * (size_t)K * SUB * 32 + 2 * SUB * 32 +
                            2 * (size_t)SUB * N * 32);
}

/* Column of `lane` in row r of the swizzled [rows][32] buffers. */
__device__ __forceinline__ int swz(int r, int lane) { return lane ^ ((r & 7) << 2); }

/* Sums over the block's 32 channels of redB and redC ([SUB*N][32], swizzled), added to
 * dB and dC (b's (L, N) slices) for the sub-tile's valid steps, four states per float4
 * atomic. N % 4 == 0, so 4 consecutive rows never straddle the two buffers. */
__device__ __forceinline__ void reduce_two_add(float *dB, float *dC, const float *redB,
                                               const float *redC, int ts, int L, int N)
{
    const int R = SUB * N;
    for (int o0 = 0; o0 < 2 * R; o0 += blockDim.x) { /* uniform: whole warps shuffle */
        const int o = o0 + threadIdx.x;
        const bool is_c = o >= R;
        const int r = is_c ? o - R : o;
        float sum = 0.0f;
        if (o < 2 * R) {
            const float *row = (is_c ? redC : redB) + r * 32;
            const int x = r & 7; /* the row's swizzle: float4 j sits at float4 j ^ x */
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const float4 w = *(const float4 *)(row + 4 * (j ^ x));
                sum += (w.x + w.y) + (w.z + w.w);
            }
        }
        const float s1 = __shfl_down_sync(0xffffffffu, sum, 1);
        const float s2 = __shfl_down_sync(0xffffffffu, sum, 2);
        const float s3 = __shfl_down_sync(0xffffffffu, sum, 3);
        if (o < 2 * R && o % 4 == 0) {
            const int t = ts + r / N;
            if (t < L)
                atomicAdd((float4 *)((is_c ? dC : dB) + (size_t)t * N + r % N),
                          make_float4(sum, s1, s2, s3));
        }
    }
}

template <typename T, int S, bool HAS_Z, bool VEC, int NT>
__global__ void __launch_bounds__(32 * bwd_max_warps(S))
scan_backward_kernel_lean(T *__restrict__ du, T *__restrict__ ddelta, float *__restrict__ dA,
                          float *__restrict__ dBm, float *__restrict__ dCm,
                          float *__restrict__ dDskip, T *__restrict__ dz,
                          const T *__restrict__ dy, const T *__restrict__ u,
                          const T *__restrict__ delta, dact act, const float *__restrict__ A,
                          const T *__restrict__ Bm, const T *__restrict__ Cm,
                          const float *__restrict__ Dskip, const T *__restrict__ z,
                          const float *__restrict__ hchk, int L, int D, int N_, int accumulate)
{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int N = NT ? NT : N_;
    const int lane = threadIdx.x & 31, q = threadIdx.x >> 5, K = NT ? NT / S : blockDim.x >> 5;
    const size_t se = bwd_slot_elems(N);
    T *slots = (T *)smem_raw;
    float *ckpt = (float *)(smem_raw + align16(BWD_STAGES * se * sizeof(T)));
    float *p1 = ckpt + NSUB * N * 32;
    float *p2 = p1 + K * SUB * 32;
    float *sdyss = p2 + K * SUB * 32;
    float *ssig = sdyss + SUB * 32;
    float *redB = ssig + SUB * 32;
    float *redC = redB + SUB * N * 32;

    const int b = blockIdx.y;
    const int d0 = blockIdx.x * 32, d = d0 + lane;
    const bool dok = d < D;
    const int dc = dok ? d : D - 1;
    const int n0 = q * S;
    const int NC = (L + CHUNK - 1) / CHUNK;
    const size_t bLD = (size_t)b * L * D;
    float *dB_b = dBm + (size_t)b * L * N, *dC_b = dCm + (size_t)b * L * N;

    float a[S], a2[S], g[S], En[S], dAacc[S];
#pragma unroll
    for (int s = 0; s < S; s++) {
        a[s] = A[(size_t)dc * N + n0 + s];
        a2[s] = a[s] * LOG2E;
        g[s] = 0.0f;  /* dL/dh_t, carried backwards */
        En[s] = 1.0f; /* exp(delta_{t+1} A), the factor that carries g */
        dAacc[s] = 0.0f;
    }
    const float Dd = Dskip ? Dskip[dc] : 0.0f;
    float dDacc = 0.0f;
    /* the delta activation: float32 only (the host refuses it for bf16) */
    const bool acton = std::is_same<T, float>::value && (act.bias || act.softplus);
    const float db = acton && act.bias ? act.bias[dc] : 0.0f;
    float dbacc = 0.0f; /* this thread's part of dbias[d] */

    auto nsub_of = [&](int c) { return (min(CHUNK, L - c * CHUNK) + SUB - 1) / SUB; };
    int pc = NC - 1, pi = 0, pseq = 0; /* the next unit to fetch: a sweep pair or a sub-tile */
    auto issue = [&]() {
        if (pc >= 0) {
            const int ns = nsub_of(pc), nsw = ns / 2; /* sweep units: pairs of sub-tiles */
            const bool rev = pi >= nsw;
            T *sl = slots + (pseq % BWD_STAGES) * se;
            const int dv = D - d0;
            if (!rev) { /* u, delta [2*SUB][32], B [2*SUB][N]: a slot's size, for any N */
                const int t0 = pc * CHUNK + 2 * pi * SUB;
                const size_t off = ((size_t)b * L + t0) * D + d0, offn = ((size_t)b * L + t0) * N;
                const int rv = min(2 * SUB, (ns - 1 - 2 * pi) * SUB);
                load_rows<VEC>(sl, u + off, 2 * SUB, rv, D, dv);
                load_rows<VEC>(sl + 2 * SUB * 32, delta + off, 2 * SUB, rv, D, dv);
                load_bc<VEC>(sl + 4 * SUB * 32, Bm + offn, 2 * SUB, rv, N);
            } else {
                const int t0 = pc * CHUNK + (ns - 1 - (pi - nsw)) * SUB;
                const size_t off = ((size_t)b * L + t0) * D + d0, offn = ((size_t)b * L + t0) * N;
                const int rv = min(SUB, L - t0);
                load_rows<VEC>(sl, u + off, SUB, rv, D, dv);
                load_rows<VEC>(sl + SUB * 32, delta + off, SUB, rv, D, dv);
                load_bc<VEC>(sl + 4 * SUB * 32, Bm + offn, SUB, rv, N);
                if constexpr (HAS_Z)
                    load_rows<VEC>(sl + 2 * SUB * 32, z + off, SUB, rv, D, dv);
                load_rows<VEC>(sl + 3 * SUB * 32, dy + off, SUB, rv, D, dv);
                load_bc<VEC>(sl + 4 * SUB * 32 + SUB * N, Cm + offn, SUB, rv, N);
            }
            if (++pi == nsw + ns) {
                pc--;
                pi = 0;
            }
        }
        pseq++;
        cp_commit();
    };
#pragma unroll
    for (int k = 0; k < BWD_STAGES - 1; k++)
        issue();

    int seq = 0;
    float hnext[S];
#pragma unroll
    for (int s = 0; s < S; s++)
        hnext[s] = dok ? hchk[(((size_t)b * NC + NC - 1) * N + n0 + s) * D + d] : 0.0f;
    for (int c = NC - 1; c >= 0; c--) {
        const int ns = nsub_of(c);
        float h[S];
        /* ckpt slots (j, n0+s, lane) belong to this thread alone: no barrier guards them */
#pragma unroll
        for (int s = 0; s < S; s++) {
            h[s] = hnext[s];
            ckpt[(n0 + s) * 32 + lane] = h[s];
        }
        if (c > 0)
#pragma unroll
            for (int s = 0; s < S; s++)
                hnext[s] = dok ? hchk[(((size_t)b * NC + c - 1) * N + n0 + s) * D + d] : 0.0f;

        const int nsw = ns / 2;
        for (int idx = 0; idx < nsw + ns; idx++, seq++) {
            cp_wait<BWD_STAGES - 2>();
            /* the slot fetched next, p1/p2/sdyss and redB/redC were last read before this
             * barrier (previous sub-tile), so it also orders their reuse */
            __syncthreads();
            issue();
            T *sl = slots + (seq % BWD_STAGES) * se;
            if (acton) { /* uniform: one more barrier a sub-tile, only with the activation */
                if (idx < nsw) /* a sweep pair's delta, [2*SUB][32]; no slope needed */
                    act_rows<T>(sl + 2 * SUB * 32, 2 * SUB * 32, nullptr, db, act.softplus);
                else
                    act_rows<T>(sl + SUB * 32, SUB * 32, ssig, db, act.softplus);
                __syncthreads();
            }
            const T *su = sl, *sdt = sl + SUB * 32, *sz = sl + 2 * SUB * 32, *sdy = sl + 3 * SUB * 32;
            const T *sB = sl + 4 * SUB * 32, *sC = sB + SUB * N;

            if (idx < nsw) { /* sweep sub-tiles 2 idx and (if there) 2 idx + 1 */
                const T *wdt = sl + 2 * SUB * 32;
#pragma unroll
                for (int half = 0; half < 2; half++) {
                    if (half == 1 && 2 * idx + 2 >= ns)
                        break;
#pragma unroll
                    for (int i = half * SUB; i < half * SUB + SUB; i++) {
                        const float dtv = rdf(wdt + i * 32 + lane);
                        const float dtu = dtv * rdf(su + i * 32 + lane);
                        float bv[S];
                        ldsm<S>(bv, sB + i * N + n0);
#pragma unroll
                        for (int s = 0; s < S; s++)
                            h[s] = fmaf(ex2(dtv * a2[s]), h[s], dtu * bv[s]);
                    }
#pragma unroll
                    for (int s = 0; s < S; s++)
                        ckpt[((2 * idx + half + 1) * N + n0 + s) * 32 + lane] = h[s];
                }
                continue;
            }
            const int j = ns - 1 - (idx - nsw);
            const int ts = c * CHUNK + j * SUB;

            /* 1. Recompute the sub-tile's states in registers; partial C.h per warp.
             * Laid out as a three-stage pipeline over the steps: pass i issues the exps of
             * step i, the recurrence of step i-1 and the C.h chain of step i-2, so that the
             * MUFU results and the S dependent FMAs are in flight while the other stages
             * issue (the forward's long tiles gained the same way; here 4-6 %). */
            float H[SUB][S], E[SUB][S], h0[S], hc[S], dtus[SUB];
#pragma unroll
            for (int s = 0; s < S; s++)
                hc[s] = h0[s] = ckpt[(j * N + n0 + s) * 32 + lane];
#pragma unroll
            for (int i = 0; i < SUB + 2; i++) {
                if (i < SUB) {
                    const float dtv = rdf(sdt + i * 32 + lane);
                    dtus[i] = dtv * rdf(su + i * 32 + lane);
#pragma unroll
                    for (int s = 0; s < S; s++)
                        E[i][s] = ex2(dtv * a2[s]);
                }
                if (i >= 1 && i <= SUB) {
                    const int k = i - 1;
                    float bv[S];
                    ldsm<S>(bv, sB + k * N + n0);
#pragma unroll
                    for (int s = 0; s < S; s++) {
                        hc[s] = fmaf(E[k][s], hc[s], dtus[k] * bv[s]);
                        H[k][s] = hc[s];
                    }
                }
                if (i >= 2) {
                    const int k = i - 2;
                    float cv[S];
                    ldsm<S>(cv, sC + k * N + n0);
                    float acc = cv[0] * H[k][0];
#pragma unroll
                    for (int s = 1; s < S; s++)
                        acc = fmaf(cv[s], H[k][s], acc);
                    p1[(q * SUB + k) * 32 + lane] = acc;
                }
            }
            __syncthreads();

            /* 2. y before gating, the gate's gradient and dy' = dy silu(z). */
            for (int e = threadIdx.x; e < SUB * 32; e += blockDim.x) {
                const int i = e / 32;
                const float uv = rdf(su + e), dyv = rdf(sdy + e);
                float dyss = dyv;
                if constexpr (HAS_Z) {
                    float yss = Dd * uv;
                    for (int k = 0; k < K; k++)
                        yss += p1[(k * SUB + i) * 32 + lane];
                    const float zv = rdf(sz + e), sg = sigmoidf_(zv);
                    dyss = dyv * zv * sg;
                    if (ts + i < L && dok)
                        put(dz + bLD + (size_t)(ts + i) * D + d,
                            dyv * yss * sg * (1.0f + zv * (1.0f - sg)), accumulate);
                }
                sdyss[e] = dyss;
                dDacc += dyss * uv;
            }
            __syncthreads();

            /* 3. The adjoint backwards through the sub-tile; the dBm and dCm terms. The
             * sums over this thread's states for du and ddelta (two chains of S dependent
             * FMAs) of step i+1 are issued after the adjoint of step i, which does not
             * depend on them: pass i = -1 only finishes step 0's. */
            float gs[S], qs[S], bs[S], dts_ = 0.0f, us_ = 0.0f;
#pragma unroll
            for (int i = SUB - 1; i >= -1; i--) {
                float gn[S], qn[S], bn[S], dtn = 0.0f, un = 0.0f;
                if (i >= 0) {
                    const float dyss = sdyss[i * 32 + lane];
                    const float dtv = rdf(sdt + i * 32 + lane), uv = rdf(su + i * 32 + lane);
                    const float dtu = dtv * uv;
                    float cv[S];
                    ldsm<S>(bn, sB + i * N + n0);
                    ldsm<S>(cv, sC + i * N + n0);
#pragma unroll
                    for (int s = 0; s < S; s++) {
                        g[s] = fmaf(En[s], g[s], cv[s] * dyss);
                        const float hp = i > 0 ? H[i > 0 ? i - 1 : 0][s] : h0[s];
                        qn[s] = g[s] * E[i][s] * hp;
                        gn[s] = g[s];
                        dAacc[s] = fmaf(qn[s], dtv, dAacc[s]);
                        const int r = i * N + n0 + s;
                        redB[r * 32 + swz(r, lane)] = g[s] * dtu;
                        redC[r * 32 + swz(r, lane)] = dyss * H[i][s];
                        En[s] = E[i][s];
                    }
                    dtn = dtv;
                    un = uv;
                }
                if (i < SUB - 1) { /* the sums of step i + 1 */
                    float gb = gs[0] * bs[0], qa = qs[0] * a[0];
#pragma unroll
                    for (int s = 1; s < S; s++) {
                        gb = fmaf(gs[s], bs[s], gb);
                        qa = fmaf(qs[s], a[s], qa);
                    }
                    p1[(q * SUB + i + 1) * 32 + lane] = gb * dts_;     /* du */
                    p2[(q * SUB + i + 1) * 32 + lane] = fmaf(gb, us_, qa); /* ddelta */
                }
#pragma unroll
                for (int s = 0; s < S; s++) {
                    gs[s] = gn[s];
                    qs[s] = qn[s];
                    bs[s] = bn[s];
                }
                dts_ = dtn;
                us_ = un;
            }
            __syncthreads();

            /* 4. du, ddelta: sums over the K warps; dBm, dCm: sums over the 32 channels. */
            for (int e = threadIdx.x; e < SUB * 32; e += blockDim.x) {
                const int i = e / 32, t = ts + i;
                if (t < L && dok) {
                    float duv = Dd * sdyss[e], ddv = 0.0f;
                    for (int k = 0; k < K; k++) {
                        duv += p1[(k * SUB + i) * 32 + lane];
                        ddv += p2[(k * SUB + i) * 32 + lane];
                    }
                    const size_t o = bLD + (size_t)t * D + d;
                    put(du + o, duv, accumulate);
                    if (acton) { /* the gradient of the pre-activation */
                        ddv *= ssig[e];
                        dbacc += ddv;
                    }
                    put(ddelta + o, ddv, accumulate);
                }
            }
            reduce_two_add(dB_b, dC_b, redB, redC, ts, L, N);
        }
    }
    cp_wait<0>();

    if (dok) {
#pragma unroll
        for (int s = 0; s < S; s++)
            atomicAdd(&dA[(size_t)d * N + n0 + s], dAacc[s]);
        if (dDskip)
            atomicAdd(&dDskip[d], dDacc);
        if (act.dbias)
            atomicAdd(&act.dbias[d], dbacc);
    }
}

/* ---- host side -------------------------------------------------------------------------- */

/* States per thread: prefer 4 (float4 loads of B_t, C_t), fewer when that leaves too few
 * warps to fill the GPU, more when N is large (at most 16 warps a block). */
/* States per thread. Fewer warps per channel means fewer instructions per state-step
 * (u_t, delta_t, B_t and C_t are read once per warp, the K partial outputs need adding),
 * which is what limits the kernels; but too few warps leave the recurrence's latencies
 * uncovered. bench_scan's sweep on an H100: the widest slice that still gives about 7
 * warps an SM wins (S=8 at B=16 D=1536, S=4 at B=4 D=2048). The backward keeps 2*SUB*S
 * floats of history in registers and stops at 4. */
int choose_S(int B, int D, int N, int sm_count, int forced, bool bwd)
{
    auto fits = [&](int S) {
        return N % S == 0 && N / S <= (bwd ? bwd_max_warps(S) : 16) && (!bwd || S <= 8);
    };
    if (forced)
        return fits(forced) ? forced : 0;
    const long dblocks = (D + 31) / 32;
    const long want = 7L * sm_count;
    for (int S = bwd ? 4 : 16; S >= 1; S /= 2)
        if (fits(S) && (long)B * dblocks * (N / S) >= want)
            return S;
    for (int S = 1; S <= (bwd ? 8 : 16); S *= 2) /* too little work to fill the GPU: any */
        if (fits(S))
            return S;
    return 0;
}

int check_args(kern_ctx *ctx, kern_dtype dt, int B, int L, int D, int N, const void *Bm,
               const void *Cm, const char *fn, kern_error *err)
{
    if (!ctx)
        return kern_err_set(err, KERN_EINVAL, "%s: context is NULL", fn);
    if (dt != KERN_F32 && dt != KERN_BF16)
        return kern_err_set(err, KERN_EINVAL, "%s: unknown element type %d", fn, (int)dt);
    if (B <= 0 || L <= 0 || D <= 0 || N <= 0 || N > KERN_SCAN_MAX_STATE) {
        kern_err_set(err, KERN_EINVAL, "%s: invalid shape", fn);
        kern_err_detail(err, "B=%d L=%d D=%d N=%d; each must be positive and N <= %d", B, L, D,
                        N, KERN_SCAN_MAX_STATE);
        return KERN_EINVAL;
    }
    if (dt == KERN_BF16 && (D % 2 || N % 2)) {
        kern_err_set(err, KERN_EINVAL, "%s: bf16 needs an even D and N", fn);
        kern_err_detail(err, "D=%d N=%d", D, N);
        kern_err_hint(err, "the kernels move bf16 in pairs; use float32 for odd sizes");
        return KERN_EINVAL;
    }
    if ((uintptr_t)Bm % 16 || (uintptr_t)Cm % 16) {
        kern_err_set(err, KERN_EINVAL, "%s: Bm and Cm must be 16-byte aligned", fn);
        kern_err_hint(err, "pass whole allocations or copy the slices into their own buffers");
        return KERN_EINVAL;
    }
    if ((size_t)B * L > (size_t)1 << 31 || (size_t)B * (D + 31) / 32 > 65535u * 65535u) {
        kern_err_set(err, KERN_EINVAL, "%s: shape too large", fn);
        return KERN_EINVAL;
    }
    if (B > 65535)
        return kern_err_set(err, KERN_EINVAL, "%s: batch %d over the grid limit 65535", fn, B);
    return KERN_OK;
}

/* 16-byte copies need every row and every (B, L, N) slice to start on 16 bytes. */
template <typename T>
bool vec_ok(int D, int N, const void *const *ptrs, int n)
{
    const int ch = 16 / (int)sizeof(T);
    if (D % ch || N % ch)
        return false;
    for (int i = 0; i < n; i++)
        if ((uintptr_t)ptrs[i] % 16)
            return false;
    return true;
}

/* One forward launch: kernel is the instantiation for this T, S, mode and tile. */
template <typename T, typename Kernel>
int launch_forward_kernel(kern_ctx *ctx, Kernel kernel, const char *name, size_t smem, dim3 grid,
                          dim3 block, T *y, float *hchk, const T *u, const T *delta, dact act,
                          const float *A, const T *Bm, const T *Cm, const float *Dskip,
                          const T *z, int L, int D, int N, kern_error *err)
{
    if (smem > ctx->smem_optin) {
        kern_err_set(err, KERN_EINVAL, "selective scan: state size %d needs too much shared memory", N);
        return KERN_EINVAL;
    }
    KERN_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), err);
    kernel<<<grid, block, smem, ctx->stream>>>(y, hchk, u, delta, act, A, Bm, Cm, Dskip, z, L, D, N);
    KERN_LAUNCHED(name, err);
    return KERN_OK;
}

/* A forward variant (not states only): TILE, FMA_CHAIN and SPLIT fixed, the copy width and
 * the compile-time N picked here. SPLIT launches grid.z = 2 halves. */
template <typename T, int S, int TILE, bool FMA_CHAIN, bool SPLIT, bool ACT = false>
int launch_forward_tiled(kern_ctx *ctx, bool vec, dim3 grid, dim3 block, T *y, float *hchk,
                         const T *u, const T *delta, dact act, const float *A, const T *Bm, const T *Cm,
                         const float *Dskip, const T *z, int L, int D, int N, kern_error *err)
{
    auto kernel = vec && N == 16 ? scan_forward_kernel<T, S, false, true, 16, TILE, FMA_CHAIN, SPLIT, ACT>
                : vec            ? scan_forward_kernel<T, S, false, true, 0, TILE, FMA_CHAIN, SPLIT, ACT>
                                 : scan_forward_kernel<T, S, false, false, 0, TILE, FMA_CHAIN, SPLIT, ACT>;
    if (SPLIT)
        grid.z = 2;
    return launch_forward_kernel<T>(ctx, kernel, SPLIT ? "scan_forward_kernel (split variant)"
                                                       : "scan_forward_kernel (variant)",
                                    fwd_smem_bytes<T>(N, (int)block.x / 32, TILE), grid, block,
                                    y, hchk, u, delta, act, A, Bm, Cm, Dskip, z, L, D, N, err);
}

/* The instantiations the flags can reach: tile64 and the FMA chain in any combination;
 * SPLIT (float32 only, to bound the number of kernels) always with the FMA chain. */
template <typename T, int S>
int launch_forward_variant(kern_ctx *ctx, bool tile64, bool chain, bool split, bool vec,
                           dim3 grid, dim3 block, T *y, float *hchk, const T *u, const T *delta, dact act,
                           const float *A, const T *Bm, const T *Cm, const float *Dskip,
                           const T *z, int L, int D, int N, kern_error *err)
{
    if constexpr (std::is_same<T, float>::value) {
        if (split && tile64)
            return launch_forward_tiled<T, S, FWD_LONG, true, true>(ctx, vec, grid, block, y, hchk, u, delta, act, A, Bm, Cm, Dskip, z, L, D, N, err);
        if (split)
            return launch_forward_tiled<T, S, FWD_TILE, true, true>(ctx, vec, grid, block, y, hchk, u, delta, act, A, Bm, Cm, Dskip, z, L, D, N, err);
    }
    if (tile64 && chain)
        return launch_forward_tiled<T, S, FWD_LONG, true, false>(ctx, vec, grid, block, y, hchk, u, delta, act, A, Bm, Cm, Dskip, z, L, D, N, err);
    if (tile64)
        return launch_forward_tiled<T, S, FWD_LONG, false, false>(ctx, vec, grid, block, y, hchk, u, delta, act, A, Bm, Cm, Dskip, z, L, D, N, err);
    return launch_forward_tiled<T, S, FWD_TILE, true, false>(ctx, vec, grid, block, y, hchk, u, delta, act, A, Bm, Cm, Dskip, z, L, D, N, err);
}

/* The variant flags for one call: KERN_SCAN_AUTO resolves by shape. Measured on an H100
 * (kernels/README.md): the lean backward wins at both benchmark sizes; the forward's FMA
 * chain wins with many blocks (B16 D1536: 69 % of copy bandwidth against 66 %), and with
 * few blocks (B4 D2048: 256 blocks on 132 SMs) long tiles with the chain do (32-step tiles
 * then: 55 % against 46 %; 64-step tiles with the exps spread out: 69 %), while long tiles
 * lose with many blocks (fewer blocks fit an SM). */
static int scan_flags(const kern_ctx *ctx, int B, int D)
{
    int flags = ctx->scan_variant;
    if (!(flags & KERN_SCAN_AUTO))
        return flags;
    flags = KERN_SCAN_BWD_LEAN | KERN_SCAN_FWD_FMA;
    if ((long)B * ((D + 31) / 32) < 4L * ctx->sm_count)
        flags |= KERN_SCAN_FWD_TILE64;
    return flags;
}

template <typename T, int S>
int launch_forward(kern_ctx *ctx, T *y, float *hchk, const T *u, const T *delta, dact act,
                   const float *A, const T *Bm, const T *Cm, const float *Dskip, const T *z,
                   int B, int L, int D, int N, bool states_only, kern_error *err)
{
    const void *ptrs[] = {u, delta, Bm, Cm, z};
    const bool vec = vec_ok<T>(D, N, ptrs, 5);
    const int K = N / S;
    const dim3 grid((D + 31) / 32, B), block(32 * K);
    const bool act_on = act.bias || act.softplus; /* float32 only: the host checked */
    if (states_only) {
        auto kernel = vec && N == 16 ? scan_forward_kernel<T, S, true, true, 16>
                    : vec            ? scan_forward_kernel<T, S, true, true, 0>
                                     : scan_forward_kernel<T, S, true, false, 0>;
        if constexpr (std::is_same<T, float>::value)
            if (act_on)
                kernel = vec && N == 16 ? scan_forward_kernel<T, S, true, true, 16, FWD_TILE, false, false, true>
                       : vec            ? scan_forward_kernel<T, S, true, true, 0, FWD_TILE, false, false, true>
                                        : scan_forward_kernel<T, S, true, false, 0, FWD_TILE, false, false, true>;
        return launch_forward_kernel<T>(ctx, kernel, "scan_forward_kernel (states only)",
                                        fwd_smem_bytes<T>(N, K, FWD_TILE), grid, block, y, hchk,
                                        u, delta, act, A, Bm, Cm, Dskip, z, L, D, N, err);
    }
    /* the variants: tile64 needs 64 to 256 threads with VEC, 256 at most without (see the
     * kernel), and its shared memory (4x the default tile's stages); elsewhere its flag
     * falls back to 16-step tiles */
    const int flags = scan_flags(ctx, B, D);
    const bool tile64 = (flags & KERN_SCAN_FWD_TILE64) && K <= 8 && (!vec || K >= 2) &&
                        fwd_smem_bytes<T>(N, K, FWD_LONG) <= ctx->smem_optin;
    const bool chain = flags & KERN_SCAN_FWD_FMA;
    const bool split = (flags & KERN_SCAN_FWD_SPLIT2) && std::is_same<T, float>::value;
    /* the delta activation is built into the FMA-chain kernels only (16- or 64-step tiles as
     * the flags say; not split), to bound the number of kernels */
    if constexpr (std::is_same<T, float>::value)
        if (act_on)
            return tile64 ? launch_forward_tiled<T, S, FWD_LONG, true, false, true>(ctx, vec, grid, block, y, hchk, u, delta, act, A, Bm, Cm, Dskip, z, L, D, N, err)
                          : launch_forward_tiled<T, S, FWD_TILE, true, false, true>(ctx, vec, grid, block, y, hchk, u, delta, act, A, Bm, Cm, Dskip, z, L, D, N, err);
    if (tile64 || chain || split)
        return launch_forward_variant<T, S>(ctx, tile64, chain, split, vec, grid, block, y,
                                            hchk, u, delta, act, A, Bm, Cm, Dskip, z, L, D, N, err);
    auto kernel = vec && N == 16 ? scan_forward_kernel<T, S, false, true, 16>
                : vec            ? scan_forward_kernel<T, S, false, true, 0>
                                 : scan_forward_kernel<T, S, false, false, 0>;
    return launch_forward_kernel<T>(ctx, kernel, "scan_forward_kernel",
                                    fwd_smem_bytes<T>(N, K, FWD_TILE), grid, block, y, hchk, u,
                                    delta, act, A, Bm, Cm, Dskip, z, L, D, N, err);
}

template <typename T>
int forward_dispatch(kern_ctx *ctx, int S, T *y, float *hchk, const T *u, const T *delta, dact act,
                     const float *A, const T *Bm, const T *Cm, const float *Dskip, const T *z,
                     int B, int L, int D, int N, bool states_only, kern_error *err)
{
    switch (S) {
    case 1: return launch_forward<T, 1>(ctx, y, hchk, u, delta, act, A, Bm, Cm, Dskip, z, B, L, D, N, states_only, err);
    case 2: return launch_forward<T, 2>(ctx, y, hchk, u, delta, act, A, Bm, Cm, Dskip, z, B, L, D, N, states_only, err);
    case 4: return launch_forward<T, 4>(ctx, y, hchk, u, delta, act, A, Bm, Cm, Dskip, z, B, L, D, N, states_only, err);
    case 8: return launch_forward<T, 8>(ctx, y, hchk, u, delta, act, A, Bm, Cm, Dskip, z, B, L, D, N, states_only, err);
    default: return launch_forward<T, 16>(ctx, y, hchk, u, delta, act, A, Bm, Cm, Dskip, z, B, L, D, N, states_only, err);
    }
}

template <typename T, int S, bool HAS_Z>
int launch_backward(kern_ctx *ctx, int accumulate, T *du, T *ddelta, float *dA, float *dBm,
                    float *dCm, float *dDskip, T *dz, const T *dy, const T *u, const T *delta, dact act,
                    const float *A, const T *Bm, const T *Cm, const float *Dskip, const T *z,
                    const float *hchk, int B, int L, int D, int N, kern_error *err)
{
    const int K = N / S;
    const dim3 grid((D + 31) / 32, B), block(32 * K);
    /* lean needs 2*SUB*N*32 floats of reduction buffers against SUB*N*36: at N = 64 more
     * than a block may have, where its flag falls back to the default kernel */
    const bool lean = (scan_flags(ctx, B, D) & KERN_SCAN_BWD_LEAN) &&
                      bwd_lean_smem_bytes<T>(N, K) <= ctx->smem_optin;
    const size_t smem = lean ? bwd_lean_smem_bytes<T>(N, K) : bwd_smem_bytes<T>(N, K);
    if (smem > ctx->smem_optin) {
        kern_err_set(err, KERN_EINVAL, "selective scan backward: state size %d needs too much shared memory", N);
        kern_err_detail(err, "%zu bytes needed, the device allows %zu per block", smem, ctx->smem_optin);
        return KERN_EINVAL;
    }
    const void *ptrs[] = {u, delta, Bm, Cm, z, dy};
    const bool vec = vec_ok<T>(D, N, ptrs, 6);
    auto kernel = lean ? (vec && N == 16 ? scan_backward_kernel_lean<T, S, HAS_Z, true, 16>
                          : vec          ? scan_backward_kernel_lean<T, S, HAS_Z, true, 0>
                                         : scan_backward_kernel_lean<T, S, HAS_Z, false, 0>)
                : vec && N == 16 ? scan_backward_kernel<T, S, HAS_Z, true, 16>
                : vec            ? scan_backward_kernel<T, S, HAS_Z, true, 0>
                                 : scan_backward_kernel<T, S, HAS_Z, false, 0>;
    KERN_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), err);
    kernel<<<grid, block, smem, ctx->stream>>>(du, ddelta, dA, dBm, dCm, dDskip, dz, dy, u, delta,
                                               act, A, Bm, Cm, Dskip, z, hchk, L, D, N, accumulate);
    KERN_LAUNCHED(lean ? "scan_backward_kernel_lean" : "scan_backward_kernel", err);
    return KERN_OK;
}

template <typename T, bool HAS_Z>
int backward_dispatch(kern_ctx *ctx, int S, int accumulate, T *du, T *ddelta, float *dA,
                      float *dBm, float *dCm, float *dDskip, T *dz, const T *dy, const T *u,
                      const T *delta, dact act, const float *A, const T *Bm, const T *Cm,
                      const float *Dskip, const T *z, const float *hchk, int B, int L, int D,
                      int N, kern_error *err)
{
    switch (S) {
    case 1: return launch_backward<T, 1, HAS_Z>(ctx, accumulate, du, ddelta, dA, dBm, dCm, dDskip, dz, dy, u, delta, act, A, Bm, Cm, Dskip, z, hchk, B, L, D, N, err);
    case 2: return launch_backward<T, 2, HAS_Z>(ctx, accumulate, du, ddelta, dA, dBm, dCm, dDskip, dz, dy, u, delta, act, A, Bm, Cm, Dskip, z, hchk, B, L, D, N, err);
    case 4: return launch_backward<T, 4, HAS_Z>(ctx, accumulate, du, ddelta, dA, dBm, dCm, dDskip, dz, dy, u, delta, act, A, Bm, Cm, Dskip, z, hchk, B, L, D, N, err);
    default: return launch_backward<T, 8, HAS_Z>(ctx, accumulate, du, ddelta, dA, dBm, dCm, dDskip, dz, dy, u, delta, act, A, Bm, Cm, Dskip, z, hchk, B, L, D, N, err);
    }
}

} // namespace

extern "C" int kern_ctx_set_scan_states(kern_ctx *ctx, int S, kern_error *err)
{
    if (!ctx || (S != 0 && S != 1 && S != 2 && S != 4 && S != 8 && S != 16))
        return kern_err_set(err, KERN_EINVAL, "kern_ctx_set_scan_states: %d is not 0, 1, 2, 4, 8 or 16", S);
    ctx->scan_states = S;
    return KERN_OK;
}

extern "C" int kern_ctx_set_scan_variant(kern_ctx *ctx, int flags, kern_error *err)
{
    if (!ctx || (flags & ~KERN_SCAN_VARIANTS_ALL))
        return kern_err_set(err, KERN_EINVAL, "kern_ctx_set_scan_variant: %d is not a set of KERN_SCAN_* flags", flags);
    ctx->scan_variant = flags;
    return KERN_OK;
}

extern "C" size_t kern_scan_hchk_floats(int B, int L, int D, int N)
{
    if (B <= 0 || L <= 0 || D <= 0 || N <= 0)
        return 0;
    return (size_t)B * ((L + CHUNK - 1) / CHUNK) * N * D;
}

/* kern_delta_act -> what the kernels take (all zero: no activation) */
static dact to_dact(const kern_delta_act *a)
{
    dact r = {nullptr, nullptr, 0};
    if (a) {
        r.bias = a->bias;
        r.dbias = a->dbias;
        r.softplus = a->softplus != 0;
    }
    return r;
}

/* The activation's kernels are float32 only (the forward's are extra instantiations). */
static int check_act(const dact &act, kern_dtype dt, const char *fn, kern_error *err)
{
    if (dt != KERN_F32 && (act.bias || act.softplus || act.dbias)) {
        kern_err_set(err, KERN_EINVAL, "%s: the delta activation needs float32 activations", fn);
        kern_err_hint(err, "apply the bias and softplus to a bf16 delta before the scan");
        return KERN_EINVAL;
    }
    return KERN_OK;
}

extern "C" int kern_selective_scan_forward(kern_ctx *ctx, kern_dtype dt, void *y, float *hchk,
                                           const void *u, const void *delta,
                                           const kern_delta_act *delta_act, const float *A,
                                           const void *Bm, const void *Cm, const float *Dskip,
                                           const void *z, int B, int L, int D, int N,
                                           kern_error *err)
{
    const dact act = to_dact(delta_act);
    static const char fn[] = "kern_selective_scan_forward";
    int rc = check_args(ctx, dt, B, L, D, N, Bm, Cm, fn, err);
    if (!rc)
        rc = check_act(act, dt, fn, err);
    if (rc)
        return rc;
    if (!y || !u || !delta || !A || !Bm || !Cm)
        return kern_err_set(err, KERN_EINVAL, "%s: y, u, delta, A, Bm and Cm are required", fn);
    const int S = choose_S(B, D, N, ctx->sm_count, ctx->scan_states, false);
    if (!S)
        return kern_err_set(err, KERN_EINVAL, "%s: state size %d is not supported", fn, N);
    if (dt == KERN_F32)
        return forward_dispatch<float>(ctx, S, (float *)y, hchk, (const float *)u,
                                       (const float *)delta, act, A, (const float *)Bm,
                                       (const float *)Cm, Dskip, (const float *)z, B, L, D, N,
                                       false, err);
    return forward_dispatch<uint16_t>(ctx, S, (uint16_t *)y, hchk, (const uint16_t *)u,
                                      (const uint16_t *)delta, act, A, (const uint16_t *)Bm,
                                      (const uint16_t *)Cm, Dskip, (const uint16_t *)z, B, L, D,
                                      N, false, err);
}

extern "C" int kern_selective_scan_backward(kern_ctx *ctx, kern_dtype dt, int accumulate,
                                            void *du, void *ddelta, float *dA, float *dBm,
                                            float *dCm, float *dDskip, void *dz,
                                            const void *dy, const void *u, const void *delta,
                                            const kern_delta_act *delta_act, const float *A,
                                            const void *Bm, const void *Cm,
                                            const float *Dskip, const void *z, int B, int L,
                                            int D, int N, const float *hchk, kern_error *err)
{
    static const char fn[] = "kern_selective_scan_backward";
    const dact act = to_dact(delta_act);
    int rc = check_args(ctx, dt, B, L, D, N, Bm, Cm, fn, err);
    if (!rc)
        rc = check_act(act, dt, fn, err);
    if (rc)
        return rc;
    if (!du || !ddelta || !dA || !dBm || !dCm || !dy || !u || !delta || !A || !Bm || !Cm ||
        (z && !dz))
        return kern_err_set(err, KERN_EINVAL, "%s: a required pointer is NULL", fn);
    if ((uintptr_t)dBm % 16 || (uintptr_t)dCm % 16)
        return kern_err_set(err, KERN_EINVAL, "%s: dBm and dCm must be 16-byte aligned", fn);
    if (N % 4) {
        kern_err_set(err, KERN_EINVAL, "%s: state size %d is not a multiple of 4", fn, N);
        kern_err_hint(err, "the backward adds dBm and dCm four states at a time");
        return KERN_EINVAL;
    }
    const int S = choose_S(B, D, N, ctx->sm_count, ctx->scan_states, true);
    if (!S)
        return kern_err_set(err, KERN_EINVAL, "%s: state size %d is not supported", fn, N);
    const size_t esz = kern_dtype_size(dt);
    if (!accumulate) { /* the kernel adds into the (B,L,N), (D,N), (D) sums: start at 0 */
        KERN_CUDA(cudaMemsetAsync(dA, 0, (size_t)D * N * sizeof(float), ctx->stream), err);
        KERN_CUDA(cudaMemsetAsync(dBm, 0, (size_t)B * L * N * sizeof(float), ctx->stream), err);
        KERN_CUDA(cudaMemsetAsync(dCm, 0, (size_t)B * L * N * sizeof(float), ctx->stream), err);
        if (dDskip)
            KERN_CUDA(cudaMemsetAsync(dDskip, 0, (size_t)D * sizeof(float), ctx->stream), err);
        if (act.dbias)
            KERN_CUDA(cudaMemsetAsync(act.dbias, 0, (size_t)D * sizeof(float), ctx->stream), err);
    }
    (void)esz;
    if (!hchk) { /* no saved states: rerun the recurrence to get them */
        float *ws;
        rc = kern_workspace(ctx, kern_scan_hchk_floats(B, L, D, N) * sizeof(float),
                            (void **)&ws, err);
        if (rc)
            return rc;
        if (dt == KERN_F32)
            rc = forward_dispatch<float>(ctx, S, NULL, ws, (const float *)u, (const float *)delta, act,
                                         A, (const float *)Bm, (const float *)Cm, Dskip, NULL, B,
                                         L, D, N, true, err);
        else
            rc = forward_dispatch<uint16_t>(ctx, S, NULL, ws, (const uint16_t *)u,
                                            (const uint16_t *)delta, act, A, (const uint16_t *)Bm,
                                            (const uint16_t *)Cm, Dskip, NULL, B, L, D, N, true,
                                            err);
        if (rc)
            return rc;
        hchk = ws;
    }
    if (dt == KERN_F32) {
        if (z)
            return backward_dispatch<float, true>(ctx, S, accumulate, (float *)du, (float *)ddelta, dA, dBm, dCm, dDskip, (float *)dz, (const float *)dy, (const float *)u, (const float *)delta, act, A, (const float *)Bm, (const float *)Cm, Dskip, (const float *)z, hchk, B, L, D, N, err);
        return backward_dispatch<float, false>(ctx, S, accumulate, (float *)du, (float *)ddelta, dA, dBm, dCm, dDskip, (float *)dz, (const float *)dy, (const float *)u, (const float *)delta, act, A, (const float *)Bm, (const float *)Cm, Dskip, (const float *)z, hchk, B, L, D, N, err);
    }
    if (z)
        return backward_dispatch<uint16_t, true>(ctx, S, accumulate, (uint16_t *)du, (uint16_t *)ddelta, dA, dBm, dCm, dDskip, (uint16_t *)dz, (const uint16_t *)dy, (const uint16_t *)u, (const uint16_t *)delta, act, A, (const uint16_t *)Bm, (const uint16_t *)Cm, Dskip, (const uint16_t *)z, hchk, B, L, D, N, err);
    return backward_dispatch<uint16_t, false>(ctx, S, accumulate, (uint16_t *)du, (uint16_t *)ddelta, dA, dBm, dCm, dDskip, (uint16_t *)dz, (const uint16_t *)dy, (const uint16_t *)u, (const uint16_t *)delta, act, A, (const uint16_t *)Bm, (const uint16_t *)Cm, Dskip, (const uint16_t *)z, hchk, B, L, D, N, err);
}
