/* Kernel IR interpreter and printer. The interpreter runs kernels exactly as their
 * loops say (rows, then phases, then the post step) over f64 buffers, so that the
 * kernelizer can be checked against the graph interpreter without any backend. */
#include "kernel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct KInterp {
    const KProgram *p;
    uint64_t seed;
    double **bufs;
};

static const char *const instr_names[KI_COUNT] = {
    [KI_OUTER_INDEX] = "outer_index", [KI_INNER_INDEX] = "inner_index", [KI_ICONST] = "iconst",
    [KI_IADD] = "iadd", [KI_ISUB] = "isub", [KI_IMUL] = "imul", [KI_IDIV] = "idiv", [KI_IREM] = "irem",
    [KI_IMIN] = "imin", [KI_ILT] = "ilt", [KI_ILE] = "ile", [KI_IEQ] = "ieq", [KI_LOAD_I] = "load_i",
    [KI_ITOF] = "itof", [KI_CONST] = "const", [KI_SCALAR_ARG] = "scalar_arg", [KI_LOAD] = "load",
    [KI_ADD] = "add", [KI_SUB] = "sub", [KI_MUL] = "mul", [KI_DIV] = "div", [KI_MAX] = "max", [KI_MIN] = "min",
    [KI_NEG] = "neg", [KI_EXP] = "exp", [KI_LOG] = "log", [KI_SQRT] = "sqrt", [KI_TANH] = "tanh",
    [KI_COS] = "cos", [KI_SIN] = "sin", [KI_ABS] = "abs", [KI_FLT] = "flt", [KI_FLE] = "fle",
    [KI_SELECT] = "select", [KI_RNG_UNIFORM] = "rng_uniform", [KI_RNG_NORMAL] = "rng_normal",
    [KI_REDUCE_SUM] = "reduce_sum", [KI_REDUCE_MAX] = "reduce_max", [KI_STORE] = "store",
    [KI_STORE_ADD] = "store_add",
};

const char *k_instr_name(KInstrOp op)
{
    return (unsigned)op < KI_COUNT && instr_names[op] ? instr_names[op] : "?";
}

KInterp *k_interp_create(const KProgram *p, uint64_t seed)
{
    KInterp *it = calloc(1, sizeof *it);
    it->p = p;
    it->seed = seed;
    it->bufs = calloc((size_t)p->n_bufs, sizeof *it->bufs);
    for (int i = 0; i < p->n_bufs; i++)
        it->bufs[i] = calloc((size_t)p->bufs[i].numel, sizeof(double));
    return it;
}

void k_interp_destroy(KInterp *it)
{
    if (!it)
        return;
    for (int i = 0; i < it->p->n_bufs; i++)
        free(it->bufs[i]);
    free(it->bufs);
    free(it);
}

double *k_interp_buf(KInterp *it, int buf) { return it->bufs[buf]; }

static void bounds(const KInterp *it, int buf, int64_t off, const Kernel *k)
{
    if (off < 0 || off >= it->p->bufs[buf].numel) {
        fprintf(stderr, "%s: kernel %s: offset %lld out of bounds of %s (%lld elements)\n", __FILE__, k->name,
                (long long)off, it->p->bufs[buf].name, (long long)it->p->bufs[buf].numel);
        abort();
    }
}

/* v[] holds each instruction's value: ints are stored exactly in the doubles. */
static void run_instrs(KInterp *it, const Kernel *k, double *v, int phase, const int64_t *outer, int64_t col,
                       int64_t step, double *red)
{
    for (int i = 0; i < k->n_code; i++) {
        const KInstr *in = &k->code[i];
        if (in->phase != phase)
            continue;
        double a = in->a >= 0 ? v[in->a] : 0, b = in->b >= 0 ? v[in->b] : 0, r = 0;
        int64_t ia = (int64_t)a, ib = (int64_t)b;
        switch (in->op) {
        case KI_OUTER_INDEX: r = (double)outer[in->axis]; break;
        case KI_INNER_INDEX: r = (double)col; break;
        case KI_ICONST: r = (double)in->ival; break;
        case KI_IADD: r = (double)(ia + ib); break;
        case KI_ISUB: r = (double)(ia - ib); break;
        case KI_IMUL: r = (double)(ia * ib); break;
        case KI_IDIV: r = (double)(ia / ib); break;
        case KI_IREM: r = (double)(ia % ib); break;
        case KI_IMIN: r = (double)(ia < ib ? ia : ib); break;
        case KI_ILT: r = ia < ib; break;
        case KI_ILE: r = ia <= ib; break;
        case KI_IEQ: r = ia == ib; break;
        case KI_LOAD_I:
        case KI_LOAD:
            bounds(it, in->buf, ia, k);
            r = it->bufs[in->buf][ia];
            break;
        case KI_ITOF: r = a; break;
        case KI_CONST: r = in->fval; break;
        case KI_SCALAR_ARG: r = in->sarg == KS_STEP ? (double)step : 0; break;
        case KI_ADD: r = a + b; break;
        case KI_SUB: r = a - b; break;
        case KI_MUL: r = a * b; break;
        case KI_DIV: r = a / b; break;
        case KI_MAX: r = a > b ? a : b; break;
        case KI_MIN: r = a < b ? a : b; break;
        case KI_NEG: r = -a; break;
        case KI_EXP: r = exp(a); break;
        case KI_LOG: r = log(a); break;
        case KI_SQRT: r = sqrt(a); break;
        case KI_TANH: r = tanh(a); break;
        case KI_COS: r = cos(a); break;
        case KI_SIN: r = sin(a); break;
        case KI_ABS: r = fabs(a); break;
        case KI_FLT: r = a < b; break;
        case KI_FLE: r = a <= b; break;
        case KI_SELECT: r = a != 0 ? b : v[in->c]; break;
        case KI_RNG_UNIFORM: r = ir_rng_uniform(it->seed, (uint64_t)in->ival, (uint64_t)ia); break;
        case KI_RNG_NORMAL: r = ir_rng_normal(it->seed, (uint64_t)in->ival, (uint64_t)ia); break;
        case KI_REDUCE_SUM: red[i] += a; continue;
        case KI_REDUCE_MAX: red[i] = a > red[i] ? a : red[i]; continue;
        case KI_STORE:
            bounds(it, in->buf, ia, k);
            it->bufs[in->buf][ia] = b;
            continue;
        case KI_STORE_ADD:
            bounds(it, in->buf, ia, k);
            it->bufs[in->buf][ia] += b;
            continue;
        case KI_COUNT: break;
        }
        v[i] = r;
    }
}

static void run_loop(KInterp *it, const Kernel *k, int64_t step)
{
    double *v = calloc((size_t)k->n_code + 1, sizeof *v);
    double *red = calloc((size_t)k->n_code + 1, sizeof *red);
    int64_t rows = 1;
    for (int i = 0; i < k->n_outer; i++)
        rows *= k->outer[i];
    for (int64_t row = 0; row < rows; row++) {
        int64_t outer[3] = {0, 0, 0}, rest = row;
        for (int i = k->n_outer - 1; i >= 0; i--) {
            outer[i] = rest % k->outer[i];
            rest /= k->outer[i];
        }
        for (int i = 0; i < k->n_code; i++)
            red[i] = k->code[i].op == KI_REDUCE_MAX ? -INFINITY : 0.0;
        run_instrs(it, k, v, -1, outer, 0, step, red);
        for (int ph = 0; ph < k->n_phases; ph++) {
            for (int64_t col = 0; col < k->inner; col++)
                run_instrs(it, k, v, ph, outer, col, step, red);
            /* reductions of this phase become values for the later ones */
            for (int i = 0; i < k->n_code; i++)
                if (k->code[i].phase == ph &&
                    (k->code[i].op == KI_REDUCE_SUM || k->code[i].op == KI_REDUCE_MAX))
                    v[i] = red[i];
        }
        run_instrs(it, k, v, k->n_phases, outer, 0, step, red);
    }
    free(v);
    free(red);
}

static void run_gemm(KInterp *it, const Kernel *k)
{
    const KGemm *g = &k->gemm;
    double *A = it->bufs[g->a], *B = it->bufs[g->b], *C = it->bufs[g->c];
    for (int64_t bt = 0; bt < g->batch; bt++) {
        const double *a = A + g->off_a + bt * g->stride_a, *b = B + g->off_b + bt * g->stride_b;
        double *c = C + g->off_c + bt * g->stride_c;
        for (int64_t i = 0; i < g->m; i++)
            for (int64_t j = 0; j < g->n; j++) {
                double s = 0;
                for (int64_t q = 0; q < g->k; q++) {
                    double x = g->trans_a ? a[q * g->lda + i] : a[i * g->lda + q];
                    double y = g->trans_b ? b[j * g->ldb + q] : b[q * g->ldb + j];
                    s += x * y;
                }
                double *dst = &c[i * g->ldc + j];
                *dst = g->alpha * s + (g->beta != 0 ? g->beta * *dst : 0);
            }
    }
}

typedef struct {
    double mag;
    int64_t i;
} MagIdx;

static int cmp_mag(const void *a, const void *b)
{
    const MagIdx *x = a, *y = b;
    if (x->mag != y->mag)
        return x->mag < y->mag ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static void run_call(KInterp *it, const Kernel *k)
{
    double *x = it->bufs[k->call_bufs[0]];
    int64_t n = it->p->bufs[k->call_bufs[0]].numel;
    int64_t step = (int64_t)it->bufs[k->call_bufs[1]][0];
    double frac = it->bufs[k->call_bufs[2]][0];
    switch (k->call) {
    case KC_PRUNE_MAGNITUDE: {
        /* ceil(p n), p n snapped to a nearby integer first (as ir/interp.c and the runtime) */
        double x0 = frac * (double)n, r0 = nearbyint(x0);
        int64_t z = fabs(x0 - r0) <= 1e-9 * fmax(1.0, x0) ? (int64_t)r0 : (int64_t)ceil(x0);
        MagIdx *s = malloc(sizeof *s * (size_t)n);
        for (int64_t i = 0; i < n; i++)
            s[i] = (MagIdx){fabs(x[i]), i};
        qsort(s, (size_t)n, sizeof *s, cmp_mag);
        for (int64_t i = 0; i < z && i < n; i++)
            x[s[i].i] = 0;
        free(s);
        break;
    }
    case KC_PRUNE_RANDOM: {
        uint64_t stream = (uint64_t)ir_attrs_int(&k->call_attrs, "stream", 0);
        for (int64_t i = 0; i < n; i++)
            if (ir_rng_uniform(it->seed, stream, (uint64_t)(step * n + i)) < frac)
                x[i] = 0;
        break;
    }
    case KC_COUNT: break;
    }
}

double k_interp_run(KInterp *it, const KFunc *f, int64_t step)
{
    for (int i = 0; i < f->n_kernels; i++) {
        const Kernel *k = f->kernels[i];
        switch (k->kind) {
        case K_LOOP: run_loop(it, k, step); break;
        case K_GEMM: run_gemm(it, k); break;
        case K_CALL: run_call(it, k); break;
        }
    }
    return f->ret_buf >= 0 ? it->bufs[f->ret_buf][0] : 0;
}

/* ---- printing ---- */

static const char *phase_name(const Kernel *k, int ph, char *buf, size_t n)
{
    if (ph < 0)
        return "row ";
    if (ph == k->n_phases)
        return "post";
    snprintf(buf, n, "ph%d ", ph);
    return buf;
}

void k_print(const KProgram *p, FILE *out)
{
    static const char *const kinds[] = {"loop", "gemm", "call"};
    static const char *const calls[] = {"prune_magnitude", "prune_random"};
    fprintf(out, "buffers:\n");
    for (int i = 0; i < p->n_bufs; i++) {
        const KBuf *b = &p->bufs[i];
        fprintf(out, "  b%d %s %s[%lld] %s+%lld\n", i, b->name, ir_dtype_name(b->dtype), (long long)b->numel,
                ir_class_name(b->cls), (long long)b->offset);
    }
    for (int fi = 0; fi < p->n_funcs; fi++) {
        const KFunc *f = p->funcs[fi];
        fprintf(out, "kfunc @%s {\n", f->name);
        for (int ki = 0; ki < f->n_kernels; ki++) {
            const Kernel *k = f->kernels[ki];
            fprintf(out, "  %s %s", kinds[k->kind], k->name);
            if (k->kind == K_LOOP) {
                fprintf(out, " rows=%lld cols=%lld phases=%d\n", (long long)(k->outer[0] * (k->n_outer > 1 ? k->outer[1] : 1)),
                        (long long)k->inner, k->n_phases);
                for (int i = 0; i < k->n_code; i++) {
                    const KInstr *in = &k->code[i];
                    char pb[16];
                    fprintf(out, "    %s %%%d = %s", phase_name(k, in->phase, pb, sizeof pb), i, k_instr_name(in->op));
                    if (in->buf >= 0)
                        fprintf(out, " b%d", in->buf);
                    if (in->a >= 0)
                        fprintf(out, " %%%d", in->a);
                    if (in->b >= 0)
                        fprintf(out, ", %%%d", in->b);
                    if (in->c >= 0)
                        fprintf(out, ", %%%d", in->c);
                    if (in->op == KI_ICONST || in->op == KI_RNG_UNIFORM || in->op == KI_RNG_NORMAL)
                        fprintf(out, " %lld", (long long)in->ival);
                    if (in->op == KI_CONST)
                        fprintf(out, " %.9g", in->fval);
                    fputc('\n', out);
                }
            } else if (k->kind == K_GEMM) {
                const KGemm *g = &k->gemm;
                fprintf(out, " b%d = %g * b%d%s @ b%d%s + %g; m=%lld n=%lld k=%lld batch=%lld\n", g->c, g->alpha, g->a,
                        g->trans_a ? "^T" : "", g->b, g->trans_b ? "^T" : "", g->beta, (long long)g->m,
                        (long long)g->n, (long long)g->k, (long long)g->batch);
            } else {
                fprintf(out, " %s(b%d, b%d, b%d)\n", calls[k->call], k->call_bufs[0], k->call_bufs[1],
                        k->call_bufs[2]);
            }
        }
        fprintf(out, "}\n");
    }
}
