// Controls: transport, cluster setup, per-node actions, links and messages on
// the ring, the network and client panels, and keyboard shortcuts. Every change
// to the cluster goes through app.act, so it lands in the trace.

import { $, $$ } from './util.js';
import { writeLocation } from './trace.js';
import { endLesson, startTour } from './lessons.js';

export function speedLabel(speed) {
  return speed >= 0.999 ? 'real time' : `1/${Math.round(1 / speed)}`;
}

// v is the slider's value: simulated time runs at 10^-v of real time.
export function setSpeed(app, v) {
  const slider = $('#speed');
  slider.value = Math.max(0, Math.min(3, v));
  app.speed = 10 ** -Number(slider.value);
  $('#speed-out').textContent = speedLabel(app.speed);
}

export function showTab(name) {
  for (const b of $$('.tabs button')) b.classList.toggle('on', b.dataset.tab === name);
  for (const p of $$('.panel')) p.hidden = p.id !== `tab-${name}`;
}

function nodeOptions(select, n, withLeader) {
  const keep = select.value;
  select.innerHTML = (withLeader ? '<option value="0">the leader</option>' : '') +
    Array.from({ length: n }, (_, i) => `<option value="${i + 1}">node ${i + 1}</option>`).join('');
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

function nodeLists(n) {
  nodeOptions($('#c-node'), n, true);
  for (const s of ['#n-from', '#n-to']) nodeOptions($(s), n, false);
}

export function initControls(app) {
  // Transport.
  $('#play').onclick = () => app.setPlaying(!app.playing);
  $('#step').onclick = () => app.step();
  $('#speed').oninput = (e) => setSpeed(app, e.target.value);
  $('#speed').onchange = () => writeLocation(app);
  setSpeed(app, $('#speed').value);
  $('#skip-quiet').onchange = (e) => { app.skipQuiet = e.target.checked; };
  $('#menu-btn').onclick = () => {
    const open = $('.bar').classList.toggle('open');
    $('#menu-btn').setAttribute('aria-expanded', String(open));
  };
  $('#setup').addEventListener('click', (e) => {
    if (e.target.closest('button')) $('.bar').classList.remove('open');
  });

  // Setup.
  $('#nodes').innerHTML = [3, 4, 5, 6, 7, 8, 9].map((n) => `<option>${n}</option>`).join('');
  $('#nodes').value = '5';
  $('#new').onclick = () => {
    endLesson(app);
    app.reset({ nodes: Number($('#nodes').value), seed: Number($('#seed').value) || 0 });
    app.setPlaying(true);
  };
  $('#tour-btn').onclick = () => startTour(app);
  app.onReset.push(() => {
    $('#nodes').value = String(app.options.nodes);
    $('#seed').value = String(app.options.seed);
    nodeLists(app.cluster.node_count());
    $('#n-to').value = '2';
    syncNetwork(app);
  });
  // Nodes added later join the lists.
  app.onNodes = [nodeLists];

  // Tabs.
  for (const b of $$('.tabs button')) b.onclick = () => showTab(b.dataset.tab);

  // Node panel buttons.
  $('#tab-node').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-do]');
    if (!b) return;
    nodeAction(app, b.dataset.do, app.selected);
  });

  // The ring: open a message, select a node, cut a link. Messages come
  // first: they are drawn over the nodes.
  $('#ring').addEventListener('click', (e) => {
    const msg = e.target.closest('[data-msg]');
    if (msg) {
      const box = $('.ring-box').getBoundingClientRect();
      app.view.showPop(Number(msg.dataset.msg), Math.max(4, Math.min(e.clientX - box.left + 10, box.width - 230)), Math.max(4, e.clientY - box.top - 40));
      return;
    }
    const node = e.target.closest('[data-node]');
    if (node) {
      select(app, Number(node.dataset.node));
      return;
    }
    const link = e.target.closest('[data-link]');
    if (link) {
      const [a, b] = link.dataset.link.split('-').map(Number);
      const down = app.state.down.some(([x, y]) => (x === a && y === b) || (x === b && y === a));
      app.act({ op: down ? 'restore' : 'cut', from: a, to: b, both: true });
      return;
    }
    app.view.hidePop();
  });
  $('#msg-pop').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-msg-do]');
    if (!b) return;
    const id = app.view.popMsg;
    if (b.dataset.msgDo !== 'close') app.act({ op: b.dataset.msgDo, id });
    if (b.dataset.msgDo === 'drop' || b.dataset.msgDo === 'close') app.view.hidePop();
  });
  $('#log-table').addEventListener('click', (e) => {
    const th = e.target.closest('th[data-node]');
    if (th) select(app, Number(th.dataset.node));
  });

  // Network panel.
  const net = () => app.act({
    op: 'network',
    loss: Number($('#n-loss').value),
    duplicate: Number($('#n-dup').value),
    long_delay: Number($('#n-reorder').value),
  });
  for (const id of ['#n-loss', '#n-dup', '#n-reorder']) {
    $(id).oninput = () => showOutputs();
    $(id).onchange = net;
  }
  $('#n-lat').oninput = () => showOutputs();
  $('#n-lat').onchange = () => {
    const ms = Number($('#n-lat').value);
    app.act({ op: 'latency', lo: Math.round(ms * 500), hi: Math.round(ms * 1000) });
  };
  $('#n-split').onclick = () => {
    const n = app.state.nodes.length;
    const side = Array.from({ length: Math.floor(n / 2) }, (_, i) => i + 1);
    app.act({ op: 'partition', side });
  };
  $('#n-heal').onclick = () => app.act({ op: 'heal' });
  $('#n-cut1').onclick = () => app.act({ op: 'cut', from: Number($('#n-from').value), to: Number($('#n-to').value) });
  $('#n-restore1').onclick = () => app.act({ op: 'restore', from: Number($('#n-from').value), to: Number($('#n-to').value) });

  // Client panel: the value field for writes, `expect` only for cas.
  const opFields = () => {
    const op = $('#c-op').value;
    $('.c-expect').hidden = op !== 'cas';
    $('.c-value').hidden = op === 'get' || op === 'delete';
  };
  $('#c-op').onchange = opFields;
  opFields();
  $('#client-form').onsubmit = (e) => {
    e.preventDefault();
    const kind = $('#c-op').value;
    const key = $('#c-key').value || 'x';
    const req = { kind, key };
    if (kind === 'put' || kind === 'append' || kind === 'cas') req.value = $('#c-value').value;
    if (kind === 'cas') req.expect = $('#c-expect').value === '' ? null : $('#c-expect').value;
    app.act({ op: 'client', node: Number($('#c-node').value), req });
    if (kind === 'put' && /^\d+$/.test($('#c-value').value)) $('#c-value').value = String(Number($('#c-value').value) + 1);
  };
  $('#tab-client').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-retry]');
    if (b) app.act({ op: 'retry', seq: Number(b.dataset.retry), node: Number($('#c-node').value) });
  });
  $('#load-start').onclick = () => app.act({ op: 'start_clients', count: 4 });
  $('#load-stop').onclick = () => app.act({ op: 'stop_clients' });

  // Help and keyboard.
  $('#help-btn').onclick = () => $('#help').showModal();
  document.addEventListener('keydown', (e) => {
    if (e.target.closest('input, select, textarea, dialog') || e.ctrlKey || e.metaKey || e.altKey) return;
    const n = app.state?.nodes.length ?? 0;
    const k = e.key;
    if (k === ' ') app.setPlaying(!app.playing);
    else if (k === 's' || k === 'ArrowRight') app.step();
    else if (/^[1-9]$/.test(k) && Number(k) <= n) select(app, Number(k));
    else if (k === 'c') nodeAction(app, 'crash', app.selected);
    else if (k === 'r') nodeAction(app, 'restart', app.selected);
    else if (k === 't') nodeAction(app, 'timeout', app.selected);
    else if (k === 'i') nodeAction(app, app.state.nodes[app.selected - 1].isolated ? 'rejoin' : 'isolate', app.selected);
    else if (k === 'h') app.act({ op: 'heal' });
    else if (k === 'p') app.act({ op: 'client', node: 0, req: { kind: 'put', key: 'x', value: String(Math.floor(app.state.now / 1000)) } });
    else if (k === '-') setSpeed(app, Number($('#speed').value) + 0.25);
    else if (k === '+' || k === '=') setSpeed(app, Number($('#speed').value) - 0.25);
    else if (k === '?') $('#help').showModal();
    else return;
    e.preventDefault();
  });
}

function showOutputs() {
  for (const id of ['#n-loss', '#n-dup', '#n-reorder']) {
    const i = $(id);
    i.nextElementSibling.textContent = `${Math.round(Number(i.value) * 100)}%`;
  }
  $('#n-lat').nextElementSibling.textContent = `${$('#n-lat').value}`;
}

// Puts the network sliders where the cluster is.
export function syncNetwork(app) {
  const n = JSON.parse(app.cluster.state()).network;
  $('#n-loss').value = n.loss;
  $('#n-dup').value = n.duplicate;
  $('#n-reorder').value = n.long_delay;
  $('#n-lat').value = Math.round(n.latency[1] / 1000);
  showOutputs();
}

export function select(app, id) {
  app.selected = id;
  app.view.cache.node = null;
  showTab('node');
  app.refresh();
}

function nodeAction(app, what, id) {
  if (what === 'journal') {
    const recs = JSON.parse(app.cluster.journal(id));
    const w = window.open('', '_blank');
    if (w) {
      w.document.title = `node ${id} journal`;
      w.document.body.innerHTML = `<pre>${recs.map((r) => `${String(r.seq || 'ckpt').padStart(6)} seg ${r.seg} @${r.offset} ${r.durable ? '      ' : 'UNSYNC'} ${r.kind}: ${r.text}`).join('\n').replace(/</g, '&lt;')}</pre>`;
    }
    return;
  }
  if (what === 'add_node' || what === 'add_node_learner') {
    app.act({ op: 'add_node', voter: what === 'add_node' });
    return;
  }
  const ops = { crash: 'crash', restart: 'restart', timeout: 'timeout', snapshot: 'snapshot', isolate: 'isolate', rejoin: 'rejoin',
    promote: 'promote', remove: 'remove', transfer: 'transfer', wipe: 'wipe', add_learner: 'add_learner' };
  if (ops[what]) app.act({ op: ops[what], node: id });
}
