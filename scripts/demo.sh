#!/usr/bin/env bash
# The main job: set up, build relorac, take the King James Bible from Debian's
# bible-kjv package, compile examples/tiny.relora into a training binary and train it
# with ReLoRA (full-rank warm start, then merges every 200 steps), printing progress,
# validation loss and perplexity, and a generated sample at the end.
# Extra arguments go to the trainer (e.g. --steps 500).
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

echo "== training (checkpoints in out/tiny-ckpt; Ctrl-C saves one and stops)"
./out/tiny --data data/kjv.txt --out out/tiny-ckpt "$@"

echo "== sample"
./out/tiny --resume out/tiny-ckpt --sample "And God said" --tokens 400
