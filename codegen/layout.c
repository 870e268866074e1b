/* The pool layout of a kernel program (layout.h), shared by the LLVM host module and the
 * CUDA C emitter so that both address a buffer at the same place. */
#include "layout.h"

#include <string.h>

#include "cg.h"

/* Memory class -> runtime pool (rt.h). */
static const int class_pool[IR_CLASS_COUNT] = {
    [IR_CLASS_PARAM] = RT_POOL_PARAMS,         [IR_CLASS_FROZEN] = RT_POOL_FROZEN,
    [IR_CLASS_GRAD] = RT_POOL_SCRATCH,         [IR_CLASS_OPTIM] = RT_POOL_OPTIM,
    [IR_CLASS_DATA] = RT_POOL_SCRATCH,         [IR_CLASS_STATE] = RT_POOL_OPTIM,
    [IR_CLASS_ACTIVATION] = RT_POOL_ACTIVATIONS, [IR_CLASS_SCRATCH] = RT_POOL_SCRATCH,
};

int cg_class_pool(IrMemClass c)
{
    IR_ASSERT(c >= 0 && c < IR_CLASS_COUNT);
    return class_pool[c];
}

bool cg_layout(const KProgram *p, Diags *d, CgLayout *out)
{
    int64_t base[IR_CLASS_COUNT];
    bool ok = true;
    memset(out->pool_bytes, 0, sizeof out->pool_bytes);
    for (int cl = 0; cl < IR_CLASS_COUNT; cl++) {
        int64_t *pb = &out->pool_bytes[class_pool[cl]];
        *pb = (*pb + 63) / 64 * 64;
        base[cl] = *pb;
        *pb += p->pool_bytes[cl];
    }
    out->loc = ARENA_ARRAY(p->arena, CgBufLoc, p->n_bufs + 1);
    for (int i = 0; i < p->n_bufs; i++) {
        const KBuf *kb = &p->bufs[i];
        IR_ASSERT(kb->cls >= 0 && kb->cls < IR_CLASS_COUNT);
        CgBufLoc *l = &out->loc[i];
        l->pool = class_pool[kb->cls];
        l->offset = base[kb->cls] + kb->offset;
        l->bytes = kb->numel * ir_dtype_bytes(kb->dtype);
        if (kb->offset < 0 || kb->offset + l->bytes > p->pool_bytes[kb->cls]) {
            diag_error(d, srcloc_none(), "buffer %s: bytes [%lld, %lld) lie outside its %s pool of %lld bytes",
                       kb->name ? kb->name : "?", (long long)kb->offset, (long long)(kb->offset + l->bytes),
                       ir_class_name(kb->cls), (long long)p->pool_bytes[kb->cls]);
            ok = false;
        }
    }
    return ok;
}

bool cg_layout_overlap(const CgLayout *l, int a, int b)
{
    const CgBufLoc *x = &l->loc[a], *y = &l->loc[b];
    return x->pool == y->pool && x->offset < y->offset + y->bytes && y->offset < x->offset + x->bytes;
}
