// The log table: a row per node, a column per log index, each cell showing
// the entry's term and a few characters of its command (a tap shows the
// whole entry below the table: there is no hover on a phone).
//
// The table shows as many columns as fit between the node column and the
// key-value column, ending at the newest index unless the reader paged back
// with "◂ older". It never scrolls sideways, so neither the newest entries
// nor the key-value state can end up clipped off the right edge.

import { $, esc } from './util.js';
import { ROLE_COLORS, termColor } from './palette.js';
import { term } from './glossary.js';

const CELL = 46; // a cell's width plus the border spacing
const NODE_COL = 34;

// A command in at most six characters.
export function shortCommand(e) {
  const fixed = { noop: 'no-op', register: 'open', keepalive: 'alive', conf: 'conf' }[e.k];
  if (fixed) return fixed;
  const s = e.s.replace(/ \(s\d+#\d+\)$/, '').replace(/"/g, '');
  return s.length > 6 ? `${s.slice(0, 5)}…` : s;
}

export class LogTable {
  constructor(app) {
    this.app = app;
    this.end = null; // last index shown; null: follow the newest
    this.picked = null; // [node, index] of the cell shown in the detail line
    this.sig = '';
    this.cols = 10;
    this.kvWidth = 200;
    const wrap = $('#log-wrap');
    new ResizeObserver(() => {
      if (this.fit()) this.redraw();
    }).observe(wrap);
    this.fit();
    $('#log-older').onclick = () => {
      const hi = this.newest();
      this.end = Math.max(Math.min(this.cols, hi), (this.end ?? hi) - this.cols);
      this.redraw();
    };
    $('#log-newest').onclick = () => {
      this.end = null;
      this.redraw();
    };
    $('#log-table').addEventListener('click', (e) => {
      const td = e.target.closest('td.e');
      if (!td) return;
      this.picked = [Number(td.dataset.n), Number(td.dataset.i)];
      this.redraw();
    });
  }

  reset() {
    this.end = null;
    this.picked = null;
    this.sig = '';
    $('#log-detail').textContent = 'Click or tap a cell to see its entry.';
    $('#log-detail').className = 'log-detail hint';
  }

  // Columns that fit; true if that changed.
  fit() {
    const w = $('#log-wrap').clientWidth;
    if (!w) return false;
    this.kvWidth = w < 560 ? 110 : 200;
    const cols = Math.max(3, Math.floor((w - NODE_COL - this.kvWidth - 12) / CELL));
    if (cols === this.cols) return false;
    this.cols = cols;
    return true;
  }

  newest() {
    const s = this.app.state;
    return s ? Math.max(0, ...s.nodes.map((n) => n.last)) : 0;
  }

  redraw() {
    this.sig = '';
    if (this.app.state) this.draw(this.app.state);
  }

  draw(s) {
    const hi = Math.max(0, ...s.nodes.map((n) => n.last));
    const end = this.end === null ? hi : Math.min(this.end, hi);
    const lo = Math.max(1, end - this.cols + 1);
    // The window is fetched every time (it is small): a cached summary of the
    // logs could miss an entry that changed in the middle.
    const win = end >= lo ? this.app.cluster.log_window(lo, end) : '[]';
    const leader = s.nodes.find((n) => n.role === 'leader' && n.id === s.leader);
    const sig = win + JSON.stringify([lo, end, this.cols, this.kvWidth, this.picked,
      s.nodes.map((n) => [n.role, n.up, n.commit, n.snapshot, n.kv, n.keys]), leader && leader.progress]);
    if (sig === this.sig) return;
    this.sig = sig;
    const rows = JSON.parse(win);
    $('#log-older').disabled = lo <= 1;
    $('#log-newest').disabled = this.end === null;
    const kvStyle = `style="width:${this.kvWidth}px;max-width:${this.kvWidth}px"`;
    let h = '<tr><th class="node">node</th>';
    for (let i = lo; i <= end; i++) h += `<th data-i="${i}">${i}</th>`;
    h += `<th class="kvcol" ${kvStyle}>key-value state</th></tr>`;
    s.nodes.forEach((n, k) => {
      const byIndex = new Map((rows[k] || []).map((e) => [e.i, e]));
      // The leader's view of this follower: m and n in the corner of the
      // cells at its match and next index, the replication state by its name.
      const p = leader && leader.progress.find((x) => x.id === n.id);
      const mark = (i) => {
        if (!p) return '';
        const m = (i === p.match ? 'm' : '') + (i === p.next ? 'n' : '');
        return m ? `<i class="mk">${m}</i>` : '';
      };
      h += `<tr class="${n.up ? '' : 'down'}"><th class="node" data-node="${n.id}" style="color:${ROLE_COLORS[n.role]}">${n.role === 'leader' ? '★' : ''}${n.id}</th>`;
      for (let i = lo; i <= end; i++) {
        const e = byIndex.get(i);
        const picked = this.picked && this.picked[0] === n.id && this.picked[1] === i ? ' picked' : '';
        if (!e && i <= n.snapshot) {
          h += `<td class="e snap${picked}" data-n="${n.id}" data-i="${i}" title="entry ${i}: compacted into node ${n.id}'s snapshot"><span class="t">s</span>${mark(i)}</td>`;
        } else if (e) {
          const cls = ['e'];
          if (n.up && i > n.commit) cls.push('unc');
          if (n.up && i === n.commit) cls.push('cm');
          if (e.k === 'noop') cls.push('noop');
          if (e.x) cls.push('overwritten');
          h += `<td class="${cls.join(' ')}${picked}" data-n="${n.id}" data-i="${i}" style="background:${termColor(e.t, 42)}" title="${esc(describe(n, e))}"><span class="t">${e.t}</span><span class="c">${esc(shortCommand(e))}</span>${mark(i)}</td>`;
        } else h += `<td class="gap">${mark(i)}</td>`;
      }
      // Two lines at most, so that every row keeps the cells' height.
      const state = p ? `<span class="ps" title="${p.inflight} append(s) in flight">${term(p.state)}</span> ` : '';
      const budget = (this.kvWidth < 200 ? 30 : 56) - (p ? p.state.length + 1 : 0);
      h += `<td class="kvcol" ${kvStyle}>${state}${esc(kvText(n, budget))}</td></tr>`;
    });
    $('#log-table').innerHTML = h;
    this.drawDetail(s, rows);
  }

  drawDetail(s, rows) {
    if (!this.picked) return;
    const [id, i] = this.picked;
    const n = s.nodes[id - 1];
    const box = $('#log-detail');
    if (!n) return;
    // The picked cell may have been paged out of the window.
    const e = (rows[id - 1] || []).find((x) => x.i === i) || (JSON.parse(this.app.cluster.log_window(i, i))[id - 1] || [])[0];
    box.className = `log-detail${e && e.x ? ' bad' : ''}`;
    if (e) box.textContent = describe(n, e);
    else if (i <= n.snapshot) box.textContent = `node ${id}, entry ${i}: compacted into its snapshot (up to ${n.snapshot})`;
    else box.textContent = `node ${id} has no entry ${i}`;
  }
}

function describe(n, e) {
  const state = !n.up ? 'on disk (node down)' : e.i <= n.commit ? 'committed' : 'not committed yet';
  const lost = e.x ? ' — it replaced an entry of another term that was committed at this index: a committed entry was lost' : '';
  return `node ${n.id}, entry ${e.i}, term ${e.t}: ${e.s} (${state})${lost}`;
}

// The key-value state in at most `budget` characters, shortened explicitly
// ("…", "+N more") rather than cut off at the cell's edge.
function kvText(n, budget) {
  if (!n.up) return '(crashed)';
  const room = budget - 8; // for " +N more"
  let out = '';
  let shown = 0;
  for (const [k, v] of n.kv) {
    const part = `${k}=${v}`;
    if (!shown && part.length > room) {
      out = `${part.slice(0, room - 1)}…`;
      shown = 1;
      break;
    }
    if (out.length + part.length + 1 > room) break;
    out += (out ? ' ' : '') + part;
    shown++;
  }
  const more = n.keys - shown;
  return more > 0 ? `${out} +${more} more` : out || '(empty)';
}
