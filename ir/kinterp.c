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

const KInstrInfo k_instr_info[KI_COUNT] = {
#define KINSTR(id, name, result, operands, cexpr, doc) [KI_##id] = {name, result[0], operands, cexpr, doc},
#include "kinstr.def"
#undef KINSTR
};

const char *k_instr_name(KInstrOp op)
{
    return (unsigned)op < KI_COUNT ? k_instr_info[op].name : "?";
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
            it->bufs[in->buf][ia] = ir_dtype_store(it->p->bufs[in->buf].dtype, b);
            continue;
        case KI_STORE_ADD:
            bounds(it, in->buf, ia, k);
            it->bufs[in->buf][ia] = ir_dtype_store(it->p->bufs[in->buf].dtype, it->bufs[in->buf][ia] + b);
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

/* ---- fused kernels: the algorithms of kernel.h, in f64 ---- */

static double *xmalloc(int64_t n)
{
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    if (!p) {
        fprintf(stderr, "%s: out of memory\n", __FILE__);
        abort();
    }
    return p;
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Row i of head h of batch b in a [B,heads,T,D] buffer. */
static int64_t row_at(const KAttention *a, int64_t heads, int64_t b, int64_t h, int64_t i)
{
    return ((b * heads + h) * a->seq + i) * a->head_dim;
}

static void attention_forward(KInterp *it, const KAttention *a)
{
    int64_t T = a->seq, D = a->head_dim, tq = a->tile_q, tk = a->tile_k, G = a->heads / a->kv_heads;
    const double *q = it->bufs[a->q], *k = it->bufs[a->k], *v = it->bufs[a->v];
    double *y = it->bufs[a->y], *lse = a->lse >= 0 ? it->bufs[a->lse] : NULL;
    double *S = xmalloc(tq * tk), *acc = xmalloc(tq * D), *m = xmalloc(tq), *l = xmalloc(tq);
    for (int64_t b = 0; b < a->batch; b++)
        for (int64_t h = 0; h < a->heads; h++)
            for (int64_t i0 = 0; i0 < T; i0 += tq) {
                int64_t i1 = min64(T, i0 + tq), last = a->causal ? i1 - 1 : T - 1;
                for (int64_t r = 0; r < i1 - i0; r++) {
                    m[r] = -INFINITY;
                    l[r] = 0;
                    for (int64_t d = 0; d < D; d++)
                        acc[r * D + d] = 0;
                }
                for (int64_t j0 = 0; j0 <= last; j0 += tk) { /* key tiles up to the diagonal */
                    int64_t j1 = min64(T, j0 + tk);
                    for (int64_t r = 0; r < i1 - i0; r++) {
                        const double *qr = q + row_at(a, a->heads, b, h, i0 + r);
                        double mx = m[r];
                        for (int64_t c = 0; c < j1 - j0; c++) {
                            bool masked = a->causal && j0 + c > i0 + r;
                            S[r * tk + c] = masked ? -INFINITY
                                                   : a->scale * dot(qr, k + row_at(a, a->kv_heads, b, h / G, j0 + c), D);
                            mx = fmax(mx, S[r * tk + c]);
                        }
                        double corr = exp(m[r] - mx), sum = 0;
                        for (int64_t d = 0; d < D; d++)
                            acc[r * D + d] *= corr;
                        for (int64_t c = 0; c < j1 - j0; c++) {
                            double p = exp(S[r * tk + c] - mx);
                            const double *vr = v + row_at(a, a->kv_heads, b, h / G, j0 + c);
                            sum += p;
                            for (int64_t d = 0; d < D; d++)
                                acc[r * D + d] += p * vr[d];
                        }
                        l[r] = l[r] * corr + sum;
                        m[r] = mx;
                    }
                }
                for (int64_t r = 0; r < i1 - i0; r++) {
                    double *yr = y + row_at(a, a->heads, b, h, i0 + r);
                    for (int64_t d = 0; d < D; d++)
                        yr[d] = acc[r * D + d] / l[r];
                    if (lse)
                        lse[(b * a->heads + h) * T + i0 + r] = m[r] + log(l[r]);
                }
            }
    free(S);
    free(acc);
    free(m);
    free(l);
}

static void attention_backward(KInterp *it, const KAttention *a)
{
    int64_t T = a->seq, D = a->head_dim, tq = a->tile_q, tk = a->tile_k, G = a->heads / a->kv_heads;
    const double *q = it->bufs[a->q], *k = it->bufs[a->k], *v = it->bufs[a->v], *y = it->bufs[a->y];
    const double *lse = it->bufs[a->lse], *dy = it->bufs[a->dy];
    double *dq = it->bufs[a->dq], *dk = a->dk >= 0 ? it->bufs[a->dk] : NULL, *dv = a->dv >= 0 ? it->bufs[a->dv] : NULL;
    double *P = xmalloc(tq * tk), *dS = xmalloc(tq * tk), *dK = xmalloc(tk * D), *dV = xmalloc(tk * D);
    for (int64_t b = 0; b < a->batch; b++)
        for (int64_t g = 0; g < a->kv_heads; g++) {
            for (int64_t h = g * G; h < (g + 1) * G; h++)
                for (int64_t i = 0; i < T * D; i++)
                    dq[row_at(a, a->heads, b, h, 0) + i] = 0;
            for (int64_t j0 = 0; j0 < T; j0 += tk) {
                int64_t j1 = min64(T, j0 + tk), nc = j1 - j0;
                for (int64_t i = 0; i < tk * D; i++)
                    dK[i] = dV[i] = 0;
                for (int64_t h = g * G; h < (g + 1) * G; h++)
                    for (int64_t i0 = a->causal ? j0 / tq * tq : 0; i0 < T; i0 += tq) {
                        int64_t i1 = min64(T, i0 + tq);
                        for (int64_t r = 0; r < i1 - i0; r++) {
                            int64_t qi = row_at(a, a->heads, b, h, i0 + r);
                            double l = lse[(b * a->heads + h) * T + i0 + r], delta = dot(dy + qi, y + qi, D);
                            for (int64_t c = 0; c < nc; c++) {
                                int64_t kj = row_at(a, a->kv_heads, b, g, j0 + c);
                                bool masked = a->causal && j0 + c > i0 + r;
                                double p = masked ? 0 : exp(a->scale * dot(q + qi, k + kj, D) - l);
                                P[r * tk + c] = p;
                                dS[r * tk + c] = p * (dot(dy + qi, v + kj, D) - delta);
                            }
                        }
                        for (int64_t c = 0; c < nc; c++)
                            for (int64_t r = 0; r < i1 - i0; r++) {
                                int64_t qi = row_at(a, a->heads, b, h, i0 + r);
                                for (int64_t d = 0; d < D; d++) {
                                    dV[c * D + d] += P[r * tk + c] * dy[qi + d];
                                    dK[c * D + d] += a->scale * dS[r * tk + c] * q[qi + d];
                                }
                            }
                        for (int64_t r = 0; r < i1 - i0; r++) {
                            double *dqr = dq + row_at(a, a->heads, b, h, i0 + r);
                            for (int64_t c = 0; c < nc; c++) {
                                const double *kr = k + row_at(a, a->kv_heads, b, g, j0 + c);
                                for (int64_t d = 0; d < D; d++)
                                    dqr[d] += a->scale * dS[r * tk + c] * kr[d];
                            }
                        }
                    }
                for (int64_t c = 0; c < nc; c++)
                    for (int64_t d = 0; d < D; d++) {
                        if (dk)
                            dk[row_at(a, a->kv_heads, b, g, j0 + c) + d] = dK[c * D + d];
                        if (dv)
                            dv[row_at(a, a->kv_heads, b, g, j0 + c) + d] = dV[c * D + d];
                    }
            }
        }
    free(P);
    free(dS);
    free(dK);
    free(dV);
}

static void head_loss(KInterp *it, const Kernel *k)
{
    const KHeadLoss *h = &k->head;
    int64_t N = h->rows, C = h->dim, V = h->vocab, R = h->chunk;
    const double *x = it->bufs[h->x], *w = it->bufs[h->w], *tg = it->bufs[h->targets];
    double *Z = it->bufs[h->work], *rl = Z + R * V, total = 0;
    double *dx = h->dx >= 0 ? it->bufs[h->dx] : NULL, *dw = h->dw >= 0 ? it->bufs[h->dw] : NULL;
    bool grads = dx || dw;
    double g = (h->dloss >= 0 ? it->bufs[h->dloss][0] : h->grad_scale) / (double)N;
    for (int64_t r0 = 0; r0 < N; r0 += R) {
        int64_t n = min64(R, N - r0);
        for (int64_t r = 0; r < n; r++) {
            int64_t t = (int64_t)tg[r0 + r];
            if (t < 0 || t >= V) {
                fprintf(stderr, "%s: kernel %s: target %lld out of range [0,%lld)\n", __FILE__, k->name,
                        (long long)t, (long long)V);
                abort();
            }
            double *z = Z + r * V, mx = -INFINITY, s = 0;
            for (int64_t j = 0; j < V; j++) {
                z[j] = dot(x + (r0 + r) * C, w + j * C, C);
                mx = fmax(mx, z[j]);
            }
            for (int64_t j = 0; j < V; j++)
                s += exp(z[j] - mx);
            double lse = mx + log(s);
            rl[r] = lse - z[t];
            for (int64_t j = 0; grads && j < V; j++)
                z[j] = g * (exp(z[j] - lse) - (j == t ? 1.0 : 0.0));
        }
        for (int64_t r = 0; r < n; r++)
            total += rl[r];
        for (int64_t r = 0; dx && r < n; r++)
            for (int64_t c = 0; c < C; c++) {
                double sum = 0;
                for (int64_t j = 0; j < V; j++)
                    sum += Z[r * V + j] * w[j * C + c];
                dx[(r0 + r) * C + c] = sum;
            }
        for (int64_t j = 0; dw && j < V; j++)
            for (int64_t c = 0; c < C; c++) {
                double sum = r0 == 0 ? 0 : dw[j * C + c];
                for (int64_t r = 0; r < n; r++)
                    sum += Z[r * V + j] * x[(r0 + r) * C + c];
                dw[j * C + c] = sum;
            }
    }
    if (h->loss >= 0)
        it->bufs[h->loss][0] = total / (double)N;
}

double k_interp_run(KInterp *it, const KFunc *f, int64_t step)
{
    for (int i = 0; i < f->n_kernels; i++) {
        const Kernel *k = f->kernels[i];
        switch (k->kind) {
        case K_LOOP: run_loop(it, k, step); break;
        case K_GEMM: run_gemm(it, k); break;
        case K_CALL: run_call(it, k); break;
        case K_ATTENTION:
            if (k->attn.backward)
                attention_backward(it, &k->attn);
            else
                attention_forward(it, &k->attn);
            break;
        case K_HEAD_LOSS: head_loss(it, k); break;
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
    static const char *const kinds[] = {"loop", "gemm", "call", "attention", "head_loss"};
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
            } else if (k->kind == K_ATTENTION) {
                const KAttention *a = &k->attn;
                fprintf(out, " %s B=%lld H=%lld Hkv=%lld T=%lld D=%lld tiles=%lldx%lld causal=%d scale=%.9g",
                        a->backward ? "backward" : "forward", (long long)a->batch, (long long)a->heads,
                        (long long)a->kv_heads, (long long)a->seq, (long long)a->head_dim, (long long)a->tile_q,
                        (long long)a->tile_k, a->causal, a->scale);
                if (a->backward)
                    fprintf(out, ": dy b%d, q b%d, k b%d, v b%d, y b%d, lse b%d -> dq b%d, dk b%d, dv b%d\n", a->dy, a->q,
                            a->k, a->v, a->y, a->lse, a->dq, a->dk, a->dv);
                else
                    fprintf(out, ": q b%d, k b%d, v b%d -> y b%d, lse b%d\n", a->q, a->k, a->v, a->y, a->lse);
            } else if (k->kind == K_HEAD_LOSS) {
                const KHeadLoss *h = &k->head;
                fprintf(out, " N=%lld C=%lld V=%lld chunk=%lld: x b%d, w b%d, targets b%d", (long long)h->rows,
                        (long long)h->dim, (long long)h->vocab, (long long)h->chunk, h->x, h->w, h->targets);
                if (h->dloss >= 0)
                    fprintf(out, ", dloss b%d", h->dloss);
                else if (h->dx >= 0 || h->dw >= 0)
                    fprintf(out, ", dloss %.9g", h->grad_scale);
                fprintf(out, " -> loss b%d, dx b%d, dw b%d; work b%d\n", h->loss, h->dx, h->dw, h->work);
            } else {
                fprintf(out, " %s(b%d, b%d, b%d)\n", calls[k->call], k->call_bufs[0], k->call_bufs[1],
                        k->call_bufs[2]);
            }
        }
        fprintf(out, "}\n");
    }
}
