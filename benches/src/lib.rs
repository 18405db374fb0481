//! Support for the criterion benches on raft-core: an in-memory cluster whose
//! messages are passed as values (no encoding, no network) and whose "disk" is
//! instantaneous, so the benches measure the engine itself.
//!
//! ```
//! use benches::MemCluster;
//! use raft_core::DigestMachine;
//! let mut c = MemCluster::new(3, |_| DigestMachine::default());
//! let before = c.leader().commit_index();
//! c.propose_batch(10, 16);
//! c.pump();
//! assert_eq!(c.leader().commit_index(), before + 10);
//! ```

pub mod threaded;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use raft_core::kv::KvOp;
use raft_core::{ClientReply, ClientRequest, ClientToken, Config, KvStore, Message, NodeId, Raft, StateMachine};

/// A state machine that does nothing but count: with it the commit benches
/// measure the engine, not the cost of hashing or storing payloads.
#[derive(Debug, Default)]
pub struct NullMachine {
    /// Commands applied.
    pub applied: u64,
}

impl StateMachine for NullMachine {
    fn apply(&mut self, _index: raft_core::Index, _time: u64, _command: &[u8]) -> raft_core::Bytes {
        self.applied += 1;
        raft_core::Bytes::default()
    }
    fn snapshot(&self) -> Vec<u8> {
        self.applied.to_le_bytes().to_vec()
    }
    fn restore(&mut self, data: &[u8]) -> Result<(), raft_core::RestoreError> {
        let b: [u8; 8] = data.try_into().map_err(|_| raft_core::RestoreError("8 bytes expected"))?;
        self.applied = u64::from_le_bytes(b);
        Ok(())
    }
}

/// A cluster of engines in one thread, ids `1..=n`.
pub struct MemCluster<S: StateMachine> {
    nodes: Vec<Raft<S>>,
    queue: VecDeque<Message>,
    /// Client replies collected by [`MemCluster::pump`].
    pub replies: Vec<(ClientToken, ClientReply)>,
    leader: usize,
}

impl<S: StateMachine> MemCluster<S> {
    /// A cluster of `n` nodes with node 1 elected leader and its no-op committed.
    pub fn new(n: usize, make: impl Fn(NodeId) -> S) -> Self {
        Self::with_config(n, make, |_| {})
    }

    /// Like [`MemCluster::new`], adjusting every node's config first.
    pub fn with_config(n: usize, make: impl Fn(NodeId) -> S, tweak: impl Fn(&mut Config)) -> Self {
        let voters: Vec<NodeId> = (1..=n as NodeId).collect();
        let nodes = voters
            .iter()
            .map(|&id| {
                let mut cfg = Config::new(id, voters.clone());
                cfg.max_uncommitted_entries = 1 << 20;
                cfg.max_pending_writes = 1 << 20;
                cfg.max_pending_reads = 1 << 20;
                // Snapshots as a deployment takes them (the default policy), so the
                // log is compacted and memory stays flat over a long bench.
                tweak(&mut cfg);
                Raft::new(cfg, make(id)).expect("valid config")
            })
            .collect();
        let mut c = MemCluster { nodes, queue: VecDeque::new(), replies: Vec::new(), leader: 0 };
        c.nodes[0].force_timeout();
        c.pump();
        assert!(c.nodes[0].is_leader(), "node 1 should win the first election");
        c
    }

    /// The leader's engine.
    pub fn leader(&self) -> &Raft<S> {
        &self.nodes[self.leader]
    }

    /// Node `id`'s engine.
    pub fn node(&self, id: NodeId) -> &Raft<S> {
        &self.nodes[id as usize - 1]
    }

    /// Proposes `n` raw commands of `size` bytes at the leader.
    pub fn propose_batch(&mut self, n: usize, size: usize) {
        let l = self.leader;
        for i in 0..n {
            let mut data = vec![0u8; size];
            if size >= 8 {
                data[..8].copy_from_slice(&(i as u64).to_le_bytes());
            }
            if self.nodes[l].propose(data).is_err() {
                panic!("the leader refused a proposal");
            }
        }
    }

    /// Submits a client request at the leader.
    pub fn submit(&mut self, token: ClientToken, req: ClientRequest) {
        let l = self.leader;
        self.nodes[l].submit(token, req);
    }

    /// The engines, node 1 first: for a host that runs them itself (the
    /// threaded cluster, [`threaded`]). Call it after [`MemCluster::pump`],
    /// when no message is in flight.
    pub fn into_nodes(self) -> Vec<Raft<S>> {
        debug_assert!(self.queue.is_empty(), "messages in flight would be lost");
        self.nodes
    }

    /// Lets the leader's heartbeats tell the followers its commit index
    /// (nothing else does once no new entry is proposed), until every node
    /// has applied all it committed; at most 100 heartbeat rounds.
    pub fn settle(&mut self) {
        let l = self.leader;
        for _ in 0..100 {
            let target = self.nodes[l].commit_index();
            if self.nodes.iter().all(|n| n.applied_index() == target) {
                return;
            }
            for _ in 0..10 {
                self.nodes[l].tick();
            }
            self.pump();
        }
    }

    /// Runs every node until no output is left: records are durable at once,
    /// messages are delivered in FIFO order.
    pub fn pump(&mut self) {
        loop {
            let mut busy = false;
            for i in 0..self.nodes.len() {
                loop {
                    let ready = self.nodes[i].take_ready();
                    if ready.is_empty() {
                        break;
                    }
                    busy = true;
                    self.queue.extend(ready.messages);
                    self.replies.extend(ready.replies);
                    if let Some(&(seq, _)) = ready.records.last() {
                        self.nodes[i].persisted(seq);
                    }
                }
            }
            while let Some(m) = self.queue.pop_front() {
                busy = true;
                let to = m.to as usize - 1;
                let _ = self.nodes[to].step(m);
            }
            if !busy {
                break;
            }
        }
    }
}

/// The examples' one optional number: the first command-line argument, or
/// `default` without one; `Err` (after printing `usage`) unless it is a
/// number above `min`.
///
/// ```
/// assert_eq!(benches::number_arg(None, 10, 0, "usage"), Ok(10));
/// assert_eq!(benches::number_arg(Some("7".into()), 10, 0, "usage"), Ok(7));
/// assert!(benches::number_arg(Some("0".into()), 10, 0, "usage").is_err());
/// ```
pub fn number_arg(arg: Option<String>, default: u64, min: u64, usage: &str) -> Result<u64, std::process::ExitCode> {
    match arg.map(|a| a.parse::<u64>()) {
        None => Ok(default),
        Some(Ok(n)) if n > min => Ok(n),
        Some(_) => {
            eprintln!("{usage}");
            Err(std::process::ExitCode::from(2))
        }
    }
}

/// The command client `i` of the closed loop sends every time: a put of 16
/// bytes to its own key.
pub fn closed_loop_command(i: usize) -> Vec<u8> {
    KvOp::Put { key: format!("k{i}"), value: "v".repeat(16) }.encode()
}

/// Checks a finished closed loop, as the openraft side checks its own
/// (`compare/openraft`): every replica applied the same state (keys,
/// revisions, leases, sessions and their reply caches, applied index);
/// the store holds exactly the key of every client that wrote, with its
/// 16-byte value; and the clients' completed writes (`writes[i]` for client
/// `i`) add up to `total`. Returns what is wrong, if anything.
pub fn closed_loop_check(nodes: &[&Raft<KvStore>], writes: &[u64], total: u64) -> Result<(), String> {
    let first = nodes.first().ok_or("no nodes")?;
    for n in &nodes[1..] {
        if n.applied_index() != first.applied_index() {
            return Err(format!(
                "node {} applied {}, node {} {}",
                first.id(),
                first.applied_index(),
                n.id(),
                n.applied_index()
            ));
        }
        if n.state_machine() != first.state_machine() {
            return Err(format!("the stores of nodes {} and {} differ", first.id(), n.id()));
        }
        if n.sessions() != first.sessions() {
            return Err(format!("the session tables of nodes {} and {} differ", first.id(), n.id()));
        }
    }
    let sum: u64 = writes.iter().sum();
    if sum != total {
        return Err(format!("the clients completed {sum} writes, not {total}"));
    }
    let kv = first.state_machine();
    let wrote = writes.iter().filter(|&&w| w > 0).count();
    if kv.len() != wrote {
        return Err(format!("{} keys held, {wrote} clients wrote", kv.len()));
    }
    let value = "v".repeat(16);
    for (i, _) in writes.iter().enumerate().filter(|(_, &w)| w > 0) {
        if kv.get(&format!("k{i}")) != Some(value.as_str()) {
            return Err(format!("client {i}'s key does not hold its value"));
        }
    }
    Ok(())
}

/// A key-value cluster of `nodes` with one registered session per client.
pub fn closed_loop_cluster(nodes: usize, clients: usize) -> (MemCluster<KvStore>, Vec<u64>) {
    let mut cl = MemCluster::with_config(nodes, |_| KvStore::default(), |c| c.sessions.max_sessions = 1 << 16);
    for i in 0..clients {
        cl.submit(i as u64, ClientRequest::Register { owner: i as u64, secret_hash: [0; 32] });
    }
    cl.pump();
    let mut regs = std::mem::take(&mut cl.replies);
    regs.sort_by_key(|r| r.0);
    let sessions = regs
        .into_iter()
        .map(|(_, r)| match r {
            ClientReply::Registered { session } => session,
            other => panic!("register failed: {other:?}"),
        })
        .collect();
    (cl, sessions)
}

/// Runs `clients` closed-loop clients until `total` writes completed; returns the time.
pub fn closed_loop_run(cl: &mut MemCluster<KvStore>, sessions: &[u64], seqs: &mut [u64], total: u64) -> Duration {
    // Each client puts 16 bytes to its own key; it encodes its command once.
    let commands: Vec<Vec<u8>> = (0..sessions.len()).map(closed_loop_command).collect();
    let write = |session: u64, seq: u64, i: usize| ClientRequest::Write {
        session,
        secret_hash: [0; 32],
        seq,
        ack: seq,
        command: commands[i].as_slice().into(),
    };
    let start = Instant::now();
    let mut issued = 0u64;
    for (i, &s) in sessions.iter().enumerate().take(usize::try_from(total).unwrap_or(usize::MAX)) {
        seqs[i] += 1;
        cl.submit(i as u64, write(s, seqs[i], i));
        issued += 1;
    }
    let mut done = 0u64;
    while done < total {
        cl.pump();
        let replies = std::mem::take(&mut cl.replies);
        for (tok, r) in replies {
            assert!(matches!(r, ClientReply::Written { .. }), "write failed: {r:?}");
            done += 1;
            let i = tok as usize;
            if issued < total {
                seqs[i] += 1;
                cl.submit(tok, write(sessions[i], seqs[i], i));
                issued += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    // Drain what is still in flight so the next run starts clean.
    cl.pump();
    cl.replies.clear();
    elapsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single_thread(clients: usize, total: u64) -> (MemCluster<KvStore>, Vec<u64>) {
        let (mut cl, sessions) = closed_loop_cluster(3, clients);
        let mut seqs = vec![0u64; clients];
        closed_loop_run(&mut cl, &sessions, &mut seqs, total);
        cl.settle();
        (cl, seqs)
    }

    #[test]
    fn the_check_passes_a_finished_loop_and_catches_a_miscount() {
        for (clients, total) in [(8, 3_000), (20, 5)] {
            let (cl, seqs) = single_thread(clients, total);
            let nodes: Vec<&Raft<KvStore>> = (1..=3).map(|id| cl.node(id)).collect();
            assert_eq!(closed_loop_check(&nodes, &seqs, total), Ok(()), "{clients} clients, {total} writes");
            assert!(closed_loop_check(&nodes, &seqs, total + 1).is_err(), "a write missing");
            if let Some(idle) = seqs.iter().position(|&w| w == 0) {
                // The same total, but credited to a client whose key is absent.
                let mut moved = seqs.clone();
                moved[0] -= 1;
                moved[idle] += 1;
                assert!(closed_loop_check(&nodes, &moved, total).is_err(), "a client that never wrote");
            }
        }
    }

    #[test]
    fn the_check_catches_replicas_that_differ() {
        let (cl, seqs) = single_thread(4, 100);
        let (other, _) = single_thread(4, 101);
        let nodes = [cl.node(1), cl.node(2), other.node(3)];
        assert!(closed_loop_check(&nodes, &seqs, 100).is_err());
    }
}
