/* The reference executor: runs any IR function with plain loops, every tensor held as
 * f64 whatever its dtype (i32 values are exact in a double) and every sum accumulated
 * in f64. It is the oracle autodiff is checked against by finite differences and the
 * CUDA kernels are checked against with stated tolerances, so it favours obviously
 * correct code over speed. IR that breaks an invariant aborts with file:line (the
 * verifier guards user-facing paths; reaching one of these checks is a compiler bug). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* Values of the last run of one function, indexed by node id. owner[id] is the node
 * that produced vals[id], so a stale or foreign operand is caught, not misread. */
typedef struct FuncVals {
    const IrFunc *f;
    double **vals;
    const IrNode **owner;
    int n;
} FuncVals;

struct IrInterp {
    const IrModule *m;
    uint64_t seed;
    double **gvals;  /* per global id, numel doubles; grown when globals are added */
    int n_gvals;
    FuncVals *fv;
    int n_fv;
};

/* ---- internal errors ------------------------------------------------------------ */

_Noreturn static void interp_fail(const char *file, int line, const IrNode *n, const char *fmt, ...)
{
    va_list ap;
    if (n)
        fprintf(stderr, "%s:%d: interp: %%%d = %s: ", file, line, n->id, ir_op_info[n->op].name);
    else
        fprintf(stderr, "%s:%d: interp: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

#define FAIL(n, ...) interp_fail(__FILE__, __LINE__, (n), __VA_ARGS__)
#define ENSURE(c, n, ...) ((c) ? (void)0 : FAIL((n), __VA_ARGS__))

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        FAIL(NULL, "out of memory (%zu x %zu bytes)", n, size);
    return p;
}

/* ---- shapes ----------------------------------------------------------------------- */

static int64_t numel(IrType t)
{
    int64_t k = 1;
    for (int i = 0; i < t.rank; i++)
        k *= t.dim[i];
    return k;
}

/* Row-major multi-index of flat index i. */
static void unravel(IrType t, int64_t i, int64_t *idx)
{
    for (int d = t.rank - 1; d >= 0; d--) {
        idx[d] = i % t.dim[d];
        i /= t.dim[d];
    }
}

static int64_t ravel(IrType t, const int64_t *idx)
{
    int64_t i = 0;
    for (int d = 0; d < t.rank; d++)
        i = i * t.dim[d] + idx[d];
    return i;
}

/* b broadcasts onto a: aligned on the right, each b axis equal to a's or 1. */
static bool broadcasts_to(IrType b, IrType a)
{
    if (b.rank > a.rank)
        return false;
    for (int e = b.rank - 1, d = a.rank - 1; e >= 0; e--, d--)
        if (b.dim[e] != a.dim[d] && b.dim[e] != 1)
            return false;
    return true;
}

/* The flat index into b of a's flat index i, b broadcast onto a (see broadcasts_to). */
static int64_t bcast_index(IrType a, IrType b, int64_t i)
{
    int64_t bi = 0, stride = 1;
    for (int d = a.rank - 1, e = b.rank - 1; e >= 0; d--, e--) {
        int64_t c = i % a.dim[d];
        i /= a.dim[d];
        if (b.dim[e] != 1)
            bi += c * stride;
        stride *= b.dim[e];
    }
    return bi;
}

/* ---- attributes ------------------------------------------------------------------- */

static int64_t req_int(const IrNode *n, const char *key)
{
    const IrAttr *a = ir_attrs_get(&n->attrs, key);
    ENSURE(a && a->kind == IR_ATTR_INT, n, "missing int attribute '%s'", key);
    return a->i;
}

static double req_float(const IrNode *n, const char *key)
{
    const IrAttr *a = ir_attrs_get(&n->attrs, key);
    ENSURE(a && (a->kind == IR_ATTR_FLOAT || a->kind == IR_ATTR_INT), n, "missing float attribute '%s'", key);
    return a->kind == IR_ATTR_INT ? (double)a->i : a->f;
}

static const IrAttr *req_ints(const IrNode *n, const char *key, int count)
{
    const IrAttr *a = ir_attrs_get(&n->attrs, key);
    ENSURE(a && a->kind == IR_ATTR_INTS, n, "missing int-list attribute '%s'", key);
    ENSURE(count < 0 || a->n_ints == count, n, "attribute '%s' has %d entries, expected %d", key, a->n_ints, count);
    return a;
}

/* An i32 value held as double. */
static int64_t as_int(const IrNode *n, double v)
{
    ENSURE(v == floor(v) && fabs(v) < 9.0e15, n, "expected an integer value, got %g", v);
    return (int64_t)v;
}

/* ---- globals and values ----------------------------------------------------------- */

static double *global_vals(IrInterp *it, const IrGlobal *g)
{
    ENSURE(g->id >= 0 && g->id < it->m->n_globals && it->m->globals[g->id] == g, NULL,
           "global @%s is not in the interpreted module", g->name);
    if (g->id >= it->n_gvals) {
        int n = it->m->n_globals;
        double **nv = realloc(it->gvals, sizeof(double *) * (size_t)n);
        if (!nv)
            FAIL(NULL, "out of memory");
        for (int i = it->n_gvals; i < n; i++)
            nv[i] = xcalloc((size_t)numel(it->m->globals[i]->type), sizeof(double));
        it->gvals = nv;
        it->n_gvals = n;
    }
    return it->gvals[g->id];
}

IrInterp *ir_interp_create(const IrModule *m, uint64_t seed)
{
    IrInterp *it = xcalloc(1, sizeof(IrInterp));
    it->m = m;
    it->seed = seed;
    if (m->n_globals > 0)
        global_vals(it, m->globals[m->n_globals - 1]); /* allocates all of them, zeroed */
    return it;
}

static void func_vals_clear(FuncVals *fv)
{
    for (int i = 0; i < fv->n; i++)
        free(fv->vals[i]);
    free(fv->vals);
    free(fv->owner);
    fv->vals = NULL;
    fv->owner = NULL;
    fv->n = 0;
}

void ir_interp_destroy(IrInterp *it)
{
    if (!it)
        return;
    for (int i = 0; i < it->n_gvals; i++)
        free(it->gvals[i]);
    free(it->gvals);
    for (int i = 0; i < it->n_fv; i++)
        func_vals_clear(&it->fv[i]);
    free(it->fv);
    free(it);
}

double *ir_interp_global(IrInterp *it, const IrGlobal *g)
{
    return global_vals(it, g);
}

const double *ir_interp_value(const IrInterp *it, const IrNode *n)
{
    for (int i = 0; i < it->n_fv; i++) {
        const FuncVals *fv = &it->fv[i];
        if (n->id >= 0 && n->id < fv->n && fv->owner[n->id] == n)
            return fv->vals[n->id];
    }
    ENSURE(ir_op_info[n->op].flags & OPF_EFFECT, n, "node has no value: its function has not been run");
    return NULL;
}

/* Operand k of n in the current run. */
static const double *operand(const FuncVals *fv, const IrNode *n, int k)
{
    const IrNode *x = n->in[k];
    ENSURE(x->id >= 0 && x->id < fv->n && fv->owner[x->id] == x, n,
           "operand %d (%%%d) was not computed before its use", k, x->id);
    ENSURE(fv->vals[x->id], n, "operand %d (%%%d) is an effect, not a value", k, x->id);
    return fv->vals[x->id];
}

static double *new_vals(const IrNode *n)
{
    ENSURE(n->type.rank >= 0 && n->type.rank <= IR_MAX_RANK, n, "value node has rank %d", n->type.rank);
    return xcalloc((size_t)numel(n->type), sizeof(double));
}

/* ---- forward math ------------------------------------------------------------------- */

/* a[...,M,K] @ b[...,K,N] (or 2-D b shared over a's batch axes), transposes applied to
 * the last two axes of the stored operands. */
static double *op_matmul(const IrNode *n, const double *a, const double *b)
{
    IrType at = n->in[0]->type, bt = n->in[1]->type;
    bool ta = ir_attrs_int(&n->attrs, "trans_a", 0) != 0, tb = ir_attrs_int(&n->attrs, "trans_b", 0) != 0;
    int ra = at.rank, rb = bt.rank;
    ENSURE(ra >= 2 && (rb == 2 || rb == ra), n, "matmul ranks %d and %d", ra, rb);
    int64_t M = ta ? at.dim[ra - 1] : at.dim[ra - 2], K = ta ? at.dim[ra - 2] : at.dim[ra - 1];
    int64_t Kb = tb ? bt.dim[rb - 1] : bt.dim[rb - 2], N = tb ? bt.dim[rb - 2] : bt.dim[rb - 1];
    ENSURE(K == Kb, n, "inner dims %lld and %lld differ", (long long)K, (long long)Kb);
    if (rb == ra)
        for (int d = 0; d < ra - 2; d++)
            ENSURE(at.dim[d] == bt.dim[d], n, "batch axis %d differs", d);
    int64_t P = numel(at) / (M * K);
    ENSURE(numel(n->type) == P * M * N, n, "result type does not match [...,M,N]");
    double *y = new_vals(n);
    for (int64_t p = 0; p < P; p++) {
        const double *ap = a + p * M * K, *bp = b + (rb == 2 ? 0 : p * K * N);
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++) {
                    double av = ta ? ap[k * M + i] : ap[i * K + k];
                    double bv = tb ? bp[j * K + k] : bp[k * N + j];
                    s += av * bv;
                }
                y[(p * M + i) * N + j] = s;
            }
    }
    return y;
}

static double *op_binary(const IrNode *n, const double *a, const double *b)
{
    IrType at = n->in[0]->type, bt = n->in[1]->type;
    ENSURE(broadcasts_to(bt, at), n, "second operand does not broadcast onto the first");
    ENSURE(numel(n->type) == numel(at), n, "result type differs from the first operand");
    double *y = new_vals(n);
    for (int64_t i = 0; i < numel(at); i++) {
        double x = a[i], z = b[bcast_index(at, bt, i)];
        switch (n->op) {
        case IR_OP_ADD: y[i] = x + z; break;
        case IR_OP_SUB: y[i] = x - z; break;
        case IR_OP_MUL: y[i] = x * z; break;
        default: FAIL(n, "not a binary op");
        }
    }
    return y;
}

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

static const double GELU_C = 0.7978845608028654; /* sqrt(2/pi) */

static double gelu(double x)
{
    return 0.5 * x * (1.0 + tanh(GELU_C * (x + 0.044715 * x * x * x)));
}

static double gelu_deriv(double x)
{
    double t = tanh(GELU_C * (x + 0.044715 * x * x * x));
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
}

static double *op_unary(const IrNode *n, const double *x)
{
    double *y = new_vals(n);
    double alpha = n->op == IR_OP_SCALE ? req_float(n, "alpha") : 0;
    for (int64_t i = 0; i < numel(n->type); i++) {
        double v = x[i];
        switch (n->op) {
        case IR_OP_SCALE: y[i] = alpha * v; break;
        case IR_OP_SILU: y[i] = v * sigmoid(v); break;
        case IR_OP_GELU: y[i] = gelu(v); break;
        case IR_OP_RELU: y[i] = v > 0 ? v : 0; break;
        default: FAIL(n, "not a unary op");
        }
    }
    return y;
}

/* dy, x -> dy * f'(x) for silu, gelu, relu. */
static double *op_act_grad(const IrNode *n, const double *dy, const double *x)
{
    double *y = new_vals(n);
    for (int64_t i = 0; i < numel(n->type); i++) {
        double v = x[i], d;
        switch (n->op) {
        case IR_OP_SILU_GRAD: {
            double s = sigmoid(v);
            d = s * (1.0 + v * (1.0 - s));
            break;
        }
        case IR_OP_GELU_GRAD: d = gelu_deriv(v); break;
        case IR_OP_RELU_GRAD: d = v > 0 ? 1.0 : 0.0; break;
        default: FAIL(n, "not an activation gradient");
        }
        y[i] = dy[i] * d;
    }
    return y;
}

/* Rows of the last axis: x[R,C] viewed from x[...,C]. */
static int64_t last_dim(const IrNode *n, IrType t)
{
    ENSURE(t.rank >= 1, n, "row op on a scalar");
    return t.dim[t.rank - 1];
}

/* 1 / sqrt(mean(x^2) + eps) of one row. */
static double rms_inv(const double *x, int64_t C, double eps)
{
    double s = 0;
    for (int64_t c = 0; c < C; c++)
        s += x[c] * x[c];
    return 1.0 / sqrt(s / (double)C + eps);
}

/* Mean and 1 / sqrt(var + eps) of one row (biased variance). */
static void ln_stats(const double *x, int64_t C, double eps, double *mean, double *rstd)
{
    double mu = 0, var = 0;
    for (int64_t c = 0; c < C; c++)
        mu += x[c];
    mu /= (double)C;
    for (int64_t c = 0; c < C; c++)
        var += (x[c] - mu) * (x[c] - mu);
    var /= (double)C;
    *mean = mu;
    *rstd = 1.0 / sqrt(var + eps);
}

/* x[...,C], w[C] */
static double *op_rmsnorm(const IrNode *n, const double *x, const double *w)
{
    int64_t C = last_dim(n, n->in[0]->type), R = numel(n->in[0]->type) / C;
    ENSURE(numel(n->in[1]->type) == C, n, "weight is not [C]");
    double eps = req_float(n, "eps");
    double *y = new_vals(n);
    for (int64_t r = 0; r < R; r++) {
        double inv = rms_inv(x + r * C, C, eps);
        for (int64_t c = 0; c < C; c++)
            y[r * C + c] = x[r * C + c] * inv * w[c];
    }
    return y;
}

/* dy, x, w -> dx = inv * (w dy - x inv^2 mean(w dy x)), inv = 1/rms(x) */
static double *op_rmsnorm_grad_x(const IrNode *n, const double *dy, const double *x, const double *w)
{
    int64_t C = last_dim(n, n->in[1]->type), R = numel(n->in[1]->type) / C;
    ENSURE(numel(n->in[2]->type) == C, n, "weight is not [C]");
    double eps = req_float(n, "eps");
    double *dx = new_vals(n);
    for (int64_t r = 0; r < R; r++) {
        const double *xr = x + r * C, *dyr = dy + r * C;
        double inv = rms_inv(xr, C, eps), dot = 0;
        for (int64_t c = 0; c < C; c++)
            dot += w[c] * dyr[c] * xr[c];
        dot /= (double)C;
        for (int64_t c = 0; c < C; c++)
            dx[r * C + c] = inv * (w[c] * dyr[c] - xr[c] * inv * inv * dot);
    }
    return dx;
}

/* dy, x -> dw[C] = sum over rows of dy * x / rms(x) */
static double *op_rmsnorm_grad_w(const IrNode *n, const double *dy, const double *x)
{
    int64_t C = last_dim(n, n->in[1]->type), R = numel(n->in[1]->type) / C;
    ENSURE(numel(n->type) == C, n, "result is not [C]");
    double eps = req_float(n, "eps");
    double *dw = new_vals(n);
    for (int64_t r = 0; r < R; r++) {
        double inv = rms_inv(x + r * C, C, eps);
        for (int64_t c = 0; c < C; c++)
            dw[c] += dy[r * C + c] * x[r * C + c] * inv;
    }
    return dw;
}

/* x[...,C], w[C], b[C] */
static double *op_layernorm(const IrNode *n, const double *x, const double *w, const double *b)
{
    int64_t C = last_dim(n, n->in[0]->type), R = numel(n->in[0]->type) / C;
    ENSURE(numel(n->in[1]->type) == C && numel(n->in[2]->type) == C, n, "weight or bias is not [C]");
    double eps = req_float(n, "eps");
    double *y = new_vals(n);
    for (int64_t r = 0; r < R; r++) {
        double mu, rstd;
        ln_stats(x + r * C, C, eps, &mu, &rstd);
        for (int64_t c = 0; c < C; c++)
            y[r * C + c] = (x[r * C + c] - mu) * rstd * w[c] + b[c];
    }
    return y;
}

/* dy, x, w -> dx = rstd * (g - mean(g) - xhat * mean(g xhat)), g = dy w */
static double *op_layernorm_grad_x(const IrNode *n, const double *dy, const double *x, const double *w)
{
    int64_t C = last_dim(n, n->in[1]->type), R = numel(n->in[1]->type) / C;
    ENSURE(numel(n->in[2]->type) == C, n, "weight is not [C]");
    double eps = req_float(n, "eps");
    double *dx = new_vals(n);
    for (int64_t r = 0; r < R; r++) {
        const double *xr = x + r * C, *dyr = dy + r * C;
        double mu, rstd, mg = 0, mgx = 0;
        ln_stats(xr, C, eps, &mu, &rstd);
        for (int64_t c = 0; c < C; c++) {
            double g = dyr[c] * w[c];
            mg += g;
            mgx += g * (xr[c] - mu) * rstd;
        }
        mg /= (double)C;
        mgx /= (double)C;
        for (int64_t c = 0; c < C; c++) {
            double g = dyr[c] * w[c], xhat = (xr[c] - mu) * rstd;
            dx[r * C + c] = rstd * (g - mg - xhat * mgx);
        }
    }
    return dx;
}

/* dy, x -> dw[C] = sum over rows of dy * xhat */
static double *op_layernorm_grad_w(const IrNode *n, const double *dy, const double *x)
{
    int64_t C = last_dim(n, n->in[1]->type), R = numel(n->in[1]->type) / C;
    ENSURE(numel(n->type) == C, n, "result is not [C]");
    double eps = req_float(n, "eps");
    double *dw = new_vals(n);
    for (int64_t r = 0; r < R; r++) {
        double mu, rstd;
        ln_stats(x + r * C, C, eps, &mu, &rstd);
        for (int64_t c = 0; c < C; c++)
            dw[c] += dy[r * C + c] * (x[r * C + c] - mu) * rstd;
    }
    return dw;
}

/* x[B,T,H,D]: pairs (i, i + D/2) rotated by t * theta^(-2i/D), HF rotate_half:
 * y[i] = x[i] cos - x[i+D/2] sin, y[i+D/2] = x[i+D/2] cos + x[i] sin. */
static double *op_rope(const IrNode *n, const double *x)
{
    IrType t = n->in[0]->type;
    ENSURE(t.rank == 4 && t.dim[3] % 2 == 0, n, "expects x[B,T,H,D] with D even");
    double theta = req_float(n, "theta");
    double sign = ir_attrs_int(&n->attrs, "inverse", 0) ? -1.0 : 1.0;
    int64_t B = t.dim[0], T = t.dim[1], H = t.dim[2], D = t.dim[3], half = D / 2;
    double *y = new_vals(n);
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < T; s++)
            for (int64_t h = 0; h < H; h++) {
                const double *xr = x + ((b * T + s) * H + h) * D;
                double *yr = y + ((b * T + s) * H + h) * D;
                for (int64_t i = 0; i < half; i++) {
                    double ang = sign * (double)s * pow(theta, -2.0 * (double)i / (double)D);
                    double c = cos(ang), sn = sin(ang);
                    yr[i] = xr[i] * c - xr[i + half] * sn;
                    yr[i + half] = xr[i + half] * c + xr[i] * sn;
                }
            }
    return y;
}

/* Softmax over the last axis; causal: x[...,T,T] row i keeps columns j <= i. */
static double *op_softmax(const IrNode *n, const double *x)
{
    IrType t = n->in[0]->type;
    int64_t L = last_dim(n, t), R = numel(t) / L;
    bool causal = ir_attrs_int(&n->attrs, "causal", 0) != 0;
    ENSURE(!causal || (t.rank >= 2 && t.dim[t.rank - 2] == L), n, "causal softmax expects x[...,T,T]");
    double *y = new_vals(n);
    for (int64_t r = 0; r < R; r++) {
        int64_t keep = causal ? r % L + 1 : L; /* columns 0..keep-1 */
        const double *xr = x + r * L;
        double mx = -INFINITY, s = 0;
        for (int64_t j = 0; j < keep; j++)
            mx = fmax(mx, xr[j]);
        for (int64_t j = 0; j < keep; j++)
            s += exp(xr[j] - mx);
        for (int64_t j = 0; j < L; j++)
            y[r * L + j] = j < keep ? exp(xr[j] - mx) / s : 0.0;
    }
    return y;
}

/* dy, y -> dx = y * (dy - sum(dy * y)), per row */
static double *op_softmax_grad(const IrNode *n, const double *dy, const double *y)
{
    IrType t = n->in[1]->type;
    int64_t L = last_dim(n, t), R = numel(t) / L;
    double *dx = new_vals(n);
    for (int64_t r = 0; r < R; r++) {
        double s = 0;
        for (int64_t j = 0; j < L; j++)
            s += dy[r * L + j] * y[r * L + j];
        for (int64_t j = 0; j < L; j++)
            dx[r * L + j] = y[r * L + j] * (dy[r * L + j] - s);
    }
    return dx;
}

/* x[B,Hkv,T,D] -> y[B,Hkv*times,T,D], y[:,h] = x[:,h/times] */
static double *op_repeat_kv(const IrNode *n, const double *x)
{
    IrType xt = n->in[0]->type, yt = n->type;
    int64_t times = req_int(n, "times");
    ENSURE(xt.rank == 4 && yt.rank == 4 && yt.dim[1] == xt.dim[1] * times, n, "expects x[B,Hkv,T,D]");
    double *y = new_vals(n);
    int64_t idx[IR_MAX_RANK];
    for (int64_t i = 0; i < numel(yt); i++) {
        unravel(yt, i, idx);
        idx[1] /= times;
        y[i] = x[ravel(xt, idx)];
    }
    return y;
}

static double *op_copy(const IrNode *n, const double *x)
{
    ENSURE(numel(n->type) == numel(n->in[0]->type), n, "element count changes");
    double *y = new_vals(n);
    memcpy(y, x, sizeof(double) * (size_t)numel(n->type));
    return y;
}

/* y.dim[i] = x.dim[perm[i]] */
static double *op_transpose(const IrNode *n, const double *x)
{
    IrType xt = n->in[0]->type, yt = n->type;
    const IrAttr *perm = req_ints(n, "perm", xt.rank);
    ENSURE(yt.rank == xt.rank, n, "rank changes");
    for (int i = 0; i < yt.rank; i++)
        ENSURE(perm->ints[i] >= 0 && perm->ints[i] < xt.rank && yt.dim[i] == xt.dim[perm->ints[i]], n,
               "perm does not match the result type");
    double *y = new_vals(n);
    int64_t yi[IR_MAX_RANK], xi[IR_MAX_RANK];
    for (int64_t i = 0; i < numel(yt); i++) {
        unravel(yt, i, yi);
        for (int d = 0; d < yt.rank; d++)
            xi[perm->ints[d]] = yi[d];
        y[i] = x[ravel(xt, xi)];
    }
    return y;
}

static double *op_slice(const IrNode *n, const double *x)
{
    IrType xt = n->in[0]->type, yt = n->type;
    int64_t axis = req_int(n, "axis"), start = req_int(n, "start"), end = req_int(n, "end");
    ENSURE(axis >= 0 && axis < xt.rank && 0 <= start && start <= end && end <= xt.dim[axis], n, "bad slice");
    ENSURE(yt.rank == xt.rank && yt.dim[axis] == end - start, n, "result type does not match the slice");
    double *y = new_vals(n);
    int64_t idx[IR_MAX_RANK];
    for (int64_t i = 0; i < numel(yt); i++) {
        unravel(yt, i, idx);
        idx[axis] += start;
        y[i] = x[ravel(xt, idx)];
    }
    return y;
}

/* zeros of the result type with x placed at start along axis */
static double *op_pad(const IrNode *n, const double *x)
{
    IrType xt = n->in[0]->type, yt = n->type;
    int64_t axis = req_int(n, "axis"), start = req_int(n, "start");
    ENSURE(axis >= 0 && axis < yt.rank && yt.rank == xt.rank && start >= 0 && start + xt.dim[axis] <= yt.dim[axis], n,
           "bad pad");
    double *y = new_vals(n);
    int64_t idx[IR_MAX_RANK];
    for (int64_t i = 0; i < numel(xt); i++) {
        unravel(xt, i, idx);
        idx[axis] += start;
        y[ravel(yt, idx)] = x[i];
    }
    return y;
}

static double *op_concat(const IrNode *n, const double *a, const double *b)
{
    IrType at = n->in[0]->type, bt = n->in[1]->type, yt = n->type;
    int64_t axis = req_int(n, "axis");
    ENSURE(axis >= 0 && axis < yt.rank && yt.dim[axis] == at.dim[axis] + bt.dim[axis], n, "bad concat");
    double *y = new_vals(n);
    int64_t idx[IR_MAX_RANK];
    for (int64_t i = 0; i < numel(yt); i++) {
        unravel(yt, i, idx);
        if (idx[axis] < at.dim[axis]) {
            y[i] = a[ravel(at, idx)];
        } else {
            idx[axis] -= at.dim[axis];
            y[i] = b[ravel(bt, idx)];
        }
    }
    return y;
}

/* sum over {axes}, which are removed */
static double *op_sum(const IrNode *n, const double *x)
{
    IrType xt = n->in[0]->type, yt = n->type;
    const IrAttr *axes = req_ints(n, "axes", -1);
    bool removed[IR_MAX_RANK] = {false};
    for (int k = 0; k < axes->n_ints; k++) {
        ENSURE(axes->ints[k] >= 0 && axes->ints[k] < xt.rank && !removed[axes->ints[k]], n, "bad axes");
        removed[axes->ints[k]] = true;
    }
    ENSURE(yt.rank == xt.rank - axes->n_ints, n, "result rank does not match");
    double *y = new_vals(n);
    int64_t xi[IR_MAX_RANK], yi[IR_MAX_RANK];
    for (int64_t i = 0; i < numel(xt); i++) {
        unravel(xt, i, xi);
        int r = 0;
        for (int d = 0; d < xt.rank; d++)
            if (!removed[d])
                yi[r++] = xi[d];
        y[ravel(yt, yi)] += x[i];
    }
    return y;
}

/* sum x onto the result type, which broadcasts onto x (gradient of broadcasting) */
static double *op_reduce_to(const IrNode *n, const double *x)
{
    IrType xt = n->in[0]->type, yt = n->type;
    ENSURE(broadcasts_to(yt, xt), n, "result type does not broadcast onto the operand");
    double *y = new_vals(n);
    for (int64_t i = 0; i < numel(xt); i++)
        y[bcast_index(xt, yt, i)] += x[i];
    return y;
}

/* table[V,C], idx[...] -> y[...,C] */
static double *op_embedding(const IrNode *n, const double *table, const double *idx)
{
    IrType tt = n->in[0]->type;
    ENSURE(tt.rank == 2, n, "table is not [V,C]");
    int64_t V = tt.dim[0], C = tt.dim[1], R = numel(n->in[1]->type);
    ENSURE(numel(n->type) == R * C, n, "result is not [...,C]");
    double *y = new_vals(n);
    for (int64_t r = 0; r < R; r++) {
        int64_t v = as_int(n, idx[r]);
        ENSURE(v >= 0 && v < V, n, "index %lld out of range [0,%lld)", (long long)v, (long long)V);
        memcpy(y + r * C, table + v * C, sizeof(double) * (size_t)C);
    }
    return y;
}

/* dy[...,C], idx[...] -> dtable[V,C], scatter-add */
static double *op_embedding_grad(const IrNode *n, const double *dy, const double *idx)
{
    IrType yt = n->type;
    ENSURE(yt.rank == 2, n, "result is not [V,C]");
    int64_t V = yt.dim[0], C = yt.dim[1], R = numel(n->in[1]->type);
    ENSURE(numel(n->in[0]->type) == R * C, n, "dy is not [...,C]");
    double *dt = new_vals(n);
    for (int64_t r = 0; r < R; r++) {
        int64_t v = as_int(n, idx[r]);
        ENSURE(v >= 0 && v < V, n, "index %lld out of range [0,%lld)", (long long)v, (long long)V);
        for (int64_t c = 0; c < C; c++)
            dt[v * C + c] += dy[r * C + c];
    }
    return dt;
}

static double *op_dropout(const IrInterp *it, const IrNode *n, const double *x, const double *step)
{
    double p = req_float(n, "p");
    uint64_t stream = (uint64_t)req_int(n, "stream");
    int64_t N = numel(n->type), s = as_int(n, step[0]);
    ENSURE(p >= 0 && p < 1, n, "p = %g is not in [0,1)", p);
    double *y = new_vals(n);
    for (int64_t i = 0; i < N; i++) {
        bool keep = ir_rng_uniform(it->seed, stream, (uint64_t)(s * N + i)) >= p;
        y[i] = keep ? x[i] / (1.0 - p) : 0.0;
    }
    return y;
}

/* logits[N,V], targets[N] -> mean_n (logsumexp(logits[n]) - logits[n, targets[n]]) */
static double *op_cross_entropy(const IrNode *n, const double *logits, const double *tg)
{
    int64_t V = last_dim(n, n->in[0]->type), N = numel(n->in[0]->type) / V;
    ENSURE(numel(n->in[1]->type) == N && N > 0, n, "targets are not [N]");
    double *y = new_vals(n), total = 0;
    for (int64_t r = 0; r < N; r++) {
        const double *lr = logits + r * V;
        int64_t t = as_int(n, tg[r]);
        ENSURE(t >= 0 && t < V, n, "target %lld out of range [0,%lld)", (long long)t, (long long)V);
        double mx = -INFINITY, s = 0;
        for (int64_t j = 0; j < V; j++)
            mx = fmax(mx, lr[j]);
        for (int64_t j = 0; j < V; j++)
            s += exp(lr[j] - mx);
        total += mx + log(s) - lr[t];
    }
    y[0] = total / (double)N;
    return y;
}

/* dloss[], logits[N,V], targets[N] -> dloss * (softmax - onehot) / N */
static double *op_cross_entropy_grad(const IrNode *n, const double *dl, const double *logits, const double *tg)
{
    int64_t V = last_dim(n, n->in[1]->type), N = numel(n->in[1]->type) / V;
    ENSURE(numel(n->in[2]->type) == N && N > 0, n, "targets are not [N]");
    double *dx = new_vals(n);
    for (int64_t r = 0; r < N; r++) {
        const double *lr = logits + r * V;
        int64_t t = as_int(n, tg[r]);
        ENSURE(t >= 0 && t < V, n, "target %lld out of range [0,%lld)", (long long)t, (long long)V);
        double mx = -INFINITY, s = 0;
        for (int64_t j = 0; j < V; j++)
            mx = fmax(mx, lr[j]);
        for (int64_t j = 0; j < V; j++)
            s += exp(lr[j] - mx);
        for (int64_t j = 0; j < V; j++)
            dx[r * V + j] = dl[0] * (exp(lr[j] - mx) / s - (j == t ? 1.0 : 0.0)) / (double)N;
    }
    return dx;
}

/* ---- fused ops: attention, linear + cross-entropy -------------------------------------- */

/* Storage of a multi-result node: its results one after the other (ir_node_result_type),
 * so users read result 0 where they read any value and `result` nodes copy the rest. */
static int64_t result_offset(const IrNode *n, int index)
{
    int64_t off = 0;
    for (int r = 0; r < index; r++) {
        IrType t;
        ENSURE(ir_node_result_type(n, r, &t), n, "has no result %d", r);
        off += numel(t);
    }
    return off;
}

static double *new_results(const IrNode *n)
{
    return xcalloc((size_t)result_offset(n, ir_node_n_results(n)), sizeof(double));
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* Shapes of an attention node's operands: q[B,H,T,D], k and v [B,Hkv,T,D]. */
typedef struct {
    int64_t B, H, Hkv, T, D;
    double scale;
    bool causal;
} AttnDims;

static AttnDims attn_dims(const IrNode *n, IrType q, IrType k)
{
    AttnDims a = {q.dim[0], q.dim[1], k.dim[1], q.dim[2], q.dim[3], req_float(n, "scale"),
                  req_int(n, "causal") != 0};
    ENSURE(q.rank == 4 && k.rank == 4 && a.Hkv > 0 && a.H % a.Hkv == 0, n, "expects q[B,H,T,D], k[B,Hkv,T,D]");
    return a;
}

/* Row i of (b, h) in q-shaped storage, and row j of its kv head in k-shaped storage. */
static int64_t q_row(const AttnDims *a, int64_t b, int64_t h, int64_t i) { return ((b * a->H + h) * a->T + i) * a->D; }
static int64_t kv_row(const AttnDims *a, int64_t b, int64_t h, int64_t j)
{
    return ((b * a->Hkv + h / (a->H / a->Hkv)) * a->T + j) * a->D;
}

/* y = softmax(scale q k^T) v over keys j <= i (causal) or all j; result 1: lse, the log
 * of each row's softmax denominator (including the scale): lse_i = log sum_j exp(s_ij). */
static double *op_attention(const IrNode *n, const double *q, const double *k, const double *v)
{
    AttnDims a = attn_dims(n, n->in[0]->type, n->in[1]->type);
    double *y = new_results(n), *lse = y + result_offset(n, 1);
    double *s = xcalloc((size_t)a.T, sizeof(double));
    for (int64_t b = 0; b < a.B; b++)
        for (int64_t h = 0; h < a.H; h++)
            for (int64_t i = 0; i < a.T; i++) {
                int64_t keep = a.causal ? i + 1 : a.T;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < keep; j++) {
                    s[j] = a.scale * dot(q + q_row(&a, b, h, i), k + kv_row(&a, b, h, j), a.D);
                    mx = fmax(mx, s[j]);
                }
                for (int64_t j = 0; j < keep; j++)
                    sum += exp(s[j] - mx);
                double l = mx + log(sum), *yr = y + q_row(&a, b, h, i);
                lse[(b * a.H + h) * a.T + i] = l;
                for (int64_t j = 0; j < keep; j++) {
                    double p = exp(s[j] - l);
                    const double *vr = v + kv_row(&a, b, h, j);
                    for (int64_t d = 0; d < a.D; d++)
                        yr[d] += p * vr[d];
                }
            }
    free(s);
    return y;
}

/* The gradient of attention from its saved y and lse: with p_ij = exp(s_ij - lse_i),
 * delta_i = dy_i . y_i and ds_ij = p_ij (dy_i . v_j - delta_i):
 * dq_i = scale sum_j ds_ij k_j, dk_j = scale sum_i ds_ij q_i, dv_j = sum_i p_ij dy_i, the
 * kv sums running over every query head that reads the kv head. */
static double *op_attention_grad(const IrNode *n, const double *dy, const double *q, const double *k,
                                 const double *v, const double *y, const double *lse)
{
    AttnDims a = attn_dims(n, n->in[1]->type, n->in[2]->type);
    double *dq = new_results(n), *dk = dq + result_offset(n, 1), *dv = dq + result_offset(n, 2);
    for (int64_t b = 0; b < a.B; b++)
        for (int64_t h = 0; h < a.H; h++)
            for (int64_t i = 0; i < a.T; i++) {
                int64_t keep = a.causal ? i + 1 : a.T, qi = q_row(&a, b, h, i);
                double delta = dot(dy + qi, y + qi, a.D), l = lse[(b * a.H + h) * a.T + i];
                for (int64_t j = 0; j < keep; j++) {
                    int64_t kj = kv_row(&a, b, h, j);
                    double p = exp(a.scale * dot(q + qi, k + kj, a.D) - l);
                    double ds = p * (dot(dy + qi, v + kj, a.D) - delta);
                    for (int64_t d = 0; d < a.D; d++) {
                        dv[kj + d] += p * dy[qi + d];
                        dq[qi + d] += a.scale * ds * k[kj + d];
                        dk[kj + d] += a.scale * ds * q[qi + d];
                    }
                }
            }
    return dq;
}

/* x[N,C], w[V,C], targets[N] -> mean_n (logsumexp(z_n) - z_n[t_n]), z_n = x_n w^T. With
 * dl (the gradient): dx (result 0) and dw (result 1) of dl times that mean. */
static double *head_loss(const IrNode *n, const double *dl, const double *x, const double *w, const double *tg)
{
    IrType xt = n->in[dl ? 1 : 0]->type, wt = n->in[dl ? 2 : 1]->type;
    int64_t N = xt.dim[0], C = xt.dim[1], V = wt.dim[0];
    ENSURE(xt.rank == 2 && wt.rank == 2 && wt.dim[1] == C && N > 0, n, "expects x[N,C], w[V,C]");
    double *y = dl ? new_results(n) : new_vals(n), *dw = dl ? y + result_offset(n, 1) : NULL, total = 0;
    double *z = xcalloc((size_t)V, sizeof(double));
    for (int64_t r = 0; r < N; r++) {
        int64_t t = as_int(n, tg[r]);
        ENSURE(t >= 0 && t < V, n, "target %lld out of range [0,%lld)", (long long)t, (long long)V);
        double mx = -INFINITY, s = 0;
        for (int64_t j = 0; j < V; j++) {
            z[j] = dot(x + r * C, w + j * C, C);
            mx = fmax(mx, z[j]);
        }
        for (int64_t j = 0; j < V; j++)
            s += exp(z[j] - mx);
        double lse = mx + log(s);
        total += lse - z[t];
        for (int64_t j = 0; dl && j < V; j++) {
            double g = dl[0] * (exp(z[j] - lse) - (j == t ? 1.0 : 0.0)) / (double)N;
            for (int64_t c = 0; c < C; c++) {
                y[r * C + c] += g * w[j * C + c];
                dw[j * C + c] += g * x[r * C + c];
            }
        }
    }
    if (!dl)
        y[0] = total / (double)N;
    free(z);
    return y;
}

/* The index-th extra result of the operand, copied out of its storage. */
static double *op_result(const IrNode *n, const double *x)
{
    double *y = new_vals(n);
    memcpy(y, x + result_offset(n->in[0], (int)req_int(n, "index")), sizeof(double) * (size_t)numel(n->type));
    return y;
}

/* ---- training ----------------------------------------------------------------------- */

static double *op_global_norm(const FuncVals *fv, const IrNode *n)
{
    double s = 0;
    for (int k = 0; k < n->n_in; k++) {
        const double *x = operand(fv, n, k);
        for (int64_t i = 0; i < numel(n->in[k]->type); i++)
            s += x[i] * x[i];
    }
    double *y = new_vals(n);
    y[0] = sqrt(s);
    return y;
}

/* min(1, max_norm / (norm + 1e-6)) */
static double *op_clip_scale(const IrNode *n, const double *norm)
{
    double *y = new_vals(n);
    y[0] = fmin(1.0, req_float(n, "max_norm") / (norm[0] + 1e-6));
    return y;
}

/* grad, lr[], gscale[], t[] (1-based); @p @m @v */
static void op_adamw(IrInterp *it, const FuncVals *fv, const IrNode *n)
{
    const double *g = operand(fv, n, 0), *lr = operand(fv, n, 1), *gs = operand(fv, n, 2);
    int64_t t = as_int(n, operand(fv, n, 3)[0]);
    double b1 = req_float(n, "beta1"), b2 = req_float(n, "beta2");
    double eps = req_float(n, "eps"), wd = req_float(n, "weight_decay");
    ENSURE(t >= 1, n, "step t = %lld is not 1-based", (long long)t);
    int64_t N = numel(n->gl[0]->type);
    for (int k = 1; k < 3; k++)
        ENSURE(numel(n->gl[k]->type) == N, n, "moment @%s does not match @%s", n->gl[k]->name, n->gl[0]->name);
    ENSURE(numel(n->in[0]->type) == N, n, "gradient does not match @%s", n->gl[0]->name);
    double *p = global_vals(it, n->gl[0]), *m = global_vals(it, n->gl[1]), *v = global_vals(it, n->gl[2]);
    double c1 = 1.0 - pow(b1, (double)t), c2 = 1.0 - pow(b2, (double)t);
    for (int64_t i = 0; i < N; i++) {
        double gi = g[i] * gs[0];
        m[i] = b1 * m[i] + (1.0 - b1) * gi;
        v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
        double mh = m[i] / c1, vh = v[i] / c2;
        p[i] -= lr[0] * wd * p[i];
        p[i] -= lr[0] * mh / (sqrt(vh) + eps);
    }
}

/* @w[O,I], @a[R,I], @b[O,R]: w += scale * b @ a */
static void op_lora_merge(IrInterp *it, const IrNode *n)
{
    IrType wt = n->gl[0]->type, at = n->gl[1]->type, bt = n->gl[2]->type;
    ENSURE(wt.rank == 2 && bt.rank == 2 && at.rank == 2 && bt.dim[0] == wt.dim[0] && at.dim[1] == wt.dim[1] &&
               bt.dim[1] == at.dim[0],
           n, "expects @w[O,I] @a[R,I] @b[O,R]");
    double scale = req_float(n, "scale");
    int64_t O = wt.dim[0], I = wt.dim[1], R = at.dim[0];
    double *w = global_vals(it, n->gl[0]), *a = global_vals(it, n->gl[1]), *b = global_vals(it, n->gl[2]);
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++) {
            double s = 0;
            for (int64_t r = 0; r < R; r++)
                s += b[o * R + r] * a[r * I + i];
            w[o * I + i] += scale * s;
        }
}

static void op_init(IrInterp *it, const FuncVals *fv, const IrNode *n)
{
    double *g = global_vals(it, n->gl[0]);
    int64_t N = numel(n->gl[0]->type);
    if (n->op == IR_OP_INIT_CONST) {
        double v = req_float(n, "value");
        for (int64_t i = 0; i < N; i++)
            g[i] = v;
        return;
    }
    int64_t s = as_int(n, operand(fv, n, 0)[0]);
    uint64_t stream = (uint64_t)req_int(n, "stream");
    if (n->op == IR_OP_INIT_NORMAL) {
        double sd = req_float(n, "std");
        for (int64_t i = 0; i < N; i++)
            g[i] = sd * ir_rng_normal(it->seed, stream, (uint64_t)(s * N + i));
    } else {
        double bound = req_float(n, "bound");
        for (int64_t i = 0; i < N; i++)
            g[i] = bound * (2.0 * ir_rng_uniform(it->seed, stream, (uint64_t)(s * N + i)) - 1.0);
    }
}

typedef struct MagIdx {
    double mag;
    int64_t idx;
} MagIdx;

static int mag_idx_cmp(const void *pa, const void *pb)
{
    const MagIdx *a = pa, *b = pb;
    if (a->mag != b->mag)
        return a->mag < b->mag ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* How many of n entries magnitude pruning zeroes: ceil(p n). p n is first snapped to
 * a nearby integer so that, e.g., 0.07 * 100 = 7.000000000000001 zeroes 7, not 8. */
static int64_t prune_count(double p, int64_t n)
{
    double x = p * (double)n, r = nearbyint(x);
    int64_t k = fabs(x - r) <= 1e-9 * fmax(1.0, x) ? (int64_t)r : (int64_t)ceil(x);
    return k < 0 ? 0 : k > n ? n : k;
}

static void op_prune(IrInterp *it, const FuncVals *fv, const IrNode *n)
{
    double *g = global_vals(it, n->gl[0]);
    int64_t N = numel(n->gl[0]->type), s = as_int(n, operand(fv, n, 0)[0]);
    double p = operand(fv, n, 1)[0];
    const char *mode = ir_attrs_str(&n->attrs, "mode", NULL);
    ENSURE(p >= 0 && p <= 1, n, "fraction %g is not in [0,1]", p);
    ENSURE(mode, n, "missing string attribute 'mode'");
    if (strcmp(mode, "magnitude") == 0) {
        MagIdx *order = xcalloc((size_t)N, sizeof(MagIdx));
        for (int64_t i = 0; i < N; i++) {
            order[i].mag = fabs(g[i]);
            order[i].idx = i;
        }
        qsort(order, (size_t)N, sizeof(MagIdx), mag_idx_cmp);
        int64_t k = prune_count(p, N);
        for (int64_t i = 0; i < k; i++)
            g[order[i].idx] = 0.0;
        free(order);
    } else if (strcmp(mode, "random") == 0) {
        uint64_t stream = (uint64_t)req_int(n, "stream");
        for (int64_t i = 0; i < N; i++)
            if (ir_rng_uniform(it->seed, stream, (uint64_t)(s * N + i)) < p)
                g[i] = 0.0;
    } else {
        FAIL(n, "unknown prune mode '%s'", mode);
    }
}

static void op_store(IrInterp *it, const FuncVals *fv, const IrNode *n)
{
    int64_t N = numel(n->gl[0]->type);
    ENSURE(numel(n->in[0]->type) == N, n, "value does not match @%s", n->gl[0]->name);
    memcpy(global_vals(it, n->gl[0]), operand(fv, n, 0), sizeof(double) * (size_t)N);
}

/* ---- the run ------------------------------------------------------------------------- */

/* Executes n; returns its value (malloc'd) or NULL for an effect. */
static double *exec_node(IrInterp *it, const FuncVals *fv, const IrNode *n)
{
    const IrOpInfo *info = &ir_op_info[n->op];
    ENSURE(info->n_values < 0 ? n->n_in >= 1 : n->n_in == info->n_values, n, "has %d operands", n->n_in);
    ENSURE(n->n_gl == info->n_globals, n, "has %d global operands", n->n_gl);
#define X(k) operand(fv, n, (k))
    switch (n->op) {
    case IR_OP_GLOBAL: {
        ENSURE(numel(n->type) == numel(n->gl[0]->type), n, "type differs from @%s", n->gl[0]->name);
        double *y = new_vals(n);
        memcpy(y, global_vals(it, n->gl[0]), sizeof(double) * (size_t)numel(n->type));
        return y;
    }
    case IR_OP_CONST: {
        double *y = new_vals(n), v = req_float(n, "value");
        for (int64_t i = 0; i < numel(n->type); i++)
            y[i] = v;
        return y;
    }
    case IR_OP_EMBEDDING: return op_embedding(n, X(0), X(1));
    case IR_OP_MATMUL: return op_matmul(n, X(0), X(1));
    case IR_OP_ADD:
    case IR_OP_SUB:
    case IR_OP_MUL: return op_binary(n, X(0), X(1));
    case IR_OP_SCALE:
    case IR_OP_SILU:
    case IR_OP_GELU:
    case IR_OP_RELU: return op_unary(n, X(0));
    case IR_OP_RMSNORM: return op_rmsnorm(n, X(0), X(1));
    case IR_OP_LAYERNORM: return op_layernorm(n, X(0), X(1), X(2));
    case IR_OP_ROPE: return op_rope(n, X(0));
    case IR_OP_SOFTMAX: return op_softmax(n, X(0));
    case IR_OP_REPEAT_KV: return op_repeat_kv(n, X(0));
    case IR_OP_RESHAPE: return op_copy(n, X(0));
    case IR_OP_TRANSPOSE: return op_transpose(n, X(0));
    case IR_OP_SLICE: return op_slice(n, X(0));
    case IR_OP_CONCAT: return op_concat(n, X(0), X(1));
    case IR_OP_SUM: return op_sum(n, X(0));
    case IR_OP_DROPOUT: return op_dropout(it, n, X(0), X(1));
    case IR_OP_CROSS_ENTROPY: return op_cross_entropy(n, X(0), X(1));
    case IR_OP_RESULT: return op_result(n, X(0));
    case IR_OP_ATTENTION: return op_attention(n, X(0), X(1), X(2));
    case IR_OP_ATTENTION_GRAD: return op_attention_grad(n, X(0), X(1), X(2), X(3), X(4), X(5));
    case IR_OP_LINEAR_CROSS_ENTROPY: return head_loss(n, NULL, X(0), X(1), X(2));
    case IR_OP_LINEAR_CROSS_ENTROPY_GRAD: return head_loss(n, X(0), X(1), X(2), X(3));
    case IR_OP_EMBEDDING_GRAD: return op_embedding_grad(n, X(0), X(1));
    case IR_OP_SILU_GRAD:
    case IR_OP_GELU_GRAD:
    case IR_OP_RELU_GRAD: return op_act_grad(n, X(0), X(1));
    case IR_OP_RMSNORM_GRAD_X: return op_rmsnorm_grad_x(n, X(0), X(1), X(2));
    case IR_OP_RMSNORM_GRAD_W: return op_rmsnorm_grad_w(n, X(0), X(1));
    case IR_OP_LAYERNORM_GRAD_X: return op_layernorm_grad_x(n, X(0), X(1), X(2));
    case IR_OP_LAYERNORM_GRAD_W: return op_layernorm_grad_w(n, X(0), X(1));
    case IR_OP_SOFTMAX_GRAD: return op_softmax_grad(n, X(0), X(1));
    case IR_OP_CROSS_ENTROPY_GRAD: return op_cross_entropy_grad(n, X(0), X(1), X(2));
    case IR_OP_REDUCE_TO: return op_reduce_to(n, X(0));
    case IR_OP_PAD: return op_pad(n, X(0));
    case IR_OP_GLOBAL_NORM: return op_global_norm(fv, n);
    case IR_OP_CLIP_SCALE: return op_clip_scale(n, X(0));
    case IR_OP_ADAMW: op_adamw(it, fv, n); return NULL;
    case IR_OP_LORA_MERGE: op_lora_merge(it, n); return NULL;
    case IR_OP_INIT_NORMAL:
    case IR_OP_INIT_UNIFORM:
    case IR_OP_INIT_CONST: op_init(it, fv, n); return NULL;
    case IR_OP_PRUNE: op_prune(it, fv, n); return NULL;
    case IR_OP_STORE: op_store(it, fv, n); return NULL;
    case IR_OP_COUNT: break;
    }
#undef X
    FAIL(n, "no interpreter case for op %d", (int)n->op);
}

static FuncVals *func_vals_for(IrInterp *it, const IrFunc *f)
{
    for (int i = 0; i < it->n_fv; i++)
        if (it->fv[i].f == f)
            return &it->fv[i];
    FuncVals *nv = realloc(it->fv, sizeof(FuncVals) * (size_t)(it->n_fv + 1));
    if (!nv)
        FAIL(NULL, "out of memory");
    it->fv = nv;
    FuncVals *fv = &it->fv[it->n_fv++];
    memset(fv, 0, sizeof *fv);
    fv->f = f;
    return fv;
}

double ir_interp_run(IrInterp *it, const IrFunc *f)
{
    FuncVals *fv = func_vals_for(it, f);
    func_vals_clear(fv);
    int n_ids = 0;
    for (int i = 0; i < f->n_nodes; i++) {
        ENSURE(f->nodes[i]->id >= 0, f->nodes[i], "negative node id");
        if (f->nodes[i]->id >= n_ids)
            n_ids = f->nodes[i]->id + 1;
    }
    fv->vals = xcalloc((size_t)n_ids, sizeof(double *));
    fv->owner = xcalloc((size_t)n_ids, sizeof(IrNode *));
    fv->n = n_ids;
    for (int i = 0; i < f->n_nodes; i++) {
        const IrNode *n = f->nodes[i];
        ENSURE(!fv->owner[n->id], n, "node id %d appears twice in '%s'", n->id, f->name);
        ENSURE(n->op >= 0 && n->op < IR_OP_COUNT, n, "bad op kind");
        double *y = exec_node(it, fv, n);
        ENSURE((y == NULL) == ((ir_op_info[n->op].flags & OPF_EFFECT) != 0), n, "effect/value mismatch");
        fv->owner[n->id] = n;
        fv->vals[n->id] = y;
    }
    if (!f->ret)
        return 0.0;
    const double *r = ir_interp_value(it, f->ret);
    ENSURE(r, f->ret, "returned node has no value");
    return r[0];
}
