//! A node's private control channel to the `raftkv cluster` supervisor that
//! started it: lines on its standard input (`raftkv node --supervised`).
//!
//! The supervisor's "isolate" button cuts a node off from its peers without
//! network namespaces or firewall rules (which need root): it writes
//! `isolate` to the node's stdin, and the node task drops every Raft message
//! it would send and every one it receives until `rejoin`. To the other
//! nodes that is a network partition around it; clients can still reach it
//! (and learn it has no leader), as they could a node behind a partition
//! that cuts only the links between the machines. The pipe is the
//! channel's authentication: only the parent process holds its write end,
//! nothing listens on a port, and a node started by hand without
//! `--supervised` reads nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest control line; a longer one is skipped (with a warning).
pub const MAX_LINE: usize = 64;

/// The isolate switch, shared by the control reader and the node task.
#[derive(Debug, Default)]
pub struct Isolation(AtomicBool);

impl Isolation {
    /// Whether the node is cut off from its peers now.
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// Cuts the node off (`true`) or lets it back (`false`).
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }
}

/// A command of the control channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Drop every peer message both ways.
    Isolate,
    /// Stop dropping them.
    Rejoin,
}

/// The command a line names, or why it names none.
pub fn parse(line: &str) -> Result<Command, String> {
    match line.trim() {
        "isolate" => Ok(Command::Isolate),
        "rejoin" => Ok(Command::Rejoin),
        other => Err(format!("unknown control command {other:?} (isolate, rejoin)")),
    }
}

/// Reads control lines from `input` until it ends, setting `isolation`.
/// Lines are bounded ([`MAX_LINE`]); an unknown one is logged and skipped.
pub async fn run<R: AsyncRead + Unpin>(mut input: R, isolation: Arc<Isolation>) {
    let mut line: Vec<u8> = Vec::with_capacity(MAX_LINE);
    let mut too_long = false;
    let mut buf = [0u8; 256];
    loop {
        let n = match input.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b != b'\n' {
                if line.len() < MAX_LINE {
                    line.push(b);
                } else {
                    too_long = true;
                }
                continue;
            }
            if too_long {
                tracing::warn!("skipped a control line longer than {MAX_LINE} bytes");
            } else {
                match parse(&String::from_utf8_lossy(&line)) {
                    Ok(c) => {
                        let on = c == Command::Isolate;
                        isolation.set(on);
                        if on {
                            tracing::warn!("isolated by the supervisor: dropping every peer message until rejoin");
                        } else {
                            tracing::info!("rejoined by the supervisor: peer messages flow again");
                        }
                    }
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            line.clear();
            too_long = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_switch_isolation_and_junk_is_skipped() {
        let iso = Arc::new(Isolation::default());
        let junk = "x".repeat(MAX_LINE * 3);
        let input = format!("isolate\n{junk}\nrejoin\nbogus\nisolate\n");
        run(input.as_bytes(), iso.clone()).await;
        assert!(iso.is_on());
        let iso = Arc::new(Isolation::default());
        run(&b"isolate\nrejoin\n"[..], iso.clone()).await;
        assert!(!iso.is_on());
        assert!(parse("  isolate ").is_ok());
        assert!(parse("rm -rf").unwrap_err().contains("unknown"));
    }
}
