/* Hugging Face export (hf.h). A model is exported under transformers' LlamaForCausalLM
 * names, with a config.json, only when that class computes exactly the function the spec
 * describes: a checkpoint that loads and then computes another model is worse than one
 * that does not load. So the block's whole dataflow graph is matched, every argument
 * LLaMA has a config field for is compared, and each config.json field is written from
 * the fact checked for it; anything else keeps relorac's names and says why.
 *
 * What LlamaForCausalLM computes (transformers, models/llama/modeling_llama.py):
 *   x = embed_tokens[ids]                                (no position table, no scaling)
 *   per layer:  h = x + self_attn(input_layernorm(x))
 *               x = h + mlp(post_attention_layernorm(h))
 *   logits = lm_head(norm(x))                             (lm_head = embed_tokens when tied)
 * with every norm RMSNorm x / sqrt(mean(x^2) + rms_norm_eps) * w (one eps for all three),
 * self_attn = o_proj(softmax_causal(rope(q) rope(k)^T / sqrt(head_dim)) v) with
 * rotate_half RoPE of base rope_theta on q and k and kv head j serving query heads
 * j*g .. j*g+g-1 (g = heads / kv_heads), mlp = down_proj(act(gate_proj(x)) * up_proj(x)),
 * and no biases (attention_bias = mlp_bias = false). relorac's ops are the same formulas
 * (docs/ir.md: rmsnorm, rope "HF rotate_half", repeat_kv y[:,h] = x[:,h / times], gelu
 * in its tanh form, which is torch's gelu(approximate="tanh") = "gelu_pytorch_tanh"). */
#include "hf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The four modules of a LLaMA block, as matched in the spec's block. */
typedef struct Llama {
    const SpecModule *norm1, *attn, *norm2, *mlp;
} Llama;

static const char LLAMA_BLOCK[] = "h = x + attention(rmsnorm(x)); return h + swiglu(rmsnorm(h))";

/* ---- the dataflow ---- */

static const SpecNode *value_of(const SpecNode *n)
{
    while (n->kind == SPEC_NODE_LOCAL)
        n = n->a;
    return n;
}

/* The same value: one node, or the block input (however many nodes stand for it). */
static bool same_value(const SpecNode *a, const SpecNode *b)
{
    return a == b || (a->kind == SPEC_NODE_INPUT && b->kind == SPEC_NODE_INPUT);
}

/* n = outer(inner(arg)) for module calls outer and inner. */
static bool nested_call(const SpecNode *n, const SpecModule **outer, const SpecModule **inner, const SpecNode **arg)
{
    n = value_of(n);
    if (n->kind != SPEC_NODE_MODULE)
        return false;
    const SpecNode *m = value_of(n->a);
    if (m->kind != SPEC_NODE_MODULE)
        return false;
    *outer = n->module;
    *inner = m->module;
    *arg = value_of(m->a);
    return true;
}

/* n = r + outer(inner(r)), the same node r on both sides; either operand order (a + b
 * and b + a are the same float). */
static bool residual(const SpecNode *n, const SpecModule **outer, const SpecModule **inner, const SpecNode **r)
{
    n = value_of(n);
    if (n->kind != SPEC_NODE_ADD)
        return false;
    for (int side = 0; side < 2; side++) {
        const SpecNode *res = value_of(side ? n->b : n->a), *branch = side ? n->a : n->b, *arg;
        if (nested_call(branch, outer, inner, &arg) && same_value(arg, res)) {
            *r = res;
            return true;
        }
    }
    return false;
}

/* h = x + M1(M0(x)); return h + M3(M2(h)), with x the block input: LLaMA's graph with
 * any modules in its four places (their kinds are checked after). */
static bool match_block(const SpecBlock *b, Llama *L)
{
    const SpecNode *h, *x;
    return residual(b->ret, &L->mlp, &L->norm2, &h) && residual(h, &L->attn, &L->norm1, &x) &&
           x->kind == SPEC_NODE_INPUT;
}

/* ---- the block as text, for the reason ---- */

enum { PAREN_NONE, PAREN_ADD, PAREN_PRODUCT }; /* which operators need parentheses here */

static const char *expr_text(Arena *a, const SpecBlock *b, const SpecNode *n, int paren)
{
    const char *t;
    bool wrap = false;
    switch (n->kind) {
    case SPEC_NODE_INPUT: return b->param;
    case SPEC_NODE_LOCAL: return n->local;
    case SPEC_NODE_ADD:
        t = arena_sprintf(a, "%s + %s", expr_text(a, b, n->a, PAREN_NONE), expr_text(a, b, n->b, PAREN_ADD));
        wrap = paren >= PAREN_ADD;
        break;
    case SPEC_NODE_MUL:
        t = arena_sprintf(a, "%s * %s", expr_text(a, b, n->a, PAREN_ADD), expr_text(a, b, n->b, PAREN_PRODUCT));
        wrap = paren >= PAREN_PRODUCT;
        break;
    case SPEC_NODE_SCALE:
        t = arena_sprintf(a, "%g * %s", n->scale, expr_text(a, b, n->a, PAREN_PRODUCT));
        wrap = paren >= PAREN_PRODUCT;
        break;
    case SPEC_NODE_ACT:
        return arena_sprintf(a, "%s(%s)", spec_act_name(n->act), expr_text(a, b, n->a, PAREN_NONE));
    case SPEC_NODE_MODULE:
        return arena_sprintf(a, "%s(%s)", spec_module_kind_name(n->module->kind), expr_text(a, b, n->a, PAREN_NONE));
    default: return "?";
    }
    return wrap ? arena_sprintf(a, "(%s)", t) : t;
}

/* Marks in used[] the defining nodes of the locals n reads. */
static void mark_locals(const SpecNode *n, bool *seen, bool *used)
{
    if (seen[n->id])
        return;
    seen[n->id] = true;
    if (n->kind == SPEC_NODE_LOCAL)
        used[n->a->id] = true;
    if (n->kind != SPEC_NODE_INPUT)
        mark_locals(n->a, seen, used);
    if (n->kind == SPEC_NODE_ADD || n->kind == SPEC_NODE_MUL)
        mark_locals(n->b, seen, used);
}

/* "h = x + attention(rmsnorm(x)); return h + swiglu(rmsnorm(h))": the locals the
 * result depends on, in source order, then the return. */
static const char *block_text(Arena *a, const SpecBlock *b)
{
    bool *seen = ARENA_ARRAY(a, bool, b->n_nodes + 1), *used = ARENA_ARRAY(a, bool, b->n_nodes + 1);
    mark_locals(b->ret, seen, used);
    const char *t = "";
    for (int i = 0; i < b->n_locals; i++)
        if (b->locals[i].value && used[b->locals[i].value->id])
            t = arena_sprintf(a, "%s%s = %s; ", t, b->locals[i].name, expr_text(a, b, b->locals[i].value, PAREN_NONE));
    return arena_sprintf(a, "%sreturn %s", t, expr_text(a, b, b->ret, PAREN_NONE));
}

/* ---- numbers ---- */

/* The shortest decimal that reads back as v ("1e-05", "0.1", "10000"); v finite. */
static const char *shortest(Arena *a, double v)
{
    char buf[40];
    if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v)
        return arena_sprintf(a, "%.0f", v); /* "500", not "5e+02" */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return arena_strdup(a, buf);
}

/* v as a JSON float: shortest, with ".0" when it would read as an integer. */
static const char *json_float(Arena *a, double v)
{
    const char *s = shortest(a, v);
    return strpbrk(s, ".eE") ? s : arena_sprintf(a, "%s.0", s);
}

/* ---- the checks ---- */

static void add_reason(Arena *a, const char **why, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_reason(Arena *a, const char **why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *r = arena_vsprintf(a, fmt, ap);
    va_end(ap);
    *why = *why ? arena_sprintf(a, "%s; %s", *why, r) : r;
}

/* "a swiglu", "an attention" */
static const char *kind_text(Arena *a, SpecModuleKind k)
{
    const char *name = spec_module_kind_name(k);
    return arena_sprintf(a, "%s %s", strchr("aeiou", name[0]) ? "an" : "a", name);
}

static void check_module_kind(Arena *a, const char **why, const SpecModule *m, SpecModuleKind want,
                              const char *hf_part, const char *hf_kind)
{
    if (m->kind != want)
        add_reason(a, why, "'%s' is %s; LlamaForCausalLM's %s is %s", m->name, kind_text(a, m->kind), hf_part,
                   hf_kind);
}

static bool module_has_bias(const SpecModule *m)
{
    bool any = m->has_bias;
    for (int i = 0; i < m->n_linears; i++)
        any = any || m->linears[i].has_bias;
    return any;
}

/* The key of p in LlamaForCausalLM's state dict: global, or per layer after
 * "model.layers.{i}." (*per_layer set); NULL when LLaMA has no such tensor. */
static const char *hf_param_name(const Llama *L, const SpecParam *p, bool *per_layer)
{
    static const char *const attn_names[][2] = {{"q", "self_attn.q_proj.weight"}, {"k", "self_attn.k_proj.weight"},
                                                {"v", "self_attn.v_proj.weight"}, {"o", "self_attn.o_proj.weight"}};
    static const char *const mlp_names[][2] = {
        {"gate", "mlp.gate_proj.weight"}, {"up", "mlp.up_proj.weight"}, {"down", "mlp.down_proj.weight"}};
    *per_layer = p->is_per_layer;
    switch (p->role) {
    case SPEC_PARAM_EMBEDDING: return "model.embed_tokens.weight";
    case SPEC_PARAM_HEAD: return "lm_head.weight";
    case SPEC_PARAM_NORM:
        if (!p->is_per_layer)
            return "model.norm.weight";
        if (p->module == L->norm1)
            return "input_layernorm.weight";
        if (p->module == L->norm2)
            return "post_attention_layernorm.weight";
        return NULL;
    case SPEC_PARAM_LINEAR:
        for (int i = 0; p->linear->module == L->attn && i < 4; i++)
            if (!strcmp(p->linear->name, attn_names[i][0]))
                return attn_names[i][1];
        for (int i = 0; p->linear->module == L->mlp && i < 3; i++)
            if (!strcmp(p->linear->name, mlp_names[i][0]))
                return mlp_names[i][1];
        return NULL;
    default: return NULL;
    }
}

/* Why LlamaForCausalLM does not compute md's function; NULL when it does (L filled). */
static const char *llama_mismatch(Arena *a, const SpecModel *md, Llama *L)
{
    const SpecBlock *b = &md->block;
    if (!match_block(b, L))
        return arena_sprintf(a, "the block computes `%s`; LlamaForCausalLM's computes `%s`", block_text(a, b),
                             LLAMA_BLOCK);
    const char *why = NULL;
    for (int i = 0; i < b->n_modules; i++) {
        const SpecModule *m = b->modules[i];
        if (m != L->norm1 && m != L->attn && m != L->norm2 && m != L->mlp)
            add_reason(a, &why, "the block's result does not use '%s'; LlamaForCausalLM has no place for it",
                       m->name);
    }
    check_module_kind(a, &why, L->norm1, SPEC_MOD_RMSNORM, "input_layernorm", "an RMSNorm");
    check_module_kind(a, &why, L->norm2, SPEC_MOD_RMSNORM, "post_attention_layernorm", "an RMSNorm");
    check_module_kind(a, &why, L->attn, SPEC_MOD_ATTENTION, "self_attn", "attention");
    if (L->mlp->kind != SPEC_MOD_SWIGLU && L->mlp->kind != SPEC_MOD_GEGLU)
        add_reason(a, &why, "'%s' is %s; LlamaForCausalLM's mlp is down(act(gate(x)) * up(x)) (swiglu, geglu)",
                   L->mlp->name, kind_text(a, L->mlp->kind));
    if (L->attn->kind == SPEC_MOD_ATTENTION) {
        if (!L->attn->has_rope)
            add_reason(a, &why, "'%s' has rope = none; LlamaForCausalLM always applies rotary embeddings",
                       L->attn->name);
        if (L->attn->heads * L->attn->head_dim != md->dim)
            add_reason(a, &why, "'%s' has %lld heads of size %lld, not hidden size %lld", L->attn->name,
                       (long long)L->attn->heads, (long long)L->attn->head_dim, (long long)md->dim);
    }
    if (L->attn->kind == SPEC_MOD_ATTENTION && module_has_bias(L->attn))
        add_reason(a, &why, "'%s' has biases; the export writes LlamaForCausalLM with attention_bias = false",
                   L->attn->name);
    if ((L->mlp->kind == SPEC_MOD_SWIGLU || L->mlp->kind == SPEC_MOD_GEGLU) && module_has_bias(L->mlp))
        add_reason(a, &why, "'%s' has biases; the export writes LlamaForCausalLM with mlp_bias = false",
                   L->mlp->name);
    double e1 = L->norm1->eps, e2 = L->norm2->eps, ef = md->norm_eps;
    if (e1 != e2)
        add_reason(a, &why,
                   "the norms use eps %s ('%s'), %s ('%s') and %s (the final norm); LlamaForCausalLM has one "
                   "rms_norm_eps",
                   shortest(a, e1), L->norm1->name, shortest(a, e2), L->norm2->name, shortest(a, ef));
    else if (e1 != ef)
        add_reason(a, &why,
                   "block norms use eps %s but the final norm uses %s; LlamaForCausalLM has one rms_norm_eps",
                   shortest(a, e1), shortest(a, ef));
    if (md->norm != SPEC_NORM_RMSNORM)
        add_reason(a, &why, "the final norm is a layernorm (norm = layernorm); LlamaForCausalLM's model.norm is "
                   "an RMSNorm");
    if (md->positions != SPEC_POS_NONE)
        add_reason(a, &why, "the model adds learned positions (positions = learned); LlamaForCausalLM has only "
                   "rotary ones");
    if (why)
        return why;
    /* every tensor has its place (a bias or a table the checks above missed would not) */
    for (int i = 0; i < md->n_params; i++) {
        bool per_layer;
        if (!hf_param_name(L, &md->params[i], &per_layer))
            add_reason(a, &why, "tensor '%s' has no counterpart in LlamaForCausalLM", md->params[i].name);
    }
    return why;
}

/* config.json for a model llama_mismatch accepted. Each field is the checked fact it
 * names; those LLaMA has but relorac does not vary are written out too, so that a
 * transformers release changing a default cannot change the model. */
static const char *llama_config(Arena *a, const SpecModel *md, const Llama *L)
{
    const char *theta = json_float(a, L->attn->rope_theta);
    return arena_sprintf(
        a,
        "{\n"
        "  \"architectures\": [\"LlamaForCausalLM\"],\n"
        "  \"model_type\": \"llama\",\n"
        "  \"vocab_size\": %lld,\n"
        "  \"hidden_size\": %lld,\n"
        "  \"intermediate_size\": %lld,\n"
        "  \"num_hidden_layers\": %lld,\n"
        "  \"num_attention_heads\": %lld,\n"
        "  \"num_key_value_heads\": %lld,\n"
        "  \"head_dim\": %lld,\n"
        "  \"hidden_act\": \"%s\",\n"
        "  \"max_position_embeddings\": %lld,\n"
        "  \"rms_norm_eps\": %s,\n"
        "  \"rope_theta\": %s,\n"
        "  \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": %s},\n"
        "  \"attention_bias\": false,\n"
        "  \"mlp_bias\": false,\n"
        "  \"attention_dropout\": 0.0,\n"
        "  \"pretraining_tp\": 1,\n"
        "  \"tie_word_embeddings\": %s,\n"
        "  \"bos_token_id\": null,\n"
        "  \"eos_token_id\": null,\n"
        "  \"pad_token_id\": null,\n"
        "  \"torch_dtype\": \"float32\"\n"
        "}\n",
        (long long)md->vocab, (long long)md->dim, (long long)L->mlp->hidden, (long long)md->layers,
        (long long)L->attn->heads, (long long)L->attn->kv_heads, (long long)L->attn->head_dim,
        L->mlp->kind == SPEC_MOD_SWIGLU ? "silu" : "gelu_pytorch_tanh", (long long)md->context,
        json_float(a, md->norm_eps), theta, theta, md->tied ? "true" : "false");
}

void fe_hf_annotate(Arena *a, const Spec *s, IrModule *m)
{
    const SpecModel *md = &s->model;
    Llama L = {0};
    const char *why = llama_mismatch(a, md, &L);
    if (why) {
        ir_attrs_set_str(a, &m->attrs, "hf.export_note", why);
        return;
    }
    for (int i = 0; i < md->n_params; i++) {
        const SpecParam *p = &md->params[i];
        bool per_layer;
        const char *hf = hf_param_name(&L, p, &per_layer);
        for (int64_t layer = 0; layer < (per_layer ? md->layers : 1); layer++) {
            IrGlobal *g = ir_global_find(m, spec_param_name(a, p, layer));
            if (g)
                ir_attrs_set_str(a, &g->attrs, "hf_name",
                                 per_layer ? arena_sprintf(a, "model.layers.%lld.%s", (long long)layer, hf) : hf);
        }
    }
    ir_attrs_set_str(a, &m->attrs, "hf.config_json", llama_config(a, md, &L));
}
