/* Helpers shared by the unit suites that compile tiny models (see tutil.h): one copy
 * of the spec texts and of the compile, lookup and data-filling code those suites
 * used to repeat. */
#include "tutil.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "fe.h"
#include "lower.h"
#include "pm.h"

const char tu_spec_llama[] =
    TU_LLAMA_MODEL
    "train { batch = 2; seq_len = 6; steps = 10 }\n";

const char tu_spec_gpt2[] =
    "model m {\n"
    "  vocab = 32; dim = 16; layers = 2; heads = 2; context = 8\n"
    "  tied = true; positions = learned; norm = layernorm; bias = true\n"
    "  block(x) {\n"
    "    h = x + attention(layernorm(x), rope = none)\n"
    "    return h + linear(gelu(linear(layernorm(h), out = 64, name = \"fc\")), out = dim, name = \"proj\")\n"
    "  }\n"
    "}\n"
    "train { batch = 2; seq_len = 6; steps = 10 }\n";

const char tu_spec_parallel[] =
    "model m {\n"
    "  vocab = 32; dim = 16; layers = 2; heads = 2; context = 8\n"
    "  block(x) {\n"
    "    n = layernorm(x)\n"
    "    return x + attention(n, rope = 10000) + geglu(n, hidden = 32)\n"
    "  }\n"
    "}\n"
    "train { batch = 2; seq_len = 6; steps = 10 }\n";

const char *const tu_relora_passes[TU_N_RELORA_PASSES] = {"lora-insert", "lora-fuse", "autodiff",
                                                          "lora-fuse-grad", "optimizer", "relora"};

void tu_assert_ok(TuModel *t, bool ok)
{
    if (!ok)
        diag_print(&t->d, stderr, true);
    ck_assert(ok);
}

void tu_lower(TuModel *t, const char *text)
{
    arena_init(&t->a);
    diag_init(&t->d, &t->a);
    FeCtx ctx;
    fe_ctx_init(&ctx, &t->a, &t->d);
    bool parsed = fe_parse_buffer(&ctx, "t.relora", text, strlen(text));
    FeOptions opt = {0};
    const Spec *s = parsed ? fe_check(&t->a, &t->d, ctx.ast, NULL, 0, &opt) : NULL;
    t->m = s ? fe_lower(&t->a, &t->d, s) : NULL;
    tu_assert_ok(t, t->m != NULL);
}

void tu_run_passes(TuModel *t, const char *const *names, int n)
{
    PassCtx pc = {&t->a, &t->d, t->m, PROP_LOWERED};
    PassOptions po = {names, n, true, NULL, NULL};
    tu_assert_ok(t, pass_pipeline_run(&pc, &po));
}

void tu_build(TuModel *t, const char *text, const char *const *names, int n)
{
    tu_lower(t, text);
    tu_run_passes(t, names, n);
}

void tu_fini(TuModel *t) { arena_fini(&t->a); }

IrGlobal *tu_glob(const TuModel *t, const char *name)
{
    IrGlobal *g = ir_global_find(t->m, name);
    ck_assert_msg(g != NULL, "no global @%s", name);
    return g;
}

IrFunc *tu_func(const TuModel *t, const char *name)
{
    IrFunc *f = ir_func_find(t->m, name);
    ck_assert_msg(f != NULL, "no function @%s", name);
    return f;
}

void tu_fill_tokens(const IrModule *m, double *tok, double *tgt, uint64_t salt)
{
    const IrGlobal *g = ir_global_find(m, "tokens");
    ck_assert_msg(g != NULL, "no global @tokens");
    int64_t vocab = ir_attrs_int(&m->attrs, "vocab", 0), n = ir_type_numel(g->type);
    for (int64_t i = 0; i < n; i++) {
        tok[i] = (double)(ir_rng_u64(7, salt, (uint64_t)i) % (uint64_t)vocab);
        tgt[i] = (double)(ir_rng_u64(7, salt + 1, (uint64_t)i) % (uint64_t)vocab);
    }
}

int64_t tu_step_tokens(const IrModule *m, int32_t *x, int32_t *y, int64_t cap, uint64_t salt)
{
    const IrGlobal *g = ir_global_find(m, "tokens");
    ck_assert_msg(g != NULL, "no global @tokens");
    int64_t micro = g->type.dim[0], batch = ir_attrs_int(&m->attrs, "batch", micro);
    int64_t vocab = ir_attrs_int(&m->attrs, "vocab", 0), n = ir_type_numel(g->type) / micro * batch;
    ck_assert_int_le(n, cap);
    for (int64_t i = 0; i < n; i++) {
        x[i] = (int32_t)(ir_rng_u64(7, salt, (uint64_t)i) % (uint64_t)vocab);
        y[i] = (int32_t)(ir_rng_u64(7, salt + 1, (uint64_t)i) % (uint64_t)vocab);
    }
    return n;
}

void tu_set_tokens(IrInterp *it, const IrModule *m, uint64_t salt)
{
    const IrGlobal *tok = ir_global_find(m, "tokens"), *tgt = ir_global_find(m, "targets");
    ck_assert_msg(tok && tgt, "no global @tokens or @targets");
    tu_fill_tokens(m, ir_interp_global(it, tok), ir_interp_global(it, tgt), salt);
}

void tu_perturb_params(IrInterp *it, const IrModule *m)
{
    for (int i = 0; i < m->n_globals; i++) {
        const IrGlobal *g = m->globals[i];
        if (g->cls != IR_CLASS_PARAM && g->cls != IR_CLASS_FROZEN)
            continue;
        double *v = ir_interp_global(it, g);
        for (int64_t j = 0; j < ir_type_numel(g->type); j++)
            v[j] += 0.1 * (ir_rng_uniform(5, (uint64_t)i, (uint64_t)j) - 0.5);
    }
}

double tu_central_difference(IrInterp *it, const IrFunc *f, double *w, int64_t j, double h)
{
    double x0 = w[j];
    w[j] = x0 + h;
    double lp = ir_interp_run(it, f);
    w[j] = x0 - h;
    double lm = ir_interp_run(it, f);
    w[j] = x0;
    return (lp - lm) / (2 * h);
}

void tu_program_attrs(Arena *a, IrModule *m)
{
    static const struct {
        const char *key;
        int64_t v;
    } ints[] = {{"train.eval_every", 10}, {"train.eval_batches", 2}, {"train.checkpoint_every", 0},
                {"train.seed", 5},        {"train.steps", 77},      {"schedule.warmup", 3}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        ir_attrs_set_int(a, &m->attrs, ints[i].key, ints[i].v);
    ir_attrs_set_float(a, &m->attrs, "train.val_fraction", 0.1);
    ir_attrs_set_float(a, &m->attrs, "schedule.min_lr_ratio", 0.1);
    ir_attrs_set_float(a, &m->attrs, "optim.lr", 0.01);
    ir_attrs_set_str(a, &m->attrs, "schedule.kind", "cosine");
    ir_attrs_set_str(a, &m->attrs, "train.out", "checkpoints");
    ir_attrs_set_str(a, &m->attrs, "train.data_kind", "text");
    ir_attrs_set_str(a, &m->attrs, "model_hash", "0123456789abcdef");
}
