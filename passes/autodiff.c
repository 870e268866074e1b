/* autodiff: appends the backward pass to every train function.
 * Requires: PROP_LOWERED. Provides: PROP_GRADS.
 * For each trainable global read by a train function, the gradient of the function's
 * loss is stored into a gradient global `<name>.grad` (memory class grad). In
 * @train_lora only the ReLoRA-phase trainables get one: frozen base weights (class
 * frozen) and tensors marked frozen_in_relora get neither gradient nor storage.
 *   before:  %9 = cross_entropy %7, %8 : f32[]          ret %9
 *   after:   ... backward nodes ...
 *            store %41, @layers.0.attention.q.weight.grad
 * With gradient accumulation (module attrs batch = k x train.micro_batch, k > 1: the
 * function is one of a step's k micro-steps, its loss the mean over its micro-batch),
 * each micro-step adds 1/k of its gradient to the stored one, so that after the k
 * micro-steps the gradient is that of the mean over the step's batch; the host zeroes
 * the gradients before the first (docs/ir.md "Step policy"):
 *            %42 = global @layers.0.attention.q.weight.grad
 *            %43 = scale %41 {alpha = 0.25}
 *            %44 = add %42, %43
 *            store %44, @layers.0.attention.q.weight.grad
 * The gradient rules themselves live in ir/autodiff.c, one per op. */
#include "pm.h"

#include <string.h>

static bool wanted(const IrFunc *f, const IrGlobal *g)
{
    if (!(g->flags & IR_G_TRAINABLE))
        return false;
    if (strcmp(f->name, "train_lora") != 0)
        return true;
    return g->cls == IR_CLASS_PARAM && ir_attrs_int(&g->attrs, "frozen_in_relora", 0) == 0;
}

/* k, the micro-steps of a step: batch / train.micro_batch (1 without the attributes). */
static int64_t micro_steps(const IrModule *m)
{
    int64_t batch = ir_attrs_int(&m->attrs, "batch", 0), micro = ir_attrs_int(&m->attrs, "train.micro_batch", batch);
    return micro > 0 && batch > micro && batch % micro == 0 ? batch / micro : 1;
}

static bool run_func(PassCtx *ctx, IrFunc *f)
{
    IrModule *m = ctx->m;
    int64_t k = micro_steps(m);
    bool *read = ARENA_ARRAY(ctx->arena, bool, m->n_globals + 1);
    for (int i = 0; i < f->n_nodes; i++)
        if (f->nodes[i]->op == IR_OP_GLOBAL)
            read[f->nodes[i]->gl[0]->id] = true;
    IrGlobal **wrt = ARENA_ARRAY(ctx->arena, IrGlobal *, m->n_globals + 1);
    int n = 0;
    for (int i = 0; i < m->n_globals; i++)
        if (read[i] && wanted(f, m->globals[i]))
            wrt[n++] = m->globals[i];
    IrNode **grads = ARENA_ARRAY(ctx->arena, IrNode *, n + 1);
    if (!ir_autodiff(m, f, f->ret, wrt, n, grads, ctx->diags))
        return false;
    IrBuilder b;
    ir_builder_init(&b, m, f, ctx->diags);
    for (int i = 0; i < n; i++) {
        const char *gname = arena_sprintf(m->arena, "%s.grad", wrt[i]->name);
        IrGlobal *gg = ir_global_find(m, gname);
        if (!gg)
            gg = ir_global_new(m, gname, wrt[i]->type, IR_CLASS_GRAD, 0, wrt[i]->loc);
        ir_attrs_set_str(m->arena, &gg->attrs, "grad_of", wrt[i]->name);
        b.loc = wrt[i]->loc;
        IrNode *g = grads[i];
        if (k > 1)
            g = ir_binary(&b, IR_OP_ADD, ir_global_read(&b, gg), ir_scale(&b, g, 1.0 / (double)k));
        ir_build(&b, IR_OP_STORE, &g, 1, &gg, 1, NULL);
    }
    return !b.failed;
}

static bool autodiff_run(PassCtx *ctx)
{
    int n_funcs = ctx->m->n_funcs;
    for (int i = 0; i < n_funcs; i++) {
        IrFunc *f = ctx->m->funcs[i];
        if (strncmp(f->name, "train", 5) == 0 && f->ret && !run_func(ctx, f))
            return false;
    }
    return true;
}

const Pass pass_autodiff = {
    .name = "autodiff",
    .summary = "append the backward pass; store gradients of trainable globals",
    .requires = PROP_LOWERED,
    .provides = PROP_GRADS,
    .run = autodiff_run,
};
