#!/usr/bin/env bash
# raftkv against etcd 3.4 on this machine (documented in BENCHMARKS.md).
#
# Starts a 3-member etcd (Debian's etcd-server; fsync on, as by default) and a
# 3-node raftkv cluster (release build) on 127.0.0.1, with their data in a
# temporary directory on the project's disk, and runs the same closed-loop
# workload against both with `raftkv bench`: 8-byte keys from a space of
# 10,000 (preloaded), 256-byte values, 1, 16, 64 and 256 clients, writes then
# linearizable reads, SECS seconds each, the two targets taking turns row by
# row. Then prints one table (ratio = raftkv / etcd), the latency floor of a
# replicated write on this machine (fdatasync + 2 loopback round trips, from
# the `floor` example) and raftkv's 1-client mean write latency against it.
# Every process it started is stopped on exit, success or failure.
#
# Then, unless EXTRA is empty, the workloads of issue #14: prefix reads of
# 100 keys (range) and transactions (txn) at 16 and 64 clients, and watch
# fan-out (1, 100, 1,000 watches on one prefix, 100 per connection or gRPC
# stream, while 16 clients write under it), printed as a second table.
#
# Not part of scripts/test.sh. About 3.5 minutes with the defaults.
#
# Environment:
#   SECS=5             seconds per run
#   CLIENTS="1 16 64 256"
#   DEPTH=1            requests in flight per client
#   ETCD_API=grpc      grpc (etcd's own protocol) or json (its HTTP/JSON gateway)
#   THREADS=1          threads of the load client (`raftkv bench --threads`)
#   EXTRA="range txn watch"   the second table's workloads ("" for none)
#   EXTRA_CLIENTS="16 64"     clients of the range and txn rows
#   WATCHERS="1 100 1000"     watches of the watch rows (16 writing clients)
#   OUT=FILE           also keep every run's JSON report (one per line) in FILE
#   KEEP=1             keep the data directory and logs
#   RAFTKV=PATH        run this raftkv binary instead of building this tree's
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${SECS:-5}
CLIENTS=${CLIENTS:-"1 16 64 256"}
DEPTH=${DEPTH:-1}
ETCD_API=${ETCD_API:-grpc}
THREADS=${THREADS:-1}
EXTRA=${EXTRA-"range txn watch"}
EXTRA_CLIENTS=${EXTRA_CLIENTS:-"16 64"}
WATCHERS=${WATCHERS:-"1 100 1000"}
KEYS=10000
KEY_SIZE=8
VALUE_SIZE=256

say() { printf '==> %s\n' "$*" >&2; }

PIDS=()
WORK=""
cleanup() {
    local code=$?
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$WORK" ]; then
        if [ "${KEEP:-0}" = 1 ] || [ "$code" != 0 ]; then
            say "data and logs kept in $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools -------------------------------------------------------------------
if ! command -v etcd >/dev/null 2>&1; then
    say "installing Debian's etcd-server"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-server >/dev/null
fi
command -v python3 >/dev/null 2>&1 || { say "python3 is needed to print the table"; exit 2; }
if [ -n "${RAFTKV:-}" ]; then
    # Another build's binary (scripts/bench-sitting.sh runs an older commit's
    # raftkv with this script); the floor is this tree's.
    [ -x "$RAFTKV" ] || { say "RAFTKV=$RAFTKV is not an executable"; exit 2; }
    say "building the floor example (raftkv is $RAFTKV)"
    (cd "$ROOT" && cargo build --release -q -p host-native --example floor)
else
    say "building raftkv (release) and the floor example"
    (cd "$ROOT" && cargo build --release -q -p host-native --bin raftkv --example floor)
    RAFTKV="$ROOT/target/release/raftkv"
fi
FLOOR="$ROOT/target/release/examples/floor"

# --- ports -------------------------------------------------------------------
ETCD_CLIENT_PORTS=(12379 22379 32379)
ETCD_PEER_PORTS=(12380 22380 32380)
RAFTKV_PORTS=(17101 17102 17103)
for port in "${ETCD_CLIENT_PORTS[@]}" "${ETCD_PEER_PORTS[@]}" "${RAFTKV_PORTS[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        say "port $port is in use: is another comparison running?"
        exit 2
    fi
done

mkdir -p "$ROOT/target"
WORK=$(mktemp -d "$ROOT/target/compare-etcd.XXXXXX")
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

# The floor first, on the machine as the 1-client runs see it (idle).
say "measuring the floor: fdatasync of 256 B in $WORK, loopback round trip"
FLOOR_JSON=$("$FLOOR" "$WORK" --json)

# --- etcd --------------------------------------------------------------------
INITIAL=""
for i in 0 1 2; do
    INITIAL+="${INITIAL:+,}e$((i + 1))=http://127.0.0.1:${ETCD_PEER_PORTS[$i]}"
done
ETCD_EPS=""
for i in 0 1 2; do
    c="http://127.0.0.1:${ETCD_CLIENT_PORTS[$i]}"
    p="http://127.0.0.1:${ETCD_PEER_PORTS[$i]}"
    ETCD_EPS+="${ETCD_EPS:+,}$c"
    etcd --name "e$((i + 1))" --data-dir "$WORK/etcd-$((i + 1))" \
        --listen-client-urls "$c" --advertise-client-urls "$c" \
        --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
        --initial-cluster "$INITIAL" --initial-cluster-token raftkv-compare --initial-cluster-state new \
        --log-level warn >"$WORK/etcd-$((i + 1)).log" 2>&1 &
    PIDS+=($!)
done

# --- raftkv ------------------------------------------------------------------
CONFIG="$WORK/raftkv.toml"
{
    echo 'cluster_id = "compare-etcd"'
    echo "secret = \"compare-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')\""
    echo "data_dir = \"$WORK/raftkv\""
    # Every client and peer comes from 127.0.0.1: 256 clients and the peer
    # links pass the default of 256 connections per address.
    printf '[limits]\nmax_connections_per_address = 1024\n'
    for i in 0 1 2; do
        printf '\n[[nodes]]\nid = %d\nlisten = "127.0.0.1:%d"\nurl = "ws://127.0.0.1:%d"\n' \
            $((i + 1)) "${RAFTKV_PORTS[$i]}" "${RAFTKV_PORTS[$i]}"
    done
} >"$CONFIG"
# One bound configuration for all three data directories (an empty one
# would wait to be admitted by a cluster that does not exist yet).
"$RAFTKV" bootstrap --config "$CONFIG" >"$WORK/raftkv-bootstrap.log" 2>&1
for i in 1 2 3; do
    "$RAFTKV" node --config "$CONFIG" --id "$i" >"$WORK/raftkv-$i.log" 2>&1 &
    PIDS+=($!)
done

say "waiting for both clusters to elect a leader"
ready=0
for _ in $(seq 150); do
    if "$RAFTKV" put --config "$CONFIG" --timeout 2 compare-ready 1 >/dev/null 2>&1 &&
        "$RAFTKV" bench --target etcd --endpoints "$ETCD_EPS" --preload only --keys 1 --clients 1 \
            --json --timeout 2 >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.2
done
[ "$ready" = 1 ] || { say "the clusters did not come up; see the logs in $WORK"; exit 1; }

common=(--keys "$KEYS" --key-size "$KEY_SIZE" --value-size "$VALUE_SIZE" --depth "$DEPTH" --threads "$THREADS" --json)
bench() { # TARGET ARGS...
    local target=$1
    shift
    if [ "$target" = etcd ]; then
        "$RAFTKV" bench --target etcd --endpoints "$ETCD_EPS" --etcd-api "$ETCD_API" "${common[@]}" "$@"
    else
        "$RAFTKV" bench --target raftkv --config "$CONFIG" "${common[@]}" "$@"
    fi
}

say "preloading $KEYS keys into each"
for t in etcd raftkv; do bench "$t" --preload only --clients 64 >/dev/null; done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for workload in put get; do
    for c in $CLIENTS; do
        for t in etcd raftkv; do
            say "$t: $workload, $c clients, ${SECS} s"
            bench "$t" --workload "$workload" --clients "$c" --duration "$SECS" --preload no |
                python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))' >>"$RESULTS"
        done
    done
done
for workload in $EXTRA; do
    if [ "$workload" = watch ]; then
        for w in $WATCHERS; do
            for t in etcd raftkv; do
                say "$t: watch, $w watchers, 16 writing clients, ${SECS} s"
                bench "$t" --workload watch --watchers "$w" --watchers-per-conn 100 --clients 16 \
                    --duration "$SECS" --preload no |
                    python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))' >>"$RESULTS"
            done
        done
        continue
    fi
    for c in $EXTRA_CLIENTS; do
        for t in etcd raftkv; do
            say "$t: $workload, $c clients, ${SECS} s"
            bench "$t" --workload "$workload" --clients "$c" --duration "$SECS" --preload no |
                python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))' >>"$RESULTS"
        done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

[ -n "${OUT:-}" ] && cp "$RESULTS" "$OUT"

python3 - "$RESULTS" "$FLOOR_JSON" "$CLIENTS" "$ETCD_API" "$DEPTH" "$SECS" "$LOAD_BEFORE" "$LOAD_AFTER" <<'EOF'
import json, sys
path, floor, clients, api, depth, secs, before, after = sys.argv[1:]
floor = json.loads(floor)
runs = {}
more = []
for line in open(path):
    r = json.loads(line)
    c = r["config"]
    if c["workload"] in ("range", "txn", "watch"):
        more.append(r)
        continue
    runs[(c["target"], c["workload"], c["clients"])] = r
print()
print(f"etcd 3.4 ({api}) vs raftkv: 3 nodes each on 127.0.0.1, fsync on; closed loop, depth {depth}, "
      f"{secs} s per run; 8-byte keys of 10,000, 256-byte values")
print(f"load average before {before}, after {after}")
print()
print("| workload | clients | etcd ops/s | etcd p99 | raftkv ops/s | raftkv p99 | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|")
errors = []
for wl in ("put", "get"):
    for c in (int(x) for x in clients.split()):
        e, r = runs.get(("etcd", wl, c)), runs.get(("raftkv", wl, c))
        if not e or not r:
            continue
        for x in (e, r):
            if x["errors"]:
                errors.append(f'{x["config"]["target"]} {wl} {c}: {x["errors"]} errors')
        ratio = r["ops_per_sec"] / e["ops_per_sec"] if e["ops_per_sec"] else float("inf")
        print(f'| {wl} | {c} | {e["ops_per_sec"]:,.0f} | {e["latency_ms"]["p99"]:.2f} ms '
              f'| {r["ops_per_sec"]:,.0f} | {r["latency_ms"]["p99"]:.2f} ms | {ratio:.1f}x |')
print()
s, o, c3, rtt = floor["fdatasync_us"], floor["fdatasync_overwrite_us"], floor["fdatasync_overwrite_3_us"], floor["rtt_us"]
print(f'floor: fdatasync of 256 B into preallocated space {o["mean"]:.0f} us (appended {s["mean"]:.0f} us; '
      f'three at once on this disk {c3["mean"]:.0f} us), loopback round trip {rtt["mean"]:.0f} us: '
      f'fdatasync + 2 RTT = {floor["floor_us"]:.0f} us (three nodes on one disk: {floor["same_disk_floor_us"]:.0f} us)')
one = runs.get(("raftkv", "put", 1))
if one:
    mean = one["latency_ms"]["mean"] * 1000
    e1 = runs.get(("etcd", "put", 1))
    extra = f'; etcd {e1["latency_ms"]["mean"] * 1000:.0f} us' if e1 else ""
    print(f'raftkv 1-client write: mean {mean:.0f} us, {mean - floor["floor_us"]:+.0f} us over the floor '
          f'(goal: within 50), {mean - floor["same_disk_floor_us"]:+.0f} us over the same-disk floor{extra}')
if more:
    print()
    print("| workload | clients | watchers | etcd | etcd p99 | raftkv | raftkv p99 | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    pairs = {}
    for r in more:
        c = r["config"]
        key = (c["workload"], c["clients"], c["watchers"] if c["workload"] == "watch" else 0)
        pairs.setdefault(key, {})[c["target"]] = r
    for (wl, c, w), p in pairs.items():
        e, r = p.get("etcd"), p.get("raftkv")
        if not e or not r:
            continue
        for x in (e, r):
            if x["errors"]:
                errors.append(f'{x["config"]["target"]} {wl} {c}: {x["errors"]} errors')
            if x.get("watch") and (x["watch"]["canceled"] or x["watch"]["events_total"] < x["watch"]["expected_events"]):
                errors.append(f'{x["config"]["target"]} watch {w}: {x["watch"]["canceled"]} cancelled, '
                              f'{x["watch"]["events_total"]} of {x["watch"]["expected_events"]} events')
        if wl == "watch":
            fig = lambda x: (f'{x["watch"]["events_per_sec"]:,.0f} ev/s ({x["ops_per_sec"]:,.0f} w/s)')
            val = lambda x: x["watch"]["events_per_sec"]
        else:
            fig = lambda x: f'{x["ops_per_sec"]:,.0f} ops/s'
            val = lambda x: x["ops_per_sec"]
        ratio = val(r) / val(e) if val(e) else float("inf")
        print(f'| {wl} | {c} | {w or ""} | {fig(e)} | {e["latency_ms"]["p99"]:.2f} ms | {fig(r)} '
              f'| {r["latency_ms"]["p99"]:.2f} ms | {ratio:.1f}x |')
for e in errors:
    print("errors:", e)
EOF
