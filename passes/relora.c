/* relora: the ReLoRA event functions, built from module attributes only.
 * Requires: PROP_LORA | PROP_OPTIM. Provides: PROP_RELORA. Only with a relora schedule.
 *
 * @switch: the end of the full-rank warm start. Zeroes the Adam moments of every
 *   parameter the ReLoRA phase trains (those @update_lora updates): the phase starts
 *   from a fresh optimizer state, as the reference code does when it loads a warmed-up
 *   model (relora-notes §1.7); Adam's t restarts at 1 with it (optimizer pass:
 *   t = step - warm_start + 1). The moments of the frozen W are not touched: they are
 *   never read again, and the memory plan gives their bytes to the ReLoRA phase
 *   (docs/passes.md, memplan).
 * @relora_reset: for every adapted W, in this order
 *   lora_merge @W, @A, @B {scale = s}       W += s B A                  (§1.3)
 *   init_uniform(@step) @A {bound = 1/sqrt(I), stream = 1 + A's id}  a fresh draw: the
 *                                             counter is step * numel + i, so every reset
 *                                             (and @init, at step 0) draws different values
 *   init_const @B {value = 0}                the function is unchanged by the reset
 *   prune(@step, @prune_fraction) on each adapter's second moment v {mode = relora.reset;
 *       random: stream = PRUNE_STREAM + v's id}                           (§1.4), then
 *   m = relu_grad(m, v) = m * (v > 0): the first moment is pruned with v's mask.
 *       One mask for both moments. The reference code prunes m and v independently,
 *       which leaves entries with m != 0 and v = 0; right after a reset A's gradient
 *       is exactly 0 (B = 0), so such an entry moves by ~lr * m / eps: on the KJV demo
 *       that turned the first reset into a loss jump from 1.6 to 3.3 with gradient
 *       norms of 100+. With one mask, each kept entry keeps a consistent (m, v) pair
 *       and |m^/sqrt(v^)| stays bounded. Both moments end with exactly the
 *       ceil(p n) zeros of v (m is generically non-zero where v is).
 *   Adam's step count is kept across resets (as in the reference code), so bias
 *   correction is ~1 right after a reset and the surviving moments give updates of a
 *   few times lr * sign(g): this is why the jagged schedule re-warms the LR from 0.
 *
 * When they run is the trainer's step policy, not part of the graph (docs/ir.md "Step
 * policy"): @switch before the first step of the ReLoRA phase when there was a warm start,
 * @relora_reset after every reset_every-th step of that phase. The pruned fraction is
 * @prune_fraction (f32[], class data), written by the trainer: it is run-time data like
 * the rest of the schedule. Only the pruning mode (magnitude or random) is compiled in.
 *
 *   after:
 *     func @relora_reset {
 *       %0 = global @step : i32[]
 *       %1 = global @prune_fraction : f32[]
 *       lora_merge @layers.0.attention.q.weight, @layers.0.attention.q.lora_a, @layers.0.attention.q.lora_b {scale = 2.0}
 *       init_uniform %0, @layers.0.attention.q.lora_a {bound = 0.25, stream = 40}
 *       init_const @layers.0.attention.q.lora_b {value = 0.0}
 *       prune %0, %1, @layers.0.attention.q.lora_a.adam_v {mode = "magnitude"}
 *       %2 = global @layers.0.attention.q.lora_a.adam_m : f32[8,128]
 *       %3 = global @layers.0.attention.q.lora_a.adam_v : f32[8,128]
 *       %4 = relu_grad %2, %3 : f32[8,128]
 *       store %4, @layers.0.attention.q.lora_a.adam_m
 *       ...
 *     } */
#include "pm.h"

#include <math.h>
#include <string.h>

enum { PRUNE_STREAM = 1 << 21 };

static IrGlobal *moment_of(IrModule *m, const IrGlobal *p, const char *suffix)
{
    return ir_global_find(m, arena_sprintf(m->arena, "%s.%s", p->name, suffix));
}

static void make_switch(PassCtx *ctx)
{
    IrModule *m = ctx->m;
    const IrFunc *update = ir_func_find(m, "update_lora");
    bool *zero = ARENA_ARRAY(ctx->arena, bool, m->n_globals + 1);
    for (int i = 0; update && i < update->n_nodes; i++) {
        const IrNode *n = update->nodes[i];
        if (n->op == IR_OP_ADAMW)
            zero[n->gl[1]->id] = zero[n->gl[2]->id] = true;
    }
    IrFunc *f = ir_func_new(m, "switch");
    IrBuilder b;
    ir_builder_init(&b, m, f, ctx->diags);
    for (int i = 0; i < m->n_globals; i++) {
        IrGlobal *g = m->globals[i];
        if (!(g->flags & IR_G_MOMENT) || !zero[g->id])
            continue;
        b.loc = g->loc;
        IrAttrs as = {0};
        ir_attrs_set_float(m->arena, &as, "value", 0.0);
        ir_build(&b, IR_OP_INIT_CONST, NULL, 0, &g, 1, &as);
    }
    ir_func_renumber(f);
}

static bool make_reset(PassCtx *ctx)
{
    IrModule *m = ctx->m;
    const IrAttrs *ma = &m->attrs;
    const char *mode = ir_attrs_str(ma, "relora.reset", NULL);
    if (!mode || (strcmp(mode, "magnitude") != 0 && strcmp(mode, "random") != 0)) {
        diag_error(ctx->diags, srcloc_none(), "relora: module attribute 'relora.reset' must be \"magnitude\" or \"random\"");
        return false;
    }
    IrFunc *f = ir_func_new(m, "relora_reset");
    IrBuilder b;
    ir_builder_init(&b, m, f, ctx->diags);
    IrGlobal *step_g = ir_global_find(m, "step");
    b.loc = step_g->loc;
    IrNode *step = ir_global_read(&b, step_g);
    IrGlobal *frac_g = ir_global_find(m, "prune_fraction");
    if (!frac_g)
        frac_g = ir_global_new(m, "prune_fraction", ir_type_scalar(IR_F32), IR_CLASS_DATA, 0, step_g->loc);
    IrNode *frac = ir_global_read(&b, frac_g);
    int n_globals = m->n_globals;
    for (int i = 0; i < n_globals; i++) {
        IrGlobal *w = m->globals[i];
        const IrAttr *la = ir_attrs_get(&w->attrs, "lora_a"), *lb = ir_attrs_get(&w->attrs, "lora_b");
        if (!la || !lb)
            continue;
        IrGlobal *a = ir_global_find(m, la->s), *bg = ir_global_find(m, lb->s);
        if (!a || !bg) {
            diag_error(ctx->diags, w->loc, "relora: adapter globals of @%s are missing", w->name);
            return false;
        }
        b.loc = w->loc;
        IrAttrs ms = {0}, us = {0}, zs = {0};
        /* operand order (w, a, b) as in ops.def, the interpreter and the kernelizer */
        IrGlobal *mg[3] = {w, a, bg};
        ir_attrs_set_float(m->arena, &ms, "scale", ir_attrs_float(&w->attrs, "lora_scale", 1.0));
        ir_build(&b, IR_OP_LORA_MERGE, NULL, 0, mg, 3, &ms);
        ir_attrs_set_float(m->arena, &us, "bound", 1.0 / sqrt((double)a->type.dim[1]));
        ir_attrs_set_int(m->arena, &us, "stream", 1 + a->id);
        ir_build(&b, IR_OP_INIT_UNIFORM, &step, 1, &a, 1, &us);
        ir_attrs_set_float(m->arena, &zs, "value", 0.0);
        ir_build(&b, IR_OP_INIT_CONST, NULL, 0, &bg, 1, &zs);
        IrGlobal *factors[2] = {a, bg};
        for (int k = 0; k < 2; k++) {
            IrGlobal *mg_ = moment_of(m, factors[k], "adam_m"), *vg = moment_of(m, factors[k], "adam_v");
            if (!mg_ || !vg)
                continue;
            IrAttrs ps = {0};
            ir_attrs_set_str(m->arena, &ps, "mode", mode);
            if (strcmp(mode, "random") == 0)
                ir_attrs_set_int(m->arena, &ps, "stream", PRUNE_STREAM + vg->id);
            b.loc = factors[k]->loc;
            IrNode *pin[2] = {step, frac};
            ir_build(&b, IR_OP_PRUNE, pin, 2, &vg, 1, &ps);
            /* m keeps exactly the entries whose v survived: m = m * (v > 0) */
            IrNode *mv = ir_global_read(&b, mg_), *vv = ir_global_read(&b, vg);
            IrNode *kept = ir_binary(&b, IR_OP_RELU_GRAD, mv, vv);
            ir_build(&b, IR_OP_STORE, &kept, 1, &mg_, 1, NULL);
        }
    }
    ir_func_renumber(f);
    return !b.failed;
}

static bool relora_run(PassCtx *ctx)
{
    IrModule *m = ctx->m;
    if (strcmp(ir_attrs_str(&m->attrs, "schedule.kind", ""), "relora") != 0)
        return true;
    if (!ir_global_find(m, "step")) {
        diag_error(ctx->diags, srcloc_none(), "relora: the module has no @step global");
        return false;
    }
    make_switch(ctx);
    return make_reset(ctx);
}

const Pass pass_relora = {
    .name = "relora",
    .summary = "build @switch (fresh optimizer state) and @relora_reset (merge, re-init, prune)",
    .requires = PROP_LORA | PROP_OPTIM,
    .provides = PROP_RELORA,
    .run = relora_run,
};
