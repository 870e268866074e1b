/* attention-fuse: the scores, softmax and weighted sum of causal self-attention become one
 * `attention` op, whose kernel never holds the [B,H,T,T] scores or probabilities: it runs
 * tiles of queries against tiles of keys with an online softmax, keeps only each query
 * row's log-sum-exp for the backward, and recomputes the probabilities there tile by tile
 * (docs/ir.md, attention; docs/codegen.md, fused kernels). Grouped-query attention reads
 * the kv heads directly, so repeat_kv's copies go too.
 * Requires: PROP_LOWERED. Runs before autodiff, whose rule for `attention` emits one
 * `attention_grad` (a pass after autodiff would have to find and replace the unfused
 * backward instead: softmax_grad, two batched GEMMs per side, the repeat_kv sums).
 * The lowering keeps building the unfused graph on purpose: it is the reference the
 * fused op is tested against, and hand-written IR in that form gets fused too.
 *
 *   before (the tiny GQA LLaMA of tests/unit: 4 heads on 2 kv heads):
 *     %19 = repeat_kv %14 {times = 2} : f32[2,4,6,4]
 *     %20 = repeat_kv %18 {times = 2} : f32[2,4,6,4]
 *     %21 = matmul %9, %19 {trans_a = 0, trans_b = 1} : f32[2,4,6,6]
 *     %22 = scale %21 {alpha = 0.5} : f32[2,4,6,6]
 *     %23 = softmax %22 {causal = 1} : f32[2,4,6,6]
 *     %24 = matmul %23, %20 {trans_a = 0, trans_b = 0} : f32[2,4,6,4]
 *   after:
 *     %19 = attention %9, %14, %18 {causal = 1, scale = 0.5} : f32[2,4,6,4]
 *
 * Matched: matmul(softmax(scale(matmul(q, k^T))), v) with q, k, v [B,*,T,D] (the scale
 * optional), where the scores, the scaled scores and the probabilities have no other
 * user (otherwise they are needed whole and the graph is left as it is); k and v may each
 * be a repeat_kv of [B,Hkv,T,D]. Everything else is copied unchanged. */
#include "pm.h"

#include <string.h>

typedef struct {
    IrNode *q, *k, *v; /* the fused op's operands (k, v past any repeat_kv) */
    double scale;
    bool causal;
} Match;

/* Use counts of every node of f (ret counts as a use). */
static int *count_uses(Arena *a, const IrFunc *f, int ids)
{
    int *uses = ARENA_ARRAY(a, int, ids + 1);
    memset(uses, 0, sizeof *uses * (size_t)(ids + 1));
    for (int i = 0; i < f->n_nodes; i++)
        for (int k = 0; k < f->nodes[i]->n_in; k++)
            uses[f->nodes[i]->in[k]->id]++;
    if (f->ret)
        uses[f->ret->id]++;
    return uses;
}

static bool is_matmul(const IrNode *n, int ta, int tb)
{
    return n->op == IR_OP_MATMUL && ir_attrs_int(&n->attrs, "trans_a", -1) == ta &&
           ir_attrs_int(&n->attrs, "trans_b", -1) == tb && n->in[0]->type.rank == 4 && n->in[1]->type.rank == 4;
}

static IrNode *past_repeat(IrNode *x)
{
    return x->op == IR_OP_REPEAT_KV ? x->in[0] : x;
}

/* y = matmul(p, v) as the end of an attention; drop[] gets its inner nodes. */
static bool match(IrNode *y, const int *uses, Match *mt, bool *drop)
{
    if (!is_matmul(y, 0, 0))
        return false;
    IrNode *p = y->in[0];
    if (p->op != IR_OP_SOFTMAX || uses[p->id] != 1)
        return false;
    IrNode *s = p->in[0], *scaled = NULL;
    double scale = 1.0;
    if (s->op == IR_OP_SCALE) {
        if (uses[s->id] != 1)
            return false;
        scaled = s;
        scale = ir_attrs_float(&s->attrs, "alpha", 1.0);
        s = s->in[0];
    }
    if (!is_matmul(s, 0, 1) || uses[s->id] != 1 || !(scale > 0))
        return false;
    IrNode *q = s->in[0], *k = past_repeat(s->in[1]), *v = past_repeat(y->in[1]);
    IrType qt = q->type, kt = k->type;
    if (q->type.dtype != IR_F32 || !ir_type_eq(kt, v->type) || qt.dim[0] != kt.dim[0] || qt.dim[2] != kt.dim[2] ||
        qt.dim[3] != kt.dim[3] || qt.dim[1] % kt.dim[1] != 0)
        return false;
    mt->q = q;
    mt->k = k;
    mt->v = v;
    mt->scale = scale;
    mt->causal = ir_attrs_int(&p->attrs, "causal", 0) != 0;
    drop[s->id] = drop[p->id] = true;
    if (scaled)
        drop[scaled->id] = true;
    return true;
}

/* Fuses every match of f. */
static bool fuse_func(PassCtx *ctx, IrFunc *f)
{
    int n = f->n_nodes, ids = f->next_id + 1;
    for (int i = 0; i < n; i++)
        if (f->nodes[i]->id >= ids)
            ids = f->nodes[i]->id + 1;
    int *uses = count_uses(ctx->arena, f, ids);
    bool *drop = ARENA_ARRAY(ctx->arena, bool, ids);
    Match *mt = ARENA_ARRAY(ctx->arena, Match, ids);
    bool *fused = ARENA_ARRAY(ctx->arena, bool, ids);
    memset(drop, 0, sizeof *drop * (size_t)ids);
    memset(fused, 0, sizeof *fused * (size_t)ids);
    int found = 0;
    for (int i = 0; i < n; i++) {
        IrNode *y = f->nodes[i];
        if (match(y, uses, &mt[y->id], drop)) {
            fused[y->id] = true;
            found++;
        }
    }
    if (found == 0)
        return true;
    /* a repeat_kv read only by dropped or fused nodes goes too */
    for (int i = 0; i < n; i++) {
        IrNode *y = f->nodes[i];
        if (!fused[y->id] && !drop[y->id])
            continue;
        for (int k = 0; k < y->n_in; k++)
            if (y->in[k]->op == IR_OP_REPEAT_KV)
                uses[y->in[k]->id]--;
    }
    for (int i = 0; i < n; i++)
        if (f->nodes[i]->op == IR_OP_REPEAT_KV && uses[f->nodes[i]->id] == 0)
            drop[f->nodes[i]->id] = true;

    IrNode **old = ARENA_ARRAY(ctx->arena, IrNode *, n + 1);
    memcpy(old, f->nodes, sizeof *old * (size_t)n);
    IrNode **map = ARENA_ARRAY(ctx->arena, IrNode *, ids);
    memset(map, 0, sizeof *map * (size_t)ids);
    IrFunc tmp = {0};
    tmp.name = f->name;
    IrBuilder b;
    ir_builder_init(&b, ctx->m, &tmp, ctx->diags);
    for (int i = 0; i < n; i++) {
        IrNode *o = old[i];
        if (drop[o->id])
            continue;
        if (!fused[o->id]) {
            map[o->id] = ir_node_copy_mapped(b.m, b.f, o, map);
            continue;
        }
        const Match *m = &mt[o->id];
        b.loc = o->loc;
        map[o->id] = ir_attention(&b, map[m->q->id], map[m->k->id], map[m->v->id], m->scale, m->causal);
        map[o->id]->name = o->name;
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

static bool attention_fuse_run(PassCtx *ctx)
{
    for (int i = 0; i < ctx->m->n_funcs; i++)
        if (!fuse_func(ctx, ctx->m->funcs[i]))
            return false;
    return true;
}

const Pass pass_attention_fuse = {
    .name = "attention-fuse",
    .summary = "compute softmax(q k^T) v as one tiled attention op, never holding the [T,T] scores",
    .requires = PROP_LOWERED,
    .run = attention_fuse_run,
};
