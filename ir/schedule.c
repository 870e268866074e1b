/* The training schedule as the compiler sees it: read from the module's attributes (the
 * values a trainer starts from and may override), the learning rate of each step, and the
 * step policy (which functions run at a step, docs/ir.md "Step policy"). The same policy
 * and formula are written again, independently, in runtime/step.c for trainers; tests
 * pin both to values computed by hand, so each stays a check of the other.
 * ir_interp_train_step runs one step in the reference executor by this policy, micro-steps
 * included (gradient accumulation), written apart from runtime/step.c's loop. */
#include <math.h>
#include <string.h>

#include "ir.h"

static const char *const kind_names[] = {"constant", "cosine", "relora"};

const char *ir_sched_kind_name(IrSchedKind k)
{
    return (unsigned)k <= IR_SCHED_RELORA ? kind_names[k] : "?";
}

static bool need_attr(const IrModule *m, Diags *d, const char *key, IrAttrKind kind, const IrAttr **out)
{
    const IrAttr *a = ir_attrs_get(&m->attrs, key);
    bool ok = a && (a->kind == kind || (kind == IR_ATTR_FLOAT && a->kind == IR_ATTR_INT));
    if (!ok)
        diag_error(d, srcloc_none(), "module @%s: missing %s attribute '%s' (the schedule has no default of its own)",
                   m->name, kind == IR_ATTR_STR ? "string" : kind == IR_ATTR_INT ? "integer" : "numeric", key);
    *out = a;
    return ok;
}

static bool int_attr(const IrModule *m, Diags *d, const char *key, int64_t *v)
{
    const IrAttr *a;
    if (!need_attr(m, d, key, IR_ATTR_INT, &a))
        return false;
    *v = a->i;
    return true;
}

static bool num_attr(const IrModule *m, Diags *d, const char *key, double *v)
{
    const IrAttr *a;
    if (!need_attr(m, d, key, IR_ATTR_FLOAT, &a))
        return false;
    *v = a->kind == IR_ATTR_INT ? (double)a->i : a->f;
    return true;
}

/* `key`_percent when the spec gave the field as a percentage of train.steps, else -1. */
static double percent_attr(const IrModule *m, const char *key)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%s_percent", key);
    const IrAttr *a = ir_attrs_get(&m->attrs, buf);
    if (!a || (a->kind != IR_ATTR_FLOAT && a->kind != IR_ATTR_INT))
        return -1;
    return a->kind == IR_ATTR_INT ? (double)a->i : a->f;
}

bool ir_schedule_from_module(const IrModule *m, IrSchedule *s, Diags *d)
{
    memset(s, 0, sizeof *s);
    s->warmup_pct = s->warm_start_pct = s->reset_every_pct = s->restart_warmup_pct = -1;
    const IrAttr *kind;
    bool ok = need_attr(m, d, "schedule.kind", IR_ATTR_STR, &kind);
    if (ok) {
        int k = -1;
        for (int i = 0; i <= IR_SCHED_RELORA; i++)
            if (strcmp(kind->s, kind_names[i]) == 0)
                k = i;
        if (k < 0) {
            diag_error(d, srcloc_none(), "module @%s: schedule.kind must be \"constant\", \"cosine\" or \"relora\" (got \"%s\")",
                       m->name, kind->s);
            ok = false;
        }
        s->kind = (IrSchedKind)(k < 0 ? 0 : k);
    }
    ok = int_attr(m, d, "train.steps", &s->steps) && ok;
    ok = int_attr(m, d, "schedule.warmup", &s->warmup) && ok;
    ok = num_attr(m, d, "optim.lr", &s->lr) && ok;
    if (ok && s->kind != IR_SCHED_CONSTANT) /* a constant schedule has no floor */
        ok = num_attr(m, d, "schedule.min_lr_ratio", &s->min_lr_ratio);
    s->relora_lr = s->lr;
    s->warmup_pct = percent_attr(m, "schedule.warmup");
    if (ok && s->kind == IR_SCHED_RELORA) {
        ok = int_attr(m, d, "relora.warm_start", &s->warm_start) && ok;
        ok = int_attr(m, d, "relora.reset_every", &s->reset_every) && ok;
        ok = int_attr(m, d, "relora.restart_warmup", &s->restart_warmup) && ok;
        ok = num_attr(m, d, "relora.prune", &s->prune) && ok;
        ok = num_attr(m, d, "relora.lr", &s->relora_lr) && ok;
        s->warm_start_pct = percent_attr(m, "relora.warm_start");
        s->reset_every_pct = percent_attr(m, "relora.reset_every");
        s->restart_warmup_pct = percent_attr(m, "relora.restart_warmup");
    }
    if (!ok)
        return false;
    char why[160];
    if (!ir_schedule_check(s, why, sizeof why)) {
        diag_error(d, srcloc_none(), "module @%s: %s", m->name, why);
        return false;
    }
    return true;
}

/* docs/language.md §5.3, the rules the checker applies to the spec. */
bool ir_schedule_check(const IrSchedule *s, char *why, size_t n)
{
#define BAD(...) return snprintf(why, n, __VA_ARGS__), false
    if (s->steps < 1)
        BAD("steps must be >= 1 (got %lld)", (long long)s->steps);
    if (s->warmup < 0 || s->warmup >= s->steps)
        BAD("warmup must be in [0, steps) = [0, %lld) (got %lld)", (long long)s->steps, (long long)s->warmup);
    if (!(s->lr > 0) || !isfinite(s->lr))
        BAD("lr must be > 0 (got %g)", s->lr);
    if (!(s->min_lr_ratio >= 0 && s->min_lr_ratio <= 1))
        BAD("min_lr_ratio must be in [0, 1] (got %g)", s->min_lr_ratio);
    if (s->kind != IR_SCHED_RELORA)
        return true;
    if (s->warm_start < 0 || s->warm_start >= s->steps)
        BAD("warm_start must be in [0, steps) = [0, %lld) (got %lld)", (long long)s->steps,
            (long long)s->warm_start);
    if (s->reset_every < 1)
        BAD("reset_every must be > 0 (got %lld)", (long long)s->reset_every);
    if (s->restart_warmup < 0 || s->restart_warmup >= s->reset_every)
        BAD("restart_warmup must be in [0, reset_every) = [0, %lld) (got %lld)", (long long)s->reset_every,
            (long long)s->restart_warmup);
    if (!(s->relora_lr > 0) || !isfinite(s->relora_lr))
        BAD("relora lr must be > 0 (got %g)", s->relora_lr);
    if (!(s->prune >= 0 && s->prune < 1))
        BAD("prune must be in [0, 1) (got %g)", s->prune);
    return true;
#undef BAD
}

/* The multiplier of the global schedule at step u (docs/ir.md "Learning rate"):
 * u/W during warmup, then constant 1 or the cosine from 1 down to m at step N. */
static double base(const IrSchedule *s, double u)
{
    double W = (double)s->warmup, N = (double)s->steps, m = s->min_lr_ratio;
    if (u < W)
        return u / W;
    if (s->kind == IR_SCHED_CONSTANT)
        return 1.0;
    if (u > N)
        u = N;
    return m + (1.0 - m) * 0.5 * (1.0 + cos(M_PI * (u - W) / (N - W)));
}

/* The step at which the current ReLoRA ramp began (the switch or the latest reset), or -1
 * when step is not in a ramp's reach (full-rank phase, or ReLoRA without a restart yet). */
static int64_t restart_at(const IrSchedule *s, int64_t step)
{
    if (s->kind != IR_SCHED_RELORA || step < s->warm_start)
        return -1;
    int64_t k = (step - s->warm_start) / s->reset_every;
    if (k == 0 && s->warm_start == 0)
        return -1;
    return s->warm_start + k * s->reset_every;
}

double ir_schedule_lr(const IrSchedule *s, int64_t step)
{
    bool lora = s->kind == IR_SCHED_RELORA && step >= s->warm_start;
    double peak = lora ? s->relora_lr : s->lr;
    int64_t r = restart_at(s, step);
    if (r >= 0 && step - r < s->restart_warmup)
        return peak * ((double)(step - r) / (double)s->restart_warmup) * base(s, (double)(r + s->restart_warmup));
    return peak * base(s, (double)step);
}

IrStepPlan ir_schedule_plan(const IrSchedule *s, int64_t step)
{
    IrStepPlan p = {0};
    bool relora = s->kind == IR_SCHED_RELORA;
    p.lora = relora && step >= s->warm_start;
    p.switch_before = relora && s->warm_start > 0 && step == s->warm_start;
    int64_t t = step - s->warm_start;
    p.reset_after = p.lora && t >= s->reset_every && t % s->reset_every == 0;
    p.adam_t = p.lora ? t + 1 : step + 1;
    p.lr = ir_schedule_lr(s, step);
    return p;
}

/* ---- the reference host ---- */

static void set_scalar(IrInterp *it, const IrModule *m, const char *name, double v)
{
    const IrGlobal *g = ir_global_find(m, name);
    if (g)
        ir_interp_global(it, g)[0] = v;
}

static double run_named(IrInterp *it, const IrModule *m, const char *name)
{
    const IrFunc *f = ir_func_find(m, name);
    IR_ASSERT(f);
    return ir_interp_run(it, f);
}

/* k, the micro-steps of a step: batch / train.micro_batch (1 without the attributes). */
static int64_t micro_steps(const IrModule *m)
{
    int64_t batch = ir_attrs_int(&m->attrs, "batch", 0), micro = ir_attrs_int(&m->attrs, "train.micro_batch", batch);
    return micro > 0 && batch > micro && batch % micro == 0 ? batch / micro : 1;
}

/* Copies n ints into the global `name` (when the module has it). */
static void set_ints(IrInterp *it, const IrModule *m, const char *name, const int32_t *v, int64_t n)
{
    const IrGlobal *g = ir_global_find(m, name);
    if (!g)
        return;
    double *d = ir_interp_global(it, g);
    int64_t have = ir_type_numel(g->type);
    for (int64_t i = 0; i < n && i < have; i++)
        d[i] = v[i];
}

bool ir_interp_train_step(IrInterp *it, const IrModule *m, const IrSchedule *s, const int32_t *x, const int32_t *y,
                          int64_t step, IrStepResult *r)
{
    IrStepPlan p = ir_schedule_plan(s, step);
    memset(r, 0, sizeof *r);
    r->lr = p.lr;
    set_scalar(it, m, "step", (double)step);
    set_scalar(it, m, "lr", p.lr);
    set_scalar(it, m, "adam_t", (double)p.adam_t);
    set_scalar(it, m, "prune_fraction", s->prune);
    if (p.switch_before) {
        run_named(it, m, "switch");
        r->switched = true;
    }
    const char *phase = p.lora ? "lora" : "full";
    char name[32];
    snprintf(name, sizeof name, "train_%s", phase);
    const IrFunc *train = ir_func_find(m, name);
    IR_ASSERT(train);
    /* k micro-steps over consecutive rows; each adds 1/k of its gradient to the stored
     * ones, which start at zero (every gradient the function stores) */
    int64_t k = micro_steps(m);
    const IrGlobal *tok = ir_global_find(m, "tokens");
    int64_t rows = tok ? ir_type_numel(tok->type) : 0;
    if (k > 1)
        for (int i = 0; i < train->n_nodes; i++) {
            const IrNode *n = train->nodes[i];
            if (n->op == IR_OP_STORE && n->gl[0]->cls == IR_CLASS_GRAD)
                memset(ir_interp_global(it, n->gl[0]), 0, sizeof(double) * (size_t)ir_type_numel(n->gl[0]->type));
        }
    r->loss = 0;
    for (int64_t j = 0; j < k; j++) {
        set_ints(it, m, "tokens", x + j * rows, rows);
        set_ints(it, m, "targets", y + j * rows, rows);
        set_scalar(it, m, "micro_step", (double)(step * k + j));
        r->loss += ir_interp_run(it, train);
    }
    r->loss /= (double)k;
    snprintf(name, sizeof name, "norm_%s", phase);
    r->grad_norm = run_named(it, m, name);
    if (!isfinite(r->loss) || !isfinite(r->grad_norm))
        return false;
    snprintf(name, sizeof name, "update_%s", phase);
    run_named(it, m, name);
    if (p.reset_after) {
        run_named(it, m, "relora_reset");
        r->reset = true;
    }
    return true;
}
