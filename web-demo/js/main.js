// The page's core: one simulated cluster, the animation loop, and the few
// operations every other module goes through (act, reset, replay, watch).

import { loadWasm, bugsBuildAvailable } from './wasm.js';
import { View } from './view.js';
import { initControls, setSpeed } from './controls.js';
import { initTrace, readLocation, writeLocation } from './trace.js';
import { initTestMode } from './testmode.js';
import { initBreakIt } from './breakit.js';
import { initGlossary } from './glossary.js';
import { showIdle } from './narration.js';
import { initLessons, enterLesson, lessonById, TOUR_KEY, resumeTour } from './lessons.js';
import { $, secs } from './util.js';

// While nothing is on the wire and no client waits, time runs this many
// times faster (an election timeout is 0.15–0.3 s of nothing happening).
const QUIET_FACTOR = 10;

export const app = {
  builds: {}, // loaded wasm modules, by package: pkg (normal), pkg-bugs (deliberate bugs available)
  mod: null, // the module the cluster comes from
  pkg: 'pkg',
  bugsAvailable: false,
  cluster: null,
  options: null,
  defaults: null,
  playing: false,
  speed: 1 / 100, // simulated seconds per real second
  skipQuiet: true,
  state: null,
  selected: 1,
  horizon: 0, // furthest simulated time reached on this branch of the run
  feedLast: 0,
  view: null,
  onReset: [],
  frameMs: 0,
  lesson: null, // { lesson, k, ctx } while a tour or scenario step is shown
  watching: null, // { until, end, done } while "Watch" plays to a step's end

  // The package a run with these options needs: any deliberate bug switched
  // on needs the bugs build.
  pkgFor(options) {
    return Object.values(options?.bugs || {}).some(Boolean) ? 'pkg-bugs' : 'pkg';
  },

  // Loads (once) the build these options need.
  async useBuildFor(options) {
    const pkg = this.pkgFor(options);
    if (!this.builds[pkg]) this.builds[pkg] = await loadWasm(pkg);
    return pkg;
  },

  moduleFor(options) {
    const pkg = this.pkgFor(options);
    const mod = this.builds[pkg];
    if (!mod) throw new Error(`the ${pkg} build is not loaded`);
    this.pkg = pkg;
    this.mod = mod;
    return mod;
  },

  // Carries out a user action now and records it in the trace. Returns why
  // it was refused ('' if it was not), which is also shown over the ring.
  act(op) {
    this.cancelWatch();
    // Acting in the past branches the run: what came after is replaced.
    const branching = this.cluster.now() < this.horizon;
    const refused = this.cluster.act(JSON.stringify(op));
    if (branching) this.horizon = this.cluster.now();
    if (refused) this.note(`Refused: ${refused}`);
    else if ($('#stage-note').textContent.startsWith('Refused')) this.note('');
    this.refresh();
    writeLocation(this);
    return refused;
  },

  // A fresh cluster. The Break it switches carry over unless `options` sets them.
  reset(options) {
    this.options = { ...this.defaults, bugs: this.options?.bugs || {}, ...options };
    const mod = this.moduleFor(this.options);
    this.swap(new mod.Cluster(JSON.stringify(this.options)));
    this.horizon = 0;
    writeLocation(this);
  },

  // Rebuilds the run from options and actions up to simulated time t.
  replay(options, actions, t) {
    this.options = { ...this.defaults, bugs: {}, ...options };
    const mod = this.moduleFor(this.options);
    this.swap(mod.Cluster.replay(JSON.stringify(this.options), JSON.stringify(actions), t));
  },

  // Moves the current run to time t (rewinding by replay when t is in the past).
  seek(t) {
    if (t >= this.cluster.now()) {
      this.cluster.run_until(t);
      this.refresh();
    } else {
      const actions = JSON.parse(this.cluster.trace());
      this.replay(this.options, actions, t);
    }
  },

  swap(c) {
    this.cancelWatch();
    if (this.cluster) this.cluster.free();
    this.cluster = c;
    this.feedLast = 0;
    this.violationsSeen = 0;
    this.selected = Math.min(this.selected, c.node_count());
    this.note('');
    this.view.reset();
    for (const f of this.onReset) f();
    this.refresh();
  },

  trace() {
    return { format: 'raftkv-trace', version: 1, options: this.options, actions: JSON.parse(this.cluster.trace()), t: this.cluster.now() };
  },

  setPlaying(p) {
    if (!p) this.watching = null;
    this.playing = p;
    $('#play').textContent = p ? '❚❚ Pause' : '▶ Play';
    document.body.dataset.playing = p ? '1' : '';
    if (!p) writeLocation(this);
    for (const f of this.onPlay || []) f(p);
  },

  step() {
    this.setPlaying(false);
    this.cluster.step();
    this.horizon = Math.max(this.horizon, this.cluster.now());
    this.refresh();
  },

  // Plays at the chosen speed until until() holds or maxUs of simulated time
  // passed, then pauses and calls done().
  watch(until, maxUs, done) {
    this.setPlaying(true);
    this.watching = { until, end: this.cluster.now() + maxUs, done };
  },

  cancelWatch() {
    this.watching = null;
  },

  // A line over the ring (empty: none).
  note(text) {
    const n = $('#stage-note');
    n.textContent = text;
    n.hidden = !text;
  },

  // Re-reads the state and redraws at once.
  refresh() {
    this.state = JSON.parse(this.cluster.state());
    this.horizon = Math.max(this.horizon, this.state.now);
    this.view.draw(this.state, true);
  },
};

let last = performance.now();
function frame(ts) {
  const dt = Math.min(ts - last, 100);
  last = ts;
  const t0 = performance.now();
  if (app.playing && app.cluster) {
    const s = app.state;
    const quiet = app.skipQuiet && s && s.messages_total === 0 && s.client.pending.length === 0;
    const us = dt * 1000 * app.speed * (quiet ? QUIET_FACTOR : 1);
    // Stops right after an event that breaks a safety check: the run pauses
    // at that event, with the invariants panel red.
    const broke = app.cluster.advance_to_violation(us);
    app.horizon = Math.max(app.horizon, app.cluster.now());
    const w = app.watching;
    if (broke || (w && (w.until() || app.cluster.now() >= w.end))) {
      app.setPlaying(false);
      if (broke) app.note(`Paused at ${secs(app.cluster.now())}: a safety check failed at this event (see the invariants panel and the feed).`);
      w?.done?.();
    }
  }
  if (app.cluster) {
    app.state = JSON.parse(app.cluster.state());
    app.view.draw(app.state, false);
  }
  app.frameMs = app.frameMs * 0.95 + (performance.now() - t0) * 0.05;
  requestAnimationFrame(frame);
}

async function main() {
  app.builds.pkg = await loadWasm('pkg');
  app.mod = app.builds.pkg;
  const info = JSON.parse(app.mod.build_info());
  app.defaults = info.default_options;
  app.bugsAvailable = await bugsBuildAvailable();
  app.view = new View(app);
  initGlossary();
  initControls(app);
  initLessons(app);
  initBreakIt(app);
  initTestMode(app);
  initTrace(app);
  const loc = readLocation();
  if (loc?.speed) setSpeed(app, -Math.log10(loc.speed));
  if (loc && (loc.options.bugs || loc.lesson)) await app.useBuildFor(loc.options);
  const lesson = loc?.lesson && lessonById(loc.lesson);
  if (lesson) {
    // The step's point is rebuilt (its text needs what the build found);
    // a run in the link, played on from that point, is then replayed exactly.
    app.options = { ...app.defaults, bugs: loc.options.bugs || {} };
    enterLesson(app, lesson, loc.step ?? 0);
    if (loc.actions) {
      app.replay(loc.options, loc.actions, loc.t ?? 0);
      app.horizon = Math.max(loc.t ?? 0, app.cluster.trace_end());
      writeLocation(app);
    }
  } else if (loc && loc.actions) {
    app.replay(loc.options, loc.actions, loc.t ?? 0);
    app.horizon = Math.max(loc.t ?? 0, app.cluster.trace_end());
    showIdle(app);
  } else if (!loc && localStorage.getItem(TOUR_KEY) !== 'dismissed') {
    // A first visit (or one that left the tour unfinished) starts the tour.
    app.reset({});
    resumeTour(app);
  } else {
    // A plain visit waits, paused, with "start here" beside the ring; a link
    // to a seed plays unless it says `paused`.
    app.reset(loc?.options ?? {});
    showIdle(app);
    if (loc && !loc.paused) app.setPlaying(true);
  }
  window.raftkv = app; // for the browser tests and the curious
  document.body.dataset.ready = '1';
  requestAnimationFrame(frame);
}

main().catch((e) => {
  console.error(e);
  document.body.insertAdjacentHTML('afterbegin',
    `<p style="color:#d92d20;padding:8px">Could not start the simulator: ${e.message}. Build it with scripts/build-web.sh.</p>`);
});
