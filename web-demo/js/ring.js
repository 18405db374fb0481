// The ring: the nodes on an ellipse that fills its box, their election
// timers, votes and labels, the links between them, the messages in flight
// and the page's client. Voters sit on the ring; learners and nodes outside
// the configuration on a bench below it; a joint configuration's two rings
// of voters are drawn inside (membership.js decides who sits where).
//
// The SVG's viewBox is kept equal to its size in CSS pixels, so a font size
// here is the size on screen (the labels were ~8.7 px when a fixed viewBox
// was scaled down to fit). Every text and attribute is written through
// set(), which compares with what the element already shows: nothing is
// cached under a hand-made key that could leave a field out (the leader's
// "commit N" went stale that way).

import { ROLE_COLORS, ROLE_INK, MSG_COLORS, REFUSED, termColor } from './palette.js';
import { ringLayout, memberWord, votesNeeded, drawJointRings } from './membership.js';

const NS = 'http://www.w3.org/2000/svg';
const el = (tag, attrs = {}, parent) => {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
};

// Sets an attribute (or, for 'text', the text) only when it changes.
function set(e, name, value) {
  const v = String(value);
  const cache = e.__v || (e.__v = {});
  if (cache[name] === v) return;
  cache[name] = v;
  if (name === 'text') e.textContent = v;
  else e.setAttribute(name, v);
}

const RESPONSES = new Set(['PreVoteResp', 'VoteResp', 'AppendResp', 'InstallSnapshotResp']);

// How long (simulated) the client's latest answer stays drawn.
const ANSWER_SHOWN_US = 250_000;

export class Ring {
  constructor(app, svg) {
    this.app = app;
    this.svg = svg;
    this.n = 0;
    this.lay = null;
    this.w = 0;
    this.h = 0;
    this.msgEls = new Map();
    new ResizeObserver(() => this.resize()).observe(svg);
  }

  resize() {
    const r = this.svg.getBoundingClientRect();
    if (r.width < 10 || r.height < 10) return;
    if (Math.abs(r.width - this.w) < 0.5 && Math.abs(r.height - this.h) < 0.5) return;
    this.w = r.width;
    this.h = r.height;
    this.svg.setAttribute('viewBox', `${-this.w / 2} ${-this.h / 2} ${this.w} ${this.h}`);
    if (this.lay) {
      this.build(this.lay);
      if (this.app.state) this.draw(this.app.state);
    }
  }

  // Node radius and the ellipse's radii: room for two label lines above the
  // top node and below the bottom one, and half a label's width at the sides.
  // A bench (learners, removed nodes) takes a row at the bottom, and the
  // ring moves up by half of it.
  geometry(n, benched) {
    const { w } = this;
    const r = Math.max(16, Math.min(28, Math.min(w, this.h) / 13)) * (n >= 7 ? 0.85 : 1);
    const br = r * 0.8;
    const bench = benched ? 2 * br + 22 : 0;
    const h = this.h - bench;
    const labels = 46;
    const ry = Math.max(40, h / 2 - (r + 12 + labels) - 4);
    const rx = Math.max(40, Math.min(w / 2 - Math.max(64, r + 18), ry * 1.8));
    return { r, rx, ry, br, cy: -bench / 2, benchY: this.h / 2 - br - 12 };
  }

  pos(id) {
    return this.slots.get(id) || [0, 0];
  }

  // Where each node sits: the ring's voters evenly round the ellipse, from
  // the top, in id order; the bench's in a row along the bottom.
  place(lay) {
    const { rx, ry, cy, br, benchY } = this.g;
    this.slots = new Map();
    lay.ring.forEach((id, k) => {
      const a = -Math.PI / 2 + (k * 2 * Math.PI) / lay.ring.length;
      this.slots.set(id, [Math.cos(a) * rx, cy + Math.sin(a) * ry]);
    });
    // Each bench seat: the node and its label to its right.
    const seat = Math.min(150, (this.w - 20) / Math.max(1, lay.bench.length));
    const x0 = -((lay.bench.length - 1) * seat) / 2 - Math.min(seat / 2 - br - 4, 40);
    lay.bench.forEach((id, k) => this.slots.set(id, [x0 + k * seat, benchY]));
  }

  build(lay) {
    this.lay = lay;
    const all = [...lay.ring, ...lay.bench].sort((a, b) => a - b);
    const n = all.length;
    this.n = n;
    if (!this.w) this.resize();
    this.g = this.geometry(lay.ring.length, lay.bench.length > 0);
    this.place(lay);
    const { r } = this.g;
    const benched = new Set(lay.bench);
    this.svg.textContent = '';
    this.msgEls.clear();
    this.gLinks = el('g', {}, this.svg);
    this.gClient = el('g', { class: 'client' }, this.svg);
    this.gConf = el('g', { class: 'conf' }, this.svg);
    this.gNodes = el('g', {}, this.svg);
    // Messages are drawn over the nodes: a click on one that is just leaving
    // a node picks the message, not the node under it.
    this.gMsgs = el('g', {}, this.svg);
    this.links = new Map();
    for (const a of all) {
      for (const b of all.filter((x) => x > a)) {
        const [x1, y1] = this.pos(a);
        const [x2, y2] = this.pos(b);
        const line = el('line', { x1, y1, x2, y2, class: 'link' }, this.gLinks);
        line.__bench = benched.has(a) || benched.has(b);
        const hit = el('line', { x1, y1, x2, y2, class: 'link-hit', 'data-link': `${a}-${b}` }, this.gLinks);
        el('title', {}, hit).textContent = `link ${a} ↔ ${b}: click to cut or restore`;
        this.links.set(`${a}-${b}`, line);
      }
    }
    this.nodeEls = [];
    for (const id of all) {
      const [x, y] = this.pos(id);
      const bench = benched.has(id);
      const r = bench ? this.g.br : this.g.r;
      const g = el('g', { transform: `translate(${x},${y})`, 'data-node': id, class: bench ? 'node bench' : 'node' }, this.gNodes);
      el('circle', { r: r + 7, class: 'timer-bg' }, g);
      const timer = el('circle', { r: r + 7, class: 'timer', transform: 'rotate(-90)' }, g);
      const iso = el('circle', { r: r + 13, class: 'isolated-ring' }, g);
      const sel = el('circle', { r: r + 17, class: 'node-sel' }, g);
      const body = el('circle', { r, class: 'node-body' }, g);
      el('title', {}, body).textContent = `node ${id}: click to select`;
      const label = el('text', { y: 0, class: 'node-id' }, g);
      const votes = el('g', {}, g);
      // Labels go above the nodes of the upper half, below the others; on
      // the bench, to the right of the node.
      const above = y < this.g.cy - 1;
      // (clear of the selection ring at r + 17)
      const role = bench ? el('text', { x: r + 12, y: -5, class: 'node-role' }, g)
        : el('text', { y: above ? -(r + 39) : r + 33, class: 'node-role' }, g);
      const info = bench ? el('text', { x: r + 12, y: 11, class: 'node-info' }, g)
        : el('text', { y: above ? -(r + 23) : r + 49, class: 'node-info' }, g);
      this.nodeEls[id - 1] = { id, g, timer, body, label, votes, role, info, iso, sel, bench, circ: 2 * Math.PI * (r + 7), voteKey: '' };
    }
    // The page's client, in the top-left corner: its name and what it is
    // doing, inside one box that stays clear of the node labels.
    const cx = -this.w / 2 + 10, cy = -this.h / 2 + 10;
    this.client = {
      x: cx + 62, y: cy + 19,
      req: el('g', {}, this.gClient),
      box: el('rect', { x: cx, y: cy, width: 124, height: 38, rx: 6, class: 'client-box' }, this.gClient),
      label: el('text', { x: cx + 8, y: cy + 15, class: 'client-label' }, this.gClient),
      info: el('text', { x: cx + 8, y: cy + 31, class: 'client-info' }, this.gClient),
    };
    this.client.label.textContent = 'client';
  }

  draw(s) {
    const lay = ringLayout(s);
    if (!this.lay || lay.key !== this.lay.key || !this.g) this.build(lay);
    drawJointRings(this.gConf, s, (id) => this.pos(id), [0, this.g.cy], this.w < 480);
    this.drawNodes(s);
    this.drawLinks(s);
    this.drawMessages(s);
    this.drawClient(s);
  }

  drawNodes(s) {
    for (const nd of s.nodes) {
      const e = this.nodeEls[nd.id - 1];
      if (!e) continue;
      const r = e.bench ? this.g.br : this.g.r;
      const [elapsed, timeout] = nd.timer;
      const frac = nd.up && nd.role !== 'leader' && timeout > 0 ? Math.min(1, elapsed / timeout) : 0;
      set(e.timer, 'stroke-dasharray', `${(frac * e.circ).toFixed(1)} ${e.circ.toFixed(1)}`);
      set(e.timer, 'stroke', frac > 0.8 ? '#e8590c' : '#64748b');
      set(e.body, 'fill', ROLE_COLORS[nd.role] || '#888');
      set(e.body, 'stroke', nd.up ? termColor(nd.term) : '#111');
      set(e.label, 'fill', ROLE_INK[nd.role] || '#fff');
      set(e.label, 'text', nd.up ? nd.id : `✕${nd.id}`);
      const what = memberWord(nd);
      set(e.role, 'text', e.bench ? `${what}${nd.up ? '' : ' · down'}` : `${nd.role === 'leader' ? '★ ' : ''}${nd.up ? nd.role : 'down'}`);
      // A voter of one half only says so in place of its term (the ring's colour shows that).
      set(e.info, 'text', e.bench ? benchLine(nd) : what && nd.up && !nd.unbound ? `${what} · ${infoLine(nd, s).replace(/^term \d+ · /, '')}` : infoLine(nd, s));
      set(e.g, 'class', `node${e.bench ? ' bench' : ''} m-${nd.member}${nd.unbound ? ' unbound' : ''}`);
      set(e.iso, 'display', nd.isolated ? 'inline' : 'none');
      set(e.sel, 'display', this.app.selected === nd.id ? 'inline' : 'none');
      // Vote marks: one dot per answer on the timer ring, toward the voter,
      // outside the node so they never cover its number.
      const campaigning = nd.role === 'candidate' || nd.role === 'pre-candidate';
      const voteKey = campaigning ? JSON.stringify(nd.votes) : '';
      if (voteKey !== e.voteKey) {
        e.voteKey = voteKey;
        e.votes.textContent = '';
        if (campaigning) {
          const [x0, y0] = this.pos(nd.id);
          for (const [from, granted] of nd.votes) {
            if (from === nd.id) continue;
            const [x1, y1] = this.pos(from);
            const len = Math.hypot(x1 - x0, y1 - y0) || 1;
            const d = r + 7;
            el('circle', { cx: ((x1 - x0) / len) * d, cy: ((y1 - y0) / len) * d, r: 5, class: 'vote',
              fill: granted ? '#2f9e44' : REFUSED, 'data-vote': from }, e.votes);
          }
        }
      }
    }
  }

  drawLinks(s) {
    const down = new Set(s.down.map(([a, b]) => `${a}>${b}`));
    this.down = down;
    for (const [k, line] of this.links) {
      const [a, b] = k.split('-');
      const ab = down.has(`${a}>${b}`), ba = down.has(`${b}>${a}`);
      const base = line.__bench ? 'link to-bench' : 'link';
      set(line, 'class', ab && ba ? `${base} cut` : ab || ba ? `${base} half` : base);
    }
  }

  drawMessages(s) {
    const seen = new Set();
    const { r } = this.g;
    if (!this.slots) return;
    for (const m of s.messages) {
      seen.add(m.id);
      let c = this.msgEls.get(m.id);
      if (!c) c = this.messageEl(m);
      const [x0, y0] = this.pos(m.from);
      const [x1, y1] = this.pos(m.to);
      const dx = x1 - x0, dy = y1 - y0;
      const len = Math.hypot(dx, dy) || 1;
      const ux = dx / len, uy = dy / len;
      const span = Math.max(1, m.due - m.sent);
      let p = Math.max(0, Math.min(1, (s.now - m.sent) / span));
      if (m.held) p = Math.min(p, 0.5);
      const start = r + 12;
      const travel = Math.max(0, len - 2 * start);
      // Requests and answers on one link travel on either side of it.
      const off = 6;
      const x = x0 + ux * (start + p * travel) - uy * off;
      const y = y0 + uy * (start + p * travel) + ux * off;
      set(c, 'transform', `translate(${x.toFixed(1)},${y.toFixed(1)})`);
      set(c, 'class', `msg${m.held ? ' held' : ''}${this.down.has(`${m.from}>${m.to}`) ? ' doomed' : ''}`);
    }
    for (const [id, c] of this.msgEls) {
      if (!seen.has(id)) {
        c.remove();
        this.msgEls.delete(id);
      }
    }
  }

  // A message: a circle for a request, a diamond for an answer, red if the
  // answer says no; a wider transparent disc takes the clicks.
  messageEl(m) {
    const g = el('g', { class: 'msg', 'data-msg': m.id, 'data-type': m.type }, this.gMsgs);
    el('circle', { r: 12, class: 'hit' }, g);
    const refused = m.fields.some(([k, v]) => (k === 'success' || k === 'granted') && v === 'false');
    const fill = refused ? REFUSED : MSG_COLORS[m.type] || '#333';
    const big = m.type === 'Append' || m.type === 'InstallSnapshot';
    const s = big ? 8 : 6.5;
    if (RESPONSES.has(m.type)) el('rect', { x: -s * 0.75, y: -s * 0.75, width: s * 1.5, height: s * 1.5, transform: 'rotate(45)', fill, class: 'mark' }, g);
    else el('circle', { r: s, fill, class: 'mark' }, g);
    el('title', {}, g).textContent = `${m.type} ${m.from} → ${m.to}: click for its fields`;
    this.msgEls.set(m.id, g);
    return g;
  }

  // The client: a dashed line to each node it awaits an answer from, and
  // for a moment after an answer, a line back coloured by its outcome.
  drawClient(s) {
    const c = s.client;
    const k = this.client;
    const lines = c.pending.map((p) => ({ node: p.node, cls: 'client-req', color: '#1d2330' }));
    const last = c.answers[c.answers.length - 1];
    if (last && s.now - last.at < ANSWER_SHOWN_US) lines.push({ node: last.node, cls: 'client-ans', color: last.ok ? '#2f9e44' : REFUSED });
    const key = JSON.stringify(lines) + this.w + this.h;
    if (key !== k.key) {
      k.key = key;
      k.req.textContent = '';
      for (const l of lines) {
        const [x, y] = this.pos(l.node);
        el('line', { x1: k.x, y1: k.y, x2: x, y2: y, class: l.cls, stroke: l.color, 'data-client-to': l.node }, k.req);
      }
    }
    const p = c.pending[c.pending.length - 1];
    const info = p ? `${p.text.replace(/ \(seq \d+\)$/, '')} → ${p.node}` : last ? `${last.result}` : c.session ? `session ${c.session}` : 'no session yet';
    set(k.info, 'text', info.length > 17 ? `${info.slice(0, 16)}…` : info);
    // The simulated clients are counted in a corner of their own, clear of the node labels.
    const load = s.load ? `simulated clients: ${s.stats.ops_ok}/${s.stats.ops} operations done` : '';
    const badge = document.getElementById('load-badge');
    if (badge.textContent !== load) badge.textContent = load;
    badge.hidden = !load;
  }
}

// The second label line: what matters about the node right now.
function infoLine(nd, s) {
  if (!nd.up) return 'crashed · disk kept';
  if (nd.unbound) return 'new disk · no vote yet';
  if (nd.role === 'leader') return `term ${nd.term} · commit ${nd.commit}`;
  if (nd.role === 'candidate' || nd.role === 'pre-candidate') {
    // Its own vote counts too (the list holds the others' answers).
    const yes = nd.votes.filter(([from, g]) => g && from !== nd.id).length + 1;
    const need = votesNeeded(s);
    return `term ${nd.term} · ${yes}/${need} ${nd.role === 'pre-candidate' ? 'pre-votes' : 'votes'}`;
  }
  if (nd.leader) return `term ${nd.term} · leader ${nd.leader}`;
  if (nd.voted_for) return `term ${nd.term} · voted ${nd.voted_for}`;
  return `term ${nd.term}`;
}

// A bench node's second line: how far behind the leader it is.
function benchLine(nd) {
  if (!nd.up) return 'crashed';
  if (nd.member === 'none') return `term ${nd.term}`;
  if (nd.lag == null) return 'no leader';
  return nd.lag === 0 ? 'caught up' : `${nd.lag} behind`;
}
