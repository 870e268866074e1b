/* lora-fuse: one GEMM for the base weight and the adapter's down-projection.
 * Requires: PROP_LORA. Provides: PROP_LORA_FUSED. Runs before autodiff.
 *
 * For an adapted linear whose adapter reads the same input as the base matmul (no
 * LoRA dropout: with p > 0 the adapter's input is dropout(x), not x, and the linear is
 * left unfused), x W^T and x A^T come from one matmul over the row concatenation
 * [W; A] (concat axis 0 of the two globals: [O+R, I]; the memory planner can place A
 * right after W so the concat is free) and two slices; the B product then accumulates
 * into the output:
 *
 *   before:
 *     %5 = global @layers.0.attention.q.weight : f32[16,16]
 *     %6 = matmul %4, %5 {trans_a = 0, trans_b = 1} : f32[2,6,16]  # layers.0.attention.q
 *     %7 = global @layers.0.attention.q.lora_a : f32[4,16]
 *     %8 = matmul %4, %7 {trans_a = 0, trans_b = 1} : f32[2,6,4]  # layers.0.attention.q.lora_a
 *     %9 = global @layers.0.attention.q.lora_b : f32[16,4]
 *     %10 = matmul %8, %9 {trans_a = 0, trans_b = 1} : f32[2,6,16]  # layers.0.attention.q.lora_b
 *     %11 = scale %10 {alpha = 2.0} : f32[2,6,16]
 *     %12 = add %6, %11 : f32[2,6,16]
 *   after:
 *     %5 = global @layers.0.attention.q.weight : f32[16,16]
 *     %6 = global @layers.0.attention.q.lora_a : f32[4,16]
 *     %7 = concat %5, %6 {axis = 0} : f32[20,16]
 *     %8 = matmul %4, %7 {trans_a = 0, trans_b = 1} : f32[2,6,20]  # layers.0.attention.q
 *     %9 = slice %8 {axis = 2, end = 16, start = 0} : f32[2,6,16]
 *     %10 = slice %8 {axis = 2, end = 20, start = 16} : f32[2,6,4]  # layers.0.attention.q.lora_a
 *     %11 = global @layers.0.attention.q.lora_b : f32[16,4]
 *     %12 = matmul %10, %11 {trans_a = 0, trans_b = 1} : f32[2,6,16]  # layers.0.attention.q.lora_b
 *     ...
 *
 * Backward (autodiff, then lora-fuse-grad): W is not differentiated in @train_lora, so
 * the concat's gradient flows to A only; the input gradient is one matmul
 * d[x W^T; x A^T] @ [W; A] accumulating both contributions in one buffer; dB comes from
 * the saved x A^T; lora-fuse-grad narrows autodiff's [O+R, I] weight-gradient GEMM to
 * the R adapter rows, so no GEMM computes a gradient for W. */
#include "pm.h"

#include <string.h>

typedef struct {
    PassCtx *ctx;
    IrModule *m;
} Fuse;


/* The global read by `y = x G^T` (2-D G), or NULL. */
static IrGlobal *xwt_global(const IrNode *n)
{
    if (n->op != IR_OP_MATMUL || ir_attrs_int(&n->attrs, "trans_a", 0) || !ir_attrs_int(&n->attrs, "trans_b", 0))
        return NULL;
    if (n->in[1]->op != IR_OP_GLOBAL || n->in[1]->type.rank != 2)
        return NULL;
    return n->in[1]->gl[0];
}

static bool fuse_func(Fuse *s, IrFunc *f)
{
    IrModule *m = s->m;
    int n = f->n_nodes, ids = f->next_id + 1;
    IrNode **old = ARENA_ARRAY(s->ctx->arena, IrNode *, n + 1);
    memcpy(old, f->nodes, sizeof *old * (size_t)n);
    /* partner[base matmul id] = the adapter's x A^T matmul reading the same x */
    IrNode **partner = ARENA_ARRAY(s->ctx->arena, IrNode *, ids);
    bool *fused_a = ARENA_ARRAY(s->ctx->arena, bool, ids);
    int *uses = ARENA_ARRAY(s->ctx->arena, int, ids);
    memset(partner, 0, sizeof *partner * (size_t)ids);
    memset(fused_a, 0, sizeof *fused_a * (size_t)ids);
    memset(uses, 0, sizeof *uses * (size_t)ids);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < old[i]->n_in; k++)
            uses[old[i]->in[k]->id]++;
    int n_fused = 0;
    for (int i = 0; i < n; i++) {
        IrGlobal *ga = xwt_global(old[i]);
        if (!ga || !(ga->flags & IR_G_ADAPTER) || !strstr(ga->name, ".lora_a"))
            continue;
        const char *wname = ir_attrs_str(&ga->attrs, "lora_of", NULL);
        for (int j = 0; j < i && wname; j++) {
            IrGlobal *gw = xwt_global(old[j]);
            if (gw && strcmp(gw->name, wname) == 0 && old[j]->in[0] == old[i]->in[0] && !partner[old[j]->id] &&
                uses[old[i]->in[1]->id] == 1) {
                partner[old[j]->id] = old[i];
                fused_a[old[i]->id] = true;
                fused_a[old[i]->in[1]->id] = true; /* its read of @A moves into the concat */
                n_fused++;
                break;
            }
        }
    }
    if (n_fused == 0)
        return true;
    IrNode **map = ARENA_ARRAY(s->ctx->arena, IrNode *, ids);
    memset(map, 0, sizeof *map * (size_t)ids);
    IrFunc tmp = {0};
    tmp.name = f->name;
    IrBuilder b;
    ir_builder_init(&b, m, &tmp, s->ctx->diags);
    for (int i = 0; i < n; i++) {
        IrNode *o = old[i];
        if (fused_a[o->id])
            continue; /* mapped when its base matmul was fused */
        IrNode *pa = partner[o->id];
        if (!pa) {
            map[o->id] = ir_node_copy_mapped(b.m, b.f, o, map);
            continue;
        }
        IrGlobal *ga = pa->in[1]->gl[0];
        int64_t O = o->in[1]->type.dim[0], R = ga->type.dim[0];
        int last = o->type.rank - 1;
        b.loc = pa->loc;
        IrNode *cat = ir_concat(&b, map[o->in[1]->id], ir_global_read(&b, ga), 0); /* [O+R, I] */
        IrNode *y = ir_matmul(&b, map[o->in[0]->id], cat, false, true);          /* [..., O+R] */
        y->name = o->name;
        map[o->id] = ir_slice(&b, y, last, 0, O);
        map[pa->id] = ir_slice(&b, y, last, O, O + R);
        map[pa->id]->name = pa->name;
    }
    if (b.failed)
        return false;
    f->nodes = tmp.nodes;
    f->n_nodes = tmp.n_nodes;
    f->cap_nodes = tmp.cap_nodes;
    f->ret = f->ret ? map[f->ret->id] : NULL;
    ir_func_renumber(f);
    return true;
}

static bool lora_fuse_run(PassCtx *ctx)
{
    Fuse s = {ctx, ctx->m};
    for (int i = 0; i < ctx->m->n_funcs; i++)
        if (!fuse_func(&s, ctx->m->funcs[i]))
            return false;
    return true;
}

const Pass pass_lora_fuse = {
    .name = "lora-fuse",
    .summary = "compute x W^T and x A^T of an adapted linear with one GEMM over [W; A]",
    .requires = PROP_LORA,
    .provides = PROP_LORA_FUSED,
    .run = lora_fuse_run,
};
