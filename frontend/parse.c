/* parse.c: runs the flex scanner and bison parser over a buffer (a file, or the -D
 * overrides joined one per line) and hands back arena AST. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fe.h"
#include "parser.h"
#include "lexer.h"

void fe_ctx_init(FeCtx *ctx, Arena *a, Diags *d)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->arena = a;
    ctx->diags = d;
}

/* Runs the parser over text with the given start token; false on any error. */
static bool run_parser(FeCtx *ctx, const char *name, const char *text, size_t len, int start)
{
    int errors_before = ctx->diags->n_errors;
    char *copy = arena_strndup(ctx->arena, text, len);
    ctx->file = arena_strdup(ctx->arena, name);
    ctx->src = copy;
    ctx->src_len = len;
    ctx->line = 1;
    ctx->col = 1;
    ctx->n_open = 0;
    ctx->start_token = start;
    diag_add_source(ctx->diags, ctx->file, copy, len);
    if (len > INT_MAX / 2) {
        diag_error(ctx->diags, (SrcLoc){ctx->file, 0, 0, 0}, "file is too large (%zu bytes)", len);
        return false;
    }
    yyscan_t scanner;
    if (dsl_yylex_init_extra(ctx, &scanner) != 0) {
        diag_error(ctx->diags, (SrcLoc){ctx->file, 0, 0, 0}, "cannot start the lexer");
        return false;
    }
    dsl_yy_scan_bytes(copy, (int)len, scanner);
    int rc = dsl_yyparse(scanner, ctx);
    dsl_yylex_destroy(scanner);
    return rc == 0 && ctx->n_syntax_errors == 0 && ctx->diags->n_errors == errors_before;
}

bool fe_parse_buffer(FeCtx *ctx, const char *name, const char *text, size_t len)
{
    ctx->ast = ARENA_NEW(ctx->arena, AstFile);
    ctx->items = (AstVec){0};
    bool ok = run_parser(ctx, name, text ? text : "", text ? len : 0, START_FILE);
    ctx->ast->name = ctx->file;
    ctx->ast->items = (AstItem **)ctx->items.data;
    ctx->ast->n_items = ctx->items.n;
    return ok;
}

bool fe_parse_overrides(FeCtx *ctx, const char *const *defines, int n, AstVec *out)
{
    return fe_parse_overrides_as(ctx, "<command line>", defines, n, out);
}

bool fe_parse_overrides_as(FeCtx *ctx, const char *source, const char *const *defines, int n, AstVec *out)
{
    *out = (AstVec){0};
    if (n <= 0)
        return true;
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += strlen(defines[i]) + 1;
    char *text = arena_alloc(ctx->arena, len + 1), *p = text;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(defines[i]);
        memcpy(p, defines[i], l);
        for (size_t j = 0; j < l; j++)
            if (p[j] == '\n' || p[j] == ';')
                p[j] = ' '; /* one override per line, always */
        p += l;
        *p++ = '\n';
    }
    ctx->stmts = (AstVec){0};
    bool ok = run_parser(ctx, source, text, len, START_OVERRIDES);
    *out = ctx->stmts;
    return ok;
}

/* What a path is, for a message, when it is neither a regular file nor a pipe. */
static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode)   ? "a directory, not a file"
           : S_ISCHR(mode) ? "a character device, not a file"
           : S_ISBLK(mode) ? "a block device, not a file"
           : S_ISSOCK(mode) ? "a socket, not a file"
                            : "not a regular file";
}

char *fe_read_file(Arena *a, const char *path, size_t max, size_t *len, const char **why)
{
    /* O_NONBLOCK: opening a FIFO that no process writes would wait forever; opened this
     * way, one without a writer reads as empty, and a pipe with one (`relorac check
     * /dev/stdin < SPEC`) is read to its end. A device (/dev/zero) never ends: refused. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        *why = strerror(errno);
        return NULL;
    }
    struct stat st;
    const char *bad = fstat(fd, &st) != 0                           ? strerror(errno)
                      : S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode) ? NULL
                                                                    : file_kind(st.st_mode);
    if (bad) {
        *why = bad;
        close(fd);
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    size_t cap = 4096, n = 0;
    char *buf = arena_alloc(a, cap);
    for (;;) {
        if (n == cap) {
            buf = arena_grow(a, buf, n, cap * 2, 1);
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            *why = strerror(errno);
            close(fd);
            return NULL;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n > max) {
            *why = arena_sprintf(a, "longer than %zu %s", max >= (1u << 20) ? max >> 20 : max,
                                 max >= (1u << 20) ? "MiB" : "bytes");
            close(fd);
            return NULL;
        }
    }
    close(fd);
    *len = n;
    return buf;
}
