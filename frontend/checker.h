/* checker.h: what the checker's files share (private to frontend/check_*.c, check.c and
 * sweep.c). check_values.c turns DSL values into field values by the rules of
 * fields.def; the other files check one part of a spec each: check_model.c and
 * check_block.c the model, check_adapter.c the adapter, check_train.c train with its
 * optimizer and schedule, check.c the whole file, sweep.c the sweeps. */
#ifndef RELORAC_CHECKER_H
#define RELORAC_CHECKER_H

#include <stdarg.h>

#include "fe.h"
#include "fields.h"

#define COUNTOF(a) ((int)(sizeof(a) / sizeof *(a)))

/* The state of one fe_check. */
typedef struct Ck {
    Arena *a;
    Diags *d;
    const FeOptions *opt;
    const AstFile *file;
    bool last_dropped; /* the previous error was a duplicate: drop its notes too */
    int n_errors;      /* errors found by this check (including duplicates) */
    bool model_ok;     /* the selected model checked without errors */
    AstExpr **defaults; /* each field's default, parsed (ck_field_default) */
} Ck;

/* ---- diagnostics (check_values.c) ----------------------------------------------
 * A parent model is checked on its own and again inside each variant; the same
 * problem at the same place is reported once. */
__attribute__((format(printf, 3, 4))) void ck_err(Ck *ck, SrcLoc loc, const char *fmt, ...);
__attribute__((format(printf, 3, 4))) void ck_warn(Ck *ck, SrcLoc loc, const char *fmt, ...);
__attribute__((format(printf, 3, 4))) void ck_note(Ck *ck, SrcLoc loc, const char *fmt, ...);

/* Name lists are NULL-terminated. */
int ck_count(const char *const *names);
/* The index of name in names, or -1. */
int ck_find(const char *name, const char *const *names);
/* "; did you mean 'x'?" or "" */
const char *ck_suggest(Ck *ck, const char *name, const char *const *cands);
/* "a, b or c" */
const char *ck_join(Ck *ck, const char *const *names);
/* Glob match: '*' any run of characters (dots included), '?' one character. */
bool ck_glob_match(const char *pat, const char *s);

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

void ck_section_add(Ck *ck, Section *s, const AstStmt *st, int skip, bool is_override);
/* The last whole assignment of name (n == 1); NULL if none. Marks them used. Its
 * stmt->value is never NULL: a definition with a field's name (`dim(x) { }`) is not
 * a value; it stays unused and ck_unknown_fields reports it. */
Entry *ck_field(Section *s, const char *name);
/* The last whole entry named name, assignment or definition; NULL if none. */
Entry *ck_last_entry(Section *s, const char *name);
/* Entries `head.k = v` that come after the last whole assignment to head. */
int ck_dotted_overrides(Ck *ck, Section *s, const char *head, int depth, Entry ***out);
/* Reports entries that name no field of section fs. */
void ck_unknown_fields(Ck *ck, Section *s, FieldSection fs);

/* ---- constant values ----------------------------------------------------------- */

typedef enum { V_ERR, V_INT, V_FLOAT, V_BOOL, V_STR, V_WORD, V_TENSOR, V_LIST } VKind;

typedef struct Val {
    VKind k;
    int64_t i;
    double f;      /* numeric value for V_INT and V_FLOAT */
    bool b;
    const char *s; /* V_STR, V_WORD */
    bool is_pct;   /* written with '%': f is the fraction (10% -> 0.1) */
    double pct;    /* is_pct: the percentage as written (10% -> 10) */
    SpecNode *node;
    const AstExpr *e;
} Val;

static inline Val v_err(void)
{
    return (Val){.k = V_ERR};
}

static inline Val v_int(int64_t i)
{
    return (Val){.k = V_INT, .i = i, .f = (double)i};
}

/* Names visible in integer expressions: the model's integer fields (§3.4). */
typedef struct Env {
    const char *names[FIELD_COUNT];
    int64_t vals[FIELD_COUNT];
    int n;
} Env;

const char *ck_val_kind_name(const Val *v);
Val ck_arith(Ck *ck, const AstExpr *e, Val l, Val r);
Val ck_negate(Ck *ck, const AstExpr *e, Val v);
Val ck_eval_num(Ck *ck, const AstExpr *e);
/* Evaluates a constant: numbers, strings, booleans, bare names (as words), lists,
 * arithmetic over numbers and env names. Calls are returned unevaluated (V_WORD
 * with e set) for the caller to interpret. */
Val ck_eval_const(Ck *ck, const AstExpr *e, const Env *env, int depth);

/* Conversions of a value written for `name`; each returns false after reporting.
 * Percentages: to_int accepts them only with pct_base > 0 (a percentage of that many
 * steps, rounded down; *pct gets the percentage as written, or -1 for a count),
 * to_num only when is_fraction (10% = 0.1). */
bool ck_to_int(Ck *ck, const char *name, const AstExpr *e, const Env *env, int64_t pct_base, int64_t *out,
               double *pct);
bool ck_to_num(Ck *ck, const char *name, const AstExpr *e, const Env *env, bool is_fraction, double *out);
bool ck_to_bool(Ck *ck, const char *name, const AstExpr *e, bool *out);
bool ck_to_str(Ck *ck, const char *name, const AstExpr *e, const char **out);
bool ck_to_word(Ck *ck, const char *name, const AstExpr *e, const char *const *words, int *out);

/* ---- calls with keyword arguments (optimizer, schedule, data, block primitives) -- */

typedef struct KwArg {
    const char *name;
    SrcLoc name_loc;
    const AstExpr *value;
} KwArg;

typedef struct Call {
    const AstExpr *e;
    const AstExpr *pos[2]; /* the most positional arguments a call takes */
    int n_pos;
    KwArg *kw;
    int n_kw;
    bool ok;
} Call;

/* Splits a call into positional and keyword arguments, applies dotted overrides
 * (`schedule.reset_every = 100`, `block.swiglu.hidden = 688`) and checks keyword
 * names against kws. */
Call ck_call_parse(Ck *ck, const AstExpr *e, const char *what, int max_pos, const char *const *kws, Entry *const *ovr,
                   int n_ovr);
const KwArg *ck_kwarg(const Call *c, const char *name);
/* Where keyword `name` was given, else where the call is. */
SrcLoc ck_kw_loc(const Call *c, const char *name);

/* ---- fields (fields.def) -------------------------------------------------------- */

/* The names of section fs's fields (NULL-terminated); only_dotted: only the fields
 * that take dotted names (calls and the block). */
const char **ck_field_names(Ck *ck, FieldSection fs, bool only_dotted);
/* The declarations a path may start with: model, adapter, train. */
const char **ck_declaration_names(Ck *ck);
/* f's default (fields.def), parsed, with every location at `at`. */
const AstExpr *ck_field_default(Ck *ck, const FieldDesc *f, SrcLoc at);
/* How reading a field went (anything but FR_OK was reported). */
typedef enum {
    FR_OK,
    FR_BOUNDS, /* the value is stored, and out of the field's bounds */
    FR_FAILED, /* not a value of the field's type: the slot is unchanged */
} FieldRead;
/* Reads value e of field f into spec: its type, percentages and bounds. steps is
 * the base of STEPS percentages. */
FieldRead ck_field_read(Ck *ck, const FieldDesc *f, const AstExpr *e, int64_t steps, Spec *spec);
/* Fills f's computed default (FF_COMPUTED) into spec; called just before f is read,
 * so it may use the fields above f in its section. */
typedef void FieldDefaultFn(const FieldDesc *f, Spec *spec);
/* Reads every field of section fs that is neither a call nor the block: its default
 * first (the computed ones from `computed`), then its assignment in sec, so a value
 * that does not convert leaves the default. A missing required field is reported at
 * `at`. read[id] tells how each went; returns true when all are FR_OK. */
bool ck_read_section(Ck *ck, Section *sec, FieldSection fs, SrcLoc at, Spec *spec, FieldDefaultFn *computed,
                     FieldRead *read);
/* The same for the arguments of a call of section fs (adamw(), relora()); defaults
 * are located at the call, and STEPS percentages are of `steps`. */
bool ck_read_call(Ck *ck, const Call *c, FieldSection fs, int64_t steps, Spec *spec, FieldDefaultFn *computed,
                  FieldRead *read);

/* ---- the parts of a spec --------------------------------------------------------- */

/* check_model.c: one model (with the overrides when it is the selected one) into
 * spec->model; sec gets its assignments. */
bool ck_model(Ck *ck, const AstItem *item, AstStmt *const *ovr, int n_ovr, Spec *spec, Section *sec);
const AstItem *ck_find_model(const AstFile *f, const char *name);
const char **ck_model_names(Ck *ck, const AstFile *f);

/* check_block.c: the block definition def of spec->model, whose assignments are sec
 * (block.<module>.<arg> overrides included). */
bool ck_block(Ck *ck, Spec *spec, Section *sec, const AstStmt *def);

/* check_adapter.c */
bool ck_adapter(Ck *ck, const AstItem *item, AstStmt *const *ovr, int n_ovr, Spec *spec);
/* Does a group name or a linear glob select parameter p? */
bool ck_group_selects(const char *g, const SpecParam *p);
/* A list of groups or linear globs (adapter.trainable, optimizer.no_decay), once the
 * model's linears are known. */
bool ck_groups(Ck *ck, const SpecModel *m, const char *what, const SpecNames *list, const char *const *groups);
const char **ck_linear_names(Ck *ck, const SpecModel *m);

/* check_train.c (item NULL: no train section, all defaults). */
bool ck_train(Ck *ck, const AstItem *item, AstStmt *const *ovr, int n_ovr, Spec *spec);

/* sweep.c: the shape of a sweep declaration (its expansion is fe_sweep_expand). */
void ck_sweep(Ck *ck, const AstItem *item);

#endif
