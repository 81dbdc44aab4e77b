#!/usr/bin/env bash
# Web view benchmark (issue 14): the fleet page for 10,000 hosts and a host page with an hour at 1 Hz and 30
# days of hourly rollups, each built from its model and rendered to HTML 21 times by
# collector/examples/web_bench.rs; prints median, min and max and the page size. Release build. Results go
# in bench/RESULTS.md under "## Web view".
# Usage: bench/web_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p headroom-collector --example web_bench
"$target/release/examples/web_bench"
nproc | sed 's/^/cores: /'
