/* Checker tests: defaults, names, shapes, the dataflow graph, overrides and rules. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "fe.h"
#include "fields.h"

typedef struct {
    Arena arena;
    Diags diags;
    const Spec *spec;
} Fx;

static const Spec *load(Fx *f, const char *text, const char *const *defs, int n_defs, bool training)
{
    arena_init(&f->arena);
    diag_init(&f->diags, &f->arena);
    FeOptions opt = {.defines = defs, .n_defines = n_defs, .is_training = training};
    f->spec = fe_load_spec_buffer(&f->arena, &f->diags, "t.relora", text, strlen(text), &opt);
    return f->spec;
}

static bool has_msg(const Diags *d, DiagLevel level, const char *needle)
{
    for (int i = 0; i < d->n; i++)
        if (d->list[i].level == level && strstr(d->list[i].msg, needle))
            return true;
    return false;
}

#define MODEL_HEAD "model m {\n  vocab = 256; dim = 64; layers = 3; heads = 4; context = 32\n"
#define LLAMA_BLOCK                                                                                                    \
    "  block(x) {\n    h = x + attention(rmsnorm(x), rope = 10000)\n"                                                   \
    "    return h + swiglu(rmsnorm(h), hidden = 4 * dim)\n  }\n}\n"

static const SpecParam *param(const Spec *s, const char *name)
{
    for (int i = 0; i < s->model.n_params; i++)
        if (!strcmp(s->model.params[i].name, name))
            return &s->model.params[i];
    return NULL;
}

START_TEST(check_fills_defaults)
{
    Fx f;
    ck_assert_ptr_nonnull(load(&f, MODEL_HEAD LLAMA_BLOCK, NULL, 0, false));
    const Spec *s = f.spec;
    ck_assert_int_eq(s->model.kv_heads, 4);
    ck_assert_double_eq_tol(s->model.init_std, 0.02, 1e-12);
    ck_assert(!s->model.tied && s->model.positions == SPEC_POS_NONE && s->model.norm == SPEC_NORM_RMSNORM);
    ck_assert(!s->adapter.is_present && !s->train.is_present);
    ck_assert_int_eq(s->train.batch, 8);
    ck_assert_int_eq(s->train.seq_len, 32); /* = context */
    ck_assert_int_eq(s->train.steps, 1000);
    ck_assert_int_eq(s->train.schedule.kind, SPEC_SCHED_COSINE);
    ck_assert_int_eq(s->train.schedule.warmup.n, 50);
    ck_assert_double_eq_tol(s->train.optimizer.lr, 1e-3, 1e-15);
    ck_assert_double_eq_tol(s->train.optimizer.betas[1], 0.999, 1e-15);
    ck_assert_int_eq(s->train.optimizer.no_decay.n, 3);
    /* train's defaults (docs/language.md §5) */
    ck_assert_double_eq_tol(s->train.clip, 1.0, 1e-15);
    ck_assert_double_eq_tol(s->train.val_fraction, 0.05, 1e-15);
    ck_assert_int_eq(s->train.seed, 42);
    ck_assert_int_eq(s->train.eval_every, 100);
    ck_assert_int_eq(s->train.eval_batches, 8);
    ck_assert_int_eq(s->train.checkpoint_every, 0);
    ck_assert_str_eq(s->train.checkpoint_dir, "checkpoints");
    ck_assert_int_eq(s->train.data.kind, SPEC_DATA_NONE);
    ck_assert_int_eq(s->train.precision, SPEC_FP32);
    ck_assert_int_eq(s->train.target, SPEC_TARGET_CPU);
    ck_assert_double_eq_tol(s->train.schedule.min_lr_ratio, 0.1, 1e-15);
    ck_assert_double_eq_tol(s->train.schedule.warmup.percent, 5.0, 1e-12); /* the default 5% */
    arena_fini(&f.arena);
}
END_TEST

/* relora()'s defaults with 1000 steps: 5%, 25%, 20% and 2% of them (§5.3), each
 * kept as a percentage too. */
START_TEST(check_fills_relora_defaults_as_percentages)
{
    Fx f;
    const char *t = MODEL_HEAD LLAMA_BLOCK "adapter lora { rank = 4 }\n";
    ck_assert_ptr_nonnull(load(&f, t, NULL, 0, false));
    const SpecSchedule *s = &f.spec->train.schedule;
    ck_assert_int_eq(s->kind, SPEC_SCHED_RELORA);
    ck_assert_int_eq(s->warmup.n, 50);
    ck_assert_int_eq(s->warm_start.n, 250);
    ck_assert_int_eq(s->reset_every.n, 200);
    ck_assert_int_eq(s->restart_warmup.n, 20);
    ck_assert_double_eq_tol(s->warmup.percent, 5.0, 1e-12);
    ck_assert_double_eq_tol(s->warm_start.percent, 25.0, 1e-12);
    ck_assert_double_eq_tol(s->reset_every.percent, 20.0, 1e-12);
    ck_assert_double_eq_tol(s->restart_warmup.percent, 2.0, 1e-12);
    ck_assert_double_eq_tol(s->prune, 0.99, 1e-15);
    ck_assert_int_eq(s->reset, SPEC_RESET_MAGNITUDE);
    ck_assert_double_eq_tol(s->relora_lr, 1e-3, 1e-15); /* the optimizer's */
    ck_assert_int_eq(s->n_resets, 3);                     /* (999 - 250) / 200 */
    ck_assert_double_eq_tol(f.spec->adapter.alpha, 4.0, 1e-15); /* = rank */
    arena_fini(&f.arena);
}
END_TEST

/* A step count written as a count has percent -1; one written in percent keeps it
 * as written and resolves it, rounded down, against the steps after overrides. */
START_TEST(check_records_percentages_as_written)
{
    Fx f;
    const char *t = MODEL_HEAD LLAMA_BLOCK "adapter lora { rank = 4 }\n"
                                           "train { steps = 999; schedule = relora(warmup = 7, warm_start = 12.5%,"
                                           " reset_every = 300, restart_warmup = 1%) }\n";
    const char *defs[] = {"train.steps=1001"};
    ck_assert_ptr_nonnull(load(&f, t, defs, 1, false));
    const SpecSchedule *s = &f.spec->train.schedule;
    ck_assert_int_eq(s->warmup.n, 7);
    ck_assert(s->warmup.percent < 0);
    ck_assert_int_eq(s->warm_start.n, 125); /* floor(12.5 / 100 * 1001) = floor(125.125) */
    ck_assert_double_eq_tol(s->warm_start.percent, 12.5, 1e-12);
    ck_assert_int_eq(s->reset_every.n, 300);
    ck_assert(s->reset_every.percent < 0);
    ck_assert_int_eq(s->restart_warmup.n, 10); /* floor(10.01) */
    ck_assert_double_eq_tol(s->restart_warmup.percent, 1.0, 1e-12);
    arena_fini(&f.arena);
}
END_TEST

/* A percentage that rounds to 0 steps where a step count must be > 0 says so. */
START_TEST(check_explains_a_percentage_that_rounds_to_zero)
{
    Fx f;
    const char *t = MODEL_HEAD LLAMA_BLOCK "adapter lora { rank = 4 }\n"
                                           "train { steps = 4; schedule = relora(warmup = 0, warm_start = 0) }\n";
    ck_assert_ptr_null(load(&f, t, NULL, 0, false));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "reset_every must be > 0 (got 0 = 20% of 4 steps)"));
    arena_fini(&f.arena);
}
END_TEST

/* Range errors name the rule from the field's bounds (fields.def). */
START_TEST(check_reports_bounds_of_each_kind)
{
    Fx f;
    const char *t = MODEL_HEAD LLAMA_BLOCK
        "train { clip = -1; eval_batches = 0; val_fraction = 100%; seed = 2147483648\n"
        "  optimizer = adamw(betas = (0.9, 1), eps = 0); schedule = cosine(min_lr_ratio = 1.5) }\n";
    ck_assert_ptr_null(load(&f, t, NULL, 0, false));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "clip must be >= 0 (got -1)"));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "train.eval_batches must be >= 1 (got 0)"));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "val_fraction must be in (0, 1) (got 1)"));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "train.seed must be < 2^31 (got 2147483648)"));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "beta2 must be in [0, 1) (got 1)"));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "eps must be > 0 (got 0)"));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "min_lr_ratio must be in [0, 1] (got 1.5)"));
    arena_fini(&f.arena);
}
END_TEST

/* The percentage message lists exactly the fields that take one. */
START_TEST(check_lists_the_fields_that_take_percentages)
{
    Fx f;
    ck_assert_ptr_null(load(&f, MODEL_HEAD LLAMA_BLOCK "train { batch = 10% }\n", NULL, 0, false));
    ck_assert(has_msg(&f.diags, DIAG_ERROR,
                      "'%' is not allowed on 'batch' (percentages are allowed on val_fraction, warmup, warm_start, "
                      "reset_every, restart_warmup and prune)"));
    arena_fini(&f.arena);
}
END_TEST

START_TEST(check_rejects_keywords_of_calls_that_take_none)
{
    Fx f;
    const char *t = MODEL_HEAD "  block(x) {\n    return x + relu(x, slope = 2)\n  }\n}\n";
    ck_assert_ptr_null(load(&f, t, NULL, 0, false));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "unknown argument 'slope' to relu() (it takes none)"));
    arena_fini(&f.arena);
}
END_TEST

/* Writing a field's default explicitly gives the Spec that omitting it gives. */
START_TEST(check_defaults_mean_what_they_say)
{
    static const struct {
        const char *written;
    } cases[] = {
        {"train { clip = 1.0; seed = 42; eval_every = 100; eval_batches = 8; checkpoint_every = 0;"
         " checkpoint_dir = \"checkpoints\"; val_fraction = 0.05; batch = 8; steps = 1000; precision = fp32;"
         " target = cpu; optimizer = adamw(lr = 1e-3, betas = (0.9, 0.999), eps = 1e-8, weight_decay = 0.0,"
         " no_decay = [\"norms\", \"biases\", \"embedding\"]);"
         " schedule = relora(warmup = 5%, warm_start = 25%, reset_every = 20%, restart_warmup = 2%,"
         " min_lr_ratio = 0.1, prune = 0.99, reset = magnitude, lr = 1e-3) }\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Fx a, b;
        char with[2048];
        snprintf(with, sizeof with, "%s%s%s", MODEL_HEAD LLAMA_BLOCK, "adapter lora { rank = 4 }\n", cases[i].written);
        ck_assert_ptr_nonnull(load(&a, with, NULL, 0, false));
        ck_assert_ptr_nonnull(load(&b, MODEL_HEAD LLAMA_BLOCK "adapter lora { rank = 4 }\n", NULL, 0, false));
        const SpecTrain *x = &a.spec->train, *y = &b.spec->train;
        ck_assert(x->clip == y->clip && x->seed == y->seed && x->eval_every == y->eval_every);
        ck_assert(x->eval_batches == y->eval_batches && x->checkpoint_every == y->checkpoint_every);
        ck_assert_str_eq(x->checkpoint_dir, y->checkpoint_dir);
        ck_assert(x->val_fraction == y->val_fraction && x->batch == y->batch && x->steps == y->steps);
        ck_assert(x->optimizer.lr == y->optimizer.lr && x->optimizer.betas[0] == y->optimizer.betas[0] &&
                  x->optimizer.betas[1] == y->optimizer.betas[1] && x->optimizer.eps == y->optimizer.eps &&
                  x->optimizer.weight_decay == y->optimizer.weight_decay);
        ck_assert_int_eq(x->optimizer.no_decay.n, y->optimizer.no_decay.n);
        const SpecSchedule *p = &x->schedule, *q = &y->schedule;
        ck_assert(p->kind == q->kind && p->warmup.n == q->warmup.n && p->warmup.percent == q->warmup.percent);
        ck_assert(p->warm_start.n == q->warm_start.n && p->reset_every.n == q->reset_every.n &&
                  p->restart_warmup.n == q->restart_warmup.n && p->min_lr_ratio == q->min_lr_ratio &&
                  p->prune == q->prune && p->reset == q->reset && p->relora_lr == q->relora_lr);
        arena_fini(&a.arena);
        arena_fini(&b.arena);
    }
}
END_TEST

/* fields.def: names unique per section; words where a type needs them; each call
 * field has kinds; bounds ordered; a required field has no default to document. */
START_TEST(check_field_table_is_consistent)
{
    for (int i = 0; i < FIELD_COUNT; i++) {
        const FieldDesc *f = &fe_fields[i];
        ck_assert_int_eq(f->id, i);
        ck_assert_ptr_eq(fe_field_find(f->section, f->name), f);
        ck_assert_msg(f->doc && *f->doc, "%s has no doc", f->name);
        if (f->type == FT_WORD || f->type == FT_DATA)
            ck_assert_msg(f->words && f->words[0], "%s has no words", f->name);
        if (f->type == FT_CALL) {
            FieldSection first;
            ck_assert_msg(fe_field_kinds(f, &first) > 0, "%s has no kinds", f->name);
        }
        ck_assert_msg(!(f->lo > f->hi), "%s: lo > hi", f->name);
        if (f->flags & FF_COMPUTED)
            ck_assert_msg(f->def != NULL, "%s: a computed default needs its description", f->name);
    }
    for (int s = 0; s < FS_COUNT; s++)
        ck_assert_int_eq(fe_section_find(fe_sections[s].name), s);
}
END_TEST

START_TEST(check_names_modules_and_params)
{
    Fx f;
    ck_assert_ptr_nonnull(load(&f, MODEL_HEAD LLAMA_BLOCK, NULL, 0, false));
    const SpecBlock *b = &f.spec->model.block;
    ck_assert_int_eq(b->n_modules, 4);
    ck_assert_str_eq(b->modules[0]->name, "rmsnorm_1");
    ck_assert_str_eq(b->modules[1]->name, "attention");
    ck_assert_str_eq(b->modules[2]->name, "rmsnorm_2");
    ck_assert_str_eq(b->modules[3]->name, "swiglu");
    const SpecParam *down = param(f.spec, "layers.{i}.swiglu.down.weight");
    ck_assert_ptr_nonnull(down);
    ck_assert_int_eq(down->shape[0], 64);  /* [out, in] */
    ck_assert_int_eq(down->shape[1], 256);
    ck_assert_str_eq(spec_param_name(&f.arena, param(f.spec, "layers.{i}.attention.q.weight"), 2),
                     "layers.2.attention.q.weight");
    ck_assert_ptr_nonnull(param(f.spec, "embedding.weight"));
    ck_assert_ptr_nonnull(param(f.spec, "norm.weight"));
    ck_assert_ptr_nonnull(param(f.spec, "head.weight"));
    ck_assert_ptr_null(param(f.spec, "positions.weight"));
    ck_assert_int_eq(f.spec->model.n_linears, 7);
    ck_assert_str_eq(f.spec->model.linears[6]->full_name, "swiglu.down");
    ck_assert_ptr_eq(f.spec->model.linears[0]->weight, param(f.spec, "layers.{i}.attention.q.weight"));
    arena_fini(&f.arena);
}
END_TEST

START_TEST(check_builds_the_dataflow_graph)
{
    Fx f;
    ck_assert_ptr_nonnull(load(&f, MODEL_HEAD LLAMA_BLOCK, NULL, 0, false));
    const SpecBlock *b = &f.spec->model.block;
    const SpecNode *r = b->ret;
    ck_assert_int_eq(r->kind, SPEC_NODE_ADD);
    ck_assert_int_eq(r->a->kind, SPEC_NODE_LOCAL);
    ck_assert_str_eq(r->a->local, "h");
    ck_assert_ptr_eq(r->a->a, b->locals[0].value);
    ck_assert_int_eq(r->b->kind, SPEC_NODE_MODULE);
    ck_assert_str_eq(r->b->module->name, "swiglu");
    ck_assert_int_eq(r->b->module->hidden, 256); /* 4 * dim */
    const SpecNode *h = b->locals[0].value;
    ck_assert_int_eq(h->a->kind, SPEC_NODE_INPUT);
    ck_assert_int_eq(h->b->module->kind, SPEC_MOD_ATTENTION);
    ck_assert(h->b->module->has_rope);
    ck_assert_int_eq(h->b->a->module->kind, SPEC_MOD_RMSNORM);
    arena_fini(&f.arena);
}
END_TEST

START_TEST(check_parallel_block_shares_one_norm)
{
    Fx f;
    const char *t = MODEL_HEAD "  kv_heads = 2\n  block(x) {\n    n = layernorm(x, bias = false)\n"
                               "    return x + attention(n, rope = 10000) + geglu(n, hidden = 100)\n  }\n}\n";
    ck_assert_ptr_nonnull(load(&f, t, NULL, 0, false));
    const SpecBlock *b = &f.spec->model.block;
    ck_assert_int_eq(b->n_modules, 3);
    ck_assert_str_eq(b->modules[0]->name, "layernorm");
    const SpecModule *att = b->modules[1];
    ck_assert_int_eq(att->kv_heads, 2);
    ck_assert_int_eq(att->linears[1].out, 2 * 16); /* k: kv_heads * head_dim */
    ck_assert_ptr_eq(b->ret->a->b->a->a, b->ret->b->a->a); /* both read the local n */
    arena_fini(&f.arena);
}
END_TEST

START_TEST(check_numbers_repeated_kinds_and_honours_names)
{
    Fx f;
    const char *t = MODEL_HEAD "  block(x) {\n    a = linear(x, out = dim, name = \"fc\")\n"
                               "    return linear(a, out = dim) + linear(x, out = dim) + a\n  }\n}\n";
    ck_assert_ptr_nonnull(load(&f, t, NULL, 0, false));
    const SpecBlock *b = &f.spec->model.block;
    ck_assert_str_eq(b->modules[0]->name, "fc");
    ck_assert_str_eq(b->modules[1]->name, "linear_1");
    ck_assert_str_eq(b->modules[2]->name, "linear_2");
    ck_assert_str_eq(f.spec->model.linears[0]->full_name, "fc");
    arena_fini(&f.arena);
}
END_TEST

static const char *const relora_tail =
    "adapter lora { rank = 8; alpha = 16; targets = [\"attention.?\", \"swiglu.down\"] }\n"
    "train { steps = 20k; schedule = relora(warm_start = 25%, reset_every = 5000, restart_warmup = 100) }\n";

START_TEST(check_resolves_adapter_and_schedule)
{
    Fx f;
    char t[1024];
    snprintf(t, sizeof t, "%s%s%s", MODEL_HEAD, LLAMA_BLOCK, relora_tail);
    ck_assert_ptr_nonnull(load(&f, t, NULL, 0, false));
    const Spec *s = f.spec;
    ck_assert_int_eq(s->train.schedule.kind, SPEC_SCHED_RELORA);
    ck_assert_int_eq(s->train.schedule.warm_start.n, 5000);
    ck_assert_int_eq(s->train.schedule.n_resets, 2);
    ck_assert_double_eq_tol(s->train.schedule.relora_lr, 1e-3, 1e-15);
    ck_assert_double_eq_tol(s->adapter.scaling, 2.0, 1e-12);
    int adapted = 0;
    for (int i = 0; i < s->model.n_linears; i++)
        adapted += s->model.linears[i]->is_adapted;
    ck_assert_int_eq(adapted, 5);
    ck_assert(!s->model.linears[4]->is_adapted); /* swiglu.gate */
    ck_assert(!param(s, "layers.{i}.swiglu.gate.weight")->is_trainable_relora); /* not in trainable */
    ck_assert(param(s, "layers.{i}.rmsnorm_1.weight")->is_trainable_relora);
    ck_assert(!param(s, "layers.{i}.rmsnorm_1.weight")->has_decay);
    ck_assert(param(s, "head.weight")->has_decay);
    arena_fini(&f.arena);
}
END_TEST

START_TEST(check_applies_overrides)
{
    Fx f;
    char t[1024];
    snprintf(t, sizeof t, "%s%s%s", MODEL_HEAD, LLAMA_BLOCK, relora_tail);
    const char *defs[] = {"model.dim=128", "adapter.rank=16", "train.schedule.reset_every=1000",
                          "model.block.swiglu.hidden=300", "train.steps=10000"};
    ck_assert_ptr_nonnull(load(&f, t, defs, 5, false));
    ck_assert_int_eq(f.spec->model.dim, 128);
    ck_assert_int_eq(f.spec->adapter.rank, 16);
    ck_assert_int_eq(f.spec->train.schedule.reset_every.n, 1000);
    ck_assert_int_eq(f.spec->train.schedule.warm_start.n, 2500); /* 25% of the new steps */
    ck_assert_int_eq(f.spec->model.block.modules[3]->hidden, 300);
    arena_fini(&f.arena);
}
END_TEST

START_TEST(check_variants_inherit_and_override)
{
    Fx f;
    const char *t = MODEL_HEAD LLAMA_BLOCK "model w : m { dim = 128; block.swiglu.hidden = 100 }\n";
    ck_assert_ptr_nonnull(load(&f, t, NULL, 0, false));
    ck_assert_str_eq(f.spec->model.name, "w");
    ck_assert_int_eq(f.spec->model.dim, 128);
    ck_assert_int_eq(f.spec->model.layers, 3);
    ck_assert_int_eq(f.spec->model.block.modules[3]->hidden, 100);
    arena_fini(&f.arena);
}
END_TEST

START_TEST(check_reports_rule_violations)
{
    Fx f;
    const char *t = MODEL_HEAD LLAMA_BLOCK "adapter lora { rank = 0 }\ntrain { seq_len = 64; precision = bf16 }\n";
    ck_assert_ptr_null(load(&f, t, NULL, 0, false));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "lora rank must be > 0 (got 0)"));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "seq_len must be <= the model context"));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "precision = bf16 on target = cpu needs a CPU with AVX512-BF16 "
                                            "(avx512_bf16), which the target CPU lacks"));
    arena_fini(&f.arena);
}
END_TEST

START_TEST(check_bf16_on_cpu_follows_the_target_cpu)
{
    const char *t = MODEL_HEAD LLAMA_BLOCK "train { seq_len = 32; precision = bf16 }\n";
    const char *t_cuda = MODEL_HEAD LLAMA_BLOCK "train { seq_len = 32; precision = bf16; target = cuda }\n";
    const FeOptions with = {.cpu_name = "--cpu cooperlake", .cpu_has_bf16 = true};
    const FeOptions without = {.cpu_name = "--cpu skylake-avx512", .cpu_has_bf16 = false};
    Fx f;
    arena_init(&f.arena);
    diag_init(&f.diags, &f.arena);
    ck_assert_ptr_nonnull(fe_load_spec_buffer(&f.arena, &f.diags, "t.relora", t, strlen(t), &with));
    ck_assert_int_eq(f.diags.n_errors, 0);
    ck_assert_ptr_null(fe_load_spec_buffer(&f.arena, &f.diags, "t.relora", t, strlen(t), &without));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "which --cpu skylake-avx512 lacks"));
    arena_fini(&f.arena);
    /* the CPU does not matter for the cuda target */
    arena_init(&f.arena);
    diag_init(&f.diags, &f.arena);
    ck_assert_ptr_nonnull(fe_load_spec_buffer(&f.arena, &f.diags, "t.relora", t_cuda, strlen(t_cuda), &without));
    arena_fini(&f.arena);
}
END_TEST

START_TEST(check_missing_data_is_an_error_only_when_training)
{
    Fx f, g;
    const char *t = MODEL_HEAD LLAMA_BLOCK "train { data = text(\"/no/such/file\") }\n";
    ck_assert_ptr_nonnull(load(&f, t, NULL, 0, false));
    ck_assert(has_msg(&f.diags, DIAG_WARNING, "not found"));
    ck_assert(!f.spec->train.data.exists);
    ck_assert_ptr_null(load(&g, t, NULL, 0, true));
    ck_assert(has_msg(&g.diags, DIAG_ERROR, "data file '/no/such/file' not found"));
    arena_fini(&f.arena);
    arena_fini(&g.arena);
}
END_TEST

START_TEST(check_suggests_names)
{
    Fx f;
    const char *t = MODEL_HEAD LLAMA_BLOCK "adapter lora { rank = 4; targets = [\"atention.q\"] }\n"
                                           "train { step = 10 }\n";
    ck_assert_ptr_null(load(&f, t, NULL, 0, false));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "unknown target 'atention.q'; did you mean 'attention.q'?"));
    ck_assert(has_msg(&f.diags, DIAG_ERROR, "unknown field 'step' in train; did you mean 'steps'?"));
    arena_fini(&f.arena);
}
END_TEST

START_TEST(check_selects_model_by_name)
{
    Arena a;
    arena_init(&a);
    Diags d;
    diag_init(&d, &a);
    const char *t = MODEL_HEAD LLAMA_BLOCK "model w : m { dim = 128 }\n";
    FeOptions opt = {.model_name = "m"};
    const Spec *s = fe_load_spec_buffer(&a, &d, "t.relora", t, strlen(t), &opt);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s->model.name, "m");
    opt.model_name = "ww";
    ck_assert_ptr_null(fe_load_spec_buffer(&a, &d, "t.relora", t, strlen(t), &opt));
    ck_assert(has_msg(&d, DIAG_ERROR, "no model named 'ww'"));
    arena_fini(&a);
}
END_TEST

Suite *check_suite(void)
{
    Suite *s = suite_create("check");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, check_fills_defaults);
    tcase_add_test(tc, check_fills_relora_defaults_as_percentages);
    tcase_add_test(tc, check_records_percentages_as_written);
    tcase_add_test(tc, check_explains_a_percentage_that_rounds_to_zero);
    tcase_add_test(tc, check_reports_bounds_of_each_kind);
    tcase_add_test(tc, check_lists_the_fields_that_take_percentages);
    tcase_add_test(tc, check_rejects_keywords_of_calls_that_take_none);
    tcase_add_test(tc, check_defaults_mean_what_they_say);
    tcase_add_test(tc, check_field_table_is_consistent);
    tcase_add_test(tc, check_names_modules_and_params);
    tcase_add_test(tc, check_builds_the_dataflow_graph);
    tcase_add_test(tc, check_parallel_block_shares_one_norm);
    tcase_add_test(tc, check_numbers_repeated_kinds_and_honours_names);
    tcase_add_test(tc, check_resolves_adapter_and_schedule);
    tcase_add_test(tc, check_applies_overrides);
    tcase_add_test(tc, check_variants_inherit_and_override);
    tcase_add_test(tc, check_reports_rule_violations);
    tcase_add_test(tc, check_bf16_on_cpu_follows_the_target_cpu);
    tcase_add_test(tc, check_missing_data_is_an_error_only_when_training);
    tcase_add_test(tc, check_suggests_names);
    tcase_add_test(tc, check_selects_model_by_name);
    suite_add_tcase(s, tc);
    return s;
}
