/* Buffer planning on a KProgram: the byte offset of every buffer in its class pool and
 * the pool sizes. Globals are laid out once, in id order; values share bytes by
 * liveness over each function's kernel sequence (greedy by size, as TFLite's and XLA's
 * heap simulators do), optionally in place. The planner only reads the kernels; it
 * never changes what they compute. Contract and in-place rule: kernel.h, docs/passes.md. */
#include "kernel.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN 64

static int64_t aligned_bytes(const KBuf *b)
{
    int64_t bytes = b->numel * ir_dtype_bytes(b->dtype);
    return (bytes + ALIGN - 1) / ALIGN * ALIGN;
}

static bool is_value_class(IrMemClass c) { return c == IR_CLASS_ACTIVATION || c == IR_CLASS_SCRATCH; }

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
    } else {
        if (t->kernel < l->first)
            l->first = t->kernel;
        if (t->kernel > l->last)
            l->last = t->kernel;
    }
}

KLive *k_program_liveness(Arena *a, const KProgram *p)
{
    KLive *live = ARENA_ARRAY(a, KLive, p->n_bufs + 1);
    for (int i = 0; i < p->n_bufs; i++) {
        live[i].func = p->bufs[i].global || !is_value_class(p->bufs[i].cls) ? K_LIVE_ALWAYS : K_LIVE_NEVER;
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
    return live;
}

bool k_live_overlap(const KLive *x, const KLive *y)
{
    if (x->func == K_LIVE_NEVER || y->func == K_LIVE_NEVER)
        return false;
    if (x->func == K_LIVE_ALWAYS || y->func == K_LIVE_ALWAYS)
        return true;
    return x->func == y->func && x->first <= y->last && y->first <= x->last;
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
    int func, first, last;
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
    KLive x = {a->func, a->first, a->last}, y = {b->func, b->first, b->last};
    return k_live_overlap(&x, &y);
}

/* Places slots[0..n) (sorted largest first) above `base`; returns the pool's end. */
static int64_t place_slots(Slot *slots, int n, int64_t base, bool first_fit)
{
    int64_t end = base;
    Slot **busy = calloc((size_t)n + 1, sizeof *busy);
    for (int i = 0; i < n; i++) {
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

/* The most bytes of class c live during one kernel: pinned bytes plus the largest sum
 * of slots live together. */
static int64_t lower_bound(const KProgram *p, const Slot *slots, int n, int64_t pinned)
{
    int64_t best = 0;
    for (int fi = 0; fi < p->n_funcs; fi++)
        for (int ki = 0; ki < p->funcs[fi]->n_kernels; ki++) {
            int64_t sum = 0;
            for (int i = 0; i < n; i++)
                if (slots[i].func == fi && slots[i].first <= ki && ki <= slots[i].last)
                    sum += slots[i].bytes;
            if (sum > best)
                best = sum;
        }
    return pinned + best;
}

KPlan *k_program_plan(KProgram *p, const KPlanOptions *o)
{
    KPlanOptions dflt = {0};
    if (!o)
        o = &dflt;
    KPlan *plan = ARENA_NEW(p->arena, KPlan);
    plan->live = k_program_liveness(p->arena, p);
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
    for (int c = 0; c < IR_CLASS_COUNT; c++) {
        /* pinned buffers (and, without reuse, all of them) in id order at the bottom */
        int64_t base = 0;
        for (int i = 0; i < p->n_bufs; i++) {
            KBuf *b = &p->bufs[i];
            if ((int)b->cls != c || (!o->no_reuse && plan->live[i].func != K_LIVE_ALWAYS))
                continue;
            b->offset = base;
            base += aligned_bytes(b);
        }
        /* one slot per in-place chain: the union of its members' lives */
        int n = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < p->n_bufs; i++) {
                const KBuf *b = &p->bufs[i];
                const KLive *l = &plan->live[i];
                int r = find_rep(rep, i);
                if ((int)b->cls != c || o->no_reuse || l->func == K_LIVE_ALWAYS || (r == i) != (pass == 0))
                    continue;
                if (r == i) {
                    slot_of[i] = n;
                    slots[n++] = (Slot){i, l->func, l->first, l->last, aligned_bytes(b), -1};
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
        plan->lower_bound[c] = o->no_reuse ? base : lower_bound(p, slots, n, base);
        qsort(slots, (size_t)n, sizeof *slots, cmp_slot);
        p->pool_bytes[c] = place_slots(slots, n, base, o->first_fit);
        for (int s = 0; s < n; s++)
            slot_of[slots[s].rep] = s; /* sorting moved them */
        for (int i = 0; i < p->n_bufs; i++) {
            KBuf *b = &p->bufs[i];
            if ((int)b->cls == c && !o->no_reuse && plan->live[i].func != K_LIVE_ALWAYS)
                b->offset = slots[slot_of[find_rep(rep, i)]].offset;
        }
    }
    free(slot_of);
    free(slots);
    free(rep);
    return plan;
}
