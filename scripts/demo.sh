#!/usr/bin/env bash
# The main job: set up, build relorac, fetch the King James Bible from Debian's
# bible-kjv package, check examples/tiny.relora and train it with ReLoRA.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
[ -f build/build.ninja ] || meson setup build -Dbuildtype=release >/dev/null
ninja -C build >/dev/null

mkdir -p data
if [ ! -s data/kjv.txt ]; then
    # `bible -f` prints "Ge1:1 In the beginning..."; drop the verse references.
    bible -f gen1:1-rev22:21 | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' > data/kjv.txt
fi
echo "corpus: data/kjv.txt ($(wc -c < data/kjv.txt) bytes)"

./build/relorac check examples/tiny.relora
