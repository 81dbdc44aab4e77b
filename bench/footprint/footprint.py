#!/usr/bin/env python3
"""Measuring side of bench/footprint.sh: hold TCP connections, scrape node_exporter, time a window, report.

Subcommands:
  hold     hold N established loopback TCP connections (one listener, N clients) until stdin closes
  scrape   scrape a Prometheus endpoint once a second the way Prometheus does (keep-alive, gzip)
  window   measure CPU, RSS and wire bytes of the agent and of node_exporter over one window
  report   print the side-by-side table from the window files, with medians across repeats

Only the standard library is used, so the bench runs on a fresh Debian host with python3.
"""

import argparse
import gzip
import http.client
import json
import os
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

# Targets of the lean-agent issue: RSS with file-backed pages, CPU from schedstat, bytes on the wire.
AGENT_RSS_TARGET_MIB = 4.0
AGENT_IDLE_CPU_TARGET_PCT = 0.10
AGENT_SOCKETS_CPU_TARGET_PCT = 0.40
AGENT_WIRE_TARGET_BYTES_PER_S = 1024.0

# TCP states in the order of the kernel's numbering (1..12), as the agent's `tcp_states.counts` holds them.
TCP_STATE_NAMES = [
    "established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait",
    "close", "close_wait", "last_ack", "listen", "closing", "new_syn_recv",
]


# ---------------------------------------------------------------------------------------------------------
# hold: one listener and N clients in this process, so both ends of every connection are ESTABLISHED.


def hold(args):
    soft_limit, hard_limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * args.connections + 16
    if needed > hard_limit:
        sys.exit(f"hold: {args.connections} connections need {needed} open files but the hard limit is "
                 f"{hard_limit}: use more processes with fewer connections each")
    if soft_limit < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard_limit, hard_limit))

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    clients, accepted = [], []
    # Connect in batches no larger than the accept queue, then drain it: a full queue would drop SYNs and
    # stall each connect for a one-second retransmission.
    batch_size = 1000
    while len(clients) < args.connections:
        batch = min(batch_size, args.connections - len(clients))
        for _ in range(batch):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # Linger 0: closing sends a reset, so the run leaves no TIME_WAIT sockets to skew the next one.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.connect(("127.0.0.1", port))
            clients.append(client)
        for _ in range(batch):
            connection, _ = listener.accept()
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            accepted.append(connection)
    print(f"ready port={port} connections={len(clients)}", flush=True)

    # Stay until the script sends SIGTERM, or on our own once the safety deadline passes, so a killed run
    # never leaves connections behind for long.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    deadline_s = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline_s:
        time.sleep(1.0)


# ---------------------------------------------------------------------------------------------------------
# scrape: what a Prometheus server costs node_exporter, once a second.

# Metrics read from the last scrape to set beside the agent's socket counts.
EXPORTER_SOCKET_METRICS = [
    "node_netstat_Tcp_CurrEstab",
    "node_sockstat_TCP_inuse",
    "node_sockstat_TCP_alloc",
    "node_sockstat_TCP_tw",
    "node_sockstat_sockets_used",
]


def scrape(args):
    host, _, port = args.address.rpartition(":")
    request_headers = {
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "Accept-Encoding": "gzip",
        "User-Agent": "Prometheus/2.45.0",
        "X-Prometheus-Scrape-Timeout-Seconds": "1",
    }
    request_line = f"GET {args.path} HTTP/1.1\r\n"
    request_bytes = len(request_line) + len(f"Host: {args.address}\r\n") + 2
    request_bytes += sum(len(k) + 2 + len(v) + 2 for k, v in request_headers.items())

    scrapes = []
    last_text = ""
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    start_s = time.monotonic()
    for index in range(args.count):
        # Scrape on a fixed one-second grid so the rate does not drift with response times.
        delay_s = start_s + index * args.interval_s - time.monotonic()
        if delay_s > 0:
            time.sleep(delay_s)
        began_s = time.monotonic()
        try:
            connection.request("GET", args.path, headers=request_headers)
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            scrapes.append({"error": str(error)})
            connection.close()
            connection = http.client.HTTPConnection(host, int(port), timeout=5)
            continue
        header_bytes = len(f"HTTP/1.1 {response.status} {response.reason}\r\n") + 2
        header_bytes += sum(len(k) + 2 + len(v) + 2 for k, v in response.getheaders())
        text = gzip.decompress(body) if response.getheader("Content-Encoding") == "gzip" else body
        last_text = text.decode("utf-8", "replace")
        scrapes.append({
            "request_bytes": request_bytes,
            "response_header_bytes": header_bytes,
            "response_body_bytes": len(body),
            "uncompressed_body_bytes": len(text),
            "duration_ms": (time.monotonic() - began_s) * 1000.0,
        })
    connection.close()

    series = [line for line in last_text.splitlines() if line and not line.startswith("#")]
    values = {}
    for line in series:
        name, _, value = line.rpartition(" ")
        if name in EXPORTER_SOCKET_METRICS:
            values[name] = float(value)
    with open(args.out, "w") as out:
        json.dump({"scrapes": scrapes, "series_per_scrape": len(series), "socket_metrics": values}, out)


# ---------------------------------------------------------------------------------------------------------
# window: CPU, memory and wire bytes of both processes over the same wall-clock interval.


def read_cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    # After the command name: state is field 3 of stat(5), so utime (14) and stime (15) sit at 11 and 12.
    return int(fields[11]) + int(fields[12])


def read_schedstat(pid):
    """Time on CPU of the live threads in nanoseconds (finer than the 10 ms ticks of stat), and how many times
    they were put on a CPU (schedstat's third field: for a process that sleeps between events, its wake-ups)."""
    total_ns = 0
    slices = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as schedstat:
                fields = schedstat.read().split()
                total_ns += int(fields[0])
                slices += int(fields[2])
        except FileNotFoundError:
            pass  # The thread ended between the listing and the read.
    return total_ns, slices


def read_status(pid):
    wanted = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads")
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in wanted:
                values[key] = int(rest.split()[0])
    return values


def read_link_counters(link):
    base = f"/sys/class/net/{link}/statistics"
    counters = {}
    for name in ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets"):
        with open(f"{base}/{name}") as counter:
            counters[name] = int(counter.read())
    return counters


def parse_ss_summary(text):
    # "TCP:   100012 (estab 100000, closed 2, orphaned 0, timewait 3)"
    for line in text.splitlines():
        if line.startswith("TCP:"):
            total, _, detail = line[4:].partition("(")
            parts = dict(item.strip().split(" ", 1) for item in detail.rstrip(")").split(","))
            return {"total": int(total), **{key: int(value) for key, value in parts.items()}}
    return {}


def socket_check(args):
    """Socket counts from the agent, from ss and from the collector, taken within a second of each other."""
    result = {}
    sample = subprocess.run([args.agent_bin, "sample", "--format", "json"], capture_output=True, text=True,
                            timeout=60, check=False)
    if sample.returncode == 0:
        sockets = json.loads(sample.stdout)["sockets"]
        counts = (sockets.get("tcp_states") or {}).get("counts") or []
        result["agent_sample"] = {
            "states": dict(zip(TCP_STATE_NAMES, counts)),
            "states_total": sum(counts),
            "tcp_states_age_ms": sockets.get("tcp_states_age_ms"),
            "source": sockets.get("source"),
            "sockstat": sockets.get("sockstat"),
            "curr_estab": (sockets.get("tcp") or {}).get("curr_estab"),
        }
    else:
        result["agent_sample_error"] = sample.stderr.strip()[-400:]
    summary = subprocess.run(["ss", "-s"], capture_output=True, text=True, timeout=60, check=False)
    result["ss_summary"] = parse_ss_summary(summary.stdout)
    for name, filter_args in (("ss_established", ["state", "established"]), ("ss_all", [])):
        listing = subprocess.run(["ss", "-Htan", *filter_args], capture_output=True, text=True, timeout=120,
                                 check=False)
        result[name] = len(listing.stdout.splitlines())
    if args.collector_url:
        view = subprocess.run(["ip", "netns", "exec", args.netns, "curl", "-sf", args.collector_url],
                              capture_output=True, text=True, timeout=30, check=False)
        if view.returncode == 0 and view.stdout:
            host = json.loads(view.stdout)
            result["collector_view"] = {key: host.get(key) for key in (
                "seq", "tcp_established", "tcp_time_wait", "tcp_states", "tcp_states_age_ms", "listeners")}
    # ESTABLISHED per listening port of the holders, from ss, to set beside the streamed per-port counts.
    result["ss_established_by_port"] = {}
    for port in args.listen_ports:
        listing = subprocess.run(["ss", "-Htn", "state", "established", "sport", "=", f":{port}"],
                                 capture_output=True, text=True, timeout=120, check=False)
        result["ss_established_by_port"][str(port)] = len(listing.stdout.splitlines())
    return result


def read_load_average():
    with open("/proc/loadavg") as loadavg:
        return float(loadavg.read().split()[0])


def window(args):
    pids = {"agent": args.agent_pid, "exporter": args.exporter_pid}
    links = {"agent": args.agent_link, "exporter": args.exporter_link}
    scrape_out = os.path.join(os.path.dirname(args.out), "scrape-" + os.path.basename(args.out))
    here = os.path.abspath(__file__)

    load_start = read_load_average()
    start_ticks = {name: read_cpu_ticks(pid) for name, pid in pids.items()}
    start_sched = {name: read_schedstat(pid) for name, pid in pids.items()}
    start_status = {name: read_status(pid) for name, pid in pids.items()}
    readings = [(time.monotonic(), {name: read_link_counters(link) for name, link in links.items()})]
    start_s = readings[0][0]
    scraper = subprocess.Popen(["ip", "netns", "exec", args.netns, sys.executable, here, "scrape",
                                "--address", args.exporter_address, "--count", str(args.duration_s),
                                "--out", scrape_out])
    check = None
    for second in range(1, args.duration_s + 1):
        time.sleep(max(0.0, start_s + second - time.monotonic()))
        readings.append((time.monotonic(), {name: read_link_counters(link) for name, link in links.items()}))
        if args.socket_check and second == args.duration_s // 2:
            check = socket_check(args)
    scraper.wait(timeout=120)
    # The last scrape's response may still be on its way when the grid ends; read the counters after it.
    end_s = time.monotonic()
    end_links = {name: read_link_counters(link) for name, link in links.items()}
    end_ticks = {name: read_cpu_ticks(pid) for name, pid in pids.items()}
    end_sched = {name: read_schedstat(pid) for name, pid in pids.items()}
    end_status = {name: read_status(pid) for name, pid in pids.items()}
    wall_s = end_s - start_s

    with open(scrape_out) as scraped:
        scrape_result = json.load(scraped)
    processes = {}
    for name in pids:
        first, last = readings[0][1][name], end_links[name]
        wire_bytes = (last["rx_bytes"] - first["rx_bytes"]) + (last["tx_bytes"] - first["tx_bytes"])
        packets = (last["rx_packets"] - first["rx_packets"]) + (last["tx_packets"] - first["tx_packets"])
        per_second = []
        for (t0, before), (t1, after) in zip(readings, readings[1:]):
            delta = sum(after[name][key] - before[name][key] for key in ("rx_bytes", "tx_bytes"))
            per_second.append(delta / (t1 - t0))
        cpu_s = (end_ticks[name] - start_ticks[name]) / CLOCK_TICKS_PER_S
        processes[name] = {
            "cpu_pct": 100.0 * cpu_s / wall_s,
            "cpu_s": cpu_s,
            # Threads that ended inside the window drop out of this sum; stat above still counts them.
            "cpu_schedstat_pct": 100.0 * (end_sched[name][0] - start_sched[name][0]) / 1e9 / wall_s,
            "wakeups_per_s": (end_sched[name][1] - start_sched[name][1]) / wall_s,
            "rss_start_kib": start_status[name]["VmRSS"],
            "rss_kib": end_status[name]["VmRSS"],
            "hwm_kib": end_status[name]["VmHWM"],
            "rss_anon_kib": end_status[name]["RssAnon"],
            "rss_file_kib": end_status[name]["RssFile"],
            "threads": end_status[name]["Threads"],
            "wire_bytes_per_s": wire_bytes / wall_s,
            "wire_bytes_per_s_median": statistics.median(per_second),
            "wire_tx_bytes_per_s": (last["tx_bytes"] - first["tx_bytes"]) / wall_s,
            "wire_rx_bytes_per_s": (last["rx_bytes"] - first["rx_bytes"]) / wall_s,
            "packets_per_s": packets / wall_s,
        }
    good = [s for s in scrape_result["scrapes"] if "error" not in s]
    payload = sum(s["request_bytes"] + s["response_header_bytes"] + s["response_body_bytes"] for s in good)
    processes["exporter"].update({
        "scrapes_ok": len(good),
        "scrapes_failed": len(scrape_result["scrapes"]) - len(good),
        "http_payload_bytes_per_s": payload / wall_s,
        "body_gzip_bytes_median": statistics.median(s["response_body_bytes"] for s in good) if good else 0,
        "body_plain_bytes_median": statistics.median(s["uncompressed_body_bytes"] for s in good) if good else 0,
        "scrape_ms_median": statistics.median(s["duration_ms"] for s in good) if good else 0,
        "series_per_scrape": scrape_result["series_per_scrape"],
        "socket_metrics": scrape_result["socket_metrics"],
    })
    result = {"label": args.label, "wall_s": wall_s, "processes": processes,
              "load_average": [load_start, read_load_average()],
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - wall_s))}
    if check is not None:
        result["socket_check"] = check
    with open(args.out, "w") as out:
        json.dump(result, out, indent=1)


# ---------------------------------------------------------------------------------------------------------
# report: one table per run label, medians across repeats.

ROWS = [
    # (title, process key, format, agent target or None)
    ("RSS at end, VmRSS (MiB)", "rss_kib", lambda v: f"{v / 1024:.2f}", AGENT_RSS_TARGET_MIB * 1024),
    ("peak RSS, VmHWM (MiB)", "hwm_kib", lambda v: f"{v / 1024:.2f}", AGENT_RSS_TARGET_MIB * 1024),
    ("  of which anonymous (MiB)", "rss_anon_kib", lambda v: f"{v / 1024:.2f}", None),
    ("  of which file-backed (MiB)", "rss_file_kib", lambda v: f"{v / 1024:.2f}", None),
    ("threads", "threads", lambda v: f"{v:.0f}", None),
    ("CPU (% of one core), schedstat, live threads", "cpu_schedstat_pct", lambda v: f"{v:.3f}", "cpu"),
    ("  same from utime+stime", "cpu_pct", lambda v: f"{v:.3f}", None),
    ("wake-ups/s (times put on a CPU, schedstat)", "wakeups_per_s", lambda v: f"{v:.1f}", None),
    ("wire bytes/s, veth L2, both ways", "wire_bytes_per_s", lambda v: f"{v:.0f}",
     AGENT_WIRE_TARGET_BYTES_PER_S),
    ("  median of 1 s intervals", "wire_bytes_per_s_median", lambda v: f"{v:.0f}", None),
    ("  sent by the process (bytes/s)", "wire_tx_bytes_per_s", None, None),
    ("  received by the process (bytes/s)", "wire_rx_bytes_per_s", None, None),
    ("packets/s, both ways", "packets_per_s", lambda v: f"{v:.1f}", None),
]


def median_of(windows, name, key):
    values = [w["processes"][name][key] for w in windows if key in w["processes"][name]]
    return statistics.median(values) if values else None


def report(args):
    windows = []
    for path in args.files:
        with open(path) as window_file:
            windows.append(json.load(window_file))
    labels = []
    for w in windows:
        if w["label"] not in labels:
            labels.append(w["label"])
    for label in labels:
        runs = [w for w in windows if w["label"] == label]
        cpu_target = AGENT_SOCKETS_CPU_TARGET_PCT if label == "sockets" else AGENT_IDLE_CPU_TARGET_PCT
        wall = statistics.median(w["wall_s"] for w in runs)
        print(f"\n### Run: {label} ({len(runs)} window(s) of {wall:.1f} s; medians across windows)\n")
        print("| metric | headroom-agent | node_exporter | ratio (exporter / agent) | agent target |")
        print("|---|---:|---:|---:|---|")
        for title, key, fmt, target in ROWS:
            fmt = fmt or (lambda v: f"{v:.0f}")
            agent, exporter = median_of(runs, "agent", key), median_of(runs, "exporter", key)
            if agent is None or exporter is None:
                continue  # A window file from an older version of this script.
            ratio = f"{exporter / agent:.1f}×" if agent else "–"
            target_text = ""
            if target == "cpu":
                target = cpu_target
            if target is not None:
                limit = fmt(target) if key.endswith("_kib") else f"{target:g}"
                target_text = f"≤ {limit} {'met' if agent <= target else 'MISSED'}"
            print(f"| {title} | {fmt(agent)} | {fmt(exporter)} | {ratio} | {target_text} |")
        print_cpu_windows(runs, cpu_target)
        http = median_of(runs, "exporter", "http_payload_bytes_per_s")
        gz = median_of(runs, "exporter", "body_gzip_bytes_median")
        plain = median_of(runs, "exporter", "body_plain_bytes_median")
        series = median_of(runs, "exporter", "series_per_scrape")
        scrape_ms = median_of(runs, "exporter", "scrape_ms_median")
        print(f"\nnode_exporter: {series:.0f} series per scrape, body {gz:.0f} bytes gzip ({plain:.0f} plain), "
              f"HTTP payload {http:.0f} bytes/s, scrape {scrape_ms:.1f} ms (medians); "
              f"scrapes ok/failed: {sum(w['processes']['exporter']['scrapes_ok'] for w in runs)}/"
              f"{sum(w['processes']['exporter']['scrapes_failed'] for w in runs)}")
        for index, w in enumerate(runs, 1):
            if "socket_check" in w:
                print_socket_check(index, w)


def print_cpu_windows(runs, cpu_target):
    """Each window's schedstat CPU of both processes and the load average around it, and the spread."""
    print("\n| window | started (UTC) | load average (start, end) | agent CPU % | node_exporter CPU % | ratio |")
    print("|---|---|---|---:|---:|---:|")
    agent_values = []
    for index, w in enumerate(runs, 1):
        agent = w["processes"]["agent"]["cpu_schedstat_pct"]
        exporter = w["processes"]["exporter"]["cpu_schedstat_pct"]
        agent_values.append(agent)
        load = w.get("load_average") or ["?", "?"]
        print(f"| {index} | {w.get('started', '?')} | {load[0]}, {load[1]} | {agent:.3f} | {exporter:.3f} | "
              f"{exporter / agent:.1f}× |" if agent else f"| {index} | | | 0 | {exporter:.3f} | – |")
    median = statistics.median(agent_values)
    print(f"\nagent CPU: median {median:.3f} % of a core, spread {min(agent_values):.3f}–{max(agent_values):.3f} "
          f"over {len(agent_values)} window(s); target ≤ {cpu_target:g} %: "
          f"{'met' if median <= cpu_target else 'MISSED'}"
          f"{'' if max(agent_values) <= cpu_target else ' (not in every window)'}")


def print_socket_check(index, w):
    check = w["socket_check"]
    ss_summary = check.get("ss_summary", {})
    sample = check.get("agent_sample", {})
    states = sample.get("states", {})
    sockstat = sample.get("sockstat") or {}
    view = check.get("collector_view") or {}
    metrics = w["processes"]["exporter"]["socket_metrics"]

    def exporter(name):
        return f"{metrics[name]:.0f}" if name in metrics else "–"

    print(f"\nSocket counts, window {index}, taken at mid-window within about a second of each other:\n")
    print("| count | headroom-agent | ss | node_exporter |")
    print("|---|---:|---:|---:|")
    print(f"| ESTABLISHED, per-socket dump | sample: {states.get('established')}; streamed: "
          f"{view.get('tcp_established')} (age {view.get('tcp_states_age_ms')} ms) | "
          f"`ss -Htan state established`: {check.get('ss_established')} | – |")
    print(f"| all TCP sockets in the dump | {sample.get('states_total')} | `ss -Htan`: {check.get('ss_all')} | – |")
    print(f"| CurrEstab (snmp) | {sample.get('curr_estab')} | `ss -s` estab: {ss_summary.get('estab')} | "
          f"{exporter('node_netstat_Tcp_CurrEstab')} |")
    print(f"| TCP alloc (sockstat) | {sockstat.get('tcp_alloc')} | `ss -s` TCP total: {ss_summary.get('total')} | "
          f"{exporter('node_sockstat_TCP_alloc')} |")
    print(f"| TIME_WAIT | {states.get('time_wait')} (sockstat tw {sockstat.get('tcp_time_wait')}) | "
          f"`ss -s` timewait: {ss_summary.get('timewait')} | {exporter('node_sockstat_TCP_tw')} |")
    streamed = {str(listener["port"]): listener.get("established") for listener in view.get("listeners") or []}
    for port, ss_count in sorted(check.get("ss_established_by_port", {}).items()):
        print(f"| ESTABLISHED on listening port {port} | streamed: {streamed.get(port)} "
              f"(age {view.get('tcp_states_age_ms')} ms) | `ss -Htn state established sport = :{port}`: "
              f"{ss_count} | – |")
    print(f"\nagent sample source {sample.get('source')}, states age {sample.get('tcp_states_age_ms')} ms; "
          f"other states: " + ", ".join(f"{k} {v}" for k, v in states.items() if v and k != "established"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("hold")
    p.add_argument("--connections", type=int, required=True)
    p.add_argument("--max-seconds", type=float, default=900.0, help="exit on its own after this long")
    p.set_defaults(run=hold)

    p = commands.add_parser("scrape")
    p.add_argument("--address", required=True, help="host:port of the exporter")
    p.add_argument("--path", default="/metrics")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--interval-s", type=float, default=1.0)
    p.add_argument("--out", required=True)
    p.set_defaults(run=scrape)

    p = commands.add_parser("window")
    p.add_argument("--label", required=True)
    p.add_argument("--duration-s", type=int, default=60)
    p.add_argument("--agent-pid", type=int, required=True)
    p.add_argument("--exporter-pid", type=int, required=True)
    p.add_argument("--agent-link", required=True, help="host-side veth carrying only the agent's QUIC")
    p.add_argument("--exporter-link", required=True, help="host-side veth carrying only the scrapes")
    p.add_argument("--netns", required=True, help="namespace holding the collector and the scraper")
    p.add_argument("--exporter-address", required=True)
    p.add_argument("--socket-check", action="store_true", help="compare socket counts at mid-window")
    p.add_argument("--agent-bin", default="headroom-agent")
    p.add_argument("--collector-url", default="", help="the collector's /api/v1/hosts/<host>, in --netns")
    p.add_argument("--listen-ports", type=int, nargs="*", default=[],
                   help="listening ports whose ESTABLISHED count is checked against ss")
    p.add_argument("--out", required=True)
    p.set_defaults(run=window)

    p = commands.add_parser("report")
    p.add_argument("files", nargs="+")
    p.set_defaults(run=report)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
