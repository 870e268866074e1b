#!/usr/bin/env bash
# Fuzzes the parser and checker with libFuzzer (+ ASan/UBSan) for a bounded time.
# usage: scripts/fuzz.sh [SECONDS]   (default 60). Prints libFuzzer's final stats;
# exits non-zero if a crash, leak, timeout or sanitizer report was found.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
bash scripts/setup.sh
if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false -Db_sanitize=address,undefined \
        -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C build-fuzz tests/fuzz/fuzz_parser
mkdir -p build-fuzz/corpus build-fuzz/artifacts
cp -n examples/*.relora tests/golden/*/*.relora build-fuzz/corpus/ 2>/dev/null || true
./build-fuzz/tests/fuzz/fuzz_parser -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=build-fuzz/artifacts/ -print_final_stats=1 build-fuzz/corpus
