#!/usr/bin/env bash
# Throughput of data-parallel ranks against threads on one machine: 2 ranks x 1 thread
# (mpirun -np 2, --threads 1) against 1 rank x 2 threads (--threads 2), in each training
# phase, on examples/tiny.relora built with micro_batch 4 (its batch of 8 is one micro-step
# otherwise, which one rank cannot split over two). Both runs compute the same steps: the
# one process runs the 2 micro-steps of 4 sequences with 2 threads, each rank runs one of
# them with 1 thread and the ranks sum the gradients. Not a test: it prints one Markdown
# row per phase for bench/RESULTS.md; run it on a quiet machine.
#
# usage: bench/dp_threads.sh [RELORAC [STEPS]]   (default build/relorac, 30 steps)
# tokens/s is the median over the steps after the first 3 (metrics.jsonl's tokens_per_s,
# which counts the global batch).
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
RELORAC=$(realpath "${1:-$SRC/build/relorac}")
STEPS=${2:-30}
command -v mpirun >/dev/null || { echo "dp_threads.sh: mpirun not found (Debian: apt-get install openmpi-bin)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$RELORAC" build "$SRC/examples/tiny.relora" -D train.micro_batch=4 -o "$T/tiny" 2>"$T/build.log" ||
    { cat "$T/build.log"; exit 1; } # (the spec's data file need not exist: --data below)
cat "$SRC"/docs/*.md "$SRC"/README.md >"$T/data" # any text: the speed does not depend on it
cd "$T"
# The phases: every step full-rank (the switch past the run), every step ReLoRA (no warm start).
phase_args() {
    case $1 in
    full) echo "--total-steps 2000 --warm-start 1000" ;;
    relora) echo "--total-steps 2000 --warm-start 0" ;;
    esac
}
median() { # DIR: the median tokens/s of its steps >= 3
    python3 - "$1/metrics.jsonl" <<'PY'
import json, statistics, sys
v = [json.loads(l)["tokens_per_s"] for l in open(sys.argv[1])]
v = v[3:] or v
print(f"{statistics.median(v):.0f}")
PY
}
echo "| config | phase | steps | 1 rank x 2 threads (tok/s) | 2 ranks x 1 thread (tok/s) | ratio |"
echo "|---|---|---|---|---|---|"
for phase in full relora; do
    # shellcheck disable=SC2046
    ./tiny --data data --out "one-$phase" --threads 2 --quiet --steps "$STEPS" --checkpoint-every 0 \
        --eval-every 0 --eval-batches 1 $(phase_args $phase) >"one-$phase.out" 2>&1 ||
        { cat "one-$phase.out"; exit 1; }
    # shellcheck disable=SC2046
    mpirun -np 2 ./tiny --data data --out "two-$phase" --threads 1 --quiet --steps "$STEPS" \
        --checkpoint-every 0 --eval-every 0 --eval-batches 1 $(phase_args $phase) >"two-$phase.out" 2>&1 ||
        { cat "two-$phase.out"; exit 1; }
    a=$(median "one-$phase") b=$(median "two-$phase")
    echo "| tiny.relora, micro_batch 4 | $phase | $STEPS | $a | $b | $(python3 -c "print(f'{$b / $a:.2f}')") |"
done
