/* sweep.c: sweeps (§6). A sweep's keys are override paths and its values lists;
 * fe_sweep_expand checks the file, then each point of the grid as if its values
 * were -D overrides. */
#include <string.h>

#include "checker.h"

/* The most variants one sweep may expand to: each is a whole check, so a grid of a
 * few dozen keys would otherwise run for hours and exhaust memory. */
#define MAX_SWEEP_VARIANTS 10000

/* sweep NAME { section.field = [v1, v2, ...] ... } (§6): the shape of its keys and lists. */
void ck_sweep(Ck *ck, const AstItem *item)
{
    const char **heads = ck_declaration_names(ck);
    int64_t n_variants = 1; /* stops growing past the limit, so it cannot overflow */
    for (int i = 0; i < item->n_body; i++) {
        const AstStmt *s = item->body[i];
        if (s->kind != AST_STMT_ASSIGN)
            continue;
        if (s->path.n < 2 || ck_find(s->path.parts[0], heads) < 0) {
            ck_err(ck, s->loc, "sweep keys name a section and a field, like model.dim or adapter.rank (got '%s')%s",
                fe_path_str(ck->a, &s->path), s->path.n >= 2 ? ck_suggest(ck, s->path.parts[0], heads) : "");
            continue;
        }
        if (s->value->kind != AST_LIST || s->value->n_items == 0)
            ck_err(ck, s->value->loc, "sweep values must be a non-empty list like [128, 256] (got %s)",
                fe_expr_kind_name(s->value));
        else if (n_variants <= MAX_SWEEP_VARIANTS)
            n_variants *= s->value->n_items;
    }
    if (n_variants > MAX_SWEEP_VARIANTS)
        ck_err(ck, item->name_loc, "sweep '%s' has more than %d variants (the product of its list lengths); split it into "
                                "smaller sweeps", item->name, MAX_SWEEP_VARIANTS);
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
