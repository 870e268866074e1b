/* Kernel IR: the loop-level form that both backends emit (LLVM for the CPU, CUDA C for
 * the GPU). The kernelizer turns each fusion group of a graph function into one
 * kernel; a KProgram is one graph function as a sequence of kernels over planned
 * buffers. A loop kernel is a parallel loop over `outer` rows with, inside each row,
 * `n_phases` sequential loops over `inner` columns; scalar SSA instructions compute
 * loads, math, per-row reductions (usable in later phases) and stores. GEMMs stay
 * GEMMs (BLAS/cuBLAS) and a few operations are runtime calls. The instructions, their
 * value types and their C forms are one table, ir/kinstr.def.
 *
 *   rmsnorm x[N,C], w[C] -> y[N,C] as one loop kernel, outer = N, inner = C:
 *     %0 = outer_index 0            (phase -1: once per row)
 *     %1 = imul %0, C               %2 = inner_index      (phase 0)
 *     %3 = iadd %1, %2              %4 = load x, %3       %5 = mul %4, %4
 *     %6 = reduce_sum %5            (phase 0; the row sum, visible from phase 1)
 *     ... phase 1: y[%3'] = x * rsqrt(%6 / C + eps) * w[%2']
 */
#ifndef RELORAC_KERNEL_H
#define RELORAC_KERNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ir.h"

/* A buffer: one planned allocation that kernels read and write. */
typedef struct KBuf {
    int id;                 /* index in KProgram.bufs */
    const char *name;       /* the global's name, or "v<node id>" for a value */
    IrDType dtype;
    int64_t numel;
    IrMemClass cls;         /* the pool it lives in: a global's own class, or (after planning)
                               IR_CLASS_SCRATCH for every buffer planned by liveness: values, and
                               the globals of one training phase when planned phase-aware */
    int64_t offset;         /* bytes from the pool base */
    const IrGlobal *global; /* set when the buffer holds a global */
    int phase;              /* enum KPhase: for a global, the phase in which it holds a value
                               (set by the plan); K_PHASE_ALL for values */
} KBuf;

/* The instructions (ir/kinstr.def states each one's types and semantics). */
typedef enum {
#define KINSTR(id, name, result, operands, cexpr, doc) KI_##id,
#include "kinstr.def"
#undef KINSTR
    KI_COUNT
} KInstrOp;

/* What kinstr.def says of an instruction. */
typedef struct KInstrInfo {
    const char *name;     /* "iadd" */
    char result;          /* 'I' int, 'F' float, 'B' bool, '?' the type of b and c, '-' none */
    const char *operands; /* one letter per operand a, b, c: 'I', 'F', 'B', '?' */
    const char *cexpr;    /* C expression over $a $b $c, or "" */
    const char *doc;
} KInstrInfo;

extern const KInstrInfo k_instr_info[KI_COUNT];

static inline bool k_instr_is_store(KInstrOp op) { return op == KI_STORE || op == KI_STORE_ADD; }
static inline bool k_instr_is_reduce(KInstrOp op) { return op == KI_REDUCE_SUM || op == KI_REDUCE_MAX; }
/* Reads or writes KInstr.buf. */
static inline bool k_instr_has_buf(KInstrOp op)
{
    return op == KI_LOAD || op == KI_LOAD_I || k_instr_is_store(op);
}

/* Host scalars a loop kernel may read (KI_SCALAR_ARG). */
typedef enum { KS_STEP, KS_COUNT } KScalarArg;

typedef struct KInstr {
    KInstrOp op;
    int phase;          /* -1: once per outer row before the phase loops; k < n_phases: in loop k;
                           n_phases: once per row after the loops (reductions are visible) */
    int a, b, c;        /* operand instruction indices (-1 unused) */
    int buf;            /* KI_LOAD*, KI_STORE*: buffer id */
    int axis;           /* KI_OUTER_INDEX */
    int64_t ival;       /* KI_ICONST; RNG stream */
    double fval;        /* KI_CONST */
    int sarg;           /* KI_SCALAR_ARG */
} KInstr;

typedef enum {
    K_LOOP,  /* instructions over outer x phases x inner */
    K_GEMM,  /* batched C = alpha op(A) op(B) + beta C */
    K_CALL,  /* a runtime routine (see KCallKind) */
    K_ATTENTION, /* fused attention, forward or backward, over tiles (KAttention) */
    K_HEAD_LOSS, /* the LM head's GEMM and cross-entropy over row chunks (KHeadLoss) */
} KernelKind;

typedef enum {
    KC_PRUNE_MAGNITUDE, /* bufs: x, step i32[], p f32[]: zero exactly ceil(p n) smallest |x|, ties by lower index */
    KC_PRUNE_RANDOM,    /* bufs: x, step i32[], p f32[]: zero x[i] where uniform(rng(seed, stream, step n + i)) < p */
    KC_COUNT
} KCallKind;

typedef struct KGemm {
    bool trans_a, trans_b;
    int64_t m, n, k, batch;
    int a, b, c;                    /* buffer ids */
    int64_t off_a, off_b, off_c;    /* element offsets into the buffers */
    int64_t lda, ldb, ldc;          /* row strides (elements) */
    int64_t stride_a, stride_b, stride_c; /* batch strides (elements; 0 = shared) */
    double alpha, beta;
} KGemm;

/* Fused attention (graph ops attention / attention_grad) on dense row-major
 * q, dy, y, dq [B,H,T,D], k, v, dk, dv [B,Hkv,T,D], lse [B,H,T]; query head h reads kv
 * head h / (H / Hkv). The algorithm, which every backend implements as written (the
 * kernel interpreter in f64, runtime/rt_fused.c in f32):
 *   forward, one task per (b, h, query tile of tile_q rows), in any order: for each key
 *     tile of tile_k keys up to the one holding the tile's last row (causal; all tiles
 *     otherwise; tiles wholly above the diagonal are never touched), in order:
 *     S = scale Q K^T with j > i masked; m' = max(m, rowmax S); P = exp(S - m');
 *     l = l exp(m - m') + rowsum P; acc = acc exp(m - m') + P V; m = m'.
 *     Then y = acc / l and lse = m + log l (m starts at -inf, l and acc at 0).
 *   backward, one task per (b, kv head), so that the kv heads' sums over queries and
 *     query heads, and dq's sum over key tiles, each run in one thread in one order:
 *     dq = 0 for the group's heads; for each key tile, in order: dK = dV = 0; for each
 *     query head of the group, in order, for each query tile from the one holding the
 *     key tile's first key (causal; else the first) to the last, in order:
 *     P = exp(scale Q K^T - lse) masked; dV += P^T dY; dP = dY V^T;
 *     dS = P (dP - delta), delta_i = dy_i . y_i; dQ += scale dS K; dK += scale dS^T Q.
 *     Then dk, dv of the key tile = dK, dV.
 * Work is split over tasks only, never over a sum, so results do not depend on the
 * number of threads. */
typedef struct KAttention {
    bool backward; /* false: y, lse from q, k, v; true: dq, dk, dv from dy, q, k, v, y, lse */
    bool causal;
    double scale;
    int64_t batch, heads, kv_heads, seq, head_dim; /* B, H, Hkv, T, D */
    int64_t tile_q, tile_k;                        /* rows of a query tile, keys of a key tile */
    int q, k, v, y, lse;                           /* buffers; lse -1: a forward no backward reads */
    int dy, dq, dk, dv;                            /* backward only; dk, dv -1 when unused */
} KAttention;

/* loss = mean_n (logsumexp(z_n) - z_n[t_n]) with z = x w^T, x[N,C], w[V,C], t[N] i32
 * (graph ops linear_cross_entropy / linear_cross_entropy_grad), never holding z whole.
 * For each chunk of `chunk` rows, in order: Z = X_chunk W^T into `work`; per row
 * (parallel): lse, the row's loss into work[chunk * V + r], and, for gradients,
 * Z = g (softmax(Z) - onehot(t)) with g = dloss / N; then the chunk's losses are summed in
 * row order; dx rows = Z W; dw (+)= Z^T X_chunk (the first chunk overwrites). */
typedef struct KHeadLoss {
    int64_t rows, dim, vocab; /* N, C, V */
    int64_t chunk;            /* rows per chunk (the last may be shorter) */
    int x, w, targets;
    int loss;                 /* f32[] the mean loss, or -1 */
    int dx, dw;               /* the gradients, or -1 (not computed) */
    int dloss;                /* f32[] holding dloss, or -1: dloss = grad_scale */
    double grad_scale;
    int work;                 /* scratch f32[chunk * V + chunk] */
    /* precision bf16 (kprecision.c): bf16 copies of x and w for the GEMMs, and bf16 [chunk, V]
     * for the gradient rows the dx and dw GEMMs read; -1 otherwise (the interpreter and the
     * CPU backend ignore them) */
    int x16, w16, work16;
} KHeadLoss;

typedef struct Kernel {
    int id;
    const char *name;        /* "k12_rmsnorm": from the first node's id and op */
    KernelKind kind;
    SrcLoc loc;              /* of the graph node(s) it implements */
    /* K_LOOP */
    int n_outer;             /* outer rank 0..3; the parallel loop runs over their product */
    int64_t outer[3];
    int64_t inner;           /* columns of each phase loop (>= 1) */
    int n_phases;            /* >= 1 */
    KInstr *code;
    int n_code, cap_code;
    /* K_GEMM */
    KGemm gemm;
    /* K_ATTENTION, K_HEAD_LOSS */
    KAttention attn;
    KHeadLoss head;
    /* K_CALL */
    KCallKind call;
    int call_bufs[4];
    int n_call_bufs;
    IrAttrs call_attrs;      /* the graph node's attributes (fraction, mode, stream, schedule...) */
} Kernel;

/* The rows of a loop kernel: the product of its outer extents (1 without any). */
static inline int64_t k_loop_rows(const Kernel *k)
{
    int64_t rows = 1;
    for (int i = 0; i < k->n_outer; i++)
        rows *= k->outer[i];
    return rows;
}

/* One graph function as kernels, in execution order. */
typedef struct KFunc {
    const char *name;        /* the graph function's name */
    Kernel **kernels;
    int n_kernels, cap_kernels;
    int ret_buf;             /* buffer holding the returned scalar, or -1 */
} KFunc;

typedef struct KProgram {
    Arena *arena;
    const IrModule *m;
    KBuf *bufs;
    int n_bufs, cap_bufs;
    int *global_buf;         /* IrGlobal id -> buffer id */
    KFunc **funcs;
    int n_funcs;
    int64_t pool_bytes[IR_CLASS_COUNT];
} KProgram;

/* Turns every function of m into kernels. Uses the fusion groups (IrNode.group) and
 * memory plan (node attrs) when the passes set them; otherwise one kernel per node and
 * a buffer per value. Applies the precision policy (k_program_precision) and plans.
 * False after diagnostics (an op the backends cannot run). */
KProgram *k_program_build(Arena *a, Diags *d, const IrModule *m);
/* The precision policy of the module's train.precision (ir/kprecision.c states it): for
 * bf16, bf16 copies of GEMM operands, persistent copies of the frozen W refreshed at
 * init, switch, relora_reset and in a new function @refresh. Before planning. */
void k_program_precision(KProgram *p);
KFunc *k_program_func(const KProgram *p, const char *name);

/* ---- buffer planning (ir/kplan.c) ----
 * Globals get fixed, non-overlapping offsets in their class pools, in id order. Values
 * share bytes by liveness in one pool (IR_CLASS_SCRATCH): a value buffer is live from the
 * first kernel of its function that touches it to the last (the returned one to the
 * end), and functions run one at a time, so their values may share space. Slots are
 * placed largest first at the best-fitting gap among the slots live at the same time,
 * 64-byte aligned. An elementwise output may take the bytes of an input that dies in the
 * same kernel (in place) only when every read of that input is at the store's own index.
 *
 * Phases: a ReLoRA program trains in two phases one after the other (the full-rank warm
 * start, then ReLoRA; docs/ir.md "Step policy"), and some globals hold a value in one of
 * them only: the gradients and Adam moments of the adapted W in the first, those of the
 * adapters in the second. Planned phase-aware, such a global lives in the scratch pool
 * too, live through every function of its phase, so the two phases' globals share bytes
 * with each other and with the other phase's values; the program's peak is the larger
 * phase's. docs/passes.md, memplan, says which globals qualify. k_program_build plans
 * with the defaults. */

/* The training phase of a function (by name, as the step policy runs them):
 * train_full, norm_full, update_full run in the full-rank phase; switch, train_lora,
 * norm_lora, update_lora, relora_reset in the ReLoRA phase; init, eval, logits (and any
 * other) in either. */
typedef enum { K_PHASE_ALL, K_PHASE_FULL, K_PHASE_LORA, K_PHASE_COUNT } KPhase;
KPhase k_func_phase(const char *name);

/* Where a buffer is live: kernels [first, last] of p->funcs[func]. func = K_LIVE_NEVER:
 * no kernel touches it; K_LIVE_ALWAYS: a global, or a value used by several functions,
 * live in every function of `phase` (and of K_PHASE_ALL); K_PHASE_ALL: in all of them.
 * A value's phase is its function's. */
enum { K_LIVE_NEVER = -1, K_LIVE_ALWAYS = -2 };
typedef struct KLive {
    int func;
    int first, last;
    int phase; /* enum KPhase */
} KLive;

/* A zeroed struct (or NULL) asks for the default plan: reuse, best fit, in place,
 * phase-aware. */
typedef struct KPlanOptions {
    bool no_reuse;    /* every buffer its own bytes, in id order: the layout before planning */
    bool first_fit;   /* the lowest gap that fits instead of the smallest */
    bool no_in_place; /* never give an output the bytes of an input dying in its kernel */
    bool no_phases;   /* one layout for both phases: every global in its class pool */
} KPlanOptions;

typedef struct KPlan {
    KLive *live;                         /* per buffer */
    int *in_place_of;                    /* per buffer: the buffer whose bytes it took, or -1 */
    int n_in_place;
    int64_t lower_bound[IR_CLASS_COUNT]; /* most bytes live at one kernel (no plan does better) */
    /* Each phase alone (whatever the layout): has_phase[ph] when a function runs in phase
     * ph; phase_bytes[ph][c] the aligned bytes of the globals of class c that hold a value
     * in ph (common ones and ph's own), and under IR_CLASS_SCRATCH the most value bytes
     * one of ph's functions (or a common one) needs. [K_PHASE_ALL] is unused. Planned
     * phase-aware, the program's total is the larger phase's total. */
    bool has_phase[K_PHASE_COUNT];
    int64_t phase_bytes[K_PHASE_COUNT][IR_CLASS_COUNT];
} KPlan;

/* True when two buffers may be live during one kernel. */
bool k_live_overlap(const KLive *x, const KLive *y);
/* Sets every KBuf.offset, cls and phase and KProgram.pool_bytes; the plan lives in
 * p->arena. */
KPlan *k_program_plan(KProgram *p, const KPlanOptions *o);

/* Prints kernels readably (for dumps and golden tests). */
void k_print(const KProgram *p, FILE *out);

/* The kernel interpreter: runs a KFunc over f64 buffers. It checks the kernelizer
 * against the graph interpreter, independent of any backend. */
typedef struct KInterp KInterp;
KInterp *k_interp_create(const KProgram *p, uint64_t seed);
void k_interp_destroy(KInterp *it);
double *k_interp_buf(KInterp *it, int buf);
double k_interp_run(KInterp *it, const KFunc *f, int64_t step);

const char *k_instr_name(KInstrOp op);

#endif
