// The web demo in a real browser: Debian's headless chromium driven by
// playwright-core, against web-demo/ served as static files on 127.0.0.1.
// Screenshots go to artifacts/ at the repository root.
//
// Run by scripts/test.sh (after scripts/build-web.sh), or alone:
//   cd web-demo/tests && npm ci && node --test browser.test.mjs

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

let server, context, userDir;
const errors = [];
const shots = [];

before(async () => {
  fs.mkdirSync(artifacts, { recursive: true });
  server = await startServer(path.join(root, 'web-demo'));
  userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-chromium-'));
  context = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
  });
});

after(async () => {
  await context?.close();
  await server?.close();
  fs.rmSync(userDir, { recursive: true, force: true });
  console.log('\nscreenshots:');
  for (const s of shots) console.log(`  ${s}`);
});

async function open(hash = '') {
  const page = await context.newPage();
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

test('the page loads with no console errors and draws every node', async () => {
  const page = await open('#seed=1');
  await page.waitForTimeout(1500);
  assert.equal(await page.locator('#ring g[data-node]').count(), 5);
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
  assert.match(feed, /started an election for term/);
  await page.close();
});

test('a client put through the page is on every node once committed', async () => {
  const page = await open('#seed=4&paused');
  await page.evaluate(() => { window.raftkv.cluster.run_until_leader(5e6); window.raftkv.refresh(); });
  await page.click('.tabs button[data-tab="client"]');
  await page.selectOption('#c-op', 'put');
  await page.fill('#c-key', 'greeting');
  await page.fill('#c-value', 'hello');
  await page.click('#c-send');
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
  await pause(page);
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
  // Share: the link carries seed, actions and time.
  await page.click('#share');
  const url = page.url();
  assert.match(url, /#run=/);
  const other = await context.newPage();
  other.on('pageerror', (e) => errors.push(e.message));
  await other.goto(url);
  await other.waitForSelector('body[data-ready="1"]');
  assert.equal(await other.evaluate(() => window.raftkv.cluster.state()), endState);
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
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(400);
  await shot(page, 'phone.png', { fullPage: true });
  await page.close();
});

async function runTestMode(page, count, bugs) {
  await page.click('.tabs button[data-tab="test"]');
  await page.fill('#t-count', String(count));
  await page.fill('#t-first', '1');
  await page.fill('#t-secs', '10');
  if (bugs) await page.check('#t-bugs');
  await page.evaluate(() => { delete document.body.dataset.testDone; });
  await page.click('#t-run');
  await page.waitForSelector('body[data-test-done]', { timeout: 120_000 });
  return JSON.parse(await page.evaluate(() => document.body.dataset.testDone));
}

test('test mode: no violations on a few seeds; the stale-read build is caught', async () => {
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
  await page.locator('#t-fail').scrollIntoViewIfNeeded();
  await shot(page, 'test-mode-violation.png');
  const hist = path.join(artifacts, 'test-mode-history.png');
  await page.locator('#t-fail').screenshot({ path: hist });
  shots.push(hist);
  // The failing seed loads into the main view.
  await page.click('#t-load');
  const s = await state(page);
  assert.ok(s.actions[0] > 2 && s.now > 0);
  await page.close();
});

test('every scenario runs, and Figure 8 plays its four steps', async () => {
  const page = await open('#paused');
  await page.click('.tabs button[data-tab="scenarios"]');
  for (const id of ['leader-crash', 'split-vote', 'catch-up', 'retry']) {
    await page.click(`button[data-scenario="${id}"]`);
    await page.waitForTimeout(300);
    assert.ok((await page.locator('#scenario-text').innerText()).length > 50, id);
  }
  // The retry scenario: the value was applied once, on every node.
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
  await page.click('button[data-scenario="figure8"]');
  for (let i = 2; i <= 4; i++) {
    await page.click('#scenario-next');
    await pause(page);
    await advance(page, 1_500_000);
    assert.match(await page.locator('#scenario-text').innerText(), new RegExp(`^${i}\\.`));
  }
  const f8 = await state(page);
  assert.equal(f8.violations.length, 0);
  for (const n of f8.nodes.filter((n) => n.up)) {
    assert.deepEqual(n.kv.find(([k]) => k === 'x'), ['x', '1'], `x=1 survived on node ${n.id}`);
  }
  await shot(page, 'figure8.png');
  await page.close();
});

test('no console errors anywhere', () => {
  assert.deepEqual(errors, []);
});
