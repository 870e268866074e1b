/* AST of a .relora file: what the parser builds and the checker consumes.
 * The tree is syntax only (no names resolved, no defaults); every node carries the
 * SrcLoc of the text it came from. All nodes live in the compilation's Arena. */
#ifndef RELORAC_AST_H
#define RELORAC_AST_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"

typedef enum {
    AST_NUM,    /* 128, 2k, 1e-3, 10%           */
    AST_STRING, /* "data/kjv.txt"                */
    AST_BOOL,   /* true | false                  */
    AST_IDENT,  /* dim, none, rmsnorm, x         */
    AST_LIST,   /* [a, b]                        */
    AST_TUPLE,  /* (a, b)                        */
    AST_CALL,   /* f(a, k = v)                   */
    AST_BINARY, /* a + b, a - b, a * b, a / b    */
    AST_NEG,    /* -a                            */
} AstExprKind;

typedef struct AstExpr AstExpr;

/* One call argument: positional when name == NULL. */
typedef struct AstArg {
    const char *name;
    SrcLoc name_loc;
    AstExpr *value;
} AstArg;

struct AstExpr {
    AstExprKind kind;
    SrcLoc loc;          /* whole expression; for AST_BINARY the operator itself */
    /* AST_NUM */
    bool is_int;         /* written without '.' or exponent */
    int64_t ival;        /* value after the k/M suffix (is_int) */
    double fval;         /* value as a double (always set) */
    char suffix;         /* 0, 'k', 'M' or '%' as written */
    /* AST_STRING (unescaped), AST_IDENT, AST_CALL (callee); AST_NUM: source text */
    const char *text;
    bool bval;           /* AST_BOOL */
    /* AST_BINARY ('+', '-', '*', '/'), AST_NEG (lhs) */
    char op;
    AstExpr *lhs, *rhs;
    /* AST_LIST, AST_TUPLE */
    AstExpr **items;
    int n_items;
    /* AST_CALL */
    AstArg *args;
    int n_args;
};

/* A dotted field name: `dim`, `schedule.reset_every`, `block.swiglu.hidden`. */
typedef struct AstPath {
    const char **parts;
    SrcLoc *locs;
    int n;
    SrcLoc loc;          /* the whole path */
} AstPath;

typedef enum {
    AST_STMT_ASSIGN,     /* path = expr               */
    AST_STMT_DEF,        /* name(params) { stmts }    */
    AST_STMT_RETURN,     /* return expr               */
    AST_STMT_VARIANT,    /* variant name { stmts }  (only in a sweep) */
} AstStmtKind;

typedef struct AstStmt AstStmt;
struct AstStmt {
    AstStmtKind kind;
    SrcLoc loc;          /* ASSIGN: the path; DEF, VARIANT: the name; RETURN: the keyword */
    AstPath path;        /* ASSIGN */
    AstExpr *value;      /* ASSIGN, RETURN */
    const char *name;    /* DEF, VARIANT */
    const char **params; /* DEF */
    SrcLoc *param_locs;
    int n_params;
    AstStmt **body;      /* DEF, VARIANT */
    int n_body;
    SrcLoc close_loc;    /* DEF, VARIANT: the closing '}' */
};

typedef enum { AST_ITEM_MODEL, AST_ITEM_ADAPTER, AST_ITEM_TRAIN, AST_ITEM_SWEEP } AstItemKind;

/* A top-level declaration: `model NAME [: PARENT] { ... }`, `adapter NAME { ... }`,
 * `train { ... }`, `sweep NAME { ... }`. */
typedef struct AstItem {
    AstItemKind kind;
    SrcLoc loc;          /* the keyword */
    const char *name;    /* NULL for train */
    SrcLoc name_loc;
    const char *parent;  /* model only; NULL when none */
    SrcLoc parent_loc;
    AstStmt **body;
    int n_body;
} AstItem;

typedef struct AstFile {
    const char *name;
    AstItem **items;
    int n_items;
} AstFile;

/* Growable arena arrays for the parser's list rules. */
typedef struct AstVec {
    void **data;
    int n, cap;
} AstVec;

void fe_vec_push(Arena *a, AstVec *v, void *item);

AstExpr *fe_expr_new(Arena *a, AstExprKind kind, SrcLoc loc);
/* Parses the text of a numeric literal (digits, optional fraction/exponent and one
 * k/M/% suffix, as the lexer matched it). Returns false on overflow. */
bool fe_num_parse(AstExpr *e, const char *text);
const char *fe_expr_kind_name(const AstExpr *e);
/* The source text of a path, "a.b.c". */
const char *fe_path_str(Arena *a, const AstPath *p);
/* A short rendering of an expression for messages and sweep variant names. */
const char *fe_expr_str(Arena *a, const AstExpr *e);

#endif
