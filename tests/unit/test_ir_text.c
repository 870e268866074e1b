/* The IR text form: print(parse(t)) == t for hand-written IR covering every op and
 * every attribute kind, the print options, and parse errors with their locations.
 * A mutation loop feeds the parser broken variants of the module: it must not crash. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fe.h"
#include "ir.h"
#include "lower.h"
#include "pm.h"

/* Every op in ops.def appears at least once; shapes are consistent (test_verify
 * checks this module verifies). B=2 T=4 C=8 V=16 H=2 D=4. */
static const char tiny_ir[] =
    "module tiny {\n"
    "  attr batch = 2\n"
    "  attr dims = [2, 4]\n"
    "  attr empty = []\n"
    "  attr lr = 0.001\n"
    "  attr schedule.kind = \"jagged\"\n"
    "  attr seed = -7\n"
    "  global @embedding.weight : f32[16,8] param trainable|decay|export {hf_name = \"model.embed_tokens.weight\"}\n"
    "  global @embedding.weight.m : f32[16,8] optim moment {moment_of = \"embedding.weight\"}\n"
    "  global @embedding.weight.v : f32[16,8] optim moment\n"
    "  global @tokens : i32[2,4] data\n"
    "  global @targets : i32[8] data\n"
    "  global @norm.weight : f32[8] param trainable|export\n"
    "  global @norm.bias : f32[8] param trainable\n"
    "  global @q.weight : f32[8,8] frozen export\n"
    "  global @q.lora_a : f32[2,8] param trainable|adapter {lora_rank = 2}\n"
    "  global @q.lora_b : f32[8,2] param trainable|adapter\n"
    "  global @step : i32[] state\n"
    "  global @lr : f32[] data\n"
    "  global @prune_fraction : f32[] data\n"
    "  global @grad.q : bf16[8,8] grad\n"
    "}\n"
    "\n"
    "func @train {\n"
    "  %0 = global @embedding.weight : f32[16,8]\n"
    "  %1 = global @tokens : i32[2,4]\n"
    "  %2 = embedding %0, %1 : f32[2,4,8]  # embed\n"
    "  %3 = global @norm.weight : f32[8]\n"
    "  %4 = rmsnorm %2, %3 {eps = 1e-05} : f32[2,4,8]  # layers.0.attention_norm\n"
    "  %5 = global @norm.bias : f32[8]\n"
    "  %6 = layernorm %4, %3, %5 {eps = 1e-05} : f32[2,4,8]\n"
    "  %7 = global @q.weight : f32[8,8]\n"
    "  %8 = matmul %6, %7 {trans_a = 0, trans_b = 1} : f32[2,4,8] group(3)  # layers.0.attention.q\n"
    "  %9 = reshape %8 {shape = [2, 4, 2, 4]} : f32[2,4,2,4]\n"
    "  %10 = rope %9 {inverse = 0, theta = 10000.0} : f32[2,4,2,4]\n"
    "  %11 = transpose %10 {perm = [0, 2, 1, 3]} : f32[2,2,4,4]\n"
    "  %12 = repeat_kv %11 {times = 2} : f32[2,4,4,4]\n"
    "  %13 = matmul %12, %12 {trans_a = 0, trans_b = 1} : f32[2,4,4,4]\n"
    "  %14 = softmax %13 {causal = 1} : f32[2,4,4,4]\n"
    "  %15 = scale %14 {alpha = 0.5} : f32[2,4,4,4]\n"
    "  %16 = silu %15 : f32[2,4,4,4]\n"
    "  %17 = gelu %16 : f32[2,4,4,4]\n"
    "  %18 = relu %17 : f32[2,4,4,4]\n"
    "  %19 = slice %18 {axis = 1, end = 2, start = 0} : f32[2,2,4,4]\n"
    "  %20 = concat %19, %19 {axis = 1} : f32[2,4,4,4]\n"
    "  %21 = sum %20 {axes = [1]} : f32[2,4,4]\n"
    "  %22 = add %8, %3 : f32[2,4,8]\n"
    "  %23 = sub %22, %8 : f32[2,4,8]\n"
    "  %24 = mul %23, %22 : f32[2,4,8]\n"
    "  %25 = global @step : i32[]\n"
    "  %26 = dropout %24, %25 {p = 0.1, stream = 3} : f32[2,4,8]\n"
    "  %27 = reshape %26 {shape = [8, 8]} : f32[8,8]\n"
    "  %28 = matmul %27, %0 {trans_a = 0, trans_b = 1} : f32[8,16]\n"
    "  %29 = global @targets : i32[8]\n"
    "  %30 = cross_entropy %28, %29 : f32[]  # loss\n"
    "  %31 = const {value = 1.0} : f32[]\n"
    "  %32 = cross_entropy_grad %31, %28, %29 : f32[8,16]\n"
    "  %33 = softmax_grad %14, %14 : f32[2,4,4,4]\n"
    "  %34 = silu_grad %24, %24 : f32[2,4,8]\n"
    "  %35 = gelu_grad %24, %24 : f32[2,4,8]\n"
    "  %36 = relu_grad %24, %24 : f32[2,4,8]\n"
    "  %37 = rmsnorm_grad_x %4, %2, %3 {eps = 1e-05} : f32[2,4,8]\n"
    "  %38 = rmsnorm_grad_w %4, %2 {eps = 1e-05} : f32[8]\n"
    "  %39 = layernorm_grad_x %6, %4, %3 {eps = 1e-05} : f32[2,4,8]\n"
    "  %40 = layernorm_grad_w %6, %4 {eps = 1e-05} : f32[8]\n"
    "  %41 = embedding_grad %2, %1 {vocab = 16} : f32[16,8]\n"
    "  %42 = reduce_to %22 {shape = [8]} : f32[8]\n"
    "  %43 = pad %19 {axis = 1, shape = [2, 4, 4, 4], start = 2} : f32[2,4,4,4]\n"
    "  %44 = global_norm %41, %42, %38 : f32[]\n"
    "  %45 = clip_scale %44 {max_norm = 1.0} : f32[]\n"
    "  %46 = global @lr : f32[]\n"
    "  %47 = const {value = 1} : i32[]\n"
    "  %48 = add %25, %47 : i32[]\n"
    "  adamw %41, %46, %45, %48, @embedding.weight, @embedding.weight.m, @embedding.weight.v {beta1 = 0.9, "
    "beta2 = 0.999, eps = 1e-08, weight_decay = 0.0}\n"
    "  store %48, @step\n"
    "  ret %30\n"
    "}\n"
    "\n"
    "func @relora_reset {\n"
    "  %0 = global @step : i32[]\n"
    "  lora_merge @q.weight, @q.lora_a, @q.lora_b {scale = 2.0}  # merge q\n"
    "  init_uniform %0, @q.lora_a {bound = 0.35355339059327373, stream = 7}\n"
    "  init_const @q.lora_b {value = 0.0}\n"
    "  %1 = global @prune_fraction : f32[]\n"
    "  prune %0, %1, @embedding.weight.m {mode = \"magnitude\"}\n"
    "  init_normal %0, @grad.q {std = 0.02, stream = 1}\n"
    "}\n";

/* One parse: its arena, diagnostics and module. */
typedef struct Parsed {
    Arena arena;
    Diags diags;
    IrModule *m;
} Parsed;

static Parsed *parse(const char *text)
{
    Parsed *p = calloc(1, sizeof *p);
    arena_init(&p->arena);
    diag_init(&p->diags, &p->arena);
    p->m = ir_parse(&p->arena, &p->diags, "t.ir", text, strlen(text));
    return p;
}

static void parsed_free(Parsed *p)
{
    arena_fini(&p->arena);
    free(p);
}

static char *print_str(const IrModule *m, const IrPrintOpts *o)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ir_print_with(m, o, f);
    fclose(f);
    return buf;
}

/* All diagnostics as "line:col: message\n". */
static char *diag_str(const Diags *d)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    for (int i = 0; i < d->n; i++)
        fprintf(f, "%d:%d: %s\n", d->list[i].loc.line, d->list[i].loc.col, d->list[i].msg);
    fclose(f);
    return buf;
}

static void assert_round_trip(const char *text)
{
    Parsed *p = parse(text);
    char *errs = diag_str(&p->diags);
    ck_assert_msg(p->m != NULL, "parse failed:\n%s", errs);
    char *out = print_str(p->m, NULL);
    ck_assert_str_eq(out, text);
    free(out);
    free(errs);
    parsed_free(p);
}

/* The fused ops and `result` (tiny_ir is at the length ISO C guarantees for a string).
 * B=2 H=4 Hkv=2 T=3 D=4; N=6 C=4 V=5. */
static const char fused_ir[] =
    "module fused {\n"
    "  global @q : f32[2,4,3,4] param trainable\n"
    "  global @kv : f32[2,2,3,4] param trainable\n"
    "  global @x : f32[6,4] param trainable\n"
    "  global @w : f32[5,4] param trainable\n"
    "  global @targets : i32[6] data\n"
    "}\n"
    "\n"
    "func @train {\n"
    "  %0 = global @q : f32[2,4,3,4]\n"
    "  %1 = global @kv : f32[2,2,3,4]\n"
    "  %2 = attention %0, %1, %1 {causal = 1, scale = 0.5} : f32[2,4,3,4]  # layers.0.attention\n"
    "  %3 = result %2 {index = 1} : f32[2,4,3]\n"
    "  %4 = attention_grad %2, %0, %1, %1, %2, %3 {causal = 0, scale = 0.25} : f32[2,4,3,4]\n"
    "  %5 = result %4 {index = 1} : f32[2,2,3,4]\n"
    "  %6 = result %4 {index = 2} : f32[2,2,3,4]\n"
    "  %7 = global @x : f32[6,4]\n"
    "  %8 = global @w : f32[5,4]\n"
    "  %9 = global @targets : i32[6]\n"
    "  %10 = linear_cross_entropy %7, %8, %9 : f32[]  # loss\n"
    "  %11 = const {value = 1.0} : f32[]\n"
    "  %12 = linear_cross_entropy_grad %11, %7, %8, %9 : f32[6,4]\n"
    "  %13 = result %12 {index = 1} : f32[5,4]\n"
    "  ret %10\n"
    "}\n";

/* The first diagnostic of parsing text is exactly "line:col: msg". */
static void assert_parse_error(const char *text, const char *expect)
{
    Parsed *p = parse(text);
    ck_assert_ptr_null(p->m);
    ck_assert_int_ge(p->diags.n, 1);
    char line[512];
    snprintf(line, sizeof line, "%d:%d: %s", p->diags.list[0].loc.line, p->diags.list[0].loc.col,
             p->diags.list[0].msg);
    ck_assert_str_eq(line, expect);
    ck_assert_str_eq(p->diags.list[0].loc.file, "t.ir");
    parsed_free(p);
}

START_TEST(ir_text_round_trips_every_op)
{
    static const char *const texts[] = {tiny_ir, fused_ir};
    bool seen[IR_OP_COUNT] = {0};
    for (int t = 0; t < 2; t++) {
        assert_round_trip(texts[t]);
        Parsed *p = parse(texts[t]);
        for (int fi = 0; fi < p->m->n_funcs; fi++)
            for (int i = 0; i < p->m->funcs[fi]->n_nodes; i++)
                seen[p->m->funcs[fi]->nodes[i]->op] = true;
        ck_assert_msg(ir_verify(p->m, &p->diags), "%s does not verify: %s", t ? "fused_ir" : "tiny_ir",
                      p->diags.list[0].msg);
        parsed_free(p);
    }
    for (int op = 0; op < IR_OP_COUNT; op++)
        ck_assert_msg(seen[op], "op %s is not covered by tiny_ir or fused_ir", ir_op_info[op].name);
}
END_TEST

START_TEST(ir_text_parse_builds_the_graph)
{
    Parsed *p = parse(tiny_ir);
    ck_assert_ptr_nonnull(p->m);
    ck_assert_str_eq(p->m->name, "tiny");
    ck_assert_int_eq(p->m->n_globals, 14);
    ck_assert_int_eq(p->m->n_funcs, 2);
    IrFunc *f = p->m->funcs[0];
    ck_assert_int_eq(f->n_nodes, 51);
    ck_assert_int_eq(f->next_id, 51);
    ck_assert_int_eq(f->nodes[49]->id, 49); /* adamw: the id after its predecessor */
    ck_assert_int_eq(f->nodes[49]->type.rank, -1);
    ck_assert_ptr_eq(f->ret, f->nodes[30]);
    IrNode *mm = f->nodes[8];
    ck_assert_int_eq(mm->op, IR_OP_MATMUL);
    ck_assert_ptr_eq(mm->in[0], f->nodes[6]);
    ck_assert_str_eq(mm->name, "layers.0.attention.q");
    ck_assert_int_eq(mm->group, 3);
    ck_assert_int_eq(mm->loc.line, 33);
    ck_assert_int_eq(mm->loc.col, 8);
    ck_assert_int_eq(ir_attrs_int(&mm->attrs, "trans_b", -1), 1);
    const IrAttr *lr = ir_attrs_get(&p->m->attrs, "lr");
    ck_assert_int_eq(lr->kind, IR_ATTR_FLOAT);
    const IrAttr *batch = ir_attrs_get(&p->m->attrs, "batch");
    ck_assert_int_eq(batch->kind, IR_ATTR_INT);
    IrGlobal *g = ir_global_find(p->m, "embedding.weight");
    ck_assert_uint_eq(g->flags, IR_G_TRAINABLE | IR_G_DECAY | IR_G_EXPORT);
    ck_assert_str_eq(ir_attrs_str(&g->attrs, "hf_name", ""), "model.embed_tokens.weight");
    ck_assert_int_eq(ir_global_find(p->m, "grad.q")->type.dtype, IR_BF16);
    IrNode *merge = p->m->funcs[1]->nodes[1];
    ck_assert_ptr_eq(merge->gl[1], ir_global_find(p->m, "q.lora_a"));
    ck_assert_ptr_null(p->m->funcs[1]->ret);
    parsed_free(p);
}
END_TEST

START_TEST(ir_text_locs_print_only_when_asked)
{
    const char *with_locs = "module m {\n"
                            "  global @x : f32[2] param loc(\"tiny.relora\":3:5)\n"
                            "}\n"
                            "\n"
                            "func @f {\n"
                            "  %0 = global @x : f32[2] loc(\"tiny.relora\":4:9)  # x\n"
                            "  %1 = silu %0 : f32[2] loc(\"a \\\"q\\\".relora\":12:1)\n"
                            "  %2 = relu %1 : f32[2] loc(unknown)\n"
                            "  ret %1\n"
                            "}\n";
    Parsed *p = parse(with_locs);
    ck_assert_ptr_nonnull(p->m);
    IrPrintOpts o = {.locs = true};
    char *out = print_str(p->m, &o);
    ck_assert_str_eq(out, with_locs);
    free(out);
    ck_assert_str_eq(p->m->funcs[0]->nodes[0]->loc.file, "tiny.relora");
    ck_assert_int_eq(p->m->funcs[0]->nodes[0]->loc.line, 4);
    ck_assert_int_eq(p->m->funcs[0]->nodes[0]->loc.col, 9);
    ck_assert_ptr_null(p->m->funcs[0]->nodes[2]->loc.file);
    out = print_str(p->m, NULL);
    ck_assert_str_eq(out, "module m {\n"
                          "  global @x : f32[2] param\n"
                          "}\n"
                          "\n"
                          "func @f {\n"
                          "  %0 = global @x : f32[2]  # x\n"
                          "  %1 = silu %0 : f32[2]\n"
                          "  %2 = relu %1 : f32[2]\n"
                          "  ret %1\n"
                          "}\n");
    free(out);
    parsed_free(p);
}
END_TEST

/* Without loc(...), nodes point into the IR file itself. */
START_TEST(ir_text_nodes_without_loc_point_into_the_ir_file)
{
    Parsed *p = parse("module m {\n}\nfunc @f {\n  %0 = const {value = 1.0} : f32[]\n}\n");
    ck_assert_ptr_nonnull(p->m);
    IrNode *n = p->m->funcs[0]->nodes[0];
    ck_assert_str_eq(n->loc.file, "t.ir");
    ck_assert_int_eq(n->loc.line, 4);
    ck_assert_int_eq(n->loc.col, 8);
    ck_assert_int_eq(n->loc.len, 5);
    IrPrintOpts o = {.locs = true};
    char *out = print_str(p->m, &o);
    ck_assert_ptr_nonnull(strstr(out, "%0 = const {value = 1.0} : f32[] loc(\"t.ir\":4:8)\n"));
    free(out);
    parsed_free(p);
}
END_TEST

START_TEST(ir_text_floats_round_trip_and_stay_floats)
{
    static const double vals[] = {1.0, 0.1, 1e-08, 1e+20, -0.0, 0.30000000000000004, 5e-324, 1.7976931348623157e308,
                                  -2.5, 123456789.0, 1e16, INFINITY, -INFINITY};
    Arena a;
    arena_init(&a);
    IrModule *m = ir_module_new(&a, "f");
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        ir_attrs_set_float(&a, &m->attrs, arena_sprintf(&a, "v%02zu", i), vals[i]);
    ir_attrs_set_float(&a, &m->attrs, "zz_nan", NAN);
    ir_attrs_set_int(&a, &m->attrs, "zz_int", 1);
    ir_attrs_set_int(&a, &m->attrs, "zz_min", INT64_MIN);
    char *text = print_str(m, NULL);
    ck_assert_ptr_nonnull(strstr(text, "attr v00 = 1.0\n"));
    ck_assert_ptr_nonnull(strstr(text, "attr v01 = 0.1\n"));
    ck_assert_ptr_nonnull(strstr(text, "attr v02 = 1e-08\n"));
    ck_assert_ptr_nonnull(strstr(text, "attr v04 = -0.0\n"));
    ck_assert_ptr_nonnull(strstr(text, "attr v09 = 123456789.0\n"));
    ck_assert_ptr_nonnull(strstr(text, "attr v11 = inf\n"));
    ck_assert_ptr_nonnull(strstr(text, "attr v12 = -inf\n"));
    ck_assert_ptr_nonnull(strstr(text, "attr zz_int = 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "attr zz_min = -9223372036854775808\n"));
    ck_assert_ptr_nonnull(strstr(text, "attr zz_nan = nan\n"));
    assert_round_trip(text);
    Parsed *p = parse(text);
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        const IrAttr *at = ir_attrs_get(&p->m->attrs, arena_sprintf(&a, "v%02zu", i));
        ck_assert_int_eq(at->kind, IR_ATTR_FLOAT);
        ck_assert_int_eq(memcmp(&at->f, &vals[i], sizeof at->f), 0); /* bit-exact, -0.0 included */
    }
    ck_assert(isnan(ir_attrs_get(&p->m->attrs, "zz_nan")->f));
    parsed_free(p);
    free(text);
    arena_fini(&a);
}
END_TEST

START_TEST(ir_text_strings_and_odd_names_are_quoted)
{
    Arena a;
    arena_init(&a);
    IrModule *m = ir_module_new(&a, "my model");
    ir_attrs_set_str(&a, &m->attrs, "s", "a\"b\\c\nd\te\x01 \xc3\xa9");
    ir_attrs_set_str(&a, &m->attrs, "odd key", "");
    IrGlobal *g = ir_global_new(m, "w eird/name", ir_type_scalar(IR_F32), IR_CLASS_STATE, 0, srcloc_none());
    IrFunc *f = ir_func_new(m, "9lives");
    IrBuilder b;
    ir_builder_init(&b, m, f, NULL);
    IrNode *x = ir_global_read(&b, g);
    x->name = "layers.0 (q) #1";
    f->ret = x;
    char *text = print_str(m, NULL);
    ck_assert_str_eq(text, "module \"my model\" {\n"
                           "  attr \"odd key\" = \"\"\n"
                           "  attr s = \"a\\\"b\\\\c\\nd\\te\\x01 \xc3\xa9\"\n"
                           "  global @\"w eird/name\" : f32[] state\n"
                           "}\n"
                           "\n"
                           "func @9lives {\n"
                           "  %0 = global @\"w eird/name\" : f32[]  # layers.0 (q) #1\n"
                           "  ret %0\n"
                           "}\n");
    assert_round_trip(text);
    Parsed *p = parse(text);
    ck_assert_str_eq(ir_attrs_str(&p->m->attrs, "s", ""), "a\"b\\c\nd\te\x01 \xc3\xa9");
    ck_assert_str_eq(p->m->funcs[0]->nodes[0]->name, "layers.0 (q) #1");
    parsed_free(p);
    free(text);
    arena_fini(&a);
}
END_TEST

/* A module built through the builder prints, parses back, and prints the same. */
START_TEST(ir_text_builder_module_round_trips)
{
    Arena a;
    arena_init(&a);
    Diags d;
    diag_init(&d, &a);
    IrModule *m = ir_module_new(&a, "built");
    int64_t wd[2] = {4, 3}, xd[2] = {5, 3};
    IrGlobal *w = ir_global_new(m, "w", ir_type_make(IR_F32, 2, wd), IR_CLASS_PARAM, IR_G_TRAINABLE, srcloc_none());
    IrGlobal *xg = ir_global_new(m, "x", ir_type_make(IR_F32, 2, xd), IR_CLASS_DATA, 0, srcloc_none());
    IrFunc *f = ir_func_new(m, "fwd");
    IrBuilder b;
    ir_builder_init(&b, m, f, &d);
    IrNode *x = ir_global_read(&b, xg);
    IrNode *y = ir_matmul(&b, x, ir_global_read(&b, w), false, true);
    IrNode *s = ir_scale(&b, ir_unary(&b, IR_OP_SILU, y), 0.125);
    int64_t axes[2] = {0, 1};
    f->ret = ir_sum(&b, s, 2, axes);
    ck_assert(!b.failed);
    ck_assert(ir_verify(m, &d));
    char *text = print_str(m, NULL);
    ck_assert_str_eq(text, "module built {\n"
                           "  global @w : f32[4,3] param trainable\n"
                           "  global @x : f32[5,3] data\n"
                           "}\n"
                           "\n"
                           "func @fwd {\n"
                           "  %0 = global @x : f32[5,3]\n"
                           "  %1 = global @w : f32[4,3]\n"
                           "  %2 = matmul %0, %1 {trans_a = 0, trans_b = 1} : f32[5,4]\n"
                           "  %3 = silu %2 : f32[5,4]\n"
                           "  %4 = scale %3 {alpha = 0.125} : f32[5,4]\n"
                           "  %5 = sum %4 {axes = [0, 1]} : f32[]\n"
                           "  ret %5\n"
                           "}\n");
    assert_round_trip(text);
    free(text);
    arena_fini(&a);
}
END_TEST

/* The parser is lenient where the printer is canonical: comments, blank lines,
 * operands in any order, several module attributes on one line. */
START_TEST(ir_text_parse_accepts_comments_and_blank_lines)
{
    Parsed *p = parse("# a comment\n\nmodule m {  # trailing\n  attr b = 2, a = 1\n\n"
                      "  global @x : f32[2] param\n}\n# between\nfunc @f {\n\n  # inside\n"
                      "  %0 = global @x : f32[2]\n  store %0, @x\n}");
    ck_assert_msg(p->m != NULL, "%s", diag_str(&p->diags));
    char *out = print_str(p->m, NULL);
    ck_assert_str_eq(out, "module m {\n  attr a = 1\n  attr b = 2\n  global @x : f32[2] param\n}\n\n"
                          "func @f {\n  %0 = global @x : f32[2]\n  store %0, @x\n}\n");
    free(out);
    parsed_free(p);
}
END_TEST

START_TEST(ir_text_forward_references_parse_for_the_verifier)
{
    Parsed *p = parse("module m {\n}\nfunc @f {\n  %1 = silu %0 : f32[2]\n  %0 = const {value = 1.0} : f32[2]\n}\n");
    ck_assert_ptr_nonnull(p->m);
    IrFunc *f = p->m->funcs[0];
    ck_assert_ptr_eq(f->nodes[0]->in[0], f->nodes[1]);
    ck_assert(!ir_verify(p->m, &p->diags));
    ck_assert_str_eq(p->diags.list[0].msg, "func @f: %1 (silu): operand 0 (%0) is defined after its use");
    parsed_free(p);
}
END_TEST

/* ---- parse errors ---------------------------------------------------------------- */

#define HEAD "module m {\n  global @weight : f32[4] param\n}\nfunc @f {\n"

START_TEST(ir_text_rejects_unknown_op_with_suggestion)
{
    assert_parse_error(HEAD "  %0 = global @weight : f32[4]\n  %1 = matmull %0, %0 : f32[4]\n}\n",
                       "6:8: unknown op 'matmull'; did you mean 'matmul'?");
    assert_parse_error(HEAD "  %0 = frobnicate : f32[4]\n}\n", "5:8: unknown op 'frobnicate'");
}
END_TEST

START_TEST(ir_text_rejects_unknown_global_with_suggestion)
{
    assert_parse_error(HEAD "  %0 = global @weights : f32[4]\n}\n", "5:15: unknown global @weights; did you mean @weight?");
}
END_TEST

START_TEST(ir_text_rejects_bad_types)
{
    assert_parse_error(HEAD "  %0 = global @weight : f31[4]\n}\n",
                       "5:25: unknown dtype 'f31'; expected f32, bf16 or i32 (did you mean 'f32'?)");
    assert_parse_error(HEAD "  %0 = global @weight : f32[4,0]\n}\n", "5:31: dimension must be positive (got 0)");
    assert_parse_error(HEAD "  %0 = global @weight : f32[1,1,1,1,1]\n}\n",
                       "5:37: tensor rank exceeds the maximum of 4");
    assert_parse_error(HEAD "  %0 = global @weight : f32[4\n}\n", "5:30: expected ',' or ']' in the shape, got end of line");
    assert_parse_error("module m {\n  global @w : f32 param\n}\n", "2:19: expected '[' after the dtype, got 'param'");
}
END_TEST

START_TEST(ir_text_rejects_missing_operands)
{
    assert_parse_error(HEAD "  %0 = global @weight : f32[4]\n  %1 = add %0, : f32[4]\n}\n",
                       "6:16: expected an operand (%N or @global), got ':'");
    assert_parse_error(HEAD "  %0 = global @weight : f32[4]\n  %1 = add %0 : f32[4]\n}\n",
                       "6:8: add takes 2 value operands (got 1)");
    assert_parse_error(HEAD "  %0 = global : f32[4]\n}\n", "5:8: global takes 1 global operand (got 0)");
    assert_parse_error(HEAD "  %0 = global @weight : f32[4]\n  %1 = silu %7 : f32[4]\n}\n",
                       "6:13: undefined value %7 in func @f");
}
END_TEST

START_TEST(ir_text_rejects_malformed_lines)
{
    assert_parse_error(HEAD "  %0 = global @weight\n}\n", "5:22: expected ':' and the result type, got end of line");
    assert_parse_error(HEAD "  %0 = global @weight : f32[4]\n  %0 = global @weight : f32[4]\n}\n",
                       "6:3: value %0 is defined twice");
    assert_parse_error(HEAD "  %0 = global @weight : f32[4]\n  %1 = store %0, @weight\n}\n",
                       "6:3: store is an effect op and yields no value; drop '%1 ='");
    assert_parse_error(HEAD "  silu %0\n}\n", "5:3: silu yields a value; expected '%N = silu ...'");
    assert_parse_error(HEAD "  %0 = const {value = 1.0, value = 2.0} : f32[]\n}\n", "5:28: duplicate attribute 'value'");
    assert_parse_error(HEAD "  %0 = const {value = \"abc} : f32[]\n}\n", "5:23: unterminated string");
    assert_parse_error(HEAD "  %0 = const {value = 12abc} : f32[]\n}\n", "5:23: malformed number '12abc'");
    assert_parse_error(HEAD "  %0 = const {value = 99999999999999999999} : f32[]\n}\n",
                       "5:23: integer literal '99999999999999999999' is out of range");
    assert_parse_error(HEAD "  %0 = const {value = 1.0} : f32[] extra\n}\n",
                       "5:36: expected end of line, got 'extra'");
    assert_parse_error(HEAD "  %0 = const {value = 1.0} : f32[]\n", "6:1: expected '}' to close the function, got end of file");
    assert_parse_error("func @f {\n}\n", "1:1: expected 'module' at the start of the IR, got 'func'");
    assert_parse_error("module m {\n  global @w : f32[2] parm\n}\n", "2:22: unknown memory class 'parm'; did you mean 'param'?");
    assert_parse_error("module m {\n  global @w : f32[2] param trainabel\n}\n",
                       "2:28: unknown global flag 'trainabel'; did you mean 'trainable'?");
    assert_parse_error("module m {\n  global @w : f32[2] param\n  global @w : f32[2] param\n}\n",
                       "3:10: global @w is declared twice (first on line 2)");
    assert_parse_error("module m {\n}\nfunc @f {\n}\nfunc @f {\n}\n", "5:6: func @f is defined twice");
    assert_parse_error("module m {\n  attr x = 1 ~\n}\n", "2:14: unexpected character '~'");
    assert_parse_error(HEAD "  ret %9\n}\n", "5:7: undefined value %9 in func @f");
}
END_TEST

/* Errors are reported per line, so one parse reports all of them. */
START_TEST(ir_text_reports_every_bad_line)
{
    Parsed *p = parse(HEAD "  %0 = globl @weight : f32[4]\n  %1 = silu %0 : f33[4]\n  %2 = exp %0 : f32[4]\n}\n");
    ck_assert_ptr_null(p->m);
    char *all = diag_str(&p->diags);
    ck_assert_str_eq(all, "5:8: unknown op 'globl'; did you mean 'global'?\n"
                          "6:18: unknown dtype 'f33'; expected f32, bf16 or i32 (did you mean 'f32'?)\n"
                          "7:8: unknown op 'exp'\n");
    free(all);
    parsed_free(p);
}
END_TEST

/* Deterministic mutations of tiny_ir (byte flips, deletions, insertions, truncation):
 * the parser must return or fail cleanly, and whatever it accepts prints and re-parses. */
START_TEST(ir_text_survives_mutated_input)
{
    static const char alphabet[] = "%@{}[](),:=|#\"\\\n -.0123456789eafimx\x00\xff";
    size_t len = strlen(tiny_ir);
    char *buf = malloc(len + 8);
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, tiny_ir, len);
        size_t n = len;
        int edits = 1 + (int)(s % 4);
        for (int e = 0; e < edits && n > 1; e++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t pos = (size_t)(s >> 33) % n;
            char c = alphabet[(s >> 20) % (sizeof alphabet - 1)];
            switch ((s >> 8) % 4) {
            case 0: buf[pos] = c; break;
            case 1: memmove(buf + pos, buf + pos + 1, n - pos - 1), n--; break;
            case 2:
                if (n < len + 4) {
                    memmove(buf + pos + 1, buf + pos, n - pos), buf[pos] = c, n++;
                }
                break;
            case 3: n = pos + 1; break;
            }
        }
        Arena a;
        arena_init(&a);
        Diags d;
        diag_init(&d, &a);
        IrModule *m = ir_parse(&a, &d, "fuzz.ir", buf, n);
        if (m) {
            ir_verify(m, &d);
            char *out = print_str(m, NULL);
            Diags d2;
            diag_init(&d2, &a);
            IrModule *m2 = ir_parse(&a, &d2, "out.ir", out, strlen(out));
            ck_assert_msg(m2 != NULL, "printed text does not parse:\n%s", out);
            char *out2 = print_str(m2, NULL);
            ck_assert_str_eq(out2, out);
            free(out2);
            free(out);
        } else {
            ck_assert_int_gt(d.n_errors, 0);
        }
        FILE *null = fopen("/dev/null", "w");
        diag_print(&d, null, true);
        fclose(null);
        arena_fini(&a);
    }
    free(buf);
}
END_TEST

START_TEST(ir_text_parses_empty_and_null_input)
{
    Arena a;
    arena_init(&a);
    Diags d;
    diag_init(&d, &a);
    ck_assert_ptr_null(ir_parse(&a, &d, NULL, NULL, 0));
    ck_assert_str_eq(d.list[0].msg, "expected 'module' at the start of the IR, got end of file");
    IrModule *m = ir_parse(&a, &d, "e.ir", "module {\n}\n", 11);
    ck_assert_ptr_nonnull(m);
    arena_fini(&a);
}
END_TEST

/* docs/ir.md has a table row for every op in ops.def (the first cell names the op). */
START_TEST(ir_text_docs_list_every_op)
{
    const char *root = getenv("RELORAC_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/ir.md", root ? root : ".");
    FILE *f = fopen(path, "r");
    if (!f)
        return; /* run outside meson: nothing to compare against */
    bool listed[IR_OP_COUNT] = {0};
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "| `", 3) != 0)
            continue;
        char *end = strchr(line + 1, '|');
        if (end)
            *end = '\0';
        for (char *p = strchr(line, '`'); p; p = strchr(p, '`')) {
            char *q = strchr(p + 1, '`');
            if (!q)
                break;
            *q = '\0';
            IrOpKind op = ir_op_lookup(p + 1);
            if (op != IR_OP_COUNT)
                listed[op] = true;
            p = q + 1;
        }
    }
    fclose(f);
    for (int op = 0; op < IR_OP_COUNT; op++)
        ck_assert_msg(listed[op], "docs/ir.md has no table row for op %s", ir_op_info[op].name);
}
END_TEST

/* Real modules: examples lowered and differentiated verify, and their text (with and
 * without locations) parses back, verifies and prints the same. */
START_TEST(ir_text_lowered_examples_round_trip)
{
    static const char *const names[] = {"tiny", "parallel", "gpt2-small"};
    const char *root = getenv("RELORAC_SOURCE_ROOT");
    if (!root)
        return;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/examples/%s.relora", root, names[k]);
        FILE *f = fopen(path, "rb");
        ck_assert_msg(f != NULL, "cannot open %s", path);
        char *src = NULL;
        size_t cap = 0, n = 0;
        FILE *mem = open_memstream(&src, &cap);
        int c;
        while ((c = fgetc(f)) != EOF)
            fputc(c, mem), n++;
        fclose(mem);
        fclose(f);
        Parsed p = {0};
        arena_init(&p.arena);
        diag_init(&p.diags, &p.arena);
        FeCtx ctx;
        fe_ctx_init(&ctx, &p.arena, &p.diags);
        FeOptions opt = {0};
        bool parsed = fe_parse_buffer(&ctx, path, src, n);
        const Spec *spec = parsed ? fe_check(&p.arena, &p.diags, ctx.ast, NULL, 0, &opt) : NULL;
        p.m = spec ? fe_lower(&p.arena, &p.diags, spec) : NULL;
        ck_assert_msg(p.m != NULL, "%s does not lower", names[k]);
        PassCtx pc = {&p.arena, &p.diags, p.m, PROP_LOWERED};
        const char *only[] = {"autodiff"};
        PassOptions po = {only, 1, true, NULL, NULL};
        ck_assert(pass_pipeline_run(&pc, &po));
        ck_assert_msg(ir_verify(p.m, &p.diags), "%s: %s", names[k], p.diags.n ? p.diags.list[0].msg : "");
        for (int locs = 0; locs < 2; locs++) {
            IrPrintOpts o = {.locs = locs};
            char *t1 = print_str(p.m, &o);
            IrModule *m2 = ir_parse(&p.arena, &p.diags, "x.ir", t1, strlen(t1));
            ck_assert_msg(m2 != NULL, "%s: %s", names[k], p.diags.n ? p.diags.list[0].msg : "");
            ck_assert_msg(ir_verify(m2, &p.diags), "%s: %s", names[k], p.diags.n ? p.diags.list[0].msg : "");
            char *t2 = print_str(m2, &o);
            ck_assert_msg(strcmp(t1, t2) == 0, "%s (locs %d) does not round-trip", names[k], locs);
            free(t1);
            free(t2);
        }
        arena_fini(&p.arena);
        free(src);
    }
}
END_TEST

Suite *ir_text_suite(void)
{
    Suite *s = suite_create("ir_text");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, ir_text_round_trips_every_op);
    tcase_add_test(tc, ir_text_parse_builds_the_graph);
    tcase_add_test(tc, ir_text_locs_print_only_when_asked);
    tcase_add_test(tc, ir_text_nodes_without_loc_point_into_the_ir_file);
    tcase_add_test(tc, ir_text_floats_round_trip_and_stay_floats);
    tcase_add_test(tc, ir_text_strings_and_odd_names_are_quoted);
    tcase_add_test(tc, ir_text_builder_module_round_trips);
    tcase_add_test(tc, ir_text_parse_accepts_comments_and_blank_lines);
    tcase_add_test(tc, ir_text_forward_references_parse_for_the_verifier);
    tcase_add_test(tc, ir_text_rejects_unknown_op_with_suggestion);
    tcase_add_test(tc, ir_text_rejects_unknown_global_with_suggestion);
    tcase_add_test(tc, ir_text_rejects_bad_types);
    tcase_add_test(tc, ir_text_rejects_missing_operands);
    tcase_add_test(tc, ir_text_rejects_malformed_lines);
    tcase_add_test(tc, ir_text_reports_every_bad_line);
    tcase_add_test(tc, ir_text_survives_mutated_input);
    tcase_add_test(tc, ir_text_parses_empty_and_null_input);
    tcase_add_test(tc, ir_text_docs_list_every_op);
    tcase_add_test(tc, ir_text_lowered_examples_round_trip);
    suite_add_tcase(s, tc);
    return s;
}
