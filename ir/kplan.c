/* Buffer planning on a KProgram: the byte offset of every buffer in its pool and the
 * pool sizes. Globals are laid out once, in id order, except those of one training phase
 * (phase-aware planning); values, and those, share bytes by liveness over each
 * function's kernel sequence (greedy by size, as TFLite's and XLA's heap simulators do),
 * optionally in place. The planner only reads the kernels; it never changes what they
 * compute. Contract, phases and the in-place rule: kernel.h, docs/passes.md. */
#include "kernel.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN 64

static int64_t aligned_bytes(const KBuf *b)
{
    int64_t bytes = b->numel * ir_dtype_bytes(b->dtype);
    return (bytes + ALIGN - 1) / ALIGN * ALIGN;
}

KPhase k_func_phase(const char *name)
{
    static const char *const full[] = {"train_full", "norm_full", "update_full"};
    static const char *const lora[] = {"switch", "train_lora", "norm_lora", "update_lora", "relora_reset"};
    for (size_t i = 0; i < sizeof full / sizeof *full; i++)
        if (!strcmp(name, full[i]))
            return K_PHASE_FULL;
    for (size_t i = 0; i < sizeof lora / sizeof *lora; i++)
        if (!strcmp(name, lora[i]))
            return K_PHASE_LORA;
    return K_PHASE_ALL;
}

/* Calls touch(buf) for every buffer kernel k reads or writes. */
static void kernel_bufs(const Kernel *k, void (*touch)(void *ctx, int buf), void *ctx)
{
    switch (k->kind) {
    case K_LOOP:
        for (int i = 0; i < k->n_code; i++)
            if (k->code[i].buf >= 0)
                touch(ctx, k->code[i].buf);
        break;
    case K_GEMM:
        touch(ctx, k->gemm.a);
        touch(ctx, k->gemm.b);
        touch(ctx, k->gemm.c);
        break;
    case K_CALL:
        for (int i = 0; i < k->n_call_bufs; i++)
            touch(ctx, k->call_bufs[i]);
        break;
    case K_ATTENTION: {
        const KAttention *a = &k->attn;
        const int bufs[9] = {a->q, a->k, a->v, a->y, a->lse, a->dy, a->dq, a->dk, a->dv};
        for (int i = 0; i < 9; i++)
            if (bufs[i] >= 0)
                touch(ctx, bufs[i]);
        break;
    }
    case K_HEAD_LOSS: {
        const KHeadLoss *h = &k->head;
        const int bufs[11] = {h->x, h->w, h->targets, h->loss, h->dx, h->dw, h->dloss, h->work, h->x16, h->w16, h->work16};
        for (int i = 0; i < 11; i++)
            if (bufs[i] >= 0)
                touch(ctx, bufs[i]);
        break;
    }
    }
}

/* ---- phases ---- */

/* Whether every node of f that names g is `init_const g {value = 0}` (true when none does;
 * need_one: at least one must). */
static bool only_zeroes(const IrFunc *f, const IrGlobal *g, bool need_one)
{
    int n = 0;
    for (int i = 0; f && i < f->n_nodes; i++) {
        const IrNode *x = f->nodes[i];
        for (int k = 0; k < x->n_gl; k++) {
            if (x->gl[k] != g)
                continue;
            if (x->op != IR_OP_INIT_CONST || ir_attrs_float(&x->attrs, "value", 1.0) != 0.0)
                return false;
            n++;
        }
    }
    return n > 0 || !need_one;
}

typedef struct {
    unsigned *mask; /* per buffer: bit (1 << phase) of every function touching it; bit 3: init */
    unsigned bit;
} Mask;

static void touch_mask(void *ctx, int buf)
{
    Mask *m = ctx;
    m->mask[buf] |= m->bit;
}

enum { INIT_BIT = 1u << K_PHASE_COUNT };

/* Sets KBuf.phase of every buffer: K_PHASE_FULL (K_PHASE_LORA) for a gradient or moment
 * global that only functions of that phase touch, when the program has functions of
 * both phases, besides @init zeroing it; a ReLoRA-phase one that @init zeroes must also
 * be zeroed by @switch, since the full-rank phase reuses its bytes before. The IR says
 * what @init and @switch write, so a program without its module has no such globals.
 * Returns whether the program has a function of each phase (has[ph]). */
static void classify(KProgram *p, bool has[K_PHASE_COUNT])
{
    memset(has, 0, sizeof(bool) * K_PHASE_COUNT);
    unsigned *mask = calloc((size_t)p->n_bufs + 1, sizeof *mask);
    for (int fi = 0; fi < p->n_funcs; fi++) {
        const KFunc *f = p->funcs[fi];
        KPhase ph = k_func_phase(f->name);
        has[ph] = true;
        Mask m = {mask, !strcmp(f->name, "init") ? INIT_BIT : 1u << ph};
        for (int ki = 0; ki < f->n_kernels; ki++)
            kernel_bufs(f->kernels[ki], touch_mask, &m);
        if (f->ret_buf >= 0)
            mask[f->ret_buf] |= m.bit;
    }
    const IrFunc *init = p->m ? ir_func_find(p->m, "init") : NULL;
    const IrFunc *sw = p->m ? ir_func_find(p->m, "switch") : NULL;
    for (int i = 0; i < p->n_bufs; i++) {
        KBuf *b = &p->bufs[i];
        b->phase = K_PHASE_ALL;
        const IrGlobal *g = b->global;
        if (!g || !p->m || !has[K_PHASE_FULL] || !has[K_PHASE_LORA] ||
            (g->cls != IR_CLASS_GRAD && g->cls != IR_CLASS_OPTIM))
            continue;
        unsigned own = mask[i] & ~INIT_BIT;
        bool by_init = mask[i] & INIT_BIT;
        if (by_init && !only_zeroes(init, g, false))
            continue;
        if (own == 1u << K_PHASE_FULL)
            b->phase = K_PHASE_FULL;
        else if (own == 1u << K_PHASE_LORA && (!by_init || only_zeroes(sw, g, true)))
            b->phase = K_PHASE_LORA;
    }
    free(mask);
}

/* A buffer that is no global but lives for the whole run: the persistent bf16 copy of a
 * frozen W (kprecision.c gives it the frozen class), derived, never checkpointed. */
static bool is_derived_state(const KBuf *b)
{
    return !b->global && b->cls == IR_CLASS_FROZEN;
}

/* ---- liveness ---- */

typedef struct {
    KLive *live;
    int func, kernel;
} Touch;

static void touch_live(void *ctx, int buf)
{
    Touch *t = ctx;
    KLive *l = &t->live[buf];
    if (l->func == K_LIVE_ALWAYS)
        return;
    if (l->func == K_LIVE_NEVER) {
        l->func = t->func;
        l->first = l->last = t->kernel;
    } else if (l->func != t->func) {
        l->func = K_LIVE_ALWAYS;
        l->phase = K_PHASE_ALL;
    } else {
        if (t->kernel < l->first)
            l->first = t->kernel;
        if (t->kernel > l->last)
            l->last = t->kernel;
    }
}

/* Live ranges of every buffer; a global of one phase is live through that phase when
 * `phased`, else always. Reads KBuf.phase. */
static KLive *liveness(Arena *a, const KProgram *p, bool phased)
{
    KLive *live = ARENA_ARRAY(a, KLive, p->n_bufs + 1);
    for (int i = 0; i < p->n_bufs; i++) {
        const KBuf *b = &p->bufs[i];
        live[i].func = b->global || is_derived_state(b) ? K_LIVE_ALWAYS : K_LIVE_NEVER;
        live[i].phase = b->global && phased ? b->phase : K_PHASE_ALL;
        live[i].first = live[i].last = -1;
    }
    Touch t = {live, 0, 0};
    for (t.func = 0; t.func < p->n_funcs; t.func++) {
        const KFunc *f = p->funcs[t.func];
        for (t.kernel = 0; t.kernel < f->n_kernels; t.kernel++)
            kernel_bufs(f->kernels[t.kernel], touch_live, &t);
        /* the host reads the returned scalar after the last kernel */
        if (f->ret_buf >= 0) {
            t.kernel = f->n_kernels > 0 ? f->n_kernels - 1 : 0;
            touch_live(&t, f->ret_buf);
        }
    }
    for (int i = 0; i < p->n_bufs; i++)
        if (live[i].func >= 0)
            live[i].phase = (int)k_func_phase(p->funcs[live[i].func]->name);
    return live;
}

bool k_live_overlap(const KLive *x, const KLive *y)
{
    if (x->func == K_LIVE_NEVER || y->func == K_LIVE_NEVER)
        return false;
    if (x->func >= 0 && y->func >= 0)
        return x->func == y->func && x->first <= y->last && y->first <= x->last;
    return x->phase == K_PHASE_ALL || y->phase == K_PHASE_ALL || x->phase == y->phase;
}

/* ---- in place ---- */

/* Instruction i of k is the flat index row * inner + col of a one-axis loop: distinct
 * in every iteration, so reading x[i] and then writing y[i] never clobbers a later read. */
static bool is_flat_index(const Kernel *k, int i)
{
    const KInstr *in = &k->code[i];
    if (in->op != KI_IADD || in->phase != 0 || k->n_outer != 1 || in->a < 0 || in->b < 0)
        return false;
    const KInstr *mul = &k->code[in->a], *col = &k->code[in->b];
    if (mul->op != KI_IMUL || col->op != KI_INNER_INDEX || mul->a < 0 || mul->b < 0)
        return false;
    const KInstr *row = &k->code[mul->a], *cols = &k->code[mul->b];
    return row->op == KI_OUTER_INDEX && row->axis == 0 && cols->op == KI_ICONST && cols->ival == k->inner;
}

/* May output y (first written by k) take the bytes of input x (last read by k)? Only
 * when k is a one-phase loop, stores y exactly once at a flat index, and reads x only
 * at that same index, before the store. */
static bool in_place_ok(const Kernel *k, int x, int y)
{
    if (k->kind != K_LOOP || k->n_phases != 1)
        return false;
    int store = -1;
    for (int i = 0; i < k->n_code; i++) {
        const KInstr *in = &k->code[i];
        if (in->buf == y) {
            if (in->op != KI_STORE || store >= 0)
                return false;
            store = i;
        }
        if (in->buf == x && in->op != KI_LOAD && in->op != KI_LOAD_I)
            return false;
    }
    if (store < 0 || !is_flat_index(k, k->code[store].a))
        return false;
    for (int i = 0; i < k->n_code; i++) {
        const KInstr *in = &k->code[i];
        if (in->buf == x && (i > store || in->a != k->code[store].a))
            return false;
    }
    return true;
}

static int find_rep(int *rep, int b)
{
    while (rep[b] != b)
        b = rep[b];
    return b;
}

/* Pairs (x, y) of the whole program that may share bytes in place; sets in_place_of. */
static int plan_in_place(const KProgram *p, const KLive *live, int *in_place_of, int *rep)
{
    int n = 0;
    bool *given = calloc((size_t)p->n_bufs + 1, sizeof *given);
    for (int fi = 0; fi < p->n_funcs; fi++) {
        const KFunc *f = p->funcs[fi];
        for (int ki = 0; ki < f->n_kernels; ki++) {
            const Kernel *k = f->kernels[ki];
            if (k->kind != K_LOOP || k->n_phases != 1)
                continue;
            for (int s = 0; s < k->n_code; s++) {
                int y = k->code[s].buf;
                if (k->code[s].op != KI_STORE || live[y].func != fi || live[y].first != ki || in_place_of[y] >= 0)
                    continue;
                for (int l = 0; l < s && in_place_of[y] < 0; l++) {
                    int x = k->code[l].buf;
                    if ((k->code[l].op != KI_LOAD && k->code[l].op != KI_LOAD_I) || x == y || given[x] ||
                        live[x].func != fi || live[x].last != ki || live[x].first >= ki || x == f->ret_buf ||
                        p->bufs[x].cls != p->bufs[y].cls || p->bufs[x].numel != p->bufs[y].numel ||
                        p->bufs[x].dtype != p->bufs[y].dtype ||
                        !in_place_ok(k, x, y))
                        continue;
                    in_place_of[y] = x;
                    given[x] = true;
                    rep[y] = find_rep(rep, x);
                    n++;
                }
            }
        }
    }
    free(given);
    return n;
}

/* ---- placement ---- */

typedef struct {
    int rep;          /* representative buffer */
    int func, first, last, phase;
    int64_t bytes;
    int64_t offset;   /* from the pool base; -1 until placed */
} Slot;

static int cmp_slot(const void *pa, const void *pb)
{
    const Slot *a = pa, *b = pb;
    if (a->bytes != b->bytes)
        return a->bytes > b->bytes ? -1 : 1;
    if (a->func != b->func)
        return a->func < b->func ? -1 : 1;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return a->rep < b->rep ? -1 : a->rep > b->rep;
}

static int cmp_offset(const void *pa, const void *pb)
{
    const Slot *a = *(const Slot *const *)pa, *b = *(const Slot *const *)pb;
    if (a->offset != b->offset)
        return a->offset < b->offset ? -1 : 1;
    return a->rep < b->rep ? -1 : a->rep > b->rep;
}

static bool slots_overlap(const Slot *a, const Slot *b)
{
    KLive x = {a->func, a->first, a->last, a->phase}, y = {b->func, b->first, b->last, b->phase};
    return k_live_overlap(&x, &y);
}

/* Places slots[n_fixed..n) (sorted largest first) above `base`, around slots[0..n_fixed),
 * which are placed already; returns the pool's end. */
static int64_t place_slots(Slot *slots, int n_fixed, int n, int64_t base, bool first_fit)
{
    int64_t end = base;
    for (int i = 0; i < n_fixed; i++)
        if (slots[i].offset + slots[i].bytes > end)
            end = slots[i].offset + slots[i].bytes;
    Slot **busy = calloc((size_t)n + 1, sizeof *busy);
    for (int i = n_fixed; i < n; i++) {
        Slot *s = &slots[i];
        int nb = 0;
        for (int j = 0; j < i; j++)
            if (slots_overlap(s, &slots[j]))
                busy[nb++] = &slots[j];
        qsort(busy, (size_t)nb, sizeof *busy, cmp_offset);
        int64_t at = -1, best_gap = -1, prev_end = base;
        for (int j = 0; j < nb; j++) {
            int64_t gap = busy[j]->offset - prev_end;
            if (gap >= s->bytes && (best_gap < 0 || gap < best_gap)) {
                at = prev_end;
                best_gap = gap;
                if (first_fit)
                    break;
            }
            if (busy[j]->offset + busy[j]->bytes > prev_end)
                prev_end = busy[j]->offset + busy[j]->bytes;
        }
        s->offset = at >= 0 ? at : prev_end;
        if (s->offset + s->bytes > end)
            end = s->offset + s->bytes;
    }
    free(busy);
    return end;
}

/* The bytes of the phase-local globals live while a function of phase ph runs: its own
 * phase's, or for a function of either phase the larger of the two. */
static int64_t local_bytes(const int64_t *local, int ph)
{
    if (ph != K_PHASE_ALL)
        return local[ph];
    return local[K_PHASE_FULL] > local[K_PHASE_LORA] ? local[K_PHASE_FULL] : local[K_PHASE_LORA];
}

/* The most bytes of one pool live during one kernel: pinned bytes plus, for each kernel,
 * the phase-local globals live then and the slots live together (no plan does better). */
static int64_t lower_bound(const KProgram *p, const Slot *slots, int n, int64_t pinned, const int64_t *local)
{
    int64_t best = 0;
    for (int fi = 0; fi < p->n_funcs; fi++) {
        int64_t loc = local_bytes(local, k_func_phase(p->funcs[fi]->name));
        if (loc > best)
            best = loc;
        for (int ki = 0; ki < p->funcs[fi]->n_kernels; ki++) {
            int64_t sum = loc;
            for (int i = 0; i < n; i++)
                if (slots[i].func == fi && slots[i].first <= ki && ki <= slots[i].last)
                    sum += slots[i].bytes;
            if (sum > best)
                best = sum;
        }
    }
    return pinned + best;
}

/* The pool a buffer lives in: a global's class, frozen for a derived copy, or scratch for
 * what is planned by liveness (values; globals of one phase when phased). */
static IrMemClass pool_of(const KBuf *b, bool phased)
{
    if (!b->global)
        return is_derived_state(b) ? IR_CLASS_FROZEN : IR_CLASS_SCRATCH;
    return phased && b->phase != K_PHASE_ALL ? IR_CLASS_SCRATCH : b->global->cls;
}

KPlan *k_program_plan(KProgram *p, const KPlanOptions *o)
{
    KPlanOptions dflt = {0};
    if (!o)
        o = &dflt;
    KPlan *plan = ARENA_NEW(p->arena, KPlan);
    classify(p, plan->has_phase);
    bool phased = !o->no_phases && !o->no_reuse;
    for (int i = 0; i < p->n_bufs; i++)
        p->bufs[i].cls = pool_of(&p->bufs[i], phased);
    plan->live = liveness(p->arena, p, phased);
    plan->in_place_of = ARENA_ARRAY(p->arena, int, p->n_bufs + 1);
    int *rep = calloc((size_t)p->n_bufs + 1, sizeof *rep);
    for (int i = 0; i < p->n_bufs; i++) {
        plan->in_place_of[i] = -1;
        rep[i] = i;
    }
    if (!o->no_reuse && !o->no_in_place)
        plan->n_in_place = plan_in_place(p, plan->live, plan->in_place_of, rep);

    Slot *slots = calloc((size_t)p->n_bufs + 1, sizeof *slots);
    int *slot_of = calloc((size_t)p->n_bufs + 1, sizeof *slot_of);
    int64_t pinned_values = 0;
    for (int c = 0; c < IR_CLASS_COUNT; c++) {
        /* pinned buffers (and, without reuse, all of them) in id order at the bottom */
        int64_t base = 0;
        for (int i = 0; i < p->n_bufs; i++) {
            KBuf *b = &p->bufs[i];
            const KLive *l = &plan->live[i];
            if ((int)b->cls != c || (!o->no_reuse && (l->func != K_LIVE_ALWAYS || l->phase != K_PHASE_ALL)))
                continue;
            b->offset = base;
            base += aligned_bytes(b);
            if (!b->global && c == IR_CLASS_SCRATCH)
                pinned_values += aligned_bytes(b);
        }
        /* each phase's own globals above them, in id order, the two phases over the same bytes */
        int n = 0;
        int64_t end_local[K_PHASE_COUNT] = {base, base, base};
        for (int i = 0; i < p->n_bufs; i++) {
            KBuf *b = &p->bufs[i];
            const KLive *l = &plan->live[i];
            if ((int)b->cls != c || o->no_reuse || l->func != K_LIVE_ALWAYS || l->phase == K_PHASE_ALL)
                continue;
            b->offset = end_local[l->phase];
            end_local[l->phase] += aligned_bytes(b);
            slot_of[i] = n;
            slots[n++] = (Slot){i, l->func, -1, -1, l->phase, aligned_bytes(b), b->offset};
        }
        int n_fixed = n;
        /* one slot per in-place chain: the union of its members' lives */
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < p->n_bufs; i++) {
                const KBuf *b = &p->bufs[i];
                const KLive *l = &plan->live[i];
                int r = find_rep(rep, i);
                if ((int)b->cls != c || o->no_reuse || l->func == K_LIVE_ALWAYS || (r == i) != (pass == 0))
                    continue;
                if (r == i) {
                    slot_of[i] = n;
                    slots[n++] = (Slot){i, l->func, l->first, l->last, l->phase, aligned_bytes(b), -1};
                    continue;
                }
                Slot *s = &slots[slot_of[r]];
                if (l->first < s->first)
                    s->first = l->first;
                if (l->last > s->last)
                    s->last = l->last;
                if (aligned_bytes(b) > s->bytes)
                    s->bytes = aligned_bytes(b);
            }
        int64_t loc[K_PHASE_COUNT] = {0, end_local[K_PHASE_FULL] - base, end_local[K_PHASE_LORA] - base};
        plan->lower_bound[c] = o->no_reuse ? base : lower_bound(p, slots + n_fixed, n - n_fixed, base, loc);
        qsort(slots + n_fixed, (size_t)(n - n_fixed), sizeof *slots, cmp_slot);
        p->pool_bytes[c] = place_slots(slots, n_fixed, n, base, o->first_fit);
        for (int s = 0; s < n; s++)
            slot_of[slots[s].rep] = s; /* sorting moved them */
        for (int i = 0; i < p->n_bufs; i++) {
            KBuf *b = &p->bufs[i];
            const KLive *l = &plan->live[i];
            if ((int)b->cls == c && !o->no_reuse && (l->func != K_LIVE_ALWAYS || l->phase != K_PHASE_ALL))
                b->offset = slots[slot_of[find_rep(rep, i)]].offset;
        }
        if (c == IR_CLASS_SCRATCH) {
            /* each phase's need for values: the most any one of its functions (or a
             * common one) has above the globals live with it */
            for (int ph = K_PHASE_FULL; ph < K_PHASE_COUNT; ph++) {
                int64_t most = 0;
                for (int s = n_fixed; s < n; s++) {
                    const Slot *sl = &slots[s];
                    if (sl->func == K_LIVE_NEVER)
                        continue;
                    int fph = sl->func >= 0 ? (int)k_func_phase(p->funcs[sl->func]->name) : K_PHASE_ALL;
                    if (fph != ph && fph != K_PHASE_ALL)
                        continue;
                    int64_t top = sl->offset + sl->bytes - base - (phased ? local_bytes(loc, fph) : 0);
                    if (top > most)
                        most = top;
                }
                plan->phase_bytes[ph][IR_CLASS_SCRATCH] = pinned_values + most;
            }
        }
    }
    /* each phase's globals: the common ones and its own; derived copies in both */
    for (int i = 0; i < p->n_bufs; i++) {
        const KBuf *b = &p->bufs[i];
        if (is_derived_state(b))
            for (int ph = K_PHASE_FULL; ph < K_PHASE_COUNT; ph++)
                plan->phase_bytes[ph][IR_CLASS_FROZEN] += aligned_bytes(b);
        if (!b->global)
            continue;
        for (int ph = K_PHASE_FULL; ph < K_PHASE_COUNT; ph++)
            if (b->phase == K_PHASE_ALL || b->phase == ph)
                plan->phase_bytes[ph][b->global->cls] += aligned_bytes(b);
    }
    free(slot_of);
    free(slots);
    free(rep);
    return plan;
}
