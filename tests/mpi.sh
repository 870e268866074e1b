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
#  - SIGTERM to mpirun writes one checkpoint; --resume continues it bit-identically;
#  - --zero 1 (tests/mpi/zero.relora): the losses of the compiled update within 1e-6, the
#    final merge prunes the same moment entries as without it, each rank updates half the
#    moment bytes (from the checkpoint's shapes), a resumed run is bit-identical.
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

# ---- ZeRO stage 1 (tests/mpi/zero.relora: magnitude pruning, ends on a merge) ----
if "$RELORAC" build "$SRC/tests/mpi/zero.relora" -o zero 2>zbuild.err; then ok; else bad "relorac build zero"; cat zbuild.err; fi
runz() { "${MPIRUN[@]}" -np 2 ./zero --data data --threads 1 --quiet --checkpoint-every 0 --eval-every 6 "$@"; }
runz --out z0 >z0.out 2>&1 && ok || { bad "2 ranks without ZeRO"; cat z0.out; }
runz --out z1 --zero 1 >z1.out 2>&1 && ok || { bad "2 ranks with --zero 1"; cat z1.out; }
# the same losses as the compiled update within 1e-6 (the tensors: the same tolerance as 2
# ranks against one process)
if $CMP z0 z1 --loss-tol 1e-6 >cmpz.out; then ok; else bad "--zero 1 against --zero 0"; fi
cat cmpz.out
# the merge pruned, and the same entries as without sharding; each rank's moments are half
SRC_TESTS="$SRC/tests" python3 - z0 z1 <<'PY' && ok || bad "ZeRO: pruned entries or moment bytes"
import json, os, struct, sys
sys.path.insert(0, os.environ["SRC_TESTS"])
from mpi_compare import read_st
a = read_st(sys.argv[1] + "/latest/trainer.safetensors")
b = read_st(sys.argv[2] + "/latest/trainer.safetensors")
zeros = total = 0
for k, (d, x) in a.items():
    if not k.endswith((".lora_a.adam_v", ".lora_b.adam_v", ".lora_a.adam_m", ".lora_b.adam_m")):
        continue
    va = struct.unpack(f"<{len(x) // 4}f", x)
    vb = struct.unpack(f"<{len(x) // 4}f", b[k][1])
    za = [i for i, v in enumerate(va) if v == 0.0]
    if za != [i for i, v in enumerate(vb) if v == 0.0]:
        print(f"{k}: --zero 1 zeroed other entries than the unsharded run")
        sys.exit(1)
    zeros += len(za)
    total += len(va)
if zeros == 0:
    print("the final merge pruned no moment entry")
    sys.exit(1)
print(f"pruned moment entries: {zeros} of {total}, the same positions with and without --zero 1")
# optimizer memory: moments m and v of the trainable tensors of the ReLoRA phase
lora = sum(len(x) for k, (d, x) in a.items() if k.endswith((".lora_a", ".lora_b")))
rest = sum(len(x) for k, (d, x) in a.items()
           if d == "F32" and ".adam_" not in k and not k.endswith((".lora_a", ".lora_b"))
           and k + ".adam_m" in a and not (k.endswith(".weight") and k[:-7] + ".lora_a" in a))
want_all = 2 * (lora + rest)
last = [json.loads(l) for l in open(sys.argv[2] + "/metrics.jsonl")][-1]
if last["moment_bytes_all"] != want_all or last["moment_bytes"] * 2 != want_all:
    print(f"moment bytes {last['moment_bytes']} of {last['moment_bytes_all']}, want {want_all // 2} of {want_all}")
    sys.exit(1)
print(f"Adam moments per rank: {last['moment_bytes']} of {want_all} bytes (1/2)")
PY
"${MPIRUN[@]}" -np 2 ./zero --data data --threads 1 --quiet --out z1r --zero 1 --steps 6 --checkpoint-every 0 --eval-every 6 \
    >z1r.out 2>&1 && "${MPIRUN[@]}" -np 2 ./zero --resume z1r --threads 1 --quiet --zero 1 --checkpoint-every 0 --eval-every 6 \
    >>z1r.out 2>&1 && ok || { bad "--zero 1 resume"; cat z1r.out; }
if $CMP z1 z1r --exact >cmpz2.out; then ok; else bad "--zero 1 resumed run differs"; fi
cat cmpz2.out
./zero --data data --threads 1 --quiet --out zsolo --zero 1 >zsolo.out 2>&1
[ $? -eq 2 ] && ok || bad "--zero 1 without mpirun was accepted"
has zero-solo zsolo.out "launch the trainer with mpirun"

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
