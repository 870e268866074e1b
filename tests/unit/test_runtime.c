/* Runtime core: the thread pool covers every index exactly once, sgemm agrees with a naive
 * product for every transpose and gives the same bits on any thread count, the CPU check
 * and the GEMM kernel choice, pools are carved and zeroed, model tables are validated. */
#include <check.h>
#include <dlfcn.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt_internal.h"

typedef struct Cover {
    atomic_int *hits;
    atomic_int calls;
} Cover;

static void mark(void *arg, int64_t begin, int64_t end)
{
    Cover *c = arg;
    atomic_fetch_add(&c->calls, 1);
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add(&c->hits[i], 1);
}

static const RtModel empty_model; /* validation is bypassed: only the pool is used */

START_TEST(pool_covers_every_index_once)
{
    const int64_t sizes[] = {1, 2, 3, 7, 8, 63, 64, 65, 1000, 4097};
    for (int threads = 1; threads <= 8; threads++) {
        RtCtx ctx = {.model = &empty_model, .n_threads = threads};
        ctx.threads = threads > 1 ? rt_threads_create(threads - 1) : NULL;
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            int64_t n = sizes[k];
            Cover c = {calloc((size_t)n, sizeof(atomic_int)), 0};
            for (int rep = 0; rep < 20; rep++)
                rt_parallel_for(&ctx, n, mark, &c);
            for (int64_t i = 0; i < n; i++)
                ck_assert_msg(c.hits[i] == 20, "threads %d n %lld index %lld hit %d times",
                              threads, (long long)n, (long long)i, (int)c.hits[i]);
            ck_assert_int_le(c.calls, 20 * threads);
            free(c.hits);
        }
        rt_threads_destroy(ctx.threads);
    }
}
END_TEST

typedef struct Ranges {
    int64_t begin[16], end[16];
    int n;
    RtCtx *ctx;
} Ranges;

static void record(void *arg, int64_t begin, int64_t end)
{
    Ranges *r = arg;
    int part = (int)(begin * 4 / 100); /* n = 100, 4 threads: range i starts at 25 i */
    r->begin[part] = begin;
    r->end[part] = end;
}

START_TEST(pool_partition_is_fixed)
{
    RtCtx ctx = {.model = &empty_model, .n_threads = 4, .threads = rt_threads_create(3)};
    for (int rep = 0; rep < 50; rep++) {
        Ranges r = {{0}, {0}, 0, &ctx};
        rt_parallel_for(&ctx, 100, record, &r);
        for (int i = 0; i < 4; i++) {
            ck_assert_int_eq(r.begin[i], 25 * i);
            ck_assert_int_eq(r.end[i], 25 * (i + 1));
        }
    }
    rt_threads_destroy(ctx.threads);
}
END_TEST


typedef struct Outer {
    RtCtx *ctx;
    Cover inner;
} Outer;

static void outer(void *arg, int64_t begin, int64_t end)
{
    Outer *o = arg;
    for (int64_t i = begin; i < end; i++)
        rt_parallel_for(o->ctx, 10, mark, &o->inner);
}

START_TEST(pool_nested_call_runs_serially)
{
    RtCtx ctx = {.model = &empty_model, .n_threads = 3, .threads = rt_threads_create(2)};
    Outer o = {&ctx, {calloc(10, sizeof(atomic_int)), 0}};
    rt_parallel_for(&ctx, 6, outer, &o);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(o.inner.hits[i], 6);
    free(o.inner.hits);
    rt_threads_destroy(ctx.threads);
}
END_TEST

static void naive(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++)
                s += (double)(ta ? a[p * lda + i] : a[i * lda + p]) *
                     (tb ? b[j * ldb + p] : b[p * ldb + j]);
            c[i * ldc + j] = (float)(alpha * s + beta * c[i * ldc + j]);
        }
}

START_TEST(sgemm_matches_naive_for_all_transposes)
{
    enum { M = 5, N = 7, K = 3, BATCH = 2 };
    float a[BATCH][M * K], b[BATCH][K * N], c[BATCH][M * N], ref[BATCH][M * N];
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            for (int z = 0; z < BATCH; z++) {
                for (int i = 0; i < M * K; i++)
                    a[z][i] = rt_rng_normal(1, 1, (uint64_t)(z * 100 + i));
                for (int i = 0; i < K * N; i++)
                    b[z][i] = rt_rng_normal(1, 2, (uint64_t)(z * 100 + i));
                for (int i = 0; i < M * N; i++)
                    c[z][i] = ref[z][i] = rt_rng_normal(1, 3, (uint64_t)(z * 100 + i));
                naive(ta, tb, M, N, K, 0.5f, a[z], ta ? M : K, b[z], tb ? K : N, 2.0f, ref[z],
                      N);
            }
            rt_sgemm_strided(NULL, ta, tb, M, N, K, 0.5f, &a[0][0], ta ? M : K, M * K,
                             &b[0][0], tb ? K : N, K * N, 2.0f, &c[0][0], N, M * N, BATCH);
            for (int z = 0; z < BATCH; z++)
                for (int i = 0; i < M * N; i++)
                    ck_assert_msg(fabsf(c[z][i] - ref[z][i]) < 1e-4f, "ta %d tb %d", ta, tb);
        }
}
END_TEST

/* Shapes that cross the engine's k-slices (KC <= 512), several micro-tiles and partial
 * ones, with row strides wider than the matrices; C starts as NaN where beta is 0. */
typedef struct {
    int m, n, k, batch;
} Shape;

static const Shape big_shapes[] = {{131, 77, 900, 1}, {7, 300, 65, 1}, {300, 5, 1030, 1},
                                   {33, 65, 40, 5}, {1, 1, 1, 1}, {64, 64, 0, 2}};

typedef struct {
    float *a, *b, *c;
    int lda, ldb, ldc;
    int64_t sa, sb, sc;
} Operands;

static void operands_fill(Operands *o, Shape s, int ta, int tb, float c0)
{
    int ar = ta ? s.k : s.m, ac = ta ? s.m : s.k, br = tb ? s.n : s.k, bc = tb ? s.k : s.n;
    o->lda = ac + 3;
    o->ldb = bc + 1;
    o->ldc = s.n + 2;
    o->sa = (int64_t)ar * o->lda + 5;
    o->sb = (int64_t)br * o->ldb;
    o->sc = (int64_t)s.m * o->ldc + 1;
    o->a = malloc(sizeof(float) * (size_t)(o->sa * s.batch + 1));
    o->b = malloc(sizeof(float) * (size_t)(o->sb * s.batch + 1));
    o->c = malloc(sizeof(float) * (size_t)(o->sc * s.batch + 1));
    for (int64_t i = 0; i < o->sa * s.batch; i++)
        o->a[i] = rt_rng_normal(7, 1, (uint64_t)i);
    for (int64_t i = 0; i < o->sb * s.batch; i++)
        o->b[i] = rt_rng_normal(7, 2, (uint64_t)i);
    for (int64_t i = 0; i < o->sc * s.batch; i++)
        o->c[i] = c0 == c0 ? rt_rng_normal(7, 3, (uint64_t)i) : c0;
}

static void operands_free(Operands *o)
{
    free(o->a);
    free(o->b);
    free(o->c);
}

START_TEST(sgemm_matches_naive_across_blocks)
{
    for (size_t si = 0; si < sizeof big_shapes / sizeof *big_shapes; si++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int beta_zero = 0; beta_zero < 2; beta_zero++) {
                    Shape s = big_shapes[si];
                    Operands o;
                    operands_fill(&o, s, ta, tb, beta_zero ? NAN : 0.0f);
                    float beta = beta_zero ? 0.0f : -0.5f;
                    float *ref = malloc(sizeof(float) * (size_t)(o.sc * s.batch + 1));
                    memcpy(ref, o.c, sizeof(float) * (size_t)(o.sc * s.batch));
                    for (int z = 0; z < s.batch; z++) {
                        if (beta_zero) /* naive reads C even with beta 0 */
                            for (int i = 0; i < s.m; i++)
                                for (int j = 0; j < s.n; j++)
                                    ref[z * o.sc + i * o.ldc + j] = 0.0f;
                        naive(ta, tb, s.m, s.n, s.k, 1.5f, o.a + z * o.sa, o.lda, o.b + z * o.sb,
                              o.ldb, beta, ref + z * o.sc, o.ldc);
                    }
                    rt_sgemm_strided(NULL, ta, tb, s.m, s.n, s.k, 1.5f, o.a, o.lda, o.sa, o.b,
                                     o.ldb, o.sb, beta, o.c, o.ldc, o.sc, s.batch);
                    /* float accumulation over k terms of N(0,1) products: |error| of order
                     * 2^-24 sqrt(k) |sum|; 1e-4 (1 + |ref|) leaves a wide margin */
                    for (int z = 0; z < s.batch; z++)
                        for (int i = 0; i < s.m; i++)
                            for (int j = 0; j < s.n; j++) {
                                float got = o.c[z * o.sc + i * o.ldc + j];
                                float want = ref[z * o.sc + i * o.ldc + j];
                                ck_assert_msg(fabsf(got - want) <= 1e-4f * (1 + fabsf(want)),
                                              "%dx%dx%d batch %d ta %d tb %d beta %g: C[%d][%d][%d]"
                                              " = %g, want %g", s.m, s.n, s.k, s.batch, ta, tb,
                                              (double)beta, z, i, j, (double)got, (double)want);
                            }
                    /* padding between rows and matrices is never written */
                    for (int z = 0; z < s.batch; z++)
                        for (int i = 0; i < s.m; i++)
                            for (int j = s.n; j < o.ldc && (int64_t)i * o.ldc + j < o.sc; j++) {
                                float *p = o.c + z * o.sc + i * o.ldc + j;
                                float *q = ref + z * o.sc + i * o.ldc + j;
                                ck_assert(memcmp(p, q, sizeof *p) == 0);
                            }
                    free(ref);
                    operands_free(&o);
                }
}
END_TEST

typedef struct {
    RtCtx *ctx;
    Shape s;
    int ta, tb;
    Operands *o;
} Nested;

static void sgemm_in_job(void *arg, int64_t begin, int64_t end)
{
    const Nested *n = arg;
    if (begin == 0 && end > 0) /* one range issues the GEMM while the pool is busy */
        rt_sgemm_strided(n->ctx, n->ta, n->tb, n->s.m, n->s.n, n->s.k, 0.75f, n->o->a, n->o->lda,
                         n->o->sa, n->o->b, n->o->ldb, n->o->sb, 0.25f, n->o->c, n->o->ldc,
                         n->o->sc, n->s.batch);
}

START_TEST(sgemm_same_bits_for_any_thread_count)
{
    /* a GEMM on 1 thread is the reference; 2..4 threads, and a call from inside a pool job
     * (which runs on an engine of its own), must give identical bytes */
    static const Shape shapes[] = {{257, 130, 700, 1}, {40, 531, 300, 1}, {33, 65, 40, 5},
                                   {256, 64, 256, 8}, {1024, 128, 128, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                Shape s = shapes[si];
                Operands o;
                operands_fill(&o, s, ta, tb, 0.0f);
                size_t bytes = sizeof(float) * (size_t)(o.sc * s.batch);
                float *c0 = malloc(bytes), *want = malloc(bytes);
                memcpy(c0, o.c, bytes);
                for (int threads = 1; threads <= 5; threads++) {
                    RtCtx ctx = {.model = &empty_model, .n_threads = threads > 4 ? 2 : threads};
                    ctx.threads = ctx.n_threads > 1 ? rt_threads_create(ctx.n_threads - 1) : NULL;
                    RtError e = {0};
                    ck_assert_msg(rt_gemm_create(&ctx.gemm, ctx.n_threads, &e), "%s", e.msg);
                    memcpy(o.c, c0, bytes);
                    if (threads <= 4) {
                        rt_sgemm_strided(&ctx, ta, tb, s.m, s.n, s.k, 0.75f, o.a, o.lda, o.sa,
                                         o.b, o.ldb, o.sb, 0.25f, o.c, o.ldc, o.sc, s.batch);
                    } else {
                        Nested n = {&ctx, s, ta, tb, &o};
                        rt_parallel_for(&ctx, 2, sgemm_in_job, &n);
                    }
                    if (threads == 1)
                        memcpy(want, o.c, bytes);
                    else
                        ck_assert_msg(memcmp(o.c, want, bytes) == 0,
                                      "%dx%dx%d batch %d ta %d tb %d: %d threads%s differ from 1",
                                      s.m, s.n, s.k, s.batch, ta, tb, ctx.n_threads,
                                      threads > 4 ? " (nested)" : "");
                    rt_gemm_destroy(ctx.gemm);
                    rt_threads_destroy(ctx.threads);
                }
                free(c0);
                free(want);
                operands_free(&o);
            }
}
END_TEST

/* rt_sgemm_pair against a reference computed here in double: both forms, both op(B),
 * shapes whose second part straddles a micro-tile (cat_k 0) or whose first part ends
 * inside a k-slice (cat_k 1); and, bit for bit, the two rt_sgemm calls it replaces, on
 * 1, 2 and 3 threads. Padding columns of C (ldc > width) are never written. */
START_TEST(sgemm_pair_matches_naive_and_the_two_gemms)
{
    static const int shapes[][4] = {/* m, n, k, len2 */
                                    {300, 50, 700, 13}, {97, 544, 96, 32}, {2, 7, 3, 5},
                                    {64, 512, 520, 32}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int cat_k = 0; cat_k < 2; cat_k++)
            for (int tb = 0; tb < 2; tb++) {
                int m = shapes[si][0], n = shapes[si][1], k = shapes[si][2], l2 = shapes[si][3];
                int w = cat_k ? n : n + l2, ldc = w + 3;
                /* A: [m, k]; A2: [m, l2] (cat_k); op(B): [k, n]; op(B2): [k2, n2] */
                int k2 = cat_k ? l2 : k, n2 = cat_k ? n : l2;
                int lda = k + 2, lda2 = l2 + 1, ldb = (tb ? k : n) + 1, ldb2 = (tb ? k2 : n2) + 4;
                size_t sa = (size_t)m * lda, sa2 = (size_t)m * lda2;
                size_t sb = (size_t)(tb ? n : k) * ldb, sb2 = (size_t)(tb ? n2 : k2) * ldb2;
                size_t sc = (size_t)m * ldc;
                float *a = malloc(sizeof(float) * sa), *a2 = malloc(sizeof(float) * sa2);
                float *b = malloc(sizeof(float) * sb), *b2 = malloc(sizeof(float) * sb2);
                float *c0 = malloc(sizeof(float) * sc), *c = malloc(sizeof(float) * sc);
                float *two = malloc(sizeof(float) * sc);
                for (size_t i = 0; i < sa; i++)
                    a[i] = rt_rng_normal(9, 1, i);
                for (size_t i = 0; i < sa2; i++)
                    a2[i] = rt_rng_normal(9, 2, i);
                for (size_t i = 0; i < sb; i++)
                    b[i] = rt_rng_normal(9, 3, i);
                for (size_t i = 0; i < sb2; i++)
                    b2[i] = rt_rng_normal(9, 4, i);
                for (size_t i = 0; i < sc; i++)
                    c0[i] = rt_rng_normal(9, 5, i);
                const float alpha = 0.75f, beta = -0.5f;
                for (int threads = 1; threads <= 3; threads++) {
                    RtCtx ctx = {.model = &empty_model, .n_threads = threads};
                    ctx.threads = threads > 1 ? rt_threads_create(threads - 1) : NULL;
                    RtError e = {0};
                    ck_assert_msg(rt_gemm_create(&ctx.gemm, threads, &e), "%s", e.msg);
                    memcpy(c, c0, sizeof(float) * sc);
                    rt_sgemm_pair(&ctx, cat_k, tb, m, n, k, l2, alpha, a, lda, a2, lda2, b, ldb,
                                  b2, ldb2, beta, c, ldc);
                    memcpy(two, c0, sizeof(float) * sc);
                    rt_sgemm(&ctx, 0, tb, m, n, k, alpha, a, lda, b, ldb, beta, two, ldc);
                    if (cat_k)
                        rt_sgemm(&ctx, 0, tb, m, n, l2, alpha, a2, lda2, b2, ldb2, 1.0f, two,
                                 ldc);
                    else
                        rt_sgemm(&ctx, 0, tb, m, l2, k, alpha, a, lda, b2, ldb2, beta, two + n,
                                 ldc);
                    ck_assert_msg(memcmp(c, two, sizeof(float) * sc) == 0,
                                  "%dx%dx%d+%d cat_k %d tb %d, %d threads: not the two GEMMs' "
                                  "bits", m, n, k, l2, cat_k, tb, threads);
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < ldc; j++) {
                            double want = c0[i * ldc + j];
                            if (j < w) {
                                bool second = !cat_k && j >= n;
                                double s = 0;
                                for (int p = 0; p < k; p++)
                                    s += (double)a[i * lda + p] *
                                         (second ? (tb ? b2[(j - n) * ldb2 + p] : b2[p * ldb2 + j - n])
                                                 : (tb ? b[j * ldb + p] : b[p * ldb + j]));
                                for (int p = 0; cat_k && p < l2; p++)
                                    s += (double)a2[i * lda2 + p] *
                                         (tb ? b2[j * ldb2 + p] : b2[p * ldb2 + j]);
                                want = alpha * s + beta * want;
                            }
                            float got = c[i * ldc + j];
                            ck_assert_msg(j < w ? fabs(got - want) <= 1e-4 * (1 + fabs(want))
                                                : got == (float)want,
                                          "%dx%dx%d+%d cat_k %d tb %d: C[%d][%d] = %g, want %g",
                                          m, n, k, l2, cat_k, tb, i, j, (double)got, want);
                        }
                    rt_gemm_destroy(ctx.gemm);
                    rt_threads_destroy(ctx.threads);
                }
                free(a);
                free(a2);
                free(b);
                free(b2);
                free(c0);
                free(c);
                free(two);
            }
}
END_TEST

START_TEST(sgemm_openblas_fallback_matches_naive_and_is_thread_independent)
{
    /* the path taken without BLIS: OpenBLAS on fixed 64-row blocks */
    static const Shape shapes[] = {{131, 77, 900, 1}, {33, 65, 40, 5}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                Shape s = shapes[si];
                Operands o;
                operands_fill(&o, s, ta, tb, 0.0f);
                size_t bytes = sizeof(float) * (size_t)(o.sc * s.batch);
                float *c0 = malloc(bytes), *want = malloc(bytes), *ref = malloc(bytes);
                memcpy(c0, o.c, bytes);
                memcpy(ref, o.c, bytes);
                for (int z = 0; z < s.batch; z++)
                    naive(ta, tb, s.m, s.n, s.k, 0.75f, o.a + z * o.sa, o.lda, o.b + z * o.sb,
                          o.ldb, 0.25f, ref + z * o.sc, o.ldc);
                for (int threads = 1; threads <= 3; threads++) {
                    RtCtx ctx = {.model = &empty_model, .n_threads = threads};
                    ctx.threads = threads > 1 ? rt_threads_create(threads - 1) : NULL;
                    RtError e = {0};
                    if (!rt_gemm_create_lib(&ctx.gemm, threads, "openblas", &e)) {
                        rt_threads_destroy(ctx.threads);
                        break; /* no OpenBLAS on this machine */
                    }
                    ck_assert(strstr(rt_gemm_describe(ctx.gemm), "OpenBLAS"));
                    memcpy(o.c, c0, bytes);
                    rt_sgemm_strided(&ctx, ta, tb, s.m, s.n, s.k, 0.75f, o.a, o.lda, o.sa, o.b,
                                     o.ldb, o.sb, 0.25f, o.c, o.ldc, o.sc, s.batch);
                    for (int z = 0; z < s.batch; z++)
                        for (int i = 0; i < s.m; i++)
                            for (int j = 0; j < s.n; j++) {
                                float got = o.c[z * o.sc + i * o.ldc + j];
                                float w = ref[z * o.sc + i * o.ldc + j];
                                ck_assert_msg(fabsf(got - w) <= 1e-4f * (1 + fabsf(w)),
                                              "C[%d][%d][%d] = %g, want %g", z, i, j,
                                              (double)got, (double)w);
                            }
                    if (threads == 1)
                        memcpy(want, o.c, bytes);
                    else
                        ck_assert_msg(memcmp(o.c, want, bytes) == 0, "%d threads differ", threads);
                    rt_gemm_destroy(ctx.gemm);
                    rt_threads_destroy(ctx.threads);
                }
                free(c0);
                free(want);
                free(ref);
                operands_free(&o);
            }
}
END_TEST

static RtCpu fake_cpu(const char *vendor, int family, int model, const char *features)
{
    RtCpu c = {.family = family, .model = model};
    snprintf(c.vendor, sizeof c.vendor, "%s", vendor);
    snprintf(c.brand, sizeof c.brand, "Test CPU");
    char buf[512];
    snprintf(buf, sizeof buf, "%s", features);
    for (char *t = strtok(buf, " "); t; t = strtok(NULL, " ")) {
        int i = rt_cpu_feature_index(t);
        ck_assert_msg(i >= 0, "cpu.c does not know feature '%s'", t);
        c.has |= (uint64_t)1 << i;
    }
    return c;
}

#define AVX2_SET "sse3 ssse3 sse4.1 sse4.2 popcnt avx f16c fma avx2 bmi bmi2 lzcnt movbe"
#define AVX512_SET AVX2_SET " avx512f avx512dq avx512cd avx512bw avx512vl"

START_TEST(cpu_check_names_missing_features)
{
    RtCpu c = fake_cpu("GenuineIntel", 6, 63, AVX2_SET);
    RtError e = {0};
    ck_assert(rt_cpu_check_features(&c, NULL, &e));
    ck_assert(rt_cpu_check_features(&c, "", &e));
    /* "-" entries and names that are not CPUID bits are ignored */
    ck_assert(rt_cpu_check_features(&c, "+64bit,+sse2,+avx2,+fma,-avx512f,+slow-3ops-lea", &e));
    ck_assert_int_eq(e.code, RT_OK);
    ck_assert(!rt_cpu_check_features(&c, "+avx2,+avx512f,+fma,+avx512bw,-amx-tile", &e));
    ck_assert_int_eq(e.code, RT_ERR_CPU);
    ck_assert_msg(strstr(e.msg, "lacks instruction sets") && strstr(e.msg, ": avx512f avx512bw;") &&
                      strstr(e.msg, "Test CPU") && strstr(e.msg, "--cpu"),
                  "%s", e.msg);
    RtError e1 = {0};
    ck_assert(!rt_cpu_check_features(&c, "+avx512vnni", &e1));
    ck_assert_msg(strstr(e1.msg, "lacks an instruction set the program was compiled for: "
                                 "avx512vnni;"), "%s", e1.msg);
}
END_TEST

/* Linux's /proc/cpuinfo flag for one of our names, or NULL where the names differ. */
START_TEST(cpu_detect_agrees_with_proc_cpuinfo)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[8192], flags[8192] = "";
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            snprintf(flags, sizeof flags, " %s ", strchr(line, ':') + 1);
            break;
        }
    fclose(f);
    char *nl = strchr(flags, '\n');
    if (nl)
        *nl = ' ';
    if (!flags[0])
        return;
    RtCpu c;
    rt_cpu_detect(&c);
    static const char *same[] = {"ssse3", "fma", "sse4_1", "avx", "avx2", "bmi2", "avx512f",
                                 "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"};
    static const char *ours[] = {"ssse3", "fma", "sse4.1", "avx", "avx2", "bmi2", "avx512f",
                                 "avx512bw", "avx512vl", "avx512vnni", "avx512bf16"};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        char key[64];
        snprintf(key, sizeof key, " %s ", same[i]);
        ck_assert_msg(rt_cpu_has(&c, ours[i]) == (strstr(flags, key) != NULL),
                      "%s: CPUID says %d, /proc/cpuinfo says %d", ours[i], rt_cpu_has(&c, ours[i]),
                      strstr(flags, key) != NULL);
    }
    /* a program built for exactly this CPU passes the check */
    char req[2048] = "";
    for (int i = 0; rt_cpu_feature_name(i); i++)
        if (c.has >> i & 1)
            snprintf(req + strlen(req), sizeof req - strlen(req), "%s+%s", req[0] ? "," : "",
                     rt_cpu_feature_name(i));
    RtError e = {0};
    ck_assert_msg(rt_cpu_check(req, &e), "%s", e.msg);
}
END_TEST

START_TEST(gemm_remedy_forces_the_cpus_vector_kernels)
{
    RtCpu skx = fake_cpu("GenuineIntel", 6, 207, AVX512_SET);
    RtCpu hsw = fake_cpu("GenuineIntel", 6, 63, AVX2_SET);
    RtCpu zen2 = fake_cpu("AuthenticAMD", 0x17, 0x31, AVX2_SET);
    RtCpu zen4 = fake_cpu("AuthenticAMD", 0x19, 0x61, AVX512_SET);
    RtCpu old = fake_cpu("GenuineIntel", 6, 23, "sse3 ssse3 sse4.1");
    /* Debian's OpenBLAS 0.3.21 on an unknown AVX-512 model: Prescott (SSE3) */
    ck_assert_str_eq(rt_gemm_core_remedy("openblas", "Prescott", &skx), "SkylakeX");
    ck_assert_str_eq(rt_gemm_core_remedy("openblas", "Haswell", &skx), "SkylakeX");
    ck_assert_ptr_null(rt_gemm_core_remedy("openblas", "SkylakeX", &skx));
    ck_assert_ptr_null(rt_gemm_core_remedy("openblas", "Cooperlake", &skx));
    ck_assert_ptr_null(rt_gemm_core_remedy("openblas", "SapphireRapids", &skx));
    ck_assert_str_eq(rt_gemm_core_remedy("openblas", "Prescott", &hsw), "Haswell");
    ck_assert_ptr_null(rt_gemm_core_remedy("openblas", "Haswell", &hsw));
    ck_assert_str_eq(rt_gemm_core_remedy("openblas", "Prescott", &zen2), "Zen");
    /* BLIS 0.9 on a KVM guest's AVX-512 Xeon: haswell */
    ck_assert_str_eq(rt_gemm_core_remedy("blis", "haswell", &skx), "skx");
    ck_assert_str_eq(rt_gemm_core_remedy("blis", "generic", &skx), "skx");
    ck_assert_ptr_null(rt_gemm_core_remedy("blis", "skx", &skx));
    ck_assert_str_eq(rt_gemm_core_remedy("blis", "zen3", &zen4), "skx");
    ck_assert_str_eq(rt_gemm_core_remedy("blis", "penryn", &hsw), "haswell");
    ck_assert_str_eq(rt_gemm_core_remedy("blis", "generic", &zen2), "zen2");
    ck_assert_ptr_null(rt_gemm_core_remedy("blis", "zen2", &zen2));
    /* nothing wider to use, or a name newer than our table */
    ck_assert_ptr_null(rt_gemm_core_remedy("openblas", "Prescott", &old));
    ck_assert_ptr_null(rt_gemm_core_remedy("openblas", "GraniteRapids", &skx));
    ck_assert_ptr_null(rt_gemm_core_remedy("blis", "zen5", &zen4));
}
END_TEST

START_TEST(gemm_reports_kernels_the_user_forced)
{
    /* BLIS_ARCH_TYPE=5 forces BLIS's penryn (SSSE3) kernels, arch id 5 in BLIS 0.9's
     * arch_t; the engine keeps the user's choice and says it is not the CPU's best. In a
     * child: BLIS reads the variable once per process. */
    RtCpu c;
    rt_cpu_detect(&c);
    if (!rt_cpu_has(&c, "avx2"))
        return;
    void *loaded = dlopen("libblis.so.4", RTLD_NOW | RTLD_NOLOAD);
    if (loaded) { /* CK_FORK=no: this process has already fixed BLIS's choice */
        dlclose(loaded);
        return;
    }
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fd[0]);
        setenv("BLIS_ARCH_TYPE", "5", 1);
        RtGemm *g;
        RtError e = {0};
        FILE *out = fdopen(fd[1], "w");
        if (rt_gemm_create(&g, 1, &e)) {
            fprintf(out, "%s\n%s\n", rt_gemm_describe(g), rt_gemm_note(g) ? rt_gemm_note(g) : "-");
            rt_gemm_destroy(g);
        }
        fclose(out);
        _exit(0);
    }
    close(fd[1]);
    char buf[1024] = "";
    FILE *in = fdopen(fd[0], "r");
    size_t n = fread(buf, 1, sizeof buf - 1, in);
    buf[n] = 0;
    fclose(in);
    int status;
    waitpid(pid, &status, 0);
    if (!strstr(buf, "BLIS")) /* BLIS missing: the OpenBLAS fallback does not read it */
        return;
    ck_assert_msg(strstr(buf, "penryn") && strstr(buf, "BLIS_ARCH_TYPE=5") &&
                      strstr(buf, rt_cpu_isa(&c)), "%s", buf);
}
END_TEST

/* A frozen W [4, 3] with its adapter, then the io tensors a valid table needs (batch 1,
 * seq_len 2, vocab 4). */
enum { T_W, T_A, T_B, T_TOKENS, T_TARGETS, T_LR, T_ADAM_T, T_SAMPLE, T_LOGITS, T_COUNT };
#define IO_T(name, dt, rank, d0, d1, off) {name, dt, rank, {d0, d1}, RT_POOL_SCRATCH, off, RT_T_IO, -1, -1, 0}
static const RtTensorInfo two_tensors[T_COUNT] = {
    [T_W] = {"w", RT_F32, 2, {4, 3}, RT_POOL_FROZEN, 0, RT_T_PARAM, 1, 2, 0.5f},
    [T_A] = {"a", RT_F32, 2, {2, 3}, RT_POOL_PARAMS, 0, RT_T_ADAPTER_A, -1, -1, 0},
    [T_B] = {"b", RT_F32, 2, {4, 2}, RT_POOL_PARAMS, 24, RT_T_ADAPTER_B, -1, -1, 0},
    [T_TOKENS] = IO_T("tokens", RT_I32, 2, 1, 2, 0),
    [T_TARGETS] = IO_T("targets", RT_I32, 2, 1, 2, 8),
    [T_LR] = IO_T("lr", RT_F32, 0, 0, 0, 16),
    [T_ADAM_T] = IO_T("adam_t", RT_I32, 0, 0, 0, 20),
    [T_SAMPLE] = IO_T("sample", RT_I32, 2, 1, 2, 24),
    [T_LOGITS] = IO_T("logits", RT_F32, 2, 2, 4, 32),
};

static const RtExportPart w_part = {T_W, 0};
static const RtExport w_export = {"w", 0, 1, &w_part};

static float noop(RtCtx *c)
{
    (void)c;
    return 0;
}

static RtModel small_model(void)
{
    RtModel m = {.abi_version = RT_ABI_VERSION, .name = "small", .model_hash = "h", .vocab = 4,
                 .batch = 1, .micro_batch = 1, .seq_len = 2, .n_tensors = T_COUNT, .tensors = two_tensors,
                 .n_exports = 1, .exports = &w_export,
                 .pool_bytes = {[RT_POOL_PARAMS] = 56, [RT_POOL_FROZEN] = 48, [RT_POOL_SCRATCH] = 64},
                 .schedule = {.kind = RT_SCHED_COSINE, .steps = 10, .warmup = 2, .lr = 1e-3,
                              .relora_lr = 1e-3, .min_lr_ratio = 0.1},
                 .fn = {[RT_FN_INIT] = noop, [RT_FN_TRAIN_FULL] = noop, [RT_FN_NORM_FULL] = noop,
                        [RT_FN_UPDATE_FULL] = noop, [RT_FN_EVAL] = noop, [RT_FN_LOGITS] = noop},
                 .io = {[RT_IO_TOKENS] = T_TOKENS, [RT_IO_TARGETS] = T_TARGETS, [RT_IO_STEP] = -1,
                        [RT_IO_LR] = T_LR, [RT_IO_ADAM_T] = T_ADAM_T, [RT_IO_PRUNE_FRACTION] = -1,
                        [RT_IO_SAMPLE_TOKENS] = T_SAMPLE, [RT_IO_LOGITS] = T_LOGITS, [RT_IO_MICRO_STEP] = -1}};
    return m;
}

START_TEST(ctx_carves_zeroed_aligned_pools)
{
    RtModel m = small_model();
    RtCtx *ctx;
    RtError e = {0};
    ck_assert_msg(rt_ctx_create(&ctx, &m, 2, 5, &e), "%s", e.msg);
    ck_assert_ptr_nonnull(ctx->pools[RT_POOL_PARAMS]);
    ck_assert_ptr_null(ctx->pools[RT_POOL_OPTIM]);
    ck_assert_uint_eq((uintptr_t)ctx->pools[RT_POOL_FROZEN] % 64, 0);
    float *b = rt_tensor_data(ctx, 2);
    ck_assert_ptr_eq(b, (char *)ctx->pools[RT_POOL_PARAMS] + 24);
    for (int i = 0; i < 8; i++)
        ck_assert(b[i] == 0.0f);
    ck_assert_uint_eq(ctx->seed, 5);
    rt_ctx_destroy(ctx);
}
END_TEST

START_TEST(model_validate_rejects_bad_tables)
{
    RtModel m = small_model();
    RtError e = {0};
    ck_assert(rt_model_validate(&m, &e));
    ck_assert(rt_model_validate_program(&m, &e));
    m.pool_bytes[RT_POOL_PARAMS] = 50; /* b needs [24, 56) */
    ck_assert(!rt_model_validate(&m, &e));
    ck_assert_int_eq(e.code, RT_ERR_MODEL);
    ck_assert_ptr_nonnull(strstr(e.msg, "tensor 'b'"));

    RtTensorInfo bad[T_COUNT];
    memcpy(bad, two_tensors, sizeof bad);
    bad[2].shape[1] = 3; /* B [4, 3] does not match A [2, 3] */
    m = small_model();
    m.tensors = bad;
    m.pool_bytes[RT_POOL_PARAMS] = 128;
    e = (RtError){0};
    ck_assert(!rt_model_validate(&m, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "adapter shapes"));

    memcpy(bad, two_tensors, sizeof bad);
    bad[1].name = "w";
    e = (RtError){0};
    ck_assert(!rt_model_validate(&m, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "two tensors named 'w'"));

    m = small_model();
    m.abi_version = 99;
    e = (RtError){0};
    ck_assert(!rt_model_validate(&m, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "ABI"));

    /* the step policy's functions and io tensors */
    m = small_model();
    m.fn[RT_FN_NORM_FULL] = NULL;
    e = (RtError){0};
    ck_assert(!rt_model_validate_program(&m, &e));
    ck_assert_msg(strstr(e.msg, "has train_full but no norm_full"), "%s", e.msg);
    m = small_model();
    m.fn[RT_FN_LOGITS] = NULL;
    e = (RtError){0};
    ck_assert(!rt_model_validate_program(&m, &e));
    ck_assert_msg(strstr(e.msg, "no logits function"), "%s", e.msg);
    m = small_model();
    m.schedule.kind = RT_SCHED_RELORA;
    m.schedule.reset_every = 4;
    e = (RtError){0};
    ck_assert(!rt_model_validate_program(&m, &e));
    ck_assert_msg(strstr(e.msg, "relora schedule needs the train_lora and relora_reset"), "%s", e.msg);
    m = small_model();
    m.io[RT_IO_LR] = T_ADAM_T; /* i32, not f32 */
    e = (RtError){0};
    ck_assert(!rt_model_validate_program(&m, &e));
    ck_assert_msg(strstr(e.msg, "io 'lr' (tensor 'adam_t') must be F32 with 1 elements"), "%s", e.msg);
    m = small_model();
    m.io[RT_IO_LOGITS] = -1;
    e = (RtError){0};
    ck_assert(!rt_model_validate_program(&m, &e));
    ck_assert_msg(strstr(e.msg, "no 'logits' tensor"), "%s", e.msg);
    m = small_model();
    m.schedule.warmup = 10; /* not below steps */
    e = (RtError){0};
    ck_assert(!rt_model_validate_program(&m, &e));
    ck_assert_msg(strstr(e.msg, "compiled schedule is invalid: warmup must be in [0, steps) = [0, 10) (got 10)"),
                  "%s", e.msg);
}
END_TEST

/* The export table: every model weight in exactly one export, parts that concatenate,
 * transposes of matrices only, unique names. */
START_TEST(model_validate_checks_the_export_table)
{
    static const RtExportPart self[1] = {{T_W, 0}}, t_part[1] = {{T_W, 1}}, a_part[1] = {{T_A, 0}};
    static const RtExportPart w_a[2] = {{T_W, 0}, {T_A, 0}};   /* [4, 3] and [2, 3] */
    static const RtExportPart w_at[2] = {{T_W, 1}, {T_A, 1}}; /* [3, 4] and [3, 2] */
    const struct {
        RtExport x[2];
        int n;
        const char *needle; /* NULL: valid */
    } cases[] = {
        {{{"w", 0, 1, self}}, 1, NULL},
        {{{"w.T", 0, 1, t_part}}, 1, NULL},
        {{{"wa", 0, 2, w_a}}, 1, "tensor 'a' is not a model weight"},
        {{{"w", 0, 1, self}, {"w", 0, 1, self}}, 2, "two exported tensors named 'w'"},
        {{{"w", 0, 1, self}, {"x", 0, 1, self}}, 2, "'w' is part of 2 exported tensors"},
        {{{"a", 0, 1, a_part}}, 1, "not a model weight"},
        {{{"w", 2, 1, self}}, 1, "do not concatenate along axis 2"},
        {{{"__metadata__", 0, 1, self}}, 1, "reserved"},
    };
    RtTensorInfo t[T_COUNT];
    memcpy(t, two_tensors, sizeof t);
    t[T_A].flags |= RT_T_PARAM; /* so that w and a can share an export */
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        RtModel m = small_model();
        m.exports = cases[c].x;
        m.n_exports = cases[c].n;
        RtError e = {0};
        bool ok = rt_model_validate(&m, &e);
        ck_assert_msg(ok == !cases[c].needle, "case %zu: %s", c, e.msg);
        if (cases[c].needle)
            ck_assert_msg(strstr(e.msg, cases[c].needle), "case %zu: %s", c, e.msg);
    }
    RtModel m = small_model();
    m.tensors = t;
    RtExport both = {"wa", 0, 2, w_a}, both_t = {"wa", 1, 2, w_at}, bad_axis = {"wa", 1, 2, w_a};
    RtError e = {0};
    m.exports = &both;
    ck_assert_msg(rt_model_validate(&m, &e), "%s", e.msg);
    RtExportShape sh;
    ck_assert(rt_export_shape(&m, &both, &sh));
    ck_assert(sh.rank == 2 && sh.shape[0] == 6 && sh.shape[1] == 3);
    ck_assert(rt_export_shape(&m, &both_t, &sh));
    ck_assert(sh.rank == 2 && sh.shape[0] == 3 && sh.shape[1] == 6);
    m.exports = &bad_axis; /* [4, 3] and [2, 3] side by side: the rows differ */
    ck_assert(!rt_model_validate(&m, &e));
    ck_assert_msg(strstr(e.msg, "do not concatenate along axis 1"), "%s", e.msg);
    m = small_model();
    m.n_exports = 0;
    e = (RtError){0};
    ck_assert(!rt_model_validate(&m, &e));
    ck_assert_msg(strstr(e.msg, "'w' is part of 0 exported tensors"), "%s", e.msg);
}
END_TEST

Suite *runtime_suite(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("runtime");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, pool_covers_every_index_once);
    tcase_add_test(tc, pool_partition_is_fixed);
    tcase_add_test(tc, pool_nested_call_runs_serially);
    tcase_add_test(tc, sgemm_matches_naive_for_all_transposes);
    tcase_add_test(tc, sgemm_matches_naive_across_blocks);
    tcase_add_test(tc, sgemm_same_bits_for_any_thread_count);
    tcase_add_test(tc, sgemm_pair_matches_naive_and_the_two_gemms);
    tcase_add_test(tc, sgemm_openblas_fallback_matches_naive_and_is_thread_independent);
    tcase_add_test(tc, cpu_check_names_missing_features);
    tcase_add_test(tc, cpu_detect_agrees_with_proc_cpuinfo);
    tcase_add_test(tc, gemm_remedy_forces_the_cpus_vector_kernels);
    tcase_add_test(tc, gemm_reports_kernels_the_user_forced);
    tcase_add_test(tc, ctx_carves_zeroed_aligned_pools);
    tcase_add_test(tc, model_validate_rejects_bad_tables);
    tcase_add_test(tc, model_validate_checks_the_export_table);
    suite_add_tcase(s, tc);
    return s;
}
