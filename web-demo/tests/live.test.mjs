// The live view against a real cluster: `raftkv cluster` (the debug build
// scripts/test.sh has made, built here if missing) on free loopback ports,
// its live.html in headless chromium; the leader is crashed (kill -9) from
// the page and the page shows the new leader; `raftkv bench` load shows as
// message and journal rates. Screenshots: artifacts/live-under-load.png,
// artifacts/live-after-kill.png.
//
// Run by scripts/test.sh, or alone: cd web-demo/tests && node --test live.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const artifacts = path.join(root, 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'];
const BIN = process.env.RAFTKV_BIN || path.join(root, 'target', 'debug', 'raftkv');
const WAIT = 30_000;

let tmp, cluster, context, web, userDir, cfg;
const errors = [];
let output = '';

async function freePort() {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

before(async () => {
  fs.mkdirSync(artifacts, { recursive: true });
  if (!process.env.RAFTKV_BIN) {
    // Up to date after scripts/test.sh's cargo test: this only checks.
    const b = spawnSync('cargo', ['build', '--quiet', '-p', 'host-native', '--bin', 'raftkv'],
      { cwd: root, stdio: 'inherit', env: { ...process.env, CARGO_INCREMENTAL: process.env.CARGO_INCREMENTAL || '0' } });
    assert.equal(b.status, 0, 'cargo build of raftkv');
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-live-'));
  const ports = [];
  while (ports.length < 4) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  const nodes = ports.slice(0, 3).map((p, i) => `[[nodes]]\nid = ${i + 1}\nlisten = "127.0.0.1:${p}"\n`).join('\n');
  cfg = path.join(tmp, 'cluster.toml');
  fs.writeFileSync(cfg, `cluster_id = "live-browser-test"\nsecret = "live-browser-test-secret"\n`
    + `data_dir = ${JSON.stringify(tmp)}\ntick_ms = 10\nallowed_origins = []\n\n${nodes}`);
  web = `http://127.0.0.1:${ports[3]}`;
  cluster = spawn(BIN, ['cluster', '--dir', path.join(tmp, 'run'), '--config', cfg, '--demo', `127.0.0.1:${ports[3]}`,
    '--web', path.join(root, 'web-demo')], { stdio: ['ignore', 'pipe', 'pipe'] });
  cluster.stderr.on('data', (d) => { output += d; });
  await new Promise((ok, fail) => {
    const t = setTimeout(() => fail(new Error(`raftkv cluster did not start:\n${output}`)), WAIT);
    cluster.stdout.on('data', (d) => {
      output += d;
      if (output.includes('Ctrl-C stops the cluster')) {
        clearTimeout(t);
        ok();
      }
    });
    cluster.once('exit', (code) => fail(new Error(`raftkv cluster exited (${code}):\n${output}`)));
  });
  userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-chromium-'));
  context = await chromium.launchPersistentContext(userDir, { executablePath: CHROMIUM, headless: true, args: ARGS,
    viewport: { width: 1280, height: 800 } });
});

after(async () => {
  await context?.close();
  if (cluster && cluster.exitCode === null) {
    const exited = new Promise((ok) => cluster.once('exit', ok));
    cluster.kill('SIGINT');
    await Promise.race([exited, new Promise((ok) => setTimeout(ok, 10_000))]);
    if (cluster.exitCode === null) cluster.kill('SIGKILL');
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
});

async function open(p) {
  const page = await context.newPage();
  // A stream to a crashed node fails until it is back: that is expected.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/WebSocket connection to .* failed/.test(m.text())) errors.push(`${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
  await page.goto(`${web}/${p}`);
  await page.waitForSelector('body[data-ready="1"]', { timeout: WAIT });
  return page;
}

const leaderOnPage = (page) => page.evaluate(() => document.body.dataset.leader || '');
const view = (page) => page.evaluate(() => {
  const s = window.raftkvLive.app.state;
  return s && { leader: s.leader, nodes: s.nodes.map((n) => ({ id: n.id, role: n.role, up: n.up, proc: n.proc, term: n.term, commit: n.commit, sent: n.msgs.sent })) };
});

const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

test('the simulator page offers the live view when served by raftkv cluster', async () => {
  // (Its simulator needs the wasm build, which this test does not: only
  // the toggle is looked at.)
  const page = await context.newPage();
  await page.goto(`${web}/index.html`);
  await page.waitForSelector('#mode-toggle:not([hidden])', { timeout: WAIT });
  assert.equal(await page.getAttribute('#to-live', 'href'), 'live.html');
  await page.close();
});

test('raftkv bench load shows as message rates and journal rates', async () => {
  const page = await open('live.html');
  await page.waitForFunction(() => document.body.dataset.leader, null, { timeout: WAIT });
  const leader = Number(await leaderOnPage(page));
  await page.click(`#live-nodes tr[data-row="${leader}"]`);
  // Idle: heartbeats only, nothing journaled a second.
  await page.waitForFunction((l) => {
    const n = window.raftkvLive.app.state.nodes.find((x) => x.id === l);
    return n.journal && n.msgs.sent.Heartbeat > 0;
  }, leader, { timeout: WAIT });
  const bench = spawn(BIN, ['bench', '--config', cfg, '--clients', '4', '--duration', '6', '--keys', '100',
    '--value-size', '64', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let benchOut = '';
  let benchErr = '';
  bench.stdout.on('data', (d) => { benchOut += d; });
  bench.stderr.on('data', (d) => { benchErr += d; });
  const benchDone = new Promise((ok) => bench.once('exit', ok));
  try {
    // Under load: the leader sends entries and hears acknowledgements every
    // second, and every node journals records, more of them than fsyncs
    // once batches form.
    await page.waitForFunction((l) => {
      const s = window.raftkvLive.app.state;
      const n = s.nodes.find((x) => x.id === l);
      return (n.msgs.sent.Append || 0) > 10 && (n.msgs.received.AppendResp || 0) > 10
        && s.nodes.every((x) => x.journal && x.journal.records_per_s > 10 && x.journal.syncs_per_s > 0);
    }, leader, { timeout: WAIT });
    const view = await page.evaluate(() => window.raftkvLive.app.state.nodes.map((n) => ({ id: n.id, journal: n.journal, sent: n.msgs.sent })));
    for (const n of view) assert.ok(n.journal.records >= n.journal.records_per_s, JSON.stringify(n));
    assert.match(await page.locator(`[data-journal-rate="${leader}"]`).textContent(), /^[1-9]\d*\/[1-9]\d*$/);
    assert.match(await page.locator(`[data-rate="${leader}"]`).textContent(), /^[1-9]\d*\/[1-9]\d*$/);
    assert.match(await page.locator('#journal-detail').textContent(), /records/);
    // The nodes table fits its panel: no rate is cut off at the right.
    const overflow = await page.evaluate(() => {
      const t = document.querySelector('#live-nodes').getBoundingClientRect();
      const p = document.querySelector('#live-panel').getBoundingClientRect();
      return t.right - p.right;
    });
    assert.ok(overflow <= 0.5, `the nodes table overflows its panel by ${overflow} px`);
    const shot = path.join(artifacts, 'live-under-load.png');
    await page.screenshot({ path: shot });
    console.log(`screenshot: ${shot} (${elapsed()} since the tests began)`);
  } finally {
    const code = await benchDone;
    assert.equal(code, 0, `raftkv bench failed:\n${benchOut}\n${benchErr}`);
  }
  const report = JSON.parse(benchOut.slice(benchOut.indexOf('{')));
  assert.ok(report.ops > 0 && report.errors === 0, benchOut);
  assert.deepEqual(errors, [], errors.join('\n'));
  await page.close();
});

test('live view: kill the leader from the page, see the new leader', async () => {
  const page = await open('live.html');
  await page.waitForFunction(() => document.body.dataset.leader, null, { timeout: WAIT });
  const first = await view(page);
  const leader = first.leader;
  assert.ok(leader >= 1 && leader <= 3, JSON.stringify(first));
  assert.equal(first.nodes.length, 3);
  assert.ok(first.nodes.every((n) => n.up && n.proc === 'running'), JSON.stringify(first));
  // The ring and the log table are the simulator's, drawing the real nodes.
  assert.equal(await page.locator('#ring [data-node]').count(), 3);
  await page.waitForFunction(() => document.querySelectorAll('#log-table td.e').length >= 3, null, { timeout: WAIT });
  assert.match(await page.locator(`#ring [data-node="${leader}"] .node-role`).textContent(), /leader/);
  // Message rates: the leader's heartbeats at least.
  await page.waitForFunction((l) => {
    const n = window.raftkvLive.app.state.nodes.find((x) => x.id === l);
    return Object.values(n.msgs.sent).some((r) => r > 0);
  }, leader, { timeout: WAIT });
  assert.match(await page.locator(`[data-rate="${leader}"]`).textContent(), /^[1-9]\d*\/\d+$/);

  await page.click(`button[data-act="crash"][data-node="${leader}"]`);
  await page.waitForFunction((old) => {
    const l = Number(document.body.dataset.leader || 0);
    return l && l !== old;
  }, leader, { timeout: WAIT });
  const after = await view(page);
  assert.notEqual(after.leader, leader);
  const dead = after.nodes.find((n) => n.id === leader);
  assert.equal(dead.proc, 'down', JSON.stringify(after));
  assert.equal(dead.up, false);
  assert.equal(await page.locator(`#ring [data-node="${leader}"] .node-id`).textContent(), `✕${leader}`);
  assert.match(await page.locator(`#ring [data-node="${after.leader}"] .node-role`).textContent(), /leader/);
  const newTerm = after.nodes.find((n) => n.id === after.leader).term;
  assert.ok(newTerm > first.nodes.find((n) => n.id === leader).term, 'the new leader won a later term');
  assert.match(await page.locator('#live-feed').textContent(), new RegExp(`node ${after.leader} became leader`));
  const shot = path.join(artifacts, 'live-after-kill.png');
  await page.screenshot({ path: shot });
  console.log(`screenshot: ${shot} (${elapsed()} since the tests began)`);

  // Restarted from the page, the node streams again and follows.
  await page.click(`button[data-act="restart"][data-node="${leader}"]`);
  await page.waitForFunction((id) => {
    const n = window.raftkvLive.app.state.nodes.find((x) => x.id === id);
    return n.up && n.role === 'follower' && n.proc === 'running';
  }, leader, { timeout: WAIT });
  assert.deepEqual(errors, [], errors.join('\n'));
  await page.close();
});
