/* Training data: byte-level text files and llm.c/nanoGPT .bin token files, read into memory
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

#define BIN_MAGIC 20240520
#define BIN_HEADER_BYTES (256 * 4)

static int32_t le32(const unsigned char *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

int32_t rt_data_token(const RtData *d, int64_t i)
{
    if (d->kind == RT_DATA_TEXT)
        return d->toks[i];
    const unsigned char *p = d->toks + 2 * i;
    return (int32_t)(p[0] | p[1] << 8);
}

static bool check_tokens_bin(RtData *d, const char *path, const unsigned char *map, size_t size,
                             RtError *e)
{
    if (size < BIN_HEADER_BYTES)
        return rt_err(e, RT_ERR_TRUNCATED,
                      "%s: truncated: a token file starts with a %d-byte header, the file has "
                      "%zu bytes",
                      path, BIN_HEADER_BYTES, size);
    int32_t magic = le32(map), version = le32(map + 4), count = le32(map + 8);
    if (magic != BIN_MAGIC)
        return rt_err(e, RT_ERR_FORMAT,
                      "%s: bad magic %d (expected %d); not an llm.c .bin token file (use a text "
                      "file for byte-level data)",
                      path, magic, BIN_MAGIC);
    if (version != 1)
        return rt_err(e, RT_ERR_FORMAT,
                      "%s: unsupported version %d (expected 1: uint16 tokens)", path, version);
    if (count < 0)
        return rt_err(e, RT_ERR_FORMAT, "%s: negative token count %d in header", path, count);
    size_t want = BIN_HEADER_BYTES + 2 * (size_t)count;
    if (size < want)
        return rt_err(e, RT_ERR_TRUNCATED,
                      "%s: truncated: header says %d tokens (%zu bytes), the file has %zu bytes",
                      path, count, want, size);
    if (size > want)
        return rt_err(e, RT_ERR_FORMAT,
                      "%s: %zu bytes after the %d tokens the header announces", path,
                      size - want, count);
    d->toks = map + BIN_HEADER_BYTES;
    d->n = count;
    return true;
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
    } else if (ok) {
        d->toks = buf;
        d->n = (int64_t)size;
    }
    for (int64_t i = 0; ok && i < d->n; i++) {
        int32_t t = rt_data_token(d, i);
        if (t >= vocab)
            ok = rt_err(e, RT_ERR_TOKEN, "%s: token %d at index %lld is >= vocab %d%s", path, t,
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
