//! Test mode: one random seed with faults and simulated clients, judged by the
//! simulator's safety checks and raft-core's linearizability
//! checker. The faults are injected as ordinary [`Op`]s, so a failing seed's
//! trace loads into the main view and replays exactly.

use raft_core::checker::{self, Limits, Operation, Outcome};
use raft_core::rng::Rng;
use raft_core::NodeId;
use serde::{Deserialize, Serialize};

use crate::action::{Action, Op};
use crate::driver::Driver;
use crate::options::{BugOptions, Options, OptionsError};
use crate::words;

/// What one test-mode run does.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkloadOptions {
    /// The seed (of the simulator and of the fault schedule).
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// Simulated time with faults, µs; a calm period follows.
    pub duration_us: u64,
    /// Simulated clients.
    pub clients: usize,
    /// Keys they work on.
    pub keys: usize,
    /// Inject faults.
    pub faults: bool,
    /// Deliberate bugs (need a `bugs` build).
    pub bugs: BugOptions,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            seed: 1,
            nodes: 5,
            duration_us: 10_000_000,
            clients: 8,
            keys: 1,
            faults: true,
            bugs: BugOptions::default(),
        }
    }
}

impl WorkloadOptions {
    /// The cluster options of the run: the demo's defaults with this seed, size
    /// and bugs, and a few knobs varied by the seed (a leader without
    /// CheckQuorum keeps leading a minority, which is where stale reads show).
    pub fn cluster(&self) -> Options {
        let mut rng = Rng::new(self.seed ^ 0x0C0F_F1E5);
        Options {
            nodes: self.nodes,
            seed: self.seed,
            bugs: self.bugs,
            check_quorum: rng.chance(0.5),
            pre_vote: rng.chance(0.75),
            latency_us: [1_000, rng.range(5_000, 25_000)],
            snapshot_entries: if rng.chance(0.5) { rng.range(20, 200) } else { 0 },
            ..Options::default()
        }
    }
}

/// The judgement on a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verdict {
    /// No safety check failed and the history is linearizable.
    Ok,
    /// A safety check of the simulator failed.
    Unsafe,
    /// The history is not linearizable on `key`.
    NotLinearizable {
        /// The key.
        key: String,
    },
    /// The checker gave up on `key` (search too large).
    Inconclusive {
        /// The key.
        key: String,
    },
}

/// One operation of a client history, in words (for the page's timeline).
#[derive(Clone, Debug, Serialize)]
pub struct OpView {
    /// Client number.
    pub client: u64,
    /// Key.
    pub key: String,
    /// The operation.
    pub op: String,
    /// Invocation, µs.
    pub call: u64,
    /// Return, µs (the end of the run if it never returned).
    pub ret: u64,
    /// ok, failed or unknown.
    pub outcome: &'static str,
    /// The result, for ok operations.
    pub result: String,
    /// The operation the violation hinges on (see [`culprit`]).
    #[serde(skip_serializing_if = "core::ops::Not::not")]
    pub culprit: bool,
}

/// The outcome of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Verdict.
    pub verdict: Verdict,
    /// Which checks judged it.
    pub checks: &'static str,
    /// Safety violations.
    pub violations: Vec<String>,
    /// Events processed.
    pub events: u64,
    /// Simulated time at the end, µs.
    pub end: u64,
    /// The moment to look at, µs: the first safety violation, or when the
    /// culprit of a non-linearizable history returned its answer.
    pub violation_at: Option<u64>,
    /// Client operations recorded, and those that completed.
    pub ops: (usize, usize),
    /// The failing history (only when the verdict is not `Ok`; at most 300 operations).
    pub history: Vec<OpView>,
    /// Options and actions to load the run into the main view.
    pub options: Options,
    /// The run's actions (faults included).
    pub actions: Vec<Action>,
}

/// Turns a history entry into words.
pub fn op_view(o: &Operation, end: u64) -> OpView {
    let (outcome, result) = match &o.outcome {
        Outcome::Ok(out) => ("ok", words::kv_output(out)),
        Outcome::Failed => ("failed", String::new()),
        Outcome::Unknown => ("unknown", String::new()),
    };
    OpView {
        client: o.client,
        key: o.op.key().to_string(),
        op: words::kv_op(&o.op),
        call: o.call,
        ret: o.ret.min(end),
        outcome,
        result,
        culprit: false,
    }
}

/// In a failing history, the operation whose answer cannot be explained:
/// one without which the rest is linearizable. A read is preferred (a stale
/// read is the usual culprit), then the earliest to return. The checker's
/// minimal history is built around such an operation (its "witness"), so
/// on that history this finds it.
pub fn culprit(ops: &[Operation]) -> Option<usize> {
    let limits = Limits { max_steps: 1_000_000 };
    let mut best: Option<(bool, u64, usize)> = None; // (not a read, return time, position)
    for (i, o) in ops.iter().enumerate() {
        if !matches!(o.outcome, Outcome::Ok(_)) {
            continue;
        }
        let rest: Vec<Operation> = ops.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, o)| o.clone()).collect();
        if checker::check(&rest, &limits) == checker::Verdict::Linearizable {
            let rank = (!matches!(o.op, raft_core::kv::KvOp::Get { .. }), o.ret, i);
            if best.is_none_or(|b| rank < b) {
                best = Some(rank);
            }
        }
    }
    best.map(|(_, _, i)| i)
}

/// Judges a history with raft-core's linearizability checker (revision
/// order, replayed per key). A violation comes with the smallest failing sub-history
/// the checker found.
pub fn check_history(history: &[Operation]) -> (Verdict, Vec<Operation>) {
    match checker::check(history, &Limits { max_steps: 5_000_000 }) {
        checker::Verdict::Linearizable => (Verdict::Ok, Vec::new()),
        checker::Verdict::Violation { key, ops } => (Verdict::NotLinearizable { key }, ops),
        checker::Verdict::Inconclusive { key } => (Verdict::Inconclusive { key }, Vec::new()),
    }
}

/// Whether this build judges histories for linearizability.
pub const HAS_CHECKER: bool = true;

fn pick(rng: &mut Rng, ids: &[NodeId]) -> NodeId {
    ids[rng.below(ids.len() as u64) as usize]
}

/// Runs one seed: simulated clients, random faults for `duration_us`, then a
/// calm period (every link healed, every node up) for the cluster to settle.
pub fn run(w: &WorkloadOptions) -> Result<Report, OptionsError> {
    let mut d = Driver::new(w.cluster())?;
    let ids: Vec<NodeId> = (1..=w.nodes as NodeId).collect();
    let mut rng = Rng::new(w.seed ^ 0x7E57_F00D);
    d.act(Op::StartClients { count: w.clients.max(1), keys: w.keys.max(1) });
    let mut restarts: Vec<(u64, NodeId)> = Vec::new();
    let end = w.duration_us;
    while d.now() < end {
        let next_fault = d.now() + rng.range(100_000, 600_000);
        // Run to the next fault, restarting crashed nodes on schedule.
        loop {
            restarts.sort_unstable();
            let until = restarts.first().map_or(next_fault, |r| r.0.min(next_fault));
            d.run_until(until);
            match restarts.first() {
                Some(&(t, id)) if t <= d.now() => {
                    restarts.remove(0);
                    d.act(Op::Restart { node: id });
                }
                _ => break,
            }
        }
        if !w.faults || d.now() >= end {
            continue;
        }
        let mut crash = |d: &mut Driver, rng: &mut Rng, id: NodeId| {
            if d.sim().is_up(id) {
                d.act(Op::Crash { node: id });
                restarts.push((d.now() + rng.range(0, 1_500) * 1_000, id));
            }
        };
        match rng.below(14) {
            0 | 1 => {
                let id = pick(&mut rng, &ids);
                crash(&mut d, &mut rng, id);
            }
            2 => {
                if let Some(l) = d.sim().leader() {
                    crash(&mut d, &mut rng, l);
                }
            }
            3 | 12 | 13 => {
                // The leader alone on the small side: a deposed leader that may not know it.
                if let Some(l) = d.sim().leader() {
                    d.act(Op::Partition { side: vec![l] });
                }
            }
            4 => {
                let mut side: Vec<NodeId> = ids.iter().copied().filter(|_| rng.chance(0.5)).collect();
                if side.is_empty() {
                    side.push(pick(&mut rng, &ids));
                }
                d.act(Op::Partition { side });
            }
            5 => {
                let (a, b) = (pick(&mut rng, &ids), pick(&mut rng, &ids));
                if a != b {
                    d.act(Op::Cut { from: a, to: b, both: false });
                }
            }
            6 | 7 => d.act(Op::Heal),
            8 => d.act(Op::Network {
                loss: rng.below(30) as f64 / 100.0,
                duplicate: rng.below(10) as f64 / 100.0,
                long_delay: rng.below(10) as f64 / 100.0,
            }),
            9 => d.act(Op::Network { loss: 0.0, duplicate: 0.0, long_delay: 0.0 }),
            10 => {
                let id = pick(&mut rng, &ids);
                d.act(Op::Timeout { node: id });
            }
            _ => {
                let id = pick(&mut rng, &ids);
                d.act(Op::Rejoin { node: id });
            }
        }
    }
    // Calm: heal everything, bring every node back, let clients finish.
    d.act(Op::Heal);
    d.act(Op::Network { loss: 0.0, duplicate: 0.0, long_delay: 0.0 });
    for &id in &ids {
        if !d.sim().is_up(id) {
            d.act(Op::Restart { node: id });
        }
    }
    d.act(Op::StopClients);
    d.advance(4_000_000);
    d.sim.final_check();
    let now = d.now();
    let violations = d.sim().violations().to_vec();
    let history = d.sim().history();
    let (checked, minimal) = check_history(history);
    let verdict = if !violations.is_empty() { Verdict::Unsafe } else { checked };
    let mut violation_at = d.first_violation();
    let history_view: Vec<OpView> = match &verdict {
        Verdict::Ok => Vec::new(),
        Verdict::NotLinearizable { .. } if !minimal.is_empty() => {
            let blame = culprit(&minimal);
            violation_at = blame.map(|i| minimal[i].ret).or_else(|| minimal.iter().map(|o| o.ret).max());
            let mut v: Vec<OpView> = minimal.iter().take(300).map(|o| op_view(o, now)).collect();
            if let Some(op) = blame.and_then(|i| v.get_mut(i)) {
                op.culprit = true;
            }
            v
        }
        // The key's whole history (the checker gave up, or found nothing smaller).
        Verdict::NotLinearizable { key } | Verdict::Inconclusive { key } => {
            history.iter().filter(|o| o.op.key() == key).take(300).map(|o| op_view(o, now)).collect()
        }
        Verdict::Unsafe => history.iter().rev().take(300).rev().map(|o| op_view(o, now)).collect(),
    };
    Ok(Report {
        seed: w.seed,
        verdict,
        checks: "safety+linearizability",
        violations,
        events: d.events(),
        end: now,
        violation_at,
        ops: (history.len(), d.sim().completed_ops()),
        history: history_view,
        options: d.options().clone(),
        actions: d.trace(),
    })
}
