#!/usr/bin/env bash
# relorac sweep end to end, on a 1-layer dim-16 model for a few steps: the results
# table (CSV header and rows, Markdown), the plot (parsed as SVG), one build shared by
# the variants that differ only in run-time settings (counted), a failing variant
# recorded while the others run, a second run that skips the finished variants, and
# Ctrl-C (SIGINT) then the same command resuming the interrupted variant.
# RELORAC comes from meson.
set -u
r=$RELORAC
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); }
fail() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}
# expect_rc WANT RC what
expect_rc() { if [ "$2" -eq "$1" ]; then ok; else fail "$3: exit $2, want $1"; sed 's/^/    /' "$tmp/out" | tail -20; fi; }
# expect_grep PATTERN FILE what
expect_grep() { if grep -Eq -- "$1" "$2"; then ok; else fail "$3: no '$1' in $2"; sed 's/^/    /' "$2" | tail -20; fi; }
expect_no_grep() { if grep -Eq -- "$1" "$2"; then fail "$3: '$1' in $2"; sed 's/^/    /' "$2" | tail -20; else ok; fi; }

command -v gnuplot >/dev/null || { echo "gnuplot is not installed (scripts/setup.sh installs gnuplot-nox)"; exit 77; }

cd "$tmp"
for i in $(seq 1 3000); do echo "line $i of the sweep test text, with some words to learn"; done >data.txt
head -c 20 data.txt >short.txt
cat >t.relora <<'EOF'
model m {
  vocab = 256; dim = 16; layers = 1; heads = 2; context = 16
  block(x) {
    h = x + attention(rmsnorm(x), rope = 10000)
    return h + swiglu(rmsnorm(h), hidden = 32)
  }
}
adapter lora { rank = 2; targets = ["attention.*", "swiglu.*"] }
train {
  data = text("data.txt"); batch = 2; seq_len = 16; steps = 6; eval_every = 3; eval_batches = 2
  schedule = relora(warmup = 1, warm_start = 2, reset_every = 2, restart_warmup = 1)
}
sweep t {
  variant a { train.seed = 1 }
  variant b { train.seed = 2; train.optimizer.lr = 2e-3; train.steps = 8 }
  variant bad { adapter.rank = 99 }
  variant short { train.data = text("short.txt") }
}
sweep long { variant y { train.steps = 3000; train.eval_every = 1; train.eval_batches = 20 } }
EOF

# -- a sweep with a failing variant: the others finish; exit 1 ----------------------
"$r" sweep t.relora --sweep t --jobs 2 --out o >"$tmp/out" 2>&1
expect_rc 1 $? "sweep t"
cp "$tmp/out" run1.log
expect_grep '^\[1/4\] t/a: done' run1.log "variant a finished"
expect_grep '^\[2/4\] t/b: done' run1.log "variant b finished"
expect_grep '^\[3/4\] t/bad: failed: .*t.relora:[0-9]+:[0-9]+: .*rank' run1.log "the bad variant's check error"
expect_grep '^\[4/4\] t/short: failed: .*short.txt' run1.log "the short variant's trainer error"
# a, b and short differ only in run-time settings (seed, lr, steps, data): one build
n_builds=$(grep -c 'compiling' run1.log)
[ "$n_builds" -eq 1 ] && ok || fail "one build for a, b and short: $n_builds compiled"
[ "$(ls o/builds | wc -l)" -eq 1 ] && ok || fail "one build directory: $(ls o/builds)"
# a swept trainer, like one from relorac build, has the runtime's folder as its run path
# (where it finds librelorac_spm for a SentencePiece --tokenizer)
if readelf -d o/builds/*/train | grep -Eq 'R(UN)?PATH.*\['"$(dirname "$(readlink -f "$r")")"; then ok; else
    fail "the swept trainer's run path: $(readelf -d o/builds/*/train | grep -E 'R(UN)?PATH')"
fi

# the CSV: header, one row per variant; params and ReLoRA-phase trainable counted by
# hand: embedding 256*16 + head 256*16 + final norm 16 + a layer (2 norms 32,
# attention 4*16*16, swiglu 3*16*32) = 10800; trainable: embedding, head, norms (8240)
# + LoRA r=2 over q,k,v,o (4*2*(16+16)) and gate, up, down (3*2*(16+32)) = 8784
python3 - <<'EOF' >py.out 2>&1
import csv, math, xml.etree.ElementTree as ET
want = ("name,sweep,variant,status,steps,params,trainable_full,trainable_relora,flops_per_token,"
        "tokens_per_s,peak_rss_mib,train_loss,val_loss,val_ppl,val_bits_per_byte,wall_s,build,message")
lines = open("o/results.csv").read().splitlines()
assert lines[0] == want, lines[0]
rows = {r["name"]: r for r in csv.DictReader(open("o/results.csv"))}
assert sorted(rows) == ["t/a", "t/b", "t/bad", "t/short"], sorted(rows)
a, b = rows["t/a"], rows["t/b"]
assert a["status"] == b["status"] == "done", (a["status"], b["status"])
assert (a["steps"], b["steps"]) == ("6", "8")
assert a["params"] == "10800" and a["trainable_full"] == "10800" and a["trainable_relora"] == "8784", a
assert a["build"] == b["build"] == rows["t/short"]["build"] != "", (a["build"], b["build"])
for r in (a, b):
    v = float(r["val_loss"])
    assert 0 < v < 6, r
    assert abs(float(r["val_ppl"]) - math.exp(v)) < 1e-3 * math.exp(v), r
    assert abs(float(r["val_bits_per_byte"]) - v / math.log(2)) < 1e-3, r
    assert float(r["peak_rss_mib"]) > 1 and float(r["wall_s"]) > 0 and float(r["tokens_per_s"]) > 0, r
    assert 0 < float(r["train_loss"]) < 6, r
assert rows["t/bad"]["status"] == "failed" and "rank" in rows["t/bad"]["message"], rows["t/bad"]
assert rows["t/short"]["status"] == "failed" and "short.txt" in rows["t/short"]["message"], rows["t/short"]
md = open("o/results.md").read().splitlines()
table = [l for l in md if l.startswith("|")]
assert table[0].startswith("| name | sweep | variant | status |"), table[0]
assert set(table[1]) <= set("|-: "), table[1]
assert len(table) == 2 + 4 and table[2].startswith("| t/a | t | a | done |"), table
svg = ET.parse("o/val_loss.svg").getroot()
assert svg.tag == "{http://www.w3.org/2000/svg}svg", svg.tag
texts = {"".join(t.itertext()).strip() for t in svg.iter("{http://www.w3.org/2000/svg}text")}
assert "t/a" in texts and "t/b" in texts, texts
print("ok")
EOF
expect_grep '^ok$' py.out "results.csv, results.md and val_loss.svg"

# -- the same command again: a and b are skipped, the failed ones tried again -------
"$r" sweep t.relora --sweep t --jobs 2 --out o >"$tmp/out" 2>&1
expect_rc 1 $? "sweep t again"
cp "$tmp/out" run2.log
expect_grep '2 finished before' run2.log "finished variants counted"
expect_no_grep 'compiling|t/a: started|t/b: started' run2.log "nothing rebuilt or rerun"
expect_grep '^\[4/4\] t/short: failed' run2.log "a failed variant runs again"

# -- Ctrl-C, then the same command resumes ---------------------------------------------
"$r" sweep t.relora --sweep long --out o >long1.log 2>&1 &
pid=$!
m=o/runs/long__y/metrics.jsonl
for _ in $(seq 1 600); do
    [ -f "$m" ] && [ "$(wc -l <"$m")" -ge 5 ] && break
    sleep 0.1
done
kill -INT "$pid"
wait "$pid"
expect_rc 130 $? "sweep stopped by SIGINT"
expect_grep '^status interrupted' o/runs/long__y/state "the variant is recorded as interrupted"
[ -f o/runs/long__y/trainer.safetensors ] && ok || fail "the interrupted variant wrote a checkpoint"
steps1=$(wc -l <"$m")
"$r" sweep t.relora --sweep long --out o >"$tmp/out" 2>&1
expect_rc 0 $? "the same command resumes"
cp "$tmp/out" long2.log
expect_grep 'long/y: resumed at step [1-9]' long2.log "resumed, not restarted"
expect_no_grep 'compiling' long2.log "the build is reused"
expect_grep '^status done' o/runs/long__y/state "the resumed variant finished"
python3 - "$m" "$steps1" <<'EOF' >py2.out 2>&1
import json, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1])]
# every step of the run is logged; the first sitting logged some of them
assert sorted(set(steps)) == list(range(3000)), (len(set(steps)), steps[:3], steps[-3:])
assert 5 <= int(sys.argv[2]) < 3000
print("ok")
EOF
expect_grep '^ok$' py2.out "one metrics line per step across both sittings"

# -- mistakes on the command line --------------------------------------------------------
"$r" sweep t.relora --jobs 0 >"$tmp/out" 2>&1
expect_rc 2 $? "--jobs 0"
"$r" sweep t.relora --grid 'train.seed=1' --list >"$tmp/out" 2>&1
expect_rc 1 $? "a grid that is no list"
expect_grep '<--grid>:1:1: error: a grid is key=\[v1, v2, ...\]' "$tmp/out" "the grid's error names it"
"$r" sweep t.relora --sweep nosuch --list >"$tmp/out" 2>&1
expect_rc 1 $? "an unknown sweep"
"$r" sweep t.relora --sweep t --grid 'train.eval_batches=[1, 2]' --list --out o >"$tmp/out" 2>&1
expect_rc 0 $? "--list with a command-line grid"
expect_grep '^t/a,eval_batches=2 +build ' "$tmp/out" "the grid's axis is in the names"
expect_grep '^8 variants, 1 build' "$tmp/out" "one build for all"

# -- the relora-vs-full experiment: its variants expand and check, and each control
# has about the parameters ReLoRA trains at its size. Counts by the closed form of a
# byte-level LLaMA block (untied head): 2Vd + L(4d^2 + 3dh + 2d) + d; ReLoRA trains the
# embedding, head and norms, 2Vd + 2Ld + d, and rank-r adapters on q, k, v, o (4r(2d))
# and gate, up, down (3r(d + h)).
spec=${RELORAC_SOURCE_ROOT:-}/examples/experiments/relora-vs-full.relora
if [ -n "${RELORAC_SOURCE_ROOT:-}" ] && [ -f "$spec" ]; then
    "$r" sweep "$spec" --list --out o-exp >exp.out 2>&1
    expect_rc 0 $? "the experiment's sweeps check"
    python3 - <<'EOF' >py3.out 2>&1
import re
models = {"s0": (32, 2, 88), "s1": (64, 2, 172), "s2": (96, 3, 256), "s3": (128, 4, 344),  # d, L, hidden
          "c0": (20, 2, 64), "c1": (40, 2, 88), "c2": (48, 3, 144), "c3": (64, 4, 160)}
ranks = {"s0": 4, "s1": 8, "s2": 12, "s3": 16}
V = 256
def params(m):
    d, L, h = models[m]
    return 2 * V * d + L * (4 * d * d + 3 * d * h + 2 * d) + d
def relora_trainable(m, r):
    d, L, h = models[m]
    return 2 * V * d + 2 * L * d + d + L * (4 * r * 2 * d + 3 * r * (d + h))
rows = {}
for line in open("exp.out"):
    m = re.match(r"(\S+) +build \w+ +params +(\d+) +relora trainable +(\d+)", line)
    if m:
        rows[m.group(1)] = (int(m.group(2)), int(m.group(3)))
assert len(rows) == 94, len(rows)
seen = set()
for size in ("s0", "s1", "s2", "s3"):
    c = "c" + size[1]
    want = relora_trainable(size, ranks[size])
    for name, (p, t) in rows.items():
        method = name.split(",")[0]
        if method == size + "/full":
            assert (p, t) == (params(size), params(size)), (name, p, t)
        elif method in (size + "/lora", size + "/relora"):
            assert (p, t) == (params(size), want), (name, p, t, want)
        elif method == size + "/control":
            assert p == t == params(c), (name, p, params(c))
            assert abs(p - want) <= 0.06 * want, (name, p, want)
        else:
            continue
        seen.add(method)
assert len(seen) == 16, sorted(seen)
print("ok")
EOF
    expect_grep '^ok$' py3.out "the experiment's parameter counts and controls"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
