/* check.c: AST -> Spec. Resolves model inheritance and command-line overrides, fills
 * every default, builds the block's typed dataflow graph with its modules and
 * parameter tensors, and enforces the rules of docs/language.md (cited as §N). All
 * errors are reported, not just the first; fe_check returns NULL when there were any. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fe.h"

/* ---- diagnostics with de-duplication -------------------------------------------
 * A parent model is checked on its own and again inside each variant; the same
 * problem at the same place is reported once. */

typedef struct Ck Ck;

static bool already_reported(const Diags *d, DiagLevel level, SrcLoc loc, const char *msg)
{
    for (int i = 0; i < d->n; i++) {
        const DiagEntry *e = &d->list[i];
        if (e->level == level && e->loc.line == loc.line && e->loc.col == loc.col &&
            ((!e->loc.file && !loc.file) || (e->loc.file && loc.file && !strcmp(e->loc.file, loc.file))) &&
            !strcmp(e->msg, msg))
            return true;
    }
    return false;
}

struct Ck {
    Arena *a;
    Diags *d;
    const FeOptions *opt;
    const AstFile *file;
    bool last_dropped; /* the previous error was a duplicate: drop its notes too */
    int n_errors;      /* errors found by this check (including duplicates) */
    const SrcLoc *no_decay_locs; /* optimizer.no_decay items, checked once the model is known */
};

static void report(Ck *ck, DiagLevel level, SrcLoc loc, const char *fmt, va_list ap)
{
    const char *msg = arena_vsprintf(ck->a, fmt, ap);
    if (level == DIAG_ERROR)
        ck->n_errors++;
    if (level == DIAG_NOTE) {
        if (!ck->last_dropped)
            diag_note(ck->d, loc, "%s", msg);
        return;
    }
    ck->last_dropped = already_reported(ck->d, level, loc, msg);
    if (ck->last_dropped)
        return;
    if (level == DIAG_ERROR)
        diag_error(ck->d, loc, "%s", msg);
    else
        diag_warning(ck->d, loc, "%s", msg);
}

__attribute__((format(printf, 3, 4))) static void err(Ck *ck, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(ck, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4))) static void warn(Ck *ck, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(ck, DIAG_WARNING, loc, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4))) static void note(Ck *ck, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(ck, DIAG_NOTE, loc, fmt, ap);
    va_end(ap);
}

/* "; did you mean 'x'?" or "" */
static const char *suggest(Ck *ck, const char *name, const char *const *cands, int n)
{
    const char *s = diag_suggest(name, cands, n);
    return s ? arena_sprintf(ck->a, "; did you mean '%s'?", s) : "";
}

static const char *join_names(Ck *ck, const char *const *names, int n)
{
    const char *s = "";
    for (int i = 0; i < n; i++)
        s = arena_sprintf(ck->a, "%s%s%s", s, i == 0 ? "" : i == n - 1 ? " or " : ", ", names[i]);
    return s;
}

static int find_name(const char *name, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(name, names[i]))
            return i;
    return -1;
}

/* Glob match: '*' any run of characters (dots included), '?' one character. */
static bool glob_match(const char *pat, const char *s)
{
    if (*pat == '\0')
        return *s == '\0';
    if (*pat == '*') {
        for (;; s++) {
            if (glob_match(pat + 1, s))
                return true;
            if (*s == '\0')
                return false;
        }
    }
    if (*s == '\0')
        return false;
    return (*pat == '?' || *pat == *s) && glob_match(pat + 1, s + 1);
}

static bool has_wildcard(const char *s)
{
    return strpbrk(s, "*?") != NULL;
}

/* ---- sections: the assignments that apply to one model/adapter/train ------------ */

typedef struct Entry {
    const AstStmt *stmt;   /* ASSIGN or DEF */
    const char *const *parts; /* path relative to the section */
    const SrcLoc *locs;
    int n;
    bool is_override;
    bool is_used;          /* consumed by a known field */
} Entry;

typedef struct Section {
    const char *what;      /* "model 'tiny'", "adapter 'lora'", "train" */
    bool has_defs;         /* a model: definitions (`block(x) { ... }`) are entries */
    Entry *e;
    int n, cap;
} Section;

static void section_add(Ck *ck, Section *s, const AstStmt *st, int skip, bool is_override)
{
    /* A stray `return`, or a definition outside a model, is reported by
     * check_body_shape; an override naming only the section (`-D adapter=1`) has no
     * field: none of them is an entry. */
    if (st->kind == AST_STMT_RETURN || (st->kind == AST_STMT_ASSIGN && st->path.n - skip < 1) ||
        (st->kind == AST_STMT_DEF && (!s->has_defs || !st->name)))
        return;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        s->e = arena_grow(ck->a, s->e, (size_t)s->n, (size_t)cap, sizeof *s->e);
        s->cap = cap;
    }
    Entry *e = &s->e[s->n++];
    e->stmt = st;
    if (st->kind == AST_STMT_ASSIGN) {
        e->parts = st->path.parts + skip;
        e->locs = st->path.locs + skip;
        e->n = st->path.n - skip;
    } else {
        e->parts = (const char *const *)&st->name;
        e->locs = &st->loc;
        e->n = 1;
    }
    e->is_override = is_override;
}

/* One declaration body: duplicate fields, stray definitions and returns (§2). */
static void check_body_shape(Ck *ck, AstStmt *const *body, int n, AstItemKind kind)
{
    for (int i = 0; i < n; i++) {
        const AstStmt *s = body[i];
        if (s->kind == AST_STMT_RETURN) {
            err(ck, s->loc, "'return' is only allowed inside a block definition");
            continue;
        }
        if (s->kind == AST_STMT_DEF && kind != AST_ITEM_MODEL) {
            err(ck, s->loc, "definitions like '%s(...) { ... }' are only allowed in a model", s->name);
            continue;
        }
        for (int j = 0; j < i; j++) {
            const AstStmt *t = body[j];
            bool same = false;
            if (s->kind == AST_STMT_DEF && t->kind == AST_STMT_DEF)
                same = !strcmp(s->name, t->name);
            else if (s->kind == AST_STMT_ASSIGN && t->kind == AST_STMT_ASSIGN && s->path.n == t->path.n) {
                same = true;
                for (int k = 0; k < s->path.n; k++)
                    same = same && !strcmp(s->path.parts[k], t->path.parts[k]);
            }
            if (same) {
                const char *name = s->kind == AST_STMT_DEF ? s->name : fe_path_str(ck->a, &s->path);
                err(ck, s->loc, "duplicate field '%s'", name);
                note(ck, t->loc, "'%s' was first set here", name);
                break;
            }
        }
    }
}

/* The last whole assignment of name (n == 1); NULL if none. Marks them used. Its
 * stmt->value is never NULL: a definition with a field's name (`dim(x) { }`) is not
 * a value; it stays unused and check_unknown_fields reports it. */
static Entry *field(Section *s, const char *name)
{
    Entry *found = NULL;
    for (int i = 0; i < s->n; i++)
        if (s->e[i].n == 1 && s->e[i].stmt->kind == AST_STMT_ASSIGN && !strcmp(s->e[i].parts[0], name))
            found = &s->e[i];
    if (found)
        for (int i = 0; i < s->n; i++)
            if (s->e[i].n == 1 && s->e[i].stmt->kind == AST_STMT_ASSIGN && !strcmp(s->e[i].parts[0], name))
                s->e[i].is_used = true;
    return found;
}

/* The last whole entry named name, assignment or definition; NULL if none. */
static Entry *last_entry(Section *s, const char *name)
{
    Entry *found = NULL;
    for (int i = 0; i < s->n; i++)
        if (s->e[i].n == 1 && !strcmp(s->e[i].parts[0], name))
            found = &s->e[i];
    return found;
}

/* Reports entries whose first name is not a known field of the section. */
static void check_unknown_fields(Ck *ck, Section *s, const char *const *known, int n_known, const char *const *dotted,
                                 int n_dotted)
{
    for (int i = 0; i < s->n; i++) {
        Entry *e = &s->e[i];
        if (e->is_used)
            continue;
        if (e->stmt->kind == AST_STMT_DEF && find_name(e->parts[0], known, n_known) >= 0) {
            err(ck, e->locs[0], "'%s' is a field, not a definition: set it with '%s = ...'", e->parts[0],
                e->parts[0]);
        } else if (find_name(e->parts[0], known, n_known) < 0) {
            if (e->stmt->kind == AST_STMT_DEF)
                err(ck, e->locs[0], "unknown definition '%s' in %s%s", e->parts[0], s->what,
                    suggest(ck, e->parts[0], known, n_known));
            else
                err(ck, e->locs[0], "unknown field '%s' in %s%s", e->parts[0], s->what,
                    suggest(ck, e->parts[0], known, n_known));
        } else if (e->n > 1 && find_name(e->parts[0], dotted, n_dotted) < 0) {
            err(ck, e->locs[1], "field '%s' has no sub-field '%s' (only %s take dotted names)", e->parts[0],
                e->parts[1], join_names(ck, dotted, n_dotted));
        }
    }
}

/* ---- constant values ---------------------------------------------------------- */

typedef enum { V_ERR, V_INT, V_FLOAT, V_BOOL, V_STR, V_WORD, V_TENSOR, V_LIST } VKind;

typedef struct Val {
    VKind k;
    int64_t i;
    double f;      /* numeric value for V_INT and V_FLOAT */
    bool b;
    const char *s; /* V_STR, V_WORD */
    bool is_pct;   /* written with '%': f is the fraction (10% -> 0.1) */
    SpecNode *node;
    const AstExpr *e;
} Val;

static Val v_err(void)
{
    return (Val){.k = V_ERR};
}

static Val v_int(int64_t i)
{
    return (Val){.k = V_INT, .i = i, .f = (double)i};
}

static Val v_float(double f)
{
    return (Val){.k = V_FLOAT, .f = f};
}

static const char *val_kind_name(const Val *v)
{
    switch (v->k) {
    case V_INT: return "an integer";
    case V_FLOAT: return v->is_pct ? "a percentage" : "a number";
    case V_BOOL: return "a boolean";
    case V_STR: return "a string";
    case V_WORD: return "a name";
    case V_TENSOR: return "a tensor";
    case V_LIST: return "a list";
    case V_ERR: return "an invalid value";
    }
    return "a value";
}

/* "a string \"wide\"", "a name 'foo'", "an integer" */
static const char *val_desc(Ck *ck, const Val *v)
{
    if (v->k == V_STR)
        return arena_sprintf(ck->a, "a string \"%s\"", v->s);
    if (v->k == V_WORD && v->s)
        return arena_sprintf(ck->a, "a name '%s'", v->s);
    if (v->k == V_WORD)
        return "a call";
    return val_kind_name(v);
}

/* Names visible in integer expressions: the model's integer fields (§3.4). */
typedef struct Env {
    const char *names[8];
    int64_t vals[8];
    int n;
} Env;

static Val eval_const(Ck *ck, const AstExpr *e, const Env *env, int depth);

static Val arith(Ck *ck, const AstExpr *e, Val l, Val r)
{
    if (l.k == V_ERR || r.k == V_ERR)
        return v_err();
    if ((l.k != V_INT && l.k != V_FLOAT) || (r.k != V_INT && r.k != V_FLOAT)) {
        err(ck, e->loc, "operands of '%c' must be numbers (got %s and %s)", e->op, val_kind_name(&l),
            val_kind_name(&r));
        return v_err();
    }
    if (l.is_pct || r.is_pct) {
        err(ck, e->loc, "percentages cannot be used in arithmetic");
        return v_err();
    }
    if (l.k == V_INT && r.k == V_INT) {
        int64_t out = 0;
        bool of = false;
        switch (e->op) {
        case '+': of = __builtin_add_overflow(l.i, r.i, &out); break;
        case '-': of = __builtin_sub_overflow(l.i, r.i, &out); break;
        case '*': of = __builtin_mul_overflow(l.i, r.i, &out); break;
        case '/':
            if (r.i == 0) {
                err(ck, e->loc, "division by zero");
                return v_err();
            }
            if (l.i % r.i != 0)
                return v_float((double)l.i / (double)r.i);
            out = l.i / r.i;
            break;
        }
        if (of) {
            err(ck, e->loc, "integer overflow in '%c'", e->op);
            return v_err();
        }
        return v_int(out);
    }
    double x = l.f, y = r.f, out = 0;
    switch (e->op) {
    case '+': out = x + y; break;
    case '-': out = x - y; break;
    case '*': out = x * y; break;
    case '/':
        if (y == 0) {
            err(ck, e->loc, "division by zero");
            return v_err();
        }
        out = x / y;
        break;
    }
    return v_float(out);
}

/* -v for the number v, the operand of e (AST_NEG). */
static Val negate(Ck *ck, const AstExpr *e, Val v)
{
    if (v.k == V_INT) {
        if (v.i == INT64_MIN) {
            err(ck, e->loc, "integer overflow in '-'");
            return v_err();
        }
        v.i = -v.i;
        v.f = -v.f;
        return v;
    }
    if (v.k == V_FLOAT) {
        v.f = -v.f;
        return v;
    }
    if (v.k != V_ERR)
        err(ck, e->loc, "'-' needs a number (got %s)", val_kind_name(&v));
    return v_err();
}

static Val eval_num(Ck *ck, const AstExpr *e)
{
    if (e->suffix == '%') {
        if (e->is_int || 1) {
            Val v = v_float(e->fval / 100.0);
            v.is_pct = true;
            return v;
        }
    }
    if ((e->suffix == 'k' || e->suffix == 'M') && !e->is_int) {
        err(ck, e->loc, "the '%c' suffix is only allowed on integers (got '%s')", e->suffix, e->text);
        return v_err();
    }
    return e->is_int ? v_int(e->ival) : v_float(e->fval);
}

/* Evaluates a constant: numbers, strings, booleans, bare names (as words), lists,
 * arithmetic over numbers and env names. Calls are returned unevaluated (V_WORD
 * with e set) for the caller to interpret. */
static Val eval_const(Ck *ck, const AstExpr *e, const Env *env, int depth)
{
    if (depth > 200) {
        err(ck, e->loc, "expression is nested too deeply");
        return v_err();
    }
    switch (e->kind) {
    case AST_NUM: return eval_num(ck, e);
    case AST_STRING: return (Val){.k = V_STR, .s = e->text, .e = e};
    case AST_BOOL: return (Val){.k = V_BOOL, .b = e->bval, .e = e};
    case AST_IDENT:
        if (env)
            for (int i = 0; i < env->n; i++)
                if (!strcmp(env->names[i], e->text))
                    return v_int(env->vals[i]);
        return (Val){.k = V_WORD, .s = e->text, .e = e};
    case AST_LIST:
    case AST_TUPLE: return (Val){.k = V_LIST, .e = e};
    case AST_CALL: return (Val){.k = V_WORD, .s = NULL, .e = e};
    case AST_NEG: return negate(ck, e, eval_const(ck, e->lhs, env, depth + 1));
    case AST_BINARY: {
        Val l = eval_const(ck, e->lhs, env, depth + 1);
        Val r = eval_const(ck, e->rhs, env, depth + 1);
        if (l.k == V_WORD && l.s) {
            err(ck, e->lhs->loc, "unknown name '%s' in an integer expression", l.s);
            return v_err();
        }
        if (r.k == V_WORD && r.s) {
            err(ck, e->rhs->loc, "unknown name '%s' in an integer expression", r.s);
            return v_err();
        }
        return arith(ck, e, l, r);
    }
    }
    return v_err();
}

/* Numeric field rules: which units a field accepts and its range (§3.1). */
enum {
    F_PCT_OF_STEPS = 1, /* 10% means 10% of train.steps */
    F_PCT_FRACTION = 2, /* 10% means 0.1 */
};

static bool to_int(Ck *ck, const char *name, const AstExpr *e, const Env *env, unsigned flags, int64_t pct_base,
                   int64_t *out)
{
    Val v = eval_const(ck, e, env, 0);
    if (v.k == V_ERR)
        return false;
    if (v.is_pct) {
        if (!(flags & F_PCT_OF_STEPS)) {
            err(ck, e->loc, "'%%' is not allowed on '%s' (percentages are allowed on warm_start, warmup, restart_warmup, "
                            "reset_every, val_fraction and prune)", name);
            return false;
        }
        double steps = floor(v.f * (double)pct_base + 1e-9);
        if (!(steps > -0x1p62 && steps < 0x1p62)) { /* NaN too: keep the cast below defined */
            err(ck, e->loc, "'%s' is out of range (got %g%% of %lld steps)", name, v.f * 100, (long long)pct_base);
            return false;
        }
        *out = (int64_t)steps;
        return true;
    }
    if (v.k == V_FLOAT) {
        err(ck, e->loc, "'%s' must be an integer (got %g)", name, v.f);
        return false;
    }
    if (v.k != V_INT) {
        err(ck, e->loc, "'%s' must be an integer (got %s)", name, val_desc(ck, &v));
        return false;
    }
    *out = v.i;
    return true;
}

static bool to_num(Ck *ck, const char *name, const AstExpr *e, const Env *env, unsigned flags, double *out)
{
    Val v = eval_const(ck, e, env, 0);
    if (v.k == V_ERR)
        return false;
    if (v.is_pct && !(flags & F_PCT_FRACTION)) {
        err(ck, e->loc, "'%%' is not allowed on '%s' (percentages are allowed on warm_start, warmup, restart_warmup, "
                        "reset_every, val_fraction and prune)", name);
        return false;
    }
    if (v.k != V_INT && v.k != V_FLOAT) {
        err(ck, e->loc, "'%s' must be a number (got %s)", name, val_desc(ck, &v));
        return false;
    }
    *out = v.f;
    return true;
}

static bool to_bool(Ck *ck, const char *name, const AstExpr *e, bool *out)
{
    Val v = eval_const(ck, e, NULL, 0);
    if (v.k == V_ERR)
        return false;
    if (v.k != V_BOOL) {
        err(ck, e->loc, "'%s' must be true or false (got %s)", name, val_desc(ck, &v));
        return false;
    }
    *out = v.b;
    return true;
}

static bool to_str(Ck *ck, const char *name, const AstExpr *e, const char **out)
{
    Val v = eval_const(ck, e, NULL, 0);
    if (v.k == V_ERR)
        return false;
    if (v.k != V_STR) {
        err(ck, e->loc, "'%s' must be a string in double quotes (got %s)", name, val_desc(ck, &v));
        return false;
    }
    *out = v.s;
    return true;
}

static bool to_word(Ck *ck, const char *name, const AstExpr *e, const char *const *words, int n, int *out)
{
    Val v = eval_const(ck, e, NULL, 0);
    if (v.k == V_ERR)
        return false;
    if (v.k != V_WORD || !v.s) {
        err(ck, e->loc, "'%s' must be one of %s (got %s)", name, join_names(ck, words, n), val_kind_name(&v));
        return false;
    }
    int i = find_name(v.s, words, n);
    if (i < 0) {
        err(ck, e->loc, "'%s' must be one of %s (got '%s')%s", name, join_names(ck, words, n), v.s,
            suggest(ck, v.s, words, n));
        return false;
    }
    *out = i;
    return true;
}

static bool to_str_list(Ck *ck, const char *name, const AstExpr *e, const char ***out, int *n_out,
                        const SrcLoc **locs)
{
    if (e->kind != AST_LIST) {
        err(ck, e->loc, "'%s' must be a list of strings like [\"a\", \"b\"] (got %s)", name, fe_expr_kind_name(e));
        return false;
    }
    const char **list = arena_alloc(ck->a, sizeof(char *) * (size_t)(e->n_items + 1));
    SrcLoc *ll = arena_alloc(ck->a, sizeof(SrcLoc) * (size_t)(e->n_items + 1));
    bool ok = true;
    for (int i = 0; i < e->n_items; i++) {
        ll[i] = e->items[i]->loc;
        if (e->items[i]->kind != AST_STRING) {
            err(ck, e->items[i]->loc, "'%s' must be a list of strings (item %d is %s)", name, i + 1,
                fe_expr_kind_name(e->items[i]));
            ok = false;
            continue;
        }
        list[i] = e->items[i]->text;
    }
    *out = list;
    *n_out = e->n_items;
    if (locs)
        *locs = ll;
    return ok;
}

static bool check_range(Ck *ck, SrcLoc loc, const char *name, double v, double lo, bool lo_open, double hi,
                        bool hi_open, const char *rule)
{
    bool ok = (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
    if (!ok)
        err(ck, loc, "%s (got %g)", rule ? rule : arena_sprintf(ck->a, "'%s' is out of range", name), v);
    return ok;
}

/* ---- calls with keyword arguments (optimizer, schedule, data, block primitives) -- */

typedef struct KwArg {
    const char *name;
    SrcLoc name_loc;
    const AstExpr *value;
} KwArg;

typedef struct Call {
    const AstExpr *e;
    const AstExpr *pos[4];
    int n_pos;
    KwArg kw[24];
    int n_kw;
    bool ok;
} Call;

/* Splits a call into positional and keyword arguments, applies dotted overrides
 * (`schedule.reset_every = 100`, `block.swiglu.hidden = 688`) and checks keyword
 * names against the allowed list. */
static Call call_parse(Ck *ck, const AstExpr *e, const char *what, int max_pos, const char *const *kws, int n_kws,
                       Entry *const *ovr, int n_ovr)
{
    Call c = {.e = e, .ok = true};
    for (int i = 0; i < e->n_args; i++) {
        const AstArg *g = &e->args[i];
        if (!g->name) {
            if (c.n_kw > 0) {
                err(ck, g->value->loc, "positional argument after keyword arguments in %s", what);
                c.ok = false;
            } else if (c.n_pos >= max_pos) {
                err(ck, g->value->loc, "%s takes %d positional argument%s (got more)", what, max_pos,
                    max_pos == 1 ? "" : "s");
                c.ok = false;
            } else {
                c.pos[c.n_pos++] = g->value;
            }
            continue;
        }
        if (find_name(g->name, kws, n_kws) < 0) {
            err(ck, g->name_loc, "unknown argument '%s' to %s (expected %s)%s", g->name, what,
                join_names(ck, kws, n_kws), suggest(ck, g->name, kws, n_kws));
            c.ok = false;
            continue;
        }
        bool dup = false;
        for (int j = 0; j < c.n_kw; j++)
            if (!strcmp(c.kw[j].name, g->name)) {
                err(ck, g->name_loc, "duplicate argument '%s' to %s", g->name, what);
                note(ck, c.kw[j].name_loc, "'%s' was first given here", g->name);
                dup = true;
            }
        if (!dup && c.n_kw < 24)
            c.kw[c.n_kw++] = (KwArg){g->name, g->name_loc, g->value};
    }
    for (int i = 0; i < n_ovr; i++) {
        const Entry *o = ovr[i];
        const char *name = o->parts[o->n - 1];
        SrcLoc loc = o->locs[o->n - 1];
        if (find_name(name, kws, n_kws) < 0) {
            err(ck, loc, "unknown argument '%s' to %s (expected %s)%s", name, what, join_names(ck, kws, n_kws),
                suggest(ck, name, kws, n_kws));
            c.ok = false;
            continue;
        }
        int j = 0;
        while (j < c.n_kw && strcmp(c.kw[j].name, name))
            j++;
        if (j == c.n_kw && c.n_kw < 24)
            c.n_kw++;
        c.kw[j] = (KwArg){name, loc, o->stmt->value};
    }
    return c;
}

static const KwArg *kwarg(const Call *c, const char *name)
{
    for (int i = 0; i < c->n_kw; i++)
        if (!strcmp(c->kw[i].name, name))
            return &c->kw[i];
    return NULL;
}

/* Entries `head.k = v` that come after the last whole assignment to head. */
static int dotted_overrides(Ck *ck, Section *s, const char *head, int depth, Entry ***out)
{
    int last = -1;
    for (int i = 0; i < s->n; i++)
        if (s->e[i].n == 1 && !strcmp(s->e[i].parts[0], head))
            last = i;
    Entry **list = arena_alloc(ck->a, sizeof(Entry *) * (size_t)(s->n + 1));
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        Entry *e = &s->e[i];
        if (e->n == depth && !strcmp(e->parts[0], head)) {
            e->is_used = true;
            if (i > last)
                list[n++] = e;
        }
    }
    *out = list;
    return n;
}

/* ---- the model block (§3) -------------------------------------------------------- */

typedef enum {
    P_ATTENTION, P_SWIGLU, P_GEGLU, P_LINEAR, P_RMSNORM, P_LAYERNORM, P_GELU, P_RELU, P_SILU, P_SCALE, P_COUNT
} Prim;

static const char *const prim_names[P_COUNT] = {"attention", "swiglu", "geglu", "linear", "rmsnorm",
                                                "layernorm", "gelu", "relu", "silu", "scale"};
static const char *const kw_attention[] = {"rope", "heads", "kv_heads", "bias", "name"};
static const char *const kw_glu[] = {"hidden", "bias", "name"};
static const char *const kw_linear[] = {"out", "bias", "name"};
static const char *const kw_rmsnorm[] = {"eps", "name"};
static const char *const kw_layernorm[] = {"eps", "bias", "name"};
static const char *const kw_none[] = {"(none)"};

static bool prim_is_module(Prim p)
{
    return p <= P_LAYERNORM;
}

typedef struct Local {
    const char *name;
    SrcLoc loc;
    SpecNode *value;
    bool is_used;
} Local;

typedef struct ModName {
    const AstExpr *call;
    const char *name;
} ModName;

typedef struct BlockCk {
    Ck *ck;
    SpecModel *m;
    Section *sec;
    Env env;
    const char *param;
    SpecNode *input;
    Local *locals;
    int n_locals, cap_locals;
    ModName *names;
    int n_names, cap_names;
    AstVec modules;
    int next_id;
    bool ok;
} BlockCk;

static SpecNode *node_new(BlockCk *b, SpecNodeKind kind, SrcLoc loc, int64_t dim)
{
    SpecNode *n = ARENA_NEW(b->ck->a, SpecNode);
    n->kind = kind;
    n->loc = loc;
    n->dim = dim;
    n->id = b->next_id++;
    return n;
}

/* Default module names (§3.3): the kind, or kind_1, kind_2... in source order when a
 * kind occurs more than once without `name =`. */
static void collect_calls(BlockCk *b, const AstExpr *e, AstVec *calls, int depth)
{
    if (!e || depth > 200)
        return;
    if (e->kind == AST_CALL) {
        fe_vec_push(b->ck->a, calls, (void *)e);
        for (int i = 0; i < e->n_args; i++)
            collect_calls(b, e->args[i].value, calls, depth + 1);
    } else if (e->kind == AST_BINARY) {
        collect_calls(b, e->lhs, calls, depth + 1);
        collect_calls(b, e->rhs, calls, depth + 1);
    } else if (e->kind == AST_NEG) {
        collect_calls(b, e->lhs, calls, depth + 1);
    }
}

static const AstExpr *call_name_arg(const AstExpr *call)
{
    for (int i = 0; i < call->n_args; i++)
        if (call->args[i].name && !strcmp(call->args[i].name, "name"))
            return call->args[i].value;
    return NULL;
}

static void name_modules(BlockCk *b, const AstStmt *def)
{
    AstVec calls = {0};
    for (int i = 0; i < def->n_body; i++)
        if (def->body[i]->value)
            collect_calls(b, def->body[i]->value, &calls, 0);
    int count[P_COUNT] = {0}, seen[P_COUNT] = {0};
    for (int i = 0; i < calls.n; i++) {
        const AstExpr *c = calls.data[i];
        int p = find_name(c->text, prim_names, P_COUNT);
        if (p >= 0 && prim_is_module((Prim)p) && !call_name_arg(c))
            count[p]++;
    }
    b->names = arena_alloc(b->ck->a, sizeof(ModName) * (size_t)(calls.n + 1));
    for (int i = 0; i < calls.n; i++) {
        const AstExpr *c = calls.data[i];
        int p = find_name(c->text, prim_names, P_COUNT);
        if (p < 0 || !prim_is_module((Prim)p))
            continue;
        const AstExpr *n = call_name_arg(c);
        const char *name;
        if (n)
            name = n->kind == AST_STRING ? n->text : NULL;
        else if (count[p] == 1)
            name = prim_names[p];
        else
            name = arena_sprintf(b->ck->a, "%s_%d", prim_names[p], ++seen[p]);
        if (name)
            b->names[b->n_names++] = (ModName){c, name};
    }
}

static const char *module_name_of(BlockCk *b, const AstExpr *call)
{
    for (int i = 0; i < b->n_names; i++)
        if (b->names[i].call == call)
            return b->names[i].name;
    return NULL;
}

static SpecLinear *linear_add(BlockCk *b, SpecModule *mod, const char *name, int64_t in, int64_t out, bool bias)
{
    SpecLinear *l = &mod->linears[mod->n_linears++];
    l->name = name;
    l->full_name = mod->kind == SPEC_MOD_LINEAR ? mod->name : arena_sprintf(b->ck->a, "%s.%s", mod->name, name);
    l->in = in;
    l->out = out;
    l->has_bias = bias;
    l->module = mod;
    return l;
}

typedef struct ValSrc {
    int64_t v;
    SrcLoc loc;     /* where the value was set */
    bool is_kwarg;  /* set by the call (not the model default) */
} ValSrc;

static bool kw_int(BlockCk *b, const Call *c, const char *name, int64_t def, SrcLoc def_loc, ValSrc *out)
{
    const KwArg *k = kwarg(c, name);
    out->v = def;
    out->loc = def_loc;
    out->is_kwarg = false;
    if (!k)
        return true;
    out->is_kwarg = true;
    out->loc = k->value->loc;
    if (!to_int(b->ck, name, k->value, &b->env, 0, 0, &out->v))
        return false;
    return true;
}

static bool kw_bool(BlockCk *b, const Call *c, const char *name, bool def, bool *out)
{
    const KwArg *k = kwarg(c, name);
    *out = def;
    return !k || to_bool(b->ck, name, k->value, out);
}

static bool kw_num(BlockCk *b, const Call *c, const char *name, double def, double *out)
{
    const KwArg *k = kwarg(c, name);
    *out = def;
    return !k || to_num(b->ck, name, k->value, &b->env, 0, out);
}

static Val eval_block(BlockCk *b, const AstExpr *e, int depth);

/* The tensor operand of a primitive. */
static SpecNode *tensor_arg(BlockCk *b, const Call *c, int i, const char *what, int depth)
{
    if (c->n_pos <= i) {
        err(b->ck, c->e->loc, "%s needs its input tensor as the first argument", what);
        return NULL;
    }
    Val v = eval_block(b, c->pos[i], depth + 1);
    if (v.k == V_ERR)
        return NULL;
    if (v.k != V_TENSOR) {
        err(b->ck, c->pos[i]->loc, "%s: argument %d must be a tensor (got %s)", what, i + 1, val_kind_name(&v));
        return NULL;
    }
    return v.node;
}

static SpecModule *module_new(BlockCk *b, SpecModuleKind kind, const char *name, SrcLoc loc, int64_t in)
{
    SpecModule *mod = ARENA_NEW(b->ck->a, SpecModule);
    mod->kind = kind;
    mod->name = name;
    mod->loc = loc;
    mod->in_dim = in;
    mod->out_dim = in;
    mod->linears = arena_alloc(b->ck->a, sizeof(SpecLinear) * 4);
    return mod;
}

static bool positive(Ck *ck, const char *what, const ValSrc *v)
{
    if (v->v >= 1)
        return true;
    err(ck, v->loc, "%s must be > 0 (got %lld)", what, (long long)v->v);
    return false;
}

/* attention(x, rope = THETA | none, heads =, kv_heads =, bias =, name =) (§3.2). */
static SpecModule *prim_attention(BlockCk *b, const Call *c, const char *name, SpecNode *x)
{
    Ck *ck = b->ck;
    SpecModel *m = b->m;
    Entry *fh = field(b->sec, "heads"), *fk = field(b->sec, "kv_heads");
    ValSrc heads, kv;
    bool ok = kw_int(b, c, "heads", m->heads, fh ? fh->stmt->value->loc : c->e->loc, &heads);
    int64_t kv_def = kwarg(c, "heads") ? heads.v : m->kv_heads;
    ok = kw_int(b, c, "kv_heads", kv_def, fk ? fk->stmt->value->loc : c->e->loc, &kv) && ok;
    bool bias;
    ok = kw_bool(b, c, "bias", m->bias, &bias) && ok;
    bool has_rope = false;
    double theta = 0;
    const KwArg *r = kwarg(c, "rope");
    if (r) {
        Val v = eval_const(ck, r->value, &b->env, 0);
        if (v.k == V_WORD && v.s && !strcmp(v.s, "none")) {
            has_rope = false;
        } else if ((v.k == V_INT || v.k == V_FLOAT) && !v.is_pct) {
            has_rope = true;
            theta = v.f;
            if (theta <= 0) {
                err(ck, r->value->loc, "rope theta must be > 0 (got %g)", theta);
                ok = false;
            }
        } else if (v.k != V_ERR) {
            err(ck, r->value->loc, "'rope' must be a base frequency like 10000 or none (got %s)", val_kind_name(&v));
            ok = false;
        } else {
            ok = false;
        }
    }
    if (!ok)
        return NULL;
    int64_t d = x->dim;
    /* Model-level heads/kv_heads are checked with the model; here only what the call
     * changes (kwargs, or an input narrower than the model dim). */
    bool model_vals = !heads.is_kwarg && !kv.is_kwarg && d == m->dim;
    if (!model_vals) {
        if (!positive(ck, "attention heads", &heads) || !positive(ck, "attention kv_heads", &kv))
            return NULL;
        if (d % heads.v != 0) {
            err(ck, heads.loc, "dim must be divisible by heads: attention input size %lld is not divisible by heads = %lld",
                (long long)d, (long long)heads.v);
            return NULL;
        }
        if (heads.v % kv.v != 0) {
            err(ck, kv.loc, "heads must be divisible by kv_heads: heads = %lld, kv_heads = %lld", (long long)heads.v,
                (long long)kv.v);
            return NULL;
        }
    } else if (heads.v < 1 || kv.v < 1 || d % heads.v != 0 || heads.v % kv.v != 0) {
        return NULL; /* reported with the model fields */
    }
    int64_t hd = d / heads.v;
    if (has_rope && hd % 2 != 0) {
        err(ck, r->value->loc, "rope needs an even head dim: %lld / %lld heads = %lld", (long long)d,
            (long long)heads.v, (long long)hd);
        return NULL;
    }
    SpecModule *mod = module_new(b, SPEC_MOD_ATTENTION, name, c->e->loc, d);
    mod->heads = heads.v;
    mod->kv_heads = kv.v;
    mod->head_dim = hd;
    mod->has_rope = has_rope;
    mod->rope_theta = theta;
    mod->has_bias = bias;
    linear_add(b, mod, "q", d, heads.v * hd, bias);
    linear_add(b, mod, "k", d, kv.v * hd, bias);
    linear_add(b, mod, "v", d, kv.v * hd, bias);
    linear_add(b, mod, "o", heads.v * hd, d, bias);
    return mod;
}

static SpecModule *prim_glu(BlockCk *b, const Call *c, const char *name, SpecNode *x, SpecModuleKind kind)
{
    ValSrc hidden;
    bool bias;
    bool ok = kw_int(b, c, "hidden", 0, c->e->loc, &hidden);
    ok = kw_bool(b, c, "bias", b->m->bias, &bias) && ok;
    if (!ok)
        return NULL;
    if (!hidden.is_kwarg) {
        err(b->ck, c->e->loc, "%s needs 'hidden = N' (the inner size, e.g. hidden = 4 * dim)",
            kind == SPEC_MOD_SWIGLU ? "swiglu" : "geglu");
        return NULL;
    }
    if (!positive(b->ck, "hidden", &hidden))
        return NULL;
    SpecModule *mod = module_new(b, kind, name, c->e->loc, x->dim);
    mod->hidden = hidden.v;
    mod->has_bias = bias;
    linear_add(b, mod, "gate", x->dim, hidden.v, bias);
    linear_add(b, mod, "up", x->dim, hidden.v, bias);
    linear_add(b, mod, "down", hidden.v, x->dim, bias);
    return mod;
}

static SpecModule *prim_linear(BlockCk *b, const Call *c, const char *name, SpecNode *x)
{
    ValSrc out;
    bool bias;
    bool ok = kw_int(b, c, "out", 0, c->e->loc, &out);
    ok = kw_bool(b, c, "bias", b->m->bias, &bias) && ok;
    if (!ok)
        return NULL;
    if (!out.is_kwarg) {
        err(b->ck, c->e->loc, "linear needs 'out = N' (its output size)");
        return NULL;
    }
    if (!positive(b->ck, "linear out", &out))
        return NULL;
    SpecModule *mod = module_new(b, SPEC_MOD_LINEAR, name, c->e->loc, x->dim);
    mod->out_dim = out.v;
    mod->has_bias = bias;
    linear_add(b, mod, name, x->dim, out.v, bias);
    return mod;
}

static SpecModule *prim_norm(BlockCk *b, const Call *c, const char *name, SpecNode *x, SpecModuleKind kind)
{
    SpecModule *mod = module_new(b, kind, name, c->e->loc, x->dim);
    bool ok = kw_num(b, c, "eps", b->m->norm_eps, &mod->eps);
    if (kind == SPEC_MOD_LAYERNORM)
        ok = kw_bool(b, c, "bias", true, &mod->has_bias) && ok;
    if (ok && mod->eps <= 0) {
        /* eps comes from the call, or from the model's norm_eps (reported there) */
        const KwArg *k = kwarg(c, "eps");
        if (k)
            err(b->ck, k->value->loc, "norm eps must be > 0 (got %g)", mod->eps);
        ok = false;
    }
    return ok ? mod : NULL;
}

static bool valid_module_name(const char *s)
{
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

static Val eval_call(BlockCk *b, const AstExpr *e, int depth)
{
    Ck *ck = b->ck;
    int p = find_name(e->text, prim_names, P_COUNT);
    if (p < 0) {
        err(ck, e->loc, "unknown primitive '%s'%s", e->text, suggest(ck, e->text, prim_names, P_COUNT));
        return v_err();
    }
    const char *name = NULL;
    Entry **ovr = NULL;
    int n_ovr = 0;
    if (prim_is_module((Prim)p)) {
        name = module_name_of(b, e);
        const AstExpr *na = call_name_arg(e);
        if (!name) {
            err(ck, na->loc, "'name' must be a string like \"fc\" (got %s)", fe_expr_kind_name(na));
            return v_err();
        }
        if (!valid_module_name(name)) {
            err(ck, na->loc, "module name \"%s\" must be an identifier (letters, digits, '_')", name);
            return v_err();
        }
        /* block.<module>.<arg> = v entries after the block definition (§3.5). */
        Entry **list = arena_alloc(ck->a, sizeof(Entry *) * (size_t)(b->sec->n + 1));
        int last_def = -1;
        for (int i = 0; i < b->sec->n; i++)
            if (b->sec->e[i].n == 1 && !strcmp(b->sec->e[i].parts[0], "block"))
                last_def = i;
        for (int i = last_def + 1; i < b->sec->n; i++) {
            Entry *o = &b->sec->e[i];
            if (o->n == 3 && !strcmp(o->parts[0], "block") && !strcmp(o->parts[1], name)) {
                o->is_used = true;
                if (!strcmp(o->parts[2], "name")) {
                    err(ck, o->locs[2], "a module's name cannot be overridden");
                    continue;
                }
                list[n_ovr++] = o;
            }
        }
        ovr = list;
    }
    const char *what = arena_sprintf(ck->a, "%s()", e->text);
    Call c;
    switch ((Prim)p) {
    case P_ATTENTION: c = call_parse(ck, e, what, 1, kw_attention, 5, ovr, n_ovr); break;
    case P_SWIGLU:
    case P_GEGLU: c = call_parse(ck, e, what, 1, kw_glu, 3, ovr, n_ovr); break;
    case P_LINEAR: c = call_parse(ck, e, what, 1, kw_linear, 3, ovr, n_ovr); break;
    case P_RMSNORM: c = call_parse(ck, e, what, 1, kw_rmsnorm, 2, ovr, n_ovr); break;
    case P_LAYERNORM: c = call_parse(ck, e, what, 1, kw_layernorm, 3, ovr, n_ovr); break;
    case P_SCALE: c = call_parse(ck, e, what, 2, kw_none, 0, NULL, 0); break;
    default: c = call_parse(ck, e, what, 1, kw_none, 0, NULL, 0); break;
    }
    SpecNode *x = tensor_arg(b, &c, 0, what, depth);
    if (!c.ok || !x)
        return v_err();
    SpecModule *mod = NULL;
    SpecNode *n;
    switch ((Prim)p) {
    case P_ATTENTION: mod = prim_attention(b, &c, name, x); break;
    case P_SWIGLU: mod = prim_glu(b, &c, name, x, SPEC_MOD_SWIGLU); break;
    case P_GEGLU: mod = prim_glu(b, &c, name, x, SPEC_MOD_GEGLU); break;
    case P_LINEAR: mod = prim_linear(b, &c, name, x); break;
    case P_RMSNORM: mod = prim_norm(b, &c, name, x, SPEC_MOD_RMSNORM); break;
    case P_LAYERNORM: mod = prim_norm(b, &c, name, x, SPEC_MOD_LAYERNORM); break;
    case P_GELU:
    case P_RELU:
    case P_SILU:
        n = node_new(b, SPEC_NODE_ACT, e->loc, x->dim);
        n->act = p == P_GELU ? SPEC_ACT_GELU : p == P_RELU ? SPEC_ACT_RELU : SPEC_ACT_SILU;
        n->a = x;
        return (Val){.k = V_TENSOR, .node = n};
    case P_SCALE: {
        if (c.n_pos != 2) {
            err(ck, e->loc, "scale() takes a tensor and a number: scale(x, 0.5)");
            return v_err();
        }
        double s;
        if (!to_num(ck, "scale", c.pos[1], &b->env, 0, &s))
            return v_err();
        n = node_new(b, SPEC_NODE_SCALE, e->loc, x->dim);
        n->a = x;
        n->scale = s;
        return (Val){.k = V_TENSOR, .node = n};
    }
    case P_COUNT: break;
    }
    if (!mod)
        return v_err();
    for (int i = 0; i < b->modules.n; i++) {
        SpecModule *o = b->modules.data[i];
        if (!strcmp(o->name, mod->name)) {
            err(ck, e->loc, "duplicate module name '%s' in the block (give one of them 'name = \"...\"')", mod->name);
            note(ck, o->loc, "the other '%s' is here", mod->name);
            return v_err();
        }
    }
    fe_vec_push(ck->a, &b->modules, mod);
    n = node_new(b, SPEC_NODE_MODULE, e->loc, mod->out_dim);
    n->a = x;
    n->module = mod;
    return (Val){.k = V_TENSOR, .node = n};
}

static const char *const model_int_fields[] = {"vocab", "dim", "layers", "heads", "kv_heads", "context"};

static Val eval_block(BlockCk *b, const AstExpr *e, int depth)
{
    Ck *ck = b->ck;
    if (depth > 200) {
        err(ck, e->loc, "expression is nested too deeply");
        return v_err();
    }
    switch (e->kind) {
    case AST_IDENT: {
        if (b->param && !strcmp(e->text, b->param))
            return (Val){.k = V_TENSOR, .node = b->input};
        for (int i = b->n_locals - 1; i >= 0; i--) {
            Local *l = &b->locals[i];
            if (!strcmp(l->name, e->text)) {
                l->is_used = true;
                if (!l->value)
                    return v_err();
                SpecNode *n = node_new(b, SPEC_NODE_LOCAL, e->loc, l->value->dim);
                n->a = l->value;
                n->local = l->name;
                return (Val){.k = V_TENSOR, .node = n};
            }
        }
        for (int i = 0; i < b->env.n; i++)
            if (!strcmp(b->env.names[i], e->text))
                return v_int(b->env.vals[i]);
        const char **cands = arena_alloc(ck->a, sizeof(char *) * (size_t)(b->n_locals + 8));
        int nc = 0;
        if (b->param)
            cands[nc++] = b->param;
        for (int i = 0; i < b->n_locals; i++)
            cands[nc++] = b->locals[i].name;
        for (int i = 0; i < 6; i++)
            cands[nc++] = model_int_fields[i];
        err(ck, e->loc, "unknown name '%s'%s", e->text, suggest(ck, e->text, cands, nc));
        return v_err();
    }
    case AST_CALL: return eval_call(b, e, depth);
    case AST_NUM: return eval_num(ck, e);
    case AST_NEG: {
        Val v = eval_block(b, e->lhs, depth + 1);
        if (v.k == V_TENSOR) {
            SpecNode *n = node_new(b, SPEC_NODE_SCALE, e->loc, v.node->dim);
            n->a = v.node;
            n->scale = -1;
            return (Val){.k = V_TENSOR, .node = n};
        }
        return negate(ck, e, v);
    }
    case AST_BINARY: {
        Val l = eval_block(b, e->lhs, depth + 1);
        Val r = eval_block(b, e->rhs, depth + 1);
        if (l.k == V_ERR || r.k == V_ERR)
            return v_err();
        if (l.k != V_TENSOR && r.k != V_TENSOR)
            return arith(ck, e, l, r);
        if (e->op == '+' || (e->op == '*' && l.k == V_TENSOR && r.k == V_TENSOR)) {
            if (l.k != V_TENSOR || r.k != V_TENSOR) {
                err(ck, e->loc, "'%c' needs two tensors here (got %s and %s)", e->op, val_kind_name(&l),
                    val_kind_name(&r));
                return v_err();
            }
            if (l.node->dim != r.node->dim) {
                err(ck, e->loc, "shape mismatch in '%c': the left operand has feature size %lld, the right %lld",
                    e->op, (long long)l.node->dim, (long long)r.node->dim);
                return v_err();
            }
            SpecNode *n = node_new(b, e->op == '+' ? SPEC_NODE_ADD : SPEC_NODE_MUL, e->loc, l.node->dim);
            n->a = l.node;
            n->b = r.node;
            return (Val){.k = V_TENSOR, .node = n};
        }
        if (e->op == '*') {
            Val t = l.k == V_TENSOR ? l : r, s = l.k == V_TENSOR ? r : l;
            if (s.k != V_INT && s.k != V_FLOAT) {
                err(ck, e->loc, "'*' multiplies a tensor by a tensor or a number (got %s)", val_kind_name(&s));
                return v_err();
            }
            SpecNode *n = node_new(b, SPEC_NODE_SCALE, e->loc, t.node->dim);
            n->a = t.node;
            n->scale = s.f;
            return (Val){.k = V_TENSOR, .node = n};
        }
        err(ck, e->loc, "'%c' is not defined on tensors (tensors support '+', '*' and scale())", e->op);
        return v_err();
    }
    case AST_STRING:
    case AST_BOOL:
    case AST_LIST:
    case AST_TUPLE:
        err(ck, e->loc, "a %s cannot be used as a value in a block", fe_expr_kind_name(e));
        return v_err();
    }
    return v_err();
}

/* block(x) { local = expr ... return expr } (§3.1). */
static bool check_block(BlockCk *b, const AstStmt *def, SpecBlock *blk)
{
    Ck *ck = b->ck;
    blk->loc = def->loc;
    if (def->n_params != 1) {
        err(ck, def->loc, "block takes exactly one parameter, its input: 'block(x) { ... }' (got %d)", def->n_params);
        if (def->n_params == 0)
            return false;
    }
    b->param = def->params[0];
    blk->param = b->param;
    b->input = node_new(b, SPEC_NODE_INPUT, def->param_locs[0], b->m->dim);
    name_modules(b, def);
    b->locals = arena_alloc(ck->a, sizeof(Local) * (size_t)(def->n_body + 1));
    bool ok = true;
    const AstStmt *ret = NULL;
    for (int i = 0; i < def->n_body; i++) {
        const AstStmt *s = def->body[i];
        if (ret) {
            err(ck, s->loc, "statement after 'return' is never reached");
            ok = false;
            break;
        }
        if (s->kind == AST_STMT_DEF) {
            err(ck, s->loc, "definitions cannot be nested in a block");
            ok = false;
            continue;
        }
        if (s->kind == AST_STMT_RETURN) {
            ret = s;
            Val v = eval_block(b, s->value, 0);
            if (v.k == V_ERR) {
                ok = false;
            } else if (v.k != V_TENSOR) {
                err(ck, s->value->loc, "block must return a tensor (got %s)", val_kind_name(&v));
                ok = false;
            } else if (v.node->dim != b->m->dim) {
                err(ck, s->value->loc,
                    "block must return a tensor of the model dim %lld (the next layer's input); this one has %lld",
                    (long long)b->m->dim, (long long)v.node->dim);
                ok = false;
            } else {
                blk->ret = v.node;
            }
            continue;
        }
        if (s->path.n != 1) {
            err(ck, s->loc, "only local names can be assigned in a block (got '%s')", fe_path_str(ck->a, &s->path));
            ok = false;
            continue;
        }
        const char *name = s->path.parts[0];
        if (!strcmp(name, b->param) || find_name(name, model_int_fields, 6) >= 0 ||
            find_name(name, prim_names, P_COUNT) >= 0) {
            err(ck, s->loc, "local '%s' would shadow %s", name,
                !strcmp(name, b->param) ? "the block input"
                : find_name(name, prim_names, P_COUNT) >= 0 ? "a primitive"
                                                             : "a model field");
            ok = false;
            continue;
        }
        for (int j = 0; j < b->n_locals; j++)
            if (!strcmp(b->locals[j].name, name)) {
                err(ck, s->loc, "local '%s' is already defined (locals are assigned once)", name);
                note(ck, b->locals[j].loc, "'%s' was defined here", name);
                ok = false;
            }
        Val v = eval_block(b, s->value, 0);
        if (v.k != V_TENSOR && v.k != V_ERR) {
            err(ck, s->value->loc, "a block local must be a tensor (got %s)", val_kind_name(&v));
            v.k = V_ERR;
        }
        if (v.k == V_ERR)
            ok = false;
        b->locals[b->n_locals++] = (Local){name, s->loc, v.k == V_TENSOR ? v.node : NULL, false};
    }
    if (!ret) {
        err(ck, def->close_loc, "block must end with 'return <tensor>'");
        ok = false;
    }
    for (int i = 0; i < b->n_locals; i++)
        if (!b->locals[i].is_used && b->locals[i].value)
            warn(ck, b->locals[i].loc, "local '%s' is never used", b->locals[i].name);
    blk->n_locals = b->n_locals;
    blk->locals = arena_alloc(ck->a, sizeof(SpecLocal) * (size_t)(b->n_locals + 1));
    for (int i = 0; i < b->n_locals; i++)
        blk->locals[i] = (SpecLocal){b->locals[i].name, b->locals[i].loc, b->locals[i].value};
    blk->modules = (SpecModule **)b->modules.data;
    blk->n_modules = b->modules.n;
    blk->n_nodes = b->next_id;
    return ok && b->ck->n_errors == 0 ? true : ok;
}

/* ---- model (§3) ------------------------------------------------------------------ */

static const char *const model_fields[] = {"vocab", "dim", "layers", "heads", "kv_heads", "context", "init_std",
                                           "tied", "positions", "norm", "norm_eps", "norm_bias", "bias", "block"};
static const char *const model_dotted[] = {"block"};

/* The most parameters (all layers) a model may have: about 1.1 trillion. With this
 * bound every count derived from the model (totals, LoRA factors, FLOPs, bytes)
 * fits in an int64_t. */
#define MAX_PARAMS ((int64_t)1 << 40)

static SpecParam *param_add(Ck *ck, AstVec *params, const char *local, bool per_layer, SpecParamRole role, int ndim,
                            int64_t d0, int64_t d1, SrcLoc loc)
{
    SpecParam *p = ARENA_NEW(ck->a, SpecParam);
    p->local_name = local;
    p->name = per_layer ? arena_sprintf(ck->a, "layers.{i}.%s", local) : local;
    p->is_per_layer = per_layer;
    p->role = role;
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim == 2 ? d1 : 0;
    if (__builtin_mul_overflow(d0, ndim == 2 ? d1 : 1, &p->numel))
        p->numel = INT64_MAX; /* over MAX_PARAMS: reported by build_params */
    p->loc = loc;
    fe_vec_push(ck->a, params, p);
    return p;
}

/* The model's parameter tensors in their fixed order (§3.6). */
static void build_params(Ck *ck, SpecModel *m, SrcLoc model_loc)
{
    AstVec ps = {0}, lins = {0};
    param_add(ck, &ps, "embedding.weight", false, SPEC_PARAM_EMBEDDING, 2, m->vocab, m->dim, model_loc);
    if (m->positions == SPEC_POS_LEARNED)
        param_add(ck, &ps, "positions.weight", false, SPEC_PARAM_POSITIONS, 2, m->context, m->dim, model_loc);
    for (int i = 0; i < m->block.n_modules; i++) {
        SpecModule *mod = m->block.modules[i];
        int first = ps.n;
        if (mod->kind == SPEC_MOD_RMSNORM || mod->kind == SPEC_MOD_LAYERNORM) {
            param_add(ck, &ps, arena_sprintf(ck->a, "%s.weight", mod->name), true, SPEC_PARAM_NORM, 1, mod->in_dim, 0,
                      mod->loc)
                ->module = mod;
            if (mod->kind == SPEC_MOD_LAYERNORM && mod->has_bias)
                param_add(ck, &ps, arena_sprintf(ck->a, "%s.bias", mod->name), true, SPEC_PARAM_NORM_BIAS, 1,
                          mod->in_dim, 0, mod->loc)
                    ->module = mod;
        }
        for (int j = 0; j < mod->n_linears; j++) {
            SpecLinear *l = &mod->linears[j];
            fe_vec_push(ck->a, &lins, l);
            l->weight = param_add(ck, &ps, arena_sprintf(ck->a, "%s.weight", l->full_name), true, SPEC_PARAM_LINEAR,
                                  2, l->out, l->in, mod->loc);
            l->weight->module = mod;
            l->weight->linear = l;
            if (l->has_bias) {
                l->bias = param_add(ck, &ps, arena_sprintf(ck->a, "%s.bias", l->full_name), true, SPEC_PARAM_BIAS, 1,
                                    l->out, 0, mod->loc);
                l->bias->module = mod;
                l->bias->linear = l;
            }
        }
        mod->n_params = ps.n - first;
        mod->params = arena_alloc(ck->a, sizeof(SpecParam *) * (size_t)(mod->n_params + 1));
        for (int j = 0; j < mod->n_params; j++)
            mod->params[j] = ps.data[first + j];
    }
    param_add(ck, &ps, "norm.weight", false, SPEC_PARAM_NORM, 1, m->dim, 0, model_loc);
    if (m->norm == SPEC_NORM_LAYERNORM && m->norm_bias)
        param_add(ck, &ps, "norm.bias", false, SPEC_PARAM_NORM_BIAS, 1, m->dim, 0, model_loc);
    if (!m->tied)
        param_add(ck, &ps, "head.weight", false, SPEC_PARAM_HEAD, 2, m->vocab, m->dim, model_loc);
    m->n_params = ps.n;
    m->params = arena_alloc(ck->a, sizeof(SpecParam) * (size_t)(ps.n + 1));
    for (int i = 0; i < ps.n; i++) {
        m->params[i] = *(SpecParam *)ps.data[i];
    }
    /* Re-point modules and linears at the final array. */
    for (int i = 0; i < ps.n; i++) {
        SpecParam *old = ps.data[i], *p = &m->params[i];
        if (p->linear) {
            if (p->role == SPEC_PARAM_LINEAR)
                p->linear->weight = p;
            else
                p->linear->bias = p;
        }
        if (p->module)
            for (int j = 0; j < p->module->n_params; j++)
                if (p->module->params[j] == old)
                    p->module->params[j] = p;
    }
    m->n_linears = lins.n;
    m->linears = (SpecLinear **)lins.data;
    int64_t total = 0;
    for (int i = 0; i < m->n_params; i++) {
        const SpecParam *p = &m->params[i];
        int64_t n;
        if (__builtin_mul_overflow(p->numel, p->is_per_layer ? m->layers : 1, &n) ||
            __builtin_add_overflow(total, n, &total) || total > MAX_PARAMS) {
            err(ck, p->loc, "model '%s' is too large: more than 2^40 (about 1.1 trillion) parameters, reached at '%s' %s%s", m->name,
                p->name,
                p->ndim == 2 ? arena_sprintf(ck->a, "[%lld, %lld]", (long long)p->shape[0], (long long)p->shape[1])
                             : arena_sprintf(ck->a, "[%lld]", (long long)p->shape[0]),
                p->is_per_layer ? arena_sprintf(ck->a, " in each of %lld layers", (long long)m->layers) : "");
            break;
        }
    }
}

static const AstItem *find_model(const AstFile *f, const char *name)
{
    const AstItem *found = NULL;
    for (int i = 0; i < f->n_items; i++)
        if (f->items[i]->kind == AST_ITEM_MODEL && !strcmp(f->items[i]->name, name))
            found = f->items[i];
    return found;
}

static const char **model_names(Ck *ck, const AstFile *f, int *n)
{
    const char **names = arena_alloc(ck->a, sizeof(char *) * (size_t)(f->n_items + 1));
    *n = 0;
    for (int i = 0; i < f->n_items; i++)
        if (f->items[i]->kind == AST_ITEM_MODEL)
            names[(*n)++] = f->items[i]->name;
    return names;
}

/* The inheritance chain root..item, or false after reporting a cycle / unknown parent. */
static bool model_chain(Ck *ck, const AstItem *item, const AstItem ***chain, int *n)
{
    const AstItem **list = arena_alloc(ck->a, sizeof(AstItem *) * (size_t)(ck->file->n_items + 1));
    int k = 0;
    const AstItem *cur = item;
    while (cur) {
        for (int i = 0; i < k; i++)
            if (list[i] == cur) {
                /* Report a cycle once: from its member declared first, and not again
                 * for models that merely inherit from it. */
                const AstItem *first = list[i];
                for (int j = i; j < k; j++)
                    if (list[j]->loc.line < first->loc.line ||
                        (list[j]->loc.line == first->loc.line && list[j]->loc.col < first->loc.col))
                        first = list[j];
                if (i != 0 || first != item)
                    return false;
                const char *path = "";
                for (int j = 0; j < k; j++)
                    path = arena_sprintf(ck->a, "%s%s -> ", path, list[j]->name);
                err(ck, list[k - 1]->parent_loc, "model inheritance cycle: %s%s", path, cur->name);
                return false;
            }
        list[k++] = cur;
        if (!cur->parent)
            break;
        const AstItem *p = find_model(ck->file, cur->parent);
        if (!p) {
            int nn;
            const char **names = model_names(ck, ck->file, &nn);
            err(ck, cur->parent_loc, "unknown parent model '%s'%s", cur->parent, suggest(ck, cur->parent, names, nn));
            return false;
        }
        cur = p;
    }
    /* reverse: root first */
    for (int i = 0; i < k / 2; i++) {
        const AstItem *t = list[i];
        list[i] = list[k - 1 - i];
        list[k - 1 - i] = t;
    }
    *chain = list;
    *n = k;
    return true;
}

static bool model_int(Ck *ck, Section *s, const char *name, int64_t def, bool required, SrcLoc model_loc,
                      int64_t *out)
{
    Entry *e = field(s, name);
    *out = def;
    if (!e) {
        if (required) {
            err(ck, model_loc, "%s is missing the required field '%s'", s->what, name);
            return false;
        }
        return true;
    }
    if (!to_int(ck, name, e->stmt->value, NULL, 0, 0, out))
        return false;
    if (*out < 1) {
        err(ck, e->stmt->value->loc, "model %s must be > 0 (got %lld)", name, (long long)*out);
        return false;
    }
    if (*out > INT32_MAX) {
        err(ck, e->stmt->value->loc, "model %s must be < 2^31 (got %lld)", name, (long long)*out);
        return false;
    }
    return true;
}

static SrcLoc field_loc(Section *s, const char *name, SrcLoc def)
{
    for (int i = s->n - 1; i >= 0; i--)
        if (s->e[i].n == 1 && !strcmp(s->e[i].parts[0], name) && s->e[i].stmt->value)
            return s->e[i].stmt->value->loc;
    return def;
}

/* Checks one model (with overrides when it is the selected one) into m. */
static bool check_model(Ck *ck, const AstItem *item, AstStmt *const *ovr, int n_ovr, SpecModel *m, Section *sec)
{
    int errors0 = ck->n_errors;
    const AstItem **chain;
    int n_chain;
    memset(m, 0, sizeof *m);
    m->name = item->name;
    m->parent = item->parent;
    m->loc = item->name_loc;
    *sec = (Section){.what = arena_sprintf(ck->a, "model '%s'", item->name), .has_defs = true};
    if (!model_chain(ck, item, &chain, &n_chain))
        return false;
    for (int i = 0; i < n_chain; i++)
        for (int j = 0; j < chain[i]->n_body; j++)
            if (chain[i]->body[j]->kind != AST_STMT_RETURN)
                section_add(ck, sec, chain[i]->body[j], 0, false);
    for (int i = 0; i < n_ovr; i++)
        if (!strcmp(ovr[i]->path.parts[0], "model"))
            section_add(ck, sec, ovr[i], 1, true);

    SrcLoc at = item->name_loc;
    bool ok = true;
    ok = model_int(ck, sec, "vocab", 0, true, at, &m->vocab) && ok;
    ok = model_int(ck, sec, "dim", 0, true, at, &m->dim) && ok;
    ok = model_int(ck, sec, "layers", 0, true, at, &m->layers) && ok;
    ok = model_int(ck, sec, "heads", 0, true, at, &m->heads) && ok;
    bool kv_ok = model_int(ck, sec, "kv_heads", m->heads, false, at, &m->kv_heads);
    ok = kv_ok && ok;
    ok = model_int(ck, sec, "context", 0, true, at, &m->context) && ok;
    Entry *e;
    m->init_std = 0.02;
    if ((e = field(sec, "init_std")) && to_num(ck, "init_std", e->stmt->value, NULL, 0, &m->init_std))
        ok = check_range(ck, e->stmt->value->loc, "init_std", m->init_std, 0, true, INFINITY, false,
                         "init_std must be > 0") && ok;
    else if (e)
        ok = false;
    if ((e = field(sec, "tied")))
        ok = to_bool(ck, "tied", e->stmt->value, &m->tied) && ok;
    static const char *const pos_words[] = {"none", "learned"};
    static const char *const norm_words[] = {"rmsnorm", "layernorm"};
    int w;
    if ((e = field(sec, "positions"))) {
        if (to_word(ck, "positions", e->stmt->value, pos_words, 2, &w))
            m->positions = (SpecPositions)w;
        else
            ok = false;
    }
    if ((e = field(sec, "norm"))) {
        if (to_word(ck, "norm", e->stmt->value, norm_words, 2, &w))
            m->norm = (SpecNormKind)w;
        else
            ok = false;
    }
    m->norm_eps = 1e-5;
    if ((e = field(sec, "norm_eps")) && to_num(ck, "norm_eps", e->stmt->value, NULL, 0, &m->norm_eps))
        ok = check_range(ck, e->stmt->value->loc, "norm_eps", m->norm_eps, 0, true, 1, false,
                         "norm_eps must be in (0, 1]") && ok;
    else if (e)
        ok = false;
    m->norm_bias = true;
    if ((e = field(sec, "norm_bias")))
        ok = to_bool(ck, "norm_bias", e->stmt->value, &m->norm_bias) && ok;
    if ((e = field(sec, "bias")))
        ok = to_bool(ck, "bias", e->stmt->value, &m->bias) && ok;

    /* §3.2: attention head layout, checked once at the model fields. */
    if (m->dim > 0 && m->heads > 0 && m->dim % m->heads != 0) {
        err(ck, field_loc(sec, "heads", at), "dim must be divisible by heads: dim = %lld, heads = %lld",
            (long long)m->dim, (long long)m->heads);
        ok = false;
    }
    if (m->heads > 0 && m->kv_heads > 0 && m->heads % m->kv_heads != 0) {
        err(ck, field_loc(sec, "kv_heads", at), "heads must be divisible by kv_heads: heads = %lld, kv_heads = %lld",
            (long long)m->heads, (long long)m->kv_heads);
        ok = false;
    }

    Entry *def = last_entry(sec, "block");
    if (def && def->stmt->kind != AST_STMT_DEF) {
        err(ck, def->locs[0], "'block' must be defined as 'block(x) { ... return ... }'");
        def = NULL;
        ok = false;
    } else if (!def) {
        err(ck, at, "%s has no block: add 'block(x) { ... return ... }'", sec->what);
        ok = false;
    }
    for (int i = 0; i < sec->n; i++) /* earlier `block` definitions of ancestors */
        if (sec->e[i].n == 1 && !strcmp(sec->e[i].parts[0], "block"))
            sec->e[i].is_used = true;
    if (def && m->dim > 0 && m->heads > 0 && m->kv_heads > 0 && m->vocab > 0) {
        BlockCk b = {.ck = ck, .m = m, .sec = sec};
        for (int i = 0; i < 6; i++) {
            b.env.names[i] = model_int_fields[i];
        }
        b.env.vals[0] = m->vocab;
        b.env.vals[1] = m->dim;
        b.env.vals[2] = m->layers;
        b.env.vals[3] = m->heads;
        b.env.vals[4] = m->kv_heads;
        b.env.vals[5] = m->context;
        b.env.n = 6;
        ok = check_block(&b, def->stmt, &m->block) && ok;
        /* block.<module>.<arg> naming no module */
        for (int i = 0; i < sec->n; i++) {
            Entry *o = &sec->e[i];
            if (o->n >= 2 && !strcmp(o->parts[0], "block") && !o->is_used) {
                o->is_used = true;
                if (o->n != 3) {
                    err(ck, o->locs[0], "block overrides name a module and an argument: 'block.<module>.<argument> = value'");
                    ok = false;
                    continue;
                }
                const char **names = arena_alloc(ck->a, sizeof(char *) * (size_t)(b.modules.n + 1));
                for (int j = 0; j < b.modules.n; j++)
                    names[j] = ((SpecModule *)b.modules.data[j])->name;
                bool exists = false;
                for (int j = 0; j < b.modules.n; j++)
                    exists = exists || !strcmp(names[j], o->parts[1]);
                if (!exists) {
                    err(ck, o->locs[1], "no module named '%s' in the block of %s%s", o->parts[1], sec->what,
                        suggest(ck, o->parts[1], names, b.modules.n));
                    ok = false;
                }
            }
        }
    }
    check_unknown_fields(ck, sec, model_fields, (int)(sizeof model_fields / sizeof *model_fields), model_dotted, 1);
    if (ok && ck->n_errors == errors0) {
        if (m->positions == SPEC_POS_NONE) {
            bool rope = false;
            for (int i = 0; i < m->block.n_modules; i++)
                rope = rope || m->block.modules[i]->has_rope;
            if (!rope)
                warn(ck, item->name_loc,
                     "%s has no position information (positions = none and no attention uses rope)", sec->what);
        }
        build_params(ck, m, item->name_loc);
    }
    return ok && ck->n_errors == errors0;
}

/* ---- adapter (§4) ----------------------------------------------------------------- */

static const char *const adapter_fields[] = {"rank", "alpha", "dropout", "targets", "trainable"};
static const char *const trainable_groups[] = {"embedding", "positions", "norms", "head", "biases"};
static const char *const default_trainable[] = {"embedding", "positions", "norms", "head", "biases"};

/* Does a group name or a linear glob select parameter p? */
static bool group_selects(const char *g, const SpecParam *p)
{
    switch (p->role) {
    case SPEC_PARAM_EMBEDDING: return !strcmp(g, "embedding");
    case SPEC_PARAM_POSITIONS: return !strcmp(g, "positions");
    case SPEC_PARAM_HEAD: return !strcmp(g, "head");
    case SPEC_PARAM_NORM:
    case SPEC_PARAM_NORM_BIAS: return !strcmp(g, "norms");
    case SPEC_PARAM_BIAS: return !strcmp(g, "biases") || glob_match(g, p->linear->full_name);
    case SPEC_PARAM_LINEAR: return glob_match(g, p->linear->full_name);
    }
    return false;
}

static const char **linear_names(Ck *ck, const SpecModel *m)
{
    const char **names = arena_alloc(ck->a, sizeof(char *) * (size_t)(m->n_linears + 1));
    for (int i = 0; i < m->n_linears; i++)
        names[i] = m->linears[i]->full_name;
    return names;
}

/* A list of groups or linear globs (adapter.trainable, optimizer.no_decay). */
static bool check_groups(Ck *ck, const SpecModel *m, const char *what, const char *const *list, const SrcLoc *locs,
                         int n, const char *const *groups, int n_groups)
{
    bool ok = true;
    const char **lin = linear_names(ck, m);
    for (int i = 0; i < n; i++) {
        if (!list[i] || find_name(list[i], groups, n_groups) >= 0)
            continue;
        bool any = false;
        for (int j = 0; j < m->n_linears; j++)
            any = any || glob_match(list[i], lin[j]);
        if (any)
            continue;
        const char **cands = arena_alloc(ck->a, sizeof(char *) * (size_t)(n_groups + m->n_linears + 1));
        memcpy(cands, groups, sizeof(char *) * (size_t)n_groups);
        memcpy(cands + n_groups, lin, sizeof(char *) * (size_t)m->n_linears);
        err(ck, locs[i], "unknown %s entry '%s' (expected %s, or a linear name or glob)%s", what, list[i],
            join_names(ck, groups, n_groups), suggest(ck, list[i], cands, n_groups + m->n_linears));
        ok = false;
    }
    return ok;
}

static bool check_adapter(Ck *ck, const AstItem *item, AstStmt *const *ovr, int n_ovr, Spec *spec)
{
    SpecAdapter *ad = &spec->adapter;
    SpecModel *m = &spec->model;
    Section sec = {.what = arena_sprintf(ck->a, "adapter '%s'", item->name)};
    for (int j = 0; j < item->n_body; j++)
        section_add(ck, &sec, item->body[j], 0, false);
    for (int i = 0; i < n_ovr; i++)
        if (!strcmp(ovr[i]->path.parts[0], "adapter"))
            section_add(ck, &sec, ovr[i], 1, true);
    ad->is_present = true;
    ad->name = item->name;
    ad->loc = item->name_loc;
    bool ok = true;
    Entry *e;
    ad->rank = 8;
    SrcLoc rank_loc = item->name_loc;
    if ((e = field(&sec, "rank"))) {
        rank_loc = e->stmt->value->loc;
        if (!to_int(ck, "rank", e->stmt->value, NULL, 0, 0, &ad->rank))
            return false;
    }
    if (ad->rank < 1) {
        err(ck, rank_loc, "lora rank must be > 0 (got %lld)", (long long)ad->rank);
        ok = false;
    }
    ad->alpha = (double)ad->rank;
    if ((e = field(&sec, "alpha"))) {
        if (to_num(ck, "alpha", e->stmt->value, NULL, 0, &ad->alpha))
            ok = check_range(ck, e->stmt->value->loc, "alpha", ad->alpha, 0, true, INFINITY, false,
                             "lora alpha must be > 0") && ok;
        else
            ok = false;
    }
    ad->scaling = ad->rank > 0 ? ad->alpha / (double)ad->rank : 0;
    if ((e = field(&sec, "dropout"))) {
        if (to_num(ck, "dropout", e->stmt->value, NULL, 0, &ad->dropout))
            ok = check_range(ck, e->stmt->value->loc, "dropout", ad->dropout, 0, false, 1, true,
                             "lora dropout must be in [0, 1)") && ok;
        else
            ok = false;
    }
    static const char *const all_targets[] = {"*"};
    const SrcLoc *tlocs = NULL;
    ad->targets = (const char **)all_targets;
    ad->n_targets = 1;
    if ((e = field(&sec, "targets"))) {
        if (!to_str_list(ck, "targets", e->stmt->value, &ad->targets, &ad->n_targets, &tlocs))
            return false;
        if (ad->n_targets == 0) {
            err(ck, e->stmt->value->loc, "adapter targets must name at least one linear (use [\"*\"] for all)");
            ok = false;
        }
    }
    ad->trainable = (const char **)default_trainable;
    ad->n_trainable = 5;
    const SrcLoc *trlocs = NULL;
    Entry *tre = field(&sec, "trainable");
    if (tre && !to_str_list(ck, "trainable", tre->stmt->value, &ad->trainable, &ad->n_trainable, &trlocs))
        ok = false;
    check_unknown_fields(ck, &sec, adapter_fields, 5, NULL, 0);
    if (!ok || m->n_linears == 0)
        return ok;

    /* §4.2: every target glob matches a linear; rank fits every adapted linear. */
    const char **lin = linear_names(ck, m);
    for (int t = 0; t < ad->n_targets; t++) {
        const char *g = ad->targets[t];
        bool any = false;
        for (int j = 0; j < m->n_linears; j++)
            if (glob_match(g, lin[j])) {
                any = true;
                m->linears[j]->is_adapted = true;
                m->linears[j]->rank = ad->rank;
            }
        if (!any) {
            const char **cands = arena_alloc(ck->a, sizeof(char *) * (size_t)(2 * m->n_linears + 1));
            int nc = 0;
            for (int j = 0; j < m->n_linears; j++) {
                cands[nc++] = lin[j];
                if (m->linears[j]->module->kind != SPEC_MOD_LINEAR && m->linears[j]->module->linears == m->linears[j])
                    cands[nc++] = arena_sprintf(ck->a, "%s.*", m->linears[j]->module->name);
            }
            err(ck, tlocs ? tlocs[t] : item->name_loc, "%s target '%s'%s%s",
                has_wildcard(g) ? "adapter" : "unknown", g, has_wildcard(g) ? " matches no linear" : "",
                suggest(ck, g, cands, nc));
            note(ck, m->block.loc, "the linears of model '%s' are %s", m->name, join_names(ck, lin, m->n_linears));
            ok = false;
        }
    }
    for (int j = 0; j < m->n_linears && ok; j++) {
        SpecLinear *l = m->linears[j];
        int64_t mn = l->in < l->out ? l->in : l->out;
        if (l->is_adapted && ad->rank > mn) {
            err(ck, rank_loc, "lora rank must be <= min(in, out) of every target: %lld > %lld for '%s' [%lld, %lld]",
                (long long)ad->rank, (long long)mn, l->full_name, (long long)l->out, (long long)l->in);
            ok = false;
        }
    }
    if (tre && trlocs)
        ok = check_groups(ck, m, "trainable", ad->trainable, trlocs, ad->n_trainable, trainable_groups, 5) && ok;
    /* An adapted linear's W is frozen: it cannot also be trained at full rank. */
    for (int i = 0; i < ad->n_trainable && ok; i++) {
        if (!ad->trainable[i] || find_name(ad->trainable[i], trainable_groups, 5) >= 0)
            continue;
        for (int j = 0; j < m->n_linears; j++)
            if (m->linears[j]->is_adapted && glob_match(ad->trainable[i], lin[j])) {
                err(ck, trlocs[i], "'%s' is an adapter target; its weight is frozen in the ReLoRA phase and cannot be "
                                   "trainable", lin[j]);
                ok = false;
                break;
            }
    }
    if (!ok)
        return false;
    for (int i = 0; i < m->n_params; i++) {
        SpecParam *p = &m->params[i];
        bool tr = false;
        if (!(p->role == SPEC_PARAM_LINEAR && p->linear->is_adapted))
            for (int k = 0; k < ad->n_trainable; k++)
                tr = tr || group_selects(ad->trainable[k], p);
        p->is_trainable_relora = tr;
    }
    return true;
}

/* ---- train (§5) ------------------------------------------------------------------- */

static const char *const train_fields[] = {"data", "val_data", "val_fraction", "batch", "seq_len", "steps",
                                           "optimizer", "clip", "precision", "seed", "eval_every", "eval_batches",
                                           "checkpoint_every", "checkpoint_dir", "target", "schedule"};
static const char *const train_dotted[] = {"optimizer", "schedule"};
static const char *const no_decay_groups[] = {"norms", "biases", "embedding", "positions", "head"};
static const char *const default_no_decay[] = {"norms", "biases", "embedding"};

static bool check_data(Ck *ck, Entry *e, const char *name, SpecData *d)
{
    const AstExpr *v = e->stmt->value;
    static const char *const kinds[] = {"text", "tokens"};
    d->loc = v->loc;
    if (v->kind != AST_CALL || find_name(v->text, kinds, 2) < 0) {
        err(ck, v->loc, "'%s' must be text(\"file.txt\") or tokens(\"file.bin\")%s", name,
            v->kind == AST_CALL ? suggest(ck, v->text, kinds, 2) : "");
        return false;
    }
    Call c = call_parse(ck, v, arena_sprintf(ck->a, "%s()", v->text), 1, kw_none, 0, NULL, 0);
    if (!c.ok)
        return false;
    if (c.n_pos != 1) {
        err(ck, v->loc, "%s() takes one file name", v->text);
        return false;
    }
    if (!to_str(ck, arena_sprintf(ck->a, "%s()", v->text), c.pos[0], &d->path))
        return false;
    d->kind = !strcmp(v->text, "text") ? SPEC_DATA_TEXT : SPEC_DATA_TOKENS;
    d->loc = c.pos[0]->loc;
    d->exists = access(d->path, R_OK) == 0;
    if (!d->exists) {
        if (ck->opt && ck->opt->is_training)
            err(ck, d->loc, "data file '%s' not found", d->path);
        else
            warn(ck, d->loc, "data file '%s' not found (it must exist when training)", d->path);
    }
    return !(ck->opt && ck->opt->is_training && !d->exists);
}

static bool check_optimizer(Ck *ck, Section *sec, SpecOptimizer *o)
{
    static const char *const kws[] = {"lr", "betas", "eps", "weight_decay", "no_decay"};
    static const char *const names[] = {"adamw"};
    o->kind = SPEC_OPT_ADAMW;
    o->lr = 1e-3;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->weight_decay = 0;
    o->no_decay = (const char **)default_no_decay;
    o->n_no_decay = 3;
    Entry *e = field(sec, "optimizer");
    Entry **ovr;
    int n_ovr = dotted_overrides(ck, sec, "optimizer", 2, &ovr);
    if (!e && n_ovr == 0)
        return true;
    AstExpr *empty_call = fe_expr_new(ck->a, AST_CALL, e ? e->locs[0] : ovr[0]->locs[0]);
    empty_call->text = "adamw";
    const AstExpr *v = e ? e->stmt->value : empty_call;
    if (v->kind != AST_CALL || strcmp(v->text, "adamw")) {
        err(ck, v->loc, "'optimizer' must be adamw(...)%s",
            v->kind == AST_CALL ? suggest(ck, v->text, names, 1) : "");
        return false;
    }
    o->loc = v->loc;
    Call c = call_parse(ck, v, "adamw()", 0, kws, 5, ovr, n_ovr);
    bool ok = c.ok;
    const KwArg *k;
    if ((k = kwarg(&c, "lr")) && (ok = to_num(ck, "lr", k->value, NULL, 0, &o->lr) && ok))
        ok = check_range(ck, k->value->loc, "lr", o->lr, 0, true, INFINITY, false, "lr must be > 0") && ok;
    if ((k = kwarg(&c, "betas"))) {
        const AstExpr *t = k->value;
        if (t->kind != AST_TUPLE || t->n_items != 2) {
            err(ck, t->loc, "'betas' must be a pair like (0.9, 0.999)");
            ok = false;
        } else if (to_num(ck, "betas", t->items[0], NULL, 0, &o->beta1) &&
                   to_num(ck, "betas", t->items[1], NULL, 0, &o->beta2)) {
            ok = check_range(ck, t->items[0]->loc, "beta1", o->beta1, 0, false, 1, true, "beta1 must be in [0, 1)") &&
                 ok;
            ok = check_range(ck, t->items[1]->loc, "beta2", o->beta2, 0, false, 1, true, "beta2 must be in [0, 1)") &&
                 ok;
        } else {
            ok = false;
        }
    }
    if ((k = kwarg(&c, "eps")) && (ok = to_num(ck, "eps", k->value, NULL, 0, &o->eps) && ok))
        ok = check_range(ck, k->value->loc, "eps", o->eps, 0, true, INFINITY, false, "eps must be > 0") && ok;
    if ((k = kwarg(&c, "weight_decay")) && (ok = to_num(ck, "weight_decay", k->value, NULL, 0, &o->weight_decay) && ok))
        ok = check_range(ck, k->value->loc, "weight_decay", o->weight_decay, 0, false, INFINITY, false,
                         "weight_decay must be >= 0") && ok;
    if ((k = kwarg(&c, "no_decay"))) {
        const SrcLoc *locs;
        if (to_str_list(ck, "no_decay", k->value, &o->no_decay, &o->n_no_decay, &locs))
            ck->no_decay_locs = locs;
        else
            ok = false;
    }
    return ok;
}

static bool sched_int(Ck *ck, const Call *c, const char *name, int64_t def, int64_t steps, int64_t *out, SrcLoc *loc)
{
    const KwArg *k = kwarg(c, name);
    *out = def;
    if (!k)
        return true;
    *loc = k->value->loc;
    return to_int(ck, name, k->value, NULL, F_PCT_OF_STEPS, steps, out);
}

static bool sched_num(Ck *ck, const Call *c, const char *name, double def, unsigned flags, double *out, SrcLoc *loc)
{
    const KwArg *k = kwarg(c, name);
    *out = def;
    if (!k)
        return true;
    *loc = k->value->loc;
    return to_num(ck, name, k->value, NULL, flags, out);
}

/* schedule = constant(...) | cosine(...) | relora(...) (§5.3). */
static bool check_schedule(Ck *ck, Section *sec, Spec *spec, SrcLoc train_loc)
{
    static const char *const kinds[] = {"constant", "cosine", "relora"};
    static const char *const kw_constant[] = {"warmup"};
    static const char *const kw_cosine[] = {"warmup", "min_lr_ratio"};
    static const char *const kw_relora[] = {"warmup",       "warm_start", "reset_every", "restart_warmup",
                                            "min_lr_ratio", "prune",      "reset",       "lr"};
    SpecTrain *t = &spec->train;
    SpecSchedule *s = &t->schedule;
    Entry *e = field(sec, "schedule");
    Entry **ovr;
    int n_ovr = dotted_overrides(ck, sec, "schedule", 2, &ovr);
    AstExpr *dflt = fe_expr_new(ck->a, AST_CALL, train_loc);
    dflt->text = spec->adapter.is_present ? "relora" : "cosine";
    const AstExpr *v = e ? e->stmt->value : dflt;
    int kind = -1;
    if (v->kind != AST_CALL || (kind = find_name(v->text, kinds, 3)) < 0) {
        err(ck, v->loc, "'schedule' must be constant(...), cosine(...) or relora(...)%s",
            v->kind == AST_CALL ? suggest(ck, v->text, kinds, 3) : "");
        return false;
    }
    s->kind = (SpecScheduleKind)kind;
    s->loc = v->loc;
    const char *what = arena_sprintf(ck->a, "%s()", v->text);
    Call c = kind == 0   ? call_parse(ck, v, what, 0, kw_constant, 1, ovr, n_ovr)
             : kind == 1 ? call_parse(ck, v, what, 0, kw_cosine, 2, ovr, n_ovr)
                         : call_parse(ck, v, what, 0, kw_relora, 8, ovr, n_ovr);
    if (!c.ok)
        return false;
    int64_t steps = t->steps;
    SrcLoc l_warm = v->loc, l_ws = v->loc, l_re = v->loc, l_rw = v->loc, l_min = v->loc, l_prune = v->loc,
           l_lr = v->loc;
    bool ok = sched_int(ck, &c, "warmup", kind == 0 ? 0 : steps / 20, steps, &s->warmup, &l_warm);
    s->min_lr_ratio = kind == 0 ? 1.0 : 0.1;
    if (kind >= 1)
        ok = sched_num(ck, &c, "min_lr_ratio", 0.1, 0, &s->min_lr_ratio, &l_min) && ok;
    if (kind == 2) {
        int64_t re_def = steps / 5 > 2 ? steps / 5 : 2;
        int64_t rw_def = steps / 50 < re_def ? steps / 50 : re_def - 1;
        ok = sched_int(ck, &c, "warm_start", steps / 4, steps, &s->warm_start, &l_ws) && ok;
        ok = sched_int(ck, &c, "reset_every", re_def, steps, &s->reset_every, &l_re) && ok;
        ok = sched_int(ck, &c, "restart_warmup", rw_def, steps, &s->restart_warmup, &l_rw) && ok;
        ok = sched_num(ck, &c, "prune", 0.99, F_PCT_FRACTION, &s->prune, &l_prune) && ok;
        ok = sched_num(ck, &c, "lr", t->optimizer.lr, 0, &s->relora_lr, &l_lr) && ok;
        const KwArg *k = kwarg(&c, "reset");
        static const char *const resets[] = {"magnitude", "random"};
        int r = 0;
        if (k && !to_word(ck, "reset", k->value, resets, 2, &r))
            ok = false;
        s->reset = (SpecResetKind)r;
    }
    if (!ok)
        return false;
    if (s->warmup < 0 || s->warmup >= steps) {
        err(ck, l_warm, "schedule warmup must be in [0, train.steps): warmup = %lld, steps = %lld",
            (long long)s->warmup, (long long)steps);
        ok = false;
    }
    ok = check_range(ck, l_min, "min_lr_ratio", s->min_lr_ratio, 0, false, 1, false, "min_lr_ratio must be in [0, 1]") &&
         ok;
    if (kind != 2)
        return ok;
    if (!spec->adapter.is_present) {
        err(ck, v->loc, "schedule = relora(...) needs an adapter: declare 'adapter NAME { rank = ... }'");
        ok = false;
    }
    if (s->warm_start < 0 || s->warm_start >= steps) {
        err(ck, l_ws, "warm_start must be in [0, train.steps): warm_start = %lld, steps = %lld",
            (long long)s->warm_start, (long long)steps);
        ok = false;
    }
    if (s->reset_every < 1) {
        err(ck, l_re, "reset_every must be > 0 (got %lld)", (long long)s->reset_every);
        ok = false;
    } else if (s->restart_warmup < 0 || s->reset_every <= s->restart_warmup) {
        err(ck, s->restart_warmup < 0 ? l_rw : l_re,
            "reset_every must be greater than restart_warmup: reset_every = %lld, restart_warmup = %lld",
            (long long)s->reset_every, (long long)s->restart_warmup);
        ok = false;
    }
    ok = check_range(ck, l_prune, "prune", s->prune, 0, false, 1, true, "prune must be in [0, 1)") && ok;
    ok = check_range(ck, l_lr, "lr", s->relora_lr, 0, true, INFINITY, false, "relora lr must be > 0") && ok;
    if (ok) {
        s->n_resets = (steps - 1 - s->warm_start) / s->reset_every;
        if (s->n_resets == 0)
            warn(ck, l_re, "no ReLoRA merge will happen: reset_every = %lld but only %lld steps follow the warm start",
                 (long long)s->reset_every, (long long)(steps - s->warm_start));
    }
    return ok;
}

static bool train_int(Ck *ck, Section *sec, const char *name, int64_t def, int64_t min, int64_t *out)
{
    Entry *e = field(sec, name);
    *out = def;
    if (!e)
        return true;
    if (!to_int(ck, name, e->stmt->value, NULL, 0, 0, out))
        return false;
    if (*out < min) {
        err(ck, e->stmt->value->loc, "train.%s must be >= %lld (got %lld)", name, (long long)min, (long long)*out);
        return false;
    }
    /* steps count optimizer steps of one run; the other sizes are ints in the trainer */
    int64_t max = strcmp(name, "steps") == 0 ? (int64_t)1 << 40 : INT32_MAX;
    if (*out > max) {
        err(ck, e->stmt->value->loc, "train.%s must be < %s (got %lld)", name, max == INT32_MAX ? "2^31" : "2^40",
            (long long)*out);
        return false;
    }
    return true;
}

static bool check_train(Ck *ck, const AstItem *item, AstStmt *const *ovr, int n_ovr, Spec *spec)
{
    SpecTrain *t = &spec->train;
    SpecModel *m = &spec->model;
    Section sec = {.what = "train"};
    SrcLoc at = item ? item->loc : (SrcLoc){ck->file->name, 0, 0, 0};
    if (item) {
        t->is_present = true;
        t->loc = item->loc;
        for (int j = 0; j < item->n_body; j++)
            section_add(ck, &sec, item->body[j], 0, false);
    }
    for (int i = 0; i < n_ovr; i++)
        if (!strcmp(ovr[i]->path.parts[0], "train"))
            section_add(ck, &sec, ovr[i], 1, true);
    bool ok = true;
    Entry *e;
    if ((e = field(&sec, "data")))
        ok = check_data(ck, e, "data", &t->data) && ok;
    if ((e = field(&sec, "val_data")))
        ok = check_data(ck, e, "val_data", &t->val_data) && ok;
    t->val_fraction = 0.05;
    if ((e = field(&sec, "val_fraction"))) {
        if (to_num(ck, "val_fraction", e->stmt->value, NULL, F_PCT_FRACTION, &t->val_fraction))
            ok = check_range(ck, e->stmt->value->loc, "val_fraction", t->val_fraction, 0, true, 1, true,
                             "val_fraction must be in (0, 1)") && ok;
        else
            ok = false;
    }
    ok = train_int(ck, &sec, "batch", 8, 1, &t->batch) && ok;
    ok = train_int(ck, &sec, "seq_len", m->context > 0 ? m->context : 1, 1, &t->seq_len) && ok;
    if ((e = field(&sec, "seq_len")) && m->context > 0 && t->seq_len > m->context) {
        err(ck, e->stmt->value->loc, "seq_len must be <= the model context: seq_len = %lld, context = %lld",
            (long long)t->seq_len, (long long)m->context);
        ok = false;
    }
    /* One step's activations (a generous over-estimate, in doubles so it cannot
     * overflow) must stay far below anything a machine holds: this bounds every
     * size product the report, the lowering and the kernels compute. */
    double acts = (double)m->layers * (double)t->batch * (double)t->seq_len *
                  ((double)m->dim * 16.0 + (double)m->heads * (double)t->seq_len * 2.0 + (double)m->vocab);
    if (ok && ck->n_errors == 0 && acts > 0x1p44) {
        Entry *be = field(&sec, "batch");
        err(ck, be ? be->stmt->value->loc : at,
            "the run is too large: one step's activations would be about %.3g elements (the limit is 2^44); "
            "lower batch, seq_len or the model size", acts);
        ok = false;
    }
    bool steps_ok = train_int(ck, &sec, "steps", 1000, 1, &t->steps);
    ok = steps_ok && ok;
    ok = check_optimizer(ck, &sec, &t->optimizer) && ok;
    t->clip = 1.0;
    if ((e = field(&sec, "clip"))) {
        if (to_num(ck, "clip", e->stmt->value, NULL, 0, &t->clip))
            ok = check_range(ck, e->stmt->value->loc, "clip", t->clip, 0, false, INFINITY, false,
                             "clip must be >= 0 (0 disables clipping)") && ok;
        else
            ok = false;
    }
    static const char *const precisions[] = {"fp32", "bf16"};
    static const char *const targets[] = {"cpu", "cuda"};
    int w;
    Entry *pe = field(&sec, "precision"), *te = field(&sec, "target");
    if (pe) {
        if (to_word(ck, "precision", pe->stmt->value, precisions, 2, &w))
            t->precision = (SpecPrecision)w;
        else
            ok = false;
    }
    if (te) {
        if (to_word(ck, "target", te->stmt->value, targets, 2, &w))
            t->target = (SpecTarget)w;
        else
            ok = false;
    }
    if (t->precision == SPEC_BF16 && t->target == SPEC_TARGET_CPU) {
        err(ck, pe->stmt->value->loc, "precision = bf16 requires target = cuda (the target is cpu)");
        ok = false;
    }
    int64_t seed = 42;
    ok = train_int(ck, &sec, "seed", 42, 0, &seed) && ok;
    t->seed = (uint64_t)seed;
    ok = train_int(ck, &sec, "eval_every", 100, 0, &t->eval_every) && ok;
    ok = train_int(ck, &sec, "eval_batches", 8, 1, &t->eval_batches) && ok;
    ok = train_int(ck, &sec, "checkpoint_every", 0, 0, &t->checkpoint_every) && ok;
    t->checkpoint_dir = "ckpt";
    if ((e = field(&sec, "checkpoint_dir")))
        ok = to_str(ck, "checkpoint_dir", e->stmt->value, &t->checkpoint_dir) && ok;
    if (steps_ok)
        ok = check_schedule(ck, &sec, spec, at) && ok;
    else
    {
        Entry **unused;
        dotted_overrides(ck, &sec, "schedule", 2, &unused);
        (void)field(&sec, "schedule");
    }
    check_unknown_fields(ck, &sec, train_fields, (int)(sizeof train_fields / sizeof *train_fields), train_dotted, 2);
    if (t->data.kind == SPEC_DATA_TEXT && m->vocab > 0 && m->vocab < 256) {
        err(ck, t->data.loc, "text() data is byte-level and needs vocab >= 256 (model '%s' has vocab = %lld)", m->name,
            (long long)m->vocab);
        ok = false;
    }
    if (ck->no_decay_locs && m->n_params > 0)
        ok = check_groups(ck, m, "no_decay", t->optimizer.no_decay, ck->no_decay_locs, t->optimizer.n_no_decay,
                          no_decay_groups, 5) && ok;
    for (int i = 0; i < m->n_params; i++) {
        SpecParam *p = &m->params[i];
        bool nd = false;
        for (int k = 0; k < t->optimizer.n_no_decay; k++)
            nd = nd || (t->optimizer.no_decay[k] && group_selects(t->optimizer.no_decay[k], p));
        p->has_decay = !nd;
        p->init_std = m->init_std;
    }
    return ok;
}

/* sweep NAME { section.field = [v1, v2, ...] ... } (§6): shape only here. */
/* The most variants one sweep may expand to: each is a whole check, so a grid of a
 * few dozen keys would otherwise run for hours and exhaust memory. */
#define MAX_SWEEP_VARIANTS 10000

static void check_sweep(Ck *ck, const AstItem *item)
{
    static const char *const heads[] = {"model", "adapter", "train"};
    int64_t n_variants = 1; /* stops growing past the limit, so it cannot overflow */
    for (int i = 0; i < item->n_body; i++) {
        const AstStmt *s = item->body[i];
        if (s->kind != AST_STMT_ASSIGN)
            continue;
        if (s->path.n < 2 || find_name(s->path.parts[0], heads, 3) < 0) {
            err(ck, s->loc, "sweep keys name a section and a field, like model.dim or adapter.rank (got '%s')%s",
                fe_path_str(ck->a, &s->path), s->path.n >= 2 ? suggest(ck, s->path.parts[0], heads, 3) : "");
            continue;
        }
        if (s->value->kind != AST_LIST || s->value->n_items == 0)
            err(ck, s->value->loc, "sweep values must be a non-empty list like [128, 256] (got %s)",
                fe_expr_kind_name(s->value));
        else if (n_variants <= MAX_SWEEP_VARIANTS)
            n_variants *= s->value->n_items;
    }
    if (n_variants > MAX_SWEEP_VARIANTS)
        err(ck, item->name_loc, "sweep '%s' has more than %d variants (the product of its list lengths); split it into "
                                "smaller sweeps", item->name, MAX_SWEEP_VARIANTS);
}

/* Reports malformed override keys; returns how many valid ones were kept in out. */
static int check_override_paths(Ck *ck, AstStmt *const *ovr, int n, AstStmt **out)
{
    static const char *const heads[] = {"model", "adapter", "train"};
    int k = 0;
    for (int i = 0; i < n; i++) {
        AstStmt *s = ovr[i];
        if (s->kind != AST_STMT_ASSIGN) {
            err(ck, s->loc, "an override is 'section.field=value', like train.steps=100");
        } else if (find_name(s->path.parts[0], heads, 3) < 0 || s->path.n < 2) {
            const char *hint = s->path.n == 1 ? arena_sprintf(ck->a, " (did you mean 'train.%s' or 'model.%s'?)",
                                                             s->path.parts[0], s->path.parts[0])
                                              : suggest(ck, s->path.parts[0], heads, 3);
            err(ck, s->path.locs[0], "override keys start with model., adapter. or train. (got '%s')%s",
                fe_path_str(ck->a, &s->path), hint);
        } else {
            out[k++] = s;
        }
    }
    return k;
}

static bool loc_before(SrcLoc a, SrcLoc b)
{
    if (!a.file || !b.file)
        return !a.file && b.file;
    int c = strcmp(a.file, b.file);
    if (c)
        return c < 0;
    return a.line < b.line || (a.line == b.line && a.col < b.col);
}

/* Orders the diagnostics recorded since `start` by source position (each error or
 * warning keeps its notes right after it), so that a file's problems read top-down
 * whatever order the checks ran in. Insertion sort over groups: stable and small. */
static void sort_diags(Diags *d, int start)
{
    if (d->n - start < 2)
        return;
    int n_groups = 0;
    int *first = arena_alloc(d->arena, sizeof(int) * (size_t)(d->n - start + 2));
    for (int i = start; i < d->n; i++)
        if (d->list[i].level != DIAG_NOTE || i == start)
            first[n_groups++] = i;
    first[n_groups] = d->n;
    int *order = arena_alloc(d->arena, sizeof(int) * (size_t)(n_groups + 1));
    for (int g = 0; g < n_groups; g++) {
        int j = g;
        while (j > 0 && loc_before(d->list[first[g]].loc, d->list[first[order[j - 1]]].loc)) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = g;
    }
    DiagEntry *copy = arena_alloc(d->arena, sizeof(DiagEntry) * (size_t)(d->n - start + 1));
    int k = 0;
    for (int g = 0; g < n_groups; g++)
        for (int i = first[order[g]]; i < first[order[g] + 1]; i++)
            copy[k++] = d->list[i];
    memcpy(d->list + start, copy, sizeof(DiagEntry) * (size_t)k);
}

static const Spec *check_file(Ck *ck, const AstFile *f, AstStmt *const *ovr, int n_ovr);

const Spec *fe_check(Arena *a, Diags *d, const AstFile *f, AstStmt *const *ovr_in, int n_ovr_in, const FeOptions *opt)
{
    static const FeOptions no_opt;
    Ck ck = {.a = a, .d = d, .opt = opt ? opt : &no_opt, .file = f};
    int start = d->n;
    AstStmt **ovr = arena_alloc(a, sizeof(AstStmt *) * (size_t)(n_ovr_in + 1));
    int n_ovr = check_override_paths(&ck, ovr_in, n_ovr_in, ovr);
    const Spec *spec = check_file(&ck, f, ovr, n_ovr);
    sort_diags(d, start);
    return ck.n_errors == 0 ? spec : NULL;
}

/* The whole file: every model, the adapter, train and sweeps; the selected model
 * gets the overrides. Returns the Spec (valid only when ck->n_errors stays 0). */
static const Spec *check_file(Ck *ck, const AstFile *f, AstStmt *const *ovr, int n_ovr)
{
    Arena *a = ck->a;
    Spec *spec = ARENA_NEW(a, Spec);
    spec->file = f->name;
    SrcLoc file_loc = {f->name, 0, 0, 0};
    const AstItem *adapter = NULL, *train = NULL, *selected = NULL;
    for (int i = 0; i < f->n_items; i++) {
        const AstItem *it = f->items[i];
        check_body_shape(ck, it->body, it->n_body, it->kind);
        if (it->kind == AST_ITEM_MODEL) {
            for (int j = 0; j < i; j++)
                if (f->items[j]->kind == AST_ITEM_MODEL && !strcmp(f->items[j]->name, it->name)) {
                    err(ck, it->name_loc, "model '%s' is declared twice", it->name);
                    note(ck, f->items[j]->name_loc, "the first declaration is here");
                    break;
                }
            selected = it;
        } else if (it->kind == AST_ITEM_ADAPTER || it->kind == AST_ITEM_TRAIN) {
            const AstItem **slot = it->kind == AST_ITEM_ADAPTER ? &adapter : &train;
            if (*slot) {
                err(ck, it->loc, "only one %s section is allowed", it->kind == AST_ITEM_ADAPTER ? "adapter" : "train");
                note(ck, (*slot)->loc, "the first one is here");
            } else {
                *slot = it;
            }
        } else {
            check_sweep(ck, it);
        }
    }
    if (ck->opt->model_name) {
        selected = find_model(f, ck->opt->model_name);
        if (!selected) {
            int nn;
            const char **names = model_names(ck, f, &nn);
            err(ck, srcloc_none(), "no model named '%s' in %s%s", ck->opt->model_name, f->name,
                suggest(ck, ck->opt->model_name, names, nn));
        }
    } else if (!selected) {
        err(ck, file_loc, "no model declared (a spec needs 'model NAME { ... }')");
    }
    /* Every other model is checked too, so that an error anywhere is reported. */
    for (int i = 0; i < f->n_items; i++) {
        const AstItem *it = f->items[i];
        if (it->kind == AST_ITEM_MODEL && it != selected) {
            SpecModel scratch;
            Section sec;
            check_model(ck, it, NULL, 0, &scratch, &sec);
        }
    }
    if (!selected)
        return NULL;
    Section msec;
    bool model_ok = check_model(ck, selected, ovr, n_ovr, &spec->model, &msec);
    for (int i = 0; i < n_ovr; i++)
        if (!strcmp(ovr[i]->path.parts[0], "adapter") && !adapter)
            err(ck, ovr[i]->path.locs[0], "cannot override '%s': the spec declares no adapter",
                fe_path_str(a, &ovr[i]->path));
    /* Adapter and train fields are checked even when the model failed; what needs
     * the model (linears, context) is skipped then. */
    if (adapter)
        check_adapter(ck, adapter, ovr, n_ovr, spec);
    check_train(ck, train, ovr, n_ovr, spec);
    if (model_ok && adapter && spec->adapter.is_present && spec->train.schedule.kind != SPEC_SCHED_RELORA &&
        ck->n_errors == 0)
        warn(ck, adapter->name_loc, "adapter '%s' is not used: the schedule is %s(), not relora()", adapter->name,
             spec_schedule_kind_name(spec->train.schedule.kind));
    return spec;
}

const Spec *fe_load_spec_buffer(Arena *a, Diags *d, const char *name, const char *text, size_t len,
                                const FeOptions *opt)
{
    FeCtx ctx;
    fe_ctx_init(&ctx, a, d);
    bool ok = fe_parse_buffer(&ctx, name, text, len);
    const AstFile *file = ctx.ast;
    AstVec ovr = {0};
    if (opt && opt->n_defines > 0)
        ok = fe_parse_overrides(&ctx, opt->defines, opt->n_defines, &ovr) && ok;
    if (!ok)
        return NULL;
    return fe_check(a, d, file, (AstStmt *const *)ovr.data, ovr.n, opt);
}

const Spec *fe_load_spec(Arena *a, Diags *d, const char *path, const FeOptions *opt)
{
    size_t len;
    char *text = fe_read_file(a, path, &len);
    if (!text) {
        diag_error(d, (SrcLoc){arena_strdup(a, path), 0, 0, 0}, "cannot read the file");
        return NULL;
    }
    return fe_load_spec_buffer(a, d, path, text, len, opt);
}

bool fe_sweep_expand(Arena *a, Diags *d, const char *name, const char *text, size_t len, const FeOptions *opt,
                     const char *sweep_name, FeVariant **out, int *n_out)
{
    FeCtx ctx;
    fe_ctx_init(&ctx, a, d);
    *out = NULL;
    *n_out = 0;
    bool ok = fe_parse_buffer(&ctx, name, text, len);
    const AstFile *file = ctx.ast;
    AstVec base = {0};
    if (opt && opt->n_defines > 0)
        ok = fe_parse_overrides(&ctx, opt->defines, opt->n_defines, &base) && ok;
    if (!ok)
        return false;
    /* The file must check on its own first (sweep shapes included). */
    if (!fe_check(a, d, file, (AstStmt *const *)base.data, base.n, opt))
        return false;
    AstVec vars = {0};
    bool found = false;
    for (int i = 0; i < file->n_items; i++) {
        const AstItem *sw = file->items[i];
        if (sw->kind != AST_ITEM_SWEEP || (sweep_name && strcmp(sweep_name, sw->name)))
            continue;
        found = true;
        int n = sw->n_body;
        int *idx = arena_alloc(a, sizeof(int) * (size_t)(n + 1));
        for (;;) {
            AstVec ovr = {0};
            for (int j = 0; j < base.n; j++)
                fe_vec_push(a, &ovr, base.data[j]);
            const char *vname = arena_sprintf(a, "%s/", sw->name);
            for (int j = 0; j < n; j++) {
                const AstStmt *s = sw->body[j];
                AstStmt *o = ARENA_NEW(a, AstStmt);
                *o = *s;
                o->value = s->value->items[idx[j]];
                fe_vec_push(a, &ovr, o);
                vname = arena_sprintf(a, "%s%s%s=%s", vname, j ? "," : "", s->path.parts[s->path.n - 1],
                                      fe_expr_str(a, o->value));
            }
            FeVariant *v = ARENA_NEW(a, FeVariant);
            int e0 = d->n_errors;
            v->name = vname;
            v->spec = fe_check(a, d, file, (AstStmt *const *)ovr.data, ovr.n, opt);
            v->n_errors = d->n_errors - e0;
            if (!v->spec)
                diag_note(d, sw->name_loc, "in sweep variant '%s'", vname);
            fe_vec_push(a, &vars, v);
            int j = n - 1;
            while (j >= 0 && ++idx[j] == sw->body[j]->value->n_items)
                idx[j--] = 0;
            if (j < 0 || n == 0)
                break;
        }
    }
    if (sweep_name && !found) {
        diag_error(d, srcloc_none(), "no sweep named '%s' in %s", sweep_name, name);
        return false;
    }
    *out = arena_alloc(a, sizeof(FeVariant) * (size_t)(vars.n + 1));
    for (int i = 0; i < vars.n; i++)
        (*out)[i] = *(FeVariant *)vars.data[i];
    *n_out = vars.n;
    return true;
}

/* ---- Spec helpers --------------------------------------------------------------- */

const char *spec_param_name(Arena *a, const SpecParam *p, int64_t layer)
{
    return p->is_per_layer ? arena_sprintf(a, "layers.%lld.%s", (long long)layer, p->local_name) : p->name;
}

int64_t spec_param_total(const SpecModel *m, const SpecParam *p)
{
    return p->is_per_layer ? p->numel * m->layers : p->numel;
}

const char *spec_module_kind_name(SpecModuleKind k)
{
    static const char *const names[] = {"attention", "swiglu", "geglu", "linear", "rmsnorm", "layernorm"};
    return (unsigned)k < 6 ? names[k] : "?";
}

const char *spec_node_kind_name(SpecNodeKind k)
{
    static const char *const names[] = {"input", "local", "add", "mul", "scale", "act", "module"};
    return (unsigned)k < 7 ? names[k] : "?";
}

const char *spec_act_name(SpecActivation act)
{
    static const char *const names[] = {"gelu", "relu", "silu"};
    return (unsigned)act < 3 ? names[act] : "?";
}

const char *spec_schedule_kind_name(SpecScheduleKind k)
{
    static const char *const names[] = {"constant", "cosine", "relora"};
    return (unsigned)k < 3 ? names[k] : "?";
}
