/* memplan: plans the buffers of the module's kernels and records the planned pool
 * sizes in module attributes, `mem.<class>.bytes` for every memory class (param,
 * frozen, grad, optim, data, state, activation, scratch), for `relorac check` and dumps.
 * The planning itself is ir/kplan.c: globals get fixed offsets; values share bytes by
 * liveness over each function's kernels (functions run one at a time) in the scratch
 * pool, and so do, phase-aware, the gradients and moments only one training phase uses.
 * The offsets are not stored in the IR: k_program_build recomputes the same plan
 * deterministically for the backends.
 * Requires: nothing (run last: any later change invalidates PROP_MEMPLAN). Provides: PROP_MEMPLAN.
 *   after (the tiny LLaMA of tests/unit/test_memplan.c, full rank):
 *     attr mem.activation.bytes = 0
 *     attr mem.data.bytes = 448
 *     attr mem.frozen.bytes = 0
 *     attr mem.grad.bytes = 19776
 *     attr mem.optim.bytes = 39552
 *     attr mem.param.bytes = 19776
 *     attr mem.scratch.bytes = 25408
 *     attr mem.state.bytes = 0
 * (functions unchanged). */
#include "memplan.h"

#include "kernel.h"
#include "pm.h"

static const char *attr_key(Arena *a, int c) { return arena_sprintf(a, "mem.%s.bytes", ir_class_name((IrMemClass)c)); }

bool pass_memplan_compute(Arena *scratch, Diags *d, const IrModule *m, const KPlanOptions *o,
                          int64_t bytes[IR_CLASS_COUNT], KPlan **plan)
{
    KProgram *p = k_program_build(scratch, d, m);
    if (!p)
        return false;
    KPlan *pl = k_program_plan(p, o);
    if (plan)
        *plan = pl;
    for (int c = 0; c < IR_CLASS_COUNT; c++)
        bytes[c] = p->pool_bytes[c];
    return true;
}

bool pass_memplan_bytes(const IrModule *m, int64_t bytes[IR_CLASS_COUNT])
{
    char key[64];
    for (int c = 0; c < IR_CLASS_COUNT; c++) {
        snprintf(key, sizeof key, "mem.%s.bytes", ir_class_name((IrMemClass)c));
        const IrAttr *at = ir_attrs_get(&m->attrs, key);
        if (!at || at->kind != IR_ATTR_INT)
            return false;
        bytes[c] = at->i;
    }
    return true;
}

int64_t pass_memplan_total(const int64_t bytes[IR_CLASS_COUNT])
{
    int64_t sum = 0;
    for (int c = 0; c < IR_CLASS_COUNT; c++)
        sum += bytes[c];
    return sum;
}

static bool memplan_run(PassCtx *ctx)
{
    int64_t bytes[IR_CLASS_COUNT];
    if (!pass_memplan_compute(ctx->arena, ctx->diags, ctx->m, NULL, bytes, NULL))
        return false;
    for (int c = 0; c < IR_CLASS_COUNT; c++)
        ir_attrs_set_int(ctx->m->arena, &ctx->m->attrs, attr_key(ctx->m->arena, c), bytes[c]);
    return true;
}

const Pass pass_memplan = {
    .name = "memplan",
    .summary = "plan buffer offsets by liveness; record pool bytes per class (mem.<class>.bytes)",
    .provides = PROP_MEMPLAN,
    .run = memplan_run,
};
