#!/usr/bin/env bash
# Where the time of a 1-client write goes (issue 16, item 5): starts a fresh
# 3-node raftkv cluster on 127.0.0.1 (default settings), preloads 10,000 keys,
# runs `raftkv bench --workload put --clients 1` and, for SECS seconds in the
# middle of it, records the system calls of the three nodes and the client
# with `perf record` on the syscall tracepoints (no sampling: a few
# microseconds a call, so the timings are close to an unobserved run's).
# Then it follows every write through them and prints, per step, the mean,
# the median and the 90th percentile in microseconds:
#
#   client → leader's request read, leader's first and second Append sent,
#   first follower's read of it, its fdatasync call and return, its ack sent, the
#   leader's read of the ack that commits, the reply sent, the client's read
#   of it, its next request sent.
#
# The steps between two processes are the wake-ups (the kernel's loopback
# work and the scheduler); the steps inside one are its own CPU work between
# system calls. A write commits on two durable copies: if the leader's own
# sync (on its journal thread, not followed here) ends after the
# acknowledgements, the wait for it shows in "ack read -> reply sent". Not part of scripts/test.sh; needs root (or perf_event
# access) and `perf`. About 30 seconds.
#
#   scripts/write-timeline.sh
#   RAFTKV=/tmp/raftkv-before SECS=2 scripts/write-timeline.sh
#
# Environment: RAFTKV (the binary; built if unset), SECS=1 (recorded),
# BASE=27201 (the first of three ports), VALUE=256 (bytes a value).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-1}
BASE=${BASE:-27201}
VALUE=${VALUE:-256}
command -v perf >/dev/null 2>&1 || { echo "write-timeline: needs perf (apt-get install linux-perf)" >&2; exit 2; }
command -v python3 >/dev/null 2>&1 || { echo "write-timeline: needs python3" >&2; exit 2; }
if [ -z "${RAFTKV:-}" ]; then
    cargo build --release -q -p host-native --bin raftkv
    RAFTKV=target/release/raftkv
fi
mkdir -p target
WORK=$(mktemp -d "$PWD/target/write-timeline.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
CONFIG="$WORK/raftkv.toml"
{
    echo 'cluster_id = "write-timeline"'
    echo "secret = \"timeline-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')\""
    echo "data_dir = \"$WORK/data\""
    for i in 0 1 2; do
        printf '\n[[nodes]]\nid = %d\nlisten = "127.0.0.1:%d"\nurl = "ws://127.0.0.1:%d"\n' \
            $((i + 1)) $((BASE + i)) $((BASE + i))
    done
} >"$CONFIG"
"$RAFTKV" bootstrap --config "$CONFIG" >"$WORK/bootstrap.log" 2>&1
NODE_PIDS=()
for i in 1 2 3; do
    "$RAFTKV" node --config "$CONFIG" --id "$i" >"$WORK/node-$i.log" 2>&1 &
    PIDS+=($!)
    NODE_PIDS+=($!)
done
for _ in $(seq 150); do
    if "$RAFTKV" put --config "$CONFIG" --timeout 2 timeline-ready 1 >/dev/null 2>&1; then break; fi
    sleep 0.2
done
common=(--config "$CONFIG" --keys 10000 --key-size 8 --value-size "$VALUE" --json)
"$RAFTKV" bench "${common[@]}" --workload put --preload only --clients 16 >/dev/null
# Which node leads: `status` prints "node N leader".
LEADER=$("$RAFTKV" status --config "$CONFIG" 2>/dev/null | awk '$1 == "node" && $3 == "leader" { print $2; exit }')
[ -n "$LEADER" ] || { echo "write-timeline: no leader" >&2; exit 1; }
L_PID=${NODE_PIDS[$((LEADER - 1))]}
F_PIDS=()
for i in 1 2 3; do [ "$i" = "$LEADER" ] || F_PIDS+=("${NODE_PIDS[$((i - 1))]}"); done

"$RAFTKV" bench "${common[@]}" --workload put --preload no --clients 1 --duration $((SECS + 3)) >"$WORK/bench.json" &
BENCH=$!
PIDS+=("$BENCH")
sleep 1.5
EVENTS=syscalls:sys_enter_sendto,syscalls:sys_exit_recvfrom,syscalls:sys_enter_fdatasync,syscalls:sys_exit_fdatasync
timeout "$SECS" perf record -q -o "$WORK/perf.data" -e "$EVENTS" -p "$L_PID,${F_PIDS[0]},${F_PIDS[1]},$BENCH" \
    >/dev/null 2>&1 || true
wait "$BENCH"
perf script -i "$WORK/perf.data" -F pid,tid,time,event,trace >"$WORK/events.txt" 2>/dev/null

python3 - "$WORK/events.txt" "$WORK/bench.json" "$L_PID" "${F_PIDS[0]}" "${F_PIDS[1]}" "$BENCH" <<'EOF'
import collections, json, re, statistics, sys

path, bench_json, leader, f1, f2, client = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
# (time in µs, process id, event, length or return value). Events are
# matched by process, not thread: a node may sync on a journal thread (older
# builds did on followers too) while its event loop reads and sends.
ev = []
for line in open(path):
    m = re.match(r"\s*(\d+)/\d+\s+([\d.]+):\s+syscalls:(\w+):\s*(.*)", line)
    if not m:
        continue
    pid, t, name, rest = m.groups()
    n = re.search(r"len: (0x[0-9a-f]+)", rest)
    val = int(n.group(1), 16) if n else (int(rest.strip(), 16) if rest.strip().startswith("0x") else None)
    ev.append((float(t) * 1e6, int(pid), name, val))

# Frame lengths, learnt from the traffic: the client sends only requests and
# reads only replies; the leader's commonest other send is the Append; a
# follower's commonest send is its acknowledgement.
def commonest(tid, name, exclude=()):
    c = collections.Counter(v for (_, t, n, v) in ev if t == tid and n == name and v not in exclude)
    return c.most_common(1)[0][0] if c else None
request = commonest(client, "sys_enter_sendto")
reply = commonest(client, "sys_exit_recvfrom")
append = commonest(leader, "sys_enter_sendto", exclude=(reply,))
ack = commonest(f1, "sys_enter_sendto")
if None in (request, reply, append, ack):
    sys.exit("write-timeline: too few events recorded (is the cluster writing?)")

def after(i, pred):
    while i < len(ev) and not pred(ev[i]):
        i += 1
    return i

steps = collections.defaultdict(list)
skipped = 0
i = 0
while True:
    # The leader reads a request...
    i = after(i, lambda e: e[1] == leader and e[2] == "sys_exit_recvfrom" and e[3] == request)
    a1 = after(i, lambda e: e[1] == leader and e[2] == "sys_enter_sendto" and e[3] == append)
    a2 = after(a1 + 1, lambda e: e[1] == leader and e[2] == "sys_enter_sendto" and e[3] == append)
    rep = after(i, lambda e: e[1] == leader and e[2] == "sys_enter_sendto" and e[3] == reply)
    if rep >= len(ev):
        break
    # ...each follower wakes, syncs, acknowledges...
    fs = []
    for f in (f1, f2):
        w = after(a1, lambda e, f=f: e[1] == f and e[2] == "sys_exit_recvfrom" and e[3] == append)
        s = after(w, lambda e, f=f: e[1] == f and e[2] == "sys_enter_fdatasync")
        d = after(s, lambda e, f=f: e[1] == f and e[2] == "sys_exit_fdatasync")
        k = after(d, lambda e, f=f: e[1] == f and e[2] == "sys_enter_sendto" and e[3] == ack)
        fs.append((w, s, d, k))
    # ...the leader reads the acknowledgement that commits (the last one
    # before its reply), replies; the client reads it and sends the next.
    got = rep
    while got > a1 and not (ev[got][1] == leader and ev[got][2] == "sys_exit_recvfrom" and ev[got][3] == ack):
        got -= 1
    cr = after(rep, lambda e: e[1] == client and e[2] == "sys_exit_recvfrom" and e[3] == reply)
    cs = after(cr, lambda e: e[1] == client and e[2] == "sys_enter_sendto" and e[3] == request)
    nxt = after(cs, lambda e: e[1] == leader and e[2] == "sys_exit_recvfrom" and e[3] == request)
    if nxt >= len(ev) or max(x for f in fs for x in f) >= len(ev):
        break
    if a2 > rep or got <= a1 or any(not (a1 < f[0] < f[1] < f[2] < f[3]) for f in fs):
        # Not the shape of one write alone (a heartbeat's answer, a tick, a
        # retry in between): left out, and counted.
        skipped += 1
        i = rep
        continue
    first = min(fs, key=lambda f: ev[f[3]][0])  # the follower that acknowledged first
    t = lambda j: ev[j][0]
    row = [
        ("leader: request read -> first Append sent", t(a1) - t(i)),
        ("leader: first -> second Append sent", t(a2) - t(a1)),
        ("first Append sent -> first follower reads it", t(first[0]) - t(a1)),
        ("follower: Append read -> fdatasync called", t(first[1]) - t(first[0])),
        ("follower: fdatasync", t(first[2]) - t(first[1])),
        ("follower: fdatasync returned -> ack sent", t(first[3]) - t(first[2])),
        ("first ack sent -> leader reads the ack that commits", t(got) - t(first[3])),
        ("leader: ack read -> reply sent", t(rep) - t(got)),
        ("reply sent -> client reads it", t(cr) - t(rep)),
        ("client: reply read -> next request sent", t(cs) - t(cr)),
        ("request sent -> leader reads it", t(nxt) - t(cs)),
        ("the whole write (request read to the next one)", t(nxt) - t(i)),
    ]
    for name, us in row:
        steps[name].append(us)
    i = nxt

if not steps:
    counts = collections.Counter((p, n) for (_, p, n, _) in ev)
    sys.exit(f"write-timeline: no complete write found in the recording ({skipped} left out; frames learnt: "
             f"request {request}, Append {append}, ack {ack}, reply {reply}; events by process: {dict(counts)})")
r = json.load(open(bench_json))
print(f"1-client writes: {r['ops_per_sec']:,.0f}/s over the whole run, mean {r['latency_ms']['mean'] * 1000:.0f} us "
      f"(frames: request {request} B, Append {append} B, ack {ack} B, reply {reply} B)")
n = len(next(iter(steps.values())))
print(f"{n} writes followed through the recording ({skipped} left out: not one write alone); microseconds:")
print()
print(f"| step | mean | p50 | p90 |")
print("|---|---:|---:|---:|")
for name, v in steps.items():
    v = sorted(v)
    print(f"| {name} | {statistics.mean(v):.0f} | {v[len(v) // 2]:.0f} | {v[len(v) * 9 // 10]:.0f} |")
EOF
