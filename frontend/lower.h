/* Lowering: a checked Spec becomes an IR module with the model's globals, an @init
 * function that initialises them, @train and @eval computing the mean cross-entropy
 * loss of one batch (forward only; the passes add the rest), and @logits, the forward
 * pass of one sequence for sampling. */
#ifndef RELORAC_LOWER_H
#define RELORAC_LOWER_H

#include "ir.h"
#include "spec.h"

/* Returns NULL after reporting errors into d (a shape the checker let through). */
IrModule *fe_lower(Arena *a, Diags *d, const Spec *s);

/* The identity of the model for checkpoints (frontend/identity.c): 16 hex digits over the
 * architecture and the parameter set only (not the schedule, data, steps, batch, sequence
 * length, target or precision). Lowering stores it as the module attribute model_hash. */
const char *fe_model_hash(Arena *a, const Spec *s);

/* RNG streams: parameters use 1 + global id; these are the others. */
enum {
    FE_STREAM_DROPOUT = 1 << 20, /* + node id */
    FE_STREAM_DATA = 1 << 21,    /* the runtime's batch sampler */
    FE_STREAM_SAMPLE = 1 << 22,  /* text generation */
};

#endif
