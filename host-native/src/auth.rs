//! Client authentication: bearer tokens from the configuration, each with a
//! role, stored only as their SHA-256.
//!
//! A client presents its token in the WebSocket upgrade (or on `/status` and
//! `/metrics`) as `Authorization: Bearer TOKEN`; a browser, which cannot set
//! headers on a WebSocket, offers the subprotocols `raftkv` and
//! `bearer.TOKEN` instead, and the node answers with `raftkv`. Tokens are 32
//! random bytes in base64url ([`new_token`]), so one SHA-256 is as good as a
//! slow password hash and the configuration can be read by anyone who may
//! read the data directory without giving a token away.
//!
//! Roles are ordered: `read` reads and asks `/status` and `/metrics`;
//! `write` also opens sessions and writes; `admin` also runs membership,
//! snapshot and transfer commands ([`required_role`] decides per request).
//! With no `[[tokens]]` in the configuration authentication is off: every
//! connection is the `anonymous` principal with every role, and the node
//! says so at start.

use axum::http::{header, HeaderMap};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::config::Config;
pub use crate::config::{Role, TokenEntry};
use crate::protocol::{AdminOp, Op};

/// Who is on a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (`anonymous` when authentication is off).
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// Why a connection was not let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No token was presented.
    Missing,
    /// The token is not one of the configuration's.
    Unknown,
}

/// The tokens a node accepts.
#[derive(Clone, Debug)]
pub struct Tokens {
    entries: Vec<(String, Role, [u8; 32])>,
}

/// The SHA-256 of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh token from the OS's random source: 32 bytes, base64url.
pub fn new_token() -> Result<String, String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| format!("no system randomness: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Equal without an early exit, so the time taken says nothing of where two
/// hashes differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    /// The tokens of `cfg` (validated with the rest of it by
    /// [`Config::validate`]; an entry whose hash is not hex is skipped).
    pub fn new(cfg: &Config) -> Tokens {
        Tokens {
            entries: cfg
                .tokens
                .iter()
                .filter_map(|t| Some((t.name.clone(), t.role, unhex(&t.sha256.to_ascii_lowercase())?)))
                .collect(),
        }
    }

    /// Whether authentication is on (the configuration names tokens).
    pub fn enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    /// Who presents `token`.
    pub fn principal(&self, token: Option<&str>) -> Result<Principal, Denied> {
        if !self.enabled() {
            return Ok(Principal { name: "anonymous".into(), role: Role::Admin });
        }
        let token = token.ok_or(Denied::Missing)?;
        let h = token_hash(token);
        // Every entry is compared, so the time taken does not depend on which matched.
        let mut found = None;
        for (name, role, want) in &self.entries {
            if same(&h, want) {
                found = Some(Principal { name: name.clone(), role: *role });
            }
        }
        found.ok_or(Denied::Unknown)
    }

    /// Who is on a request with these headers.
    pub fn from_headers(&self, headers: &HeaderMap) -> Result<Principal, Denied> {
        self.principal(presented_token(headers).as_deref())
    }
}

/// The subprotocol a browser offers beside its `bearer.` one, and the one the
/// node answers with.
pub const SUBPROTOCOL: &str = "raftkv";
/// The prefix of the subprotocol that carries a browser's token.
pub const BEARER_PROTOCOL_PREFIX: &str = "bearer.";

/// The token in `Authorization: Bearer …`, or else in a `bearer.…`
/// WebSocket subprotocol.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(t) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some(t.trim().to_string());
        }
    }
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| p.strip_prefix(BEARER_PROTOCOL_PREFIX).map(str::to_string))
}

/// The role a request needs. Every op is named here, so a new op does not
/// compile until someone decides who may run it.
pub fn required_role(op: &Op) -> Role {
    match op {
        Op::Read { .. } | Op::Watch(_) | Op::CancelWatch { .. } => Role::Read,
        Op::Register | Op::Write { .. } | Op::KeepAlive { .. } => Role::Write,
        Op::Admin(AdminOp::MemberList) => Role::Read,
        Op::Admin(
            AdminOp::MemberAdd { .. }
            | AdminOp::MemberPromote { .. }
            | AdminOp::MemberRemove { .. }
            | AdminOp::MemberReplace { .. }
            | AdminOp::TransferLeader { .. }
            | AdminOp::SnapshotSave,
        ) => Role::Admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_with(tokens: &[(&str, Role, &str)]) -> Config {
        let mut c = Config::default_local();
        c.tokens = tokens
            .iter()
            .map(|(n, r, t)| TokenEntry { name: n.to_string(), role: *r, sha256: hex(&token_hash(t)) })
            .collect();
        c
    }

    #[test]
    fn tokens_name_principals_and_nothing_else_does() {
        let off = Tokens::new(&Config::default_local());
        assert!(!off.enabled());
        assert_eq!(off.principal(None).unwrap().role, Role::Admin);
        let t = Tokens::new(&cfg_with(&[("ro", Role::Read, "tok-read"), ("ops", Role::Admin, "tok-admin")]));
        assert!(t.enabled());
        assert_eq!(t.principal(Some("tok-read")), Ok(Principal { name: "ro".into(), role: Role::Read }));
        assert_eq!(t.principal(Some("tok-admin")).unwrap().role, Role::Admin);
        assert_eq!(t.principal(Some("tok-other")), Err(Denied::Unknown));
        assert_eq!(t.principal(None), Err(Denied::Missing));
        assert!(Role::Read < Role::Write && Role::Write < Role::Admin);
    }

    #[test]
    fn the_token_comes_from_the_header_or_the_subprotocol() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_token(&h), None);
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, "raftkv, bearer.abc_-1".parse().unwrap());
        assert_eq!(presented_token(&h).as_deref(), Some("abc_-1"));
        h.insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(presented_token(&h).as_deref(), Some("xyz"));
    }

    #[test]
    fn entries_are_checked_and_tokens_are_fresh() {
        let good = cfg_with(&[("a", Role::Read, "x"), ("b", Role::Write, "y")]);
        assert!(good.validate().is_ok());
        assert_eq!(Config::parse(&good.to_toml()).unwrap(), good, "tokens survive the TOML roundtrip");
        let dup = cfg_with(&[("a", Role::Read, "x"), ("a", Role::Write, "y")]);
        assert!(dup.validate().unwrap_err().0.contains("unique"));
        let same_hash = cfg_with(&[("a", Role::Read, "x"), ("b", Role::Write, "x")]);
        assert!(same_hash.validate().unwrap_err().0.contains("same hash"));
        let mut bad = good.clone();
        bad.tokens[0].sha256 = "zz".into();
        assert!(bad.validate().unwrap_err().0.contains("hex"));
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }
}
