#!/usr/bin/env bash
# tests/gpu/run.sh: the CUDA target on a GPU, in one run of under 5 minutes on one H200.
#
#   bash tests/gpu/run.sh prepare   on the build machine (no GPU needed): builds the bundle
#                                   tests/gpu/bundle (trainers, their CPU references, FLOPs)
#   bash tests/gpu/run.sh           on the GPU machine, with the bundle beside it: runs the
#                                   checks and prints a report (also to $OUT/report.txt)
#
# The GPU machine has the NVIDIA driver, CUDA and PyTorch, and nothing else we can count
# on: no network, no compiler, no BLIS or OpenBLAS. So the bundle carries every trainer
# prebuilt (host code for x86-64-v3, cubins for sm_80 and sm_90) and this machine's
# libblis.so.4 (the runtime's GEMM library, which it loads with dlopen: the CPU trainer's
# GEMMs and the CUDA trainers' merged export need it; it needs only libc, libm and
# libpthread), and the token data is made there. cuBLAS is the one installed there (the
# CUDA toolkit's or PyTorch's).
#
# Without an NVIDIA GPU (nvidia-smi lists none) the run exits 77 (skipped) with the reason,
# before anything else: meson's `gpu` suite runs it that way everywhere.
#
# What runs, in order (each part on its own; a failure is reported and the rest goes on):
#  1. tiny, 10 steps across the warm-start switch (step 3) and two merges (after steps 6
#     and 9), CUDA fp32 and CUDA bf16 against the CPU trainer's losses computed at prepare
#     time. Tolerance on each step's loss: 2e-3 relative for fp32 (f32 sums in another
#     order, amplified a little by Adam), 3e-2 for bf16 (GEMM operands rounded to 8 bits).
#     Then checkpoints across targets: the CPU trainer's step-5 checkpoint resumes on CUDA,
#     and a CUDA step-5 checkpoint resumes in the CPU trainer, each to step 10 within the
#     fp32 tolerance of the uninterrupted CPU run.
#  1b. tiny under mpirun -np 1 (when mpirun is there): a single-GPU machine can only run one
#     rank, NCCL needing a GPU per rank (tests/cuda.sh checks that a second rank is refused
#     with that reason); the same losses as 1.
#  2. llama-350m, batch 32 x 512, bf16, each phase alone (tests/gpu/llama-350m-*.relora):
#     tokens/s over the steps after the first two, MFU = tokens/s x the phase's FLOPs per
#     token (relorac check) / 989e12, and peak device memory (nvidia-smi, the process).
#  3. The same model in the PyTorch there (tests/gpu/torch_ref.py): eager and torch.compile,
#     both phases, bf16 autocast over f32 weights; torch.compile only while time remains.
# Targets (docs/cuda.md): full-rank MFU >= 40%; ReLoRA tokens/s >= 1.1x full-rank's;
# relorac >= 1.3x the faster of eager and compile; ReLoRA peak memory below full-rank's by
# at least the frozen weights' gradients and Adam moments (12 bytes per frozen parameter).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bundle=$here/bundle
start=$(date +%s)
TINY_DEFS=(-D train.steps=10 -D train.seed=5 -D train.schedule.warmup=2 -D train.schedule.warm_start=3
           -D train.schedule.reset_every=3 -D train.schedule.restart_warmup=1 -D train.eval_every=0
           -D train.eval_batches=1 -D train.checkpoint_every=0)

# A text of about 300 KB, the same bytes on every machine (a fixed word sequence).
make_text() {
    python3 - "$1" <<'PY'
import sys
words = ("in the beginning god created the heaven and the earth and the earth was without form "
         "and void and darkness was upon the face of the deep and the spirit of god moved upon "
         "the face of the waters and god said let there be light and there was light").split()
x, out = 12345, []
while sum(len(w) + 1 for w in out) < 300000:
    x = (x * 1103515245 + 12345) % 2**31
    out.append(words[x % len(words)])
    if x % 17 == 0:
        out[-1] += ".\n"
open(sys.argv[1], "w").write(" ".join(out))
PY
}

# ---------------------------------------------------------------- prepare (build machine)
if [ "${1:-}" = prepare ]; then
    set -e
    relorac=${RELORAC:-$root/build/relorac}
    [ -x "$relorac" ] || { echo "prepare: no relorac at $relorac (build first, or set RELORAC)"; exit 2; }
    rm -rf "$bundle"
    mkdir -p "$bundle/ref" "$bundle/lib"
    blis=$(ldconfig -p | awk '/libblis\.so\.4 .*x86-64/ {print $NF; exit}')
    [ -n "$blis" ] || { echo "prepare: no libblis.so.4 here (apt-get install libblis4-pthread)"; exit 2; }
    cp -L "$blis" "$bundle/lib/libblis.so.4"
    make_text "$bundle/tiny.txt"
    tiny=$root/examples/tiny.relora
    b() { "$relorac" build "$@" --cpu x86-64-v3 2>&1 | grep -v 'not found' || true; }
    b "$tiny" "${TINY_DEFS[@]}" --target cpu -o "$bundle/tiny_cpu"
    b "$tiny" "${TINY_DEFS[@]}" --target cuda -o "$bundle/tiny_cuda"
    b "$tiny" "${TINY_DEFS[@]}" --target cuda -D train.precision=bf16 -o "$bundle/tiny_cuda_bf16"
    b "$here/llama-350m-full.relora" -o "$bundle/llama_full"
    b "$here/llama-350m-relora.relora" -o "$bundle/llama_relora"
    for t in tiny_cpu tiny_cuda tiny_cuda_bf16 llama_full llama_relora; do
        [ -x "$bundle/$t" ] || { echo "prepare: $t did not build"; exit 1; }
    done
    strip "$bundle"/tiny_* "$bundle"/llama_*
    # the CPU references: 10 steps, and a checkpoint at step 5
    "$bundle/tiny_cpu" --data "$bundle/tiny.txt" --steps 10 --out "$bundle/ref/cpu10" --quiet
    "$bundle/tiny_cpu" --data "$bundle/tiny.txt" --steps 5 --out "$bundle/ref/cpu5" --quiet
    for p in full relora; do
        "$relorac" check "$here/llama-350m-$p.relora" --json 2>/dev/null >"$bundle/llama_$p.check.json"
    done
    cp "$here/torch_ref.py" "$bundle/"
    glibc=$(objdump -T "$bundle"/llama_relora | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1)
    echo "prepare: bundle $(du -sh "$bundle" | cut -f1) in $bundle; the trainers need $glibc or newer"
    exit 0
fi

# ---------------------------------------------------------------- run (GPU machine)
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    echo "skipped: no NVIDIA GPU here ($(command -v nvidia-smi >/dev/null 2>&1 && echo 'nvidia-smi lists none' ||
        echo 'no nvidia-smi')); run this script on a GPU machine with the bundle of 'run.sh prepare'"
    exit 77
fi
out=${OUT:-$here/out}
mkdir -p "$out"
report=$out/report.txt
: >"$report"
say() { echo "$*" | tee -a "$report"; }
elapsed() { echo $(($(date +%s) - start)); }
[ -x "$bundle/tiny_cuda" ] || { say "no bundle in $bundle: run 'bash tests/gpu/run.sh prepare' where relorac is built"; exit 2; }
work=$(mktemp -d /dev/shm/relorac-gpu.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$work"' EXIT

# cuBLAS: the toolkit's, else PyTorch's wheel's
libs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
    ls "$d"/libcublas.so.1[23] >/dev/null 2>&1 && libs="$libs:$d"
done
pyblas=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null)
[ -n "$pyblas" ] && libs="$libs:$pyblas"
export LD_LIBRARY_PATH="$bundle/lib$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
say "relorac GPU check: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
say "cuBLAS from: ${libs#:}"
fails=0
fail() { say "FAIL: $*"; fails=$((fails + 1)); }

# losses FILE -> "step loss" lines
losses() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    j = json.loads(l); print(j["step"], j["loss"])' "$1"; }

# compare A B TOL FIRST: every step >= FIRST of A within TOL (relative) of B's
compare() {
    python3 - "$1" "$2" "$3" "${4:-0}" <<'PY'
import json, sys
def load(p):
    return {j["step"]: j["loss"] for j in map(json.loads, open(p))}
a, b, tol, first = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
worst, bad = 0.0, []
for s in sorted(b):
    if s < first:
        continue
    if s not in a or a[s] is None:
        bad.append(f"step {s} missing"); continue
    r = abs(a[s] - b[s]) / abs(b[s]); worst = max(worst, r)
    if r > tol: bad.append(f"step {s}: {a[s]:.6f} vs {b[s]:.6f}")
print(f"worst relative difference {worst:.2e} (tolerance {tol:g})" + ("; " + "; ".join(bad) if bad else ""))
sys.exit(1 if bad else 0)
PY
}

# ---- 1. tiny: CUDA against the CPU trainer
say ""
say "== 1. tiny, 10 steps (switch before step 3, merges after 6 and 9): CUDA against CPU"
t=$work/tiny
for v in cuda cuda_bf16; do
    tol=2e-3
    [ "$v" = cuda_bf16 ] && tol=3e-2
    if timeout 120 "$bundle/tiny_$v" --data "$bundle/tiny.txt" --steps 10 --out "$t/$v" --quiet >"$t.$v.log" 2>&1; then
        r=$(compare "$t/$v/metrics.jsonl" "$bundle/ref/cpu10/metrics.jsonl" "$tol") || fail "tiny $v: $r"
        say "tiny $v: $r"
    else
        fail "tiny $v did not train: $(tail -3 "$t.$v.log")"
    fi
done
# checkpoints across targets: CPU step 5 -> CUDA to 10; CUDA step 5 -> CPU to 10
mkdir -p "$t" && cp -a "$bundle/ref/cpu5" "$t/x1"
if timeout 120 "$bundle/tiny_cuda" --resume "$t/x1" --data "$bundle/tiny.txt" --steps 10 --quiet >"$t.x1.log" 2>&1; then
    r=$(compare "$t/x1/metrics.jsonl" "$bundle/ref/cpu10/metrics.jsonl" 2e-3 5) || fail "CPU checkpoint resumed on CUDA: $r"
    say "CPU step-5 checkpoint resumed on CUDA: $r"
else
    fail "the CUDA trainer did not resume the CPU checkpoint: $(tail -3 "$t.x1.log")"
fi
if timeout 120 "$bundle/tiny_cuda" --data "$bundle/tiny.txt" --steps 5 --out "$t/x2" --quiet >"$t.x2.log" 2>&1 &&
   timeout 300 "$bundle/tiny_cpu" --resume "$t/x2" --data "$bundle/tiny.txt" --steps 10 --quiet >>"$t.x2.log" 2>&1; then
    r=$(compare "$t/x2/metrics.jsonl" "$bundle/ref/cpu10/metrics.jsonl" 2e-3 5) || fail "CUDA checkpoint resumed on the CPU: $r"
    say "CUDA step-5 checkpoint resumed in the CPU trainer: $r"
else
    fail "CUDA -> CPU checkpoint: $(tail -3 "$t.x2.log")"
fi

# ---- 1b. under mpirun: one rank (a single-GPU machine can only run one: NCCL needs one GPU
# per rank, and the trainer refuses a second rank on the same GPU)
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
say ""
say "== 1b. tiny under mpirun, 1 rank ($ngpu GPU here; a single-GPU machine can only run one rank)"
if command -v mpirun >/dev/null; then
    if timeout 120 env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 1 "$bundle/tiny_cuda" \
        --data "$bundle/tiny.txt" --steps 10 --out "$t/mpi1" --quiet >"$t.mpi1.log" 2>&1; then
        r=$(compare "$t/mpi1/metrics.jsonl" "$bundle/ref/cpu10/metrics.jsonl" 2e-3) || fail "tiny cuda, mpirun -np 1: $r"
        say "tiny cuda, mpirun -np 1: $r"
    else
        fail "tiny cuda did not train under mpirun -np 1: $(tail -3 "$t.mpi1.log")"
    fi
else
    say "skipped: no mpirun on this machine (NCCL's sum over several GPUs needs a machine with 2 or more)"
fi

# ---- 2. llama-350m in relorac
# peak device memory of a process: nvidia-smi sampled every 100 ms while it runs
peak_mem() { # PID -> MiB
    local pid=$1 peak=0 m
    while kill -0 "$pid" 2>/dev/null; do
        m=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null |
            awk -F', ' -v p="$pid" '$1 == p {print $2}')
        [ -n "$m" ] && [ "$m" -gt "$peak" ] && peak=$m
        sleep 0.1
    done
    echo "$peak"
}
say ""
say "== 2. llama-350m, batch 32 x 512, bf16 (relorac)"
python3 - "$work/tokens.bin" <<'PY'
import random, struct, sys
n = 4_000_000
random.seed(3)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, n, *([0] * 253)))
    f.write(struct.pack(f"<{n}H", *(random.randrange(32100) for _ in range(n))))
PY
declare -A TPS MEM MFU FLOPS
for p in full relora; do
    FLOPS[$p]=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["flops_per_token"][sys.argv[2]])' \
        "$bundle/llama_$p.check.json" "$([ $p = full ] && echo full_rank || echo relora)")
    steps=12
    timeout 240 "$bundle/llama_$p" --data "$work/tokens.bin" --val-data "$work/tokens.bin" --steps $steps \
        --out "$work/l_$p" --eval-batches 1 --log-every 1 >"$work/l_$p.log" 2>&1 &
    pid=$!
    mem=$(peak_mem $pid)
    wait $pid
    rc=$?
    if [ $rc -ne 0 ] || [ ! -s "$work/l_$p/metrics.jsonl" ]; then
        fail "llama-350m $p: exit $rc: $(tail -5 "$work/l_$p.log")"
        continue
    fi
    read -r tps loss0 loss1 < <(python3 -c 'import json,sys
m = [json.loads(l) for l in open(sys.argv[1])]
t = [x["tokens_per_s"] for x in m[2:]]
print(sum(t) / len(t), m[0]["loss"], m[-1]["loss"])' "$work/l_$p/metrics.jsonl")
    TPS[$p]=$tps
    MEM[$p]=$mem
    MFU[$p]=$(python3 -c "print(f'{$tps * ${FLOPS[$p]} / 989e12 * 100:.1f}')")
    say "relorac $p: $(printf '%.0f' "$tps") tokens/s, MFU ${MFU[$p]}% (${FLOPS[$p]} FLOPs/token), peak ${mem} MiB, loss $loss0 -> $loss1"
done

# ---- 3. PyTorch
say ""
say "== 3. llama-350m in PyTorch ($(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null))"
declare -A TT
for impl in eager compile; do
    for p in full relora; do
        left=$((285 - $(elapsed)))
        if [ "$impl" = compile ] && [ $left -lt 100 ]; then
            say "torch.compile $p: not run ($left s left of the 5-minute budget)"
            continue
        fi
        flag=""
        [ "$impl" = compile ] && flag=--compile
        python3 "$bundle/torch_ref.py" --phase $p $flag --steps 10 --warmup 3 >"$work/t_${impl}_$p.json" 2>"$work/t_${impl}_$p.log" &
        pid=$!
        mem=$(peak_mem $pid)
        if wait $pid && [ -s "$work/t_${impl}_$p.json" ]; then
            tps=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens_per_s"])' "$work/t_${impl}_$p.json")
            TT[$impl.$p]=$tps
            say "torch $impl $p: $(printf '%.0f' "$tps") tokens/s, MFU $(python3 -c "print(f'{$tps * ${FLOPS[$p]:-0} / 989e12 * 100:.1f}')")%, peak ${mem} MiB; $(cat "$work/t_${impl}_$p.json")"
        else
            fail "torch $impl $p: $(tail -3 "$work/t_${impl}_$p.log")"
        fi
    done
done

# ---- the targets
say ""
say "== targets"
target() { # NAME PYTHON-CONDITION DETAIL
    if python3 -c "import sys; sys.exit(0 if ($2) else 1)" 2>/dev/null; then say "met:     $1 ($3)"; else say "missed:  $1 ($3)"; fi
}
if [ -n "${TPS[full]:-}" ] && [ -n "${TPS[relora]:-}" ]; then
    target "full-rank MFU >= 40%" "${MFU[full]} >= 40" "${MFU[full]}%"
    target "ReLoRA tokens/s >= 1.1x full-rank" "${TPS[relora]} >= 1.1 * ${TPS[full]}" \
        "$(python3 -c "print(f'{${TPS[relora]} / ${TPS[full]}:.2f}x')")"
    frozen=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["params"]["relora_frozen"])' "$bundle/llama_relora.check.json")
    target "ReLoRA peak memory <= full-rank's - 12 B x frozen" "${MEM[relora]} <= ${MEM[full]} - 12 * $frozen / 2**20" \
        "${MEM[relora]} vs ${MEM[full]} MiB; 12 B x $frozen frozen = $((12 * frozen / 1048576)) MiB"
    for p in full relora; do
        best=$(python3 -c "print(max([x for x in [${TT[eager.$p]:-0}, ${TT[compile.$p]:-0}]]))")
        target "relorac $p >= 1.3x the faster PyTorch" "${TPS[$p]} >= 1.3 * $best" \
            "$(python3 -c "print(f'{${TPS[$p]} / max($best, 1e-9):.2f}x of {$best:.0f} tokens/s')")"
    done
fi
say ""
say "$fails failed checks; $(elapsed) s"
[ $fails -eq 0 ]
