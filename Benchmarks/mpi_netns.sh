#!/usr/bin/env bash
# Data-parallel training across two hosts for real: two network namespaces on this machine
# ("hosts" A and B), joined by a veth pair with addresses on a private /24 only, and Open MPI
# running one rank in each over TCP (mpirun in A starts B's daemon through a launch agent that
# enters B's namespace, instead of ssh). Then the same equivalence check as the test suite
# (Tests/MPI/check_data_parallel.py: 2 ranks × B against 1 process × 2B, ZeRO-1, resume
# across rank counts, bad launches), with every rank on its own host.
#
#   sudo Benchmarks/mpi_netns.sh [path/to/loom]      # default: the release build
#
# Runs as root (namespaces and links); removes the namespaces and links it made, however it ends.
# Writes Benchmarks/results/mpi_netns.txt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $(id -u) -eq 0 ]] || { echo "error: run as root (it creates network namespaces)" >&2; exit 1; }
loom="$(realpath "${1:-$(swift build -c release --show-bin-path)/loom}")"
[[ -x "$loom" ]] || { echo "error: $loom is not an executable loom (build with: swift build -c release --product loom)" >&2; exit 1; }

suffix=$$
ns_a="loom-a-$suffix"; ns_b="loom-b-$suffix"
link_a="lma$suffix"; link_b="lmb$suffix"
net=10.231.77
host_a=$net.1; host_b=$net.2
agent="$(mktemp /tmp/loom-netns-agent.XXXXXX)"
cleanup() {
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true   # deleting a namespace removes its end of the veth pair
    ip link del "$link_a" 2>/dev/null || true
    rm -f "$agent"
}
trap cleanup EXIT

ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add "$link_a" type veth peer name "$link_b"
ip link set "$link_a" netns "$ns_a"
ip link set "$link_b" netns "$ns_b"
ip -n "$ns_a" addr add "$host_a/24" dev "$link_a"
ip -n "$ns_b" addr add "$host_b/24" dev "$link_b"
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set "$link_a" up
ip -n "$ns_b" link set "$link_b" up

# Open MPI calls its launch agent as `AGENT HOST COMMAND…` (the part ssh would do): here it
# enters the namespace that owns HOST's address.
cat > "$agent" <<AGENT
#!/usr/bin/env bash
host="\$1"; shift
while [[ "\$host" == -* ]]; do host="\$1"; shift; done
case "\$host" in
    $host_a) ns="$ns_a" ;;
    $host_b) ns="$ns_b" ;;
    *) echo "netns agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" /bin/sh -c "\$*"
AGENT
chmod +x "$agent"

mpirun_args="--host $host_a:1,$host_b:1 --mca plm_rsh_agent $agent --mca btl tcp,self \
--mca btl_tcp_if_include $net.0/24 --mca oob_tcp_if_include $net.0/24"
result=Benchmarks/results/mpi_netns.txt
mkdir -p "$(dirname "$result")"
{
    echo "# Benchmarks/mpi_netns.sh: 2 ranks on 2 network-namespace hosts ($host_a, $host_b) over TCP on a veth pair"
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), $(lscpu | grep 'Model name' | sed 's/  */ /g'), loom $(git rev-parse --short HEAD)"
    echo "# where each rank ran (hostname -I inside mpirun):"
    ip netns exec "$ns_a" env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        mpirun -np 2 $mpirun_args sh -c 'echo "#   rank $OMPI_COMM_WORLD_RANK: $(hostname -I)"'
    ip netns exec "$ns_a" python3 Tests/MPI/check_data_parallel.py --loom "$loom" --zero --mpirun-args "$mpirun_args"
} 2>&1 | tee "$result"
exit "${PIPESTATUS[0]}"
