/* Checkpoints, one atomic unit each. DIR/ckpt-<step>.<6 chars>/ holds model.safetensors
 * (the exported model, adapters merged into their base weights, so it loads as a plain
 * model), config.json (the model's HF config) and trainer.safetensors (every persistent
 * tensor plus the step, seed and spec hash). DIR/latest is a symlink to the current one,
 * replaced by a single rename once a new directory is complete and synced; DIR/<name> are
 * symlinks through latest for tools that open DIR/model.safetensors. A crash, a full disk
 * or a failing rename therefore leaves `latest` at the old checkpoint or the new one, never
 * at a mixture (before, three renames left model.safetensors newer than the trainer state
 * when the second one failed). */
#include "rt_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
#define LATEST "latest"

static char *path_join(const char *dir, const char *name, const char *suffix)
{
    size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s%s", dir, name, suffix);
    return p;
}

static int io_code(int err)
{
    return err == ENOSPC || err == EDQUOT ? RT_ERR_NOSPC : RT_ERR_IO;
}

/* The errno a test injects before `step` on path (0: none). */
static int injected(const RtIo *io, int step, const char *path)
{
    return io && io->fault ? io->fault(io->user, step, path) : 0;
}

/* Appends to a recorded error message: what the failure left on disk. */
static void append(RtError *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(RtError *e, const char *fmt, ...)
{
    size_t n = strlen(e->msg);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg + n, sizeof e->msg - n, fmt, ap);
    va_end(ap);
}

static bool sync_fd(const RtIo *io, int step, int fd, const char *path, RtError *e)
{
    int err = injected(io, step, path);
    if (!err && fsync(fd) != 0)
        err = errno;
    if (err)
        return rt_err(e, io_code(err), "%s: cannot sync: %s", path, strerror(err));
    return true;
}

static bool sync_dir(const RtIo *io, const char *dir, RtError *e)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return rt_err(e, RT_ERR_IO, "%s: cannot open the directory to sync it: %s", dir,
                      strerror(errno));
    bool ok = sync_fd(io, RT_IO_FSYNC_DIR, fd, dir, e);
    close(fd);
    return ok;
}

bool rt_mkdir_p(const char *dir, RtError *e)
{
    if (!*dir)
        return rt_err(e, RT_ERR_USAGE, "empty directory name");
    char *p = strdup(dir);
    if (!p)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    bool ok = true;
    for (char *s = p + 1; ok; s++) {
        bool end = *s == '\0';
        if (*s != '/' && !end)
            continue;
        *s = '\0';
        if (mkdir(p, 0777) == 0) {
            /* make the new entry durable: sync the directory that holds it */
            char *slash = strrchr(p, '/');
            const char *parent = slash ? (slash == p ? "/" : p) : ".";
            if (slash && slash != p)
                *slash = '\0';
            ok = sync_dir(NULL, parent, e);
            if (slash && slash != p)
                *slash = '/';
        } else if (errno != EEXIST) {
            ok = rt_err(e, RT_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
        }
        if (end)
            break;
        *s = '/';
    }
    free(p);
    struct stat st;
    if (ok && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        return rt_err(e, RT_ERR_IO, "%s: not a directory", dir);
    return ok;
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

bool rt_export_merged(const RtCtx *ctx, int i, float *out)
{
    const RtTensorInfo *tt = ctx->model->tensors;
    const RtTensorInfo *w = &tt[i];
    to_f32(rt_tensor_host(ctx, i), w->dtype, rt_tensor_numel(w), out);
    if (w->lora_a < 0)
        return true;
    const RtTensorInfo *a = &tt[w->lora_a], *b = &tt[w->lora_b];
    int64_t rows = w->shape[0], cols = w->shape[1], r = a->shape[0];
    float *af = malloc((size_t)rt_tensor_numel(a) * sizeof *af);
    float *bf = malloc((size_t)rt_tensor_numel(b) * sizeof *bf);
    bool ok = af && bf;
    if (ok) {
        to_f32(rt_tensor_host(ctx, w->lora_a), a->dtype, rt_tensor_numel(a), af);
        to_f32(rt_tensor_host(ctx, w->lora_b), b->dtype, rt_tensor_numel(b), bf);
        /* out [rows, cols] += scale * B [rows, r] @ A [r, cols] */
        rt_sgemm(NULL, 0, 0, rows, cols, r, w->lora_scale, bf, r, af, cols, 1.0f, out, cols);
    }
    free(af);
    free(bf);
    return ok;
}

/* What goes into one file. */
typedef struct FileJob {
    const RtStEntry *t;
    int n;
    const RtStMeta *meta;
    int n_meta;
    const char *text; /* config.json: plain text instead of tensors */
} FileJob;

/* Creates path (which must not exist) and writes the job to it, synced and closed. */
static bool write_file(const char *path, const FileJob *job, const RtIo *io, RtError *e)
{
    int err = injected(io, RT_IO_OPEN, path);
    int fd = err ? -1 : open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = err ? err : errno;
        return rt_err(e, io_code(err), "%s: cannot create: %s", path, strerror(err));
    }
    bool ok;
    if (job->text)
        ok = rt_write_all(fd, io, path, job->text, strlen(job->text), e);
    else
        ok = rt_st_write_fd(fd, io, path, job->t, job->n, job->meta, job->n_meta, e);
    ok = ok && sync_fd(io, RT_IO_FSYNC, fd, path, e);
    err = injected(io, RT_IO_CLOSE, path);
    if (close(fd) != 0 && !err)
        err = errno;
    if (err && ok)
        ok = rt_err(e, io_code(err), "%s: cannot close: %s", path, strerror(err));
    return ok;
}

/* Makes dir/name a symlink to target: the link is made as dir/.name.tmp and renamed over
 * dir/name, so dir/name is at every instant either its old self or the new link. */
static bool link_atomically(const RtIo *io, const char *dir, const char *name,
                            const char *target, RtError *e)
{
    size_t n = strlen(dir) + strlen(name) + 8;
    char *tmp = malloc(n), *dst = path_join(dir, name, "");
    bool ok = tmp && dst;
    if (!ok)
        rt_err(e, RT_ERR_NOMEM, "out of memory");
    if (ok) {
        snprintf(tmp, n, "%s/.%s.tmp", dir, name);
        unlink(tmp); /* left by a crash */
        int err = injected(io, RT_IO_SYMLINK, tmp);
        if (!err && symlink(target, tmp) != 0)
            err = errno;
        if (err)
            ok = rt_err(e, io_code(err), "%s: cannot create a symlink: %s", tmp, strerror(err));
    }
    if (ok) {
        int err = injected(io, RT_IO_RENAME, dst);
        if (!err && rename(tmp, dst) != 0)
            err = errno;
        if (err) {
            ok = rt_err(e, io_code(err), "%s: cannot rename to %s: %s", tmp, dst,
                        strerror(err));
            unlink(tmp);
        }
    }
    free(tmp);
    free(dst);
    return ok;
}

/* Whether path is a symlink whose text is target. */
static bool links_to(const char *path, const char *target)
{
    char buf[PATH_MAX];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0)
        return false;
    buf[n] = '\0';
    return strcmp(buf, target) == 0;
}

/* Removes a directory the saver made (the files in it, then itself). */
static bool remove_tree(const RtIo *io, const char *path)
{
    if (injected(io, RT_IO_REMOVE, path))
        return false;
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT;
    bool ok = true;
    for (struct dirent *en; (en = readdir(d));) {
        if (strcmp(en->d_name, ".") == 0 || strcmp(en->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), en->d_name, 0) != 0)
            ok = false;
    }
    closedir(d);
    return rmdir(path) == 0 && ok;
}

/* A name the saver gives its directories: ckpt-<digits>.<6 characters>. */
static bool is_ckpt_dir_name(const char *name)
{
    if (strncmp(name, "ckpt-", 5) != 0)
        return false;
    const char *p = name + 5, *digits = p;
    while (*p >= '0' && *p <= '9')
        p++;
    return p > digits && *p == '.' && strlen(p + 1) == 6;
}

/* After the commit: removes every ckpt-* directory but keep (older checkpoints, and the
 * partial one a crash may have left) and the temporary names of this and older writers.
 * What cannot be removed now stays for the next save. */
static void remove_stale(const RtIo *io, const char *dir, const char *keep)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *en; (en = readdir(d));) {
        const char *name = en->d_name;
        /* temporary names: .latest.tmp and .NAME.tmp of this writer, NAME.tmp of the old one */
        bool ours = strcmp(name, "." LATEST ".tmp") == 0;
        for (int f = 0; !ours && f < F_COUNT; f++) {
            size_t len = strlen(file_names[f]);
            const char *n = name[0] == '.' ? name + 1 : name;
            ours = strncmp(n, file_names[f], len) == 0 && strcmp(n + len, ".tmp") == 0;
        }
        char *p = path_join(dir, name, "");
        if (!p)
            break;
        if (is_ckpt_dir_name(name) && strcmp(name, keep) != 0)
            remove_tree(io, p);
        else if (ours && !injected(io, RT_IO_REMOVE, p))
            unlink(p);
        free(p);
    }
    closedir(d);
}

bool rt_checkpoint_exists(const char *dir)
{
    char *latest = path_join(dir, LATEST, ""), *legacy = path_join(dir, file_names[F_TRAINER], "");
    struct stat st;
    bool yes = latest && legacy && (lstat(latest, &st) == 0 || lstat(legacy, &st) == 0);
    free(latest);
    free(legacy);
    return yes;
}

/* Whether export x is one model tensor written as it is (no merge, no transpose, no
 * concatenation): then its bytes are written straight from the pool. */
static bool export_is_plain(const RtModel *m, const RtExport *x)
{
    return x->n_parts == 1 && !x->parts[0].transpose && m->tensors[x->parts[0].tensor].lora_a < 0;
}

/* The bytes of export x in its dtype (rt.h RtExport): each part merged in f32 (W + s B A),
 * transposed where marked and placed at its offset along the axis. With the export's shape
 * [outer..., n_axis, inner...], element (i, j, k) of a part whose axis length is n_p lands
 * at ((i * n_axis + offset_p + j) * inner + k). */
static bool fill_export(const void *user, int xi, void *buf)
{
    const RtCtx *ctx = user;
    const RtModel *m = ctx->model;
    const RtExport *x = &m->exports[xi];
    RtExportShape sh;
    rt_export_shape(m, x, &sh); /* validated at start-up */
    int64_t outer = 1, inner = 1, n_axis = sh.shape[x->axis], at = 0;
    for (int d = 0; d < x->axis; d++)
        outer *= sh.shape[d];
    for (int d = x->axis + 1; d < sh.rank; d++)
        inner *= sh.shape[d];
    for (int p = 0; p < x->n_parts; p++) {
        const RtTensorInfo *t = &m->tensors[x->parts[p].tensor];
        bool tr = x->parts[p].transpose;
        int64_t n = rt_tensor_numel(t), cols = t->rank == 2 ? t->shape[1] : 1;
        int64_t len = n / (outer * inner); /* the part's length along the axis */
        float *f = malloc((size_t)n * sizeof *f);
        if (!f || !rt_export_merged(ctx, x->parts[p].tensor, f)) {
            free(f);
            return false;
        }
        for (int64_t i = 0; i < outer; i++)
            for (int64_t j = 0; j < len; j++)
                for (int64_t k = 0; k < inner; k++) {
                    int64_t q = (i * len + j) * inner + k; /* in the part, as exported */
                    if (tr) /* the part is t^T: its (r, c) is t's (c, r) */
                        q = (q % t->shape[0]) * cols + q / t->shape[0];
                    int64_t o = (i * n_axis + at + j) * inner + k;
                    if (sh.dtype == RT_BF16)
                        ((uint16_t *)buf)[o] = rt_f32_to_bf16(f[q]);
                    else
                        ((float *)buf)[o] = f[q];
                }
        at += len;
        free(f);
    }
    return true;
}

bool rt_checkpoint_save(const RtCtx *ctx, const char *dir, int64_t step, const RtRunInfo *run,
                        const RtIo *io, RtError *e)
{
    const RtModel *m = ctx->model;
    if (!rt_mkdir_p(dir, e))
        return false;
    bool had = rt_checkpoint_exists(dir);
    RtStEntry *model_t = calloc((size_t)m->n_exports + 1, sizeof *model_t);
    RtStEntry *train_t = calloc((size_t)m->n_tensors + 1, sizeof *train_t);
    size_t cap = strlen(dir) + 64;
    char *new_dir = malloc(cap);
    char *paths[F_COUNT] = {0};
    bool ok = model_t && train_t && new_dir, made = false, committed = false;
    int n_model = 0, n_train = 0;
    const RtSchedule *sched = run ? &run->schedule : &m->schedule;
    rt_ctx_pull(ctx, sched, step); /* a device's tensors, into their host copies */
    for (int i = 0; ok && i < m->n_tensors; i++) {
        const RtTensorInfo *t = &m->tensors[i];
        RtStEntry en = {t->name, t->dtype, t->rank, {0}, rt_tensor_host(ctx, i), NULL, NULL, 0};
        memcpy(en.shape, t->shape, sizeof en.shape);
        if (rt_tensor_is_persistent(t) && rt_tensor_is_live(t, sched, step))
            train_t[n_train++] = en;
    }
    for (int x = 0; ok && x < m->n_exports; x++) {
        const RtExport *ex = &m->exports[x];
        RtExportShape sh;
        rt_export_shape(m, ex, &sh);
        RtStEntry en = {ex->name, sh.dtype, sh.rank, {0}, NULL, fill_export, ctx, x};
        memcpy(en.shape, sh.shape, sizeof en.shape);
        if (export_is_plain(m, ex))
            en.data = rt_tensor_host(ctx, ex->parts[0].tensor);
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
        {"relorac_step", step_s}, {"relorac_export_note", m->export_note ? m->export_note : ""}};
    int n_model_meta = m->export_note ? 5 : 4;
    RtStMeta train_meta[10 + SCHED_FIELDS] = {{"format", RT_CKPT_FORMAT}, {"model", m->name},
                              {"seed", seed_s},           {"model_hash", m->model_hash},
                              {"step", step_s}};
    int n_train_meta = 5;
    if (run) {
        train_meta[n_train_meta++] = (RtStMeta){"data_kind", rt_data_kind_name(run->data_kind)};
        if (run->data[0])
            train_meta[n_train_meta++] = (RtStMeta){"data", run->data};
        if (run->val_data[0])
            train_meta[n_train_meta++] = (RtStMeta){"val_data", run->val_data};
        if (run->init_from[0])
            train_meta[n_train_meta++] = (RtStMeta){"init_from", run->init_from};
        if (run->tokenizer[0])
            train_meta[n_train_meta++] = (RtStMeta){"tokenizer", run->tokenizer};
        n_train_meta += schedule_meta(&run->schedule, sched_s, train_meta + n_train_meta);
    }
    FileJob jobs[F_COUNT] = {
        [F_MODEL] = {model_t, n_model, model_meta, n_model_meta, NULL},
        [F_CONFIG] = {NULL, 0, NULL, 0, m->config_json},
        [F_TRAINER] = {train_t, n_train, train_meta, n_train_meta, NULL},
    };

    /* 1. a new directory with the three files, each synced, then the directory synced */
    int err = injected(io, RT_IO_MKDIR, dir);
    for (uint64_t k = 0; !err; k++) { /* mkdtemp would make it 0700; mkdir honours the umask */
        static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        uint64_t r = rt_rng_u64((uint64_t)getpid() ^ (uint64_t)time(NULL), (uint64_t)step, k);
        char suffix[7];
        for (int i = 0; i < 6; i++, r /= 62)
            suffix[i] = chars[r % 62];
        suffix[6] = '\0';
        snprintf(new_dir, cap, "%s/ckpt-%08" PRId64 ".%s", dir, step, suffix);
        if (mkdir(new_dir, 0777) == 0)
            break;
        if (errno != EEXIST || k == 100)
            err = errno;
    }
    if (err)
        ok = rt_err(e, io_code(err), "%s: cannot create a checkpoint directory: %s", dir,
                    strerror(err));
    made = ok;
    for (int f = 0; ok && f < F_COUNT; f++) {
        if (f == F_CONFIG && !m->config_json)
            continue;
        paths[f] = path_join(new_dir, file_names[f], "");
        ok = paths[f] ? write_file(paths[f], &jobs[f], io, e)
                      : rt_err(e, RT_ERR_NOMEM, "out of memory");
    }
    ok = ok && sync_dir(io, new_dir, e);
    /* 2. the commit: DIR/latest now names the new directory */
    const char *base = made ? strrchr(new_dir, '/') + 1 : "";
    committed = ok = ok && link_atomically(io, dir, LATEST, base, e);
    if (!committed) {
        bool removed = !made || remove_tree(io, new_dir);
        append(e, "; the checkpoint of step %" PRId64 " was not written and %s", step,
               had ? "the previous checkpoint in " : "there is no checkpoint in ");
        append(e, "%s%s", dir, had ? " is unchanged" : " yet");
        if (!removed)
            append(e, " (the partial directory %s is left; the next checkpoint removes it)",
                   new_dir);
        goto out;
    }
    /* 3. make the commit durable; until then the old directory must stay */
    if (!sync_dir(io, dir, e)) {
        append(e, "; the checkpoint of step %" PRId64 " is in place (%s/%s -> %s) but may not "
               "survive a crash; the previous one is kept beside it", step, dir, LATEST, base);
        ok = false;
        goto out;
    }
    /* 4. DIR/<name> -> latest/<name> (done once per directory; it also replaces the plain
     * files of a directory written before `latest` existed) */
    bool relinked = false;
    for (int f = 0; ok && f < F_COUNT; f++) {
        char target[64], *dst = path_join(dir, file_names[f], "");
        snprintf(target, sizeof target, LATEST "/%s", file_names[f]);
        if (!dst) {
            ok = rt_err(e, RT_ERR_NOMEM, "out of memory");
        } else if (f == F_CONFIG && !m->config_json) {
            if (links_to(dst, target) && !injected(io, RT_IO_REMOVE, dst))
                unlink(dst); /* would dangle */
        } else if (!links_to(dst, target)) {
            ok = link_atomically(io, dir, file_names[f], target, e);
            relinked = true;
        }
        free(dst);
    }
    ok = ok && (!relinked || sync_dir(io, dir, e));
    if (!ok) {
        append(e, "; the checkpoint of step %" PRId64 " is in place in %s/%s, which --resume %s "
               "reads, but %s/<file> may still lead to older files", step, dir, LATEST, dir, dir);
        goto out;
    }
    /* 5. the old directory and leftovers go; a failure here costs only disk space */
    remove_stale(io, dir, base);
out:
    for (int f = 0; f < F_COUNT; f++)
        free(paths[f]);
    free(new_dir);
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
        /* a kind the runtime knows, and finite numbers: "nan" used to be read and then
         * reported as a schedule that differs from the command line's */
        if (ok && i < 6)
            ok = parse_i64(v, &ints[i]) && (i != 0 || ints[i] <= RT_SCHED_RELORA);
        else if (ok) {
            errno = 0;
            nums[i - 6] = strtod(v, &end);
            ok = !errno && *end == '\0' && isfinite(nums[i - 6]);
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

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The tensors a checkpoint after `done` steps of s holds: the persistent ones that hold a
 * value then (a tensor of the other phase shares its bytes with live ones). */
static bool is_saved(const RtTensorInfo *t, const RtSchedule *s, int64_t done)
{
    return rt_tensor_is_persistent(t) && rt_tensor_is_live(t, s, done);
}

static bool check_tensors(const RtModel *m, const RtStFile *f, const RtSchedule *sched, int64_t done, RtError *e)
{
    const char **names = malloc(((size_t)m->n_tensors + 1) * sizeof *names);
    if (!names)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    int wanted = 0;
    bool ok = true;
    for (int i = 0; ok && i < m->n_tensors; i++) {
        const RtTensorInfo *t = &m->tensors[i];
        if (!is_saved(t, sched, done))
            continue;
        names[wanted++] = t->name;
        const RtStTensor *s = rt_st_find(f, t->name);
        if (!s) {
            ok = rt_err(e, RT_ERR_MISSING, "%s: tensor '%s' is missing", f->path, t->name);
            break;
        }
        /* f32 and bf16 convert into each other (another precision of the same model) */
        bool same = (s->dtype == t->dtype || (s->dtype != RT_I32 && t->dtype != RT_I32)) && s->rank == t->rank;
        for (int d = 0; same && d < t->rank; d++)
            same = s->shape[d] == t->shape[d];
        if (!same) {
            char have[96], want[96];
            shape_str(have, sizeof have, s->dtype, s->rank, s->shape);
            shape_str(want, sizeof want, t->dtype, t->rank, t->shape);
            ok = rt_err(e, RT_ERR_MISMATCH,
                        "%s: tensor '%s' is %s in the checkpoint, the model expects %s", f->path,
                        t->name, have, want);
        }
    }
    if (ok && f->n != wanted) {
        /* a tensor of the other phase (an older checkpoint's) is known, and ignored */
        qsort(names, (size_t)wanted, sizeof *names, cmp_str);
        for (int j = 0; ok && j < f->n; j++) {
            const char *key = f->t[j].name;
            bool known = bsearch(&key, names, (size_t)wanted, sizeof *names, cmp_str) != NULL;
            for (int i = 0; i < m->n_tensors && !known; i++)
                known = rt_tensor_is_persistent(&m->tensors[i]) && strcmp(m->tensors[i].name, key) == 0;
            if (!known)
                ok = rt_err(e, RT_ERR_MISMATCH, "%s: tensor '%s' is not part of model '%s'",
                            f->path, key, m->name);
        }
    }
    free(names);
    return ok;
}

/* A metadata path into dst; false when it does not fit whole. */
static bool copy_meta(char *dst, size_t cap, const char *v)
{
    int n = snprintf(dst, cap, "%s", v ? v : "");
    return n >= 0 && (size_t)n < cap;
}

bool rt_checkpoint_load(RtCtx *ctx, const char *dir, int64_t *step, uint64_t *seed,
                        RtRunInfo *run, RtError *e)
{
    const RtModel *m = ctx->model;
    char *latest = path_join(dir, LATEST, "");
    struct stat st;
    bool has_latest = latest && lstat(latest, &st) == 0;
    char *path = has_latest ? path_join(latest, file_names[F_TRAINER], "")
                            : path_join(dir, file_names[F_TRAINER], "");
    free(latest);
    if (!path)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    RtStFile f;
    bool ok = rt_st_open_header(&f, path, e);
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
    /* the schedule says which phase's tensors the file holds; a checkpoint written
     * without one (tests) holds the model's default schedule's */
    RtRunInfo mine;
    bool want_run = run != NULL;
    if (!run)
        run = &mine;
    if (ok) {
        const char *kind = rt_st_meta(&f, "data_kind");
        if (!copy_meta(run->data, sizeof run->data, rt_st_meta(&f, "data")) ||
            !copy_meta(run->val_data, sizeof run->val_data, rt_st_meta(&f, "val_data")) ||
            !copy_meta(run->init_from, sizeof run->init_from, rt_st_meta(&f, "init_from")) ||
            !copy_meta(run->tokenizer, sizeof run->tokenizer, rt_st_meta(&f, "tokenizer")))
            ok = rt_err(e, RT_ERR_FORMAT, "%s: a data path in the metadata is longer than %zu "
                        "bytes", f.path, sizeof run->data - 1);
        run->data_kind = rt_data_kind_parse(kind) >= 0 ? rt_data_kind_parse(kind) : RT_DATA_TEXT;
        RtError se = {0};
        if (!schedule_read(&f, &run->schedule, want_run ? e : &se)) {
            ok = !want_run;
            run->schedule = m->schedule;
        }
        /* a run saves at most at its horizon: a step past it (an edited file) would
         * resume as "nothing to do" with the rest of the metadata unchecked */
        if (ok && (*step < 0 || *step > run->schedule.steps))
            ok = rt_err(e, RT_ERR_FORMAT, "%s: metadata step %" PRId64 " is outside the schedule it records, "
                        "0..%" PRId64 " steps", f.path, *step, (int64_t)run->schedule.steps);
    }
    ok = ok && check_tensors(m, &f, &run->schedule, *step, e);
    /* straight into the pools: no second copy of the state in memory */
    /* straight into the pools (a device's: their host copies); a tensor stored in the
     * other float dtype goes through one buffer and is converted */
    void *conv = NULL;
    for (int i = 0; ok && i < m->n_tensors; i++) {
        const RtTensorInfo *t = &m->tensors[i];
        if (!is_saved(t, &run->schedule, *step))
            continue;
        const RtStTensor *s = rt_st_find(&f, t->name);
        if (s->dtype == t->dtype) {
            ok = rt_st_read(&f, s, rt_tensor_host(ctx, i), e);
            continue;
        }
        free(conv);
        conv = malloc(s->nbytes ? s->nbytes : 1);
        if (!conv)
            ok = rt_err(e, RT_ERR_NOMEM, "out of memory converting '%s'", t->name);
        else if ((ok = rt_st_read(&f, s, conv, e)))
            rt_dtype_convert(rt_tensor_host(ctx, i), t->dtype, conv, s->dtype, rt_tensor_numel(t));
    }
    free(conv);
    rt_st_close(&f);
    if (ok)
        rt_ctx_push(ctx, &run->schedule, *step); /* the host copies, onto a device */
    return ok;
}
