// The narration panel, pinned beside the ring (under it on a phone): the
// current tour or scenario step, a "start here" when there is none, and
// banners such as "loaded at the violation". Rendering only; the buttons'
// actions are wired by lessons.js.

import { $, esc } from './util.js';

export function showIdle(app) {
  const box = $('#narration');
  box.className = 'narration';
  box.dataset.mode = 'idle';
  const list = (app.scenarios || []).map((s) =>
    `<li><button data-n="scenario" data-id="${s.id}">${esc(s.title)}</button></li>`).join('');
  box.innerHTML = `<div class="n-head"><span>Start here</span></div>
    <h2>A Raft cluster in your browser</h2>
    <div class="n-body">
      <p>Five servers keep one key-value store in agreement with the Raft consensus algorithm — the real raftkv
        engine, running in this tab in simulated time.</p>
      <p><button data-n="tour" class="primary">Take the tour</button> 13 short steps, from what a leader is to
        linearizable reads, each paused at the moment it explains.</p>
      <p>Or watch one situation:</p><ul class="n-list">${list}</ul>
      <p class="hint">Or just play: press ▶, select the leader (★) and press <kbd>c</kbd> to crash it, click a link to cut
        it, send writes from the Client tab. <b>?</b> lists keys and words.</p>
    </div>`;
}

// A lesson step: where we are, the text, and Back / Watch / Continue.
export function showStep(app, lesson, k, html, watch) {
  const box = $('#narration');
  const n = lesson.steps.length;
  const step = lesson.steps[k];
  box.className = 'narration';
  box.dataset.mode = 'lesson';
  box.dataset.lesson = lesson.id;
  box.dataset.step = String(k + 1);
  box.innerHTML = `<div class="n-head"><span>${esc(lesson.title)} · step ${k + 1} of ${n}</span>
      <button class="n-close" data-n="close" title="Close">✕</button></div>
    <h2>${esc(step.title)}</h2>
    <div class="n-body">${html}</div>
    <div class="n-nav">
      <button data-n="back" ${k === 0 ? 'disabled' : ''}>◂ Back</button>
      ${watch ? `<button data-n="watch" id="n-watch">${esc(watch.label || '▶ Watch')}</button>` : ''}
      <span class="grow"></span>
      <button data-n="next" class="primary" id="n-next">${k + 1 < n ? 'Continue ▸' : 'Finish'}</button>
    </div>`;
}

export function setWatchButton(text, disabled = false) {
  const b = $('#n-watch');
  if (!b) return;
  b.textContent = text;
  b.disabled = disabled;
}

// A banner (e.g. a failing test-mode seed loaded at its violation).
export function showBanner(app, title, html) {
  const box = $('#narration');
  box.className = 'narration banner';
  box.dataset.mode = 'banner';
  box.innerHTML = `<div class="n-head"><span>${esc(title)}</span><button class="n-close" data-n="close" title="Close">✕</button></div>
    <div class="n-body">${html}</div>`;
}
