// Lessons — the tour and the scenarios — on the real engine. A lesson is a
// list of steps; each drives the cluster with ordinary, recorded actions to
// a point and pauses there, with its text in the narration panel.
//
// Entering step k always rebuilds it from scratch: from the last step at or
// before k that starts a fresh cluster, each step's build runs after the
// previous step's "Watch" has been played out at full speed. The simulator is
// deterministic, so Back, Continue and a shared link (lesson, step, and the
// run if it went on from the point) land on the same state whatever was
// played in between.

import { $ } from './util.js';
import { writeLocation } from './trace.js';
import { showTab } from './controls.js';
import { showIdle, showStep, setWatchButton } from './narration.js';
import { TOUR } from './tour.js';
import { SCENARIOS } from './scenarios.js';

export const TOUR_KEY = 'raftkv.tour';

export function lessonById(id) {
  if (id === TOUR.id) return TOUR;
  const s = SCENARIOS.find((x) => x.id === id);
  return s ? { ...s, title: s.title } : null;
}

function freshOptions(app, step) {
  return typeof step.fresh === 'function' ? step.fresh(app) : step.fresh;
}

// Plays a step's watch to its end, event by event, without drawing.
function playOut(app, step, ctx) {
  const w = step.watch;
  if (!w) return;
  const end = app.cluster.now() + w.max;
  while (!w.until(app, ctx) && app.cluster.now() < end) {
    if (!app.cluster.step()) break;
  }
}

export function enterLesson(app, lesson, k) {
  k = Math.max(0, Math.min(k, lesson.steps.length - 1));
  app.setPlaying(false);
  let j = k;
  while (j > 0 && !lesson.steps[j].fresh) j--;
  // Options for the fresh cluster: the step's, with the Break it switches kept.
  app.lesson = null;
  app.reset({ ...app.defaults, ...freshOptions(app, lesson.steps[j]), bugs: app.options.bugs || {} });
  let ctx = {};
  for (let i = j; i <= k; i++) {
    if (i > j) playOut(app, lesson.steps[i - 1], ctx);
    ctx = { ...ctx, ...(lesson.steps[i].build(app, ctx) || {}) };
  }
  app.refresh();
  app.lesson = { lesson, k, ctx };
  const step = lesson.steps[k];
  showStep(app, lesson, k, step.text(ctx, app), step.watch);
  if (lesson.id === TOUR.id) localStorage.setItem(TOUR_KEY, String(k));
  writeLocation(app);
}

// Closes the narration; leaving the tour is remembered.
export function endLesson(app) {
  if (app.lesson && app.lesson.lesson.id === TOUR.id) localStorage.setItem(TOUR_KEY, 'dismissed');
  app.lesson = null;
  showIdle(app);
  writeLocation(app);
}

export function startTour(app) {
  enterLesson(app, TOUR, 0);
}

// The first visit starts the tour; a visit that left it half-way resumes it.
export function resumeTour(app) {
  const k = Number(localStorage.getItem(TOUR_KEY));
  enterLesson(app, TOUR, Number.isFinite(k) ? k : 0);
}

function watch(app) {
  const cur = app.lesson;
  if (!cur) return;
  const step = cur.lesson.steps[cur.k];
  if (!step.watch) return;
  if (app.playing) {
    app.setPlaying(false);
    setWatchButton(step.watch.label || '▶ Watch');
    return;
  }
  if (cur.watched) {
    // Watched already: back to the step's point first.
    enterLesson(app, cur.lesson, cur.k);
    return watch(app);
  }
  setWatchButton('❚❚ Pause');
  app.watch(() => step.watch.until(app, cur.ctx), step.watch.max, () => {
    cur.watched = true;
    setWatchButton('↺ Watch again');
  });
}

export function initLessons(app) {
  app.scenarios = SCENARIOS;
  $('#scenario-list').innerHTML = SCENARIOS.map((s) =>
    `<li><button data-scenario="${s.id}">Run</button><div><b>${s.title}</b><div class="d">${s.blurb}${s.steps.length > 1 ? ` (${s.steps.length} steps)` : ''}</div></div></li>`).join('');
  $('#scenario-list').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-scenario]');
    if (b) runScenario(app, b.dataset.scenario);
  });
  $('#narration').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-n]');
    if (!b) return;
    const cur = app.lesson;
    switch (b.dataset.n) {
      case 'tour': startTour(app); break;
      case 'scenario': runScenario(app, b.dataset.id); break;
      case 'close': endLesson(app); break;
      case 'back': if (cur) enterLesson(app, cur.lesson, cur.k - 1); break;
      case 'next':
        if (cur && cur.k + 1 < cur.lesson.steps.length) enterLesson(app, cur.lesson, cur.k + 1);
        else endLesson(app);
        break;
      case 'watch': watch(app); break;
    }
  });
  // Pausing by hand (or at a violation) ends a watch.
  app.onPlay = [(p) => {
    if (!p && app.lesson && !app.watching) {
      const step = app.lesson.lesson.steps[app.lesson.k];
      if (step.watch && $('#n-watch')?.textContent.startsWith('❚❚')) setWatchButton(step.watch.label || '▶ Watch');
    }
  }];
}

export function runScenario(app, id) {
  const s = lessonById(id);
  if (!s) return;
  enterLesson(app, s, 0);
  showTab('scenarios');
}
