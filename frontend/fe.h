/* Frontend entry points: parse .relora text into an AST, check it into a Spec.
 * Everything is allocated in the caller's Arena and reported into its Diags; no
 * function here prints, exits or keeps global state, so the same calls serve the
 * driver, the unit tests and a libFuzzer target. */
#ifndef RELORAC_FE_H
#define RELORAC_FE_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "ast.h"
#include "diag.h"
#include "spec.h"

/* Max nesting of brackets/braces the lexer tracks for "unclosed" notes. */
#define FE_MAX_NEST 64

/* Parser state for one buffer (the lexer and parser read and write it). */
typedef struct FeCtx {
    Arena *arena;
    Diags *diags;
    const char *file;          /* name put in every SrcLoc */
    const char *src;           /* the text being parsed (for quoting tokens in messages) */
    size_t src_len;
    int start_token;           /* internal: selects file or override grammar */
    int line, col;             /* lexer position of the next character */
    int paren_depth;           /* newlines inside () and [] are not separators */
    SrcLoc open[FE_MAX_NEST];  /* open brackets, innermost last */
    char open_ch[FE_MAX_NEST];
    int n_open;
    int n_syntax_errors;
    AstFile *ast;              /* fe_parse_buffer result */
    AstVec items;              /* internal: items while parsing */
    AstVec stmts;              /* fe_parse_overrides result (AstStmt *) */
} FeCtx;

void fe_ctx_init(FeCtx *ctx, Arena *a, Diags *d);

/* Parses len bytes of text (any bytes; need not be NUL-terminated) named name into
 * ctx->ast and registers the text with the Diags for quoting. Returns false when a
 * syntax error was reported; ctx->ast then still holds what could be recovered.
 * Deterministic, and allocates only from ctx->arena (an exhausted arena longjmps to
 * arena->oom_jmp as usual). */
bool fe_parse_buffer(FeCtx *ctx, const char *name, const char *text, size_t len);

/* Parses command-line overrides `key=value` (the text of each -D) into assignment
 * statements with full paths (`train.steps`). Their SrcLocs name "<command line>",
 * line i+1 being defines[i]. */
bool fe_parse_overrides(FeCtx *ctx, const char *const *defines, int n, AstVec *out);
/* The same, with the SrcLocs naming `source` ("<--grid>") instead. */
bool fe_parse_overrides_as(FeCtx *ctx, const char *source, const char *const *defines, int n, AstVec *out);

typedef struct FeOptions {
    const char *model_name;     /* NULL: the last model declared */
    const char *const *defines; /* -D texts, "train.steps=100" */
    int n_defines;
    bool is_training;           /* missing data files are errors, not warnings */
    /* The CPU a target = cpu trainer is built for, which precision = bf16 needs to have
     * AVX512-BF16 (§5): its name for messages ("--cpu cooperlake", "this machine's ...";
     * NULL: "the target CPU") and whether it has the feature (false when not known). */
    const char *cpu_name;
    bool cpu_has_bf16;
} FeOptions;

/* Checks a parsed file (plus override statements, full paths) into a Spec.
 * Returns NULL when any error was reported. */
const Spec *fe_check(Arena *a, Diags *d, const AstFile *file, AstStmt *const *overrides, int n_overrides,
                     const FeOptions *opt);

/* Reads path, parses, applies opt->defines and checks: the one call the driver and
 * the IR lowering need. Returns NULL after reporting errors (an unreadable file is
 * reported as an error with no line). */
const Spec *fe_load_spec(Arena *a, Diags *d, const char *path, const FeOptions *opt);

/* fe_load_spec on text already in memory (name is used in locations). */
const Spec *fe_load_spec_buffer(Arena *a, Diags *d, const char *name, const char *text, size_t len,
                                const FeOptions *opt);

/* Reads a whole file (a regular file or a pipe) of at most max bytes into the arena; NULL
 * on failure, with *why saying why ("No such file or directory", "a character device, not
 * a file", "longer than 16 MiB"). A FIFO without a writer reads as empty instead of
 * blocking; a pipe that never ends (`yes | relorac check /dev/stdin`) stops at max. */
char *fe_read_file(Arena *a, const char *path, size_t max, size_t *len, const char **why);

/* The longest spec file read: a spec is text of a few kilobytes (bytes). */
#define FE_SPEC_MAX ((size_t)16 << 20)

/* One expanded variant of a sweep: its name, the values it takes on the grid axes,
 * and its spec (NULL when it failed to check). */
typedef struct FeVariant {
    const char *name;           /* "width_rank/dim=128,rank=4", "cmp/relora,lr=2e-3", "cmp/full" */
    const char *sweep;          /* the sweep's name */
    const char *variant;        /* the named variant, or NULL */
    const char **keys;          /* per axis, the key's shortest suffix that no other axis of this
                                   variant ends with: "dim", "optimizer.lr" next to "schedule.lr" */
    const char **paths;         /* per axis, the whole key: "model.dim", "train.optimizer.lr" */
    const char **values;        /* per axis, this variant's value as written: "128", "[\"*\"]" */
    int n_axes;
    const Spec *spec;
    int n_errors;
    const char *error;          /* spec == NULL: the first error, "file:line:col: message" */
} FeVariant;

typedef struct FeSweepOptions {
    const char *sweep_name;     /* NULL: every sweep */
    const char *const *grids;   /* --grid texts, "train.optimizer.lr=[1e-3, 2e-3]" */
    int n_grids;
} FeSweepOptions;

/* Expands the sweeps of the file (every one, or so->sweep_name) into their variants:
 * for each named variant (or once, when the sweep names none), every point of the
 * grid of its axes and the sweep's; a --grid adds an axis to each sweep (or forms a
 * sweep named "grid" when the file declares none). Each point is checked with its
 * overrides applied and opt->defines after them. Diagnostics of failing variants go
 * to d, and the variant keeps its first error. Returns false when the file itself
 * has errors (or a --grid is malformed, or there is no sweep so->sweep_name). */
bool fe_sweep_expand(Arena *a, Diags *d, const char *name, const char *text, size_t len, const FeOptions *opt,
                     const FeSweepOptions *so, FeVariant **out, int *n_out);

#endif
