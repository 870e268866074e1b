/* The fused ops against the unfused graphs they replace. attention (q, k, v with GQA,
 * causal or not) and linear_cross_entropy are built next to the graph the lowering
 * builds today (repeat_kv, matmul, scale, softmax, matmul; matmul, cross_entropy), both
 * differentiated by autodiff, and compared: in the graph interpreter (f64: forward and
 * every gradient within 1e-9 relative), in the kernel interpreter (the tiled and chunked
 * algorithms of ir/kernel.h, f64, 1e-9) and compiled (f32 runtime kernels, within the
 * tolerances below, bit for bit the same with 1 and 3 threads). Sizes are chosen so that
 * T is not a multiple of the tile, the last chunk is short and rows have vector tails;
 * T = 1 and heads != kv_heads are among them. Then the passes that form the ops on lowered
 * models, and the memory plans of every example. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg.h"
#include "fe.h"
#include "ir.h"
#include "kernel.h"
#include "lower.h"
#include "pm.h"
#include "rt.h"
#include "rt_fused.h"
#include "rt_internal.h"
#include "rt_ops.h"
#include "tutil.h"

/* Compiled f32 against the f64 graph: the largest |got - want| over a tensor, divided by
 * max(1, its largest |want|) (inputs are of order 1). f32 rounding of sums over at most
 * 136 terms, with an exp within 2e-7 relative, stays well below it: the worst measured is
 * 5e-7. */
static const double F32_TOL = 1e-5;
static const double F64_TOL = 1e-9;

/* max |a - b| / max |b| over n values, the denominator at least `floor`: a gradient that
 * is 0 in exact arithmetic (a key bias's, since softmax ignores a per-row shift; dq and
 * dk at T = 1) is rounding noise on both sides, 1e-17 in f64 and 1e-8 in f32, on inputs
 * of order 1. */
static double rel_err_floor(const double *a, const double *b, int64_t n, double floor)
{
    double d = 0, m = floor;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return d / m;
}

static double rel_err(const double *a, const double *b, int64_t n) { return rel_err_floor(a, b, n, 1e-8); }

static void fill_normal(double *v, int64_t n, uint64_t stream)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = ir_rng_normal(2024, stream, (uint64_t)i);
}

/* ---- a module computing one op both ways ---- */

enum { MAX_OUT = 8 };

typedef struct {
    Arena a;
    Diags d;
    IrModule *m;
    IrGlobal *in[4]; /* inputs: float params (random) and, last for the head loss, i32 targets */
    int n_in;
    IrGlobal *out[2][MAX_OUT]; /* [fused?][k]: what each function stores */
    int n_out;
    const char *out_name[MAX_OUT];
} Pair;

static IrGlobal *new_global(Pair *x, const char *name, IrDType dt, int rank, const int64_t *dims, IrMemClass cls)
{
    return ir_global_new(x->m, name, ir_type_make(dt, rank, dims), cls, 0, srcloc_none());
}

static void pair_init(Pair *x)
{
    memset(x, 0, sizeof *x);
    arena_init(&x->a);
    diag_init(&x->d, &x->a);
    x->m = ir_module_new(&x->a, "fused");
    ir_attrs_set_int(&x->a, &x->m->attrs, "batch", 1);
    ir_attrs_set_int(&x->a, &x->m->attrs, "train.micro_batch", 1);
    ir_attrs_set_int(&x->a, &x->m->attrs, "seq_len", 1);
    ir_attrs_set_int(&x->a, &x->m->attrs, "vocab", 16);
    tu_program_attrs(&x->a, x->m);
}

/* Prints the diagnostics and fails unless c. */
static void ok(Pair *x, bool c)
{
    if (!c)
        diag_print(&x->d, stderr, false);
    ck_assert(c);
}

static void pair_fini(Pair *x)
{
    if (x->d.n_errors)
        diag_print(&x->d, stderr, false);
    arena_fini(&x->a);
}

static void store(IrBuilder *b, IrNode *v, IrGlobal *g)
{
    IrNode *in[1] = {v};
    ir_build(b, IR_OP_STORE, in, 1, &g, 1, NULL);
}

/* Appends to function `fused` (0 or 1) the stores of vals[0..n) into out globals named
 * "<name>.fused" / "<name>.unfused". */
static void store_outputs(Pair *x, IrBuilder *b, int fused, IrNode **vals, const char *const *names, int n)
{
    x->n_out = n;
    for (int k = 0; k < n; k++) {
        x->out_name[k] = names[k];
        x->out[fused][k] = new_global(x, arena_sprintf(&x->a, "%s.%s", names[k], fused ? "fused" : "unfused"), IR_F32,
                                      vals[k]->type.rank, vals[k]->type.dim, IR_CLASS_GRAD);
        store(b, vals[k], x->out[fused][k]);
    }
}

typedef struct {
    int64_t B, H, Hkv, T, D;
    bool causal;
} AttnCfg;

static const AttnCfg attn_cfgs[] = {
    {2, 4, 2, 100, 8, true},   /* GQA, two query tiles, the second of 36 rows */
    {1, 2, 2, 1, 4, true},     /* T = 1 */
    {1, 3, 1, 70, 16, false},  /* one kv head, not causal */
    {1, 2, 2, 64, 8, true},    /* exactly one tile */
    {1, 2, 1, 40, 136, true},  /* head dim above 128: tiles of 32 */
};
enum { N_ATTN_CFGS = sizeof attn_cfgs / sizeof attn_cfgs[0] };

/* loss = sum(attention(q, k, v) * r), fused and as the lowering builds it; each function
 * stores y, dq, dk, dv (and the fused one lse). */
static void build_attention(Pair *x, const AttnCfg *c)
{
    int64_t dq[4] = {c->B, c->H, c->T, c->D}, dkv[4] = {c->B, c->Hkv, c->T, c->D};
    double scale = 1.0 / sqrt((double)c->D);
    x->in[0] = new_global(x, "q", IR_F32, 4, dq, IR_CLASS_PARAM);
    x->in[1] = new_global(x, "k", IR_F32, 4, dkv, IR_CLASS_PARAM);
    x->in[2] = new_global(x, "v", IR_F32, 4, dkv, IR_CLASS_PARAM);
    x->in[3] = new_global(x, "r", IR_F32, 4, dq, IR_CLASS_PARAM);
    x->n_in = 4;
    IrGlobal *g_lse = NULL;
    for (int fused = 0; fused < 2; fused++) {
        IrFunc *f = ir_func_new(x->m, fused ? "fused" : "unfused");
        IrBuilder b;
        ir_builder_init(&b, x->m, f, &x->d);
        IrNode *q = ir_global_read(&b, x->in[0]), *k = ir_global_read(&b, x->in[1]), *v = ir_global_read(&b, x->in[2]);
        IrNode *y, *lse = NULL;
        if (fused) {
            y = ir_attention(&b, q, k, v, scale, c->causal);
            lse = ir_result(&b, y, 1);
        } else {
            IrNode *kh = k, *vh = v;
            if (c->Hkv != c->H) {
                kh = ir_repeat_kv(&b, k, (int)(c->H / c->Hkv));
                vh = ir_repeat_kv(&b, v, (int)(c->H / c->Hkv));
            }
            IrNode *s = ir_scale(&b, ir_matmul(&b, q, kh, false, true), scale);
            y = ir_matmul(&b, ir_softmax(&b, s, c->causal), vh, false, false);
        }
        int64_t axes[4] = {0, 1, 2, 3};
        IrNode *loss = ir_sum(&b, ir_binary(&b, IR_OP_MUL, y, ir_global_read(&b, x->in[3])), 4, axes);
        IrNode *grads[3];
        ok(x, !b.failed && ir_autodiff(x->m, f, loss, x->in, 3, grads, &x->d));
        IrNode *vals[4] = {y, grads[0], grads[1], grads[2]};
        static const char *const names[4] = {"y", "dq", "dk", "dv"};
        store_outputs(x, &b, fused, vals, names, 4);
        if (fused) {
            int64_t dl[3] = {c->B, c->H, c->T};
            g_lse = new_global(x, "lse", IR_F32, 3, dl, IR_CLASS_GRAD);
            store(&b, lse, g_lse);
        }
        f->ret = loss;
        ok(x, !b.failed);
    }
    ok(x, ir_verify(x->m, &x->d));
}

/* mean cross-entropy of x w^T against t (times `scale` when not 0), fused and unfused;
 * each stores dx, dw. Unscaled, the gradient's dloss is autodiff's constant seed and the
 * kernelizer computes the gradient with the loss; scaled, it is a scale node, read at
 * run time by a kernel of its own. */
static void build_head_loss(Pair *x, int64_t N, int64_t C, int64_t V, double scale)
{
    int64_t dx[2] = {N, C}, dw[2] = {V, C}, dt[1] = {N};
    x->in[0] = new_global(x, "x", IR_F32, 2, dx, IR_CLASS_PARAM);
    x->in[1] = new_global(x, "w", IR_F32, 2, dw, IR_CLASS_PARAM);
    x->in[2] = new_global(x, "targets", IR_I32, 1, dt, IR_CLASS_DATA);
    x->n_in = 3;
    for (int fused = 0; fused < 2; fused++) {
        IrFunc *f = ir_func_new(x->m, fused ? "fused" : "unfused");
        IrBuilder b;
        ir_builder_init(&b, x->m, f, &x->d);
        IrNode *xv = ir_global_read(&b, x->in[0]), *w = ir_global_read(&b, x->in[1]), *t = ir_global_read(&b, x->in[2]);
        IrNode *loss = fused ? ir_linear_cross_entropy(&b, xv, w, t)
                             : ir_cross_entropy(&b, ir_matmul(&b, xv, w, false, true), t);
        if (scale != 0)
            loss = ir_scale(&b, loss, scale);
        IrNode *grads[2];
        ok(x, !b.failed && ir_autodiff(x->m, f, loss, x->in, 2, grads, &x->d));
        static const char *const names[2] = {"dx", "dw"};
        store_outputs(x, &b, fused, grads, names, 2);
        f->ret = loss;
        ok(x, !b.failed);
    }
    ok(x, ir_verify(x->m, &x->d));
}

/* Random inputs (targets: a fixed pattern in [0, V)) into the interpreter's globals. */
static void set_inputs(const Pair *x, double *const *vals)
{
    for (int i = 0; i < x->n_in; i++) {
        const IrGlobal *g = x->in[i];
        int64_t n = ir_type_numel(g->type);
        if (g->type.dtype == IR_I32) {
            int64_t V = x->in[1]->type.dim[0];
            for (int64_t j = 0; j < n; j++)
                vals[i][j] = (double)((j * 7 + 3) % V);
        } else {
            fill_normal(vals[i], n, (uint64_t)i + 1);
        }
    }
}

/* The graph interpreter's results of function `fused` (copies, malloc'd). */
static double *graph_run(Pair *x, int fused, double *loss, double **outs)
{
    IrInterp *it = ir_interp_create(x->m, 1);
    double *in[4];
    for (int i = 0; i < x->n_in; i++)
        in[i] = ir_interp_global(it, x->in[i]);
    set_inputs(x, in);
    *loss = ir_interp_run(it, ir_func_find(x->m, fused ? "fused" : "unfused"));
    for (int k = 0; k < x->n_out; k++) {
        int64_t n = ir_type_numel(x->out[fused][k]->type);
        outs[k] = malloc(sizeof(double) * (size_t)n);
        memcpy(outs[k], ir_interp_global(it, x->out[fused][k]), sizeof(double) * (size_t)n);
    }
    double *lse = NULL;
    IrGlobal *gl = ir_global_find(x->m, "lse");
    if (gl && fused) {
        lse = malloc(sizeof(double) * (size_t)ir_type_numel(gl->type));
        memcpy(lse, ir_interp_global(it, gl), sizeof(double) * (size_t)ir_type_numel(gl->type));
    }
    ir_interp_destroy(it);
    return lse;
}

static void free_outs(double **outs, int n)
{
    for (int k = 0; k < n; k++)
        free(outs[k]);
}

/* ---- the graph interpreter ---- */

/* log sum_j exp(scale q_i . k_j) of row i of (b, h), written out here. */
static double lse_by_hand(const AttnCfg *c, const double *q, const double *k, int64_t b, int64_t h, int64_t i)
{
    double s[128], mx = -INFINITY, sum = 0;
    int64_t keep = c->causal ? i + 1 : c->T, g = h / (c->H / c->Hkv);
    for (int64_t j = 0; j < keep; j++) {
        double d = 0;
        for (int64_t e = 0; e < c->D; e++)
            d += q[((b * c->H + h) * c->T + i) * c->D + e] * k[((b * c->Hkv + g) * c->T + j) * c->D + e];
        s[j] = d / sqrt((double)c->D);
        mx = fmax(mx, s[j]);
    }
    for (int64_t j = 0; j < keep; j++)
        sum += exp(s[j] - mx);
    return mx + log(sum);
}

START_TEST(fused_attention_graph_matches_unfused_graph)
{
    const AttnCfg *c = &attn_cfgs[_i];
    Pair x;
    pair_init(&x);
    build_attention(&x, c);
    double lf, lu, *of[MAX_OUT], *ou[MAX_OUT];
    double *lse = graph_run(&x, 1, &lf, of);
    graph_run(&x, 0, &lu, ou);
    double worst = fabs(lf - lu) / fmax(1.0, fabs(lu));
    for (int k = 0; k < x.n_out; k++) {
        double e = rel_err(of[k], ou[k], ir_type_numel(x.out[0][k]->type));
        printf("attention B=%lld H=%lld Hkv=%lld T=%lld D=%lld causal=%d, graph: %s fused vs unfused %.2e\n",
               (long long)c->B, (long long)c->H, (long long)c->Hkv, (long long)c->T, (long long)c->D, c->causal,
               x.out_name[k], e);
        worst = fmax(worst, e);
    }
    /* lse from the test's own loop */
    double *in[4];
    for (int i = 0; i < x.n_in; i++)
        in[i] = malloc(sizeof(double) * (size_t)ir_type_numel(x.in[i]->type));
    set_inputs(&x, in);
    const double *qv = in[0], *kv = in[1];
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->H; h++)
            for (int64_t i = 0; i < c->T; i++) {
                double want = lse_by_hand(c, qv, kv, b, h, i), got = lse[(b * c->H + h) * c->T + i];
                worst = fmax(worst, fabs(got - want) / fmax(1.0, fabs(want)));
            }
    ck_assert_msg(worst < F64_TOL, "fused vs unfused graph: %.3e", worst);
    for (int i = 0; i < x.n_in; i++)
        free(in[i]);
    free(lse);
    free_outs(of, x.n_out);
    free_outs(ou, x.n_out);
    pair_fini(&x);
}
END_TEST

typedef struct {
    int64_t N, C, V;
    double scale;
} HeadCfg;

static const HeadCfg head_cfgs[] = {
    {300, 16, 43, 0},  /* chunks of 64 rows, the last of 44; rows of 43 (a vector tail of 3) */
    {5, 3, 7, 0},      /* chunks of 2, 2 and 1 */
    {1, 4, 9, 0},      /* one row */
    {300, 16, 43, 0.5}, /* the gradient in a kernel of its own, dloss read at run time */
};
enum { N_HEAD_CFGS = sizeof head_cfgs / sizeof head_cfgs[0] };

START_TEST(fused_head_loss_graph_matches_unfused_graph)
{
    const HeadCfg *c = &head_cfgs[_i];
    Pair x;
    pair_init(&x);
    build_head_loss(&x, c->N, c->C, c->V, c->scale);
    double lf, lu, *of[MAX_OUT], *ou[MAX_OUT];
    graph_run(&x, 1, &lf, of);
    graph_run(&x, 0, &lu, ou);
    double worst = fabs(lf - lu) / fabs(lu);
    printf("head loss N=%lld C=%lld V=%lld scale=%g, graph: loss %.15f vs %.15f\n", (long long)c->N, (long long)c->C,
           (long long)c->V, c->scale, lf, lu);
    for (int k = 0; k < x.n_out; k++)
        worst = fmax(worst, rel_err(of[k], ou[k], ir_type_numel(x.out[0][k]->type)));
    ck_assert_msg(worst < F64_TOL, "fused vs unfused graph: %.3e", worst);
    free_outs(of, x.n_out);
    free_outs(ou, x.n_out);
    pair_fini(&x);
}
END_TEST

/* ---- the kernel interpreter and compiled code ---- */

static const CgSymbol rt_syms[] = {
    {"rt_parallel_for", (CgFnPtr)rt_parallel_for},
    {"rt_sgemm_strided", (CgFnPtr)rt_sgemm_strided},
    {"rt_sgemm_pair", (CgFnPtr)rt_sgemm_pair},
    {"rt_rng_normal", (CgFnPtr)rt_rng_normal},
    {"rt_prune_magnitude", (CgFnPtr)rt_prune_magnitude},
    {"rt_prune_random", (CgFnPtr)rt_prune_random},
    {"rt_attention_forward", (CgFnPtr)rt_attention_forward},
    {"rt_attention_backward", (CgFnPtr)rt_attention_backward},
    {"rt_head_loss", (CgFnPtr)rt_head_loss},
};

/* Buffer b of a compiled program, as codegen lays classes into pools. */
static void *pool_ptr(const KProgram *p, RtCtx *ctx, int buf)
{
    const KBuf *b = &p->bufs[buf];
    int64_t base = 0;
    int pool = cg_class_pool(b->cls);
    for (int c = 0; c < (int)b->cls; c++)
        if (cg_class_pool((IrMemClass)c) == pool)
            base = (base + 63) / 64 * 64 + p->pool_bytes[c];
    base = (base + 63) / 64 * 64;
    return (char *)ctx->pools[pool] + base + b->offset;
}

/* Runs function `fused` of x's kernel program with `threads` threads; outs[k] (malloc'd)
 * get the stored results as doubles, *loss the returned value. */
static void compiled_run(Pair *x, const KProgram *p, CgJit *jit, int threads, double *loss, double **outs)
{
    const RtModel *md = (const RtModel *)cg_jit_lookup(jit, "relorac_model");
    ck_assert_ptr_nonnull(md);
    RtCtx *ctx;
    RtError e = {0};
    if (!rt_ctx_create(&ctx, md, threads, 1, &e))
        ck_abort_msg("rt_ctx_create: %s", e.msg);
    double *in[4];
    for (int i = 0; i < x->n_in; i++)
        in[i] = malloc(sizeof(double) * (size_t)ir_type_numel(x->in[i]->type));
    set_inputs(x, in);
    for (int i = 0; i < x->n_in; i++) {
        int b = p->global_buf[x->in[i]->id];
        void *dst = pool_ptr(p, ctx, b);
        for (int64_t j = 0; j < ir_type_numel(x->in[i]->type); j++) {
            if (x->in[i]->type.dtype == IR_I32)
                ((int32_t *)dst)[j] = (int32_t)in[i][j];
            else
                ((float *)dst)[j] = (float)in[i][j];
        }
        free(in[i]);
    }
    RtFnPtr fn = (RtFnPtr)cg_jit_lookup(jit, "relorac_fn_fused");
    ck_assert(fn != NULL);
    *loss = fn(ctx);
    for (int k = 0; k < x->n_out; k++) {
        int64_t n = ir_type_numel(x->out[1][k]->type);
        const float *src = pool_ptr(p, ctx, p->global_buf[x->out[1][k]->id]);
        outs[k] = malloc(sizeof(double) * (size_t)n);
        for (int64_t j = 0; j < n; j++)
            outs[k][j] = src[j];
    }
    rt_ctx_destroy(ctx);
}

/* The kernel interpreter's results of function `fused`. */
static void kernel_run(Pair *x, const KProgram *p, double *loss, double **outs)
{
    KInterp *it = k_interp_create(p, 1);
    double *in[4];
    for (int i = 0; i < x->n_in; i++)
        in[i] = k_interp_buf(it, p->global_buf[x->in[i]->id]);
    set_inputs(x, in);
    *loss = k_interp_run(it, k_program_func(p, "fused"), 0);
    for (int k = 0; k < x->n_out; k++) {
        int64_t n = ir_type_numel(x->out[1][k]->type);
        outs[k] = malloc(sizeof(double) * (size_t)n);
        memcpy(outs[k], k_interp_buf(it, p->global_buf[x->out[1][k]->id]), sizeof(double) * (size_t)n);
    }
    k_interp_destroy(it);
}

/* Kernelizes x, checks that at least min_kernels fused kernels of `kind` were made, that no value buffer
 * of the fused function has one of the n_bad sizes bad[] or at least `limit` elements
 * (0: no limit), runs the kernel interpreter and the compiled program (1 and 3 threads)
 * and compares each with the unfused graph. */
static void check_kernels(Pair *x, KernelKind kind, int min_kernels, const int64_t *bad, int n_bad, int64_t limit,
                          const char *label)
{
    KProgram *p = k_program_build(&x->a, &x->d, x->m);
    ok(x, p != NULL);
    const KFunc *kf = k_program_func(p, "fused");
    int n_kind = 0;
    for (int i = 0; i < kf->n_kernels; i++)
        n_kind += kf->kernels[i]->kind == kind;
    ck_assert_int_ge(n_kind, min_kernels);
    for (int b = 0; b < p->n_bufs; b++) {
        if (strncmp(p->bufs[b].name, "fused.", 6) != 0) /* values of the fused function */
            continue;
        for (int i = 0; i < n_bad; i++)
            ck_assert_msg(p->bufs[b].numel != bad[i], "%s: buffer %s has %lld elements", label, p->bufs[b].name,
                          (long long)bad[i]);
        ck_assert_msg(limit == 0 || p->bufs[b].numel < limit, "%s: buffer %s has %lld elements", label,
                      p->bufs[b].name, (long long)p->bufs[b].numel);
    }
    double lu, lk, l1, l3, *ou[MAX_OUT], *ok_[MAX_OUT], *o1[MAX_OUT], *o3[MAX_OUT];
    graph_run(x, 0, &lu, ou);
    kernel_run(x, p, &lk, ok_);
    CgJit *jit = cg_jit_create(p, NULL, rt_syms, (int)(sizeof rt_syms / sizeof rt_syms[0]), &x->d);
    ok(x, jit != NULL);
    compiled_run(x, p, jit, 1, &l1, o1);
    compiled_run(x, p, jit, 3, &l3, o3);
    cg_jit_destroy(jit);
    double wk = fabs(lk - lu) / fmax(1.0, fabs(lu)), wc = fabs(l1 - lu) / fmax(1.0, fabs(lu));
    ck_assert_msg(l1 == l3, "%s: loss %.9g with 1 thread, %.9g with 3", label, l1, l3);
    for (int k = 0; k < x->n_out; k++) {
        int64_t n = ir_type_numel(x->out[1][k]->type);
        double ek = rel_err(ok_[k], ou[k], n), ec = rel_err_floor(o1[k], ou[k], n, 1.0);
        printf("%s: %s kernel interpreter %.2e, compiled f32 %.2e\n", label, x->out_name[k], ek, ec);
        wk = fmax(wk, ek);
        wc = fmax(wc, ec);
        ck_assert_msg(memcmp(o1[k], o3[k], sizeof(double) * (size_t)n) == 0, "%s: %s differs with 1 and 3 threads",
                      label, x->out_name[k]);
    }
    ck_assert_msg(wk < F64_TOL, "%s: kernel interpreter vs unfused graph %.3e", label, wk);
    ck_assert_msg(wc < F32_TOL, "%s: compiled vs unfused graph %.3e", label, wc);
    free_outs(ou, x->n_out);
    free_outs(ok_, x->n_out);
    free_outs(o1, x->n_out);
    free_outs(o3, x->n_out);
}

START_TEST(fused_attention_kernels_match_unfused_graph)
{
    const AttnCfg *c = &attn_cfgs[_i];
    Pair x;
    pair_init(&x);
    build_attention(&x, c);
    char label[96];
    snprintf(label, sizeof label, "attention B=%lld H=%lld Hkv=%lld T=%lld D=%lld causal=%d", (long long)c->B,
             (long long)c->H, (long long)c->Hkv, (long long)c->T, (long long)c->D, c->causal);
    /* no value of B H T T or half that (the triangle) elements in the fused function
     * (for T > 1 and T != D, where other tensors have no such size) */
    int64_t tt = c->B * c->H * c->T * c->T, bad[3] = {tt, tt / 2, c->B * c->H * c->T * (c->T + 1) / 2};
    check_kernels(&x, K_ATTENTION, 2, bad, c->T > 1 && c->T != c->D ? 3 : 0, 0, label);
    pair_fini(&x);
}
END_TEST

START_TEST(fused_head_loss_kernels_match_unfused_graph)
{
    const HeadCfg *c = &head_cfgs[_i];
    Pair x;
    pair_init(&x);
    build_head_loss(&x, c->N, c->C, c->V, c->scale);
    char label[64];
    snprintf(label, sizeof label, "head loss N=%lld C=%lld V=%lld scale=%g", (long long)c->N, (long long)c->C,
             (long long)c->V, c->scale);
    /* nothing as large as the [N,V] logits (when a chunk is shorter than N) */
    check_kernels(&x, K_HEAD_LOSS, c->scale != 0 ? 2 : 1, NULL, 0, c->N > 2 ? c->N * c->V : 0, label);
    pair_fini(&x);
}
END_TEST

/* ---- the passes on lowered models ---- */

static int count_op(const IrModule *m, IrOpKind op)
{
    int n = 0;
    for (int fi = 0; fi < m->n_funcs; fi++)
        for (int i = 0; i < m->funcs[fi]->n_nodes; i++)
            n += m->funcs[fi]->nodes[i]->op == op;
    return n;
}

/* The lowered model with and without the two fusing passes (up to autodiff): no
 * softmax, repeat_kv or cross_entropy left, one attention per layer and function, and
 * every train function's loss and gradients equal to 1e-9. */
static void check_passes(const char *spec, const char *label)
{
    static const char *const plain[] = {"lora-insert", "lora-fuse", "autodiff"};
    static const char *const fused[] = {"lora-insert", "lora-fuse", "attention-fuse", "head-loss-fuse", "autodiff"};
    TuModel u, f;
    tu_build(&u, spec, plain, 3);
    tu_build(&f, spec, fused, 5);
    ck_assert_int_eq(count_op(f.m, IR_OP_SOFTMAX), 0);
    ck_assert_int_eq(count_op(f.m, IR_OP_REPEAT_KV), 0);
    ck_assert_int_eq(count_op(f.m, IR_OP_CROSS_ENTROPY), 0);
    ck_assert_int_eq(count_op(f.m, IR_OP_ATTENTION), count_op(u.m, IR_OP_SOFTMAX));
    ck_assert_int_eq(count_op(f.m, IR_OP_LINEAR_CROSS_ENTROPY), count_op(u.m, IR_OP_CROSS_ENTROPY));
    ck_assert_int_gt(count_op(f.m, IR_OP_ATTENTION_GRAD), 0);
    IrInterp *iu = ir_interp_create(u.m, 3), *jf = ir_interp_create(f.m, 3);
    ir_interp_run(iu, ir_func_find(u.m, "init"));
    ir_interp_run(jf, ir_func_find(f.m, "init"));
    tu_perturb_params(iu, u.m);
    tu_perturb_params(jf, f.m);
    tu_set_tokens(iu, u.m, 1);
    tu_set_tokens(jf, f.m, 1);
    double worst = 0;
    int n_funcs = 0;
    for (int fi = 0; fi < u.m->n_funcs; fi++) {
        const char *name = u.m->funcs[fi]->name;
        if (strncmp(name, "train", 5) != 0 && strcmp(name, "eval") != 0)
            continue;
        double a = ir_interp_run(iu, u.m->funcs[fi]), b = ir_interp_run(jf, ir_func_find(f.m, name));
        worst = fmax(worst, fabs(a - b) / fabs(a));
        for (int g = 0; g < u.m->n_globals; g++) {
            const IrGlobal *gu = u.m->globals[g];
            if (gu->cls != IR_CLASS_GRAD)
                continue;
            const IrGlobal *gf = ir_global_find(f.m, gu->name);
            ck_assert_ptr_nonnull(gf);
            double e = rel_err(ir_interp_global(jf, gf), ir_interp_global(iu, gu), ir_type_numel(gu->type));
            if (e >= F64_TOL)
                printf("%s: @%s after @%s: fused vs unfused %.3e\n", label, gu->name, name, e);
            worst = fmax(worst, e);
        }
        n_funcs++;
    }
    printf("%s: %d attention ops; loss and gradients of %d functions, fused vs unfused: %.2e\n", label,
           count_op(f.m, IR_OP_ATTENTION), n_funcs, worst);
    ck_assert_int_ge(n_funcs, 2);
    ck_assert_msg(worst < F64_TOL, "%s: %.3e", label, worst);
    ir_interp_destroy(iu);
    ir_interp_destroy(jf);
    tu_fini(&u);
    tu_fini(&f);
}

START_TEST(fused_passes_keep_loss_and_gradients)
{
    check_passes(tu_spec_llama, "llama (GQA, rope)");
    check_passes(tu_spec_gpt2, "gpt2 (tied head)");
    check_passes(tu_spec_parallel, "parallel");
    check_passes(TU_LLAMA_MODEL "adapter lora { rank = 4; alpha = 8; targets = [\"attention.*\", \"swiglu.*\"] }\n"
                                "train { batch = 2; seq_len = 6; steps = 10;\n"
                                "  schedule = relora(warm_start = 2, reset_every = 4) }\n",
                 "llama ReLoRA");
}
END_TEST

/* ---- the memory plans of the examples ---- */

/* Every example through the whole pipeline (target cpu, fp32): fused attention in every
 * layer of the train step; no value of any function shaped [B, H, T, T] (scores or
 * probabilities) and, with V >= 4096, none of B T V elements or more (the logits of one
 * sequence, T V, are the logits function's); no scratch buffer the kernelizer adds
 * (named <value>.<what>) of B H T T / 2 or B T V elements or more. (Sizes alone cannot
 * tell: parallel.relora's [16,256,1024] MLP activation has exactly B H T T / 2 elements.) */
START_TEST(fused_examples_plan_no_scores_or_logits)
{
    const char *root = getenv("RELORAC_SOURCE_ROOT");
    if (!root)
        return; /* run outside meson: no examples */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/examples", root);
    DIR *dp = opendir(dir);
    ck_assert_ptr_nonnull(dp);
    int n_examples = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        size_t len = strlen(e->d_name);
        if (len < 8 || strcmp(e->d_name + len - 7, ".relora") != 0)
            continue;
        TuModel t;
        arena_init(&t.a);
        diag_init(&t.d, &t.a);
        static const char *const defs[] = {"train.target=cpu", "train.precision=fp32"};
        FeOptions fo = {.defines = defs, .n_defines = 2};
        const Spec *spec = fe_load_spec(&t.a, &t.d, arena_sprintf(&t.a, "%s/%s", dir, e->d_name), &fo);
        t.m = spec ? fe_lower(&t.a, &t.d, spec) : NULL;
        tu_assert_ok(&t, t.m != NULL);
        tu_run_passes(&t, NULL, 0);
        int64_t B = ir_attrs_int(&t.m->attrs, "batch", 0), T = ir_attrs_int(&t.m->attrs, "seq_len", 0);
        int64_t V = ir_attrs_int(&t.m->attrs, "vocab", 0), L = ir_attrs_int(&t.m->attrs, "layers", 0);
        int64_t logits = V >= 4096 && B > 1 ? B * T * V : INT64_MAX;
        for (int fi = 0; fi < t.m->n_funcs; fi++)
            for (int i = 0; i < t.m->funcs[fi]->n_nodes; i++) {
                const IrNode *n = t.m->funcs[fi]->nodes[i];
                IrType ty = n->type;
                ck_assert_msg(!(ty.rank == 4 && ty.dim[3] == T && ty.dim[2] == T && T > 1),
                              "%s: @%s %%%d (%s) is [B, H, T, T]", e->d_name, t.m->funcs[fi]->name, n->id,
                              ir_op_info[n->op].name);
                ck_assert_msg(ty.rank < 0 || ir_type_numel(ty) < logits, "%s: @%s %%%d (%s) has B T V elements",
                              e->d_name, t.m->funcs[fi]->name, n->id, ir_op_info[n->op].name);
            }
        KProgram *p = k_program_build(&t.a, &t.d, t.m);
        tu_assert_ok(&t, p != NULL);
        int64_t H = 0, work = 0;
        int n_attn = 0;
        const KFunc *train = k_program_func(p, "train_full") ? k_program_func(p, "train_full") : k_program_func(p, "train");
        ck_assert_ptr_nonnull(train);
        for (int i = 0; i < train->n_kernels; i++)
            if (train->kernels[i]->kind == K_ATTENTION && !train->kernels[i]->attn.backward) {
                H = train->kernels[i]->attn.heads;
                n_attn++;
            }
        ck_assert_int_ge(n_attn, L);
        for (int b = 0; b < p->n_bufs; b++) {
            const char *v = strstr(p->bufs[b].name, ".v");
            if (p->bufs[b].global || !v || !strchr(v + 2, '.'))
                continue;
            ck_assert_msg(p->bufs[b].numel < B * H * T * T / 2 && p->bufs[b].numel < logits,
                          "%s: scratch buffer %s of %lld elements", e->d_name, p->bufs[b].name,
                          (long long)p->bufs[b].numel);
            work = p->bufs[b].numel > work ? p->bufs[b].numel : work;
        }
        printf("%s: %d attention ops in the train step; B H T T = %lld, B T V = %lld, largest kernel scratch %lld "
               "elements\n",
               e->d_name, n_attn, (long long)(B * H * T * T), (long long)(B * T * V), (long long)work);
        tu_fini(&t);
        n_examples++;
    }
    closedir(dp);
    ck_assert_int_ge(n_examples, 6);
}
END_TEST

Suite *fused_suite(void)
{
    Suite *s = suite_create("fused");
    TCase *tc = tcase_create("graph");
    tcase_add_loop_test(tc, fused_attention_graph_matches_unfused_graph, 0, N_ATTN_CFGS);
    tcase_add_loop_test(tc, fused_head_loss_graph_matches_unfused_graph, 0, N_HEAD_CFGS);
    tcase_add_test(tc, fused_passes_keep_loss_and_gradients);
    suite_add_tcase(s, tc);
    tc = tcase_create("kernels");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, fused_attention_kernels_match_unfused_graph, 0, N_ATTN_CFGS);
    tcase_add_loop_test(tc, fused_head_loss_kernels_match_unfused_graph, 0, N_HEAD_CFGS);
    tcase_add_test(tc, fused_examples_plan_no_scores_or_logits);
    suite_add_tcase(s, tc);
    return s;
}
