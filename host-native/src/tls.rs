//! TLS (rustls, with ring): the node's server side on every route, mutual TLS
//! between peers with certificates of the cluster's CA, the client side for
//! the library, the CLI and `http`, and the development CA `raftkv certs`
//! writes.
//!
//! A node's certificate names it `node-ID.raftkv` (besides `localhost` and
//! its listen address, which clients check), so a peer's certificate must
//! name the node id its handshake claims ([`cert_names_node`]). Client
//! certificates are optional at the TLS layer — clients authenticate with
//! tokens — and required on `/raft`.
//!
//! [`dial`] opens a TCP connection for a `ws://` or `wss://` URL, with TLS
//! for the latter; everything that connects out uses it.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use raft_core::NodeId;

use crate::config::Config;

/// The name a node's certificate carries for its peers.
pub fn node_name(id: NodeId) -> String {
    format!("node-{id}.raftkv")
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    let certs = certs.map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{}: not a PEM key: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no private key in it", path.display()))
}

/// The CA certificates of `path` as a root store.
pub fn roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(path)? {
        roots.add(c).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// A client configuration trusting the CA in `ca` (for the library and CLI).
pub fn client_config(ca: &Path) -> Result<Arc<ClientConfig>, String> {
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(ca)?)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// What a node of a TLS cluster holds: its server side, and the client side
/// of its peer links (presenting its own certificate).
#[derive(Clone)]
pub struct NodeTls {
    /// Accepts TLS on the node's port.
    pub acceptor: TlsAcceptor,
    /// For dialling peers (mutual TLS).
    pub peers: Arc<ClientConfig>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeTls")
    }
}

/// Loads node `id`'s certificate and key and the CA from the configuration's
/// `[tls]`; `Ok(None)` when the configuration has none.
pub fn load_node(cfg: &Config, id: NodeId) -> Result<Option<NodeTls>, String> {
    let Some(t) = &cfg.tls else { return Ok(None) };
    let roots = Arc::new(roots(&t.ca)?);
    let cert = t.dir.join(format!("node-{id}.pem"));
    let key = t.dir.join(format!("node-{id}-key.pem"));
    let (certs, key) = (read_certs(&cert)?, read_key(&key)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        // Clients prove themselves with tokens; peers are checked on /raft.
        .allow_unauthenticated()
        .build()
        .map_err(|e| e.to_string())?;
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(|e| format!("node {id}'s certificate and key: {e}"))?;
    let peers = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| format!("node {id}'s certificate and key: {e}"))?;
    Ok(Some(NodeTls { acceptor: TlsAcceptor::from(Arc::new(server)), peers: Arc::new(peers) }))
}

/// Whether a certificate (already verified against the CA) names node `id`.
pub fn cert_names_node(cert: &CertificateDer<'_>, id: NodeId) -> bool {
    let Ok(ee) = webpki::EndEntityCert::try_from(cert) else { return false };
    let Ok(name) = ServerName::try_from(node_name(id)) else { return false };
    ee.verify_is_valid_for_subject_name(&name).is_ok()
}

/// A byte stream that is plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection made by [`dial`].
pub struct Stream {
    inner: Box<dyn Io>,
    /// The server's certificate (TLS only).
    pub server_cert: Option<CertificateDer<'static>>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tls::Stream")
    }
}

impl AsyncRead for Stream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The host, port and whether TLS is asked for, of a `ws://`, `wss://`,
/// `http://` or `https://` URL (or a bare `host:port`).
pub fn split_url(url: &str) -> Result<(String, u16, bool), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("wss://").or_else(|| url.strip_prefix("https://")) {
        (true, r)
    } else if let Some(r) = url.strip_prefix("ws://").or_else(|| url.strip_prefix("http://")) {
        (false, r)
    } else if url.contains("://") {
        return Err(format!("{url}: only ws://, wss://, http:// and https:// are spoken"));
    } else {
        (false, url)
    };
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = authority.rsplit_once(':').ok_or_else(|| format!("{url}: names no host:port"))?;
    let port: u16 = port.parse().map_err(|_| format!("{url}: bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    if host.is_empty() {
        return Err(format!("{url}: names no host"));
    }
    Ok((host, port, tls))
}

/// How [`dial_tuned`] sets up the TCP connection of a peer link, so a link
/// whose packets stop arriving is noticed by the kernel too, not only by
/// the link's pings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpTuning {
    /// A TCP connect that takes longer fails (a SYN into a partition is
    /// otherwise retried by the kernel for minutes, and the first retry
    /// after a heal may be seconds away).
    pub connect_timeout: Option<Duration>,
    /// `TCP_USER_TIMEOUT` (Linux): data unacknowledged this long closes the
    /// connection, instead of exponential retransmission back-off.
    pub user_timeout: Option<Duration>,
    /// Keepalive probes after this much idleness (whole seconds, at least 1),
    /// a third of it apart, three of them.
    pub keepalive: Option<Duration>,
    /// A TLS handshake that takes longer fails (a peer that accepts TCP and
    /// never answers must not hold the dialer).
    pub tls_timeout: Option<Duration>,
}

/// Why [`dial_tuned`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialError {
    /// Nothing answered within a timeout of [`TcpTuning`] (a partition, a
    /// peer that accepts and says nothing), as opposed to a refusal.
    pub timed_out: bool,
    /// What happened.
    pub message: String,
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Runs `fut` within `limit` (none: no limit); `what` names it in the error.
async fn within<T>(
    limit: Option<Duration>,
    what: String,
    fut: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, DialError> {
    let r = match limit {
        None => fut.await,
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r,
            Err(_) => return Err(DialError { timed_out: true, message: format!("{what}: no answer within {t:?}") }),
        },
    };
    r.map_err(|message| DialError { timed_out: false, message })
}

/// Sets what `tuning` asks on `tcp`; what the platform cannot do is left
/// out (the link's own pings still notice a dead peer).
fn tune(tcp: &TcpStream, tuning: &TcpTuning) {
    let sock = socket2::SockRef::from(tcp);
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    if let Some(t) = tuning.user_timeout {
        if let Err(e) = sock.set_tcp_user_timeout(Some(t)) {
            tracing::debug!(error = %e, "cannot set TCP_USER_TIMEOUT");
        }
    }
    if let Some(idle) = tuning.keepalive {
        let idle = idle.max(Duration::from_secs(1));
        let ka = socket2::TcpKeepalive::new().with_time(idle);
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux", target_os = "macos"))]
        let ka = ka.with_interval((idle / 3).max(Duration::from_secs(1))).with_retries(3);
        if let Err(e) = sock.set_tcp_keepalive(&ka) {
            tracing::debug!(error = %e, "cannot set TCP keepalive");
        }
    }
}

/// Connects to the server of `url`: TCP, and TLS (checked against `tls`'s
/// roots and the URL's host) for `wss://` and `https://`.
pub async fn dial(url: &str, tls: Option<&Arc<ClientConfig>>) -> Result<Stream, String> {
    dial_tuned(url, tls, &TcpTuning::default()).await.map_err(|e| e.message)
}

/// [`dial`], with the TCP connection set up as `tuning` says (peer links).
pub async fn dial_tuned(url: &str, tls: Option<&Arc<ClientConfig>>, tuning: &TcpTuning) -> Result<Stream, DialError> {
    let failed = |message: String| DialError { timed_out: false, message };
    let (host, port, wants_tls) = split_url(url).map_err(failed)?;
    let connect =
        async { TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("cannot connect to {url}: {e}")) };
    let tcp = within(tuning.connect_timeout, format!("cannot connect to {url}"), connect).await?;
    let _ = tcp.set_nodelay(true);
    tune(&tcp, tuning);
    if !wants_tls {
        return Ok(Stream { inner: Box::new(tcp), server_cert: None });
    }
    let cfg = tls.ok_or_else(|| failed(format!("{url} is TLS: give the cluster's CA (--ca, or [tls] in --config)")))?;
    let name = ServerName::try_from(host.clone()).map_err(|e| failed(format!("{url}: {e}")))?;
    let handshake =
        async { TlsConnector::from(cfg.clone()).connect(name, tcp).await.map_err(|e| format!("TLS with {url}: {e}")) };
    let s = within(tuning.tls_timeout, format!("TLS with {url}"), handshake).await?;
    let server_cert = s.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.clone().into_owned());
    Ok(Stream { inner: Box::new(s), server_cert })
}

/// A development CA and a certificate per node of `cfg`, as PEM files in
/// `dir`: `ca.pem`, `ca-key.pem`, `node-ID.pem`, `node-ID-key.pem`. Each node's
/// certificate names `node-ID.raftkv`, `localhost`, and its listen address
/// and URL host.
pub fn write_dev_certs(cfg: &Config, dir: &Path) -> Result<Vec<String>, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};
    let e = |e: rcgen::Error| e.to_string();
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, format!("raftkv development CA ({})", cfg.cluster_id));
    let ca_key = KeyPair::generate().map_err(e)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
    let mut written = Vec::new();
    let mut write = |name: String, text: String| -> Result<(), String> {
        let path = dir.join(&name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path.display().to_string());
        Ok(())
    };
    write("ca.pem".into(), ca_cert.pem())?;
    write("ca-key.pem".into(), ca_key.serialize_pem())?;
    for n in &cfg.nodes {
        let mut names = vec![node_name(n.id), "localhost".to_string()];
        if let Ok((host, _, _)) = split_url(&n.url()) {
            if host.parse::<std::net::IpAddr>().is_err() && !names.contains(&host) {
                names.push(host);
            }
        }
        let mut p = CertificateParams::new(names).map_err(e)?;
        p.distinguished_name.push(DnType::CommonName, node_name(n.id));
        p.subject_alt_names.push(SanType::IpAddress(n.listen.ip()));
        if let Ok((host, _, _)) = split_url(&n.url()) {
            if let Ok(ip) = host.parse::<std::net::IpAddr>() {
                if ip != n.listen.ip() {
                    p.subject_alt_names.push(SanType::IpAddress(ip));
                }
            }
        }
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(e)?;
        let cert = p.signed_by(&key, &ca_cert, &ca_key).map_err(e)?;
        write(format!("node-{}.pem", n.id), cert.pem())?;
        write(format!("node-{}-key.pem", n.id), key.serialize_pem())?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        assert_eq!(split_url("wss://127.0.0.1:7001").unwrap(), ("127.0.0.1".into(), 7001, true));
        assert_eq!(split_url("ws://localhost:7001/client").unwrap(), ("localhost".into(), 7001, false));
        assert_eq!(split_url("127.0.0.1:9").unwrap(), ("127.0.0.1".into(), 9, false));
        assert_eq!(split_url("ws://[::1]:9").unwrap(), ("::1".into(), 9, false));
        assert!(split_url("ftp://x:1").is_err());
        assert!(split_url("ws://nohost").is_err());
    }

    #[test]
    fn dev_certs_load_and_name_their_node() {
        let dir = std::env::temp_dir().join(format!("raftkv-certs-unit-{}", std::process::id()));
        let mut cfg = Config::default_local();
        write_dev_certs(&cfg, &dir).unwrap();
        cfg.tls = Some(crate::config::TlsConfig { ca: dir.join("ca.pem"), dir: dir.clone() });
        assert!(load_node(&cfg, 2).unwrap().is_some());
        let cert = read_certs(&dir.join("node-2.pem")).unwrap().remove(0);
        assert!(cert_names_node(&cert, 2));
        assert!(!cert_names_node(&cert, 3), "node 2's certificate does not name node 3");
        assert!(client_config(&dir.join("ca.pem")).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
