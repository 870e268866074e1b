/* The model's identity for checkpoints: a hash of the architecture and the parameter set,
 * so that a checkpoint resumes or loads into any trainer of the same model whatever its
 * schedule, data, step count, batch, sequence length, target or precision. The hash is
 * FNV-1a 64 over a canonical text of exactly those facts; nothing else reaches it. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lower.h"

typedef struct Hash {
    uint64_t h;
} Hash;

static void put(Hash *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Hash *h, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = (int)sizeof buf - 1;
    for (int i = 0; i < n; i++)
        h->h = (h->h ^ (unsigned char)buf[i]) * 0x100000001b3ull;
    h->h = (h->h ^ '\n') * 0x100000001b3ull;
}

static void module_text(Hash *h, const SpecModule *m)
{
    put(h, "module %s %s in %" PRId64 " out %" PRId64, spec_module_kind_name(m->kind), m->name, m->in_dim,
        m->out_dim);
    switch (m->kind) {
    case SPEC_MOD_ATTENTION:
        put(h, " heads %" PRId64 " kv %" PRId64 " hd %" PRId64 " rope %d %.17g", m->heads, m->kv_heads, m->head_dim,
            (int)m->has_rope, m->has_rope ? m->rope_theta : 0.0);
        break;
    case SPEC_MOD_SWIGLU:
    case SPEC_MOD_GEGLU: put(h, " hidden %" PRId64, m->hidden); break;
    case SPEC_MOD_RMSNORM:
    case SPEC_MOD_LAYERNORM: put(h, " eps %.17g", m->eps); break;
    case SPEC_MOD_LINEAR: break;
    }
    put(h, " bias %d", (int)m->has_bias);
}

/* The block's dataflow, each node once, operands first. */
static void node_text(Hash *h, const SpecNode *n, bool *seen)
{
    if (seen[n->id])
        return;
    seen[n->id] = true;
    if (n->kind == SPEC_NODE_LOCAL) {
        node_text(h, n->a, seen);
        put(h, "n%d = n%d", n->id, n->a->id);
        return;
    }
    if (n->a)
        node_text(h, n->a, seen);
    if (n->b)
        node_text(h, n->b, seen);
    switch (n->kind) {
    case SPEC_NODE_INPUT: put(h, "n%d = input", n->id); break;
    case SPEC_NODE_ADD: put(h, "n%d = add n%d n%d", n->id, n->a->id, n->b->id); break;
    case SPEC_NODE_MUL: put(h, "n%d = mul n%d n%d", n->id, n->a->id, n->b->id); break;
    case SPEC_NODE_SCALE: put(h, "n%d = scale %.17g n%d", n->id, n->scale, n->a->id); break;
    case SPEC_NODE_ACT: put(h, "n%d = %s n%d", n->id, spec_act_name(n->act), n->a->id); break;
    case SPEC_NODE_MODULE:
        module_text(h, n->module);
        put(h, "n%d = %s n%d", n->id, n->module->name, n->a->id);
        break;
    case SPEC_NODE_LOCAL: break;
    }
}

const char *fe_model_hash(Arena *a, const Spec *s)
{
    const SpecModel *m = &s->model;
    Hash h = {0xcbf29ce484222325ull};
    put(&h, "relorac-model-1 vocab %" PRId64 " dim %" PRId64 " layers %" PRId64 " context %" PRId64, m->vocab,
        m->dim, m->layers, m->context);
    put(&h, "tied %d positions %d norm %d eps %.17g norm_bias %d", (int)m->tied, (int)m->positions, (int)m->norm,
        m->norm_eps, (int)m->norm_bias);
    bool *seen = ARENA_ARRAY(a, bool, m->block.n_nodes + 1);
    node_text(&h, m->block.ret, seen);
    for (int i = 0; i < m->n_params; i++) {
        const SpecParam *p = &m->params[i];
        put(&h, "param %s [%" PRId64 ",%" PRId64 "] layers %d relora_trainable %d", p->name, p->shape[0],
            p->ndim > 1 ? p->shape[1] : 0, (int)p->is_per_layer, (int)p->is_trainable_relora);
        if (p->linear && p->linear->weight == p && p->linear->is_adapted)
            put(&h, "  adapted rank %" PRId64, p->linear->rank);
    }
    if (s->adapter.is_present)
        put(&h, "adapter alpha %.17g rank %" PRId64, s->adapter.alpha, s->adapter.rank);
    return arena_sprintf(a, "%016" PRIx64, h.h);
}
