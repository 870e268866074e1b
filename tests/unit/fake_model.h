/* A hand-written RtModel for testing the runtime before the compiler emits real models:
 * a byte bigram table plus a frozen projection W [V, D] with a LoRA pair A [R, D], B [V, R],
 * trained with AdamW under the runtime's step policy: a ReLoRA schedule (full-rank warm start,
 * periodic merge/reset), functions and io tensors as a compiled model has them. */
#ifndef RELORAC_FAKE_MODEL_H
#define RELORAC_FAKE_MODEL_H

#include "rt.h"

#ifndef FAKE_MODEL_SYMBOL
#define FAKE_MODEL_SYMBOL fake_model
#endif

enum {
    FAKE_V = 256, /* vocab (bytes) */
    FAKE_D = 16,  /* embedding width */
    FAKE_R = 4,   /* LoRA rank */
    FAKE_B = 4,   /* batch */
    FAKE_T = 32,  /* seq_len */
    FAKE_WARM = 10,        /* steps of full-rank warm start (W trained, adapters idle) */
    FAKE_RESET_EVERY = 15, /* ReLoRA merge/reset period after the warm start */
    FAKE_STEPS = 60        /* the schedule's horizon */
};
#define FAKE_SCALE 2.0f /* lora alpha / r = 8 / 4 */

/* Tensor indices in FAKE_MODEL_SYMBOL.tensors. */
enum {
    FK_BIGRAM, FK_EMBED, FK_A, FK_B, FK_W,
    FK_M_BIGRAM, FK_V_BIGRAM, FK_M_EMBED, FK_V_EMBED, FK_M_W, FK_V_W,
    FK_M_A, FK_V_A, FK_M_B, FK_V_B, FK_ADAM_T,
    FK_H, FK_AH, FK_LOGITS,
    FK_G_BIGRAM, FK_G_EMBED, FK_G_W, FK_G_A, FK_G_B, FK_DH, FK_DAH, FK_ROWLOSS,
    FK_TOKENS, FK_TARGETS, FK_STEP, FK_LR, FK_ADAM_STEP, FK_PRUNE, FK_SAMPLE, FK_OUT_LOGITS,
    FK_GRAD_NORM,
    FK_COUNT
};

extern const RtModel FAKE_MODEL_SYMBOL;

#endif
