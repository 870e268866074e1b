/* The trainer (rt_main) driven in-process on the fake model: same seed and resume give
 * bit-identical checkpoints and losses, errors give exit 2 with a message, SIGTERM writes a
 * checkpoint and exits 143, a full disk keeps the previous checkpoint, sampling works. */
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rt_internal.h"
/* The suite loop compiles one source per suite, so the fake model comes in by inclusion. */
#include "fake_model.c"

static char dir[64];
static char data_path[128];

static void setup(void)
{
    strcpy(dir, "/tmp/rt_train_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(data_path, sizeof data_path, "%s/data.txt", dir);
    FILE *f = fopen(data_path, "w");
    ck_assert_ptr_nonnull(f);
    static const char *const words[] = {"the ", "cat ", "sat ", "on ", "a ", "mat. ", "and ",
                                        "then ", "ran ", "away\n"};
    for (int i = 0; i < 4000; i++)
        fputs(words[rt_rng_u64(5, 5, (uint64_t)i) % 10], f);
    fclose(f);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static char *in_dir(const char *name)
{
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Output captured from one run. */
typedef struct Run {
    int rc;
    char out[16384], err[4096];
} Run;

static void read_back(FILE *f, char *buf, size_t cap)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Runs the trainer with the given arguments (NULL-terminated), with an optional io hook. */
static Run *run_io(const RtIo *io, const char *arg0, ...)
{
    char *argv[40] = {"fake-trainer"};
    int argc = 1;
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    Run *r = calloc(1, sizeof *r);
    RtHooks h = {.out = tmpfile(), .err = tmpfile()};
    if (io)
        h.io = *io;
    r->rc = rt_main_hooked(argc, argv, &fake_model, &h);
    read_back(h.out, r->out, sizeof r->out);
    read_back(h.err, r->err, sizeof r->err);
    return r;
}
#define RUN(...) run_io(NULL, __VA_ARGS__, (const char *)NULL)

static unsigned char *slurp(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", p);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    b[*n] = '\0';
    fclose(f);
    return b;
}

static void assert_same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    ck_assert_msg(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", a, b);
    free(x);
    free(y);
}

/* Losses by step from a metrics file; returns the number of lines. */
static int read_losses(const char *path, float *loss, int cap, long long *first_step)
{
    size_t n;
    char *text = (char *)slurp(path, &n);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        long long step;
        float l;
        ck_assert_msg(sscanf(line, "{\"step\":%lld,\"loss\":%g", &step, &l) == 2, "bad line %s",
                      line);
        if (lines == 0 && first_step)
            *first_step = step;
        if (lines < cap)
            loss[lines] = l;
        lines++;
    }
    free(text);
    return lines;
}

START_TEST(trainer_same_seed_is_bit_identical)
{
    Run *a = RUN("--data", data_path, "--steps", "30", "--out", in_dir("a"), "--threads", "2",
                 "--quiet");
    ck_assert_msg(a->rc == 0, "%s", a->err);
    Run *b = RUN("--data", data_path, "--steps", "30", "--out", in_dir("b"), "--threads", "3",
                 "--quiet");
    ck_assert_msg(b->rc == 0, "%s", b->err);
    assert_same_file(in_dir("a/trainer.safetensors"), in_dir("b/trainer.safetensors"));
    assert_same_file(in_dir("a/model.safetensors"), in_dir("b/model.safetensors"));
    float la[30], lb[30];
    ck_assert_int_eq(read_losses(in_dir("a/metrics.jsonl"), la, 30, NULL), 30);
    ck_assert_int_eq(read_losses(in_dir("b/metrics.jsonl"), lb, 30, NULL), 30);
    ck_assert(memcmp(la, lb, sizeof la) == 0);
    ck_assert_msg(la[29] < la[0] - 0.5f, "loss %g -> %g: the fake model does not learn", la[0],
                  la[29]);
    Run *c = RUN("--data", data_path, "--steps", "30", "--out", in_dir("c"), "--seed", "7",
                 "--quiet");
    ck_assert_int_eq(c->rc, 0);
    float lc[30];
    read_losses(in_dir("c/metrics.jsonl"), lc, 30, NULL);
    ck_assert(memcmp(la, lc, sizeof la) != 0);
    free(a);
    free(b);
    free(c);
}
END_TEST

START_TEST(trainer_resume_matches_uninterrupted)
{
    /* 50 steps cross the warm start switch (before step 10) and ReLoRA resets (after steps
     * 25 and 40: 26 and 41 steps done) */
    Run *a = RUN("--data", data_path, "--steps", "50", "--out", in_dir("full"), "--threads", "2",
                 "--eval-every", "10");
    ck_assert_msg(a->rc == 0, "%s", a->err);
    ck_assert_ptr_nonnull(strstr(a->out, "step 26: merged adapters, re-initialised, pruned"));
    ck_assert_ptr_nonnull(strstr(a->out, "step 10: warm start done"));
    ck_assert_ptr_nonnull(strstr(a->out, "bits/byte"));
    Run *b = RUN("--data", data_path, "--steps", "17", "--out", in_dir("part"), "--threads",
                 "2", "--quiet", "--eval-every", "10");
    ck_assert_msg(b->rc == 0, "%s", b->err);
    Run *c = RUN("--resume", in_dir("part"), "--steps", "50", "--threads", "2", "--eval-every",
                 "10");
    ck_assert_msg(c->rc == 0, "%s", c->err);
    ck_assert_ptr_nonnull(strstr(c->out, "resumed from"));
    assert_same_file(in_dir("full/trainer.safetensors"), in_dir("part/trainer.safetensors"));
    assert_same_file(in_dir("full/model.safetensors"), in_dir("part/model.safetensors"));
    float lf[50], lp[50];
    ck_assert_int_eq(read_losses(in_dir("full/metrics.jsonl"), lf, 50, NULL), 50);
    ck_assert_int_eq(read_losses(in_dir("part/metrics.jsonl"), lp, 50, NULL), 50);
    ck_assert(memcmp(lf, lp, sizeof lf) == 0);
    /* a checkpoint already at --steps has nothing to do */
    Run *d = RUN("--resume", in_dir("part"), "--steps", "50");
    ck_assert_int_eq(d->rc, 0);
    ck_assert_ptr_nonnull(strstr(d->out, "nothing to do"));
    free(a);
    free(b);
    free(c);
    free(d);
}
END_TEST

START_TEST(trainer_metrics_lines_are_json)
{
    Run *a = RUN("--data", data_path, "--steps", "26", "--out", in_dir("m"), "--eval-every",
                 "25", "--log", in_dir("log.jsonl"), "--quiet");
    ck_assert_msg(a->rc == 0, "%s", a->err);
    ck_assert_str_eq(a->out, "");
    size_t n;
    char *text = (char *)slurp(in_dir("log.jsonl"), &n);
    ck_assert_ptr_nonnull(strstr(text, "{\"step\":0,\"loss\":"));
    ck_assert_ptr_nonnull(strstr(text, "\"events\":[\"warm_switch\"]"));
    ck_assert_ptr_nonnull(strstr(text, "\"events\":[\"reset\"],\"pruned_fraction\":0.9"));
    char *last = strstr(text, "{\"step\":24,");
    ck_assert_ptr_nonnull(last);
    ck_assert_ptr_nonnull(strstr(last, "\"val_loss\":"));
    ck_assert_ptr_nonnull(strstr(last, "\"val_ppl\":"));
    ck_assert_ptr_nonnull(strstr(last, "\"val_bits_per_byte\":"));
    ck_assert_ptr_nonnull(strstr(text, "\"tokens_per_s\":"));
    free(text);
    free(a);
}
END_TEST

/* 0 turns off the periodic evaluations and checkpoints only: the last step still
 * evaluates and still writes the one checkpoint of the run. */
START_TEST(trainer_every_zero_means_only_at_the_end)
{
    Run *a = RUN("--data", data_path, "--steps", "7", "--out", in_dir("z"), "--eval-every",
                 "0", "--checkpoint-every", "0");
    ck_assert_msg(a->rc == 0, "%s", a->err);
    const char *first = strstr(a->out, "checkpoint written");
    ck_assert_msg(first && strstr(a->out, "step 7: checkpoint written") &&
                      !strstr(first + 1, "checkpoint written"),
                  "%s", a->out);
    ck_assert_msg(strstr(a->out, "step 7: val loss"), "%s", a->out);
    size_t n;
    char *text = (char *)slurp(in_dir("z/metrics.jsonl"), &n);
    char *last = strstr(text, "{\"step\":6,");
    ck_assert_ptr_nonnull(last);
    ck_assert_ptr_nonnull(strstr(last, "\"val_loss\":"));
    *last = '\0';
    ck_assert_ptr_null(strstr(text, "val_loss")); /* steps 0..5 have none */
    free(text);
    free(a);
}
END_TEST

START_TEST(trainer_reports_usage_and_data_errors)
{
    Run *r = RUN("--steps", "3", "--out", in_dir("x"));
    ck_assert_int_eq(r->rc, 2);
    ck_assert_ptr_nonnull(strstr(r->err, "no training data: pass --data PATH"));
    free(r);
    r = RUN("--data", data_path, "--bogus", "1");
    ck_assert_int_eq(r->rc, 2);
    ck_assert_ptr_nonnull(strstr(r->err, "unknown option '--bogus'"));
    free(r);
    r = RUN("--data", data_path, "--steps", "many");
    ck_assert_int_eq(r->rc, 2);
    ck_assert_ptr_nonnull(strstr(r->err, "bad value 'many' for --steps"));
    free(r);
    r = RUN("--data", in_dir("missing.txt"), "--out", in_dir("x"));
    ck_assert_int_eq(r->rc, 2);
    ck_assert_ptr_nonnull(strstr(r->err, "missing.txt: cannot open data file"));
    free(r);
    r = RUN("--data", data_path, "--data-kind", "tokens", "--out", in_dir("x"));
    ck_assert_int_eq(r->rc, 2);
    ck_assert_msg(strstr(r->err, "data.txt: bad magic"), "%s", r->err);
    free(r);
    FILE *f = fopen(in_dir("short.txt"), "w");
    fputs("tiny", f);
    fclose(f);
    r = RUN("--data", in_dir("short.txt"), "--out", in_dir("x"));
    ck_assert_int_eq(r->rc, 2);
    ck_assert_msg(strstr(r->err, "short.txt: too short: 4 tokens, need at least 33"), "%s",
                  r->err);
    free(r);
    r = RUN("--data", data_path, "--resume", in_dir("nowhere"));
    ck_assert_int_eq(r->rc, 2);
    ck_assert_msg(strstr(r->err, "nowhere: no checkpoint to resume"), "%s", r->err);
    free(r);
    r = RUN("--help");
    ck_assert_int_eq(r->rc, 0);
    ck_assert_ptr_nonnull(strstr(r->out, "stop after step N of the schedule (default: 60)"));
    ck_assert_ptr_nonnull(strstr(r->out, "fake-bigram"));
    free(r);
}
END_TEST

START_TEST(trainer_parses_numbers_strictly)
{
    static const struct {
        const char *opt, *val, *needle;
    } bad[] = {
        {"--seed", " -5", "bad value ' -5' for --seed: expected an integer in 0..2^64-1"},
        {"--seed", "-5", "bad value '-5' for --seed"},
        {"--seed", "18446744073709551616", "bad value '18446744073709551616' for --seed"},
        {"--steps", "+5", "bad value '+5' for --steps: expected an integer ≥ 0"},
        {"--steps", "5 ", "bad value '5 ' for --steps"},
        {"--steps", "0x10", "bad value '0x10' for --steps"},
        {"--steps", "", "bad value '' for --steps"},
        {"--steps", "9223372036854775808", "bad value '9223372036854775808' for --steps"},
        {"--eval-batches", "0", "expected an integer ≥ 1"},
        {"--threads", "1025", "expected an integer in 0..1024"},
        {"--temperature", "inf", "bad value 'inf' for --temperature"},
        {"--temperature", "1e", "bad value '1e' for --temperature"},
        {"--temperature", "-0.5", "expected a number in 0..1000000"},
        {"--data-kind", "bytes", "expected one of text|tokens"},
        /* the ranges --help states are the ones the schedule check applies */
        {"--prune", "1", "bad value '1' for --prune: expected a number in [0, 1), or P% (P/100)"},
        {"--prune", "100%", "bad value '100%' for --prune"},
        {"--prune", "%", "bad value '%' for --prune"},
        {"--prune", "99 %", "bad value '99 %' for --prune"},
        {"--lr", "0", "bad value '0' for --lr: expected a number > 0"},
        {"--relora-lr", "0", "bad value '0' for --relora-lr: expected a number > 0"},
        {"--out", "", "--out needs a non-empty value"},
        {"--log", "", "--log needs a non-empty value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Run *r = RUN("--data", data_path, "--out", in_dir("strict"), bad[i].opt, bad[i].val);
        ck_assert_msg(r->rc == 2, "%s '%s': exit %d", bad[i].opt, bad[i].val, r->rc);
        ck_assert_msg(strstr(r->err, bad[i].needle), "%s '%s': %s", bad[i].opt, bad[i].val,
                      r->err);
        free(r);
    }
    /* the extremes that are valid, in both spellings */
    Run *r = RUN("--seed=18446744073709551615", "--steps", "9223372036854775807",
                 "--temperature", "2.5e-1", "--threads=0", "--help");
    ck_assert_msg(r->rc == 0, "%s", r->err);
    free(r);
    /* --prune takes the spec's percent form too: 99% is 0.99 in the resolved schedule */
    r = RUN("--data", data_path, "--out", in_dir("pct"), "--steps", "1", "--prune", "99%");
    ck_assert_msg(r->rc == 0, "%s", r->err);
    ck_assert_msg(strstr(r->out, ", prune 0.99\n"), "%s", r->out);
    free(r);
}
END_TEST

START_TEST(trainer_resume_rejects_other_model)
{
    Run *a = RUN("--data", data_path, "--steps", "2", "--out", in_dir("c"), "--quiet");
    ck_assert_int_eq(a->rc, 0);
    RtModel other = fake_model;
    other.model_hash = "another-hash";
    char *argv[] = {"t", "--data", data_path, "--resume", in_dir("c"), "--steps", "4", NULL};
    RtHooks h = {.out = tmpfile(), .err = tmpfile()};
    ck_assert_int_eq(rt_main_hooked(7, argv, &other, &h), 2);
    read_back(h.out, a->out, sizeof a->out);
    read_back(h.err, a->err, sizeof a->err);
    ck_assert_msg(strstr(a->err, "checkpoint of another model"), "%s", a->err);
    free(a);
}
END_TEST

static ssize_t enospc_write(void *user, int fd, const void *buf, size_t n)
{
    int *devfull = user;
    (void)fd;
    return write(*devfull, buf, n);
}

START_TEST(trainer_full_disk_fails_and_keeps_checkpoint)
{
    Run *a = RUN("--data", data_path, "--steps", "5", "--out", in_dir("d"), "--quiet");
    ck_assert_int_eq(a->rc, 0);
    size_t n0;
    unsigned char *before = slurp(in_dir("d/trainer.safetensors"), &n0);
    int devfull = open("/dev/full", O_WRONLY);
    ck_assert_int_ge(devfull, 0);
    RtIo io = {enospc_write, NULL, &devfull};
    Run *b = run_io(&io, "--data", data_path, "--resume", in_dir("d"), "--steps", "8", "--quiet",
                    (const char *)NULL);
    close(devfull);
    ck_assert_int_eq(b->rc, 2);
    ck_assert_msg(strstr(b->err, "No space left on device") &&
                      strstr(b->err, "previous checkpoint in") && strstr(b->err, "unchanged"),
                  "%s", b->err);
    size_t n1;
    unsigned char *after = slurp(in_dir("d/trainer.safetensors"), &n1);
    ck_assert(n0 == n1 && memcmp(before, after, n0) == 0);
    free(before);
    free(after);
    free(a);
    free(b);
}
END_TEST

/* The fake model, except that after step index 2 a moment of the embedding holds NaN; the
 * next update carries it into embed.weight row 0, which no token of the data uses, so the
 * loss stays finite and only the checkpoint's own check can catch it. */
static float nan_moment_update(RtCtx *ctx)
{
    float r = fake_model.fn[RT_FN_UPDATE_FULL](ctx);
    if (*(const int32_t *)rt_tensor_data(ctx, FK_STEP) == 2)
        ((float *)rt_tensor_data(ctx, FK_M_EMBED))[5] = NAN;
    return r;
}

START_TEST(trainer_never_writes_a_nonfinite_checkpoint)
{
    RtModel m = fake_model;
    m.fn[RT_FN_UPDATE_FULL] = nan_moment_update;
    char *argv[] = {"t", "--data", data_path, "--steps", "6", "--checkpoint-every", "2",
                    "--out", in_dir("nan"), "--quiet", NULL};
    RtHooks h = {.out = tmpfile(), .err = tmpfile()};
    Run r;
    r.rc = rt_main_hooked(10, argv, &m, &h);
    read_back(h.out, r.out, sizeof r.out);
    read_back(h.err, r.err, sizeof r.err);
    ck_assert_int_eq(r.rc, 1);
    ck_assert_msg(strstr(r.err, "tensor 'embed.weight' holds NaN at element 5") &&
                      strstr(r.err, "checkpoint of step 4 was not written") &&
                      strstr(r.err, "unchanged"),
                  "%s", r.err);
    RtStFile f;
    RtError e = {0};
    ck_assert_msg(rt_st_open(&f, in_dir("nan/trainer.safetensors"), &e), "%s", e.msg);
    ck_assert_str_eq(rt_st_meta(&f, "step"), "2");
    rt_st_close(&f);
}
END_TEST

/* A fresh run into a directory that holds a checkpoint would replace it at its first save:
 * refused unless --overwrite (or --resume). */
START_TEST(trainer_fresh_run_keeps_existing_checkpoint)
{
    Run *a = RUN("--data", data_path, "--steps", "3", "--out", in_dir("keep"), "--quiet");
    ck_assert_msg(a->rc == 0, "%s", a->err);
    size_t n0;
    unsigned char *before = slurp(in_dir("keep/trainer.safetensors"), &n0);
    Run *b = RUN("--data", data_path, "--steps", "5", "--out", in_dir("keep"), "--quiet");
    ck_assert_int_eq(b->rc, 2);
    ck_assert_msg(strstr(b->err, "keep already holds a checkpoint (step 3)") &&
                      strstr(b->err, "--resume") && strstr(b->err, "--overwrite"),
                  "%s", b->err);
    size_t n1;
    unsigned char *after = slurp(in_dir("keep/trainer.safetensors"), &n1);
    ck_assert(n0 == n1 && memcmp(before, after, n0) == 0);
    Run *c = RUN("--data", data_path, "--steps", "5", "--out", in_dir("keep"), "--quiet",
                 "--overwrite", "--resume", in_dir("keep"));
    ck_assert_int_eq(c->rc, 2);
    ck_assert_msg(strstr(c->err, "cannot be combined with --resume"), "%s", c->err);
    Run *d = RUN("--data", data_path, "--steps", "5", "--out", in_dir("keep"), "--quiet",
                 "--overwrite");
    ck_assert_msg(d->rc == 0, "%s", d->err);
    RtStFile f;
    RtError e = {0};
    ck_assert_msg(rt_st_open(&f, in_dir("keep/trainer.safetensors"), &e), "%s", e.msg);
    ck_assert_str_eq(rt_st_meta(&f, "step"), "5");
    rt_st_close(&f);
    float loss[8];
    ck_assert_int_eq(read_losses(in_dir("keep/metrics.jsonl"), loss, 8, NULL), 5);
    free(before);
    free(after);
    free(a);
    free(b);
    free(c);
    free(d);
}
END_TEST

/* --overwrite keeps the old checkpoint until the new run's first save, and the log of its
 * steps with it: a new run that diverges before its first save leaves metrics.jsonl as
 * it was (it used to hold the diverged run's steps 0-1, and a resume of the old checkpoint
 * then logged steps 4-5 after them), with its own lines in metrics.jsonl.new. A new run
 * that saves replaces both. */
START_TEST(trainer_overwrite_keeps_the_log_until_the_first_save)
{
    Run *r = RUN("--data", data_path, "--steps", "4", "--out", in_dir("ow"), "--quiet");
    ck_assert_msg(r->rc == 0, "%s", r->err);
    free(r);
    size_t n0, n1;
    unsigned char *log0 = slurp(in_dir("ow/metrics.jsonl"), &n0);
    /* the fake model diverges at step 2 with this rate (loss NaN) */
    r = RUN("--data", data_path, "--out", in_dir("ow"), "--overwrite", "--lr", "1e30", "--quiet");
    ck_assert_msg(r->rc == 1 && strstr(r->err, "diverged at step 2"), "%d %s", r->rc, r->err);
    ck_assert_msg(strstr(r->err, "metrics.jsonl.new;"), "%s", r->err);
    free(r);
    unsigned char *log1 = slurp(in_dir("ow/metrics.jsonl"), &n1);
    ck_assert_msg(n0 == n1 && memcmp(log0, log1, n0) == 0, "the old run's log changed");
    size_t n2;
    char *log2 = (char *)slurp(in_dir("ow/metrics.jsonl.new"), &n2);
    ck_assert_msg(strncmp(log2, "{\"step\":0,", 10) == 0 && strstr(log2, "{\"step\":2,") &&
                  strstr(log2, "\"diverged\""), "%s", log2);
    free(log2);
    float loss[8];
    long long first = -1;
    r = RUN("--resume", in_dir("ow"), "--steps", "6", "--quiet");
    ck_assert_msg(r->rc == 0, "%s", r->err);
    free(r);
    ck_assert_int_eq(read_losses(in_dir("ow/metrics.jsonl"), loss, 8, &first), 6);
    /* a new run that saves takes the log over */
    r = RUN("--data", data_path, "--out", in_dir("ow"), "--overwrite", "--steps", "2", "--quiet");
    ck_assert_msg(r->rc == 0, "%s", r->err);
    free(r);
    ck_assert_int_eq(read_losses(in_dir("ow/metrics.jsonl"), loss, 8, &first), 2);
    struct stat st;
    ck_assert_msg(stat(in_dir("ow/metrics.jsonl.new"), &st) != 0, "metrics.jsonl.new is left");
    free(log0);
    free(log1);
}
END_TEST

/* A second trainer on a locked directory is refused, naming the directory and the holder. */
START_TEST(trainer_refuses_locked_out_dir)
{
    ck_assert_int_eq(mkdir(in_dir("busy"), 0755), 0);
    int fd = open(in_dir("busy/trainer.lock"), O_RDWR | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
    ck_assert_int_eq(write(fd, "4242\n", 5), 5);
    Run *r = RUN("--data", data_path, "--steps", "3", "--out", in_dir("busy"), "--quiet");
    ck_assert_int_eq(r->rc, 2);
    ck_assert_msg(strstr(r->err, "busy is in use by another trainer (pid 4242"), "%s", r->err);
    ck_assert_int_ne(access(in_dir("busy/metrics.jsonl"), F_OK), 0); /* nothing touched */
    free(r);
    close(fd); /* released: now it runs, and leaves its own pid in the file */
    r = RUN("--data", data_path, "--steps", "3", "--out", in_dir("busy"), "--quiet");
    ck_assert_msg(r->rc == 0, "%s", r->err);
    size_t n;
    char *pid = (char *)slurp(in_dir("busy/trainer.lock"), &n);
    ck_assert_int_eq(atol(pid), (long)getpid());
    free(pid);
    free(r);
}
END_TEST

/* Two runs with different --out but one --log: the second is refused while the first holds
 * the log (it used to empty it, losing the first run's lines, and both wrote on), whether
 * fresh or resumed; the log is untouched. */
START_TEST(trainer_refuses_log_in_use)
{
    Run *r = RUN("--data", data_path, "--steps", "2", "--out", in_dir("l1"), "--log",
                 in_dir("shared.jsonl"), "--quiet");
    ck_assert_msg(r->rc == 0, "%s", r->err);
    free(r);
    size_t n0, n1;
    unsigned char *log0 = slurp(in_dir("shared.jsonl"), &n0);
    int fd = open(in_dir("shared.jsonl"), O_WRONLY | O_APPEND); /* a running trainer's hold */
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
    r = RUN("--data", data_path, "--steps", "2", "--out", in_dir("l2"), "--log",
            in_dir("shared.jsonl"), "--quiet");
    ck_assert_int_eq(r->rc, 2);
    ck_assert_msg(strstr(r->err, "shared.jsonl is in use by another trainer"), "%s", r->err);
    free(r);
    r = RUN("--resume", in_dir("l1"), "--steps", "3", "--log", in_dir("shared.jsonl"), "--quiet");
    ck_assert_int_eq(r->rc, 2);
    ck_assert_msg(strstr(r->err, "shared.jsonl is in use by another trainer"), "%s", r->err);
    free(r);
    unsigned char *log1 = slurp(in_dir("shared.jsonl"), &n1);
    ck_assert_msg(n0 == n1 && memcmp(log0, log1, n0) == 0, "the log in use changed");
    close(fd); /* released: the log is free again */
    r = RUN("--resume", in_dir("l1"), "--steps", "3", "--log", in_dir("shared.jsonl"), "--quiet");
    ck_assert_msg(r->rc == 0, "%s", r->err);
    free(r);
    free(log0);
    free(log1);
}
END_TEST

/* --log may not be an input or a checkpoint file: writing it would destroy the data (the
 * log was opened with truncation) or lose the lines. */
START_TEST(trainer_refuses_log_that_is_an_input)
{
    size_t n0;
    unsigned char *data0 = slurp(data_path, &n0);
    ck_assert_int_eq(link(data_path, in_dir("hardlink.txt")), 0);
    const char *logs[] = {data_path, in_dir("hardlink.txt")};
    for (int i = 0; i < 2; i++) {
        Run *r = RUN("--data", data_path, "--steps", "3", "--out", in_dir("lg"), "--log",
                     logs[i], "--quiet");
        ck_assert_int_eq(r->rc, 2);
        ck_assert_msg(strstr(r->err, "is the training data; refusing to write metrics"), "%s",
                      r->err);
        free(r);
    }
    Run *r = RUN("--data", data_path, "--val-data", in_dir("hardlink.txt"), "--steps", "3",
                 "--out", in_dir("lg"), "--log", data_path, "--quiet");
    ck_assert_int_eq(r->rc, 2);
    free(r);
    /* names the checkpoint owns, existing or not */
    r = RUN("--data", data_path, "--steps", "3", "--out", in_dir("lg"), "--log",
            in_dir("lg/trainer.safetensors"), "--quiet");
    ck_assert_int_eq(r->rc, 2);
    ck_assert_msg(strstr(r->err, "is a name the checkpoint in"), "%s", r->err);
    free(r);
    /* nor a file inside a checkpoint's directory, which the next save deletes with it */
    r = RUN("--data", data_path, "--steps", "2", "--out", in_dir("lgc"), "--quiet");
    ck_assert_int_eq(r->rc, 0);
    free(r);
    r = RUN("--resume", in_dir("lgc"), "--steps", "4", "--checkpoint-every", "1", "--log",
            in_dir("lgc/latest/m.jsonl"), "--quiet");
    ck_assert_int_eq(r->rc, 2);
    ck_assert_msg(strstr(r->err, "is inside a checkpoint directory of"), "%s", r->err);
    free(r);
    size_t n1;
    unsigned char *data1 = slurp(data_path, &n1);
    ck_assert(n0 == n1 && memcmp(data0, data1, n0) == 0);
    /* and the data may not be the (default) log either */
    r = RUN("--data", data_path, "--steps", "3", "--out", in_dir("lg2"), "--quiet");
    ck_assert_int_eq(r->rc, 0);
    free(r);
    r = RUN("--data", in_dir("lg2/metrics.jsonl"), "--steps", "3", "--out", in_dir("lg2"),
            "--overwrite", "--quiet");
    ck_assert_int_eq(r->rc, 2);
    ck_assert_msg(strstr(r->err, "metrics.jsonl is the training data"), "%s", r->err);
    free(r);
    free(data0);
    free(data1);
}
END_TEST

/* A metrics write that fails (/dev/full) stops the run with exit 2, naming the file; the
 * checkpoint stays at its last step. */
START_TEST(trainer_metrics_write_error_fails_the_run)
{
    Run *a = RUN("--data", data_path, "--steps", "4", "--out", in_dir("full"), "--quiet");
    ck_assert_msg(a->rc == 0, "%s", a->err);
    Run *b = RUN("--resume", in_dir("full"), "--steps", "8", "--log", "/dev/full", "--quiet");
    ck_assert_int_eq(b->rc, 2);
    ck_assert_msg(strstr(b->err, "/dev/full: cannot write the metrics of step 4: No space left "
                                 "on device; stopped, the last checkpoint in") &&
                      strstr(b->err, "full (step 4) is kept"),
                  "%s", b->err);
    Run *c = RUN("--data", data_path, "--out", in_dir("full2"), "--log", "/dev/full", "--quiet");
    ck_assert_int_eq(c->rc, 2);
    ck_assert_msg(strstr(c->err, "step 0: No space left on device; stopped, there is no "
                                 "checkpoint in"),
                  "%s", c->err);
    free(c);
    RtStFile f;
    RtError e = {0};
    ck_assert_msg(rt_st_open(&f, in_dir("full/trainer.safetensors"), &e), "%s", e.msg);
    ck_assert_str_eq(rt_st_meta(&f, "step"), "4");
    rt_st_close(&f);
    free(a);
    free(b);
}
END_TEST

/* After a crash the log holds steps the checkpoint lacks; the resumed run logs them again.
 * Each step must appear once: the resume drops the lines at or after its step. */
START_TEST(trainer_resume_logs_each_step_once)
{
    Run *a = RUN("--data", data_path, "--steps", "12", "--out", in_dir("whole"), "--quiet");
    ck_assert_msg(a->rc == 0, "%s", a->err);
    Run *b = RUN("--data", data_path, "--steps", "5", "--out", in_dir("crash"), "--quiet");
    ck_assert_msg(b->rc == 0, "%s", b->err);
    /* as if the run had gone on to step 12 and died: 12 lines and a torn 13th */
    size_t n;
    char *lines = (char *)slurp(in_dir("whole/metrics.jsonl"), &n);
    FILE *f = fopen(in_dir("crash/metrics.jsonl"), "w");
    fputs("not a metrics line, kept\n", f);
    fwrite(lines, 1, n, f);
    fputs("{\"step\":12,\"lo", f);
    fclose(f);
    free(lines);
    Run *c = RUN("--resume", in_dir("crash"), "--steps", "12", "--quiet");
    ck_assert_msg(c->rc == 0, "%s", c->err);
    char *text = (char *)slurp(in_dir("crash/metrics.jsonl"), &n);
    ck_assert(strncmp(text, "not a metrics line, kept\n", 25) == 0);
    long long want = 0;
    for (char *line = strtok(text + 25, "\n"); line; line = strtok(NULL, "\n")) {
        long long step;
        ck_assert_msg(sscanf(line, "{\"step\":%lld,", &step) == 1, "%s", line);
        ck_assert_int_eq(step, want++);
    }
    ck_assert_int_eq(want, 12);
    free(text);
    free(a);
    free(b);
    free(c);
}
END_TEST

/* --tokens near 2^62 made the buffer size wrap (SIGSEGV); the sample now needs one window,
 * whatever the count. Output to a full disk stops it with an error instead of running on. */
START_TEST(trainer_sample_size_does_not_depend_on_tokens)
{
    char *argv[] = {"t", "--sample", "hi", "--tokens", "4611686018427387904", "--out",
                    in_dir("none"), "--quiet", NULL};
    RtHooks h = {.out = fopen("/dev/full", "w"), .err = tmpfile()};
    ck_assert_ptr_nonnull(h.out);
    int rc = rt_main_hooked(8, argv, &fake_model, &h);
    char err[4096];
    read_back(h.err, err, sizeof err);
    fclose(h.out);
    ck_assert_int_eq(rc, 2);
    ck_assert_msg(strstr(err, "cannot write the sample to standard output: No space left"),
                  "%s", err);
    Run *r = RUN("--sample", "hi", "--tokens", "9223372036854775807", "--out", in_dir("none"),
                 "--quiet", "--help");
    ck_assert_int_eq(r->rc, 0);
    free(r);
}
END_TEST

/* A plan beyond this machine's memory is refused before anything is allocated (it used to
 * zero-fill pools until the kernel killed it). */
START_TEST(trainer_refuses_plan_beyond_memory)
{
    RtModel m = fake_model;
    m.pool_bytes[RT_POOL_SCRATCH] = (size_t)1 << 50; /* 1 PiB; the tensors still fit */
    const char *modes[2][8] = {
        {"t", "--data", data_path, "--steps", "3", "--out", in_dir("huge"), NULL},
        {"t", "--sample", "hi", "--tokens", "3", "--out", in_dir("huge"), NULL},
    };
    for (int k = 0; k < 2; k++) {
        RtHooks h = {.out = tmpfile(), .err = tmpfile()};
        Run r;
        r.rc = rt_main_hooked(7, (char **)modes[k], &m, &h);
        read_back(h.out, r.out, sizeof r.out);
        read_back(h.err, r.err, sizeof r.err);
        ck_assert_int_eq(r.rc, 2);
        ck_assert_msg(strstr(r.err, "model 'fake-bigram' needs 1048576.0 GiB (memory plan "
                                    "1048576.0 GiB + data") &&
                          strstr(r.err, "more than this process may use:") &&
                          strstr(r.err, "(RAM ") && strstr(r.err, "RLIMIT_AS"),
                      "%s", r.err);
        ck_assert_int_ne(access(in_dir("huge"), F_OK), 0); /* nothing created either */
    }
#ifndef __SANITIZE_ADDRESS__ /* ASan reserves terabytes of address space */
    /* RLIMIT_AS below RAM: the limit that binds is named */
    m.pool_bytes[RT_POOL_SCRATCH] = (size_t)8 << 30;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit rl = {(rlim_t)6 << 30, (rlim_t)6 << 30};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(99);
        char *argv[] = {"t", "--data", data_path, "--steps", "3", "--out", in_dir("as"), NULL};
        RtHooks h = {.out = fopen("/dev/null", "w"), .err = fopen(in_dir("as.txt"), "w")};
        _exit(rt_main_hooked(7, argv, &m, &h));
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    size_t n;
    char *err = (char *)slurp(in_dir("as.txt"), &n);
    ck_assert_msg(WEXITSTATUS(status) == 2 && strstr(err, "may use: 6.0 GiB (") &&
                      strstr(err, "RLIMIT_AS 6.0 GiB)"),
                  "exit %d: %s", WEXITSTATUS(status), err);
    free(err);
#endif
}
END_TEST

static void put(const char *root, const char *path, const char *text)
{
    char p[512], cmd[600];
    snprintf(p, sizeof p, "%s%s", root, path);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", p);
    ck_assert_int_eq(system(cmd), 0);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* cgroup limits read from a fake /proc and /sys tree: v2, v1, both, a mount whose top is the
 * process's own cgroup (a container), and none. */
START_TEST(trainer_reads_cgroup_memory_limits)
{
    char root[160];
    snprintf(root, sizeof root, "%s/fake-v2", dir);
    put(root, "/proc/self/mountinfo",
        "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n");
    put(root, "/proc/self/cgroup", "0::/user.slice/job.scope\n");
    put(root, "/sys/fs/cgroup/user.slice/job.scope/memory.max", "max\n");
    put(root, "/sys/fs/cgroup/user.slice/memory.max", "1073741824\n");
    RtMemLimits l;
    rt_mem_limits_at(&l, root);
    ck_assert_uint_eq(l.cgroup, 1073741824u);
    ck_assert_str_eq(l.cgroup_file, "/sys/fs/cgroup/user.slice/memory.max");
    ck_assert_uint_le(l.available, 1073741824u);

    snprintf(root, sizeof root, "%s/fake-v1", dir);
    put(root, "/proc/self/mountinfo",
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n");
    put(root, "/proc/self/cgroup", "5:cpu:/a\n4:memory:/a/b\n");
    put(root, "/sys/fs/cgroup/memory/a/b/memory.limit_in_bytes", "2147483648\n");
    put(root, "/sys/fs/cgroup/memory/a/memory.limit_in_bytes", "9223372036854771712\n");
    put(root, "/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    rt_mem_limits_at(&l, root);
    ck_assert_uint_eq(l.cgroup, 2147483648u);
    ck_assert_str_eq(l.cgroup_file, "/sys/fs/cgroup/memory/a/b/memory.limit_in_bytes");

    /* both hierarchies: the smaller wins */
    put(root, "/proc/self/mountinfo",
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n");
    put(root, "/proc/self/cgroup", "4:memory:/a/b\n0::/c\n");
    put(root, "/sys/fs/cgroup/unified/c/memory.max", "1048576\n");
    rt_mem_limits_at(&l, root);
    ck_assert_uint_eq(l.cgroup, 1048576u);

    /* a container: the mount's top is the process's cgroup, so its limit is at the top */
    snprintf(root, sizeof root, "%s/fake-ct", dir);
    put(root, "/proc/self/mountinfo",
        "30 23 0:26 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n");
    put(root, "/proc/self/cgroup", "0::/docker/abc\n");
    put(root, "/sys/fs/cgroup/memory.max", "536870912\n");
    rt_mem_limits_at(&l, root);
    ck_assert_uint_eq(l.cgroup, 536870912u);

    /* no cgroup files at all: no limit, RAM decides */
    snprintf(root, sizeof root, "%s/fake-none", dir);
    ck_assert_int_eq(mkdir(root, 0755), 0);
    rt_mem_limits_at(&l, root);
    ck_assert_uint_eq(l.cgroup, UINT64_MAX);
    ck_assert(l.ram > 0 && l.available <= l.ram);
    char text[768];
    rt_mem_describe(&l, text, sizeof text);
    ck_assert_msg(strstr(text, "cgroup limit none"), "%s", text);
}
END_TEST

START_TEST(trainer_sigterm_writes_checkpoint_and_exits_143)
{
    char *metrics = in_dir("s/metrics.jsonl");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char *argv[] = {"t", "--data", data_path, "--total-steps", "100000000", "--out", in_dir("s"),
                        "--threads", "2", NULL};
        RtHooks h = {.out = fopen("/dev/null", "w"), .err = fopen(in_dir("stderr.txt"), "w")};
        _exit(rt_main_hooked(9, argv, &fake_model, &h));
    }
    /* wait until it has logged a few steps */
    struct stat st;
    for (int i = 0; i < 2000 && (stat(metrics, &st) != 0 || st.st_size < 2000); i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "child did not exit normally (status %d)", status);
    ck_assert_int_eq(WEXITSTATUS(status), 143);
    size_t n;
    char *err = (char *)slurp(in_dir("stderr.txt"), &n);
    ck_assert_msg(strstr(err, "stopped by SIGTERM") && strstr(err, "--resume"), "%s", err);
    free(err);
    /* the checkpoint holds every logged step, and training continues from it */
    float loss[4];
    int logged = read_losses(metrics, loss, 4, NULL);
    RtStFile f;
    RtError e = {0};
    ck_assert_msg(rt_st_open(&f, in_dir("s/trainer.safetensors"), &e), "%s", e.msg);
    ck_assert_int_eq(atoi(rt_st_meta(&f, "step")), logged);
    rt_st_close(&f);
    char steps[32];
    snprintf(steps, sizeof steps, "%d", logged + 3);
    Run *r = RUN("--data", data_path, "--resume", in_dir("s"), "--steps", steps, "--quiet");
    ck_assert_msg(r->rc == 0, "%s", r->err);
    ck_assert_int_eq(read_losses(metrics, loss, 4, NULL), logged + 3);
    free(r);
}
END_TEST

/* Runs the trainer of model m with the given arguments (NULL-terminated). */
static Run *run_model(const RtModel *m, const char *arg0, ...)
{
    char *argv[40] = {"fake-trainer"};
    int argc = 1;
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    Run *r = calloc(1, sizeof *r);
    RtHooks h = {.out = tmpfile(), .err = tmpfile()};
    r->rc = rt_main_hooked(argc, argv, m, &h);
    read_back(h.out, r->out, sizeof r->out);
    read_back(h.err, r->err, sizeof r->err);
    return r;
}

/* A schedule option the compiled schedule kind has no use for (a relora option on a cosine
 * or constant trainer, --min-lr-ratio on a constant one) used to be accepted and ignored:
 * it is a usage error naming the option and the kind, before anything is created. */
START_TEST(trainer_refuses_schedule_options_of_another_kind)
{
    static const struct {
        int kind;
        const char *opt, *val, *kind_name;
    } bad[] = {
        {RT_SCHED_COSINE, "--warm-start", "3", "cosine"},
        {RT_SCHED_COSINE, "--reset-every", "5", "cosine"},
        {RT_SCHED_COSINE, "--restart-warmup", "1", "cosine"},
        {RT_SCHED_COSINE, "--relora-lr", "0.5", "cosine"},
        {RT_SCHED_COSINE, "--prune", "0.5", "cosine"},
        {RT_SCHED_CONSTANT, "--reset-every", "5", "constant"},
        {RT_SCHED_CONSTANT, "--min-lr-ratio", "0.5", "constant"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        RtModel m = fake_model;
        m.schedule.kind = bad[i].kind;
        Run *r = run_model(&m, "--data", data_path, "--out", in_dir("kind"), "--steps", "2",
                           "--quiet", bad[i].opt, bad[i].val, (const char *)NULL);
        char want[160];
        snprintf(want, sizeof want, "%s applies to a", bad[i].opt);
        ck_assert_msg(r->rc == 2, "%s on %s: exit %d", bad[i].opt, bad[i].kind_name, r->rc);
        ck_assert_msg(strstr(r->err, want), "%s: %s", bad[i].opt, r->err);
        snprintf(want, sizeof want, "this trainer's schedule is %s", bad[i].kind_name);
        ck_assert_msg(strstr(r->err, want), "%s: %s", bad[i].opt, r->err);
        free(r);
        struct stat st;
        ck_assert_msg(stat(in_dir("kind"), &st) != 0, "%s created the --out directory", bad[i].opt);
    }
    /* where it applies, the option works: --min-lr-ratio on a cosine trainer trains */
    RtModel m = fake_model;
    m.schedule.kind = RT_SCHED_COSINE;
    Run *r = run_model(&m, "--data", data_path, "--out", in_dir("cos"), "--steps", "2", "--quiet",
                       "--min-lr-ratio", "0.5", (const char *)NULL);
    ck_assert_msg(r->rc == 0, "%s", r->err);
    free(r);
    r = run_model(&m, "--help", (const char *)NULL);
    ck_assert_msg(strstr(r->out, "; cosine schedule."), "%s", r->out);
    free(r);
}
END_TEST

/* Usage errors come before anything is created: a mistyped --resume DIR and a schedule
 * that breaks a rule leave no directory behind. A resumed run's horizon is the
 * checkpoint's, and the message says so rather than suggesting --total-steps, which a
 * resume refuses. A fresh --steps 0 does not claim a checkpoint it does not have: it
 * saves the initial model (the way to export an --init-from import unchanged). */
START_TEST(trainer_usage_errors_create_nothing)
{
    struct stat st;
    Run *r = RUN("--data", data_path, "--resume", in_dir("typo"), "--quiet");
    ck_assert_int_eq(r->rc, 2);
    ck_assert_msg(strstr(r->err, "typo: no checkpoint to resume"), "%s", r->err);
    ck_assert_msg(stat(in_dir("typo"), &st) != 0, "--resume created %s", in_dir("typo"));
    free(r);
    /* the fake model's schedule has 60 steps: warmup 60 is out of [0, 60) */
    r = RUN("--data", data_path, "--out", in_dir("bad"), "--warmup", "60", "--quiet");
    ck_assert_int_eq(r->rc, 2);
    ck_assert_msg(strstr(r->err, "warmup must be in [0, steps) = [0, 60) (got 60); from --warmup 60 (see --help)"),
                  "%s", r->err);
    ck_assert_msg(stat(in_dir("bad"), &st) != 0, "a bad schedule created %s", in_dir("bad"));
    free(r);
    r = RUN("--data", data_path, "--out", in_dir("far"), "--steps", "61", "--quiet");
    ck_assert_int_eq(r->rc, 2);
    ck_assert_msg(strstr(r->err, "train a longer schedule with --total-steps 61"), "%s", r->err);
    ck_assert_msg(stat(in_dir("far"), &st) != 0, "--steps past the horizon created %s", in_dir("far"));
    free(r);
    r = RUN("--data", data_path, "--out", in_dir("zero"), "--steps", "0");
    ck_assert_msg(r->rc == 0, "%s", r->err);
    ck_assert_msg(strstr(r->out, "step 0: checkpoint written to") && !strstr(r->out, "checkpoint is at"),
                  "%s", r->out);
    free(r);
    r = RUN("--data", data_path, "--out", in_dir("c"), "--steps", "2", "--quiet");
    ck_assert_msg(r->rc == 0, "%s", r->err);
    free(r);
    r = RUN("--resume", in_dir("c"), "--steps", "61", "--quiet");
    ck_assert_int_eq(r->rc, 2);
    ck_assert_msg(strstr(r->err, "past the horizon of the checkpoint's schedule, 60 steps") &&
                  strstr(r->err, "a resumed run keeps its schedule") && !strstr(r->err, "rebuild"),
                  "%s", r->err);
    free(r);
}
END_TEST

START_TEST(trainer_samples_from_checkpoint)
{
    Run *a = RUN("--data", data_path, "--steps", "40", "--out", in_dir("g"), "--quiet");
    ck_assert_int_eq(a->rc, 0);
    Run *b = RUN("--sample", "the cat", "--tokens", "40", "--resume", in_dir("g"));
    ck_assert_msg(b->rc == 0, "%s", b->err);
    ck_assert_uint_eq(strlen(b->out), 7 + 40 + 1);
    ck_assert(strncmp(b->out, "the cat", 7) == 0);
    ck_assert_ptr_nonnull(strstr(b->err, "sampling from"));
    Run *c = RUN("--sample", "the cat", "--tokens", "40", "--out", in_dir("g"));
    ck_assert_str_eq(b->out, c->out);
    Run *d = RUN("--sample", "the cat", "--tokens", "40", "--out", in_dir("none"),
                 "--temperature", "0");
    ck_assert_int_eq(d->rc, 0);
    ck_assert_ptr_nonnull(strstr(d->err, "initial model"));
    Run *e = RUN("--sample", "", "--tokens", "4", "--out", in_dir("none"));
    ck_assert_int_eq(e->rc, 2);
    ck_assert_ptr_nonnull(strstr(e->err, "non-empty prompt"));
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
}
END_TEST

Suite *trainer_suite(void)
{
    Suite *s = suite_create("trainer");
    TCase *tc = tcase_create("trainer");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, trainer_same_seed_is_bit_identical);
    tcase_add_test(tc, trainer_resume_matches_uninterrupted);
    tcase_add_test(tc, trainer_metrics_lines_are_json);
    tcase_add_test(tc, trainer_every_zero_means_only_at_the_end);
    tcase_add_test(tc, trainer_reports_usage_and_data_errors);
    tcase_add_test(tc, trainer_parses_numbers_strictly);
    tcase_add_test(tc, trainer_resume_rejects_other_model);
    tcase_add_test(tc, trainer_full_disk_fails_and_keeps_checkpoint);
    tcase_add_test(tc, trainer_never_writes_a_nonfinite_checkpoint);
    tcase_add_test(tc, trainer_fresh_run_keeps_existing_checkpoint);
    tcase_add_test(tc, trainer_refuses_locked_out_dir);
    tcase_add_test(tc, trainer_refuses_log_that_is_an_input);
    tcase_add_test(tc, trainer_metrics_write_error_fails_the_run);
    tcase_add_test(tc, trainer_resume_logs_each_step_once);
    tcase_add_test(tc, trainer_sample_size_does_not_depend_on_tokens);
    tcase_add_test(tc, trainer_refuses_plan_beyond_memory);
    tcase_add_test(tc, trainer_reads_cgroup_memory_limits);
    tcase_add_test(tc, trainer_sigterm_writes_checkpoint_and_exits_143);
    tcase_add_test(tc, trainer_samples_from_checkpoint);
    tcase_add_test(tc, trainer_refuses_schedule_options_of_another_kind);
    tcase_add_test(tc, trainer_usage_errors_create_nothing);
    tcase_add_test(tc, trainer_overwrite_keeps_the_log_until_the_first_save);
    tcase_add_test(tc, trainer_refuses_log_in_use);
    suite_add_tcase(s, tc);
    return s;
}
