#!/usr/bin/env bash
# The main job: set up, build relorac, take the King James Bible from Debian's
# bible-kjv package, compile examples/tiny.relora into a training binary and train it
# with ReLoRA (full-rank warm start, then merges every 200 steps), printing progress,
# validation loss and perplexity, and a generated sample at the end.
# Extra arguments go to the trainer (e.g. --steps 500).
# Run again, it continues the checkpoint in out/tiny-ckpt (a run stopped with Ctrl-C goes
# on where it stopped; a finished one only samples again) rather than starting over and
# replacing it: hours of training should not vanish because a command was repeated.
# `bash scripts/demo.sh --overwrite` starts over.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
[ -f build/build.ninja ] || meson setup build -Dbuildtype=release -Dtests=false >/dev/null
ninja -C build >/dev/null

mkdir -p data out
if [ ! -s data/kjv.txt ]; then
    # `bible -f` prints "Ge1:1 In the beginning..."; drop the verse references.
    bible -f gen1:1-rev22:21 | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' > data/kjv.txt
fi
echo "== corpus: data/kjv.txt, $(wc -c < data/kjv.txt) bytes (byte-level tokens)"

echo "== relorac check examples/tiny.relora"
./build/relorac check examples/tiny.relora

echo "== relorac build examples/tiny.relora -o out/tiny"
./build/relorac build examples/tiny.relora -o out/tiny

resume=()
if [ -e out/tiny-ckpt/latest ] || [ -e out/tiny-ckpt/trainer.safetensors ]; then
    case " $* " in
    *" --overwrite "*) ;;
    *) resume=(--resume out/tiny-ckpt)
       echo "== continuing the checkpoint in out/tiny-ckpt (--overwrite starts over)" ;;
    esac
fi
echo "== training (checkpoints in out/tiny-ckpt; Ctrl-C saves one and stops)"
./out/tiny --data data/kjv.txt --out out/tiny-ckpt "${resume[@]}" "$@"

echo "== sample"
./out/tiny --resume out/tiny-ckpt --sample "And God said" --tokens 400
