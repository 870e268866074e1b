/* sweep.c: sweeps (§6). A sweep is a set of named variants (each a set of overrides)
 * crossed with grids (an override whose value is a list of values); fe_sweep_expand
 * checks the file, then each point as if its overrides were -D overrides, with the
 * command line's own -D applied last. `model = NAME` and `adapter = none` in a sweep
 * select the model and drop the adapter, which no field override can express. */
#include <string.h>

#include "checker.h"

/* The most variants one sweep may expand to: each is a whole check, so a grid of a
 * few dozen keys would otherwise run for hours and exhaust memory. */
#define MAX_SWEEP_VARIANTS 10000

/* Does path name a field whose value is itself a list (adapter.targets,
 * adapter.trainable, train.optimizer.no_decay)? Such a field's grid is a list of
 * lists; a plain list is its one value. */
static bool is_list_field(const AstPath *p)
{
    if (p->n < 2)
        return false;
    FieldSection s = fe_section_find(p->parts[0]);
    const FieldDesc *f = s == FS_COUNT || fe_sections[s].parent != FIELD_NONE ? NULL : fe_field_find(s, p->parts[1]);
    if (!f)
        return false;
    if (f->type == FT_CALL && p->n == 3) {
        FieldSection first = FS_COUNT;
        int n = fe_field_kinds(f, &first);
        for (int k = 0; k < n; k++) {
            const FieldDesc *g = fe_field_find((FieldSection)(first + k), p->parts[2]);
            if (g && g->type == FT_NAMES)
                return true;
        }
        return false;
    }
    return p->n == 2 && f->type == FT_NAMES;
}

/* Is an assignment of a sweep a grid axis (its value a list of the values to try)? */
static bool is_axis(const AstStmt *s)
{
    if (s->kind != AST_STMT_ASSIGN || s->value->kind != AST_LIST)
        return false;
    if (!is_list_field(&s->path))
        return true;
    for (int i = 0; i < s->value->n_items; i++)
        if (s->value->items[i]->kind != AST_LIST)
            return false;
    return s->value->n_items > 0;
}

/* `model = NAME` or `adapter = none`: the declarations a variant uses, not a field. */
static bool is_selection(const AstStmt *s)
{
    return s->path.n == 1 && (!strcmp(s->path.parts[0], "model") || !strcmp(s->path.parts[0], "adapter"));
}

static bool same_path(const AstPath *p, const AstPath *q)
{
    if (p->n != q->n)
        return false;
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->parts[i], q->parts[i]))
            return false;
    return true;
}

/* One value of a selection (`model = tiny`, `adapter = none`): an identifier naming a
 * declared model, or `none` / the adapter's name. */
static void check_selection_value(Ck *ck, const AstStmt *s, const AstExpr *v)
{
    bool is_model = !strcmp(s->path.parts[0], "model");
    if (v->kind != AST_IDENT) {
        ck_err(ck, v->loc, "%s", is_model ? "'model =' in a sweep takes a model name, like model = tiny"
                                          : "'adapter =' in a sweep takes none (no adapter) or the adapter's name");
        return;
    }
    if (is_model) {
        if (!ck_find_model(ck->file, v->text))
            ck_err(ck, v->loc, "no model named '%s'%s", v->text, ck_suggest(ck, v->text, ck_model_names(ck, ck->file)));
        return;
    }
    const char *adapter = NULL;
    for (int i = 0; i < ck->file->n_items; i++)
        if (ck->file->items[i]->kind == AST_ITEM_ADAPTER)
            adapter = ck->file->items[i]->name;
    if (strcmp(v->text, "none") && (!adapter || strcmp(v->text, adapter)))
        ck_err(ck, v->loc, "'adapter =' in a sweep takes none or the adapter's name%s%s%s (got '%s')",
               adapter ? " '" : "", adapter ? adapter : "", adapter ? "'" : "", v->text);
}

/* One assignment of a sweep or of one of its variants: its key, and its value or, for
 * a grid axis, each of its values. */
static void check_assignment(Ck *ck, const AstStmt *s, const char *const *heads)
{
    if (is_selection(s)) {
        if (s->value->kind == AST_LIST) {
            if (s->value->n_items == 0)
                ck_err(ck, s->value->loc, "sweep values must be a non-empty list like [128, 256] (got an empty list)");
            for (int i = 0; i < s->value->n_items; i++)
                check_selection_value(ck, s, s->value->items[i]);
        } else {
            check_selection_value(ck, s, s->value);
        }
        return;
    }
    if (s->path.n < 2 || ck_find(s->path.parts[0], heads) < 0) {
        ck_err(ck, s->loc,
               "sweep keys name a section and a field, like model.dim or adapter.rank, or are model = NAME or "
               "adapter = none (got '%s')%s",
               fe_path_str(ck->a, &s->path), s->path.n >= 2 ? ck_suggest(ck, s->path.parts[0], heads) : "");
        return;
    }
    if (s->value->kind == AST_LIST && s->value->n_items == 0 && !is_list_field(&s->path))
        ck_err(ck, s->value->loc, "sweep values must be a non-empty list like [128, 256] (got an empty list)");
}

/* Statements other than assignments, in a variant's body. */
static void check_variant_body(Ck *ck, const AstStmt *v, const char *const *heads)
{
    for (int i = 0; i < v->n_body; i++) {
        const AstStmt *s = v->body[i];
        if (s->kind == AST_STMT_RETURN) {
            ck_err(ck, s->loc, "'return' is only allowed inside a block definition");
            continue;
        }
        if (s->kind == AST_STMT_DEF) {
            ck_err(ck, s->loc, "definitions like '%s(...) { ... }' are only allowed in a model", s->name);
            continue;
        }
        check_assignment(ck, s, heads);
        for (int j = 0; j < i; j++)
            if (v->body[j]->kind == AST_STMT_ASSIGN && same_path(&v->body[j]->path, &s->path)) {
                const char *name = fe_path_str(ck->a, &s->path);
                ck_err(ck, s->loc, "duplicate field '%s'", name);
                ck_note(ck, v->body[j]->loc, "'%s' was first set here", name);
                break;
            }
    }
}

/* Number of points of a grid: the product of its axes' lengths, or more than
 * MAX_SWEEP_VARIANTS (it stops growing there, so it cannot overflow). */
static int64_t grid_size(AstStmt *const *top, int n_top, const AstStmt *variant)
{
    int64_t n = 1;
    for (int i = 0; i < n_top && n <= MAX_SWEEP_VARIANTS; i++) {
        bool replaced = false;
        for (int j = 0; variant && j < variant->n_body; j++)
            replaced = replaced || (variant->body[j]->kind == AST_STMT_ASSIGN &&
                                    same_path(&variant->body[j]->path, &top[i]->path));
        if (top[i]->kind == AST_STMT_ASSIGN && is_axis(top[i]) && !replaced)
            n *= top[i]->value->n_items;
    }
    for (int j = 0; variant && j < variant->n_body && n <= MAX_SWEEP_VARIANTS; j++)
        if (is_axis(variant->body[j]))
            n *= variant->body[j]->value->n_items;
    return n;
}

/* sweep NAME { key = value; key = [v1, v2]; variant V { ... } } (§6): the shape of
 * its keys, values and variants (each variant is checked as a spec when expanded). */
void ck_sweep(Ck *ck, const AstItem *item)
{
    const char **heads = ck_declaration_names(ck);
    int n_variants = 0;
    int64_t n_points = 0;
    for (int i = 0; i < item->n_body; i++) {
        const AstStmt *s = item->body[i];
        if (s->kind == AST_STMT_ASSIGN) {
            check_assignment(ck, s, heads);
        } else if (s->kind == AST_STMT_VARIANT) {
            n_variants++;
            check_variant_body(ck, s, heads);
            for (int j = 0; j < i; j++)
                if (item->body[j]->kind == AST_STMT_VARIANT && !strcmp(item->body[j]->name, s->name)) {
                    ck_err(ck, s->loc, "variant '%s' is declared twice in sweep '%s'", s->name, item->name);
                    ck_note(ck, item->body[j]->loc, "the first declaration is here");
                    break;
                }
            if (n_points <= MAX_SWEEP_VARIANTS)
                n_points += grid_size(item->body, item->n_body, s);
        }
    }
    if (item->n_body == 0) {
        ck_err(ck, item->name_loc,
               "sweep '%s' is empty: give it settings or variants (a variant with no settings, "
               "variant base { }, trains the spec as written)",
               item->name);
    }
    if (n_variants == 0)
        n_points = grid_size(item->body, item->n_body, NULL);
    if (n_points > MAX_SWEEP_VARIANTS)
        ck_err(ck, item->name_loc,
               "sweep '%s' has more than %d variants (the product of its list lengths, summed over its named "
               "variants); split it into smaller sweeps",
               item->name, MAX_SWEEP_VARIANTS);
}

/* ---- expansion ----------------------------------------------------------------- */

/* The axis keys of one variant, for their short names. Shortening within the variant
 * keeps its name (and so its run directory) the same when other variants or sweeps
 * gain axes. */
typedef struct Keys {
    const AstPath **paths;
    const char **short_names;
    int n, cap;
} Keys;

static void keys_add(Arena *a, Keys *k, const AstPath *p)
{
    for (int i = 0; i < k->n; i++)
        if (same_path(k->paths[i], p))
            return;
    if (k->n == k->cap) {
        int cap = k->cap ? 2 * k->cap : 16;
        k->paths = arena_grow(a, (void *)k->paths, (size_t)k->n, (size_t)cap, sizeof *k->paths);
        k->cap = cap;
    }
    k->paths[k->n++] = p;
}

/* The last m parts of p, joined with '.'. */
static const char *path_suffix(Arena *a, const AstPath *p, int m)
{
    const char *s = p->parts[p->n - m];
    for (int i = p->n - m + 1; i < p->n; i++)
        s = arena_sprintf(a, "%s.%s", s, p->parts[i]);
    return s;
}

/* Each key's shortest suffix that no other key ends with: `dim`, `optimizer.lr` next
 * to `schedule.lr`. */
static void keys_shorten(Arena *a, Keys *k)
{
    k->short_names = arena_alloc(a, sizeof(char *) * (size_t)(k->n + 1));
    for (int i = 0; i < k->n; i++) {
        const AstPath *p = k->paths[i];
        for (int m = 1; m <= p->n; m++) {
            const char *s = path_suffix(a, p, m);
            bool unique = true;
            for (int j = 0; j < k->n && unique; j++)
                if (j != i && k->paths[j]->n >= m && !strcmp(path_suffix(a, k->paths[j], m), s))
                    unique = false;
            if (unique || m == p->n) {
                k->short_names[i] = s;
                break;
            }
        }
    }
}

static const char *key_short(const Keys *k, const AstPath *p)
{
    for (int i = 0; i < k->n; i++)
        if (same_path(k->paths[i], p))
            return k->short_names[i];
    return "?";
}

/* The first error recorded since diagnostic e0, as "file:line:col: message". */
static const char *first_error(Arena *a, const Diags *d, int e0)
{
    for (int i = e0; i < d->n; i++) {
        const DiagEntry *e = &d->list[i];
        if (e->level != DIAG_ERROR)
            continue;
        if (!e->loc.file)
            return e->msg;
        if (e->loc.line <= 0)
            return arena_sprintf(a, "%s: %s", e->loc.file, e->msg);
        return arena_sprintf(a, "%s:%d:%d: %s", e->loc.file, e->loc.line, e->loc.col, e->msg);
    }
    return "error";
}

/* Appends to d the entries of from that d does not hold yet (same level, place and
 * message), a note only when the entry it follows was appended; and from's sources
 * that d lacks. */
static void copy_new_diags(Diags *d, const Diags *from)
{
    for (int i = 0; i < from->n_sources; i++) {
        bool known = false;
        for (int j = 0; j < d->n_sources && !known; j++)
            known = !strcmp(d->sources[j].name, from->sources[i].name);
        if (!known)
            diag_add_source(d, from->sources[i].name, from->sources[i].text, from->sources[i].len);
    }
    bool last_copied = false;
    for (int i = 0; i < from->n; i++) {
        const DiagEntry *e = &from->list[i];
        if (e->level == DIAG_NOTE) {
            if (last_copied)
                diag_note(d, e->loc, "%s", e->msg);
            continue;
        }
        bool seen = false;
        for (int j = 0; j < d->n && !seen; j++) {
            const DiagEntry *f = &d->list[j];
            seen = f->level == e->level && f->loc.line == e->loc.line && f->loc.col == e->loc.col &&
                   ((!f->loc.file && !e->loc.file) || (f->loc.file && e->loc.file && !strcmp(f->loc.file, e->loc.file))) &&
                   !strcmp(f->msg, e->msg);
        }
        last_copied = !seen;
        if (seen)
            continue;
        if (e->level == DIAG_ERROR)
            diag_error(d, e->loc, "%s", e->msg);
        else
            diag_warning(d, e->loc, "%s", e->msg);
    }
}

/* The file without its adapter declaration (`adapter = none`). */
static const AstFile *without_adapter(Arena *a, const AstFile *f)
{
    AstFile *g = ARENA_NEW(a, AstFile);
    *g = *f;
    g->items = arena_alloc(a, sizeof(AstItem *) * (size_t)(f->n_items + 1));
    g->n_items = 0;
    for (int i = 0; i < f->n_items; i++)
        if (f->items[i]->kind != AST_ITEM_ADAPTER)
            g->items[g->n_items++] = f->items[i];
    return g;
}

typedef struct Expander {
    Arena *a;
    Diags *d;
    const AstFile *file;
    const FeOptions *opt;
    AstVec base;  /* -D overrides, applied last */
    AstVec out;   /* FeVariant * */
} Expander;

/* Checks one point: the assignments `fixed`, plus item idx[j] of each axis. */
static void expand_point(Expander *x, const AstItem *sw, const AstStmt *variant, AstStmt *const *fixed, int n_fixed,
                         AstStmt *const *axes, int n_axes, const Keys *keys, const int *idx)
{
    Arena *a = x->a;
    FeVariant *v = ARENA_NEW(a, FeVariant);
    v->sweep = sw->name;
    v->variant = variant ? variant->name : NULL;
    v->n_axes = n_axes;
    v->keys = arena_alloc(a, sizeof(char *) * (size_t)(n_axes + 1));
    v->paths = arena_alloc(a, sizeof(char *) * (size_t)(n_axes + 1));
    v->values = arena_alloc(a, sizeof(char *) * (size_t)(n_axes + 1));
    const char *name = arena_sprintf(a, "%s/%s", sw->name, variant ? variant->name : "");
    bool has_part = variant != NULL;
    AstVec ovr = {0};
    const char *model = x->opt ? x->opt->model_name : NULL;
    bool no_adapter = false;
    for (int j = 0; j < n_fixed + n_axes; j++) {
        const AstStmt *s = j < n_fixed ? fixed[j] : axes[j - n_fixed];
        const AstExpr *value = s->value;
        if (j >= n_fixed) {
            int k = j - n_fixed;
            value = s->value->items[idx[k]];
            v->keys[k] = key_short(keys, &s->path);
            v->paths[k] = fe_path_str(a, &s->path);
            v->values[k] = fe_expr_str(a, value);
            name = arena_sprintf(a, "%s%s%s=%s", name, has_part ? "," : "", v->keys[k], v->values[k]);
            has_part = true;
        }
        if (is_selection(s)) {
            if (value->kind == AST_IDENT && !strcmp(s->path.parts[0], "model"))
                model = value->text;
            else if (value->kind == AST_IDENT)
                no_adapter = !strcmp(value->text, "none");
            continue;
        }
        AstStmt *o = ARENA_NEW(a, AstStmt);
        *o = *s;
        o->value = (AstExpr *)value;
        fe_vec_push(a, &ovr, o);
    }
    for (int j = 0; j < x->base.n; j++)
        fe_vec_push(a, &ovr, x->base.data[j]);
    v->name = has_part ? name : sw->name;
    FeOptions opt = x->opt ? *x->opt : (FeOptions){0};
    opt.model_name = model;
    /* Checked into diagnostics of its own: the checker reports an error once per
     * Diags, and the grid points of a variant share their statements, so in x->d the
     * second point's error would be dropped as a repeat and it would fail unexplained.
     * Only what x->d lacks is copied there. */
    Diags own;
    diag_init(&own, a);
    own.max_errors = 0;
    v->spec = fe_check(a, &own, no_adapter ? without_adapter(a, x->file) : x->file, (AstStmt *const *)ovr.data,
                       ovr.n, &opt);
    v->n_errors = own.n_errors;
    copy_new_diags(x->d, &own);
    if (!v->spec) {
        v->error = first_error(a, &own, 0);
        diag_note(x->d, sw->name_loc, "in sweep variant '%s'", v->name);
    }
    fe_vec_push(a, &x->out, v);
}

/* Every point of one variant of a sweep (variant NULL: the sweep's grid alone). top
 * holds the sweep's own assignments and the command line's grids. */
static void expand_variant(Expander *x, const AstItem *sw, AstStmt *const *top, int n_top, const AstStmt *variant)
{
    Arena *a = x->a;
    int cap = n_top + (variant ? variant->n_body : 0) + 1;
    AstStmt **fixed = arena_alloc(a, sizeof(AstStmt *) * (size_t)cap);
    AstStmt **axes = arena_alloc(a, sizeof(AstStmt *) * (size_t)cap);
    int n_fixed = 0, n_axes = 0;
    for (int i = 0; i < n_top + (variant ? variant->n_body : 0); i++) {
        AstStmt *s = i < n_top ? top[i] : variant->body[i - n_top];
        if (s->kind != AST_STMT_ASSIGN)
            continue;
        bool replaced = false; /* the variant sets this key itself */
        for (int j = 0; i < n_top && variant && j < variant->n_body; j++)
            replaced = replaced || (variant->body[j]->kind == AST_STMT_ASSIGN && same_path(&variant->body[j]->path, &s->path));
        if (replaced)
            continue;
        if (is_axis(s))
            axes[n_axes++] = s;
        else
            fixed[n_fixed++] = s;
    }
    Keys keys = {0};
    for (int j = 0; j < n_axes; j++)
        keys_add(a, &keys, &axes[j]->path);
    keys_shorten(a, &keys);
    int *idx = arena_alloc(a, sizeof(int) * (size_t)(n_axes + 1));
    for (;;) {
        expand_point(x, sw, variant, fixed, n_fixed, axes, n_axes, &keys, idx);
        int j = n_axes - 1;
        while (j >= 0 && ++idx[j] == axes[j]->value->n_items)
            idx[j--] = 0;
        if (j < 0)
            break;
    }
}

/* The sweep's assignments followed by the command line's grids; a grid replaces the
 * sweep's own assignment of its key. */
static int top_assignments(Arena *a, const AstItem *sw, const AstVec *grids, AstStmt ***out)
{
    AstStmt **top = arena_alloc(a, sizeof(AstStmt *) * (size_t)(sw->n_body + grids->n + 1));
    int n = 0;
    for (int i = 0; i < sw->n_body; i++) {
        AstStmt *s = sw->body[i];
        bool replaced = false;
        for (int j = 0; j < grids->n; j++)
            replaced = replaced || same_path(&((AstStmt *)grids->data[j])->path, &s->path);
        if (s->kind == AST_STMT_ASSIGN && !replaced)
            top[n++] = s;
    }
    for (int j = 0; j < grids->n; j++)
        top[n++] = grids->data[j];
    *out = top;
    return n;
}

/* A --grid is `key=[v1, v2, ...]` with a key a sweep accepts. */
static bool check_grids(Arena *a, Diags *d, const AstVec *grids)
{
    bool ok = true;
    for (int i = 0; i < grids->n; i++) {
        const AstStmt *s = grids->data[i];
        if (s->kind != AST_STMT_ASSIGN || !is_axis(s)) {
            diag_error(d, s->loc, "a grid is key=[v1, v2, ...], a list of the values to try (a list field takes a "
                                  "list of lists)");
            ok = false;
        } else if (!is_selection(s) && (s->path.n < 2 || (strcmp(s->path.parts[0], "model") &&
                                                           strcmp(s->path.parts[0], "adapter") &&
                                                           strcmp(s->path.parts[0], "train")))) {
            diag_error(d, s->loc, "grid keys name a section and a field, like train.optimizer.lr (got '%s')",
                       fe_path_str(a, &s->path));
            ok = false;
        }
    }
    return ok;
}

bool fe_sweep_expand(Arena *a, Diags *d, const char *name, const char *text, size_t len, const FeOptions *opt,
                     const FeSweepOptions *so, FeVariant **out, int *n_out)
{
    static const FeSweepOptions no_so;
    so = so ? so : &no_so;
    FeCtx ctx;
    fe_ctx_init(&ctx, a, d);
    *out = NULL;
    *n_out = 0;
    bool ok = fe_parse_buffer(&ctx, name, text, len);
    const AstFile *file = ctx.ast;
    Expander x = {.a = a, .d = d, .file = file, .opt = opt};
    if (opt && opt->n_defines > 0)
        ok = fe_parse_overrides(&ctx, opt->defines, opt->n_defines, &x.base) && ok;
    AstVec grids = {0};
    if (so->n_grids > 0)
        ok = fe_parse_overrides_as(&ctx, "<--grid>", so->grids, so->n_grids, &grids) && check_grids(a, d, &grids) &&
             ok;
    if (!ok)
        return false;
    /* The file must check on its own first (sweep shapes included). */
    if (!fe_check(a, d, file, (AstStmt *const *)x.base.data, x.base.n, opt))
        return false;
    /* The sweeps to expand; without any in the file, the command line's grids form one. */
    const AstItem **sweeps = arena_alloc(a, sizeof(AstItem *) * (size_t)(file->n_items + 1));
    int n_sweeps = 0, n_declared = 0;
    for (int i = 0; i < file->n_items; i++) {
        const AstItem *sw = file->items[i];
        if (sw->kind != AST_ITEM_SWEEP)
            continue;
        n_declared++;
        if (!so->sweep_name || !strcmp(so->sweep_name, sw->name))
            sweeps[n_sweeps++] = sw;
    }
    if (so->sweep_name && n_sweeps == 0) {
        diag_error(d, srcloc_none(), "no sweep named '%s' in %s", so->sweep_name, name);
        return false;
    }
    if (n_declared == 0 && grids.n > 0) {
        AstItem *g = ARENA_NEW(a, AstItem);
        g->kind = AST_ITEM_SWEEP;
        g->name = "grid";
        g->loc = g->name_loc = ((AstStmt *)grids.data[0])->loc;
        sweeps[n_sweeps++] = g;
    }
    for (int i = 0; i < n_sweeps; i++) {
        const AstItem *sw = sweeps[i];
        AstStmt **top;
        int n_top = top_assignments(a, sw, &grids, &top);
        int64_t n_points = 0;
        bool has_variants = false;
        for (int j = 0; j < sw->n_body && n_points <= MAX_SWEEP_VARIANTS; j++)
            if (sw->body[j]->kind == AST_STMT_VARIANT) {
                has_variants = true;
                n_points += grid_size(top, n_top, sw->body[j]);
            }
        if (!has_variants)
            n_points = grid_size(top, n_top, NULL);
        if (n_points > MAX_SWEEP_VARIANTS) { /* only the command line's grids can get here */
            diag_error(d, sw->name_loc, "sweep '%s' with the --grid axes has more than %d variants; split it",
                       sw->name, MAX_SWEEP_VARIANTS);
            return false;
        }
        has_variants = false;
        for (int j = 0; j < sw->n_body; j++)
            if (sw->body[j]->kind == AST_STMT_VARIANT) {
                has_variants = true;
                expand_variant(&x, sw, top, n_top, sw->body[j]);
            }
        if (!has_variants)
            expand_variant(&x, sw, top, n_top, NULL);
    }
    *out = arena_alloc(a, sizeof(FeVariant) * (size_t)(x.out.n + 1));
    for (int i = 0; i < x.out.n; i++)
        (*out)[i] = *(FeVariant *)x.out.data[i];
    *n_out = x.out.n;
    return true;
}
