/* fuse: assigns fusion groups (IrNode.group) so that the kernelizer turns each group of
 * elementwise nodes into one loop kernel that keeps intermediates in registers.
 * A group is a set of OPF_ELEMWISE nodes with one element count such that no node
 * outside it uses a member before the group's last member (the rule the kernelizer
 * checks in group_is_fusible). Nodes are visited in order; an elementwise node joins
 * every still-open group one of its operands belongs to (same element count), merging
 * them; failing that, an open group that reads one of its operands (a sibling: one
 * kernel then reads the shared input once and stores both results); else it opens its
 * own. A group closes for good once anything outside it uses a
 * member, since a later member would then run after that use. Singleton groups are
 * cleared, and groups are numbered 0, 1, ... per function in order of first member.
 * Requires: nothing (run after the clean-up passes). Provides: PROP_GROUPS.
 *   before:  %2 = matmul %0, %1 ... : f32[2,8]         after:  (the same, and)
 *            %4 = matmul %0, %3 ... : f32[2,8]
 *            %5 = silu %2 : f32[2,8]                          %5 = silu %2 : f32[2,8] group(0)
 *            %6 = mul %5, %4 : f32[2,8]                       %6 = mul %5, %4 : f32[2,8] group(0)
 *            %7 = add %6, %0 : f32[2,8]                       %7 = add %6, %0 : f32[2,8] group(0)
 *            %8 = rmsnorm %7, %9 ... */
#include "fuse.h"

#include "clean.h"
#include "pm.h"

static int find(int *parent, int g)
{
    while (parent[g] != g)
        g = parent[g] = parent[parent[g]];
    return g;
}

int pass_fuse_func(Arena *scratch, IrFunc *f)
{
    int bound = pass_func_id_bound(f);
    int n = f->n_nodes;
    int *parent = ARENA_ARRAY(scratch, int, n + 1); /* union-find over provisional groups */
    bool *closed = ARENA_ARRAY(scratch, bool, n + 1);
    int64_t *numel = ARENA_ARRAY(scratch, int64_t, n + 1);
    int *of = ARENA_ARRAY(scratch, int, bound);  /* node id -> provisional group + 1 (0: none) */
    int *sib = ARENA_ARRAY(scratch, int, bound); /* node id -> latest group + 1 reading it */
    int n_groups = 0;
    for (int i = 0; i < n; i++) {
        IrNode *x = f->nodes[i];
        x->group = -1;
        bool elem = (ir_op_info[x->op].flags & OPF_ELEMWISE) != 0;
        int64_t ne = elem ? ir_type_numel(x->type) : -1;
        int g = -1;
        for (int j = 0; j < x->n_in; j++) {
            if (!of[x->in[j]->id])
                continue;
            int h = find(parent, of[x->in[j]->id] - 1);
            if (!elem || closed[h] || numel[h] != ne) {
                closed[h] = true; /* used from outside: no member may follow */
                continue;
            }
            if (g < 0)
                g = h;
            else if (h != g)
                parent[h] = g;
        }
        if (!elem)
            continue;
        /* no producer to join: join a sibling, an open group that reads one of x's operands */
        for (int j = 0; j < x->n_in && g < 0; j++) {
            int h = sib[x->in[j]->id] ? find(parent, sib[x->in[j]->id] - 1) : -1;
            if (h >= 0 && !closed[h] && numel[h] == ne)
                g = h;
        }
        if (g < 0) {
            g = n_groups++;
            parent[g] = g;
            closed[g] = false;
            numel[g] = ne;
        }
        of[x->id] = g + 1;
        for (int j = 0; j < x->n_in; j++)
            if (!of[x->in[j]->id])
                sib[x->in[j]->id] = g + 1;
    }
    /* members per final group; singletons stay ungrouped; number by first member */
    int *size = ARENA_ARRAY(scratch, int, n_groups + 1);
    int *final_id = ARENA_ARRAY(scratch, int, n_groups + 1);
    for (int i = 0; i < n; i++)
        if (of[f->nodes[i]->id])
            size[find(parent, of[f->nodes[i]->id] - 1)]++;
    for (int g = 0; g < n_groups; g++)
        final_id[g] = -1;
    int next = 0;
    for (int i = 0; i < n; i++) {
        IrNode *x = f->nodes[i];
        if (!of[x->id])
            continue;
        int g = find(parent, of[x->id] - 1);
        if (size[g] < 2)
            continue;
        if (final_id[g] < 0)
            final_id[g] = next++;
        x->group = final_id[g];
    }
    return next;
}

bool pass_fuse_group_legal(const IrFunc *f, int group)
{
    int last = -1;
    for (int i = 0; i < f->n_nodes; i++)
        if (f->nodes[i]->group == group)
            last = i;
    if (group < 0 || last < 0)
        return false;
    int64_t ne = ir_type_numel(f->nodes[last]->type);
    for (int i = 0; i <= last; i++) {
        const IrNode *x = f->nodes[i];
        if (x->group == group) {
            if (!(ir_op_info[x->op].flags & OPF_ELEMWISE) || ir_type_numel(x->type) != ne)
                return false;
            continue;
        }
        for (int j = 0; j < x->n_in; j++)
            if (x->in[j]->group == group)
                return false;
    }
    return true;
}

static bool fuse_run(PassCtx *ctx)
{
    for (int i = 0; i < ctx->m->n_funcs; i++)
        pass_fuse_func(ctx->arena, ctx->m->funcs[i]);
    return true;
}

const Pass pass_fuse = {
    .name = "fuse",
    .summary = "group elementwise chains into fusion groups (one loop kernel each)",
    .provides = PROP_GROUPS,
    .run = fuse_run,
};
