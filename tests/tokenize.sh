#!/usr/bin/env bash
# `relorac tokenize` and the trainer's --tokenizer. Expected values come from elsewhere:
# SentencePiece's own command-line tools (spm_encode, spm_decode) on the model relorac
# trained, and a tokenizer.json small enough to encode by hand (the BPE merges worked
# through below; transformers' tokenizer gives the same ids). Also: a trainer needs no
# tokenizer library (its ELF NEEDED list names none; they are loaded at run time).
# usage: tokenize.sh RELORAC FAKE_TRAINER
set -u
RELORAC=$1 BIN=$2
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
# the token ids of an llm.c token file, one a line
ids() {
    python3 - "$1" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
magic, version, n = struct.unpack("<3i", b[:12])
fmt = {20240520: "H", 20240801: "I"}[magic]
print("\n".join(map(str, struct.unpack("<%d%s" % (n, fmt), b[1024:]))))
PY
}

# ---- a trainer needs no tokenizer library ----
for lib in sentencepiece stdc++ pcre2 relorac_spm; do
    if readelf -d "$BIN" | grep NEEDED | grep -q "$lib"; then bad "the trainer needs lib$lib"; else ok; fi
done
if readelf -d "$RELORAC" | grep NEEDED | grep -q sentencepiece; then bad "relorac needs libsentencepiece"; else ok; fi

# ---- tokenizer.json: BPE worked by hand ----
# Metaspace makes "ab abc a d" the words ▁ab ▁abc ▁a ▁d. Merge ranks: a b 0, ▁ ab 1, ▁ a 2,
# b c 3. ▁ab: (a,b) -> ▁ ab -> ▁ab = 7. ▁abc: (a,b) 0 beats (▁,a) 2 and (b,c) 3 -> ▁ ab c;
# (▁,ab) 1 -> ▁ab c = 7 4. ▁a: (▁,a) -> 5. ▁d: ▁ = 1, d not in the vocabulary -> <unk> 0.
cat >"$T/tok.json" <<'EOF'
{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
 "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true},
 "post_processor": null,
 "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true},
 "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
   "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
   "vocab": {"<unk>": 0, "\u2581": 1, "a": 2, "b": 3, "c": 4, "\u2581a": 5, "ab": 6, "\u2581ab": 7, "bc": 8},
   "merges": ["a b", "\u2581 ab", "\u2581 a", "b c"]}}
EOF
printf 'ab abc a d' >"$T/hand.txt"
expect_rc hf-apply 0 "$RELORAC" tokenize "$T/hand.txt" -o "$T/hf" --tokenizer "$T/tok.json"
has hf-apply "$T/out" "train with vocab = 9"
[ "$(ids "$T/hf/train.bin" | tr '\n' ' ')" = "7 7 4 5 1 0 " ] && ok || bad "tokenizer.json ids: $(ids "$T/hf/train.bin" | tr '\n' ' ')"
cmp -s "$T/tok.json" "$T/hf/tokenizer.json" && ok || bad "the tokenizer is not copied next to the tokens"
expect_rc hf-decode 0 "$RELORAC" tokenize --decode "$T/hf/train.bin" --tokenizer "$T/hf/tokenizer.json"
[ "$(cat "$T/out")" = " ab abc a <unk>" ] && ok || bad "decoded: '$(cat "$T/out")'"

# the trainer: a token run that records the tokenizer, then a sample in text
python3 - "$T" <<'PY'
import struct, sys
toks = [7, 7, 4, 5, 1, 2, 3, 8] * 200
open(sys.argv[1] + "/hand.bin", "wb").write(struct.pack("<256i", 20240520, 1, len(toks), *[0] * 253)
                                             + struct.pack("<%dH" % len(toks), *toks))
PY
expect_rc trainer-tok 0 "$BIN" --data "$T/hand.bin" --data-kind tokens --steps 3 --out "$T/run" --quiet \
    --tokenizer "$T/tok.json"
expect_rc sample-text 0 "$BIN" --data-kind tokens --out "$T/run" --sample "ab abc" --tokens 5 --temperature 0
has sample-text "$T/out" "ab abc"
has sample-text "$T/err" "tokenizer.json (BPE), 9 ids"
for i in $(seq 100); do echo "ab abc a d"; done >"$T/text.txt"
expect_rc sample-text-model 2 "$BIN" --data "$T/text.txt" --out "$T/textrun" --steps 1 --quiet --tokenizer "$T/tok.json"
has sample-text-model "$T/err" "byte-level text"
printf 'not json, not a model' >"$T/junk.model"
expect_rc junk-tokenizer 2 "$RELORAC" tokenize "$T/hand.txt" -o "$T/junk" --tokenizer "$T/junk.model"
has junk-tokenizer "$T/err" "junk.model"
expect_rc no-tokenizer 2 "$RELORAC" tokenize "$T/hand.txt" -o "$T/none"
expect_rc no-input 2 "$RELORAC" tokenize "$T/missing.txt" -o "$T/none" --vocab 300
has no-input "$T/err" "missing.txt"

# ---- SentencePiece: relorac trains, spm_encode checks ----
if ! command -v spm_encode >/dev/null || ! "$RELORAC" tokenize --help | grep -q "SentencePiece"; then
    echo "SKIP: SentencePiece tests: spm_encode missing (Debian: sentencepiece)"
else
    python3 - "$T/corpus.txt" <<'PY'
import random, sys
r = random.Random(3)
w = ("in the beginning God created the heaven and the earth and darkness was upon the face of "
     "the deep Spirit moved waters light 1611 día café naïve 東京 ~").split()
lines = [" ".join(r.choice(w) for _ in range(r.randint(3, 14))) for _ in range(400)]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
    expect_rc spm-train 0 "$RELORAC" tokenize "$T/corpus.txt" -o "$T/spm" --vocab 300 --val-fraction 0.1
    has spm-train "$T/out" "train with vocab = 300"
    [ -s "$T/spm/tokenizer.model" ] && [ -s "$T/spm/val.bin" ] && ok || bad "spm: no model or no val.bin"
    # each line is encoded with its newline; spm_encode reads lines without it, and the
    # newline (never seen in training) is SentencePiece's byte piece <0x0A>
    nl=$(($(grep -n -m1 -P '^<0x0A>\t' "$T/spm/tokenizer.vocab" | cut -d: -f1) - 1))
    ntrain=$(($(ids "$T/spm/train.bin" | wc -l)))
    spm_encode --model "$T/spm/tokenizer.model" --output_format id <"$T/corpus.txt" 2>/dev/null |
        while read -r line; do printf '%s\n' $line; echo "$nl"; done >"$T/spm.ids"
    ids "$T/spm/train.bin" >"$T/train.ids"
    ids "$T/spm/val.bin" >"$T/val.ids"
    if cat "$T/train.ids" "$T/val.ids" | cmp -s - "$T/spm.ids"; then
        ok; echo "spm: $ntrain + $(wc -l <"$T/val.ids") tokens equal spm_encode's"
    else
        bad "spm: ids differ from spm_encode's"; cat "$T/train.ids" "$T/val.ids" | diff - "$T/spm.ids" | head -5
    fi
    # decoding gives the text back byte for byte (no normalization, no dummy prefix)
    { "$RELORAC" tokenize --decode "$T/spm/train.bin" --tokenizer "$T/spm/tokenizer.model"
      "$RELORAC" tokenize --decode "$T/spm/val.bin" --tokenizer "$T/spm/tokenizer.model"; } >"$T/back.txt" 2>/dev/null
    cmp -s "$T/back.txt" "$T/corpus.txt" && ok || bad "spm: decoding does not give the text back"
    # spm_decode of the same ids gives the same text (per line)
    tr '\n' ' ' <"$T/train.ids" | sed "s/ $nl / \n/g; s/ $nl \$/\n/" | sed 's/^ //' >"$T/lines.ids"
    spm_decode --model "$T/spm/tokenizer.model" --input_format id <"$T/lines.ids" >"$T/spm_back.txt" 2>/dev/null
    head -n "$(wc -l <"$T/spm_back.txt")" "$T/corpus.txt" | cmp -s - "$T/spm_back.txt" && ok ||
        bad "spm_decode does not give the training text back"
    # applying the written model again gives the same tokens
    expect_rc spm-apply 0 "$RELORAC" tokenize "$T/corpus.txt" -o "$T/spm2" --tokenizer "$T/spm/tokenizer.model"
    cat "$T/train.ids" "$T/val.ids" | cmp -s - <(ids "$T/spm2/train.bin") && ok || bad "spm: applying the model differs"
    # a vocabulary beyond the model's ids: the trainer refuses the tokenizer
    expect_rc spm-vocab 2 "$BIN" --data "$T/hand.bin" --data-kind tokens --steps 1 --out "$T/r2" --quiet \
        --tokenizer "$T/spm/tokenizer.model"
    has spm-vocab "$T/err" "the tokenizer has 300 ids"
    # SentencePiece's BPE model type
    expect_rc bpe-train 0 "$RELORAC" tokenize "$T/corpus.txt" -o "$T/bpe" --vocab 320 --model-type bpe
    has bpe-train "$T/out" "320 ids"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
