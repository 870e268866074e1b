/* --init-from (runtime/hfimport.c): export then import is the identity bit for bit,
 * whatever the export table says (joined, transposed, prefixed names); F32, BF16 and F16
 * are read exactly; a sharded checkpoint is read through its index; every config.json
 * mismatch is named with both values; missing, misshapen and non-finite tensors are
 * refused and left-over ones counted. Expected values are written by hand (half and
 * bfloat16 bit patterns) or are the exporting model's own tensors. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "rt_internal.h"

#include "fake_model.c"

static char dir[64], dir2[80];

static void setup(void)
{
    strcpy(dir, "/tmp/rt_import_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(dir2, sizeof dir2, "%s/b", dir);
    ck_assert_int_eq(mkdir(dir2, 0755), 0);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *in(const char *d, const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", d, name);
    return buf[k];
}

static void spit(const char *p, const void *b, size_t n)
{
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
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

/* A context of m with non-zero adapters, so that the merged export differs from W. */
static RtCtx *trained(const RtModel *m, uint64_t seed)
{
    RtCtx *ctx;
    RtError e = {0};
    ck_assert_msg(rt_ctx_create(&ctx, m, 2, seed, &e), "%s", e.msg);
    rt_init(ctx);
    float *b = rt_tensor_data(ctx, FK_B);
    for (int i = 0; i < FAKE_V * FAKE_R; i++)
        b[i] = rt_rng_normal(seed, 77, (uint64_t)i);
    return ctx;
}

static RtCtx *fresh(const RtModel *m, uint64_t seed)
{
    RtCtx *ctx;
    RtError e = {0};
    ck_assert_msg(rt_ctx_create(&ctx, m, 2, seed, &e), "%s", e.msg);
    rt_init(ctx);
    return ctx;
}

static void save_to(RtCtx *ctx, const char *d, int64_t step)
{
    RtError e = {0};
    ck_assert_msg(rt_checkpoint_save(ctx, d, step, NULL, NULL, &e), "%s", e.msg);
}

static RtError import_error(RtCtx *ctx, const char *d)
{
    RtImportInfo info;
    RtError e = {0};
    ck_assert_msg(!rt_hf_import(ctx, d, &info, &e), "import of %s succeeded", d);
    return e;
}

static void import_ok(RtCtx *ctx, const char *d, RtImportInfo *info)
{
    RtError e = {0};
    ck_assert_msg(rt_hf_import(ctx, d, info, &e), "%s", e.msg);
}

/* Writes one safetensors file of the given entries. */
static void write_st(const char *p, const RtStEntry *t, int n)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    RtError e = {0};
    ck_assert_msg(rt_st_write_fd(fd, NULL, p, t, n, NULL, 0, &e), "%s", e.msg);
    close(fd);
}

/* Export from a trained model, import into a fresh one with another seed, export again:
 * the two model.safetensors are the same bytes but for the step in the metadata, and
 * the imported W is the first model's merged W + s B A. */
static void check_round_trip(const RtModel *m)
{
    RtCtx *a = trained(m, 3);
    save_to(a, dir, 5);
    RtCtx *b = fresh(m, 11);
    RtImportInfo info;
    import_ok(b, dir, &info);
    ck_assert_int_eq(info.n_read, m->n_exports);
    ck_assert_int_eq(info.n_unused, 0);
    ck_assert_str_eq(info.dtypes, "F32");
    save_to(b, dir2, 5);
    size_t n1, n2;
    unsigned char *x = slurp(in(dir, "model.safetensors"), &n1), *y = slurp(in(dir2, "model.safetensors"), &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_msg(memcmp(x, y, n1) == 0, "the re-exported model.safetensors differs");
    free(x);
    free(y);
    float *merged = malloc(sizeof(float) * FAKE_V * FAKE_D);
    ck_assert(rt_export_merged(a, FK_W, merged));
    ck_assert(memcmp(rt_tensor_data(b, FK_W), merged, sizeof(float) * FAKE_V * FAKE_D) == 0);
    free(merged);
    ck_assert(memcmp(rt_tensor_data(b, FK_BIGRAM), rt_tensor_data(a, FK_BIGRAM), sizeof(float) * FAKE_V * FAKE_V) == 0);
    /* the adapters and the moments are b's own: B = 0, A from b's seed */
    const float *bb = rt_tensor_data(b, FK_B);
    for (int i = 0; i < FAKE_V * FAKE_R; i++)
        ck_assert(bb[i] == 0.0f);
    ck_assert(memcmp(rt_tensor_data(b, FK_A), rt_tensor_data(a, FK_A), sizeof(float) * FAKE_R * FAKE_D) != 0);
    rt_ctx_destroy(a);
    rt_ctx_destroy(b);
}

START_TEST(import_round_trips_relorac_names)
{
    check_round_trip(&fake_model);
}
END_TEST

/* GPT-2's kind of table, under a family prefix: joint = [embed, W + s B A] along axis 1
 * ([V, 2D]), and bigram transposed. */
static const RtExportPart joined[2] = {{FK_EMBED, 0}, {FK_W, 0}}, big_t[1] = {{FK_BIGRAM, 1}};
static const RtExport gpt_like[2] = {{"m.bigram.T", 0, 1, big_t}, {"m.joint", 1, 2, joined}};

static RtModel gpt_like_model(void)
{
    RtModel m = fake_model;
    m.exports = gpt_like;
    m.n_exports = 2;
    m.hf_prefix = "m.";
    return m;
}

START_TEST(import_round_trips_joined_and_transposed_exports)
{
    RtModel m = gpt_like_model();
    RtError e = {0};
    ck_assert_msg(rt_model_validate(&m, &e), "%s", e.msg);
    check_round_trip(&m);
}
END_TEST

/* A checkpoint saved without the family prefix ("bigram.T" for "m.bigram.T") is found. */
START_TEST(import_finds_names_without_the_family_prefix)
{
    RtModel m = gpt_like_model();
    RtCtx *a = trained(&m, 3);
    float *bt = malloc(sizeof(float) * FAKE_V * FAKE_V), *joint = malloc(sizeof(float) * FAKE_V * 2 * FAKE_D);
    const float *big = rt_tensor_data(a, FK_BIGRAM), *emb = rt_tensor_data(a, FK_EMBED), *w = rt_tensor_data(a, FK_W);
    for (int r = 0; r < FAKE_V; r++)
        for (int c = 0; c < FAKE_V; c++)
            bt[r * FAKE_V + c] = big[c * FAKE_V + r];
    for (int r = 0; r < FAKE_V; r++)
        for (int c = 0; c < 2 * FAKE_D; c++)
            joint[r * 2 * FAKE_D + c] = c < FAKE_D ? emb[r * FAKE_D + c] : w[r * FAKE_D + c - FAKE_D];
    RtStEntry t[3] = {{"bigram.T", RT_F32, 2, {FAKE_V, FAKE_V}, bt, NULL, NULL, 0},
                      {"joint", RT_F32, 2, {FAKE_V, 2 * FAKE_D}, joint, NULL, NULL, 0},
                      {"h.0.attn.bias", RT_F32, 1, {4}, bt, NULL, NULL, 0}}; /* a buffer, not a weight */
    write_st(in(dir, "model.safetensors"), t, 3);
    RtCtx *b = fresh(&m, 9);
    RtImportInfo info;
    import_ok(b, dir, &info);
    ck_assert(memcmp(rt_tensor_data(b, FK_BIGRAM), big, sizeof(float) * FAKE_V * FAKE_V) == 0);
    ck_assert(memcmp(rt_tensor_data(b, FK_EMBED), emb, sizeof(float) * FAKE_V * FAKE_D) == 0);
    ck_assert(memcmp(rt_tensor_data(b, FK_W), w, sizeof(float) * FAKE_V * FAKE_D) == 0);
    ck_assert_int_eq(info.n_unused, 1);
    ck_assert_str_eq(info.unused, "h.0.attn.bias");
    free(bt);
    free(joint);
    rt_ctx_destroy(a);
    rt_ctx_destroy(b);
}
END_TEST

/* Half and bfloat16 values, by their bit patterns (IEEE 754 binary16; bfloat16 = the top
 * half of a binary32), land exactly in the f32 tensors. */
START_TEST(import_converts_f16_and_bf16_exactly)
{
    static const uint16_t f16[6] = {0x3C00, 0xC000, 0x0001, 0x7BFF, 0x3555, 0x8000};
    static const float f16_want[6] = {1.0f, -2.0f, 0x1p-24f, 65504.0f, 0.333251953125f, -0.0f};
    static const uint16_t bf16[4] = {0x3F80, 0x4049, 0xBE80, 0x0000};
    static const float bf16_want[4] = {1.0f, 3.140625f, -0.25f, 0.0f};
    uint16_t *big = calloc(FAKE_V * FAKE_V, 2), *emb = calloc(FAKE_V * FAKE_D, 2);
    float *w = calloc(FAKE_V * FAKE_D, 4);
    for (int i = 0; i < FAKE_V * FAKE_V; i++)
        big[i] = f16[i % 6];
    for (int i = 0; i < FAKE_V * FAKE_D; i++)
        emb[i] = bf16[i % 4];
    RtStEntry t[3] = {{"bigram.weight", RT_ST_F16, 2, {FAKE_V, FAKE_V}, big, NULL, NULL, 0},
                      {"embed.weight", RT_BF16, 2, {FAKE_V, FAKE_D}, emb, NULL, NULL, 0},
                      {"proj.weight", RT_F32, 2, {FAKE_V, FAKE_D}, w, NULL, NULL, 0}};
    write_st(in(dir, "model.safetensors"), t, 3);
    RtCtx *ctx = fresh(&fake_model, 1);
    RtImportInfo info;
    import_ok(ctx, dir, &info);
    ck_assert_str_eq(info.dtypes, "F16, BF16, F32");
    const float *gb = rt_tensor_data(ctx, FK_BIGRAM), *ge = rt_tensor_data(ctx, FK_EMBED);
    for (int i = 0; i < FAKE_V * FAKE_V; i++)
        ck_assert_msg(memcmp(&gb[i], &f16_want[i % 6], 4) == 0, "f16 %04x: %a", f16[i % 6], gb[i]);
    for (int i = 0; i < FAKE_V * FAKE_D; i++)
        ck_assert(ge[i] == bf16_want[i % 4]);
    free(big);
    free(emb);
    free(w);
    rt_ctx_destroy(ctx);
}
END_TEST

/* Two shards and model.safetensors.index.json, as save_pretrained writes them. */
START_TEST(import_reads_shards_through_the_index)
{
    RtCtx *a = trained(&fake_model, 4);
    float *merged = malloc(sizeof(float) * FAKE_V * FAKE_D);
    ck_assert(rt_export_merged(a, FK_W, merged));
    RtStEntry s1[2] = {{"bigram.weight", RT_F32, 2, {FAKE_V, FAKE_V}, rt_tensor_data(a, FK_BIGRAM), NULL, NULL, 0},
                       {"proj.weight", RT_F32, 2, {FAKE_V, FAKE_D}, merged, NULL, NULL, 0}};
    RtStEntry s2[1] = {{"embed.weight", RT_F32, 2, {FAKE_V, FAKE_D}, rt_tensor_data(a, FK_EMBED), NULL, NULL, 0}};
    write_st(in(dir, "model-00001-of-00002.safetensors"), s1, 2);
    write_st(in(dir, "model-00002-of-00002.safetensors"), s2, 1);
    const char *index = "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {"
                        "\"bigram.weight\": \"model-00001-of-00002.safetensors\", "
                        "\"embed.weight\": \"model-00002-of-00002.safetensors\", "
                        "\"proj.weight\": \"model-00001-of-00002.safetensors\"}}";
    spit(in(dir, "model.safetensors.index.json"), index, strlen(index));
    RtCtx *b = fresh(&fake_model, 8);
    RtImportInfo info;
    import_ok(b, dir, &info);
    ck_assert_int_eq(info.n_files, 2);
    ck_assert(memcmp(rt_tensor_data(b, FK_EMBED), rt_tensor_data(a, FK_EMBED), sizeof(float) * FAKE_V * FAKE_D) == 0);
    ck_assert(memcmp(rt_tensor_data(b, FK_W), merged, sizeof(float) * FAKE_V * FAKE_D) == 0);
    /* an index that sends a tensor to the wrong shard, and one that escapes the directory */
    const char *wrong = "{\"weight_map\": {\"bigram.weight\": \"model-00002-of-00002.safetensors\", "
                        "\"embed.weight\": \"model-00002-of-00002.safetensors\", "
                        "\"proj.weight\": \"model-00001-of-00002.safetensors\"}}";
    spit(in(dir, "model.safetensors.index.json"), wrong, strlen(wrong));
    RtError e = import_error(b, dir);
    ck_assert_msg(strstr(e.msg, "model-00002-of-00002.safetensors: no tensor 'bigram.weight', which the checkpoint "
                                "index places there"), "%s", e.msg);
    const char *escape = "{\"weight_map\": {\"bigram.weight\": \"../x.safetensors\"}}";
    spit(in(dir, "model.safetensors.index.json"), escape, strlen(escape));
    e = import_error(b, dir);
    ck_assert_msg(strstr(e.msg, "weight_map[\"bigram.weight\"] is not a file name in"), "%s", e.msg);
    free(merged);
    rt_ctx_destroy(a);
    rt_ctx_destroy(b);
}
END_TEST

START_TEST(import_refuses_missing_misshapen_and_nonfinite_tensors)
{
    RtCtx *a = trained(&fake_model, 3);
    float *big = rt_tensor_data(a, FK_BIGRAM), *emb = rt_tensor_data(a, FK_EMBED);
    float *w = calloc(FAKE_V * FAKE_D, sizeof *w);
    RtStEntry t[3] = {{"bigram.weight", RT_F32, 2, {FAKE_V, FAKE_V}, big, NULL, NULL, 0},
                      {"embed.weight", RT_F32, 2, {FAKE_V, FAKE_D}, emb, NULL, NULL, 0},
                      {"proj.weight", RT_F32, 2, {FAKE_V, FAKE_D}, w, NULL, NULL, 0}};
    write_st(in(dir, "model.safetensors"), t, 2);
    RtError e = import_error(a, dir);
    ck_assert_int_eq(e.code, RT_ERR_MISSING);
    ck_assert_msg(strstr(e.msg, "no tensor 'proj.weight' (the model's 'proj')"), "%s", e.msg);
    t[2].shape[1] = 8;
    write_st(in(dir, "model.safetensors"), t, 3);
    e = import_error(a, dir);
    ck_assert_int_eq(e.code, RT_ERR_MISMATCH);
    ck_assert_msg(strstr(e.msg, "tensor 'proj.weight' is [256, 8], the model's is [256, 16]"), "%s", e.msg);
    t[2].shape[1] = FAKE_D;
    float keep = emb[5];
    emb[5] = NAN;
    RtStEntry nan = {"embed.weight", RT_I32, 2, {FAKE_V, FAKE_D}, emb, NULL, NULL, 0};
    t[1] = nan; /* written as I32: the writer does not look at the bits */
    write_st(in(dir, "model.safetensors"), t, 3);
    e = import_error(a, dir);
    ck_assert_msg(strstr(e.msg, "tensor 'embed.weight' is I32; --init-from reads F32, BF16 and F16"), "%s", e.msg);
    emb[5] = keep;
    e = import_error(a, "/nonexistent/dir");
    ck_assert_msg(strstr(e.msg, "--init-from /nonexistent/dir: not a directory"), "%s", e.msg);
    e = import_error(a, dir2);
    ck_assert_msg(strstr(e.msg, "no model.safetensors or model.safetensors.index.json"), "%s", e.msg);
    free(w);
    rt_ctx_destroy(a);
}
END_TEST

START_TEST(import_refuses_nonfinite_weights)
{
    RtCtx *a = trained(&fake_model, 3);
    save_to(a, dir, 1);
    /* poke a NaN into the saved embedding: the file is the export; find the tensor */
    RtStFile f;
    RtError e = {0};
    ck_assert_msg(rt_st_open_header(&f, in(dir, "model.safetensors"), &e), "%s", e.msg);
    const RtStTensor *t = rt_st_find(&f, "embed.weight");
    uint64_t at = f.data_start + t->offset + 4 * 7;
    rt_st_close(&f);
    char target[512];
    ssize_t n = readlink(in(dir, "latest"), target, sizeof target - 1);
    ck_assert_int_gt(n, 0);
    target[n] = '\0';
    char path[700];
    snprintf(path, sizeof path, "%s/%s/model.safetensors", dir, target);
    int fd = open(path, O_WRONLY);
    float v = INFINITY;
    ck_assert_int_eq(pwrite(fd, &v, 4, (off_t)at), 4);
    close(fd);
    e = import_error(a, dir);
    ck_assert_int_eq(e.code, RT_ERR_NONFINITE);
    ck_assert_msg(strstr(e.msg, "tensor 'embed.weight' holds an infinity at element 7"), "%s", e.msg);
    rt_ctx_destroy(a);
}
END_TEST

/* The fake model with config checks as the compiler emits them (frontend/hf.c). */
static const RtHfCheck checks[] = {
    {"model_type", "family", "\"fake-bigram\"", NULL},
    {"vocab_size", "vocab", "256", NULL},
    {"hidden_size", "dim", "16", "16"},
    {"rope_theta|rope_parameters.rope_theta", "rope theta", "500.0", "10000.0"},
    {"tie_word_embeddings", "tied embeddings", "false", "false"},
};

static RtModel checked_model(void)
{
    RtModel m = fake_model;
    m.hf_checks = checks;
    m.n_hf_checks = 5;
    m.config_json = "{\"architectures\": [\"FakeBigram\"], \"model_type\": \"fake-bigram\", \"vocab_size\": 256, "
                    "\"hidden_size\": 16, \"rope_theta\": 500.0, \"tie_word_embeddings\": false}";
    return m;
}

static RtError config_error(RtCtx *ctx, const char *cfg)
{
    spit(in(dir, "config.json"), cfg, strlen(cfg));
    return import_error(ctx, dir);
}

START_TEST(import_checks_config_field_by_field)
{
    RtModel m = checked_model();
    RtCtx *a = trained(&m, 2);
    save_to(a, dir, 1); /* writes the model's own config.json, which matches */
    RtImportInfo info;
    import_ok(a, dir, &info);
    ck_assert_str_eq(info.family, "FakeBigram");
    /* the same values written otherwise: 256.0, 5e2 under transformers 5's key, defaults */
    const char *same = "{\"model_type\": \"fake-bigram\", \"vocab_size\": 256.0, "
                       "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 5e2}, "
                       "\"rope_theta\": null, \"tie_word_embeddings\": false}";
    spit(in(dir, "config.json"), same, strlen(same));
    import_ok(a, dir, &info);
    /* every mismatch, with both values; an absent field as transformers assumes it */
    RtError e = config_error(a, "{\"model_type\": \"fake-bigram\", \"vocab_size\": 300, \"hidden_size\": 16, "
                                "\"tie_word_embeddings\": true}");
    ck_assert_int_eq(e.code, RT_ERR_MISMATCH);
    ck_assert_msg(strstr(e.msg, "config.json does not describe this model (FakeBigram): vocab: vocab_size 300, the "
                                "model's is 256; rope theta: rope_theta 10000 (absent: transformers' default), "
                                "the model's is 500; tied embeddings: tie_word_embeddings true, the model's is false"),
                  "%s", e.msg);
    e = config_error(a, "{\"model_type\": \"fake-bigram\", \"rope_theta\": 500}");
    ck_assert_msg(strstr(e.msg, "vocab: config.json has no vocab_size (the model's is 256)"), "%s", e.msg);
    e = config_error(a, "{\"model_type\": \"gpt2\", \"vocab_size\": 50257}");
    ck_assert_msg(strstr(e.msg, "config.json: model_type \"gpt2\", but this model is exported as FakeBigram "
                                "(model_type \"fake-bigram\")"), "%s", e.msg);
    e = config_error(a, "{\"model_type\": \"fake-bigram\",}");
    ck_assert_int_eq(e.code, RT_ERR_FORMAT);
    ck_assert_msg(strstr(e.msg, "config.json:1:30: malformed JSON: expected a key (a string)"), "%s", e.msg);
    ck_assert_int_eq(unlink(in(dir, "config.json")), 0);
    e = import_error(a, dir);
    ck_assert_msg(strstr(e.msg, "no config.json: this model is exported as FakeBigram"), "%s", e.msg);
    rt_ctx_destroy(a);
}
END_TEST

/* The JSON reader under the import: values, escapes, and what it refuses. */
START_TEST(json_reader_is_strict)
{
    RtJson v;
    RtError e = {0};
    const char *ok = "{\"a\": [1, -2.5e3, true, false, null], \"b\": \"\\u00e9\\ud83d\\ude00\\n\", \"c\": {}}";
    ck_assert_msg(rt_json_parse(&v, ok, strlen(ok), "t", &e), "%s", e.msg);
    const RtJson *a = rt_json_get(&v, "a");
    ck_assert(a && a->kind == RT_JSON_ARRAY && a->n == 5);
    ck_assert(a->items[1].num == -2500.0);
    ck_assert_int_eq(a->items[4].kind, RT_JSON_NULL);
    ck_assert_str_eq(rt_json_get(&v, "b")->str, "\xc3\xa9\xf0\x9f\x98\x80\n");
    rt_json_free(&v);
    static const char *const bad[][2] = {
        {"{\"a\": 1,}", "expected a key"},
        {"[1, 2", "expected ',' or ']'"},
        {"{\"a\": 01}", "leading zero"},
        {"{\"a\": NaN}", "unexpected character"},
        {"\"\\ud800\"", "lone surrogate"},
        {"\"\\u0000\"", "\\u0000"},
        {"{\"k\": 1, \"k\": 2}", "key \"k\" appears twice"},
        {"[] []", "text after the value"},
        {"\"a\tb\"", "control character"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        e = (RtError){0};
        ck_assert_msg(!rt_json_parse(&v, bad[i][0], strlen(bad[i][0]), "t", &e), "accepted %s", bad[i][0]);
        ck_assert_msg(strstr(e.msg, bad[i][1]), "%s: %s", bad[i][0], e.msg);
    }
    char *deep = malloc(2000);
    memset(deep, '[', 1000);
    memset(deep + 1000, ']', 1000);
    e = (RtError){0};
    ck_assert(!rt_json_parse(&v, deep, 2000, "t", &e));
    ck_assert_msg(strstr(e.msg, "nested deeper than 512"), "%s", e.msg);
    free(deep);
}
END_TEST

Suite *hfimport_suite(void)
{
    Suite *s = suite_create("hfimport");
    TCase *tc = tcase_create("hfimport");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, import_round_trips_relorac_names);
    tcase_add_test(tc, import_round_trips_joined_and_transposed_exports);
    tcase_add_test(tc, import_finds_names_without_the_family_prefix);
    tcase_add_test(tc, import_converts_f16_and_bf16_exactly);
    tcase_add_test(tc, import_reads_shards_through_the_index);
    tcase_add_test(tc, import_refuses_missing_misshapen_and_nonfinite_tensors);
    tcase_add_test(tc, import_refuses_nonfinite_weights);
    tcase_add_test(tc, import_checks_config_field_by_field);
    tcase_add_test(tc, json_reader_is_strict);
    suite_add_tcase(s, tc);
    return s;
}
