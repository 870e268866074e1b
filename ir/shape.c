/* Shape rules: one case per op, computing a node's result type from its operands and
 * attributes (ops.def gives each op's rule in words). A rule that fails records one
 * diagnostic at the node's location, naming the op and the offending types. */
#include "ir.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    IrNode *n;
    Diags *d;
    bool ok;
} Ctx;

static const char *ts(Ctx *c, IrType t)
{
    static const char none[] = "?";
    return c->d ? ir_type_str(c->d->arena, t) : none;
}

static void fail(Ctx *c, const char *fmt, const char *a1, const char *a2)
{
    if (c->d && c->ok)
        diag_error(c->d, c->n->loc, "in %s: %s", ir_op_info[c->n->op].name,
                   arena_sprintf(c->d->arena, fmt, a1 ? a1 : "", a2 ? a2 : ""));
    c->ok = false;
}

static bool is_float(IrType t) { return t.rank >= 0 && (t.dtype == IR_F32 || t.dtype == IR_BF16); }

static bool need_float(Ctx *c, int i)
{
    if (!is_float(c->n->in[i]->type)) {
        fail(c, "operand %s must be a float tensor (got %s)", i == 0 ? "0" : i == 1 ? "1" : "2",
             ts(c, c->n->in[i]->type));
        return false;
    }
    return true;
}

static bool need_i32_scalar(Ctx *c, int i)
{
    IrType t = c->n->in[i]->type;
    if (t.dtype != IR_I32 || t.rank != 0) {
        fail(c, "operand %s must be an i32 scalar (got %s)", i == 0 ? "0" : i == 1 ? "1" : i == 2 ? "2" : "3",
             ts(c, t));
        return false;
    }
    return true;
}

static bool need_f32_scalar(Ctx *c, int i)
{
    IrType t = c->n->in[i]->type;
    if (!is_float(t) || t.rank != 0) {
        fail(c, "operand %s must be a float scalar (got %s)", i == 0 ? "0" : i == 1 ? "1" : i == 2 ? "2" : "3",
             ts(c, t));
        return false;
    }
    return true;
}

/* b broadcasts to a: b's dims equal a's trailing dims. */
static bool broadcasts(IrType a, IrType b)
{
    if (b.rank > a.rank)
        return false;
    for (int i = 0; i < b.rank; i++)
        if (b.dim[b.rank - 1 - i] != a.dim[a.rank - 1 - i])
            return false;
    return true;
}

static int64_t attr_int(Ctx *c, const char *key, bool *present)
{
    const IrAttr *at = ir_attrs_get(&c->n->attrs, key);
    *present = at && at->kind == IR_ATTR_INT;
    if (!*present)
        fail(c, "missing integer attribute '%s'%s", key, "");
    return *present ? at->i : 0;
}

static const IrAttr *attr_ints(Ctx *c, const char *key)
{
    const IrAttr *at = ir_attrs_get(&c->n->attrs, key);
    if (!at || at->kind != IR_ATTR_INTS) {
        fail(c, "missing integer-list attribute '%s'%s", key, "");
        return NULL;
    }
    if (at->n_ints > IR_MAX_RANK) {
        fail(c, "attribute '%s' has more than 4 entries%s", key, "");
        return NULL;
    }
    return at;
}

static IrType matmul_type(Ctx *c)
{
    IrType a = c->n->in[0]->type, b = c->n->in[1]->type, y = a;
    bool ta = ir_attrs_int(&c->n->attrs, "trans_a", 0) != 0;
    bool tb = ir_attrs_int(&c->n->attrs, "trans_b", 0) != 0;
    if (a.rank < 2 || b.rank < 2 || !(b.rank == 2 || b.rank == a.rank)) {
        fail(c, "operands %s and %s: need rank >= 2, b 2-D or of a's rank", ts(c, a), ts(c, b));
        return y;
    }
    for (int i = 0; b.rank > 2 && i < a.rank - 2; i++)
        if (a.dim[i] != b.dim[i]) {
            fail(c, "batch axes differ: %s and %s", ts(c, a), ts(c, b));
            return y;
        }
    int64_t m = ta ? a.dim[a.rank - 1] : a.dim[a.rank - 2];
    int64_t k = ta ? a.dim[a.rank - 2] : a.dim[a.rank - 1];
    int64_t kb = tb ? b.dim[b.rank - 1] : b.dim[b.rank - 2];
    int64_t nn = tb ? b.dim[b.rank - 2] : b.dim[b.rank - 1];
    if (k != kb) {
        fail(c, "inner dimensions differ: %s and %s", ts(c, a), ts(c, b));
        return y;
    }
    y.dim[y.rank - 2] = m;
    y.dim[y.rank - 1] = nn;
    return y;
}

/* q[B,H,T,D], k and v [B,Hkv,T,D] with H a multiple of Hkv (attention, attention_grad). */
static bool attention_operands(Ctx *c, IrType q, IrType k, IrType v)
{
    bool ok = is_float(q) && is_float(k) && is_float(v) && q.rank == 4 && ir_type_eq(k, v) && k.rank == 4 &&
              k.dim[0] == q.dim[0] && k.dim[2] == q.dim[2] && k.dim[3] == q.dim[3] && q.dim[1] % k.dim[1] == 0;
    if (!ok)
        fail(c, "need q[B,H,T,D] and k, v [B,Hkv,T,D] with H a multiple of Hkv (got q %s, k %s)", ts(c, q),
             ts(c, k));
    return ok;
}

/* x[N,C], w[V,C] float and targets[N] i32 (linear_cross_entropy and its gradient). */
static bool head_loss_operands(Ctx *c, IrType x, IrType w, IrType t)
{
    bool ok = is_float(x) && is_float(w) && x.rank == 2 && w.rank == 2 && w.dim[1] == x.dim[1] &&
              t.dtype == IR_I32 && t.rank == 1 && t.dim[0] == x.dim[0];
    if (!ok)
        fail(c, "need x[N,C], w[V,C] and i32 targets[N] (got x %s, w %s)", ts(c, x), ts(c, w));
    return ok;
}

int ir_node_n_results(const IrNode *n)
{
    switch (n->op) {
    case IR_OP_ATTENTION: return 2;
    case IR_OP_ATTENTION_GRAD: return 3;
    case IR_OP_LINEAR_CROSS_ENTROPY_GRAD: return 2;
    default: return ir_op_info[n->op].flags & OPF_EFFECT ? 0 : 1;
    }
}

bool ir_node_result_type(const IrNode *n, int index, IrType *t)
{
    if (index < 0 || index >= ir_node_n_results(n) || n->type.rank < 0)
        return false;
    if (index == 0) {
        *t = n->type;
        return true;
    }
    switch (n->op) {
    case IR_OP_ATTENTION: /* lse[B,H,T] */
        *t = n->type;
        t->rank = 3;
        return true;
    case IR_OP_ATTENTION_GRAD: /* dk, dv: the types of k and v */
        *t = n->in[index + 1]->type;
        return true;
    case IR_OP_LINEAR_CROSS_ENTROPY_GRAD: /* dw: the type of w */
        *t = n->in[2]->type;
        return true;
    default: return false;
    }
}

bool ir_node_infer(IrNode *n, Diags *d)
{
    Ctx c = {n, d, true};
    const IrOpInfo *info = &ir_op_info[n->op];
    if ((info->n_values >= 0 && n->n_in != info->n_values) || (info->n_values < 0 && n->n_in < 1) ||
        n->n_gl != info->n_globals) {
        fail(&c, "wrong number of operands%s%s", "", "");
        return false;
    }
    for (int i = 0; i < n->n_in; i++)
        if (!n->in[i] || n->in[i]->type.rank < 0) {
            fail(&c, "operand is missing or has no value%s%s", "", "");
            return false;
        }
    IrType x = n->n_in ? n->in[0]->type : ir_type_scalar(IR_F32);
    IrType y = x;
    bool has;
    switch (n->op) {
    case IR_OP_GLOBAL:
        y = n->gl[0]->type;
        break;
    case IR_OP_CONST:
        y = n->type; /* set by the builder or the parser */
        if (y.rank < 0)
            fail(&c, "const has no type%s%s", "", "");
        break;
    case IR_OP_RESULT: {
        int64_t index = attr_int(&c, "index", &has);
        if (!has)
            break;
        if (index < 1 || index >= ir_node_n_results(n->in[0]) || !ir_node_result_type(n->in[0], (int)index, &y)) {
            char buf[24];
            snprintf(buf, sizeof buf, "%lld", (long long)index);
            fail(&c, "operand (%s) has no result %s", ir_op_info[n->in[0]->op].name, buf);
        }
        break;
    }
    case IR_OP_EMBEDDING: {
        IrType tab = x, idx = n->in[1]->type;
        if (tab.rank != 2 || !is_float(tab) || idx.dtype != IR_I32 || idx.rank >= IR_MAX_RANK) {
            fail(&c, "need table f32[V,C] and i32 indices (got %s, %s)", ts(&c, tab), ts(&c, idx));
            break;
        }
        y = idx;
        y.dtype = tab.dtype;
        y.dim[y.rank++] = tab.dim[1];
        break;
    }
    case IR_OP_MATMUL:
        if (need_float(&c, 0) && need_float(&c, 1))
            y = matmul_type(&c);
        break;
    case IR_OP_ADD:
    case IR_OP_SUB:
    case IR_OP_MUL:
        if (x.dtype != n->in[1]->type.dtype || !broadcasts(x, n->in[1]->type))
            fail(&c, "shapes %s and %s do not match", ts(&c, x), ts(&c, n->in[1]->type));
        break;
    case IR_OP_SCALE:
    case IR_OP_SILU:
    case IR_OP_GELU:
    case IR_OP_RELU:
        need_float(&c, 0);
        break;
    case IR_OP_RMSNORM:
    case IR_OP_LAYERNORM:
        if (!need_float(&c, 0))
            break;
        for (int i = 1; i < n->n_in; i++)
            if (n->in[i]->type.rank != 1 || x.rank < 1 || n->in[i]->type.dim[0] != x.dim[x.rank - 1])
                fail(&c, "weight %s does not match the last axis of %s", ts(&c, n->in[i]->type), ts(&c, x));
        break;
    case IR_OP_ROPE:
        if (x.rank != 4 || x.dim[3] % 2 != 0)
            fail(&c, "need x[B,T,H,D] with even D (got %s)%s", ts(&c, x), "");
        break;
    case IR_OP_SOFTMAX:
        if (!need_float(&c, 0))
            break;
        if (ir_attrs_int(&n->attrs, "causal", 0) && (x.rank < 2 || x.dim[x.rank - 1] != x.dim[x.rank - 2]))
            fail(&c, "causal softmax needs [...,T,T] (got %s)%s", ts(&c, x), "");
        break;
    case IR_OP_REPEAT_KV: {
        int64_t times = attr_int(&c, "times", &has);
        if (!has)
            break;
        if (x.rank != 4 || times < 1)
            fail(&c, "need x[B,Hkv,T,D] and times >= 1 (got %s)%s", ts(&c, x), "");
        else
            y.dim[1] *= times;
        break;
    }
    case IR_OP_RESHAPE: {
        const IrAttr *s = attr_ints(&c, "shape");
        if (!s)
            break;
        y = ir_type_make(x.dtype, s->n_ints, s->ints);
        if (ir_type_numel(y) != ir_type_numel(x))
            fail(&c, "cannot reshape %s to %s", ts(&c, x), ts(&c, y));
        break;
    }
    case IR_OP_TRANSPOSE: {
        const IrAttr *p = attr_ints(&c, "perm");
        if (!p)
            break;
        bool seen[IR_MAX_RANK] = {0};
        bool ok = p->n_ints == x.rank;
        for (int i = 0; ok && i < p->n_ints; i++) {
            if (p->ints[i] < 0 || p->ints[i] >= x.rank || seen[p->ints[i]])
                ok = false;
            else
                seen[p->ints[i]] = true;
        }
        if (!ok) {
            fail(&c, "perm is not a permutation of the axes of %s%s", ts(&c, x), "");
            break;
        }
        for (int i = 0; i < x.rank; i++)
            y.dim[i] = x.dim[p->ints[i]];
        break;
    }
    case IR_OP_SLICE: {
        int64_t axis = attr_int(&c, "axis", &has), start = 0, end = 0;
        if (has)
            start = attr_int(&c, "start", &has);
        if (has)
            end = attr_int(&c, "end", &has);
        if (!has)
            break;
        if (axis < 0 || axis >= x.rank || start < 0 || end > x.dim[axis] || start >= end) {
            fail(&c, "slice out of range of %s%s", ts(&c, x), "");
            break;
        }
        y.dim[axis] = end - start;
        break;
    }
    case IR_OP_CONCAT: {
        int64_t axis = attr_int(&c, "axis", &has);
        IrType b = n->in[1]->type;
        if (!has)
            break;
        bool ok = axis >= 0 && axis < x.rank && b.rank == x.rank && b.dtype == x.dtype;
        for (int i = 0; ok && i < x.rank; i++)
            if (i != axis && x.dim[i] != b.dim[i])
                ok = false;
        if (!ok) {
            fail(&c, "cannot concatenate %s and %s", ts(&c, x), ts(&c, b));
            break;
        }
        y.dim[axis] += b.dim[axis];
        break;
    }
    case IR_OP_SUM: {
        const IrAttr *ax = attr_ints(&c, "axes");
        if (!ax)
            break;
        bool drop[IR_MAX_RANK] = {0};
        for (int i = 0; i < ax->n_ints; i++) {
            if (ax->ints[i] < 0 || ax->ints[i] >= x.rank || drop[ax->ints[i]]) {
                fail(&c, "bad axes for %s%s", ts(&c, x), "");
                return false;
            }
            drop[ax->ints[i]] = true;
        }
        y.rank = 0;
        for (int i = 0; i < x.rank; i++)
            if (!drop[i])
                y.dim[y.rank++] = x.dim[i];
        break;
    }
    case IR_OP_DROPOUT:
        if (need_float(&c, 0))
            need_i32_scalar(&c, 1);
        break;
    case IR_OP_CROSS_ENTROPY: {
        IrType t = n->in[1]->type;
        if (x.rank != 2 || !is_float(x) || t.rank != 1 || t.dtype != IR_I32 || t.dim[0] != x.dim[0])
            fail(&c, "need logits[N,V] and i32 targets[N] (got %s, %s)", ts(&c, x), ts(&c, t));
        y = ir_type_scalar(IR_F32);
        break;
    }
    case IR_OP_ATTENTION:
        attention_operands(&c, x, n->in[1]->type, n->in[2]->type);
        break;
    case IR_OP_LINEAR_CROSS_ENTROPY:
        if (head_loss_operands(&c, x, n->in[1]->type, n->in[2]->type))
            y = ir_type_scalar(IR_F32);
        break;
    case IR_OP_EMBEDDING_GRAD: {
        int64_t vocab = attr_int(&c, "vocab", &has);
        if (!has)
            break;
        IrType idx = n->in[1]->type;
        if (idx.dtype != IR_I32 || x.rank != idx.rank + 1) {
            fail(&c, "need dy[...,C] and i32 idx[...] (got %s, %s)", ts(&c, x), ts(&c, idx));
            break;
        }
        int64_t dims[2] = {vocab, x.dim[x.rank - 1]};
        y = ir_type_make(x.dtype, 2, dims);
        break;
    }
    case IR_OP_SILU_GRAD:
    case IR_OP_GELU_GRAD:
    case IR_OP_RELU_GRAD:
    case IR_OP_SOFTMAX_GRAD:
        if (!ir_type_eq(x, n->in[1]->type))
            fail(&c, "shapes %s and %s differ", ts(&c, x), ts(&c, n->in[1]->type));
        break;
    case IR_OP_RMSNORM_GRAD_X:
    case IR_OP_LAYERNORM_GRAD_X:
    case IR_OP_RMSNORM_GRAD_W:
    case IR_OP_LAYERNORM_GRAD_W:
        if (!ir_type_eq(x, n->in[1]->type) || x.rank < 1) {
            fail(&c, "shapes %s and %s differ", ts(&c, x), ts(&c, n->in[1]->type));
            break;
        }
        if (n->op == IR_OP_RMSNORM_GRAD_W || n->op == IR_OP_LAYERNORM_GRAD_W)
            y = ir_type_make(x.dtype, 1, &x.dim[x.rank - 1]);
        break;
    case IR_OP_CROSS_ENTROPY_GRAD:
        if (need_f32_scalar(&c, 0))
            y = n->in[1]->type;
        break;
    case IR_OP_REDUCE_TO: {
        const IrAttr *s = attr_ints(&c, "shape");
        if (!s)
            break;
        y = ir_type_make(x.dtype, s->n_ints, s->ints);
        if (!broadcasts(x, y))
            fail(&c, "%s does not broadcast to %s", ts(&c, y), ts(&c, x));
        break;
    }
    case IR_OP_PAD: {
        const IrAttr *s = attr_ints(&c, "shape");
        int64_t axis = 0, start = 0;
        if (!s)
            break;
        axis = attr_int(&c, "axis", &has);
        if (has)
            start = attr_int(&c, "start", &has);
        if (!has)
            break;
        y = ir_type_make(x.dtype, s->n_ints, s->ints);
        bool ok = y.rank == x.rank && axis >= 0 && axis < x.rank && start >= 0 &&
                  start + x.dim[axis] <= y.dim[axis];
        for (int i = 0; ok && i < x.rank; i++)
            if (i != axis && x.dim[i] != y.dim[i])
                ok = false;
        if (!ok)
            fail(&c, "%s does not fit in %s", ts(&c, x), ts(&c, y));
        break;
    }
    case IR_OP_ATTENTION_GRAD: {
        IrType q = n->in[1]->type, lse = q;
        lse.rank = 3;
        if (!attention_operands(&c, q, n->in[2]->type, n->in[3]->type))
            break;
        if (!ir_type_eq(x, q) || !ir_type_eq(n->in[4]->type, q) || !ir_type_eq(n->in[5]->type, lse))
            fail(&c, "need dy and y of q's type %s and lse %s", ts(&c, q), ts(&c, lse));
        y = q;
        break;
    }
    case IR_OP_LINEAR_CROSS_ENTROPY_GRAD:
        if (need_f32_scalar(&c, 0) && head_loss_operands(&c, n->in[1]->type, n->in[2]->type, n->in[3]->type))
            y = n->in[1]->type;
        break;
    case IR_OP_GLOBAL_NORM:
        for (int i = 0; i < n->n_in; i++)
            if (!is_float(n->in[i]->type))
                fail(&c, "operand %s is not a float tensor%s", "", "");
        y = ir_type_scalar(IR_F32);
        break;
    case IR_OP_CLIP_SCALE:
        need_f32_scalar(&c, 0);
        y = ir_type_scalar(IR_F32);
        break;
    case IR_OP_ADAMW: {
        IrType p = n->gl[0]->type;
        if (!ir_type_eq(n->gl[1]->type, p) || !ir_type_eq(n->gl[2]->type, p) || !ir_type_eq(x, p))
            fail(&c, "param, moments and gradient must have one shape (param %s, grad %s)", ts(&c, p), ts(&c, x));
        if (need_f32_scalar(&c, 1) && need_f32_scalar(&c, 2))
            need_i32_scalar(&c, 3);
        break;
    }
    case IR_OP_LORA_MERGE: {
        IrType w = n->gl[0]->type, a = n->gl[1]->type, b = n->gl[2]->type;
        if (w.rank != 2 || a.rank != 2 || b.rank != 2 || a.dim[1] != w.dim[1] || b.dim[0] != w.dim[0] ||
            b.dim[1] != a.dim[0])
            fail(&c, "need w[O,I], a[R,I], b[O,R] (got w %s, a %s)", ts(&c, w), ts(&c, a));
        break;
    }
    case IR_OP_INIT_NORMAL:
    case IR_OP_INIT_UNIFORM:
        need_i32_scalar(&c, 0);
        break;
    case IR_OP_PRUNE:
        if (need_i32_scalar(&c, 0))
            need_f32_scalar(&c, 1);
        break;
    case IR_OP_INIT_CONST:
        break;
    case IR_OP_STORE:
        if (!ir_type_eq(x, n->gl[0]->type))
            fail(&c, "value %s does not match the global's type %s", ts(&c, x), ts(&c, n->gl[0]->type));
        break;
    case IR_OP_COUNT:
        fail(&c, "invalid op%s%s", "", "");
        break;
    }
    if (ir_op_info[n->op].flags & OPF_EFFECT)
        y.rank = -1;
    if (c.ok)
        n->type = y;
    return c.ok;
}
