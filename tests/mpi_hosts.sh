#!/usr/bin/env bash
# Data-parallel training across two "hosts": two network namespaces joined by a veth pair
# (10.77.0.1 and 10.77.0.2), so the ranks share no network stack and Open MPI must use its
# TCP transports (the out-of-band channel and the tcp BTL) between them, as between two
# machines. mpirun runs in the first namespace; Open MPI starts the daemon of the second
# "host" through its rsh launcher, here a script that enters the namespace instead of ssh.
# The files are shared (namespaces split the network only), as a cluster's shared file
# system would be. Checks: the 2-rank run across the namespaces gives the same losses and
# checkpoint bytes as the same run with both ranks on one host (tests/mpi/dp.relora).
# Exit 77 (skipped) without mpirun or ip, when not root, or when namespaces cannot be made.
set -u
RELORAC=$(realpath "$1")
SRC=$2
skip() {
    echo "SKIP: $*"
    exit 77
}
command -v mpirun >/dev/null || skip "mpirun not found (Debian: apt-get install openmpi-bin)"
command -v ip >/dev/null || skip "ip not found (Debian: apt-get install iproute2)"
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
T=$(mktemp -d)
NS0=relorac_h0_$$ NS1=relorac_h1_$$ VA=rlh0_$$ VB=rlh1_$$
cleanup() {
    ip netns del "$NS0" 2>/dev/null
    ip netns del "$NS1" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
ip netns add "$NS0" 2>"$T/ns.err" && ip netns add "$NS1" 2>>"$T/ns.err" ||
    skip "cannot create network namespaces here: $(head -1 "$T/ns.err")"
VA=${VA:0:15} VB=${VB:0:15} # interface names: at most 15 characters
if ! { ip link add "$VA" netns "$NS0" type veth peer name "$VB" netns "$NS1" &&
    ip -n "$NS0" addr add 10.77.0.1/24 dev "$VA" && ip -n "$NS1" addr add 10.77.0.2/24 dev "$VB" &&
    ip -n "$NS0" link set "$VA" up && ip -n "$NS1" link set "$VB" up &&
    ip -n "$NS0" link set lo up && ip -n "$NS1" link set lo up; } 2>"$T/veth.err"; then
    skip "cannot join the namespaces with a veth pair: $(head -1 "$T/veth.err")"
fi
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
CMP="python3 $SRC/tests/mpi_compare.py"

# Open MPI's launcher runs `AGENT HOST orted ARGS...`; ours enters HOST's namespace
cat >"$T/agent" <<EOF
#!/bin/sh
host=\$1
shift
case \$host in
10.77.0.1) ns=$NS0 ;;
10.77.0.2) ns=$NS1 ;;
*) echo "agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" sh -c "\$*"
EOF
chmod +x "$T/agent"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
MPIRUN=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" mpirun)

if ! "$RELORAC" build "$SRC/tests/mpi/dp.relora" -o "$T/dp" 2>"$T/build.err"; then
    cat "$T/build.err"
    echo "FAIL: relorac build"
    exit 1
fi
python3 -c "import random; r = random.Random(7); open('$T/data', 'wb').write(bytes(r.randrange(256) for _ in range(60000)))"
cd "$T"
ARGS=(./dp --data data --threads 1 --quiet --steps 8 --checkpoint-every 0)

# both ranks on one host (shared memory between them)
"${MPIRUN[@]}" -np 2 "${ARGS[@]}" --out one >one.out 2>&1 && ok || { bad "2 ranks on one host"; cat one.out; }
# one rank per namespace: TCP only, over the veth pair; the daemon started through the agent
TWO=(ip netns exec "$NS0" "${MPIRUN[@]}" -np 2 --host 10.77.0.1:1,10.77.0.2:1
    --mca plm_rsh_agent "$T/agent" --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24
    --mca oob_tcp_if_include 10.77.0.0/24 -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
    -x PATH -x LD_LIBRARY_PATH)
# each rank runs in its own namespace: rank r sees only its own address
"${TWO[@]}" sh -c 'echo "rank $OMPI_COMM_WORLD_RANK: $(ip -o -4 addr show | grep -o "10\.77\.0\.[0-9]*")"' \
    >where.out 2>&1
if grep -qx "rank 0: 10.77.0.1" where.out && grep -qx "rank 1: 10.77.0.2" where.out; then ok; else
    bad "the ranks did not run one per namespace"
    cat where.out
fi
"${TWO[@]}" "${ARGS[@]}" --out two >two.out 2>&1 && ok || { bad "2 ranks on two hosts"; cat two.out; }
grep -q '"ranks":2' two/metrics.jsonl && ok || bad "the job had not 2 ranks"
if $CMP one two --exact >cmp.out; then ok; else bad "two hosts against one host"; fi
cat cmp.out

echo "mpi-hosts: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
