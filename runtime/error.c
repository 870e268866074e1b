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

/* The functions the step policy may call: init, eval and logits, and for each phase the
 * model trains in, its train, norm and update functions; a relora schedule needs the
 * ReLoRA phase and the reset. */
static bool check_functions(const RtModel *m, RtError *e)
{
    static const int always[] = {RT_FN_INIT, RT_FN_EVAL, RT_FN_LOGITS};
    for (int i = 0; i < 3; i++)
        if (!m->fn[always[i]])
            return rt_err(e, RT_ERR_MODEL, "model has no %s function", rt_fn_name(always[i]));
    bool any = false;
    for (int phase = RT_FN_TRAIN_FULL; phase <= RT_FN_TRAIN_LORA; phase += 3) {
        if (!m->fn[phase])
            continue;
        any = true;
        for (int k = 1; k < 3; k++)
            if (!m->fn[phase + k])
                return rt_err(e, RT_ERR_MODEL, "model has %s but no %s function", rt_fn_name(phase),
                              rt_fn_name(phase + k));
    }
    if (!any)
        return rt_err(e, RT_ERR_MODEL, "model has no train function");
    if (m->schedule.kind == RT_SCHED_RELORA && (!m->fn[RT_FN_TRAIN_LORA] || !m->fn[RT_FN_RESET]))
        return rt_err(e, RT_ERR_MODEL, "a relora schedule needs the train_lora and relora_reset functions");
    if (m->schedule.kind != RT_SCHED_RELORA && !m->fn[RT_FN_TRAIN_FULL])
        return rt_err(e, RT_ERR_MODEL, "a %s schedule needs the train_full function",
                      m->schedule.kind == RT_SCHED_CONSTANT ? "constant" : "cosine");
    RtError se = {0};
    if (!rt_schedule_check(&m->schedule, m, &se))
        return rt_err(e, RT_ERR_MODEL, "the compiled schedule is invalid: %s", se.msg);
    return true;
}

/* Each io tensor the functions need exists with the dtype and size rt.h gives it. */
static bool check_io(const RtModel *m, RtError *e)
{
    static const char *const names[RT_IO_COUNT] = {"tokens", "targets", "step", "lr", "adam_t",
                                                    "prune_fraction", "sample_tokens", "logits", "micro_step"};
    int64_t bt = (int64_t)m->micro_batch * m->seq_len;
    const struct {
        int dtype;
        int64_t numel;
        bool needed;
    } want[RT_IO_COUNT] = {
        [RT_IO_TOKENS] = {RT_I32, bt, true},
        [RT_IO_TARGETS] = {RT_I32, bt, true},
        [RT_IO_STEP] = {RT_I32, 1, false},
        [RT_IO_LR] = {RT_F32, 1, m->fn[RT_FN_UPDATE_FULL] || m->fn[RT_FN_UPDATE_LORA]},
        [RT_IO_ADAM_T] = {RT_I32, 1, m->fn[RT_FN_UPDATE_FULL] || m->fn[RT_FN_UPDATE_LORA]},
        [RT_IO_PRUNE_FRACTION] = {RT_F32, 1, m->fn[RT_FN_RESET] != NULL},
        [RT_IO_SAMPLE_TOKENS] = {RT_I32, m->seq_len, true},
        [RT_IO_LOGITS] = {RT_F32, (int64_t)m->seq_len * m->vocab, true},
        [RT_IO_MICRO_STEP] = {RT_I32, 1, false},
    };
    for (int k = 0; k < RT_IO_COUNT; k++) {
        int i = m->io[k];
        if (i < 0) {
            if (want[k].needed)
                return rt_err(e, RT_ERR_MODEL, "model has no '%s' tensor", names[k]);
            continue;
        }
        if (i >= m->n_tensors)
            return rt_err(e, RT_ERR_MODEL, "io '%s' names tensor %d of %d", names[k], i, m->n_tensors);
        const RtTensorInfo *t = &m->tensors[i];
        if (t->dtype != want[k].dtype || rt_tensor_numel(t) != want[k].numel)
            return rt_err(e, RT_ERR_MODEL, "io '%s' (tensor '%s') must be %s with %lld elements", names[k],
                          t->name, rt_dtype_name(want[k].dtype), (long long)want[k].numel);
    }
    return true;
}

bool rt_model_validate(const RtModel *m, RtError *e)
{
    if (m->abi_version != RT_ABI_VERSION)
        return rt_err(e, RT_ERR_MODEL, "model ABI version %d, runtime expects %d", m->abi_version,
                      RT_ABI_VERSION);
    if (!m->name || !m->model_hash)
        return rt_err(e, RT_ERR_MODEL, "model table lacks a name or a model_hash");
    if (m->vocab <= 0 || m->batch <= 0 || m->seq_len <= 0 || m->n_tensors < 0)
        return rt_err(e, RT_ERR_MODEL, "model has vocab %d, batch %d, seq_len %d", m->vocab,
                      m->batch, m->seq_len);
    if (m->micro_batch <= 0 || m->batch % m->micro_batch != 0)
        return rt_err(e, RT_ERR_MODEL, "model has batch %d and micro_batch %d, which does not divide it",
                      m->batch, m->micro_batch);
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

bool rt_model_validate_program(const RtModel *m, RtError *e)
{
    return rt_model_validate(m, e) && check_functions(m, e) && check_io(m, e);
}
