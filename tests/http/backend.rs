//! An in-process HTTP/1.1 server (hyper on a tokio runtime of its own, in the test's own cgroup)
//! for what nginx cannot show without extra modules:
//!
//! - `POST /upload`: reads the request body as it streams and answers with its length, its
//!   SHA-256 and how it was framed (chunked or `Content-Length`);
//! - `GET /download?bytes=N`: streams N bytes of [`pattern`] in 64 KiB chunks, without a length
//!   (chunked transfer encoding);
//! - `GET /headers`: the credential headers it received, as JSON;
//! - `GET /ws` with `Upgrade: websocket`: a WebSocket (RFC 6455) echo of text and binary
//!   messages, closing when the client closes.
//!
//! Every request's method, path and headers are kept ([`Backend::seen`]). Dropping it stops the
//! runtime.
use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::{
    Request, Response, StatusCode,
    body::{Body, Frame, Incoming},
    header,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    sync::mpsc,
};

/// The GUID of RFC 6455 section 1.3.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest WebSocket message the echo accepts.
const WS_MAX: u64 = 1 << 20;

/// What the server saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers (names lowercase).
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The running server.
pub struct Backend {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

type Out = BoxBody<Bytes, Infallible>;

impl Backend {
    /// Binds 127.0.0.1 on a free port and serves in the background.
    pub fn start() -> Backend {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("backend runtime");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend addr");
        let log = seen.clone();
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(log.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Backend {
            addr,
            seen,
            runtime: Some(runtime),
        }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    /// The requests seen whose path starts with `prefix`.
    pub fn seen_at(&self, prefix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.target.starts_with(prefix))
            .collect()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// `n` bytes of a fixed, non-repeating-looking pattern.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| ((i * 31 + i / 65_536 * 7) % 251) as u8)
        .collect()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn ws_accept(key: &str) -> String {
    use sha1::Digest as _;
    let digest = sha1::Sha1::digest(format!("{key}{WS_GUID}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Out> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()).boxed())
        .expect("response")
}

async fn handle(
    log: Arc<Mutex<Vec<Seen>>>,
    mut req: Request<Incoming>,
) -> Result<Response<Out>, Infallible> {
    let target = req
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let seen = Seen {
        method: req.method().as_str().to_owned(),
        target: target.clone(),
        headers,
    };
    log.lock().expect("seen lock").push(seen.clone());
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let query = target.split_once('?').map_or("", |(_, q)| q).to_owned();
    Ok(match path.as_str() {
        "/upload" => {
            let chunked = seen
                .header("transfer-encoding")
                .is_some_and(|v| v.contains("chunked"));
            let length = seen.header("content-length").map(str::to_owned);
            let mut hash = Sha256::new();
            let mut bytes = 0u64;
            let mut frames = 0u64;
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    return Ok(full(StatusCode::BAD_REQUEST, "text/plain", "body failed\n"));
                };
                if let Ok(data) = frame.into_data() {
                    bytes += data.len() as u64;
                    frames += 1;
                    hash.update(&data);
                }
            }
            let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
            let v = json!({
                "bytes": bytes,
                "frames": frames,
                "sha256": digest,
                "chunked": chunked,
                "content_length": length,
            });
            full(StatusCode::OK, "application/json", format!("{v}\n"))
        }
        "/download" => {
            let n: usize = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("bytes="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let (tx, rx) = mpsc::channel::<Bytes>(4);
            tokio::spawn(async move {
                let data = Bytes::from(pattern(n));
                let mut at = 0;
                while at < data.len() {
                    let end = (at + 65_536).min(data.len());
                    if tx.send(data.slice(at..end)).await.is_err() {
                        return;
                    }
                    at = end;
                }
            });
            Response::builder()
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(ChannelBody { rx }.boxed())
                .expect("response")
        }
        // Answers at once and reads the request body afterwards, to its end (a full-duplex
        // server, as one refusing an upload early may be).
        "/early" => {
            let mut body = req.into_body();
            tokio::spawn(async move { while let Some(Ok(_)) = body.frame().await {} });
            full(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", "too large\n")
        }
        "/headers" => {
            let v = json!({
                "authorization": seen.header("authorization"),
                "x-api-key": seen.header("x-api-key"),
            });
            full(StatusCode::OK, "application/json", format!("{v}\n"))
        }
        "/ws" => {
            let Some(key) = seen.header("sec-websocket-key").map(str::to_owned) else {
                return Ok(full(StatusCode::BAD_REQUEST, "text/plain", "no key\n"));
            };
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(io) = upgrade.await {
                    let _ = ws_echo(TokioIo::new(io)).await;
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::UPGRADE, "websocket")
                .header(header::CONNECTION, "Upgrade")
                .header("sec-websocket-accept", ws_accept(&key))
                .body(Full::new(Bytes::new()).boxed())
                .expect("response")
        }
        _ => full(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    })
}

/// A body fed by a channel: each message one data frame, the end when the sender is dropped.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}

/// Echoes WebSocket messages (client frames are masked; ours are not) until a close frame,
/// which is answered with a close frame.
async fn ws_echo<S>(mut io: S) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let mut head = [0u8; 2];
        io.read_exact(&mut head).await?;
        let opcode = head[0] & 0x0f;
        let masked = head[1] & 0x80 != 0;
        let mut len = u64::from(head[1] & 0x7f);
        if len == 126 {
            len = u64::from(io.read_u16().await?);
        } else if len == 127 {
            len = io.read_u64().await?;
        }
        if len > WS_MAX {
            return Err(std::io::Error::other("message too large"));
        }
        let mut key = [0u8; 4];
        if masked {
            io.read_exact(&mut key).await?;
        }
        let mut payload = vec![0u8; usize::try_from(len).expect("length")];
        io.read_exact(&mut payload).await?;
        if masked {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
        }
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(n as u8),
            n if n <= 0xffff => {
                frame.push(126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&payload);
        io.write_all(&frame).await?;
        io.flush().await?;
        if opcode == 0x8 {
            return Ok(());
        }
    }
}
