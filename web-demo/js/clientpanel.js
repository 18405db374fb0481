// The Client tab: requests in flight (with "retry with the same seq"),
// answers, and the simulated clients' progress.

import { $, esc } from './util.js';

export function drawClientPanel(s, cache) {
  const c = s.client;
  const sig = JSON.stringify([c.pending, c.writes, c.answers.length, c.answers[c.answers.length - 1], s.load, s.stats.ops, s.stats.ops_ok]);
  if (sig === cache.client) return;
  cache.client = sig;
  const now = s.now;
  let pending = c.pending.map((p) =>
    `<li>${esc(p.text)} → node ${p.node}, waiting ${(Math.max(0, now - p.sent) / 1000).toFixed(0)} ms
     ${p.purpose.kind === 'write' ? `<button data-retry="${p.purpose.seq}">retry (same seq)</button>` : ''}</li>`).join('');
  const unsettled = Object.values(c.writes).filter((w) => !w.settled && !c.pending.some((p) => p.purpose.seq === w.seq));
  pending += unsettled.map((w) =>
    `<li>write seq ${w.seq} outcome unknown <button data-retry="${w.seq}">retry (same seq)</button></li>`).join('');
  $('#c-pending').innerHTML = pending || '<li class="hint">nothing</li>';
  $('#c-answers').innerHTML = c.answers.slice().reverse().map((a) =>
    `<li class="${a.ok ? 'good' : 'bad'}">${esc(a.text)} at node ${a.node} → <span class="res">${esc(a.result)}</span> <span class="hint">(${((a.at - a.sent) / 1000).toFixed(0)} ms)</span></li>`).join('')
    || '<li class="hint">no answers yet</li>';
  $('#load-info').textContent = s.load ? `${s.stats.ops_ok}/${s.stats.ops} operations done` : '';
}
