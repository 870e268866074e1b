/* Lowering, whole-model gradients and the kernelizer, on tiny models of each block
 * kind (LLaMA, GPT-2, parallel):
 *  - the lowered IR verifies;
 *  - a fresh byte-level model starts at loss ln(256);
 *  - the loss gradient of every parameter tensor matches central finite differences
 *    (f64 reference executor);
 *  - the kernels (kernel IR interpreter) compute the same loss and gradients as the
 *    graph interpreter;
 *  - a model is exported under LlamaForCausalLM names with a config.json exactly when
 *    LLaMA computes the same function (tiny.relora's config, field by field), and every
 *    model it cannot express (one case per dataflow shape and per config field) keeps
 *    relorac's names and says why in hf.export_note. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "tutil.h"

static const char *const BYTES =
    "model m {\n"
    "  vocab = 256; dim = 64; layers = 2; heads = 4; context = 32\n"
    "  block(x) {\n"
    "    h = x + attention(rmsnorm(x), rope = 10000)\n"
    "    return h + swiglu(rmsnorm(h), hidden = 128)\n"
    "  }\n"
    "}\n"
    "train { batch = 4; seq_len = 32; steps = 10 }\n";

static const char *const AUTODIFF[] = {"autodiff"};

static void check_verifies(const char *text)
{
    TuModel l;
    tu_lower(&l, text);
    tu_assert_ok(&l, ir_verify(l.m, &l.d));
    tu_run_passes(&l, AUTODIFF, 1);
    tu_fini(&l);
}

START_TEST(lower_verifies_for_each_block_kind)
{
    check_verifies(tu_spec_llama);
    check_verifies(tu_spec_gpt2);
    check_verifies(tu_spec_parallel);
}
END_TEST

START_TEST(lower_fresh_byte_model_starts_at_ln_256)
{
    TuModel l;
    tu_lower(&l, BYTES);
    IrInterp *it = ir_interp_create(l.m, 1234);
    ir_interp_run(it, ir_func_find(l.m, "init"));
    tu_set_tokens(it, l.m, 3);
    double loss = ir_interp_run(it, ir_func_find(l.m, "train"));
    printf("fresh byte-level model: loss %.4f, ln(256) = %.4f\n", loss, log(256.0));
    ck_assert_double_le(fabs(loss - log(256.0)), 0.05);
    ir_interp_destroy(it);
    tu_fini(&l);
}
END_TEST

/* Central differences on up to `per_tensor` elements of every trainable tensor. */
static double fd_check(const char *text, const char *label)
{
    TuModel l;
    tu_build(&l, text, AUTODIFF, 1);
    IrFunc *train = ir_func_find(l.m, "train");
    IrInterp *it = ir_interp_create(l.m, 99);
    ir_interp_run(it, ir_func_find(l.m, "init"));
    tu_perturb_params(it, l.m);
    tu_set_tokens(it, l.m, 11);
    double worst = 0;
    int n_tensors = 0;
    for (int i = 0; i < l.m->n_globals; i++) {
        IrGlobal *g = l.m->globals[i];
        IrGlobal *gg = ir_global_find(l.m, arena_sprintf(&l.a, "%s.grad", g->name));
        if (!gg)
            continue;
        n_tensors++;
        ir_interp_run(it, train);
        int64_t n = ir_type_numel(g->type);
        double *grad = ir_interp_global(it, gg);
        double *saved = malloc(sizeof(double) * (size_t)n);
        memcpy(saved, grad, sizeof(double) * (size_t)n);
        double *w = ir_interp_global(it, g);
        for (int s = 0; s < 5; s++) {
            int64_t j = (int64_t)(ir_rng_u64(3, (uint64_t)i, (uint64_t)s) % (uint64_t)n);
            double fd = tu_central_difference(it, train, w, j, 1e-5 * fmax(1.0, fabs(w[j])));
            double err = fabs(fd - saved[j]) / fmax(fmax(fabs(fd), fabs(saved[j])), 1e-4);
            if (err > worst)
                worst = err;
            if (err > 1e-6)
                printf("%s: %s[%lld]: autodiff %.10g, finite difference %.10g\n", label, g->name, (long long)j,
                       saved[j], fd);
        }
        free(saved);
    }
    printf("%s: %d parameter tensors, largest relative error vs finite differences %.3g\n", label, n_tensors, worst);
    ck_assert_int_gt(n_tensors, 5);
    ir_interp_destroy(it);
    tu_fini(&l);
    return worst;
}

START_TEST(lower_llama_gradients_match_finite_differences)
{
    ck_assert_double_lt(fd_check(tu_spec_llama, "llama"), 1e-6);
}
END_TEST

START_TEST(lower_gpt2_gradients_match_finite_differences)
{
    ck_assert_double_lt(fd_check(tu_spec_gpt2, "gpt2"), 1e-6);
}
END_TEST

START_TEST(lower_parallel_gradients_match_finite_differences)
{
    ck_assert_double_lt(fd_check(tu_spec_parallel, "parallel"), 1e-6);
}
END_TEST

/* The kernels compute what the graph computes: same loss, same stored gradients. */
static void check_kernels(const char *text, const char *label)
{
    TuModel l;
    tu_build(&l, text, AUTODIFF, 1);
    KProgram *p = k_program_build(&l.a, &l.d, l.m);
    if (!p)
        diag_print(&l.d, stderr, true);
    ck_assert_ptr_nonnull(p);
    IrInterp *gi = ir_interp_create(l.m, 42);
    KInterp *ki = k_interp_create(p, 42);
    ir_interp_run(gi, ir_func_find(l.m, "init"));
    k_interp_run(ki, k_program_func(p, "init"), 0);
    tu_set_tokens(gi, l.m, 5);
    IrGlobal *tok = ir_global_find(l.m, "tokens"), *tgt = ir_global_find(l.m, "targets");
    int64_t nt = ir_type_numel(tok->type);
    memcpy(k_interp_buf(ki, p->global_buf[tok->id]), ir_interp_global(gi, tok), sizeof(double) * (size_t)nt);
    memcpy(k_interp_buf(ki, p->global_buf[tgt->id]), ir_interp_global(gi, tgt), sizeof(double) * (size_t)nt);
    double lg = ir_interp_run(gi, ir_func_find(l.m, "train"));
    double lk = k_interp_run(ki, k_program_func(p, "train"), 0);
    ck_assert_double_eq_tol(lg, lk, 1e-10);
    double worst = 0;
    for (int i = 0; i < l.m->n_globals; i++) {
        IrGlobal *g = l.m->globals[i];
        if (g->cls == IR_CLASS_DATA)
            continue;
        const double *a = ir_interp_global(gi, g), *b = k_interp_buf(ki, p->global_buf[g->id]);
        for (int64_t j = 0; j < ir_type_numel(g->type); j++) {
            double err = fabs(a[j] - b[j]) / fmax(fabs(a[j]), 1e-6);
            if (err > worst)
                worst = err;
        }
    }
    printf("%s: kernels vs graph: loss %.12f vs %.12f, largest relative difference over all globals %.3g\n", label,
           lg, lk, worst);
    ck_assert_double_lt(worst, 1e-9);
    k_interp_destroy(ki);
    ir_interp_destroy(gi);
    tu_fini(&l);
}

START_TEST(kernels_match_the_graph_interpreter)
{
    check_kernels(tu_spec_llama, "llama");
    check_kernels(tu_spec_gpt2, "gpt2");
    check_kernels(tu_spec_parallel, "parallel");
}
END_TEST

/* The module attributes of a lowered spec are exactly `want` (hf.* aside, which
 * describe the export): every setting of the sections used, defaults included
 * (docs/language.md §5.4), and nothing of the ones not used. */
static void check_attrs(const char *text, const char *const *want)
{
    TuModel l;
    tu_lower(&l, text);
    int n_want = 0;
    while (want[n_want])
        n_want++;
    for (int i = 0; i < n_want; i++)
        ck_assert_msg(ir_attrs_get(&l.m->attrs, want[i]) != NULL, "no attribute %s", want[i]);
    for (int i = 0; i < l.m->attrs.n; i++) {
        const char *key = l.m->attrs.items[i].key;
        bool listed = strncmp(key, "hf.", 3) == 0;
        for (int j = 0; j < n_want; j++)
            listed = listed || !strcmp(key, want[j]);
        ck_assert_msg(listed, "unexpected attribute %s", key);
    }
    tu_fini(&l);
}

START_TEST(lower_emits_every_setting_of_a_relora_spec)
{
    static const char *const want[] = {
        "vocab", "dim", "layers", "batch", "train.micro_batch", "train.recompute", "seq_len", "model_hash",
        "adapter.rank", "adapter.alpha", "adapter.dropout",
        "train.data_kind", "train.val_data_kind", "train.val_fraction", "train.steps", "train.clip",
        "train.precision", "train.seed", "train.eval_every", "train.eval_batches", "train.checkpoint_every",
        "train.out", "train.target",
        "optim.kind", "optim.lr", "optim.beta1", "optim.beta2", "optim.eps", "optim.weight_decay",
        "schedule.kind", "schedule.warmup", "schedule.warmup_percent", "schedule.min_lr_ratio",
        "relora.warm_start", "relora.warm_start_percent", "relora.reset_every", "relora.reset_every_percent",
        "relora.restart_warmup", "relora.prune", "relora.reset", "relora.lr", NULL};
    check_attrs(TU_LLAMA_MODEL "adapter lora { rank = 2 }\n"
                               "train { batch = 2; seq_len = 6; steps = 100; schedule = relora(warm_start = 10%,"
                               " restart_warmup = 3) }\n",
                want);
    TuModel l;
    tu_lower(&l, TU_LLAMA_MODEL "adapter lora { rank = 2 }\n"
                                "train { batch = 2; seq_len = 6; steps = 100; schedule = relora(warm_start = 10%,"
                                " restart_warmup = 3) }\n");
    const IrAttrs *a = &l.m->attrs;
    ck_assert_int_eq(ir_attrs_int(a, "relora.warm_start", -1), 10);
    ck_assert_double_eq_tol(ir_attrs_float(a, "relora.warm_start_percent", -1), 10.0, 1e-12);
    ck_assert_int_eq(ir_attrs_int(a, "schedule.warmup", -1), 5); /* the default 5% of 100 */
    ck_assert_double_eq_tol(ir_attrs_float(a, "schedule.warmup_percent", -1), 5.0, 1e-12);
    ck_assert_int_eq(ir_attrs_int(a, "relora.reset_every", -1), 20);
    ck_assert_int_eq(ir_attrs_int(a, "relora.restart_warmup", -1), 3);
    ck_assert_str_eq(ir_attrs_str(a, "train.out", ""), "checkpoints");
    ck_assert_str_eq(ir_attrs_str(a, "train.data_kind", ""), "none");
    ck_assert_str_eq(ir_attrs_str(a, "relora.reset", ""), "magnitude");
    ck_assert_double_eq_tol(ir_attrs_float(a, "train.clip", -1), 1.0, 1e-15);
    ck_assert_double_eq_tol(ir_attrs_float(a, "optim.beta2", -1), 0.999, 1e-15);
    ck_assert_int_eq(ir_attrs_int(a, "train.eval_every", -1), 100);
    ck_assert_int_eq(ir_attrs_int(a, "train.seed", -1), 42);
    tu_fini(&l);
}
END_TEST

START_TEST(lower_emits_only_the_settings_of_the_schedule_kind)
{
    static const char *const want[] = {
        "vocab", "dim", "layers", "batch", "train.micro_batch", "train.recompute", "seq_len", "model_hash",
        "train.data_kind", "train.val_data_kind", "train.val_fraction", "train.steps", "train.clip",
        "train.precision", "train.seed", "train.eval_every", "train.eval_batches", "train.checkpoint_every",
        "train.out", "train.target", "train.data",
        "optim.kind", "optim.lr", "optim.beta1", "optim.beta2", "optim.eps", "optim.weight_decay",
        "schedule.kind", "schedule.warmup", NULL};
    check_attrs(TU_LLAMA_MODEL "train { data = tokens(\"t.bin\"); batch = 2; seq_len = 6; steps = 10;"
                               " schedule = constant(warmup = 2) }\n",
                want);
}
END_TEST

/* ---- Hugging Face export ---- */

#define HF_SPEC(fields, block)                                                     \
    "model m {\n"                                                                  \
    "  vocab = 32; dim = 16; layers = 2; heads = 4; kv_heads = 2; context = 8\n" \
    "  " fields "\n"                                                               \
    "  block(x) {\n" block "  }\n"                                                 \
    "}\n"                                                                          \
    "train { batch = 2; seq_len = 6; steps = 10 }\n"
#define HF_ATTN "    h = x + attention(rmsnorm(x), rope = 10000)\n"
#define HF_MLP "    return h + swiglu(rmsnorm(h), hidden = 24)\n"
#define HF_LLAMA_BLOCK HF_ATTN HF_MLP
#define HF_WANT_BLOCK "; LlamaForCausalLM's computes `h = x + attention(rmsnorm(x)); return h + swiglu(rmsnorm(h))`"

/* text must not export as LLaMA: no hf_name anywhere, no config.json, and the note is
 * exactly `why` (written by hand from the spec). */
static void check_not_llama(const char *text, const char *why)
{
    TuModel l;
    tu_lower(&l, text);
    ck_assert_ptr_null(ir_attrs_str(&l.m->attrs, "hf.config_json", NULL));
    for (int i = 0; i < l.m->n_globals; i++)
        ck_assert_msg(!ir_attrs_str(&l.m->globals[i]->attrs, "hf_name", NULL), "%s has an hf_name",
                      l.m->globals[i]->name);
    const char *note = ir_attrs_str(&l.m->attrs, "hf.export_note", NULL);
    ck_assert_ptr_nonnull(note);
    ck_assert_str_eq(note, why);
    tu_fini(&l);
}

/* text exports as LLaMA: no note, every exported global named, and the config holds
 * each of the `n` lines in `fields` (exactly, as lines). Returns nothing; the names
 * checked are the ones every LLaMA has. */
static void check_llama(const char *text, const char *const *fields, int n, bool tied)
{
    TuModel l;
    tu_lower(&l, text);
    ck_assert_ptr_null(ir_attrs_str(&l.m->attrs, "hf.export_note", NULL));
    const char *cfg = ir_attrs_str(&l.m->attrs, "hf.config_json", NULL);
    ck_assert_ptr_nonnull(cfg);
    for (int i = 0; i < n; i++)
        ck_assert_msg(strstr(cfg, arena_sprintf(&l.a, "\n  %s\n", fields[i])) != NULL, "config.json lacks '%s':\n%s",
                      fields[i], cfg);
    for (int i = 0; i < l.m->n_globals; i++) {
        const IrGlobal *g = l.m->globals[i];
        if (g->flags & IR_G_EXPORT)
            ck_assert_msg(ir_attrs_str(&g->attrs, "hf_name", NULL) != NULL, "%s has no hf_name", g->name);
    }
    ck_assert_str_eq(ir_attrs_str(&tu_glob(&l, "layers.1.rmsnorm_2.weight")->attrs, "hf_name", ""),
                     "model.layers.1.post_attention_layernorm.weight");
    ck_assert_str_eq(ir_attrs_str(&tu_glob(&l, "layers.0.attention.k.weight")->attrs, "hf_name", ""),
                     "model.layers.0.self_attn.k_proj.weight");
    ck_assert_ptr_eq(ir_global_find(l.m, "head.weight"), tied ? NULL : ir_global_find(l.m, "head.weight"));
    if (!tied)
        ck_assert_str_eq(ir_attrs_str(&tu_glob(&l, "head.weight")->attrs, "hf_name", ""), "lm_head.weight");
    tu_fini(&l);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    ck_assert_uint_gt(n, 0);
    fclose(f);
    return buf;
}

START_TEST(hf_tiny_exports_as_llama_with_its_exact_config)
{
    const char *root = getenv("RELORAC_SOURCE_ROOT");
    char path[512];
    snprintf(path, sizeof path, "%s/examples/tiny.relora", root ? root : ".");
    char *text = read_text(path);
    TuModel l;
    tu_lower(&l, text);
    /* examples/tiny.relora: vocab 256, dim 128, 4 layers, 4 heads (head dim 32) and 4 kv
     * heads, context 128, swiglu hidden 344, rope 10000, every norm eps 1e-5, untied */
    ck_assert_str_eq(ir_attrs_str(&l.m->attrs, "hf.config_json", ""),
                     "{\n"
                     "  \"architectures\": [\"LlamaForCausalLM\"],\n"
                     "  \"model_type\": \"llama\",\n"
                     "  \"vocab_size\": 256,\n"
                     "  \"hidden_size\": 128,\n"
                     "  \"intermediate_size\": 344,\n"
                     "  \"num_hidden_layers\": 4,\n"
                     "  \"num_attention_heads\": 4,\n"
                     "  \"num_key_value_heads\": 4,\n"
                     "  \"head_dim\": 32,\n"
                     "  \"hidden_act\": \"silu\",\n"
                     "  \"max_position_embeddings\": 128,\n"
                     "  \"rms_norm_eps\": 1e-05,\n"
                     "  \"rope_theta\": 10000.0,\n"
                     "  \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0},\n"
                     "  \"attention_bias\": false,\n"
                     "  \"mlp_bias\": false,\n"
                     "  \"attention_dropout\": 0.0,\n"
                     "  \"pretraining_tp\": 1,\n"
                     "  \"tie_word_embeddings\": false,\n"
                     "  \"bos_token_id\": null,\n"
                     "  \"eos_token_id\": null,\n"
                     "  \"pad_token_id\": null,\n"
                     "  \"torch_dtype\": \"float32\"\n"
                     "}\n");
    ck_assert_ptr_null(ir_attrs_str(&l.m->attrs, "hf.export_note", NULL));
    /* every tensor, by the names transformers' LlamaForCausalLM state dict uses */
    int named = 0;
    for (int i = 0; i < l.m->n_globals; i++) {
        const IrGlobal *g = l.m->globals[i];
        const char *hf = ir_attrs_str(&g->attrs, "hf_name", NULL);
        if (!(g->flags & IR_G_EXPORT)) {
            ck_assert_ptr_null(hf);
            continue;
        }
        ck_assert_msg(hf != NULL, "%s has no hf_name", g->name);
        named++;
        int layer;
        char local[64], want[128];
        static const char *const map[][2] = {
            {"rmsnorm_1.weight", "input_layernorm.weight"},   {"rmsnorm_2.weight", "post_attention_layernorm.weight"},
            {"attention.q.weight", "self_attn.q_proj.weight"}, {"attention.k.weight", "self_attn.k_proj.weight"},
            {"attention.v.weight", "self_attn.v_proj.weight"}, {"attention.o.weight", "self_attn.o_proj.weight"},
            {"swiglu.gate.weight", "mlp.gate_proj.weight"},    {"swiglu.up.weight", "mlp.up_proj.weight"},
            {"swiglu.down.weight", "mlp.down_proj.weight"}};
        if (sscanf(g->name, "layers.%d.%63s", &layer, local) == 2) {
            want[0] = 0;
            for (size_t k = 0; k < sizeof map / sizeof *map; k++)
                if (!strcmp(local, map[k][0]))
                    snprintf(want, sizeof want, "model.layers.%d.%s", layer, map[k][1]);
            ck_assert_str_eq(hf, want);
        } else {
            ck_assert_str_eq(hf, !strcmp(g->name, "embedding.weight") ? "model.embed_tokens.weight"
                                 : !strcmp(g->name, "norm.weight")    ? "model.norm.weight"
                                                                      : "lm_head.weight");
        }
    }
    ck_assert_int_eq(named, 2 + 4 * 9 + 1);
    tu_fini(&l);
    free(text);
}
END_TEST

START_TEST(hf_llama_variants_export_with_their_config)
{
    /* tied head, GQA given on the call, another rope base and eps, operands of the
     * residual adds commuted (the same float sums) */
    static const char *const tied[] = {"\"num_attention_heads\": 2,", "\"num_key_value_heads\": 1,",
                                       "\"head_dim\": 8,", "\"rms_norm_eps\": 0.001,", "\"rope_theta\": 500.0,",
                                       "\"tie_word_embeddings\": true,", "\"hidden_act\": \"silu\","};
    check_llama(HF_SPEC("tied = true; norm_eps = 1e-3",
                        "    h = attention(rmsnorm(x), rope = 500, heads = 2, kv_heads = 1) + x\n"
                        "    return swiglu(rmsnorm(h), hidden = 24) + h\n"),
                tied, 7, true);
    /* geglu: down(gelu_tanh(gate(x)) * up(x)), LLaMA's mlp with torch's tanh gelu */
    static const char *const geglu[] = {"\"hidden_act\": \"gelu_pytorch_tanh\",", "\"intermediate_size\": 40,",
                                        "\"num_key_value_heads\": 2,", "\"tie_word_embeddings\": false,"};
    check_llama(HF_SPEC("", HF_ATTN "    return h + geglu(rmsnorm(h), hidden = 40)\n"), geglu, 4, false);
    /* eps given explicitly on every norm, equal to each other */
    static const char *const eps[] = {"\"rms_norm_eps\": 0.25,"};
    check_llama(HF_SPEC("norm_eps = 0.25", "    h = x + attention(rmsnorm(x, eps = 0.25), rope = 10000)\n"
                                           "    return h + swiglu(rmsnorm(h, eps = 0.25), hidden = 24)\n"),
                eps, 1, false);
}
END_TEST

START_TEST(hf_block_norm_eps_differing_from_the_final_norm_is_not_llama)
{
    check_not_llama(HF_SPEC("norm_eps = 1e-5", "    h = x + attention(rmsnorm(x, eps = 0.1), rope = 10000)\n"
                                               "    return h + swiglu(rmsnorm(h, eps = 0.1), hidden = 24)\n"),
                    "block norms use eps 0.1 but the final norm uses 1e-05; LlamaForCausalLM has one rms_norm_eps");
}
END_TEST

START_TEST(hf_block_norms_with_two_eps_are_not_llama)
{
    check_not_llama(HF_SPEC("", HF_ATTN "    return h + swiglu(rmsnorm(h, eps = 1e-6), hidden = 24)\n"),
                    "the norms use eps 1e-05 ('rmsnorm_1'), 1e-06 ('rmsnorm_2') and 1e-05 (the final norm); "
                    "LlamaForCausalLM has one rms_norm_eps");
}
END_TEST

START_TEST(hf_block_without_attention_is_not_llama)
{
    /* an attention that is declared but feeds nothing */
    check_not_llama(HF_SPEC("", "    a = attention(rmsnorm(x), rope = 10000)\n"
                                "    return x + swiglu(rmsnorm(x), hidden = 24)\n"),
                    "the block computes `return x + swiglu(rmsnorm(x))`" HF_WANT_BLOCK);
    /* an MLP where the attention belongs */
    check_not_llama(HF_SPEC("", "    h = x + swiglu(rmsnorm(x), hidden = 24)\n"
                                "    return h + swiglu(rmsnorm(h), hidden = 24)\n"),
                    "'swiglu_1' is a swiglu; LlamaForCausalLM's self_attn is attention");
}
END_TEST

START_TEST(hf_other_dataflows_are_not_llama)
{
    /* the residual skips h */
    check_not_llama(HF_SPEC("", HF_ATTN "    return x + swiglu(rmsnorm(h), hidden = 24)\n"),
                    "the block computes `h = x + attention(rmsnorm(x)); return x + swiglu(rmsnorm(h))`" HF_WANT_BLOCK);
    /* the second norm reads x */
    check_not_llama(HF_SPEC("", HF_ATTN "    return h + swiglu(rmsnorm(x), hidden = 24)\n"),
                    "the block computes `h = x + attention(rmsnorm(x)); return h + swiglu(rmsnorm(x))`" HF_WANT_BLOCK);
    /* a scaled branch */
    check_not_llama(HF_SPEC("", HF_ATTN "    return h + 0.5 * swiglu(rmsnorm(h), hidden = 24)\n"),
                    "the block computes `h = x + attention(rmsnorm(x)); return h + 0.5 * swiglu(rmsnorm(h))`" HF_WANT_BLOCK);
    /* an activation on the residual stream */
    check_not_llama(HF_SPEC("", HF_ATTN "    return silu(h + swiglu(rmsnorm(h), hidden = 24))\n"),
                    "the block computes `h = x + attention(rmsnorm(x)); return silu(h + swiglu(rmsnorm(h)))`" HF_WANT_BLOCK);
    /* a third residual branch */
    check_not_llama(HF_SPEC("", HF_ATTN "    return h + swiglu(rmsnorm(h), hidden = 24) + x\n"),
                    "the block computes `h = x + attention(rmsnorm(x)); return h + swiglu(rmsnorm(h)) + x`" HF_WANT_BLOCK);
    /* the parallel block (GPT-J / PaLM) */
    check_not_llama(HF_SPEC("", "    n = rmsnorm(x)\n    return x + attention(n, rope = 10000) + swiglu(n, hidden = 24)\n"),
                    "the block computes `n = rmsnorm(x); return x + attention(n) + swiglu(n)`" HF_WANT_BLOCK);
    /* no norm before the attention */
    check_not_llama(HF_SPEC("", "    h = x + attention(x, rope = 10000)\n" HF_MLP),
                    "the block computes `h = x + attention(x); return h + swiglu(rmsnorm(h))`" HF_WANT_BLOCK);
    /* a GPT-2 MLP written with linear() */
    check_not_llama(HF_SPEC("", HF_ATTN "    return h + linear(gelu(linear(rmsnorm(h), out = 64)), out = dim)\n"),
                    "the block computes `h = x + attention(rmsnorm(x)); return h + linear(gelu(linear(rmsnorm(h))))`"
                    HF_WANT_BLOCK);
    /* a product of two branches, a parenthesised sum */
    check_not_llama(HF_SPEC("", HF_ATTN "    return h * (h + swiglu(rmsnorm(h), hidden = 24))\n"),
                    "the block computes `h = x + attention(rmsnorm(x)); return h * (h + swiglu(rmsnorm(h)))`" HF_WANT_BLOCK);
}
END_TEST

START_TEST(hf_attention_and_mlp_swapped_are_not_llama)
{
    check_not_llama(HF_SPEC("", "    h = x + swiglu(rmsnorm(x), hidden = 24)\n"
                                "    return h + attention(rmsnorm(h), rope = 10000)\n"),
                    "'swiglu' is a swiglu; LlamaForCausalLM's self_attn is attention; 'attention' is an attention; "
                    "LlamaForCausalLM's mlp is down(act(gate(x)) * up(x)) (swiglu, geglu)");
}
END_TEST

START_TEST(hf_unused_module_is_not_llama)
{
    check_not_llama(HF_SPEC("", "    u = linear(x, out = 8, name = \"extra\")\n" HF_LLAMA_BLOCK),
                    "the block's result does not use 'extra'; LlamaForCausalLM has no place for it");
}
END_TEST

START_TEST(hf_layernorm_in_the_block_is_not_llama)
{
    check_not_llama(HF_SPEC("", "    h = x + attention(layernorm(x, bias = false), rope = 10000)\n" HF_MLP),
                    "'layernorm' is a layernorm; LlamaForCausalLM's input_layernorm is an RMSNorm");
    check_not_llama(HF_SPEC("", HF_ATTN "    return h + swiglu(layernorm(h), hidden = 24)\n"),
                    "'layernorm' is a layernorm; LlamaForCausalLM's post_attention_layernorm is an RMSNorm");
}
END_TEST

START_TEST(hf_final_layernorm_is_not_llama)
{
    check_not_llama(HF_SPEC("norm = layernorm", HF_LLAMA_BLOCK),
                    "the final norm is a layernorm (norm = layernorm); LlamaForCausalLM's model.norm is an RMSNorm");
    check_not_llama(HF_SPEC("norm = layernorm; norm_bias = false", HF_LLAMA_BLOCK),
                    "the final norm is a layernorm (norm = layernorm); LlamaForCausalLM's model.norm is an RMSNorm");
}
END_TEST

START_TEST(hf_attention_without_rope_is_not_llama)
{
    check_not_llama(HF_SPEC("", "    h = x + attention(rmsnorm(x), rope = none)\n" HF_MLP),
                    "'attention' has rope = none; LlamaForCausalLM always applies rotary embeddings");
}
END_TEST

START_TEST(hf_biases_are_not_llama)
{
    check_not_llama(HF_SPEC("", "    h = x + attention(rmsnorm(x), rope = 10000, bias = true)\n" HF_MLP),
                    "'attention' has biases; the export writes LlamaForCausalLM with attention_bias = false");
    check_not_llama(HF_SPEC("", HF_ATTN "    return h + swiglu(rmsnorm(h), hidden = 24, bias = true)\n"),
                    "'swiglu' has biases; the export writes LlamaForCausalLM with mlp_bias = false");
    /* the model default */
    check_not_llama(HF_SPEC("bias = true", HF_LLAMA_BLOCK),
                    "'attention' has biases; the export writes LlamaForCausalLM with attention_bias = false; "
                    "'swiglu' has biases; the export writes LlamaForCausalLM with mlp_bias = false");
}
END_TEST

START_TEST(hf_learned_positions_are_not_llama)
{
    check_not_llama(HF_SPEC("positions = learned", HF_LLAMA_BLOCK),
                    "the model adds learned positions (positions = learned); LlamaForCausalLM has only rotary ones");
}
END_TEST

START_TEST(hf_every_mismatch_is_reported)
{
    check_not_llama(HF_SPEC("positions = learned; norm = layernorm; norm_eps = 0.5",
                            "    h = x + attention(rmsnorm(x, eps = 0.1))\n" HF_MLP),
                    "'attention' has rope = none; LlamaForCausalLM always applies rotary embeddings; "
                    "the norms use eps 0.1 ('rmsnorm_1'), 0.5 ('rmsnorm_2') and 0.5 (the final norm); "
                    "LlamaForCausalLM has one rms_norm_eps; "
                    "the final norm is a layernorm (norm = layernorm); LlamaForCausalLM's model.norm is an RMSNorm; "
                    "the model adds learned positions (positions = learned); LlamaForCausalLM has only rotary ones");
}
END_TEST

START_TEST(hf_the_examples_say_why_they_are_not_llama)
{
    check_not_llama(tu_spec_gpt2, "the block computes `h = x + attention(layernorm(x)); return h + "
                                  "linear(gelu(linear(layernorm(h))))`" HF_WANT_BLOCK);
    check_not_llama(tu_spec_parallel,
                    "the block computes `n = layernorm(x); return x + attention(n) + geglu(n)`" HF_WANT_BLOCK);
}
END_TEST

Suite *lower_suite(void)
{
    Suite *s = suite_create("lower");
    TCase *tc = tcase_create("lower");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, lower_verifies_for_each_block_kind);
    tcase_add_test(tc, lower_emits_every_setting_of_a_relora_spec);
    tcase_add_test(tc, lower_emits_only_the_settings_of_the_schedule_kind);
    tcase_add_test(tc, lower_fresh_byte_model_starts_at_ln_256);
    tcase_add_test(tc, lower_llama_gradients_match_finite_differences);
    tcase_add_test(tc, lower_gpt2_gradients_match_finite_differences);
    tcase_add_test(tc, lower_parallel_gradients_match_finite_differences);
    tcase_add_test(tc, kernels_match_the_graph_interpreter);
    suite_add_tcase(s, tc);
    TCase *hf = tcase_create("hf");
    tcase_add_test(hf, hf_tiny_exports_as_llama_with_its_exact_config);
    tcase_add_test(hf, hf_llama_variants_export_with_their_config);
    tcase_add_test(hf, hf_block_norm_eps_differing_from_the_final_norm_is_not_llama);
    tcase_add_test(hf, hf_block_norms_with_two_eps_are_not_llama);
    tcase_add_test(hf, hf_block_without_attention_is_not_llama);
    tcase_add_test(hf, hf_other_dataflows_are_not_llama);
    tcase_add_test(hf, hf_attention_and_mlp_swapped_are_not_llama);
    tcase_add_test(hf, hf_unused_module_is_not_llama);
    tcase_add_test(hf, hf_layernorm_in_the_block_is_not_llama);
    tcase_add_test(hf, hf_final_layernorm_is_not_llama);
    tcase_add_test(hf, hf_attention_without_rope_is_not_llama);
    tcase_add_test(hf, hf_biases_are_not_llama);
    tcase_add_test(hf, hf_learned_positions_are_not_llama);
    tcase_add_test(hf, hf_every_mismatch_is_reported);
    tcase_add_test(hf, hf_the_examples_say_why_they_are_not_llama);
    suite_add_tcase(s, hf);
    return s;
}
