#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds twice (release-like with
# warnings as errors, and ASan + UBSan), runs every meson test in both, and ends with
# one line `N passed, N failed` (meson tests, both builds together).
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || exit 1

passed=0
failed=0
status=0

run_build() { # name, meson options...
    local dir=$1
    shift
    if [ -d "$dir" ]; then
        meson setup --reconfigure "$dir" "$@" >"$dir.setup.log" 2>&1 || meson setup --wipe "$dir" "$@" >"$dir.setup.log" 2>&1
    else
        meson setup "$dir" "$@" >"$dir.setup.log" 2>&1
    fi || { cat "$dir.setup.log"; echo "test: meson setup failed for $dir"; failed=$((failed + 1)); status=1; return; }
    if ! ninja -C "$dir"; then
        echo "test: build failed in $dir"
        failed=$((failed + 1))
        status=1
        return
    fi
    local log="$dir/test-summary.txt"
    meson test -C "$dir" --print-errorlogs --num-processes 2 2>&1 | tee "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    local ok fail skip
    ok=$(awk '/^Ok:/ {print $2}' "$log")
    fail=$(awk '/^Fail:/ {print $2}' "$log")
    timeout=$(awk '/^Timeout:/ {print $2}' "$log")
    passed=$((passed + ${ok:-0}))
    failed=$((failed + ${fail:-0} + ${timeout:-0}))
}

echo "== build + tests (warnings as errors)"
run_build build-test -Dwerror=true -Dbuildtype=debugoptimized
echo "== build + tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_build build-asan -Dwerror=true -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
