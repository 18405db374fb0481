// Drawing: the ring of nodes with election timers, votes and messages in
// flight; the log table; the selected node's details; the event feed; the
// invariants panel. Parts that change rarely are redrawn only when their
// content changes, so a frame stays cheap.

import { $, esc, secs, termColor, ROLE_COLORS, MSG_COLORS } from './util.js';

const SVG = 'http://www.w3.org/2000/svg';
const el = (tag, attrs = {}, parent) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
};

export class Renderer {
  constructor(app) {
    this.app = app;
    this.svg = $('#ring');
    this.n = 0;
    this.msgEls = new Map();
    this.sig = {};
    this.lastSlow = 0;
    this.popMsg = null;
    this.legend();
  }

  legend() {
    const roles = Object.entries(ROLE_COLORS).map(([r, c]) => `<span><i style="background:${c}"></i>${r}</span>`);
    const msgs = ['PreVote', 'Vote', 'Heartbeat', 'Append', 'AppendResp', 'InstallSnapshot']
      .map((m) => `<span><i style="background:${MSG_COLORS[m]}"></i>${m}</span>`);
    $('#legend').innerHTML = roles.join('') + msgs.join('') + '<span>ring colour = term</span>';
  }

  pos(id) {
    const n = this.n;
    const a = -Math.PI / 2 + ((id - 1) * 2 * Math.PI) / n;
    const R = n <= 3 ? 150 : n <= 5 ? 175 : 195;
    return [Math.cos(a) * R, Math.sin(a) * R + 5];
  }

  nodeR() {
    return this.n <= 5 ? 30 : this.n <= 7 ? 26 : 22;
  }

  build(n) {
    this.n = n;
    this.svg.textContent = '';
    this.msgEls.clear();
    this.gLinks = el('g', {}, this.svg);
    this.gMsgs = el('g', {}, this.svg);
    this.gNodes = el('g', {}, this.svg);
    this.links = new Map();
    for (let a = 1; a <= n; a++) {
      for (let b = a + 1; b <= n; b++) {
        const [x1, y1] = this.pos(a);
        const [x2, y2] = this.pos(b);
        const line = el('line', { x1, y1, x2, y2, class: 'link' }, this.gLinks);
        const hit = el('line', { x1, y1, x2, y2, class: 'link-hit', 'data-link': `${a}-${b}` }, this.gLinks);
        const title = el('title', {}, hit);
        title.textContent = `link ${a} ↔ ${b}: click to cut or restore`;
        this.links.set(`${a}-${b}`, line);
      }
    }
    this.nodeEls = [];
    const r = this.nodeR();
    for (let id = 1; id <= n; id++) {
      const [x, y] = this.pos(id);
      const g = el('g', { transform: `translate(${x},${y})`, 'data-node': id, class: 'node' }, this.gNodes);
      el('circle', { r: r + 9, class: 'timer-bg' }, g);
      const timer = el('circle', { r: r + 9, class: 'timer', transform: 'rotate(-90)' }, g);
      const iso = el('circle', { r: r + 16, class: 'isolated-ring' }, g);
      const sel = el('circle', { r: r + 20, class: 'node-sel' }, g);
      const body = el('circle', { r, class: 'node-body' }, g);
      const label = el('text', { y: 5, class: 'node-label' }, g);
      label.textContent = id;
      const votes = el('g', {}, g);
      const below = y > 0;
      const sub = el('text', { y: below ? r + 26 : -r - 30, class: 'node-sub' }, g);
      const sub2 = el('text', { y: below ? r + 39 : -r - 17, class: 'node-sub2' }, g);
      const title = el('title', {}, body);
      title.textContent = `node ${id}: click to select`;
      this.nodeEls.push({ g, timer, body, label, votes, sub, sub2, iso, sel, r, circ: 2 * Math.PI * (r + 9) });
    }
  }

  draw(s, force) {
    if (s.nodes.length !== this.n) this.build(s.nodes.length);
    this.drawNodes(s);
    this.drawLinks(s);
    this.drawMessages(s);
    const now = performance.now();
    if (force || now - this.lastSlow > 120) {
      this.lastSlow = now;
      this.drawLogTable(s);
      this.drawNodePanel(s);
      this.drawFeed(s);
      this.drawInvariants(s);
      this.drawClient(s);
      this.drawTime(s);
      if (this.popMsg !== null) this.updatePop(s);
    }
    $('#clock').textContent = secs(s.now);
  }

  drawNodes(s) {
    for (const nd of s.nodes) {
      const e = this.nodeEls[nd.id - 1];
      const key = `${nd.role}|${nd.term}|${nd.voted_for}|${nd.leader}|${JSON.stringify(nd.votes)}|${nd.isolated}|${this.app.selected}`;
      const [el_, t] = nd.timer;
      const frac = nd.up && nd.role !== 'leader' && t > 0 ? Math.min(1, el_ / t) : 0;
      e.timer.setAttribute('stroke-dasharray', `${frac * e.circ} ${e.circ}`);
      e.timer.setAttribute('stroke', frac > 0.8 ? '#e08a00' : '#64748b');
      if (e.key === key) continue;
      e.key = key;
      e.body.setAttribute('fill', ROLE_COLORS[nd.role] || '#888');
      e.body.setAttribute('stroke', nd.up ? termColor(nd.term) : '#111');
      e.label.textContent = nd.up ? nd.id : `✕${nd.id}`;
      e.sub.textContent = `${nd.role === 'leader' ? '★ ' : ''}${nd.role} · term ${nd.term}`;
      let sub2 = '';
      if (!nd.up) sub2 = 'crashed (disk kept)';
      else if (nd.role === 'leader') sub2 = `commit ${nd.commit}`;
      else if (nd.voted_for) sub2 = `voted for ${nd.voted_for}`;
      else if (nd.leader) sub2 = `leader ${nd.leader}`;
      e.sub2.textContent = sub2;
      e.iso.style.display = nd.isolated ? '' : 'none';
      e.sel.style.display = this.app.selected === nd.id ? '' : 'none';
      // Vote marks: a dot per answer, placed toward the voter.
      e.votes.textContent = '';
      if (nd.role === 'candidate' || nd.role === 'pre-candidate') {
        const [x0, y0] = this.pos(nd.id);
        for (const [from, granted] of nd.votes) {
          const [x1, y1] = this.pos(from);
          let dx = x1 - x0, dy = y1 - y0;
          const len = Math.hypot(dx, dy) || 1;
          dx /= len; dy /= len;
          const r = from === nd.id ? 0 : e.r * 0.62;
          el('circle', { cx: dx * r, cy: dy * r + (from === nd.id ? -14 : 0), r: 5, class: 'vote',
            fill: granted ? '#22c55e' : '#ef4444' }, e.votes);
        }
      }
    }
  }

  drawLinks(s) {
    const down = new Set(s.down.map(([a, b]) => `${a}>${b}`));
    const key = [...down].sort().join(',');
    if (key === this.sig.links) return;
    this.sig.links = key;
    for (const [k, line] of this.links) {
      const [a, b] = k.split('-');
      const ab = down.has(`${a}>${b}`), ba = down.has(`${b}>${a}`);
      line.setAttribute('class', ab && ba ? 'link cut' : ab || ba ? 'link half' : 'link');
    }
  }

  drawMessages(s) {
    const seen = new Set();
    const R = this.nodeR();
    for (const m of s.messages) {
      seen.add(m.id);
      let c = this.msgEls.get(m.id);
      if (!c) {
        const big = m.type === 'Append' || m.type === 'InstallSnapshot';
        const resp = m.type.endsWith('Resp');
        c = el('circle', { r: big ? 7 : resp ? 4.5 : 5.5, class: 'msg', 'data-msg': m.id }, this.gMsgs);
        let color = MSG_COLORS[m.type] || '#333';
        if (m.type === 'AppendResp' && m.fields.some(([k, v]) => k === 'success' && v === 'false')) color = '#dc2626';
        if (m.type.endsWith('VoteResp') && m.fields.some(([k, v]) => k === 'granted' && v === 'false')) color = '#f87171';
        c.setAttribute('fill', color);
        this.msgEls.set(m.id, c);
      }
      const [x0, y0] = this.pos(m.from);
      const [x1, y1] = this.pos(m.to);
      const dx = x1 - x0, dy = y1 - y0;
      const len = Math.hypot(dx, dy) || 1;
      const ux = dx / len, uy = dy / len;
      const span = Math.max(1, m.due - m.sent);
      let p = Math.max(0, Math.min(1, (s.now - m.sent) / span));
      if (m.held) p = Math.min(p, 0.5);
      const travel = len - 2 * (R + 4);
      // Requests and answers on one link travel on either side of it.
      const off = 5;
      const x = x0 + ux * (R + 4 + p * travel) - uy * off;
      const y = y0 + uy * (R + 4 + p * travel) + ux * off;
      c.setAttribute('cx', x.toFixed(1));
      c.setAttribute('cy', y.toFixed(1));
      c.classList.toggle('held', m.held);
    }
    for (const [id, c] of this.msgEls) {
      if (!seen.has(id)) {
        c.remove();
        this.msgEls.delete(id);
      }
    }
  }

  drawLogTable(s) {
    const up = s.nodes;
    const hi = Math.max(0, ...up.map((n) => n.last));
    const lo = Math.max(1, hi - 27);
    const leader = s.nodes.find((n) => n.role === 'leader' && n.up && n.id === s.leader);
    const sig = JSON.stringify([lo, hi, up.map((n) => [n.role, n.commit, n.first, n.snapshot, n.log.length && n.log[n.log.length - 1], n.kv, n.up]),
      leader && leader.progress]);
    if (sig === this.sig.log) return;
    this.sig.log = sig;
    let h = '<tr><th></th>';
    for (let i = lo; i <= hi; i++) h += `<th>${i}</th>`;
    h += '<th>key-value state</th></tr>';
    for (const n of up) {
      const byIndex = new Map(n.log.map((e) => [e.i, e]));
      h += `<tr class="${n.up ? '' : 'down'}"><th class="node" data-node="${n.id}" style="color:${ROLE_COLORS[n.role]}">${n.role === 'leader' ? '★' : ''}${n.id}</th>`;
      for (let i = lo; i <= hi; i++) {
        const e = byIndex.get(i);
        if (i <= n.snapshot) h += `<td class="e snap" title="entry ${i}: compacted into node ${n.id}'s snapshot">s</td>`;
        else if (e) {
          const cls = ['e'];
          if (n.up && i > n.commit) cls.push('unc');
          if (n.up && i === n.commit) cls.push('cm');
          if (e.k === 'noop') cls.push('noop');
          const tip = `entry ${i}, term ${e.t}: ${e.s}${n.up ? (i <= n.commit ? ' (committed)' : ' (not committed yet)') : ' (on disk)'}`;
          h += `<td class="${cls.join(' ')}" style="background:${termColor(e.t, 45)}" title="${esc(tip)}">${e.t}</td>`;
        } else h += '<td></td>';
      }
      const kv = n.up ? n.kv.map(([k, v]) => `${k}=${v}`).join(' ') : '(crashed)';
      h += `<td class="kvcell" title="${esc(kv)}">${esc(kv)}${n.keys > n.kv.length ? ' …' : ''}</td></tr>`;
      const p = leader && leader.progress.find((x) => x.id === n.id);
      if (p) {
        h += '<tr><td></td>';
        for (let i = lo; i <= hi; i++) {
          const m = [];
          if (i === p.match) m.push('m');
          if (i === p.next) m.push('n');
          h += `<td class="mk">${m.join('')}</td>`;
        }
        h += `<td class="mk" style="text-align:left">${p.state}${p.inflight ? `, ${p.inflight} in flight` : ''}</td></tr>`;
      }
    }
    $('#log-table').innerHTML = h;
  }

  drawNodePanel(s) {
    const n = s.nodes[this.app.selected - 1];
    if (!n) return;
    const sig = JSON.stringify([n, s.down.length]);
    if (sig === this.sig.node) return;
    this.sig.node = sig;
    const dd = (k, v) => `<dt>${k}</dt><dd>${v ?? '–'}</dd>`;
    const j = n.journal;
    const journal = j.tail.slice().reverse().map((r) =>
      `<li class="${r.durable ? '' : 'unsynced'}" title="${r.durable ? 'synced' : 'written, not yet synced: a crash may lose it'}"><span class="seq">${r.seq || 'ckpt'}</span>${esc(r.kind)}: ${esc(r.text)}</li>`).join('');
    const kv = n.kv.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('');
    const sessions = n.sessions.map((x) => `<tr><td>session ${x.id}</td><td>ack ${x.ack}, ${x.cached} cached repl${x.cached === 1 ? 'y' : 'ies'}</td></tr>`).join('');
    const progress = n.progress.map((p) => `<tr><td>node ${p.id}</td><td>match ${p.match}, next ${p.next}, ${p.state}</td></tr>`).join('');
    $('#tab-node').innerHTML = `<div class="nodeinfo">
      <div class="title">Node ${n.id} <span class="pill" style="background:${ROLE_COLORS[n.role]}">${n.role}</span>
        ${n.isolated ? '<span class="pill" style="background:#d92d20">isolated</span>' : ''}</div>
      <div class="row">
        ${n.up ? `<button data-do="crash" class="danger" title="c">Crash</button>` : `<button data-do="restart" title="r">Restart</button>`}
        <button data-do="timeout" ${n.up && n.role !== 'leader' ? '' : 'disabled'} title="t">Time out</button>
        <button data-do="snapshot" ${n.up ? '' : 'disabled'}>Snapshot</button>
        <button data-do="${n.isolated ? 'rejoin' : 'isolate'}" title="i">${n.isolated ? 'Rejoin' : 'Isolate'}</button>
      </div>
      <dl>${dd('term', n.term)}${dd('voted for', n.voted_for)}${dd('leader', n.leader)}${dd('log', `${n.first}…${n.last}`)}
        ${dd('commit', n.up ? n.commit : '–')}${dd('applied', n.up ? n.applied : '–')}${dd('durable', n.durable)}${dd('snapshot', n.snapshot || '–')}
        ${dd('timer', n.up && n.role !== 'leader' ? `${n.timer[0]}/${n.timer[1]} ticks` : '–')}${dd('held msgs', n.held)}</dl>
      ${n.up ? '' : `<p class="hint">Crashed: only its disk is left. Its log above is what the journal holds; a restart replays it.${n.disk && n.disk.error ? ' Damaged: ' + esc(n.disk.error) : ''}</p>`}
      ${progress ? `<h3>Replication (leader's view)</h3><table class="kv">${progress}</table>` : ''}
      <h3>Key-value state (${n.keys} keys)</h3>${kv ? `<table class="kv">${kv}</table>` : '<span class="hint">empty</span>'}
      ${sessions ? `<h3>Sessions (${n.session_count})</h3><table class="kv">${sessions}</table>` : ''}
      <h3>Journal: ${j.records} records, ${j.bytes} bytes, ${j.segments} segment(s)${j.unsynced_bytes ? `, ${j.unsynced_bytes} bytes unsynced` : ''}</h3>
      ${j.snapshots.length ? `<div class="hint">snapshot files: ${j.snapshots.join(', ')}</div>` : ''}
      <ul class="list journal">${journal}</ul>
      <div class="row"><button data-do="journal">Show the whole journal</button></div>
    </div>`;
  }

  drawFeed(s) {
    if (s.feed_last === this.app.feedLast) return;
    const items = JSON.parse(this.app.cluster.feed(this.app.feedLast));
    this.app.feedLast = s.feed_last;
    const ol = $('#feed');
    const frag = document.createDocumentFragment();
    for (const f of items) {
      const li = document.createElement('li');
      li.className = `k-${f.kind}${f.major ? '' : ' minor'}`;
      li.innerHTML = `<span class="t">${(f.t / 1e6).toFixed(3)}</span><span>${esc(f.text)}</span>`;
      frag.prepend(li);
    }
    ol.prepend(frag);
    while (ol.children.length > 400) ol.lastChild.remove();
  }

  clearFeed() {
    $('#feed').textContent = '';
  }

  drawInvariants(s) {
    const key = s.violations.length;
    if (key === this.sig.inv) return;
    this.sig.inv = key;
    const box = $('#invariants');
    box.classList.toggle('bad', key > 0);
    box.classList.toggle('ok', key === 0);
    $('#inv-state').textContent = key ? `FAILED (${key})` : 'hold';
    $('#inv-body').innerHTML = key
      ? `<ul>${s.violations.slice(0, 20).map((v) => `<li>${esc(v)}</li>`).join('')}</ul>`
      : '<div class="hint">Checked after every event: one leader per term, log matching, leader completeness, the same entry applied at each index everywhere and in order, nothing committed lost across crashes.</div>';
  }

  drawClient(s) {
    const c = s.client;
    const sig = JSON.stringify([c.pending, c.answers.length, c.answers[c.answers.length - 1], s.load, s.stats.ops]);
    if (sig === this.sig.client) return;
    this.sig.client = sig;
    const now = s.now;
    $('#c-pending').innerHTML = c.pending.map((p) =>
      `<li>${esc(p.text)} → node ${p.node}, waiting ${(Math.max(0, now - p.sent) / 1000).toFixed(0)} ms
       ${p.purpose.kind === 'write' ? `<button data-retry="${p.purpose.seq}">retry (same seq)</button>` : ''}</li>`).join('')
      || '<li class="hint">nothing</li>';
    const unsettled = Object.values(c.writes).filter((w) => !w.settled && !c.pending.some((p) => p.purpose.seq === w.seq));
    $('#c-pending').innerHTML += unsettled.map((w) =>
      `<li>write seq ${w.seq} outcome unknown <button data-retry="${w.seq}">retry (same seq)</button></li>`).join('');
    $('#c-answers').innerHTML = c.answers.slice().reverse().map((a) =>
      `<li class="${a.ok ? 'good' : 'bad'}">${esc(a.text)} at node ${a.node} → <span class="res">${esc(a.result)}</span> <span class="hint">(${((a.at - a.sent) / 1000).toFixed(0)} ms)</span></li>`).join('')
      || '<li class="hint">no answers yet</li>';
    $('#load-info').textContent = s.load ? `${s.stats.ops_ok}/${s.stats.ops} operations done` : '';
  }

  drawTime(s) {
    const slider = $('#time');
    if (slider.dataset.dragging) return;
    const max = Math.max(this.app.horizon, s.now, s.trace_end);
    slider.max = Math.ceil(max / 1000);
    slider.value = Math.floor(s.now / 1000);
    $('#time-at').textContent = secs(s.now);
    $('#time-max').textContent = secs(max);
    const ahead = s.actions[0] - s.actions[1];
    $('#time-note').textContent = `${s.actions[1]} action(s)${ahead ? `, ${ahead} ahead (replayed when reached)` : ''}`;
  }

  // The message popup.
  showPop(id, x, y) {
    this.popMsg = id;
    const pop = $('#msg-pop');
    pop.style.left = `${x}px`;
    pop.style.top = `${y}px`;
    pop.hidden = false;
    this.updatePop(this.app.state, true);
  }

  hidePop() {
    this.popMsg = null;
    $('#msg-pop').hidden = true;
  }

  updatePop(s, force) {
    const m = s.messages.find((x) => x.id === this.popMsg);
    const pop = $('#msg-pop');
    if (!m) {
      if (!force && !pop.dataset.gone) {
        pop.dataset.gone = '1';
        pop.querySelector('.row')?.remove();
        pop.insertAdjacentHTML('beforeend', '<div class="hint">delivered or dropped</div>');
      }
      return;
    }
    delete pop.dataset.gone;
    const rows = [['from → to', `${m.from} → ${m.to}`], ['term', m.term], ...m.fields,
      ['sent', secs(m.sent)], ['due', m.held ? 'held' : secs(m.due)], ['bytes', m.bytes]];
    const entries = (m.entries || []).map((e) => `${e.i}:t${e.t} ${esc(e.s)}`).join('<br>');
    pop.innerHTML = `<b style="color:${MSG_COLORS[m.type]}">${m.type}</b> #${m.id}
      <table>${rows.map(([k, v]) => `<tr><td>${k}</td><td>${esc(v)}</td></tr>`).join('')}</table>
      ${entries ? `<div class="hint">${entries}</div>` : ''}
      <div class="row"><button data-msg-do="drop" class="danger">Drop</button>
      <button data-msg-do="${m.held ? 'release' : 'hold'}">${m.held ? 'Release' : 'Hold'}</button>
      <button data-msg-do="close">Close</button></div>`;
  }
}
