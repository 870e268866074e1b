/* parse.c: runs the flex scanner and bison parser over a buffer (a file, or the -D
 * overrides joined one per line) and hands back arena AST. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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

char *fe_read_file(Arena *a, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        errno = EISDIR;
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = arena_alloc(a, cap);
    for (;;) {
        if (n == cap) {
            buf = arena_grow(a, buf, n, cap * 2, 1);
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    bool failed = ferror(f);
    int saved = errno;
    fclose(f);
    if (failed) {
        errno = saved ? saved : EIO;
        return NULL;
    }
    *len = n;
    return buf;
}
