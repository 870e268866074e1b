/* Diagnostics: location format, quoted line with caret span, suggestions. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

static char *print_to_string(const Diags *d, bool strip)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    diag_print(d, f, strip);
    fclose(f);
    return buf;
}

START_TEST(diag_prints_location_quote_and_span)
{
    Arena a;
    arena_init(&a);
    Diags d;
    diag_init(&d, &a);
    const char *src = "model m {\n  dimm = 4\n}\n";
    diag_add_source(&d, "dir/x.relora", src, strlen(src));
    diag_error(&d, (SrcLoc){"dir/x.relora", 2, 3, 4}, "unknown field '%s'", "dimm");
    ck_assert_int_eq(d.n_errors, 1);
    char *out = print_to_string(&d, true);
    ck_assert_str_eq(out, "x.relora:2:3: error: unknown field 'dimm'\n"
                          "    2 |   dimm = 4\n"
                          "      |   ^~~~\n");
    free(out);
    out = print_to_string(&d, false);
    ck_assert_ptr_nonnull(strstr(out, "dir/x.relora:2:3: error"));
    free(out);
    arena_fini(&a);
}
END_TEST

START_TEST(diag_without_location_names_the_program)
{
    Arena a;
    arena_init(&a);
    Diags d;
    diag_init(&d, &a);
    diag_warning(&d, srcloc_none(), "no data");
    char *out = print_to_string(&d, false);
    ck_assert_str_eq(out, "relorac: warning: no data\n");
    ck_assert_int_eq(d.n_warnings, 1);
    ck_assert_int_eq(d.n_errors, 0);
    free(out);
    arena_fini(&a);
}
END_TEST

START_TEST(diag_suggest_finds_close_names_only)
{
    const char *const c[] = {"attention.q", "attention.k", "swiglu.up"};
    ck_assert_str_eq(diag_suggest("atention.q", c, 3), "attention.q");
    ck_assert_ptr_null(diag_suggest("mlp", c, 3));
    ck_assert_ptr_null(diag_suggest("attention.q", c, 3)); /* exact: nothing to suggest */
}
END_TEST

START_TEST(diag_caps_the_number_of_errors)
{
    Arena a;
    arena_init(&a);
    Diags d;
    diag_init(&d, &a);
    d.max_errors = 2;
    for (int i = 0; i < 5; i++)
        diag_error(&d, srcloc_none(), "e%d", i);
    ck_assert_int_eq(d.n, 2);
    ck_assert_int_eq(d.n_errors, 5);
    char *out = print_to_string(&d, false);
    ck_assert_ptr_nonnull(strstr(out, "3 more errors not shown"));
    free(out);
    arena_fini(&a);
}
END_TEST

Suite *diag_suite(void)
{
    Suite *s = suite_create("diag");
    TCase *tc = tcase_create("diag");
    tcase_add_test(tc, diag_prints_location_quote_and_span);
    tcase_add_test(tc, diag_without_location_names_the_program);
    tcase_add_test(tc, diag_suggest_finds_close_names_only);
    tcase_add_test(tc, diag_caps_the_number_of_errors);
    suite_add_tcase(s, tc);
    return s;
}
