/* fields: the table of every .relora field (fields.def) and what reads it generically:
 * lookup by section and name, where a field's value lives in a Spec, and the
 * markdown tables of docs/language.md. The checker, the report and the lowering
 * take names, types, defaults, bounds and attribute names from here only. */
#ifndef RELORAC_FIELDS_H
#define RELORAC_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "arena.h"
#include "spec.h"

typedef enum {
#define SECTION(ID, ...) FS_##ID,
#define FIELD(...)
#include "fields.def"
#undef SECTION
#undef FIELD
    FS_COUNT
} FieldSection;

typedef enum {
#define SECTION(...)
#define FIELD(ID, ...) FIELD_##ID,
#include "fields.def"
#undef SECTION
#undef FIELD
    FIELD_COUNT,
    FIELD_NONE = FIELD_COUNT /* a section that is not a call's */
} FieldId;

typedef enum { FT_INT, FT_STEPS, FT_NUM, FT_BOOL, FT_WORD, FT_STR, FT_NAMES, FT_DATA, FT_PAIR, FT_CALL, FT_BLOCK } FieldType;

enum {
    FF_LO_OPEN = 1,  /* lo itself is out of range */
    FF_HI_OPEN = 2,  /* hi itself is out of range */
    FF_PERCENT = 4,  /* NUM: may be written as a percentage, 10% = 0.1 */
    FF_COMPUTED = 8, /* the checker computes the default; def describes it */
};

typedef struct FieldSectionDesc {
    const char *name;   /* "model", "adamw", "relora" */
    FieldId parent;     /* the call field a call section belongs to, or FIELD_NONE */
    const char *syntax; /* how it is written: "schedule = relora(...)" */
} FieldSectionDesc;

/* One row of fields.def (see there for each column). */
typedef struct FieldDesc {
    FieldId id;
    FieldSection section;
    const char *name;
    FieldType type;
    unsigned flags;
    const char *def;          /* DSL text; NULL: required */
    double lo, hi;            /* bounds (INT, NUM, PAIR items); +-INFINITY: none */
    const char *const *words; /* NULL-terminated, or NULL */
    size_t offset;            /* of the value in a Spec */
    const char *attr;         /* module attribute, or NULL */
    const char *label;        /* name in range errors; NULL: name (see fe_field_label) */
    const char *doc;
} FieldDesc;

extern const FieldDesc fe_fields[FIELD_COUNT];
extern const FieldSectionDesc fe_sections[FS_COUNT];

/* The field `name` of section s; NULL when there is none. */
const FieldDesc *fe_field_find(FieldSection s, const char *name);
/* The section named name ("model", "relora"); FS_COUNT when there is none. */
FieldSection fe_section_find(const char *name);
/* The call sections of a CALL field (adamw; constant, cosine, relora) in kind order:
 * the section of kind k is first + k. Returns how many. */
int fe_field_kinds(const FieldDesc *f, FieldSection *first);
/* Where f's value lives in s (its type per fields.def: int64_t, SpecSteps, ...). */
const void *fe_field_value(const Spec *s, const FieldDesc *f);
void *fe_field_slot(Spec *s, const FieldDesc *f);
/* What range errors call f: "lora rank", or its name. */
const char *fe_field_label(const FieldDesc *f);

/* The names of the fields that accept a percentage, "val_fraction, warmup, ... and
 * prune", for messages. */
const char *fe_fields_percent_names(Arena *a);

/* Prints the markdown table of a section's fields (docs/language.md keeps these
 * between `<!-- fields NAME -->` and `<!-- end fields -->`). */
void fe_fields_print_markdown(FILE *out, FieldSection s);
/* Prints every field as `section.name  type  default  doc`, one per line. */
void fe_fields_print_text(FILE *out);

#endif
