//! The routes of `raftkv cluster`'s web port that concern its nodes as
//! processes: `/cluster.json` (the nodes, their stream URLs and states) and
//! `POST /api/nodes/{id}/{action}` (crash, restart, pause, resume, isolate,
//! rejoin; see [`crate::supervisor`]).
//!
//! A control request is refused unless:
//! * the cluster runs on loopback (the supervisor and every node): the
//!   controls are for trying Raft out on one machine, not for operating one;
//! * its `Host` names a loopback address, so a page on another site that
//!   rebinds its DNS name to 127.0.0.1 is still refused (its `Host` is its
//!   own name);
//! * its `Origin`, if it has one (a browser always sends it on a POST), is
//!   the page's own origin or one of the configuration's `allowed_origins`;
//! * with `[[tokens]]` in the configuration, it carries an `admin` token
//!   (`Authorization: Bearer`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::auth::{Denied, Role, Tokens};
use crate::supervisor::{ActError, Action, Supervisor};

/// What the control routes need.
#[derive(Clone, Debug)]
pub struct Controls {
    /// The nodes' processes; `None`: controls are off (see `off_because`).
    pub supervisor: Option<Arc<Supervisor>>,
    /// Why the controls are off, when they are.
    pub off_because: Option<String>,
    /// Origins a control request may come from: the page's own and the
    /// configuration's `allowed_origins`.
    pub origins: Vec<String>,
    /// The cluster's client tokens (controls need `admin` when any exist).
    pub tokens: Arc<Tokens>,
    /// The nodes (id, base URL), for `/cluster.json` when controls are off.
    pub nodes: Vec<(u64, String)>,
}

/// The routes, to merge into the demo page's server.
pub fn router(c: Controls) -> Router {
    Router::new()
        .route("/cluster.json", get(cluster_json))
        .route("/api/nodes/{id}/{action}", post(act))
        .with_state(Arc::new(c))
}

async fn cluster_json(State(c): State<Arc<Controls>>) -> Response {
    let nodes = match &c.supervisor {
        Some(s) => s.nodes().await.into_iter().map(|n| serde_json::to_value(n).unwrap_or_default()).collect(),
        None => c.nodes.iter().map(|(id, url)| json!({"id": id, "url": url, "state": "unknown"})).collect::<Vec<_>>(),
    };
    let actions: Vec<&str> = Action::ALL.iter().map(|(n, _)| *n).collect();
    Json(json!({
        "nodes": nodes,
        "stream": "/live",
        "controls": c.supervisor.is_some(),
        "controls_off_because": c.off_because,
        "actions": actions,
        "auth": c.tokens.enabled(),
    }))
    .into_response()
}

async fn act(
    State(c): State<Arc<Controls>>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = admit(&c, &headers) {
        return refusal;
    }
    let Some(sup) = &c.supervisor else {
        let why = c.off_because.clone().unwrap_or_default();
        return refuse(StatusCode::FORBIDDEN, format!("the controls are off: {why}"));
    };
    let Ok(id) = id.parse::<u64>() else {
        return refuse(StatusCode::BAD_REQUEST, format!("{id:?} is not a node id"));
    };
    let Some(a) = Action::parse(&action) else {
        let names: Vec<&str> = Action::ALL.iter().map(|(n, _)| *n).collect();
        return refuse(StatusCode::BAD_REQUEST, format!("no action {action:?} (one of: {})", names.join(", ")));
    };
    match sup.act(id, a).await {
        Ok(info) => Json(info).into_response(),
        Err(e @ ActError::UnknownNode(_)) => refuse(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ ActError::Conflict(_)) => refuse(StatusCode::CONFLICT, e.to_string()),
        Err(e @ ActError::Failed(_)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The Host, Origin and token checks of the module's documentation.
#[allow(clippy::result_large_err)]
fn admit(c: &Controls, headers: &HeaderMap) -> Result<(), Response> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !is_loopback_host(host) {
        tracing::warn!(host, "refused a control request for a host name that is not loopback");
        return Err(refuse(StatusCode::FORBIDDEN, format!("host {host:?} is not a loopback address")));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !c.origins.iter().any(|o| o == origin) {
            tracing::warn!(origin, "refused a control request from a page of another origin");
            return Err(refuse(StatusCode::FORBIDDEN, format!("origin {origin:?} may not use the controls")));
        }
    }
    match c.tokens.from_headers(headers) {
        Ok(p) if p.role >= Role::Admin => Ok(()),
        Ok(p) => {
            Err(refuse(StatusCode::FORBIDDEN, format!("token {:?} (role {}) is not admin", p.name, p.role.as_str())))
        }
        Err(d) => {
            let why = match d {
                Denied::Missing => "no token",
                Denied::Unknown => "an unknown token",
            };
            Err((
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({"ok": false, "error": format!("the controls need an admin token (Authorization: Bearer): {why}")})),
            )
                .into_response())
        }
    }
}

/// Whether a `Host` header (`name[:port]`) names this machine's loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"ok": false, "error": message}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass() {
        for h in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST", "[::1]:8080", "127.3.2.1"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["", "evil.example:8080", "10.0.0.1:8080", "127.0.0.1.evil.example", "[::2]:80"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
