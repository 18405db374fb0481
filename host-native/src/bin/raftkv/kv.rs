//! The key-value commands — `raftkv put`, `append`, `get` (one key or a
//! prefix), `range`, `count`, `delete`, `cas`, `txn`, `lease` and `watch` — as
//! raft-core's operations: each command line becomes one or more [`KvOp`]s,
//! the client library runs them, and the [`KvOutput`]s decide what is
//! printed and the exit code.

use std::io::Read as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use raft_core::kv::watch::{Event, EventKind};
use raft_core::kv::{prefix_end, KeyValue, TxnResult, MAX_PAGE_KEYS};
use raftkv::protocol::{event_to_json, kv_to_json, txn_from_json};
use raftkv::{KvOp, KvOutput, WatchOptions, WatchResponse};

use super::client_args::ClientArgs;

/// The command line of one key-value operation.
#[derive(Subcommand, Debug)]
pub enum KvCommand {
    /// Set a key (with --lease ID, attached to a lease: it goes when the lease ends).
    Put {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
        /// Attach the key to this lease.
        #[arg(long)]
        lease: Option<u64>,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Append to a key's value (creating it).
    Append {
        /// The key.
        key: String,
        /// What to append.
        value: String,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Read a key (linearizable): prints the value, exits 1 if the key is
    /// absent. With --prefix, every key starting with KEY, one `key=value`
    /// line each, page by page (each page linearizable; together not one
    /// snapshot).
    Get {
        /// The key (with --prefix: the prefix).
        key: String,
        /// Read every key that starts with KEY.
        #[arg(long)]
        prefix: bool,
        /// With --prefix: at most this many keys.
        #[arg(long, requires = "prefix")]
        limit: Option<u64>,
        /// One JSON object per key (with revisions), or the key's object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Read the keys in [FROM, TO), in order, one `key=value` line each.
    Range {
        /// First key (inclusive).
        from: String,
        /// End (exclusive; omitted: to the end).
        to: Option<String>,
        /// At most this many keys.
        #[arg(long)]
        limit: Option<u64>,
        /// One JSON object per key (with revisions).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Count the keys in [FROM, TO) (or starting with --prefix).
    Count {
        /// First key (inclusive; default: the first key).
        from: Option<String>,
        /// End (exclusive; omitted: to the end).
        to: Option<String>,
        /// Count the keys that start with this instead.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        prefix: Option<String>,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Remove a key. Prints whether it existed.
    Delete {
        /// The key.
        key: String,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Compare-and-swap: set KEY to VALUE if its value is --expect OLD (or, with --absent, if it has none).
    #[command(group(clap::ArgGroup::new("condition").required(true).args(["expect", "absent"])))]
    Cas {
        /// The key.
        key: String,
        /// Its new value, if the condition holds.
        value: String,
        /// The value required for the swap.
        #[arg(long)]
        expect: Option<String>,
        /// Swap only if the key is absent.
        #[arg(long)]
        absent: bool,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Run a transaction read from standard input as JSON:
    /// {"compare":[{"key":"k","version":0}],"success":[{"op":"put","key":"k","value":"v"}],"failure":[{"op":"get","key":"k"}]}.
    /// Prints SUCCEEDED or FAILED, then one line per operation; exits 1 if the comparisons did not hold.
    Txn {
        /// Print the outcome as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Leases: keys attached to one are deleted when it ends.
    Lease {
        #[command(subcommand)]
        cmd: LeaseCommand,
    },
    /// Watch a key (with --prefix, every key starting with KEY): prints each change as the node applies it,
    /// `[REVISION] PUT key=value` or `[REVISION] DELETE key`, until interrupted. Resumes by itself after a
    /// reconnection (to any node) without losing or repeating a change; exits 2 if the changes it needs are
    /// compacted.
    Watch {
        /// The key (with --prefix: the prefix).
        key: String,
        /// Watch every key that starts with KEY.
        #[arg(long)]
        prefix: bool,
        /// Start at this revision (default: the changes after now); earlier ones are replayed.
        #[arg(long)]
        rev: Option<u64>,
        /// Show each key's value before the change.
        #[arg(long)]
        prev_kv: bool,
        /// One JSON object per event: {"revision":R,"type":"put","kv":{...}}.
        #[arg(long)]
        json: bool,
        /// Stop after this many events.
        #[arg(long)]
        max_events: Option<u64>,
        #[command(flatten)]
        c: ClientArgs,
    },
}

/// `raftkv lease ...`.
#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
    /// Grant a lease of TTL seconds (cluster time); prints its id.
    Grant {
        /// Time to live in seconds (fractions allowed).
        ttl: f64,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Restart a lease's TTL.
    Keepalive {
        /// The lease.
        id: u64,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// End a lease now, deleting its keys.
    Revoke {
        /// The lease.
        id: u64,
        #[command(flatten)]
        c: ClientArgs,
    },
}

/// What one command does.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// One operation; its output is printed.
    One(KvOp),
    /// Page through `[from, to)` (at most `limit` keys).
    Scan { from: String, to: Option<String>, limit: Option<u64>, json: bool },
    /// One get, printed as JSON.
    GetJson(String),
    /// A transaction from standard input.
    Txn { json: bool },
    /// A watch, printed as it comes.
    Watch { key: String, opts: WatchOptions, json: bool, max_events: Option<u64> },
}

impl KvCommand {
    /// What to do, and where.
    fn plan(self) -> Result<(Plan, ClientArgs), String> {
        Ok(match self {
            KvCommand::Put { key, value, lease: Some(lease), c } if lease != 0 => {
                (Plan::One(KvOp::PutLease { key, value, lease }), c)
            }
            KvCommand::Put { key, value, c, .. } => (Plan::One(KvOp::Put { key, value }), c),
            KvCommand::Append { key, value, c } => (Plan::One(KvOp::Append { key, value }), c),
            KvCommand::Get { key, prefix: true, limit, json, c } => {
                (Plan::Scan { to: prefix_end(&key), from: key, limit, json }, c)
            }
            KvCommand::Get { key, json: true, c, .. } => (Plan::GetJson(key), c),
            KvCommand::Get { key, c, .. } => (Plan::One(KvOp::Get { key }), c),
            KvCommand::Range { from, to, limit, json, c } => (Plan::Scan { from, to, limit, json }, c),
            KvCommand::Count { prefix: Some(p), c, .. } => (Plan::One(KvOp::Count { to: prefix_end(&p), from: p }), c),
            KvCommand::Count { from, to, c, .. } => (Plan::One(KvOp::Count { from: from.unwrap_or_default(), to }), c),
            KvCommand::Delete { key, c } => (Plan::One(KvOp::Delete { key }), c),
            // clap requires one of --expect and --absent.
            KvCommand::Cas { key, value, expect, absent, c } => {
                (Plan::One(KvOp::Cas { key, expect: if absent { None } else { expect }, value }), c)
            }
            KvCommand::Txn { json, c } => (Plan::Txn { json }, c),
            KvCommand::Lease { cmd: LeaseCommand::Grant { ttl, c } } => {
                if !(ttl > 0.0 && ttl <= 1e7) {
                    return Err("the TTL must be a positive number of seconds".into());
                }
                (Plan::One(KvOp::LeaseGrant { ttl: Duration::from_secs_f64(ttl).as_millis() as u64 }), c)
            }
            KvCommand::Lease { cmd: LeaseCommand::Keepalive { id, c } } => (Plan::One(KvOp::LeaseKeepAlive { id }), c),
            KvCommand::Lease { cmd: LeaseCommand::Revoke { id, c } } => (Plan::One(KvOp::LeaseRevoke { id }), c),
            KvCommand::Watch { key, prefix, rev, prev_kv, json, max_events, c } => {
                let opts = WatchOptions { prefix, start_rev: rev, prev_kv, ..WatchOptions::default() };
                (Plan::Watch { key, opts, json, max_events }, c)
            }
        })
    }
}

/// Runs the command against the cluster and prints the answer.
pub async fn run(cmd: KvCommand) -> Result<ExitCode, String> {
    let (plan, c) = cmd.plan()?;
    let client = c.client()?;
    let a = match plan {
        Plan::One(op) => answer(&client.execute(op).await.map_err(|e| e.to_string())?),
        Plan::GetJson(key) => {
            let kv = client.get_kv(&key).await.map_err(|e| e.to_string())?;
            let code = u8::from(kv.is_none());
            Answer { text: kv.as_ref().map_or(serde_json::Value::Null, kv_to_json).to_string(), to_stderr: false, code }
        }
        Plan::Scan { from, to, limit, json } => {
            let mut left = limit.unwrap_or(u64::MAX);
            let mut from = from;
            loop {
                let page =
                    client.range(&from, to.as_deref(), left.min(MAX_PAGE_KEYS)).await.map_err(|e| e.to_string())?;
                for kv in &page.kvs {
                    println!("{}", kv_line(kv, json));
                }
                left = left.saturating_sub(page.kvs.len() as u64);
                match page.next {
                    Some(n) if left > 0 => from = n,
                    _ => break,
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        Plan::Watch { key, opts, json, max_events } => return watch(&client, &key, opts, json, max_events).await,
        Plan::Txn { json } => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read standard input: {e}"))?;
            let txn = txn_from_json(&text)?;
            let out = client.execute(KvOp::Txn(txn)).await.map_err(|e| e.to_string())?;
            if json {
                let mut obj = serde_json::Map::new();
                obj.insert("output".into(), serde_json::to_value(&out).unwrap_or_default());
                println!("{}", serde_json::Value::Object(obj));
                return Ok(ExitCode::from(u8::from(!matches!(out, KvOutput::Txn { succeeded: true, .. }))));
            }
            answer(&out)
        }
    };
    if a.to_stderr {
        eprintln!("{}", a.text);
    } else {
        println!("{}", a.text);
    }
    Ok(ExitCode::from(a.code))
}

/// `raftkv watch`: prints events until interrupted (or `max_events`).
async fn watch(
    client: &raftkv::Client,
    key: &str,
    opts: WatchOptions,
    json: bool,
    max_events: Option<u64>,
) -> Result<ExitCode, String> {
    use futures_util::StreamExt;
    let mut left = max_events.unwrap_or(u64::MAX);
    if left == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let mut stream = client.watch(key, opts).await;
    while let Some(item) = stream.next().await {
        match item {
            Ok(WatchResponse::Events { revision, events }) => {
                for e in &events {
                    println!("{}", event_line(revision, e, json));
                    left -= 1;
                    if left == 0 {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
            Ok(WatchResponse::Progress { .. }) => {}
            Err(raftkv::Error::Compacted { oldest }) => {
                return Err(format!(
                    "the changes asked for are compacted: the oldest revision available is {oldest} (use --rev {oldest})"
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One event as `raftkv watch` prints it.
fn event_line(revision: u64, e: &Event, json: bool) -> String {
    if json {
        let mut v = event_to_json(e);
        if let serde_json::Value::Object(obj) = &mut v {
            obj.insert("revision".into(), revision.into());
        }
        return v.to_string();
    }
    let was = match &e.prev {
        Some(p) => format!(" (was {})", p.value),
        None => String::new(),
    };
    match e.kind {
        EventKind::Put => format!("[{revision}] PUT {}={}{was}", e.kv.key, e.kv.value),
        EventKind::Delete => format!("[{revision}] DELETE {}{was}", e.kv.key),
    }
}

/// One key of a listing: `key=value`, or its JSON object.
fn kv_line(kv: &KeyValue, json: bool) -> String {
    if json {
        kv_to_json(kv).to_string()
    } else {
        format!("{}={}", kv.key, kv.value)
    }
}

/// What the CLI says about an output.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    text: String,
    /// Said on stderr (so a script reading stdout gets nothing).
    to_stderr: bool,
    /// 0; 1 when the condition the command names did not hold (an absent
    /// key for `get`, no swap for `cas`, failed comparisons for `txn`), so
    /// scripts can branch on it; 2 when the cluster refused the command.
    code: u8,
}

fn answer(out: &KvOutput) -> Answer {
    let say = |text: &str, code| Answer { text: text.to_string(), to_stderr: false, code };
    let refuse = |text: String| Answer { text, to_stderr: true, code: 2 };
    match out {
        KvOutput::Written { .. } => say("OK", 0),
        KvOutput::Value { kv: Some(kv), .. } => say(&kv.value, 0),
        KvOutput::Value { kv: None, .. } => Answer { text: "(absent)".into(), to_stderr: true, code: 1 },
        KvOutput::Deleted { existed, .. } => say(if *existed { "deleted" } else { "absent" }, 0),
        KvOutput::Cas { swapped: true, .. } => say("swapped", 0),
        KvOutput::Cas { swapped: false, current: Some(v), .. } => say(&format!("not swapped; current value: {v}"), 1),
        KvOutput::Cas { swapped: false, current: None, .. } => say("not swapped; the key is absent", 1),
        KvOutput::Range { kvs, .. } => say(&kvs.iter().map(|kv| kv_line(kv, false)).collect::<Vec<_>>().join("\n"), 0),
        KvOutput::Count { count, .. } => say(&count.to_string(), 0),
        KvOutput::Txn { succeeded, results, .. } => {
            let mut lines = vec![String::from(if *succeeded { "SUCCEEDED" } else { "FAILED" })];
            for r in results {
                lines.push(match r {
                    TxnResult::Put => "OK".into(),
                    TxnResult::Deleted { existed } => String::from(if *existed { "deleted" } else { "absent" }),
                    TxnResult::Value(Some(kv)) => kv_line(kv, false),
                    TxnResult::Value(None) => "(absent)".into(),
                });
            }
            say(&lines.join("\n"), u8::from(!*succeeded))
        }
        KvOutput::Lease { id, ttl, .. } => say(&format!("lease {id} granted with TTL {}s", *ttl as f64 / 1000.0), 0),
        KvOutput::LeaseRevoked { deleted, .. } => say(&format!("lease revoked; {deleted} keys deleted"), 0),
        KvOutput::LeaseNotFound { id, .. } => refuse(format!("lease {id} not found (expired or revoked)")),
        KvOutput::Refused { reason, .. } => refuse(format!("refused: {reason}")),
        // The client library turns this into an error before it gets here;
        // should it not, it is the cluster refusing the command (exit 2).
        KvOutput::Invalid => refuse("the cluster refused the command".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        kv: KvCommand,
    }

    fn plan(args: &[&str]) -> Plan {
        let cli = Cli::try_parse_from(std::iter::once("raftkv").chain(args.iter().copied())).unwrap();
        cli.kv.plan().unwrap().0
    }

    fn op(args: &[&str]) -> KvOp {
        match plan(args) {
            Plan::One(op) => op,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn command_lines_are_ops() {
        assert_eq!(op(&["put", "k", "v"]), KvOp::Put { key: "k".into(), value: "v".into() });
        assert_eq!(
            op(&["put", "k", "v", "--lease", "7"]),
            KvOp::PutLease { key: "k".into(), value: "v".into(), lease: 7 }
        );
        assert_eq!(op(&["append", "k", "w"]), KvOp::Append { key: "k".into(), value: "w".into() });
        assert_eq!(op(&["get", "k"]), KvOp::Get { key: "k".into() });
        assert_eq!(op(&["delete", "k"]), KvOp::Delete { key: "k".into() });
        let cas =
            |expect: Option<&str>| KvOp::Cas { key: "k".into(), expect: expect.map(Into::into), value: "v".into() };
        assert_eq!(op(&["cas", "k", "v", "--expect", "old"]), cas(Some("old")));
        assert_eq!(op(&["cas", "k", "v", "--absent"]), cas(None));
        assert!(Cli::try_parse_from(["raftkv", "cas", "k", "v"]).is_err(), "cas needs a condition");
        assert_eq!(
            plan(&["get", "app/", "--prefix", "--limit", "2"]),
            Plan::Scan { from: "app/".into(), to: Some("app0".into()), limit: Some(2), json: false }
        );
        assert_eq!(
            plan(&["range", "a", "b"]),
            Plan::Scan { from: "a".into(), to: Some("b".into()), limit: None, json: false }
        );
        assert_eq!(op(&["count", "--prefix", "a/"]), KvOp::Count { from: "a/".into(), to: Some("a0".into()) });
        assert_eq!(op(&["lease", "grant", "2.5"]), KvOp::LeaseGrant { ttl: 2500 });
        assert_eq!(op(&["lease", "keepalive", "9"]), KvOp::LeaseKeepAlive { id: 9 });
        assert_eq!(op(&["lease", "revoke", "9"]), KvOp::LeaseRevoke { id: 9 });
        assert_eq!(
            plan(&["watch", "app/", "--prefix", "--rev", "7", "--prev-kv", "--json"]),
            Plan::Watch {
                key: "app/".into(),
                opts: WatchOptions { prefix: true, start_rev: Some(7), prev_kv: true, ..WatchOptions::default() },
                json: true,
                max_events: None,
            }
        );
        assert!(
            Cli::try_parse_from(["raftkv", "lease", "grant", "-1"]).is_err() || {
                let cli = Cli::try_parse_from(["raftkv", "lease", "grant", "0"]).unwrap();
                cli.kv.plan().is_err()
            }
        );
    }

    #[test]
    fn watch_events_are_printed_one_a_line() {
        let kv = |v: &str| KeyValue {
            key: "app/a".into(),
            value: v.into(),
            create_revision: 3,
            mod_revision: 5,
            version: 2,
            lease: 0,
        };
        let put = Event { revision: 5, sub: 0, kind: EventKind::Put, kv: kv("2"), prev: Some(kv("1")) };
        assert_eq!(event_line(5, &put, false), "[5] PUT app/a=2 (was 1)");
        let del = Event { revision: 6, sub: 0, kind: EventKind::Delete, kv: kv(""), prev: None };
        assert_eq!(event_line(6, &del, false), "[6] DELETE app/a");
        let json: serde_json::Value = serde_json::from_str(&event_line(6, &del, true)).unwrap();
        assert_eq!((json["revision"].as_u64(), json["type"].as_str()), (Some(6), Some("delete")));
    }

    #[test]
    fn outputs_are_printed_with_their_exit_codes() {
        let out = |text: &str, code| Answer { text: text.into(), to_stderr: false, code };
        let kv =
            KeyValue { key: "k".into(), value: "v".into(), create_revision: 1, mod_revision: 1, version: 1, lease: 0 };
        assert_eq!(answer(&KvOutput::Written { revision: 3 }), out("OK", 0));
        assert_eq!(answer(&KvOutput::Value { kv: Some(kv.clone()), revision: 3 }), out("v", 0));
        assert_eq!(
            answer(&KvOutput::Value { kv: None, revision: 3 }),
            Answer { text: "(absent)".into(), to_stderr: true, code: 1 }
        );
        assert_eq!(answer(&KvOutput::Deleted { existed: false, revision: 3 }), out("absent", 0));
        assert_eq!(answer(&KvOutput::Cas { swapped: true, current: None, revision: 3 }), out("swapped", 0));
        let kept = KvOutput::Cas { swapped: false, current: Some("x".into()), revision: 3 };
        assert_eq!(answer(&kept), out("not swapped; current value: x", 1));
        assert_eq!(answer(&KvOutput::Invalid).code, 2);
        let txn = KvOutput::Txn { succeeded: false, results: vec![TxnResult::Value(Some(kv))], revision: 4 };
        assert_eq!(answer(&txn), out("FAILED\nk=v", 1));
        assert_eq!(answer(&KvOutput::LeaseNotFound { id: 5, revision: 4 }).code, 2);
        assert_eq!(answer(&KvOutput::Lease { id: 5, ttl: 2500, revision: 5 }), out("lease 5 granted with TTL 2.5s", 0));
    }
}
