/* Helpers shared by the unit suites that compile tiny models: the spec texts they
 * share, spec text -> lowered IR -> chosen passes with the diagnostics printed and the
 * test failed on any error, and deterministic data and perturbations for the
 * reference executor. Every failure is a Check assertion in the calling test. */
#ifndef RELORAC_TUTIL_H
#define RELORAC_TUTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "ir.h"

/* The model part of tu_spec_llama, for specs that give it adapters or another train block. */
#define TU_LLAMA_MODEL                                                            \
    "model m {\n"                                                                 \
    "  vocab = 32; dim = 16; layers = 2; heads = 4; kv_heads = 2; context = 8\n"  \
    "  block(x) {\n"                                                              \
    "    h = x + attention(rmsnorm(x), rope = 10000)\n"                           \
    "    return h + swiglu(rmsnorm(h), hidden = 24)\n"                            \
    "  }\n"                                                                       \
    "}\n"

/* Tiny models of each block kind (dim 16, vocab 32, 2 layers, batch 2 x 6 tokens). */
extern const char tu_spec_llama[];    /* rmsnorm, GQA attention with RoPE, swiglu */
extern const char tu_spec_gpt2[];     /* layernorm, learned positions, biases, tied head, gelu MLP */
extern const char tu_spec_parallel[]; /* attention and geglu side by side on one layernorm */

/* The pipeline up to the relora pass: adapters, fusion, gradients, optimizer, ReLoRA
 * events; no clean-up, grouping or memory plan. */
enum { TU_N_RELORA_PASSES = 6 };
extern const char *const tu_relora_passes[TU_N_RELORA_PASSES];

/* A module and the arena that owns it (and its diagnostics). */
typedef struct TuModel {
    Arena a;
    Diags d;
    IrModule *m;
} TuModel;

/* Initialises t and lowers the spec `text` (parse, check, lower): t->m is the module
 * as lowered, before any pass. */
void tu_lower(TuModel *t, const char *text);
/* Runs passes over t->m in pipeline order, verifying after each: the n named ones, or
 * with names NULL and n 0 the whole pipeline. */
void tu_run_passes(TuModel *t, const char *const *names, int n);
/* tu_lower, then tu_run_passes(t, names, n). */
void tu_build(TuModel *t, const char *text, const char *const *names, int n);
/* Prints t's diagnostics and fails the test unless ok. */
void tu_assert_ok(TuModel *t, bool ok);
void tu_fini(TuModel *t);

/* The global or function of that name; fails the test when there is none. */
IrGlobal *tu_glob(const TuModel *t, const char *name);
IrFunc *tu_func(const TuModel *t, const char *name);

/* Deterministic tokens and targets in [0, vocab) (the module's "vocab"), as many as
 * @tokens holds: ir_rng_u64(7, salt, i) for tokens, stream salt + 1 for targets. */
void tu_fill_tokens(const IrModule *m, double *tok, double *tgt, uint64_t salt);
/* The same numbers as the int32 batch of one step, [batch, seq_len] (module attr batch:
 * micro-batches of @tokens' rows, tu_fill_tokens's numbers for the first); returns its
 * size, at most cap. For ir_interp_train_step. */
int64_t tu_step_tokens(const IrModule *m, int32_t *x, int32_t *y, int64_t cap, uint64_t salt);
/* The same into the interpreter's @tokens and @targets. */
void tu_set_tokens(IrInterp *it, const IrModule *m, uint64_t salt);
/* Moves every param and frozen global by U(-0.05, 0.05) (stream 5, by global id and
 * index): norm weights, biases and B factors leave their 1 / 0 init, so that gradients
 * are generic. */
void tu_perturb_params(IrInterp *it, const IrModule *m);
/* The central difference (f(x + h) - f(x - h)) / 2h of the loss f returns, x = w[j]
 * (an interpreter buffer f reads, usually a global); w[j] is restored. */
double tu_central_difference(IrInterp *it, const IrFunc *f, double *w, int64_t j, double h);

/* Sets the module attributes every program carries for the model table (the trainer
 * defaults, a cosine schedule, a model hash), for hand-built programs. */
void tu_program_attrs(Arena *a, IrModule *m);

#endif
