/* fields.c: the field table expanded from fields.def, lookups over it, and the
 * markdown tables of docs/language.md. Each STORE is checked at compile time against
 * the storage its TYPE promises, so a row cannot point the checker at the wrong
 * member. */
#include "fields.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#define WORDS(...) ((const char *const[]){__VA_ARGS__, NULL})

const FieldSectionDesc fe_sections[FS_COUNT] = {
#define SECTION(ID, NAME, PARENT, SYNTAX) [FS_##ID] = {NAME, FIELD_##PARENT, SYNTAX},
#define FIELD(...)
#include "fields.def"
#undef SECTION
#undef FIELD
};

const FieldDesc fe_fields[FIELD_COUNT] = {
#define SECTION(...)
#define FIELD(ID, SEC, NAME, TYPE, FLAGS, DEF, LO, HI, WORDS_, STORE, ATTR, LABEL, DOC)                             \
    [FIELD_##ID] = {FIELD_##ID, FS_##SEC, NAME, FT_##TYPE, FLAGS, DEF, LO, HI, WORDS_, offsetof(Spec, STORE), ATTR,    \
                    LABEL, DOC},
#include "fields.def"
#undef SECTION
#undef FIELD
};

/* The storage each type promises (fields.def). Enums are written as int. */
#define STORE_OK_INT(x) _Generic(&(x), int64_t *: 1, default: 0)
#define STORE_OK_STEPS(x) _Generic(&(x), SpecSteps *: 1, default: 0)
#define STORE_OK_NUM(x) _Generic(&(x), double *: 1, default: 0)
#define STORE_OK_BOOL(x) _Generic(&(x), bool *: 1, default: 0)
#define STORE_OK_WORD(x) (sizeof(x) == sizeof(int))
#define STORE_OK_STR(x) _Generic(&(x), const char **: 1, default: 0)
#define STORE_OK_NAMES(x) _Generic(&(x), SpecNames *: 1, default: 0)
#define STORE_OK_DATA(x) _Generic(&(x), SpecData *: 1, default: 0)
#define STORE_OK_PAIR(x) _Generic(&(x), double(*)[2]: 1, default: 0)
#define STORE_OK_CALL(x) (sizeof(x) == sizeof(int))
#define STORE_OK_BLOCK(x) _Generic(&(x), SpecBlock *: 1, default: 0)
#define SECTION(...)
#define FIELD(ID, SEC, NAME, TYPE, FLAGS, DEF, LO, HI, WORDS_, STORE, ...)                                           \
    _Static_assert(STORE_OK_##TYPE(((Spec *)0)->STORE), #ID ": the member does not hold a " #TYPE);
#include "fields.def"
#undef SECTION
#undef FIELD

const FieldDesc *fe_field_find(FieldSection s, const char *name)
{
    for (int i = 0; i < FIELD_COUNT; i++)
        if (fe_fields[i].section == s && !strcmp(fe_fields[i].name, name))
            return &fe_fields[i];
    return NULL;
}

FieldSection fe_section_find(const char *name)
{
    for (int i = 0; i < FS_COUNT; i++)
        if (!strcmp(fe_sections[i].name, name))
            return (FieldSection)i;
    return FS_COUNT;
}

int fe_field_kinds(const FieldDesc *f, FieldSection *first)
{
    int n = 0;
    for (int i = FS_COUNT - 1; i >= 0; i--)
        if (fe_sections[i].parent == f->id) {
            *first = (FieldSection)i;
            n++;
        }
    return n;
}

const void *fe_field_value(const Spec *s, const FieldDesc *f)
{
    return (const char *)s + f->offset;
}

void *fe_field_slot(Spec *s, const FieldDesc *f)
{
    return (char *)s + f->offset;
}

const char *fe_field_label(const FieldDesc *f)
{
    return f->label ? f->label : f->name;
}

const char *fe_fields_percent_names(Arena *a)
{
    const char *names[FIELD_COUNT];
    int n = 0;
    for (int i = 0; i < FIELD_COUNT; i++) {
        const FieldDesc *f = &fe_fields[i];
        if (f->type != FT_STEPS && !(f->flags & FF_PERCENT))
            continue;
        bool seen = false;
        for (int j = 0; j < n; j++)
            seen = seen || !strcmp(names[j], f->name);
        if (!seen)
            names[n++] = f->name;
    }
    const char *s = "";
    for (int i = 0; i < n; i++)
        s = arena_sprintf(a, "%s%s%s", s, i == 0 ? "" : i == n - 1 ? " and " : ", ", names[i]);
    return s;
}

/* ---- the docs tables ----------------------------------------------------------- */

/* 2147483648 -> "2^31"; other bounds as %g. */
static void bound_str(char *buf, size_t size, double v)
{
    int e;
    if (v >= 0x1p20 && frexp(v, &e) == 0.5)
        snprintf(buf, size, "2^%d", e - 1);
    else
        snprintf(buf, size, "%g", v);
}

/* "int in [1, 2^31)", "number > 0", "`none` \| `learned`" */
static void type_str(char *buf, size_t size, const FieldDesc *f)
{
    char lo[32], hi[32];
    bool has_lo = isfinite(f->lo), has_hi = isfinite(f->hi);
    bool lo_open = f->flags & FF_LO_OPEN, hi_open = f->flags & FF_HI_OPEN;
    size_t n = 0;
    buf[0] = '\0';
    switch (f->type) {
    case FT_INT:
        /* integers: an open lower bound is the next integer */
        bound_str(lo, sizeof lo, lo_open ? f->lo + 1 : f->lo);
        bound_str(hi, sizeof hi, f->hi);
        if (has_lo && has_hi)
            snprintf(buf, size, "int in [%s, %s%c", lo, hi, hi_open ? ')' : ']');
        else if (has_lo)
            snprintf(buf, size, "int ≥ %s", lo);
        else
            snprintf(buf, size, "int");
        return;
    case FT_NUM:
    case FT_PAIR:
        bound_str(lo, sizeof lo, f->lo);
        bound_str(hi, sizeof hi, f->hi);
        n = (size_t)snprintf(buf, size, "%s", f->type == FT_PAIR ? "(number, number), each" : "number");
        if (has_lo && has_hi)
            n += (size_t)snprintf(buf + n, size - n, " in %c%s, %s%c", lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']');
        else if (has_lo)
            n += (size_t)snprintf(buf + n, size - n, " %s %s", lo_open ? ">" : "≥", lo);
        else if (has_hi)
            n += (size_t)snprintf(buf + n, size - n, " %s %s", hi_open ? "<" : "≤", hi);
        if (f->flags & FF_PERCENT)
            snprintf(buf + n, size - n, ", `%%` ok");
        return;
    case FT_STEPS: snprintf(buf, size, "int, or `%%` of `steps`"); return;
    case FT_BOOL: snprintf(buf, size, "bool"); return;
    case FT_STR: snprintf(buf, size, "string"); return;
    case FT_NAMES: snprintf(buf, size, "list of strings"); return;
    case FT_BLOCK: snprintf(buf, size, "definition"); return;
    case FT_WORD:
    case FT_DATA:
        for (int i = 0; f->words[i] && n < size; i++)
            n += (size_t)snprintf(buf + n, size - n, f->type == FT_DATA ? "%s`%s(\"FILE\")`" : "%s`%s`",
                                  i ? " \\| " : "", f->words[i]);
        return;
    case FT_CALL: {
        FieldSection first = FS_COUNT;
        int k = fe_field_kinds(f, &first);
        for (int i = 0; i < k && n < size; i++)
            n += (size_t)snprintf(buf + n, size - n, "%s`%s(...)`", i ? " \\| " : "", fe_sections[first + i].name);
        return;
    }
    }
}

/* A table cell: '|' escaped. */
static void cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

void fe_fields_print_markdown(FILE *out, FieldSection s)
{
    char type[256];
    fprintf(out, "| field | type | default | meaning |\n|---|---|---|---|\n");
    for (int i = 0; i < FIELD_COUNT; i++) {
        const FieldDesc *f = &fe_fields[i];
        if (f->section != s)
            continue;
        type_str(type, sizeof type, f);
        fprintf(out, f->type == FT_BLOCK ? "| `%s(x) { ... }` | " : "| `%s` | ", f->name);
        fprintf(out, "%s | ", type);
        if (!f->def)
            fprintf(out, "required");
        else if (f->flags & FF_COMPUTED)
            cell(out, f->def);
        else {
            fputc('`', out);
            cell(out, f->def);
            fputc('`', out);
        }
        fprintf(out, " | ");
        cell(out, f->doc);
        fprintf(out, " |\n");
    }
}

/* s without markdown: no backquotes, no "\\" before '|'. */
static const char *plain(char *buf, size_t size, const char *s)
{
    size_t n = 0;
    for (; *s && n + 1 < size; s++)
        if (*s != '`' && !(*s == '\\' && s[1] == '|'))
            buf[n++] = *s;
    buf[n] = '\0';
    return buf;
}

/* s, then spaces up to `width` columns: a column is a UTF-8 character, not a byte
 * (printf's %-34s padded "int ≥ 1" two columns short). */
static void put_padded(FILE *out, const char *s, int width)
{
    int cols = 0;
    for (const char *c = s; *c; c++)
        cols += ((unsigned char)*c & 0xC0) != 0x80;
    fprintf(out, "%s%*s", s, width > cols ? width - cols : 0, "");
}

void fe_fields_print_text(FILE *out)
{
    char type[256], t[256], d[256], doc[512];
    for (int i = 0; i < FIELD_COUNT; i++) {
        const FieldDesc *f = &fe_fields[i];
        const FieldSectionDesc *sec = &fe_sections[f->section];
        char path[96];
        if (sec->parent == FIELD_NONE)
            snprintf(path, sizeof path, "%s.%s", sec->name, f->name);
        else
            snprintf(path, sizeof path, "%s.%s.%s", fe_sections[fe_fields[sec->parent].section].name,
                     fe_fields[sec->parent].name, f->name);
        type_str(type, sizeof type, f);
        put_padded(out, path, 30);
        fputc(' ', out);
        put_padded(out, sec->parent == FIELD_NONE ? "" : sec->name, 9);
        fputc(' ', out);
        put_padded(out, plain(t, sizeof t, type), 34);
        fputc(' ', out);
        put_padded(out, plain(d, sizeof d, f->def ? f->def : "required"), 28);
        fprintf(out, " %s\n", plain(doc, sizeof doc, f->doc));
    }
}
