/* check_train.c: the train section (§5) with its optimizer and schedule calls. The
 * fields and call arguments, their defaults and bounds come from fields.def; here
 * are the rules between them (seq_len <= context, bf16 on cpu needs AVX512-BF16, the schedule's
 * step counts against train.steps) and the size limit of one step. */
#include <string.h>
#include <sys/stat.h>

#include "checker.h"

/* A call field (optimizer, schedule): its call, else its default (`computed`: the
 * name of a computed default's call), with the dotted overrides (`optimizer.lr =
 * 2e-3`) parsed into *c. Returns the kind (the index of its section among the
 * field's), or -1 after reporting that the value is not one of the calls. */
static int call_of(Ck *ck, Section *sec, const FieldDesc *f, const char *computed, SrcLoc at, Call *c)
{
    Entry *e = ck_field(sec, f->name);
    Entry **ovr;
    int n_ovr = ck_dotted_overrides(ck, sec, f->name, 2, &ovr);
    FieldSection first = FS_COUNT;
    int n_kinds = fe_field_kinds(f, &first);
    const char **kinds = arena_alloc(ck->a, sizeof(char *) * (size_t)(n_kinds + 1));
    for (int k = 0; k < n_kinds; k++)
        kinds[k] = fe_sections[first + k].name;
    const AstExpr *v;
    if (e) {
        v = e->stmt->value;
    } else if (computed) {
        AstExpr *call = fe_expr_new(ck->a, AST_CALL, at);
        call->text = computed;
        v = call;
    } else {
        v = ck_field_default(ck, f, at);
    }
    int kind = -1;
    if (v->kind != AST_CALL || (kind = ck_find(v->text, kinds)) < 0) {
        const char *list = "";
        for (int k = 0; k < n_kinds; k++)
            list = arena_sprintf(ck->a, "%s%s%s(...)", list, k == 0 ? "" : k == n_kinds - 1 ? " or " : ", ", kinds[k]);
        ck_err(ck, v->loc, "'%s' must be %s%s", f->name, list, v->kind == AST_CALL ? ck_suggest(ck, v->text, kinds) : "");
        return -1;
    }
    *c = ck_call_parse(ck, v, arena_sprintf(ck->a, "%s()", v->text), 0,
                       ck_field_names(ck, (FieldSection)(first + kind), false), ovr, n_ovr);
    return kind;
}

/* optimizer = adamw(...) (§5.2). */
static bool check_optimizer(Ck *ck, Section *sec, Spec *spec, SrcLoc train_loc)
{
    SpecOptimizer *o = &spec->train.optimizer;
    const FieldDesc *f = &fe_fields[FIELD_TRAIN_OPTIMIZER];
    FieldRead read[FIELD_COUNT];
    Call c;
    int kind = call_of(ck, sec, f, NULL, train_loc, &c);
    if (kind < 0) { /* the arguments keep their defaults */
        c = (Call){.e = ck_field_default(ck, f, train_loc)};
        ck_read_call(ck, &c, FS_ADAMW, 0, spec, NULL, read);
        return false;
    }
    o->kind = (SpecOptimizerKind)kind;
    o->loc = c.e->loc;
    /* the arguments given are checked even when another one is unknown */
    return ck_read_call(ck, &c, (FieldSection)(FS_ADAMW + kind), 0, spec, NULL, read) && c.ok;
}

static void relora_default(const FieldDesc *f, Spec *spec)
{
    if (f->id == FIELD_RELORA_LR)
        spec->train.schedule.relora_lr = spec->train.optimizer.lr;
}

/* schedule = constant(...) | cosine(...) | relora(...) (§5.3). */
static bool check_schedule(Ck *ck, Section *sec, Spec *spec, SrcLoc train_loc)
{
    SpecTrain *t = &spec->train;
    SpecSchedule *s = &t->schedule;
    const FieldDesc *f = &fe_fields[FIELD_TRAIN_SCHEDULE];
    Call c;
    /* the computed default (fields.def) */
    int kind = call_of(ck, sec, f, spec->adapter.is_present ? "relora" : "cosine", train_loc, &c);
    if (kind < 0 || !c.ok)
        return false;
    s->kind = (SpecScheduleKind)kind;
    s->loc = c.e->loc;
    s->warmup.percent = s->warm_start.percent = s->reset_every.percent = s->restart_warmup.percent = -1;
    s->min_lr_ratio = 1.0; /* constant(): no decay */
    int64_t steps = t->steps;
    FieldRead read[FIELD_COUNT];
    bool ok = ck_read_call(ck, &c, (FieldSection)(FS_CONSTANT + kind), steps, spec, relora_default, read);
    for (int i = 0; i < FIELD_COUNT; i++)
        if ((int)fe_fields[i].section == FS_CONSTANT + kind && read[i] == FR_FAILED)
            return false;
    if (s->warmup.n < 0 || s->warmup.n >= steps) {
        ck_err(ck, ck_kw_loc(&c, "warmup"), "schedule warmup must be in [0, train.steps): warmup = %lld, steps = %lld",
               (long long)s->warmup.n, (long long)steps);
        ok = false;
    }
    if (s->kind != SPEC_SCHED_RELORA)
        return ok;
    if (!spec->adapter.is_present) {
        ck_err(ck, c.e->loc, "schedule = relora(...) needs an adapter: declare 'adapter NAME { rank = ... }'");
        ok = false;
    }
    if (s->warm_start.n < 0 || s->warm_start.n >= steps) {
        ck_err(ck, ck_kw_loc(&c, "warm_start"), "warm_start must be in [0, train.steps): warm_start = %lld, steps = %lld",
               (long long)s->warm_start.n, (long long)steps);
        ok = false;
    }
    SrcLoc l_re = ck_kw_loc(&c, "reset_every");
    if (s->reset_every.n < 1) {
        /* a percentage can round to 0 steps: say so */
        ck_err(ck, l_re, "reset_every must be > 0 (got %lld%s)", (long long)s->reset_every.n,
               s->reset_every.percent >= 0
                   ? arena_sprintf(ck->a, " = %g%% of %lld steps", s->reset_every.percent, (long long)steps)
                   : "");
        ok = false;
    } else if (s->restart_warmup.n < 0 || s->reset_every.n <= s->restart_warmup.n) {
        ck_err(ck, s->restart_warmup.n < 0 ? ck_kw_loc(&c, "restart_warmup") : l_re,
               "reset_every must be greater than restart_warmup: reset_every = %lld, restart_warmup = %lld",
               (long long)s->reset_every.n, (long long)s->restart_warmup.n);
        ok = false;
    }
    if (ok) {
        s->n_resets = (steps - 1 - s->warm_start.n) / s->reset_every.n;
        if (s->n_resets == 0)
            ck_warn(ck, l_re, "no ReLoRA merge will happen: reset_every = %lld but only %lld steps follow the warm start",
                    (long long)s->reset_every.n, (long long)(steps - s->warm_start.n));
    }
    return ok;
}

static void train_default(const FieldDesc *f, Spec *spec)
{
    if (f->id == FIELD_TRAIN_SEQ_LEN)
        spec->train.seq_len = spec->model.context > 0 ? spec->model.context : 1;
    if (f->id == FIELD_TRAIN_MICRO_BATCH)
        spec->train.micro_batch = spec->train.batch;
}

bool ck_train(Ck *ck, const AstItem *item, AstStmt *const *ovr, int n_ovr, Spec *spec)
{
    SpecTrain *t = &spec->train;
    SpecModel *m = &spec->model;
    Section sec = {.what = "train"};
    SrcLoc at = item ? item->loc : (SrcLoc){ck->file->name, 0, 0, 0};
    if (item) {
        t->is_present = true;
        t->loc = item->loc;
        for (int j = 0; j < item->n_body; j++)
            ck_section_add(ck, &sec, item->body[j], 0, false);
    }
    for (int i = 0; i < n_ovr; i++)
        if (!strcmp(ovr[i]->path.parts[0], "train"))
            ck_section_add(ck, &sec, ovr[i], 1, true);
    FieldRead read[FIELD_COUNT];
    bool ok = ck_read_section(ck, &sec, FS_TRAIN, at, spec, train_default, read);
    Entry *e = ck_field(&sec, "seq_len");
    if (e && read[FIELD_TRAIN_SEQ_LEN] != FR_FAILED && m->context > 0 && t->seq_len > m->context) {
        ck_err(ck, e->stmt->value->loc, "seq_len must be <= the model context: seq_len = %lld, context = %lld",
               (long long)t->seq_len, (long long)m->context);
        ok = false;
        read[FIELD_TRAIN_SEQ_LEN] = FR_BOUNDS;
    }
    /* §5.1 micro_batch: the step's batch is cut into batch / micro_batch micro-steps */
    Entry *me = ck_field(&sec, "micro_batch");
    if (me && read[FIELD_TRAIN_MICRO_BATCH] == FR_OK && read[FIELD_TRAIN_BATCH] == FR_OK &&
        (t->micro_batch > t->batch || t->batch % t->micro_batch != 0)) {
        ck_err(ck, me->stmt->value->loc, "micro_batch must divide batch: batch = %lld, micro_batch = %lld",
               (long long)t->batch, (long long)t->micro_batch);
        ok = false;
        read[FIELD_TRAIN_MICRO_BATCH] = FR_BOUNDS;
    }
    if (read[FIELD_TRAIN_MICRO_BATCH] != FR_OK)
        t->micro_batch = t->batch;
    /* the micro-step index (the dropout RNG's counter, docs/ir.md) is a 32-bit integer */
    if (read[FIELD_TRAIN_STEPS] == FR_OK && read[FIELD_TRAIN_MICRO_BATCH] == FR_OK && t->micro_batch > 0 &&
        (double)t->steps * (double)(t->batch / t->micro_batch) >= 0x1p31) {
        Entry *se = ck_field(&sec, "steps");
        ck_err(ck, se ? se->stmt->value->loc : at,
               "too many micro-steps: steps x batch / micro_batch = %.0f must be < 2^31",
               (double)t->steps * (double)(t->batch / t->micro_batch));
        ok = false;
    }
    /* One step's activations (a generous over-estimate, in doubles so it cannot
     * overflow) must stay far below anything a machine holds: this bounds every
     * size product the report, the lowering and the kernels compute. */
    double acts = (double)m->layers * (double)t->batch * (double)t->seq_len *
                  ((double)m->dim * 16.0 + (double)m->heads * (double)t->seq_len * 2.0 + (double)m->vocab);
    if (ck->model_ok && read[FIELD_TRAIN_BATCH] == FR_OK && read[FIELD_TRAIN_SEQ_LEN] == FR_OK && acts > 0x1p44) {
        Entry *be = ck_field(&sec, "batch");
        ck_err(ck, be ? be->stmt->value->loc : at,
               "the run is too large: one step's activations would be about %.3g elements (the limit is 2^44); "
               "lower batch, seq_len or the model size",
               acts);
        ok = false;
    }
    ok = check_optimizer(ck, &sec, spec, at) && ok;
    Entry *pe = ck_field(&sec, "precision");
    /* §5 precision: bf16 GEMMs on the CPU run on AVX512-BF16 (runtime/gemm_bf16.c) */
    if (t->precision == SPEC_BF16 && t->target == SPEC_TARGET_CPU && !(ck->opt && ck->opt->cpu_has_bf16)) {
        const char *cpu = ck->opt && ck->opt->cpu_name ? ck->opt->cpu_name : "the target CPU";
        ck_err(ck, pe->stmt->value->loc,
               "precision = bf16 on target = cpu needs a CPU with AVX512-BF16 (avx512_bf16), which %s lacks; "
               "use precision = fp32, target = cuda, or a --cpu that has it (cooperlake, sapphirerapids, znver4...)",
               cpu);
        ok = false;
    }
    if (read[FIELD_TRAIN_STEPS] == FR_OK) {
        ok = check_schedule(ck, &sec, spec, at) && ok;
    } else {
        Entry **unused;
        ck_dotted_overrides(ck, &sec, "schedule", 2, &unused);
        (void)ck_field(&sec, "schedule");
    }
    ck_unknown_fields(ck, &sec, FS_TRAIN);
    if (t->data.kind == SPEC_DATA_TEXT && m->vocab > 0 && m->vocab < 256) {
        ck_err(ck, t->data.loc, "text() data is byte-level and needs vocab >= 256 (model '%s' has vocab = %lld)",
               m->name, (long long)m->vocab);
        ok = false;
    }
    /* like a data file: it must be there when training (the trainer checks what it holds) */
    Entry *ie = ck_field(&sec, "init_from");
    if (t->init_from && ie) {
        struct stat st;
        bool is_dir = stat(t->init_from, &st) == 0 && S_ISDIR(st.st_mode);
        if (!is_dir && ck->opt && ck->opt->is_training) {
            ck_err(ck, ie->stmt->value->loc, "init_from directory '%s' not found", t->init_from);
            ok = false;
        } else if (!is_dir) {
            ck_warn(ck, ie->stmt->value->loc, "init_from directory '%s' not found (it must exist when training)",
                    t->init_from);
        }
    }
    /* ids >= what the file's token type holds never occur: their embedding and head rows
     * would never train (docs/runtime.md "Data") */
    const SpecData *files[2] = {&t->data, &t->val_data};
    for (int i = 0; i < 2; i++) {
        const SpecData *d = files[i];
        if (d->kind != SPEC_DATA_TEXT && d->kind != SPEC_DATA_NONE && d->id_limit > 0 && m->vocab > d->id_limit) {
            ck_err(ck, d->loc,
                   "model '%s' has vocab = %lld, but '%s' holds %s: ids 0..%lld, so ids from %lld up never occur; "
                   "use vocab <= %lld or a file of uint32 tokens",
                   m->name, (long long)m->vocab, d->path, d->format, (long long)d->id_limit - 1,
                   (long long)d->id_limit, (long long)d->id_limit);
            ok = false;
        }
    }
    if (m->n_params > 0)
        ok = ck_groups(ck, m, "no_decay", &t->optimizer.no_decay, fe_fields[FIELD_ADAMW_NO_DECAY].words) && ok;
    for (int i = 0; i < m->n_params; i++) {
        SpecParam *p = &m->params[i];
        bool nd = false;
        for (int k = 0; k < t->optimizer.no_decay.n; k++)
            nd = nd || (t->optimizer.no_decay.items[k] && ck_group_selects(t->optimizer.no_decay.items[k], p));
        p->has_decay = !nd;
        p->init_std = m->init_std;
    }
    return ok;
}
