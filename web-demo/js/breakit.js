// Break it: switches for raft-core's deliberate bugs. Turning one on (or off)
// rebuilds the current run — the same options and actions, or the current
// tour or scenario step — on the build that has the bugs compiled in
// (web-demo/pkg-bugs, host-wasm's `bugs` feature); with every switch off the
// page runs the normal build again.

import { $, esc } from './util.js';
import { writeLocation } from './trace.js';
import { enterLesson, runScenario } from './lessons.js';
import { showTab } from './controls.js';

export const BUGS = [
  {
    key: 'commit_old_term',
    title: 'Commit old-term entries by counting',
    what: 'A leader counts an entry of an earlier term committed as soon as a majority stores it — the mistake the Raft paper’s Figure 8 warns about.',
    scenario: 'figure8',
  },
  {
    key: 'vote_without_log_check',
    title: 'Vote without the log check',
    what: 'Nodes grant votes without checking that the candidate’s log is at least as up to date as their own, so a node missing committed entries can win and overwrite them.',
    test: true,
  },
  {
    key: 'stale_read_local',
    title: 'Stale local reads',
    what: 'A leader answers reads from its own state at once, without confirming it still leads (the stale reads Jepsen found in etcd and Consul).',
    scenario: 'stale-read',
  },
  {
    key: 'no_dedup',
    title: 'No duplicate detection',
    what: 'Sessions stop recognising retried writes: a retry whose first attempt committed is applied twice.',
    scenario: 'retry',
  },
];

export function currentBugs(app) {
  const b = app.options?.bugs || {};
  return Object.fromEntries(BUGS.filter((x) => b[x.key]).map((x) => [x.key, true]));
}

// Rebuilds the run with these bugs switched on.
export async function setBugs(app, bugs) {
  const options = { ...app.options, bugs };
  await app.useBuildFor(options);
  if (app.lesson) {
    app.options = options;
    enterLesson(app, app.lesson.lesson, app.lesson.k);
  } else {
    const actions = JSON.parse(app.cluster.trace());
    const t = app.cluster.now();
    app.setPlaying(false);
    app.replay(options, actions, t);
    app.horizon = Math.max(t, app.cluster.trace_end());
    writeLocation(app);
  }
  sync(app);
}

function sync(app) {
  if (!$('#bug-list').children.length) return;
  const on = currentBugs(app);
  for (const b of BUGS) {
    const box = $(`#bug-${b.key}`);
    if (box) box.checked = !!on[b.key];
  }
  const names = Object.keys(on);
  $('#bug-status').textContent = !app.bugsAvailable
    ? 'The broken build is missing: scripts/build-web.sh builds web-demo/pkg-bugs.'
    : names.length ? `Running web-demo/pkg-bugs with ${names.join(', ')} switched on.` : 'Running the normal build (web-demo/pkg).';
}

export function initBreakIt(app) {
  $('#bug-list').innerHTML = BUGS.map((b) => `<li>
      <label><input type="checkbox" id="bug-${b.key}" data-bug="${b.key}" ${app.bugsAvailable ? '' : 'disabled'}> ${esc(b.title)}</label>
      <div class="d">${esc(b.what)} <code>${b.key}</code>
        ${b.scenario ? `<button data-try="${b.scenario}">Try: the ${b.scenario} scenario</button>` : ''}
        ${b.test ? '<button data-try-test="1">Try: test mode</button>' : ''}</div></li>`).join('');
  // The switches as they stand decide; rebuilds run one after another.
  let queue = Promise.resolve();
  $('#bug-list').addEventListener('change', (e) => {
    if (!e.target.closest('input[data-bug]')) return;
    const bugs = Object.fromEntries(BUGS.filter((b) => $(`#bug-${b.key}`).checked).map((b) => [b.key, true]));
    queue = queue.then(() => setBugs(app, bugs)).catch((err) => console.error(err));
  });
  $('#bug-list').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-try]');
    if (b) {
      runScenario(app, b.dataset.try);
      return;
    }
    if (e.target.closest('button[data-try-test]')) {
      $('#t-bugs').checked = true;
      showTab('test');
    }
  });
  app.onReset.push(() => sync(app));
  sync(app);
}
