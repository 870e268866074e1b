/* rt_ops.h: runtime routines that generated code calls for operations that are not loops
 * or GEMMs (kernel IR K_CALL): optimizer-moment pruning at a ReLoRA restart. Semantics match the reference executor (ir/interp.c) exactly.
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

#ifdef __cplusplus
}
#endif
#endif
