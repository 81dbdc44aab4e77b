#!/bin/sh
# Writes the man pages and shell completions of both binaries into deploy/docs/, from the binaries' own
# command-line definitions (their hidden `generate-docs` command). The files are kept in the source tree so
# that `cargo deb -p headroom-agent` and `cargo deb -p headroom-collector` package them from a clean checkout;
# a test (tests/tests/e2e/cli.rs) fails when they no longer match the command line. Run this after changing a
# command, an option or its help text, and commit the result.
set -eu

ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
cd "$ROOT"
cargo build -q -p headroom-agent -p headroom-collector --bins
bin_dir=${CARGO_TARGET_DIR:-$ROOT/target}/debug
for name in agent collector; do
    out=$ROOT/deploy/docs/$name
    rm -rf "$out"
    "$bin_dir/headroom-$name" generate-docs --out "$out" >/dev/null
    echo "$out"
done
