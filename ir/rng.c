/* The counter-based RNG shared bit-for-bit with the runtime (runtime/rt.h): every
 * random number is a pure function of (seed, stream, counter), so init, dropout and
 * random pruning give the same values in the interpreter, on the GPU and after a
 * resume, whatever order elements are visited in. */
#include <math.h>

#include "ir.h"

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t ir_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return splitmix64(splitmix64(seed ^ splitmix64(stream)) + counter);
}

/* The top 24 bits, so the value is exact in f32 as well: [0, 1 - 2^-24]. */
double ir_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return (double)(ir_rng_u64(seed, stream, counter) >> 40) * (1.0 / 16777216.0);
}

/* Box-Muller on the uniforms at counters 2c and 2c+1; u1 is floored at 1e-12 so the
 * log stays finite when u1 is exactly 0. */
double ir_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter)
{
    double u1 = ir_rng_uniform(seed, stream, counter * 2);
    double u2 = ir_rng_uniform(seed, stream, counter * 2 + 1);
    const double two_pi = 6.283185307179586476925286766559;
    return sqrt(-2.0 * log(fmax(u1, 1e-12))) * cos(two_pi * u2);
}
