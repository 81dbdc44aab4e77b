#!/usr/bin/env bash
# Handshake flood benchmark: a real collector on 127.0.0.1 is flooded with stalled QUIC handshakes (Initial
# packets of new connections that are never continued) at rising rates, first from one address (127.0.0.2),
# then from several (127.0.0.2 onwards), while well-behaved agents from 127.0.0.1 connect with their
# certificates a few times a second. Each step prints one row: the flood rate asked for and sent, how many
# agents got their welcome within the deadline and how fast (p50, p99), the peak of handshakes in progress on
# the streaming listener, Retries and refusals by reason, the collector's RSS at the start of the step, its
# growth during the step and that growth divided by the peak of handshakes in progress (memory per hostile
# connection held). The steps share one collector, so RSS is a high-water mark: growth shows only where a
# step held more than the ones before it.
#
# Usage: bench/flood.sh [--rates 500,2000,8000] [--sources 1,8,64] [--duration S] [--bin-dir DIR] [--keep DIR]
# Needs release builds of the collector and of the bench step:
#   cargo build --release -p headroom-collector --bins && cargo build --release -p headroom-tests --bin headroom-flood
# Only 127.0.0.0/8 is used. Every loop is bounded; the trap stops the collector it started, by PID.
set -euo pipefail

rates="500,2000,8000"
sources_list="1,8,64"
duration_s=15
bin_dir=""
keep_dir=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rates) rates="$2"; shift 2 ;;
        --sources) sources_list="$2"; shift 2 ;;
        --duration) duration_s="$2"; shift 2 ;;
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --keep) keep_dir="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "flood.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
if [[ -z "$bin_dir" ]]; then
    bin_dir="${CARGO_TARGET_DIR:-$repo/target}/release"
fi
collector_bin="$bin_dir/headroom-collector"
step_bin="$bin_dir/headroom-flood"
die() { echo "flood.sh: $*" >&2; exit 1; }
[[ -x "$collector_bin" && -x "$step_bin" ]] || die "no release binaries in $bin_dir: run" \
    "cargo build --release -p headroom-collector --bins && cargo build --release -p headroom-tests --bin headroom-flood"

quic_port=9721
http_port=9722
work="$(mktemp -d /tmp/headroom-flood.XXXXXX)"
collector_pid=""
cleanup() {
    if [[ -n "$collector_pid" ]]; then
        kill -TERM "$collector_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$collector_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$collector_pid" 2>/dev/null || true
    fi
    if [[ -n "$keep_dir" ]]; then
        mkdir -p "$keep_dir" && cp -a "$work/." "$keep_dir/"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

state="$work/collector"
"$collector_bin" ca init --state-dir "$state" >/dev/null
for i in 1 2 3 4 5 6 7 8; do
    "$collector_bin" cert issue --host "calm-$i" --state-dir "$state" --out "$work/agents/calm-$i" >/dev/null
done
cat >"$work/collector.toml" <<CONF
state_dir = "$state"
listen = "127.0.0.1:$quic_port"
enroll_listen = "off"
http_listen = "127.0.0.1:$http_port"
CONF
"$collector_bin" serve --config "$work/collector.toml" >"$work/collector.log" 2>&1 &
collector_pid=$!
for _ in $(seq 300); do
    grep -q "collector listening" "$work/collector.log" 2>/dev/null && break
    kill -0 "$collector_pid" 2>/dev/null || die "the collector exited at start; see $work/collector.log (use --keep DIR)"
    sleep 0.1
done
grep -q "collector listening" "$work/collector.log" || die "the collector is not listening after 30 s"

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "steps of ${duration_s} s; agents connect 4 times a second, deadline 10 s; streaming listener: 256 slots, Retry past 32, 8 per source, 5 s handshake timeout"
echo
echo "| flooding addresses | asked (/s) | sent (/s) | agents connected | p50 (ms) | p99 (ms) | peak in progress | Retries | refused per source | refused busy | timed out | RSS at start (MiB) | RSS growth (KiB) | KiB per hostile handshake |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
# Warm-up: the agents alone with a trickle of one stalled handshake a second, so the first flood step's RSS
# growth is not the collector's first connections and writes.
"$step_bin" --target "127.0.0.1:$quic_port" --http "127.0.0.1:$http_port" --pid "$collector_pid" \
    --agents-dir "$work/agents" --rate 1 --sources 1 --duration-s "$duration_s"
sleep 6
IFS=',' read -r -a source_counts <<<"$sources_list"
IFS=',' read -r -a rate_steps <<<"$rates"
for sources in "${source_counts[@]}"; do
    for rate in "${rate_steps[@]}"; do
        "$step_bin" --target "127.0.0.1:$quic_port" --http "127.0.0.1:$http_port" --pid "$collector_pid" \
            --agents-dir "$work/agents" --rate "$rate" --sources "$sources" --duration-s "$duration_s"
        # Let the step's stalled handshakes time out before the next one starts.
        sleep 6
    done
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
