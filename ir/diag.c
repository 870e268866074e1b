/* Diagnostics: record, then print with the quoted source line and a caret span. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void diag_init(Diags *d, Arena *a)
{
    memset(d, 0, sizeof *d);
    d->arena = a;
    d->max_errors = 100;
}

void diag_add_source(Diags *d, const char *name, const char *text, size_t len)
{
    if (d->n_sources == d->cap_sources) {
        int cap = d->cap_sources ? d->cap_sources * 2 : 4;
        d->sources = arena_grow(d->arena, d->sources, (size_t)d->n_sources, (size_t)cap, sizeof *d->sources);
        d->cap_sources = cap;
    }
    d->sources[d->n_sources++] = (DiagSource){name, text, len};
}

static void record(Diags *d, DiagLevel level, SrcLoc loc, const char *fmt, va_list ap)
{
    if (level == DIAG_ERROR) {
        if (d->max_errors && d->n_errors >= d->max_errors) {
            d->n_errors++;
            return;
        }
        d->n_errors++;
    } else if (level == DIAG_WARNING) {
        d->n_warnings++;
    }
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 16;
        d->list = arena_grow(d->arena, d->list, (size_t)d->n, (size_t)cap, sizeof *d->list);
        d->cap = cap;
    }
    d->list[d->n++] = (DiagEntry){level, loc, arena_vsprintf(d->arena, fmt, ap)};
}

void diag_error(Diags *d, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(d, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
}

void diag_warning(Diags *d, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(d, DIAG_WARNING, loc, fmt, ap);
    va_end(ap);
}

void diag_note(Diags *d, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(d, DIAG_NOTE, loc, fmt, ap);
    va_end(ap);
}

static const DiagSource *find_source(const Diags *d, const char *name)
{
    for (int i = 0; i < d->n_sources; i++)
        if (strcmp(d->sources[i].name, name) == 0)
            return &d->sources[i];
    return NULL;
}

/* Finds line `line` (1-based) of src; sets *len to its length without the newline. */
static const char *find_line(const DiagSource *src, int line, size_t *len)
{
    const char *p = src->text, *end = src->text + src->len;
    for (int l = 1; l < line && p < end; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return NULL;
        p = nl + 1;
    }
    if (p > end || (p == end && line > 1 && p[-1] == '\n'))
        return NULL;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *len = (size_t)((nl ? nl : end) - p);
    return p;
}

static void print_quote(const Diags *d, FILE *out, SrcLoc loc)
{
    const DiagSource *src = find_source(d, loc.file);
    if (!src || loc.line <= 0)
        return;
    size_t len;
    const char *text = find_line(src, loc.line, &len);
    if (!text)
        return;
    fprintf(out, "%5d | %.*s\n", loc.line, (int)len, text);
    fprintf(out, "      | ");
    /* Keep tabs so the caret lines up under the quoted text. */
    for (int i = 1; i < loc.col && (size_t)(i - 1) < len; i++)
        fputc(text[i - 1] == '\t' ? '\t' : ' ', out);
    fputc('^', out);
    for (int i = 1; i < loc.len; i++)
        fputc('~', out);
    fputc('\n', out);
}

void diag_print(const Diags *d, FILE *out, bool strip_dirs)
{
    static const char *const level_names[] = {"error", "warning", "note"};
    for (int i = 0; i < d->n; i++) {
        const DiagEntry *e = &d->list[i];
        if (e->loc.file) {
            const char *name = e->loc.file;
            if (strip_dirs) {
                const char *slash = strrchr(name, '/');
                if (slash)
                    name = slash + 1;
            }
            if (e->loc.line > 0)
                fprintf(out, "%s:%d:%d: ", name, e->loc.line, e->loc.col);
            else
                fprintf(out, "%s: ", name);
        } else {
            fprintf(out, "relorac: ");
        }
        fprintf(out, "%s: %s\n", level_names[e->level], e->msg);
        if (e->loc.file)
            print_quote(d, out, e->loc);
    }
    if (d->max_errors && d->n_errors > d->max_errors)
        fprintf(out, "relorac: %d more errors not shown\n", d->n_errors - d->max_errors);
}

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 1 << 20;
    int row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cur = row[j];
            int sub = prev + (a[i - 1] != b[j - 1]);
            int del = row[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            prev = cur;
        }
    }
    return row[lb];
}

const char *diag_suggest(const char *name, const char *const *cands, int n)
{
    const char *best = NULL;
    int best_d = 1 << 20;
    for (int i = 0; i < n; i++) {
        int dist = edit_distance(name, cands[i]);
        if (dist < best_d) {
            best_d = dist;
            best = cands[i];
        }
    }
    int len = (int)strlen(name);
    int limit = len / 3 > 1 ? len / 3 : 1;
    return best && best_d <= limit && best_d > 0 ? best : NULL;
}

void diag_internal_fail(const char *file, int line, const char *what)
{
    fflush(stdout);
    fprintf(stderr, "%s:%d: internal error: %s\n", file, line, what);
    abort();
}
