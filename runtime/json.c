/* A growable byte buffer and the JSON writing helpers used for safetensors headers and
 * metrics lines. Output is deterministic: callers emit keys in sorted order. */
#include "rt_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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
