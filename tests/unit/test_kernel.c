/* The kernel IR's instruction table (ir/kinstr.def) and the one statement of element
 * sizes and bf16 rounding (ir_dtype_bytes, ir_dtype_store), which the buffer planner, the
 * kernel interpreter and the emitters share. Expected bf16 values are worked out by hand
 * from the bit patterns (7 stored mantissa bits, round to nearest, ties to even).
 *
 * The precision policy (ir/kprecision.c) on a small ReLoRA model, run in the kernel
 * interpreter for 8 steps across the switch and two merges, against the same model at
 * fp32: every GEMM reads bf16 operands; the merge does not (it writes W); each frozen W's
 * persistent copy equals bf16(W) exactly after init, the switch, every merge and @refresh,
 * and @train_lora converts no W; and the losses stay within 2e-2 of fp32's (bf16 rounds
 * operands to 2^-9 relative; a GEMM over k terms averages that error out). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fe.h"
#include "kernel.h"
#include "lower.h"
#include "pm.h"
#include "tutil.h"

START_TEST(kinstr_table_is_complete_and_typed)
{
    for (int op = 0; op < KI_COUNT; op++) {
        const KInstrInfo *in = &k_instr_info[op];
        ck_assert_msg(in->name && in->name[0], "instruction %d has no name", op);
        ck_assert_str_eq(k_instr_name((KInstrOp)op), in->name);
        ck_assert_msg(strchr("IFB?-", in->result) != NULL, "%s: result type '%c'", in->name, in->result);
        size_t n = strlen(in->operands);
        ck_assert_msg(n <= 3, "%s: %zu operands", in->name, n);
        for (size_t j = 0; j < n; j++)
            ck_assert_msg(strchr("IFB?", in->operands[j]) != NULL, "%s: operand type '%c'", in->name,
                          in->operands[j]);
        /* a C expression names exactly the operands the instruction has */
        for (size_t j = 0; j < 3 && in->cexpr[0]; j++) {
            char var[3] = {'$', (char)('a' + j), 0};
            ck_assert_msg((strstr(in->cexpr, var) != NULL) == (j < n), "%s: '%s' and %zu operands", in->name,
                          in->cexpr, n);
        }
        for (int o = 0; o < op; o++)
            ck_assert_msg(strcmp(k_instr_info[o].name, in->name) != 0, "two instructions named %s", in->name);
    }
    ck_assert_str_eq(k_instr_name(KI_IADD), "iadd");
    ck_assert_str_eq(k_instr_info[KI_IADD].cexpr, "$a + $b");
    ck_assert_str_eq(k_instr_name(KI_COUNT), "?");
    ck_assert(k_instr_is_store(KI_STORE_ADD) && !k_instr_is_store(KI_LOAD));
    ck_assert(k_instr_is_reduce(KI_REDUCE_MAX) && k_instr_has_buf(KI_LOAD_I));
}
END_TEST

START_TEST(dtype_bytes_state_bf16_as_two)
{
    ck_assert_int_eq(ir_dtype_bytes(IR_F32), 4);
    ck_assert_int_eq(ir_dtype_bytes(IR_I32), 4);
    ck_assert_int_eq(ir_dtype_bytes(IR_BF16), 2);
}
END_TEST

START_TEST(dtype_store_rounds_bf16_to_nearest_even)
{
    /* 1 + 2^-8 lies halfway between 1 (mantissa 0, even) and 1 + 2^-7: ties to 1 */
    ck_assert(ir_dtype_store(IR_BF16, 1.0 + 0x1p-8) == 1.0);
    /* 1 + 3 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even) */
    ck_assert(ir_dtype_store(IR_BF16, 1.0 + 3 * 0x1p-8) == 1.0 + 0x1p-6);
    /* just above a tie rounds up; just below rounds down */
    ck_assert(ir_dtype_store(IR_BF16, 1.0 + 0x1p-8 + 0x1p-20) == 1.0 + 0x1p-7);
    ck_assert(ir_dtype_store(IR_BF16, -(1.0 + 0x1p-8 - 0x1p-20)) == -1.0);
    /* 3.14159265 = 0x40490FDB in f32 -> 0x4049 -> 3.140625 */
    ck_assert(ir_dtype_store(IR_BF16, 3.14159265) == 3.140625);
    ck_assert(isnan(ir_dtype_store(IR_BF16, NAN)));
    ck_assert(isinf(ir_dtype_store(IR_BF16, INFINITY)));
    /* f32 and i32 keep the reference's f64 value */
    ck_assert(ir_dtype_store(IR_F32, 0.1) == 0.1);
    ck_assert(ir_dtype_store(IR_I32, 7.0) == 7.0);
}
END_TEST

/* ---- the precision policy ---- */

#define PREC_SPEC                                                                                     \
    TU_LLAMA_MODEL                                                                                    \
    "adapter lora { rank = 4; alpha = 8; targets = [\"attention.*\", \"swiglu.*\"] }\n"              \
    "train { batch = 2; seq_len = 6; steps = 8; target = cuda; precision = %s\n"                      \
    "  optimizer = adamw(lr = 1e-2); schedule = relora(warmup = 1, warm_start = 2, reset_every = 2,\n" \
    "  restart_warmup = 1, prune = 0.5) }\n"

static KProgram *prec_program(TuModel *t, const char *prec)
{
    char spec[2048];
    snprintf(spec, sizeof spec, PREC_SPEC, prec);
    tu_build(t, spec, NULL, 0);
    KProgram *p = k_program_build(&t->a, &t->d, t->m);
    tu_assert_ok(t, p != NULL);
    return p;
}

/* Every frozen W's persistent copy holds bf16(W). Returns how many were checked. */
static int check_copies(const KProgram *p, KInterp *it)
{
    int n = 0;
    for (int b = 0; b < p->n_bufs; b++) {
        const KBuf *kb = &p->bufs[b];
        if (kb->dtype != IR_BF16 || kb->cls != IR_CLASS_FROZEN || kb->global)
            continue;
        /* its master: the global of the name before ".bf16" */
        size_t len = strlen(kb->name) - 5;
        int w = -1;
        for (int i = 0; i < p->n_bufs && w < 0; i++)
            if (p->bufs[i].global && strlen(p->bufs[i].name) == len && !strncmp(p->bufs[i].name, kb->name, len))
                w = i;
        ck_assert_int_ge(w, 0);
        const double *x = k_interp_buf(it, w), *c = k_interp_buf(it, b);
        for (int64_t i = 0; i < kb->numel; i++)
            ck_assert_msg(c[i] == ir_dtype_store(IR_BF16, x[i]), "%s[%lld] is %g, bf16(%g) is %g", kb->name,
                          (long long)i, c[i], x[i], ir_dtype_store(IR_BF16, x[i]));
        n++;
    }
    return n;
}

static void set_global(const KProgram *p, KInterp *it, const char *name, double v)
{
    const IrGlobal *g = ir_global_find(p->m, name);
    if (g && p->global_buf[g->id] >= 0)
        k_interp_buf(it, p->global_buf[g->id])[0] = v;
}

/* 8 steps in the kernel interpreter by the schedule's plan; the losses into loss[]. */
static void prec_run(const KProgram *p, KInterp *it, double *loss, bool check)
{
    IrSchedule s;
    Diags d;
    Arena a;
    arena_init(&a);
    diag_init(&d, &a);
    ck_assert(ir_schedule_from_module(p->m, &s, &d));
    k_interp_run(it, k_program_func(p, "init"), 0);
    if (check)
        ck_assert_int_eq(check_copies(p, it), 14); /* 7 adapted linears x 2 layers */
    const IrGlobal *tok = ir_global_find(p->m, "tokens"), *tg = ir_global_find(p->m, "targets");
    for (int64_t step = 0; step < 8; step++) {
        IrStepPlan pl = ir_schedule_plan(&s, step);
        tu_fill_tokens(p->m, k_interp_buf(it, p->global_buf[tok->id]), k_interp_buf(it, p->global_buf[tg->id]),
                       0); /* one batch: the model can learn it */
        set_global(p, it, "step", (double)step);
        set_global(p, it, "lr", pl.lr);
        set_global(p, it, "adam_t", (double)pl.adam_t);
        set_global(p, it, "prune_fraction", s.prune);
        if (pl.switch_before) {
            k_interp_run(it, k_program_func(p, "switch"), step);
            if (check)
                check_copies(p, it);
        }
        const char *ph = pl.lora ? "lora" : "full";
        char fn[32];
        snprintf(fn, sizeof fn, "train_%s", ph);
        loss[step] = k_interp_run(it, k_program_func(p, fn), step);
        snprintf(fn, sizeof fn, "norm_%s", ph);
        k_interp_run(it, k_program_func(p, fn), step);
        snprintf(fn, sizeof fn, "update_%s", ph);
        k_interp_run(it, k_program_func(p, fn), step);
        if (pl.reset_after) {
            k_interp_run(it, k_program_func(p, "relora_reset"), step);
            if (check)
                check_copies(p, it);
        }
    }
    arena_fini(&a);
}

START_TEST(precision_bf16_follows_the_policy)
{
    TuModel tb, tf;
    KProgram *pb = prec_program(&tb, "bf16"), *pf = prec_program(&tf, "fp32");
    /* fp32 changes nothing: no bf16 buffer, no @refresh */
    for (int b = 0; b < pf->n_bufs; b++)
        ck_assert_int_ne(pf->bufs[b].dtype, IR_BF16);
    ck_assert_ptr_null(k_program_func(pf, "refresh"));
    ck_assert_ptr_nonnull(k_program_func(pb, "refresh"));
    /* every GEMM reads bf16 operands but the merge, which writes W in f32 */
    int gemms = 0, merges = 0;
    for (int fi = 0; fi < pb->n_funcs; fi++)
        for (int ki = 0; ki < pb->funcs[fi]->n_kernels; ki++) {
            const Kernel *k = pb->funcs[fi]->kernels[ki];
            if (k->kind == K_GEMM) {
                bool merge = pb->bufs[k->gemm.c].global && pb->bufs[k->gemm.c].cls == IR_CLASS_FROZEN;
                IrDType want = merge ? IR_F32 : IR_BF16;
                ck_assert_msg(pb->bufs[k->gemm.a].dtype == want && pb->bufs[k->gemm.b].dtype == want, "%s", k->name);
                ck_assert_int_eq(pb->bufs[k->gemm.c].dtype, IR_F32);
                gemms++;
                merges += merge;
            }
            /* @train_lora reads the persistent copies: it converts no frozen W */
            if (!strcmp(pb->funcs[fi]->name, "train_lora") && k->kind == K_LOOP && strstr(k->name, "_cvt"))
                for (int i = 0; i < k->n_code; i++)
                    if (k->code[i].op == KI_LOAD)
                        ck_assert_msg(!pb->bufs[k->code[i].buf].global ||
                                          pb->bufs[k->code[i].buf].cls != IR_CLASS_FROZEN,
                                      "%s converts %s", k->name, pb->bufs[k->code[i].buf].name);
        }
    ck_assert_int_gt(gemms, 50);
    ck_assert_int_eq(merges, 14);
    KInterp *ib = k_interp_create(pb, 11), *itf = k_interp_create(pf, 11);
    double lb[8], lf[8];
    prec_run(pb, ib, lb, true);
    prec_run(pf, itf, lf, false);
    for (int i = 0; i < 8; i++)
        ck_assert_msg(fabs(lb[i] - lf[i]) <= 2e-2 * fabs(lf[i]), "step %d: loss %g at bf16, %g at fp32", i, lb[i], lf[i]);
    ck_assert_msg(lb[7] < lb[0], "the bf16 model does not learn: %g -> %g", lb[0], lb[7]);
    /* @refresh after the masters changed (as a checkpoint load does) restores the copies */
    for (int b = 0; b < pb->n_bufs; b++)
        if (pb->bufs[b].global && pb->bufs[b].cls == IR_CLASS_FROZEN && pb->bufs[b].dtype == IR_F32)
            k_interp_buf(ib, b)[0] += 0.25;
    k_interp_run(ib, k_program_func(pb, "refresh"), 0);
    ck_assert_int_eq(check_copies(pb, ib), 14);
    k_interp_destroy(ib);
    k_interp_destroy(itf);
    tu_fini(&tb);
    tu_fini(&tf);
}
END_TEST

Suite *kernel_suite(void)
{
    Suite *s = suite_create("kernel");
    TCase *tc = tcase_create("kernel");
    tcase_add_test(tc, kinstr_table_is_complete_and_typed);
    tcase_add_test(tc, dtype_bytes_state_bf16_as_two);
    tcase_add_test(tc, dtype_store_rounds_bf16_to_nearest_even);
    tcase_add_test(tc, precision_bf16_follows_the_policy);
    suite_add_tcase(s, tc);
    return s;
}
