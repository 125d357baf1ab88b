//! In-process tests of the whole handler: a real hyper upstream server on 127.0.0.1:0, the
//! client side of a session served on an accepted loopback socket, a real hyper client, and a
//! real policy loaded from TOML (decided with `Policy::evaluate_request`). No eBPF, no agent.
use std::{
    convert::Infallible,
    future::Future,
    io::Write as _,
    net::SocketAddr,
    path::Path,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, StatusCode,
    body::Incoming,
    client::conn::{http1 as client1, http2 as client2},
    server::conn::http1 as server1,
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

use super::{
    audit::tests::Records,
    body::{ProxyBody, boxed, empty, full},
    conn::{self, Limits},
    exchange::Session,
    gate::{Gate, approved},
    io::{Counted, Counters},
    pool::{Idle, MAX_PER_KEY, Pool, PoolKey},
    request::Facts,
    upstream::{Connector, Pooling, Upstream, UpstreamTls},
};
use crate::{
    policy::{Policy, RequestDecision, Verdict},
    proxy::{
        approval::{ApprovalGate, ApprovalRequest, Unavailable},
        copy::CopyEnd,
    },
};

const TOKEN: &str = "tok-3f9a";

fn policy(secret_file: &Path) -> Policy {
    let text = format!(
        r#"
[[workload]]
name = "etl"
spiffe_id = "spiffe://example.org/etl"
[workload.selector]
cgroup = "/tollgate.slice/etl-*"

[[target]]
name = "api"
protocol = "http"
addresses = ["127.0.0.1:1"]
[target.http]
tls = "none"
credential = {{ bearer_file = "{}" }}
max_body_buffer = "64KiB"
record_bodies = true
body_cap = "1KiB"
[target.http.masking]
json_keys = ["ssn", "$.data.password"]
detectors = [{{ detector = "card", style = "last4" }}]

[[rule]]
name = "etl-api"
workloads = ["etl"]
targets = ["api"]
action = "allow"
[rule.http]
paths = ["/json", "/gzip", "/echo", "/upload", "/ws", "/ws-echo", "/dribble", "/big", "/img", "/ntlm", "/slow"]

[[rule]]
name = "no-sys"
workloads = ["*"]
targets = ["api"]
action = "deny"
[rule.http]
paths = ["/v1/sys/**"]

[[rule]]
name = "form-posts"
workloads = ["etl"]
targets = ["api"]
action = "allow"
[rule.http]
methods = ["POST"]
paths = ["/forms/**"]

[[rule]]
name = "no-form-deletes"
workloads = ["*"]
targets = ["api"]
action = "deny"
[rule.http]
methods = ["DELETE"]
paths = ["/forms/**"]

[[rule]]
name = "needs-ok"
workloads = ["etl"]
targets = ["api"]
action = "approve"
[rule.http]
paths = ["/approve"]
"#,
        secret_file.display()
    );
    crate::policy::load_str(Path::new("test.toml"), &text, None).expect("policy")
}

/// Decides with a loaded policy and the "no approver" gate, as the agent's gate does.
struct PolicyGate {
    policy: Policy,
}

impl Gate for PolicyGate {
    fn decide<'a>(
        &'a self,
        facts: &'a Facts,
    ) -> Pin<Box<dyn Future<Output = RequestDecision> + Send + 'a>> {
        Box::pin(async move {
            let w = self.policy.workload("etl").expect("workload");
            let RequestDecision {
                decision: d,
                read_as,
            } = self.policy.decide_request(w, "api", &facts.as_policy());
            if d.verdict != Verdict::Approve {
                return RequestDecision {
                    decision: d,
                    read_as,
                };
            }
            let outcome = Unavailable
                .decide(ApprovalRequest {
                    connection_id: uuid::Uuid::nil(),
                    workload: "etl".into(),
                    target: Some("api".into()),
                    rule: d.rule.clone(),
                    summary: String::new(),
                    timeout: Duration::from_secs(1),
                })
                .await;
            RequestDecision {
                decision: approved(d, outcome),
                read_as,
            }
        })
    }
}

const JSON: &str = r#"{"ssn":"078-05-1120","data":{"password":"pw1","card":"4111111111111111"},"n":4111111111111111}"#;
const JSON_MASKED: &str = r#"{"ssn":"[REDACTED]","data":{"password":"[REDACTED]","card":"************1111"},"n":4111111111111111}"#;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
    /// Bodies of `/forms/...` requests read to their end.
    whole_forms: AtomicUsize,
    /// The `Authorization` of each `/echo` request.
    echo_auth: std::sync::Mutex<Vec<String>>,
}

async fn upstream_handler(
    mut req: Request<Incoming>,
    seen: Arc<Seen>,
) -> Result<Response<ProxyBody>, Infallible> {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    let typed = |ct: &'static str, body: ProxyBody| {
        Response::builder()
            .header("content-type", ct)
            .body(body)
            .unwrap()
    };
    let resp = match req.uri().path() {
        "/json" => typed("application/json", full(JSON)),
        "/gzip" => Response::builder()
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(full(gzip(JSON.as_bytes())))
            .unwrap(),
        "/echo" => {
            let h = |n: &str| {
                req.headers()
                    .get(n)
                    .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned())
            };
            crate::sync::lock(&seen.echo_auth).push(h("authorization"));
            let text = format!(
                "auth={} proxy-auth={} host={} query={} accept-encoding={}",
                h("authorization"),
                h("proxy-authorization"),
                h("host"),
                req.uri().query().unwrap_or("-"),
                h("accept-encoding"),
            );
            // And in a header, as a redirect that keeps the query would.
            let mut r = typed("text/plain", full(text));
            let echoed = format!("/next?auth={}", h("authorization"));
            r.headers_mut()
                .insert("x-echo-auth", echoed.parse().unwrap());
            r
        }
        "/upload" => {
            let n = req.into_body().collect().await.unwrap().to_bytes().len();
            typed("text/plain", full(format!("got {n}")))
        }
        // Answers once the body's first chunk is in, and reads the rest after.
        "/forms/early" => {
            let mut body = req.into_body();
            let _ = body.frame().await;
            tokio::spawn(async move {
                if body.collect().await.is_ok() {
                    seen.whole_forms.fetch_add(1, Ordering::SeqCst);
                }
            });
            typed("text/plain", full("early"))
        }
        p if p.starts_with("/forms/") => match req.into_body().collect().await {
            Ok(body) => {
                seen.whole_forms.fetch_add(1, Ordering::SeqCst);
                typed(
                    "text/plain",
                    full(format!("form of {}", body.to_bytes().len())),
                )
            }
            Err(_) => typed("text/plain", full("cut")),
        },
        "/big" => typed("text/plain", full("4111111111111111 ".repeat(10_000))),
        "/img" => typed("image/png", full(vec![b'P', b'N', b'G', 1])),
        // Answers long after any test is over.
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            typed("text/plain", full("late"))
        }
        "/ntlm" => Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "NTLM")
            .body(empty())
            .unwrap(),
        // A body whose second chunk comes after a pause (of a type passed as it streams).
        "/dribble" => {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(DRIBBLE[0].as_bytes()));
                tokio::time::sleep(DRIBBLE_PAUSE).await;
                let _ = tx.send(Bytes::from_static(DRIBBLE[1].as_bytes()));
            });
            typed("application/octet-stream", boxed(Fed(rx)))
        }
        // Echoes every byte until the client closes.
        "/ws-echo" => {
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(up) = on.await else { return };
                let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .body(empty())
                .unwrap()
        }
        "/ws" => {
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                // No upgrade came with the request: nothing to echo.
                let Ok(up) = on.await else { return };
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 4];
                io.read_exact(&mut buf).await.unwrap();
                io.write_all(&buf).await.unwrap();
                io.write_all(b"!").await.unwrap();
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .body(empty())
                .unwrap()
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(empty())
            .unwrap(),
    };
    Ok(resp)
}

/// The chunks of `/dribble`.
const DRIBBLE: [&str; 2] = ["first ", "second"];
/// The pause before `/dribble`'s second chunk: longer than the idle timeout of the tests that
/// fetch it.
const DRIBBLE_PAUSE: Duration = Duration::from_millis(1200);

async fn upstream_server() -> (SocketAddr, Arc<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = l.accept().await.unwrap();
            s.connections.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| upstream_handler(req, s.clone()));
                let _ = server1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A proxy on 127.0.0.1:0 serving each accepted connection with a session, as `serve` does
/// after the TLS step.
struct Harness {
    proxy: SocketAddr,
    seen: Arc<Seen>,
    records: Arc<Records>,
    ends: mpsc::UnboundedReceiver<(CopyEnd, u64, u64)>,
    _secret: tempfile::NamedTempFile,
}

async fn harness(h2: bool) -> Harness {
    harness_with(h2, Duration::from_secs(30)).await
}

/// As [`harness`], with client connections closed after `idle`.
async fn harness_with(h2: bool, idle: Duration) -> Harness {
    let mut secret = tempfile::NamedTempFile::new().unwrap();
    secret.write_all(TOKEN.as_bytes()).unwrap();
    let policy = policy(secret.path());
    let target = policy.target("api").unwrap().http.clone().unwrap();
    let gate: Arc<dyn Gate> = Arc::new(PolicyGate { policy });
    let (upstream, seen) = upstream_server().await;
    let records = Arc::new(Records::default());
    let l = proxy_listener();
    let proxy = l.local_addr().unwrap();
    let (tx, ends) = mpsc::unbounded_channel();
    let recorder = records.clone();
    tokio::spawn(async move {
        loop {
            let (client, _) = l.accept().await.unwrap();
            let up = TcpStream::connect(upstream).await.unwrap();
            let connector: Connector =
                Box::new(move || Box::pin(async move { TcpStream::connect(upstream).await }));
            let session = Arc::new(Session::new(
                uuid::Uuid::now_v7(),
                "etl".into(),
                upstream,
                target.clone(),
                gate.clone(),
                recorder.clone(),
                Upstream::new(Some(up), connector, None, None),
            ));
            let counters = Arc::new(Counters::default());
            let io = Counted::new(client, counters.clone());
            let limits = Limits {
                max_request_header: 16 * 1024,
                idle,
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let end = conn::serve_client(io, h2, session, limits, std::future::pending()).await;
                let _ = tx.send((
                    end,
                    counters.up.load(Ordering::Relaxed),
                    counters.down.load(Ordering::Relaxed),
                ));
            });
        }
    });
    Harness {
        proxy,
        seen,
        records,
        ends,
        _secret: secret,
    }
}

async fn h1_client(addr: SocketAddr) -> client1::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = client1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    sender
}

async fn send(
    c: &mut client1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> (StatusCode, hyper::HeaderMap, String) {
    c.ready().await.unwrap();
    let resp = c.send_request(req).await.unwrap();
    let (head, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        head.status,
        head.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "api.example:8080")
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn requests_are_decided_forwarded_masked_and_audited_over_one_connection() {
    let h = harness(false).await;
    let mut c = h1_client(h.proxy).await;

    // Allowed JSON: masked by key, path and detector; Content-Length recomputed.
    let (status, headers, body) = send(&mut c, get("/json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, JSON_MASKED);
    assert_eq!(headers["content-length"], body.len().to_string().as_str());

    // gzip: decoded, masked, sent uncompressed.
    let (status, headers, body) = send(
        &mut c,
        Request::get("/gzip")
            .header("host", "api.example")
            .header("accept-encoding", "gzip")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, JSON_MASKED);
    assert!(!headers.contains_key("content-encoding"));

    // The client's credentials are replaced by the target's.
    let (_, headers, body) = send(
        &mut c,
        Request::get("/echo?x=1&y=2")
            .header("host", "api.example:8080")
            .header("authorization", "Bearer client-own")
            .header("proxy-authorization", "Basic eDp5")
            .header("accept-encoding", "zstd, gzip")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(
        crate::sync::lock(&h.seen.echo_auth)
            .last()
            .map(String::as_str),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    // Echoed back, it is redacted: in the body (a masking target's), and in a header.
    assert_eq!(
        body,
        "auth=Bearer [REDACTED] proxy-auth=- host=api.example:8080 query=x=1&y=2 accept-encoding=gzip"
    );
    assert_eq!(headers["x-echo-auth"], "/next?auth=Bearer [REDACTED]");

    // Denied: 403 JSON naming the rule, never forwarded.
    let before = h.seen.requests.load(Ordering::SeqCst);
    for (path, rule) in [
        ("/v1/sys/seal", "no-sys"),
        ("/v1/x/../sys/seal", "malformed-path"),
        ("/approve", "needs-ok (approval-unavailable)"),
        ("/other", "default-deny"),
        ("/a/../../json", "malformed-path"),
    ] {
        let (status, headers, body) = send(&mut c, get(path)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(headers["content-type"], "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": "denied", "rule": rule, "workload": "etl"}),
            "{path}"
        );
    }
    assert_eq!(
        h.seen.requests.load(Ordering::SeqCst),
        before,
        "a denied request reached upstream"
    );

    // A request body streams through (larger than the masking buffer: never buffered).
    let upload = vec![b'x'; 100 * 1024];
    let (status, _, body) = send(
        &mut c,
        Request::post("/upload")
            .header("host", "api.example")
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(upload)))
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "got 102400"));

    // Too large to mask: passed unmasked (unmaskable = "pass"); other types untouched.
    let (status, _, body) = send(&mut c, get("/big")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 170_000);
    let (status, _, body) = send(&mut c, get("/img")).await;
    assert_eq!(
        (status, body.as_bytes()),
        (StatusCode::OK, &[b'P', b'N', b'G', 1][..])
    );

    // All of it over one client connection and one upstream connection.
    assert_eq!(h.seen.connections.load(Ordering::SeqCst), 1);
    drop(c);
    let mut h = h;
    let (end, up, down) = tokio::time::timeout(Duration::from_secs(5), h.ends.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(end, CopyEnd::Closed), "{end:?}");
    assert!(up > 100 * 1024 && down > 170_000, "up {up} down {down}");

    let recs = h.records.take();
    let seqs: Vec<u32> = recs.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=11).collect::<Vec<u32>>());
    let json = &recs[0];
    assert_eq!(
        (
            json.method.as_str(),
            json.host.as_str(),
            json.path.as_str(),
            json.status
        ),
        ("GET", "api.example", "/json", Some(200))
    );
    assert_eq!(
        (json.decision.as_str(), json.rule.as_str()),
        ("allow", "etl-api")
    );
    assert_eq!(
        json.masked,
        Some(serde_json::json!({
            "by_column": {"ssn": 1, "$.data.password": 1},
            "by_detector": {"card": 1}
        }))
    );
    assert_eq!(json.bytes_down, JSON_MASKED.len() as u64);
    let echo = &recs[2];
    assert_eq!(echo.query, ["x", "y"]);
    // The headers as the client sent them: its credentials redacted, never the injected one.
    let headers = echo.headers.as_ref().expect("recorded");
    let kept: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        kept,
        [
            ("host", "api.example:8080"),
            ("authorization", "[redacted]"),
            ("proxy-authorization", "[redacted]"),
            ("accept-encoding", "zstd, gzip"),
        ]
    );
    // The echo is counted (the body's) and noted (the header's), the secret itself never.
    assert_eq!(
        echo.masked,
        Some(serde_json::json!({"by_column": {}, "by_detector": {"credential-echo": 1}}))
    );
    assert_eq!(
        echo.error.as_deref(),
        Some("the upstream echoed the credential in 1 response header value(s): redacted")
    );
    assert!(!format!("{recs:?}").contains("client-own") && !format!("{recs:?}").contains(TOKEN));
    let denied = &recs[3];
    assert_eq!(
        (
            denied.status,
            denied.decision.as_str(),
            denied.rule.as_str()
        ),
        (Some(403), "deny", "no-sys")
    );
    assert_eq!(
        recs[4].path, "/v1/x/../sys/seal",
        "refused, so recorded as sent"
    );
    assert_eq!(recs[5].rule, "needs-ok (approval-unavailable)");
    let upload = &recs[8];
    assert_eq!((upload.method.as_str(), upload.bytes_up), ("POST", 102_400));
    let body = upload.body.as_deref().unwrap();
    assert!(
        body.starts_with("xxxx") && body.ends_with("… [cut]"),
        "{}",
        body.len()
    );
    assert_eq!(recs[9].bytes_down, 170_000);
    // No credential anywhere in the records.
    let dump = format!("{recs:?}");
    for secret in [TOKEN, "client-own", "eDp5"] {
        assert!(!dump.contains(secret), "{secret} recorded");
    }
}

#[tokio::test]
async fn http2_client_over_an_http1_upstream() {
    let h = harness(true).await;
    let stream = TcpStream::connect(h.proxy).await.unwrap();
    let (sender, conn) = client2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut tasks = Vec::new();
    for path in ["/json", "/gzip", "/json", "/v1/sys/x"] {
        let mut s = sender.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::get(format!("http://api.example{path}"))
                .body(Full::<Bytes>::default())
                .unwrap();
            let resp = s.send_request(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    for (status, body) in &got[..3] {
        assert_eq!((*status, body.as_str()), (StatusCode::OK, JSON_MASKED));
    }
    assert_eq!(got[3].0, StatusCode::FORBIDDEN);
    // Requests were serialized on one HTTP/1.1 upstream connection.
    assert_eq!(h.seen.connections.load(Ordering::SeqCst), 1);
    let recs = h.records.take();
    assert_eq!(recs.len(), 4);
    assert!(recs.iter().all(|r| r.host == "api.example"));
}

/// Over HTTP/2 from the client: a form denied by its `_method` gets 403 on its stream, and the
/// client's connection goes on (the upstream connection the body failed on is not used again).
#[tokio::test]
async fn http2_form_denied_by_its_method_leaves_the_connection_usable() {
    let h = harness(true).await;
    let stream = TcpStream::connect(h.proxy).await.unwrap();
    let (mut sender, conn) = client2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = form_post(
        "http://api.example/forms/3",
        "application/x-www-form-urlencoded",
        "a=1&_method=DELETE".into(),
    );
    req.headers_mut().remove("host");
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let req = Request::get("http://api.example/json")
        .body(Full::<Bytes>::default())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(h.seen.whole_forms.load(Ordering::SeqCst), 0);
    let rules: Vec<_> = h.records.take().into_iter().map(|r| r.rule).collect();
    assert_eq!(rules, ["no-form-deletes", "etl-api"]);
}

/// `GET /ws` of `api.example` with `headers`, on a new HTTP/1.1 connection to the proxy.
async fn get_ws(h: &Harness, headers: &[(&str, &str)]) -> Response<Incoming> {
    get_upgrade(h, "/ws", headers).await
}

/// `GET path` of `api.example` with `headers`, on a new HTTP/1.1 connection to the proxy.
async fn get_upgrade(h: &Harness, path: &str, headers: &[(&str, &str)]) -> Response<Incoming> {
    let mut c = h1_client(h.proxy).await;
    c.ready().await.unwrap();
    let mut req = Request::get(path).header("host", "api.example");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    c.send_request(req.body(Full::default()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn websocket_upgrade_is_spliced() {
    let mut h = harness(false).await;
    let resp = get_ws(&h, &[("connection", "upgrade"), ("upgrade", "websocket")]).await;
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    let mut io = TokioIo::new(hyper::upgrade::on(resp).await.unwrap());
    io.write_all(b"ping").await.unwrap();
    let mut back = Vec::new();
    io.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"ping!");
    drop(io);
    let (end, up, down) = tokio::time::timeout(Duration::from_secs(5), h.ends.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(end, CopyEnd::Closed), "{end:?}");
    // The spliced bytes count in the connection's totals.
    assert!(up > 4 && down > 5, "up {up} down {down}");
    let recs = h.records.take();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].status, Some(101));
}

/// An idle WebSocket is closed after the idle timeout, as a tcp target's connection is; one that
/// moves bytes is not.
#[tokio::test]
async fn an_idle_websocket_is_closed() {
    let idle = Duration::from_millis(1500);
    let mut h = harness_with(false, idle).await;
    let upgrade = [("connection", "upgrade"), ("upgrade", "websocket")];
    let resp = get_upgrade(&h, "/ws-echo", &upgrade).await;
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    let mut io = TokioIo::new(hyper::upgrade::on(resp).await.unwrap());
    // Bytes more often than `idle`, for more than `idle` in all: kept.
    for _ in 0..4 {
        tokio::time::sleep(idle / 3).await;
        io.write_all(b"x").await.unwrap();
    }
    let mut echoed = [0u8; 4];
    io.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"xxxx");
    assert!(h.ends.try_recv().is_err(), "a busy splice was closed");
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), io.read_to_end(&mut back))
        .await
        .expect("the idle splice is closed")
        .unwrap();
    let (end, _, _) = tokio::time::timeout(Duration::from_secs(5), h.ends.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(end, CopyEnd::IdleTimeout), "{end:?}");
}

/// An HTTP/2 connection with no stream in flight is closed after the idle timeout (GOAWAY), as
/// an HTTP/1.1 one is by its header read timeout; one whose response is still streaming is not.
#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    let idle = Duration::from_millis(400);
    let mut h = harness_with(true, idle).await;
    let stream = TcpStream::connect(h.proxy).await.unwrap();
    let (mut sender, conn) = client2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    // A response body that takes longer than `idle` to come: its stream is in flight.
    let req = Request::get("http://api.example/dribble")
        .body(Full::<Bytes>::default())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], DRIBBLE.concat().as_bytes());
    assert!(
        h.ends.try_recv().is_err(),
        "closed under a streaming response"
    );
    tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("the idle connection is closed")
        .unwrap()
        .unwrap();
    let (end, _, _) = tokio::time::timeout(Duration::from_secs(5), h.ends.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(end, CopyEnd::IdleTimeout), "{end:?}");
    assert_eq!(h.records.take().len(), 1);
}

/// A TRACE answer echoes the request's headers: to a target that injects a credential it is
/// refused before any rule, and never reaches the upstream.
#[tokio::test]
async fn a_trace_to_a_target_with_a_credential_is_refused() {
    let h = harness(false).await;
    let mut c = h1_client(h.proxy).await;
    let trace = Request::builder()
        .method("TRACE")
        .uri("/json")
        .header("host", "api.example")
        .body(Full::default())
        .unwrap();
    let (status, _, body) = send(&mut c, trace).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["rule"], "trace-with-credential", "{body}");
    assert_eq!(h.seen.requests.load(Ordering::SeqCst), 0);
    let recs = h.records.take();
    assert_eq!(
        (
            recs[0].method.as_str(),
            recs[0].decision.as_str(),
            recs[0].rule.as_str()
        ),
        ("TRACE", "deny", "trace-with-credential")
    );
}

/// A request asking for another protocol than WebSocket (`h2c`) is no upgrade: an upstream
/// that switches anyway (this one always does) gets no tunnel, and the client a 502. (That its
/// `Upgrade` is dropped is `request`'s unit test.)
#[tokio::test]
async fn only_websocket_upgrades_are_spliced() {
    let h = harness(false).await;
    let resp = get_ws(
        &h,
        &[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAAQAAP__"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let recs = h.records.take();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].error.as_deref(),
        Some("upstream switched protocols without an upgrade request")
    );
}

#[tokio::test]
async fn a_malformed_request_ends_the_exchange_with_a_record() {
    let mut h = harness(false).await;
    let mut s = TcpStream::connect(h.proxy).await.unwrap();
    s.write_all(b"NOT AN HTTP REQUEST\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let (end, _, _) = tokio::time::timeout(Duration::from_secs(5), h.ends.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(end, CopyEnd::Error(_)), "{end:?}");
    let recs = h.records.take();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        (recs[0].status, recs[0].rule.as_str()),
        (Some(400), "malformed-request")
    );
    assert!(
        recs[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("malformed request")
    );
    // The proxy still serves the next connection.
    let mut c = h1_client(h.proxy).await;
    assert_eq!(send(&mut c, get("/json")).await.0, StatusCode::OK);
}

fn form_post(path: &str, content_type: &str, body: String) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "api.example:8080")
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// A form body's `_method` is decided as a `?_method=` would be: `POST /forms/..` is allowed,
/// `DELETE` is not, so a POST whose form says `_method=DELETE` is denied with the deciding
/// rule, its record says so, and the upstream never has the whole body; a `_method` the rules
/// allow goes through, as does a big form without one.
#[tokio::test]
async fn a_form_bodys_method_is_decided_before_the_upstream_has_the_body() {
    let h = harness(false).await;
    let mut c = h1_client(h.proxy).await;
    const URLENCODED: &str = "application/x-www-form-urlencoded";
    let (status, _, body) = send(
        &mut c,
        form_post("/forms/7", URLENCODED, "a=1&_method=DELETE".into()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("no-form-deletes"), "{body}");
    let recs = h.records.take();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        (
            recs[0].decision.as_str(),
            recs[0].rule.as_str(),
            recs[0].status
        ),
        ("deny", "no-form-deletes", Some(403))
    );
    assert_eq!(recs[0].bytes_up, 0, "nothing went upstream");
    assert_eq!(
        recs[0].body.as_deref(),
        Some("a=1&_method=DELETE"),
        "what the client sent is kept"
    );
    assert_eq!(h.seen.whole_forms.load(Ordering::SeqCst), 0);

    // Multipart, with a big file part streamed first: the `_method` comes last.
    let file = "z".repeat(300_000);
    let multipart = format!(
        "--B0\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\n{file}\r\n\
         --B0\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\ndelete\r\n--B0--\r\n"
    );
    let mut c = h1_client(h.proxy).await;
    let (status, _, _) = send(
        &mut c,
        form_post(
            "/forms/8",
            "multipart/form-data; boundary=B0",
            multipart.clone(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let rec = &h.records.take()[0];
    assert_eq!(rec.rule, "no-form-deletes");
    assert!(rec.bytes_up < multipart.len() as u64, "{}", rec.bytes_up);

    // JSON (Laravel reads a top-level `_method`), and one without it.
    let mut c = h1_client(h.proxy).await;
    let json = r#"{"items":[{"_method":"X"}],"_method":"DELETE"}"#;
    let (status, _, _) = send(
        &mut c,
        form_post("/forms/8", "application/json", json.into()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(h.records.take()[0].rule, "no-form-deletes");
    let mut c = h1_client(h.proxy).await;
    let json = r#"{"items":[{"_method":"DELETE"}]}"#;
    let (status, _, got) = send(
        &mut c,
        form_post("/forms/8", "application/json", json.into()),
    )
    .await;
    assert_eq!((status, got.as_str()), (StatusCode::OK, "form of 32"));

    let mut c = h1_client(h.proxy).await;
    for (body, want) in [("a=1&_method=POST", "form of 16"), ("plain=1", "form of 7")] {
        let (status, _, got) = send(&mut c, form_post("/forms/9", URLENCODED, body.into())).await;
        assert_eq!((status, got.as_str()), (StatusCode::OK, want));
    }
    // An override no rule allows is denied by default; one the scan cannot read, outright.
    let (status, _, body) = send(
        &mut c,
        form_post("/forms/9", URLENCODED, "_method=PATCH".into()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let mut c = h1_client(h.proxy).await;
    let long = format!("_method={}", "A".repeat(300));
    let (status, _, body) = send(&mut c, form_post("/forms/9", URLENCODED, long)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("unreadable-form"), "{body}");
    assert_eq!(h.seen.whole_forms.load(Ordering::SeqCst), 3);
}

/// Sends a form POST to `/forms/1` in `pieces` (the head first), each after the upstream had
/// time to take the one before; returns the answer, once the upstream had time to finish.
async fn form_in_pieces(h: &Harness, pieces: &[&[u8]]) -> String {
    let mut s = TcpStream::connect(h.proxy).await.unwrap();
    for piece in pieces {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    String::from_utf8_lossy(&out).into_owned()
}

const FORM_HEAD: &str = "POST /forms/1 HTTP/1.1\r\nHost: api.example\r\n\
                         Content-Type: application/x-www-form-urlencoded\r\n";

/// A form denied by a `_method` in a later chunk: the upstream had the request and its first
/// chunk, never the body's end. Chunked, hyper must not end a body it was failed in; with a
/// length, the chunk that ends a `_method` value cut in two (and so the body) is held until the
/// value is decided.
#[tokio::test]
async fn a_form_denied_mid_body_never_reaches_its_end_upstream() {
    let h = harness(false).await;
    let head = format!("{FORM_HEAD}Transfer-Encoding: chunked\r\n\r\n");
    let text = form_in_pieces(
        &h,
        &[
            head.as_bytes(),
            b"4\r\na=1&\r\n",
            b"E\r\n_method=DELETE\r\n0\r\n\r\n",
        ],
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert_eq!(h.seen.requests.load(Ordering::SeqCst), 1, "the head went");
    assert_eq!(h.records.take()[0].rule, "no-form-deletes");

    let head = format!("{FORM_HEAD}Content-Length: 18\r\n\r\n");
    let text = form_in_pieces(&h, &[head.as_bytes(), b"a=1&_method=DEL", b"ETE"]).await;
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert_eq!(h.seen.requests.load(Ordering::SeqCst), 2, "the head went");
    assert_eq!(h.records.take()[0].rule, "no-form-deletes");
    assert_eq!(h.seen.whole_forms.load(Ordering::SeqCst), 0);
}

/// An upstream that answers before the body ends: its answer reaches the client, but a
/// `_method` the body gives later is still denied, the upstream never has the body's end, and
/// the record says deny with the rule (it waits for the body), not allow.
#[tokio::test]
async fn a_form_denied_after_an_early_answer_is_recorded_as_denied() {
    let h = harness(false).await;
    let head = "POST /forms/early HTTP/1.1\r\nHost: api.example\r\n\
                Content-Type: application/x-www-form-urlencoded\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    let text = form_in_pieces(
        &h,
        &[
            head.as_bytes(),
            b"4\r\na=1&\r\n",
            b"E\r\n_method=DELETE\r\n0\r\n\r\n",
        ],
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("early"), "{text}");
    let recs = h.records.take();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    assert_eq!(
        (r.decision.as_str(), r.rule.as_str(), r.status),
        ("deny", "no-form-deletes", Some(200)),
        "{r:?}"
    );
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("after the upstream answered"),
        "{r:?}"
    );
    assert_eq!(h.seen.whole_forms.load(Ordering::SeqCst), 0);

    // Allowed, the record waits for the body all the same, and says allow.
    let text = form_in_pieces(
        &h,
        &[
            head.as_bytes(),
            b"4\r\na=1&\r\n",
            b"C\r\n_method=POST\r\n0\r\n\r\n",
        ],
    )
    .await;
    assert!(text.contains("early"), "{text}");
    let recs = h.records.take();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(
        (recs[0].decision.as_str(), recs[0].error.as_deref()),
        ("allow", None)
    );
    assert_eq!(h.seen.whole_forms.load(Ordering::SeqCst), 1);
}

/// A body the test feeds chunk by chunk (a request's, or `/dribble`'s response).
struct Fed(mpsc::UnboundedReceiver<Bytes>);

impl hyper::body::Body for Fed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// The same over HTTP/2 from the client: the early answer arrives while the client still holds
/// its body's end, and the record says deny once the body's `_method` is decided.
#[tokio::test]
async fn http2_a_form_denied_after_an_early_answer_is_recorded_as_denied() {
    let h = harness(true).await;
    let stream = TcpStream::connect(h.proxy).await.unwrap();
    let (mut sender, conn) = client2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let (feed, fed) = mpsc::unbounded_channel();
    let req = Request::post("http://api.example/forms/early")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Fed(fed))
        .unwrap();
    feed.send(Bytes::from_static(b"a=1&")).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"early");
    assert!(h.records.take().is_empty(), "the record waits for the body");
    feed.send(Bytes::from_static(b"_method=DELETE")).unwrap();
    drop(feed);
    let recs = h.records.take_when_some(300).await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(
        (
            recs[0].decision.as_str(),
            recs[0].rule.as_str(),
            recs[0].status
        ),
        ("deny", "no-form-deletes", Some(200)),
        "{recs:?}"
    );
    assert_eq!(h.seen.whole_forms.load(Ordering::SeqCst), 0);
}

/// A client that goes away before the response head (the upstream is slow), over HTTP/1.1 and
/// HTTP/2: hyper drops the exchange. The request was let through and reached the upstream, so
/// it is recorded all the same, in its slot, without status or duration.
#[tokio::test]
async fn a_request_whose_client_goes_away_is_recorded() {
    for h2 in [false, true] {
        let h = harness(h2).await;
        let stream = TcpStream::connect(h.proxy).await.unwrap();
        let io = TokioIo::new(stream);
        let (conn, req) = if h2 {
            let (mut s, conn) = client2::handshake(TokioExecutor::new(), io).await.unwrap();
            let req = Request::get("http://api.example/slow")
                .body(Full::<Bytes>::default())
                .unwrap();
            let conn = tokio::spawn(async move {
                let _ = conn.await;
            });
            (conn, tokio::spawn(async move { s.send_request(req).await }))
        } else {
            let (mut s, conn) = client1::handshake(io).await.unwrap();
            let conn = tokio::spawn(async move {
                let _ = conn.await;
            });
            (
                conn,
                tokio::spawn(async move { s.send_request(get("/slow")).await }),
            )
        };
        while h.seen.requests.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The client goes away: its connection closes.
        req.abort();
        conn.abort();
        let recs = h.records.take_when_some(500).await;
        assert_eq!(recs.len(), 1, "h2 {h2}: {recs:?}");
        let r = &recs[0];
        assert_eq!((r.path.as_str(), r.decision.as_str()), ("/slow", "allow"));
        assert_eq!((r.status, r.duration), (None, None), "h2 {h2}: {r:?}");
        assert_eq!(
            r.error.as_deref(),
            Some("session ended before the response"),
            "h2 {h2}: {r:?}"
        );
    }
}

/// A request waits while the audit store has no room: it goes upstream when room comes, and is
/// refused with 503 (nothing sent upstream, the refusal recorded) when it does not.
#[tokio::test]
async fn a_request_waits_for_audit_room_then_is_refused() {
    let h = harness(false).await;
    let mut c = h1_client(h.proxy).await;
    *h.records.stall.lock().unwrap() = Some(true);
    let (status, _, _) = send(&mut c, get("/json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.seen.requests.load(Ordering::SeqCst), 1);

    *h.records.stall.lock().unwrap() = Some(false);
    let (status, _, body) = send(&mut c, get("/json")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("audit-unavailable"), "{body}");
    assert_eq!(
        h.seen.requests.load(Ordering::SeqCst),
        1,
        "nothing went upstream"
    );
    let recs = h.records.take();
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(
        recs[1].error.as_deref(),
        Some("audit unavailable"),
        "{recs:?}"
    );
}

#[tokio::test]
async fn oversized_request_head_is_refused() {
    let h = harness(false).await;
    let mut c = h1_client(h.proxy).await;
    c.ready().await.unwrap();
    let resp = c
        .send_request(
            Request::get("/json")
                .header("host", "api.example")
                .header("x-big", "a".repeat(64 * 1024))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    // hyper answers 431 (or closes); nothing reaches upstream.
    if let Ok(r) = resp {
        assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    assert_eq!(h.seen.requests.load(Ordering::SeqCst), 0);
}

/// TLS: `terminate` with a leaf of the local CA (HTTP/2 chosen by ALPN on both sides, upstream
/// verified against its own CA for `server_name`), and an SNI of `passthrough_sni` going
/// through untouched to the upstream's own certificate.
mod tls {
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;
    use crate::{
        http::tls::{ClientSide, accept},
        tls::{ALPN_H2, ALPN_HTTP1, LocalCa, ServerOptions, server_config},
    };

    /// An HTTPS upstream serving `upstream_handler`; records the ALPN of each connection.
    async fn https_upstream(
        ca: Arc<LocalCa>,
    ) -> (SocketAddr, Arc<Seen>, mpsc::UnboundedReceiver<bool>) {
        let config = server_config(
            ca,
            ServerOptions {
                fallback_name: Some("127.0.0.1".into()),
                alpn: vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()],
            },
        )
        .unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let s = seen.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = l.accept().await.unwrap();
                s.connections.fetch_add(1, Ordering::SeqCst);
                let (s, tx, acceptor) = (s.clone(), tx.clone(), TlsAcceptor::from(config.clone()));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(ALPN_H2);
                    let _ = tx.send(h2);
                    let svc = service_fn(move |req| upstream_handler(req, s.clone()));
                    let io = TokioIo::new(tls);
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, svc)
                            .await;
                    } else {
                        let _ = server1::Builder::new().serve_connection(io, svc).await;
                    }
                });
            }
        });
        (addr, seen, rx)
    }

    fn client_tls(root_pem: &Path, alpn: &[u8]) -> TlsConnector {
        TlsConnector::from(client_config(root_pem, alpn))
    }

    /// A client config trusting only the CA in `root_pem`, offering `alpn`.
    fn client_config(root_pem: &Path, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(root_pem).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    }

    fn tls_policy(tls: &str, ca_file: &Path, extra: &str) -> Policy {
        let text = format!(
            r#"
[[workload]]
name = "etl"
spiffe_id = "spiffe://example.org/etl"
[workload.selector]
cgroup = "/tollgate.slice/etl-*"

[[target]]
name = "api"
protocol = "http"
addresses = ["127.0.0.1:1"]
[target.http]
tls = "{tls}"
ca_file = "{}"
{extra}
[target.http.masking]
json_keys = ["ssn", "$.data.password"]
detectors = [{{ detector = "card", style = "last4" }}]

[[rule]]
name = "etl-api"
workloads = ["etl"]
targets = ["api"]
action = "allow"
"#,
            ca_file.display()
        );
        crate::policy::load_str(Path::new("tls.toml"), &text, None).expect("policy")
    }

    /// A proxy doing what `serve` does: the TLS step, then L4 copy or a session.
    async fn tls_proxy(
        local_ca: Arc<LocalCa>,
        policy: Policy,
        upstream: SocketAddr,
        records: Arc<Records>,
    ) -> SocketAddr {
        let target = policy.target("api").unwrap().http.clone().unwrap();
        let gate: Arc<dyn Gate> = Arc::new(PolicyGate { policy });
        let l = proxy_listener();
        let proxy = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (client, _) = l.accept().await.unwrap();
                let mut up = TcpStream::connect(upstream).await.unwrap();
                let counters = Arc::new(Counters::default());
                let side = accept(local_ca.clone(), &target, upstream, client, counters)
                    .await
                    .unwrap();
                let (target, gate, records) = (target.clone(), gate.clone(), records.clone());
                tokio::spawn(async move {
                    match side {
                        ClientSide::Passthrough(mut client) => {
                            let _ = crate::proxy::copy::bidirectional(
                                &mut client,
                                &mut up,
                                Duration::from_secs(30),
                                std::future::pending(),
                            )
                            .await;
                        }
                        ClientSide::Http {
                            io,
                            h2,
                            upstream_tls,
                        } => {
                            let connector: Connector = Box::new(move || {
                                Box::pin(async move { TcpStream::connect(upstream).await })
                            });
                            let session = Arc::new(Session::new(
                                uuid::Uuid::now_v7(),
                                "etl".into(),
                                upstream,
                                target,
                                gate,
                                records,
                                Upstream::new(Some(up), connector, upstream_tls, None),
                            ));
                            let limits = Limits {
                                max_request_header: 16 * 1024,
                                idle: Duration::from_secs(30),
                            };
                            conn::serve_client(io, h2, session, limits, std::future::pending())
                                .await;
                        }
                    }
                });
            }
        });
        proxy
    }

    /// As `a_safe_request_on_a_pooled_connection_closed_under_it_is_sent_again`, over TLS: the
    /// server drops the connection without close_notify (rustls: unexpected EOF).
    #[tokio::test]
    async fn a_pooled_tls_connection_closed_without_close_notify_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let upstream_ca = Arc::new(LocalCa::load_or_create(dir.path()).unwrap());
        let config = server_config(
            upstream_ca.clone(),
            ServerOptions {
                fallback_name: None,
                alpn: vec![ALPN_HTTP1.to_vec()],
            },
        )
        .unwrap();
        let (upstream, seen) = closing_server(Some(TlsAcceptor::from(config))).await;
        let tls = UpstreamTls {
            config: client_config(upstream_ca.cert_path(), ALPN_HTTP1),
            name: Some("upstream.test".into()),
        };
        let pool = Arc::new(Pool::default());
        let key = pool_key("etl", upstream, 1);
        for path in ["/json", "/json?again"] {
            let status = request_through_pool_tls(
                upstream,
                &pool,
                key.clone(),
                get(path),
                Some(tls.clone()),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{path}");
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
        assert_eq!(seen.all().len(), 3);
    }

    #[tokio::test]
    async fn terminate_h2_and_passthrough_by_sni() {
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let local_ca = Arc::new(LocalCa::load_or_create(dirs.0.path()).unwrap());
        let upstream_ca = Arc::new(LocalCa::load_or_create(dirs.1.path()).unwrap());
        let policy = tls_policy(
            "terminate",
            upstream_ca.cert_path(),
            "server_name = \"upstream.test\"\npassthrough_sni = [\"*.bank.example\"]",
        );
        let (upstream, seen, mut alpns) = https_upstream(upstream_ca.clone()).await;
        let records = Arc::new(Records::default());
        let proxy = tls_proxy(local_ca.clone(), policy, upstream, records.clone()).await;

        // Terminated: the client trusts the local CA for api.example and speaks HTTP/2.
        let tcp = TcpStream::connect(proxy).await.unwrap();
        let tls = client_tls(local_ca.cert_path(), ALPN_H2)
            .connect(ServerName::try_from("api.example").unwrap(), tcp)
            .await
            .expect("leaf of the local CA for the SNI");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(ALPN_H2));
        let (mut sender, conn) = client2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let resp = sender
            .send_request(
                Request::get("https://api.example/json")
                    .body(Full::<Bytes>::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], JSON_MASKED.as_bytes());
        // The upstream was reached over TLS (verified for server_name) with HTTP/2.
        assert_eq!(alpns.recv().await, Some(true));
        assert_eq!(records.take().len(), 1);

        // Passthrough: the client sees the upstream's own certificate and unmasked bytes.
        let tcp = TcpStream::connect(proxy).await.unwrap();
        let local_only = client_tls(local_ca.cert_path(), ALPN_HTTP1)
            .connect(ServerName::try_from("x.bank.example").unwrap(), tcp)
            .await;
        assert!(
            local_only.is_err(),
            "a passthrough SNI must not get a local leaf"
        );
        let tcp = TcpStream::connect(proxy).await.unwrap();
        let tls = client_tls(upstream_ca.cert_path(), ALPN_HTTP1)
            .connect(ServerName::try_from("x.bank.example").unwrap(), tcp)
            .await
            .expect("the upstream's own leaf");
        let (mut sender, conn) = client1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        let resp = sender
            .send_request(
                Request::get("/json")
                    .header("host", "x.bank.example")
                    .body(Full::<Bytes>::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], JSON.as_bytes(), "passthrough is not masked");
        assert!(
            records.take().is_empty(),
            "passthrough has no request records"
        );
        assert_eq!(seen.requests.load(Ordering::SeqCst), 2);
    }

    /// A client that never sends its ClientHello, and one that sends it and then stalls, are
    /// each dropped at the deadline: either would otherwise hold a connection slot that every
    /// workload shares. (Paused time: the deadline passes without the wait.)
    #[tokio::test(start_paused = true)]
    async fn a_client_that_stalls_its_handshake_is_dropped_at_the_deadline() {
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let local_ca = Arc::new(LocalCa::load_or_create(dirs.0.path()).unwrap());
        let upstream_ca = Arc::new(LocalCa::load_or_create(dirs.1.path()).unwrap());
        let policy = tls_policy(
            "terminate",
            upstream_ca.cert_path(),
            "server_name = \"upstream.test\"",
        );
        let target = policy.target("api").unwrap().http.clone().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dst = l.local_addr().unwrap();
        let hello = {
            let mut conn = rustls::ClientConnection::new(
                client_config(local_ca.cert_path(), ALPN_HTTP1),
                ServerName::try_from("api.example").unwrap(),
            )
            .unwrap();
            let mut bytes = Vec::new();
            conn.write_tls(&mut bytes).unwrap();
            bytes
        };
        for sends_hello in [false, true] {
            let mut client = TcpStream::connect(dst).await.unwrap();
            if sends_hello {
                client.write_all(&hello).await.unwrap();
            }
            let (server, _) = l.accept().await.unwrap();
            let started = tokio::time::Instant::now();
            let accepted = tokio::time::timeout(
                Duration::from_secs(60),
                accept(
                    local_ca.clone(),
                    &target,
                    dst,
                    server,
                    Arc::new(Counters::default()),
                ),
            )
            .await
            .expect("the client's handshake has a deadline");
            match (sends_hello, accepted) {
                (false, Err(crate::http::tls::ClientTlsError::NotTls)) => {}
                (true, Err(crate::http::tls::ClientTlsError::Handshake(e))) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
                }
                (_, Err(e)) => panic!("hello sent: {sends_hello}: unexpected error {e}"),
                (_, Ok(_)) => panic!("hello sent: {sends_hello}: a stalled handshake succeeded"),
            }
            assert!(started.elapsed() >= crate::http::tls::HELLO_TIMEOUT);
        }
    }

    /// An upstream that takes the connection and never answers the ClientHello fails the request
    /// at the deadline instead of holding it (and the client's connection) for ever.
    #[tokio::test(start_paused = true)]
    async fn an_upstream_that_stalls_its_handshake_fails_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Arc::new(LocalCa::load_or_create(dir.path()).unwrap());
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (hello_tx, mut hello_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let _ = hello_tx.send(n);
            std::future::pending::<()>().await;
            drop(s);
        });
        let connector: Connector =
            Box::new(move || Box::pin(async move { TcpStream::connect(addr).await }));
        let tls = UpstreamTls {
            config: client_config(ca.cert_path(), ALPN_HTTP1),
            name: Some("upstream.test".into()),
        };
        let upstream = Upstream::new(None, connector, Some(tls), None);
        let started = tokio::time::Instant::now();
        let ready = tokio::time::timeout(
            Duration::from_secs(60),
            upstream.ready("upstream.test", false),
        )
        .await
        .expect("the upstream's handshake has a deadline");
        match ready {
            Err(e) => assert!(e.to_string().contains("handshake timed out"), "{e}"),
            Ok(_) => panic!("a stalled upstream handshake succeeded"),
        }
        assert!(started.elapsed() >= crate::http::tls::HELLO_TIMEOUT);
        assert!(
            hello_rx.recv().await.unwrap() > 0,
            "the upstream had a ClientHello"
        );
    }

    #[tokio::test]
    async fn originate_verifies_the_request_host() {
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let local_ca = Arc::new(LocalCa::load_or_create(dirs.0.path()).unwrap());
        let upstream_ca = Arc::new(LocalCa::load_or_create(dirs.1.path()).unwrap());
        let (upstream, _seen, mut alpns) = https_upstream(upstream_ca.clone()).await;
        let records = Arc::new(Records::default());
        let policy = tls_policy("originate", upstream_ca.cert_path(), "");
        let proxy = tls_proxy(local_ca, policy, upstream, records.clone()).await;
        // Plain HTTP/1.1 from the client; TLS upstream, verified for the Host it asked for.
        let mut c = h1_client(proxy).await;
        let (status, _, body) = send(&mut c, get("/json")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, JSON_MASKED));
        assert_eq!(alpns.recv().await, Some(false), "http/1.1 upstream");
        // An upstream that cannot prove the name: a 502, recorded, never a plain fallback.
        let other_ca = tempfile::tempdir().unwrap();
        let wrong = Arc::new(LocalCa::load_or_create(other_ca.path()).unwrap());
        let (bad_upstream, bad_seen, _) = https_upstream(wrong).await;
        let policy = tls_policy("originate", upstream_ca.cert_path(), "");
        let local = Arc::new(LocalCa::load_or_create(dirs.0.path()).unwrap());
        let proxy = tls_proxy(local, policy, bad_upstream, records.clone()).await;
        let mut c = h1_client(proxy).await;
        let (status, _, _) = send(&mut c, get("/json")).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(bad_seen.requests.load(Ordering::SeqCst), 0);
        let recs = records.take();
        let last = recs.last().unwrap();
        assert_eq!(last.status, Some(502));
        assert!(
            last.error.as_deref().unwrap().contains("TLS"),
            "{:?}",
            last.error
        );
    }
}

/// The pool key of plain-HTTP target `api` at `dst`.
fn pool_key(workload: &str, dst: SocketAddr, generation: u64) -> PoolKey {
    PoolKey {
        workload: workload.into(),
        target: "api".into(),
        dst,
        tls_name: None,
        generation,
    }
}

/// One client connection through a session whose upstream pools into `pool` under `key`: a GET,
/// then the client closes and the session ends (returning its upstream connection).
async fn exchange_through_pool(
    upstream: SocketAddr,
    pool: &Arc<Pool>,
    key: PoolKey,
    path: &str,
) -> StatusCode {
    request_through_pool(upstream, pool, key, get(path)).await
}

/// As [`exchange_through_pool`], with any request.
async fn request_through_pool(
    upstream: SocketAddr,
    pool: &Arc<Pool>,
    key: PoolKey,
    req: Request<Full<Bytes>>,
) -> StatusCode {
    request_through_pool_tls(upstream, pool, key, req, None).await
}

/// As [`request_through_pool`], with TLS towards the upstream.
async fn request_through_pool_tls(
    upstream: SocketAddr,
    pool: &Arc<Pool>,
    key: PoolKey,
    req: Request<Full<Bytes>>,
    tls: Option<UpstreamTls>,
) -> StatusCode {
    let mut secret = tempfile::NamedTempFile::new().unwrap();
    secret.write_all(TOKEN.as_bytes()).unwrap();
    let policy = policy(secret.path());
    let target = policy.target("api").unwrap().http.clone().unwrap();
    let gate: Arc<dyn Gate> = Arc::new(PolicyGate { policy });
    let l = proxy_listener();
    let proxy = l.local_addr().unwrap();
    let connector: Connector =
        Box::new(move || Box::pin(async move { TcpStream::connect(upstream).await }));
    let pooling = Pooling {
        pool: pool.clone(),
        key,
    };
    let served = tokio::spawn(async move {
        let (client, _) = l.accept().await.unwrap();
        let session = Arc::new(Session::new(
            uuid::Uuid::now_v7(),
            "etl".into(),
            upstream,
            target,
            gate,
            Arc::new(Records::default()),
            Upstream::new(None, connector, tls, Some(pooling)),
        ));
        let limits = Limits {
            max_request_header: 16 * 1024,
            idle: Duration::from_secs(30),
        };
        let io = Counted::new(client, Arc::new(Counters::default()));
        conn::serve_client(io, false, session, limits, std::future::pending()).await
    });
    let mut c = h1_client(proxy).await;
    let (status, _, _) = send(&mut c, req).await;
    drop(c);
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("session ends when the client closes")
        .unwrap();
    status
}

/// A pool for `etl` at `upstream` after one session's GET of `/json` (answered 200), and its key.
async fn after_one_get(upstream: SocketAddr) -> (Arc<Pool>, PoolKey) {
    let pool = Arc::new(Pool::default());
    let key = pool_key("etl", upstream, 1);
    assert_eq!(
        exchange_through_pool(upstream, &pool, key.clone(), "/json").await,
        StatusCode::OK
    );
    (pool, key)
}

#[tokio::test]
async fn an_idle_upstream_connection_serves_the_next_session_with_the_same_key_only() {
    let (upstream, seen) = upstream_server().await;
    let pool = Arc::new(Pool::default());
    let key = |workload: &str, generation| pool_key(workload, upstream, generation);
    // (key, upstream connections opened so far, idle connections kept after the session)
    let steps = [
        (key("etl", 1), 1, 1),
        // the same key: the kept connection again
        (key("etl", 1), 1, 1),
        // another workload never gets it
        (key("reports", 1), 2, 2),
        // nor does a later policy generation (and the older generation's are closed)
        (key("etl", 2), 3, 1),
        (key("etl", 2), 3, 1),
    ];
    for (i, (key, opened, kept)) in steps.into_iter().enumerate() {
        let status = exchange_through_pool(upstream, &pool, key, "/json").await;
        assert_eq!(status, StatusCode::OK, "step {i}");
        assert_eq!(seen.connections.load(Ordering::SeqCst), opened, "step {i}");
        assert_eq!(pool.len(), kept, "step {i}");
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_denied_request_takes_no_connection_from_the_pool() {
    let (upstream, seen) = upstream_server().await;
    let (pool, key) = after_one_get(upstream).await;
    assert_eq!(pool.len(), 1);
    assert_eq!(
        exchange_through_pool(upstream, &pool, key, "/v1/sys/health").await,
        StatusCode::FORBIDDEN
    );
    // Still idle in the pool, and the server saw one connection and one request.
    assert_eq!(pool.len(), 1);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn only_safe_methods_take_a_pooled_connection_and_ntlm_keeps_one_private() {
    let (upstream, seen) = upstream_server().await;
    let pool = Arc::new(Pool::default());
    let key = pool_key("etl", upstream, 1);
    let post = Request::post("/upload")
        .header("host", "api.example:8080")
        .body(Full::new(Bytes::from_static(b"abc")))
        .unwrap();
    // (request, status, upstream connections opened so far, idle connections kept after)
    let steps = [
        (get("/json"), StatusCode::OK, 1, 1),
        // a POST never goes out on a pooled connection; it leaves its own to the pool
        (post, StatusCode::OK, 2, 2),
        (get("/json"), StatusCode::OK, 2, 2),
        // a server answering NTLM binds the connection to this client: not kept
        (get("/ntlm"), StatusCode::UNAUTHORIZED, 2, 1),
        (get("/json"), StatusCode::OK, 2, 1),
    ];
    for (i, (req, status, opened, kept)) in steps.into_iter().enumerate() {
        let got = request_through_pool(upstream, &pool, key.clone(), req).await;
        assert_eq!(got, status, "step {i}");
        assert_eq!(seen.connections.load(Ordering::SeqCst), opened, "step {i}");
        assert_eq!(pool.len(), kept, "step {i}");
    }
}

/// An idle HTTP/1.1 connection to `addr`, ready for a request.
async fn idle_connection(addr: SocketAddr) -> Idle {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = client1::handshake::<_, ProxyBody>(TokioIo::new(stream))
        .await
        .unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.ready().await.unwrap();
    Idle::new((sender, driver))
}

#[tokio::test]
async fn the_pool_keeps_at_most_its_limit_per_key_and_sweeps_closed_connections() {
    // A server that holds the sockets it accepts until told to close them all.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (close_tx, mut close_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            tokio::select! {
                Ok((s, _)) = l.accept() => held.push(s),
                _ = &mut close_rx => return,
            }
        }
    });
    let pool = Pool::default();
    let key = |workload: &str| pool_key(workload, addr, 1);
    for _ in 0..MAX_PER_KEY + 2 {
        pool.put(key("etl"), idle_connection(addr).await);
    }
    pool.put(key("reports"), idle_connection(addr).await);
    assert_eq!(pool.len(), MAX_PER_KEY + 1);
    pool.sweep();
    assert_eq!(pool.len(), MAX_PER_KEY + 1, "open connections stay");
    // The server closes every connection: their drivers end, and the sweep drops them.
    close_tx.send(()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !pool.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed connections kept"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        pool.sweep();
    }
    assert!(pool.take(&key("etl")).is_none());
}

#[tokio::test]
async fn the_pool_keeps_at_most_its_limit_in_all_and_closes_the_oldest() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let pool = Pool::with_limits(2, 3);
    let key = |workload: &str| pool_key(workload, addr, 1);
    pool.put(key("etl"), idle_connection(addr).await);
    pool.put(key("etl"), idle_connection(addr).await);
    pool.put(key("reports"), idle_connection(addr).await);
    assert_eq!(pool.len(), 3);
    // A fourth: the oldest of all (etl's first) is closed to make room.
    pool.put(key("reports"), idle_connection(addr).await);
    assert_eq!(pool.len(), 3);
    let taken = |workload: &str| std::iter::from_fn(|| pool.take(&key(workload))).count();
    assert_eq!(taken("etl"), 1);
    assert_eq!(taken("reports"), 2);
}

/// An HTTP/1.1 server (over TLS when `tls` is set) that answers the first request of its first
/// connection, then reads the second request on that connection and closes it unanswered (an
/// idle connection closed by its server just as a request arrives; over TLS, without
/// close_notify). Every other connection is answered normally. Counts connections, and keeps
/// each request head read.
async fn closing_server(tls: Option<tokio_rustls::TlsAcceptor>) -> (SocketAddr, Arc<Heads>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let heads = Arc::new(Heads::default());
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let first = seen.connections.fetch_add(1, Ordering::SeqCst) == 0;
            let (seen, tls) = (seen.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(tcp).await {
                            serve_closing(s, first, &seen).await;
                        }
                    }
                    None => serve_closing(tcp, first, &seen).await,
                }
            });
        }
    });
    (addr, heads)
}

/// Connections and request heads a [`closing_server`] saw.
#[derive(Default)]
struct Heads {
    connections: AtomicUsize,
    heads: std::sync::Mutex<Vec<String>>,
}

impl Heads {
    fn all(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

async fn serve_closing<S>(mut s: S, first: bool, seen: &Heads)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let mut buf = Vec::new();
    let mut answered = 0;
    loop {
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0_u8; 1024];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head: Vec<u8> = buf.drain(..end).collect();
        seen.heads
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&head).to_lowercase());
        if first && answered == 1 {
            return; // dropped: closed unanswered
        }
        if s.write_all(OK).await.is_err() || s.flush().await.is_err() {
            return;
        }
        answered += 1;
    }
}

#[tokio::test]
async fn a_safe_request_on_a_pooled_connection_closed_under_it_is_sent_again() {
    let (upstream, seen) = closing_server(None).await;
    let (pool, key) = after_one_get(upstream).await;
    assert_eq!(pool.len(), 1);
    // The next session takes the idle connection; the server closes it under the GET, which
    // goes out again on a new connection instead of failing with a 502.
    assert_eq!(
        exchange_through_pool(upstream, &pool, key, "/json?x=1").await,
        StatusCode::OK
    );
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    let heads = seen.all();
    assert_eq!(heads.len(), 3, "{heads:?}");
    // The same request twice: its path and the injected credential.
    for head in &heads[1..] {
        assert!(head.starts_with("get /json?x=1 http/1.1\r\n"), "{head}");
        assert!(
            head.contains(&format!("authorization: bearer {TOKEN}\r\n")),
            "{head}"
        );
    }
}

#[tokio::test]
async fn a_request_with_a_body_is_not_sent_again() {
    let (upstream, seen) = closing_server(None).await;
    let (pool, key) = after_one_get(upstream).await;
    let get_with_body = Request::get("/json")
        .header("host", "api.example:8080")
        .body(Full::new(Bytes::from_static(b"abc")))
        .unwrap();
    assert_eq!(
        request_through_pool(upstream, &pool, key, get_with_body).await,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    assert_eq!(seen.all().len(), 2);
}

/// `discard(epoch)` drops the session's connection only while it is still the one of that
/// epoch: a stale discard (from a request that failed on a connection already replaced) leaves
/// the newer connection alone.
#[tokio::test]
async fn discard_drops_only_the_connection_of_its_epoch() {
    let (upstream, seen) = upstream_server().await;
    let connector: Connector =
        Box::new(move || Box::pin(async move { TcpStream::connect(upstream).await }));
    let up = Upstream::new(None, connector, None, None);
    // The server counts a connection when its accept loop gets to it.
    let accepted = |n: usize| {
        let seen = seen.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while seen.connections.load(Ordering::SeqCst) != n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never {n} connections"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let first = up.ready("api.example", false).await.unwrap().epoch();
    accepted(1).await;
    up.discard(first).await;
    let second = up.ready("api.example", false).await.unwrap().epoch();
    accepted(2).await;
    assert_ne!(first, second);
    // Stale: the connection stays (same epoch, no new connection).
    up.discard(first).await;
    assert_eq!(
        up.ready("api.example", false).await.unwrap().epoch(),
        second
    );
    // Current: the next request opens a new one.
    up.discard(second).await;
    let third = up.ready("api.example", false).await.unwrap().epoch();
    assert_ne!(third, second);
    accepted(3).await;
}

/// A listener set up as the agent's (`proxy::bind`): accepted sockets have `TCP_NODELAY`, which
/// the handlers no longer set themselves.
fn proxy_listener() -> TcpListener {
    crate::proxy::bind(&["127.0.0.1:0".parse().expect("addr")])
        .expect("bind")
        .pop()
        .expect("one listener")
}
