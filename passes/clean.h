/* Helpers shared by the clean-up passes (dce, cse, constfold): use counts, operand
 * replacement and removal of dead nodes. Node lists are rewritten in place; removed
 * nodes stay in the arena, unreferenced. */
#ifndef RELORAC_PASSES_CLEAN_H
#define RELORAC_PASSES_CLEAN_H

#include "ir.h"

/* One more than the largest node id in f: the size of arrays indexed by id. */
int pass_func_id_bound(const IrFunc *f);
/* Nodes whose values reach an effect or the ret, by id (arena array). */
bool *pass_func_live(Arena *scratch, const IrFunc *f);
/* Replaces every operand n (and the ret) by repl[n->id] when that is set, following
 * chains. */
void pass_func_replace(IrFunc *f, IrNode *const *repl);
/* Drops the nodes with keep[id] false, keeping order; renumbers when any went.
 * Returns how many went. */
int pass_func_remove(IrFunc *f, const bool *keep);
/* Removes dead nodes (dce for one function); returns how many went. */
int pass_func_dce(Arena *scratch, IrFunc *f);

#endif
