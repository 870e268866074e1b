/* The IR's text form, printed. One canonical spelling per module: globals by id,
 * functions in order, node ids as they are, attributes sorted by key, floats in the
 * shortest form that reads back to the same double. ir_parse reads this back, so
 * print(parse(t)) == t holds for every printed t. Grammar: docs/ir.md. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

static const char *const flag_names[] = {"trainable", "decay", "export", "adapter", "moment"};

/* A name that can be printed bare after '@' (globals, functions). */
static bool is_bare_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '.' || c == '$' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* A name that can be printed as a bare identifier (module names, attribute keys). */
static bool is_bare_ident(const char *s)
{
    unsigned char c = (unsigned char)*s;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'))
        return false;
    for (s++; *s; s++) {
        c = (unsigned char)*s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '.';
        if (!ok)
            return false;
    }
    return true;
}

/* "..." with \" \\ \n \t and \xHH for other control bytes; bytes >= 0x80 go out raw. */
static void print_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void print_at_name(FILE *out, const char *s)
{
    fputc('@', out);
    if (s && is_bare_name(s))
        fputs(s, out);
    else
        print_string(out, s ? s : "");
}

static void print_ident(FILE *out, const char *s)
{
    if (s && is_bare_ident(s))
        fputs(s, out);
    else
        print_string(out, s ? s : "");
}

/* The shortest %.Ng that reads back to v, marked as a float ("1.0", not "1"). */
static void print_float(FILE *out, double v)
{
    if (isnan(v)) {
        fputs("nan", out);
        return;
    }
    if (isinf(v)) {
        fputs(v < 0 ? "-inf" : "inf", out);
        return;
    }
    char buf[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    /* %g switches to an exponent once the digits run out (10000 -> "1e+04"); below
     * 1e16 the fixed form is as short to read and closer to what people write. */
    if (strchr(buf, 'e') && fabs(v) >= 1 && fabs(v) < 1e16) {
        for (int dec = 0; dec <= 17; dec++) {
            snprintf(buf, sizeof buf, "%.*f", dec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
    fputs(buf, out);
    if (!strpbrk(buf, ".e"))
        fputs(".0", out);
}

static void print_type(FILE *out, IrType t)
{
    fputs(t.dtype >= IR_F32 && t.dtype <= IR_I32 ? ir_dtype_name(t.dtype) : "?", out);
    fputc('[', out);
    for (int i = 0; i < t.rank && i < IR_MAX_RANK; i++)
        fprintf(out, i ? ",%lld" : "%lld", (long long)t.dim[i]);
    fputc(']', out);
}

static void print_attr_value(FILE *out, const IrAttr *at)
{
    switch (at->kind) {
    case IR_ATTR_INT:
        fprintf(out, "%lld", (long long)at->i);
        break;
    case IR_ATTR_FLOAT:
        print_float(out, at->f);
        break;
    case IR_ATTR_STR:
        print_string(out, at->s ? at->s : "");
        break;
    case IR_ATTR_INTS:
        fputc('[', out);
        for (int i = 0; i < at->n_ints && at->ints; i++)
            fprintf(out, i ? ", %lld" : "%lld", (long long)at->ints[i]);
        fputc(']', out);
        break;
    default:
        fputs("?", out);
    }
}

/* The attribute after (prev_key, prev_idx) in (key, index) order, or -1. as is kept
 * sorted by ir_attrs_set, but the printer does not rely on it; lists are short. */
static int next_attr(const IrAttrs *as, int prev)
{
    int best = -1;
    for (int i = 0; i < as->n; i++) {
        const char *k = as->items[i].key ? as->items[i].key : "";
        if (prev >= 0) {
            int c = strcmp(k, as->items[prev].key ? as->items[prev].key : "");
            if (c < 0 || (c == 0 && i <= prev))
                continue;
        }
        if (best >= 0) {
            int c = strcmp(k, as->items[best].key ? as->items[best].key : "");
            if (c > 0 || (c == 0 && i > best))
                continue;
        }
        best = i;
    }
    return best;
}

/* " {k = v, ...}" or nothing when empty. */
static void print_attrs(FILE *out, const IrAttrs *as)
{
    if (as->n <= 0)
        return;
    fputs(" {", out);
    for (int i = next_attr(as, -1), first = 1; i >= 0; i = next_attr(as, i), first = 0) {
        if (!first)
            fputs(", ", out);
        print_ident(out, as->items[i].key);
        fputs(" = ", out);
        print_attr_value(out, &as->items[i]);
    }
    fputc('}', out);
}

/* loc("file":line:col), or loc(unknown) so that a node without a location does not
 * pick up one in the IR file when the text is parsed back. */
static void print_loc(FILE *out, const IrPrintOpts *o, SrcLoc loc)
{
    if (!o || !o->locs)
        return;
    if (!loc.file) {
        fputs(" loc(unknown)", out);
        return;
    }
    fputs(" loc(", out);
    print_string(out, loc.file);
    fprintf(out, ":%d:%d)", loc.line, loc.col);
}

/* The node's name as a trailing comment; control bytes would end the line early, so
 * they print as '?' (ir_verify rejects such names). */
static void print_node_name(FILE *out, const char *name)
{
    if (!name || !*name)
        return;
    fputs("  # ", out);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, out);
}

static void print_global_decl(FILE *out, const IrGlobal *g, const IrPrintOpts *o)
{
    fputs("  global ", out);
    print_at_name(out, g->name);
    fputs(" : ", out);
    print_type(out, g->type);
    fprintf(out, " %s", g->cls >= 0 && g->cls < IR_CLASS_COUNT ? ir_class_name(g->cls) : "?");
    const char *sep = " ";
    for (unsigned i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++) {
        if (g->flags & (1u << i)) {
            fprintf(out, "%s%s", sep, flag_names[i]);
            sep = "|";
        }
    }
    print_attrs(out, &g->attrs);
    print_loc(out, o, g->loc);
    fputc('\n', out);
}

static void print_node(FILE *out, const IrNode *n, const IrPrintOpts *o)
{
    bool known = n->op >= 0 && n->op < IR_OP_COUNT;
    bool effect = known && (ir_op_info[n->op].flags & OPF_EFFECT);
    fputs("  ", out);
    if (!effect)
        fprintf(out, "%%%d = ", n->id);
    fputs(known ? ir_op_info[n->op].name : "?", out);
    const char *sep = " ";
    for (int i = 0; i < n->n_in; i++) {
        if (n->in[i])
            fprintf(out, "%s%%%d", sep, n->in[i]->id);
        else
            fprintf(out, "%s%%?", sep);
        sep = ", ";
    }
    for (int i = 0; i < n->n_gl; i++) {
        fputs(sep, out);
        print_at_name(out, n->gl[i] ? n->gl[i]->name : "?");
        sep = ", ";
    }
    print_attrs(out, &n->attrs);
    if (!effect) {
        fputs(" : ", out);
        print_type(out, n->type);
    }
    if (n->group >= 0)
        fprintf(out, " group(%d)", n->group);
    print_loc(out, o, n->loc);
    print_node_name(out, n->name);
    fputc('\n', out);
}

void ir_print_func_with(const IrModule *m, const IrFunc *f, const IrPrintOpts *o, FILE *out)
{
    (void)m;
    fputs("func ", out);
    print_at_name(out, f->name);
    fputs(" {\n", out);
    for (int i = 0; i < f->n_nodes; i++)
        if (f->nodes[i])
            print_node(out, f->nodes[i], o);
    if (f->ret)
        fprintf(out, "  ret %%%d\n", f->ret->id);
    fputs("}\n", out);
}

void ir_print_with(const IrModule *m, const IrPrintOpts *o, FILE *out)
{
    fputs("module ", out);
    if (m->name && *m->name) {
        print_ident(out, m->name);
        fputc(' ', out);
    }
    fputs("{\n", out);
    for (int i = next_attr(&m->attrs, -1); i >= 0; i = next_attr(&m->attrs, i)) {
        fputs("  attr ", out);
        print_ident(out, m->attrs.items[i].key);
        fputs(" = ", out);
        print_attr_value(out, &m->attrs.items[i]);
        fputc('\n', out);
    }
    for (int i = 0; i < m->n_globals; i++)
        if (m->globals[i])
            print_global_decl(out, m->globals[i], o);
    fputs("}\n", out);
    for (int i = 0; i < m->n_funcs; i++) {
        if (!m->funcs[i])
            continue;
        fputc('\n', out);
        ir_print_func_with(m, m->funcs[i], o, out);
    }
}

void ir_print(const IrModule *m, FILE *out)
{
    ir_print_with(m, NULL, out);
}

void ir_print_func(const IrModule *m, const IrFunc *f, FILE *out)
{
    ir_print_func_with(m, f, NULL, out);
}
