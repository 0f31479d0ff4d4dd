/*
 * neural_ssm/backend.c — the CPU backend table and the device dispatch. The CPU table
 * points at the reference functions of layers.c, scan.c and s4d.c. A CUDA table is
 * defined in neural_ssm/backend_cuda.c (compiled only with SSMD_HAVE_CUDA, written
 * alongside kernels/) and returned here for NSSM_DEVICE_CUDA and NSSM_DEVICE_AUTO.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void *cpu_alloc(size_t bytes)
{
    return calloc(1, bytes ? bytes : 1);
}

static void cpu_release(void *p)
{
    free(p);
}

static int cpu_available(void)
{
    return 1;
}

static int cpu_synchronize(void)
{
    return NSSM_OK;
}

static void cpu_zero(void *p, size_t bytes)
{
    memset(p, 0, bytes);
}

static void cpu_copy_rows(void *dst, size_t dpitch, const void *src, size_t spitch,
                          size_t width, size_t rows)
{
    for (size_t r = 0; r < rows; r++)
        memcpy((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
}

/* The nssm_ backward functions add into dinp; accumulate == 0 clears it first (a memset
 * here, where a device kernel writes instead). */
static void cpu_linear_backward(real *dinp, real *dw, real *dbias, const real *dout,
                                const real *inp, const real *w, int BT, int C, int OC,
                                int accumulate)
{
    if (dinp && !accumulate)
        memset(dinp, 0, sizeof(real) * BT * C);
    nssm_linear_backward(dinp, dw, dbias, dout, inp, w, BT, C, OC);
}

static void cpu_conv1d_silu_forward(real *out, real *act, const real *inp, const real *w,
                                    const real *bias, int B, int L, int C, int K)
{
    nssm_conv1d_forward(out, inp, w, bias, B, L, C, K);
    nssm_silu_forward(act, out, (size_t)B * L * C);
}

static void cpu_silu_backward(real *dinp, const real *dout, const real *inp, size_t n,
                              int accumulate)
{
    if (!accumulate)
        memset(dinp, 0, sizeof(real) * n);
    nssm_silu_backward(dinp, dout, inp, n);
}

static void cpu_conv1d_silu_backward(real *dinp, real *dw, real *dbias, const real *dact,
                                     const real *pre, const real *inp, const real *w, int B,
                                     int L, int C, int K, real *scratch, int accumulate)
{
    const size_t n = (size_t)B * L * C;
    cpu_silu_backward(scratch, dact, pre, n, 0); /* the conv's dout */
    if (dinp && !accumulate)
        memset(dinp, 0, sizeof(real) * n);
    nssm_conv1d_backward(dinp, dw, dbias, scratch, inp, w, B, L, C, K);
}

/* nssm_selective_scan_backward adds into its gradients; accumulate == 0 clears them first */
static int cpu_selective_scan_backward(real *du, real *ddelta, real *dA, real *dBm, real *dCm,
                                       real *dDskip, real *dz, const real *dy, const real *u,
                                       const real *delta, const nssm_delta_act *act,
                                       const real *A, const real *Bm, const real *Cm,
                                       const real *Dskip, const real *z, int B, int L, int D,
                                       int N, const real *ypre, const real *hchk, int threads,
                                       int accumulate)
{
    if (!accumulate) {
        const size_t bld = sizeof(real) * B * L * D, bln = sizeof(real) * B * L * N;
        memset(du, 0, bld);
        memset(ddelta, 0, bld);
        if (z)
            memset(dz, 0, bld);
        memset(dBm, 0, bln);
        memset(dCm, 0, bln);
        memset(dA, 0, sizeof(real) * D * N);
        if (dDskip)
            memset(dDskip, 0, sizeof(real) * D);
        if (act && act->dbias)
            memset(act->dbias, 0, sizeof(real) * D);
    }
    return nssm_selective_scan_backward(du, ddelta, dA, dBm, dCm, dDskip, dz, dy, u, delta, act,
                                        A, Bm, Cm, Dskip, z, B, L, D, N, ypre, hchk, threads);
}

const nssm_backend nssm_backend_cpu = {
    .name = "cpu",
    .device = NSSM_DEVICE_CPU,
    .available = cpu_available,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .synchronize = cpu_synchronize,
    .zero = cpu_zero,
    .residual_forward = nssm_residual_forward,
    .copy_rows = cpu_copy_rows,
    .quantile_head_forward = nssm_quantile_head_forward,
    .pinball_backward = nssm_pinball_backward,
    .linear_forward = nssm_linear_forward,
    .linear_backward = cpu_linear_backward,
    .rmsnorm_forward = nssm_rmsnorm_forward,
    .rmsnorm_backward = nssm_rmsnorm_backward,
    .conv1d_silu_forward = cpu_conv1d_silu_forward,
    .conv1d_silu_backward = cpu_conv1d_silu_backward,
    .silu_forward = nssm_silu_forward,
    .silu_backward = cpu_silu_backward,
    .glu_forward = nssm_glu_forward,
    .glu_backward = nssm_glu_backward,
    .negexp_forward = nssm_negexp_forward,
    .negexp_backward = nssm_negexp_backward,
    .selective_scan_forward = nssm_selective_scan_forward,
    .selective_scan_backward = cpu_selective_scan_backward,
    .sumsq = nssm_sumsq,
    .adamw_update = nssm_adamw_update,
    .s4d_kernel_forward = nssm_s4d_kernel_forward,
    .s4d_kernel_backward = nssm_s4d_kernel_backward,
    .s4d_conv_forward = nssm_s4d_conv_forward,
    .s4d_conv_backward = nssm_s4d_conv_backward,
};

#ifdef SSMD_HAVE_CUDA
extern const nssm_backend nssm_backend_cuda;
#endif

const nssm_backend *nssm_backend_get(nssm_device device, nssm_error *err)
{
    switch (device) {
    case NSSM_DEVICE_CPU:
        return &nssm_backend_cpu;
    case NSSM_DEVICE_AUTO:
#ifdef SSMD_HAVE_CUDA
        return nssm_backend_cuda.available() ? &nssm_backend_cuda : &nssm_backend_cpu;
#else
        return &nssm_backend_cpu;
#endif
    case NSSM_DEVICE_CUDA:
#ifdef SSMD_HAVE_CUDA
        if (nssm_backend_cuda.available())
            return &nssm_backend_cuda;
        nssm_error_set(err, NSSM_EUNSUPPORTED, "no CUDA device is available");
        return NULL;
#else
        nssm_error_set(err, NSSM_EUNSUPPORTED, "this build has no CUDA backend");
        nssm_error_hint(err, "rebuild with -DSSMD_CUDA=ON on a machine with the CUDA toolkit, "
                             "or use device \"cpu\"");
        return NULL;
#endif
    }
    nssm_error_set(err, NSSM_EINVAL, "unknown device %d", (int)device);
    return NULL;
}
