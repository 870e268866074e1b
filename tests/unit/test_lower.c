/* Lowering, whole-model gradients and the kernelizer, on tiny models of each block
 * kind (LLaMA, GPT-2, parallel):
 *  - the lowered IR verifies;
 *  - a fresh byte-level model starts at loss ln(256);
 *  - the loss gradient of every parameter tensor matches central finite differences
 *    (f64 reference executor);
 *  - the kernels (kernel IR interpreter) compute the same loss and gradients as the
 *    graph interpreter. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe.h"
#include "kernel.h"
#include "lower.h"
#include "pm.h"

static const char *const LLAMA =
    "model m {\n"
    "  vocab = 32; dim = 16; layers = 2; heads = 4; kv_heads = 2; context = 8\n"
    "  block(x) {\n"
    "    h = x + attention(rmsnorm(x), rope = 10000)\n"
    "    return h + swiglu(rmsnorm(h), hidden = 24)\n"
    "  }\n"
    "}\n"
    "train { batch = 2; seq_len = 6; steps = 10 }\n";

static const char *const GPT2 =
    "model m {\n"
    "  vocab = 32; dim = 16; layers = 2; heads = 2; context = 8\n"
    "  tied = true; positions = learned; norm = layernorm; bias = true\n"
    "  block(x) {\n"
    "    h = x + attention(layernorm(x), rope = none)\n"
    "    return h + linear(gelu(linear(layernorm(h), out = 64, name = \"fc\")), out = dim, name = \"proj\")\n"
    "  }\n"
    "}\n"
    "train { batch = 2; seq_len = 6; steps = 10 }\n";

static const char *const PARALLEL =
    "model m {\n"
    "  vocab = 32; dim = 16; layers = 2; heads = 2; context = 8\n"
    "  block(x) {\n"
    "    n = layernorm(x)\n"
    "    return x + attention(n, rope = 10000) + geglu(n, hidden = 32)\n"
    "  }\n"
    "}\n"
    "train { batch = 2; seq_len = 6; steps = 10 }\n";

static const char *const BYTES =
    "model m {\n"
    "  vocab = 256; dim = 64; layers = 2; heads = 4; context = 32\n"
    "  block(x) {\n"
    "    h = x + attention(rmsnorm(x), rope = 10000)\n"
    "    return h + swiglu(rmsnorm(h), hidden = 128)\n"
    "  }\n"
    "}\n"
    "train { batch = 4; seq_len = 32; steps = 10 }\n";

typedef struct {
    Arena a;
    Diags d;
    IrModule *m;
} Lowered;

static void lower_text(Lowered *l, const char *text)
{
    arena_init(&l->a);
    diag_init(&l->d, &l->a);
    FeCtx ctx;
    fe_ctx_init(&ctx, &l->a, &l->d);
    bool parsed = fe_parse_buffer(&ctx, "t.relora", text, strlen(text));
    FeOptions opt = {0};
    const Spec *s = parsed ? fe_check(&l->a, &l->d, ctx.ast, NULL, 0, &opt) : NULL;
    l->m = s ? fe_lower(&l->a, &l->d, s) : NULL;
    if (!l->m)
        diag_print(&l->d, stderr, true);
    ck_assert_ptr_nonnull(l->m);
}

static void run_autodiff(Lowered *l)
{
    PassCtx pc = {&l->a, &l->d, l->m, PROP_LOWERED};
    const char *only[] = {"autodiff"};
    PassOptions po = {only, 1, true, NULL, NULL};
    bool ok = pass_pipeline_run(&pc, &po);
    if (!ok)
        diag_print(&l->d, stderr, true);
    ck_assert(ok);
}

/* Deterministic pseudo-random tokens in [0, vocab). */
static void fill_tokens(double *tok, double *tgt, int64_t n, int64_t vocab, uint64_t salt)
{
    for (int64_t i = 0; i < n; i++) {
        tok[i] = (double)(ir_rng_u64(7, salt, (uint64_t)i) % (uint64_t)vocab);
        tgt[i] = (double)(ir_rng_u64(7, salt + 1, (uint64_t)i) % (uint64_t)vocab);
    }
}

static void set_data(IrInterp *it, IrModule *m, uint64_t salt)
{
    IrGlobal *tok = ir_global_find(m, "tokens"), *tgt = ir_global_find(m, "targets");
    fill_tokens(ir_interp_global(it, tok), ir_interp_global(it, tgt), ir_type_numel(tok->type),
                ir_attrs_int(&m->attrs, "vocab", 0), salt);
}

static void check_verifies(const char *text)
{
    Lowered l;
    lower_text(&l, text);
    bool ok = ir_verify(l.m, &l.d);
    if (!ok)
        diag_print(&l.d, stderr, true);
    ck_assert(ok);
    run_autodiff(&l);
    arena_fini(&l.a);
}

START_TEST(lower_verifies_for_each_block_kind)
{
    check_verifies(LLAMA);
    check_verifies(GPT2);
    check_verifies(PARALLEL);
}
END_TEST

START_TEST(lower_fresh_byte_model_starts_at_ln_256)
{
    Lowered l;
    lower_text(&l, BYTES);
    IrInterp *it = ir_interp_create(l.m, 1234);
    ir_interp_run(it, ir_func_find(l.m, "init"));
    set_data(it, l.m, 3);
    double loss = ir_interp_run(it, ir_func_find(l.m, "train"));
    printf("fresh byte-level model: loss %.4f, ln(256) = %.4f\n", loss, log(256.0));
    ck_assert_double_le(fabs(loss - log(256.0)), 0.05);
    ir_interp_destroy(it);
    arena_fini(&l.a);
}
END_TEST

/* Central differences on up to `per_tensor` elements of every trainable tensor. */
static double fd_check(const char *text, const char *label)
{
    Lowered l;
    lower_text(&l, text);
    run_autodiff(&l);
    IrFunc *train = ir_func_find(l.m, "train");
    IrInterp *it = ir_interp_create(l.m, 99);
    ir_interp_run(it, ir_func_find(l.m, "init"));
    /* Move norm weights and biases off their initial 1/0 so their gradients are generic. */
    for (int i = 0; i < l.m->n_globals; i++) {
        IrGlobal *g = l.m->globals[i];
        if (g->cls != IR_CLASS_PARAM && g->cls != IR_CLASS_FROZEN)
            continue;
        double *v = ir_interp_global(it, g);
        for (int64_t j = 0; j < ir_type_numel(g->type); j++)
            v[j] += 0.1 * (ir_rng_uniform(5, (uint64_t)i, (uint64_t)j) - 0.5);
    }
    set_data(it, l.m, 11);
    double worst = 0;
    int n_tensors = 0;
    for (int i = 0; i < l.m->n_globals; i++) {
        IrGlobal *g = l.m->globals[i];
        IrGlobal *gg = ir_global_find(l.m, arena_sprintf(&l.a, "%s.grad", g->name));
        if (!gg)
            continue;
        n_tensors++;
        ir_interp_run(it, train);
        int64_t n = ir_type_numel(g->type);
        double *grad = ir_interp_global(it, gg);
        double *saved = malloc(sizeof(double) * (size_t)n);
        memcpy(saved, grad, sizeof(double) * (size_t)n);
        double *w = ir_interp_global(it, g);
        for (int s = 0; s < 5; s++) {
            int64_t j = (int64_t)(ir_rng_u64(3, (uint64_t)i, (uint64_t)s) % (uint64_t)n);
            double x0 = w[j], h = 1e-5 * fmax(1.0, fabs(x0));
            w[j] = x0 + h;
            double lp = ir_interp_run(it, train);
            w[j] = x0 - h;
            double lm = ir_interp_run(it, train);
            w[j] = x0;
            double fd = (lp - lm) / (2 * h);
            double err = fabs(fd - saved[j]) / fmax(fmax(fabs(fd), fabs(saved[j])), 1e-4);
            if (err > worst)
                worst = err;
            if (err > 1e-6)
                printf("%s: %s[%lld]: autodiff %.10g, finite difference %.10g\n", label, g->name, (long long)j,
                       saved[j], fd);
        }
        free(saved);
    }
    printf("%s: %d parameter tensors, largest relative error vs finite differences %.3g\n", label, n_tensors, worst);
    ck_assert_int_gt(n_tensors, 5);
    ir_interp_destroy(it);
    arena_fini(&l.a);
    return worst;
}

START_TEST(lower_llama_gradients_match_finite_differences)
{
    ck_assert_double_lt(fd_check(LLAMA, "llama"), 1e-6);
}
END_TEST

START_TEST(lower_gpt2_gradients_match_finite_differences)
{
    ck_assert_double_lt(fd_check(GPT2, "gpt2"), 1e-6);
}
END_TEST

START_TEST(lower_parallel_gradients_match_finite_differences)
{
    ck_assert_double_lt(fd_check(PARALLEL, "parallel"), 1e-6);
}
END_TEST

/* The kernels compute what the graph computes: same loss, same stored gradients. */
static void check_kernels(const char *text, const char *label)
{
    Lowered l;
    lower_text(&l, text);
    run_autodiff(&l);
    KProgram *p = k_program_build(&l.a, &l.d, l.m);
    if (!p)
        diag_print(&l.d, stderr, true);
    ck_assert_ptr_nonnull(p);
    IrInterp *gi = ir_interp_create(l.m, 42);
    KInterp *ki = k_interp_create(p, 42);
    ir_interp_run(gi, ir_func_find(l.m, "init"));
    k_interp_run(ki, k_program_func(p, "init"), 0);
    set_data(gi, l.m, 5);
    IrGlobal *tok = ir_global_find(l.m, "tokens"), *tgt = ir_global_find(l.m, "targets");
    int64_t nt = ir_type_numel(tok->type);
    memcpy(k_interp_buf(ki, p->global_buf[tok->id]), ir_interp_global(gi, tok), sizeof(double) * (size_t)nt);
    memcpy(k_interp_buf(ki, p->global_buf[tgt->id]), ir_interp_global(gi, tgt), sizeof(double) * (size_t)nt);
    double lg = ir_interp_run(gi, ir_func_find(l.m, "train"));
    double lk = k_interp_run(ki, k_program_func(p, "train"), 0);
    ck_assert_double_eq_tol(lg, lk, 1e-10);
    double worst = 0;
    for (int i = 0; i < l.m->n_globals; i++) {
        IrGlobal *g = l.m->globals[i];
        if (g->cls == IR_CLASS_DATA)
            continue;
        const double *a = ir_interp_global(gi, g), *b = k_interp_buf(ki, p->global_buf[g->id]);
        for (int64_t j = 0; j < ir_type_numel(g->type); j++) {
            double err = fabs(a[j] - b[j]) / fmax(fabs(a[j]), 1e-6);
            if (err > worst)
                worst = err;
        }
    }
    printf("%s: kernels vs graph: loss %.12f vs %.12f, largest relative difference over all globals %.3g\n", label,
           lg, lk, worst);
    ck_assert_double_lt(worst, 1e-9);
    k_interp_destroy(ki);
    ir_interp_destroy(gi);
    arena_fini(&l.a);
}

START_TEST(kernels_match_the_graph_interpreter)
{
    check_kernels(LLAMA, "llama");
    check_kernels(GPT2, "gpt2");
    check_kernels(PARALLEL, "parallel");
}
END_TEST

Suite *lower_suite(void)
{
    Suite *s = suite_create("lower");
    TCase *tc = tcase_create("lower");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, lower_verifies_for_each_block_kind);
    tcase_add_test(tc, lower_fresh_byte_model_starts_at_ln_256);
    tcase_add_test(tc, lower_llama_gradients_match_finite_differences);
    tcase_add_test(tc, lower_gpt2_gradients_match_finite_differences);
    tcase_add_test(tc, lower_parallel_gradients_match_finite_differences);
    tcase_add_test(tc, kernels_match_the_graph_interpreter);
    suite_add_tcase(s, tc);
    return s;
}
