#!/usr/bin/env bash
# `relorac plot`: draws a real trainer's metrics.jsonl (the fake model's trainer) as PNG
# and SVG that parse (PNG signature and the 1200x800 size asked of gnuplot; SVG as XML
# with that viewBox), and gives a clear error and exit code for a missing, empty or
# malformed metrics file and for gnuplot missing.
# usage: plot.sh RELORAC FAKE_TRAINER
set -u
R=$1
TRAINER=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
expect() { # name want-exit want-stderr-text cmd...
    local name=$1 want=$2 text=$3
    shift 3
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" -eq "$want" ] && grep -qF -- "$text" "$T/err" "$T/out"; then ok; else
        bad "$name: exit $rc (want $want), output:"; cat "$T/out" "$T/err"; echo "(wanted '$text')"; fi
}

# a real run: 40 steps, a merge every 5 after the warm start (the fake model's schedule)
for i in $(seq 1 3000); do echo "the quick brown fox jumps over the lazy dog $((i % 7))"; done >"$T/data.txt"
"$TRAINER" --data "$T/data.txt" --steps 40 --out "$T/run" --threads 2 --eval-every 10 --quiet || bad "training"
resets=$(grep -c '"reset"' "$T/run/metrics.jsonl")
switches=$(grep -c '"warm_switch"' "$T/run/metrics.jsonl")
[ "$resets" -ge 1 ] && [ "$switches" -eq 1 ] && ok || bad "the run has $switches switches and $resets merges"

expect png 0 "wrote $T/run/metrics.png (40 steps, 4 validations, $resets merges)" "$R" plot "$T/run"
expect svg 0 "wrote $T/pic.svg" "$R" plot "$T/run/metrics.jsonl" -o "$T/pic.svg"
# an output folder that does not exist: our message before gnuplot runs, and no file left
expect no-out-dir 2 "relorac plot: cannot write $T/nowhere/pic.png: No such file or directory" "$R" plot "$T/run" -o "$T/nowhere/pic.png"
python3 - "$T/run/metrics.png" "$T/pic.svg" <<'PY' && ok || bad "the pictures do not parse"
import struct, sys
import xml.etree.ElementTree as ET
png = open(sys.argv[1], "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
assert png[12:16] == b"IHDR", "no IHDR chunk first"
w, h = struct.unpack(">II", png[16:24])
assert (w, h) == (1200, 800), f"PNG is {w}x{h}"
assert png[-8:-4] == b"IEND", "PNG does not end with IEND"
root = ET.parse(sys.argv[2]).getroot()
assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
assert root.get("viewBox") == "0 0 1200 800", root.get("viewBox")
texts = " ".join("".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text"))
for want in ("validation loss", "learning rate", "switch to ReLoRA", "merge"):
    assert want in texts, f"SVG has no text '{want}'"
PY

# errors: missing, empty, malformed; gnuplot missing; bad output name
M=$T/m/metrics.jsonl
mkdir -p "$T/m"
expect no-dir 2 "relorac plot: cannot open $T/nowhere: No such file or directory" "$R" plot "$T/nowhere"
expect no-file 2 "relorac plot: cannot open $T/m/metrics.jsonl: No such file or directory" "$R" plot "$T/m"
: >"$M"
expect empty 1 "$M: error: no metrics lines (the run logged no step yet)" "$R" plot "$T/m"
printf '{"step":0,"loss":5.5,"lr":0,"events":[]}\n{"step":1,"loss":5.4,"lr":0.001,"events":[]}\n{"step":2,"loss":5.3 "lr":0.001}\n' >"$M"
expect malformed 1 "$M:3:22: error: expected ',' or '}'" "$R" plot "$T/m"
printf '{"loss":5.5}\n' >"$M"
expect no-step 1 "$M:1:1: error: no \"step\" in this line" "$R" plot "$T/m"
printf '{"step":0,"loss":"high"}\n' >"$M"
expect loss-string 1 "$M:1:18: error: \"loss\" must be a number or null" "$R" plot "$T/m"
printf '{"step":-1,"loss":1}\n' >"$M"
expect negative-step 1 "$M:1:9: error: \"step\" must be a non-negative integer" "$R" plot "$T/m"
printf '{"step":0,"loss":1,"events":"reset"}\n' >"$M"
expect events 1 "$M:1:29: error: \"events\" must be an array of strings" "$R" plot "$T/m"
printf '{"step":0,"loss":null}\n{"step":1,"grad_norm":1}\n' >"$M"
expect no-values 1 "$M: error: nothing to plot: no line has a \"loss\", \"val_loss\" or \"lr\" number" "$R" plot "$T/m"
printf 'step 0 loss 1\n' >"$M"
expect not-json 1 "$M:1:1: error: expected '{' (each line is one JSON object)" "$R" plot "$T/m"
# a run resumed from step 2 logs steps 2.. again (they replace the first ones); the last
# line was cut by a kill: a warning, and the rest is drawn
printf '{"step":0,"loss":5}\n{"step":1,"loss":4}\n{"step":2,"loss":3}\n{"step":3,"loss":2}\n{"step":2,"loss":3.5,"val_loss":3.6}\n{"step":3,"lo' >"$M"
expect resumed-truncated 0 "wrote $T/m/metrics.png (3 steps, 1 validations, 0 merges)" "$R" plot "$T/m"
grep -qF "$M:6: warning: the last line is incomplete" "$T/err" && ok || { bad "no warning for the cut line"; cat "$T/err"; }
expect bad-ext 2 "-o $T/x.jpg: the file name must end in .png or .svg" "$R" plot "$T/run" -o "$T/x.jpg"
expect no-gnuplot 2 "relorac plot: gnuplot is not installed (on Debian: apt-get install gnuplot-nox)" \
    env PATH="$T/empty-path" "$R" plot "$T/run" -o "$T/np.png"
[ ! -e "$T/np.png" ] && ok || bad "a picture was written without gnuplot"
expect no-args 2 "relorac plot: no run directory given" "$R" plot
# a FIFO without a writer reads as empty and a device is refused, at once (they used to
# block forever, or read /dev/zero until memory ran out); a pipe being written is read
mkfifo "$T/fifo.jsonl"
expect fifo 1 "$T/fifo.jsonl: error: no metrics lines" timeout 20 "$R" plot "$T/fifo.jsonl" -o "$T/f.png"
expect device 2 "relorac plot: cannot open /dev/zero: a character device, not a file" \
    timeout 20 "$R" plot /dev/zero -o "$T/z.png"
expect pipe 0 "wrote $T/p.png (40 steps, 4 validations, $resets merges)" \
    sh -c 'cat "$1" | timeout 20 "$0" plot /dev/stdin -o "$2"' "$R" "$T/run/metrics.jsonl" "$T/p.png"

echo "plot: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
