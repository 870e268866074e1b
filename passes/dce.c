/* dce: removes nodes whose values reach no effect and no `ret`.
 * Requires: nothing. Provides: part of PROP_CLEAN. Preserves everything else.
 * Effect nodes (store, adamw, init_*, prune, lora_merge) are always live, and so is
 * everything they use; `global` reads nothing uses go. Functions that lost nodes are
 * renumbered (ir_func_renumber), so ids stay 0..n-1 in list order.
 *   before:  %0 = global @w : f32[4]          after:  %0 = global @w : f32[4]
 *            %1 = silu %0 : f32[4]                    %1 = scale %0 {alpha = 2.0} : f32[4]
 *            %2 = scale %0 {alpha = 2.0} : f32[4]     store %1, @w
 *            store %2, @w
 * (%1 = silu reaches nothing: gone; the store keeps %2 and %0.) */
#include "clean.h"
#include "pm.h"

int pass_func_id_bound(const IrFunc *f)
{
    int bound = f->next_id;
    for (int i = 0; i < f->n_nodes; i++)
        if (f->nodes[i]->id >= bound)
            bound = f->nodes[i]->id + 1;
    return bound + 1;
}

bool *pass_func_live(Arena *scratch, const IrFunc *f)
{
    bool *live = ARENA_ARRAY(scratch, bool, pass_func_id_bound(f));
    if (f->ret)
        live[f->ret->id] = true;
    /* operands precede their users, so one backward sweep sees every use first */
    for (int i = f->n_nodes - 1; i >= 0; i--) {
        const IrNode *n = f->nodes[i];
        if (ir_op_info[n->op].flags & OPF_EFFECT)
            live[n->id] = true;
        if (!live[n->id])
            continue;
        for (int j = 0; j < n->n_in; j++)
            live[n->in[j]->id] = true;
    }
    return live;
}

static IrNode *resolve(IrNode *const *repl, IrNode *n)
{
    while (repl[n->id])
        n = repl[n->id];
    return n;
}

void pass_func_replace(IrFunc *f, IrNode *const *repl)
{
    for (int i = 0; i < f->n_nodes; i++) {
        IrNode *n = f->nodes[i];
        for (int j = 0; j < n->n_in; j++)
            n->in[j] = resolve(repl, n->in[j]);
    }
    if (f->ret)
        f->ret = resolve(repl, f->ret);
}

int pass_func_remove(IrFunc *f, const bool *keep)
{
    int n = 0;
    for (int i = 0; i < f->n_nodes; i++)
        if (keep[f->nodes[i]->id])
            f->nodes[n++] = f->nodes[i];
    int removed = f->n_nodes - n;
    f->n_nodes = n;
    if (removed)
        ir_func_renumber(f);
    return removed;
}

int pass_func_dce(Arena *scratch, IrFunc *f)
{
    return pass_func_remove(f, pass_func_live(scratch, f));
}

static bool dce_run(PassCtx *ctx)
{
    for (int i = 0; i < ctx->m->n_funcs; i++)
        pass_func_dce(ctx->arena, ctx->m->funcs[i]);
    return true;
}

const Pass pass_dce = {
    .name = "dce",
    .summary = "remove nodes whose values reach no effect and no ret",
    .run = dce_run,
};
