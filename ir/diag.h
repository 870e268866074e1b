/* Diagnostics: source locations and the error list every phase reports into.
 * Phases record all the errors they find and return false; the driver prints them
 * once, as `file:line:col: error: message`, the source line and a `^~~~` span. */
#ifndef RELORAC_DIAG_H
#define RELORAC_DIAG_H

#include <stdbool.h>
#include <stdio.h>

#include "arena.h"

/* A span in one source file; line and col are 1-based, len counts columns (>= 1).
 * file == NULL means "no location" (command line, internal). */
typedef struct SrcLoc {
    const char *file;
    int line, col, len;
} SrcLoc;

typedef enum { DIAG_ERROR, DIAG_WARNING, DIAG_NOTE } DiagLevel;

typedef struct DiagEntry {
    DiagLevel level;
    SrcLoc loc;
    const char *msg;
} DiagEntry;

typedef struct DiagSource {
    const char *name;
    const char *text;
    size_t len;
} DiagSource;

typedef struct Diags {
    Arena *arena;
    DiagEntry *list;
    int n, cap;
    int n_errors, n_warnings;
    DiagSource *sources;
    int n_sources, cap_sources;
    int max_errors; /* stop recording after this many errors (0: no limit) */
} Diags;

void diag_init(Diags *d, Arena *a);
/* Registers a file's text so diagnostics can quote its lines. name and text must
 * outlive d (copy them into the arena first if they do not). */
void diag_add_source(Diags *d, const char *name, const char *text, size_t len);

void diag_error(Diags *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_warning(Diags *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_note(Diags *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prints every entry in the order recorded. With strip_dirs, file names are shown
 * without their directories (golden tests compare such output). */
void diag_print(const Diags *d, FILE *out, bool strip_dirs);

/* Internal bugs (never user errors): print file:line and what failed, then abort, in
 * every build type. */
#define IR_ASSERT(c) ((c) ? (void)0 : diag_internal_fail(__FILE__, __LINE__, #c))
#define UNREACHABLE() diag_internal_fail(__FILE__, __LINE__, "unreachable code reached")
_Noreturn void diag_internal_fail(const char *file, int line, const char *what);

/* The candidate closest to name by edit distance, or NULL when none is close enough
 * to be a plausible typo (distance <= max(1, len/3)). */
const char *diag_suggest(const char *name, const char *const *cands, int n);

static inline SrcLoc srcloc_none(void)
{
    SrcLoc l = {0, 0, 0, 0};
    return l;
}

#endif
