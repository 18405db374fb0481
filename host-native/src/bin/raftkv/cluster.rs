//! `raftkv cluster`: three child node processes and the web demo.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use raftkv::Config;

use super::signal;

/// Runs `raftkv cluster`: writes the configuration into `dir`, starts one
/// `raftkv node` child process per node and the demo page's server, and
/// waits for a stop signal (or for every node to exit).
pub async fn run(
    dir: PathBuf,
    config: Option<PathBuf>,
    demo: String,
    web: Option<PathBuf>,
) -> Result<ExitCode, String> {
    let mut cfg = Config::load(config.as_deref()).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    cfg.data_dir = dir.clone();
    let cfg_path = dir.join("cluster.toml");
    std::fs::write(&cfg_path, cfg.to_toml()).map_err(|e| format!("cannot write {}: {e}", cfg_path.display()))?;
    // Fail early and clearly if a port is taken.
    for n in &cfg.nodes {
        if let Err(e) = std::net::TcpListener::bind(n.listen) {
            return Err(format!("cannot use {} for node {}: {e} (is a cluster already running?)", n.listen, n.id));
        }
    }
    // "First start" is decided for the whole cluster, never per node: only
    // when no node's directory has an identity are they all created, with
    // one bound configuration. A node whose directory was wiped later asks
    // the others to be let back in; it never bootstraps again.
    let dirs: Vec<(u64, PathBuf)> = cfg.nodes.iter().map(|n| (n.id, cfg.node_dir(n.id))).collect();
    let first = dirs.iter().all(|(_, d)| !d.join(raftkv::identity::IDENTITY_FILE).exists());
    if first {
        raftkv::identity::bootstrap_cluster(&cfg.cluster_id, &dirs).map_err(|e| e.0)?;
    }
    let demo_listener =
        tokio::net::TcpListener::bind(&demo).await.map_err(|e| format!("cannot serve the web demo on {demo}: {e}"))?;

    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let mut children: Vec<(u64, Child)> = Vec::new();
    for n in &cfg.nodes {
        let log_path = dir.join(format!("node-{}.log", n.id));
        let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&exe)
            .args(["node", "--id", &n.id.to_string(), "--config"])
            .arg(&cfg_path)
            .args(first.then_some("--bootstrap"))
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start node {}: {e}", n.id))?;
        children.push((n.id, child));
    }
    let demo = demo_listener.local_addr().map(|a| a.to_string()).unwrap_or(demo);
    let web = web.or_else(find_web_demo);
    let urls: Vec<String> = cfg.client_urls();
    tokio::spawn(serve_demo(demo_listener, web.clone(), urls));

    println!("raftkv cluster: {} nodes, data and logs in {}", cfg.nodes.len(), dir.display());
    for n in &cfg.nodes {
        println!(
            "  node {}: {}/client   status: http://{}/status   metrics: http://{}/metrics",
            n.id,
            n.url(),
            n.listen,
            n.listen
        );
    }
    match &web {
        Some(w) => println!("  web demo: http://{demo}/  (files from {})", w.display()),
        None => println!("  web demo: http://{demo}/  (built-in page; web-demo/ not found)"),
    }
    let me = exe.display();
    println!("  try: {me} put hello world && {me} get hello && {me} status");
    println!("Ctrl-C stops the cluster.");

    let code = loop {
        let exited = async {
            loop {
                for (id, c) in children.iter_mut() {
                    if let Ok(Some(st)) = c.try_wait() {
                        return (*id, st);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::select! {
            _ = signal::stop() => break ExitCode::SUCCESS,
            (id, st) = exited => {
                eprintln!("node {id} exited ({st}); its log: {}", dir.join(format!("node-{id}.log")).display());
                let log = std::fs::read_to_string(dir.join(format!("node-{id}.log"))).unwrap_or_default();
                for line in log.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev() {
                    eprintln!("  | {line}");
                }
                children.retain(|(i, _)| *i != id);
                if children.is_empty() {
                    break ExitCode::FAILURE;
                }
            }
        }
    };
    println!("stopping the cluster");
    for (_, c) in children.iter_mut() {
        let _ = c.kill().await;
    }
    Ok(code)
}

fn find_web_demo() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("web-demo")];
    if let Ok(exe) = std::env::current_exe() {
        // target/{debug,release}/raftkv -> the workspace root.
        if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            candidates.push(root.join("web-demo"));
        }
    }
    candidates.into_iter().find(|p| p.join("index.html").is_file())
}

/// The demo page's server; if it stops, the cluster goes on without it.
async fn serve_demo(listener: tokio::net::TcpListener, web: Option<PathBuf>, urls: Vec<String>) {
    if let Err(e) = raftkv::routes::demo::serve(listener, web, urls).await {
        eprintln!("web demo server stopped: {e}");
    }
}
