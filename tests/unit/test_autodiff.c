/* Autodiff against finite differences: for every OPF_DIFF op, a tiny graph
 * loss = sum(op(x) * r) with random inputs and a fixed random r is differentiated and
 * each gradient element compared with a central difference run through the reference
 * interpreter in f64. Also: every OPF_DIFF op has a rule, and no gradient node is built
 * for a global not in wrt or a value off the path to the loss. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* ---- the finite-difference harness ---------------------------------------------- */

enum { MAX_IN = 8 };

typedef struct {
    Arena a;
    Diags d;
    IrModule *m;
    IrFunc *f;
    IrBuilder b;
    IrGlobal *wrt[MAX_IN];
    int n_wrt;
    IrGlobal *data[MAX_IN]; /* i32 inputs and their fixed values */
    const double *data_vals[MAX_IN];
    int n_data;
    int n_glob;
} Fd;

static void fd_init(Fd *t)
{
    memset(t, 0, sizeof *t);
    arena_init(&t->a);
    diag_init(&t->d, &t->a);
    t->m = ir_module_new(&t->a, "fd");
    t->f = ir_func_new(t->m, "f");
    ir_builder_init(&t->b, t->m, t->f, &t->d);
}

static IrGlobal *new_global(Fd *t, IrDType dt, int rank, const int64_t *dims)
{
    char name[16];
    snprintf(name, sizeof name, "g%d", t->n_glob++);
    return ir_global_new(t->m, name, ir_type_make(dt, rank, dims), IR_CLASS_PARAM, 0, srcloc_none());
}

/* A float input the loss is differentiated against (random values). */
static IrNode *param(Fd *t, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    int64_t dims[4] = {d0, d1, d2, d3};
    ck_assert_int_lt(t->n_wrt, MAX_IN);
    IrGlobal *g = new_global(t, IR_F32, rank, dims);
    t->wrt[t->n_wrt++] = g;
    return ir_global_read(&t->b, g);
}

/* An i32 input with fixed values (indices, targets, the step). */
static IrNode *data(Fd *t, int rank, int64_t d0, int64_t d1, const double *vals)
{
    int64_t dims[2] = {d0, d1};
    ck_assert_int_lt(t->n_data, MAX_IN);
    IrGlobal *g = new_global(t, IR_I32, rank, dims);
    t->data[t->n_data] = g;
    t->data_vals[t->n_data++] = vals;
    return ir_global_read(&t->b, g);
}

static void fill_random(double *v, int64_t n, uint64_t stream)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = ir_rng_normal(2024, stream, (uint64_t)i);
}

/* Differentiates loss = sum(y * r) w.r.t. every param and compares each gradient element
 * with (L(x + h) - L(x - h)) / 2h, h = 1e-5 max(1, |x|), after checking the whole
 * function (gradient included) passes ir_verify. The error of one element is
 * |analytic - fd| / max(|analytic|, |fd|, 1e-2 * the tensor's largest |fd|): relative,
 * with a floor so elements near zero are judged on the tensor's scale. Returns the max. */
static double fd_check(Fd *t, IrNode *y)
{
    ck_assert_msg(!t->b.failed, "forward graph failed to build");
    IrGlobal *rg = new_global(t, y->type.dtype, y->type.rank, y->type.dim);
    IrNode *prod = ir_binary(&t->b, IR_OP_MUL, y, ir_global_read(&t->b, rg));
    int64_t axes[IR_MAX_RANK] = {0, 1, 2, 3};
    IrNode *loss = y->type.rank > 0 ? ir_sum(&t->b, prod, y->type.rank, axes) : prod;
    IrNode *grads[MAX_IN];
    bool ok = ir_autodiff(t->m, t->f, loss, t->wrt, t->n_wrt, grads, &t->d);
    if (!ok)
        diag_print(&t->d, stderr, false);
    ck_assert(ok);
    t->f->ret = loss;
    ok = ir_verify(t->m, &t->d);
    if (!ok)
        diag_print(&t->d, stderr, false);
    ck_assert_msg(ok, "the gradient IR does not verify");

    IrInterp *it = ir_interp_create(t->m, 17);
    fill_random(ir_interp_global(it, rg), ir_type_numel(rg->type), 1000);
    for (int k = 0; k < t->n_wrt; k++)
        fill_random(ir_interp_global(it, t->wrt[k]), ir_type_numel(t->wrt[k]->type), (uint64_t)k);
    for (int k = 0; k < t->n_data; k++)
        memcpy(ir_interp_global(it, t->data[k]), t->data_vals[k],
               sizeof(double) * (size_t)ir_type_numel(t->data[k]->type));
    ir_interp_run(it, t->f);

    /* every analytic gradient is read before the perturbed runs overwrite the values */
    double *ga_all[MAX_IN];
    for (int k = 0; k < t->n_wrt; k++) {
        int64_t n = ir_type_numel(t->wrt[k]->type);
        ck_assert_int_eq(ir_type_numel(grads[k]->type), n);
        ga_all[k] = malloc(sizeof(double) * (size_t)n);
        ck_assert(ga_all[k]);
        memcpy(ga_all[k], ir_interp_value(it, grads[k]), sizeof(double) * (size_t)n);
    }
    double worst = 0;
    for (int k = 0; k < t->n_wrt; k++) {
        int64_t n = ir_type_numel(t->wrt[k]->type);
        double *ga = ga_all[k], *gf = malloc(sizeof(double) * (size_t)n);
        ck_assert(gf);
        double *x = ir_interp_global(it, t->wrt[k]), scale = 0;
        for (int64_t i = 0; i < n; i++) {
            double x0 = x[i], h = 1e-5 * fmax(1.0, fabs(x0));
            x[i] = x0 + h;
            double lp = ir_interp_run(it, t->f);
            x[i] = x0 - h;
            double lm = ir_interp_run(it, t->f);
            x[i] = x0;
            gf[i] = (lp - lm) / (2 * h);
            scale = fmax(scale, fabs(gf[i]));
        }
        ck_assert_msg(scale > 1e-6, "gradient of input %d is (almost) zero: a useless test", k);
        for (int64_t i = 0; i < n; i++) {
            double den = fmax(fmax(fabs(ga[i]), fabs(gf[i])), 1e-2 * scale);
            worst = fmax(worst, fabs(ga[i] - gf[i]) / den);
        }
        free(ga);
        free(gf);
    }
    ir_interp_destroy(it);
    arena_fini(&t->a);
    return worst;
}

/* ---- one case per OPF_DIFF op: each returns the largest error over its configurations ---- */

static double fd_embedding(void)
{
    static const double idx[6] = {4, 0, 2, 2, 1, 4};
    Fd t;
    fd_init(&t);
    IrNode *tab = param(&t, 2, 5, 3, 0, 0);
    return fd_check(&t, ir_embedding(&t.b, tab, data(&t, 2, 2, 3, idx)));
}

static double fd_matmul(void)
{
    double worst = 0;
    const int64_t M = 3, K = 4, N = 2, P = 2;
    for (int cfg = 0; cfg < 12; cfg++) {
        bool ta = cfg & 1, tb = cfg & 2;
        int batch = cfg / 4; /* 0: 2-D @ 2-D, 1: 3-D @ shared 2-D, 2: 3-D @ 3-D */
        Fd t;
        fd_init(&t);
        IrNode *a = batch ? param(&t, 3, P, ta ? K : M, ta ? M : K, 0) : param(&t, 2, ta ? K : M, ta ? M : K, 0, 0);
        IrNode *b = batch == 2 ? param(&t, 3, P, tb ? N : K, tb ? K : N, 0) : param(&t, 2, tb ? N : K, tb ? K : N, 0, 0);
        worst = fmax(worst, fd_check(&t, ir_matmul(&t.b, a, b, ta, tb)));
    }
    return worst;
}

/* add/sub/mul: same shapes, a vector and a matrix broadcast along leading axes, a scalar,
 * and the same value as both operands (a scaled copy for sub). */
static double fd_binary(IrOpKind op)
{
    double worst = 0;
    for (int cfg = 0; cfg < 5; cfg++) {
        Fd t;
        fd_init(&t);
        IrNode *a = param(&t, 3, 2, 3, 4, 0), *b;
        switch (cfg) {
        case 0: b = param(&t, 3, 2, 3, 4, 0); break;
        case 1: b = param(&t, 1, 4, 0, 0, 0); break;
        case 2: b = param(&t, 2, 3, 4, 0, 0); break;
        case 3: b = param(&t, 0, 0, 0, 0, 0); break;
        default: b = op == IR_OP_SUB ? ir_scale(&t.b, a, 0.25) : a; break; /* a - a would be 0 */
        }
        worst = fmax(worst, fd_check(&t, ir_binary(&t.b, op, a, b)));
    }
    return worst;
}

static double fd_add(void) { return fd_binary(IR_OP_ADD); }
static double fd_sub(void) { return fd_binary(IR_OP_SUB); }
static double fd_mul(void) { return fd_binary(IR_OP_MUL); }

static double fd_scale(void)
{
    Fd t;
    fd_init(&t);
    return fd_check(&t, ir_scale(&t.b, param(&t, 2, 3, 4, 0, 0), -1.75));
}

static double fd_unary(IrOpKind op)
{
    Fd t;
    fd_init(&t);
    return fd_check(&t, ir_unary(&t.b, op, param(&t, 2, 3, 4, 0, 0)));
}

static double fd_silu(void) { return fd_unary(IR_OP_SILU); }
static double fd_gelu(void) { return fd_unary(IR_OP_GELU); }
static double fd_relu(void) { return fd_unary(IR_OP_RELU); }

static double fd_rmsnorm(void)
{
    Fd t;
    fd_init(&t);
    IrNode *x = param(&t, 3, 2, 3, 4, 0), *w = param(&t, 1, 4, 0, 0, 0);
    return fd_check(&t, ir_rmsnorm(&t.b, x, w, 1e-5));
}

static double fd_layernorm(void)
{
    Fd t;
    fd_init(&t);
    IrNode *x = param(&t, 3, 2, 3, 4, 0), *w = param(&t, 1, 4, 0, 0, 0), *b = param(&t, 1, 4, 0, 0, 0);
    return fd_check(&t, ir_layernorm(&t.b, x, w, b, 1e-5));
}

static double fd_rope(void)
{
    double worst = 0;
    for (int inverse = 0; inverse < 2; inverse++) {
        Fd t;
        fd_init(&t);
        IrNode *x = param(&t, 4, 2, 3, 2, 4);
        IrAttrs as = {NULL, 0, 0};
        ir_attrs_set_float(&t.a, &as, "theta", 10000.0);
        ir_attrs_set_int(&t.a, &as, "inverse", inverse);
        worst = fmax(worst, fd_check(&t, ir_build(&t.b, IR_OP_ROPE, &x, 1, NULL, 0, &as)));
    }
    return worst;
}

static double fd_softmax(void)
{
    double worst = 0;
    for (int causal = 0; causal < 2; causal++) {
        Fd t;
        fd_init(&t);
        worst = fmax(worst, fd_check(&t, ir_softmax(&t.b, param(&t, 3, 2, 3, 3, 0), causal)));
    }
    return worst;
}

static double fd_repeat_kv(void)
{
    Fd t;
    fd_init(&t);
    return fd_check(&t, ir_repeat_kv(&t.b, param(&t, 4, 2, 2, 3, 2), 3));
}

static double fd_reshape(void)
{
    Fd t;
    fd_init(&t);
    const int64_t d[2] = {4, 6};
    return fd_check(&t, ir_reshape(&t.b, param(&t, 3, 2, 3, 4, 0), 2, d));
}

static double fd_transpose(void)
{
    static const int64_t perms[3][4] = {{2, 0, 1, 0}, {1, 0, 2, 0}, {0, 2, 1, 3}};
    double worst = 0;
    for (int cfg = 0; cfg < 3; cfg++) {
        Fd t;
        fd_init(&t);
        int rank = cfg == 2 ? 4 : 3;
        IrNode *x = rank == 4 ? param(&t, 4, 2, 3, 2, 4) : param(&t, 3, 2, 3, 4, 0);
        worst = fmax(worst, fd_check(&t, ir_transpose(&t.b, x, rank, perms[cfg])));
    }
    return worst;
}

static double fd_slice(void)
{
    double worst = 0;
    for (int axis = 0; axis < 2; axis++) {
        Fd t;
        fd_init(&t);
        worst = fmax(worst, fd_check(&t, ir_slice(&t.b, param(&t, 2, 3, 5, 0, 0), axis, 1, 3)));
    }
    return worst;
}

static double fd_concat(void)
{
    double worst = 0;
    for (int axis = 0; axis < 2; axis++) {
        Fd t;
        fd_init(&t);
        IrNode *a = param(&t, 2, 2, 3, 0, 0);
        IrNode *b = axis == 0 ? param(&t, 2, 1, 3, 0, 0) : param(&t, 2, 2, 2, 0, 0);
        worst = fmax(worst, fd_check(&t, ir_concat(&t.b, a, b, axis)));
    }
    return worst;
}

static double fd_sum(void)
{
    static const int64_t axes[7][3] = {{0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1, 2}, {2, 0}};
    static const int n_axes[7] = {1, 1, 1, 2, 2, 3, 2};
    double worst = 0;
    for (int cfg = 0; cfg < 7; cfg++) {
        Fd t;
        fd_init(&t);
        worst = fmax(worst, fd_check(&t, ir_sum(&t.b, param(&t, 3, 2, 3, 4, 0), n_axes[cfg], axes[cfg])));
    }
    return worst;
}

static double fd_dropout(void)
{
    static const double step = 3;
    Fd t;
    fd_init(&t);
    IrNode *x = param(&t, 2, 4, 5, 0, 0);
    return fd_check(&t, ir_dropout(&t.b, x, data(&t, 0, 0, 0, &step), 0.3, 2));
}

static double fd_cross_entropy(void)
{
    static const double tg[4] = {1, 4, 0, 1};
    Fd t;
    fd_init(&t);
    IrNode *l = param(&t, 2, 4, 5, 0, 0);
    return fd_check(&t, ir_cross_entropy(&t.b, l, data(&t, 1, 4, 0, tg)));
}

/* Causal and not, GQA (4 and 2 query heads on 2 and 1 kv heads) and plain. (At T = 1 the
 * softmax is 1 and dq = dk = 0: the fused-op tests cover it.) */
static double fd_attention(void)
{
    static const int64_t cfg[3][4] = {{4, 2, 3, 1}, {2, 2, 3, 0}, {2, 1, 2, 1}}; /* H, Hkv, T, causal */
    double worst = 0;
    for (int c = 0; c < 3; c++) {
        Fd t;
        fd_init(&t);
        int64_t H = cfg[c][0], Hkv = cfg[c][1], T = cfg[c][2];
        IrNode *q = param(&t, 4, 2, H, T, 4), *k = param(&t, 4, 2, Hkv, T, 4), *v = param(&t, 4, 2, Hkv, T, 4);
        worst = fmax(worst, fd_check(&t, ir_attention(&t.b, q, k, v, 0.7, cfg[c][3] != 0)));
    }
    return worst;
}

static double fd_linear_cross_entropy(void)
{
    static const double tg[4] = {1, 4, 0, 1};
    Fd t;
    fd_init(&t);
    IrNode *x = param(&t, 2, 4, 3, 0, 0), *w = param(&t, 2, 5, 3, 0, 0);
    return fd_check(&t, ir_linear_cross_entropy(&t.b, x, w, data(&t, 1, 4, 0, tg)));
}

typedef struct {
    IrOpKind op;
    double (*run)(void);
} FdCase;

static const FdCase fd_cases[] = {
    {IR_OP_EMBEDDING, fd_embedding}, {IR_OP_MATMUL, fd_matmul},       {IR_OP_ADD, fd_add},
    {IR_OP_SUB, fd_sub},             {IR_OP_MUL, fd_mul},             {IR_OP_SCALE, fd_scale},
    {IR_OP_SILU, fd_silu},           {IR_OP_GELU, fd_gelu},           {IR_OP_RELU, fd_relu},
    {IR_OP_RMSNORM, fd_rmsnorm},     {IR_OP_LAYERNORM, fd_layernorm}, {IR_OP_ROPE, fd_rope},
    {IR_OP_SOFTMAX, fd_softmax},     {IR_OP_REPEAT_KV, fd_repeat_kv}, {IR_OP_RESHAPE, fd_reshape},
    {IR_OP_TRANSPOSE, fd_transpose}, {IR_OP_SLICE, fd_slice},         {IR_OP_CONCAT, fd_concat},
    {IR_OP_SUM, fd_sum},             {IR_OP_DROPOUT, fd_dropout},     {IR_OP_CROSS_ENTROPY, fd_cross_entropy},
    {IR_OP_ATTENTION, fd_attention}, {IR_OP_LINEAR_CROSS_ENTROPY, fd_linear_cross_entropy},
};
enum { N_FD_CASES = sizeof fd_cases / sizeof fd_cases[0] };

static const double FD_TOL = 1e-6;

START_TEST(autodiff_matches_finite_differences)
{
    const FdCase *c = &fd_cases[_i];
    double err = c->run();
    printf("autodiff fd: %-14s max rel err %.2e\n", ir_op_info[c->op].name, err);
    fflush(stdout);
    ck_assert_msg(err < FD_TOL, "%s: relative error %.3e >= %.0e", ir_op_info[c->op].name, err, FD_TOL);
}
END_TEST

START_TEST(autodiff_every_diff_op_has_rule_and_fd_case)
{
    for (int op = 0; op < IR_OP_COUNT; op++) {
        if (!(ir_op_info[op].flags & OPF_DIFF))
            continue;
        ck_assert_msg(ir_autodiff_has_rule((IrOpKind)op), "OPF_DIFF op '%s' has no gradient rule", ir_op_info[op].name);
        bool covered = false;
        for (int k = 0; k < N_FD_CASES; k++)
            covered = covered || fd_cases[k].op == (IrOpKind)op;
        ck_assert_msg(covered, "OPF_DIFF op '%s' has no finite-difference case", ir_op_info[op].name);
    }
    ck_assert(!ir_autodiff_has_rule(IR_OP_ADAMW));
    ck_assert(!ir_autodiff_has_rule(IR_OP_SILU_GRAD));
}
END_TEST

/* A small decoder-like graph: values with several users (accumulated gradients), a
 * shared 2-D weight under batched matmuls, causal attention, a residual, the CE loss. */
START_TEST(autodiff_composite_graph_matches_finite_differences)
{
    static const double idx[6] = {0, 3, 5, 2, 2, 1}, tg[6] = {1, 0, 4, 3, 2, 2};
    Fd t;
    fd_init(&t);
    IrNode *tab = param(&t, 2, 6, 4, 0, 0), *w = param(&t, 1, 4, 0, 0, 0);
    IrNode *wq = param(&t, 2, 4, 4, 0, 0), *wout = param(&t, 2, 4, 5, 0, 0);
    IrNode *x = ir_embedding(&t.b, tab, data(&t, 2, 2, 3, idx));         /* [B=2,T=3,C=4] */
    IrNode *h = ir_rmsnorm(&t.b, x, w, 1e-5);
    IrNode *q = ir_matmul(&t.b, h, wq, false, true);                       /* [2,3,4] */
    IrNode *att = ir_softmax(&t.b, ir_matmul(&t.b, q, h, false, true), true); /* [2,3,3] */
    IrNode *o = ir_matmul(&t.b, att, h, false, false);                     /* [2,3,4] */
    IrNode *y = ir_binary(&t.b, IR_OP_ADD, x, ir_unary(&t.b, IR_OP_SILU, o));
    const int64_t d64[2] = {6, 4};
    IrNode *logits = ir_matmul(&t.b, ir_reshape(&t.b, y, 2, d64), wout, false, false); /* [6,5] */
    IrNode *ce = ir_cross_entropy(&t.b, logits, data(&t, 1, 6, 0, tg));
    double err = fd_check(&t, ce);
    printf("autodiff fd: %-14s max rel err %.2e\n", "(composite)", err);
    fflush(stdout);
    ck_assert_double_lt(err, FD_TOL);
}
END_TEST

/* ---- what gets built ------------------------------------------------------------------ */

static bool uses(const IrNode *n, const IrNode *x)
{
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] == x)
            return true;
    return false;
}

START_TEST(autodiff_builds_nothing_for_globals_not_in_wrt)
{
    Fd t;
    fd_init(&t);
    IrNode *w = param(&t, 2, 3, 2, 0, 0); /* in wrt */
    const int64_t d23[2] = {2, 3}, d4[1] = {4}, all2[2] = {0, 1}, all1[1] = {0};
    IrGlobal *xg = new_global(&t, IR_F32, 2, d23), *ug = new_global(&t, IR_F32, 1, d4);
    IrNode *xr = ir_global_read(&t.b, xg), *ur = ir_global_read(&t.b, ug);
    IrNode *y = ir_matmul(&t.b, xr, w, false, false);        /* [2,2]: x is data, not in wrt */
    IrNode *z = ir_unary(&t.b, IR_OP_SILU, ir_scale(&t.b, ur, 2.0)); /* depends on @u only */
    IrNode *loss = ir_binary(&t.b, IR_OP_ADD, ir_sum(&t.b, y, 2, all2), ir_sum(&t.b, z, 1, all1));
    int before = t.f->n_nodes;
    IrNode *g[1];
    ck_assert(ir_autodiff(t.m, t.f, loss, t.wrt, 1, g, &t.d));
    /* seed 1; sum(y) -> zeros + add; matmul -> x^T @ dy. Nothing for @x, @u, z or sum(z). */
    ck_assert_int_eq(t.f->n_nodes - before, 4);
    for (int i = before; i < t.f->n_nodes; i++) {
        const IrNode *n = t.f->nodes[i];
        ck_assert(!uses(n, ur) && !uses(n, z) && n->op != IR_OP_SILU_GRAD);
    }
    ck_assert_int_eq(g[0]->op, IR_OP_MATMUL);
    ck_assert(uses(g[0], xr));

    /* with no wrt at all, nothing is built */
    before = t.f->n_nodes;
    ck_assert(ir_autodiff(t.m, t.f, loss, NULL, 0, g, &t.d));
    ck_assert_int_eq(t.f->n_nodes, before);
    arena_fini(&t.a);
}
END_TEST

START_TEST(autodiff_unused_wrt_gets_zero_and_locations_follow)
{
    Fd t;
    fd_init(&t);
    SrcLoc l_w = {"m.relora", 2, 1, 1}, l_mm = {"m.relora", 7, 3, 6}, l_sum = {"m.relora", 9, 1, 3};
    t.b.loc = l_w;
    IrNode *w = param(&t, 2, 3, 2, 0, 0), *unused = param(&t, 1, 5, 0, 0, 0);
    (void)unused;
    const int64_t d23[2] = {2, 3}, all2[2] = {0, 1};
    IrNode *xr = ir_global_read(&t.b, new_global(&t, IR_F32, 2, d23));
    t.b.loc = l_mm;
    IrNode *y = ir_matmul(&t.b, xr, w, false, false);
    t.b.loc = l_sum;
    IrNode *loss = ir_sum(&t.b, y, 2, all2);
    IrNode *g[2];
    ck_assert(ir_autodiff(t.m, t.f, loss, t.wrt, 2, g, &t.d));
    ck_assert_int_eq(g[1]->op, IR_OP_CONST);
    ck_assert_int_eq(g[1]->type.rank, 1);
    ck_assert_int_eq(g[1]->type.dim[0], 5);
    ck_assert_int_eq(g[0]->loc.line, 7); /* the weight gradient comes from the matmul */
    IrNode *bcast = g[0]->in[1];         /* dy: the broadcast-back of the sum */
    ck_assert_int_eq(bcast->loc.line, 9);
    IrInterp *it = ir_interp_create(t.m, 1);
    ir_interp_run(it, t.f);
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq(ir_interp_value(it, g[1])[i], 0.0);
    ir_interp_destroy(it);
    arena_fini(&t.a);
}
END_TEST

START_TEST(autodiff_reports_op_without_rule_on_path)
{
    Fd t;
    fd_init(&t);
    IrNode *w = param(&t, 1, 3, 0, 0, 0);
    IrNode *norm = ir_build(&t.b, IR_OP_GLOBAL_NORM, &w, 1, NULL, 0, NULL);
    IrNode *g[1];
    ck_assert(!ir_autodiff(t.m, t.f, norm, t.wrt, 1, g, &t.d));
    ck_assert_int_eq(t.d.n_errors, 1);
    ck_assert_ptr_nonnull(strstr(t.d.list[0].msg, "global_norm"));
    arena_fini(&t.a);
}
END_TEST

Suite *autodiff_suite(void)
{
    Suite *s = suite_create("autodiff");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, autodiff_every_diff_op_has_rule_and_fd_case);
    tcase_add_loop_test(tc, autodiff_matches_finite_differences, 0, N_FD_CASES);
    tcase_add_test(tc, autodiff_composite_graph_matches_finite_differences);
    tcase_add_test(tc, autodiff_builds_nothing_for_globals_not_in_wrt);
    tcase_add_test(tc, autodiff_unused_wrt_gets_zero_and_locations_follow);
    tcase_add_test(tc, autodiff_reports_op_without_rule_on_path);
    suite_add_tcase(s, tc);
    return s;
}
