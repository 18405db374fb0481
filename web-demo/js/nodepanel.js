// The Node tab: the selected node's state, its buttons (membership ones
// included), the configuration, the leader's view of replication, its
// key-value state, sessions and the tail of its journal.

import { $, esc } from './util.js';
import { ROLE_COLORS, ROLE_INK } from './palette.js';
import { term } from './glossary.js';

export function drawNodePanel(app, s, cache) {
  const n = s.nodes[app.selected - 1];
  if (!n) return;
  const sig = JSON.stringify([n, s.down.length, s.tick_us, s.config, s.leader, s.nodes.length]);
  if (sig === cache.node) return;
  cache.node = sig;
  const dd = (k, v) => `<dt>${k}</dt><dd>${v ?? '–'}</dd>`;
  const j = n.journal;
  const journal = j.tail.slice().reverse().map((r) =>
    `<li class="${r.durable ? '' : 'unsynced'}" title="${r.durable ? 'synced' : 'written, not yet synced: a crash may lose it'}"><span class="seq">${r.seq || 'ckpt'}</span>${esc(r.kind)}: ${esc(r.text)}</li>`).join('');
  const kv = n.kv.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('');
  const sessions = n.sessions.map((x) => `<tr><td>session ${x.id}</td><td>ack ${x.ack}, ${x.cached} cached repl${x.cached === 1 ? 'y' : 'ies'}</td></tr>`).join('');
  const progress = n.progress.map((p) => `<tr><td>node ${p.id}</td><td>match ${p.match}, next ${p.next}, ${term(p.state)}</td></tr>`).join('');
  const tickMs = s.tick_us / 1000;
  const timer = n.up && n.role !== 'leader'
    ? `${n.timer[0]} of ${n.timer[1]} ${term('tick', 'ticks')} (${n.timer[0] * tickMs} of ${n.timer[1] * tickMs} ms)` : '–';
  $('#tab-node').innerHTML = `<div class="nodeinfo">
    <div class="title">Node ${n.id} <span class="pill" style="background:${ROLE_COLORS[n.role]};color:${ROLE_INK[n.role]}">${n.role}</span>
      ${n.isolated ? '<span class="pill" style="background:#d92d20;color:#fff">isolated</span>' : ''}
      <span class="hint">${term(n.role, 'what is a ' + n.role + '?')}</span></div>
    <div class="row">
      ${n.up ? '<button data-do="crash" class="danger" title="c">Crash</button>' : '<button data-do="restart" title="r">Restart</button>'}
      <button data-do="timeout" ${n.up && n.role !== 'leader' ? '' : 'disabled'} title="t">Time out</button>
      <button data-do="snapshot" ${n.up ? '' : 'disabled'}>Snapshot</button>
      <button data-do="${n.isolated ? 'rejoin' : 'isolate'}" title="i">${n.isolated ? 'Rejoin' : 'Isolate'}</button>
    </div>
    ${membershipRow(n, s)}
    ${configLines(n, s)}
    <dl>${dd(term('term'), n.term)}${dd('voted for', n.voted_for)}${dd('leader', n.leader)}${dd('log', `${n.first}…${n.last}`)}
      ${dd(term('commit index', 'commit'), n.up ? n.commit : '–')}${dd('applied', n.up ? n.applied : '–')}${dd('durable', n.durable)}${dd('snapshot', n.snapshot || '–')}
      ${dd('held msgs', n.held)}</dl>
    <div class="hint">${term('election timer')}: ${timer}</div>
    ${n.up ? '' : `<p class="hint">Crashed: only its disk is left. Its log in the table is what the journal holds; a restart replays it.${n.disk && n.disk.error ? ' Damaged: ' + esc(n.disk.error) : ''}</p>`}
    ${progress ? `<h3>Replication (the leader's view)</h3><table class="kv">${progress}</table>` : ''}
    <h3>Key-value state (${n.keys} keys)</h3>${kv ? `<table class="kv">${kv}</table>` : '<span class="hint">empty</span>'}
    ${sessions ? `<h3>${term('session', 'Sessions')} (${n.session_count})</h3><table class="kv">${sessions}</table>` : ''}
    <h3>${term('journal', 'Journal')}: ${j.records} records, ${j.bytes} bytes, ${j.segments} segment(s)${j.unsynced_bytes ? `, ${j.unsynced_bytes} bytes unsynced` : ''}</h3>
    ${j.snapshots.length ? `<div class="hint">snapshot files: ${j.snapshots.join(', ')}</div>` : ''}
    <ul class="list journal">${journal}</ul>
    <div class="row"><button data-do="journal">Show the whole journal</button></div>
  </div>`;
}

const ids = (v) => (v.length ? v.join(', ') : 'none');

// The membership buttons for this node, and those that add a node.
function membershipRow(n, s) {
  const m = n.member;
  const voter = m === 'voter' || m === 'incoming' || m === 'outgoing';
  const b = (what, label, title, on = true) => `<button data-do="${what}" title="${title}" ${on ? '' : 'disabled'}>${label}</button>`;
  const buttons = [];
  if (m === 'learner') {
    buttons.push(b('promote', 'Promote to voter', 'Propose making this learner a voter (refused while it lags the leader)'));
  }
  if (voter && n.unbound) {
    buttons.push(b('promote', 'Readmit', 'Bind the configuration to this node\'s new disk (a joint change), so it may vote again'));
  }
  if (voter) {
    buttons.push(b('transfer', 'Transfer leadership here', 'Ask the leader to hand leadership to this node', n.up && n.role !== 'leader'));
  }
  if (m === 'none') buttons.push(b('add_learner', 'Add as learner', 'Propose this node back into the cluster as a learner'));
  else buttons.push(b('remove', 'Remove', 'Propose removing this node from the configuration'));
  buttons.push(b('wipe', 'Wipe disk', 'Replace its disk by an empty one and restart it: a new storage identity'));
  const full = s.nodes.length >= 9;
  return `<div class="row membership">${buttons.join('')}</div>
    <div class="row membership">cluster:
      ${b('add_node', 'Add node', 'A new node joins as a learner and is promoted once it has caught up', !full)}
      ${b('add_node_learner', 'Add learner', 'A new node joins as a learner and stays one', !full)}</div>`;
}

// The cluster's configuration, and this node's own if it differs.
function configLines(n, s) {
  const c = s.config;
  if (!c) return '';
  const show = (x) => (x.joint
    ? `joint: old voters ${ids(x.outgoing)} and new voters ${ids(x.voters)} must each give a majority`
    : `voters ${ids(x.voters)}`)
    + (x.learners.length || x.learners_next.length ? `; learners ${ids([...x.learners, ...x.learners_next])}` : '')
    + (x.committed ? '' : ' (not committed yet)');
  const words = { voter: 'a voter', incoming: 'a voter of the new half only (joining)', outgoing: 'a voter of the old half only (leaving)', learner: 'a learner: it gets the log, never votes', none: 'not a member' };
  let html = `<div class="hint config-line">${term('configuration', 'Configuration')} (node ${c.from}'s): ${esc(show(c))}. Node ${n.id} is ${words[n.member] || n.member}${n.lag != null && n.role !== 'leader' ? `, ${n.lag} entries behind the leader` : ''}.</div>`;
  if (n.unbound) html += `<div class="hint config-line">Its disk was wiped (incarnation ${n.inc.toString(16)}): the configuration names its old disk, so it may not vote or campaign until it is readmitted.</div>`;
  const own = n.conf;
  if (own && n.id !== c.from && show(own) !== show(c)) html += `<div class="hint config-line">Its own copy: ${esc(show(own))}.</div>`;
  return html;
}
