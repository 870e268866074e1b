/* Runtime core: the thread pool covers every index exactly once, sgemm agrees with a naive
 * product for every transpose, pools are carved and zeroed, model tables are validated. */
#include <check.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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
                 .batch = 1, .seq_len = 2, .n_tensors = T_COUNT, .tensors = two_tensors,
                 .n_exports = 1, .exports = &w_export,
                 .pool_bytes = {[RT_POOL_PARAMS] = 56, [RT_POOL_FROZEN] = 48, [RT_POOL_SCRATCH] = 64},
                 .schedule = {.kind = RT_SCHED_COSINE, .steps = 10, .warmup = 2, .lr = 1e-3,
                              .relora_lr = 1e-3, .min_lr_ratio = 0.1},
                 .fn = {[RT_FN_INIT] = noop, [RT_FN_TRAIN_FULL] = noop, [RT_FN_NORM_FULL] = noop,
                        [RT_FN_UPDATE_FULL] = noop, [RT_FN_EVAL] = noop, [RT_FN_LOGITS] = noop},
                 .io = {[RT_IO_TOKENS] = T_TOKENS, [RT_IO_TARGETS] = T_TARGETS, [RT_IO_STEP] = -1,
                        [RT_IO_LR] = T_LR, [RT_IO_ADAM_T] = T_ADAM_T, [RT_IO_PRUNE_FRACTION] = -1,
                        [RT_IO_SAMPLE_TOKENS] = T_SAMPLE, [RT_IO_LOGITS] = T_LOGITS}};
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
    tcase_add_test(tc, ctx_carves_zeroed_aligned_pools);
    tcase_add_test(tc, model_validate_rejects_bad_tables);
    tcase_add_test(tc, model_validate_checks_the_export_table);
    suite_add_tcase(s, tc);
    return s;
}
