#!/usr/bin/env bash
# The web view's once-a-minute sizing refresh: a synthetic database of HOSTS hosts x DAYS days whose rollups
# hold every metric of the catalogue (collector/examples/report_db_bench.rs with `full`, its data ending one
# minute past the hour so that the window's ragged first hour is a whole hour of minute rollups), then
# collector/examples/sizing_refresh_bench.rs: refresh after refresh, the window's end a minute later each
# time, the report as the collector made it before keeping each host's memory between refreshes (a full
# read of the window) against the way it makes it now (`store::kept_stats`), alternating in one process, CPU
# time per refresh. Results go in bench/RESULTS.md.
# Usage: bench/sizing_refresh.sh [HOSTS] [DAYS] [REFRESHES]
set -euo pipefail
hosts=${1:-20000}
days=${2:-1}
refreshes=${3:-10}
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p headroom-collector --example report_db_bench --example sizing_refresh_bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db="$work/headroom.db"
"$target/release/examples/report_db_bench" "$db" "$hosts" "$days" full 1
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$target/release/examples/sizing_refresh_bench" "$db" "$refreshes"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
