/* rt_cuda.h: the ABI between a CUDA trainer's generated host code and the runtime's CUDA
 * layer (runtime/cuda.c, archive librelorac_rt_cuda.a, linked into CUDA trainers only).
 * The compiler embeds the kernels' cubins and names in an RtCudaCode (RtModel.device_code)
 * and points RtModel.device at rt_cuda_device; the host functions call the entry points
 * below, in the order of the program's steps, on one stream. C standard library only:
 * no CUDA header appears here (the layer loads the driver and cuBLAS at run time). */
#ifndef RELORAC_RT_CUDA_H
#define RELORAC_RT_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "rt.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RT_CUDA_ABI 1

/* The kernels compiled for one architecture. */
typedef struct RtCudaImage {
    int arch;                   /* compute capability * 10: 80 for sm_80 */
    const unsigned char *cubin; /* an ELF cubin (NVRTC) */
    size_t size;
} RtCudaImage;

typedef struct RtCudaCode {
    int abi;                   /* RT_CUDA_ABI */
    int n_images;
    const RtCudaImage *images; /* one per architecture the trainer was built for */
    int n_kernels;
    const char *const *names;  /* kernel k's entry function; rt_cuda_launch's index */
    const int *smem;           /* kernel k's dynamic shared memory, bytes */
    size_t workspace_bytes;    /* device scratch, zero-filled at start (rt_cuda_workspace) */
} RtCudaCode;

/* The device layer of CUDA trainers (struct RtDeviceOps, runtime/rt_internal.h). */
extern const struct RtDeviceOps rt_cuda_device;

/* Entry points of the generated host code. A failure is reported on stderr once; the
 * calls after it do nothing and rt_cuda_read returns NaN, so the trainer stops at that
 * step with its non-finite-loss error. Pointers are device addresses (pools + offsets). */

/* kernels[kernel]<<<grid, block, smem, stream>>>(params), params as cuLaunchKernel's. */
void rt_cuda_launch(RtCtx *ctx, int kernel, uint32_t grid, uint32_t block, uint32_t smem, void **params);
/* Row-major C = alpha op(A) op(B) + beta C over `batch` matrices (strides in elements),
 * as rt_sgemm_strided, through cuBLAS with f32 accumulation; each operand f32 or bf16
 * (enum RtDtype). */
void rt_cuda_gemm(RtCtx *ctx, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const void *a, int a_dtype, int64_t lda, int64_t stride_a, const void *b, int b_dtype,
                  int64_t ldb, int64_t stride_b, float beta, void *c, int c_dtype, int64_t ldc,
                  int64_t stride_c, int64_t batch);
/* Element 0 of a device tensor of dtype `dtype`, as a float, after all work so far. */
float rt_cuda_read(RtCtx *ctx, const void *src, int dtype);
/* Pruning on the host (runtime/rt_ops.h): x [n] f32, the fraction f32 [] and step i32 []
 * read from the device; mode 0 magnitude, 1 random with `stream`. */
void rt_cuda_prune(RtCtx *ctx, int mode, float *x, int64_t n, const float *fraction, const int32_t *step,
                   int64_t stream);
/* The workspace's device address. */
void *rt_cuda_workspace(RtCtx *ctx);

#ifdef __cplusplus
}
#endif
#endif
