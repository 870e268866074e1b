/* report.c: parameter, FLOP and memory accounting for `relorac check` (formulas in
 * docs/language.md §7), printed as a table or as JSON. Everything is exact integer
 * arithmetic on the Spec, so the numbers can be checked by hand. */
#include "report.h"

#include <string.h>

#include "fields.h"

static void add_row(FeReport *r, FeModuleRow row)
{
    r->rows[r->n_rows++] = row;
}

/* Saved activation elements per token of one layer (see §7.3): every module's output;
 * inside attention q, k, v, the output before o and the rows' log-sum-exp (the fused
 * attention keeps no [T, T] probabilities); inside swiglu/geglu gate, up, act(gate) and
 * the product; in the ReLoRA phase A x per adapted linear. `selective` recomputes the
 * cheap ones instead of keeping them: the norms' outputs and the GLU's act and product. */
static int64_t layer_activations(const SpecModel *m, bool relora, bool selective)
{
    int64_t per_token = 0;
    for (int i = 0; i < m->block.n_modules; i++) {
        const SpecModule *mod = m->block.modules[i];
        bool is_norm = mod->kind == SPEC_MOD_RMSNORM || mod->kind == SPEC_MOD_LAYERNORM;
        if (!(selective && is_norm))
            per_token += mod->out_dim;
        switch (mod->kind) {
        case SPEC_MOD_ATTENTION:
            per_token += (mod->heads + 2 * mod->kv_heads) * mod->head_dim; /* q, k, v */
            per_token += mod->heads * mod->head_dim;                       /* attention output before o */
            per_token += mod->heads;                                       /* log-sum-exp of each row */
            break;
        case SPEC_MOD_SWIGLU:
        case SPEC_MOD_GEGLU: per_token += (selective ? 2 : 4) * mod->hidden; break; /* gate, up (act, product) */
        default: break;
        }
        if (relora)
            for (int j = 0; j < mod->n_linears; j++)
                if (mod->linears[j].is_adapted)
                    per_token += mod->linears[j].rank; /* A x */
    }
    return per_token;
}

/* Elementwise nodes (add, mul, scale, act) also save their output. */
static int64_t count_elementwise(const SpecNode *n, char *seen)
{
    if (!n || seen[n->id])
        return 0;
    seen[n->id] = 1;
    int64_t c = 0;
    if (n->kind == SPEC_NODE_ADD || n->kind == SPEC_NODE_MUL || n->kind == SPEC_NODE_SCALE || n->kind == SPEC_NODE_ACT)
        c += n->dim;
    return c + count_elementwise(n->a, seen) + count_elementwise(n->b, seen);
}

void fe_report_compute(Arena *a, const Spec *s, FeReport *r)
{
    const SpecModel *m = &s->model;
    memset(r, 0, sizeof *r);
    r->has_relora = s->adapter.is_present && s->train.schedule.kind == SPEC_SCHED_RELORA;
    r->rows = arena_alloc(a, sizeof(FeModuleRow) * (size_t)(m->block.n_modules + 6));
    int64_t L = m->layers;
    for (int i = 0; i < m->n_params; i++) {
        const SpecParam *p = &m->params[i];
        int64_t tot = spec_param_total(m, p);
        r->total += tot;
        if (r->has_relora) {
            if (p->is_trainable_relora)
                r->trainable_base += tot;
            else
                r->frozen_relora += tot;
        }
    }
    /* Rows: globals and modules, in parameter order. */
    for (int i = 0; i < m->n_params; i++) {
        const SpecParam *p = &m->params[i];
        if (p->is_per_layer)
            continue;
        const char *name = p->role == SPEC_PARAM_EMBEDDING ? "embedding"
                           : p->role == SPEC_PARAM_POSITIONS ? "positions"
                           : p->role == SPEC_PARAM_HEAD      ? "head"
                                                             : "norm";
        if (p->role == SPEC_PARAM_NORM_BIAS) { /* folded into the norm row */
            FeModuleRow *row = &r->rows[r->n_rows - 1];
            row->total += p->numel;
            if (r->has_relora)
                *(p->is_trainable_relora ? &row->trainable : &row->frozen) += p->numel;
            continue;
        }
        if (p->role == SPEC_PARAM_NORM) {
            /* The block modules come before the final norm. */
            for (int j = 0; j < m->block.n_modules; j++) {
                const SpecModule *mod = m->block.modules[j];
                FeModuleRow row = {mod->name, spec_module_kind_name(mod->kind), true, 0, 0, 0, 0, 0};
                for (int k = 0; k < mod->n_params; k++) {
                    const SpecParam *q = mod->params[k];
                    row.per_layer += q->numel;
                    row.total += q->numel * L;
                    if (r->has_relora)
                        *(q->is_trainable_relora ? &row.trainable : &row.frozen) += q->numel * L;
                }
                if (r->has_relora)
                    for (int k = 0; k < mod->n_linears; k++)
                        if (mod->linears[k].is_adapted)
                            row.lora += mod->linears[k].rank * (mod->linears[k].in + mod->linears[k].out) * L;
                add_row(r, row);
            }
        }
        FeModuleRow row = {name,
                           p->role == SPEC_PARAM_NORM ? (m->norm == SPEC_NORM_RMSNORM ? "rmsnorm" : "layernorm") : name,
                           false, 0, p->numel, 0, 0, 0};
        if (r->has_relora)
            *(p->is_trainable_relora ? &row.trainable : &row.frozen) += p->numel;
        add_row(r, row);
    }
    if (r->has_relora)
        for (int i = 0; i < m->n_linears; i++) {
            const SpecLinear *l = m->linears[i];
            if (l->is_adapted) {
                r->lora += l->rank * (l->in + l->out) * L;
                r->adapted_per_layer++;
            }
        }
    r->trainable_relora = r->trainable_base + r->lora;

    /* FLOPs per token (§7.2). */
    int64_t T = s->train.seq_len;
    r->mm_params = m->vocab * m->dim; /* the head matmul, tied or not */
    bool head_trainable = false;
    for (int i = 0; i < m->n_params; i++) {
        const SpecParam *p = &m->params[i];
        if (p->role == SPEC_PARAM_HEAD || (m->tied && p->role == SPEC_PARAM_EMBEDDING))
            head_trainable = p->is_trainable_relora;
    }
    if (r->has_relora && !head_trainable)
        r->mm_frozen += m->vocab * m->dim;
    for (int i = 0; i < m->n_linears; i++) {
        const SpecLinear *l = m->linears[i];
        r->mm_params += l->in * l->out * L;
        if (r->has_relora && !l->weight->is_trainable_relora)
            r->mm_frozen += l->in * l->out * L;
    }
    for (int i = 0; i < m->block.n_modules; i++) {
        const SpecModule *mod = m->block.modules[i];
        if (mod->kind == SPEC_MOD_ATTENTION)
            r->attn_flops += 12 * mod->heads * mod->head_dim * T * L;
    }
    r->flops_full = 6 * r->mm_params + r->attn_flops;
    r->flops_relora = 6 * (r->mm_params - r->mm_frozen) + 4 * r->mm_frozen + 6 * r->lora + r->attn_flops;

    /* Memory (§7.3). */
    char *seen = arena_alloc(a, (size_t)m->block.n_nodes + 1);
    int64_t elementwise = count_elementwise(m->block.ret, seen);
    int64_t B = s->train.micro_batch; /* one micro-step's activations are live at a time */
    /* Embedding output, final norm output, the head's input gradient (computed with the
     * chunked loss and held for the backward) and one chunk of logits (N C / V rows of V:
     * dim per token); the [N, V] logits are never held whole. */
    int64_t global = 4 * m->dim;
    SpecRecompute level = s->train.recompute;
    int64_t adapted_w = 0; /* elements of the adapted W: their bf16 copies persist */
    for (int i = 0; r->has_relora && i < m->n_linears; i++)
        if (m->linears[i]->is_adapted)
            adapted_w += m->linears[i]->in * m->linears[i]->out * L;
    for (int ph = 0; ph < FE_N_PHASES; ph++) {
        if (ph == FE_PHASE_RELORA && !r->has_relora)
            continue;
        bool relora = ph == FE_PHASE_RELORA;
        int64_t kept; /* per token, all layers */
        if (level == SPEC_RECOMPUTE_FULL) /* each block's input, and one block's values while it is re-run */
            kept = L * m->dim + layer_activations(m, relora, false) + elementwise;
        else
            kept = L * (layer_activations(m, relora, level == SPEC_RECOMPUTE_SELECTIVE) + elementwise);
        r->act_elems[ph] = B * T * (kept + global);
        int64_t weights = ph == FE_PHASE_FULL ? r->total : r->total + r->lora;
        int64_t trainable = ph == FE_PHASE_FULL ? r->total : r->trainable_relora;
        for (int pr = 0; pr < FE_N_PRECS; pr++) {
            /* the precision policy (ir/kprecision.c): every tensor f32; under bf16 each
             * adapted W also keeps a bf16 copy for the whole run (the bf16 copies of the
             * activations a GEMM reads are not counted, like other temporaries) */
            bool bf16 = pr == FE_PREC_BF16;
            FeMemory *mm = &r->mem[ph][pr];
            mm->weights = weights * 4 + (bf16 ? adapted_w * 2 : 0);
            mm->grads = trainable * 4;
            mm->optimizer = 2 * trainable * 4;
            mm->activations = r->act_elems[ph] * 4;
            mm->total = mm->weights + mm->grads + mm->optimizer + mm->activations;
        }
    }
}

/* 1234567 -> "1,234,567" */
static const char *commas(char *buf, int64_t v)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)(v < 0 ? -v : v));
    size_t n = strlen(tmp), j = 0;
    if (v < 0)
        buf[j++] = '-';
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[j++] = ',';
        buf[j++] = tmp[i];
    }
    buf[j] = '\0';
    return buf;
}

static const char *mib(char *buf, int64_t bytes)
{
    char tmp[40];
    int64_t tenths = (bytes * 10 + 524288) / 1048576; /* rounded to 0.1 MiB */
    snprintf(buf, 48, "%s.%lld MiB", commas(tmp, tenths / 10), (long long)(tenths % 10));
    return buf;
}

static double pct(int64_t part, int64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* The planned pools, per class: each phase's own need, and what the binary allocates.
 * Values (activations and temporaries) are planned in the scratch pool; planned
 * phase-aware, the gradients and moments only one phase uses live there too, the two
 * phases sharing bytes (docs/passes.md, memplan). The activation class has no buffers. */
static void print_plan(FILE *out, const FeReport *r)
{
    char b1[48], b2[48], b3[48];
    fprintf(out, "\nplanned memory (memplan; bytes of each pool, fp32):\n");
    fprintf(out, "  %-12s %16s %16s %16s\n", "class", "full-rank phase", "ReLoRA phase", "program");
    int64_t tot[FE_N_PHASES] = {0}, tot_p = 0;
    for (int c = 0; c < IR_CLASS_COUNT; c++) {
        for (int ph = 0; ph < FE_N_PHASES; ph++)
            tot[ph] += r->plan_phase[ph][c];
        tot_p += r->plan_program[c];
        if (c == IR_CLASS_ACTIVATION)
            continue;
        fprintf(out, "  %-12s %16s %16s %16s\n", ir_class_name((IrMemClass)c),
                r->plan_has_phase[FE_PHASE_FULL] ? mib(b1, r->plan_phase[FE_PHASE_FULL][c]) : "-",
                r->plan_has_phase[FE_PHASE_RELORA] ? mib(b2, r->plan_phase[FE_PHASE_RELORA][c]) : "-",
                mib(b3, r->plan_program[c]));
    }
    fprintf(out, "  %-12s %16s %16s %16s\n", "total", r->plan_has_phase[FE_PHASE_FULL] ? mib(b1, tot[FE_PHASE_FULL]) : "-",
            r->plan_has_phase[FE_PHASE_RELORA] ? mib(b2, tot[FE_PHASE_RELORA]) : "-", mib(b3, tot_p));
    fprintf(out, "  (scratch: activations and temporaries%s)\n",
            r->plan_has_phase[FE_PHASE_FULL] && r->plan_has_phase[FE_PHASE_RELORA]
                ? "; the program's also holds the gradients and moments of one phase,\n"
                  "   those of the full-rank and of the ReLoRA phase over the same bytes"
                : "");
}

/* The planned peak of the spec with each memory setting changed alone (rows the driver
 * fills): what fits the machine, and what recomputation costs. */
static void print_plan_settings(FILE *out, const FeReport *r)
{
    char b1[48], b2[48], b3[48], label[96];
    fprintf(out, "\nplanned peak by setting (fp32; * = this spec's; recomputation's extra FLOPs per token, %% of\n"
                 "the phase's):\n");
    fprintf(out, "  %-30s %15s %15s %15s  %s\n", "setting", "full-rank phase", "ReLoRA phase", "program",
            "extra FLOPs");
    for (int i = 0; i < r->n_plan_rows; i++) {
        const FePlanRow *row = &r->plan_rows[i];
        snprintf(label, sizeof label, "%s = %s%s", row->setting, row->value, row->is_spec ? " *" : "");
        if (!row->ok) {
            fprintf(out, "  %-30s %15s\n", label, "(does not compile)");
            continue;
        }
        fprintf(out, "  %-30s %15s %15s %15s", label,
                row->has_phase[FE_PHASE_FULL] ? mib(b1, row->phase_total[FE_PHASE_FULL]) : "-",
                row->has_phase[FE_PHASE_RELORA] ? mib(b2, row->phase_total[FE_PHASE_RELORA]) : "-",
                mib(b3, row->program));
        const int64_t base[FE_N_PHASES] = {r->flops_full, r->flops_relora};
        bool any = false;
        for (int ph = 0; ph < FE_N_PHASES; ph++) {
            if (!row->has_phase[ph] || row->extra_flops[ph] <= 0)
                continue;
            double p = pct((int64_t)(row->extra_flops[ph] + 0.5), base[ph]);
            fprintf(out, p < 1 ? "%s%s +%.2f%%" : "%s%s +%.1f%%", any ? "," : " ",
                    ph == FE_PHASE_FULL ? " full-rank" : " ReLoRA", p);
            any = true;
        }
        fprintf(out, "\n");
    }
}

/* ---- the fields (fields.def), resolved --------------------------------------------- */

static bool section_used(const Spec *s, FieldSection fs)
{
    if (fs == FS_ADAPTER)
        return s->adapter.is_present;
    const FieldSectionDesc *sec = &fe_sections[fs];
    if (sec->parent == FIELD_NONE)
        return true;
    const FieldDesc *call = &fe_fields[sec->parent];
    FieldSection first = FS_COUNT;
    fe_field_kinds(call, &first);
    return (int)fs == (int)first + *(const int *)fe_field_value(s, call);
}

/* A field's value as a spec writes it (0.02, fp32, "dir", text("f"), ["a", "b"],
 * (0.9, 0.999), none); a step count given in percent also shows the percentage. */
static const char *value_text(Arena *a, const Spec *s, const FieldDesc *f)
{
    const void *v = fe_field_value(s, f);
    switch (f->type) {
    case FT_INT: return arena_sprintf(a, "%lld", (long long)*(const int64_t *)v);
    case FT_STEPS: {
        const SpecSteps *st = v;
        if (st->percent >= 0)
            return arena_sprintf(a, "%lld (%g%%)", (long long)st->n, st->percent);
        return arena_sprintf(a, "%lld", (long long)st->n);
    }
    case FT_NUM: return arena_sprintf(a, "%g", *(const double *)v);
    case FT_BOOL: return *(const bool *)v ? "true" : "false";
    case FT_WORD: return f->words[*(const int *)v];
    case FT_STR: return *(const char *const *)v ? arena_sprintf(a, "\"%s\"", *(const char *const *)v) : "none";
    case FT_NAMES: {
        const SpecNames *n = v;
        const char *t = "[";
        for (int i = 0; i < n->n; i++)
            t = arena_sprintf(a, "%s%s\"%s\"", t, i ? ", " : "", n->items[i]);
        return arena_sprintf(a, "%s]", t);
    }
    case FT_DATA: {
        const SpecData *d = v;
        if (d->kind == SPEC_DATA_NONE)
            return "none";
        return arena_sprintf(a, "%s(\"%s\")", f->words[d->kind - SPEC_DATA_TEXT], d->path);
    }
    case FT_PAIR: return arena_sprintf(a, "(%g, %g)", ((const double *)v)[0], ((const double *)v)[1]);
    case FT_CALL: {
        FieldSection first = FS_COUNT;
        fe_field_kinds(f, &first);
        return fe_sections[first + *(const int *)v].name;
    }
    case FT_BLOCK: break;
    }
    return "";
}

/* Prints `label     prefix a = 1, b = 2, ...` wrapped at 110 columns. */
static void print_fields(FILE *out, Arena *a, const Spec *s, const char *label, const char *prefix, FieldSection fs)
{
    int col = fprintf(out, "  %-10s%s", label, prefix);
    bool first = true;
    for (int i = 0; i < FIELD_COUNT; i++) {
        const FieldDesc *f = &fe_fields[i];
        if (f->section != fs || f->type == FT_BLOCK || f->type == FT_CALL)
            continue;
        const char *item = arena_sprintf(a, "%s = %s", f->name, value_text(a, s, f));
        if (!first && col + 2 + (int)strlen(item) > 110) {
            fprintf(out, ",\n%12s", "");
            col = 12;
        } else if (!first) {
            col += fprintf(out, ", ");
        }
        col += fprintf(out, "%s", item);
        first = false;
    }
    fprintf(out, "\n");
}

/* Every field of every section the spec uses, defaults filled in. */
static void print_settings(FILE *out, const Spec *s)
{
    Arena a;
    arena_init(&a);
    fprintf(out, "\nsettings (defaults filled in):\n");
    for (int fs = 0; fs < FS_COUNT; fs++) {
        if (!section_used(s, (FieldSection)fs))
            continue;
        const FieldSectionDesc *sec = &fe_sections[fs];
        if (sec->parent == FIELD_NONE)
            print_fields(out, &a, s, sec->name, "", (FieldSection)fs);
        else
            print_fields(out, &a, s, fe_fields[sec->parent].name, arena_sprintf(&a, "%s: ", sec->name),
                         (FieldSection)fs);
    }
    arena_fini(&a);
}

void fe_report_print(FILE *out, const Spec *s, const FeReport *r)
{
    const SpecModel *m = &s->model;
    const SpecTrain *t = &s->train;
    const SpecSchedule *sc = &t->schedule;
    char b1[48], b2[48], b3[48], b4[48], b5[48];
    fprintf(out, "model %s", m->name);
    if (m->parent)
        fprintf(out, " (variant of %s)", m->parent);
    fprintf(out, ": %lld layers, dim %lld, heads %lld, kv_heads %lld, vocab %lld, context %lld\n", (long long)m->layers,
            (long long)m->dim, (long long)m->heads, (long long)m->kv_heads, (long long)m->vocab, (long long)m->context);
    fprintf(out, "  norm %s, positions %s, %s head, block modules:", m->norm == SPEC_NORM_RMSNORM ? "rmsnorm" : "layernorm",
            m->positions == SPEC_POS_LEARNED ? "learned" : "none", m->tied ? "tied" : "untied");
    for (int i = 0; i < m->block.n_modules; i++)
        fprintf(out, " %s", m->block.modules[i]->name);
    fprintf(out, "\n");
    if (s->adapter.is_present) {
        fprintf(out, "adapter %s: rank %lld, alpha %g (scale %g), dropout %g, %lld adapted linears per layer:",
                s->adapter.name, (long long)s->adapter.rank, s->adapter.alpha, s->adapter.scaling, s->adapter.dropout,
                (long long)r->adapted_per_layer);
        for (int i = 0; i < m->n_linears; i++)
            if (m->linears[i]->is_adapted)
                fprintf(out, " %s", m->linears[i]->full_name);
        fprintf(out, "\n");
    }
    fprintf(out, "train: %s steps x batch %lld x seq_len %lld = %s tokens, adamw lr %g, %s on %s\n",
            commas(b1, t->steps), (long long)t->batch, (long long)t->seq_len, commas(b2, t->steps * t->batch * t->seq_len),
            t->optimizer.lr, t->precision == SPEC_BF16 ? "bf16" : "fp32", t->target == SPEC_TARGET_CUDA ? "cuda" : "cpu");
    if (sc->kind == SPEC_SCHED_RELORA)
        fprintf(out,
                "schedule relora: warmup %lld, warm start %lld full-rank steps, then lr %g; merge + reset every %lld "
                "(%lld merges), restart warmup %lld, prune %g (%s), min_lr_ratio %g\n",
                (long long)sc->warmup.n, (long long)sc->warm_start.n, sc->relora_lr, (long long)sc->reset_every.n,
                (long long)sc->n_resets, (long long)sc->restart_warmup.n, sc->prune,
                sc->reset == SPEC_RESET_MAGNITUDE ? "magnitude" : "random", sc->min_lr_ratio);
    else if (sc->kind == SPEC_SCHED_COSINE)
        fprintf(out, "schedule cosine: warmup %lld, min_lr_ratio %g\n", (long long)sc->warmup.n, sc->min_lr_ratio);
    else
        fprintf(out, "schedule constant: warmup %lld\n", (long long)sc->warmup.n);
    print_settings(out, s);

    fprintf(out, "\n");
    if (r->has_relora)
        fprintf(out, "%-14s %-10s %13s %15s %15s %15s %13s\n", "parameters", "kind", "per layer", "total",
                "relora frozen", "trainable", "lora");
    else
        fprintf(out, "%-14s %-10s %13s %15s\n", "parameters", "kind", "per layer", "total");
    for (int i = 0; i < r->n_rows; i++) {
        const FeModuleRow *row = &r->rows[i];
        const char *pl = row->is_per_layer ? commas(b1, row->per_layer) : "-";
        if (r->has_relora)
            fprintf(out, "  %-12s %-10s %13s %15s %15s %15s %13s\n", row->name, row->kind, pl, commas(b2, row->total),
                    commas(b3, row->frozen), commas(b4, row->trainable), commas(b5, row->lora));
        else
            fprintf(out, "  %-12s %-10s %13s %15s\n", row->name, row->kind, pl, commas(b2, row->total));
    }
    if (r->has_relora)
        fprintf(out, "  %-12s %-10s %13s %15s %15s %15s %13s\n", "total", "", "", commas(b2, r->total),
                commas(b3, r->frozen_relora), commas(b4, r->trainable_base), commas(b5, r->lora));
    else
        fprintf(out, "  %-12s %-10s %13s %15s\n", "total", "", "", commas(b2, r->total));
    fprintf(out, "\n");
    fprintf(out, "total parameters:              %s\n", commas(b1, r->total));
    fprintf(out, "trainable, full-rank phase:    %s\n", commas(b1, r->total));
    if (r->has_relora) {
        fprintf(out, "frozen, ReLoRA phase:          %s\n", commas(b1, r->frozen_relora));
        fprintf(out, "trainable, ReLoRA phase:       %s (%s full-rank + %s LoRA; %.1f%% of total)\n",
                commas(b1, r->trainable_relora), commas(b2, r->trainable_base), commas(b3, r->lora),
                pct(r->trainable_relora, r->total));
    }
    /* data-parallel training sums the f32 gradients of what trains (docs/runtime.md
     * "Several processes"): in the ReLoRA phase, no frozen W */
    fprintf(out, "data-parallel sum per step:    %s bytes full-rank", commas(b1, 4 * r->total));
    if (r->has_relora)
        fprintf(out, ", %s bytes ReLoRA (%.1f%%)", commas(b2, 4 * r->trainable_relora),
                pct(r->trainable_relora, r->total));
    fprintf(out, " (f32 gradients; a rank sends 2(N-1)/N of it)\n");
    fprintf(out, "\nFLOPs per token, forward + backward (seq_len %lld):\n", (long long)t->seq_len);
    fprintf(out, "  full-rank: 6 x %s matmul params + %s attention = %s\n", commas(b1, r->mm_params),
            commas(b2, r->attn_flops), commas(b3, r->flops_full));
    if (r->has_relora)
        fprintf(out, "  ReLoRA:    6 x %s trainable + 4 x %s frozen + 6 x %s LoRA + %s attention = %s (%.1f%%)\n",
                commas(b1, r->mm_params - r->mm_frozen), commas(b2, r->mm_frozen), commas(b3, r->lora),
                commas(b4, r->attn_flops), commas(b5, r->flops_relora), pct(r->flops_relora, r->flops_full));
    static const char *const levels[] = {"none", "selective", "full"};
    if (t->micro_batch != t->batch)
        fprintf(out, "\nmemory estimate (micro-batch %lld of batch %lld x seq_len %lld; recompute %s; AdamW m and v):\n",
                (long long)t->micro_batch, (long long)t->batch, (long long)t->seq_len, levels[t->recompute]);
    else
        fprintf(out, "\nmemory estimate (batch %lld x seq_len %lld; recompute %s; AdamW m and v):\n",
                (long long)t->batch, (long long)t->seq_len, levels[t->recompute]);
    fprintf(out, "  %-24s %16s %16s\n", "", "fp32", "bf16");
    static const char *const what[] = {"weights", "gradients", "optimizer", "activations", "total"};
    for (int ph = 0; ph < FE_N_PHASES; ph++) {
        if (ph == FE_PHASE_RELORA && !r->has_relora)
            continue;
        for (int k = 0; k < (int)(sizeof what / sizeof *what); k++) {
            const FeMemory *a = &r->mem[ph][FE_PREC_FP32], *b = &r->mem[ph][FE_PREC_BF16];
            const int64_t va[] = {a->weights, a->grads, a->optimizer, a->activations, a->total};
            const int64_t vb[] = {b->weights, b->grads, b->optimizer, b->activations, b->total};
            fprintf(out, "  %-10s %-13s %16s %16s\n", k == 0 ? (ph == FE_PHASE_FULL ? "full-rank" : "ReLoRA") : "",
                    what[k], mib(b1, va[k]), mib(b2, vb[k]));
        }
    }
    if (r->has_plan)
        print_plan(out, r);
    if (r->n_plan_rows > 0)
        print_plan_settings(out, r);
}

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void json_mem(FILE *out, const FeMemory *m)
{
    fprintf(out, "{\"weights\": %lld, \"gradients\": %lld, \"optimizer\": %lld, \"activations\": %lld, \"total\": %lld}",
            (long long)m->weights, (long long)m->grads, (long long)m->optimizer, (long long)m->activations,
            (long long)m->total);
}

/* f's value in JSON: numbers, strings, lists, null for no data file, an object for a
 * call (its kind and its arguments). */
static void json_value(FILE *out, const Spec *s, const FieldDesc *f);

/* The fields of section fs as `"name": value` members, each after ", " unless it is
 * the object's first. */
static void json_fields(FILE *out, const Spec *s, FieldSection fs, bool is_first)
{
    for (int i = 0; i < FIELD_COUNT; i++) {
        const FieldDesc *f = &fe_fields[i];
        if (f->section != fs || f->type == FT_BLOCK)
            continue;
        fprintf(out, "%s\"%s\": ", is_first ? "" : ", ", f->name);
        is_first = false;
        json_value(out, s, f);
        const SpecSteps *st = fe_field_value(s, f);
        if (f->type == FT_STEPS && st->percent >= 0)
            fprintf(out, ", \"%s_percent\": %g", f->name, st->percent);
    }
}

static void json_value(FILE *out, const Spec *s, const FieldDesc *f)
{
    const void *v = fe_field_value(s, f);
    switch (f->type) {
    case FT_INT: fprintf(out, "%lld", (long long)*(const int64_t *)v); return;
    case FT_STEPS: fprintf(out, "%lld", (long long)((const SpecSteps *)v)->n); return;
    case FT_NUM: fprintf(out, "%g", *(const double *)v); return;
    case FT_BOOL: fprintf(out, "%s", *(const bool *)v ? "true" : "false"); return;
    case FT_WORD: json_str(out, f->words[*(const int *)v]); return;
    case FT_STR:
        if (*(const char *const *)v)
            json_str(out, *(const char *const *)v);
        else
            fputs("null", out);
        return;
    case FT_NAMES: {
        const SpecNames *n = v;
        fputc('[', out);
        for (int i = 0; i < n->n; i++) {
            fprintf(out, "%s", i ? ", " : "");
            json_str(out, n->items[i]);
        }
        fputc(']', out);
        return;
    }
    case FT_DATA: {
        const SpecData *d = v;
        if (d->kind == SPEC_DATA_NONE) {
            fprintf(out, "null");
            return;
        }
        fprintf(out, "{\"kind\": \"%s\", \"path\": ", f->words[d->kind - SPEC_DATA_TEXT]);
        json_str(out, d->path);
        fputc('}', out);
        return;
    }
    case FT_PAIR: fprintf(out, "[%g, %g]", ((const double *)v)[0], ((const double *)v)[1]); return;
    case FT_CALL: {
        FieldSection first = FS_COUNT;
        fe_field_kinds(f, &first);
        FieldSection kind = (FieldSection)(first + *(const int *)v);
        fprintf(out, "{\"kind\": \"%s\"", fe_sections[kind].name);
        json_fields(out, s, kind, false);
        if (kind == FS_RELORA)
            fprintf(out, ", \"merges\": %lld", (long long)s->train.schedule.n_resets);
        fputc('}', out);
        return;
    }
    case FT_BLOCK: return;
    }
}

void fe_report_print_json(FILE *out, const Spec *s, const FeReport *r)
{
    const SpecModel *m = &s->model;
    const SpecTrain *t = &s->train;
    fprintf(out, "{\n  \"model\": {\"name\": ");
    json_str(out, m->name);
    fprintf(out, ", \"parent\": ");
    if (m->parent)
        json_str(out, m->parent);
    else
        fprintf(out, "null");
    json_fields(out, s, FS_MODEL, false);
    fprintf(out, "},\n");
    if (s->adapter.is_present) {
        fprintf(out, "  \"adapter\": {\"name\": ");
        json_str(out, s->adapter.name);
        json_fields(out, s, FS_ADAPTER, false);
        fprintf(out, ", \"adapted\": [");
        int k = 0;
        for (int i = 0; i < m->n_linears; i++)
            if (m->linears[i]->is_adapted) {
                fprintf(out, "%s", k++ ? ", " : "");
                json_str(out, m->linears[i]->full_name);
            }
        fprintf(out, "]},\n");
    } else {
        fprintf(out, "  \"adapter\": null,\n");
    }
    fprintf(out, "  \"train\": {");
    json_fields(out, s, FS_TRAIN, true);
    fprintf(out, "},\n  \"modules\": [\n");
    for (int i = 0; i < r->n_rows; i++) {
        const FeModuleRow *row = &r->rows[i];
        fprintf(out, "    {\"name\": ");
        json_str(out, row->name);
        fprintf(out, ", \"kind\": ");
        json_str(out, row->kind);
        fprintf(out, ", \"per_layer\": %lld, \"total\": %lld, \"relora_frozen\": %lld, \"relora_trainable\": %lld, "
                     "\"lora\": %lld}%s\n",
                (long long)(row->is_per_layer ? row->per_layer : 0), (long long)row->total, (long long)row->frozen,
                (long long)row->trainable, (long long)row->lora, i + 1 < r->n_rows ? "," : "");
    }
    fprintf(out, "  ],\n  \"tensors\": [\n");
    for (int i = 0; i < m->n_params; i++) {
        const SpecParam *p = &m->params[i];
        fprintf(out, "    {\"name\": ");
        json_str(out, p->name);
        if (p->ndim == 2)
            fprintf(out, ", \"shape\": [%lld, %lld]", (long long)p->shape[0], (long long)p->shape[1]);
        else
            fprintf(out, ", \"shape\": [%lld]", (long long)p->shape[0]);
        const char *state = !r->has_relora                                          ? "trainable"
                            : p->role == SPEC_PARAM_LINEAR && p->linear->is_adapted ? "adapted"
                            : p->is_trainable_relora                                ? "trainable"
                                                                                    : "frozen";
        fprintf(out, ", \"count\": %lld, \"relora\": \"%s\", \"decay\": %s}%s\n", (long long)spec_param_total(m, p), state,
                p->has_decay ? "true" : "false", i + 1 < m->n_params ? "," : "");
    }
    fprintf(out, "  ],\n");
    fprintf(out,
            "  \"params\": {\"total\": %lld, \"trainable_full_rank\": %lld, \"relora_frozen\": %lld, "
            "\"relora_trainable\": %lld, \"relora_trainable_full_rank\": %lld, \"lora\": %lld},\n",
            (long long)r->total, (long long)r->total, (long long)r->frozen_relora, (long long)r->trainable_relora,
            (long long)r->trainable_base, (long long)r->lora);
    /* data-parallel (docs/runtime.md "Several processes"): the f32 gradient bytes a step sums
     * and the f32 Adam moments (m and v) of what trains, per phase; under --zero 1 each of N
     * ranks keeps 1/N of the moments */
    long long dp_relora = r->has_relora ? 4 * (long long)r->trainable_relora : 0;
    fprintf(out,
            "  \"data_parallel_bytes\": {\"gradients_full_rank\": %lld, \"gradients_relora\": %lld, "
            "\"moments_full_rank\": %lld, \"moments_relora\": %lld},\n",
            4 * (long long)r->total, dp_relora, 8 * (long long)r->total, 2 * dp_relora);
    fprintf(out,
            "  \"flops_per_token\": {\"seq_len\": %lld, \"matmul_params\": %lld, \"relora_frozen_matmul_params\": %lld, "
            "\"attention\": %lld, \"full_rank\": %lld, \"relora\": %lld},\n",
            (long long)t->seq_len, (long long)r->mm_params, (long long)r->mm_frozen, (long long)r->attn_flops,
            (long long)r->flops_full, (long long)(r->has_relora ? r->flops_relora : 0));
    static const char *const level_names[] = {"none", "selective", "full"};
    fprintf(out, "  \"memory_bytes\": {\"batch\": %lld, \"micro_batch\": %lld, \"seq_len\": %lld, \"recompute\": \"%s\"",
            (long long)t->batch, (long long)t->micro_batch, (long long)t->seq_len, level_names[t->recompute]);
    static const char *const precs[] = {"fp32", "bf16"};
    for (int pr = 0; pr < FE_N_PRECS; pr++) {
        fprintf(out, ", \"%s\": {\"full_rank\": ", precs[pr]);
        json_mem(out, &r->mem[FE_PHASE_FULL][pr]);
        if (r->has_relora) {
            fprintf(out, ", \"relora\": ");
            json_mem(out, &r->mem[FE_PHASE_RELORA][pr]);
        }
        fprintf(out, "}");
    }
    fprintf(out, "}");
    if (r->has_plan) {
        static const char *const ph_names[] = {"full_rank", "relora"};
        fprintf(out, ",\n  \"planned_bytes\": {\"program\": {");
        for (int c = 0; c < IR_CLASS_COUNT; c++)
            fprintf(out, "%s\"%s\": %lld", c ? ", " : "", ir_class_name((IrMemClass)c), (long long)r->plan_program[c]);
        fprintf(out, "}");
        for (int ph = 0; ph < FE_N_PHASES; ph++) {
            if (!r->plan_has_phase[ph])
                continue;
            fprintf(out, ", \"%s\": {", ph_names[ph]);
            for (int c = 0; c < IR_CLASS_COUNT; c++)
                fprintf(out, "%s\"%s\": %lld", c ? ", " : "", ir_class_name((IrMemClass)c),
                        (long long)r->plan_phase[ph][c]);
            fprintf(out, "}");
        }
        fprintf(out, "}");
    }
    if (r->n_plan_rows > 0) {
        fprintf(out, ",\n  \"planned_settings\": [");
        for (int i = 0; i < r->n_plan_rows; i++) {
            const FePlanRow *row = &r->plan_rows[i];
            fprintf(out, "%s\n    {\"setting\": ", i ? "," : "");
            json_str(out, row->setting);
            fprintf(out, ", \"value\": ");
            json_str(out, row->value);
            fprintf(out, ", \"spec\": %s, \"ok\": %s, \"program\": %lld", row->is_spec ? "true" : "false",
                    row->ok ? "true" : "false", (long long)row->program);
            static const char *const ph_names[] = {"full_rank", "relora"};
            for (int ph = 0; ph < FE_N_PHASES; ph++)
                if (row->has_phase[ph])
                    fprintf(out, ", \"%s\": %lld, \"%s_extra_flops_per_token\": %.17g", ph_names[ph],
                            (long long)row->phase_total[ph], ph_names[ph], row->extra_flops[ph]);
            fprintf(out, "}");
        }
        fprintf(out, "]");
    }
    fprintf(out, "\n}\n");
}
