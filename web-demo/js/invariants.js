// The invariants panel: green while every safety check of the simulator
// holds, red with the failures from the event that broke one.

import { $, esc, secs } from './util.js';

export function drawInvariants(s, cache) {
  const key = `${s.violations.length}`;
  if (key === cache.inv) return;
  cache.inv = key;
  const n = s.violations.length;
  const box = $('#invariants');
  box.classList.toggle('bad', n > 0);
  box.classList.toggle('ok', n === 0);
  $('#inv-state').textContent = n ? `FAILED (${n}) at ${secs(s.first_violation)}` : 'hold';
  $('#inv-body').innerHTML = n
    ? `<ul>${s.violations.slice(0, 20).map((v) => `<li>${esc(v)}</li>`).join('')}</ul>`
    : '<div class="hint">Checked after every event: one leader per term, log matching, leader completeness, the same entry applied at each index everywhere and in order, nothing committed lost across crashes.</div>';
}
