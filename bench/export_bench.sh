#!/usr/bin/env bash
# remote_write export benchmark (issue 13): VictoriaMetrics (Debian package victoria-metrics) on 127.0.0.1 in a
# temp dir as the receiver on the same box, and collector/examples/export_bench.rs exporting a generated
# database of 1,000 hosts x 200 samples into it three times; prints host-samples/s, collector CPU per
# host-sample with its split, series per host and bytes on the wire, then the receiver's CPU over the whole
# run. Release build. Results go in bench/RESULTS.md under "## remote_write export".
# Usage: bench/export_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
profile=${PROFILE:-release}
if [ "$profile" = release ]; then
    cargo build --release -q -p headroom-collector --example export_bench
else
    cargo build -q -p headroom-collector --example export_bench
fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
/usr/bin/victoria-metrics -storageDataPath="$work/vm" -httpListenAddr="127.0.0.1:$port" \
    -retentionPeriod=1y >"$work/vm.log" 2>&1 &
vm=$!
trap 'kill "$vm" 2>/dev/null; wait "$vm" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 300); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
done
ticks=$(getconf CLK_TCK)
vm_cpu() { awk '{print $14 + $15}' "/proc/$vm/stat"; }
before=$(vm_cpu)
"$target/$profile/examples/export_bench" "http://127.0.0.1:$port/api/v1/write"
after=$(vm_cpu)
echo "receiver (VictoriaMetrics $(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null)): $(echo "scale=2; ($after - $before) / $ticks" | bc) s of CPU over the generation and all runs"
nproc | sed 's/^/cores: /'
