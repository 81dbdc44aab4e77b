#!/usr/bin/env bash
# Wall time of the README's test command at an older commit and at this checkout, side by side.
#
#   bench/suite_time.sh OLD_COMMIT [PAIRS]
#
# Checks OLD_COMMIT out into a temporary git worktree with its own target directory, builds both test sets
# first (`cargo build --workspace --bins --example loadgen && cargo test --workspace --no-run`), then runs the test command
# alternately, old, new, old, new, ... (PAIRS pairs, default 2), each timed, and prints one line per run
# (wall seconds, load average before it, exit status, failed tests) and the median per side. The test
# command runs with `--no-fail-fast`, so a failing test binary does not cut a run short, and with
# HEADROOM_E2E=1 as CI does. The temporary worktree and its target directory are removed at exit.
#
# SUITE_BUILD and SUITE_TEST replace the build and test commands (to try the script out with cheap ones).
# SUITE_LOCK names a lock file that each timed run holds (with flock) and nothing else does, so that on a
# shared machine the runs take turns with other measurements while the builds do not hold it.
# The old side's target directory starts as hard links to this checkout's debug build (without its
# incremental state), so only what differs between the two commits is compiled again.
set -euo pipefail

old_commit=${1:?usage: bench/suite_time.sh OLD_COMMIT [PAIRS]}
pairs=${2:-2}
build=${SUITE_BUILD:-"cargo build --workspace --bins --example loadgen && cargo test --workspace --no-run"}
test_command=${SUITE_TEST:-"cargo build --workspace --bins --example loadgen && cargo test --workspace --no-fail-fast"}

new_dir=$(git rev-parse --show-toplevel)
scratch=$(mktemp -d)
old_dir="$scratch/old"
cleanup() {
    git -C "$new_dir" worktree remove --force "$old_dir" 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT

git -C "$new_dir" worktree add --detach "$old_dir" "$old_commit" >/dev/null
if [ -d "$new_dir/target/debug" ]; then
    mkdir -p "$old_dir/target/debug"
    for entry in "$new_dir"/target/debug/*; do
        [ "$(basename "$entry")" = incremental ] || cp -al "$entry" "$old_dir/target/debug/"
    done
fi
echo "old: $(git -C "$old_dir" log -1 --format='%h %s')"
echo "new: $(git -C "$new_dir" log -1 --format='%h %s')"

for side in old new; do
    dir=${side}_dir
    (cd "${!dir}" && bash -c "$build") >"$scratch/build-$side.log" 2>&1 || {
        echo "building the $side test set failed; see the end of its log:" >&2
        tail -20 "$scratch/build-$side.log" >&2
        exit 1
    }
done

declare -a old_times new_times
run() {
    local side=$1 dir=$2 log="$scratch/run.log"
    local load start end status=0
    if [ -n "${SUITE_LOCK:-}" ]; then
        exec 9>>"$SUITE_LOCK"
        flock 9
    fi
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    start=$(date +%s.%N)
    (cd "$dir" && HEADROOM_E2E=1 bash -c "$test_command") >"$log" 2>&1 || status=$?
    end=$(date +%s.%N)
    if [ -n "${SUITE_LOCK:-}" ]; then
        flock -u 9
        exec 9>&-
    fi
    local seconds
    seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
    local failed
    failed=$(grep -E '^test .* FAILED$' "$log" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' | paste -sd, - || true)
    printf '%s\t%7.1f s\tload %s\texit %s\tfailed: %s\n' "$side" "$seconds" "$load" "$status" "${failed:-none}"
    if [ "$side" = old ]; then old_times+=("$seconds"); else new_times+=("$seconds"); fi
}

median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

for _ in $(seq "$pairs"); do
    run old "$old_dir"
    run new "$new_dir"
done
printf 'median\told %.1f s\tnew %.1f s\n' "$(median "${old_times[@]}")" "$(median "${new_times[@]}")"
