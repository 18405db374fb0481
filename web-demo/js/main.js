// The page's core: one simulated cluster, the animation loop, and the few
// operations every other module goes through (act, reset, replay).

import { loadWasm } from './wasm.js';
import { Renderer } from './render.js';
import { initControls } from './controls.js';
import { initTrace, readLocation, writeLocation } from './trace.js';
import { initScenarios } from './scenarios.js';
import { initTestMode } from './testmode.js';

export const app = {
  mod: null,
  cluster: null,
  options: null,
  defaults: null,
  playing: false,
  speed: 1 / 20, // simulated seconds per real second
  state: null,
  selected: 1,
  horizon: 0, // furthest simulated time reached on this branch of the run
  feedLast: 0,
  renderer: null,
  onReset: [],
  frameMs: 0,

  // Carries out a user action now and records it in the trace.
  act(op) {
    // Acting in the past branches the run: what came after is replaced.
    const branching = this.cluster.now() < this.horizon;
    this.cluster.act(JSON.stringify(op));
    if (branching) this.horizon = this.cluster.now();
    this.refresh();
    writeLocation(this);
  },

  // A fresh cluster.
  reset(options) {
    this.options = { ...this.defaults, ...options };
    const c = new this.mod.Cluster(JSON.stringify(this.options));
    this.swap(c);
    this.horizon = 0;
    writeLocation(this);
  },

  // Rebuilds the run from options and actions up to simulated time t.
  replay(options, actions, t) {
    this.options = { ...this.defaults, ...options };
    const c = this.mod.Cluster.replay(JSON.stringify(this.options), JSON.stringify(actions), t);
    this.swap(c);
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
    if (this.cluster) this.cluster.free();
    this.cluster = c;
    this.feedLast = 0;
    this.selected = Math.min(this.selected, this.options.nodes);
    for (const f of this.onReset) f();
    this.refresh();
  },

  trace() {
    return { format: 'raftkv-trace', version: 1, options: this.options, actions: JSON.parse(this.cluster.trace()), t: this.cluster.now() };
  },

  setPlaying(p) {
    this.playing = p;
    document.getElementById('play').textContent = p ? '❚❚ Pause' : '▶ Play';
    if (!p) writeLocation(this);
  },

  step() {
    this.setPlaying(false);
    this.cluster.step();
    this.horizon = Math.max(this.horizon, this.cluster.now());
    this.refresh();
  },

  // Re-reads the state and redraws at once.
  refresh() {
    this.state = JSON.parse(this.cluster.state());
    this.horizon = Math.max(this.horizon, this.state.now);
    this.renderer.draw(this.state, true);
  },
};

let last = performance.now();
function frame(ts) {
  const dt = Math.min(ts - last, 100);
  last = ts;
  const t0 = performance.now();
  if (app.playing && app.cluster) {
    app.cluster.advance(dt * 1000 * app.speed);
    app.horizon = Math.max(app.horizon, app.cluster.now());
  }
  if (app.cluster) {
    app.state = JSON.parse(app.cluster.state());
    app.renderer.draw(app.state, false);
  }
  app.frameMs = app.frameMs * 0.95 + (performance.now() - t0) * 0.05;
  requestAnimationFrame(frame);
}

async function main() {
  app.mod = await loadWasm('pkg');
  const info = JSON.parse(app.mod.build_info());
  app.defaults = info.default_options;
  app.renderer = new Renderer(app);
  initControls(app);
  initScenarios(app);
  initTestMode(app);
  initTrace(app);
  const loc = readLocation();
  if (loc && loc.actions) {
    app.replay(loc.options, loc.actions, loc.t ?? 0);
    app.horizon = Math.max(loc.t ?? 0, app.cluster.trace_end());
  } else {
    app.reset(loc?.options ?? {});
    if (!loc?.paused) app.setPlaying(true);
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
