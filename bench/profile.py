#!/usr/bin/env python3
"""bench/profile.py: where a relorac trainer's step time goes, per phase, by kernel category.

Runs a binary built by bench/run.py (warm_start = W steps) for 2·W steps and attaches
`perf record -e cpu-clock` (all threads, user + kernel) to it twice: over full-rank steps
[skip, W-1) and ReLoRA steps [W+skip, 2W-1), so init, the switch, the final eval and the
checkpoint stay out. Samples are grouped by category:
  gemm (OpenBLAS compute + packing), blas-wait (OpenBLAS worker spin/yield),
  <category> of generated loop kernels (the op suffix of `<func>_k<N>_<op>`: slice, concat_a,
  transpose, adamw, softmax, ...), pool (rt_parallel_for / worker_main), libc, kernel.
Usage: bench/profile.py BIN [--phase-steps W] [--skip K] [--threads N] [--env K=V ...]
Prints one table per phase: category, % of samples, ms per step (samples / cores / steps).
"""
import argparse
import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lines_in(path):
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def wait_lines(path, n, proc):
    while lines_in(path) < n:
        if proc.poll() is not None:
            sys.exit(f"profile.py: trainer exited ({proc.returncode}) before step {n}")
        time.sleep(0.01)


def category(dso, sym):
    m = re.search(r"_k\d+_([a-z_]+)$", sym)
    if m:
        return m.group(1)
    if "libblis" in dso:
        return "gemm:ukr"  # BLIS's micro-kernel (its symbols are stripped)
    if "openblas" in dso or "blas" in dso:
        if re.search(r"sgemm|_kernel|copy|beta|gemm", sym):
            return "gemm"
        return "blas-wait"  # blas_thread_server, sched_yield wrappers, ...
    if re.search(r"\] (pack|transpose8|pack_shared|compute_part|blis_gemm|gemm_one)$", sym):
        return "gemm:pack+loops"
    if sym in ("worker_main", "rt_parallel_for", "run_part") or "pthread" in sym:
        return "pool"
    if "[k]" in sym or "kernel" in dso:
        return "kernel(sys)"
    if "[unknown]" in dso or "[unknown]" in sym:
        return "unknown"
    if "libm" in dso:
        return "libm:" + sym.split()[-1].split(".")[0]
    if "libc" in dso:
        return "libc:" + sym.split()[-1]
    return "other:" + sym.split()[-1]


class Perf:
    """`perf record -p PID`, started disabled and switched on/off through its control FIFO so
    the window is exact (not skewed by perf's attach time)."""

    def __init__(self, pid, data, d, tag):
        self.ctl, self.ack = os.path.join(d, tag + ".ctl"), os.path.join(d, tag + ".ack")
        os.mkfifo(self.ctl)
        os.mkfifo(self.ack)
        self.p = subprocess.Popen(["perf", "record", "-q", "-D", "-1", "-e", "cpu-clock", "-F", "999",
                                   "--control", f"fifo:{self.ctl},{self.ack}", "-p", str(pid),
                                   "-o", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.fc = open(self.ctl, "w")
        self.fa = open(self.ack, "r")

    def cmd(self, c):
        self.fc.write(c + "\n")
        self.fc.flush()
        self.fa.readline()

    def finish(self):
        self.p.send_signal(signal.SIGINT)
        self.p.wait()
        self.fc.close()
        self.fa.close()


def report(data):
    """{category: samples}, [(samples, dso, sym)] from one perf data file."""
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "-n", "--sort", "dso,sym",
                          "--field-separator=@"], capture_output=True, text=True).stdout
    cats, rows = collections.Counter(), []
    for line in out.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        _, n, dso, sym = (x.strip() for x in line.split("@", 3))
        cats[category(dso, sym)] += int(n)
        rows.append((int(n), dso, sym))
    return cats, sorted(rows, reverse=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--phase-steps", type=int, default=12)
    ap.add_argument("--skip", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default="data/kjv.txt")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--keep", help="copy the perf data files to this directory")
    ap.add_argument("--top", type=int, default=0, help="also print the N hottest symbols")
    args = ap.parse_args()
    os.chdir(ROOT)
    W, K = args.phase_steps, args.skip
    env = dict(os.environ)
    for kv in args.env:
        k, v = kv.split("=", 1)
        env[k] = v
    with tempfile.TemporaryDirectory(prefix="relorac-prof-") as d:
        log = os.path.join(d, "metrics.jsonl")
        proc = subprocess.Popen([args.bin, "--data", args.data, "--steps", str(2 * W), "--out", d,
                                 "--threads", str(args.threads), "--eval-every", "0", "--quiet"],
                                env=env, stdout=subprocess.DEVNULL)
        res = {}
        while not os.path.exists(log):
            time.sleep(0.01)
        perfs = {}
        for phase in ("full-rank", "ReLoRA"):
            perfs[phase] = Perf(proc.pid, os.path.join(d, f"{phase}.data"), d, phase)
        time.sleep(0.5)
        for phase, a, b in (("full-rank", K, W - 1), ("ReLoRA", W + K, 2 * W - 1)):
            wait_lines(log, a, proc)
            perfs[phase].cmd("enable")
            t0 = time.time()
            wait_lines(log, b, proc)
            perfs[phase].cmd("disable")
            res[phase] = [None, b - a, time.time() - t0]
        for phase, pf in perfs.items():
            pf.finish()
            res[phase][0] = report(pf.p.args[pf.p.args.index("-o") + 1])
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                subprocess.run(["cp", pf.p.args[pf.p.args.index("-o") + 1], args.keep])
        proc.wait()
    for phase, ((cats, rows), steps, secs) in res.items():
        samples = sum(cats.values())
        print(f"\n## {phase}: {steps} steps, {secs:.2f} s wall ({secs * 1000 / steps:.0f} ms/step), "
              f"{samples} samples (cpu-clock 999 Hz, all threads)")
        print("| category | % samples | ms per step (CPU time / threads) |")
        print("|---|---:|---:|")
        total_ms = samples / 999.0 * 1000 / steps / args.threads
        for cat, n in cats.most_common():
            if n >= 0.002 * samples:
                print(f"| {cat} | {100 * n / samples:.1f} | {n / samples * total_ms:.0f} |")
        if args.top:
            print(f"\nhottest symbols ({phase}):")
            for n, dso, sym in rows[:args.top]:
                print(f"  {100 * n / samples:5.1f}%  {dso:24s} {sym}")


if __name__ == "__main__":
    main()
