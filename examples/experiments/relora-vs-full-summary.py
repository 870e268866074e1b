#!/usr/bin/env python3
"""Summarises the relora-vs-full experiment from the results.csv that `relorac sweep`
writes (docs/results/README.md shows its output).

    python3 examples/experiments/relora-vs-full-summary.py out/relora-vs-full/results.csv

Prints Markdown: the learning-rate grids (validation loss of each short run, the
chosen rate in bold), then per model size and method the final validation loss of
each seed, their mean, bits per byte and perplexity, the gaps between methods in
percent of the validation loss and of the perplexity (of the seed means), and the
differences within each seed (a seed fixes the batches, the validation sample and the
shared initialisation). Only the Python standard library is used.
"""
import csv
import math
import re
import sys
from collections import defaultdict

METHODS = ["full", "lora", "relora", "control"]


def fnum(s):
    return float(s) if s not in ("", None) else math.nan


def fmt(v, spec=".4f"):
    return format(v, spec) if not math.isnan(v) else "–"


def main(path):
    rows = list(csv.DictReader(open(path, newline="")))
    out = []

    # -- learning-rate grids: sweeps named tune_*; the rate is the lr axis of the row
    tune = defaultdict(dict)  # (size, method) -> {lr: val_loss}
    for r in rows:
        if not r["sweep"].startswith("tune"):
            continue
        lr = r.get("train.optimizer.lr") or r.get("train.schedule.lr") or ""
        m = re.match(r"(full|control|lora|relora)(\d)?x?$", r["variant"])
        if not m or not lr:
            continue
        method = m.group(1)
        size = m.group(2) or re.sub(r"\D", "", r.get("model", ""))
        val = fnum(r["val_loss"]) if r["status"] == "done" else math.nan
        tune[(size, method)][lr] = (val, r["status"])
    if tune:
        out.append("### Learning rates (200-step runs, final validation loss in nats per byte)\n")
        out.append("| size | method | " + " | ".join(["rates tried → validation loss"]) + " | chosen |")
        out.append("|---|---|---|---|")
        for (size, method) in sorted(tune, key=lambda k: (k[0], METHODS.index(k[1]))):
            grid = tune[(size, method)]
            done = {lr: v for lr, (v, st) in grid.items() if not math.isnan(v)}
            best = min(done, key=done.get) if done else None
            cells = []
            for lr in sorted(grid, key=float):
                v, st = grid[lr]
                text = f"{lr}: {fmt(v)}" if not math.isnan(v) else f"{lr}: {st}"
                cells.append(f"**{text}**" if lr == best else text)
            out.append(f"| s{size} | {method} | {', '.join(cells)} | {best or '–'} |")
        out.append("")

    # -- the comparison: sweeps s1, s2, ... with variants full, lora, relora, control
    main_rows = defaultdict(list)  # (size, method) -> rows
    for r in rows:
        if re.fullmatch(r"s\d+", r["sweep"]) and r["variant"] in METHODS:
            main_rows[(r["sweep"], r["variant"])].append(r)
    if not main_rows:
        print("\n".join(out))
        return
    sizes = sorted({k[0] for k in main_rows}, key=lambda s: int(s[1:]))
    mean = {}
    out.append("### Final validation loss per seed\n")
    out.append("| size | method | params | trained in the ReLoRA phase | seeds: val loss | mean val loss "
               "| spread (max − min) | bits/byte | perplexity | tokens/s | peak RSS MiB |")
    out.append("|---|---|--:|--:|---|--:|--:|--:|--:|--:|--:|")
    for size in sizes:
        for method in METHODS:
            rs = main_rows.get((size, method), [])
            if not rs:
                continue
            rs.sort(key=lambda r: r.get("train.seed", ""))
            vals = [fnum(r["val_loss"]) for r in rs if r["status"] == "done"]
            seeds = ", ".join(f"{r.get('train.seed', '?')}: {fmt(fnum(r['val_loss'])) if r['status'] == 'done' else r['status']}"
                              for r in rs)
            m = sum(vals) / len(vals) if vals else math.nan
            mean[(size, method)] = m
            spread = max(vals) - min(vals) if len(vals) > 1 else math.nan
            trained = rs[0]["trainable_relora"] or rs[0]["params"]
            toks = [fnum(r["tokens_per_s"]) for r in rs if r["tokens_per_s"]]
            rss = [fnum(r["peak_rss_mib"]) for r in rs if r["peak_rss_mib"]]
            out.append(f"| {size} | {method} | {int(rs[0]['params']):,} | {int(trained):,} | {seeds} | {fmt(m)} "
                       f"| {fmt(spread)} | {fmt(m / math.log(2))} | {fmt(math.exp(m), '.3f')} "
                       f"| {fmt(sum(toks) / len(toks), '.0f') if toks else '–'} "
                       f"| {fmt(max(rss), '.1f') if rss else '–'} |")
    out.append("")

    def gap(size, a, b):
        la, lb = mean.get((size, a), math.nan), mean.get((size, b), math.nan)
        return (100 * (la - lb) / lb, 100 * (math.exp(la) - math.exp(lb)) / math.exp(lb))

    out.append("### Gaps (of the seed means; positive: the first is worse)\n")
    out.append("| size | relora − full, % loss | % ppl | relora − lora, % loss | % ppl | lora − full, % loss "
               "| % ppl | control − full, % loss | % ppl |")
    out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for size in sizes:
        cells = []
        for a, b in (("relora", "full"), ("relora", "lora"), ("lora", "full"), ("control", "full")):
            gl, gp = gap(size, a, b)
            cells += [fmt(gl, "+.2f"), fmt(gp, "+.2f")]
        out.append(f"| {size} | " + " | ".join(cells) + " |")

    # -- paired by seed: a seed fixes the batches, the validation sample and the
    # initialisation of every shape the methods share, so the difference within a seed
    # leaves out what the seeds' spread mostly measures
    per_seed = {}  # (size, method) -> {seed: val_loss}
    for (size, method), rs in main_rows.items():
        per_seed[(size, method)] = {r.get("train.seed", "?"): fnum(r["val_loss"]) for r in rs if r["status"] == "done"}
    out.append("")
    out.append("### Gaps within each seed (nats per byte; positive: the first is worse)\n")
    out.append("| size | relora − full | relora − lora | lora − full | control − full | relora − control |")
    out.append("|---|---|---|---|---|---|")
    for size in sizes:
        cells = []
        for a, b in (("relora", "full"), ("relora", "lora"), ("lora", "full"), ("control", "full"),
                     ("relora", "control")):
            sa, sb = per_seed.get((size, a), {}), per_seed.get((size, b), {})
            common = sorted(set(sa) & set(sb))
            cells.append(", ".join(f"{k}: {sa[k] - sb[k]:+.4f}" for k in common) or "–")
        out.append(f"| {size} | " + " | ".join(cells) + " |")
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: relora-vs-full-summary.py DIR/results.csv")
    main(sys.argv[1])
