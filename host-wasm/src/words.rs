//! Plain words for what the simulator shows: log entries, journal records,
//! client results and the core's events.

use raft_core::client::{ClientError, ClientReply};
use raft_core::journal::Record;
use raft_core::kv::{KvOp, KvOutput};
use raft_core::{Entry, NodeId, Payload};

/// Quotes a string for display, shortened if long.
pub fn q(s: &str) -> String {
    const MAX: usize = 24;
    if s.chars().count() > MAX {
        let head: String = s.chars().take(MAX).collect();
        format!("\"{head}…\"")
    } else {
        format!("\"{s}\"")
    }
}

fn opt(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "absent".to_string(), q)
}

/// A key-value operation in a few words.
pub fn kv_op(op: &KvOp) -> String {
    match op {
        KvOp::Put { key, value } => format!("{key}={}", q(value)),
        KvOp::Append { key, value } => format!("{key}+={}", q(value)),
        KvOp::Get { key } => format!("get {key}"),
        KvOp::Delete { key } => format!("del {key}"),
        KvOp::Cas { key, expect, value } => format!("cas {key}: {}→{}", opt(expect), q(value)),
        other => raft_core::checker::show_op(other),
    }
}

/// A state machine output in a few words.
pub fn kv_output(out: &KvOutput) -> String {
    match out {
        KvOutput::Written { .. } => "ok".into(),
        KvOutput::Value { kv, .. } => opt(&kv.as_ref().map(|kv| kv.value.clone())),
        KvOutput::Deleted { existed: true, .. } => "deleted".into(),
        KvOutput::Deleted { existed: false, .. } => "was absent".into(),
        KvOutput::Cas { swapped: true, .. } => "swapped".into(),
        KvOutput::Cas { swapped: false, current, .. } => format!("not swapped (value {})", opt(current)),
        KvOutput::Invalid => "invalid command".into(),
        other => raft_core::checker::show_output(other),
    }
}

/// (kind, short text) of a log entry.
pub fn entry(e: &Entry) -> (&'static str, String) {
    match &e.payload {
        Payload::Noop => ("noop", "no-op".into()),
        Payload::Register { .. } => ("register", "open session".into()),
        Payload::KeepAlive { session, .. } => ("keepalive", format!("keep-alive s{session}")),
        Payload::ConfChange(_) => ("conf", "config change".into()),
        Payload::Command(c) => match KvOp::decode(c) {
            Ok(op) => ("command", kv_op(&op)),
            Err(_) => ("command", format!("raw command ({} bytes)", c.len())),
        },
        Payload::Write { session, seq, command, .. } => match KvOp::decode(command) {
            Ok(op) => ("write", format!("{} (s{session}#{seq})", kv_op(&op))),
            Err(_) => ("write", format!("bad write (s{session}#{seq})")),
        },
    }
}

/// (kind, text) of a journal record.
pub fn record(r: &Record) -> (&'static str, String) {
    match r {
        Record::Checkpoint { last_seq } => {
            ("checkpoint", format!("a new segment restates everything up to record {last_seq}"))
        }
        Record::BatchEnd { last_seq, .. } => (
            "checkpoint",
            format!("a write ends whole after record {last_seq} (a marker: later damage is loss, not a torn write)"),
        ),
        Record::HardState(h) => (
            "hard_state",
            format!(
                "term {}, voted for {}, {}",
                h.term,
                h.voted_for.map_or_else(|| "nobody".to_string(), |v| v.to_string()),
                h.role.name()
            ),
        ),
        Record::Append { first_index, entries } => {
            let last = first_index + entries.len() as u64 - 1;
            let terms: Vec<String> = {
                let mut t: Vec<u64> = entries.iter().map(|e| e.term).collect();
                t.dedup();
                t.iter().map(|t| t.to_string()).collect()
            };
            let what = if entries.len() == 1 {
                format!("entry {first_index}: {}", entry(&entries[0]).1)
            } else {
                format!("entries {first_index}–{last}")
            };
            ("append", format!("{what} (term {})", terms.join(",")))
        }
        Record::Truncate { from_index } => ("truncate", format!("drop entries from {from_index} on")),
        Record::Snapshot(m) => ("snapshot", format!("snapshot up to {} (term {})", m.index, m.term)),
    }
}

/// A client reply in a few words, and whether it is a success.
pub fn reply(r: &ClientReply) -> (bool, String) {
    match r {
        ClientReply::Registered { session } => (true, format!("session {session} opened")),
        ClientReply::Written { output } | ClientReply::Read { output } => match KvOutput::decode(output) {
            Ok(o) => (true, kv_output(&o)),
            Err(_) => (false, "undecodable output".into()),
        },
        ClientReply::KeptAlive => (true, "kept alive".into()),
        ClientReply::Rejected(e) => (false, error(e)),
    }
}

fn hint(h: &Option<NodeId>) -> String {
    h.map_or_else(|| "leader unknown".to_string(), |l| format!("try node {l}"))
}

/// A client error in a few words.
pub fn error(e: &ClientError) -> String {
    match e {
        ClientError::NotLeader { leader_hint } => format!("not_leader ({})", hint(leader_hint)),
        ClientError::UnknownOutcome { leader_hint } => {
            format!("unknown_outcome: the leader stepped down; retry with the same seq ({})", hint(leader_hint))
        }
        ClientError::BadRequest(m) => format!("bad_request: {m}"),
        other => other.code().to_string(),
    }
}

/// A list of ids as "1, 3 and 5".
pub fn ids(v: &[NodeId]) -> String {
    match v {
        [] => "nobody".into(),
        [a] => a.to_string(),
        _ => {
            let head: Vec<String> = v[..v.len() - 1].iter().map(|x| x.to_string()).collect();
            format!("{} and {}", head.join(", "), v[v.len() - 1])
        }
    }
}

/// Microseconds as "1.234 s" or "35 ms".
pub fn dur(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.3} s", us as f64 / 1e6)
    } else {
        format!("{} ms", us / 1000)
    }
}
