//! The demo page's server, which `raftkv cluster` runs on a port of its own
//! (default 127.0.0.1:8080): the web demo's files (or a small built-in page
//! when they are not there), `/api/nodes` (the nodes' client URLs) and
//! `/api/status` (every node's `/status`, gathered in one answer); and the
//! live view's `/cluster.json` and node controls ([`super::cluster_controls`]).
//!
//! The nodes are other processes, so `/api/status` asks each of them over
//! HTTP, like any other client would.

use std::path::PathBuf;

use axum::response::Html;
use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};

use crate::http;

/// A small page for when `web-demo/` is not there: status of each node and
/// a form that speaks the JSON client protocol.
const BUILTIN_PAGE: &str = include_str!("demo.html");

/// Serves the demo on `listener` until the process ends: the files of `web`
/// (or the built-in page), the API over the nodes at `urls`, and the live
/// view's `controls`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    web: Option<PathBuf>,
    urls: Vec<String>,
    controls: super::cluster_controls::Controls,
) -> std::io::Result<()> {
    let status_urls = urls.clone();
    let app = super::cluster_controls::router(controls)
        .route("/api/nodes", get(move || std::future::ready(Json(urls.clone()))))
        .route(
            "/api/status",
            get(move || {
                let urls = status_urls.clone();
                async move { Json(all_status(&urls).await) }
            }),
        );
    let app = match web {
        Some(dir) => app.fallback_service(tower_http::services::ServeDir::new(dir)),
        None => app.route("/", get(|| std::future::ready(Html(BUILTIN_PAGE)))),
    };
    axum::serve(listener, app).await
}

/// Each node's status in order; a node that does not answer is reported
/// with its URL and why, so the page can show it as down.
async fn all_status(urls: &[String]) -> Vec<Value> {
    let mut out = Vec::with_capacity(urls.len());
    for u in urls {
        out.push(match http::get(u, "/status").await {
            Ok(body) => serde_json::from_str(&body).unwrap_or(Value::Null),
            Err(e) => json!({"url": u, "error": e}),
        });
    }
    out
}
