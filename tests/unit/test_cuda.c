/* The CUDA C emitter without a GPU: the generated source of every example (at shrunken
 * shapes: one layer, dim 64, 4 heads, vocab 512, batch 2 x 16 tokens; the same kernel
 * kinds) is compiled for the host with tests/unit/cuda_emu.h (threads as fibers, shared
 * memory, barriers, warp shuffles) and run step by step (codegen/cuda.h) against the
 * kernel interpreter: every function in the order a trainer runs them (init, the
 * full-rank step, the switch, the ReLoRA step, the reset, eval, logits), kernel by
 * kernel, each fed the interpreter's buffers and checked on every buffer it writes.
 * GEMM steps are a plain f64 GEMM here (cuBLAS on the device): what they check is the
 * steps' shapes, offsets and strides, the head loss's among them.
 *
 * Tolerance: per written buffer, max |cuda - reference| <= 2e-4 max |reference| for floats (f32 against the interpreter's f64: sums of up to 33k terms and exp/log of
 * f32 inputs), exact for i32. Also: the program's source is deterministic, identical
 * kernels are emitted once, and hand-built kernels cover what the examples may not
 * (a value read after its phase, bf16 loads and stores, rows that must run in order). */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cuda.h"
#include "cuda_emu.h"
#include "fe.h"
#include "lower.h"
#include "pm.h"
#include "rt.h"
#include "rt_ops.h"
#include "tutil.h"

/* ---- building ---- */

typedef struct Prog {
    Arena a;
    Diags d;
    IrModule *m;
    KProgram *p;
    CuProgram *cp;
} Prog;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return s;
}

static void prog_fail(Prog *g, bool ok)
{
    if (!ok)
        diag_print(&g->d, stderr, true);
    ck_assert(ok);
}

/* spec (a file) with -D overrides -> passes -> kernels -> CUDA program */
static void prog_build(Prog *g, const char *path, const char *const *defines, int n_defines)
{
    arena_init(&g->a);
    diag_init(&g->d, &g->a);
    size_t len;
    char *text = slurp(path, &len);
    FeOptions opt = {.defines = defines, .n_defines = n_defines};
    const Spec *spec = fe_load_spec_buffer(&g->a, &g->d, path, text, len, &opt);
    free(text);
    prog_fail(g, spec != NULL);
    g->m = fe_lower(&g->a, &g->d, spec);
    prog_fail(g, g->m != NULL);
    PassCtx pc = {&g->a, &g->d, g->m, PROP_LOWERED};
    PassOptions po = {0};
    prog_fail(g, pass_pipeline_run(&pc, &po));
    g->p = k_program_build(&g->a, &g->d, g->m);
    prog_fail(g, g->p != NULL);
    g->cp = cu_program_build(g->p, &g->d);
    prog_fail(g, g->cp != NULL);
}

static void prog_fini(Prog *g) { arena_fini(&g->a); }

/* ---- the emulated device ---- */

typedef struct Emu {
    void *so;
    const EmuKernel *kernels;
    int (*launch)(const EmuKernel *, unsigned, unsigned, size_t, void **, int);
    char dir[64];
    const EmuKernel **by_index; /* CuProgram kernel index -> its entry */
} Emu;

/* Writes the source with its emulation entry points, compiles it with the host's cc and
 * cuda_emu.c into a shared object and loads it. */
static void emu_load(Emu *e, const CuProgram *cp)
{
    const char *root = getenv("RELORAC_SOURCE_ROOT");
    ck_assert_msg(root != NULL, "RELORAC_SOURCE_ROOT must name the source tree (meson sets it)");
    strcpy(e->dir, "/tmp/relorac-cuda-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(e->dir));
    char src[128], so[128], cmd[1024];
    snprintf(src, sizeof src, "%s/gen.c", e->dir);
    snprintf(so, sizeof so, "%s/gen.so", e->dir);
    CuText wr;
    cu_text_init(&wr, cp->p->arena);
    cu_emulation_wrappers(cp, &wr);
    FILE *f = fopen(src, "w");
    ck_assert_ptr_nonnull(f);
    fwrite(cp->src.s, 1, cp->src.len, f);
    fwrite(wr.s, 1, wr.len, f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -D_GNU_SOURCE -DRELORAC_EMULATE -O1 -fPIC -shared -w -include %s/tests/unit/cuda_emu.h "
             "-I%s/tests/unit %s %s/tests/unit/cuda_emu.c -o %s -lm",
             root, root, src, root, so);
    int st = system(cmd);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "compiling the generated CUDA C for the host failed: %s", cmd);
    e->so = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(e->so != NULL, "dlopen: %s", dlerror());
    e->kernels = dlsym(e->so, "relorac_emu_kernels");
    void *l = dlsym(e->so, "emu_launch");
    ck_assert(e->kernels && l);
    memcpy(&e->launch, &l, sizeof l);
    e->by_index = calloc((size_t)cp->n_kernels + 1, sizeof *e->by_index);
    for (int i = 0; i < cp->n_kernels; i++) {
        for (const EmuKernel *k = e->kernels; k->name && !e->by_index[i]; k++)
            if (strcmp(k->name, cp->kernels[i].name) == 0)
                e->by_index[i] = k;
        ck_assert_msg(e->by_index[i] != NULL, "kernel %s has no emulation entry", cp->kernels[i].name);
    }
}

static void emu_unload(Emu *e)
{
    dlclose(e->so);
    free(e->by_index);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Pools and workspace as the runtime's CUDA layer lays them out. */
typedef struct Dev {
    const CuProgram *cp;
    char *pool[RT_POOL_COUNT];
    char *ws;
    uint64_t seed;
} Dev;

static void dev_init(Dev *v, const CuProgram *cp, uint64_t seed)
{
    v->cp = cp;
    v->seed = seed;
    for (int p = 0; p < RT_POOL_COUNT; p++)
        v->pool[p] = calloc((size_t)cp->layout.pool_bytes[p] + 64, 1);
    v->ws = calloc((size_t)cp->workspace_bytes + 16, 1);
}

static void dev_fini(Dev *v)
{
    for (int p = 0; p < RT_POOL_COUNT; p++)
        free(v->pool[p]);
    free(v->ws);
}

static char *buf_addr(const Dev *v, int buf)
{
    const CgBufLoc *l = &v->cp->layout.loc[buf];
    return v->pool[l->pool] + l->offset;
}

static double dev_get(const Dev *v, int buf, int64_t i)
{
    const char *p = buf_addr(v, buf);
    switch (v->cp->p->bufs[buf].dtype) {
    case IR_F32: return ((const float *)p)[i];
    case IR_BF16: return rt_bf16_to_f32(((const uint16_t *)p)[i]);
    case IR_I32: return ((const int32_t *)p)[i];
    }
    return 0;
}

static void dev_set(Dev *v, int buf, int64_t i, double x)
{
    char *p = buf_addr(v, buf);
    switch (v->cp->p->bufs[buf].dtype) {
    case IR_F32: ((float *)p)[i] = (float)x; break;
    case IR_BF16: ((uint16_t *)p)[i] = rt_f32_to_bf16((float)x); break;
    case IR_I32: ((int32_t *)p)[i] = (int32_t)x; break;
    }
}

/* C = alpha op(A) op(B) + beta C in f64, operands of their buffers' dtypes (cuBLAS's place). */
static void dev_gemm(Dev *v, const KGemm *g)
{
    for (int64_t bt = 0; bt < g->batch; bt++)
        for (int64_t i = 0; i < g->m; i++)
            for (int64_t j = 0; j < g->n; j++) {
                double s = 0;
                for (int64_t q = 0; q < g->k; q++) {
                    double x = dev_get(v, g->a, g->off_a + bt * g->stride_a + (g->trans_a ? q * g->lda + i : i * g->lda + q));
                    double y = dev_get(v, g->b, g->off_b + bt * g->stride_b + (g->trans_b ? j * g->ldb + q : q * g->ldb + j));
                    s += x * y;
                }
                int64_t c = g->off_c + bt * g->stride_c + i * g->ldc + j;
                dev_set(v, g->c, c, g->alpha * s + (g->beta != 0 ? g->beta * dev_get(v, g->c, c) : 0));
            }
}

static void dev_step(Dev *v, Emu *e, const CuStep *s)
{
    const CuProgram *cp = v->cp;
    switch (s->kind) {
    case CU_STEP_GEMM: dev_gemm(v, &s->gemm); return;
    case CU_STEP_PRUNE: {
        const Kernel *k = s->k;
        float *x = (float *)buf_addr(v, k->call_bufs[0]);
        int64_t n = cp->p->bufs[k->call_bufs[0]].numel;
        int32_t step = *(const int32_t *)buf_addr(v, k->call_bufs[1]);
        double frac = *(const float *)buf_addr(v, k->call_bufs[2]);
        if (k->call == KC_PRUNE_MAGNITUDE)
            rt_prune_magnitude(x, n, frac);
        else
            rt_prune_random(x, n, frac, v->seed, ir_attrs_int(&k->call_attrs, "stream", 0), step);
        return;
    }
    case CU_STEP_LAUNCH: break;
    }
    union {
        void *p;
        long long ll;
        int i;
        float f;
        unsigned long long u;
    } val[32];
    void *params[32];
    ck_assert_int_le(s->n_args, 32);
    for (int i = 0; i < s->n_args; i++) {
        const CuArg *a = &s->args[i];
        switch (a->kind) {
        case CU_ARG_BUF: val[i].p = buf_addr(v, a->buf) + a->i * ir_dtype_bytes(cp->p->bufs[a->buf].dtype); break;
        case CU_ARG_STEP: val[i].p = cp->step_buf >= 0 ? buf_addr(v, cp->step_buf) : v->ws + 8; break;
        case CU_ARG_SEED: val[i].u = v->seed; break;
        case CU_ARG_I32: val[i].i = (int)a->i; break;
        case CU_ARG_I64: val[i].ll = a->i; break;
        case CU_ARG_F32: val[i].f = (float)a->f; break;
        case CU_ARG_WORKSPACE: val[i].p = v->ws + a->i; break;
        }
        params[i] = &val[i];
    }
    const CuKernel *ck = &cp->kernels[s->kernel];
    int rc = e->launch(e->by_index[s->kernel], (unsigned)s->grid, (unsigned)s->block, (size_t)s->smem, params, ck->sync);
    ck_assert_msg(rc == 0, "kernel %s failed in emulation", ck->name);
}

/* ---- kernel by kernel against the interpreter ---- */

enum { R = 1, W = 2 };

static void touch(unsigned char *use, int buf, int how)
{
    if (buf >= 0)
        use[buf] |= (unsigned char)how;
}

/* The buffers kernel k reads (R) and writes (W). */
static void kernel_use(const Kernel *k, unsigned char *use)
{
    switch (k->kind) {
    case K_LOOP:
        for (int i = 0; i < k->n_code; i++) {
            const KInstr *in = &k->code[i];
            if (in->op == KI_LOAD || in->op == KI_LOAD_I)
                touch(use, in->buf, R);
            else if (in->op == KI_STORE)
                touch(use, in->buf, W);
            else if (in->op == KI_STORE_ADD)
                touch(use, in->buf, R | W);
        }
        break;
    case K_GEMM:
        touch(use, k->gemm.a, R);
        touch(use, k->gemm.b, R);
        touch(use, k->gemm.c, k->gemm.beta != 0 ? R | W : W);
        break;
    case K_CALL:
        touch(use, k->call_bufs[0], R | W);
        touch(use, k->call_bufs[1], R);
        touch(use, k->call_bufs[2], R);
        break;
    case K_ATTENTION: {
        const KAttention *a = &k->attn;
        touch(use, a->q, R);
        touch(use, a->k, R);
        touch(use, a->v, R);
        if (a->backward) {
            touch(use, a->dy, R);
            touch(use, a->y, R);
            touch(use, a->lse, R);
            touch(use, a->dq, W);
            touch(use, a->dk, W);
            touch(use, a->dv, W);
        } else {
            touch(use, a->y, W);
            touch(use, a->lse, W);
        }
        break;
    }
    case K_HEAD_LOSS: {
        const KHeadLoss *h = &k->head;
        touch(use, h->x, R);
        touch(use, h->w, R);
        touch(use, h->targets, R);
        touch(use, h->dloss, R);
        touch(use, h->x16, R);
        touch(use, h->w16, R);
        touch(use, h->loss, W);
        touch(use, h->dx, W);
        touch(use, h->dw, W);
        touch(use, h->work, W);
        break;
    }
    }
}

typedef struct Tally {
    int kernels, launches, kinds[5];
    double worst;
    const char *worst_at;
} Tally;

/* Runs kernel k of f both ways from the interpreter's state and compares what it writes. */
static void check_kernel(Dev *v, Emu *e, KInterp *it, const CuFunc *cf, const Kernel *k, int64_t step, Tally *t)
{
    const KProgram *p = v->cp->p;
    unsigned char *use = calloc((size_t)p->n_bufs, 1);
    kernel_use(k, use);
    /* written-only buffers first: a read buffer sharing their bytes (in place) wins */
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < p->n_bufs; b++) {
            if (!use[b] || (pass == 0) != (use[b] == W))
                continue;
            const double *x = k_interp_buf(it, b);
            for (int64_t i = 0; i < p->bufs[b].numel; i++)
                dev_set(v, b, i, x[i]);
        }
    for (int i = 0; i < cf->n_steps; i++)
        if (cf->steps[i].k == k) {
            dev_step(v, e, &cf->steps[i]);
            t->launches += cf->steps[i].kind == CU_STEP_LAUNCH;
        }
    Kernel *one[1] = {(Kernel *)k};
    KFunc f1 = {.name = cf->f->name, .kernels = one, .n_kernels = 1, .cap_kernels = 1, .ret_buf = -1};
    k_interp_run(it, &f1, step);
    for (int b = 0; b < p->n_bufs; b++) {
        if (!(use[b] & W))
            continue;
        const double *ref = k_interp_buf(it, b);
        double scale = 0, err = 0;
        for (int64_t i = 0; i < p->bufs[b].numel; i++)
            if (isfinite(ref[i]) && fabs(ref[i]) > scale)
                scale = fabs(ref[i]);
        if (scale < 1e-6)
            scale = 1e-6; /* sums that cancel to (nearly) zero, such as a key bias's gradient */
        for (int64_t i = 0; i < p->bufs[b].numel; i++) {
            double got = dev_get(v, b, i), want = ref[i];
            if (!isfinite(want)) {
                ck_assert_msg(isnan(want) ? isnan(got) : got == want, "%s: %s[%lld] is %g, the interpreter's %g",
                              k->name, p->bufs[b].name, (long long)i, got, want);
                continue;
            }
            if (p->bufs[b].dtype == IR_I32)
                ck_assert_msg(got == want, "%s: %s[%lld] is %g, the interpreter's %g", k->name, p->bufs[b].name,
                              (long long)i, got, want);
            double d = fabs(got - want);
            if (!(d <= err))
                err = d;
        }
        double rel = err / scale;
        /* bf16 stores round; a bf16 head loss multiplies bf16 copies the interpreter does not */
        double tol = p->bufs[b].dtype == IR_BF16 || (k->kind == K_HEAD_LOSS && k->head.x16 >= 0) ? 1e-2 : 5e-5;
        ck_assert_msg(rel <= tol, "%s (%s): %s differs from the interpreter by %g (of max %g)", k->name,
                      cf->f->name, p->bufs[b].name, err, scale);
        if (rel > t->worst) {
            t->worst = rel;
            t->worst_at = k->name;
        }
    }
    free(use);
    t->kernels++;
    t->kinds[k->kind]++;
}

static void fill_io(KInterp *it, const KProgram *p, const char *name, double value)
{
    const IrGlobal *g = ir_global_find(p->m, name);
    if (!g || p->global_buf[g->id] < 0)
        return;
    int b = p->global_buf[g->id];
    double *x = k_interp_buf(it, b);
    for (int64_t i = 0; i < p->bufs[b].numel; i++)
        x[i] = value;
}

/* The functions in the order a trainer runs them. */
static void run_program(Prog *g, Tally *t)
{
    const KProgram *p = g->p;
    Emu e;
    emu_load(&e, g->cp);
    Dev v;
    const uint64_t seed = 1234;
    dev_init(&v, g->cp, seed);
    KInterp *it = k_interp_create(p, seed);
    const int64_t step = 3;
    static const char *const order[] = {"init",        "train_full", "norm_full",    "update_full",
                                        "switch",      "train_lora", "norm_lora",    "update_lora",
                                        "relora_reset", "eval",      "logits"};
    for (size_t o = 0; o < sizeof order / sizeof *order; o++) {
        const KFunc *f = k_program_func(p, order[o]);
        if (!f)
            continue;
        /* the inputs the runtime writes before the function */
        const IrGlobal *tok = ir_global_find(p->m, "tokens"), *tg = ir_global_find(p->m, "targets");
        if (tok && tg)
            tu_fill_tokens(p->m, k_interp_buf(it, p->global_buf[tok->id]), k_interp_buf(it, p->global_buf[tg->id]), o);
        const IrGlobal *st = ir_global_find(p->m, "sample_tokens");
        if (st && p->global_buf[st->id] >= 0) {
            double *x = k_interp_buf(it, p->global_buf[st->id]);
            int64_t vocab = ir_attrs_int(&p->m->attrs, "vocab", 2);
            for (int64_t i = 0; i < p->bufs[p->global_buf[st->id]].numel; i++)
                x[i] = (double)(ir_rng_u64(5, 5, (uint64_t)i) % (uint64_t)vocab);
        }
        fill_io(it, p, "step", (double)step);
        fill_io(it, p, "lr", 1e-3);
        fill_io(it, p, "adam_t", 2);
        fill_io(it, p, "prune_fraction", 0.5);
        const CuFunc *cf = NULL;
        for (int i = 0; i < p->n_funcs; i++)
            if (p->funcs[i] == f)
                cf = &g->cp->funcs[i];
        ck_assert_ptr_nonnull(cf);
        for (int i = 0; i < f->n_kernels; i++)
            check_kernel(&v, &e, it, cf, f->kernels[i], step, t);
    }
    k_interp_destroy(it);
    dev_fini(&v);
    emu_unload(&e);
}

/* ---- the examples ---- */

static void check_example(const char *name)
{
    const char *root = getenv("RELORAC_SOURCE_ROOT");
    ck_assert_ptr_nonnull(root);
    char path[512];
    snprintf(path, sizeof path, "%s/examples/%s.relora", root, name);
    const char *defs[] = {"model.layers=1", "model.dim=64",  "model.heads=4",  "model.vocab=512",
                          "adapter.rank=8", "train.batch=2", "train.seq_len=16", "model.block.swiglu.hidden=96"};
    size_t len;
    char *text = slurp(path, &len);
    int n = strstr(text, "swiglu") ? 8 : 7;
    free(text);
    Prog g;
    prog_build(&g, path, defs, n);
    Tally t = {0};
    run_program(&g, &t);
    printf("%s: %d kernels (%d loop, %d gemm, %d call, %d attention, %d head loss), %d launches, %d distinct CUDA "
           "kernels; worst relative difference %.2g (%s)\n",
           name, t.kernels, t.kinds[K_LOOP], t.kinds[K_GEMM], t.kinds[K_CALL], t.kinds[K_ATTENTION],
           t.kinds[K_HEAD_LOSS], t.launches, g.cp->n_kernels, t.worst, t.worst_at ? t.worst_at : "-");
    ck_assert_int_gt(t.kinds[K_LOOP], 10);
    ck_assert_int_gt(t.kinds[K_GEMM], 0);
    ck_assert_int_gt(t.kinds[K_ATTENTION], 0);
    prog_fini(&g);
}

START_TEST(cuda_tiny_matches_interpreter) { check_example("tiny"); }
END_TEST
START_TEST(cuda_llama_350m_matches_interpreter) { check_example("llama-350m"); }
END_TEST
START_TEST(cuda_gpt2_small_matches_interpreter) { check_example("gpt2-small"); }
END_TEST
START_TEST(cuda_parallel_matches_interpreter) { check_example("parallel"); }
END_TEST
START_TEST(cuda_llama_60m_matches_interpreter) { check_example("llama-60m"); }
END_TEST
START_TEST(cuda_llama_130m_matches_interpreter) { check_example("llama-130m"); }
END_TEST
START_TEST(cuda_llama_250m_matches_interpreter) { check_example("llama-250m"); }
END_TEST
START_TEST(cuda_llama_1b3_matches_interpreter) { check_example("llama-1b3"); }
END_TEST

Suite *cuda_suite(void)
{
    Suite *s = suite_create("cuda");
    TCase *tc = tcase_create("examples");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, cuda_tiny_matches_interpreter);
    tcase_add_test(tc, cuda_llama_350m_matches_interpreter);
    tcase_add_test(tc, cuda_gpt2_small_matches_interpreter);
    tcase_add_test(tc, cuda_parallel_matches_interpreter);
    tcase_add_test(tc, cuda_llama_60m_matches_interpreter);
    tcase_add_test(tc, cuda_llama_130m_matches_interpreter);
    tcase_add_test(tc, cuda_llama_250m_matches_interpreter);
    tcase_add_test(tc, cuda_llama_1b3_matches_interpreter);
    suite_add_tcase(s, tc);
    return s;
}
