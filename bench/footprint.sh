#!/usr/bin/env bash
# Agent footprint benchmark: the headroom agent and Debian's prometheus-node-exporter side by side in one run.
#
# Run 1 (idle): both sample this host for DURATION seconds; the agent streams to a collector once a second,
# node_exporter is scraped once a second the way Prometheus does (keep-alive, gzip).
# Run 2 (sockets): the same while CONNECTIONS established loopback TCP connections are held on the host, and
# the agent's socket counts are compared with ss and with node_exporter's.
#
# Wire bytes are counted on veth pairs: the collector and the scraper live in a network namespace this script
# creates, so each veth carries exactly one process's traffic, and its counters include every QUIC, UDP, IP and
# Ethernet header. The agent and node_exporter stay in the host's namespace, so they see the host's sockets.
# The only addresses used are 127.0.0.1 and the two /30 links this script creates on both ends.
#
# Usage: sudo bench/footprint.sh [--duration S] [--repeat N] [--connections N] [--runs idle,sockets]
#                                [--bin-dir DIR] [--agent-bin FILE] [--collector-bin FILE] [--keep DIR]
# Needs: root (namespaces), python3, curl, iproute2, prometheus-node-exporter, and the binaries: by default the
# release ones (cargo build --release --workspace --bins); --agent-bin measures another agent build, such as
# the one that ships (deploy/build-agent.sh: size-optimised, static, musl; its path is what
# deploy/build-agent.sh --print-dir prints), and --collector-bin takes any collector build (its cost is not
# measured here).
set -euo pipefail

duration_s=60
repeat=1
connections=50000
runs="idle,sockets"
bin_dir=""
agent_bin=""
collector_bin=""
keep_dir=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) duration_s="$2"; shift 2 ;;
        --repeat) repeat="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --agent-bin) agent_bin="$2"; shift 2 ;;
        --collector-bin) collector_bin="$2"; shift 2 ;;
        --keep) keep_dir="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "footprint.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
# Bounded loops: the windows, repeats and holders all have limits.
if (( duration_s < 10 || duration_s > 600 || repeat < 1 || repeat > 10 || connections > 200000 )); then
    echo "footprint.sh: --duration must be 10..600, --repeat 1..10, --connections at most 200000" >&2
    exit 2
fi

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
helper="$here/footprint/footprint.py"
if [[ -z "$bin_dir" ]]; then
    bin_dir="${CARGO_TARGET_DIR:-$repo/target}/release"
fi
agent_bin="${agent_bin:-$bin_dir/headroom-agent}"
collector_bin="${collector_bin:-$bin_dir/headroom-collector}"
exporter_bin="$(command -v prometheus-node-exporter || true)"

die() { echo "footprint.sh: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "must run as root to create the network namespace (try sudo)"
[[ -x "$agent_bin" && -x "$collector_bin" ]] \
    || die "no binaries at $agent_bin and $collector_bin: run cargo build --release --workspace --bins, or pass --bin-dir, --agent-bin, --collector-bin"
[[ -n "$exporter_bin" ]] || die "prometheus-node-exporter is missing: apt-get install -y prometheus-node-exporter"
for tool in python3 curl ip ss; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done

netns="hr-bench"
agent_link="vethhra0"     # host side of the agent's link; "veth*" keeps it out of the agent's own samples
exporter_link="vethhrb0"  # host side of the scraper's link
collector_ip="10.203.0.2"
exporter_ip="10.203.0.5"
quic_port=9701
http_port=9702
exporter_port=9703

if ip netns list | grep -qw "$netns" || ip link show "$agent_link" >/dev/null 2>&1 \
    || ip link show "$exporter_link" >/dev/null 2>&1; then
    die "namespace $netns or link $agent_link/$exporter_link exists (an earlier run killed hard?): " \
        "remove with: ip netns del $netns; ip link del $agent_link; ip link del $exporter_link"
fi

work="$(mktemp -d /tmp/headroom-footprint.XXXXXX)"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    ip link del "$agent_link" 2>/dev/null || true
    ip link del "$exporter_link" 2>/dev/null || true
    ip netns del "$netns" 2>/dev/null || true
    if [[ -n "$keep_dir" ]]; then
        mkdir -p "$keep_dir" && cp -a "$work/." "$keep_dir/"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- network: one namespace, two /30 veth links, IPv6 off so neighbour discovery adds no noise ---
ip netns add "$netns"
ip -n "$netns" link set lo up
setup_link() { # host_side ns_side host_cidr ns_cidr
    ip link add "$1" type veth peer name "$2"
    ip link set "$2" netns "$netns"
    sysctl -qw "net.ipv6.conf.$1.disable_ipv6=1"
    ip netns exec "$netns" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1"
    ip addr add "$3" dev "$1"
    ip -n "$netns" addr add "$4" dev "$2"
    ip link set "$1" up
    ip -n "$netns" link set "$2" up
}
setup_link "$agent_link" vethhra1 10.203.0.1/30 "$collector_ip/30"
setup_link "$exporter_link" vethhrb1 "$exporter_ip/30" 10.203.0.6/30

# --- collector in the namespace, agent and node_exporter on the host ---
"$collector_bin" ca init --state-dir "$work/collector" >/dev/null
"$collector_bin" cert issue --host bench-agent --state-dir "$work/collector" --out "$work/agent" >/dev/null
cat >"$work/collector.toml" <<EOF
state_dir = "$work/collector"
listen = "$collector_ip:$quic_port"
enroll_listen = "off"
http_listen = "127.0.0.1:$http_port"
EOF
# Default sampling settings on purpose: 1 s interval, full socket dump capped at 20,000 sockets / every 30 s.
cat >"$work/agent.toml" <<EOF
state_dir = "$work/agent"
[collector]
address = "$collector_ip:$quic_port"
server_name = "localhost"
[tls]
ca = "$work/agent/ca.pem"
cert = "$work/agent/agent.pem"
key = "$work/agent/agent.key"
[labels]
group = "bench"
EOF

ip netns exec "$netns" "$collector_bin" serve --config "$work/collector.toml" \
    >"$work/collector.log" 2>&1 &
pids+=($!)
collector_url="http://127.0.0.1:$http_port"
for _ in $(seq 100); do
    ip netns exec "$netns" curl -sf "$collector_url/api/v1/health" >/dev/null && break
    sleep 0.2
done
ip netns exec "$netns" curl -sf "$collector_url/api/v1/health" >/dev/null \
    || die "collector did not come up: $(tail -3 "$work/collector.log")"

"$agent_bin" run --config "$work/agent.toml" >"$work/agent.log" 2>&1 &
agent_pid=$!
pids+=("$agent_pid")
"$exporter_bin" --web.listen-address="$exporter_ip:$exporter_port" >"$work/exporter.log" 2>&1 &
exporter_pid=$!
pids+=("$exporter_pid")

host_url="$collector_url/api/v1/hosts/bench-agent"
for _ in $(seq 100); do
    seq="$(ip netns exec "$netns" curl -sf "$host_url" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("seq") or 0)' 2>/dev/null || echo 0)"
    (( seq >= 3 )) && break
    sleep 0.2
done
(( seq >= 3 )) || die "the agent is not reporting to the collector: $(tail -3 "$work/agent.log")"
ip netns exec "$netns" curl -sf "http://$exporter_ip:$exporter_port/metrics" >/dev/null \
    || die "node_exporter does not answer: $(tail -3 "$work/exporter.log")"

window() { # label index [extra args]
    local label="$1" index="$2"
    shift 2
    echo "footprint: $label window $index/$repeat, ${duration_s}s" >&2
    python3 "$helper" window --label "$label" --duration-s "$duration_s" \
        --agent-pid "$agent_pid" --exporter-pid "$exporter_pid" \
        --agent-link "$agent_link" --exporter-link "$exporter_link" --netns "$netns" \
        --exporter-address "$exporter_ip:$exporter_port" --out "$work/window-$label-$index.json" "$@"
}

echo "footprint: agent pid $agent_pid, node_exporter pid $exporter_pid; settling 5 s" >&2
sleep 5
if [[ ",$runs," == *",idle,"* ]]; then
    for index in $(seq "$repeat"); do window idle "$index"; done
fi

if [[ ",$runs," == *",sockets,"* ]]; then
    # Each holder keeps both ends of its connections, so it needs two files per connection; the hard limit
    # on open files is per process, so spread the connections over enough holders.
    hard_limit="$(ulimit -Hn)"
    per_holder=$(( (hard_limit - 100) / 2 ))
    (( per_holder > 10000 )) && per_holder=10000
    holders=$(( (connections + per_holder - 1) / per_holder ))
    echo "footprint: opening $connections connections in $holders processes" >&2
    ready=0
    for holder in $(seq "$holders"); do
        count=$(( connections - (holder - 1) * per_holder ))
        (( count > per_holder )) && count=$per_holder
        python3 "$helper" hold --connections "$count" --max-seconds $(( 120 + repeat * (duration_s + 60) )) \
            >"$work/holder-$holder.log" 2>&1 &
        pids+=($!)
    done
    for _ in $(seq 600); do
        ready="$(cat "$work"/holder-*.log | grep -c '^ready' || true)"
        (( ready == holders )) && break
        sleep 0.2
    done
    (( ready == holders )) || die "only $ready of $holders connection holders came up: $(cat "$work"/holder-*.log | tail -3)"
    # The agent's next full dump (within 10 s under the default full_dump_cpu) sees the connections; above
    # full_dump_max_sockets the following ones come every 30 s (full_dump_interval) or, under
    # full_dump_cpu_ceiling, every cost / 0.2 %. Wait past the first so the streamed per-port counts describe
    # the connections now held; the windows then see the steady state.
    echo "footprint: $(ss -s | grep '^TCP:'); settling 35 s" >&2
    sleep 35
    listen_ports=($(sed -n 's/^ready port=\([0-9]*\) .*/\1/p' "$work"/holder-*.log))
    for index in $(seq "$repeat"); do
        window sockets "$index" --socket-check --agent-bin "$agent_bin" --collector-url "$host_url" \
            --listen-ports "${listen_ports[@]}"
    done
fi

echo
echo "machine: $(nproc) CPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel" \
    "$(uname -r), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM; $(date -u +%Y-%m-%dT%H:%MZ)"
echo "agent: $("$agent_bin" --version 2>/dev/null || echo headroom-agent); exporter: $("$exporter_bin" --version 2>&1 | head -1)"
python3 "$helper" report "$work"/window-*.json
