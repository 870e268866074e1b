/* sweep_run.c: `relorac sweep` runs the variants of a spec's sweeps (sweep_run.h).
 *
 * Builds: every variant is lowered and run through the pass pipeline; its module,
 * printed without the attributes that are trainer options (sweep_runtime_attrs), is
 * its build key. Variants with equal text share one binary (DIR/builds/KEY/train,
 * next to the text it was built from, so a later run reuses it), and get their own
 * values of those attributes as trainer options. Deciding by the compiler's output
 * rather than by a list of "shape" fields keeps this right as fields are added: a
 * setting that changes the program (warm_start 0 against > 0 adds the full-rank
 * functions) changes the text.
 *
 * Runs: each variant trains in DIR/runs/NAME (checkpoint, metrics.jsonl, train.log,
 * and `state`, which records its status, the settings it ran with, its wall time and
 * peak RSS). Builds and trainers are child processes in their own process groups, at
 * most --jobs at a time; the first SIGINT/SIGTERM sends the trainers SIGTERM (they
 * finish the step and checkpoint), a second one SIGKILL. Progress comes from their
 * metrics.jsonl.
 *
 * Results: DIR/results.csv and DIR/results.md are written from the run directories
 * at the end of every invocation (finished or not); gnuplot (Debian's gnuplot-nox)
 * draws DIR/val_loss.svg from data and a script this file writes into DIR/plot. */
#include "sweep_run.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "cg.h"
#include "kernel.h"
#include "lower.h"
#include "pm.h"
#include "report.h"

/* Step-count attributes also have ATTR_percent (docs/language.md §5.4): both go, and
 * the trainer gets the resolved count. A trainer's val_fraction, data_kind and
 * val_data_kind have no option: they stay compiled (two variants that differ there
 * get two binaries). */
const SweepRuntimeAttr sweep_runtime_attrs[] = {
    {"train.steps", "--total-steps"},
    {"schedule.warmup", "--warmup"},
    {"relora.warm_start", "--warm-start"},
    {"relora.reset_every", "--reset-every"},
    {"relora.restart_warmup", "--restart-warmup"},
    {"optim.lr", "--lr"},
    {"relora.lr", "--relora-lr"},
    {"schedule.min_lr_ratio", "--min-lr-ratio"},
    {"relora.prune", "--prune"},
    {"train.seed", "--seed"},
    {"train.eval_every", "--eval-every"},
    {"train.eval_batches", "--eval-batches"},
    {"train.checkpoint_every", "--checkpoint-every"},
    {"train.data", "--data"},
    {"train.val_data", "--val-data"},
    {"train.out", NULL},
};
const int sweep_n_runtime_attrs = (int)(sizeof sweep_runtime_attrs / sizeof sweep_runtime_attrs[0]);

/* The one mutable global: a signal handler reaches only static storage. It counts
 * the SIGINT/SIGTERM received; last_signal is the latest. */
static volatile sig_atomic_t n_signals, last_signal;

static void on_signal(int sig)
{
    n_signals = n_signals + 1;
    last_signal = sig;
}

/* ---- small helpers ----------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short, which is what we want */
}

static bool mkdir_p(const char *path, FILE *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        fprintf(err, "relorac sweep: path too long: %s\n", path);
        return false;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                fprintf(err, "relorac sweep: cannot create %s: %s\n", buf, strerror(errno));
                return false;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return true;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The whole file, NUL-terminated (malloc'd), or NULL. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* Writes text to path through path.tmp and a rename, so a reader never sees half. */
static bool write_atomic(const char *path, const char *text, size_t len, FILE *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(text, 1, len, f) == len;
    ok = f && fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) == 0)
        return true;
    fprintf(err, "relorac sweep: cannot write %s: %s\n", path, strerror(errno));
    unlink(tmp);
    return false;
}

/* FNV-1a, 64 bits: a name for a build directory (the text itself decides equality). */
static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static void fmt_duration(char *buf, size_t n, double s)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%lds", t);
}

/* ---- build keys ------------------------------------------------------------------ */

static bool is_runtime_attr(const char *key)
{
    for (int i = 0; i < sweep_n_runtime_attrs; i++) {
        size_t n = strlen(sweep_runtime_attrs[i].attr);
        if (!strncmp(key, sweep_runtime_attrs[i].attr, n) && (key[n] == '\0' || !strcmp(key + n, "_percent")))
            return true;
    }
    return false;
}

char *sweep_build_text(const IrModule *m, size_t *len)
{
    IrModule copy = *m;
    copy.attrs.items = calloc((size_t)m->attrs.n + 1, sizeof *copy.attrs.items);
    if (!copy.attrs.items)
        return NULL;
    copy.attrs.n = copy.attrs.cap = 0;
    for (int i = 0; i < m->attrs.n; i++)
        if (!is_runtime_attr(m->attrs.items[i].key))
            copy.attrs.items[copy.attrs.n++] = m->attrs.items[i];
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (f) {
        ir_print(&copy, f);
        fclose(f);
    }
    free(copy.attrs.items);
    *len = n;
    return text;
}

/* ---- variants, builds and their state -------------------------------------------- */

typedef enum { ST_PENDING, ST_RUNNING, ST_DONE, ST_DIVERGED, ST_FAILED, ST_INTERRUPTED } Status;

static const char *const status_names[] = {"pending", "running", "done", "diverged", "failed", "interrupted"};

typedef enum { B_NEEDED, B_BUILDING, B_READY, B_FAILED } BuildState;

typedef struct Build {
    char key[17];
    const char *dir, *bin, *log;
    char *text; /* malloc'd: the module without its run-time attributes */
    size_t len;
    Arena arena; /* owns m */
    IrModule *m;
    BuildState state;
    bool is_reused;
    pid_t pid;
    double t_start;
    const char *message;
    int n_variants;
} Build;

/* What `metrics.jsonl` says about a run. */
typedef struct Summary {
    int64_t steps;         /* steps logged: the last step + 1 (0: none yet) */
    double train_loss;     /* mean training loss of the last TRAIN_LOSS_STEPS logged steps */
    double val_loss;       /* at the last evaluation (NaN: none) */
    int64_t val_step;      /* steps done at the last evaluation */
    double tokens_per_s;   /* tokens / the time of the steps (evaluation and checkpoints excluded) */
} Summary;

/* The final training loss averages this many last steps: one step's loss (a batch
 * of batch x seq_len tokens) is too noisy to compare variants by. */
enum { TRAIN_LOSS_STEPS = 50 };

typedef struct Run {
    const FeVariant *v;
    int index;              /* 1-based */
    const char *dir, *state_path, *log_path;
    int build;              /* index in builds; -1 when there is none */
    const char **opts;      /* the variant's trainer options (run-time settings) */
    int n_opts;
    const char *settings;   /* build key and options: a finished run counts only if equal */
    Status status;
    const char *message;
    pid_t pid;
    double t_start, wall_s; /* wall_s: the segments before this one */
    long rss_kb;
    int64_t total_steps, tokens_per_step, warm_start;
    int64_t printed_val_step;
    bool is_resume;
} Run;

typedef struct Sweep {
    Arena *a;
    const SweepRunOptions *o;
    FILE *out, *err;
    Run *runs;
    int n_runs;
    Build *builds;
    int n_builds;
    int threads_per_job;
    int n_running;
    bool is_stopping;
    double last_poll;
    bool status_line; /* a status line is on the terminal (erase before printing) */
    bool tables_stale; /* a variant finished since the tables were written */
} Sweep;

/* A file-system-safe directory name for a variant: [A-Za-z0-9._,=+-] kept, '/'
 * becomes "__", anything else '_'; long names keep a prefix and a hash. */
static const char *dir_name(Arena *a, const char *name)
{
    size_t n = strlen(name);
    char *s = arena_alloc(a, 2 * n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '/') {
            s[k++] = '_';
            s[k++] = '_';
        } else {
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._,=+-", c);
            s[k++] = ok ? c : '_';
        }
    }
    s[k] = '\0';
    if (k > 120 || s[0] == '.')
        return arena_sprintf(a, "%.100s~%016" PRIx64, s[0] == '.' ? "_" : s, fnv1a(name, n));
    return s;
}

static void status_clear(Sweep *sw)
{
    if (sw->status_line) {
        fputs("\r\033[K", sw->out);
        sw->status_line = false;
    }
}

static void say(Sweep *sw, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(Sweep *sw, const char *fmt, ...)
{
    status_clear(sw);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(sw->out, fmt, ap);
    va_end(ap);
    fputc('\n', sw->out);
    fflush(sw->out);
}

/* The `state` file: "status S", "settings" lines, "wall_s", "rss_kb", "message". */
static void state_write(Sweep *sw, Run *r)
{
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (!f)
        return;
    fprintf(f, "status %s\nwall_s %.3f\nrss_kb %ld\n", status_names[r->status], r->wall_s, r->rss_kb);
    if (r->message)
        fprintf(f, "message %s\n", r->message);
    fprintf(f, "settings\n%s", r->settings);
    fclose(f);
    write_atomic(r->state_path, text, n, sw->err);
    free(text);
}

/* Reads r's state file, if any: status, times and whether its settings are r's. */
static bool state_read(Sweep *sw, Run *r, Status *status, bool *same)
{
    char *text = slurp(r->state_path, NULL);
    if (!text)
        return false;
    *status = ST_PENDING;
    *same = false;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (!strncmp(line, "status ", 7)) {
            for (int i = 0; i < (int)(sizeof status_names / sizeof *status_names); i++)
                if (!strcmp(line + 7, status_names[i]))
                    *status = (Status)i;
        } else if (!strncmp(line, "wall_s ", 7)) {
            r->wall_s = strtod(line + 7, NULL);
        } else if (!strncmp(line, "rss_kb ", 7)) {
            r->rss_kb = strtol(line + 7, NULL, 10);
        } else if (!strncmp(line, "message ", 8)) {
            r->message = arena_strdup(sw->a, line + 8);
        } else if (!strcmp(line, "settings")) {
            *same = nl && !strcmp(nl + 1, r->settings);
            break;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return true;
}

/* Removes the files of a run directory (a run that starts again from step 0). */
static void run_dir_clear(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4200];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (file_exists(path))
                unlink(path);
        }
    closedir(d);
}

/* ---- metrics ---------------------------------------------------------------------- */

/* The number after "key": in a metrics line (NaN for null or when absent). The
 * trainer writes flat objects with these keys once each (docs/runtime.md), and no
 * string value contains a quote, so a key search is exact. */
static double json_number(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return NAN;
    p += strlen(pat);
    if (!strncmp(p, "null", 4))
        return NAN;
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

typedef struct Point {
    int64_t step;
    double loss, tok_s, val;
} Point;

/* The points of a metrics file, by step: a step logged again (a run resumed from an
 * earlier checkpoint) replaces the records from that step on. An unterminated last
 * line (a trainer killed while writing it) is left out. malloc'd; *n points. */
static Point *metrics_read(const char *path, int *n)
{
    *n = 0;
    char *text = slurp(path, NULL);
    if (!text)
        return NULL;
    int cap = 256;
    Point *p = malloc(sizeof *p * (size_t)cap);
    for (char *line = text; p && *line;) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break;
        *nl = '\0';
        double step = json_number(line, "step");
        if (isfinite(step) && step >= 0) {
            while (*n > 0 && p[*n - 1].step >= (int64_t)step)
                (*n)--;
            if (*n == cap) {
                Point *q = realloc(p, sizeof *p * (size_t)cap * 2);
                if (!q) {
                    free(p);
                    p = NULL;
                    break;
                }
                p = q;
                cap *= 2;
            }
            p[(*n)++] = (Point){(int64_t)step, json_number(line, "loss"), json_number(line, "tokens_per_s"),
                                json_number(line, "val_loss")};
        }
        line = nl + 1;
    }
    free(text);
    if (!p)
        *n = 0;
    return p;
}

static Summary summarize(const Point *p, int n)
{
    Summary s = {.train_loss = NAN, .val_loss = NAN, .tokens_per_s = NAN};
    if (n == 0)
        return s;
    s.steps = p[n - 1].step + 1;
    double sum = 0, inv = 0;
    int k = 0, m = 0;
    for (int i = n - 1; i >= 0 && k < TRAIN_LOSS_STEPS; i--)
        if (isfinite(p[i].loss))
            sum += p[i].loss, k++;
    s.train_loss = k ? sum / k : NAN;
    for (int i = 0; i < n; i++) {
        if (isfinite(p[i].tok_s) && p[i].tok_s > 0)
            inv += 1.0 / p[i].tok_s, m++;
        if (isfinite(p[i].val)) {
            s.val_loss = p[i].val;
            s.val_step = p[i].step + 1;
        }
    }
    s.tokens_per_s = m ? m / inv : NAN; /* every step has the same tokens: n / sum(time per token) */
    return s;
}

static Summary run_summary(const Run *r)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->dir);
    int n;
    Point *p = metrics_read(path, &n);
    Summary s = summarize(p, n);
    free(p);
    return s;
}

/* Each start of a trainer writes this line into its log first, so that an error is
 * looked for only in the latest segment. */
#define LOG_MARK "--- relorac sweep: "

/* The last "error: ..." line a child wrote to its log since the last LOG_MARK, or
 * a default. */
static const char *log_error(Arena *a, const char *log, const char *dflt)
{
    size_t len;
    char *text = slurp(log, &len);
    if (!text)
        return dflt;
    const char *found = NULL;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        const char *e = strstr(line, "error: ");
        if (!strncmp(line, LOG_MARK, strlen(LOG_MARK)))
            found = NULL;
        else if (e)
            found = e + 7;
        if (!nl)
            break;
        line = nl + 1;
    }
    const char *msg = found ? arena_strdup(a, found) : dflt;
    free(text);
    return msg;
}

/* ---- preparing the variants -------------------------------------------------------- */

/* The trainer option for attribute at (its value as the trainer parses it). */
static const char *option_value(Arena *a, const IrAttr *at)
{
    switch (at->kind) {
    case IR_ATTR_INT: return arena_sprintf(a, "%" PRId64, at->i);
    case IR_ATTR_FLOAT: /* the shortest text that reads back as the same double */
        for (int prec = 1; prec <= 17; prec++) {
            const char *t = arena_sprintf(a, "%.*g", prec, at->f);
            if (strtod(t, NULL) == at->f || prec == 17)
                return t;
        }
        return NULL;
    case IR_ATTR_STR: return arena_strdup(a, at->s); /* at lives in a scratch arena */
    case IR_ATTR_INTS: break;
    }
    return NULL;
}

/* Lowers a variant and runs the pipeline in its own arena; finds or adds its build
 * and sets its trainer options. False (r->message set) when the compiler failed. */
static bool prepare_run(Sweep *sw, Run *r)
{
    Arena *a = sw->a;
    Build b = {0};
    arena_init(&b.arena);
    b.arena.oom_jmp = a->oom_jmp;
    Diags d;
    diag_init(&d, &b.arena);
    IrModule *m = fe_lower(&b.arena, &d, r->v->spec);
    PassCtx pc = {&b.arena, &d, m, PROP_LOWERED};
    PassOptions po = {0};
    if (!m || !pass_pipeline_run(&pc, &po)) {
        const char *msg = "the compiler failed";
        for (int i = 0; i < d.n; i++)
            if (d.list[i].level == DIAG_ERROR) {
                msg = arena_strdup(a, d.list[i].msg);
                break;
            }
        r->message = msg;
        arena_fini(&b.arena);
        return false;
    }
    r->opts = arena_alloc(a, sizeof(char *) * (size_t)(2 * sweep_n_runtime_attrs + 2));
    r->n_opts = 0;
    for (int i = 0; i < sweep_n_runtime_attrs; i++) {
        const IrAttr *at = ir_attrs_get(&m->attrs, sweep_runtime_attrs[i].attr);
        if (at && sweep_runtime_attrs[i].option) {
            r->opts[r->n_opts++] = sweep_runtime_attrs[i].option;
            r->opts[r->n_opts++] = option_value(a, at);
        }
    }
    b.text = sweep_build_text(m, &b.len);
    if (!b.text) {
        r->message = "out of memory";
        arena_fini(&b.arena);
        return false;
    }
    for (int i = 0; i < sw->n_builds; i++)
        if (sw->builds[i].len == b.len && !memcmp(sw->builds[i].text, b.text, b.len)) {
            free(b.text);
            arena_fini(&b.arena);
            r->build = i;
            sw->builds[i].n_variants++;
            return true;
        }
    snprintf(b.key, sizeof b.key, "%016" PRIx64, fnv1a(b.text, b.len));
    for (int i = 0; i < sw->n_builds; i++) /* two texts, one hash: keep the names apart */
        if (!strcmp(sw->builds[i].key, b.key))
            snprintf(b.key, sizeof b.key, "%016" PRIx64, fnv1a(b.text, b.len) + (uint64_t)sw->n_builds);
    b.m = m;
    b.dir = arena_sprintf(a, "%s/builds/%s", sw->o->out_dir, b.key);
    b.bin = arena_sprintf(a, "%s/train", b.dir);
    b.log = arena_sprintf(a, "%s/build.log", b.dir);
    b.n_variants = 1;
    char path[4200];
    snprintf(path, sizeof path, "%s/model.ir", b.dir);
    size_t len;
    char *old = slurp(path, &len);
    b.is_reused = old && len == b.len && !memcmp(old, b.text, len) && file_exists(b.bin);
    b.state = b.is_reused ? B_READY : B_NEEDED;
    free(old);
    sw->builds[sw->n_builds] = b;
    r->build = sw->n_builds++;
    return true;
}

/* The run's settings: its build and options (the thread count is not a setting). */
static const char *run_settings(Sweep *sw, const Run *r)
{
    const char *s = arena_sprintf(sw->a, "build %s\n", sw->builds[r->build].key);
    for (int i = 0; i < r->n_opts; i += 2)
        s = arena_sprintf(sw->a, "%s%s %s\n", s, r->opts[i], r->opts[i + 1]);
    return s;
}

static bool prepare(Sweep *sw, const FeVariant *vars, int n)
{
    Arena *a = sw->a;
    const char *runs_dir = arena_sprintf(a, "%s/runs", sw->o->out_dir);
    sw->runs = arena_alloc(a, sizeof(Run) * (size_t)(n + 1));
    sw->builds = arena_alloc(a, sizeof(Build) * (size_t)(n + 1));
    sw->n_runs = n;
    for (int i = 0; i < n; i++) {
        Run *r = &sw->runs[i];
        r->v = &vars[i];
        r->index = i + 1;
        r->build = -1;
        r->printed_val_step = -1;
        const char *dn = dir_name(a, vars[i].name);
        for (int j = 0, k = 2; j < i; j++) /* two names, one directory: number them */
            if (!strcmp(sw->runs[j].dir + strlen(runs_dir) + 1, dn)) {
                dn = arena_sprintf(a, "%s~%d", dir_name(a, vars[i].name), k++);
                j = -1;
            }
        r->dir = arena_sprintf(a, "%s/%s", runs_dir, dn);
        r->state_path = arena_sprintf(a, "%s/state", r->dir);
        r->log_path = arena_sprintf(a, "%s/train.log", r->dir);
        if (!vars[i].spec) {
            r->status = ST_FAILED;
            r->message = vars[i].error ? vars[i].error : "the variant has errors";
            continue;
        }
        const SpecTrain *t = &vars[i].spec->train;
        r->total_steps = t->steps;
        r->tokens_per_step = t->batch * t->seq_len;
        r->warm_start = t->schedule.kind == SPEC_SCHED_RELORA ? t->schedule.warm_start.n : t->steps;
        if (!prepare_run(sw, r)) {
            r->status = ST_FAILED;
            continue;
        }
        r->settings = run_settings(sw, r);
        if (sw->o->is_list)
            continue;
        if (!mkdir_p(r->dir, sw->err))
            return false;
        Status st = ST_PENDING;
        bool same = false;
        bool has_state = state_read(sw, r, &st, &same);
        if (has_state && !same) {
            say(sw, "[%d/%d] %s: its settings changed since the last run; it starts again", r->index, sw->n_runs,
                vars[i].name);
            run_dir_clear(r->dir);
            r->wall_s = 0;
            r->rss_kb = 0;
        } else if (has_state && (st == ST_DONE || st == ST_DIVERGED)) {
            r->status = st;
            sw->builds[r->build].n_variants--; /* needs no binary */
            continue;
        }
        r->status = ST_PENDING; /* never run, interrupted, or failed last time: (re)start it */
        r->message = NULL;
    }
    return true;
}

/* ---- children ---------------------------------------------------------------------- */

/* In a child: its own process group (a terminal's Ctrl-C reaches only the driver,
 * which stops the children in order), output to log. */
static void child_setup(const char *log, pid_t parent)
{
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* a killed driver does not leave trainers running */
    if (getppid() != parent)
        _exit(1);
#else
    (void)parent;
#endif
    setpgid(0, 0);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
}

static bool start_build(Sweep *sw, Build *b)
{
    if (!mkdir_p(b->dir, sw->err))
        return false;
    char path[4200];
    snprintf(path, sizeof path, "%s/model.ir", b->dir);
    if (!write_atomic(path, b->text, b->len, sw->err))
        return false;
    unlink(b->bin);
    unlink(b->log);
    fflush(NULL);
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        fprintf(sw->err, "relorac sweep: cannot start a build: %s\n", strerror(errno));
        return false;
    }
    if (pid == 0) {
        child_setup(b->log, parent);
        b->arena.oom_jmp = NULL; /* the driver's handler is not this process's */
        Diags d;
        diag_init(&d, &b->arena);
        KProgram *p = k_program_build(&b->arena, &d, b->m);
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp", b->bin);
        CgOptions co = {.runtime_lib = sw->o->runtime_lib, .link_args = sw->o->link_args};
        bool ok = p && cg_build_executable(p, &co, tmp, &d);
        diag_print(&d, stderr, false);
        fflush(stderr);
        _exit(ok && rename(tmp, b->bin) == 0 ? 0 : 1);
    }
    b->pid = pid;
    b->state = B_BUILDING;
    b->t_start = now_s();
    sw->n_running++;
    say(sw, "build %s: compiling (%d variant%s)", b->key, b->n_variants, b->n_variants == 1 ? "" : "s");
    return true;
}

static bool start_run(Sweep *sw, Run *r)
{
    const Build *b = &sw->builds[r->build];
    char ckpt[4200];
    snprintf(ckpt, sizeof ckpt, "%s/trainer.safetensors", r->dir);
    r->is_resume = file_exists(ckpt);
    if (!r->is_resume) {
        run_dir_clear(r->dir);
        r->wall_s = 0;
        r->rss_kb = 0;
    }
    const char **argv = arena_alloc(sw->a, sizeof(char *) * (size_t)(r->n_opts + 10));
    int n = 0;
    argv[n++] = b->bin;
    for (int i = 0; i < r->n_opts; i++)
        argv[n++] = r->opts[i];
    argv[n++] = "--out";
    argv[n++] = r->dir;
    if (r->is_resume) {
        argv[n++] = "--resume";
        argv[n++] = r->dir;
    }
    argv[n++] = "--threads";
    argv[n++] = arena_sprintf(sw->a, "%d", sw->threads_per_job);
    argv[n] = NULL;
    r->status = ST_RUNNING;
    r->message = NULL;
    state_write(sw, r);
    FILE *lf = fopen(r->log_path, "a");
    if (lf) {
        fprintf(lf, "%s%s\n", LOG_MARK, r->is_resume ? "resumed" : "started");
        fclose(lf);
    }
    fflush(NULL);
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        fprintf(sw->err, "relorac sweep: cannot start a trainer: %s\n", strerror(errno));
        r->status = ST_FAILED;
        return false;
    }
    if (pid == 0) {
        child_setup(r->log_path, parent);
        execv(b->bin, (char *const *)argv);
        fprintf(stderr, "relorac sweep: error: cannot run %s: %s\n", b->bin, strerror(errno));
        _exit(127);
    }
    r->pid = pid;
    r->t_start = now_s();
    sw->n_running++;
    Summary s = run_summary(r);
    if (r->is_resume)
        say(sw, "[%d/%d] %s: resumed at step %" PRId64 "/%" PRId64, r->index, sw->n_runs, r->v->name, s.steps,
            r->total_steps);
    else
        say(sw, "[%d/%d] %s: started (build %s, %d thread%s)", r->index, sw->n_runs, r->v->name, b->key,
            sw->threads_per_job, sw->threads_per_job == 1 ? "" : "s");
    return true;
}

/* " | 1.2345 bits/byte" for a text-data run (a byte is a token there), else "". */
static const char *bits_per_byte(Arena *a, const Run *r, double val_loss)
{
    return r->v->spec->train.data.kind == SPEC_DATA_TEXT ? arena_sprintf(a, " | %.4f bits/byte", val_loss / log(2.0))
                                                        : "";
}

static void finish_run(Sweep *sw, Run *r, int status, const struct rusage *ru)
{
    r->wall_s += now_s() - r->t_start;
    if (ru->ru_maxrss > r->rss_kb)
        r->rss_kb = ru->ru_maxrss;
    r->pid = 0;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code == 0)
        r->status = ST_DONE;
    else if (code == 1)
        r->status = ST_DIVERGED;
    else if (sw->is_stopping && (code == 130 || code == 143 || code == 128 + SIGKILL))
        r->status = ST_INTERRUPTED;
    else
        r->status = ST_FAILED;
    sw->tables_stale = true;
    if (r->status == ST_DIVERGED || r->status == ST_FAILED)
        r->message = log_error(sw->a, r->log_path, arena_sprintf(sw->a, "the trainer exited with status %d", code));
    state_write(sw, r);
    Summary s = run_summary(r);
    char t[32];
    fmt_duration(t, sizeof t, r->wall_s);
    if (r->status == ST_DONE)
        say(sw, "[%d/%d] %s: done in %s | val loss %.4f%s", r->index, sw->n_runs, r->v->name, t, s.val_loss,
            bits_per_byte(sw->a, r, s.val_loss));
    else if (r->status == ST_INTERRUPTED)
        say(sw, "[%d/%d] %s: stopped at step %" PRId64 "/%" PRId64 " (the same command resumes it)", r->index,
            sw->n_runs, r->v->name, s.steps, r->total_steps);
    else
        say(sw, "[%d/%d] %s: %s: %s", r->index, sw->n_runs, r->v->name, status_names[r->status], r->message);
}

static void finish_build(Sweep *sw, Build *b, int status)
{
    b->pid = 0;
    char t[32];
    fmt_duration(t, sizeof t, now_s() - b->t_start);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && file_exists(b->bin)) {
        b->state = B_READY;
        say(sw, "build %s: done in %s", b->key, t);
        return;
    }
    b->state = B_FAILED;
    if (sw->is_stopping) {
        b->message = "stopped";
        return;
    }
    b->message = log_error(sw->a, b->log, arena_sprintf(sw->a, "the build failed (see %s)", b->log));
    say(sw, "build %s: failed: %s (log: %s)", b->key, b->message, b->log);
}

/* Reaps every child that has exited. */
static void reap(Sweep *sw)
{
    for (;;) {
        int status;
        struct rusage ru;
        pid_t pid = wait4(-1, &status, WNOHANG, &ru);
        if (pid <= 0)
            return;
        sw->n_running--;
        for (int i = 0; i < sw->n_runs; i++)
            if (sw->runs[i].pid == pid)
                finish_run(sw, &sw->runs[i], status, &ru);
        for (int i = 0; i < sw->n_builds; i++)
            if (sw->builds[i].pid == pid)
                finish_build(sw, &sw->builds[i], status);
    }
}

static void signal_children(Sweep *sw, int sig)
{
    for (int i = 0; i < sw->n_runs; i++)
        if (sw->runs[i].pid > 0)
            kill(sw->runs[i].pid, sig);
    for (int i = 0; i < sw->n_builds; i++)
        if (sw->builds[i].pid > 0)
            kill(sw->builds[i].pid, sig == SIGTERM ? SIGKILL : sig); /* a half build is useless */
}

/* Starts what the free job slots allow, in variant order: a variant whose binary is
 * ready, else the build it waits for. False when nothing is left to start. */
static bool start_work(Sweep *sw)
{
    bool waiting = false;
    for (int i = 0; i < sw->n_runs && sw->n_running < sw->o->jobs; i++) {
        Run *r = &sw->runs[i];
        if (r->status != ST_PENDING)
            continue;
        Build *b = &sw->builds[r->build];
        if (b->state == B_FAILED) {
            r->status = ST_FAILED;
            r->message = arena_sprintf(sw->a, "build %s failed: %s", b->key, b->message);
            state_write(sw, r);
            say(sw, "[%d/%d] %s: failed: %s", r->index, sw->n_runs, r->v->name, r->message);
            continue;
        }
        if (b->state == B_READY) {
            if (!start_run(sw, r))
                return false;
        } else if (b->state == B_NEEDED && !start_build(sw, b)) {
            b->state = B_FAILED;
            b->message = "cannot start the build";
        }
    }
    for (int i = 0; i < sw->n_runs && !waiting; i++)
        waiting = sw->runs[i].status == ST_PENDING;
    return waiting;
}

/* Reports new evaluations of the running variants; redraws the status line. */
static void poll_progress(Sweep *sw)
{
    double t = now_s();
    if (t - sw->last_poll < 1.0)
        return;
    sw->last_poll = t;
    char line[512];
    size_t k = 0;
    line[0] = '\0';
    for (int i = 0; i < sw->n_runs; i++) {
        Run *r = &sw->runs[i];
        if (r->status != ST_RUNNING || r->pid <= 0)
            continue;
        Summary s = run_summary(r);
        if (isfinite(s.val_loss) && s.val_step > r->printed_val_step) {
            r->printed_val_step = s.val_step;
            char el[32];
            fmt_duration(el, sizeof el, r->wall_s + t - r->t_start);
            say(sw, "[%d/%d] %s: step %" PRId64 "/%" PRId64 " | loss %.4f | val %.4f%s | %.0f tok/s | %s", r->index,
                sw->n_runs, r->v->name, s.val_step, r->total_steps, s.train_loss, s.val_loss,
                bits_per_byte(sw->a, r, s.val_loss), s.tokens_per_s, el);
        }
        if (k < sizeof line - 64)
            k += (size_t)snprintf(line + k, sizeof line - k, "%s%s %" PRId64 "/%" PRId64, k ? " | " : "", r->v->name,
                                  s.steps, r->total_steps);
    }
    if (sw->o->is_tty && k > 0) {
        status_clear(sw);
        fprintf(sw->out, "%.110s", line);
        fflush(sw->out);
        sw->status_line = true;
    }
}

/* ---- results -------------------------------------------------------------------------- */

/* The union of every variant's axis keys (whole paths: `train.optimizer.lr`, `model`,
 * so that two keys ending alike stay two columns), in order of appearance. */
static int axis_columns(Sweep *sw, const char ***out)
{
    int cap = 8, n = 0;
    const char **keys = arena_alloc(sw->a, sizeof(char *) * (size_t)cap);
    for (int i = 0; i < sw->n_runs; i++)
        for (int j = 0; j < sw->runs[i].v->n_axes; j++) {
            const char *k = sw->runs[i].v->paths[j];
            bool seen = false;
            for (int m = 0; m < n && !seen; m++)
                seen = !strcmp(keys[m], k);
            if (seen)
                continue;
            if (n == cap) {
                keys = arena_grow(sw->a, keys, (size_t)n, (size_t)cap * 2, sizeof *keys);
                cap *= 2;
            }
            keys[n++] = k;
        }
    *out = keys;
    return n;
}

static const char *axis_value(const FeVariant *v, const char *key)
{
    for (int i = 0; i < v->n_axes; i++)
        if (!strcmp(v->paths[i], key))
            return v->values[i];
    return "";
}

/* One row's cells, as text ("" where a value does not apply). */
enum { C_NAME, C_SWEEP, C_VARIANT, C_STATUS, C_STEPS, C_PARAMS, C_TRAIN_FULL, C_TRAIN_RELORA, C_FLOPS, C_TOKS, C_RSS,
       C_TRAIN_LOSS, C_VAL_LOSS, C_PPL, C_BPB, C_WALL, C_BUILD, C_MESSAGE, C_COUNT };
static const char *const column_names[C_COUNT] = {
    "name", "sweep", "variant", "status", "steps", "params", "trainable_full", "trainable_relora",
    "flops_per_token", "tokens_per_s", "peak_rss_mib", "train_loss", "val_loss", "val_ppl", "val_bits_per_byte",
    "wall_s", "build", "message"};

static const char *num(Arena *a, const char *fmt, double v)
{
    return isfinite(v) ? arena_sprintf(a, fmt, v) : "";
}

static void row_cells(Sweep *sw, const Run *r, const char **c)
{
    Arena *a = sw->a;
    for (int i = 0; i < C_COUNT; i++)
        c[i] = "";
    c[C_NAME] = r->v->name;
    c[C_SWEEP] = r->v->sweep;
    c[C_VARIANT] = r->v->variant ? r->v->variant : "";
    c[C_STATUS] = r->status == ST_RUNNING ? "interrupted" : status_names[r->status];
    c[C_MESSAGE] = r->message ? r->message : "";
    if (r->build >= 0)
        c[C_BUILD] = sw->builds[r->build].key;
    const Spec *spec = r->v->spec;
    if (!spec)
        return;
    FeReport rep;
    fe_report_compute(a, spec, &rep);
    int64_t n = r->total_steps, ws = r->warm_start < n ? r->warm_start : n;
    c[C_PARAMS] = arena_sprintf(a, "%" PRId64, rep.total);
    if (ws > 0)
        c[C_TRAIN_FULL] = c[C_PARAMS];
    if (rep.has_relora)
        c[C_TRAIN_RELORA] = arena_sprintf(a, "%" PRId64, rep.trainable_relora);
    double flops = rep.has_relora ? ((double)ws * (double)rep.flops_full + (double)(n - ws) * (double)rep.flops_relora) /
                                        (double)n
                                  : (double)rep.flops_full;
    c[C_FLOPS] = arena_sprintf(a, "%.0f", flops);
    Summary s = run_summary(r);
    c[C_STEPS] = arena_sprintf(a, "%" PRId64, s.steps);
    c[C_TOKS] = num(a, "%.0f", s.tokens_per_s);
    c[C_RSS] = r->rss_kb > 0 ? arena_sprintf(a, "%.1f", (double)r->rss_kb / 1024.0) : "";
    c[C_TRAIN_LOSS] = num(a, "%.4f", s.train_loss);
    c[C_VAL_LOSS] = num(a, "%.4f", s.val_loss);
    c[C_PPL] = num(a, "%.3f", exp(s.val_loss));
    if (spec->train.data.kind == SPEC_DATA_TEXT)
        c[C_BPB] = num(a, "%.4f", s.val_loss / log(2.0));
    c[C_WALL] = r->wall_s > 0 ? arena_sprintf(a, "%.1f", r->wall_s) : "";
}

static void csv_cell(FILE *f, const char *s, bool first)
{
    if (!first)
        fputc(',', f);
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
    }
    fputc('"', f);
}

static void md_cell(FILE *f, const char *s)
{
    fputs(" ", f);
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
    fputs(" |", f);
}

static bool write_tables(Sweep *sw)
{
    const char **axes;
    int n_axes = axis_columns(sw, &axes);
    char *csv = NULL, *md = NULL;
    size_t n_csv = 0, n_md = 0;
    FILE *fc = open_memstream(&csv, &n_csv), *fm = open_memstream(&md, &n_md);
    if (!fc || !fm) {
        if (fc)
            fclose(fc);
        if (fm)
            fclose(fm);
        free(csv);
        free(md);
        return false;
    }
    /* header: name, sweep, variant, the axes, then the measured columns */
    fprintf(fm, "Spec `%s`; losses in nats per token; train loss: the mean of the last %d steps; val: at the last "
                "step.\n\n|",
            sw->o->spec_path, TRAIN_LOSS_STEPS);
    for (int i = 0; i < 3 + n_axes + (C_COUNT - 3); i++) {
        const char *h = i < 3 ? column_names[i] : i < 3 + n_axes ? axes[i - 3] : column_names[i - n_axes];
        csv_cell(fc, h, i == 0);
        md_cell(fm, h);
    }
    fputs("\n", fc);
    fputs("\n|", fm);
    for (int i = 0; i < C_COUNT + n_axes; i++) {
        int c = i < 3 + n_axes ? -1 : i - n_axes; /* numbers right-aligned */
        fputs(c >= C_STEPS && c <= C_WALL ? "--:|" : "---|", fm);
    }
    fputs("\n", fm);
    for (int i = 0; i < sw->n_runs; i++) {
        const Run *r = &sw->runs[i];
        const char *c[C_COUNT];
        row_cells(sw, r, c);
        fputs("|", fm);
        for (int j = 0; j < C_COUNT + n_axes; j++) {
            const char *s = j < 3 ? c[j] : j < 3 + n_axes ? axis_value(r->v, axes[j - 3]) : c[j - n_axes];
            csv_cell(fc, s, j == 0);
            md_cell(fm, s);
        }
        fputs("\n", fc);
        fputs("\n", fm);
    }
    fclose(fc);
    fclose(fm);
    const char *p_csv = arena_sprintf(sw->a, "%s/results.csv", sw->o->out_dir);
    const char *p_md = arena_sprintf(sw->a, "%s/results.md", sw->o->out_dir);
    bool ok = write_atomic(p_csv, csv, n_csv, sw->err) && write_atomic(p_md, md, n_md, sw->err);
    free(csv);
    free(md);
    return ok;
}

/* s in gnuplot single quotes ('' stands for '). */
static const char *gp_quote(Arena *a, const char *s)
{
    size_t n = strlen(s), k = 0;
    char *q = arena_alloc(a, 2 * n + 3);
    q[k++] = '\'';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'')
            q[k++] = '\'';
        q[k++] = s[i] == '\n' ? ' ' : s[i];
    }
    q[k++] = '\'';
    return q;
}

/* Draws the validation loss of the runs of `sweep` (NULL: all) against tokens seen
 * into svg with gnuplot. Returns false (after a message) when gnuplot is missing or
 * failed; true also when no run has an evaluation yet (nothing is drawn then). */
static bool plot(Sweep *sw, const char *sweep, const char *svg, const char *stem)
{
    Arena *a = sw->a;
    const char *pdir = arena_sprintf(a, "%s/plot", sw->o->out_dir);
    if (!mkdir_p(pdir, sw->err))
        return false;
    const char *dat = arena_sprintf(a, "%s/%s.dat", pdir, stem), *gp = arena_sprintf(a, "%s/%s.gp", pdir, stem);
    FILE *fd = fopen(dat, "w");
    if (!fd) {
        fprintf(sw->err, "relorac sweep: cannot write %s: %s\n", dat, strerror(errno));
        return false;
    }
    const char *plots = NULL;
    int block = 0;
    for (int i = 0; i < sw->n_runs; i++) {
        const Run *r = &sw->runs[i];
        if (!r->v->spec || (sweep && strcmp(r->v->sweep, sweep)))
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/metrics.jsonl", r->dir);
        int n;
        Point *p = metrics_read(path, &n);
        int k = 0;
        for (int j = 0; j < n; j++)
            if (isfinite(p[j].val)) {
                if (k++ == 0)
                    fprintf(fd, "%s# %s\n", block ? "\n\n" : "", r->v->name);
                fprintf(fd, "%" PRId64 " %.9g\n", (p[j].step + 1) * r->tokens_per_step, p[j].val);
            }
        free(p);
        if (k == 0)
            continue;
        /* gnuplot cycles 8 colours; past 8 curves, the dash pattern tells them apart */
        plots = arena_sprintf(a,
                              "%s%s'%s' index %d using 1:2 with linespoints linecolor %d dashtype %d pointtype 7 "
                              "pointsize 0.5 title %s",
                              plots ? plots : "", plots ? ", \\\n     " : "", dat, block, block % 8 + 1,
                              block / 8 % 5 + 1, gp_quote(a, r->v->name));
        block++;
    }
    fclose(fd);
    if (!plots)
        return true;
    FILE *fg = fopen(gp, "w");
    if (!fg) {
        fprintf(sw->err, "relorac sweep: cannot write %s: %s\n", gp, strerror(errno));
        return false;
    }
    fprintf(fg,
            "# drawn by relorac sweep; run `gnuplot %s` to draw it again\n"
            "set terminal svg size 1200,700 dynamic noenhanced font 'sans,12' background '#ffffff'\n"
            "set output %s\n"
            "set title %s\n"
            "set xlabel 'tokens seen'\n"
            "set ylabel 'validation loss (nats per token)'\n"
            "set grid\n"
            "set key outside right top\n"
            "set format x '%%.2s%%c'\n"
            "plot %s\n",
            gp, gp_quote(a, svg),
            gp_quote(a, arena_sprintf(a, "validation loss: %s%s%s", sw->o->spec_path, sweep ? ", sweep " : "",
                                      sweep ? sweep : "")),
            plots);
    fclose(fg);
    const char *log = arena_sprintf(a, "%s/gnuplot.log", pdir);
    fflush(NULL);
    int pipefd[2]; /* close-on-exec: it closes unread when exec works, carries errno when not */
    if (pipe(pipefd) != 0 || fcntl(pipefd[1], F_SETFD, FD_CLOEXEC) != 0) {
        fprintf(sw->err, "relorac sweep: cannot start gnuplot: %s\n", strerror(errno));
        return false;
    }
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        child_setup(log, parent);
        execlp("gnuplot", "gnuplot", gp, (char *)NULL);
        int e = errno;
        if (write(pipefd[1], &e, sizeof e) < 0)
            _exit(126);
        _exit(127);
    }
    close(pipefd[1]);
    int exec_errno = 0;
    bool exec_failed = pid > 0 && read(pipefd[0], &exec_errno, sizeof exec_errno) == (ssize_t)sizeof exec_errno;
    close(pipefd[0]);
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (pid < 0 || exec_failed) {
        fprintf(sw->err,
                "relorac sweep: cannot run gnuplot (%s): install gnuplot-nox to get %s (its data and script are "
                "in %s)\n",
                strerror(pid < 0 ? errno : exec_errno), svg, pdir);
        return false;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(sw->err, "relorac sweep: gnuplot failed drawing %s (see %s)\n", svg, log);
        return false;
    }
    return true;
}

static bool write_plots(Sweep *sw)
{
    bool ok = true;
    const char *svg = arena_sprintf(sw->a, "%s/val_loss.svg", sw->o->out_dir);
    ok = plot(sw, NULL, svg, "val_loss") && ok;
    int n_sweeps = 0;
    for (int i = 0; i < sw->n_runs; i++)
        n_sweeps += i == 0 || strcmp(sw->runs[i].v->sweep, sw->runs[i - 1].v->sweep) != 0;
    for (int i = 0; n_sweeps > 1 && i < sw->n_runs; i++)
        if (i == 0 || strcmp(sw->runs[i].v->sweep, sw->runs[i - 1].v->sweep) != 0) {
            const char *name = sw->runs[i].v->sweep;
            const char *stem = arena_sprintf(sw->a, "val_loss-%s", name);
            ok = plot(sw, name, arena_sprintf(sw->a, "%s/%s.svg", sw->o->out_dir, stem), stem) && ok;
        }
    return ok;
}

/* ---- the command ------------------------------------------------------------------------- */

static void list(Sweep *sw)
{
    for (int i = 0; i < sw->n_runs; i++) {
        const Run *r = &sw->runs[i];
        if (!r->v->spec || r->build < 0) {
            fprintf(sw->out, "%-40s error: %s\n", r->v->name, r->message ? r->message : "");
            continue;
        }
        FeReport rep;
        fe_report_compute(sw->a, r->v->spec, &rep);
        Status st = ST_PENDING;
        bool same = false;
        Run copy = *r;
        bool has_state = state_read(sw, &copy, &st, &same) && same;
        fprintf(sw->out, "%-40s build %.8s  params %11" PRId64 "  relora trainable %11" PRId64 "  flops/token %13" PRId64
                         "  %s\n",
                r->v->name, sw->builds[r->build].key, rep.total, rep.has_relora ? rep.trainable_relora : rep.total,
                rep.has_relora ? rep.flops_relora : rep.flops_full, has_state ? status_names[st] : "not run");
    }
    int reused = 0;
    for (int i = 0; i < sw->n_builds; i++)
        reused += sw->builds[i].is_reused;
    fprintf(sw->out, "%d variant%s, %d build%s (%d already built in %s)\n", sw->n_runs, sw->n_runs == 1 ? "" : "s",
            sw->n_builds, sw->n_builds == 1 ? "" : "s", reused, sw->o->out_dir);
}

static void free_builds(Sweep *sw)
{
    for (int i = 0; i < sw->n_builds; i++) {
        free(sw->builds[i].text);
        arena_fini(&sw->builds[i].arena);
    }
}

int sweep_run(Arena *a, const FeVariant *vars, int n, const SweepRunOptions *o)
{
    Sweep sw = {.a = a, .o = o, .out = o->out, .err = o->err};
    if (!o->is_list && !mkdir_p(o->out_dir, o->err))
        return 2;
    /* One sweep at a time per directory: two would run the same variants twice. */
    int lock = -1;
    if (!o->is_list) {
        const char *lp = arena_sprintf(a, "%s/.lock", o->out_dir);
        lock = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0) {
            fprintf(o->err, "relorac sweep: %s is in use by another relorac sweep (%s)\n", o->out_dir,
                    lock < 0 ? strerror(errno) : "locked");
            if (lock >= 0)
                close(lock);
            return 2;
        }
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = o->threads > 0 ? o->threads : ncpu > 0 ? (int)ncpu : 1;
    sw.threads_per_job = threads / o->jobs > 0 ? threads / o->jobs : 1;
    if (!prepare(&sw, vars, n)) {
        free_builds(&sw);
        if (lock >= 0)
            close(lock);
        return 2;
    }
    if (o->is_list) {
        list(&sw);
        free_builds(&sw);
        return 0;
    }
    int n_finished = 0, n_reused = 0, n_to_build = 0;
    for (int i = 0; i < sw.n_runs; i++)
        n_finished += sw.runs[i].status == ST_DONE || sw.runs[i].status == ST_DIVERGED;
    for (int i = 0; i < sw.n_builds; i++) {
        n_reused += sw.builds[i].is_reused;
        n_to_build += sw.builds[i].state == B_NEEDED && sw.builds[i].n_variants > 0;
    }
    say(&sw, "sweep: %d variant%s, %d build%s (%d to compile, %d already built); %d finished before; %d job%s x %d "
             "thread%s; results in %s",
        sw.n_runs, sw.n_runs == 1 ? "" : "s", sw.n_builds, sw.n_builds == 1 ? "" : "s", n_to_build, n_reused,
        n_finished, o->jobs, o->jobs == 1 ? "" : "s", sw.threads_per_job, sw.threads_per_job == 1 ? "" : "s",
        o->out_dir);
    for (int i = 0; i < sw.n_runs; i++)
        if (!sw.runs[i].v->spec || sw.runs[i].build < 0)
            say(&sw, "[%d/%d] %s: failed: %s", sw.runs[i].index, sw.n_runs, sw.runs[i].v->name, sw.runs[i].message);
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    n_signals = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int seen_signals = 0;
    for (;;) {
        reap(&sw);
        if (n_signals != seen_signals) {
            seen_signals = n_signals;
            sw.is_stopping = true;
            status_clear(&sw);
            if (seen_signals == 1)
                say(&sw, "sweep: stopping: the running variants finish their step and write a checkpoint (again to "
                         "kill them)");
            signal_children(&sw, seen_signals == 1 ? SIGTERM : SIGKILL);
        }
        if (sw.tables_stale) { /* a long sweep's tables are current as it goes */
            write_tables(&sw);
            sw.tables_stale = false;
        }
        bool more = !sw.is_stopping && start_work(&sw);
        if (sw.n_running == 0 && !more)
            break;
        poll_progress(&sw);
        sleep_ms(100);
    }
    status_clear(&sw);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    bool wrote = write_tables(&sw);
    write_plots(&sw); /* a missing gnuplot is reported; the tables stand */
    int counts[6] = {0};
    for (int i = 0; i < sw.n_runs; i++)
        counts[sw.runs[i].status]++;
    say(&sw, "sweep: %d done, %d diverged, %d failed, %d not finished; %s/results.md, results.csv, val_loss.svg",
        counts[ST_DONE], counts[ST_DIVERGED], counts[ST_FAILED],
        counts[ST_PENDING] + counts[ST_RUNNING] + counts[ST_INTERRUPTED], o->out_dir);
    free_builds(&sw);
    close(lock);
    if (sw.is_stopping)
        return 128 + (last_signal ? last_signal : SIGINT);
    if (counts[ST_FAILED] > 0)
        return 1;
    return wrote ? 0 : 2;
}
