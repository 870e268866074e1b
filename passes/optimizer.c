/* optimizer: appends the learning rate, gradient clipping and the AdamW updates to
 * every train function. Requires: PROP_GRADS. Provides: PROP_OPTIM.
 *
 * Per train function, for the gradients autodiff stored in it (`@<p>.grad`, attr
 * grad_of = p):
 *   @lr        = lr_schedule(@step)                      state f32[], stored for the host
 *   @grad_norm = global_norm(every stored gradient)      state f32[], before clipping
 *   gscale     = clip_scale(grad_norm) {max_norm = train.clip}   (clip = 0: const 1)
 *   t          = @step + (1 - phase_start)               i32 add: Adam's 1-based step
 *   adamw(@p.grad, lr, gscale, t) on @p, @p.adam_m, @p.adam_v   one per trainable
 * Moments `<p>.adam_m` / `<p>.adam_v`: class optim, flag moment, attr moment_of = p;
 * @init zeroes them. Weight decay (optim.weight_decay, decoupled as in AdamW) applies
 * only to globals flagged decay; adapter factors are not.
 *
 * Schedules (module attributes only; docs/ir.md "LR schedule" for the formulas):
 *   @train_full: schedule.kind constant -> constant, else cosine; lr = optim.lr,
 *                warmup = schedule.warmup, total = train.steps, offset 0; phase_start 0.
 *                (During a ReLoRA warm start this is the first stretch of one cosine
 *                over the whole run, as in the reference recipe.)
 *   @train_lora: jagged; lr = relora.lr, offset = phase_start = relora.warm_start,
 *                total = train.steps - warm_start, warmup = relora.restart_warmup after a
 *                warm start (schedule.warmup without one), reset_every,
 *                restart_warmup, min_ratio = schedule.min_lr_ratio.
 * The host writes @step (the 0-based index of the step) before each call; nothing here
 * increments it.
 *
 *   after (func @train_lora, warm_start 20, clip 1.0):
 *     %90 = global @step : i32[]
 *     %91 = lr_schedule %90 {kind = "jagged", lr = 0.002, min_ratio = 0.1, offset = 20,
 *                            reset_every = 50, restart_warmup = 10, total = 180, warmup = 10} : f32[]
 *     store %91, @lr
 *     %93 = global @embedding.weight.grad : f32[256,32]
 *     ...
 *     %97 = global_norm %93, %94, %95, %96 : f32[]
 *     store %97, @grad_norm
 *     %99 = clip_scale %97 {max_norm = 1.0} : f32[]
 *     %100 = const {value = -19} : i32[]
 *     %101 = add %90, %100 : i32[]
 *     adamw %93, %91, %99, %101, @embedding.weight, @embedding.weight.adam_m, @embedding.weight.adam_v
 *           {beta1 = 0.9, beta2 = 0.999, eps = 1e-08, weight_decay = 0.0}
 */
#include "pm.h"

#include <string.h>

static IrGlobal *state_scalar(IrModule *m, const char *name, SrcLoc loc)
{
    IrGlobal *g = ir_global_find(m, name);
    return g ? g : ir_global_new(m, name, ir_type_scalar(IR_F32), IR_CLASS_STATE, 0, loc);
}

static IrGlobal *moment(PassCtx *ctx, IrGlobal *p, const char *suffix)
{
    IrModule *m = ctx->m;
    const char *name = arena_sprintf(m->arena, "%s.%s", p->name, suffix);
    IrGlobal *g = ir_global_find(m, name);
    if (g)
        return g;
    g = ir_global_new(m, name, p->type, IR_CLASS_OPTIM, IR_G_MOMENT, p->loc);
    ir_attrs_set_str(m->arena, &g->attrs, "moment_of", p->name);
    IrFunc *init = ir_func_find(m, "init");
    if (init) {
        IrBuilder b;
        ir_builder_init(&b, m, init, ctx->diags);
        b.loc = p->loc;
        IrAttrs as = {0};
        ir_attrs_set_float(m->arena, &as, "value", 0.0);
        ir_build(&b, IR_OP_INIT_CONST, NULL, 0, &g, 1, &as);
    }
    return g;
}

/* The lr_schedule attributes of function f (see the header). *phase_start gets the
 * step at which f's Adam step count starts. */
static void schedule_attrs(PassCtx *ctx, const IrFunc *f, IrAttrs *as, int64_t *phase_start)
{
    IrModule *m = ctx->m;
    Arena *a = m->arena;
    const IrAttrs *ma = &m->attrs;
    const char *kind = ir_attrs_str(ma, "schedule.kind", "cosine");
    int64_t steps = ir_attrs_int(ma, "train.steps", 1), warmup = ir_attrs_int(ma, "schedule.warmup", 0);
    double min_ratio = ir_attrs_float(ma, "schedule.min_lr_ratio", 0.0);
    bool lora = strcmp(f->name, "train_lora") == 0 && strcmp(kind, "relora") == 0;
    *phase_start = 0;
    ir_attrs_set_float(a, as, "min_ratio", min_ratio);
    if (!lora) {
        ir_attrs_set_str(a, as, "kind", strcmp(kind, "constant") == 0 ? "constant" : "cosine");
        ir_attrs_set_float(a, as, "lr", ir_attrs_float(ma, "optim.lr", 1e-3));
        ir_attrs_set_int(a, as, "warmup", warmup);
        ir_attrs_set_int(a, as, "total", steps);
        ir_attrs_set_int(a, as, "offset", 0);
        return;
    }
    int64_t ws = ir_attrs_int(ma, "relora.warm_start", 0), rw = ir_attrs_int(ma, "relora.restart_warmup", 0);
    *phase_start = ws;
    ir_attrs_set_str(a, as, "kind", "jagged");
    ir_attrs_set_float(a, as, "lr", ir_attrs_float(ma, "relora.lr", ir_attrs_float(ma, "optim.lr", 1e-3)));
    ir_attrs_set_int(a, as, "offset", ws);
    ir_attrs_set_int(a, as, "total", steps - ws);
    ir_attrs_set_int(a, as, "warmup", ws > 0 ? rw : warmup);
    ir_attrs_set_int(a, as, "reset_every", ir_attrs_int(ma, "relora.reset_every", 1));
    ir_attrs_set_int(a, as, "restart_warmup", rw);
}

static bool optimize_func(PassCtx *ctx, IrFunc *f)
{
    IrModule *m = ctx->m;
    const IrAttrs *ma = &m->attrs;
    /* The parameters whose gradients f stores, in store order. */
    IrGlobal **params = ARENA_ARRAY(ctx->arena, IrGlobal *, f->n_nodes + 1);
    IrGlobal **grads = ARENA_ARRAY(ctx->arena, IrGlobal *, f->n_nodes + 1);
    int np = 0;
    for (int i = 0; i < f->n_nodes; i++) {
        IrNode *n = f->nodes[i];
        if (n->op != IR_OP_STORE || n->gl[0]->cls != IR_CLASS_GRAD)
            continue;
        IrGlobal *p = ir_global_find(m, ir_attrs_str(&n->gl[0]->attrs, "grad_of", ""));
        if (!p || !(p->flags & IR_G_TRAINABLE))
            continue;
        params[np] = p;
        grads[np++] = n->gl[0];
    }
    if (np == 0)
        return true;
    IrGlobal *step_g = ir_global_find(m, "step");
    IrBuilder b;
    ir_builder_init(&b, m, f, ctx->diags);
    b.loc = step_g->loc;
    IrNode *step = ir_global_read(&b, step_g);
    IrAttrs sa = {0};
    int64_t phase_start;
    schedule_attrs(ctx, f, &sa, &phase_start);
    IrNode *lr = ir_build(&b, IR_OP_LR_SCHEDULE, &step, 1, NULL, 0, &sa);
    lr->name = "lr";
    IrGlobal *lr_g = state_scalar(m, "lr", step_g->loc);
    ir_build(&b, IR_OP_STORE, &lr, 1, &lr_g, 1, NULL);

    IrNode **gv = ARENA_ARRAY(ctx->arena, IrNode *, np);
    for (int i = 0; i < np; i++) {
        b.loc = params[i]->loc;
        gv[i] = ir_global_read(&b, grads[i]);
    }
    b.loc = step_g->loc;
    IrNode *norm = ir_build(&b, IR_OP_GLOBAL_NORM, gv, np, NULL, 0, NULL);
    norm->name = "grad_norm";
    IrGlobal *norm_g = state_scalar(m, "grad_norm", step_g->loc);
    ir_build(&b, IR_OP_STORE, &norm, 1, &norm_g, 1, NULL);
    double clip = ir_attrs_float(ma, "train.clip", 0.0);
    IrNode *gscale;
    if (clip > 0) {
        IrAttrs ca = {0};
        ir_attrs_set_float(m->arena, &ca, "max_norm", clip);
        gscale = ir_build(&b, IR_OP_CLIP_SCALE, &norm, 1, NULL, 0, &ca);
    } else {
        gscale = ir_const(&b, ir_type_scalar(IR_F32), 1.0);
    }
    IrNode *t = ir_binary(&b, IR_OP_ADD, step, ir_const(&b, ir_type_scalar(IR_I32), (double)(1 - phase_start)));
    t->name = "adam_t";

    double wd = ir_attrs_float(ma, "optim.weight_decay", 0.0);
    for (int i = 0; i < np; i++) {
        IrGlobal *p = params[i];
        IrGlobal *gl[3] = {p, moment(ctx, p, "adam_m"), moment(ctx, p, "adam_v")};
        IrAttrs as = {0};
        ir_attrs_set_float(m->arena, &as, "beta1", ir_attrs_float(ma, "optim.beta1", 0.9));
        ir_attrs_set_float(m->arena, &as, "beta2", ir_attrs_float(ma, "optim.beta2", 0.999));
        ir_attrs_set_float(m->arena, &as, "eps", ir_attrs_float(ma, "optim.eps", 1e-8));
        ir_attrs_set_float(m->arena, &as, "weight_decay", (p->flags & IR_G_DECAY) ? wd : 0.0);
        IrNode *in[4] = {gv[i], lr, gscale, t};
        b.loc = p->loc;
        ir_build(&b, IR_OP_ADAMW, in, 4, gl, 3, &as);
    }
    return !b.failed;
}

static bool optimizer_run(PassCtx *ctx)
{
    IrModule *m = ctx->m;
    if (!ir_global_find(m, "step")) {
        diag_error(ctx->diags, srcloc_none(), "optimizer: the module has no @step global");
        return false;
    }
    for (int i = 0; i < m->n_funcs; i++) {
        IrFunc *f = m->funcs[i];
        if (strncmp(f->name, "train", 5) == 0 && !optimize_func(ctx, f))
            return false;
    }
    IrFunc *init = ir_func_find(m, "init");
    if (init)
        ir_func_renumber(init);
    return true;
}

const Pass pass_optimizer = {
    .name = "optimizer",
    .summary = "append lr schedule, global-norm clipping and AdamW updates to each train function",
    .requires = PROP_GRADS,
    .provides = PROP_OPTIM,
    .run = optimizer_run,
};
