/* The step policy: which compiled functions run at each step, with which learning rate,
 * and when the warm-start switch and the ReLoRA resets happen (docs/runtime.md "The
 * schedule"). The schedule is run-time data (RtSchedule), so a trainer follows options
 * without a rebuild and every backend runs the same policy. The compiler's reference host
 * (ir/schedule.c) is an independent copy of the same rules; tests pin both to values
 * worked out by hand. */
#include "rt_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *rt_fn_name(int fn)
{
    static const char *const names[RT_FN_COUNT] = {
        [RT_FN_INIT] = "init",
        [RT_FN_TRAIN_FULL] = "train_full",
        [RT_FN_NORM_FULL] = "norm_full",
        [RT_FN_UPDATE_FULL] = "update_full",
        [RT_FN_TRAIN_LORA] = "train_lora",
        [RT_FN_NORM_LORA] = "norm_lora",
        [RT_FN_UPDATE_LORA] = "update_lora",
        [RT_FN_SWITCH] = "switch",
        [RT_FN_RESET] = "relora_reset",
        [RT_FN_EVAL] = "eval",
        [RT_FN_LOGITS] = "logits",
        [RT_FN_REFRESH] = "refresh",
    };
    return fn >= 0 && fn < RT_FN_COUNT && names[fn] ? names[fn] : "?";
}

/* ---- the schedule ---- */

static int64_t pct_of(double pct, int64_t steps)
{
    return (int64_t)floor(pct / 100.0 * (double)steps + 1e-9);
}

void rt_schedule_resolve(RtSchedule *s)
{
    if (s->warmup_pct >= 0)
        s->warmup = pct_of(s->warmup_pct, s->steps);
    if (s->kind != RT_SCHED_RELORA)
        return;
    if (s->warm_start_pct >= 0)
        s->warm_start = pct_of(s->warm_start_pct, s->steps);
    if (s->reset_every_pct >= 0)
        s->reset_every = pct_of(s->reset_every_pct, s->steps);
    if (s->restart_warmup_pct >= 0)
        s->restart_warmup = pct_of(s->restart_warmup_pct, s->steps);
}

bool rt_schedule_check(const RtSchedule *s, const RtModel *m, RtError *e)
{
    if (s->steps < 1)
        return rt_err(e, RT_ERR_USAGE, "the schedule needs steps >= 1 (got %lld)", (long long)s->steps);
    if (s->warmup < 0 || s->warmup >= s->steps)
        return rt_err(e, RT_ERR_USAGE, "warmup must be in [0, steps) = [0, %lld) (got %lld)",
                      (long long)s->steps, (long long)s->warmup);
    if (!(s->lr > 0) || !isfinite(s->lr))
        return rt_err(e, RT_ERR_USAGE, "lr must be a finite number > 0 (got %g)", s->lr);
    if (!(s->min_lr_ratio >= 0 && s->min_lr_ratio <= 1))
        return rt_err(e, RT_ERR_USAGE, "min-lr-ratio must be in [0, 1] (got %g)", s->min_lr_ratio);
    if (s->kind != RT_SCHED_RELORA)
        return true;
    if (s->warm_start < 0 || s->warm_start >= s->steps)
        return rt_err(e, RT_ERR_USAGE, "warm-start must be in [0, steps) = [0, %lld) (got %lld)",
                      (long long)s->steps, (long long)s->warm_start);
    if (s->warm_start > 0 && m && !m->fn[RT_FN_TRAIN_FULL])
        return rt_err(e, RT_ERR_USAGE,
                      "warm-start %lld needs a full-rank phase, and this trainer was built without "
                      "one (its spec has warm_start = 0); rebuild with -D train.schedule.warm_start=N",
                      (long long)s->warm_start);
    if (s->reset_every < 1)
        return rt_err(e, RT_ERR_USAGE, "reset-every must be > 0 (got %lld)", (long long)s->reset_every);
    if (s->restart_warmup < 0 || s->restart_warmup >= s->reset_every)
        return rt_err(e, RT_ERR_USAGE, "restart-warmup must be in [0, reset-every) = [0, %lld) (got %lld)",
                      (long long)s->reset_every, (long long)s->restart_warmup);
    if (!(s->relora_lr > 0) || !isfinite(s->relora_lr))
        return rt_err(e, RT_ERR_USAGE, "relora-lr must be a finite number > 0 (got %g)", s->relora_lr);
    if (!(s->prune >= 0 && s->prune < 1))
        return rt_err(e, RT_ERR_USAGE, "prune must be in [0, 1) (got %g)", s->prune);
    return true;
}

/* The global multiplier at step u: u/W in the warmup, then 1 (constant) or the cosine
 * from 1 at W to m at N (clamped at N). */
static double base(const RtSchedule *s, double u)
{
    const double pi = 3.14159265358979323846;
    double W = (double)s->warmup, N = (double)s->steps, m = s->min_lr_ratio;
    if (u < W)
        return u / W;
    if (s->kind == RT_SCHED_CONSTANT)
        return 1.0;
    if (u > N)
        u = N;
    return m + (1.0 - m) * 0.5 * (1.0 + cos(pi * (u - W) / (N - W)));
}

double rt_schedule_lr(const RtSchedule *s, int64_t step)
{
    bool lora = s->kind == RT_SCHED_RELORA && step >= s->warm_start;
    double peak = lora ? s->relora_lr : s->lr;
    if (lora) {
        /* the ramp after the switch (when there was a warm start) and after each merge */
        int64_t k = (step - s->warm_start) / s->reset_every;
        int64_t r = s->warm_start + k * s->reset_every; /* the latest restart */
        bool restarted = k > 0 || s->warm_start > 0;
        if (restarted && step - r < s->restart_warmup)
            return peak * ((double)(step - r) / (double)s->restart_warmup) *
                   base(s, (double)(r + s->restart_warmup));
    }
    return peak * base(s, (double)step);
}

RtStepPlan rt_schedule_plan(const RtSchedule *s, int64_t step)
{
    RtStepPlan p = {0};
    bool relora = s->kind == RT_SCHED_RELORA;
    int64_t t = step - s->warm_start;
    p.lora = relora && t >= 0;
    p.switch_before = relora && s->warm_start > 0 && t == 0;
    p.reset_after = p.lora && t >= s->reset_every && t % s->reset_every == 0;
    p.adam_t = p.lora ? t + 1 : step + 1;
    p.lr = rt_schedule_lr(s, step);
    return p;
}

bool rt_tensor_is_live(const RtTensorInfo *t, const RtSchedule *s, int64_t done)
{
    bool lora = s->kind == RT_SCHED_RELORA && (done > s->warm_start || s->warm_start == 0);
    if (t->flags & RT_T_PHASE_FULL)
        return !lora;
    if (t->flags & RT_T_PHASE_LORA)
        return lora;
    return true;
}

/* ---- running the functions ---- */

void rt_io_write(RtCtx *ctx, int io, const void *src, size_t bytes)
{
    int i = ctx->model->io[io];
    if (i >= 0)
        rt_tensor_write(ctx, i, src, bytes);
}

static void io_i32(RtCtx *ctx, int io, int64_t v)
{
    int32_t x = (int32_t)v;
    rt_io_write(ctx, io, &x, sizeof x);
}

static void io_f32(RtCtx *ctx, int io, double v)
{
    float x = (float)v;
    rt_io_write(ctx, io, &x, sizeof x);
}

static float run(RtCtx *ctx, int fn)
{
    RtFnPtr f = ctx->model->fn[fn];
    return f ? f(ctx) : 0.0f;
}

/* The fraction of the adapters' Adam moments that are zero (after a reset: the pruned
 * entries, and any that were zero already). */
static float zero_fraction(RtCtx *ctx)
{
    const RtModel *m = ctx->model;
    int64_t zero = 0, total = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const RtTensorInfo *t = &m->tensors[i];
        if (!(t->flags & RT_T_MOMENT) || !(t->flags & (RT_T_ADAPTER_A | RT_T_ADAPTER_B)) || t->dtype != RT_F32)
            continue;
        int64_t n = rt_tensor_numel(t);
        float *v = m->device ? malloc(sizeof *v * (size_t)n) : rt_tensor_data(ctx, i);
        if (!v)
            continue;
        if (m->device)
            rt_tensor_read(ctx, i, v, sizeof *v * (size_t)n);
        for (int64_t j = 0; j < n; j++)
            zero += v[j] == 0.0f;
        total += n;
        if (m->device)
            free(v);
    }
    return total > 0 ? (float)((double)zero / (double)total) : 0.0f;
}

void rt_set_batch(RtCtx *ctx, const int32_t *x, const int32_t *y)
{
    size_t bytes = sizeof(int32_t) * (size_t)ctx->model->micro_batch * (size_t)ctx->model->seq_len;
    rt_io_write(ctx, RT_IO_TOKENS, x, bytes);
    rt_io_write(ctx, RT_IO_TARGETS, y, bytes);
}

/* k: the micro-steps of a step. */
static int64_t micro_steps(const RtModel *m)
{
    return m->batch / m->micro_batch;
}

/* Zeroes the gradients that hold a value in step `step`'s phase (the train functions of
 * a step with several micro-steps add to them). */
static void zero_grads(RtCtx *ctx, const RtSchedule *s, int64_t step)
{
    const RtModel *m = ctx->model;
    for (int i = 0; i < m->n_tensors; i++) {
        const RtTensorInfo *t = &m->tensors[i];
        if ((t->flags & RT_T_GRAD) && rt_tensor_is_live(t, s, step + 1))
            rt_tensor_zero(ctx, i);
    }
}

bool rt_grad_is_reduced(const RtTensorInfo *t, const RtSchedule *s, int64_t step)
{
    return (t->flags & RT_T_GRAD) && rt_tensor_is_live(t, s, step + 1);
}

int64_t rt_grad_reduced_bytes(const RtModel *m, const RtSchedule *s, int64_t step)
{
    int64_t bytes = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (rt_grad_is_reduced(&m->tensors[i], s, step))
            bytes += rt_tensor_numel(&m->tensors[i]) * (int64_t)rt_dtype_size(m->tensors[i].dtype);
    return bytes;
}

/* Sums the gradients of step `step`'s phase over the ranks (only those: a frozen W has no
 * gradient in the ReLoRA phase, and the other phase's buffers hold other tensors). */
static bool reduce_grads(RtCtx *ctx, RtDist *dist, const RtSchedule *s, int64_t step, RtError *e)
{
    const RtModel *m = ctx->model;
    float **x = malloc(sizeof *x * (size_t)m->n_tensors);
    int64_t *n = malloc(sizeof *n * (size_t)m->n_tensors);
    if (!x || !n) {
        free(x);
        free(n);
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    }
    int count = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (rt_grad_is_reduced(&m->tensors[i], s, step) && m->tensors[i].dtype == RT_F32) {
            x[count] = rt_tensor_data(ctx, i);
            n[count++] = rt_tensor_numel(&m->tensors[i]);
        }
    /* on a device its layer sums (the CUDA layer: NCCL) */
    bool ok = m->device ? m->device->sum(ctx, x, n, count, e) : rt_dist_sum_spans(dist, x, n, count, e);
    free(x);
    free(n);
    return ok;
}

/* The sum over the ranks of each rank's `mine`, added in rank order. */
static bool sum_f64(RtDist *dist, double mine, double *out, RtError *e)
{
    int N = rt_dist_size(dist);
    double *all = malloc(sizeof *all * (size_t)N);
    if (!all)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    bool ok = rt_dist_allgather(dist, &mine, all, sizeof mine, e);
    double sum = 0;
    for (int q = 0; ok && q < N; q++)
        sum += all[q];
    *out = sum;
    free(all);
    return ok;
}

int rt_step_dist(RtCtx *ctx, RtDist *dist, const RtSchedule *s, const int32_t *x, const int32_t *y,
                 int64_t step, RtStepStats *out, RtError *e)
{
    const RtModel *m = ctx->model;
    RtStepPlan p = rt_schedule_plan(s, step);
    memset(out, 0, sizeof *out);
    out->lr = (float)p.lr;
    io_i32(ctx, RT_IO_STEP, step);
    io_f32(ctx, RT_IO_LR, p.lr);
    io_i32(ctx, RT_IO_ADAM_T, p.adam_t);
    io_f32(ctx, RT_IO_PRUNE_FRACTION, s->prune);
    if (p.switch_before) {
        run(ctx, RT_FN_SWITCH);
        out->events |= RT_EV_WARM_SWITCH;
    }
    int base_fn = p.lora ? RT_FN_TRAIN_LORA : RT_FN_TRAIN_FULL;
    /* micro-step j computes rows [j b, (j + 1) b) of the step's batch; its train function
     * adds 1/k of its gradient to the zeroed ones, so that they end as the gradient of
     * the mean over the batch; the step's loss is the mean of the micro-steps' means.
     * With N ranks, rank r runs micro-steps [r k/N, (r + 1) k/N) of the same batch and
     * the ranks' sums are added before the norm: the same gradient, cut differently. */
    int64_t k = micro_steps(m), rows = (int64_t)m->micro_batch * m->seq_len;
    int64_t per = k / rt_dist_size(dist), j0 = per * rt_dist_rank(dist);
    if (k > 1)
        zero_grads(ctx, s, step);
    double loss = 0;
    for (int64_t j = j0; j < j0 + per; j++) {
        rt_set_batch(ctx, x + j * rows, y + j * rows);
        io_i32(ctx, RT_IO_MICRO_STEP, step * k + j);
        loss += run(ctx, base_fn);
    }
    /* ZeRO stage 1 (zero.c): a reduce-scatter, the norm of the slices, the runtime's AdamW
     * on the owned slice and an all-gather in place of the sum, norm_* and update_* */
    bool zero = rt_dist_size(dist) > 1 && rt_dist_zero(dist) == 1;
    if (zero && (!rt_zero_reduce(ctx, dist, s, step, &out->grad_norm, e) || !sum_f64(dist, loss, &loss, e)))
        return RT_STEP_COMM_FAILED;
    if (!zero && rt_dist_size(dist) > 1 &&
        (!reduce_grads(ctx, dist, s, step, e) || !sum_f64(dist, loss, &loss, e)))
        return RT_STEP_COMM_FAILED;
    out->loss = (float)(loss / (double)k);
    if (!zero)
        out->grad_norm = run(ctx, base_fn + 1);
    if (!isfinite(out->loss) || !isfinite(out->grad_norm)) {
        out->events |= RT_EV_DIVERGED;
        return isfinite(out->loss) ? RT_STEP_NORM_NONFINITE : RT_STEP_LOSS_NONFINITE;
    }
    if (zero && !rt_zero_update(ctx, dist, s, step, out->grad_norm, e))
        return RT_STEP_COMM_FAILED;
    if (!zero)
        run(ctx, base_fn + 2);
    if (p.reset_after) {
        /* the prune selects over whole moments: under ZeRO, gather them first */
        if (zero && !rt_zero_gather_moments(ctx, dist, s, step, e))
            return RT_STEP_COMM_FAILED;
        run(ctx, RT_FN_RESET);
        out->events |= RT_EV_RESET;
        out->pruned_fraction = zero_fraction(ctx);
    }
    return RT_STEP_OK;
}

int rt_step(RtCtx *ctx, const RtSchedule *s, const int32_t *x, const int32_t *y, int64_t step, RtStepStats *out)
{
    return rt_step_dist(ctx, NULL, s, x, y, step, out, NULL);
}

void rt_init(RtCtx *ctx)
{
    io_i32(ctx, RT_IO_STEP, 0);
    run(ctx, RT_FN_INIT);
}

bool rt_eval_loss_dist(RtCtx *ctx, RtDist *dist, const int32_t *x, const int32_t *y, float *out, RtError *e)
{
    int64_t k = micro_steps(ctx->model), rows = (int64_t)ctx->model->micro_batch * ctx->model->seq_len;
    int64_t per = k / rt_dist_size(dist), j0 = per * rt_dist_rank(dist);
    double loss = 0;
    for (int64_t j = j0; j < j0 + per; j++) {
        rt_set_batch(ctx, x + j * rows, y + j * rows);
        loss += run(ctx, RT_FN_EVAL);
    }
    if (rt_dist_size(dist) > 1 && !sum_f64(dist, loss, &loss, e))
        return false;
    *out = (float)(loss / (double)k);
    return true;
}

float rt_eval_loss(RtCtx *ctx, const int32_t *x, const int32_t *y)
{
    float loss = 0;
    rt_eval_loss_dist(ctx, NULL, x, y, &loss, NULL);
    return loss;
}

void rt_logits(RtCtx *ctx, const int32_t *x, int64_t pos, float *out)
{
    const RtModel *m = ctx->model;
    rt_io_write(ctx, RT_IO_SAMPLE_TOKENS, x, sizeof(int32_t) * (size_t)m->seq_len);
    run(ctx, RT_FN_LOGITS);
    int li = m->io[RT_IO_LOGITS];
    if (li < 0) {
        memset(out, 0, sizeof(float) * (size_t)m->vocab);
        return;
    }
    size_t row = sizeof(float) * (size_t)m->vocab;
    if (m->device)
        m->device->read(ctx, out, (const char *)rt_tensor_data(ctx, li) + (size_t)pos * row, row);
    else
        memcpy(out, (const float *)rt_tensor_data(ctx, li) + pos * m->vocab, row);
}

void rt_schedule_describe(const RtSchedule *s, char *buf, size_t n)
{
    static const char *const kinds[] = {"constant", "cosine", "relora"};
    int k = s->kind >= 0 && s->kind <= RT_SCHED_RELORA ? s->kind : 0;
    int w = snprintf(buf, n, "%s: steps %lld, warmup %lld, lr %g, min-lr-ratio %g", kinds[k], (long long)s->steps,
                     (long long)s->warmup, s->lr, s->min_lr_ratio);
    if (s->kind == RT_SCHED_RELORA && w >= 0 && (size_t)w < n)
        snprintf(buf + w, n - (size_t)w, ", warm-start %lld, reset-every %lld, restart-warmup %lld, relora-lr %g, prune %g",
                 (long long)s->warm_start, (long long)s->reset_every, (long long)s->restart_warmup, s->relora_lr,
                 s->prune);
}
