/* rt_sbgemm_strided (runtime/gemm_bf16.c): bf16 operands, f32 accumulation. The expected
 * values are double-precision sums over operands rounded to bf16 here, by bit manipulation
 * written for this test (round to nearest even on the upper 16 bits), with the f32 summation
 * bound (k + 4) * 2^-23 * sum |alpha a b| + |beta c|; the same sums over unrounded operands
 * must miss that bound somewhere, so the test sees the rounding. Results must be the same
 * bytes on 1 to 4 threads and from inside a pool job. The kernel is vdpbf16ps on CPUs with
 * AVX512-BF16, else the scalar kernel with the same sums: both are checked the same way. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

static const RtModel empty_model;

/* f32 -> bf16 -> f32, round to nearest even (finite inputs only). */
static float round_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t lsb = (u >> 16) & 1u;
    u = (u + 0x7FFFu + lsb) & 0xFFFF0000u;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t bits_bf16(float f)
{
    float r = round_bf16(f);
    uint32_t u;
    memcpy(&u, &r, 4);
    return (uint16_t)(u >> 16);
}

/* a small LCG: values in [-1, 1) with all 23 mantissa bits busy */
static float next(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

typedef struct {
    int m, n, k, batch;
} Shape;

typedef struct {
    Shape s;
    int ta, tb, a16, b16;
    int64_t lda, ldb, ldc, sa, sb, sc;
    float *af, *bf, *c0; /* f32 values */
    void *a, *b;         /* what the GEMM reads: af/bf or their bf16 bits */
} Case;

static void case_init(Case *t, Shape s, int ta, int tb, int a16, int b16, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    t->s = s;
    t->ta = ta, t->tb = tb, t->a16 = a16, t->b16 = b16;
    t->lda = (ta ? s.m : s.k) + 3; /* padded rows: the leading dimensions are honoured */
    t->ldb = (tb ? s.k : s.n) + 1;
    t->ldc = s.n + 2;
    t->sa = t->lda * (ta ? s.k : s.m);
    t->sb = t->ldb * (tb ? s.n : s.k);
    t->sc = t->ldc * s.m;
    t->af = malloc(sizeof(float) * (size_t)(t->sa * s.batch));
    t->bf = malloc(sizeof(float) * (size_t)(t->sb * s.batch));
    t->c0 = malloc(sizeof(float) * (size_t)(t->sc * s.batch));
    for (int64_t i = 0; i < t->sa * s.batch; i++)
        t->af[i] = next(&seed);
    for (int64_t i = 0; i < t->sb * s.batch; i++)
        t->bf[i] = next(&seed);
    for (int64_t i = 0; i < t->sc * s.batch; i++)
        t->c0[i] = next(&seed);
    t->a = t->af;
    t->b = t->bf;
    if (a16) {
        uint16_t *h = malloc(2 * (size_t)(t->sa * s.batch));
        for (int64_t i = 0; i < t->sa * s.batch; i++)
            h[i] = bits_bf16(t->af[i]);
        t->a = h;
    }
    if (b16) {
        uint16_t *h = malloc(2 * (size_t)(t->sb * s.batch));
        for (int64_t i = 0; i < t->sb * s.batch; i++)
            h[i] = bits_bf16(t->bf[i]);
        t->b = h;
    }
}

static void case_fini(Case *t)
{
    if (t->a != t->af)
        free(t->a);
    if (t->b != t->bf)
        free(t->b);
    free(t->af);
    free(t->bf);
    free(t->c0);
}

static float *run(const Case *t, RtCtx *ctx, float alpha, float beta)
{
    size_t bytes = sizeof(float) * (size_t)(t->sc * t->s.batch);
    float *c = malloc(bytes);
    memcpy(c, t->c0, bytes);
    rt_sbgemm_strided(ctx, t->ta, t->tb, t->s.m, t->s.n, t->s.k, alpha, t->a, t->a16, t->lda, t->sa, t->b, t->b16,
                      t->ldb, t->sb, beta, c, t->ldc, t->sc, t->s.batch);
    return c;
}

static double a_at(const Case *t, int64_t bi, int64_t i, int64_t p, bool rounded)
{
    float v = t->af[bi * t->sa + (t->ta ? p * t->lda + i : i * t->lda + p)];
    return rounded ? round_bf16(v) : v;
}

static double b_at(const Case *t, int64_t bi, int64_t p, int64_t j, bool rounded)
{
    float v = t->bf[bi * t->sb + (t->tb ? j * t->ldb + p : p * t->ldb + j)];
    return rounded ? round_bf16(v) : v;
}

/* Checks c against the double sums over rounded operands; returns how many elements the
 * unrounded sums put outside the bound (the bound is tight enough to see rounding). */
static int64_t check_against_reference(const Case *t, const float *c, float alpha, float beta)
{
    int64_t unrounded_out = 0;
    for (int64_t bi = 0; bi < t->s.batch; bi++)
        for (int64_t i = 0; i < t->s.m; i++)
            for (int64_t j = 0; j < t->s.n; j++) {
                double sum = 0, sum_raw = 0, mag = 0;
                for (int64_t p = 0; p < t->s.k; p++) {
                    double x = a_at(t, bi, i, p, true) * b_at(t, bi, p, j, true);
                    sum += x;
                    mag += fabs(x);
                    sum_raw += a_at(t, bi, i, p, false) * b_at(t, bi, p, j, false);
                }
                double c0 = t->c0[bi * t->sc + i * t->ldc + j];
                double want = alpha * sum + beta * c0, raw = alpha * sum_raw + beta * c0;
                double tol = (t->s.k + 4) * 0x1p-23 * (fabs(alpha) * mag + fabs(beta * c0)) + 1e-30;
                double got = c[bi * t->sc + i * t->ldc + j];
                ck_assert_msg(fabs(got - want) <= tol,
                              "%dx%dx%d ta %d tb %d a16 %d b16 %d: C[%lld][%lld][%lld] = %.9g, want %.9g +- %.3g",
                              t->s.m, t->s.n, t->s.k, t->ta, t->tb, t->a16, t->b16, (long long)bi, (long long)i,
                              (long long)j, got, want, tol);
                unrounded_out += fabs(raw - want) > tol;
            }
    /* the padding between rows is never written */
    for (int64_t bi = 0; bi < t->s.batch; bi++)
        for (int64_t i = 0; i < t->s.m; i++)
            for (int64_t j = t->s.n; j < t->ldc; j++)
                ck_assert(c[bi * t->sc + i * t->ldc + j] == t->c0[bi * t->sc + i * t->ldc + j]);
    return unrounded_out;
}

static const Shape shapes[] = {
    {1, 1, 1, 1},    {13, 33, 3, 1},  {37, 70, 129, 1}, {100, 29, 1037, 1}, /* k past one 512 slice, odd */
    {24, 64, 64, 3}, {5, 200, 17, 1},
};

START_TEST(sbgemm_matches_sums_over_bf16_rounded_operands)
{
    if (!rt_sbgemm_native())
        fprintf(stderr, "note: no AVX512-BF16 here: checking the scalar kernel\n");
    int64_t seen_rounding = 0;
    uint64_t seed = 1;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int v = 0; v < 16; v++) {
            Case t;
            case_init(&t, shapes[si], v & 1, v >> 1 & 1, v >> 2 & 1, v >> 3 & 1, seed++);
            float alpha = v % 3 == 0 ? 1.0f : -0.75f, beta = v % 2 ? 0.0f : 0.5f;
            float *c = run(&t, NULL, alpha, beta);
            seen_rounding += check_against_reference(&t, c, alpha, beta);
            free(c);
            case_fini(&t);
        }
    ck_assert_msg(seen_rounding > 0, "sums over unrounded operands always within the bound");
}
END_TEST

START_TEST(sbgemm_beta_zero_ignores_nan_in_c_and_k_zero_scales)
{
    Case t;
    case_init(&t, (Shape){20, 40, 30, 1}, 0, 1, 0, 0, 7);
    for (int64_t i = 0; i < t.sc; i++)
        if (i % t.ldc < t.s.n)
            t.c0[i] = NAN;
    float *c = run(&t, NULL, 1.0f, 0.0f);
    for (int64_t i = 0; i < t.s.m; i++)
        for (int64_t j = 0; j < t.s.n; j++)
            ck_assert(isfinite(c[i * t.ldc + j]));
    free(c);
    t.s.k = 0;
    for (int64_t i = 0; i < t.sc; i++)
        t.c0[i] = 2.0f;
    c = run(&t, NULL, 1.0f, 0.25f);
    for (int64_t i = 0; i < t.s.m; i++)
        for (int64_t j = 0; j < t.s.n; j++)
            ck_assert(c[i * t.ldc + j] == 0.5f);
    free(c);
    case_fini(&t);
}
END_TEST

typedef struct {
    const Case *t;
    RtCtx *ctx;
    float *c;
} Nested;

static void in_job(void *arg, int64_t begin, int64_t end)
{
    Nested *n = arg;
    if (begin == 0 && end > 0)
        n->c = run(n->t, n->ctx, 0.75f, 0.25f);
}

START_TEST(sbgemm_same_bits_for_any_thread_count)
{
    static const Shape big[] = {{257, 130, 700, 1}, {40, 531, 300, 1}, {33, 65, 40, 5}, {1024, 96, 130, 1}};
    for (size_t si = 0; si < sizeof big / sizeof *big; si++)
        for (int v = 0; v < 4; v++) {
            Case t;
            case_init(&t, big[si], v & 1, v >> 1 & 1, v & 1, 0, 100 + si);
            size_t bytes = sizeof(float) * (size_t)(t.sc * t.s.batch);
            float *want = NULL;
            for (int threads = 1; threads <= 5; threads++) {
                RtCtx ctx = {.model = &empty_model, .n_threads = threads > 4 ? 2 : threads};
                ctx.threads = ctx.n_threads > 1 ? rt_threads_create(ctx.n_threads - 1) : NULL;
                float *c;
                if (threads <= 4) {
                    c = run(&t, &ctx, 0.75f, 0.25f);
                } else {
                    Nested n = {&t, &ctx, NULL};
                    rt_parallel_for(&ctx, 2, in_job, &n);
                    c = n.c;
                }
                if (!want)
                    want = c;
                else {
                    ck_assert_msg(memcmp(c, want, bytes) == 0, "%dx%dx%d batch %d: %d threads%s differ from 1",
                                  t.s.m, t.s.n, t.s.k, t.s.batch, ctx.n_threads, threads > 4 ? " (nested)" : "");
                    free(c);
                }
                rt_threads_destroy(ctx.threads);
            }
            free(want);
            case_fini(&t);
        }
}
END_TEST

START_TEST(cpu_without_avx512bf16_refuses_a_bf16_trainer)
{
    /* codegen records +avx512bf16 among a bf16 trainer's required features; the start-up
     * check (rt_cpu_check_features, ctx.c) names it on a CPU that lacks it */
    RtCpu c;
    rt_cpu_detect(&c);
    int i = rt_cpu_feature_index("avx512bf16");
    ck_assert_int_ge(i, 0);
    c.has &= ~((uint64_t)1 << i);
    RtError e = {0};
    ck_assert(!rt_cpu_check_features(&c, "+avx512bf16", &e));
    ck_assert_msg(strstr(e.msg, "avx512bf16") != NULL, "%s", e.msg);
    c.has |= (uint64_t)1 << i;
    ck_assert(rt_cpu_check_features(&c, "+avx512bf16", &e));
}
END_TEST

Suite *gemm_bf16_suite(void)
{
    Suite *s = suite_create("gemm_bf16");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, sbgemm_matches_sums_over_bf16_rounded_operands);
    tcase_add_test(tc, sbgemm_beta_zero_ignores_nan_in_c_and_k_zero_scales);
    tcase_add_test(tc, sbgemm_same_bits_for_any_thread_count);
    tcase_add_test(tc, cpu_without_avx512bf16_refuses_a_bf16_trainer);
    suite_add_tcase(s, tc);
    return s;
}
