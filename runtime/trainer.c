/* The trainer CLI linked into every generated binary: options, data, the step loop with
 * evaluation, metrics and progress, checkpoints, resume, signals and sampling. It returns
 * exit codes instead of exiting, so tests can drive it in-process.
 * Exit codes: 0 ok, 1 training diverged (loss not finite), 2 usage or I/O error,
 * 128 + signal after SIGINT/SIGTERM (a checkpoint was written first). */
#include "rt_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The one mutable global: a signal handler can only reach static storage. It holds the
 * signal number of a pending SIGINT/SIGTERM, 0 when none. */
static volatile sig_atomic_t pending_signal;

static void on_signal(int sig)
{
    pending_signal = sig;
}

/* Schedule overrides: each trainer option sets one RtSchedule field (docs/runtime.md "The
 * schedule"); step positions also take a percentage of the total. */
enum { SO_STEPS, SO_WARMUP, SO_WARM_START, SO_RESET_EVERY, SO_RESTART_WARMUP, SO_LR, SO_RELORA_LR,
       SO_MIN_LR_RATIO, SO_PRUNE, SO_COUNT };
static const struct {
    const char *name;
    bool is_count, percent_ok;
    const char *help;
} sched_opts[SO_COUNT] = {
    [SO_STEPS] = {"--total-steps", true, false, "the schedule's horizon: the cosine ends there"},
    [SO_WARMUP] = {"--warmup", true, true, "steps of linear warmup from 0 (N or P%)"},
    [SO_WARM_START] = {"--warm-start", true, true, "full-rank steps before the switch to ReLoRA (N or P%)"},
    [SO_RESET_EVERY] = {"--reset-every", true, true, "steps between ReLoRA merges (N or P%)"},
    [SO_RESTART_WARMUP] = {"--restart-warmup", true, true, "LR ramp after the switch and each merge (N or P%)"},
    [SO_LR] = {"--lr", false, false, "peak learning rate of the full-rank phase"},
    [SO_RELORA_LR] = {"--relora-lr", false, false, "peak learning rate of the ReLoRA phase"},
    [SO_MIN_LR_RATIO] = {"--min-lr-ratio", false, false, "the cosine's floor, a fraction of the peak"},
    [SO_PRUNE] = {"--prune", false, false, "fraction of the adapters' Adam moments zeroed at a merge"},
};

typedef struct Options {
    const char *data, *val_data, *out, *resume, *log, *sample;
    int64_t steps, eval_every, eval_batches, checkpoint_every, log_every, tokens;
    uint64_t seed;
    bool seed_given, data_given, val_given, kind_given, quiet, help;
    int threads, data_kind;
    float temperature;
    bool sched_given[SO_COUNT], sched_pct[SO_COUNT];
    double sched_val[SO_COUNT];
} Options;

typedef struct Trainer {
    const RtModel *m;
    const RtHooks *hooks;
    FILE *out, *err;
    const char *prog;
    Options o;
    RtCtx *ctx;
    RtData train_data, val_data;
    RtSplit train, val;
    bool has_val;
    FILE *log;
    const char *out_dir;
    RtRunInfo run;   /* saved with each checkpoint */
    RtRunInfo saved; /* read from the checkpoint being resumed */
    RtSchedule sched; /* the resolved schedule of this run */
    int64_t saved_step; /* the step of the checkpoint on disk, -1 when none was written */
    bool tty;
} Trainer;

/* ---- options ---- */

static const char *data_kind_name(int kind)
{
    return kind == RT_DATA_TOKENS ? "tokens" : "text";
}

static void print_help(Trainer *tr)
{
    const RtModel *m = tr->m;
    const RtTrainDefaults *d = &m->defaults;
    FILE *f = tr->out;
    fprintf(f, "usage: %s [options]\n", tr->prog);
    fprintf(f, "Trains model '%s' (model %s): vocab %d, batch %d, seq_len %d; ReLoRA training.\n\n",
            m->name, m->model_hash, m->vocab, m->batch, m->seq_len);
    fprintf(f, "  --data PATH            training data (default: %s)\n",
            d->data_path ? d->data_path : "none, required");
    fprintf(f, "  --val-data PATH        validation data (default: %s)\n",
            d->val_path ? d->val_path : "the last part of --data");
    fprintf(f, "  --data-kind KIND       text (bytes are tokens) or tokens (llm.c .bin) "
               "(default: %s)\n",
            data_kind_name(d->data_kind));
    fprintf(f, "  --steps N              stop after step N of the schedule (default: its horizon, %" PRId64 ")\n",
            m->schedule.steps);
    char desc[512];
    rt_schedule_describe(&m->schedule, desc, sizeof desc);
    fprintf(f, "  schedule (default %s):\n", desc);
    for (int i = 0; i < SO_COUNT; i++)
        fprintf(f, "  %-14s V       %s\n", sched_opts[i].name, sched_opts[i].help);
    fprintf(f, "  --out DIR              checkpoint directory (default: %s)\n",
            d->checkpoint_dir ? d->checkpoint_dir : "checkpoints");
    fprintf(f, "  --resume DIR           continue from the checkpoint in DIR\n");
    fprintf(f, "  --eval-every N         validate every N steps, 0 = at the end (default: %" PRId64
               ")\n",
            d->eval_every);
    fprintf(f, "  --eval-batches N       validation batches per evaluation (default: %" PRId64 ")\n",
            d->eval_batches);
    fprintf(f, "  --checkpoint-every N   checkpoint every N steps, 0 = at the end (default: %" PRId64
               ")\n",
            d->checkpoint_every);
    fprintf(f, "  --log-every N          progress line every N steps when not on a terminal "
               "(default: %" PRId64 ")\n",
            d->log_every);
    if (d->threads > 0)
        fprintf(f, "  --threads N            worker threads (default: %d)\n", d->threads);
    else
        fprintf(f, "  --threads N            worker threads (default: all CPUs)\n");
    fprintf(f, "  --seed N               random seed (default: %" PRIu64 ")\n", d->seed);
    fprintf(f, "  --log FILE             metrics as JSON lines (default: DIR/metrics.jsonl)\n");
    fprintf(f, "  --sample TEXT          generate from TEXT with the checkpoint in --resume/--out\n"
               "                         (or the initial model); for token data TEXT is token ids\n");
    fprintf(f, "  --tokens N             tokens to generate (default: 200)\n");
    fprintf(f, "  --temperature T        sampling temperature, 0 = greedy (default: 0.8)\n");
    fprintf(f, "  --quiet                no progress output\n");
    fprintf(f, "  --help                 this text\n");
    fprintf(f, "\nSIGINT/SIGTERM: the current step finishes, a checkpoint is written, exit "
               "130/143.\n");
    rt_gemm_report(f, NULL, tr->prog, NULL);
}

static bool parse_int(const char *s, int64_t min, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < min)
        return false;
    *out = v;
    return true;
}

static int64_t sched_option(const char *name)
{
    for (int i = 0; i < SO_COUNT; i++)
        if (strcmp(name, sched_opts[i].name) == 0)
            return i;
    return -1;
}

/* N (a count >= 0), P% where allowed (0 <= P <= 100), or a finite number. */
static bool parse_sched_value(const char *val, int k, Options *o)
{
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    bool pct = *end == '%' && end[1] == '\0';
    if (!*val || isspace((unsigned char)*val) || errno || !isfinite(v) || (*end && !pct))
        return false;
    if (pct && (!sched_opts[k].percent_ok || v < 0 || v > 100))
        return false;
    if (sched_opts[k].is_count && !pct && (v < 0 || v != floor(v) || v > 1e15))
        return false;
    o->sched_given[k] = true;
    o->sched_pct[k] = pct;
    o->sched_val[k] = v;
    return true;
}

/* s with the schedule options of o applied, percentages resolved against the total. */
static void apply_sched_options(const Options *o, RtSchedule *s)
{
    if (o->sched_given[SO_STEPS])
        s->steps = (int64_t)o->sched_val[SO_STEPS];
    struct {
        int k;
        int64_t *count;
        double *pct;
    } pos[] = {{SO_WARMUP, &s->warmup, &s->warmup_pct},
               {SO_WARM_START, &s->warm_start, &s->warm_start_pct},
               {SO_RESET_EVERY, &s->reset_every, &s->reset_every_pct},
               {SO_RESTART_WARMUP, &s->restart_warmup, &s->restart_warmup_pct}};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
        int k = pos[i].k;
        if (!o->sched_given[k])
            continue;
        *pos[i].pct = o->sched_pct[k] ? o->sched_val[k] : -1;
        if (!o->sched_pct[k])
            *pos[i].count = (int64_t)o->sched_val[k];
    }
    if (o->sched_given[SO_LR])
        s->lr = o->sched_val[SO_LR];
    if (o->sched_given[SO_RELORA_LR])
        s->relora_lr = o->sched_val[SO_RELORA_LR];
    if (o->sched_given[SO_MIN_LR_RATIO])
        s->min_lr_ratio = o->sched_val[SO_MIN_LR_RATIO];
    if (o->sched_given[SO_PRUNE])
        s->prune = o->sched_val[SO_PRUNE];
    rt_schedule_resolve(s);
}

static bool usage_error(Trainer *tr, const char *fmt, const char *a, const char *b)
{
    fprintf(tr->err, "%s: error: ", tr->prog);
    fprintf(tr->err, fmt, a, b);
    fprintf(tr->err, " (see --help)\n");
    return false;
}

static bool parse_options(Trainer *tr, int argc, char **argv)
{
    const RtTrainDefaults *d = &tr->m->defaults;
    Options *o = &tr->o;
    *o = (Options){.data = d->data_path, .val_data = d->val_path, .steps = -1,
                   .eval_every = d->eval_every, .eval_batches = d->eval_batches,
                   .checkpoint_every = d->checkpoint_every,
                   .log_every = d->log_every > 0 ? d->log_every : 10, .tokens = 200,
                   .seed = d->seed, .threads = d->threads, .data_kind = d->data_kind,
                   .temperature = 0.8f};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        char name[64];
        if (strncmp(arg, "--", 2) != 0)
            return usage_error(tr, "unexpected argument '%s'%s", arg, "");
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (len >= sizeof name)
            return usage_error(tr, "unknown option '%s'%s", arg, "");
        memcpy(name, arg, len);
        name[len] = '\0';
        if (strcmp(name, "--help") == 0 || strcmp(name, "--quiet") == 0) {
            if (eq)
                return usage_error(tr, "option '%s' takes no value%s", name, "");
            if (name[2] == 'h')
                o->help = true;
            else
                o->quiet = true;
            continue;
        }
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else
            return usage_error(tr, "option '%s' needs a value%s", name, "");
        int64_t v = 0;
        bool ok = true;
        if (strcmp(name, "--data") == 0) {
            o->data = val;
            o->data_given = true;
        } else if (strcmp(name, "--val-data") == 0) {
            o->val_data = val;
            o->val_given = true;
        }
        else if (strcmp(name, "--out") == 0)
            o->out = val;
        else if (strcmp(name, "--resume") == 0)
            o->resume = val;
        else if (strcmp(name, "--log") == 0)
            o->log = val;
        else if (strcmp(name, "--sample") == 0)
            o->sample = val;
        else if (strcmp(name, "--data-kind") == 0) {
            o->kind_given = true;
            if (strcmp(val, "text") == 0)
                o->data_kind = RT_DATA_TEXT;
            else if (strcmp(val, "tokens") == 0)
                o->data_kind = RT_DATA_TOKENS;
            else
                return usage_error(tr, "--data-kind must be 'text' or 'tokens' (got '%s')%s", val,
                                   "");
        } else if (strcmp(name, "--steps") == 0)
            ok = parse_int(val, 0, &o->steps);
        else if (strcmp(name, "--eval-every") == 0)
            ok = parse_int(val, 0, &o->eval_every);
        else if (strcmp(name, "--eval-batches") == 0)
            ok = parse_int(val, 1, &o->eval_batches);
        else if (strcmp(name, "--checkpoint-every") == 0)
            ok = parse_int(val, 0, &o->checkpoint_every);
        else if (strcmp(name, "--log-every") == 0)
            ok = parse_int(val, 1, &o->log_every);
        else if (strcmp(name, "--tokens") == 0)
            ok = parse_int(val, 0, &o->tokens);
        else if (strcmp(name, "--threads") == 0) {
            ok = parse_int(val, 1, &v) && v <= 1024;
            o->threads = (int)v;
        } else if (strcmp(name, "--seed") == 0) {
            char *end;
            errno = 0;
            o->seed = strtoull(val, &end, 10);
            ok = *val && *val != '-' && !*end && !errno;
            o->seed_given = true;
        } else if ((v = sched_option(name)) >= 0) {
            ok = parse_sched_value(val, (int)v, o);
        } else if (strcmp(name, "--temperature") == 0) {
            char *end;
            double t = strtod(val, &end);
            ok = *val && !*end && t >= 0 && t < 1e6;
            o->temperature = (float)t;
        } else
            return usage_error(tr, "unknown option '%s'%s", name, "");
        if (!ok)
            return usage_error(tr, "bad value '%s' for %s", val, name);
    }
    return true;
}

/* ---- output ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void clear_bar(Trainer *tr)
{
    if (tr->tty && !tr->o.quiet)
        fputs("\r\033[K", tr->out);
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

static void json_float(RtBuf *b, const char *key, double v)
{
    if (isfinite(v))
        rt_buf_printf(b, ",\"%s\":%.9g", key, v);
    else
        rt_buf_printf(b, ",\"%s\":null", key);
}

/* Progress for the step that just finished (done = steps completed). */
static void report_progress(Trainer *tr, int64_t done, const RtStepStats *st, double tok_s,
                            double eta)
{
    if (tr->o.quiet)
        return;
    char eta_s[32];
    fmt_duration(eta_s, sizeof eta_s, eta);
    if (tr->tty) {
        int width = 20, fill = (int)(width * done / (tr->o.steps ? tr->o.steps : 1));
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(tr->out,
                "\r[%s] step %" PRId64 "/%" PRId64 " | loss %.4f | lr %.2e | %.0f tok/s | ETA %s"
                "\033[K",
                bar, done, tr->o.steps, st->loss, st->lr, tok_s, eta_s);
        fflush(tr->out);
    } else if (done % tr->o.log_every == 0 || done == tr->o.steps) {
        fprintf(tr->out,
                "step %" PRId64 "/%" PRId64 " | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s"
                " | ETA %s\n",
                done, tr->o.steps, st->loss, st->lr, st->grad_norm, tok_s, eta_s);
        fflush(tr->out);
    }
}

static void report_line(Trainer *tr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report_line(Trainer *tr, const char *fmt, ...)
{
    if (tr->o.quiet)
        return;
    clear_bar(tr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(tr->out, fmt, ap);
    va_end(ap);
    fputc('\n', tr->out);
    fflush(tr->out);
}

static void report_error(Trainer *tr, const RtError *e)
{
    clear_bar(tr);
    fprintf(tr->err, "%s: error: %s\n", tr->prog, e->msg);
    fflush(tr->err);
}

/* ---- training ---- */

/* Absolute form of an existing path for the checkpoint metadata ("" if unknown). */
static void remember_path(char *dst, size_t cap, const char *path)
{
    char *abs = realpath(path, NULL);
    snprintf(dst, cap, "%s", abs ? abs : path);
    free(abs);
}

static bool open_data(Trainer *tr, RtError *e)
{
    const RtModel *m = tr->m;
    int64_t need = (int64_t)m->seq_len + 1;
    if (!tr->o.data)
        return rt_err(e, RT_ERR_USAGE, "no training data: pass --data PATH");
    if (!rt_data_open(&tr->train_data, tr->o.data, tr->o.data_kind, m->vocab, need, e))
        return false;
    tr->train = (RtSplit){&tr->train_data, 0, tr->train_data.n};
    tr->run.data_kind = tr->o.data_kind;
    remember_path(tr->run.data, sizeof tr->run.data, tr->o.data);
    if (tr->o.val_data) {
        remember_path(tr->run.val_data, sizeof tr->run.val_data, tr->o.val_data);
        if (!rt_data_open(&tr->val_data, tr->o.val_data, tr->o.data_kind, m->vocab, need, e))
            return false;
        tr->val = (RtSplit){&tr->val_data, 0, tr->val_data.n};
        tr->has_val = true;
        return true;
    }
    float frac = m->defaults.val_fraction;
    if (frac <= 0)
        return true;
    int64_t n = tr->train_data.n, n_val = (int64_t)((double)n * frac);
    if (n_val < need || n - n_val < need)
        return rt_err(e, RT_ERR_EMPTY,
                      "%s: too short to split: %lld tokens give %lld for validation (the last "
                      "%.0f%%) and %lld for training, each needs at least %lld; pass --val-data",
                      tr->o.data, (long long)n, (long long)n_val, frac * 100.0,
                      (long long)(n - n_val), (long long)need);
    tr->train = (RtSplit){&tr->train_data, 0, n - n_val};
    tr->val = (RtSplit){&tr->train_data, n - n_val, n_val};
    tr->has_val = true;
    return true;
}

/* Mean validation loss over a fixed set of batches (the same at every evaluation). */
static double evaluate(Trainer *tr, int32_t *x, int32_t *y)
{
    double sum = 0;
    for (int64_t i = 0; i < tr->o.eval_batches; i++) {
        rt_batch_fill(tr->val, tr->m->batch, tr->m->seq_len, tr->ctx->seed, RT_STREAM_VAL_BATCH,
                      (uint64_t)i, x, y);
        sum += rt_eval_loss(tr->ctx, x, y);
    }
    return sum / (double)tr->o.eval_batches;
}

static void log_metrics(Trainer *tr, int64_t step, const RtStepStats *st, double tok_s,
                        double val_loss)
{
    if (!tr->log)
        return;
    RtBuf b = {0};
    rt_buf_printf(&b, "{\"step\":%" PRId64, step);
    json_float(&b, "loss", st->loss);
    json_float(&b, "lr", st->lr);
    json_float(&b, "grad_norm", st->grad_norm);
    json_float(&b, "tokens_per_s", tok_s);
    rt_buf_add(&b, ",\"events\":[", 11);
    bool first = true;
    if (st->events & RT_EV_WARM_SWITCH) {
        rt_buf_add(&b, "\"warm_switch\"", 13);
        first = false;
    }
    if (st->events & RT_EV_RESET) {
        rt_buf_printf(&b, "%s\"reset\"", first ? "" : ",");
        first = false;
    }
    if (st->events & RT_EV_DIVERGED)
        rt_buf_printf(&b, "%s\"diverged\"", first ? "" : ",");
    rt_buf_add(&b, "]", 1);
    if (st->events & RT_EV_RESET)
        json_float(&b, "pruned_fraction", st->pruned_fraction);
    if (!isnan(val_loss)) {
        json_float(&b, "val_loss", val_loss);
        json_float(&b, "val_ppl", exp(val_loss));
        if (tr->o.data_kind == RT_DATA_TEXT)
            json_float(&b, "val_bits_per_byte", val_loss / log(2.0));
    }
    rt_buf_add(&b, "}\n", 2);
    if (!b.oom) {
        fwrite(b.p, 1, b.len, tr->log);
        fflush(tr->log);
    }
    rt_buf_fini(&b);
}

static bool save(Trainer *tr, int64_t done, RtError *e)
{
    const RtIo *io = tr->hooks ? &tr->hooks->io : NULL;
    if (!rt_checkpoint_save(tr->ctx, tr->out_dir, done, &tr->run, io, e)) {
        size_t n = strlen(e->msg);
        snprintf(e->msg + n, sizeof e->msg - n, "; the previous checkpoint in %s is unchanged",
                 tr->out_dir);
        return false;
    }
    tr->saved_step = done;
    report_line(tr, "step %" PRId64 ": checkpoint written to %s", done, tr->out_dir);
    return true;
}

/* The first field in which two resolved schedules differ (by its option name), or NULL. */
static const char *schedule_diff(const RtSchedule *a, const RtSchedule *b)
{
    if (a->kind != b->kind)
        return "the schedule kind";
    if (a->steps != b->steps)
        return "total-steps";
    if (a->warmup != b->warmup)
        return "warmup";
    if (a->lr != b->lr)
        return "lr";
    if (a->min_lr_ratio != b->min_lr_ratio)
        return "min-lr-ratio";
    if (a->kind != RT_SCHED_RELORA)
        return NULL;
    if (a->warm_start != b->warm_start)
        return "warm-start";
    if (a->reset_every != b->reset_every)
        return "reset-every";
    if (a->restart_warmup != b->restart_warmup)
        return "restart-warmup";
    if (a->relora_lr != b->relora_lr)
        return "relora-lr";
    if (a->prune != b->prune)
        return "prune";
    return NULL;
}

/* %g, with NaN written as NaN whatever its sign bit */
static void fmt_number(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "NaN");
    else
        snprintf(buf, n, "%g", v);
}

/* A step whose loss or gradient norm is not finite: its update was not applied, and no
 * checkpoint is written, so the one on disk stays the last finite state. */
static void diverged(Trainer *tr, int64_t step, int res, const RtStepStats *st, RtError *e)
{
    bool loss = res == RT_STEP_LOSS_NONFINITE;
    char kept[1200];
    if (tr->saved_step >= 0)
        snprintf(kept, sizeof kept, "the checkpoint in %s (step %" PRId64 ") is the last finite state",
                 tr->out_dir, tr->saved_step);
    else
        snprintf(kept, sizeof kept, "no checkpoint was written in this run");
    char l[32], g[32];
    fmt_number(l, sizeof l, st->loss);
    fmt_number(g, sizeof g, st->grad_norm);
    rt_err(e, RT_ERR_USAGE,
           "training diverged at step %" PRId64 ": the %s is %s (loss %s, gradient norm %s, lr %g); "
           "stopped without applying that step's update; %s",
           step, loss ? "loss" : "gradient norm", isnan(loss ? st->loss : st->grad_norm) ? "NaN" : "infinite", l, g,
           (double)st->lr, kept);
}

static int train(Trainer *tr, RtError *e)
{
    const RtModel *m = tr->m;
    tr->out_dir = tr->o.out ? tr->o.out
                  : tr->o.resume ? tr->o.resume
                  : m->defaults.checkpoint_dir ? m->defaults.checkpoint_dir
                                               : "checkpoints";
    if (!rt_ctx_create(&tr->ctx, m, tr->o.threads, tr->o.seed, e))
        return 2;
    rt_gemm_report(tr->o.quiet ? NULL : tr->out, tr->err, tr->prog, tr->ctx);
    int64_t start = 0;
    if (tr->o.resume) {
        uint64_t seed;
        RtRunInfo *saved = &tr->saved;
        if (!rt_checkpoint_load(tr->ctx, tr->o.resume, &start, &seed, saved, e))
            return 2;
        if (tr->o.seed_given && seed != tr->o.seed)
            fprintf(tr->err, "%s: note: --seed %" PRIu64 " ignored; resuming with the "
                    "checkpoint's seed %" PRIu64 "\n", tr->prog, tr->o.seed, seed);
        tr->ctx->seed = seed;
        /* continue on the run's data unless the command line names other data */
        if (!tr->o.data_given && saved->data[0]) {
            tr->o.data = saved->data;
            if (!tr->o.val_given)
                tr->o.val_data = saved->val_data[0] ? saved->val_data : NULL;
            if (!tr->o.kind_given)
                tr->o.data_kind = saved->data_kind;
        }
        if (!open_data(tr, e))
            return 2;
        RtSchedule want = saved->schedule;
        apply_sched_options(&tr->o, &want);
        const char *field = schedule_diff(&want, &saved->schedule);
        if (field) {
            rt_err(e, RT_ERR_USAGE, "%s: the checkpoint was trained with another schedule (%s differs); a "
                   "resumed run continues its own schedule, so leave %s out or start a fresh run",
                   tr->o.resume, field, field);
            return 2;
        }
        field = schedule_diff(&tr->sched, &saved->schedule);
        if (field)
            fprintf(tr->err, "%s: note: the checkpoint's schedule differs from this trainer's default in "
                    "%s; continuing the checkpoint's schedule\n", tr->prog, field);
        tr->sched = saved->schedule;
        report_line(tr, "resumed from %s at step %" PRId64, tr->o.resume, start);
    } else {
        if (!open_data(tr, e))
            return 2;
        rt_init(tr->ctx);
    }
    tr->saved_step = tr->o.resume ? start : -1;
    if (!rt_schedule_check(&tr->sched, m, e))
        return 2;
    tr->run.schedule = tr->sched;
    char desc[512];
    rt_schedule_describe(&tr->sched, desc, sizeof desc);
    report_line(tr, "schedule %s", desc);
    if (!rt_mkdir_p(tr->out_dir, e))
        return 2;
    char *log_path = NULL;
    if (!tr->o.log) {
        size_t n = strlen(tr->out_dir) + 16;
        log_path = malloc(n);
        if (log_path)
            snprintf(log_path, n, "%s/metrics.jsonl", tr->out_dir);
    }
    const char *lp = tr->o.log ? tr->o.log : log_path;
    tr->log = lp ? fopen(lp, tr->o.resume ? "a" : "w") : NULL;
    if (!tr->log) {
        rt_err(e, RT_ERR_IO, "%s: cannot open metrics log: %s", lp ? lp : "?", strerror(errno));
        free(log_path);
        return 2;
    }
    free(log_path);
    if (tr->o.steps < 0)
        tr->o.steps = tr->sched.steps;
    if (tr->o.steps > tr->sched.steps) {
        rt_err(e, RT_ERR_USAGE, "--steps %" PRId64 " is past the schedule's horizon of %" PRId64
               " steps (the cosine ends there); train a longer schedule with --total-steps %" PRId64
               " or rebuild with -D train.steps=%" PRId64, tr->o.steps, tr->sched.steps, tr->o.steps,
               tr->o.steps);
        return 2;
    }
    if (start >= tr->o.steps) {
        report_line(tr, "checkpoint is at step %" PRId64 ", --steps is %" PRId64
                    "; nothing to do", start, tr->o.steps);
        return 0;
    }

    size_t n_tok = (size_t)m->batch * (size_t)m->seq_len;
    int32_t *x = malloc(n_tok * sizeof *x), *y = malloc(n_tok * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        rt_err(e, RT_ERR_NOMEM, "out of memory");
        return 2;
    }
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; /* a second signal kills at once; saved files stay whole */
    pending_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    int rc = 0;
    double t_start = now_s();
    for (int64_t step = start; step < tr->o.steps; step++) {
        rt_batch_fill(tr->train, m->batch, m->seq_len, tr->ctx->seed, RT_STREAM_TRAIN_BATCH,
                      (uint64_t)step, x, y);
        double t0 = now_s();
        RtStepStats st = {0};
        int res = rt_step(tr->ctx, &tr->sched, x, y, step, &st);
        double t1 = now_s(), tok_s = (double)n_tok / (t1 - t0 > 1e-9 ? t1 - t0 : 1e-9);
        int64_t done = step + 1;
        double eta = (t1 - t_start) / (double)(done - start) * (double)(tr->o.steps - done);
        if (res != RT_STEP_OK) {
            log_metrics(tr, step, &st, tok_s, NAN);
            diverged(tr, step, res, &st, e);
            rc = 1;
            break;
        }
        double val_loss = NAN;
        bool at_end = done == tr->o.steps;
        if (tr->has_val && ((tr->o.eval_every > 0 && done % tr->o.eval_every == 0) || at_end))
            val_loss = evaluate(tr, x, y);
        log_metrics(tr, step, &st, tok_s, val_loss);
        report_progress(tr, done, &st, tok_s, eta);
        if (st.events & RT_EV_WARM_SWITCH)
            report_line(tr, "step %" PRId64 ": warm start done, switched to ReLoRA adapters",
                        step);
        if (st.events & RT_EV_RESET)
            report_line(tr, "step %" PRId64 ": merged adapters, re-initialised, pruned %.3g%% "
                        "of moments", done, st.pruned_fraction * 100.0);
        if (!isnan(val_loss)) {
            if (tr->o.data_kind == RT_DATA_TEXT)
                report_line(tr, "step %" PRId64 ": val loss %.4f | ppl %.3f | %.4f bits/byte",
                            done, val_loss, exp(val_loss), val_loss / log(2.0));
            else
                report_line(tr, "step %" PRId64 ": val loss %.4f | ppl %.3f", done, val_loss,
                            exp(val_loss));
        }
        int sig = pending_signal;
        if (at_end || sig ||
            (tr->o.checkpoint_every > 0 && done % tr->o.checkpoint_every == 0)) {
            if (!save(tr, done, e)) {
                rc = 2;
                break;
            }
        }
        if (sig) {
            clear_bar(tr);
            fprintf(tr->err,
                    "%s: stopped by %s after step %" PRId64 "; checkpoint in %s\n"
                    "%s: resume with: %s --resume %s (plus your other options)\n",
                    tr->prog, sig == SIGINT ? "SIGINT" : "SIGTERM", done, tr->out_dir, tr->prog,
                    tr->prog, tr->out_dir);
            fflush(tr->err);
            rc = 128 + sig;
            break;
        }
    }
    if (rc == 0 && tr->tty && !tr->o.quiet)
        fputc('\n', tr->out);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(x);
    free(y);
    return rc;
}

/* ---- sampling ---- */

static int sample_token(const float *logits, int vocab, float temperature, float u)
{
    int best = 0;
    for (int i = 1; i < vocab; i++)
        if (logits[i] > logits[best])
            best = i;
    if (temperature <= 0)
        return best;
    double sum = 0, max = logits[best];
    for (int i = 0; i < vocab; i++)
        sum += exp((logits[i] - max) / temperature);
    double target = u * sum, acc = 0;
    for (int i = 0; i < vocab; i++) {
        acc += exp((logits[i] - max) / temperature);
        if (acc > target)
            return i;
    }
    return best; /* rounding left target just past the end */
}

/* Prompt to token ids: bytes for text models, whitespace-separated ids for token models. */
static int64_t encode_prompt(Trainer *tr, int32_t *ids, int64_t cap, RtError *e)
{
    const char *s = tr->o.sample;
    int64_t n = 0;
    if (tr->o.data_kind == RT_DATA_TEXT) {
        for (; *s && n < cap; s++, n++) {
            ids[n] = (unsigned char)*s;
            if (ids[n] >= tr->m->vocab)
                return rt_err(e, RT_ERR_USAGE, "prompt byte 0x%02x is >= vocab %d", ids[n],
                              tr->m->vocab), -1;
        }
        return n;
    }
    while (*s && n < cap) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v >= tr->m->vocab)
            return rt_err(e, RT_ERR_USAGE, "prompt must be token ids below %d, got '%s'",
                          tr->m->vocab, s), -1;
        ids[n++] = (int32_t)v;
        s = end;
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == ',')
            s++;
    }
    return n;
}

static int sample(Trainer *tr, RtError *e)
{
    const RtModel *m = tr->m;
    if (!rt_ctx_create(&tr->ctx, m, tr->o.threads, tr->o.seed, e))
        return 2;
    const char *dir = tr->o.resume ? tr->o.resume
                      : tr->o.out  ? tr->o.out
                      : m->defaults.checkpoint_dir ? m->defaults.checkpoint_dir
                                                   : "checkpoints";
    int64_t step = 0;
    uint64_t seed = tr->o.seed;
    char path[4096];
    snprintf(path, sizeof path, "%s/trainer.safetensors", dir);
    struct stat st;
    if (tr->o.resume || stat(path, &st) == 0) {
        if (!rt_checkpoint_load(tr->ctx, dir, &step, &seed, NULL, e))
            return 2;
        if (!tr->o.quiet)
            fprintf(tr->err, "%s: sampling from %s (step %" PRId64 ")\n", tr->prog, dir, step);
    } else {
        rt_init(tr->ctx);
        if (!tr->o.quiet)
            fprintf(tr->err, "%s: no checkpoint in %s; sampling from the initial model\n",
                    tr->prog, dir);
    }
    uint64_t sample_seed = tr->o.seed_given ? tr->o.seed : seed;
    int64_t cap = (int64_t)strlen(tr->o.sample) + tr->o.tokens + 1;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    int32_t *x = calloc((size_t)m->seq_len, sizeof *x);
    float *logits = malloc((size_t)m->vocab * sizeof *logits);
    int rc = 0;
    int64_t n = ids && x && logits ? encode_prompt(tr, ids, cap, e) : -2;
    if (n == -2)
        rc = (rt_err(e, RT_ERR_NOMEM, "out of memory"), 2);
    else if (n < 0)
        rc = 2;
    else if (n == 0)
        rc = (rt_err(e, RT_ERR_USAGE, "--sample needs a non-empty prompt"), 2);
    if (rc == 0) {
        for (int64_t i = 0; i < n; i++) {
            if (tr->o.data_kind == RT_DATA_TEXT)
                fputc(ids[i], tr->out);
            else
                fprintf(tr->out, "%s%d", i ? " " : "", ids[i]);
        }
        for (int64_t i = 0; i < tr->o.tokens; i++) {
            int64_t w = n < m->seq_len ? n : m->seq_len;
            memset(x, 0, (size_t)m->seq_len * sizeof *x);
            memcpy(x, ids + n - w, (size_t)w * sizeof *x);
            rt_logits(tr->ctx, x, w - 1, logits);
            float u = rt_rng_uniform(sample_seed, RT_STREAM_SAMPLE, (uint64_t)i);
            ids[n] = sample_token(logits, m->vocab, tr->o.temperature, u);
            if (tr->o.data_kind == RT_DATA_TEXT)
                fputc(ids[n], tr->out);
            else
                fprintf(tr->out, " %d", ids[n]);
            fflush(tr->out);
            n++;
        }
        fputc('\n', tr->out);
    }
    free(ids);
    free(x);
    free(logits);
    return rc;
}

int rt_main_hooked(int argc, char **argv, const RtModel *m, const RtHooks *hooks)
{
    Trainer tr = {.m = m, .hooks = hooks, .sched = m->schedule};
    tr.out = hooks && hooks->out ? hooks->out : stdout;
    tr.err = hooks && hooks->err ? hooks->err : stderr;
    tr.prog = argc > 0 && argv[0] ? argv[0] : "train";
    RtError e = {0};
    if (!rt_model_validate_program(m, &e)) {
        fprintf(tr.err, "%s: internal error: invalid model table: %s\n", tr.prog, e.msg);
        return 2;
    }
    if (!parse_options(&tr, argc, argv))
        return 2;
    if (tr.o.help) {
        print_help(&tr);
        return 0;
    }
    apply_sched_options(&tr.o, &tr.sched);
    int fd = fileno(tr.out);
    tr.tty = fd >= 0 && isatty(fd);
    int rc = tr.o.sample ? sample(&tr, &e) : train(&tr, &e);
    if (rc != 0 && rc < 128 && e.code != RT_OK)
        report_error(&tr, &e);
    fflush(tr.out);
    fflush(tr.err);
    if (tr.log)
        fclose(tr.log);
    rt_ctx_destroy(tr.ctx);
    rt_data_close(&tr.train_data);
    rt_data_close(&tr.val_data);
    return rc;
}

int rt_main(int argc, char **argv, const RtModel *m)
{
    return rt_main_hooked(argc, argv, m, NULL);
}
