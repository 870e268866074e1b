/* Checkpoints. DIR/model.safetensors holds the exported model (adapters merged into their
 * base weights, so it loads as a plain model), DIR/config.json the model's HF config and
 * DIR/trainer.safetensors every persistent tensor plus the step, seed and spec hash.
 * Writes go to temp files that are synced, then renamed together, then the directory is
 * synced: a crash or full disk leaves the previous checkpoint whole. */
#include "rt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The resolved schedule as metadata, one key per field (docs/runtime.md "Checkpoints"). */
enum { SCHED_FIELDS = 10 };
static const char *const sched_keys[SCHED_FIELDS] = {
    "schedule.kind", "schedule.steps", "schedule.warmup", "schedule.warm_start", "schedule.reset_every",
    "schedule.restart_warmup", "schedule.lr", "schedule.relora_lr", "schedule.min_lr_ratio", "schedule.prune"};

static int schedule_meta(const RtSchedule *s, char (*buf)[40], RtStMeta *out);
static bool schedule_read(const RtStFile *f, RtSchedule *s, RtError *e);

enum { F_MODEL, F_CONFIG, F_TRAINER, F_COUNT };
static const char *const file_names[F_COUNT] = {"model.safetensors", "config.json",
                                                "trainer.safetensors"};

bool rt_mkdir_p(const char *dir, RtError *e)
{
    char *p = strdup(dir);
    if (!p)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    for (char *s = p + 1;; s++) {
        bool end = *s == '\0';
        if (*s == '/' || end) {
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                int err = errno;
                rt_err(e, RT_ERR_IO, "%s: cannot create directory: %s", p, strerror(err));
                free(p);
                return false;
            }
            if (end)
                break;
            *s = '/';
        }
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return rt_err(e, RT_ERR_IO, "%s: not a directory", dir);
    return true;
}

static void to_f32(const void *src, int dtype, int64_t n, float *dst)
{
    if (dtype == RT_F32) {
        memcpy(dst, src, (size_t)n * sizeof *dst);
        return;
    }
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = rt_bf16_to_f32(h[i]);
}

void rt_export_merged(const RtCtx *ctx, int i, float *out)
{
    const RtTensorInfo *tt = ctx->model->tensors;
    const RtTensorInfo *w = &tt[i];
    to_f32(rt_tensor_host(ctx, i), w->dtype, rt_tensor_numel(w), out);
    if (w->lora_a < 0)
        return;
    const RtTensorInfo *a = &tt[w->lora_a], *b = &tt[w->lora_b];
    int64_t rows = w->shape[0], cols = w->shape[1], r = a->shape[0];
    float *af = malloc((size_t)rt_tensor_numel(a) * sizeof *af);
    float *bf = malloc((size_t)rt_tensor_numel(b) * sizeof *bf);
    if (af && bf) {
        to_f32(rt_tensor_host(ctx, w->lora_a), a->dtype, rt_tensor_numel(a), af);
        to_f32(rt_tensor_host(ctx, w->lora_b), b->dtype, rt_tensor_numel(b), bf);
        /* out [rows, cols] += scale * B [rows, r] @ A [r, cols] */
        rt_sgemm(NULL, 0, 0, rows, cols, r, w->lora_scale, bf, r, af, cols, 1.0f, out, cols);
    }
    free(af);
    free(bf);
}

static char *path_join(const char *dir, const char *name, const char *suffix)
{
    size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s%s", dir, name, suffix);
    return p;
}

/* What goes into one file. */
typedef struct FileJob {
    const RtStEntry *t;
    int n;
    const RtStMeta *meta;
    int n_meta;
    const char *text; /* config.json: plain text instead of tensors */
} FileJob;

static bool write_tmp(const char *tmp, const FileJob *job, const RtIo *io, RtError *e)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return rt_err(e, errno == ENOSPC ? RT_ERR_NOSPC : RT_ERR_IO, "%s: cannot create: %s",
                      tmp, strerror(errno));
    bool ok;
    if (job->text)
        ok = rt_write_all(fd, io, tmp, job->text, strlen(job->text), e);
    else
        ok = rt_st_write_fd(fd, io, tmp, job->t, job->n, job->meta, job->n_meta, e);
    if (ok && fsync(fd) != 0)
        ok = rt_err(e, errno == ENOSPC ? RT_ERR_NOSPC : RT_ERR_IO, "%s: cannot sync: %s", tmp,
                    strerror(errno));
    if (close(fd) != 0 && ok)
        ok = rt_err(e, errno == ENOSPC ? RT_ERR_NOSPC : RT_ERR_IO, "%s: cannot close: %s", tmp,
                    strerror(errno));
    return ok;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* The exported bytes of adapted weight i: W + s B A, in W's dtype. buf holds the
 * tensor's f32 elements (bf16 is converted in place: h[j] is written after f[j] is read). */
static void fill_merged(const void *user, int i, void *buf)
{
    const RtCtx *ctx = user;
    const RtTensorInfo *t = &ctx->model->tensors[i];
    if (t->dtype != RT_BF16) {
        rt_export_merged(ctx, i, buf);
        return;
    }
    /* a bf16 tensor's buffer has room for half the floats: merge in f32 pieces */
    int64_t n = rt_tensor_numel(t);
    float *merged = malloc((size_t)n * sizeof *merged);
    uint16_t *h = buf;
    if (!merged) {
        memset(buf, 0, (size_t)n * 2);
        return;
    }
    rt_export_merged(ctx, i, merged);
    for (int64_t j = 0; j < n; j++)
        h[j] = rt_f32_to_bf16(merged[j]);
    free(merged);
}

bool rt_checkpoint_save(const RtCtx *ctx, const char *dir, int64_t step, const RtRunInfo *run,
                        const RtIo *io, RtError *e)
{
    const RtModel *m = ctx->model;
    if (!rt_mkdir_p(dir, e))
        return false;
    rt_ctx_pull(ctx); /* a device's tensors, into their host copies */
    RtStEntry *model_t = calloc((size_t)m->n_tensors + 1, sizeof *model_t);
    RtStEntry *train_t = calloc((size_t)m->n_tensors + 1, sizeof *train_t);
    char *tmp[F_COUNT] = {0}, *dst[F_COUNT] = {0};
    bool ok = model_t && train_t;
    int n_model = 0, n_train = 0;
    for (int i = 0; ok && i < m->n_tensors; i++) {
        const RtTensorInfo *t = &m->tensors[i];
        RtStEntry en = {t->name, t->dtype, t->rank, {0}, rt_tensor_host(ctx, i), NULL, NULL, 0};
        memcpy(en.shape, t->shape, sizeof en.shape);
        if (rt_tensor_is_persistent(t))
            train_t[n_train++] = en;
        if (!(t->flags & RT_T_PARAM))
            continue;
        en.name = t->hf_name ? t->hf_name : t->name;
        if (t->lora_a >= 0) { /* export W + s B A in W's dtype, merged while writing */
            en.data = NULL;
            en.fill = fill_merged;
            en.user = ctx;
            en.index = i;
        }
        model_t[n_model++] = en;
    }
    if (!ok) {
        rt_err(e, RT_ERR_NOMEM, "out of memory preparing the checkpoint");
        goto out;
    }

    char step_s[32], seed_s[32], sched_s[SCHED_FIELDS][40];
    snprintf(step_s, sizeof step_s, "%" PRId64, step);
    snprintf(seed_s, sizeof seed_s, "%" PRIu64, ctx->seed);
    const RtStMeta model_meta[] = {
        {"format", "pt"}, {"relorac_model", m->name}, {"relorac_model_hash", m->model_hash},
        {"relorac_step", step_s}};
    RtStMeta train_meta[8 + SCHED_FIELDS] = {{"format", RT_CKPT_FORMAT}, {"model", m->name},
                              {"seed", seed_s},           {"model_hash", m->model_hash},
                              {"step", step_s}};
    int n_train_meta = 5;
    if (run) {
        train_meta[n_train_meta++] = (RtStMeta){"data_kind", run->data_kind == RT_DATA_TOKENS
                                                                 ? "tokens" : "text"};
        if (run->data[0])
            train_meta[n_train_meta++] = (RtStMeta){"data", run->data};
        if (run->val_data[0])
            train_meta[n_train_meta++] = (RtStMeta){"val_data", run->val_data};
        n_train_meta += schedule_meta(&run->schedule, sched_s, train_meta + n_train_meta);
    }
    FileJob jobs[F_COUNT] = {
        [F_MODEL] = {model_t, n_model, model_meta, 4, NULL},
        [F_CONFIG] = {NULL, 0, NULL, 0, m->config_json},
        [F_TRAINER] = {train_t, n_train, train_meta, n_train_meta, NULL},
    };
    for (int f = 0; ok && f < F_COUNT; f++) {
        if (f == F_CONFIG && !m->config_json)
            continue;
        tmp[f] = path_join(dir, file_names[f], ".tmp");
        dst[f] = path_join(dir, file_names[f], "");
        if (!tmp[f] || !dst[f]) {
            ok = rt_err(e, RT_ERR_NOMEM, "out of memory");
            break;
        }
        ok = write_tmp(tmp[f], &jobs[f], io, e);
    }
    /* all written: rename, trainer state last so it never points past the model file */
    for (int f = 0; ok && f < F_COUNT; f++)
        if (tmp[f] && rename(tmp[f], dst[f]) != 0)
            ok = rt_err(e, RT_ERR_IO, "%s: cannot rename to %s: %s", tmp[f], dst[f],
                        strerror(errno));
    if (ok)
        sync_dir(dir);
    for (int f = 0; !ok && f < F_COUNT; f++)
        if (tmp[f])
            unlink(tmp[f]);
out:
    for (int f = 0; f < F_COUNT; f++) {
        free(tmp[f]);
        free(dst[f]);
    }
    free(model_t);
    free(train_t);
    return ok;
}

static bool parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0)
        return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static int schedule_meta(const RtSchedule *s, char (*buf)[40], RtStMeta *out)
{
    const int64_t ints[6] = {s->kind, s->steps, s->warmup, s->warm_start, s->reset_every, s->restart_warmup};
    const double nums[4] = {s->lr, s->relora_lr, s->min_lr_ratio, s->prune};
    for (int i = 0; i < SCHED_FIELDS; i++) {
        if (i < 6)
            snprintf(buf[i], sizeof buf[i], "%" PRId64, ints[i]);
        else
            snprintf(buf[i], sizeof buf[i], "%.17g", nums[i - 6]);
        out[i] = (RtStMeta){sched_keys[i], buf[i]};
    }
    return SCHED_FIELDS;
}

static bool schedule_read(const RtStFile *f, RtSchedule *s, RtError *e)
{
    int64_t ints[6];
    double nums[4];
    for (int i = 0; i < SCHED_FIELDS; i++) {
        const char *v = rt_st_meta(f, sched_keys[i]);
        char *end = NULL;
        bool ok = v && *v;
        if (ok && i < 6)
            ok = parse_i64(v, &ints[i]);
        else if (ok) {
            errno = 0;
            nums[i - 6] = strtod(v, &end);
            ok = !errno && *end == '\0';
        }
        if (!ok)
            return rt_err(e, RT_ERR_FORMAT, "%s: metadata lacks a valid '%s'", f->path, sched_keys[i]);
    }
    *s = (RtSchedule){.kind = (int)ints[0], .steps = ints[1], .warmup = ints[2], .warm_start = ints[3],
                      .reset_every = ints[4], .restart_warmup = ints[5], .lr = nums[0], .relora_lr = nums[1],
                      .min_lr_ratio = nums[2], .prune = nums[3], .warmup_pct = -1, .warm_start_pct = -1,
                      .reset_every_pct = -1, .restart_warmup_pct = -1};
    return true;
}

static void shape_str(char *buf, size_t n, int dtype, int rank, const int64_t *shape)
{
    int at = snprintf(buf, n, "%s [", rt_dtype_name(dtype));
    for (int d = 0; d < rank && at > 0 && (size_t)at < n; d++)
        at += snprintf(buf + at, n - (size_t)at, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (at > 0 && (size_t)at < n)
        snprintf(buf + at, n - (size_t)at, "]");
}

static bool check_tensors(const RtModel *m, const RtStFile *f, RtError *e)
{
    int wanted = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const RtTensorInfo *t = &m->tensors[i];
        if (!rt_tensor_is_persistent(t))
            continue;
        wanted++;
        const RtStTensor *s = rt_st_find(f, t->name);
        if (!s)
            return rt_err(e, RT_ERR_MISSING, "%s: tensor '%s' is missing", f->path, t->name);
        /* f32 and bf16 convert into each other (another precision of the same model) */
        bool same = (s->dtype == t->dtype || (s->dtype != RT_I32 && t->dtype != RT_I32)) && s->rank == t->rank;
        for (int d = 0; same && d < t->rank; d++)
            same = s->shape[d] == t->shape[d];
        if (!same) {
            char have[96], want[96];
            shape_str(have, sizeof have, s->dtype, s->rank, s->shape);
            shape_str(want, sizeof want, t->dtype, t->rank, t->shape);
            return rt_err(e, RT_ERR_MISMATCH,
                          "%s: tensor '%s' is %s in the checkpoint, the model expects %s",
                          f->path, t->name, have, want);
        }
    }
    if (f->n != wanted) {
        for (int j = 0; j < f->n; j++) {
            bool known = false;
            for (int i = 0; i < m->n_tensors && !known; i++)
                known = rt_tensor_is_persistent(&m->tensors[i]) &&
                        strcmp(m->tensors[i].name, f->t[j].name) == 0;
            if (!known)
                return rt_err(e, RT_ERR_MISMATCH, "%s: tensor '%s' is not part of model '%s'",
                              f->path, f->t[j].name, m->name);
        }
    }
    return true;
}

static void copy_meta(char *dst, size_t cap, const char *v)
{
    snprintf(dst, cap, "%s", v ? v : "");
}

bool rt_checkpoint_load(RtCtx *ctx, const char *dir, int64_t *step, uint64_t *seed,
                        RtRunInfo *run, RtError *e)
{
    const RtModel *m = ctx->model;
    char *path = path_join(dir, "trainer.safetensors", "");
    if (!path)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    RtStFile f;
    bool ok = rt_st_open(&f, path, e);
    free(path);
    if (!ok)
        return false;
    const char *format = rt_st_meta(&f, "format"), *hash = rt_st_meta(&f, "model_hash");
    const char *name = rt_st_meta(&f, "model");
    if (!format || strcmp(format, RT_CKPT_FORMAT) != 0)
        ok = rt_err(e, RT_ERR_FORMAT, "%s: not a relorac trainer checkpoint (format '%s')",
                    f.path, format ? format : "none");
    else if (!hash || strcmp(hash, m->model_hash) != 0)
        ok = rt_err(e, RT_ERR_OTHER_MODEL,
                    "%s: checkpoint of another model: '%s' (model_hash %s); this binary trains "
                    "'%s' (model_hash %s)",
                    f.path, name ? name : "?", hash ? hash : "none", m->name, m->model_hash);
    else if (!parse_i64(rt_st_meta(&f, "step"), step) || !parse_u64(rt_st_meta(&f, "seed"), seed))
        ok = rt_err(e, RT_ERR_FORMAT, "%s: metadata lacks a valid step or seed", f.path);
    else
        ok = check_tensors(m, &f, e);
    if (ok && run) {
        const char *kind = rt_st_meta(&f, "data_kind");
        copy_meta(run->data, sizeof run->data, rt_st_meta(&f, "data"));
        copy_meta(run->val_data, sizeof run->val_data, rt_st_meta(&f, "val_data"));
        run->data_kind = kind && strcmp(kind, "tokens") == 0 ? RT_DATA_TOKENS : RT_DATA_TEXT;
        ok = schedule_read(&f, &run->schedule, e);
    }
    for (int i = 0; ok && i < m->n_tensors; i++) {
        const RtTensorInfo *t = &m->tensors[i];
        if (rt_tensor_is_persistent(t)) {
            const RtStTensor *s = rt_st_find(&f, t->name);
            rt_dtype_convert(rt_tensor_host(ctx, i), t->dtype, s->data, s->dtype, rt_tensor_numel(t));
        }
    }
    rt_st_close(&f);
    if (ok)
        rt_ctx_push(ctx); /* the host copies, onto a device */
    return ok;
}
