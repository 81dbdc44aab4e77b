#!/usr/bin/env bash
# Two collector builds side by side, at the same time: bench/ingest.sh runs once for each build, both started
# together, each with its own load generator, database and ports, so that both see the same machine in the
# same minute. On this kind of VM the same build measures 15-25 % apart from one hour to the next, which hides
# a change of a few percent between runs taken one after the other; measured together, the two builds share
# whatever the machine does meanwhile, and the ratio of their CPU per host-sample is what is compared.
#
# With --pin both collectors share core 0 and both load generators core 1 (the load on core 0 is twice
# --agents). The builds swap ports every round. Per round the table shows each build's collector CPU per
# host-sample, ack p99 and RSS per host, and the ratio B / A; at the end the median ratio and its range.
# Host-wide figures of ingest.sh (UDP RcvbufErrors of the host, datagrams per host-sample) count both runs
# and are not compared; drops on each collector's own socket are.
#
# Usage: bench/ingest_ab.sh --a DIR --b DIR [--agents N] [--rounds N] [--duration S] [--warmup S]
#                           [--sources N] [--pin] [--ports QA,HA,QB,HB] [--history FILE] [--keep DIR]
#   DIR: a directory holding headroom-collector and examples/loadgen of one build (ingest.sh --bin-dir).
#   --ports: the QUIC and HTTP ports of the two collectors on 127.0.0.1 (9711,9712,9721,9722); the builds
#   take the first pair and the second in turn.
#   --history: both collectors start on a copy of FILE (ingest.sh --history).
# Only loopback addresses are used; every process is started and stopped by ingest.sh.
set -euo pipefail

a_dir=""
b_dir=""
agents=5000
rounds=4
duration_s=60
warmup_s=20
sources=2500
pin=0
keep_dir=""
history_args=()
ports="9711,9712,9721,9722"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --a) a_dir="$2"; shift 2 ;;
        --b) b_dir="$2"; shift 2 ;;
        --agents) agents="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --duration) duration_s="$2"; shift 2 ;;
        --warmup) warmup_s="$2"; shift 2 ;;
        --sources) sources="$2"; shift 2 ;;
        --pin) pin=1; shift ;;
        --keep) keep_dir="$2"; shift 2 ;;
        --history) history_args=(--history "$2"); shift 2 ;;
        --ports) ports="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "ingest_ab.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "ingest_ab.sh: $*" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
[[ -n "$a_dir" && -n "$b_dir" ]] || die "give both builds: --a DIR --b DIR (see --help)"
for dir in "$a_dir" "$b_dir"; do
    [[ -x "$dir/headroom-collector" && -x "$dir/examples/loadgen" ]] \
        || die "$dir: no headroom-collector and examples/loadgen in it (a release build's target/release)"
done
[[ "$rounds" =~ ^[0-9]+$ ]] && (( rounds >= 1 && rounds <= 20 )) || die "--rounds $rounds: give 1 to 20"
[[ "$agents" =~ ^[0-9]+$ ]] && (( agents >= 1 && agents <= 25000 )) || die "--agents $agents: give 1 to 25000"
command -v python3 >/dev/null || die "python3 is missing (it prints the table)"
IFS=',' read -r -a port_list <<<"$ports"
(( ${#port_list[@]} == 4 )) || die "--ports $ports: give four ports, QA,HA,QB,HB"
for port in "${port_list[@]}"; do
    [[ "$port" =~ ^[0-9]+$ ]] && (( port >= 1 && port <= 65535 )) || die "--ports: $port is not a port (1 to 65535)"
done

work="$(mktemp -d /tmp/headroom-ab.XXXXXX)"
cleanup() {
    # Each ingest.sh stops its own processes on TERM; wait for them before the logs go.
    jobs -p | xargs -r kill -TERM 2>/dev/null || true
    wait 2>/dev/null || true
    if [[ -n "$keep_dir" ]]; then
        mkdir -p "$keep_dir" && cp -a "$work/." "$keep_dir/"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pin_args=()
[[ $pin -eq 1 ]] && pin_args=(--pin)
failed=0
echo "machine: $(nproc) cores, $(uname -r); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "A = $a_dir, B = $b_dir; $agents agents each, $rounds rounds of ${duration_s} s$([[ $pin -eq 1 ]] && echo ", pinned")"
for round in $(seq 1 "$rounds"); do
    # Ports alternate between the builds, so that neither always has the same ones: A takes the first pair in
    # odd rounds, the second in even ones.
    pair=$(( (round + 1) % 2 ))
    for side in a b; do
        if [[ $side == a ]]; then dir="$a_dir"; else dir="$b_dir"; pair=$(( 1 - pair )); fi
        "$here/ingest.sh" --agents "$agents" --warmup "$warmup_s" --duration "$duration_s" --sources "$sources" \
            "${pin_args[@]}" "${history_args[@]}" --bin-dir "$dir" --port "${port_list[pair * 2]}" --http-port "${port_list[pair * 2 + 1]}" \
            >"$work/round-$round-$side.out" 2>&1 &
    done
    for job in $(jobs -p); do
        if ! wait "$job"; then
            failed=1
            echo "round $round: an ingest.sh run failed; see its output with --keep" >&2
        fi
    done
    echo "round $round done at $(date -u +%H:%M:%S) UTC"
done

python3 - "$work" "$rounds" <<'PY'
import re, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])

def figure(text, name):
    match = re.search(r"^\| " + re.escape(name) + r" \| ([^|]+) \|", text, re.M)
    if not match:
        return None
    try:
        return float(match.group(1).strip().replace(",", ""))
    except ValueError:
        return None

rows, ratios = [], []
for r in range(1, rounds + 1):
    got = {}
    for side in "ab":
        try:
            text = open(f"{work}/round-{r}-{side}.out").read()
        except OSError:
            text = ""
        got[side] = {
            "us": figure(text, "collector CPU µs per host-sample"),
            "p99": figure(text, "ack p99 (ms)"),
            "rss": figure(text, "collector RSS per connected host (KiB)"),
            "drops": figure(text, "drops on the collector's socket"),
            "once": "| every ack stored exactly once | true |" in text,
        }
    a, b = got["a"], got["b"]
    ratio = b["us"] / a["us"] if a["us"] and b["us"] else None
    if ratio is not None:
        ratios.append(ratio)
    fmt = lambda v, spec: "–" if v is None else format(v, spec)
    rows.append(f"| {r} | {fmt(a['us'], '.1f')} | {fmt(b['us'], '.1f')} | {fmt(ratio, '.3f')} | "
                f"{fmt(a['p99'], ',.0f')} / {fmt(b['p99'], ',.0f')} | {fmt(a['rss'], '.1f')} / {fmt(b['rss'], '.1f')} | "
                f"{fmt(a['drops'], ',.0f')} / {fmt(b['drops'], ',.0f')} | {'yes' if a['once'] and b['once'] else 'NO'} |")
print()
print("| round | A: µs per host-sample | B: µs per host-sample | B / A | ack p99 ms, A / B | RSS KiB per host, A / B | drops on its socket, A / B | every ack stored once |")
print("|---|--:|--:|--:|---|---|---|---|")
print("\n".join(rows))
if ratios:
    rounds_text = f"{len(ratios)} round" + ("s" if len(ratios) != 1 else "")
    print(f"\nB / A, median of {rounds_text}: {statistics.median(ratios):.3f} (range {min(ratios):.3f}–{max(ratios):.3f})")
else:
    print("\nno round gave both figures; see the runs' output with --keep")
PY
exit "$failed"
