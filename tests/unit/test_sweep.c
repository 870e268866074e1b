/* Sweep tests (§6): expansion of named variants and grids into checked variants (their
 * names, axes and overrides), the command line's grids and -D, failing variants, and
 * the build key of sweep_run.c: variants that differ only in run-time settings compile
 * to the same program text, others do not. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "fe.h"
#include "fields.h"
#include "lower.h"
#include "pm.h"
#include "sweep_run.h"

typedef struct {
    Arena arena;
    Diags diags;
    FeVariant *v;
    int n;
} Fx;

static bool expand(Fx *f, const char *text, const char *const *defs, int n_defs, const char *sweep,
                   const char *const *grids, int n_grids)
{
    arena_init(&f->arena);
    diag_init(&f->diags, &f->arena);
    FeOptions opt = {.defines = defs, .n_defines = n_defs};
    FeSweepOptions so = {.sweep_name = sweep, .grids = grids, .n_grids = n_grids};
    return fe_sweep_expand(&f->arena, &f->diags, "t.relora", text, strlen(text), &opt, &so, &f->v, &f->n);
}

static void fx_fini(Fx *f)
{
    arena_fini(&f->arena);
}

static const FeVariant *find(const Fx *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->v[i].name, name))
            return &f->v[i];
    ck_abort_msg("no variant named %s", name);
    return NULL;
}

/* A 1-layer LLaMA with two sizes and an adapter; train with a relora schedule. */
#define SPEC_HEAD                                                                                          \
    "model a {\n  vocab = 256; dim = 32; layers = 1; heads = 2; context = 16\n"                            \
    "  block(x) {\n    h = x + attention(rmsnorm(x), rope = 10000)\n"                                      \
    "    return h + swiglu(rmsnorm(h), hidden = 64)\n  }\n}\n"                                             \
    "model b : a { dim = 64; block.swiglu.hidden = 128 }\n"                                                \
    "adapter lora { rank = 4; targets = [\"attention.*\", \"swiglu.*\"] }\n"                                \
    "train { batch = 2; steps = 100; optimizer = adamw(lr = 1e-3)\n"                                       \
    "  schedule = relora(warm_start = 20, reset_every = 20, restart_warmup = 2, lr = 2e-3) }\n"

START_TEST(sweep_grid_expands_last_key_fastest)
{
    Fx f;
    ck_assert(expand(&f, SPEC_HEAD "sweep g { model.dim = [32, 64]; adapter.rank = [2, 4, 8] }\n", NULL, 0, NULL,
                     NULL, 0));
    ck_assert_int_eq(f.n, 6);
    static const char *const names[] = {"g/dim=32,rank=2", "g/dim=32,rank=4", "g/dim=32,rank=8",
                                        "g/dim=64,rank=2", "g/dim=64,rank=4", "g/dim=64,rank=8"};
    for (int i = 0; i < 6; i++) {
        ck_assert_str_eq(f.v[i].name, names[i]);
        ck_assert_ptr_nonnull(f.v[i].spec);
        ck_assert_int_eq(f.v[i].n_axes, 2);
        ck_assert_str_eq(f.v[i].keys[0], "dim");
        ck_assert_ptr_null(f.v[i].variant);
    }
    ck_assert_int_eq(f.v[5].spec->model.dim, 64);
    ck_assert_int_eq(f.v[5].spec->adapter.rank, 8);
    ck_assert_str_eq(f.v[4].values[1], "4");
    fx_fini(&f);
}
END_TEST

START_TEST(sweep_variants_cross_the_grid_and_replace_its_keys)
{
    Fx f;
    ck_assert(expand(&f,
                     SPEC_HEAD "sweep s {\n  train.seed = [1, 2]; train.steps = 50\n"
                               "  variant full { adapter = none; train.schedule = cosine() }\n"
                               "  variant relora { }\n"
                               "  variant one { train.seed = 7; model = b; train.schedule.lr = [3e-3, 4e-3] }\n}\n",
                     NULL, 0, NULL, NULL, 0));
    ck_assert_int_eq(f.n, 2 + 2 + 2);
    const FeVariant *full = find(&f, "s/full,seed=2");
    ck_assert_str_eq(full->variant, "full");
    ck_assert(!full->spec->adapter.is_present);
    ck_assert_int_eq(full->spec->train.schedule.kind, SPEC_SCHED_COSINE);
    ck_assert_int_eq(full->spec->train.seed, 2);
    ck_assert_int_eq(full->spec->train.steps, 50); /* the sweep's fixed override */
    const FeVariant *relora = find(&f, "s/relora,seed=1");
    ck_assert(relora->spec->adapter.is_present);
    ck_assert_int_eq(relora->spec->train.schedule.kind, SPEC_SCHED_RELORA);
    /* `one` sets train.seed itself: that axis is gone for it; model = b selects b */
    const FeVariant *one = find(&f, "s/one,lr=4e-3");
    ck_assert_int_eq(one->n_axes, 1);
    ck_assert_int_eq(one->spec->train.seed, 7);
    ck_assert_int_eq(one->spec->model.dim, 64);
    ck_assert_double_eq_tol(one->spec->train.schedule.relora_lr, 4e-3, 1e-15);
    fx_fini(&f);
}
END_TEST

START_TEST(sweep_list_field_takes_a_list_of_lists_as_grid)
{
    Fx f;
    ck_assert(expand(&f,
                     SPEC_HEAD "sweep t {\n  adapter.targets = [[\"attention.*\"], [\"swiglu.*\", \"attention.q\"]]\n"
                               "  variant v { adapter.trainable = [\"norms\"] }\n}\n",
                     NULL, 0, NULL, NULL, 0));
    ck_assert_int_eq(f.n, 2);
    ck_assert_int_eq(f.v[0].n_axes, 1);
    ck_assert_int_eq(f.v[1].spec->adapter.targets.n, 2);
    ck_assert_int_eq(f.v[0].spec->adapter.targets.n, 1);
    ck_assert_int_eq(f.v[0].spec->adapter.trainable.n, 1); /* a list value, not a grid */
    fx_fini(&f);
}
END_TEST

START_TEST(sweep_short_keys_tell_apart_same_field_names)
{
    Fx f;
    ck_assert(expand(&f, SPEC_HEAD "sweep s { train.optimizer.lr = [1e-3, 2e-3]; train.schedule.lr = [3e-3] }\n", NULL,
                     0, NULL, NULL, 0));
    ck_assert_int_eq(f.n, 2);
    ck_assert_str_eq(f.v[1].name, "s/optimizer.lr=2e-3,schedule.lr=3e-3");
    ck_assert_str_eq(f.v[1].paths[0], "train.optimizer.lr");
    fx_fini(&f);
    /* shortened within each variant: another variant's axis does not rename this one */
    ck_assert(expand(&f,
                     SPEC_HEAD "sweep s { variant x { train.optimizer.lr = [1e-3] }\n"
                               "  variant y { train.optimizer.lr = [1e-3]; train.schedule.lr = [3e-3] } }\n"
                               "sweep t { train.schedule.lr = [3e-3] }\n",
                     NULL, 0, NULL, NULL, 0));
    ck_assert_int_eq(f.n, 3);
    ck_assert_str_eq(f.v[0].name, "s/x,lr=1e-3");
    ck_assert_str_eq(f.v[1].name, "s/y,optimizer.lr=1e-3,schedule.lr=3e-3");
    ck_assert_str_eq(f.v[2].name, "t/lr=3e-3");
    fx_fini(&f);
}
END_TEST

START_TEST(sweep_command_line_grid_adds_an_axis_and_define_applies_last)
{
    static const char *const grids[] = {"train.optimizer.lr=[1e-3, 2e-3]", "train.optimizer.betas=[(0.9, 0.95)]"};
    static const char *const defs[] = {"train.steps=30"};
    Fx f;
    ck_assert(expand(&f, SPEC_HEAD "sweep s { train.steps = 60; variant x { }; variant y { train.seed = 3 } }\n", defs,
                     1, NULL, grids, 2));
    ck_assert_int_eq(f.n, 4);
    const FeVariant *v = find(&f, "s/y,lr=2e-3,betas=(0.9, 0.95)");
    ck_assert_int_eq(v->spec->train.steps, 30);
    ck_assert_int_eq(v->spec->train.seed, 3);
    ck_assert_double_eq_tol(v->spec->train.optimizer.betas[1], 0.95, 1e-15);
    fx_fini(&f);
    /* without a sweep in the file, the grids form one named grid */
    ck_assert(expand(&f, SPEC_HEAD, NULL, 0, NULL, grids, 1));
    ck_assert_int_eq(f.n, 2);
    ck_assert_str_eq(f.v[0].name, "grid/lr=1e-3");
    ck_assert_str_eq(f.v[0].sweep, "grid");
    fx_fini(&f);
    /* a grid must be a list */
    static const char *const bad[] = {"train.optimizer.lr=1e-3"};
    ck_assert(!expand(&f, SPEC_HEAD, NULL, 0, NULL, bad, 1));
    ck_assert_int_eq(f.diags.n_errors, 1);
    ck_assert_str_eq(f.diags.list[0].loc.file, "<--grid>");
    fx_fini(&f);
}
END_TEST

START_TEST(sweep_failing_variant_keeps_its_error_and_the_others_check)
{
    Fx f;
    ck_assert(expand(&f, SPEC_HEAD "sweep s { adapter.rank = [4, 99] }\n", NULL, 0, NULL, NULL, 0));
    ck_assert_int_eq(f.n, 2);
    ck_assert_ptr_nonnull(f.v[0].spec);
    ck_assert_ptr_null(f.v[1].spec);
    ck_assert_ptr_nonnull(strstr(f.v[1].error, "t.relora:"));
    ck_assert_ptr_nonnull(strstr(f.v[1].error, "rank"));
    fx_fini(&f);
    /* --sweep selects; an unknown one is an error */
    ck_assert(expand(&f, SPEC_HEAD "sweep s { adapter.rank = [4] }\nsweep t { adapter.rank = [2] }\n", NULL, 0, "t",
                     NULL, 0));
    ck_assert_int_eq(f.n, 1);
    ck_assert_str_eq(f.v[0].name, "t/rank=2");
    fx_fini(&f);
    ck_assert(!expand(&f, SPEC_HEAD "sweep s { adapter.rank = [4] }\n", NULL, 0, "u", NULL, 0));
    fx_fini(&f);
}
END_TEST

/* Every grid point of a failing variant carries the error, not only the first: the
 * checker reports a repeated error once, and the second point fails on the same
 * statement. The error is printed once. */
START_TEST(sweep_every_point_of_a_failing_variant_keeps_its_error)
{
    Fx f;
    ck_assert(expand(&f, SPEC_HEAD "sweep s {\n  train.seed = [1, 2]\n  variant v { adapter = none; train.schedule = cosine(); adapter.rank = 8 }\n}\n",
                     NULL, 0, NULL, NULL, 0));
    ck_assert_int_eq(f.n, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_ptr_null(f.v[i].spec);
        ck_assert_int_eq(f.v[i].n_errors, 1);
        ck_assert_ptr_nonnull(strstr(f.v[i].error, "t.relora:14:"));
        ck_assert_ptr_nonnull(strstr(f.v[i].error, "adapter.rank"));
    }
    int n_errors = 0;
    for (int i = 0; i < f.diags.n; i++)
        n_errors += f.diags.list[i].level == DIAG_ERROR;
    ck_assert_int_eq(n_errors, 1);
    fx_fini(&f);
}
END_TEST

/* The build key of a variant: its module after the pipeline, run-time attributes removed. */
static char *key_of(const Spec *spec, Arena *a)
{
    Diags d;
    diag_init(&d, a);
    IrModule *m = fe_lower(a, &d, spec);
    ck_assert_ptr_nonnull(m);
    PassCtx pc = {a, &d, m, PROP_LOWERED};
    PassOptions po = {0};
    ck_assert(pass_pipeline_run(&pc, &po));
    size_t len;
    char *text = sweep_build_text(m, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(strlen(text), len);
    return text;
}

START_TEST(sweep_build_key_ignores_run_time_settings_only)
{
    Fx f;
    ck_assert(expand(&f,
                     SPEC_HEAD "sweep s {\n"
                               "  variant base { }\n"
                               "  variant run_time { train.seed = 5; train.steps = 300; train.optimizer.lr = 4e-3\n"
                               "    train.schedule = relora(warm_start = 10%, reset_every = 7, restart_warmup = 1,\n"
                               "                            lr = 1e-2, prune = 0.5, min_lr_ratio = 0.2, warmup = 3)\n"
                               "    train.eval_every = 7; train.eval_batches = 3; train.checkpoint_every = 9\n"
                               "    train.checkpoint_dir = \"elsewhere\" }\n"
                               "  variant rank { adapter.rank = 8 }\n"
                               "  variant no_warm_start { train.schedule.warm_start = 0 }\n"
                               "  variant batch { train.batch = 3 }\n"
                               "  variant clip { train.clip = 0.5 }\n"
                               "  variant cosine { train.schedule = cosine() }\n}\n",
                     NULL, 0, NULL, NULL, 0));
    ck_assert_int_eq(f.n, 7);
    char *key[7];
    for (int i = 0; i < 7; i++) {
        ck_assert_ptr_nonnull(f.v[i].spec);
        key[i] = key_of(f.v[i].spec, &f.arena);
    }
    ck_assert_str_eq(key[0], key[1]);
    for (int i = 2; i < 7; i++)
        ck_assert_msg(strcmp(key[0], key[i]) != 0, "%s shares the base's build", f.v[i].name);
    for (int i = 0; i < 7; i++)
        free(key[i]);
    fx_fini(&f);
}
END_TEST

/* Every run-time attribute is one that fields.def gives a field (docs/language.md
 * §5.4), and each has its trainer option but train.out (the sweep's own --out). */
START_TEST(sweep_runtime_attrs_are_field_attributes)
{
    for (int i = 0; i < sweep_n_runtime_attrs; i++) {
        bool found = false;
        for (int j = 0; j < FIELD_COUNT && !found; j++)
            found = fe_fields[j].attr && !strcmp(fe_fields[j].attr, sweep_runtime_attrs[i].attr);
        ck_assert_msg(found, "%s is no attribute of fields.def", sweep_runtime_attrs[i].attr);
        bool is_out = !strcmp(sweep_runtime_attrs[i].attr, "train.out");
        ck_assert(is_out == (sweep_runtime_attrs[i].option == NULL));
    }
}
END_TEST

Suite *sweep_suite(void)
{
    Suite *s = suite_create("sweep");
    TCase *tc = tcase_create("sweep");
    tcase_add_test(tc, sweep_grid_expands_last_key_fastest);
    tcase_add_test(tc, sweep_variants_cross_the_grid_and_replace_its_keys);
    tcase_add_test(tc, sweep_list_field_takes_a_list_of_lists_as_grid);
    tcase_add_test(tc, sweep_short_keys_tell_apart_same_field_names);
    tcase_add_test(tc, sweep_command_line_grid_adds_an_axis_and_define_applies_last);
    tcase_add_test(tc, sweep_failing_variant_keeps_its_error_and_the_others_check);
    tcase_add_test(tc, sweep_every_point_of_a_failing_variant_keeps_its_error);
    tcase_add_test(tc, sweep_build_key_ignores_run_time_settings_only);
    tcase_add_test(tc, sweep_runtime_attrs_are_field_attributes);
    suite_add_tcase(s, tc);
    return s;
}
