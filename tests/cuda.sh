#!/usr/bin/env bash
# cuda.sh FAKE_LIBCUDA_DIR: a CUDA trainer on machines it cannot run on. It is built (at
# tiny shapes, sm_80 only) and must print its help anywhere, and stop with exit 2 and its
# own message without a driver, without a device (the driver's answer, or none listed) and
# on an architecture it has no kernels for; a CPU trainer of the same spec has no CUDA in
# it. Skipped (77) when NVRTC cannot be loaded. RELORAC and RELORAC_SOURCE_ROOT: meson.
set -u
r=$RELORAC
root=$RELORAC_SOURCE_ROOT
fake=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

expect() { # WANT_RC PATTERN CMD...
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

small=(-D model.layers=1 -D train.batch=2 -D train.micro_batch=1 -D train.seq_len=16)
printf 'In the beginning God created the heaven and the earth.\n%.0s' {1..40} >"$tmp/data.txt"
if ! "$r" build "$root/examples/tiny.relora" "${small[@]}" --target cuda --arch sm_80 -o "$tmp/tc" \
    >"$tmp/build.log" 2>&1; then
    if grep -q 'needs NVRTC' "$tmp/build.log"; then
        echo "NVRTC cannot be loaded: skipped"
        exit 77
    fi
    cat "$tmp/build.log"
    exit 1
fi
run=("$tmp/tc" --data "$tmp/data.txt" --steps 2 --out "$tmp/ck")
expect 0 'Trains model' "$tmp/tc" --help
expect 2 'no CUDA driver found' env LD_LIBRARY_PATH="$tmp/none" "${run[@]}"
expect 2 'no CUDA device found' env LD_LIBRARY_PATH="$fake" FAKE_CUDA=nodevice "${run[@]}"
expect 2 'no CUDA device found' env LD_LIBRARY_PATH="$fake" FAKE_CUDA=zero "${run[@]}"
expect 2 'unsupported GPU architecture sm_75 \(Fake GPU\): this trainer has kernels for sm_80' \
    env LD_LIBRARY_PATH="$fake" FAKE_CUDA=sm75 "${run[@]}"
# sm_86 runs sm_80 kernels: past the architecture, the fake driver fails the context
expect 2 'cuDevicePrimaryCtxRetain failed|cuBLAS cannot be loaded' env LD_LIBRARY_PATH="$fake" FAKE_CUDA=sm86 "${run[@]}"
[ ! -e "$tmp/ck/trainer.safetensors" ] || { echo "FAIL: a checkpoint was written"; failed=$((failed + 1)); }
# under mpirun (2 ranks): each rank stops with the device's message; on a one-GPU machine the
# second rank has no device of its own (NCCL needs one per rank). NCCL itself (loaded after
# the device opens) cannot be reached with the fake driver.
if command -v mpirun >/dev/null; then
    mpi=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
        OMPI_MCA_btl_vader_single_copy_mechanism=none "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
        LD_LIBRARY_PATH="$fake")
    # mpirun's own exit status is its business (Open MPI 4.1.4's mpirun has been seen to
    # crash in its error-report relay after the ranks exited 2): any failure, with our message
    expect_fail() { # PATTERN CMD...
        local pat=$1
        shift
        "$@" >"$tmp/out" 2>&1
        local rc=$?
        if [ "$rc" -ne 0 ] && grep -Eq -- "$pat" "$tmp/out"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            echo "FAIL: $* (exit $rc; pattern '$pat')"
            sed 's/^/    /' "$tmp/out" | head -20
        fi
    }
    expect_fail 'rank 1: error: no CUDA device found' "${mpi[@]}" FAKE_CUDA=nodevice mpirun -np 2 "${run[@]}"
    expect_fail 'more ranks on this machine than it has CUDA devices \(1\).*a single-GPU machine runs one rank' \
        "${mpi[@]}" FAKE_CUDA=sm86 mpirun -np 2 "${run[@]}"
    [ ! -e "$tmp/ck/trainer.safetensors" ] || { echo "FAIL: a checkpoint was written"; failed=$((failed + 1)); }
fi
# the CPU trainer of the same spec: no CUDA layer, no CUDA library
expect 0 '' "$r" build "$root/examples/tiny.relora" "${small[@]}" --target cpu -o "$tmp/tcpu"
if nm "$tmp/tcpu" | grep -q rt_cuda_ || ldd "$tmp/tcpu" | grep -Eq 'libcuda|libcublas'; then
    echo "FAIL: the CPU trainer contains the CUDA layer"
    failed=$((failed + 1))
else
    passed=$((passed + 1))
fi
expect 0 'loss' "$tmp/tcpu" --data "$tmp/data.txt" --steps 2 --out "$tmp/ckc"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
