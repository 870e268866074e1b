/* The recompute pass (activation recomputation), on a two-block LLaMA with LoRA dropout
 * and a warm start, through the whole pipeline:
 *  - none, selective and full train identically in the reference executor (f64) over
 *    steps that cross the switch and a merge: recomputation only moves work;
 *  - what the backward reads from the forward: at every level no dropout output (a
 *    mask is redrawn, never kept); with full, only each block's input, the blocks'
 *    output and what follows the blocks (the final norm); with selective, no norm or
 *    activation output of a block;
 *  - the planned memory falls from none to selective to full, and the recorded extra
 *    FLOPs rise, full's staying under the blocks' forward FLOPs (docs/language.md §7.2). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memplan.h"
#include "tutil.h"

#define SPEC_FMT                                                                                                    \
    "model m {\n"                                                                                                   \
    "  vocab = 64; dim = 32; layers = 2; heads = 4; kv_heads = 2; context = 16\n"                                  \
    "  block(x) {\n"                                                                                                \
    "    h = x + attention(rmsnorm(x), rope = 10000)\n"                                                            \
    "    return h + swiglu(rmsnorm(h), hidden = 48)\n"                                                             \
    "  }\n"                                                                                                         \
    "}\n"                                                                                                           \
    "adapter lora { rank = 4; alpha = 8; dropout = 0.1; targets = [\"attention.*\", \"swiglu.*\"] }\n"             \
    "train {\n"                                                                                                     \
    "  batch = 2; seq_len = 16; steps = 100; recompute = %s\n"                                                     \
    "  schedule = relora(warmup = 1, warm_start = 2, reset_every = 2, restart_warmup = 1, prune = 0.5)\n"         \
    "}\n"

static const char *const LEVELS[3] = {"none", "selective", "full"};

static void build_level(TuModel *t, int level)
{
    char text[2048];
    snprintf(text, sizeof text, SPEC_FMT, LEVELS[level]);
    tu_build(t, text, NULL, 0);
}

/* The position of f's loss: forward nodes come before it, the backward after. */
static int loss_at(const IrFunc *f)
{
    for (int i = 0; i < f->n_nodes; i++)
        if (f->nodes[i] == f->ret)
            return i;
    ck_abort_msg("%s has no loss", f->name);
    return -1;
}

/* Whether x is computed only from globals that are no data (weights) and constants. */
static bool is_weight_only(const IrNode *x)
{
    if (x->op == IR_OP_GLOBAL)
        return true;
    if (x->op == IR_OP_CONST)
        return true;
    if (x->n_in == 0)
        return false;
    for (int k = 0; k < x->n_in; k++)
        if (!is_weight_only(x->in[k]) || (x->in[k]->op == IR_OP_GLOBAL && x->in[k]->gl[0]->cls == IR_CLASS_DATA))
            return false;
    return true;
}

/* The forward values f's backward reads (not reads of globals, not weight-only). */
static int saved_values(const IrFunc *f, const IrNode **out, int cap)
{
    int loss = loss_at(f), n = 0;
    for (int i = 0; i <= loss; i++) {
        const IrNode *v = f->nodes[i];
        if (is_weight_only(v))
            continue;
        bool read = false;
        for (int j = loss + 1; j < f->n_nodes && !read; j++)
            for (int k = 0; k < f->nodes[j]->n_in; k++)
                read = read || f->nodes[j]->in[k] == v;
        if (read && n < cap)
            out[n++] = v;
    }
    return n;
}

START_TEST(recompute_levels_train_identically)
{
    TuModel t[3];
    IrInterp *it[3];
    IrSchedule s[3];
    for (int v = 0; v < 3; v++) {
        build_level(&t[v], v);
        ck_assert(ir_schedule_from_module(t[v].m, &s[v], &t[v].d));
        it[v] = ir_interp_create(t[v].m, 7);
        ir_interp_run(it[v], tu_func(&t[v], "init"));
    }
    double worst = 0;
    int resets = 0, switches = 0;
    for (int64_t step = 0; step < 6; step++) {
        int32_t x[32], y[32];
        double loss[3];
        for (int v = 0; v < 3; v++) {
            tu_step_tokens(t[v].m, x, y, 32, (uint64_t)step);
            IrStepResult r;
            ck_assert(ir_interp_train_step(it[v], t[v].m, &s[v], x, y, step, &r));
            loss[v] = r.loss;
            if (v == 0) {
                resets += r.reset;
                switches += r.switched;
            }
        }
        for (int v = 1; v < 3; v++)
            worst = fmax(worst, fabs(loss[v] - loss[0]));
    }
    for (int i = 0; i < t[0].m->n_globals; i++) {
        const IrGlobal *g = t[0].m->globals[i];
        if (g->cls != IR_CLASS_PARAM && g->cls != IR_CLASS_FROZEN)
            continue;
        const double *a = ir_interp_global(it[0], g);
        for (int v = 1; v < 3; v++) {
            const double *b = ir_interp_global(it[v], tu_glob(&t[v], g->name));
            for (int64_t j = 0; j < ir_type_numel(g->type); j++)
                worst = fmax(worst, fabs(a[j] - b[j]));
        }
    }
    printf("recompute none / selective / full, 6 steps (switch before 2, merge after 4): largest "
           "difference in a loss or a parameter %.3g\n",
           worst);
    ck_assert_int_eq(switches, 1);
    ck_assert_int_eq(resets, 1);
    ck_assert_double_le(worst, 1e-12);
    for (int v = 0; v < 3; v++) {
        ir_interp_destroy(it[v]);
        tu_fini(&t[v]);
    }
}
END_TEST

START_TEST(recompute_backward_reads_what_each_level_keeps)
{
    static const char *const train[2] = {"train_full", "train_lora"};
    for (int v = 0; v < 3; v++) {
        TuModel t;
        build_level(&t, v);
        for (int k = 0; k < 2; k++) {
            const IrFunc *f = tu_func(&t, train[k]);
            const IrNode *saved[512];
            int n = saved_values(f, saved, 512), n_norm = 0, n_dropout = 0, n_act = 0, n_matmul = 0;
            for (int i = 0; i < n; i++) {
                IrOpKind op = saved[i]->op;
                n_dropout += op == IR_OP_DROPOUT;
                n_norm += op == IR_OP_RMSNORM && saved[i]->name && strncmp(saved[i]->name, "layers.", 7) == 0;
                n_act += op == IR_OP_SILU || op == IR_OP_MUL;
                n_matmul += op == IR_OP_MATMUL || op == IR_OP_ATTENTION;
            }
            printf("recompute %s, @%s: the backward reads %d forward values: %d block norms, %d activations "
                   "or products, %d matmul or attention outputs, %d dropouts\n",
                   LEVELS[v], f->name, n, n_norm, n_act, n_matmul, n_dropout);
            ck_assert_int_eq(n_dropout, 0);
            if (v >= 1) {
                ck_assert_int_eq(n_norm, 0);
                ck_assert_int_eq(n_act, 0);
            }
            if (v == 2) {
                /* the embedding (block 0's input), each block's output (the next one's
                 * input, the last one's the final norm's), the final norm's output */
                int blocks = 0, other = 0;
                for (int i = 0; i < n; i++) {
                    const IrNode *x = saved[i];
                    if (x->op == IR_OP_EMBEDDING || x->op == IR_OP_ADD)
                        blocks++;
                    else if (x->op == IR_OP_RMSNORM || x->op == IR_OP_RESHAPE)
                        other++;
                    else
                        ck_abort_msg("recompute full, @%s: the backward reads %%%d (%s)", f->name, x->id,
                                     ir_op_info[x->op].name);
                }
                ck_assert_int_eq(blocks, 3);
            } else {
                ck_assert_int_gt(n_matmul, 0);
            }
        }
        tu_fini(&t);
    }
}
END_TEST

START_TEST(recompute_trades_flops_for_memory)
{
    int64_t total[3], values[3];
    double flops[3][2];
    static const char *const train[2] = {"train_full", "train_lora"};
    for (int v = 0; v < 3; v++) {
        TuModel t;
        build_level(&t, v);
        int64_t bytes[IR_CLASS_COUNT];
        KPlan *plan;
        ck_assert(pass_memplan_compute(&t.a, &t.d, t.m, NULL, bytes, &plan));
        total[v] = pass_memplan_total(bytes);
        values[v] = plan->phase_bytes[K_PHASE_FULL][IR_CLASS_SCRATCH];
        for (int k = 0; k < 2; k++)
            flops[v][k] = ir_attrs_float(&t.m->attrs, arena_sprintf(&t.a, "recompute.%s.flops_per_token", train[k]), 0);
        printf("recompute %s: planned %lld bytes (full-rank phase values %lld); extra FLOPs per token %.0f "
               "(full-rank), %.0f (ReLoRA)\n",
               LEVELS[v], (long long)total[v], (long long)values[v], flops[v][0], flops[v][1]);
        tu_fini(&t);
    }
    ck_assert_int_lt(values[1], values[0]);
    ck_assert_int_lt(values[2], values[1]);
    ck_assert_int_lt(total[2], total[0]);
    /* none: only the ReLoRA phase's dropouts are redrawn (one per element each) */
    ck_assert_double_eq(flops[0][0], 0);
    ck_assert_double_gt(flops[0][1], 0);
    ck_assert_double_gt(flops[1][0], 0);
    ck_assert_double_gt(flops[2][0], flops[1][0]);
    /* full reruns at most the blocks' forward: 2 x (q, k, v, o, gate, up, down weights)
     * per token and layer, plus attention 4 T C per layer (§7.2), plus the elementwise
     * ops (a few per element; bounded here by 64 x dim per layer) */
    double d = 32, kv = 16, hid = 48, T = 16, L = 2;
    double fwd = L * (2 * (d * d + 2 * d * kv + d * d + 3 * d * hid) + 4 * T * d + 64 * d);
    ck_assert_double_lt(flops[2][0], fwd);
    ck_assert_double_gt(flops[2][0], L * 2 * (d * d + 2 * d * kv + 2 * d * hid));
}
END_TEST

Suite *recompute_suite(void)
{
    Suite *s = suite_create("recompute");
    TCase *tc = tcase_create("recompute");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, recompute_levels_train_identically);
    tcase_add_test(tc, recompute_backward_reads_what_each_level_keeps);
    tcase_add_test(tc, recompute_trades_flops_for_memory);
    suite_add_tcase(s, tc);
    return s;
}
