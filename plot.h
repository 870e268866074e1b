/* plot.h: `relorac plot DIR`: a training run's metrics.jsonl drawn as a PNG or SVG by
 * gnuplot (docs/runtime.md describes the metrics lines). */
#ifndef RELORAC_PLOT_H
#define RELORAC_PLOT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"

enum { PLOT_EV_WARM_SWITCH = 1u << 0, PLOT_EV_RESET = 1u << 1 };

/* One metrics line. Absent or null values are NaN. */
typedef struct PlotPoint {
    int64_t step;     /* the 0-based index of the step, as the trainer writes it */
    double loss;      /* training loss of that step, nats/token */
    double lr;        /* learning rate used by that step */
    double val_loss;  /* validation loss after the step */
    unsigned events;  /* PLOT_EV_*: after this step the warm start ended / adapters merged */
} PlotPoint;

typedef struct PlotMetrics {
    PlotPoint *p;     /* by step, increasing: a step logged again (a resumed run) replaces
                         the earlier records from that step on */
    int n;
} PlotMetrics;

/* Reads a metrics.jsonl file. Returns 0; 2 when it cannot be read; 1 after printing
 * `path:line:col: error: ...` to err for a line that is not a JSON object with a
 * non-negative integer "step", a "loss"/"lr"/"val_loss" that is not a number or null,
 * "events" that is not an array of strings, or a file without any line. An
 * unterminated last line that does not parse (a trainer killed while writing it) is
 * skipped with a warning. */
int plot_metrics_read(Arena *a, const char *path, PlotMetrics *m, FILE *err);

/* Draws m into out_path (PNG, or SVG when it ends in ".svg") with gnuplot: training
 * loss (and its running mean), validation loss and learning rate against steps done,
 * the end of the warm start and every merge marked. title goes on top. Writes the
 * data and script into a new folder under tmp_root that it removes. Returns 0, or 2
 * after a message (gnuplot not installed, gnuplot failed, I/O). */
int plot_draw(Arena *a, const PlotMetrics *m, const char *title, const char *out_path, const char *tmp_root,
              FILE *err);

#endif
