/* Kernelizer: graph functions become sequences of loop kernels, GEMMs and runtime
 * calls over buffers (kernel.h). Each op has one lowering here; an elementwise fusion
 * group (IrNode.group) becomes one loop kernel that stores only the values used
 * outside the group. Reshapes and global reads alias their operand's buffer; a value
 * stored into a global is computed in the global's buffer (store forwarding); a
 * concatenated GEMM operand is read as two GEMMs over its parts, never copied.
 *
 * Index conventions: a value is dense row-major. An elementwise kernel over a value of
 * n elements with last axis C runs outer = n / C rows of inner = C columns; the flat
 * index is row * C + col, and a broadcast operand (trailing axes of the output) is read
 * at flat % numel(operand). */
#include "kernel.h"

#include <math.h>
#include <string.h>

typedef struct {
    Arena *a;
    Diags *d;
    KProgram *p;
    KFunc *kf;
    const IrFunc *f;
    int *node_buf;       /* node id -> buffer id (-1: not materialised) */
    int *n_uses;         /* node id -> number of operand uses in f */
    int *last_in_group;  /* group id -> index in f->nodes of its last member (-1: none) */
    int *group_size;
    int *memo;           /* node id -> instr in the kernel being built (elementwise) */
    bool *forwarded;     /* node id -> a STORE whose value was computed in the global's own buffer */
    bool *virtual_concat; /* node id -> a CONCAT read only by GEMMs, which read its parts instead */
    bool *virtual_slice;  /* node id -> a last-axis SLICE whose users read it in place */
    const IrNode **head_grad; /* node id of a linear_cross_entropy -> its gradient op, computed with it */
    bool *in_forward;         /* node id -> a linear_cross_entropy_grad computed by its forward's kernel */
    Kernel *k;
    bool ok;
} KB;

/* ---- buffers and kernels ---- */

static int buf_new(KB *kb, const char *name, IrDType dt, int64_t numel, IrMemClass cls)
{
    KProgram *p = kb->p;
    if (p->n_bufs == p->cap_bufs) {
        int cap = p->cap_bufs ? p->cap_bufs * 2 : 64;
        p->bufs = arena_grow(p->arena, p->bufs, (size_t)p->n_bufs, (size_t)cap, sizeof *p->bufs);
        p->cap_bufs = cap;
    }
    KBuf *b = &p->bufs[p->n_bufs];
    memset(b, 0, sizeof *b);
    b->id = p->n_bufs;
    b->name = name;
    b->dtype = dt;
    b->numel = numel > 0 ? numel : 1;
    b->cls = cls; /* offset: set by k_program_plan once all kernels exist */
    return p->n_bufs++;
}

static Kernel *kernel_new(KB *kb, KernelKind kind, const IrNode *n, const char *what)
{
    KFunc *kf = kb->kf;
    if (kf->n_kernels == kf->cap_kernels) {
        int cap = kf->cap_kernels ? kf->cap_kernels * 2 : 64;
        kf->kernels = arena_grow(kb->a, kf->kernels, (size_t)kf->n_kernels, (size_t)cap, sizeof *kf->kernels);
        kf->cap_kernels = cap;
    }
    Kernel *k = ARENA_NEW(kb->a, Kernel);
    k->id = kf->n_kernels;
    k->kind = kind;
    k->loc = n ? n->loc : srcloc_none();
    k->name = arena_sprintf(kb->a, "%s_k%d_%s", kf->name, k->id, what ? what : ir_op_info[n->op].name);
    k->inner = 1;
    k->n_phases = 1;
    kf->kernels[kf->n_kernels++] = k;
    kb->k = k;
    return k;
}

static Kernel *loop_new(KB *kb, const IrNode *n, const char *what, int64_t rows, int64_t inner, int n_phases)
{
    Kernel *k = kernel_new(kb, K_LOOP, n, what);
    k->n_outer = 1;
    k->outer[0] = rows > 0 ? rows : 1;
    k->inner = inner > 0 ? inner : 1;
    k->n_phases = n_phases;
    return k;
}

static int emit(KB *kb, KInstrOp op, int phase, int a, int b, int c)
{
    Kernel *k = kb->k;
    if (k->n_code == k->cap_code) {
        int cap = k->cap_code ? k->cap_code * 2 : 32;
        k->code = arena_grow(kb->a, k->code, (size_t)k->n_code, (size_t)cap, sizeof *k->code);
        k->cap_code = cap;
    }
    KInstr *in = &k->code[k->n_code];
    memset(in, 0, sizeof *in);
    in->op = op;
    in->phase = phase;
    in->a = a;
    in->b = b;
    in->c = c;
    in->buf = -1;
    return k->n_code++;
}

static int ic(KB *kb, int ph, int64_t v)
{
    int i = emit(kb, KI_ICONST, ph, -1, -1, -1);
    kb->k->code[i].ival = v;
    return i;
}

static int fc(KB *kb, int ph, double v)
{
    int i = emit(kb, KI_CONST, ph, -1, -1, -1);
    kb->k->code[i].fval = v;
    return i;
}

static int op2(KB *kb, KInstrOp op, int ph, int a, int b) { return emit(kb, op, ph, a, b, -1); }
static int op1(KB *kb, KInstrOp op, int ph, int a) { return emit(kb, op, ph, a, -1, -1); }

static int load(KB *kb, int ph, int buf, int off)
{
    int i = emit(kb, kb->p->bufs[buf].dtype == IR_I32 ? KI_LOAD_I : KI_LOAD, ph, off, -1, -1);
    kb->k->code[i].buf = buf;
    return i;
}

static void store(KB *kb, KInstrOp op, int ph, int buf, int off, int val)
{
    int i = emit(kb, op, ph, off, val, -1);
    kb->k->code[i].buf = buf;
}

static int outer_index(KB *kb)
{
    int i = emit(kb, KI_OUTER_INDEX, -1, -1, -1, -1);
    kb->k->code[i].axis = 0;
    return i;
}

/* row * inner + col, in phase ph (row_base = row * inner from phase -1). */
static int flat(KB *kb, int ph, int row_base)
{
    return op2(kb, KI_IADD, ph, row_base, op1(kb, KI_INNER_INDEX, ph, -1));
}

static int rng(KB *kb, KInstrOp op, int ph, int64_t stream, int counter)
{
    int i = op1(kb, op, ph, counter);
    kb->k->code[i].ival = stream;
    return i;
}

/* ---- values ---- */

static int64_t last_dim(IrType t) { return t.rank > 0 ? t.dim[t.rank - 1] : 1; }

static int node_index(KB *kb, const IrNode *n)
{
    int index = 0;
    while (index < kb->f->n_nodes && kb->f->nodes[index] != n)
        index++;
    return index;
}

/* n's buffer, created in the scratch pool, where values share bytes by liveness. */
static int value_buf(KB *kb, const IrNode *n)
{
    if (kb->node_buf[n->id] >= 0)
        return kb->node_buf[n->id];
    const char *name = arena_sprintf(kb->a, "%s.v%d", kb->f->name, n->id);
    int b = buf_new(kb, name, n->type.dtype, ir_type_numel(n->type), IR_CLASS_SCRATCH);
    kb->node_buf[n->id] = b;
    return b;
}

static int global_buf(KB *kb, const IrGlobal *g) { return kb->p->global_buf[g->id]; }

/* Operand buffer: must already be materialised. */
static int in_buf(KB *kb, const IrNode *n)
{
    int b = kb->node_buf[n->id];
    if (b < 0) {
        diag_error(kb->d, n->loc, "internal: value %%%d (%s) used before it was computed", n->id,
                   ir_op_info[n->op].name);
        kb->ok = false;
        return 0;
    }
    return b;
}

/* ---- elementwise expressions ---- */

static bool in_group(KB *kb, const IrNode *n, int group)
{
    return group >= 0 && n->group == group && (ir_op_info[n->op].flags & OPF_ELEMWISE);
}

static int elem(KB *kb, const IrNode *n, int idx, int64_t numel_out, int group);

/* Operand i of n at the output's flat index idx (broadcast by modulo). */
static int operand(KB *kb, const IrNode *n, int i, int idx, int64_t numel_out, int group)
{
    const IrNode *x = n->in[i];
    if (in_group(kb, x, group))
        return elem(kb, x, idx, numel_out, group);
    if (x->op == IR_OP_CONST)
        return x->type.dtype == IR_I32 ? ic(kb, 0, (int64_t)ir_attrs_float(&x->attrs, "value", 0))
                                       : fc(kb, 0, ir_attrs_float(&x->attrs, "value", 0));
    int64_t nx = ir_type_numel(x->type);
    if (kb->virtual_slice[x->id]) { /* x = src[..., start:start+W]: row * full + start + col */
        int64_t w = last_dim(x->type), full = last_dim(x->in[0]->type);
        int64_t start = ir_attrs_int(&x->attrs, "start", 0);
        int row = op2(kb, KI_IDIV, 0, idx, ic(kb, 0, w)), col = op2(kb, KI_IREM, 0, idx, ic(kb, 0, w));
        int off = op2(kb, KI_IADD, 0, op2(kb, KI_IMUL, 0, row, ic(kb, 0, full)), op2(kb, KI_IADD, 0, col, ic(kb, 0, start)));
        return load(kb, 0, in_buf(kb, x->in[0]), off);
    }
    int off = nx == numel_out ? idx : nx == 1 ? ic(kb, 0, 0) : op2(kb, KI_IREM, 0, idx, ic(kb, 0, nx));
    return load(kb, 0, in_buf(kb, x), off);
}

static int sigmoid(KB *kb, int x)
{
    return op2(kb, KI_DIV, 0, fc(kb, 0, 1.0), op2(kb, KI_ADD, 0, fc(kb, 0, 1.0), op1(kb, KI_EXP, 0, op1(kb, KI_NEG, 0, x))));
}

static int gelu_inner(KB *kb, int x) /* tanh(sqrt(2/pi) (x + 0.044715 x^3)) */
{
    int x3 = op2(kb, KI_MUL, 0, x, op2(kb, KI_MUL, 0, x, x));
    int u = op2(kb, KI_ADD, 0, x, op2(kb, KI_MUL, 0, fc(kb, 0, 0.044715), x3));
    return op1(kb, KI_TANH, 0, op2(kb, KI_MUL, 0, fc(kb, 0, sqrt(2.0 / M_PI)), u));
}

static int step_value(KB *kb, const IrNode *step_node)
{
    if (step_node->op == IR_OP_CONST)
        return ic(kb, 0, (int64_t)ir_attrs_float(&step_node->attrs, "value", 0));
    return load(kb, 0, in_buf(kb, step_node), ic(kb, 0, 0));
}

static int elem(KB *kb, const IrNode *n, int idx, int64_t numel_out, int group)
{
    if (kb->memo[n->id] >= 0)
        return kb->memo[n->id];
    int x = operand(kb, n, 0, idx, numel_out, group), r = -1;
    bool is_int = n->type.dtype == IR_I32;
    if (is_int && (n->op == IR_OP_ADD || n->op == IR_OP_SUB || n->op == IR_OP_MUL)) {
        static const KInstrOp iops[] = {[IR_OP_ADD] = KI_IADD, [IR_OP_SUB] = KI_ISUB, [IR_OP_MUL] = KI_IMUL};
        r = op2(kb, iops[n->op], 0, x, operand(kb, n, 1, idx, numel_out, group));
        kb->memo[n->id] = r;
        return r;
    }
    switch (n->op) {
    case IR_OP_ADD: r = op2(kb, KI_ADD, 0, x, operand(kb, n, 1, idx, numel_out, group)); break;
    case IR_OP_SUB: r = op2(kb, KI_SUB, 0, x, operand(kb, n, 1, idx, numel_out, group)); break;
    case IR_OP_MUL: r = op2(kb, KI_MUL, 0, x, operand(kb, n, 1, idx, numel_out, group)); break;
    case IR_OP_SCALE: r = op2(kb, KI_MUL, 0, x, fc(kb, 0, ir_attrs_float(&n->attrs, "alpha", 1))); break;
    case IR_OP_SILU: r = op2(kb, KI_MUL, 0, x, sigmoid(kb, x)); break;
    case IR_OP_RELU: r = op2(kb, KI_MAX, 0, x, fc(kb, 0, 0.0)); break;
    case IR_OP_GELU:
        r = op2(kb, KI_MUL, 0, op2(kb, KI_MUL, 0, fc(kb, 0, 0.5), x),
                op2(kb, KI_ADD, 0, fc(kb, 0, 1.0), gelu_inner(kb, x)));
        break;
    case IR_OP_SILU_GRAD: { /* dy * s (1 + x (1 - s)) */
        int xv = operand(kb, n, 1, idx, numel_out, group);
        int s = sigmoid(kb, xv);
        int t = op2(kb, KI_ADD, 0, fc(kb, 0, 1.0), op2(kb, KI_MUL, 0, xv, op2(kb, KI_SUB, 0, fc(kb, 0, 1.0), s)));
        r = op2(kb, KI_MUL, 0, x, op2(kb, KI_MUL, 0, s, t));
        break;
    }
    case IR_OP_RELU_GRAD: {
        int xv = operand(kb, n, 1, idx, numel_out, group);
        r = emit(kb, KI_SELECT, 0, op2(kb, KI_FLT, 0, fc(kb, 0, 0.0), xv), x, fc(kb, 0, 0.0));
        break;
    }
    case IR_OP_GELU_GRAD: { /* dy * (0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2)) */
        int xv = operand(kb, n, 1, idx, numel_out, group);
        int t = gelu_inner(kb, xv);
        double k = sqrt(2.0 / M_PI);
        int a = op2(kb, KI_MUL, 0, fc(kb, 0, 0.5), op2(kb, KI_ADD, 0, fc(kb, 0, 1.0), t));
        int sech2 = op2(kb, KI_SUB, 0, fc(kb, 0, 1.0), op2(kb, KI_MUL, 0, t, t));
        int poly = op2(kb, KI_ADD, 0, fc(kb, 0, 1.0), op2(kb, KI_MUL, 0, fc(kb, 0, 3 * 0.044715), op2(kb, KI_MUL, 0, xv, xv)));
        int b = op2(kb, KI_MUL, 0, op2(kb, KI_MUL, 0, fc(kb, 0, 0.5 * k), xv), op2(kb, KI_MUL, 0, sech2, poly));
        r = op2(kb, KI_MUL, 0, x, op2(kb, KI_ADD, 0, a, b));
        break;
    }
    case IR_OP_DROPOUT: {
        double p = ir_attrs_float(&n->attrs, "p", 0);
        int step = step_value(kb, n->in[1]);
        int counter = op2(kb, KI_IADD, 0, op2(kb, KI_IMUL, 0, step, ic(kb, 0, numel_out)), idx);
        int u = rng(kb, KI_RNG_UNIFORM, 0, ir_attrs_int(&n->attrs, "stream", 0), counter);
        int keep = op2(kb, KI_FLE, 0, fc(kb, 0, p), u);
        r = emit(kb, KI_SELECT, 0, keep, op2(kb, KI_MUL, 0, x, fc(kb, 0, 1.0 / (1.0 - p))), fc(kb, 0, 0.0));
        break;
    }
    default:
        diag_error(kb->d, n->loc, "internal: %s is not elementwise", ir_op_info[n->op].name);
        kb->ok = false;
        r = x;
    }
    kb->memo[n->id] = r;
    return r;
}

/* One loop kernel computing the group's members over the output shape of `last`;
 * stores every member used outside the group (or returned). */
static void elementwise_kernel(KB *kb, const IrNode *last, int group)
{
    int64_t numel = ir_type_numel(last->type), inner = last_dim(last->type);
    if (inner <= 0 || numel % inner)
        inner = numel;
    loop_new(kb, last, group >= 0 ? "fused" : NULL, numel / inner, inner, 1);
    int base = op2(kb, KI_IMUL, -1, outer_index(kb), ic(kb, -1, inner));
    int idx = flat(kb, 0, base);
    for (int i = 0; i < kb->f->n_nodes; i++) {
        const IrNode *n = kb->f->nodes[i];
        if (n != last && !(group >= 0 && n->group == group))
            continue;
        kb->memo[n->id] = -1;
    }
    for (int i = 0; i < kb->f->n_nodes; i++) {
        const IrNode *n = kb->f->nodes[i];
        if (n != last && !in_group(kb, n, group))
            continue;
        int v = elem(kb, n, idx, numel, group);
        bool outside = n == last || n == kb->f->ret;
        for (int j = i + 1; !outside && j < kb->f->n_nodes; j++) {
            const IrNode *u = kb->f->nodes[j];
            if (in_group(kb, u, group))
                continue;
            for (int q = 0; q < u->n_in; q++)
                if (u->in[q] == n)
                    outside = true;
        }
        if (outside)
            store(kb, KI_STORE, 0, value_buf(kb, n), idx, v);
    }
}

/* ---- copies with index maps ---- */

/* Decomposes the flat output index into axes of `dims` (rank r) and returns the
 * offset sum(idx[k] * stride[k] / div[k]) + base: the general gather for layout ops. */
static int gather_offset(KB *kb, int idx, int rank, const int64_t *dims, const int64_t *strides, int64_t base)
{
    int off = ic(kb, 0, base), rest = idx;
    for (int k = rank - 1; k >= 0; k--) {
        int q = op2(kb, KI_IREM, 0, rest, ic(kb, 0, dims[k]));
        if (strides[k])
            off = op2(kb, KI_IADD, 0, off, op2(kb, KI_IMUL, 0, q, ic(kb, 0, strides[k])));
        if (k > 0)
            rest = op2(kb, KI_IDIV, 0, rest, ic(kb, 0, dims[k]));
    }
    return off;
}

static void strides_of(IrType t, int64_t *s)
{
    int64_t acc = 1;
    for (int k = t.rank - 1; k >= 0; k--) {
        s[k] = acc;
        acc *= t.dim[k];
    }
}

/* out[flat over out_dims] = src[gather], optionally into a region of a larger output. */
static void copy_kernel(KB *kb, const IrNode *n, const char *what, int src, IrType out_t, const int64_t *src_strides,
                        int64_t src_base, int dst, const int64_t *dst_strides, int64_t dst_base)
{
    int64_t numel = ir_type_numel(out_t), inner = last_dim(out_t);
    if (inner <= 0 || numel % inner)
        inner = numel;
    loop_new(kb, n, what, numel / inner, inner, 1);
    int base = op2(kb, KI_IMUL, -1, outer_index(kb), ic(kb, -1, inner));
    int idx = flat(kb, 0, base);
    int soff = gather_offset(kb, idx, out_t.rank, out_t.dim, src_strides, src_base);
    int doff = dst_strides ? gather_offset(kb, idx, out_t.rank, out_t.dim, dst_strides, dst_base) : idx;
    store(kb, KI_STORE, 0, dst, doff, load(kb, 0, src, soff));
}

static void fill_kernel(KB *kb, const IrNode *n, int buf, double value)
{
    int64_t numel = kb->p->bufs[buf].numel;
    loop_new(kb, n, "fill", 1, numel, 1);
    int v = kb->p->bufs[buf].dtype == IR_I32 ? ic(kb, 0, (int64_t)value) : fc(kb, 0, value);
    store(kb, KI_STORE, 0, buf, op1(kb, KI_INNER_INDEX, 0, -1), v);
}

static void layout_op(KB *kb, const IrNode *n)
{
    const IrNode *x = n->in[0];
    int src = in_buf(kb, x), dst = value_buf(kb, n);
    int64_t xs[IR_MAX_RANK], ss[IR_MAX_RANK];
    strides_of(x->type, xs);
    switch (n->op) {
    case IR_OP_TRANSPOSE: {
        const IrAttr *perm = ir_attrs_get(&n->attrs, "perm");
        for (int k = 0; k < n->type.rank; k++)
            ss[k] = xs[perm->ints[k]];
        copy_kernel(kb, n, NULL, src, n->type, ss, 0, dst, NULL, 0);
        break;
    }
    case IR_OP_SLICE: {
        int axis = (int)ir_attrs_int(&n->attrs, "axis", 0);
        copy_kernel(kb, n, NULL, src, n->type, xs, ir_attrs_int(&n->attrs, "start", 0) * xs[axis], dst, NULL, 0);
        break;
    }
    case IR_OP_REPEAT_KV: { /* y[b,h,t,d] = x[b, h / times, t, d] */
        int64_t times = ir_attrs_int(&n->attrs, "times", 1);
        int64_t B = n->type.dim[0], H = n->type.dim[1], T = n->type.dim[2], D = n->type.dim[3];
        loop_new(kb, n, NULL, B * H * T, D, 1);
        int row = outer_index(kb);
        int t = op2(kb, KI_IREM, -1, row, ic(kb, -1, T));
        int h = op2(kb, KI_IREM, -1, op2(kb, KI_IDIV, -1, row, ic(kb, -1, T)), ic(kb, -1, H));
        int b = op2(kb, KI_IDIV, -1, row, ic(kb, -1, T * H));
        int srow = op2(kb, KI_IADD, -1,
                       op2(kb, KI_IMUL, -1, op2(kb, KI_IADD, -1, op2(kb, KI_IMUL, -1, b, ic(kb, -1, H / times)),
                                                op2(kb, KI_IDIV, -1, h, ic(kb, -1, times))),
                           ic(kb, -1, T)),
                       t);
        int sbase = op2(kb, KI_IMUL, -1, srow, ic(kb, -1, D));
        int dbase = op2(kb, KI_IMUL, -1, row, ic(kb, -1, D));
        int col = op1(kb, KI_INNER_INDEX, 0, -1);
        store(kb, KI_STORE, 0, dst, op2(kb, KI_IADD, 0, dbase, col),
              load(kb, 0, src, op2(kb, KI_IADD, 0, sbase, col)));
        break;
    }
    case IR_OP_CONCAT: {
        int axis = (int)ir_attrs_int(&n->attrs, "axis", 0);
        int64_t ds[IR_MAX_RANK];
        strides_of(n->type, ds);
        copy_kernel(kb, n, "concat_a", src, x->type, xs, 0, dst, ds, 0);
        const IrNode *y = n->in[1];
        int64_t ys[IR_MAX_RANK];
        strides_of(y->type, ys);
        copy_kernel(kb, n, "concat_b", in_buf(kb, y), y->type, ys, 0, dst, ds, x->type.dim[axis] * ds[axis]);
        break;
    }
    case IR_OP_PAD: {
        int axis = (int)ir_attrs_int(&n->attrs, "axis", 0);
        int64_t ds[IR_MAX_RANK];
        strides_of(n->type, ds);
        fill_kernel(kb, n, dst, 0.0);
        copy_kernel(kb, n, "pad", src, x->type, xs, 0, dst, ds, ir_attrs_int(&n->attrs, "start", 0) * ds[axis]);
        break;
    }
    default:
        break;
    }
}

/* ---- reductions ---- */

/* out[o] = sum over inner of x[offset(o, i)], with kept axes outer and summed axes inner. */
static void sum_kernel(KB *kb, const IrNode *n)
{
    const IrNode *x = n->in[0];
    int src = in_buf(kb, x), dst = value_buf(kb, n);
    int64_t xs[IR_MAX_RANK];
    strides_of(x->type, xs);
    bool drop[IR_MAX_RANK] = {0};
    int64_t kept_dims[IR_MAX_RANK], kept_str[IR_MAX_RANK], red_dims[IR_MAX_RANK], red_str[IR_MAX_RANK];
    int nk = 0, nr = 0;
    if (n->op == IR_OP_SUM) {
        const IrAttr *axes = ir_attrs_get(&n->attrs, "axes");
        for (int i = 0; i < axes->n_ints; i++)
            drop[axes->ints[i]] = true;
    } else { /* REDUCE_TO: sum the leading axes that are not in the target */
        for (int k = 0; k < x->type.rank - n->type.rank; k++)
            drop[k] = true;
    }
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < x->type.rank; k++) {
        if (drop[k]) {
            red_dims[nr] = x->type.dim[k];
            red_str[nr++] = xs[k];
            inner *= x->type.dim[k];
        } else {
            kept_dims[nk] = x->type.dim[k];
            kept_str[nk++] = xs[k];
            outer *= x->type.dim[k];
        }
    }
    loop_new(kb, n, NULL, outer, inner, 1);
    int row = outer_index(kb);
    /* base offset of the row from the kept axes (phase -1) */
    int base = ic(kb, -1, 0), rest = row;
    for (int k = nk - 1; k >= 0; k--) {
        int q = op2(kb, KI_IREM, -1, rest, ic(kb, -1, kept_dims[k]));
        base = op2(kb, KI_IADD, -1, base, op2(kb, KI_IMUL, -1, q, ic(kb, -1, kept_str[k])));
        rest = op2(kb, KI_IDIV, -1, rest, ic(kb, -1, kept_dims[k]));
    }
    int col = op1(kb, KI_INNER_INDEX, 0, -1);
    int off = op2(kb, KI_IADD, 0, base, gather_offset(kb, col, nr, red_dims, red_str, 0));
    int s = op1(kb, KI_REDUCE_SUM, 0, load(kb, 0, src, off));
    store(kb, KI_STORE, 1, dst, row, s);
}

/* ---- row kernels: norms, softmax, cross-entropy ---- */

typedef struct {
    int row, base; /* phase -1 */
} Row;

static Row row_begin(KB *kb, const IrNode *n, const char *what, int64_t rows, int64_t cols, int phases)
{
    loop_new(kb, n, what, rows, cols, phases);
    Row r;
    r.row = outer_index(kb);
    r.base = op2(kb, KI_IMUL, -1, r.row, ic(kb, -1, cols));
    return r;
}

static int ld_row(KB *kb, int ph, int buf, Row r) { return load(kb, ph, buf, flat(kb, ph, r.base)); }
static int ld_col(KB *kb, int ph, int buf) { return load(kb, ph, buf, op1(kb, KI_INNER_INDEX, ph, -1)); }

/* 1 / sqrt(sum / C + eps) in phase ph */
static int rstd_of(KB *kb, int ph, int sum, int64_t C, double eps)
{
    int ms = op2(kb, KI_ADD, ph, op2(kb, KI_MUL, ph, sum, fc(kb, ph, 1.0 / (double)C)), fc(kb, ph, eps));
    return op2(kb, KI_DIV, ph, fc(kb, ph, 1.0), op1(kb, KI_SQRT, ph, ms));
}

static void rmsnorm_kernel(KB *kb, const IrNode *n)
{
    const IrNode *x = n->in[0];
    int64_t C = last_dim(x->type), N = ir_type_numel(x->type) / C;
    double eps = ir_attrs_float(&n->attrs, "eps", 1e-5);
    int xb = in_buf(kb, x), out = value_buf(kb, n);
    Row r = row_begin(kb, n, NULL, N, C, 2);
    int x0 = ld_row(kb, 0, xb, r);
    int ss = op1(kb, KI_REDUCE_SUM, 0, op2(kb, KI_MUL, 0, x0, x0));
    int w = ld_col(kb, 1, in_buf(kb, n->in[1]));
    int rs = rstd_of(kb, 1, ss, C, eps);
    int idx = flat(kb, 1, r.base);
    store(kb, KI_STORE, 1, out, idx, op2(kb, KI_MUL, 1, op2(kb, KI_MUL, 1, load(kb, 1, xb, idx), rs), w));
}

static void rmsnorm_grad_x_kernel(KB *kb, const IrNode *n)
{
    const IrNode *dy = n->in[0], *x = n->in[1];
    int64_t C = last_dim(x->type), N = ir_type_numel(x->type) / C;
    double eps = ir_attrs_float(&n->attrs, "eps", 1e-5);
    int dyb = in_buf(kb, dy), xb = in_buf(kb, x), wb = in_buf(kb, n->in[2]), out = value_buf(kb, n);
    Row r = row_begin(kb, n, NULL, N, C, 2);
    int i0 = flat(kb, 0, r.base);
    int x0 = load(kb, 0, xb, i0);
    int ss = op1(kb, KI_REDUCE_SUM, 0, op2(kb, KI_MUL, 0, x0, x0));
    int g0 = op2(kb, KI_MUL, 0, load(kb, 0, dyb, i0), ld_col(kb, 0, wb));
    int sgx = op1(kb, KI_REDUCE_SUM, 0, op2(kb, KI_MUL, 0, g0, x0));
    int rs = rstd_of(kb, 1, ss, C, eps);
    int i1 = flat(kb, 1, r.base);
    int x1 = load(kb, 1, xb, i1);
    int g1 = op2(kb, KI_MUL, 1, load(kb, 1, dyb, i1), ld_col(kb, 1, wb));
    int r3 = op2(kb, KI_MUL, 1, rs, op2(kb, KI_MUL, 1, rs, rs));
    int corr = op2(kb, KI_MUL, 1, op2(kb, KI_MUL, 1, r3, fc(kb, 1, 1.0 / (double)C)), op2(kb, KI_MUL, 1, x1, sgx));
    store(kb, KI_STORE, 1, out, i1, op2(kb, KI_SUB, 1, op2(kb, KI_MUL, 1, rs, g1), corr));
}

/* Per-row statistics into scratch buffers: mean (layernorm only) and 1/std. */
static void row_stats_kernel(KB *kb, const IrNode *n, int xb, int64_t N, int64_t C, double eps, bool centered,
                             int mean_buf, int rstd_buf)
{
    Row r = row_begin(kb, n, "row_stats", N, C, centered ? 2 : 1);
    int x0 = ld_row(kb, 0, xb, r);
    if (!centered) {
        int ss = op1(kb, KI_REDUCE_SUM, 0, op2(kb, KI_MUL, 0, x0, x0));
        store(kb, KI_STORE, 1, rstd_buf, r.row, rstd_of(kb, 1, ss, C, eps));
        return;
    }
    int s = op1(kb, KI_REDUCE_SUM, 0, x0);
    int mean1 = op2(kb, KI_MUL, 1, s, fc(kb, 1, 1.0 / (double)C));
    int d1 = op2(kb, KI_SUB, 1, ld_row(kb, 1, xb, r), mean1);
    int var = op1(kb, KI_REDUCE_SUM, 1, op2(kb, KI_MUL, 1, d1, d1));
    int mean2 = op2(kb, KI_MUL, 2, s, fc(kb, 2, 1.0 / (double)C));
    store(kb, KI_STORE, 2, mean_buf, r.row, mean2);
    store(kb, KI_STORE, 2, rstd_buf, r.row, rstd_of(kb, 2, var, C, eps));
}

/* dw[c] = sum over rows of dy * xhat, xhat = (x - mean) * rstd (mean 0 for rmsnorm). */
static void norm_grad_w_kernel(KB *kb, const IrNode *n, bool centered)
{
    const IrNode *dy = n->in[0], *x = n->in[1];
    int64_t C = last_dim(x->type), N = ir_type_numel(x->type) / C;
    double eps = ir_attrs_float(&n->attrs, "eps", 1e-5);
    int xb = in_buf(kb, x), dyb = in_buf(kb, dy), out = value_buf(kb, n);
    const char *nm = arena_sprintf(kb->a, "%s.v%d.rstd", kb->f->name, n->id);
    int rstd = buf_new(kb, nm, IR_F32, N, IR_CLASS_SCRATCH);
    int mean = centered ? buf_new(kb, arena_sprintf(kb->a, "%s.v%d.mean", kb->f->name, n->id), IR_F32, N,
                                  IR_CLASS_SCRATCH)
                        : -1;
    row_stats_kernel(kb, n, xb, N, C, eps, centered, mean, rstd);
    loop_new(kb, n, NULL, C, N, 1);
    int c = outer_index(kb);
    int row = op1(kb, KI_INNER_INDEX, 0, -1);
    int off = op2(kb, KI_IADD, 0, op2(kb, KI_IMUL, 0, row, ic(kb, 0, C)), c);
    int xv = load(kb, 0, xb, off);
    if (centered)
        xv = op2(kb, KI_SUB, 0, xv, load(kb, 0, mean, row));
    int xhat = op2(kb, KI_MUL, 0, xv, load(kb, 0, rstd, row));
    int s = op1(kb, KI_REDUCE_SUM, 0, op2(kb, KI_MUL, 0, load(kb, 0, dyb, off), xhat));
    store(kb, KI_STORE, 1, out, c, s);
}

static void layernorm_kernel(KB *kb, const IrNode *n)
{
    const IrNode *x = n->in[0];
    int64_t C = last_dim(x->type), N = ir_type_numel(x->type) / C;
    double eps = ir_attrs_float(&n->attrs, "eps", 1e-5);
    int xb = in_buf(kb, x), out = value_buf(kb, n);
    Row r = row_begin(kb, n, NULL, N, C, 3);
    int s = op1(kb, KI_REDUCE_SUM, 0, ld_row(kb, 0, xb, r));
    int m1 = op2(kb, KI_MUL, 1, s, fc(kb, 1, 1.0 / (double)C));
    int d1 = op2(kb, KI_SUB, 1, ld_row(kb, 1, xb, r), m1);
    int var = op1(kb, KI_REDUCE_SUM, 1, op2(kb, KI_MUL, 1, d1, d1));
    int m2 = op2(kb, KI_MUL, 2, s, fc(kb, 2, 1.0 / (double)C));
    int rs = rstd_of(kb, 2, var, C, eps);
    int i2 = flat(kb, 2, r.base);
    int xhat = op2(kb, KI_MUL, 2, op2(kb, KI_SUB, 2, load(kb, 2, xb, i2), m2), rs);
    int y = op2(kb, KI_ADD, 2, op2(kb, KI_MUL, 2, xhat, ld_col(kb, 2, in_buf(kb, n->in[1]))),
                ld_col(kb, 2, in_buf(kb, n->in[2])));
    store(kb, KI_STORE, 2, out, i2, y);
}

/* dx = rstd * (g - mean(g) - xhat * mean(g xhat)), g = dy * w */
static void layernorm_grad_x_kernel(KB *kb, const IrNode *n)
{
    const IrNode *dy = n->in[0], *x = n->in[1];
    int64_t C = last_dim(x->type), N = ir_type_numel(x->type) / C;
    double eps = ir_attrs_float(&n->attrs, "eps", 1e-5), ic_ = 1.0 / (double)C;
    int dyb = in_buf(kb, dy), xb = in_buf(kb, x), wb = in_buf(kb, n->in[2]), out = value_buf(kb, n);
    Row r = row_begin(kb, n, NULL, N, C, 4);
    int s = op1(kb, KI_REDUCE_SUM, 0, ld_row(kb, 0, xb, r));
    int d1 = op2(kb, KI_SUB, 1, ld_row(kb, 1, xb, r), op2(kb, KI_MUL, 1, s, fc(kb, 1, ic_)));
    int var = op1(kb, KI_REDUCE_SUM, 1, op2(kb, KI_MUL, 1, d1, d1));
    /* phase 2: sums of g and g * xhat */
    int i2 = flat(kb, 2, r.base);
    int rs2 = rstd_of(kb, 2, var, C, eps);
    int xh2 = op2(kb, KI_MUL, 2, op2(kb, KI_SUB, 2, load(kb, 2, xb, i2), op2(kb, KI_MUL, 2, s, fc(kb, 2, ic_))), rs2);
    int g2 = op2(kb, KI_MUL, 2, load(kb, 2, dyb, i2), ld_col(kb, 2, wb));
    int sg = op1(kb, KI_REDUCE_SUM, 2, g2);
    int sgx = op1(kb, KI_REDUCE_SUM, 2, op2(kb, KI_MUL, 2, g2, xh2));
    /* phase 3: dx */
    int i3 = flat(kb, 3, r.base);
    int rs3 = rstd_of(kb, 3, var, C, eps);
    int xh3 = op2(kb, KI_MUL, 3, op2(kb, KI_SUB, 3, load(kb, 3, xb, i3), op2(kb, KI_MUL, 3, s, fc(kb, 3, ic_))), rs3);
    int g3 = op2(kb, KI_MUL, 3, load(kb, 3, dyb, i3), ld_col(kb, 3, wb));
    int inner = op2(kb, KI_SUB, 3, op2(kb, KI_SUB, 3, g3, op2(kb, KI_MUL, 3, sg, fc(kb, 3, ic_))),
                    op2(kb, KI_MUL, 3, xh3, op2(kb, KI_MUL, 3, sgx, fc(kb, 3, ic_))));
    store(kb, KI_STORE, 3, out, i3, op2(kb, KI_MUL, 3, rs3, inner));
}

/* masked(col) for a causal softmax row: col > query position (row % T) */
static int causal_mask(KB *kb, int ph, int qpos)
{
    return op2(kb, KI_ILT, ph, qpos, op1(kb, KI_INNER_INDEX, ph, -1));
}

static void softmax_kernel(KB *kb, const IrNode *n)
{
    const IrNode *x = n->in[0];
    int64_t C = last_dim(x->type), N = ir_type_numel(x->type) / C;
    bool causal = ir_attrs_int(&n->attrs, "causal", 0) != 0;
    int xb = in_buf(kb, x), out = value_buf(kb, n);
    Row r = row_begin(kb, n, NULL, N, C, 3);
    int q = op2(kb, KI_IREM, -1, r.row, ic(kb, -1, C));
    int x0 = ld_row(kb, 0, xb, r);
    if (causal)
        x0 = emit(kb, KI_SELECT, 0, causal_mask(kb, 0, q), fc(kb, 0, -INFINITY), x0);
    int mx = op1(kb, KI_REDUCE_MAX, 0, x0);
    int e1 = op1(kb, KI_EXP, 1, op2(kb, KI_SUB, 1, ld_row(kb, 1, xb, r), mx));
    if (causal)
        e1 = emit(kb, KI_SELECT, 1, causal_mask(kb, 1, q), fc(kb, 1, 0.0), e1);
    int se = op1(kb, KI_REDUCE_SUM, 1, e1);
    int i2 = flat(kb, 2, r.base);
    int e2 = op2(kb, KI_DIV, 2, op1(kb, KI_EXP, 2, op2(kb, KI_SUB, 2, load(kb, 2, xb, i2), mx)), se);
    if (causal)
        e2 = emit(kb, KI_SELECT, 2, causal_mask(kb, 2, q), fc(kb, 2, 0.0), e2);
    store(kb, KI_STORE, 2, out, i2, e2);
}

static void softmax_grad_kernel(KB *kb, const IrNode *n)
{
    const IrNode *dy = n->in[0], *y = n->in[1];
    int64_t C = last_dim(y->type), N = ir_type_numel(y->type) / C;
    int dyb = in_buf(kb, dy), yb = in_buf(kb, y), out = value_buf(kb, n);
    Row r = row_begin(kb, n, NULL, N, C, 2);
    int i0 = flat(kb, 0, r.base);
    int s = op1(kb, KI_REDUCE_SUM, 0, op2(kb, KI_MUL, 0, load(kb, 0, dyb, i0), load(kb, 0, yb, i0)));
    int i1 = flat(kb, 1, r.base);
    store(kb, KI_STORE, 1, out, i1,
          op2(kb, KI_MUL, 1, load(kb, 1, yb, i1), op2(kb, KI_SUB, 1, load(kb, 1, dyb, i1), s)));
}

/* loss = mean over rows of logsumexp(x) - x[target]: a row kernel writing per-row
 * losses, then a one-row kernel summing them. */
static void cross_entropy_kernel(KB *kb, const IrNode *n)
{
    const IrNode *x = n->in[0], *t = n->in[1];
    int64_t V = x->type.dim[1], N = x->type.dim[0];
    int xb = in_buf(kb, x), tb = in_buf(kb, t), out = value_buf(kb, n);
    int rows = buf_new(kb, arena_sprintf(kb->a, "%s.v%d.rows", kb->f->name, n->id), IR_F32, N, IR_CLASS_SCRATCH);
    Row r = row_begin(kb, n, NULL, N, V, 2);
    int mx = op1(kb, KI_REDUCE_MAX, 0, ld_row(kb, 0, xb, r));
    int se = op1(kb, KI_REDUCE_SUM, 1, op1(kb, KI_EXP, 1, op2(kb, KI_SUB, 1, ld_row(kb, 1, xb, r), mx)));
    int tgt = load(kb, 2, tb, r.row);
    int xt = load(kb, 2, xb, op2(kb, KI_IADD, 2, r.base, tgt));
    store(kb, KI_STORE, 2, rows, r.row, op2(kb, KI_SUB, 2, op2(kb, KI_ADD, 2, op1(kb, KI_LOG, 2, se), mx), xt));
    loop_new(kb, n, "mean", 1, N, 1);
    int s = op1(kb, KI_REDUCE_SUM, 0, ld_col(kb, 0, rows));
    store(kb, KI_STORE, 1, out, ic(kb, 1, 0), op2(kb, KI_MUL, 1, s, fc(kb, 1, 1.0 / (double)N)));
}

static void cross_entropy_grad_kernel(KB *kb, const IrNode *n)
{
    const IrNode *dl = n->in[0], *x = n->in[1], *t = n->in[2];
    int64_t V = x->type.dim[1], N = x->type.dim[0];
    int dlb = in_buf(kb, dl), xb = in_buf(kb, x), tb = in_buf(kb, t), out = value_buf(kb, n);
    Row r = row_begin(kb, n, NULL, N, V, 3);
    int scale = op2(kb, KI_MUL, -1, load(kb, -1, dlb, ic(kb, -1, 0)), fc(kb, -1, 1.0 / (double)N));
    int tgt = load(kb, -1, tb, r.row);
    int mx = op1(kb, KI_REDUCE_MAX, 0, ld_row(kb, 0, xb, r));
    int se = op1(kb, KI_REDUCE_SUM, 1, op1(kb, KI_EXP, 1, op2(kb, KI_SUB, 1, ld_row(kb, 1, xb, r), mx)));
    int i2 = flat(kb, 2, r.base);
    int p = op2(kb, KI_DIV, 2, op1(kb, KI_EXP, 2, op2(kb, KI_SUB, 2, load(kb, 2, xb, i2), mx)), se);
    int hot = emit(kb, KI_SELECT, 2, op2(kb, KI_IEQ, 2, op1(kb, KI_INNER_INDEX, 2, -1), tgt), fc(kb, 2, 1.0),
                   fc(kb, 2, 0.0));
    store(kb, KI_STORE, 2, out, i2, op2(kb, KI_MUL, 2, scale, op2(kb, KI_SUB, 2, p, hot)));
}

/* ---- gathers, rope ---- */

static void embedding_kernel(KB *kb, const IrNode *n)
{
    const IrNode *tab = n->in[0], *idx = n->in[1];
    int64_t C = tab->type.dim[1], N = ir_type_numel(idx->type);
    int tb = in_buf(kb, tab), ib = in_buf(kb, idx), out = value_buf(kb, n);
    Row r = row_begin(kb, n, NULL, N, C, 1);
    int tok = load(kb, -1, ib, r.row);
    int tbase = op2(kb, KI_IMUL, -1, tok, ic(kb, -1, C));
    int col = op1(kb, KI_INNER_INDEX, 0, -1);
    store(kb, KI_STORE, 0, out, op2(kb, KI_IADD, 0, r.base, col), load(kb, 0, tb, op2(kb, KI_IADD, 0, tbase, col)));
}

/* dtable[idx[n], c] += dy[n, c]: parallel over channels, serial over tokens, so no two
 * threads touch one address and the sum order is fixed. */
static void embedding_grad_kernel(KB *kb, const IrNode *n)
{
    const IrNode *dy = n->in[0], *idx = n->in[1];
    int64_t C = last_dim(dy->type), N = ir_type_numel(idx->type);
    int dyb = in_buf(kb, dy), ib = in_buf(kb, idx), out = value_buf(kb, n);
    fill_kernel(kb, n, out, 0.0);
    loop_new(kb, n, NULL, C, N, 1);
    int c = outer_index(kb);
    int tokpos = op1(kb, KI_INNER_INDEX, 0, -1);
    int tok = load(kb, 0, ib, tokpos);
    int src = op2(kb, KI_IADD, 0, op2(kb, KI_IMUL, 0, tokpos, ic(kb, 0, C)), c);
    int dst = op2(kb, KI_IADD, 0, op2(kb, KI_IMUL, 0, tok, ic(kb, 0, C)), c);
    store(kb, KI_STORE_ADD, 0, out, dst, load(kb, 0, dyb, src));
}

static void rope_kernel(KB *kb, const IrNode *n)
{
    const IrNode *x = n->in[0];
    int64_t T = x->type.dim[1], H = x->type.dim[2], D = x->type.dim[3], half = D / 2;
    double theta = ir_attrs_float(&n->attrs, "theta", 10000.0);
    bool inverse = ir_attrs_int(&n->attrs, "inverse", 0) != 0;
    int xb = in_buf(kb, x), out = value_buf(kb, n);
    Row r = row_begin(kb, n, NULL, ir_type_numel(x->type) / D, D, 1);
    int t = op1(kb, KI_ITOF, -1, op2(kb, KI_IREM, -1, op2(kb, KI_IDIV, -1, r.row, ic(kb, -1, H)), ic(kb, -1, T)));
    int col = op1(kb, KI_INNER_INDEX, 0, -1);
    int lo = op2(kb, KI_ILT, 0, col, ic(kb, 0, half));
    int k = op2(kb, KI_IREM, 0, col, ic(kb, 0, half));
    /* angle = t * theta^(-2k/D) = t * exp(k * (-2 ln(theta) / D)) */
    int freq = op1(kb, KI_EXP, 0, op2(kb, KI_MUL, 0, op1(kb, KI_ITOF, 0, k), fc(kb, 0, -2.0 * log(theta) / (double)D)));
    int ang = op2(kb, KI_MUL, 0, t, freq);
    int cs = op1(kb, KI_COS, 0, ang), sn = op1(kb, KI_SIN, 0, ang);
    if (inverse)
        sn = op1(kb, KI_NEG, 0, sn);
    int self = load(kb, 0, xb, op2(kb, KI_IADD, 0, r.base, col));
    int partner_col = emit(kb, KI_SELECT, 0, lo, op2(kb, KI_IADD, 0, col, ic(kb, 0, half)),
                           op2(kb, KI_ISUB, 0, col, ic(kb, 0, half)));
    int partner = load(kb, 0, xb, op2(kb, KI_IADD, 0, r.base, partner_col));
    /* lo: x cos - partner sin; hi: x cos + partner sin */
    int signed_sin = emit(kb, KI_SELECT, 0, lo, op1(kb, KI_NEG, 0, sn), sn);
    int y = op2(kb, KI_ADD, 0, op2(kb, KI_MUL, 0, self, cs), op2(kb, KI_MUL, 0, partner, signed_sin));
    store(kb, KI_STORE, 0, out, op2(kb, KI_IADD, 0, r.base, col), y);
}

/* ---- GEMM ---- */

/* matmul(a, concat(P, Q) along axis 0) as two GEMMs over the parts, so that the
 * concatenation (e.g. the fused LoRA weight [W; A]) is never copied:
 *   trans_b: y[M, O+R] = a [W;A]^T: columns [0,O) = a W^T, [O,O+R) = a A^T (ldc = O+R);
 *   else:    y[M, I] = a[M, O+R] [W;A] = a[:, 0:O] W + a[:, O:O+R] A (one buffer, beta 1). */
static void split_concat_gemm(KB *kb, const IrNode *n)
{
    const IrNode *a = n->in[0], *cat = n->in[1];
    bool tb = ir_attrs_int(&n->attrs, "trans_b", 0) != 0;
    int64_t rows = cat->in[0]->type.dim[0], rest = cat->in[1]->type.dim[0], cols = cat->type.dim[1];
    int64_t K = a->type.dim[a->type.rank - 1], M = ir_type_numel(a->type) / K;
    int out = value_buf(kb, n), abuf = kb->virtual_concat[a->id] ? -1 : in_buf(kb, a);
    for (int part = 0; part < 2; part++) {
        Kernel *k = kernel_new(kb, K_GEMM, n, part ? "gemm_b" : "gemm_a");
        KGemm *g = &k->gemm;
        int64_t len = part ? rest : rows, start = part ? rows : 0;
        g->b = in_buf(kb, cat->in[part]);
        g->a = abuf;
        g->c = out;
        g->m = M;
        g->batch = 1;
        g->alpha = 1.0;
        g->trans_b = tb;
        if (tb) {
            g->k = cols;
            g->n = len;
            g->lda = K;
            g->ldb = cols;
            g->ldc = rows + rest;
            g->off_c = start;
            g->beta = 0.0;
        } else {
            g->k = len;
            g->n = cols;
            g->lda = K;
            g->off_a = start;
            g->ldb = cols;
            g->ldc = cols;
            g->beta = part ? 1.0 : 0.0;
            if (kb->virtual_concat[a->id]) { /* a = [dy | dz] along its last axis: read the parts */
                g->a = in_buf(kb, a->in[part]);
                g->lda = len;
                g->off_a = 0;
            }
        }
    }
}

static void matmul_kernel(KB *kb, const IrNode *n)
{
    const IrNode *a = n->in[0], *b = n->in[1];
    if (kb->virtual_concat[b->id]) {
        split_concat_gemm(kb, n);
        return;
    }
    bool ta = ir_attrs_int(&n->attrs, "trans_a", 0) != 0, tb = ir_attrs_int(&n->attrs, "trans_b", 0) != 0;
    IrType at = a->type, bt = b->type;
    int64_t ar = at.dim[at.rank - 2], ac = at.dim[at.rank - 1];
    int64_t br = bt.dim[bt.rank - 2], bc = bt.dim[bt.rank - 1];
    int64_t batch = ir_type_numel(at) / (ar * ac);
    Kernel *k = kernel_new(kb, K_GEMM, n, NULL);
    KGemm *g = &k->gemm;
    g->trans_a = ta;
    g->trans_b = tb;
    g->m = ta ? ac : ar;
    g->k = ta ? ar : ac;
    g->n = tb ? br : bc;
    g->a = kb->virtual_slice[a->id] ? -1 : in_buf(kb, a);
    g->b = in_buf(kb, b);
    g->c = value_buf(kb, n);
    g->lda = ac;
    if (kb->virtual_slice[a->id]) { /* rows of a are columns [start, start+ac) of its source */
        g->a = in_buf(kb, a->in[0]);
        g->lda = last_dim(a->in[0]->type);
        g->off_a = ir_attrs_int(&a->attrs, "start", 0);
    }
    g->ldb = bc;
    g->ldc = g->n;
    g->alpha = 1.0;
    g->beta = 0.0;
    if (bt.rank == 2 && !ta) { /* shared weight: fold the batch into the rows */
        g->m *= batch;
        g->batch = 1;
    } else {
        g->batch = batch;
        g->stride_a = ar * ac;
        g->stride_b = bt.rank == 2 ? 0 : br * bc;
        g->stride_c = g->m * g->n;
    }
}

static void lora_merge_kernel(KB *kb, const IrNode *n)
{
    IrGlobal *w = n->gl[0], *a = n->gl[1], *b = n->gl[2];
    Kernel *k = kernel_new(kb, K_GEMM, n, NULL);
    KGemm *g = &k->gemm;
    g->m = w->type.dim[0];
    g->n = w->type.dim[1];
    g->k = a->type.dim[0];
    g->a = global_buf(kb, b); /* W[O,I] += s * B[O,R] @ A[R,I] */
    g->b = global_buf(kb, a);
    g->c = global_buf(kb, w);
    g->lda = g->k;
    g->ldb = g->n;
    g->ldc = g->n;
    g->batch = 1;
    g->alpha = ir_attrs_float(&n->attrs, "scale", 1.0);
    g->beta = 1.0;
}

/* ---- training ops ---- */

static void global_norm_kernels(KB *kb, const IrNode *n)
{
    int parts = buf_new(kb, arena_sprintf(kb->a, "%s.v%d.parts", kb->f->name, n->id), IR_F32, n->n_in,
                        IR_CLASS_SCRATCH);
    for (int i = 0; i < n->n_in; i++) {
        int xb = in_buf(kb, n->in[i]);
        loop_new(kb, n, "sumsq", 1, ir_type_numel(n->in[i]->type), 1);
        int x = ld_col(kb, 0, xb);
        int s = op1(kb, KI_REDUCE_SUM, 0, op2(kb, KI_MUL, 0, x, x));
        store(kb, KI_STORE, 1, parts, ic(kb, 1, i), s);
    }
    loop_new(kb, n, NULL, 1, n->n_in, 1);
    int s = op1(kb, KI_REDUCE_SUM, 0, ld_col(kb, 0, parts));
    store(kb, KI_STORE, 1, value_buf(kb, n), ic(kb, 1, 0), op1(kb, KI_SQRT, 1, s));
}

static void clip_scale_kernel(KB *kb, const IrNode *n)
{
    double mx = ir_attrs_float(&n->attrs, "max_norm", 1.0);
    loop_new(kb, n, NULL, 1, 1, 1);
    int norm = load(kb, 0, in_buf(kb, n->in[0]), ic(kb, 0, 0));
    int v = op2(kb, KI_MIN, 0, fc(kb, 0, 1.0), op2(kb, KI_DIV, 0, fc(kb, 0, mx), op2(kb, KI_ADD, 0, norm, fc(kb, 0, 1e-6))));
    store(kb, KI_STORE, 0, value_buf(kb, n), ic(kb, 0, 0), v);
}

static void adamw_kernel(KB *kb, const IrNode *n)
{
    double b1 = ir_attrs_float(&n->attrs, "beta1", 0.9), b2 = ir_attrs_float(&n->attrs, "beta2", 0.999);
    double eps = ir_attrs_float(&n->attrs, "eps", 1e-8), wd = ir_attrs_float(&n->attrs, "weight_decay", 0.0);
    int pb = global_buf(kb, n->gl[0]), mb = global_buf(kb, n->gl[1]), vb = global_buf(kb, n->gl[2]);
    int64_t numel = ir_type_numel(n->gl[0]->type), inner = last_dim(n->gl[0]->type);
    if (inner <= 0 || numel % inner)
        inner = numel;
    loop_new(kb, n, NULL, numel / inner, inner, 1);
    int lr = load(kb, -1, in_buf(kb, n->in[1]), ic(kb, -1, 0));
    int gs = load(kb, -1, in_buf(kb, n->in[2]), ic(kb, -1, 0));
    int t = op1(kb, KI_ITOF, -1, load(kb, -1, in_buf(kb, n->in[3]), ic(kb, -1, 0)));
    /* bias corrections 1 - beta^t = 1 - exp(t ln beta) */
    int c1 = op2(kb, KI_SUB, -1, fc(kb, -1, 1.0), op1(kb, KI_EXP, -1, op2(kb, KI_MUL, -1, t, fc(kb, -1, log(b1)))));
    int c2 = op2(kb, KI_SUB, -1, fc(kb, -1, 1.0), op1(kb, KI_EXP, -1, op2(kb, KI_MUL, -1, t, fc(kb, -1, log(b2)))));
    int base = op2(kb, KI_IMUL, -1, outer_index(kb), ic(kb, -1, inner));
    int i = flat(kb, 0, base);
    int g = op2(kb, KI_MUL, 0, load(kb, 0, in_buf(kb, n->in[0]), i), gs);
    int m = op2(kb, KI_ADD, 0, op2(kb, KI_MUL, 0, fc(kb, 0, b1), load(kb, 0, mb, i)), op2(kb, KI_MUL, 0, fc(kb, 0, 1 - b1), g));
    int v = op2(kb, KI_ADD, 0, op2(kb, KI_MUL, 0, fc(kb, 0, b2), load(kb, 0, vb, i)),
                op2(kb, KI_MUL, 0, fc(kb, 0, 1 - b2), op2(kb, KI_MUL, 0, g, g)));
    store(kb, KI_STORE, 0, mb, i, m);
    store(kb, KI_STORE, 0, vb, i, v);
    int p = load(kb, 0, pb, i);
    int mhat = op2(kb, KI_DIV, 0, m, c1), vhat = op2(kb, KI_DIV, 0, v, c2);
    int upd = op2(kb, KI_DIV, 0, mhat, op2(kb, KI_ADD, 0, op1(kb, KI_SQRT, 0, vhat), fc(kb, 0, eps)));
    int decayed = op2(kb, KI_SUB, 0, p, op2(kb, KI_MUL, 0, op2(kb, KI_MUL, 0, lr, fc(kb, 0, wd)), p));
    store(kb, KI_STORE, 0, pb, i, op2(kb, KI_SUB, 0, decayed, op2(kb, KI_MUL, 0, lr, upd)));
}

static void init_kernel(KB *kb, const IrNode *n)
{
    int gb = global_buf(kb, n->gl[0]);
    int64_t numel = ir_type_numel(n->gl[0]->type);
    if (n->op == IR_OP_INIT_CONST) {
        fill_kernel(kb, n, gb, ir_attrs_float(&n->attrs, "value", 0));
        return;
    }
    int64_t inner = last_dim(n->gl[0]->type);
    if (inner <= 0 || numel % inner)
        inner = numel;
    loop_new(kb, n, NULL, numel / inner, inner, 1);
    int base = op2(kb, KI_IMUL, -1, outer_index(kb), ic(kb, -1, inner));
    int i = flat(kb, 0, base);
    int step = step_value(kb, n->in[0]);
    int counter = op2(kb, KI_IADD, 0, op2(kb, KI_IMUL, 0, step, ic(kb, 0, numel)), i);
    int64_t stream = ir_attrs_int(&n->attrs, "stream", 0);
    int v;
    if (n->op == IR_OP_INIT_NORMAL) {
        v = op2(kb, KI_MUL, 0, fc(kb, 0, ir_attrs_float(&n->attrs, "std", 0.02)), rng(kb, KI_RNG_NORMAL, 0, stream, counter));
    } else {
        int u = rng(kb, KI_RNG_UNIFORM, 0, stream, counter);
        int two_u_m1 = op2(kb, KI_SUB, 0, op2(kb, KI_MUL, 0, fc(kb, 0, 2.0), u), fc(kb, 0, 1.0));
        v = op2(kb, KI_MUL, 0, fc(kb, 0, ir_attrs_float(&n->attrs, "bound", 1.0)), two_u_m1);
    }
    store(kb, KI_STORE, 0, gb, i, v);
}

static void call_kernel(KB *kb, const IrNode *n, KCallKind call, int b0, int b1, int b2)
{
    Kernel *k = kernel_new(kb, K_CALL, n, NULL);
    k->call = call;
    k->call_bufs[0] = b0;
    k->call_bufs[1] = b1;
    k->call_bufs[2] = b2;
    k->n_call_bufs = 3;
    ir_attrs_copy(kb->a, &k->call_attrs, &n->attrs);
}

/* A scalar operand (a step, a fraction) as a buffer for runtime calls: consts get one. */
static int scalar_buf(KB *kb, const IrNode *n)
{
    if (n->op != IR_OP_CONST)
        return in_buf(kb, n);
    int b = value_buf(kb, n);
    fill_kernel(kb, n, b, ir_attrs_float(&n->attrs, "value", 0));
    return b;
}

/* ---- fused ops ---- */

/* The buffer of result `index` of multi-result node n, which n's kernel writes: the
 * buffer of n's `result` node(s) of that index, or -1 when nothing reads it. */
static int result_buf(KB *kb, const IrNode *n, int index)
{
    int b = -1, at = node_index(kb, n);
    for (int i = at + 1; i < kb->f->n_nodes; i++) {
        const IrNode *r = kb->f->nodes[i];
        if (r->op != IR_OP_RESULT || r->in[0] != n || ir_attrs_int(&r->attrs, "index", 0) != index)
            continue;
        if (b < 0)
            b = value_buf(kb, r);
        else
            kb->node_buf[r->id] = b; /* a duplicate result node reads the same bytes */
    }
    return b;
}

/* Tiles of 64 queries against 64 keys: one score tile is 16 KiB and a thread's tiles and
 * row accumulators stay in its core's L2; halved above head dim 128 so they still do. */
static int64_t attention_tile(int64_t head_dim) { return head_dim <= 128 ? 64 : 32; }

static void attention_kernel(KB *kb, const IrNode *n, bool backward)
{
    int o = backward ? 1 : 0; /* q, k, v are operands o, o + 1, o + 2 */
    const IrNode *q = n->in[o], *k = n->in[o + 1];
    Kernel *kn = kernel_new(kb, K_ATTENTION, n, NULL);
    KAttention *a = &kn->attn;
    a->backward = backward;
    a->causal = ir_attrs_int(&n->attrs, "causal", 0) != 0;
    a->scale = ir_attrs_float(&n->attrs, "scale", 1.0);
    a->batch = q->type.dim[0];
    a->heads = q->type.dim[1];
    a->kv_heads = k->type.dim[1];
    a->seq = q->type.dim[2];
    a->head_dim = q->type.dim[3];
    a->tile_q = a->tile_k = attention_tile(a->head_dim);
    a->q = in_buf(kb, q);
    a->k = in_buf(kb, k);
    a->v = in_buf(kb, n->in[o + 2]);
    a->dy = a->dq = a->dk = a->dv = -1;
    if (!backward) {
        a->y = value_buf(kb, n);
        a->lse = result_buf(kb, n, 1);
        return;
    }
    a->dy = in_buf(kb, n->in[0]);
    a->y = in_buf(kb, n->in[4]);
    a->lse = in_buf(kb, n->in[5]);
    a->dq = value_buf(kb, n);
    a->dk = result_buf(kb, n, 1);
    a->dv = result_buf(kb, n, 2);
}

/* Rows per chunk as Liger-Kernel picks them: a chunk's logits take about as many elements
 * as x itself (N C / V rows), in whole blocks of 64 rows when that many fit. */
static int64_t head_loss_chunk(int64_t N, int64_t C, int64_t V)
{
    int64_t rows = N * C / V;
    if (rows >= 64)
        rows = rows / 64 * 64;
    return rows < 1 ? 1 : rows > N ? N : rows;
}

static bool has_users(KB *kb, const IrNode *n)
{
    if (n == kb->f->ret)
        return true;
    for (int i = 0; i < kb->f->n_nodes; i++)
        for (int k = 0; k < kb->f->nodes[i]->n_in; k++)
            if (kb->f->nodes[i]->in[k] == n && kb->f->nodes[i]->op != IR_OP_RESULT)
                return true;
    return false;
}

/* linear_cross_entropy (n the loss, g its gradient op computed in the same kernel, or
 * NULL) or linear_cross_entropy_grad (n the gradient op). */
static void head_loss_kernel(KB *kb, const IrNode *n, const IrNode *g)
{
    bool grad_only = n->op == IR_OP_LINEAR_CROSS_ENTROPY_GRAD;
    if (grad_only)
        g = n;
    int o = grad_only ? 1 : 0; /* x, w, targets are operands o, o + 1, o + 2 */
    const IrNode *x = n->in[o], *w = n->in[o + 1];
    Kernel *kn = kernel_new(kb, K_HEAD_LOSS, n, NULL);
    KHeadLoss *h = &kn->head;
    h->rows = x->type.dim[0];
    h->dim = x->type.dim[1];
    h->vocab = w->type.dim[0];
    h->chunk = head_loss_chunk(h->rows, h->dim, h->vocab);
    h->x = in_buf(kb, x);
    h->w = in_buf(kb, w);
    h->targets = in_buf(kb, n->in[o + 2]);
    h->loss = grad_only ? -1 : value_buf(kb, n);
    h->dx = g && has_users(kb, g) ? value_buf(kb, g) : -1;
    h->dw = g ? result_buf(kb, g, 1) : -1;
    h->dloss = grad_only ? in_buf(kb, g->in[0]) : -1;
    h->grad_scale = g && !grad_only ? ir_attrs_float(&g->in[0]->attrs, "value", 1.0) : 1.0;
    const char *nm = arena_sprintf(kb->a, "%s.v%d.chunk", kb->f->name, n->id);
    h->work = buf_new(kb, nm, IR_F32, h->chunk * h->vocab + h->chunk, IR_CLASS_SCRATCH);
    h->x16 = h->w16 = h->work16 = -1; /* the precision policy's, when bf16 */
}

/* A linear_cross_entropy_grad whose dloss is a constant (autodiff's seed: the loss is
 * what the function returns) and whose x, w and targets are those of a
 * linear_cross_entropy of the function is computed by the forward's kernel, as
 * Liger-Kernel does: each chunk's logits become their gradient right after the loss is
 * taken from them, so no GEMM recomputes them in the backward. */
static void find_head_grads(KB *kb, const IrFunc *f)
{
    for (int i = 0; i < f->n_nodes; i++) {
        const IrNode *g = f->nodes[i];
        if (g->op != IR_OP_LINEAR_CROSS_ENTROPY_GRAD || g->in[0]->op != IR_OP_CONST)
            continue;
        for (int j = 0; j < i; j++) {
            const IrNode *n = f->nodes[j];
            if (n->op == IR_OP_LINEAR_CROSS_ENTROPY && !kb->head_grad[n->id] && n->in[0] == g->in[1] &&
                n->in[1] == g->in[2] && n->in[2] == g->in[3]) {
                kb->head_grad[n->id] = g;
                kb->in_forward[g->id] = true;
                break;
            }
        }
    }
}

/* ---- driver ---- */

static void node_kernels(KB *kb, const IrNode *n)
{
    switch (n->op) {
    case IR_OP_GLOBAL:
        kb->node_buf[n->id] = global_buf(kb, n->gl[0]);
        break;
    case IR_OP_RESHAPE:
        kb->node_buf[n->id] = in_buf(kb, n->in[0]);
        break;
    case IR_OP_CONST:
        fill_kernel(kb, n, value_buf(kb, n), ir_attrs_float(&n->attrs, "value", 0));
        break;
    case IR_OP_RESULT:
        if (kb->node_buf[n->id] < 0) {
            diag_error(kb->d, n->loc, "internal: result %%%d of %%%d (%s) has no buffer", n->id, n->in[0]->id,
                       ir_op_info[n->in[0]->op].name);
            kb->ok = false;
        }
        break;
    case IR_OP_ATTENTION: attention_kernel(kb, n, false); break;
    case IR_OP_ATTENTION_GRAD: attention_kernel(kb, n, true); break;
    case IR_OP_LINEAR_CROSS_ENTROPY: head_loss_kernel(kb, n, kb->head_grad[n->id]); break;
    case IR_OP_LINEAR_CROSS_ENTROPY_GRAD:
        if (!kb->in_forward[n->id])
            head_loss_kernel(kb, n, NULL);
        break;
    case IR_OP_EMBEDDING: embedding_kernel(kb, n); break;
    case IR_OP_MATMUL: matmul_kernel(kb, n); break;
    case IR_OP_RMSNORM: rmsnorm_kernel(kb, n); break;
    case IR_OP_LAYERNORM: layernorm_kernel(kb, n); break;
    case IR_OP_ROPE: rope_kernel(kb, n); break;
    case IR_OP_SOFTMAX: softmax_kernel(kb, n); break;
    case IR_OP_SLICE:
        if (!kb->virtual_slice[n->id])
            layout_op(kb, n);
        break;
    case IR_OP_REPEAT_KV:
    case IR_OP_TRANSPOSE:
    case IR_OP_CONCAT:
        if (!kb->virtual_concat[n->id])
            layout_op(kb, n);
        break;
    case IR_OP_PAD: layout_op(kb, n); break;
    case IR_OP_SUM:
    case IR_OP_REDUCE_TO: sum_kernel(kb, n); break;
    case IR_OP_CROSS_ENTROPY: cross_entropy_kernel(kb, n); break;
    case IR_OP_EMBEDDING_GRAD: embedding_grad_kernel(kb, n); break;
    case IR_OP_RMSNORM_GRAD_X: rmsnorm_grad_x_kernel(kb, n); break;
    case IR_OP_RMSNORM_GRAD_W: norm_grad_w_kernel(kb, n, false); break;
    case IR_OP_LAYERNORM_GRAD_X: layernorm_grad_x_kernel(kb, n); break;
    case IR_OP_LAYERNORM_GRAD_W: norm_grad_w_kernel(kb, n, true); break;
    case IR_OP_SOFTMAX_GRAD: softmax_grad_kernel(kb, n); break;
    case IR_OP_CROSS_ENTROPY_GRAD: cross_entropy_grad_kernel(kb, n); break;
    case IR_OP_GLOBAL_NORM: global_norm_kernels(kb, n); break;
    case IR_OP_CLIP_SCALE: clip_scale_kernel(kb, n); break;
    case IR_OP_ADAMW: adamw_kernel(kb, n); break;
    case IR_OP_LORA_MERGE: lora_merge_kernel(kb, n); break;
    case IR_OP_INIT_NORMAL:
    case IR_OP_INIT_UNIFORM:
    case IR_OP_INIT_CONST: init_kernel(kb, n); break;
    case IR_OP_PRUNE: {
        const char *mode = ir_attrs_str(&n->attrs, "mode", "magnitude");
        call_kernel(kb, n, strcmp(mode, "random") == 0 ? KC_PRUNE_RANDOM : KC_PRUNE_MAGNITUDE,
                    global_buf(kb, n->gl[0]), scalar_buf(kb, n->in[0]), scalar_buf(kb, n->in[1]));
        break;
    }
    case IR_OP_STORE: {
        if (kb->forwarded[n->id])
            break;
        int src = in_buf(kb, n->in[0]), dst = global_buf(kb, n->gl[0]);
        IrType t = n->gl[0]->type;
        int64_t s[IR_MAX_RANK];
        strides_of(t, s);
        copy_kernel(kb, n, NULL, src, t, s, 0, dst, NULL, 0);
        break;
    }
    default:
        if (ir_op_info[n->op].flags & OPF_ELEMWISE) {
            elementwise_kernel(kb, n, -1);
            break;
        }
        diag_error(kb->d, n->loc, "the CPU and GPU backends cannot run op '%s' yet", ir_op_info[n->op].name);
        kb->ok = false;
    }
}

/* A group is kept fused only when every member is elementwise over one shape and no
 * node outside it uses a member before the group's last member runs. */
static bool group_is_fusible(KB *kb, int group, int last_index)
{
    const IrNode *last = kb->f->nodes[last_index];
    for (int i = 0; i <= last_index; i++) {
        const IrNode *n = kb->f->nodes[i];
        if (n->group == group) {
            if (!(ir_op_info[n->op].flags & OPF_ELEMWISE) || ir_type_numel(n->type) != ir_type_numel(last->type))
                return false;
            continue;
        }
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j]->group == group && n->in[j]->group >= 0)
                return false;
    }
    return true;
}

/* Whether r (a read of a global) is used only by x, and x is elementwise over as many
 * elements as the global: x then reads each element at its own index before storing
 * its own value there, so x may be computed in the global's buffer (gradient
 * accumulation: store(add(global @g, dg), @g)). */
static bool read_in_place(const IrFunc *f, const IrNode *r, const IrNode *x)
{
    if (!(ir_op_info[x->op].flags & OPF_ELEMWISE) || ir_type_numel(x->type) != ir_type_numel(r->type))
        return false;
    for (int i = 0; i < f->n_nodes; i++) {
        const IrNode *u = f->nodes[i];
        for (int k = 0; k < u->n_in; k++)
            if (u->in[k] == r && u != x)
                return false;
    }
    return true;
}

/* Store forwarding: `store %x, @g` where %x is computed by this function into a buffer
 * of its own becomes "compute %x in @g's buffer" (no copy), when nothing in the
 * function reads or writes @g before the store (but %x itself, elementwise at each
 * element's own index: read_in_place) and %x is stored only once. */
static void forward_stores(KB *kb, const IrFunc *f)
{
    for (int i = 0; i < f->n_nodes; i++) {
        const IrNode *st = f->nodes[i];
        if (st->op != IR_OP_STORE)
            continue;
        const IrNode *x = st->in[0];
        const IrGlobal *g = st->gl[0];
        if (x->op == IR_OP_GLOBAL || x->op == IR_OP_RESHAPE || x->op == IR_OP_CONST || x == f->ret ||
            kb->node_buf[x->id] >= 0 || !ir_type_eq(x->type, g->type))
            continue;
        bool clean = true;
        for (int j = 0; j < f->n_nodes && clean; j++) {
            const IrNode *o = f->nodes[j];
            if (o == st)
                continue;
            for (int k = 0; k < o->n_gl; k++)
                if (o->gl[k] == g && (o->op != IR_OP_GLOBAL || (j < i && !read_in_place(f, o, x))))
                    clean = false;
            if (o->op == IR_OP_STORE && o->in[0] == x)
                clean = false;
        }
        if (!clean)
            continue;
        kb->node_buf[x->id] = global_buf(kb, g);
        kb->forwarded[st->id] = true;
    }
}

/* Whether a value can stay virtual (never materialised): it has users, and `reads`
 * accepts every use (user u reading it as operand k). */
typedef bool (*UseOk)(const KB *kb, const IrNode *v, const IrNode *u, int k);

static bool all_uses(const KB *kb, const IrFunc *f, int at, UseOk reads)
{
    const IrNode *v = f->nodes[at];
    int users = 0;
    if (v == f->ret || v->type.dtype != IR_F32)
        return false;
    for (int j = at + 1; j < f->n_nodes; j++) {
        const IrNode *u = f->nodes[j];
        for (int k = 0; k < u->n_in; k++) {
            if (u->in[k] != v)
                continue;
            users++;
            if (!reads(kb, v, u, k))
                return false;
        }
    }
    return users > 0;
}

/* [W; A] as the 2-D right operand of a GEMM (not transposed on the left). */
static bool weight_gemm_use(const KB *kb, const IrNode *v, const IrNode *u, int k)
{
    return u->op == IR_OP_MATMUL && k == 1 && !ir_attrs_int(&u->attrs, "trans_a", 0);
}

/* [dy | dz] as the left operand of a GEMM over such a [W; A] split at the same place. */
static bool split_gemm_use(const KB *kb, const IrNode *v, const IrNode *u, int k)
{
    int64_t axis = v->type.rank - 1;
    const IrNode *w = u->n_in > 1 ? u->in[1] : NULL;
    return u->op == IR_OP_MATMUL && k == 0 && !ir_attrs_int(&u->attrs, "trans_a", 0) &&
           !ir_attrs_int(&u->attrs, "trans_b", 0) && w && kb->virtual_concat[w->id] &&
           w->in[0]->type.dim[0] == v->in[0]->type.dim[axis] && w->in[1]->type.dim[0] == v->in[1]->type.dim[axis];
}

/* A last-axis slice read at its own index by an elementwise op, or as the left operand
 * of a GEMM with a shared 2-D right operand (an lda and an offset). */
static bool in_place_use(const KB *kb, const IrNode *v, const IrNode *u, int k)
{
    bool elem = (ir_op_info[u->op].flags & OPF_ELEMWISE) && ir_type_numel(u->type) == ir_type_numel(v->type);
    bool gemm = u->op == IR_OP_MATMUL && k == 0 && !ir_attrs_int(&u->attrs, "trans_a", 0) &&
                u->in[1]->type.rank == 2 && !kb->virtual_concat[u->in[1]->id];
    return elem || gemm;
}

/* Concats and slices the kernels read through their parts or source, never copied:
 * a concat along axis 0 of two matrices read only as GEMM weights (the fused LoRA [W; A]);
 * a last-axis concat [dy | dz] read only as the left operand of such a GEMM (dx = dy W + dz A);
 * a last-axis slice read in place (in_place_use). */
static void find_virtual_values(KB *kb, const IrFunc *f)
{
    for (int i = 0; i < f->n_nodes; i++) {
        const IrNode *c = f->nodes[i];
        if (c->op == IR_OP_CONCAT && c->type.rank == 2 && ir_attrs_int(&c->attrs, "axis", -1) == 0)
            kb->virtual_concat[c->id] = all_uses(kb, f, i, weight_gemm_use);
    }
    for (int i = 0; i < f->n_nodes; i++) {
        const IrNode *c = f->nodes[i];
        if (c->op == IR_OP_CONCAT && c->type.rank >= 2 && ir_attrs_int(&c->attrs, "axis", -1) == c->type.rank - 1)
            kb->virtual_concat[c->id] = all_uses(kb, f, i, split_gemm_use);
    }
    for (int i = 0; i < f->n_nodes; i++) {
        const IrNode *sl = f->nodes[i];
        if (sl->op == IR_OP_SLICE && sl->type.rank >= 1 &&
            ir_attrs_int(&sl->attrs, "axis", -1) == sl->type.rank - 1 && !kb->virtual_slice[sl->in[0]->id] &&
            !kb->virtual_concat[sl->in[0]->id])
            kb->virtual_slice[sl->id] = all_uses(kb, f, i, in_place_use);
    }
}

static KFunc *build_func(KB *kb, const IrFunc *f)
{
    KFunc *kf = ARENA_NEW(kb->a, KFunc);
    kf->name = f->name;
    kf->ret_buf = -1;
    kb->kf = kf;
    kb->f = f;
    int max_id = f->next_id + 1;
    for (int i = 0; i < f->n_nodes; i++)
        if (f->nodes[i]->id >= max_id)
            max_id = f->nodes[i]->id + 1;
    kb->node_buf = ARENA_ARRAY(kb->a, int, max_id);
    kb->memo = ARENA_ARRAY(kb->a, int, max_id);
    for (int i = 0; i < max_id; i++)
        kb->node_buf[i] = kb->memo[i] = -1;
    int max_group = 0;
    for (int i = 0; i < f->n_nodes; i++)
        if (f->nodes[i]->group + 1 > max_group)
            max_group = f->nodes[i]->group + 1;
    kb->last_in_group = ARENA_ARRAY(kb->a, int, max_group + 1);
    for (int g = 0; g <= max_group; g++)
        kb->last_in_group[g] = -1;
    for (int i = 0; i < f->n_nodes; i++)
        if (f->nodes[i]->group >= 0)
            kb->last_in_group[f->nodes[i]->group] = i;
    bool *fused = ARENA_ARRAY(kb->a, bool, max_group + 1);
    for (int g = 0; g < max_group; g++)
        fused[g] = kb->last_in_group[g] >= 0 && group_is_fusible(kb, g, kb->last_in_group[g]);
    kb->forwarded = ARENA_ARRAY(kb->a, bool, max_id);
    kb->virtual_concat = ARENA_ARRAY(kb->a, bool, max_id);
    kb->virtual_slice = ARENA_ARRAY(kb->a, bool, max_id);
    kb->head_grad = ARENA_ARRAY(kb->a, const IrNode *, max_id);
    kb->in_forward = ARENA_ARRAY(kb->a, bool, max_id);
    forward_stores(kb, f);
    find_virtual_values(kb, f);
    find_head_grads(kb, f);

    for (int i = 0; i < f->n_nodes && kb->ok; i++) {
        const IrNode *n = f->nodes[i];
        int g = n->group;
        if (g >= 0 && fused[g]) {
            if (kb->last_in_group[g] == i)
                elementwise_kernel(kb, n, g);
            continue;
        }
        node_kernels(kb, n);
    }
    if (f->ret && kb->ok)
        kf->ret_buf = in_buf(kb, f->ret);
    return kf;
}

KProgram *k_program_build(Arena *a, Diags *d, const IrModule *m)
{
    KProgram *p = ARENA_NEW(a, KProgram);
    p->arena = a;
    p->m = m;
    KB kb;
    memset(&kb, 0, sizeof kb);
    kb.a = a;
    kb.d = d;
    kb.p = p;
    kb.ok = true;
    p->global_buf = ARENA_ARRAY(a, int, m->n_globals + 1);
    for (int i = 0; i < m->n_globals; i++) {
        const IrGlobal *g = m->globals[i];
        IrMemClass cls = g->cls;
        p->global_buf[i] = buf_new(&kb, g->name, g->type.dtype, ir_type_numel(g->type), cls);
        p->bufs[p->global_buf[i]].global = g;
    }
    p->funcs = ARENA_ARRAY(a, KFunc *, m->n_funcs + 1);
    for (int i = 0; i < m->n_funcs && kb.ok; i++)
        p->funcs[p->n_funcs++] = build_func(&kb, m->funcs[i]);
    if (!kb.ok)
        return NULL;
    k_program_precision(p);
    k_program_plan(p, NULL);
    return p;
}

KFunc *k_program_func(const KProgram *p, const char *name)
{
    for (int i = 0; i < p->n_funcs; i++)
        if (strcmp(p->funcs[i]->name, name) == 0)
            return p->funcs[i];
    return NULL;
}
