//! The peer handshake: each side of a new `/raft` link proves it knows the
//! cluster's secret, over the other side's fresh nonce.
//!
//! Every handshake frame is binary: `RKVH`, version 2, postcard [`Handshake`].
//!
//! ```text
//! dialer                                  acceptor
//!   Hello { cluster, from, to, nonce_d, inc_d }  ->
//!                                         <- Challenge { cluster, from, nonce_a, inc_a,
//!                                              proof_a = HMAC(secret, "accept", nonce_d, cluster,
//!                                                             (acceptor, inc_a), (dialer, inc_d)) }
//!   Proof { proof_d = HMAC(secret, "dial", nonce_a, cluster, (dialer, inc_d), (acceptor, inc_a)) } ->
//!                                         <- Welcome
//! ```
//!
//! Both sides then derive the link key, HMAC(secret, "link", both nonces,
//! cluster, (dialer, inc_d), (acceptor, inc_a)): every batch frame after
//! `Welcome` carries a MAC under it (see `peer::batch`), so a relay that
//! passed the handshake cannot rewrite, replay or drop what follows.
//!
//! Each proof covers both ends' incarnations (the random number of a data
//! directory's life, `Config::inc` in raft-core): a node that names one
//! incarnation in its `Hello` but proves another is refused, and the
//! acceptor drops the link if a message on it names another incarnation
//! (`Message::from_inc`) than the one proven, so what raft-core decides by
//! incarnation (who may vote as a bound member) rests on the secret.
//!
//! Each side proves the shared secret over the other's fresh random nonce, so
//! the secret never crosses the wire and a recorded handshake cannot be
//! replayed. The role label keeps a node from being used as an oracle that
//! answers its own challenge (a reflection attack). A node that names another
//! cluster, the wrong node or an unknown peer, or cannot prove the secret, is
//! refused and logged.
//!
//! Both sides run over any stream and sink of byte frames, so the tests drive
//! them over an in-memory pair and the links over WebSockets.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use raft_core::codec::{decode_with_header, encode_with_header};
use raft_core::NodeId;

use crate::config::Config;

/// Magic of handshake frames.
pub const HANDSHAKE_MAGIC: [u8; 4] = *b"RKVH";
/// Version of the handshake (2: both incarnations in the frames and proofs).
pub const HANDSHAKE_VERSION: u8 = 2;
/// Largest handshake frame accepted.
const MAX_HANDSHAKE_FRAME: usize = 1024;
/// How long each handshake step may take by default (`handshake_timeout_ms`
/// in the configuration sets it for a node).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The error of a handshake step that got no answer in time.
pub const HANDSHAKE_TIMED_OUT: &str = "handshake timed out";

/// The handshake's frames. postcard numbers the variants by position —
/// `Hello` 0, `Challenge` 1, `Proof` 2, `Welcome` 3 — so new ones go at the
/// end (`tests/golden.rs` pins the bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Handshake {
    /// Dialer: who it is, whom it wants, and its challenge.
    Hello {
        /// Cluster id.
        cluster: String,
        /// The dialer's node id.
        from: NodeId,
        /// The node the dialer means to reach.
        to: NodeId,
        /// Fresh random challenge.
        nonce: [u8; 32],
        /// The dialer's incarnation (its data directory's life).
        inc: u64,
    },
    /// Acceptor: its challenge and its proof over the dialer's.
    Challenge {
        /// Cluster id.
        cluster: String,
        /// The acceptor's node id.
        from: NodeId,
        /// Fresh random challenge.
        nonce: [u8; 32],
        /// HMAC over the dialer's nonce.
        proof: [u8; 32],
        /// The acceptor's incarnation.
        inc: u64,
    },
    /// Dialer: its proof over the acceptor's challenge.
    Proof {
        /// HMAC over the acceptor's nonce.
        proof: [u8; 32],
    },
    /// Acceptor: the link is open.
    Welcome,
}

/// What both sides need to run a handshake.
#[derive(Clone, Debug)]
pub struct PeerAuth {
    cluster: String,
    secret: Vec<u8>,
    me: NodeId,
    /// This node's incarnation, which its proofs cover.
    inc: u64,
}

/// One end of a link as its proofs name it: a node and its incarnation.
type End = (NodeId, u64);

impl PeerAuth {
    /// From the configuration, for node `me` of incarnation `inc`, with the
    /// TOML file's cluster name (tests; nodes use [`PeerAuth::for_cluster`]
    /// with the UUID).
    pub fn new(cfg: &Config, me: NodeId, inc: u64) -> Self {
        PeerAuth::for_cluster(&cfg.cluster_id, &cfg.secret, me, inc)
    }

    /// For node `me` of the cluster named `cluster` — its UUID from the
    /// data directory's identity, so a cluster restored from a backup (a new
    /// UUID) and the one it came from never link up — with `secret`; `inc`:
    /// this node's incarnation, which its link proofs cover.
    pub fn for_cluster(cluster: &str, secret: &str, me: NodeId, inc: u64) -> Self {
        PeerAuth { cluster: cluster.to_string(), secret: secret.as_bytes().to_vec(), me, inc }
    }

    /// This node's incarnation.
    pub fn inc(&self) -> u64 {
        self.inc
    }

    /// The cluster this proves membership of.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// A proof for the `/join` exchange: HMAC under the secret over a role,
    /// the other side's nonce, the cluster and both ends.
    /// (The joiner's incarnation is not yet anyone's binding: 0 on both ends.)
    pub fn prove_join(&self, role: &str, nonce: &[u8; 32], prover: NodeId, verifier: NodeId) -> [u8; 32] {
        self.prove(role, nonce, (prover, 0), (verifier, 0))
    }

    /// Checks a proof of [`PeerAuth::prove_join`] in constant time.
    pub fn check_join(&self, role: &str, nonce: &[u8; 32], prover: NodeId, verifier: NodeId, proof: &[u8; 32]) -> bool {
        self.check(role, nonce, (prover, 0), (verifier, 0), proof)
    }

    /// The node this is (the acceptor's side checks that every message of an
    /// authenticated link is addressed to it).
    pub fn me(&self) -> NodeId {
        self.me
    }

    fn mac(&self, role: &str, nonce: &[u8; 32], prover: End, verifier: End) -> Hmac<Sha256> {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        // postcard gives an unambiguous encoding of the fields.
        let input = postcard::to_allocvec(&(role, nonce, &self.cluster, prover, verifier)).unwrap_or_default();
        mac.update(&input);
        mac
    }

    fn prove(&self, role: &str, nonce: &[u8; 32], prover: End, verifier: End) -> [u8; 32] {
        self.mac(role, nonce, prover, verifier).finalize().into_bytes().into()
    }

    /// The key of the link a handshake between `dialer` and `acceptor` over
    /// these two nonces opened: only the two ends can compute it, and each
    /// handshake gives a fresh one. It covers both nodes' incarnations.
    fn link_key(&self, dialer_nonce: &[u8; 32], acceptor_nonce: &[u8; 32], dialer: End, acceptor: End) -> [u8; 32] {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        let input = postcard::to_allocvec(&("link", dialer_nonce, acceptor_nonce, &self.cluster, dialer, acceptor))
            .unwrap_or_default();
        mac.update(&input);
        mac.finalize().into_bytes().into()
    }

    fn check(&self, role: &str, nonce: &[u8; 32], prover: End, verifier: End, proof: &[u8; 32]) -> bool {
        // verify_slice compares in constant time.
        self.mac(role, nonce, prover, verifier).verify_slice(proof).is_ok()
    }
}

/// A fresh random nonce.
pub fn nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut n) {
        // Without randomness the handshake would be replayable: stop.
        panic!("no system randomness for a handshake nonce: {e}");
    }
    n
}

impl Handshake {
    /// The frame carrying this handshake message.
    pub fn encode(&self) -> Vec<u8> {
        encode_with_header(&HANDSHAKE_MAGIC, HANDSHAKE_VERSION, self)
    }

    /// Reads a handshake frame.
    pub fn decode(bytes: &[u8]) -> Result<Handshake, String> {
        decode_with_header(&HANDSHAKE_MAGIC, HANDSHAKE_VERSION, bytes, MAX_HANDSHAKE_FRAME)
            .map_err(|e| format!("bad handshake frame: {e}"))
    }
}

/// What the acceptor's side of a handshake proved: who dialled, as which
/// incarnation, and the link's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The dialer's node id.
    pub peer: NodeId,
    /// The dialer's incarnation: every message on the link must carry it.
    pub inc: u64,
    /// The key of the link's frame MACs (see `peer::batch`).
    pub key: [u8; 32],
}

/// The acceptor's side of the handshake over any stream of binary frames.
/// Returns the authenticated peer, its incarnation and the link's key.
pub async fn accept_handshake<S, E>(ws: &mut S, auth: &PeerAuth, step: Duration) -> Result<Accepted, String>
where
    S: futures_util::Stream<Item = Result<Vec<u8>, E>> + futures_util::Sink<Vec<u8>> + Unpin,
    E: std::fmt::Display,
{
    let hello = recv_hs(ws, step).await?;
    let Handshake::Hello { cluster, from, to, nonce: their_nonce, inc: their_inc } = hello else {
        return Err("expected Hello".into());
    };
    if cluster != auth.cluster {
        return Err(format!("peer says it is in cluster {cluster:?}, not {:?}", auth.cluster));
    }
    if to != auth.me {
        return Err(format!("peer {from} wanted node {to}, this is node {}", auth.me));
    }
    // Any node that proves the secret may link, in the configuration or
    // not: a node being added must be reached before its change commits,
    // and a node hears senders outside its configuration (dissertation
    // §4.1); what a message may do is raft-core's to decide.
    if from == 0 || from == auth.me {
        return Err(format!("peer claims to be node {from}"));
    }
    if their_inc == 0 || their_inc > crate::protocol::MAX_SAFE_INTEGER {
        return Err(format!("node {from} claims incarnation {their_inc} (incarnations are 1 to 2^53-1)"));
    }
    let (me, dialer) = ((auth.me, auth.inc), (from, their_inc));
    let my_nonce = nonce();
    let proof = auth.prove("accept", &their_nonce, me, dialer);
    let challenge =
        Handshake::Challenge { cluster: auth.cluster.clone(), from: auth.me, nonce: my_nonce, proof, inc: auth.inc };
    ws.send(challenge.encode()).await.map_err(|_| "connection lost".to_string())?;
    let Handshake::Proof { proof } = recv_hs(ws, step).await? else {
        return Err("expected Proof".into());
    };
    if !auth.check("dial", &my_nonce, dialer, me, &proof) {
        // The proof covers the incarnation the Hello named: a node that
        // names one and proves another fails here, as does a wrong secret.
        return Err(format!(
            "node {from} failed to prove the shared secret as incarnation {their_inc} (a wrong secret, or another \
             incarnation than the one it named)"
        ));
    }
    ws.send(Handshake::Welcome.encode()).await.map_err(|_| "connection lost".to_string())?;
    Ok(Accepted { peer: from, inc: their_inc, key: auth.link_key(&their_nonce, &my_nonce, dialer, me) })
}

/// The dialer's side of the handshake, to reach node `to`. Returns the
/// link's key and the acceptor's (proven) incarnation.
pub async fn dial_handshake<S, E>(
    ws: &mut S,
    auth: &PeerAuth,
    to: NodeId,
    step: Duration,
) -> Result<([u8; 32], u64), String>
where
    S: futures_util::Stream<Item = Result<Vec<u8>, E>> + futures_util::Sink<Vec<u8>> + Unpin,
    E: std::fmt::Display,
{
    let my_nonce = nonce();
    let hello = Handshake::Hello { cluster: auth.cluster.clone(), from: auth.me, to, nonce: my_nonce, inc: auth.inc };
    ws.send(hello.encode()).await.map_err(|_| "connection lost".to_string())?;
    let Handshake::Challenge { cluster, from, nonce: their_nonce, proof, inc: their_inc } = recv_hs(ws, step).await?
    else {
        return Err("expected Challenge".into());
    };
    if cluster != auth.cluster || from != to {
        return Err(format!("reached node {from} of cluster {cluster:?}, wanted node {to} of {:?}", auth.cluster));
    }
    let (me, acceptor) = ((auth.me, auth.inc), (to, their_inc));
    if !auth.check("accept", &my_nonce, acceptor, me, &proof) {
        return Err(format!(
            "node {to} failed to prove the shared secret as incarnation {their_inc} for this node's incarnation {}",
            auth.inc
        ));
    }
    let proof = auth.prove("dial", &their_nonce, me, acceptor);
    ws.send(Handshake::Proof { proof }.encode()).await.map_err(|_| "connection lost".to_string())?;
    match recv_hs(ws, step).await? {
        Handshake::Welcome => Ok((auth.link_key(&my_nonce, &their_nonce, me, acceptor), their_inc)),
        _ => Err("expected Welcome".into()),
    }
}

async fn recv_hs<S, E>(ws: &mut S, step: Duration) -> Result<Handshake, String>
where
    S: futures_util::Stream<Item = Result<Vec<u8>, E>> + Unpin,
    E: std::fmt::Display,
{
    match tokio::time::timeout(step, ws.next()).await {
        Err(_) => Err(HANDSHAKE_TIMED_OUT.into()),
        Ok(None) => Err("connection closed during the handshake".into()),
        Ok(Some(Err(e))) => Err(format!("connection error during the handshake: {e}")),
        Ok(Some(Ok(bytes))) => Handshake::decode(&bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// One end of an in-memory duplex of byte frames.
    struct Duplex {
        rx: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
        tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    }

    fn pair() -> (Duplex, Duplex) {
        let (atx, arx) = tokio::sync::mpsc::unbounded_channel();
        let (btx, brx) = tokio::sync::mpsc::unbounded_channel();
        (Duplex { rx: brx, tx: atx }, Duplex { rx: arx, tx: btx })
    }

    impl futures_util::Stream for Duplex {
        type Item = Result<Vec<u8>, String>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.rx.poll_recv(cx).map(|o| o.map(Ok))
        }
    }

    impl futures_util::Sink<Vec<u8>> for Duplex {
        type Error = String;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(self: Pin<&mut Self>, item: Vec<u8>) -> Result<(), String> {
            self.tx.send(item).map_err(|e| e.to_string())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), String>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Node `me` of incarnation `100 + me`.
    fn auth(secret: &str, me: NodeId) -> PeerAuth {
        let mut cfg = Config::default_local();
        cfg.secret = secret.into();
        PeerAuth::new(&cfg, me, 100 + me)
    }

    #[tokio::test]
    async fn handshake_succeeds_with_the_secret_and_fails_without() {
        let (good1, good2, bad1) = (auth("s3cret-s3cret", 1), auth("s3cret-s3cret", 2), auth("wrong-wrong", 1));

        let (mut a, mut b) = pair();
        let (x, y) = tokio::join!(
            dial_handshake(&mut a, &good1, 2, HANDSHAKE_TIMEOUT),
            accept_handshake(&mut b, &good2, HANDSHAKE_TIMEOUT)
        );
        let ((kd, acceptor_inc), acc) = (x.unwrap(), y.unwrap());
        assert_eq!((acc.peer, acc.inc, kd, acceptor_inc), (1, 101, acc.key, 102), "both ends derive the same link key");
        let (mut a, mut b) = pair();
        let (x, y) = tokio::join!(
            dial_handshake(&mut a, &good1, 2, HANDSHAKE_TIMEOUT),
            accept_handshake(&mut b, &good2, HANDSHAKE_TIMEOUT)
        );
        let k2 = x.unwrap().0;
        assert_eq!(k2, y.unwrap().key);
        assert_ne!(k2, kd, "every handshake gives a fresh key");

        // The dialer sees that an acceptor with another secret cannot prove it.
        let (a, mut b) = pair();
        let bad = &bad1;
        let dialer = async move {
            let mut a = a;
            // Hanging up at once spares the acceptor its timeout.
            dial_handshake(&mut a, bad, 2, HANDSHAKE_TIMEOUT).await
        };
        let (x, _) = tokio::join!(dialer, accept_handshake(&mut b, &good2, HANDSHAKE_TIMEOUT));
        assert!(x.unwrap_err().contains("failed to prove"));

        // A dialer with the wrong secret that goes on anyway is refused.
        let (mut a, mut b) = pair();
        let dialer = async {
            let hello = Handshake::Hello { cluster: "raftkv-local".into(), from: 1, to: 2, nonce: [7u8; 32], inc: 101 };
            a.send(hello.encode()).await.ok();
            let Ok(Handshake::Challenge { nonce, .. }) = recv_hs(&mut a, HANDSHAKE_TIMEOUT).await else {
                panic!("no challenge")
            };
            a.send(Handshake::Proof { proof: bad1.prove("dial", &nonce, (1, 101), (2, 102)) }.encode()).await.ok();
            a
        };
        let (_a, y) = tokio::join!(dialer, accept_handshake(&mut b, &good2, HANDSHAKE_TIMEOUT));
        assert!(y.unwrap_err().contains("failed to prove the shared secret"));

        // Reflection: the acceptor's own proof over a nonce is no dialer proof.
        let (mut a, mut b) = pair();
        let dialer = async {
            let hello = Handshake::Hello { cluster: "raftkv-local".into(), from: 1, to: 2, nonce: [7u8; 32], inc: 101 };
            a.send(hello.encode()).await.ok();
            let Ok(Handshake::Challenge { nonce, .. }) = recv_hs(&mut a, HANDSHAKE_TIMEOUT).await else {
                panic!("no challenge")
            };
            // What node 2 would answer if asked to accept a dialer with this nonce.
            a.send(Handshake::Proof { proof: good2.prove("accept", &nonce, (2, 102), (1, 101)) }.encode()).await.ok();
            a
        };
        let (_a, y) = tokio::join!(dialer, accept_handshake(&mut b, &good2, HANDSHAKE_TIMEOUT));
        assert!(y.is_err());

        // Wrong cluster, wrong recipient, unknown node, no incarnation.
        for (cluster, from, to, inc) in
            [("other", 1, 2, 101), ("raftkv-local", 1, 3, 101), ("raftkv-local", 9, 2, 101), ("raftkv-local", 1, 2, 0)]
        {
            let (mut a, mut b) = pair();
            let hello = Handshake::Hello { cluster: cluster.into(), from, to, nonce: [1u8; 32], inc };
            a.send(hello.encode()).await.ok();
            assert!(accept_handshake(&mut b, &good2, HANDSHAKE_TIMEOUT).await.is_err());
        }
    }

    /// A node that knows the secret but names another incarnation than the
    /// one its proof covers (a relay rewriting the Hello, or a node posing
    /// as another life of node 1) is refused, and the error says so; an
    /// acceptor that answers for another incarnation than the one the
    /// dialer's Hello reached is refused by the dialer.
    #[tokio::test]
    async fn the_proofs_cover_the_incarnations() {
        let (good1, good2) = (auth("s3cret-s3cret", 1), auth("s3cret-s3cret", 2));
        let (mut a, mut b) = pair();
        let dialer = async {
            // Says incarnation 555, proves its real one (101).
            let hello = Handshake::Hello { cluster: "raftkv-local".into(), from: 1, to: 2, nonce: [7u8; 32], inc: 555 };
            a.send(hello.encode()).await.ok();
            let Ok(Handshake::Challenge { nonce, inc, .. }) = recv_hs(&mut a, HANDSHAKE_TIMEOUT).await else {
                panic!("no challenge")
            };
            assert_eq!(inc, 102, "the acceptor names its own incarnation");
            a.send(Handshake::Proof { proof: good1.prove("dial", &nonce, (1, 101), (2, inc)) }.encode()).await.ok();
            a
        };
        let (_a, y) = tokio::join!(dialer, accept_handshake(&mut b, &good2, HANDSHAKE_TIMEOUT));
        let e = y.unwrap_err();
        assert!(e.contains("incarnation 555") && e.contains("node 1"), "{e}");

        // The acceptor's proof covers the dialer's incarnation too: a Hello
        // rewritten on the way makes the dialer refuse the answer.
        let (mut a, mut b) = pair();
        let relay = async {
            let Some(Ok(bytes)) = b.next().await else { panic!("no hello") };
            let Ok(Handshake::Hello { cluster, from, to, nonce, .. }) = Handshake::decode(&bytes) else {
                panic!("not a hello")
            };
            let forged = Handshake::Hello { cluster, from, to, nonce, inc: 777 };
            let mut c = pair();
            c.0.send(forged.encode()).await.ok();
            let acc = accept_handshake(&mut c.1, &good2, Duration::from_millis(200));
            let fwd = async {
                // Pass the acceptor's challenge back to the dialer.
                if let Some(Ok(ch)) = c.0.next().await {
                    b.send(ch).await.ok();
                }
            };
            let _ = tokio::join!(acc, fwd);
        };
        let (x, _) = tokio::join!(dial_handshake(&mut a, &good1, 2, Duration::from_millis(500)), relay);
        assert!(x.unwrap_err().contains("incarnation"));
    }
}
