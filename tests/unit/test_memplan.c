/* The memory plan (ir/kplan.c) and the memplan pass, on models built by the whole
 * pipeline from inline spec text:
 *  - no two buffers live during one kernel share a byte (all pairs checked), except an
 *    in-place pair at the same offset;
 *  - the kernels still compute the graph interpreter's results when every buffer really
 *    lives in its pool at its planned offset (a pooled copy of the program, 1e-12);
 *  - the plan is smaller than the sequential layout;
 *  - freezing weights lowers the planned peak by their gradient and optimizer memory;
 *  - in place happens exactly where docs/passes.md says it is safe;
 *  - the pass records mem.<class>.bytes equal to the plan's pools. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "memplan.h"
#include "tutil.h"

/* tu_spec_llama with LoRA adapters on every block linear, ReLoRA from step 0. */
static const char *const LORA =
    TU_LLAMA_MODEL
    "adapter lora {\n"
    "  rank = 4; alpha = 8; dropout = 0.1\n"
    "  targets = [\"attention.q\", \"attention.k\", \"attention.v\", \"attention.o\", \"swiglu.gate\", "
    "\"swiglu.up\", \"swiglu.down\"]\n"
    "  trainable = [\"embedding\", \"norms\", \"head\"]\n"
    "}\n"
    "train { batch = 2; seq_len = 6; steps = 100\n"
    "  schedule = relora(warmup = 5, warm_start = 0, reset_every = 20, restart_warmup = 2) }\n";

/* The whole pipeline, memory plan included. */
static void build(TuModel *l, const char *text) { tu_build(l, text, NULL, 0); }

static const char *train_name(const IrModule *m)
{
    return ir_func_find(m, "train_lora") ? "train_lora" : "train_full";
}

static int64_t total(const int64_t *bytes)
{
    int64_t s = 0;
    for (int c = 0; c < IR_CLASS_COUNT; c++)
        s += bytes[c];
    return s;
}

/* ---- no overlap ---- */

static bool bytes_overlap(const KBuf *x, const KBuf *y)
{
    return x->cls == y->cls && x->offset < y->offset + y->numel * 4 && y->offset < x->offset + x->numel * 4;
}

/* Pairs of buffers live during one kernel that share bytes, other than in-place pairs. */
static int count_conflicts(const KProgram *p, const KPlan *plan, int *n_live_pairs)
{
    int bad = 0;
    *n_live_pairs = 0;
    for (int i = 0; i < p->n_bufs; i++)
        for (int j = i + 1; j < p->n_bufs; j++) {
            if (!k_live_overlap(&plan->live[i], &plan->live[j]))
                continue;
            ++*n_live_pairs;
            if (!bytes_overlap(&p->bufs[i], &p->bufs[j]))
                continue;
            bool in_place = (plan->in_place_of[j] == i || plan->in_place_of[i] == j) &&
                            p->bufs[i].offset == p->bufs[j].offset;
            if (!in_place) {
                printf("conflict: %s [%lld, +%lld) and %s [%lld, +%lld)\n", p->bufs[i].name,
                       (long long)p->bufs[i].offset, (long long)p->bufs[i].numel * 4, p->bufs[j].name,
                       (long long)p->bufs[j].offset, (long long)p->bufs[j].numel * 4);
                bad++;
            }
        }
    return bad;
}

static void check_no_overlap(const char *text, const char *label)
{
    TuModel l;
    build(&l, text);
    KProgram *p = k_program_build(&l.a, &l.d, l.m);
    ck_assert_ptr_nonnull(p);
    const KPlanOptions variants[] = {{0}, {.first_fit = true}, {.no_in_place = true}, {.no_reuse = true}};
    for (int v = 0; v < 4; v++) {
        KPlan *plan = k_program_plan(p, &variants[v]);
        int pairs = 0, bad = count_conflicts(p, plan, &pairs);
        printf("%s: plan variant %d: %d buffers, %d pairs live together, %d in place, %d conflicts\n", label, v,
               p->n_bufs, pairs, plan->n_in_place, bad);
        ck_assert_int_eq(bad, 0);
        for (int i = 0; i < p->n_bufs; i++) {
            ck_assert_int_eq(p->bufs[i].offset % 64, 0);
            ck_assert_int_le(p->bufs[i].offset + p->bufs[i].numel * 4, p->pool_bytes[p->bufs[i].cls]);
        }
    }
    tu_fini(&l);
}

START_TEST(memplan_live_buffers_never_share_bytes)
{
    check_no_overlap(tu_spec_llama, "llama");
    check_no_overlap(tu_spec_gpt2, "gpt2");
    check_no_overlap(LORA, "lora");
}
END_TEST

/* ---- pooled execution ---- */

/* A copy of p in which every buffer is its class's pool (one KBuf of pool_bytes) at its
 * planned offset: loads and stores add the offset, GEMMs shift their base, and runtime
 * calls work on a private copy that is filled from the pool before and written back
 * after. Run by the kernel interpreter, it computes what the planned program computes. */
typedef struct {
    KProgram *q;
    const KProgram *p;
    int *priv; /* original buffer -> private copy for calls, or -1 */
} Pooled;

static int64_t elem_off(const KProgram *p, int buf) { return p->bufs[buf].offset / 4; }

static int q_buf(KProgram *q, const char *name, int64_t numel, IrMemClass cls)
{
    if (q->n_bufs == q->cap_bufs) {
        int cap = q->cap_bufs ? q->cap_bufs * 2 : 16;
        q->bufs = arena_grow(q->arena, q->bufs, (size_t)q->n_bufs, (size_t)cap, sizeof *q->bufs);
        q->cap_bufs = cap;
    }
    KBuf *b = &q->bufs[q->n_bufs];
    memset(b, 0, sizeof *b);
    b->id = q->n_bufs;
    b->name = name;
    b->dtype = IR_F32;
    b->numel = numel > 0 ? numel : 1;
    b->cls = cls;
    return q->n_bufs++;
}

static void add_kernel(KFunc *f, Kernel *k, Arena *a)
{
    if (f->n_kernels == f->cap_kernels) {
        int cap = f->cap_kernels ? f->cap_kernels * 2 : 64;
        f->kernels = arena_grow(a, f->kernels, (size_t)f->n_kernels, (size_t)cap, sizeof *f->kernels);
        f->cap_kernels = cap;
    }
    k->id = f->n_kernels;
    f->kernels[f->n_kernels++] = k;
}

static KInstr instr(KInstrOp op, int a, int b, int buf)
{
    KInstr in;
    memset(&in, 0, sizeof in);
    in.op = op;
    in.a = a;
    in.b = b;
    in.c = -1;
    in.buf = buf;
    return in;
}

/* dst[i] = src[src_off + i] for i < n, or dst[dst_off + i] = src[i]. */
static Kernel *copy_kernel(Arena *a, int src, int64_t src_off, int dst, int64_t dst_off, int64_t n)
{
    Kernel *k = ARENA_NEW(a, Kernel);
    k->name = "pool_copy";
    k->kind = K_LOOP;
    k->n_outer = 1;
    k->outer[0] = 1;
    k->inner = n;
    k->n_phases = 1;
    k->code = ARENA_ARRAY(a, KInstr, 8);
    k->code[0] = instr(KI_INNER_INDEX, -1, -1, -1);
    k->code[1] = instr(KI_ICONST, -1, -1, -1);
    k->code[1].ival = src_off;
    k->code[2] = instr(KI_IADD, 0, 1, -1);
    k->code[3] = instr(KI_ICONST, -1, -1, -1);
    k->code[3].ival = dst_off;
    k->code[4] = instr(KI_IADD, 0, 3, -1);
    k->code[5] = instr(KI_LOAD, 2, -1, src);
    k->code[6] = instr(KI_STORE, 4, 5, dst);
    k->n_code = k->cap_code = 7;
    return k;
}

static Kernel *pooled_loop(Arena *a, const KProgram *p, const Kernel *k)
{
    Kernel *n = ARENA_NEW(a, Kernel);
    *n = *k;
    n->code = ARENA_ARRAY(a, KInstr, 3 * k->n_code + 1);
    int *map = calloc((size_t)k->n_code + 1, sizeof *map);
    int m = 0;
    for (int i = 0; i < k->n_code; i++) {
        KInstr in = k->code[i];
        if (in.a >= 0)
            in.a = map[in.a];
        if (in.b >= 0)
            in.b = map[in.b];
        if (in.c >= 0)
            in.c = map[in.c];
        if (in.buf >= 0) {
            KInstr off = instr(KI_ICONST, -1, -1, -1), add = instr(KI_IADD, in.a, m, -1);
            off.phase = add.phase = in.phase;
            off.ival = elem_off(p, in.buf);
            n->code[m++] = off;
            n->code[m++] = add;
            in.a = m - 1;
            in.buf = (int)p->bufs[in.buf].cls;
        }
        map[i] = m;
        n->code[m++] = in;
    }
    n->n_code = n->cap_code = m;
    free(map);
    return n;
}

/* The buffer fields (>= 0) of a fused kernel. */
static int fused_slots(Kernel *k, int **slot)
{
    int *all[9], n_all = 0, n = 0;
    if (k->kind == K_ATTENTION) {
        KAttention *t = &k->attn;
        int *f[9] = {&t->q, &t->k, &t->v, &t->y, &t->lse, &t->dy, &t->dq, &t->dk, &t->dv};
        memcpy(all, f, sizeof f);
        n_all = 9;
    } else {
        KHeadLoss *h = &k->head;
        int *f[8] = {&h->x, &h->w, &h->targets, &h->loss, &h->dx, &h->dw, &h->dloss, &h->work};
        memcpy(all, f, sizeof f);
        n_all = 8;
    }
    for (int i = 0; i < n_all; i++)
        if (*all[i] >= 0)
            slot[n++] = all[i];
    return n;
}

static KProgram *pooled_program(Pooled *pl, const KProgram *p)
{
    KProgram *q = ARENA_NEW(p->arena, KProgram);
    Arena *a = p->arena;
    q->arena = a;
    q->m = p->m;
    for (int c = 0; c < IR_CLASS_COUNT; c++)
        q_buf(q, ir_class_name((IrMemClass)c), p->pool_bytes[c] / 4, (IrMemClass)c);
    pl->q = q;
    pl->p = p;
    pl->priv = ARENA_ARRAY(a, int, p->n_bufs + 1);
    for (int i = 0; i < p->n_bufs; i++)
        pl->priv[i] = -1;
    q->funcs = ARENA_ARRAY(a, KFunc *, p->n_funcs + 1);
    for (int fi = 0; fi < p->n_funcs; fi++) {
        const KFunc *f = p->funcs[fi];
        KFunc *g = ARENA_NEW(a, KFunc);
        g->name = f->name;
        g->ret_buf = -1;
        for (int ki = 0; ki < f->n_kernels; ki++) {
            const Kernel *k = f->kernels[ki];
            if (k->kind == K_LOOP) {
                add_kernel(g, pooled_loop(a, p, k), a);
            } else if (k->kind == K_GEMM) {
                Kernel *n = ARENA_NEW(a, Kernel);
                *n = *k;
                KGemm *gm = &n->gemm;
                gm->off_a += elem_off(p, gm->a);
                gm->off_b += elem_off(p, gm->b);
                gm->off_c += elem_off(p, gm->c);
                gm->a = (int)p->bufs[gm->a].cls;
                gm->b = (int)p->bufs[gm->b].cls;
                gm->c = (int)p->bufs[gm->c].cls;
                add_kernel(g, n, a);
            } else if (k->kind == K_ATTENTION || k->kind == K_HEAD_LOSS) {
                /* each buffer copied into a private one, the kernel, then copied back */
                Kernel *n = ARENA_NEW(a, Kernel);
                *n = *k;
                int *slot[9], orig[9], ns = fused_slots(n, slot);
                for (int i = 0; i < ns; i++) {
                    int b = orig[i] = *slot[i];
                    if (pl->priv[b] < 0)
                        pl->priv[b] = q_buf(q, p->bufs[b].name, p->bufs[b].numel, p->bufs[b].cls);
                    *slot[i] = pl->priv[b];
                    add_kernel(g, copy_kernel(a, (int)p->bufs[b].cls, elem_off(p, b), pl->priv[b], 0, p->bufs[b].numel),
                               a);
                }
                add_kernel(g, n, a);
                for (int i = 0; i < ns; i++) {
                    int b = orig[i];
                    add_kernel(g, copy_kernel(a, pl->priv[b], 0, (int)p->bufs[b].cls, elem_off(p, b), p->bufs[b].numel),
                               a);
                }
            } else {
                Kernel *n = ARENA_NEW(a, Kernel);
                *n = *k;
                for (int i = 0; i < k->n_call_bufs; i++) {
                    int b = k->call_bufs[i];
                    if (pl->priv[b] < 0)
                        pl->priv[b] = q_buf(q, p->bufs[b].name, p->bufs[b].numel, p->bufs[b].cls);
                    n->call_bufs[i] = pl->priv[b];
                    add_kernel(g, copy_kernel(a, (int)p->bufs[b].cls, elem_off(p, b), pl->priv[b], 0, p->bufs[b].numel),
                               a);
                }
                add_kernel(g, n, a);
                for (int i = 0; i < k->n_call_bufs; i++) {
                    int b = k->call_bufs[i];
                    add_kernel(g, copy_kernel(a, pl->priv[b], 0, (int)p->bufs[b].cls, elem_off(p, b), p->bufs[b].numel),
                               a);
                }
            }
        }
        q->funcs[q->n_funcs++] = g;
    }
    return q;
}

static double *pooled_global(KInterp *it, const Pooled *pl, const IrGlobal *g)
{
    int b = pl->p->global_buf[g->id];
    return k_interp_buf(it, (int)pl->p->bufs[b].cls) + elem_off(pl->p, b);
}

static double pooled_run(KInterp *it, const Pooled *pl, const char *func)
{
    const KFunc *f = k_program_func(pl->p, func);
    k_interp_run(it, k_program_func(pl->q, func), 0);
    int b = f->ret_buf;
    return b >= 0 ? k_interp_buf(it, (int)pl->p->bufs[b].cls)[elem_off(pl->p, b)] : 0;
}

static void set_data(const IrModule *m, double *tok, double *tgt, double *step, uint64_t salt)
{
    tu_fill_tokens(m, tok, tgt, salt);
    *step = 3 + (double)salt; /* past any warmup, so that the lr is not 0 */
}

static double diff(double a, double b) { return fabs(a - b) / fmax(fabs(a), 1.0); }

/* init, two train steps and eval, in the graph interpreter and the pooled kernels. */
static void check_pooled(const char *text, const char *label)
{
    TuModel l;
    build(&l, text);
    KProgram *p = k_program_build(&l.a, &l.d, l.m);
    ck_assert_ptr_nonnull(p);
    KPlan *plan = k_program_plan(p, NULL);
    Pooled pl;
    pooled_program(&pl, p);
    IrModule *m = l.m;
    IrGlobal *tok = ir_global_find(m, "tokens"), *tgt = ir_global_find(m, "targets"), *step = ir_global_find(m, "step");
    IrInterp *gi = ir_interp_create(m, 42);
    KInterp *ki = k_interp_create(pl.q, 42);
    ir_interp_run(gi, ir_func_find(m, "init"));
    pooled_run(ki, &pl, "init");
    double worst = 0, lg = 0, lk = 0;
    const char *train = train_name(m);
    for (int s = 0; s < 2; s++) {
        set_data(m, ir_interp_global(gi, tok), ir_interp_global(gi, tgt), ir_interp_global(gi, step), (uint64_t)s);
        set_data(m, pooled_global(ki, &pl, tok), pooled_global(ki, &pl, tgt), pooled_global(ki, &pl, step),
                 (uint64_t)s);
        lg = ir_interp_run(gi, ir_func_find(m, train));
        lk = pooled_run(ki, &pl, train);
        worst = fmax(worst, diff(lg, lk));
    }
    double eg = ir_interp_run(gi, ir_func_find(m, "eval")), ek = pooled_run(ki, &pl, "eval");
    worst = fmax(worst, diff(eg, ek));
    for (int i = 0; i < m->n_globals; i++) {
        const IrGlobal *g = m->globals[i];
        const double *a = ir_interp_global(gi, g), *b = pooled_global(ki, &pl, g);
        for (int64_t j = 0; j < ir_type_numel(g->type); j++)
            worst = fmax(worst, diff(a[j], b[j]));
    }
    printf("%s: pooled kernels (%d in place) vs graph after 2 steps of @%s: loss %.15f vs %.15f, eval %.15f vs "
           "%.15f, largest difference over the loss and all globals %.3g\n",
           label, plan->n_in_place, train, lg, lk, eg, ek, worst);
    ck_assert_double_le(worst, 1e-12);
    k_interp_destroy(ki);
    ir_interp_destroy(gi);
    tu_fini(&l);
}

START_TEST(memplan_pooled_kernels_compute_the_graph_results)
{
    check_pooled(tu_spec_llama, "llama");
    check_pooled(tu_spec_gpt2, "gpt2");
    check_pooled(LORA, "lora");
}
END_TEST

/* ---- phases ---- */

/* LORA with a 3-step full-rank warm start, a merge every 2 steps after it. */
static const char *const LORA_WARM =
    TU_LLAMA_MODEL
    "adapter lora {\n"
    "  rank = 4; alpha = 8; dropout = 0.1\n"
    "  targets = [\"attention.q\", \"attention.k\", \"attention.v\", \"attention.o\", \"swiglu.gate\", "
    "\"swiglu.up\", \"swiglu.down\"]\n"
    "  trainable = [\"embedding\", \"norms\", \"head\"]\n"
    "}\n"
    "train { batch = 2; seq_len = 6; steps = 100\n"
    "  schedule = relora(warmup = 1, warm_start = 3, reset_every = 2, restart_warmup = 1, prune = 0.5) }\n";

/* The phase a global should be planned in, from what it is: the gradient or a moment of
 * an adapted (class frozen) W holds a value only in the full-rank phase, those of an
 * adapter factor only in the ReLoRA phase. */
static int expected_phase(const IrModule *m, const IrGlobal *g)
{
    const char *of = ir_attrs_str(&g->attrs, "grad_of", ir_attrs_str(&g->attrs, "moment_of", NULL));
    const IrGlobal *p = of ? ir_global_find(m, of) : NULL;
    if (!p)
        return K_PHASE_ALL;
    if (p->cls == IR_CLASS_FROZEN)
        return K_PHASE_FULL;
    return (p->flags & IR_G_ADAPTER) ? K_PHASE_LORA : K_PHASE_ALL;
}

static void set_scalar(double *g, double v) { g[0] = v; }

/* One step of the step policy (docs/ir.md) in the pooled kernels; returns the loss. */
static double pooled_step(KInterp *ki, const Pooled *pl, const IrModule *m, const IrSchedule *s, int64_t step)
{
    IrStepPlan p = ir_schedule_plan(s, step);
    set_scalar(pooled_global(ki, pl, ir_global_find(m, "step")), (double)step);
    set_scalar(pooled_global(ki, pl, ir_global_find(m, "lr")), p.lr);
    set_scalar(pooled_global(ki, pl, ir_global_find(m, "adam_t")), (double)p.adam_t);
    set_scalar(pooled_global(ki, pl, ir_global_find(m, "prune_fraction")), s->prune);
    set_scalar(pooled_global(ki, pl, ir_global_find(m, "micro_step")), (double)step); /* one micro-step */
    if (p.switch_before)
        pooled_run(ki, pl, "switch");
    double loss = pooled_run(ki, pl, p.lora ? "train_lora" : "train_full");
    pooled_run(ki, pl, p.lora ? "norm_lora" : "norm_full");
    pooled_run(ki, pl, p.lora ? "update_lora" : "update_full");
    if (p.reset_after)
        pooled_run(ki, pl, "relora_reset");
    return loss;
}

/* Planned phase-aware, the gradients and moments of the adapted W (full-rank phase) and
 * of the adapters (ReLoRA phase) share bytes; the program needs the larger phase, no
 * more; and the pooled kernels, run by the step policy across the switch and two
 * merges, still compute what the graph interpreter does for every global live at each
 * step's end. */
START_TEST(memplan_phases_share_bytes_and_compute_the_graph_results)
{
    TuModel l;
    build(&l, LORA_WARM);
    IrModule *m = l.m;
    KProgram *p = k_program_build(&l.a, &l.d, m);
    ck_assert_ptr_nonnull(p);
    KPlanOptions one = {.no_phases = true};
    k_program_plan(p, &one);
    int64_t one_layout = total(p->pool_bytes);
    KPlan *plan = k_program_plan(p, NULL);
    int n_full = 0, n_lora = 0, shared = 0;
    for (int i = 0; i < m->n_globals; i++) {
        const KBuf *b = &p->bufs[p->global_buf[i]];
        int want = expected_phase(m, m->globals[i]);
        ck_assert_msg(b->phase == want, "%s: planned in phase %d, expected %d", b->name, b->phase, want);
        n_full += want == K_PHASE_FULL;
        n_lora += want == K_PHASE_LORA;
        ck_assert_int_eq(b->cls, want == K_PHASE_ALL ? m->globals[i]->cls : IR_CLASS_SCRATCH);
    }
    for (int i = 0; i < m->n_globals; i++)
        for (int j = 0; j < m->n_globals; j++) {
            const KBuf *x = &p->bufs[p->global_buf[i]], *y = &p->bufs[p->global_buf[j]];
            if (x->phase == K_PHASE_FULL && y->phase == K_PHASE_LORA && bytes_overlap(x, y))
                shared++;
        }
    int64_t t_full = total(plan->phase_bytes[K_PHASE_FULL]), t_lora = total(plan->phase_bytes[K_PHASE_LORA]);
    printf("phases: %d full-rank-only and %d ReLoRA-only globals, %d pairs sharing bytes; full-rank phase %lld, "
           "ReLoRA phase %lld, program %lld bytes (one layout for both phases: %lld)\n",
           n_full, n_lora, shared, (long long)t_full, (long long)t_lora, (long long)total(p->pool_bytes),
           (long long)one_layout);
    ck_assert_int_eq(n_full, 3 * 14); /* 14 adapted W: gradient, two moments */
    ck_assert_int_eq(n_lora, 3 * 28); /* 28 factors */
    ck_assert_int_gt(shared, 0);
    ck_assert(plan->has_phase[K_PHASE_FULL] && plan->has_phase[K_PHASE_LORA]);
    ck_assert_int_eq(total(p->pool_bytes), t_full > t_lora ? t_full : t_lora);
    ck_assert_int_gt(one_layout, total(p->pool_bytes));

    Pooled pl;
    pooled_program(&pl, p);
    IrSchedule sched;
    ck_assert(ir_schedule_from_module(m, &sched, &l.d));
    IrInterp *gi = ir_interp_create(m, 42);
    KInterp *ki = k_interp_create(pl.q, 42);
    ir_interp_run(gi, ir_func_find(m, "init"));
    pooled_run(ki, &pl, "init");
    IrGlobal *tok = ir_global_find(m, "tokens"), *tgt = ir_global_find(m, "targets");
    double worst = 0;
    int compared = 0;
    for (int64_t s = 0; s < 8; s++) {
        int32_t x[64], y[64];
        tu_step_tokens(m, x, y, 64, (uint64_t)s);
        tu_fill_tokens(m, pooled_global(ki, &pl, tok), pooled_global(ki, &pl, tgt), (uint64_t)s);
        IrStepResult want;
        ck_assert(ir_interp_train_step(gi, m, &sched, x, y, s, &want));
        double got = pooled_step(ki, &pl, m, &sched, s);
        worst = fmax(worst, diff(want.loss, got));
        bool lora_state = s + 1 > sched.warm_start;
        for (int i = 0; i < m->n_globals; i++) {
            const IrGlobal *g = m->globals[i];
            int ph = p->bufs[p->global_buf[i]].phase;
            if ((ph == K_PHASE_FULL && lora_state) || (ph == K_PHASE_LORA && !lora_state))
                continue;
            const double *a = ir_interp_global(gi, g), *b = pooled_global(ki, &pl, g);
            for (int64_t j = 0; j < ir_type_numel(g->type); j++)
                worst = fmax(worst, diff(a[j], b[j]));
            compared++;
        }
    }
    printf("phases: pooled kernels vs graph over 8 steps (switch before step 3, merges after 5 and 7): %d "
           "global comparisons, largest difference %.3g\n", compared, worst);
    ck_assert_double_le(worst, 1e-12);
    k_interp_destroy(ki);
    ir_interp_destroy(gi);
    tu_fini(&l);
}
END_TEST

/* ---- sizes ---- */

static void class_line(const char *what, const int64_t *b)
{
    printf("  %-22s", what);
    for (int c = 0; c < IR_CLASS_COUNT; c++)
        printf(" %s=%lld", ir_class_name((IrMemClass)c), (long long)b[c]);
    printf(" total=%lld\n", (long long)total(b));
}

static void plan_sizes(const char *text, const char *label, int64_t *seq_out, int64_t *plan_out)
{
    TuModel l;
    build(&l, text);
    KProgram *p = k_program_build(&l.a, &l.d, l.m);
    ck_assert_ptr_nonnull(p);
    int64_t seq[IR_CLASS_COUNT], best[IR_CLASS_COUNT], first[IR_CLASS_COUNT], noinp[IR_CLASS_COUNT];
    KPlanOptions o = {.no_reuse = true};
    k_program_plan(p, &o);
    memcpy(seq, p->pool_bytes, sizeof seq);
    o = (KPlanOptions){.first_fit = true};
    k_program_plan(p, &o);
    memcpy(first, p->pool_bytes, sizeof first);
    o = (KPlanOptions){.no_in_place = true};
    k_program_plan(p, &o);
    memcpy(noinp, p->pool_bytes, sizeof noinp);
    KPlan *plan = k_program_plan(p, NULL);
    memcpy(best, p->pool_bytes, sizeof best);
    printf("%s (%d buffers, %d in place):\n", label, p->n_bufs, plan->n_in_place);
    class_line("sequential", seq);
    class_line("first fit", first);
    class_line("best fit, no in place", noinp);
    class_line("best fit (default)", best);
    class_line("lower bound", plan->lower_bound);
    for (int c = 0; c < IR_CLASS_COUNT; c++) {
        ck_assert_int_le(best[c], seq[c]);
        ck_assert_int_ge(best[c], plan->lower_bound[c]);
        if (c != IR_CLASS_ACTIVATION && c != IR_CLASS_SCRATCH)
            ck_assert_int_eq(best[c], seq[c]); /* globals are never shared */
    }
    ck_assert_int_lt(best[IR_CLASS_ACTIVATION] + best[IR_CLASS_SCRATCH],
                     seq[IR_CLASS_ACTIVATION] + seq[IR_CLASS_SCRATCH]);
    *seq_out = total(seq);
    *plan_out = total(best);
    tu_fini(&l);
}

START_TEST(memplan_is_smaller_than_the_sequential_layout)
{
    int64_t seq, plan;
    plan_sizes(tu_spec_llama, "llama", &seq, &plan);
    ck_assert_int_lt(plan, seq);
    plan_sizes(tu_spec_gpt2, "gpt2", &seq, &plan);
    ck_assert_int_lt(plan, seq);
    plan_sizes(LORA, "lora", &seq, &plan);
    ck_assert_int_lt(plan, seq);
}
END_TEST

/* ---- frozen weights ---- */

static int64_t aligned(int64_t numel) { return (numel * 4 + 63) / 64 * 64; }

/* The planned pools of tu_spec_llama, with the block linears frozen (class frozen, not
 * trainable: no gradient, no moments) when `freeze`; *frozen_bytes gets their bytes. */
static void llama_pools(bool freeze, int64_t *bytes, int64_t *frozen_bytes)
{
    TuModel l;
    tu_lower(&l, tu_spec_llama);
    *frozen_bytes = 0;
    for (int i = 0; i < l.m->n_globals && freeze; i++) {
        IrGlobal *g = l.m->globals[i];
        if (strncmp(g->name, "layers.", 7) != 0 || g->type.rank != 2)
            continue;
        g->cls = IR_CLASS_FROZEN;
        g->flags &= ~(unsigned)IR_G_TRAINABLE;
        *frozen_bytes += aligned(ir_type_numel(g->type));
    }
    tu_run_passes(&l, NULL, 0);
    ck_assert(pass_memplan_bytes(l.m, bytes));
    tu_fini(&l);
}

START_TEST(memplan_frozen_weights_need_no_gradient_or_optimizer_memory)
{
    int64_t full[IR_CLASS_COUNT], fz[IR_CLASS_COUNT], w = 0, none = 0;
    llama_pools(false, full, &none);
    llama_pools(true, fz, &w);
    printf("llama, frozen block linears (%lld bytes) vs full rank:\n", (long long)w);
    class_line("full rank", full);
    class_line("frozen", fz);
    printf("  peak: %lld -> %lld bytes, %lld lower; gradient + optimizer of the frozen weights: 3 x %lld = %lld\n",
           (long long)total(full), (long long)total(fz), (long long)(total(full) - total(fz)), (long long)w,
           (long long)(3 * w));
    /* tu_spec_llama: 14 block linears of 16x16, 8x16 (k, v) and 16x24 / 24x16 (swiglu): 15360 bytes */
    ck_assert_int_eq(w, 15360);
    ck_assert_int_eq(fz[IR_CLASS_PARAM] + fz[IR_CLASS_FROZEN], full[IR_CLASS_PARAM] + full[IR_CLASS_FROZEN]);
    ck_assert_int_eq(full[IR_CLASS_GRAD] - fz[IR_CLASS_GRAD], w);
    ck_assert_int_eq(full[IR_CLASS_OPTIM] - fz[IR_CLASS_OPTIM], 2 * w);
    ck_assert_int_le(fz[IR_CLASS_ACTIVATION] + fz[IR_CLASS_SCRATCH], full[IR_CLASS_ACTIVATION] + full[IR_CLASS_SCRATCH]);
    ck_assert_int_ge(total(full) - total(fz), 3 * w);
}
END_TEST

/* The ReLoRA phase (@train_lora) against full-rank training: the frozen W save their
 * gradient and moments; the adapters cost their own (4 x rank x (in + out) floats each). */
START_TEST(memplan_relora_phase_against_full_rank)
{
    TuModel full, lora;
    build(&full, tu_spec_llama);
    build(&lora, LORA);
    int64_t fb[IR_CLASS_COUNT], lb[IR_CLASS_COUNT], w = 0, ab = 0;
    ck_assert(pass_memplan_bytes(full.m, fb));
    ck_assert(pass_memplan_bytes(lora.m, lb));
    for (int i = 0; i < lora.m->n_globals; i++) {
        const IrGlobal *g = lora.m->globals[i];
        if (g->cls == IR_CLASS_FROZEN)
            w += aligned(ir_type_numel(g->type));
        if (g->flags & IR_G_ADAPTER)
            ab += aligned(ir_type_numel(g->type));
    }
    printf("llama, ReLoRA rank 4 (frozen W %lld bytes, adapters %lld bytes) vs full rank:\n", (long long)w,
           (long long)ab);
    class_line("full rank (@train_full)", fb);
    class_line("relora (@train_lora)", lb);
    ck_assert_int_eq(fb[IR_CLASS_GRAD] - lb[IR_CLASS_GRAD], w - ab);
    ck_assert_int_eq(fb[IR_CLASS_OPTIM] - lb[IR_CLASS_OPTIM], 2 * (w - ab));
    ck_assert_int_eq(lb[IR_CLASS_PARAM] + lb[IR_CLASS_FROZEN], fb[IR_CLASS_PARAM] + ab);
    tu_fini(&full);
    tu_fini(&lora);
}
END_TEST

/* ---- in place, on hand-written IR ---- */

static const char *const INPLACE_IR =
    "module t {\n"
    "  global @x : f32[2,4] param\n"
    "  global @w : f32[4,4] param\n"
    "  global @b : f32[4] param\n"
    "}\n"
    "\n"
    "func @f {\n"
    "  %0 = global @x : f32[2,4]\n"
    "  %1 = global @w : f32[4,4]\n"
    "  %2 = matmul %0, %1 {trans_a = 0, trans_b = 1} : f32[2,4]\n"
    "  %3 = silu %2 : f32[2,4]\n"                                   /* in place of %2: dies here */
    "  %4 = matmul %3, %1 {trans_a = 0, trans_b = 1} : f32[2,4]\n"
    "  %5 = add %4, %3 : f32[2,4]\n"                                /* in place of %4 (read first) */
    "  %6 = global @b : f32[4]\n"
    "  %7 = scale %6 {alpha = 2.0} : f32[4]\n"
    "  %8 = add %5, %7 : f32[2,4]\n"                                /* in place of %5, not of %7 */
    "  %9 = global @b : f32[4]\n"
    "  %10 = rmsnorm %8, %9 {eps = 1e-05} : f32[2,4]\n"             /* row kernel: never in place */
    "  %11 = mul %10, %10 : f32[2,4]\n"                             /* in place of %10 */
    "  store %11, @x\n"
    "  %13 = matmul %11, %1 {trans_a = 0, trans_b = 1} : f32[2,4]\n"
    "  ret %13\n"
    "}\n";

static int buf_named(const KProgram *p, const char *name)
{
    for (int i = 0; i < p->n_bufs; i++)
        if (strcmp(p->bufs[i].name, name) == 0)
            return i;
    ck_abort_msg("no buffer %s", name);
    return -1;
}

START_TEST(memplan_in_place_only_where_safe)
{
    Arena a;
    Diags d;
    arena_init(&a);
    diag_init(&d, &a);
    IrModule *m = ir_parse(&a, &d, "t.ir", INPLACE_IR, strlen(INPLACE_IR));
    ck_assert(m && ir_verify(m, &d));
    KProgram *p = k_program_build(&a, &d, m);
    ck_assert_ptr_nonnull(p);
    KPlan *plan = k_program_plan(p, NULL);
    int v[14];
    const int values[] = {2, 3, 4, 5, 7, 8, 10, 11, 13};
    for (int i = 0; i < 9; i++)
        v[values[i]] = buf_named(p, arena_sprintf(&a, "f.v%d", values[i]));
    ck_assert_int_eq(plan->in_place_of[v[3]], v[2]);
    ck_assert_int_eq(plan->in_place_of[v[5]], v[4]);
    ck_assert_int_eq(plan->in_place_of[v[8]], v[5]);
    ck_assert_int_eq(plan->in_place_of[v[10]], -1);
    ck_assert_int_eq(plan->in_place_of[v[11]], v[10]);
    ck_assert_int_eq(plan->in_place_of[v[13]], -1); /* a GEMM output */
    ck_assert_int_eq(plan->n_in_place, 4);
    ck_assert_int_eq(p->bufs[v[3]].offset, p->bufs[v[2]].offset);
    ck_assert_int_eq(p->bufs[v[8]].offset, p->bufs[v[4]].offset);
    /* Each value takes 64 bytes. In place, the chains {v2 v3}, {v4 v5 v8}, {v10 v11}
     * and v7, v13 need 2 slots; without, %5 reads v3 and v4 while writing v5: 3. */
    ck_assert_int_eq(p->pool_bytes[IR_CLASS_SCRATCH], 2 * 64);
    ck_assert_int_eq(plan->lower_bound[IR_CLASS_SCRATCH], 2 * 64);
    KPlanOptions no = {.no_in_place = true};
    k_program_plan(p, &no);
    ck_assert_int_eq(p->pool_bytes[IR_CLASS_SCRATCH], 3 * 64);
    KPlanOptions seq = {.no_reuse = true};
    k_program_plan(p, &seq);
    ck_assert_int_eq(p->pool_bytes[IR_CLASS_SCRATCH], 9 * 64);
    arena_fini(&a);
}
END_TEST

/* ---- the pass ---- */

START_TEST(memplan_pass_records_the_plans_pool_bytes)
{
    TuModel l;
    build(&l, tu_spec_llama);
    int64_t recorded[IR_CLASS_COUNT];
    ck_assert(pass_memplan_bytes(l.m, recorded));
    KProgram *p = k_program_build(&l.a, &l.d, l.m);
    ck_assert_ptr_nonnull(p);
    for (int c = 0; c < IR_CLASS_COUNT; c++) {
        ck_assert_int_eq(recorded[c], p->pool_bytes[c]);
        const IrAttr *at = ir_attrs_get(&l.m->attrs, arena_sprintf(&l.a, "mem.%s.bytes", ir_class_name((IrMemClass)c)));
        ck_assert_ptr_nonnull(at);
    }
    ck_assert_int_eq(pass_memplan_total(recorded), total(p->pool_bytes));
    /* globals' pools are the sum of their aligned sizes */
    int64_t sum[IR_CLASS_COUNT] = {0};
    for (int i = 0; i < l.m->n_globals; i++)
        sum[l.m->globals[i]->cls] += aligned(ir_type_numel(l.m->globals[i]->type));
    for (int c = 0; c < IR_CLASS_COUNT; c++)
        if (c != IR_CLASS_ACTIVATION && c != IR_CLASS_SCRATCH)
            ck_assert_int_eq(recorded[c], sum[c]);
    int64_t again[IR_CLASS_COUNT];
    ck_assert(pass_memplan_compute(&l.a, &l.d, l.m, NULL, again, NULL));
    ck_assert_mem_eq(again, recorded, sizeof again);
    tu_fini(&l);

    TuModel bare;
    tu_lower(&bare, tu_spec_llama);
    ck_assert(!pass_memplan_bytes(bare.m, recorded));
    tu_fini(&bare);
}
END_TEST

Suite *memplan_suite(void)
{
    Suite *s = suite_create("memplan");
    TCase *tc = tcase_create("memplan");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, memplan_live_buffers_never_share_bytes);
    tcase_add_test(tc, memplan_pooled_kernels_compute_the_graph_results);
    tcase_add_test(tc, memplan_phases_share_bytes_and_compute_the_graph_results);
    tcase_add_test(tc, memplan_is_smaller_than_the_sequential_layout);
    tcase_add_test(tc, memplan_frozen_weights_need_no_gradient_or_optimizer_memory);
    tcase_add_test(tc, memplan_relora_phase_against_full_rank);
    tcase_add_test(tc, memplan_in_place_only_where_safe);
    tcase_add_test(tc, memplan_pass_records_the_plans_pool_bytes);
    suite_add_tcase(s, tc);
    return s;
}
