/* Counter-based RNG (splitmix64) and bf16 conversions. The formulas are part of the ABI:
 * the compiler's reference executor computes the same bits, and a value depends only on
 * (seed, stream, counter), never on thread count or call order. */
#include "rt_internal.h"

#include <math.h>
#include <string.h>

uint64_t rt_splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t rt_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return rt_splitmix64(rt_splitmix64(seed ^ rt_splitmix64(stream)) + counter);
}

float rt_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter)
{
    /* 24 bits so the product is exact in float and strictly below 1 */
    return (float)((double)(rt_rng_u64(seed, stream, counter) >> 40) * 0x1.0p-24);
}

float rt_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter)
{
    double u1 = rt_rng_uniform(seed, stream, counter * 2);
    double u2 = rt_rng_uniform(seed, stream, counter * 2 + 1);
    if (u1 < 1e-12)
        u1 = 1e-12;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2));
}

float rt_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t rt_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu))
        return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* IEEE 754 binary16: sign, 5-bit exponent (bias 15), 10-bit fraction; every value is exact
 * in binary32. */
float rt_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu, bits;
    if (exp == 0) { /* zero or subnormal: man * 2^-24 */
        float f = (float)man * 0x1p-24f;
        return sign ? -f : f;
    }
    if (exp == 31)
        bits = sign | 0x7F800000u | man << 13; /* inf, NaN */
    else
        bits = sign | (exp + 112) << 23 | man << 13;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
