//! `raftkv cluster`: three child node processes and the web demo.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use raftkv::routes::cluster_controls::Controls;
use raftkv::supervisor::Supervisor;
use raftkv::Config;

use super::signal;

/// Runs `raftkv cluster`: writes the configuration into `dir`, starts one
/// `raftkv node` child process per node (see [`Supervisor`]) and the demo
/// page's server with the live view's controls, and waits for a stop signal
/// (or for every node to have exited by itself).
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
    let demo_addr = demo_listener.local_addr().map_err(|e| format!("cannot serve the web demo on {demo}: {e}"))?;
    // The page's own origin may use the nodes' /client and /live.
    for origin in page_origins(demo_addr) {
        if !cfg.allowed_origins.contains(&origin) {
            cfg.allowed_origins.push(origin);
        }
    }
    std::fs::write(&cfg_path, cfg.to_toml()).map_err(|e| format!("cannot write {}: {e}", cfg_path.display()))?;

    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let nodes: Vec<(u64, String)> = cfg.nodes.iter().map(|n| (n.id, n.url())).collect();
    let sup = Arc::new(Supervisor::new(exe.clone(), cfg_path.clone(), dir.clone(), &nodes));
    sup.start_all(first).await?;
    let demo = demo_addr.to_string();
    let web = web.or_else(find_web_demo);
    let urls: Vec<String> = cfg.client_urls();
    // Controls act on processes of this machine: only for a cluster that is
    // all on loopback, served on loopback.
    let loopback = demo_addr.ip().is_loopback() && cfg.nodes.iter().all(|n| n.listen.ip().is_loopback());
    let controls = Controls {
        supervisor: loopback.then(|| sup.clone()),
        off_because: (!loopback).then(|| "the cluster or its web page is not on loopback".to_string()),
        origins: cfg.allowed_origins.clone(),
        tokens: Arc::new(raftkv::auth::Tokens::new(&cfg)),
        nodes,
    };
    tokio::spawn(serve_demo(demo_listener, web.clone(), urls, controls));

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
    if web.is_some() {
        let how = if loopback { "with crash/restart/pause/isolate controls" } else { "controls off: not on loopback" };
        println!("  live view of these nodes: http://{demo}/live.html  ({how})");
    }
    let me = exe.display();
    println!("  try: {me} put hello world && {me} get hello && {me} status");
    println!("Ctrl-C stops the cluster.");

    let code = loop {
        tokio::select! {
            _ = signal::stop() => break ExitCode::SUCCESS,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let (exits, all_down) = sup.reap().await;
        for e in exits {
            let log_path = sup.log_path(e.id);
            eprintln!("node {} exited ({}); its log: {}", e.id, e.status, log_path.display());
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            for line in log.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev() {
                eprintln!("  | {line}");
            }
        }
        if all_down {
            break ExitCode::FAILURE;
        }
    };
    println!("stopping the cluster");
    sup.stop_all().await;
    Ok(code)
}

/// The origins the demo page has when served on `addr` (and, on loopback,
/// by the name `localhost`).
fn page_origins(addr: SocketAddr) -> Vec<String> {
    let mut v = vec![format!("http://{addr}")];
    if addr.ip().is_loopback() {
        v.push(format!("http://localhost:{}", addr.port()));
    }
    v
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
async fn serve_demo(listener: tokio::net::TcpListener, web: Option<PathBuf>, urls: Vec<String>, controls: Controls) {
    if let Err(e) = raftkv::routes::demo::serve(listener, web, urls, controls).await {
        eprintln!("web demo server stopped: {e}");
    }
}
