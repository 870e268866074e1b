#!/usr/bin/env bash
# Does relorac's Hugging Face export mean what relorac trained? Builds small LLaMA- and
# GPT-2-shaped specs, trains each a few steps (through the warm-start switch and one merge),
# loads the checkpoint in transformers (LlamaForCausalLM, GPT2LMHeadModel) and compares
# transformers' loss with relorac's on one token window (within 1e-4 nats); and checks that
# specs LLaMA cannot express (a block-norm eps that differs from the final norm's, a block
# without attention) are not exported as LLaMA and that `relorac build` says why.
# The other way: a model transformers initialises and saves, started with --init-from,
# gives relorac a step-0 loss equal to transformers' on the same window (within 1e-5), and
# relorac's export of it equals transformers' tensors bit for bit. And relorac tokenize's
# tokenizer.json encoding equals the tokenizers library's on the same text.
#
# Not part of .ci/run: the first run downloads torch and transformers from PyPI into
# tests/hf/.venv (several GB). usage: bash tests/hf/run.sh [RELORAC] (default build/relorac)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
relorac=$(realpath -m "${1:-$root/build/relorac}")
if [ ! -x "$relorac" ]; then
    echo "hf: no relorac at $relorac: build it (meson setup build && ninja -C build) or pass its path"
    exit 2
fi
venv="$here/.venv"
py="$venv/bin/python"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error

if ! "$py" -c 'import torch, transformers' 2>/dev/null; then
    echo "hf: installing torch and transformers into $venv"
    python3 -m venv "$venv" && "$py" -m pip install -q torch transformers || {
        echo "hf: cannot install torch and transformers"
        exit 2
    }
fi
"$py" -c 'import torch, transformers; print(f"hf: torch {torch.__version__}, transformers {transformers.__version__}")'

T=$(mktemp -d)
[ -n "${HF_KEEP:-}" ] && echo "hf: files in $T" || trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

SEQ=32
# training text (deterministic), and a validation file of exactly seq_len + 1 bytes
"$py" - "$T" "$SEQ" <<'PY'
import random, sys
d, seq = sys.argv[1], int(sys.argv[2])
r = random.Random(7)
words = "in the beginning god created heaven and earth was without form void darkness upon face of deep".split()
text = " ".join(r.choice(words) for _ in range(8000)) + "\n"
open(d + "/train.txt", "w").write(text)
open(d + "/val.txt", "w").write("and the spirit of god moved upon the face of the waters. "[:seq + 1])
PY

train_section="train { batch = 4; seq_len = $SEQ; steps = 12; optimizer = adamw(lr = 1e-2)
  schedule = relora(warmup = 2, warm_start = 4, reset_every = 4, restart_warmup = 1, lr = 1e-2) }
adapter lora { rank = 4; alpha = 8; targets = [\"*\"] }"

write_spec() { # name fields block
    printf 'model %s {\n  %s\n  block(x) {\n%s\n  }\n}\n%s\n' "$1" "$2" "$3" "$train_section" >"$T/$1.relora"
}

# a LLaMA (or, with a 4th argument, another class): relorac's val loss and transformers'
# loss of the exported checkpoint agree, and a model transformers saves starts relorac there
llama_case() { # name fields block [class]
    local name=$1 cls=${4:-LlamaForCausalLM}
    write_spec "$1" "$2" "$3"
    if ! "$relorac" build "$T/$name.relora" -o "$T/$name" 2>"$T/$name.build.err"; then
        bad "$name: relorac build failed"; cat "$T/$name.build.err"; return
    fi
    if [ -s "$T/$name.build.err" ]; then bad "$name: build printed:"; cat "$T/$name.build.err"; fi
    if ! "$T/$name" --data "$T/train.txt" --val-data "$T/val.txt" --out "$T/$name.ck" --eval-every 4 \
        --eval-batches 1 --threads 2 --quiet; then
        bad "$name: training failed"; return
    fi
    grep -q '"warm_switch"' "$T/$name.ck/metrics.jsonl" && grep -q '"reset"' "$T/$name.ck/metrics.jsonl" ||
        bad "$name: the run had no warm-start switch or no merge"
    local val
    val=$("$py" -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1])][-1]["val_loss"])' \
        "$T/$name.ck/metrics.jsonl")
    if "$py" "$here/check_export.py" "$T/$name.ck" "$T/val.txt" "$SEQ" "$val" "$cls"; then ok; else bad "$name"; fi
    init_case "$name"
    [ "$cls" = LlamaForCausalLM ] || return
    # the comparison can fail: one config field changed must move transformers' loss
    local field
    for field in rms_norm_eps rope_theta; do
        rm -rf "$T/mutant" && cp -r "$T/$name.ck" "$T/mutant"
        "$py" - "$T/mutant/config.json" "$field" <<'PY'
import json, sys
path, key = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c[key] *= 10
if key == "rope_theta":
    c["rope_parameters"]["rope_theta"] = c[key]
json.dump(c, open(path, "w"))
PY
        if "$py" "$here/check_export.py" "$T/mutant" "$T/val.txt" "$SEQ" "$val" >"$T/mutant.out" 2>&1; then
            bad "$name: $field x 10 in config.json went unnoticed"; cat "$T/mutant.out"
        else
            ok; echo "  $field x 10: $(grep -o 'difference.*' "$T/mutant.out") (caught)"
        fi
    done
}

# transformers initialises and saves a model of the same config; relorac starts from it.
# The trainer's data is the one window (val.txt, seq_len + 1 bytes), so step 0's training
# loss is that window's loss under the imported weights; lr is 0 at step 0 (warmup), so the
# checkpoint after it holds the imported weights unchanged.
init_case() { # name
    local name=$1 want got
    if ! want=$("$py" "$here/check_init.py" make "$T/$name.ck" "$T/$name.rand" "$T/val.txt" "$SEQ" 2>"$T/init.err"); then
        bad "$name: transformers could not make a model"; cat "$T/init.err"; return
    fi
    if ! "$T/$name" --init-from "$T/$name.rand" --data "$T/val.txt" --val-data "$T/val.txt" --out "$T/$name.init" \
        --steps 1 --eval-every 0 --eval-batches 1 --threads 2 --quiet; then
        bad "$name: --init-from failed"; return
    fi
    got=$("$py" -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1])][0]["loss"])' \
        "$T/$name.init/metrics.jsonl")
    if "$py" -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f"  --init-from: step-0 loss relorac {b:.7f}, transformers {a:.7f}, difference {abs(a - b):.2e}"); sys.exit(abs(a - b) > 1e-5)' "$want" "$got"; then
        ok
    else
        bad "$name: step-0 loss after --init-from differs by more than 1e-5"
    fi
    if "$py" "$here/check_init.py" same "$T/$name.rand/model.safetensors" "$T/$name.init/model.safetensors"; then
        ok
    else
        bad "$name: relorac's export of the imported model is not transformers' tensors"
    fi
}

# relorac tokenize with a tokenizer.json gives the ids the tokenizers library gives
tokenizer_case() { # name (byte_level | metaspace)
    local name=$1
    if ! "$py" - "$T" "$name" <<'PY'; then bad "$name: tokenizers could not train"; return; fi
import random, sys
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
d, kind = sys.argv[1], sys.argv[2]
r = random.Random(5)
w = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
     "darkness was upon the face of the deep: 1611 2024 naïve café día 東京 — don't it's I'll ~ \t tab").split(" ")
text = "\n".join(" ".join(r.choice(w) for _ in range(r.randint(2, 16))) + r.choice(["", " ", "  "])
                 for _ in range(600)) + "\n"
open(f"{d}/{kind}.txt", "w").write(text)
if kind == "byte_level":  # GPT-2's kind
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
else:  # LLaMA's kind: a word mark, byte fallback
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    tr = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>"] + [f"<0x{i:02X}>" for i in range(256)])
tok.train([f"{d}/{kind}.txt"], tr)
tok.save(f"{d}/{kind}.json")
ids = tok.encode(text, add_special_tokens=False).ids
open(f"{d}/{kind}.want", "w").write("\n".join(map(str, ids)) + "\n")
PY
    if ! "$relorac" tokenize "$T/$name.txt" -o "$T/$name.tok" --tokenizer "$T/$name.json" >"$T/$name.tok.out" 2>&1; then
        bad "$name: relorac tokenize failed"; cat "$T/$name.tok.out"; return
    fi
    "$py" - "$T/$name.tok/train.bin" >"$T/$name.got" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
magic, version, n = struct.unpack("<3i", b[:12])
print("\n".join(map(str, struct.unpack("<%d%s" % (n, {20240520: "H", 20240801: "I"}[magic]), b[1024:]))))
PY
    if cmp -s "$T/$name.want" "$T/$name.got"; then
        ok; echo "tokenizer $name: $(wc -l <"$T/$name.got") ids equal the tokenizers library's"
    else
        bad "$name: ids differ from the tokenizers library's"; diff "$T/$name.want" "$T/$name.got" | head -5
    fi
}

# not a LLaMA: a note from relorac build, no config.json, relorac's own tensor names
not_llama_case() { # name fields block why
    local name=$1 why=$4
    write_spec "$1" "$2" "$3"
    if ! "$relorac" build "$T/$name.relora" -o "$T/$name" 2>"$T/$name.build.err"; then
        bad "$name: relorac build failed"; cat "$T/$name.build.err"; return
    fi
    grep -F "note: not exported as LlamaForCausalLM" "$T/$name.build.err" | grep -qF -- "$why" ||
        { bad "$name: no note saying '$why'"; cat "$T/$name.build.err"; }
    "$T/$name" --data "$T/train.txt" --val-data "$T/val.txt" --out "$T/$name.ck" --steps 2 --threads 2 --quiet ||
        { bad "$name: training failed"; return; }
    [ ! -e "$T/$name.ck/config.json" ] || bad "$name: wrote a config.json"
    if "$py" - "$T/$name.ck/model.safetensors" <<'PY'; then ok; else bad "$name: model.safetensors names"; fi
import sys
from safetensors import safe_open
keys = sorted(safe_open(sys.argv[1], "pt").keys())
print(f"{sys.argv[1].split('/')[-2]}: not LLaMA, {len(keys)} tensors under relorac's names, e.g. {keys[:2]}")
sys.exit(0 if keys and not any(k.startswith("model.") or k == "lm_head.weight" for k in keys) else 1)
PY
    sed -n 's/^/  /p' "$T/$name.build.err"
}

# Weights start at init_std 0.2 so that the loss depends on every field within a few
# steps (at 0.02 a changed rope base moves it by only ~1e-6).
# grouped-query attention, a rope base and an eps other than transformers' defaults
llama_case gqa_rope500 "vocab = 256; dim = 32; layers = 2; heads = 4; kv_heads = 2; context = 32; norm_eps = 1e-3; init_std = 0.2" \
    "    h = x + attention(rmsnorm(x), rope = 500)
    return h + swiglu(rmsnorm(h), hidden = 48)"
# tied head, geglu (tanh gelu), residual operands commuted, eps given on each norm
llama_case tied_geglu "vocab = 256; dim = 32; layers = 3; heads = 2; context = 64; tied = true; norm_eps = 0.01; init_std = 0.2" \
    "    h = attention(rmsnorm(x, eps = 0.01), rope = 10000) + x
    return geglu(rmsnorm(h, eps = 0.01), hidden = 40) + h"

# GPT-2: learned positions, LayerNorm and biases, a tied head, a GELU MLP written with linear()
llama_case gpt2 "vocab = 256; dim = 32; layers = 2; heads = 4; context = 32; init_std = 0.2; tied = true
  positions = learned; bias = true; norm = layernorm; norm_eps = 1e-5" \
    "    h = x + attention(layernorm(x, name = \"ln_1\"))
    return h + linear(gelu(linear(layernorm(h, name = \"ln_2\"), out = 4 * dim, name = \"fc\")), out = dim, name = \"proj\")" \
    GPT2LMHeadModel

tokenizer_case byte_level
tokenizer_case metaspace

not_llama_case eps_mismatch "vocab = 256; dim = 32; layers = 2; heads = 4; context = 32; norm_eps = 1e-5" \
    "    h = x + attention(rmsnorm(x, eps = 0.1), rope = 10000)
    return h + swiglu(rmsnorm(h, eps = 0.1), hidden = 48)" \
    "block norms use eps 0.1 but the final norm uses 1e-05; LlamaForCausalLM has one rms_norm_eps"
not_llama_case no_attention "vocab = 256; dim = 32; layers = 2; heads = 4; context = 32" \
    "    a = attention(rmsnorm(x), rope = 10000)
    return x + swiglu(rmsnorm(x), hidden = 48)" \
    'the block computes `return x + swiglu(rmsnorm(x))`'

echo "hf: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
