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
                let ids = |c: &serde_json::Value, k: &str| {
                    c[k].as_array()
                        .map(|a| a.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","))
                        .unwrap_or_default()
                };
                for (label, key) in [("in force", "configuration"), ("committed", "committed_configuration")] {
                    let c = &v[key];
                    let joint = if c["joint"] == true {
                        format!("  JOINT, outgoing [{}]", ids(c, "outgoing"))
                    } else {
                        String::new()
                    };
                    println!("    {label:<9} voters [{}] learners [{}]{joint}", ids(c, "voters"), ids(c, "learners"));
                }
                if v["lost_data"] == true {
                    println!("    LOST DATA: this node does not vote until `raftkv member replace {0} {0}`", v["id"]);
                }
            }
            Err(e) => println!("{a}: unreachable ({e})"),
        }
    }
    if reachable == 0 {
        return Err("no node of the cluster is reachable".into());
    }
    Ok(ExitCode::SUCCESS)
}
