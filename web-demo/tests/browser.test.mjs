// The web demo in a real browser: Debian's headless chromium driven by
// playwright-core, against web-demo/ served as static files on 127.0.0.1.
// Screenshots go to artifacts/ at the repository root.
//
// Run by scripts/test.sh (after scripts/build-web.sh), or alone:
//   cd web-demo/tests && npm ci && node --test browser.test.mjs
//
// Pages opened with a hash (#seed=…, #run=…, #lesson=…) never start the tour
// by themselves; the first-visit test uses a context of its own, with an
// empty profile.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from './serve.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const artifacts = path.join(root, 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let server, context;
const userDirs = [];
const errors = [];
const shots = [];

// A browser with an empty profile of its own (--user-data-dir).
async function launch(viewport = { width: 1280, height: 800 }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-chromium-'));
  userDirs.push(dir);
  return chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport });
}

before(async () => {
  fs.mkdirSync(artifacts, { recursive: true });
  server = await startServer(path.join(root, 'web-demo'));
  context = await launch();
});

after(async () => {
  await context?.close();
  await server?.close();
  for (const d of userDirs) fs.rmSync(d, { recursive: true, force: true });
  console.log('\nscreenshots:');
  for (const s of shots) console.log(`  ${s}`);
});

async function open(hash = '', ctx = context) {
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`${page.url()}: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
  await page.goto(server.url + hash);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 30_000 });
  return page;
}

async function shot(page, name, opts = {}) {
  const p = path.join(artifacts, name);
  await page.screenshot({ path: p, ...opts });
  shots.push(p);
}

const state = (page) => page.evaluate(() => JSON.parse(window.raftkv.cluster.state()));
const advance = (page, us) => page.evaluate((us) => { window.raftkv.cluster.advance(us); window.raftkv.refresh(); }, us);
const pause = (page) => page.evaluate(() => window.raftkv.setPlaying(false));
const rect = (page, sel) => page.locator(sel).first().evaluate((e) => { const r = e.getBoundingClientRect(); return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height }; });
const narration = (page) => page.evaluate(() => ({ ...document.querySelector('#narration').dataset, title: document.querySelector('#narration h2')?.textContent || '' }));

// Every piece of text on the ring, with its size on screen in CSS pixels.
const ringTextSizes = (page) => page.evaluate(() => [...document.querySelectorAll('#ring text')]
  .filter((t) => t.textContent.trim() && getComputedStyle(t).display !== 'none' && t.getBBox().width > 0)
  .map((t) => ({ text: t.textContent, px: parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a })));

// CIE76 colour difference of two #rrggbb colours.
function deltaE(a, b) {
  const lab = (hex) => {
    const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
      .map((v) => (v > 0.04045 ? ((v + 0.055) / 1.055) ** 2.4 : v / 12.92));
    const xyz = [(0.4124 * c[0] + 0.3576 * c[1] + 0.1805 * c[2]) / 0.95047, 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2],
      (0.0193 * c[0] + 0.1192 * c[1] + 0.9505 * c[2]) / 1.08883].map((t) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116));
    return [116 * xyz[1] - 16, 500 * (xyz[0] - xyz[1]), 200 * (xyz[1] - xyz[2])];
  };
  const [p, q] = [lab(a), lab(b)];
  return Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);
}

// ---------------------------------------------------------------------------
// The basics
// ---------------------------------------------------------------------------

test('the page loads with no console errors and draws every node', async () => {
  const page = await open('#seed=1');
  await page.waitForTimeout(1500);
  assert.equal(await page.locator('#ring g[data-node]').count(), 5);
  assert.equal((await narration(page)).mode, 'idle', 'a link with a run does not start the tour');
  assert.match(await page.locator('#narration').innerText(), /Take the tour/, 'the page says where to start');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a leader appears within two simulated seconds, and crashing it elects another with a higher term', async () => {
  const page = await open('#seed=2&paused');
  await page.locator('#speed').fill('0'); // real time
  await page.click('#play');
  await page.waitForFunction(() => window.raftkv.state && window.raftkv.state.leader, null, { timeout: 10_000 });
  await pause(page);
  let s = await state(page);
  assert.ok(s.now <= 2_000_000, `leader only at ${s.now} us`);
  const old = s.leader;
  const oldTerm = s.nodes[old - 1].term;
  await advance(page, 300_000);
  await shot(page, 'leader-elected.png');
  // Select the leader on the ring and crash it from the node panel.
  await page.click(`#ring g[data-node="${old}"] .node-body`);
  await page.click('#tab-node button[data-do="crash"]');
  s = await state(page);
  assert.equal(s.nodes[old - 1].role, 'down');
  await page.click('#play');
  await page.waitForFunction((old) => {
    const s = window.raftkv.state;
    return s && s.leader && s.leader !== old;
  }, old, { timeout: 15_000 });
  await pause(page);
  s = await state(page);
  assert.ok(s.nodes[s.leader - 1].term > oldTerm, 'the new leader has a higher term');
  const feed = await page.locator('#feed').innerText();
  assert.match(feed, new RegExp(`node ${old} crashed`));
  assert.match(feed, /won the election for term/);
  await page.close();
});

test('a client put through the page is on every node once committed; expect is asked only for cas', async () => {
  const page = await open('#seed=4&paused');
  await page.evaluate(() => { window.raftkv.cluster.run_until_leader(5e6); window.raftkv.refresh(); });
  await page.click('.tabs button[data-tab="client"]');
  await page.selectOption('#c-op', 'put');
  assert.equal(await page.locator('#c-expect').isVisible(), false, 'no `expect` field for put');
  assert.equal(await page.locator('#c-value').isVisible(), true);
  await page.selectOption('#c-op', 'cas');
  assert.equal(await page.locator('#c-expect').isVisible(), true, '`expect` for cas');
  await page.selectOption('#c-op', 'get');
  assert.equal(await page.locator('#c-value').isVisible(), false, 'no value for get');
  await page.selectOption('#c-op', 'put');
  await page.fill('#c-key', 'greeting');
  await page.fill('#c-value', 'hello');
  await page.click('#c-send');
  // The client is on the ring, with a line to the node it waits for.
  const s0 = await state(page);
  const to = s0.client.pending[0].node;
  assert.equal(await page.locator(`#ring line[data-client-to="${to}"]`).count(), 1, 'the pending request is drawn');
  assert.match(await page.locator('#ring .client').textContent(), /client/);
  await advance(page, 1_000_000);
  const s = await state(page);
  for (const n of s.nodes) {
    assert.deepEqual(n.kv.find(([k]) => k === 'greeting'), ['greeting', 'hello'], `node ${n.id}`);
    assert.ok(n.commit >= n.log.find((e) => e.s.startsWith('greeting=')).i, `committed at node ${n.id}`);
  }
  await page.waitForTimeout(200);
  assert.match(await page.locator('#c-answers').innerText(), /greeting="hello" \(seq 1\) at node \d → ok/);
  assert.equal((await page.locator('#log-table').innerText()).match(/greeting=hello/g).length, 5);
  await page.close();
});

test('a leader partitioned into a minority cannot commit and its read fails', async () => {
  const page = await open('#paused');
  await page.click('.tabs button[data-tab="scenarios"]');
  await page.click('button[data-scenario="minority"]');
  const s0 = await state(page);
  const old = s0.leader;
  const commit0 = s0.nodes[old - 1].commit;
  const last0 = s0.nodes[old - 1].last;
  assert.ok(last0 > commit0, 'the put at the minority leader is in its log, uncommitted');
  await advance(page, 1_500_000);
  const s = await state(page);
  assert.equal(s.nodes[old - 1].commit, commit0, 'the minority leader committed nothing more');
  assert.ok(s.leader && s.leader !== old, 'the majority elected a new leader');
  assert.ok(s.nodes[s.leader - 1].term > s0.nodes[old - 1].term);
  const failedRead = s.client.answers.find((a) => a.text === 'get x' && a.node === old);
  assert.ok(failedRead && !failedRead.ok, `the read at node ${old} failed: ${JSON.stringify(s.client.answers)}`);
  await page.waitForTimeout(300);
  await shot(page, 'minority-partition.png');
  await page.close();
});

test('the time slider rewinds and replays to the same state; a shared link reproduces the run', async () => {
  const page = await open('#seed=6&paused');
  await page.evaluate(() => {
    const app = window.raftkv;
    app.cluster.run_until_leader(5e6);
    app.act({ op: 'client', node: 0, req: { kind: 'put', key: 'a', value: '1' } });
    app.cluster.advance(400e3);
    app.act({ op: 'crash', node: 2 });
    app.cluster.advance(700e3);
    app.act({ op: 'start_clients', count: 3, keys: 2 });
    app.cluster.advance(900e3);
    app.act({ op: 'partition', side: [1, 3] });
    app.cluster.advance(1200e3);
    app.act({ op: 'restart', node: 2 });
    app.act({ op: 'heal' });
    app.cluster.advance(800e3);
    app.refresh();
  });
  const endState = await page.evaluate(() => window.raftkv.cluster.state());
  const end = JSON.parse(endState).now;
  // Rewind to the middle with the slider (it works in milliseconds) …
  await page.locator('#time').fill(String(Math.round(end / 2000)));
  await page.waitForFunction((t) => Math.abs(window.raftkv.cluster.now() - t) < 2000, end / 2, { timeout: 10_000 });
  const mid = await state(page);
  assert.ok(mid.now < end);
  assert.ok(mid.actions[1] < mid.actions[0], 'later actions wait ahead');
  await shot(page, 'rewound.png');
  // … and forward again to the end: the same state, byte for byte.
  await page.evaluate((t) => { window.raftkv.seek(t); }, end);
  assert.equal(await page.evaluate(() => window.raftkv.cluster.state()), endState);
  // Share: the link carries seed, actions, time and speed.
  await page.locator('#speed').fill('1.5');
  await page.click('#share');
  const url = page.url();
  assert.match(url, /[#&]run=/);
  assert.match(url, /[#&]speed=32/);
  const other = await open(url.slice(server.url.length));
  assert.equal(await other.evaluate(() => window.raftkv.cluster.state()), endState);
  assert.equal(await other.locator('#speed-out').textContent(), '1/32');
  await other.close();
  await page.close();
});

test('60 frames per second with 5 nodes under load', async () => {
  const page = await open('#seed=7');
  await page.evaluate(() => window.raftkv.act({ op: 'start_clients', count: 4, keys: 3 }));
  await page.waitForTimeout(3000);
  const ms = await page.evaluate(() => window.raftkv.frameMs);
  console.log(`  average work per frame under load: ${ms.toFixed(2)} ms`);
  assert.ok(ms < 8, `a frame takes ${ms} ms`);
  await shot(page, 'under-load.png');
  await page.close();
});

// ---------------------------------------------------------------------------
// The tour
// ---------------------------------------------------------------------------

test('the tour: a first visit starts it; each step is paused beside the ring; Back, Continue, link and dismissal work', async () => {
  const ctx = await launch();
  const page = await open('', ctx);
  let n = await narration(page);
  assert.equal(n.mode, 'lesson', 'a first visit starts the tour');
  assert.equal(n.lesson, 'tour');
  assert.equal(n.step, '1');
  // The text is beside the ring, in view.
  const ring = await rect(page, '.ring-box');
  const box = await rect(page, '#narration');
  assert.ok(box.left >= ring.right - 1 && box.top < ring.bottom && box.bottom > ring.top, `beside: ${JSON.stringify({ ring, box })}`);
  assert.ok(box.right <= 1280 && box.bottom <= 800 && box.top >= 0, 'in view');
  assert.ok((await rect(page, '#n-next')).bottom <= 800, 'Continue is in view');
  const steps = [];
  for (let k = 2; k <= 6; k++) {
    await page.click('#n-next');
    n = await narration(page);
    assert.equal(n.step, String(k));
    const t = await page.evaluate(() => window.raftkv.cluster.now());
    await page.waitForTimeout(300);
    assert.equal(await page.evaluate(() => window.raftkv.cluster.now()), t, `step ${k} is paused at its point`);
    assert.equal(await page.evaluate(() => window.raftkv.playing), false);
    steps.push({ k, t, title: n.title, s: await page.evaluate(() => window.raftkv.cluster.state()) });
  }
  const at = (k) => JSON.parse(steps.find((x) => x.k === k).s);
  assert.ok(at(2).nodes.some((x) => x.role === 'pre-candidate') && at(2).messages.some((m) => m.type === 'PreVote'), 'step 2: a pre-vote on the wire');
  assert.ok(at(3).nodes.some((x) => x.role === 'candidate') && at(3).messages.some((m) => m.type === 'Vote'), 'step 3: votes on the wire');
  assert.ok(at(4).leader, 'step 4: a leader');
  const l = at(6).leader;
  assert.equal(at(6).nodes[l - 1].kv.find(([k]) => k === 'x')?.[1], '1', 'step 6: x=1 committed at the leader');
  assert.match(await page.locator(`#ring g[data-node="${l}"] .node-info`).textContent(), new RegExp(`commit ${at(6).nodes[l - 1].commit}$`));
  await shot(page, 'tour-step.png');
  // Back lands on the same point as before, byte for byte.
  await page.click('#n-next');
  await page.click('[data-n="back"]');
  assert.equal((await narration(page)).step, '6');
  assert.equal(await page.evaluate(() => window.raftkv.cluster.state()), steps.find((x) => x.k === 6).s);
  // Watch plays at the chosen speed and stops at the step's end.
  await page.locator('#speed').fill('0');
  await page.click('#n-watch');
  await page.waitForFunction(() => !window.raftkv.playing, null, { timeout: 10_000 });
  const watched = await state(page);
  assert.ok(watched.nodes.every((x) => x.kv.some(([k, v]) => k === 'x' && v === '1')), 'the followers applied x=1');
  // The link holds the step and the speed; it reproduces the state.
  await page.locator('#speed').fill('1.7');
  await page.evaluate(() => window.raftkv.setPlaying(false));
  const url = page.url();
  assert.match(url, /lesson=tour&step=6/);
  assert.match(url, /speed=50/);
  const again = await open(url.slice(server.url.length), ctx);
  assert.equal((await narration(again)).step, '6');
  assert.equal(await again.locator('#speed-out').textContent(), '1/50');
  assert.equal(await again.evaluate(() => window.raftkv.cluster.state()), await page.evaluate(() => window.raftkv.cluster.state()));
  await again.close();
  // Dismissed, it stays dismissed.
  await page.click('[data-n="close"]');
  assert.equal(await page.evaluate(() => localStorage.getItem('raftkv.tour')), 'dismissed');
  const later = await open('', ctx);
  assert.equal((await narration(later)).mode, 'idle', 'the tour does not come back once dismissed');
  await later.close();
  await page.close();
  await ctx.close();
});

test('every tour step builds, pauses and explains, Figure 8 to linearizable reads included', async () => {
  const page = await open('#lesson=tour&step=7');
  for (let k = 8; k <= 13; k++) {
    await page.click('#n-next');
    const n = await narration(page);
    assert.equal(n.step, String(k));
    assert.ok((await page.locator('#narration .n-body').innerText()).length > 150, `step ${k} explains`);
    assert.equal(await page.evaluate(() => window.raftkv.playing), false);
    const s = await state(page);
    assert.equal(s.violations.length, 0, `step ${k} is safe`);
    if (k === 10) assert.ok(s.nodes.filter((x) => x.log.some((e) => e.s.startsWith('x="1"'))).length >= 3, 'Figure 8: X on a majority');
    if (k === 11) assert.ok(s.messages.some((m) => m.type === 'InstallSnapshot'), 'a snapshot on the wire');
  }
  await page.click('#n-next');
  assert.equal((await narration(page)).mode, 'idle', 'Finish closes the tour');
  await page.close();
});

test('phone: a one-row bar, the legend, and the tour text right under the ring on the first screen', async () => {
  const ctx = await launch({ width: 390, height: 844 });
  const page = await open('#lesson=tour&step=3', ctx);
  await page.waitForTimeout(300);
  const bar = await rect(page, '.bar');
  assert.ok(bar.height <= 56, `the bar takes ${bar.height} px`);
  const ring = await rect(page, '.ring-box');
  const legend = await rect(page, '#legend');
  const box = await rect(page, '#narration');
  const next = await rect(page, '#n-next');
  assert.ok(legend.height > 10 && legend.top >= ring.bottom - 1 && legend.bottom <= 844, `legend shown: ${JSON.stringify(legend)}`);
  assert.ok(box.top >= legend.bottom - 1 && box.top - ring.bottom < 90, `the text follows the ring: ${JSON.stringify({ ring, box })}`);
  assert.ok(next.bottom <= 844, `Continue is on the first screen: ${JSON.stringify(next)}`);
  const sizes = await ringTextSizes(page);
  const small = sizes.filter((x) => x.px < 12);
  assert.ok(sizes.length >= 10 && small.length === 0, `ring text under 12 px on a phone: ${JSON.stringify(small)}`);
  await shot(page, 'phone.png');
  await shot(page, 'phone-full.png', { fullPage: true });
  await page.close();
  await ctx.close();
});

// ---------------------------------------------------------------------------
// The ring
// ---------------------------------------------------------------------------

test('ring labels are at least 12 px on screen at 1280×800', async () => {
  const page = await open('#seed=3&paused');
  await page.evaluate(() => { const a = window.raftkv; a.cluster.run_until_leader(5e6); a.act({ op: 'client', node: 0, req: { kind: 'put', key: 'x', value: '1' } }); });
  const sizes = await ringTextSizes(page);
  const small = sizes.filter((x) => x.px < 12);
  assert.ok(sizes.length >= 12, `labels found: ${sizes.length}`);
  assert.deepEqual(small, [], 'labels under 12 px');
  await page.close();
});

test("the leader's commit label follows its commit index", async () => {
  const page = await open('#seed=5&paused');
  const label = (l) => page.locator(`#ring g[data-node="${l}"] .node-info`).textContent();
  const l = await page.evaluate(() => { const a = window.raftkv; const l = a.cluster.run_until_leader(5e6); a.cluster.advance(100e3); a.refresh(); return l; });
  const before = (await state(page)).nodes[l - 1].commit;
  assert.match(await label(l), new RegExp(`commit ${before}$`));
  // More commits with the same role, term and votes: only the commit index changes.
  for (let i = 0; i < 3; i++) {
    await page.evaluate(() => window.raftkv.act({ op: 'client', node: 0, req: { kind: 'put', key: 'k', value: 'v' } }));
    await advance(page, 200_000);
  }
  const after = (await state(page)).nodes[l - 1].commit;
  assert.ok(after > before);
  assert.match(await label(l), new RegExp(`commit ${after}$`), 'the label is not stale');
  await page.close();
});

test('roles and message kinds have distinct colours, and the drawing uses them', async () => {
  const page = await open('#seed=2&paused');
  const pal = await page.evaluate(async () => {
    const m = await import('./js/palette.js');
    return { roles: m.ROLE_COLORS, msgs: m.MSG_COLORS, refused: m.REFUSED };
  });
  const all = [...Object.entries(pal.roles).map(([k, v]) => [`role ${k}`, v]), ...Object.entries(pal.msgs).map(([k, v]) => [`msg ${k}`, v]), ['refused', pal.refused]];
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      const d = deltaE(all[i][1], all[j][1]);
      assert.ok(d >= 25, `${all[i][0]} and ${all[j][0]} are too alike (ΔE ${d.toFixed(1)})`);
    }
  }
  // What is drawn: every node's fill is its role's colour, every message its kind's (or refused).
  await page.evaluate(() => {
    const a = window.raftkv;
    for (let k = 0; k < 4000 && !JSON.parse(a.cluster.state()).messages.some((m) => m.type === 'Vote'); k++) a.cluster.step();
    a.refresh();
  });
  const drawn = await page.evaluate(() => ({
    nodes: [...document.querySelectorAll('#ring g[data-node]')].map((g) => [g.dataset.node, g.querySelector('.node-body').getAttribute('fill')]),
    msgs: [...document.querySelectorAll('#ring g[data-msg]')].map((g) => [g.dataset.type, g.querySelector('.mark').getAttribute('fill'), getComputedStyle(g.querySelector('.mark')).stroke]),
  }));
  const s = await state(page);
  for (const [id, fill] of drawn.nodes) assert.equal(fill, pal.roles[s.nodes[id - 1].role], `node ${id}`);
  assert.ok(drawn.msgs.length > 0);
  for (const [type, fill, stroke] of drawn.msgs) {
    assert.ok(fill === pal.msgs[type] || fill === pal.refused, `${type} drawn ${fill}`);
    assert.notEqual(stroke, 'rgb(255, 255, 255)', 'messages have a dark outline, so light ones show on white');
  }
  await page.close();
});

test('a click on a message just leaving a node opens the message, not the node', async () => {
  const page = await open('#seed=4&paused');
  const picked = await page.evaluate(() => {
    const a = window.raftkv;
    const l = a.cluster.run_until_leader(5e6);
    a.cluster.advance(60e3);
    a.selected = l === 1 ? 2 : 1;
    a.act({ op: 'client', node: l, req: { kind: 'put', key: 'x', value: '1' } });
    // The request goes out at once: its first Append is on the wire, next to the leader.
    const m = a.state.messages.find((x) => x.from === l && a.state.now - x.sent < 1000);
    return { l, id: m && m.id, selected: a.selected };
  });
  assert.ok(picked.id, 'a message just sent');
  const r = await rect(page, `#ring g[data-msg="${picked.id}"] .mark`);
  const node = await rect(page, `#ring g[data-node="${picked.l}"] .node-body`);
  const gap = Math.hypot((r.left + r.right) / 2 - (node.left + node.right) / 2, (r.top + r.bottom) / 2 - (node.top + node.bottom) / 2);
  assert.ok(gap < node.width, `the message is near the node (${gap.toFixed(1)} px)`);
  // Click where the message overlaps the node's timer ring (the old drawing
  // gave such clicks to the node).
  const [mx, my] = [(r.left + r.right) / 2, (r.top + r.bottom) / 2];
  const [nx, ny] = [(node.left + node.right) / 2, (node.top + node.bottom) / 2];
  const k = (node.width / 2 + 7) / gap;
  await page.mouse.click(nx + (mx - nx) * k, ny + (my - ny) * k);
  assert.equal(await page.locator('#msg-pop').isVisible(), true, 'the message popup opened');
  assert.equal(await page.locator('#msg-pop').getAttribute('data-msg'), String(picked.id));
  assert.equal(await page.evaluate(() => window.raftkv.selected), picked.selected, 'the node was not selected');
  await page.close();
});

test('vote marks never cover a node number', async () => {
  const page = await open('#seed=2&paused');
  await page.evaluate(() => {
    const a = window.raftkv;
    for (let k = 0; k < 20000; k++) {
      const s = JSON.parse(a.cluster.state());
      if (s.nodes.some((n) => (n.role === 'candidate' || n.role === 'pre-candidate') && n.votes.filter(([f]) => f !== n.id).length >= 1)) break;
      a.cluster.step();
    }
    a.refresh();
  });
  const overlaps = await page.evaluate(() => {
    const out = [];
    let votes = 0;
    for (const g of document.querySelectorAll('#ring g[data-node]')) {
      const id = g.querySelector('.node-id').getBoundingClientRect();
      for (const v of g.querySelectorAll('.vote')) {
        votes++;
        const r = v.getBoundingClientRect();
        if (r.left < id.right && r.right > id.left && r.top < id.bottom && r.bottom > id.top) out.push(g.dataset.node);
      }
    }
    return { out, votes };
  });
  assert.ok(overlaps.votes >= 1, 'vote marks are drawn');
  assert.deepEqual(overlaps.out, []);
  await page.close();
});

test('the default speed shows a message crossing for about a second; pre-candidate, probe and ticks are explained', async () => {
  const page = await open('#seed=3');
  assert.equal(await page.evaluate(() => window.raftkv.speed), 0.01);
  assert.equal(await page.locator('#speed-out').textContent(), '1/100');
  const id = await page.evaluate(() => new Promise((ok) => {
    const look = () => {
      const m = window.raftkv.state.messages.find((x) => window.raftkv.state.now - x.sent < 2000);
      if (m) ok(m.id); else requestAnimationFrame(look);
    };
    look();
  }));
  const t0 = Date.now();
  await page.waitForFunction((id) => !window.raftkv.state.messages.some((m) => m.id === id), id, { timeout: 10_000 });
  const crossed = Date.now() - t0;
  assert.ok(crossed >= 800, `a message crossed in ${crossed} ms`);
  // The words: in the help dialog, and on a tap where they appear.
  const help = await page.locator('#help-glossary').textContent();
  for (const w of ['pre-candidate', 'probe', 'tick', 'term', 'commit index', 'ReadIndex']) assert.ok(help.includes(w), `glossary has ${w}`);
  await page.locator('#legend [data-term="pre-candidate"]').click();
  assert.equal(await page.locator('#term-pop').isVisible(), true);
  assert.match(await page.locator('#term-pop').textContent(), /asks the others whether it could win/);
  await page.close();
  // "probe" in the log table, explained on a tap.
  const p2 = await open('#paused');
  await p2.click('.tabs button[data-tab="scenarios"]');
  await p2.click('button[data-scenario="catch-up"]');
  const probe = p2.locator('#log-table [data-term]').first();
  assert.ok(['probe', 'replicate', 'snapshot'].includes(await probe.getAttribute('data-term')));
  await probe.click();
  assert.equal(await p2.locator('#term-pop').isVisible(), true);
  await p2.close();
});

// ---------------------------------------------------------------------------
// Logs and feed
// ---------------------------------------------------------------------------

test('at 200 entries the log table shows the newest entries and the key-value state unclipped', async () => {
  const page = await open('#seed=9&paused');
  await page.evaluate(() => {
    const a = window.raftkv;
    const l = a.cluster.run_until_leader(5e6);
    a.act({ op: 'start_clients', count: 8, keys: 4 });
    for (let k = 0; k < 400 && a.cluster.last_index(l) < 200; k++) a.cluster.advance(50e3);
    a.act({ op: 'stop_clients' });
    a.cluster.advance(500e3);
    a.refresh();
  });
  const s = await state(page);
  const hi = Math.max(...s.nodes.map((n) => n.last));
  assert.ok(hi >= 200, `entries: ${hi}`);
  const m = await page.evaluate(() => {
    const wrap = document.querySelector('#log-wrap').getBoundingClientRect();
    const cells = [...document.querySelectorAll('#log-table td, #log-table th')];
    const out = cells.filter((c) => {
      const r = c.getBoundingClientRect();
      return r.width > 0 && (r.left < wrap.left - 0.5 || r.right > wrap.right + 0.5 || r.bottom > wrap.bottom + 0.5);
    }).map((c) => c.textContent);
    const overflow = cells.filter((c) => c.scrollWidth > c.clientWidth + 1 || c.scrollHeight > c.clientHeight + 1).map((c) => c.textContent);
    const heads = [...document.querySelectorAll('#log-table th[data-i]')].map((h) => Number(h.dataset.i));
    const kv = [...document.querySelectorAll('#log-table td.kvcol')].map((c) => c.textContent);
    const withCommand = [...document.querySelectorAll('#log-table td.e .c')].filter((c) => c.textContent.length > 0).length;
    return { out, overflow, heads, kv, withCommand };
  });
  assert.deepEqual(m.out, [], 'cells outside the visible table');
  assert.deepEqual(m.overflow, [], 'cells whose text is cut off');
  assert.equal(Math.max(...m.heads), hi, 'the newest index is shown');
  assert.ok(m.heads.length >= 8, `columns: ${m.heads.length}`);
  assert.ok(m.kv.every((t) => /k\d=|…/.test(t)), `key-value state in every row: ${m.kv}`);
  assert.ok(m.withCommand >= m.heads.length * 4, 'cells show their command, not only the term');
  // A tap on a cell shows its whole entry (no hover on a phone).
  await page.locator('#log-table td.e').last().click();
  assert.match(await page.locator('#log-detail').textContent(), /^node \d, entry \d+, term \d+: .+ \((committed|not committed yet)\)/);
  // Older entries are a click away.
  await page.click('#log-older');
  const older = await page.evaluate(() => Math.max(...[...document.querySelectorAll('#log-table th[data-i]')].map((h) => Number(h.dataset.i))));
  assert.ok(older < hi);
  await shot(page, 'log-200.png');
  await page.close();
});

test('the feed: one line per run of commits, and "details" shows the minor lines', async () => {
  const page = await open('#seed=7&paused');
  await page.evaluate(() => {
    const a = window.raftkv;
    a.cluster.run_until_leader(5e6);
    a.act({ op: 'start_clients', count: 4, keys: 3 });
    for (let k = 0; k < 20; k++) { a.cluster.advance(100e3); a.refresh(); }
  });
  const lines = await page.evaluate(() => [...document.querySelectorAll('#feed li')].map((li) => ({ text: li.textContent, minor: li.classList.contains('minor'), shown: li.offsetParent !== null })));
  const commits = lines.filter((x) => /committed/.test(x.text));
  const ops = (await state(page)).stats.ops_ok;
  assert.ok(ops > 30, `client operations: ${ops}`);
  assert.ok(commits.length >= 1 && commits.length <= 4, `commit lines: ${commits.map((x) => x.text).join('\n')}`);
  assert.ok(commits.some((x) => /commits since/.test(x.text)), 'a line stands for many commits');
  assert.ok(!lines.some((x) => /learned that entries up to \d+ are committed$/.test(x.text) && x.shown), 'no line per follower per commit');
  // details off: minor lines hidden; on: shown.
  assert.ok(lines.some((x) => x.minor), 'there are minor lines');
  assert.ok(lines.filter((x) => x.minor).every((x) => !x.shown), 'hidden without details');
  await page.check('#feed-minor');
  const shown = await page.evaluate(() => [...document.querySelectorAll('#feed li.minor')].filter((li) => li.offsetParent !== null).length);
  assert.ok(shown > 0, 'details shows them');
  await page.uncheck('#feed-minor');
  assert.equal(await page.evaluate(() => [...document.querySelectorAll('#feed li.minor')].filter((li) => li.offsetParent !== null).length), 0);
  await page.close();
});

// ---------------------------------------------------------------------------
// Scenarios and Break it
// ---------------------------------------------------------------------------

test('after Run, every scenario is explained beside the ring, paused, in view', async () => {
  const page = await open('#paused');
  await page.click('.tabs button[data-tab="scenarios"]');
  const ids = await page.evaluate(() => [...document.querySelectorAll('button[data-scenario]')].map((b) => b.dataset.scenario));
  assert.ok(ids.length >= 7);
  for (const id of ids) {
    await page.click(`button[data-scenario="${id}"]`);
    const n = await narration(page);
    assert.equal(n.lesson, id);
    const box = await rect(page, '#narration');
    const body = await rect(page, '#narration .n-body');
    assert.ok(box.top >= 0 && box.bottom <= 800 && box.left >= 0 && box.right <= 1280, `${id}: the text is in view`);
    assert.ok(body.height > 60, `${id}: the text has room`);
    assert.ok((await rect(page, '#n-next')).bottom <= 800, `${id}: Next is in view`);
    assert.ok((await page.locator('#narration .n-body').innerText()).length > 100, id);
    assert.equal(await page.evaluate(() => window.raftkv.playing), false, `${id}: paused at its point`);
  }
  // Split vote: it opens on the split itself, not ten seconds before it.
  await page.click('button[data-scenario="split-vote"]');
  const split = await state(page);
  assert.ok(split.nodes.filter((n) => n.role === 'candidate').length >= 2, 'two candidates at once');
  await page.close();
});

test('every scenario runs, and Figure 8 plays its five steps with x=1 surviving', async () => {
  const page = await open('#paused');
  await page.click('.tabs button[data-tab="scenarios"]');
  // The retry scenario: the value was applied once, on every node.
  await page.click('button[data-scenario="retry"]');
  await advance(page, 1_000_000);
  const r = await state(page);
  for (const n of r.nodes.filter((n) => n.up)) assert.deepEqual(n.kv.find(([k]) => k === 'k'), ['k', 'a'], `node ${n.id}`);
  // Catch-up by InstallSnapshot, and the split vote, checked from the feed.
  await page.click('button[data-scenario="catch-up"]');
  await advance(page, 2_000_000);
  assert.match(await page.evaluate(() => window.raftkv.cluster.feed(0)), /installed the leader's snapshot/);
  await page.click('button[data-scenario="split-vote"]');
  await advance(page, 3_000_000);
  const split = await state(page);
  assert.ok(split.nodes[split.leader - 1].term >= 2, 'the first election split');
  // The stale-read scenario: the read at the deposed leader waits.
  await page.click('button[data-scenario="stale-read"]');
  await advance(page, 600_000);
  assert.ok(!(await state(page)).client.answers.some((a) => a.text === 'get x' && a.ok), 'no answer from a deposed leader');
  await page.click('button[data-scenario="figure8"]');
  for (let i = 2; i <= 5; i++) {
    await page.click('#n-next');
    assert.match((await narration(page)).title, new RegExp(`^${i}\\.`));
  }
  await advance(page, 2_500_000);
  const f8 = await state(page);
  assert.equal(f8.violations.length, 0);
  for (const n of f8.nodes.filter((n) => n.up)) {
    const x = n.log.find((e) => e.s.startsWith('x="1"'));
    assert.ok(x, `x=1 survived on node ${n.id}`);
  }
  await shot(page, 'figure8.png');
  await page.close();
});

test('Break it: Figure 8 with old-term commits on overwrites a committed entry, and the run pauses red at that event', async () => {
  const page = await open('#paused');
  await page.click('.tabs button[data-tab="break"]');
  await page.check('#bug-commit_old_term');
  await page.waitForFunction(() => window.raftkv.pkg === 'pkg-bugs' && window.raftkv.state.bugs_build);
  assert.match(await page.locator('#bug-status').textContent(), /pkg-bugs with commit_old_term/);
  await page.click('[data-try="figure8"]');
  for (let i = 2; i <= 5; i++) await page.click('#n-next');
  assert.match(await page.locator('#narration .n-body').innerText(), /committed entry is\s+lost/);
  const before = await state(page);
  const i = await page.evaluate(() => window.raftkv.lesson.ctx.i);
  assert.equal(before.violations.length, 0, 'nothing is wrong yet');
  assert.ok(before.committed >= i, `X (index ${i}) counted committed: ${before.committed}`);
  await page.locator('#speed').fill('0.5');
  await page.click('#n-watch');
  await page.waitForFunction(() => !window.raftkv.playing, null, { timeout: 20_000 });
  // First stop: node 5 wins without the committed entry.
  let s = await state(page);
  assert.ok(s.violations.length > 0, 'the safety checks failed');
  assert.match(s.violations[0], /leader completeness: node 5 leads/);
  assert.equal(s.first_violation, s.now, 'paused at the event that broke them');
  await page.waitForTimeout(200);
  assert.equal(await page.locator('#invariants').getAttribute('class'), 'invariants bad');
  assert.equal(await page.locator('#stage-note').isVisible(), true);
  assert.equal(await page.locator(`#log-table td.overwritten[data-n="5"][data-i="${i}"]`).count(), 1, "node 5's entry is marked");
  assert.equal(await page.locator('#broken-badge').isVisible(), true);
  // Second stop: its entry replaces the committed X on a follower.
  const first = s.violations.length;
  await page.click('#play');
  await page.waitForFunction((n) => !window.raftkv.playing && JSON.parse(window.raftkv.cluster.state()).violations.length > n, first, { timeout: 20_000 });
  s = await state(page);
  assert.match(s.violations.slice(first).join('\n'), new RegExp(`truncated committed entry ${i}`));
  await page.waitForTimeout(200);
  assert.match(await page.locator('#feed').innerText(), /a committed entry is lost/);
  const marked = await page.evaluate(() => [...document.querySelectorAll('#log-table td.overwritten')].map((td) => td.dataset.n));
  assert.ok(marked.some((n) => n === '3' || n === '4'), `the overwritten follower cell is marked: ${marked}`);
  await shot(page, 'figure8-broken.png');
  // Switched off, the same step is rebuilt on the normal build and nothing breaks.
  await page.click('.tabs button[data-tab="break"]');
  await page.uncheck('#bug-commit_old_term');
  await page.waitForFunction(() => window.raftkv.pkg === 'pkg' && !window.raftkv.state.bugs_build);
  assert.equal((await narration(page)).step, '5');
  await advance(page, 2_500_000);
  assert.equal((await state(page)).violations.length, 0);
  await page.close();
});

test('Break it: stale local reads make the deposed leader answer x=1; no duplicate detection applies a retry twice', async () => {
  const page = await open('#paused');
  await page.click('.tabs button[data-tab="break"]');
  await page.check('#bug-stale_read_local');
  await page.waitForFunction(() => window.raftkv.pkg === 'pkg-bugs');
  await page.click('[data-try="stale-read"]');
  await advance(page, 300_000);
  const s = await state(page);
  const read = s.client.answers.find((a) => a.text === 'get x');
  assert.ok(read && read.ok && read.result === '"1"', `a stale answer: ${JSON.stringify(read)}`);
  // The link carries the switch: it reproduces the run on the broken build.
  await pause(page);
  const other = await open(page.url().slice(server.url.length));
  assert.equal(await other.evaluate(() => window.raftkv.pkg), 'pkg-bugs');
  assert.equal(await other.evaluate(() => window.raftkv.cluster.state()), await page.evaluate(() => window.raftkv.cluster.state()));
  assert.equal(await other.locator('#bug-stale_read_local').isChecked(), true);
  await other.close();
  await page.click('.tabs button[data-tab="break"]');
  await page.uncheck('#bug-stale_read_local');
  await page.check('#bug-no_dedup');
  await page.waitForFunction(() => window.raftkv.options.bugs.no_dedup && !window.raftkv.options.bugs.stale_read_local);
  await page.click('[data-try="retry"]');
  await advance(page, 1_000_000);
  const r = await state(page);
  assert.ok(r.nodes.filter((n) => n.up).every((n) => n.kv.some(([k, v]) => k === 'k' && v === 'aa')), 'the retry applied twice');
  await page.close();
});

// ---------------------------------------------------------------------------
// Test mode
// ---------------------------------------------------------------------------

async function runTestMode(page, count, bugs) {
  await page.click('.tabs button[data-tab="test"]');
  await page.fill('#t-count', String(count));
  await page.fill('#t-first', '1');
  await page.fill('#t-secs', '10');
  if (bugs) await page.check('#t-bugs');
  else await page.uncheck('#t-bugs');
  await page.evaluate(() => { delete document.body.dataset.testDone; });
  await page.click('#t-run');
  await page.waitForSelector('body[data-test-done]', { timeout: 120_000 });
  return JSON.parse(await page.evaluate(() => document.body.dataset.testDone));
}

test('test mode: no violations on a few seeds; the stale-read build is caught and loads at the stale read', async () => {
  const page = await open('#seed=1&paused');
  const clean = await runTestMode(page, 4, false);
  assert.deepEqual(clean, { seeds: 4, failures: 0 });
  assert.match(await page.locator('#t-summary').innerText(), /no violations/);
  await page.waitForFunction(() => !document.querySelector('#t-bugs').disabled);
  const broken = await runTestMode(page, 16, true);
  assert.equal(broken.seeds, 16);
  assert.ok(broken.failures >= 1, 'stale reads went unnoticed');
  assert.match(await page.locator('#t-fail').innerText(), /not linearizable on key/);
  assert.equal(await page.locator('#t-fail svg.hist rect').count() > 0, true, 'the failing history is drawn');
  assert.equal(await page.locator('#t-fail svg.hist g.culprit').count(), 1, 'the stale read is marked');
  assert.match(await page.locator('#t-fail svg.hist g.culprit').textContent(), /✗ stale read: get /);
  await page.locator('#t-fail').scrollIntoViewIfNeeded();
  await shot(page, 'test-mode-violation.png');
  const hist = path.join(artifacts, 'test-mode-history.png');
  await page.locator('#t-fail').screenshot({ path: hist });
  shots.push(hist);
  // The failing seed loads on the build that failed, at the stale read.
  await page.click('#t-load');
  await page.waitForFunction(() => window.raftkv.lastFailure && window.raftkv.pkg === 'pkg-bugs' && window.raftkv.options.bugs.stale_read_local);
  const f = await page.evaluate(() => window.raftkv.lastFailure);
  const culprit = f.history.find((o) => o.culprit);
  assert.ok(culprit && culprit.op.startsWith('get '));
  const s = await state(page);
  assert.equal(s.now, f.violation_at);
  assert.equal(f.violation_at, culprit.ret, 'the moment is when the stale answer arrived');
  const h = JSON.parse(await page.evaluate(() => window.raftkv.cluster.history()));
  assert.ok(h.some((o) => o.client === culprit.client && o.call === culprit.call && o.ret === culprit.ret && o.result === culprit.result), 'the replay has just delivered that read');
  assert.equal(await page.locator('#bug-stale_read_local').isChecked(), true, 'Break it shows the bug');
  assert.match(await page.locator('#narration').innerText(), /loaded on the broken build \(stale_read_local\)/);
  await page.close();
});

// ---------------------------------------------------------------------------
// Membership
// ---------------------------------------------------------------------------

// A page with a leader that has committed an entry of its term (it takes changes).
async function settled(hash) {
  const page = await open(hash);
  const l = await page.evaluate(() => {
    const a = window.raftkv;
    const l = a.cluster.run_until_leader(5e6);
    a.cluster.advance(300e3);
    a.refresh();
    return l;
  });
  return { page, l };
}

const nodeButton = (page, what) => page.locator(`#tab-node button[data-do="${what}"]`);
const ringNode = (page, id) => page.locator(`#ring g[data-node="${id}"]`);
const selectNode = (page, id) => page.evaluate((id) => { document.querySelector(`#ring g[data-node="${id}"] .node-body`).dispatchEvent(new MouseEvent('click', { bubbles: true })); }, id);

test('add node: the ring shows it as a learner on the bench, then as a voter on the ring after Promote', async () => {
  const { page } = await settled('#seed=3&paused');
  await nodeButton(page, 'add_node_learner').click();
  let s = await state(page);
  assert.equal(s.nodes.length, 6);
  assert.equal(s.nodes[5].member, 'learner');
  assert.deepEqual(s.config.learners, [6]);
  assert.match(await ringNode(page, 6).getAttribute('class'), /\bbench\b.*m-learner/);
  assert.match(await ringNode(page, 6).locator('.node-role').textContent(), /^learner/);
  // Its ring and bench places: below every voter.
  const y = async (id) => (await ringNode(page, id).locator('.node-body').boundingBox()).y;
  for (let id = 1; id <= 5; id++) assert.ok(await y(6) > await y(id), `the learner sits below node ${id}`);
  // The node lists offer it.
  assert.ok(await page.locator('#c-node option[value="6"]').count() === 1);
  await advance(page, 1_000_000);
  assert.match(await ringNode(page, 6).locator('.node-info').textContent(), /caught up/);
  await shot(page, 'membership-learner.png');
  assert.match(await page.evaluate(() => window.raftkv.cluster.feed(0)), /learner 6 has caught up/);
  await selectNode(page, 6);
  await nodeButton(page, 'promote').click();
  await advance(page, 300_000);
  s = await state(page);
  assert.equal(s.nodes[5].member, 'voter');
  assert.deepEqual(s.config.voters, [1, 2, 3, 4, 5, 6]);
  assert.doesNotMatch(await ringNode(page, 6).getAttribute('class'), /bench/);
  assert.match(await page.locator('#tab-node .config-line').first().innerText(), /voters 1, 2, 3, 4, 5, 6/);
  // "Add node" joins as a voter by itself once caught up.
  await nodeButton(page, 'add_node').click();
  await advance(page, 1_500_000);
  s = await state(page);
  assert.equal(s.nodes[6].member, 'voter');
  await page.close();
});

test('refused changes are shown over the ring: a second change while one is unfinished, removing the last voter', async () => {
  const { page } = await settled('#seed=3&paused');
  await nodeButton(page, 'add_node_learner').click();
  await nodeButton(page, 'add_node_learner').click();
  assert.match(await page.locator('#stage-note').innerText(), /^Refused: another membership change is unfinished/);
  assert.equal((await state(page)).nodes.length, 6, 'no stray node');
  assert.match(await page.locator('#feed').innerText(), /refused: another membership change is unfinished/);
  await page.close();
  const one = await settled('#nodes=1&seed=1&paused');
  await nodeButton(one.page, 'remove').click();
  assert.match(await one.page.locator('#stage-note').innerText(), /Refused: .*would leave no voter/);
  await one.page.close();
});

test('remove node: it leaves the configuration, faded on the bench, and the rest commit without it', async () => {
  const { page, l } = await settled('#seed=4&paused');
  const f = l === 5 ? 4 : 5;
  await selectNode(page, f);
  await nodeButton(page, 'remove').click();
  await advance(page, 500_000);
  const s = await state(page);
  assert.equal(s.nodes[f - 1].member, 'none');
  assert.ok(s.config.committed && !s.config.voters.includes(f) && s.config.voters.length === 4);
  assert.match(await ringNode(page, f).getAttribute('class'), /bench.*m-none/);
  assert.equal(await ringNode(page, f).evaluate((g) => getComputedStyle(g).opacity), '0.5');
  assert.ok(await nodeButton(page, 'add_learner').count() === 1, 'it can be added back');
  await page.close();
});

test('transfer leadership makes the chosen node leader', async () => {
  const { page, l } = await settled('#seed=5&paused');
  const to = l === 2 ? 3 : 2;
  await selectNode(page, to);
  await nodeButton(page, 'transfer').click();
  await advance(page, 500_000);
  const s = await state(page);
  assert.equal(s.leader, to);
  assert.match(await ringNode(page, to).locator('.node-role').textContent(), /★ leader/);
  assert.match(await page.evaluate(() => window.raftkv.cluster.feed(0)), new RegExp(`hands leadership to node ${to}`));
  await page.close();
});

test('wipe disk: the node restarts empty with a new identity, catches up, and votes again once readmitted', async () => {
  const { page, l } = await settled('#seed=6&paused');
  await page.evaluate(() => { const a = window.raftkv; for (let i = 0; i < 4; i++) { a.act({ op: 'client', node: 0, req: { kind: 'put', key: 'k', value: String(i) } }); a.cluster.advance(60e3); } a.cluster.advance(300e3); a.refresh(); });
  const f = l === 1 ? 2 : 1;
  const before = (await state(page)).nodes[f - 1];
  await selectNode(page, f);
  await nodeButton(page, 'wipe').click();
  let n = (await state(page)).nodes[f - 1];
  assert.ok(n.up && n.last === 0 && n.term === 0 && n.kv.length === 0, 'empty');
  assert.notEqual(n.inc, before.inc, 'a new storage identity');
  assert.ok(n.unbound);
  assert.match(await ringNode(page, f).locator('.node-info').textContent(), /new disk · no vote yet/);
  assert.match(await page.locator('#tab-node').innerText(), /may not vote or campaign until it is readmitted/);
  await advance(page, 1_000_000);
  n = (await state(page)).nodes[f - 1];
  assert.ok(n.last >= before.last && n.kv.some(([k, v]) => k === 'k' && v === '3'), 'caught up');
  assert.ok(n.unbound, 'still no vote');
  await nodeButton(page, 'promote').click();
  await advance(page, 1_000_000);
  assert.equal((await state(page)).nodes[f - 1].unbound, false);
  await page.close();
});

test('the joint consensus scenario shows two rings of voters at its joint step, then leaves it', async () => {
  const page = await open('#paused');
  await page.click('.tabs button[data-tab="scenarios"]');
  await page.click('button[data-scenario="joint"]');
  let s = await state(page);
  assert.deepEqual(s.config.learners, [4, 5]);
  assert.ok(await page.locator('#ring g[data-ring]').count() === 0, 'no joint rings outside a change');
  await page.click('#n-next');
  assert.match((await narration(page)).title, /^2\. The joint configuration/);
  s = await state(page);
  assert.ok(s.config.joint && !s.config.committed);
  assert.deepEqual(s.config.outgoing, [1, 2, 3]);
  assert.equal(s.config.voters.length, 4);
  assert.equal(await page.locator('#ring g[data-ring="old"]').getAttribute('data-members'), '1 2 3');
  assert.equal(await page.locator('#ring g[data-ring="new"]').getAttribute('data-members'), s.config.voters.join(' '));
  assert.match(await page.locator('#ring .conf-caption.conf-old').textContent(), /old voters 1 2 3 · need 2/);
  assert.match(await page.locator('#ring .conf-caption.conf-new').textContent(), /need 3/);
  const gone = [1, 2, 3].find((id) => !s.config.voters.includes(id));
  assert.equal(s.nodes[gone - 1].member, 'outgoing');
  const sizes = await ringTextSizes(page);
  assert.deepEqual(sizes.filter((x) => x.px < 12), [], 'joint labels under 12 px');
  await shot(page, 'joint-step.png');
  // Watch: nothing commits, the leader steps down; then both majorities finish the change.
  await page.evaluate(() => { for (let k = 0; k < 200000 && window.raftkv.cluster.leader() !== 0; k++) window.raftkv.cluster.step(); window.raftkv.refresh(); });
  assert.equal((await state(page)).config.joint, true, 'still joint without the new majority');
  await page.click('#n-next');
  await advance(page, 3_000_000);
  s = await state(page);
  assert.ok(!s.config.joint && s.config.committed && !s.config.voters.includes(gone));
  assert.ok(await page.locator('#ring g[data-ring]').count() === 0);
  assert.match(await ringNode(page, gone).getAttribute('class'), /m-none/);
  assert.match(await page.evaluate(() => window.raftkv.cluster.feed(0)), /leaves the joint configuration/);
  assert.equal(s.violations.length, 0);
  await page.close();
});

test('phone: the joint step keeps its two rings, the bench and 12 px labels', async () => {
  const ctx = await launch({ width: 390, height: 844 });
  const page = await open('#lesson=joint&step=2', ctx);
  await page.waitForTimeout(300);
  const s = await state(page);
  assert.ok(s.config.joint);
  assert.equal(await page.locator('#ring g[data-ring]').count(), 2);
  const ring = await rect(page, '.ring-box');
  for (const id of [1, 2, 3, 4, 5]) {
    const b = await ringNode(page, id).locator('.node-body').boundingBox();
    assert.ok(b.x >= ring.left - 1 && b.x + b.width <= ring.right + 1 && b.y >= ring.top - 1 && b.y + b.height <= ring.bottom + 1, `node ${id} inside the ring box`);
  }
  const sizes = await ringTextSizes(page);
  assert.deepEqual(sizes.filter((x) => x.px < 12), [], 'ring text under 12 px on a phone');
  await shot(page, 'phone-joint.png');
  await page.close();
  await ctx.close();
});

test('a shared link replays a membership run identically', async () => {
  const { page, l } = await settled('#seed=7&paused');
  const end = await page.evaluate((l) => {
    const a = window.raftkv;
    const other = l === 1 ? 2 : 1;
    a.act({ op: 'add_node', voter: true });
    a.cluster.advance(1500e3);
    a.act({ op: 'add_node', voter: false });
    a.cluster.advance(900e3);
    a.act({ op: 'wipe', node: other });
    a.cluster.advance(800e3);
    a.act({ op: 'promote', node: other });
    a.cluster.advance(800e3);
    a.act({ op: 'transfer', node: 6 });
    a.cluster.advance(600e3);
    a.act({ op: 'remove', node: l });
    a.cluster.advance(900e3);
    a.act({ op: 'joint', add: [7], remove: [l === 3 ? 4 : 3] });
    a.cluster.advance(1200e3);
    a.refresh();
    return a.cluster.state();
  }, l);
  const s = JSON.parse(end);
  assert.equal(s.nodes.length, 7);
  assert.ok(s.config.voters.includes(7) && !s.config.voters.includes(l), JSON.stringify(s.config));
  assert.equal(s.violations.length, 0);
  await page.click('#share');
  const other = await open(page.url().slice(server.url.length));
  assert.equal(await other.evaluate(() => window.raftkv.cluster.state()), end);
  assert.equal(await other.evaluate(() => window.raftkv.cluster.feed(0)), await page.evaluate(() => window.raftkv.cluster.feed(0)));
  await other.close();
  await page.close();
});

test('without raftkv cluster the Live cluster toggle stays hidden, and live.html says why', async () => {
  const page = await open('#seed=1');
  // The static server serves web-demo/cluster.json, which lists no nodes.
  await page.waitForFunction(() => fetch('/cluster.json').then((r) => r.json()).then((j) => j.nodes.length === 0));
  await page.waitForTimeout(300);
  assert.equal(await page.locator('#mode-toggle').isVisible(), false);
  await page.goto(`${server.url}live.html`);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 30_000 });
  assert.match(await page.locator('#live-status').textContent(), /not served by raftkv cluster/);
  await page.close();
});

test('no console errors anywhere', () => {
  assert.deepEqual(errors, []);
});
