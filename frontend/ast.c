/* AST helpers: constructors, numeric literals and renderings used in messages. */
#include "ast.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void fe_vec_push(Arena *a, AstVec *v, void *item)
{
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 8;
        v->data = arena_grow(a, v->data, (size_t)v->n, (size_t)cap, sizeof *v->data);
        v->cap = cap;
    }
    v->data[v->n++] = item;
}

AstExpr *fe_expr_new(Arena *a, AstExprKind kind, SrcLoc loc)
{
    AstExpr *e = ARENA_NEW(a, AstExpr);
    e->kind = kind;
    e->loc = loc;
    return e;
}

bool fe_num_parse(AstExpr *e, const char *text)
{
    size_t n = strlen(text);
    e->text = text;
    e->suffix = 0;
    if (n > 0 && (text[n - 1] == 'k' || text[n - 1] == 'M' || text[n - 1] == '%')) {
        e->suffix = text[n - 1];
        n--;
    }
    e->is_int = strcspn(text, ".eE") >= n;
    int64_t mult = e->suffix == 'k' ? 1000 : e->suffix == 'M' ? 1000000 : 1;
    char buf[64];
    bool ok = true;
    if (n >= sizeof buf) {
        /* Far too many digits for any value we accept. */
        e->fval = 1e300;
        e->ival = INT64_MAX;
        return !e->is_int;
    }
    memcpy(buf, text, n);
    buf[n] = '\0';
    e->fval = strtod(buf, NULL) * (double)mult;
    if (e->is_int) {
        errno = 0;
        long long v = strtoll(buf, NULL, 10);
        if (errno == ERANGE || v > INT64_MAX / mult) {
            ok = false;
            v = 0;
        }
        e->ival = (int64_t)v * mult;
    } else {
        e->ival = 0;
    }
    return ok;
}

const char *fe_expr_kind_name(const AstExpr *e)
{
    switch (e->kind) {
    case AST_NUM: return e->suffix == '%' ? "percentage" : e->is_int ? "integer" : "number";
    case AST_STRING: return "string";
    case AST_BOOL: return "boolean";
    case AST_IDENT: return "name";
    case AST_LIST: return "list";
    case AST_TUPLE: return "tuple";
    case AST_CALL: return "call";
    case AST_BINARY: return "expression";
    case AST_NEG: return "expression";
    }
    return "expression";
}

const char *fe_path_str(Arena *a, const AstPath *p)
{
    const char *s = p->n > 0 ? p->parts[0] : "";
    for (int i = 1; i < p->n; i++)
        s = arena_sprintf(a, "%s.%s", s, p->parts[i]);
    return s;
}

static const char *items_str(Arena *a, AstExpr *const *items, int n)
{
    const char *s = "";
    for (int i = 0; i < n; i++)
        s = arena_sprintf(a, "%s%s%s", s, i ? ", " : "", fe_expr_str(a, items[i]));
    return s;
}

const char *fe_expr_str(Arena *a, const AstExpr *e)
{
    if (!e)
        return "?";
    switch (e->kind) {
    case AST_NUM: return e->text ? e->text : arena_sprintf(a, "%g", e->fval);
    case AST_STRING: return arena_sprintf(a, "\"%s\"", e->text);
    case AST_BOOL: return e->bval ? "true" : "false";
    case AST_IDENT: return e->text;
    case AST_LIST: return arena_sprintf(a, "[%s]", items_str(a, e->items, e->n_items));
    case AST_TUPLE: return arena_sprintf(a, "(%s)", items_str(a, e->items, e->n_items));
    case AST_CALL: {
        const char *s = "";
        for (int i = 0; i < e->n_args; i++) {
            const AstArg *g = &e->args[i];
            s = arena_sprintf(a, "%s%s%s%s%s", s, i ? ", " : "", g->name ? g->name : "", g->name ? " = " : "",
                              fe_expr_str(a, g->value));
        }
        return arena_sprintf(a, "%s(%s)", e->text, s);
    }
    case AST_BINARY:
        return arena_sprintf(a, "%s %c %s", fe_expr_str(a, e->lhs), e->op, fe_expr_str(a, e->rhs));
    case AST_NEG: return arena_sprintf(a, "-%s", fe_expr_str(a, e->lhs));
    }
    return "?";
}
