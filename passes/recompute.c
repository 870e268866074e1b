/* recompute: activation recomputation (PyTorch's activation checkpointing, Megatron's
 * "selective" and "full" recomputation) in the train functions. A forward value the
 * backward reads is kept in memory from the forward to its use; recomputing it in the
 * backward, from values kept anyway, trades FLOPs for that memory.
 * Requires: PROP_GRADS. Runs after the clean-up passes (cse would merge a recomputed
 * copy back into its original, the whole point being two copies at two times) and
 * before fuse, which fuses the copies with the backward's elementwise ops.
 *
 * The level is the module attribute train.recompute (docs/language.md §5.6):
 *   none       the default; only dropout outputs are recomputed (below);
 *   selective  in each block, the values that are cheap to recompute from values the
 *              backward keeps anyway: norms, activations, elementwise products and sums,
 *              dropouts, layout copies (transpose);
 *   full       each block keeps only its input; the block's forward runs again in the
 *              backward, right before the block's gradients, and the backward reads the
 *              recomputed values.
 * At every level a dropout output the backward reads (the input of a LoRA A in the
 * ReLoRA phase) is redrawn from its input: its mask is a counter-based draw (docs/ir.md,
 * RNG), so a dropped copy of an input is never kept.
 *
 * Blocks: the lowering reads a block's weights (globals named layers.<l>.*) where they
 * are used, so block l's forward lies between the last cut before its first weight read
 * and the cut that follows (the first cut after the last block's last read ends the last
 * one). A cut is a forward value that every later forward value depends on only through
 * it (reads of globals and constants aside): the residual stream between blocks. A
 * function without such blocks (hand-written IR) has only its dropouts recomputed.
 *
 * A recomputed value is copied with the nodes it depends on that are not kept (those of
 * its block, for full; those cheap, for selective), and the copies are placed right
 * before the first backward node that reads one of them: per block for full, per
 * value for the others. The backward then reads the copies; forward values only the
 * backward read become dead and go. The copies' FLOPs per token (a matmul 2 M N K, an
 * attention 4 B H T^2 D as in docs/language.md §7.2, every other computing op one per
 * element: those are memory-bound; layout ops, reshapes and reads none) are recorded as
 * module attribute recompute.<function>.flops_per_token (only when something is
 * recomputed).
 *
 *   before (selective; %4 rmsnorm of the block input %2, read by the backward's %90):
 *     %4 = rmsnorm %2, %3 {eps = 1e-05} : f32[8,128,128]  # layers.0.rmsnorm_1
 *     ...
 *     %90 = matmul %89, %4 {trans_a = 1, trans_b = 0} : f32[128,128]
 *   after:
 *     %4 = rmsnorm %2, %3 {eps = 1e-05} : f32[8,128,128]  # layers.0.rmsnorm_1
 *     ...
 *     %90 = rmsnorm %2, %3 {eps = 1e-05} : f32[8,128,128]  # layers.0.rmsnorm_1 (recomputed)
 *     %91 = matmul %89, %90 {trans_a = 1, trans_b = 0} : f32[128,128]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clean.h"
#include "pm.h"

typedef enum { RC_NONE, RC_SELECTIVE, RC_FULL } RcMode;

typedef struct {
    Arena *a;           /* the pass's scratch arena */
    IrModule *m;
    IrFunc *f;
    RcMode mode;
    int n, loss;        /* nodes; position of the loss (forward: positions <= loss) */
    int n_blocks;       /* blocks found (find_blocks) */
    int *pos;           /* id -> position */
    bool *is_free;      /* id -> a function of globals and constants only */
    bool *saved;        /* id -> a forward value the backward reads */
    int *first_use;     /* id -> position of its first backward reader */
    int *seg;           /* id -> its block, -1 outside blocks */
    signed char *rec;   /* id -> selective: recomputable (1), not (0), unknown (-1) */
} Rc;

static int64_t numel(const IrNode *n) { return n->type.rank < 0 ? 0 : ir_type_numel(n->type); }

/* FLOPs of one node, by the convention in the header. */
static double node_flops(const IrNode *n)
{
    switch (n->op) {
    case IR_OP_MATMUL: {
        const IrType *a = &n->in[0]->type;
        int r = a->rank;
        int64_t k = ir_attrs_int(&n->attrs, "trans_a", 0) ? a->dim[r - 2] : a->dim[r - 1];
        return 2.0 * (double)numel(n) * (double)k;
    }
    case IR_OP_ATTENTION: {
        const IrType *q = &n->in[0]->type, *k = &n->in[1]->type;
        return 4.0 * (double)q->dim[0] * (double)q->dim[1] * (double)q->dim[2] * (double)k->dim[2] * (double)q->dim[3];
    }
    case IR_OP_GLOBAL:
    case IR_OP_CONST:
    case IR_OP_RESULT:
    case IR_OP_RESHAPE:
    case IR_OP_TRANSPOSE:
    case IR_OP_SLICE:
    case IR_OP_CONCAT:
    case IR_OP_PAD:
    case IR_OP_REPEAT_KV: return 0;
    default: return (double)numel(n);
    }
}

/* Ops selective recomputation redoes: cheap next to the matmuls around them, and large. */
static bool is_cheap(IrOpKind op)
{
    switch (op) {
    case IR_OP_RMSNORM:
    case IR_OP_LAYERNORM:
    case IR_OP_SILU:
    case IR_OP_GELU:
    case IR_OP_RELU:
    case IR_OP_ADD:
    case IR_OP_SUB:
    case IR_OP_MUL:
    case IR_OP_SCALE:
    case IR_OP_DROPOUT:
    case IR_OP_RESHAPE:
    case IR_OP_TRANSPOSE: return true;
    default: return false;
    }
}

/* selective: v is cheap, and each operand is free, kept for the backward anyway, or
 * recomputable itself. */
static bool recomputable(Rc *r, const IrNode *v)
{
    if (r->rec[v->id] >= 0)
        return r->rec[v->id];
    bool ok = is_cheap(v->op) && r->pos[v->id] <= r->loss && !r->is_free[v->id];
    for (int i = 0; ok && i < v->n_in; i++) {
        const IrNode *o = v->in[i];
        ok = r->is_free[o->id] || r->saved[o->id] || recomputable(r, o);
    }
    r->rec[v->id] = ok;
    return ok;
}

/* Block l's layer number when g is one of its weights (layers.<l>.*), else -1. */
static int layer_of(const IrGlobal *g)
{
    int l, n = 0;
    if (sscanf(g->name, "layers.%d.%n", &l, &n) == 1 && n > 0 && l >= 0)
        return l;
    return -1;
}

/* Sets r->seg: the forward positions of each block (header). False when the function
 * has no blocks to recompute. */
static bool find_blocks(Rc *r)
{
    IrFunc *f = r->f;
    int n_layers = 0;
    for (int i = 0; i <= r->loss; i++)
        if (f->nodes[i]->op == IR_OP_GLOBAL && layer_of(f->nodes[i]->gl[0]) + 1 > n_layers)
            n_layers = layer_of(f->nodes[i]->gl[0]) + 1;
    if (n_layers == 0)
        return false;
    int *first = ARENA_ARRAY(r->a, int, n_layers), *last = ARENA_ARRAY(r->a, int, n_layers);
    for (int l = 0; l < n_layers; l++)
        first[l] = last[l] = -1;
    for (int i = 0; i <= r->loss; i++) {
        const IrNode *x = f->nodes[i];
        int l = x->op == IR_OP_GLOBAL ? layer_of(x->gl[0]) : -1;
        if (l < 0)
            continue;
        if (first[l] < 0)
            first[l] = i;
        last[l] = i;
    }
    /* reach[i]: the last forward reader of any non-free value before position i */
    int *last_fwd = ARENA_ARRAY(r->a, int, pass_func_id_bound(f));
    for (int i = 0; i <= r->loss; i++) {
        const IrNode *u = f->nodes[i];
        for (int k = 0; k < u->n_in; k++)
            if (i > last_fwd[u->in[k]->id])
                last_fwd[u->in[k]->id] = i;
    }
    bool *cut = ARENA_ARRAY(r->a, bool, r->loss + 1);
    int reach = -1;
    for (int i = 0; i <= r->loss; i++) {
        const IrNode *x = f->nodes[i];
        bool value = x->type.rank >= 0 && !(ir_op_info[x->op].flags & OPF_EFFECT);
        cut[i] = value && !r->is_free[x->id] && reach <= i;
        if (!r->is_free[x->id] && last_fwd[x->id] > reach)
            reach = last_fwd[x->id];
    }
    int *bound = ARENA_ARRAY(r->a, int, n_layers + 1);
    for (int l = 0; l < n_layers; l++) {
        if (first[l] < 0)
            return false;
        bound[l] = -1;
        for (int i = 0; i < first[l]; i++)
            if (cut[i])
                bound[l] = i;
    }
    bound[n_layers] = -1;
    for (int i = last[n_layers - 1] + 1; i < r->loss && bound[n_layers] < 0; i++)
        if (cut[i])
            bound[n_layers] = i;
    for (int l = 0; l < n_layers; l++)
        if (bound[l] < 0 || bound[l + 1] <= bound[l])
            return false;
    for (int l = 0; l < n_layers; l++)
        for (int i = bound[l] + 1; i < bound[l + 1]; i++)
            r->seg[f->nodes[i]->id] = l;
    r->n_blocks = n_layers;
    return true;
}

/* A group of copies placed together before position `at`; copy[id] is the copy of
 * node id within it (NULL when not copied). */
typedef struct Group {
    int at;
    IrNode **copy;
    bool *is_root;        /* id -> the backward reads this group's copy of it */
    bool is_block;        /* a block's forward (full) */
    const IrNode **order; /* originals to copy, in their forward order */
    int n_order;
    struct Group *next;
} Group;

static Group *group_new(Rc *r, int at)
{
    Group *g = ARENA_NEW(r->a, Group);
    g->at = at;
    g->copy = ARENA_ARRAY(r->a, IrNode *, pass_func_id_bound(r->f));
    g->is_root = ARENA_ARRAY(r->a, bool, pass_func_id_bound(r->f));
    g->order = ARENA_ARRAY(r->a, const IrNode *, r->n + 1);
    return g;
}

/* Marks v (and, within the same group, what it needs that is not kept) for copying:
 * `take(o)` says whether operand o is copied too. Marks use copy[] as a visited set
 * (a non-NULL placeholder until the copies are made). */
typedef bool (*Take)(Rc *r, const IrNode *o, int seg);

static void mark(Rc *r, Group *g, const IrNode *v, Take take, int seg)
{
    if (g->copy[v->id])
        return;
    g->copy[v->id] = (IrNode *)v; /* placeholder */
    for (int i = 0; i < v->n_in; i++)
        if (take(r, v->in[i], seg))
            mark(r, g, v->in[i], take, seg);
    g->order[g->n_order++] = v;
}

/* full: every non-free forward value of the block */
static bool take_block(Rc *r, const IrNode *o, int seg)
{
    return !r->is_free[o->id] && r->seg[o->id] == seg;
}

/* selective: a cheap value recomputed rather than kept (a kept one's original is read:
 * it is alive anyway) */
static bool take_cheap(Rc *r, const IrNode *o, int seg)
{
    (void)seg;
    return !r->is_free[o->id] && r->pos[o->id] <= r->loss && recomputable(r, o);
}

/* none: only the dropout itself */
static bool take_none(Rc *r, const IrNode *o, int seg)
{
    (void)r, (void)o, (void)seg;
    return false;
}

/* Rebuilds f with the groups' copies placed before their positions; backward nodes read
 * root[id], the copy of the group id is a root of, where there is one. Returns the FLOPs
 * of the copies. */
static double rebuild(Rc *r, Group *groups, IrNode **root)
{
    IrFunc *f = r->f;
    int bound = pass_func_id_bound(f);
    IrNode **now = ARENA_ARRAY(r->a, IrNode *, bound); /* original id -> its copy in the new list */
    IrFunc tmp = {0};
    tmp.name = f->name;
    double flops = 0;
    for (int p = 0; p < r->n; p++) {
        for (Group *g = groups; g; g = g->next) {
            if (g->at != p)
                continue;
            for (int i = 0; i < g->n_order; i++) {
                const IrNode *v = g->order[i];
                IrNode **in = ARENA_ARRAY(r->a, IrNode *, v->n_in + 1);
                for (int k = 0; k < v->n_in; k++) {
                    const IrNode *o = v->in[k];
                    in[k] = g->copy[o->id] && g->copy[o->id] != o ? g->copy[o->id] : now[o->id];
                }
                IrNode *c = ir_node_copy(r->m, &tmp, v, in);
                if (v->name)
                    c->name = arena_sprintf(r->m->arena, "%s (recomputed)", v->name);
                g->copy[v->id] = c;
                flops += node_flops(v);
            }
            for (int i = 0; i < g->n_order; i++)
                if (g->is_root[g->order[i]->id])
                    root[g->order[i]->id] = g->copy[g->order[i]->id];
        }
        const IrNode *x = f->nodes[p];
        IrNode **in = ARENA_ARRAY(r->a, IrNode *, x->n_in + 1);
        for (int k = 0; k < x->n_in; k++) {
            const IrNode *o = x->in[k];
            in[k] = p > r->loss && root[o->id] ? root[o->id] : now[o->id];
        }
        now[x->id] = ir_node_copy(r->m, &tmp, x, in);
    }
    f->ret = f->ret ? now[f->ret->id] : NULL;
    f->nodes = tmp.nodes;
    f->n_nodes = tmp.n_nodes;
    f->cap_nodes = tmp.cap_nodes;
    ir_func_renumber(f);
    return flops;
}

/* Recomputes in one train function; *flops gets the copies' FLOPs (per micro-step). */
static void recompute_func(PassCtx *ctx, IrFunc *f, RcMode mode, double *flops)
{
    *flops = 0;
    Rc rr = {ctx->arena, ctx->m, f, mode, f->n_nodes, -1, 0, NULL, NULL, NULL, NULL, NULL, NULL}, *r = &rr;
    int bound = pass_func_id_bound(f);
    r->pos = ARENA_ARRAY(r->a, int, bound);
    r->is_free = ARENA_ARRAY(r->a, bool, bound);
    r->saved = ARENA_ARRAY(r->a, bool, bound);
    r->first_use = ARENA_ARRAY(r->a, int, bound);
    r->seg = ARENA_ARRAY(r->a, int, bound);
    r->rec = ARENA_ARRAY(r->a, signed char, bound);
    for (int i = 0; i < bound; i++) {
        r->seg[i] = -1;
        r->rec[i] = -1;
        r->first_use[i] = r->n;
    }
    /* free: a read, a constant, or computed from weights and constants only (the fused
     * [W; A]); a read of the micro-step's data (tokens, the step) is free, what is
     * computed from it is not */
    bool *data = ARENA_ARRAY(r->a, bool, bound);
    for (int i = 0; i < r->n; i++) {
        const IrNode *x = f->nodes[i];
        r->pos[x->id] = i;
        if (x == f->ret)
            r->loss = i;
        bool is_free = x->n_in > 0 && !(ir_op_info[x->op].flags & OPF_EFFECT);
        for (int k = 0; k < x->n_in; k++) {
            is_free = is_free && r->is_free[x->in[k]->id] && !data[x->in[k]->id];
            data[x->id] = data[x->id] || data[x->in[k]->id];
        }
        if (x->op == IR_OP_GLOBAL || x->op == IR_OP_CONST) {
            is_free = true;
            data[x->id] = x->op == IR_OP_GLOBAL && x->gl[0]->cls == IR_CLASS_DATA;
        }
        r->is_free[x->id] = is_free;
    }
    if (r->loss < 0)
        return;
    for (int i = r->loss + 1; i < r->n; i++) {
        const IrNode *u = f->nodes[i];
        for (int k = 0; k < u->n_in; k++) {
            const IrNode *o = u->in[k];
            if (r->pos[o->id] > r->loss || r->is_free[o->id] || o == f->ret)
                continue;
            r->saved[o->id] = true;
            if (i < r->first_use[o->id])
                r->first_use[o->id] = i;
        }
    }
    bool blocks = mode != RC_NONE && find_blocks(r);
    Group *groups = NULL;
    if (mode == RC_FULL && blocks) {
        /* one group per block: every value of it the backward reads, and what they need */
        for (int l = 0; l < r->n_blocks; l++) {
            Group *g = NULL;
            for (int i = 0; i <= r->loss; i++) {
                const IrNode *v = f->nodes[i];
                if (r->seg[v->id] != l || !r->saved[v->id])
                    continue;
                if (!g)
                    g = group_new(r, r->n);
                if (r->first_use[v->id] < g->at)
                    g->at = r->first_use[v->id];
                mark(r, g, v, take_block, l);
                g->is_root[v->id] = true;
            }
            if (g) {
                g->is_block = true;
                g->next = groups;
                groups = g;
            }
        }
    }
    /* per value: selective's cheap values of blocks; at every level, dropouts */
    for (int i = 0; i <= r->loss; i++) {
        const IrNode *v = f->nodes[i];
        if (!r->saved[v->id])
            continue;
        bool is_dropout = v->op == IR_OP_DROPOUT && (mode != RC_FULL || r->seg[v->id] < 0 || !blocks);
        bool cheap = mode == RC_SELECTIVE && blocks && r->seg[v->id] >= 0 && recomputable(r, v);
        if (!is_dropout && !cheap)
            continue;
        Group *g = NULL; /* the values read first at one position share their copies */
        for (Group *h = groups; h && !g; h = h->next)
            if (h->at == r->first_use[v->id] && !h->is_block)
                g = h;
        if (!g) {
            g = group_new(r, r->first_use[v->id]);
            g->next = groups;
            groups = g;
        }
        mark(r, g, v, cheap ? take_cheap : take_none, r->seg[v->id]);
        g->is_root[v->id] = true;
    }
    if (!groups)
        return;
    IrNode **root = ARENA_ARRAY(r->a, IrNode *, bound);
    *flops = rebuild(r, groups, root);
    pass_func_dce(ctx->arena, f);
}

static bool recompute_run(PassCtx *ctx)
{
    IrModule *m = ctx->m;
    const char *level = ir_attrs_str(&m->attrs, "train.recompute", "none");
    RcMode mode = RC_NONE;
    if (!strcmp(level, "selective"))
        mode = RC_SELECTIVE;
    else if (!strcmp(level, "full"))
        mode = RC_FULL;
    else if (strcmp(level, "none") != 0) {
        diag_error(ctx->diags, srcloc_none(),
                   "recompute: module attribute 'train.recompute' must be \"none\", \"selective\" or \"full\" (got \"%s\")",
                   level);
        return false;
    }
    const IrGlobal *tok = ir_global_find(m, "tokens");
    double tokens = tok ? (double)ir_type_numel(tok->type) : 1.0;
    for (int i = 0; i < m->n_funcs; i++) {
        IrFunc *f = m->funcs[i];
        if (strncmp(f->name, "train", 5) != 0 || !f->ret)
            continue;
        double flops;
        recompute_func(ctx, f, mode, &flops);
        if (flops > 0)
            ir_attrs_set_float(m->arena, &m->attrs, arena_sprintf(m->arena, "recompute.%s.flops_per_token", f->name),
                               flops / tokens);
    }
    return true;
}

const Pass pass_recompute = {
    .name = "recompute",
    .summary = "recompute forward values in the backward (train.recompute: none, selective, full); redraw dropouts",
    .requires = PROP_GRADS,
    .run = recompute_run,
};
