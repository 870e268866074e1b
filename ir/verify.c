/* ir_verify: every invariant a pass may rely on, checked. Each violation is its own
 * diagnostic naming the function and node ("func @train: %12 (matmul): operand 1 (%14)
 * is defined after its use"), so a pass that breaks the IR is found at once. The list
 * of invariants is in docs/ir.md; keep the two in sync. Checks run outside in: structure
 * (lists, ids, operands), then types, dtypes and attributes, then the op's shape rule,
 * so a node only reaches the rule when it cannot make the rule read garbage. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* Tensors are at most 2^53 elements, so element counts stay exact in a double and
 * products of dimensions cannot overflow int64. */
#define MAX_NUMEL ((int64_t)1 << 53)

/* Where a node pointer sits in the module. */
typedef struct NodeSlot {
    const IrNode *n;
    int func, index;
} NodeSlot;

typedef struct V {
    const IrModule *m;
    Diags *d;
    Arena tmp; /* messages and maps; freed when ir_verify returns */
    bool ok;
    const IrFunc *f;
    NodeSlot *slots; /* open addressing by pointer, over every node of every function */
    int cap_slots;
    bool *valid; /* per index of f: structure and type are sound, users may run rules */
} V;

/* ---- reporting ------------------------------------------------------------------ */

static const char *tstr(V *v, IrType t)
{
    return ir_type_str(&v->tmp, t);
}

static const char *op_name(const IrNode *n)
{
    return (unsigned)n->op < IR_OP_COUNT ? ir_op_info[n->op].name : "?";
}

static bool is_effect(const IrNode *n)
{
    return (unsigned)n->op < IR_OP_COUNT && (ir_op_info[n->op].flags & OPF_EFFECT);
}

/* "%12 (matmul)", or "adamw (node 49)" for effect ops, which print without an id. */
static const char *node_desc(V *v, const IrNode *n)
{
    if (is_effect(n))
        return arena_sprintf(&v->tmp, "%s (node %d)", op_name(n), n->id);
    return arena_sprintf(&v->tmp, "%%%d (%s)", n->id, op_name(n));
}

static void module_err(V *v, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void module_err(V *v, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_error(v->d, loc, "%s", arena_vsprintf(&v->tmp, fmt, ap));
    va_end(ap);
    v->ok = false;
}

static void global_err(V *v, const IrGlobal *g, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void global_err(V *v, const IrGlobal *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_error(v->d, g->loc, "global @%s: %s", g->name ? g->name : "?", arena_vsprintf(&v->tmp, fmt, ap));
    va_end(ap);
    v->ok = false;
}

static void func_err(V *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void func_err(V *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_error(v->d, srcloc_none(), "func @%s: %s", v->f->name ? v->f->name : "?", arena_vsprintf(&v->tmp, fmt, ap));
    va_end(ap);
    v->ok = false;
}

static void node_err(V *v, const IrNode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void node_err(V *v, const IrNode *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_error(v->d, n->loc, "func @%s: %s: %s", v->f->name ? v->f->name : "?", node_desc(v, n),
               arena_vsprintf(&v->tmp, fmt, ap));
    va_end(ap);
    v->ok = false;
}

/* ---- the node map ---------------------------------------------------------------- */

static uint32_t hash_ptr(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

static NodeSlot *slot_find(const V *v, const IrNode *n)
{
    for (uint32_t h = hash_ptr(n);; h++) {
        NodeSlot *s = &v->slots[h & (uint32_t)(v->cap_slots - 1)];
        if (!s->n || s->n == n)
            return s;
    }
}

/* Records where every node sits; a node listed twice is reported here. */
static void build_map(V *v)
{
    const IrModule *m = v->m;
    int total = 0;
    for (int fi = 0; fi < m->n_funcs; fi++)
        if (m->funcs[fi] && m->funcs[fi]->n_nodes > 0)
            total += m->funcs[fi]->n_nodes;
    v->cap_slots = 16;
    while (v->cap_slots < 2 * total + 2)
        v->cap_slots *= 2;
    v->slots = ARENA_ARRAY(&v->tmp, NodeSlot, v->cap_slots);
    for (int fi = 0; fi < m->n_funcs; fi++) {
        const IrFunc *f = m->funcs[fi];
        if (!f || f->n_nodes <= 0 || !f->nodes)
            continue;
        v->f = f;
        for (int i = 0; i < f->n_nodes; i++) {
            const IrNode *n = f->nodes[i];
            if (!n)
                continue;
            NodeSlot *s = slot_find(v, n);
            if (!s->n) {
                *s = (NodeSlot){n, fi, i};
            } else if (s->func == fi) {
                node_err(v, n, "listed twice, at indexes %d and %d (single definition)", s->index, i);
            } else {
                node_err(v, n, "also listed in func @%s", m->funcs[s->func]->name ? m->funcs[s->func]->name : "?");
            }
        }
    }
}

/* ---- types and attributes --------------------------------------------------------- */

/* Why t is not a well-formed value type, or NULL. */
static const char *type_problem(V *v, IrType t)
{
    if ((unsigned)t.dtype > IR_I32)
        return arena_sprintf(&v->tmp, "has an invalid dtype (%d)", (int)t.dtype);
    if (t.rank < 0 || t.rank > IR_MAX_RANK)
        return arena_sprintf(&v->tmp, "has rank %d (must be 0..%d)", t.rank, IR_MAX_RANK);
    int64_t numel = 1;
    for (int i = 0; i < t.rank; i++) {
        if (t.dim[i] < 1)
            return arena_sprintf(&v->tmp, "has dimension %d = %lld (must be >= 1)", i, (long long)t.dim[i]);
        if (t.dim[i] > MAX_NUMEL / numel)
            return "has more than 2^53 elements";
        numel *= t.dim[i];
    }
    return NULL;
}

static bool is_float_type(IrType t)
{
    return t.dtype == IR_F32 || t.dtype == IR_BF16;
}

static const char *attr_kind_name(IrAttrKind k)
{
    switch (k) {
    case IR_ATTR_INT: return "an integer";
    case IR_ATTR_FLOAT: return "a float";
    case IR_ATTR_STR: return "a string";
    case IR_ATTR_INTS: return "an integer list";
    }
    return "an invalid attribute";
}

/* Why the attribute list is malformed, or NULL: keys sorted and unique, kinds valid. */
static const char *attrs_problem(V *v, const IrAttrs *as)
{
    if (as->n < 0 || (as->n > 0 && !as->items))
        return "attribute list is corrupt";
    for (int i = 0; i < as->n; i++) {
        const IrAttr *a = &as->items[i];
        if (!a->key)
            return arena_sprintf(&v->tmp, "attribute %d has no key", i);
        if (i > 0 && as->items[i - 1].key && strcmp(as->items[i - 1].key, a->key) >= 0)
            return arena_sprintf(&v->tmp, "attributes are not sorted by key with unique keys ('%s' after '%s')",
                                 a->key, as->items[i - 1].key);
        if ((unsigned)a->kind > IR_ATTR_INTS)
            return arena_sprintf(&v->tmp, "attribute '%s' has an invalid kind (%d)", a->key, (int)a->kind);
        if (a->kind == IR_ATTR_STR && !a->s)
            return arena_sprintf(&v->tmp, "string attribute '%s' is NULL", a->key);
        if (a->kind == IR_ATTR_INTS && (a->n_ints < 0 || (a->n_ints > 0 && !a->ints)))
            return arena_sprintf(&v->tmp, "integer-list attribute '%s' is corrupt", a->key);
    }
    return NULL;
}

/* ---- module-level checks ------------------------------------------------------------ */

static void check_globals(V *v)
{
    const IrModule *m = v->m;
    int cap = 16;
    while (cap < 2 * m->n_globals + 2)
        cap *= 2;
    const IrGlobal **seen = ARENA_ARRAY(&v->tmp, const IrGlobal *, cap);
    for (int i = 0; i < m->n_globals; i++) {
        const IrGlobal *g = m->globals[i];
        if (!g) {
            module_err(v, srcloc_none(), "module: global slot %d is NULL", i);
            continue;
        }
        if (!g->name || !*g->name) {
            module_err(v, g->loc, "module: global %d has no name", i);
            continue;
        }
        if (g->id != i)
            global_err(v, g, "id %d does not match its index %d in the module", g->id, i);
        uint32_t h = 2166136261u;
        for (const char *s = g->name; *s; s++)
            h = (h ^ (unsigned char)*s) * 16777619u;
        for (;; h++) {
            const IrGlobal **s = &seen[h & (uint32_t)(cap - 1)];
            if (!*s) {
                *s = g;
                break;
            }
            if (strcmp((*s)->name, g->name) == 0) {
                global_err(v, g, "name is not unique (also global %d)", (*s)->id);
                break;
            }
        }
        const char *why = type_problem(v, g->type);
        if (why)
            global_err(v, g, "type %s", why);
        if ((unsigned)g->cls >= IR_CLASS_COUNT)
            global_err(v, g, "invalid memory class %d", (int)g->cls);
        else if (g->cls == IR_CLASS_ACTIVATION || g->cls == IR_CLASS_SCRATCH)
            global_err(v, g, "memory class %s is for planned values, not globals", ir_class_name(g->cls));
        unsigned known = IR_G_TRAINABLE | IR_G_DECAY | IR_G_EXPORT | IR_G_ADAPTER | IR_G_MOMENT;
        if (g->flags & ~known)
            global_err(v, g, "unknown flag bits 0x%x", g->flags & ~known);
        /* trainable alone allows frozen: ReLoRA's W trains in the full-rank warm start */
        if ((g->flags & IR_G_TRAINABLE) && g->cls != IR_CLASS_PARAM && g->cls != IR_CLASS_FROZEN)
            global_err(v, g, "a trainable global must be in class param or frozen (got %s)", ir_class_name(g->cls));
        if ((g->flags & IR_G_ADAPTER) && g->cls != IR_CLASS_PARAM)
            global_err(v, g, "an adapter global must be in class param (got %s)", ir_class_name(g->cls));
        if ((g->flags & IR_G_MOMENT) && g->cls != IR_CLASS_OPTIM)
            global_err(v, g, "a moment global must be in class optim (got %s)", ir_class_name(g->cls));
        if ((why = attrs_problem(v, &g->attrs)))
            global_err(v, g, "%s", why);
    }
    const char *why = attrs_problem(v, &m->attrs);
    if (why)
        module_err(v, srcloc_none(), "module: %s", why);
}

/* ---- per-op rules ---------------------------------------------------------------------- */

typedef enum { K_INT, K_NUM, K_STR, K_INTS, K_BOOL } ReqKind;

/* The attribute, checked for kind; NULL (reported when required) when absent or wrong. */
static const IrAttr *want(V *v, const IrNode *n, const char *key, ReqKind k, bool required)
{
    const IrAttr *a = ir_attrs_get(&n->attrs, key);
    static const char *const kind_names[] = {"an integer", "a number", "a string", "an integer list",
                                             "0 or 1"};
    if (!a) {
        if (required)
            node_err(v, n, "missing attribute '%s' (%s)", key, kind_names[k]);
        return NULL;
    }
    bool ok = false;
    switch (k) {
    case K_INT: ok = a->kind == IR_ATTR_INT; break;
    case K_NUM: ok = a->kind == IR_ATTR_INT || a->kind == IR_ATTR_FLOAT; break;
    case K_STR: ok = a->kind == IR_ATTR_STR; break;
    case K_INTS: ok = a->kind == IR_ATTR_INTS; break;
    case K_BOOL: ok = a->kind == IR_ATTR_INT && (a->i == 0 || a->i == 1); break;
    }
    if (!ok) {
        if (k == K_BOOL && a->kind == IR_ATTR_INT)
            node_err(v, n, "attribute '%s' must be 0 or 1 (got %lld)", key, (long long)a->i);
        else
            node_err(v, n, "attribute '%s' must be %s (got %s)", key, kind_names[k], attr_kind_name(a->kind));
        return NULL;
    }
    return a;
}

static double num(const IrAttr *a)
{
    return a->kind == IR_ATTR_INT ? (double)a->i : a->f;
}

/* A number attribute in [lo, hi] (hi_open: [lo, hi)); false when reported. */
static bool want_num(V *v, const IrNode *n, const char *key, bool required, double lo, double hi, bool hi_open)
{
    const IrAttr *a = want(v, n, key, K_NUM, required);
    if (!a)
        return !required && !ir_attrs_get(&n->attrs, key);
    double x = num(a);
    if (!(x >= lo && (hi_open ? x < hi : x <= hi))) {
        if (isinf(hi) && lo == 0)
            node_err(v, n, "attribute '%s' must be >= 0 (got %g)", key, x);
        else if (isinf(hi))
            node_err(v, n, "attribute '%s' must be >= %g (got %g)", key, lo, x);
        else
            node_err(v, n, "attribute '%s' must be in [%g, %g%s (got %g)", key, lo, hi, hi_open ? ")" : "]", x);
        return false;
    }
    return true;
}

/* An integer attribute in [lo, hi]; false when reported. */
static bool want_int(V *v, const IrNode *n, const char *key, bool required, int64_t lo, int64_t hi)
{
    const IrAttr *a = want(v, n, key, K_INT, required);
    if (!a)
        return !required && !ir_attrs_get(&n->attrs, key);
    if (a->i < lo || a->i > hi) {
        if (hi == INT64_MAX)
            node_err(v, n, "attribute '%s' must be >= %lld (got %lld)", key, (long long)lo, (long long)a->i);
        else
            node_err(v, n, "attribute '%s' must be in [%lld, %lld] (got %lld)", key, (long long)lo, (long long)hi,
                     (long long)a->i);
        return false;
    }
    return true;
}

/* A shape attribute: 0..IR_MAX_RANK positive dims, at most 2^53 elements; numel out. */
static bool want_shape(V *v, const IrNode *n, const char *key, int64_t *numel)
{
    const IrAttr *a = want(v, n, key, K_INTS, true);
    if (!a)
        return false;
    if (a->n_ints > IR_MAX_RANK) {
        node_err(v, n, "attribute '%s' has %d entries (rank must be <= %d)", key, a->n_ints, IR_MAX_RANK);
        return false;
    }
    int64_t p = 1;
    for (int i = 0; i < a->n_ints; i++) {
        if (a->ints[i] < 1) {
            node_err(v, n, "attribute '%s' has dimension %d = %lld (must be >= 1)", key, i, (long long)a->ints[i]);
            return false;
        }
        if (a->ints[i] > MAX_NUMEL / p) {
            node_err(v, n, "attribute '%s' has more than 2^53 elements", key);
            return false;
        }
        p *= a->ints[i];
    }
    if (numel)
        *numel = p;
    return true;
}

static const char *one_of(const char *s, const char *const *opts, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, opts[i]) == 0)
            return opts[i];
    return NULL;
}

/* Attributes each op requires (docs/ir.md, "Ops"); false when one is missing or bad. */
static bool check_attrs(V *v, const IrNode *n)
{
    bool ok = true;
    IrType x = n->n_in > 0 ? n->in[0]->type : ir_type_scalar(IR_F32);
    switch (n->op) {
    case IR_OP_CONST: {
        const IrAttr *a = want(v, n, "value", K_NUM, true);
        ok = a != NULL;
        if (a && n->type.dtype == IR_I32 && num(a) != floor(num(a))) {
            node_err(v, n, "an i32 const needs an integer value (got %g)", num(a));
            ok = false;
        }
        break;
    }
    case IR_OP_MATMUL:
        ok = want(v, n, "trans_a", K_BOOL, true) != NULL;
        ok = want(v, n, "trans_b", K_BOOL, true) != NULL && ok;
        break;
    case IR_OP_SCALE:
        ok = want(v, n, "alpha", K_NUM, true) != NULL;
        break;
    case IR_OP_RMSNORM:
    case IR_OP_LAYERNORM:
    case IR_OP_RMSNORM_GRAD_X:
    case IR_OP_RMSNORM_GRAD_W:
    case IR_OP_LAYERNORM_GRAD_X:
    case IR_OP_LAYERNORM_GRAD_W:
        ok = want_num(v, n, "eps", true, 0, INFINITY, false);
        break;
    case IR_OP_ROPE:
        ok = want_num(v, n, "theta", true, 0, INFINITY, false);
        ok = (!ir_attrs_get(&n->attrs, "inverse") || want(v, n, "inverse", K_BOOL, false)) && ok;
        break;
    case IR_OP_SOFTMAX:
        ok = !ir_attrs_get(&n->attrs, "causal") || want(v, n, "causal", K_BOOL, false);
        break;
    case IR_OP_REPEAT_KV: {
        int64_t lim = x.rank == 4 ? MAX_NUMEL / ir_type_numel(x) : MAX_NUMEL;
        ok = want_int(v, n, "times", true, 1, lim > 0 ? lim : 1);
        break;
    }
    case IR_OP_RESHAPE: {
        int64_t ny = 0;
        ok = want_shape(v, n, "shape", &ny);
        if (ok && ny != ir_type_numel(x)) {
            const IrAttr *s = ir_attrs_get(&n->attrs, "shape");
            node_err(v, n, "reshape of %s to %s changes the element count (%lld to %lld)", tstr(v, x),
                     tstr(v, ir_type_make(x.dtype, s->n_ints, s->ints)), (long long)ir_type_numel(x),
                     (long long)ny);
            ok = false;
        }
        break;
    }
    case IR_OP_TRANSPOSE: {
        const IrAttr *p = want(v, n, "perm", K_INTS, true);
        ok = p != NULL;
        if (!p)
            break;
        bool seen[IR_MAX_RANK] = {0};
        ok = p->n_ints == x.rank;
        for (int i = 0; ok && i < p->n_ints; i++) {
            if (p->ints[i] < 0 || p->ints[i] >= x.rank || seen[p->ints[i]])
                ok = false;
            else
                seen[p->ints[i]] = true;
        }
        if (!ok) {
            char buf[96] = "";
            for (int i = 0, len = 0; i < p->n_ints && len < 80; i++)
                len += snprintf(buf + len, sizeof buf - (size_t)len, i ? ", %lld" : "%lld", (long long)p->ints[i]);
            node_err(v, n, "perm [%s] is not a permutation of the %d axes of %s", buf, x.rank, tstr(v, x));
        }
        break;
    }
    case IR_OP_SLICE:
        ok = want(v, n, "axis", K_INT, true) != NULL;
        ok = want(v, n, "start", K_INT, true) != NULL && ok;
        ok = want(v, n, "end", K_INT, true) != NULL && ok;
        break;
    case IR_OP_CONCAT:
        ok = want(v, n, "axis", K_INT, true) != NULL;
        break;
    case IR_OP_SUM:
        ok = want(v, n, "axes", K_INTS, true) != NULL;
        break;
    case IR_OP_DROPOUT:
        ok = want_num(v, n, "p", true, 0, 1, true);
        ok = want_int(v, n, "stream", true, 0, INT64_MAX) && ok;
        break;
    case IR_OP_EMBEDDING_GRAD:
        ok = want_int(v, n, "vocab", true, 1, MAX_NUMEL / (x.rank >= 1 ? x.dim[x.rank - 1] : 1));
        break;
    case IR_OP_REDUCE_TO:
        ok = want_shape(v, n, "shape", NULL);
        break;
    case IR_OP_PAD:
        ok = want_shape(v, n, "shape", NULL);
        ok = want(v, n, "axis", K_INT, true) != NULL && ok;
        ok = want(v, n, "start", K_INT, true) != NULL && ok;
        break;
    case IR_OP_ATTENTION:
    case IR_OP_ATTENTION_GRAD: {
        const IrAttr *a = want(v, n, "scale", K_NUM, true);
        ok = a != NULL;
        if (a && !(num(a) > 0 && isfinite(num(a)))) {
            node_err(v, n, "attribute 'scale' must be a finite number > 0 (got %g)", num(a));
            ok = false;
        }
        ok = want(v, n, "causal", K_BOOL, true) != NULL && ok;
        break;
    }
    case IR_OP_RESULT:
        ok = want_int(v, n, "index", true, 1, INT64_MAX);
        break;
    case IR_OP_CLIP_SCALE: {
        const IrAttr *a = want(v, n, "max_norm", K_NUM, true);
        ok = a != NULL;
        if (a && !(num(a) > 0)) {
            node_err(v, n, "attribute 'max_norm' must be > 0 (got %g)", num(a));
            ok = false;
        }
        break;
    }
    case IR_OP_ADAMW:
        ok = want_num(v, n, "beta1", true, 0, 1, true);
        ok = want_num(v, n, "beta2", true, 0, 1, true) && ok;
        ok = want_num(v, n, "eps", true, 0, INFINITY, false) && ok;
        ok = want_num(v, n, "weight_decay", true, 0, INFINITY, false) && ok;
        break;
    case IR_OP_LORA_MERGE:
        ok = want(v, n, "scale", K_NUM, true) != NULL;
        break;
    case IR_OP_INIT_NORMAL:
        ok = want_num(v, n, "std", true, 0, INFINITY, false);
        ok = want_int(v, n, "stream", true, 0, INT64_MAX) && ok;
        break;
    case IR_OP_INIT_UNIFORM:
        ok = want_num(v, n, "bound", true, 0, INFINITY, false);
        ok = want_int(v, n, "stream", true, 0, INT64_MAX) && ok;
        break;
    case IR_OP_INIT_CONST:
        ok = want(v, n, "value", K_NUM, true) != NULL;
        break;
    case IR_OP_PRUNE: {
        static const char *const modes[] = {"magnitude", "random"};
        const IrAttr *md = want(v, n, "mode", K_STR, true);
        if (!md)
            return false;
        if (!one_of(md->s, modes, 2)) {
            node_err(v, n, "attribute 'mode' must be \"magnitude\" or \"random\" (got \"%s\")", md->s);
            return false;
        }
        if (strcmp(md->s, "random") == 0)
            ok = want_int(v, n, "stream", true, 0, INT64_MAX) && ok;
        break;
    }
    default:
        break;
    }
    return ok;
}

/* Operand roles for the dtype rules: F float tensor, I i32 tensor, f float scalar,
 * i i32 scalar, '.' anything. One string per op, a letter per value operand;
 * variadic ops repeat their one letter. */
static const char *operand_roles(IrOpKind op)
{
    switch (op) {
    case IR_OP_EMBEDDING: return "FI";
    case IR_OP_MATMUL: return "FF";
    case IR_OP_SCALE:
    case IR_OP_SILU:
    case IR_OP_GELU:
    case IR_OP_RELU:
    case IR_OP_ROPE:
    case IR_OP_SOFTMAX: return "F";
    case IR_OP_RMSNORM: return "FF";
    case IR_OP_LAYERNORM: return "FFF";
    case IR_OP_DROPOUT: return "Fi";
    case IR_OP_CROSS_ENTROPY: return "FI";
    case IR_OP_EMBEDDING_GRAD: return "FI";
    case IR_OP_SILU_GRAD:
    case IR_OP_GELU_GRAD:
    case IR_OP_RELU_GRAD:
    case IR_OP_SOFTMAX_GRAD:
    case IR_OP_RMSNORM_GRAD_W:
    case IR_OP_LAYERNORM_GRAD_W: return "FF";
    case IR_OP_RMSNORM_GRAD_X:
    case IR_OP_LAYERNORM_GRAD_X: return "FFF";
    case IR_OP_CROSS_ENTROPY_GRAD: return "fFI";
    case IR_OP_ATTENTION: return "FFF";
    case IR_OP_ATTENTION_GRAD: return "FFFFFF";
    case IR_OP_LINEAR_CROSS_ENTROPY: return "FFI";
    case IR_OP_LINEAR_CROSS_ENTROPY_GRAD: return "fFFI";
    case IR_OP_GLOBAL_NORM: return "F";
    case IR_OP_CLIP_SCALE: return "f";
    case IR_OP_ADAMW: return "Fffi";
    case IR_OP_INIT_NORMAL:
    case IR_OP_INIT_UNIFORM: return "i";
    case IR_OP_PRUNE: return "if";
    default: return "";
    }
}

static bool check_dtypes(V *v, const IrNode *n)
{
    bool ok = true;
    const char *roles = operand_roles(n->op);
    size_t nr = strlen(roles);
    for (int i = 0; nr > 0 && i < n->n_in; i++) {
        char r = roles[(size_t)i < nr ? (size_t)i : nr - 1];
        IrType t = n->in[i]->type;
        bool good = true;
        const char *need = "";
        switch (r) {
        case 'F': good = is_float_type(t), need = "an f32 or bf16 tensor"; break;
        case 'I': good = t.dtype == IR_I32, need = "an i32 tensor (indices)"; break;
        case 'f': good = is_float_type(t) && t.rank == 0, need = "an f32 or bf16 scalar"; break;
        case 'i': good = t.dtype == IR_I32 && t.rank == 0, need = "an i32 scalar"; break;
        default: break;
        }
        if (!good) {
            node_err(v, n, "operand %d (%%%d) must be %s (got %s)", i, n->in[i]->id, need, tstr(v, t));
            ok = false;
        }
    }
    switch (n->op) {
    case IR_OP_ADD:
    case IR_OP_SUB:
    case IR_OP_MUL:
    case IR_OP_CONCAT:
        if (n->in[0]->type.dtype != n->in[1]->type.dtype) {
            node_err(v, n, "operand dtypes differ (%s and %s)", tstr(v, n->in[0]->type), tstr(v, n->in[1]->type));
            ok = false;
        }
        break;
    case IR_OP_INIT_NORMAL:
    case IR_OP_INIT_UNIFORM:
    case IR_OP_PRUNE:
    case IR_OP_ADAMW:
    case IR_OP_LORA_MERGE:
        for (int i = 0; i < n->n_gl; i++)
            if (!is_float_type(n->gl[i]->type)) {
                node_err(v, n, "global @%s must be f32 or bf16 (got %s)", n->gl[i]->name, tstr(v, n->gl[i]->type));
                ok = false;
            }
        break;
    default:
        break;
    }
    return ok;
}

/* adamw and lora_merge relate their globals; store writes a whole global. */
static bool check_effect_globals(V *v, const IrNode *n)
{
    bool ok = true;
    if (n->op == IR_OP_ADAMW) {
        const IrGlobal *p = n->gl[0];
        if (!(p->flags & IR_G_TRAINABLE)) {
            node_err(v, n, "@%s must be a trainable global (class %s, not trainable)", p->name, ir_class_name(p->cls));
            ok = false;
        }
        for (int k = 1; k < 3; k++) {
            const IrGlobal *g = n->gl[k];
            const char *which = k == 1 ? "first" : "second";
            if (g == p || (k == 2 && g == n->gl[1])) {
                node_err(v, n, "%s moment @%s is the same global as another operand", which, g->name);
                ok = false;
            } else if (g->cls != IR_CLASS_OPTIM) {
                node_err(v, n, "%s moment @%s must be in class optim (got %s)", which, g->name, ir_class_name(g->cls));
                ok = false;
            } else if (!ir_type_eq(g->type, p->type)) {
                node_err(v, n, "%s moment @%s has type %s but param @%s has %s", which, g->name, tstr(v, g->type),
                         p->name, tstr(v, p->type));
                ok = false;
            }
        }
        IrType gt = n->in[0]->type;
        bool same = gt.rank == p->type.rank;
        for (int i = 0; same && i < gt.rank; i++)
            same = gt.dim[i] == p->type.dim[i];
        if (!same) {
            node_err(v, n, "gradient %%%d has shape %s but param @%s has %s", n->in[0]->id, tstr(v, gt), p->name,
                     tstr(v, p->type));
            ok = false;
        }
    } else if (n->op == IR_OP_LORA_MERGE) {
        /* @w[O,I] += scale * @b[O,R] @ @a[R,I], operands in the order (w, a, b) */
        IrType w = n->gl[0]->type, a = n->gl[1]->type, b = n->gl[2]->type;
        if (n->gl[0] == n->gl[1] || n->gl[0] == n->gl[2] || n->gl[1] == n->gl[2]) {
            node_err(v, n, "@w, @a and @b must be three different globals");
            ok = false;
        } else if (w.rank != 2 || a.rank != 2 || b.rank != 2 || b.dim[0] != w.dim[0] || a.dim[1] != w.dim[1] ||
                   b.dim[1] != a.dim[0]) {
            node_err(v, n, "needs @w[O,I], @a[R,I], @b[O,R] (got @%s %s, @%s %s, @%s %s)", n->gl[0]->name,
                     tstr(v, w), n->gl[1]->name, tstr(v, a), n->gl[2]->name, tstr(v, b));
            ok = false;
        }
    } else if (n->op == IR_OP_STORE) {
        if (!ir_type_eq(n->in[0]->type, n->gl[0]->type)) {
            node_err(v, n, "stores %%%d of type %s into @%s of type %s", n->in[0]->id, tstr(v, n->in[0]->type),
                     n->gl[0]->name, tstr(v, n->gl[0]->type));
            ok = false;
        }
    }
    return ok;
}

/* Re-runs the op's shape rule on a copy and compares with the recorded type. */
static bool check_shape_rule(V *v, const IrNode *n)
{
    Diags scratch;
    diag_init(&scratch, &v->tmp);
    IrNode copy = *n;
    if (!ir_node_infer(&copy, &scratch)) {
        const char *msg = scratch.n > 0 ? scratch.list[0].msg : "failed";
        const char *prefix = arena_sprintf(&v->tmp, "in %s: ", op_name(n));
        if (strncmp(msg, prefix, strlen(prefix)) == 0)
            msg += strlen(prefix);
        node_err(v, n, "shape rule: %s", msg);
        return false;
    }
    if (!is_effect(n) && !ir_type_eq(copy.type, n->type)) {
        node_err(v, n, "type %s does not match the shape rule's %s", tstr(v, n->type), tstr(v, copy.type));
        return false;
    }
    return true;
}

/* Names print as a trailing "# name" comment: one line, no padding to lose. */
static bool name_printable(const char *s)
{
    if (!*s || *s == ' ' || *s == '\t')
        return false;
    size_t len = strlen(s);
    if (s[len - 1] == ' ' || s[len - 1] == '\t')
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* ---- functions --------------------------------------------------------------------------- */

/* Structure of node i: op, id, arity, operands, globals, own type. True when sound. */
static bool check_structure(V *v, const IrNode *n, int i, int fi, const IrNode **ids, int cap_ids)
{
    const IrFunc *f = v->f;
    if ((unsigned)n->op >= IR_OP_COUNT) {
        func_err(v, "node at index %d has an invalid op (%d)", i, (int)n->op);
        return false;
    }
    bool ok = true;
    if (n->id < 0 || n->id >= f->next_id) {
        node_err(v, n, "id %d is outside 0..next_id-1 (next_id = %d)", n->id, f->next_id);
        ok = false;
    } else {
        for (uint32_t h = (uint32_t)n->id * 2654435761u;; h++) {
            const IrNode **s = &ids[h & (uint32_t)(cap_ids - 1)];
            if (!*s) {
                *s = n;
                break;
            }
            if ((*s)->id == n->id) {
                node_err(v, n, "id %d is not unique (also %s)", n->id, node_desc(v, *s));
                ok = false;
                break;
            }
        }
    }
    const IrOpInfo *info = &ir_op_info[n->op];
    if (info->n_values >= 0 && n->n_in != info->n_values) {
        node_err(v, n, "has %d value operand%s; %s takes %d", n->n_in, n->n_in == 1 ? "" : "s", info->name,
                 info->n_values);
        return false;
    }
    if (info->n_values < 0 && n->n_in < 1) {
        node_err(v, n, "has %d value operands; %s takes at least 1", n->n_in, info->name);
        return false;
    }
    if (n->n_gl != info->n_globals) {
        node_err(v, n, "has %d global operand%s; %s takes %d", n->n_gl, n->n_gl == 1 ? "" : "s", info->name,
                 info->n_globals);
        return false;
    }
    if ((n->n_in > 0 && !n->in) || (n->n_gl > 0 && !n->gl)) {
        node_err(v, n, "operand array is NULL");
        return false;
    }
    for (int j = 0; j < n->n_in; j++) {
        const IrNode *x = n->in[j];
        if (!x) {
            node_err(v, n, "operand %d is NULL", j);
            ok = false;
            continue;
        }
        const NodeSlot *s = slot_find(v, x);
        if (!s->n) {
            node_err(v, n, "operand %d (%%%d) is not a node of any function", j, x->id);
            ok = false;
        } else if (s->func != fi) {
            node_err(v, n, "operand %d (%%%d) is defined in func @%s, not here", j, x->id,
                     v->m->funcs[s->func]->name ? v->m->funcs[s->func]->name : "?");
            ok = false;
        } else if (s->index == i) {
            node_err(v, n, "operand %d is the node itself", j);
            ok = false;
        } else if (s->index > i) {
            node_err(v, n, "operand %d (%%%d) is defined after its use", j, x->id);
            ok = false;
        } else if (is_effect(x)) {
            node_err(v, n, "operand %d uses %s, an effect op with no value", j, node_desc(v, x));
            ok = false;
        } else if (!v->valid[s->index]) {
            ok = false; /* already reported at its definition */
        }
    }
    for (int j = 0; j < n->n_gl; j++) {
        const IrGlobal *g = n->gl[j];
        if (!g) {
            node_err(v, n, "global operand %d is NULL", j);
            ok = false;
        } else if (g->id < 0 || g->id >= v->m->n_globals || v->m->globals[g->id] != g) {
            node_err(v, n, "global operand %d (@%s) is not a global of this module", j, g->name ? g->name : "?");
            ok = false;
        } else if (type_problem(v, g->type)) {
            ok = false; /* reported with the global */
        }
    }
    if (is_effect(n)) {
        if (n->type.rank != -1) {
            node_err(v, n, "effect op has result type %s (must have none: rank -1)", tstr(v, n->type));
            ok = false;
        }
    } else {
        const char *why = type_problem(v, n->type);
        if (why) {
            node_err(v, n, "result type %s", why);
            ok = false;
        }
    }
    const char *why = attrs_problem(v, &n->attrs);
    if (why) {
        node_err(v, n, "%s", why);
        ok = false;
    }
    if (n->name && !name_printable(n->name)) {
        node_err(v, n, "name \"%s\" must be non-empty, unpadded and free of control characters", n->name);
        ok = false;
    }
    if (n->group < -1) {
        node_err(v, n, "fusion group %d is invalid (-1 or a group id)", n->group);
        ok = false;
    }
    return ok;
}

static void check_func(V *v, int fi)
{
    const IrFunc *f = v->m->funcs[fi];
    v->f = f;
    if (f->n_nodes < 0 || (f->n_nodes > 0 && !f->nodes) || f->n_nodes > f->cap_nodes) {
        func_err(v, "node list is corrupt (n_nodes %d, cap_nodes %d)", f->n_nodes, f->cap_nodes);
        return;
    }
    v->valid = ARENA_ARRAY(&v->tmp, bool, f->n_nodes + 1);
    int cap_ids = 16;
    while (cap_ids < 2 * f->n_nodes + 2)
        cap_ids *= 2;
    const IrNode **ids = ARENA_ARRAY(&v->tmp, const IrNode *, cap_ids);
    for (int i = 0; i < f->n_nodes; i++) {
        const IrNode *n = f->nodes[i];
        if (!n) {
            func_err(v, "node at index %d is NULL", i);
            continue;
        }
        NodeSlot *s = slot_find(v, n);
        if (s->func != fi || s->index != i)
            continue; /* a duplicate entry, reported by build_map */
        if (!check_structure(v, n, i, fi, ids, cap_ids))
            continue;
        bool ok = check_dtypes(v, n);
        ok = check_attrs(v, n) && ok;
        if (ok && is_effect(n))
            ok = check_effect_globals(v, n);
        if (ok)
            ok = check_shape_rule(v, n);
        v->valid[i] = ok; /* users of a bad node are not checked against its type */
    }
    if (f->ret) {
        const NodeSlot *s = slot_find(v, f->ret);
        if (!s->n || s->func != fi)
            func_err(v, "ret %%%d is not a node of this function", f->ret->id);
        else if (is_effect(f->ret))
            func_err(v, "ret is %s, an effect op with no value", node_desc(v, f->ret));
    }
}

bool ir_verify(const IrModule *m, Diags *d)
{
    V v = {0};
    v.m = m;
    v.d = d;
    v.ok = true;
    arena_init(&v.tmp);
    if (m->arena) { /* the same allocation hook as the module (tests fail the N-th allocation) */
        v.tmp.alloc = m->arena->alloc;
        v.tmp.alloc_ctx = m->arena->alloc_ctx;
        v.tmp.oom_jmp = m->arena->oom_jmp;
    }
    if (m->n_globals < 0 || (m->n_globals > 0 && !m->globals) || m->n_funcs < 0 || (m->n_funcs > 0 && !m->funcs)) {
        module_err(&v, srcloc_none(), "module: global or function list is corrupt");
        arena_fini(&v.tmp);
        return false;
    }
    check_globals(&v);
    int cap = 16;
    while (cap < 2 * m->n_funcs + 2)
        cap *= 2;
    const char **names = ARENA_ARRAY(&v.tmp, const char *, m->n_funcs + 1);
    for (int fi = 0; fi < m->n_funcs; fi++) {
        const IrFunc *f = m->funcs[fi];
        if (!f) {
            module_err(&v, srcloc_none(), "module: function slot %d is NULL", fi);
            continue;
        }
        v.f = f;
        if (!f->name || !*f->name)
            func_err(&v, "function %d has no name", fi);
        for (int j = 0; f->name && j < fi; j++)
            if (names[j] && strcmp(names[j], f->name) == 0) {
                func_err(&v, "name is not unique (also function %d)", j);
                break;
            }
        names[fi] = f->name;
    }
    build_map(&v);
    for (int fi = 0; fi < m->n_funcs; fi++)
        if (m->funcs[fi])
            check_func(&v, fi);
    arena_fini(&v.tmp);
    return v.ok;
}
