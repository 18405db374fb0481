//! The key-value commands — `raftkv put`, `append`, `get`, `delete`, `cas` —
//! as raft-core's operations: each command line becomes a [`KvOp`], the
//! client library runs it, and the [`KvOutput`] decides what is printed and
//! the exit code.

use std::process::ExitCode;

use clap::Subcommand;

use raftkv::{KvOp, KvOutput};

use super::client_args::ClientArgs;

/// The command line of one key-value operation.
#[derive(Subcommand, Debug)]
pub enum KvCommand {
    /// Set a key.
    Put {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
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
    /// Read a key (linearizable). Prints the value; exits 1 if the key is absent.
    Get {
        /// The key.
        key: String,
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
}

impl KvCommand {
    /// The operation, and where to send it.
    fn into_op(self) -> (KvOp, ClientArgs) {
        match self {
            KvCommand::Put { key, value, c } => (KvOp::Put { key, value }, c),
            KvCommand::Append { key, value, c } => (KvOp::Append { key, value }, c),
            KvCommand::Get { key, c } => (KvOp::Get { key }, c),
            KvCommand::Delete { key, c } => (KvOp::Delete { key }, c),
            // clap requires one of --expect and --absent.
            KvCommand::Cas { key, value, expect, absent, c } => {
                (KvOp::Cas { key, expect: if absent { None } else { expect }, value }, c)
            }
        }
    }
}

/// Runs the command against the cluster and prints the answer.
pub async fn run(cmd: KvCommand) -> Result<ExitCode, String> {
    let (op, c) = cmd.into_op();
    let out = c.client()?.execute(op).await.map_err(|e| e.to_string())?;
    let a = answer(&out);
    if a.to_stderr {
        eprintln!("{}", a.text);
    } else {
        println!("{}", a.text);
    }
    Ok(ExitCode::from(a.code))
}

/// What the CLI says about an output.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    text: String,
    /// Said on stderr (so a script reading stdout gets nothing).
    to_stderr: bool,
    /// 0; 1 when the condition the command names did not hold (an absent
    /// key for `get`, no swap for `cas`), so scripts can branch on it.
    code: u8,
}

fn answer(out: &KvOutput) -> Answer {
    let say = |text: &str, code| Answer { text: text.to_string(), to_stderr: false, code };
    match out {
        KvOutput::Written => say("OK", 0),
        KvOutput::Value(Some(v)) => say(v, 0),
        KvOutput::Value(None) => Answer { text: "(absent)".into(), to_stderr: true, code: 1 },
        KvOutput::Deleted { existed } => say(if *existed { "deleted" } else { "absent" }, 0),
        KvOutput::Cas { swapped: true, .. } => say("swapped", 0),
        KvOutput::Cas { swapped: false, current: Some(v) } => say(&format!("not swapped; current value: {v}"), 1),
        KvOutput::Cas { swapped: false, current: None } => say("not swapped; the key is absent", 1),
        // The client library turns this into an error before it gets here;
        // should it not, it is the cluster refusing the command (exit 2).
        KvOutput::Invalid => Answer { text: "the cluster refused the command".into(), to_stderr: true, code: 2 },
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

    fn op(args: &[&str]) -> KvOp {
        let cli = Cli::try_parse_from(std::iter::once("raftkv").chain(args.iter().copied())).unwrap();
        cli.kv.into_op().0
    }

    #[test]
    fn command_lines_are_ops() {
        assert_eq!(op(&["put", "k", "v"]), KvOp::Put { key: "k".into(), value: "v".into() });
        assert_eq!(op(&["append", "k", "w"]), KvOp::Append { key: "k".into(), value: "w".into() });
        assert_eq!(op(&["get", "k"]), KvOp::Get { key: "k".into() });
        assert_eq!(op(&["delete", "k"]), KvOp::Delete { key: "k".into() });
        let cas =
            |expect: Option<&str>| KvOp::Cas { key: "k".into(), expect: expect.map(Into::into), value: "v".into() };
        assert_eq!(op(&["cas", "k", "v", "--expect", "old"]), cas(Some("old")));
        assert_eq!(op(&["cas", "k", "v", "--absent"]), cas(None));
        assert!(Cli::try_parse_from(["raftkv", "cas", "k", "v"]).is_err(), "cas needs a condition");
    }

    #[test]
    fn outputs_are_printed_with_their_exit_codes() {
        let out = |text: &str, code| Answer { text: text.into(), to_stderr: false, code };
        assert_eq!(answer(&KvOutput::Written), out("OK", 0));
        assert_eq!(answer(&KvOutput::Value(Some("v".into()))), out("v", 0));
        assert_eq!(answer(&KvOutput::Value(None)), Answer { text: "(absent)".into(), to_stderr: true, code: 1 });
        assert_eq!(answer(&KvOutput::Deleted { existed: false }), out("absent", 0));
        assert_eq!(answer(&KvOutput::Cas { swapped: true, current: None }), out("swapped", 0));
        let kept = KvOutput::Cas { swapped: false, current: Some("x".into()) };
        assert_eq!(answer(&kept), out("not swapped; current value: x", 1));
        assert_eq!(answer(&KvOutput::Invalid).code, 2);
    }
}
