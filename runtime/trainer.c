/* The trainer CLI linked into every generated binary: options, data, the step loop with
 * evaluation, metrics and progress, checkpoints, resume, signals and sampling. It returns
 * exit codes instead of exiting, so tests can drive it in-process.
 * The schedule is run-time data (docs/runtime.md "The schedule"): its options resolve
 * against the model's defaults, and runtime/step.c runs each step by it.
 * Exit codes: 0 ok, 1 training diverged (loss or gradient norm not finite), 2 usage or
 * I/O error,
 * 128 + signal after SIGINT/SIGTERM (a checkpoint was written first). */
#include "rt_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
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

/* ---- options ---- */

/* How an option's value is read. Numbers are decimal, with nothing before or after them
 * (no spaces, no '+'), and must lie in the row's [lo, hi]. */
typedef enum OptKind {
    OPT_FLAG,    /* no value; sets a bool */
    OPT_PATH,    /* a non-empty string (const char *) */
    OPT_TEXT,    /* any string, even empty (const char *) */
    OPT_INT,     /* an integer in [lo, hi] (int64_t) */
    OPT_U64,     /* an integer in [0, 2^64) (uint64_t); lo, hi unused */
    OPT_REAL,    /* a decimal number in [lo, hi] (double) */
    OPT_AMOUNT,  /* an integer N in [lo, hi], or a percentage P% with 0 <= P <= 100 (Amount) */
    OPT_CHOICE   /* one of the words of .arg, "a|b|c" (int: the word's index) */
} OptKind;

/* "N or P%": a step count given directly or as a share of the run. */
typedef struct Amount {
    int64_t n;      /* the count, when !is_percent */
    double percent; /* 0..100, when is_percent */
    bool is_percent;
} Amount;

/* An Amount as steps of a run of `total` steps: percentages round down, as in the spec
 * (docs/language.md §5.3). */
static inline int64_t amount_steps(Amount a, int64_t total)
{
    return a.is_percent ? (int64_t)floor((double)total * a.percent / 100.0) : a.n;
}

enum { OPT_MAX = 64 };

typedef struct Options {
    const char *data, *val_data, *out, *resume, *log, *sample, *init_from, *tokenizer;
    int64_t steps, eval_every, eval_batches, checkpoint_every, log_every, tokens, threads, zero;
    int64_t total_steps;                                  /* the schedule (RtSchedule) */
    Amount warmup, warm_start, reset_every, restart_warmup;
    double lr, relora_lr, min_lr_ratio, prune;
    uint64_t seed;
    int data_kind;
    double temperature;
    bool quiet, help, markdown, overwrite;
    bool given[OPT_MAX]; /* given[i]: row i of the table was on the command line */
} Options;

/* One trainer option: parsing, --help and the table in docs/runtime.md all read this. */
typedef struct OptSpec {
    const char *name; /* "--steps" */
    const char *arg;  /* the value in --help ("N", "PATH"); OPT_CHOICE: the words, "a|b" */
    OptKind kind;
    double lo, hi;    /* accepted range of OPT_INT, OPT_REAL and OPT_AMOUNT counts */
    size_t off;       /* offsetof(Options, field) receiving the value */
    const char *dflt; /* where the default comes from (docs); --help prints the value itself
                       * and this text only when there is no value */
    const char *help;
    unsigned flags;   /* OPEN_LO, OPEN_HI: that end of [lo, hi] is excluded (OPT_REAL);
                       * PERCENT: P% is also accepted, as P/100 (OPT_REAL fractions, as
                       * the spec's field accepts it); SCHEDULE: a setting of the schedule */
} OptSpec;

enum { OPEN_LO = 1, OPEN_HI = 2, PERCENT = 4, SCHEDULE = 8 };

#define OFF(field) offsetof(Options, field)
#define NO_MAX HUGE_VAL /* no upper bound (beyond the type's) */

/* The options. Adding one: a field in Options of the kind's C type, its default in
 * options_init, a row here; then `DOCS_UPDATE=1 meson test trainer-cli` regenerates the
 * table in docs/runtime.md (the test fails until it matches). */
static const OptSpec opts[] = {
    {"--data", "PATH", OPT_PATH, 0, 0, OFF(data), "spec `train.data`, else none (required)", "training data", 0},
    {"--val-data", "PATH", OPT_PATH, 0, 0, OFF(val_data), "spec `train.val_data`, else the last `val_fraction` of --data", "validation data", 0},
    {"--data-kind", "text|tokens|nanogpt", OPT_CHOICE, 0, 0, OFF(data_kind), "spec `train.data`", "text: each byte is a token; tokens: an llm.c .bin file (uint16 or uint32 tokens, by its header); nanogpt: a headerless uint16 .bin file", 0},
    {"--steps", "N", OPT_INT, 0, NO_MAX, OFF(steps), "the schedule's horizon (--total-steps)", "stop after step N of the schedule", 0},
    {"--total-steps", "N", OPT_INT, 1, NO_MAX, OFF(total_steps), "spec `train.steps`", "the schedule's horizon: the cosine ends there", SCHEDULE},
    {"--warmup", "N|P%", OPT_AMOUNT, 0, NO_MAX, OFF(warmup), "spec `schedule.warmup`", "steps of linear warmup from 0", SCHEDULE},
    {"--warm-start", "N|P%", OPT_AMOUNT, 0, NO_MAX, OFF(warm_start), "spec `schedule.warm_start`", "relora: full-rank steps before the switch to ReLoRA", SCHEDULE},
    {"--reset-every", "N|P%", OPT_AMOUNT, 1, NO_MAX, OFF(reset_every), "spec `schedule.reset_every`", "relora: steps between merges", SCHEDULE},
    {"--restart-warmup", "N|P%", OPT_AMOUNT, 0, NO_MAX, OFF(restart_warmup), "spec `schedule.restart_warmup`", "relora: steps of the LR ramp after the switch and each merge", SCHEDULE},
    {"--lr", "X", OPT_REAL, 0, NO_MAX, OFF(lr), "spec `optimizer.lr`", "peak learning rate of the full-rank phase", OPEN_LO | SCHEDULE},
    {"--relora-lr", "X", OPT_REAL, 0, NO_MAX, OFF(relora_lr), "spec `schedule.lr`", "relora: peak learning rate of the ReLoRA phase", OPEN_LO | SCHEDULE},
    {"--min-lr-ratio", "X", OPT_REAL, 0, 1, OFF(min_lr_ratio), "spec `schedule.min_lr_ratio`", "the cosine's floor, a fraction of the peak", SCHEDULE},
    {"--prune", "X", OPT_REAL, 0, 1, OFF(prune), "spec `schedule.prune`", "relora: fraction of the adapters' Adam moments zeroed at a merge", OPEN_HI | PERCENT | SCHEDULE},
    {"--out", "DIR", OPT_PATH, 0, 0, OFF(out), "spec `train.checkpoint_dir`", "checkpoint directory (--resume DIR alone continues in DIR)", 0},
    {"--resume", "DIR", OPT_PATH, 0, 0, OFF(resume), "none", "continue from the checkpoint in DIR", 0},
    {"--init-from", "DIR", OPT_PATH, 0, 0, OFF(init_from), "spec `train.init_from`, else none", "start a fresh run (step 0, fresh optimizer state) from the weights of the Hugging Face or relorac checkpoint in DIR, checked against the model", 0},
    {"--overwrite", NULL, OPT_FLAG, 0, 0, OFF(overwrite), "off", "start afresh in an --out DIR that holds a checkpoint (replaced at the first save)", 0},
    {"--eval-every", "N", OPT_INT, 0, NO_MAX, OFF(eval_every), "spec `train.eval_every`", "validate every N steps; 0 = only at the end of the run", 0},
    {"--eval-batches", "N", OPT_INT, 1, NO_MAX, OFF(eval_batches), "spec `train.eval_batches`", "validation batches per evaluation", 0},
    {"--checkpoint-every", "N", OPT_INT, 0, NO_MAX, OFF(checkpoint_every), "spec `train.checkpoint_every`", "checkpoint every N steps; 0 = only at the end of the run", 0},
    {"--log-every", "N", OPT_INT, 1, NO_MAX, OFF(log_every), "10", "progress line every N steps when stdout is not a terminal", 0},
    {"--threads", "N", OPT_INT, 0, 1024, OFF(threads), "0", "worker threads; 0 = all online CPUs", 0},
    {"--zero", "N", OPT_INT, 0, 1, OFF(zero), "0", "under mpirun: 1 = ZeRO stage 1, each rank applies AdamW to its 1/N of the trainable parameters and keeps only those moments current", 0},
    {"--seed", "N", OPT_U64, 0, 0, OFF(seed), "spec `train.seed`", "random seed (a resumed run keeps the checkpoint's)", 0},
    {"--log", "FILE", OPT_PATH, 0, 0, OFF(log), "DIR/metrics.jsonl", "metrics as JSON lines", 0},
    {"--sample", "TEXT", OPT_TEXT, 0, 0, OFF(sample), "none", "print TEXT and a continuation from the checkpoint in --resume or --out (or the initial model); token models take token ids, or text with a tokenizer", 0},
    {"--tokens", "N", OPT_INT, 0, NO_MAX, OFF(tokens), "200", "tokens to generate with --sample", 0},
    {"--tokenizer", "FILE", OPT_PATH, 0, 0, OFF(tokenizer), "the checkpoint's, else none", "token models: a SentencePiece model or tokenizer.json that encodes --sample's prompt and decodes the sample (a run records it in its checkpoint)", 0},
    {"--temperature", "T", OPT_REAL, 0, 1e6, OFF(temperature), "0.8", "sampling temperature; 0 = greedy", 0},
    {"--quiet", NULL, OPT_FLAG, 0, 0, OFF(quiet), "off", "no progress output (errors still go to stderr)", 0},
    {"--help", NULL, OPT_FLAG, 0, 0, OFF(help), "off", "this text", 0},
};
enum { N_OPTS = (int)(sizeof opts / sizeof *opts) };
_Static_assert(sizeof opts / sizeof *opts <= OPT_MAX, "raise OPT_MAX");

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
    char *log_path;  /* the metrics log, for messages */
    char *log_new;   /* --overwrite: LOG.new, where lines go until the first save renames it
                      * over log_path; NULL otherwise */
    int lock_fd;     /* DIR/trainer.lock, held while training; -1 when none */
    const char *out_dir;
    RtRunInfo run;   /* saved with each checkpoint */
    RtRunInfo saved; /* read from the checkpoint being resumed */
    RtSchedule sched; /* this run's schedule, resolved */
    bool tty;
    /* Data-parallel runs (docs/runtime.md "Several processes"): the job, NULL without a
     * launcher. Rank 0 alone locks DIR, writes the log and checkpoints and prints progress. */
    RtDist *dist;
    int rank;
    bool agreed;       /* the run stopped on a decision every rank took: no MPI_Abort */
    uint64_t step_sent; /* bytes this rank sent in the last step's sums */
    char prog_rank[256]; /* "PROG: rank R", the name in a rank's own errors */
    bool shared_error; /* every rank has the same error; only rank 0 prints it */
    RtTokenizer *tok; /* --sample with a tokenizer */
} Trainer;

/* A schedule step field as an option value: the percentage it was given as, else its count. */
static Amount sched_amount(int64_t n, double pct)
{
    return pct >= 0 ? (Amount){0, pct, true} : (Amount){n, 0, false};
}

/* The defaults: the model's (the spec's train block), then the runtime's own. */
static void options_init(Options *o, const RtModel *m)
{
    const RtTrainDefaults *d = &m->defaults;
    memset(o, 0, sizeof *o); /* padding too: format_value reads fields by offset */
    o->data = d->data_path;
    o->val_data = d->val_path;
    o->init_from = d->init_from;
    const RtSchedule *s = &m->schedule;
    o->steps = s->steps;
    o->total_steps = s->steps;
    o->warmup = sched_amount(s->warmup, s->warmup_pct);
    o->warm_start = sched_amount(s->warm_start, s->warm_start_pct);
    o->reset_every = sched_amount(s->reset_every, s->reset_every_pct);
    o->restart_warmup = sched_amount(s->restart_warmup, s->restart_warmup_pct);
    o->lr = s->lr;
    o->relora_lr = s->relora_lr;
    o->min_lr_ratio = s->min_lr_ratio;
    o->prune = s->prune;
    o->eval_every = d->eval_every;
    o->eval_batches = d->eval_batches;
    o->checkpoint_every = d->checkpoint_every;
    o->out = d->checkpoint_dir ? d->checkpoint_dir : "checkpoints";
    o->log_every = d->log_every > 0 ? d->log_every : 10;
    o->tokens = 200;
    o->seed = d->seed;
    o->threads = d->threads;
    o->data_kind = d->data_kind;
    o->temperature = 0.8;
}

static const OptSpec *opt_find(const char *name)
{
    for (int i = 0; i < N_OPTS; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

/* Whether the option was on the command line. */
static bool opt_given(const Options *o, const char *name)
{
    const OptSpec *s = opt_find(name);
    return s && o->given[s - opts];
}

/* The i-th word of "a|b|c" into buf. */
static bool choice_word(const char *words, int i, char *buf, size_t cap)
{
    for (const char *s = words; i >= 0; i--) {
        const char *bar = strchr(s, '|');
        size_t len = bar ? (size_t)(bar - s) : strlen(s);
        if (i == 0) {
            snprintf(buf, cap, "%.*s", (int)len, s);
            return true;
        }
        if (!bar)
            return false;
        s = bar + 1;
    }
    return false;
}

/* The accepted values of a row, in words ("integer ≥ 0", "integer in 0..1024"). */
static void describe_kind(const OptSpec *s, char *buf, size_t cap)
{
    switch (s->kind) {
    case OPT_FLAG: snprintf(buf, cap, "none"); break;
    case OPT_PATH: snprintf(buf, cap, "non-empty path"); break;
    case OPT_TEXT: snprintf(buf, cap, "text"); break;
    case OPT_U64: snprintf(buf, cap, "integer in 0..2^64-1"); break;
    case OPT_CHOICE: snprintf(buf, cap, "`%s`", s->arg); break;
    case OPT_INT:
    case OPT_AMOUNT:
    case OPT_REAL: {
        const char *what = s->kind == OPT_REAL ? "number" : "integer";
        if (isinf(s->hi))
            snprintf(buf, cap, "%s %s %.15g", what, s->flags & OPEN_LO ? ">" : "≥", s->lo);
        else if (s->flags & (OPEN_LO | OPEN_HI))
            snprintf(buf, cap, "%s in %s%.15g, %.15g%s", what, s->flags & OPEN_LO ? "(" : "[", s->lo,
                     s->hi, s->flags & OPEN_HI ? ")" : "]");
        else
            snprintf(buf, cap, "%s in %.15g..%.15g", what, s->lo, s->hi);
        if (s->kind == OPT_AMOUNT) {
            size_t n = strlen(buf);
            snprintf(buf + n, cap - n, ", or P%% of --total-steps");
        } else if (s->flags & PERCENT) {
            size_t n = strlen(buf);
            snprintf(buf + n, cap - n, ", or P%% (P/100)");
        }
        break;
    }
    }
}

/* The current value of a row in o as text; false when it has none (a NULL string). */
static bool format_value(const OptSpec *s, const Options *o, char *buf, size_t cap)
{
    const char *p = (const char *)o + s->off;
    switch (s->kind) {
    case OPT_FLAG: snprintf(buf, cap, "%s", *(const bool *)p ? "on" : "off"); return true;
    case OPT_PATH:
    case OPT_TEXT: {
        const char *v = *(const char *const *)p;
        if (!v)
            return false;
        snprintf(buf, cap, "%s", v);
        return true;
    }
    case OPT_INT: snprintf(buf, cap, "%" PRId64, *(const int64_t *)p); return true;
    case OPT_U64: snprintf(buf, cap, "%" PRIu64, *(const uint64_t *)p); return true;
    case OPT_REAL: snprintf(buf, cap, "%g", *(const double *)p); return true;
    case OPT_AMOUNT: {
        const Amount *a = (const Amount *)p;
        if (a->is_percent)
            snprintf(buf, cap, "%g%%", a->percent);
        else
            snprintf(buf, cap, "%" PRId64, a->n);
        return true;
    }
    case OPT_CHOICE: return choice_word(s->arg, *(const int *)p, buf, cap);
    }
    return false;
}

static const char *sched_kind_name(int kind)
{
    static const char *const kinds[] = {"constant", "cosine", "relora"};
    return kind >= 0 && kind <= RT_SCHED_RELORA ? kinds[kind] : "unknown";
}

static void print_help(Trainer *tr)
{
    const RtModel *m = tr->m;
    FILE *f = tr->out;
    Options d;
    options_init(&d, m);
    fprintf(f, "usage: %s [options]\n", tr->prog);
    fprintf(f, "Trains model '%s' (model %s): vocab %d, batch %d, seq_len %d; %s schedule%s.\n\n",
            m->name, m->model_hash, m->vocab, m->batch, m->seq_len, sched_kind_name(m->schedule.kind),
            m->schedule.kind == RT_SCHED_RELORA ? " (ReLoRA training)" : "");
    for (int i = 0; i < N_OPTS; i++) {
        const OptSpec *s = &opts[i];
        char left[64], value[1100];
        snprintf(left, sizeof left, "%s%s%s", s->name, s->arg ? " " : "",
                 s->arg ? s->arg : "");
        fprintf(f, "  %-22s %s", left, s->help);
        if (s->kind != OPT_FLAG)
            fprintf(f, " (default: %s)", format_value(s, &d, value, sizeof value) ? value
                                                                                  : s->dflt);
        fputc('\n', f);
    }
    fprintf(f, "\nValues may also be written --option=value. Numbers are plain decimals.\n"
               "SIGINT/SIGTERM: the current step finishes, a checkpoint is written, exit "
               "130/143.\n");
    rt_gemm_report(f, NULL, tr->prog, NULL);
}

/* A Markdown table cell: '|' escaped. */
static void md_cell(FILE *f, const char *text)
{
    fputs(" ", f);
    for (const char *c = text; *c; c++) {
        if (*c == '|')
            fputc('\\', f);
        fputc(*c, f);
    }
    fputs(" |", f);
}

/* The option table as Markdown, for docs/runtime.md (`--help=markdown`). Only what does
 * not depend on the model, so every trainer prints the same table. */
static void print_markdown(Trainer *tr)
{
    FILE *f = tr->out;
    fprintf(f, "| option | value | default | meaning |\n|---|---|---|---|\n");
    for (int i = 0; i < N_OPTS; i++) {
        const OptSpec *s = &opts[i];
        char name[96], kind[96];
        snprintf(name, sizeof name, "`%s%s%s`", s->name, s->arg ? " " : "", s->arg ? s->arg : "");
        describe_kind(s, kind, sizeof kind);
        fputc('|', f);
        md_cell(f, name);
        md_cell(f, kind);
        md_cell(f, s->dflt);
        md_cell(f, s->help);
        fputc('\n', f);
    }
}

static bool usage_error(Trainer *tr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool usage_error(Trainer *tr, const char *fmt, ...)
{
    fprintf(tr->err, "%s: error: ", tr->prog);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(tr->err, fmt, ap);
    va_end(ap);
    fprintf(tr->err, " (see --help)\n");
    return false;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A decimal integer: an optional '-' and digits, nothing else. False on overflow too. */
static bool parse_i64(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    const char *p = s + neg;
    if (!is_digit(*p))
        return false;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (*p)
        return false;
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!is_digit(*s))
        return false;
    uint64_t v = 0;
    for (; is_digit(*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (*s)
        return false;
    *out = v;
    return true;
}

/* A decimal number: [-]digits[.digits][e[+-]digits] or [-].digits..., finite. */
static bool parse_real(const char *s, double *out)
{
    const char *p = s + (*s == '-');
    bool digits = false;
    while (is_digit(*p))
        p++, digits = true;
    if (*p == '.')
        for (p++; is_digit(*p); p++)
            digits = true;
    if (!digits)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        p += *p == '+' || *p == '-';
        if (!is_digit(*p))
            return false;
        while (is_digit(*p))
            p++;
    }
    if (*p)
        return false;
    errno = 0;
    double v = strtod(s, NULL);
    if (!isfinite(v) || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

/* Parses val into the row's field of o; false after printing why not. */
static bool set_option(Trainer *tr, const OptSpec *s, const char *val)
{
    char *p = (char *)&tr->o + s->off;
    char range[96];
    describe_kind(s, range, sizeof range);
    switch (s->kind) {
    case OPT_FLAG: *(bool *)p = true; return true;
    case OPT_PATH:
        if (!*val)
            return usage_error(tr, "%s needs a non-empty value", s->name);
        /* fall through */
    case OPT_TEXT: *(const char **)p = val; return true;
    case OPT_U64:
        if (!parse_u64(val, (uint64_t *)p))
            return usage_error(tr, "bad value '%s' for %s: expected an %s", val, s->name, range);
        return true;
    case OPT_INT: {
        int64_t v;
        if (!parse_i64(val, &v) || (double)v < s->lo || (double)v > s->hi)
            return usage_error(tr, "bad value '%s' for %s: expected an %s", val, s->name, range);
        *(int64_t *)p = v;
        return true;
    }
    case OPT_REAL: {
        double v;
        size_t len = strlen(val);
        bool pct = s->flags & PERCENT && len > 1 && len < 64 && val[len - 1] == '%';
        char num[64];
        if (pct) {
            memcpy(num, val, len - 1);
            num[len - 1] = '\0';
        }
        bool ok = parse_real(pct ? num : val, &v);
        if (ok && pct)
            v /= 100.0;
        if (!ok || v < s->lo || v > s->hi || (s->flags & OPEN_LO && v == s->lo) ||
            (s->flags & OPEN_HI && v == s->hi))
            return usage_error(tr, "bad value '%s' for %s: expected a %s", val, s->name, range);
        *(double *)p = v;
        return true;
    }
    case OPT_AMOUNT: {
        Amount a = {0};
        size_t len = strlen(val);
        bool ok;
        if (len > 0 && val[len - 1] == '%') {
            char num[64];
            ok = len < sizeof num;
            if (ok) {
                memcpy(num, val, len - 1);
                num[len - 1] = '\0';
                ok = parse_real(num, &a.percent) && a.percent >= 0 && a.percent <= 100;
            }
            a.is_percent = true;
        } else {
            ok = parse_i64(val, &a.n) && (double)a.n >= s->lo && (double)a.n <= s->hi;
        }
        if (!ok)
            return usage_error(tr, "bad value '%s' for %s: expected an %s", val, s->name, range);
        *(Amount *)p = a;
        return true;
    }
    case OPT_CHOICE: {
        char word[64];
        for (int i = 0; choice_word(s->arg, i, word, sizeof word); i++)
            if (strcmp(word, val) == 0) {
                *(int *)p = i;
                return true;
            }
        return usage_error(tr, "bad value '%s' for %s: expected one of %s", val, s->name,
                           s->arg);
    }
    }
    return false;
}

/* Refuses a schedule option that this trainer's compiled schedule kind has no use for (a
 * relora option on a constant or cosine trainer, --min-lr-ratio on a constant one): such an
 * option used to be accepted and then ignored. */
static bool check_sched_kind_options(Trainer *tr)
{
    static const char *const relora_only[] = {"--warm-start", "--reset-every", "--restart-warmup",
                                              "--relora-lr", "--prune"};
    int kind = tr->m->schedule.kind;
    for (size_t i = 0; kind != RT_SCHED_RELORA && i < sizeof relora_only / sizeof *relora_only; i++)
        if (opt_given(&tr->o, relora_only[i]))
            return usage_error(tr, "%s applies to a relora schedule; this trainer's schedule is %s "
                               "(the schedule kind is compiled in)", relora_only[i],
                               sched_kind_name(kind));
    if (kind == RT_SCHED_CONSTANT && opt_given(&tr->o, "--min-lr-ratio"))
        return usage_error(tr, "--min-lr-ratio applies to a cosine or relora schedule; this "
                           "trainer's schedule is constant (the schedule kind is compiled in)");
    return true;
}

static bool parse_options(Trainer *tr, int argc, char **argv)
{
    Options *o = &tr->o;
    options_init(o, tr->m);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        if (strncmp(arg, "--", 2) != 0)
            return usage_error(tr, "unexpected argument '%s'", arg);
        if (strcmp(arg, "--help=markdown") == 0) { /* hidden: the docs table */
            o->markdown = true;
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        char name[64];
        if (len >= sizeof name)
            return usage_error(tr, "unknown option '%s'", arg);
        memcpy(name, arg, len);
        name[len] = '\0';
        const OptSpec *s = opt_find(name);
        if (!s)
            return usage_error(tr, "unknown option '%s'", name);
        if (s->kind == OPT_FLAG && eq)
            return usage_error(tr, "option '%s' takes no value", name);
        if (eq)
            val = eq + 1;
        else if (s->kind != OPT_FLAG && i + 1 < argc)
            val = argv[++i];
        else if (s->kind != OPT_FLAG)
            return usage_error(tr, "option '%s' needs a value", name);
        if (!set_option(tr, s, val))
            return false;
        o->given[s - opts] = true;
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
        int width = 20; /* in double: width * done overflows int64 for done near 2^63 */
        int fill = (int)(width * ((double)done / (double)(tr->o.steps ? tr->o.steps : 1)));
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

/* ---- files ---- */

/* Takes DIR/trainer.lock for the whole run (flock: the kernel drops it when the process
 * ends, however it ends) and writes our pid in it for the message another trainer gets. */
static bool lock_out_dir(Trainer *tr, RtError *e)
{
    size_t n = strlen(tr->out_dir) + 16;
    char *path = malloc(n);
    if (!path)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    snprintf(path, n, "%s/trainer.lock", tr->out_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0644);
    struct stat st;
    bool ok = fd >= 0;
    if (!ok)
        rt_err(e, RT_ERR_IO, "%s: cannot open the lock file: %s", path, strerror(errno));
    else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        ok = rt_err(e, RT_ERR_IO, "%s: the lock file is not a regular file", path);
    else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char buf[32] = {0};
        ssize_t got = pread(fd, buf, sizeof buf - 1, 0);
        long pid = got > 0 ? strtol(buf, NULL, 10) : 0;
        if (err == EWOULDBLOCK && pid > 0)
            ok = rt_err(e, RT_ERR_USAGE,
                        "%s is in use by another trainer (pid %ld, which holds %s); two "
                        "trainers cannot share a checkpoint directory: wait for it or pass "
                        "another --out",
                        tr->out_dir, pid, path);
        else if (err == EWOULDBLOCK)
            ok = rt_err(e, RT_ERR_USAGE,
                        "%s is in use by another trainer (it holds %s); two trainers cannot "
                        "share a checkpoint directory: wait for it or pass another --out",
                        tr->out_dir, path);
        else
            ok = rt_err(e, RT_ERR_IO, "%s: cannot lock: %s", path, strerror(err));
    } else {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len)
            ok = rt_err(e, RT_ERR_IO, "%s: cannot write the lock file: %s", path,
                        strerror(errno));
    }
    if (!ok && fd >= 0)
        close(fd);
    else
        tr->lock_fd = fd;
    free(path);
    return ok;
}

/* The step (-1 when unreadable) and the run info of the checkpoint in dir, from its header
 * alone. */
static int64_t peek_checkpoint(const char *dir, RtRunInfo *run)
{
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    RtStFile f;
    RtError e = {0};
    int64_t step = -1;
    memset(run, 0, sizeof *run);
    if (path) {
        snprintf(path, n, "%s/latest/trainer.safetensors", dir);
        bool ok = rt_st_open_header(&f, path, &e);
        if (!ok) {
            e = (RtError){0};
            snprintf(path, n, "%s/trainer.safetensors", dir);
            ok = rt_st_open_header(&f, path, &e);
        }
        if (ok) {
            const char *v = rt_st_meta(&f, "step"), *d = rt_st_meta(&f, "data");
            const char *vd = rt_st_meta(&f, "val_data");
            int64_t s;
            if (v && parse_i64(v, &s))
                step = s;
            snprintf(run->data, sizeof run->data, "%s", d ? d : "");
            snprintf(run->val_data, sizeof run->val_data, "%s", vd ? vd : "");
            rt_st_close(&f);
        }
        free(path);
    }
    return step;
}

/* Refuses to start when the memory plan (every pool, 64-byte aligned as rt_ctx_create
 * allocates them) plus the data read into memory exceeds what this process may use (RAM,
 * cgroup limit, RLIMIT_AS): the pools are zero-filled at once, and a plan past the limit
 * would otherwise run until the kernel kills it. */
static bool check_memory(Trainer *tr, RtError *e)
{
    uint64_t plan = 0, data = 0;
    for (int p = 0; p < RT_POOL_COUNT; p++) {
        uint64_t b = tr->m->pool_bytes[p];
        if (b > UINT64_MAX - 63 || __builtin_add_overflow(plan, (b + 63) / 64 * 64, &plan))
            plan = UINT64_MAX;
    }
    if (!tr->o.sample) { /* the data files, as they will be read (see open_data) */
        const char *paths[2] = {tr->o.data, tr->o.val_data};
        RtRunInfo saved;
        if (tr->o.resume && !opt_given(&tr->o, "--data") &&
            peek_checkpoint(tr->o.resume, &saved) >= 0 && saved.data[0]) {
            paths[0] = saved.data;
            paths[1] = opt_given(&tr->o, "--val-data") ? tr->o.val_data
                       : saved.val_data[0]             ? saved.val_data
                                                       : NULL;
        }
        for (int i = 0; i < 2; i++) {
            struct stat st;
            if (paths[i] && stat(paths[i], &st) == 0 && S_ISREG(st.st_mode))
                data += (uint64_t)st.st_size;
        }
    }
    uint64_t need = plan > UINT64_MAX - data ? UINT64_MAX : plan + data;
    RtMemLimits l;
    rt_mem_limits(&l);
    if (need <= l.available)
        return true;
    char need_s[32], plan_s[32], data_s[32], avail[768];
    rt_mem_bytes(need_s, sizeof need_s, need);
    rt_mem_bytes(plan_s, sizeof plan_s, plan);
    rt_mem_bytes(data_s, sizeof data_s, data);
    rt_mem_describe(&l, avail, sizeof avail);
    return rt_err(e, RT_ERR_NOMEM,
                  "model '%s' needs %s (memory plan %s + data %s), more than this process may "
                  "use: %s; nothing was allocated",
                  tr->m->name, need_s, plan_s, data_s, avail);
}

/* Creates and locks the checkpoint directory, and refuses to start a fresh run over a
 * checkpoint unless --overwrite says so (it would be replaced at the first save). */
static bool claim_out_dir(Trainer *tr, RtError *e)
{
    if (tr->o.overwrite && tr->o.resume)
        return rt_err(e, RT_ERR_USAGE, "--overwrite starts a fresh run; it cannot be combined "
                      "with --resume (see --help)");
    if (!rt_mkdir_p(tr->out_dir, e) || !lock_out_dir(tr, e))
        return false;
    if (tr->o.resume || tr->o.overwrite || !rt_checkpoint_exists(tr->out_dir))
        return true;
    RtRunInfo run;
    int64_t step = peek_checkpoint(tr->out_dir, &run);
    char at[48] = "";
    if (step >= 0)
        snprintf(at, sizeof at, " (step %" PRId64 ")", step);
    return rt_err(e, RT_ERR_USAGE,
                  "%s already holds a checkpoint%s, which a fresh run would replace: pass "
                  "--resume %s to continue it, or --overwrite to start over (see --help)",
                  tr->out_dir, at, tr->out_dir);
}

/* A file the run reads or the checkpoint owns, that the metrics log must not be. */
typedef struct Guarded {
    dev_t dev;
    ino_t ino;
    const char *what;
} Guarded;

static const char *const owned_names[] = {"model.safetensors", "config.json",
                                          "trainer.safetensors", "trainer.lock", "latest"};

/* Refuses a log path that names something the checkpoint in DIR owns or will own (its
 * files, `latest`, ckpt-* and dot names): the first save would replace it. */
static bool check_log_name(Trainer *tr, const char *lp, RtError *e)
{
    char *copy = strdup(lp);
    if (!copy)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    char *slash = strrchr(copy, '/');
    const char *base = slash ? slash + 1 : copy;
    if (slash)
        *slash = '\0';
    struct stat ds, od;
    bool in_out = stat(slash ? (*copy ? copy : "/") : ".", &ds) == 0 &&
                  stat(tr->out_dir, &od) == 0 && ds.st_dev == od.st_dev && ds.st_ino == od.st_ino;
    bool reserved = strncmp(base, "ckpt-", 5) == 0 || base[0] == '.';
    for (size_t i = 0; i < sizeof owned_names / sizeof *owned_names; i++)
        reserved = reserved || strcmp(base, owned_names[i]) == 0;
    bool bad = in_out && reserved;
    /* a log inside a checkpoint's own directory (DIR/latest/FILE, DIR/ckpt-*\/FILE) is
     * deleted with that directory at the next save: the run used to end with exit 0 and
     * no metrics */
    char *real_dir = realpath(slash ? (*copy ? copy : "/") : ".", NULL);
    char *rs = real_dir ? strrchr(real_dir, '/') : NULL;
    bool in_ckpt = false;
    if (rs && strncmp(rs + 1, "ckpt-", 5) == 0) {
        *rs = '\0';
        in_ckpt = stat(*real_dir ? real_dir : "/", &ds) == 0 && stat(tr->out_dir, &od) == 0 &&
                  ds.st_dev == od.st_dev && ds.st_ino == od.st_ino;
    }
    free(real_dir);
    free(copy);
    if (bad)
        return rt_err(e, RT_ERR_USAGE, "--log %s is a name the checkpoint in %s uses; choose "
                      "another", lp, tr->out_dir);
    if (in_ckpt)
        return rt_err(e, RT_ERR_USAGE, "--log %s is inside a checkpoint directory of %s, which a "
                      "later save removes with everything in it; choose another", lp, tr->out_dir);
    return true;
}

/* Refuses a log that is the same file (device and inode) as an input or a checkpoint file:
 * writing it would destroy the input (--log DATA truncated the data) or lose the lines. */
static bool check_log_file(Trainer *tr, const char *lp, const struct stat *ls, RtError *e)
{
    struct stat st;
    const char *inputs[2] = {tr->o.data, tr->o.val_data};
    const char *whats[2] = {"the training data", "the validation data"};
    for (int i = 0; i < 2; i++)
        if (inputs[i] && stat(inputs[i], &st) == 0 && st.st_dev == ls->st_dev &&
            st.st_ino == ls->st_ino)
            return rt_err(e, RT_ERR_USAGE, "%s %s is %s; refusing to write metrics into it",
                          tr->o.log ? "--log" : "the metrics log", lp, whats[i]);
    for (size_t i = 0; i < sizeof owned_names / sizeof *owned_names; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", tr->out_dir, owned_names[i]);
        if (stat(p, &st) == 0 && st.st_dev == ls->st_dev && st.st_ino == ls->st_ino)
            return rt_err(e, RT_ERR_USAGE,
                          "%s %s is the checkpoint file %s; refusing to write metrics into it",
                          tr->o.log ? "--log" : "the metrics log", lp, p);
    }
    return true;
}

/* The start of a metrics line, "{\"step\":N", as N; false for anything else. */
static bool line_step(const char *line, int64_t *step)
{
    static const char key[] = "{\"step\":";
    if (strncmp(line, key, sizeof key - 1) != 0)
        return false;
    const char *p = line + sizeof key - 1;
    int64_t v = 0;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - (*p - '0')) / 10)
            return false;
        v = v * 10 + (*p - '0');
    }
    *step = v;
    return *p == ',' || *p == '}';
}

/* On resume the log may hold the steps run after the checkpoint was written, which the
 * resumed run will log again. Keeps the lines of steps before `start` (and lines that are
 * not metrics), drops the others and a torn last line, and replaces the file atomically
 * (a temp file beside it, synced, renamed). Nothing is rewritten when nothing is dropped. */
static bool trim_log(const char *lp, int64_t start, RtError *e)
{
    struct stat st;
    if (stat(lp, &st) != 0 || !S_ISREG(st.st_mode))
        return true; /* nothing yet, or a FIFO / device: nothing to rewrite */
    char *real = realpath(lp, NULL);
    if (!real)
        return rt_err(e, RT_ERR_IO, "%s: %s", lp, strerror(errno));
    int fd = rt_open_regular(real, "metrics log", &st, e);
    FILE *in = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (fd >= 0 && !in)
        close(fd);
    if (!in) {
        free(real);
        return rt_err(e, RT_ERR_IO, "%s: cannot read: %s", lp, strerror(errno));
    }
    RtBuf keep = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t dropped = 0;
    while ((len = getline(&line, &cap, in)) > 0) {
        int64_t step;
        if (line[len - 1] != '\n' || (line_step(line, &step) && step >= start))
            dropped++;
        else
            rt_buf_add(&keep, line, (size_t)len);
    }
    bool ok = !ferror(in) || rt_err(e, RT_ERR_IO, "%s: cannot read: %s", lp, strerror(errno));
    fclose(in);
    free(line);
    if (ok && keep.oom)
        ok = rt_err(e, RT_ERR_NOMEM, "out of memory rewriting %s", lp);
    if (ok && dropped > 0) {
        size_t n = strlen(real) + 32;
        char *tmp = malloc(n);
        if (!tmp) {
            ok = rt_err(e, RT_ERR_NOMEM, "out of memory");
        } else {
            snprintf(tmp, n, "%s.tmp.%ld", real, (long)getpid());
            int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777);
            ok = out >= 0 || rt_err(e, RT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
            ok = ok && rt_write_all(out, NULL, tmp, keep.p ? keep.p : "", keep.len, e);
            if (ok && fsync(out) != 0)
                ok = rt_err(e, RT_ERR_IO, "%s: cannot sync: %s", tmp, strerror(errno));
            if (out >= 0 && close(out) != 0 && ok)
                ok = rt_err(e, RT_ERR_IO, "%s: cannot close: %s", tmp, strerror(errno));
            if (ok && rename(tmp, real) != 0)
                ok = rt_err(e, RT_ERR_IO, "%s: cannot rename to %s: %s", tmp, real,
                            strerror(errno));
            if (!ok)
                unlink(tmp);
            char *slash = strrchr(real, '/');
            if (ok && slash) {
                *slash = '\0';
                int d = open(*real ? real : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (d < 0 || fsync(d) != 0)
                    ok = rt_err(e, RT_ERR_IO, "%s: cannot sync the directory: %s", real,
                                strerror(errno));
                if (d >= 0)
                    close(d);
            }
            free(tmp);
        }
        if (!ok) {
            size_t k = strlen(e->msg);
            snprintf(e->msg + k, sizeof e->msg - k, "; %s is unchanged", lp);
        }
    }
    rt_buf_fini(&keep);
    free(real);
    return ok;
}

/* Opens the metrics log: DIR/metrics.jsonl unless --log. A fresh run empties it; a resumed
 * run keeps the steps before `start` and appends. */
static bool open_log(Trainer *tr, int64_t start, RtError *e)
{
    const char *lp = tr->o.log;
    if (!lp) {
        size_t n = strlen(tr->out_dir) + 16;
        tr->log_path = malloc(n);
        if (!tr->log_path)
            return rt_err(e, RT_ERR_NOMEM, "out of memory");
        snprintf(tr->log_path, n, "%s/metrics.jsonl", tr->out_dir);
    } else if (!(tr->log_path = strdup(lp))) {
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    }
    lp = tr->log_path;
    struct stat st;
    if (!check_log_name(tr, lp, e) || (stat(lp, &st) == 0 && !check_log_file(tr, lp, &st, e)))
        return false;
    /* another trainer's log (another --out, the same --log) is not ours to rewrite: it holds
     * a lock on it (below), and emptying it used to lose that run's lines */
    if (stat(lp, &st) == 0 && S_ISREG(st.st_mode)) {
        int probe = open(lp, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        bool busy = probe >= 0 && flock(probe, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
        if (probe >= 0)
            close(probe);
        if (busy)
            return rt_err(e, RT_ERR_USAGE, "%s %s is in use by another trainer; two runs cannot "
                          "share a metrics log: pass another --log", tr->o.log ? "--log" : "the metrics log",
                          lp);
    }
    if (tr->o.resume && !trim_log(lp, start, e))
        return false;
    /* --overwrite over a checkpoint: that checkpoint stays until this run's first save, and
     * so does the log of its steps (emptied at start-up, a run that stopped before its first
     * save left the old checkpoint with the new run's lines, and a --resume then mixed both
     * runs in one log). The lines go to LOG.new until the first save renames it over LOG. */
    if (tr->o.overwrite && rt_checkpoint_exists(tr->out_dir) && stat(lp, &st) == 0 &&
        S_ISREG(st.st_mode)) {
        size_t n = strlen(lp) + 8;
        if (!(tr->log_new = malloc(n)))
            return rt_err(e, RT_ERR_NOMEM, "out of memory");
        snprintf(tr->log_new, n, "%s.new", lp);
        lp = tr->log_new;
    }
    /* O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of waiting forever */
    int fd = open(lp, O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0)
        return rt_err(e, RT_ERR_IO, "%s: cannot open the metrics log: %s", lp,
                      errno == ENXIO ? "a FIFO with no reader" : strerror(errno));
    bool ok = fstat(fd, &st) == 0 || rt_err(e, RT_ERR_IO, "%s: %s", lp, strerror(errno));
    ok = ok && check_log_file(tr, lp, &st, e); /* again: it may not have existed */
    if (ok && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) != 0)
        ok = rt_err(e, RT_ERR_USAGE, "%s %s is in use by another trainer; two runs cannot share a "
                    "metrics log: pass another --log", tr->o.log ? "--log" : "the metrics log", lp);
    if (ok && !tr->o.resume && S_ISREG(st.st_mode) && ftruncate(fd, 0) != 0)
        ok = rt_err(e, RT_ERR_IO, "%s: cannot empty the metrics log: %s", lp, strerror(errno));
    int fl = fcntl(fd, F_GETFL);
    if (ok && fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (ok && !(tr->log = fdopen(fd, "a")))
        ok = rt_err(e, RT_ERR_IO, "%s: %s", lp, strerror(errno));
    if (!ok)
        close(fd);
    return ok;
}

/* ---- training ---- */

/* Absolute form of an existing path for the checkpoint metadata. A path too long to keep
 * whole is an error: a truncated one would send a later --resume to another file. */
static bool remember_path(char *dst, size_t cap, const char *path, RtError *e)
{
    char *abs = realpath(path, NULL);
    int n = snprintf(dst, cap, "%s", abs ? abs : path);
    free(abs);
    if (n < 0 || (size_t)n >= cap)
        return rt_err(e, RT_ERR_USAGE, "%s: path too long to record in the checkpoint (%d "
                      "bytes, at most %zu)", path, n, cap - 1);
    return true;
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
    if (!remember_path(tr->run.data, sizeof tr->run.data, tr->o.data, e))
        return false;
    if (tr->o.val_data) {
        if (!remember_path(tr->run.val_data, sizeof tr->run.val_data, tr->o.val_data, e))
            return false;
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
static double evaluate(Trainer *tr, int32_t *x, int32_t *y, RtError *e, bool *ok)
{
    double sum = 0;
    *ok = true;
    for (int64_t i = 0; i < tr->o.eval_batches; i++) {
        rt_batch_fill(tr->val, tr->m->batch, tr->m->seq_len, tr->ctx->seed, RT_STREAM_VAL_BATCH,
                      (uint64_t)i, x, y);
        float loss;
        if (!rt_eval_loss_dist(tr->ctx, tr->dist, x, y, &loss, e)) {
            *ok = false;
            return NAN;
        }
        sum += loss;
    }
    return sum / (double)tr->o.eval_batches;
}

/* For a message after a stop: "the last checkpoint in DIR (step N) is kept", or that DIR
 * holds none (a run can stop before its first save). */
static void what_is_kept(Trainer *tr, char *buf, size_t cap)
{
    RtRunInfo run;
    int64_t step = rt_checkpoint_exists(tr->out_dir) ? peek_checkpoint(tr->out_dir, &run) : -1;
    if (step >= 0)
        snprintf(buf, cap, "the last checkpoint in %s (step %" PRId64 ") is kept", tr->out_dir,
                 step);
    else
        snprintf(buf, cap, "there is no checkpoint in %s", tr->out_dir);
}

/* Appends the step's metrics line; false (e filled) when it cannot be written. */
static bool log_metrics(Trainer *tr, int64_t step, const RtStepStats *st, double tok_s,
                        double val_loss, RtError *e)
{
    if (!tr->log)
        return true;
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
    if (tr->dist) /* data-parallel: what the step's gradient and loss sums sent from here */
        rt_buf_printf(&b, ",\"ranks\":%d,\"reduced_bytes\":%" PRId64 ",\"sent_bytes\":%" PRIu64,
                      rt_dist_size(tr->dist), rt_grad_reduced_bytes(tr->m, &tr->sched, step), tr->step_sent);
    if (rt_dist_zero(tr->dist) == 1) /* ZeRO: the moment bytes this rank updates, of all */
        rt_buf_printf(&b, ",\"zero\":1,\"moment_bytes\":%" PRId64 ",\"moment_bytes_all\":%" PRId64,
                      rt_zero_moment_bytes(tr->m, &tr->sched, step, rt_dist_size(tr->dist), tr->rank),
                      rt_zero_moment_bytes(tr->m, &tr->sched, step, 1, 0));
    if (!isnan(val_loss)) {
        json_float(&b, "val_loss", val_loss);
        json_float(&b, "val_ppl", exp(val_loss));
        if (tr->o.data_kind == RT_DATA_TEXT)
            json_float(&b, "val_bits_per_byte", val_loss / log(2.0));
    }
    rt_buf_add(&b, "}\n", 2);
    bool ok = !b.oom;
    if (!ok)
        rt_err(e, RT_ERR_NOMEM, "out of memory writing the metrics of step %" PRId64, step);
    else if (fwrite(b.p, 1, b.len, tr->log) != b.len || fflush(tr->log) != 0) {
        int err = errno;
        char kept[4200];
        what_is_kept(tr, kept, sizeof kept);
        ok = rt_err(e, err == ENOSPC || err == EDQUOT ? RT_ERR_NOSPC : RT_ERR_IO,
                    "%s: cannot write the metrics of step %" PRId64 ": %s; stopped, %s",
                    tr->log_path, step, strerror(err), kept);
    }
    rt_buf_fini(&b);
    return ok;
}

static bool save(Trainer *tr, int64_t done, RtError *e)
{
    const RtIo *io = tr->hooks ? &tr->hooks->io : NULL;
    if (!rt_checkpoint_save(tr->ctx, tr->out_dir, done, &tr->run, io, e))
        return false; /* the message says what is on disk */
    if (tr->log_new) { /* the old checkpoint is gone: its log gives way to this run's */
        if (rename(tr->log_new, tr->log_path) != 0)
            return rt_err(e, RT_ERR_IO, "%s: cannot rename to %s: %s; the checkpoint of step %" PRId64
                          " is in %s", tr->log_new, tr->log_path, strerror(errno), done, tr->out_dir);
        free(tr->log_new);
        tr->log_new = NULL;
    }
    report_line(tr, "step %" PRId64 ": checkpoint written to %s", done, tr->out_dir);
    return true;
}

/* s with the schedule options of o applied (percentages resolved against the total). */
static void apply_sched_options(const Options *o, RtSchedule *s)
{
    if (opt_given(o, "--total-steps"))
        s->steps = o->total_steps;
    const struct {
        const char *name;
        const Amount *a;
        int64_t *count;
        double *pct;
    } pos[] = {{"--warmup", &o->warmup, &s->warmup, &s->warmup_pct},
               {"--warm-start", &o->warm_start, &s->warm_start, &s->warm_start_pct},
               {"--reset-every", &o->reset_every, &s->reset_every, &s->reset_every_pct},
               {"--restart-warmup", &o->restart_warmup, &s->restart_warmup, &s->restart_warmup_pct}};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
        if (!opt_given(o, pos[i].name))
            continue;
        *pos[i].pct = pos[i].a->is_percent ? pos[i].a->percent : -1;
        if (!pos[i].a->is_percent)
            *pos[i].count = pos[i].a->n;
    }
    const struct {
        const char *name;
        double v, *field;
    } num[] = {{"--lr", o->lr, &s->lr}, {"--relora-lr", o->relora_lr, &s->relora_lr},
               {"--min-lr-ratio", o->min_lr_ratio, &s->min_lr_ratio}, {"--prune", o->prune, &s->prune}};
    for (size_t i = 0; i < sizeof num / sizeof num[0]; i++)
        if (opt_given(o, num[i].name))
            *num[i].field = num[i].v;
    rt_schedule_resolve(s);
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
    if (a->kind != RT_SCHED_CONSTANT && a->min_lr_ratio != b->min_lr_ratio)
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

/* The schedule of a resumed run: the checkpoint's; an option on the command line that
 * differs from it is an error naming the field. */
static bool resume_schedule(Trainer *tr, RtError *e)
{
    RtSchedule want = tr->saved.schedule;
    apply_sched_options(&tr->o, &want);
    const char *field = schedule_diff(&want, &tr->saved.schedule);
    if (field)
        return rt_err(e, RT_ERR_USAGE,
                      "%s: the checkpoint was trained with another schedule (%s differs); a resumed "
                      "run continues its own schedule, so leave --%s out or start a fresh run",
                      tr->o.resume, field, strncmp(field, "the ", 4) == 0 ? "total-steps" : field);
    field = schedule_diff(&tr->sched, &tr->saved.schedule);
    if (field)
        fprintf(tr->err, "%s: note: the checkpoint's schedule differs from this trainer's default in "
                "%s; continuing the checkpoint's schedule\n", tr->prog, field);
    tr->sched = tr->saved.schedule;
    return true;
}

/* %g, with NaN written as NaN whatever its sign bit */
static void fmt_number(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "NaN");
    else
        snprintf(buf, n, "%g", v);
}

/* A step whose loss or gradient norm is not finite: its update was not applied and no
 * checkpoint is written, so the one on disk stays the last finite state. */
static void diverged(Trainer *tr, int64_t step, int res, const RtStepStats *st, RtError *e)
{
    bool loss = res == RT_STEP_LOSS_NONFINITE;
    char kept[4200], l[32], g[32];
    what_is_kept(tr, kept, sizeof kept);
    fmt_number(l, sizeof l, st->loss);
    fmt_number(g, sizeof g, st->grad_norm);
    rt_err(e, RT_ERR_USAGE,
           "training diverged at step %" PRId64 ": the %s is %s (loss %s, gradient norm %s, lr %g); "
           "stopped without applying that step's update; %s",
           step, loss ? "loss" : "gradient norm", isnan(loss ? st->loss : st->grad_norm) ? "NaN" : "infinite", l, g,
           (double)st->lr, kept);
}

/* The run's schedule is valid and --steps is within its horizon (then set when not given).
 * A resumed run cannot move the horizon: its schedule is the checkpoint's. */
static bool check_run_schedule(Trainer *tr, RtError *e)
{
    if (!rt_schedule_check(&tr->sched, tr->m, e)) {
        /* the rule names the schedule's field; say where its values came from */
        char given[256] = "", v[64];
        size_t n = 0;
        for (int i = 0; i < N_OPTS && n < sizeof given; i++)
            if (tr->o.given[i] && opts[i].flags & SCHEDULE &&
                format_value(&opts[i], &tr->o, v, sizeof v))
                n += (size_t)snprintf(given + n, sizeof given - n, "%s%s %s", n ? ", " : "", opts[i].name, v);
        char msg[sizeof e->msg];
        snprintf(msg, sizeof msg, "%s", e->msg);
        e->code = RT_OK; /* rt_err keeps the first message: this one replaces it */
        if (tr->o.resume)
            return rt_err(e, RT_ERR_USAGE, "the checkpoint's schedule: %s", msg);
        return rt_err(e, RT_ERR_USAGE, "%s%s%s (see --help)", msg, n ? "; from " : " (the spec's schedule)",
                      given);
    }
    if (!opt_given(&tr->o, "--steps"))
        tr->o.steps = tr->sched.steps;
    if (tr->o.steps <= tr->sched.steps)
        return true;
    if (tr->o.resume)
        return rt_err(e, RT_ERR_USAGE, "--steps %" PRId64 " is past the horizon of the checkpoint's "
                      "schedule, %" PRId64 " steps (the cosine ends there); a resumed run keeps its "
                      "schedule, so a longer run must start afresh with --total-steps %" PRId64,
                      tr->o.steps, tr->sched.steps, tr->o.steps);
    return rt_err(e, RT_ERR_USAGE, "--steps %" PRId64 " is past the schedule's horizon of %" PRId64
                  " steps (the cosine ends there); train a longer schedule with --total-steps %" PRId64
                  " or rebuild with -D train.steps=%" PRId64, tr->o.steps, tr->sched.steps, tr->o.steps,
                  tr->o.steps);
}

/* A 64-bit checksum of each checkpointed tensor live after `done` steps (0 for the others):
 * splitmix64 over its bytes, 8 at a time. sums: [n_tensors]. */
static void checksums(const Trainer *tr, int64_t done, uint64_t *sums)
{
    const RtModel *m = tr->m;
    for (int i = 0; i < m->n_tensors; i++) {
        const RtTensorInfo *t = &m->tensors[i];
        sums[i] = 0;
        if (!rt_tensor_is_persistent(t) || !rt_tensor_is_live(t, &tr->sched, done))
            continue;
        size_t bytes = (size_t)rt_tensor_numel(t) * rt_dtype_size(t->dtype);
        const unsigned char *p = rt_tensor_host(tr->ctx, i); /* a device's: pulled by the caller */
        uint64_t h = (uint64_t)bytes;
        size_t j = 0;
        for (; j + 8 <= bytes; j += 8) {
            uint64_t w;
            memcpy(&w, p + j, 8);
            h = rt_splitmix64(h ^ w);
        }
        for (; j < bytes; j++)
            h = rt_splitmix64(h ^ p[j]);
        sums[i] = h;
    }
}

/* Checks that every rank holds the same parameters and optimizer state after `done` steps
 * (before a checkpoint and at the end): a mismatch, which would mean the ranks no longer
 * train one model, is an error naming the first tensor and rank that differ. */
static bool check_ranks_equal(Trainer *tr, int64_t done, RtError *e)
{
    int N = rt_dist_size(tr->dist), nt = tr->m->n_tensors;
    if (N == 1)
        return true;
    uint64_t *all = malloc(sizeof *all * (size_t)nt * (size_t)(N + 1));
    if (!all)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    uint64_t *mine = all + (size_t)nt * (size_t)N;
    checksums(tr, done, mine);
    bool ok = rt_dist_allgather(tr->dist, mine, all, sizeof *all * (size_t)nt, e);
    for (int q = 1; ok && q < N; q++)
        for (int i = 0; ok && i < nt; i++)
            if (all[(size_t)q * (size_t)nt + (size_t)i] != all[i]) {
                tr->shared_error = tr->agreed = true;
                ok = rt_err(e, RT_ERR_MISMATCH,
                            "after step %" PRId64 " the ranks hold different values: tensor %s "
                            "differs between rank 0 and rank %d (checksums %016" PRIx64 " and %016"
                            PRIx64 "); no checkpoint was written",
                            done, tr->m->tensors[i].name, q, all[i], all[(size_t)q * (size_t)nt + (size_t)i]);
            }
    free(all);
    return ok;
}

/* Fault injection for tests/mpi.sh: with RELORAC_DIST_FAULT=skew in its environment, rank 1
 * flips the lowest bit of its first parameter before each cross-rank check, which must then
 * fail. */
static void skew_for_test(Trainer *tr)
{
    const char *f = getenv("RELORAC_DIST_FAULT");
    if (tr->rank != 1 || !f || strcmp(f, "skew") != 0)
        return;
    for (int i = 0; i < tr->m->n_tensors; i++)
        if (tr->m->tensors[i].pool == RT_POOL_PARAMS) {
            *(unsigned char *)rt_tensor_host(tr->ctx, i) ^= 1;
            return;
        }
}

/* Whether every rank passes ok; *failed_rank is the first that did not (-1: none). false
 * on an MPI failure too (e filled). */
static bool all_ok(Trainer *tr, bool ok, int *failed_rank, RtError *e)
{
    int N = rt_dist_size(tr->dist);
    *failed_rank = -1;
    if (N == 1)
        return ok;
    int32_t mine = ok, *all = malloc(sizeof *all * (size_t)N);
    RtError ce = {0};
    if (!all || !rt_dist_allgather(tr->dist, &mine, all, sizeof mine, &ce)) {
        if (ok && !all)
            rt_err(e, RT_ERR_NOMEM, "out of memory");
        else if (ok)
            *e = ce;
        free(all);
        return false;
    }
    bool every = true;
    for (int q = N - 1; q >= 0; q--)
        if (!all[q]) {
            every = false;
            *failed_rank = q;
        }
    free(all);
    return every;
}

/* Joins the job when launched by mpirun: the rank count must divide a step's micro-steps. */
static bool dist_setup(Trainer *tr, RtError *e)
{
    const RtModel *m = tr->m;
    if (!rt_dist_create(&tr->dist, e))
        return false;
    tr->rank = rt_dist_rank(tr->dist);
    int N = rt_dist_size(tr->dist);
    if (tr->rank > 0)
        tr->o.quiet = true;
    if (tr->dist) /* mpirun relays our output through a terminal of its own: plain lines */
        tr->tty = false;
    if (tr->dist && m->device && N > 1 && (!m->device->dist_open || !m->device->sum)) {
        tr->shared_error = tr->agreed = true;
        return rt_err(e, RT_ERR_USAGE, "data-parallel training under mpirun needs a device layer that sums across "
                      "ranks, and %s has none: launch one rank", m->device->name ? m->device->name : "this device");
    }
    for (int i = 0; tr->dist && i < m->n_tensors; i++)
        if ((m->tensors[i].flags & RT_T_GRAD) && m->tensors[i].dtype != RT_F32) {
            tr->shared_error = tr->agreed = true;
            return rt_err(e, RT_ERR_USAGE, "data-parallel training sums f32 gradients, and %s is %s",
                          m->tensors[i].name, rt_dtype_name(m->tensors[i].dtype));
        }
    if (tr->o.zero == 1 && !tr->dist) {
        tr->shared_error = tr->agreed = true;
        return rt_err(e, RT_ERR_USAGE, "--zero 1 shards the optimizer state over the ranks of a data-parallel "
                      "job: launch the trainer with mpirun -np N (N > 1)");
    }
    if (tr->o.zero == 1 && !rt_zero_check(m, e)) {
        tr->shared_error = tr->agreed = true;
        return false;
    }
    rt_dist_set_zero(tr->dist, (int)tr->o.zero);
    int64_t k = m->batch / m->micro_batch;
    if (k % N != 0) {
        tr->shared_error = tr->agreed = true;
        return rt_err(e, RT_ERR_USAGE,
                      "cannot split a step over %d ranks: each step is batch / micro_batch = %d / "
                      "%d = %" PRId64 " micro-steps, and each rank must run the same whole number "
                      "of them; launch a number of ranks that divides %" PRId64
                      ", or rebuild with another -D train.micro_batch",
                      N, m->batch, m->micro_batch, k, k);
    }
    return true;
}

/* Opens the tokenizer at path for this model: token data only, and ids the model has. */
static bool open_tokenizer(Trainer *tr, const char *path, RtError *e)
{
    if (tr->o.data_kind == RT_DATA_TEXT)
        return rt_err(e, RT_ERR_USAGE, "--tokenizer %s: this model reads byte-level text (--data-kind text), whose "
                      "tokens are bytes; a tokenizer goes with token data (--data-kind tokens)", path);
    if (!rt_tok_open(&tr->tok, path, e))
        return false;
    if (rt_tok_vocab(tr->tok) > tr->m->vocab)
        return rt_err(e, RT_ERR_USAGE, "%s: the tokenizer has %lld ids, the model's vocab is %d: its ids from %d up "
                      "have no embedding", path, (long long)rt_tok_vocab(tr->tok), tr->m->vocab, tr->m->vocab);
    return true;
}

/* --init-from: the model weights of the checkpoint in DIR over the initialised model (a
 * fresh run: adapters and optimizer state stay as rt_init left them). */
static bool init_from(Trainer *tr, RtError *e)
{
    RtImportInfo info;
    /* the import writes the host copies (a device's mirror: current first, then sent back) */
    rt_ctx_pull(tr->ctx, &tr->sched, 0);
    if (!rt_hf_import(tr->ctx, tr->o.init_from, &info, e))
        return false;
    rt_ctx_push(tr->ctx, &tr->sched, 0);
    if (!remember_path(tr->run.init_from, sizeof tr->run.init_from, tr->o.init_from, e))
        return false;
    report_line(tr, "initialised from %s: %d tensors (%s) of a %s checkpoint in %d file%s; step 0, fresh optimizer "
                "state", tr->o.init_from, info.n_read, info.dtypes, info.family, info.n_files,
                info.n_files == 1 ? "" : "s");
    if (info.n_unused)
        fprintf(tr->err, "%s: note: %d tensor%s in %s %s no part of the model and %s not read (%s%s)\n", tr->prog,
                info.n_unused, info.n_unused == 1 ? "" : "s", tr->o.init_from, info.n_unused == 1 ? "is" : "are",
                info.n_unused == 1 ? "was" : "were", info.unused, info.n_unused > 3 ? ", ..." : "");
    return true;
}

/* Everything before the first step. Returns -1 to train, else the exit status. */
static int setup(Trainer *tr, int64_t *start_out, RtError *e)
{
    const RtModel *m = tr->m;
    if (tr->o.resume && opt_given(&tr->o, "--init-from")) {
        rt_err(e, RT_ERR_USAGE, "--init-from starts a fresh run from other weights and --resume continues a run "
               "from its checkpoint: give one of them (see --help)");
        return 2;
    }
    tr->out_dir = !opt_given(&tr->o, "--out") && tr->o.resume ? tr->o.resume : tr->o.out;
    /* usage errors before anything is created: a mistyped --resume DIR used to be made
     * (with a lock file in it) before the missing checkpoint was noticed */
    if (tr->o.resume && !rt_checkpoint_exists(tr->o.resume))
        return rt_err(e, RT_ERR_MISSING, "%s: no checkpoint to resume (neither %s/latest nor "
                      "%s/trainer.safetensors exists)", tr->o.resume, tr->o.resume, tr->o.resume), 2;
    if (!tr->o.resume && !check_run_schedule(tr, e))
        return 2;
    if (!check_memory(tr, e) || (tr->rank == 0 && !claim_out_dir(tr, e)))
        return 2;
    if (!rt_ctx_create(&tr->ctx, m, (int)tr->o.threads, tr->o.seed, e))
        return 2;
    rt_gemm_report(tr->o.quiet ? NULL : tr->out, tr->rank > 0 ? NULL : tr->err, tr->prog, tr->ctx);
    int64_t start = 0;
    if (tr->o.resume) {
        uint64_t seed;
        RtRunInfo *saved = &tr->saved;
        if (!rt_checkpoint_load(tr->ctx, tr->o.resume, &start, &seed, saved, e))
            return 2;
        if (opt_given(&tr->o, "--seed") && seed != tr->o.seed)
            fprintf(tr->err, "%s: note: --seed %" PRIu64 " ignored; resuming with the "
                    "checkpoint's seed %" PRIu64 "\n", tr->prog, tr->o.seed, seed);
        tr->ctx->seed = seed;
        /* continue on the run's data unless the command line names other data */
        if (!opt_given(&tr->o, "--data") && saved->data[0]) {
            tr->o.data = saved->data;
            if (!opt_given(&tr->o, "--val-data"))
                tr->o.val_data = saved->val_data[0] ? saved->val_data : NULL;
            if (!opt_given(&tr->o, "--data-kind"))
                tr->o.data_kind = saved->data_kind;
        }
        if (!open_data(tr, e) || !resume_schedule(tr, e))
            return 2;
        report_line(tr, "resumed from %s at step %" PRId64, tr->o.resume, start);
    } else {
        if (!open_data(tr, e))
            return 2;
        rt_init(tr->ctx);
        if (tr->o.init_from && !init_from(tr, e))
            return 2;
    }
    /* a tokenizer is only recorded (and checked) for --sample later: training reads tokens */
    if (tr->o.tokenizer) {
        if (!open_tokenizer(tr, tr->o.tokenizer, e) ||
            !remember_path(tr->run.tokenizer, sizeof tr->run.tokenizer, tr->o.tokenizer, e))
            return 2;
    } else if (tr->o.resume) {
        memcpy(tr->run.tokenizer, tr->saved.tokenizer, sizeof tr->run.tokenizer);
    }
    if (tr->o.resume && !check_run_schedule(tr, e))
        return 2;
    tr->run.schedule = tr->sched;
    char desc[512];
    rt_schedule_describe(&tr->sched, desc, sizeof desc);
    report_line(tr, "schedule %s", desc);
    if (tr->rank == 0 && !open_log(tr, start, e))
        return 2;
    *start_out = start;
    if (start >= tr->o.steps && tr->o.resume) {
        report_line(tr, "checkpoint is at step %" PRId64 ", --steps is %" PRId64
                    "; nothing to do", start, tr->o.steps);
        return 0;
    }
    if (tr->dist) {
        int N = rt_dist_size(tr->dist);
        int64_t k = m->batch / m->micro_batch;
        const RtSchedule *s = &tr->sched;
        char fb[32] = "-", lb[32] = "-";
        if (s->kind != RT_SCHED_RELORA || s->warm_start > 0)
            rt_mem_bytes(fb, sizeof fb, (uint64_t)rt_grad_reduced_bytes(m, s, 0));
        if (s->kind == RT_SCHED_RELORA)
            rt_mem_bytes(lb, sizeof lb, (uint64_t)rt_grad_reduced_bytes(m, s, s->warm_start));
        report_line(tr, "data-parallel: %d ranks (%s), %" PRId64 " of the %" PRId64 " micro-steps "
                    "of each step per rank; gradients summed per step: %s in the full-rank phase, "
                    "%s in the ReLoRA phase", N, rt_dist_library(tr->dist), k / N, k, fb, lb);
        if (rt_dist_zero(tr->dist) == 1) {
            int64_t step = s->kind == RT_SCHED_RELORA ? s->warm_start : 0;
            rt_mem_bytes(fb, sizeof fb, (uint64_t)rt_zero_moment_bytes(m, s, step, N, 0));
            rt_mem_bytes(lb, sizeof lb, (uint64_t)rt_zero_moment_bytes(m, s, step, 1, 0));
            report_line(tr, "ZeRO stage 1: rank 0 updates %s of the %s of Adam moments of the %s phase",
                        fb, lb, s->kind == RT_SCHED_RELORA ? "ReLoRA" : "training");
        }
    }
    return -1;
}

/* The signal any rank has received, agreed by all (so all stop after the same step). */
static int agreed_signal(Trainer *tr, RtError *e, bool *ok)
{
    int sig = pending_signal, N = rt_dist_size(tr->dist);
    *ok = true;
    if (N == 1)
        return sig;
    int32_t mine = sig, *all = malloc(sizeof *all * (size_t)N);
    if (!all || !rt_dist_allgather(tr->dist, &mine, all, sizeof mine, e)) {
        if (!all)
            rt_err(e, RT_ERR_NOMEM, "out of memory");
        free(all);
        *ok = false;
        return 0;
    }
    sig = 0;
    for (int q = 0; q < N && !sig; q++)
        sig = all[q];
    free(all);
    return sig;
}

static int train(Trainer *tr, RtError *e)
{
    const RtModel *m = tr->m;
    if (!dist_setup(tr, e))
        return 2;
    int64_t start = 0;
    int rc = setup(tr, &start, e), failed;
    bool every = all_ok(tr, rc < 0, &failed, e);
    if (rc >= 0) {
        tr->agreed = tr->agreed || (rc == 0 && every);
        return rc;
    }
    if (!every) {
        if (failed >= 0) {
            tr->agreed = true;
            rt_err(e, RT_ERR_USAGE, "rank %d could not start (its message is above); stopped", failed);
        }
        return 2;
    }
    /* a device's own sum across the ranks (CUDA: NCCL), every rank there by now */
    if (m->device && rt_dist_size(tr->dist) > 1 && !m->device->dist_open(tr->ctx, tr->dist, e)) {
        tr->agreed = e->code == RT_ERR_DEVICE; /* each rank says its part */
        return 2;
    }

    size_t n_tok = (size_t)m->batch * (size_t)m->seq_len;
    int32_t *x = malloc(n_tok * sizeof *x), *y = malloc(n_tok * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        rt_err(e, RT_ERR_NOMEM, "out of memory");
        return 2;
    }
    if (start >= tr->o.steps) { /* a fresh run of --steps 0: the initial (or imported) model, evaluated and saved */
        bool ok = true;
        if (tr->has_val) {
            double v = evaluate(tr, x, y, e, &ok);
            if (ok)
                report_line(tr, "step 0: val loss %.4f | ppl %.3f", v, exp(v));
        }
        free(x);
        free(y);
        if (!ok)
            return 2;
        return tr->rank > 0 || save(tr, 0, e) ? 0 : e->code == RT_ERR_NONFINITE ? 1 : 2;
    }
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; /* a second signal kills at once; saved files stay whole */
    pending_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    rc = 0;
    double t_start = now_s();
    for (int64_t step = start; step < tr->o.steps; step++) {
        rt_batch_fill(tr->train, m->batch, m->seq_len, tr->ctx->seed, RT_STREAM_TRAIN_BATCH,
                      (uint64_t)step, x, y);
        double t0 = now_s();
        RtStepStats st = {0};
        uint64_t sent0 = rt_dist_bytes_sent(tr->dist);
        int res = rt_step_dist(tr->ctx, tr->dist, &tr->sched, x, y, step, &st, e);
        tr->step_sent = rt_dist_bytes_sent(tr->dist) - sent0;
        if (res == RT_STEP_COMM_FAILED) {
            rc = 2;
            break;
        }
        double t1 = now_s(), tok_s = (double)n_tok / (t1 - t0 > 1e-9 ? t1 - t0 : 1e-9);
        int64_t done = step + 1;
        double eta = (t1 - t_start) / (double)(done - start) * (double)(tr->o.steps - done);
        if (res != RT_STEP_OK) {
            RtError le = {0};
            log_metrics(tr, step, &st, tok_s, NAN, &le); /* the line says diverged; best effort */
            diverged(tr, step, res, &st, e);
            tr->shared_error = tr->agreed = true; /* every rank saw the same sums */
            rc = 1;
            break;
        }
        double val_loss = NAN;
        bool at_end = done == tr->o.steps;
        if (tr->has_val && ((tr->o.eval_every > 0 && done % tr->o.eval_every == 0) || at_end)) {
            bool ok;
            val_loss = evaluate(tr, x, y, e, &ok);
            if (!ok) {
                rc = 2;
                break;
            }
        }
        if (!log_metrics(tr, step, &st, tok_s, val_loss, e)) {
            rc = 2;
            break;
        }
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
        bool ok;
        int sig = agreed_signal(tr, e, &ok);
        if (!ok) {
            rc = 2;
            break;
        }
        if (at_end || sig ||
            (tr->o.checkpoint_every > 0 && done % tr->o.checkpoint_every == 0)) {
            /* ZeRO: every rank's moments whole again (checked equal, saved as unsharded) */
            if (rt_dist_zero(tr->dist) == 1 && !rt_zero_gather_moments(tr->ctx, tr->dist, &tr->sched, step, e)) {
                rc = 2;
                break;
            }
            if (tr->dist)
                rt_ctx_pull(tr->ctx, &tr->sched, done); /* a device's tensors, for the checksums */
            skew_for_test(tr);
            if (!check_ranks_equal(tr, done, e)) {
                rc = 2;
                break;
            }
            bool saved = tr->rank > 0 || save(tr, done, e);
            int failed;
            if (!all_ok(tr, saved, &failed, e)) {
                if (saved && failed == 0) { /* rank 0 said why */
                    tr->shared_error = tr->agreed = true;
                    rt_err(e, RT_ERR_IO, "rank 0 could not write the checkpoint");
                } else if (!saved) {
                    tr->agreed = failed >= 0;
                }
                rc = e->code == RT_ERR_NONFINITE ? 1 : 2;
                break;
            }
        }
        if (sig && tr->rank > 0) {
            tr->agreed = true;
            rc = 128 + sig;
            break;
        }
        if (sig) {
            clear_bar(tr);
            fprintf(tr->err,
                    "%s: stopped by %s after step %" PRId64 "; checkpoint in %s\n"
                    "%s: resume with: %s --resume %s (plus your other options)\n",
                    tr->prog, sig == SIGINT ? "SIGINT" : "SIGTERM", done, tr->out_dir, tr->prog,
                    tr->prog, tr->out_dir);
            fflush(tr->err);
            tr->agreed = true;
            rc = 128 + sig;
            break;
        }
    }
    if (rc == 0)
        tr->agreed = true;
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

/* Prompt to token ids (*out malloc'd): bytes for text models, the tokenizer's encoding with
 * one, else whitespace-separated ids. -1 after an error. */
static int64_t encode_prompt(Trainer *tr, int32_t **out, RtError *e)
{
    const char *s = tr->o.sample;
    size_t len = strlen(s);
    int64_t n = 0;
    if (tr->tok) {
        if (!rt_tok_encode(tr->tok, s, len, out, &n, e))
            return -1;
        for (int64_t i = 0; i < n; i++)
            if ((*out)[i] >= tr->m->vocab)
                return rt_err(e, RT_ERR_USAGE, "the tokenizer encodes the prompt with id %d, beyond the model's "
                              "vocab %d", (*out)[i], tr->m->vocab), -1;
        return n;
    }
    int32_t *ids = *out = malloc((len + 1) * sizeof *ids);
    if (!ids)
        return rt_err(e, RT_ERR_NOMEM, "out of memory"), -1;
    if (tr->o.data_kind == RT_DATA_TEXT) {
        for (; *s; s++, n++) {
            ids[n] = (unsigned char)*s;
            if (ids[n] >= tr->m->vocab)
                return rt_err(e, RT_ERR_USAGE, "prompt byte 0x%02x is >= vocab %d", ids[n],
                              tr->m->vocab), -1;
        }
        return n;
    }
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v >= tr->m->vocab)
            return rt_err(e, RT_ERR_USAGE, "prompt must be token ids below %d (or text with --tokenizer), got '%s'",
                          tr->m->vocab, s), -1;
        ids[n++] = (int32_t)v;
        s = end;
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == ',')
            s++;
    }
    return n;
}

/* Prints token t: a byte for text models, its text with a tokenizer (U+FFFD for an id the
 * tokenizer lacks), else " id". */
static void put_token(Trainer *tr, int32_t t, bool first)
{
    if (tr->tok) {
        RtBuf b = {0};
        if (rt_tok_piece(tr->tok, t, &b) && !b.oom)
            fwrite(b.p ? b.p : "", 1, b.len, tr->out);
        else
            fputs("\xEF\xBF\xBD", tr->out);
        rt_buf_fini(&b);
    } else if (tr->o.data_kind == RT_DATA_TEXT) {
        fputc(t, tr->out);
    } else {
        fprintf(tr->out, "%s%d", first ? "" : " ", t);
    }
}

static int sample(Trainer *tr, RtError *e)
{
    const RtModel *m = tr->m;
    if (!check_memory(tr, e) || !rt_ctx_create(&tr->ctx, m, (int)tr->o.threads, tr->o.seed, e))
        return 2;
    const char *dir = tr->o.resume ? tr->o.resume : tr->o.out;
    int64_t step = 0;
    uint64_t seed = tr->o.seed;
    if (tr->o.resume || rt_checkpoint_exists(dir)) {
        if (!rt_checkpoint_load(tr->ctx, dir, &step, &seed, &tr->saved, e))
            return 2;
        if (!tr->o.quiet)
            fprintf(tr->err, "%s: sampling from %s (step %" PRId64 ")\n", tr->prog, dir, step);
    } else {
        rt_init(tr->ctx);
        if (tr->o.init_from) {
            RtImportInfo info;
            if (!rt_hf_import(tr->ctx, tr->o.init_from, &info, e))
                return 2;
            if (!tr->o.quiet)
                fprintf(tr->err, "%s: no checkpoint in %s; sampling from the weights in %s (--init-from)\n",
                        tr->prog, dir, tr->o.init_from);
        } else if (!tr->o.quiet) {
            fprintf(tr->err, "%s: no checkpoint in %s; sampling from the initial model\n",
                    tr->prog, dir);
        }
    }
    uint64_t sample_seed = opt_given(&tr->o, "--seed") ? tr->o.seed : seed;
    const char *tok_path = tr->o.tokenizer ? tr->o.tokenizer : tr->saved.tokenizer[0] ? tr->saved.tokenizer : NULL;
    if (tok_path && !open_tokenizer(tr, tok_path, e))
        return 2;
    if (tok_path && !tr->o.quiet)
        fprintf(tr->err, "%s: tokenizer %s (%s, %lld ids)\n", tr->prog, tok_path, rt_tok_kind(tr->tok),
                (long long)rt_tok_vocab(tr->tok));
    /* Memory is the prompt plus one window of seq_len tokens, whatever --tokens says (the
     * whole output once was: strlen + tokens + 1 wrapped for --tokens near 2^62). */
    int64_t T = m->seq_len;
    int32_t *ids = NULL;
    int32_t *win = malloc((size_t)T * sizeof *win), *x = malloc((size_t)T * sizeof *x);
    float *logits = malloc((size_t)m->vocab * sizeof *logits);
    int rc = 0;
    int64_t n = win && x && logits ? encode_prompt(tr, &ids, e) : -2;
    if (n == -2)
        rc = (rt_err(e, RT_ERR_NOMEM, "out of memory"), 2);
    else if (n < 0)
        rc = 2;
    else if (n == 0)
        rc = (rt_err(e, RT_ERR_USAGE, "--sample needs a non-empty prompt"), 2);
    if (rc == 0) {
        if (tr->tok) /* the prompt as written: decoding it could differ (a dropped space) */
            fputs(tr->o.sample, tr->out);
        for (int64_t i = 0; i < n && !tr->tok; i++)
            put_token(tr, ids[i], i == 0);
        int64_t w = n < T ? n : T; /* the window: the last w tokens */
        memcpy(win, ids + n - w, (size_t)w * sizeof *win);
        for (int64_t i = 0; i < tr->o.tokens; i++) {
            memset(x, 0, (size_t)T * sizeof *x);
            memcpy(x, win, (size_t)w * sizeof *x);
            rt_logits(tr->ctx, x, w - 1, logits);
            float u = rt_rng_uniform(sample_seed, RT_STREAM_SAMPLE, (uint64_t)i);
            int32_t t = sample_token(logits, m->vocab, (float)tr->o.temperature, u);
            if (w == T)
                memmove(win, win + 1, (size_t)(T - 1) * sizeof *win);
            else
                w++;
            win[w - 1] = t;
            put_token(tr, t, false);
            if (fflush(tr->out) != 0) { /* a full disk or closed output: stop, say so */
                rc = (rt_err(e, RT_ERR_IO, "cannot write the sample to standard output: %s",
                             strerror(errno)), 2);
                break;
            }
        }
        if (rc == 0)
            fputc('\n', tr->out);
    }
    free(ids);
    free(win);
    free(x);
    free(logits);
    return rc;
}

int rt_main_hooked(int argc, char **argv, const RtModel *m, const RtHooks *hooks)
{
    Trainer tr = {.m = m, .hooks = hooks, .lock_fd = -1, .sched = m->schedule};
    tr.out = hooks && hooks->out ? hooks->out : stdout;
    tr.err = hooks && hooks->err ? hooks->err : stderr;
    tr.prog = argc > 0 && argv[0] ? argv[0] : "train";
    RtError e = {0};
    if (!rt_model_validate_program(m, &e)) {
        fprintf(tr.err, "%s: internal error: invalid model table: %s\n", tr.prog, e.msg);
        return 2;
    }
    int rc;
    if (!parse_options(&tr, argc, argv)) {
        rc = 2;
    } else if (tr.o.help || tr.o.markdown) {
        if (tr.o.markdown)
            print_markdown(&tr);
        else
            print_help(&tr);
        rc = 0;
    } else if (!check_sched_kind_options(&tr)) {
        rc = 2;
    } else {
        apply_sched_options(&tr.o, &tr.sched);
        int fd = fileno(tr.out);
        tr.tty = fd >= 0 && isatty(fd);
        rc = tr.o.sample ? sample(&tr, &e) : train(&tr, &e);
        if (tr.log && fclose(tr.log) != 0 && rc == 0)
            rc = (rt_err(&e, RT_ERR_IO, "%s: cannot write the metrics log: %s", tr.log_path,
                         strerror(errno)), 2);
        tr.log = NULL;
        struct stat st;
        if (tr.log_new && stat(tr.log_new, &st) == 0 && st.st_size == 0)
            unlink(tr.log_new);
        else if (tr.log_new)
            fprintf(tr.err, "%s: note: this run's metrics are in %s; %s still holds those of "
                    "the checkpoint in %s\n", tr.prog, tr.log_new, tr.log_path, tr.out_dir);
    }
    if (rc != 0 && rc < 128 && e.code != RT_OK && !(tr.rank > 0 && tr.shared_error)) {
        if (tr.rank > 0) /* its own error: say whose */
            snprintf(tr.prog_rank, sizeof tr.prog_rank, "%s: rank %d", tr.prog, tr.rank), tr.prog = tr.prog_rank;
        report_error(&tr, &e);
    }
    /* what went to stdout is the product of --sample and --help: a failed write is an error */
    if ((fflush(tr.out) != 0 || ferror(tr.out)) && rc == 0) {
        fprintf(tr.err, "%s: error: cannot write to standard output: %s\n", tr.prog,
                errno ? strerror(errno) : "write error");
        rc = 2;
    }
    fflush(tr.err);
    if (tr.lock_fd >= 0)
        close(tr.lock_fd);
    free(tr.log_path);
    /* A rank that stops alone (an I/O or MPI error) takes the job down, since the others
     * would wait for it in the next collective; a shared decision ends with MPI_Finalize. */
    if (tr.dist && rc != 0 && !tr.agreed)
        rt_dist_abort(tr.dist, rc);
    rt_dist_destroy(tr.dist);
    free(tr.log_new);
    rt_ctx_destroy(tr.ctx);
    rt_tok_close(tr.tok);
    rt_data_close(&tr.train_data);
    rt_data_close(&tr.val_data);
    return rc;
}

int rt_main(int argc, char **argv, const RtModel *m)
{
    return rt_main_hooked(argc, argv, m, NULL);
}
