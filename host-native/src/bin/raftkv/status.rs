//! `raftkv status`: every node's role, term and indexes, from its `/status`.

use std::process::ExitCode;

/// Prints each node's status (one line each, or its raw JSON with `json`);
/// fails only if no node answers.
pub async fn run(
    addrs: &[String],
    token: Option<&str>,
    tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
    json: bool,
) -> Result<ExitCode, String> {
    let mut reachable = 0;
    for a in addrs {
        match raftkv::http::get_with(a, "/status", token, tls.as_ref()).await {
            Ok(body) => {
                reachable += 1;
                if json {
                    println!("{body}");
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{a}: bad status: {e}"))?;
                println!(
                    "node {} {:<13} term {:<4} leader {:<4} commit {:<8} applied {:<8} last {:<8} sessions {}  ({a})",
                    v["id"],
                    v["role"].as_str().unwrap_or("?"),
                    v["term"],
                    v["leader"],
                    v["commit_index"],
                    v["applied_index"],
                    v["last_index"],
                    v["sessions"],
                );
            }
            Err(e) => println!("{a}: unreachable ({e})"),
        }
    }
    if reachable == 0 {
        return Err("no node of the cluster is reachable".into());
    }
    Ok(ExitCode::SUCCESS)
}
