/* The schedule and the step policy, in both implementations: the compiler's reference host
 * (ir/schedule.c) and the trainer's (runtime/step.c). Expected values come from the
 * closed form of docs/runtime.md "The schedule", evaluated in Python (math.cos, float64)
 * and written here with 17 digits; each implementation is checked against them, never
 * against the other. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "ir.h"
#include "rt_internal.h"

/* The schedule of the example that showed the second cosine: 60 steps, warmup 5,
 * warm start 10, a merge every 10 steps with a 3-step ramp, peaks 1e-3 / 2e-3, m = 0.1. */
static const int64_t ex_steps[] = {0, 1, 4, 5, 9, 10, 11, 12, 13, 14, 19, 20, 21, 22, 23, 30, 35, 40, 50, 53, 59};
static const double ex_lr[] = {
    0.0, 0.0002, 0.0008, 0.001, 0.0009883053626240502, 0.0, 0.0006358861952740741, 0.0012717723905481483,
    0.0019076585858222226, 0.0018836714694077997, 0.0017272438117897644, 0.0, 0.0005215859051583553,
    0.0010431718103167105, 0.0015647577154750659, 0.0, 0.0009719166455540436, 0.0, 0.0, 0.000270988712196635,
    0.00020146780646647795};
enum { N_EX = sizeof ex_steps / sizeof ex_steps[0] };

/* The reference code's lambda with no warm start: N 15000, W 500, R 5000, Wr 100, m 0.1. */
static const int64_t ref_steps[] = {0, 250, 500, 4999, 5000, 5001, 5050, 5100, 9999, 10000, 10100, 14999};
static const double ref_lr[] = {0.0, 0.5, 1.0, 0.8026148712613355, 0.0, 0.007944057628661948, 0.3972028814330974,
                                0.7944057628661948, 0.3393023470266954, 0.0, 0.33065230748710644,
                                0.10000001056200228};
enum { N_REF = sizeof ref_steps / sizeof ref_steps[0] };

static IrSchedule ir_example(void)
{
    return (IrSchedule){.kind = IR_SCHED_RELORA, .steps = 60, .warmup = 5, .warm_start = 10, .reset_every = 10,
                        .restart_warmup = 3, .lr = 1e-3, .relora_lr = 2e-3, .min_lr_ratio = 0.1, .prune = 0.9,
                        .warmup_pct = -1, .warm_start_pct = -1, .reset_every_pct = -1, .restart_warmup_pct = -1};
}

static RtSchedule rt_example(void)
{
    return (RtSchedule){.kind = RT_SCHED_RELORA, .steps = 60, .warmup = 5, .warm_start = 10, .reset_every = 10,
                        .restart_warmup = 3, .lr = 1e-3, .relora_lr = 2e-3, .min_lr_ratio = 0.1, .prune = 0.9,
                        .warmup_pct = -1, .warm_start_pct = -1, .reset_every_pct = -1, .restart_warmup_pct = -1};
}

static void expect_close(double got, double want, int64_t step, const char *who)
{
    ck_assert_msg(fabs(got - want) <= 1e-15 + 1e-12 * fabs(want), "%s: step %lld: lr %.17g, want %.17g", who,
                  (long long)step, got, want);
}

START_TEST(schedule_lr_is_one_global_cosine_in_both_implementations)
{
    IrSchedule is = ir_example();
    RtSchedule rs = rt_example();
    for (int i = 0; i < N_EX; i++) {
        expect_close(ir_schedule_lr(&is, ex_steps[i]), ex_lr[i], ex_steps[i], "ir");
        expect_close(rt_schedule_lr(&rs, ex_steps[i]), ex_lr[i], ex_steps[i], "runtime");
    }
    /* the values a user read off metrics.jsonl at steps 11, 12, 13 and 35 */
    ck_assert_double_eq_tol((float)rt_schedule_lr(&rs, 11), 6.358862e-4, 1e-10);
    ck_assert_double_eq_tol((float)rt_schedule_lr(&rs, 12), 1.271772e-3, 1e-9);
    ck_assert_double_eq_tol((float)rt_schedule_lr(&rs, 13), 1.907659e-3, 1e-9);
    ck_assert_double_eq_tol((float)rt_schedule_lr(&rs, 35), 9.719e-4, 1e-7);
}
END_TEST

START_TEST(schedule_lr_matches_the_reference_code_without_warm_start)
{
    IrSchedule is = {.kind = IR_SCHED_RELORA, .steps = 15000, .warmup = 500, .reset_every = 5000,
                     .restart_warmup = 100, .lr = 1, .relora_lr = 1, .min_lr_ratio = 0.1};
    RtSchedule rs = {.kind = RT_SCHED_RELORA, .steps = 15000, .warmup = 500, .reset_every = 5000,
                     .restart_warmup = 100, .lr = 1, .relora_lr = 1, .min_lr_ratio = 0.1};
    for (int i = 0; i < N_REF; i++) {
        expect_close(ir_schedule_lr(&is, ref_steps[i]), ref_lr[i], ref_steps[i], "ir");
        expect_close(rt_schedule_lr(&rs, ref_steps[i]), ref_lr[i], ref_steps[i], "runtime");
    }
}
END_TEST

START_TEST(schedule_lr_constant_and_cosine)
{
    /* cosine: t/W, then m + (1-m)/2 (1 + cos(pi (t-W)/(N-W))): N 100, W 10, m 0.2, lr 3
     * at 20 the cosine is 0.2 + 0.4 (1 + cos(pi/9)) = 0.9758770483143635 */
    IrSchedule is = {.kind = IR_SCHED_COSINE, .steps = 100, .warmup = 10, .lr = 3, .relora_lr = 3, .min_lr_ratio = 0.2};
    RtSchedule rs = {.kind = RT_SCHED_COSINE, .steps = 100, .warmup = 10, .lr = 3, .relora_lr = 3, .min_lr_ratio = 0.2};
    const int64_t st[] = {0, 5, 10, 20, 55, 99};
    const double want[] = {0, 1.5, 3, 3 * 0.9758770483143635, 3 * 0.6, 3 * 0.2002436691923617};
    for (int i = 0; i < 6; i++) {
        expect_close(ir_schedule_lr(&is, st[i]), want[i], st[i], "ir cosine");
        expect_close(rt_schedule_lr(&rs, st[i]), want[i], st[i], "runtime cosine");
    }
    is.kind = IR_SCHED_CONSTANT;
    rs.kind = RT_SCHED_CONSTANT;
    const double cwant[] = {0, 1.5, 3, 3, 3, 3};
    for (int i = 0; i < 6; i++) {
        expect_close(ir_schedule_lr(&is, st[i]), cwant[i], st[i], "ir constant");
        expect_close(rt_schedule_lr(&rs, st[i]), cwant[i], st[i], "runtime constant");
    }
}
END_TEST

/* Events and Adam's step at every boundary of the example. */
START_TEST(schedule_plan_switches_and_resets_at_the_boundaries)
{
    IrSchedule is = ir_example();
    RtSchedule rs = rt_example();
    for (int64_t s = 0; s < 60; s++) {
        IrStepPlan ip = ir_schedule_plan(&is, s);
        RtStepPlan rp = rt_schedule_plan(&rs, s);
        bool lora = s >= 10, sw = s == 10, reset = s >= 20 && s % 10 == 0;
        int64_t t = lora ? s - 10 + 1 : s + 1;
        ck_assert_msg(ip.lora == lora && rp.lora == lora, "step %lld: phase", (long long)s);
        ck_assert_msg(ip.switch_before == sw && rp.switch_before == sw, "step %lld: switch", (long long)s);
        ck_assert_msg(ip.reset_after == reset && rp.reset_after == reset, "step %lld: reset", (long long)s);
        ck_assert_int_eq(ip.adam_t, t);
        ck_assert_int_eq(rp.adam_t, t);
    }
    /* no warm start: no switch, the first merge after step R */
    is.warm_start = 0;
    rs.warm_start = 0;
    ck_assert(!ir_schedule_plan(&is, 0).switch_before && !rt_schedule_plan(&rs, 0).switch_before);
    ck_assert(ir_schedule_plan(&is, 0).lora && rt_schedule_plan(&rs, 0).lora);
    ck_assert(!rt_schedule_plan(&rs, 0).reset_after && rt_schedule_plan(&rs, 10).reset_after);
    ck_assert(!ir_schedule_plan(&is, 0).reset_after && ir_schedule_plan(&is, 10).reset_after);
}
END_TEST

START_TEST(schedule_percentages_follow_the_total)
{
    RtSchedule rs = rt_example();
    rs.warm_start_pct = 25;
    rs.reset_every_pct = 10;
    rs.warmup_pct = 5;
    rs.restart_warmup_pct = 2;
    rs.steps = 1000;
    rt_schedule_resolve(&rs);
    ck_assert_int_eq(rs.warm_start, 250);
    ck_assert_int_eq(rs.reset_every, 100);
    ck_assert_int_eq(rs.warmup, 50);
    ck_assert_int_eq(rs.restart_warmup, 20);
    rs.steps = 999; /* rounded down */
    rt_schedule_resolve(&rs);
    ck_assert_int_eq(rs.warm_start, 249);
    ck_assert_int_eq(rs.restart_warmup, 19);
    /* counts stay counts */
    RtSchedule c = rt_example();
    c.steps = 1000;
    rt_schedule_resolve(&c);
    ck_assert_int_eq(c.warm_start, 10);
}
END_TEST

START_TEST(schedule_check_names_the_broken_rule)
{
    RtSchedule rs = rt_example();
    IrSchedule is = ir_example();
    RtError e = {0};
    char why[160];
    ck_assert(rt_schedule_check(&rs, NULL, &e));
    ck_assert(ir_schedule_check(&is, why, sizeof why));
    rs.restart_warmup = is.restart_warmup = 10;
    ck_assert(!rt_schedule_check(&rs, NULL, &e));
    ck_assert_msg(strstr(e.msg, "restart-warmup must be in [0, reset-every) = [0, 10) (got 10)"), "%s", e.msg);
    ck_assert(!ir_schedule_check(&is, why, sizeof why));
    ck_assert_msg(strstr(why, "restart_warmup must be in [0, reset_every) = [0, 10) (got 10)"), "%s", why);
    rs = rt_example();
    is = ir_example();
    rs.warm_start = is.warm_start = 60;
    e = (RtError){0};
    ck_assert(!rt_schedule_check(&rs, NULL, &e));
    ck_assert_msg(strstr(e.msg, "warm-start must be in [0, steps) = [0, 60) (got 60)"), "%s", e.msg);
    ck_assert(!ir_schedule_check(&is, why, sizeof why));
    rs = rt_example();
    rs.prune = 1.0;
    e = (RtError){0};
    ck_assert(!rt_schedule_check(&rs, NULL, &e));
    ck_assert_msg(strstr(e.msg, "prune must be in [0, 1) (got 1)"), "%s", e.msg);
    rs = rt_example();
    rs.lr = NAN;
    e = (RtError){0};
    ck_assert(!rt_schedule_check(&rs, NULL, &e));
    ck_assert_msg(strstr(e.msg, "lr must be a finite number > 0"), "%s", e.msg);
}
END_TEST

Suite *schedule_suite(void)
{
    Suite *s = suite_create("schedule");
    TCase *tc = tcase_create("schedule");
    tcase_add_test(tc, schedule_lr_is_one_global_cosine_in_both_implementations);
    tcase_add_test(tc, schedule_lr_matches_the_reference_code_without_warm_start);
    tcase_add_test(tc, schedule_lr_constant_and_cosine);
    tcase_add_test(tc, schedule_plan_switches_and_resets_at_the_boundaries);
    tcase_add_test(tc, schedule_percentages_follow_the_total);
    tcase_add_test(tc, schedule_check_names_the_broken_rule);
    suite_add_tcase(s, tc);
    return s;
}
