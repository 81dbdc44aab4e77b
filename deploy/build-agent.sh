#!/bin/sh
# Builds the agent as it ships: the size-optimised `agent` profile (Cargo.toml), statically linked against
# musl. The agent runs on every host, and a static binary maps no libc.so, libm.so or loader: its resident
# memory is the part of its own binary it touches and a small heap (bench/RESULTS.md, "Agent footprint").
# musl's resolver reads /etc/hosts and /etc/resolv.conf itself, so a collector given by name resolves without
# loading NSS modules. Only the agent is built this way; the collector and the tests keep the host's target.
set -eu

PROGRAM=$(basename "$0")
ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
TARGET=x86_64-unknown-linux-musl
PROFILE=agent

usage() {
    cat <<TEXT
usage: $PROGRAM [--print-dir | --print-target]

Builds \$CARGO_TARGET_DIR/$TARGET/$PROFILE/headroom-agent (target/ by default).

options:
  --print-dir     print the directory the binary is in, and build nothing
  --print-target  print the Rust target it is built for, and build nothing
  -h, --help      show this text

needs: the Rust target $TARGET (rustup target add $TARGET) and musl-gcc for ring's C code
(apt-get install musl-tools)
TEXT
}

target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
case ${1:-} in
    '') ;;
    --print-dir)
        echo "$target_dir/$TARGET/$PROFILE"
        exit 0
        ;;
    --print-target)
        echo "$TARGET"
        exit 0
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "$PROGRAM: unknown option '$1'" >&2
        echo "run '$PROGRAM --help' for usage" >&2
        exit 2
        ;;
esac

fail() {
    echo "$PROGRAM: $*" >&2
    exit 1
}

sysroot=$(rustc --print sysroot) || fail "rustc is missing (install Rust with rustup)"
[ -d "$sysroot/lib/rustlib/$TARGET/lib" ] ||
    fail "the Rust target $TARGET is not installed (install it with: rustup target add $TARGET)"
command -v musl-gcc >/dev/null 2>&1 ||
    fail "musl-gcc is missing, ring's C code needs it (install it with: apt-get install musl-tools)"

cd "$ROOT"
# With --target, RUSTFLAGS reach only the target's crates, never build scripts or proc macros; musl links
# statically by default, and the flag says so explicitly.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --profile "$PROFILE" -p headroom-agent --bins --target "$TARGET"
binary=$target_dir/$TARGET/$PROFILE/headroom-agent
[ -x "$binary" ] || fail "$binary is missing after the build"
echo "$binary"
