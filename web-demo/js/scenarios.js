// The scenarios: lessons of one to five steps, each driving a fresh cluster
// with ordinary actions (so the trace, the time slider and shared links work
// as for any run) to the moment that matters, where it pauses with its text
// beside the ring. "Watch" plays on from there. The builders are shared with
// the tour.
//
// A step: { title, fresh?: options or (app) => options (starts a new
// cluster), build(app, ctx) → facts for the text, text(ctx, app) → HTML,
// watch?: { label, until(app, ctx), max (µs of simulated time) } }.

import { c, ids, others, until, run, leader, put, get, everywhere, termsAt, answer, bugOn } from './drive.js';
import { term } from './glossary.js';

// ---------------------------------------------------------------------------
// Leader crash
// ---------------------------------------------------------------------------

export const leaderCrash = {
  title: 'The leader crashes',
  fresh: { nodes: 5, seed: 1 },
  build(app) {
    const l = leader(app);
    put(app, l, 'x', '1');
    until(app, () => everywhere(app, 'x', '1'), 2e6);
    const t = c(app).term(l);
    app.act({ op: 'crash', node: l });
    return { l, t };
  },
  text: ({ l, t }) => `<p>Node ${l} led ${term('term')} ${t} and committed <code>x=1</code>: it is on every node.
    It has just crashed, losing everything but its disk.</p>
    <p>The followers stop hearing heartbeats, so their ${term('election timer', 'election timers')} (the arcs) fill up. The
    first to run out becomes a ${term('pre-candidate')} and asks whether it could win; then, as a ${term('candidate')},
    it starts term ${t + 1} and asks for votes. The others grant them: its log is as up to date as theirs.</p>
    <p>Afterwards, restart node ${l} (select it, press <kbd>r</kbd>): it replays its journal and rejoins as a follower.</p>`,
  watch: { label: '▶ Watch the election', until: (app, { l }) => c(app).leader() !== 0 && c(app).leader() !== l, max: 3e6 },
};

// ---------------------------------------------------------------------------
// Split vote
// ---------------------------------------------------------------------------

// The first seed (deterministically) whose first election splits on 4 nodes.
function splitSeed(app) {
  for (let s = 1; s <= 400; s++) {
    const t = new app.mod.Cluster(JSON.stringify({ ...app.defaults, bugs: app.options.bugs, nodes: 4, seed: s }));
    const l = t.run_until_leader(10e6);
    const split = l && t.term(l) >= 2;
    t.free();
    if (split) return s;
  }
  return 1;
}

const candidates = (app) => ids(app).filter((id) => c(app).role(id) === 'candidate');

export const splitVote = {
  title: 'Two candidates at once',
  fresh: (app) => ({ nodes: 4, seed: splitSeed(app) }),
  build(app) {
    until(app, () => candidates(app).length >= 2, 5e6);
    const [a, b] = candidates(app);
    return { a, b, seed: app.options.seed, t: c(app).term(a) };
  },
  text: ({ a, b, seed, t }) => `<p>Seed ${seed}, four nodes: a candidate needs 3 votes. Nodes ${a} and ${b} timed out
    within a few milliseconds of each other; both passed the pre-vote and are now ${term('candidate', 'candidates')} for
    term ${t}, each voting for itself.</p>
    <p>Every node votes at most once per term, for the first candidate that asks, so the votes split 2–2 (the dots on
    each candidate's ring: green yes, red no). Nobody wins term ${t}. Their election timeouts are drawn again at random;
    one runs out first, and that node wins term ${t + 1}.</p>`,
  watch: { label: '▶ Watch it resolve', until: (app) => c(app).leader() !== 0, max: 4e6 },
};

// ---------------------------------------------------------------------------
// Minority partition
// ---------------------------------------------------------------------------

export const minority = {
  title: 'The leader ends up in a minority',
  fresh: { nodes: 5, seed: 3 },
  build(app) {
    const l = leader(app);
    put(app, l, 'x', '1');
    until(app, () => everywhere(app, 'x', '1'), 2e6);
    const buddy = others(app, l)[0];
    app.act({ op: 'partition', side: [l, buddy] });
    put(app, l, 'x', '2');
    get(app, l, 'x');
    run(app, 5e3);
    return { l, buddy, t: c(app).term(l) };
  },
  text: ({ l, buddy, t }) => `<p>The network split: node ${l}, the leader of term ${t}, can reach only node ${buddy}.
    It appended <code>x=2</code>, but only 2 of 5 nodes store it, so that entry stays uncommitted (faded in the log).</p>
    <p>A read sent to it must first be confirmed by a majority (${term('ReadIndex')}); that cannot happen, so it fails
    instead of returning possibly stale data. After an election timeout without hearing from a majority node ${l} steps
    down (CheckQuorum), and the other three elect a leader in a higher term.</p>
    <p>Then press <b>Heal all</b> (<kbd>h</kbd>): node ${l} learns the new term and drops its uncommitted entry.</p>`,
  watch: { label: '▶ Watch the majority', until: (app, { l, buddy }) => ![0, l, buddy].includes(c(app).leader()), max: 3e6 },
};

// ---------------------------------------------------------------------------
// The paper's Figure 8 (the recipe is also host-wasm's native test figure8)
// ---------------------------------------------------------------------------

// Without PreVote and CheckQuorum, as in the paper; one entry per
// AppendEntries, so the run can stop between two entries.
export const FIG8 = { nodes: 5, seed: 8, pre_vote: false, check_quorum: false, max_entries_per_msg: 1, max_inflight_msgs: 1 };

export function fig8a(app) {
  app.act({ op: 'timeout', node: 1 });
  until(app, () => c(app).role(1) === 'leader', 1e6);
  put(app, 1, 'w', '0'); // opens the client's session first
  until(app, () => ids(app).every((id) => c(app).commit(id) >= 3), 2e6);
  for (const to of [3, 4, 5]) app.act({ op: 'cut', from: 1, to });
  put(app, 1, 'x', '1');
  const i = c(app).last_index(1);
  until(app, () => c(app).last_index(2) >= i, 1e6);
  app.act({ op: 'crash', node: 1 });
  return { i, t1: c(app).term(2) };
}

export function fig8b(app, { i }) {
  app.act({ op: 'timeout', node: 5 });
  until(app, () => c(app).role(5) === 'leader', 1e6);
  for (const to of [1, 2, 3, 4]) app.act({ op: 'cut', from: 5, to });
  // Its entry at i must be on its disk, and what it sent lost on the cut links.
  until(app, () => c(app).durable(5) >= i && c(app).in_flight('', 5) === 0, 1e6);
  const t2 = c(app).term(5);
  app.act({ op: 'crash', node: 5 });
  return { t2 };
}

export function fig8c(app, { i, t1 }) {
  app.act({ op: 'heal' });
  app.act({ op: 'restart', node: 1 });
  let l = 0;
  for (let k = 0; k < 6 && !l; k++) {
    app.act({ op: 'timeout', node: 1 });
    until(app, () => c(app).role(1) === 'leader' || c(app).role(2) === 'leader', 150e3);
    l = [1, 2].find((x) => c(app).role(x) === 'leader') || 0;
  }
  until(app, () => termsAt(app, i).filter((t) => t === t1).length >= 3, 2e6);
  return { l, t3: c(app).term(l), holders: ids(app).filter((id, k) => termsAt(app, i)[k] === t1) };
}

export function fig8d(app, { i, l }) {
  until(app, () => c(app).commit(l) >= i, 2e6);
  const withNoop = [3, 4].filter((id) => c(app).last_index(id) > i);
  for (const from of [1, 2]) for (const to of [3, 4]) app.act({ op: 'cut', from, to });
  app.act({ op: 'crash', node: 1 });
  app.act({ op: 'crash', node: 2 });
  return { withNoop };
}

export function fig8e(app) {
  app.act({ op: 'restart', node: 5 });
  app.act({ op: 'timeout', node: 5 });
  return {};
}

const FIG8_SWITCH = '<b>Break it</b> → “commit old-term entries by counting”';

export const figure8 = [
  {
    title: '1. An entry reaches one follower',
    fresh: FIG8,
    build: fig8a,
    text: ({ i, t1 }) => `<p>The paper's Figure 8, on five nodes without PreVote (as in the paper); entries travel one
      per message so the run can stop between two of them.</p>
      <p>Node 1 led term ${t1} and appended <code>x=1</code> — call it X — at index ${i}. Only node 2 got it (node 1's
      links to 3, 4 and 5 were cut one way), so X is on 2 of 5 nodes: not committed. Then node 1 crashed.</p>`,
  },
  {
    title: '2. Another leader writes the same index',
    build: fig8b,
    text: ({ i, t1, t2 }) => `<p>Node 5 won term ${t2} with the votes of nodes 3 and 4 — their logs are no longer than
      its own — and appended its own entry (a no-op of term ${t2}) at index ${i}. Its messages were lost on cut links and
      it crashed too.</p><p>Index ${i} now holds X (term ${t1}) on nodes 1 and 2, and a term-${t2} entry on node 5.</p>`,
  },
  {
    title: '3. The old entry reaches a majority',
    build: fig8c,
    text: ({ i, l, t1, t3, holders }, app) => `<p>Every link is back; node 1 restarted and node ${l} won term ${t3}. It
      copies its log one entry at a time: X (term ${t1}) is now on nodes ${holders.join(', ')} — a majority — and node
      ${l}'s own no-op of term ${t3} follows at index ${i + 1}.</p>
      <p>Is X committed? It is on a majority, but it is from term ${t1}. ${bugOn(app, 'commit_old_term')
        ? 'With the switch on, the leader commits it as soon as it hears that.'
        : `A correct leader commits an entry of an earlier term only together with one of its own term: X waits for the
          term-${t3} no-op to reach a majority.`}</p>`,
  },
  {
    title: '4. The leader counts X committed',
    build: fig8d,
    text: ({ i, l, withNoop, t3 }, app) => bugOn(app, 'commit_old_term')
      ? `<p>With ${FIG8_SWITCH} on, node ${l} counted X committed the moment three nodes held it — before its own
        term-${t3} no-op reached node 3 or 4, and applied <code>x=1</code>.</p>
        <p>Now nodes 1 and 2 crash (what they had on the wire to 3 and 4 is lost).</p>`
      : `<p>Node ${l} committed X only once its own no-op (index ${i + 1}) was on a majority too, so node
        ${withNoop.join(' and ')} holds that newer entry. It has applied <code>x=1</code>.</p>
        <p>Now nodes 1 and 2 crash (what they had on the wire to 3 and 4 is lost).</p>`,
  },
  {
    title: '5. Node 5 returns',
    build: fig8e,
    text: ({ i, t2, t3 }, app) => bugOn(app, 'commit_old_term')
      ? `<p>Node 5 is back and campaigns. Its last entry is from term ${t2}; nodes 3 and 4 hold nothing newer than X's
        term, so they vote for it. Node 5 wins and overwrites index ${i} with its own entry: <b>a committed entry is
        lost</b>: node 1 applied <code>x=1</code> at index ${i}, and the rest of the cluster now holds something else
        there.</p>
        <p>▶ Watch: the run pauses at the first event that breaks a safety check — node 5 winning without the committed
        entry (“leader completeness”) — with the invariants panel red and node 5's entry at ${i} outlined in red in the
        log. Press ▶ Play and it pauses again when that entry overwrites X on node 3 or 4.</p>`
      : `<p>Node 5 is back and campaigns with its term-${t2} entry at index ${i}. A node holding the newer term-${t3}
        entry refuses to vote for it, so node 5 cannot get three votes: X stays committed and Figure 8's danger cannot
        happen.</p>
        <p>▶ Watch, then switch on ${FIG8_SWITCH} (the run is rebuilt on the broken build) to see what the rule prevents.</p>`,
    watch: { label: '▶ Watch node 5', until: (app) => c(app).violations() > 0, max: 2.5e6 },
  },
];

// ---------------------------------------------------------------------------
// InstallSnapshot
// ---------------------------------------------------------------------------

export const catchUp = {
  title: 'A follower far behind catches up',
  fresh: { nodes: 5, seed: 4, snapshot_chunk_bytes: 96 },
  build(app) {
    const l = leader(app);
    const f = others(app, l)[0];
    app.act({ op: 'crash', node: f });
    for (let i = 1; i <= 24; i++) {
      put(app, l, `k${i}`, `v${i}`);
      run(app, 20e3);
    }
    run(app, 300e3);
    app.act({ op: 'snapshot', node: l });
    run(app, 100e3);
    app.act({ op: 'restart', node: f });
    until(app, () => c(app).in_flight('InstallSnapshot', l) > 0, 2e6);
    return { l, f };
  },
  text: ({ l, f }) => `<p>Node ${f} was down while the leader, node ${l}, committed 24 writes. Then node ${l} took a
    ${term('snapshot')} of its key-value state and dropped the log entries it covers (hatched cells).</p>
    <p>Node ${f} has just restarted far behind. The leader finds the entries it would send gone, so it streams its
    snapshot instead, in chunks (brown InstallSnapshot messages). Node ${f} installs it — its key-value state fills in
    at once — and then receives newer entries as usual.</p>`,
  watch: { label: '▶ Watch the snapshot', until: (app, { f }) => c(app).value(f, 'k24') === 'v24', max: 3e6 },
};

// ---------------------------------------------------------------------------
// Sessions: a duplicate retry
// ---------------------------------------------------------------------------

export const retry = {
  title: 'A client retries a write',
  fresh: { nodes: 5, seed: 5 },
  build(app) {
    const l = leader(app);
    put(app, l, 'warmup', 'session');
    run(app, 300e3);
    app.act({ op: 'client', node: l, req: { kind: 'append', key: 'k', value: 'a' } });
    const idx = c(app).last_index(l);
    until(app, () => others(app, l).filter((f) => c(app).last_index(f) >= idx).length >= 3, 1e6);
    app.act({ op: 'crash', node: l });
    until(app, () => ![0, l].includes(c(app).leader()), 5e6);
    const l2 = c(app).leader();
    run(app, 200e3);
    app.act({ op: 'retry', seq: 2, node: l2 });
    return { l, l2 };
  },
  text: ({ l, l2 }, app) => `<p>The client appended <code>"a"</code> to <code>k</code> (${term('session')} write
    seq 2) at node ${l}, which replicated it and crashed before the client heard back. Not knowing whether it happened,
    the client retried the same write — same session, same seq — at the new leader, node ${l2}.</p>
    <p>${bugOn(app, 'no_dedup')
      ? 'With “no duplicate detection” switched on under Break it, the session table does not check the seq: the retry is applied a second time and <code>k</code> becomes <code>"aa"</code>.'
      : 'The entry had committed, so the retry is a second log entry with the same (session, seq): the session table sees seq 2 was applied already and answers with the cached reply. <code>k</code> stays <code>"a"</code> on every node, not <code>"aa"</code>.'}</p>`,
  watch: { label: '▶ Watch the retry', until: (app) => !!answer(app, 'k+="a" (seq 2)', 0) && c(app).in_flight('', 0) === 0, max: 1e6 },
};

// ---------------------------------------------------------------------------
// Linearizable reads, and the stale read they prevent
// ---------------------------------------------------------------------------

// Without CheckQuorum, as etcd and Consul once ran: a leader cut off keeps
// believing it leads, which is where a read answered locally goes stale.
export const staleRead = {
  title: 'A read at a deposed leader',
  fresh: { nodes: 5, seed: 6, check_quorum: false },
  build(app) {
    const l = leader(app);
    put(app, l, 'x', '1');
    until(app, () => everywhere(app, 'x', '1'), 2e6);
    app.act({ op: 'isolate', node: l });
    until(app, () => ![0, l].includes(c(app).leader()), 5e6);
    const l2 = c(app).leader();
    put(app, l2, 'x', '2');
    until(app, () => c(app).value(l2, 'x') === '2', 2e6);
    get(app, l, 'x');
    return { l, l2, t: c(app).term(l), t2: c(app).term(l2) };
  },
  text: ({ l, l2, t, t2 }, app) => `<p>Node ${l} led term ${t} and was cut off from everyone. The others elected node
    ${l2} (term ${t2}), which committed <code>x=2</code>. This cluster runs without CheckQuorum, so node ${l} still
    believes it leads. The client has just asked it for <code>x</code>.</p>
    <p>${bugOn(app, 'stale_read_local')
      ? 'With “stale local reads” switched on, node ' + l + ' answered from its own state at once: <code>x="1"</code>, a value overwritten before the read was sent. That is a stale read — no order of the operations explains it. Test mode finds such reads with the linearizability checker.'
      : `A linearizable read (${term('ReadIndex')}) is answered only after a heartbeat round confirms that a majority
        still follows the leader. Node ${l} cannot get that, so the read waits and is never answered with the stale
        <code>x="1"</code>. (Switch on “stale local reads” under Break it to see the wrong answer.)`}</p>`,
  watch: { label: '▶ Watch the read', until: (app, { l }) => !!answer(app, 'get x', l), max: 600e3 },
};

// ---------------------------------------------------------------------------
// Joint consensus: replacing voters through a joint configuration
// ---------------------------------------------------------------------------

const conf = (app) => JSON.parse(c(app).config());

// A new learner (the next id) joins and holds every committed entry.
function addLearner(app) {
  app.act({ op: 'add_node', voter: false });
  const id = c(app).node_count();
  until(app, () => {
    const l = c(app).leader();
    return l !== 0 && conf(app)?.committed && c(app).last_index(id) >= c(app).commit(l);
  }, 3e6);
  return id;
}

export const joint = [
  {
    title: '1. Two learners catch up',
    fresh: { nodes: 3, seed: 2 },
    build(app) {
      const l = leader(app);
      // A leader takes a change only once it has committed an entry of its term.
      until(app, () => c(app).commit(l) >= 1 && c(app).commit(l) >= c(app).last_index(l), 2e6);
      put(app, l, 'x', '1');
      until(app, () => everywhere(app, 'x', '1'), 2e6);
      const a = addLearner(app);
      const b = addLearner(app);
      return { l, a, b };
    },
    text: ({ l, a, b }) => `<p>Three voters, led by node ${l}. We want to move the cluster to other machines: add nodes
      ${a} and ${b} and retire one of the old ones.</p>
      <p>A new node starts with an empty log. Made a voter at once, it would count towards every majority while it
      cannot yet store anything — a cluster of five whose new two lag behind needs all three old ones. So nodes ${a} and
      ${b} joined as ${term('learner', 'learners')} (on the bench below the ring, dashed): they receive the log but never
      vote. Both have caught up: they hold every committed entry, <code>x=1</code> included.</p>`,
  },
  {
    title: '2. The joint configuration',
    build(app, { l, a, b }) {
      const gone = others(app, l, a, b)[0];
      app.act({ op: 'isolate', node: a });
      app.act({ op: 'isolate', node: b });
      app.act({ op: 'joint', add: [a, b], remove: [gone] });
      run(app, 50e3);
      const cf = conf(app);
      const [p, q] = cf.voters.filter((id) => id !== a && id !== b);
      return { gone, old: cf.outgoing, now: cf.voters, p, q };
    },
    text: ({ l, a, b, gone, old, now, p, q }) => `<p>Node ${l} proposed one change — make ${a} and ${b} voters, remove
      node ${gone} — as a ${term('joint consensus', 'joint configuration')}. It is in force on each node as soon as the
      node has the entry: there are now two rings of voters, the old ones <b>{${old.join(', ')}}</b> (inner, dashed) and
      the new ones <b>{${now.join(', ')}}</b> (outer). Every election and every commit needs a majority of <i>each</i>:
      ${Math.floor(old.length / 2) + 1} of the old and ${Math.floor(now.length / 2) + 1} of the new.</p>
      <p>Why both? Switching straight from old to new, some nodes would count by the old rules and some by the new, and
      the two majorities need not meet: old voters {${gone}, ${p}} are a majority of the old configuration, and
      {${q}, ${a}, ${b}} one of the new — no node in common, so each could elect its own leader in the same term. A
      decision that needs both majorities always shares a node with any other.</p>
      <p>We cut nodes ${a} and ${b} off just before. The old voters all have the entry — under the old rules it would be
      committed — but only 2 of the 4 new voters do, so it waits. ▶ Watch: nothing commits, and after an election timeout
      node ${l} steps down, since it cannot hear from a majority of the new voters.</p>`,
    watch: { label: '▶ Watch it wait', until: (app, { l }) => c(app).role(l) !== 'leader', max: 2e6 },
  },
  {
    title: '3. Both majorities: the change completes',
    build(app, { a, b }) {
      app.act({ op: 'rejoin', node: a });
      app.act({ op: 'rejoin', node: b });
      return {};
    },
    text: ({ a, b, gone, now }) => `<p>Nodes ${a} and ${b} are back. A candidate now needs votes from a majority of the
      old voters and of the new ones, and can get both. The new leader replicates the joint entry to a majority of each
      half, which commits it; then it appends the entry that leaves the joint configuration on its own.</p>
      <p>▶ Watch: once that commits, the voters are {${now.join(', ')}} alone; node ${gone} is no longer a member (faded,
      on the bench) and could be switched off. At no moment could the old and the new voters have decided apart.</p>`,
    watch: {
      label: '▶ Watch the change complete',
      until: (app) => { const cf = conf(app); return !!cf && !cf.joint && cf.committed && c(app).leader() !== 0; },
      max: 4e6,
    },
  },
];

export const SCENARIOS = [
  { id: 'leader-crash', title: 'Leader crash and re-election', blurb: 'The leader dies; the others notice its silence and elect a new one in a higher term.', steps: [leaderCrash] },
  { id: 'split-vote', title: 'Split vote', blurb: 'Two nodes time out together and split the votes; randomised timeouts break the tie.', steps: [splitVote] },
  { id: 'minority', title: 'Minority partition', blurb: 'The leader is cut off with one follower: it cannot commit, its reads fail, and the majority moves on.', steps: [minority] },
  { id: 'figure8', title: "The paper's Figure 8", blurb: 'Why a leader never commits an old-term entry by counting replicas — and, with Break it, what goes wrong if it does.', steps: figure8 },
  { id: 'catch-up', title: 'A follower far behind catches up', blurb: 'The leader compacted its log into a snapshot, so it sends InstallSnapshot instead of entries.', steps: [catchUp] },
  { id: 'retry', title: 'Duplicate client retry suppressed', blurb: 'A write whose answer was lost is retried with the same seq; the session answers it without applying it twice.', steps: [retry] },
  { id: 'joint', title: 'Joint consensus', blurb: 'Two learners catch up, then one change adds them and retires an old voter; for a while both the old and the new voters must each give a majority.', steps: joint },
  { id: 'stale-read', title: 'A read at a deposed leader', blurb: 'A leader cut off still believes it leads; a linearizable read there waits instead of answering stale data.', steps: [staleRead] },
];
