/* Report tests: parameter counts of the reference models (numbers from
 * docs/relora-notes §1.1 and GPT-2), FLOP and memory formulas, JSON output. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe.h"
#include "report.h"

typedef struct {
    Arena arena;
    Diags diags;
    const Spec *spec;
    FeReport r;
} Fx;

static void load_example(Fx *f, const char *name)
{
    const char *root = getenv("RELORAC_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/examples/%s", root ? root : ".", name);
    arena_init(&f->arena);
    diag_init(&f->diags, &f->arena);
    f->spec = fe_load_spec(&f->arena, &f->diags, path, NULL);
    if (!f->spec)
        diag_print(&f->diags, stderr, false);
    ck_assert_ptr_nonnull(f->spec);
    fe_report_compute(&f->arena, f->spec, &f->r);
}

START_TEST(report_counts_llama_350m)
{
    Fx f;
    load_example(&f, "llama-350m.relora");
    ck_assert_int_eq(f.r.total, 368174080);
    ck_assert_int_eq(f.r.trainable_relora, 125608960);
    ck_assert_int_eq(f.r.lora, 59817984); /* 24 x 128 x (4 x 2048 + 2 x 3760 + 3760) */
    ck_assert_int_eq(f.r.frozen_relora + f.r.trainable_base, f.r.total);
    ck_assert_int_eq(f.r.adapted_per_layer, 7);
    arena_fini(&f.arena);
}
END_TEST

START_TEST(report_counts_gpt2_small)
{
    Fx f;
    load_example(&f, "gpt2-small.relora");
    ck_assert_int_eq(f.r.total, 124439808);
    ck_assert(f.spec->model.tied);
    arena_fini(&f.arena);
}
END_TEST

START_TEST(report_counts_the_paper_table)
{
    static const struct {
        const char *file;
        int64_t total, trainable;
    } rows[] = {
        {"llama-60m.relora", 58176000, 42873344},    {"llama-130m.relora", 134259456, 71738112},
        {"llama-250m.relora", 247524096, 98888448},  {"llama-1b3.relora", 1339492352, 251116544},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        Fx f;
        load_example(&f, rows[i].file);
        ck_assert_int_eq(f.r.total, rows[i].total);
        ck_assert_int_eq(f.r.trainable_relora, rows[i].trainable);
        arena_fini(&f.arena);
    }
}
END_TEST

START_TEST(report_follows_the_flop_formulas)
{
    Fx f;
    load_example(&f, "tiny.relora");
    const FeReport *r = &f.r;
    /* 4 layers x (4 x 128^2 + 3 x 128 x 344) + head 256 x 128 */
    ck_assert_int_eq(r->mm_params, 823296);
    ck_assert_int_eq(r->attn_flops, 12 * 4 * 32 * 128 * 4);
    ck_assert_int_eq(r->flops_full, 6 * r->mm_params + r->attn_flops);
    ck_assert_int_eq(r->mm_frozen, 823296 - 256 * 128);
    ck_assert_int_eq(r->flops_relora, 6 * 32768 + 4 * r->mm_frozen + 6 * r->lora + r->attn_flops);
    ck_assert_int_eq(r->mem[FE_PHASE_FULL][FE_PREC_FP32].weights, 4 * r->total);
    /* bf16: Adam moments stay f32; every adapted W (all block linears here) adds a bf16
     * copy, 4 x (4 x 128^2 + 3 x 128 x 344) elements, in both phases */
    ck_assert_int_eq(r->mem[FE_PHASE_FULL][FE_PREC_BF16].optimizer, 2 * 4 * r->total);
    ck_assert_int_eq(r->mem[FE_PHASE_FULL][FE_PREC_BF16].weights, 4 * r->total + 2 * 790528);
    ck_assert_int_eq(r->mem[FE_PHASE_RELORA][FE_PREC_BF16].weights, 4 * (r->total + r->lora) + 2 * 790528);
    ck_assert_int_eq(r->mem[FE_PHASE_RELORA][FE_PREC_BF16].activations,
                     r->mem[FE_PHASE_RELORA][FE_PREC_FP32].activations);
    ck_assert_int_eq(r->mem[FE_PHASE_RELORA][FE_PREC_FP32].grads, 4 * r->trainable_relora);
    arena_fini(&f.arena);
}
END_TEST

START_TEST(report_prints_json)
{
    Fx f;
    load_example(&f, "llama-350m.relora");
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    fe_report_print_json(out, f.spec, &f.r);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(buf, "\"total\": 368174080"));
    ck_assert_ptr_nonnull(strstr(buf, "\"relora_trainable\": 125608960"));
    ck_assert_ptr_nonnull(strstr(buf, "\"name\": \"layers.{i}.swiglu.down.weight\", \"shape\": [1024, 2736]"));
    /* the resolved fields, defaults and percentages as written included */
    ck_assert_ptr_nonnull(strstr(buf, "\"clip\": 1, "));
    ck_assert_ptr_nonnull(strstr(buf, "\"seed\": 42, "));
    ck_assert_ptr_nonnull(strstr(buf, "\"betas\": [0.9, 0.999]"));
    ck_assert_ptr_nonnull(strstr(buf, "\"warm_start\": 5000, \"warm_start_percent\": 25, "));
    ck_assert_int_eq(buf[len - 2], '}');
    free(buf);
    arena_fini(&f.arena);
}
END_TEST

START_TEST(report_has_no_relora_phase_without_relora_schedule)
{
    Fx f;
    arena_init(&f.arena);
    diag_init(&f.diags, &f.arena);
    const char *defs[] = {"train.schedule=cosine(warmup=10)"};
    const char *root = getenv("RELORAC_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/examples/tiny.relora", root ? root : ".");
    FeOptions opt = {.defines = defs, .n_defines = 1};
    f.spec = fe_load_spec(&f.arena, &f.diags, path, &opt);
    ck_assert_ptr_nonnull(f.spec);
    fe_report_compute(&f.arena, f.spec, &f.r);
    ck_assert(!f.r.has_relora);
    ck_assert_int_eq(f.r.lora, 0);
    ck_assert_int_eq(f.r.total, 857216);
    arena_fini(&f.arena);
}
END_TEST

Suite *report_suite(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, report_counts_llama_350m);
    tcase_add_test(tc, report_counts_gpt2_small);
    tcase_add_test(tc, report_counts_the_paper_table);
    tcase_add_test(tc, report_follows_the_flop_formulas);
    tcase_add_test(tc, report_prints_json);
    tcase_add_test(tc, report_has_no_relora_phase_without_relora_schedule);
    suite_add_tcase(s, tc);
    return s;
}
