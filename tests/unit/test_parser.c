/* Parser tests: AST shape, error recovery, and robustness on arbitrary bytes and on
 * allocation failure (the properties a fuzz target relies on). */
#include <check.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe.h"

typedef struct {
    Arena arena;
    Diags diags;
    FeCtx ctx;
} Fx;

static bool parse(Fx *f, const char *text)
{
    arena_init(&f->arena);
    diag_init(&f->diags, &f->arena);
    fe_ctx_init(&f->ctx, &f->arena, &f->diags);
    return fe_parse_buffer(&f->ctx, "t.relora", text, strlen(text));
}

static bool has_msg(const Diags *d, DiagLevel level, const char *needle)
{
    for (int i = 0; i < d->n; i++)
        if (d->list[i].level == level && strstr(d->list[i].msg, needle))
            return true;
    return false;
}

static const char *const tiny =
    "model tiny {\n  vocab = 256; dim = 64; layers = 2; heads = 4; context = 32\n"
    "  block(x) {\n    h = x + attention(rmsnorm(x), rope = 10000)\n"
    "    return h + swiglu(rmsnorm(h), hidden = 4 * dim)\n  }\n}\n"
    "model wide : tiny { dim = 128; block.swiglu.hidden = 300 }\n"
    "adapter lora { rank = 4; targets = [\"attention.*\", \"swiglu.*\"] }\n"
    "train { steps = 100; optimizer = adamw(lr = 1e-3, betas = (0.9, 0.95))\n"
    "        schedule = relora(warmup = 10, warm_start = 10%, reset_every = 20, restart_warmup = 5) }\n"
    "sweep s { model.dim = [64, 128]; adapter.rank = [2, 4] }\n";

START_TEST(parser_builds_items_and_block)
{
    Fx f;
    ck_assert(parse(&f, tiny));
    const AstFile *a = f.ctx.ast;
    ck_assert_int_eq(a->n_items, 5);
    ck_assert_int_eq(a->items[0]->kind, AST_ITEM_MODEL);
    ck_assert_str_eq(a->items[1]->parent, "tiny");
    ck_assert_int_eq(a->items[4]->kind, AST_ITEM_SWEEP);
    const AstStmt *def = a->items[0]->body[5];
    ck_assert_int_eq(def->kind, AST_STMT_DEF);
    ck_assert_str_eq(def->name, "block");
    ck_assert_int_eq(def->n_params, 1);
    ck_assert_int_eq(def->n_body, 2);
    ck_assert_int_eq(def->body[1]->kind, AST_STMT_RETURN);
    const AstExpr *ret = def->body[1]->value;
    ck_assert_int_eq(ret->kind, AST_BINARY);
    ck_assert_int_eq(ret->op, '+');
    ck_assert_int_eq(ret->rhs->kind, AST_CALL);
    ck_assert_str_eq(ret->rhs->args[1].name, "hidden");
    ck_assert_int_eq(a->items[1]->body[1]->path.n, 3);
    ck_assert_int_eq(a->items[4]->body[0]->path.n, 2);
    ck_assert_str_eq(a->items[4]->body[0]->path.parts[0], "model");
    arena_fini(&f.arena);
}
END_TEST

START_TEST(parser_binds_operators_by_precedence)
{
    Fx f;
    ck_assert(parse(&f, "train { a = 1 + 2 * 3 - -4 }"));
    const AstExpr *e = f.ctx.ast->items[0]->body[0]->value;
    ck_assert_int_eq(e->op, '-');
    ck_assert_int_eq(e->lhs->op, '+');
    ck_assert_int_eq(e->lhs->rhs->op, '*');
    ck_assert_int_eq(e->rhs->kind, AST_NEG);
    arena_fini(&f.arena);
}
END_TEST

START_TEST(parser_reports_several_errors_in_one_run)
{
    Fx f;
    ck_assert(!parse(&f, "model m {\n  dim 1\n  a = = 2\n  b = 3 c = 4\n}\ntrain { x = ) }\n"));
    ck_assert_int_ge(f.diags.n_errors, 4);
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "expected '=' or '('"));
    arena_fini(&f.arena);
}
END_TEST

START_TEST(parser_notes_the_unclosed_block)
{
    Fx f;
    ck_assert(!parse(&f, "model m {\n  block(x) {\n    return x\n  }\n"));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "unexpected end of file, expected '}'"));
    ck_assert(has_msg(&f.diags, DIAG_NOTE, "unclosed '{'"));
    arena_fini(&f.arena);
}
END_TEST

START_TEST(parser_explains_missing_colon)
{
    Fx f;
    ck_assert(!parse(&f, "model a { dim = 1 }\nmodel b a { dim = 2 }\n"));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "expected ':' between the model name and its parent"));
    ck_assert_str_eq(f.ctx.ast->items[1]->parent, "a"); /* recovered */
    arena_fini(&f.arena);
}
END_TEST

START_TEST(parser_survives_deep_nesting)
{
    size_t n = 20000;
    char *t = malloc(n + 32);
    strcpy(t, "train { a = ");
    size_t k = strlen(t);
    for (size_t i = 0; i < n; i++)
        t[k++] = i % 2 ? '[' : '(';
    t[k] = '\0';
    Fx f;
    ck_assert(!parse(&f, t));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "nested too deeply"));
    arena_fini(&f.arena);
    free(t);
}
END_TEST

START_TEST(parser_reads_overrides)
{
    Fx f;
    arena_init(&f.arena);
    diag_init(&f.diags, &f.arena);
    fe_ctx_init(&f.ctx, &f.arena, &f.diags);
    const char *defs[] = {"train.steps=100", "train.schedule.reset_every = 5", "model.block.swiglu.hidden=4*dim"};
    AstVec out;
    ck_assert(fe_parse_overrides(&f.ctx, defs, 3, &out));
    ck_assert_int_eq(out.n, 3);
    const AstStmt *s = out.data[1];
    ck_assert_int_eq(s->path.n, 3);
    ck_assert_str_eq(s->loc.file, "<command line>");
    ck_assert_int_eq(s->loc.line, 2);
    arena_fini(&f.arena);
}
END_TEST

/* xorshift: deterministic bytes for the robustness tests */
static unsigned next_rand(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Random bytes and random mutations of a valid spec: never a crash, and either a
 * Spec or at least one error. */
START_TEST(parser_and_checker_survive_garbage)
{
    unsigned seed = 12345;
    size_t base_len = strlen(tiny);
    char *buf = malloc(base_len + 64);
    for (int iter = 0; iter < 3000; iter++) {
        size_t len;
        if (iter % 3 == 0) {
            len = next_rand(&seed) % 64;
            for (size_t i = 0; i < len; i++)
                buf[i] = (char)(next_rand(&seed) % 128);
        } else {
            memcpy(buf, tiny, base_len);
            len = base_len;
            int muts = 1 + (int)(next_rand(&seed) % 4);
            for (int m = 0; m < muts; m++) {
                size_t at = next_rand(&seed) % len;
                static const char pool[] = "{}()[];\n=,.:+-*/#\"%kM0123456789xhdimrope";
                unsigned r = next_rand(&seed) % 3;
                if (r == 0)
                    buf[at] = pool[next_rand(&seed) % (sizeof pool - 1)];
                else if (r == 1 && len > 1)
                    memmove(buf + at, buf + at + 1, --len - at);
                else
                    buf[at] = (char)(next_rand(&seed) % 256);
            }
        }
        Arena a;
        arena_init(&a);
        Diags d;
        diag_init(&d, &a);
        const Spec *s = fe_load_spec_buffer(&a, &d, "fuzz.relora", buf, len, NULL);
        ck_assert(s != NULL || d.n_errors > 0);
        FILE *null = fopen("/dev/null", "w");
        diag_print(&d, null, false);
        fclose(null);
        arena_fini(&a);
    }
    free(buf);
}
END_TEST

typedef struct {
    int left;
} FailCtx;

static void *failing_alloc(void *ctx, size_t size)
{
    FailCtx *f = ctx;
    if (f->left-- <= 0)
        return NULL;
    return malloc(size);
}

/* Failing the N-th arena allocation longjmps out of any phase; arena_fini then frees
 * everything (flex and bison allocate from the arena or their fixed stacks). */
static void load_failing_at(int n)
{
    Arena a;
    arena_init(&a);
    FailCtx fc = {n};
    a.alloc = failing_alloc;
    a.alloc_ctx = &fc;
    jmp_buf jb;
    a.oom_jmp = &jb;
    if (!setjmp(jb)) {
        Diags d;
        diag_init(&d, &a);
        fe_load_spec_buffer(&a, &d, "t.relora", tiny, strlen(tiny), NULL);
    }
    arena_fini(&a);
}

START_TEST(parser_survives_allocation_failure)
{
    for (int n = 0; n < 40; n++)
        load_failing_at(n);
}
END_TEST

Suite *parser_suite(void)
{
    Suite *s = suite_create("parser");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, parser_builds_items_and_block);
    tcase_add_test(tc, parser_binds_operators_by_precedence);
    tcase_add_test(tc, parser_reports_several_errors_in_one_run);
    tcase_add_test(tc, parser_notes_the_unclosed_block);
    tcase_add_test(tc, parser_explains_missing_colon);
    tcase_add_test(tc, parser_survives_deep_nesting);
    tcase_add_test(tc, parser_reads_overrides);
    tcase_add_test(tc, parser_and_checker_survive_garbage);
    tcase_add_test(tc, parser_survives_allocation_failure);
    suite_add_tcase(s, tc);
    return s;
}
