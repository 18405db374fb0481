// Test mode: K random seeds with faults and simulated clients, run in a Web
// Worker; each run is judged by the simulator's safety checks and the
// linearizability checker. A failing seed shows its history as a timeline and
// loads into the main view.

import { $, esc, secs } from './util.js';
import { bugsBuildAvailable } from './wasm.js';
import { loadTrace } from './trace.js';
import { currentBugs } from './breakit.js';
import { showBanner } from './narration.js';

let worker = null;

export function initTestMode(app) {
  bugsBuildAvailable().then((ok) => {
    $('#t-bugs').disabled = !ok;
    if (!ok) $('#t-bugs').parentElement.title = 'needs the bugs build (scripts/build-web.sh builds web-demo/pkg-bugs)';
  });
  $('#t-run').onclick = () => run(app);
  $('#t-stop').onclick = () => stop('stopped');
}

function stop(why) {
  if (worker) worker.terminate();
  worker = null;
  $('#t-run').disabled = false;
  $('#t-stop').disabled = true;
  if (why) $('#t-summary').textContent += ` (${why})`;
}

export function run(app, opts = {}) {
  stop();
  const job = {
    pkg: ($('#t-bugs').checked || opts.bugs) ? 'pkg-bugs' : 'pkg',
    first: opts.first ?? Number($('#t-first').value),
    count: opts.count ?? Number($('#t-count').value),
    nodes: opts.nodes ?? Number($('#t-nodes').value),
    duration_us: (opts.secs ?? Number($('#t-secs').value)) * 1e6,
  };
  // The broken build runs with the bugs switched on under Break it, or with
  // stale local reads if none is.
  const chosen = currentBugs(app);
  job.bugs = job.pkg === 'pkg-bugs' ? (Object.keys(chosen).length ? chosen : { stale_read_local: true }) : {};
  const results = [];
  let failures = 0;
  $('#t-results').innerHTML = '';
  $('#t-fail').innerHTML = '';
  $('#t-progress').max = job.count;
  $('#t-progress').value = 0;
  const summary = $('#t-summary');
  summary.className = 'summary';
  summary.textContent = `running ${job.count} seeds${job.pkg === 'pkg-bugs' ? ` on the broken build (${Object.keys(job.bugs).join(', ')})` : ''}…`;
  $('#t-run').disabled = true;
  $('#t-stop').disabled = false;
  const started = performance.now();
  worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = (e) => {
    const m = e.data;
    if (m.type === 'result') {
      const r = m.report;
      results.push(r);
      $('#t-progress').value = results.length;
      const ok = r.verdict.kind === 'ok';
      if (!ok) failures++;
      const li = document.createElement('li');
      li.className = ok ? 'good' : 'bad';
      li.innerHTML = `<span>seed ${r.seed}</span><span class="hint">${r.events} events, ${r.ops[1]}/${r.ops[0]} ops, ${r.ms.toFixed(0)} ms</span>
        <span class="res">${ok ? 'ok' : esc(verdictText(r))}</span>`;
      if (!ok) {
        li.style.cursor = 'pointer';
        li.onclick = () => showFailure(app, r);
        if (failures === 1) showFailure(app, r);
      }
      $('#t-results').prepend(li);
      summary.textContent = `${results.length}/${job.count} seeds, ${failures} violation${failures === 1 ? '' : 's'}`;
    } else if (m.type === 'done') {
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      summary.textContent = `${results.length} seeds in ${secs} s: ${failures ? `${failures} violation${failures === 1 ? '' : 's'} found` : 'no violations'} (safety checks + linearizability checker)`;
      summary.className = `summary ${failures ? 'bad' : 'good'}`;
      document.body.dataset.testDone = JSON.stringify({ seeds: results.length, failures });
      stop();
    } else if (m.type === 'error') {
      summary.textContent = `error: ${m.message}`;
      summary.className = 'summary bad';
      document.body.dataset.testDone = JSON.stringify({ error: m.message });
      stop();
    }
  };
  worker.onerror = (e) => {
    summary.textContent = `worker failed: ${e.message}`;
    document.body.dataset.testDone = JSON.stringify({ error: e.message });
    stop();
  };
  worker.postMessage(job);
}

function verdictText(r) {
  switch (r.verdict.kind) {
    case 'unsafe': return `safety violation: ${r.violations[0]}`;
    case 'not_linearizable': return `not linearizable on key ${r.verdict.key}`;
    case 'inconclusive': return `checker gave up on key ${r.verdict.key}`;
    default: return r.verdict.kind;
  }
}

function showFailure(app, r) {
  const box = $('#t-fail');
  box.innerHTML = `<h3>Seed ${r.seed}: ${esc(verdictText(r))}</h3>
    <div class="hint">${r.verdict.kind === 'not_linearizable'
      ? 'The smallest failing sub-history the checker found: no order of these operations, each taking effect at one instant between its call and its return, explains the results. The operation marked ✗ (in red) is the one without which the rest would be explained.'
      : 'The last operations of the run.'}</div>
    ${timeline(r.history)}
    <div class="row"><button id="t-load">Load seed ${r.seed} at ${r.violation_at != null ? `the violation (${secs(r.violation_at)})` : 'its end'}</button></div>
    <div class="hint">It loads on the build that failed, with the same bugs switched on under Break it.</div>`;
  $('#t-load').onclick = () => loadFailure(app, r).catch((err) => console.error(err));
}

// Loads a failing seed into the main view: on the build it failed on, at the
// moment of the violation (for a history that is not linearizable, when the
// culprit's answer arrived).
async function loadFailure(app, r) {
  app.lastFailure = r;
  const t = r.violation_at ?? r.end;
  await loadTrace(app, { options: r.options, actions: r.actions, t });
  const c = r.history.find((o) => o.culprit);
  const bugs = Object.entries(r.options.bugs || {}).filter(([, v]) => v).map(([k]) => k);
  const build = bugs.length ? `the broken build (${bugs.join(', ')})` : 'the normal build';
  const what = r.verdict.kind === 'unsafe'
    ? `The simulator's safety checks failed here: ${esc(r.violations[0] || '')}`
    : c ? `Client ${c.client}'s <code>${esc(c.op)}</code> has just returned <b>${esc(c.result)}</b>: no order of the
        operations in the history, each taking effect at one instant between its call and its return, gives that
        answer. It is marked in red in test mode's history.` : 'The history is not linearizable.';
  showBanner(app, `Seed ${r.seed}, loaded on ${build}`, `<p>Paused at ${secs(t)}, the moment of the violation. ${what}</p>
    <p class="hint">The time slider rewinds to see how it came about; the run replays exactly.</p>`);
}

// The history as a timeline: one lane per client, a bar per operation from its
// call to its return, coloured by outcome.
function timeline(ops) {
  if (!ops.length) return '';
  const t0 = Math.min(...ops.map((o) => o.call));
  const t1 = Math.max(...ops.map((o) => o.ret), t0 + 1);
  const clients = [...new Set(ops.map((o) => o.client))].sort((a, b) => a - b);
  const W = 360, lane = 34, left = 34;
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (W - left - 6);
  const color = { ok: '#16a34a', failed: '#98a2b3', unknown: '#e08a00' };
  let svg = `<svg class="hist" viewBox="0 0 ${W} ${clients.length * lane + 18}" role="img" aria-label="failing history">`;
  clients.forEach((c, i) => {
    svg += `<text x="2" y="${i * lane + 20}">c${c}</text>`;
  });
  for (const o of ops) {
    const i = clients.indexOf(o.client);
    const y = i * lane + 8;
    const w = Math.max(3, x(o.ret) - x(o.call));
    const label = `${o.culprit ? (o.op.startsWith('get ') ? '✗ stale read: ' : '✗ ') : ''}${o.op}${o.outcome === 'ok' ? ` → ${o.result}` : ` (${o.outcome})`}`;
    svg += `<g class="${o.culprit ? 'culprit' : ''}"><title>${esc(label)}: ${((o.call) / 1e3).toFixed(1)}–${(o.ret / 1e3).toFixed(1)} ms${o.culprit ? ' — the answer no order of these operations explains' : ''}</title>
      <rect x="${x(o.call)}" y="${y}" width="${w}" height="12" rx="3" fill="${color[o.outcome]}"/>
      ${x(o.call) > W / 2
        ? `<text x="${x(o.call) + w}" y="${y + 23}" text-anchor="end">${esc(label.slice(0, 40))}</text>`
        : `<text x="${x(o.call)}" y="${y + 23}">${esc(label.slice(0, 40))}</text>`}</g>`;
  }
  svg += `<text x="${left}" y="${clients.length * lane + 14}">${(t0 / 1e6).toFixed(3)} s</text>
    <text x="${W - 6}" y="${clients.length * lane + 14}" text-anchor="end">${(t1 / 1e6).toFixed(3)} s</text></svg>`;
  return svg;
}
