/* ZeRO stage 1 (Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion
 * Parameter Models", SC 2020, section 5.1) for a data-parallel job under `--zero 1`: the
 * gradients of a step's phase, seen as one flat vector, are reduce-scattered (each rank gets
 * the rank-order sum of the slice it owns, the same bits as the full sum), each rank applies
 * AdamW to its slice of the parameters and moments, and the parameters are all-gathered.
 *
 * Why the runtime's own AdamW and not the compiled update_*: a compiled function runs over
 * whole tensors at the memory plan's addresses and cannot be pointed at a slice. This file
 * applies rt.h's RtOptim formula to the owned slice in f32, in the order of operations of
 * the compiled kernel (ir/kernelize.c, adamw_kernel); tests/mpi.sh checks the losses of
 * `--zero 1` against the compiled update within 1e-6.
 *
 * The moments stay where the memory plan put them (the plan is fixed when the trainer is
 * compiled): a rank keeps the owned slice of each moment up to date and lets the rest go
 * stale, so the optimizer state it maintains is 1/N of the whole. Magnitude pruning at a
 * merge selects the smallest entries of each WHOLE tensor, which no rank holds: before the
 * compiled relora_reset runs, rt_zero_gather_moments all-gathers the moments (every rank then
 * holds the unsharded run's moments, and the compiled prune selects exactly its entries; the
 * exchange happens once per merge). The same gather precedes each checkpoint, so checkpoints
 * are those of an unsharded run and resume with or without --zero. */
#include "rt_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The tensors of one phase's update, in tensor order: gradient, parameter, moments. */
typedef struct Spans {
    int count;
    int *grad, *param, *m, *v; /* tensor indices [count] */
    float **x;                 /* [count]: scratch pointers for the exchanges */
    int64_t *n;                /* [count]: elements */
} Spans;

static void spans_free(Spans *sp)
{
    free(sp->grad);
    free(sp->x);
    free(sp->n);
    memset(sp, 0, sizeof *sp);
}

static int find_tensor(const RtModel *m, const char *name, size_t len, const char *suffix)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const char *t = m->tensors[i].name;
        if (strncmp(t, name, len) == 0 && strcmp(t + len, suffix) == 0)
            return i;
    }
    return -1;
}

/* The update's tensors for step `step` (all_phases: every gradient of the model, for the
 * start-up check). */
static bool spans_build(const RtModel *m, const RtSchedule *s, int64_t step, bool all_phases, Spans *sp,
                        RtError *e)
{
    memset(sp, 0, sizeof *sp);
    size_t nt = (size_t)m->n_tensors + 1;
    sp->grad = malloc(sizeof(int) * 4 * nt);
    sp->x = malloc(sizeof *sp->x * nt);
    sp->n = malloc(sizeof *sp->n * nt);
    if (!sp->grad || !sp->x || !sp->n) {
        spans_free(sp);
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    }
    sp->param = sp->grad + nt;
    sp->m = sp->grad + 2 * nt;
    sp->v = sp->grad + 3 * nt;
    for (int i = 0; i < m->n_tensors; i++) {
        const RtTensorInfo *t = &m->tensors[i];
        if (!(t->flags & RT_T_GRAD) || (!all_phases && !rt_grad_is_reduced(t, s, step)))
            continue;
        size_t len = strlen(t->name);
        const char *sfx = ".grad";
        if (len < 5 || strcmp(t->name + len - 5, sfx) != 0) {
            spans_free(sp);
            return rt_err(e, RT_ERR_USAGE, "--zero 1: gradient %s is not named <parameter>.grad", t->name);
        }
        int k = sp->count, p = find_tensor(m, t->name, len - 5, "");
        int mm = find_tensor(m, t->name, len - 5, ".adam_m"), vv = find_tensor(m, t->name, len - 5, ".adam_v");
        const char *missing = p < 0 ? "parameter" : mm < 0 ? "adam_m moment" : vv < 0 ? "adam_v moment" : NULL;
        if (missing) {
            spans_free(sp);
            return rt_err(e, RT_ERR_USAGE, "--zero 1: gradient %s has no %s in this trainer", t->name, missing);
        }
        int64_t n = rt_tensor_numel(t);
        const int idx[4] = {i, p, mm, vv};
        for (int j = 0; j < 4; j++)
            if (m->tensors[idx[j]].dtype != RT_F32 || rt_tensor_numel(&m->tensors[idx[j]]) != n) {
                spans_free(sp);
                return rt_err(e, RT_ERR_USAGE, "--zero 1 updates f32 tensors of the gradient's shape, and %s is "
                              "%s of %lld elements (gradient %s: %lld)", m->tensors[idx[j]].name,
                              rt_dtype_name(m->tensors[idx[j]].dtype),
                              (long long)rt_tensor_numel(&m->tensors[idx[j]]), t->name, (long long)n);
            }
        sp->grad[k] = i;
        sp->param[k] = p;
        sp->m[k] = mm;
        sp->v[k] = vv;
        sp->n[k] = n;
        sp->count++;
    }
    return true;
}

static float **point(RtCtx *ctx, Spans *sp, const int *idx)
{
    for (int k = 0; k < sp->count; k++)
        sp->x[k] = rt_tensor_data(ctx, idx[k]);
    return sp->x;
}

static int64_t total_of(const Spans *sp)
{
    int64_t L = 0;
    for (int k = 0; k < sp->count; k++)
        L += sp->n[k];
    return L;
}

bool rt_zero_check(const RtModel *m, RtError *e)
{
    if (m->device)
        return rt_err(e, RT_ERR_USAGE, "--zero 1 runs on the CPU target only; this trainer runs on %s",
                      m->device->name ? m->device->name : "a device");
    if (!(m->optim.beta1 > 0) || !(m->optim.beta2 > 0) || !(m->optim.eps > 0))
        return rt_err(e, RT_ERR_USAGE, "--zero 1 needs the trainer's AdamW hyperparameters, and this trainer "
                      "has none (built without an optimizer, or by an older relorac): rebuild it");
    Spans sp;
    if (!spans_build(m, &m->schedule, 0, true, &sp, e))
        return false;
    spans_free(&sp);
    return true;
}

int64_t rt_zero_moment_bytes(const RtModel *m, const RtSchedule *s, int64_t step, int ranks, int rank)
{
    Spans sp;
    RtError e = {0};
    if (!spans_build(m, s, step, false, &sp, &e))
        return 0;
    int64_t L = total_of(&sp);
    spans_free(&sp);
    int64_t lo = L * rank / ranks, hi = L * (rank + 1) / ranks;
    return 2 * (int64_t)sizeof(float) * (hi - lo);
}

/* Parts of the flat range [lo, hi) in span k: [a, b) of its elements. */
static bool part(const Spans *sp, int k, int64_t base, int64_t lo, int64_t hi, int64_t *a, int64_t *b)
{
    *a = lo > base ? lo - base : 0;
    *b = hi < base + sp->n[k] ? hi - base : sp->n[k];
    return *b > *a;
}

bool rt_zero_reduce(RtCtx *ctx, RtDist *dist, const RtSchedule *s, int64_t step, float *norm, RtError *e)
{
    Spans sp;
    if (!spans_build(ctx->model, s, step, false, &sp, e))
        return false;
    bool ok = rt_dist_reduce_scatter_spans(dist, point(ctx, &sp, sp.grad), sp.n, sp.count, e);
    int64_t lo, hi, base = 0;
    rt_dist_owned(dist, total_of(&sp), &lo, &hi);
    double sq = 0; /* the owned slice's sum of squares, then the rank-order sum of all */
    for (int k = 0; ok && k < sp.count; base += sp.n[k], k++) {
        int64_t a, b;
        if (!part(&sp, k, base, lo, hi, &a, &b))
            continue;
        const float *g = rt_tensor_data(ctx, sp.grad[k]);
        for (int64_t i = a; i < b; i++)
            sq += (double)g[i] * (double)g[i];
    }
    int N = rt_dist_size(dist);
    double *all = ok ? malloc(sizeof *all * (size_t)N) : NULL;
    if (ok && !all)
        ok = rt_err(e, RT_ERR_NOMEM, "out of memory");
    if (ok && (ok = rt_dist_allgather(dist, &sq, all, sizeof sq, e))) {
        double sum = 0;
        for (int q = 0; q < N; q++)
            sum += all[q];
        *norm = (float)sqrt(sum);
    }
    free(all);
    spans_free(&sp);
    return ok;
}

bool rt_zero_update(RtCtx *ctx, RtDist *dist, const RtSchedule *s, int64_t step, float norm, RtError *e)
{
    const RtModel *m = ctx->model;
    const RtOptim *o = &m->optim;
    RtStepPlan p = rt_schedule_plan(s, step);
    Spans sp;
    if (!spans_build(m, s, step, false, &sp, e))
        return false;
    /* f32 throughout, as the compiled kernels (ir/kernelize.c clip_scale_kernel, adamw_kernel) */
    float gs = o->clip > 0 ? fminf(1.0f, (float)o->clip / (norm + 1e-6f)) : 1.0f;
    float lr = (float)p.lr, t = (float)p.adam_t;
    float c1 = 1.0f - expf(t * (float)log(o->beta1)), c2 = 1.0f - expf(t * (float)log(o->beta2));
    float b1 = (float)o->beta1, b2 = (float)o->beta2, d1 = (float)(1 - o->beta1), d2 = (float)(1 - o->beta2);
    float eps = (float)o->eps;
    int64_t lo, hi, base = 0;
    rt_dist_owned(dist, total_of(&sp), &lo, &hi);
    for (int k = 0; k < sp.count; base += sp.n[k], k++) {
        int64_t a, b;
        if (!part(&sp, k, base, lo, hi, &a, &b))
            continue;
        float wd = (m->tensors[sp.param[k]].flags & RT_T_DECAY) ? (float)o->weight_decay : 0.0f, lwd = lr * wd;
        const float *gr = rt_tensor_data(ctx, sp.grad[k]);
        float *w = rt_tensor_data(ctx, sp.param[k]), *mm = rt_tensor_data(ctx, sp.m[k]),
              *vv = rt_tensor_data(ctx, sp.v[k]);
        for (int64_t i = a; i < b; i++) {
            float g = gr[i] * gs;
            float mi = b1 * mm[i] + d1 * g, vi = b2 * vv[i] + d2 * (g * g);
            mm[i] = mi;
            vv[i] = vi;
            float upd = (mi / c1) / (sqrtf(vi / c2) + eps);
            w[i] = (w[i] - lwd * w[i]) - lr * upd;
        }
    }
    bool ok = rt_dist_allgather_spans(dist, point(ctx, &sp, sp.param), sp.n, sp.count, e);
    spans_free(&sp);
    return ok;
}

bool rt_zero_gather_moments(RtCtx *ctx, RtDist *dist, const RtSchedule *s, int64_t step, RtError *e)
{
    Spans sp;
    if (!spans_build(ctx->model, s, step, false, &sp, e))
        return false;
    bool ok = rt_dist_allgather_spans(dist, point(ctx, &sp, sp.m), sp.n, sp.count, e) &&
              rt_dist_allgather_spans(dist, point(ctx, &sp, sp.v), sp.n, sp.count, e);
    spans_free(&sp);
    return ok;
}
