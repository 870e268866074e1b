/* report: what `relorac check` prints about a Spec: parameter counts per module and
 * per training phase, FLOPs per token and a memory estimate (formulas in
 * docs/language.md §7). Pure arithmetic over the Spec; printing goes to a FILE. */
#ifndef RELORAC_REPORT_H
#define RELORAC_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "ir.h"
#include "spec.h"

typedef struct FeModuleRow {
    const char *name;      /* "embedding", "attention", "rmsnorm_1", "norm", "head" */
    const char *kind;      /* primitive kind, or "embedding"/"positions"/"head"; final norm: its kind */
    bool is_per_layer;
    int64_t per_layer;     /* elements in one layer (per-layer rows) */
    int64_t total;         /* all layers */
    int64_t frozen;        /* ReLoRA phase: frozen base elements */
    int64_t trainable;     /* ReLoRA phase: base elements trained at full rank */
    int64_t lora;          /* ReLoRA phase: LoRA A and B elements (all layers) */
} FeModuleRow;

typedef struct FeMemory {
    int64_t weights, grads, optimizer, activations, total; /* bytes */
} FeMemory;

enum { FE_PHASE_FULL, FE_PHASE_RELORA, FE_N_PHASES };
enum { FE_PREC_FP32, FE_PREC_BF16, FE_N_PRECS };

/* One setting's planned memory (`relorac check`'s table of settings): the spec with one
 * setting changed, each phase's planned total and the program's, and for recomputation
 * its extra FLOPs per token (the recompute pass's count). */
typedef struct FePlanRow {
    const char *setting;   /* "recompute", "micro_batch", "phase-aware planning" */
    const char *value;     /* "selective", "16", "off" */
    bool is_spec;          /* the spec's own setting */
    bool ok;               /* it compiled (a failure leaves the numbers 0) */
    bool has_phase[FE_N_PHASES];
    int64_t phase_total[FE_N_PHASES]; /* bytes */
    int64_t program;                  /* bytes */
    double extra_flops[FE_N_PHASES];  /* per token, forward + backward; 0 without */
} FePlanRow;

typedef struct FeReport {
    FeModuleRow *rows;
    int n_rows;
    bool has_relora;           /* schedule is relora(): the ReLoRA-phase numbers apply */
    int64_t total;             /* base parameters (LoRA factors not included) */
    int64_t lora;              /* LoRA parameters in the ReLoRA phase */
    int64_t frozen_relora;     /* base parameters frozen in the ReLoRA phase */
    int64_t trainable_base;    /* base parameters trained at full rank in the ReLoRA phase */
    int64_t trainable_relora;  /* trainable_base + lora */
    int64_t adapted_per_layer; /* adapted linears in one block */
    int64_t mm_params;         /* weights used in matmuls: block linears x layers + head */
    int64_t mm_frozen;         /* of those, frozen in the ReLoRA phase */
    int64_t attn_flops;        /* per token, forward + backward, all layers */
    int64_t flops_full;        /* 6 mm_params + attn_flops */
    int64_t flops_relora;      /* 6 (mm_params - mm_frozen) + 4 mm_frozen + 6 lora + attn_flops */
    int64_t act_elems[FE_N_PHASES]; /* saved activation elements for batch x seq_len */
    FeMemory mem[FE_N_PHASES][FE_N_PRECS];
    /* The memory plan, filled in by the driver after running the passes (the frontend
     * does not run them): bytes per memory class for the program a training binary
     * allocates, and for the functions of each phase alone. */
    bool has_plan;
    bool plan_has_phase[FE_N_PHASES];
    int64_t plan_program[IR_CLASS_COUNT];
    int64_t plan_phase[FE_N_PHASES][IR_CLASS_COUNT];
    FePlanRow *plan_rows;      /* each memory setting on and off (driver-filled) */
    int n_plan_rows;
} FeReport;

void fe_report_compute(Arena *a, const Spec *s, FeReport *r);
void fe_report_print(FILE *out, const Spec *s, const FeReport *r);
void fe_report_print_json(FILE *out, const Spec *s, const FeReport *r);

#endif
