//! The node processes `raftkv cluster` runs, and what the controls of its
//! web page do to them: crash (kill -9), restart, pause (SIGSTOP), resume
//! (SIGCONT), isolate and rejoin.
//!
//! These act on processes, so they belong to the supervisor that started
//! them and never to a node's own endpoints: a node cannot be told over the
//! network to stop or to cut itself off. Isolation goes through the node's
//! private control channel, its stdin pipe (see [`crate::control`]): it
//! needs no root (network namespaces and firewall rules do), works the same
//! on any machine, and a partition imposed this way is undone by one line.
//! The isolate switch is the supervisor's to remember: a node restarted
//! while isolated is isolated again as it starts, as a machine behind a cut
//! cable would be.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Mutex;

use raft_core::NodeId;

/// How long writing a control line may take (the pipe has room for far
/// more than a few lines, even when the node is paused and not reading).
const CONTROL_WRITE: Duration = Duration::from_secs(1);

/// What the page can do to a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// kill -9: the process ends at once, its journal as the disk has it.
    Crash,
    /// Start it again (killing it first if it runs).
    Restart,
    /// SIGSTOP: frozen, its sockets open, its timers stopped.
    Pause,
    /// SIGCONT.
    Resume,
    /// Drop every Raft message to and from its peers.
    Isolate,
    /// Stop dropping them.
    Rejoin,
}

impl Action {
    /// Every action, by the name the page and the URL use.
    pub const ALL: [(&'static str, Action); 6] = [
        ("crash", Action::Crash),
        ("restart", Action::Restart),
        ("pause", Action::Pause),
        ("resume", Action::Resume),
        ("isolate", Action::Isolate),
        ("rejoin", Action::Rejoin),
    ];

    /// The action named `name`.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }
}

/// Why an action was not carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActError {
    /// No such node in this cluster.
    UnknownNode(NodeId),
    /// The action does not apply to the node as it is (pausing a node that
    /// is down, resuming one that runs): says why.
    Conflict(String),
    /// The operating system refused (a process that cannot be started).
    Failed(String),
}

impl std::fmt::Display for ActError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActError::UnknownNode(id) => write!(f, "no node {id} in this cluster"),
            ActError::Conflict(why) | ActError::Failed(why) => f.write_str(why),
        }
    }
}

/// One node as the page sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// The node.
    pub id: NodeId,
    /// Its base URL (`ws://…`); its stream is at `/live`.
    pub url: String,
    /// `running`, `paused` or `down`.
    pub state: &'static str,
    /// Cut off from its peers (remembered across restarts).
    pub isolated: bool,
    /// Its process id while it runs.
    pub pid: Option<u32>,
    /// Times it was started.
    pub starts: u32,
}

/// A node process that ended without being asked to.
#[derive(Clone, Debug)]
pub struct Exit {
    /// The node.
    pub id: NodeId,
    /// How it ended.
    pub status: ExitStatus,
}

struct Slot {
    url: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    paused: bool,
    isolated: bool,
    starts: u32,
    /// It ended by itself (not by a control) and was not started since.
    exited_by_itself: bool,
}

/// The supervisor of a local cluster's node processes.
pub struct Supervisor {
    exe: PathBuf,
    config: PathBuf,
    dir: PathBuf,
    nodes: Mutex<BTreeMap<NodeId, Slot>>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A supervisor that runs `exe node --id N --config config --supervised`
    /// for each of `nodes` (id, URL), logging into `dir/node-N.log`. Nothing
    /// is started yet.
    pub fn new(exe: PathBuf, config: PathBuf, dir: PathBuf, nodes: &[(NodeId, String)]) -> Supervisor {
        let slots = nodes
            .iter()
            .map(|(id, url)| {
                let slot = Slot {
                    url: url.clone(),
                    child: None,
                    stdin: None,
                    paused: false,
                    isolated: false,
                    starts: 0,
                    exited_by_itself: false,
                };
                (*id, slot)
            })
            .collect();
        Supervisor { exe, config, dir, nodes: Mutex::new(slots) }
    }

    /// The log file of node `id`.
    pub fn log_path(&self, id: NodeId) -> PathBuf {
        self.dir.join(format!("node-{id}.log"))
    }

    /// Starts every node (`bootstrap`: the cluster's first start).
    pub async fn start_all(&self, bootstrap: bool) -> Result<(), String> {
        let mut nodes = self.nodes.lock().await;
        for (id, slot) in nodes.iter_mut() {
            self.spawn(*id, slot, bootstrap, true).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Starts node `id`'s process into `slot` (`bootstrap`: with
    /// `--bootstrap`); its log is truncated at the cluster's start (`fresh`)
    /// and appended to at a restart.
    async fn spawn(&self, id: NodeId, slot: &mut Slot, bootstrap: bool, fresh: bool) -> Result<(), ActError> {
        let path = self.log_path(id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(!fresh)
            .truncate(fresh)
            .open(&path)
            .map_err(|e| ActError::Failed(format!("{}: {e}", path.display())))?;
        let err = log.try_clone().map_err(|e| ActError::Failed(e.to_string()))?;
        let mut child = Command::new(&self.exe)
            .args(["node", "--supervised", "--id", &id.to_string(), "--config"])
            .arg(&self.config)
            .args(bootstrap.then_some("--bootstrap"))
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ActError::Failed(format!("cannot start node {id}: {e}")))?;
        slot.stdin = child.stdin.take();
        slot.child = Some(child);
        slot.paused = false;
        slot.starts += 1;
        slot.exited_by_itself = false;
        if slot.isolated {
            send_line(slot, "isolate").await?;
        }
        Ok(())
    }

    /// Every node, in id order.
    pub async fn nodes(&self) -> Vec<NodeInfo> {
        let nodes = self.nodes.lock().await;
        nodes.iter().map(|(id, s)| info(*id, s)).collect()
    }

    /// Carries out `action` on node `id` and answers how the node is now.
    pub async fn act(&self, id: NodeId, action: Action) -> Result<NodeInfo, ActError> {
        let mut nodes = self.nodes.lock().await;
        let slot = nodes.get_mut(&id).ok_or(ActError::UnknownNode(id))?;
        reap_slot(slot);
        let running = slot.child.is_some();
        match action {
            Action::Crash => {
                if !running {
                    return Err(ActError::Conflict(format!("node {id} is already down")));
                }
                kill(slot).await;
                tracing::info!(node = id, "crashed node (kill -9) from the page");
            }
            Action::Restart => {
                if running {
                    kill(slot).await;
                }
                self.spawn(id, slot, false, false).await?;
                tracing::info!(node = id, "restarted node from the page");
            }
            Action::Pause | Action::Resume => {
                let pause = action == Action::Pause;
                let Some(pid) = slot.child.as_ref().and_then(Child::id) else {
                    return Err(ActError::Conflict(format!("node {id} is down")));
                };
                if slot.paused == pause {
                    let now = if pause { "paused" } else { "running" };
                    return Err(ActError::Conflict(format!("node {id} is already {now}")));
                }
                signal(pid, if pause { Signal::Stop } else { Signal::Continue })
                    .map_err(|e| ActError::Failed(format!("cannot signal node {id}: {e}")))?;
                slot.paused = pause;
                tracing::info!(node = id, pause, "paused or resumed node from the page");
            }
            Action::Isolate | Action::Rejoin => {
                let on = action == Action::Isolate;
                if slot.isolated == on {
                    let now = if on { "isolated" } else { "connected" };
                    return Err(ActError::Conflict(format!("node {id} is already {now}")));
                }
                slot.isolated = on;
                if running {
                    send_line(slot, if on { "isolate" } else { "rejoin" }).await?;
                }
                tracing::info!(node = id, isolated = on, "isolated or rejoined node from the page");
            }
        }
        Ok(info(id, slot))
    }

    /// The nodes that ended by themselves since the last call (a crash of
    /// their own, a refusal to start), and whether every node is now down
    /// that way (the cluster cannot go on without someone restarting it).
    pub async fn reap(&self) -> (Vec<Exit>, bool) {
        let mut nodes = self.nodes.lock().await;
        let mut out = Vec::new();
        for (id, slot) in nodes.iter_mut() {
            if let Some(status) = reap_slot(slot) {
                slot.exited_by_itself = true;
                out.push(Exit { id: *id, status });
            }
        }
        let all = nodes.values().all(|s| s.child.is_none() && s.exited_by_itself);
        (out, all)
    }

    /// Kills every node (the cluster is stopping).
    pub async fn stop_all(&self) {
        let mut nodes = self.nodes.lock().await;
        for slot in nodes.values_mut() {
            if slot.child.is_some() {
                kill(slot).await;
            }
        }
    }
}

fn info(id: NodeId, s: &Slot) -> NodeInfo {
    let pid = s.child.as_ref().and_then(Child::id);
    let state = match (&s.child, s.paused) {
        (None, _) => "down",
        (Some(_), true) => "paused",
        (Some(_), false) => "running",
    };
    NodeInfo { id, url: s.url.clone(), state, isolated: s.isolated, pid, starts: s.starts }
}

/// Notices that the slot's process ended; its status if it did.
fn reap_slot(slot: &mut Slot) -> Option<ExitStatus> {
    let status = slot.child.as_mut()?.try_wait().ok()??;
    slot.child = None;
    slot.stdin = None;
    slot.paused = false;
    Some(status)
}

/// kill -9, and waits for the process to be gone (a stopped one too).
async fn kill(slot: &mut Slot) {
    if let Some(mut c) = slot.child.take() {
        let _ = c.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
    }
    slot.stdin = None;
    slot.paused = false;
}

/// Writes one control line to the node's stdin.
async fn send_line(slot: &mut Slot, line: &str) -> Result<(), ActError> {
    let Some(stdin) = slot.stdin.as_mut() else {
        return Err(ActError::Failed("the node's control pipe is closed".into()));
    };
    let text = format!("{line}\n");
    match tokio::time::timeout(CONTROL_WRITE, stdin.write_all(text.as_bytes())).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ActError::Failed(format!("cannot write to the node's control pipe: {e}"))),
        Err(_) => Err(ActError::Failed("the node's control pipe is full".into())),
    }
}

enum Signal {
    Stop,
    Continue,
}

/// Sends SIGSTOP or SIGCONT to `pid`.
fn signal(pid: u32, s: Signal) -> std::io::Result<()> {
    let sig = match s {
        Signal::Stop => libc::SIGSTOP,
        Signal::Continue => libc::SIGCONT,
    };
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::other("process id out of range"))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // `pid` is a child this supervisor started and has not reaped (its id
    // cannot have been reused).
    let r = unsafe { libc::kill(pid, sig) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_named() {
        for (name, a) in Action::ALL {
            assert_eq!(Action::parse(name), Some(a));
        }
        assert_eq!(Action::parse("format-disk"), None);
    }
}
