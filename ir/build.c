/* The builder: one function per op, so lowering and passes read like the math.
 * Each appends a node at the builder's location and infers its type; on a shape
 * error it records the diagnostic, marks the builder failed, and still returns the
 * node (typed like its first operand) so callers can go on and report more. */
#include "ir.h"

void ir_builder_init(IrBuilder *b, IrModule *m, IrFunc *f, Diags *d)
{
    b->m = m;
    b->f = f;
    b->loc = srcloc_none();
    b->diags = d;
    b->failed = false;
}

static IrNode *finish(IrBuilder *b, IrNode *n)
{
    if (!ir_node_infer(n, b->diags)) {
        b->failed = true;
        if (n->n_in > 0 && !(ir_op_info[n->op].flags & OPF_EFFECT))
            n->type = n->in[0]->type;
    }
    return n;
}

IrNode *ir_build(IrBuilder *b, IrOpKind op, IrNode **in, int n_in, IrGlobal **gl, int n_gl, const IrAttrs *attrs)
{
    IrNode *n = ir_node_new(b->m, b->f, op, in, n_in, gl, n_gl, b->loc);
    if (attrs)
        ir_attrs_copy(b->m->arena, &n->attrs, attrs);
    return finish(b, n);
}

static IrNode *node(IrBuilder *b, IrOpKind op, IrNode *x, IrNode *y, IrNode *z)
{
    IrNode *in[3] = {x, y, z};
    int n_in = z ? 3 : y ? 2 : x ? 1 : 0;
    return ir_node_new(b->m, b->f, op, in, n_in, NULL, 0, b->loc);
}

IrNode *ir_global_read(IrBuilder *b, IrGlobal *g)
{
    IrNode *n = ir_node_new(b->m, b->f, IR_OP_GLOBAL, NULL, 0, &g, 1, b->loc);
    return finish(b, n);
}

IrNode *ir_const(IrBuilder *b, IrType t, double value)
{
    IrNode *n = node(b, IR_OP_CONST, NULL, NULL, NULL);
    n->type = t;
    ir_attrs_set_float(b->m->arena, &n->attrs, "value", value);
    return finish(b, n);
}

IrNode *ir_unary(IrBuilder *b, IrOpKind op, IrNode *x)
{
    return finish(b, node(b, op, x, NULL, NULL));
}

IrNode *ir_binary(IrBuilder *b, IrOpKind op, IrNode *a, IrNode *x2)
{
    return finish(b, node(b, op, a, x2, NULL));
}

IrNode *ir_scale(IrBuilder *b, IrNode *x, double alpha)
{
    IrNode *n = node(b, IR_OP_SCALE, x, NULL, NULL);
    ir_attrs_set_float(b->m->arena, &n->attrs, "alpha", alpha);
    return finish(b, n);
}

IrNode *ir_matmul(IrBuilder *b, IrNode *a, IrNode *w, bool trans_a, bool trans_b)
{
    IrNode *n = node(b, IR_OP_MATMUL, a, w, NULL);
    ir_attrs_set_int(b->m->arena, &n->attrs, "trans_a", trans_a);
    ir_attrs_set_int(b->m->arena, &n->attrs, "trans_b", trans_b);
    return finish(b, n);
}

IrNode *ir_embedding(IrBuilder *b, IrNode *table, IrNode *idx)
{
    return finish(b, node(b, IR_OP_EMBEDDING, table, idx, NULL));
}

IrNode *ir_rmsnorm(IrBuilder *b, IrNode *x, IrNode *w, double eps)
{
    IrNode *n = node(b, IR_OP_RMSNORM, x, w, NULL);
    ir_attrs_set_float(b->m->arena, &n->attrs, "eps", eps);
    return finish(b, n);
}

IrNode *ir_layernorm(IrBuilder *b, IrNode *x, IrNode *w, IrNode *bias, double eps)
{
    IrNode *n = node(b, IR_OP_LAYERNORM, x, w, bias);
    ir_attrs_set_float(b->m->arena, &n->attrs, "eps", eps);
    return finish(b, n);
}

IrNode *ir_rope(IrBuilder *b, IrNode *x, double theta)
{
    IrNode *n = node(b, IR_OP_ROPE, x, NULL, NULL);
    ir_attrs_set_float(b->m->arena, &n->attrs, "theta", theta);
    return finish(b, n);
}

IrNode *ir_softmax(IrBuilder *b, IrNode *x, bool causal)
{
    IrNode *n = node(b, IR_OP_SOFTMAX, x, NULL, NULL);
    ir_attrs_set_int(b->m->arena, &n->attrs, "causal", causal);
    return finish(b, n);
}

IrNode *ir_repeat_kv(IrBuilder *b, IrNode *x, int times)
{
    IrNode *n = node(b, IR_OP_REPEAT_KV, x, NULL, NULL);
    ir_attrs_set_int(b->m->arena, &n->attrs, "times", times);
    return finish(b, n);
}

IrNode *ir_reshape(IrBuilder *b, IrNode *x, int rank, const int64_t *dims)
{
    IrNode *n = node(b, IR_OP_RESHAPE, x, NULL, NULL);
    ir_attrs_set_ints(b->m->arena, &n->attrs, "shape", dims, rank);
    return finish(b, n);
}

IrNode *ir_transpose(IrBuilder *b, IrNode *x, int rank, const int64_t *perm)
{
    IrNode *n = node(b, IR_OP_TRANSPOSE, x, NULL, NULL);
    ir_attrs_set_ints(b->m->arena, &n->attrs, "perm", perm, rank);
    return finish(b, n);
}

IrNode *ir_slice(IrBuilder *b, IrNode *x, int axis, int64_t start, int64_t end)
{
    IrNode *n = node(b, IR_OP_SLICE, x, NULL, NULL);
    ir_attrs_set_int(b->m->arena, &n->attrs, "axis", axis);
    ir_attrs_set_int(b->m->arena, &n->attrs, "start", start);
    ir_attrs_set_int(b->m->arena, &n->attrs, "end", end);
    return finish(b, n);
}

IrNode *ir_concat(IrBuilder *b, IrNode *x, IrNode *y, int axis)
{
    IrNode *n = node(b, IR_OP_CONCAT, x, y, NULL);
    ir_attrs_set_int(b->m->arena, &n->attrs, "axis", axis);
    return finish(b, n);
}

IrNode *ir_sum(IrBuilder *b, IrNode *x, int n_axes, const int64_t *axes)
{
    IrNode *n = node(b, IR_OP_SUM, x, NULL, NULL);
    ir_attrs_set_ints(b->m->arena, &n->attrs, "axes", axes, n_axes);
    return finish(b, n);
}

IrNode *ir_dropout(IrBuilder *b, IrNode *x, IrNode *step, double p, int64_t stream)
{
    IrNode *n = node(b, IR_OP_DROPOUT, x, step, NULL);
    ir_attrs_set_float(b->m->arena, &n->attrs, "p", p);
    ir_attrs_set_int(b->m->arena, &n->attrs, "stream", stream);
    return finish(b, n);
}

IrNode *ir_cross_entropy(IrBuilder *b, IrNode *logits, IrNode *targets)
{
    return finish(b, node(b, IR_OP_CROSS_ENTROPY, logits, targets, NULL));
}

IrNode *ir_attention(IrBuilder *b, IrNode *q, IrNode *k, IrNode *v, double scale, bool causal)
{
    IrNode *n = node(b, IR_OP_ATTENTION, q, k, v);
    ir_attrs_set_float(b->m->arena, &n->attrs, "scale", scale);
    ir_attrs_set_int(b->m->arena, &n->attrs, "causal", causal);
    return finish(b, n);
}

IrNode *ir_linear_cross_entropy(IrBuilder *b, IrNode *x, IrNode *w, IrNode *targets)
{
    return finish(b, node(b, IR_OP_LINEAR_CROSS_ENTROPY, x, w, targets));
}

IrNode *ir_result(IrBuilder *b, IrNode *x, int index)
{
    IrNode *n = node(b, IR_OP_RESULT, x, NULL, NULL);
    ir_attrs_set_int(b->m->arena, &n->attrs, "index", index);
    return finish(b, n);
}
