/* The kernel IR's instruction table (ir/kinstr.def) and the one statement of element
 * sizes and bf16 rounding (ir_dtype_bytes, ir_dtype_store), which the buffer planner, the
 * kernel interpreter and the emitters share. Expected bf16 values are worked out by hand
 * from the bit patterns (7 stored mantissa bits, round to nearest, ties to even). */
#include <check.h>
#include <math.h>
#include <string.h>

#include "kernel.h"

START_TEST(kinstr_table_is_complete_and_typed)
{
    for (int op = 0; op < KI_COUNT; op++) {
        const KInstrInfo *in = &k_instr_info[op];
        ck_assert_msg(in->name && in->name[0], "instruction %d has no name", op);
        ck_assert_str_eq(k_instr_name((KInstrOp)op), in->name);
        ck_assert_msg(strchr("IFB?-", in->result) != NULL, "%s: result type '%c'", in->name, in->result);
        size_t n = strlen(in->operands);
        ck_assert_msg(n <= 3, "%s: %zu operands", in->name, n);
        for (size_t j = 0; j < n; j++)
            ck_assert_msg(strchr("IFB?", in->operands[j]) != NULL, "%s: operand type '%c'", in->name,
                          in->operands[j]);
        /* a C expression names exactly the operands the instruction has */
        for (size_t j = 0; j < 3 && in->cexpr[0]; j++) {
            char var[3] = {'$', (char)('a' + j), 0};
            ck_assert_msg((strstr(in->cexpr, var) != NULL) == (j < n), "%s: '%s' and %zu operands", in->name,
                          in->cexpr, n);
        }
        for (int o = 0; o < op; o++)
            ck_assert_msg(strcmp(k_instr_info[o].name, in->name) != 0, "two instructions named %s", in->name);
    }
    ck_assert_str_eq(k_instr_name(KI_IADD), "iadd");
    ck_assert_str_eq(k_instr_info[KI_IADD].cexpr, "$a + $b");
    ck_assert_str_eq(k_instr_name(KI_COUNT), "?");
    ck_assert(k_instr_is_store(KI_STORE_ADD) && !k_instr_is_store(KI_LOAD));
    ck_assert(k_instr_is_reduce(KI_REDUCE_MAX) && k_instr_has_buf(KI_LOAD_I));
}
END_TEST

START_TEST(dtype_bytes_state_bf16_as_two)
{
    ck_assert_int_eq(ir_dtype_bytes(IR_F32), 4);
    ck_assert_int_eq(ir_dtype_bytes(IR_I32), 4);
    ck_assert_int_eq(ir_dtype_bytes(IR_BF16), 2);
}
END_TEST

START_TEST(dtype_store_rounds_bf16_to_nearest_even)
{
    /* 1 + 2^-8 lies halfway between 1 (mantissa 0, even) and 1 + 2^-7: ties to 1 */
    ck_assert(ir_dtype_store(IR_BF16, 1.0 + 0x1p-8) == 1.0);
    /* 1 + 3 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even) */
    ck_assert(ir_dtype_store(IR_BF16, 1.0 + 3 * 0x1p-8) == 1.0 + 0x1p-6);
    /* just above a tie rounds up; just below rounds down */
    ck_assert(ir_dtype_store(IR_BF16, 1.0 + 0x1p-8 + 0x1p-20) == 1.0 + 0x1p-7);
    ck_assert(ir_dtype_store(IR_BF16, -(1.0 + 0x1p-8 - 0x1p-20)) == -1.0);
    /* 3.14159265 = 0x40490FDB in f32 -> 0x4049 -> 3.140625 */
    ck_assert(ir_dtype_store(IR_BF16, 3.14159265) == 3.140625);
    ck_assert(isnan(ir_dtype_store(IR_BF16, NAN)));
    ck_assert(isinf(ir_dtype_store(IR_BF16, INFINITY)));
    /* f32 and i32 keep the reference's f64 value */
    ck_assert(ir_dtype_store(IR_F32, 0.1) == 0.1);
    ck_assert(ir_dtype_store(IR_I32, 7.0) == 7.0);
}
END_TEST

Suite *kernel_suite(void)
{
    Suite *s = suite_create("kernel");
    TCase *tc = tcase_create("kernel");
    tcase_add_test(tc, kinstr_table_is_complete_and_typed);
    tcase_add_test(tc, dtype_bytes_state_bf16_as_two);
    tcase_add_test(tc, dtype_store_rounds_bf16_to_nearest_even);
    suite_add_tcase(s, tc);
    return s;
}
