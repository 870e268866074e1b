/* Arena: the bump allocator that owns everything one compilation creates (AST, IR,
 * strings, diagnostics). Objects are never freed alone; arena_fini frees all at once.
 * Every byte comes through one hook so tests can fail the N-th allocation, and an
 * out-of-memory longjmps to the handler the driver installed (never returns NULL). */
#ifndef RELORAC_ARENA_H
#define RELORAC_ARENA_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

typedef struct ArenaChunk ArenaChunk;

/* The allocation hook: returns NULL to simulate (or report) exhaustion. */
typedef void *(*ArenaAllocFn)(void *ctx, size_t size);

typedef struct Arena {
    ArenaChunk *head;     /* newest chunk; older chunks hang off ->next */
    size_t total;         /* bytes requested from the hook so far */
    ArenaAllocFn alloc;   /* defaults to malloc */
    void *alloc_ctx;
    jmp_buf *oom_jmp;     /* where to longjmp on exhaustion; NULL: print and abort */
} Arena;

void arena_init(Arena *a);
void arena_fini(Arena *a);

/* Zeroed, 16-byte aligned memory owned by the arena. */
void *arena_alloc(Arena *a, size_t size);
/* Grows an arena array: returns a copy of old (old_n elems) with room for new_n. */
void *arena_grow(Arena *a, void *old, size_t old_n, size_t new_n, size_t elem);
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_sprintf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_vsprintf(Arena *a, const char *fmt, va_list ap);

#define ARENA_NEW(a, T) ((T *)arena_alloc((a), sizeof(T)))
#define ARENA_ARRAY(a, T, n) ((T *)arena_alloc((a), sizeof(T) * (size_t)(n)))

#endif
