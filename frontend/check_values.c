/* check_values.c: from DSL text to field values. Diagnostics (de-duplicated), the
 * assignments that apply to a section, constant evaluation, calls with keyword
 * arguments, and the one reader that gives every field of fields.def its type,
 * percentage rule, bounds and default, so the checks of each section only add the
 * rules between fields. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checker.h"

/* ---- diagnostics with de-duplication -------------------------------------------- */

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

void ck_err(Ck *ck, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(ck, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
}

void ck_warn(Ck *ck, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(ck, DIAG_WARNING, loc, fmt, ap);
    va_end(ap);
}

void ck_note(Ck *ck, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(ck, DIAG_NOTE, loc, fmt, ap);
    va_end(ap);
}

int ck_count(const char *const *names)
{
    int n = 0;
    while (names && names[n])
        n++;
    return n;
}

int ck_find(const char *name, const char *const *names)
{
    for (int i = 0; names && names[i]; i++)
        if (!strcmp(name, names[i]))
            return i;
    return -1;
}

const char *ck_suggest(Ck *ck, const char *name, const char *const *cands)
{
    const char *s = diag_suggest(name, cands, ck_count(cands));
    return s ? arena_sprintf(ck->a, "; did you mean '%s'?", s) : "";
}

const char *ck_join(Ck *ck, const char *const *names)
{
    int n = ck_count(names);
    const char *s = "";
    for (int i = 0; i < n; i++)
        s = arena_sprintf(ck->a, "%s%s%s", s, i == 0 ? "" : i == n - 1 ? " or " : ", ", names[i]);
    return s;
}

bool ck_glob_match(const char *pat, const char *s)
{
    if (*pat == '\0')
        return *s == '\0';
    if (*pat == '*') {
        for (;; s++) {
            if (ck_glob_match(pat + 1, s))
                return true;
            if (*s == '\0')
                return false;
        }
    }
    if (*s == '\0')
        return false;
    return (*pat == '?' || *pat == *s) && ck_glob_match(pat + 1, s + 1);
}

/* ---- sections ----------------------------------------------------------------------- */

void ck_section_add(Ck *ck, Section *s, const AstStmt *st, int skip, bool is_override)
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

Entry *ck_field(Section *s, const char *name)
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

Entry *ck_last_entry(Section *s, const char *name)
{
    Entry *found = NULL;
    for (int i = 0; i < s->n; i++)
        if (s->e[i].n == 1 && !strcmp(s->e[i].parts[0], name))
            found = &s->e[i];
    return found;
}

int ck_dotted_overrides(Ck *ck, Section *s, const char *head, int depth, Entry ***out)
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

const char **ck_field_names(Ck *ck, FieldSection fs, bool only_dotted)
{
    const char **names = arena_alloc(ck->a, sizeof(char *) * (FIELD_COUNT + 1));
    int n = 0;
    for (int i = 0; i < FIELD_COUNT; i++) {
        const FieldDesc *f = &fe_fields[i];
        if (f->section == fs && (!only_dotted || f->type == FT_CALL || f->type == FT_BLOCK))
            names[n++] = f->name;
    }
    names[n] = NULL;
    return names;
}

const char **ck_declaration_names(Ck *ck)
{
    const char **names = arena_alloc(ck->a, sizeof(char *) * (FS_COUNT + 1));
    int n = 0;
    for (int i = 0; i < FS_COUNT; i++)
        if (fe_sections[i].parent == FIELD_NONE)
            names[n++] = fe_sections[i].name;
    names[n] = NULL;
    return names;
}

void ck_unknown_fields(Ck *ck, Section *s, FieldSection fs)
{
    const char **known = ck_field_names(ck, fs, false), **dotted = ck_field_names(ck, fs, true);
    for (int i = 0; i < s->n; i++) {
        Entry *e = &s->e[i];
        if (e->is_used)
            continue;
        if (e->stmt->kind == AST_STMT_DEF && ck_find(e->parts[0], known) >= 0) {
            ck_err(ck, e->locs[0], "'%s' is a field, not a definition: set it with '%s = ...'", e->parts[0],
                   e->parts[0]);
        } else if (ck_find(e->parts[0], known) < 0) {
            if (e->stmt->kind == AST_STMT_DEF)
                ck_err(ck, e->locs[0], "unknown definition '%s' in %s%s", e->parts[0], s->what,
                       ck_suggest(ck, e->parts[0], known));
            else
                ck_err(ck, e->locs[0], "unknown field '%s' in %s%s", e->parts[0], s->what,
                       ck_suggest(ck, e->parts[0], known));
        } else if (e->n > 1 && ck_find(e->parts[0], dotted) < 0) {
            ck_err(ck, e->locs[1], "field '%s' has no sub-field '%s' (only %s take dotted names)", e->parts[0],
                   e->parts[1], ck_join(ck, dotted));
        }
    }
}

/* ---- constant values ------------------------------------------------------------ */

static Val v_float(double f)
{
    return (Val){.k = V_FLOAT, .f = f};
}

const char *ck_val_kind_name(const Val *v)
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
    return ck_val_kind_name(v);
}

Val ck_arith(Ck *ck, const AstExpr *e, Val l, Val r)
{
    if (l.k == V_ERR || r.k == V_ERR)
        return v_err();
    if ((l.k != V_INT && l.k != V_FLOAT) || (r.k != V_INT && r.k != V_FLOAT)) {
        ck_err(ck, e->loc, "operands of '%c' must be numbers (got %s and %s)", e->op, ck_val_kind_name(&l),
               ck_val_kind_name(&r));
        return v_err();
    }
    if (l.is_pct || r.is_pct) {
        ck_err(ck, e->loc, "percentages cannot be used in arithmetic");
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
                ck_err(ck, e->loc, "division by zero");
                return v_err();
            }
            if (l.i % r.i != 0)
                return v_float((double)l.i / (double)r.i);
            out = l.i / r.i;
            break;
        }
        if (of) {
            ck_err(ck, e->loc, "integer overflow in '%c'", e->op);
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
            ck_err(ck, e->loc, "division by zero");
            return v_err();
        }
        out = x / y;
        break;
    }
    return v_float(out);
}

Val ck_negate(Ck *ck, const AstExpr *e, Val v)
{
    if (v.k == V_INT) {
        if (v.i == INT64_MIN) {
            ck_err(ck, e->loc, "integer overflow in '-'");
            return v_err();
        }
        v.i = -v.i;
        v.f = -v.f;
        return v;
    }
    if (v.k == V_FLOAT) {
        v.f = -v.f;
        v.pct = -v.pct;
        return v;
    }
    if (v.k != V_ERR)
        ck_err(ck, e->loc, "'-' needs a number (got %s)", ck_val_kind_name(&v));
    return v_err();
}

Val ck_eval_num(Ck *ck, const AstExpr *e)
{
    if (e->suffix == '%') {
        Val v = v_float(e->fval / 100.0);
        v.is_pct = true;
        v.pct = e->fval;
        return v;
    }
    if ((e->suffix == 'k' || e->suffix == 'M') && !e->is_int) {
        ck_err(ck, e->loc, "the '%c' suffix is only allowed on integers (got '%s')", e->suffix, e->text);
        return v_err();
    }
    return e->is_int ? v_int(e->ival) : v_float(e->fval);
}

Val ck_eval_const(Ck *ck, const AstExpr *e, const Env *env, int depth)
{
    if (depth > 200) {
        ck_err(ck, e->loc, "expression is nested too deeply");
        return v_err();
    }
    switch (e->kind) {
    case AST_NUM: return ck_eval_num(ck, e);
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
    case AST_NEG: return ck_negate(ck, e, ck_eval_const(ck, e->lhs, env, depth + 1));
    case AST_BINARY: {
        Val l = ck_eval_const(ck, e->lhs, env, depth + 1);
        Val r = ck_eval_const(ck, e->rhs, env, depth + 1);
        if (l.k == V_WORD && l.s) {
            ck_err(ck, e->lhs->loc, "unknown name '%s' in an integer expression", l.s);
            return v_err();
        }
        if (r.k == V_WORD && r.s) {
            ck_err(ck, e->rhs->loc, "unknown name '%s' in an integer expression", r.s);
            return v_err();
        }
        return ck_arith(ck, e, l, r);
    }
    }
    return v_err();
}

/* The fields that accept a percentage come from fields.def. */
static void no_percent(Ck *ck, const AstExpr *e, const char *name)
{
    ck_err(ck, e->loc, "'%%' is not allowed on '%s' (percentages are allowed on %s)", name,
           fe_fields_percent_names(ck->a));
}

bool ck_to_int(Ck *ck, const char *name, const AstExpr *e, const Env *env, int64_t pct_base, int64_t *out,
               double *pct)
{
    Val v = ck_eval_const(ck, e, env, 0);
    if (v.k == V_ERR)
        return false;
    if (v.is_pct) {
        if (pct_base <= 0) {
            no_percent(ck, e, name);
            return false;
        }
        /* §5.3: a percentage of train.steps, rounded down */
        double steps = floor(v.f * (double)pct_base + 1e-9);
        if (!(steps > -0x1p62 && steps < 0x1p62)) { /* NaN too: keep the cast below defined */
            ck_err(ck, e->loc, "'%s' is out of range (got %g%% of %lld steps)", name, v.f * 100, (long long)pct_base);
            return false;
        }
        *out = (int64_t)steps;
        if (pct)
            *pct = v.pct;
        return true;
    }
    if (v.k == V_FLOAT) {
        /* "got 2.0", not "got 2": %g drops the fraction that makes it a float */
        char num[48];
        snprintf(num, sizeof num, "%g", v.f);
        if (!strpbrk(num, ".eEni"))
            snprintf(num + strlen(num), sizeof num - strlen(num), ".0");
        ck_err(ck, e->loc, "'%s' must be an integer (got %s)", name, num);
        return false;
    }
    if (v.k != V_INT) {
        ck_err(ck, e->loc, "'%s' must be an integer (got %s)", name, val_desc(ck, &v));
        return false;
    }
    *out = v.i;
    if (pct)
        *pct = -1;
    return true;
}

bool ck_to_num(Ck *ck, const char *name, const AstExpr *e, const Env *env, bool is_fraction, double *out)
{
    Val v = ck_eval_const(ck, e, env, 0);
    if (v.k == V_ERR)
        return false;
    if (v.is_pct && !is_fraction) {
        no_percent(ck, e, name);
        return false;
    }
    if (v.k != V_INT && v.k != V_FLOAT) {
        ck_err(ck, e->loc, "'%s' must be a number (got %s)", name, val_desc(ck, &v));
        return false;
    }
    *out = v.f;
    return true;
}

bool ck_to_bool(Ck *ck, const char *name, const AstExpr *e, bool *out)
{
    Val v = ck_eval_const(ck, e, NULL, 0);
    if (v.k == V_ERR)
        return false;
    if (v.k != V_BOOL) {
        ck_err(ck, e->loc, "'%s' must be true or false (got %s)", name, val_desc(ck, &v));
        return false;
    }
    *out = v.b;
    return true;
}

bool ck_to_str(Ck *ck, const char *name, const AstExpr *e, const char **out)
{
    Val v = ck_eval_const(ck, e, NULL, 0);
    if (v.k == V_ERR)
        return false;
    if (v.k != V_STR) {
        ck_err(ck, e->loc, "'%s' must be a string in double quotes (got %s)", name, val_desc(ck, &v));
        return false;
    }
    *out = v.s;
    return true;
}

bool ck_to_word(Ck *ck, const char *name, const AstExpr *e, const char *const *words, int *out)
{
    Val v = ck_eval_const(ck, e, NULL, 0);
    if (v.k == V_ERR)
        return false;
    if (v.k != V_WORD || !v.s) {
        ck_err(ck, e->loc, "'%s' must be one of %s (got %s)", name, ck_join(ck, words), ck_val_kind_name(&v));
        return false;
    }
    int i = ck_find(v.s, words);
    if (i < 0) {
        ck_err(ck, e->loc, "'%s' must be one of %s (got '%s')%s", name, ck_join(ck, words), v.s,
               ck_suggest(ck, v.s, words));
        return false;
    }
    *out = i;
    return true;
}

static bool to_names(Ck *ck, const char *name, const AstExpr *e, SpecNames *out)
{
    if (e->kind != AST_LIST) {
        ck_err(ck, e->loc, "'%s' must be a list of strings like [\"a\", \"b\"] (got %s)", name, fe_expr_kind_name(e));
        return false;
    }
    const char **list = arena_alloc(ck->a, sizeof(char *) * (size_t)(e->n_items + 1));
    SrcLoc *locs = arena_alloc(ck->a, sizeof(SrcLoc) * (size_t)(e->n_items + 1));
    bool ok = true;
    for (int i = 0; i < e->n_items; i++) {
        locs[i] = e->items[i]->loc;
        if (e->items[i]->kind != AST_STRING) {
            ck_err(ck, e->items[i]->loc, "'%s' must be a list of strings (item %d is %s)", name, i + 1,
                   fe_expr_kind_name(e->items[i]));
            ok = false;
            continue;
        }
        list[i] = e->items[i]->text;
    }
    *out = (SpecNames){list, locs, e->n_items};
    return ok;
}

/* ---- calls ---------------------------------------------------------------------- */

Call ck_call_parse(Ck *ck, const AstExpr *e, const char *what, int max_pos, const char *const *kws, Entry *const *ovr,
                   int n_ovr)
{
    Call c = {.e = e, .ok = true};
    c.kw = arena_alloc(ck->a, sizeof(KwArg) * (size_t)(e->n_args + n_ovr + 1));
    const char *expected = kws && kws[0] ? arena_sprintf(ck->a, "expected %s", ck_join(ck, kws)) : "it takes none";
    for (int i = 0; i < e->n_args; i++) {
        const AstArg *g = &e->args[i];
        if (!g->name) {
            if (c.n_kw > 0) {
                ck_err(ck, g->value->loc, "positional argument after keyword arguments in %s", what);
                c.ok = false;
            } else if (c.n_pos >= max_pos || c.n_pos >= COUNTOF(c.pos)) {
                ck_err(ck, g->value->loc, "%s takes %d positional argument%s (got more)", what, max_pos,
                       max_pos == 1 ? "" : "s");
                c.ok = false;
            } else {
                c.pos[c.n_pos++] = g->value;
            }
            continue;
        }
        if (ck_find(g->name, kws) < 0) {
            ck_err(ck, g->name_loc, "unknown argument '%s' to %s (%s)%s", g->name, what, expected,
                   ck_suggest(ck, g->name, kws));
            c.ok = false;
            continue;
        }
        bool dup = false;
        for (int j = 0; j < c.n_kw; j++)
            if (!strcmp(c.kw[j].name, g->name)) {
                ck_err(ck, g->name_loc, "duplicate argument '%s' to %s", g->name, what);
                ck_note(ck, c.kw[j].name_loc, "'%s' was first given here", g->name);
                dup = true;
            }
        if (!dup)
            c.kw[c.n_kw++] = (KwArg){g->name, g->name_loc, g->value};
    }
    for (int i = 0; i < n_ovr; i++) {
        const Entry *o = ovr[i];
        const char *name = o->parts[o->n - 1];
        SrcLoc loc = o->locs[o->n - 1];
        if (ck_find(name, kws) < 0) {
            ck_err(ck, loc, "unknown argument '%s' to %s (%s)%s", name, what, expected, ck_suggest(ck, name, kws));
            c.ok = false;
            continue;
        }
        int j = 0;
        while (j < c.n_kw && strcmp(c.kw[j].name, name))
            j++;
        if (j == c.n_kw)
            c.n_kw++;
        c.kw[j] = (KwArg){name, loc, o->stmt->value};
    }
    return c;
}

const KwArg *ck_kwarg(const Call *c, const char *name)
{
    for (int i = 0; i < c->n_kw; i++)
        if (!strcmp(c->kw[i].name, name))
            return &c->kw[i];
    return NULL;
}

SrcLoc ck_kw_loc(const Call *c, const char *name)
{
    const KwArg *k = ck_kwarg(c, name);
    return k ? k->value->loc : c->e->loc;
}

/* ---- fields ------------------------------------------------------------------------- */

/* A copy of e with every location at `at`: a default reads as written where the
 * section (or call) that lacks the field is. */
static AstExpr *relocated(Arena *a, const AstExpr *e, SrcLoc at)
{
    AstExpr *c = ARENA_NEW(a, AstExpr);
    *c = *e;
    c->loc = at;
    if (e->lhs)
        c->lhs = relocated(a, e->lhs, at);
    if (e->rhs)
        c->rhs = relocated(a, e->rhs, at);
    if (e->n_items) {
        c->items = arena_alloc(a, sizeof(AstExpr *) * (size_t)e->n_items);
        for (int i = 0; i < e->n_items; i++)
            c->items[i] = relocated(a, e->items[i], at);
    }
    if (e->n_args) {
        c->args = arena_alloc(a, sizeof(AstArg) * (size_t)e->n_args);
        for (int i = 0; i < e->n_args; i++) {
            c->args[i] = e->args[i];
            c->args[i].name_loc = at;
            c->args[i].value = relocated(a, e->args[i].value, at);
        }
    }
    return c;
}

/* Parses every default of fields.def once per check, with the real parser, so a
 * default means exactly what the same text means in a spec. */
static void parse_defaults(Ck *ck)
{
    const char *defines[FIELD_COUNT];
    int ids[FIELD_COUNT], n = 0;
    for (int i = 0; i < FIELD_COUNT; i++)
        if (fe_fields[i].def && !(fe_fields[i].flags & FF_COMPUTED)) {
            ids[n] = i;
            defines[n++] = arena_sprintf(ck->a, "default=%s", fe_fields[i].def);
        }
    Diags scratch;
    diag_init(&scratch, ck->a);
    FeCtx ctx;
    fe_ctx_init(&ctx, ck->a, &scratch);
    AstVec stmts;
    bool ok = fe_parse_overrides(&ctx, defines, n, &stmts);
    if (!ok || stmts.n != n) {
        fprintf(stderr, "%s:%d: internal error: a default in fields.def does not parse\n", __FILE__, __LINE__);
        diag_print(&scratch, stderr, false);
        abort();
    }
    ck->defaults = arena_alloc(ck->a, sizeof(AstExpr *) * FIELD_COUNT);
    memset(ck->defaults, 0, sizeof(AstExpr *) * FIELD_COUNT);
    for (int i = 0; i < n; i++)
        ck->defaults[ids[i]] = ((AstStmt *)stmts.data[i])->value;
}

const AstExpr *ck_field_default(Ck *ck, const FieldDesc *f, SrcLoc at)
{
    if (!ck->defaults)
        parse_defaults(ck);
    const AstExpr *e = ck->defaults[f->id];
    return e ? relocated(ck->a, e, at) : NULL;
}

/* "%g" for numbers; integer bounds print as integers or 2^k. */
static const char *bound_str(Ck *ck, double v)
{
    int e;
    if (v >= 0x1p20 && frexp(v, &e) == 0.5)
        return arena_sprintf(ck->a, "2^%d", e - 1);
    return arena_sprintf(ck->a, "%g", v);
}

/* f's bounds (fields.def); got is the value as the message shows it. */
static bool check_bounds(Ck *ck, const FieldDesc *f, const char *label, SrcLoc loc, double v, const char *got)
{
    bool lo_open = f->flags & FF_LO_OPEN, hi_open = f->flags & FF_HI_OPEN;
    bool lo_ok = !isfinite(f->lo) || (lo_open ? v > f->lo : v >= f->lo);
    bool hi_ok = !isfinite(f->hi) || (hi_open ? v < f->hi : v <= f->hi);
    if (lo_ok && hi_ok)
        return true;
    if (isfinite(f->lo) && isfinite(f->hi) && f->type != FT_INT)
        ck_err(ck, loc, "%s must be in %c%s, %s%c (got %s)", label, lo_open ? '(' : '[', bound_str(ck, f->lo),
               bound_str(ck, f->hi), hi_open ? ')' : ']', got);
    else if (!lo_ok)
        ck_err(ck, loc, "%s must be %s %s (got %s)", label, lo_open ? ">" : ">=", bound_str(ck, f->lo), got);
    else
        ck_err(ck, loc, "%s must be %s %s (got %s)", label, hi_open ? "<" : "<=", bound_str(ck, f->hi), got);
    return false;
}

/* The token type of an existing data file (§5): tokens() reads llm.c's header (256 int32:
 * magic, version, count; docs/runtime.md "Data" lists the two formats), nanogpt() is
 * uint16, text() bytes. False after an error for a header that is neither format. */
static bool probe_data(Ck *ck, SpecData *d)
{
    if (d->kind == SPEC_DATA_TEXT) {
        d->id_limit = 256;
        d->format = "bytes";
        return true;
    }
    if (d->kind == SPEC_DATA_NANOGPT) {
        d->id_limit = 65536;
        d->format = "uint16 tokens, nanoGPT's headerless format";
        return true;
    }
    FILE *fp = fopen(d->path, "rb");
    unsigned char h[8];
    size_t got = fp ? fread(h, 1, sizeof h, fp) : 0;
    if (fp)
        fclose(fp);
    if (!fp)
        return true; /* reported with the other file errors when training */
    int32_t magic = got == 8 ? (int32_t)((uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24) : 0;
    int32_t version = got == 8 ? (int32_t)((uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24) : 0;
    if (magic == 20240520 && version == 1) {
        d->id_limit = 65536;
        d->format = "uint16 tokens, llm.c's GPT-2 format";
    } else if (magic == 20240801 && version == 7) {
        d->id_limit = (int64_t)1 << 32;
        d->format = "uint32 tokens, llm.c's LLaMA-3 format";
    } else {
        ck_err(ck, d->loc,
               "'%s' is not an llm.c token file: expected magic 20240520 version 1 (uint16 tokens) or magic "
               "20240801 version 7 (uint32 tokens), found %s; a headerless nanoGPT file is nanogpt(\"%s\")",
               d->path, got == 8 ? arena_sprintf(ck->a, "magic %d version %d", magic, version) : "a shorter file",
               d->path);
        return false;
    }
    return true;
}

/* data = text("f") | tokens("f") | nanogpt("f") (§5). */
static bool read_data(Ck *ck, const FieldDesc *f, const AstExpr *v, SpecData *d)
{
    d->loc = v->loc;
    if (v->kind != AST_CALL || ck_find(v->text, f->words) < 0) {
        ck_err(ck, v->loc, "'%s' must be text(\"file.txt\"), tokens(\"file.bin\") or nanogpt(\"file.bin\")%s", f->name,
               v->kind == AST_CALL ? ck_suggest(ck, v->text, f->words) : "");
        return false;
    }
    const char *what = arena_sprintf(ck->a, "%s()", v->text);
    Call c = ck_call_parse(ck, v, what, 1, NULL, NULL, 0);
    if (!c.ok)
        return false;
    if (c.n_pos != 1) {
        ck_err(ck, v->loc, "%s() takes one file name", v->text);
        return false;
    }
    if (!ck_to_str(ck, what, c.pos[0], &d->path))
        return false;
    d->kind = (SpecDataKind)(SPEC_DATA_TEXT + ck_find(v->text, f->words));
    d->loc = c.pos[0]->loc;
    d->exists = access(d->path, R_OK) == 0;
    if (!d->exists) {
        if (ck->opt && ck->opt->is_training)
            ck_err(ck, d->loc, "data file '%s' not found", d->path);
        else
            ck_warn(ck, d->loc, "data file '%s' not found (it must exist when training)", d->path);
    }
    if (!probe_data(ck, d)) /* nanogpt() is uint16 whether or not the file is there yet */
        return false;
    return !(ck->opt && ck->opt->is_training && !d->exists);
}

FieldRead ck_field_read(Ck *ck, const FieldDesc *f, const AstExpr *e, int64_t steps, Spec *spec)
{
    void *slot = fe_field_slot(spec, f);
    const char *label = fe_field_label(f);
    bool ok = false;
    switch (f->type) {
    case FT_INT: {
        int64_t v;
        if (!ck_to_int(ck, f->name, e, NULL, 0, &v, NULL))
            return FR_FAILED;
        *(int64_t *)slot = v;
        return check_bounds(ck, f, label, e->loc, (double)v, arena_sprintf(ck->a, "%lld", (long long)v)) ? FR_OK
                                                                                                          : FR_BOUNDS;
    }
    case FT_STEPS: {
        SpecSteps *s = slot;
        ok = ck_to_int(ck, f->name, e, NULL, steps, &s->n, &s->percent);
        break;
    }
    case FT_NUM: {
        double v;
        if (!ck_to_num(ck, f->name, e, NULL, f->flags & FF_PERCENT, &v))
            return FR_FAILED;
        *(double *)slot = v;
        return check_bounds(ck, f, label, e->loc, v, arena_sprintf(ck->a, "%g", v)) ? FR_OK : FR_BOUNDS;
    }
    case FT_BOOL: ok = ck_to_bool(ck, f->name, e, slot); break;
    case FT_STR: ok = ck_to_str(ck, f->name, e, slot); break;
    case FT_WORD: {
        int w;
        ok = ck_to_word(ck, f->name, e, f->words, &w);
        if (ok)
            memcpy(slot, &w, sizeof w); /* an enum the size of int (fields.c) */
        break;
    }
    case FT_NAMES: ok = to_names(ck, f->name, e, slot); break;
    case FT_DATA: ok = read_data(ck, f, e, slot); break;
    case FT_PAIR: {
        double *v = slot;
        if (e->kind != AST_TUPLE || e->n_items != 2) {
            ck_err(ck, e->loc, "'%s' must be a pair like %s", f->name, f->def);
            return FR_FAILED;
        }
        if (!ck_to_num(ck, f->name, e->items[0], NULL, false, &v[0]) ||
            !ck_to_num(ck, f->name, e->items[1], NULL, false, &v[1]))
            return FR_FAILED;
        bool ok0 = check_bounds(ck, f, arena_sprintf(ck->a, "%s1", label), e->items[0]->loc, v[0],
                                arena_sprintf(ck->a, "%g", v[0]));
        bool ok1 = check_bounds(ck, f, arena_sprintf(ck->a, "%s2", label), e->items[1]->loc, v[1],
                                arena_sprintf(ck->a, "%g", v[1]));
        return ok0 && ok1 ? FR_OK : FR_BOUNDS;
    }
    case FT_CALL:
    case FT_BLOCK:
        fprintf(stderr, "%s:%d: internal error: field '%s' is not a value\n", __FILE__, __LINE__, f->name);
        abort();
    }
    return ok ? FR_OK : FR_FAILED;
}

/* Gives f its default before any assignment is read: a computed one from the section's
 * function, which may use the fields above f; a value that fails to convert then
 * leaves the default in place, one out of its bounds stays (and was reported). */
static void prefill(Ck *ck, const FieldDesc *f, SrcLoc at, int64_t steps, Spec *spec, FieldDefaultFn *computed)
{
    if (f->flags & FF_COMPUTED) {
        if (computed)
            computed(f, spec);
    } else if (f->def) {
        ck_field_read(ck, f, ck_field_default(ck, f, at), steps, spec);
    }
}

bool ck_read_section(Ck *ck, Section *sec, FieldSection fs, SrcLoc at, Spec *spec, FieldDefaultFn *computed,
                     FieldRead *read)
{
    bool all = true;
    for (int i = 0; i < FIELD_COUNT; i++) {
        const FieldDesc *f = &fe_fields[i];
        if (f->section != fs || f->type == FT_CALL || f->type == FT_BLOCK)
            continue;
        prefill(ck, f, at, 0, spec, computed);
        Entry *e = ck_field(sec, f->name);
        read[i] = FR_OK;
        if (e)
            read[i] = ck_field_read(ck, f, e->stmt->value, 0, spec);
        else if (!f->def) {
            ck_err(ck, at, "%s is missing the required field '%s'", sec->what, f->name);
            read[i] = FR_FAILED;
        }
        all = all && read[i] == FR_OK;
    }
    return all;
}

bool ck_read_call(Ck *ck, const Call *c, FieldSection fs, int64_t steps, Spec *spec, FieldDefaultFn *computed,
                  FieldRead *read)
{
    bool all = true;
    for (int i = 0; i < FIELD_COUNT; i++) {
        const FieldDesc *f = &fe_fields[i];
        if (f->section != fs)
            continue;
        prefill(ck, f, c->e->loc, steps, spec, computed);
        const KwArg *k = ck_kwarg(c, f->name);
        read[i] = k ? ck_field_read(ck, f, k->value, steps, spec) : FR_OK;
        all = all && read[i] == FR_OK;
    }
    return all;
}
