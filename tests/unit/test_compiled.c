/* The compiled training binary against the reference executor, and its behaviour as a
 * program. For a tiny spec (with a warm start, a switch to ReLoRA and a reset inside
 * ten steps, and a full-rank one), `relorac build` produces a trainer; it is run on a
 * small text file, and:
 *   - its losses for steps 0..9 match the graph interpreter (f64) fed the very same
 *     batches (the runtime's own sampler) within 1e-4 relative;
 *   - every tensor of its checkpoint after one step (and after a reset) matches the
 *     interpreter's state within 1e-4 relative, measured per tensor as
 *     max|compiled - reference| / max|reference| (elementwise ratios are meaningless
 *     for entries that are sums with cancellation, such as tiny Adam moments);
 *   - resuming from a checkpoint at step 4 gives losses bit-identical to the
 *     uninterrupted run, and two runs with one seed write identical checkpoints;
 *   - it rejects a missing data file, a corrupt .bin file, a truncated checkpoint and
 *     another model's checkpoint with a message and a non-zero exit;
 *   - it does not link LLVM;
 *   - tiny learns the KJV text, and its checkpoint carries LlamaForCausalLM tensor names
 *     (adapters merged, no optimizer state) and a matching config.json. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fe.h"
#include "lower.h"
#include "pm.h"
#include "rt.h"
#include "rt_internal.h"

static const char TEXT[] =
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; "
    "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters. "
    "And God said, Let there be light: and there was light. And God saw the light, that it was good: and "
    "God divided the light from the darkness. And God called the light Day, and the darkness he called "
    "Night. And the evening and the morning were the first day.\n";

static const char SPEC_RELORA[] =
    "model t {\n"
    "  vocab = 256; dim = 32; layers = 2; heads = 4; kv_heads = 2; context = 16\n"
    "  block(x) {\n"
    "    h = x + attention(rmsnorm(x), rope = 10000)\n"
    "    return h + swiglu(rmsnorm(h), hidden = 48)\n"
    "  }\n"
    "}\n"
    "adapter lora { rank = 4; alpha = 8; targets = [\"attention.*\", \"swiglu.*\"] }\n"
    "train {\n"
    "  data = text(\"%s\"); batch = 3; seq_len = 16; steps = 12; seed = 7\n"
    "  optimizer = adamw(lr = 3e-3, weight_decay = 0.01)\n"
    "  clip = 1.0; eval_every = 0; checkpoint_every = 0\n"
    "  schedule = relora(warmup = 2, warm_start = 3, reset_every = 3, restart_warmup = 1, prune = 0.9)\n"
    "}\n";

static const char SPEC_FULL[] =
    "model f {\n"
    "  vocab = 256; dim = 32; layers = 2; heads = 2; context = 16\n"
    "  positions = learned; norm = layernorm; bias = true; tied = true\n"
    "  block(x) {\n"
    "    h = x + attention(layernorm(x), rope = none)\n"
    "    return h + linear(gelu(linear(layernorm(h), out = 64, name = \"fc\")), out = dim, name = \"proj\")\n"
    "  }\n"
    "}\n"
    "train {\n"
    "  data = text(\"%s\"); batch = 2; seq_len = 16; steps = 12; seed = 3\n"
    "  optimizer = adamw(lr = 2e-3)\n"
    "  eval_every = 0; checkpoint_every = 0\n"
    "  schedule = cosine(warmup = 2)\n"
    "}\n";

typedef struct {
    char dir[256];
    char data[300], spec[300], bin[300];
} Work;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    fclose(f);
}

/* Builds the spec (its data path filled in) into w->bin. */
static void setup(Work *w, const char *spec_fmt)
{
    const char *relorac = getenv("RELORAC");
    ck_assert_msg(relorac != NULL, "RELORAC must name the relorac binary (meson sets it)");
    snprintf(w->dir, sizeof w->dir, "/tmp/relorac-compiled-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(w->dir));
    snprintf(w->data, sizeof w->data, "%s/data.txt", w->dir);
    snprintf(w->spec, sizeof w->spec, "%s/t.relora", w->dir);
    snprintf(w->bin, sizeof w->bin, "%s/trainer", w->dir);
    FILE *f = fopen(w->data, "wb");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 30; i++)
        fputs(TEXT, f);
    fclose(f);
    char spec[4096];
    int n = snprintf(spec, sizeof spec, spec_fmt, w->data);
    write_file(w->spec, spec, (size_t)n);
    ck_assert_int_eq(sh("%s build %s -o %s", relorac, w->spec, w->bin), 0);
}

static void teardown(Work *w)
{
    sh("rm -rf %s", w->dir);
}

/* Losses from DIR/metrics.jsonl, by step. */
static int read_losses(const char *dir, double *loss, int max)
{
    char path[512], line[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        const char *s = strstr(line, "\"step\":"), *l = strstr(line, "\"loss\":");
        if (!s || !l)
            continue;
        int step = atoi(s + 7);
        if (step >= 0 && step < max) {
            loss[step] = strtod(l + 7, NULL);
            if (step + 1 > n)
                n = step + 1;
        }
    }
    fclose(f);
    return n;
}

typedef struct {
    Arena a;
    Diags d;
    IrModule *m;
    IrInterp *it;
    RtData data;
    RtSplit train;
    int64_t B, T;
    uint64_t seed;
    IrSchedule sched;
} Ref;

static void ref_init(Ref *r, const Work *w)
{
    arena_init(&r->a);
    diag_init(&r->d, &r->a);
    FeOptions opt = {0};
    const Spec *s = fe_load_spec(&r->a, &r->d, w->spec, &opt);
    r->m = s ? fe_lower(&r->a, &r->d, s) : NULL;
    PassCtx pc = {&r->a, &r->d, r->m, PROP_LOWERED};
    PassOptions po = {0};
    if (!r->m || !pass_pipeline_run(&pc, &po))
        diag_print(&r->d, stderr, false);
    ck_assert_ptr_nonnull(r->m);
    ck_assert_int_eq(r->d.n_errors, 0);
    r->B = s->train.batch;
    r->T = s->train.seq_len;
    r->seed = s->train.seed;
    ck_assert(ir_schedule_from_module(r->m, &r->sched, &r->d));
    r->it = ir_interp_create(r->m, r->seed);
    ir_interp_run(r->it, ir_func_find(r->m, "init"));
    RtError e = {0};
    ck_assert_msg(rt_data_open(&r->data, w->data, RT_DATA_TEXT, 256, r->T + 1, &e), "%s", e.msg);
    /* the trainer's split: the last val_fraction (a float in the binary) is validation */
    float frac = (float)s->train.val_fraction;
    int64_t n = r->data.n, n_val = (int64_t)((double)n * frac);
    r->train = (RtSplit){&r->data, 0, n - n_val};
}

static void ref_fini(Ref *r)
{
    rt_data_close(&r->data);
    ir_interp_destroy(r->it);
    arena_fini(&r->a);
}

/* One step by the reference host's step policy (ir/schedule.c), an implementation
 * independent of the trainer's (runtime/step.c). */
static double ref_step(Ref *r, int64_t step)
{
    int64_t n = r->B * r->T;
    int32_t *x = malloc(sizeof(int32_t) * (size_t)n), *y = malloc(sizeof(int32_t) * (size_t)n);
    rt_batch_fill(r->train, (int)r->B, (int)r->T, r->seed, RT_STREAM_TRAIN_BATCH, (uint64_t)step, x, y);
    IrStepResult res;
    ck_assert(ir_interp_train_step(r->it, r->m, &r->sched, x, y, step, &res));
    free(x);
    free(y);
    return res.loss;
}

static void compare_losses(const char *spec_fmt, const char *label)
{
    Work w;
    setup(&w, spec_fmt);
    ck_assert_int_eq(sh("%s --data %s --steps 10 --out %s/run --threads 2 --quiet", w.bin, w.data, w.dir), 0);
    char run[300];
    snprintf(run, sizeof run, "%s/run", w.dir);
    double got[16] = {0};
    ck_assert_int_eq(read_losses(run, got, 16), 10);
    Ref r;
    ref_init(&r, &w);
    double worst = 0;
    for (int s = 0; s < 10; s++) {
        double want = ref_step(&r, s);
        double err = fabs(got[s] - want) / fabs(want);
        printf("%s: step %d: compiled %.7f reference %.7f (rel. diff %.2g)\n", label, s, got[s], want, err);
        fflush(stdout);
        if (err > worst)
            worst = err;
    }
    printf("%s: largest relative loss difference over 10 steps: %.3g\n", label, worst);
    ck_assert_double_lt(worst, 1e-4);
    ref_fini(&r);
    teardown(&w);
}

START_TEST(compiled_relora_losses_match_the_reference)
{
    compare_losses(SPEC_RELORA, "relora");
}
END_TEST

START_TEST(compiled_full_rank_losses_match_the_reference)
{
    compare_losses(SPEC_FULL, "full-rank");
}
END_TEST

/* Every tensor the trainer checkpoints, after `steps` steps, against the interpreter. */
static void compare_state(const char *spec_fmt, int steps, const char *label)
{
    Work w;
    setup(&w, spec_fmt);
    ck_assert_int_eq(sh("%s --data %s --steps %d --out %s/run --threads 2 --quiet", w.bin, w.data, steps, w.dir), 0);
    Ref r;
    ref_init(&r, &w);
    for (int s = 0; s < steps; s++)
        ref_step(&r, s);
    char path[400];
    snprintf(path, sizeof path, "%s/run/trainer.safetensors", w.dir);
    RtStFile f;
    RtError e = {0};
    ck_assert_msg(rt_st_open(&f, path, &e), "%s", e.msg);
    int compared = 0;
    double worst = 0;
    const char *worst_name = "";
    int64_t worst_at = 0;
    double worst_got = 0, worst_want = 0;
    int zero_grad = 0;
    for (int i = 0; i < r.m->n_globals; i++) {
        IrGlobal *g = r.m->globals[i];
        const RtStTensor *t = rt_st_find(&f, g->name);
        if (!t || t->dtype != RT_F32)
            continue;
        /* A parameter whose exact gradient is zero (an attention key bias: softmax is
         * shift-invariant) has moments that are pure roundoff in both runs; check only
         * that the compiled run left it (nearly) where the reference did. */
        const char *base = ir_attrs_str(&g->attrs, "moment_of", g->name);
        IrGlobal *v = ir_global_find(r.m, arena_sprintf(&r.a, "%s.adam_v", base));
        if (v) {
            const double *vv = ir_interp_global(r.it, v);
            double vmax = 0;
            for (int64_t j = 0; j < ir_type_numel(v->type); j++)
                vmax = fmax(vmax, vv[j]);
            if (vmax < 1e-20 && ir_attrs_get(&r.m->attrs, "optim.lr")) {
                if (!strcmp(base, g->name)) {
                    const float *got = t->data;
                    const double *want = ir_interp_global(r.it, g);
                    for (int64_t j = 0; j < ir_type_numel(g->type); j++)
                        ck_assert_double_le(fabs(got[j] - want[j]), 1e-6);
                    zero_grad++;
                }
                continue;
            }
        }
        int64_t n = ir_type_numel(g->type);
        ck_assert_uint_eq(t->nbytes, (size_t)n * 4);
        const float *got = t->data;
        const double *want = ir_interp_global(r.it, g);
        double scale = 0;
        for (int64_t j = 0; j < n; j++)
            scale = fmax(scale, fabs(want[j]));
        for (int64_t j = 0; j < n; j++) {
            double err = fabs(got[j] - want[j]) / fmax(scale, 1e-30);
            if (err > worst) {
                worst = err;
                worst_name = g->name;
                worst_at = j;
                worst_got = got[j];
                worst_want = want[j];
            }
        }
        compared++;
    }
    printf("%s: %d checkpointed tensors after %d step(s) (%d not trained in that phase or with an exactly zero gradient: checked to within 1e-6 absolute); "
           "largest relative difference %.3g (%s[%lld]: compiled %.9g, reference %.9g)\n",
           label, compared, steps, zero_grad, worst, worst_name, (long long)worst_at, worst_got, worst_want);
    fflush(stdout);
    ck_assert_int_gt(compared, 10);
    ck_assert_double_lt(worst, 1e-4);
    rt_st_close(&f);
    ref_fini(&r);
    teardown(&w);
}

START_TEST(compiled_state_after_one_step_matches_the_reference)
{
    compare_state(SPEC_RELORA, 1, "relora");
    compare_state(SPEC_FULL, 1, "full-rank");
}
END_TEST

START_TEST(compiled_state_after_reset_matches_the_reference)
{
    /* steps 0-2 full rank, 3 switches to ReLoRA, the reset runs after step 6 */
    compare_state(SPEC_RELORA, 7, "relora");
}
END_TEST

static bool same_file(const char *a, const char *b)
{
    return sh("cmp -s %s %s", a, b) == 0;
}

/* Whether DIR/trainer.safetensors holds tensor `name`. */
static bool ckpt_has(const char *dir, const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/trainer.safetensors", dir);
    RtStFile f;
    RtError e = {0};
    ck_assert_msg(rt_st_open(&f, path, &e), "%s", e.msg);
    bool has = rt_st_find(&f, name) != NULL;
    rt_st_close(&f);
    return has;
}

/* SPEC_RELORA switches to ReLoRA before step 3: checkpoints after 2 and 3 steps hold
 * full-rank state (the adapted W's moments, not the adapters'; the memory plan gives the
 * bytes of each to the other phase), after 4 ReLoRA state. Resuming from each gives the
 * uninterrupted run's losses and final checkpoint, byte for byte. */
START_TEST(compiled_resume_is_bit_identical)
{
    Work w;
    setup(&w, SPEC_RELORA);
    ck_assert_int_eq(sh("%s --data %s --steps 10 --out %s/a --threads 2 --quiet", w.bin, w.data, w.dir), 0);
    ck_assert_int_eq(sh("%s --data %s --steps 10 --out %s/b --threads 1 --quiet", w.bin, w.data, w.dir), 0);
    char a[400], b[400], c[400];
    double la[16], lc[16];
    snprintf(a, sizeof a, "%s/a", w.dir);
    ck_assert_int_eq(read_losses(a, la, 16), 10);
    snprintf(a, sizeof a, "%s/a/trainer.safetensors", w.dir);
    snprintf(b, sizeof b, "%s/b/trainer.safetensors", w.dir);
    ck_assert_msg(same_file(a, b), "same seed, 1 vs 2 threads: checkpoints differ");
    const char *w_moment = "layers.0.attention.q.weight.adam_m", *a_moment = "layers.0.attention.q.lora_a.adam_m";
    const int at[3] = {2, 3, 4};
    for (int k = 0; k < 3; k++) {
        char run[300];
        snprintf(run, sizeof run, "%s/c%d", w.dir, at[k]);
        ck_assert_int_eq(sh("%s --data %s --steps %d --out %s --threads 2 --quiet", w.bin, w.data, at[k], run), 0);
        bool lora = at[k] > 3;
        ck_assert_msg(ckpt_has(run, w_moment) == !lora, "after %d steps: %s", at[k], w_moment);
        ck_assert_msg(ckpt_has(run, a_moment) == lora, "after %d steps: %s", at[k], a_moment);
        ck_assert_int_eq(sh("%s --resume %s --steps 10 --out %s --threads 2 --quiet", w.bin, run, run), 0);
        ck_assert_int_eq(read_losses(run, lc, 16), 10);
        for (int s = 0; s < 10; s++)
            ck_assert_msg(la[s] == lc[s], "resumed after %d: step %d: %.9g uninterrupted vs %.9g resumed", at[k], s,
                          la[s], lc[s]);
        snprintf(c, sizeof c, "%s/trainer.safetensors", run);
        ck_assert_msg(same_file(a, c), "resumed after %d steps: the checkpoint differs from the uninterrupted one",
                      at[k]);
        ck_assert(!ckpt_has(run, w_moment) && ckpt_has(run, a_moment));
    }
    teardown(&w);
}
END_TEST

START_TEST(compiled_binary_rejects_bad_inputs)
{
    Work w;
    setup(&w, SPEC_RELORA);
    /* missing data */
    ck_assert_int_eq(sh("%s --data %s/nope.txt --steps 2 --out %s/x --quiet 2>%s/err", w.bin, w.dir, w.dir, w.dir), 2);
    ck_assert_int_eq(sh("grep -q nope.txt %s/err", w.dir), 0);
    /* a corrupt llm.c token file */
    char bad[400];
    snprintf(bad, sizeof bad, "%s/bad.bin", w.dir);
    write_file(bad, "not a token file at all, just text", 34);
    ck_assert_int_eq(sh("%s --data %s --data-kind tokens --steps 2 --out %s/x --quiet 2>%s/err", w.bin, bad, w.dir,
                        w.dir),
                     2);
    ck_assert_int_eq(sh("grep -q bad.bin %s/err", w.dir), 0);
    /* a truncated checkpoint */
    ck_assert_int_eq(sh("%s --data %s --steps 2 --out %s/ok --quiet", w.bin, w.data, w.dir), 0);
    ck_assert_int_eq(sh("cp -r %s/ok %s/trunc && truncate -s 100 %s/trunc/trainer.safetensors", w.dir, w.dir, w.dir), 0);
    ck_assert_int_ne(sh("%s --resume %s/trunc --steps 4 --quiet 2>%s/err", w.bin, w.dir, w.dir), 0);
    ck_assert_int_eq(sh("grep -q trainer.safetensors %s/err", w.dir), 0);
    /* another model's checkpoint */
    Work other;
    setup(&other, SPEC_FULL);
    ck_assert_int_eq(sh("%s --data %s --steps 1 --out %s/ok --quiet", other.bin, other.data, other.dir), 0);
    ck_assert_int_ne(sh("%s --resume %s/ok --data %s --steps 4 --quiet 2>%s/err", w.bin, other.dir, w.data, w.dir), 0);
    ck_assert_int_eq(sh("test -s %s/err", w.dir), 0);
    /* the first checkpoint is still intact */
    ck_assert_int_eq(sh("%s --resume %s/ok --steps 3 --quiet", w.bin, w.dir), 0);
    teardown(&other);
    teardown(&w);
}
END_TEST

START_TEST(compiled_binary_does_not_link_llvm)
{
    Work w;
    setup(&w, SPEC_RELORA);
    ck_assert_int_eq(sh("ldd %s > %s/ldd.txt", w.bin, w.dir), 0);
    ck_assert_int_ne(sh("grep -qi llvm %s/ldd.txt", w.dir), 0);
    teardown(&w);
}
END_TEST

/* Behaviour, not timing: examples/tiny.relora, trained on the King James Bible
 * (Debian's bible-kjv) for 300 of its 2000 steps (warm start 200, then ReLoRA), reaches
 * a validation loss below 2.0 nats per byte (2.89 bits/byte). Established by full runs:
 * 2.25 at step 100, 2.01 at 200, 1.87 at 300, 1.80 at 400, 1.71 at 600; a fresh model
 * is at ln 256 = 5.55 and the text's unigram entropy is about 3.0 nats per byte. */
START_TEST(compiled_tiny_learns_the_kjv_text)
{
    const char *relorac = getenv("RELORAC"), *root = getenv("RELORAC_SOURCE_ROOT");
    ck_assert_ptr_nonnull(relorac);
    ck_assert_ptr_nonnull(root);
    char dir[] = "/tmp/relorac-kjv-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_msg(sh("bible -f gen1:1-rev22:21 | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' > %s/kjv.txt", dir) == 0 &&
                      sh("test $(wc -c < %s/kjv.txt) -gt 4000000", dir) == 0,
                  "the KJV text needs Debian's bible-kjv (scripts/setup.sh installs it)");
    ck_assert_int_eq(sh("%s build %s/examples/tiny.relora -o %s/tiny 2>/dev/null", relorac, root, dir), 0);
    ck_assert_int_eq(sh("%s/tiny --data %s/kjv.txt --steps 300 --eval-every 300 --out %s/ck --quiet", dir, dir, dir), 0);
    char ck[300], line[4096];
    snprintf(ck, sizeof ck, "%s/ck/metrics.jsonl", dir);
    FILE *f = fopen(ck, "r");
    ck_assert_ptr_nonnull(f);
    double val = NAN;
    while (fgets(line, sizeof line, f)) {
        const char *v = strstr(line, "\"val_loss\":");
        if (v && strstr(line, "\"step\":299,"))
            val = strtod(v + 11, NULL);
    }
    fclose(f);
    printf("tiny on the KJV text: validation loss %.4f nats/byte (%.4f bits/byte) after 300 steps\n", val,
           val / log(2.0));
    fflush(stdout);
    ck_assert_double_lt(val, 2.0);
    /* the checkpoint loads as a LLaMA in transformers: its names, merged, and a config */
    char path[400];
    snprintf(path, sizeof path, "%s/ck/model.safetensors", dir);
    RtStFile st;
    RtError e = {0};
    ck_assert_msg(rt_st_open(&st, path, &e), "%s", e.msg);
    static const char *const names[] = {"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                                        "model.layers.3.self_attn.q_proj.weight",
                                        "model.layers.3.post_attention_layernorm.weight",
                                        "model.layers.3.mlp.down_proj.weight", "model.norm.weight", "lm_head.weight"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        ck_assert_msg(rt_st_find(&st, names[i]) != NULL, "model.safetensors has no %s", names[i]);
    const RtStTensor *down = rt_st_find(&st, "model.layers.3.mlp.down_proj.weight");
    ck_assert_int_eq(down->shape[0], 128);
    ck_assert_int_eq(down->shape[1], 344);
    for (int i = 0; i < st.n; i++)
        ck_assert_msg(!strstr(st.t[i].name, "lora") && !strstr(st.t[i].name, "adam"), "exported %s", st.t[i].name);
    ck_assert_int_eq(st.n, 2 + 4 * 9 + 1);
    rt_st_close(&st);
    ck_assert_int_eq(sh("grep -q '\"LlamaForCausalLM\"' %s/ck/config.json && grep -q '\"num_hidden_layers\": 4' "
                        "%s/ck/config.json && grep -q '\"intermediate_size\": 344' %s/ck/config.json",
                        dir, dir, dir),
                     0);
    sh("rm -rf %s", dir);
}
END_TEST

/* ---- the schedule as run-time data ---- */

/* The spec of the report that found a second cosine after the warm start. */
static const char SPEC_SCHEDULE[] =
    "model m { vocab = 256; dim = 16; layers = 1; heads = 1; context = 16\n"
    "  block(x) { h = x + attention(rmsnorm(x), rope = 10000)\n"
    "             return h + swiglu(rmsnorm(h), hidden = 32) } }\n"
    "adapter lora { rank = 2; alpha = 4 }\n"
    "train { data = text(\"%s\"); batch = 1; seq_len = 16; steps = 60\n"
    "  optimizer = adamw(lr = 1e-3); eval_every = 0\n"
    "  schedule = relora(warmup = 5, warm_start = 10, reset_every = 10, restart_warmup = 3, lr = 2e-3) }\n";

/* One metrics field per step from DIR/metrics.jsonl (NAN where absent). */
static int read_field(const char *dir, const char *key, double *v, int max)
{
    char path[512], line[4096], pat[64];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    snprintf(pat, sizeof pat, "\"%s\":", key);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    for (int i = 0; i < max; i++)
        v[i] = NAN;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        const char *s = strstr(line, "\"step\":"), *k = strstr(line, pat);
        int step = s ? atoi(s + 7) : -1;
        if (k && step >= 0 && step < max) {
            v[step] = strtod(k + strlen(pat), NULL);
            n = step + 1 > n ? step + 1 : n;
        }
    }
    fclose(f);
    return n;
}

static bool file_has(const char *path, const char *text)
{
    char buf[8192];
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, text) != NULL;
}

/* The closed form of docs/runtime.md for this spec's family, written out independently:
 * one cosine over N steps after a warmup W; after the switch at S and every merge the
 * rate ramps from 0 over Wr steps to the cosine's value at the ramp's end. */
static double closed_form_lr(int64_t t, int64_t N, int64_t W, int64_t S, int64_t R, int64_t Wr, double lr1,
                             double lr2, double m)
{
#define C(u) ((u) < W ? (double)(u) / (double)W : m + (1 - m) * 0.5 * (1 + cos(M_PI * (double)((u) - W) / (double)(N - W))))
    if (t < S)
        return lr1 * C(t);
    int64_t r = S + (t - S) / R * R;
    if (t - r < Wr)
        return lr2 * (double)(t - r) / (double)Wr * C(r + Wr);
    return lr2 * C(t);
#undef C
}

START_TEST(compiled_lr_is_one_global_cosine)
{
    Work w;
    setup(&w, SPEC_SCHEDULE);
    ck_assert_int_eq(sh("%s --data %s --out %s/a --quiet", w.bin, w.data, w.dir), 0);
    char a[400];
    snprintf(a, sizeof a, "%s/a", w.dir);
    double lr[60];
    ck_assert_int_eq(read_field(a, "lr", lr, 60), 60);
    /* the values read off metrics.jsonl when the ReLoRA phase had a cosine of its own were
     * 6.667e-4, 1.333e-3, 2.000e-3 and 1.190e-3 */
    const struct {
        int step;
        double lr, half_ulp; /* half a unit in the last digit given */
    } want[] = {{11, 6.358862e-4, 5e-11}, {12, 1.271772e-3, 5e-10}, {13, 1.907659e-3, 5e-10}, {35, 9.719e-4, 5e-8}};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(fabs(lr[want[i].step] - want[i].lr) <= want[i].half_ulp, "step %d: lr %.9g, want %.7g",
                      want[i].step, lr[want[i].step], want[i].lr);
    for (int t = 0; t < 60; t++) {
        double c = closed_form_lr(t, 60, 5, 10, 10, 3, 1e-3, 2e-3, 0.1);
        ck_assert_msg(fabs(lr[t] - c) <= 1e-7 * c + 1e-12, "step %d: lr %.9g, closed form %.9g", t, lr[t], c);
    }
    /* nothing past the horizon */
    ck_assert_int_eq(sh("%s --data %s --steps 100 --out %s/b --quiet 2>%s/err", w.bin, w.data, w.dir, w.dir), 2);
    char err[400];
    snprintf(err, sizeof err, "%s/err", w.dir);
    ck_assert_msg(file_has(err, "--steps 100 is past the schedule's horizon of 60 steps") &&
                      file_has(err, "--total-steps 100"),
                  "no horizon message");
    teardown(&w);
}
END_TEST

START_TEST(compiled_schedule_options_override_the_spec)
{
    Work w;
    setup(&w, SPEC_SCHEDULE);
    /* a longer horizon, another peak and the warm start as a percentage of it */
    ck_assert_int_eq(sh("%s --data %s --out %s/a --total-steps 100 --lr 5e-3 --relora-lr 4e-3 --warm-start 20%% "
                        "--steps 30 > %s/out",
                        w.bin, w.data, w.dir, w.dir),
                     0);
    char a[400], out[400], err[400];
    snprintf(a, sizeof a, "%s/a", w.dir);
    snprintf(out, sizeof out, "%s/out", w.dir);
    snprintf(err, sizeof err, "%s/err", w.dir);
    ck_assert_msg(file_has(out, "schedule relora: steps 100, warmup 5, lr 0.005, min-lr-ratio 0.1, warm-start 20, "
                                "reset-every 10, restart-warmup 3, relora-lr 0.004, prune 0.99"),
                  "the resolved schedule is not printed");
    double lr[100];
    ck_assert_int_eq(read_field(a, "lr", lr, 100), 30);
    for (int t = 0; t < 30; t++) {
        double c = closed_form_lr(t, 100, 5, 20, 10, 3, 5e-3, 4e-3, 0.1);
        ck_assert_msg(fabs(lr[t] - c) <= 1e-7 * c + 1e-12, "step %d: lr %.9g, closed form %.9g", t, lr[t], c);
    }
    /* resuming continues the checkpoint's schedule, with or without the options */
    ck_assert_int_eq(sh("%s --resume %s/a --steps 35 --quiet", w.bin, w.dir), 0);
    ck_assert_int_eq(read_field(a, "lr", lr, 100), 35);
    for (int t = 30; t < 35; t++)
        ck_assert_double_eq_tol(lr[t], closed_form_lr(t, 100, 5, 20, 10, 3, 5e-3, 4e-3, 0.1), 1e-9);
    ck_assert_int_eq(sh("%s --resume %s/a --steps 36 --lr 5e-3 --quiet", w.bin, w.dir), 0);
    /* ... and refuses one that differs, naming the field */
    ck_assert_int_eq(sh("%s --resume %s/a --steps 40 --lr 1e-3 --quiet 2>%s/err", w.bin, w.dir, w.dir), 2);
    ck_assert_msg(file_has(err, "trained with another schedule (lr differs)"), "no field named");
    ck_assert_int_eq(sh("%s --resume %s/a --steps 40 --total-steps 60 --quiet 2>%s/err", w.bin, w.dir, w.dir), 2);
    ck_assert_msg(file_has(err, "total-steps differs"), "no field named");
    /* a bad value is refused before anything runs */
    ck_assert_int_eq(sh("%s --data %s --out %s/b --reset-every 3 --quiet 2>%s/err", w.bin, w.data, w.dir, w.dir), 2);
    ck_assert_msg(file_has(err, "restart-warmup must be in [0, reset-every) = [0, 3) (got 3)"), "bad schedule accepted");
    ck_assert_int_eq(sh("%s --data %s --out %s/b --warm-start 120%% --quiet 2>%s/err", w.bin, w.data, w.dir, w.dir), 2);
    /* the model's identity is its architecture: a binary built with another schedule, batch
     * and step count resumes the checkpoint, following the checkpoint's schedule */
    const char *relorac = getenv("RELORAC");
    ck_assert_int_eq(sh("%s build %s -o %s/other -D train.steps=500 -D train.batch=2 -D train.schedule.lr=9e-3",
                        relorac, w.spec, w.dir),
                     0);
    ck_assert_int_eq(sh("%s/other --resume %s/a --steps 38 --quiet 2>%s/err", w.dir, w.dir, w.dir), 0);
    ck_assert_msg(file_has(err, "continuing the checkpoint's schedule"), "no note on the schedule");
    ck_assert_int_eq(read_field(a, "lr", lr, 100), 38);
    ck_assert_double_eq_tol(lr[37], closed_form_lr(37, 100, 5, 20, 10, 3, 5e-3, 4e-3, 0.1), 1e-9);
    teardown(&w);
}
END_TEST

/* A run whose update turns the weights into NaN: the compiled step never applies that
 * update, the last checkpoint on disk stays the last finite one, and the message names the
 * step and the quantity. */
START_TEST(compiled_divergence_keeps_the_last_finite_checkpoint)
{
    Work w;
    setup(&w, SPEC_RELORA);
    const char *relorac = getenv("RELORAC");
    ck_assert_int_eq(sh("%s build %s -o %s/hot -D train.optimizer.lr=1e3 -D train.schedule.lr=1e3 -D train.steps=60",
                        relorac, w.spec, w.dir),
                     0);
    int rc = sh("%s/hot --data %s --out %s/a --checkpoint-every 2 --quiet 2>%s/err", w.dir, w.data, w.dir, w.dir);
    char err[400], a[400], path[500];
    snprintf(err, sizeof err, "%s/err", w.dir);
    snprintf(a, sizeof a, "%s/a", w.dir);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(file_has(err, "training diverged at step ") && file_has(err, "without applying that step's update"),
                  "no divergence message");
    ck_assert_msg(file_has(err, "the gradient norm is") || file_has(err, "the loss is"), "no quantity named");
    /* the checkpoint on disk: finite everywhere, and at the step the message names */
    snprintf(path, sizeof path, "%s/trainer.safetensors", a);
    RtStFile f;
    RtError e = {0};
    ck_assert_msg(rt_st_open(&f, path, &e), "%s", e.msg);
    int64_t nonfinite = 0;
    for (int i = 0; i < f.n; i++)
        if (f.t[i].dtype == RT_F32)
            for (size_t j = 0; j < f.t[i].nbytes / 4; j++) {
                float v;
                memcpy(&v, (const char *)f.t[i].data + 4 * j, 4);
                nonfinite += !isfinite(v);
            }
    char want[128];
    snprintf(want, sizeof want, "(step %s)", rt_st_meta(&f, "step"));
    printf("divergence: checkpoint at step %s, %lld non-finite values\n", rt_st_meta(&f, "step"), (long long)nonfinite);
    ck_assert_int_eq(nonfinite, 0);
    ck_assert_msg(file_has(err, want), "the message does not name the checkpoint's step %s", want);
    rt_st_close(&f);
    teardown(&w);
}
END_TEST

Suite *compiled_suite(void)
{
    Suite *s = suite_create("compiled");
    TCase *tc = tcase_create("compiled");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, compiled_relora_losses_match_the_reference);
    tcase_add_test(tc, compiled_full_rank_losses_match_the_reference);
    tcase_add_test(tc, compiled_state_after_one_step_matches_the_reference);
    tcase_add_test(tc, compiled_state_after_reset_matches_the_reference);
    tcase_add_test(tc, compiled_resume_is_bit_identical);
    tcase_add_test(tc, compiled_binary_rejects_bad_inputs);
    tcase_add_test(tc, compiled_binary_does_not_link_llvm);
    tcase_add_test(tc, compiled_tiny_learns_the_kjv_text);
    suite_add_tcase(s, tc);
    TCase *sc = tcase_create("schedule");
    tcase_set_timeout(sc, 600);
    tcase_add_test(sc, compiled_lr_is_one_global_cosine);
    tcase_add_test(sc, compiled_schedule_options_override_the_spec);
    tcase_add_test(sc, compiled_divergence_keeps_the_last_finite_checkpoint);
    suite_add_tcase(s, sc);
    return s;
}
