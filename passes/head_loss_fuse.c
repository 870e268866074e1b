/* head-loss-fuse: the language-model head and its cross-entropy become one
 * `linear_cross_entropy` op, whose kernels compute the logits a chunk of rows at a time
 * (as Liger-Kernel's fused linear cross-entropy does), so the [B*T, V] logits are never
 * held whole: at batch 64 x 512 and V = 32100 they alone took 4 GiB, in the forward and
 * again as their gradient. Its gradient op recomputes each chunk's logits (or, when the
 * loss's gradient is a constant, the forward computes dx and dw as it goes: kernelize.c).
 * Requires: PROP_LOWERED. Runs before autodiff, whose rule for the op emits one
 * `linear_cross_entropy_grad`. The `logits` function has no cross-entropy and keeps its
 * [T, V] logits.
 *
 *   before (examples/tiny.relora, one layer):
 *     %40 = rmsnorm %38, %39 {eps = 1e-05} : f32[8,128,128]  # norm
 *     %41 = global @head.weight : f32[256,128]
 *     %42 = matmul %40, %41 {trans_a = 0, trans_b = 1} : f32[8,128,256]  # head
 *     %43 = reshape %42 {shape = [1024, 256]} : f32[1024,256]
 *     %44 = global @targets : i32[8,128]
 *     %45 = reshape %44 {shape = [1024]} : i32[1024]
 *     %46 = cross_entropy %43, %45 : f32[]  # loss
 *   after (renumbered; attention-fuse removed three nodes before these):
 *     %37 = rmsnorm %35, %36 {eps = 1e-05} : f32[8,128,128]  # norm
 *     %38 = global @head.weight : f32[256,128]
 *     %39 = global @targets : i32[8,128]
 *     %40 = reshape %39 {shape = [1024]} : i32[1024]
 *     %41 = reshape %37 {shape = [1024, 128]} : f32[1024,128]
 *     %42 = linear_cross_entropy %41, %38, %40 : f32[]  # loss
 *
 * Matched: cross_entropy(reshape(matmul(x, w^T)), targets) (the reshape optional) with w
 * 2-D [V,C] and x [...,C], where the logits have no other user. */
#include "pm.h"

#include <string.h>

/* The head matmul of ce's logits (past one reshape), or NULL. */
static IrNode *head_matmul(IrNode *ce, const int *uses, IrNode **reshape)
{
    IrNode *z = ce->in[0];
    *reshape = NULL;
    if (z->op == IR_OP_RESHAPE) {
        if (uses[z->id] != 1)
            return NULL;
        *reshape = z;
        z = z->in[0];
    }
    if (z->op != IR_OP_MATMUL || uses[z->id] != 1 || ir_attrs_int(&z->attrs, "trans_a", -1) != 0 ||
        ir_attrs_int(&z->attrs, "trans_b", -1) != 1 || z->in[1]->type.rank != 2 || z->in[0]->type.rank < 2 ||
        z->type.dtype != IR_F32)
        return NULL;
    return z;
}

static bool fuse_func(PassCtx *ctx, IrFunc *f)
{
    int n = f->n_nodes, ids = f->next_id + 1;
    for (int i = 0; i < n; i++)
        if (f->nodes[i]->id >= ids)
            ids = f->nodes[i]->id + 1;
    int *uses = ARENA_ARRAY(ctx->arena, int, ids);
    bool *drop = ARENA_ARRAY(ctx->arena, bool, ids);
    IrNode **head = ARENA_ARRAY(ctx->arena, IrNode *, ids);
    memset(uses, 0, sizeof *uses * (size_t)ids);
    memset(drop, 0, sizeof *drop * (size_t)ids);
    memset(head, 0, sizeof *head * (size_t)ids);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < f->nodes[i]->n_in; k++)
            uses[f->nodes[i]->in[k]->id]++;
    if (f->ret)
        uses[f->ret->id]++;
    int found = 0;
    for (int i = 0; i < n; i++) {
        IrNode *ce = f->nodes[i], *rs;
        if (ce->op != IR_OP_CROSS_ENTROPY)
            continue;
        IrNode *z = head_matmul(ce, uses, &rs);
        if (!z)
            continue;
        head[ce->id] = z;
        drop[z->id] = true;
        if (rs)
            drop[rs->id] = true;
        found++;
    }
    if (found == 0)
        return true;

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
        if (!head[o->id]) {
            map[o->id] = ir_node_copy_mapped(b.m, b.f, o, map);
            continue;
        }
        const IrNode *z = head[o->id];
        IrNode *x = map[z->in[0]->id];
        b.loc = z->loc;
        if (x->type.rank != 2) {
            int64_t C = x->type.dim[x->type.rank - 1], rows[2] = {ir_type_numel(x->type) / C, C};
            x = ir_reshape(&b, x, 2, rows);
        }
        b.loc = o->loc;
        map[o->id] = ir_linear_cross_entropy(&b, x, map[z->in[1]->id], map[o->in[1]->id]);
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

static bool head_loss_fuse_run(PassCtx *ctx)
{
    for (int i = 0; i < ctx->m->n_funcs; i++)
        if (!fuse_func(ctx, ctx->m->funcs[i]))
            return false;
    return true;
}

const Pass pass_head_loss_fuse = {
    .name = "head-loss-fuse",
    .summary = "compute the LM head and its cross-entropy in row chunks, never holding the [N,V] logits",
    .requires = PROP_LOWERED,
    .run = head_loss_fuse_run,
};
