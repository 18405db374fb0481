// Colours. A colour means one thing on the page: roles, message kinds and
// terms each have their own, and no message kind shares a colour with a role
// (a grey heartbeat read as "a follower's message"; a green AppendResp as the
// leader's). Every pair below is at least 25 apart in CIE76 ΔE, which the
// browser tests check. Light colours are drawn with a dark outline so they
// show on white.

export const ROLE_COLORS = {
  follower: '#8a94a6',
  'pre-candidate': '#f2c511',
  candidate: '#e8590c',
  leader: '#2b8a3e',
  down: '#343a40',
};

// Text drawn on a role's fill: dark on the light ones.
export const ROLE_INK = {
  follower: '#fff', 'pre-candidate': '#1d2330', candidate: '#fff', leader: '#fff', down: '#fff',
};

export const MSG_COLORS = {
  PreVote: '#c2255c',
  PreVoteResp: '#faa2c1',
  Vote: '#6741d9',
  VoteResp: '#b197fc',
  Heartbeat: '#15aabf',
  Append: '#1864ab',
  AppendResp: '#a5d8ff',
  InstallSnapshot: '#5c3d1e',
  InstallSnapshotResp: '#c0a16b',
};

// The two halves of a joint configuration on the ring: the old voters' ring
// and the new voters' (lines, so they need not stand apart from the fills).
export const CONF_COLORS = { old: '#862e9c', new: '#0ca678' };

// A response that says no (vote refused, append rejected).
export const REFUSED = '#e03131';

// What each message kind is, for the legend and the glossary.
export const MSG_WORDS = {
  PreVote: 'pre-vote request: “could I win?”',
  PreVoteResp: 'pre-vote answer',
  Vote: 'vote request',
  VoteResp: 'vote answer',
  Heartbeat: 'empty AppendEntries: “I am still the leader”',
  Append: 'AppendEntries carrying log entries',
  AppendResp: 'AppendEntries answer',
  InstallSnapshot: 'a chunk of the leader’s snapshot',
  InstallSnapshotResp: 'snapshot chunk answer',
};

// One hue per term, spread around the colour wheel so neighbours differ.
export function termColor(term, light = 50) {
  if (!term) return `hsl(220, 10%, ${light + 15}%)`;
  return `hsl(${(term * 137.5 + 200) % 360}, 62%, ${light}%)`;
}
