// The live view's adapter (js/liveadapter.js) without a browser: frames of
// real nodes turned into the simulator's state shape, the configuration
// included, so membership.js places voters, learners and a joint change's
// two halves as the simulator view does.
//
// Run by scripts/test.sh, or alone: cd web-demo/tests && node --test liveadapter.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterState, configOf, memberOf, nodeView } from '../js/liveadapter.js';
import { ringLayout, votesNeeded } from '../js/membership.js';

const running = { state: 'running', isolated: false };

function frame(id, role, term, members, extra = {}) {
  return { v: 1, id, role, term, leader: role === 'leader' ? id : null, commit: 10, applied: 10, last: 10, members, ...extra };
}

function state(frames, procs = {}) {
  const ids = Object.keys(frames).map(Number).sort((a, b) => a - b);
  const fr = new Map(ids.map((id) => [id, { frame: frames[id], at: 1000 }]));
  const pr = new Map(ids.map((id) => [id, procs[id] || running]));
  return clusterState(ids, fr, pr, 1500);
}

test('what a node is in a configuration, in the simulator\'s words', () => {
  const plain = { voters: [1, 2, 3], outgoing: [], learners: [4], joint: false };
  assert.deepEqual([1, 2, 3, 4, 5].map((id) => memberOf(plain, id)), ['voter', 'voter', 'voter', 'learner', 'none']);
  const joint = { voters: [1, 2, 4], outgoing: [1, 2, 3], learners: [3], joint: true };
  assert.deepEqual([1, 2, 3, 4, 5].map((id) => memberOf(joint, id)), ['voter', 'voter', 'outgoing', 'incoming', 'none']);
});

test('a joint change streamed by the leader puts both halves on the ring and a learner on the bench', () => {
  const joint = { voters: [1, 2, 4], outgoing: [1, 2, 3], learners: [5], joint: true };
  const old = { voters: [1, 2, 3], outgoing: [], learners: [], joint: false };
  const s = state({
    1: frame(1, 'leader', 4, joint),
    2: frame(2, 'follower', 4, joint),
    // A follower that has not heard of the change yet: the leader's view wins.
    3: frame(3, 'follower', 4, old),
    4: frame(4, 'follower', 4, joint),
    5: frame(5, 'follower', 4, joint),
  });
  assert.equal(s.leader, 1);
  assert.equal(s.config.from, 1);
  assert.equal(s.config.joint, true);
  assert.deepEqual(s.nodes.map((n) => n.member), ['voter', 'voter', 'outgoing', 'incoming', 'learner']);
  const lay = ringLayout(s);
  assert.deepEqual(lay.ring, [1, 2, 3, 4]);
  assert.deepEqual(lay.bench, [5]);
  assert.equal(votesNeeded(s), 2, 'a majority of the new half (3 voters)');
});

test('without a leader the configuration of the newest streaming node is drawn; with no frames, none', () => {
  const a = { voters: [1, 2, 3], outgoing: [], learners: [], joint: false };
  const b = { voters: [1, 2], outgoing: [], learners: [3], joint: false };
  const nodes = [
    nodeView(1, frame(1, 'follower', 5, a, { commit: 7 }), running, 10),
    nodeView(2, frame(2, 'candidate', 6, b, { commit: 9 }), running, 10),
    // Down: its last frame names an older configuration, and is not used.
    nodeView(3, frame(3, 'follower', 9, a), { state: 'down' }, 10),
  ];
  const c = configOf(nodes, null);
  assert.equal(c.from, 2, 'the highest term among the nodes that stream');
  assert.deepEqual(c.learners, [3]);
  assert.equal(configOf([nodeView(1, null, running, Infinity)], null), null);
  const s = state({});
  assert.equal(s.config, null);
});

test('a crashed voter stays on the ring: the configuration still names it', () => {
  const m = { voters: [1, 2, 3], outgoing: [], learners: [], joint: false };
  const s = state({ 1: frame(1, 'follower', 2, m), 2: frame(2, 'leader', 2, m), 3: frame(3, 'follower', 1, m) },
    { 3: { state: 'down', isolated: false } });
  assert.equal(s.nodes[2].up, false);
  assert.equal(s.nodes[2].member, 'voter');
  assert.deepEqual(ringLayout(s).ring, [1, 2, 3]);
});
