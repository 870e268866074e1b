/* Arena: zeroed aligned memory, growth, strings, and the failing-allocation hook. */
#include <check.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

START_TEST(arena_returns_zeroed_aligned_memory)
{
    Arena a;
    arena_init(&a);
    for (int i = 1; i < 2000; i += 37) {
        unsigned char *p = arena_alloc(&a, (size_t)i);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        for (int j = 0; j < i; j++)
            ck_assert_uint_eq(p[j], 0);
        memset(p, 0xab, (size_t)i);
    }
    arena_fini(&a);
}
END_TEST

START_TEST(arena_serves_allocations_larger_than_a_chunk)
{
    Arena a;
    arena_init(&a);
    char *big = arena_alloc(&a, 1 << 20);
    big[(1 << 20) - 1] = 1;
    char *small = arena_alloc(&a, 8);
    ck_assert_ptr_nonnull(small);
    arena_fini(&a);
}
END_TEST

START_TEST(arena_formats_and_copies_strings)
{
    Arena a;
    arena_init(&a);
    ck_assert_str_eq(arena_sprintf(&a, "%s.%d", "layers", 3), "layers.3");
    ck_assert_str_eq(arena_strndup(&a, "abcdef", 3), "abc");
    int *v = arena_grow(&a, NULL, 0, 4, sizeof(int));
    v[3] = 7;
    int *w = arena_grow(&a, v, 4, 8, sizeof(int));
    ck_assert_int_eq(w[3], 7);
    arena_fini(&a);
}
END_TEST

typedef struct {
    int calls, fail_at;
} FailCtx;

static void *failing_alloc(void *ctx, size_t size)
{
    FailCtx *f = ctx;
    if (++f->calls == f->fail_at)
        return NULL;
    return malloc(size);
}

START_TEST(arena_longjmps_when_the_hook_fails)
{
    Arena a;
    arena_init(&a);
    FailCtx f = {0, 3};
    a.alloc = failing_alloc;
    a.alloc_ctx = &f;
    jmp_buf jb;
    a.oom_jmp = &jb;
    volatile int made = 0;
    if (setjmp(jb) == 0) {
        for (;;) {
            arena_alloc(&a, 100000); /* each needs a new chunk */
            made++;
        }
    }
    ck_assert_int_eq(made, 2);
    arena_fini(&a);
}
END_TEST

Suite *arena_suite(void)
{
    Suite *s = suite_create("arena");
    TCase *tc = tcase_create("arena");
    tcase_add_test(tc, arena_returns_zeroed_aligned_memory);
    tcase_add_test(tc, arena_serves_allocations_larger_than_a_chunk);
    tcase_add_test(tc, arena_formats_and_copies_strings);
    tcase_add_test(tc, arena_longjmps_when_the_hook_fails);
    suite_add_tcase(s, tc);
    return s;
}
