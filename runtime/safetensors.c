/* safetensors files: a writer (sorted keys, contiguous data, 8-byte aligned data start) and
 * a strict reader, which reads with pread rather than mmap: a file truncated under a
 * mapping kills the process with SIGBUS, a short read is an error we can report. Format: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, .., "__metadata__": {..}}
 * then the data; offsets are relative to the end of the header and must tile it exactly.
 * The reader rejects anything else: it guards --resume against damaged or foreign files. */
#include "rt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER_BYTES ((uint64_t)100 << 20)
#define MAX_JSON_INT ((uint64_t)1 << 53)

/* ---- writing ---- */

bool rt_write_all(int fd, const RtIo *io, const char *path, const void *buf, size_t n,
                      RtError *e)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = io && io->write ? io->write(io->user, fd, p, n) : write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int err = w < 0 ? errno : EIO;
            if (err == ENOSPC || err == EDQUOT)
                return rt_err(e, RT_ERR_NOSPC, "%s: cannot write: %s", path, strerror(err));
            return rt_err(e, RT_ERR_IO, "%s: cannot write: %s", path, strerror(err));
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* A header key: a tensor (entry >= 0) or the metadata object (entry < 0). */
typedef struct Key {
    const char *name;
    int entry;
} Key;

static int cmp_key(const void *a, const void *b)
{
    return strcmp(((const Key *)a)->name, ((const Key *)b)->name);
}

static int cmp_meta(const void *a, const void *b)
{
    return strcmp(((const RtStMeta *)a)->key, ((const RtStMeta *)b)->key);
}

static size_t entry_bytes(const RtStEntry *t)
{
    size_t n = rt_dtype_size(t->dtype);
    for (int d = 0; d < t->rank; d++)
        n *= (size_t)t->shape[d];
    return n;
}

/* Refuses float data holding NaN or infinity (RT_ERR_NONFINITE). */
static bool check_finite(const RtStEntry *te, const void *data, size_t bytes, const char *path,
                         RtError *e)
{
    size_t n = bytes / rt_dtype_size(te->dtype);
    for (size_t i = 0; i < n; i++) {
        float v;
        if (te->dtype == RT_F32)
            memcpy(&v, (const char *)data + 4 * i, 4);
        else if (te->dtype == RT_BF16) {
            uint16_t h;
            memcpy(&h, (const char *)data + 2 * i, 2);
            v = rt_bf16_to_f32(h);
        } else
            return true;
        if (!isfinite(v))
            return rt_err(e, RT_ERR_NONFINITE, "%s: tensor '%s' holds %s at element %zu", path,
                          te->name, isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf", i);
    }
    return true;
}

bool rt_st_write_fd(int fd, const RtIo *io, const char *path, const RtStEntry *t, int n,
                    const RtStMeta *meta, int n_meta, RtError *e)
{
    Key *keys = malloc(((size_t)n + 1) * sizeof *keys);
    RtStMeta *sm = malloc(((size_t)n_meta + 1) * sizeof *sm);
    if (!keys || !sm) {
        free(keys);
        free(sm);
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    }
    int nk = 0;
    for (int i = 0; i < n; i++)
        keys[nk++] = (Key){t[i].name, i};
    if (n_meta > 0)
        keys[nk++] = (Key){"__metadata__", -1};
    qsort(keys, (size_t)nk, sizeof *keys, cmp_key);
    if (n_meta > 0)
        memcpy(sm, meta, (size_t)n_meta * sizeof *sm);
    qsort(sm, (size_t)n_meta, sizeof *sm, cmp_meta);

    RtBuf h = {0};
    size_t off = 0;
    rt_buf_add(&h, "{", 1);
    for (int k = 0; k < nk; k++) {
        if (k)
            rt_buf_add(&h, ",", 1);
        rt_json_string(&h, keys[k].name);
        rt_buf_add(&h, ":{", 2);
        if (keys[k].entry < 0) {
            for (int i = 0; i < n_meta; i++) {
                if (i)
                    rt_buf_add(&h, ",", 1);
                rt_json_string(&h, sm[i].key);
                rt_buf_add(&h, ":", 1);
                rt_json_string(&h, sm[i].value);
            }
        } else {
            const RtStEntry *te = &t[keys[k].entry];
            size_t bytes = entry_bytes(te);
            rt_buf_printf(&h, "\"data_offsets\":[%zu,%zu],\"dtype\":\"%s\",\"shape\":[", off,
                          off + bytes, rt_dtype_name(te->dtype));
            for (int d = 0; d < te->rank; d++)
                rt_buf_printf(&h, "%s%lld", d ? "," : "", (long long)te->shape[d]);
            rt_buf_add(&h, "]", 1);
            off += bytes;
        }
        rt_buf_add(&h, "}", 1);
    }
    rt_buf_add(&h, "}", 1);
    while ((8 + h.len) % 8)
        rt_buf_add(&h, " ", 1);
    bool ok = !h.oom || rt_err(e, RT_ERR_NOMEM, "out of memory");
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    ok = ok && rt_write_all(fd, io, path, len8, 8, e) && rt_write_all(fd, io, path, h.p, h.len, e);
    void *scratch = NULL;
    size_t scratch_len = 0;
    for (int k = 0; ok && k < nk; k++) {
        if (keys[k].entry < 0)
            continue;
        const RtStEntry *te = &t[keys[k].entry];
        const void *data = te->data;
        size_t bytes = entry_bytes(te);
        if (!data && te->fill) { /* produced on demand into one reused buffer */
            if (bytes > scratch_len) {
                free(scratch);
                scratch = malloc(bytes);
                scratch_len = scratch ? bytes : 0;
                if (!scratch) {
                    ok = rt_err(e, RT_ERR_NOMEM, "out of memory writing %s", path);
                    break;
                }
            }
            if (!te->fill(te->user, te->index, scratch)) {
                ok = rt_err(e, RT_ERR_NOMEM, "out of memory preparing tensor '%s' of %s", te->name, path);
                break;
            }
            data = scratch;
        }
        ok = check_finite(te, data, bytes, path, e) && rt_write_all(fd, io, path, data, bytes, e);
    }
    free(scratch);
    rt_buf_fini(&h);
    free(keys);
    free(sm);
    return ok;
}

/* ---- reading ---- */

typedef struct Parser {
    const char *begin, *s, *end;
    const char *path;
    RtError *e;
    bool allow_f16; /* a model's file for --init-from may hold F16; a trainer checkpoint never */
} Parser;

static bool fail(Parser *p, const char *what)
{
    return rt_err(p->e, RT_ERR_FORMAT, "%s: corrupted header: %s at header byte %ld", p->path,
                  what, (long)(p->s - p->begin));
}

static void skip_ws(Parser *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static bool expect(Parser *p, char c)
{
    skip_ws(p);
    if (p->s >= p->end || *p->s != c) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", c);
        return fail(p, what);
    }
    p->s++;
    return true;
}

static bool peek(Parser *p, char c)
{
    skip_ws(p);
    return p->s < p->end && *p->s == c;
}

/* A JSON string; *out is malloc'd and NUL-terminated. */
static bool parse_string(Parser *p, char **out)
{
    if (!expect(p, '"'))
        return false;
    RtBuf b = {0};
    rt_buf_add(&b, "", 0);
    const char *why = rt_json_string_body(&p->s, p->end, &b);
    if (why) {
        rt_buf_fini(&b);
        return fail(p, why);
    }
    if (b.oom) {
        rt_buf_fini(&b);
        return rt_err(p->e, RT_ERR_NOMEM, "out of memory");
    }
    *out = b.p;
    return true;
}

/* A non-negative integer without sign, fraction, exponent or leading zeros, below 2^53. */
static bool parse_uint(Parser *p, uint64_t *out)
{
    skip_ws(p);
    if (p->s >= p->end || *p->s < '0' || *p->s > '9')
        return fail(p, "expected a non-negative integer");
    if (*p->s == '0' && p->end - p->s > 1 && p->s[1] >= '0' && p->s[1] <= '9')
        return fail(p, "integer with a leading zero");
    uint64_t v = 0;
    while (p->s < p->end && *p->s >= '0' && *p->s <= '9') {
        v = v * 10 + (uint64_t)(*p->s++ - '0');
        if (v > MAX_JSON_INT)
            return fail(p, "integer too large");
    }
    if (p->s < p->end && (*p->s == '.' || *p->s == 'e' || *p->s == 'E'))
        return fail(p, "expected an integer");
    *out = v;
    return true;
}

/* Grows *arr (elements of size elem) so that index `need` fits; capacities double, so n
 * appends cost O(n) copies in all. */
static bool grow(void **arr, int *cap, int need, size_t elem)
{
    if (need < *cap)
        return true;
    if (*cap > INT32_MAX / 2)
        return false;
    int nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = nc;
    return true;
}

static bool parse_meta(Parser *p, RtStFile *f, int *cap)
{
    if (!expect(p, '{'))
        return false;
    if (peek(p, '}'))
        return expect(p, '}');
    do {
        char *k = NULL, *v = NULL;
        if (!parse_string(p, &k))
            return false;
        if (!expect(p, ':') || !parse_string(p, &v)) {
            free(k);
            return false;
        }
        if (!grow((void **)&f->meta, cap, f->n_meta, sizeof *f->meta)) {
            free(k);
            free(v);
            return rt_err(p->e, RT_ERR_NOMEM, "out of memory");
        }
        f->meta[f->n_meta++] = (RtStMeta){k, v}; /* duplicates are found after sorting */
    } while (peek(p, ',') && expect(p, ','));
    return expect(p, '}');
}

static bool parse_dtype(Parser *p, int *dtype)
{
    char *s;
    if (!parse_string(p, &s))
        return false;
    *dtype = -1;
    for (int d = 0; d <= (p->allow_f16 ? RT_ST_F16 : RT_DTYPE_COUNT - 1); d++)
        if (strcmp(s, rt_dtype_name(d)) == 0)
            *dtype = d;
    if (*dtype < 0) {
        rt_err(p->e, RT_ERR_FORMAT, "%s: unsupported dtype '%s'", p->path, s);
        free(s);
        return false;
    }
    free(s);
    return true;
}

static bool parse_tensor(Parser *p, RtStTensor *t, uint64_t off[2])
{
    bool has_dtype = false, has_shape = false, has_off = false;
    if (!expect(p, '{'))
        return false;
    do {
        char *k;
        if (!parse_string(p, &k))
            return false;
        if (!expect(p, ':')) {
            free(k);
            return false;
        }
        bool ok = true;
        if (strcmp(k, "dtype") == 0 && !has_dtype) {
            ok = parse_dtype(p, &t->dtype);
            has_dtype = true;
        } else if (strcmp(k, "shape") == 0 && !has_shape) {
            has_shape = true;
            ok = expect(p, '[');
            if (ok && !peek(p, ']')) {
                do {
                    uint64_t v;
                    if (t->rank == 4) {
                        ok = fail(p, "tensor rank above 4");
                        break;
                    }
                    ok = parse_uint(p, &v);
                    t->shape[t->rank++] = (int64_t)v;
                } while (ok && peek(p, ',') && expect(p, ','));
            }
            ok = ok && expect(p, ']');
        } else if (strcmp(k, "data_offsets") == 0 && !has_off) {
            has_off = true;
            ok = expect(p, '[') && parse_uint(p, &off[0]) && expect(p, ',') &&
                 parse_uint(p, &off[1]) && expect(p, ']');
        } else {
            ok = fail(p, "unknown or repeated tensor field");
        }
        free(k);
        if (!ok)
            return false;
    } while (peek(p, ',') && expect(p, ','));
    if (!expect(p, '}'))
        return false;
    if (!has_dtype || !has_shape || !has_off)
        return fail(p, "tensor entry lacks dtype, shape or data_offsets");
    return true;
}

typedef struct Span {
    uint64_t b, e;
    const char *name;
} Span;

static int cmp_span(const void *a, const void *b)
{
    const Span *x = a, *y = b;
    return x->b < y->b ? -1 : x->b > y->b ? 1 : (x->e > y->e) - (x->e < y->e);
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const RtStTensor *)a)->name, ((const RtStTensor *)b)->name);
}

/* Bytes of a tensor of this dtype and shape; false when the product overflows 64 bits
 * (or size_t): a shape like [64, 257, 280379743338241] F32 is 2^64 + 256 bytes, which
 * unchecked arithmetic would take for 256. */
static bool tensor_bytes(const RtStTensor *t, uint64_t *out)
{
    uint64_t n = rt_dtype_size(t->dtype);
    for (int d = 0; d < t->rank; d++)
        if (__builtin_mul_overflow(n, (uint64_t)t->shape[d], &n))
            return false;
    if (n > SIZE_MAX)
        return false;
    *out = n;
    return true;
}

static void shape_text(char *buf, size_t cap, const RtStTensor *t)
{
    int at = snprintf(buf, cap, "[");
    for (int d = 0; d < t->rank && at > 0 && (size_t)at < cap; d++)
        at += snprintf(buf + at, cap - (size_t)at, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (at > 0 && (size_t)at < cap)
        snprintf(buf + at, cap - (size_t)at, "]");
}

/* One tensor's offsets against its dtype and shape and the data length. */
static bool check_offsets(Parser *p, const RtStTensor *t, const uint64_t off[2], size_t data_len)
{
    uint64_t want;
    if (!tensor_bytes(t, &want)) {
        char shape[160];
        shape_text(shape, sizeof shape, t);
        return rt_err(p->e, RT_ERR_FORMAT,
                      "%s: corrupted header: tensor '%s' of shape %s %s is larger than 2^64 bytes",
                      p->path, t->name, shape, rt_dtype_name(t->dtype));
    }
    if (off[1] < off[0] || off[1] - off[0] != want)
        return rt_err(p->e, RT_ERR_FORMAT,
                      "%s: corrupted header: tensor '%s' has data_offsets [%llu, %llu] but %s%s "
                      "needs %llu bytes",
                      p->path, t->name, (unsigned long long)off[0], (unsigned long long)off[1],
                      rt_dtype_name(t->dtype), t->rank ? " of that shape" : "",
                      (unsigned long long)want);
    if (off[1] > data_len)
        return rt_err(p->e, RT_ERR_TRUNCATED,
                      "%s: truncated: tensor '%s' needs data bytes [%llu, %llu), the file holds "
                      "%zu",
                      p->path, t->name, (unsigned long long)off[0], (unsigned long long)off[1],
                      data_len);
    return true;
}

/* After the whole header is read: names and metadata keys unique (sorted, so that
 * rt_st_find and rt_st_meta can search), and the tensors tile the data exactly. Sorting
 * keeps this O(n log n); a header of 80,000 keys took 27 s with pairwise comparisons. */
static bool check_whole(Parser *p, RtStFile *f, size_t data_len)
{
    if (f->n > 1)
        qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_tensor);
    for (int i = 1; i < f->n; i++)
        if (strcmp(f->t[i - 1].name, f->t[i].name) == 0)
            return rt_err(p->e, RT_ERR_FORMAT, "%s: corrupted header: key '%s' appears twice",
                          p->path, f->t[i].name);
    if (f->n_meta > 1)
        qsort(f->meta, (size_t)f->n_meta, sizeof *f->meta, cmp_meta);
    for (int i = 1; i < f->n_meta; i++)
        if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0)
            return rt_err(p->e, RT_ERR_FORMAT,
                          "%s: corrupted header: duplicate metadata key '%s'", p->path,
                          f->meta[i].key);
    Span *spans = malloc(((size_t)f->n + 1) * sizeof *spans);
    if (!spans)
        return rt_err(p->e, RT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < f->n; i++)
        spans[i] = (Span){f->t[i].offset, f->t[i].offset + f->t[i].nbytes, f->t[i].name};
    if (f->n > 1)
        qsort(spans, (size_t)f->n, sizeof *spans, cmp_span);
    bool ok = true;
    uint64_t at = 0;
    for (int i = 0; ok && i < f->n; i++) {
        if (spans[i].b != at)
            ok = rt_err(p->e, RT_ERR_FORMAT,
                        "%s: corrupted header: tensor '%s' starts at data byte %llu, expected "
                        "%llu (overlap or hole)",
                        p->path, spans[i].name, (unsigned long long)spans[i].b,
                        (unsigned long long)at);
        at = spans[i].e;
    }
    if (ok && at != data_len)
        ok = rt_err(p->e, RT_ERR_FORMAT,
                    "%s: %llu data bytes after the last tensor (file has %zu, header describes "
                    "%llu)",
                    p->path, (unsigned long long)(data_len - at), data_len,
                    (unsigned long long)at);
    free(spans);
    return ok;
}

static bool parse_header(RtStFile *f, const char *json, size_t len, size_t data_len, bool allow_f16, RtError *e)
{
    Parser p = {json, json, json + len, f->path ? f->path : "safetensors", e, allow_f16};
    int cap_t = 0, cap_meta = 0;
    bool has_meta = false;
    bool ok = expect(&p, '{');
    if (ok && peek(&p, '}')) {
        ok = expect(&p, '}');
        goto done;
    }
    while (ok) {
        char *key;
        if (!parse_string(&p, &key)) {
            ok = false;
            break;
        }
        ok = expect(&p, ':');
        if (ok && strcmp(key, "__metadata__") == 0) {
            free(key);
            if (has_meta) {
                ok = rt_err(e, RT_ERR_FORMAT,
                            "%s: corrupted header: key '__metadata__' appears twice", p.path);
                break;
            }
            has_meta = true;
            ok = parse_meta(&p, f, &cap_meta);
        } else if (ok) {
            if (!grow((void **)&f->t, &cap_t, f->n, sizeof *f->t)) {
                free(key);
                ok = rt_err(e, RT_ERR_NOMEM, "out of memory");
                break;
            }
            RtStTensor t = {.name = key};
            uint64_t off[2] = {0, 0};
            ok = parse_tensor(&p, &t, off) && check_offsets(&p, &t, off, data_len);
            t.offset = (size_t)off[0];
            t.nbytes = (size_t)(off[1] - off[0]);
            f->t[f->n++] = t; /* owned by f from here, even on error */
        } else {
            free(key);
        }
        if (!ok || !peek(&p, ','))
            break;
        ok = expect(&p, ',');
    }
    ok = ok && expect(&p, '}');
done:
    skip_ws(&p);
    if (ok && p.s != p.end)
        ok = fail(&p, "bytes after the header object");
    return ok && check_whole(&p, f, data_len);
}

/* ---- files ---- */

/* What a non-regular file is, for messages. */
static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode)    ? "a directory"
           : S_ISFIFO(mode) ? "a FIFO"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
                            : "not a regular file";
}

int rt_open_regular(const char *path, const char *what, struct stat *st, RtError *e)
{
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        rt_err(e, err == ENOENT ? RT_ERR_MISSING : RT_ERR_IO, "%s: cannot open %s: %s", path,
               what, strerror(err));
        return -1;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        int err = errno;
        rt_err(e, RT_ERR_IO, "%s: cannot read %s: %s", path, what,
               S_ISREG(st->st_mode) ? strerror(err) : file_kind(st->st_mode));
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

bool rt_read_at(int fd, const char *path, void *buf, size_t n, uint64_t off, RtError *e)
{
    char *p = buf;
    while (n > 0) {
        size_t chunk = n < ((size_t)1 << 30) ? n : (size_t)1 << 30;
        ssize_t r = pread(fd, p, chunk, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return rt_err(e, RT_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        if (r == 0)
            return rt_err(e, RT_ERR_TRUNCATED,
                          "%s: truncated while reading: no data at byte %llu (the file changed "
                          "after it was opened)",
                          path, (unsigned long long)off);
        p += r;
        off += (uint64_t)r;
        n -= (size_t)r;
    }
    return true;
}

bool rt_st_parse_header(RtStFile *f, const char *json, size_t len, size_t data_len, RtError *e)
{
    return parse_header(f, json, len, data_len, false, e);
}

static bool open_header(RtStFile *f, const char *path, bool allow_f16, RtError *e)
{
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    struct stat st;
    int fd = rt_open_regular(path, "safetensors file", &st, e);
    if (fd < 0) {
        rt_st_close(f);
        return false;
    }
    f->fd = fd;
    f->has_fd = true;
    f->size = (size_t)st.st_size;
    if (f->size < 8) {
        rt_st_close(f);
        return rt_err(e, RT_ERR_TRUNCATED, "%s: truncated: %zu bytes, shorter than the 8-byte "
                      "header length", path, (size_t)st.st_size);
    }
    unsigned char len8[8];
    if (!rt_read_at(fd, path, len8, 8, 0, e)) {
        rt_st_close(f);
        return false;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)len8[i] << (8 * i);
    bool ok = true;
    char *json = NULL;
    if (hlen > MAX_HEADER_BYTES)
        ok = rt_err(e, RT_ERR_FORMAT, "%s: corrupted header: header length %llu is implausible",
                    path, (unsigned long long)hlen);
    else if (hlen > f->size - 8)
        ok = rt_err(e, RT_ERR_TRUNCATED,
                    "%s: truncated: header length is %llu bytes, the file has %zu after it", path,
                    (unsigned long long)hlen, f->size - 8);
    else if (!(json = malloc(hlen + 1)))
        ok = rt_err(e, RT_ERR_NOMEM, "out of memory reading the header of %s", path);
    else
        ok = rt_read_at(fd, path, json, hlen, 8, e) &&
             parse_header(f, json, hlen, f->size - 8 - hlen, allow_f16, e);
    free(json);
    if (!ok) {
        rt_st_close(f);
        return false;
    }
    f->data_start = 8 + hlen;
    return true;
}

bool rt_st_open_header(RtStFile *f, const char *path, RtError *e)
{
    return open_header(f, path, false, e);
}

bool rt_st_open_model_header(RtStFile *f, const char *path, RtError *e)
{
    return open_header(f, path, true, e);
}

bool rt_st_read(const RtStFile *f, const RtStTensor *t, void *dst, RtError *e)
{
    if (!f->has_fd)
        return rt_err(e, RT_ERR_IO, "%s: not open", f->path);
    return rt_read_at(f->fd, f->path, dst, t->nbytes, f->data_start + t->offset, e);
}

bool rt_st_open(RtStFile *f, const char *path, RtError *e)
{
    if (!rt_st_open_header(f, path, e))
        return false;
    size_t n = f->size - f->data_start;
    f->buf = malloc(n ? n : 1);
    if (!f->buf) {
        rt_err(e, RT_ERR_NOMEM, "out of memory reading %s (%zu bytes)", path, n);
        rt_st_close(f);
        return false;
    }
    if (!rt_read_at(f->fd, path, f->buf, n, f->data_start, e)) {
        rt_st_close(f);
        return false;
    }
    for (int i = 0; i < f->n; i++)
        f->t[i].data = (const char *)f->buf + f->t[i].offset;
    return true;
}

void rt_st_close(RtStFile *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->t[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free((char *)f->meta[i].key);
        free((char *)f->meta[i].value);
    }
    free(f->t);
    free(f->meta);
    free(f->buf);
    if (f->has_fd)
        close(f->fd);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const RtStTensor *rt_st_find(const RtStFile *f, const char *name)
{
    RtStTensor key = {.name = (char *)name};
    return f->n ? bsearch(&key, f->t, (size_t)f->n, sizeof *f->t, cmp_tensor) : NULL;
}

const char *rt_st_meta(const RtStFile *f, const char *key)
{
    RtStMeta k = {key, NULL};
    const RtStMeta *m =
        f->n_meta ? bsearch(&k, f->meta, (size_t)f->n_meta, sizeof *f->meta, cmp_meta) : NULL;
    return m ? m->value : NULL;
}
