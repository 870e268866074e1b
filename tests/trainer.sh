#!/usr/bin/env bash
# CLI tests of a training binary built like a generated one (tests/unit/fake_model.c linked
# with runtime/trainer_main.c): help, errors and exit codes, checkpoints, token files,
# SIGTERM/SIGINT checkpointing, resume from the saved data path, sampling.
set -u
BIN=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
expect_rc() { # name want cmd...
    local name=$1 want=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then ok; else bad "$name: exit $rc, want $want"; cat "$T/err"; fi
}
has() { # name file text
    if grep -qF -- "$3" "$2"; then ok; else bad "$1: '$3' not in $2"; cat "$2"; fi
}

for i in $(seq 1 3000); do echo "the quick brown fox jumps over the lazy dog $((i % 7))"; done >"$T/data.txt"

expect_rc help 0 "$BIN" --help
has help "$T/out" "stop after step N of the schedule (default: 60)"

# docs/runtime.md holds the option table exactly as --help=markdown prints it
# (DOCS_UPDATE=1 rewrites it there instead)
DOC=${RELORAC_SOURCE_ROOT:-$(dirname "$0")/..}/docs/runtime.md
expect_rc help-markdown 0 "$BIN" --help=markdown
if [ "${DOCS_UPDATE:-}" = 1 ]; then
    python3 - "$DOC" "$T/out" <<'PY2'
import sys
doc, table = open(sys.argv[1]).read(), open(sys.argv[2]).read()
b, e = "<!-- trainer-options:begin -->\n", "<!-- trainer-options:end -->"
i, j = doc.index(b) + len(b), doc.index(e)
open(sys.argv[1], "w").write(doc[:i] + table + doc[j:])
PY2
fi
sed -n '/^<!-- trainer-options:begin -->$/,/^<!-- trainer-options:end -->$/p' "$DOC" | sed '1d;$d' >"$T/doc-table"
if [ -s "$T/doc-table" ] && diff -u "$T/doc-table" "$T/out"; then ok; else
    bad "docs/runtime.md: the option table differs from --help=markdown (DOCS_UPDATE=1 meson test trainer-cli rewrites it)"
fi

# numbers are strict: no spaces, signs, trailing bytes or overflow; paths are not empty
for v in "--seed= -5" "--seed=-5" "--steps=+5" "--steps=5x" "--steps=" "--steps=9223372036854775808" \
    "--threads=1025" "--temperature=nan" "--temperature=0x10" "--eval-every=-1" "--out=" "--data="; do
    expect_rc "strict $v" 2 "$BIN" --data "$T/data.txt" "$v"
    has "strict $v" "$T/err" "${v%%=*}"
done
expect_rc seed-max 0 "$BIN" --help --seed 18446744073709551615
expect_rc seed-overflow 2 "$BIN" --help --seed 18446744073709551616
has seed-overflow "$T/err" "bad value '18446744073709551616' for --seed"

expect_rc no-data 2 "$BIN" --steps 3 --out "$T/x"
has no-data "$T/err" "no training data: pass --data PATH"

expect_rc bad-option 2 "$BIN" --data "$T/data.txt" --stepz 3
has bad-option "$T/err" "unknown option '--stepz'"

expect_rc train 0 "$BIN" --data "$T/data.txt" --steps 30 --out "$T/run" --threads 2 --eval-every 10
has train "$T/out" "step 10/30 | loss"
has train "$T/out" "bits/byte"
has train "$T/out" "step 26: merged adapters, re-initialised, pruned"
has train "$T/out" "step 30: checkpoint written to $T/run"
for f in model.safetensors trainer.safetensors config.json metrics.jsonl; do
    if [ -s "$T/run/$f" ]; then ok; else bad "train: $f missing"; fi
done
if [ "$(wc -l <"$T/run/metrics.jsonl")" -eq 30 ]; then ok; else bad "train: metrics lines"; fi

expect_rc sample 0 "$BIN" --sample "the quick" --tokens 30 --out "$T/run"
if [ "$(head -c 9 "$T/out")" = "the quick" ]; then ok; else bad "sample: prompt not echoed"; fi
has sample "$T/err" "sampling from $T/run (step 30)"

# token files: llm.c's uint16 and uint32 formats and nanoGPT's headerless uint16 hold the
# same tokens and train the same; a damaged file is refused
python3 - "$T" <<'PY'
import struct, sys
d = sys.argv[1]
toks = [(i * 7) % 200 for i in range(5000)]
hdr = [20240520, 1, len(toks)] + [0] * 253
open(d + "/ok.bin", "wb").write(struct.pack("<256i", *hdr) + struct.pack("<%dH" % len(toks), *toks))
hdr32 = [20240801, 7, len(toks)] + [0] * 253
open(d + "/ok32.bin", "wb").write(struct.pack("<256i", *hdr32) + struct.pack("<%dI" % len(toks), *toks))
open(d + "/nano.bin", "wb").write(struct.pack("<%dH" % len(toks), *toks))
open(d + "/magic.bin", "wb").write(struct.pack("<256i", 1234, 1, 10, *[0] * 253) + bytes(20))
open(d + "/short.bin", "wb").write(struct.pack("<256i", *hdr) + bytes(100))
PY
expect_rc tokens 0 "$BIN" --data "$T/ok.bin" --data-kind tokens --steps 5 --out "$T/tok" --quiet
expect_rc tokens-sample 0 "$BIN" --data-kind tokens --sample "7 14 21" --tokens 5 --out "$T/tok" --temperature 0
if grep -qE '^7 14 21( [0-9]+){5}$' "$T/out"; then ok; else bad "tokens-sample: $(cat "$T/out")"; fi
expect_rc tokens32 0 "$BIN" --data "$T/ok32.bin" --data-kind tokens --steps 5 --out "$T/tok32" --quiet
expect_rc nanogpt 0 "$BIN" --data "$T/nano.bin" --data-kind nanogpt --steps 5 --out "$T/nano" --quiet
losses() { python3 -c 'import json,sys; print([json.loads(l)["loss"] for l in open(sys.argv[1])])' "$1"; }
if [ "$(losses "$T/tok/metrics.jsonl")" = "$(losses "$T/tok32/metrics.jsonl")" ] &&
    [ "$(losses "$T/tok/metrics.jsonl")" = "$(losses "$T/nano/metrics.jsonl")" ]; then ok
else bad "token formats: uint16, uint32 and nanoGPT losses differ"; fi
expect_rc nanogpt-header 2 "$BIN" --data "$T/ok.bin" --data-kind nanogpt --out "$T/y"
has nanogpt-header "$T/err" "expected a headerless nanoGPT file (uint16 tokens), found the header of an llm.c token file"
expect_rc bad-magic 2 "$BIN" --data "$T/magic.bin" --data-kind tokens --out "$T/y"
has bad-magic "$T/err" "magic.bin: bad magic 1234: expected an llm.c token file"
expect_rc truncated-bin 2 "$BIN" --data "$T/short.bin" --data-kind tokens --out "$T/y"
has truncated-bin "$T/err" "short.bin: truncated: header says 5000 tokens"

# --init-from: a fresh run from the exported weights; --steps 0 writes them back, and
# export -> import -> export gives the same tensors, bit for bit
st_tensors() { # FILE: name, dtype, shape and the hex of its bytes, one tensor a line
    python3 - "$1" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
for k in sorted(k for k in hdr if k != "__metadata__"):
    b, e = hdr[k]["data_offsets"]
    print(k, hdr[k]["dtype"], hdr[k]["shape"], raw[8 + n + b:8 + n + e].hex())
PY
}
expect_rc init-a 0 "$BIN" --data "$T/data.txt" --steps 25 --out "$T/ia" --quiet
expect_rc init-b 0 "$BIN" --data "$T/data.txt" --init-from "$T/ia" --steps 0 --out "$T/ib" --seed 99
has init-b "$T/out" "initialised from $T/ia: 3 tensors (F32) of a relorac checkpoint in 1 file; step 0, fresh optimizer state"
has init-b "$T/out" "step 0: val loss"
expect_rc init-c 0 "$BIN" --data "$T/data.txt" --init-from "$T/ib" --steps 0 --out "$T/ic" --quiet --seed 7
if [ "$(st_tensors "$T/ia/model.safetensors")" = "$(st_tensors "$T/ib/model.safetensors")" ] &&
    [ "$(st_tensors "$T/ib/model.safetensors")" = "$(st_tensors "$T/ic/model.safetensors")" ]; then ok
else bad "init-from: export -> import -> export changed the weights"; fi
if python3 - "$T/ib/trainer.safetensors" "$T/ia" <<'PY'; then ok; else bad "init-from: metadata lacks init_from"; fi
import json, os, struct, sys
raw = open(sys.argv[1], "rb").read()
meta = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])["__metadata__"]
sys.exit(0 if meta.get("init_from") == os.path.realpath(sys.argv[2]) and meta["step"] == "0" else 1)
PY
expect_rc init-train 0 "$BIN" --data "$T/data.txt" --init-from "$T/ia" --steps 3 --out "$T/id" --quiet
expect_rc init-resume 2 "$BIN" --resume "$T/id" --init-from "$T/ia"
has init-resume "$T/err" "--init-from starts a fresh run from other weights and --resume continues a run"
expect_rc init-missing 2 "$BIN" --data "$T/data.txt" --init-from "$T/nowhere" --out "$T/ie"
has init-missing "$T/err" "--init-from $T/nowhere: not a directory"
expect_rc init-sample 0 "$BIN" --sample "the" --tokens 5 --init-from "$T/ia" --out "$T/if"
has init-sample "$T/err" "sampling from the weights in $T/ia (--init-from)"

# signals: finish the step, checkpoint, exit 128 + signal; resume needs only --resume
for sig in TERM INT; do
    dir="$T/sig$sig"
    "$BIN" --data "$T/data.txt" --total-steps 100000000 --out "$dir" --threads 2 >"$T/out" 2>"$T/err" &
    pid=$!
    for _ in $(seq 1 500); do
        [ -f "$dir/metrics.jsonl" ] && [ "$(wc -l <"$dir/metrics.jsonl")" -ge 20 ] && break
        sleep 0.02
    done
    kill -s "$sig" "$pid"
    wait "$pid"
    rc=$?
    want=$([ "$sig" = TERM ] && echo 143 || echo 130)
    if [ "$rc" -eq "$want" ]; then ok; else bad "SIG$sig: exit $rc, want $want"; fi
    has "SIG$sig" "$T/err" "stopped by SIG$sig"
    has "SIG$sig" "$T/err" "resume with: $BIN --resume $dir"
    n=$(wc -l <"$dir/metrics.jsonl")
    expect_rc "SIG$sig-resume" 0 "$BIN" --resume "$dir" --steps $((n + 2)) --quiet
    if [ "$(wc -l <"$dir/metrics.jsonl")" -eq $((n + 2)) ]; then ok; else bad "SIG$sig: resume steps"; fi
done

# the data file cut to nothing while training: the trainer goes on from its copy (with a
# mapping it died of SIGBUS, exit 135)
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
cp "$T/data.txt" "$T/shrinking.txt"
"$BIN" --data "$T/shrinking.txt" --total-steps 100000000 --out "$T/shrink" --threads 2 --quiet >"$T/out" 2>"$T/err" &
pid=$!
for _ in $(seq 1 500); do [ "$(lines "$T/shrink/metrics.jsonl")" -ge 5 ] && break; sleep 0.02; done
truncate -s 0 "$T/shrinking.txt"
n=$(lines "$T/shrink/metrics.jsonl")
for _ in $(seq 1 500); do [ "$(lines "$T/shrink/metrics.jsonl")" -ge $((n + 20)) ] && break; sleep 0.02; done
kill -s TERM "$pid"
wait "$pid"
rc=$?
if [ "$rc" -eq 143 ]; then ok; else bad "data cut while training: exit $rc, want 143"; cat "$T/err"; fi
if [ "$(lines "$T/shrink/metrics.jsonl")" -ge $((n + 20)) ]; then ok; else bad "data cut while training: stopped at $(lines "$T/shrink/metrics.jsonl") steps"; fi

# a crash (SIGKILL) after the last checkpoint: the log holds steps the checkpoint lacks, and
# the resumed run logs each step once
"$BIN" --data "$T/data.txt" --total-steps 100000000 --checkpoint-every 7 --out "$T/crash" --threads 2 --quiet >"$T/out" 2>"$T/err" &
pid=$!
for _ in $(seq 1 500); do [ "$(lines "$T/crash/metrics.jsonl")" -ge 10 ] && break; sleep 0.02; done
kill -s KILL "$pid"
wait "$pid" 2>/dev/null
n=$(lines "$T/crash/metrics.jsonl")
expect_rc crash-resume 0 "$BIN" --resume "$T/crash" --steps $((n + 3)) --quiet
if python3 - "$T/crash/metrics.jsonl" $((n + 3)) <<'PY2'; then ok; else bad "crash-resume: steps not each once"; fi
import json, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1])]
sys.exit(0 if steps == list(range(int(sys.argv[2]))) else 1)
PY2

# two trainers on one directory: the second is refused and names the first
"$BIN" --data "$T/data.txt" --total-steps 100000000 --out "$T/shared" --quiet >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 500); do [ -s "$T/shared/trainer.lock" ] && break; sleep 0.02; done
expect_rc second-trainer 2 "$BIN" --data "$T/data.txt" --steps 3 --out "$T/shared" --overwrite
has second-trainer "$T/err" "$T/shared is in use by another trainer (pid $pid"
kill -s TERM "$pid"
wait "$pid"

# FIFOs: as data, refused at once; as the log with no reader, refused at once (both hung)
mkfifo "$T/fifo"
expect_rc fifo-data 2 timeout 20 "$BIN" --data "$T/fifo" --steps 3 --out "$T/f1"
has fifo-data "$T/err" "fifo: cannot read data file: a FIFO"
expect_rc fifo-log 2 timeout 20 "$BIN" --data "$T/data.txt" --steps 3 --out "$T/f2" --log "$T/fifo"
has fifo-log "$T/err" "fifo: cannot open the metrics log: a FIFO with no reader"

# output that cannot be written is an error, not exit 0
expect_rc help-full 2 sh -c '"$0" --help >/dev/full' "$BIN"
has help-full "$T/err" "cannot write to standard output"
# --tokens near 2^62: a sample that runs until its reader stops (was SIGSEGV at once)
"$BIN" --sample hi --tokens 4611686018427387904 --out "$T/run" 2>/dev/null | head -c 200 >"$T/out"
if [ "$(head -c 2 "$T/out")" = hi ] && [ "$(wc -c <"$T/out")" -eq 200 ]; then ok; else bad "huge --tokens: $(cat "$T/out")"; fi

# a data path of 1,400 bytes is recorded whole (it was cut at 1,023 bytes, and --resume then
# looked for another file)
long="$T"
for _ in 1 2 3 4 5 6 7; do long="$long/$(printf 'd%.0s' $(seq 1 199))"; done
mkdir -p "$long" && cp "$T/data.txt" "$long/data.txt"
expect_rc long-path 0 "$BIN" --data "$long/data.txt" --steps 2 --out "$T/long" --quiet
expect_rc long-path-resume 0 "$BIN" --resume "$T/long" --steps 4 --quiet

# relorac check warns when a cpu plan exceeds what a process may use here; RLIMIT_AS (ulimit
# -v) stands in for a small machine (skipped when relorac is built with ASan, which needs
# terabytes of address space)
if [ -n "${RELORAC:-}" ] && ! grep -q __asan_init "$RELORAC"; then
    ROOT=${RELORAC_SOURCE_ROOT:-$(dirname "$0")/..}
    sed 's/dim = 128;/dim = 2048;/; s/hidden = 344/hidden = 5504/' "$ROOT/examples/tiny.relora" >"$T/wide.relora"
    (ulimit -v 1500000; "$RELORAC" check "$T/wide.relora" >"$T/out" 2>"$T/err")
    has check-memory "$T/err" "relorac: warning: the memory plan needs"
    has check-memory "$T/err" "RLIMIT_AS 1.4 GiB); its trainer will refuse to start here"
    "$RELORAC" check "$ROOT/examples/tiny.relora" >"$T/out" 2>"$T/err"
    if grep -q "memory plan needs" "$T/err"; then bad "check-memory: tiny warned"; else ok; fi
fi

cp -r "$T/run" "$T/cut"
truncate -s 300 "$T/cut/trainer.safetensors"
expect_rc truncated-checkpoint 2 "$BIN" --resume "$T/cut" --steps 40
has truncated-checkpoint "$T/err" "trainer.safetensors: truncated"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
