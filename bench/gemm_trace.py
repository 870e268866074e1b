#!/usr/bin/env python3
"""bench/gemm_trace.py: what one training step's GEMMs pack, from RELORAC_GEMM_TRACE lines.

A trainer run with RELORAC_GEMM_TRACE=1 prints one stderr line per GEMM the engine
(runtime/gemm.c) runs: "relorac gemm: KIND M N K TA TB LAYOUT PARTS PACKED_PRE PACKED_OWN"
(KIND gemm, or pair_n / pair_k for rt_sgemm_pair; packed counts in floats, padding
included). These counts do not depend on the machine's load. Runs of the same trainer
with --steps S and --steps S+1 differ by exactly one step (the end-of-run evaluation is
in both), so

    RELORAC_GEMM_TRACE=1 ./trainer --steps 1 ... 2> a.txt
    RELORAC_GEMM_TRACE=1 ./trainer --steps 2 ... 2> b.txt
    bench/gemm_trace.py a.txt b.txt

lists step 2's GEMMs by shape: calls, GFLOP and MiB packed. GEMMs issued from inside a
pool job (the fused attention's tiles) are not traced. Stdlib only.
"""
import collections
import sys


def load(path):
    c = collections.Counter()
    with open(path) as f:
        for line in f:
            if line.startswith("relorac gemm: "):
                c[tuple(line.split()[2:])] += 1
    return c


def step_gemms(before, after):
    d = load(after)
    d.subtract(load(before))
    return +d


def report(title, d):
    rows = collections.defaultdict(lambda: [0, 0, 0, 0])
    for f, n in d.items():
        kind, m, nn, k, ta, tb, lay, parts, pre, own = f
        r = rows[(kind, int(m), int(nn), int(k), int(ta), int(tb), lay)]
        r[0] += n
        r[1] += n * 2 * int(m) * int(nn) * int(k)
        r[2] += n * int(pre)
        r[3] += n * int(own)
    print(title)
    print("  %-6s %5s %5s %5s ta tb layout calls  GFLOP  MiB packed (pre-packed + own)" % ("kind", "M", "N", "K"))
    t = [0, 0, 0, 0]
    for key in sorted(rows, key=lambda k: k[1:] + k[:1]):
        r = rows[key]
        print("  %-6s %5d %5d %5d %2d %2d %-6s %5d %6.2f %8.1f + %8.1f"
              % (key + (r[0], r[1] / 1e9, r[2] * 4 / 2**20, r[3] * 4 / 2**20)))
        t = [x + y for x, y in zip(t, r)]
    print("  total: %d GEMM calls, %.2f GFLOP, %.1f MiB packed (pre-packed %.1f, own %.1f)"
          % (t[0], t[1] / 1e9, (t[2] + t[3]) * 4 / 2**20, t[2] * 4 / 2**20, t[3] * 4 / 2**20))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: bench/gemm_trace.py TRACE_STEPS_S TRACE_STEPS_S_PLUS_1")
    report("the step's GEMMs", step_gemms(sys.argv[1], sys.argv[2]))


if __name__ == "__main__":
    main()
