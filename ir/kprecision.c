/* The precision policy, one for every backend: what train.precision = bf16 changes in a
 * kernel program (k_program_build applies it before planning; fp32 changes nothing).
 *
 *   - Parameters, gradients, Adam moments, activations and every loop kernel's arithmetic
 *     stay f32. The operands of GEMMs become bf16 copies, made by a conversion kernel
 *     before the first GEMM that reads a buffer since it last changed; the GEMM accumulates
 *     and writes f32 (cuBLAS: bf16 inputs, f32 compute and output).
 *   - A frozen base weight W (one with an adapter) keeps its f32 master and is merged in
 *     f32 (W += s B A: the merge GEMM, like every GEMM that writes persistent state, keeps
 *     f32 operands). Its bf16 copy is persistent and refreshed where W changes for the
 *     ReLoRA phase: at the end of @init, @switch and @relora_reset, and by the new function
 *     @refresh, which the runtime runs after loading a checkpoint. @train_lora reads the
 *     copy as is; every other function converts W itself (in the warm start W trains).
 *   - The fused head loss reads bf16 copies of x and w for its GEMMs and writes its
 *     gradient rows both in f32 and in bf16 (KHeadLoss.x16, w16, work16); the fused
 *     attention stays f32.
 * The kernel interpreter follows (its stores into bf16 buffers round), so the conversions
 * are checked against the graph as any kernel is. docs/cuda.md "Precision". */
#include "kernel.h"

#include <string.h>

typedef struct Prec {
    KProgram *p;
    Arena *a;
    int *shadow;      /* buffer -> its bf16 copy, or -1 */
    bool *persistent; /* buffer -> an adapted W, whose copy persists */
    bool *valid;      /* buffer -> its copy holds its current value (per function) */
    int n_cvt;
} Prec;

static int buf_add(Prec *pr, const char *name, IrDType dt, int64_t numel, IrMemClass cls)
{
    KProgram *p = pr->p;
    if (p->n_bufs == p->cap_bufs) {
        int cap = p->cap_bufs ? p->cap_bufs * 2 : 64;
        p->bufs = arena_grow(pr->a, p->bufs, (size_t)p->n_bufs, (size_t)cap, sizeof *p->bufs);
        p->cap_bufs = cap;
    }
    KBuf *b = &p->bufs[p->n_bufs];
    memset(b, 0, sizeof *b);
    b->id = p->n_bufs;
    b->name = name;
    b->dtype = dt;
    b->numel = numel;
    b->cls = cls;
    return p->n_bufs++;
}

/* The bf16 copy of buffer b, made on first need. A copy of an adapted W persists (frozen
 * class, a fixed place); any other is a value that lives from its conversion to its last
 * GEMM (scratch class). */
static int shadow_of(Prec *pr, int b)
{
    if (pr->shadow[b] < 0) {
        const KBuf *kb = &pr->p->bufs[b];
        int s = buf_add(pr, arena_sprintf(pr->a, "%s.bf16", kb->name ? kb->name : "v"), IR_BF16, kb->numel,
                        pr->persistent[b] ? IR_CLASS_FROZEN : IR_CLASS_SCRATCH);
        pr->shadow = arena_grow(pr->a, pr->shadow, (size_t)s, (size_t)pr->p->n_bufs, sizeof *pr->shadow);
        pr->persistent = arena_grow(pr->a, pr->persistent, (size_t)s, (size_t)pr->p->n_bufs, sizeof *pr->persistent);
        pr->valid = arena_grow(pr->a, pr->valid, (size_t)s, (size_t)pr->p->n_bufs, sizeof *pr->valid);
        pr->shadow[s] = -1;
        pr->shadow[b] = s;
    }
    return pr->shadow[b];
}

/* copy[i] = bf16(src[i]) over every element: one flat loop kernel. */
static Kernel *convert_kernel(Prec *pr, const KFunc *f, int src, int copy)
{
    Kernel *k = ARENA_NEW(pr->a, Kernel);
    k->kind = K_LOOP;
    k->name = arena_sprintf(pr->a, "%s_cvt%d_bf16", f->name, pr->n_cvt++);
    k->loc = srcloc_none();
    k->n_outer = 1;
    k->outer[0] = 1;
    k->inner = pr->p->bufs[src].numel;
    k->n_phases = 1;
    k->code = ARENA_ARRAY(pr->a, KInstr, 3);
    k->n_code = k->cap_code = 3;
    for (int i = 0; i < 3; i++)
        k->code[i] = (KInstr){.a = -1, .b = -1, .c = -1, .buf = -1};
    k->code[0].op = KI_INNER_INDEX;
    k->code[1] = (KInstr){.op = KI_LOAD, .a = 0, .b = -1, .c = -1, .buf = src};
    k->code[2] = (KInstr){.op = KI_STORE, .a = 0, .b = 1, .c = -1, .buf = copy};
    return k;
}

static void invalidate(Prec *pr, int b)
{
    if (b >= 0)
        pr->valid[b] = false;
}

/* The buffers kernel k writes: their copies are stale after it. */
static void invalidate_writes(Prec *pr, const Kernel *k)
{
    switch (k->kind) {
    case K_LOOP:
        for (int i = 0; i < k->n_code; i++)
            if (k_instr_is_store(k->code[i].op))
                invalidate(pr, k->code[i].buf);
        break;
    case K_GEMM: invalidate(pr, k->gemm.c); break;
    case K_CALL: invalidate(pr, k->call_bufs[0]); break;
    case K_ATTENTION:
        invalidate(pr, k->attn.y);
        invalidate(pr, k->attn.lse);
        invalidate(pr, k->attn.dq);
        invalidate(pr, k->attn.dk);
        invalidate(pr, k->attn.dv);
        break;
    case K_HEAD_LOSS:
        invalidate(pr, k->head.loss);
        invalidate(pr, k->head.dx);
        invalidate(pr, k->head.dw);
        invalidate(pr, k->head.work);
        break;
    }
}

/* A GEMM writing persistent state (a merge into W) keeps f32 operands. */
static bool updates_state(const KProgram *p, int c)
{
    IrMemClass cl = p->bufs[c].cls;
    return p->bufs[c].global &&
           (cl == IR_CLASS_PARAM || cl == IR_CLASS_FROZEN || cl == IR_CLASS_OPTIM || cl == IR_CLASS_STATE);
}

typedef struct KList {
    Kernel **k;
    int n, cap;
} KList;

static void klist_add(Prec *pr, KList *l, Kernel *k)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        l->k = arena_grow(pr->a, l->k, (size_t)l->n, (size_t)cap, sizeof *l->k);
        l->cap = cap;
    }
    l->k[l->n++] = k;
}

/* The bf16 copy of buffer b, current: a conversion kernel into l when it is stale. */
static int current_copy(Prec *pr, KList *l, const KFunc *f, int b)
{
    int s = shadow_of(pr, b);
    if (!pr->valid[b]) {
        klist_add(pr, l, convert_kernel(pr, f, b, s));
        pr->valid[b] = true;
    }
    return s;
}

static void rewrite_func(Prec *pr, KFunc *f)
{
    const KProgram *p = pr->p;
    bool lora_step = strcmp(f->name, "train_lora") == 0;
    for (int b = 0; b < p->n_bufs; b++)
        pr->valid[b] = lora_step && pr->persistent[b]; /* refreshed where W changes */
    KList l = {0};
    for (int i = 0; i < f->n_kernels; i++) {
        Kernel *k = f->kernels[i];
        if (k->kind == K_GEMM && !updates_state(p, k->gemm.c)) {
            KGemm *g = &k->gemm;
            if (p->bufs[g->a].dtype == IR_F32)
                g->a = current_copy(pr, &l, f, g->a);
            if (p->bufs[g->b].dtype == IR_F32)
                g->b = current_copy(pr, &l, f, g->b);
        } else if (k->kind == K_HEAD_LOSS) {
            KHeadLoss *h = &k->head;
            h->x16 = current_copy(pr, &l, f, h->x);
            h->w16 = current_copy(pr, &l, f, h->w);
            if (h->dx >= 0 || h->dw >= 0)
                h->work16 = buf_add(pr, arena_sprintf(pr->a, "%s.bf16", p->bufs[h->work].name), IR_BF16,
                                    h->chunk * h->vocab, IR_CLASS_SCRATCH);
        }
        klist_add(pr, &l, k);
        invalidate_writes(pr, k);
    }
    f->kernels = l.k;
    f->n_kernels = f->cap_kernels = l.n;
    for (int i = 0; i < l.n; i++)
        l.k[i]->id = i;
}

/* Conversions of every adapted W into its persistent copy, at the end of f. */
static void append_refresh(Prec *pr, KFunc *f)
{
    KList l = {f->kernels, f->n_kernels, f->cap_kernels};
    for (int b = 0; b < pr->p->n_bufs; b++)
        if (pr->persistent[b])
            klist_add(pr, &l, convert_kernel(pr, f, b, shadow_of(pr, b)));
    f->kernels = l.k;
    f->n_kernels = l.n;
    f->cap_kernels = l.cap;
    for (int i = 0; i < l.n; i++)
        l.k[i]->id = i;
}

void k_program_precision(KProgram *p)
{
    const char *prec = p->m ? ir_attrs_str(&p->m->attrs, "train.precision", "fp32") : "fp32";
    if (strcmp(prec, "bf16") != 0)
        return;
    Prec pr = {.p = p, .a = p->arena};
    int n = p->n_bufs;
    pr.shadow = ARENA_ARRAY(pr.a, int, n + 1);
    pr.persistent = ARENA_ARRAY(pr.a, bool, n + 1);
    pr.valid = ARENA_ARRAY(pr.a, bool, n + 1);
    for (int b = 0; b < n; b++) {
        pr.shadow[b] = -1;
        const IrGlobal *g = p->bufs[b].global;
        pr.persistent[b] = g && p->bufs[b].dtype == IR_F32 && ir_attrs_get(&g->attrs, "lora_a");
    }
    for (int i = 0; i < p->n_funcs; i++)
        rewrite_func(&pr, p->funcs[i]);
    bool any = false;
    for (int b = 0; b < n; b++)
        any |= pr.persistent[b];
    if (!any)
        return;
    /* where W changes for the ReLoRA phase, and @refresh for a checkpoint load */
    static const char *const at_end[] = {"init", "switch", "relora_reset"};
    for (size_t i = 0; i < sizeof at_end / sizeof *at_end; i++) {
        KFunc *f = k_program_func(p, at_end[i]);
        if (f)
            append_refresh(&pr, f);
    }
    KFunc *r = ARENA_NEW(pr.a, KFunc);
    r->name = "refresh";
    r->ret_buf = -1;
    append_refresh(&pr, r);
    p->funcs = arena_grow(pr.a, p->funcs, (size_t)p->n_funcs, (size_t)p->n_funcs + 1, sizeof *p->funcs);
    p->funcs[p->n_funcs++] = r;
}
