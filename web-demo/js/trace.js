// Time travel and sharing. A run is its options plus its list of actions
// (each stamped by the simulator with the point where it happened), so:
// the time slider rewinds by replaying up to a time; the URL carries options,
// actions and the current time; export/import move the same data as a file.
// The URL also carries the speed and, during the tour or a scenario, which
// lesson and step is shown (speed and text do not change the run itself).

import { $, b64encode, b64decode } from './util.js';
import { showIdle } from './narration.js';

function optionsDiff(app) {
  const d = {};
  for (const [k, v] of Object.entries(app.options)) {
    if (JSON.stringify(v) !== JSON.stringify(app.defaults[k])) d[k] = v;
  }
  return d;
}

// The link that reproduces the current run at the current time.
export function shareURL(app) {
  const url = new URL(location.href);
  const actions = JSON.parse(app.cluster.trace());
  const o = optionsDiff(app);
  const p = new URLSearchParams();
  if (app.lesson) {
    p.set('lesson', app.lesson.lesson.id);
    p.set('step', String(app.lesson.k + 1));
  }
  p.set('speed', String(Math.round(1 / app.speed)));
  if (actions.length === 0) {
    for (const [k, v] of Object.entries(o)) p.set(k, typeof v === 'object' ? JSON.stringify(v) : v);
    p.set('t', String(Math.round(app.cluster.now())));
  } else {
    p.set('run', b64encode(JSON.stringify({ o, a: actions, t: Math.round(app.cluster.now()) })));
  }
  url.hash = p.toString();
  return url.toString();
}

export function writeLocation(app) {
  try {
    history.replaceState(null, '', shareURL(app));
  } catch {
    // a very long trace may exceed what the browser keeps in the address bar
  }
}

// Reads the address: `#run=…` or `#seed=7&nodes=3&t=…`, each optionally with
// `speed=100` (1/100) and `lesson=tour&step=3`.
export function readLocation() {
  const h = location.hash.slice(1);
  if (!h) return null;
  const p = new URLSearchParams(h);
  const extra = {};
  const speed = Number(p.get('speed'));
  if (speed >= 1 && speed <= 1000) extra.speed = 1 / speed;
  if (p.has('lesson')) {
    extra.lesson = p.get('lesson');
    extra.step = Math.max(0, Number(p.get('step') || 1) - 1);
  }
  if (p.has('run')) {
    try {
      const r = JSON.parse(b64decode(p.get('run')));
      return { options: r.o || {}, actions: r.a || [], t: r.t || 0, ...extra };
    } catch (e) {
      console.warn('ignoring a damaged run link', e);
      return null;
    }
  }
  const options = {};
  for (const [k, v] of p) {
    if (['t', 'paused', 'speed', 'lesson', 'step'].includes(k)) continue;
    try {
      options[k] = JSON.parse(v);
    } catch {
      options[k] = v;
    }
  }
  const t = Number(p.get('t') || 0);
  const base = t > 0 ? { options, actions: [], t, paused: true } : { options, paused: p.has('paused') || !!extra.lesson };
  return { ...base, ...extra };
}

export function initTrace(app) {
  const slider = $('#time');
  let pending = null;
  let timer = null;
  const seekNow = () => {
    timer = null;
    if (pending === null) return;
    const t = pending;
    pending = null;
    app.seek(t);
  };
  slider.addEventListener('input', () => {
    slider.dataset.dragging = '1';
    app.setPlaying(false);
    pending = Number(slider.value) * 1000;
    $('#time-at').textContent = `${(pending / 1e6).toFixed(3)} s`;
    if (!timer) timer = setTimeout(seekNow, 150);
  });
  slider.addEventListener('change', () => {
    pending = Number(slider.value) * 1000;
    clearTimeout(timer);
    seekNow();
    delete slider.dataset.dragging;
    writeLocation(app);
  });

  $('#share').onclick = async () => {
    const url = shareURL(app);
    history.replaceState(null, '', url);
    try {
      await navigator.clipboard.writeText(url);
      $('#share').textContent = 'Copied!';
    } catch {
      $('#share').textContent = 'In the address bar';
    }
    setTimeout(() => ($('#share').textContent = 'Share link'), 1500);
  };

  $('#export').onclick = () => {
    const blob = new Blob([JSON.stringify(app.trace(), null, 1)], { type: 'application/json' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `raftkv-seed${app.options.seed}-${Math.round(app.cluster.now() / 1000)}ms.json`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };

  $('#import').onchange = async (e) => {
    const f = e.target.files[0];
    if (!f) return;
    try {
      await loadTrace(app, JSON.parse(await f.text()));
      showIdle(app);
    } catch (err) {
      alert(`Could not import this trace: ${err.message}`);
    }
    e.target.value = '';
  };
}

// Loads an exported trace (or a test-mode report) into the main view, on
// the build its options need.
export async function loadTrace(app, tr) {
  if (!tr || !tr.options || !Array.isArray(tr.actions)) throw new Error('not a raftkv trace');
  await app.useBuildFor(tr.options);
  app.setPlaying(false);
  app.lesson = null;
  app.replay(tr.options, tr.actions, tr.t ?? 0);
  app.horizon = Math.max(tr.t ?? 0, app.cluster.trace_end());
  writeLocation(app);
}
