/* The optimizer pass, in the reference executor (f64):
 *  - each train function gets a norm and an update function; the update reads the
 *    learning rate and Adam's step from the host-written globals @lr and @adam_t, so no
 *    schedule is compiled into the graph (the schedule itself: test_schedule.c);
 *  - @grad_norm is the L2 norm of every stored gradient; an AdamW step at t = 6 moves
 *    each entry as the closed form with bias corrections, g' = g * min(1, clip / (norm + 1e-6));
 *  - weight decay only on decay-flagged globals; clip = 0 gives gscale 1. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tutil.h"

#define SPEC_FMT                                                                                                    \
    "model m {\n"                                                                                                   \
    "  vocab = 32; dim = 8; layers = 1; heads = 2; context = 8\n"                                                  \
    "  block(x) {\n"                                                                                                \
    "    h = x + attention(rmsnorm(x), rope = 10000)\n"                                                            \
    "    return h + swiglu(rmsnorm(h), hidden = 16)\n"                                                             \
    "  }\n"                                                                                                         \
    "}\n"                                                                                                           \
    "adapter lora { rank = 2; alpha = 4; dropout = 0.0; targets = [\"attention.*\", \"swiglu.*\"]\n"             \
    "               trainable = [\"embedding\", \"norms\", \"head\"] }\n"                                           \
    "train {\n"                                                                                                     \
    "  batch = 2; seq_len = 4; steps = 200; clip = %s\n"                                                            \
    "  optimizer = adamw(lr = 3e-3, betas = (0.9, 0.999), eps = 1e-8, weight_decay = 0.1,\n"                       \
    "                    no_decay = [\"norms\", \"biases\", \"embedding\"])\n"                                         \
    "  schedule = relora(warmup = 10, warm_start = %d, reset_every = 50, restart_warmup = 10,\n"                   \
    "                    min_lr_ratio = 0.1, prune = 0.99, lr = 6e-3)\n"                                              \
    "}\n"

static void build(TuModel *bt, const char *clip, int warm_start)
{
    char text[2048];
    snprintf(text, sizeof text, SPEC_FMT, clip, warm_start);
    tu_build(bt, text, tu_relora_passes, TU_N_RELORA_PASSES);
}

static int count_ops(const IrFunc *f, IrOpKind op)
{
    int n = 0;
    for (int i = 0; i < f->n_nodes; i++)
        n += f->nodes[i]->op == op;
    return n;
}

START_TEST(optimizer_builds_norm_and_update_functions)
{
    TuModel bt;
    build(&bt, "1.0", 20);
    IrModule *m = bt.m;
    static const char *const phases[2] = {"full", "lora"};
    for (int p = 0; p < 2; p++) {
        const IrFunc *train = ir_func_find(m, arena_sprintf(&bt.a, "train_%s", phases[p]));
        const IrFunc *norm = ir_func_find(m, arena_sprintf(&bt.a, "norm_%s", phases[p]));
        const IrFunc *update = ir_func_find(m, arena_sprintf(&bt.a, "update_%s", phases[p]));
        ck_assert(train && norm && update);
        ck_assert_int_eq(count_ops(train, IR_OP_ADAMW) + count_ops(train, IR_OP_GLOBAL_NORM), 0);
        ck_assert_int_eq(count_ops(norm, IR_OP_GLOBAL_NORM), 1);
        ck_assert_int_eq(norm->ret->op, IR_OP_GLOBAL_NORM);
        ck_assert_int_eq(count_ops(update, IR_OP_CLIP_SCALE), 1);
        /* every adamw takes @lr and @adam_t as they are: the schedule is run-time data */
        int n_adamw = 0;
        for (int i = 0; i < update->n_nodes; i++) {
            const IrNode *n = update->nodes[i];
            if (n->op != IR_OP_ADAMW)
                continue;
            n_adamw++;
            ck_assert(n->in[1]->op == IR_OP_GLOBAL && strcmp(n->in[1]->gl[0]->name, "lr") == 0);
            ck_assert(n->in[3]->op == IR_OP_GLOBAL && strcmp(n->in[3]->gl[0]->name, "adam_t") == 0);
        }
        ck_assert_int_eq(n_adamw, p == 0 ? 1 + 3 + 7 + 1 : 14 + 1 + 3 + 1);
    }
    ck_assert_int_eq(tu_glob(&bt, "lr")->cls, IR_CLASS_DATA);
    ck_assert_int_eq(tu_glob(&bt, "adam_t")->cls, IR_CLASS_DATA);
    ck_assert_int_eq(tu_glob(&bt, "adam_t")->type.dtype, IR_I32);
    ck_assert_int_eq(tu_glob(&bt, "grad_norm")->cls, IR_CLASS_DATA);
    tu_fini(&bt);
}
END_TEST

START_TEST(optimizer_first_adamw_step_and_clipping)
{
    TuModel bt;
    build(&bt, "0.05", 20);
    IrModule *m = bt.m;
    IrInterp *it = ir_interp_create(m, 2);
    ir_interp_run(it, ir_func_find(m, "init"));
    ir_interp_run(it, ir_func_find(m, "switch"));
    tu_set_tokens(it, bt.m, 3);
    /* Snapshot every global, run the first ReLoRA step (t = 1). */
    double **before = calloc((size_t)m->n_globals, sizeof(double *));
    for (int i = 0; i < m->n_globals; i++) {
        int64_t n = ir_type_numel(m->globals[i]->type);
        before[i] = malloc(sizeof(double) * (size_t)n);
        memcpy(before[i], ir_interp_global(it, m->globals[i]), sizeof(double) * (size_t)n);
    }
    const double lr = 1.25e-3;
    ir_interp_global(it, tu_glob(&bt, "step"))[0] = 25;
    ir_interp_global(it, tu_glob(&bt, "lr"))[0] = lr;
    ir_interp_global(it, tu_glob(&bt, "adam_t"))[0] = 6; /* bias corrections at t = 6 */
    ir_interp_run(it, ir_func_find(m, "train_lora"));
    double norm = ir_interp_run(it, ir_func_find(m, "norm_lora"));
    ck_assert(norm == ir_interp_global(it, tu_glob(&bt, "grad_norm"))[0]);
    ir_interp_run(it, ir_func_find(m, "update_lora"));
    double ss = 0;
    for (int i = 0; i < m->n_globals; i++)
        if (m->globals[i]->cls == IR_CLASS_GRAD && ir_attrs_get(&m->globals[i]->attrs, "grad_of") &&
            ir_global_find(m, ir_attrs_str(&m->globals[i]->attrs, "grad_of", ""))->cls != IR_CLASS_FROZEN)
            for (int64_t j = 0; j < ir_type_numel(m->globals[i]->type); j++)
                ss += ir_interp_global(it, m->globals[i])[j] * ir_interp_global(it, m->globals[i])[j];
    double gs = fmin(1.0, 0.05 / (norm + 1e-6));
    printf("first ReLoRA step: lr %.6e, grad norm %.10f (sqrt of the sum over stored gradients %.10f), gscale %.6f\n",
           lr, norm, sqrt(ss), gs);
    ck_assert_double_eq_tol(norm, sqrt(ss), 1e-12 * norm);
    ck_assert_double_lt(gs, 1.0); /* clipping active */
    /* Every trainable moved by the closed-form first AdamW step at t = 6; frozen W did not. */
    double worst = 0;
    int n_checked = 0, n_frozen = 0;
    double c1 = 1 - pow(0.9, 6), c2 = 1 - pow(0.999, 6);
    for (int i = 0; i < m->n_globals; i++) {
        IrGlobal *p = m->globals[i];
        const double *now = ir_interp_global(it, p);
        int64_t n = ir_type_numel(p->type);
        if (p->cls == IR_CLASS_FROZEN) {
            ck_assert_int_eq(memcmp(now, before[i], sizeof(double) * (size_t)n), 0);
            n_frozen++;
            continue;
        }
        IrGlobal *gg = ir_global_find(m, arena_sprintf(&bt.a, "%s.grad", p->name));
        if (p->cls != IR_CLASS_PARAM || !gg)
            continue;
        double wd = (p->flags & IR_G_DECAY) ? 0.1 : 0.0;
        for (int64_t j = 0; j < n; j++) {
            double g = ir_interp_global(it, gg)[j] * gs;
            double mh = 0.1 * g / c1, vh = 0.001 * g * g / c2;
            double want = before[i][j] - lr * wd * before[i][j] - lr * mh / (sqrt(vh) + 1e-8);
            worst = fmax(worst, fabs(now[j] - want));
        }
        n_checked++;
    }
    printf("first ReLoRA step: %d trainables match the closed-form AdamW update (largest difference %.3g); %d "
           "frozen W unchanged\n",
           n_checked, worst, n_frozen);
    ck_assert_int_eq(n_checked, 14 + 1 + 3 + 1); /* adapters, embedding, norms, head */
    ck_assert_int_eq(n_frozen, 7);
    ck_assert_double_lt(worst, 1e-15);
    for (int i = 0; i < m->n_globals; i++)
        free(before[i]);
    free(before);
    ir_interp_destroy(it);
    tu_fini(&bt);
}
END_TEST

START_TEST(optimizer_decay_flags_and_no_clip)
{
    TuModel bt;
    build(&bt, "0.0", 0);
    ck_assert_ptr_null(ir_func_find(bt.m, "train_full"));
    const IrFunc *f = ir_func_find(bt.m, "update_lora");
    int n_adamw = 0, n_decay = 0, n_clip = 0;
    for (int i = 0; i < f->n_nodes; i++) {
        const IrNode *n = f->nodes[i];
        n_clip += n->op == IR_OP_CLIP_SCALE;
        if (n->op != IR_OP_ADAMW)
            continue;
        n_adamw++;
        double wd = ir_attrs_float(&n->attrs, "weight_decay", -1);
        ck_assert_double_eq(wd, (n->gl[0]->flags & IR_G_DECAY) ? 0.1 : 0.0);
        n_decay += wd > 0;
        ck_assert_int_eq(n->in[2]->op, IR_OP_CONST); /* clip = 0: gscale is 1 */
        ck_assert_double_eq(ir_attrs_float(&n->in[2]->attrs, "value", 0), 1.0);
        ck_assert_str_eq(ir_attrs_str(&n->gl[1]->attrs, "moment_of", ""), n->gl[0]->name);
        ck_assert(n->gl[1]->flags & IR_G_MOMENT);
        ck_assert_int_eq(n->gl[1]->cls, IR_CLASS_OPTIM);
    }
    printf("update_lora without warm start: %d adamw (%d with weight decay: the head), %d clip_scale\n", n_adamw,
           n_decay, n_clip);
    ck_assert_int_eq(n_adamw, 19);
    ck_assert_int_eq(n_decay, 1);
    ck_assert_int_eq(n_clip, 0);
    tu_fini(&bt);
}
END_TEST

Suite *optimizer_suite(void)
{
    Suite *s = suite_create("optimizer");
    TCase *tc = tcase_create("optimizer");
    tcase_add_test(tc, optimizer_builds_norm_and_update_functions);
    tcase_add_test(tc, optimizer_first_adamw_step_and_clipping);
    tcase_add_test(tc, optimizer_decay_flags_and_no_clip);
    suite_add_tcase(s, tc);
    return s;
}
