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
    let commands: Vec<Vec<u8>> =
        (0..sessions.len()).map(|i| KvOp::Put { key: format!("k{i}"), value: "v".repeat(16) }.encode()).collect();
    let write = |session: u64, seq: u64, i: usize| ClientRequest::Write {
        session,
        secret_hash: [0; 32],
        seq,
        ack: seq,
        command: commands[i].clone(),
    };
    let start = Instant::now();
    let mut issued = 0u64;
    for (i, &s) in sessions.iter().enumerate() {
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
