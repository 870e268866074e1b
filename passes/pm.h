/* The pass manager: a pass is one file exporting one descriptor; the pipeline order
 * is passes.def. The manager checks each pass's requirements, runs ir_verify after
 * every pass when asked (tests and debug builds), and dumps the IR after a chosen
 * pass. Passes communicate only through the IR (globals, attributes, functions). */
#ifndef RELORAC_PM_H
#define RELORAC_PM_H

#include <stdbool.h>
#include <stdio.h>

#include "ir.h"

/* Properties a module has; passes require, provide and invalidate them. */
enum {
    PROP_LOWERED = 1u << 0,    /* @init and @train exist */
    PROP_LORA = 1u << 1,       /* adapters inserted */
    PROP_LORA_FUSED = 1u << 2, /* adapter matmuls fused with the base */
    PROP_GRADS = 1u << 3,      /* train functions store their gradients */
    PROP_OPTIM = 1u << 4,      /* optimizer updates appended */
    PROP_RELORA = 1u << 5,     /* ReLoRA event functions exist */
    PROP_CLEAN = 1u << 6,      /* dead code and duplicates removed */
    PROP_GROUPS = 1u << 7,     /* fusion groups assigned */
    PROP_MEMPLAN = 1u << 8,    /* buffers planned */
};

typedef struct PassCtx {
    Arena *arena;
    Diags *diags;
    IrModule *m;
    unsigned props;
} PassCtx;

typedef struct Pass {
    const char *name;      /* as used by --passes and --after */
    const char *summary;
    unsigned requires, provides, invalidates;
    bool (*run)(PassCtx *ctx);
} Pass;

#define PASS(id) extern const Pass pass_##id;
#include "passes.def"
#undef PASS

typedef struct PassOptions {
    const char *const *only; /* run just these passes, in pipeline order (NULL: all) */
    int n_only;
    bool verify_each;        /* ir_verify after every pass */
    const char *dump_after;  /* pass name or "all": print the module after it */
    FILE *dump;              /* where dumps go */
} PassOptions;

/* The pipeline's passes in order; *n gets their count. */
const Pass *const *pass_list(int *n);
const Pass *pass_find(const char *name);
/* Runs the pipeline over ctx->m. False after diagnostics (a pass failed, or the
 * verifier found a broken invariant: then the message names the pass). */
bool pass_pipeline_run(PassCtx *ctx, const PassOptions *opt);

#endif
