#!/usr/bin/env bash
# Data-parallel training under Open MPI's mpirun (docs/runtime.md "Several processes"), on
# tests/mpi/dp.relora (a batch of 4 as 4 micro-steps, LoRA dropout 0.1, 20 steps through the
# warm-start switch and two merges). Expected values come from the same trainer run as one
# process, without MPI (the path every other test covers), and from the checkpoint's tensor
# shapes; never from the data-parallel code itself:
#  - without mpirun, libmpi is not loaded;
#  - 2 ranks against 1 process: losses and every tensor within 1e-5 (relative);
#  - two 2-rank runs: identical losses and checkpoint bytes;
#  - bytes summed per step: the trainable gradients of each phase (no frozen W in ReLoRA),
#    as `relorac check` reports them;
#  - a rank count that does not divide the micro-steps is refused;
#  - ranks that disagree fail the cross-rank check (fault injected on rank 1);
#  - a killed rank stops the job, names the rank, leaves no checkpoint;
#  - SIGTERM to mpirun writes one checkpoint; --resume continues it bit-identically.
# Exit 77 (skipped) without mpirun.
set -u
RELORAC=$(realpath "$1")
SRC=$2
if ! command -v mpirun >/dev/null; then
    echo "SKIP: mpirun not found (Debian: apt-get install openmpi-bin; scripts/setup.sh does)"
    exit 77
fi
# Open MPI refuses to run as root without both; allow more ranks than cores; give the ranks
# 3 s between mpirun's SIGTERM and its SIGKILL (it waits as long before the SIGTERM); no
# cross-memory attach, which containers forbid.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_odls_base_sigkill_timeout=3
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# Under AddressSanitizer (scripts/test.sh's second build) Open MPI's own allocations, many
# from plugins it has unloaded by exit (no module name left to suppress them by), are reported
# as leaks: ranks run without leak detection; the one-process runs here keep it.
MPIRUN=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" mpirun)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
has() { # name file text
    if grep -qF -- "$3" "$2"; then ok; else bad "$1: '$3' not in $2"; cat "$2"; fi
}
CMP="python3 $SRC/tests/mpi_compare.py"

if ! "$RELORAC" build "$SRC/tests/mpi/dp.relora" -o "$T/dp" 2>"$T/build.err"; then
    cat "$T/build.err"
    echo "FAIL: relorac build"
    exit 1
fi
# uniform random bytes: every gradient is a sum of comparable terms (on learnable text a
# freshly re-initialised B amplifies rounding to ~1e-4 however the batch is cut, even in
# one process with another micro_batch)
python3 -c "import random; r = random.Random(7); open('$T/data', 'wb').write(bytes(r.randrange(256) for _ in range(60000)))"
cd "$T"
run1() { ./dp --data data --threads 1 --quiet --checkpoint-every 10 "$@"; }
run2() { "${MPIRUN[@]}" -np 2 ./dp --data data --threads 1 --quiet --checkpoint-every 10 "$@"; }

# ---- equality ----
run1 --out ref >ref.out 2>&1 && ok || { bad "one process"; cat ref.out; }
# without a launcher the trainer never loads libmpi
LD_DEBUG=libs ./dp --data data --threads 1 --quiet --steps 1 --out nompi >nompi.out 2>&1
grep -q 'libmpi' nompi.out && bad "a trainer without mpirun loaded libmpi" || ok
has switch ref/metrics.jsonl '"warm_switch"'
has merge ref/metrics.jsonl '"reset"'
run2 --out a >a.out 2>&1 && ok || { bad "2 ranks"; cat a.out; }
run2 --out b >b.out 2>&1 && ok || { bad "2 ranks again"; cat b.out; }
if $CMP ref a >cmp.out; then ok; else bad "2 ranks against one process"; fi
cat cmp.out
if $CMP a b --exact >cmp2.out; then ok; else bad "two 2-rank runs differ"; fi
cat cmp2.out

# ---- bytes: the trainable gradients of each phase, from the checkpoint's shapes ----
"$RELORAC" check "$SRC/tests/mpi/dp.relora" 2>/dev/null | grep 'data-parallel sum per step' >check.line
SRC_TESTS="$SRC/tests" python3 - a <<'PY' && ok || bad "bytes summed per step"
import json, os, sys
sys.path.insert(0, os.environ["SRC_TESTS"])
from mpi_compare import read_st
t = read_st(sys.argv[1] + "/latest/trainer.safetensors")
params = {k: len(b) for k, (d, b) in t.items() if ".adam_" not in k and d == "F32"}
lora = {k: n for k, n in params.items() if k.endswith(".lora_a") or k.endswith(".lora_b")}
adapted = {k[: -len(".lora_a")] + ".weight" for k in lora if k.endswith(".lora_a")}
full = sum(n for k, n in params.items() if k not in lora)  # warm start: every weight trains
relora = full - sum(params[k] for k in adapted) + sum(lora.values())  # W frozen, A and B train
rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
want = {0: full, 5: full, 6: relora, 19: relora}  # warm_start = 6
for r in rows:
    if r["step"] in want:
        # N = 2: a reduction of S bytes sends 2 (N-1)/N S = S, and the loss 8 bytes
        if r["reduced_bytes"] != want[r["step"]] or r["sent_bytes"] != want[r["step"]] + 8:
            print(f"step {r['step']}: reduced {r['reduced_bytes']} sent {r['sent_bytes']}, want {want[r['step']]}")
            sys.exit(1)
# `relorac check` says the same, from the spec
import re
said = [int(v.replace(",", "")) for v in re.findall(r"([0-9,]+) bytes", open("check.line").read())]
if said != [full, relora]:
    print(f"relorac check says {said}, want {[full, relora]}")
    sys.exit(1)
print(f"bytes summed per step: full-rank phase {full}, ReLoRA phase {relora} ({100 * relora / full:.1f}%)")
PY

# ---- a rank count that does not divide the 4 micro-steps ----
"${MPIRUN[@]}" -np 3 ./dp --data data --out three --threads 1 --quiet >three.out 2>&1
[ $? -ne 0 ] && ok || bad "3 ranks were accepted"
has three three.out "cannot split a step over 3 ranks"
[ "$(grep -c 'cannot split' three.out)" = 1 ] && ok || { bad "the error is not printed once"; cat three.out; }
[ ! -e three/latest ] && ok || bad "3 ranks wrote a checkpoint"

# ---- ranks that disagree: the check before a checkpoint fails ----
RELORAC_DIST_FAULT=skew run2 --out skew >skew.out 2>&1
[ $? -ne 0 ] && ok || bad "skewed ranks were not caught"
has skew skew.out "differs between rank 0 and rank 1"
[ ! -e skew/latest ] && ok || bad "skewed ranks wrote a checkpoint"

# The pid of rank $2 of the job under mpirun pid $1.
rank_pid() {
    for p in $(pgrep -P "$1"); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
            echo "$p"
            return
        fi
    done
}
# Waits until $1 has at least $2 lines (30 s at most).
wait_lines() {
    for _ in $(seq 1 300); do
        [ "$(cat "$1" 2>/dev/null | wc -l)" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
# Waits for pid $1 to end (60 s at most).
wait_gone() {
    for _ in $(seq 1 600); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# ---- a rank killed: the job stops, the message names it, no checkpoint ----
"${MPIRUN[@]}" -np 2 ./dp --data data --out killed --threads 1 --quiet --total-steps 100000 --checkpoint-every 0 \
    >killed.out 2>&1 &
mp=$!
if wait_lines killed/metrics.jsonl 5; then ok; else bad "the killed run did not start"; fi
r1=$(rank_pid "$mp" 1)
[ -n "$r1" ] && kill -KILL "$r1"
if wait_gone "$mp"; then ok; else bad "the job went on after rank 1 was killed"; kill -KILL "$mp"; fi
wait "$mp"
[ $? -ne 0 ] && ok || bad "mpirun exit 0 after a rank was killed"
has killed-rank killed.out "rank 1"
[ ! -e killed/latest ] && ok || bad "a checkpoint was written after a rank was killed"

# ---- SIGTERM to mpirun: one checkpoint, then --resume continues bit-identically ----
"${MPIRUN[@]}" -np 2 ./dp --data data --out term --threads 1 --quiet --total-steps 100000 --checkpoint-every 0 \
    >term.out 2>&1 &
mp=$!
wait_lines term/metrics.jsonl 5 && ok || bad "the SIGTERM run did not start"
kill -TERM "$mp"
if wait_gone "$mp"; then ok; else bad "mpirun did not stop after SIGTERM"; kill -KILL "$mp"; fi
wait "$mp"
has term term.out "stopped by SIGTERM after step"
n=$(sed -n 's/.*stopped by SIGTERM after step \([0-9]*\).*/\1/p' term.out)
[ "$(ls -d term/ckpt-* 2>/dev/null | wc -l)" = 1 ] && ok || { bad "not one checkpoint"; ls term; }
[ -n "$n" ] && [ -e "term/ckpt-$(printf %08d "$n")."* ] && ok || { bad "no checkpoint of step $n"; ls term; }
if [ -n "$n" ]; then
    "${MPIRUN[@]}" -np 2 ./dp --resume term --threads 1 --quiet --steps $((n + 3)) --checkpoint-every 0 \
        >resume.out 2>&1 && ok || { bad "resume"; cat resume.out; }
    "${MPIRUN[@]}" -np 2 ./dp --data data --out whole --threads 1 --quiet --total-steps 100000 --steps $((n + 3)) \
        --checkpoint-every 0 >whole.out 2>&1 && ok || { bad "uninterrupted run"; cat whole.out; }
    if $CMP whole term --exact >cmp3.out; then ok; else bad "resumed run differs"; fi
    cat cmp3.out
fi

echo "mpi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
