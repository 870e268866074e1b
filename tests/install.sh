#!/usr/bin/env bash
# `meson install` gives a relorac that builds trainers on its own: installs the build
# into a temporary prefix with --destdir, puts only the installed bin/ first on PATH,
# and checks that
#  - `relorac build -v` links the installed runtime archive, not the build tree's (which
#    is still there);
#  - the trainer it builds from examples/tiny.relora trains a few steps and checkpoints;
#  - the installed tree still works after being moved, and with the build tree hidden
#    (an empty tmpfs over it in a private mount namespace, when unshare is allowed);
#  - RELORAC_RUNTIME_DIR and --runtime-dir override the lookup, and a missing archive is
#    a clear error (exit 2).
# usage: install.sh BUILD_ROOT SOURCE_ROOT
set -u
build=$(realpath "$1")
src=$(realpath "$2")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

if ! meson install -C "$build" --destdir "$T/dest" --no-rebuild --quiet >"$T/install.log" 2>&1; then
    cat "$T/install.log"
    echo "install: meson install failed"
    exit 1
fi
bin=$(dirname "$(find "$T/dest" -path '*/bin/relorac' -type f | head -1)")
archive=$(find "$T/dest" -path '*/relorac/librelorac_rt.a' -type f | head -1)
if [ -x "$bin/relorac" ] && [ -f "$archive" ]; then ok; else bad "installed files: $(find "$T/dest" -type f)"; fi
archive=$(realpath "$archive")

export PATH="$bin:$PATH"
unset RELORAC_RUNTIME_DIR
[ "$(command -v relorac)" = "$bin/relorac" ] && ok || bad "relorac on PATH is $(command -v relorac)"

for i in $(seq 1 400); do echo "in the beginning god created the heaven and the earth $((i % 13))"; done >"$T/data.txt"
# tiny, shortened: 6 steps through the warm-start switch and one merge
fast=(-D train.steps=6 -D train.batch=2 -D train.seq_len=32 -D train.schedule.warmup=1
      -D train.schedule.warm_start=2 -D train.schedule.reset_every=2 -D train.schedule.restart_warmup=1)

# the other builds only need to link: one layer of width 32
small=("${fast[@]}" -D model.layers=1 -D model.dim=32 -D model.block.swiglu.hidden=64)

# the runtime archive it reports, resolved (the line "relorac build: runtime library PATH (...)")
runtime_of() { sed -n 's/^relorac build: runtime library \(.*\) (.*)$/\1/p' "$1" | head -1; }

cd "$T"
if relorac build "$src/examples/tiny.relora" -o "$T/tiny" -v "${fast[@]}" 2>"$T/build.err"; then ok; else
    bad "relorac build"; cat "$T/build.err"; fi
used=$(runtime_of "$T/build.err")
if [ -n "$used" ] && [ "$(realpath "$used")" = "$archive" ]; then ok; else
    bad "linked '$used', want the installed $archive"; cat "$T/build.err"; fi
case "$(realpath -m "$used")" in "$build"/*) bad "the build tree's archive was used: $used" ;; *) ok ;; esac

if "$T/tiny" --data "$T/data.txt" --steps 6 --out "$T/run" --threads 2 --quiet 2>"$T/train.err"; then ok; else
    bad "training"; cat "$T/train.err"; fi
[ "$(wc -l <"$T/run/metrics.jsonl" 2>/dev/null)" = 6 ] && ok || bad "metrics.jsonl does not have 6 lines"
grep -q '"reset"' "$T/run/metrics.jsonl" && ok || bad "no merge in the run"
[ -s "$T/run/model.safetensors" ] && [ -s "$T/run/config.json" ] && ok || bad "checkpoint files missing"

# moved elsewhere: found relative to the executable
mv "$T/dest" "$T/moved"
moved_bin=${bin/#$T\/dest/$T/moved}
"$moved_bin/relorac" build "$src/examples/tiny.relora" -o "$T/tiny2" -v "${small[@]}" 2>"$T/moved.err" && ok ||
    { bad "build from the moved tree"; cat "$T/moved.err"; }
case "$(runtime_of "$T/moved.err")" in "$T/moved/"*) ok ;; *) bad "moved: linked $(runtime_of "$T/moved.err")" ;; esac

# the build tree hidden: nothing of it can be read
if unshare -m true 2>/dev/null; then
    if unshare -m bash -c 'mount -t tmpfs tmpfs "$1" && [ -z "$(ls -A "$1")" ] &&
            "$2/relorac" build "$3/examples/tiny.relora" -o "$4/tiny3" "${@:5}" &&
            "$4/tiny3" --data "$4/data.txt" --steps 2 --out "$4/run3" --threads 2 --quiet' \
            _ "$build" "$moved_bin" "$src" "$T" "${small[@]}" >"$T/hidden.log" 2>&1; then
        ok
    else
        bad "build and train with the build tree hidden"; cat "$T/hidden.log"
    fi
else
    echo "install: unshare -m not permitted here; skipped the hidden-build-tree run"
fi

# overrides and errors
rt_dir=$(dirname "$(find "$T/moved" -name librelorac_rt.a | head -1)")
RELORAC_RUNTIME_DIR="$rt_dir" "$moved_bin/relorac" build "$src/examples/tiny.relora" -o "$T/t4" -v "${small[@]}" \
    2>"$T/env.err" && grep -qF "runtime library $rt_dir/librelorac_rt.a (RELORAC_RUNTIME_DIR)" "$T/env.err" && ok ||
    { bad "RELORAC_RUNTIME_DIR"; cat "$T/env.err"; }
RELORAC_RUNTIME_DIR="$T/nowhere" "$moved_bin/relorac" build "$src/examples/tiny.relora" -o "$T/t5" 2>"$T/env2.err"
rc=$?
[ "$rc" = 2 ] && grep -qF "RELORAC_RUNTIME_DIR=$T/nowhere: cannot read $T/nowhere/librelorac_rt.a" "$T/env2.err" && ok ||
    { bad "RELORAC_RUNTIME_DIR to an empty folder: exit $rc"; cat "$T/env2.err"; }
"$moved_bin/relorac" build "$src/examples/tiny.relora" -o "$T/t6" --runtime-dir "$T/nowhere" 2>"$T/opt.err"
rc=$?
[ "$rc" = 2 ] && grep -qF -- "--runtime-dir $T/nowhere: cannot read" "$T/opt.err" && ok ||
    { bad "--runtime-dir to an empty folder: exit $rc"; cat "$T/opt.err"; }
rm "$rt_dir/librelorac_rt.a"
"$moved_bin/relorac" build "$src/examples/tiny.relora" -o "$T/t7" 2>"$T/gone.err"
rc=$?
[ "$rc" = 2 ] && grep -qF "cannot find the runtime library: $rt_dir" "$T/gone.err" && ok ||
    { bad "archive removed: exit $rc"; cat "$T/gone.err"; }
[ ! -e "$T/t7" ] && ok || bad "a trainer was written without a runtime"

echo "install: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
