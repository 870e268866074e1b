/* lora-insert: puts the LoRA adapters of a ReLoRA spec into the forward functions.
 * Requires: PROP_LOWERED. Provides: PROP_LORA. Runs before autodiff.
 *
 * Adapters are used only with schedule = relora(...) (the checker warns that an
 * adapter is unused otherwise, spec §5.3). Then each adapted linear y = x W^T
 * (W: class frozen, attr lora_rank) becomes
 *     y = x W^T + s * (dropout(x) A^T) B^T,      s = lora_alpha / lora_rank
 * with dropout (attrs p, stream) only when lora_dropout > 0 and only in the training
 * copy. New globals @<base>.lora_a f32[R,I] and @<base>.lora_b f32[O,R] (base = the
 * weight's name without ".weight"), class param, flags trainable|adapter, attr
 * lora_of; W gets attrs lora_a, lora_b (names) and lora_scale. @init draws
 * A ~ U(±1/sqrt(I)) (Kaiming-uniform, a = sqrt(5)) and sets B = 0, so the adapted
 * model starts equal to the base one and both factors get gradients (the reference
 * code's HEAD zeroes A too, which leaves both gradients 0: relora-notes §1.2).
 *
 * Functions: @train becomes @train_lora (adapted, with dropout); the plain copy stays
 * as @train_full when relora.warm_start > 0. @eval and @logits are adapted in place
 * (no dropout). Without a relora schedule @train is renamed @train_full and nothing
 * else changes. New nodes take the location of the linear they adapt.
 *
 *   before (func @train):
 *     %5 = global @layers.0.attention.q.weight : f32[16,16]
 *     %6 = matmul %4, %5 {trans_a = 0, trans_b = 1} : f32[2,6,16]  # layers.0.attention.q
 *   after (func @train_lora, lora_dropout = 0.1):
 *     %5 = global @layers.0.attention.q.weight : f32[16,16]
 *     %6 = matmul %4, %5 {trans_a = 0, trans_b = 1} : f32[2,6,16]  # layers.0.attention.q
 *     %7 = global @micro_step : i32[]
 *     %8 = dropout %4, %7 {p = 0.1, stream = 1048579} : f32[2,6,16]
 *     %9 = global @layers.0.attention.q.lora_a : f32[4,16]
 *     %10 = matmul %8, %9 {trans_a = 0, trans_b = 1} : f32[2,6,4]  # layers.0.attention.q.lora_a
 *     %11 = global @layers.0.attention.q.lora_b : f32[16,4]
 *     %12 = matmul %10, %11 {trans_a = 0, trans_b = 1} : f32[2,6,16]  # layers.0.attention.q.lora_b
 *     %13 = scale %12 {alpha = 2.0} : f32[2,6,16]
 *     %14 = add %6, %13 : f32[2,6,16]
 * Dropout streams are LORA_DROPOUT_STREAM + the W global's id (init streams are
 * 1 + global id, so they never collide). Their counter is keyed on @micro_step (i32[],
 * class data, made here): the index of the micro-step in the run, step x k + j for
 * micro-step j of k (docs/ir.md "Step policy"). The dropped tensor's rows are the
 * micro-batch's sequences, so element i of sequence r of the micro-batch draws counter
 * (step k + j) numel + i = (step B + j b + r) (numel / b) + (i mod numel / b): keyed on
 * the sequence's index in the step (j b + r), the same however the batch B is cut. */
#include "pm.h"

#include <math.h>
#include <string.h>

enum { LORA_DROPOUT_STREAM = 1 << 20 };

typedef struct {
    PassCtx *ctx;
    IrModule *m;
} Ins;


/* The adapted W of a matmul y = x W^T, or NULL. */
static IrGlobal *adapted_weight(const IrNode *n)
{
    if (n->op != IR_OP_MATMUL || ir_attrs_int(&n->attrs, "trans_a", 0) || !ir_attrs_int(&n->attrs, "trans_b", 0))
        return NULL;
    const IrNode *w = n->in[1];
    if (w->op != IR_OP_GLOBAL || !ir_attrs_get(&w->gl[0]->attrs, "lora_a"))
        return NULL;
    return w->gl[0];
}

/* y + s * (dropout(x) A^T) B^T, at y's location; y and x are nodes of b's function. */
static IrNode *adapt(IrBuilder *b, IrGlobal *w, IrNode *x, IrNode *y, const char *name, IrNode **step, bool train)
{
    IrModule *m = b->m;
    IrGlobal *ga = ir_global_find(m, ir_attrs_str(&w->attrs, "lora_a", ""));
    IrGlobal *gb = ir_global_find(m, ir_attrs_str(&w->attrs, "lora_b", ""));
    double p = ir_attrs_float(&w->attrs, "lora_dropout", 0.0), scale = ir_attrs_float(&w->attrs, "lora_scale", 1.0);
    IrNode *xin = x;
    if (train && p > 0) {
        if (!*step) {
            IrGlobal *ms = ir_global_find(m, "micro_step");
            if (!ms)
                ms = ir_global_new(m, "micro_step", ir_type_scalar(IR_I32), IR_CLASS_DATA, 0,
                                   ir_global_find(m, "step")->loc);
            *step = ir_global_read(b, ms);
        }
        xin = ir_dropout(b, x, *step, p, LORA_DROPOUT_STREAM + w->id);
    }
    IrNode *xa = ir_matmul(b, xin, ir_global_read(b, ga), false, true); /* [...,R] */
    IrNode *xab = ir_matmul(b, xa, ir_global_read(b, gb), false, true); /* [...,O] */
    if (name) {
        xa->name = arena_sprintf(m->arena, "%s.lora_a", name);
        xab->name = arena_sprintf(m->arena, "%s.lora_b", name);
    }
    return ir_binary(b, IR_OP_ADD, y, ir_scale(b, xab, scale));
}

/* Appends to dst an adapted copy of src's nodes (dst may be src: the list is rebuilt). */
static bool adapt_func(Ins *s, IrFunc *dst, const IrFunc *src, bool train)
{
    int n_src = src->n_nodes;
    IrNode **old = ARENA_ARRAY(s->ctx->arena, IrNode *, n_src + 1);
    memcpy(old, src->nodes, sizeof *old * (size_t)n_src);
    IrNode *old_ret = src->ret;
    IrNode **map = ARENA_ARRAY(s->ctx->arena, IrNode *, src->next_id + 1);
    memset(map, 0, sizeof *map * (size_t)(src->next_id + 1));
    IrFunc tmp = {0};
    tmp.name = dst->name;
    IrBuilder b;
    ir_builder_init(&b, s->m, &tmp, s->ctx->diags);
    IrNode *step = NULL;
    for (int i = 0; i < n_src; i++) {
        const IrNode *n = old[i];
        IrNode *c = ir_node_copy_mapped(b.m, b.f, n, map);
        IrGlobal *w = adapted_weight(n);
        if (w) {
            b.loc = n->loc;
            c = adapt(&b, w, map[n->in[0]->id], c, n->name, &step, train);
        }
        map[n->id] = c;
    }
    if (b.failed)
        return false;
    dst->nodes = tmp.nodes;
    dst->n_nodes = tmp.n_nodes;
    dst->cap_nodes = tmp.cap_nodes;
    dst->ret = old_ret ? map[old_ret->id] : NULL;
    ir_func_renumber(dst);
    return true;
}

static const char *base_name(Ins *s, const char *wname)
{
    size_t n = strlen(wname), k = strlen(".weight");
    if (n > k && strcmp(wname + n - k, ".weight") == 0)
        return arena_strndup(s->m->arena, wname, n - k);
    return wname;
}

/* Creates A and B for every adapted W, links them, and initialises them in @init. */
static void make_adapters(Ins *s)
{
    IrModule *m = s->m;
    IrFunc *init = ir_func_find(m, "init");
    IrBuilder b;
    ir_builder_init(&b, m, init, s->ctx->diags);
    IrNode *zero = NULL;
    int n_globals = m->n_globals;
    for (int i = 0; i < n_globals; i++) {
        IrGlobal *w = m->globals[i];
        int64_t r = ir_attrs_int(&w->attrs, "lora_rank", 0);
        if (r <= 0 || w->type.rank != 2)
            continue;
        int64_t O = w->type.dim[0], I = w->type.dim[1];
        const char *base = base_name(s, w->name);
        int64_t ad[2] = {r, I}, bd[2] = {O, r};
        unsigned fl = IR_G_TRAINABLE | IR_G_ADAPTER;
        IrGlobal *ga = ir_global_new(m, arena_sprintf(m->arena, "%s.lora_a", base), ir_type_make(IR_F32, 2, ad),
                                     IR_CLASS_PARAM, fl, w->loc);
        IrGlobal *gb = ir_global_new(m, arena_sprintf(m->arena, "%s.lora_b", base), ir_type_make(IR_F32, 2, bd),
                                     IR_CLASS_PARAM, fl, w->loc);
        ir_attrs_set_str(m->arena, &ga->attrs, "lora_of", w->name);
        ir_attrs_set_str(m->arena, &gb->attrs, "lora_of", w->name);
        ir_attrs_set_str(m->arena, &w->attrs, "lora_a", ga->name);
        ir_attrs_set_str(m->arena, &w->attrs, "lora_b", gb->name);
        ir_attrs_set_float(m->arena, &w->attrs, "lora_scale", ir_attrs_float(&w->attrs, "lora_alpha", (double)r) / (double)r);
        if (!init)
            continue;
        b.loc = w->loc;
        if (!zero)
            zero = ir_const(&b, ir_type_scalar(IR_I32), 0);
        IrAttrs au = {0}, ab = {0};
        ir_attrs_set_float(m->arena, &au, "bound", 1.0 / sqrt((double)I));
        ir_attrs_set_int(m->arena, &au, "stream", 1 + ga->id);
        ir_build(&b, IR_OP_INIT_UNIFORM, &zero, 1, &ga, 1, &au);
        ir_attrs_set_float(m->arena, &ab, "value", 0.0);
        ir_build(&b, IR_OP_INIT_CONST, NULL, 0, &gb, 1, &ab);
    }
    if (init)
        ir_func_renumber(init);
}

static bool lora_insert_run(PassCtx *ctx)
{
    Ins s = {ctx, ctx->m};
    IrModule *m = ctx->m;
    IrFunc *train = ir_func_find(m, "train");
    if (!train)
        return true; /* already run, or nothing to train */
    IrSchedule sched;
    if (!ir_schedule_from_module(m, &sched, ctx->diags))
        return false;
    if (sched.kind != IR_SCHED_RELORA) {
        train->name = "train_full";
        return true;
    }
    make_adapters(&s);
    IrFunc *lora;
    /* the full-rank phase is compiled in when the spec has a warm start; a trainer can
     * move the switch at run time but not add the phase (docs/runtime.md "The schedule") */
    if (sched.warm_start > 0) {
        train->name = "train_full";
        lora = ir_func_new(m, "train_lora");
    } else {
        lora = train;
        lora->name = "train_lora";
    }
    if (!adapt_func(&s, lora, train, true))
        return false;
    static const char *const fwd[] = {"eval", "logits"};
    for (int i = 0; i < 2; i++) {
        IrFunc *f = ir_func_find(m, fwd[i]);
        if (f && !adapt_func(&s, f, f, false))
            return false;
    }
    return true;
}

const Pass pass_lora_insert = {
    .name = "lora-insert",
    .summary = "add LoRA adapters to the adapted linears; split @train into @train_full / @train_lora",
    .requires = PROP_LOWERED,
    .provides = PROP_LORA,
    .run = lora_insert_run,
};
