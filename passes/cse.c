/* cse: merges nodes that compute the same value: same op, operands, globals,
 * attributes, type and fusion group. The first one stays; later uses move to it and
 * the duplicates go. Effect ops never merge, and a `global` read never merges with one
 * on the other side of an effect that writes that global (docs/ir.md: a read sees the
 * effects listed before it). Names do not matter; the kept node keeps its own.
 * Requires: nothing. Provides: part of PROP_CLEAN. Renumbers functions that changed.
 *   before:  %0 = global @w : f32[4,4]                  after:  %0 = global @w : f32[4,4]
 *            %1 = global @x : f32[2,4]                          %1 = global @x : f32[2,4]
 *            %2 = matmul %1, %0 {...} : f32[2,4]                %2 = matmul %1, %0 {...} : f32[2,4]
 *            %3 = global @w : f32[4,4]                          %3 = add %2, %2 : f32[2,4]
 *            %4 = matmul %1, %3 {...} : f32[2,4]                store %3, @x
 *            %5 = add %2, %4 : f32[2,4]                         %5 = global @x : f32[2,4]
 *            store %5, @x                                       %6 = add %5, %1 : f32[2,4]
 *            %7 = global @x : f32[2,4]                          ret %6
 *            %8 = add %7, %1 : f32[2,4]
 *            ret %8
 * (%3 and %4 merge into %0 and %2; %7 reads @x after the store, so it stays.) */
#include <string.h>

#include "clean.h"
#include "pm.h"

typedef struct {
    const IrNode *n;
    const int *epoch; /* per global operand: writes of it seen before n */
    uint64_t hash;
} Key;

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0x100000001b3ull;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = mix(h, b[i]);
    return h;
}

static uint64_t hash_node(const IrNode *n, const int *epoch)
{
    uint64_t h = mix((uint64_t)n->op, (uint64_t)(n->group + 1));
    for (int i = 0; i < n->n_in; i++)
        h = mix(h, (uint64_t)n->in[i]->id);
    for (int i = 0; i < n->n_gl; i++)
        h = mix(mix(h, (uint64_t)n->gl[i]->id), (uint64_t)epoch[i]);
    h = mix(mix(h, (uint64_t)n->type.dtype), (uint64_t)n->type.rank);
    for (int i = 0; i < n->type.rank; i++)
        h = mix(h, (uint64_t)n->type.dim[i]);
    for (int i = 0; i < n->attrs.n; i++) {
        const IrAttr *at = &n->attrs.items[i];
        h = mix(hash_bytes(h, at->key, strlen(at->key)), (uint64_t)at->kind);
        h = mix(h, (uint64_t)at->i);
        h = hash_bytes(h, &at->f, sizeof at->f);
        if (at->s)
            h = hash_bytes(h, at->s, strlen(at->s));
        if (at->ints)
            h = hash_bytes(h, at->ints, sizeof *at->ints * (size_t)at->n_ints);
    }
    return h;
}

/* Attribute lists are kept sorted by key (ir_attrs_set), so equal lists match item by item. */
static bool attrs_eq(const IrAttrs *a, const IrAttrs *b)
{
    if (a->n != b->n)
        return false;
    for (int i = 0; i < a->n; i++) {
        const IrAttr *x = &a->items[i], *y = &b->items[i];
        if (strcmp(x->key, y->key) != 0 || x->kind != y->kind)
            return false;
        switch (x->kind) {
        case IR_ATTR_INT:
            if (x->i != y->i)
                return false;
            break;
        case IR_ATTR_FLOAT: /* bitwise: -0.0 and 0.0 differ, a NaN equals itself */
            if (memcmp(&x->f, &y->f, sizeof x->f) != 0)
                return false;
            break;
        case IR_ATTR_STR:
            if (strcmp(x->s ? x->s : "", y->s ? y->s : "") != 0)
                return false;
            break;
        case IR_ATTR_INTS:
            if (x->n_ints != y->n_ints ||
                (x->n_ints && memcmp(x->ints, y->ints, sizeof *x->ints * (size_t)x->n_ints) != 0))
                return false;
            break;
        }
    }
    return true;
}

static bool key_eq(const Key *a, const Key *b)
{
    const IrNode *x = a->n, *y = b->n;
    if (a->hash != b->hash || x->op != y->op || x->group != y->group || x->n_in != y->n_in || x->n_gl != y->n_gl ||
        !ir_type_eq(x->type, y->type))
        return false;
    for (int i = 0; i < x->n_in; i++)
        if (x->in[i] != y->in[i])
            return false;
    for (int i = 0; i < x->n_gl; i++)
        if (x->gl[i] != y->gl[i] || a->epoch[i] != b->epoch[i])
            return false;
    return attrs_eq(&x->attrs, &y->attrs);
}

static int cse_func(Arena *scratch, const IrModule *m, IrFunc *f)
{
    int bound = pass_func_id_bound(f);
    IrNode **repl = ARENA_ARRAY(scratch, IrNode *, bound);
    bool *keep = ARENA_ARRAY(scratch, bool, bound);
    int *writes = ARENA_ARRAY(scratch, int, m->n_globals + 1);
    int cap = 16;
    while (cap < 2 * f->n_nodes)
        cap *= 2;
    Key *table = ARENA_ARRAY(scratch, Key, cap);
    int merged = 0;
    for (int i = 0; i < f->n_nodes; i++) {
        IrNode *n = f->nodes[i];
        keep[n->id] = true;
        for (int j = 0; j < n->n_in; j++)
            while (repl[n->in[j]->id])
                n->in[j] = repl[n->in[j]->id];
        if (ir_op_info[n->op].flags & OPF_EFFECT) {
            for (int j = 0; j < n->n_gl; j++)
                writes[n->gl[j]->id]++;
            continue;
        }
        int *epoch = ARENA_ARRAY(scratch, int, n->n_gl + 1);
        for (int j = 0; j < n->n_gl; j++)
            epoch[j] = writes[n->gl[j]->id];
        Key k = {n, epoch, hash_node(n, epoch)};
        size_t slot = (size_t)(k.hash & (uint64_t)(cap - 1));
        while (table[slot].n && !key_eq(&table[slot], &k))
            slot = (slot + 1) & (size_t)(cap - 1);
        if (!table[slot].n) {
            table[slot] = k;
            continue;
        }
        repl[n->id] = (IrNode *)table[slot].n;
        keep[n->id] = false;
        merged++;
    }
    if (!merged)
        return 0;
    pass_func_replace(f, repl);
    pass_func_remove(f, keep);
    return merged;
}

static bool cse_run(PassCtx *ctx)
{
    for (int i = 0; i < ctx->m->n_funcs; i++)
        cse_func(ctx->arena, ctx->m, ctx->m->funcs[i]);
    return true;
}

const Pass pass_cse = {
    .name = "cse",
    .summary = "merge nodes computing the same value (never effects, never across a write)",
    .run = cse_run,
};
