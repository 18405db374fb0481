//! A plain HTTP GET of a node's `/status` or `/metrics` (or the demo page's
//! API): what `raftkv status`, the demo page's `/api/status` and the
//! process-level tests use; and a POST for `raftkv cluster`'s controls. One request per connection, on hyper's HTTP/1.1
//! client, over TLS for `wss://` and `https://` ([`get_with`]).

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::header::HOST;
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;

/// The whole exchange, connection included, must finish within this: a
/// status query is for a person or a test waiting on it.
const TIMEOUT: Duration = Duration::from_secs(3);
/// Largest body read. `/status` and `/metrics` are a few KiB; this only
/// keeps a wrong address from feeding us without end.
const MAX_BODY: usize = 16 << 20;

/// GETs `path` from the server whose base URL is `base` (`ws://host:port`,
/// `http://host:port` or `host:port`) and returns the body of a `200 OK`
/// answer. Any other status, a body that is not UTF-8 text, or no answer
/// within 3 s is an error naming the server.
pub async fn get(base: &str, path: &str) -> Result<String, String> {
    get_as(base, path, None).await
}

/// [`get`] with a bearer token (`/status` and `/metrics` need one when the
/// cluster's configuration names `[[tokens]]`).
pub async fn get_as(base: &str, path: &str, token: Option<&str>) -> Result<String, String> {
    get_with(base, path, token, None).await
}

/// [`get_as`] over TLS too: `wss://` and `https://` bases are checked
/// against `tls`'s roots.
pub async fn get_with(
    base: &str,
    path: &str,
    token: Option<&str>,
    tls: Option<&std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
) -> Result<String, String> {
    let headers: Vec<(&str, String)> = token.map(|t| ("authorization", format!("Bearer {t}"))).into_iter().collect();
    let (status, body) = exchange("GET", base, path, &headers, tls).await?;
    if status != StatusCode::OK {
        let authority = base.parse::<Uri>().ok().and_then(|u| u.authority().map(|a| a.to_string())).unwrap_or_default();
        return Err(format!("{authority}: HTTP {status}"));
    }
    Ok(body)
}

/// A POST with an empty body and the given extra headers (plain HTTP):
/// the status code and the body, whatever the status. For `raftkv
/// cluster`'s controls, from tests and scripts.
pub async fn post(base: &str, path: &str, headers: &[(&str, String)]) -> Result<(u16, String), String> {
    let (status, body) = exchange("POST", base, path, headers, None).await?;
    Ok((status.as_u16(), body))
}

/// One request and its answer (status and UTF-8 body), within [`TIMEOUT`].
async fn exchange(
    method: &str,
    base: &str,
    path: &str,
    headers: &[(&str, String)],
    tls: Option<&std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
) -> Result<(StatusCode, String), String> {
    let uri: Uri = base.parse().map_err(|e| format!("{base:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        None | Some("http") | Some("ws") | Some("https") | Some("wss") => {}
        Some(other) => return Err(format!("{base}: {other}:// is not supported")),
    }
    let Some(authority) = uri.authority().map(|a| a.as_str().to_string()) else {
        return Err(format!("{base:?} names no host:port"));
    };
    let exchange = async {
        let tcp = crate::tls::dial(base, tls).await?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(tcp)).await.map_err(|e| e.to_string())?;
        // The connection is driven by its own task; it ends when `sender`
        // is dropped at the end of this exchange.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut request = Request::builder().method(method).uri(path);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            request = request.header(HOST, &authority);
        }
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        let request = request.body(Empty::<Bytes>::new()).map_err(|e| format!("bad request for {path:?}: {e}"))?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY).collect().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, body.to_bytes()))
    };
    let (status, body) = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{authority}: timed out"))?
        .map_err(|e| format!("{authority}: {e}"))?;
    let body = String::from_utf8(body.to_vec()).map_err(|_| format!("{authority}: the answer is not UTF-8 text"))?;
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot server that answers the first request with `answer` and
    /// hands back what it was sent.
    async fn one_shot(answer: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (addr, task)
    }

    #[tokio::test]
    async fn gets_a_body_and_names_the_host() {
        let (addr, server) = one_shot("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
        assert_eq!(get(&format!("ws://{addr}"), "/status").await, Ok("hello".to_string()));
        let sent = server.await.unwrap();
        assert!(sent.starts_with("GET /status HTTP/1.1\r\n"), "{sent}");
        assert!(sent.to_ascii_lowercase().contains(&format!("host: {addr}\r\n")), "{sent}");
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_200_or_not_http() {
        let (addr, _server) = one_shot("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        let e = get(&format!("http://{addr}"), "/status").await.unwrap_err();
        assert!(e.contains(&addr) && e.contains("503"), "{e}");
        assert!(get("ftp://127.0.0.1:1", "/").await.unwrap_err().contains("not supported"));
        assert!(get("https://127.0.0.1:1", "/").await.is_err());
        assert!(get("not a url", "/").await.is_err());
        // Nothing listens on port 1.
        assert!(get("127.0.0.1:1", "/status").await.is_err());
    }
}
