#!/usr/bin/env bash
# raftkv's in-memory core against openraft, closed-loop clients, side by side
# (issue #16 item 6; documented in BENCHMARKS.md, "Closed-loop clients").
#
#   scripts/compare-openraft.sh [CLIENTS...] [--writes W] [--runs R] [--threads T]
#
# raftkv: benches/examples/closed_loop.rs, messages passed as values, instant
# durability, in two shapes: the 3 engines on one thread, and (--threads)
# each on an OS thread of its own with bounded channels between them, the
# clients on the leader's thread. openraft: compare/openraft, a
# standalone cargo project on the published openraft crate (pinned in its
# Cargo.toml and Cargo.lock): 3 nodes in one tokio multi-thread runtime of T
# worker threads (default: the machine's cores), in-memory log and key-value
# state machine, RPCs as direct calls. Both: each of CLIENTS clients puts a
# 16-byte value to its own key and sends the next write when the previous one
# is applied, W writes in all.
#
# Builds both in release mode (cargo fetches openraft and its dependencies;
# nothing else is installed), then for each client count (default 1 64 256
# 1024 4096) runs raftkv on one thread, raftkv threaded and openraft in turn,
# R times (default 3; W defaults to 200000), and prints one markdown table,
# a row for each shape of raftkv against openraft: best and median writes/s
# of each, the ratio of the medians, and the median CPU seconds of each
# process (user + system, from bash's `time`, setup included) with the ratio
# of writes per CPU-second. Every run checks its result (replicas equal,
# every write counted) and a failed check stops the script. The load
# average is printed before and after: on a shared machine the wall-clock
# figures move with it, CPU seconds less.
#
# Not part of scripts/test.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WRITES=200000
RUNS=3
THREADS=$(nproc 2>/dev/null || echo 1)
CLIENTS=()

die() { printf 'compare-openraft: %s\n' "$*" >&2; exit 2; }
say() { printf '==> %s\n' "$*" >&2; }
is_count() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

while [ $# -gt 0 ]; do
    case "$1" in
        --writes) [ $# -ge 2 ] || die "--writes needs a value"; WRITES=$2; shift 2 ;;
        --runs) [ $# -ge 2 ] || die "--runs needs a value"; RUNS=$2; shift 2 ;;
        --threads) [ $# -ge 2 ] || die "--threads needs a value"; THREADS=$2; shift 2 ;;
        -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option: $1" ;;
        *) CLIENTS+=("$1"); shift ;;
    esac
done
[ ${#CLIENTS[@]} -gt 0 ] || CLIENTS=(1 64 256 1024 4096)
for n in "${CLIENTS[@]}" "$WRITES" "$RUNS" "$THREADS"; do
    is_count "$n" || die "not a positive whole number: $n"
done
command -v cargo >/dev/null || die "cargo not found"

export CARGO_INCREMENTAL=0
OR_DIR="$ROOT/compare/openraft"
OR_TARGET="$ROOT/target/compare-openraft"
say "building raftkv's closed_loop (release)"
(cd "$ROOT" && cargo build --release -q -p benches --examples)
say "building openraft's closed loop (release, $OR_DIR)"
cargo build --release -q --locked --manifest-path "$OR_DIR/Cargo.toml" --target-dir "$OR_TARGET"
RAFTKV_BIN="$ROOT/target/release/examples/closed_loop"
OPENRAFT_BIN="$OR_TARGET/release/openraft-closed-loop"
OR_VERSION=$(awk '/^name = "openraft"$/ { getline; gsub(/[^0-9a-z.-]/, "", $3); print $3; exit }' "$OR_DIR/Cargo.lock")

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# run_one NAME BIN ARGS...: runs once; appends "writes/s cpu-seconds" to $WORK/NAME.
run_one() {
    local name=$1; shift
    local out="$WORK/out" err="$WORK/err" tm="$WORK/time" rate cpu
    local TIMEFORMAT='%U %S'
    if ! { time "$@" >"$out" 2>"$err"; } 2>"$tm"; then
        cat "$out" "$err" >&2
        die "$name failed: $*"
    fi
    rate=$(sed -n 's/^[0-9]* clients: [0-9]* writes in .* = \([0-9]*\)\/s$/\1/p' "$out" | head -n 1)
    [ -n "$rate" ] || { cat "$out" "$err" >&2; die "$name printed no result line"; }
    cpu=$(awk 'NF == 2 { printf "%.2f", $1 + $2 }' "$tm" | tail -n 1)
    [ -n "$cpu" ] || die "no CPU time for $name"
    printf '%s %s\n' "$rate" "$cpu" >>"$WORK/$name"
    printf '    %-14s %s (%s CPU-s)\n' "$name" "$(head -n 1 "$out")" "$cpu" >&2
}

# stat FILE COLUMN best|median: the best (largest) or median of a column.
stat() {
    sort -g -k"$2,$2" "$1" | awk -v c="$2" -v what="$3" '
        { v[NR] = $c }
        END {
            if (what == "best") { print v[NR]; exit }
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}

say "load average before: $(uptime)"
UPTIME_BEFORE=$(uptime)
# row CLIENTS SHAPE NAME: one table row, raftkv's NAME runs against openraft's.
row() {
    local rb rm_ rc ob om oc
    rb=$(stat "$WORK/$3" 1 best); rm_=$(stat "$WORK/$3" 1 median); rc=$(stat "$WORK/$3" 2 median)
    ob=$(stat "$WORK/openraft" 1 best); om=$(stat "$WORK/openraft" 1 median); oc=$(stat "$WORK/openraft" 2 median)
    awk -v c="$1" -v shape="$2" -v rb="$rb" -v rm="$rm_" -v rc="$rc" -v ob="$ob" -v om="$om" -v oc="$oc" '
        # 1234567 -> 1,234,567 (awk printf has no portable grouping flag).
        function group(n,   s, out) {
            s = sprintf("%d", n + 0.5); out = ""
            while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
            return s out
        }
        BEGIN {
            ratio = om > 0 ? sprintf("%.1f×", rm / om) : "n/a"
            per = (rc > 0 && oc > 0) ? sprintf("%.1f×", oc / rc) : "n/a"
            printf "| %d | %s | %s | %s | %s | %s | **%s** | %.2f | %.2f | %s |", c, shape, group(rb), group(rm), group(ob), group(om), ratio, rc, oc, per
        }'
}

ROWS=()
for c in "${CLIENTS[@]}"; do
    say "$c clients, $WRITES writes, $RUNS runs each"
    rm -f "$WORK/raftkv" "$WORK/raftkv-threads" "$WORK/openraft"
    for _ in $(seq "$RUNS"); do
        run_one raftkv "$RAFTKV_BIN" "$c" "$WRITES"
        run_one raftkv-threads "$RAFTKV_BIN" "$c" "$WRITES" --threads
        run_one openraft "$OPENRAFT_BIN" "$c" "$WRITES" --threads "$THREADS"
    done
    ROWS+=("$(row "$c" "1 thread" raftkv)")
    ROWS+=("$(row "$c" "3 threads" raftkv-threads)")
done
UPTIME_AFTER=$(uptime)

echo
echo "$WRITES writes per run, $RUNS runs each (alternating), openraft $OR_VERSION on $THREADS runtime worker threads"
echo "load before: ${UPTIME_BEFORE#*load average: }; after: ${UPTIME_AFTER#*load average: }"
echo
echo "| clients | raftkv on | raftkv best/s | raftkv median/s | openraft best/s | openraft median/s | ratio (medians) | raftkv CPU s | openraft CPU s | ratio per CPU-s |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
