/* Hugging Face export (hf.h). A model is exported under the names of a transformers class,
 * with a config.json, only when that class computes exactly the function the spec
 * describes: a checkpoint that loads and then computes another model is worse than one
 * that does not load. So the block's whole dataflow graph is matched, every argument the
 * class has a config field for is compared, and each config.json field is written from the
 * fact checked for it; anything else keeps relorac's names and says why. Two families:
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
 * in its tanh form, which is torch's gelu(approximate="tanh") = "gelu_pytorch_tanh").
 *
 * What GPT2LMHeadModel computes (models/gpt2/modeling_gpt2.py):
 *   x = wte[ids] + wpe[0..T)
 *   per layer:  h = x + attn(ln_1(x))
 *               x = h + mlp(ln_2(h)),   mlp = c_proj(act(c_fc(h)))
 *   logits = lm_head(ln_f(x))                             (lm_head = wte when tied)
 * with every norm LayerNorm with bias (one layer_norm_epsilon), attn = c_proj(
 * softmax_causal(q k^T / sqrt(head_dim)) v) where q, k, v = split(c_attn(x)) into thirds,
 * no rotary embeddings, no grouped-query attention, and act = ACT2FN[activation_function]
 * ("gelu_new" is the tanh gelu, relorac's gelu). Its Conv1D layers compute x @ W + b with
 * W [in, out], the transpose of torch's and relorac's [out, in], and all have biases: so
 * each linear's weight is exported transposed, and c_attn.weight [C, 3C] is q^T, k^T, v^T
 * side by side (its bias [3C] q, k, v end to end), which the export table describes (rt.h
 * RtExport; the globals get hf_part, hf_axis, hf_transpose). */
#include "hf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The modules of a block, as matched: LLaMA's four (mlp a swiglu or geglu) or GPT-2's five
 * (mlp = proj(act(fc(x))), two linear() modules). */
typedef struct Block {
    const SpecModule *norm1, *attn, *norm2, *mlp;
    const SpecModule *fc, *proj; /* GPT-2: the MLP's linears (mlp is NULL) */
    SpecActivation act;          /* GPT-2: the MLP's activation */
} Block;

static const char LLAMA_BLOCK[] = "h = x + attention(rmsnorm(x)); return h + swiglu(rmsnorm(h))";
static const char GPT2_BLOCK[] = "h = x + attention(layernorm(x)); return h + linear(gelu(linear(layernorm(h))))";

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
static bool match_block(const SpecBlock *b, Block *L)
{
    const SpecNode *h, *x;
    return residual(b->ret, &L->mlp, &L->norm2, &h) && residual(h, &L->attn, &L->norm1, &x) &&
           x->kind == SPEC_NODE_INPUT;
}

/* n = proj(act(fc(norm(arg)))): GPT-2's MLP branch, with its norm. */
static bool gpt2_mlp(const SpecNode *n, Block *B, const SpecNode **arg)
{
    n = value_of(n);
    if (n->kind != SPEC_NODE_MODULE)
        return false;
    B->proj = n->module;
    n = value_of(n->a);
    if (n->kind != SPEC_NODE_ACT)
        return false;
    B->act = n->act;
    n = value_of(n->a);
    if (n->kind != SPEC_NODE_MODULE)
        return false;
    B->fc = n->module;
    n = value_of(n->a);
    if (n->kind != SPEC_NODE_MODULE)
        return false;
    B->norm2 = n->module;
    *arg = value_of(n->a);
    return true;
}

/* h = x + M1(M0(x)); return h + M4(act(M3(M2(h)))): GPT-2's graph with any modules in its
 * places (their kinds are checked after); either operand order of each add. */
static bool match_gpt2_block(const SpecBlock *b, Block *B)
{
    const SpecNode *n = value_of(b->ret), *h = NULL, *x;
    if (n->kind != SPEC_NODE_ADD)
        return false;
    for (int side = 0; side < 2 && !h; side++) {
        const SpecNode *res = value_of(side ? n->b : n->a), *arg;
        if (gpt2_mlp(side ? n->a : n->b, B, &arg) && same_value(arg, res))
            h = res;
    }
    return h && residual(h, &B->attn, &B->norm1, &x) && x->kind == SPEC_NODE_INPUT;
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

/* Where a parameter goes in a family's state dict: the key (after "model.layers.{i}." or
 * "transformer.h.{i}." when per layer), and for a tensor of several parts its index, the
 * axis they join along and whether it is transposed (rt.h RtExport). */
typedef struct HfName {
    const char *key; /* NULL: the family has no such tensor */
    bool per_layer;
    int part, axis;
    bool transpose;
} HfName;

/* The key of p in LlamaForCausalLM's state dict. */
static HfName llama_param_name(const Block *L, const SpecParam *p)
{
    static const char *const attn_names[][2] = {{"q", "self_attn.q_proj.weight"}, {"k", "self_attn.k_proj.weight"},
                                                {"v", "self_attn.v_proj.weight"}, {"o", "self_attn.o_proj.weight"}};
    static const char *const mlp_names[][2] = {
        {"gate", "mlp.gate_proj.weight"}, {"up", "mlp.up_proj.weight"}, {"down", "mlp.down_proj.weight"}};
    HfName n = {NULL, p->is_per_layer, 0, 0, false};
    switch (p->role) {
    case SPEC_PARAM_EMBEDDING: n.key = "model.embed_tokens.weight"; break;
    case SPEC_PARAM_HEAD: n.key = "lm_head.weight"; break;
    case SPEC_PARAM_NORM:
        n.key = !p->is_per_layer        ? "model.norm.weight"
                : p->module == L->norm1 ? "input_layernorm.weight"
                : p->module == L->norm2 ? "post_attention_layernorm.weight"
                                        : NULL;
        break;
    case SPEC_PARAM_LINEAR:
        for (int i = 0; p->linear->module == L->attn && i < 4; i++)
            if (!strcmp(p->linear->name, attn_names[i][0]))
                n.key = attn_names[i][1];
        for (int i = 0; p->linear->module == L->mlp && i < 3; i++)
            if (!strcmp(p->linear->name, mlp_names[i][0]))
                n.key = mlp_names[i][1];
        break;
    default: break;
    }
    return n;
}

/* The key of p in GPT2LMHeadModel's state dict: every Conv1D weight transposed, q, k and v
 * joined into c_attn (weights along axis 1, biases along axis 0). */
static HfName gpt2_param_name(const Block *G, const SpecParam *p)
{
    HfName n = {NULL, p->is_per_layer, 0, 0, false};
    bool bias = p->role == SPEC_PARAM_BIAS || p->role == SPEC_PARAM_NORM_BIAS;
    switch (p->role) {
    case SPEC_PARAM_EMBEDDING: n.key = "transformer.wte.weight"; break;
    case SPEC_PARAM_POSITIONS: n.key = "transformer.wpe.weight"; break;
    case SPEC_PARAM_HEAD: n.key = "lm_head.weight"; break;
    case SPEC_PARAM_NORM:
    case SPEC_PARAM_NORM_BIAS: {
        const char *norm = !p->is_per_layer        ? "transformer.ln_f"
                           : p->module == G->norm1 ? "ln_1"
                           : p->module == G->norm2 ? "ln_2"
                                                   : NULL;
        if (norm)
            n.key = bias ? (!strcmp(norm, "ln_1")   ? "ln_1.bias"
                            : !strcmp(norm, "ln_2") ? "ln_2.bias"
                                                    : "transformer.ln_f.bias")
                         : (!strcmp(norm, "ln_1")   ? "ln_1.weight"
                            : !strcmp(norm, "ln_2") ? "ln_2.weight"
                                                    : "transformer.ln_f.weight");
        break;
    }
    case SPEC_PARAM_LINEAR:
    case SPEC_PARAM_BIAS: {
        const SpecLinear *l = p->linear;
        n.transpose = !bias;
        if (l->module == G->attn) {
            static const char qkv[] = "qkv";
            const char *at = strlen(l->name) == 1 ? strchr(qkv, l->name[0]) : NULL;
            if (at) {
                n.key = bias ? "attn.c_attn.bias" : "attn.c_attn.weight";
                n.part = (int)(at - qkv);
                n.axis = bias ? 0 : 1;
            } else if (!strcmp(l->name, "o")) {
                n.key = bias ? "attn.c_proj.bias" : "attn.c_proj.weight";
            }
        } else if (l->module == G->fc) {
            n.key = bias ? "mlp.c_fc.bias" : "mlp.c_fc.weight";
        } else if (l->module == G->proj) {
            n.key = bias ? "mlp.c_proj.bias" : "mlp.c_proj.weight";
        }
        break;
    }
    }
    return n;
}

/* Why LlamaForCausalLM does not compute md's function, whose block match_block matched (L
 * filled); NULL when it does. */
static const char *llama_mismatch(Arena *a, const SpecModel *md, const Block *L)
{
    const SpecBlock *b = &md->block;
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
    for (int i = 0; i < md->n_params; i++)
        if (!llama_param_name(L, &md->params[i]).key)
            add_reason(a, &why, "tensor '%s' has no counterpart in LlamaForCausalLM", md->params[i].name);
    return why;
}

/* config.json for a model llama_mismatch accepted. Each field is the checked fact it
 * names; those LLaMA has but relorac does not vary are written out too, so that a
 * transformers release changing a default cannot change the model. */
static const char *llama_config(Arena *a, const SpecModel *md, const Block *L)
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

/* GPT2Config.activation_function for relorac's activation (transformers' ACT2FN): the tanh
 * gelu is "gelu_new". */
static const char *gpt2_act(SpecActivation act)
{
    switch (act) {
    case SPEC_ACT_GELU: return "gelu_new";
    case SPEC_ACT_RELU: return "relu";
    case SPEC_ACT_SILU: return "silu";
    }
    return "?";
}

/* Why GPT2LMHeadModel does not compute md's function, whose block match_gpt2_block
 * matched (G filled); NULL when it does. */
static const char *gpt2_mismatch(Arena *a, const SpecModel *md, const Block *G)
{
    const SpecBlock *b = &md->block;
    const char *why = NULL;
    for (int i = 0; i < b->n_modules; i++) {
        const SpecModule *m = b->modules[i];
        if (m != G->norm1 && m != G->attn && m != G->norm2 && m != G->fc && m != G->proj)
            add_reason(a, &why, "the block's result does not use '%s'; GPT2LMHeadModel has no place for it", m->name);
    }
    const SpecModule *norms[2] = {G->norm1, G->norm2};
    static const char *const ln[2] = {"ln_1", "ln_2"};
    for (int i = 0; i < 2; i++) {
        if (norms[i]->kind != SPEC_MOD_LAYERNORM)
            add_reason(a, &why, "'%s' is %s; GPT2LMHeadModel's %s is a LayerNorm", norms[i]->name,
                       kind_text(a, norms[i]->kind), ln[i]);
        else if (!norms[i]->has_bias)
            add_reason(a, &why, "'%s' has no bias; GPT2LMHeadModel's %s has one", norms[i]->name, ln[i]);
    }
    if (G->attn->kind != SPEC_MOD_ATTENTION) {
        add_reason(a, &why, "'%s' is %s; GPT2LMHeadModel's attn is attention", G->attn->name,
                   kind_text(a, G->attn->kind));
    } else {
        if (G->attn->has_rope)
            add_reason(a, &why, "'%s' applies rotary embeddings (rope = %s); GPT2LMHeadModel has none",
                       G->attn->name, shortest(a, G->attn->rope_theta));
        if (G->attn->kv_heads != G->attn->heads)
            add_reason(a, &why, "'%s' has %lld kv heads for %lld heads; GPT2LMHeadModel has no grouped-query "
                       "attention", G->attn->name, (long long)G->attn->kv_heads, (long long)G->attn->heads);
        if (G->attn->heads * G->attn->head_dim != md->dim)
            add_reason(a, &why, "'%s' has %lld heads of size %lld, not n_embd %lld", G->attn->name,
                       (long long)G->attn->heads, (long long)G->attn->head_dim, (long long)md->dim);
        if (!module_has_bias(G->attn))
            add_reason(a, &why, "'%s' has no biases; GPT2LMHeadModel's c_attn and c_proj have them (bias = true)",
                       G->attn->name);
    }
    const SpecModule *lins[2] = {G->fc, G->proj};
    static const char *const conv[2] = {"c_fc", "c_proj"};
    for (int i = 0; i < 2; i++) {
        if (lins[i]->kind != SPEC_MOD_LINEAR)
            add_reason(a, &why, "'%s' is %s; GPT2LMHeadModel's mlp.%s is a linear", lins[i]->name,
                       kind_text(a, lins[i]->kind), conv[i]);
        else if (!module_has_bias(lins[i]))
            add_reason(a, &why, "'%s' has no bias; GPT2LMHeadModel's mlp.%s has one (bias = true)", lins[i]->name,
                       conv[i]);
    }
    double e1 = G->norm1->eps, e2 = G->norm2->eps, ef = md->norm_eps;
    if (e1 != e2 || e1 != ef)
        add_reason(a, &why,
                   "the norms use eps %s ('%s'), %s ('%s') and %s (the final norm); GPT2LMHeadModel has one "
                   "layer_norm_epsilon",
                   shortest(a, e1), G->norm1->name, shortest(a, e2), G->norm2->name, shortest(a, ef));
    if (md->norm != SPEC_NORM_LAYERNORM)
        add_reason(a, &why, "the final norm is an rmsnorm; GPT2LMHeadModel's ln_f is a LayerNorm (norm = layernorm)");
    else if (!md->norm_bias)
        add_reason(a, &why, "the final layernorm has no bias (norm_bias = false); GPT2LMHeadModel's ln_f has one");
    if (md->positions != SPEC_POS_LEARNED)
        add_reason(a, &why, "the model has no position table (positions = none); GPT2LMHeadModel adds learned "
                   "positions (wpe)");
    if (why)
        return why;
    for (int i = 0; i < md->n_params; i++)
        if (!gpt2_param_name(G, &md->params[i]).key)
            add_reason(a, &why, "tensor '%s' has no counterpart in GPT2LMHeadModel", md->params[i].name);
    return why;
}

/* config.json for a model gpt2_mismatch accepted; each field is the fact checked for it,
 * and those GPT-2 has but relorac does not vary are written out (dropout 0: relorac
 * trains without it; no attention scaling by layer index; no cross-attention). */
static const char *gpt2_config(Arena *a, const SpecModel *md, const Block *G)
{
    return arena_sprintf(
        a,
        "{\n"
        "  \"architectures\": [\"GPT2LMHeadModel\"],\n"
        "  \"model_type\": \"gpt2\",\n"
        "  \"vocab_size\": %lld,\n"
        "  \"n_embd\": %lld,\n"
        "  \"n_layer\": %lld,\n"
        "  \"n_head\": %lld,\n"
        "  \"n_inner\": %lld,\n"
        "  \"n_positions\": %lld,\n"
        "  \"activation_function\": \"%s\",\n"
        "  \"layer_norm_epsilon\": %s,\n"
        "  \"resid_pdrop\": 0.0,\n"
        "  \"embd_pdrop\": 0.0,\n"
        "  \"attn_pdrop\": 0.0,\n"
        "  \"scale_attn_weights\": true,\n"
        "  \"scale_attn_by_inverse_layer_idx\": false,\n"
        "  \"reorder_and_upcast_attn\": false,\n"
        "  \"add_cross_attention\": false,\n"
        "  \"tie_word_embeddings\": %s,\n"
        "  \"bos_token_id\": null,\n"
        "  \"eos_token_id\": null,\n"
        "  \"pad_token_id\": null,\n"
        "  \"torch_dtype\": \"float32\"\n"
        "}\n",
        (long long)md->vocab, (long long)md->dim, (long long)md->layers, (long long)G->attn->heads,
        (long long)G->fc->out_dim, (long long)md->context, gpt2_act(G->act), json_float(a, md->norm_eps),
        md->tied ? "true" : "false");
}

/* The config.json fields --init-from compares (rt.h RtHfCheck; the module attribute
 * hf.config_check, one "key<TAB>what<TAB>value[<TAB>absent]" line each). absent is what
 * the family's config class assumes for a missing or null field (LlamaConfig, GPT2Config
 * defaults; a default that follows another field, like num_key_value_heads, is given for
 * this model's value of that field, whose own mismatch is reported on its own line). */
static void add_check(Arena *a, const char **text, const char *key, const char *what, const char *value,
                      const char *absent)
{
    *text = arena_sprintf(a, "%s%s%s\t%s\t%s%s%s", *text, **text ? "\n" : "", key, what, value, absent ? "\t" : "",
                          absent ? absent : "");
}

static const char *num(Arena *a, int64_t v)
{
    return arena_sprintf(a, "%lld", (long long)v);
}

static const char *llama_checks(Arena *a, const SpecModel *md, const Block *L)
{
    const char *t = "", *theta = json_float(a, L->attn->rope_theta);
    add_check(a, &t, "model_type", "family", "\"llama\"", NULL);
    add_check(a, &t, "vocab_size", "vocab", num(a, md->vocab), "32000");
    add_check(a, &t, "hidden_size", "dim", num(a, md->dim), "4096");
    add_check(a, &t, "num_hidden_layers", "layers", num(a, md->layers), "32");
    add_check(a, &t, "num_attention_heads", "heads", num(a, L->attn->heads), "32");
    add_check(a, &t, "num_key_value_heads", "kv_heads", num(a, L->attn->kv_heads), num(a, L->attn->heads));
    add_check(a, &t, "head_dim", "head dim", num(a, L->attn->head_dim), num(a, md->dim / L->attn->heads));
    add_check(a, &t, "intermediate_size", "hidden", num(a, L->mlp->hidden), "11008");
    add_check(a, &t, "hidden_act", "activation", L->mlp->kind == SPEC_MOD_SWIGLU ? "\"silu\"" : "\"gelu_pytorch_tanh\"",
              "\"silu\"");
    add_check(a, &t, "rms_norm_eps", "norm eps", json_float(a, md->norm_eps), "1e-06");
    add_check(a, &t, "rope_theta|rope_parameters.rope_theta", "rope theta", theta, "10000.0");
    add_check(a, &t, "rope_scaling", "rope scaling", "null", "null");
    add_check(a, &t, "rope_parameters.rope_type", "rope type", "\"default\"", "\"default\"");
    add_check(a, &t, "tie_word_embeddings", "tied embeddings", md->tied ? "true" : "false", "false");
    add_check(a, &t, "attention_bias", "attention biases", "false", "false");
    add_check(a, &t, "mlp_bias", "MLP biases", "false", "false");
    return t;
}

static const char *gpt2_checks(Arena *a, const SpecModel *md, const Block *G)
{
    const char *t = "";
    add_check(a, &t, "model_type", "family", "\"gpt2\"", NULL);
    add_check(a, &t, "vocab_size", "vocab", num(a, md->vocab), "50257");
    add_check(a, &t, "n_embd", "dim", num(a, md->dim), "768");
    add_check(a, &t, "n_layer", "layers", num(a, md->layers), "12");
    add_check(a, &t, "n_head", "heads", num(a, G->attn->heads), "12");
    add_check(a, &t, "n_inner", "hidden (the MLP's fc out)", num(a, G->fc->out_dim), num(a, 4 * md->dim));
    add_check(a, &t, "n_positions", "context", num(a, md->context), "1024");
    add_check(a, &t, "activation_function", "activation", arena_sprintf(a, "\"%s\"", gpt2_act(G->act)),
              "\"gelu_new\"");
    add_check(a, &t, "layer_norm_epsilon", "norm eps", json_float(a, md->norm_eps), "1e-05");
    add_check(a, &t, "tie_word_embeddings", "tied embeddings", md->tied ? "true" : "false", "true");
    add_check(a, &t, "scale_attn_weights", "attention scaled by 1/sqrt(head dim)", "true", "true");
    add_check(a, &t, "scale_attn_by_inverse_layer_idx", "attention scaled by layer", "false", "false");
    add_check(a, &t, "add_cross_attention", "cross-attention", "false", "false");
    return t;
}

/* Names every exported global of m by the family (hf_name, and hf_part / hf_axis /
 * hf_transpose for a part of a joined or transposed tensor). */
static void name_globals(Arena *a, const SpecModel *md, IrModule *m, const Block *B, bool gpt2)
{
    const char *layer_prefix = gpt2 ? "transformer.h" : "model.layers";
    for (int i = 0; i < md->n_params; i++) {
        const SpecParam *p = &md->params[i];
        HfName n = gpt2 ? gpt2_param_name(B, p) : llama_param_name(B, p);
        for (int64_t layer = 0; layer < (n.per_layer ? md->layers : 1); layer++) {
            IrGlobal *g = ir_global_find(m, spec_param_name(a, p, layer));
            if (!g)
                continue;
            ir_attrs_set_str(a, &g->attrs, "hf_name",
                             n.per_layer ? arena_sprintf(a, "%s.%lld.%s", layer_prefix, (long long)layer, n.key) : n.key);
            if (n.part || n.axis || n.transpose || (gpt2 && n.key && strstr(n.key, "c_attn"))) {
                ir_attrs_set_int(a, &g->attrs, "hf_part", n.part);
                ir_attrs_set_int(a, &g->attrs, "hf_axis", n.axis);
                ir_attrs_set_int(a, &g->attrs, "hf_transpose", n.transpose);
            }
        }
    }
}

void fe_hf_annotate(Arena *a, const Spec *s, IrModule *m)
{
    const SpecModel *md = &s->model;
    Block L = {0}, G = {0};
    bool is_llama = match_block(&md->block, &L), is_gpt2 = !is_llama && match_gpt2_block(&md->block, &G);
    const char *why;
    if (is_llama)
        why = llama_mismatch(a, md, &L);
    else if (is_gpt2)
        why = gpt2_mismatch(a, md, &G);
    else
        why = arena_sprintf(a, "the block computes `%s`; LlamaForCausalLM's computes `%s`; GPT2LMHeadModel's "
                               "computes `%s`",
                            block_text(a, &md->block), LLAMA_BLOCK, GPT2_BLOCK);
    if (why) {
        ir_attrs_set_str(a, &m->attrs, "hf.export_note",
                         arena_sprintf(a, "not exported as %s: %s",
                                       is_llama  ? "LlamaForCausalLM"
                                       : is_gpt2 ? "GPT2LMHeadModel"
                                                 : "LlamaForCausalLM or GPT2LMHeadModel",
                                       why));
        return;
    }
    name_globals(a, md, m, is_gpt2 ? &G : &L, is_gpt2);
    ir_attrs_set_str(a, &m->attrs, "hf.config_json", is_gpt2 ? gpt2_config(a, md, &G) : llama_config(a, md, &L));
    ir_attrs_set_str(a, &m->attrs, "hf.config_check", is_gpt2 ? gpt2_checks(a, md, &G) : llama_checks(a, md, &L));
    ir_attrs_set_str(a, &m->attrs, "hf.prefix", is_gpt2 ? "transformer." : "model.");
}
