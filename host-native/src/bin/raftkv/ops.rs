//! The operator's commands: `raftkv member ...`, `raftkv transfer-leader`,
//! `raftkv snapshot save|inspect|restore`, `raftkv bootstrap`. Each member
//! command prints the configuration after it, or the cluster's refusal
//! (exit code 1).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;

use raftkv::protocol::{AdminOp, ErrorCode, MembersView, Success};
use raftkv::{Config, Error};

use super::client_args::ClientArgs;

/// The largest snapshot `snapshot save` accepts and `inspect`/`restore` read.
const MAX_SNAPSHOT: u64 = 1 << 30;

/// `raftkv member ...`
#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Every member: id, URL, voter or learner, incarnation, match index, lag, reachable, lost data.
    List {
        /// Print the JSON answer.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Add node ID at URL: as a learner, then (without --learner) promoted once it has caught up.
    Add {
        /// The new node's id.
        id: u64,
        /// Its URL, e.g. ws://127.0.0.1:7004.
        url: String,
        /// Leave it a learner.
        #[arg(long)]
        learner: bool,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Make learner ID a voter (refused while it is too far behind, unless --force).
    Promote {
        /// The learner.
        id: u64,
        /// Promote however far behind it is.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Remove node ID (the leader too: it steps down once the removal commits).
    Remove {
        /// The node.
        id: u64,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Replace voter OLD by the caught-up learner NEW in one joint change (OLD = NEW: rebind a node that lost its data).
    Replace {
        /// The voter to remove.
        old: u64,
        /// The learner to make a voter.
        new: u64,
        #[command(flatten)]
        c: ClientArgs,
    },
}

/// `raftkv snapshot ...`
#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Save a consistent snapshot, streamed from the leader, into FILE (its checksum checked).
    Save {
        /// Where to write it.
        file: PathBuf,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Show what a snapshot file holds: index, term, configuration, keys, sessions, size.
    Inspect {
        /// The file.
        file: PathBuf,
    },
    /// Make DIR the data directory of node ID of a new cluster holding FILE's data (the others --join it).
    Restore {
        /// The snapshot file.
        file: PathBuf,
        /// The new, empty data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// The node id it gets.
        #[arg(long, default_value_t = 1)]
        id: u64,
        /// The new cluster's configuration (for its name and limits; default: the embedded one).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn print_view(v: &MembersView) {
    let list = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    print!("configuration: voters [{}] learners [{}]", list(&v.voters), list(&v.learners));
    if v.joint {
        print!("  JOINT (outgoing voters [{}])", list(&v.outgoing));
    }
    println!("   leader {} term {} commit {} (answered by node {})", v.leader, v.term, v.commit_index, v.node);
    println!(
        "{:>4}  {:<8} {:<28} {:>16} {:>8} {:>6}  {:<9} lost-data",
        "id", "role", "url", "incarnation", "match", "lag", "reachable"
    );
    for m in &v.members {
        println!(
            "{:>4}  {:<8} {:<28} {:>16} {:>8} {:>6}  {:<9} {}",
            m.id,
            if m.voter { "voter" } else { "learner" },
            m.url,
            m.incarnation,
            m.match_index,
            m.lag,
            if m.reachable { "yes" } else { "no" },
            if m.lost_data { "YES" } else { "no" }
        );
    }
}

/// Prints a member command's answer; a refusal is printed and exits 1.
fn answer(r: Result<Success, Error>) -> Result<ExitCode, String> {
    match r {
        Ok(Success::Members(v)) => {
            print_view(&v);
            Ok(ExitCode::SUCCESS)
        }
        Ok(Success::Transferred { leader }) => {
            println!("node {leader} leads now");
            Ok(ExitCode::SUCCESS)
        }
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e @ Error::Rejected { .. }) => {
            eprintln!("raftkv: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Runs `raftkv member ...`.
pub async fn member(cmd: MemberCommand) -> Result<ExitCode, String> {
    match cmd {
        MemberCommand::List { json, c } => {
            let client = c.client()?;
            // Ask the leader when one is known: match and lag are its.
            let mut view = client.members().await.map_err(|e| e.to_string())?;
            if view.leader != 0 && view.leader != view.node {
                if let Some(url) = view.members.iter().find(|m| m.id == view.leader).map(|m| m.url.clone()) {
                    let at_leader = raftkv::Client::new(vec![url], c.options()?);
                    if let Ok(v) = at_leader.members().await {
                        view = v;
                    }
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&view).map_err(|e| e.to_string())?);
            } else {
                print_view(&view);
            }
            Ok(ExitCode::SUCCESS)
        }
        MemberCommand::Add { id, url, learner, c } => {
            let client = c.client()?;
            let added = client.admin(AdminOp::MemberAdd { id, url, learner }).await;
            if learner || added.is_err() {
                return answer(added);
            }
            // Promote once it has caught up (the leader refuses before).
            let deadline = Instant::now() + Duration::from_secs_f64(c.timeout);
            loop {
                match client.admin(AdminOp::MemberPromote { id, force: false }).await {
                    Err(Error::Rejected { code: ErrorCode::Refused, message })
                        if Instant::now() < deadline
                            && message.as_deref().is_some_and(|m| m.contains("behind") || m.contains("unfinished")) =>
                    {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    r => return answer(r),
                }
            }
        }
        MemberCommand::Promote { id, force, c } => {
            answer(c.client()?.admin(AdminOp::MemberPromote { id, force }).await)
        }
        MemberCommand::Remove { id, c } => answer(c.client()?.admin(AdminOp::MemberRemove { id }).await),
        MemberCommand::Replace { old, new, c } => answer(c.client()?.admin(AdminOp::MemberReplace { old, new }).await),
    }
}

/// Runs `raftkv transfer-leader [ID]`, printing how long it took.
pub async fn transfer(id: Option<u64>, c: ClientArgs) -> Result<ExitCode, String> {
    let started = Instant::now();
    let r = c.client()?.admin(AdminOp::TransferLeader { id }).await;
    let took = started.elapsed();
    let code = answer(r)?;
    if code == ExitCode::SUCCESS {
        println!("transfer took {} ms", took.as_millis());
    }
    Ok(code)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("partial");
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn read_snapshot(file: &Path) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(file).map_err(|e| format!("{}: {e}", file.display()))?.len();
    if len > MAX_SNAPSHOT {
        return Err(format!("{} is larger than {MAX_SNAPSHOT} bytes", file.display()));
    }
    std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))
}

/// Runs `raftkv snapshot ...`.
pub async fn snapshot(cmd: SnapshotCommand) -> Result<ExitCode, String> {
    match cmd {
        SnapshotCommand::Save { file, c } => {
            let (index, term, bytes) = c.client()?.snapshot_save(MAX_SNAPSHOT).await.map_err(|e| e.to_string())?;
            // Checked again as a whole, as a node would read it.
            raftkv::backup::inspect(&bytes, MAX_SNAPSHOT as usize)?;
            write_atomically(&file, &bytes)?;
            println!("saved the snapshot at index {index} (term {term}), {} bytes, to {}", bytes.len(), file.display());
            Ok(ExitCode::SUCCESS)
        }
        SnapshotCommand::Inspect { file } => {
            let s = raftkv::backup::inspect(&read_snapshot(&file)?, MAX_SNAPSHOT as usize)?;
            let m = &s.membership;
            let list =
                |v: &[raft_core::Member]| v.iter().map(|b| format!("{}@{}", b.id, b.inc)).collect::<Vec<_>>().join(",");
            println!("index      {}", s.index);
            println!("term       {}", s.term);
            println!("voters     [{}] (id@incarnation)", list(&m.voters));
            if m.is_joint() {
                println!("outgoing   [{}]", list(&m.outgoing));
            }
            println!("learners   [{}]", list(&m.learners));
            for (id, url) in &s.addresses {
                println!("address    node {id}: {url}");
            }
            println!("keys       {}", s.keys);
            println!("sessions   {}", s.sessions);
            println!("size       {} bytes", s.size);
            Ok(ExitCode::SUCCESS)
        }
        SnapshotCommand::Restore { file, data_dir, id, config } => {
            let cfg = Config::load(config.as_deref()).map_err(|e| e.to_string())?;
            let bytes = read_snapshot(&file)?;
            let ident = raftkv::backup::restore(
                &bytes,
                MAX_SNAPSHOT as usize,
                &data_dir,
                &cfg.cluster_id,
                id,
                cfg.limits.segment_bytes,
            )?;
            println!(
                "restored into {} as node {id} of a new cluster {} (incarnation {}); start it with \
                 `raftkv node --id {id} --data-dir {}` and --join the others to it",
                data_dir.display(),
                ident.cluster_uuid,
                ident.incarnation,
                data_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `raftkv bootstrap`: pre-creates every node's data directory of a
/// new cluster with one bound configuration.
pub fn bootstrap(config: Option<&Path>) -> Result<ExitCode, String> {
    let cfg = Config::load(config).map_err(|e| e.to_string())?;
    let dirs: Vec<(u64, PathBuf)> = cfg.nodes.iter().map(|n| (n.id, cfg.node_dir(n.id))).collect();
    let made = raftkv::identity::bootstrap_cluster(&cfg.cluster_id, &dirs).map_err(|e| e.0)?;
    let uuid = made.first().map(|i| i.cluster_uuid.clone()).unwrap_or_default();
    println!("bootstrapped cluster {} ({uuid}): {} nodes", cfg.cluster_id, made.len());
    for (i, (_, d)) in made.iter().zip(&dirs) {
        println!("  node {}: incarnation {} in {}", i.node_id, i.incarnation, d.display());
    }
    Ok(ExitCode::SUCCESS)
}
