/* check_adapter.c: the adapter (§4). Its fields come from fields.def; here the
 * targets are matched against the model's linears, the rank against their sizes,
 * and every parameter learns whether it trains in the ReLoRA phase. */
#include <string.h>

#include "checker.h"

bool ck_group_selects(const char *g, const SpecParam *p)
{
    switch (p->role) {
    case SPEC_PARAM_EMBEDDING: return !strcmp(g, "embedding");
    case SPEC_PARAM_POSITIONS: return !strcmp(g, "positions");
    case SPEC_PARAM_HEAD: return !strcmp(g, "head");
    case SPEC_PARAM_NORM:
    case SPEC_PARAM_NORM_BIAS: return !strcmp(g, "norms");
    case SPEC_PARAM_BIAS: return !strcmp(g, "biases") || ck_glob_match(g, p->linear->full_name);
    case SPEC_PARAM_LINEAR: return ck_glob_match(g, p->linear->full_name);
    }
    return false;
}

const char **ck_linear_names(Ck *ck, const SpecModel *m)
{
    const char **names = arena_alloc(ck->a, sizeof(char *) * (size_t)(m->n_linears + 1));
    for (int i = 0; i < m->n_linears; i++)
        names[i] = m->linears[i]->full_name;
    names[m->n_linears] = NULL;
    return names;
}

bool ck_groups(Ck *ck, const SpecModel *m, const char *what, const SpecNames *list, const char *const *groups)
{
    bool ok = true;
    const char **lin = ck_linear_names(ck, m);
    int n_groups = ck_count(groups);
    for (int i = 0; i < list->n; i++) {
        const char *g = list->items[i];
        if (!g || ck_find(g, groups) >= 0)
            continue;
        bool any = false;
        for (int j = 0; j < m->n_linears; j++)
            any = any || ck_glob_match(g, lin[j]);
        if (any)
            continue;
        const char **cands = arena_alloc(ck->a, sizeof(char *) * (size_t)(n_groups + m->n_linears + 1));
        memcpy(cands, groups, sizeof(char *) * (size_t)n_groups);
        memcpy(cands + n_groups, lin, sizeof(char *) * (size_t)(m->n_linears + 1));
        ck_err(ck, list->locs[i], "unknown %s entry '%s' (expected %s, or a linear name or glob)%s", what, g,
               ck_join(ck, groups), ck_suggest(ck, g, cands));
        ok = false;
    }
    return ok;
}

static void adapter_default(const FieldDesc *f, Spec *spec)
{
    if (f->id == FIELD_ADAPTER_ALPHA)
        spec->adapter.alpha = (double)spec->adapter.rank;
}

static bool has_wildcard(const char *s)
{
    return strpbrk(s, "*?") != NULL;
}

bool ck_adapter(Ck *ck, const AstItem *item, AstStmt *const *ovr, int n_ovr, Spec *spec)
{
    SpecAdapter *ad = &spec->adapter;
    SpecModel *m = &spec->model;
    Section sec = {.what = arena_sprintf(ck->a, "adapter '%s'", item->name)};
    for (int j = 0; j < item->n_body; j++)
        ck_section_add(ck, &sec, item->body[j], 0, false);
    for (int i = 0; i < n_ovr; i++)
        if (!strcmp(ovr[i]->path.parts[0], "adapter"))
            ck_section_add(ck, &sec, ovr[i], 1, true);
    ad->is_present = true;
    ad->name = item->name;
    ad->loc = item->name_loc;
    FieldRead read[FIELD_COUNT];
    bool ok = ck_read_section(ck, &sec, FS_ADAPTER, item->name_loc, spec, adapter_default, read);
    ad->scaling = ad->rank > 0 ? ad->alpha / (double)ad->rank : 0;
    Entry *te = ck_field(&sec, "targets"), *tre = ck_field(&sec, "trainable");
    if (read[FIELD_ADAPTER_TARGETS] == FR_OK && ad->targets.n == 0) {
        ck_err(ck, te->stmt->value->loc, "adapter targets must name at least one linear (use [\"*\"] for all)");
        ok = false;
    }
    ck_unknown_fields(ck, &sec, FS_ADAPTER);
    if (!ok || m->n_linears == 0)
        return ok;

    /* §4.2: every target glob matches a linear; rank fits every adapted linear. */
    const char **lin = ck_linear_names(ck, m);
    SrcLoc rank_loc = ck_field(&sec, "rank") ? ck_field(&sec, "rank")->stmt->value->loc : item->name_loc;
    for (int t = 0; t < ad->targets.n; t++) {
        const char *g = ad->targets.items[t];
        bool any = false;
        for (int j = 0; j < m->n_linears; j++)
            if (ck_glob_match(g, lin[j])) {
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
            cands[nc] = NULL;
            ck_err(ck, te ? ad->targets.locs[t] : item->name_loc, "%s target '%s'%s%s",
                   has_wildcard(g) ? "adapter" : "unknown", g, has_wildcard(g) ? " matches no linear" : "",
                   ck_suggest(ck, g, cands));
            ck_note(ck, m->block.loc, "the linears of model '%s' are %s", m->name, ck_join(ck, lin));
            ok = false;
        }
    }
    for (int j = 0; j < m->n_linears && ok; j++) {
        SpecLinear *l = m->linears[j];
        int64_t mn = l->in < l->out ? l->in : l->out;
        if (l->is_adapted && ad->rank > mn) {
            ck_err(ck, rank_loc, "lora rank must be <= min(in, out) of every target: %lld > %lld for '%s' [%lld, %lld]",
                   (long long)ad->rank, (long long)mn, l->full_name, (long long)l->out, (long long)l->in);
            ok = false;
        }
    }
    const char *const *groups = fe_fields[FIELD_ADAPTER_TRAINABLE].words;
    if (tre)
        ok = ck_groups(ck, m, "trainable", &ad->trainable, groups) && ok;
    /* An adapted linear's W is frozen: it cannot also be trained at full rank. */
    for (int i = 0; i < ad->trainable.n && ok; i++) {
        const char *g = ad->trainable.items[i];
        if (!g || ck_find(g, groups) >= 0)
            continue;
        for (int j = 0; j < m->n_linears; j++)
            if (m->linears[j]->is_adapted && ck_glob_match(g, lin[j])) {
                ck_err(ck, ad->trainable.locs[i],
                       "'%s' is an adapter target; its weight is frozen in the ReLoRA phase and cannot be "
                       "trainable",
                       lin[j]);
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
            for (int k = 0; k < ad->trainable.n; k++)
                tr = tr || ck_group_selects(ad->trainable.items[k], p);
        p->is_trainable_relora = tr;
    }
    return true;
}
