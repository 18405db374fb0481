// Test mode's worker: loads the same wasm module (or the build with raft-core's
// deliberate bugs) and runs seeds one after another, reporting each.

let mod = null;
let loaded = null;

self.onmessage = async (e) => {
  const job = e.data;
  try {
    if (loaded !== job.pkg) {
      mod = await import(`../${job.pkg}/host_wasm.js`);
      await mod.default();
      loaded = job.pkg;
    }
    for (let i = 0; i < job.count; i++) {
      const seed = job.first + i;
      const t0 = performance.now();
      const report = JSON.parse(mod.run_seed(JSON.stringify({
        seed, nodes: job.nodes, duration_us: job.duration_us, bugs: job.bugs,
      })));
      report.ms = performance.now() - t0;
      if (report.verdict.kind === 'ok') delete report.actions; // only failures are loaded into the view
      self.postMessage({ type: 'result', index: i, report });
    }
    self.postMessage({ type: 'done' });
  } catch (err) {
    self.postMessage({ type: 'error', message: String(err && err.message || err) });
  }
};
