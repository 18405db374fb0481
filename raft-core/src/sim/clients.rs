//! Simulated clients: each opens a session and issues random key-value
//! operations on a few keys, with per-attempt timeouts, following leader
//! hints and retrying writes with the same seq elsewhere — what the client
//! library does for real. Every operation is recorded as a history event
//! (invocation, return, outcome) for the linearizability checker:
//!
//! * a result → `Ok(output)`;
//! * given up after only `NotLeader`/`Busy` answers → `Failed` (never entered a log);
//! * given up after a timeout, `UnknownOutcome` or `SessionExpired` → `Unknown`.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{Action, Sim};
use crate::checker::{Operation, Outcome};
use crate::client::{ClientError, ClientReply, ClientRequest, ClientToken};
use crate::kv::{Cmp, Compare, KvOp, KvOutput, Txn, TxnOp};
use crate::types::NodeId;

/// Knobs of the simulated client workload.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Number of concurrent clients.
    pub clients: usize,
    /// Number of distinct keys.
    pub keys: usize,
    /// Time before an unanswered attempt is retried elsewhere.
    pub attempt_timeout_us: u64,
    /// Time before an operation is given up.
    pub op_timeout_us: u64,
    /// Think time between operations: uniformly up to this.
    pub think_us: u64,
    /// Probability that a client goes idle for a long while (long enough for
    /// its session to expire) before its next operation.
    pub long_idle: f64,
    /// Whether clients grant, keep alive and revoke leases and attach keys
    /// to them.
    pub leases: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            clients: 4,
            keys: 3,
            attempt_timeout_us: 300_000,
            op_timeout_us: 3_000_000,
            think_us: 30_000,
            long_idle: 0.0,
            leases: true,
        }
    }
}

#[derive(Clone, Debug)]
enum Work {
    Register,
    KeepAlive,
    Op { op: KvOp, seq: u64, hist: usize },
}

#[derive(Clone, Debug)]
struct Current {
    work: Work,
    gave_up_at: u64,
    /// Some attempt may have entered a log (timed out, or unknown outcome).
    maybe_applied: bool,
}

/// One simulated client.
#[derive(Clone, Debug)]
pub(crate) struct SimClient {
    session: Option<u64>,
    next_seq: u64,
    target: NodeId,
    attempt: u64,
    current: Option<Current>,
    /// Sim time of the last request that refreshed the session.
    last_active: u64,
    serial: u64,
    /// Values this client last read, by key (for compare-and-swaps).
    last_seen: BTreeMap<String, Option<String>>,
    /// Leases this client was granted (some may have ended).
    leases: Vec<u64>,
}

impl SimClient {
    /// Remembers what an answer taught: values read, leases granted.
    fn learn(&mut self, out: &KvOutput) {
        match out {
            KvOutput::Value { kv: Some(kv), .. } => {
                self.last_seen.insert(kv.key.clone(), Some(kv.value.clone()));
            }
            KvOutput::Range { kvs, .. } => {
                for kv in kvs {
                    self.last_seen.insert(kv.key.clone(), Some(kv.value.clone()));
                }
            }
            KvOutput::Lease { id, .. } if !self.leases.contains(id) => {
                self.leases.push(*id);
                if self.leases.len() > 4 {
                    self.leases.remove(0);
                }
            }
            _ => {}
        }
    }
}

fn token(client: usize, attempt: u64) -> ClientToken {
    ((client as u64) << 40) | (attempt & ((1 << 40) - 1))
}

impl Sim {
    /// Starts `cfg.clients` simulated clients.
    pub fn start_clients(&mut self, cfg: ClientConfig) {
        let n = self.nodes.len() as u64;
        for _ in 0..cfg.clients {
            let target = self.rng.range(1, n);
            self.clients.push(SimClient {
                session: None,
                next_seq: 1,
                target,
                attempt: 0,
                current: None,
                last_active: 0,
                serial: 0,
                last_seen: BTreeMap::new(),
                leases: Vec::new(),
            });
        }
        self.client_cfg = cfg;
        for c in 0..self.clients.len() {
            let at = self.now + self.rng.below(10_000);
            self.schedule(at, Action::ClientWake { client: c, attempt: 0 });
        }
    }

    /// Stops issuing new operations (in-flight ones finish or time out).
    pub fn stop_clients(&mut self) {
        self.clients_stopped = true;
    }

    /// The operations clients have recorded so far.
    pub fn history(&self) -> &[Operation] {
        &self.history
    }

    /// Operations that completed with a result.
    pub fn completed_ops(&self) -> usize {
        self.history.iter().filter(|o| matches!(o.outcome, Outcome::Ok(_))).count()
    }

    fn next_node(&mut self, c: usize) {
        let n = self.nodes.len() as u64;
        let t = self.clients[c].target;
        self.clients[c].target = t % n + 1;
    }

    /// A client's timer fired (think time over, or an attempt timed out).
    pub(super) fn client_wake(&mut self, c: usize, attempt: u64) {
        if self.clients[c].attempt != attempt {
            return; // a reply came first
        }
        match self.clients[c].current.clone() {
            Some(cur) => {
                // The attempt timed out: it may have entered a log.
                if let Some(cur) = self.clients[c].current.as_mut() {
                    cur.maybe_applied |= !matches!(cur.work, Work::Op { op: KvOp::Get { .. }, .. });
                }
                if self.now >= cur.gave_up_at {
                    self.give_up(c);
                } else {
                    self.next_node(c);
                    self.send_attempt(c);
                }
            }
            None => self.begin_work(c),
        }
    }

    fn begin_work(&mut self, c: usize) {
        if self.clients_stopped {
            return;
        }
        let cfg = self.client_cfg.clone();
        let session_timeout_us = self.cfg.raft.sessions.timeout_ticks * self.cfg.tick_us;
        let cl = &self.clients[c];
        let work = if cl.session.is_none() {
            Work::Register
        } else if self.now.saturating_sub(cl.last_active) > session_timeout_us / 3 && self.rng.chance(0.5) {
            Work::KeepAlive
        } else {
            let op = self.random_op(c, cfg.keys);
            let seq = if op.is_read() {
                0
            } else {
                let s = self.clients[c].next_seq;
                self.clients[c].next_seq += 1;
                s
            };
            let hist = self.history.len();
            self.history.push(Operation {
                client: c as u64,
                op: op.clone(),
                call: self.now,
                ret: u64::MAX,
                outcome: Outcome::Unknown,
            });
            Work::Op { op, seq, hist }
        };
        self.clients[c].current =
            Some(Current { work, gave_up_at: self.now + cfg.op_timeout_us, maybe_applied: false });
        self.send_attempt(c);
    }

    /// A random operation of client `c` over `keys` keys `k0`, `k1`, …: the
    /// single-key ops, range and prefix pages, counts, transactions, and
    /// leases (granted with a TTL of 0.5–3 s, kept alive, revoked, attached
    /// to puts) when the workload has them.
    fn random_op(&mut self, c: usize, keys: usize) -> KvOp {
        let keys = keys.max(1) as u64;
        self.clients[c].serial += 1;
        let serial = self.clients[c].serial;
        let value = format!("{c}.{serial} ");
        let key = |rng: &mut crate::rng::Rng| format!("k{}", rng.below(keys));
        let leases = self.client_cfg.leases;
        let lease = |rng: &mut crate::rng::Rng, cl: &SimClient| match cl.leases.len() {
            0 => 1,
            n => cl.leases[rng.below(n as u64) as usize],
        };
        let roll = self.rng.below(if leases { 24 } else { 20 });
        let rng = &mut self.rng;
        let cl = &self.clients[c];
        match roll {
            0..=2 => KvOp::Get { key: key(rng) },
            3 | 4 => KvOp::Put { key: key(rng), value },
            5..=7 => KvOp::Append { key: key(rng), value },
            8 => {
                let key = key(rng);
                let expect = if rng.chance(0.7) { cl.last_seen.get(&key).cloned().flatten() } else { None };
                KvOp::Cas { key, expect, value }
            }
            9 => KvOp::Delete { key: key(rng) },
            10 | 11 => {
                KvOp::Prefix { prefix: String::from("k"), from: rng.chance(0.3).then(|| key(rng)), limit: rng.below(3) }
            }
            12 => KvOp::Range { from: key(rng), to: rng.chance(0.5).then(|| key(rng)), limit: 0 },
            13 => KvOp::Count { from: String::from("k"), to: None },
            14..=16 => {
                // A transfer-like transaction: if a key is at the version we
                // last saw (or absent), write two keys; else read one.
                let (a, b) = (key(rng), key(rng));
                let compare = match rng.below(3) {
                    0 => vec![Compare::Exists { key: a.clone(), exists: false }],
                    1 => vec![Compare::Version { key: a.clone(), cmp: Cmp::Less, version: rng.range(1, 4) }],
                    _ => match cl.last_seen.get(&a).cloned().flatten() {
                        Some(v) => vec![Compare::Value { key: a.clone(), cmp: Cmp::Equal, value: v }],
                        None => vec![Compare::ModRevision { key: a.clone(), cmp: Cmp::Greater, revision: 0 }],
                    },
                };
                let success = vec![
                    TxnOp::Put { key: a.clone(), value: value.clone(), lease: 0 },
                    TxnOp::Put { key: b.clone(), value, lease: 0 },
                    TxnOp::Get { key: b },
                ];
                let failure = vec![TxnOp::Get { key: a.clone() }, TxnOp::Delete { key: key(rng) }];
                KvOp::Txn(Txn { compare, success, failure })
            }
            17..=19 => KvOp::Get { key: key(rng) },
            20 => KvOp::LeaseGrant { ttl: rng.range(500, 3000) },
            21 => KvOp::LeaseKeepAlive { id: lease(rng, cl) },
            22 if rng.chance(0.3) => KvOp::LeaseRevoke { id: lease(rng, cl) },
            _ => KvOp::PutLease { key: key(rng), value, lease: lease(rng, cl) },
        }
    }

    fn send_attempt(&mut self, c: usize) {
        let Some(cur) = self.clients[c].current.clone() else { return };
        let session = self.clients[c].session.unwrap_or(0);
        // Each simulated client is its own owner and knows its own secret
        // (the simulator has no outsiders; a host draws secrets at random).
        let (owner, secret_hash) = (c as u64, [c as u8 ^ 0x5a; 32]);
        let req = match &cur.work {
            Work::Register => ClientRequest::Register { owner, secret_hash },
            Work::KeepAlive => ClientRequest::KeepAlive { session, secret_hash, ack: self.clients[c].next_seq },
            Work::Op { op, .. } if op.is_read() => ClientRequest::Read { query: op.encode() },
            // One write in flight per client: everything before `seq` is settled.
            Work::Op { op, seq, .. } => {
                ClientRequest::Write { session, secret_hash, seq: *seq, ack: *seq, command: op.encode().into() }
            }
        };
        self.clients[c].attempt += 1;
        let attempt = self.clients[c].attempt;
        let tok = token(c, attempt);
        let mut node = self.clients[c].target;
        if matches!(req, ClientRequest::Read { .. }) && self.rng.chance(0.3) {
            // Reads go to any node now and then: a follower serves them
            // after asking the leader for a read index (follower reads).
            node = self.rng.range(1, self.nodes.len() as u64);
        }
        if !self.rng.chance(self.cfg.loss) {
            let lat = self.rng.range(self.cfg.latency_us.0, self.cfg.latency_us.1);
            self.schedule(self.now + lat, Action::ClientSend { node, token: tok, req });
        }
        let to = self.now + self.client_cfg.attempt_timeout_us;
        self.schedule(to, Action::ClientWake { client: c, attempt });
    }

    /// A node's reply reached a client.
    pub(super) fn client_reply(&mut self, tok: ClientToken, reply: ClientReply) {
        let c = (tok >> 40) as usize;
        if c >= self.clients.len() || token(c, self.clients[c].attempt) != tok {
            return; // a reply to an attempt already retried or given up
        }
        let Some(cur) = self.clients[c].current.clone() else { return };
        let now = self.now;
        match (reply, &cur.work) {
            (ClientReply::Registered { session }, Work::Register) => {
                self.clients[c].session = Some(session);
                self.clients[c].next_seq = 1;
                self.clients[c].last_active = now;
                self.finish(c);
            }
            (ClientReply::KeptAlive, Work::KeepAlive) => {
                self.clients[c].last_active = now;
                self.finish(c);
            }
            (ClientReply::Written { output }, Work::Op { hist, .. })
            | (ClientReply::Read { output }, Work::Op { hist, .. }) => {
                let hist = *hist;
                match KvOutput::decode(&output) {
                    Ok(out) => {
                        self.clients[c].learn(&out);
                        self.history[hist].outcome = Outcome::Ok(out);
                        self.history[hist].ret = now;
                    }
                    Err(_) => self.client_anomaly(c, "undecodable output"),
                }
                if !op_is_read(&self.history[hist].op) {
                    self.clients[c].last_active = now;
                }
                self.finish(c);
            }
            (ClientReply::Rejected(e), _) => self.client_rejected(c, e),
            (_, _) => self.client_anomaly(c, "reply does not match the request"),
        }
    }

    fn client_rejected(&mut self, c: usize, e: ClientError) {
        match e {
            ClientError::NotLeader { leader_hint } | ClientError::UnknownOutcome { leader_hint } => {
                if matches!(e, ClientError::UnknownOutcome { .. }) {
                    if let Some(cur) = self.clients[c].current.as_mut() {
                        cur.maybe_applied = true;
                    }
                }
                match leader_hint {
                    Some(l) if l != self.clients[c].target => {
                        self.clients[c].target = l;
                        self.send_attempt(c);
                    }
                    _ => {
                        self.next_node(c);
                        self.retry_later(c);
                    }
                }
            }
            ClientError::Busy => self.retry_later(c),
            ClientError::SessionExpired => {
                if let Some(cur) = self.clients[c].current.as_mut() {
                    cur.maybe_applied = true;
                }
                self.clients[c].session = None;
                self.give_up(c);
            }
            ClientError::StaleSeq | ClientError::BadRequest(_) => {
                self.client_anomaly(c, e.code());
                self.give_up(c);
            }
        }
    }

    fn retry_later(&mut self, c: usize) {
        self.clients[c].attempt += 1;
        let attempt = self.clients[c].attempt;
        let at = self.now + 20_000;
        if let Some(cur) = self.clients[c].current.as_mut() {
            if at >= cur.gave_up_at {
                return self.give_up(c);
            }
        }
        // Re-sends at wake-up without counting as a timeout.
        self.schedule(at, Action::ClientRetry { client: c, attempt });
    }

    pub(super) fn client_retry(&mut self, c: usize, attempt: u64) {
        if self.clients[c].attempt == attempt && self.clients[c].current.is_some() {
            self.send_attempt(c);
        }
    }

    fn give_up(&mut self, c: usize) {
        if let Some(cur) = self.clients[c].current.clone() {
            if let Work::Op { hist, .. } = cur.work {
                self.history[hist].outcome = if cur.maybe_applied { Outcome::Unknown } else { Outcome::Failed };
                self.history[hist].ret = self.now;
            }
        }
        self.finish(c);
    }

    fn finish(&mut self, c: usize) {
        self.clients[c].current = None;
        self.clients[c].attempt += 1;
        let attempt = self.clients[c].attempt;
        let mut think = self.rng.below(self.client_cfg.think_us.max(1));
        if self.rng.chance(self.client_cfg.long_idle) {
            think += self.cfg.raft.sessions.timeout_ticks * self.cfg.tick_us * 2;
        }
        self.schedule(self.now + think, Action::ClientWake { client: c, attempt });
    }

    fn client_anomaly(&mut self, c: usize, what: &str) {
        let now = self.now;
        self.checker.violations.push(format!("t={now}us: client {c} got an impossible reply: {what}"));
    }
}

fn op_is_read(op: &KvOp) -> bool {
    op.is_read()
}
