/* Error records, dtype tables and validation of the model table the compiler emits.
 * Validation runs once at start-up so the model functions and the checkpoint code can
 * trust every offset and index. */
#include "rt_internal.h"

#include <stdarg.h>
#include <string.h>

bool rt_err(RtError *e, int code, const char *fmt, ...)
{
    if (!e || e->code != RT_OK)
        return false;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return false;
}

size_t rt_dtype_size(int dtype)
{
    switch (dtype) {
    case RT_F32: return 4;
    case RT_BF16: return 2;
    case RT_I32: return 4;
    default: return 0;
    }
}

const char *rt_dtype_name(int dtype)
{
    switch (dtype) {
    case RT_F32: return "F32";
    case RT_BF16: return "BF16";
    case RT_I32: return "I32";
    default: return "?";
    }
}

int64_t rt_tensor_numel(const RtTensorInfo *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->shape[i];
    return n;
}

static const char *export_name(const RtTensorInfo *t)
{
    return t->hf_name ? t->hf_name : t->name;
}

/* Checks an adapter link: W [out, in], A [r, in], B [out, r], all f32 or bf16. */
static bool check_adapter(const RtModel *m, int i, RtError *e)
{
    const RtTensorInfo *w = &m->tensors[i];
    if (w->lora_a < 0 && w->lora_b < 0)
        return true;
    if (w->lora_a < 0 || w->lora_b < 0 || w->lora_a >= m->n_tensors || w->lora_b >= m->n_tensors)
        return rt_err(e, RT_ERR_MODEL, "tensor '%s': adapter indices %d, %d out of range", w->name,
                      w->lora_a, w->lora_b);
    const RtTensorInfo *a = &m->tensors[w->lora_a], *b = &m->tensors[w->lora_b];
    if (w->rank != 2 || a->rank != 2 || b->rank != 2)
        return rt_err(e, RT_ERR_MODEL, "tensor '%s': W, A and B must be matrices", w->name);
    if (a->shape[1] != w->shape[1] || b->shape[0] != w->shape[0] || b->shape[1] != a->shape[0])
        return rt_err(e, RT_ERR_MODEL,
                      "tensor '%s' [%lld, %lld]: adapter shapes A [%lld, %lld], B [%lld, %lld] "
                      "do not match",
                      w->name, (long long)w->shape[0], (long long)w->shape[1],
                      (long long)a->shape[0], (long long)a->shape[1], (long long)b->shape[0],
                      (long long)b->shape[1]);
    if (w->dtype == RT_I32 || a->dtype == RT_I32 || b->dtype == RT_I32)
        return rt_err(e, RT_ERR_MODEL, "tensor '%s': adapters must be floating point", w->name);
    return true;
}

bool rt_model_validate(const RtModel *m, RtError *e)
{
    if (m->abi_version != RT_ABI_VERSION)
        return rt_err(e, RT_ERR_MODEL, "model ABI version %d, runtime expects %d", m->abi_version,
                      RT_ABI_VERSION);
    if (!m->name || !m->spec_hash || !m->init || !m->train_step || !m->eval_loss || !m->logits)
        return rt_err(e, RT_ERR_MODEL, "model table lacks a name, spec_hash or function");
    if (m->vocab <= 0 || m->batch <= 0 || m->seq_len <= 0 || m->n_tensors < 0)
        return rt_err(e, RT_ERR_MODEL, "model has vocab %d, batch %d, seq_len %d", m->vocab,
                      m->batch, m->seq_len);
    for (int i = 0; i < m->n_tensors; i++) {
        const RtTensorInfo *t = &m->tensors[i];
        if (!t->name || !*t->name)
            return rt_err(e, RT_ERR_MODEL, "tensor %d has no name", i);
        if (rt_dtype_size(t->dtype) == 0)
            return rt_err(e, RT_ERR_MODEL, "tensor '%s': unknown dtype %d", t->name, t->dtype);
        if (t->rank < 0 || t->rank > 4)
            return rt_err(e, RT_ERR_MODEL, "tensor '%s': rank %d not in 0..4", t->name, t->rank);
        for (int d = 0; d < t->rank; d++)
            if (t->shape[d] <= 0)
                return rt_err(e, RT_ERR_MODEL, "tensor '%s': dimension %d is %lld", t->name, d,
                              (long long)t->shape[d]);
        if (t->pool < 0 || t->pool >= RT_POOL_COUNT)
            return rt_err(e, RT_ERR_MODEL, "tensor '%s': pool %d", t->name, t->pool);
        size_t bytes = (size_t)rt_tensor_numel(t) * rt_dtype_size(t->dtype);
        if (t->offset % rt_dtype_size(t->dtype) || t->offset > m->pool_bytes[t->pool] ||
            bytes > m->pool_bytes[t->pool] - t->offset)
            return rt_err(e, RT_ERR_MODEL,
                          "tensor '%s': bytes [%zu, %zu) do not fit pool %d of %zu bytes", t->name,
                          t->offset, t->offset + bytes, t->pool, m->pool_bytes[t->pool]);
        if (!check_adapter(m, i, e))
            return false;
        for (int j = 0; j < i; j++) {
            const RtTensorInfo *u = &m->tensors[j];
            if (strcmp(t->name, u->name) == 0)
                return rt_err(e, RT_ERR_MODEL, "two tensors named '%s'", t->name);
            if ((t->flags & RT_T_PARAM) && (u->flags & RT_T_PARAM) &&
                strcmp(export_name(t), export_name(u)) == 0)
                return rt_err(e, RT_ERR_MODEL, "two exported tensors named '%s'", export_name(t));
        }
        if (strcmp(t->name, "__metadata__") == 0)
            return rt_err(e, RT_ERR_MODEL, "tensor name '__metadata__' is reserved");
    }
    return true;
}
