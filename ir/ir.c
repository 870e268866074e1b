/* IR core: types, the op table, attributes, constructors, and the shape rules.
 * The builder functions are thin: they append a node, set its attributes, and run
 * the op's shape rule, which records a diagnostic at the node's location on error. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

const IrOpInfo ir_op_info[IR_OP_COUNT] = {
#define OP(id, name, nval, nglob, flags, doc) {name, nval, nglob, flags, doc},
#include "ops.def"
#undef OP
};

IrOpKind ir_op_lookup(const char *name)
{
    for (int i = 0; i < IR_OP_COUNT; i++)
        if (strcmp(ir_op_info[i].name, name) == 0)
            return (IrOpKind)i;
    return IR_OP_COUNT;
}

/* ---- types ---- */

IrType ir_type_make(IrDType dtype, int rank, const int64_t *dims)
{
    IrType t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.rank = rank;
    for (int i = 0; i < rank && i < IR_MAX_RANK; i++)
        t.dim[i] = dims[i];
    return t;
}

IrType ir_type_scalar(IrDType dtype)
{
    return ir_type_make(dtype, 0, NULL);
}

int64_t ir_type_numel(IrType t)
{
    int64_t n = 1;
    for (int i = 0; i < t.rank; i++)
        n *= t.dim[i];
    return t.rank < 0 ? 0 : n;
}

bool ir_type_eq(IrType a, IrType b)
{
    if (a.dtype != b.dtype || a.rank != b.rank)
        return false;
    for (int i = 0; i < a.rank; i++)
        if (a.dim[i] != b.dim[i])
            return false;
    return true;
}

const char *ir_dtype_name(IrDType d)
{
    switch (d) {
    case IR_F32: return "f32";
    case IR_BF16: return "bf16";
    case IR_I32: return "i32";
    }
    return "?";
}

int ir_dtype_bytes(IrDType d)
{
    return d == IR_BF16 ? 2 : 4;
}

double ir_dtype_store(IrDType d, double v)
{
    if (d != IR_BF16)
        return v;
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu))
        u = (u >> 16 | 0x40u) << 16; /* NaN stays a quiet NaN */
    else
        u = (u + 0x7FFFu + (u >> 16 & 1u)) >> 16 << 16;
    memcpy(&f, &u, sizeof f);
    return f;
}

const char *ir_type_str(Arena *a, IrType t)
{
    if (t.rank < 0)
        return "effect";
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%s[", ir_dtype_name(t.dtype));
    for (int i = 0; i < t.rank; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%lld", i ? "," : "", (long long)t.dim[i]);
    snprintf(buf + n, sizeof buf - (size_t)n, "]");
    return arena_strdup(a, buf);
}

const char *ir_class_name(IrMemClass c)
{
    static const char *const names[IR_CLASS_COUNT] = {
        "param", "frozen", "grad", "optim", "data", "state", "activation", "scratch",
    };
    return (unsigned)c < IR_CLASS_COUNT ? names[c] : "?";
}

/* ---- attributes ---- */

/* The index of key in the sorted list, or where it would be inserted (*found false). */
static int attr_index(const IrAttrs *as, const char *key, bool *found)
{
    int lo = 0, hi = as->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(as->items[mid].key, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static IrAttr *attr_slot(Arena *a, IrAttrs *as, const char *key)
{
    bool found;
    int lo = attr_index(as, key, &found);
    if (found)
        return &as->items[lo];
    if (as->n == as->cap) {
        int cap = as->cap ? as->cap * 2 : 4;
        as->items = arena_grow(a, as->items, (size_t)as->n, (size_t)cap, sizeof *as->items);
        as->cap = cap;
    }
    memmove(&as->items[lo + 1], &as->items[lo], sizeof *as->items * (size_t)(as->n - lo));
    as->n++;
    IrAttr *at = &as->items[lo];
    memset(at, 0, sizeof *at);
    at->key = arena_strdup(a, key);
    return at;
}

void ir_attrs_set_int(Arena *a, IrAttrs *as, const char *key, int64_t v)
{
    IrAttr *at = attr_slot(a, as, key);
    at->kind = IR_ATTR_INT;
    at->i = v;
}

void ir_attrs_set_float(Arena *a, IrAttrs *as, const char *key, double v)
{
    IrAttr *at = attr_slot(a, as, key);
    at->kind = IR_ATTR_FLOAT;
    at->f = v;
}

void ir_attrs_set_str(Arena *a, IrAttrs *as, const char *key, const char *v)
{
    IrAttr *at = attr_slot(a, as, key);
    at->kind = IR_ATTR_STR;
    at->s = arena_strdup(a, v);
}

void ir_attrs_set_ints(Arena *a, IrAttrs *as, const char *key, const int64_t *v, int n)
{
    IrAttr *at = attr_slot(a, as, key);
    at->kind = IR_ATTR_INTS;
    int64_t *copy = ARENA_ARRAY(a, int64_t, n > 0 ? n : 1);
    if (n > 0)
        memcpy(copy, v, sizeof *copy * (size_t)n);
    at->ints = copy;
    at->n_ints = n;
}

void ir_attrs_copy(Arena *a, IrAttrs *dst, const IrAttrs *src)
{
    for (int i = 0; i < src->n; i++) {
        const IrAttr *at = &src->items[i];
        switch (at->kind) {
        case IR_ATTR_INT: ir_attrs_set_int(a, dst, at->key, at->i); break;
        case IR_ATTR_FLOAT: ir_attrs_set_float(a, dst, at->key, at->f); break;
        case IR_ATTR_STR: ir_attrs_set_str(a, dst, at->key, at->s); break;
        case IR_ATTR_INTS: ir_attrs_set_ints(a, dst, at->key, at->ints, at->n_ints); break;
        }
    }
}

const IrAttr *ir_attrs_get(const IrAttrs *as, const char *key)
{
    bool found;
    int i = attr_index(as, key, &found);
    return found ? &as->items[i] : NULL;
}

int64_t ir_attrs_int(const IrAttrs *as, const char *key, int64_t dflt)
{
    const IrAttr *at = ir_attrs_get(as, key);
    return at && at->kind == IR_ATTR_INT ? at->i : dflt;
}

double ir_attrs_float(const IrAttrs *as, const char *key, double dflt)
{
    const IrAttr *at = ir_attrs_get(as, key);
    if (!at)
        return dflt;
    if (at->kind == IR_ATTR_FLOAT)
        return at->f;
    if (at->kind == IR_ATTR_INT)
        return (double)at->i;
    return dflt;
}

const char *ir_attrs_str(const IrAttrs *as, const char *key, const char *dflt)
{
    const IrAttr *at = ir_attrs_get(as, key);
    return at && at->kind == IR_ATTR_STR ? at->s : dflt;
}

/* ---- module, globals, functions, nodes ---- */

IrModule *ir_module_new(Arena *a, const char *name)
{
    IrModule *m = ARENA_NEW(a, IrModule);
    m->arena = a;
    m->name = arena_strdup(a, name);
    return m;
}

IrGlobal *ir_global_new(IrModule *m, const char *name, IrType type, IrMemClass cls, unsigned flags, SrcLoc loc)
{
    if (m->n_globals == m->cap_globals) {
        int cap = m->cap_globals ? m->cap_globals * 2 : 16;
        m->globals = arena_grow(m->arena, m->globals, (size_t)m->n_globals, (size_t)cap, sizeof *m->globals);
        m->cap_globals = cap;
    }
    IrGlobal *g = ARENA_NEW(m->arena, IrGlobal);
    g->id = m->n_globals;
    g->name = arena_strdup(m->arena, name);
    g->type = type;
    g->cls = cls;
    g->flags = flags;
    g->loc = loc;
    m->globals[m->n_globals++] = g;
    return g;
}

IrGlobal *ir_global_find(const IrModule *m, const char *name)
{
    for (int i = 0; i < m->n_globals; i++)
        if (strcmp(m->globals[i]->name, name) == 0)
            return m->globals[i];
    return NULL;
}

IrFunc *ir_func_new(IrModule *m, const char *name)
{
    if (m->n_funcs == m->cap_funcs) {
        int cap = m->cap_funcs ? m->cap_funcs * 2 : 8;
        m->funcs = arena_grow(m->arena, m->funcs, (size_t)m->n_funcs, (size_t)cap, sizeof *m->funcs);
        m->cap_funcs = cap;
    }
    IrFunc *f = ARENA_NEW(m->arena, IrFunc);
    f->name = arena_strdup(m->arena, name);
    m->funcs[m->n_funcs++] = f;
    return f;
}

IrFunc *ir_func_find(const IrModule *m, const char *name)
{
    for (int i = 0; i < m->n_funcs; i++)
        if (strcmp(m->funcs[i]->name, name) == 0)
            return m->funcs[i];
    return NULL;
}

IrNode *ir_node_new(IrModule *m, IrFunc *f, IrOpKind op, IrNode **in, int n_in, IrGlobal **gl, int n_gl, SrcLoc loc)
{
    if (f->n_nodes == f->cap_nodes) {
        int cap = f->cap_nodes ? f->cap_nodes * 2 : 64;
        f->nodes = arena_grow(m->arena, f->nodes, (size_t)f->n_nodes, (size_t)cap, sizeof *f->nodes);
        f->cap_nodes = cap;
    }
    IrNode *n = ARENA_NEW(m->arena, IrNode);
    n->id = f->next_id++;
    n->op = op;
    n->loc = loc;
    n->group = -1;
    n->type.rank = ir_op_info[op].flags & OPF_EFFECT ? -1 : 0;
    if (n_in > 0) {
        n->in = ARENA_ARRAY(m->arena, IrNode *, n_in);
        memcpy(n->in, in, sizeof *in * (size_t)n_in);
    }
    n->n_in = n_in;
    if (n_gl > 0) {
        n->gl = ARENA_ARRAY(m->arena, IrGlobal *, n_gl);
        memcpy(n->gl, gl, sizeof *gl * (size_t)n_gl);
    }
    n->n_gl = n_gl;
    f->nodes[f->n_nodes++] = n;
    return n;
}

IrNode *ir_node_copy(IrModule *m, IrFunc *f, const IrNode *n, IrNode *const *in)
{
    IrNode *c = ir_node_new(m, f, n->op, (IrNode **)in, n->n_in, n->gl, n->n_gl, n->loc);
    c->type = n->type;
    c->name = n->name;
    c->group = n->group;
    ir_attrs_copy(m->arena, &c->attrs, &n->attrs);
    return c;
}

IrNode *ir_node_copy_mapped(IrModule *m, IrFunc *f, const IrNode *n, IrNode *const *map)
{
    IrNode *in[8];
    IrNode **ops = n->n_in <= 8 ? in : ARENA_ARRAY(m->arena, IrNode *, n->n_in);
    for (int k = 0; k < n->n_in; k++)
        ops[k] = map[n->in[k]->id];
    return ir_node_copy(m, f, n, ops);
}

void ir_func_renumber(IrFunc *f)
{
    for (int i = 0; i < f->n_nodes; i++)
        f->nodes[i]->id = i;
    f->next_id = f->n_nodes;
}
