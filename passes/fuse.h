/* The fusion pass's helpers, for tests and later passes. */
#ifndef RELORAC_PASSES_FUSE_H
#define RELORAC_PASSES_FUSE_H

#include "ir.h"

/* Assigns f's fusion groups from scratch (passes/fuse.c); returns how many. */
int pass_fuse_func(Arena *scratch, IrFunc *f);
/* The kernelizer's rule (ir/kernelize.c, group_is_fusible): every member elementwise
 * with the last member's element count, and no non-member before the last member
 * using a member. False too when the group has no member. */
bool pass_fuse_group_legal(const IrFunc *f, int group);

#endif
