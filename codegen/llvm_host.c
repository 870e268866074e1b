/* Host code in LLVM IR: one function per KFunc that runs its kernels in order, the tensor
 * table and the `relorac_model` constant (runtime/rt.h) that names those functions, the
 * tensors the runtime writes and reads around them (RtModel.io) and the default schedule.
 * Which function runs at which step is the runtime's step policy (runtime/step.c), not
 * code emitted here. Everything is a pure function of the KProgram. */
#include <inttypes.h>
#include <string.h>

#include "llvm_cg.h"
#include "rt_ops.h"

/* ---- host functions ---- */

static void load_pools(CgCtx *c, CgFn *h)
{
    LLVMTypeRef arr = LLVMArrayType(c->t_p8, RT_POOL_COUNT);
    LLVMValueRef base = LLVMBuildStructGEP2(c->b, c->t_ctx, h->ctx, 1, "");
    for (int i = 0; i < RT_POOL_COUNT; i++) {
        LLVMValueRef idx[2] = {cg_const_i32(c, 0), cg_const_i32(c, i)};
        LLVMValueRef pp = LLVMBuildInBoundsGEP2(c->b, arr, base, idx, 2, "");
        h->pools[i] = LLVMBuildLoad2(c->b, c->t_p8, pp, "pool");
    }
    h->seed = LLVMBuildLoad2(c->b, c->t_i64, LLVMBuildStructGEP2(c->b, c->t_ctx, h->ctx, 2, ""), "seed");
}

/* The buffer of global `name`, or -1. */
static int global_buf(const CgCtx *c, const char *name)
{
    const IrGlobal *g = c->p->m ? ir_global_find(c->p->m, name) : NULL;
    return g && c->p->global_buf ? c->p->global_buf[g->id] : -1;
}

/* float relorac_fn_<name>(RtCtx *ctx): runs the KFunc's kernels in order, each as the
 * target makes it; the step of the RNG counters is the @step global as the runtime wrote
 * it. Returns the function's ret value (loss, gradient norm), 0 when it has none. */
static LLVMValueRef emit_host_fn(CgCtx *c, const KFunc *f)
{
    CgFn h;
    memset(&h, 0, sizeof h);
    h.fn = LLVMAddFunction(c->mod, arena_sprintf(c->a, "relorac_fn_%s", f->name), c->t_host_fn);
    h.ctx = LLVMGetParam(h.fn, 0);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->llc, h.fn, "entry"));
    load_pools(c, &h);
    int sb = global_buf(c, "step");
    h.step_buf = sb >= 0 && c->p->bufs[sb].dtype == IR_I32 ? sb : -1;
    if (c->target->begin)
        c->target->begin(c, &h);
    for (int i = 0; i < f->n_kernels; i++)
        c->target->kernel(c, &h, f, f->kernels[i]);
    LLVMBuildRet(c->b, f->ret_buf >= 0 ? c->target->ret(c, &h, f->ret_buf) : cg_const_f32(c, 0.0));
    return h.fn;
}

/* ---- entry points ---- */

static int func_index(const CgCtx *c, const char *name)
{
    for (int i = 0; i < c->p->n_funcs; i++)
        if (strcmp(c->p->funcs[i]->name, name) == 0)
            return i;
    return -1;
}

static int64_t mod_int(const CgCtx *c, const char *key, int64_t dflt)
{
    return c->p->m ? ir_attrs_int(&c->p->m->attrs, key, dflt) : dflt;
}

/* ---- the model table ---- */

static int rt_dtype(IrDType t)
{
    return t == IR_F32 ? RT_F32 : t == IR_BF16 ? RT_BF16 : RT_I32;
}

/* A global named by a link attribute (string name or integer id), or NULL. */
static const IrGlobal *linked(const IrModule *m, const IrGlobal *g, const char *key)
{
    const IrAttr *at = ir_attrs_get(&g->attrs, key);
    if (!at)
        return NULL;
    if (at->kind == IR_ATTR_STR)
        return ir_global_find(m, at->s);
    if (at->kind == IR_ATTR_INT && at->i >= 0 && at->i < m->n_globals)
        return m->globals[at->i];
    return NULL;
}

static LLVMValueRef opt_str(CgCtx *c, const char *s)
{
    return s ? cg_const_str(c, s) : LLVMConstNull(c->t_p8);
}

static LLVMValueRef i32c(CgCtx *c, int64_t v)
{
    return cg_const_i32(c, (int32_t)v);
}

/* The IR global behind RtModel.io[k]; RT_IO_LOGITS is the ret value of @logits instead. */
static const char *const io_globals[RT_IO_COUNT] = {
    [RT_IO_TOKENS] = "tokens",         [RT_IO_TARGETS] = "targets",
    [RT_IO_STEP] = "step",             [RT_IO_LR] = "lr",
    [RT_IO_ADAM_T] = "adam_t",         [RT_IO_PRUNE_FRACTION] = "prune_fraction",
    [RT_IO_SAMPLE_TOKENS] = "sample_tokens", [RT_IO_MICRO_STEP] = "micro_step",
};

/* The IR function behind RtModel.fn[k] (rt.h enum RtFn). */
static const char *const fn_funcs[RT_FN_COUNT] = {
    [RT_FN_INIT] = "init",
    [RT_FN_TRAIN_FULL] = "train_full",
    [RT_FN_NORM_FULL] = "norm_full",
    [RT_FN_UPDATE_FULL] = "update_full",
    [RT_FN_TRAIN_LORA] = "train_lora",
    [RT_FN_NORM_LORA] = "norm_lora",
    [RT_FN_UPDATE_LORA] = "update_lora",
    [RT_FN_SWITCH] = "switch",
    [RT_FN_RESET] = "relora_reset",
    [RT_FN_EVAL] = "eval",
    [RT_FN_LOGITS] = "logits",
    [RT_FN_REFRESH] = "refresh",
};

static LLVMValueRef tensor_row(CgCtx *c, LLVMTypeRef t_info, const char *name, IrType ty,
                               const CgBufLoc *l, unsigned flags, int la, int lb, double scale)
{
    LLVMValueRef shape[4];
    for (int d = 0; d < 4; d++)
        shape[d] = cg_const_i64(c, d < ty.rank ? ty.dim[d] : 0);
    LLVMValueRef f[10] = {cg_const_str(c, name),
                          i32c(c, rt_dtype(ty.dtype)),
                          i32c(c, ty.rank < 0 ? 0 : ty.rank),
                          LLVMConstArray(c->t_i64, shape, 4),
                          i32c(c, l->pool),
                          cg_const_i64(c, l->offset),
                          i32c(c, flags),
                          i32c(c, la),
                          i32c(c, lb),
                          cg_const_f32(c, scale)};
    return LLVMConstNamedStruct(t_info, f, 10);
}

/* Every global with a buffer, then the logits @logits returns (RT_IO_LOGITS). io gets the
 * table index of each io tensor, -1 when absent; *row_out the table index of each global
 * (-1: none). */
static LLVMValueRef emit_tensors(CgCtx *c, LLVMTypeRef t_info, int *n_out, int io[RT_IO_COUNT], int **row_out)
{
    const IrModule *m = c->p->m;
    int n = m ? m->n_globals : 0;
    LLVMValueRef *items = ARENA_ARRAY(c->a, LLVMValueRef, n + 2);
    int *row = ARENA_ARRAY(c->a, int, n + 1); /* global id -> table index */
    *row_out = row;
    unsigned *extra = ARENA_ARRAY(c->a, unsigned, n + 1);
    int nt = 0;
    for (int i = 0; i < n; i++) {
        row[i] = -1;
        if (c->p->global_buf && c->p->global_buf[i] >= 0)
            row[i] = nt++;
    }
    for (int i = 0; i < n; i++) { /* adapter roles come from the W -> A, B links */
        const IrGlobal *g = m->globals[i], *a = linked(m, g, "lora_a"), *bb = linked(m, g, "lora_b");
        if (a)
            extra[a->id] |= RT_T_ADAPTER_A;
        if (bb)
            extra[bb->id] |= RT_T_ADAPTER_B;
    }
    for (int i = 0; i < n; i++) { /* a moment carries its factor's role */
        const IrGlobal *p = linked(m, m->globals[i], "moment_of");
        if (p)
            extra[i] |= extra[p->id] & (RT_T_ADAPTER_A | RT_T_ADAPTER_B);
    }
    for (int k = 0; k < RT_IO_COUNT; k++) {
        const IrGlobal *g = io_globals[k] && m ? ir_global_find(m, io_globals[k]) : NULL;
        io[k] = g ? row[g->id] : -1;
        if (io[k] >= 0)
            extra[g->id] |= RT_T_IO;
    }
    nt = 0;
    for (int i = 0; i < n; i++) {
        const IrGlobal *g = m->globals[i];
        if (row[i] < 0)
            continue;
        unsigned flags = extra[i];
        if (g->flags & IR_G_EXPORT)
            flags |= RT_T_PARAM;
        if (g->flags & IR_G_TRAINABLE)
            flags |= RT_T_TRAINABLE;
        if ((g->flags & IR_G_TRAINABLE) && (g->flags & IR_G_DECAY))
            flags |= RT_T_DECAY;
        if (g->flags & IR_G_MOMENT)
            flags |= RT_T_MOMENT;
        if (g->cls == IR_CLASS_STATE)
            flags |= RT_T_STATE;
        if (g->cls == IR_CLASS_GRAD)
            flags |= RT_T_GRAD;
        int phase = c->p->bufs[c->p->global_buf[i]].phase; /* the plan's: ir/kernel.h */
        if (phase == K_PHASE_FULL)
            flags |= RT_T_PHASE_FULL;
        else if (phase == K_PHASE_LORA)
            flags |= RT_T_PHASE_LORA;
        const IrGlobal *a = linked(m, g, "lora_a"), *bb = linked(m, g, "lora_b");
        int la = a && bb && row[a->id] >= 0 && row[bb->id] >= 0 ? row[a->id] : -1;
        int lb = la >= 0 ? row[bb->id] : -1;
        items[nt++] = tensor_row(c, t_info, g->name, g->type, &c->loc[c->p->global_buf[i]], flags, la, lb,
                                 la >= 0 ? ir_attrs_float(&g->attrs, "lora_scale", 1.0) : 0.0);
    }
    io[RT_IO_LOGITS] = -1;
    int fi = func_index(c, "logits");
    int rb = fi >= 0 ? c->p->funcs[fi]->ret_buf : -1;
    if (rb >= 0 && c->p->bufs[rb].dtype == IR_F32) {
        int64_t T = mod_int(c, "seq_len", 0), V = mod_int(c, "vocab", 0);
        int64_t dims[2] = {c->p->bufs[rb].numel / (V > 0 ? V : 1), V};
        if (T > 0 && dims[0] >= T) {
            io[RT_IO_LOGITS] = nt;
            items[nt++] = tensor_row(c, t_info, "logits", ir_type_make(IR_F32, 2, dims), &c->loc[rb],
                                     RT_T_IO, -1, -1, 0.0);
        }
    }
    *n_out = nt;
    LLVMValueRef arr = LLVMConstArray(t_info, items, (unsigned)nt);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMArrayType(t_info, (unsigned)nt), "relorac_tensors");
    LLVMSetInitializer(gv, arr);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return LLVMConstBitCast(gv, LLVMPointerType(t_info, 0));
}

/* A private constant array of `n` items of type t; a null pointer when n is 0. */
static LLVMValueRef const_array(CgCtx *c, LLVMTypeRef t, LLVMValueRef *items, int n, const char *name)
{
    if (n == 0)
        return LLVMConstNull(LLVMPointerType(t, 0));
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMArrayType(t, (unsigned)n), name);
    LLVMSetInitializer(gv, LLVMConstArray(t, items, (unsigned)n));
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return LLVMConstBitCast(gv, LLVMPointerType(t, 0));
}

/* The export table (rt.h RtExport) from the exported globals: a global with an `hf_name`
 * attribute is part `hf_part` (default 0) of that tensor, concatenated along `hf_axis`
 * (default 0) and transposed when `hf_transpose` is 1 (frontend/hf.c sets them); any other
 * keeps its own name. Exports come in the order of their first part's global. */
static LLVMValueRef emit_exports(CgCtx *c, const int *row, int *n_out)
{
    const IrModule *m = c->p->m;
    int n = m->n_globals, nx = 0;
    *n_out = 0;
    LLVMTypeRef t_part = LLVMStructCreateNamed(c->llc, "RtExportPart");
    LLVMTypeRef pf[2] = {c->t_i32, c->t_i32};
    LLVMStructSetBody(t_part, pf, 2, 0);
    LLVMTypeRef t_exp = LLVMStructCreateNamed(c->llc, "RtExport");
    LLVMTypeRef ef[4] = {c->t_p8, c->t_i32, c->t_i32, LLVMPointerType(t_part, 0)};
    LLVMStructSetBody(t_exp, ef, 4, 0);
    const char **names = ARENA_ARRAY(c->a, const char *, n + 1);
    LLVMValueRef *items = ARENA_ARRAY(c->a, LLVMValueRef, n + 1);
    const IrGlobal **parts = ARENA_ARRAY(c->a, const IrGlobal *, n + 1);
    for (int i = 0; i < n; i++) {
        const IrGlobal *g = m->globals[i];
        if (!(g->flags & IR_G_EXPORT) || row[i] < 0)
            continue;
        const char *name = ir_attrs_str(&g->attrs, "hf_name", g->name);
        bool seen = false;
        for (int x = 0; x < nx && !seen; x++)
            seen = strcmp(names[x], name) == 0;
        if (seen)
            continue;
        /* every part of `name`, by hf_part */
        int np = 0;
        for (int j = i; j < n; j++) {
            const IrGlobal *h = m->globals[j];
            if ((h->flags & IR_G_EXPORT) && row[j] >= 0 && !strcmp(ir_attrs_str(&h->attrs, "hf_name", h->name), name))
                parts[np++] = h;
        }
        LLVMValueRef *pv = ARENA_ARRAY(c->a, LLVMValueRef, np + 1);
        int64_t axis = ir_attrs_int(&g->attrs, "hf_axis", 0);
        for (int k = 0; k < np; k++) {
            const IrGlobal *h = NULL;
            for (int j = 0; j < np; j++)
                if (ir_attrs_int(&parts[j]->attrs, "hf_part", 0) == k)
                    h = h ? NULL : parts[j];
            if (!h || ir_attrs_int(&h->attrs, "hf_axis", 0) != axis) {
                diag_error(c->d, g->loc, "exported tensor '%s': no single part %d on axis %" PRId64 " among its %d globals",
                           name, k, axis, np);
                return LLVMConstNull(LLVMPointerType(t_exp, 0));
            }
            LLVMValueRef f[2] = {i32c(c, row[h->id]), i32c(c, ir_attrs_int(&h->attrs, "hf_transpose", 0) != 0)};
            pv[k] = LLVMConstNamedStruct(t_part, f, 2);
        }
        LLVMValueRef f[4] = {cg_const_str(c, name), i32c(c, axis), i32c(c, np),
                             const_array(c, t_part, pv, np, "relorac_export_parts")};
        names[nx] = name;
        items[nx++] = LLVMConstNamedStruct(t_exp, f, 4);
    }
    *n_out = nx;
    return const_array(c, t_exp, items, nx, "relorac_exports");
}

/* The config.json fields --init-from compares (rt.h RtHfCheck), from the module attribute
 * hf.config_check: one line per field, "key<TAB>what<TAB>value[<TAB>absent]". */
static LLVMValueRef emit_hf_checks(CgCtx *c, int *n_out)
{
    LLVMTypeRef t_chk = LLVMStructCreateNamed(c->llc, "RtHfCheck");
    LLVMTypeRef cf[4] = {c->t_p8, c->t_p8, c->t_p8, c->t_p8};
    LLVMStructSetBody(t_chk, cf, 4, 0);
    const char *text = ir_attrs_str(&c->p->m->attrs, "hf.config_check", "");
    int cap = 1;
    for (const char *s = text; *s; s++)
        cap += *s == '\n';
    LLVMValueRef *items = ARENA_ARRAY(c->a, LLVMValueRef, cap + 1);
    int n = 0;
    for (const char *s = text; *s;) {
        const char *end = strchr(s, '\n');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        const char *field[4] = {NULL, NULL, NULL, NULL};
        int nf = 0;
        for (size_t a = 0; a <= len && nf < 4;) {
            size_t b = a;
            while (b < len && s[b] != '\t')
                b++;
            field[nf++] = arena_strndup(c->a, s + a, b - a);
            a = b + 1;
        }
        if (nf < 3) {
            diag_error(c->d, srcloc_none(), "hf.config_check line '%.*s' has %d fields, not 3 or 4", (int)len, s, nf);
            break;
        }
        LLVMValueRef f[4] = {cg_const_str(c, field[0]), cg_const_str(c, field[1]), cg_const_str(c, field[2]),
                             opt_str(c, field[3])};
        items[n++] = LLVMConstNamedStruct(t_chk, f, 4);
        s += len + (end != NULL);
    }
    *n_out = n;
    return const_array(c, t_chk, items, n, "relorac_hf_checks");
}

/* A constant struct built field by field, so the LLVM layout and the values stay paired
 * (the order is rt.h's). */
typedef struct Fields {
    LLVMTypeRef t[24];
    LLVMValueRef v[24];
    int n;
} Fields;

static void field(Fields *f, LLVMValueRef v)
{
    CG_ASSERT(f->n < 24);
    f->t[f->n] = LLVMTypeOf(v);
    f->v[f->n++] = v;
}

static LLVMValueRef named_struct(CgCtx *c, const char *name, Fields *f)
{
    LLVMTypeRef t = LLVMStructCreateNamed(c->llc, name);
    LLVMStructSetBody(t, f->t, (unsigned)f->n, 0);
    return LLVMConstNamedStruct(t, f->v, (unsigned)f->n);
}

/* A module attribute the trainer defaults come from; missing is an error (no second default). */
static const IrAttr *need(CgCtx *c, const char *key, IrAttrKind kind)
{
    const IrAttr *a = c->p->m ? ir_attrs_get(&c->p->m->attrs, key) : NULL;
    if (a && (a->kind == kind || (kind == IR_ATTR_FLOAT && a->kind == IR_ATTR_INT)))
        return a;
    diag_error(c->d, srcloc_none(), "module attribute '%s' is missing: the trainer takes its default from it", key);
    return NULL;
}

static int64_t need_int(CgCtx *c, const char *key)
{
    const IrAttr *a = need(c, key, IR_ATTR_INT);
    return a ? a->i : 0;
}

static double need_float(CgCtx *c, const char *key)
{
    const IrAttr *a = need(c, key, IR_ATTR_FLOAT);
    return !a ? 0.0 : a->kind == IR_ATTR_INT ? (double)a->i : a->f;
}

static const char *need_str(CgCtx *c, const char *key)
{
    const IrAttr *a = need(c, key, IR_ATTR_STR);
    return a ? a->s : "";
}

static LLVMValueRef emit_defaults(CgCtx *c)
{
    const IrAttrs *as = &c->p->m->attrs;
    const char *kind = need_str(c, "train.data_kind");
    Fields f = {0};
    field(&f, cg_const_i64(c, need_int(c, "train.eval_every")));
    field(&f, cg_const_i64(c, need_int(c, "train.eval_batches")));
    field(&f, cg_const_i64(c, need_int(c, "train.checkpoint_every")));
    field(&f, cg_const_i64(c, 0)); /* log_every: the trainer's own option, no spec field */
    field(&f, cg_const_i64(c, need_int(c, "train.seed")));
    field(&f, i32c(c, 0)); /* threads: all online CPUs unless --threads */
    field(&f, i32c(c, !strcmp(kind, "tokens")    ? RT_DATA_TOKENS
                      : !strcmp(kind, "nanogpt") ? RT_DATA_NANOGPT
                                                 : RT_DATA_TEXT));
    field(&f, cg_const_f32(c, need_float(c, "train.val_fraction")));
    field(&f, opt_str(c, ir_attrs_str(as, "train.data", NULL)));
    field(&f, opt_str(c, ir_attrs_str(as, "train.val_data", NULL)));
    field(&f, cg_const_str(c, need_str(c, "train.out")));
    field(&f, opt_str(c, ir_attrs_str(as, "train.init_from", NULL)));
    return named_struct(c, "RtTrainDefaults", &f);
}

static LLVMValueRef emit_schedule(CgCtx *c)
{
    IrSchedule s;
    if (!ir_schedule_from_module(c->p->m, &s, c->d))
        memset(&s, 0, sizeof s);
    static const int kinds[] = {[IR_SCHED_CONSTANT] = RT_SCHED_CONSTANT, [IR_SCHED_COSINE] = RT_SCHED_COSINE,
                                [IR_SCHED_RELORA] = RT_SCHED_RELORA};
    Fields f = {0};
    field(&f, i32c(c, kinds[s.kind]));
    const int64_t ints[5] = {s.steps, s.warmup, s.warm_start, s.reset_every, s.restart_warmup};
    for (int i = 0; i < 5; i++)
        field(&f, cg_const_i64(c, ints[i]));
    const double nums[8] = {s.lr, s.relora_lr, s.min_lr_ratio, s.prune,
                            s.warmup_pct, s.warm_start_pct, s.reset_every_pct, s.restart_warmup_pct};
    for (int i = 0; i < 8; i++)
        field(&f, LLVMConstReal(c->t_f64, nums[i]));
    return named_struct(c, "RtSchedule", &f);
}

/* RtOptim from the module attributes the optimizer pass read (0 where absent: a program
 * without update functions). */
static LLVMValueRef emit_optim(CgCtx *c)
{
    const IrAttrs *as = &c->p->m->attrs;
    const char *keys[5] = {"optim.beta1", "optim.beta2", "optim.eps", "optim.weight_decay", "train.clip"};
    Fields f = {0};
    for (int i = 0; i < 5; i++)
        field(&f, LLVMConstReal(c->t_f64, ir_attrs_float(as, keys[i], 0.0)));
    return named_struct(c, "RtOptim", &f);
}

static void emit_model(CgCtx *c)
{
    const IrModule *m = c->p->m;
    if (!m) {
        diag_error(c->d, srcloc_none(), "the kernel program has no IR module: no model table");
        return;
    }
    LLVMTypeRef t_info = LLVMStructCreateNamed(c->llc, "RtTensorInfo");
    LLVMTypeRef fi[10] = {c->t_p8, c->t_i32, c->t_i32, LLVMArrayType(c->t_i64, 4), c->t_i32,
                          c->t_i64, c->t_i32, c->t_i32, c->t_i32, c->t_f32};
    LLVMStructSetBody(t_info, fi, 10, 0);
    int nt, io[RT_IO_COUNT], nx, nchk, *row;
    LLVMValueRef tensors = emit_tensors(c, t_info, &nt, io, &row);
    LLVMValueRef exports = emit_exports(c, row, &nx), checks = emit_hf_checks(c, &nchk);
    LLVMValueRef pools[RT_POOL_COUNT], fns[RT_FN_COUNT], ios[RT_IO_COUNT];
    for (int i = 0; i < RT_POOL_COUNT; i++)
        pools[i] = cg_const_i64(c, c->pool_bytes[i]);
    LLVMTypeRef t_pfn = LLVMPointerType(c->t_host_fn, 0);
    for (int k = 0; k < RT_FN_COUNT; k++) {
        int f = func_index(c, fn_funcs[k]);
        fns[k] = f >= 0 ? c->host_fn[f] : LLVMConstNull(t_pfn);
    }
    for (int k = 0; k < RT_IO_COUNT; k++)
        ios[k] = i32c(c, io[k]);
    Fields f = {0};
    field(&f, i32c(c, RT_ABI_VERSION));
    field(&f, cg_const_str(c, m->name ? m->name : "model"));
    field(&f, cg_const_str(c, need_str(c, "model_hash")));
    field(&f, opt_str(c, ir_attrs_str(&m->attrs, "hf.config_json", NULL)));
    field(&f, opt_str(c, ir_attrs_str(&m->attrs, "hf.export_note", NULL)));
    field(&f, opt_str(c, ir_attrs_str(&m->attrs, "hf.prefix", NULL)));
    field(&f, i32c(c, nx));
    field(&f, exports);
    field(&f, i32c(c, nchk));
    field(&f, checks);
    field(&f, i32c(c, need_int(c, "vocab")));
    field(&f, i32c(c, need_int(c, "batch")));
    field(&f, i32c(c, need_int(c, "seq_len")));
    field(&f, i32c(c, need_int(c, "train.micro_batch")));
    field(&f, i32c(c, nt));
    field(&f, tensors);
    field(&f, LLVMConstArray(c->t_i64, pools, RT_POOL_COUNT));
    field(&f, emit_defaults(c));
    field(&f, emit_schedule(c));
    field(&f, LLVMConstArray(t_pfn, fns, RT_FN_COUNT));
    field(&f, LLVMConstArray(c->t_i32, ios, RT_IO_COUNT));
    /* the device layer and its code: the target's, NULL on the host */
    LLVMValueRef dev[2] = {LLVMConstNull(c->t_p8), LLVMConstNull(c->t_p8)};
    if (c->target->device)
        c->target->device(c, dev);
    field(&f, dev[0]);
    field(&f, dev[1]);
    field(&f, emit_optim(c));
    LLVMValueRef model = named_struct(c, "RtModel", &f);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(model), "relorac_model");
    LLVMSetInitializer(gv, model);
    LLVMSetGlobalConstant(gv, 1);
}

static void emit_main(CgCtx *c)
{
    LLVMValueRef model = LLVMGetNamedGlobal(c->mod, "relorac_model");
    LLVMTypeRef pt[3] = {c->t_i32, LLVMPointerType(c->t_p8, 0), c->t_p8};
    LLVMTypeRef rt_main_ty = LLVMFunctionType(c->t_i32, pt, 3, 0);
    LLVMValueRef rt_main = LLVMAddFunction(c->mod, "rt_main", rt_main_ty);
    LLVMValueRef fn = LLVMAddFunction(c->mod, "main", LLVMFunctionType(c->t_i32, pt, 2, 0));
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->llc, fn, "entry"));
    LLVMValueRef a[3] = {LLVMGetParam(fn, 0), LLVMGetParam(fn, 1), LLVMConstBitCast(model, c->t_p8)};
    LLVMBuildRet(c->b, LLVMBuildCall2(c->b, rt_main_ty, rt_main, a, 3, ""));
}

void cg_host_emit(CgCtx *c, bool with_main)
{
    c->host_fn = ARENA_ARRAY(c->a, LLVMValueRef, c->p->n_funcs + 1);
    for (int i = 0; i < c->p->n_funcs; i++)
        c->host_fn[i] = emit_host_fn(c, c->p->funcs[i]);
    emit_model(c);
    if (with_main && LLVMGetNamedGlobal(c->mod, "relorac_model"))
        emit_main(c);
}
