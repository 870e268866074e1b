/* Training data: byte-level text files, llm.c token files (uint16 and uint32 tokens) and
 * nanoGPT's headerless uint16 files, read into memory
 * and validated once, and batches drawn from (seed, step, row) with the counter RNG so a
 * resumed run sees exactly the batches the uninterrupted run would have seen.
 * Why a copy and not a mapping: a file truncated under a mapping kills the trainer with
 * SIGBUS, and one rewritten in place could feed it token ids it never validated (>= vocab,
 * an out-of-bounds embedding row). The copy costs the file's size in memory, which the
 * trainer counts in its start-up memory check. */
#include "rt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* llm.c's token files (dev/data/data_common.py, HEADERS_INFO): a header of 256 little-endian
 * int32 {magic, version, token count, 0...}, then the tokens. */
#define BIN_HEADER_BYTES (256 * 4)
static const struct {
    int32_t magic, version;
    int width;           /* bytes per token */
    const char *written; /* what writes it */
} bin_formats[] = {
    {20240520, 1, 2, "llm.c's GPT-2 format, uint16 tokens"},
    {20240801, 7, 4, "llm.c's LLaMA-3 format, uint32 tokens"},
};
enum { N_BIN_FORMATS = (int)(sizeof bin_formats / sizeof *bin_formats) };

static int32_t le32(const unsigned char *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

int32_t rt_data_token(const RtData *d, int64_t i)
{
    const unsigned char *p = d->toks + (int64_t)d->width * i;
    switch (d->width) {
    case 1: return p[0];
    case 2: return (int32_t)(p[0] | p[1] << 8);
    default: return le32(p); /* uint32 ids were checked to be < vocab <= INT32_MAX at open */
    }
}

const char *rt_data_kind_name(int kind)
{
    switch (kind) {
    case RT_DATA_TEXT: return "text";
    case RT_DATA_TOKENS: return "tokens";
    case RT_DATA_NANOGPT: return "nanogpt";
    default: return "?";
    }
}

int rt_data_kind_parse(const char *name)
{
    for (int k = 0; k < RT_DATA_KIND_COUNT; k++)
        if (name && strcmp(name, rt_data_kind_name(k)) == 0)
            return k;
    return -1;
}

/* "magic 20240520 version 1 (llm.c's GPT-2 format, uint16 tokens) or ..." */
static void expected_headers(char *buf, size_t cap)
{
    size_t at = 0;
    for (int i = 0; i < N_BIN_FORMATS && at < cap; i++) {
        int n = snprintf(buf + at, cap - at, "%smagic %d version %d (%s)", i ? " or " : "",
                         bin_formats[i].magic, bin_formats[i].version, bin_formats[i].written);
        at += n > 0 ? (size_t)n : 0;
    }
}

static bool check_tokens_bin(RtData *d, const char *path, const unsigned char *map, size_t size,
                             RtError *e)
{
    char want[256];
    expected_headers(want, sizeof want);
    if (size < BIN_HEADER_BYTES)
        return rt_err(e, RT_ERR_TRUNCATED,
                      "%s: truncated: an llm.c token file starts with a %d-byte header (%s), the "
                      "file has %zu bytes",
                      path, BIN_HEADER_BYTES, want, size);
    int32_t magic = le32(map), version = le32(map + 4), count = le32(map + 8);
    int f = -1;
    for (int i = 0; i < N_BIN_FORMATS; i++)
        if (magic == bin_formats[i].magic)
            f = i;
    if (f < 0)
        return rt_err(e, RT_ERR_FORMAT,
                      "%s: bad magic %d: expected an llm.c token file, %s; a headerless nanoGPT "
                      "file (uint16 tokens) is read with --data-kind nanogpt (spec: "
                      "nanogpt(\"FILE\")), byte-level text with --data-kind text",
                      path, magic, want);
    if (version != bin_formats[f].version)
        return rt_err(e, RT_ERR_FORMAT,
                      "%s: unsupported version %d after magic %d: expected version %d (%s)", path,
                      version, magic, bin_formats[f].version, bin_formats[f].written);
    if (count < 0)
        return rt_err(e, RT_ERR_FORMAT, "%s: negative token count %d in header", path, count);
    d->width = bin_formats[f].width;
    d->format = bin_formats[f].written;
    size_t want_bytes = BIN_HEADER_BYTES + (size_t)d->width * (size_t)count;
    if (size < want_bytes)
        return rt_err(e, RT_ERR_TRUNCATED,
                      "%s: truncated: header says %d tokens (%zu bytes in %s), the file has %zu "
                      "bytes",
                      path, count, want_bytes, d->format, size);
    if (size > want_bytes)
        return rt_err(e, RT_ERR_FORMAT,
                      "%s: %zu bytes after the %d tokens the header announces (%s)", path,
                      size - want_bytes, count, d->format);
    d->toks = map + BIN_HEADER_BYTES;
    d->n = count;
    return true;
}

/* nanoGPT's prepare.py writes np.uint16 ids with arr.tofile(): no header, no count. */
static bool check_nanogpt(RtData *d, const char *path, const unsigned char *map, size_t size,
                          RtError *e)
{
    if (size >= 12) {
        int32_t magic = le32(map), version = le32(map + 4);
        for (int i = 0; i < N_BIN_FORMATS; i++)
            if (magic == bin_formats[i].magic && version == bin_formats[i].version)
                return rt_err(e, RT_ERR_FORMAT,
                              "%s: expected a headerless nanoGPT file (uint16 tokens), found the "
                              "header of an llm.c token file (magic %d version %d, %s): read it "
                              "with --data-kind tokens (spec: tokens(\"FILE\"))",
                              path, magic, version, bin_formats[i].written);
    }
    if (size % 2)
        return rt_err(e, RT_ERR_FORMAT,
                      "%s: %zu bytes, an odd number: a nanoGPT file holds uint16 tokens (2 bytes "
                      "each)",
                      path, size);
    d->width = 2;
    d->format = "nanoGPT's headerless format, uint16 tokens";
    d->toks = map;
    d->n = (int64_t)(size / 2);
    return true;
}

int64_t rt_data_id_limit(const RtData *d)
{
    return d->width >= 4 ? (int64_t)1 << 32 : (int64_t)1 << (8 * d->width);
}

bool rt_data_open(RtData *d, const char *path, int kind, int vocab, int64_t min_tokens,
                  RtError *e)
{
    memset(d, 0, sizeof *d);
    d->kind = kind;
    struct stat st;
    int fd = rt_open_regular(path, "data file", &st, e);
    if (fd < 0)
        return false;
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        close(fd);
        return rt_err(e, RT_ERR_EMPTY, "%s: data file is empty", path);
    }
    unsigned char *buf = malloc(size);
    if (!buf) {
        close(fd);
        return rt_err(e, RT_ERR_NOMEM, "%s: cannot hold the data file in memory (%zu bytes)",
                      path, size);
    }
    bool ok = rt_read_at(fd, path, buf, size, 0, e);
    close(fd);
    d->buf = buf;
    d->bytes = size;
    d->path = strdup(path);
    if (ok && kind == RT_DATA_TOKENS) {
        ok = check_tokens_bin(d, path, buf, size, e);
    } else if (ok && kind == RT_DATA_NANOGPT) {
        ok = check_nanogpt(d, path, buf, size, e);
    } else if (ok) {
        d->width = 1;
        d->format = "text, one byte per token";
        d->toks = buf;
        d->n = (int64_t)size;
    }
    /* ids of this width cannot reach a larger vocab: such a model would train rows of the
     * embedding and the head that no token ever selects (text data keeps its own rule, a
     * vocab of at least 256, which the compiler checks) */
    if (ok && kind != RT_DATA_TEXT && (int64_t)vocab > rt_data_id_limit(d))
        ok = rt_err(e, RT_ERR_TOKEN,
                    "%s: the model's vocab %d is larger than %s can hold (ids 0..%lld): ids "
                    "from %lld up never occur; use a vocab of at most %lld or a file of uint32 "
                    "tokens (llm.c magic 20240801)",
                    path, vocab, d->format, (long long)rt_data_id_limit(d) - 1,
                    (long long)rt_data_id_limit(d), (long long)rt_data_id_limit(d));
    for (int64_t i = 0; ok && i < d->n; i++) {
        uint32_t t = d->width == 4 ? (uint32_t)le32(d->toks + 4 * i) : (uint32_t)rt_data_token(d, i);
        if (t >= (uint32_t)vocab)
            ok = rt_err(e, RT_ERR_TOKEN, "%s: token %u at index %lld is >= vocab %d%s", path, t,
                        (long long)i, vocab,
                        kind == RT_DATA_TEXT ? " (text data needs a vocab of 256)" : "");
    }
    if (ok && d->n < min_tokens)
        ok = rt_err(e, RT_ERR_EMPTY,
                    "%s: too short: %lld tokens, need at least %lld (seq_len + 1)", path,
                    (long long)d->n, (long long)min_tokens);
    if (!ok)
        rt_data_close(d);
    return ok;
}

void rt_data_close(RtData *d)
{
    free(d->buf);
    free(d->path);
    memset(d, 0, sizeof *d);
}

void rt_batch_fill(RtSplit s, int batch, int seq_len, uint64_t seed, uint64_t stream,
                   uint64_t index, int32_t *x, int32_t *y)
{
    uint64_t starts = (uint64_t)(s.n - seq_len); /* s.n >= seq_len + 1 */
    for (int r = 0; r < batch; r++) {
        uint64_t off = rt_rng_u64(seed, stream, index * (uint64_t)batch + (uint64_t)r) % starts;
        int64_t base = s.begin + (int64_t)off;
        for (int t = 0; t < seq_len; t++) {
            x[(int64_t)r * seq_len + t] = rt_data_token(s.d, base + t);
            y[(int64_t)r * seq_len + t] = rt_data_token(s.d, base + t + 1);
        }
    }
}
