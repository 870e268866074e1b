/* Checkpoints: safetensors round trips and strict parsing, merged export equals
 * W + s B A, and every damaged or foreign checkpoint fails with its own error; a full disk
 * leaves the previous checkpoint byte-identical. Uses the fake model. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt_internal.h"
/* The suite loop compiles one source per suite, so the fake model comes in by inclusion. */
#include "fake_model.c"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/rt_ckpt_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static char *file_in(const char *name)
{
    static char buf[4][256]; /* a few live paths at a time */
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static unsigned char *slurp(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", p);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void spit(const char *p, const void *b, size_t n)
{
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static RtCtx *fake_ctx(const RtModel *m, uint64_t seed)
{
    RtCtx *ctx;
    RtError e = {0};
    ck_assert_msg(rt_ctx_create(&ctx, m, 2, seed, &e), "%s", e.msg);
    rt_init(ctx);
    /* give the adapters non-zero values so the merge is visible */
    float *b = rt_tensor_data(ctx, FK_B);
    for (int i = 0; i < FAKE_V * FAKE_R; i++)
        b[i] = rt_rng_normal(seed, 77, (uint64_t)i);
    return ctx;
}

static void save_ok(RtCtx *ctx, int64_t step)
{
    RtError e = {0};
    ck_assert_msg(rt_checkpoint_save(ctx, dir, step, NULL, NULL, &e), "%s", e.msg);
}

START_TEST(st_round_trips_sorted_and_aligned)
{
    float w[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[3] = {rt_f32_to_bf16(1.5f), rt_f32_to_bf16(-2.0f), rt_f32_to_bf16(0.25f)};
    int32_t step = 42;
    RtStEntry t[] = {{"zeta", RT_F32, 2, {2, 3}, w, NULL, NULL, 0},
                     {"alpha", RT_BF16, 1, {3}, h, NULL, NULL, 0},
                     {"mid", RT_I32, 0, {0}, &step, NULL, NULL, 0}};
    RtStMeta meta[] = {{"step", "42"}, {"a \"quoted\"\nkey", "v\\1"}};
    char *p = file_in("x.safetensors");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    RtError e = {0};
    ck_assert(rt_st_write_fd(fd, NULL, p, t, 3, meta, 2, &e));
    close(fd);

    size_t n;
    unsigned char *raw = slurp(p, &n);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)raw[i] << (8 * i);
    ck_assert_uint_eq((8 + hlen) % 8, 0);
    raw[8 + hlen] = '\0'; /* header text, keys in sorted order */
    const char *js = (const char *)raw + 8;
    const char *ka = strstr(js, "\"__metadata__\""), *kb = strstr(js, "\"alpha\"");
    const char *kc = strstr(js, "\"mid\""), *kd = strstr(js, "\"zeta\"");
    ck_assert(ka && kb && kc && kd && ka < kb && kb < kc && kc < kd);
    ck_assert_ptr_nonnull(strstr(js, "\"alpha\":{\"data_offsets\":[0,6],\"dtype\":\"BF16\","
                                     "\"shape\":[3]}"));
    free(raw);

    RtStFile f;
    ck_assert_msg(rt_st_open(&f, p, &e), "%s", e.msg);
    ck_assert_int_eq(f.n, 3);
    const RtStTensor *z = rt_st_find(&f, "zeta");
    ck_assert(z && z->dtype == RT_F32 && z->rank == 2 && z->shape[0] == 2 && z->shape[1] == 3);
    ck_assert_mem_eq(z->data, w, sizeof w);
    const RtStTensor *a = rt_st_find(&f, "alpha");
    ck_assert(a && a->dtype == RT_BF16 && a->nbytes == 6);
    ck_assert_mem_eq(a->data, h, sizeof h);
    const RtStTensor *m = rt_st_find(&f, "mid");
    int32_t got_step;
    ck_assert(m && m->rank == 0 && m->nbytes == 4);
    memcpy(&got_step, m->data, 4); /* after the 6-byte bf16 tensor: unaligned */
    ck_assert_int_eq(got_step, 42);
    ck_assert_str_eq(rt_st_meta(&f, "step"), "42");
    ck_assert_str_eq(rt_st_meta(&f, "a \"quoted\"\nkey"), "v\\1");
    rt_st_close(&f);
}
END_TEST

/* Each header must fail with RT_ERR_FORMAT (data_len bytes of data follow). */
START_TEST(st_parser_rejects_malformed_headers)
{
    static const struct {
        const char *json;
        size_t data_len;
        const char *needle;
    } bad[] = {
        {"", 0, "expected '{'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, "expected '}'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4,
         "bytes after the header"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "appears twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
         "unknown or repeated tensor field"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "lacks dtype, shape or data_offsets"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2,
         "unsupported dtype 'F16'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4, "leading zero"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
         "non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4,
         "expected an integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         "rank above 4"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "needs 8 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
         "overlap or hole"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "overlap or hole"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12,
         "data bytes after the last tensor"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "expected '\"'"},
        {"{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, "duplicate metadata key"},
        {"{\"a\\q\":{}}", 0, "bad escape"},
        /* 64 * 257 * 280379743338241 * 4 = 2^64 + 256 (Python): wraps to 256 unchecked */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[64,257,280379743338241],\"data_offsets\":[0,256]}}",
         256, "larger than 2^64 bytes"},
        {"{\"a\":{\"dtype\":\"I32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}",
         0, "larger than 2^64 bytes"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "'__metadata__' appears twice"},
        {"{\"a\\ud800\":{}}", 0, "lone surrogate"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        RtStFile f = {0};
        RtError e = {0};
        bool ok = rt_st_parse_header(&f, bad[i].json, strlen(bad[i].json), bad[i].data_len, &e);
        ck_assert_msg(!ok, "case %zu parsed: %s", i, bad[i].json);
        ck_assert_msg(e.code == RT_ERR_FORMAT, "case %zu: code %d (%s)", i, e.code, e.msg);
        ck_assert_msg(strstr(e.msg, bad[i].needle), "case %zu: '%s' lacks '%s'", i, e.msg,
                      bad[i].needle);
        rt_st_close(&f);
    }
    /* and the good cases around them */
    RtStFile f = {0};
    RtError e = {0};
    const char *good = " { \"__metadata__\" : { } , \"a\\u00e9\" : {\"shape\":[],\"dtype\":\"I32\","
                       "\"data_offsets\":[0,4]} }   ";
    ck_assert_msg(rt_st_parse_header(&f, good, strlen(good), 4, &e), "%s", e.msg);
    ck_assert_ptr_nonnull(rt_st_find(&f, "a\xc3\xa9"));
    rt_st_close(&f);
}
END_TEST

/* A header of n one-float tensors "t0000000".."t<n-1>" at consecutive offsets; with
 * dup, the last key repeats the first. */
static char *big_header(int n, bool dup, size_t *len)
{
    size_t cap = (size_t)n * 80 + 64;
    char *h = malloc(cap);
    size_t at = (size_t)snprintf(h, cap, "{");
    for (int i = 0; i < n; i++)
        at += (size_t)snprintf(h + at, cap - at,
                               "%s\"t%07d\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%d,%d]}",
                               i ? "," : "", dup && i == n - 1 ? 0 : i, 4 * i, 4 * i + 4);
    at += (size_t)snprintf(h + at, cap - at, "}");
    *len = at;
    return h;
}

/* 400,000 keys: the parser once compared every key with every other one (80,000 keys took
 * 27 s, so this size would take about 11 minutes); sorted, both parses take about a second
 * here, far inside this test case's 120 s limit. */
START_TEST(st_parser_is_not_quadratic)
{
    enum { N = 400000 };
    size_t len;
    char *h = big_header(N, false, &len);
    RtStFile f = {0};
    RtError e = {0};
    ck_assert_msg(rt_st_parse_header(&f, h, len, 4 * (size_t)N, &e), "%s", e.msg);
    ck_assert_int_eq(f.n, N);
    const RtStTensor *t = rt_st_find(&f, "t0123456");
    ck_assert(t && t->offset == 4 * 123456);
    ck_assert_ptr_null(rt_st_find(&f, "t9999999"));
    rt_st_close(&f);
    free(h);
    h = big_header(N, true, &len); /* the last key repeats the first */
    e = (RtError){0};
    ck_assert(!rt_st_parse_header(&f, h, len, 4 * (size_t)N, &e));
    ck_assert_msg(strstr(e.msg, "key 't0000000' appears twice"), "%s", e.msg);
    rt_st_close(&f);
    free(h);
}
END_TEST

START_TEST(st_open_refuses_fifo_without_blocking)
{
    char *p = file_in("fifo.safetensors");
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    RtStFile f;
    RtError e = {0};
    ck_assert(!rt_st_open(&f, p, &e)); /* before: blocked forever waiting for a writer */
    ck_assert_int_eq(e.code, RT_ERR_IO);
    ck_assert_msg(strstr(e.msg, p) && strstr(e.msg, "a FIFO"), "%s", e.msg);
    e = (RtError){0};
    ck_assert(!rt_st_open(&f, dir, &e));
    ck_assert_msg(strstr(e.msg, "a directory"), "%s", e.msg);
}
END_TEST

START_TEST(checkpoint_exports_merged_weight)
{
    RtCtx *ctx = fake_ctx(&fake_model, 3);
    save_ok(ctx, 7);
    RtStFile f;
    RtError e = {0};
    ck_assert_msg(rt_st_open(&f, file_in("model.safetensors"), &e), "%s", e.msg);
    ck_assert_str_eq(rt_st_meta(&f, "format"), "pt");
    ck_assert_int_eq(f.n, 3); /* bigram, embed, proj: no adapters, no moments */
    ck_assert_ptr_null(rt_st_find(&f, "proj.lora_A"));
    const RtStTensor *w = rt_st_find(&f, "proj.weight");
    ck_assert(w && w->dtype == RT_F32 && w->shape[0] == FAKE_V && w->shape[1] == FAKE_D);
    const float *W = rt_tensor_data(ctx, FK_W), *A = rt_tensor_data(ctx, FK_A);
    const float *B = rt_tensor_data(ctx, FK_B);
    float max_merge = 0;
    for (int i = 0; i < FAKE_V; i++)
        for (int j = 0; j < FAKE_D; j++) {
            double s = 0;
            for (int r = 0; r < FAKE_R; r++)
                s += (double)B[i * FAKE_R + r] * A[r * FAKE_D + j];
            float want = (float)(W[i * FAKE_D + j] + FAKE_SCALE * s), got;
            memcpy(&got, (const char *)w->data + 4 * (i * FAKE_D + j), 4);
            ck_assert_msg(fabsf(got - want) < 1e-5f, "[%d,%d] %g vs %g", i, j, got, want);
            max_merge = fmaxf(max_merge, fabsf(got - W[i * FAKE_D + j]));
        }
    ck_assert(max_merge > 0.01f); /* the merge did something */
    const RtStTensor *big = rt_st_find(&f, "bigram.weight");
    ck_assert(big && memcmp(big->data, rt_tensor_data(ctx, FK_BIGRAM), big->nbytes) == 0);
    rt_st_close(&f);

    ck_assert_msg(rt_st_open(&f, file_in("trainer.safetensors"), &e), "%s", e.msg);
    const RtStTensor *raw = rt_st_find(&f, "proj"); /* unmerged W */
    ck_assert(raw && memcmp(raw->data, W, raw->nbytes) == 0);
    ck_assert_ptr_nonnull(rt_st_find(&f, "opt.v.proj.lora_B"));
    ck_assert_ptr_null(rt_st_find(&f, "act.logits"));
    ck_assert_str_eq(rt_st_meta(&f, "step"), "7");
    ck_assert_str_eq(rt_st_meta(&f, "model_hash"), fake_model.model_hash);
    rt_st_close(&f);

    size_t n;
    char *cfg = (char *)slurp(file_in("config.json"), &n);
    ck_assert_uint_eq(n, strlen(fake_model.config_json));
    ck_assert(memcmp(cfg, fake_model.config_json, n) == 0);
    free(cfg);
    rt_ctx_destroy(ctx);
}
END_TEST

START_TEST(checkpoint_load_restores_state)
{
    RtCtx *a = fake_ctx(&fake_model, 9);
    *(int32_t *)rt_tensor_data(a, FK_ADAM_T) = 1234;
    save_ok(a, 55);
    RtCtx *b = fake_ctx(&fake_model, 1);
    int64_t step;
    uint64_t seed;
    RtError e = {0};
    ck_assert_msg(rt_checkpoint_load(b, dir, &step, &seed, NULL, &e), "%s", e.msg);
    ck_assert_int_eq(step, 55);
    ck_assert_uint_eq(seed, 9);
    for (int p = RT_POOL_PARAMS; p <= RT_POOL_OPTIM; p++)
        ck_assert(memcmp(a->pools[p], b->pools[p], fake_model.pool_bytes[p]) == 0);
    rt_ctx_destroy(a);
    rt_ctx_destroy(b);
}
END_TEST

/* A tensor of one phase (RT_T_PHASE_FULL / RT_T_PHASE_LORA) is saved and loaded only in
 * that phase: the fake model with W's moments marked full-rank-only and A's ReLoRA-only
 * (warm start 10: after 5 steps the state is full-rank, after 20 it is ReLoRA). A tensor
 * the file does not hold keeps its bytes on load (in a compiled model they belong to
 * the other phase's tensors). */
START_TEST(checkpoint_saves_a_phase_tensor_only_in_its_phase)
{
    static RtTensorInfo t[FK_COUNT];
    memcpy(t, fake_model.tensors, sizeof t);
    t[FK_M_W].flags |= RT_T_PHASE_FULL;
    t[FK_V_W].flags |= RT_T_PHASE_FULL;
    t[FK_M_A].flags |= RT_T_PHASE_LORA;
    t[FK_V_A].flags |= RT_T_PHASE_LORA;
    RtModel m = fake_model;
    m.tensors = t;
    const int64_t steps[2] = {5, 20};
    for (int k = 0; k < 2; k++) {
        bool lora = steps[k] > FAKE_WARM;
        RtCtx *a = fake_ctx(&m, 3);
        ((float *)rt_tensor_data(a, FK_M_W))[0] = 1.5f;
        ((float *)rt_tensor_data(a, FK_M_A))[0] = 2.5f;
        save_ok(a, steps[k]);
        RtStFile f;
        RtError e = {0};
        ck_assert_msg(rt_st_open(&f, file_in("trainer.safetensors"), &e), "%s", e.msg);
        ck_assert(!rt_st_find(&f, t[FK_M_W].name) == lora);
        ck_assert(!rt_st_find(&f, t[FK_V_W].name) == lora);
        ck_assert(!rt_st_find(&f, t[FK_M_A].name) == !lora);
        ck_assert(!rt_st_find(&f, t[FK_V_A].name) == !lora);
        ck_assert_ptr_nonnull(rt_st_find(&f, t[FK_M_EMBED].name));
        rt_st_close(&f);
        RtCtx *b = fake_ctx(&m, 1);
        ((float *)rt_tensor_data(b, FK_M_W))[0] = -7.0f;
        ((float *)rt_tensor_data(b, FK_M_A))[0] = -7.0f;
        int64_t step;
        uint64_t seed;
        ck_assert_msg(rt_checkpoint_load(b, dir, &step, &seed, NULL, &e), "%s", e.msg);
        ck_assert_int_eq(step, steps[k]);
        ck_assert(((float *)rt_tensor_data(b, FK_M_W))[0] == (lora ? -7.0f : 1.5f));
        ck_assert(((float *)rt_tensor_data(b, FK_M_A))[0] == (lora ? 2.5f : -7.0f));
        rt_ctx_destroy(a);
        rt_ctx_destroy(b);
    }
}
END_TEST

static RtError load_error(const RtModel *m)
{
    RtCtx *ctx = fake_ctx(m, 1);
    int64_t step;
    uint64_t seed;
    RtError e = {0};
    ck_assert(!rt_checkpoint_load(ctx, dir, &step, &seed, NULL, &e));
    rt_ctx_destroy(ctx);
    return e;
}

START_TEST(checkpoint_rejects_truncated_file)
{
    RtCtx *ctx = fake_ctx(&fake_model, 1);
    save_ok(ctx, 1);
    rt_ctx_destroy(ctx);
    char *p = file_in("trainer.safetensors");
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(truncate(p, st.st_size - 100), 0);
    RtError e = load_error(&fake_model);
    ck_assert_int_eq(e.code, RT_ERR_TRUNCATED);
    ck_assert_msg(strstr(e.msg, "truncated") && strstr(e.msg, dir) &&
                      strstr(e.msg, "/trainer.safetensors"),
                  "%s", e.msg);
    ck_assert_int_eq(truncate(p, 200), 0); /* cut inside the header */
    e = load_error(&fake_model);
    ck_assert_int_eq(e.code, RT_ERR_TRUNCATED);
    ck_assert_int_eq(truncate(p, 5), 0);
    e = load_error(&fake_model);
    ck_assert_int_eq(e.code, RT_ERR_TRUNCATED);
    ck_assert_ptr_nonnull(strstr(e.msg, "8-byte header length"));
}
END_TEST

START_TEST(checkpoint_rejects_corrupted_header)
{
    RtCtx *ctx = fake_ctx(&fake_model, 1);
    save_ok(ctx, 1);
    rt_ctx_destroy(ctx);
    char *p = file_in("trainer.safetensors");
    size_t n;
    unsigned char *b = slurp(p, &n);
    b[8] = '#'; /* the JSON's opening brace */
    spit(p, b, n);
    RtError e = load_error(&fake_model);
    ck_assert_int_eq(e.code, RT_ERR_FORMAT);
    ck_assert_msg(strstr(e.msg, "corrupted header"), "%s", e.msg);
    b[7] = 0x40; /* absurd header length */
    spit(p, b, n);
    e = load_error(&fake_model);
    ck_assert_int_eq(e.code, RT_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "implausible"));
    free(b);
}
END_TEST

/* An export of several parts, transposed or not (rt.h RtExport): joint = [embed, W + s B A]
 * along axis 1, bigram.T = bigram^T; each element compared with the tensors by index. */
START_TEST(checkpoint_exports_joined_and_transposed_parts)
{
    static const RtExportPart joint[2] = {{FK_EMBED, 0}, {FK_W, 0}}, big_t[1] = {{FK_BIGRAM, 1}};
    static const RtExport ex[2] = {{"bigram.T", 0, 1, big_t}, {"joint", 1, 2, joint}};
    RtModel m = fake_model;
    m.exports = ex;
    m.n_exports = 2;
    m.config_json = NULL;
    m.export_note = "no family computes it";
    RtError e = {0};
    ck_assert_msg(rt_model_validate(&m, &e), "%s", e.msg);
    RtCtx *ctx = fake_ctx(&m, 3);
    save_ok(ctx, 7);
    RtStFile f;
    ck_assert_msg(rt_st_open(&f, file_in("model.safetensors"), &e), "%s", e.msg);
    ck_assert_int_eq(f.n, 2);
    ck_assert_str_eq(rt_st_meta(&f, "relorac_export_note"), "no family computes it");
    const RtStTensor *j = rt_st_find(&f, "joint"), *bt = rt_st_find(&f, "bigram.T");
    ck_assert(j && j->rank == 2 && j->shape[0] == FAKE_V && j->shape[1] == 2 * FAKE_D);
    ck_assert(bt && bt->rank == 2 && bt->shape[0] == FAKE_V && bt->shape[1] == FAKE_V);
    const float *emb = rt_tensor_data(ctx, FK_EMBED), *W = rt_tensor_data(ctx, FK_W);
    const float *A = rt_tensor_data(ctx, FK_A), *B = rt_tensor_data(ctx, FK_B);
    const float *big = rt_tensor_data(ctx, FK_BIGRAM);
    const float *jd = j->data, *btd = bt->data;
    for (int r = 0; r < FAKE_V; r++)
        for (int c = 0; c < 2 * FAKE_D; c++) {
            double want;
            if (c < FAKE_D) {
                want = emb[r * FAKE_D + c];
            } else {
                double s = 0;
                for (int k = 0; k < FAKE_R; k++)
                    s += (double)B[r * FAKE_R + k] * A[k * FAKE_D + (c - FAKE_D)];
                want = W[r * FAKE_D + (c - FAKE_D)] + FAKE_SCALE * s;
            }
            ck_assert_msg(fabs(jd[r * 2 * FAKE_D + c] - want) < 1e-5, "joint[%d,%d] %g vs %g", r, c,
                          jd[r * 2 * FAKE_D + c], want);
        }
    for (int r = 0; r < FAKE_V; r++)
        for (int c = 0; c < FAKE_V; c++)
            ck_assert(btd[r * FAKE_V + c] == big[c * FAKE_V + r]);
    rt_st_close(&f);
    rt_ctx_destroy(ctx);
}
END_TEST

START_TEST(checkpoint_rejects_wrong_shape)
{
    RtCtx *ctx = fake_ctx(&fake_model, 1);
    save_ok(ctx, 1);
    rt_ctx_destroy(ctx);
    RtTensorInfo t[FK_COUNT];
    memcpy(t, tensors, sizeof t);
    t[FK_M_EMBED].shape[1] = 8; /* still fits its pool slot */
    RtModel m = fake_model;
    m.tensors = t;
    RtError e = load_error(&m);
    ck_assert_int_eq(e.code, RT_ERR_MISMATCH);
    ck_assert_msg(strstr(e.msg, "tensor 'opt.m.embed' is F32 [256, 16] in the checkpoint, the "
                                "model expects F32 [256, 8]"),
                  "%s", e.msg);
}
END_TEST

START_TEST(checkpoint_rejects_missing_tensor)
{
    RtCtx *ctx = fake_ctx(&fake_model, 1);
    save_ok(ctx, 1);
    rt_ctx_destroy(ctx);
    RtTensorInfo t[FK_COUNT];
    memcpy(t, tensors, sizeof t);
    t[FK_EMBED].name = "embed2";
    RtModel m = fake_model;
    m.tensors = t;
    RtError e = load_error(&m);
    ck_assert_int_eq(e.code, RT_ERR_MISSING);
    ck_assert_msg(strstr(e.msg, "tensor 'embed2' is missing"), "%s", e.msg);
}
END_TEST

START_TEST(checkpoint_rejects_other_model)
{
    RtCtx *ctx = fake_ctx(&fake_model, 1);
    save_ok(ctx, 1);
    rt_ctx_destroy(ctx);
    RtModel m = fake_model;
    m.name = "other";
    m.model_hash = "other-0002";
    RtError e = load_error(&m);
    ck_assert_int_eq(e.code, RT_ERR_OTHER_MODEL);
    ck_assert_msg(strstr(e.msg, "another model: 'fake-bigram' (model_hash fake-bigram-0001)"),
                  "%s", e.msg);
    /* no checkpoint at all */
    ck_assert_int_eq(unlink(file_in("latest")), 0);
    ck_assert_int_eq(unlink(file_in("trainer.safetensors")), 0);
    e = load_error(&fake_model);
    ck_assert_int_eq(e.code, RT_ERR_MISSING);
}
END_TEST

/* The schedule in a checkpoint's metadata is read strictly: an unknown kind or a number
 * that is not finite is a format error naming the key (a NaN was read, and a resume then
 * said the schedule differed from the command line's). */
START_TEST(checkpoint_rejects_invalid_schedule_metadata)
{
    static const struct {
        int kind;
        double lr;
        const char *key;
    } bad[] = {{7, 0.01, "'schedule.kind'"}, {RT_SCHED_RELORA, NAN, "'schedule.lr'"},
               {RT_SCHED_RELORA, INFINITY, "'schedule.lr'"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        RtCtx *ctx = fake_ctx(&fake_model, 1);
        RtRunInfo run = {0};
        run.schedule = fake_model.schedule;
        run.schedule.kind = bad[i].kind;
        run.schedule.lr = bad[i].lr;
        RtError e = {0};
        ck_assert_msg(rt_checkpoint_save(ctx, dir, 3, &run, NULL, &e), "%s", e.msg);
        RtRunInfo back;
        int64_t step;
        uint64_t seed;
        e = (RtError){0};
        ck_assert(!rt_checkpoint_load(ctx, dir, &step, &seed, &back, &e));
        ck_assert_int_eq(e.code, RT_ERR_FORMAT);
        ck_assert_msg(strstr(e.msg, "metadata lacks a valid") && strstr(e.msg, bad[i].key), "%s", e.msg);
        rt_ctx_destroy(ctx);
    }
    /* the same file with a valid schedule loads, and the schedule round-trips */
    RtCtx *ctx = fake_ctx(&fake_model, 1);
    RtRunInfo run = {0}, back;
    run.schedule = fake_model.schedule;
    run.schedule.lr = 0.1 + 0.2; /* not a short decimal: %.17g must round-trip it */
    RtError e = {0};
    ck_assert_msg(rt_checkpoint_save(ctx, dir, 3, &run, NULL, &e), "%s", e.msg);
    int64_t step;
    uint64_t seed;
    ck_assert_msg(rt_checkpoint_load(ctx, dir, &step, &seed, &back, &e), "%s", e.msg);
    ck_assert(back.schedule.lr == 0.1 + 0.2);
    ck_assert_int_eq(back.schedule.kind, fake_model.schedule.kind);
    /* a step past the recorded horizon (a file edited by hand) is refused: it used to
     * resume as "nothing to do"; the horizon itself is a valid last checkpoint */
    run.schedule.steps = 40;
    ck_assert_msg(rt_checkpoint_save(ctx, dir, 40, &run, NULL, &e), "%s", e.msg);
    ck_assert_msg(rt_checkpoint_load(ctx, dir, &step, &seed, &back, &e), "%s", e.msg);
    ck_assert_int_eq(step, 40);
    ck_assert_msg(rt_checkpoint_save(ctx, dir, 41, &run, NULL, &e), "%s", e.msg);
    ck_assert(!rt_checkpoint_load(ctx, dir, &step, &seed, &back, &e));
    ck_assert_int_eq(e.code, RT_ERR_FORMAT);
    ck_assert_msg(strstr(e.msg, "metadata step 41 is outside the schedule it records, 0..40 steps"), "%s", e.msg);
    rt_ctx_destroy(ctx);
}
END_TEST

/* Fails unless dir's only checkpoint directory is the one `latest` names and no temporary
 * name is left. */
static void assert_no_leftovers(const char *d)
{
    char latest[256], target[256];
    snprintf(latest, sizeof latest, "%s/latest", d);
    ssize_t n = readlink(latest, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    DIR *dd = opendir(d);
    ck_assert_ptr_nonnull(dd);
    for (struct dirent *en; (en = readdir(dd));) {
        size_t len = strlen(en->d_name);
        ck_assert_msg(len < 4 || strcmp(en->d_name + len - 4, ".tmp") != 0, "%s/%s left", d,
                      en->d_name);
        ck_assert_msg(strncmp(en->d_name, "ckpt-", 5) != 0 || strcmp(en->d_name, target) == 0,
                      "%s/%s left beside latest -> %s", d, en->d_name, target);
    }
    closedir(dd);
}

/* A write hook that lets `budget` bytes through, then sends writes to /dev/full. */
typedef struct FullDisk {
    long budget;
    int devfull;
} FullDisk;

static ssize_t full_write(void *user, int fd, const void *buf, size_t n)
{
    FullDisk *d = user;
    if (d->budget <= 0)
        return write(d->devfull, buf, n); /* the real ENOSPC */
    size_t k = n < (size_t)d->budget ? n : (size_t)d->budget;
    d->budget -= (long)k;
    return write(fd, buf, k);
}

START_TEST(checkpoint_full_disk_keeps_previous)
{
    RtCtx *ctx = fake_ctx(&fake_model, 1);
    save_ok(ctx, 10);
    const char *names[] = {"model.safetensors", "trainer.safetensors", "config.json"};
    unsigned char *before[3];
    size_t len[3];
    for (int i = 0; i < 3; i++)
        before[i] = slurp(file_in(names[i]), &len[i]);
    float *big = rt_tensor_data(ctx, FK_BIGRAM);
    big[0] += 1.0f; /* the new checkpoint would differ */
    /* fail inside the first file, then inside the last one */
    long budgets[] = {1000, (long)len[0] + (long)len[2] + 5000};
    for (int k = 0; k < 2; k++) {
        FullDisk d = {budgets[k], open("/dev/full", O_WRONLY)};
        ck_assert_int_ge(d.devfull, 0);
        RtIo io = {full_write, NULL, &d};
        RtError e = {0};
        ck_assert(!rt_checkpoint_save(ctx, dir, 20, NULL, &io, &e));
        close(d.devfull);
        ck_assert_int_eq(e.code, RT_ERR_NOSPC);
        ck_assert_msg(strstr(e.msg, "No space left on device"), "%s", e.msg);
        ck_assert_msg(strstr(e.msg, "previous checkpoint in") && strstr(e.msg, "unchanged"),
                      "%s", e.msg);
        for (int i = 0; i < 3; i++) {
            size_t n;
            unsigned char *now = slurp(file_in(names[i]), &n);
            ck_assert_uint_eq(n, len[i]);
            ck_assert_msg(memcmp(now, before[i], n) == 0, "%s changed", names[i]);
            free(now);
        }
        assert_no_leftovers(dir);
    }
    for (int i = 0; i < 3; i++)
        free(before[i]);
    rt_ctx_destroy(ctx);
}
END_TEST

/* Counts the fault hook's calls (the steps of a save) and fails call number fail_at. */
typedef struct Faults {
    int calls, fail_at, err;
    unsigned steps_seen; /* bit per enum RtIoStep */
    int failed_step;
} Faults;

static int fault_at(void *user, int step, const char *path)
{
    Faults *f = user;
    (void)path;
    f->calls++;
    f->steps_seen |= 1u << step;
    if (f->calls != f->fail_at)
        return 0;
    f->failed_step = step;
    return f->err;
}

/* The three files of a checkpoint, as bytes. */
typedef struct Files {
    unsigned char *b[3];
    size_t n[3];
} Files;

static const char *const ck_names[3] = {"model.safetensors", "config.json", "trainer.safetensors"};

static Files read_files(const char *d)
{
    Files f;
    for (int i = 0; i < 3; i++) {
        char p[320];
        snprintf(p, sizeof p, "%s/%s", d, ck_names[i]);
        f.b[i] = slurp(p, &f.n[i]);
    }
    return f;
}

static void free_files(Files *f)
{
    for (int i = 0; i < 3; i++)
        free(f->b[i]);
}

/* Which reference file i at path equals: bit 1 old, bit 2 new (both for config.json, which
 * does not change), 4 for a missing file, 0 for neither. */
static int version_of(const char *path, int i, const Files *old, const Files *new)
{
    if (access(path, F_OK) != 0)
        return 4;
    size_t n;
    unsigned char *b = slurp(path, &n);
    int v = (n == old->n[i] && memcmp(b, old->b[i], n) == 0 ? 1 : 0) |
            (n == new->n[i] && memcmp(b, new->b[i], n) == 0 ? 2 : 0);
    free(b);
    return v;
}

enum { SC_EMPTY, SC_CHECKPOINT, SC_OLD_LAYOUT };

/* A directory in the given starting state: nothing, a checkpoint of step 10, or the three
 * plain files an older trainer wrote. */
static void prepare(const char *d, int scenario, const Files *old)
{
    ck_assert_int_eq(mkdir(d, 0755), 0);
    if (scenario == SC_CHECKPOINT) {
        RtCtx *ctx = fake_ctx(&fake_model, 1);
        RtError e = {0};
        ck_assert_msg(rt_checkpoint_save(ctx, d, 10, NULL, NULL, &e), "%s", e.msg);
        rt_ctx_destroy(ctx);
    } else if (scenario == SC_OLD_LAYOUT) {
        for (int i = 0; i < 3; i++) {
            char p[320];
            snprintf(p, sizeof p, "%s/%s", d, ck_names[i]);
            spit(p, old->b[i], old->n[i]);
        }
    }
}

/* Every step of a save (creating the directory and each file, writing, syncing, closing,
 * the symlink and rename that commit, the directory syncs, the links, the clean-up) made to
 * fail in turn, from each starting state. After each failure the checkpoint resume reads
 * is whole (all old or all new), the message says which, and nothing temporary is left. */
START_TEST(checkpoint_every_failing_step_leaves_one_whole_checkpoint)
{
    char ref_old[128], ref_new[128];
    snprintf(ref_old, sizeof ref_old, "%s/ref-old", dir);
    snprintf(ref_new, sizeof ref_new, "%s/ref-new", dir);
    RtCtx *ctx = fake_ctx(&fake_model, 1);
    RtError e = {0};
    ck_assert_msg(rt_checkpoint_save(ctx, ref_old, 10, NULL, NULL, &e), "%s", e.msg);
    ((float *)rt_tensor_data(ctx, FK_BIGRAM))[0] += 1.0f; /* the new state differs */
    ck_assert_msg(rt_checkpoint_save(ctx, ref_new, 20, NULL, NULL, &e), "%s", e.msg);
    Files old = read_files(ref_old), new = read_files(ref_new);
    unsigned all_seen = 0;
    for (int sc = SC_EMPTY; sc <= SC_OLD_LAYOUT; sc++) {
        char d[160];
        snprintf(d, sizeof d, "%s/count%d", dir, sc);
        prepare(d, sc, &old);
        Faults count = {0};
        RtIo io = {NULL, fault_at, &count};
        ck_assert_msg(rt_checkpoint_save(ctx, d, 20, NULL, &io, &e), "%s", e.msg);
        all_seen |= count.steps_seen;
        ck_assert_int_ge(count.calls, 8);
        for (int k = 1; k <= count.calls; k++) {
            snprintf(d, sizeof d, "%s/s%d-%d", dir, sc, k);
            prepare(d, sc, &old);
            Faults f = {.fail_at = k, .err = k % 2 ? EIO : ENOSPC};
            io.user = &f;
            e = (RtError){0};
            bool saved = rt_checkpoint_save(ctx, d, 20, NULL, &io, &e);
            /* what resume reads: latest/ when it exists, else the plain files */
            char base[200], p[320];
            snprintf(p, sizeof p, "%s/latest", d);
            snprintf(base, sizeof base, "%s%s", d, access(p, F_OK) == 0 ? "/latest" : "");
            int v[3], all = 7;
            for (int i = 0; i < 3; i++) {
                snprintf(p, sizeof p, "%s/%s", base, ck_names[i]);
                v[i] = version_of(p, i, &old, &new);
                all &= v[i];
            }
            ck_assert_msg(all == 1 || all == 2 || all == 4,
                          "scenario %d, step %d (kind %d) failed: versions %d %d %d: %s", sc, k,
                          f.failed_step, v[0], v[1], v[2], e.msg);
            v[0] = all == 4 ? 0 : all; /* 0 none, 1 old, 2 new */
            if (sc != SC_EMPTY)
                ck_assert_msg(v[0] > 0, "scenario %d step %d: no checkpoint left", sc, k);
            if (saved) { /* only the clean-up may fail without failing the save */
                ck_assert_int_eq(f.failed_step, RT_IO_REMOVE);
                ck_assert_int_eq(v[0], 2);
            } else if (v[0] == 2) {
                ck_assert_msg(strstr(e.msg, "checkpoint of step 20 is in place"), "%s", e.msg);
            } else {
                ck_assert_msg(strstr(e.msg, "checkpoint of step 20 was not written") &&
                                  strstr(e.msg, v[0] ? "is unchanged" : "no checkpoint in"),
                              "scenario %d step %d: %s", sc, k, e.msg);
                assert_no_leftovers(d);
            }
            ck_assert_msg(strstr(e.msg, k % 2 ? "Input/output error" : "No space left") ||
                              saved,
                          "%s", e.msg);
            /* and resume agrees */
            RtCtx *r = fake_ctx(&fake_model, 5);
            int64_t step = -1;
            uint64_t seed;
            RtError le = {0};
            bool loaded = rt_checkpoint_load(r, d, &step, &seed, NULL, &le);
            ck_assert_int_eq(loaded, v[0] > 0);
            if (loaded)
                ck_assert_int_eq(step, v[0] == 2 ? 20 : 10);
            rt_ctx_destroy(r);
            /* the plain files of an old directory are each whole, old or new */
            for (int i = 0; sc == SC_OLD_LAYOUT && i < 3; i++) {
                snprintf(p, sizeof p, "%s/%s", d, ck_names[i]);
                ck_assert_int_gt(version_of(p, i, &old, &new) & 3, 0);
            }
            /* a later save succeeds and clears what is left */
            ck_assert_msg(rt_checkpoint_save(ctx, d, 20, NULL, NULL, &le), "%s", le.msg);
            assert_no_leftovers(d);
            Files after = read_files(d); /* through the top-level links */
            for (int i = 0; i < 3; i++)
                ck_assert(after.n[i] == new.n[i] && memcmp(after.b[i], new.b[i], new.n[i]) == 0);
            free_files(&after);
        }
    }
    for (int st = RT_IO_MKDIR; st <= RT_IO_REMOVE; st++)
        ck_assert_msg(all_seen & (1u << st), "step kind %d never ran", st);
    free_files(&old);
    free_files(&new);
    rt_ctx_destroy(ctx);
}
END_TEST

/* A NaN or infinity anywhere in the state abandons the save; the message names the tensor
 * and the step, and the previous checkpoint stays. */
START_TEST(checkpoint_refuses_nonfinite_tensors)
{
    RtCtx *ctx = fake_ctx(&fake_model, 1);
    save_ok(ctx, 10);
    Files before = read_files(dir);
    static const struct {
        int tensor;
        float value;
        const char *needle;
    } cases[] = {
        {FK_M_EMBED, NAN, "tensor 'opt.m.embed' holds NaN at element 3"}, /* trainer file only */
        {FK_W, INFINITY, "tensor 'proj.weight' holds +inf at element 3"}, /* merged export */
        {FK_A, -INFINITY, "holds -inf at element 3"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        float *t = rt_tensor_data(ctx, cases[c].tensor), keep = t[3];
        t[3] = cases[c].value;
        RtError e = {0};
        ck_assert(!rt_checkpoint_save(ctx, dir, 20, NULL, NULL, &e));
        t[3] = keep;
        ck_assert_int_eq(e.code, RT_ERR_NONFINITE);
        ck_assert_msg(strstr(e.msg, cases[c].needle) &&
                          strstr(e.msg, "checkpoint of step 20 was not written") &&
                          strstr(e.msg, "unchanged"),
                      "%s", e.msg);
        Files now = read_files(dir);
        for (int i = 0; i < 3; i++)
            ck_assert(now.n[i] == before.n[i] && memcmp(now.b[i], before.b[i], now.n[i]) == 0);
        free_files(&now);
        assert_no_leftovers(dir);
    }
    free_files(&before);
    rt_ctx_destroy(ctx);
}
END_TEST

Suite *checkpoint_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, st_round_trips_sorted_and_aligned);
    tcase_add_test(tc, st_parser_rejects_malformed_headers);
    tcase_add_test(tc, st_open_refuses_fifo_without_blocking);
    tcase_add_test(tc, checkpoint_exports_merged_weight);
    tcase_add_test(tc, checkpoint_exports_joined_and_transposed_parts);
    tcase_add_test(tc, checkpoint_load_restores_state);
    tcase_add_test(tc, checkpoint_saves_a_phase_tensor_only_in_its_phase);
    tcase_add_test(tc, checkpoint_rejects_truncated_file);
    tcase_add_test(tc, checkpoint_rejects_corrupted_header);
    tcase_add_test(tc, checkpoint_rejects_wrong_shape);
    tcase_add_test(tc, checkpoint_rejects_missing_tensor);
    tcase_add_test(tc, checkpoint_rejects_other_model);
    tcase_add_test(tc, checkpoint_rejects_invalid_schedule_metadata);
    tcase_add_test(tc, checkpoint_full_disk_keeps_previous);
    tcase_add_test(tc, checkpoint_every_failing_step_leaves_one_whole_checkpoint);
    tcase_add_test(tc, checkpoint_refuses_nonfinite_tensors);
    suite_add_tcase(s, tc);
    TCase *big = tcase_create("big-header");
    tcase_set_timeout(big, 120);
    tcase_add_test(big, st_parser_is_not_quadratic);
    suite_add_tcase(s, big);
    return s;
}
