/* The memory plan as numbers: planned pool bytes per memory class, for `relorac check`
 * and dumps. The plan itself (offsets) is k_program_plan's (ir/kernel.h). */
#ifndef RELORAC_PASSES_MEMPLAN_H
#define RELORAC_PASSES_MEMPLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "ir.h"
#include "kernel.h"

/* Kernelizes m into `scratch` and plans it with options o (NULL: the default plan the
 * backends use): bytes[c] = KProgram.pool_bytes[c], the planned pool of class c; *plan,
 * when plan is not NULL, the plan (each phase's own need). False after diagnostics (an
 * op the backends cannot run). */
bool pass_memplan_compute(Arena *scratch, Diags *d, const IrModule *m, const KPlanOptions *o,
                          int64_t bytes[IR_CLASS_COUNT], KPlan **plan);
/* The bytes the memplan pass recorded in m's attributes (`mem.<class>.bytes`); false
 * when the pass has not run. */
bool pass_memplan_bytes(const IrModule *m, int64_t bytes[IR_CLASS_COUNT]);
/* Their sum: the whole program's planned peak. */
int64_t pass_memplan_total(const int64_t bytes[IR_CLASS_COUNT]);

#endif
