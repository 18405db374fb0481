#!/usr/bin/env bash
# Every figure of BENCHMARKS.md, before and after a change, in one sitting
# (issue #16 item 7): the same machine, the same hour, the two commits taking
# turns wherever a figure is a wall-clock rate.
#
#   scripts/bench-sitting.sh BEFORE [AFTER]      (commits; AFTER defaults to HEAD)
#
# Each commit is checked out in a git worktree under target/sitting/ and built
# there, both with one shared target directory (so criterion finds the
# baseline). Then, in this order:
#
#  1. criterion, every bench of the `benches` crate (cluster, node, memory,
#     store_choice): BEFORE with `--save-baseline before`, then AFTER with
#     `--baseline-lenient before`, so criterion prints each figure's change
#     (a bench BEFORE lacks, or one that failed there, runs without one);
#     `--no-fail-fast`, so one failing bench target does not skip the rest;
#  2. the in-memory closed loop (`closed_loop C W`, one thread and
#     `--threads`) at 1 64 256 1024 4096 clients, RUNS runs, the two commits
#     alternating run by run;
#  3. restart of a node from a journal of RESTART_MIB MiB (`restart`, warm
#     page cache), the two commits alternating;
#  4. AFTER's `scripts/compare-etcd.sh` with each commit's raftkv binary,
#     then each commit's `scripts/compare-openraft.sh`, where it has one;
#  5. AFTER's `scripts/write-tail.sh` (write p99 and p99.9 with snapshots
#     on) with each commit's raftkv binary, the two alternating, RUNS runs;
#  6. AFTER's `scripts/write-timeline.sh` (where a 1-client write's time
#     goes) with each commit's binary, where `perf` is installed.
#
# Everything is written to target/sitting/REPORT.md: each section's command,
# the load average before it and its raw output. With the defaults it takes
# about an hour on a 2-core machine (criterion's default five seconds a bench
# are most of it), about 25 minutes with CRITERION_ARGS="--warm-up-time 1
# --measurement-time 3", builds of both commits not included. It
# wants nothing else running; it is not part of scripts/test.sh.
#
# Environment:
#   RUNS=3                 runs of each closed-loop and restart figure
#   WRITES=200000          writes of each closed-loop run
#   CLIENTS="1 64 256 1024 4096"
#   RESTART_MIB=1024       journal size of the restart figure (0: skip it)
#   CRITERION_ARGS=""      extra criterion arguments (a filter, --measurement-time ...)
#   ETCD=1 OPENRAFT=1      0 skips that comparison
#   TAIL=1 TIMELINE=1      0 skips the write tails, the write timeline
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
die() { printf 'bench-sitting: %s\n' "$*" >&2; exit 2; }
say() { printf '==> %s\n' "$*" >&2; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: scripts/bench-sitting.sh BEFORE [AFTER]"
BEFORE=$(git -C "$ROOT" rev-parse --verify "$1^{commit}") || die "not a commit: $1"
AFTER=$(git -C "$ROOT" rev-parse --verify "${2:-HEAD}^{commit}") || die "not a commit: ${2:-HEAD}"
RUNS=${RUNS:-3}
WRITES=${WRITES:-200000}
CLIENTS=${CLIENTS:-"1 64 256 1024 4096"}
RESTART_MIB=${RESTART_MIB:-1024}
CRITERION_ARGS=${CRITERION_ARGS:-}
ETCD=${ETCD:-1}
OPENRAFT=${OPENRAFT:-1}
TAIL=${TAIL:-1}
TIMELINE=${TIMELINE:-1}

SIT="$ROOT/target/sitting"
mkdir -p "$SIT"
export CARGO_INCREMENTAL=0
export CARGO_TARGET_DIR="$SIT/target"
REPORT="$SIT/REPORT.md"

# A worktree of each commit (made afresh: a leftover one may hold edits).
tree() { printf '%s/%s' "$SIT" "$1"; }
for side in before after; do
    git -C "$ROOT" worktree remove --force "$(tree $side)" 2>/dev/null || rm -rf "$(tree $side)"
done
git -C "$ROOT" worktree prune
git -C "$ROOT" worktree add -q --detach "$(tree before)" "$BEFORE"
git -C "$ROOT" worktree add -q --detach "$(tree after)" "$AFTER"
cleanup() {
    for side in before after; do git -C "$ROOT" worktree remove --force "$(tree $side)" 2>/dev/null || true; done
}
trap cleanup EXIT

{
    echo "# One sitting: $(git -C "$ROOT" log -1 --format='%h %s' "$BEFORE") -> $(git -C "$ROOT" log -1 --format='%h %s' "$AFTER")"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r)"
} >"$REPORT"

# section TITLE COMMAND...: runs COMMAND, its output into the report.
section() {
    local title=$1; shift
    say "$title"
    {
        echo
        echo "## $title"
        echo
        echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo
        echo '```'
        echo "\$ $*"
    } >>"$REPORT"
    "$@" >>"$REPORT" 2>&1 || echo "(failed: exit $?)" >>"$REPORT"
    echo '```' >>"$REPORT"
}

# Built one commit at a time (the shared target directory keeps what both
# share); each side's binaries are copied out before the other is built.
for side in before after; do
    say "building $side ($(git -C "$(tree $side)" log -1 --format=%h))"
    # The target directory is shared and outlives a sitting: an example this
    # commit lacks must not be picked up from an earlier build of another.
    for ex in closed_loop restart floor; do rm -f "$CARGO_TARGET_DIR/release/examples/$ex"; done
    (cd "$(tree $side)" && cargo build --release -q -p benches --examples &&
        cargo build --release -q -p host-native --examples --bin raftkv)
    rm -rf "$SIT/bin-$side"
    mkdir -p "$SIT/bin-$side"
    for ex in closed_loop restart floor; do
        [ -x "$CARGO_TARGET_DIR/release/examples/$ex" ] && cp "$CARGO_TARGET_DIR/release/examples/$ex" "$SIT/bin-$side/"
    done
    cp "$CARGO_TARGET_DIR/release/raftkv" "$SIT/bin-$side/"
done

# 1. criterion: each bench target by name (an older commit's library takes
# no criterion arguments).
bench_targets() {
    local f
    for f in "$(tree "$1")"/benches/benches/*.rs; do printf -- '--bench %s ' "$(basename "$f" .rs)"; done
}
section "criterion, before (baseline saved)" \
    bash -c "cd '$(tree before)' && cargo bench -q --no-fail-fast -p benches $(bench_targets before) -- --save-baseline before $CRITERION_ARGS"
section "criterion, after (against the baseline)" \
    bash -c "cd '$(tree after)' && cargo bench -q --no-fail-fast -p benches $(bench_targets after) -- --baseline-lenient before $CRITERION_ARGS"

# 2. the closed loop, alternating
closed_loop() {
    local c run side
    for c in $CLIENTS; do
        for run in $(seq "$RUNS"); do
            for side in before after; do
                for shape in "" --threads; do
                    # (An older closed_loop without --threads refuses it: the line says so.)
                    [ -x "$SIT/bin-$side/closed_loop" ] || continue
                    printf '%s %s clients=%s run=%s: ' "$side" "${shape:-one-thread}" "$c" "$run"
                    # shellcheck disable=SC2086 # an empty shape is no argument
                    "$SIT/bin-$side/closed_loop" "$c" "$WRITES" $shape 2>&1 | tail -1
                done
            done
        done
    done
}
section "closed loop: closed_loop C $WRITES [--threads], $RUNS runs, alternating" closed_loop

# 3. restart from a big journal, alternating (one journal, written by AFTER)
restart() {
    local run side
    for run in $(seq "$RUNS"); do
        for side in after before; do
            [ -x "$SIT/bin-$side/restart" ] || { echo "$side: no restart example"; continue; }
            echo "--- $side run $run"
            "$SIT/bin-$side/restart" "$SIT/restart-journal" --mib "$RESTART_MIB"
        done
    done
}
[ "$RESTART_MIB" -gt 0 ] && section "restart: restart DIR --mib $RESTART_MIB, $RUNS runs, alternating" restart

# 4. against etcd: AFTER's script for both commits, each with its own
# raftkv binary (an older script may not run a newer cluster's start-up:
# before storage identity came with `raftkv bootstrap`, the script did not
# call it). The second table's workloads (range, txn, watch) only where the
# binary's bench has them. Against openraft: each commit's own script
# (it builds raftkv's closed loop from its own tree, outside the shared
# target directory).
compare_etcd() {
    local side=$1 extra=()
    "$SIT/bin-$side/raftkv" bench --help 2>/dev/null | grep -q -- --watchers || extra=(EXTRA=)
    env -u CARGO_TARGET_DIR RAFTKV="$SIT/bin-$side/raftkv" "${extra[@]}" bash "$(tree after)/scripts/compare-etcd.sh"
}
for side in before after; do
    if [ "$ETCD" = 1 ] && [ -f "$(tree after)/scripts/compare-etcd.sh" ]; then
        section "compare-etcd.sh (AFTER's script), $side's raftkv" compare_etcd "$side"
    fi
done
for side in before after; do
    if [ "$OPENRAFT" = 1 ] && [ -f "$(tree $side)/scripts/compare-openraft.sh" ]; then
        section "compare-openraft.sh, $side" env -u CARGO_TARGET_DIR \
            bash "$(tree $side)/scripts/compare-openraft.sh" --writes "$WRITES" --runs "$RUNS"
    fi
done

# 5. write tails with snapshots on, alternating (AFTER's script: it takes any
# binary with `bootstrap`, `node` and `bench --json`).
write_tail() {
    local run side
    for run in $(seq "$RUNS"); do
        for side in before after; do
            echo "--- $side run $run"
            RAFTKV="$SIT/bin-$side/raftkv" bash "$(tree after)/scripts/write-tail.sh"
        done
    done
}
if [ "$TAIL" = 1 ] && [ -f "$(tree after)/scripts/write-tail.sh" ]; then
    section "write-tail.sh (AFTER's script), $RUNS runs, alternating" write_tail
fi

# 6. one write followed through its system calls, each binary.
if [ "$TIMELINE" = 1 ] && [ -f "$(tree after)/scripts/write-timeline.sh" ] && command -v perf >/dev/null 2>&1; then
    for side in before after; do
        section "write-timeline.sh (AFTER's script), $side's raftkv" \
            env RAFTKV="$SIT/bin-$side/raftkv" SECS=2 bash "$(tree after)/scripts/write-timeline.sh"
    done
fi

echo >>"$REPORT"
echo "finished $(date -u '+%H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)" >>"$REPORT"
say "report: $REPORT"
