/* optimizer: builds, for every train function, the functions a trainer runs after it:
 * the global gradient norm and the clipped AdamW update. Requires: PROP_GRADS.
 * Provides: PROP_OPTIM.
 *
 * For @train_<phase> (phase full or lora) and the gradients autodiff stored in it
 * (`@<p>.grad`, attr grad_of = p):
 *   @norm_<phase>:   ret global_norm(every stored gradient), also stored in @grad_norm
 *   @update_<phase>: gscale = clip_scale(@grad_norm) {max_norm = train.clip} (clip 0: 1)
 *                    adamw(@p.grad, @lr, gscale, @adam_t) on @p, @p.adam_m, @p.adam_v
 * The trainer decides between them (docs/ir.md "Step policy"): it skips the update when
 * the loss or the norm is not finite, which is why the norm is a function of its own, and
 * it writes the learning rate @lr and Adam's 1-based step count @adam_t (f32[] and i32[],
 * class data) before the update: the schedule is run-time data, not part of the graph.
 * Moments `<p>.adam_m` / `<p>.adam_v`: class optim, flag moment, attr moment_of = p;
 * @init zeroes them. Weight decay (optim.weight_decay, decoupled as in AdamW) applies
 * only to globals flagged decay; adapter factors are not. Every optim.* and train.clip
 * attribute must be present (the checker's defaults are the only ones).
 *
 *   after (clip 1.0):
 *     func @norm_lora {
 *       %0 = global @embedding.weight.grad : f32[256,32]
 *       ...
 *       %4 = global_norm %0, %1, %2, %3 : f32[]  # grad_norm
 *       store %4, @grad_norm
 *       ret %4
 *     }
 *     func @update_lora {
 *       %0 = global @grad_norm : f32[]
 *       %1 = clip_scale %0 {max_norm = 1.0} : f32[]
 *       %2 = global @lr : f32[]
 *       %3 = global @adam_t : i32[]
 *       %4 = global @embedding.weight.grad : f32[256,32]
 *       adamw %4, %2, %1, %3, @embedding.weight, @embedding.weight.adam_m, @embedding.weight.adam_v
 *             {beta1 = 0.9, beta2 = 0.999, eps = 1e-08, weight_decay = 0.0}
 *       ...
 *     }
 */
#include "pm.h"

#include <string.h>

static IrGlobal *scalar_global(IrModule *m, const char *name, IrDType t, IrMemClass cls, SrcLoc loc)
{
    IrGlobal *g = ir_global_find(m, name);
    return g ? g : ir_global_new(m, name, ir_type_scalar(t), cls, 0, loc);
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

/* A numeric module attribute every pipeline input carries; false (with an error) when absent. */
static bool need_float(PassCtx *ctx, const char *key, double *v)
{
    const IrAttr *a = ir_attrs_get(&ctx->m->attrs, key);
    if (!a || (a->kind != IR_ATTR_FLOAT && a->kind != IR_ATTR_INT)) {
        diag_error(ctx->diags, srcloc_none(), "optimizer: module attribute '%s' is missing", key);
        return false;
    }
    *v = a->kind == IR_ATTR_INT ? (double)a->i : a->f;
    return true;
}

typedef struct Hyper {
    double clip, beta1, beta2, eps, weight_decay;
} Hyper;

static bool read_hyper(PassCtx *ctx, Hyper *h)
{
    bool ok = need_float(ctx, "train.clip", &h->clip);
    ok = need_float(ctx, "optim.beta1", &h->beta1) && ok;
    ok = need_float(ctx, "optim.beta2", &h->beta2) && ok;
    ok = need_float(ctx, "optim.eps", &h->eps) && ok;
    return need_float(ctx, "optim.weight_decay", &h->weight_decay) && ok;
}

/* @norm<sfx>: the L2 norm over every gradient, returned and stored in @grad_norm. */
static void make_norm(PassCtx *ctx, const char *sfx, IrGlobal **grads, IrGlobal **params, int np, SrcLoc loc)
{
    IrModule *m = ctx->m;
    IrFunc *f = ir_func_new(m, arena_sprintf(m->arena, "norm%s", sfx));
    IrBuilder b;
    ir_builder_init(&b, m, f, ctx->diags);
    IrNode **gv = ARENA_ARRAY(ctx->arena, IrNode *, np);
    for (int i = 0; i < np; i++) {
        b.loc = params[i]->loc;
        gv[i] = ir_global_read(&b, grads[i]);
    }
    b.loc = loc;
    IrNode *norm = ir_build(&b, IR_OP_GLOBAL_NORM, gv, np, NULL, 0, NULL);
    norm->name = "grad_norm";
    IrGlobal *norm_g = scalar_global(m, "grad_norm", IR_F32, IR_CLASS_DATA, loc);
    ir_build(&b, IR_OP_STORE, &norm, 1, &norm_g, 1, NULL);
    f->ret = norm;
    ir_func_renumber(f);
}

/* @update<sfx>: clip scale from @grad_norm, then one AdamW step per parameter. */
static bool make_update(PassCtx *ctx, const char *sfx, IrGlobal **grads, IrGlobal **params, int np,
                        const Hyper *h, SrcLoc loc)
{
    IrModule *m = ctx->m;
    IrFunc *f = ir_func_new(m, arena_sprintf(m->arena, "update%s", sfx));
    IrBuilder b;
    ir_builder_init(&b, m, f, ctx->diags);
    b.loc = loc;
    IrNode *norm = ir_global_read(&b, scalar_global(m, "grad_norm", IR_F32, IR_CLASS_DATA, loc));
    IrNode *gscale;
    if (h->clip > 0) {
        IrAttrs ca = {0};
        ir_attrs_set_float(m->arena, &ca, "max_norm", h->clip);
        gscale = ir_build(&b, IR_OP_CLIP_SCALE, &norm, 1, NULL, 0, &ca);
    } else {
        gscale = ir_const(&b, ir_type_scalar(IR_F32), 1.0);
    }
    IrNode *lr = ir_global_read(&b, scalar_global(m, "lr", IR_F32, IR_CLASS_DATA, loc));
    IrNode *t = ir_global_read(&b, scalar_global(m, "adam_t", IR_I32, IR_CLASS_DATA, loc));
    for (int i = 0; i < np; i++) {
        IrGlobal *p = params[i];
        IrGlobal *gl[3] = {p, moment(ctx, p, "adam_m"), moment(ctx, p, "adam_v")};
        IrAttrs as = {0};
        ir_attrs_set_float(m->arena, &as, "beta1", h->beta1);
        ir_attrs_set_float(m->arena, &as, "beta2", h->beta2);
        ir_attrs_set_float(m->arena, &as, "eps", h->eps);
        ir_attrs_set_float(m->arena, &as, "weight_decay", (p->flags & IR_G_DECAY) ? h->weight_decay : 0.0);
        b.loc = p->loc;
        IrNode *in[4] = {ir_global_read(&b, grads[i]), lr, gscale, t};
        ir_build(&b, IR_OP_ADAMW, in, 4, gl, 3, &as);
    }
    ir_func_renumber(f);
    return !b.failed;
}

static bool optimize_func(PassCtx *ctx, IrFunc *f, const Hyper *h)
{
    IrModule *m = ctx->m;
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
    const char *sfx = f->name + strlen("train"); /* "_full", "_lora" */
    SrcLoc loc = ir_global_find(m, "step")->loc;
    make_norm(ctx, sfx, grads, params, np, loc);
    return make_update(ctx, sfx, grads, params, np, h, loc);
}

static bool optimizer_run(PassCtx *ctx)
{
    IrModule *m = ctx->m;
    if (!ir_global_find(m, "step")) {
        diag_error(ctx->diags, srcloc_none(), "optimizer: the module has no @step global");
        return false;
    }
    Hyper h;
    if (!read_hyper(ctx, &h))
        return false;
    int n_funcs = m->n_funcs; /* the functions made here are not visited */
    for (int i = 0; i < n_funcs; i++) {
        IrFunc *f = m->funcs[i];
        if (strncmp(f->name, "train", 5) == 0 && !optimize_func(ctx, f, &h))
            return false;
    }
    IrFunc *init = ir_func_find(m, "init");
    if (init)
        ir_func_renumber(init);
    return true;
}

const Pass pass_optimizer = {
    .name = "optimizer",
    .summary = "build the gradient-norm and clipped AdamW update functions of each train function",
    .requires = PROP_GRADS,
    .provides = PROP_OPTIM,
    .run = optimizer_run,
};
