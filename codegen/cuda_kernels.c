/* Loop kernels (K_LOOP) as CUDA C, one __global__ function each, in one of four shapes
 * (CuMap; docs/cuda.md "Loop kernels"):
 *   flat    one phase, no reductions, no per-row stores: a grid-stride loop over every
 *           (row, column); elementwise kernels, coalesced;
 *   warp    a warp per row: each phase loop strided over the 32 lanes, reductions by
 *           warp shuffles, a value read after its phase broadcast from the lane that
 *           computed the last column (the kernel interpreter's "last column" rule);
 *   block   the same with a block per row (wide rows): block reductions through shared
 *           memory;
 *   serial  a thread per row, columns in order: when two columns of a row may store to
 *           one address (a scatter-add) or read what another column stores.
 * Rows run in parallel unless a store's address ignores the row (several rows write one
 * place, e.g. a sum into a scalar): then one group runs every row in order, as the CPU
 * backend then runs the kernel serially. Integer values are `int` when their range (from
 * the extents and constants) fits 32 bits, else `long long`; floats are f32. */
#include <string.h>

#include "cuda.h"

typedef struct Range {
    int64_t lo, hi;
} Range;

typedef struct LoopEmit {
    CuProgram *cp;
    const Kernel *k;
    CuText *t;
    Arena *a;
    int n, P;          /* instructions, phases */
    int64_t rows, C;
    char *type;        /* per instruction: 'i' int, 'l' long long, 'f' float, 'b' bool (int), 0 none */
    Range *range;
    char *range_done;
    bool *cross;       /* a phase-loop value read in a later phase */
    bool *emitted;
    int cur;           /* the phase being written: -1, 0..P-1, P */
    CuMap map;
    int G;             /* lanes per row */
    int *slot;         /* per reduction or cross value in block mode: its shared slot */
    int n_red_slots, n_x_slots;
    int *bufs;         /* the kernel's buffers, in order of first use */
    int nb;
    int *pos;          /* buffer id -> its parameter p<pos> */
    int64_t *at;       /* buffer id -> the one constant index every access uses, or -1 */
    bool *live;        /* a value some store, reduction or live value reads */
    int extra_indent;  /* inside a guard */
    CuKernel draft;
    CuText body;       /* the kernel's text, named KNAME */
    bool in_order;
    bool uses_step, uses_seed;
    int64_t streams[8]; /* the RNG streams, in order of first use: key<i>, a parameter each */
    int n_streams;
} LoopEmit;

/* ---- analysis ---- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

#define SAT (INT64_C(1) << 62)

static int64_t clamp_sat(int64_t v) { return v > SAT ? SAT : v < -SAT ? -SAT : v; }

/* Saturating at +-2^62: operands are within it, so sums and differences fit in int64. */
static int64_t sat_add(int64_t a, int64_t b) { return clamp_sat(a + b); }

static int64_t sat_mul(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return (a < 0) != (b < 0) ? -SAT : SAT;
    return clamp_sat(r);
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static Range range_of(LoopEmit *e, int i);

static Range operand_range(LoopEmit *e, int i)
{
    return i >= 0 ? range_of(e, i) : (Range){0, 0};
}

/* The values an integer instruction can take (the kernelizer's operands are >= 0 where
 * it divides). */
static Range range_of(LoopEmit *e, int i)
{
    if (e->range_done[i])
        return e->range[i];
    const KInstr *in = &e->k->code[i];
    Range a = in->a >= 0 && strlen(k_instr_info[in->op].operands) > 0 ? operand_range(e, in->a) : (Range){0, 0};
    Range b = in->b >= 0 && strlen(k_instr_info[in->op].operands) > 1 ? operand_range(e, in->b) : (Range){0, 0};
    Range r = {0, 0};
    switch (in->op) {
    case KI_OUTER_INDEX: r = (Range){0, e->k->outer[in->axis] - 1}; break;
    case KI_INNER_INDEX: r = (Range){0, e->C - 1}; break;
    case KI_ICONST: r = (Range){in->ival, in->ival}; break;
    case KI_IADD: r = (Range){sat_add(a.lo, b.lo), sat_add(a.hi, b.hi)}; break;
    case KI_ISUB: r = (Range){sat_add(a.lo, -b.hi), sat_add(a.hi, -b.lo)}; break;
    case KI_IMUL: {
        int64_t p[4] = {sat_mul(a.lo, b.lo), sat_mul(a.lo, b.hi), sat_mul(a.hi, b.lo), sat_mul(a.hi, b.hi)};
        r = (Range){p[0], p[0]};
        for (int j = 1; j < 4; j++) {
            r.lo = min64(r.lo, p[j]);
            r.hi = max64(r.hi, p[j]);
        }
        break;
    }
    case KI_IDIV: r = (Range){a.lo / max64(b.hi, 1), a.hi / max64(b.lo, 1)}; break;
    case KI_IREM: r = (Range){0, max64(0, min64(a.hi, b.hi - 1))}; break;
    case KI_IMIN: r = (Range){min64(a.lo, b.lo), min64(a.hi, b.hi)}; break;
    case KI_LOAD_I: r = (Range){INT32_MIN, INT32_MAX}; break;
    case KI_SCALAR_ARG: r = (Range){0, INT32_MAX}; break;
    case KI_SELECT: {
        Range c = operand_range(e, in->c);
        r = (Range){min64(b.lo, c.lo), max64(b.hi, c.hi)};
        break;
    }
    default: r = (Range){0, 1}; break; /* bools; floats have no integer range */
    }
    e->range[i] = r;
    e->range_done[i] = 1;
    return r;
}

static bool fits_int(Range r) { return r.lo >= INT32_MIN && r.hi <= INT32_MAX; }

static char type_of(LoopEmit *e, int i)
{
    if (e->type[i])
        return e->type[i];
    const KInstr *in = &e->k->code[i];
    char t = 0;
    switch (k_instr_info[in->op].result) {
    case 'I': t = fits_int(range_of(e, i)) ? 'i' : 'l'; break;
    case 'F': t = 'f'; break;
    case 'B': t = 'b'; break;
    case '?': {
        char x = type_of(e, in->b), y = type_of(e, in->c);
        t = x == 'f' || y == 'f' ? 'f' : fits_int(range_of(e, i)) ? 'i' : 'l';
        break;
    }
    default: t = 0; break;
    }
    e->type[i] = t;
    return t;
}

static const char *ctype(char t)
{
    return t == 'f' ? "float" : t == 'l' ? "long long" : "int";
}

/* Does instruction i depend on the inner index of its own phase? memo: 0 unknown, 1 no, 2 yes. */
static bool on_inner(const Kernel *k, int i, char *memo)
{
    if (i < 0)
        return false;
    if (memo[i])
        return memo[i] == 2;
    const KInstr *in = &k->code[i];
    bool dep = in->op == KI_INNER_INDEX;
    if (!dep && !k_instr_is_reduce(in->op)) {
        const int ops[3] = {in->a, in->b, in->c};
        for (int j = 0; j < 3 && !dep; j++)
            dep = ops[j] >= 0 && k->code[ops[j]].phase == in->phase && on_inner(k, ops[j], memo);
    }
    memo[i] = dep ? 2 : 1;
    return dep;
}

/* Is instruction i, as a function of its phase's column, one to one (so columns store to
 * distinct addresses)? inner, inner + x, x + inner, inner - x, inner * c (c != 0), with x
 * independent of the column. */
static bool injective(const Kernel *k, int i, char *memo)
{
    const KInstr *in = &k->code[i];
    switch (in->op) {
    case KI_INNER_INDEX: return true;
    case KI_IADD:
        return (injective(k, in->a, memo) && !on_inner(k, in->b, memo)) ||
               (injective(k, in->b, memo) && !on_inner(k, in->a, memo));
    case KI_ISUB: return injective(k, in->a, memo) && !on_inner(k, in->b, memo);
    case KI_IMUL: {
        int x = in->a, c = in->b;
        if (k->code[x].op == KI_ICONST) {
            x = in->b;
            c = in->a;
        }
        return k->code[c].op == KI_ICONST && k->code[c].ival != 0 && injective(k, x, memo);
    }
    default: return false;
    }
}

/* Does instruction i depend on the row? (As llvm_kernels.c: a reduction's value is per row.) */
static bool on_row(const Kernel *k, int i, char *memo)
{
    if (i < 0)
        return false;
    if (memo[i])
        return memo[i] == 2;
    const KInstr *in = &k->code[i];
    bool dep = in->op == KI_OUTER_INDEX || k_instr_is_reduce(in->op);
    if (!dep)
        dep = on_row(k, in->a, memo) || on_row(k, in->b, memo) || on_row(k, in->c, memo);
    memo[i] = dep ? 2 : 1;
    return dep;
}

/* Chooses the shape of the kernel (the file header). */
static void plan(LoopEmit *e)
{
    const Kernel *k = e->k;
    char *inner_memo = ARENA_ARRAY(e->a, char, e->n + 1), *row_memo = ARENA_ARRAY(e->a, char, e->n + 1);
    bool has_red = false, row_stores = false, cols_safe = true;
    bool in_order = false;
    for (int i = 0; i < e->n; i++) {
        const KInstr *in = &k->code[i];
        has_red |= k_instr_is_reduce(in->op);
        if (!k_instr_is_store(in->op))
            continue;
        if (in->phase < 0 || in->phase >= e->P)
            row_stores = true;
        else if (e->C > 1 && !injective(k, in->a, inner_memo))
            cols_safe = false;
        if (e->rows > 1 && !on_row(k, in->a, row_memo))
            in_order = true;
        /* a load of the stored buffer in the same phase must read the store's own index */
        for (int j = 0; j < e->n && cols_safe; j++) {
            const KInstr *ld = &k->code[j];
            if ((ld->op == KI_LOAD || ld->op == KI_LOAD_I) && ld->buf == in->buf && ld->phase == in->phase &&
                ld->a != in->a && e->C > 1)
                cols_safe = false;
        }
    }
    /* values read after their phase */
    for (int i = 0; i < e->n; i++) {
        const KInstr *in = &k->code[i];
        if (!e->live[i])
            continue;
        const int ops[3] = {in->a, in->b, in->c};
        int nops = (int)strlen(k_instr_info[in->op].operands);
        for (int j = 0; j < nops; j++) {
            int x = ops[j];
            if (x < 0 || k_instr_is_reduce(k->code[x].op))
                continue;
            int px = k->code[x].phase;
            if (px >= 0 && px < e->P && in->phase > px)
                e->cross[x] = true;
        }
    }
    e->in_order = in_order;
    if (e->P == 1 && !has_red && !row_stores && cols_safe && !in_order) {
        e->map = CU_MAP_FLAT;
        e->G = 1;
    } else if (!cols_safe) {
        e->map = CU_MAP_SERIAL;
        e->G = 1;
    } else if (e->C <= 256) {
        e->map = CU_MAP_WARP;
        e->G = 32;
    } else {
        e->map = CU_MAP_BLOCK;
        int64_t g = 64;
        while (g < 1024 && g * 8 < e->C)
            g *= 2;
        e->G = (int)g;
    }
}

/* ---- expressions ---- */

static void emit_value(LoopEmit *e, int i);
static const char *index_expr(LoopEmit *e, int i);

/* The C name of value x as seen from the phase being written. */
static const char *ref(LoopEmit *e, int x)
{
    const KInstr *in = &e->k->code[x];
    IR_ASSERT(!k_instr_is_store(in->op));
    if (k_instr_is_reduce(in->op)) {
        IR_ASSERT(e->cur > in->phase); /* a reduction is visible from the next phase on */
        return arena_sprintf(e->a, "r%d", x);
    }
    if (in->phase >= 0 && in->phase < e->P && e->cur > in->phase && e->map != CU_MAP_FLAT)
        return arena_sprintf(e->a, "x%d", x);
    if (!e->emitted[x]) {
        IR_ASSERT(in->phase == e->cur || (e->map == CU_MAP_FLAT && in->phase < e->cur) || in->phase == -1);
        emit_value(e, x);
    }
    return arena_sprintf(e->a, "v%d", x);
}

/* Operand j of instruction i as the table types it; `want` is the result type for '?'. */
static const char *operand(LoopEmit *e, int i, int j, char want)
{
    const KInstr *in = &e->k->code[i];
    const int ops[3] = {in->a, in->b, in->c};
    int x = ops[j];
    const char *r = ref(e, x);
    char tx = type_of(e, x);
    char letter = k_instr_info[in->op].operands[j];
    if (letter == '?')
        letter = want == 'f' ? 'F' : 'I';
    switch (letter) {
    case 'F': return tx == 'f' ? r : arena_sprintf(e->a, "(float)%s", r);
    case 'B': return tx == 'b' ? r : arena_sprintf(e->a, tx == 'f' ? "(%s != 0.0f)" : "(%s != 0)", r);
    default: /* 'I' */
        if (tx == 'f')
            return arena_sprintf(e->a, "(long long)%s", r);
        if (want == 'l' && tx != 'l')
            return arena_sprintf(e->a, "(long long)%s", r);
        return r;
    }
}

/* Substitutes $a $b $c in the table's C form. */
static const char *cexpr(LoopEmit *e, int i, char want)
{
    const char *tpl = k_instr_info[e->k->code[i].op].cexpr;
    CuText t;
    cu_text_init(&t, e->a);
    for (const char *p = tpl; *p; p++) {
        if (*p == '$' && p[1] >= 'a' && p[1] <= 'c') {
            cu_printf(&t, "(%s)", operand(e, i, p[1] - 'a', want));
            p++;
        } else {
            cu_printf(&t, "%c", *p);
        }
    }
    return t.s ? t.s : "";
}

static const char *load_expr(LoopEmit *e, int i, char want)
{
    const KInstr *in = &e->k->code[i];
    const char *idx = index_expr(e, i);
    switch (e->cp->p->bufs[in->buf].dtype) {
    case IR_BF16: return arena_sprintf(e->a, "k_bf16(p%d[%s])", e->pos[in->buf], idx);
    case IR_I32: return arena_sprintf(e->a, want == 'l' ? "(long long)p%d[%s]" : "p%d[%s]", e->pos[in->buf], idx);
    case IR_F32: return arena_sprintf(e->a, "p%d[%s]", e->pos[in->buf], idx);
    }
    UNREACHABLE();
}

static void indent(LoopEmit *e)
{
    int depth = (e->map == CU_MAP_FLAT ? 2 : e->cur >= 0 && e->cur < e->P ? 4 : 2) + e->extra_indent;
    cu_printf(e->t, "%*s", depth * 4, "");
}

/* The index of a load or store: "0" for a buffer passed at its one constant index. */
static const char *index_expr(LoopEmit *e, int i)
{
    return e->at[e->k->code[i].buf] >= 0 ? "0" : operand(e, i, 0, 'i');
}

static int stream_index(const LoopEmit *e, int64_t stream)
{
    for (int i = 0; i < e->n_streams; i++)
        if (e->streams[i] == stream)
            return i;
    UNREACHABLE();
}

/* `const T v<i> = ...;` */
static void emit_value(LoopEmit *e, int i)
{
    const KInstr *in = &e->k->code[i];
    IR_ASSERT(!e->emitted[i]);
    e->emitted[i] = true;
    char t = type_of(e, i);
    const char *x;
    switch (in->op) {
    case KI_OUTER_INDEX: x = arena_sprintf(e->a, "o%d", in->axis); break;
    case KI_INNER_INDEX: x = "j"; break;
    case KI_ICONST: x = arena_sprintf(e->a, t == 'l' ? "%lldLL" : "%lld", (long long)in->ival); break;
    case KI_CONST: x = cu_float_lit(e->a, in->fval); break;
    case KI_SCALAR_ARG:
        IR_ASSERT(in->sarg == KS_STEP);
        x = "step";
        break;
    case KI_LOAD:
    case KI_LOAD_I: x = load_expr(e, i, t); break;
    case KI_RNG_UNIFORM:
    case KI_RNG_NORMAL:
        x = arena_sprintf(e->a, "%s(key%d, (unsigned long long)%s)", in->op == KI_RNG_UNIFORM ? "k_uniform" : "k_normal",
                          stream_index(e, in->ival), operand(e, i, 0, 'l'));
        break;
    default:
        IR_ASSERT(k_instr_info[in->op].cexpr[0]);
        x = cexpr(e, i, t);
        break;
    }
    indent(e);
    cu_printf(e->t, "const %s v%d = %s;\n", ctype(t), i, x);
}

static void emit_store(LoopEmit *e, int i)
{
    const KInstr *in = &e->k->code[i];
    IrDType dt = e->cp->p->bufs[in->buf].dtype;
    const char *idx = index_expr(e, i);
    const char *v = operand(e, i, 1, dt == IR_I32 ? 'i' : 'f');
    bool add = in->op == KI_STORE_ADD;
    int b = e->pos[in->buf];
    indent(e);
    switch (dt) {
    case IR_F32: cu_printf(e->t, "p%d[%s] %s= %s;\n", b, idx, add ? "+" : "", v); break;
    case IR_I32: cu_printf(e->t, "p%d[%s] %s= (int)(%s);\n", b, idx, add ? "+" : "", v); break;
    case IR_BF16:
        if (add)
            cu_printf(e->t, "p%d[%s] = k_f2bf(k_bf16(p%d[%s]) + %s);\n", b, idx, b, idx, v);
        else
            cu_printf(e->t, "p%d[%s] = k_f2bf(%s);\n", b, idx, v);
        break;
    }
}

/* Every instruction of phase ph in order (values on demand); stores guarded by `guard`
 * when not NULL. */
static void emit_phase(LoopEmit *e, int ph, const char *guard)
{
    e->cur = ph;
    for (int i = 0; i < e->n; i++) {
        const KInstr *in = &e->k->code[i];
        if (in->phase != ph)
            continue;
        if (k_instr_is_store(in->op)) {
            if (guard) {
                indent(e);
                cu_printf(e->t, "if (%s)\n", guard);
                e->extra_indent++;
                emit_store(e, i);
                e->extra_indent--;
            } else {
                emit_store(e, i);
            }
        } else if (k_instr_is_reduce(in->op)) {
            const char *v = operand(e, i, 0, 'f');
            indent(e);
            if (in->op == KI_REDUCE_SUM)
                cu_printf(e->t, "acc%d += %s;\n", i, v);
            else
                cu_printf(e->t, "acc%d = fmaxf(acc%d, %s);\n", i, i, v);
        } else if (!e->emitted[i] && e->live[i]) {
            emit_value(e, i);
        }
    }
}

/* ---- the kernel ---- */

static void collect_bufs(LoopEmit *e)
{
    const Kernel *k = e->k;
    e->bufs = ARENA_ARRAY(e->a, int, e->n + 1);
    e->pos = ARENA_ARRAY(e->a, int, e->cp->p->n_bufs + 1);
    for (int i = 0; i < e->n; i++) {
        const KInstr *in = &k->code[i];
        if (in->op == KI_SCALAR_ARG)
            e->uses_step = true;
        if (in->op == KI_RNG_UNIFORM || in->op == KI_RNG_NORMAL) {
            e->uses_seed = true;
            int j = 0;
            while (j < e->n_streams && e->streams[j] != in->ival)
                j++;
            if (j == e->n_streams) {
                IR_ASSERT(e->n_streams < 8);
                e->streams[e->n_streams++] = in->ival;
            }
        }
        if (!k_instr_has_buf(in->op))
            continue;
        int j = 0;
        while (j < e->nb && e->bufs[j] != in->buf)
            j++;
        if (j == e->nb) {
            e->pos[in->buf] = e->nb;
            e->bufs[e->nb++] = in->buf;
        }
    }
}

/* Marks what stores and reductions read, transitively; and the buffers every access of
 * which is at one constant index (passed as a pointer to that element, so kernels that
 * differ only in it are one kernel: each parameter's partial sum into its own slot). */
static void analyse_uses(LoopEmit *e)
{
    const Kernel *k = e->k;
    e->live = ARENA_ARRAY(e->a, bool, e->n + 1);
    e->at = ARENA_ARRAY(e->a, int64_t, e->cp->p->n_bufs + 1);
    for (int j = 0; j < e->nb; j++)
        e->at[e->bufs[j]] = -2; /* unknown yet */
    for (int i = 0; i < e->n; i++) {
        const KInstr *in = &k->code[i];
        if (!k_instr_has_buf(in->op))
            continue;
        int64_t c = k->code[in->a].op == KI_ICONST ? k->code[in->a].ival : -1;
        int64_t *at = &e->at[in->buf];
        *at = *at == -2 ? c : *at == c ? c : -1;
    }
    for (int i = e->n - 1; i >= 0; i--) {
        const KInstr *in = &k->code[i];
        if (k_instr_is_store(in->op) || k_instr_is_reduce(in->op))
            e->live[i] = true;
    }
    /* operands may follow their users (forward references): iterate to a fixed point */
    for (bool changed = true; changed;) {
        changed = false;
        for (int i = 0; i < e->n; i++) {
            const KInstr *in = &k->code[i];
            if (!e->live[i])
                continue;
            const int ops[3] = {in->a, in->b, in->c};
            int nops = (int)strlen(k_instr_info[in->op].operands);
            for (int j = 0; j < nops; j++) {
                if (j == 0 && k_instr_has_buf(in->op) && e->at[in->buf] >= 0)
                    continue; /* the index of a constant-index access is not computed */
                if (ops[j] >= 0 && !e->live[ops[j]])
                    e->live[ops[j]] = changed = true;
            }
        }
    }
}

static bool stored(const LoopEmit *e, int buf)
{
    for (int i = 0; i < e->n; i++)
        if (k_instr_is_store(e->k->code[i].op) && e->k->code[i].buf == buf)
            return true;
    return false;
}

/* The signature, the parameters of the launch step, and the kernel-level values (the step,
 * the RNG keys). */
static void emit_head(LoopEmit *e, CuStep *s, int block)
{
    CuProgram *cp = e->cp;
    cu_printf(e->t, "\n/* KNAME: %s rows %lld x cols %lld, %d phase%s */\n",
              (const char *[]){"flat", "warp", "block", "serial"}[e->map], (long long)e->rows, (long long)e->C, e->P,
              e->P == 1 ? "" : "s");
    cu_printf(e->t, "RELORAC_KERNEL void __launch_bounds__(%d) KNAME(", block);
    for (int j = 0; j < e->nb; j++) {
        int b = e->bufs[j];
        bool alone = true;
        for (int o = 0; o < e->nb; o++)
            if (o != j && cg_layout_overlap(&cp->layout, b, e->bufs[o]))
                alone = false;
        const char *base = arena_sprintf(e->a, "%s%s *", stored(e, b) ? "" : "const ",
                                         cu_elem_type(cp->p->bufs[b].dtype));
        cu_printf(e->t, "%s%s%sp%d", j ? ", " : "", base, alone ? "__restrict__ " : "", j);
        cu_param_add(cp, &e->draft, base);
        cu_arg_add(cp, s, (CuArg){.kind = CU_ARG_BUF, .buf = b, .i = e->at[b] >= 0 ? e->at[b] : 0});
    }
    int np = e->nb;
    if (e->uses_seed) {
        cu_printf(e->t, "%sunsigned long long seed", np++ ? ", " : "");
        cu_param_add(cp, &e->draft, "unsigned long long");
        cu_arg_add(cp, s, (CuArg){.kind = CU_ARG_SEED, .buf = -1});
        /* splitmix64(stream) of each stream, so kernels that differ only in their stream are one */
        for (int i = 0; i < e->n_streams; i++) {
            cu_printf(e->t, ", unsigned long long stream%d", i);
            cu_param_add(cp, &e->draft, "unsigned long long");
            cu_arg_add(cp, s, (CuArg){.kind = CU_ARG_I64, .buf = -1, .i = (int64_t)splitmix64((uint64_t)e->streams[i])});
        }
    }
    if (e->uses_step) {
        cu_printf(e->t, "%sconst int *step_p", np++ ? ", " : "");
        cu_param_add(cp, &e->draft, "const int *");
        cu_arg_add(cp, s, (CuArg){.kind = CU_ARG_STEP, .buf = -1});
    }
    cu_printf(e->t, ")\n{\n");
    if (e->uses_step)
        cu_printf(e->t, "    const int step = *step_p;\n");
    /* one key per RNG stream, derived once per thread */
    for (int i = 0; i < e->n_streams; i++)
        cu_printf(e->t, "    const unsigned long long key%d = k_splitmix64(seed ^ stream%d);\n", i, i);
}

/* The outer axes some instruction reads, as a bit set. */
static unsigned outer_used(const LoopEmit *e)
{
    unsigned used = 0;
    for (int i = 0; i < e->n; i++)
        if (e->k->code[i].op == KI_OUTER_INDEX)
            used |= 1u << e->k->code[i].axis;
    return used;
}

/* o0.. from the row r (row-major over the outer extents), the ones read. */
static void emit_outer(LoopEmit *e, const char *r, int depth)
{
    const Kernel *k = e->k;
    const char *rest = r;
    unsigned used = outer_used(e);
    for (int ax = k->n_outer - 1; ax >= 0; ax--) {
        if (!(used & (1u << ax))) {
            rest = arena_sprintf(e->a, "(%s / %lld)", rest, (long long)k->outer[ax]);
            continue;
        }
        const char *t = fits_int((Range){0, k->outer[ax] - 1}) ? "int" : "long long";
        if (ax == 0) {
            cu_printf(e->t, "%*sconst %s o0 = (%s)%s;\n", depth * 4, "", t, t, rest);
        } else {
            cu_printf(e->t, "%*sconst %s o%d = (%s)(%s %% %lld);\n", depth * 4, "", t, ax, t, rest,
                      (long long)k->outer[ax]);
            rest = arena_sprintf(e->a, "(%s / %lld)", rest, (long long)k->outer[ax]);
        }
    }
}

static int64_t grid_for(int64_t work, int per_block)
{
    int64_t g = (work + per_block - 1) / per_block;
    return g < 1 ? 1 : g > 4096 ? 4096 : g;
}

static void emit_flat(LoopEmit *e, CuStep *s)
{
    int block = 256;
    int64_t total = e->rows * e->C;
    const char *it = total <= INT32_MAX ? "int" : "long long";
    emit_head(e, s, block);
    cu_printf(e->t, "    for (%s e = (%s)blockIdx.x * blockDim.x + threadIdx.x; e < %lldLL; e += (%s)(gridDim.x * blockDim.x)) {\n",
              it, it, (long long)total, it);
    bool uses_j = false;
    for (int i = 0; i < e->n; i++)
        uses_j |= e->k->code[i].op == KI_INNER_INDEX;
    if (uses_j)
        cu_printf(e->t, "        const %s j = %s;\n", e->C <= INT32_MAX ? "int" : "long long",
                  e->C == 1 ? "0" : e->rows == 1 ? "e" : arena_sprintf(e->a, "e %% %lld", (long long)e->C));
    if (outer_used(e))
        emit_outer(e, e->rows == 1 ? "0" : arena_sprintf(e->a, "(e / %lld)", (long long)e->C), 2);
    e->cur = -1;
    emit_phase(e, -1, NULL);
    emit_phase(e, 0, NULL);
    cu_printf(e->t, "    }\n}\n");
    s->block = block;
    s->grid = grid_for(total, block);
}

/* The barrier between phases for the lanes of a row. */
static const char *group_sync(const LoopEmit *e)
{
    return e->map == CU_MAP_BLOCK ? "__syncthreads();" : e->map == CU_MAP_WARP ? "__syncwarp();" : NULL;
}

static void emit_rows(LoopEmit *e, CuStep *s, bool in_order)
{
    const Kernel *k = e->k;
    int G = e->G;
    /* warp and serial rows pack 8 warps / 128 threads per block; rows in order: one group */
    int block = e->map == CU_MAP_BLOCK ? G : in_order ? (G == 1 ? 1 : 32) : e->map == CU_MAP_WARP ? 256 : 128;
    int per_block = block / G;
    int n_red = 0, n_x = 0;
    for (int i = 0; i < e->n; i++) {
        if (k_instr_is_reduce(k->code[i].op))
            e->slot[i] = n_red++;
        else if (e->cross[i])
            e->slot[i] = n_x++;
    }
    emit_head(e, s, block);
    const char *sync = group_sync(e);
    if (e->map == CU_MAP_BLOCK) {
        if (n_red)
            cu_printf(e->t, "    __shared__ float k_red[%d][32];\n", n_red);
        if (n_x)
            cu_printf(e->t, "    __shared__ long long k_x[%d];\n", n_x);
    }
    const char *rt = e->rows <= INT32_MAX / 2 ? "int" : "long long";
    cu_printf(e->t, "    const int lane = %s;\n", G == 1 ? "0" : G == block ? "(int)threadIdx.x" : "(int)threadIdx.x % 32");
    if (in_order)
        cu_printf(e->t, "    for (%s r = 0; r < %lldLL; r++) {\n", rt, (long long)e->rows);
    else
        cu_printf(e->t, "    for (%s r = (%s)blockIdx.x * %d + (int)threadIdx.x / %d; r < %lldLL; r += (%s)gridDim.x * %d) {\n",
                  rt, rt, per_block, G, (long long)e->rows, rt, per_block);
    emit_outer(e, "r", 2);
    const char *guard = G == 1 ? NULL : "lane == 0";
    emit_phase(e, -1, guard);
    bool pre_stores = false;
    for (int i = 0; i < e->n; i++)
        pre_stores |= k->code[i].phase == -1 && k_instr_is_store(k->code[i].op);
    if (pre_stores && sync)
        cu_printf(e->t, "        %s\n", sync);
    for (int i = 0; i < e->n; i++) {
        if (k_instr_is_reduce(k->code[i].op))
            cu_printf(e->t, "        float r%d;\n", i);
        else if (e->cross[i])
            cu_printf(e->t, "        %s x%d = 0;\n", ctype(type_of(e, i)), i);
    }
    const char *jt = e->C <= INT32_MAX ? "int" : "long long";
    for (int ph = 0; ph < e->P; ph++) {
        cu_printf(e->t, "        {\n");
        for (int i = 0; i < e->n; i++)
            if (k->code[i].phase == ph && k_instr_is_reduce(k->code[i].op))
                cu_printf(e->t, "            float acc%d = %s;\n", i,
                          k->code[i].op == KI_REDUCE_SUM ? "0.0f" : "__uint_as_float(0xff800000u)");
        cu_printf(e->t, "            for (%s j = lane; j < %lld; j += %d) {\n", jt, (long long)e->C, G);
        emit_phase(e, ph, NULL);
        for (int i = 0; i < e->n; i++)
            if (k->code[i].phase == ph && e->cross[i])
                cu_printf(e->t, "                if (j == %lld)\n                    x%d = v%d;\n", (long long)e->C - 1, i, i);
        cu_printf(e->t, "            }\n");
        for (int i = 0; i < e->n; i++) {
            const KInstr *in = &k->code[i];
            if (in->phase != ph)
                continue;
            bool sum = in->op == KI_REDUCE_SUM;
            if (k_instr_is_reduce(in->op)) {
                if (e->map == CU_MAP_WARP)
                    cu_printf(e->t, "            r%d = k_warp_%s(acc%d);\n", i, sum ? "sum" : "max", i);
                else if (e->map == CU_MAP_BLOCK)
                    cu_printf(e->t, "            r%d = k_block_%s(acc%d, k_red[%d]);\n", i, sum ? "sum" : "max", i,
                              e->slot[i]);
                else
                    cu_printf(e->t, "            r%d = acc%d;\n", i, i);
            } else if (e->cross[i]) {
                /* the last column's value, from the lane that computed it */
                int src = (int)((e->C - 1) % G);
                char t = type_of(e, i);
                if (e->map == CU_MAP_WARP) {
                    cu_printf(e->t, "            x%d = __shfl_sync(K_FULL, x%d, %d);\n", i, i, src);
                } else if (e->map == CU_MAP_BLOCK) {
                    const char *slot = arena_sprintf(e->a, "k_x[%d]", e->slot[i]);
                    if (t == 'f')
                        cu_printf(e->t, "            if (lane == %d)\n                %s = (long long)__float_as_uint(x%d);\n"
                                        "            __syncthreads();\n            x%d = __uint_as_float((unsigned)%s);\n"
                                        "            __syncthreads();\n",
                                  src, slot, i, i, slot);
                    else
                        cu_printf(e->t, "            if (lane == %d)\n                %s = x%d;\n            __syncthreads();\n"
                                        "            x%d = (%s)%s;\n            __syncthreads();\n",
                                  src, slot, i, i, ctype(t), slot);
                }
            }
        }
        cu_printf(e->t, "        }\n");
        if (sync)
            cu_printf(e->t, "        %s\n", sync);
    }
    emit_phase(e, e->P, guard);
    if (e->map == CU_MAP_BLOCK || (in_order && sync))
        cu_printf(e->t, "        %s\n", sync);
    cu_printf(e->t, "    }\n}\n");
    s->block = block;
    s->grid = in_order ? 1 : grid_for(e->rows, per_block);
}

void cu_loop_emit(CuProgram *cp, CuFunc *cf, const Kernel *k)
{
    Arena *a = cp->p->arena;
    if (k->n_phases < 1 || k->inner < 1 || k->n_outer < 0 || k->n_outer > 3) {
        diag_error(cp->d, k->loc, "kernel %s: a loop kernel needs 1..3 outer axes, columns and phases", k->name);
        return;
    }
    for (int i = 0; i < k->n_code; i++) {
        const KInstr *in = &k->code[i];
        if (k_instr_has_buf(in->op) && (in->buf < 0 || in->buf >= cp->p->n_bufs)) {
            diag_error(cp->d, k->loc, "kernel %s: buffer %d does not exist", k->name, in->buf);
            return;
        }
    }
    LoopEmit e;
    memset(&e, 0, sizeof e);
    e.cp = cp;
    e.k = k;
    e.a = a;
    e.n = k->n_code;
    e.P = k->n_phases;
    e.C = k->inner;
    e.rows = k_loop_rows(k);
    e.type = ARENA_ARRAY(a, char, e.n + 1);
    e.range = ARENA_ARRAY(a, Range, e.n + 1);
    e.range_done = ARENA_ARRAY(a, char, e.n + 1);
    e.cross = ARENA_ARRAY(a, bool, e.n + 1);
    e.emitted = ARENA_ARRAY(a, bool, e.n + 1);
    e.slot = ARENA_ARRAY(a, int, e.n + 1);
    const char *name = k->name ? k->name : arena_sprintf(a, "%s_k%d", cf->f->name, k->id);
    cu_kernel_draft(cp, &e.draft, k, &e.body);
    e.t = &e.body;
    collect_bufs(&e);
    analyse_uses(&e);
    plan(&e);
    CuStep *s = cu_step_add(cp, cf, CU_STEP_LAUNCH, k);
    if (e.map == CU_MAP_FLAT)
        emit_flat(&e, s);
    else
        emit_rows(&e, s, e.in_order);
    e.draft.map = e.map;
    e.draft.rows_in_order = e.in_order;
    e.draft.block = s->block;
    e.draft.sync = e.map == CU_MAP_WARP || e.map == CU_MAP_BLOCK;
    s->kernel = cu_kernel_finish(cp, &e.draft, &e.body, name);
}
