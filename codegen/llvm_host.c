/* Host code in LLVM IR: one function per KFunc that runs its kernels in order, the RtModel
 * entry points (init, train_step, eval_loss, logits) built on them, the tensor table and the
 * `relorac_model` constant (runtime/rt.h). What train_step relies on from the IR (function
 * names, the @tokens/@targets/@step globals, the relora.* module attributes) is listed in
 * docs/codegen.md. Everything is a pure function of the KProgram. */
#include <inttypes.h>
#include <string.h>

#include "llvm_cg.h"
#include "rt_ops.h"

/* ---- buffers ---- */

/* i8* to buffer `buf` given the loaded pool bases. */
static LLVMValueRef buf_ptr(CgCtx *c, LLVMValueRef *pools, int buf)
{
    const CgBufLoc *l = &c->loc[buf];
    LLVMValueRef off = cg_const_i64(c, l->offset);
    return LLVMBuildInBoundsGEP2(c->b, c->t_i8, pools[l->pool], &off, 1, "");
}

static LLVMValueRef typed(CgCtx *c, LLVMValueRef p, LLVMTypeRef elem)
{
    return LLVMBuildBitCast(c->b, p, LLVMPointerType(elem, 0), "");
}

static void load_pools(CgCtx *c, LLVMValueRef ctx, LLVMValueRef *pools, LLVMValueRef *seed)
{
    LLVMTypeRef arr = LLVMArrayType(c->t_p8, RT_POOL_COUNT);
    LLVMValueRef base = LLVMBuildStructGEP2(c->b, c->t_ctx, ctx, 1, "");
    for (int i = 0; i < RT_POOL_COUNT; i++) {
        LLVMValueRef idx[2] = {cg_const_i32(c, 0), cg_const_i32(c, i)};
        LLVMValueRef pp = LLVMBuildInBoundsGEP2(c->b, arr, base, idx, 2, "");
        pools[i] = LLVMBuildLoad2(c->b, c->t_p8, pp, "pool");
    }
    if (seed)
        *seed = LLVMBuildLoad2(c->b, c->t_i64, LLVMBuildStructGEP2(c->b, c->t_ctx, ctx, 2, ""),
                               "seed");
}

static const char *kname(const Kernel *k)
{
    return k->name ? k->name : "?";
}

static bool check_buf(CgCtx *c, const Kernel *k, int buf, const char *what, bool f32)
{
    if (buf < 0 || buf >= c->p->n_bufs) {
        diag_error(c->d, k->loc, "kernel %s: %s buffer %d does not exist", kname(k), what, buf);
        return false;
    }
    if (f32 && c->p->bufs[buf].dtype != IR_F32) {
        diag_error(c->d, k->loc, "kernel %s: the LLVM backend needs an f32 %s buffer (got %s)",
                   kname(k), what, ir_dtype_name(c->p->bufs[buf].dtype));
        return false;
    }
    return true;
}

/* ---- kernels in host functions ---- */

static int64_t kernel_rows(const Kernel *k)
{
    int64_t rows = 1;
    for (int i = 0; i < k->n_outer; i++)
        rows *= k->outer[i];
    return rows;
}

static void emit_loop_call(CgCtx *c, const KFunc *f, const Kernel *k, LLVMValueRef ctx,
                           LLVMValueRef *pools, LLVMValueRef seed, LLVMValueRef step)
{
    for (int i = 0; i < k->n_code; i++) {
        const KInstr *in = &k->code[i];
        if ((in->op == KI_LOAD || in->op == KI_LOAD_I || in->op == KI_STORE ||
             in->op == KI_STORE_ADD) &&
            !check_buf(c, k, in->buf, "loop", false))
            return;
    }
    LLVMBasicBlockRef here = LLVMGetInsertBlock(c->b);
    LLVMTypeRef st;
    int *bufs, nb;
    bool serial;
    LLVMValueRef fn = cg_kernel_emit(c, f, k, &st, &bufs, &nb, &serial);
    LLVMPositionBuilderAtEnd(c->b, here);

    LLVMValueRef args = LLVMBuildAlloca(c->b, st, "args");
    for (int i = 0; i < nb; i++)
        LLVMBuildStore(c->b, buf_ptr(c, pools, bufs[i]),
                       LLVMBuildStructGEP2(c->b, st, args, (unsigned)i, ""));
    LLVMBuildStore(c->b, seed, LLVMBuildStructGEP2(c->b, st, args, (unsigned)nb, ""));
    LLVMBuildStore(c->b, step, LLVMBuildStructGEP2(c->b, st, args, (unsigned)nb + 1, ""));
    LLVMValueRef argp = LLVMBuildBitCast(c->b, args, c->t_p8, "");
    int64_t rows = kernel_rows(k);
    int64_t below = c->opt->serial_below > 0 ? c->opt->serial_below : 16384;
    if (serial || rows < 2 || rows * k->inner * k->n_phases < below) {
        LLVMValueRef a[3] = {argp, cg_const_i64(c, 0), cg_const_i64(c, rows)};
        LLVMBuildCall2(c->b, c->t_kernel_fn, fn, a, 3, "");
    } else {
        LLVMValueRef a[4] = {ctx, cg_const_i64(c, rows), fn, argp};
        LLVMBuildCall2(c->b, c->t_parallel_for, c->f_parallel_for, a, 4, "");
    }
}

static void emit_gemm(CgCtx *c, const Kernel *k, LLVMValueRef ctx, LLVMValueRef *pools)
{
    const KGemm *g = &k->gemm;
    if (!check_buf(c, k, g->a, "A", true) || !check_buf(c, k, g->b, "B", true) ||
        !check_buf(c, k, g->c, "C", true))
        return;
    LLVMValueRef off_a = cg_const_i64(c, g->off_a), off_b = cg_const_i64(c, g->off_b),
                 off_c = cg_const_i64(c, g->off_c);
    LLVMValueRef pa = LLVMBuildInBoundsGEP2(c->b, c->t_f32,
                                            typed(c, buf_ptr(c, pools, g->a), c->t_f32), &off_a, 1, "");
    LLVMValueRef pb = LLVMBuildInBoundsGEP2(c->b, c->t_f32,
                                            typed(c, buf_ptr(c, pools, g->b), c->t_f32), &off_b, 1, "");
    LLVMValueRef pc = LLVMBuildInBoundsGEP2(c->b, c->t_f32,
                                            typed(c, buf_ptr(c, pools, g->c), c->t_f32), &off_c, 1, "");
    LLVMValueRef a[18] = {ctx,
                          cg_const_i32(c, g->trans_a),
                          cg_const_i32(c, g->trans_b),
                          cg_const_i64(c, g->m),
                          cg_const_i64(c, g->n),
                          cg_const_i64(c, g->k),
                          cg_const_f32(c, g->alpha),
                          pa,
                          cg_const_i64(c, g->lda),
                          cg_const_i64(c, g->stride_a),
                          pb,
                          cg_const_i64(c, g->ldb),
                          cg_const_i64(c, g->stride_b),
                          cg_const_f32(c, g->beta),
                          pc,
                          cg_const_i64(c, g->ldc),
                          cg_const_i64(c, g->stride_c),
                          cg_const_i64(c, g->batch > 0 ? g->batch : 1)};
    LLVMBuildCall2(c->b, c->t_sgemm, c->f_sgemm, a, 18, "");
}

static bool attr_float(CgCtx *c, const Kernel *k, const char *key, double *out)
{
    const IrAttr *at = ir_attrs_get(&k->call_attrs, key);
    if (!at || (at->kind != IR_ATTR_FLOAT && at->kind != IR_ATTR_INT)) {
        diag_error(c->d, k->loc, "kernel %s: missing numeric attribute '%s'", kname(k), key);
        return false;
    }
    *out = ir_attrs_float(&k->call_attrs, key, 0.0);
    return true;
}

static LLVMValueRef stats_slot(CgCtx *c, LLVMValueRef stats, int i)
{
    LLVMValueRef idx = cg_const_i64(c, i);
    return LLVMBuildInBoundsGEP2(c->b, c->t_i64, stats, &idx, 1, "");
}

/* stats[0] += zeroed, stats[1] += n */
static void count_pruned(CgCtx *c, LLVMValueRef stats, LLVMValueRef zeroed, int64_t n)
{
    LLVMValueRef s0 = stats_slot(c, stats, 0), s1 = stats_slot(c, stats, 1);
    LLVMBuildStore(c->b, LLVMBuildAdd(c->b, LLVMBuildLoad2(c->b, c->t_i64, s0, ""), zeroed, ""), s0);
    LLVMBuildStore(c->b,
                   LLVMBuildAdd(c->b, LLVMBuildLoad2(c->b, c->t_i64, s1, ""), cg_const_i64(c, n), ""),
                   s1);
}

/* K_CALL: call_bufs = {x, step}; the step is read from its buffer (the kernel
 * interpreter's contract), or is the host function's step when the kernel names none. */
static void emit_call(CgCtx *c, const Kernel *k, LLVMValueRef *pools, LLVMValueRef seed,
                      LLVMValueRef step, LLVMValueRef stats)
{
    if (k->n_call_bufs < 1 || !check_buf(c, k, k->call_bufs[0], "call", true))
        return;
    if (k->n_call_bufs >= 2) {
        if (!check_buf(c, k, k->call_bufs[1], "step", false))
            return;
        if (c->p->bufs[k->call_bufs[1]].dtype != IR_I32) {
            diag_error(c->d, k->loc, "kernel %s: the step buffer must be i32", kname(k));
            return;
        }
        LLVMValueRef sp = typed(c, buf_ptr(c, pools, k->call_bufs[1]), c->t_i32);
        step = LLVMBuildSExt(c->b, LLVMBuildLoad2(c->b, c->t_i32, sp, "step"), c->t_i64, "");
    }
    const KBuf *kb = &c->p->bufs[k->call_bufs[0]];
    LLVMValueRef x = typed(c, buf_ptr(c, pools, k->call_bufs[0]), c->t_f32);
    switch (k->call) {
    case KC_PRUNE_MAGNITUDE: {
        double frac;
        if (!attr_float(c, k, "fraction", &frac))
            return;
        LLVMValueRef a[3] = {x, cg_const_i64(c, kb->numel), LLVMConstReal(c->t_f64, frac)};
        count_pruned(c, stats, LLVMBuildCall2(c->b, c->t_prune_mag, c->f_prune_mag, a, 3, ""),
                     kb->numel);
        return;
    }
    case KC_PRUNE_RANDOM: {
        double frac;
        if (!attr_float(c, k, "fraction", &frac))
            return;
        if (!ir_attrs_get(&k->call_attrs, "stream")) {
            diag_error(c->d, k->loc, "kernel %s: missing integer attribute 'stream'", kname(k));
            return;
        }
        int64_t stream = ir_attrs_int(&k->call_attrs, "stream", 0);
        LLVMValueRef a[6] = {x, cg_const_i64(c, kb->numel), LLVMConstReal(c->t_f64, frac), seed,
                             cg_const_i64(c, stream), step};
        count_pruned(c, stats, LLVMBuildCall2(c->b, c->t_prune_rand, c->f_prune_rand, a, 6, ""),
                     kb->numel);
        return;
    }
    case KC_LR_SCHEDULE: {
        const IrAttrs *as = &k->call_attrs;
        const char *kind = ir_attrs_str(as, "kind", NULL);
        int ikind = !kind ? -1
                    : strcmp(kind, "constant") == 0 ? RT_LR_CONSTANT
                    : strcmp(kind, "cosine") == 0   ? RT_LR_COSINE
                    : strcmp(kind, "jagged") == 0   ? RT_LR_JAGGED
                                                    : -1;
        double lr;
        if (ikind < 0) {
            diag_error(c->d, k->loc, "kernel %s: lr schedule kind '%s' is not constant, cosine or jagged",
                       kname(k), kind ? kind : "(missing)");
            return;
        }
        if (!attr_float(c, k, "lr", &lr))
            return;
        int64_t warmup = ir_attrs_int(as, "warmup", 0), total = ir_attrs_int(as, "total", 0);
        if (warmup < 0 || (ikind != RT_LR_CONSTANT && total <= warmup)) {
            diag_error(c->d, k->loc, "kernel %s: lr schedule needs 0 <= warmup < total (got %" PRId64 ", %" PRId64 ")",
                       kname(k), warmup, total);
            return;
        }
        LLVMValueRef a[9] = {cg_const_i32(c, ikind),
                             LLVMConstReal(c->t_f64, lr),
                             cg_const_i64(c, warmup),
                             cg_const_i64(c, ir_attrs_int(as, "offset", 0)),
                             cg_const_i64(c, total),
                             LLVMConstReal(c->t_f64, ir_attrs_float(as, "min_ratio", 0.0)),
                             cg_const_i64(c, ir_attrs_int(as, "reset_every", 0)),
                             cg_const_i64(c, ir_attrs_int(as, "restart_warmup", 0)),
                             step};
        LLVMValueRef v = LLVMBuildCall2(c->b, c->t_lr, c->f_lr, a, 9, "lr");
        LLVMBuildStore(c->b, LLVMBuildFPTrunc(c->b, v, c->t_f32, ""), x);
        return;
    }
    case KC_COUNT: break;
    }
    diag_error(c->d, k->loc, "kernel %s: unknown runtime call %d", kname(k), (int)k->call);
}

/* float relorac_fn_<name>(RtCtx *ctx, i64 step, i64 *prune_stats) */
static LLVMValueRef emit_host_fn(CgCtx *c, const KFunc *f)
{
    LLVMValueRef fn = LLVMAddFunction(c->mod, arena_sprintf(c->a, "relorac_fn_%s", f->name),
                                      c->t_host_fn);
    LLVMValueRef ctx = LLVMGetParam(fn, 0), step = LLVMGetParam(fn, 1), stats = LLVMGetParam(fn, 2);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->llc, fn, "entry"));
    LLVMValueRef pools[RT_POOL_COUNT], seed;
    load_pools(c, ctx, pools, &seed);
    for (int i = 0; i < f->n_kernels; i++) {
        const Kernel *k = f->kernels[i];
        switch (k->kind) {
        case K_LOOP: emit_loop_call(c, f, k, ctx, pools, seed, step); break;
        case K_GEMM: emit_gemm(c, k, ctx, pools); break;
        case K_CALL: emit_call(c, k, pools, seed, step, stats); break;
        case K_ATTENTION:
        case K_HEAD_LOSS: cg_fused_emit(c, k, ctx, pools); break;
        }
    }
    LLVMValueRef ret = cg_const_f32(c, 0.0);
    if (f->ret_buf >= 0) {
        const KBuf *rb = &c->p->bufs[f->ret_buf];
        LLVMValueRef p = buf_ptr(c, pools, f->ret_buf);
        if (rb->dtype == IR_F32)
            ret = LLVMBuildLoad2(c->b, c->t_f32, typed(c, p, c->t_f32), "ret");
        else if (rb->dtype == IR_I32)
            ret = LLVMBuildSIToFP(c->b, LLVMBuildLoad2(c->b, c->t_i32, typed(c, p, c->t_i32), ""),
                                  c->t_f32, "ret");
        else
            ret = LLVMBuildBitCast(
                c->b,
                LLVMBuildShl(c->b,
                             LLVMBuildZExt(c->b, LLVMBuildLoad2(c->b, c->t_i16, typed(c, p, c->t_i16), ""),
                                           c->t_i32, ""),
                             cg_const_i32(c, 16), ""),
                c->t_f32, "ret");
    }
    LLVMBuildRet(c->b, ret);
    return fn;
}

/* ---- entry points ---- */

static int func_index(const CgCtx *c, const char *name)
{
    for (int i = 0; i < c->p->n_funcs; i++)
        if (strcmp(c->p->funcs[i]->name, name) == 0)
            return i;
    return -1;
}

/* The buffer of global `name`, or -1. */
static int global_buf(const CgCtx *c, const char *name)
{
    const IrGlobal *g = c->p->m ? ir_global_find(c->p->m, name) : NULL;
    return g && c->p->global_buf ? c->p->global_buf[g->id] : -1;
}

static int named_buf(const CgCtx *c, const char *name)
{
    int g = global_buf(c, name);
    if (g >= 0)
        return g;
    for (int i = 0; i < c->p->n_bufs; i++)
        if (c->p->bufs[i].name && strcmp(c->p->bufs[i].name, name) == 0)
            return i;
    return -1;
}

/* The learning-rate buffer of a train function: one named "lr", else the output of its
 * last lr_schedule call. */
static int lr_buf(const CgCtx *c, const KFunc *f)
{
    int b = named_buf(c, "lr");
    if (b >= 0)
        return b;
    for (int i = f->n_kernels - 1; i >= 0; i--)
        if (f->kernels[i]->kind == K_CALL && f->kernels[i]->call == KC_LR_SCHEDULE &&
            f->kernels[i]->n_call_bufs >= 1)
            return f->kernels[i]->call_bufs[0];
    return -1;
}

static LLVMValueRef load_f32_buf(CgCtx *c, LLVMValueRef *pools, int buf)
{
    if (buf < 0 || c->p->bufs[buf].dtype != IR_F32)
        return cg_const_f32(c, 0.0);
    return LLVMBuildLoad2(c->b, c->t_f32, typed(c, buf_ptr(c, pools, buf), c->t_f32), "");
}

static LLVMValueRef call_host(CgCtx *c, int fi, LLVMValueRef ctx, LLVMValueRef step,
                              LLVMValueRef stats)
{
    LLVMValueRef a[3] = {ctx, step, stats};
    return LLVMBuildCall2(c->b, c->t_host_fn, c->host_fn[fi], a, 3, "");
}

/* memcpy(buffer of global `name`, src, min(bytes of it, max_bytes)) when the global exists. */
static void copy_in(CgCtx *c, LLVMValueRef *pools, const char *name, LLVMValueRef src,
                    int64_t max_bytes)
{
    int b = global_buf(c, name);
    if (b < 0)
        return;
    int64_t n = c->loc[b].bytes < max_bytes ? c->loc[b].bytes : max_bytes;
    LLVMBuildMemCpy(c->b, buf_ptr(c, pools, b), 4, LLVMBuildBitCast(c->b, src, c->t_p8, ""), 4,
                    cg_const_i64(c, n));
}

static LLVMValueRef new_entry(CgCtx *c, const char *name, LLVMTypeRef ty)
{
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, ty);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->llc, fn, "entry"));
    return fn;
}

static LLVMValueRef new_stats(CgCtx *c)
{
    LLVMValueRef s = LLVMBuildArrayAlloca(c->b, c->t_i64, cg_const_i64(c, 2), "prune_stats");
    LLVMBuildStore(c->b, cg_const_i64(c, 0), stats_slot(c, s, 0));
    LLVMBuildStore(c->b, cg_const_i64(c, 0), stats_slot(c, s, 1));
    return s;
}

static LLVMValueRef emit_init(CgCtx *c)
{
    LLVMTypeRef ty = LLVMFunctionType(c->t_void, &c->t_pctx, 1, 0);
    LLVMValueRef fn = new_entry(c, "relorac_init", ty);
    int fi = func_index(c, "init");
    if (fi >= 0)
        call_host(c, fi, LLVMGetParam(fn, 0), cg_const_i64(c, 0), new_stats(c));
    LLVMBuildRetVoid(c->b);
    return fn;
}

static int64_t mod_int(const CgCtx *c, const char *key, int64_t dflt)
{
    return c->p->m ? ir_attrs_int(&c->p->m->attrs, key, dflt) : dflt;
}

/* RtStepStats field i: loss, lr, grad_norm, events, pruned_fraction */
static LLVMValueRef stat_field(CgCtx *c, LLVMValueRef out, int i)
{
    LLVMTypeRef f[5] = {c->t_f32, c->t_f32, c->t_f32, c->t_i32, c->t_f32};
    LLVMTypeRef st = LLVMStructTypeInContext(c->llc, f, 5, 0);
    return LLVMBuildStructGEP2(c->b, st, LLVMBuildBitCast(c->b, out, LLVMPointerType(st, 0), ""),
                               (unsigned)i, "");
}

static void or_event(CgCtx *c, LLVMValueRef out, unsigned ev)
{
    LLVMValueRef p = stat_field(c, out, 3);
    LLVMBuildStore(c->b, LLVMBuildOr(c->b, LLVMBuildLoad2(c->b, c->t_i32, p, ""), cg_const_i32(c, (int32_t)ev), ""), p);
}

/* train_step(ctx, x, y, step, out):
 *   @tokens = x; @targets = y; @step = step
 *   loss = (step < W ? train_full : train_lora)(step)    (or `train` when there is no split)
 *   after step W-1: switch;  after step W + kR (k >= 1): relora_reset (docs/ir.md) */
static LLVMValueRef emit_train_step(CgCtx *c)
{
    LLVMTypeRef pt[5] = {c->t_pctx, c->t_pi32, c->t_pi32, c->t_i64, c->t_p8};
    LLVMTypeRef ty = LLVMFunctionType(c->t_void, pt, 5, 0);
    LLVMValueRef fn = new_entry(c, "relorac_train_step", ty);
    LLVMValueRef ctx = LLVMGetParam(fn, 0), step = LLVMGetParam(fn, 3), out = LLVMGetParam(fn, 4);
    LLVMBuilderRef b = c->b;
    LLVMValueRef stats = new_stats(c);
    LLVMValueRef pools[RT_POOL_COUNT];
    load_pools(c, ctx, pools, NULL);
    int64_t bt = 4 * mod_int(c, "batch", 0) * mod_int(c, "seq_len", 0);
    copy_in(c, pools, "tokens", LLVMGetParam(fn, 1), bt);
    copy_in(c, pools, "targets", LLVMGetParam(fn, 2), bt);
    int sb = global_buf(c, "step");
    if (sb >= 0 && c->p->bufs[sb].dtype == IR_I32)
        LLVMBuildStore(b, LLVMBuildTrunc(b, step, c->t_i32, ""), typed(c, buf_ptr(c, pools, sb), c->t_i32));

    int f_full = func_index(c, "train_full"), f_lora = func_index(c, "train_lora");
    int f_train = func_index(c, "train"), f_switch = func_index(c, "switch");
    int f_reset = func_index(c, "relora_reset");
    int64_t W = mod_int(c, "relora.warm_start", 0), R = mod_int(c, "relora.reset_every", 0);
    int fa = f_train, fb = -1; /* fa while step < W, else fb */
    if (f_full >= 0 && f_lora >= 0) {
        fa = f_full;
        fb = f_lora;
    } else if (f_train < 0) {
        fa = f_full >= 0 ? f_full : f_lora;
    }
    for (int i = 0; i < 3; i++)
        LLVMBuildStore(b, cg_const_f32(c, 0.0), stat_field(c, out, i));
    LLVMBuildStore(b, cg_const_i32(c, 0), stat_field(c, out, 3));
    LLVMBuildStore(b, cg_const_f32(c, 0.0), stat_field(c, out, 4));
    if (fa < 0) {
        diag_warning(c->d, srcloc_none(), "no train function: train_step only loads the batch");
    } else {
        LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(c->llc, fn, "trained");
        int which[2] = {fa, fb};
        LLVMBasicBlockRef blocks[2];
        if (fb >= 0) {
            blocks[0] = LLVMAppendBasicBlockInContext(c->llc, fn, c->p->funcs[fa]->name);
            blocks[1] = LLVMAppendBasicBlockInContext(c->llc, fn, c->p->funcs[fb]->name);
            LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, step, cg_const_i64(c, W), ""), blocks[0],
                            blocks[1]);
        } else {
            blocks[0] = LLVMAppendBasicBlockInContext(c->llc, fn, c->p->funcs[fa]->name);
            LLVMBuildBr(b, blocks[0]);
        }
        for (int i = 0; i < (fb >= 0 ? 2 : 1); i++) {
            LLVMPositionBuilderAtEnd(b, blocks[i]);
            const KFunc *f = c->p->funcs[which[i]];
            LLVMBuildStore(b, call_host(c, which[i], ctx, step, stats), stat_field(c, out, 0));
            LLVMBuildStore(b, load_f32_buf(c, pools, lr_buf(c, f)), stat_field(c, out, 1));
            LLVMBuildStore(b, load_f32_buf(c, pools, named_buf(c, "grad_norm")), stat_field(c, out, 2));
            LLVMBuildBr(b, join);
        }
        LLVMPositionBuilderAtEnd(b, join);
    }

    if (f_switch >= 0 && W > 0) {
        LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(c->llc, fn, "switch");
        LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->llc, fn, "switched");
        LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntEQ, step, cg_const_i64(c, W - 1), ""), yes, next);
        LLVMPositionBuilderAtEnd(b, yes);
        call_host(c, f_switch, ctx, step, stats);
        or_event(c, out, RT_EV_WARM_SWITCH);
        LLVMBuildBr(b, next);
        LLVMPositionBuilderAtEnd(b, next);
    }
    if (f_reset >= 0 && R > 0) {
        /* docs/ir.md: after the step with t = step - W, t % R == 0 and t >= R (the step
         * that ran at rate 0 under the jagged schedule) */
        LLVMValueRef t = LLVMBuildSub(b, step, cg_const_i64(c, W), "t");
        LLVMValueRef due = LLVMBuildAnd(
            b, LLVMBuildICmp(b, LLVMIntSGE, t, cg_const_i64(c, R), ""),
            LLVMBuildICmp(b, LLVMIntEQ, LLVMBuildSRem(b, t, cg_const_i64(c, R), ""), cg_const_i64(c, 0), ""),
            "");
        LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(c->llc, fn, "reset");
        LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(c->llc, fn, "done");
        LLVMBuildCondBr(b, due, yes, next);
        LLVMPositionBuilderAtEnd(b, yes);
        LLVMBuildStore(b, cg_const_i64(c, 0), stats_slot(c, stats, 0));
        LLVMBuildStore(b, cg_const_i64(c, 0), stats_slot(c, stats, 1));
        call_host(c, f_reset, ctx, step, stats);
        or_event(c, out, RT_EV_RESET);
        LLVMValueRef z = LLVMBuildSIToFP(b, LLVMBuildLoad2(b, c->t_i64, stats_slot(c, stats, 0), ""), c->t_f64, "");
        LLVMValueRef n = LLVMBuildSIToFP(b, LLVMBuildLoad2(b, c->t_i64, stats_slot(c, stats, 1), ""), c->t_f64, "");
        LLVMValueRef frac = LLVMBuildSelect(
            b, LLVMBuildFCmp(b, LLVMRealOGT, n, LLVMConstReal(c->t_f64, 0), ""),
            LLVMBuildFDiv(b, z, n, ""), LLVMConstReal(c->t_f64, 0), "");
        LLVMBuildStore(b, LLVMBuildFPTrunc(b, frac, c->t_f32, ""), stat_field(c, out, 4));
        LLVMBuildBr(b, next);
        LLVMPositionBuilderAtEnd(b, next);
    }
    LLVMBuildRetVoid(b);
    return fn;
}

static LLVMValueRef emit_eval_loss(CgCtx *c)
{
    LLVMTypeRef pt[3] = {c->t_pctx, c->t_pi32, c->t_pi32};
    LLVMValueRef fn = new_entry(c, "relorac_eval_loss", LLVMFunctionType(c->t_f32, pt, 3, 0));
    LLVMValueRef ctx = LLVMGetParam(fn, 0), pools[RT_POOL_COUNT];
    load_pools(c, ctx, pools, NULL);
    int64_t bt = 4 * mod_int(c, "batch", 0) * mod_int(c, "seq_len", 0);
    copy_in(c, pools, "tokens", LLVMGetParam(fn, 1), bt);
    copy_in(c, pools, "targets", LLVMGetParam(fn, 2), bt);
    int fi = func_index(c, "eval");
    if (fi < 0) {
        diag_warning(c->d, srcloc_none(), "no eval function: eval_loss returns 0");
        LLVMBuildRet(c->b, cg_const_f32(c, 0.0));
    } else {
        LLVMBuildRet(c->b, call_host(c, fi, ctx, cg_const_i64(c, 0), new_stats(c)));
    }
    return fn;
}

/* logits(ctx, x[T], pos, out[V]): x goes to @sample_tokens [1,T] (else row 0 of @tokens);
 * the `logits` function returns logits [T,V] (or [B*T,V]): row pos is at pos * V. */
static LLVMValueRef emit_logits(CgCtx *c)
{
    LLVMTypeRef pt[4] = {c->t_pctx, c->t_pi32, c->t_i64, c->t_pf32};
    LLVMValueRef fn = new_entry(c, "relorac_logits", LLVMFunctionType(c->t_void, pt, 4, 0));
    LLVMValueRef ctx = LLVMGetParam(fn, 0), pools[RT_POOL_COUNT];
    LLVMValueRef out8 = LLVMBuildBitCast(c->b, LLVMGetParam(fn, 3), c->t_p8, "");
    load_pools(c, ctx, pools, NULL);
    int64_t V = mod_int(c, "vocab", 0), T = mod_int(c, "seq_len", 0);
    int fi = func_index(c, "logits");
    int rb = fi >= 0 ? c->p->funcs[fi]->ret_buf : -1;
    if (rb < 0 || c->p->bufs[rb].dtype != IR_F32) {
        diag_warning(c->d, srcloc_none(), "no logits function returning f32 logits: logits() gives zeros");
        LLVMBuildMemSet(c->b, out8, LLVMConstInt(c->t_i8, 0, 0), cg_const_i64(c, 4 * V), 4);
        LLVMBuildRetVoid(c->b);
        return fn;
    }
    copy_in(c, pools, global_buf(c, "sample_tokens") >= 0 ? "sample_tokens" : "tokens",
            LLVMGetParam(fn, 1), 4 * T);
    call_host(c, fi, ctx, cg_const_i64(c, 0), new_stats(c));
    LLVMValueRef off = LLVMBuildMul(c->b, LLVMGetParam(fn, 2), cg_const_i64(c, 4 * V), "");
    LLVMValueRef src = LLVMBuildInBoundsGEP2(c->b, c->t_i8, buf_ptr(c, pools, rb), &off, 1, "");
    LLVMBuildMemCpy(c->b, out8, 4, src, 4, cg_const_i64(c, 4 * V));
    LLVMBuildRetVoid(c->b);
    return fn;
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

/* FNV-1a 64 of the module's text form: a deterministic spec hash when the frontend sets none. */
static const char *module_hash(CgCtx *c)
{
    const IrModule *m = c->p->m;
    const char *s = m ? ir_attrs_str(&m->attrs, "spec_hash", NULL) : NULL;
    if (s)
        return s;
    uint64_t h = 0xcbf29ce484222325ull;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f && m) {
        ir_print(m, f);
        fclose(f);
        for (size_t i = 0; i < len; i++)
            h = (h ^ (unsigned char)text[i]) * 0x100000001b3ull;
    } else if (f) {
        fclose(f);
    }
    free(text);
    return arena_sprintf(c->a, "%016" PRIx64, h);
}

static LLVMValueRef emit_tensors(CgCtx *c, LLVMTypeRef t_info, int *n_out)
{
    const IrModule *m = c->p->m;
    int n = m ? m->n_globals : 0;
    LLVMValueRef *items = ARENA_ARRAY(c->a, LLVMValueRef, n + 1);
    int *row = ARENA_ARRAY(c->a, int, n + 1); /* global id -> table index */
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
    nt = 0;
    for (int i = 0; i < n; i++) {
        const IrGlobal *g = m->globals[i];
        if (row[i] < 0)
            continue;
        const CgBufLoc *l = &c->loc[c->p->global_buf[i]];
        unsigned flags = extra[i];
        if (g->flags & IR_G_EXPORT)
            flags |= RT_T_PARAM;
        if (g->flags & IR_G_TRAINABLE)
            flags |= RT_T_TRAINABLE;
        if (g->flags & IR_G_MOMENT)
            flags |= RT_T_MOMENT;
        if (g->cls == IR_CLASS_STATE)
            flags |= RT_T_STATE;
        const IrGlobal *a = linked(m, g, "lora_a"), *bb = linked(m, g, "lora_b");
        int la = a && bb && row[a->id] >= 0 && row[bb->id] >= 0 ? row[a->id] : -1;
        int lb = la >= 0 ? row[bb->id] : -1;
        LLVMValueRef shape[4];
        for (int d = 0; d < 4; d++)
            shape[d] = cg_const_i64(c, d < g->type.rank ? g->type.dim[d] : 0);
        LLVMValueRef f[11] = {cg_const_str(c, g->name),
                              opt_str(c, ir_attrs_str(&g->attrs, "hf_name", NULL)),
                              i32c(c, rt_dtype(g->type.dtype)),
                              i32c(c, g->type.rank < 0 ? 0 : g->type.rank),
                              LLVMConstArray(c->t_i64, shape, 4),
                              i32c(c, l->pool),
                              cg_const_i64(c, l->offset),
                              i32c(c, flags),
                              i32c(c, la),
                              i32c(c, lb),
                              cg_const_f32(c, la >= 0 ? ir_attrs_float(&g->attrs, "lora_scale", 1.0) : 0.0)};
        items[nt++] = LLVMConstNamedStruct(t_info, f, 11);
    }
    *n_out = nt;
    LLVMValueRef arr = LLVMConstArray(t_info, items, (unsigned)nt);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMArrayType(t_info, (unsigned)nt), "relorac_tensors");
    LLVMSetInitializer(gv, arr);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return LLVMConstBitCast(gv, LLVMPointerType(t_info, 0));
}

static void emit_model(CgCtx *c, LLVMValueRef init, LLVMValueRef train, LLVMValueRef eval,
                       LLVMValueRef logits)
{
    LLVMContextRef x = c->llc;
    LLVMTypeRef t_info = LLVMStructCreateNamed(x, "RtTensorInfo");
    LLVMTypeRef fi[11] = {c->t_p8, c->t_p8, c->t_i32, c->t_i32, LLVMArrayType(c->t_i64, 4), c->t_i32,
                          c->t_i64, c->t_i32, c->t_i32, c->t_i32, c->t_f32};
    LLVMStructSetBody(t_info, fi, 11, 0);
    LLVMTypeRef t_def = LLVMStructCreateNamed(x, "RtTrainDefaults");
    LLVMTypeRef fd[12] = {c->t_i64, c->t_i64, c->t_i64, c->t_i64, c->t_i64, c->t_i64,
                          c->t_i32, c->t_i32, c->t_f32, c->t_p8,  c->t_p8,  c->t_p8};
    LLVMStructSetBody(t_def, fd, 12, 0);
    LLVMTypeRef t_model = LLVMStructCreateNamed(x, "RtModel");
    LLVMTypeRef fm[14] = {c->t_i32, c->t_p8, c->t_p8, c->t_p8, c->t_i32, c->t_i32, c->t_i32, c->t_i32,
                          LLVMPointerType(t_info, 0), LLVMArrayType(c->t_i64, RT_POOL_COUNT), t_def,
                          LLVMTypeOf(init), LLVMTypeOf(train), LLVMTypeOf(eval)};
    LLVMTypeRef fm_all[15];
    memcpy(fm_all, fm, sizeof fm);
    fm_all[14] = LLVMTypeOf(logits);
    LLVMStructSetBody(t_model, fm_all, 15, 0);

    const IrModule *m = c->p->m;
    const IrAttrs *as = m ? &m->attrs : NULL;
    int nt;
    LLVMValueRef tensors = emit_tensors(c, t_info, &nt);
    LLVMValueRef pools[RT_POOL_COUNT];
    for (int i = 0; i < RT_POOL_COUNT; i++)
        pools[i] = cg_const_i64(c, c->pool_bytes[i]);
    const char *kind = as ? ir_attrs_str(as, "train.data_kind", "text") : "text";
    LLVMValueRef d[12] = {
        cg_const_i64(c, mod_int(c, "train.steps", 1000)),
        cg_const_i64(c, mod_int(c, "train.eval_every", 0)),
        cg_const_i64(c, mod_int(c, "train.eval_batches", 20)),
        cg_const_i64(c, mod_int(c, "train.checkpoint_every", 0)),
        cg_const_i64(c, mod_int(c, "train.log_every", 0)),
        cg_const_i64(c, mod_int(c, "train.seed", 0)),
        i32c(c, mod_int(c, "train.threads", 0)),
        i32c(c, strcmp(kind, "tokens") == 0 ? RT_DATA_TOKENS : RT_DATA_TEXT),
        cg_const_f32(c, as ? ir_attrs_float(as, "train.val_fraction", 0.1) : 0.1),
        opt_str(c, as ? ir_attrs_str(as, "train.data", NULL) : NULL),
        opt_str(c, as ? ir_attrs_str(as, "train.val_data", NULL) : NULL),
        opt_str(c, as ? ir_attrs_str(as, "train.out", NULL) : NULL),
    };
    LLVMValueRef f[15] = {
        i32c(c, RT_ABI_VERSION),
        cg_const_str(c, m && m->name ? m->name : "model"),
        cg_const_str(c, module_hash(c)),
        opt_str(c, as ? ir_attrs_str(as, "hf.config_json", NULL) : NULL),
        i32c(c, mod_int(c, "vocab", 0)),
        i32c(c, mod_int(c, "batch", 0)),
        i32c(c, mod_int(c, "seq_len", 0)),
        i32c(c, nt),
        tensors,
        LLVMConstArray(c->t_i64, pools, RT_POOL_COUNT),
        LLVMConstNamedStruct(t_def, d, 12),
        init,
        train,
        eval,
        logits,
    };
    LLVMValueRef gv = LLVMAddGlobal(c->mod, t_model, "relorac_model");
    LLVMSetInitializer(gv, LLVMConstNamedStruct(t_model, f, 15));
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
    LLVMValueRef init = emit_init(c);
    LLVMValueRef train = emit_train_step(c);
    LLVMValueRef eval = emit_eval_loss(c);
    LLVMValueRef logits = emit_logits(c);
    emit_model(c, init, train, eval, logits);
    if (with_main)
        emit_main(c);
}
