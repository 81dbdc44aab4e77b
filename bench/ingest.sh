#!/usr/bin/env bash
# Ingest load benchmark: N simulated agents (each a distinct host with its own certificate and its own
# mutual-TLS QUIC connection) stream one sample a second to a real collector on 127.0.0.1, with a fresh
# database per run. For each fleet size the load generator (collector/examples/loadgen) reports ingest rate,
# ack latency p50/p99/p99.9, the collector's CPU, RSS and bytes written, UDP receive-buffer drops and database
# bytes per sample, and checks every acknowledged sample is stored exactly once. With --storm, the largest run
# then kills the collector with kill -9, restarts it and times the reconnect storm until every agent is live.
# With --pin the collector runs on core 0 and the load generator on core 1 (taskset), so the collector's own
# capacity is measured rather than the machine's. --steady MIN streams MIN minutes before measuring and then
# measures 10 minutes, so per-host memory is read after the histories filled and its growth is visible.
# The table ends with issue 12's targets for each run, met or missed. --rules FILE gives the collector an
# alarm rules file (e.g. deploy/alarms.toml), whose windows decide how much history each host keeps.
# --sources N spreads the agents over N loopback source addresses (127.0.0.1 ..., at most 5000, a socket each): a real
# fleet comes from as many addresses as hosts, and the collector bounds handshakes in progress per address.
# --storm-perf FILE records the restarted collector with `perf record -g` for 15 s from its start (needs perf).
# --port N and --http-port N choose the collector's QUIC and HTTP ports on 127.0.0.1 (9711 and 9712).
# --history FILE starts each collector on a copy of FILE (a collector database, e.g. a day of 20,000 other hosts'
# rollups from `report_db_bench FILE 20000 1 full 1`), so the collector runs with the history a long-running one
# has: its sizing refresh and rollups read it. The database figures then include the copied file.
#
# Usage: bench/ingest.sh [--agents 1000,5000,20000] [--duration S] [--warmup S] [--connect-per-s N]
#                        [--storm] [--storm-perf FILE] [--sources N] [--pin] [--steady MIN] [--rules FILE]
#                        [--port N] [--http-port N] [--history FILE] [--bin-dir DIR] [--keep DIR]
# Needs: release builds of the collector and the load generator:
#   cargo build --release -p headroom-collector --bins --example loadgen
# Only loopback addresses (127.0.0.0/8) are used. Every loop is bounded; the trap stops every process it started, by PID.
set -euo pipefail

agents_list="1000,5000,20000"
duration_s=60
warmup_s=10
connect_per_s=1000
storm=0
pin=0
steady_min=""
rules_file=""
bin_dir=""
keep_dir=""
sources=1
storm_perf=""
history=""
quic_port=9711
http_port=9712
while [[ $# -gt 0 ]]; do
    case "$1" in
        --agents) agents_list="$2"; shift 2 ;;
        --duration) duration_s="$2"; shift 2 ;;
        --warmup) warmup_s="$2"; shift 2 ;;
        --connect-per-s) connect_per_s="$2"; shift 2 ;;
        --storm) storm=1; shift ;;
        --storm-perf) storm_perf="$2"; shift 2 ;;
        --sources) sources="$2"; shift 2 ;;
        --pin) pin=1; shift ;;
        --steady) steady_min="$2"; shift 2 ;;
        --rules) rules_file="$2"; shift 2 ;;
        --port) quic_port="$2"; shift 2 ;;
        --http-port) http_port="$2"; shift 2 ;;
        --history) history="$2"; shift 2 ;;
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --keep) keep_dir="$2"; shift 2 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "ingest.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
if [[ -z "$bin_dir" ]]; then
    bin_dir="${CARGO_TARGET_DIR:-$repo/target}/release"
fi
collector_bin="$bin_dir/headroom-collector"
loadgen_bin="$bin_dir/examples/loadgen"
die() { echo "ingest.sh: $*" >&2; exit 1; }
[[ -x "$collector_bin" && -x "$loadgen_bin" ]] || die "no release binaries in $bin_dir: run" \
    "cargo build --release -p headroom-collector --bins --example loadgen, or pass --bin-dir"
command -v python3 >/dev/null || die "python3 is missing (it prints the table)"
if [[ -n "$rules_file" ]]; then
    [[ -r "$rules_file" ]] || die "--rules $rules_file: not a readable file (try deploy/alarms.toml)"
    rules_file="$(realpath "$rules_file")"
fi
if [[ -n "$steady_min" ]]; then
    [[ "$steady_min" =~ ^[0-9]+$ ]] && (( steady_min >= 1 && steady_min <= 10 )) \
        || die "--steady $steady_min: give whole minutes, 1 to 10"
    warmup_s=$(( steady_min * 60 ))
    duration_s=600
fi
for port in "$quic_port" "$http_port"; do
    [[ "$port" =~ ^[0-9]+$ ]] && (( port >= 1 && port <= 65535 )) || die "port $port: give 1 to 65535"
done
[[ "$sources" =~ ^[0-9]+$ ]] && (( sources >= 1 && sources <= 5000 )) || die "--sources $sources: give 1 to 5000"
if [[ -n "$history" ]]; then
    [[ -r "$history" ]] || die "--history $history: not a readable file (make one with report_db_bench)"
    history="$(realpath "$history")"
fi
if [[ -n "$storm_perf" ]]; then
    command -v perf >/dev/null || die "--storm-perf needs perf (linux-perf)"
    storm_perf="$(realpath -m "$storm_perf")"
fi
collector_pin=()
generator_pin=()
generator_threads=2
if [[ $pin -eq 1 ]]; then
    command -v taskset >/dev/null || die "--pin needs taskset (util-linux)"
    (( $(nproc) >= 2 )) || die "--pin needs two cores; this machine has $(nproc)"
    collector_pin=(taskset -c 0)
    generator_pin=(taskset -c 1)
    # One core for the generator: a second worker thread on it would only add context switches.
    generator_threads=1
fi

work="$(mktemp -d /tmp/headroom-ingest.XXXXXX)"
pidfile="$work/collector.pid"

stop_collector() {
    local pid
    [[ -f "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}
cleanup() {
    stop_collector
    if [[ -n "$keep_dir" ]]; then
        mkdir -p "$keep_dir" && cp -a "$work/." "$keep_dir/"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Started in the background by this script and, during a storm, again by the load generator: the same command
# either way, so the restarted collector is configured exactly like the first one.
# It returns once the new process listens (bounded: 30 s), or fails if it exits first.
cat >"$work/start-collector.sh" <<START
#!/usr/bin/env bash
set -euo pipefail
before=\$(grep -c "collector listening" "$work/collector.log" 2>/dev/null || true)
${collector_pin[*]} "$collector_bin" serve --config "$work/collector.toml" >>"$work/collector.log" 2>&1 &
pid=\$!
echo \$pid >"$pidfile"
# A restart (the storm) with --storm-perf: profile the new process for its first 15 s.
if [[ -n "$storm_perf" && \${before:-0} -gt 0 ]]; then
    perf record -F 999 -g -o "$storm_perf" -p \$pid -- sleep 15 >"$work/perf.log" 2>&1 &
fi
for _ in \$(seq 300); do
    now=\$(grep -c "collector listening" "$work/collector.log" 2>/dev/null || true)
    if (( \${now:-0} > \${before:-0} )); then exit 0; fi
    kill -0 \$pid 2>/dev/null || { echo "collector exited at start; see $work/collector.log" >&2; exit 1; }
    sleep 0.1
done
echo "collector not listening after 30 s" >&2
exit 1
START
chmod +x "$work/start-collector.sh"


echo "pinned: $([[ $pin -eq 1 ]] && echo "collector on core 0, load generator on core 1" || echo no)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
IFS=',' read -r -a sizes <<<"$agents_list"
largest="${sizes[-1]}"
results=()
for agents in "${sizes[@]}"; do
    state="$work/state-$agents"
    rm -f "$work/collector.log"
    "$collector_bin" ca init --state-dir "$state" >/dev/null
    if [[ -n "$history" ]]; then
        cp "$history" "$state/headroom.db"
    fi
    cat >"$work/collector.toml" <<CONF
state_dir = "$state"
listen = "127.0.0.1:$quic_port"
enroll_listen = "off"
http_listen = "127.0.0.1:$http_port"
CONF
    if [[ -n "$rules_file" ]]; then
        printf '\n[alarms]\nrules = "%s"\n' "$rules_file" >>"$work/collector.toml"
    fi
    "$work/start-collector.sh" || die "the collector did not start; see $work/collector.log (use --keep DIR)"
    storm_args=()
    source_args=()
    if (( sources > 1 )); then
        source_args=(--source-addresses "$sources")
    fi
    if [[ $storm -eq 1 && "$agents" == "$largest" ]]; then
        storm_args=(--storm-restart "$work/start-collector.sh")
    fi
    echo "== $agents agents: connect at $connect_per_s/s, warm up ${warmup_s} s, measure ${duration_s} s" >&2
    "${generator_pin[@]}" "$loadgen_bin" --state-dir "$state" --server "127.0.0.1:$quic_port" --pid-file "$pidfile" \
        --agents "$agents" --connect-per-s "$connect_per_s" --warmup-s "$warmup_s" --duration-s "$duration_s" \
        --threads "$generator_threads" "${source_args[@]}" "${storm_args[@]}" --json "$work/result-$agents.json" >/dev/null
    results+=("$work/result-$agents.json")
    cp "$work/collector.log" "$work/collector-$agents.log"
    stop_collector
done

python3 - "${results[@]}" <<'PY'
import json, sys
runs = [json.load(open(path)) for path in sys.argv[1:]]
def row(name, get, target=""):
    cells = []
    for run in runs:
        try:
            value = get(run)
        except (KeyError, TypeError):
            value = None
        cells.append("–" if value is None else (f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"
                                                 if isinstance(value, int) else str(value)))
    print(f"| {name} | " + " | ".join(cells) + f" | {target} |")
def per_host_kib(r):
    return r["steady"]["collector_rss_mib"] * 1024 / max(r["connect"]["connected"], 1)
def median(values):
    values = sorted(values)
    return values[len(values) // 2] if len(values) % 2 else (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2
def rss_growth_pct(r):
    # The median of the readings (every 10 s) in the window's last minute against its first minute's: a
    # single reading may fall in a rollup pass's transient memory. Single readings where there are none.
    readings = r["steady"].get("collector_rss_readings_mib") or []
    if len(readings) >= 14:
        first, last = median(readings[:7]), median(readings[-7:])
    else:
        first, last = r["steady"]["collector_rss_start_mib"], r["steady"]["collector_rss_mib"]
    return (last - first) * 100 / first
print("| figure | " + " | ".join(f"{r['agents']:,} agents" for r in runs) + " | target |")
print("|---|" + "---|" * len(runs) + "---|")
row("certificates issued per s", lambda r: r["certificates"]["issued_per_s"])
row("all connected after (s)", lambda r: r["connect"]["all_connected_s"])
row("ingest (samples/s)", lambda r: r["steady"]["ingest_per_s"])
row("ack p50 (ms)", lambda r: r["ack_latency"]["p50_ms"])
row("ack p99 (ms)", lambda r: r["ack_latency"]["p99_ms"], "≤ 250")
row("ack p99.9 (ms)", lambda r: r["ack_latency"]["p999_ms"], "≤ 1000")
row("ack max (ms)", lambda r: r["ack_latency"]["max_ms"])
row("collector CPU (% of a core)", lambda r: r["steady"]["collector_cpu_pct_of_core"])
row("collector CPU µs per host-sample", lambda r: r["steady"]["collector_cpu_us_per_sample"])
row("load generator CPU (% of a core)", lambda r: r["steady"]["generator_cpu_pct_of_core"])
row("collector RSS at the window's start (MiB)", lambda r: r["steady"]["collector_rss_start_mib"])
row("collector RSS at the window's end (MiB)", lambda r: r["steady"]["collector_rss_mib"])
row("collector peak RSS by the window's end (MiB)", lambda r: r["steady"]["collector_peak_rss_mib"])
row("collector RSS per connected host (KiB)", per_host_kib, "≤ 40 (stretch 30)")
row("RSS growth over the window (%), median of the last minute's readings against the first's", rss_growth_pct, "flat")
row("UDP RcvbufErrors in window", lambda r: r["steady"]["udp_rcvbuf_errors"], "0")
row("drops on the collector's socket", lambda r: r["steady"]["collector_socket_drops"], "0")
row("datagrams a host-sample: sent by the agents / by the collector (retransmissions included)",
    lambda r: f'{r["steady"]["agent_datagrams_per_sample"]:.2f} / {r["steady"]["collector_datagrams_per_sample"]:.2f}')
row("collector bytes written per host-sample", lambda r: r["steady"]["collector_written_bytes_per_sample"])
row("database growth bytes per host-sample", lambda r: r["steady"]["database_growth_bytes_per_sample"])
row("database file bytes per row (end)", lambda r: r["database"]["file_bytes_per_row"])
row("every ack stored exactly once", lambda r: str(r["database"]["every_ack_stored_once"]).lower(), "true")
for r in runs:
    s = r.get("storm")
    if not s:
        continue
    seconds = lambda v: "never" if v is None else f"{v:.1f} s"
    print()
    print(f"Reconnect storm, {r['agents']:,} agents (kill -9, restart): restart command returned after "
          f"{s['restart_command_returned_s']:.1f} s, all reconnected after {seconds(s['all_reconnected_s'])}, "
          f"all caught up after {seconds(s['all_caught_up_s'])} (target ≤ 30 s); {s['reconnected']:,} reconnected and "
          f"{s['caught_up']:,} caught up at the end; collector peak RSS {s['collector_peak_rss_mib']:.0f} MiB; "
          f"RcvbufErrors +{s['udp_rcvbuf_errors']:,}, drops on the collector's socket +{s['collector_socket_drops']:,}; "
          f"failed connection attempts {s.get('connect_failures', 0):,} ({s.get('refusals', 0):,} refused, "
          f"{s.get('handshake_timeouts', 0):,} handshake and {s.get('welcome_timeouts', 0):,} welcome timeouts).")

# Issue 12's targets, per run. RSS "flat" means it grew by at most 2 % over the window, and is judged only
# with --steady (a window of 10 minutes after at least 6 of streaming); shorter windows say "not measured".
print()
print("Targets (issue 12):")
for r in runs:
    st, ack = r["steady"], r["ack_latency"]
    def verdict(ok):
        return "met" if ok else "missed"
    checks = [
        ("CPU per host-sample ≤ 45 µs (stretch 35)", f"{st['collector_cpu_us_per_sample']:.1f} µs",
         verdict(st["collector_cpu_us_per_sample"] <= 45)
         + (" (stretch met)" if st["collector_cpu_us_per_sample"] <= 35 else "")),
        ("every sample acknowledged (ingest = agents per s)", f"{st['ingest_per_s']:,.0f}/s",
         verdict(st["ingest_per_s"] >= 0.99 * r["agents"])),
        ("stored exactly once", str(r["database"]["every_ack_stored_once"]).lower(),
         verdict(r["database"]["every_ack_stored_once"])),
        ("ack p99 ≤ 250 ms", f"{ack['p99_ms']:,.1f} ms", verdict(ack["p99_ms"] <= 250)),
        ("ack p99.9 ≤ 1 s", f"{ack['p999_ms']:,.1f} ms", verdict(ack["p999_ms"] <= 1000)),
        ("no drops on the collector's socket", f"{st['collector_socket_drops']:,}",
         verdict(st["collector_socket_drops"] == 0)),
        ("RSS ≤ 40 KiB per connected host (stretch 30)", f"{per_host_kib(r):.1f} KiB",
         verdict(per_host_kib(r) <= 40) + (" (stretch met)" if per_host_kib(r) <= 30 else "")),
    ]
    steady_window = st["seconds"] >= 590 and r.get("warmup_s", 0) >= 360
    checks.append(("RSS flat over 10 min after ≥ 6 min", f"{rss_growth_pct(r):+.1f} %",
                   verdict(rss_growth_pct(r) <= 2) if steady_window else "not measured (use --steady 6)"))
    s = r.get("storm")
    if s:
        caught = s["all_caught_up_s"]
        checks.append(("storm: all caught up ≤ 30 s", "never" if caught is None else f"{caught:.1f} s",
                       verdict(caught is not None and caught <= 30)))
        storm_kib = s["collector_peak_rss_mib"] * 1024 / r["agents"]
        checks.append(("storm: RSS ≤ 40 KiB per host", f"{storm_kib:.1f} KiB", verdict(storm_kib <= 40)))
    print(f"- {r['agents']:,} agents:")
    for name, value, outcome in checks:
        print(f"  - {name}: {value}: {outcome}")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
