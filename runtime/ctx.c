/* RtCtx: one aligned, zero-filled allocation per pool (carved by the compiler's offsets),
 * in host memory or through the model's device layer, the thread pool and the GEMM engine;
 * first of all, the check that this CPU can run the generated code. */
#include "rt_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POOL_ALIGN 64

bool rt_tensor_is_persistent(const RtTensorInfo *t)
{
    return t->pool == RT_POOL_PARAMS || t->pool == RT_POOL_FROZEN || t->pool == RT_POOL_OPTIM ||
           (t->flags & (RT_T_STATE | RT_T_MOMENT));
}

/* The LLVM target features the generated code was compiled for ("+avx2,+fma,..."), emitted
 * by the code generator next to relorac_model; NULL in programs without it. */
extern const char relorac_target_features[] __attribute__((weak));

bool rt_ctx_create(RtCtx **out, const RtModel *m, int n_threads, uint64_t seed, RtError *e)
{
    *out = NULL;
    if (!rt_cpu_check(relorac_target_features, e))
        return false;
    if (!rt_model_validate(m, e))
        return false;
    RtCtx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    ctx->model = m;
    ctx->seed = seed;
    if (m->device) {
        if (!m->device->open(ctx, e) || !rt_mirror_create(ctx, e)) {
            rt_ctx_destroy(ctx);
            return false;
        }
    }
    for (int p = 0; p < RT_POOL_COUNT && !m->device; p++) {
        size_t bytes = (m->pool_bytes[p] + POOL_ALIGN - 1) / POOL_ALIGN * POOL_ALIGN;
        if (bytes == 0)
            continue;
        ctx->pools[p] = aligned_alloc(POOL_ALIGN, bytes);
        if (!ctx->pools[p]) {
            rt_ctx_destroy(ctx);
            return rt_err(e, RT_ERR_NOMEM, "out of memory allocating pool %d (%zu bytes)", p,
                          bytes);
        }
        memset(ctx->pools[p], 0, bytes);
    }
    if (n_threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cpus > 0 ? (int)cpus : 1;
    }
    ctx->n_threads = n_threads;
    if (n_threads > 1) {
        ctx->threads = rt_threads_create(n_threads - 1);
        if (!ctx->threads) {
            rt_ctx_destroy(ctx);
            return rt_err(e, RT_ERR_NOMEM, "cannot start %d threads", n_threads);
        }
    }
    /* GEMMs run on this pool (gemm.c): no library threads beside it */
    if (!rt_gemm_create(&ctx->gemm, n_threads, e)) {
        rt_ctx_destroy(ctx);
        return false;
    }
    *out = ctx;
    return true;
}

void rt_ctx_destroy(RtCtx *ctx)
{
    if (!ctx)
        return;
    rt_gemm_destroy(ctx->gemm);
    rt_threads_destroy(ctx->threads);
    if (ctx->model->device) {
        rt_mirror_destroy(ctx);
        if (ctx->device)
            ctx->model->device->close(ctx);
    } else {
        for (int p = 0; p < RT_POOL_COUNT; p++)
            free(ctx->pools[p]);
    }
    free(ctx);
}
