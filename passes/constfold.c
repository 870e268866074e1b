/* constfold: evaluates ops whose operands are constants and drops identities.
 *   scale, add, sub, mul, relu, silu, gelu of `const` operands  -> const of the result type
 *   reshape of a const                                            -> const of the new type
 *   scale x {alpha = 1.0}, x * 1, 1 * x, x + 0, 0 + x, x - 0      -> x, when x has the result's type
 *   add(pad(a, start 0), pad(b, start = len(a))) tiling the axis  -> concat(a, b): the
 *     gradient of the fused LoRA GEMM's two slices, without zero-filling twice
 * (the last row only for float dtypes: i32 consts hold steps and indices). A folded node
 * becomes a `const` in place (same id, name and location); a dropped identity's uses move
 * to x. Nodes that only the folded ones used (their `const` operands) go too; other dead
 * code is dce's. `const` is uniform (one value broadcast to its type), so folding is a
 * scalar computation in f64, as the reference interpreter computes it.
 * Requires: nothing. Provides: part of PROP_CLEAN. Renumbers functions that changed.
 *   before:  %0 = const {value = 2.0} : f32[]            after:  %0 = const {value = 6.0} : f32[4]
 *            %1 = scale %0 {alpha = 3.0} : f32[]                 %1 = global @w : f32[4]
 *            %2 = reshape %1 {shape = [1]} : f32[1]              store %1, @w
 *            ...                                          (x * 1 with x = @w dropped) */
#include <math.h>

#include "clean.h"
#include "pm.h"

static bool is_float(IrType t) { return t.dtype == IR_F32 || t.dtype == IR_BF16; }

static bool is_const(const IrNode *n, double *v)
{
    if (n->op != IR_OP_CONST)
        return false;
    *v = ir_attrs_float(&n->attrs, "value", 0);
    return true;
}

static bool is_const_value(const IrNode *n, double want)
{
    double v;
    return is_const(n, &v) && v == want && is_float(n->type);
}

static double gelu(double x)
{
    return 0.5 * x * (1 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

/* The folded value of n when all its operands are float consts. */
static bool fold_value(const IrNode *n, double *out)
{
    double a = 0, b = 0;
    if (!is_float(n->type) || n->n_in < 1 || !is_const(n->in[0], &a) || !is_float(n->in[0]->type))
        return false;
    if (n->n_in > 1 && (!is_const(n->in[1], &b) || !is_float(n->in[1]->type)))
        return false;
    switch (n->op) {
    case IR_OP_SCALE: *out = ir_attrs_float(&n->attrs, "alpha", 1) * a; return true;
    case IR_OP_ADD: *out = a + b; return true;
    case IR_OP_SUB: *out = a - b; return true;
    case IR_OP_MUL: *out = a * b; return true;
    case IR_OP_RELU: *out = a > 0 ? a : 0; return true;
    case IR_OP_SILU: *out = a / (1 + exp(-a)); return true;
    case IR_OP_GELU: *out = gelu(a); return true;
    default: return false;
    }
}

/* The operand n reduces to (an identity), or NULL. */
static IrNode *identity_of(const IrNode *n)
{
    if (!is_float(n->type))
        return NULL;
    IrNode *x = NULL;
    switch (n->op) {
    case IR_OP_SCALE:
        if (ir_attrs_float(&n->attrs, "alpha", 0) == 1.0)
            x = n->in[0];
        break;
    case IR_OP_MUL:
        x = is_const_value(n->in[1], 1.0) ? n->in[0] : is_const_value(n->in[0], 1.0) ? n->in[1] : NULL;
        break;
    case IR_OP_ADD:
        x = is_const_value(n->in[1], 0.0) ? n->in[0] : is_const_value(n->in[0], 0.0) ? n->in[1] : NULL;
        break;
    case IR_OP_SUB:
        x = is_const_value(n->in[1], 0.0) ? n->in[0] : NULL;
        break;
    default: break;
    }
    return x && ir_type_eq(x->type, n->type) ? x : NULL;
}

static void make_const(Arena *a, IrNode *n, double v)
{
    n->op = IR_OP_CONST;
    n->in = NULL;
    n->n_in = 0;
    n->attrs = (IrAttrs){0};
    n->group = -1;
    ir_attrs_set_float(a, &n->attrs, "value", v);
}

/* Drops nodes that lost their last use to folding, and then their operands in turn. */
static void sweep(Arena *scratch, IrFunc *f, bool *touched, int bound)
{
    int *uses = ARENA_ARRAY(scratch, int, bound);
    bool *keep = ARENA_ARRAY(scratch, bool, bound);
    for (int i = 0; i < f->n_nodes; i++) {
        keep[f->nodes[i]->id] = true;
        for (int j = 0; j < f->nodes[i]->n_in; j++)
            uses[f->nodes[i]->in[j]->id]++;
    }
    if (f->ret)
        uses[f->ret->id]++;
    for (int i = f->n_nodes - 1; i >= 0; i--) {
        const IrNode *n = f->nodes[i];
        if (!touched[n->id] || uses[n->id] || (ir_op_info[n->op].flags & OPF_EFFECT))
            continue;
        keep[n->id] = false;
        for (int j = 0; j < n->n_in; j++) {
            uses[n->in[j]->id]--;
            touched[n->in[j]->id] = true;
        }
    }
    pass_func_remove(f, keep);
}

/* add(pad(a), pad(b)) where the two pads tile their axis exactly: *lo gets the operand
 * padded at 0, *hi the other. */
static bool pads_tile(const IrNode *n, IrNode **lo, IrNode **hi, int64_t *axis)
{
    if (n->op != IR_OP_ADD || n->in[0]->op != IR_OP_PAD || n->in[1]->op != IR_OP_PAD)
        return false;
    const IrNode *p = n->in[0], *q = n->in[1];
    int64_t ax = ir_attrs_int(&p->attrs, "axis", -1);
    if (ax < 0 || ax != ir_attrs_int(&q->attrs, "axis", -2) || !ir_type_eq(p->type, n->type) ||
        !ir_type_eq(q->type, n->type))
        return false;
    if (ir_attrs_int(&q->attrs, "start", -1) == 0) {
        const IrNode *t = p;
        p = q;
        q = t;
    }
    int64_t len = p->in[0]->type.dim[ax];
    if (ir_attrs_int(&p->attrs, "start", -1) != 0 || ir_attrs_int(&q->attrs, "start", -1) != len ||
        len + q->in[0]->type.dim[ax] != n->type.dim[ax])
        return false;
    *lo = p->in[0];
    *hi = q->in[0];
    *axis = ax;
    return true;
}

static int fold_func(Arena *scratch, Arena *ir_arena, IrFunc *f)
{
    int bound = pass_func_id_bound(f);
    IrNode **repl = ARENA_ARRAY(scratch, IrNode *, bound);
    bool *touched = ARENA_ARRAY(scratch, bool, bound);
    int changed = 0;
    for (int i = 0; i < f->n_nodes; i++) {
        IrNode *n = f->nodes[i];
        for (int j = 0; j < n->n_in; j++)
            while (repl[n->in[j]->id])
                n->in[j] = repl[n->in[j]->id];
        if (ir_op_info[n->op].flags & OPF_EFFECT)
            continue;
        double v;
        IrNode *x, *lo, *hi;
        int64_t axis;
        if (n->op == IR_OP_RESHAPE && is_const(n->in[0], &v)) {
            touched[n->in[0]->id] = true;
            make_const(ir_arena, n, v);
        } else if (fold_value(n, &v)) {
            for (int j = 0; j < n->n_in; j++)
                touched[n->in[j]->id] = true;
            make_const(ir_arena, n, v);
        } else if ((x = identity_of(n))) {
            repl[n->id] = x;
            touched[n->id] = true;
        } else if (pads_tile(n, &lo, &hi, &axis)) {
            touched[n->in[0]->id] = touched[n->in[1]->id] = true;
            IrNode **in = ARENA_ARRAY(ir_arena, IrNode *, 2);
            in[0] = lo;
            in[1] = hi;
            n->op = IR_OP_CONCAT;
            n->in = in;
            n->attrs = (IrAttrs){0};
            n->group = -1;
            ir_attrs_set_int(ir_arena, &n->attrs, "axis", axis);
        } else {
            continue;
        }
        changed++;
    }
    if (changed) {
        pass_func_replace(f, repl);
        sweep(scratch, f, touched, bound);
    }
    return changed;
}

static bool constfold_run(PassCtx *ctx)
{
    for (int i = 0; i < ctx->m->n_funcs; i++)
        fold_func(ctx->arena, ctx->m->arena, ctx->m->funcs[i]);
    return true;
}

const Pass pass_constfold = {
    .name = "constfold",
    .summary = "fold ops on constants; drop x*1, x+0, scale by 1; add of tiling pads -> concat",
    .run = constfold_run,
};
