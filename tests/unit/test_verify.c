/* ir_verify: one case per kind of broken IR, each expecting exactly one diagnostic
 * with its exact text. Breakage the text form can express is written as text; the
 * rest (dangling pointers, duplicate list entries, bad ids) is done to a parsed module. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

#define MOD                                                                                                    \
    "module m {\n"                                                                                             \
    "  global @w : f32[4,3] param trainable\n"                                                                 \
    "  global @w.m : f32[4,3] optim moment\n"                                                                  \
    "  global @w.v : f32[4,3] optim moment\n"                                                                  \
    "  global @x : f32[2,3] data\n"                                                                            \
    "  global @idx : i32[2] data\n"                                                                            \
    "  global @step : i32[] state\n"                                                                           \
    "  global @base : f32[4,3] frozen\n"                                                                       \
    "  global @a : f32[2,3] param trainable|adapter\n"                                                         \
    "  global @b : f32[4,2] param trainable|adapter\n"                                                         \
    "}\n"

/* A valid body: values %0..%9, then adamw (index 10), lora_merge (11), store (12). */
#define BODY                                                                                                   \
    "  %0 = global @x : f32[2,3]\n"                                                                            \
    "  %1 = global @w : f32[4,3]\n"                                                                            \
    "  %2 = matmul %0, %1 {trans_a = 0, trans_b = 1} : f32[2,4]\n"                                             \
    "  %3 = global @idx : i32[2]\n"                                                                            \
    "  %4 = global @step : i32[]\n"                                                                            \
    "  %5 = const {value = 0.01} : f32[]\n"                                                                      \
    "  %6 = const {value = 1.0} : f32[]\n"                                                                     \
    "  %7 = const {value = 1} : i32[]\n"                                                                       \
    "  %8 = add %4, %7 : i32[]\n"                                                                              \
    "  %9 = const {value = 0.5} : f32[4,3]\n"                                                                  \
    "  adamw %9, %5, %6, %8, @w, @w.m, @w.v {beta1 = 0.9, beta2 = 0.999, eps = 1e-08, weight_decay = 0.01}\n" \
    "  lora_merge @base, @a, @b {scale = 0.5}\n"                                                               \
    "  store %8, @step\n"                                                                                      \
    "  ret %2\n"

typedef struct Fx {
    Arena arena;
    Diags diags;
    IrModule *m;
    IrFunc *f;
} Fx;

/* Parses MOD followed by `func @f { body }`; the parse itself must succeed. */
static Fx *fx_new(const char *body)
{
    Fx *fx = calloc(1, sizeof *fx);
    arena_init(&fx->arena);
    diag_init(&fx->diags, &fx->arena);
    const char *text = arena_sprintf(&fx->arena, "%sfunc @f {\n%s}\n", MOD, body);
    fx->m = ir_parse(&fx->arena, &fx->diags, "v.ir", text, strlen(text));
    ck_assert_msg(fx->m != NULL, "parse failed: %s", fx->diags.n ? fx->diags.list[0].msg : "?");
    fx->f = fx->m->funcs[0];
    return fx;
}

/* Verifies and expects exactly one error, with text msg. */
static void expect_one(Fx *fx, const char *msg)
{
    ck_assert(!ir_verify(fx->m, &fx->diags));
    ck_assert_msg(fx->diags.n == 1, "expected 1 diagnostic, got %d; first: %s", fx->diags.n,
                  fx->diags.n ? fx->diags.list[0].msg : "-");
    ck_assert_str_eq(fx->diags.list[0].msg, msg);
    arena_fini(&fx->arena);
    free(fx);
}

static void expect_text(const char *body, const char *msg)
{
    expect_one(fx_new(body), msg);
}

/* BODY with the line starting with `line_start` replaced by `repl`. */
static char *body_with(const char *line_start, const char *repl)
{
    static char buf[4096];
    const char *b = BODY, *p = strstr(b, line_start);
    ck_assert_ptr_nonnull(p);
    const char *eol = strchr(p, '\n') + 1;
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - b), b, repl, eol);
    return buf;
}

START_TEST(verify_accepts_valid_module)
{
    Fx *fx = fx_new(BODY);
    ck_assert_msg(ir_verify(fx->m, &fx->diags), "%s", fx->diags.n ? fx->diags.list[0].msg : "");
    ck_assert_int_eq(fx->diags.n, 0);
    arena_fini(&fx->arena);
    free(fx);
}
END_TEST

/* The diagnostic sits at the node's location (here: the op name in the IR file). */
START_TEST(verify_reports_at_node_location)
{
    Fx *fx = fx_new(body_with("  %2 =", "  %2 = matmul %0, %1 {trans_a = 0, trans_b = 1} : f32[2,5]\n"));
    ck_assert(!ir_verify(fx->m, &fx->diags));
    ck_assert_str_eq(fx->diags.list[0].loc.file, "v.ir");
    ck_assert_int_eq(fx->diags.list[0].loc.line, 15);
    ck_assert_int_eq(fx->diags.list[0].loc.col, 8);
    ck_assert_int_eq(fx->diags.n, 1);
    ck_assert_str_eq(fx->diags.list[0].msg, "func @f: %2 (matmul): type f32[2,5] does not match the shape rule's f32[2,4]");
    arena_fini(&fx->arena);
    free(fx);
}
END_TEST

/* ---- structure ------------------------------------------------------------------ */

START_TEST(verify_rejects_wrong_value_arity)
{
    Fx *fx = fx_new(BODY);
    fx->f->nodes[2]->n_in = 1;
    expect_one(fx, "func @f: %2 (matmul): has 1 value operand; matmul takes 2");
}
END_TEST

START_TEST(verify_rejects_wrong_global_arity)
{
    Fx *fx = fx_new(BODY);
    fx->f->nodes[10]->n_gl = 2;
    expect_one(fx, "func @f: adamw (node 10): has 2 global operands; adamw takes 3");
}
END_TEST

START_TEST(verify_rejects_use_before_def)
{
    expect_text("  %1 = silu %0 : f32[2,3]\n  %0 = global @x : f32[2,3]\n",
                "func @f: %1 (silu): operand 0 (%0) is defined after its use");
}
END_TEST

START_TEST(verify_rejects_self_use)
{
    Fx *fx = fx_new(BODY);
    fx->f->nodes[8]->in[1] = fx->f->nodes[8];
    expect_one(fx, "func @f: %8 (add): operand 1 is the node itself");
}
END_TEST

START_TEST(verify_rejects_operand_from_other_function)
{
    Fx *fx = fx_new(BODY);
    IrFunc *g = ir_func_new(fx->m, "g");
    IrBuilder b;
    ir_builder_init(&b, fx->m, g, NULL);
    IrNode *x = ir_global_read(&b, fx->m->globals[3]);
    fx->f->nodes[2]->in[0] = x;
    expect_one(fx, "func @f: %2 (matmul): operand 0 (%0) is defined in func @g, not here");
}
END_TEST

START_TEST(verify_rejects_dangling_operand)
{
    Fx *fx = fx_new(BODY);
    IrNode *ghost = ARENA_NEW(&fx->arena, IrNode);
    *ghost = *fx->f->nodes[0];
    ghost->id = 77;
    fx->f->nodes[2]->in[0] = ghost;
    expect_one(fx, "func @f: %2 (matmul): operand 0 (%77) is not a node of any function");
}
END_TEST

START_TEST(verify_rejects_null_operand)
{
    Fx *fx = fx_new(BODY);
    fx->f->nodes[2]->in[1] = NULL;
    expect_one(fx, "func @f: %2 (matmul): operand 1 is NULL");
}
END_TEST

START_TEST(verify_rejects_node_listed_twice)
{
    Fx *fx = fx_new(BODY);
    fx->f->nodes[12] = fx->f->nodes[1]; /* store replaced by a second entry for %1 */
    expect_one(fx, "func @f: %1 (global): listed twice, at indexes 1 and 12 (single definition)");
}
END_TEST

START_TEST(verify_rejects_node_in_two_functions)
{
    Fx *fx = fx_new(BODY);
    IrFunc *g = ir_func_new(fx->m, "g");
    g->nodes = ARENA_ARRAY(&fx->arena, IrNode *, 1);
    g->nodes[0] = fx->f->nodes[0];
    g->n_nodes = g->cap_nodes = 1;
    g->next_id = 1;
    expect_one(fx, "func @g: %0 (global): also listed in func @f");
}
END_TEST

START_TEST(verify_rejects_duplicate_ids)
{
    Fx *fx = fx_new(BODY);
    fx->f->nodes[3]->id = 1;
    expect_one(fx, "func @f: %1 (global): id 1 is not unique (also %1 (global))");
}
END_TEST

START_TEST(verify_rejects_id_beyond_next_id)
{
    Fx *fx = fx_new(BODY);
    fx->f->nodes[9]->id = 40;
    expect_one(fx, "func @f: %40 (const): id 40 is outside 0..next_id-1 (next_id = 13)");
}
END_TEST

START_TEST(verify_rejects_effect_used_as_value)
{
    Fx *fx = fx_new("  %0 = global @x : f32[2,3]\n  store %0, @x\n  %2 = silu %0 : f32[2,3]\n");
    fx->f->nodes[2]->in[0] = fx->f->nodes[1];
    expect_one(fx, "func @f: %2 (silu): operand 0 uses store (node 1), an effect op with no value");
}
END_TEST

START_TEST(verify_rejects_foreign_ret)
{
    Fx *fx = fx_new(BODY);
    IrNode *ghost = ARENA_NEW(&fx->arena, IrNode);
    ghost->id = 5;
    fx->f->ret = ghost;
    expect_one(fx, "func @f: ret %5 is not a node of this function");
}
END_TEST

START_TEST(verify_rejects_effect_ret)
{
    Fx *fx = fx_new(BODY);
    fx->f->ret = fx->f->nodes[12];
    expect_one(fx, "func @f: ret is store (node 12), an effect op with no value");
}
END_TEST

START_TEST(verify_rejects_duplicate_function_names)
{
    Fx *fx = fx_new(BODY);
    ir_func_new(fx->m, "f");
    expect_one(fx, "func @f: name is not unique (also function 0)");
}
END_TEST

START_TEST(verify_rejects_foreign_global_operand)
{
    Fx *fx = fx_new(BODY);
    Arena a;
    arena_init(&a);
    IrModule *other = ir_module_new(&a, "other");
    int64_t d[2] = {2, 3};
    IrGlobal *g = ir_global_new(other, "x", ir_type_make(IR_F32, 2, d), IR_CLASS_DATA, 0, srcloc_none());
    fx->f->nodes[0]->gl[0] = g;
    expect_one(fx, "func @f: %0 (global): global operand 0 (@x) is not a global of this module");
    arena_fini(&a);
}
END_TEST

/* ---- types ----------------------------------------------------------------------- */

START_TEST(verify_rejects_type_differing_from_shape_rule)
{
    expect_text(body_with("  %0 =", "  %0 = global @x : f32[3,2]\n"),
                "func @f: %0 (global): type f32[3,2] does not match the shape rule's f32[2,3]");
}
END_TEST

START_TEST(verify_reports_shape_rule_failures)
{
    expect_text(body_with("  %2 =", "  %2 = matmul %0, %1 {trans_a = 0, trans_b = 0} : f32[2,3]\n"),
                "func @f: %2 (matmul): shape rule: inner dimensions differ: f32[2,3] and f32[4,3]");
}
END_TEST

START_TEST(verify_rejects_bad_result_type)
{
    Fx *fx = fx_new(BODY);
    fx->f->nodes[6]->type.rank = 5;
    expect_one(fx, "func @f: %6 (const): result type has rank 5 (must be 0..4)");
    fx = fx_new(BODY);
    fx->f->nodes[9]->type.dim[1] = 0;
    expect_one(fx, "func @f: %9 (const): result type has dimension 1 = 0 (must be >= 1)");
}
END_TEST

START_TEST(verify_rejects_effect_with_type)
{
    Fx *fx = fx_new(BODY);
    fx->f->nodes[12]->type = ir_type_scalar(IR_F32);
    expect_one(fx, "func @f: store (node 12): effect op has result type f32[] (must have none: rank -1)");
}
END_TEST

START_TEST(verify_rejects_float_indices)
{
    expect_text("  %0 = global @x : f32[2,3]\n  %1 = global @w : f32[4,3]\n  %2 = embedding %1, %0 : f32[2,3,3]\n",
                "func @f: %2 (embedding): operand 1 (%0) must be an i32 tensor (indices) (got f32[2,3])");
}
END_TEST

START_TEST(verify_rejects_integer_math)
{
    expect_text("  %0 = global @idx : i32[2]\n  %1 = silu %0 : i32[2]\n",
                "func @f: %1 (silu): operand 0 (%0) must be an f32 or bf16 tensor (got i32[2])");
}
END_TEST

START_TEST(verify_rejects_float_step)
{
    expect_text("  %0 = const {value = 1.0} : f32[]\n  %1 = const {value = 0.5} : f32[]\n  prune %0, %1, @w.m {mode = \"magnitude\"}\n",
                "func @f: prune (node 2): operand 0 (%0) must be an i32 scalar (got f32[])");
}
END_TEST

START_TEST(verify_rejects_mixed_dtypes)
{
    expect_text("  %0 = const {value = 1} : i32[]\n  %1 = const {value = 1.0} : f32[]\n  %2 = add %0, %1 : i32[]\n",
                "func @f: %2 (add): operand dtypes differ (i32[] and f32[])");
}
END_TEST

START_TEST(verify_rejects_store_type_mismatch)
{
    expect_text(body_with("  store", "  store %0, @w\n"),
                "func @f: store (node 12): stores %0 of type f32[2,3] into @w of type f32[4,3]");
}
END_TEST

/* ---- attributes -------------------------------------------------------------------- */

START_TEST(verify_rejects_missing_matmul_flag)
{
    expect_text(body_with("  %2 =", "  %2 = matmul %0, %1 {trans_a = 0} : f32[2,4]\n"),
                "func @f: %2 (matmul): missing attribute 'trans_b' (0 or 1)");
    expect_text(body_with("  %2 =", "  %2 = matmul %0, %1 {trans_a = 0.0, trans_b = 1} : f32[2,4]\n"),
                "func @f: %2 (matmul): attribute 'trans_a' must be 0 or 1 (got a float)");
    expect_text(body_with("  %2 =", "  %2 = matmul %0, %1 {trans_a = 2, trans_b = 1} : f32[2,4]\n"),
                "func @f: %2 (matmul): attribute 'trans_a' must be 0 or 1 (got 2)");
}
END_TEST

START_TEST(verify_rejects_reshape_changing_numel)
{
    expect_text("  %0 = global @x : f32[2,3]\n  %1 = reshape %0 {shape = [4, 2]} : f32[4,2]\n",
                "func @f: %1 (reshape): reshape of f32[2,3] to f32[4,2] changes the element count (6 to 8)");
    expect_text("  %0 = global @x : f32[2,3]\n  %1 = reshape %0 {shape = 6} : f32[6]\n",
                "func @f: %1 (reshape): attribute 'shape' must be an integer list (got an integer)");
}
END_TEST

START_TEST(verify_rejects_transpose_non_permutation)
{
    expect_text("  %0 = global @x : f32[2,3]\n  %1 = transpose %0 {perm = [0, 0]} : f32[2,2]\n",
                "func @f: %1 (transpose): perm [0, 0] is not a permutation of the 2 axes of f32[2,3]");
}
END_TEST

START_TEST(verify_rejects_attribute_out_of_range)
{
    expect_text("  %0 = global @x : f32[2,3]\n  %1 = global @step : i32[]\n"
                "  %2 = dropout %0, %1 {p = 1.5, stream = 0} : f32[2,3]\n",
                "func @f: %2 (dropout): attribute 'p' must be in [0, 1) (got 1.5)");
    expect_text("  %0 = global @x : f32[2,3]\n  %1 = repeat_kv %0 {times = 2} : f32[2,3]\n",
                "func @f: %1 (repeat_kv): shape rule: need x[B,Hkv,T,D] and times >= 1 (got f32[2,3])");
}
END_TEST


START_TEST(verify_rejects_random_prune_without_stream)
{
    expect_text("  %0 = global @step : i32[]\n  %1 = const {value = 0.999} : f32[]\n"
                "  prune %0, %1, @w.m {mode = \"random\"}\n",
                "func @f: prune (node 2): missing attribute 'stream' (an integer)");
    expect_text("  %0 = global @step : i32[]\n  prune %0, %0, @w.m {mode = \"magnitude\"}\n",
                "func @f: prune (node 1): operand 1 (%0) must be an f32 or bf16 scalar (got i32[])");
}
END_TEST

START_TEST(verify_rejects_i32_const_with_fraction)
{
    expect_text("  %0 = const {value = 0.5} : i32[]\n", "func @f: %0 (const): an i32 const needs an integer value (got 0.5)");
}
END_TEST

START_TEST(verify_rejects_unsorted_attributes)
{
    Fx *fx = fx_new(BODY);
    IrAttrs *as = &fx->f->nodes[2]->attrs;
    IrAttr t = as->items[0];
    as->items[0] = as->items[1];
    as->items[1] = t;
    expect_one(fx, "func @f: %2 (matmul): attributes are not sorted by key with unique keys ('trans_a' after "
                   "'trans_b')");
}
END_TEST

/* ---- optimizer and ReLoRA effects --------------------------------------------------- */

START_TEST(verify_rejects_adamw_on_untrainable)
{
    expect_text(body_with("  adamw", "  adamw %9, %5, %6, %8, @base, @w.m, @w.v {beta1 = 0.9, beta2 = 0.999, eps = 1e-08, "
                                     "weight_decay = 0.01}\n"),
                "func @f: adamw (node 10): @base must be a trainable global (class frozen, not trainable)");
}
END_TEST

START_TEST(verify_rejects_adamw_moment_mismatch)
{
    expect_text(body_with("  adamw", "  adamw %9, %5, %6, %8, @w, @w.m, @x {beta1 = 0.9, beta2 = 0.999, eps = 1e-08, "
                                     "weight_decay = 0.01}\n"),
                "func @f: adamw (node 10): second moment @x must be in class optim (got data)");
    expect_text(body_with("  adamw", "  adamw %9, %5, %6, %8, @w, @w.m, @w.m {beta1 = 0.9, beta2 = 0.999, eps = 1e-08, "
                                     "weight_decay = 0.01}\n"),
                "func @f: adamw (node 10): second moment @w.m is the same global as another operand");
    expect_text(body_with("  adamw", "  adamw %0, %5, %6, %8, @w, @w.m, @w.v {beta1 = 0.9, beta2 = 0.999, eps = 1e-08, "
                                     "weight_decay = 0.01}\n"),
                "func @f: adamw (node 10): gradient %0 has shape f32[2,3] but param @w has f32[4,3]");
    expect_text(body_with("  adamw", "  adamw %9, %5, %6, %8, @w, @w.m, @w.v {beta1 = 1.0, beta2 = 0.999, eps = 1e-08, "
                                     "weight_decay = 0.01}\n"),
                "func @f: adamw (node 10): attribute 'beta1' must be in [0, 1) (got 1)");
}
END_TEST

START_TEST(verify_rejects_adamw_moment_shape)
{
    Fx *fx = fx_new(BODY);
    fx->m->globals[2]->type.dim[0] = 5;
    expect_one(fx, "func @f: adamw (node 10): second moment @w.v has type f32[5,3] but param @w has f32[4,3]");
}
END_TEST

START_TEST(verify_rejects_lora_merge_shapes)
{
    expect_text(body_with("  lora_merge", "  lora_merge @base, @b, @a {scale = 0.5}\n"),
                "func @f: lora_merge (node 11): needs @w[O,I], @a[R,I], @b[O,R] (got @base f32[4,3], @b f32[4,2], "
                "@a f32[2,3])");
    expect_text(body_with("  lora_merge", "  lora_merge @base, @a, @a {scale = 0.5}\n"),
                "func @f: lora_merge (node 11): @w, @a and @b must be three different globals");
    expect_text(body_with("  lora_merge", "  lora_merge @base, @a, @b\n"),
                "func @f: lora_merge (node 11): missing attribute 'scale' (a number)");
}
END_TEST

/* ---- globals ------------------------------------------------------------------------ */

START_TEST(verify_rejects_duplicate_global_names)
{
    Fx *fx = fx_new(BODY);
    ir_global_new(fx->m, "x", ir_type_scalar(IR_F32), IR_CLASS_STATE, 0, srcloc_none());
    expect_one(fx, "global @x: name is not unique (also global 3)");
}
END_TEST

START_TEST(verify_rejects_global_id_mismatch)
{
    Fx *fx = fx_new(BODY);
    fx->m->globals[4]->id = 7;
    /* the node reading it is reported too: its global is no longer at its id */
    ck_assert(!ir_verify(fx->m, &fx->diags));
    ck_assert_str_eq(fx->diags.list[0].msg, "global @idx: id 7 does not match its index 4 in the module");
    ck_assert_str_eq(fx->diags.list[1].msg, "func @f: %3 (global): global operand 0 (@idx) is not a global of this module");
    ck_assert_int_eq(fx->diags.n, 2);
    arena_fini(&fx->arena);
    free(fx);
}
END_TEST

START_TEST(verify_rejects_global_flags_and_class)
{
    Fx *fx = fx_new(BODY);
    fx->m->globals[6]->flags |= IR_G_TRAINABLE; /* ReLoRA's W: frozen, trained in the warm start */
    ck_assert(ir_verify(fx->m, &fx->diags));
    arena_fini(&fx->arena);
    free(fx);
    fx = fx_new(BODY);
    fx->m->globals[3]->flags |= IR_G_TRAINABLE;
    expect_one(fx, "global @x: a trainable global must be in class param or frozen (got data)");
    fx = fx_new(BODY);
    fx->m->globals[6]->flags |= IR_G_ADAPTER;
    expect_one(fx, "global @base: an adapter global must be in class param (got frozen)");
    fx = fx_new(BODY);
    ir_global_new(fx->m, "z.m", ir_type_scalar(IR_F32), IR_CLASS_GRAD, IR_G_MOMENT, srcloc_none());
    expect_one(fx, "global @z.m: a moment global must be in class optim (got grad)");
    fx = fx_new(BODY);
    fx->m->globals[3]->cls = IR_CLASS_ACTIVATION;
    expect_one(fx, "global @x: memory class activation is for planned values, not globals");
    fx = fx_new(BODY);
    fx->m->globals[3]->flags |= 1u << 9;
    expect_one(fx, "global @x: unknown flag bits 0x200");
}
END_TEST

START_TEST(verify_rejects_unprintable_node_name)
{
    Fx *fx = fx_new(BODY);
    fx->f->nodes[6]->name = "two\nlines";
    expect_one(fx, "func @f: %6 (const): name \"two\nlines\" must be non-empty, unpadded and free of control "
                   "characters");
}
END_TEST

Suite *verify_suite(void)
{
    Suite *s = suite_create("verify");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, verify_accepts_valid_module);
    tcase_add_test(tc, verify_reports_at_node_location);
    tcase_add_test(tc, verify_rejects_wrong_value_arity);
    tcase_add_test(tc, verify_rejects_wrong_global_arity);
    tcase_add_test(tc, verify_rejects_use_before_def);
    tcase_add_test(tc, verify_rejects_self_use);
    tcase_add_test(tc, verify_rejects_operand_from_other_function);
    tcase_add_test(tc, verify_rejects_dangling_operand);
    tcase_add_test(tc, verify_rejects_null_operand);
    tcase_add_test(tc, verify_rejects_node_listed_twice);
    tcase_add_test(tc, verify_rejects_node_in_two_functions);
    tcase_add_test(tc, verify_rejects_duplicate_ids);
    tcase_add_test(tc, verify_rejects_id_beyond_next_id);
    tcase_add_test(tc, verify_rejects_effect_used_as_value);
    tcase_add_test(tc, verify_rejects_foreign_ret);
    tcase_add_test(tc, verify_rejects_effect_ret);
    tcase_add_test(tc, verify_rejects_duplicate_function_names);
    tcase_add_test(tc, verify_rejects_foreign_global_operand);
    tcase_add_test(tc, verify_rejects_type_differing_from_shape_rule);
    tcase_add_test(tc, verify_reports_shape_rule_failures);
    tcase_add_test(tc, verify_rejects_bad_result_type);
    tcase_add_test(tc, verify_rejects_effect_with_type);
    tcase_add_test(tc, verify_rejects_float_indices);
    tcase_add_test(tc, verify_rejects_integer_math);
    tcase_add_test(tc, verify_rejects_float_step);
    tcase_add_test(tc, verify_rejects_mixed_dtypes);
    tcase_add_test(tc, verify_rejects_store_type_mismatch);
    tcase_add_test(tc, verify_rejects_missing_matmul_flag);
    tcase_add_test(tc, verify_rejects_reshape_changing_numel);
    tcase_add_test(tc, verify_rejects_transpose_non_permutation);
    tcase_add_test(tc, verify_rejects_attribute_out_of_range);
    tcase_add_test(tc, verify_rejects_random_prune_without_stream);
    tcase_add_test(tc, verify_rejects_i32_const_with_fraction);
    tcase_add_test(tc, verify_rejects_unsorted_attributes);
    tcase_add_test(tc, verify_rejects_adamw_on_untrainable);
    tcase_add_test(tc, verify_rejects_adamw_moment_mismatch);
    tcase_add_test(tc, verify_rejects_adamw_moment_shape);
    tcase_add_test(tc, verify_rejects_lora_merge_shapes);
    tcase_add_test(tc, verify_rejects_duplicate_global_names);
    tcase_add_test(tc, verify_rejects_global_id_mismatch);
    tcase_add_test(tc, verify_rejects_global_flags_and_class);
    tcase_add_test(tc, verify_rejects_unprintable_node_name);
    suite_add_tcase(s, tc);
    return s;
}
