/* A growable byte buffer, the JSON writing helpers used for safetensors headers and
 * metrics lines (output is deterministic: callers emit keys in sorted order), and a JSON
 * reader (below, where it says why it is written here). */
#include "rt_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void rt_buf_fini(RtBuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static bool reserve(RtBuf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void rt_buf_add(RtBuf *b, const void *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void rt_buf_printf(RtBuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void rt_json_string(RtBuf *b, const char *s)
{
    rt_buf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': rt_buf_add(b, "\\\"", 2); break;
        case '\\': rt_buf_add(b, "\\\\", 2); break;
        case '\n': rt_buf_add(b, "\\n", 2); break;
        case '\r': rt_buf_add(b, "\\r", 2); break;
        case '\t': rt_buf_add(b, "\\t", 2); break;
        default:
            if (*p < 0x20)
                rt_buf_printf(b, "\\u%04x", *p);
            else
                rt_buf_add(b, p, 1);
        }
    }
    rt_buf_add(b, "\"", 1);
}

/* ---- reading ----
 * A JSON reader for the files --init-from and --tokenizer read (config.json, a sharded
 * checkpoint's index, tokenizer.json). Written here rather than taken from a library
 * because the runtime links into every trainer and may depend on libc only; the format is
 * small (RFC 8259), and the reader is strict: no trailing commas, comments, NaN, leading
 * zeros, lone surrogates, \u0000, duplicate keys or nesting deeper than 512. */

enum { MAX_DEPTH = 512 };

typedef struct JsonParser {
    const char *begin, *s, *end;
    const char *path;
    RtError *e;
} JsonParser;

/* line and column (1-based, in bytes) of byte `at` (only for messages: it scans the text) */
static void where(const JsonParser *p, const char *at, int *line, int *col)
{
    *line = 1;
    const char *bol = p->begin;
    for (const char *c = p->begin; c < at; c++)
        if (*c == '\n') {
            ++*line;
            bol = c + 1;
        }
    *col = (int)(at - bol) + 1;
}

static bool jfail(JsonParser *p, const char *what)
{
    int line, col;
    where(p, p->s, &line, &col);
    return rt_err(p->e, RT_ERR_FORMAT, "%s:%d:%d: malformed JSON: %s", p->path, line, col, what);
}

static void jskip(JsonParser *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static int jhex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Four hex digits at *sp into *out (*sp moves past them); NULL or the problem. */
static const char *jhex4(const char **sp, const char *end, unsigned *out)
{
    if (end - *sp < 4)
        return "short \\u escape";
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = jhex((*sp)[i]);
        if (h < 0)
            return "bad \\u escape";
        v = v * 16 + (unsigned)h;
    }
    *sp += 4;
    *out = v;
    return NULL;
}

static void jutf8(RtBuf *b, unsigned cp)
{
    unsigned char u[4];
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (n == 1)
        u[0] = (unsigned char)cp;
    else {
        for (size_t i = n - 1; i > 0; i--, cp >>= 6)
            u[i] = (unsigned char)(0x80 | (cp & 0x3F));
        u[0] = (unsigned char)((n == 2 ? 0xC0 : n == 3 ? 0xE0 : 0xF0) | cp);
    }
    rt_buf_add(b, u, n);
}

const char *rt_json_string_body(const char **sp, const char *end, RtBuf *b)
{
    const char *s = *sp, *why = NULL;
    for (;;) {
        const char *run = s;
        while (s < end && *s != '"' && *s != '\\' && (unsigned char)*s >= 0x20)
            s++;
        rt_buf_add(b, run, (size_t)(s - run));
        if (s >= end) {
            why = "unterminated string";
            break;
        }
        char c = *s++;
        if (c == '"')
            break;
        if (c != '\\') {
            s--;
            why = "control character in a string";
            break;
        }
        if (s >= end) {
            why = "unterminated escape";
            break;
        }
        char esc = *s++, ch = 0;
        unsigned cp, lo;
        switch (esc) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u':
            if ((why = jhex4(&s, end, &cp)))
                break;
            if (cp >= 0xD800 && cp < 0xDC00) {
                if (end - s < 2 || s[0] != '\\' || s[1] != 'u') {
                    why = "lone surrogate in a string";
                    break;
                }
                s += 2;
                if (jhex4(&s, end, &lo) || lo < 0xDC00 || lo >= 0xE000) {
                    why = "bad surrogate pair in a string";
                    break;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                why = "lone surrogate in a string";
                break;
            }
            if (cp == 0) {
                why = "\\u0000 in a string";
                break;
            }
            jutf8(b, cp);
            continue;
        default: why = "bad escape in a string"; break;
        }
        if (why)
            break;
        rt_buf_add(b, &ch, 1);
    }
    *sp = s;
    return why;
}

/* A string (p->s at its opening quote) into a malloc'd NUL-terminated buffer. */
static bool jstring(JsonParser *p, char **out, size_t *len)
{
    p->s++;
    RtBuf b = {0};
    rt_buf_add(&b, "", 0);
    const char *why = rt_json_string_body(&p->s, p->end, &b);
    if (why) {
        rt_buf_fini(&b);
        return jfail(p, why);
    }
    if (b.oom) {
        rt_buf_fini(&b);
        return rt_err(p->e, RT_ERR_NOMEM, "%s: out of memory reading JSON", p->path);
    }
    *out = b.p;
    *len = b.len;
    return true;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool jnumber(JsonParser *p, double *out)
{
    const char *s = p->s;
    s += s < p->end && *s == '-';
    if (s >= p->end || *s < '0' || *s > '9')
        return jfail(p, "unexpected character");
    if (*s == '0' && s + 1 < p->end && s[1] >= '0' && s[1] <= '9')
        return jfail(p, "number with a leading zero");
    while (s < p->end && *s >= '0' && *s <= '9')
        s++;
    if (s < p->end && *s == '.') {
        s++;
        if (s >= p->end || *s < '0' || *s > '9')
            return jfail(p, "a fraction needs digits");
        while (s < p->end && *s >= '0' && *s <= '9')
            s++;
    }
    if (s < p->end && (*s == 'e' || *s == 'E')) {
        s++;
        s += s < p->end && (*s == '+' || *s == '-');
        if (s >= p->end || *s < '0' || *s > '9')
            return jfail(p, "an exponent needs digits");
        while (s < p->end && *s >= '0' && *s <= '9')
            s++;
    }
    char buf[64];
    size_t n = (size_t)(s - p->s);
    if (n >= sizeof buf) { /* a long literal: strtod on a copy */
        char *copy = malloc(n + 1);
        if (!copy)
            return rt_err(p->e, RT_ERR_NOMEM, "%s: out of memory reading JSON", p->path);
        memcpy(copy, p->s, n);
        copy[n] = '\0';
        *out = strtod(copy, NULL);
        free(copy);
    } else {
        memcpy(buf, p->s, n);
        buf[n] = '\0';
        *out = strtod(buf, NULL);
    }
    p->s = s;
    return true;
}

static bool jvalue(JsonParser *p, RtJson *v, int depth);

/* Grows items (and keys) to hold n + 1. */
static bool jgrow(RtJson *v, int *cap, bool keys)
{
    if (v->n < *cap)
        return true;
    int nc = *cap ? *cap * 2 : 4;
    RtJson *items = realloc(v->items, (size_t)nc * sizeof *items);
    if (!items)
        return false;
    v->items = items;
    if (keys) {
        char **k = realloc(v->keys, (size_t)nc * sizeof *k);
        if (!k)
            return false;
        v->keys = k;
    }
    *cap = nc;
    return true;
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(**(char *const *const *)a, **(char *const *const *)b);
}

/* Duplicate keys, found by sorting pointers to them: O(n log n) for a vocabulary of 10^5. */
static bool jdup_keys(JsonParser *p, const RtJson *v)
{
    if (v->n < 2)
        return true;
    char *const **order = malloc((size_t)v->n * sizeof *order);
    if (!order)
        return rt_err(p->e, RT_ERR_NOMEM, "%s: out of memory reading JSON", p->path);
    for (int i = 0; i < v->n; i++)
        order[i] = &v->keys[i];
    qsort(order, (size_t)v->n, sizeof *order, cmp_strp);
    bool ok = true;
    int line, col;
    for (int i = 1; ok && i < v->n; i++)
        if (strcmp(*order[i - 1], *order[i]) == 0) {
            where(p, p->begin + v->offset, &line, &col);
            ok = rt_err(p->e, RT_ERR_FORMAT, "%s:%d:%d: malformed JSON: key \"%s\" appears twice in the object "
                        "that starts here", p->path, line, col, *order[i]);
        }
    free(order);
    return ok;
}

static bool jvalue(JsonParser *p, RtJson *v, int depth)
{
    memset(v, 0, sizeof *v);
    jskip(p);
    v->offset = (size_t)(p->s - p->begin);
    if (p->s >= p->end)
        return jfail(p, "unexpected end of the text");
    if (depth > MAX_DEPTH)
        return jfail(p, "nested deeper than 512");
    char c = *p->s;
    static const struct {
        const char *word;
        int kind;
    } words[] = {{"null", RT_JSON_NULL}, {"true", RT_JSON_TRUE}, {"false", RT_JSON_FALSE}};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i].word);
        if ((size_t)(p->end - p->s) >= n && memcmp(p->s, words[i].word, n) == 0) {
            p->s += n;
            v->kind = words[i].kind;
            return true;
        }
    }
    if (c == '"') {
        v->kind = RT_JSON_STRING;
        return jstring(p, &v->str, &v->len);
    }
    if (c == '[' || c == '{') {
        bool obj = c == '{';
        int cap = 0;
        v->kind = obj ? RT_JSON_OBJECT : RT_JSON_ARRAY;
        p->s++;
        jskip(p);
        if (p->s < p->end && *p->s == (obj ? '}' : ']')) {
            p->s++;
            return true;
        }
        for (;;) {
            if (!jgrow(v, &cap, obj))
                return rt_err(p->e, RT_ERR_NOMEM, "%s: out of memory reading JSON", p->path);
            if (obj) {
                jskip(p);
                if (p->s >= p->end || *p->s != '"')
                    return jfail(p, "expected a key (a string)");
                size_t klen;
                if (!jstring(p, &v->keys[v->n], &klen))
                    return false;
                jskip(p);
                if (p->s >= p->end || *p->s != ':') {
                    free(v->keys[v->n]);
                    return jfail(p, "expected ':'");
                }
                p->s++;
            }
            bool ok = jvalue(p, &v->items[v->n], depth + 1);
            v->n++; /* owned from here, even when incomplete */
            if (!ok)
                return false;
            jskip(p);
            if (p->s < p->end && *p->s == ',') {
                p->s++;
                continue;
            }
            if (p->s < p->end && *p->s == (obj ? '}' : ']')) {
                p->s++;
                return !obj || jdup_keys(p, v);
            }
            return jfail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    v->kind = RT_JSON_NUMBER;
    return jnumber(p, &v->num);
}

void rt_json_free(RtJson *v)
{
    if (!v)
        return;
    for (int i = 0; i < v->n; i++) {
        rt_json_free(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

bool rt_json_parse(RtJson *out, const char *text, size_t len, const char *path, RtError *e)
{
    JsonParser p = {text, text, text + len, path, e};
    bool ok = jvalue(&p, out, 0);
    if (ok) {
        jskip(&p);
        if (p.s != p.end)
            ok = jfail(&p, "text after the value");
    }
    if (!ok)
        rt_json_free(out);
    return ok;
}

bool rt_json_read_file(RtJson *out, const char *path, const char *what, RtError *e)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    int fd = rt_open_regular(path, what, &st, e);
    if (fd < 0)
        return false;
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n ? n : 1);
    bool ok = buf != NULL;
    if (!ok)
        rt_err(e, RT_ERR_NOMEM, "%s: cannot hold the %s in memory (%zu bytes)", path, what, n);
    ok = ok && rt_read_at(fd, path, buf, n, 0, e);
    close(fd);
    ok = ok && rt_json_parse(out, buf, n, path, e);
    free(buf);
    return ok;
}

const RtJson *rt_json_get(const RtJson *obj, const char *key)
{
    if (!obj || obj->kind != RT_JSON_OBJECT)
        return NULL;
    for (int i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

const RtJson *rt_json_path(const RtJson *obj, const char *path)
{
    char key[256];
    while (obj && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        obj = rt_json_get(obj, key);
        path += n + (dot != NULL);
    }
    return obj;
}

bool rt_json_equal(const RtJson *a, const RtJson *b)
{
    if (a->kind != b->kind || a->n != b->n)
        return false;
    switch (a->kind) {
    case RT_JSON_NUMBER: return a->num == b->num;
    case RT_JSON_STRING: return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    case RT_JSON_ARRAY:
        for (int i = 0; i < a->n; i++)
            if (!rt_json_equal(&a->items[i], &b->items[i]))
                return false;
        return true;
    case RT_JSON_OBJECT:
        for (int i = 0; i < a->n; i++) {
            const RtJson *o = rt_json_get(b, a->keys[i]);
            if (!o || !rt_json_equal(&a->items[i], o))
                return false;
        }
        return true;
    default: return true;
    }
}

void rt_json_write(RtBuf *b, const RtJson *v)
{
    switch (v->kind) {
    case RT_JSON_NULL: rt_buf_add(b, "null", 4); break;
    case RT_JSON_TRUE: rt_buf_add(b, "true", 4); break;
    case RT_JSON_FALSE: rt_buf_add(b, "false", 5); break;
    case RT_JSON_NUMBER: rt_buf_printf(b, "%.17g", v->num); break;
    case RT_JSON_STRING: rt_json_string(b, v->str); break;
    case RT_JSON_ARRAY:
    case RT_JSON_OBJECT:
        rt_buf_add(b, v->kind == RT_JSON_ARRAY ? "[" : "{", 1);
        for (int i = 0; i < v->n; i++) {
            if (i)
                rt_buf_add(b, ", ", 2);
            if (v->keys) {
                rt_json_string(b, v->keys[i]);
                rt_buf_add(b, ": ", 2);
            }
            rt_json_write(b, &v->items[i]);
        }
        rt_buf_add(b, v->kind == RT_JSON_ARRAY ? "]" : "}", 1);
        break;
    }
}
