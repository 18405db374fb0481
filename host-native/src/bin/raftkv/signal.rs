//! The signals that stop `raftkv node` and `raftkv cluster`.

/// Resolves on Ctrl-C (SIGINT), SIGTERM or SIGHUP: a `cluster` killed any of
/// these ways still stops its nodes.
pub async fn stop() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
}
