/* Lexer tests: tokens are observed through the AST and diagnostics that
 * fe_parse_buffer produces (the flex scanner itself is internal to the frontend). */
#include <check.h>
#include <string.h>

#include "fe.h"

typedef struct {
    Arena arena;
    Diags diags;
    FeCtx ctx;
} Fx;

static bool parse(Fx *f, const char *text, size_t len)
{
    arena_init(&f->arena);
    diag_init(&f->diags, &f->arena);
    fe_ctx_init(&f->ctx, &f->arena, &f->diags);
    return fe_parse_buffer(&f->ctx, "t.relora", text, len);
}

static bool has_msg(const Diags *d, const char *needle)
{
    for (int i = 0; i < d->n; i++)
        if (strstr(d->list[i].msg, needle))
            return true;
    return false;
}

/* The value expression of the first statement of the first item. */
static const AstExpr *first_value(const Fx *f, int stmt)
{
    return f->ctx.ast->items[0]->body[stmt]->value;
}

START_TEST(lexer_reads_number_suffixes)
{
    Fx f;
    ck_assert(parse(&f, "train { a = 2k; b = 3M; c = 10%; d = 1e-3; e = 0.5 }", 52));
    ck_assert(first_value(&f, 0)->is_int && first_value(&f, 0)->ival == 2000);
    ck_assert_int_eq(first_value(&f, 1)->ival, 3000000);
    ck_assert_int_eq(first_value(&f, 2)->suffix, '%');
    ck_assert(!first_value(&f, 3)->is_int);
    ck_assert_double_eq_tol(first_value(&f, 3)->fval, 1e-3, 1e-12);
    ck_assert_double_eq_tol(first_value(&f, 4)->fval, 0.5, 1e-12);
    arena_fini(&f.arena);
}
END_TEST

START_TEST(lexer_tracks_lines_and_columns)
{
    Fx f;
    const char *t = "# comment\n\ntrain {\n   steps = 7 # trailing\n}\n";
    ck_assert(parse(&f, t, strlen(t)));
    const AstStmt *s = f.ctx.ast->items[0]->body[0];
    ck_assert_int_eq(s->loc.line, 4);
    ck_assert_int_eq(s->loc.col, 4);
    ck_assert_int_eq(s->loc.len, 5);
    ck_assert_int_eq(s->value->loc.col, 12);
    arena_fini(&f.arena);
}
END_TEST

START_TEST(lexer_ignores_newlines_inside_brackets)
{
    Fx f;
    const char *t = "train {\n  schedule = relora(warmup = 1,\n     reset_every = 2)\n  x = [1,\n 2]\n}\n";
    ck_assert(parse(&f, t, strlen(t)));
    ck_assert_int_eq(f.ctx.ast->items[0]->n_body, 2);
    arena_fini(&f.arena);
}
END_TEST

START_TEST(lexer_rejects_unterminated_string)
{
    Fx f;
    const char *t = "train { data = text(\"abc) }\n";
    ck_assert(!parse(&f, t, strlen(t)));
    ck_assert(has_msg(&f.diags, "unterminated string"));
    arena_fini(&f.arena);
}
END_TEST

START_TEST(lexer_unescapes_strings)
{
    Fx f;
    const char *t = "train { d = \"a\\\"b\\\\c\\n\" }";
    ck_assert(parse(&f, t, strlen(t)));
    ck_assert_str_eq(first_value(&f, 0)->text, "a\"b\\c\n");
    arena_fini(&f.arena);
}
END_TEST

START_TEST(lexer_reports_bad_bytes_and_nul)
{
    Fx f;
    const char t[] = "train { a = 1 \x01 }\0 model";
    ck_assert(!parse(&f, t, sizeof t - 1));
    ck_assert(has_msg(&f.diags, "unexpected byte 0x01"));
    ck_assert(has_msg(&f.diags, "unexpected byte 0x00"));
    arena_fini(&f.arena);
}
END_TEST

START_TEST(lexer_rejects_integer_overflow)
{
    Fx f;
    const char *t = "train { a = 9223372036854775808; b = 9300000000000000k }";
    ck_assert(!parse(&f, t, strlen(t)));
    ck_assert_int_eq(f.diags.n_errors, 2);
    ck_assert(has_msg(&f.diags, "out of range"));
    arena_fini(&f.arena);
}
END_TEST

START_TEST(lexer_separates_statements_by_newline_or_semicolon)
{
    Fx f, g;
    const char *a = "train { a = 1; b = 2 }", *b = "train {\n a = 1\n b = 2\n}";
    ck_assert(parse(&f, a, strlen(a)));
    ck_assert(parse(&g, b, strlen(b)));
    ck_assert_int_eq(f.ctx.ast->items[0]->n_body, 2);
    ck_assert_int_eq(g.ctx.ast->items[0]->n_body, 2);
    arena_fini(&f.arena);
    arena_fini(&g.arena);
}
END_TEST

Suite *lexer_suite(void)
{
    Suite *s = suite_create("lexer");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, lexer_reads_number_suffixes);
    tcase_add_test(tc, lexer_tracks_lines_and_columns);
    tcase_add_test(tc, lexer_ignores_newlines_inside_brackets);
    tcase_add_test(tc, lexer_rejects_unterminated_string);
    tcase_add_test(tc, lexer_unescapes_strings);
    tcase_add_test(tc, lexer_reports_bad_bytes_and_nul);
    tcase_add_test(tc, lexer_rejects_integer_overflow);
    tcase_add_test(tc, lexer_separates_statements_by_newline_or_semicolon);
    suite_add_tcase(s, tc);
    return s;
}
