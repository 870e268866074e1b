/* parser.y: the .relora grammar (docs/language.md §2). Pure, with locations and LAC so
 * that "expected ..." lists are exact. Actions only build the arena AST; meaning is
 * checked in check.c. `error` rules resynchronise at the end of a statement or a
 * top-level line so that one run reports every syntax error. */
%define api.pure full
%define api.prefix {dsl_yy}
%define parse.error custom
%define parse.lac full
%locations
%param {yyscan_t scanner} {FeCtx *ctx}
%expect 0

%code requires {
#include <stdbool.h>
#include "ast.h"
typedef void *yyscan_t;
typedef struct FeCtx FeCtx;
}

%code top {
/* The parser stack never grows (no malloc): nesting deeper than this is an error. */
#define YYINITDEPTH 600
#define YYMAXDEPTH 600
}

%code {
#include <string.h>
#include "fe.h"

int dsl_yylex(DSL_YYSTYPE *lval, DSL_YYLTYPE *lloc, yyscan_t scanner, FeCtx *ctx);
static void dsl_yyerror(DSL_YYLTYPE *loc, yyscan_t scanner, FeCtx *ctx, const char *msg);

static SrcLoc L(const FeCtx *c, DSL_YYLTYPE l)
{
    SrcLoc s = {c->file, l.first_line, l.first_column, 1};
    if (l.last_line == l.first_line && l.last_column > l.first_column)
        s.len = l.last_column - l.first_column;
    return s;
}

/* From the start of a to the end of b when both are on one line; else a. */
static SrcLoc span(const FeCtx *c, DSL_YYLTYPE a, DSL_YYLTYPE b)
{
    SrcLoc s = L(c, a);
    if (a.first_line == b.last_line && b.last_column > a.first_column)
        s.len = b.last_column - a.first_column;
    return s;
}

static AstExpr *binary(FeCtx *c, char op, AstExpr *l, AstExpr *r, DSL_YYLTYPE at)
{
    AstExpr *e = fe_expr_new(c->arena, AST_BINARY, L(c, at));
    e->op = op;
    e->lhs = l;
    e->rhs = r;
    return e;
}

static AstStmt *stmt_new(FeCtx *c, AstStmtKind kind, SrcLoc loc)
{
    AstStmt *s = ARENA_NEW(c->arena, AstStmt);
    s->kind = kind;
    s->loc = loc;
    return s;
}

static AstItem *item_new(FeCtx *c, AstItemKind kind, DSL_YYLTYPE at, AstVec body)
{
    AstItem *it = ARENA_NEW(c->arena, AstItem);
    it->kind = kind;
    it->loc = L(c, at);
    it->body = (AstStmt **)body.data;
    it->n_body = body.n;
    return it;
}

static void path_append(FeCtx *c, AstPath *p, const char *part, SrcLoc loc)
{
    p->parts = arena_grow(c->arena, (void *)p->parts, (size_t)p->n, (size_t)p->n + 1, sizeof *p->parts);
    p->locs = arena_grow(c->arena, p->locs, (size_t)p->n, (size_t)p->n + 1, sizeof *p->locs);
    p->parts[p->n] = part;
    p->locs[p->n] = loc;
    p->n++;
}
}

%union {
    const char *str;
    bool b;
    AstExpr *expr;
    AstStmt *stmt;
    AstItem *item;
    AstArg *arg;
    AstVec vec;
    AstPath path;
}

%token START_FILE START_OVERRIDES
%token MODEL "'model'" ADAPTER "'adapter'" TRAIN "'train'" SWEEP "'sweep'" RETURN "'return'"
%token VARIANT "'variant'"
%token SEP "newline"
%token <str> IDENT "identifier"
%token <str> STRING "string"
%token <expr> NUMBER "number"
%token <b> BOOL "'true' or 'false'"

%type <item> item
%type <vec> body stmts sweep_body sweep_stmts items args arglist params
%type <stmt> stmt sweep_stmt
%type <expr> expr primary
%type <arg> arg
%type <path> path
%type <str> word

%left '+' '-'
%left '*' '/'
%precedence NEG

%%

start
    : START_FILE file
    | START_OVERRIDES body { ctx->stmts = $2; }
    ;

/* file = { item | SEP } */
file
    : %empty
    | file item { fe_vec_push(ctx->arena, &ctx->items, $2); }
    | file SEP
    | file error SEP
    ;

/* item = "model" IDENT [":" IDENT] "{" body "}" | "adapter" IDENT "{" body "}"
 *      | "train" "{" body "}" | "sweep" IDENT "{" sweep_body "}" */
item
    : MODEL IDENT '{' body '}' {
          $$ = item_new(ctx, AST_ITEM_MODEL, @1, $4);
          $$->name = $2; $$->name_loc = L(ctx, @2);
      }
    | MODEL IDENT ':' IDENT '{' body '}' {
          $$ = item_new(ctx, AST_ITEM_MODEL, @1, $6);
          $$->name = $2; $$->name_loc = L(ctx, @2);
          $$->parent = $4; $$->parent_loc = L(ctx, @4);
      }
    | MODEL IDENT IDENT '{' body '}' {
          diag_error(ctx->diags, L(ctx, @3), "expected ':' between the model name and its parent ('model %s : %s')",
                     $2, $3);
          ctx->n_syntax_errors++;
          $$ = item_new(ctx, AST_ITEM_MODEL, @1, $5);
          $$->name = $2; $$->name_loc = L(ctx, @2);
          $$->parent = $3; $$->parent_loc = L(ctx, @3);
      }
    | ADAPTER IDENT '{' body '}' {
          $$ = item_new(ctx, AST_ITEM_ADAPTER, @1, $4);
          $$->name = $2; $$->name_loc = L(ctx, @2);
      }
    | TRAIN '{' body '}' { $$ = item_new(ctx, AST_ITEM_TRAIN, @1, $3); }
    | SWEEP IDENT '{' sweep_body '}' {
          $$ = item_new(ctx, AST_ITEM_SWEEP, @1, $4);
          $$->name = $2; $$->name_loc = L(ctx, @2);
      }
    ;

/* A sweep's body is a body whose statements may also be named variants (§6):
 * sweep_stmt = stmt | "variant" IDENT "{" body "}" */
sweep_body
    : opt_seps { $$ = (AstVec){0}; }
    | opt_seps sweep_stmts opt_seps { $$ = $2; }
    ;

sweep_stmts
    : sweep_stmt { $$ = (AstVec){0}; if ($1) fe_vec_push(ctx->arena, &$$, $1); }
    | sweep_stmts seps sweep_stmt { $$ = $1; if ($3) fe_vec_push(ctx->arena, &$$, $3); }
    ;

sweep_stmt
    : stmt
    | VARIANT IDENT '{' body '}' {
          $$ = stmt_new(ctx, AST_STMT_VARIANT, L(ctx, @2));
          $$->name = $2;
          $$->body = (AstStmt **)$4.data;
          $$->n_body = $4.n;
          $$->close_loc = L(ctx, @5);
      }
    ;

/* body = [SEP...] [stmt {SEP... stmt}] [SEP...] */
body
    : opt_seps { $$ = (AstVec){0}; }
    | opt_seps stmts opt_seps { $$ = $2; }
    ;

stmts
    : stmt { $$ = (AstVec){0}; if ($1) fe_vec_push(ctx->arena, &$$, $1); }
    | stmts seps stmt { $$ = $1; if ($3) fe_vec_push(ctx->arena, &$$, $3); }
    ;

seps: SEP | seps SEP ;
opt_seps: %empty | seps ;

/* stmt = path "=" expr | IDENT "(" [IDENT {"," IDENT}] ")" "{" body "}" | "return" expr */
stmt
    : path '=' expr {
          $$ = stmt_new(ctx, AST_STMT_ASSIGN, $1.loc);
          $$->path = $1;
          $$->value = $3;
      }
    | IDENT '(' params ')' '{' body '}' {
          $$ = stmt_new(ctx, AST_STMT_DEF, L(ctx, @1));
          $$->name = $1;
          $$->n_params = $3.n;
          $$->params = arena_alloc(ctx->arena, sizeof(char *) * (size_t)($3.n + 1));
          $$->param_locs = arena_alloc(ctx->arena, sizeof(SrcLoc) * (size_t)($3.n + 1));
          for (int i = 0; i < $3.n; i++) {
              AstExpr *p = $3.data[i];
              $$->params[i] = p->text;
              $$->param_locs[i] = p->loc;
          }
          $$->body = (AstStmt **)$6.data;
          $$->n_body = $6.n;
          $$->close_loc = L(ctx, @7);
      }
    | RETURN expr {
          $$ = stmt_new(ctx, AST_STMT_RETURN, L(ctx, @1));
          $$->value = $2;
      }
    | error { $$ = NULL; }
    ;

/* Section keywords may appear in paths: `model.dim = [128, 256]` in a sweep. */
path
    : word { $$ = (AstPath){0}; path_append(ctx, &$$, $1, L(ctx, @1)); $$.loc = L(ctx, @1); }
    | path '.' word { $$ = $1; path_append(ctx, &$$, $3, L(ctx, @3)); $$.loc = span(ctx, @1, @3); }
    ;

word
    : IDENT
    | MODEL { $$ = "model"; }
    | ADAPTER { $$ = "adapter"; }
    | TRAIN { $$ = "train"; }
    | SWEEP { $$ = "sweep"; }
    ;

params
    : %empty { $$ = (AstVec){0}; }
    | IDENT {
          $$ = (AstVec){0};
          AstExpr *p = fe_expr_new(ctx->arena, AST_IDENT, L(ctx, @1)); p->text = $1;
          fe_vec_push(ctx->arena, &$$, p);
      }
    | params ',' IDENT {
          $$ = $1;
          AstExpr *p = fe_expr_new(ctx->arena, AST_IDENT, L(ctx, @3)); p->text = $3;
          fe_vec_push(ctx->arena, &$$, p);
      }
    ;

expr
    : expr '+' expr { $$ = binary(ctx, '+', $1, $3, @2); }
    | expr '-' expr { $$ = binary(ctx, '-', $1, $3, @2); }
    | expr '*' expr { $$ = binary(ctx, '*', $1, $3, @2); }
    | expr '/' expr { $$ = binary(ctx, '/', $1, $3, @2); }
    | '-' expr %prec NEG { $$ = fe_expr_new(ctx->arena, AST_NEG, span(ctx, @1, @2)); $$->lhs = $2; }
    | primary
    ;

primary
    : NUMBER
    | STRING { $$ = fe_expr_new(ctx->arena, AST_STRING, L(ctx, @1)); $$->text = $1; }
    | BOOL { $$ = fe_expr_new(ctx->arena, AST_BOOL, L(ctx, @1)); $$->bval = $1; }
    | IDENT { $$ = fe_expr_new(ctx->arena, AST_IDENT, L(ctx, @1)); $$->text = $1; }
    | IDENT '(' args ')' {
          $$ = fe_expr_new(ctx->arena, AST_CALL, L(ctx, @1));
          $$->text = $1;
          $$->n_args = $3.n;
          $$->args = arena_alloc(ctx->arena, sizeof(AstArg) * (size_t)($3.n + 1));
          for (int i = 0; i < $3.n; i++)
              $$->args[i] = *(AstArg *)$3.data[i];
      }
    | '[' ']' { $$ = fe_expr_new(ctx->arena, AST_LIST, span(ctx, @1, @2)); }
    | '[' items opt_comma ']' {
          $$ = fe_expr_new(ctx->arena, AST_LIST, span(ctx, @1, @4));
          $$->items = (AstExpr **)$2.data; $$->n_items = $2.n;
      }
    | '(' expr ')' { $$ = $2; }
    | '(' expr ',' items opt_comma ')' {
          $$ = fe_expr_new(ctx->arena, AST_TUPLE, span(ctx, @1, @6));
          fe_vec_push(ctx->arena, &$4, NULL);
          memmove($4.data + 1, $4.data, sizeof(void *) * (size_t)($4.n - 1));
          $4.data[0] = $2;
          $$->items = (AstExpr **)$4.data; $$->n_items = $4.n;
      }
    ;

items
    : expr { $$ = (AstVec){0}; fe_vec_push(ctx->arena, &$$, $1); }
    | items ',' expr { $$ = $1; fe_vec_push(ctx->arena, &$$, $3); }
    ;

opt_comma: %empty | ',' ;

args
    : %empty { $$ = (AstVec){0}; }
    | arglist opt_comma { $$ = $1; }
    ;

arglist
    : arg { $$ = (AstVec){0}; fe_vec_push(ctx->arena, &$$, $1); }
    | arglist ',' arg { $$ = $1; fe_vec_push(ctx->arena, &$$, $3); }
    ;

arg
    : expr { $$ = ARENA_NEW(ctx->arena, AstArg); $$->value = $1; }
    | IDENT '=' expr {
          $$ = ARENA_NEW(ctx->arena, AstArg);
          $$->name = $1; $$->name_loc = L(ctx, @1); $$->value = $3;
      }
    ;

%%

/* The text of the token at loc, from the buffer being parsed (NULL if unavailable). */
static const char *token_text(const FeCtx *c, const DSL_YYLTYPE *l)
{
    if (!c->src || l->first_line != l->last_line || l->last_column <= l->first_column)
        return NULL;
    const char *p = c->src, *end = c->src + c->src_len;
    for (int line = 1; line < l->first_line && p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return NULL;
        p = nl + 1;
    }
    int n = l->last_column - l->first_column;
    if (p + l->first_column - 1 + n > end || n > 40)
        return NULL;
    return arena_strndup(c->arena, p + l->first_column - 1, (size_t)n);
}

static bool is_section_keyword(yysymbol_kind_t k)
{
    return k == YYSYMBOL_MODEL || k == YYSYMBOL_ADAPTER || k == YYSYMBOL_TRAIN || k == YYSYMBOL_SWEEP;
}

static bool is_operator(yysymbol_kind_t k)
{
    const char *n = yysymbol_name(k);
    return !strcmp(n, "'+'") || !strcmp(n, "'-'") || !strcmp(n, "'*'") || !strcmp(n, "'/'") || !strcmp(n, "'.'") ||
           !strcmp(n, "','");
}

/* "unexpected identifier 'heads', expected newline or ';'": the expected set comes
 * from LAC, so it is exact; binary operators are left out when anything else fits. */
static int yyreport_syntax_error(const yypcontext_t *yyctx, yyscan_t scanner, FeCtx *ctx)
{
    (void)scanner;
    enum { MAX_EXP = 8 };
    yysymbol_kind_t exp[MAX_EXP];
    int n = yypcontext_expected_tokens(yyctx, exp, MAX_EXP);
    yysymbol_kind_t tok = yypcontext_token(yyctx);
    const DSL_YYLTYPE *l = yypcontext_location(yyctx);
    SrcLoc loc = L(ctx, *l);
    Arena *a = ctx->arena;
    ctx->n_syntax_errors++;

    const char *what = yysymbol_name(tok);
    const char *text = tok == YYSYMBOL_YYEOF ? NULL : token_text(ctx, l);
    if (tok == YYSYMBOL_YYEOF)
        what = "end of file";
    else if (tok == YYSYMBOL_SEP)
        what = text && !strcmp(text, ";") ? "';'" : "end of line";
    else if (text && (tok == YYSYMBOL_IDENT || tok == YYSYMBOL_NUMBER || tok == YYSYMBOL_STRING))
        what = arena_sprintf(a, "%s %s%s%s", yysymbol_name(tok), tok == YYSYMBOL_STRING ? "" : "'", text,
                             tok == YYSYMBOL_STRING ? "" : "'");
    else if (text && tok == YYSYMBOL_BOOL)
        what = arena_sprintf(a, "keyword '%s'", text);

    /* Binary operators are left out when anything else fits; section keywords when
     * an identifier fits too (they are only path words there); at the end of file
     * inside a block, only the missing '}' matters. */
    int keep = 0, n_ops = 0;
    bool has_ident = false, has_close = false;
    yysymbol_kind_t shown[MAX_EXP];
    for (int i = 0; i < n; i++) {
        n_ops += is_operator(exp[i]);
        has_ident = has_ident || exp[i] == YYSYMBOL_IDENT;
        has_close = has_close || !strcmp(yysymbol_name(exp[i]), "'}'");
    }
    for (int i = 0; i < n; i++) {
        if (tok == YYSYMBOL_YYEOF && has_close && strcmp(yysymbol_name(exp[i]), "'}'"))
            continue;
        if ((is_operator(exp[i]) && n_ops < n) || (has_ident && is_section_keyword(exp[i])))
            continue;
        shown[keep++] = exp[i];
    }
    const char *msg = arena_sprintf(a, "syntax error: unexpected %s", what);
    if (keep > 0) {
        msg = arena_sprintf(a, "%s, expected ", msg);
        for (int i = 0; i < keep; i++) {
            const char *sep = i == 0 ? "" : i == keep - 1 ? " or " : ", ";
            msg = arena_sprintf(a, "%s%s%s", msg, sep, yysymbol_name(shown[i]));
        }
    }
    diag_error(ctx->diags, loc, "%s", msg);

    /* An end of file inside an open bracket is an unclosed block: say which. */
    if (tok == YYSYMBOL_YYEOF && ctx->n_open > 0 && ctx->n_open <= FE_MAX_NEST) {
        char ch = ctx->open_ch[ctx->n_open - 1];
        const char *close = ch == '{' ? "}" : ch == '(' ? ")" : "]";
        diag_note(ctx->diags, ctx->open[ctx->n_open - 1], "unclosed '%c' opened here; add '%s' to close it", ch, close);
    }
    return 0;
}

static void dsl_yyerror(DSL_YYLTYPE *loc, yyscan_t scanner, FeCtx *ctx, const char *msg)
{
    (void)scanner;
    ctx->n_syntax_errors++;
    if (!strcmp(msg, "memory exhausted"))
        diag_error(ctx->diags, L(ctx, *loc), "input is nested too deeply (parser stack limit %d)", YYMAXDEPTH);
    else
        diag_error(ctx->diags, L(ctx, *loc), "%s", msg);
}
