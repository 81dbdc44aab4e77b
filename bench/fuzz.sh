#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for a bounded time each, growing the corpora kept in fuzz/corpus/.
#
#   bench/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
#
# Needs cargo-fuzz (cargo install cargo-fuzz). cargo-fuzz passes nightly-only flags (-Z sanitizer=address);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. A crash leaves its input in fuzz/artifacts/TARGET/;
# turn each into a regression test in the normal test suite, named after its issue. Exit status 1 names the
# targets that crashed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "bench/fuzz.sh: cargo-fuzz is missing (install it with: cargo install cargo-fuzz)" >&2
  exit 2
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build
crashed=()
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  before=$(find "corpus/$target" -type f | wc -l)
  echo "== $target: ${seconds}s"
  # Small inputs keep the corpora small enough to keep in the repository.
  if ! cargo fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
      | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|Done)" ; then
    :
  fi
  if [ -n "$(find "artifacts/$target" -type f 2>/dev/null | head -1)" ]; then
    crashed+=("$target")
  fi
  echo "   corpus: $before -> $(find "corpus/$target" -type f | wc -l) inputs"
done
if [ ${#crashed[@]} -gt 0 ]; then
  echo "crashes in: ${crashed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "no crashes"
