/* Host access to tensors wherever the pools live. On the host a tensor is plain memory;
 * with a device layer (RtModel.device) the pools are device memory and every host read
 * or write is a copy through the layer, so the step policy, checkpoints and sampling
 * (step.c, checkpoint.c, trainer.c) are the same code for every target. Checkpoints go
 * through the mirror: one host allocation holding every checkpointed tensor, filled by
 * rt_ctx_pull before a save and sent by rt_ctx_push after a load. */
#include "rt_internal.h"

#include <stdlib.h>
#include <string.h>

struct RtMirror {
    char *data;
    size_t *offset; /* per tensor: bytes into data, or SIZE_MAX when not checkpointed */
};

static size_t tensor_bytes(const RtTensorInfo *t)
{
    return (size_t)rt_tensor_numel(t) * rt_dtype_size(t->dtype);
}

void rt_tensor_write(RtCtx *ctx, int i, const void *src, size_t bytes)
{
    size_t have = tensor_bytes(&ctx->model->tensors[i]);
    size_t n = bytes < have ? bytes : have;
    if (ctx->model->device)
        ctx->model->device->write(ctx, rt_tensor_data(ctx, i), src, n);
    else
        memcpy(rt_tensor_data(ctx, i), src, n);
}

void rt_tensor_read(RtCtx *ctx, int i, void *dst, size_t bytes)
{
    size_t have = tensor_bytes(&ctx->model->tensors[i]);
    size_t n = bytes < have ? bytes : have;
    if (ctx->model->device)
        ctx->model->device->read(ctx, dst, rt_tensor_data(ctx, i), n);
    else
        memcpy(dst, rt_tensor_data(ctx, i), n);
}

void rt_tensor_zero(RtCtx *ctx, int i)
{
    size_t n = tensor_bytes(&ctx->model->tensors[i]);
    const RtDeviceOps *dev = ctx->model->device;
    if (!dev) {
        memset(rt_tensor_data(ctx, i), 0, n);
    } else if (dev->zero) {
        dev->zero(ctx, rt_tensor_data(ctx, i), n);
    } else { /* writes of zeros, 64 KiB at a time */
        static const char zeros[1 << 16];
        char *dst = rt_tensor_data(ctx, i);
        for (size_t at = 0; at < n; at += sizeof zeros)
            dev->write(ctx, dst + at, zeros, n - at < sizeof zeros ? n - at : sizeof zeros);
    }
}

void *rt_tensor_host(const RtCtx *ctx, int i)
{
    if (!ctx->model->device)
        return rt_tensor_data(ctx, i);
    const struct RtMirror *mr = ctx->mirror;
    return mr && mr->offset[i] != SIZE_MAX ? mr->data + mr->offset[i] : NULL;
}

bool rt_mirror_create(RtCtx *ctx, RtError *e)
{
    const RtModel *m = ctx->model;
    struct RtMirror *mr = calloc(1, sizeof *mr);
    size_t *off = calloc((size_t)m->n_tensors + 1, sizeof *off);
    size_t total = 0;
    for (int i = 0; off && i < m->n_tensors; i++) {
        off[i] = SIZE_MAX;
        if (!rt_tensor_is_persistent(&m->tensors[i]))
            continue;
        off[i] = total;
        total += (tensor_bytes(&m->tensors[i]) + 63) / 64 * 64;
    }
    char *data = off ? malloc(total > 0 ? total : 1) : NULL;
    if (!mr || !data) {
        free(mr);
        free(off);
        free(data);
        return rt_err(e, RT_ERR_NOMEM, "out of memory for the host copy of the checkpointed tensors (%zu bytes)",
                      total);
    }
    mr->data = data;
    mr->offset = off;
    ctx->mirror = mr;
    return true;
}

void rt_mirror_destroy(RtCtx *ctx)
{
    if (!ctx->mirror)
        return;
    free(ctx->mirror->data);
    free(ctx->mirror->offset);
    free(ctx->mirror);
    ctx->mirror = NULL;
}

void rt_ctx_pull(const RtCtx *ctx, const RtSchedule *s, int64_t done)
{
    const RtModel *m = ctx->model;
    if (!m->device || !ctx->mirror)
        return;
    for (int i = 0; i < m->n_tensors; i++)
        if (ctx->mirror->offset[i] != SIZE_MAX && rt_tensor_is_live(&m->tensors[i], s, done))
            /* the layer's copies do not change ctx */
            m->device->read((RtCtx *)ctx, rt_tensor_host(ctx, i), rt_tensor_data(ctx, i),
                            tensor_bytes(&m->tensors[i]));
}

void rt_ctx_push(RtCtx *ctx, const RtSchedule *s, int64_t done)
{
    const RtModel *m = ctx->model;
    if (m->device && ctx->mirror)
        for (int i = 0; i < m->n_tensors; i++)
            if (ctx->mirror->offset[i] != SIZE_MAX && rt_tensor_is_live(&m->tensors[i], s, done))
                m->device->write(ctx, rt_tensor_data(ctx, i), rt_tensor_host(ctx, i), tensor_bytes(&m->tensors[i]));
    if (m->fn[RT_FN_REFRESH]) /* what derives from the loaded tensors */
        m->fn[RT_FN_REFRESH](ctx);
}

bool rt_dtype_convert(void *dst, int to, const void *src, int from, int64_t n)
{
    if (to == from) {
        memcpy(dst, src, (size_t)n * rt_dtype_size(to));
        return true;
    }
    if (to == RT_F32 && from == RT_BF16) {
        const uint16_t *h = src;
        float *f = dst;
        for (int64_t i = 0; i < n; i++)
            f[i] = rt_bf16_to_f32(h[i]);
        return true;
    }
    if (to == RT_BF16 && from == RT_F32) {
        const float *f = src;
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++)
            h[i] = rt_f32_to_bf16(f[i]);
        return true;
    }
    return false;
}
