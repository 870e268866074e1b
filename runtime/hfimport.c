/* --init-from: a fresh run's weights from a checkpoint directory, the Hugging Face layout
 * (config.json, model.safetensors or shards named by model.safetensors.index.json) that
 * transformers' save_pretrained writes and relorac's export writes.
 *
 * The model says what it is through data the compiler emits (rt.h): the config fields to
 * compare (RtModel.hf_checks) and the export table (RtModel.exports), which the import reads
 * backwards: each exported tensor is found by its name (or without the family's prefix,
 * as GPT-2's original checkpoints store "h.0.attn.c_attn.weight"), checked against the
 * export's shape, converted to f32 and split into its parts, each transposed back and
 * converted to its tensor's dtype. Nothing here knows a family. So export -> import is
 * the identity, bit for bit, whatever the family (docs/runtime.md). */
#include "rt_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- config.json ---- */

/* The first present, non-null alternative of "a|b.c" in cfg, and its name; NULL when none. */
static const RtJson *config_field(const RtJson *cfg, const char *keys, char *found, size_t cap)
{
    char key[256];
    for (const char *k = keys; *k;) {
        const char *bar = strchr(k, '|');
        size_t n = bar ? (size_t)(bar - k) : strlen(k);
        if (n < sizeof key) {
            memcpy(key, k, n);
            key[n] = '\0';
            const RtJson *v = rt_json_path(cfg, key);
            if (v && v->kind != RT_JSON_NULL) {
                snprintf(found, cap, "%s", key);
                return v;
            }
        }
        k += n + (bar != NULL);
    }
    return NULL;
}

static void json_text(char *buf, size_t cap, const RtJson *v)
{
    RtBuf b = {0};
    rt_json_write(&b, v);
    snprintf(buf, cap, "%s", b.p && !b.oom ? b.p : "?");
    rt_buf_fini(&b);
}

/* The model's own architecture name, from its config.json text ("LlamaForCausalLM"). */
static void model_class(const RtModel *m, char *buf, size_t cap)
{
    RtJson cfg;
    RtError e = {0};
    snprintf(buf, cap, "?");
    if (m->config_json && rt_json_parse(&cfg, m->config_json, strlen(m->config_json), "config", &e)) {
        const RtJson *a = rt_json_get(&cfg, "architectures");
        if (a && a->kind == RT_JSON_ARRAY && a->n > 0 && a->items[0].kind == RT_JSON_STRING)
            snprintf(buf, cap, "%s", a->items[0].str);
        rt_json_free(&cfg);
    }
}

/* Compares every RtHfCheck with cfg; all mismatches go into one message. The first check
 * is the family (model_type): when it differs the others are not worth reading. */
static bool check_config(const RtModel *m, const RtJson *cfg, const char *path, RtImportInfo *info, RtError *e)
{
    if (cfg->kind != RT_JSON_OBJECT)
        return rt_err(e, RT_ERR_FORMAT, "%s: not a JSON object", path);
    char cls[64];
    model_class(m, cls, sizeof cls);
    RtBuf why = {0};
    int n_bad = 0;
    bool ok = true;
    for (int i = 0; ok && i < m->n_hf_checks; i++) {
        const RtHfCheck *c = &m->hf_checks[i];
        RtJson want, dflt = {0};
        RtError pe = {0};
        if (!rt_json_parse(&want, c->value, strlen(c->value), "the model's config check", &pe) ||
            (c->absent && !rt_json_parse(&dflt, c->absent, strlen(c->absent), "the model's config check", &pe))) {
            rt_json_free(&want);
            ok = rt_err(e, RT_ERR_MODEL, "internal error: config check '%s': %s", c->key, pe.msg);
            break;
        }
        char key[256], have_s[128], want_s[128];
        const RtJson *have = config_field(cfg, c->key, key, sizeof key);
        bool assumed = !have;
        if (!have && !c->absent) {
            json_text(want_s, sizeof want_s, &want);
            rt_buf_printf(&why, "%s%s: config.json has no %s (the model's is %s)", n_bad ? "; " : "", c->what, c->key,
                          want_s);
            n_bad++;
        } else {
            if (!have) {
                have = &dflt;
                snprintf(key, sizeof key, "%.*s", (int)strcspn(c->key, "|"), c->key);
            }
            if (!rt_json_equal(have, &want)) {
                json_text(have_s, sizeof have_s, have);
                json_text(want_s, sizeof want_s, &want);
                if (i == 0 && !strcmp(c->what, "family")) { /* another model altogether */
                    ok = rt_err(e, RT_ERR_MISMATCH, "%s: %s %s, but this model is exported as %s (%s %s); "
                                "--init-from reads a checkpoint of the model's own family", path, key, have_s, cls,
                                key, want_s);
                } else {
                    rt_buf_printf(&why, "%s%s: %s %s%s, the model's is %s", n_bad ? "; " : "", c->what, key, have_s,
                                  assumed ? " (absent: transformers' default)" : "", want_s);
                    n_bad++;
                }
            }
        }
        rt_json_free(&want);
        rt_json_free(&dflt);
    }
    if (ok && n_bad)
        ok = rt_err(e, RT_ERR_MISMATCH, "%s does not describe this model (%s): %s", path, cls,
                    why.p ? why.p : "out of memory");
    rt_buf_fini(&why);
    if (ok)
        snprintf(info->family, sizeof info->family, "%s", cls);
    return ok;
}

/* ---- the safetensors files ---- */

typedef struct Source {
    int n_files;
    char **paths;
    RtStFile *files; /* opened on first use (header only) */
    bool *opened;
    RtJson index;    /* the shards' weight_map, or none */
    bool **used;     /* used[f][t]: tensor t of file f was read */
} Source;

static void source_fini(Source *s)
{
    for (int f = 0; f < s->n_files; f++) {
        if (s->opened && s->opened[f])
            rt_st_close(&s->files[f]);
        free(s->paths[f]);
        if (s->used)
            free(s->used[f]);
    }
    free(s->paths);
    free(s->files);
    free(s->opened);
    free(s->used);
    rt_json_free(&s->index);
}

static bool open_file(Source *s, int f, RtError *e)
{
    if (s->opened[f])
        return true;
    if (!rt_st_open_model_header(&s->files[f], s->paths[f], e))
        return false;
    s->opened[f] = true;
    s->used[f] = calloc((size_t)s->files[f].n + 1, sizeof **s->used);
    return s->used[f] || rt_err(e, RT_ERR_NOMEM, "out of memory");
}

/* dir/model.safetensors.index.json (its weight_map names a shard per tensor), else
 * dir/model.safetensors. */
static bool source_open(Source *s, const char *dir, RtError *e)
{
    memset(s, 0, sizeof *s);
    char *index = join(dir, "model.safetensors.index.json"), *single = join(dir, "model.safetensors");
    bool ok = index && single;
    if (!ok)
        rt_err(e, RT_ERR_NOMEM, "out of memory");
    else if (exists(index)) {
        ok = rt_json_read_file(&s->index, index, "checkpoint index", e);
        const RtJson *map = ok ? rt_json_get(&s->index, "weight_map") : NULL;
        if (ok && (!map || map->kind != RT_JSON_OBJECT))
            ok = rt_err(e, RT_ERR_FORMAT, "%s: no \"weight_map\" object", index);
        s->paths = ok ? calloc((size_t)map->n + 1, sizeof *s->paths) : NULL;
        ok = ok && (s->paths || rt_err(e, RT_ERR_NOMEM, "out of memory"));
        for (int i = 0; ok && i < map->n; i++) { /* the distinct shard names */
            const RtJson *v = &map->items[i];
            if (v->kind != RT_JSON_STRING || !*v->str || strchr(v->str, '/')) {
                ok = rt_err(e, RT_ERR_FORMAT, "%s: weight_map[\"%s\"] is not a file name in %s", index, map->keys[i],
                            dir);
                break;
            }
            bool seen = false;
            for (int f = 0; f < s->n_files && !seen; f++)
                seen = !strcmp(strrchr(s->paths[f], '/') + 1, v->str);
            if (!seen && !(s->paths[s->n_files++] = join(dir, v->str)))
                ok = rt_err(e, RT_ERR_NOMEM, "out of memory");
        }
    } else if (exists(single)) {
        s->paths = calloc(1, sizeof *s->paths);
        ok = s->paths && (s->paths[0] = strdup(single));
        s->n_files = ok ? 1 : 0;
        if (!ok)
            rt_err(e, RT_ERR_NOMEM, "out of memory");
    } else {
        ok = rt_err(e, RT_ERR_MISSING, "%s: no model.safetensors or model.safetensors.index.json: not a checkpoint "
                    "directory", dir);
    }
    if (ok) {
        s->files = calloc((size_t)s->n_files + 1, sizeof *s->files);
        s->opened = calloc((size_t)s->n_files + 1, sizeof *s->opened);
        s->used = calloc((size_t)s->n_files + 1, sizeof *s->used);
        ok = (s->files && s->opened && s->used) || rt_err(e, RT_ERR_NOMEM, "out of memory");
    }
    free(index);
    free(single);
    if (!ok)
        source_fini(s); /* a failed open holds nothing */
    return ok;
}

/* The tensor named `name`: its file and entry; false (no error) when absent. */
static bool source_find(Source *s, const char *name, int *file, const RtStTensor **t, RtError *e)
{
    const RtJson *map = rt_json_get(&s->index, "weight_map");
    for (int f = 0; f < s->n_files; f++) {
        if (map) {
            const RtJson *v = rt_json_get(map, name);
            if (!v || strcmp(strrchr(s->paths[f], '/') + 1, v->str) != 0)
                continue;
        }
        if (!open_file(s, f, e))
            return false;
        const RtStTensor *x = rt_st_find(&s->files[f], name);
        if (x) {
            *file = f;
            *t = x;
            return true;
        }
        if (map) /* the index names a shard that lacks it */
            return rt_err(e, RT_ERR_MISSING, "%s: no tensor '%s', which the checkpoint index places there",
                          s->paths[f], name);
    }
    return false;
}

/* ---- the weights ---- */

static void shape_text(char *buf, size_t cap, int rank, const int64_t *shape)
{
    int at = snprintf(buf, cap, "[");
    for (int d = 0; d < rank && at > 0 && (size_t)at < cap; d++)
        at += snprintf(buf + at, cap - (size_t)at, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (at > 0 && (size_t)at < cap)
        snprintf(buf + at, cap - (size_t)at, "]");
}

/* The file's bytes of t as f32 (F32, BF16, F16: each exact in f32). */
static void to_f32(const void *src, int dtype, int64_t n, float *dst)
{
    for (int64_t i = 0; i < n; i++) {
        if (dtype == RT_F32) {
            memcpy(&dst[i], (const char *)src + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, (const char *)src + 2 * i, 2);
            dst[i] = dtype == RT_BF16 ? rt_bf16_to_f32(h) : rt_f16_to_f32(h);
        }
    }
}

/* Writes export x's values f (its shape, row-major) into its parts: the inverse of the
 * checkpoint's fill_export (checkpoint.c says where element (i, j, k) of a part goes). */
static void scatter(RtCtx *ctx, const RtExport *x, const RtExportShape *sh, const float *f)
{
    const RtModel *m = ctx->model;
    int64_t outer = 1, inner = 1, n_axis = sh->shape[x->axis], at = 0;
    for (int d = 0; d < x->axis; d++)
        outer *= sh->shape[d];
    for (int d = x->axis + 1; d < sh->rank; d++)
        inner *= sh->shape[d];
    for (int p = 0; p < x->n_parts; p++) {
        int ti = x->parts[p].tensor;
        const RtTensorInfo *t = &m->tensors[ti];
        bool tr = x->parts[p].transpose;
        int64_t n = rt_tensor_numel(t), cols = t->rank == 2 ? t->shape[1] : 1, len = n / (outer * inner);
        void *dst = rt_tensor_host(ctx, ti);
        for (int64_t i = 0; i < outer; i++)
            for (int64_t j = 0; j < len; j++)
                for (int64_t k = 0; k < inner; k++) {
                    int64_t q = (i * len + j) * inner + k;
                    if (tr)
                        q = (q % t->shape[0]) * cols + q / t->shape[0];
                    float v = f[(i * n_axis + at + j) * inner + k];
                    if (t->dtype == RT_BF16)
                        ((uint16_t *)dst)[q] = rt_f32_to_bf16(v);
                    else
                        ((float *)dst)[q] = v;
                }
        at += len;
    }
}

/* One exported tensor from the source into its parts. */
static bool read_export(RtCtx *ctx, Source *src, const RtExport *x, unsigned *dtypes, RtError *e)
{
    const RtModel *m = ctx->model;
    const char *name = x->name;
    int file;
    const RtStTensor *t = NULL;
    if (!source_find(src, name, &file, &t, e)) {
        if (e->code != RT_OK)
            return false;
        size_t pl = m->hf_prefix ? strlen(m->hf_prefix) : 0;
        if (pl && !strncmp(name, m->hf_prefix, pl) && !source_find(src, name + pl, &file, &t, e) && e->code != RT_OK)
            return false;
        if (!t)
            return rt_err(e, RT_ERR_MISSING, "%s: no tensor '%s'%s%s%s (the model's '%s')", src->paths[0], name,
                          pl && !strncmp(name, m->hf_prefix, pl) ? " or '" : "",
                          pl && !strncmp(name, m->hf_prefix, pl) ? name + pl : "",
                          pl && !strncmp(name, m->hf_prefix, pl) ? "'" : "", m->tensors[x->parts[0].tensor].name);
    }
    const char *path = src->paths[file];
    RtExportShape sh;
    rt_export_shape(m, x, &sh);
    bool same = t->rank == sh.rank;
    for (int d = 0; same && d < sh.rank; d++)
        same = t->shape[d] == sh.shape[d];
    if (!same) {
        char have[96], want[96];
        shape_text(have, sizeof have, t->rank, t->shape);
        shape_text(want, sizeof want, sh.rank, sh.shape);
        return rt_err(e, RT_ERR_MISMATCH, "%s: tensor '%s' is %s, the model's is %s", path, t->name, have, want);
    }
    if (t->dtype != RT_F32 && t->dtype != RT_BF16 && t->dtype != RT_ST_F16)
        return rt_err(e, RT_ERR_MISMATCH, "%s: tensor '%s' is %s; --init-from reads F32, BF16 and F16", path, t->name,
                      rt_dtype_name(t->dtype));
    int64_t n = 1;
    for (int d = 0; d < sh.rank; d++)
        n *= sh.shape[d];
    void *raw = malloc(t->nbytes ? t->nbytes : 1);
    float *f = malloc((size_t)n * sizeof *f);
    bool ok = raw && f;
    if (!ok)
        rt_err(e, RT_ERR_NOMEM, "out of memory reading '%s' from %s", t->name, path);
    ok = ok && rt_st_read(&src->files[file], t, raw, e);
    if (ok) {
        to_f32(raw, t->dtype, n, f);
        for (int64_t i = 0; ok && i < n; i++)
            if (!isfinite(f[i]))
                ok = rt_err(e, RT_ERR_NONFINITE, "%s: tensor '%s' holds %s at element %lld", path, t->name,
                            isnan(f[i]) ? "NaN" : "an infinity", (long long)i);
    }
    if (ok) {
        scatter(ctx, x, &sh, f);
        *dtypes |= 1u << t->dtype;
        src->used[file][t - src->files[file].t] = true;
    }
    free(raw);
    free(f);
    return ok;
}

bool rt_hf_import(RtCtx *ctx, const char *dir, RtImportInfo *info, RtError *e)
{
    const RtModel *m = ctx->model;
    memset(info, 0, sizeof *info);
    snprintf(info->family, sizeof info->family, "relorac");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return rt_err(e, RT_ERR_MISSING, "--init-from %s: not a directory", dir);
    char *cfg_path = join(dir, "config.json");
    if (!cfg_path)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    bool ok = true;
    if (m->n_hf_checks > 0) {
        char cls[64];
        model_class(m, cls, sizeof cls);
        RtJson cfg;
        if (!exists(cfg_path))
            ok = rt_err(e, RT_ERR_MISSING, "%s: no config.json: this model is exported as %s, and --init-from "
                        "compares the checkpoint's config.json with it field by field", dir, cls);
        else if ((ok = rt_json_read_file(&cfg, cfg_path, "config.json", e))) {
            ok = check_config(m, &cfg, cfg_path, info, e);
            rt_json_free(&cfg);
        }
    }
    free(cfg_path);
    Source src;
    if (!ok || !source_open(&src, dir, e))
        return false;
    unsigned dtypes = 0;
    for (int x = 0; ok && x < m->n_exports; x++)
        ok = read_export(ctx, &src, &m->exports[x], &dtypes, e);
    if (!ok && e->code == RT_ERR_MISSING && m->export_note)
        snprintf(e->msg + strlen(e->msg), sizeof e->msg - strlen(e->msg),
                 "; this model keeps relorac's names (%s), so it starts only from a relorac checkpoint of itself",
                 m->export_note);
    if (ok) {
        info->n_read = m->n_exports;
        info->n_files = src.n_files;
        for (int f = 0; f < src.n_files; f++) {
            if (!src.opened[f] && !open_file(&src, f, e)) {
                ok = false;
                break;
            }
            for (int t = 0; t < src.files[f].n; t++)
                if (!src.used[f][t]) {
                    size_t at = strlen(info->unused);
                    if (info->n_unused < 3)
                        snprintf(info->unused + at, sizeof info->unused - at, "%s%s", at ? ", " : "",
                                 src.files[f].t[t].name);
                    info->n_unused++;
                }
        }
        static const int order[] = {RT_ST_F16, RT_BF16, RT_F32};
        for (int i = 0; i < 3; i++)
            if (dtypes & (1u << order[i])) {
                size_t at = strlen(info->dtypes);
                snprintf(info->dtypes + at, sizeof info->dtypes - at, "%s%s", at ? ", " : "", rt_dtype_name(order[i]));
            }
    }
    source_fini(&src);
    return ok;
}
