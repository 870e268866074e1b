/* LLVM backend: hand-built kernel programs (elementwise, two-phase rmsnorm, reductions with
 * a post-row step, GEMM, RNG, runtime calls, the train_step schedule) are JIT-compiled with
 * MCJIT and run through the runtime; results are compared with plain C (f64) or bit for
 * bit where the contract is exact (RNG, pruning), and kernelized graphs are compared with
 * the kernel interpreter. Tolerances: 1e-5 relative for f32 elementwise math, 1e-4 for
 * reductions over <= 1000 terms and GEMMs. Also: the module verifies, O3 vectorises the
 * elementwise loop, and a linked binary runs without libLLVM. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cg.h"
#include "fe.h"
#include "lower.h"
#include "pm.h"
#include "kernel.h"
#include "rt.h"
#include "rt_internal.h"
#include "rt_fused.h"
#include "rt_ops.h"
#include "tutil.h"

/* ---- building kernel programs by hand ---- */

typedef struct Fx {
    Arena a;
    Diags d;
    IrModule *m;
    KProgram *p;
} Fx;

static void fx_init(Fx *x)
{
    arena_init(&x->a);
    diag_init(&x->d, &x->a);
    x->m = ir_module_new(&x->a, "cgtest");
    ir_attrs_set_int(&x->a, &x->m->attrs, "batch", 2);
    ir_attrs_set_int(&x->a, &x->m->attrs, "train.micro_batch", 2);
    ir_attrs_set_int(&x->a, &x->m->attrs, "seq_len", 4);
    ir_attrs_set_int(&x->a, &x->m->attrs, "vocab", 16);
    tu_program_attrs(&x->a, x->m);
    x->p = ARENA_NEW(&x->a, KProgram);
    x->p->arena = &x->a;
    x->p->m = x->m;
    x->p->bufs = ARENA_ARRAY(&x->a, KBuf, 64);
    x->p->cap_bufs = 64;
    x->p->funcs = ARENA_ARRAY(&x->a, KFunc *, 16);
    x->p->global_buf = ARENA_ARRAY(&x->a, int, 64);
}

static void fx_fini(Fx *x)
{
    if (x->d.n_errors)
        diag_print(&x->d, stderr, false);
    arena_fini(&x->a);
}

/* A buffer at the end of its class's region (64-byte aligned). */
static int buf_add(Fx *x, const char *name, IrDType dt, int64_t numel, IrMemClass cls)
{
    KProgram *p = x->p;
    KBuf *b = &p->bufs[p->n_bufs];
    b->id = p->n_bufs;
    b->name = name;
    b->dtype = dt;
    b->numel = numel;
    b->cls = cls;
    b->offset = (p->pool_bytes[cls] + 63) / 64 * 64;
    p->pool_bytes[cls] = b->offset + numel * (dt == IR_BF16 ? 2 : 4);
    return p->n_bufs++;
}

/* A global and its buffer. */
static int global_add(Fx *x, const char *name, IrDType dt, int rank, const int64_t *dims, IrMemClass cls,
                      unsigned flags)
{
    IrGlobal *g = ir_global_new(x->m, name, ir_type_make(dt, rank, dims), cls, flags, srcloc_none());
    int b = buf_add(x, name, dt, ir_type_numel(g->type), cls);
    x->p->bufs[b].global = g;
    x->p->global_buf[g->id] = b;
    return b;
}

static KFunc *func_add(Fx *x, const char *name)
{
    KFunc *f = ARENA_NEW(&x->a, KFunc);
    f->name = name;
    f->ret_buf = -1;
    f->kernels = ARENA_ARRAY(&x->a, Kernel *, 16);
    f->cap_kernels = 16;
    x->p->funcs[x->p->n_funcs++] = f;
    return f;
}

static Kernel *kernel_add(Fx *x, KFunc *f, KernelKind kind, const char *name)
{
    Kernel *k = ARENA_NEW(&x->a, Kernel);
    k->id = f->n_kernels;
    k->name = name;
    k->kind = kind;
    k->inner = 1;
    k->n_phases = 1;
    k->code = ARENA_ARRAY(&x->a, KInstr, 128);
    k->cap_code = 128;
    f->kernels[f->n_kernels++] = k;
    return k;
}

static Kernel *loop_add(Fx *x, KFunc *f, const char *name, int64_t rows, int64_t inner, int n_phases)
{
    Kernel *k = kernel_add(x, f, K_LOOP, name);
    k->n_outer = 1;
    k->outer[0] = rows;
    k->inner = inner;
    k->n_phases = n_phases;
    return k;
}

static int ins(Kernel *k, KInstrOp op, int phase, int a, int b)
{
    KInstr *in = &k->code[k->n_code];
    memset(in, 0, sizeof *in);
    in->op = op;
    in->phase = phase;
    in->a = a;
    in->b = b;
    in->c = -1;
    in->buf = -1;
    return k->n_code++;
}

static int iconst(Kernel *k, int phase, int64_t v)
{
    int i = ins(k, KI_ICONST, phase, -1, -1);
    k->code[i].ival = v;
    return i;
}

static int fconst(Kernel *k, int phase, double v)
{
    int i = ins(k, KI_CONST, phase, -1, -1);
    k->code[i].fval = v;
    return i;
}

static int load(Kernel *k, int phase, int buf, int idx)
{
    int i = ins(k, KI_LOAD, phase, idx, -1);
    k->code[i].buf = buf;
    return i;
}

static void store(Kernel *k, int phase, int buf, int idx, int v)
{
    int i = ins(k, KI_STORE, phase, idx, v);
    k->code[i].buf = buf;
}

/* row * C + col in phase ph (row from phase -1 instruction `row`) */
static int flat(Kernel *k, int ph, int row_c)
{
    return ins(k, KI_IADD, ph, row_c, ins(k, KI_INNER_INDEX, ph, -1, -1));
}

/* ---- running ---- */

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
    {"rt_main", (CgFnPtr)rt_main},
    {"tanhf", (CgFnPtr)tanhf},
};

typedef struct Run {
    CgJit *jit;
    const RtModel *model;
    RtCtx *ctx;
} Run;

typedef float (*HostFn)(RtCtx *);

static void run_start(Fx *x, Run *r, int threads, uint64_t seed)
{
    r->jit = cg_jit_create(x->p, NULL, rt_syms, (int)(sizeof rt_syms / sizeof rt_syms[0]), &x->d);
    if (!r->jit)
        diag_print(&x->d, stderr, false);
    ck_assert_ptr_nonnull(r->jit);
    r->model = (const RtModel *)cg_jit_lookup(r->jit, "relorac_model");
    ck_assert_ptr_nonnull(r->model);
    RtError e = {0};
    if (!rt_ctx_create(&r->ctx, r->model, threads, seed, &e))
        ck_abort_msg("rt_ctx_create: %s", e.msg);
}

static void run_stop(Run *r)
{
    rt_ctx_destroy(r->ctx);
    cg_jit_destroy(r->jit);
}

static void *bufp(Fx *x, Run *r, int buf)
{
    const KBuf *b = &x->p->bufs[buf];
    /* the class -> pool layout of codegen: classes sharing a pool follow in class order */
    int64_t base = 0;
    int pool = cg_class_pool(b->cls);
    for (int c = 0; c < (int)b->cls; c++)
        if (cg_class_pool((IrMemClass)c) == pool)
            base = (base + 63) / 64 * 64 + x->p->pool_bytes[c];
    base = (base + 63) / 64 * 64;
    return (char *)r->ctx->pools[pool] + base + b->offset;
}

/* Runs relorac_fn_<name> with @step = step (the step RNG counters use; programs without a
 * @step global run at step 0). */
static float call_fn(Fx *x, Run *r, const char *name, int64_t step)
{
    char sym[128];
    snprintf(sym, sizeof sym, "relorac_fn_%s", name);
    uintptr_t addr = cg_jit_lookup(r->jit, sym);
    ck_assert(addr != 0);
    const IrGlobal *g = ir_global_find(x->m, "step");
    if (g)
        *(int32_t *)bufp(x, r, x->p->global_buf[g->id]) = (int32_t)step;
    else
        ck_assert_int_eq(step, 0);
    HostFn fn = (HostFn)addr;
    return fn(r->ctx);
}

static void fill(float *v, int64_t n, uint64_t stream)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = 2.0f * rt_rng_uniform(99, stream, (uint64_t)i) - 1.0f;
}

static void assert_close(double got, double want, double rtol, const char *what, int64_t i)
{
    double tol = rtol * fmax(1.0, fabs(want));
    if (!(fabs(got - want) <= tol))
        ck_abort_msg("%s[%lld]: got %.9g, want %.9g", what, (long long)i, got, want);
}

/* ---- elementwise ---- */

enum { EN = 37, EC = 100 };

/* y[r,c] = tanh(x) * exp(x) * 2 + w[c] - max(x, 0.25) */
static KFunc *build_elementwise(Fx *x, int *bx, int *bw, int *by)
{
    int64_t dx[2] = {EN, EC}, dw[1] = {EC};
    *bx = global_add(x, "x", IR_F32, 2, dx, IR_CLASS_PARAM, 0);
    *bw = global_add(x, "w", IR_F32, 1, dw, IR_CLASS_PARAM, 0);
    *by = buf_add(x, "y", IR_F32, EN * EC, IR_CLASS_SCRATCH);
    KFunc *f = func_add(x, "ew");
    Kernel *k = loop_add(x, f, "k0_ew", EN, EC, 1);
    int row = ins(k, KI_OUTER_INDEX, -1, -1, -1);
    int rc = ins(k, KI_IMUL, -1, row, iconst(k, -1, EC));
    int col = ins(k, KI_INNER_INDEX, 0, -1, -1);
    int i = ins(k, KI_IADD, 0, rc, col);
    int xv = load(k, 0, *bx, i);
    int t = ins(k, KI_MUL, 0, ins(k, KI_TANH, 0, xv, -1), ins(k, KI_EXP, 0, xv, -1));
    t = ins(k, KI_MUL, 0, t, fconst(k, 0, 2.0));
    t = ins(k, KI_ADD, 0, t, load(k, 0, *bw, col));
    t = ins(k, KI_SUB, 0, t, ins(k, KI_MAX, 0, xv, fconst(k, 0, 0.25)));
    store(k, 0, *by, i, t);
    return f;
}

START_TEST(codegen_elementwise_kernel_matches_reference)
{
    Fx x;
    fx_init(&x);
    int bx, bw, by;
    build_elementwise(&x, &bx, &bw, &by);
    Run r;
    run_start(&x, &r, 2, 1);
    float *xv = bufp(&x, &r, bx), *w = bufp(&x, &r, bw), *y = bufp(&x, &r, by);
    fill(xv, EN * EC, 1);
    fill(w, EC, 2);
    call_fn(&x, &r, "ew", 0);
    for (int i = 0; i < EN * EC; i++) {
        double a = xv[i];
        double want = tanh(a) * exp(a) * 2 + w[i % EC] - fmax(a, 0.25);
        assert_close(y[i], want, 1e-5, "y", i);
    }
    run_stop(&r);
    fx_fini(&x);
}
END_TEST

START_TEST(codegen_module_verifies_and_vectorizes_elementwise_loop)
{
    Fx x;
    fx_init(&x);
    int bx, bw, by;
    build_elementwise(&x, &bx, &bw, &by);
    /* replace tanh (a libm call) so the loop is pure arithmetic */
    Kernel *k = x.p->funcs[0]->kernels[0];
    for (int i = 0; i < k->n_code; i++)
        if (k->code[i].op == KI_TANH)
            k->code[i].op = KI_ABS;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CgOptions opt = {.cpu = "haswell", .features = "+avx2,+fma"};
    ck_assert(cg_emit_llvm_ir(x.p, &opt, f, &x.d));
    fclose(f);
    ck_assert_msg(strstr(text, "<8 x float>") || strstr(text, "<4 x float>"), "no vector code:\n%s", text);
    ck_assert_ptr_nonnull(strstr(text, "@relorac_model"));
    free(text);
    /* unoptimised too */
    text = NULL;
    f = open_memstream(&text, &len);
    opt.no_opt = true;
    ck_assert(cg_emit_llvm_ir(x.p, &opt, f, &x.d));
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "noalias"));
    free(text);
    fx_fini(&x);
}
END_TEST

/* ---- rmsnorm: a two-phase row kernel ---- */

START_TEST(codegen_rmsnorm_two_phase_kernel_matches_reference)
{
    enum { N = 13, C = 256 };
    Fx x;
    fx_init(&x);
    int64_t dx[2] = {N, C}, dw[1] = {C};
    int bx = global_add(&x, "x", IR_F32, 2, dx, IR_CLASS_PARAM, 0);
    int bw = global_add(&x, "w", IR_F32, 1, dw, IR_CLASS_PARAM, 0);
    int by = buf_add(&x, "y", IR_F32, N * C, IR_CLASS_ACTIVATION);
    KFunc *f = func_add(&x, "rms");
    Kernel *k = loop_add(&x, f, "k0_rmsnorm", N, C, 2);
    int rc = ins(k, KI_IMUL, -1, ins(k, KI_OUTER_INDEX, -1, -1, -1), iconst(k, -1, C));
    int x0 = load(k, 0, bx, flat(k, 0, rc));
    int ss = ins(k, KI_REDUCE_SUM, 0, ins(k, KI_MUL, 0, x0, x0), -1);
    int col = ins(k, KI_INNER_INDEX, 1, -1, -1);
    int i1 = ins(k, KI_IADD, 1, rc, col);
    int ms = ins(k, KI_ADD, 1, ins(k, KI_DIV, 1, ss, fconst(k, 1, C)), fconst(k, 1, 1e-5));
    int y = ins(k, KI_DIV, 1, load(k, 1, bx, i1), ins(k, KI_SQRT, 1, ms, -1));
    store(k, 1, by, i1, ins(k, KI_MUL, 1, y, load(k, 1, bw, col)));
    Run r;
    run_start(&x, &r, 3, 1);
    float *xv = bufp(&x, &r, bx), *w = bufp(&x, &r, bw), *yv = bufp(&x, &r, by);
    fill(xv, N * C, 3);
    fill(w, C, 4);
    call_fn(&x, &r, "rms", 0);
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int c = 0; c < C; c++)
            s += (double)xv[n * C + c] * xv[n * C + c];
        double inv = 1.0 / sqrt(s / C + 1e-5);
        for (int c = 0; c < C; c++)
            assert_close(yv[n * C + c], xv[n * C + c] * inv * w[c], 1e-4, "y", n * C + c);
    }
    run_stop(&r);
    fx_fini(&x);
}
END_TEST

/* ---- reductions: log-softmax rows with a post-row store ---- */

/* phase 0: m = max x; phase 1: s = sum exp(x - m); phase 2: y = x - m - log s;
 * after the loops: lse[row] = m + log s */
static void build_logsoftmax(Fx *x, int n, int c, int *bx, int *by, int *bl)
{
    int64_t dx[2] = {n, c};
    *bx = global_add(x, "x", IR_F32, 2, dx, IR_CLASS_PARAM, 0);
    *by = buf_add(x, "y", IR_F32, (int64_t)n * c, IR_CLASS_SCRATCH);
    *bl = buf_add(x, "lse", IR_F32, n, IR_CLASS_SCRATCH);
    KFunc *f = func_add(x, "lsm");
    Kernel *k = loop_add(x, f, "k0_logsoftmax", n, c, 3);
    int row = ins(k, KI_OUTER_INDEX, -1, -1, -1);
    int rc = ins(k, KI_IMUL, -1, row, iconst(k, -1, c));
    int m = ins(k, KI_REDUCE_MAX, 0, load(k, 0, *bx, flat(k, 0, rc)), -1);
    int e = ins(k, KI_EXP, 1, ins(k, KI_SUB, 1, load(k, 1, *bx, flat(k, 1, rc)), m), -1);
    int s = ins(k, KI_REDUCE_SUM, 1, e, -1);
    int i2 = flat(k, 2, rc);
    int ls = ins(k, KI_LOG, 2, s, -1);
    store(k, 2, *by, i2, ins(k, KI_SUB, 2, ins(k, KI_SUB, 2, load(k, 2, *bx, i2), m), ls));
    store(k, 3, *bl, row, ins(k, KI_ADD, 3, m, ins(k, KI_LOG, 3, s, -1)));
}

START_TEST(codegen_row_reductions_and_post_phase_match_reference)
{
    enum { N = 9, C = 1000 };
    Fx x;
    fx_init(&x);
    int bx, by, bl;
    build_logsoftmax(&x, N, C, &bx, &by, &bl);
    Run r;
    run_start(&x, &r, 2, 1);
    float *xv = bufp(&x, &r, bx), *y = bufp(&x, &r, by), *lse = bufp(&x, &r, bl);
    fill(xv, N * C, 5);
    for (int i = 0; i < N * C; i++)
        xv[i] *= 8;
    call_fn(&x, &r, "lsm", 0);
    for (int n = 0; n < N; n++) {
        double m = -INFINITY, s = 0;
        for (int c = 0; c < C; c++)
            m = fmax(m, xv[n * C + c]);
        for (int c = 0; c < C; c++)
            s += exp(xv[n * C + c] - m);
        assert_close(lse[n], m + log(s), 1e-5, "lse", n);
        for (int c = 0; c < C; c++)
            assert_close(y[n * C + c], xv[n * C + c] - m - log(s), 1e-4, "y", n * C + c);
    }
    run_stop(&r);
    fx_fini(&x);
}
END_TEST

START_TEST(codegen_results_do_not_depend_on_thread_count)
{
    enum { N = 64, C = 515 };
    float *ref = NULL;
    for (int threads = 1; threads <= 4; threads++) {
        Fx x;
        fx_init(&x);
        int bx, by, bl;
        build_logsoftmax(&x, N, C, &bx, &by, &bl);
        Run r;
        run_start(&x, &r, threads, 1);
        fill(bufp(&x, &r, bx), N * C, 6);
        call_fn(&x, &r, "lsm", 0);
        float *y = bufp(&x, &r, by);
        if (!ref) {
            ref = malloc(sizeof(float) * N * C);
            memcpy(ref, y, sizeof(float) * N * C);
        } else {
            ck_assert_msg(memcmp(ref, y, sizeof(float) * N * C) == 0, "%d threads differ", threads);
        }
        run_stop(&r);
        fx_fini(&x);
    }
    free(ref);
}
END_TEST

/* ---- GEMM ---- */

START_TEST(codegen_gemm_calls_runtime_sgemm)
{
    enum { B = 3, M = 5, K = 7, N = 6 };
    Fx x;
    fx_init(&x);
    int ba = buf_add(&x, "a", IR_F32, 4 + B * M * K, IR_CLASS_SCRATCH);
    int bb = buf_add(&x, "b", IR_F32, N * K, IR_CLASS_PARAM);      /* shared, used as B^T */
    int bc = buf_add(&x, "c", IR_F32, B * M * N, IR_CLASS_ACTIVATION);
    KFunc *f = func_add(&x, "mm");
    Kernel *k = kernel_add(&x, f, K_GEMM, "k0_matmul");
    k->gemm = (KGemm){.trans_a = false, .trans_b = true, .m = M, .n = N, .k = K, .batch = B,
                      .a = ba, .b = bb, .c = bc, .off_a = 4, .lda = K, .ldb = K, .ldc = N,
                      .stride_a = M * K, .stride_b = 0, .stride_c = M * N, .alpha = 0.5, .beta = 1.0};
    Run r;
    run_start(&x, &r, 2, 1);
    float *a = bufp(&x, &r, ba), *b = bufp(&x, &r, bb), *c = bufp(&x, &r, bc);
    fill(a, 4 + B * M * K, 7);
    fill(b, N * K, 8);
    fill(c, B * M * N, 9);
    float c0[B * M * N];
    memcpy(c0, c, sizeof c0);
    call_fn(&x, &r, "mm", 0);
    for (int t = 0; t < B; t++)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int q = 0; q < K; q++)
                    s += (double)a[4 + t * M * K + i * K + q] * b[j * K + q];
                int o = t * M * N + i * N + j;
                assert_close(c[o], 0.5 * s + c0[o], 1e-4, "c", o);
            }
    run_stop(&r);
    fx_fini(&x);
}
END_TEST

/* The two GEMMs of a fused LoRA linear, as kernelize splits them, become one rt_sgemm_pair
 * call each: y[M, O+R] = x [W; A]^T (two column ranges of one C) and
 * dx[M, I] = dy W + dz A (the second with beta 1). Checked against sums computed here. */
START_TEST(codegen_lora_gemm_pairs_become_one_call)
{
    enum { M = 9, I = 13, O = 11, R = 3 };
    Fx x;
    fx_init(&x);
    int bx = buf_add(&x, "x", IR_F32, M * I, IR_CLASS_SCRATCH);
    int bw = buf_add(&x, "w", IR_F32, O * I, IR_CLASS_PARAM);
    int ba = buf_add(&x, "a", IR_F32, R * I, IR_CLASS_PARAM);
    int by = buf_add(&x, "y", IR_F32, M * (O + R), IR_CLASS_ACTIVATION);
    int bdy = buf_add(&x, "dy", IR_F32, M * O, IR_CLASS_SCRATCH);
    int bdz = buf_add(&x, "dz", IR_F32, M * R, IR_CLASS_SCRATCH);
    int bdx = buf_add(&x, "dx", IR_F32, M * I, IR_CLASS_ACTIVATION);
    KFunc *f = func_add(&x, "lin");
    Kernel *k[4];
    k[0] = kernel_add(&x, f, K_GEMM, "k0_gemm_a");
    k[0]->gemm = (KGemm){.trans_b = true, .m = M, .n = O, .k = I, .batch = 1, .a = bx, .b = bw,
                         .c = by, .lda = I, .ldb = I, .ldc = O + R, .alpha = 1.0};
    k[1] = kernel_add(&x, f, K_GEMM, "k0_gemm_b");
    k[1]->gemm = (KGemm){.trans_b = true, .m = M, .n = R, .k = I, .batch = 1, .a = bx, .b = ba,
                         .c = by, .off_c = O, .lda = I, .ldb = I, .ldc = O + R, .alpha = 1.0};
    k[2] = kernel_add(&x, f, K_GEMM, "k1_gemm_a");
    k[2]->gemm = (KGemm){.m = M, .n = I, .k = O, .batch = 1, .a = bdy, .b = bw, .c = bdx,
                         .lda = O, .ldb = I, .ldc = I, .alpha = 1.0};
    k[3] = kernel_add(&x, f, K_GEMM, "k1_gemm_b");
    k[3]->gemm = (KGemm){.m = M, .n = I, .k = R, .batch = 1, .a = bdz, .b = ba, .c = bdx,
                         .lda = R, .ldb = I, .ldc = I, .alpha = 1.0, .beta = 1.0};
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    CgOptions opt = {.no_opt = true};
    ck_assert(cg_emit_llvm_ir(x.p, &opt, fp, &x.d));
    fclose(fp);
    int pairs = 0, singles = 0;
    for (const char *q = text; (q = strstr(q, "call void @rt_sgemm_")); q++) {
        if (strncmp(q, "call void @rt_sgemm_pair(", 25) == 0)
            pairs++;
        else if (strncmp(q, "call void @rt_sgemm_strided(", 28) == 0)
            singles++;
    }
    ck_assert_msg(pairs == 2 && singles == 0, "%d rt_sgemm_pair calls, %d rt_sgemm_strided", pairs, singles);
    free(text);
    Run r;
    run_start(&x, &r, 2, 1);
    float *xv = bufp(&x, &r, bx), *w = bufp(&x, &r, bw), *a = bufp(&x, &r, ba), *y = bufp(&x, &r, by);
    float *dy = bufp(&x, &r, bdy), *dz = bufp(&x, &r, bdz), *dx = bufp(&x, &r, bdx);
    fill(xv, M * I, 1);
    fill(w, O * I, 2);
    fill(a, R * I, 3);
    fill(dy, M * O, 4);
    fill(dz, M * R, 5);
    fill(y, M * (O + R), 6);
    fill(dx, M * I, 7);
    call_fn(&x, &r, "lin", 0);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < O + R; j++) {
            double s = 0;
            for (int p = 0; p < I; p++)
                s += (double)xv[i * I + p] * (j < O ? w[j * I + p] : a[(j - O) * I + p]);
            assert_close(y[i * (O + R) + j], s, 1e-4, "y", i * (O + R) + j);
        }
        for (int j = 0; j < I; j++) {
            double s = 0;
            for (int p = 0; p < O; p++)
                s += (double)dy[i * O + p] * w[p * I + j];
            for (int p = 0; p < R; p++)
                s += (double)dz[i * R + p] * a[p * I + j];
            assert_close(dx[i * I + j], s, 1e-4, "dx", i * I + j);
        }
    }
    run_stop(&r);
    fx_fini(&x);
}
END_TEST

/* ---- RNG ---- */

START_TEST(codegen_rng_kernel_is_bit_exact_with_runtime)
{
    enum { N = 8, C = 129 };
    Fx x;
    fx_init(&x);
    int bu = buf_add(&x, "u", IR_F32, N * C, IR_CLASS_SCRATCH);
    int bn = buf_add(&x, "n", IR_F32, N * C, IR_CLASS_SCRATCH);
    global_add(&x, "step", IR_I32, 0, NULL, IR_CLASS_DATA, 0);
    KFunc *f = func_add(&x, "rng");
    Kernel *k = loop_add(&x, f, "k0_rng", N, C, 1);
    int rc = ins(k, KI_IMUL, -1, ins(k, KI_OUTER_INDEX, -1, -1, -1), iconst(k, -1, C));
    int i = flat(k, 0, rc);
    /* counter = step * numel + i, with step a host scalar */
    int step = ins(k, KI_SCALAR_ARG, 0, -1, -1);
    int ctr = ins(k, KI_IADD, 0, ins(k, KI_IMUL, 0, step, iconst(k, 0, N * C)), i);
    int u = ins(k, KI_RNG_UNIFORM, 0, ctr, -1);
    k->code[u].ival = 77;
    store(k, 0, bu, i, u);
    int nv = ins(k, KI_RNG_NORMAL, 0, ctr, -1);
    k->code[nv].ival = 78;
    store(k, 0, bn, i, nv);
    Run r;
    run_start(&x, &r, 2, 0xABCDEF);
    call_fn(&x, &r, "rng", 5);
    float *uv = bufp(&x, &r, bu), *nvv = bufp(&x, &r, bn);
    for (int64_t j = 0; j < N * C; j++) {
        uint64_t c = (uint64_t)(5 * N * C + j);
        ck_assert_msg(uv[j] == rt_rng_uniform(0xABCDEF, 77, c), "uniform %lld", (long long)j);
        ck_assert_msg(nvv[j] == rt_rng_normal(0xABCDEF, 78, c), "normal %lld", (long long)j);
        ck_assert(uv[j] == (float)ir_rng_uniform(0xABCDEF, 77, c));
    }
    run_stop(&r);
    fx_fini(&x);
}
END_TEST

/* ---- runtime calls ---- */

static int cmp_mag(const void *pa, const void *pb)
{
    const float *a = *(const float *const *)pa, *b = *(const float *const *)pb;
    float x = fabsf(*a), y = fabsf(*b);
    if (x != y)
        return x < y ? -1 : 1;
    return a < b ? -1 : a > b;
}

START_TEST(codegen_prune_magnitude_zeroes_exact_count_ties_by_index)
{
    enum { N = 1000 };
    float v[N], ref[N];
    const float *order[N];
    for (int i = 0; i < N; i++)
        v[i] = (float)((i * 37) % 50) * (i % 2 ? -0.5f : 0.5f); /* many ties, both signs */
    memcpy(ref, v, sizeof v);
    for (int i = 0; i < N; i++)
        order[i] = &ref[i];
    qsort(order, N, sizeof order[0], cmp_mag);
    int64_t k = (int64_t)ceil(0.37 * N);
    for (int64_t i = 0; i < k; i++)
        *(float *)order[i] = 0.0f;
    ck_assert_int_eq(rt_prune_magnitude(v, N, 0.37), k);
    ck_assert(memcmp(v, ref, sizeof v) == 0);
    ck_assert_int_eq(rt_prune_magnitude(v, 100, 0.07), 7); /* 0.07 * 100 snaps to 7 */
    ck_assert_int_eq(rt_prune_magnitude(v, N, 0.0), 0);
    ck_assert_int_eq(rt_prune_magnitude(v, N, 1.0), N);
    for (int i = 0; i < N; i++)
        ck_assert(v[i] == 0.0f);
}
END_TEST

START_TEST(codegen_prune_random_matches_interpreter)
{
    enum { N = 500 };
    float v[N];
    for (int i = 0; i < N; i++)
        v[i] = 1.0f;
    int64_t z = rt_prune_random(v, N, 0.3, 42, 9, 3);
    int64_t zz = 0;
    for (int i = 0; i < N; i++) {
        bool drop = ir_rng_uniform(42, 9, (uint64_t)(3 * N + i)) < 0.3;
        ck_assert(v[i] == (drop ? 0.0f : 1.0f));
        zz += drop;
    }
    ck_assert_int_eq(z, zz);
}
END_TEST

/* K_CALL kernels in a host function, compared with the kernel interpreter. */
START_TEST(codegen_call_kernels_match_kernel_interpreter)
{
    enum { N = 300 };
    Fx x;
    fx_init(&x);
    int64_t dn[1] = {N};
    int bm = global_add(&x, "m", IR_F32, 1, dn, IR_CLASS_OPTIM, IR_G_MOMENT);
    int bv = global_add(&x, "v", IR_F32, 1, dn, IR_CLASS_OPTIM, IR_G_MOMENT);
    int bs = global_add(&x, "step", IR_I32, 0, NULL, IR_CLASS_DATA, 0);
    int bf1 = global_add(&x, "f1", IR_F32, 0, NULL, IR_CLASS_DATA, 0);
    int bf2 = global_add(&x, "f2", IR_F32, 0, NULL, IR_CLASS_DATA, 0);
    KFunc *f = func_add(&x, "calls");
    Kernel *k = kernel_add(&x, f, K_CALL, "k0_prune");
    k->call = KC_PRUNE_MAGNITUDE;
    k->call_bufs[0] = bm;
    k->call_bufs[1] = bs;
    k->call_bufs[2] = bf1;
    k->n_call_bufs = 3;
    ir_attrs_set_str(&x.a, &k->call_attrs, "mode", "magnitude");
    k = kernel_add(&x, f, K_CALL, "k1_prune");
    k->call = KC_PRUNE_RANDOM;
    k->call_bufs[0] = bv;
    k->call_bufs[1] = bs;
    k->call_bufs[2] = bf2;
    k->n_call_bufs = 3;
    ir_attrs_set_int(&x.a, &k->call_attrs, "stream", 1234);

    Run r;
    run_start(&x, &r, 2, 77);
    KInterp *it = k_interp_create(x.p, 77);
    float *m = bufp(&x, &r, bm), *v = bufp(&x, &r, bv);
    fill(m, N, 10);
    fill(v, N, 11);
    for (int i = 0; i < N; i++) {
        k_interp_buf(it, bm)[i] = m[i];
        k_interp_buf(it, bv)[i] = v[i];
    }
    *(float *)bufp(&x, &r, bf1) = 0.25f;
    *(float *)bufp(&x, &r, bf2) = 0.5f;
    k_interp_buf(it, bs)[0] = 17;
    k_interp_buf(it, bf1)[0] = 0.25;
    k_interp_buf(it, bf2)[0] = 0.5;
    call_fn(&x, &r, "calls", 17);
    k_interp_run(it, f, 17);
    int zeros = 0;
    for (int i = 0; i < N; i++)
        zeros += m[i] == 0.0f;
    ck_assert_int_eq(zeros, 75); /* ceil(0.25 * 300) */
    for (int i = 0; i < N; i++) {
        ck_assert_msg(m[i] == (float)k_interp_buf(it, bm)[i], "m[%d]", i);
        ck_assert_msg(v[i] == (float)k_interp_buf(it, bv)[i], "v[%d]", i);
    }
    k_interp_destroy(it);
    run_stop(&r);
    fx_fini(&x);
}
END_TEST

/* ---- kernelized graphs against the kernel interpreter ---- */

START_TEST(codegen_kernelized_graph_matches_kernel_interpreter)
{
    Arena a;
    Diags d;
    arena_init(&a);
    diag_init(&d, &a);
    IrModule *m = ir_module_new(&a, "g");
    ir_attrs_set_int(&a, &m->attrs, "batch", 2);
    ir_attrs_set_int(&a, &m->attrs, "train.micro_batch", 2);
    ir_attrs_set_int(&a, &m->attrs, "seq_len", 8);
    ir_attrs_set_int(&a, &m->attrs, "vocab", 32);
    tu_program_attrs(&a, m);
    int64_t dx[2] = {16, 24}, dw[1] = {24}, dh[2] = {32, 24}, dt[1] = {16};
    IrGlobal *gx = ir_global_new(m, "x", ir_type_make(IR_F32, 2, dx), IR_CLASS_PARAM, 0, srcloc_none());
    IrGlobal *gw = ir_global_new(m, "w", ir_type_make(IR_F32, 1, dw), IR_CLASS_PARAM, 0, srcloc_none());
    IrGlobal *gh = ir_global_new(m, "head", ir_type_make(IR_F32, 2, dh), IR_CLASS_PARAM, 0, srcloc_none());
    IrGlobal *gt = ir_global_new(m, "t", ir_type_make(IR_I32, 1, dt), IR_CLASS_DATA, 0, srcloc_none());
    IrFunc *f = ir_func_new(m, "f");
    IrBuilder b;
    ir_builder_init(&b, m, f, &d);
    IrNode *h = ir_rmsnorm(&b, ir_global_read(&b, gx), ir_global_read(&b, gw), 1e-5);
    h = ir_unary(&b, IR_OP_SILU, h);
    IrNode *logits = ir_matmul(&b, h, ir_global_read(&b, gh), false, true); /* [16,32] */
    IrNode *sm = ir_softmax(&b, logits, false);
    IrNode *loss = ir_cross_entropy(&b, ir_binary(&b, IR_OP_ADD, logits, sm), ir_global_read(&b, gt));
    f->ret = loss;
    ck_assert(!b.failed);
    KProgram *p = k_program_build(&a, &d, m);
    if (!p)
        diag_print(&d, stderr, false);
    ck_assert_ptr_nonnull(p);

    Fx x = {0};
    x.p = p;
    x.m = m;
    CgJit *jit = cg_jit_create(p, NULL, rt_syms, (int)(sizeof rt_syms / sizeof rt_syms[0]), &d);
    if (!jit)
        diag_print(&d, stderr, false);
    ck_assert_ptr_nonnull(jit);
    Run r = {.jit = jit, .model = (const RtModel *)cg_jit_lookup(jit, "relorac_model")};
    RtError e = {0};
    if (!rt_ctx_create(&r.ctx, r.model, 2, 5, &e))
        ck_abort_msg("rt_ctx_create: %s", e.msg);
    KInterp *it = k_interp_create(p, 5);
    int bx = p->global_buf[gx->id], bw = p->global_buf[gw->id], bh = p->global_buf[gh->id],
        bt = p->global_buf[gt->id];
    float *xv = bufp(&x, &r, bx), *w = bufp(&x, &r, bw), *hv = bufp(&x, &r, bh);
    int32_t *tv = bufp(&x, &r, bt);
    fill(xv, 16 * 24, 12);
    fill(w, 24, 13);
    fill(hv, 32 * 24, 14);
    for (int i = 0; i < 16; i++)
        tv[i] = (i * 7) % 32;
    for (int i = 0; i < 16 * 24; i++)
        k_interp_buf(it, bx)[i] = xv[i];
    for (int i = 0; i < 24; i++)
        k_interp_buf(it, bw)[i] = w[i];
    for (int i = 0; i < 32 * 24; i++)
        k_interp_buf(it, bh)[i] = hv[i];
    for (int i = 0; i < 16; i++)
        k_interp_buf(it, bt)[i] = tv[i];
    KFunc *kf = k_program_func(p, "f");
    double want = k_interp_run(it, kf, 0);
    float got = call_fn(&x, &r, "f", 0);
    assert_close(got, want, 1e-4, "loss", 0);
    k_interp_destroy(it);
    rt_ctx_destroy(r.ctx);
    cg_jit_destroy(jit);
    arena_fini(&a);
}
END_TEST

/* ---- the model table drives the runtime's step policy ---- */

/* Adds 1 to calls[idx]; a train function also returns tokens[0] + targets[1], a norm
 * function returns 0.5. */
static void counting_kernel(Fx *x, KFunc *f, int calls, int idx, int btok, int btgt, int bret, bool norm)
{
    Kernel *k = loop_add(x, f, "k0_count", 1, 1, 1);
    int i = iconst(k, 0, idx);
    int s = ins(k, KI_STORE_ADD, 0, i, fconst(k, 0, 1.0));
    k->code[s].buf = calls;
    if (bret < 0)
        return;
    if (norm) {
        store(k, 0, bret, iconst(k, 0, 0), fconst(k, 0, 0.5));
    } else {
        int t0 = ins(k, KI_LOAD_I, 0, iconst(k, 0, 0), -1);
        k->code[t0].buf = btok;
        int t1 = ins(k, KI_LOAD_I, 0, iconst(k, 0, 1), -1);
        k->code[t1].buf = btgt;
        store(k, 0, bret, iconst(k, 0, 0), ins(k, KI_ITOF, 0, ins(k, KI_IADD, 0, t0, t1), -1));
    }
    f->ret_buf = bret;
}

START_TEST(codegen_model_table_drives_the_step_policy)
{
    Fx x;
    fx_init(&x);
    ir_attrs_set_str(&x.a, &x.m->attrs, "schedule.kind", "relora");
    ir_attrs_set_int(&x.a, &x.m->attrs, "train.steps", 20);
    ir_attrs_set_int(&x.a, &x.m->attrs, "relora.warm_start", 3);
    ir_attrs_set_int(&x.a, &x.m->attrs, "relora.reset_every", 2);
    ir_attrs_set_int(&x.a, &x.m->attrs, "relora.restart_warmup", 1);
    ir_attrs_set_float(&x.a, &x.m->attrs, "relora.prune", 0.25);
    ir_attrs_set_float(&x.a, &x.m->attrs, "relora.lr", 0.02);
    ir_attrs_set_float(&x.a, &x.m->attrs, "relora.warm_start_percent", 15.0);
    int64_t bt[2] = {2, 4}, d8[1] = {8}, dw[2] = {4, 2}, da[2] = {1, 2}, db[2] = {4, 1};
    int btok = global_add(&x, "tokens", IR_I32, 2, bt, IR_CLASS_DATA, 0);
    int btgt = global_add(&x, "targets", IR_I32, 2, bt, IR_CLASS_DATA, 0);
    int bstep = global_add(&x, "step", IR_I32, 0, NULL, IR_CLASS_DATA, 0);
    int blr = global_add(&x, "lr", IR_F32, 0, NULL, IR_CLASS_DATA, 0);
    int bt1 = global_add(&x, "adam_t", IR_I32, 0, NULL, IR_CLASS_DATA, 0);
    int bfrac = global_add(&x, "prune_fraction", IR_F32, 0, NULL, IR_CLASS_DATA, 0);
    int calls = global_add(&x, "calls", IR_F32, 1, d8, IR_CLASS_OPTIM, 0);
    /* an adapted W whose A has a moment the reset prunes: a quarter of 8 entries */
    global_add(&x, "w", IR_F32, 2, dw, IR_CLASS_FROZEN, IR_G_EXPORT);
    global_add(&x, "w.a", IR_F32, 2, da, IR_CLASS_PARAM, IR_G_ADAPTER | IR_G_TRAINABLE);
    global_add(&x, "w.b", IR_F32, 2, db, IR_CLASS_PARAM, IR_G_ADAPTER | IR_G_TRAINABLE);
    int bm = global_add(&x, "w.a.adam_m", IR_F32, 1, d8, IR_CLASS_OPTIM, IR_G_MOMENT);
    IrGlobal *w = ir_global_find(x.m, "w");
    ir_attrs_set_str(&x.a, &w->attrs, "lora_a", "w.a");
    ir_attrs_set_str(&x.a, &w->attrs, "lora_b", "w.b");
    ir_attrs_set_float(&x.a, &w->attrs, "lora_scale", 1.0);
    ir_attrs_set_str(&x.a, &ir_global_find(x.m, "w.a.adam_m")->attrs, "moment_of", "w.a");
    int bret = buf_add(&x, "v9", IR_F32, 1, IR_CLASS_SCRATCH);
    const char *names[8] = {"train_full", "norm_full", "update_full", "train_lora",
                            "norm_lora",  "update_lora", "switch", "relora_reset"};
    KFunc *fn[8];
    for (int i = 0; i < 8; i++) {
        fn[i] = func_add(&x, names[i]);
        bool ret = i == 0 || i == 1 || i == 3 || i == 4;
        counting_kernel(&x, fn[i], calls, i, btok, btgt, ret ? bret : -1, i == 1 || i == 4);
    }
    Kernel *k = kernel_add(&x, fn[7], K_CALL, "k1_prune");
    k->call = KC_PRUNE_MAGNITUDE;
    k->call_bufs[0] = bm;
    k->call_bufs[1] = bstep;
    k->call_bufs[2] = bfrac;
    k->n_call_bufs = 3;

    Run r;
    run_start(&x, &r, 2, 1);
    const RtModel *md = r.model;
    ck_assert_int_eq(md->schedule.kind, RT_SCHED_RELORA);
    ck_assert_int_eq(md->schedule.steps, 20);
    ck_assert(md->schedule.warm_start_pct == 15.0 && md->schedule.reset_every_pct == -1);
    ck_assert(md->schedule.prune == 0.25 && md->schedule.relora_lr == 0.02 && md->schedule.lr == 0.01);
    for (int i = 0; i < 8; i++)
        ck_assert_msg((uintptr_t)md->fn[RT_FN_TRAIN_FULL + i] ==
                          cg_jit_lookup(r.jit, arena_sprintf(&x.a, "relorac_fn_%s", names[i])),
                      "fn %s", names[i]);
    ck_assert(md->fn[RT_FN_EVAL] == NULL);
    ck_assert_int_eq(md->io[RT_IO_LR], 3);
    ck_assert_int_eq(md->io[RT_IO_SAMPLE_TOKENS], -1);
    ck_assert_uint_eq(md->tensors[md->io[RT_IO_STEP]].flags, RT_T_IO);
    ck_assert_uint_eq(md->tensors[10].flags, RT_T_MOMENT | RT_T_ADAPTER_A);
    float *cv = bufp(&x, &r, calls);
    for (int64_t step = 0; step < 10; step++) {
        int32_t xs[8], ys[8];
        for (int i = 0; i < 8; i++) {
            xs[i] = (int32_t)(step * 10 + i);
            ys[i] = (int32_t)(100 + i);
        }
        float before[8];
        memcpy(before, cv, sizeof before);
        float *mom = bufp(&x, &r, bm);
        for (int i = 0; i < 8; i++)
            mom[i] = (float)(i + 1);
        RtStepStats st;
        ck_assert_int_eq(rt_step(r.ctx, &md->schedule, xs, ys, step, &st), RT_STEP_OK);
        RtStepPlan plan = rt_schedule_plan(&md->schedule, step);
        ck_assert_int_eq(*(int32_t *)bufp(&x, &r, bstep), (int)step);
        ck_assert(*(float *)bufp(&x, &r, blr) == (float)plan.lr && st.lr == (float)plan.lr);
        ck_assert_int_eq(*(int32_t *)bufp(&x, &r, bt1), plan.adam_t);
        ck_assert(st.loss == (float)(step * 10 + 101));
        ck_assert(st.grad_norm == 0.5f);
        bool warm = step < 3, sw = step == 3, reset = step - 3 >= 2 && (step - 3) % 2 == 0;
        for (int i = 0; i < 3; i++) {
            ck_assert_msg(cv[i] - before[i] == (warm ? 1 : 0), "step %lld %s", (long long)step, names[i]);
            ck_assert_msg(cv[3 + i] - before[3 + i] == (warm ? 0 : 1), "step %lld %s", (long long)step, names[3 + i]);
        }
        ck_assert_msg(cv[6] - before[6] == (sw ? 1 : 0), "step %lld switch", (long long)step);
        ck_assert_msg(cv[7] - before[7] == (reset ? 1 : 0), "step %lld reset", (long long)step);
        ck_assert_uint_eq(st.events, (sw ? RT_EV_WARM_SWITCH : 0u) | (reset ? RT_EV_RESET : 0u));
        ck_assert(st.pruned_fraction == (reset ? 0.25f : 0.0f));
    }
    /* resets after steps 5, 7, 9 */
    ck_assert(cv[7] == 3.0f);
    run_stop(&r);
    fx_fini(&x);
}
END_TEST

START_TEST(codegen_tensor_table_describes_globals)
{
    Fx x;
    fx_init(&x);
    int64_t dw[2] = {8, 6}, da[2] = {2, 6}, db[2] = {8, 2};
    global_add(&x, "w", IR_F32, 2, dw, IR_CLASS_FROZEN, IR_G_EXPORT | IR_G_TRAINABLE);
    global_add(&x, "w.a", IR_F32, 2, da, IR_CLASS_PARAM, IR_G_ADAPTER | IR_G_TRAINABLE);
    global_add(&x, "w.b", IR_BF16, 2, db, IR_CLASS_PARAM, IR_G_ADAPTER | IR_G_TRAINABLE);
    global_add(&x, "w.a.m", IR_F32, 2, da, IR_CLASS_OPTIM, IR_G_MOMENT);
    global_add(&x, "counter", IR_I32, 0, NULL, IR_CLASS_STATE, 0);
    int64_t dq[2] = {6, 4}, dk[2] = {2, 4};
    global_add(&x, "k", IR_F32, 2, dk, IR_CLASS_PARAM, IR_G_EXPORT | IR_G_TRAINABLE);
    global_add(&x, "q", IR_F32, 2, dq, IR_CLASS_PARAM, IR_G_EXPORT | IR_G_TRAINABLE);
    IrGlobal *w = x.m->globals[0], *k = x.m->globals[5], *q = x.m->globals[6];
    ir_attrs_set_str(&x.a, &w->attrs, "hf_name", "model.w");
    /* qk = [q^T, k^T] along axis 1, q first although k comes first among the globals */
    for (int i = 0; i < 2; i++) {
        IrGlobal *g = i ? k : q;
        ir_attrs_set_str(&x.a, &g->attrs, "hf_name", "qk");
        ir_attrs_set_int(&x.a, &g->attrs, "hf_part", i);
        ir_attrs_set_int(&x.a, &g->attrs, "hf_axis", 1);
        ir_attrs_set_int(&x.a, &g->attrs, "hf_transpose", 1);
    }
    ir_attrs_set_str(&x.a, &x.m->attrs, "hf.config_json", "{}");
    ir_attrs_set_str(&x.a, &x.m->attrs, "hf.prefix", "model.");
    ir_attrs_set_str(&x.a, &x.m->attrs, "hf.config_check", "vocab_size\tvocab\t16\nrope_theta|rope_parameters.rope_theta\trope theta\t500.0\t10000.0");
    ir_attrs_set_str(&x.a, &w->attrs, "lora_a", "w.a");
    ir_attrs_set_str(&x.a, &w->attrs, "lora_b", "w.b");
    ir_attrs_set_float(&x.a, &w->attrs, "lora_scale", 0.25);
    Run r;
    run_start(&x, &r, 1, 1);
    const RtModel *m = r.model;
    ck_assert_int_eq(m->abi_version, RT_ABI_VERSION);
    ck_assert_str_eq(m->name, "cgtest");
    ck_assert_int_eq(m->vocab, 16);
    ck_assert_int_eq(m->batch, 2);
    ck_assert_int_eq(m->seq_len, 4);
    ck_assert_int_eq(m->schedule.steps, 77);
    ck_assert_int_eq(m->schedule.kind, RT_SCHED_COSINE);
    ck_assert_str_eq(m->model_hash, "0123456789abcdef");
    ck_assert_str_eq(m->defaults.checkpoint_dir, "checkpoints");
    ck_assert_uint_eq(m->defaults.seed, 5);
    ck_assert_int_eq(m->n_tensors, 7);
    const RtTensorInfo *t = m->tensors;
    ck_assert_str_eq(t[0].name, "w");
    ck_assert_int_eq(m->n_exports, 2);
    ck_assert_str_eq(m->exports[0].name, "model.w");
    ck_assert_int_eq(m->exports[0].n_parts, 1);
    ck_assert_int_eq(m->exports[0].parts[0].tensor, 0);
    ck_assert_int_eq(m->exports[0].parts[0].transpose, 0);
    ck_assert_str_eq(m->exports[1].name, "qk");
    ck_assert_int_eq(m->exports[1].axis, 1);
    ck_assert_int_eq(m->exports[1].n_parts, 2);
    ck_assert_int_eq(m->exports[1].parts[0].tensor, 6); /* q */
    ck_assert_int_eq(m->exports[1].parts[1].tensor, 5); /* k */
    ck_assert_int_eq(m->exports[1].parts[1].transpose, 1);
    ck_assert_str_eq(m->hf_prefix, "model.");
    ck_assert_ptr_null(m->export_note);
    ck_assert_int_eq(m->n_hf_checks, 2);
    ck_assert_str_eq(m->hf_checks[0].key, "vocab_size");
    ck_assert_str_eq(m->hf_checks[0].what, "vocab");
    ck_assert_str_eq(m->hf_checks[0].value, "16");
    ck_assert_ptr_null(m->hf_checks[0].absent);
    ck_assert_str_eq(m->hf_checks[1].key, "rope_theta|rope_parameters.rope_theta");
    ck_assert_str_eq(m->hf_checks[1].absent, "10000.0");
    RtError e = {0};
    ck_assert_msg(rt_model_validate(m, &e), "%s", e.msg);
    ck_assert_int_eq(t[0].pool, RT_POOL_FROZEN);
    ck_assert_uint_eq(t[0].flags, RT_T_PARAM | RT_T_TRAINABLE);
    ck_assert_int_eq(t[0].lora_a, 1);
    ck_assert_int_eq(t[0].lora_b, 2);
    ck_assert(t[0].lora_scale == 0.25f);
    ck_assert_uint_eq(t[1].flags, RT_T_ADAPTER_A | RT_T_TRAINABLE);
    ck_assert_uint_eq(t[2].flags, RT_T_ADAPTER_B | RT_T_TRAINABLE);
    ck_assert_int_eq(t[2].dtype, RT_BF16);
    ck_assert_int_eq(t[2].lora_a, -1);
    ck_assert_uint_eq(t[3].flags, RT_T_MOMENT);
    ck_assert_int_eq(t[3].pool, RT_POOL_OPTIM);
    ck_assert_uint_eq(t[4].flags, RT_T_STATE);
    ck_assert_int_eq(t[4].rank, 0);
    ck_assert_int_eq(t[4].dtype, RT_I32);
    ck_assert_int_eq(t[2].shape[0], 8);
    ck_assert_int_eq(t[2].shape[1], 2);
    /* the table's addresses are the kernels' addresses */
    for (int i = 0; i < m->n_tensors; i++)
        ck_assert_ptr_eq(rt_tensor_data(r.ctx, i), bufp(&x, &r, x.p->global_buf[i]));
    run_stop(&r);
    fx_fini(&x);
}
END_TEST

/* ---- the whole pipeline: compiled train_step against the graph interpreter ---- */

/* examples/tiny.relora, shrunk, with pruning off (magnitude pruning of 99% of the moments
 * makes f32 and f64 pick different entries at the boundary, and the runs then diverge
 * by design). The runtime's step policy against the reference host's (ir/schedule.c):
 * 12 steps cross the switch (before step 4) and two resets (after 7 and 10). */
START_TEST(codegen_train_step_matches_graph_interpreter)
{
    const char *root = getenv("RELORAC_SOURCE_ROOT");
    if (!root)
        return; /* run outside meson: no sources */
    Arena a;
    Diags d;
    arena_init(&a);
    diag_init(&d, &a);
    static const char *const defs[] = {
        "train.steps=40",          "train.schedule.warmup=2", "train.schedule.reset_every=3",
        "train.schedule.restart_warmup=1", "train.schedule.prune=0", "train.batch=2",
        "train.seq_len=16",        "model.layers=1",
    };
    FeOptions fo = {.defines = defs, .n_defines = (int)(sizeof defs / sizeof defs[0])};
    const Spec *spec = fe_load_spec(&a, &d, arena_sprintf(&a, "%s/examples/tiny.relora", root), &fo);
    ck_assert_ptr_nonnull(spec);
    IrModule *m = fe_lower(&a, &d, spec);
    ck_assert_ptr_nonnull(m);
    PassCtx pc = {&a, &d, m, PROP_LOWERED};
    PassOptions po = {0};
    ck_assert(pass_pipeline_run(&pc, &po));
    ck_assert_int_eq(ir_attrs_int(&m->attrs, "relora.warm_start", 0), 4);
    KProgram *p = k_program_build(&a, &d, m);
    ck_assert_ptr_nonnull(p);
    CgJit *jit = cg_jit_create(p, NULL, rt_syms, (int)(sizeof rt_syms / sizeof rt_syms[0]), &d);
    if (!jit)
        diag_print(&d, stderr, false);
    ck_assert_ptr_nonnull(jit);
    const RtModel *md = (const RtModel *)cg_jit_lookup(jit, "relorac_model");
    RtCtx *ctx;
    RtError e = {0};
    if (!rt_ctx_create(&ctx, md, 2, 42, &e))
        ck_abort_msg("rt_ctx_create: %s", e.msg);
    ck_assert_msg(rt_model_validate_program(md, &e), "%s", e.msg);
    rt_init(ctx);
    IrInterp *it = ir_interp_create(m, 42);
    ir_interp_run(it, ir_func_find(m, "init"));
    IrSchedule sched;
    ck_assert(ir_schedule_from_module(m, &sched, &d));
    int bt = md->batch * md->seq_len;
    int32_t x[32], y[32];
    ck_assert_int_eq(bt, 32);
    for (int s = 0; s < 12; s++) {
        for (int i = 0; i < bt; i++)
            x[i] = (int32_t)(rt_rng_u64(1, (uint64_t)s, (uint64_t)i) % 256);
        for (int i = 0; i < bt; i++)
            y[i] = i % md->seq_len == md->seq_len - 1 ? x[i] : x[i + 1];
        RtStepStats st;
        ck_assert_int_eq(rt_step(ctx, &md->schedule, x, y, s, &st), RT_STEP_OK);
        IrStepResult want;
        ck_assert(ir_interp_train_step(it, m, &sched, x, y, s, &want));
        unsigned ev = (want.switched ? RT_EV_WARM_SWITCH : 0u) | (want.reset ? RT_EV_RESET : 0u);
        ck_assert_msg(fabs(st.loss - want.loss) <= 1e-5, "step %d: loss %.7f, interpreter %.7f", s, st.loss, want.loss);
        ck_assert_msg(fabs(st.grad_norm - want.grad_norm) <= 1e-4 * want.grad_norm, "step %d: grad norm %.7f, interpreter %.7f",
                      s, st.grad_norm, want.grad_norm);
        ck_assert_msg(fabs(st.lr - want.lr) <= 1e-7 * fabs(want.lr), "step %d: lr", s);
        ck_assert_uint_eq(st.events, ev);
        ck_assert_int_eq(want.switched, s == 4);
        ck_assert_int_eq(want.reset, s == 7 || s == 10);
    }
    ir_interp_destroy(it);
    rt_ctx_destroy(ctx);
    cg_jit_destroy(jit);
    arena_fini(&a);
}
END_TEST

/* Gradient accumulation, compiled (f32): batch 4 as 1, 2 and 4 micro-steps of the same
 * model, LoRA dropout 0.1, 10 steps crossing the switch (before step 3) and two merges
 * (after 6 and 9), on the same batches. The losses (max over steps of |a - b| / |a|) and
 * the parameters (per tensor max|a - b| / max|a|) agree within 1e-6: the masks are the
 * same for every cut, and only the order of the gradient sums differs. */
#define MICRO_SPEC                                                                                                  \
    "model m {\n"                                                                                                   \
    "  vocab = 256; dim = 32; layers = 1; heads = 4; kv_heads = 2; context = 16\n"                                 \
    "  block(x) {\n"                                                                                                \
    "    h = x + attention(rmsnorm(x), rope = 10000)\n"                                                            \
    "    return h + swiglu(rmsnorm(h), hidden = 48)\n"                                                             \
    "  }\n"                                                                                                         \
    "}\n"                                                                                                           \
    "adapter lora { rank = 4; alpha = 8; dropout = 0.1; targets = [\"attention.*\", \"swiglu.*\"] }\n"             \
    "train {\n"                                                                                                     \
    "  batch = 4; micro_batch = %d; recompute = %s; seq_len = 16; steps = 100; seed = 5\n"                         \
    "  optimizer = adamw(lr = 3e-3, weight_decay = 0.01)\n"                                                         \
    "  schedule = relora(warmup = 2, warm_start = 3, reset_every = 3, restart_warmup = 1, prune = 0.5,\n"          \
    "                    reset = random)\n"                                                                         \
    "}\n"

/* Compiles each spec (the same model and batch), runs `steps` steps of the runtime's step
 * policy on the same batches, and measures each variant against the first: worst_loss[v]
 * the largest |a - b| / |a| over the steps' losses, worst_param[v] the largest
 * max|a - b| / max|a| over the parameter tensors. *events gets the first's events. */
static void run_variants(const char *const *specs, int n, int steps, double *worst_loss, double *worst_param,
                         unsigned *events)
{
    TuModel t[4];
    CgJit *jit[4];
    RtCtx *ctx[4];
    const RtModel *md[4];
    ck_assert_int_le(n, 4);
    for (int v = 0; v < n; v++) {
        tu_build(&t[v], specs[v], NULL, 0);
        KProgram *p = k_program_build(&t[v].a, &t[v].d, t[v].m);
        ck_assert_ptr_nonnull(p);
        jit[v] = cg_jit_create(p, NULL, rt_syms, (int)(sizeof rt_syms / sizeof rt_syms[0]), &t[v].d);
        ck_assert_ptr_nonnull(jit[v]);
        md[v] = (const RtModel *)cg_jit_lookup(jit[v], "relorac_model");
        RtError e = {0};
        ck_assert_msg(rt_ctx_create(&ctx[v], md[v], 2, 11, &e), "%s", e.msg);
        ck_assert_msg(rt_model_validate_program(md[v], &e), "%s", e.msg);
        ck_assert_int_eq(md[v]->batch, md[0]->batch);
        rt_init(ctx[v]);
        worst_loss[v] = worst_param[v] = 0;
    }
    int64_t bt = (int64_t)md[0]->batch * md[0]->seq_len;
    int32_t *x = malloc(sizeof *x * (size_t)bt), *y = malloc(sizeof *y * (size_t)bt);
    *events = 0;
    for (int64_t s = 0; s < steps; s++) {
        for (int64_t i = 0; i < bt; i++) {
            x[i] = (int32_t)(rt_rng_u64(3, (uint64_t)s, (uint64_t)i) % (uint64_t)md[0]->vocab);
            y[i] = (int32_t)(rt_rng_u64(4, (uint64_t)s, (uint64_t)i) % (uint64_t)md[0]->vocab);
        }
        float loss[4];
        for (int v = 0; v < n; v++) {
            RtStepStats st;
            ck_assert_int_eq(rt_step(ctx[v], &md[v]->schedule, x, y, s, &st), RT_STEP_OK);
            loss[v] = st.loss;
            if (v == 0)
                *events |= st.events;
        }
        for (int v = 1; v < n; v++)
            worst_loss[v] = fmax(worst_loss[v], fabs((double)loss[v] - loss[0]) / fabs((double)loss[0]));
    }
    free(x);
    free(y);
    for (int i = 0; i < md[0]->n_tensors; i++) {
        const RtTensorInfo *ti = &md[0]->tensors[i];
        if ((ti->pool != RT_POOL_PARAMS && ti->pool != RT_POOL_FROZEN) || ti->dtype != RT_F32)
            continue;
        const float *ref = rt_tensor_data(ctx[0], i);
        int64_t m = rt_tensor_numel(ti);
        double scale = 0;
        for (int64_t j = 0; j < m; j++)
            scale = fmax(scale, fabs(ref[j]));
        for (int v = 1; v < n; v++) {
            ck_assert_str_eq(md[v]->tensors[i].name, ti->name);
            const float *got = rt_tensor_data(ctx[v], i);
            for (int64_t j = 0; j < m; j++)
                worst_param[v] = fmax(worst_param[v], fabs((double)got[j] - ref[j]) / fmax(scale, 1e-30));
        }
    }
    for (int v = 0; v < n; v++) {
        rt_ctx_destroy(ctx[v]);
        cg_jit_destroy(jit[v]);
        tu_fini(&t[v]);
    }
}

START_TEST(codegen_micro_batches_give_the_batch_result)
{
    const int micro[3] = {4, 2, 1};
    char text[3][2048];
    const char *specs[3];
    for (int v = 0; v < 3; v++) {
        snprintf(text[v], sizeof text[v], MICRO_SPEC, micro[v], "none");
        specs[v] = text[v];
    }
    double worst_loss[3], worst_param[3];
    unsigned events;
    run_variants(specs, 3, 10, worst_loss, worst_param, &events);
    ck_assert_uint_eq(events, RT_EV_WARM_SWITCH | RT_EV_RESET);
    for (int v = 1; v < 3; v++) {
        printf("compiled: micro-batches of %d (x%d) against the batch of 4, 10 steps, dropout 0.1: loss %.3g, "
               "parameters %.3g\n",
               micro[v], 4 / micro[v], worst_loss[v], worst_param[v]);
        ck_assert_double_le(worst_loss[v], 1e-6);
        ck_assert_double_le(worst_param[v], 1e-6);
    }
}
END_TEST

/* Recomputation, compiled (f32): selective and full against none on MICRO_SPEC (one
 * micro-step, dropout 0.1), 10 steps across the switch and two merges. They run the same
 * kernels on the same values, grouped and ordered differently: equal within 1e-6. */
START_TEST(codegen_recompute_levels_train_alike)
{
    static const char *const levels[3] = {"none", "selective", "full"};
    char text[3][2048];
    const char *specs[3];
    for (int v = 0; v < 3; v++) {
        snprintf(text[v], sizeof text[v], MICRO_SPEC, 4, levels[v]);
        specs[v] = text[v];
    }
    double worst_loss[3], worst_param[3];
    unsigned events;
    run_variants(specs, 3, 10, worst_loss, worst_param, &events);
    ck_assert_uint_eq(events, RT_EV_WARM_SWITCH | RT_EV_RESET);
    for (int v = 1; v < 3; v++) {
        printf("compiled: recompute %s against none, 10 steps, dropout 0.1: loss %.3g, parameters %.3g\n", levels[v],
               worst_loss[v], worst_param[v]);
        ck_assert_double_le(worst_loss[v], 1e-6);
        ck_assert_double_le(worst_param[v], 1e-6);
    }
}
END_TEST

/* ---- a linked executable ---- */

START_TEST(codegen_builds_executable_without_libllvm)
{
    Fx x;
    fx_init(&x);
    int bx, bw, by;
    build_elementwise(&x, &bx, &bw, &by);
    char dir[] = "/tmp/relorac-cg-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char exe[256], cmd[600];
    snprintf(exe, sizeof exe, "%s/model", dir);
    if (!cg_build_executable(x.p, NULL, exe, &x.d))
        ck_abort_msg("cg_build_executable failed");
    /* it runs, and refuses a program without the functions a trainer needs */
    snprintf(cmd, sizeof cmd, "'%s' --help > %s/help.txt 2>&1; test $? -eq 2 && grep -q 'model has no init function' %s/help.txt",
             exe, dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "ldd '%s' | grep -qi llvm", exe);
    ck_assert_int_ne(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    fx_fini(&x);
}
END_TEST

START_TEST(codegen_reports_bad_gemm_dtype)
{
    Fx x;
    fx_init(&x);
    int ba = buf_add(&x, "a", IR_I32, 4, IR_CLASS_SCRATCH);
    KFunc *f = func_add(&x, "mm");
    Kernel *k = kernel_add(&x, f, K_GEMM, "k0_matmul");
    k->gemm = (KGemm){.m = 2, .n = 2, .k = 1, .batch = 1, .a = ba, .b = ba, .c = ba, .lda = 1, .ldb = 2,
                      .ldc = 2, .alpha = 1};
    FILE *null = fopen("/dev/null", "w");
    ck_assert(!cg_emit_llvm_ir(x.p, NULL, null, &x.d));
    fclose(null);
    ck_assert_int_gt(x.d.n_errors, 0);
    x.d.n_errors = 0;
    fx_fini(&x);
}
END_TEST

Suite *codegen_suite(void)
{
    Suite *s = suite_create("codegen");
    TCase *tc = tcase_create("llvm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, codegen_elementwise_kernel_matches_reference);
    tcase_add_test(tc, codegen_module_verifies_and_vectorizes_elementwise_loop);
    tcase_add_test(tc, codegen_rmsnorm_two_phase_kernel_matches_reference);
    tcase_add_test(tc, codegen_row_reductions_and_post_phase_match_reference);
    tcase_add_test(tc, codegen_results_do_not_depend_on_thread_count);
    tcase_add_test(tc, codegen_gemm_calls_runtime_sgemm);
    tcase_add_test(tc, codegen_lora_gemm_pairs_become_one_call);
    tcase_add_test(tc, codegen_rng_kernel_is_bit_exact_with_runtime);
    tcase_add_test(tc, codegen_prune_magnitude_zeroes_exact_count_ties_by_index);
    tcase_add_test(tc, codegen_prune_random_matches_interpreter);
    tcase_add_test(tc, codegen_call_kernels_match_kernel_interpreter);
    tcase_add_test(tc, codegen_kernelized_graph_matches_kernel_interpreter);
    tcase_add_test(tc, codegen_model_table_drives_the_step_policy);
    tcase_add_test(tc, codegen_tensor_table_describes_globals);
    tcase_add_test(tc, codegen_builds_executable_without_libllvm);
    tcase_add_test(tc, codegen_reports_bad_gemm_dtype);
    suite_add_tcase(s, tc);
    TCase *e2e = tcase_create("pipeline");
    tcase_set_timeout(e2e, 1800);
    tcase_add_test(e2e, codegen_train_step_matches_graph_interpreter);
    tcase_add_test(e2e, codegen_micro_batches_give_the_batch_result);
    tcase_add_test(e2e, codegen_recompute_levels_train_alike);
    suite_add_tcase(s, e2e);
    return s;
}
