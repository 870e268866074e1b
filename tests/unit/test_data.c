/* Data loader: text, llm.c .bin files (uint16 and uint32 tokens) and nanoGPT's headerless
 * uint16 files load, every malformed file gives its own error
 * naming the file, and batches are a pure function of (seed, step, row). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt_internal.h"

static char dir[64];
static char path[128];

static void setup(void)
{
    strcpy(dir, "/tmp/rt_data_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *write_file(const char *name, const void *data, size_t n)
{
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    return path;
}

/* An llm.c token file: header {magic, version, count}, then count uint16 tokens. */
static const char *write_bin(const char *name, int32_t magic, int32_t version, int32_t count,
                             const uint16_t *toks, size_t n_written)
{
    size_t bytes = 1024 + 2 * n_written;
    unsigned char *buf = calloc(1, bytes);
    int32_t hdr[3] = {magic, version, count};
    memcpy(buf, hdr, sizeof hdr); /* little-endian host */
    memcpy(buf + 1024, toks, 2 * n_written);
    const char *p = write_file(name, buf, bytes);
    free(buf);
    return p;
}

/* An llm.c LLaMA-3 token file: header {20240801, 7, count}, then count uint32 tokens (the
 * bytes are laid out here by hand, little-endian, as numpy's '<u4' writes them). */
static const char *write_bin32(const char *name, int32_t count, const uint32_t *toks, size_t n)
{
    size_t bytes = 1024 + 4 * n;
    unsigned char *buf = calloc(1, bytes);
    int32_t hdr[3] = {20240801, 7, count};
    memcpy(buf, hdr, sizeof hdr);
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++)
            buf[1024 + 4 * i + (size_t)b] = (unsigned char)(toks[i] >> (8 * b));
    const char *p = write_file(name, buf, bytes);
    free(buf);
    return p;
}

START_TEST(data_loads_text_bytes_as_tokens)
{
    RtData d;
    RtError e = {0};
    const char *p = write_file("a.txt", "hello world", 11);
    ck_assert_msg(rt_data_open(&d, p, RT_DATA_TEXT, 256, 5, &e), "%s", e.msg);
    ck_assert_int_eq(d.n, 11);
    ck_assert_int_eq(rt_data_token(&d, 0), 'h');
    ck_assert_int_eq(rt_data_token(&d, 10), 'd');
    rt_data_close(&d);
}
END_TEST

START_TEST(data_loads_bin_tokens)
{
    uint16_t toks[100];
    for (int i = 0; i < 100; i++)
        toks[i] = (uint16_t)(i * 600);
    RtData d;
    RtError e = {0};
    const char *p = write_bin("t.bin", 20240520, 1, 100, toks, 100);
    ck_assert_msg(rt_data_open(&d, p, RT_DATA_TOKENS, 60000, 10, &e), "%s", e.msg);
    ck_assert_int_eq(d.n, 100);
    ck_assert_int_eq(rt_data_token(&d, 99), 99 * 600);
    rt_data_close(&d);
}
END_TEST

START_TEST(data_loads_uint32_llmc_tokens)
{
    uint32_t toks[50];
    for (int i = 0; i < 50; i++)
        toks[i] = (uint32_t)(i * 2600 + 3); /* up to 127403: beyond uint16 */
    RtData d;
    RtError e = {0};
    const char *p = write_bin32("l3.bin", 50, toks, 50);
    ck_assert_msg(rt_data_open(&d, p, RT_DATA_TOKENS, 128256, 10, &e), "%s", e.msg);
    ck_assert_int_eq(d.n, 50);
    ck_assert_int_eq(d.width, 4);
    ck_assert_int_eq(rt_data_token(&d, 49), 49 * 2600 + 3);
    ck_assert_int_eq(rt_data_token(&d, 1), 2603);
    rt_data_close(&d);
}
END_TEST

/* nanoGPT's prepare.py: np.array(ids, dtype=np.uint16).tofile(f), nothing else. */
START_TEST(data_loads_headerless_nanogpt_tokens)
{
    const unsigned char raw[] = {0x01, 0x00, 0x34, 0x12, 0xff, 0xff, 0x00, 0x01};
    RtData d;
    RtError e = {0};
    const char *p = write_file("ng.bin", raw, sizeof raw);
    ck_assert_msg(rt_data_open(&d, p, RT_DATA_NANOGPT, 65536, 3, &e), "%s", e.msg);
    ck_assert_int_eq(d.n, 4);
    ck_assert_int_eq(rt_data_token(&d, 0), 1);
    ck_assert_int_eq(rt_data_token(&d, 1), 0x1234);
    ck_assert_int_eq(rt_data_token(&d, 2), 65535);
    ck_assert_int_eq(rt_data_token(&d, 3), 256);
    rt_data_close(&d);
}
END_TEST

static void expect_error(const char *p, int kind, int vocab, int64_t min, int code,
                         const char *needle)
{
    RtData d;
    RtError e = {0};
    ck_assert(!rt_data_open(&d, p, kind, vocab, min, &e));
    ck_assert_int_eq(e.code, code);
    ck_assert_msg(strstr(e.msg, needle), "message '%s' lacks '%s'", e.msg, needle);
    ck_assert_msg(strstr(e.msg, p), "message '%s' does not name the file", e.msg);
    ck_assert_ptr_null(d.buf);
}

START_TEST(data_rejects_bad_magic)
{
    uint16_t toks[20] = {0};
    expect_error(write_bin("m.bin", 12345, 1, 20, toks, 20), RT_DATA_TOKENS, 50257, 5,
                 RT_ERR_FORMAT, "bad magic 12345");
}
END_TEST

/* The message names both llm.c formats it expected and the nanoGPT way out. */
START_TEST(data_bad_magic_names_what_was_expected)
{
    const unsigned char raw[2000] = {1, 0, 2, 0};
    expect_error(write_file("ng.bin", raw, sizeof raw), RT_DATA_TOKENS, 50257, 5, RT_ERR_FORMAT,
                 "bad magic 131073: expected an llm.c token file, magic 20240520 version 1 "
                 "(llm.c's GPT-2 format, uint16 tokens) or magic 20240801 version 7 (llm.c's "
                 "LLaMA-3 format, uint32 tokens); a headerless nanoGPT file");
}
END_TEST

START_TEST(data_rejects_bad_version)
{
    uint16_t toks[20] = {0};
    expect_error(write_bin("v.bin", 20240520, 2, 20, toks, 20), RT_DATA_TOKENS, 50257, 5,
                 RT_ERR_FORMAT, "unsupported version 2 after magic 20240520: expected version 1");
    expect_error(write_bin("v7.bin", 20240801, 1, 20, toks, 20), RT_DATA_TOKENS, 50257, 5,
                 RT_ERR_FORMAT, "unsupported version 1 after magic 20240801: expected version 7");
}
END_TEST

START_TEST(data_rejects_truncated_uint32_file)
{
    uint32_t toks[10] = {0};
    /* 10 uint32 tokens written, 20 announced: 1024 + 80 bytes expected */
    expect_error(write_bin32("t32.bin", 20, toks, 10), RT_DATA_TOKENS, 1000, 5, RT_ERR_TRUNCATED,
                 "header says 20 tokens (1104 bytes in llm.c's LLaMA-3 format, uint32 tokens)");
}
END_TEST

START_TEST(data_nanogpt_refuses_llmc_header_and_odd_size)
{
    uint16_t toks[20] = {0};
    expect_error(write_bin("h.bin", 20240520, 1, 20, toks, 20), RT_DATA_NANOGPT, 50257, 5,
                 RT_ERR_FORMAT, "expected a headerless nanoGPT file (uint16 tokens), found the "
                 "header of an llm.c token file (magic 20240520 version 1");
    expect_error(write_file("odd.bin", "abcde", 5), RT_DATA_NANOGPT, 50257, 1, RT_ERR_FORMAT,
                 "5 bytes, an odd number");
}
END_TEST

/* uint16 ids reach 65535: a vocab of 70000 would train rows no token selects. */
START_TEST(data_rejects_vocab_beyond_token_type)
{
    uint16_t toks[20] = {0};
    expect_error(write_bin("g.bin", 20240520, 1, 20, toks, 20), RT_DATA_TOKENS, 70000, 5,
                 RT_ERR_TOKEN, "the model's vocab 70000 is larger than llm.c's GPT-2 format, "
                 "uint16 tokens can hold (ids 0..65535)");
    expect_error(write_file("n.bin", toks, sizeof toks), RT_DATA_NANOGPT, 65537, 5, RT_ERR_TOKEN,
                 "ids from 65536 up never occur");
    RtData d;
    RtError e = {0};
    ck_assert_msg(rt_data_open(&d, write_file("n2.bin", toks, sizeof toks), RT_DATA_NANOGPT, 65536,
                               5, &e), "%s", e.msg);
    rt_data_close(&d);
    uint32_t t32[20] = {0};
    t32[3] = 70001;
    expect_error(write_bin32("l.bin", 20, t32, 20), RT_DATA_TOKENS, 70000, 5, RT_ERR_TOKEN,
                 "token 70001 at index 3 is >= vocab 70000");
}
END_TEST

START_TEST(data_rejects_truncated_bin)
{
    uint16_t toks[20] = {0};
    expect_error(write_bin("t.bin", 20240520, 1, 40, toks, 20), RT_DATA_TOKENS, 50257, 5,
                 RT_ERR_TRUNCATED, "header says 40 tokens");
    expect_error(write_file("h.bin", "abc", 3), RT_DATA_TOKENS, 50257, 5, RT_ERR_TRUNCATED,
                 "1024-byte header");
}
END_TEST

START_TEST(data_rejects_too_short)
{
    expect_error(write_file("s.txt", "abc", 3), RT_DATA_TEXT, 256, 33, RT_ERR_EMPTY,
                 "too short: 3 tokens, need at least 33");
    expect_error(write_file("e.txt", "", 0), RT_DATA_TEXT, 256, 33, RT_ERR_EMPTY, "empty");
}
END_TEST

START_TEST(data_rejects_token_beyond_vocab)
{
    uint16_t toks[20] = {0};
    toks[7] = 500;
    expect_error(write_bin("o.bin", 20240520, 1, 20, toks, 20), RT_DATA_TOKENS, 500, 5,
                 RT_ERR_TOKEN, "token 500 at index 7 is >= vocab 500");
    expect_error(write_file("b.txt", "ab\xff", 3), RT_DATA_TEXT, 128, 2, RT_ERR_TOKEN,
                 "token 255 at index 2");
}
END_TEST

START_TEST(data_rejects_missing_file)
{
    snprintf(path, sizeof path, "%s/nope.txt", dir);
    expect_error(path, RT_DATA_TEXT, 256, 2, RT_ERR_MISSING, "No such file");
}
END_TEST

START_TEST(data_refuses_fifo_and_directory_without_blocking)
{
    snprintf(path, sizeof path, "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    expect_error(path, RT_DATA_TEXT, 256, 2, RT_ERR_IO, "a FIFO"); /* before: hung */
    expect_error(dir, RT_DATA_TEXT, 256, 2, RT_ERR_IO, "a directory");
}
END_TEST

/* The trainer keeps drawing batches from a file that is cut or rewritten under it (with a
 * mapping, a truncated file killed it with SIGBUS). */
START_TEST(data_survives_file_truncated_or_rewritten)
{
    char text[1000];
    for (int i = 0; i < 1000; i++)
        text[i] = (char)('a' + i % 26);
    RtData d;
    RtError e = {0};
    const char *p = write_file("cut.txt", text, sizeof text);
    ck_assert_msg(rt_data_open(&d, p, RT_DATA_TEXT, 128, 9, &e), "%s", e.msg);
    RtSplit s = {&d, 0, d.n};
    int32_t x[4 * 8], y[4 * 8], x2[4 * 8], y2[4 * 8];
    rt_batch_fill(s, 4, 8, 1, RT_STREAM_TRAIN_BATCH, 3, x, y);
    ck_assert_int_eq(truncate(p, 0), 0);
    rt_batch_fill(s, 4, 8, 1, RT_STREAM_TRAIN_BATCH, 3, x2, y2);
    ck_assert_mem_eq(x, x2, sizeof x);
    ck_assert_mem_eq(y, y2, sizeof y);
    memset(text, 0xff, sizeof text); /* tokens beyond the vocab of 128 */
    write_file("cut.txt", text, sizeof text);
    rt_batch_fill(s, 4, 8, 1, RT_STREAM_TRAIN_BATCH, 3, x2, y2);
    ck_assert_mem_eq(x, x2, sizeof x);
    for (int i = 0; i < 4 * 8; i++)
        ck_assert(x2[i] >= 'a' && x2[i] <= 'z');
    rt_data_close(&d);
}
END_TEST

START_TEST(data_batches_are_deterministic_windows)
{
    char text[1000];
    for (int i = 0; i < 1000; i++)
        text[i] = (char)(i % 251);
    RtData d;
    RtError e = {0};
    ck_assert(rt_data_open(&d, write_file("w.txt", text, sizeof text), RT_DATA_TEXT, 256, 9, &e));
    RtSplit s = {&d, 100, 500};
    int32_t x[4 * 8], y[4 * 8], x2[4 * 8], y2[4 * 8];
    rt_batch_fill(s, 4, 8, 42, RT_STREAM_TRAIN_BATCH, 7, x, y);
    rt_batch_fill(s, 4, 8, 42, RT_STREAM_TRAIN_BATCH, 7, x2, y2);
    ck_assert_mem_eq(x, x2, sizeof x);
    ck_assert_mem_eq(y, y2, sizeof y);
    for (int r = 0; r < 4; r++) {
        /* recover the start from the first token: text[i] = i % 251, window inside [100, 600) */
        for (int t = 0; t < 7; t++)
            ck_assert_int_eq(y[r * 8 + t], x[r * 8 + t + 1]);
        uint64_t off = rt_rng_u64(42, RT_STREAM_TRAIN_BATCH, 7 * 4 + (uint64_t)r) % (500 - 8);
        ck_assert_int_eq(x[r * 8], (int)((100 + off) % 251));
        ck_assert_int_eq(y[r * 8 + 7], (int)((100 + off + 8) % 251));
    }
    rt_batch_fill(s, 4, 8, 42, RT_STREAM_TRAIN_BATCH, 8, x2, y2);
    ck_assert(memcmp(x, x2, sizeof x) != 0);
    rt_data_close(&d);
}
END_TEST

Suite *data_suite(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("data");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, data_loads_text_bytes_as_tokens);
    tcase_add_test(tc, data_loads_bin_tokens);
    tcase_add_test(tc, data_loads_uint32_llmc_tokens);
    tcase_add_test(tc, data_loads_headerless_nanogpt_tokens);
    tcase_add_test(tc, data_rejects_bad_magic);
    tcase_add_test(tc, data_bad_magic_names_what_was_expected);
    tcase_add_test(tc, data_rejects_bad_version);
    tcase_add_test(tc, data_rejects_truncated_uint32_file);
    tcase_add_test(tc, data_nanogpt_refuses_llmc_header_and_odd_size);
    tcase_add_test(tc, data_rejects_vocab_beyond_token_type);
    tcase_add_test(tc, data_rejects_truncated_bin);
    tcase_add_test(tc, data_rejects_too_short);
    tcase_add_test(tc, data_rejects_token_beyond_vocab);
    tcase_add_test(tc, data_rejects_missing_file);
    tcase_add_test(tc, data_refuses_fifo_and_directory_without_blocking);
    tcase_add_test(tc, data_survives_file_truncated_or_rewritten);
    tcase_add_test(tc, data_batches_are_deterministic_windows);
    suite_add_tcase(s, tc);
    return s;
}
