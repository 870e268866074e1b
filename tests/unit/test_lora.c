/* lora-insert, lora-fuse and lora-fuse-grad, in the reference executor (f64):
 *  - the functions and globals lora-insert creates, with their links and flags;
 *  - a fresh adapted model equals the base model (A Kaiming-uniform, B = 0);
 *  - adapter gradients match central finite differences;
 *  - fused and unfused graphs give the same loss and gradients (1e-10);
 *  - @train_lora has no W gradient, no W moment and no GEMM producing an [O,I] or
 *    [O+R,I] weight gradient; dA is an [R,I] GEMM per adapter;
 *  - with LoRA dropout > 0 nothing is fused. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tutil.h"

#define SPEC_FMT                                                                                                    \
    "model m {\n"                                                                                                   \
    "  vocab = 64; dim = 24; layers = 2; heads = 2; context = 8\n"                                                 \
    "  block(x) {\n"                                                                                                \
    "    h = x + attention(rmsnorm(x), rope = 10000)\n"                                                            \
    "    return h + swiglu(rmsnorm(h), hidden = 40)\n"                                                             \
    "  }\n"                                                                                                         \
    "}\n"                                                                                                           \
    "adapter lora {\n"                                                                                              \
    "  rank = 4; alpha = 8; dropout = %s\n"                                                                         \
    "  targets = [\"attention.*\", \"swiglu.*\"]\n"                                                                 \
    "  trainable = [\"embedding\", \"norms\", \"head\"]\n"                                                          \
    "}\n"                                                                                                           \
    "train {\n"                                                                                                     \
    "  batch = 2; seq_len = 6; steps = 100; clip = 1.0\n"                                                           \
    "  schedule = relora(warmup = 5, warm_start = %d, reset_every = 20, restart_warmup = 5, lr = 2e-3)\n"        \
    "}\n"

static void build(TuModel *bt, const char *dropout, int warm_start, const char *const *passes, int n_passes)
{
    char text[2048];
    snprintf(text, sizeof text, SPEC_FMT, dropout, warm_start);
    tu_build(bt, text, passes, n_passes);
}

static const char *const UNFUSED[] = {"lora-insert", "autodiff"};
static const char *const FUSED[] = {"lora-insert", "lora-fuse", "autodiff", "lora-fuse-grad"};

START_TEST(lora_insert_makes_functions_adapters_and_links)
{
    TuModel bt;
    build(&bt, "0.1", 10, tu_relora_passes, TU_N_RELORA_PASSES);
    const char *want[] = {"init",      "train_full",  "eval",      "logits",      "train_lora",  "norm_full",
                          "update_full", "norm_lora", "update_lora", "switch", "relora_reset"};
    ck_assert_int_eq(bt.m->n_funcs, 11);
    for (int i = 0; i < 11; i++)
        ck_assert_ptr_nonnull(ir_func_find(bt.m, want[i]));
    ck_assert_ptr_null(ir_func_find(bt.m, "train"));
    IrGlobal *w = tu_glob(&bt, "layers.1.swiglu.down.weight"), *a = tu_glob(&bt, "layers.1.swiglu.down.lora_a");
    IrGlobal *b = tu_glob(&bt, "layers.1.swiglu.down.lora_b");
    ck_assert_int_eq(a->type.dim[0], 4);
    ck_assert_int_eq(a->type.dim[1], 40); /* [R, I] */
    ck_assert_int_eq(b->type.dim[0], 24);
    ck_assert_int_eq(b->type.dim[1], 4); /* [O, R] */
    ck_assert_int_eq(a->cls, IR_CLASS_PARAM);
    ck_assert_uint_eq(a->flags, IR_G_TRAINABLE | IR_G_ADAPTER);
    ck_assert_uint_eq(b->flags, IR_G_TRAINABLE | IR_G_ADAPTER);
    ck_assert_str_eq(ir_attrs_str(&a->attrs, "lora_of", ""), w->name);
    ck_assert_str_eq(ir_attrs_str(&w->attrs, "lora_a", ""), a->name);
    ck_assert_str_eq(ir_attrs_str(&w->attrs, "lora_b", ""), b->name);
    ck_assert_double_eq(ir_attrs_float(&w->attrs, "lora_scale", 0), 2.0);
    int n_adapters = 0, n_dropout = 0;
    for (int i = 0; i < bt.m->n_globals; i++)
        n_adapters += (bt.m->globals[i]->flags & IR_G_ADAPTER) != 0;
    const IrFunc *fl = ir_func_find(bt.m, "train_lora"), *ev = ir_func_find(bt.m, "eval");
    for (int i = 0; i < fl->n_nodes; i++)
        n_dropout += fl->nodes[i]->op == IR_OP_DROPOUT && fl->nodes[i]->type.rank >= 0 &&
                     fl->nodes[i]->in[0]->op != IR_OP_DROPOUT;
    for (int i = 0; i < ev->n_nodes; i++)
        ck_assert_int_ne(ev->nodes[i]->op, IR_OP_DROPOUT);
    printf("lora-insert: %d adapter globals (2 layers x 7 linears x A,B); @train_lora has %d dropout nodes "
           "(forward and their gradient), @eval none\n",
           n_adapters, n_dropout);
    ck_assert_int_eq(n_adapters, 28);
    ck_assert_int_ge(n_dropout, 14);

    /* @init: A ~ U(±1/sqrt(I)) nonzero, B = 0. */
    IrInterp *it = ir_interp_create(bt.m, 3);
    ir_interp_run(it, ir_func_find(bt.m, "init"));
    double amax = 0, bmax = 0;
    for (int64_t j = 0; j < ir_type_numel(a->type); j++)
        amax = fmax(amax, fabs(ir_interp_global(it, a)[j]));
    for (int64_t j = 0; j < ir_type_numel(b->type); j++)
        bmax = fmax(bmax, fabs(ir_interp_global(it, b)[j]));
    printf("lora-insert: after @init max|A| = %.4f (bound 1/sqrt(40) = %.4f), max|B| = %g\n", amax,
           1 / sqrt(40.0), bmax);
    ck_assert_double_gt(amax, 0.5 / sqrt(40.0));
    ck_assert_double_le(amax, 1 / sqrt(40.0));
    ck_assert_double_eq(bmax, 0);
    ir_interp_destroy(it);
    tu_fini(&bt);
}
END_TEST

START_TEST(lora_insert_fresh_adapters_keep_the_base_function)
{
    TuModel bt;
    build(&bt, "0.0", 10, UNFUSED, 2);
    IrInterp *it = ir_interp_create(bt.m, 3);
    ir_interp_run(it, ir_func_find(bt.m, "init"));
    tu_set_tokens(it, bt.m, 1);
    double full = ir_interp_run(it, ir_func_find(bt.m, "train_full"));
    double lora = ir_interp_run(it, ir_func_find(bt.m, "train_lora"));
    double ev = ir_interp_run(it, ir_func_find(bt.m, "eval"));
    printf("fresh adapters: train_full %.15f, train_lora %.15f, eval %.15f\n", full, lora, ev);
    ck_assert_double_eq_tol(full, lora, 1e-13);
    ck_assert_double_eq_tol(full, ev, 1e-13);
    /* Both factors get a gradient (B = 0 gives A none, but B's is nonzero; the
     * reference code's A = B = 0 gives neither). */
    double gb = 0;
    IrGlobal *bg = tu_glob(&bt, "layers.0.attention.q.lora_b.grad");
    for (int64_t j = 0; j < ir_type_numel(bg->type); j++)
        gb = fmax(gb, fabs(ir_interp_global(it, bg)[j]));
    ck_assert_double_gt(gb, 0);
    ir_interp_destroy(it);
    tu_fini(&bt);
}
END_TEST

START_TEST(lora_adapter_gradients_match_finite_differences)
{
    TuModel bt;
    build(&bt, "0.1", 0, FUSED, 4);
    IrFunc *f = ir_func_find(bt.m, "train_lora");
    IrInterp *it = ir_interp_create(bt.m, 11);
    ir_interp_run(it, ir_func_find(bt.m, "init"));
    tu_perturb_params(it, bt.m);
    tu_set_tokens(it, bt.m, 2);
    ir_interp_global(it, tu_glob(&bt, "step"))[0] = 3;
    double worst = 0;
    int n = 0;
    for (int i = 0; i < bt.m->n_globals; i++) {
        IrGlobal *g = bt.m->globals[i];
        if (!(g->flags & IR_G_ADAPTER))
            continue;
        IrGlobal *gg = tu_glob(&bt, arena_sprintf(&bt.a, "%s.grad", g->name));
        ir_interp_run(it, f);
        double *w = ir_interp_global(it, g);
        for (int s = 0; s < 3; s++) {
            int64_t j = (int64_t)(ir_rng_u64(3, (uint64_t)i, (uint64_t)s) % (uint64_t)ir_type_numel(g->type));
            ir_interp_run(it, f);
            double an = ir_interp_global(it, gg)[j];
            double fd = tu_central_difference(it, f, w, j, 1e-5);
            worst = fmax(worst, fabs(fd - an) / fmax(fmax(fabs(fd), fabs(an)), 1e-4));
            n++;
        }
    }
    printf("adapter gradients (dropout 0.1, step 3): %d entries, largest relative error vs finite differences "
           "%.3g\n",
           n, worst);
    ck_assert_double_lt(worst, 5e-6); /* central differences, h = 1e-5 */
    ir_interp_destroy(it);
    tu_fini(&bt);
}
END_TEST

START_TEST(lora_fused_equals_unfused)
{
    TuModel u, fz;
    build(&u, "0.0", 0, UNFUSED, 2);
    build(&fz, "0.0", 0, FUSED, 4);
    ck_assert_int_eq(u.m->n_globals, fz.m->n_globals);
    IrInterp *iu = ir_interp_create(u.m, 21), *ifz = ir_interp_create(fz.m, 21);
    ir_interp_run(iu, ir_func_find(u.m, "init"));
    ir_interp_run(ifz, ir_func_find(fz.m, "init"));
    tu_perturb_params(iu, u.m);
    tu_perturb_params(ifz, fz.m);
    tu_set_tokens(iu, u.m, 4);
    tu_set_tokens(ifz, fz.m, 4);
    double lu = ir_interp_run(iu, ir_func_find(u.m, "train_lora"));
    double lf = ir_interp_run(ifz, ir_func_find(fz.m, "train_lora"));
    double eu = ir_interp_run(iu, ir_func_find(u.m, "eval"));
    double ef = ir_interp_run(ifz, ir_func_find(fz.m, "eval"));
    double worst = 0;
    int n_grads = 0;
    for (int i = 0; i < u.m->n_globals; i++) {
        IrGlobal *g = u.m->globals[i];
        if (g->cls != IR_CLASS_GRAD)
            continue;
        IrGlobal *g2 = tu_glob(&fz, g->name);
        const double *a = ir_interp_global(iu, g), *b = ir_interp_global(ifz, g2);
        double scale = 0;
        for (int64_t j = 0; j < ir_type_numel(g->type); j++)
            scale = fmax(scale, fabs(a[j]));
        for (int64_t j = 0; j < ir_type_numel(g->type); j++)
            worst = fmax(worst, fabs(a[j] - b[j]) / fmax(scale, 1e-300));
        n_grads++;
    }
    printf("fused vs unfused: train_lora loss %.15f vs %.15f, eval %.15f vs %.15f, %d gradients, largest "
           "relative difference %.3g\n",
           lu, lf, eu, ef, n_grads, worst);
    ck_assert_double_eq_tol(lu, lf, 1e-10 * fabs(lu));
    ck_assert_double_eq_tol(eu, ef, 1e-10 * fabs(eu));
    ck_assert_int_eq(n_grads, 28 + 1 + 2 * 2 + 1 + 1); /* adapters, embedding, 2x2 block norms, final norm, head */
    ck_assert_double_lt(worst, 1e-10);
    ir_interp_destroy(iu);
    ir_interp_destroy(ifz);
    tu_fini(&u);
    tu_fini(&fz);
}
END_TEST

static bool is_wshape(const IrModule *m, IrType t, int64_t extra)
{
    if (t.rank != 2)
        return false;
    for (int i = 0; i < m->n_globals; i++) {
        const IrGlobal *g = m->globals[i];
        if (ir_attrs_get(&g->attrs, "lora_a") && t.dim[0] == g->type.dim[0] + extra * ir_attrs_int(&g->attrs, "lora_rank", 0) &&
            t.dim[1] == g->type.dim[1])
            return true;
    }
    return false;
}

START_TEST(lora_train_lora_has_no_w_gradient)
{
    TuModel bt;
    build(&bt, "0.0", 10, tu_relora_passes, TU_N_RELORA_PASSES);
    const IrModule *m = bt.m;
    const IrFunc *f = ir_func_find(m, "train_lora");
    int concat = 0, w_gemm = 0, wa_gemm = 0, da_gemm = 0, w_refs = 0;
    for (int i = 0; i < f->n_nodes; i++) {
        const IrNode *n = f->nodes[i];
        concat += n->op == IR_OP_CONCAT;
        if (n->op == IR_OP_MATMUL && n->type.rank == 2) {
            w_gemm += is_wshape(m, n->type, 0);
            wa_gemm += is_wshape(m, n->type, 1);
            for (int g = 0; g < m->n_globals; g++)
                if ((m->globals[g]->flags & IR_G_ADAPTER) && strstr(m->globals[g]->name, ".lora_a") &&
                    ir_type_eq(n->type, m->globals[g]->type)) {
                    da_gemm++;
                    break;
                }
        }
        for (int k = 0; k < n->n_gl; k++) {
            const IrGlobal *g = n->gl[k];
            const char *of = ir_attrs_str(&g->attrs, g->cls == IR_CLASS_GRAD ? "grad_of" : "moment_of", NULL);
            const IrGlobal *p = of ? ir_global_find(m, of) : NULL;
            if (p && p->cls == IR_CLASS_FROZEN)
                w_refs++;
        }
    }
    int w_grads = 0, w_moments = 0;
    for (int i = 0; i < m->n_globals; i++) {
        const IrGlobal *g = m->globals[i];
        const IrGlobal *p = ir_global_find(m, ir_attrs_str(&g->attrs, "grad_of", ir_attrs_str(&g->attrs, "moment_of", "")));
        if (p && p->cls == IR_CLASS_FROZEN) {
            w_grads += g->cls == IR_CLASS_GRAD;
            w_moments += g->cls == IR_CLASS_OPTIM;
        }
    }
    printf("train_lora: %d nodes, %d concats, %d dA GEMMs [R,I]; GEMMs shaped [O,I]: %d, [O+R,I]: %d; references to "
           "a W gradient or W moment: %d (the module has %d W gradients and %d W moments, all from train_full)\n",
           f->n_nodes, concat, da_gemm, w_gemm, wa_gemm, w_refs, w_grads, w_moments);
    ck_assert_int_eq(concat, 14);
    ck_assert_int_eq(w_gemm, 0);
    ck_assert_int_eq(wa_gemm, 0);
    ck_assert_int_eq(da_gemm, 14);
    ck_assert_int_eq(w_refs, 0);
    ck_assert_int_eq(w_grads, 14);
    ck_assert_int_eq(w_moments, 28);
    tu_fini(&bt);
}
END_TEST

START_TEST(lora_fuse_skips_linears_with_dropout)
{
    TuModel bt;
    build(&bt, "0.1", 10, FUSED, 4);
    int concat = 0;
    const IrFunc *f = ir_func_find(bt.m, "train_lora"), *ev = ir_func_find(bt.m, "eval");
    for (int i = 0; i < f->n_nodes; i++)
        concat += f->nodes[i]->op == IR_OP_CONCAT;
    ck_assert_int_eq(concat, 0);
    concat = 0;
    for (int i = 0; i < ev->n_nodes; i++)
        concat += ev->nodes[i]->op == IR_OP_CONCAT;
    ck_assert_int_eq(concat, 14); /* @eval has no dropout: fused */
    tu_fini(&bt);
}
END_TEST

Suite *lora_suite(void)
{
    Suite *s = suite_create("lora");
    TCase *tc = tcase_create("lora");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, lora_insert_makes_functions_adapters_and_links);
    tcase_add_test(tc, lora_insert_fresh_adapters_keep_the_base_function);
    tcase_add_test(tc, lora_adapter_gradients_match_finite_differences);
    tcase_add_test(tc, lora_fused_equals_unfused);
    tcase_add_test(tc, lora_train_lora_has_no_w_gradient);
    tcase_add_test(tc, lora_fuse_skips_linears_with_dropout);
    suite_add_tcase(s, tc);
    return s;
}
