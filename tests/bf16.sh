#!/usr/bin/env bash
# precision = bf16 on target = cpu: a tiny ReLoRA trainer (warm start, switch, two merges in
# 24 steps) built at fp32 and at bf16 must agree in every step's training loss within 0.5%
# relative (bf16 rounds GEMM operands to 8 significant bits; a broken bf16 GEMM is off by
# far more) and differ somewhere (the rounding happens); the bf16 trainer gives the same
# metrics on 1 and 2 threads; a --cpu without AVX512-BF16 is refused at build, one with it
# records the feature for the start-up check. Skipped (77) on a CPU without avx512_bf16.
# RELORAC comes from meson.
set -u
r=$RELORAC
if ! grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null; then
    echo "skipped: this CPU lacks avx512_bf16, which bf16 trainers on target = cpu need"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

cd "$tmp" || exit 2
for i in $(seq 1 3000); do echo "the quick brown fox jumps over the lazy dog $((i % 7))"; done >data.txt
cat >t.relora <<'SPEC'
model t {
  vocab = 256; dim = 64; layers = 2; heads = 4; kv_heads = 4; context = 64
  init_std = 0.02; tied = false; positions = none
  block(x) {
    h = x + attention(rmsnorm(x), rope = 10000)
    return h + swiglu(rmsnorm(h), hidden = 172)
  }
}
adapter lora {
  rank = 8; alpha = 16; dropout = 0.0
  targets = ["attention.*", "swiglu.*"]
  trainable = ["embedding", "norms", "head"]
}
train {
  data = text("data.txt")
  batch = 8; seq_len = 64; steps = 24
  optimizer = adamw(lr = 3e-3, betas = (0.9, 0.999), eps = 1e-8, weight_decay = 0.0)
  clip = 1.0; precision = fp32; target = cpu; seed = 42
  schedule = relora(warmup = 2, warm_start = 8, reset_every = 8, restart_warmup = 2,
                    min_lr_ratio = 0.1, prune = 0.99, reset = magnitude, lr = 3e-3)
}
SPEC

if "$r" check t.relora -D train.precision=bf16 --no-plan >out 2>&1; then ok; else bad "check bf16 on this CPU"; cat out; fi
if "$r" build t.relora -o t32 >out 2>&1; then ok; else bad "build fp32"; cat out; fi
if "$r" build t.relora -D train.precision=bf16 -o t16 >out 2>&1; then ok; else bad "build bf16"; cat out; fi
for run in "t32 r32 2" "t16 r16 2" "t16 r16-1 1"; do
    set -- $run
    if ./"$1" --out "$2" --threads "$3" --quiet >out 2>&1; then ok; else bad "train $1 --threads $3"; cat out; fi
done
if python3 - r32/metrics.jsonl r16/metrics.jsonl <<'PY'; then ok; else bad "bf16 losses against fp32"; fi
import json, sys
def losses(p):
    return [json.loads(l)['loss'] for l in open(p) if '"loss"' in l]
a, b = losses(sys.argv[1]), losses(sys.argv[2])
assert len(a) == len(b) == 24, (len(a), len(b))
worst = max(abs(x - y) / x for x, y in zip(a, b))
print(f"bf16 vs fp32: {len(a)} steps, largest relative loss difference {worst:.2e} (tolerance 5e-3)")
sys.exit(0 if worst <= 5e-3 and a != b else 1)
PY
# the same losses and norms on 1 and 2 threads (the throughput field differs)
strip() { sed 's/"tokens_per_s":[^,]*,//' "$1"; }
if [ -s r16/metrics.jsonl ] && [ "$(strip r16/metrics.jsonl)" = "$(strip r16-1/metrics.jsonl)" ]; then ok; else
    bad "bf16 metrics differ between 1 and 2 threads"
fi
# --cpu: refused without the feature; with it, the binary requires it at start-up
"$r" build t.relora -D train.precision=bf16 --cpu skylake-avx512 -o tsk >out 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q "AVX512-BF16 (avx512_bf16), which --cpu skylake-avx512 lacks" out; then ok; else
    bad "build --cpu skylake-avx512: exit $rc"; cat out
fi
if "$r" build t.relora -D train.precision=bf16 --cpu cooperlake -o tcl >out 2>&1 && grep -qa '+avx512bf16' tcl; then ok; else
    bad "build --cpu cooperlake: no +avx512bf16 requirement recorded"; cat out
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
