//! `/join`: how a node with an empty data directory enters a cluster.
//!
//! A node started with `--join ws://ANY-MEMBER` (or with a TOML file but no
//! identity yet) knows the shared secret and nothing else. It asks any
//! member; both sides prove the secret over the other's fresh nonce, as the
//! peer handshake does, so neither a stranger nor a fake member learns or
//! changes anything:
//!
//! ```text
//!   joiner                                          member
//!   Hello { id, nonce_j }                       ->
//!                                               <-  Challenge { cluster UUID, member id, nonce_m,
//!                                                               proof_m = HMAC(secret, "join-accept", nonce_j, ...) }
//!   Request { proof_j = HMAC(secret, "join", nonce_m, ...), url, inc } ->
//!                                               <-  Answer { settings, bootstrap configuration, result }
//! ```
//!
//! The member hands the request to its node task: the leader admits a new
//! node as a learner (bound to the incarnation it sent) and records its URL
//! in the replicated address map; a member that is not the leader answers
//! `not_leader` with the leader's URL, and the joiner asks there. The answer
//! always carries the cluster's settings (the TOML file without its secret)
//! and the bootstrap configuration every node must share.
//!
//! Frames are binary, postcard behind `RKVN` and a version byte, at most
//! [`MAX_JOIN_FRAME`] bytes; each step has the handshake timeout.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};

use raft_core::codec::{decode_with_header, encode_with_header};
use raft_core::NodeId;

use crate::identity::BoundMember;
use crate::peer::handshake::{nonce, PeerAuth};
use crate::protocol::{ErrorCode, Failure, MembersView};

/// Magic number of `/join` frames.
pub const JOIN_MAGIC: [u8; 4] = *b"RKVN";
/// Version of the `/join` frame format.
pub const JOIN_VERSION: u8 = 1;
/// Largest `/join` frame (the answer carries the TOML settings).
pub const MAX_JOIN_FRAME: usize = 256 * 1024;

/// One step of the exchange.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum JoinMsg {
    /// Joiner: who it is and its nonce.
    Hello {
        /// The joining node's id.
        id: NodeId,
        /// Fresh random bytes for the member to prove the secret over.
        nonce: [u8; 32],
    },
    /// Member: the cluster, and its proof.
    Challenge {
        /// The cluster's UUID.
        cluster: String,
        /// The member's id.
        member: NodeId,
        /// Fresh random bytes for the joiner to prove the secret over.
        nonce: [u8; 32],
        /// HMAC over the joiner's nonce.
        proof: [u8; 32],
    },
    /// Joiner: its proof and what it asks.
    Request {
        /// HMAC over the member's nonce.
        proof: [u8; 32],
        /// The joiner's URL.
        url: String,
        /// The joiner's incarnation.
        inc: u64,
    },
    /// Member: the answer.
    Answer(JoinAnswer),
}

/// What a member answers a proven join request with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinAnswer {
    /// The cluster's UUID.
    pub cluster: String,
    /// The cluster's name.
    pub cluster_name: String,
    /// The cluster's settings as TOML, the secret left out.
    pub settings: String,
    /// The configuration the cluster was bootstrapped with.
    pub bootstrap: Vec<BoundMember>,
    /// The configuration after admission, or why not (a `not_leader` names
    /// the leader to ask instead).
    pub result: Result<MembersView, Failure>,
}

impl JoinMsg {
    /// The frame carrying this message.
    pub fn encode(&self) -> Vec<u8> {
        encode_with_header(&JOIN_MAGIC, JOIN_VERSION, self)
    }

    /// Reads a frame.
    pub fn decode(bytes: &[u8]) -> Result<JoinMsg, String> {
        decode_with_header(&JOIN_MAGIC, JOIN_VERSION, bytes, MAX_JOIN_FRAME).map_err(|e| format!("bad join frame: {e}"))
    }
}

async fn recv<S, E>(ws: &mut S, step: Duration) -> Result<JoinMsg, String>
where
    S: futures_util::Stream<Item = Result<Vec<u8>, E>> + Unpin,
    E: std::fmt::Display,
{
    match tokio::time::timeout(step, ws.next()).await {
        Err(_) => Err("the other side did not answer in time".into()),
        Ok(None) => Err("connection closed".into()),
        Ok(Some(Err(e))) => Err(e.to_string()),
        Ok(Some(Ok(b))) if b.len() > MAX_JOIN_FRAME => Err("join frame too large".into()),
        Ok(Some(Ok(b))) => JoinMsg::decode(&b),
    }
}

async fn send<S>(ws: &mut S, m: &JoinMsg) -> Result<(), String>
where
    S: futures_util::Sink<Vec<u8>> + Unpin,
{
    ws.send(m.encode()).await.map_err(|_| "send failed".to_string())
}

/// A proven join request, for the member's node task.
#[derive(Clone, Debug)]
pub struct Proven {
    /// The joining node.
    pub id: NodeId,
    /// Its URL.
    pub url: String,
    /// Its incarnation.
    pub inc: u64,
}

/// The member's side, up to the proven request: runs the challenge over
/// `ws` and returns what the joiner asked. The caller answers with
/// [`answer`].
pub async fn accept<S, E>(ws: &mut S, auth: &PeerAuth, step: Duration) -> Result<Proven, String>
where
    S: futures_util::Stream<Item = Result<Vec<u8>, E>> + futures_util::Sink<Vec<u8>> + Unpin,
    E: std::fmt::Display,
{
    let JoinMsg::Hello { id, nonce: their } = recv(ws, step).await? else {
        return Err("expected Hello".into());
    };
    if id == 0 || id == auth.me() || id > crate::protocol::MAX_SAFE_INTEGER {
        return Err(format!("a node cannot join as node {id}"));
    }
    let mine = nonce();
    let proof = auth.prove_join("join-accept", &their, auth.me(), id);
    send(ws, &JoinMsg::Challenge { cluster: auth.cluster().to_string(), member: auth.me(), nonce: mine, proof })
        .await?;
    let JoinMsg::Request { proof, url, inc } = recv(ws, step).await? else {
        return Err("expected Request".into());
    };
    if !auth.check_join("join", &mine, id, auth.me(), &proof) {
        return Err(format!("node {id} failed to prove the shared secret"));
    }
    crate::protocol::check_url(&url)?;
    if inc == 0 || inc > crate::protocol::MAX_SAFE_INTEGER {
        return Err("the incarnation must be from 1 to 2^53-1".into());
    }
    Ok(Proven { id, url, inc })
}

/// The member's answer.
pub async fn answer<S>(ws: &mut S, a: JoinAnswer) -> Result<(), String>
where
    S: futures_util::Sink<Vec<u8>> + Unpin,
{
    send(ws, &JoinMsg::Answer(a)).await
}

/// The joiner's side over `ws`: node `id` at `url` with incarnation `inc`,
/// proving `secret`. Returns the member's answer.
pub async fn request<S, E>(
    ws: &mut S,
    id: NodeId,
    url: &str,
    inc: u64,
    secret: &str,
    step: Duration,
) -> Result<JoinAnswer, String>
where
    S: futures_util::Stream<Item = Result<Vec<u8>, E>> + futures_util::Sink<Vec<u8>> + Unpin,
    E: std::fmt::Display,
{
    let mine = nonce();
    send(ws, &JoinMsg::Hello { id, nonce: mine }).await?;
    let JoinMsg::Challenge { cluster, member, nonce: theirs, proof } = recv(ws, step).await? else {
        return Err("expected Challenge".into());
    };
    let auth = PeerAuth::for_cluster(&cluster, secret, id, inc);
    if !auth.check_join("join-accept", &mine, member, id, &proof) {
        return Err(format!("node {member} failed to prove the shared secret (is --secret right?)"));
    }
    let proof = auth.prove_join("join", &theirs, id, member);
    send(ws, &JoinMsg::Request { proof, url: url.to_string(), inc }).await?;
    match recv(ws, step).await? {
        JoinMsg::Answer(a) if a.cluster == cluster => Ok(a),
        JoinMsg::Answer(_) => Err("the answer names another cluster".into()),
        _ => Err("expected Answer".into()),
    }
}

/// Whether a join answer says to ask the leader instead, and where.
pub fn redirect(a: &JoinAnswer) -> Option<Option<String>> {
    match &a.result {
        Err(Failure { error: ErrorCode::NotLeader, leader, .. }) => Some(leader.as_ref().map(|l| l.addr.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_roundtrip_and_garbage_is_refused() {
        let m = JoinMsg::Request { proof: [1; 32], url: "ws://x:1".into(), inc: 9 };
        assert!(matches!(JoinMsg::decode(&m.encode()), Ok(JoinMsg::Request { inc: 9, .. })));
        assert!(JoinMsg::decode(b"RKVN\x01\xff").is_err());
        assert!(JoinMsg::decode(b"nope").is_err());
    }

    #[test]
    fn proofs_bind_the_secret_the_roles_and_the_nodes() {
        let a = PeerAuth::for_cluster("u", "secret-one", 1, 11);
        let b = PeerAuth::for_cluster("u", "secret-two", 4, 44);
        let n = [7; 32];
        let p = a.prove_join("join", &n, 4, 1);
        assert!(a.check_join("join", &n, 4, 1, &p));
        assert!(!b.check_join("join", &n, 4, 1, &p), "another secret");
        assert!(!a.check_join("join-accept", &n, 4, 1, &p), "another role");
        assert!(!a.check_join("join", &n, 5, 1, &p), "another node");
    }
}
