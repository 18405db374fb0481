// Drawing, once per animation frame: the ring every frame; the log table,
// panels, feed, invariants and time slider at most every 120 ms (and at once
// after an action), each only when what it shows has changed.

import { $, esc, secs } from './util.js';
import { ROLE_COLORS, MSG_COLORS, MSG_WORDS } from './palette.js';
import { GLOSSARY } from './glossary.js';
import { Ring } from './ring.js';
import { LogTable } from './logtable.js';
import { Feed } from './feed.js';
import { drawNodePanel } from './nodepanel.js';
import { drawClientPanel } from './clientpanel.js';
import { drawInvariants } from './invariants.js';

const SLOW_MS = 120;
const LEGEND_MSGS = ['PreVote', 'PreVoteResp', 'Vote', 'VoteResp', 'Heartbeat', 'Append', 'AppendResp', 'InstallSnapshot'];

export class View {
  constructor(app) {
    this.app = app;
    this.ring = new Ring(app, $('#ring'));
    this.logs = new LogTable(app);
    this.feed = new Feed(app);
    this.cache = {};
    this.lastSlow = 0;
    this.popMsg = null;
    this.legend();
  }

  legend() {
    const roles = Object.entries(ROLE_COLORS).map(([r, c]) =>
      `<span class="term" data-term="${r}" title="${esc(GLOSSARY[r] || r)}"><i style="background:${c}"></i>${r}</span>`);
    const msgs = LEGEND_MSGS.map((m) =>
      `<span title="${esc(MSG_WORDS[m])}"><i class="${m.endsWith('Resp') ? 'resp' : ''}" style="background:${MSG_COLORS[m]}"></i>${m}</span>`);
    $('#legend').innerHTML = `${roles.join('')}${msgs.join('')}<span><i style="background:#e03131"></i>refused</span>`
      + '<span>ring colour = term · ◇ = answer · dashed link = cut</span>';
  }

  // A new run: forget everything drawn for the old one.
  reset() {
    this.cache = {};
    this.nodeCount = 0;
    this.feed.clear();
    this.logs.reset();
    this.hidePop();
  }

  draw(s, force) {
    this.ring.draw(s);
    if (s.nodes.length !== this.nodeCount) {
      this.nodeCount = s.nodes.length;
      for (const f of this.app.onNodes || []) f(s.nodes.length);
    }
    const now = performance.now();
    if (force || now - this.lastSlow > SLOW_MS) {
      this.lastSlow = now;
      this.logs.draw(s);
      drawNodePanel(this.app, s, this.cache);
      this.feed.draw(s);
      drawInvariants(s, this.cache);
      drawClientPanel(s, this.cache);
      this.drawTime(s);
      this.drawBroken(s);
      if (this.popMsg !== null) this.updatePop(s);
    }
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

  drawBroken(s) {
    // Short, so that it stays clear of the top node's label; the bugs are in
    // its tooltip and in the Break it tab.
    const bugs = Object.entries(this.app.options.bugs || {}).filter(([, on]) => on).map(([k]) => k);
    const b = $('#broken-badge');
    const title = `the broken build (web-demo/pkg-bugs) with ${bugs.join(', ')}`;
    if (b.title !== title) {
      b.title = title;
      b.textContent = 'broken build';
    }
    b.hidden = !bugs.length || !s.bugs_build;
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
    pop.dataset.msg = m.id;
    pop.innerHTML = `<b>${m.type}</b> #${m.id} <span class="hint">${esc(MSG_WORDS[m.type] || '')}</span>
      <table>${rows.map(([k, v]) => `<tr><td>${k}</td><td>${esc(v)}</td></tr>`).join('')}</table>
      ${entries ? `<div class="hint">${entries}</div>` : ''}
      <div class="row"><button data-msg-do="drop" class="danger">Drop</button>
      <button data-msg-do="${m.held ? 'release' : 'hold'}">${m.held ? 'Release' : 'Hold'}</button>
      <button data-msg-do="close">Close</button></div>`;
  }
}
