#!/usr/bin/env bash
# Capacity report benchmark: a synthetic database of HOSTS hosts x DAYS days of rollups (hosts,
# group_minutes, group_port_minutes and every host's hourly rollup with sketches, written through the
# store's schema by collector/examples/report_db_bench.rs), then `headroom-collector report` timed on it in
# every format, with and without what-if scenarios, where its time goes phase by phase
# (collector/examples/report_phases.rs), and the windowed fleet view (`fleet --window DAYSd --stat p99`,
# collector/examples/fleet_window_bench.rs), release build. Results go in bench/RESULTS.md under
# "## Capacity report".
#
# With BASELINE (another build of headroom-collector, e.g. one built from main before a change), every
# report run alternates between BASELINE and this build, so both see the same load, and the medians and
# their ratio are printed side by side; the two builds' reports must be byte-identical.
# Usage: bench/report_bench.sh [HOSTS] [DAYS] [RUNS] [BASELINE]
set -euo pipefail
hosts=${1:-1000}
days=${2:-30}
runs=${3:-5}
baseline=${4:-}
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p headroom-collector --bin headroom-collector --example report_db_bench \
    --example fleet_window_bench --example report_phases
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db="$work/headroom.db"
"$target/release/examples/report_db_bench" "$db" "$hosts" "$days"
# Every synthetic host serves port 443 with a limit of 10,000 connections, so connections are sized too.
printf '[sizing]\nmax_connections = { "443" = 10000 }\n' > "$work/bench.toml"
ls -l "$db"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }

# Times one report run of BINARY writing OUT with the extra arguments; prints the seconds.
# --end latest: every window ends at the newest generated sample, so no run sees the data as stale (its
# groups empty) however long the runs before it took.
time_report() {
    local binary=$1 format=$2 out=$3
    shift 3
    local start end
    start=$(date +%s.%N)
    "$binary" report --window "${days}d" --end latest --format "$format" --db "$db" \
        --config "$work/bench.toml" --out "$out" "$@" >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}

scenarios=(--growth 20% --lose-hosts 2 --add group=svc-00,hosts=3 --scenario "growth=30%,lose=zone=zone-a")
for case in html csv json md "html with 4 scenarios"; do
    format=${case%% *}
    extra=()
    [[ $case == *scenarios* ]] && extra=("${scenarios[@]}")
    new=() old=()
    for _ in $(seq "$runs"); do
        if [[ -n $baseline ]]; then
            old+=("$(time_report "$baseline" "$format" "$work/old.$format" "${extra[@]}")")
        fi
        new+=("$(time_report "$target/release/headroom-collector" "$format" "$work/new.$format" "${extra[@]}")")
    done
    line="report --format $case: median $(median "${new[@]}")s over $runs runs (all: ${new[*]})"
    if [[ -n $baseline ]]; then
        cmp -s "$work/old.$format" "$work/new.$format" || { echo "report --format $case differs from BASELINE's"; exit 1; }
        ratio=$(echo "scale=2; $(median "${old[@]}") / $(median "${new[@]}")" | bc)
        line="$line; BASELINE median $(median "${old[@]}")s (all: ${old[*]}), ${ratio}x faster, same output"
    fi
    echo "$line; output $(stat -c %s "$work/new.$format") bytes"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$target/release/examples/report_phases" "$db" "$days" "$runs"
"$target/release/examples/fleet_window_bench" "$db" "${days}d" p99 "$runs"
/usr/bin/time -v "$target/release/headroom-collector" report --window "${days}d" --end latest --format html \
    --db "$db" --config "$work/bench.toml" --out "$work/report.html" 2>&1 >/dev/null \
    | grep -E "Maximum resident|Elapsed" || true
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
