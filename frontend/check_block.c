/* check_block.c: `block(x) { ... }` (§3.2) becomes the block's typed dataflow graph:
 * each primitive call is checked against its keyword arguments and becomes a node,
 * the calls with parameters become named modules with their linears. */
#include <ctype.h>
#include <string.h>

#include "checker.h"

typedef enum {
    P_ATTENTION, P_SWIGLU, P_GEGLU, P_LINEAR, P_RMSNORM, P_LAYERNORM, P_GELU, P_RELU, P_SILU, P_SCALE, P_COUNT
} Prim;

/* The primitives, the keyword arguments each takes, and whether a call is a module
 * (has parameters, and a name). */
static const struct {
    const char *name;
    const char *const *kws;
    int max_pos;
    bool is_module;
} prims[P_COUNT] = {
    [P_ATTENTION] = {"attention", (const char *const[]){"rope", "heads", "kv_heads", "bias", "name", NULL}, 1, true},
    [P_SWIGLU] = {"swiglu", (const char *const[]){"hidden", "bias", "name", NULL}, 1, true},
    [P_GEGLU] = {"geglu", (const char *const[]){"hidden", "bias", "name", NULL}, 1, true},
    [P_LINEAR] = {"linear", (const char *const[]){"out", "bias", "name", NULL}, 1, true},
    [P_RMSNORM] = {"rmsnorm", (const char *const[]){"eps", "name", NULL}, 1, true},
    [P_LAYERNORM] = {"layernorm", (const char *const[]){"eps", "bias", "name", NULL}, 1, true},
    [P_GELU] = {"gelu", NULL, 1, false},
    [P_RELU] = {"relu", NULL, 1, false},
    [P_SILU] = {"silu", NULL, 1, false},
    [P_SCALE] = {"scale", NULL, 2, false},
};

/* The primitive named name, or P_COUNT. */
static Prim prim_find(const char *name)
{
    for (int p = 0; p < P_COUNT; p++)
        if (!strcmp(prims[p].name, name))
            return (Prim)p;
    return P_COUNT;
}

/* The primitives' names, NULL-terminated (for suggestions). */
static const char **prim_names(Ck *ck)
{
    const char **names = arena_alloc(ck->a, sizeof(char *) * (P_COUNT + 1));
    for (int p = 0; p < P_COUNT; p++)
        names[p] = prims[p].name;
    names[P_COUNT] = NULL;
    return names;
}

typedef struct Local {
    const char *name;
    SrcLoc loc;
    SpecNode *value;
    bool is_used;
} Local;

typedef struct ModName {
    const AstExpr *call;
    const char *name;
} ModName;

typedef struct BlockCk {
    Ck *ck;
    SpecModel *m;
    Section *sec;
    Env env;
    const char *param;
    SpecNode *input;
    Local *locals;
    int n_locals, cap_locals;
    ModName *names;
    int n_names, cap_names;
    AstVec modules;
    int next_id;
    bool ok;
} BlockCk;

static SpecNode *node_new(BlockCk *b, SpecNodeKind kind, SrcLoc loc, int64_t dim)
{
    SpecNode *n = ARENA_NEW(b->ck->a, SpecNode);
    n->kind = kind;
    n->loc = loc;
    n->dim = dim;
    n->id = b->next_id++;
    return n;
}

/* Default module names (§3.3): the kind, or kind_1, kind_2... in source order when a
 * kind occurs more than once without `name =`. */
static void collect_calls(BlockCk *b, const AstExpr *e, AstVec *calls, int depth)
{
    if (!e || depth > 200)
        return;
    if (e->kind == AST_CALL) {
        fe_vec_push(b->ck->a, calls, (void *)e);
        for (int i = 0; i < e->n_args; i++)
            collect_calls(b, e->args[i].value, calls, depth + 1);
    } else if (e->kind == AST_BINARY) {
        collect_calls(b, e->lhs, calls, depth + 1);
        collect_calls(b, e->rhs, calls, depth + 1);
    } else if (e->kind == AST_NEG) {
        collect_calls(b, e->lhs, calls, depth + 1);
    }
}

static const AstExpr *call_name_arg(const AstExpr *call)
{
    for (int i = 0; i < call->n_args; i++)
        if (call->args[i].name && !strcmp(call->args[i].name, "name"))
            return call->args[i].value;
    return NULL;
}

static void name_modules(BlockCk *b, const AstStmt *def)
{
    AstVec calls = {0};
    for (int i = 0; i < def->n_body; i++)
        if (def->body[i]->value)
            collect_calls(b, def->body[i]->value, &calls, 0);
    int count[P_COUNT] = {0}, seen[P_COUNT] = {0};
    for (int i = 0; i < calls.n; i++) {
        const AstExpr *c = calls.data[i];
        Prim p = prim_find(c->text);
        if (p < P_COUNT && prims[p].is_module && !call_name_arg(c))
            count[p]++;
    }
    b->names = arena_alloc(b->ck->a, sizeof(ModName) * (size_t)(calls.n + 1));
    for (int i = 0; i < calls.n; i++) {
        const AstExpr *c = calls.data[i];
        Prim p = prim_find(c->text);
        if (p == P_COUNT || !prims[p].is_module)
            continue;
        const AstExpr *n = call_name_arg(c);
        const char *name;
        if (n)
            name = n->kind == AST_STRING ? n->text : NULL;
        else if (count[p] == 1)
            name = prims[p].name;
        else
            name = arena_sprintf(b->ck->a, "%s_%d", prims[p].name, ++seen[p]);
        if (name)
            b->names[b->n_names++] = (ModName){c, name};
    }
}

static const char *module_name_of(BlockCk *b, const AstExpr *call)
{
    for (int i = 0; i < b->n_names; i++)
        if (b->names[i].call == call)
            return b->names[i].name;
    return NULL;
}

/* Adds a linear to mod (while mod is built: the array may move). */
static void linear_add(BlockCk *b, SpecModule *mod, const char *name, int64_t in, int64_t out, bool bias)
{
    mod->linears = arena_grow(b->ck->a, mod->linears, (size_t)mod->n_linears, (size_t)mod->n_linears + 1,
                              sizeof *mod->linears);
    SpecLinear *l = &mod->linears[mod->n_linears++];
    memset(l, 0, sizeof *l);
    l->name = name;
    l->full_name = mod->kind == SPEC_MOD_LINEAR ? mod->name : arena_sprintf(b->ck->a, "%s.%s", mod->name, name);
    l->in = in;
    l->out = out;
    l->has_bias = bias;
    l->module = mod;
}

typedef struct ValSrc {
    int64_t v;
    SrcLoc loc;     /* where the value was set */
    bool is_kwarg;  /* set by the call (not the model default) */
} ValSrc;

static bool kw_int(BlockCk *b, const Call *c, const char *name, int64_t def, SrcLoc def_loc, ValSrc *out)
{
    const KwArg *k = ck_kwarg(c, name);
    out->v = def;
    out->loc = def_loc;
    out->is_kwarg = false;
    if (!k)
        return true;
    out->is_kwarg = true;
    out->loc = k->value->loc;
    if (!ck_to_int(b->ck, name, k->value, &b->env, 0, &out->v, NULL))
        return false;
    return true;
}

static bool kw_bool(BlockCk *b, const Call *c, const char *name, bool def, bool *out)
{
    const KwArg *k = ck_kwarg(c, name);
    *out = def;
    return !k || ck_to_bool(b->ck, name, k->value, out);
}

static bool kw_num(BlockCk *b, const Call *c, const char *name, double def, double *out)
{
    const KwArg *k = ck_kwarg(c, name);
    *out = def;
    return !k || ck_to_num(b->ck, name, k->value, &b->env, false, out);
}

static Val eval_block(BlockCk *b, const AstExpr *e, int depth);

/* The tensor operand of a primitive. */
static SpecNode *tensor_arg(BlockCk *b, const Call *c, int i, const char *what, int depth)
{
    if (c->n_pos <= i) {
        ck_err(b->ck, c->e->loc, "%s needs its input tensor as the first argument", what);
        return NULL;
    }
    Val v = eval_block(b, c->pos[i], depth + 1);
    if (v.k == V_ERR)
        return NULL;
    if (v.k != V_TENSOR) {
        ck_err(b->ck, c->pos[i]->loc, "%s: argument %d must be a tensor (got %s)", what, i + 1, ck_val_kind_name(&v));
        return NULL;
    }
    return v.node;
}

static SpecModule *module_new(BlockCk *b, SpecModuleKind kind, const char *name, SrcLoc loc, int64_t in)
{
    SpecModule *mod = ARENA_NEW(b->ck->a, SpecModule);
    mod->kind = kind;
    mod->name = name;
    mod->loc = loc;
    mod->in_dim = in;
    mod->out_dim = in;
    return mod;
}

static bool positive(Ck *ck, const char *what, const ValSrc *v)
{
    if (v->v >= 1)
        return true;
    ck_err(ck, v->loc, "%s must be > 0 (got %lld)", what, (long long)v->v);
    return false;
}

/* attention(x, rope = THETA | none, heads =, kv_heads =, bias =, name =) (§3.2). */
static SpecModule *prim_attention(BlockCk *b, const Call *c, const char *name, SpecNode *x)
{
    Ck *ck = b->ck;
    SpecModel *m = b->m;
    Entry *fh = ck_field(b->sec, "heads"), *fk = ck_field(b->sec, "kv_heads");
    ValSrc heads, kv;
    bool ok = kw_int(b, c, "heads", m->heads, fh ? fh->stmt->value->loc : c->e->loc, &heads);
    int64_t kv_def = ck_kwarg(c, "heads") ? heads.v : m->kv_heads;
    ok = kw_int(b, c, "kv_heads", kv_def, fk ? fk->stmt->value->loc : c->e->loc, &kv) && ok;
    bool bias;
    ok = kw_bool(b, c, "bias", m->bias, &bias) && ok;
    bool has_rope = false;
    double theta = 0;
    const KwArg *r = ck_kwarg(c, "rope");
    if (r) {
        Val v = ck_eval_const(ck, r->value, &b->env, 0);
        if (v.k == V_WORD && v.s && !strcmp(v.s, "none")) {
            has_rope = false;
        } else if ((v.k == V_INT || v.k == V_FLOAT) && !v.is_pct) {
            has_rope = true;
            theta = v.f;
            if (theta <= 0) {
                ck_err(ck, r->value->loc, "rope theta must be > 0 (got %g)", theta);
                ok = false;
            }
        } else if (v.k != V_ERR) {
            ck_err(ck, r->value->loc, "'rope' must be a base frequency like 10000 or none (got %s)", ck_val_kind_name(&v));
            ok = false;
        } else {
            ok = false;
        }
    }
    if (!ok)
        return NULL;
    int64_t d = x->dim;
    /* Model-level heads/kv_heads are checked with the model; here only what the call
     * changes (kwargs, or an input narrower than the model dim). */
    bool model_vals = !heads.is_kwarg && !kv.is_kwarg && d == m->dim;
    if (!model_vals) {
        if (!positive(ck, "attention heads", &heads) || !positive(ck, "attention kv_heads", &kv))
            return NULL;
        if (d % heads.v != 0) {
            ck_err(ck, heads.loc, "dim must be divisible by heads: attention input size %lld is not divisible by heads = %lld",
                (long long)d, (long long)heads.v);
            return NULL;
        }
        if (heads.v % kv.v != 0) {
            ck_err(ck, kv.loc, "heads must be divisible by kv_heads: heads = %lld, kv_heads = %lld", (long long)heads.v,
                (long long)kv.v);
            return NULL;
        }
    } else if (heads.v < 1 || kv.v < 1 || d % heads.v != 0 || heads.v % kv.v != 0) {
        return NULL; /* reported with the model fields */
    }
    int64_t hd = d / heads.v;
    if (has_rope && hd % 2 != 0) {
        ck_err(ck, r->value->loc, "rope needs an even head dim: %lld / %lld heads = %lld", (long long)d,
            (long long)heads.v, (long long)hd);
        return NULL;
    }
    SpecModule *mod = module_new(b, SPEC_MOD_ATTENTION, name, c->e->loc, d);
    mod->heads = heads.v;
    mod->kv_heads = kv.v;
    mod->head_dim = hd;
    mod->has_rope = has_rope;
    mod->rope_theta = theta;
    mod->has_bias = bias;
    linear_add(b, mod, "q", d, heads.v * hd, bias);
    linear_add(b, mod, "k", d, kv.v * hd, bias);
    linear_add(b, mod, "v", d, kv.v * hd, bias);
    linear_add(b, mod, "o", heads.v * hd, d, bias);
    return mod;
}

static SpecModule *prim_glu(BlockCk *b, const Call *c, const char *name, SpecNode *x, SpecModuleKind kind)
{
    ValSrc hidden;
    bool bias;
    bool ok = kw_int(b, c, "hidden", 0, c->e->loc, &hidden);
    ok = kw_bool(b, c, "bias", b->m->bias, &bias) && ok;
    if (!ok)
        return NULL;
    if (!hidden.is_kwarg) {
        ck_err(b->ck, c->e->loc, "%s needs 'hidden = N' (the inner size, e.g. hidden = 4 * dim)",
            kind == SPEC_MOD_SWIGLU ? "swiglu" : "geglu");
        return NULL;
    }
    if (!positive(b->ck, "hidden", &hidden))
        return NULL;
    SpecModule *mod = module_new(b, kind, name, c->e->loc, x->dim);
    mod->hidden = hidden.v;
    mod->has_bias = bias;
    linear_add(b, mod, "gate", x->dim, hidden.v, bias);
    linear_add(b, mod, "up", x->dim, hidden.v, bias);
    linear_add(b, mod, "down", hidden.v, x->dim, bias);
    return mod;
}

static SpecModule *prim_linear(BlockCk *b, const Call *c, const char *name, SpecNode *x)
{
    ValSrc out;
    bool bias;
    bool ok = kw_int(b, c, "out", 0, c->e->loc, &out);
    ok = kw_bool(b, c, "bias", b->m->bias, &bias) && ok;
    if (!ok)
        return NULL;
    if (!out.is_kwarg) {
        ck_err(b->ck, c->e->loc, "linear needs 'out = N' (its output size)");
        return NULL;
    }
    if (!positive(b->ck, "linear out", &out))
        return NULL;
    SpecModule *mod = module_new(b, SPEC_MOD_LINEAR, name, c->e->loc, x->dim);
    mod->out_dim = out.v;
    mod->has_bias = bias;
    linear_add(b, mod, name, x->dim, out.v, bias);
    return mod;
}

static SpecModule *prim_norm(BlockCk *b, const Call *c, const char *name, SpecNode *x, SpecModuleKind kind)
{
    SpecModule *mod = module_new(b, kind, name, c->e->loc, x->dim);
    bool ok = kw_num(b, c, "eps", b->m->norm_eps, &mod->eps);
    if (kind == SPEC_MOD_LAYERNORM)
        ok = kw_bool(b, c, "bias", true, &mod->has_bias) && ok;
    if (ok && mod->eps <= 0) {
        /* eps comes from the call, or from the model's norm_eps (reported there) */
        const KwArg *k = ck_kwarg(c, "eps");
        if (k)
            ck_err(b->ck, k->value->loc, "norm eps must be > 0 (got %g)", mod->eps);
        ok = false;
    }
    return ok ? mod : NULL;
}

static bool valid_module_name(const char *s)
{
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

static Val eval_call(BlockCk *b, const AstExpr *e, int depth)
{
    Ck *ck = b->ck;
    Prim p = prim_find(e->text);
    if (p == P_COUNT) {
        ck_err(ck, e->loc, "unknown primitive '%s'%s", e->text, ck_suggest(ck, e->text, prim_names(ck)));
        return v_err();
    }
    const char *name = NULL;
    Entry **ovr = NULL;
    int n_ovr = 0;
    if (prims[p].is_module) {
        name = module_name_of(b, e);
        const AstExpr *na = call_name_arg(e);
        if (!name) {
            ck_err(ck, na->loc, "'name' must be a string like \"fc\" (got %s)", fe_expr_kind_name(na));
            return v_err();
        }
        if (!valid_module_name(name)) {
            ck_err(ck, na->loc, "module name \"%s\" must be an identifier (letters, digits, '_')", name);
            return v_err();
        }
        /* block.<module>.<arg> = v entries after the block definition (§3.5). */
        Entry **list = arena_alloc(ck->a, sizeof(Entry *) * (size_t)(b->sec->n + 1));
        int last_def = -1;
        for (int i = 0; i < b->sec->n; i++)
            if (b->sec->e[i].n == 1 && !strcmp(b->sec->e[i].parts[0], "block"))
                last_def = i;
        for (int i = last_def + 1; i < b->sec->n; i++) {
            Entry *o = &b->sec->e[i];
            if (o->n == 3 && !strcmp(o->parts[0], "block") && !strcmp(o->parts[1], name)) {
                o->is_used = true;
                if (!strcmp(o->parts[2], "name")) {
                    ck_err(ck, o->locs[2], "a module's name cannot be overridden");
                    continue;
                }
                list[n_ovr++] = o;
            }
        }
        ovr = list;
    }
    const char *what = arena_sprintf(ck->a, "%s()", e->text);
    Call c = ck_call_parse(ck, e, what, prims[p].max_pos, prims[p].kws, ovr, n_ovr);
    SpecNode *x = tensor_arg(b, &c, 0, what, depth);
    if (!c.ok || !x)
        return v_err();
    SpecModule *mod = NULL;
    SpecNode *n;
    switch (p) {
    case P_ATTENTION: mod = prim_attention(b, &c, name, x); break;
    case P_SWIGLU: mod = prim_glu(b, &c, name, x, SPEC_MOD_SWIGLU); break;
    case P_GEGLU: mod = prim_glu(b, &c, name, x, SPEC_MOD_GEGLU); break;
    case P_LINEAR: mod = prim_linear(b, &c, name, x); break;
    case P_RMSNORM: mod = prim_norm(b, &c, name, x, SPEC_MOD_RMSNORM); break;
    case P_LAYERNORM: mod = prim_norm(b, &c, name, x, SPEC_MOD_LAYERNORM); break;
    case P_GELU:
    case P_RELU:
    case P_SILU:
        n = node_new(b, SPEC_NODE_ACT, e->loc, x->dim);
        n->act = p == P_GELU ? SPEC_ACT_GELU : p == P_RELU ? SPEC_ACT_RELU : SPEC_ACT_SILU;
        n->a = x;
        return (Val){.k = V_TENSOR, .node = n};
    case P_SCALE: {
        if (c.n_pos != 2) {
            ck_err(ck, e->loc, "scale() takes a tensor and a number: scale(x, 0.5)");
            return v_err();
        }
        double s;
        if (!ck_to_num(ck, "scale", c.pos[1], &b->env, false, &s))
            return v_err();
        n = node_new(b, SPEC_NODE_SCALE, e->loc, x->dim);
        n->a = x;
        n->scale = s;
        return (Val){.k = V_TENSOR, .node = n};
    }
    case P_COUNT: break;
    }
    if (!mod)
        return v_err();
    for (int i = 0; i < b->modules.n; i++) {
        SpecModule *o = b->modules.data[i];
        if (!strcmp(o->name, mod->name)) {
            ck_err(ck, e->loc, "duplicate module name '%s' in the block (give one of them 'name = \"...\"')", mod->name);
            ck_note(ck, o->loc, "the other '%s' is here", mod->name);
            return v_err();
        }
    }
    fe_vec_push(ck->a, &b->modules, mod);
    n = node_new(b, SPEC_NODE_MODULE, e->loc, mod->out_dim);
    n->a = x;
    n->module = mod;
    return (Val){.k = V_TENSOR, .node = n};
}

static Val eval_block(BlockCk *b, const AstExpr *e, int depth)
{
    Ck *ck = b->ck;
    if (depth > 200) {
        ck_err(ck, e->loc, "expression is nested too deeply");
        return v_err();
    }
    switch (e->kind) {
    case AST_IDENT: {
        if (b->param && !strcmp(e->text, b->param))
            return (Val){.k = V_TENSOR, .node = b->input};
        for (int i = b->n_locals - 1; i >= 0; i--) {
            Local *l = &b->locals[i];
            if (!strcmp(l->name, e->text)) {
                l->is_used = true;
                if (!l->value)
                    return v_err();
                SpecNode *n = node_new(b, SPEC_NODE_LOCAL, e->loc, l->value->dim);
                n->a = l->value;
                n->local = l->name;
                return (Val){.k = V_TENSOR, .node = n};
            }
        }
        for (int i = 0; i < b->env.n; i++)
            if (!strcmp(b->env.names[i], e->text))
                return v_int(b->env.vals[i]);
        const char **cands = arena_alloc(ck->a, sizeof(char *) * (size_t)(b->n_locals + b->env.n + 2));
        int nc = 0;
        if (b->param)
            cands[nc++] = b->param;
        for (int i = 0; i < b->n_locals; i++)
            cands[nc++] = b->locals[i].name;
        for (int i = 0; i < b->env.n; i++)
            cands[nc++] = b->env.names[i];
        cands[nc] = NULL;
        ck_err(ck, e->loc, "unknown name '%s'%s", e->text, ck_suggest(ck, e->text, cands));
        return v_err();
    }
    case AST_CALL: return eval_call(b, e, depth);
    case AST_NUM: return ck_eval_num(ck, e);
    case AST_NEG: {
        Val v = eval_block(b, e->lhs, depth + 1);
        if (v.k == V_TENSOR) {
            SpecNode *n = node_new(b, SPEC_NODE_SCALE, e->loc, v.node->dim);
            n->a = v.node;
            n->scale = -1;
            return (Val){.k = V_TENSOR, .node = n};
        }
        return ck_negate(ck, e, v);
    }
    case AST_BINARY: {
        Val l = eval_block(b, e->lhs, depth + 1);
        Val r = eval_block(b, e->rhs, depth + 1);
        if (l.k == V_ERR || r.k == V_ERR)
            return v_err();
        if (l.k != V_TENSOR && r.k != V_TENSOR)
            return ck_arith(ck, e, l, r);
        if (e->op == '+' || (e->op == '*' && l.k == V_TENSOR && r.k == V_TENSOR)) {
            if (l.k != V_TENSOR || r.k != V_TENSOR) {
                ck_err(ck, e->loc, "'%c' needs two tensors here (got %s and %s)", e->op, ck_val_kind_name(&l),
                    ck_val_kind_name(&r));
                return v_err();
            }
            if (l.node->dim != r.node->dim) {
                ck_err(ck, e->loc, "shape mismatch in '%c': the left operand has feature size %lld, the right %lld",
                    e->op, (long long)l.node->dim, (long long)r.node->dim);
                return v_err();
            }
            SpecNode *n = node_new(b, e->op == '+' ? SPEC_NODE_ADD : SPEC_NODE_MUL, e->loc, l.node->dim);
            n->a = l.node;
            n->b = r.node;
            return (Val){.k = V_TENSOR, .node = n};
        }
        if (e->op == '*') {
            Val t = l.k == V_TENSOR ? l : r, s = l.k == V_TENSOR ? r : l;
            if (s.k != V_INT && s.k != V_FLOAT) {
                ck_err(ck, e->loc, "'*' multiplies a tensor by a tensor or a number (got %s)", ck_val_kind_name(&s));
                return v_err();
            }
            SpecNode *n = node_new(b, SPEC_NODE_SCALE, e->loc, t.node->dim);
            n->a = t.node;
            n->scale = s.f;
            return (Val){.k = V_TENSOR, .node = n};
        }
        ck_err(ck, e->loc, "'%c' is not defined on tensors (tensors support '+', '*' and scale())", e->op);
        return v_err();
    }
    case AST_STRING:
    case AST_BOOL:
    case AST_LIST:
    case AST_TUPLE:
        ck_err(ck, e->loc, "a %s cannot be used as a value in a block", fe_expr_kind_name(e));
        return v_err();
    }
    return v_err();
}

/* block(x) { local = expr ... return expr } (§3.2). */
static bool check_block(BlockCk *b, const AstStmt *def, SpecBlock *blk)
{
    Ck *ck = b->ck;
    blk->loc = def->loc;
    if (def->n_params != 1) {
        ck_err(ck, def->loc, "block takes exactly one parameter, its input: 'block(x) { ... }' (got %d)", def->n_params);
        if (def->n_params == 0)
            return false;
    }
    b->param = def->params[0];
    blk->param = b->param;
    b->input = node_new(b, SPEC_NODE_INPUT, def->param_locs[0], b->m->dim);
    name_modules(b, def);
    b->locals = arena_alloc(ck->a, sizeof(Local) * (size_t)(def->n_body + 1));
    bool ok = true;
    const AstStmt *ret = NULL;
    for (int i = 0; i < def->n_body; i++) {
        const AstStmt *s = def->body[i];
        if (ret) {
            ck_err(ck, s->loc, "statement after 'return' is never reached");
            ok = false;
            break;
        }
        if (s->kind == AST_STMT_DEF) {
            ck_err(ck, s->loc, "definitions cannot be nested in a block");
            ok = false;
            continue;
        }
        if (s->kind == AST_STMT_RETURN) {
            ret = s;
            Val v = eval_block(b, s->value, 0);
            if (v.k == V_ERR) {
                ok = false;
            } else if (v.k != V_TENSOR) {
                ck_err(ck, s->value->loc, "block must return a tensor (got %s)", ck_val_kind_name(&v));
                ok = false;
            } else if (v.node->dim != b->m->dim) {
                ck_err(ck, s->value->loc,
                    "block must return a tensor of the model dim %lld (the next layer's input); this one has %lld",
                    (long long)b->m->dim, (long long)v.node->dim);
                ok = false;
            } else {
                blk->ret = v.node;
            }
            continue;
        }
        if (s->path.n != 1) {
            ck_err(ck, s->loc, "only local names can be assigned in a block (got '%s')", fe_path_str(ck->a, &s->path));
            ok = false;
            continue;
        }
        const char *name = s->path.parts[0];
        bool is_field = false;
        for (int j = 0; j < b->env.n; j++)
            is_field = is_field || !strcmp(name, b->env.names[j]);
        if (!strcmp(name, b->param) || is_field || prim_find(name) < P_COUNT) {
            ck_err(ck, s->loc, "local '%s' would shadow %s", name,
                   !strcmp(name, b->param)       ? "the block input"
                   : prim_find(name) < P_COUNT ? "a primitive"
                                                 : "a model field");
            ok = false;
            continue;
        }
        for (int j = 0; j < b->n_locals; j++)
            if (!strcmp(b->locals[j].name, name)) {
                ck_err(ck, s->loc, "local '%s' is already defined (locals are assigned once)", name);
                ck_note(ck, b->locals[j].loc, "'%s' was defined here", name);
                ok = false;
            }
        Val v = eval_block(b, s->value, 0);
        if (v.k != V_TENSOR && v.k != V_ERR) {
            ck_err(ck, s->value->loc, "a block local must be a tensor (got %s)", ck_val_kind_name(&v));
            v.k = V_ERR;
        }
        if (v.k == V_ERR)
            ok = false;
        b->locals[b->n_locals++] = (Local){name, s->loc, v.k == V_TENSOR ? v.node : NULL, false};
    }
    if (!ret) {
        ck_err(ck, def->close_loc, "block must end with 'return <tensor>'");
        ok = false;
    }
    for (int i = 0; i < b->n_locals; i++)
        if (!b->locals[i].is_used && b->locals[i].value)
            ck_warn(ck, b->locals[i].loc, "local '%s' is never used", b->locals[i].name);
    blk->n_locals = b->n_locals;
    blk->locals = arena_alloc(ck->a, sizeof(SpecLocal) * (size_t)(b->n_locals + 1));
    for (int i = 0; i < b->n_locals; i++)
        blk->locals[i] = (SpecLocal){b->locals[i].name, b->locals[i].loc, b->locals[i].value};
    blk->modules = (SpecModule **)b->modules.data;
    blk->n_modules = b->modules.n;
    blk->n_nodes = b->next_id;
    return ok;
}

/* `block.<module>.<arg> = v` overrides that name no module of the block (§3.5). */
static bool check_block_overrides(Ck *ck, const SpecModel *m, Section *sec)
{
    bool ok = true;
    const char **names = arena_alloc(ck->a, sizeof(char *) * (size_t)(m->block.n_modules + 1));
    for (int j = 0; j < m->block.n_modules; j++)
        names[j] = m->block.modules[j]->name;
    for (int i = 0; i < sec->n; i++) {
        Entry *o = &sec->e[i];
        if (o->n < 2 || strcmp(o->parts[0], "block") || o->is_used)
            continue;
        o->is_used = true;
        if (o->n != 3) {
            ck_err(ck, o->locs[0], "block overrides name a module and an argument: 'block.<module>.<argument> = value'");
            ok = false;
        } else if (ck_find(o->parts[1], names) < 0) {
            ck_err(ck, o->locs[1], "no module named '%s' in the block of %s%s", o->parts[1], sec->what,
                   ck_suggest(ck, o->parts[1], names));
            ok = false;
        }
    }
    return ok;
}

bool ck_block(Ck *ck, Spec *spec, Section *sec, const AstStmt *def)
{
    SpecModel *m = &spec->model;
    BlockCk b = {.ck = ck, .m = m, .sec = sec};
    /* §3.4: the model's integer fields are names in the block's expressions */
    for (int i = 0; i < FIELD_COUNT; i++)
        if (fe_fields[i].section == FS_MODEL && fe_fields[i].type == FT_INT) {
            b.env.names[b.env.n] = fe_fields[i].name;
            b.env.vals[b.env.n++] = *(const int64_t *)fe_field_value(spec, &fe_fields[i]);
        }
    bool ok = check_block(&b, def, &m->block);
    return check_block_overrides(ck, m, sec) && ok;
}
