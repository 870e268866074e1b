#!/usr/bin/env bash
# The driver's command line: exit codes (0 ok, 1 diagnostics, 2 usage or I/O) and the
# messages a user sees for common mistakes. RELORAC and RELORAC_SOURCE_ROOT come from meson.
set -u
r=$RELORAC
root=$RELORAC_SOURCE_ROOT
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# expect WANT_RC PATTERN CMD...: runs CMD, checks its exit status and that its combined
# output matches PATTERN (grep -E; empty: anything).
expect() {
    local want=$1 pat=$2
    shift 2
    "$@" >"$tmp/out" 2>&1
    local rc=$?
    if [ "$rc" -eq "$want" ] && { [ -z "$pat" ] || grep -Eq -- "$pat" "$tmp/out"; }; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $* (exit $rc, want $want; pattern '$pat')"
        sed 's/^/    /' "$tmp/out" | head -20
    fi
}

expect 0 '^relorac [0-9]' "$r" --version
expect 0 'commands:' "$r" --help
expect 2 'unknown command' "$r" frobnicate
expect 2 'usage' "$r"
expect 2 'cannot read' "$r" check "$tmp/missing.relora"
expect 2 'no spec file' "$r" check
expect 2 'unknown option' "$r" check "$root/examples/tiny.relora" --frob
expect 0 'total parameters: +857,216' "$r" check "$root/examples/tiny.relora"
expect 0 '"planned_bytes"' "$r" check "$root/examples/tiny.relora" --json
expect 1 'must be >= 1' "$r" check "$root/examples/tiny.relora" -D train.batch=0
expect 0 'lora_merge' "$r" dump-ir "$root/examples/tiny.relora" -D model.layers=1 --after relora
expect 2 'unknown pass' "$r" dump-ir "$root/examples/tiny.relora" --after nopass
expect 0 '^kfunc @train_lora' "$r" dump-ir "$root/examples/tiny.relora" -D model.layers=1 --kernels
expect 2 'needs NVRTC' "$r" build "$root/examples/tiny.relora" -o "$tmp/t" --target cuda --nvrtc "$tmp/no-libnvrtc.so"
expect 1 "must be one of cpu or cuda" "$r" build "$root/examples/tiny.relora" -o "$tmp/t" --target gpu
expect 2 'no output' "$r" build "$root/examples/tiny.relora"
# the text form goes through opt unchanged when no pass changes it
"$r" dump-ir "$root/examples/tiny.relora" -D model.layers=1 >"$tmp/t.ir" 2>/dev/null
expect 0 '' "$r" opt "$tmp/t.ir" --passes dce
"$r" opt "$tmp/t.ir" --passes dce >"$tmp/t2.ir" 2>/dev/null
expect 0 '' cmp "$tmp/t.ir" "$tmp/t2.ir"
printf 'module m {\n}\n\nfunc @f {\n  %%0 = matmull\n}\n' >"$tmp/bad.ir"
expect 1 "did you mean 'matmul'" "$r" opt "$tmp/bad.ir" --passes dce

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
