// The words the page uses, explained where they appear. An element with
// data-term="probe" gets the definition as a tooltip and, on a click or tap
// (there is no hover on a phone), in a small box next to it. The help dialog
// lists them all.

import { $, $$, esc } from './util.js';

export const GLOSSARY = {
  term: 'Raft’s logical clock. Each election starts a new term; a term has at most one leader. A node that sees a higher term adopts it at once (and a leader that does steps down).',
  follower: 'The normal state: a follower answers the leader and the candidates, and does nothing by itself until its election timer runs out.',
  'pre-candidate': 'A follower whose election timer ran out first asks the others whether it could win (PreVote) without raising its term. Only if a majority says yes does it become a candidate. A node cut off from the rest therefore cannot push the cluster to higher terms.',
  candidate: 'A node campaigning to be leader: it raised its term, voted for itself and asks the others for their votes. A majority of votes makes it leader.',
  leader: 'The one node that takes client requests in its term. It appends them to its log, copies them to the followers, and decides when they are committed.',
  down: 'A crashed node: its memory is gone, its disk (the journal) is kept; a restart replays the journal.',
  tick: 'The unit of the nodes’ timers: here a tick is 10 ms of simulated time. A follower times out after 15–30 ticks without hearing from a leader; a leader sends heartbeats every 5 ticks.',
  'election timer': 'The arc around a node: the ticks since it last heard from a leader (or granted a vote), out of its randomly drawn timeout. When it fills, the node campaigns.',
  commit: 'An entry is committed once the leader knows a majority stores it, and at least one entry of the leader’s own term is committed with it. Committed entries are never lost and are applied to the key-value store in log order.',
  'commit index': 'The highest log index a node knows to be committed. The leader learns it from the answers; followers learn it from the next AppendEntries.',
  probe: 'The leader does not know where this follower’s log stops matching its own, so it sends one AppendEntries at a time and, on each refusal, moves back (using the follower’s hint) until they agree.',
  replicate: 'The leader knows how far this follower’s log matches and streams entries to it, several messages in flight at once.',
  snapshot: 'The leader no longer has the entries this follower needs (they were compacted into a snapshot), so it sends the snapshot itself in chunks (InstallSnapshot).',
  match: 'm: the highest index the leader knows this follower stores.',
  next: 'n: the next index the leader will send this follower.',
  session: 'A client’s registration in the replicated log. Each write carries (session, seq); a seq already applied is answered from the session’s cache instead of being applied twice.',
  journal: 'The node’s write-ahead log on disk: term and vote changes, appended entries, truncations, snapshots. Records written but not yet synced may be lost in a crash.',
  configuration: 'Who votes and who only listens. It lives in the log: a change is a log entry, in force on each node as soon as that node has the entry. Only one change may be unfinished at a time.',
  learner: 'A member that receives the log and snapshots but never votes and is never counted: a new node catches up as a learner first, so the majority the cluster needs does not grow while it cannot yet help reach it.',
  'joint consensus': 'A change of several voters at once goes through a joint configuration: the old voters and the new voters must each give a majority for every election and every commit. Any two such decisions overlap in at least one node of each half, so the old and the new voters can never each elect a leader of their own.',
  'ReadIndex': 'How a leader serves a linearizable read without writing to the log: it notes its commit index, confirms it is still leader with a round of heartbeats answered by a majority, then answers once it has applied that far.',
};

export function glossaryHTML() {
  return `<dl class="glossary">${Object.entries(GLOSSARY)
    .map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>`;
}

// A word with its definition attached.
export function term(word, shown = word) {
  const def = GLOSSARY[word];
  if (!def) return esc(shown);
  return `<span class="term" data-term="${esc(word)}" title="${esc(def)}" tabindex="0">${esc(shown)}</span>`;
}

export function initGlossary() {
  $('#help-glossary').innerHTML = glossaryHTML();
  const pop = $('#term-pop');
  const show = (el) => {
    const word = el.dataset.term;
    pop.innerHTML = `<b>${esc(word)}</b> ${esc(GLOSSARY[word] || '')}`;
    pop.hidden = false;
    const r = el.getBoundingClientRect();
    const w = Math.min(320, window.innerWidth - 16);
    pop.style.width = `${w}px`;
    pop.style.left = `${Math.max(8, Math.min(r.left, window.innerWidth - w - 8)) + window.scrollX}px`;
    pop.style.top = `${r.bottom + 6 + window.scrollY}px`;
    pop.dataset.for = word;
  };
  document.addEventListener('click', (e) => {
    const el = e.target.closest('[data-term]');
    if (el) {
      e.stopPropagation();
      if (!pop.hidden && pop.dataset.for === el.dataset.term) pop.hidden = true;
      else show(el);
      return;
    }
    if (!e.target.closest('#term-pop')) pop.hidden = true;
  }, true);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && e.target.matches?.('[data-term]')) show(e.target);
    if (e.key === 'Escape') pop.hidden = true;
  });
  return { terms: () => $$('[data-term]').map((x) => x.dataset.term) };
}
