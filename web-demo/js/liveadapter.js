// The live view's adapter: the frames real nodes stream at /live (and what
// the `raftkv cluster` supervisor says of their processes) turned into the
// state shape the simulator's views draw (ring.js, logtable.js), so the live
// view draws with the same code instead of a second renderer.
//
// What a real node cannot tell (election timers, votes received, messages in
// flight, the page's client) is drawn as absent: no timer arc, no vote dots,
// no moving messages. Message rates are shown beside the ring instead.

// A frame older than this (the node sends one at least every 2 s) means the
// node is not answering: stopped, wedged, or its stream is cut.
export const STALE_MS = 3500;

// One node in the ring's and log table's shape. `frame`: its latest frame
// (or null), `proc`: the supervisor's entry ({state, isolated}), `age`: ms
// since the frame came.
export function nodeView(id, frame, proc, age) {
  const state = proc ? proc.state : 'unknown';
  const fresh = frame && age < STALE_MS;
  const up = state !== 'down' && !!fresh && state !== 'paused';
  const f = frame || {};
  let role = f.role || 'follower';
  if (state === 'down' || (!fresh && state !== 'paused')) role = 'down';
  const isolated = !!((proc && proc.isolated) || f.isolated);
  return {
    id,
    up,
    // What the process is: running, paused, down, or (no frame) silent.
    proc: state,
    stale: !fresh,
    role,
    term: f.term || 0,
    leader: f.leader ?? null,
    voted_for: f.voted_for ?? null,
    commit: f.commit || 0,
    applied: f.applied || 0,
    last: f.last || 0,
    durable: f.durable || 0,
    snapshot: f.snapshot || 0,
    timer: [0, 0],
    votes: [],
    isolated,
    // The log table's key-value column: a few numbers, not the store.
    kv: [['applied', f.applied || 0], ['keys', f.keys || 0], ['sessions', f.sessions || 0]],
    keys: 3,
    progress: (f.peers || []).map((p) => ({ id: p.id, match: p.match, next: p.next, state: p.state, inflight: '–' })),
    log: f.log || [],
    msgs: f.msgs || { sent: {}, received: {}, sent_total: {}, received_total: {} },
    // Its journal's writes and fsyncs (totals and a second), or null
    // before the first frame.
    journal: f.journal || null,
    members: f.members || null,
    seq: f.seq ?? null,
  };
}

// What node `id` is in configuration `c` (the simulator's words, which
// membership.js places by): `voter` (of both halves, or outside a change),
// `incoming` (of the new half only), `outgoing` (of the old half only),
// `learner`, or `none`.
export function memberOf(c, id) {
  const now = c.voters.includes(id);
  const old = c.outgoing.includes(id);
  if (now && (old || !c.joint)) return 'voter';
  if (now) return 'incoming';
  if (old) return 'outgoing';
  return c.learners.includes(id) ? 'learner' : 'none';
}

// The configuration to draw: the leader's (it decides what comes next), or
// else that of the streaming node in the highest term and furthest commit;
// null when no node streams one. A frame's `learners` already holds the
// voters a joint change demotes.
export function configOf(nodes, leader) {
  const has = (n) => n.up && n.members;
  const src = (leader && has(leader)) ? leader
    : nodes.filter(has).sort((a, b) => b.term - a.term || b.commit - a.commit)[0];
  if (!src) return null;
  const m = src.members;
  return {
    voters: m.voters || [],
    outgoing: m.outgoing || [],
    learners: m.learners || [],
    learners_next: [],
    joint: !!m.joint,
    from: src.id,
  };
}

// The whole view: `ids` in ring order, frames and supervisor entries by id,
// `now` in ms (performance.now()).
export function clusterState(ids, frames, procs, now) {
  const nodes = ids.map((id) => {
    const fr = frames.get(id);
    return nodeView(id, fr ? fr.frame : null, procs.get(id), fr ? now - fr.at : Infinity);
  });
  // The leader: a node that says it leads, in the highest term claimed.
  let leader = null;
  for (const n of nodes) {
    if (n.up && n.role === 'leader' && (!leader || n.term > leader.term)) leader = n;
  }
  // Who sits on the ring and who on the bench, and a joint change's two
  // rings, as in the simulator. A node the configuration does not name
  // (yet, or any more) is benched; before any frame, all sit on the ring.
  const config = configOf(nodes, leader);
  for (const n of nodes) n.member = config ? memberOf(config, n.id) : 'voter';
  // An isolated node's links are all cut, both ways.
  const down = [];
  for (const a of nodes) {
    for (const b of nodes) {
      if (a.id !== b.id && (a.isolated || b.isolated)) down.push([a.id, b.id]);
    }
  }
  return {
    live: true,
    now: now * 1000,
    nodes,
    leader: leader ? leader.id : null,
    config,
    down,
    messages: [],
    client: { pending: [], answers: [], session: null },
    load: false,
    stats: { ops: 0, ops_ok: 0 },
    actions: [0, 0],
    trace_end: 0,
  };
}

// What the log table asks the simulator for: each node's entries from `lo`
// to `hi` (JSON text, one array per node in ring order), from the tails the
// frames carry. Older entries than a tail holds are not shown.
export function logWindow(state, lo, hi) {
  return JSON.stringify(state.nodes.map((n) => n.log
    .filter((e) => e.i >= lo && e.i <= hi)
    .map((e) => ({ i: e.i, t: e.t, k: e.k, s: e.s, x: false }))));
}

// Messages a second, summed over kinds, each way.
export function rateTotals(msgs) {
  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
  return { sent: sum(msgs.sent), received: sum(msgs.received) };
}

// What changed between two states, in words, for the event list.
export function changes(before, after) {
  if (!before) return [];
  const out = [];
  for (const n of after.nodes) {
    const b = before.nodes.find((x) => x.id === n.id);
    if (!b) continue;
    if (b.proc !== n.proc) out.push({ major: true, text: `node ${n.id}: process ${n.proc}` });
    if (b.isolated !== n.isolated) out.push({ major: true, text: `node ${n.id} ${n.isolated ? 'isolated from its peers' : 'rejoined its peers'}` });
    if (n.up && b.role !== n.role && n.role === 'leader') out.push({ major: true, text: `node ${n.id} became leader (term ${n.term})` });
    else if (n.up && b.role !== n.role) out.push({ major: false, text: `node ${n.id}: ${n.role} (term ${n.term})` });
    if (b.stale !== n.stale && n.proc === 'running') out.push({ major: false, text: `node ${n.id} ${n.stale ? 'stopped streaming' : 'streams'}` });
  }
  return out;
}
