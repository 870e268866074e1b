/* The reference executor: each op's forward against small hand-computed cases, the
 * counter RNG against values computed independently (python3 integer arithmetic), the
 * training ops (adamw, prune, lora_merge, init_*) against closed forms. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "ir.h"

typedef struct {
    Arena a;
    Diags d;
    IrModule *m;
    IrFunc *f;
    IrBuilder b;
    int n_glob;
} Fx;

static void fx_init(Fx *x)
{
    arena_init(&x->a);
    diag_init(&x->d, &x->a);
    x->m = ir_module_new(&x->a, "t");
    x->f = ir_func_new(x->m, "f");
    ir_builder_init(&x->b, x->m, x->f, &x->d);
    x->n_glob = 0;
}

static IrGlobal *glob(Fx *x, IrDType dt, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    int64_t dims[4] = {d0, d1, d2, d3};
    char name[16];
    snprintf(name, sizeof name, "g%d", x->n_glob++);
    return ir_global_new(x->m, name, ir_type_make(dt, rank, dims), IR_CLASS_PARAM, 0, srcloc_none());
}

/* A global holding vals, read in f. */
static IrNode *input(Fx *x, IrInterp *it, IrDType dt, int rank, const int64_t *dims, const double *vals)
{
    IrGlobal *g = glob(x, dt, rank, rank > 0 ? dims[0] : 1, rank > 1 ? dims[1] : 1, rank > 2 ? dims[2] : 1,
                       rank > 3 ? dims[3] : 1);
    memcpy(ir_interp_global(it, g), vals, sizeof(double) * (size_t)ir_type_numel(g->type));
    return ir_global_read(&x->b, g);
}

static IrNode *step_input(Fx *x, IrInterp *it, int64_t step)
{
    double v = (double)step;
    return input(x, it, IR_I32, 0, NULL, &v);
}

static void assert_vals(const double *got, const double *want, int n, double tol)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - want[i]) <= tol, "element %d: got %.17g, want %.17g", i, got[i], want[i]);
}

/* Runs f and checks node n's value. */
static void check_node(Fx *x, IrInterp *it, IrNode *n, const double *want, int count, double tol)
{
    ck_assert_msg(!x->b.failed, "builder failed");
    ck_assert_int_eq(ir_type_numel(n->type), count);
    ir_interp_run(it, x->f);
    assert_vals(ir_interp_value(it, n), want, count, tol);
}

static IrAttrs no_attrs(void)
{
    IrAttrs as = {NULL, 0, 0};
    return as;
}

/* ---- RNG ---------------------------------------------------------------------------- */

START_TEST(rng_matches_independent_values)
{
    /* python3: splitmix64 with & (2**64-1), uniform = (u >> 40) / 2**24 */
    ck_assert_uint_eq(ir_rng_u64(0, 0, 0), 0x238275bc38fcbe91ull);
    ck_assert_uint_eq(ir_rng_u64(42, 1, 7), 0xaa011b79be362789ull);
    ck_assert_uint_eq(ir_rng_u64(0xDEADBEEF, 3, 123456789), 0xce223626b1e47891ull);
    ck_assert_uint_eq(ir_rng_u64(UINT64_MAX, UINT64_MAX, UINT64_MAX), 0x55e2c9ae3b41d287ull);
    ck_assert_double_eq(ir_rng_uniform(0, 0, 0), 0.13870936632156372);
    ck_assert_double_eq(ir_rng_uniform(42, 1, 7), 0.6640793681144714);
    ck_assert_double_eq(ir_rng_uniform(0xDEADBEEF, 3, 123456789), 0.8052095174789429);
    ck_assert_double_eq_tol(ir_rng_normal(0, 0, 0), -0.10317870991318713, 1e-14);
    ck_assert_double_eq_tol(ir_rng_normal(42, 1, 7), -0.5141182276697417, 1e-14);
    ck_assert_double_eq_tol(ir_rng_normal(0xDEADBEEF, 3, 123456789), -0.6690213958183819, 1e-14);
    ck_assert_double_eq_tol(ir_rng_normal(UINT64_MAX, UINT64_MAX, UINT64_MAX), -1.5606260246472663, 1e-14);
}
END_TEST

START_TEST(rng_uniform_in_unit_interval_with_sane_moments)
{
    double s = 0, s2 = 0, ns = 0, ns2 = 0;
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        double u = ir_rng_uniform(7, 2, (uint64_t)i), z = ir_rng_normal(7, 2, (uint64_t)i);
        ck_assert(u >= 0 && u < 1);
        s += u;
        s2 += u * u;
        ns += z;
        ns2 += z * z;
    }
    ck_assert_double_eq_tol(s / n, 0.5, 0.01);
    ck_assert_double_eq_tol(s2 / n - (s / n) * (s / n), 1.0 / 12, 0.005);
    ck_assert_double_eq_tol(ns / n, 0.0, 0.03);
    ck_assert_double_eq_tol(ns2 / n, 1.0, 0.04);
}
END_TEST

/* ---- forward math --------------------------------------------------------------------- */

START_TEST(interp_global_const_and_broadcast_binary)
{
    Fx x;
    fx_init(&x);
    IrInterp *it = ir_interp_create(x.m, 1);
    const int64_t d23[2] = {2, 3}, d3[1] = {3};
    const double av[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {10, 20, 30};
    IrNode *a = input(&x, it, IR_F32, 2, d23, av), *b = input(&x, it, IR_F32, 1, d3, bv);
    IrNode *add = ir_binary(&x.b, IR_OP_ADD, a, b), *sub = ir_binary(&x.b, IR_OP_SUB, a, b);
    IrNode *mul = ir_binary(&x.b, IR_OP_MUL, a, b);
    IrNode *c = ir_const(&x.b, ir_type_make(IR_F32, 2, d23), 2.5);
    IrNode *mc = ir_binary(&x.b, IR_OP_MUL, a, ir_const(&x.b, ir_type_scalar(IR_F32), -1));
    const double want_add[6] = {11, 22, 33, 14, 25, 36}, want_sub[6] = {-9, -18, -27, -6, -15, -24};
    const double want_mul[6] = {10, 40, 90, 40, 100, 180}, want_c[6] = {2.5, 2.5, 2.5, 2.5, 2.5, 2.5};
    const double want_mc[6] = {-1, -2, -3, -4, -5, -6};
    check_node(&x, it, add, want_add, 6, 0);
    assert_vals(ir_interp_value(it, sub), want_sub, 6, 0);
    assert_vals(ir_interp_value(it, mul), want_mul, 6, 0);
    assert_vals(ir_interp_value(it, c), want_c, 6, 0);
    assert_vals(ir_interp_value(it, mc), want_mc, 6, 0);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

START_TEST(interp_unary_activations)
{
    Fx x;
    fx_init(&x);
    IrInterp *it = ir_interp_create(x.m, 1);
    const int64_t d3[1] = {3};
    const double v[3] = {1.0, -0.5, 0.0};
    IrNode *a = input(&x, it, IR_F32, 1, d3, v);
    IrNode *sc = ir_scale(&x.b, a, 3.0), *si = ir_unary(&x.b, IR_OP_SILU, a);
    IrNode *ge = ir_unary(&x.b, IR_OP_GELU, a), *re = ir_unary(&x.b, IR_OP_RELU, a);
    /* python3: x / (1 + exp(-x)); 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    const double w_sc[3] = {3, -1.5, 0}, w_si[3] = {0.7310585786300049, -0.1887703343990727, 0};
    const double w_ge[3] = {0.8411919906082768, -0.15428599017485606, 0}, w_re[3] = {1, 0, 0};
    check_node(&x, it, sc, w_sc, 3, 0);
    assert_vals(ir_interp_value(it, si), w_si, 3, 1e-15);
    assert_vals(ir_interp_value(it, ge), w_ge, 3, 1e-15);
    assert_vals(ir_interp_value(it, re), w_re, 3, 0);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

START_TEST(interp_matmul_transposes_and_shared_weight)
{
    Fx x;
    fx_init(&x);
    IrInterp *it = ir_interp_create(x.m, 1);
    const int64_t d23[2] = {2, 3}, d32[2] = {3, 2}, d223[3] = {2, 2, 3};
    const double av[6] = {1, 2, 3, 4, 5, 6}, at[6] = {1, 4, 2, 5, 3, 6};
    const double bv[6] = {7, 8, 9, 10, 11, 12}, bt[6] = {7, 9, 11, 8, 10, 12};
    const double a3[12] = {1, 2, 3, 4, 5, 6, 1, 0, 0, 0, 1, 0};
    IrNode *a = input(&x, it, IR_F32, 2, d23, av), *aT = input(&x, it, IR_F32, 2, d32, at);
    IrNode *b = input(&x, it, IR_F32, 2, d32, bv), *bT = input(&x, it, IR_F32, 2, d23, bt);
    IrNode *a3n = input(&x, it, IR_F32, 3, d223, a3);
    IrNode *m00 = ir_matmul(&x.b, a, b, false, false), *m10 = ir_matmul(&x.b, aT, b, true, false);
    IrNode *m01 = ir_matmul(&x.b, a, bT, false, true), *m11 = ir_matmul(&x.b, aT, bT, true, true);
    IrNode *mb = ir_matmul(&x.b, a3n, b, false, false);
    const double want[4] = {58, 64, 139, 154}, want_b[8] = {58, 64, 139, 154, 7, 8, 9, 10};
    check_node(&x, it, m00, want, 4, 0);
    assert_vals(ir_interp_value(it, m10), want, 4, 0);
    assert_vals(ir_interp_value(it, m01), want, 4, 0);
    assert_vals(ir_interp_value(it, m11), want, 4, 0);
    assert_vals(ir_interp_value(it, mb), want_b, 8, 0);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

START_TEST(interp_embedding_and_its_gradient)
{
    Fx x;
    fx_init(&x);
    IrInterp *it = ir_interp_create(x.m, 1);
    const int64_t d32[2] = {3, 2}, d3[1] = {3}, d32b[2] = {3, 2};
    const double tab[6] = {1, 2, 3, 4, 5, 6}, idx[3] = {2, 0, 2}, dy[6] = {1, 1, 2, 3, 10, 20};
    IrNode *t = input(&x, it, IR_F32, 2, d32, tab), *i = input(&x, it, IR_I32, 1, d3, idx);
    IrNode *e = ir_embedding(&x.b, t, i);
    IrNode *g = input(&x, it, IR_F32, 2, d32b, dy);
    IrAttrs as = no_attrs();
    ir_attrs_set_int(&x.a, &as, "vocab", 3);
    IrNode *in[2] = {g, i};
    IrNode *eg = ir_build(&x.b, IR_OP_EMBEDDING_GRAD, in, 2, NULL, 0, &as);
    const double want[6] = {5, 6, 1, 2, 5, 6}, want_g[6] = {2, 3, 0, 0, 11, 21};
    check_node(&x, it, e, want, 6, 0);
    assert_vals(ir_interp_value(it, eg), want_g, 6, 0);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

START_TEST(interp_rmsnorm_and_layernorm)
{
    Fx x;
    fx_init(&x);
    IrInterp *it = ir_interp_create(x.m, 1);
    const int64_t d2[1] = {2}, d3[1] = {3}, d13[2] = {1, 3};
    const double xv[2] = {3, 4}, wv[2] = {1, 2}, lx[3] = {1, 2, 3}, lw[3] = {1, 1, 2}, lb[3] = {0, 0, 1};
    IrNode *rx = input(&x, it, IR_F32, 1, d2, xv), *rw = input(&x, it, IR_F32, 1, d2, wv);
    IrNode *r = ir_rmsnorm(&x.b, rx, rw, 0.0);
    IrNode *r1 = ir_rmsnorm(&x.b, rx, rw, 1.0);
    IrNode *ln = ir_layernorm(&x.b, input(&x, it, IR_F32, 2, d13, lx), input(&x, it, IR_F32, 1, d3, lw),
                              input(&x, it, IR_F32, 1, d3, lb), 0.0);
    /* rms = sqrt(12.5); with eps 1: sqrt(13.5); layernorm: mean 2, var 2/3 */
    const double want_r[2] = {3 / sqrt(12.5), 8 / sqrt(12.5)}, want_r1[2] = {3 / sqrt(13.5), 8 / sqrt(13.5)};
    const double want_ln[3] = {-sqrt(1.5), 0, 1 + 2 * sqrt(1.5)};
    check_node(&x, it, r, want_r, 2, 1e-15);
    assert_vals(ir_interp_value(it, r1), want_r1, 2, 1e-15);
    assert_vals(ir_interp_value(it, ln), want_ln, 3, 1e-15);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

START_TEST(interp_rope_rotates_by_position_and_back)
{
    Fx x;
    fx_init(&x);
    IrInterp *it = ir_interp_create(x.m, 1);
    /* x[B=1,T=2,H=1,D=4]; theta 100: pair 0 angle t, pair 1 angle t * 100^(-1/2) = 0.1 t */
    const int64_t d[4] = {1, 2, 1, 4};
    const double v[8] = {1, 2, 3, 4, 1, 2, 3, 4};
    IrNode *a = input(&x, it, IR_F32, 4, d, v);
    IrNode *r = ir_rope(&x.b, a, 100.0);
    IrAttrs as = no_attrs();
    ir_attrs_set_float(&x.a, &as, "theta", 100.0);
    ir_attrs_set_int(&x.a, &as, "inverse", 1);
    IrNode *back = ir_build(&x.b, IR_OP_ROPE, &r, 1, NULL, 0, &as);
    double c1 = cos(1.0), s1 = sin(1.0), c2 = cos(0.1), s2 = sin(0.1);
    const double want[8] = {1, 2, 3, 4, 1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 3 * c1 + 1 * s1, 4 * c2 + 2 * s2};
    check_node(&x, it, r, want, 8, 1e-14);
    assert_vals(ir_interp_value(it, back), v, 8, 1e-14);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

START_TEST(interp_softmax_plain_causal_and_gradient)
{
    Fx x;
    fx_init(&x);
    IrInterp *it = ir_interp_create(x.m, 1);
    const int64_t d22[2] = {2, 2};
    const double v[4] = {1, 2, 3, 4}, dy[4] = {1, 0, 0, 1};
    IrNode *a = input(&x, it, IR_F32, 2, d22, v);
    IrNode *s = ir_softmax(&x.b, a, false), *sc = ir_softmax(&x.b, a, true);
    IrNode *in[2] = {input(&x, it, IR_F32, 2, d22, dy), s};
    IrNode *sg = ir_build(&x.b, IR_OP_SOFTMAX_GRAD, in, 2, NULL, 0, NULL);
    double p = 1 / (1 + exp(1.0)), q = 1 - p; /* softmax(1,2) = (p, q) */
    const double want[4] = {p, q, p, q}, want_c[4] = {1, 0, p, q};
    /* y (dy - sum(dy y)): row 0 dy=(1,0): p(1-p), q(0-p); row 1 dy=(0,1): p(0-q), q(1-q) */
    const double want_g[4] = {p * (1 - p), -q * p, -p * q, q * (1 - q)};
    check_node(&x, it, s, want, 4, 1e-15);
    assert_vals(ir_interp_value(it, sc), want_c, 4, 1e-15);
    assert_vals(ir_interp_value(it, sg), want_g, 4, 1e-15);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

START_TEST(interp_layout_ops)
{
    Fx x;
    fx_init(&x);
    IrInterp *it = ir_interp_create(x.m, 1);
    const int64_t d23[2] = {2, 3}, d1211[4] = {1, 2, 1, 1}, d6[1] = {6}, d32[2] = {3, 2};
    const double v[6] = {1, 2, 3, 4, 5, 6}, kv[2] = {7, 8};
    IrNode *a = input(&x, it, IR_F32, 2, d23, v);
    IrNode *rk = ir_repeat_kv(&x.b, input(&x, it, IR_F32, 4, d1211, kv), 2);
    IrNode *rs = ir_reshape(&x.b, a, 1, d6);
    const int64_t perm[2] = {1, 0}, ax0[1] = {0}, ax1[1] = {1}, ax01[2] = {0, 1};
    IrNode *tr = ir_transpose(&x.b, a, 2, perm);
    IrNode *sl = ir_slice(&x.b, a, 1, 1, 3);
    IrNode *cc0 = ir_concat(&x.b, a, a, 0), *cc1 = ir_concat(&x.b, a, sl, 1);
    IrNode *s0 = ir_sum(&x.b, a, 1, ax0), *s1 = ir_sum(&x.b, a, 1, ax1), *s01 = ir_sum(&x.b, a, 2, ax01);
    IrAttrs pa = no_attrs();
    ir_attrs_set_ints(&x.a, &pa, "shape", d23, 2);
    ir_attrs_set_int(&x.a, &pa, "axis", 1);
    ir_attrs_set_int(&x.a, &pa, "start", 1);
    IrNode *pd = ir_build(&x.b, IR_OP_PAD, &sl, 1, NULL, 0, &pa);
    IrAttrs ra = no_attrs();
    const int64_t d3[1] = {3};
    ir_attrs_set_ints(&x.a, &ra, "shape", d3, 1);
    IrNode *rt = ir_build(&x.b, IR_OP_REDUCE_TO, &a, 1, NULL, 0, &ra);
    (void)d32;
    const double w_rk[4] = {7, 7, 8, 8}, w_tr[6] = {1, 4, 2, 5, 3, 6}, w_sl[4] = {2, 3, 5, 6};
    const double w_cc0[12] = {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6}, w_cc1[10] = {1, 2, 3, 2, 3, 4, 5, 6, 5, 6};
    const double w_s0[3] = {5, 7, 9}, w_s1[2] = {6, 15}, w_s01[1] = {21}, w_pd[6] = {0, 2, 3, 0, 5, 6};
    check_node(&x, it, rk, w_rk, 4, 0);
    assert_vals(ir_interp_value(it, rs), v, 6, 0);
    assert_vals(ir_interp_value(it, tr), w_tr, 6, 0);
    ck_assert_int_eq(tr->type.dim[0], 3);
    assert_vals(ir_interp_value(it, sl), w_sl, 4, 0);
    assert_vals(ir_interp_value(it, cc0), w_cc0, 12, 0);
    assert_vals(ir_interp_value(it, cc1), w_cc1, 10, 0);
    assert_vals(ir_interp_value(it, s0), w_s0, 3, 0);
    assert_vals(ir_interp_value(it, s1), w_s1, 2, 0);
    assert_vals(ir_interp_value(it, s01), w_s01, 1, 0);
    assert_vals(ir_interp_value(it, pd), w_pd, 6, 0);
    assert_vals(ir_interp_value(it, rt), w_s0, 3, 0);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

START_TEST(interp_dropout_keeps_by_counter_rng)
{
    Fx x;
    fx_init(&x);
    const uint64_t seed = 99;
    IrInterp *it = ir_interp_create(x.m, seed);
    enum { N = 1000 };
    static double v[N];
    for (int i = 0; i < N; i++)
        v[i] = i + 1;
    const int64_t d[1] = {N};
    IrNode *a = input(&x, it, IR_F32, 1, d, v);
    IrNode *dr = ir_dropout(&x.b, a, step_input(&x, it, 3), 0.25, 5);
    ck_assert(!x.b.failed);
    ir_interp_run(it, x.f);
    const double *y = ir_interp_value(it, dr);
    int kept = 0;
    for (int i = 0; i < N; i++) {
        bool keep = ir_rng_uniform(seed, 5, (uint64_t)(3 * N + i)) >= 0.25;
        ck_assert_double_eq_tol(y[i], keep ? v[i] / 0.75 : 0.0, 1e-12);
        kept += keep;
    }
    ck_assert_int_gt(kept, 700);
    ck_assert_int_lt(kept, 800);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

START_TEST(interp_cross_entropy_and_gradient)
{
    Fx x;
    fx_init(&x);
    IrInterp *it = ir_interp_create(x.m, 1);
    const int64_t d22[2] = {2, 2}, d2[1] = {2};
    const double lv[4] = {0, 0, 1, 2}, tv[2] = {0, 1}, dl = 2.0;
    IrNode *l = input(&x, it, IR_F32, 2, d22, lv), *t = input(&x, it, IR_I32, 1, d2, tv);
    IrNode *ce = ir_cross_entropy(&x.b, l, t);
    IrNode *in[3] = {input(&x, it, IR_F32, 0, NULL, &dl), l, t};
    IrNode *cg = ir_build(&x.b, IR_OP_CROSS_ENTROPY_GRAD, in, 3, NULL, 0, NULL);
    /* python3: 0.5 * (log 2 + log(1 + e^-1)) */
    const double want = 0.5032044340390841;
    double p = 1 / (1 + exp(1.0));
    const double want_g[4] = {2 * (0.5 - 1) / 2, 2 * 0.5 / 2, 2 * p / 2, 2 * (1 - p - 1) / 2};
    check_node(&x, it, ce, &want, 1, 1e-15);
    ck_assert_int_eq(ce->type.rank, 0);
    assert_vals(ir_interp_value(it, cg), want_g, 4, 1e-15);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

START_TEST(interp_activation_and_norm_gradients)
{
    Fx x;
    fx_init(&x);
    IrInterp *it = ir_interp_create(x.m, 1);
    const int64_t d2[1] = {2}, d12[2] = {1, 2};
    const double dy[2] = {2, 3}, xv[2] = {1, -0.5};
    IrNode *g = input(&x, it, IR_F32, 1, d2, dy), *a = input(&x, it, IR_F32, 1, d2, xv);
    IrNode *in[2] = {g, a};
    IrNode *sg = ir_build(&x.b, IR_OP_SILU_GRAD, in, 2, NULL, 0, NULL);
    IrNode *rg = ir_build(&x.b, IR_OP_RELU_GRAD, in, 2, NULL, 0, NULL);
    IrNode *gg = ir_build(&x.b, IR_OP_GELU_GRAD, in, 2, NULL, 0, NULL);
    /* rmsnorm_grad_w of x = (3,4), dy = (1,1): x / rms = (3,4) / sqrt(12.5) */
    const double rx[2] = {3, 4}, ones[2] = {1, 1};
    IrAttrs as = no_attrs();
    ir_attrs_set_float(&x.a, &as, "eps", 0.0);
    IrNode *in2[2] = {input(&x, it, IR_F32, 2, d12, ones), input(&x, it, IR_F32, 2, d12, rx)};
    IrNode *rw = ir_build(&x.b, IR_OP_RMSNORM_GRAD_W, in2, 2, NULL, 0, &as);
    IrNode *lw = ir_build(&x.b, IR_OP_LAYERNORM_GRAD_W, in2, 2, NULL, 0, &as);
    double s1 = 1 / (1 + exp(-1.0)), s2 = 1 / (1 + exp(0.5));
    const double w_sg[2] = {2 * s1 * (1 + 1 * (1 - s1)), 3 * s2 * (1 - 0.5 * (1 - s2))}, w_rg[2] = {2, 0};
    /* gelu'(x) by a central difference of gelu with h = 1e-5 (truncation ~1e-11) */
    double w_gg[2];
    for (int i = 0; i < 2; i++) {
        double v = xv[i], h = 1e-5;
#define GELU(z) (0.5 * (z) * (1 + tanh(sqrt(2 / M_PI) * ((z) + 0.044715 * (z) * (z) * (z)))))
        w_gg[i] = dy[i] * (GELU(v + h) - GELU(v - h)) / (2 * h);
#undef GELU
    }
    const double w_rw[2] = {3 / sqrt(12.5), 4 / sqrt(12.5)}, w_lw[2] = {-1, 1};
    check_node(&x, it, sg, w_sg, 2, 1e-15);
    assert_vals(ir_interp_value(it, rg), w_rg, 2, 0);
    assert_vals(ir_interp_value(it, gg), w_gg, 2, 1e-9);
    assert_vals(ir_interp_value(it, rw), w_rw, 2, 1e-15);
    assert_vals(ir_interp_value(it, lw), w_lw, 2, 1e-15);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

/* ---- training ops -------------------------------------------------------------------- */

START_TEST(interp_global_norm_and_clip_scale)
{
    Fx x;
    fx_init(&x);
    IrInterp *it = ir_interp_create(x.m, 1);
    const int64_t d1[1] = {1}, d2[1] = {2};
    const double a[1] = {3}, b[2] = {4, 12};
    IrNode *in[2] = {input(&x, it, IR_F32, 1, d1, a), input(&x, it, IR_F32, 1, d2, b)};
    IrNode *gn = ir_build(&x.b, IR_OP_GLOBAL_NORM, in, 2, NULL, 0, NULL);
    IrAttrs as = no_attrs();
    ir_attrs_set_float(&x.a, &as, "max_norm", 1.0);
    IrNode *cs = ir_build(&x.b, IR_OP_CLIP_SCALE, &gn, 1, NULL, 0, &as);
    ir_attrs_set_float(&x.a, &as, "max_norm", 100.0);
    IrNode *cs1 = ir_build(&x.b, IR_OP_CLIP_SCALE, &gn, 1, NULL, 0, &as);
    const double w_gn = 13, w_cs = 1 / (13 + 1e-6), w_cs1 = 1;
    check_node(&x, it, gn, &w_gn, 1, 1e-15);
    assert_vals(ir_interp_value(it, cs), &w_cs, 1, 1e-15);
    assert_vals(ir_interp_value(it, cs1), &w_cs1, 1, 0);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

/* The schedule's closed form, written independently of the interpreter. */
START_TEST(adamw_one_step_matches_hand_formula)
{
    Fx x;
    fx_init(&x);
    IrInterp *it = ir_interp_create(x.m, 1);
    IrGlobal *p = glob(&x, IR_F32, 1, 2, 1, 1, 1), *mm = glob(&x, IR_F32, 1, 2, 1, 1, 1);
    IrGlobal *vv = glob(&x, IR_F32, 1, 2, 1, 1, 1);
    const int64_t d2[1] = {2};
    const double g[2] = {0.5, -2.0}, lr = 0.01, gs = 0.5, tt = 3;
    IrNode *in[4] = {input(&x, it, IR_F32, 1, d2, g), input(&x, it, IR_F32, 0, NULL, &lr),
                     input(&x, it, IR_F32, 0, NULL, &gs), input(&x, it, IR_I32, 0, NULL, &tt)};
    IrGlobal *gl[3] = {p, mm, vv};
    IrAttrs as = no_attrs();
    ir_attrs_set_float(&x.a, &as, "beta1", 0.9);
    ir_attrs_set_float(&x.a, &as, "beta2", 0.999);
    ir_attrs_set_float(&x.a, &as, "eps", 1e-8);
    ir_attrs_set_float(&x.a, &as, "weight_decay", 0.1);
    ir_build(&x.b, IR_OP_ADAMW, in, 4, gl, 3, &as);
    ck_assert(!x.b.failed);
    double *pv = ir_interp_global(it, p), *mv = ir_interp_global(it, mm), *v2 = ir_interp_global(it, vv);
    const double p0[2] = {1.0, -3.0}, m0[2] = {0.1, 0.2}, v0[2] = {0.01, 0.02};
    memcpy(pv, p0, sizeof p0);
    memcpy(mv, m0, sizeof m0);
    memcpy(v2, v0, sizeof v0);
    ir_interp_run(it, x.f);
    for (int i = 0; i < 2; i++) {
        double gi = g[i] * gs, m1 = 0.9 * m0[i] + 0.1 * gi, v1 = 0.999 * v0[i] + 0.001 * gi * gi;
        double mh = m1 / (1 - 0.9 * 0.9 * 0.9), vh = v1 / (1 - 0.999 * 0.999 * 0.999);
        double p1 = p0[i] - lr * 0.1 * p0[i] - lr * mh / (sqrt(vh) + 1e-8);
        ck_assert_double_eq_tol(mv[i], m1, 1e-15);
        ck_assert_double_eq_tol(v2[i], v1, 1e-15);
        ck_assert_double_eq_tol(pv[i], p1, 1e-14);
    }
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

START_TEST(lora_merge_adds_scaled_product)
{
    Fx x;
    fx_init(&x);
    IrInterp *it = ir_interp_create(x.m, 1);
    IrGlobal *w = glob(&x, IR_F32, 2, 2, 3, 1, 1), *a = glob(&x, IR_F32, 2, 1, 3, 1, 1);
    IrGlobal *b = glob(&x, IR_F32, 2, 2, 1, 1, 1);
    IrGlobal *gl[3] = {w, a, b};
    IrAttrs as = no_attrs();
    ir_attrs_set_float(&x.a, &as, "scale", 0.5);
    ir_build(&x.b, IR_OP_LORA_MERGE, NULL, 0, gl, 3, &as);
    ck_assert(!x.b.failed);
    const double w0[6] = {1, 1, 1, 1, 1, 1}, a0[3] = {1, 2, 3}, b0[2] = {2, -4};
    memcpy(ir_interp_global(it, w), w0, sizeof w0);
    memcpy(ir_interp_global(it, a), a0, sizeof a0);
    memcpy(ir_interp_global(it, b), b0, sizeof b0);
    ir_interp_run(it, x.f);
    const double want[6] = {2, 3, 4, -1, -3, -5};
    assert_vals(ir_interp_global(it, w), want, 6, 0);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

START_TEST(init_ops_use_counter_rng_and_store_overwrites)
{
    Fx x;
    fx_init(&x);
    const uint64_t seed = 1234;
    IrInterp *it = ir_interp_create(x.m, seed);
    IrGlobal *gn = glob(&x, IR_F32, 2, 3, 4, 1, 1), *gu = glob(&x, IR_F32, 1, 5, 1, 1, 1);
    IrGlobal *gc = glob(&x, IR_F32, 1, 5, 1, 1, 1);
    IrNode *st = step_input(&x, it, 2);
    IrAttrs an = no_attrs(), au = no_attrs(), ac = no_attrs();
    ir_attrs_set_float(&x.a, &an, "std", 0.02);
    ir_attrs_set_int(&x.a, &an, "stream", 7);
    ir_attrs_set_float(&x.a, &au, "bound", 0.5);
    ir_attrs_set_int(&x.a, &au, "stream", 8);
    ir_attrs_set_float(&x.a, &ac, "value", 1.5);
    IrNode *before = ir_global_read(&x.b, gc);
    ir_build(&x.b, IR_OP_INIT_NORMAL, &st, 1, &gn, 1, &an);
    ir_build(&x.b, IR_OP_INIT_UNIFORM, &st, 1, &gu, 1, &au);
    ir_build(&x.b, IR_OP_INIT_CONST, NULL, 0, &gc, 1, &ac);
    IrNode *after = ir_global_read(&x.b, gc);
    IrNode *dbl = ir_scale(&x.b, after, 2.0);
    ir_build(&x.b, IR_OP_STORE, &dbl, 1, &gc, 1, NULL);
    ck_assert(!x.b.failed);
    ir_interp_run(it, x.f);
    const double *n = ir_interp_global(it, gn), *u = ir_interp_global(it, gu), *c = ir_interp_global(it, gc);
    for (int i = 0; i < 12; i++)
        ck_assert_double_eq(n[i], 0.02 * ir_rng_normal(seed, 7, (uint64_t)(2 * 12 + i)));
    for (int i = 0; i < 5; i++) {
        ck_assert_double_eq(u[i], 0.5 * (2 * ir_rng_uniform(seed, 8, (uint64_t)(2 * 5 + i)) - 1));
        ck_assert_double_eq(c[i], 3.0);
        ck_assert_double_eq(ir_interp_value(it, before)[i], 0.0); /* read before the init */
        ck_assert_double_eq(ir_interp_value(it, after)[i], 1.5);
    }
    /* python3: normal(seed 1234, stream 7, counter 24) = -0.0030085953420828566 */
    ck_assert_double_eq_tol(n[0], 0.02 * -0.0030085953420828566, 1e-17);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

/* Builds `prune @g` with the given mode and fraction at step 4. */
static void prune_run(Fx *x, IrInterp **it, IrGlobal **g, uint64_t seed, int n, const char *mode, double frac,
                      const double *vals)
{
    fx_init(x);
    *it = ir_interp_create(x->m, seed);
    *g = glob(x, IR_F32, 1, n, 1, 1, 1);
    IrNode *in[2] = {step_input(x, *it, 4), input(x, *it, IR_F32, 0, NULL, &frac)};
    IrAttrs as = no_attrs();
    ir_attrs_set_str(&x->a, &as, "mode", mode);
    ir_attrs_set_int(&x->a, &as, "stream", 11);
    ir_build(&x->b, IR_OP_PRUNE, in, 2, g, 1, &as);
    ck_assert(!x->b.failed);
    memcpy(ir_interp_global(*it, *g), vals, sizeof(double) * (size_t)n);
    ir_interp_run(*it, x->f);
}

START_TEST(prune_magnitude_zeroes_exact_count_ties_by_index)
{
    Fx x;
    IrInterp *it;
    IrGlobal *g;
    /* |x| sorted: 0.1 (idx 1), 0.5 (idx 0, 3, 5 tie), 2 (idx 2), 3 (idx 4), 4 (idx 6) */
    const double v[7] = {0.5, -0.1, 2, -0.5, 3, 0.5, -4};
    /* fraction 0.5 of 7 -> ceil(3.5) = 4: idx 1, then the ties 0, 3, 5 in index order -> all four */
    prune_run(&x, &it, &g, 1, 7, "magnitude", 0.5, v);
    const double w4[7] = {0, 0, 2, 0, 3, 0, -4};
    assert_vals(ir_interp_global(it, g), w4, 7, 0);
    ir_interp_destroy(it);
    arena_fini(&x.a);
    /* 0.3 of 7 -> ceil(2.1) = 3: idx 1, then ties 0 and 3 (lower indices), 5 survives */
    prune_run(&x, &it, &g, 1, 7, "magnitude", 0.3, v);
    const double w3[7] = {0, 0, 2, 0, 3, 0.5, -4};
    assert_vals(ir_interp_global(it, g), w3, 7, 0);
    ir_interp_destroy(it);
    arena_fini(&x.a);
    /* 0.07 of 100 is 7.000000000000001 in f64: exactly 7 entries are zeroed */
    double big[100];
    for (int i = 0; i < 100; i++)
        big[i] = 1.0 + i;
    prune_run(&x, &it, &g, 1, 100, "magnitude", 0.07, big);
    const double *r = ir_interp_global(it, g);
    for (int i = 0; i < 100; i++)
        ck_assert_double_eq(r[i], i < 7 ? 0.0 : 1.0 + i);
    ir_interp_destroy(it);
    arena_fini(&x.a);
    /* 0 and 1 */
    prune_run(&x, &it, &g, 1, 7, "magnitude", 1.0, v);
    for (int i = 0; i < 7; i++)
        ck_assert_double_eq(ir_interp_global(it, g)[i], 0.0);
    ir_interp_destroy(it);
    arena_fini(&x.a);
    prune_run(&x, &it, &g, 1, 7, "magnitude", 0.0, v);
    assert_vals(ir_interp_global(it, g), v, 7, 0);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

START_TEST(prune_random_is_reproducible_from_seed)
{
    enum { N = 2000 };
    static double v[N], first[N];
    for (int i = 0; i < N; i++)
        v[i] = 1.0 + i;
    Fx x;
    IrInterp *it;
    IrGlobal *g;
    prune_run(&x, &it, &g, 77, N, "random", 0.9, v);
    memcpy(first, ir_interp_global(it, g), sizeof first);
    ir_interp_destroy(it);
    arena_fini(&x.a);
    int zeros = 0;
    for (int i = 0; i < N; i++) {
        bool drop = ir_rng_uniform(77, 11, (uint64_t)(4 * N + i)) < 0.9;
        ck_assert_double_eq(first[i], drop ? 0.0 : v[i]);
        zeros += drop;
    }
    ck_assert_int_gt(zeros, 1740);
    ck_assert_int_lt(zeros, 1860);
    prune_run(&x, &it, &g, 77, N, "random", 0.9, v);
    assert_vals(ir_interp_global(it, g), first, N, 0);
    ir_interp_destroy(it);
    arena_fini(&x.a);
    prune_run(&x, &it, &g, 78, N, "random", 0.9, v);
    ck_assert(memcmp(ir_interp_global(it, g), first, sizeof first) != 0);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

START_TEST(interp_run_returns_ret_and_reruns_cleanly)
{
    Fx x;
    fx_init(&x);
    IrInterp *it = ir_interp_create(x.m, 1);
    IrGlobal *w = glob(&x, IR_F32, 1, 3, 1, 1, 1);
    const int64_t ax[1] = {0};
    x.f->ret = ir_sum(&x.b, ir_global_read(&x.b, w), 1, ax);
    double *wv = ir_interp_global(it, w);
    wv[0] = 1, wv[1] = 2, wv[2] = 3;
    ck_assert_double_eq(ir_interp_run(it, x.f), 6);
    wv[1] = 20;
    ck_assert_double_eq(ir_interp_run(it, x.f), 24);
    IrFunc *empty = ir_func_new(x.m, "empty");
    ck_assert_double_eq(ir_interp_run(it, empty), 0);
    /* a global added after create gets zeroed storage */
    IrGlobal *late = glob(&x, IR_F32, 1, 4, 1, 1, 1);
    ck_assert_double_eq(ir_interp_global(it, late)[3], 0);
    ir_interp_destroy(it);
    arena_fini(&x.a);
}
END_TEST

Suite *interp_suite(void)
{
    Suite *s = suite_create("interp");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, rng_matches_independent_values);
    tcase_add_test(tc, rng_uniform_in_unit_interval_with_sane_moments);
    tcase_add_test(tc, interp_global_const_and_broadcast_binary);
    tcase_add_test(tc, interp_unary_activations);
    tcase_add_test(tc, interp_matmul_transposes_and_shared_weight);
    tcase_add_test(tc, interp_embedding_and_its_gradient);
    tcase_add_test(tc, interp_rmsnorm_and_layernorm);
    tcase_add_test(tc, interp_rope_rotates_by_position_and_back);
    tcase_add_test(tc, interp_softmax_plain_causal_and_gradient);
    tcase_add_test(tc, interp_layout_ops);
    tcase_add_test(tc, interp_dropout_keeps_by_counter_rng);
    tcase_add_test(tc, interp_cross_entropy_and_gradient);
    tcase_add_test(tc, interp_activation_and_norm_gradients);
    tcase_add_test(tc, interp_global_norm_and_clip_scale);
    tcase_add_test(tc, adamw_one_step_matches_hand_formula);
    tcase_add_test(tc, lora_merge_adds_scaled_product);
    tcase_add_test(tc, init_ops_use_counter_rng_and_store_overwrites);
    tcase_add_test(tc, prune_magnitude_zeroes_exact_count_ties_by_index);
    tcase_add_test(tc, prune_random_is_reproducible_from_seed);
    tcase_add_test(tc, interp_run_returns_ret_and_reruns_cleanly);
    suite_add_tcase(s, tc);
    return s;
}
