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

#include "kernel.h"
#include "tutil.h"

static const char *const BYTES =
    "model m {\n"
    "  vocab = 256; dim = 64; layers = 2; heads = 4; context = 32\n"
    "  block(x) {\n"
    "    h = x + attention(rmsnorm(x), rope = 10000)\n"
    "    return h + swiglu(rmsnorm(h), hidden = 128)\n"
    "  }\n"
    "}\n"
    "train { batch = 4; seq_len = 32; steps = 10 }\n";

static const char *const AUTODIFF[] = {"autodiff"};

static void check_verifies(const char *text)
{
    TuModel l;
    tu_lower(&l, text);
    tu_assert_ok(&l, ir_verify(l.m, &l.d));
    tu_run_passes(&l, AUTODIFF, 1);
    tu_fini(&l);
}

START_TEST(lower_verifies_for_each_block_kind)
{
    check_verifies(tu_spec_llama);
    check_verifies(tu_spec_gpt2);
    check_verifies(tu_spec_parallel);
}
END_TEST

START_TEST(lower_fresh_byte_model_starts_at_ln_256)
{
    TuModel l;
    tu_lower(&l, BYTES);
    IrInterp *it = ir_interp_create(l.m, 1234);
    ir_interp_run(it, ir_func_find(l.m, "init"));
    tu_set_tokens(it, l.m, 3);
    double loss = ir_interp_run(it, ir_func_find(l.m, "train"));
    printf("fresh byte-level model: loss %.4f, ln(256) = %.4f\n", loss, log(256.0));
    ck_assert_double_le(fabs(loss - log(256.0)), 0.05);
    ir_interp_destroy(it);
    tu_fini(&l);
}
END_TEST

/* Central differences on up to `per_tensor` elements of every trainable tensor. */
static double fd_check(const char *text, const char *label)
{
    TuModel l;
    tu_build(&l, text, AUTODIFF, 1);
    IrFunc *train = ir_func_find(l.m, "train");
    IrInterp *it = ir_interp_create(l.m, 99);
    ir_interp_run(it, ir_func_find(l.m, "init"));
    tu_perturb_params(it, l.m);
    tu_set_tokens(it, l.m, 11);
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
            double fd = tu_central_difference(it, train, w, j, 1e-5 * fmax(1.0, fabs(w[j])));
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
    tu_fini(&l);
    return worst;
}

START_TEST(lower_llama_gradients_match_finite_differences)
{
    ck_assert_double_lt(fd_check(tu_spec_llama, "llama"), 1e-6);
}
END_TEST

START_TEST(lower_gpt2_gradients_match_finite_differences)
{
    ck_assert_double_lt(fd_check(tu_spec_gpt2, "gpt2"), 1e-6);
}
END_TEST

START_TEST(lower_parallel_gradients_match_finite_differences)
{
    ck_assert_double_lt(fd_check(tu_spec_parallel, "parallel"), 1e-6);
}
END_TEST

/* The kernels compute what the graph computes: same loss, same stored gradients. */
static void check_kernels(const char *text, const char *label)
{
    TuModel l;
    tu_build(&l, text, AUTODIFF, 1);
    KProgram *p = k_program_build(&l.a, &l.d, l.m);
    if (!p)
        diag_print(&l.d, stderr, true);
    ck_assert_ptr_nonnull(p);
    IrInterp *gi = ir_interp_create(l.m, 42);
    KInterp *ki = k_interp_create(p, 42);
    ir_interp_run(gi, ir_func_find(l.m, "init"));
    k_interp_run(ki, k_program_func(p, "init"), 0);
    tu_set_tokens(gi, l.m, 5);
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
    tu_fini(&l);
}

START_TEST(kernels_match_the_graph_interpreter)
{
    check_kernels(tu_spec_llama, "llama");
    check_kernels(tu_spec_gpt2, "gpt2");
    check_kernels(tu_spec_parallel, "parallel");
}
END_TEST

/* The module attributes of a lowered spec are exactly `want` (hf.* aside, which
 * describe the export): every setting of the sections used, defaults included
 * (docs/language.md §5.4), and nothing of the ones not used. */
static void check_attrs(const char *text, const char *const *want)
{
    TuModel l;
    tu_lower(&l, text);
    int n_want = 0;
    while (want[n_want])
        n_want++;
    for (int i = 0; i < n_want; i++)
        ck_assert_msg(ir_attrs_get(&l.m->attrs, want[i]) != NULL, "no attribute %s", want[i]);
    for (int i = 0; i < l.m->attrs.n; i++) {
        const char *key = l.m->attrs.items[i].key;
        bool listed = strncmp(key, "hf.", 3) == 0;
        for (int j = 0; j < n_want; j++)
            listed = listed || !strcmp(key, want[j]);
        ck_assert_msg(listed, "unexpected attribute %s", key);
    }
    tu_fini(&l);
}

START_TEST(lower_emits_every_setting_of_a_relora_spec)
{
    static const char *const want[] = {
        "vocab", "dim", "layers", "batch", "train.micro_batch", "train.recompute", "seq_len", "model_hash",
        "adapter.rank", "adapter.alpha", "adapter.dropout",
        "train.data_kind", "train.val_data_kind", "train.val_fraction", "train.steps", "train.clip",
        "train.precision", "train.seed", "train.eval_every", "train.eval_batches", "train.checkpoint_every",
        "train.out", "train.target",
        "optim.kind", "optim.lr", "optim.beta1", "optim.beta2", "optim.eps", "optim.weight_decay",
        "schedule.kind", "schedule.warmup", "schedule.warmup_percent", "schedule.min_lr_ratio",
        "relora.warm_start", "relora.warm_start_percent", "relora.reset_every", "relora.reset_every_percent",
        "relora.restart_warmup", "relora.prune", "relora.reset", "relora.lr", NULL};
    check_attrs(TU_LLAMA_MODEL "adapter lora { rank = 2 }\n"
                               "train { batch = 2; seq_len = 6; steps = 100; schedule = relora(warm_start = 10%,"
                               " restart_warmup = 3) }\n",
                want);
    TuModel l;
    tu_lower(&l, TU_LLAMA_MODEL "adapter lora { rank = 2 }\n"
                                "train { batch = 2; seq_len = 6; steps = 100; schedule = relora(warm_start = 10%,"
                                " restart_warmup = 3) }\n");
    const IrAttrs *a = &l.m->attrs;
    ck_assert_int_eq(ir_attrs_int(a, "relora.warm_start", -1), 10);
    ck_assert_double_eq_tol(ir_attrs_float(a, "relora.warm_start_percent", -1), 10.0, 1e-12);
    ck_assert_int_eq(ir_attrs_int(a, "schedule.warmup", -1), 5); /* the default 5% of 100 */
    ck_assert_double_eq_tol(ir_attrs_float(a, "schedule.warmup_percent", -1), 5.0, 1e-12);
    ck_assert_int_eq(ir_attrs_int(a, "relora.reset_every", -1), 20);
    ck_assert_int_eq(ir_attrs_int(a, "relora.restart_warmup", -1), 3);
    ck_assert_str_eq(ir_attrs_str(a, "train.out", ""), "checkpoints");
    ck_assert_str_eq(ir_attrs_str(a, "train.data_kind", ""), "none");
    ck_assert_str_eq(ir_attrs_str(a, "relora.reset", ""), "magnitude");
    ck_assert_double_eq_tol(ir_attrs_float(a, "train.clip", -1), 1.0, 1e-15);
    ck_assert_double_eq_tol(ir_attrs_float(a, "optim.beta2", -1), 0.999, 1e-15);
    ck_assert_int_eq(ir_attrs_int(a, "train.eval_every", -1), 100);
    ck_assert_int_eq(ir_attrs_int(a, "train.seed", -1), 42);
    tu_fini(&l);
}
END_TEST

START_TEST(lower_emits_only_the_settings_of_the_schedule_kind)
{
    static const char *const want[] = {
        "vocab", "dim", "layers", "batch", "train.micro_batch", "train.recompute", "seq_len", "model_hash",
        "train.data_kind", "train.val_data_kind", "train.val_fraction", "train.steps", "train.clip",
        "train.precision", "train.seed", "train.eval_every", "train.eval_batches", "train.checkpoint_every",
        "train.out", "train.target", "train.data",
        "optim.kind", "optim.lr", "optim.beta1", "optim.beta2", "optim.eps", "optim.weight_decay",
        "schedule.kind", "schedule.warmup", NULL};
    check_attrs(TU_LLAMA_MODEL "train { data = tokens(\"t.bin\"); batch = 2; seq_len = 6; steps = 10;"
                               " schedule = constant(warmup = 2) }\n",
                want);
}
END_TEST

Suite *lower_suite(void)
{
    Suite *s = suite_create("lower");
    TCase *tc = tcase_create("lower");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, lower_verifies_for_each_block_kind);
    tcase_add_test(tc, lower_emits_every_setting_of_a_relora_spec);
    tcase_add_test(tc, lower_emits_only_the_settings_of_the_schedule_kind);
    tcase_add_test(tc, lower_fresh_byte_model_starts_at_ln_256);
    tcase_add_test(tc, lower_llama_gradients_match_finite_differences);
    tcase_add_test(tc, lower_gpt2_gradients_match_finite_differences);
    tcase_add_test(tc, lower_parallel_gradients_match_finite_differences);
    tcase_add_test(tc, kernels_match_the_graph_interpreter);
    suite_add_tcase(s, tc);
    return s;
}
