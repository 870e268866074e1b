#!/bin/sh
# examples.sh RELORAC EXAMPLES_DIR: every example spec passes `relorac check`, and the
# numbers in the check goldens agree with an independent Python computation.
relorac=$1
case $relorac in /*) ;; *) relorac=$(pwd)/$relorac ;; esac
dir=$2
status=0
n=0
for f in "$dir"/*.relora; do
    n=$((n + 1))
    if "$relorac" check "$f" >/dev/null 2>"${TMPDIR:-/tmp}/relorac-example.err"; then
        echo "ok   $f"
    else
        echo "FAIL $f"
        cat "${TMPDIR:-/tmp}/relorac-example.err"
        status=1
    fi
done
[ "$n" -gt 0 ] || { echo "no examples in $dir"; exit 1; }
here=$(dirname "$0")
if command -v python3 >/dev/null 2>&1; then
    python3 "$here/golden/check/numbers.py" "$relorac" || status=1
fi
exit $status
