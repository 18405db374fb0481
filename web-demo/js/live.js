// The live view: the real nodes of a cluster started by `raftkv cluster`,
// drawn with the simulator's ring and log table (through liveadapter.js).
//
// The page reads /cluster.json from the server that served it (the
// supervisor): the nodes' URLs, their processes' states, whether controls
// are on and whether tokens are needed. It opens each node's /live stream
// (reconnecting when a node comes back), polls only the supervisor for
// process states, and sends the control buttons to the supervisor.

import { $, esc } from './util.js';
import { ROLE_COLORS } from './palette.js';
import { Ring } from './ring.js';
import { LogTable } from './logtable.js';
import { clusterState, logWindow, rateTotals, changes, STALE_MS } from './liveadapter.js';

const TOKEN_KEY = 'raftkv-live-token';
const POLL_MS = 1000;
const RETRY_MS = [500, 1000, 2000, 4000];
const FEED_MAX = 200;

const app = {
  state: null,
  selected: 1,
  info: null, // /cluster.json
  frames: new Map(), // id -> { frame, at }
  procs: new Map(), // id -> the supervisor's entry
  sockets: new Map(), // id -> { ws, tries, timer }
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  dirty: true,
  cluster: { log_window: (lo, hi) => logWindow(app.state, lo, hi) },
};

function setStatus(text, bad = false) {
  const s = $('#live-status');
  s.textContent = text;
  s.className = `live-status${bad ? ' bad' : ''}`;
}

// --- the supervisor ------------------------------------------------------

async function loadCluster() {
  let r;
  try {
    r = await fetch('/cluster.json', { cache: 'no-store' });
  } catch (e) {
    setStatus(`the supervisor does not answer (${e.message}); is raftkv cluster still running?`, true);
    return false;
  }
  const info = r.ok ? await r.json().catch(() => null) : null;
  if (!info || !Array.isArray(info.nodes) || !info.nodes.length) {
    setStatus('this page is not served by raftkv cluster: start one with `raftkv cluster` and open its live.html', true);
    return false;
  }
  app.info = info;
  for (const n of info.nodes) app.procs.set(n.id, n);
  $('#token-form').hidden = !info.auth;
  app.dirty = true;
  return true;
}

async function act(id, action) {
  const out = $('#control-result');
  out.textContent = `${action} node ${id}…`;
  const headers = app.token ? { authorization: `Bearer ${app.token}` } : {};
  let r, body;
  try {
    r = await fetch(`/api/nodes/${id}/${action}`, { method: 'POST', headers });
    body = await r.json();
  } catch (e) {
    out.textContent = `${action} node ${id}: ${e.message}`;
    return;
  }
  if (!r.ok) {
    out.textContent = `${action} node ${id} refused (${r.status}): ${body.error || ''}`;
    return;
  }
  app.procs.set(id, body);
  out.textContent = `${action} node ${id}: now ${body.state}${body.isolated ? ', isolated' : ''}`;
  // A restarted node streams again as soon as it listens.
  if (action === 'restart' || action === 'resume') reconnectSoon(id, 300);
  app.dirty = true;
}

// --- the nodes' streams ----------------------------------------------------

function connect(node) {
  const id = node.id;
  const slot = app.sockets.get(id) || { ws: null, tries: 0, timer: null };
  app.sockets.set(id, slot);
  clearTimeout(slot.timer);
  slot.timer = null;
  if (slot.ws && slot.ws.readyState <= 1) return;
  const protocols = app.token ? ['raftkv', `bearer.${app.token}`] : [];
  let ws;
  try {
    ws = new WebSocket(`${node.url}${app.info.stream || '/live'}`, protocols);
  } catch (e) {
    setStatus(`cannot open node ${id}'s stream: ${e.message}`, true);
    return;
  }
  slot.ws = ws;
  ws.onopen = () => { slot.tries = 0; };
  ws.onmessage = (ev) => {
    try {
      app.frames.set(id, { frame: JSON.parse(ev.data), at: performance.now() });
      app.dirty = true;
    } catch {
      // A frame that is not JSON is skipped; the next one replaces it.
    }
  };
  ws.onclose = () => {
    if (slot.ws !== ws) return;
    slot.ws = null;
    const wait = RETRY_MS[Math.min(slot.tries, RETRY_MS.length - 1)];
    slot.tries++;
    reconnectSoon(id, wait);
    app.dirty = true;
  };
}

function reconnectSoon(id, ms) {
  const slot = app.sockets.get(id);
  const node = app.info && app.info.nodes.find((n) => n.id === id);
  if (!slot || !node) return;
  clearTimeout(slot.timer);
  slot.timer = setTimeout(() => connect(node), ms);
}

function connectAll() {
  for (const n of app.info.nodes) {
    const slot = app.sockets.get(n.id);
    if (slot && slot.ws) slot.ws.close();
    if (slot) slot.ws = null;
    connect(n);
  }
}

// --- drawing ---------------------------------------------------------------

function buttons(n, controls) {
  if (!controls) return '';
  const b = (action, label, title, disabled = false, cls = '') =>
    `<button data-act="${action}" data-node="${n.id}" title="${esc(title)}"${disabled ? ' disabled' : ''}${cls ? ` class="${cls}"` : ''}>${label}</button>`;
  const down = n.proc === 'down';
  return [
    b('crash', 'crash', 'kill -9 the process', down, 'danger'),
    b('restart', 'restart', 'start the process again (killing it first if it runs)'),
    n.proc === 'paused' ? b('resume', 'resume', 'SIGCONT') : b('pause', 'pause', 'SIGSTOP: freeze the process', down),
    n.isolated ? b('rejoin', 'rejoin', 'let its messages through again') : b('isolate', 'isolate', 'drop every message to and from its peers'),
  ].join('');
}

function drawNodes(s) {
  const controls = !!(app.info && app.info.controls);
  let h = '<tr><th>node</th><th title="its role while it streams; otherwise its process: down, paused or silent">state</th>'
    + '<th>term</th><th title="commit / applied / last">c/a/l</th>'
    + '<th title="messages a second, sent / received">msg/s</th>'
    + '<th title="journal records written a second / fsyncs a second">jrnl/s</th></tr>';
  for (const n of s.nodes) {
    const r = rateTotals(n.msgs);
    const proc = n.proc === 'running' && n.stale ? 'silent' : n.proc;
    // One column for both: a streaming node's role, or what its process is.
    const state = n.up ? n.role : proc;
    h += `<tr class="${n.id === app.selected ? 'sel' : ''}" data-row="${n.id}"><td>${n.role === 'leader' ? '★' : ''}${n.id}</td>`
      + `<td data-role="${n.id}" style="color:${n.up ? ROLE_COLORS[n.role] || '#888' : '#888'}">${esc(state)}${n.isolated ? ' · isolated' : ''}</td>`
      // <wbr> after each slash: long numbers wrap there instead of
      // pushing the table out of its panel.
      + `<td class="n">${n.term}</td><td class="n">${n.commit}/<wbr>${n.applied}/<wbr>${n.last}</td>`
      + `<td class="n" data-rate="${n.id}">${n.up ? `${r.sent}/<wbr>${r.received}` : '–'}</td>`
      + `<td class="n" data-journal-rate="${n.id}">${n.up && n.journal ? `${n.journal.records_per_s}/<wbr>${n.journal.syncs_per_s}` : '–'}</td></tr>`;
    if (controls) h += `<tr class="${n.id === app.selected ? 'sel' : ''}"><td></td><td colspan="5"><div class="controls-row">${buttons(n, controls)}</div></td></tr>`;
  }
  $('#live-nodes').innerHTML = h;
  if (app.info && !app.info.controls) {
    $('#control-result').textContent = `controls off: ${app.info.controls_off_because || 'not a local cluster'}`;
  }
}

function ratesTable(m) {
  const kinds = [...new Set([...Object.keys(m.sent_total || {}), ...Object.keys(m.received_total || {})])];
  if (!kinds.length) return '<div class="hint">no messages yet</div>';
  let h = '<table class="rates"><tr><th>message</th><th title="sent a second">out/s</th><th title="received a second">in/s</th>'
    + '<th title="sent since the node started">out</th><th title="received since the node started">in</th></tr>';
  for (const k of kinds) {
    h += `<tr><td>${esc(k)}</td><td class="n">${m.sent[k] ?? 0}</td><td class="n">${m.received[k] ?? 0}</td>`
      + `<td class="n">${m.sent_total[k] ?? 0}</td><td class="n">${m.received_total[k] ?? 0}</td></tr>`;
  }
  return `${h}</table>`;
}

// The journal's part of a node's details: what it wrote and synced.
function journalTable(j) {
  if (!j) return '<div class="hint">no journal figures yet</div>';
  const kib = (b) => `${(b / 1024).toFixed(b < 10240 ? 1 : 0)} KiB`;
  const rows = [
    ['records', j.records_per_s, j.records],
    ['bytes', kib(j.bytes_per_s), kib(j.bytes)],
    ['fsyncs', j.syncs_per_s, j.syncs],
  ];
  const group = j.syncs_per_s ? ` · ${(j.records_per_s / j.syncs_per_s).toFixed(1)} records per fsync (group commit)` : '';
  return '<table class="rates" id="journal-detail"><tr><th>journal</th><th>a second</th><th>since start</th></tr>'
    + rows.map(([k, a, b]) => `<tr><td>${k}</td><td class="n">${a}</td><td class="n">${b}</td></tr>`).join('')
    + `</table><div class="hint">${j.unsynced} entr${j.unsynced === 1 ? 'y' : 'ies'} not yet synced${group}</div>`;
}

function drawDetail(s) {
  const n = s.nodes.find((x) => x.id === app.selected) || s.nodes[0];
  if (!n) return;
  const rows = [
    ['process', `${n.proc}${n.isolated ? ', isolated' : ''}${n.stale && n.proc === 'running' ? ' (no frame for over 3 s)' : ''}`],
    ['role', n.role], ['term', n.term], ['leader', n.leader ?? 'none known'], ['voted for', n.voted_for ?? '–'],
    ['commit', n.commit], ['applied', n.applied], ['last', n.last], ['durable', n.durable], ['snapshot', n.snapshot],
  ];
  if (n.members) rows.push(['voters', n.members.voters.join(', ')]);
  if (n.members && n.members.learners.length) rows.push(['learners', n.members.learners.join(', ')]);
  const peers = n.progress.length
    ? `<h3>Followers (match / next)</h3><table class="rates">${n.progress.map((p) =>
      `<tr><td>node ${p.id}</td><td class="n">${p.match}</td><td class="n">${p.next}</td><td>${esc(p.state)}</td></tr>`).join('')}</table>`
    : '';
  const when = n.up ? '' : ' <span class="hint">(its last frame)</span>';
  const html = `<h2>Node ${n.id}${when}</h2>
    <table class="rates">${rows.map(([k, v]) => `<tr><td>${k}</td><td>${esc(v)}</td></tr>`).join('')}</table>
    ${peers}<h3>Messages</h3>${ratesTable(n.msgs)}<h3>Journal</h3>${journalTable(n.journal)}`;
  const box = $('#node-detail');
  if (box.dataset.html !== html) {
    box.dataset.html = html;
    box.innerHTML = html;
  }
}

function drawFeed(items) {
  if (!items.length) return;
  const feed = $('#live-feed');
  const t = new Date().toLocaleTimeString();
  for (const it of items) {
    const li = document.createElement('li');
    li.className = it.major ? 'major' : 'minor';
    li.textContent = `${t} ${it.text}`;
    feed.prepend(li);
  }
  while (feed.children.length > FEED_MAX) feed.lastChild.remove();
}

function draw() {
  if (!app.info) return;
  const ids = app.info.nodes.map((n) => n.id).sort((a, b) => a - b);
  const before = app.state;
  const s = clusterState(ids, app.frames, app.procs, performance.now());
  app.state = s;
  app.ring.draw(s);
  app.logs.draw(s);
  drawNodes(s);
  drawDetail(s);
  drawFeed(changes(before, s));
  const streaming = s.nodes.filter((n) => n.up).length;
  const leader = s.leader ? `leader: node ${s.leader}` : 'no leader';
  if (app.info.auth && !app.token) setStatus('this cluster needs a token: enter one (admin, for the buttons) in the box', true);
  else setStatus(`${streaming}/${s.nodes.length} nodes streaming · ${leader}`);
  document.body.dataset.leader = s.leader ?? '';
}

// Redraws when a frame came or a node went stale; never more than once a frame.
function loop() {
  const now = performance.now();
  const staleSoon = [...app.frames.values()].some((f) => now - f.at > STALE_MS && !f.counted);
  if (staleSoon) {
    for (const f of app.frames.values()) if (now - f.at > STALE_MS) f.counted = true;
    app.dirty = true;
  }
  if (app.dirty) {
    app.dirty = false;
    draw();
  }
  requestAnimationFrame(loop);
}

async function poll() {
  await loadCluster();
  setTimeout(poll, POLL_MS);
}

async function main() {
  app.ring = new Ring(app, $('#ring'));
  app.logs = new LogTable(app);
  $('#ring').addEventListener('click', (e) => {
    const g = e.target.closest('[data-node]');
    if (g) {
      app.selected = Number(g.dataset.node);
      app.dirty = true;
    }
  });
  $('#live-nodes').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-act]');
    if (b) {
      act(Number(b.dataset.node), b.dataset.act);
      return;
    }
    const row = e.target.closest('tr[data-row]');
    if (row) {
      app.selected = Number(row.dataset.row);
      app.dirty = true;
    }
  });
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    app.token = $('#token').value.trim();
    sessionStorage.setItem(TOKEN_KEY, app.token);
    connectAll();
  });
  window.raftkvLive = { app, act };
  if (!(await loadCluster())) {
    document.body.dataset.ready = '1';
    return;
  }
  connectAll();
  requestAnimationFrame(loop);
  setTimeout(poll, POLL_MS);
  document.body.dataset.ready = '1';
}

main();
