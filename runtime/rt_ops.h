/* rt_ops.h: runtime routines that generated code calls for operations that are not loops
 * or GEMMs (kernel IR K_CALL): optimizer-moment pruning at a ReLoRA restart and the
 * learning-rate schedule. Semantics match the reference executor (ir/interp.c) exactly.
 * Depends on the C standard library only (this header ships with generated programs). */
#ifndef RELORAC_RT_OPS_H
#define RELORAC_RT_OPS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Zeroes exactly ceil(fraction * n) entries of x with the smallest |x| (p n is first snapped
 * to a nearby integer, so 0.07 * 100 zeroes 7), ties broken by lower index; NaN counts as
 * the largest magnitude. Allocates nothing. Returns the number of entries zeroed. */
int64_t rt_prune_magnitude(float *x, int64_t n, double fraction);

/* Zeroes x[i] where rt_rng_uniform(seed, stream, step * n + i) < fraction. Returns the
 * number of entries zeroed (including ones that were already zero). */
int64_t rt_prune_random(float *x, int64_t n, double fraction, uint64_t seed, uint64_t stream,
                        int64_t step);

/* The schedule kinds of the IR's lr_schedule op. */
enum RtLrKind { RT_LR_CONSTANT, RT_LR_COSINE, RT_LR_JAGGED };

/* The learning rate at `step` (docs/ir.md, lr_schedule). t = max(0, step - offset):
 *   constant: lr * min(1, t / warmup)               (warmup = 0: lr)
 *   cosine:   t < warmup ? lr t / warmup : lr cos_at(t)
 *   jagged:   j = t mod R, k = t div R; t < warmup: lr t / warmup;
 *             j < restart_warmup and t >= R: lr (j / restart_warmup) cos_at(k R + restart_warmup);
 *             else lr cos_at(t)
 *   cos_at(u) = min_ratio + (1 - min_ratio) 0.5 (1 + cos(pi (u - warmup) / (total - warmup)))
 * Computed in double. */
double rt_lr_schedule(int kind, double lr, int64_t warmup, int64_t offset, int64_t total,
                      double min_ratio, int64_t reset_every, int64_t restart_warmup, int64_t step);

#ifdef __cplusplus
}
#endif
#endif
