/* IR core: op table, attributes, and the shape rules through the builder. */
#include <check.h>
#include <string.h>

#include "ir.h"

typedef struct {
    Arena a;
    Diags d;
    IrModule *m;
    IrFunc *f;
    IrBuilder b;
} Fx;

static void fx_init(Fx *x)
{
    arena_init(&x->a);
    diag_init(&x->d, &x->a);
    x->m = ir_module_new(&x->a, "t");
    x->f = ir_func_new(x->m, "f");
    ir_builder_init(&x->b, x->m, x->f, &x->d);
    x->b.loc = (SrcLoc){"t.relora", 3, 5, 1};
}

static IrNode *tensor(Fx *x, const char *name, IrDType dt, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    int64_t dims[4] = {d0, d1, d2, d3};
    IrGlobal *g = ir_global_new(x->m, name, ir_type_make(dt, rank, dims), IR_CLASS_PARAM, 0, srcloc_none());
    return ir_global_read(&x->b, g);
}

static void assert_dims(IrNode *n, int rank, int64_t d0, int64_t d1, int64_t d2)
{
    int64_t dims[3] = {d0, d1, d2};
    ck_assert_int_eq(n->type.rank, rank);
    for (int i = 0; i < rank && i < 3; i++)
        ck_assert_int_eq(n->type.dim[i], dims[i]);
}

START_TEST(ir_op_table_names_round_trip)
{
    for (int i = 0; i < IR_OP_COUNT; i++)
        ck_assert_int_eq(ir_op_lookup(ir_op_info[i].name), i);
    ck_assert_int_eq(ir_op_lookup("matmull"), IR_OP_COUNT);
    ck_assert_int_eq(ir_op_info[IR_OP_ADAMW].n_globals, 3);
    ck_assert(ir_op_info[IR_OP_ADAMW].flags & OPF_EFFECT);
}
END_TEST

START_TEST(ir_attrs_stay_sorted_and_replace)
{
    Arena a;
    arena_init(&a);
    IrAttrs as = {0};
    ir_attrs_set_int(&a, &as, "trans_b", 1);
    ir_attrs_set_float(&a, &as, "alpha", 0.5);
    ir_attrs_set_str(&a, &as, "kind", "jagged");
    ir_attrs_set_int(&a, &as, "trans_b", 0);
    ck_assert_int_eq(as.n, 3);
    ck_assert_str_eq(as.items[0].key, "alpha");
    ck_assert_str_eq(as.items[1].key, "kind");
    ck_assert_str_eq(as.items[2].key, "trans_b");
    ck_assert_int_eq(ir_attrs_int(&as, "trans_b", 7), 0);
    ck_assert_double_eq(ir_attrs_float(&as, "alpha", 0), 0.5);
    ck_assert_double_eq(ir_attrs_float(&as, "trans_b", 9), 0.0); /* int read as float */
    ck_assert_str_eq(ir_attrs_str(&as, "kind", ""), "jagged");
    ck_assert_int_eq(ir_attrs_int(&as, "missing", 7), 7);
    arena_fini(&a);
}
END_TEST

START_TEST(ir_linear_matmul_infers_out_features)
{
    Fx x;
    fx_init(&x);
    IrNode *in = tensor(&x, "x", IR_F32, 3, 2, 5, 16, 0);
    IrNode *w = tensor(&x, "w", IR_F32, 2, 48, 16, 0, 0);
    IrNode *y = ir_matmul(&x.b, in, w, false, true); /* x @ w^T */
    assert_dims(y, 3, 2, 5, 48);
    ck_assert(!x.b.failed);
    arena_fini(&x.a);
}
END_TEST

START_TEST(ir_shape_mismatch_reports_at_the_node_location)
{
    Fx x;
    fx_init(&x);
    IrNode *p = tensor(&x, "p", IR_F32, 3, 2, 5, 100, 0);
    IrNode *q = tensor(&x, "q", IR_F32, 3, 2, 5, 128, 0);
    ir_binary(&x.b, IR_OP_ADD, p, q);
    ck_assert(x.b.failed);
    ck_assert_int_eq(x.d.n_errors, 1);
    ck_assert_str_eq(x.d.list[0].msg, "in add: shapes f32[2,5,100] and f32[2,5,128] do not match");
    ck_assert_int_eq(x.d.list[0].loc.line, 3);
    arena_fini(&x.a);
}
END_TEST

START_TEST(ir_attention_shapes_compose)
{
    Fx x;
    fx_init(&x);
    /* q: [B=2,T=4,H=2,D=8] -> [B,H,T,D]; scores [B,H,T,T] */
    IrNode *q = tensor(&x, "q", IR_F32, 4, 2, 4, 2, 8);
    IrNode *r = ir_rope(&x.b, q, 10000);
    int64_t perm[4] = {0, 2, 1, 3};
    IrNode *qt = ir_transpose(&x.b, r, 4, perm);
    assert_dims(qt, 4, 2, 2, 4);
    IrNode *s = ir_matmul(&x.b, qt, qt, false, true);
    ck_assert_int_eq(s->type.dim[3], 4);
    IrNode *p = ir_softmax(&x.b, s, true);
    IrNode *kv = tensor(&x, "kv", IR_F32, 4, 2, 1, 4, 8);
    IrNode *rep = ir_repeat_kv(&x.b, kv, 2);
    ck_assert_int_eq(rep->type.dim[1], 2);
    IrNode *o = ir_matmul(&x.b, p, rep, false, false);
    ck_assert_int_eq(o->type.dim[3], 8);
    int64_t flat[3] = {2, 4, 16};
    ir_reshape(&x.b, ir_transpose(&x.b, o, 4, perm), 3, flat);
    ck_assert(!x.b.failed);
    arena_fini(&x.a);
}
END_TEST

START_TEST(ir_reshape_rejects_a_different_element_count)
{
    Fx x;
    fx_init(&x);
    IrNode *a = tensor(&x, "a", IR_F32, 2, 4, 6, 0, 0);
    int64_t bad[2] = {5, 5};
    ir_reshape(&x.b, a, 2, bad);
    ck_assert(x.b.failed);
    ck_assert_str_eq(x.d.list[0].msg, "in reshape: cannot reshape f32[4,6] to f32[5,5]");
    arena_fini(&x.a);
}
END_TEST

START_TEST(ir_training_ops_check_their_globals)
{
    Fx x;
    fx_init(&x);
    int64_t wd[2] = {8, 4}, ad[2] = {2, 4}, bd[2] = {8, 2};
    IrGlobal *w = ir_global_new(x.m, "w", ir_type_make(IR_F32, 2, wd), IR_CLASS_FROZEN, 0, srcloc_none());
    IrGlobal *a = ir_global_new(x.m, "a", ir_type_make(IR_F32, 2, ad), IR_CLASS_PARAM, 0, srcloc_none());
    IrGlobal *bb = ir_global_new(x.m, "b", ir_type_make(IR_F32, 2, bd), IR_CLASS_PARAM, 0, srcloc_none());
    IrGlobal *ok[3] = {w, a, bb}, *swapped[3] = {w, bb, a};
    IrNode *m1 = ir_build(&x.b, IR_OP_LORA_MERGE, NULL, 0, ok, 3, NULL);
    ck_assert_int_eq(m1->type.rank, -1);
    ck_assert(!x.b.failed);
    ir_build(&x.b, IR_OP_LORA_MERGE, NULL, 0, swapped, 3, NULL);
    ck_assert(x.b.failed);
    arena_fini(&x.a);
}
END_TEST

START_TEST(ir_cross_entropy_is_a_scalar)
{
    Fx x;
    fx_init(&x);
    IrNode *l = tensor(&x, "l", IR_F32, 2, 6, 32, 0, 0);
    IrNode *t = tensor(&x, "t", IR_I32, 1, 6, 0, 0, 0);
    IrNode *ce = ir_cross_entropy(&x.b, l, t);
    ck_assert_int_eq(ce->type.rank, 0);
    ck_assert(!x.b.failed);
    ir_cross_entropy(&x.b, l, l);
    ck_assert(x.b.failed);
    arena_fini(&x.a);
}
END_TEST

Suite *ir_suite(void)
{
    Suite *s = suite_create("ir");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, ir_op_table_names_round_trip);
    tcase_add_test(tc, ir_attrs_stay_sorted_and_replace);
    tcase_add_test(tc, ir_linear_matmul_infers_out_features);
    tcase_add_test(tc, ir_shape_mismatch_reports_at_the_node_location);
    tcase_add_test(tc, ir_attention_shapes_compose);
    tcase_add_test(tc, ir_reshape_rejects_a_different_element_count);
    tcase_add_test(tc, ir_training_ops_check_their_globals);
    tcase_add_test(tc, ir_cross_entropy_is_a_scalar);
    suite_add_tcase(s, tc);
    return s;
}
