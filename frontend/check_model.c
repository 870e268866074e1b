/* check_model.c: one model (§3): its inheritance chain and overrides, its fields
 * (fields.def) and the rules between them, then its block (check_block.c) and its
 * parameter tensors in their fixed order (§3.6). */
#include <string.h>

#include "checker.h"

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
            ck_err(ck, p->loc, "model '%s' is too large: more than 2^40 (about 1.1 trillion) parameters, reached at '%s' %s%s", m->name,
                p->name,
                p->ndim == 2 ? arena_sprintf(ck->a, "[%lld, %lld]", (long long)p->shape[0], (long long)p->shape[1])
                             : arena_sprintf(ck->a, "[%lld]", (long long)p->shape[0]),
                p->is_per_layer ? arena_sprintf(ck->a, " in each of %lld layers", (long long)m->layers) : "");
            break;
        }
    }
}

const AstItem *ck_find_model(const AstFile *f, const char *name)
{
    const AstItem *found = NULL;
    for (int i = 0; i < f->n_items; i++)
        if (f->items[i]->kind == AST_ITEM_MODEL && !strcmp(f->items[i]->name, name))
            found = f->items[i];
    return found;
}

const char **ck_model_names(Ck *ck, const AstFile *f)
{
    const char **names = arena_alloc(ck->a, sizeof(char *) * (size_t)(f->n_items + 1));
    int n = 0;
    for (int i = 0; i < f->n_items; i++)
        if (f->items[i]->kind == AST_ITEM_MODEL)
            names[n++] = f->items[i]->name;
    names[n] = NULL;
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
                ck_err(ck, list[k - 1]->parent_loc, "model inheritance cycle: %s%s", path, cur->name);
                return false;
            }
        list[k++] = cur;
        if (!cur->parent)
            break;
        const AstItem *p = ck_find_model(ck->file, cur->parent);
        if (!p) {
            ck_err(ck, cur->parent_loc, "unknown parent model '%s'%s", cur->parent,
                   ck_suggest(ck, cur->parent, ck_model_names(ck, ck->file)));
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

static SrcLoc field_loc(Section *s, const char *name, SrcLoc def)
{
    for (int i = s->n - 1; i >= 0; i--)
        if (s->e[i].n == 1 && !strcmp(s->e[i].parts[0], name) && s->e[i].stmt->value)
            return s->e[i].stmt->value->loc;
    return def;
}

static void model_default(const FieldDesc *f, Spec *spec)
{
    if (f->id == FIELD_MODEL_KV_HEADS)
        spec->model.kv_heads = spec->model.heads;
}

bool ck_model(Ck *ck, const AstItem *item, AstStmt *const *ovr, int n_ovr, Spec *spec, Section *sec)
{
    SpecModel *m = &spec->model;
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
                ck_section_add(ck, sec, chain[i]->body[j], 0, false);
    for (int i = 0; i < n_ovr; i++)
        if (!strcmp(ovr[i]->path.parts[0], "model"))
            ck_section_add(ck, sec, ovr[i], 1, true);

    SrcLoc at = item->name_loc;
    FieldRead read[FIELD_COUNT];
    bool ok = ck_read_section(ck, sec, FS_MODEL, at, spec, model_default, read);

    /* §3.2: attention head layout, checked once at the model fields. */
    if (m->dim > 0 && m->heads > 0 && m->dim % m->heads != 0) {
        ck_err(ck, field_loc(sec, "heads", at), "dim must be divisible by heads: dim = %lld, heads = %lld",
               (long long)m->dim, (long long)m->heads);
        ok = false;
    }
    if (m->heads > 0 && m->kv_heads > 0 && m->heads % m->kv_heads != 0) {
        ck_err(ck, field_loc(sec, "kv_heads", at), "heads must be divisible by kv_heads: heads = %lld, kv_heads = %lld",
               (long long)m->heads, (long long)m->kv_heads);
        ok = false;
    }

    Entry *def = ck_last_entry(sec, "block");
    if (def && def->stmt->kind != AST_STMT_DEF) {
        ck_err(ck, def->locs[0], "'block' must be defined as 'block(x) { ... return ... }'");
        def = NULL;
        ok = false;
    } else if (!def) {
        ck_err(ck, at, "%s has no block: add 'block(x) { ... return ... }'", sec->what);
        ok = false;
    }
    for (int i = 0; i < sec->n; i++) /* earlier `block` definitions of ancestors */
        if (sec->e[i].n == 1 && !strcmp(sec->e[i].parts[0], "block"))
            sec->e[i].is_used = true;
    if (def && m->dim > 0 && m->heads > 0 && m->kv_heads > 0 && m->vocab > 0)
        ok = ck_block(ck, spec, sec, def->stmt) && ok;
    ck_unknown_fields(ck, sec, FS_MODEL);
    if (ok && ck->n_errors == errors0) {
        if (m->positions == SPEC_POS_NONE) {
            bool rope = false;
            for (int i = 0; i < m->block.n_modules; i++)
                rope = rope || m->block.modules[i]->has_rope;
            if (!rope)
                ck_warn(ck, item->name_loc,
                        "%s has no position information (positions = none and no attention uses rope)", sec->what);
        }
        build_params(ck, m, item->name_loc);
    }
    return ok && ck->n_errors == errors0;
}
