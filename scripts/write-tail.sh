#!/usr/bin/env bash
# The tail latency of writes (issue 16, item 3): starts a fresh 3-node raftkv
# cluster on 127.0.0.1 with default settings (journal fsync on, a snapshot
# every 10,000 entries), preloads 10,000 keys, and runs `raftkv bench
# --workload put` for SECS seconds at each number of CLIENTS, printing
# throughput, p50, p99, p99.9 and max. RAFTKV picks the binary (to compare
# two builds in one sitting); BASE the first port (three are used).
#
#   scripts/write-tail.sh                          # target/release/raftkv, built first
#   RAFTKV=/tmp/raftkv-before scripts/write-tail.sh
#   CLIENTS="32 64" SECS=10 BASE=27101 scripts/write-tail.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-"32 64"}
SECS=${SECS:-10}
BASE=${BASE:-27101}
if [ -z "${RAFTKV:-}" ]; then
    cargo build --release -q -p host-native --bin raftkv
    RAFTKV=target/release/raftkv
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/raftkv-write-tail.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
CONFIG="$WORK/raftkv.toml"
{
    echo 'cluster_id = "write-tail"'
    echo "secret = \"tail-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')\""
    echo "data_dir = \"$WORK/data\""
    printf '[limits]\nmax_connections_per_address = 1024\n'
    for i in 0 1 2; do
        printf '\n[[nodes]]\nid = %d\nlisten = "127.0.0.1:%d"\nurl = "ws://127.0.0.1:%d"\n' \
            $((i + 1)) $((BASE + i)) $((BASE + i))
    done
} >"$CONFIG"
"$RAFTKV" bootstrap --config "$CONFIG" >"$WORK/bootstrap.log" 2>&1
for i in 1 2 3; do
    "$RAFTKV" node --config "$CONFIG" --id "$i" >"$WORK/node-$i.log" 2>&1 &
    PIDS+=($!)
done
for _ in $(seq 150); do
    if "$RAFTKV" put --config "$CONFIG" --timeout 2 tail-ready 1 >/dev/null 2>&1; then break; fi
    sleep 0.2
done
"$RAFTKV" bench --config "$CONFIG" --workload put --preload only --keys 10000 --json >/dev/null
printf '%-8s %12s %9s %9s %9s %9s\n' clients 'writes/s' p50 p99 p99.9 max
for c in $CLIENTS; do
    "$RAFTKV" bench --config "$CONFIG" --workload put --clients "$c" --duration "$SECS" --json |
        python3 -c '
import json, sys
r = json.load(sys.stdin)
l = r["latency_ms"]
print("%-8s %12.0f %9.2f %9.2f %9.2f %9.2f" % (sys.argv[1], r["ops_per_sec"], l["p50"], l["p99"], l["p999"], l["max"]))
' "$c"
done
grep -h "took a snapshot" "$WORK"/node-*.log | wc -l | sed 's/^/snapshots taken (all nodes): /'
