/* Runtime routines behind the kernel IR's K_CALL kernels: magnitude and random pruning of
 * optimizer moments and the learning-rate schedule. Each matches ir/interp.c bit for bit
 * in what it selects (pruning) or to double rounding (the schedule). */
#include "rt_ops.h"

#include <math.h>
#include <string.h>

#include "rt.h"

/* ceil(p n), with p n first snapped to a nearby integer (as ir/interp.c prune_count). */
static int64_t prune_count(double p, int64_t n)
{
    double x = p * (double)n, r = nearbyint(x);
    int64_t k = fabs(x - r) <= 1e-9 * fmax(1.0, x) ? (int64_t)r : (int64_t)ceil(x);
    return k < 0 ? 0 : k > n ? n : k;
}

/* |x| as an unsigned key that orders like the magnitude (NaN above +inf). */
static uint32_t mag_key(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u & 0x7FFFFFFFu;
}

/* Radix select on the 31-bit magnitude keys, 8 bits at a time: finds the key of the k-th
 * smallest magnitude (k >= 1) without allocating; then everything below it is zeroed and
 * the remaining quota goes to entries equal to it, lowest index first. */
int64_t rt_prune_magnitude(float *x, int64_t n, double fraction)
{
    int64_t k = prune_count(fraction, n);
    if (k <= 0)
        return 0;
    uint32_t prefix = 0, mask = 0;
    int64_t rank = k; /* 1-based rank of the target among keys matching prefix */
    for (int shift = 24; shift >= 0; shift -= 8) {
        int64_t hist[256] = {0};
        for (int64_t i = 0; i < n; i++) {
            uint32_t key = mag_key(x[i]);
            if ((key & mask) == prefix)
                hist[(key >> shift) & 0xFFu]++;
        }
        int bin = 0;
        while (rank > hist[bin]) {
            rank -= hist[bin];
            bin++;
        }
        prefix |= (uint32_t)bin << shift;
        mask |= 0xFFu << shift;
    }
    /* prefix is now the k-th smallest key; `rank` of the entries equal to it are zeroed */
    for (int64_t i = 0; i < n; i++) {
        uint32_t key = mag_key(x[i]);
        if (key < prefix) {
            x[i] = 0.0f;
        } else if (key == prefix && rank > 0) {
            x[i] = 0.0f;
            rank--;
        }
    }
    return k;
}

int64_t rt_prune_random(float *x, int64_t n, double fraction, uint64_t seed, uint64_t stream,
                        int64_t step)
{
    int64_t zeroed = 0;
    uint64_t base = (uint64_t)step * (uint64_t)n;
    for (int64_t i = 0; i < n; i++)
        if ((double)rt_rng_uniform(seed, stream, base + (uint64_t)i) < fraction) {
            x[i] = 0.0f;
            zeroed++;
        }
    return zeroed;
}
