/* RNG: bit-exact values (computed independently with Python integers, see comments),
 * ranges and moments, and independence from the order of calls. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ir.h" /* the reference executor's RNG, which must agree bit for bit */
#include "rt.h"

/* Python reference:
 *   M = 2**64 - 1
 *   def sm(x): x = (x + 0x9E3779B97F4A7C15) & M; x = ((x ^ x >> 30) * 0xBF58476D1CE4E5B9) & M
 *              x = ((x ^ x >> 27) * 0x94D049BB133111EB) & M; return x ^ x >> 31
 *   u64 = lambda s, st, c: sm((sm(s ^ sm(st)) + c) & M) */
START_TEST(rng_splitmix64_matches_reference)
{
    ck_assert_uint_eq(rt_splitmix64(0), 0xe220a8397b1dcdafull);
    ck_assert_uint_eq(rt_splitmix64(1), 0x910a2dec89025cc1ull);
    ck_assert_uint_eq(rt_splitmix64(0x0123456789ABCDEFull), 0x157a3807a48faa9dull);
}
END_TEST

START_TEST(rng_u64_matches_reference)
{
    ck_assert_uint_eq(rt_rng_u64(0, 0, 0), 0x238275bc38fcbe91ull);
    ck_assert_uint_eq(rt_rng_u64(1, 2, 3), 0xe6f19ca578bd2189ull);
    ck_assert_uint_eq(rt_rng_u64(1337, 7, 12345), 0xf97152d2e9103e71ull);
    ck_assert_uint_eq(rt_rng_u64(UINT64_MAX, UINT64_MAX, UINT64_MAX), 0x55e2c9ae3b41d287ull);
    ck_assert_uint_eq(rt_rng_u64(42, RT_STREAM_TRAIN_BATCH, 99), 0xf2bf824780873e94ull);
}
END_TEST

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

START_TEST(rng_uniform_and_normal_match_reference)
{
    /* uniform = (u64 >> 40) * 2**-24 (exact); normal per rt.h, float bits from struct.pack */
    ck_assert(rt_rng_uniform(0, 0, 0) == 0x1.1c13a8p-3f);
    ck_assert(rt_rng_uniform(1, 2, 3) == 0x1.cde338p-1f);
    ck_assert(rt_rng_uniform(1337, 7, 12345) == 0x1.f2e2a4p-1f);
    ck_assert_uint_eq(bits(rt_rng_normal(0, 0, 0)), 0xbdd34f5c);
    ck_assert_uint_eq(bits(rt_rng_normal(1, 2, 3)), 0xbed44014);
    ck_assert_uint_eq(bits(rt_rng_normal(1337, 7, 12345)), 0x3e9e2914);
    ck_assert_uint_eq(bits(rt_rng_normal(42, RT_STREAM_TRAIN_BATCH, 99)), 0xbf6ad729);
}
END_TEST

START_TEST(rng_matches_reference_executor)
{
    const uint64_t seeds[] = {0, 1, 1337, UINT64_MAX};
    for (size_t k = 0; k < sizeof seeds / sizeof *seeds; k++)
        for (uint64_t c = 0; c < 20000; c++) {
            uint64_t stream = c % 7 == 0 ? RT_STREAM_SAMPLE : c % 13;
            ck_assert_uint_eq(rt_rng_u64(seeds[k], stream, c), ir_rng_u64(seeds[k], stream, c));
            ck_assert(rt_rng_uniform(seeds[k], stream, c) ==
                      (float)ir_rng_uniform(seeds[k], stream, c));
            ck_assert_uint_eq(bits(rt_rng_normal(seeds[k], stream, c)),
                              bits((float)ir_rng_normal(seeds[k], stream, c)));
        }
}
END_TEST

START_TEST(rng_uniform_stays_in_unit_interval)
{
    double sum = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float u = rt_rng_uniform(7, 3, (uint64_t)i);
        ck_assert(u >= 0.0f && u < 1.0f);
        sum += u;
    }
    ck_assert(fabs(sum / n - 0.5) < 0.005);
}
END_TEST

START_TEST(rng_normal_has_unit_moments)
{
    double s = 0, s2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double z = rt_rng_normal(11, 5, (uint64_t)i);
        ck_assert(isfinite(z));
        s += z;
        s2 += z * z;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    ck_assert_msg(fabs(mean) < 0.01, "mean %f", mean);
    ck_assert_msg(fabs(var - 1.0) < 0.02, "var %f", var);
}
END_TEST

START_TEST(rng_streams_and_seeds_differ)
{
    ck_assert_uint_ne(rt_rng_u64(1, 0, 0), rt_rng_u64(2, 0, 0));
    ck_assert_uint_ne(rt_rng_u64(1, 0, 0), rt_rng_u64(1, 1, 0));
    ck_assert_uint_ne(rt_rng_u64(1, 0, 0), rt_rng_u64(1, 0, 1));
    /* counter-based: a value does not depend on what was drawn before */
    uint64_t later = rt_rng_u64(9, 9, 1000);
    for (int i = 0; i < 1000; i++)
        (void)rt_rng_u64(9, 9, (uint64_t)i);
    ck_assert_uint_eq(rt_rng_u64(9, 9, 1000), later);
}
END_TEST

START_TEST(rng_bf16_round_trips_and_rounds_to_even)
{
    ck_assert(rt_bf16_to_f32(rt_f32_to_bf16(1.0f)) == 1.0f);
    ck_assert(rt_bf16_to_f32(rt_f32_to_bf16(-2.5f)) == -2.5f);
    ck_assert_uint_eq(rt_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);          /* tie -> even */
    ck_assert_uint_eq(rt_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-9f), 0x3f81); /* above tie */
    ck_assert(isnan(rt_bf16_to_f32(rt_f32_to_bf16(NAN))));
}
END_TEST

Suite *rng_suite(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("rng");
    tcase_add_test(tc, rng_splitmix64_matches_reference);
    tcase_add_test(tc, rng_u64_matches_reference);
    tcase_add_test(tc, rng_uniform_and_normal_match_reference);
    tcase_add_test(tc, rng_matches_reference_executor);
    tcase_add_test(tc, rng_uniform_stays_in_unit_interval);
    tcase_add_test(tc, rng_normal_has_unit_moments);
    tcase_add_test(tc, rng_streams_and_seeds_differ);
    tcase_add_test(tc, rng_bf16_round_trips_and_rounds_to_even);
    suite_add_tcase(s, tc);
    return s;
}
