/* Reverse-mode autodiff over one IR function. A forward sweep marks the values that
 * depend on a wrt global ("needs grad"), a backward sweep the values the loss depends
 * on ("reaches loss"); only nodes in both get a gradient. Walking the original nodes
 * backwards, each active node's gradient is handed to its op's rule — one rule per op,
 * in one table — which emits IR nodes through the builder and accumulates (with add)
 * into its operands' gradients. New nodes are appended to the function and take the
 * location of the node they differentiate.
 *
 * Runs on IR with shapes; appends nodes only (existing nodes, ret and ids are kept).
 * Before (wrt = @w) and after; %4.. are the gradient, grads[0] = %7:
 *   %2 = matmul %1, %0 {trans_a = 0, trans_b = 0} : f32[4,2]
 *   %3 = sum %2 {axes = [0, 1]} : f32[]
 *   %4 = const {value = 1.0} : f32[]              seed d%3
 *   %5 = const {value = 0.0} : f32[4,2]           sum -> broadcast back by adding to zeros
 *   %6 = add %5, %4 : f32[4,2]
 *   %7 = matmul %1, %6 {trans_a = 1, trans_b = 0} : f32[8,2]   dW = x^T dy
 */
#include <stdlib.h>
#include <string.h>

#include "ir.h"

typedef struct AdCtx {
    IrModule *m;
    IrBuilder b;
    Diags *d;
    int n_ids;          /* ids of the nodes present before autodiff are < n_ids */
    bool *active;       /* per node id: needs grad and reaches the loss */
    IrNode **grad;      /* per node id: accumulated gradient, NULL while none */
    IrGlobal **wrt;
    int n_wrt;
    IrNode **wgrad;     /* per wrt index */
} AdCtx;

typedef void (*GradRule)(AdCtx *c, IrNode *n, IrNode *dy);

_Noreturn static void ad_fail(const char *file, int line, const char *msg)
{
    fprintf(stderr, "%s:%d: autodiff: %s\n", file, line, msg);
    abort();
}

#define AD_ASSERT(c) ((c) ? (void)0 : ad_fail(__FILE__, __LINE__, "assertion failed: " #c))

/* ---- building blocks ---------------------------------------------------------------- */

static IrAttrs attrs_empty(void)
{
    IrAttrs as = {NULL, 0, 0};
    return as;
}

/* Copies attribute key of n (when present) into as. */
static void attrs_copy_key(AdCtx *c, IrAttrs *as, const IrNode *n, const char *key)
{
    const IrAttr *a = ir_attrs_get(&n->attrs, key);
    if (!a)
        return;
    switch (a->kind) {
    case IR_ATTR_INT: ir_attrs_set_int(c->m->arena, as, key, a->i); break;
    case IR_ATTR_FLOAT: ir_attrs_set_float(c->m->arena, as, key, a->f); break;
    case IR_ATTR_STR: ir_attrs_set_str(c->m->arena, as, key, a->s); break;
    case IR_ATTR_INTS: ir_attrs_set_ints(c->m->arena, as, key, a->ints, a->n_ints); break;
    }
}

static bool same_dims(IrType a, IrType b)
{
    if (a.rank != b.rank)
        return false;
    for (int i = 0; i < a.rank; i++)
        if (a.dim[i] != b.dim[i])
            return false;
    return true;
}

static IrNode *build(AdCtx *c, IrOpKind op, IrNode *x0, IrNode *x1, IrNode *x2, const IrAttrs *as)
{
    IrNode *in[3] = {x0, x1, x2};
    int n_in = x2 ? 3 : x1 ? 2 : 1;
    IrAttrs none = attrs_empty();
    return ir_build(&c->b, op, in, n_in, NULL, 0, as ? as : &none);
}

/* g summed down to the shape of t (the gradient of broadcasting t onto g's shape). */
static IrNode *reduce_to(AdCtx *c, IrNode *g, IrType t)
{
    if (same_dims(g->type, t))
        return g;
    IrAttrs as = attrs_empty();
    ir_attrs_set_ints(c->m->arena, &as, "shape", t.dim, t.rank);
    return build(c, IR_OP_REDUCE_TO, g, NULL, NULL, &as);
}

/* Swaps the last two axes. */
static IrNode *transpose_last2(AdCtx *c, IrNode *x)
{
    int64_t perm[IR_MAX_RANK];
    int r = x->type.rank;
    for (int i = 0; i < r; i++)
        perm[i] = i;
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    return ir_transpose(&c->b, x, r, perm);
}

/* Adds g to the gradient of x, when x is active. */
static void accumulate(AdCtx *c, IrNode *x, IrNode *g)
{
    AD_ASSERT(x->id >= 0 && x->id < c->n_ids);
    if (!c->active[x->id] || c->b.failed)
        return;
    AD_ASSERT(same_dims(x->type, g->type));
    IrNode *old = c->grad[x->id];
    c->grad[x->id] = old ? ir_binary(&c->b, IR_OP_ADD, old, g) : g;
}

static bool is_active(const AdCtx *c, const IrNode *x)
{
    return c->active[x->id];
}

/* ---- the rules: dy is the gradient of n's value; each accumulates into n's operands ---- */

/* A read of a wrt global: its gradient is the global's. */
static void grad_global(AdCtx *c, IrNode *n, IrNode *dy)
{
    for (int k = 0; k < c->n_wrt; k++)
        if (c->wrt[k] == n->gl[0]) {
            c->wgrad[k] = c->wgrad[k] ? ir_binary(&c->b, IR_OP_ADD, c->wgrad[k], dy) : dy;
            return;
        }
    AD_ASSERT(!"active global read of a global not in wrt");
}

/* table[V,C], idx -> dtable = scatter-add of dy at idx */
static void grad_embedding(AdCtx *c, IrNode *n, IrNode *dy)
{
    IrAttrs as = attrs_empty();
    ir_attrs_set_int(c->m->arena, &as, "vocab", n->in[0]->type.dim[0]);
    accumulate(c, n->in[0], build(c, IR_OP_EMBEDDING_GRAD, dy, n->in[1], NULL, &as));
}

/* y = A @ B with A = op(a)[...,M,K], B = op(b)[...,K,N]: dA = dy B^T, dB = A^T dy.
 * A 2-D b shared over a's batch axes gets its gradient summed over them: by flattening
 * the batch into the rows when a is not transposed, else by a batched product + sum. */
static void grad_matmul(AdCtx *c, IrNode *n, IrNode *dy)
{
    IrNode *a = n->in[0], *w = n->in[1];
    bool ta = ir_attrs_int(&n->attrs, "trans_a", 0) != 0, tb = ir_attrs_int(&n->attrs, "trans_b", 0) != 0;
    int ra = a->type.rank, rb = w->type.rank;
    AD_ASSERT(ra >= 2 && (rb == 2 || rb == ra));
    if (is_active(c, a)) {
        IrNode *g = ir_matmul(&c->b, dy, w, false, !tb); /* dA [...,M,K] */
        accumulate(c, a, ta ? transpose_last2(c, g) : g);
    }
    if (!is_active(c, w))
        return;
    if (rb == ra) {
        accumulate(c, w, tb ? ir_matmul(&c->b, dy, a, true, ta) : ir_matmul(&c->b, a, dy, !ta, false));
    } else if (!ta) {
        int64_t rows = 1;
        for (int i = 0; i < ra - 1; i++)
            rows *= a->type.dim[i];
        int64_t ad[2] = {rows, a->type.dim[ra - 1]}, dd[2] = {rows, dy->type.dim[ra - 1]};
        IrNode *a2 = ir_reshape(&c->b, a, 2, ad), *dy2 = ir_reshape(&c->b, dy, 2, dd);
        accumulate(c, w, tb ? ir_matmul(&c->b, dy2, a2, true, false) : ir_matmul(&c->b, a2, dy2, true, false));
    } else {
        IrNode *g = tb ? ir_matmul(&c->b, dy, a, true, true) : ir_matmul(&c->b, a, dy, false, false);
        int64_t axes[IR_MAX_RANK];
        for (int i = 0; i < ra - 2; i++)
            axes[i] = i;
        accumulate(c, w, ir_sum(&c->b, g, ra - 2, axes));
    }
}

static void grad_add(AdCtx *c, IrNode *n, IrNode *dy)
{
    accumulate(c, n->in[0], dy);
    if (is_active(c, n->in[1]))
        accumulate(c, n->in[1], reduce_to(c, dy, n->in[1]->type));
}

static void grad_sub(AdCtx *c, IrNode *n, IrNode *dy)
{
    accumulate(c, n->in[0], dy);
    if (is_active(c, n->in[1]))
        accumulate(c, n->in[1], ir_scale(&c->b, reduce_to(c, dy, n->in[1]->type), -1.0));
}

static void grad_mul(AdCtx *c, IrNode *n, IrNode *dy)
{
    IrNode *a = n->in[0], *b = n->in[1];
    if (is_active(c, a))
        accumulate(c, a, ir_binary(&c->b, IR_OP_MUL, dy, b));
    if (is_active(c, b))
        accumulate(c, b, reduce_to(c, ir_binary(&c->b, IR_OP_MUL, dy, a), b->type));
}

static void grad_scale(AdCtx *c, IrNode *n, IrNode *dy)
{
    accumulate(c, n->in[0], ir_scale(&c->b, dy, ir_attrs_float(&n->attrs, "alpha", 1.0)));
}

static void grad_silu(AdCtx *c, IrNode *n, IrNode *dy)
{
    accumulate(c, n->in[0], build(c, IR_OP_SILU_GRAD, dy, n->in[0], NULL, NULL));
}

static void grad_gelu(AdCtx *c, IrNode *n, IrNode *dy)
{
    accumulate(c, n->in[0], build(c, IR_OP_GELU_GRAD, dy, n->in[0], NULL, NULL));
}

static void grad_relu(AdCtx *c, IrNode *n, IrNode *dy)
{
    accumulate(c, n->in[0], build(c, IR_OP_RELU_GRAD, dy, n->in[0], NULL, NULL));
}

static void grad_rmsnorm(AdCtx *c, IrNode *n, IrNode *dy)
{
    IrAttrs as = attrs_empty();
    attrs_copy_key(c, &as, n, "eps");
    if (is_active(c, n->in[0]))
        accumulate(c, n->in[0], build(c, IR_OP_RMSNORM_GRAD_X, dy, n->in[0], n->in[1], &as));
    if (is_active(c, n->in[1]))
        accumulate(c, n->in[1], build(c, IR_OP_RMSNORM_GRAD_W, dy, n->in[0], NULL, &as));
}

static void grad_layernorm(AdCtx *c, IrNode *n, IrNode *dy)
{
    IrAttrs as = attrs_empty();
    attrs_copy_key(c, &as, n, "eps");
    if (is_active(c, n->in[0]))
        accumulate(c, n->in[0], build(c, IR_OP_LAYERNORM_GRAD_X, dy, n->in[0], n->in[1], &as));
    if (is_active(c, n->in[1]))
        accumulate(c, n->in[1], build(c, IR_OP_LAYERNORM_GRAD_W, dy, n->in[0], NULL, &as));
    if (is_active(c, n->in[2]))
        accumulate(c, n->in[2], reduce_to(c, dy, n->in[2]->type));
}

/* A rotation is orthogonal: its gradient rotates back. */
static void grad_rope(AdCtx *c, IrNode *n, IrNode *dy)
{
    IrAttrs as = attrs_empty();
    attrs_copy_key(c, &as, n, "theta");
    ir_attrs_set_int(c->m->arena, &as, "inverse", !ir_attrs_int(&n->attrs, "inverse", 0));
    accumulate(c, n->in[0], build(c, IR_OP_ROPE, dy, NULL, NULL, &as));
}

/* Masked (causal) probabilities are 0, so softmax_grad needs no mask of its own. */
static void grad_softmax(AdCtx *c, IrNode *n, IrNode *dy)
{
    accumulate(c, n->in[0], build(c, IR_OP_SOFTMAX_GRAD, dy, n, NULL, NULL));
}

/* dy[B,Hkv*times,T,D] -> [B*Hkv, times, T*D] -> sum axis 1 -> [B,Hkv,T,D] (rank <= 4). */
static void grad_repeat_kv(AdCtx *c, IrNode *n, IrNode *dy)
{
    IrType xt = n->in[0]->type;
    AD_ASSERT(xt.rank == 4);
    int64_t times = n->type.dim[1] / xt.dim[1];
    int64_t d3[3] = {xt.dim[0] * xt.dim[1], times, xt.dim[2] * xt.dim[3]}, ax[1] = {1};
    IrNode *s = ir_sum(&c->b, ir_reshape(&c->b, dy, 3, d3), 1, ax);
    accumulate(c, n->in[0], ir_reshape(&c->b, s, xt.rank, xt.dim));
}

static void grad_reshape(AdCtx *c, IrNode *n, IrNode *dy)
{
    IrType xt = n->in[0]->type;
    accumulate(c, n->in[0], ir_reshape(&c->b, dy, xt.rank, xt.dim));
}

/* The inverse permutation: q[perm[i]] = i. */
static void grad_transpose(AdCtx *c, IrNode *n, IrNode *dy)
{
    const IrAttr *perm = ir_attrs_get(&n->attrs, "perm");
    AD_ASSERT(perm && perm->kind == IR_ATTR_INTS && perm->n_ints == n->type.rank);
    int64_t q[IR_MAX_RANK];
    for (int i = 0; i < perm->n_ints; i++)
        q[perm->ints[i]] = i;
    accumulate(c, n->in[0], ir_transpose(&c->b, dy, perm->n_ints, q));
}

static void grad_slice(AdCtx *c, IrNode *n, IrNode *dy)
{
    IrType xt = n->in[0]->type;
    IrAttrs as = attrs_empty();
    ir_attrs_set_ints(c->m->arena, &as, "shape", xt.dim, xt.rank);
    attrs_copy_key(c, &as, n, "axis");
    attrs_copy_key(c, &as, n, "start");
    accumulate(c, n->in[0], build(c, IR_OP_PAD, dy, NULL, NULL, &as));
}

static void grad_concat(AdCtx *c, IrNode *n, IrNode *dy)
{
    int axis = (int)ir_attrs_int(&n->attrs, "axis", 0);
    int64_t na = n->in[0]->type.dim[axis], nb = n->in[1]->type.dim[axis];
    if (is_active(c, n->in[0]))
        accumulate(c, n->in[0], ir_slice(&c->b, dy, axis, 0, na));
    if (is_active(c, n->in[1]))
        accumulate(c, n->in[1], ir_slice(&c->b, dy, axis, na, na + nb));
}

/* Broadcast dy back over the summed axes: add it to a zero const. ADD broadcasts its
 * second operand along leading axes only, so when the summed axes are not the leading
 * ones the zeros are laid out with them moved to the front and the sum is transposed
 * back: dx = transpose(add(zeros[summed..., kept...], dy), inverse of that order). */
static void grad_sum(AdCtx *c, IrNode *n, IrNode *dy)
{
    IrType xt = n->in[0]->type;
    const IrAttr *axes = ir_attrs_get(&n->attrs, "axes");
    AD_ASSERT(axes && axes->kind == IR_ATTR_INTS);
    bool summed[IR_MAX_RANK] = {false};
    for (int k = 0; k < axes->n_ints; k++)
        summed[axes->ints[k]] = true;
    int64_t order[IR_MAX_RANK]; /* summed axes first, then kept ones, each in order */
    int r = 0;
    bool leading = true;
    for (int d = 0; d < xt.rank; d++)
        if (summed[d])
            order[r++] = d;
    for (int d = 0; d < xt.rank; d++)
        if (!summed[d])
            order[r++] = d;
    for (int d = 0; d < xt.rank; d++)
        leading = leading && order[d] == d;
    if (axes->n_ints == 0) {
        accumulate(c, n->in[0], dy);
        return;
    }
    int64_t zdims[IR_MAX_RANK];
    for (int d = 0; d < xt.rank; d++)
        zdims[d] = xt.dim[order[d]];
    IrNode *zeros = ir_const(&c->b, ir_type_make(dy->type.dtype, xt.rank, zdims), 0.0);
    IrNode *g = ir_binary(&c->b, IR_OP_ADD, zeros, dy);
    if (!leading) {
        int64_t inv[IR_MAX_RANK];
        for (int d = 0; d < xt.rank; d++)
            inv[order[d]] = d;
        g = ir_transpose(&c->b, g, xt.rank, inv);
    }
    accumulate(c, n->in[0], g);
}

/* Same step, stream and p, so the same mask: dx = dy * keep / (1 - p). */
static void grad_dropout(AdCtx *c, IrNode *n, IrNode *dy)
{
    IrAttrs as = attrs_empty();
    attrs_copy_key(c, &as, n, "p");
    attrs_copy_key(c, &as, n, "stream");
    accumulate(c, n->in[0], build(c, IR_OP_DROPOUT, dy, n->in[1], NULL, &as));
}

static void grad_cross_entropy(AdCtx *c, IrNode *n, IrNode *dy)
{
    accumulate(c, n->in[0], build(c, IR_OP_CROSS_ENTROPY_GRAD, dy, n->in[0], n->in[1], NULL));
}

/* One backward op from the saved y and lse gives all three gradients: dq is its value,
 * dk and dv its results 1 and 2 (kv heads already summed over the query heads that
 * share them). */
static void grad_attention(AdCtx *c, IrNode *n, IrNode *dy)
{
    IrNode *in[6] = {dy, n->in[0], n->in[1], n->in[2], n, ir_result(&c->b, n, 1)};
    IrAttrs as = attrs_empty();
    attrs_copy_key(c, &as, n, "scale");
    attrs_copy_key(c, &as, n, "causal");
    IrNode *g = ir_build(&c->b, IR_OP_ATTENTION_GRAD, in, 6, NULL, 0, &as);
    if (is_active(c, n->in[0]))
        accumulate(c, n->in[0], g);
    if (is_active(c, n->in[1]))
        accumulate(c, n->in[1], ir_result(&c->b, g, 1));
    if (is_active(c, n->in[2]))
        accumulate(c, n->in[2], ir_result(&c->b, g, 2));
}

/* dx is the gradient op's value, dw its result 1; both recompute the logits chunk by
 * chunk rather than keep them from the forward. */
static void grad_linear_cross_entropy(AdCtx *c, IrNode *n, IrNode *dy)
{
    IrNode *in[4] = {dy, n->in[0], n->in[1], n->in[2]};
    IrNode *g = ir_build(&c->b, IR_OP_LINEAR_CROSS_ENTROPY_GRAD, in, 4, NULL, 0, NULL);
    if (is_active(c, n->in[0]))
        accumulate(c, n->in[0], g);
    if (is_active(c, n->in[1]))
        accumulate(c, n->in[1], ir_result(&c->b, g, 1));
}

/* One rule per op; an OPF_DIFF op without one fails a unit test. */
static const GradRule grad_rules[IR_OP_COUNT] = {
    [IR_OP_GLOBAL] = grad_global,
    [IR_OP_EMBEDDING] = grad_embedding,
    [IR_OP_MATMUL] = grad_matmul,
    [IR_OP_ADD] = grad_add,
    [IR_OP_SUB] = grad_sub,
    [IR_OP_MUL] = grad_mul,
    [IR_OP_SCALE] = grad_scale,
    [IR_OP_SILU] = grad_silu,
    [IR_OP_GELU] = grad_gelu,
    [IR_OP_RELU] = grad_relu,
    [IR_OP_RMSNORM] = grad_rmsnorm,
    [IR_OP_LAYERNORM] = grad_layernorm,
    [IR_OP_ROPE] = grad_rope,
    [IR_OP_SOFTMAX] = grad_softmax,
    [IR_OP_REPEAT_KV] = grad_repeat_kv,
    [IR_OP_RESHAPE] = grad_reshape,
    [IR_OP_TRANSPOSE] = grad_transpose,
    [IR_OP_SLICE] = grad_slice,
    [IR_OP_CONCAT] = grad_concat,
    [IR_OP_SUM] = grad_sum,
    [IR_OP_DROPOUT] = grad_dropout,
    [IR_OP_CROSS_ENTROPY] = grad_cross_entropy,
    [IR_OP_ATTENTION] = grad_attention,
    [IR_OP_LINEAR_CROSS_ENTROPY] = grad_linear_cross_entropy,
};

bool ir_autodiff_has_rule(IrOpKind op)
{
    return op >= 0 && op < IR_OP_COUNT && grad_rules[op] != NULL;
}

/* ---- the sweeps --------------------------------------------------------------------- */

static bool in_wrt(const AdCtx *c, const IrGlobal *g)
{
    for (int k = 0; k < c->n_wrt; k++)
        if (c->wrt[k] == g)
            return true;
    return false;
}

/* needs grad (forward) and reaches the loss (backward); the loss itself must be in f. */
static bool mark_active(AdCtx *c, const IrFunc *f, int n_nodes, const IrNode *loss)
{
    bool *needs = calloc((size_t)c->n_ids, sizeof(bool)), *reaches = calloc((size_t)c->n_ids, sizeof(bool));
    bool loss_in_f = false;
    AD_ASSERT(needs && reaches);
    for (int i = 0; i < n_nodes; i++) {
        const IrNode *n = f->nodes[i];
        bool is_value = n->type.rank >= 0 && n->type.dtype != IR_I32 && !(ir_op_info[n->op].flags & OPF_EFFECT);
        bool nd = false;
        if (n->op == IR_OP_GLOBAL)
            nd = in_wrt(c, n->gl[0]);
        else
            for (int k = 0; k < n->n_in; k++) {
                AD_ASSERT(n->in[k]->id >= 0 && n->in[k]->id < c->n_ids);
                nd = nd || needs[n->in[k]->id];
            }
        needs[n->id] = nd && is_value;
        loss_in_f = loss_in_f || n == loss;
    }
    if (loss_in_f)
        reaches[loss->id] = true;
    for (int i = n_nodes - 1; i >= 0; i--) {
        const IrNode *n = f->nodes[i];
        if (reaches[n->id])
            for (int k = 0; k < n->n_in; k++)
                reaches[n->in[k]->id] = true;
    }
    for (int i = 0; i < c->n_ids; i++)
        c->active[i] = needs[i] && reaches[i];
    free(needs);
    free(reaches);
    return loss_in_f;
}

bool ir_autodiff(IrModule *m, IrFunc *f, IrNode *loss, IrGlobal **wrt, int n_wrt, IrNode **grads, Diags *d)
{
    AdCtx c = {.m = m, .d = d, .wrt = wrt, .n_wrt = n_wrt};
    int n_nodes = f->n_nodes; /* nodes appended below are not differentiated */
    bool ok = true;
    ir_builder_init(&c.b, m, f, d);
    for (int i = 0; i < n_nodes; i++) {
        AD_ASSERT(f->nodes[i]->id >= 0);
        if (f->nodes[i]->id >= c.n_ids)
            c.n_ids = f->nodes[i]->id + 1;
    }
    c.active = calloc((size_t)c.n_ids + 1, sizeof(bool));
    c.grad = calloc((size_t)c.n_ids + 1, sizeof(IrNode *));
    c.wgrad = calloc((size_t)n_wrt + 1, sizeof(IrNode *));
    AD_ASSERT(c.active && c.grad && c.wgrad);

    if (!mark_active(&c, f, n_nodes, loss)) {
        diag_error(d, loss->loc, "autodiff: the loss is not a node of function '%s'", f->name);
        ok = false;
    } else if (ir_type_numel(loss->type) != 1 || loss->type.rank < 0) {
        diag_error(d, loss->loc, "autodiff: the loss must be a scalar (got rank %d)", loss->type.rank);
        ok = false;
    }
    if (ok && c.active[loss->id]) {
        c.b.loc = loss->loc;
        c.grad[loss->id] = ir_const(&c.b, loss->type, 1.0);
        for (int i = n_nodes - 1; i >= 0 && !c.b.failed; i--) {
            IrNode *n = f->nodes[i];
            if (!c.active[n->id] || !c.grad[n->id])
                continue;
            if (!grad_rules[n->op]) {
                diag_error(d, n->loc, "autodiff: no gradient rule for op '%s' on the path to the loss",
                           ir_op_info[n->op].name);
                ok = false;
                continue;
            }
            c.b.loc = n->loc;
            grad_rules[n->op](&c, n, c.grad[n->id]);
        }
    }
    for (int k = 0; k < n_wrt && ok; k++) {
        if (!c.wgrad[k]) {
            c.b.loc = wrt[k]->loc;
            c.wgrad[k] = ir_const(&c.b, wrt[k]->type, 0.0);
        }
        grads[k] = c.wgrad[k];
    }
    ok = ok && !c.b.failed;
    free(c.active);
    free(c.grad);
    free(c.wgrad);
    return ok;
}
