#!/usr/bin/env bash
# Capacity report benchmark: a synthetic database of HOSTS hosts x DAYS days of rollups (hosts,
# group_minutes, group_port_minutes and every host's hourly rollup with sketches, written through the
# store's schema by collector/examples/report_db_bench.rs), then `headroom-collector report` timed on it in
# every format, with and without what-if scenarios, and the windowed fleet view (`fleet --window DAYSd
# --stat p99`, collector/examples/fleet_window_bench.rs), release build. Results go in bench/RESULTS.md
# under "## Capacity report".
# Usage: bench/report_bench.sh [HOSTS] [DAYS] [RUNS]
set -euo pipefail
hosts=${1:-1000}
days=${2:-30}
runs=${3:-5}
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p headroom-collector --bin headroom-collector --example report_db_bench \
    --example fleet_window_bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db="$work/headroom.db"
"$target/release/examples/report_db_bench" "$db" "$hosts" "$days"
# Every synthetic host serves port 443 with a limit of 10,000 connections, so connections are sized too.
printf '[sizing]\nmax_connections = { "443" = 10000 }\n' > "$work/bench.toml"
ls -l "$db"
# --end latest: every window ends at the newest generated sample, so no run sees the data as stale (its
# groups empty) however long the runs before it took.
for format in html csv json md; do
    times=()
    for _ in $(seq "$runs"); do
        start=$(date +%s.%N)
        "$target/release/headroom-collector" report --window "${days}d" --end latest --format "$format" \
            --db "$db" --config "$work/bench.toml" --out "$work/report.$format" >/dev/null
        end=$(date +%s.%N)
        times+=("$(echo "$end - $start" | bc)")
    done
    median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
    echo "report --format $format: median ${median}s over $runs runs (all: ${times[*]}); output $(stat -c %s "$work/report.$format") bytes"
done
# The same report with four what-if scenarios beside the baseline.
times=()
for _ in $(seq "$runs"); do
    start=$(date +%s.%N)
    "$target/release/headroom-collector" report --window "${days}d" --end latest --format html \
        --db "$db" --config "$work/bench.toml" --out "$work/scenarios.html" \
        --growth 20% --lose-hosts 2 --add group=svc-00,hosts=3 \
        --scenario "growth=30%,lose=zone=zone-a" >/dev/null
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc)")
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
echo "report --format html with 4 scenarios: median ${median}s over $runs runs (all: ${times[*]})"
"$target/release/examples/fleet_window_bench" "$db" "${days}d" p99 "$runs"
/usr/bin/time -v "$target/release/headroom-collector" report --window "${days}d" --end latest --format html \
    --db "$db" --config "$work/bench.toml" --out "$work/report.html" 2>&1 >/dev/null \
    | grep -E "Maximum resident|Elapsed" || true
