/* lora-fuse-grad: the backward half of lora-fuse. Narrows a weight-gradient GEMM that
 * is only read through row slices to the rows actually read.
 * Requires: PROP_LORA_FUSED | PROP_GRADS. Runs right after autodiff.
 *
 * Autodiff differentiates the fused forward y = x [W; A]^T generically: the gradient of
 * the concat is one GEMM dy^T x of shape [O+R, I], then a slice hands rows O..O+R to A
 * (W is not differentiated in @train_lora, so its rows are never read). That GEMM would
 * still compute the O frozen rows, the very work ReLoRA saves. Since
 * slice(dy^T x, rows s..e) = (dy[:, s..e])^T x, each such slice becomes a GEMM on the
 * sliced gradient; and when dy is the sum of the pads autodiff builds for the two
 * forward slices, dy[:, O..O+R] is just the gradient of x A^T, which is used directly:
 *
 *   before:
 *     %80 = pad %79 {axis = 2, shape = [2, 6, 20], start = 16} : f32[2,6,20]    d(x A^T) placed
 *     %81 = pad %70 {axis = 2, shape = [2, 6, 20], start = 0} : f32[2,6,20]     d(x W^T) placed
 *     %82 = add %80, %81 : f32[2,6,20]
 *     %83 = matmul %82, %7 {trans_a = 0, trans_b = 0} : f32[2,6,16]   dx: both, one buffer
 *     %84 = reshape %4 {shape = [12, 16]} : f32[12,16]
 *     %85 = reshape %82 {shape = [12, 20]} : f32[12,20]
 *     %86 = matmul %85, %84 {trans_a = 1, trans_b = 0} : f32[20,16]  computes W's rows too
 *     %87 = slice %86 {axis = 0, end = 20, start = 16} : f32[4,16]     dA
 *   after:
 *     %80..%84 as before
 *     %85 = reshape %79 {shape = [12, 4]} : f32[12,4]
 *     %86 = matmul %85, %84 {trans_a = 1, trans_b = 0} : f32[4,16]     dA = d(x A^T)^T x
 * The [O+R, I] GEMM and whatever only it used are removed. */
#include "pm.h"

#include <string.h>

typedef struct {
    PassCtx *ctx;
    IrModule *m;
} Narrow;


/* g = matmul(dy[N,K], x[N,I], trans_a) : [K,I], read only through axis-0 slices. */
static bool is_narrowable(const IrNode *g, IrNode *const *users_slice_ok)
{
    return g->op == IR_OP_MATMUL && ir_attrs_int(&g->attrs, "trans_a", 0) == 1 &&
           ir_attrs_int(&g->attrs, "trans_b", 0) == 0 && g->type.rank == 2 && g->in[0]->type.rank == 2 &&
           g->in[1]->type.rank == 2 && users_slice_ok[g->id] != NULL;
}

/* Columns s..e of dy ([N,K]) as a value of b's function: when dy = reshape(add(pad, pad))
 * and one pad placed exactly those columns, that pad's operand (reshaped); else a slice. */
static IrNode *dy_columns(IrBuilder *b, IrNode *dy_new, const IrNode *dy_old, IrNode **map, int64_t s, int64_t e)
{
    const IrNode *r = dy_old;
    if (r->op == IR_OP_RESHAPE && r->in[0]->op == IR_OP_ADD) {
        const IrNode *sum = r->in[0];
        int ax = sum->type.rank - 1;
        for (int k = 0; k < 2; k++) {
            const IrNode *p = sum->in[k];
            if (p->op != IR_OP_PAD || ir_attrs_int(&p->attrs, "axis", -1) != ax ||
                ir_attrs_int(&p->attrs, "start", -1) != s || p->in[0]->type.dim[ax] != e - s)
                continue;
            int64_t d2[2] = {dy_old->type.dim[0], e - s};
            return ir_reshape(b, map[p->in[0]->id], 2, d2);
        }
    }
    return ir_slice(b, dy_new, 1, s, e);
}

static bool narrow_func(Narrow *s, IrFunc *f)
{
    int n = f->n_nodes, ids = f->next_id + 1;
    IrNode **old = ARENA_ARRAY(s->ctx->arena, IrNode *, n + 1);
    memcpy(old, f->nodes, sizeof *old * (size_t)n);
    /* only_slices[g] = g when every user of g is an axis-0 slice (NULL otherwise) */
    IrNode **only_slices = ARENA_ARRAY(s->ctx->arena, IrNode *, ids);
    bool *other_use = ARENA_ARRAY(s->ctx->arena, bool, ids);
    memset(only_slices, 0, sizeof *only_slices * (size_t)ids);
    memset(other_use, 0, sizeof *other_use * (size_t)ids);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < old[i]->n_in; k++) {
            IrNode *x = old[i]->in[k];
            if (old[i]->op == IR_OP_SLICE && ir_attrs_int(&old[i]->attrs, "axis", -1) == 0)
                only_slices[x->id] = x;
            else
                other_use[x->id] = true;
        }
    if (f->ret)
        other_use[f->ret->id] = true;
    int n_narrow = 0;
    for (int i = 0; i < ids; i++)
        if (other_use[i])
            only_slices[i] = NULL;
    for (int i = 0; i < n; i++)
        if (old[i]->op == IR_OP_SLICE && is_narrowable(old[i]->in[0], only_slices))
            n_narrow++;
    if (n_narrow == 0)
        return true;

    IrNode **map = ARENA_ARRAY(s->ctx->arena, IrNode *, ids);
    memset(map, 0, sizeof *map * (size_t)ids);
    IrFunc tmp = {0};
    tmp.name = f->name;
    IrBuilder b;
    ir_builder_init(&b, s->m, &tmp, s->ctx->diags);
    for (int i = 0; i < n; i++) {
        IrNode *o = old[i];
        if (o->op == IR_OP_SLICE && is_narrowable(o->in[0], only_slices)) {
            const IrNode *g = o->in[0];
            int64_t st = ir_attrs_int(&o->attrs, "start", 0), en = ir_attrs_int(&o->attrs, "end", 0);
            b.loc = o->loc;
            IrNode *cols = dy_columns(&b, map[g->in[0]->id], g->in[0], map, st, en);
            map[o->id] = ir_matmul(&b, cols, map[g->in[1]->id], true, false);
            map[o->id]->name = o->name;
            continue;
        }
        map[o->id] = ir_node_copy_mapped(b.m, b.f, o, map);
    }
    if (b.failed)
        return false;
    IrNode *ret = f->ret ? map[f->ret->id] : NULL;

    /* Remove what the rewrite left unused: pure nodes without users, repeatedly. */
    int m_n = tmp.n_nodes;
    int *cnt = ARENA_ARRAY(s->ctx->arena, int, tmp.next_id + 1);
    bool *dead = ARENA_ARRAY(s->ctx->arena, bool, tmp.next_id + 1);
    memset(cnt, 0, sizeof *cnt * (size_t)(tmp.next_id + 1));
    memset(dead, 0, sizeof *dead * (size_t)(tmp.next_id + 1));
    for (int i = 0; i < m_n; i++)
        for (int k = 0; k < tmp.nodes[i]->n_in; k++)
            cnt[tmp.nodes[i]->in[k]->id]++;
    /* Candidates: the narrowed GEMMs' old forms and their operands, i.e. copies of g. */
    for (int i = 0; i < n; i++) {
        IrNode *o = old[i];
        if (!(o->op == IR_OP_SLICE && is_narrowable(o->in[0], only_slices)))
            continue;
        IrNode *stack[64];
        int sp = 0;
        stack[sp++] = map[o->in[0]->id];
        while (sp > 0) {
            IrNode *x = stack[--sp];
            if (dead[x->id] || cnt[x->id] > 0 || x == ret || (ir_op_info[x->op].flags & OPF_EFFECT))
                continue;
            dead[x->id] = true;
            for (int k = 0; k < x->n_in; k++)
                if (--cnt[x->in[k]->id] == 0 && sp < 64)
                    stack[sp++] = x->in[k];
        }
    }
    int w = 0;
    for (int i = 0; i < m_n; i++)
        if (!dead[tmp.nodes[i]->id])
            tmp.nodes[w++] = tmp.nodes[i];
    f->nodes = tmp.nodes;
    f->n_nodes = w;
    f->cap_nodes = tmp.cap_nodes;
    f->ret = ret;
    ir_func_renumber(f);
    return true;
}

static bool lora_fuse_grad_run(PassCtx *ctx)
{
    Narrow s = {ctx, ctx->m};
    for (int i = 0; i < ctx->m->n_funcs; i++) {
        IrFunc *f = ctx->m->funcs[i];
        if (strncmp(f->name, "train", 5) == 0 && !narrow_func(&s, f))
            return false;
    }
    return true;
}

const Pass pass_lora_fuse_grad = {
    .name = "lora-fuse-grad",
    .summary = "narrow the fused [W; A] weight-gradient GEMM to the adapter rows (no GEMM for frozen W)",
    .requires = PROP_LORA_FUSED | PROP_GRADS,
    .run = lora_fuse_grad_run,
};
