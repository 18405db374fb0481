//! The public client protocol (DESIGN.md §6) and its mapping onto raft-core.
//!
//! A client opens a WebSocket at `/client` on any node. Text frames carry one
//! JSON object each; binary frames carry the same [`Request`] and [`Response`]
//! types as postcard behind a 4-byte magic (`RKVC`) and a version byte. `id` is
//! the client's own request number, echoed in the reply; replies may come in
//! any order.
//!
//! ```text
//! {"id":1,"op":"register"}                                   -> {"id":1,"ok":true,"session":17}
//! {"id":2,"op":"put","session":17,"seq":1,"ack":1,"key":"k","value":"v"}   -> {"id":2,"ok":true}
//! {"id":3,"op":"append","session":17,"seq":2,"ack":2,"key":"k","value":"w"}-> {"id":3,"ok":true}
//! {"id":4,"op":"cas","session":17,"seq":3,"ack":3,"key":"k","expect":"vw","value":"x"}
//!                                           -> {"id":4,"ok":true,"swapped":true}
//!                                           (or "swapped":false,"current":<value or null>)
//! {"id":5,"op":"delete","session":17,"seq":4,"ack":4,"key":"k"}  -> {"id":5,"ok":true,"existed":true}
//! {"id":6,"op":"get","key":"k"}                              -> {"id":6,"ok":true,"value":null}
//! {"id":7,"op":"keepalive","session":17,"ack":5}             -> {"id":7,"ok":true}
//! errors: {"id":N,"ok":false,"error":"not_leader","leader":{"id":2,"addr":"ws://127.0.0.1:7002"}}
//! ```
//!
//! Input is checked strictly: unknown ops and fields, missing fields, wrong
//! types, integers of 2^53 or more, oversize keys and values all get
//! `bad_request` with a message, and the connection stays open.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use raft_core::codec::{decode_with_header, encode_with_header};
use raft_core::kv::{KvOp, KvOutput, MAX_KEY_LEN, MAX_VALUE_LEN};
use raft_core::{ClientError, ClientReply, ClientRequest, NodeId};

/// Magic number of binary client frames.
pub const CLIENT_MAGIC: [u8; 4] = *b"RKVC";
/// Version of the binary client frame format.
pub const CLIENT_VERSION: u8 = 1;
/// Integers in the protocol stay below this, so JavaScript reads them exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
/// WebSocket read buffer for client connections, at both ends. Requests and
/// most replies are small; tungstenite zero-fills the free part of its read
/// buffer before every read, so its default of 128 KiB would cost more per
/// request than the request itself. (Bigger frames are read into a buffer of
/// their own size.)
pub const READ_BUFFER: usize = 8 * 1024;

/// A client request: the client's id for it and the operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the reply.
    pub id: u64,
    /// What to do.
    pub op: Op,
}

/// An operation. Writes name their session, their sequence number within it,
/// and `ack`, the lowest sequence number whose reply the client still awaits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // the fields are the protocol's, documented in the README
pub enum Op {
    /// Open a session.
    Register,
    /// Set a key.
    Put { session: u64, seq: u64, ack: u64, key: String, value: String },
    /// Append to a key's value (creating it).
    Append { session: u64, seq: u64, ack: u64, key: String, value: String },
    /// Compare-and-swap; `expect: None` means "the key is absent".
    Cas { session: u64, seq: u64, ack: u64, key: String, expect: Option<String>, value: String },
    /// Remove a key.
    Delete { session: u64, seq: u64, ack: u64, key: String },
    /// Linearizable read.
    Get { key: String },
    /// Keep an idle session alive.
    KeepAlive { session: u64, ack: u64 },
}

/// The kind of an operation, which decides how its reply is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum OpKind {
    Register,
    Put,
    Append,
    Cas,
    Delete,
    Get,
    KeepAlive,
}

impl Op {
    /// Its kind.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Register => OpKind::Register,
            Op::Put { .. } => OpKind::Put,
            Op::Append { .. } => OpKind::Append,
            Op::Cas { .. } => OpKind::Cas,
            Op::Delete { .. } => OpKind::Delete,
            Op::Get { .. } => OpKind::Get,
            Op::KeepAlive { .. } => OpKind::KeepAlive,
        }
    }

    /// Checks integer ranges and size limits (the same for JSON and binary).
    pub fn validate(&self) -> Result<(), String> {
        let ints: &[(&str, u64)] = match self {
            Op::Put { session, seq, ack, .. }
            | Op::Append { session, seq, ack, .. }
            | Op::Cas { session, seq, ack, .. }
            | Op::Delete { session, seq, ack, .. } => &[("session", *session), ("seq", *seq), ("ack", *ack)],
            Op::KeepAlive { session, ack } => &[("session", *session), ("ack", *ack)],
            Op::Register | Op::Get { .. } => &[],
        };
        for (name, v) in ints {
            if *v > MAX_SAFE_INTEGER {
                return Err(format!("\"{name}\" must be below 2^53"));
            }
        }
        let (key, values): (Option<&str>, Vec<&str>) = match self {
            Op::Put { key, value, .. } | Op::Append { key, value, .. } => (Some(key), vec![value]),
            Op::Cas { key, expect, value, .. } => {
                (Some(key), expect.iter().map(String::as_str).chain([value.as_str()]).collect())
            }
            Op::Delete { key, .. } | Op::Get { key } => (Some(key), vec![]),
            Op::Register | Op::KeepAlive { .. } => (None, vec![]),
        };
        if key.is_some_and(|k| k.len() > MAX_KEY_LEN) {
            return Err(format!("key longer than {MAX_KEY_LEN} bytes"));
        }
        if values.iter().any(|v| v.len() > MAX_VALUE_LEN) {
            return Err(format!("value longer than {MAX_VALUE_LEN} bytes"));
        }
        Ok(())
    }

    /// The raft-core request carrying this operation.
    pub fn to_client_request(&self) -> ClientRequest {
        let write = |session: &u64, seq: &u64, ack: &u64, op: KvOp| ClientRequest::Write {
            session: *session,
            seq: *seq,
            ack: *ack,
            command: op.encode(),
        };
        match self {
            Op::Register => ClientRequest::Register,
            Op::Put { session, seq, ack, key, value } => {
                write(session, seq, ack, KvOp::Put { key: key.clone(), value: value.clone() })
            }
            Op::Append { session, seq, ack, key, value } => {
                write(session, seq, ack, KvOp::Append { key: key.clone(), value: value.clone() })
            }
            Op::Cas { session, seq, ack, key, expect, value } => {
                write(session, seq, ack, KvOp::Cas { key: key.clone(), expect: expect.clone(), value: value.clone() })
            }
            Op::Delete { session, seq, ack, key } => write(session, seq, ack, KvOp::Delete { key: key.clone() }),
            Op::Get { key } => ClientRequest::Read { query: KvOp::Get { key: key.clone() }.encode() },
            Op::KeepAlive { session, ack } => ClientRequest::KeepAlive { session: *session, ack: *ack },
        }
    }
}

/// A reply. `id` is `None` only when the request was too broken to carry one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: Option<u64>,
    /// The outcome.
    pub result: Result<Success, Failure>,
}

/// A successful outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Success {
    /// `register`: the new session.
    Registered {
        /// Its id.
        session: u64,
    },
    /// `put`, `append`, `keepalive`.
    Done,
    /// `cas`.
    Cas {
        /// Whether the value was swapped.
        swapped: bool,
        /// When not swapped: the value found (`None`: absent).
        current: Option<String>,
    },
    /// `delete`.
    Deleted {
        /// Whether the key existed.
        existed: bool,
    },
    /// `get` (`None`: the key is absent).
    Value(Option<String>),
}

/// A failed outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What went wrong.
    pub error: ErrorCode,
    /// For `not_leader` and `unknown_outcome`: the leader, if known.
    pub leader: Option<LeaderHint>,
    /// For `bad_request` (and sometimes others): why.
    pub message: Option<String>,
}

/// Where the leader is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderHint {
    /// Its node id.
    pub id: NodeId,
    /// Its base URL (`ws://host:port`; the client path is `/client`).
    pub addr: String,
}

/// The protocol's error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// Not the leader; the command was not accepted.
    NotLeader,
    /// A limit is full; the command was not accepted.
    Busy,
    /// The session is gone; an earlier attempt of this write may or may not have applied.
    SessionExpired,
    /// `seq` is below the session's ack.
    StaleSeq,
    /// Malformed or oversize request.
    BadRequest,
    /// The write may have applied or may still apply: retry with the same session and seq.
    UnknownOutcome,
}

impl ErrorCode {
    /// The code's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::Busy => "busy",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::StaleSeq => "stale_seq",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOutcome => "unknown_outcome",
        }
    }

    /// The code of a name.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        [
            ErrorCode::NotLeader,
            ErrorCode::Busy,
            ErrorCode::SessionExpired,
            ErrorCode::StaleSeq,
            ErrorCode::BadRequest,
            ErrorCode::UnknownOutcome,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

impl Failure {
    /// A `bad_request` with a message.
    pub fn bad_request(message: impl Into<String>) -> Failure {
        Failure { error: ErrorCode::BadRequest, leader: None, message: Some(message.into()) }
    }

    /// Maps a raft-core error; `addr_of` turns a node id into its URL.
    pub fn from_error(e: ClientError, addr_of: impl Fn(NodeId) -> Option<String>) -> Failure {
        let hint = |h: Option<NodeId>| h.and_then(|id| addr_of(id).map(|addr| LeaderHint { id, addr }));
        let code = ErrorCode::parse(e.code()).unwrap_or(ErrorCode::BadRequest);
        match e {
            ClientError::NotLeader { leader_hint } | ClientError::UnknownOutcome { leader_hint } => {
                Failure { error: code, leader: hint(leader_hint), message: None }
            }
            ClientError::BadRequest(m) => Failure::bad_request(m),
            _ => Failure { error: code, leader: None, message: None },
        }
    }
}

/// Reads a raft-core reply to an operation of kind `kind`.
pub fn outcome(
    kind: OpKind,
    reply: ClientReply,
    addr_of: impl Fn(NodeId) -> Option<String>,
) -> Result<Success, Failure> {
    let output = |bytes: &[u8]| KvOutput::decode(bytes).map_err(|_| Failure::bad_request("unreadable output"));
    match reply {
        ClientReply::Rejected(e) => Err(Failure::from_error(e, addr_of)),
        ClientReply::Registered { session } => Ok(Success::Registered { session }),
        ClientReply::KeptAlive => Ok(Success::Done),
        ClientReply::Written { output: bytes } | ClientReply::Read { output: bytes } => match (kind, output(&bytes)?) {
            (OpKind::Put | OpKind::Append, KvOutput::Written) => Ok(Success::Done),
            (OpKind::Cas, KvOutput::Cas { swapped, current }) => Ok(Success::Cas { swapped, current }),
            (OpKind::Delete, KvOutput::Deleted { existed }) => Ok(Success::Deleted { existed }),
            (OpKind::Get, KvOutput::Value(v)) => Ok(Success::Value(v)),
            _ => Err(Failure::bad_request("the state machine refused the command")),
        },
    }
}

// ----------------------------------------------------------------------
// JSON
// ----------------------------------------------------------------------

/// A request that could not be read: the id if one was found, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRequest {
    /// The request's id, if it had a valid one.
    pub id: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl BadRequest {
    /// The reply to send.
    pub fn response(self) -> Response {
        Response { id: self.id, result: Err(Failure::bad_request(self.message)) }
    }
}

struct Fields<'a> {
    obj: &'a Map<String, Value>,
    op: &'a str,
}

impl Fields<'_> {
    fn get(&self, name: &str) -> Result<&Value, String> {
        self.obj.get(name).ok_or_else(|| format!("op \"{}\" needs the field \"{name}\"", self.op))
    }
    fn int(&self, name: &str) -> Result<u64, String> {
        match self.get(name)?.as_u64() {
            Some(v) if v <= MAX_SAFE_INTEGER => Ok(v),
            _ => Err(format!("\"{name}\" must be an integer from 0 to 2^53-1")),
        }
    }
    fn string(&self, name: &str) -> Result<String, String> {
        match self.get(name)? {
            Value::String(s) => Ok(s.clone()),
            _ => Err(format!("\"{name}\" must be a string")),
        }
    }
    fn string_or_null(&self, name: &str) -> Result<Option<String>, String> {
        match self.get(name)? {
            Value::String(s) => Ok(Some(s.clone())),
            Value::Null => Ok(None),
            _ => Err(format!("\"{name}\" must be a string or null")),
        }
    }
    fn only(&self, allowed: &[&str]) -> Result<(), String> {
        for k in self.obj.keys() {
            if k != "id" && k != "op" && !allowed.contains(&k.as_str()) {
                return Err(format!("unknown field \"{k}\" for op \"{}\"", self.op));
            }
        }
        Ok(())
    }
}

/// Parses one JSON text frame.
pub fn parse_json_request(text: &str) -> Result<Request, BadRequest> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| BadRequest { id: None, message: format!("malformed JSON: {e}") })?;
    let Value::Object(obj) = value else {
        return Err(BadRequest { id: None, message: "a request must be a JSON object".into() });
    };
    let id = match obj.get("id") {
        None => return Err(BadRequest { id: None, message: "missing \"id\"".into() }),
        Some(v) => match v.as_u64() {
            Some(id) if id <= MAX_SAFE_INTEGER => id,
            _ => return Err(BadRequest { id: None, message: "\"id\" must be an integer from 0 to 2^53-1".into() }),
        },
    };
    let fail = |message: String| BadRequest { id: Some(id), message };
    let op = match obj.get("op") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(fail("\"op\" must be a string".into())),
        None => return Err(fail("missing \"op\"".into())),
    };
    let f = Fields { obj: &obj, op };
    let parsed = (|| -> Result<Op, String> {
        Ok(match op {
            "register" => {
                f.only(&[])?;
                Op::Register
            }
            "put" | "append" => {
                f.only(&["session", "seq", "ack", "key", "value"])?;
                let (session, seq, ack) = (f.int("session")?, f.int("seq")?, f.int("ack")?);
                let (key, value) = (f.string("key")?, f.string("value")?);
                if op == "put" {
                    Op::Put { session, seq, ack, key, value }
                } else {
                    Op::Append { session, seq, ack, key, value }
                }
            }
            "cas" => {
                f.only(&["session", "seq", "ack", "key", "expect", "value"])?;
                Op::Cas {
                    session: f.int("session")?,
                    seq: f.int("seq")?,
                    ack: f.int("ack")?,
                    key: f.string("key")?,
                    expect: f.string_or_null("expect")?,
                    value: f.string("value")?,
                }
            }
            "delete" => {
                f.only(&["session", "seq", "ack", "key"])?;
                Op::Delete { session: f.int("session")?, seq: f.int("seq")?, ack: f.int("ack")?, key: f.string("key")? }
            }
            "get" => {
                f.only(&["key"])?;
                Op::Get { key: f.string("key")? }
            }
            "keepalive" => {
                f.only(&["session", "ack"])?;
                Op::KeepAlive { session: f.int("session")?, ack: f.int("ack")? }
            }
            other => return Err(format!("unknown op {other:?}")),
        })
    })()
    .map_err(fail)?;
    parsed.validate().map_err(fail)?;
    Ok(Request { id, op: parsed })
}

/// The JSON text of a reply.
pub fn response_to_json(r: &Response) -> String {
    let mut obj = Map::new();
    obj.insert("id".into(), r.id.map_or(Value::Null, Value::from));
    match &r.result {
        Ok(s) => {
            obj.insert("ok".into(), Value::Bool(true));
            match s {
                Success::Registered { session } => {
                    obj.insert("session".into(), json!(session));
                }
                Success::Done => {}
                Success::Cas { swapped, current } => {
                    obj.insert("swapped".into(), json!(swapped));
                    if !swapped {
                        obj.insert("current".into(), json!(current));
                    }
                }
                Success::Deleted { existed } => {
                    obj.insert("existed".into(), json!(existed));
                }
                Success::Value(v) => {
                    obj.insert("value".into(), json!(v));
                }
            }
        }
        Err(f) => {
            obj.insert("ok".into(), Value::Bool(false));
            obj.insert("error".into(), json!(f.error.as_str()));
            if matches!(f.error, ErrorCode::NotLeader | ErrorCode::UnknownOutcome) {
                let leader = f.leader.as_ref().map(|l| json!({"id": l.id, "addr": l.addr}));
                obj.insert("leader".into(), leader.unwrap_or(Value::Null));
            }
            if let Some(m) = &f.message {
                obj.insert("message".into(), json!(m));
            }
        }
    }
    Value::Object(obj).to_string()
}

/// The JSON text of a request (for clients that speak JSON).
pub fn request_to_json(r: &Request) -> String {
    let mut v = match &r.op {
        Op::Register => json!({"op": "register"}),
        Op::Put { session, seq, ack, key, value } => {
            json!({"op":"put","session":session,"seq":seq,"ack":ack,"key":key,"value":value})
        }
        Op::Append { session, seq, ack, key, value } => {
            json!({"op":"append","session":session,"seq":seq,"ack":ack,"key":key,"value":value})
        }
        Op::Cas { session, seq, ack, key, expect, value } => {
            json!({"op":"cas","session":session,"seq":seq,"ack":ack,"key":key,"expect":expect,"value":value})
        }
        Op::Delete { session, seq, ack, key } => json!({"op":"delete","session":session,"seq":seq,"ack":ack,"key":key}),
        Op::Get { key } => json!({"op":"get","key":key}),
        Op::KeepAlive { session, ack } => json!({"op":"keepalive","session":session,"ack":ack}),
    };
    v["id"] = json!(r.id);
    v.to_string()
}

// ----------------------------------------------------------------------
// Binary (postcard)
// ----------------------------------------------------------------------

/// Encodes a request as a binary frame.
pub fn encode_request(r: &Request) -> Vec<u8> {
    encode_with_header(&CLIENT_MAGIC, CLIENT_VERSION, r)
}

/// Decodes a binary request frame (size limit `max_len`).
pub fn decode_request(bytes: &[u8], max_len: usize) -> Result<Request, BadRequest> {
    let r: Request = decode_with_header(&CLIENT_MAGIC, CLIENT_VERSION, bytes, max_len)
        .map_err(|e| BadRequest { id: None, message: format!("binary frame does not decode: {e}") })?;
    if r.id > MAX_SAFE_INTEGER {
        return Err(BadRequest { id: None, message: "\"id\" must be below 2^53".into() });
    }
    r.op.validate().map_err(|message| BadRequest { id: Some(r.id), message })?;
    Ok(r)
}

/// Encodes a reply as a binary frame.
pub fn encode_response(r: &Response) -> Vec<u8> {
    encode_with_header(&CLIENT_MAGIC, CLIENT_VERSION, r)
}

/// Decodes a binary reply frame.
pub fn decode_response(bytes: &[u8], max_len: usize) -> Result<Response, String> {
    decode_with_header(&CLIENT_MAGIC, CLIENT_VERSION, bytes, max_len).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(text: &str) -> BadRequest {
        parse_json_request(text).unwrap_err()
    }

    #[test]
    fn the_design_examples_parse() {
        let r = parse_json_request(r#"{"id":1,"op":"register"}"#).unwrap();
        assert_eq!(r, Request { id: 1, op: Op::Register });
        let r = parse_json_request(
            r#"{"id":4,"op":"cas","session":17,"seq":3,"ack":3,"key":"k","expect":null,"value":"x"}"#,
        )
        .unwrap();
        assert_eq!(r.op, Op::Cas { session: 17, seq: 3, ack: 3, key: "k".into(), expect: None, value: "x".into() });
        let r = parse_json_request(r#"{"id":7,"op":"keepalive","session":17,"ack":5}"#).unwrap();
        assert_eq!(r.op, Op::KeepAlive { session: 17, ack: 5 });
        for op in [
            Op::Put { session: 1, seq: 2, ack: 2, key: "k".into(), value: "v".into() },
            Op::Cas { session: 1, seq: 2, ack: 2, key: "k".into(), expect: Some("".into()), value: "v".into() },
            Op::Get { key: "k".into() },
            Op::Delete { session: 1, seq: 2, ack: 1, key: "k".into() },
        ] {
            let r = Request { id: 9, op };
            assert_eq!(parse_json_request(&request_to_json(&r)).unwrap(), r);
            assert_eq!(decode_request(&encode_request(&r), 1 << 20).unwrap(), r);
        }
    }

    #[test]
    fn bad_requests_say_why() {
        assert!(bad("{nope").message.contains("malformed JSON"));
        assert!(bad("[1]").message.contains("object"));
        assert_eq!(bad(r#"{"op":"get","key":"k"}"#).id, None);
        let b = bad(r#"{"id":3,"op":"frobnicate"}"#);
        assert_eq!((b.id, b.message.contains("unknown op")), (Some(3), true));
        assert!(bad(r#"{"id":3,"op":"put","session":1,"seq":1,"ack":1,"key":"k"}"#).message.contains("\"value\""));
        assert!(bad(r#"{"id":3,"op":"put","session":"1","seq":1,"ack":1,"key":"k","value":"v"}"#)
            .message
            .contains("integer"));
        assert!(bad(r#"{"id":3,"op":"put","session":1.5,"seq":1,"ack":1,"key":"k","value":"v"}"#)
            .message
            .contains("integer"));
        assert!(bad(r#"{"id":3,"op":"get","key":5}"#).message.contains("string"));
        assert!(bad(r#"{"id":3,"op":"get","key":"k","extra":1}"#).message.contains("unknown field"));
        assert!(bad(r#"{"id":3,"op":"cas","session":1,"seq":1,"ack":1,"key":"k","value":"v"}"#)
            .message
            .contains("expect"));
        assert!(bad(r#"{"id":9007199254740992,"op":"register"}"#).message.contains("2^53"));
        let big = format!(r#"{{"id":3,"op":"get","key":"{}"}}"#, "k".repeat(MAX_KEY_LEN + 1));
        assert!(bad(&big).message.contains("key longer"));
        assert!(decode_request(b"RKVC\x01\xff\xff", 100).is_err());
        assert!(decode_request(b"garbage", 100).is_err());
    }

    #[test]
    fn replies_render_as_designed() {
        let addr = |id: NodeId| Some(format!("ws://127.0.0.1:700{id}"));
        let r = |id, result| response_to_json(&Response { id: Some(id), result });
        assert_eq!(r(1, Ok(Success::Registered { session: 17 })), r#"{"id":1,"ok":true,"session":17}"#);
        assert_eq!(r(2, Ok(Success::Done)), r#"{"id":2,"ok":true}"#);
        assert_eq!(r(4, Ok(Success::Cas { swapped: true, current: None })), r#"{"id":4,"ok":true,"swapped":true}"#);
        assert_eq!(
            r(4, Ok(Success::Cas { swapped: false, current: None })),
            r#"{"id":4,"ok":true,"swapped":false,"current":null}"#
        );
        assert_eq!(r(5, Ok(Success::Deleted { existed: true })), r#"{"id":5,"ok":true,"existed":true}"#);
        assert_eq!(r(6, Ok(Success::Value(None))), r#"{"id":6,"ok":true,"value":null}"#);
        let nl = Failure::from_error(ClientError::NotLeader { leader_hint: Some(2) }, addr);
        assert_eq!(
            r(8, Err(nl)),
            r#"{"id":8,"ok":false,"error":"not_leader","leader":{"id":2,"addr":"ws://127.0.0.1:7002"}}"#
        );
        let nl = Failure::from_error(ClientError::NotLeader { leader_hint: None }, addr);
        assert_eq!(r(8, Err(nl)), r#"{"id":8,"ok":false,"error":"not_leader","leader":null}"#);
        let b = BadRequest { id: None, message: "x".into() }.response();
        assert_eq!(response_to_json(&b), r#"{"id":null,"ok":false,"error":"bad_request","message":"x"}"#);
    }
}
