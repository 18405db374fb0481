//! The etcd side of `raftkv bench --target etcd`: the same closed-loop
//! driver as against raftkv ([`super::driver`]), speaking etcd's v3 API.
//!
//! * `--etcd-api grpc` (the default): etcd's native protocol, gRPC over
//!   HTTP/2 without TLS. One connection per client; with `--depth N`, N
//!   streams in flight on it. `etcdserverpb.KV/Put` and `KV/Range`, whose two
//!   messages are small enough to encode by hand (protobuf fields 1 `key` and
//!   2 `value`, both bytes). A Range without `serializable` is linearizable.
//! * `--etcd-api json`: the JSON gateway, `POST /v3/kv/put` and
//!   `/v3/kv/range` with base64 keys and values, over HTTP/1.1 keep-alive
//!   connections (HTTP/1.1 has no multiplexing: `--depth N` opens N
//!   connections per client). The gateway turns each request into a gRPC
//!   call inside etcd, so it costs etcd noticeably more CPU than gRPC.
//!
//! Requests go to the leader (found with `/v3/maintenance/status`), as
//! raftkv's clients do; `--etcd-spread` spreads the clients over every
//! endpoint instead (followers forward writes and ask the leader for reads).
//! Request bodies are built once per key before the run, so the load client
//! spends as little CPU as possible on etcd's behalf.

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use raftkv::ClientOptions;

use raft_core::kv::prefix_end;
use raftkv::protocol::MAX_SAFE_INTEGER;

use super::driver::{StartLine, Worker, Workset};
use super::settings::{EtcdApi, Workload, WATCH_PREFIX};

/// One etcd member the clients send to.
struct Endpoint {
    authority: String,
    host: HeaderValue,
    put_uri: Uri,
    get_uri: Uri,
}

/// Where the clients go and the request bodies of every key.
pub struct Setup {
    api: EtcdApi,
    endpoints: Vec<Endpoint>,
    put: Vec<Bytes>,
    get: Vec<Bytes>,
}

pub fn authority(addr: &str) -> String {
    addr.trim_start_matches("http://").trim_end_matches('/').to_string()
}

impl Setup {
    /// Finds the leader (unless `spread`) and builds the request bodies of
    /// `workload` (writes: put, or a txn of one comparison and one put, or
    /// a put under the watch prefix; reads: a get, or a prefix range).
    pub async fn new(
        addrs: &[String],
        api: EtcdApi,
        spread: bool,
        set: &Workset,
        workload: Workload,
    ) -> Result<Setup, String> {
        let all: Vec<String> = addrs.iter().map(|a| authority(a)).collect();
        let chosen = if spread { all } else { vec![find_leader(&all).await?] };
        let mut endpoints = Vec::new();
        for a in chosen {
            let write = if workload == Workload::Txn { "Txn" } else { "Put" };
            let (put, get) = match api {
                EtcdApi::Grpc => {
                    (format!("http://{a}/etcdserverpb.KV/{write}"), format!("http://{a}/etcdserverpb.KV/Range"))
                }
                EtcdApi::Json => (format!("/v3/kv/{}", write.to_lowercase()), "/v3/kv/range".to_string()),
            };
            let bad = |e: &dyn std::fmt::Display| format!("bad etcd endpoint {a:?}: {e}");
            endpoints.push(Endpoint {
                host: HeaderValue::from_str(&a).map_err(|e| bad(&e))?,
                put_uri: put.parse().map_err(|e| bad(&e))?,
                get_uri: get.parse().map_err(|e| bad(&e))?,
                authority: a,
            });
        }
        let (mut put, mut get) = (Vec::with_capacity(set.keys.len()), Vec::with_capacity(set.keys.len()));
        for k in &set.keys {
            let wk = if workload == Workload::Watch { format!("{WATCH_PREFIX}{k}") } else { k.clone() };
            // The range workload reads the keys sharing all but the last two digits.
            let (rk, end) = if workload == Workload::Range {
                let p = &k[..k.len().saturating_sub(2)];
                (p.to_string(), prefix_end(p))
            } else {
                (k.clone(), None)
            };
            match api {
                EtcdApi::Grpc => {
                    let mut m = Vec::with_capacity(wk.len() + set.value.len() + 8);
                    pb_bytes(1, wk.as_bytes(), &mut m);
                    pb_bytes(2, set.value.as_bytes(), &mut m);
                    if workload == Workload::Txn {
                        m = txn_message(&wk, &m);
                    }
                    put.push(grpc_frame(&m));
                    let mut m = Vec::with_capacity(rk.len() + 8);
                    pb_bytes(1, rk.as_bytes(), &mut m);
                    if let Some(end) = &end {
                        pb_bytes(2, end.as_bytes(), &mut m);
                    }
                    get.push(grpc_frame(&m));
                }
                EtcdApi::Json => {
                    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
                    let (key, value) = (b64(&wk), b64(&set.value));
                    put.push(Bytes::from(if workload == Workload::Txn {
                        format!(
                            "{{\"compare\":[{{\"result\":\"LESS\",\"target\":\"MOD\",\"key\":\"{key}\",\
                             \"mod_revision\":\"{MAX_SAFE_INTEGER}\"}}],\"success\":[{{\"request_put\":\
                             {{\"key\":\"{key}\",\"value\":\"{value}\"}}}}]}}"
                        )
                    } else {
                        format!("{{\"key\":\"{key}\",\"value\":\"{value}\"}}")
                    }));
                    get.push(Bytes::from(match &end {
                        Some(end) => format!("{{\"key\":\"{}\",\"range_end\":\"{}\"}}", b64(&rk), b64(end)),
                        None => format!("{{\"key\":\"{}\"}}", b64(&rk)),
                    }));
                }
            }
        }
        Ok(Setup { api, endpoints, put, get })
    }

    fn request(&self, ep: &Endpoint, write: bool, key: usize) -> Request<Full<Bytes>> {
        let (uri, body) = if write {
            (ep.put_uri.clone(), self.put[key].clone())
        } else {
            (ep.get_uri.clone(), self.get[key].clone())
        };
        let mut r = Request::new(Full::new(body));
        *r.method_mut() = hyper::Method::POST;
        *r.uri_mut() = uri;
        let h = r.headers_mut();
        match self.api {
            EtcdApi::Grpc => {
                h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                h.insert("te", HeaderValue::from_static("trailers"));
            }
            EtcdApi::Json => {
                h.insert(HOST, ep.host.clone());
                h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
        }
        r
    }
}

/// Appends protobuf field `field` of wire type 2 (bytes).
pub fn pb_bytes(field: u8, data: &[u8], out: &mut Vec<u8>) {
    out.push((field << 3) | 2);
    let mut n = data.len();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(data);
}

/// Appends protobuf field `field` of wire type 0 (varint).
pub fn pb_varint(field: u8, mut v: u64, out: &mut Vec<u8>) {
    out.push(field << 3);
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A `TxnRequest` whose one comparison always holds (`mod_revision(key) <
/// 2^53`, as raftkv's txn workload) and whose success is the `PutRequest`
/// `put`: compare = 1 (`Compare`: result 1 = LESS 2, target 2 = MOD 2, key
/// 3, mod_revision 6), success = 2 (`RequestOp`: request_put 2).
fn txn_message(key: &str, put: &[u8]) -> Vec<u8> {
    let mut cmp = Vec::new();
    pb_varint(1, 2, &mut cmp);
    pb_varint(2, 2, &mut cmp);
    pb_bytes(3, key.as_bytes(), &mut cmp);
    pb_varint(6, MAX_SAFE_INTEGER, &mut cmp);
    let mut op = Vec::new();
    pb_bytes(2, put, &mut op);
    let mut m = Vec::new();
    pb_bytes(1, &cmp, &mut m);
    pb_bytes(2, &op, &mut m);
    m
}

/// A gRPC message frame: not compressed, big-endian length, message.
pub fn grpc_frame(msg: &[u8]) -> Bytes {
    let mut f = Vec::with_capacity(5 + msg.len());
    f.push(0);
    f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    f.extend_from_slice(msg);
    Bytes::from(f)
}

async fn tcp(authority: &str) -> Result<TokioIo<TcpStream>, String> {
    let s = TcpStream::connect(authority).await.map_err(|e| format!("cannot connect to etcd at {authority}: {e}"))?;
    let _ = s.set_nodelay(true);
    Ok(TokioIo::new(s))
}

/// An HTTP connection to one member.
enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }
}

async fn connect(api: EtcdApi, authority: &str) -> Result<Sender, String> {
    let io = tcp(authority).await?;
    let fail = |e: hyper::Error| format!("HTTP handshake with etcd at {authority} failed: {e}");
    Ok(match api {
        EtcdApi::Json => {
            let (s, conn) = http1::handshake(io).await.map_err(fail)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Sender::H1(s)
        }
        EtcdApi::Grpc => {
            let (s, conn) = http2::handshake(TokioExecutor::new(), io).await.map_err(fail)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Sender::H2(s)
        }
    })
}

/// `depth` ways to send: one HTTP/2 connection shared by `depth` streams, or
/// `depth` HTTP/1.1 connections.
async fn connect_slots(api: EtcdApi, authority: &str, depth: usize) -> Result<Vec<Sender>, String> {
    let mut slots = Vec::with_capacity(depth);
    match api {
        EtcdApi::Grpc => {
            let Sender::H2(s) = connect(api, authority).await? else { unreachable!("gRPC runs on HTTP/2") };
            for _ in 0..depth {
                slots.push(Sender::H2(s.clone()));
            }
        }
        EtcdApi::Json => {
            for _ in 0..depth {
                slots.push(connect(api, authority).await?);
            }
        }
    }
    Ok(slots)
}

/// Sends one request and reads the whole answer; a gRPC call must end with
/// `grpc-status: 0`, a JSON one with HTTP 200.
async fn exchange(s: &mut Sender, req: Request<Full<Bytes>>, grpc: bool) -> Result<(), String> {
    let e = |e: hyper::Error| e.to_string();
    let resp = match s {
        Sender::H1(h) => {
            h.ready().await.map_err(e)?;
            h.send_request(req).await.map_err(e)?
        }
        Sender::H2(h) => {
            h.ready().await.map_err(e)?;
            h.send_request(req).await.map_err(e)?
        }
    };
    let status = resp.status();
    let header_code = resp.headers().get("grpc-status").cloned();
    let body = resp.into_body().collect().await.map_err(e)?;
    let code = body.trailers().and_then(|t| t.get("grpc-status").cloned()).or(header_code);
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body.to_bytes())));
    }
    if grpc && code.as_ref().map(HeaderValue::as_bytes) != Some(b"0") {
        return Err(format!("gRPC status {code:?}"));
    }
    Ok(())
}

/// One etcd client of the closed loop: up to `depth` requests in flight.
pub async fn client(
    c: usize,
    setup: std::sync::Arc<Setup>,
    mut w: Worker,
    depth: usize,
    opts: ClientOptions,
    start: StartLine,
) -> Worker {
    let ep = &setup.endpoints[c % setup.endpoints.len()];
    let grpc = setup.api == EtcdApi::Grpc;
    let mut idle = match connect_slots(setup.api, &ep.authority, depth).await {
        Ok(s) => s,
        Err(e) => {
            start.failed(e).await;
            return w;
        }
    };
    if !start.ready_and_wait(&mut w).await {
        return w;
    }
    let mut pending = FuturesUnordered::new();
    let mut more = true;
    loop {
        while more && !idle.is_empty() {
            let Some((write, key)) = w.next() else {
                more = false;
                break;
            };
            let Some(mut s) = idle.pop() else { break };
            let req = setup.request(ep, write, key);
            let started = Instant::now();
            let timeout = opts.timeout;
            pending.push(async move {
                let r = match tokio::time::timeout(timeout, exchange(&mut s, req, grpc)).await {
                    Ok(r) => r,
                    Err(_) => Err("no answer in time".to_string()),
                };
                (started, s, r)
            });
        }
        let Some((started, s, r)) = pending.next().await else { break };
        w.finish(started, r.is_ok());
        match r {
            Ok(()) => idle.push(s),
            Err(e) => {
                tracing::debug!(error = %e, "etcd request failed");
                if !s.is_closed() && !e.contains("in time") {
                    idle.push(s);
                } else if more {
                    // Replace the connection; without one the slot is gone.
                    match connect(setup.api, &ep.authority).await {
                        Ok(n) => idle.push(n),
                        Err(e) => tracing::warn!(error = %e, "an etcd bench connection is lost"),
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    w
}

/// Asks each member for its status and returns the leader's address.
async fn find_leader(all: &[String]) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::from("no member answered");
    while Instant::now() < deadline {
        for a in all {
            match member_status(a).await {
                Ok((me, leader)) if !me.is_empty() && me == leader => return Ok(a.clone()),
                Ok(_) => {}
                Err(e) => last = e,
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("cannot find the etcd leader among {all:?}: {last}"))
}

/// `(member id, leader id)` from `/v3/maintenance/status` (the gateway
/// writes 64-bit integers as strings).
async fn member_status(authority: &str) -> Result<(String, String), String> {
    let Sender::H1(mut s) = connect(EtcdApi::Json, authority).await? else { unreachable!("asked for HTTP/1.1") };
    let mut r = Request::new(Full::new(Bytes::from_static(b"{}")));
    *r.method_mut() = hyper::Method::POST;
    *r.uri_mut() = Uri::from_static("/v3/maintenance/status");
    r.headers_mut().insert(HOST, HeaderValue::from_str(authority).map_err(|e| e.to_string())?);
    let call = async {
        let resp = s.send_request(r).await.map_err(|e| e.to_string())?;
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| format!("bad status from {authority}: {e}"))
    };
    let v = tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .map_err(|_| format!("{authority}: no status in time"))??;
    let id = |x: &serde_json::Value| match x {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    Ok((id(&v["header"]["member_id"]), id(&v["leader"])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_and_grpc_framing() {
        let mut m = Vec::new();
        pb_bytes(1, b"k1", &mut m);
        pb_bytes(2, &[7u8; 300], &mut m);
        assert_eq!(&m[..4], &[0x0a, 2, b'k', b'1']);
        // 300 = 0b10_0101100: varint 0xac 0x02.
        assert_eq!(&m[4..7], &[0x12, 0xac, 0x02]);
        assert_eq!(m.len(), 4 + 3 + 300);
        let f = grpc_frame(&m);
        assert_eq!(&f[..5], &[0, 0, 0, 1, 51]);
        assert_eq!(authority("http://127.0.0.1:2379/"), "127.0.0.1:2379");
    }

    #[test]
    fn the_txn_body_compares_mod_revision_and_puts() {
        let mut put = Vec::new();
        pb_bytes(1, b"k", &mut put);
        pb_bytes(2, b"v", &mut put);
        let m = txn_message("k", &put);
        // compare { result LESS, target MOD, key "k", mod_revision 2^53-1 }
        let cmp = [0x08, 2, 0x10, 2, 0x1a, 1, b'k', 0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(&m[..2], &[0x0a, cmp.len() as u8]);
        assert_eq!(&m[2..2 + cmp.len()], &cmp);
        // success { request_put { key "k", value "v" } }
        assert_eq!(&m[2 + cmp.len()..], &[0x12, 8, 0x12, 6, 0x0a, 1, b'k', 0x12, 1, b'v']);
    }
}
