//! The interaction environment: a few `Raft` nodes, their journals and
//! snapshot files, and the messages in flight between them — all moved only
//! by script commands. Nothing happens on its own: a node's messages wait in
//! the network queue until `deliver`, its records stay unsynced until
//! `persist`, time stands still until `tick`.
//!
//! Every input to a node is followed by one `take_ready`, printed as a block:
//! a header line naming the input (`1: tick 10/10`, or the delivered message
//! itself), then the Ready's contents indented by two spaces:
//!
//! ```text
//!   snapshot 6@1 bytes=92 taken        the snapshot file, stored at once
//!   record #3 HardState term=2 vote=1 role=candidate
//!   record #4 Append 4..6 term=2
//!   must_sync=true                     printed whenever there are records
//!   event BecameCandidate term=2
//!   send 1->2 term=2 Vote last=5@1     queued in the network
//!   applied 1..3, 4=written            entries applied (with raw outputs)
//!   reply t1 Registered session=2
//!   held 1                             messages held for durability, when it changed
//! ```

use std::collections::BTreeMap;

use raft_core::journal::{Record, Replay};
use raft_core::kv::{KvOp, KvStore};
use raft_core::lease::LeaseTiming;
use raft_core::membership::Member;
use raft_core::{Bugs, ClientRequest, Config, Message, NodeId, Raft, Ready, Seq};

use super::text;

/// One node: its configuration, its engine (None while crashed), its disk.
struct Node {
    cfg: Config,
    raft: Option<Raft<KvStore>>,
    /// Every record the engine issued and the harness wrote, durable or not.
    journal: Vec<(Seq, Record)>,
    /// Records up to here were reported durable (`persist`); a crash keeps only these.
    durable: Seq,
    /// Snapshot files by id, written when a Ready hands one over (the host
    /// contract: stored durably before the records that name it).
    snapshots: BTreeMap<u64, Vec<u8>>,
}

impl Node {
    fn last_written(&self) -> Seq {
        self.journal.last().map_or(self.durable, |r| r.0)
    }
}

/// Which queued messages a command acts on: `[FROM]->[TO][:Kind]`.
struct Filter {
    from: Option<NodeId>,
    to: Option<NodeId>,
    kind: Option<String>,
}

impl Filter {
    fn parse(s: &str) -> Result<Filter, String> {
        let (route, kind) = match s.split_once(':') {
            Some((r, k)) => (r, Some(k.to_string())),
            None => (s, None),
        };
        let (from, to) = route.split_once("->").ok_or_else(|| format!("filter `{s}` is not [FROM]->[TO][:Kind]"))?;
        let id = |x: &str| if x.is_empty() { Ok(None) } else { text::num(x, "node").map(Some) };
        Ok(Filter { from: id(from)?, to: id(to)?, kind })
    }

    fn matches(&self, m: &Message) -> bool {
        self.from.is_none_or(|f| f == m.from)
            && self.to.is_none_or(|t| t == m.to)
            && self.kind.as_deref().is_none_or(|k| k == m.body.name())
    }
}

/// Filters (any may match; none: everything) and an optional `n=N` limit.
fn selection(args: &[String]) -> Result<(Vec<Filter>, usize), String> {
    let mut filters = Vec::new();
    let mut limit = usize::MAX;
    for a in args {
        if let Some(n) = a.strip_prefix("n=") {
            limit = text::num(n, "n")? as usize;
        } else {
            filters.push(Filter::parse(a)?);
        }
    }
    Ok((filters, limit))
}

fn selects(filters: &[Filter], m: &Message) -> bool {
    filters.is_empty() || filters.iter().any(|f| f.matches(m))
}

fn flag(v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("`{v}` is not true or false")),
    }
}

/// The environment one script runs in.
#[derive(Default)]
pub struct Env {
    nodes: BTreeMap<NodeId, Node>,
    /// Messages in flight, in the order they were sent.
    net: Vec<Message>,
    next_token: u64,
    /// Host-contract violations by the engine seen during the current
    /// command (a journal that would not replay); they fail the command.
    violations: Vec<String>,
}

impl Env {
    /// A fresh environment with no nodes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs one command line and returns what it printed (never empty, never
    /// a blank line). An `Err` means the command could not run: a mistake in
    /// the script, or the engine breaking the host contract.
    pub fn run(&mut self, line: &str) -> Result<Vec<String>, String> {
        let toks = text::tokens(line);
        let Some((cmd, args)) = toks.split_first() else { return Err("empty command".into()) };
        let mut out = Vec::new();
        match cmd.as_str() {
            "add-nodes" => self.add_nodes(args, &mut out)?,
            "tick" => self.tick(args, &mut out)?,
            "campaign" => {
                let id = self.one_up(args)?;
                self.input(id, format!("{id}: campaign"), &mut out, |r| {
                    r.force_timeout();
                    String::new()
                });
            }
            "propose" => self.propose(args, &mut out)?,
            "conf" => self.conf(args, &mut out)?,
            "transfer" => {
                let id = self.one_up(args)?;
                let target = args.get(1).map(|t| text::num(t, "target")).transpose()?;
                self.input(id, format!("{id}: transfer -> "), &mut out, |r| match r.transfer_leadership(target) {
                    Ok(t) => format!("target {t}"),
                    Err(e) => format!("refused: {e}"),
                });
            }
            "join" => self.join(args, &mut out)?,
            "membership" => {
                for id in self.targets(args)? {
                    let r = self.raft(id)?;
                    out.push(format!(
                        "{id}: {} (committed: {})",
                        text::membership(r.membership()),
                        text::membership(r.committed_membership())
                    ));
                }
            }
            "submit" => self.submit(args, &mut out)?,
            "persist" => self.persist(args, &mut out)?,
            "snapshot" => {
                let id = self.one_up(args)?;
                self.input(id, format!("{id}: snapshot"), &mut out, |r| {
                    r.take_snapshot();
                    String::new()
                });
            }
            "deliver" => {
                let (filters, limit) = selection(args)?;
                self.deliver(&filters, limit, &mut out);
            }
            "drop" => {
                let (filters, limit) = selection(args)?;
                for m in self.take_matching(&filters, limit) {
                    out.push(format!("dropped {}", text::message(&m)));
                }
            }
            "dup" => {
                // Each selected message gets a copy right behind it: the network
                // will deliver it twice.
                let (filters, mut limit) = selection(args)?;
                let mut net = Vec::new();
                for m in std::mem::take(&mut self.net) {
                    let copy = limit > 0 && selects(&filters, &m);
                    net.push(m.clone());
                    if copy {
                        limit -= 1;
                        out.push(format!("duplicated {}", text::message(&m)));
                        net.push(m);
                    }
                }
                self.net = net;
            }
            "msgs" => {
                let (filters, limit) = selection(args)?;
                for m in self.net.iter().filter(|m| selects(&filters, m)).take(limit) {
                    out.push(text::message(m));
                }
            }
            "raw-step" => {
                let rest = line.trim_start().strip_prefix("raw-step").unwrap_or_default();
                let m = text::parse_message(rest.trim())?;
                self.step(m, &mut out);
            }
            "stabilize" => self.stabilize(args, &mut out)?,
            "clock" => {
                // `clock <node|all> <t>`: the host's monotonic clock reads t.
                let ids = self.targets(args)?;
                let t: u64 = text::num(args.get(1).ok_or("clock <node> <time>")?, "time")?;
                for id in ids {
                    if let Some(r) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) {
                        r.set_clock(t);
                    }
                }
            }
            "crash" => self.crash(args, &mut out)?,
            "restart" => self.restart(args, &mut out)?,
            "status" => {
                for id in self.targets(args)? {
                    out.push(self.status(id));
                }
            }
            "log" => self.log(args, &mut out)?,
            "progress" => self.progress(args, &mut out)?,
            "kv" => {
                let id = self.one_up(args)?;
                let r = self.raft(id)?;
                out.push(format!("{id}: {} keys", r.state_machine().len()));
                for (k, v) in r.state_machine().iter() {
                    out.push(format!("  {k}={v}"));
                }
            }
            other => return Err(format!("unknown command `{other}`")),
        }
        if !self.violations.is_empty() {
            return Err(format!("engine broke the host contract: {}", std::mem::take(&mut self.violations).join("; ")));
        }
        if out.is_empty() {
            out.push("ok".into());
        }
        if out.iter().any(|l| l.trim().is_empty()) {
            return Err("the output has a blank line, which would end the case".into());
        }
        Ok(out)
    }

    // ------------------------------------------------------------------
    // Nodes
    // ------------------------------------------------------------------

    /// `add-nodes N [key=value...]`: nodes 1..=N, all voters.
    fn add_nodes(&mut self, args: &[String], out: &mut Vec<String>) -> Result<(), String> {
        let (n, opts) = args.split_first().ok_or("add-nodes needs a count")?;
        if !self.nodes.is_empty() {
            return Err("add-nodes: the cluster already exists".into());
        }
        let n = text::num(n, "count")?;
        let voters: Vec<NodeId> = (1..=n).collect();
        let mut cfgs: Vec<Config> = voters
            .iter()
            .map(|&id| {
                let mut c = Config::new(id, voters.clone());
                // Harness defaults: exact timeouts and small numbers, no
                // optional machinery unless a script asks for it.
                c.election_jitter = false;
                c.election_ticks = 10;
                c.heartbeat_ticks = 3;
                c.pre_vote = false;
                c.check_quorum = false;
                c.snapshot_entries = 0;
                c.epoch = 1;
                c.sticky_after_start = false;
                c
            })
            .collect();
        let mut extra = Vec::new();
        for o in opts {
            let (k, v) = o.split_once('=').ok_or_else(|| format!("option `{o}` is not key=value"))?;
            // A comma-separated list gives each node its own value.
            let per_node: Vec<&str> = v.split(',').collect();
            let value = |i: usize| per_node.get(i).or(per_node.last()).copied().unwrap_or(v);
            for (i, c) in cfgs.iter_mut().enumerate() {
                let v = value(i);
                match k {
                    "election" => c.election_ticks = text::num(v, k)? as u32,
                    "heartbeat" => c.heartbeat_ticks = text::num(v, k)? as u32,
                    "pre_vote" => c.pre_vote = flag(v)?,
                    "check_quorum" => c.check_quorum = flag(v)?,
                    "max_entries_per_msg" => c.max_entries_per_msg = text::num(v, k)? as usize,
                    "max_inflight_msgs" => c.max_inflight_msgs = text::num(v, k)? as usize,
                    "snapshot_entries" => c.snapshot_entries = text::num(v, k)?,
                    "snapshot_chunk_bytes" => c.snapshot_chunk_bytes = text::num(v, k)? as usize,
                    "max_held_messages" => c.max_held_messages = text::num(v, k)? as usize,
                    "max_promotion_lag" => c.max_promotion_lag = text::num(v, k)?,
                    "sticky_after_start" => c.sticky_after_start = flag(v)?,
                    "inc" => c.inc = text::num(v, k)?,
                    "follower_reads" => c.follower_reads = flag(v)?,
                    "lease_tick" => {
                        let drift = c.lease_reads.map_or(LeaseTiming::DEFAULT_DRIFT_PPM, |t| t.drift_ppm);
                        c.lease_reads = Some(LeaseTiming { tick: text::num(v, k)?, drift_ppm: drift });
                    }
                    "lease_drift_ppm" => {
                        let t = c.lease_reads.ok_or("give lease_tick= before lease_drift_ppm=")?;
                        c.lease_reads = Some(LeaseTiming { drift_ppm: text::num(v, k)? as u32, ..t });
                    }
                    "bugs" => {
                        // Here the list names bugs, for every node.
                        c.bugs = Bugs::default();
                        for b in &per_node {
                            let on = match *b {
                                "commit_old_term" => &mut c.bugs.commit_old_term,
                                "vote_without_log_check" => &mut c.bugs.vote_without_log_check,
                                "vote_before_durable" => &mut c.bugs.vote_before_durable,
                                "stale_read_local" => &mut c.bugs.stale_read_local,
                                "read_index_before_commit" => &mut c.bugs.read_index_before_commit,
                                "no_dedup" => &mut c.bugs.no_dedup,
                                "silent_compacted_append" => &mut c.bugs.silent_compacted_append,
                                "conf_change_before_term_commit" => &mut c.bugs.conf_change_before_term_commit,
                                "conf_at_commit" => &mut c.bugs.conf_at_commit,
                                "ignore_incarnation" => &mut c.bugs.ignore_incarnation,
                                "ignore_lost_data" => &mut c.bugs.ignore_lost_data,
                                "lease_without_margin" => &mut c.bugs.lease_without_margin,
                                "follower_read_joins_inflight" => &mut c.bugs.follower_read_joins_inflight,
                                other => return Err(format!("unknown bug `{other}`")),
                            };
                            *on = true;
                        }
                    }
                    _ => return Err(format!("unknown option `{k}`")),
                }
            }
            if !matches!(k, "election" | "heartbeat" | "pre_vote" | "check_quorum") {
                extra.push(o.clone());
            }
        }
        // Incarnations given with `inc=` are bound at bootstrap: every node
        // is given the same bound configuration.
        let bound: Vec<Member> = cfgs.iter().map(|c| Member { id: c.id, inc: c.inc }).collect();
        for c in &mut cfgs {
            c.voters = bound.clone();
        }
        for cfg in cfgs {
            let id = cfg.id;
            let raft = Raft::new(cfg.clone(), KvStore::default()).map_err(|e| format!("node {id}: {e}"))?;
            out.push(format!(
                "{id}: election={} heartbeat={} pre_vote={} check_quorum={}{}",
                cfg.election_ticks,
                cfg.heartbeat_ticks,
                cfg.pre_vote,
                cfg.check_quorum,
                extra.iter().map(|e| format!(" {e}")).collect::<String>()
            ));
            let node = Node { cfg, raft: Some(raft), journal: Vec::new(), durable: 0, snapshots: BTreeMap::new() };
            self.nodes.insert(id, node);
        }
        Ok(())
    }

    /// `join <id>`: a new node, not among the bootstrap voters (it is given
    /// the same bootstrap list as the others and learns every change from
    /// the leader's log), with the harness defaults of an existing node.
    fn join(&mut self, args: &[String], out: &mut Vec<String>) -> Result<(), String> {
        let id = text::num(args.first().ok_or("join which node?")?, "node")?;
        if self.nodes.contains_key(&id) {
            return Err(format!("join: node {id} exists"));
        }
        let template = self.nodes.values().next().map(|n| n.cfg.clone()).ok_or("join: add-nodes first")?;
        let mut cfg = template;
        cfg.id = id;
        cfg.seed = id;
        let raft = Raft::new(cfg.clone(), KvStore::default()).map_err(|e| format!("node {id}: {e}"))?;
        out.push(format!("{id}: joined, not a member yet"));
        self.nodes
            .insert(id, Node { cfg, raft: Some(raft), journal: Vec::new(), durable: 0, snapshots: BTreeMap::new() });
        Ok(())
    }

    /// `conf <node> <change> [force]`: a membership change, written as
    /// `+vN` (voter), `+lN` (learner), `-N` (remove), comma-separated, with
    /// `joint` first for a joint change, or `leave`.
    fn conf(&mut self, args: &[String], out: &mut Vec<String>) -> Result<(), String> {
        let id = self.one_up(args)?;
        let spec = args.get(1).ok_or("conf: which change?")?;
        let cc = text::parse_conf_change(spec)?;
        let force = args.get(2).is_some_and(|a| a == "force");
        let header = format!("{id}: conf {} -> ", text::conf_change(&cc));
        self.input(id, header, out, |r| match r.propose_conf_change(cc, force) {
            Ok((index, term)) => text::pos(index, term),
            Err(e) => format!("refused: {e}"),
        });
        Ok(())
    }

    fn node(&self, id: NodeId) -> Result<&Node, String> {
        self.nodes.get(&id).ok_or_else(|| format!("no node {id}"))
    }

    fn raft(&self, id: NodeId) -> Result<&Raft<KvStore>, String> {
        self.node(id)?.raft.as_ref().ok_or_else(|| format!("node {id} is down"))
    }

    /// The one node named by `args[0]`, which must be up.
    fn one_up(&self, args: &[String]) -> Result<NodeId, String> {
        let a = args.first().ok_or("which node?")?;
        let id = text::num(a, "node")?;
        self.raft(id)?;
        Ok(id)
    }

    /// `all` or a comma-separated list of node ids (default: all).
    fn targets(&self, args: &[String]) -> Result<Vec<NodeId>, String> {
        match args.first().map(String::as_str) {
            None | Some("all") => Ok(self.nodes.keys().copied().collect()),
            Some(list) => list
                .split(',')
                .map(|x| {
                    let id = text::num(x, "node")?;
                    self.node(id)?;
                    Ok(id)
                })
                .collect(),
        }
    }

    // ------------------------------------------------------------------
    // Inputs and their Ready
    // ------------------------------------------------------------------

    /// Feeds node `id` one input, then takes and prints its Ready under
    /// `header`, to which the input's own result (what `f` returns) is added.
    /// Returns whether the Ready had anything in it.
    fn input(
        &mut self,
        id: NodeId,
        header: String,
        out: &mut Vec<String>,
        f: impl FnOnce(&mut Raft<KvStore>) -> String,
    ) -> bool {
        let Some(node) = self.nodes.get_mut(&id) else { return false };
        let Some(raft) = node.raft.as_mut() else {
            out.push(header);
            out.push(format!("  {id} is down: lost"));
            return false;
        };
        let held_before = raft.held_messages();
        let result = f(raft);
        let ready = raft.take_ready();
        let held_after = raft.held_messages();
        let leftover = raft.has_ready();
        let mut lines = self.handle_ready(id, ready);
        if held_after != held_before {
            lines.push(format!("held {held_after}"));
        }
        if leftover {
            // One take_ready per input is the contract; more would be a surprise.
            lines.push("(has_ready still true after take_ready)".into());
        }
        let any = !lines.is_empty();
        out.push(format!("{header}{result}"));
        out.extend(lines.into_iter().map(|l| format!("  {l}")));
        any
    }

    /// Carries out a Ready as a host would: stores the snapshot, writes the
    /// records (unsynced), queues the messages. Returns its printed form.
    fn handle_ready(&mut self, id: NodeId, ready: Ready) -> Vec<String> {
        let mut lines = Vec::new();
        let Some(node) = self.nodes.get_mut(&id) else { return lines };
        let Ready { records, messages, applied, replies, snapshot, snapshot_job, events, must_sync } = ready;
        if let Some(job) = snapshot_job {
            // The scripts run with snapshots built in the step
            // (`async_snapshots` off): a job here is a change of contract.
            let at = text::pos(job.meta.index, job.meta.term);
            self.violations.push(format!("node {id}: handed a snapshot to build at {at} with async_snapshots off"));
        }
        if let Some(s) = snapshot {
            let meta = &s.snapshot.meta;
            let how = if s.installed { "installed" } else { "taken" };
            lines.push(format!("snapshot {} bytes={} {how}", text::pos(meta.index, meta.term), s.snapshot.data.len()));
            node.snapshots.insert(meta.id, s.snapshot.data.clone());
        }
        let mut last = node.last_written();
        for (seq, rec) in &records {
            // The journal must stay contiguous or replay refuses it.
            if *seq != last + 1 {
                self.violations.push(format!("node {id}: the engine issued record #{seq} after #{last}"));
            }
            last = *seq;
            lines.push(format!("record #{seq} {}", text::record(rec)));
        }
        if !records.is_empty() {
            lines.push(format!("must_sync={must_sync}"));
        }
        node.journal.extend(records);
        lines.extend(events.iter().map(|e| format!("event {}", text::event(e))));
        for m in messages {
            lines.push(format!("send {}", text::message(&m)));
            self.net.push(m);
        }
        if !applied.is_empty() {
            // Ranges of entries with nothing to say, and raw commands' outputs.
            let mut parts: Vec<String> = Vec::new();
            let mut run: Option<(u64, u64)> = None;
            let flush = |run: &mut Option<(u64, u64)>, parts: &mut Vec<String>| {
                if let Some((a, b)) = run.take() {
                    parts.push(if a == b { a.to_string() } else { format!("{a}..{b}") });
                }
            };
            for a in &applied {
                if a.output.is_empty() {
                    run = match run {
                        Some((lo, hi)) if hi + 1 == a.index => Some((lo, a.index)),
                        other => {
                            let mut r = other;
                            flush(&mut r, &mut parts);
                            Some((a.index, a.index))
                        }
                    };
                } else {
                    flush(&mut run, &mut parts);
                    parts.push(format!("{}={}", a.index, text::kv_output(&a.output)));
                }
            }
            flush(&mut run, &mut parts);
            lines.push(format!("applied {}", parts.join(", ")));
        }
        for (token, reply) in &replies {
            lines.push(format!("reply t{token} {}", text::client_reply(reply)));
        }
        lines
    }

    /// `tick <nodes|all> [n]`: n ticks (default 1), each node in id order per tick.
    fn tick(&mut self, args: &[String], out: &mut Vec<String>) -> Result<(), String> {
        let ids = self.targets(args)?;
        let n = args.get(1).map_or(Ok(1), |n| text::num(n, "ticks"))?;
        for i in 1..=n {
            for &id in &ids {
                if self.node(id)?.raft.is_none() {
                    continue;
                }
                let header = if n == 1 { format!("{id}: tick") } else { format!("{id}: tick {i}/{n}") };
                let mut block = Vec::new();
                // Ticks that produce nothing are not printed.
                let tick = |r: &mut Raft<KvStore>| {
                    r.tick();
                    String::new()
                };
                if self.input(id, header, &mut block, tick) {
                    out.extend(block);
                }
            }
        }
        Ok(())
    }

    /// `propose <node> put k v | append k v | delete k`.
    fn propose(&mut self, args: &[String], out: &mut Vec<String>) -> Result<(), String> {
        let id = self.one_up(args)?;
        let op = kv_command(&args[1..])?;
        let header = format!("{id}: propose {} -> ", text::kv_op(&op));
        self.input(id, header, out, |r| match r.propose(op) {
            Ok((index, term)) => text::pos(index, term),
            Err(e) => text::propose_error(&e),
        });
        Ok(())
    }

    /// `submit <node> register | write s=S seq=N ack=A <op> | read <key> | keepalive s=S ack=A`.
    fn submit(&mut self, args: &[String], out: &mut Vec<String>) -> Result<(), String> {
        let id = self.one_up(args)?;
        let what = args.get(1).ok_or("submit: register, write, read or keepalive?")?;
        let named = |k: &str| -> Result<u64, String> {
            let a = args.iter().find_map(|a| a.strip_prefix(&format!("{k}="))).ok_or(format!("submit needs {k}="))?;
            text::num(a, k)
        };
        let request = match what.as_str() {
            "register" => ClientRequest::Register { owner: 0, secret_hash: [0; 32] },
            "write" => {
                let op: Vec<String> = args[2..].iter().filter(|a| !a.contains('=')).cloned().collect();
                ClientRequest::Write {
                    secret_hash: [0; 32],
                    session: named("s")?,
                    seq: named("seq")?,
                    ack: named("ack")?,
                    command: kv_command(&op)?.into(),
                }
            }
            "read" => {
                let key = args.get(2).ok_or("submit read needs a key")?;
                ClientRequest::Read { query: KvOp::Get { key: key.clone() }.encode() }
            }
            "keepalive" => ClientRequest::KeepAlive { session: named("s")?, secret_hash: [0; 32], ack: named("ack")? },
            other => return Err(format!("submit: unknown request `{other}`")),
        };
        self.next_token += 1;
        let token = self.next_token;
        let shown = match &request {
            ClientRequest::Register { .. } => "register".to_string(),
            ClientRequest::Write { session, seq, ack, command, .. } => {
                format!("write(s={session},seq={seq},ack={ack},{})", text::kv_op(command))
            }
            ClientRequest::Read { query } => format!("read {}", text::kv_op(query)),
            ClientRequest::KeepAlive { session, ack, .. } => format!("keepalive(s={session},ack={ack})"),
        };
        self.input(id, format!("{id}: submit t{token} {shown}"), out, |r| {
            r.submit(token, request);
            String::new()
        });
        Ok(())
    }

    /// `persist <nodes|all> [seq]`: report records durable, up to `seq` or
    /// everything written.
    fn persist(&mut self, args: &[String], out: &mut Vec<String>) -> Result<(), String> {
        let ids = self.targets(args)?;
        let upto = args.get(1).map(|s| text::num(s, "seq")).transpose()?;
        for id in ids {
            let node = self.node(id)?;
            if node.raft.is_none() {
                continue;
            }
            let last = node.last_written();
            let seq = upto.unwrap_or(last);
            if seq > last {
                return Err(format!("persist {id} {seq}: only #{last} was written"));
            }
            if seq <= node.durable {
                if ids_named_one(args) {
                    out.push(format!("{id}: nothing to persist"));
                }
                continue;
            }
            let from = node.durable + 1;
            if let Some(n) = self.nodes.get_mut(&id) {
                n.durable = seq;
            }
            let range = if from == seq { format!("#{seq}") } else { format!("#{from}..#{seq}") };
            self.input(id, format!("{id}: persisted {range}"), out, |r| {
                r.persisted(seq);
                String::new()
            });
        }
        Ok(())
    }

    /// Delivers one message to its recipient and prints the recipient's Ready.
    fn step(&mut self, m: Message, out: &mut Vec<String>) {
        let header = text::message(&m);
        let to = m.to;
        if !self.nodes.contains_key(&to) {
            out.push(header);
            out.push(format!("  no node {to}: lost"));
            return;
        }
        self.input(to, header, out, |r| match r.step(m) {
            Ok(()) => String::new(),
            Err(e) => format!(" -> error {e:?}"),
        });
    }

    fn take_matching(&mut self, filters: &[Filter], mut limit: usize) -> Vec<Message> {
        let mut taken = Vec::new();
        self.net.retain(|m| {
            if limit > 0 && selects(filters, m) {
                limit -= 1;
                taken.push(m.clone());
                false
            } else {
                true
            }
        });
        taken
    }

    /// Delivers the selected queued messages, in the order they were sent.
    /// What the recipients send in answer is queued, not delivered.
    fn deliver(&mut self, filters: &[Filter], limit: usize, out: &mut Vec<String>) {
        for m in self.take_matching(filters, limit) {
            self.step(m, out);
        }
    }

    /// `stabilize [nodes] [quiet]`: persist everything and deliver every
    /// message among `nodes` (default: all up nodes) until nothing moves.
    /// Messages to or from other nodes stay queued. `quiet` prints only the
    /// final status of the nodes involved (for setting a scene).
    fn stabilize(&mut self, args: &[String], out: &mut Vec<String>) -> Result<(), String> {
        let quiet = args.iter().any(|a| a == "quiet");
        let rest: Vec<String> = args.iter().filter(|a| *a != "quiet").cloned().collect();
        let ids = self.targets(&rest)?;
        let mut log = Vec::new();
        for round in 0.. {
            if round == 100 {
                return Err("stabilize: still busy after 100 rounds".into());
            }
            let mut moved = false;
            for &id in &ids {
                let node = self.node(id)?;
                if node.raft.is_some() && node.last_written() > node.durable {
                    self.persist(&[id.to_string()], &mut log)?;
                    moved = true;
                }
            }
            let filters: Vec<Filter> = ids
                .iter()
                .flat_map(|&a| ids.iter().map(move |&b| Filter { from: Some(a), to: Some(b), kind: None }))
                .collect();
            let batch = self.take_matching(&filters, usize::MAX);
            moved |= !batch.is_empty();
            for m in batch {
                self.step(m, &mut log);
            }
            if !moved {
                break;
            }
        }
        if quiet {
            out.extend(ids.iter().map(|&id| self.status(id)));
        } else {
            out.extend(log);
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // Crashes
    // ------------------------------------------------------------------

    /// `crash <node>`: the engine is gone; records not reported durable are lost.
    fn crash(&mut self, args: &[String], out: &mut Vec<String>) -> Result<(), String> {
        let id = self.one_up(args)?;
        let node = self.nodes.get_mut(&id).ok_or("no such node")?;
        node.raft = None;
        let durable = node.durable;
        let lost: Vec<(Seq, Record)> = node.journal.iter().filter(|r| r.0 > durable).cloned().collect();
        node.journal.retain(|r| r.0 <= durable);
        out.push(format!("{id}: crashed"));
        for (seq, rec) in lost {
            out.push(format!("  lost #{seq} {}", text::record(&rec)));
        }
        Ok(())
    }

    /// `restart <node>`: replays the durable journal (`journal::Replay`) and
    /// restarts with `Raft::recover` from it and the snapshot file it names.
    fn restart(&mut self, args: &[String], out: &mut Vec<String>) -> Result<(), String> {
        let a = args.first().ok_or("which node?")?;
        let id = text::num(a, "node")?;
        let node = self.nodes.get_mut(&id).ok_or_else(|| format!("no node {id}"))?;
        if node.raft.is_some() {
            return Err(format!("restart {id}: it is up"));
        }
        // `lose=N`: the last N durable records are gone too (a damaged disk,
        // a journal tail cut at recovery): more than a crash may take.
        // With `found`, recovery noticed (a batch marker survived the
        // damage): the newest HardState survives in the marker and the node
        // is flagged `lost_data`.
        let mut found = None;
        if let Some(n) = args.iter().find_map(|a| a.strip_prefix("lose=")) {
            let n = text::num(n, "lose")? as usize;
            let newest_hard = node.journal.iter().rev().find_map(|(_, r)| match r {
                Record::HardState(h) => Some(*h),
                _ => None,
            });
            let keep = node.journal.len().saturating_sub(n);
            node.journal.truncate(keep);
            node.durable = node.journal.last().map_or(0, |r| r.0);
            if args.iter().any(|a| a == "found") {
                found = Some(newest_hard);
            }
        }
        // `wipe inc=K`: the data directory is replaced by an empty one with
        // incarnation K.
        if args.iter().any(|a| a == "wipe") {
            node.journal.clear();
            node.snapshots.clear();
            node.durable = 0;
            if let Some(k) = args.iter().find_map(|a| a.strip_prefix("inc=")) {
                node.cfg.inc = text::num(k, "inc")?;
            }
        }
        node.cfg.epoch += 1;
        let mut replay = Replay::new();
        for (seq, rec) in &node.journal {
            // A journal the harness wrote itself must replay: failing is an engine bug.
            if let Err(e) = replay.apply(*seq, rec) {
                out.push(format!("{id}: journal does not replay: {e}"));
                return Ok(());
            }
        }
        if let Some(hard) = found {
            replay.note_loss(hard);
        }
        let state = replay.finish();
        let snap = state.snapshot.as_ref().and_then(|m| node.snapshots.get(&m.id)).cloned();
        let from = match &state.snapshot {
            Some(m) => format!(" and snapshot {}", text::pos(m.index, m.term)),
            None => String::new(),
        };
        let last_seq = state.last_seq;
        match Raft::recover(node.cfg.clone(), state, snap.as_deref(), KvStore::default()) {
            Ok(r) => node.raft = Some(r),
            Err(e) => {
                out.push(format!("{id}: cannot recover: {e}"));
                return Ok(());
            }
        }
        out.push(format!("{id}: restarted from #1..#{last_seq}{from}"));
        out.push(format!("  {}", self.status(id)));
        Ok(())
    }

    // ------------------------------------------------------------------
    // Observation
    // ------------------------------------------------------------------

    fn status(&self, id: NodeId) -> String {
        let Some(r) = self.nodes.get(&id).and_then(|n| n.raft.as_ref()) else { return format!("{id}: down") };
        let (elapsed, timeout) = r.election_timer();
        format!(
            "{id}: term={} role={} leader={} vote={} commit={} applied={} last={} durable={} snap={} held={} timer={elapsed}/{timeout}",
            r.term(),
            r.role().name(),
            text::opt_id(r.leader()),
            text::opt_id(r.voted_for()),
            r.commit_index(),
            r.applied_index(),
            r.log().last_index(),
            r.durable_index(),
            text::pos(r.log().snapshot_index(), r.log().snapshot_term()),
            r.held_messages(),
        ) + if r.lost_data() { " lost_data" } else { "" }
            + &r.lease_until().map_or(String::new(), |u| format!(" lease_until={u}"))
    }

    /// `log <node>`: the snapshot point and every entry held.
    fn log(&mut self, args: &[String], out: &mut Vec<String>) -> Result<(), String> {
        let id = self.one_up(args)?;
        let r = self.raft(id)?;
        let log = r.log();
        out.push(format!(
            "{id}: snap={} commit={} applied={} durable={}",
            text::pos(log.snapshot_index(), log.snapshot_term()),
            r.commit_index(),
            r.applied_index(),
            r.durable_index()
        ));
        for e in log.iter() {
            out.push(format!("  {}", text::entry(e)));
        }
        Ok(())
    }

    /// `progress <node>`: a leader's view of each follower.
    fn progress(&mut self, args: &[String], out: &mut Vec<String>) -> Result<(), String> {
        let id = self.one_up(args)?;
        let r = self.raft(id)?;
        if !r.is_leader() {
            out.push(format!("{id}: not leader"));
        }
        for p in r.progress() {
            out.push(format!(
                "{id}->{}: {:?} match={} next={} probe_sent={} active={} acked_round={} inflight={}",
                p.id,
                p.state,
                p.match_index,
                p.next_index,
                p.probe_sent,
                p.recent_active,
                p.acked_round,
                p.inflight_count()
            ));
        }
        Ok(())
    }
}

/// Whether `persist` was asked about exactly one node (then "nothing to
/// persist" is worth saying).
fn ids_named_one(args: &[String]) -> bool {
    args.first().is_some_and(|a| a != "all" && !a.contains(','))
}

/// The key-value commands `propose` and `submit write` take.
const KV_COMMANDS: &str = "put K V, append K V, delete K, lease_grant TTL_MS, lease_keep_alive ID or put_lease K V ID";

/// One of [`KV_COMMANDS`] as a key-value command's bytes.
fn kv_command(args: &[String]) -> Result<Vec<u8>, String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let op = match a.as_slice() {
        ["put", k, v] => KvOp::Put { key: k.to_string(), value: v.to_string() },
        ["append", k, v] => KvOp::Append { key: k.to_string(), value: v.to_string() },
        ["delete", k] => KvOp::Delete { key: k.to_string() },
        ["lease_grant", ttl] => KvOp::LeaseGrant { ttl: text::num(ttl, "ttl")? },
        ["lease_keep_alive", id] => KvOp::LeaseKeepAlive { id: text::num(id, "lease")? },
        ["put_lease", k, v, l] => {
            KvOp::PutLease { key: k.to_string(), value: v.to_string(), lease: text::num(l, "lease")? }
        }
        _ => return Err(format!("`{}` is not {KV_COMMANDS}", a.join(" "))),
    };
    Ok(op.encode())
}
