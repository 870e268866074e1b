/* cuda_emu.h: CUDA's execution model on the host, for running the generated CUDA C without
 * a GPU (tests/unit/test_cuda.c). The generated source is compiled with the host's cc and
 * `-include cuda_emu.h -DRELORAC_EMULATE`, with cuda_emu.c, into a shared object.
 *
 * A launch runs the grid's blocks one after another. Within a block every thread is a
 * fiber (ucontext) with its own stack; a thread runs until it reaches a barrier
 * (__syncthreads), a warp rendezvous (__syncwarp, __shfl_sync, __shfl_xor_sync) or its
 * end. A barrier releases when every thread of the block waits at it; a warp rendezvous
 * when every lane of the warp waits at one, and then each lane gets the value of the lane
 * it names, exchanged all at once as the hardware does. Between two rendezvous the
 * threads run in thread order, then in reverse order, by turns: a run is deterministic,
 * and a thread reading what another wrote without a barrier between them sees the old
 * value in one of the two orders; a barrier some threads never reach, a shuffle with lanes that
 * exited or a mix of barrier kinds is reported as a deadlock (the launch fails).
 * __shared__ variables are static: one copy, shared by the block's threads (blocks do
 * not overlap in time). Kernels without barriers or shuffles may be run as plain calls,
 * thread after thread. Integer and float semantics are the host's C ones (IEEE f32,
 * two's complement), the device's too. */
#ifndef RELORAC_CUDA_EMU_H
#define RELORAC_CUDA_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct EmuDim3 {
    unsigned x, y, z;
} EmuDim3;

const EmuDim3 *emu_thread_idx(void);
const EmuDim3 *emu_block_idx(void);
const EmuDim3 *emu_block_dim(void);
const EmuDim3 *emu_grid_dim(void);
float *emu_dynamic_smem(void);
void emu_syncthreads(void);
void emu_syncwarp(void);
float emu_shfl_xor_f(unsigned mask, float v, int lane_mask);
float emu_shfl_f(unsigned mask, float v, int src);
int emu_shfl_i(unsigned mask, int v, int src);
long long emu_shfl_ll(unsigned mask, long long v, int src);

#define threadIdx (*emu_thread_idx())
#define blockIdx (*emu_block_idx())
#define blockDim (*emu_block_dim())
#define gridDim (*emu_grid_dim())

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static
#define RELORAC_KERNEL
#define RELORAC_DYN_SMEM(name) float *name = emu_dynamic_smem()

#define __syncthreads() emu_syncthreads()
#define __syncwarp() emu_syncwarp()
#define __shfl_xor_sync(mask, v, m) emu_shfl_xor_f((mask), (v), (m))
#define __shfl_sync(mask, v, src)                                                                  \
    _Generic((v), float: emu_shfl_f, int: emu_shfl_i, long long: emu_shfl_ll)((mask), (v), (src))

static inline float __uint_as_float(unsigned u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline unsigned __float_as_uint(float f)
{
    unsigned u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* One kernel of the generated source: run(params) calls it with params as for
 * cuLaunchKernel (params[i] points at parameter i's value). */
typedef struct EmuKernel {
    const char *name;
    void (*run)(void **params);
} EmuKernel;

/* Runs kernel k over `grid` blocks of `block` threads with `smem` bytes of dynamic shared
 * memory. fibers = 0 runs each thread as a plain call (kernels without barriers or
 * shuffles; one that calls one fails the launch). Returns 0, or -1 after printing why to
 * stderr (a deadlock, a misuse, out of memory). */
int emu_launch(const EmuKernel *k, unsigned grid, unsigned block, size_t smem, void **params, int fibers);

#endif
