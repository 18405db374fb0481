// Membership on the ring: which nodes sit on the ring (voters of either
// half of the configuration) and which on the bench below it (learners and
// nodes outside the configuration, drawn apart), and, while a change is
// joint, the two rings of voters — the old configuration's and the new one's,
// each of which must give a majority — drawn inside the ring with their
// captions. Ring.js asks for the layout and hands this module a group to
// draw the joint rings in; nothing else here touches the ring.

import { CONF_COLORS } from './palette.js';

const NS = 'http://www.w3.org/2000/svg';

const majority = (n) => Math.floor(n / 2) + 1;

// The nodes on the ring and on the bench, by id; `key` changes when either does.
export function ringLayout(s) {
  const c = s.config;
  const ring = [], bench = [];
  for (const nd of s.nodes) {
    const votes = !c || nd.member === 'voter' || nd.member === 'incoming' || nd.member === 'outgoing';
    (votes ? ring : bench).push(nd.id);
  }
  // A cluster whose every node is down has no configuration to show: all on the ring.
  if (!ring.length) return { ring: bench, bench: [], key: `${bench.join(',')}|` };
  return { ring, bench, key: `${ring.join(',')}|${bench.join(',')}` };
}

// What a node is, in words for its label: '' for a plain voter.
export function memberWord(nd) {
  switch (nd.member) {
    case 'learner': return 'learner';
    case 'none': return 'not a member';
    case 'incoming': return 'joining';
    case 'outgoing': return 'leaving';
    default: return '';
  }
}

// The votes a candidate needs, in the configuration it would lead.
export function votesNeeded(s) {
  const c = s.config;
  if (!c) return majority(s.nodes.length);
  return majority(c.voters.length);
}

// Draws the joint configuration's two rings into `g` (emptied first), or
// nothing outside a joint change. `pos(id)` is a node's centre, `centre` the
// ring's; `narrow` asks for short captions (a phone). The old voters' ring is
// the inner, dashed one; the new voters' the outer, solid one; each has a
// vertex toward each of its voters.
export function drawJointRings(g, s, pos, centre, narrow) {
  const c = s.config;
  const key = c && c.joint ? JSON.stringify([c.outgoing, c.voters, centre, pos(c.voters[0]), narrow]) : '';
  if (g.__key === key) return;
  g.__key = key;
  g.textContent = '';
  if (!key) return;
  const [cx, cy] = centre;
  const halves = [
    { name: 'old', ids: c.outgoing, scale: 0.5, words: 'old voters' },
    { name: 'new', ids: c.voters, scale: 0.72, words: 'new voters' },
  ];
  for (const h of halves) {
    const pts = h.ids.map((id) => {
      const [x, y] = pos(id);
      return [cx + (x - cx) * h.scale, cy + (y - cy) * h.scale];
    });
    const ring = el('g', { 'data-ring': h.name, 'data-members': h.ids.join(' '), class: `conf-ring conf-${h.name}` }, g);
    const color = CONF_COLORS[h.name];
    if (pts.length === 1) {
      el('circle', { cx: pts[0][0], cy: pts[0][1], r: 10, fill: 'none', stroke: color }, ring);
    } else {
      const d = pts.map(([x, y], k) => `${k ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join('') + 'Z';
      el('path', { d, fill: 'none', stroke: color }, ring);
    }
    for (const [x, y] of pts) el('circle', { cx: x, cy: y, r: 4, fill: color, class: 'conf-dot' }, ring);
  }
  // The captions, in the middle on a white card: who is in each half and
  // what each needs.
  const card = el('rect', { rx: 6, class: 'conf-card' }, g);
  const texts = halves.map((h, k) => {
    const t = el('text', { x: cx, y: cy + (k ? 10 : -10), class: `conf-caption conf-${h.name}`, fill: CONF_COLORS[h.name] }, g);
    t.textContent = `${narrow ? h.name : h.words} ${h.ids.join(' ')} · need ${majority(h.ids.length)}`;
    return t;
  });
  const w = Math.max(...texts.map((t) => t.getComputedTextLength())) + 14;
  for (const [k, v] of Object.entries({ x: cx - w / 2, y: cy - 21, width: w, height: 42 })) card.setAttribute(k, v);
}

function el(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  parent.appendChild(e);
  return e;
}
