/* Lowering of a Spec to the graph IR.
 *
 * Globals: @tokens and @targets (i32[B,T], B the micro-batch: written by the host for
 * each micro-step), @step (i32[], the index of the step being run), and one global per
 * parameter tensor,
 * named as in the spec ("layers.3.attention.q.weight"). A linear the adapter targets
 * carries attributes lora_rank, lora_alpha and lora_dropout; the lora-insert pass
 * reads them. @init initialises every parameter; @train and @eval compute
 *   x = embedding[tokens] (+ positions[0:T]); x = block_i(x) for each layer;
 *   loss = cross_entropy(norm(x) @ head^T, targets)
 * (the passes differentiate @train and leave @eval a forward pass), and @logits the
 * same forward for one sequence @sample_tokens [1,T], returning logits [T,V].
 * Every node takes the SrcLoc of the DSL construct it implements. The module's
 * attributes are the spec's settings, each under the name frontend/fields.def gives it
 * (docs/language.md §5.4); hf.c adds the Hugging Face names and config.json, or the note
 * saying why there are none. */
#include "lower.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fields.h"
#include "hf.h"

typedef struct {
    Arena *a;
    Diags *d;
    const Spec *s;
    IrModule *m;
    IrBuilder b;
    int64_t B, T;
    IrGlobal **param_globals; /* [layer * n_params + param index]; globals use layer 0 */
    const SpecParam **param_of; /* global id -> its parameter; NULL for data and state */
    IrNode **memo;            /* block node id -> IR value, for the current layer */
    int layer;
} Lower;

static IrGlobal *param_global(Lower *l, const SpecParam *p, int layer)
{
    int idx = (int)(p - l->s->model.params);
    return l->param_globals[(p->is_per_layer ? layer : 0) * l->s->model.n_params + idx];
}

static IrNode *read_param(Lower *l, const SpecParam *p)
{
    return ir_global_read(&l->b, param_global(l, p, l->layer));
}

static const char *layer_name(Lower *l, const char *local)
{
    return arena_sprintf(l->a, "layers.%d.%s", l->layer, local);
}

/* y = x W^T (+ b); x: [B,T,in] -> [B,T,out] */
static IrNode *linear(Lower *l, IrNode *x, const SpecLinear *lin)
{
    IrNode *y = ir_matmul(&l->b, x, read_param(l, lin->weight), false, true);
    y->name = layer_name(l, lin->full_name);
    if (lin->bias)
        y = ir_binary(&l->b, IR_OP_ADD, y, read_param(l, lin->bias));
    return y;
}

static IrNode *heads_first(Lower *l, IrNode *x, int64_t heads, int64_t hd, bool rope, double theta)
{
    /* x: [B,T,heads*hd] -> [B,T,heads,hd] (rope) -> [B,heads,T,hd] */
    int64_t split[4] = {l->B, l->T, heads, hd};
    static const int64_t perm[4] = {0, 2, 1, 3};
    IrNode *y = ir_reshape(&l->b, x, 4, split);
    if (rope)
        y = ir_rope(&l->b, y, theta);
    return ir_transpose(&l->b, y, 4, perm);
}

static IrNode *attention(Lower *l, IrNode *x, const SpecModule *mod)
{
    const SpecLinear *q = &mod->linears[0], *k = &mod->linears[1], *v = &mod->linears[2], *o = &mod->linears[3];
    int64_t H = mod->heads, Hkv = mod->kv_heads, D = mod->head_dim;
    IrNode *qh = heads_first(l, linear(l, x, q), H, D, mod->has_rope, mod->rope_theta);
    IrNode *kh = heads_first(l, linear(l, x, k), Hkv, D, mod->has_rope, mod->rope_theta);
    IrNode *vh = heads_first(l, linear(l, x, v), Hkv, D, false, 0);
    if (Hkv != H) {
        kh = ir_repeat_kv(&l->b, kh, (int)(H / Hkv));
        vh = ir_repeat_kv(&l->b, vh, (int)(H / Hkv));
    }
    /* scores: [B,H,T,T] = q k^T / sqrt(D); probabilities masked causally */
    IrNode *att = ir_scale(&l->b, ir_matmul(&l->b, qh, kh, false, true), 1.0 / sqrt((double)D));
    att = ir_softmax(&l->b, att, true);
    IrNode *y = ir_matmul(&l->b, att, vh, false, false); /* [B,H,T,D] */
    static const int64_t perm[4] = {0, 2, 1, 3};
    int64_t merged[3] = {l->B, l->T, H * D};
    y = ir_reshape(&l->b, ir_transpose(&l->b, y, 4, perm), 3, merged);
    return linear(l, y, o);
}

static IrNode *glu(Lower *l, IrNode *x, const SpecModule *mod)
{
    const SpecLinear *gate = &mod->linears[0], *up = &mod->linears[1], *down = &mod->linears[2];
    IrOpKind act = mod->kind == SPEC_MOD_SWIGLU ? IR_OP_SILU : IR_OP_GELU;
    IrNode *h = ir_binary(&l->b, IR_OP_MUL, ir_unary(&l->b, act, linear(l, x, gate)), linear(l, x, up));
    return linear(l, h, down);
}

static IrNode *norm(Lower *l, IrNode *x, SpecModuleKind kind, const SpecParam *w, const SpecParam *bias, double eps)
{
    if (kind == SPEC_MOD_RMSNORM)
        return ir_rmsnorm(&l->b, x, read_param(l, w), eps);
    IrNode *bn = bias ? read_param(l, bias) : ir_const(&l->b, ir_type_make(IR_F32, 1, &w->shape[0]), 0.0);
    return ir_layernorm(&l->b, x, read_param(l, w), bn, eps);
}

static IrNode *module(Lower *l, IrNode *x, const SpecModule *mod)
{
    switch (mod->kind) {
    case SPEC_MOD_ATTENTION: return attention(l, x, mod);
    case SPEC_MOD_SWIGLU:
    case SPEC_MOD_GEGLU: return glu(l, x, mod);
    case SPEC_MOD_LINEAR: return linear(l, x, &mod->linears[0]);
    case SPEC_MOD_RMSNORM:
    case SPEC_MOD_LAYERNORM:
        return norm(l, x, mod->kind, mod->params[0], mod->n_params > 1 ? mod->params[1] : NULL, mod->eps);
    }
    return x;
}

static IrNode *node(Lower *l, const SpecNode *n, IrNode *input)
{
    if (l->memo[n->id])
        return l->memo[n->id];
    IrNode *y = NULL;
    switch (n->kind) {
    case SPEC_NODE_INPUT:
        y = input;
        break;
    case SPEC_NODE_LOCAL:
        y = node(l, n->a, input);
        break;
    case SPEC_NODE_ADD:
    case SPEC_NODE_MUL: {
        IrNode *a = node(l, n->a, input), *b = node(l, n->b, input);
        l->b.loc = n->loc;
        y = ir_binary(&l->b, n->kind == SPEC_NODE_ADD ? IR_OP_ADD : IR_OP_MUL, a, b);
        break;
    }
    case SPEC_NODE_SCALE: {
        IrNode *a = node(l, n->a, input);
        l->b.loc = n->loc;
        y = ir_scale(&l->b, a, n->scale);
        break;
    }
    case SPEC_NODE_ACT: {
        static const IrOpKind ops[] = {[SPEC_ACT_GELU] = IR_OP_GELU, [SPEC_ACT_RELU] = IR_OP_RELU,
                                       [SPEC_ACT_SILU] = IR_OP_SILU};
        IrNode *a = node(l, n->a, input);
        l->b.loc = n->loc;
        y = ir_unary(&l->b, ops[n->act], a);
        break;
    }
    case SPEC_NODE_MODULE: {
        IrNode *a = node(l, n->a, input);
        l->b.loc = n->module->loc;
        y = module(l, a, n->module);
        if (!y->name)
            y->name = layer_name(l, n->module->name);
        break;
    }
    }
    l->memo[n->id] = y;
    return y;
}

static void make_globals(Lower *l)
{
    const SpecModel *md = &l->s->model;
    int64_t bt[2] = {l->B, l->T};
    ir_global_new(l->m, "tokens", ir_type_make(IR_I32, 2, bt), IR_CLASS_DATA, 0, l->s->train.data.loc);
    ir_global_new(l->m, "targets", ir_type_make(IR_I32, 2, bt), IR_CLASS_DATA, 0, l->s->train.data.loc);
    ir_global_new(l->m, "step", ir_type_scalar(IR_I32), IR_CLASS_DATA, 0, l->s->train.schedule.loc);

    int np = md->n_params;
    l->param_globals = ARENA_ARRAY(l->a, IrGlobal *, (size_t)np * (size_t)(md->layers > 0 ? md->layers : 1));
    size_t n_globals = (size_t)l->m->n_globals;
    for (int i = 0; i < np; i++)
        n_globals += (size_t)(md->params[i].is_per_layer ? md->layers : 1);
    l->param_of = ARENA_ARRAY(l->a, const SpecParam *, n_globals);
    /* Globals in model order: embedding, positions, each layer's tensors, final norm, head. */
    for (int pass = 0; pass < 3; pass++) {
        for (int layer = 0; layer < (pass == 1 ? md->layers : 1); layer++) {
            for (int i = 0; i < np; i++) {
                const SpecParam *p = &md->params[i];
                bool head_part = p->role == SPEC_PARAM_HEAD || (p->role == SPEC_PARAM_NORM && !p->is_per_layer) ||
                                 (p->role == SPEC_PARAM_NORM_BIAS && !p->is_per_layer);
                int want = p->is_per_layer ? 1 : head_part ? 2 : 0;
                if (want != pass)
                    continue;
                const char *name = spec_param_name(l->a, p, layer);
                IrType t = ir_type_make(IR_F32, p->ndim, p->shape);
                const SpecLinear *lin = p->role == SPEC_PARAM_LINEAR ? p->linear : NULL;
                bool adapted = lin && lin->is_adapted;
                unsigned flags = IR_G_TRAINABLE | IR_G_EXPORT | (p->has_decay ? IR_G_DECAY : 0);
                IrGlobal *g = ir_global_new(l->m, name, t, adapted ? IR_CLASS_FROZEN : IR_CLASS_PARAM, flags, p->loc);
                switch (p->role) {
                case SPEC_PARAM_NORM: ir_attrs_set_str(l->a, &g->attrs, "init", "ones"); break;
                case SPEC_PARAM_BIAS:
                case SPEC_PARAM_NORM_BIAS: ir_attrs_set_str(l->a, &g->attrs, "init", "zeros"); break;
                default:
                    ir_attrs_set_str(l->a, &g->attrs, "init", "normal");
                    ir_attrs_set_float(l->a, &g->attrs, "init_std", p->init_std);
                }
                if (!p->is_trainable_relora && !adapted)
                    ir_attrs_set_int(l->a, &g->attrs, "frozen_in_relora", 1);
                if (adapted) {
                    ir_attrs_set_int(l->a, &g->attrs, "lora_rank", lin->rank);
                    ir_attrs_set_float(l->a, &g->attrs, "lora_alpha", l->s->adapter.alpha);
                    ir_attrs_set_float(l->a, &g->attrs, "lora_dropout", l->s->adapter.dropout);
                }
                l->param_globals[layer * np + i] = g;
                l->param_of[g->id] = p;
            }
        }
    }
}

static void make_init(Lower *l)
{
    IrFunc *f = ir_func_new(l->m, "init");
    IrBuilder b;
    ir_builder_init(&b, l->m, f, l->d);
    IrNode *zero = ir_const(&b, ir_type_scalar(IR_I32), 0);
    for (int i = 0; i < l->m->n_globals; i++) {
        IrGlobal *g = l->m->globals[i];
        const SpecParam *p = l->param_of[g->id];
        b.loc = g->loc;
        IrAttrs at = {0};
        if (g->cls == IR_CLASS_DATA)
            continue;
        /* §3.1 init_std: matrices normal(0, init_std), norm weights 1, biases and state 0 */
        if (!p || p->role == SPEC_PARAM_NORM || p->role == SPEC_PARAM_BIAS || p->role == SPEC_PARAM_NORM_BIAS) {
            ir_attrs_set_float(l->a, &at, "value", p && p->role == SPEC_PARAM_NORM ? 1.0 : 0.0);
            ir_build(&b, IR_OP_INIT_CONST, NULL, 0, &g, 1, &at);
        } else {
            ir_attrs_set_float(l->a, &at, "std", p->init_std);
            ir_attrs_set_int(l->a, &at, "stream", 1 + g->id);
            ir_build(&b, IR_OP_INIT_NORMAL, &zero, 1, &g, 1, &at);
        }
    }
}

/* The sections of fields.def the spec uses: model, train, the adapter when there is
 * one, and the call section of each call field (adamw, the schedule's kind). */
static void used_sections(const Spec *s, bool used[FS_COUNT])
{
    memset(used, 0, sizeof(bool) * FS_COUNT);
    used[FS_MODEL] = used[FS_TRAIN] = true;
    used[FS_ADAPTER] = s->adapter.is_present;
    for (int i = 0; i < FIELD_COUNT; i++) {
        const FieldDesc *f = &fe_fields[i];
        FieldSection first;
        if (f->type == FT_CALL && used[f->section] && fe_field_kinds(f, &first) > 0)
            used[first + *(const int *)fe_field_value(s, f)] = true;
    }
}

/* f's module attribute(s), as fields.def says each type is written. */
static void field_attr(Lower *l, const FieldDesc *f)
{
    Arena *a = l->a;
    IrAttrs *at = &l->m->attrs;
    const void *v = fe_field_value(l->s, f);
    switch (f->type) {
    case FT_INT: ir_attrs_set_int(a, at, f->attr, *(const int64_t *)v); break;
    case FT_STEPS: {
        const SpecSteps *st = v;
        ir_attrs_set_int(a, at, f->attr, st->n);
        if (st->percent >= 0)
            ir_attrs_set_float(a, at, arena_sprintf(a, "%s_percent", f->attr), st->percent);
        break;
    }
    case FT_NUM: ir_attrs_set_float(a, at, f->attr, *(const double *)v); break;
    case FT_BOOL: ir_attrs_set_int(a, at, f->attr, *(const bool *)v); break;
    case FT_WORD: ir_attrs_set_str(a, at, f->attr, f->words[*(const int *)v]); break;
    case FT_STR: ir_attrs_set_str(a, at, f->attr, *(const char *const *)v); break;
    case FT_DATA: {
        const SpecData *d = v;
        bool has_file = d->kind != SPEC_DATA_NONE;
        ir_attrs_set_str(a, at, arena_sprintf(a, "%s_kind", f->attr),
                         has_file ? f->words[d->kind - SPEC_DATA_TEXT] : "none");
        if (has_file)
            ir_attrs_set_str(a, at, f->attr, d->path);
        break;
    }
    case FT_PAIR:
        ir_attrs_set_float(a, at, arena_sprintf(a, "%s1", f->attr), ((const double *)v)[0]);
        ir_attrs_set_float(a, at, arena_sprintf(a, "%s2", f->attr), ((const double *)v)[1]);
        break;
    case FT_CALL: {
        FieldSection first = FS_COUNT;
        fe_field_kinds(f, &first);
        ir_attrs_set_str(a, at, f->attr, fe_sections[first + *(const int *)v].name);
        break;
    }
    case FT_NAMES:
    case FT_BLOCK: break; /* no attribute: they shape the globals and the graph */
    }
}

/* Every setting the spec uses becomes a module attribute, defaults included, so no
 * pass, emitter or trainer needs a default of its own (fields.def names them). */
static void set_module_attrs(Lower *l)
{
    bool used[FS_COUNT];
    used_sections(l->s, used);
    for (int i = 0; i < FIELD_COUNT; i++)
        if (fe_fields[i].attr && used[fe_fields[i].section])
            field_attr(l, &fe_fields[i]);
}

/* The forward pass over `tokens` ([b,T] i32): the mean cross-entropy against
 * `targets` when given, else the logits [b*T, V]. */
static IrNode *forward(Lower *l, IrFunc *f, int64_t b, IrGlobal *tokens_g, IrGlobal *targets_g)
{
    const SpecModel *md = &l->s->model;
    ir_builder_init(&l->b, l->m, f, l->d);
    int64_t saved_b = l->B;
    l->B = b;
    l->b.loc = md->loc;
    const SpecParam *emb = NULL, *pos = NULL, *fnorm = NULL, *fnorm_b = NULL, *head = NULL;
    for (int i = 0; i < md->n_params; i++) {
        const SpecParam *p = &md->params[i];
        if (p->is_per_layer)
            continue;
        switch (p->role) {
        case SPEC_PARAM_EMBEDDING: emb = p; break;
        case SPEC_PARAM_POSITIONS: pos = p; break;
        case SPEC_PARAM_NORM: fnorm = p; break;
        case SPEC_PARAM_NORM_BIAS: fnorm_b = p; break;
        case SPEC_PARAM_HEAD: head = p; break;
        default: break;
        }
    }
    l->layer = 0;
    IrNode *tokens = ir_global_read(&l->b, tokens_g);
    l->b.loc = emb->loc;
    IrNode *x = ir_embedding(&l->b, read_param(l, emb), tokens); /* [B,T,C] */
    x->name = "embedding";
    if (pos) {
        l->b.loc = pos->loc;
        IrNode *table = ir_slice(&l->b, read_param(l, pos), 0, 0, l->T); /* [T,C] */
        x = ir_binary(&l->b, IR_OP_ADD, x, table);
    }
    for (l->layer = 0; l->layer < md->layers; l->layer++) {
        memset(l->memo, 0, sizeof *l->memo * (size_t)(md->block.n_nodes + 1));
        x = node(l, md->block.ret, x);
    }
    l->layer = 0;
    l->b.loc = fnorm->loc;
    x = norm(l, x, md->norm == SPEC_NORM_RMSNORM ? SPEC_MOD_RMSNORM : SPEC_MOD_LAYERNORM, fnorm, fnorm_b,
             md->norm_eps);
    x->name = "norm";
    l->b.loc = head ? head->loc : emb->loc;
    IrNode *logits = ir_matmul(&l->b, x, read_param(l, head ? head : emb), false, true); /* [B,T,V] */
    logits->name = "head";
    int64_t rows[2] = {l->B * l->T, md->vocab}, flat[1] = {l->B * l->T};
    logits = ir_reshape(&l->b, logits, 2, rows);
    l->B = saved_b;
    if (!targets_g)
        return logits;
    IrNode *targets = ir_reshape(&l->b, ir_global_read(&l->b, targets_g), 1, flat);
    IrNode *loss = ir_cross_entropy(&l->b, logits, targets);
    loss->name = "loss";
    return loss;
}

IrModule *fe_lower(Arena *a, Diags *d, const Spec *s)
{
    Lower l;
    memset(&l, 0, sizeof l);
    l.a = a;
    l.d = d;
    l.s = s;
    /* the functions' unit is the micro-batch: a step runs batch / micro_batch of them */
    l.B = s->train.micro_batch > 0 ? s->train.micro_batch : s->train.batch;
    l.T = s->train.seq_len;
    l.m = ir_module_new(a, s->model.name);
    set_module_attrs(&l);
    ir_attrs_set_str(a, &l.m->attrs, "model_hash", fe_model_hash(a, s));
    make_globals(&l);
    fe_hf_annotate(a, s, l.m);
    make_init(&l);
    l.memo = ARENA_ARRAY(a, IrNode *, s->model.block.n_nodes + 1);
    IrGlobal *tokens = ir_global_find(l.m, "tokens"), *targets = ir_global_find(l.m, "targets");

    IrFunc *train = ir_func_new(l.m, "train");
    train->ret = forward(&l, train, l.B, tokens, targets);
    bool failed = l.b.failed;
    IrFunc *eval = ir_func_new(l.m, "eval");
    eval->ret = forward(&l, eval, l.B, tokens, targets);
    /* Sampling: one sequence, logits at every position. */
    int64_t one_t[2] = {1, l.T};
    IrGlobal *sample = ir_global_new(l.m, "sample_tokens", ir_type_make(IR_I32, 2, one_t), IR_CLASS_DATA, 0,
                                     s->model.loc);
    IrFunc *logits = ir_func_new(l.m, "logits");
    logits->ret = forward(&l, logits, 1, sample, NULL);
    failed = failed || l.b.failed;
    return failed ? NULL : l.m;
}
