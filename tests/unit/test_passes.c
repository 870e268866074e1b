/* The clean-up and fusion passes (dce, cse, constfold, fuse):
 *  - on hand-written IR, each gives exactly the expected IR text;
 *  - on a whole tiny model (lowered, differentiated, optimizer step appended), dce + cse
 *    + constfold keep the loss and every global after a step (f64, 1e-12);
 *  - fuse only makes legal groups, and the grouped module kernelizes into fewer kernels
 *    computing the same (kernel interpreter vs graph interpreter, 1e-12). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuse.h"
#include "kernel.h"
#include "tutil.h"

/* ---- hand-written IR ---- */

static void parse_ok(TuModel *x, const char *text)
{
    arena_init(&x->a);
    diag_init(&x->d, &x->a);
    x->m = ir_parse(&x->a, &x->d, "t.ir", text, strlen(text));
    tu_assert_ok(x, x->m && ir_verify(x->m, &x->d));
}

static char *print_module(const IrModule *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ir_print(m, f);
    fclose(f);
    return buf;
}

/* Parses `in`, runs the named passes (pipeline order), compares the printed module. */
static void check_pass(const char *pass, const char *in, const char *want)
{
    TuModel x;
    parse_ok(&x, in);
    tu_run_passes(&x, &pass, 1);
    char *got = print_module(x.m);
    if (strcmp(got, want) != 0)
        printf("%s: got\n%s\nwant\n%s\n", pass, got, want);
    ck_assert_str_eq(got, want);
    /* the result is canonical text: it reads back to itself */
    TuModel y;
    parse_ok(&y, got);
    char *again = print_module(y.m);
    ck_assert_str_eq(again, got);
    free(again);
    free(got);
    tu_fini(&y);
    tu_fini(&x);
}

#define HEADER                                                                                                    \
    "module t {\n"                                                                                                \
    "  global @w : f32[4,4] param trainable\n"                                                                   \
    "  global @x : f32[2,4] param\n"                                                                             \
    "  global @b : f32[4] param\n"                                                                               \
    "  global @t : i32[] data\n"                                                                                 \
    "}\n"                                                                                                         \
    "\n"

START_TEST(dce_removes_values_reaching_no_effect_or_ret)
{
    check_pass("dce",
               HEADER "func @f {\n"
                      "  %0 = global @b : f32[4]\n"
                      "  %1 = global @x : f32[2,4]\n"
                      "  %2 = silu %1 : f32[2,4]\n"
                      "  %3 = scale %0 {alpha = 2.0} : f32[4]\n"
                      "  store %3, @b\n"
                      "  %5 = add %1, %0 : f32[2,4]\n"
                      "  %6 = mul %5, %5 : f32[2,4]\n"
                      "  %7 = global @w : f32[4,4]\n"
                      "  ret %5\n"
                      "}\n"
                      "\n"
                      "func @g {\n"
                      "  %0 = global @w : f32[4,4]\n"
                      "  init_const @w {value = 0.0}\n"
                      "}\n",
               HEADER "func @f {\n"
                      "  %0 = global @b : f32[4]\n"
                      "  %1 = global @x : f32[2,4]\n"
                      "  %2 = scale %0 {alpha = 2.0} : f32[4]\n"
                      "  store %2, @b\n"
                      "  %4 = add %1, %0 : f32[2,4]\n"
                      "  ret %4\n"
                      "}\n"
                      "\n"
                      "func @g {\n"
                      "  init_const @w {value = 0.0}\n"
                      "}\n");
}
END_TEST

START_TEST(cse_merges_same_values_but_not_across_writes_or_effects)
{
    check_pass("cse",
               HEADER "func @f {\n"
                      "  %0 = global @w : f32[4,4]\n"
                      "  %1 = global @x : f32[2,4]\n"
                      "  %2 = matmul %1, %0 {trans_a = 0, trans_b = 1} : f32[2,4]\n"
                      "  %3 = global @w : f32[4,4]\n"
                      "  %4 = matmul %1, %3 {trans_a = 0, trans_b = 1} : f32[2,4]  # twin\n"
                      "  %5 = matmul %1, %3 {trans_a = 0, trans_b = 0} : f32[2,4]\n"
                      "  %6 = add %2, %4 : f32[2,4]\n"
                      "  %7 = add %6, %5 : f32[2,4]\n"
                      "  %8 = const {value = 1.0} : f32[]\n"
                      "  %9 = const {value = 1.0} : f32[]\n"
                      "  %10 = const {value = 1.0} : f32[4]\n"
                      "  %11 = mul %7, %8 : f32[2,4]\n"
                      "  %12 = mul %7, %9 : f32[2,4]\n"
                      "  %13 = mul %7, %10 : f32[2,4]\n"
                      "  store %11, @x\n"
                      "  store %12, @x\n"
                      "  %16 = global @x : f32[2,4]\n"
                      "  %17 = global @x : f32[2,4]\n"
                      "  %18 = add %16, %17 : f32[2,4]\n"
                      "  %19 = global @w : f32[4,4]\n"
                      "  %20 = add %18, %13 : f32[2,4]\n"
                      "  store %19, @w\n"
                      "  ret %20\n"
                      "}\n",
               HEADER "func @f {\n"
                      "  %0 = global @w : f32[4,4]\n"
                      "  %1 = global @x : f32[2,4]\n"
                      "  %2 = matmul %1, %0 {trans_a = 0, trans_b = 1} : f32[2,4]\n"
                      "  %3 = matmul %1, %0 {trans_a = 0, trans_b = 0} : f32[2,4]\n"
                      "  %4 = add %2, %2 : f32[2,4]\n"
                      "  %5 = add %4, %3 : f32[2,4]\n"
                      "  %6 = const {value = 1.0} : f32[]\n"
                      "  %7 = const {value = 1.0} : f32[4]\n"
                      "  %8 = mul %5, %6 : f32[2,4]\n"
                      "  %9 = mul %5, %7 : f32[2,4]\n"
                      "  store %8, @x\n"
                      "  store %8, @x\n"
                      "  %12 = global @x : f32[2,4]\n"
                      "  %13 = add %12, %12 : f32[2,4]\n"
                      "  %14 = add %13, %9 : f32[2,4]\n"
                      "  store %0, @w\n"
                      "  ret %14\n"
                      "}\n");
}
END_TEST

START_TEST(constfold_folds_constants_and_drops_identities)
{
    check_pass("constfold",
               HEADER "func @f {\n"
                      "  %0 = const {value = 2.0} : f32[2,2]\n"
                      "  %1 = scale %0 {alpha = 3.0} : f32[2,2]\n"
                      "  %2 = reshape %1 {shape = [4]} : f32[4]\n"
                      "  %3 = const {value = 0.5} : f32[4]\n"
                      "  %4 = add %3, %2 : f32[4]  # folded\n"
                      "  %5 = global @x : f32[2,4]\n"
                      "  %6 = const {value = 1.0} : f32[4]\n"
                      "  %7 = mul %5, %6 : f32[2,4]\n"
                      "  %8 = const {value = 0.0} : f32[]\n"
                      "  %9 = add %7, %8 : f32[2,4]\n"
                      "  %10 = scale %9 {alpha = 1.0} : f32[2,4]\n"
                      "  %11 = sub %10, %8 : f32[2,4]\n"
                      "  %12 = const {value = 1.0} : f32[2,4]\n"
                      "  %13 = mul %12, %5 : f32[2,4]\n"
                      "  %14 = add %11, %13 : f32[2,4]\n"
                      "  %15 = mul %14, %4 : f32[2,4]\n"
                      "  %16 = const {value = 3.0} : i32[]\n"
                      "  %17 = const {value = 0.0} : i32[]\n"
                      "  %18 = add %16, %17 : i32[]\n"
                      "  %19 = relu %8 : f32[]\n"
                      "  %20 = global @b : f32[4]\n"
                      "  %21 = add %20, %19 : f32[4]\n"
                      "  store %21, @b\n"
                      "  store %18, @t\n"
                      "  ret %15\n"
                      "}\n",
               HEADER "func @f {\n"
                      "  %0 = const {value = 6.5} : f32[4]  # folded\n"
                      "  %1 = global @x : f32[2,4]\n"
                      "  %2 = add %1, %1 : f32[2,4]\n"
                      "  %3 = mul %2, %0 : f32[2,4]\n"
                      "  %4 = const {value = 3.0} : i32[]\n"
                      "  %5 = const {value = 0.0} : i32[]\n"
                      "  %6 = add %4, %5 : i32[]\n"
                      "  %7 = global @b : f32[4]\n"
                      "  store %7, @b\n"
                      "  store %6, @t\n"
                      "  ret %3\n"
                      "}\n");
}
END_TEST

/* silu(gate) * up + residual fuses; a use from outside in the middle splits a chain;
 * a broadcast operand of another element count is read, not fused; siblings (two
 * elementwise users of the matmul %2 in @siblings) share a kernel. */
START_TEST(fuse_groups_elementwise_chains_legally)
{
    check_pass("fuse",
               HEADER "func @f {\n"
                      "  %0 = global @x : f32[2,4]\n"
                      "  %1 = global @w : f32[4,4]\n"
                      "  %2 = matmul %0, %1 {trans_a = 0, trans_b = 1} : f32[2,4]\n"
                      "  %3 = matmul %0, %1 {trans_a = 0, trans_b = 0} : f32[2,4]\n"
                      "  %4 = silu %2 : f32[2,4]\n"
                      "  %5 = mul %4, %3 : f32[2,4]\n"
                      "  %6 = add %5, %0 : f32[2,4]\n"
                      "  %7 = global @b : f32[4]\n"
                      "  %8 = rmsnorm %6, %7 {eps = 1e-05} : f32[2,4]\n"
                      "  %9 = relu %8 : f32[2,4]\n"
                      "  %10 = scale %9 {alpha = 2.0} : f32[2,4]\n"
                      "  %11 = matmul %10, %1 {trans_a = 0, trans_b = 1} : f32[2,4]\n"
                      "  %12 = add %10, %11 : f32[2,4]\n"
                      "  %13 = scale %7 {alpha = 0.5} : f32[4]\n"
                      "  %14 = gelu %13 : f32[4]\n"
                      "  %15 = add %12, %14 : f32[2,4]\n"
                      "  %16 = mul %15, %6 : f32[2,4]\n"
                      "  %17 = silu %0 : f32[2,4]\n"
                      "  %18 = add %16, %17 : f32[2,4]\n"
                      "  store %14, @b\n"
                      "  ret %18\n"
                      "}\n"
                      "\n"
                      "func @siblings {\n"
                      "  %0 = global @x : f32[2,4]\n"
                      "  %1 = global @w : f32[4,4]\n"
                      "  %2 = matmul %0, %1 {trans_a = 0, trans_b = 1} : f32[2,4]\n"
                      "  %3 = mul %2, %0 : f32[2,4]\n"
                      "  %4 = mul %2, %2 : f32[2,4]\n"
                      "  %5 = silu_grad %3, %0 : f32[2,4]\n"
                      "  %6 = matmul %4, %1 {trans_a = 0, trans_b = 0} : f32[2,4]\n"
                      "  %7 = add %5, %6 : f32[2,4]\n"
                      "  ret %7\n"
                      "}\n",
               HEADER "func @f {\n"
                      "  %0 = global @x : f32[2,4]\n"
                      "  %1 = global @w : f32[4,4]\n"
                      "  %2 = matmul %0, %1 {trans_a = 0, trans_b = 1} : f32[2,4]\n"
                      "  %3 = matmul %0, %1 {trans_a = 0, trans_b = 0} : f32[2,4]\n"
                      "  %4 = silu %2 : f32[2,4] group(0)\n"
                      "  %5 = mul %4, %3 : f32[2,4] group(0)\n"
                      "  %6 = add %5, %0 : f32[2,4] group(0)\n"
                      "  %7 = global @b : f32[4]\n"
                      "  %8 = rmsnorm %6, %7 {eps = 1e-05} : f32[2,4]\n"
                      "  %9 = relu %8 : f32[2,4] group(1)\n"
                      "  %10 = scale %9 {alpha = 2.0} : f32[2,4] group(1)\n"
                      "  %11 = matmul %10, %1 {trans_a = 0, trans_b = 1} : f32[2,4]\n"
                      "  %12 = add %10, %11 : f32[2,4] group(2)\n"
                      "  %13 = scale %7 {alpha = 0.5} : f32[4] group(3)\n"
                      "  %14 = gelu %13 : f32[4] group(3)\n"
                      "  %15 = add %12, %14 : f32[2,4] group(2)\n"
                      "  %16 = mul %15, %6 : f32[2,4] group(2)\n"
                      "  %17 = silu %0 : f32[2,4] group(2)\n"
                      "  %18 = add %16, %17 : f32[2,4] group(2)\n"
                      "  store %14, @b\n"
                      "  ret %18\n"
                      "}\n"
                      "\n"
                      "func @siblings {\n"
                      "  %0 = global @x : f32[2,4]\n"
                      "  %1 = global @w : f32[4,4]\n"
                      "  %2 = matmul %0, %1 {trans_a = 0, trans_b = 1} : f32[2,4]\n"
                      "  %3 = mul %2, %0 : f32[2,4] group(0)\n"
                      "  %4 = mul %2, %2 : f32[2,4] group(0)\n"
                      "  %5 = silu_grad %3, %0 : f32[2,4] group(0)\n"
                      "  %6 = matmul %4, %1 {trans_a = 0, trans_b = 0} : f32[2,4]\n"
                      "  %7 = add %5, %6 : f32[2,4]\n"
                      "  ret %7\n"
                      "}\n");
}
END_TEST

/* Every group fuse makes passes the kernelizer's rule, and the kernelizer fuses it. */
START_TEST(fuse_never_makes_an_illegal_group)
{
    TuModel x;
    parse_ok(&x, HEADER "func @f {\n"
                        "  %0 = global @x : f32[2,4]\n"
                        "  %1 = silu %0 : f32[2,4]\n"
                        "  %2 = scale %1 {alpha = 2.0} : f32[2,4]\n"
                        "  %3 = global @w : f32[4,4]\n"
                        "  %4 = matmul %1, %3 {trans_a = 0, trans_b = 1} : f32[2,4]\n"
                        "  %5 = add %2, %4 : f32[2,4]\n"
                        "  %6 = mul %5, %1 : f32[2,4]\n"
                        "  ret %6\n"
                        "}\n");
    IrFunc *f = x.m->funcs[0];
    int n = pass_fuse_func(&x.a, f);
    /* %1, %2 group: the matmul %4 uses %1, so %5 (after it) may not join them */
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(f->nodes[1]->group, 0);
    ck_assert_int_eq(f->nodes[2]->group, 0);
    ck_assert_int_eq(f->nodes[5]->group, 1);
    ck_assert_int_eq(f->nodes[6]->group, 1);
    for (int g = 0; g < n; g++)
        ck_assert(pass_fuse_group_legal(f, g));
    /* the rule itself: putting %5 into group 0 would make it illegal */
    f->nodes[5]->group = 0;
    ck_assert(!pass_fuse_group_legal(f, 0));
    tu_fini(&x);
}
END_TEST

/* ---- whole models ---- */

/* An AdamW step for every global with a stored gradient, after the gradient stores,
 * as the optimizer pass appends it (a constant lr, t = 1), so that the whole model
 * has elementwise optimizer math and effects to keep. */
static void append_adamw(IrModule *m, IrFunc *f)
{
    IrBuilder b;
    ir_builder_init(&b, m, f, NULL);
    IrNode *lr = ir_const(&b, ir_type_scalar(IR_F32), 0.01);
    IrNode *gs = ir_const(&b, ir_type_scalar(IR_F32), 1.0);
    IrNode *t = ir_const(&b, ir_type_scalar(IR_I32), 1);
    int n = m->n_globals;
    for (int i = 0; i < n; i++) {
        IrGlobal *p = m->globals[i];
        IrGlobal *g = ir_global_find(m, arena_sprintf(m->arena, "%s.grad", p->name));
        if (!g)
            continue;
        IrGlobal *mo = ir_global_new(m, arena_sprintf(m->arena, "%s.m", p->name), p->type, IR_CLASS_OPTIM,
                                     IR_G_MOMENT, p->loc);
        IrGlobal *vo = ir_global_new(m, arena_sprintf(m->arena, "%s.v", p->name), p->type, IR_CLASS_OPTIM,
                                     IR_G_MOMENT, p->loc);
        IrNode *in[4] = {ir_global_read(&b, g), lr, gs, t};
        IrGlobal *gl[3] = {p, mo, vo};
        IrAttrs at = {0};
        ir_attrs_set_float(m->arena, &at, "beta1", 0.9);
        ir_attrs_set_float(m->arena, &at, "beta2", 0.999);
        ir_attrs_set_float(m->arena, &at, "eps", 1e-8);
        ir_attrs_set_float(m->arena, &at, "weight_decay", 0.01);
        ir_build(&b, IR_OP_ADAMW, in, 4, gl, 3, &at);
    }
    ck_assert(!b.failed);
}

/* The model lowered and differentiated, with append_adamw's step. */
static void lower_train_step(TuModel *l, const char *text)
{
    static const char *const autodiff[] = {"autodiff"};
    tu_build(l, text, autodiff, 1);
    append_adamw(l->m, ir_func_find(l->m, "train"));
    ck_assert(ir_verify(l->m, &l->d));
}

/* After init and one train step: the loss and every global, in global-id order. */
typedef struct {
    double loss;
    double *vals;
    int64_t n;
} Result;

/* The loss and a copy of every global's values, src[i] those of global i. */
static Result result_copy(const IrModule *m, double loss, double *const *src)
{
    Result r = {loss, NULL, 0};
    for (int i = 0; i < m->n_globals; i++)
        r.n += ir_type_numel(m->globals[i]->type);
    r.vals = malloc(sizeof(double) * (size_t)r.n);
    int64_t at = 0;
    for (int i = 0; i < m->n_globals; i++) {
        int64_t k = ir_type_numel(m->globals[i]->type);
        memcpy(r.vals + at, src[i], sizeof(double) * (size_t)k);
        at += k;
    }
    return r;
}

static Result graph_run(IrModule *m)
{
    IrInterp *it = ir_interp_create(m, 42);
    ir_interp_run(it, ir_func_find(m, "init"));
    tu_set_tokens(it, m, 5);
    double loss = ir_interp_run(it, ir_func_find(m, "train"));
    double **src = malloc(sizeof *src * (size_t)m->n_globals);
    for (int i = 0; i < m->n_globals; i++)
        src[i] = ir_interp_global(it, m->globals[i]);
    Result r = result_copy(m, loss, src);
    free(src);
    ir_interp_destroy(it);
    return r;
}

static Result kernel_run(IrModule *m, KProgram *p)
{
    KInterp *it = k_interp_create(p, 42);
    k_interp_run(it, k_program_func(p, "init"), 0);
    tu_fill_tokens(m, k_interp_buf(it, p->global_buf[ir_global_find(m, "tokens")->id]),
                   k_interp_buf(it, p->global_buf[ir_global_find(m, "targets")->id]), 5);
    double loss = k_interp_run(it, k_program_func(p, "train"), 0);
    double **src = malloc(sizeof *src * (size_t)m->n_globals);
    for (int i = 0; i < m->n_globals; i++)
        src[i] = k_interp_buf(it, p->global_buf[i]);
    Result r = result_copy(m, loss, src);
    free(src);
    k_interp_destroy(it);
    return r;
}

/* Largest |a - b| / max(|a|, 1) over loss and values: relative above 1, absolute below.
 * (Gradients that are zero in exact arithmetic, such as a key bias's under softmax,
 * come out as rounding noise near 1e-14 whose digits differ with summation order.) */
static double result_diff(const Result *a, const Result *b)
{
    ck_assert_int_eq(a->n, b->n);
    double worst = fabs(a->loss - b->loss) / fmax(fabs(a->loss), 1.0);
    for (int64_t i = 0; i < a->n; i++) {
        double e = fabs(a->vals[i] - b->vals[i]) / fmax(fabs(a->vals[i]), 1.0);
        if (e > worst)
            worst = e;
    }
    return worst;
}

static int count_nodes(const IrModule *m)
{
    int n = 0;
    for (int i = 0; i < m->n_funcs; i++)
        n += m->funcs[i]->n_nodes;
    return n;
}

static void check_clean_keeps_results(const char *text, const char *label)
{
    TuModel l;
    lower_train_step(&l, text);
    Result before = graph_run(l.m);
    int n0 = count_nodes(l.m);
    const char *clean[] = {"dce", "cse", "constfold"};
    tu_run_passes(&l, clean, 3);
    int n1 = count_nodes(l.m);
    Result after = graph_run(l.m);
    double d = result_diff(&before, &after);
    printf("%s: dce+cse+constfold: %d -> %d nodes; loss %.15f vs %.15f; largest difference %.3g over %lld "
           "values\n",
           label, n0, n1, before.loss, after.loss, d, (long long)before.n);
    ck_assert_int_lt(n1, n0);
    ck_assert_double_le(d, 1e-12);
    free(before.vals);
    free(after.vals);
    tu_fini(&l);
}

START_TEST(clean_passes_keep_loss_and_gradients)
{
    check_clean_keeps_results(tu_spec_llama, "llama");
    check_clean_keeps_results(tu_spec_gpt2, "gpt2");
}
END_TEST

static int count_kernels(const KProgram *p, const char *func)
{
    return k_program_func(p, func)->n_kernels;
}

static void check_fuse(const char *text, const char *label)
{
    TuModel l;
    lower_train_step(&l, text);
    const char *clean[] = {"dce", "cse", "constfold"};
    tu_run_passes(&l, clean, 3);
    KProgram *p0 = k_program_build(&l.a, &l.d, l.m);
    ck_assert_ptr_nonnull(p0);
    int k0 = count_kernels(p0, "train");
    const char *fuse[] = {"fuse"};
    tu_run_passes(&l, fuse, 1);
    int groups = 0, members = 0;
    for (int fi = 0; fi < l.m->n_funcs; fi++) {
        const IrFunc *f = l.m->funcs[fi];
        int n_groups = 0;
        for (int i = 0; i < f->n_nodes; i++) {
            if (f->nodes[i]->group >= 0)
                members++;
            if (f->nodes[i]->group + 1 > n_groups)
                n_groups = f->nodes[i]->group + 1;
        }
        for (int g = 0; g < n_groups; g++)
            ck_assert_msg(pass_fuse_group_legal(f, g), "%s: @%s group %d is illegal", label, f->name, g);
        groups += n_groups;
    }
    KProgram *p1 = k_program_build(&l.a, &l.d, l.m);
    ck_assert_ptr_nonnull(p1);
    int k1 = count_kernels(p1, "train");
    Result g = graph_run(l.m), k = kernel_run(l.m, p1);
    double d = result_diff(&g, &k);
    printf("%s: fuse: %d groups of %d nodes; @train kernels %d -> %d; kernels vs graph: loss %.15f vs %.15f, "
           "largest difference %.3g\n",
           label, groups, members, k0, k1, g.loss, k.loss, d);
    ck_assert_int_lt(k1, k0);
    ck_assert_double_le(d, 1e-12);
    free(g.vals);
    free(k.vals);
    tu_fini(&l);
}

START_TEST(fuse_gives_fewer_kernels_and_the_same_results)
{
    check_fuse(tu_spec_llama, "llama");
    check_fuse(tu_spec_gpt2, "gpt2");
}
END_TEST

Suite *passes_suite(void)
{
    Suite *s = suite_create("passes");
    TCase *tc = tcase_create("passes");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, dce_removes_values_reaching_no_effect_or_ret);
    tcase_add_test(tc, cse_merges_same_values_but_not_across_writes_or_effects);
    tcase_add_test(tc, constfold_folds_constants_and_drops_identities);
    tcase_add_test(tc, fuse_groups_elementwise_chains_legally);
    tcase_add_test(tc, fuse_never_makes_an_illegal_group);
    tcase_add_test(tc, clean_passes_keep_loss_and_gradients);
    tcase_add_test(tc, fuse_gives_fewer_kernels_and_the_same_results);
    suite_add_tcase(s, tc);
    return s;
}
