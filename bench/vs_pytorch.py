#!/usr/bin/env python3
"""bench/vs_pytorch.py: relorac trainers against current PyTorch from PyPI, in one run.

One command, one machine, one thread count: for each spec (default: the dim-256 and dim-512
configs and examples/tiny.relora, adapters at rank 32) it builds the relorac trainer from this
tree, runs its full-rank warm start and then its ReLoRA phase (no merge inside the run), and
runs the same model in PyTorch: eager and torch.compile (inductor) for full rank; for the LoRA
phase plain modules (eager and compiled) and PEFT's LoRA (what users run). It also measures the
machine's sgemm (relorac's engine, OpenBLAS, PyTorch's own torch.mm) and reports tokens/s, step
ms, GFLOP/s, % of the best sgemm, peak RSS and the relorac/PyTorch ratios as a Markdown table
with the date, the CPU model and the load average.

PyTorch runs in bench/.venv, created when missing (python3 -m venv; pip install torch peft from
PyPI). --reuse-torch VENV makes the new venv see an existing venv's packages (a .pth file) so
that only peft and its small dependencies are downloaded.

The relorac part reuses bench/run.py (building, kernel-program GEMM shapes, the measured run,
peak RSS); the model code of the PyTorch part is bench/torch_ref.py. Stdlib only.

Usage: bench/vs_pytorch.py [--phase-steps N] [--skip K] [--label TEXT] [--append FILE] [SPEC...]
"""
import argparse
import datetime
import importlib.util
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec_ = importlib.util.spec_from_file_location("bench_run", os.path.join(ROOT, "bench", "run.py"))
run = importlib.util.module_from_spec(spec_)
spec_.loader.exec_module(run)

DEFAULT_SPECS = ["bench/dim256.relora", "bench/dim512.relora@train.batch=8,adapter.rank=32",
                 "examples/tiny.relora@adapter.rank=32"]
# (key, label, torch_ref.py mode, compiled, phase)
TORCH_MODES = [("eager-full", "PyTorch eager", "full", False, "full"),
               ("compile-full", "torch.compile", "full", True, "full"),
               ("eager-lora", "PyTorch eager LoRA (plain modules)", "lora", False, "lora"),
               ("compile-lora", "torch.compile LoRA (plain modules)", "lora", True, "lora"),
               ("peft-lora", "PEFT LoRA (eager)", "peft", False, "lora")]

TORCH_SGEMM = r"""
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
torch.mm(a, b)
best = min((lambda t0: (torch.mm(a, b), time.perf_counter() - t0)[1])(time.perf_counter())
           for _ in range(int(sys.argv[2])))
print(json.dumps({"gflops": 2 * 2048 ** 3 / best / 1e9, "torch": torch.__version__,
                  "blas": torch.backends.mkl.is_available() and "MKL" or "?"}))
"""


def venv_python(args):
    """The interpreter of bench/.venv, created (and torch, peft installed) when missing."""
    venv = os.path.join(ROOT, "bench", ".venv")
    py = os.path.join(venv, "bin", "python")
    ok = lambda: os.path.exists(py) and subprocess.run(
        [py, "-c", "import torch, peft"], capture_output=True, cwd="/").returncode == 0
    if ok():
        return py
    print(f"# creating {venv} (torch and peft from PyPI)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    if args.reuse_torch:
        site = subprocess.run([os.path.join(args.reuse_torch, "bin", "python"), "-c",
                               "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        mine = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        with open(os.path.join(mine, "reuse_torch.pth"), "w") as f:
            f.write(site + "\n")
    subprocess.run([py, "-m", "pip", "install", "-q", "torch", "peft"], check=True)
    if not ok():
        sys.exit(f"vs_pytorch.py: {py} cannot import torch and peft after installing them")
    return py


def run_torch(args, s, mode, compiled):
    c = s["check"]
    m, t = c["model"], c["train"]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads))
    cmd = [args.torch_python, os.path.join("bench", "torch_ref.py"), "--mode", mode, "--data",
           args.data, "--steps", str(args.phase_steps + (args.compile_skip if compiled else 0)),
           "--threads", str(args.threads), "--vocab", str(m["vocab"]), "--dim", str(m["dim"]),
           "--layers", str(m["layers"]), "--heads", str(m["heads"]), "--hidden", str(c["_hidden"]),
           "--seq-len", str(t["seq_len"]), "--batch", str(t["batch"]), "--rank",
           str(c["adapter"]["rank"]), "--alpha", str(c["adapter"]["alpha"]), "--eps",
           str(m["norm_eps"])] + (["--compile"] if compiled else [])
    load = run.wait_quiet(args.max_busy, args.max_wait)
    out, maxrss, _, others = run.run_measured(cmd, env=env)
    load["others_during"] = others
    r = json.loads(out.strip().splitlines()[-1])
    skip = args.skip + (args.compile_skip if compiled else 0)
    r.update(load=load, maxrss_kib=maxrss, median_s=run.median_after(r["step_s"], skip))
    return r


def sgemm_all(args, specs, py):
    """Best square-2048 sgemm GFLOP/s of relorac's engine, OpenBLAS (its own threads) and
    PyTorch's torch.mm, at --threads; plus relorac's engine at every shape of the specs."""
    res = {"load": run.wait_quiet(args.max_busy, args.max_wait)}
    res["relorac"] = run.sgemm_bench(args, specs)
    sq = "square2048:2048,2048,2048"
    out = run.sh([os.path.join(args.build, "bench", "sgemm"), "-b", "openblas", "-t", str(args.threads),
                  "-r", str(args.sgemm_reps), sq])
    res["openblas"] = json.loads(out.strip().splitlines()[-1])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    res["torch"] = json.loads(subprocess.run([py, "-c", TORCH_SGEMM, str(args.threads),
                                              str(args.sgemm_reps)], check=True, cwd="/", env=env,
                                             capture_output=True, text=True).stdout)
    res["best"] = max(res["relorac"]["square2048"]["gflops"], res["openblas"]["gflops"],
                      res["torch"]["gflops"])
    return res


def table(res):
    sq = res["sgemm"]["best"]
    rows = ["| config | run | step ms | tok/s | GFLOP/s | % of sgemm | peak RSS MiB | relorac ÷ this (tok/s) |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in res["specs"]:
        c, r = s["check"], s["relorac"]
        tok, fpt = r["tokens"], c["flops_per_token"]
        lines = [("full", "relorac full-rank", r["full_s"], r["hwm_kib"].get(s["W"]) or r["maxrss_kib"]),
                 ("lora", "relorac ReLoRA phase", r["lora_s"], r["hwm_kib"].get(2 * s["W"]) or r["maxrss_kib"])]
        for key, label, _, _, phase in TORCH_MODES:
            if key in s["torch"]:
                t = s["torch"][key]
                lines.append((phase, label, t["median_s"], t["maxrss_kib"]))
        for phase, label, secs, rss in lines:
            fl = fpt["full_rank" if phase == "full" else "relora"] * tok
            mine = r["full_s"] if phase == "full" else r["lora_s"]
            ratio = "" if label.startswith("relorac") else f"{secs / mine:.2f}×"
            rows.append(f"| {s['name']} | {label} | {secs * 1e3:.0f} | {tok / secs:.0f} | "
                        f"{fl / secs / 1e9:.1f} | {100 * fl / secs / 1e9 / sq:.0f}% | {rss / 1024:.0f} | {ratio} |")
    return "\n".join(rows)


def summary(res):
    out = []
    for s in res["specs"]:
        r, t = s["relorac"], s["torch"]
        full = [t[k]["median_s"] for k in ("eager-full", "compile-full") if k in t]
        lora = [t[k]["median_s"] for k in ("eager-lora", "compile-lora", "peft-lora") if k in t]
        line = f"- {s['name']}:"
        if full:
            line += f" full-rank relorac ÷ fastest PyTorch = {min(full) / r['full_s']:.2f}×;"
        if lora:
            line += f" ReLoRA phase ÷ fastest PyTorch LoRA = {min(lora) / r['lora_s']:.2f}×;"
        if "eager-full" in t:
            line += (f" peak RSS relorac {r['maxrss_kib'] / 1024:.0f} MiB (whole run) vs eager "
                     f"{t['eager-full']['maxrss_kib'] / 1024:.0f} MiB;")
        line += f" load during relorac {r['load']}"
        out.append(line)
    return "\n".join(out)


def render(res, args):
    """Prints the Markdown section (and appends it to --append)."""
    specs = res["specs"]
    sg = res["sgemm"]
    t0 = next((t for s in specs for t in s["torch"].values()), {})
    md = [f"### relorac vs PyTorch, {res['date']}", ""]
    if args.label:
        md += [f"**{args.label}**", ""]
    md += [f"- CPU: {res['cpu']}, {res['cores']} logical CPUs; threads {res['threads']} everywhere",
           f"- load average (1, 5, 15 min): {res['loadavg_start']} at the start, {res.get('loadavg_end', 'not reached: interrupted run')} at the end",
           f"- commit {res['commit']}; PyTorch {t0.get('torch', '?')} from PyPI; "
           f"{res.get('phase_steps', '?')} steps per phase, median after {res.get('skip', '?')} warm-up steps "
           f"(+{res.get('compile_skip', '?')} for torch.compile)",
           f"- command: `{' '.join(['bench/vs_pytorch.py'] + res['argv'][1:])}`",
           f"- sgemm 2048³, {res['threads']} threads, GFLOP/s: relorac engine "
           f"{sg['relorac']['square2048']['gflops']:.0f}, OpenBLAS {sg['openblas']['gflops']:.0f} "
           f"({sg['openblas'].get('core', '?')}), PyTorch torch.mm {sg['torch']['gflops']:.0f}; "
           f"% of sgemm below is against the best, {sg['best']:.0f}",
           "- GFLOP/s counts the GEMM FLOPs of `relorac check` (full-rank or ReLoRA formula) for "
           "every row of a phase; \"relorac ÷ this\" > 1 means relorac is faster",
           "", table(res), "", summary(res), ""]
    text = "\n".join(md)
    print(text)
    if args.append:
        with open(args.append, "a") as f:
            f.write("\n" + text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("specs", nargs="*", default=DEFAULT_SPECS,
                    help="SPEC or SPEC@key=value,... (relorac -D overrides)")
    ap.add_argument("--build", default="build-bench", help="release build of this tree (made when missing)")
    ap.add_argument("--data", default="data/kjv.txt")
    ap.add_argument("--phase-steps", type=int, default=20, help="timed steps per phase")
    ap.add_argument("--skip", type=int, default=3, help="warm-up steps left out of the median")
    ap.add_argument("--compile-skip", type=int, default=2,
                    help="extra warm-up steps for torch.compile (compilation happens in them)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sgemm-reps", type=int, default=5)
    ap.add_argument("--torch-modes", default=",".join(m[0] for m in TORCH_MODES),
                    help="comma-separated subset of " + ",".join(m[0] for m in TORCH_MODES))
    ap.add_argument("--torch-python", help="an interpreter with torch and peft (default: bench/.venv)")
    ap.add_argument("--reuse-torch", metavar="VENV", help="when creating bench/.venv, reuse this venv's torch")
    ap.add_argument("--max-busy", type=float, default=0.05,
                    help="wait while other processes keep the CPUs busier than this fraction")
    ap.add_argument("--max-wait", type=float, default=900, help="seconds to wait for that at most")
    ap.add_argument("--label", default="", help="a note printed under the heading")
    ap.add_argument("--append", metavar="FILE", help="also append the Markdown section to FILE")
    ap.add_argument("--from-json", metavar="FILE", help="only print the section of a saved (maybe partial) run")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            render(json.load(f), args)
        return
    os.chdir(ROOT)
    args.build = os.path.abspath(args.build)
    args.relorac = os.path.join(args.build, "relorac")
    modes = [m for m in TORCH_MODES if m[0] in args.torch_modes.split(",")]
    args.torch_python = args.torch_python or venv_python(args)

    if not os.path.exists(os.path.join(args.build, "build.ninja")):
        run.sh(["meson", "setup", args.build, "-Dbuildtype=release", "-Dtests=false"])
    run.sh(["ninja", "-C", args.build])
    os.makedirs(os.path.join(args.build, "bench"), exist_ok=True)
    run.sh(["cc", "-O2", "-Wall", "-Wextra", "-Iruntime", "-o", os.path.join(args.build, "bench", "sgemm"),
            "bench/sgemm.c", os.path.join(args.build, "runtime", "librelorac_rt.a"), "-ldl", "-lpthread", "-lm"])
    if not os.path.exists(args.data):
        os.makedirs(os.path.dirname(args.data) or ".", exist_ok=True)
        run.sh(["sh", "-c", "bible -f gen1:1-rev22:21 | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' > "
                + args.data])

    res = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "cpu": run.cpu_model(), "cores": os.cpu_count(), "threads": args.threads,
           "loadavg_start": run.loadavg(), "argv": sys.argv, "phase_steps": args.phase_steps,
           "skip": args.skip, "compile_skip": args.compile_skip,
           "commit": run.sh(["git", "rev-parse", "--short", "HEAD"]).strip() + (
               "-dirty" if run.sh(["git", "status", "--porcelain", "--untracked-files=no"]).strip() else "")}
    specs = [run.bench_spec(args, p) for p in args.specs]
    res["sgemm"] = sgemm_all(args, specs, args.torch_python)
    res["specs"] = []

    def save():  # after every measurement, so that an interrupted run keeps what it measured
        with open(os.path.join(args.build, "bench", "vs_pytorch.json"), "w") as f:
            json.dump(res, f, indent=1)

    for s in specs:
        s["W"] = args.phase_steps
        print(f"# {s['name']}: relorac", file=sys.stderr)
        s["relorac"] = run.retried(args, run.run_relorac, args, s)
        s["torch"] = {}
        res["specs"].append(s)
        save()
        for key, _, mode, compiled, _ in modes:
            print(f"# {s['name']}: {key}", file=sys.stderr)
            s["torch"][key] = run.retried(args, run_torch, args, s, mode, compiled)
            save()
    res["loadavg_end"] = run.loadavg()
    save()

    render(res, args)


if __name__ == "__main__":
    main()
