/* check.c: AST -> Spec for a whole file (docs/language.md, cited as §N). Checks every
 * declaration's shape and every model, then the selected model with the -D
 * overrides, the adapter and train (check_*.c), and sorts the diagnostics by place.
 * All errors are reported, not just the first; fe_check returns NULL when there
 * were any. */
#include <string.h>

#include "checker.h"

/* One declaration body: duplicate fields, stray definitions and returns (§2). */
static void check_body_shape(Ck *ck, AstStmt *const *body, int n, AstItemKind kind)
{
    for (int i = 0; i < n; i++) {
        const AstStmt *s = body[i];
        if (s->kind == AST_STMT_RETURN) {
            ck_err(ck, s->loc, "'return' is only allowed inside a block definition");
            continue;
        }
        if (s->kind == AST_STMT_DEF && kind != AST_ITEM_MODEL) {
            ck_err(ck, s->loc, "definitions like '%s(...) { ... }' are only allowed in a model", s->name);
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
                ck_err(ck, s->loc, "duplicate field '%s'", name);
                ck_note(ck, t->loc, "'%s' was first set here", name);
                break;
            }
        }
    }
}

/* Reports malformed override keys; returns how many valid ones were kept in out. */
static int check_override_paths(Ck *ck, AstStmt *const *ovr, int n, AstStmt **out)
{
    const char **heads = ck_declaration_names(ck);
    int k = 0;
    for (int i = 0; i < n; i++) {
        AstStmt *s = ovr[i];
        if (s->kind != AST_STMT_ASSIGN) {
            ck_err(ck, s->loc, "an override is 'section.field=value', like train.steps=100");
        } else if (ck_find(s->path.parts[0], heads) < 0 || s->path.n < 2) {
            const char *hint = s->path.n == 1 ? arena_sprintf(ck->a, " (did you mean 'train.%s' or 'model.%s'?)",
                                                             s->path.parts[0], s->path.parts[0])
                                              : ck_suggest(ck, s->path.parts[0], heads);
            ck_err(ck, s->path.locs[0], "override keys start with model., adapter. or train. (got '%s')%s",
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
                    ck_err(ck, it->name_loc, "model '%s' is declared twice", it->name);
                    ck_note(ck, f->items[j]->name_loc, "the first declaration is here");
                    break;
                }
            selected = it;
        } else if (it->kind == AST_ITEM_ADAPTER || it->kind == AST_ITEM_TRAIN) {
            const AstItem **slot = it->kind == AST_ITEM_ADAPTER ? &adapter : &train;
            if (*slot) {
                ck_err(ck, it->loc, "only one %s section is allowed", it->kind == AST_ITEM_ADAPTER ? "adapter" : "train");
                ck_note(ck, (*slot)->loc, "the first one is here");
            } else {
                *slot = it;
            }
        } else {
            ck_sweep(ck, it);
        }
    }
    if (ck->opt->model_name) {
        selected = ck_find_model(f, ck->opt->model_name);
        if (!selected) {
            const char **names = ck_model_names(ck, f);
            ck_err(ck, srcloc_none(), "no model named '%s' in %s%s", ck->opt->model_name, f->name,
                ck_suggest(ck, ck->opt->model_name, names));
        }
    } else if (!selected) {
        ck_err(ck, file_loc, "no model declared (a spec needs 'model NAME { ... }')");
    }
    /* Every other model is checked too, so that an error anywhere is reported. */
    for (int i = 0; i < f->n_items; i++) {
        const AstItem *it = f->items[i];
        if (it->kind == AST_ITEM_MODEL && it != selected) {
            Spec scratch = {.file = f->name};
            Section sec;
            ck_model(ck, it, NULL, 0, &scratch, &sec);
        }
    }
    if (!selected)
        return NULL;
    Section msec;
    bool model_ok = ck_model(ck, selected, ovr, n_ovr, spec, &msec);
    ck->model_ok = model_ok;
    for (int i = 0; i < n_ovr; i++)
        if (!strcmp(ovr[i]->path.parts[0], "adapter") && !adapter)
            ck_err(ck, ovr[i]->path.locs[0], "cannot override '%s': the spec declares no adapter",
                fe_path_str(a, &ovr[i]->path));
    /* Adapter and train fields are checked even when the model failed; what needs
     * the model (linears, context) is skipped then. */
    if (adapter)
        ck_adapter(ck, adapter, ovr, n_ovr, spec);
    ck_train(ck, train, ovr, n_ovr, spec);
    if (model_ok && adapter && spec->adapter.is_present && spec->train.schedule.kind != SPEC_SCHED_RELORA &&
        ck->n_errors == 0)
        ck_warn(ck, adapter->name_loc, "adapter '%s' is not used: the schedule is %s(), not relora()", adapter->name,
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
    const char *why = NULL;
    char *text = fe_read_file(a, path, FE_SPEC_MAX, &len, &why);
    if (!text) {
        diag_error(d, (SrcLoc){arena_strdup(a, path), 0, 0, 0}, "cannot read the file: %s", why);
        return NULL;
    }
    return fe_load_spec_buffer(a, d, path, text, len, opt);
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
    static const char *const names[] = {
        [SPEC_MOD_ATTENTION] = "attention", [SPEC_MOD_SWIGLU] = "swiglu",   [SPEC_MOD_GEGLU] = "geglu",
        [SPEC_MOD_LINEAR] = "linear",       [SPEC_MOD_RMSNORM] = "rmsnorm", [SPEC_MOD_LAYERNORM] = "layernorm"};
    return (unsigned)k < COUNTOF(names) ? names[k] : "?";
}

const char *spec_node_kind_name(SpecNodeKind k)
{
    static const char *const names[] = {[SPEC_NODE_INPUT] = "input", [SPEC_NODE_LOCAL] = "local",
                                        [SPEC_NODE_ADD] = "add",     [SPEC_NODE_MUL] = "mul",
                                        [SPEC_NODE_SCALE] = "scale", [SPEC_NODE_ACT] = "act",
                                        [SPEC_NODE_MODULE] = "module"};
    return (unsigned)k < COUNTOF(names) ? names[k] : "?";
}

const char *spec_act_name(SpecActivation act)
{
    static const char *const names[] = {[SPEC_ACT_GELU] = "gelu", [SPEC_ACT_RELU] = "relu", [SPEC_ACT_SILU] = "silu"};
    return (unsigned)act < COUNTOF(names) ? names[act] : "?";
}

/* The kinds are the call sections of train.schedule (fields.def). */
const char *spec_schedule_kind_name(SpecScheduleKind k)
{
    FieldSection first = FS_COUNT;
    int n = fe_field_kinds(&fe_fields[FIELD_TRAIN_SCHEDULE], &first);
    return (unsigned)k < (unsigned)n ? fe_sections[first + k].name : "?";
}
