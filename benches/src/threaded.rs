//! The closed loop on a threaded in-memory cluster: each node on an OS
//! thread of its own, as openraft's runtime spreads its nodes over its
//! worker threads (`scripts/compare-openraft.sh`, BENCHMARKS.md).
//!
//! The engines stay what they are — sans-IO, one per thread, nothing shared.
//! This is only a host: each thread steps its node with the messages in its
//! inbox, makes journal records durable at once (as [`MemCluster`] does),
//! and sends the node's messages to the other threads' inboxes. The clients
//! run on the leader's thread: each reply submits that client's next write,
//! with no channel in between.
//!
//! Every inbox is a bounded channel (`capacity` messages). A thread never
//! blocks on a full inbox: what does not fit waits in the sender's own queue
//! for that peer and goes on the next round, while the sender keeps reading
//! its own inbox. Blocking sends could deadlock (the leader waiting for room
//! at a follower that waits for room at the leader); this cannot, and the
//! queues stay small because Raft bounds what is in flight (at most
//! `max_inflight_msgs` AppendEntries per follower, one answer to each).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant};

use raft_core::{ClientReply, ClientRequest, KvStore, Message, NodeId, Raft};

use crate::{closed_loop_command, MemCluster};

/// The default capacity of each inbox, in messages: well above what Raft
/// keeps in flight with the default config (64 AppendEntries per follower),
/// so that a full inbox is rare.
pub const DEFAULT_CAPACITY: usize = 1024;

/// How long an idle thread waits for its inbox before it looks again at
/// what it could not send (or, on the leader at the end, ticks).
const POLL: Duration = Duration::from_micros(200);

/// What a thread's inbox carries.
enum Input {
    /// A message from a peer.
    Peer(Message),
    /// The run is over: return the node.
    Stop,
}

/// A finished run of [`run`].
pub struct Run {
    /// From the first write submitted to the last reply.
    pub elapsed: Duration,
    /// The engines, node 1 (the leader) first, once every node applied
    /// everything the leader committed.
    pub nodes: Vec<Raft<KvStore>>,
    /// Writes each client completed.
    pub writes: Vec<u64>,
    /// How many times a message found its peer's inbox full and waited.
    pub full: u64,
}

/// Runs the closed loop of [`crate::closed_loop_run`] (`total` writes,
/// one client per session in `sessions`, each client's next write sent when
/// its previous one is applied on the leader) with each node of `cl` on a
/// thread of its own and inboxes of `capacity` messages (at least 1).
/// `cl` comes from [`crate::closed_loop_cluster`]: node 1 leads.
pub fn run(cl: MemCluster<KvStore>, sessions: &[u64], total: u64, capacity: usize) -> Run {
    let nodes = cl.into_nodes();
    let n = nodes.len();
    let capacity = capacity.max(1);
    let (senders, inboxes): (Vec<SyncSender<Input>>, Vec<Receiver<Input>>) =
        (0..n).map(|_| mpsc::sync_channel(capacity)).unzip();
    let applied: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (i, (node, inbox)) in nodes.into_iter().zip(inboxes).enumerate() {
            let host = Host::new(node, inbox, &senders, &applied);
            let clients = (i == 0).then(|| Clients::new(sessions, total));
            handles.push(scope.spawn(move || host.run(clients)));
        }
        let mut out = Run { elapsed: Duration::ZERO, nodes: Vec::new(), writes: Vec::new(), full: 0 };
        for h in handles {
            let (node, full, clients) = match h.join() {
                Ok(r) => r,
                Err(e) => std::panic::resume_unwind(e),
            };
            out.full += full;
            if let Some(c) = clients {
                out.elapsed = c.elapsed.unwrap_or_default();
                out.writes = c.writes;
            }
            out.nodes.push(node);
        }
        out
    })
}

/// The closed-loop clients, on the leader's thread.
struct Clients<'a> {
    sessions: &'a [u64],
    commands: Vec<Vec<u8>>,
    /// Writes sent by each client (its last seq).
    writes: Vec<u64>,
    issued: u64,
    done: u64,
    total: u64,
    start: Option<Instant>,
    elapsed: Option<Duration>,
}

impl<'a> Clients<'a> {
    fn new(sessions: &'a [u64], total: u64) -> Self {
        let commands = (0..sessions.len()).map(closed_loop_command).collect();
        let writes = vec![0; sessions.len()];
        Clients { sessions, commands, writes, issued: 0, done: 0, total, start: None, elapsed: None }
    }

    /// Client `i` sends its next write, if any are left to send.
    fn send(&mut self, node: &mut Raft<KvStore>, i: usize) {
        if self.issued >= self.total {
            return;
        }
        self.issued += 1;
        self.writes[i] += 1;
        let seq = self.writes[i];
        let req = ClientRequest::Write {
            session: self.sessions[i],
            secret_hash: [0; 32],
            seq,
            ack: seq,
            command: self.commands[i].as_slice().into(),
        };
        node.submit(i as u64, req);
    }

    /// Starts the clock and every client's first write.
    fn start(&mut self, node: &mut Raft<KvStore>) {
        self.start = Some(Instant::now());
        for i in 0..self.sessions.len() {
            self.send(node, i);
        }
    }

    fn on_reply(&mut self, node: &mut Raft<KvStore>, token: u64, reply: ClientReply) {
        assert!(matches!(reply, ClientReply::Written { .. }), "write failed: {reply:?}");
        self.done += 1;
        if self.done == self.total {
            self.elapsed = self.start.map(|s| s.elapsed());
        }
        self.send(node, token as usize);
    }

    fn finished(&self) -> bool {
        self.done >= self.total
    }
}

/// One node's thread.
struct Host<'a> {
    node: Raft<KvStore>,
    inbox: Receiver<Input>,
    /// Each peer's inbox, and what waits for room in it.
    peers: Vec<(NodeId, SyncSender<Input>, VecDeque<Input>)>,
    /// Every node's applied index, for the leader to see when all are done.
    applied: &'a [AtomicU64],
    /// Messages that found a full inbox.
    full: u64,
}

impl<'a> Host<'a> {
    fn new(
        node: Raft<KvStore>,
        inbox: Receiver<Input>,
        senders: &[SyncSender<Input>],
        applied: &'a [AtomicU64],
    ) -> Self {
        let me = node.id();
        let peers = (1..=senders.len() as NodeId)
            .filter(|&id| id != me)
            .map(|id| (id, senders[id as usize - 1].clone(), VecDeque::new()))
            .collect();
        Host { node, inbox, peers, applied, full: 0 }
    }

    /// The thread's loop; returns the node, how often an inbox was full, and
    /// the clients (on the leader).
    fn run<'c>(mut self, mut clients: Option<Clients<'c>>) -> (Raft<KvStore>, u64, Option<Clients<'c>>) {
        if let Some(c) = clients.as_mut() {
            c.start(&mut self.node);
        }
        loop {
            let mut busy = self.drain_ready(clients.as_mut());
            busy |= self.flush();
            self.applied[self.node.id() as usize - 1].store(self.node.applied_index(), Ordering::Release);
            if clients.as_ref().is_some_and(Clients::finished) && self.all_applied() {
                // Followers stop once they have applied everything.
                for (_, _, queue) in &mut self.peers {
                    queue.push_back(Input::Stop);
                }
                while self.peers.iter().any(|p| !p.2.is_empty()) {
                    self.flush();
                    std::thread::sleep(POLL);
                }
                return (self.node, self.full, clients);
            }
            // Take what is in the inbox now; wait for it only when idle.
            let mut input = match self.inbox.try_recv() {
                Ok(i) => Some(i),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => return (self.node, self.full, clients),
            };
            if input.is_none() && !busy {
                let waiting = self.peers.iter().any(|p| !p.2.is_empty());
                let ending = clients.as_ref().is_some_and(Clients::finished);
                if ending {
                    // Only heartbeats tell the followers the final commit index.
                    self.node.tick();
                }
                input = if waiting || ending {
                    match self.inbox.recv_timeout(POLL) {
                        Ok(i) => Some(i),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return (self.node, self.full, clients),
                    }
                } else {
                    match self.inbox.recv() {
                        Ok(i) => Some(i),
                        Err(_) => return (self.node, self.full, clients),
                    }
                };
            }
            while let Some(i) = input.take() {
                match i {
                    Input::Peer(m) => {
                        let _ = self.node.step(m);
                    }
                    Input::Stop => return (self.node, self.full, clients),
                }
                input = self.inbox.try_recv().ok();
            }
        }
    }

    /// Whether every node has applied all the leader committed.
    fn all_applied(&self) -> bool {
        let target = self.node.commit_index();
        self.applied.iter().all(|a| a.load(Ordering::Acquire) >= target)
    }

    /// Takes the node's output until there is none: records durable at
    /// once, messages queued for their peers, replies to the clients (whose
    /// next writes make more output). Whether there was any.
    fn drain_ready(&mut self, mut clients: Option<&mut Clients<'_>>) -> bool {
        let mut any = false;
        loop {
            let ready = self.node.take_ready();
            if ready.is_empty() {
                return any;
            }
            any = true;
            for m in ready.messages {
                if let Some(p) = self.peers.iter_mut().find(|p| p.0 == m.to) {
                    p.2.push_back(Input::Peer(m));
                }
            }
            if let Some(&(seq, _)) = ready.records.last() {
                self.node.persisted(seq);
            }
            if let Some(c) = clients.as_deref_mut() {
                for (token, reply) in ready.replies {
                    c.on_reply(&mut self.node, token, reply);
                }
            }
        }
    }

    /// Sends what waits for each peer, as far as its inbox has room.
    /// Whether anything went.
    fn flush(&mut self) -> bool {
        let mut sent = false;
        for (_, tx, queue) in &mut self.peers {
            while let Some(input) = queue.pop_front() {
                match tx.try_send(input) {
                    Ok(()) => sent = true,
                    Err(TrySendError::Full(input)) => {
                        self.full += 1;
                        queue.push_front(input);
                        break;
                    }
                    // The peer has stopped: nothing more to tell it.
                    Err(TrySendError::Disconnected(_)) => queue.clear(),
                }
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{closed_loop_check, closed_loop_cluster};

    fn check(clients: usize, total: u64, capacity: usize) -> Run {
        let (cl, sessions) = closed_loop_cluster(3, clients);
        let r = run(cl, &sessions, total, capacity);
        let nodes: Vec<&Raft<KvStore>> = r.nodes.iter().collect();
        if let Err(e) = closed_loop_check(&nodes, &r.writes, total) {
            panic!("{clients} clients, {total} writes, capacity {capacity}: {e}");
        }
        r
    }

    #[test]
    fn every_write_applies_on_every_replica() {
        check(1, 50, DEFAULT_CAPACITY);
        check(64, 12_000, DEFAULT_CAPACITY); // past a snapshot (every 10,000 entries)
        check(20, 5, DEFAULT_CAPACITY); // more clients than writes
    }

    #[test]
    fn inboxes_of_one_message_are_full_and_nothing_is_lost() {
        let r = check(32, 2_000, 1);
        assert!(r.full > 0, "an inbox of one message should have been full at some point");
    }
}
