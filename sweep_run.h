/* sweep_run.h: `relorac sweep`: builds and trains the variants of a spec's sweeps and
 * writes their results as a table and a plot (docs/language.md §6, §8). The driver
 * (main.c) parses the command line and expands the variants (fe_sweep_expand); this
 * runs them. */
#ifndef RELORAC_SWEEP_RUN_H
#define RELORAC_SWEEP_RUN_H

#include <stdbool.h>
#include <stdio.h>

#include "arena.h"
#include "fe.h"
#include "ir.h"

typedef struct SweepRunOptions {
    const char *spec_path;
    const char *out_dir;  /* builds/, runs/, results.csv, results.md, val_loss.svg */
    const char *runtime_lib; /* librelorac_rt.a the binaries link; NULL: the build tree's */
    const char *link_args;   /* extra linker arguments (the runtime's run path); may be NULL */
    int jobs;             /* variants (or builds) at a time, >= 1 */
    int threads;          /* in all, divided among the jobs; 0: the online CPUs */
    bool is_list;         /* only list the variants, their builds and their state */
    bool is_tty;          /* out is a terminal: a status line is redrawn in place */
    FILE *out, *err;
} SweepRunOptions;

/* Runs the variants (vars[i].spec NULL: recorded as failed with vars[i].error).
 * Variants whose compiled program differs only in run-time settings share one
 * binary; a variant finished by an earlier run with the same binary and settings is
 * skipped, an interrupted one resumed from its checkpoint. SIGINT/SIGTERM stop the
 * trainers at a checkpoint. Returns the exit code: 0 every variant finished (done, or
 * diverged: a result too), 1 a variant failed, 2 an I/O error in DIR, 128 + the
 * signal when stopped. */
int sweep_run(Arena *a, const FeVariant *vars, int n, const SweepRunOptions *o);

/* The module attributes that are run-time settings of a trainer, and the trainer
 * option each one is passed as (NULL: the sweep sets that option itself). Two
 * variants whose compiled modules are equal once these are removed share a binary. */
typedef struct SweepRuntimeAttr {
    const char *attr;
    const char *option;
} SweepRuntimeAttr;
extern const SweepRuntimeAttr sweep_runtime_attrs[];
extern const int sweep_n_runtime_attrs;

/* The compiled module m with the run-time attributes removed, as IR text (malloc'd;
 * the caller frees it): what decides whether two variants share a binary. */
char *sweep_build_text(const IrModule *m, size_t *len);

#endif
