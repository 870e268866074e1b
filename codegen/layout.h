/* layout.h: where every buffer of a kernel program lives at run time, for every backend:
 * memory class -> runtime pool (one table), classes sharing a pool one after another in
 * class order at 64-byte boundaries, a buffer at pools[pool] + offset. Internal to codegen/. */
#ifndef RELORAC_LAYOUT_H
#define RELORAC_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "kernel.h"
#include "rt.h"

typedef struct CgBufLoc {
    int pool;       /* enum RtPool */
    int64_t offset; /* bytes from the pool base */
    int64_t bytes;
} CgBufLoc;

typedef struct CgLayout {
    CgBufLoc *loc; /* per buffer (arena) */
    int64_t pool_bytes[RT_POOL_COUNT];
} CgLayout;

/* Lays out p's buffers; false after a diagnostic (a buffer outside its class's bytes). */
bool cg_layout(const KProgram *p, Diags *d, CgLayout *out);
/* Whether two buffers share bytes. */
bool cg_layout_overlap(const CgLayout *l, int a, int b);

#endif
