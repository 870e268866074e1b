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
expect 0 '^usage: relorac fields' "$r" fields --help
expect 2 '^usage: relorac fields' "$r" fields --markdown nosuchsection
# relorac fields: columns line up whatever the bytes of a character ("≥" is three)
"$r" fields >"$tmp/fields" 2>&1
expect 0 '' python3 -c '
import sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert len(lines) > 40, len(lines)
wide = [l for l in lines if "≥" in l[41:76]]
assert len(wide) >= 3, len(wide)
for l in wide:  # path 30, section 9, type 34, default 28: the default starts at column 76
    assert l[75] == " " and l[76] != " ", l
' "$tmp/fields"
# a FIFO without a writer, a device or a directory as the input: an error at once (a FIFO
# used to block in open and /dev/zero to be read until memory ran out); a pipe still works
mkfifo "$tmp/fifo.relora"
expect 1 'fifo.relora: error: no model declared' timeout 20 "$r" check "$tmp/fifo.relora"
expect 1 "expected 'module'" timeout 20 "$r" opt "$tmp/fifo.relora" --passes dce
expect 2 "cannot read '/dev/zero': a character device, not a file" timeout 20 "$r" check /dev/zero
expect 2 "cannot read '$tmp': a directory, not a file" timeout 20 "$r" check "$tmp"
expect 0 'total parameters: +857,216' sh -c 'cat "$1" | timeout 20 "$0" check /dev/stdin' "$r" "$root/examples/tiny.relora"
# a pipe that never ends stops at the spec size limit (it used to be read until memory ran out)
expect 2 "cannot read '/dev/stdin': longer than 16 MiB" sh -c 'yes | timeout 60 "$0" check /dev/stdin' "$r"
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
