// Small helpers shared by the modules.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

export function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

// Seconds with millisecond precision, from simulated microseconds.
export function secs(us) {
  return `${(us / 1e6).toFixed(3)} s`;
}

// One hue per term, spread around the colour wheel so neighbours differ.
export function termColor(term, light = 50) {
  if (!term) return `hsl(220, 10%, ${light + 15}%)`;
  return `hsl(${(term * 137.5 + 200) % 360}, 62%, ${light}%)`;
}

export const ROLE_COLORS = {
  leader: '#1f9d55',
  candidate: '#e08a00',
  'pre-candidate': '#d9a520',
  follower: '#8a94a6',
  down: '#39404d',
};

export const MSG_COLORS = {
  PreVote: '#c4b5fd',
  PreVoteResp: '#a78bfa',
  Vote: '#7c3aed',
  VoteResp: '#5b21b6',
  Heartbeat: '#94a3b8',
  Append: '#2563eb',
  AppendResp: '#16a34a',
  InstallSnapshot: '#ea580c',
  InstallSnapshotResp: '#c2410c',
};

// base64url of UTF-8 text, and back.
export function b64encode(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function b64decode(s) {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}
