#!/bin/sh
# Builds the Debian packages of the agent and the collector from this source tree: the binaries, a check that
# the man pages and shell completions in deploy/docs/ match the binaries' own command-line definitions, then
# one .deb each with cargo-deb, checked by lintian when it is installed.
set -eu

PROGRAM=$(basename "$0")
ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)

usage() {
    cat <<TEXT
usage: $PROGRAM [options]

Builds target/debian/headroom-agent_*.deb and headroom-collector_*.deb.

options:
  --profile NAME      release (default): the agent as deploy/build-agent.sh builds it (size-optimised,
                      static, musl) and the collector with release; dev: both from the debug build
                      (for tests)
  --no-build          package the binaries already built for that profile (CI builds them anyway)
  --deb-version V     package version instead of the one in Cargo.toml (like 0.1.0-2)
  --out DIR           where to write the packages (default target/debian)
  --fast              faster, larger compression (for tests)
  --no-lintian        do not run lintian (for a test's second build of packages it already checked)
  -h, --help          show this text

needs: cargo-deb (cargo install cargo-deb --locked); lintian is run when present; for release, what
deploy/build-agent.sh needs (the musl target and musl-tools)
TEXT
}

fail() {
    echo "$PROGRAM: $*" >&2
    exit 1
}

usage_error() {
    echo "$PROGRAM: $*" >&2
    echo "run '$PROGRAM --help' for usage" >&2
    exit 2
}

profile=release
build=yes
version=''
out=$ROOT/target/debian
fast=''
lintian=yes
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --no-build) build=no; shift; continue ;;
        --fast) fast=--fast; shift; continue ;;
        --no-lintian) lintian=no; shift; continue ;;
        --profile | --deb-version | --out) ;;
        *) usage_error "unknown option '$1'" ;;
    esac
    [ $# -ge 2 ] || usage_error "$1 needs a value"
    case $1 in
        --profile) profile=$2 ;;
        --deb-version) version=$2 ;;
        --out) out=$2 ;;
    esac
    shift 2
done

command -v cargo-deb >/dev/null 2>&1 || fail "cargo-deb is missing (install it with: cargo install cargo-deb --locked)"

cd "$ROOT"
target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
# The agent runs on every host, so a release package carries the build of deploy/build-agent.sh: the agent
# profile (smaller, see Cargo.toml), statically linked against musl, from its own target directory; the
# collector's is the release profile's. `agent_target` is the --target cargo-deb needs to find that build.
case $profile in
    release)
        agent_profile=agent
        agent_target=$(sh "$ROOT/deploy/build-agent.sh" --print-target)
        agent_dir=$(sh "$ROOT/deploy/build-agent.sh" --print-dir)
        collector_profile=release
        collector_dir=$target_dir/release
        ;;
    dev)
        agent_profile=dev
        agent_target=''
        agent_dir=$target_dir/debug
        collector_profile=dev
        collector_dir=$target_dir/debug
        ;;
    *) usage_error "--profile '$profile': use release or dev" ;;
esac
if [ "$build" = yes ]; then
    if [ "$profile" = release ]; then
        sh "$ROOT/deploy/build-agent.sh" >/dev/null
    else
        cargo build --profile "$agent_profile" -p headroom-agent --bins
    fi
    cargo build --profile "$collector_profile" -p headroom-collector --bins
fi

# The man pages and completions are kept in deploy/docs/ (deploy/gen-docs.sh writes them), so that
# `cargo deb -p NAME` works from a clean tree too; cargo-deb compresses the man pages. Refuse to package pages
# that no longer match the binary's command line.
for name in agent collector; do
    eval "bin_dir=\$${name}_dir"
    binary=$bin_dir/headroom-$name
    [ -x "$binary" ] || fail "$binary is missing (build it, or leave out --no-build)"
    fresh=$(mktemp -d)
    "$binary" generate-docs --out "$fresh" >/dev/null ||
        { rm -rf "$fresh"; fail "$binary generate-docs failed (is it an older build? rebuild it)"; }
    if ! diff -r "$fresh" "$ROOT/deploy/docs/$name" >/dev/null; then
        rm -rf "$fresh"
        fail "deploy/docs/$name does not match $binary's command line (run deploy/gen-docs.sh and commit)"
    fi
    rm -rf "$fresh"
done

mkdir -p "$out"
for name in agent collector; do
    eval "package_profile=\$${name}_profile"
    set -- -p "headroom-$name" --no-build --profile "$package_profile" --output "$out"
    [ "$name" = collector ] || [ -z "$agent_target" ] || set -- "$@" --target "$agent_target"
    [ -z "$version" ] || set -- "$@" --deb-version "$version"
    [ -z "$fast" ] || set -- "$@" "$fast"
    cargo deb "$@"
done

# Checksums for deploy/install-agent.sh, which refuses a package without a matching line.
(
    cd "$out"
    # shellcheck disable=SC2086
    sha256sum headroom-agent_${version:-*}_*.deb headroom-collector_${version:-*}_*.deb >SHA256SUMS
)

if [ "$lintian" = no ]; then
    echo "packages not checked with lintian (--no-lintian)" >&2
elif command -v lintian >/dev/null 2>&1; then
    # deploy/debian/lintian-suppressed lists each tag that does not apply, and why.
    # Unquoted on purpose: without --deb-version the version part is a glob.
    # shellcheck disable=SC2086
    lintian --fail-on error,warning --suppress-tags-from-file "$ROOT/deploy/debian/lintian-suppressed" \
        "$out"/headroom-agent_${version:-*}_*.deb "$out"/headroom-collector_${version:-*}_*.deb
else
    echo "lintian is not installed: packages not checked" >&2
fi
