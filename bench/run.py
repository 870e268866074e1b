#!/usr/bin/env python3
"""bench/run.py: step time, throughput, GFLOP/s and peak memory of relorac trainers, with
the runtime's sgemm and PyTorch eager (bench/torch_ref.py) measured in the same run.

For each spec: `relorac check --json` (parameter/FLOP counts, memplan's planned bytes), then
`relorac build` with warm_start = --phase-steps and no merge inside the run, then the binary
runs 2 x --phase-steps steps (full-rank warm start, then ReLoRA). Step time comes from the
trainer's metrics.jsonl (tokens_per_s is timed around train_step only); the first --skip
steps of each phase are warm-up. Peak RSS is the child's own ru_maxrss (os.wait4), and
VmHWM read from /proc while it runs, at the end of each phase (before the final eval and
checkpoint). Then torch_ref.py runs the same shapes (full and LoRA) under /usr/bin/python3.
Stdlib only. Usage: bench/run.py [--phase-steps N] [--skip K] [--no-torch] [SPEC...]
Writes BUILD/bench/results.json and prints a Markdown table (paste into bench/RESULTS.md).
"""
import argparse
import collections
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, cwd=ROOT, text=True, stdout=subprocess.PIPE, **kw).stdout


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def cpu_busy(secs=2.0):
    """Fraction of all CPUs busy over secs (from /proc/stat): others' load, since our own
    runs are sequential and nothing of ours runs while this samples."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = snap()
    time.sleep(secs)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(max_busy, max_wait):
    """Sleeps while other processes keep the CPUs more than max_busy busy (a fuzzer or CI may
    run); returns the load averages and the busy fraction seen just before our run."""
    t0 = time.time()
    while True:
        busy = cpu_busy()
        if busy <= max_busy or time.time() - t0 > max_wait:
            return {"loadavg": loadavg(), "busy_before": round(busy, 3)}
        print(f"# CPUs {100 * busy:.0f}% busy (load {loadavg()}); waiting", file=sys.stderr)
        time.sleep(20)


def cpu_model():
    for line in sh(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def proc_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]


def run_measured(cmd, env=None, watch_log=None, marks=()):
    """Runs cmd; returns (stdout, ru_maxrss KiB, {mark: VmHWM KiB when watch_log reached mark
    lines}, fraction of the CPUs others used meanwhile). ru_maxrss is this child's own peak
    (wait4), not a max over all children."""
    hz, t0, b0 = os.sysconf("SC_CLK_TCK"), time.time(), cpu_ticks()
    with tempfile.TemporaryFile(mode="w+") as out:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        hwm, done = {}, threading.Event()

        def poll():
            while not done.is_set():
                if watch_log and os.path.exists(watch_log):
                    with open(watch_log) as f:
                        n = sum(1 for _ in f)
                    for m in marks:
                        if n >= m and m not in hwm:
                            hwm[m] = proc_kib(p.pid, "VmHWM")
                time.sleep(0.02)

        th = threading.Thread(target=poll)
        th.start()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        th.join()
        out.seek(0)
        text = out.read()
    if p.returncode != 0:
        sys.exit(f"run.py: {' '.join(cmd)} failed ({p.returncode}):\n{text[-3000:]}")
    others = ((cpu_ticks() - b0) / hz - ru.ru_utime - ru.ru_stime) / ((time.time() - t0) * os.cpu_count())
    return text, ru.ru_maxrss, hwm, round(max(0.0, others), 3)


GEMM_RE = re.compile(r"^\s+gemm (\S+) \S+ = \S+ \* (\S+) @ (\S+) \+ (\S+); "
                     r"m=(\d+) n=(\d+) k=(\d+) batch=(\d+)")


def gemm_shapes(args, path, defs):
    """The GEMMs one step of each phase runs, read from the compiled kernel program
    (`relorac dump-ir --kernels`): [(name, M, N, K, ta, tb, batch, count)] for @train_full
    and @train_lora (both @train for a spec without ReLoRA)."""
    out = sh([args.relorac, "dump-ir", path, "--kernels"] + defs)
    funcs, cur = {}, None
    for line in out.splitlines():
        if line.startswith("kfunc @"):
            cur = funcs.setdefault(line.split()[1][1:], collections.Counter())
        m = GEMM_RE.match(line)
        if m and cur is not None:
            shape = tuple(int(m.group(i)) for i in (5, 6, 7)) + (
                int(m.group(2).endswith("^T")), int(m.group(3).endswith("^T")), int(m.group(8)))
            cur[shape] += 1
    full = funcs.get("train_full") or funcs["train"]
    lora = funcs.get("train_lora") or full
    name = lambda sh: "gemm%dx%dx%d%s%s%s" % (sh[0], sh[1], sh[2], "_ta" if sh[3] else "",
                                              "_tb" if sh[4] else "", f"_x{sh[5]}" if sh[5] > 1 else "")
    return ([(name(sh),) + sh + (n,) for sh, n in sorted(full.items())],
            [(name(sh),) + sh + (n,) for sh, n in sorted(lora.items())])


def sgemm_bench(args, specs):
    """{name: result} for the square shapes and every distinct GEMM shape of the specs
    (named by their first use), plus {shape tuple: result} under the key "by_shape"."""
    shapes = {"square1024": (1024, 1024, 1024, 0, 0, 1), "square2048": (2048, 2048, 2048, 0, 0, 1)}
    for s in specs:
        for g in s["gemms_full"] + s["gemms_lora"]:
            if tuple(g[1:7]) not in shapes.values():
                shapes[f"{s['name']}.{g[0]}"] = tuple(g[1:7])
    argv = [f"{n}:{','.join(map(str, v))}" for n, v in shapes.items()]
    out = sh([os.path.join(args.build, "bench", "sgemm"), "-b", "relorac", "-t", str(args.threads), "-r",
              str(args.sgemm_reps)] + argv)
    return {r["name"]: r for r in map(json.loads, out.splitlines())}


def gemm_ideal(spec, sg, key):
    """Seconds one step's GEMMs take at sgemm speed, and their FLOPs."""
    by_shape = {(r["m"], r["n"], r["k"], r["ta"], r["tb"], r["batch"]): r for r in sg.values()}
    t = f = 0.0
    for g in spec[key]:
        r = by_shape[tuple(g[1:7])]
        t += r["best_s"] * g[7]
        f += 2.0 * g[1] * g[2] * g[3] * g[6] * g[7]
    return t, f


def median_after(xs, skip):
    xs = xs[skip:]
    return statistics.median(xs) if xs else float("nan")


def bench_spec(args, arg):
    """arg is SPEC or SPEC@key=value,key=value (relorac -D overrides, e.g.
    bench/dim512.relora@adapter.rank=8); the variant is named MODEL[key=value,...]."""
    path, _, over = arg.partition("@")
    over = [kv for kv in over.split(",") if kv]
    W = args.phase_steps
    defs = ["-D", f"train.schedule.warm_start={W}", "-D", f"train.schedule.reset_every={10 * W}",
            "-D", f"train.steps={max(1000, 40 * W)}"]
    for kv in over:
        defs += ["-D", kv]
    c = json.loads(sh([args.relorac, "check", path, "--json"] + defs))
    name = c["model"]["name"] + (f"[{','.join(kv.split('.')[-1] for kv in over)}]" if over else "")
    c["_hidden"] = next(t["shape"][0] for t in c["tensors"] if t["name"].endswith("swiglu.gate.weight"))
    binp = os.path.join(args.build, "bench", re.sub(r"[^A-Za-z0-9_.=-]", "_", name))
    t0 = time.time()
    sh([args.relorac, "build", path, "-o", binp] + defs)
    build_s = time.time() - t0
    gf, gl = gemm_shapes(args, path, defs)
    return {"name": name, "spec": path, "check": c, "bin": binp, "build_s": build_s,
            "gemms_full": gf, "gemms_lora": gl}


def retried(args, fn, *a):
    """Runs fn(*a) again (up to 2 more times) when other processes took more than
    --max-busy of the CPUs during the measurement; keeps the least disturbed result."""
    best = None
    for _ in range(3):
        r = fn(*a)
        if best is None or r["load"]["others_during"] < best["load"]["others_during"]:
            best = r
        if r["load"]["others_during"] <= args.max_busy:
            break
        print(f"# others used {100 * r['load']['others_during']:.0f}% of the CPUs; again", file=sys.stderr)
    return best


def run_relorac(args, s, env=None):
    c, W = s["check"], args.phase_steps
    tokens = c["train"]["batch"] * c["train"]["seq_len"]
    with tempfile.TemporaryDirectory(prefix="relorac-bench-") as d:
        log = os.path.join(d, "metrics.jsonl")
        cmd = [s["bin"], "--data", args.data, "--steps", str(2 * W), "--out", d, "--threads",
               str(args.threads), "--eval-every", "0", "--eval-batches", "1", "--quiet"]
        load = wait_quiet(args.max_busy, args.max_wait)
        _, maxrss, hwm, others = run_measured(cmd, env=env, watch_log=log, marks=(W, 2 * W))
        load["others_during"] = others
        with open(log) as f:
            rows = [json.loads(line) for line in f]
        bin_bytes = os.path.getsize(s["bin"])
    st = [tokens / r["tokens_per_s"] for r in rows]
    res = {"tokens": tokens, "load": load, "maxrss_kib": maxrss, "hwm_kib": hwm,
           "bin_bytes": bin_bytes, "loss": [r["loss"] for r in rows], "step_s": st,
           "events": {r["step"]: r.get("events") for r in rows if r.get("events")}}
    res["full_s"] = median_after(st[:W], args.skip)
    res["lora_s"] = median_after(st[W:2 * W], args.skip)
    return res


def run_torch(args, s, mode):
    c = s["check"]
    m, t = c["model"], c["train"]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    cmd = [args.torch_python, os.path.join("bench", "torch_ref.py"), "--mode", mode, "--data",
           args.data, "--steps", str(args.phase_steps), "--threads", str(args.threads),
           "--vocab", str(m["vocab"]), "--dim", str(m["dim"]), "--layers", str(m["layers"]),
           "--heads", str(m["heads"]), "--hidden", str(c["_hidden"]), "--seq-len",
           str(t["seq_len"]), "--batch", str(t["batch"]), "--rank", str(c["adapter"]["rank"]),
           "--alpha", str(c["adapter"]["alpha"])]
    load = wait_quiet(args.max_busy, args.max_wait)
    out, maxrss, _, others = run_measured(cmd, env=env)
    load["others_during"] = others
    r = json.loads(out.strip().splitlines()[-1])
    r.update(load=load, maxrss_kib=maxrss, median_s=median_after(r["step_s"], args.skip))
    return r


def table(res):
    rows = ["| spec | run | step ms | tok/s | GFLOP/step | GFLOP/s | % sgemm 2048 | % sgemm model shapes"
            " | GEMM-only ms at sgemm speed | peak RSS MiB | plan MiB | RSS/plan |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    sq = res["sgemm"]["square2048"]["gflops"]
    for s in res["specs"]:
        c, r = s["check"], s["relorac"]
        tok, fpt = r["tokens"], c["flops_per_token"]
        plan = s["plan_mib"]
        for label, secs, fl, hwm, pl, ideal in [
                ("relorac full-rank", r["full_s"], fpt["full_rank"], r["hwm_kib"].get(s["W"]),
                 plan["program"], s["ideal_full"]),
                ("relorac ReLoRA", r["lora_s"], fpt["relora"], r["hwm_kib"].get(2 * s["W"]),
                 plan["program"], s["ideal_lora"])] + [
                (f"relorac {ph} [{lab}]", v[k], fpt[f], v["hwm_kib"].get(mk * s["W"]), plan["program"],
                 s[ideal]) for lab, v in s.get("relorac_variants", {}).items()
                for ph, k, f, mk, ideal in (("full-rank", "full_s", "full_rank", 1, "ideal_full"),
                                            ("ReLoRA", "lora_s", "relora", 2, "ideal_lora"))] + [
                (f"PyTorch {m}", s["torch"][m]["median_s"], fpt["full_rank" if m == "full" else "relora"],
                 s["torch"][m]["maxrss_kib"], None, s["ideal_full" if m == "full" else "ideal_lora"])
                for m in ("full", "lora") if m in s.get("torch", {})]:
            gfs = fl * tok / secs / 1e9
            mod = ideal[1] / ideal[0] / 1e9
            rss = (hwm or 0) / 1024
            rows.append(f"| {s['name']} | {label} | {secs * 1e3:.0f} | {tok / secs:.0f} | "
                        f"{fl * tok / 1e9:.1f} | {gfs:.1f} | {100 * gfs / sq:.0f}% | {100 * gfs / mod:.0f}% | "
                        f"{ideal[0] * 1e3:.0f} | {rss:.0f} | {'' if pl is None else f'{pl:.0f}'} | "
                        f"{'' if pl is None else f'{rss / pl:.3f}'} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("specs", nargs="*", default=["bench/dim512.relora", "bench/dim512.relora@adapter.rank=8",
                                                 "examples/tiny.relora"])
    ap.add_argument("--build", default="build-bench")
    ap.add_argument("--data", default="data/kjv.txt")
    ap.add_argument("--phase-steps", type=int, default=12)
    ap.add_argument("--skip", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sgemm-reps", type=int, default=5)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--variant", action="append", default=[], metavar="LABEL:K=V[,K=V]",
                    help="also run each relorac binary with these environment variables")
    ap.add_argument("--torch-python", default="/usr/bin/python3")
    ap.add_argument("--max-busy", type=float, default=0.05,
                    help="wait while other processes keep the CPUs busier than this fraction")
    ap.add_argument("--max-wait", type=float, default=900)
    args = ap.parse_args()
    os.chdir(ROOT)
    args.build = os.path.abspath(args.build)
    args.relorac = os.path.join(args.build, "relorac")

    if not os.path.exists(os.path.join(args.build, "build.ninja")):
        sh(["meson", "setup", args.build, "-Dbuildtype=release", "-Dtests=false"])
    sh(["ninja", "-C", args.build])
    os.makedirs(os.path.join(args.build, "bench"), exist_ok=True)
    sh(["cc", "-O2", "-Wall", "-Wextra", "-Iruntime", "-o", os.path.join(args.build, "bench", "sgemm"),
        "bench/sgemm.c", os.path.join(args.build, "runtime", "librelorac_rt.a"), "-ldl", "-lpthread",
        "-lm"])
    if not os.path.exists(args.data):
        os.makedirs(os.path.dirname(args.data) or ".", exist_ok=True)
        sh(["sh", "-c", "bible -f gen1:1-rev22:21 | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' > "
            + args.data])
    has_torch = not args.no_torch and subprocess.run(
        [args.torch_python, "-c", "import torch"], capture_output=True).returncode == 0
    if not args.no_torch and not has_torch:
        print(f"# torch not importable by {args.torch_python}; skipping PyTorch "
              "(apt-get install -y python3-torch)", file=sys.stderr)

    res = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "cpu": cpu_model(), "cores": os.cpu_count(), "threads": args.threads,
           "phase_steps": args.phase_steps, "skip": args.skip, "argv": sys.argv,
           "commit": sh(["git", "rev-parse", "--short", "HEAD"]).strip() + (
               "-dirty" if sh(["git", "status", "--porcelain", "--untracked-files=no"]).strip() else "")}
    specs = [bench_spec(args, p) for p in args.specs]
    res["load_sgemm"] = wait_quiet(args.max_busy, args.max_wait)
    res["sgemm"] = sg = sgemm_bench(args, specs)
    for s in specs:
        s["W"] = args.phase_steps
        pb = s["check"]["planned_bytes"]
        s["plan_mib"] = {k: sum(v.values()) / 2**20 for k, v in pb.items()}
        s["ideal_full"] = gemm_ideal(s, sg, "gemms_full")
        s["ideal_lora"] = gemm_ideal(s, sg, "gemms_lora")
        print(f"# {s['name']}: relorac", file=sys.stderr)
        s["relorac"] = retried(args, run_relorac, args, s)
        for v in args.variant:
            label, _, kvs = v.partition(":")
            env = dict(os.environ, **dict(kv.split("=", 1) for kv in kvs.split(",") if kv))
            print(f"# {s['name']}: relorac [{label}]", file=sys.stderr)
            s.setdefault("relorac_variants", {})[label] = retried(args, run_relorac, args, s, env)
    if has_torch:
        for s in specs:
            s["torch"] = {}
            for mode in ("full", "lora"):
                print(f"# {s['name']}: torch {mode}", file=sys.stderr)
                s["torch"][mode] = retried(args, run_torch, args, s, mode)
    res["specs"] = specs
    with open(os.path.join(args.build, "bench", "results.json"), "w") as f:
        json.dump(res, f, indent=1)

    print(f"date {res['date']} | commit {res['commit']} | {res['cpu']} | {res['cores']} cores | threads {args.threads} | "
          f"{args.phase_steps} steps per phase, median of the last {args.phase_steps - args.skip}")
    print(f"load average before sgemm: {res['load_sgemm']}")
    print("\nsgemm (relorac's GEMM engine, runtime/gemm.c, best of reps):")
    for n, r in sg.items():
        print(f"  {n:28s} M={r['m']:5d} N={r['n']:5d} K={r['k']:5d} ta={r['ta']} tb={r['tb']} "
              f"x{r['batch']:<3d} {r['gflops']:7.1f} GFLOP/s")
    print()
    print(table(res))
    print()
    for s in specs:
        r = s["relorac"]
        print(f"{s['name']}: ReLoRA/full-rank step time {r['lora_s'] / r['full_s']:.3f}; "
              f"load {r['load']}; ru_maxrss {r['maxrss_kib'] / 1024:.0f} MiB (whole run incl. final "
              f"eval + checkpoint); VmHWM at phase ends {[v // 1024 for v in r['hwm_kib'].values()]} MiB; "
              f"plan program {s['plan_mib']['program']:.0f} / full {s['plan_mib']['full_rank']:.0f} / "
              f"relora {s['plan_mib']['relora']:.0f} MiB; binary {r['bin_bytes'] / 2**20:.2f} MiB; "
              f"build {s['build_s']:.0f} s; GEMM-only ideal full {s['ideal_full'][0] * 1e3:.0f} ms, "
              f"ReLoRA {s['ideal_lora'][0] * 1e3:.0f} ms; GEMM GFLOP/step in the kernel program: "
              f"full {s['ideal_full'][1] / 1e9:.1f}, ReLoRA {s['ideal_lora'][1] / 1e9:.1f} "
              f"(formula: {s['check']['flops_per_token']['full_rank'] * r['tokens'] / 1e9:.1f}, "
              f"{s['check']['flops_per_token']['relora'] * r['tokens'] / 1e9:.1f})")
        for lab, v in s.get("relorac_variants", {}).items():
            print(f"  relorac [{lab}]: full {v['full_s'] * 1e3:.0f} ms, ReLoRA {v['lora_s'] * 1e3:.0f} ms, "
                  f"ratio {v['lora_s'] / v['full_s']:.3f}, load {v['load']}")
        for m, t in s.get("torch", {}).items():
            print(f"  torch {m}: median {t['median_s'] * 1e3:.0f} ms, load {t['load']}, "
                  f"ru_maxrss {t['maxrss_kib'] / 1024:.0f} MiB, trainable {t['trainable']}")
        if "torch" in s:
            print(f"  relorac/torch step time: full {r['full_s'] / s['torch']['full']['median_s']:.3f}, "
                  f"ReLoRA vs LoRA {r['lora_s'] / s['torch']['lora']['median_s']:.3f}")


if __name__ == "__main__":
    main()
