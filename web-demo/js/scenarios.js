// One-click scenarios. Each builds a fresh cluster, drives it (fast) to the
// interesting moment with ordinary actions — so the trace, the time slider and
// shared links work as for any run — and explains what to watch.

import { $, esc } from './util.js';
import { setSpeed, showTab } from './controls.js';

const c = (app) => app.cluster;

// Runs the simulation in 5 ms slices until pred() holds or max_us passes.
function until(app, pred, maxUs = 5e6) {
  const end = c(app).now() + maxUs;
  while (!pred() && c(app).now() < end) c(app).advance(5000);
  app.refresh();
  return pred();
}

function leader(app) {
  const l = c(app).run_until_leader(10e6);
  app.refresh();
  return l;
}

const others = (app, ...not) => Array.from({ length: app.options.nodes }, (_, i) => i + 1).filter((i) => !not.includes(i));
const put = (app, node, key, value) => app.act({ op: 'client', node, req: { kind: 'put', key, value } });

function explain(app, html, next) {
  const box = $('#scenario-text');
  box.innerHTML = html + (next ? ' <div class="row"><button id="scenario-next">Next step ▸</button></div>' : '');
  if (next) $('#scenario-next').onclick = () => next();
  showTab('scenarios');
}

function start(app, options, speed = 1.3) {
  app.setPlaying(false);
  app.reset(options);
  setSpeed(app, speed);
}

export const SCENARIOS = [
  {
    id: 'leader-crash',
    title: 'Leader crash and re-election',
    blurb: 'The leader dies; the others notice its silence and elect a new one in a higher term.',
    run(app) {
      start(app, { nodes: 5, seed: 1 });
      const l = leader(app);
      put(app, l, 'x', '1');
      c(app).advance(300e3);
      const term = c(app).term(l);
      app.act({ op: 'crash', node: l });
      explain(app, `Node ${l} led term ${term} and committed <code>x=1</code>; it has just crashed, losing everything
        but its disk. The followers stop hearing heartbeats: watch their election-timer arcs fill. The first to run
        out asks for a pre-vote, then starts an election for term ${term + 1}; the others vote for it because its log is
        as up to date as theirs. Then restart node ${l} (select it, press <kbd>r</kbd>): it replays its journal and
        rejoins as a follower.`);
      app.setPlaying(true);
    },
  },
  {
    id: 'split-vote',
    title: 'Split vote',
    blurb: 'Two nodes time out together and split the votes; nobody wins, and randomised timeouts break the tie.',
    run(app) {
      // Find a seed (deterministically: the first one) whose first election splits.
      let seed = 0;
      for (let s = 1; s <= 400 && !seed; s++) {
        const t = new app.mod.Cluster(JSON.stringify({ ...app.defaults, nodes: 4, seed: s }));
        const l = t.run_until_leader(10e6);
        if (l && t.term(l) >= 2) seed = s;
        t.free();
      }
      start(app, { nodes: 4, seed: seed || 1 }, 1.6);
      explain(app, `Seed ${seed}: with 4 nodes a candidate needs 3 votes. Two nodes' timers run out within a few
        milliseconds of each other; both pass the pre-vote and start an election for term 1, and each collects two votes
        (green dots) — a split. Nobody wins term 1. Their timeouts are drawn again at random, one runs out first, and
        that node wins term 2. Watch the event feed.`);
      app.setPlaying(true);
    },
  },
  {
    id: 'minority',
    title: 'Minority partition',
    blurb: 'The leader is cut off with one follower: it cannot commit, its reads fail, and the majority moves on.',
    run(app) {
      start(app, { nodes: 5, seed: 3 });
      const l = leader(app);
      put(app, l, 'x', '1');
      c(app).advance(300e3);
      const buddy = others(app, l)[0];
      app.act({ op: 'partition', side: [l, buddy] });
      put(app, l, 'x', '2');
      app.act({ op: 'client', node: l, req: { kind: 'get', key: 'x' } });
      explain(app, `Node ${l}, the leader, is on the small side of a split with node ${buddy}. It appended
        <code>x=2</code> but can reach only 2 of 5 nodes, so that entry stays uncommitted (faded in the log). The read
        sent to it cannot be confirmed by a majority, so it fails instead of returning possibly stale data, and after an
        election timeout without a majority node ${l} steps down. The other three elect a leader in a higher term.
        Press <b>Heal all</b> (<kbd>h</kbd>): node ${l} learns the new term and drops its uncommitted entry.`);
      app.setPlaying(true);
    },
  },
  {
    id: 'figure8',
    title: "The paper's Figure 8",
    blurb: 'Why a leader never commits an old-term entry by counting replicas: a four-step replay.',
    run(app) {
      start(app, { nodes: 5, seed: 8 }, 1.6);
      const a = leader(app);
      const [b, ...rest] = others(app, a);
      put(app, a, 'w', '0'); // opens the client's session first
      c(app).advance(300e3);
      for (const x of rest) app.act({ op: 'cut', from: a, to: x });
      put(app, a, 'x', '1');
      const idx = c(app).last_index(a);
      until(app, () => c(app).last_index(b) >= idx, 1e6);
      app.act({ op: 'crash', node: a });
      const t1 = c(app).term(b);
      explain(app, `<b>1.</b> Node ${a} led term ${t1} and appended <code>x=1</code> at index ${idx}. Only node ${b}
        got it (${a}'s other links were cut one way), so it is on 2 of 5 nodes: not committed. Then node ${a} crashed.`,
      () => step2(app, { a, b, rest, idx, t1 }));
    },
  },
  {
    id: 'catch-up',
    title: 'A follower far behind catches up',
    blurb: 'The leader compacted its log into a snapshot, so it sends InstallSnapshot instead of entries.',
    run(app) {
      start(app, { nodes: 5, seed: 4, snapshot_chunk_bytes: 96 });
      const l = leader(app);
      const f = others(app, l)[0];
      app.act({ op: 'crash', node: f });
      for (let i = 1; i <= 24; i++) {
        put(app, l, `k${i}`, `v${i}`);
        c(app).advance(20e3);
      }
      c(app).advance(300e3);
      app.act({ op: 'snapshot', node: l });
      c(app).advance(100e3);
      app.act({ op: 'restart', node: f });
      explain(app, `Node ${f} was down while the leader, node ${l}, committed 24 writes, and then node ${l} took a
        snapshot and dropped the log entries it covers (hatched cells). Node ${f} has just restarted far behind. The
        leader backs off to the start of its log, finds the entries gone, and streams its snapshot in chunks
        (orange InstallSnapshot messages). Node ${f} installs it — see its key-value state fill in at once — and then
        receives newer entries by AppendEntries.`);
      app.setPlaying(true);
    },
  },
  {
    id: 'retry',
    title: 'Duplicate client retry suppressed',
    blurb: 'A write whose answer was lost is retried with the same seq; the session answers it without applying it twice.',
    run(app) {
      start(app, { nodes: 5, seed: 5 });
      const l = leader(app);
      app.act({ op: 'client', node: l, req: { kind: 'put', key: 'warmup', value: 'session' } });
      c(app).advance(300e3);
      app.act({ op: 'client', node: l, req: { kind: 'append', key: 'k', value: 'a' } });
      const idx = c(app).last_index(l);
      until(app, () => others(app, l).filter((f) => c(app).last_index(f) >= idx).length >= 3, 1e6);
      app.act({ op: 'crash', node: l });
      const l2 = (() => { until(app, () => { const x = c(app).leader(); return x && x !== l; }, 5e6); return c(app).leader(); })();
      c(app).advance(200e3);
      app.act({ op: 'retry', seq: 2, node: l2 });
      explain(app, `The client appended <code>"a"</code> to <code>k</code> (session write seq 2) at node ${l}, which
        replicated it and crashed before the client heard back. Not knowing whether it happened, the client retried
        the same write — same session, same seq — at the new leader, node ${l2}. The entry had committed, so the retry
        is a second log entry with the same (session, seq): the session table sees seq 2 was applied already and
        answers with the cached reply. <code>k</code> is <code>"a"</code> on every node, not <code>"aa"</code>.`);
      app.setPlaying(true);
    },
  },
];

function step2(app, s) {
  app.act({ op: 'isolate', node: s.b });
  const before = new Set([s.a, s.b]);
  until(app, () => { const l = c(app).leader(); return l && !before.has(l); }, 5e6);
  const cn = c(app).leader();
  // Its first entries must reach nobody: cut it off and drop what it already sent.
  app.act({ op: 'isolate', node: cn });
  for (const m of app.state.messages) if (m.from === cn) app.act({ op: 'drop', id: m.id });
  put(app, cn, 'x', '2');
  c(app).advance(50e3);
  app.act({ op: 'crash', node: cn });
  const t2 = c(app).term(others(app, s.a, s.b, cn)[0]);
  explain(app, `<b>2.</b> With node ${s.b} cut off, node ${cn} won term ${t2} with the votes of the nodes that lack
    <code>x=1</code>. Its no-op and <code>x=2</code> reached nobody before it crashed too.`,
  () => step3(app, { ...s, cn, t2 }));
}

function step3(app, s) {
  app.act({ op: 'heal' });
  app.act({ op: 'restart', node: s.a });
  until(app, () => { const l = c(app).leader(); return l && (l === s.a || l === s.b); }, 10e6);
  const l = c(app).leader();
  const t3 = c(app).term(l);
  c(app).advance(30e3);
  explain(app, `<b>3.</b> Node ${s.a} is back and node ${l} won term ${t3} (its log ends with a term-${s.t1} entry,
    newer than what the others hold). In the paper, the leader now copies <code>x=1</code> (term ${s.t1}) to a
    majority and might count it as committed — and then node ${s.cn}, whose log ends in term ${s.t2}, could still
    win an election and overwrite it. Here a new leader first appends a no-op of its own term ${t3}, and an entry
    is committed only when an entry of the current term is on a majority: <code>x=1</code> commits together with
    that no-op. Press play and watch index ${s.idx} turn solid.`,
  () => step4(app, { ...s, l, t3 }));
  app.setPlaying(true);
}

function step4(app, s) {
  app.setPlaying(false);
  app.act({ op: 'restart', node: s.cn });
  app.act({ op: 'timeout', node: s.cn });
  explain(app, `<b>4.</b> Node ${s.cn} restarted and times out at once. Its last entry is from term ${s.t2}, older
    than the term-${s.t3} entries a majority now holds, so it cannot collect a majority of votes: <code>x=1</code>
    stays committed, and node ${s.cn}'s never-committed <code>x=2</code> is overwritten once it follows the leader.
    Figure 8's danger cannot happen.`);
  app.setPlaying(true);
}

export function initScenarios(app) {
  $('#scenario-list').innerHTML = SCENARIOS.map((s) =>
    `<li><button data-scenario="${s.id}">Run</button><div><b>${esc(s.title)}</b><div class="d">${esc(s.blurb)}</div></div></li>`).join('');
  $('#scenario-list').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-scenario]');
    if (b) runScenario(app, b.dataset.scenario);
  });
}

export function runScenario(app, id) {
  const s = SCENARIOS.find((x) => x.id === id);
  if (s) s.run(app);
}
