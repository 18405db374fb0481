// The guided tour: thirteen steps from "what is a leader" to linearizable
// reads, each on the real engine, paused at the moment its text describes.
// Steps 1–9 follow one cluster (each step goes on from where the previous
// one's "Watch" ends); the last four start clusters of their own, built by
// the scenarios' builders.

import { c, ids, others, until, run, leader, put, everywhere } from './drive.js';
import { term } from './glossary.js';
import { FIG8, fig8a, fig8b, fig8c, catchUp, retry, staleRead } from './scenarios.js';

const CLUSTER = { nodes: 5, seed: 2 };
const withRole = (app, r) => ids(app).filter((id) => c(app).role(id) === r);

const steps = [
  {
    title: 'Five servers, one key-value store',
    fresh: CLUSTER,
    build: () => ({}),
    text: () => `<p>This is raftkv's Raft engine — the same code the server runs — simulating a cluster of five
      nodes in this tab. Together they keep one key-value store that stays correct while a minority of them crash or
      lose touch.</p>
      <p>Every node starts as a ${term('follower')} (grey) in ${term('term')} 0 with an empty log. The arc around a node
      is its ${term('election timer')}, counting ${term('tick', 'ticks')} since it last heard from a leader. There is no
      leader yet, so the arcs fill up; each node drew its timeout at random, so one runs out first.</p>
      <p><b>Continue</b> moves on; <b>▶ Watch</b> plays the step at the chosen speed until the thing it describes has
      happened. The cluster waits for you at every step; the controls above work at any time.</p>`,
    watch: { label: '▶ Watch the timers', until: (app) => withRole(app, 'pre-candidate').length > 0, max: 1e6 },
  },
  {
    title: 'A timer runs out: the pre-vote',
    build(app) {
      until(app, () => c(app).in_flight('PreVote', 0) > 0, 1e6);
      return { p: withRole(app, 'pre-candidate')[0] };
    },
    text: ({ p }) => `<p>Node ${p}'s timer ran out first. It becomes a ${term('pre-candidate')} (yellow) and asks every
      other node “could I win an election?” — the pink PreVote dots.</p>
      <p>A pre-vote changes nobody's term or vote. A node says yes only if the asker's log is at least as up to date as
      its own and it has not heard from a leader lately. So a node that was cut off and comes back cannot disturb a
      working cluster by raising the term.</p>`,
    watch: { label: '▶ Watch the answers', until: (app, { p }) => c(app).role(p) === 'candidate' || c(app).leader() !== 0, max: 1e6 },
  },
  {
    title: 'The election',
    build(app, { p }) {
      until(app, () => c(app).in_flight('Vote', 0) > 0, 1e6);
      const cand = withRole(app, 'candidate')[0] || p;
      return { cand, t: c(app).term(cand) };
    },
    text: ({ cand, t }) => `<p>A majority said yes (light pink diamonds), so node ${cand} is a ${term('candidate')}
      (orange): it raised its term to ${t}, voted for itself — writing that vote to its journal before anything else —
      and asks for votes (violet dots).</p>
      <p>A node grants at most one vote per term, to the first candidate that asks, and only if the candidate's log is
      at least as up to date as its own. Votes from a majority (3 of 5) make a leader. The dots on the candidate's ring
      are the answers so far: green granted, red refused.</p>`,
    watch: { label: '▶ Watch the votes', until: (app) => c(app).leader() !== 0, max: 1e6 },
  },
  {
    title: 'A leader',
    build(app) {
      const l = leader(app, 2e6);
      until(app, () => c(app).in_flight('Heartbeat', l) > 0, 1e6);
      return { l, t: c(app).term(l) };
    },
    text: ({ l, t }) => `<p>Node ${l} has a majority: it is the ${term('leader')} of term ${t} (green ★). Clients talk to
      it from now on.</p>
      <p>It speaks to the others with AppendEntries. When it has nothing to send it still sends empty ones — heartbeats,
      the cyan dots — every 5 ticks. Each heartbeat resets a follower's election timer, so while they keep arriving
      nobody else campaigns. The ring around a node is coloured by its term.</p>`,
    watch: { label: '▶ Watch the heartbeats', until: () => false, max: 200e3 },
  },
  {
    title: 'A client writes',
    build(app, { l }) {
      put(app, l, 'x', '1');
      until(app, () => c(app).in_flight('Append', l) > 0, 1e6);
      return {};
    },
    text: ({ l }) => `<p>A client (top left) sent <code>put x=1</code> to node ${l}. Its first write opens a
      ${term('session')} — one log entry, “open” — so that a retry can be recognised later; the write itself follows.</p>
      <p>The leader appends each request to its log — in the Logs table below, each cell shows an entry's term and
      command, faded while it is not committed — and sends it to every follower in AppendEntries (dark blue dots).
      A follower writes it to its journal and answers (light blue diamonds).</p>`,
    watch: { label: '▶ Watch it replicate', until: (app, { l }) => c(app).value(l, 'x') === '1', max: 1e6 },
  },
  {
    title: 'Committed',
    build(app, { l }) {
      until(app, () => c(app).value(l, 'x') === '1', 1e6);
      return { ci: c(app).commit(l) };
    },
    text: ({ ci }) => `<p>A majority of the nodes stores <code>x=1</code>, so the leader marks it
      ${term('commit', 'committed')}: its ${term('commit index')} is ${ci} (the label under it reads “commit ${ci}”, and ▌
      marks it in its row). It applies the entry to its key-value store and answers the client “ok”.</p>
      <p>A committed entry is never lost: every majority includes a node that has it, and no node is elected without
      it. The followers learn the new commit index from the next AppendEntries, and apply the entry too.</p>`,
    watch: { label: '▶ Watch the followers apply it', until: (app) => everywhere(app, 'x', '1'), max: 500e3 },
  },
  {
    title: 'The leader crashes',
    build(app, { l }) {
      app.act({ op: 'crash', node: l });
      return {};
    },
    text: ({ l }) => `<p>Node ${l} crashed. Its memory — role, commit index, key-value store — is gone; its disk (the
      ${term('journal')}) is kept.</p>
      <p>The followers stop hearing heartbeats, their timers fill, and one of them goes through the pre-vote and an
      election for a new term. It needs votes from a majority, and a voter refuses a candidate whose log is behind its
      own: so whoever wins has <code>x=1</code>.</p>`,
    watch: { label: '▶ Watch the new election', until: (app, { l }) => ![0, l].includes(c(app).leader()), max: 3e6 },
  },
  {
    title: 'A network partition',
    build(app, { l }) {
      const l2 = leader(app, 3e6);
      app.act({ op: 'restart', node: l });
      run(app, 300e3);
      const buddy = others(app, l2, l)[0];
      app.act({ op: 'partition', side: [l2, buddy] });
      put(app, l2, 'x', '2');
      run(app, 5e3);
      return { l2, buddy, t2: c(app).term(l2) };
    },
    text: ({ l, l2, buddy, t2 }) => `<p>Node ${l2} won term ${t2}, and node ${l} came back: it replayed its journal and
      follows the new leader.</p>
      <p>Now the network split: node ${l2}, the leader, and node ${buddy} reach only each other. Node ${l2} accepted
      <code>x=2</code> and appended it, but only 2 of 5 nodes store it, so it stays uncommitted (faded). The three on
      the other side stop hearing from a leader and elect one of their own, in a higher term.</p>`,
    watch: { label: '▶ Watch the majority', until: (app, { l2, buddy }) => ![0, l2, buddy].includes(c(app).leader()), max: 3e6 },
  },
  {
    title: 'Healing',
    build(app, { l2, buddy }) {
      until(app, () => ![0, l2, buddy].includes(c(app).leader()), 3e6);
      const l3 = c(app).leader();
      app.act({ op: 'heal' });
      until(app, () => c(app).role(l2) === 'follower' && c(app).term(l2) >= c(app).term(l3), 1e6);
      return { l3, t3: c(app).term(l3) };
    },
    text: ({ l2, l3, t3 }) => `<p>The majority elected node ${l3} (term ${t3}), and the network has healed. Node ${l2}
      hears the higher term and steps down (CheckQuorum would have made it step down by itself after an election
      timeout without a majority).</p>
      <p>Its uncommitted <code>x=2</code> conflicts with the new leader's log, so it is dropped and replaced — see
      “dropped its conflicting entries” in the event feed. Nothing committed was lost: the client never heard “ok” for
      <code>x=2</code>; it was told the outcome is unknown and may retry with the same seq.</p>`,
    watch: { label: '▶ Watch it catch up', until: () => false, max: 400e3 },
  },
  {
    title: 'Figure 8: why an old entry waits',
    fresh: FIG8,
    build(app) {
      const a = fig8a(app);
      const b = fig8b(app, a);
      return { ...a, ...b, ...fig8c(app, { ...a, ...b }) };
    },
    text: ({ i, t1, t2, l, t3, holders }) => `<p>A new cluster replays the Raft paper's Figure 8 (entries travel one per
      message here, without PreVote). In term ${t1}, node 1 wrote X (<code>x=1</code>) at index ${i}, but only node 2
      got it before node 1 crashed. Node 5 then won term ${t2} with nodes 3 and 4, wrote a different entry at index ${i}
      that reached nobody, and crashed too.</p>
      <p>Now node ${l} leads term ${t3} and X is on nodes ${holders.join(', ')} — a majority. Yet X is not committed:
      it is from term ${t1}, and node 5, whose entry at ${i} is from the newer term ${t2}, could still win with nodes 3
      and 4 and overwrite it. So a leader commits an old entry only together with one of its own term — here its no-op
      at index ${i + 1}.</p>
      <p>The Figure 8 scenario (Scenarios tab) plays this to the end; with <b>Break it</b> → “commit old-term entries by
      counting” on, it shows the loss.</p>`,
    watch: { label: '▶ Watch the commit', until: (app, { l, i }) => c(app).commit(l) >= i, max: 1e6 },
  },
  { ...catchUp, title: 'Snapshots' },
  { ...retry, title: 'Sessions: a retry is applied once' },
  {
    ...staleRead,
    title: 'Linearizable reads',
    text: (ctx, app) => `${staleRead.text(ctx, app)}
      <p><b>That is the tour.</b> Now try it yourself: press ▶ Play, select the leader (★) and press <kbd>c</kbd> to crash
      it; click a link to cut it; send writes from the Client tab. The Scenarios tab has more set pieces; <b>Break
      it</b> switches on deliberate bugs; <b>Test mode</b> runs many random seeds through the linearizability
      checker.</p>`,
  },
];

export const TOUR = { id: 'tour', title: 'Tour', steps };
