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
# intercept_tls_get_addr=0: the __tls_get_addr interceptor of GCC 12's sanitizer
# runtime takes a dynamic TLS block that happens to start 16 bytes into a page for one
# with a glibc 2.19-2.24 header and records a range read from the two words before it;
# the leak checker's tracer then dies scanning that range at exit ("Tracer caught
# signal 11", "LeakSanitizer has encountered a fatal error"), on whichever machine
# malloc puts a block there. Without the interceptor those blocks are scanned as the
# heap blocks they are.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:intercept_tls_get_addr=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_build build-asan -Dwerror=true -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
