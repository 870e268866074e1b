/* The IR's text form, read back: a hand-written lexer and a line-oriented recursive
 * descent parser for the grammar in docs/ir.md. It resolves names (values, globals,
 * ops) and checks what the text alone decides (syntax, arity, duplicate names); types
 * and op rules are ir_verify's job, so a parsed module should be verified before use.
 * Every error carries a line:col in the IR file; the parser never trusts its input. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* Value ids above this are rejected so that id arithmetic cannot overflow. */
#define MAX_VALUE_ID 1000000000

typedef enum {
    T_EOF,
    T_NL,
    T_IDENT,   /* module, f32, matmul, trans_b, schedule.kind */
    T_AT,      /* @name or @"name"; s holds the name */
    T_VAL,     /* %12; val holds 12 */
    T_INT,
    T_FLOAT,
    T_STR,     /* s holds the decoded bytes */
    T_COMMENT, /* # text; s holds the trimmed text */
    T_PUNCT,   /* one of { } [ ] ( ) , : = |; ch holds it */
    T_ERROR,   /* already reported by the lexer */
} TokKind;

typedef struct Tok {
    TokKind kind;
    const char *p; /* raw text */
    size_t len;
    int line, col;
    char ch;
    int64_t i;
    double f;
    const char *s;
    int val;
} Tok;

typedef struct Pending { /* a %N used before its definition was read */
    IrNode **slot;
    int id;
    SrcLoc loc;
} Pending;

typedef struct ValMap { /* open addressing, id -> node */
    int *keys;
    IrNode **vals;
    int cap, n;
} ValMap;

typedef struct GlobMap { /* open addressing, name -> global */
    IrGlobal **vals;
    int cap, n;
} GlobMap;

typedef struct Parser {
    Arena *a;
    Diags *d;
    const char *file;
    const char *src;
    size_t len, pos;
    int line, col;
    Tok tok;
    IrModule *m;
    GlobMap globals;
    ValMap vals;
    Pending *pend;
    int n_pend, cap_pend;
    IrNode poison; /* stands for a %N whose line failed, so its uses are not reported again */
} Parser;

/* ---- diagnostics -------------------------------------------------------------- */

static SrcLoc tok_loc(const Parser *P, const Tok *t)
{
    SrcLoc l = {P->file, t->line, t->col, t->len > 0 && t->len < 1000 ? (int)t->len : 1};
    return l;
}

/* A short description of the current token for "expected X, got Y" messages. */
static const char *tok_desc(Parser *P)
{
    const Tok *t = &P->tok;
    if (t->kind == T_EOF)
        return "end of file";
    if (t->kind == T_NL)
        return "end of line";
    if (t->kind == T_COMMENT)
        return "a comment";
    int n = t->len > 24 ? 24 : (int)t->len;
    return arena_sprintf(P->a, "'%.*s%s'", n, t->p, t->len > 24 ? "..." : "");
}

/* Reports "expected WHAT, got TOKEN" unless the lexer already reported this token. */
static void expected(Parser *P, const char *what)
{
    if (P->tok.kind != T_ERROR)
        diag_error(P->d, tok_loc(P, &P->tok), "expected %s, got %s", what, tok_desc(P));
}

/* ---- lexer -------------------------------------------------------------------- */

static int peekc(const Parser *P, size_t k)
{
    return P->pos + k < P->len ? (unsigned char)P->src[P->pos + k] : -1;
}

static void advance(Parser *P)
{
    if (P->pos < P->len) {
        if (P->src[P->pos] == '\n') {
            P->line++;
            P->col = 1;
        } else {
            P->col++;
        }
        P->pos++;
    }
}

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_name_char(int c)
{
    return is_alpha(c) || is_digit(c) || c == '.' || c == '$' || c == '-';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void lex_error(Parser *P, const char *msg)
{
    diag_error(P->d, tok_loc(P, &P->tok), "%s", msg);
    P->tok.kind = T_ERROR;
}

/* Reads a "..." string at pos into tok.s; returns false (reported) when malformed. */
static bool lex_string(Parser *P)
{
    size_t cap = 16, n = 0;
    char *buf = arena_alloc(P->a, cap);
    advance(P); /* the opening quote */
    for (;;) {
        int c = peekc(P, 0);
        if (c < 0 || c == '\n') {
            P->tok.len = P->pos - (size_t)(P->tok.p - P->src);
            lex_error(P, "unterminated string");
            return false;
        }
        advance(P);
        if (c == '"')
            break;
        if (c == '\\') {
            int e = peekc(P, 0);
            if (e == 'n' || e == 't' || e == '"' || e == '\\') {
                c = e == 'n' ? '\n' : e == 't' ? '\t' : e;
                advance(P);
            } else if (e == 'x' && hexval(peekc(P, 1)) >= 0 && hexval(peekc(P, 2)) >= 0) {
                c = hexval(peekc(P, 1)) * 16 + hexval(peekc(P, 2));
                advance(P);
                advance(P);
                advance(P);
                if (c == 0) {
                    P->tok.len = P->pos - (size_t)(P->tok.p - P->src);
                    lex_error(P, "string contains a NUL byte");
                    return false;
                }
            } else {
                P->tok.len = P->pos - (size_t)(P->tok.p - P->src);
                lex_error(P, "unknown escape in string; expected \\n, \\t, \\\", \\\\ or \\xHH");
                return false;
            }
        } else if (c == 0) {
            P->tok.len = P->pos - (size_t)(P->tok.p - P->src);
            lex_error(P, "string contains a NUL byte");
            return false;
        }
        if (n + 1 >= cap) {
            buf = arena_grow(P->a, buf, n, cap * 2, 1);
            cap *= 2;
        }
        buf[n++] = (char)c;
    }
    buf[n] = '\0';
    P->tok.s = buf;
    return true;
}

static void lex_number(Parser *P)
{
    size_t start = P->pos;
    bool is_float = false;
    if (peekc(P, 0) == '-' || peekc(P, 0) == '+')
        advance(P);
    if (peekc(P, 0) == 'i' && peekc(P, 1) == 'n' && peekc(P, 2) == 'f' && !is_name_char(peekc(P, 3))) {
        P->tok.kind = T_FLOAT;
        P->tok.f = P->src[start] == '-' ? -INFINITY : INFINITY;
        advance(P);
        advance(P);
        advance(P);
        P->tok.len = P->pos - start;
        return;
    }
    if (!is_digit(peekc(P, 0))) {
        P->tok.len = P->pos - start;
        lex_error(P, "expected a digit after the sign");
        return;
    }
    while (is_digit(peekc(P, 0)))
        advance(P);
    if (peekc(P, 0) == '.') {
        is_float = true;
        advance(P);
        while (is_digit(peekc(P, 0)))
            advance(P);
    }
    if (peekc(P, 0) == 'e' || peekc(P, 0) == 'E') {
        int k = 1;
        if (peekc(P, 1) == '+' || peekc(P, 1) == '-')
            k = 2;
        if (is_digit(peekc(P, (size_t)k))) {
            is_float = true;
            for (int j = 0; j < k; j++)
                advance(P);
            while (is_digit(peekc(P, 0)))
                advance(P);
        }
    }
    P->tok.len = P->pos - start;
    if (is_name_char(peekc(P, 0))) {
        while (is_name_char(peekc(P, 0)))
            advance(P);
        P->tok.len = P->pos - start;
        lex_error(P, arena_sprintf(P->a, "malformed number '%.*s'", (int)P->tok.len, P->src + start));
        return;
    }
    char *text = arena_strndup(P->a, P->src + start, P->tok.len);
    errno = 0;
    if (is_float) {
        P->tok.kind = T_FLOAT;
        P->tok.f = strtod(text, NULL);
        if (isinf(P->tok.f))
            lex_error(P, arena_sprintf(P->a, "float literal '%s' is out of range", text));
    } else {
        P->tok.kind = T_INT;
        P->tok.i = strtoll(text, NULL, 10);
        if (errno == ERANGE)
            lex_error(P, arena_sprintf(P->a, "integer literal '%s' is out of range", text));
    }
}

/* Reads the next token into P->tok. */
static void next(Parser *P)
{
    for (;;) {
        int c = peekc(P, 0);
        if (c == ' ' || c == '\t' || c == '\r')
            advance(P);
        else
            break;
    }
    Tok *t = &P->tok;
    memset(t, 0, sizeof *t);
    t->p = P->src + P->pos;
    t->line = P->line;
    t->col = P->col;
    t->len = 1;
    int c = peekc(P, 0);
    if (c < 0) {
        t->kind = T_EOF;
        t->len = 0;
        return;
    }
    if (c == '\n') {
        t->kind = T_NL;
        advance(P);
        return;
    }
    if (c == '#') {
        size_t start = P->pos + 1;
        while (peekc(P, 0) >= 0 && peekc(P, 0) != '\n')
            advance(P);
        size_t end = P->pos;
        t->len = end - (start - 1);
        while (start < end && (P->src[start] == ' ' || P->src[start] == '\t'))
            start++;
        while (end > start && (P->src[end - 1] == ' ' || P->src[end - 1] == '\t' || P->src[end - 1] == '\r'))
            end--;
        t->kind = T_COMMENT;
        t->s = arena_strndup(P->a, P->src + start, end - start);
        return;
    }
    if (c == '"') {
        t->kind = T_STR;
        if (lex_string(P))
            t->len = P->pos - (size_t)(t->p - P->src);
        return;
    }
    if (c == '@') {
        advance(P);
        t->kind = T_AT;
        if (peekc(P, 0) == '"') {
            if (lex_string(P))
                t->len = P->pos - (size_t)(t->p - P->src);
            else
                t->kind = T_ERROR;
            return;
        }
        size_t start = P->pos;
        while (is_name_char(peekc(P, 0)))
            advance(P);
        t->len = P->pos - start + 1;
        if (P->pos == start)
            lex_error(P, "expected a name after '@'");
        else
            t->s = arena_strndup(P->a, P->src + start, P->pos - start);
        return;
    }
    if (c == '%') {
        advance(P);
        size_t start = P->pos;
        int64_t v = 0;
        while (is_digit(peekc(P, 0))) {
            if (v <= MAX_VALUE_ID)
                v = v * 10 + (peekc(P, 0) - '0');
            advance(P);
        }
        t->len = P->pos - start + 1;
        if (P->pos == start) {
            lex_error(P, "expected a value number after '%'");
        } else if (v > MAX_VALUE_ID) {
            lex_error(P, arena_sprintf(P->a, "value number %.*s is too large", (int)t->len, t->p));
        } else {
            t->kind = T_VAL;
            t->val = (int)v;
        }
        return;
    }
    if (is_digit(c) || c == '-' || c == '+') {
        lex_number(P);
        return;
    }
    if (is_alpha(c)) {
        size_t start = P->pos;
        while (is_alpha(peekc(P, 0)) || is_digit(peekc(P, 0)) || peekc(P, 0) == '.')
            advance(P);
        t->kind = T_IDENT;
        t->len = P->pos - start;
        return;
    }
    if (strchr("{}[](),:=|", c)) {
        t->kind = T_PUNCT;
        t->ch = (char)c;
        advance(P);
        return;
    }
    advance(P);
    if (c >= 0x20 && c < 0x7f)
        lex_error(P, arena_sprintf(P->a, "unexpected character '%c'", c));
    else
        lex_error(P, arena_sprintf(P->a, "unexpected byte 0x%02x", (unsigned)c));
}

/* ---- token helpers ------------------------------------------------------------ */

static bool is_punct(const Parser *P, char ch)
{
    return P->tok.kind == T_PUNCT && P->tok.ch == ch;
}

static bool is_word(const Parser *P, const char *w)
{
    return P->tok.kind == T_IDENT && P->tok.len == strlen(w) && memcmp(P->tok.p, w, P->tok.len) == 0;
}

static const char *tok_text(Parser *P)
{
    return arena_strndup(P->a, P->tok.p, P->tok.len);
}

static bool expect_punct(Parser *P, char ch, const char *what)
{
    if (is_punct(P, ch)) {
        next(P);
        return true;
    }
    expected(P, what);
    return false;
}

/* Skips to the start of the next line (error recovery). */
static void skip_line(Parser *P)
{
    while (P->tok.kind != T_NL && P->tok.kind != T_EOF)
        next(P);
    if (P->tok.kind == T_NL)
        next(P);
}

/* Ends a statement: an optional comment, then a newline or the end of the file.
 * A comment's text is returned through name (when name is not NULL). */
static bool end_line(Parser *P, const char **name)
{
    if (P->tok.kind == T_COMMENT) {
        if (name)
            *name = *P->tok.s ? P->tok.s : NULL;
        next(P);
    }
    if (P->tok.kind == T_NL) {
        next(P);
        return true;
    }
    if (P->tok.kind == T_EOF)
        return true;
    expected(P, "end of line");
    skip_line(P);
    return false;
}

/* Skips blank and comment-only lines. */
static void skip_blank(Parser *P)
{
    while (P->tok.kind == T_NL || P->tok.kind == T_COMMENT)
        next(P);
}

/* ---- maps ------------------------------------------------------------------------ */

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static IrGlobal *glob_find(const GlobMap *gm, const char *name)
{
    if (!gm->cap)
        return NULL;
    for (uint32_t h = hash_str(name);; h++) {
        IrGlobal *g = gm->vals[h & (uint32_t)(gm->cap - 1)];
        if (!g)
            return NULL;
        if (strcmp(g->name, name) == 0)
            return g;
    }
}

static void glob_put(Parser *P, IrGlobal *g)
{
    GlobMap *gm = &P->globals;
    if (2 * (gm->n + 1) > gm->cap) {
        GlobMap old = *gm;
        gm->cap = old.cap ? old.cap * 2 : 64;
        gm->vals = ARENA_ARRAY(P->a, IrGlobal *, gm->cap);
        gm->n = 0;
        for (int i = 0; i < old.cap; i++)
            if (old.vals[i])
                glob_put(P, old.vals[i]);
    }
    uint32_t h = hash_str(g->name);
    while (gm->vals[h & (uint32_t)(gm->cap - 1)])
        h++;
    gm->vals[h & (uint32_t)(gm->cap - 1)] = g;
    gm->n++;
}

static IrNode *val_find(const ValMap *vm, int id)
{
    if (!vm->cap)
        return NULL;
    for (uint32_t h = (uint32_t)id * 2654435761u;; h++) {
        uint32_t k = h & (uint32_t)(vm->cap - 1);
        if (!vm->vals[k])
            return NULL;
        if (vm->keys[k] == id)
            return vm->vals[k];
    }
}

static void val_put(Parser *P, int id, IrNode *n)
{
    ValMap *vm = &P->vals;
    if (2 * (vm->n + 1) > vm->cap) {
        ValMap old = *vm;
        vm->cap = old.cap ? old.cap * 2 : 64;
        vm->keys = ARENA_ARRAY(P->a, int, vm->cap);
        vm->vals = ARENA_ARRAY(P->a, IrNode *, vm->cap);
        vm->n = 0;
        for (int i = 0; i < old.cap; i++)
            if (old.vals[i])
                val_put(P, old.keys[i], old.vals[i]);
    }
    uint32_t h = (uint32_t)id * 2654435761u;
    while (P->vals.vals[h & (uint32_t)(vm->cap - 1)])
        h++;
    vm->keys[h & (uint32_t)(vm->cap - 1)] = id;
    vm->vals[h & (uint32_t)(vm->cap - 1)] = n;
    vm->n++;
}

/* ---- pieces: types, attributes, locations --------------------------------------- */

static bool parse_type(Parser *P, IrType *t)
{
    static const char *const dtypes[] = {"f32", "bf16", "i32"};
    memset(t, 0, sizeof *t);
    if (P->tok.kind != T_IDENT) {
        expected(P, "a tensor type (f32[...], bf16[...] or i32[...])");
        return false;
    }
    int dt = -1;
    for (int i = 0; i < 3; i++)
        if (is_word(P, dtypes[i]))
            dt = i;
    if (dt < 0) {
        const char *name = tok_text(P);
        const char *hint = diag_suggest(name, dtypes, 3);
        diag_error(P->d, tok_loc(P, &P->tok), "unknown dtype '%s'; expected f32, bf16 or i32%s%s%s", name,
                   hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
        return false;
    }
    t->dtype = (IrDType)dt;
    next(P);
    if (!expect_punct(P, '[', "'[' after the dtype"))
        return false;
    while (!is_punct(P, ']')) {
        if (t->rank > 0 && !expect_punct(P, ',', "',' or ']' in the shape"))
            return false;
        if (P->tok.kind != T_INT) {
            expected(P, "a dimension (a positive integer)");
            return false;
        }
        if (P->tok.i <= 0) {
            diag_error(P->d, tok_loc(P, &P->tok), "dimension must be positive (got %lld)", (long long)P->tok.i);
            return false;
        }
        if (t->rank == IR_MAX_RANK) {
            diag_error(P->d, tok_loc(P, &P->tok), "tensor rank exceeds the maximum of %d", IR_MAX_RANK);
            return false;
        }
        t->dim[t->rank++] = P->tok.i;
        next(P);
    }
    next(P);
    return true;
}

static bool parse_attr_value(Parser *P, IrAttrs *as, const char *key)
{
    switch (P->tok.kind) {
    case T_INT:
        ir_attrs_set_int(P->a, as, key, P->tok.i);
        next(P);
        return true;
    case T_FLOAT:
        ir_attrs_set_float(P->a, as, key, P->tok.f);
        next(P);
        return true;
    case T_STR:
        ir_attrs_set_str(P->a, as, key, P->tok.s);
        next(P);
        return true;
    case T_IDENT:
        if (is_word(P, "inf") || is_word(P, "nan")) {
            ir_attrs_set_float(P->a, as, key, is_word(P, "inf") ? INFINITY : NAN);
            next(P);
            return true;
        }
        break;
    case T_PUNCT:
        if (P->tok.ch == '[') {
            int n = 0, cap = 4;
            int64_t *v = ARENA_ARRAY(P->a, int64_t, cap);
            next(P);
            while (!is_punct(P, ']')) {
                if (n > 0 && !expect_punct(P, ',', "',' or ']' in the integer list"))
                    return false;
                if (P->tok.kind != T_INT) {
                    expected(P, "an integer in the list");
                    return false;
                }
                if (n == cap) {
                    v = arena_grow(P->a, v, (size_t)n, (size_t)cap * 2, sizeof *v);
                    cap *= 2;
                }
                v[n++] = P->tok.i;
                next(P);
            }
            next(P);
            ir_attrs_set_ints(P->a, as, key, v, n);
            return true;
        }
        break;
    default:
        break;
    }
    expected(P, "an attribute value (integer, float, string or [integers])");
    return false;
}

/* key = value; duplicates are an error. */
static bool parse_attr(Parser *P, IrAttrs *as)
{
    if (P->tok.kind != T_IDENT && P->tok.kind != T_STR) {
        expected(P, "an attribute name");
        return false;
    }
    Tok key_tok = P->tok;
    const char *key = P->tok.kind == T_STR ? P->tok.s : tok_text(P);
    next(P);
    if (!expect_punct(P, '=', "'=' after the attribute name"))
        return false;
    if (ir_attrs_get(as, key)) {
        diag_error(P->d, tok_loc(P, &key_tok), "duplicate attribute '%s'", key);
        return false;
    }
    return parse_attr_value(P, as, key);
}

/* {k = v, ...} */
static bool parse_attr_dict(Parser *P, IrAttrs *as)
{
    next(P); /* '{' */
    while (!is_punct(P, '}')) {
        if (as->n > 0 && !expect_punct(P, ',', "',' or '}' in the attributes"))
            return false;
        if (!parse_attr(P, as))
            return false;
    }
    next(P);
    return true;
}

/* loc("file":line:col) or loc(unknown), the current token being the word loc. */
static bool parse_loc(Parser *P, SrcLoc *loc)
{
    next(P);
    if (!expect_punct(P, '(', "'(' after loc"))
        return false;
    if (is_word(P, "unknown")) {
        next(P);
        *loc = srcloc_none();
        return expect_punct(P, ')', "')' to close loc(unknown)");
    }
    if (P->tok.kind != T_STR) {
        expected(P, "a file name string or unknown in loc(...)");
        return false;
    }
    const char *file = P->tok.s;
    next(P);
    int64_t lc[2];
    for (int i = 0; i < 2; i++) {
        if (!expect_punct(P, ':', "':' in loc(\"file\":line:col)"))
            return false;
        if (P->tok.kind != T_INT || P->tok.i < 0 || P->tok.i > INT_MAX) {
            expected(P, i == 0 ? "a line number" : "a column number");
            return false;
        }
        lc[i] = P->tok.i;
        next(P);
    }
    if (!expect_punct(P, ')', "')' to close loc(...)"))
        return false;
    *loc = (SrcLoc){file, (int)lc[0], (int)lc[1], 1};
    return true;
}

/* ---- module header ----------------------------------------------------------------- */

static const char *const flag_names[] = {"trainable", "decay", "export", "adapter", "moment"};
#define N_FLAGS ((int)(sizeof flag_names / sizeof flag_names[0]))

/* global @name : type class [flag|flag] [{attrs}] [loc(...)] */
static void parse_global(Parser *P)
{
    next(P); /* global */
    if (P->tok.kind != T_AT) {
        expected(P, "a global name (@name)");
        skip_line(P);
        return;
    }
    const char *name = P->tok.s;
    SrcLoc loc = tok_loc(P, &P->tok);
    IrGlobal *prev = glob_find(&P->globals, name);
    if (prev) {
        diag_error(P->d, loc, "global @%s is declared twice (first on line %d)", name, prev->loc.line);
        skip_line(P);
        return;
    }
    next(P);
    IrType type;
    if (!expect_punct(P, ':', "':' and a type after the global's name") || !parse_type(P, &type)) {
        skip_line(P);
        return;
    }
    const char *classes[IR_CLASS_COUNT];
    for (int c = 0; c < IR_CLASS_COUNT; c++)
        classes[c] = ir_class_name((IrMemClass)c);
    if (P->tok.kind != T_IDENT) {
        expected(P, "a memory class (param, frozen, grad, optim, data, state, ...)");
        skip_line(P);
        return;
    }
    int cls = -1;
    for (int c = 0; c < IR_CLASS_COUNT; c++)
        if (is_word(P, classes[c]))
            cls = c;
    if (cls < 0) {
        const char *w = tok_text(P);
        const char *hint = diag_suggest(w, classes, IR_CLASS_COUNT);
        diag_error(P->d, tok_loc(P, &P->tok), "unknown memory class '%s'%s%s%s", w, hint ? "; did you mean '" : "",
                   hint ? hint : "", hint ? "'?" : "");
        skip_line(P);
        return;
    }
    next(P);
    unsigned flags = 0;
    while (P->tok.kind == T_IDENT && !is_word(P, "loc")) {
        int f = -1;
        for (int i = 0; i < N_FLAGS; i++)
            if (is_word(P, flag_names[i]))
                f = i;
        if (f < 0) {
            const char *w = tok_text(P);
            const char *hint = diag_suggest(w, flag_names, N_FLAGS);
            diag_error(P->d, tok_loc(P, &P->tok), "unknown global flag '%s'%s%s%s", w, hint ? "; did you mean '" : "",
                       hint ? hint : "", hint ? "'?" : "");
            skip_line(P);
            return;
        }
        flags |= 1u << f;
        next(P);
        if (!is_punct(P, '|'))
            break;
        next(P);
        if (P->tok.kind != T_IDENT) {
            expected(P, "a flag name after '|'");
            skip_line(P);
            return;
        }
    }
    IrAttrs attrs = {0};
    if (is_punct(P, '{') && !parse_attr_dict(P, &attrs)) {
        skip_line(P);
        return;
    }
    if (is_word(P, "loc") && !parse_loc(P, &loc)) {
        skip_line(P);
        return;
    }
    if (!end_line(P, NULL))
        return;
    IrGlobal *g = ir_global_new(P->m, name, type, (IrMemClass)cls, flags, loc);
    g->attrs = attrs;
    glob_put(P, g);
}

/* attr k = v, k = v */
static void parse_module_attrs(Parser *P)
{
    next(P); /* attr */
    do {
        if (is_punct(P, ','))
            next(P);
        if (!parse_attr(P, &P->m->attrs)) {
            skip_line(P);
            return;
        }
    } while (is_punct(P, ','));
    end_line(P, NULL);
}

/* Reads a closing '}' line; false at end of file (reported). */
static bool parse_close(Parser *P, const char *what)
{
    if (P->tok.kind == T_EOF) {
        expected(P, what);
        return false;
    }
    next(P);
    end_line(P, NULL);
    return true;
}

static bool parse_module(Parser *P)
{
    skip_blank(P);
    if (!is_word(P, "module")) {
        expected(P, "'module' at the start of the IR");
        return false;
    }
    next(P);
    const char *name = NULL;
    if (P->tok.kind == T_IDENT)
        name = tok_text(P);
    else if (P->tok.kind == T_STR)
        name = P->tok.s;
    if (name)
        next(P);
    P->m = ir_module_new(P->a, name ? name : "");
    if (!expect_punct(P, '{', "'{' after the module name"))
        skip_line(P);
    else
        end_line(P, NULL);
    for (;;) {
        skip_blank(P);
        if (is_punct(P, '}') || P->tok.kind == T_EOF)
            return parse_close(P, "'}' to close the module");
        if (is_word(P, "global")) {
            parse_global(P);
        } else if (is_word(P, "attr")) {
            parse_module_attrs(P);
        } else if (is_word(P, "func")) {
            expected(P, "'}' to close the module before the first func");
            return true;
        } else {
            expected(P, "'global', 'attr' or '}' in the module");
            skip_line(P);
        }
    }
}

/* ---- functions ------------------------------------------------------------------------ */

static void add_pending(Parser *P, IrNode **slot, int id, SrcLoc loc)
{
    if (P->n_pend == P->cap_pend) {
        int cap = P->cap_pend ? P->cap_pend * 2 : 32;
        P->pend = arena_grow(P->a, P->pend, (size_t)P->n_pend, (size_t)cap, sizeof *P->pend);
        P->cap_pend = cap;
    }
    P->pend[P->n_pend++] = (Pending){slot, id, loc};
}

static void append_node(Parser *P, IrFunc *f, IrNode *n)
{
    if (f->n_nodes == f->cap_nodes) {
        int cap = f->cap_nodes ? f->cap_nodes * 2 : 16;
        f->nodes = arena_grow(P->a, f->nodes, (size_t)f->n_nodes, (size_t)cap, sizeof *f->nodes);
        f->cap_nodes = cap;
    }
    f->nodes[f->n_nodes++] = n;
}

/* An operand list entry: %N or @name. */
typedef struct Operand {
    bool is_global;
    int id;
    IrGlobal *g;
    SrcLoc loc;
} Operand;

static bool parse_operand(Parser *P, Operand *o)
{
    o->loc = tok_loc(P, &P->tok);
    if (P->tok.kind == T_VAL) {
        o->is_global = false;
        o->id = P->tok.val;
        next(P);
        return true;
    }
    if (P->tok.kind == T_AT) {
        o->is_global = true;
        o->g = glob_find(&P->globals, P->tok.s);
        if (!o->g) {
            const char **names = ARENA_ARRAY(P->a, const char *, P->m->n_globals + 1);
            for (int i = 0; i < P->m->n_globals; i++)
                names[i] = P->m->globals[i]->name;
            const char *hint = diag_suggest(P->tok.s, names, P->m->n_globals);
            diag_error(P->d, o->loc, "unknown global @%s%s%s%s", P->tok.s, hint ? "; did you mean @" : "",
                       hint ? hint : "", hint ? "?" : "");
            return false;
        }
        next(P);
        return true;
    }
    expected(P, "an operand (%N or @global)");
    return false;
}

static void parse_node_rest(Parser *P, IrFunc *f, int id, SrcLoc id_loc);

/* [%N =] op operands [{attrs}] [: type] [group(G)] [loc(...)] [# name] */
static void parse_node(Parser *P, IrFunc *f)
{
    int id = -1;
    SrcLoc id_loc = tok_loc(P, &P->tok);
    if (P->tok.kind == T_VAL) {
        id = P->tok.val;
        next(P);
        if (!expect_punct(P, '=', "'=' after the value number")) {
            skip_line(P);
            return;
        }
    }
    int errors = P->d->n_errors;
    parse_node_rest(P, f, id, id_loc);
    if (P->d->n_errors != errors && id >= 0 && !val_find(&P->vals, id))
        val_put(P, id, &P->poison);
}

static void parse_node_rest(Parser *P, IrFunc *f, int id, SrcLoc id_loc)
{
    if (P->tok.kind != T_IDENT) {
        expected(P, "an op name");
        skip_line(P);
        return;
    }
    const char *opname = tok_text(P);
    SrcLoc loc = tok_loc(P, &P->tok);
    IrOpKind op = ir_op_lookup(opname);
    if (op == IR_OP_COUNT) {
        const char *names[IR_OP_COUNT];
        for (int i = 0; i < IR_OP_COUNT; i++)
            names[i] = ir_op_info[i].name;
        const char *hint = diag_suggest(opname, names, IR_OP_COUNT);
        diag_error(P->d, loc, "unknown op '%s'%s%s%s", opname, hint ? "; did you mean '" : "", hint ? hint : "",
                   hint ? "'?" : "");
        skip_line(P);
        return;
    }
    const IrOpInfo *info = &ir_op_info[op];
    bool effect = (info->flags & OPF_EFFECT) != 0;
    if (effect && id >= 0) {
        diag_error(P->d, id_loc, "%s is an effect op and yields no value; drop '%%%d ='", opname, id);
        skip_line(P);
        return;
    }
    if (!effect && id < 0) {
        diag_error(P->d, loc, "%s yields a value; expected '%%N = %s ...'", opname, opname);
        skip_line(P);
        return;
    }
    next(P);

    /* operands */
    int n_ops = 0, cap_ops = 8;
    Operand *ops = ARENA_ARRAY(P->a, Operand, cap_ops);
    if (P->tok.kind == T_VAL || P->tok.kind == T_AT) {
        for (;;) {
            if (n_ops == cap_ops) {
                ops = arena_grow(P->a, ops, (size_t)n_ops, (size_t)cap_ops * 2, sizeof *ops);
                cap_ops *= 2;
            }
            if (!parse_operand(P, &ops[n_ops])) {
                skip_line(P);
                return;
            }
            n_ops++;
            if (!is_punct(P, ','))
                break;
            next(P);
        }
    }
    int n_in = 0, n_gl = 0;
    for (int i = 0; i < n_ops; i++)
        ops[i].is_global ? n_gl++ : n_in++;
    bool arity_ok = info->n_values < 0 ? n_in >= 1 : n_in == info->n_values;
    if (!arity_ok) {
        if (info->n_values < 0)
            diag_error(P->d, loc, "%s takes at least 1 value operand (got %d)", opname, n_in);
        else
            diag_error(P->d, loc, "%s takes %d value operand%s (got %d)", opname, info->n_values,
                       info->n_values == 1 ? "" : "s", n_in);
    }
    if (n_gl != info->n_globals) {
        diag_error(P->d, loc, "%s takes %d global operand%s (got %d)", opname, info->n_globals,
                   info->n_globals == 1 ? "" : "s", n_gl);
        arity_ok = false;
    }
    if (!arity_ok) {
        skip_line(P);
        return;
    }

    IrNode *n = ARENA_NEW(P->a, IrNode);
    n->id = id;
    n->op = op;
    n->type = (IrType){IR_F32, -1, {0}};
    n->group = -1;
    n->loc = loc;
    n->n_in = n_in;
    n->n_gl = n_gl;
    n->in = ARENA_ARRAY(P->a, IrNode *, n_in + 1);
    n->gl = ARENA_ARRAY(P->a, IrGlobal *, n_gl + 1);
    for (int i = 0, vi = 0, gi = 0; i < n_ops; i++) {
        if (ops[i].is_global) {
            n->gl[gi++] = ops[i].g;
        } else {
            n->in[vi] = val_find(&P->vals, ops[i].id);
            if (!n->in[vi])
                add_pending(P, &n->in[vi], ops[i].id, ops[i].loc);
            vi++;
        }
    }

    if (is_punct(P, '{') && !parse_attr_dict(P, &n->attrs)) {
        skip_line(P);
        return;
    }
    if (is_punct(P, ':')) {
        if (effect) {
            diag_error(P->d, tok_loc(P, &P->tok), "%s is an effect op and has no result type", opname);
            skip_line(P);
            return;
        }
        next(P);
        if (!parse_type(P, &n->type)) {
            skip_line(P);
            return;
        }
    } else if (!effect) {
        expected(P, "':' and the result type");
        skip_line(P);
        return;
    }
    if (is_word(P, "group")) {
        next(P);
        if (!expect_punct(P, '(', "'(' after group")) {
            skip_line(P);
            return;
        }
        if (P->tok.kind != T_INT || P->tok.i < 0 || P->tok.i > INT_MAX) {
            expected(P, "a group number");
            skip_line(P);
            return;
        }
        n->group = (int)P->tok.i;
        next(P);
        if (!expect_punct(P, ')', "')' after the group number")) {
            skip_line(P);
            return;
        }
    }
    if (is_word(P, "loc") && !parse_loc(P, &n->loc)) {
        skip_line(P);
        return;
    }
    const char *name = NULL;
    if (!end_line(P, &name))
        return;
    n->name = name;
    if (id >= 0) {
        IrNode *prev = val_find(&P->vals, id);
        if (prev) {
            diag_error(P->d, id_loc, "value %%%d is defined twice", id);
            return;
        }
        val_put(P, id, n);
    }
    append_node(P, f, n);
}

/* Resolves forward references, then numbers effect nodes: each takes the id after
 * its predecessor's when free (what ir_func_renumber gives), else a fresh one. */
static void finish_func(Parser *P, IrFunc *f)
{
    for (int i = 0; i < P->n_pend; i++) {
        IrNode *n = val_find(&P->vals, P->pend[i].id);
        if (n == &P->poison)
            n = NULL;
        else if (!n)
            diag_error(P->d, P->pend[i].loc, "undefined value %%%d in func @%s", P->pend[i].id, f->name);
        *P->pend[i].slot = n;
    }
    P->n_pend = 0;
    int max_id = -1;
    for (int i = 0; i < f->n_nodes; i++)
        if (f->nodes[i]->id > max_id)
            max_id = f->nodes[i]->id;
    for (int i = 0; i < f->n_nodes; i++) {
        IrNode *n = f->nodes[i];
        if (n->id >= 0)
            continue;
        int cand = i > 0 ? f->nodes[i - 1]->id + 1 : 0;
        if (val_find(&P->vals, cand))
            cand = ++max_id;
        else if (cand > max_id)
            max_id = cand;
        n->id = cand;
        val_put(P, cand, n);
    }
    f->next_id = max_id + 1;
}

static void parse_func(Parser *P)
{
    next(P); /* func */
    if (P->tok.kind != T_AT) {
        expected(P, "a function name (@name)");
        skip_line(P);
        return;
    }
    const char *name = P->tok.s;
    SrcLoc name_loc = tok_loc(P, &P->tok);
    IrFunc *f = NULL;
    if (ir_func_find(P->m, name)) {
        diag_error(P->d, name_loc, "func @%s is defined twice", name);
        f = ARENA_NEW(P->a, IrFunc); /* parse the body for its errors, then drop it */
        f->name = name;
    } else {
        f = ir_func_new(P->m, name);
    }
    next(P);
    if (!expect_punct(P, '{', "'{' after the function name"))
        skip_line(P);
    else
        end_line(P, NULL);
    P->vals = (ValMap){0};
    P->n_pend = 0;
    SrcLoc ret_loc = {0};
    for (;;) {
        skip_blank(P);
        if (is_punct(P, '}') || P->tok.kind == T_EOF) {
            parse_close(P, "'}' to close the function");
            break;
        }
        if (is_word(P, "func") || is_word(P, "module")) {
            expected(P, "'}' to close the function");
            break;
        }
        if (is_word(P, "ret")) {
            SrcLoc loc = tok_loc(P, &P->tok);
            next(P);
            if (P->tok.kind != T_VAL) {
                expected(P, "the returned value (%N)");
                skip_line(P);
                continue;
            }
            if (ret_loc.file) {
                diag_error(P->d, loc, "func @%s returns twice (first on line %d)", name, ret_loc.line);
                skip_line(P);
                continue;
            }
            ret_loc = loc;
            add_pending(P, &f->ret, P->tok.val, tok_loc(P, &P->tok));
            next(P);
            end_line(P, NULL);
            continue;
        }
        parse_node(P, f);
    }
    finish_func(P, f);
}

IrModule *ir_parse(Arena *a, Diags *d, const char *name, const char *text, size_t len)
{
    Parser P = {0};
    P.a = a;
    P.d = d;
    P.file = NULL;
    if (!name)
        name = "<ir>";
    for (int i = 0; i < d->n_sources; i++)
        if (strcmp(d->sources[i].name, name) == 0)
            P.file = d->sources[i].name;
    if (!P.file) {
        P.file = arena_strdup(a, name);
        char *copy = arena_strndup(a, text ? text : "", text ? len : 0);
        diag_add_source(d, P.file, copy, text ? len : 0);
    }
    P.src = text ? text : "";
    P.len = text ? len : 0;
    P.line = 1;
    P.col = 1;
    int errors = d->n_errors;
    next(&P);
    if (!parse_module(&P))
        return NULL;
    for (;;) {
        skip_blank(&P);
        if (P.tok.kind == T_EOF)
            break;
        if (is_word(&P, "func")) {
            parse_func(&P);
        } else {
            expected(&P, "'func' or the end of the file");
            skip_line(&P);
        }
    }
    return d->n_errors == errors ? P.m : NULL;
}
