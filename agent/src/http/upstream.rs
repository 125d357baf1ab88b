//! The upstream side of a session: one connection at a time per client connection, opened lazily
//! for the first allowed request (a denied request never touches the upstream), reopened to the
//! same destination if the server closed it. HTTP/2 when the upstream negotiates it by ALPN
//! (requests multiplexed), else HTTP/1.1 (requests one at a time). An HTTP/1.1 connection left
//! idle when the session ends goes to the [`Pool`], and a session takes its first connection from
//! there when one with its key is idle (see [`super::pool`]).
use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{Arc, Mutex as StdMutex, PoisonError},
};

use hyper::{
    Request, Response,
    body::Incoming,
    client::conn::{http1, http2},
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::{ClientConfig, pki_types::ServerName};
use tokio::{net::TcpStream, sync::Mutex, task::JoinHandle};
use tracing::debug;

use super::{
    body::ProxyBody,
    pool::{Idle, Pool, PoolKey},
};
use crate::{policy::normalize_host, tls};

/// Opens a new TCP connection to the destination (the proxy's marked connect in production).
pub type Connector =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>> + Send + Sync>;

/// Why the upstream cannot take a request.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Reconnecting failed.
    #[error("connect: {0}")]
    Connect(#[source] io::Error),
    /// The TLS handshake (or its configuration) failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The HTTP handshake or the exchange failed.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The request cannot be shaped for the new connection.
    #[error("request: {0}")]
    Request(String),
}

impl UpstreamError {
    /// Whether the connection ended before any response came: closed or reset by the server,
    /// or the request never left. Such a safe request without a body may be sent again.
    pub fn no_response(&self) -> bool {
        let UpstreamError::Http(e) = self else {
            return false;
        };
        if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
            return true;
        }
        // A TLS server that closes without close_notify: rustls says UnexpectedEof.
        std::error::Error::source(e)
            .and_then(|s| s.downcast_ref::<io::Error>())
            .is_some_and(|io| {
                matches!(
                    io.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                )
            })
    }
}

/// TLS towards the upstream.
#[derive(Clone)]
pub struct UpstreamTls {
    /// Verified client config (`tls::Verify::Full`), ALPN already set.
    pub config: Arc<ClientConfig>,
    /// Name to verify: the target's `server_name`, else the client's SNI; `None`: the request's
    /// host.
    pub name: Option<String>,
}

impl UpstreamTls {
    /// A verified config for `target` offering `alpn`.
    pub fn new(
        target: &crate::policy::HttpTarget,
        name: Option<String>,
        alpn: Vec<Vec<u8>>,
    ) -> Result<Self, tls::TlsError> {
        let cert = target
            .client_cert
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()));
        let base = tls::client_config(tls::Verify::Full, target.ca_file.as_deref(), cert)?;
        let mut config = (*base).clone();
        config.alpn_protocols = alpn;
        Ok(Self {
            config: Arc::new(config),
            name: target.server_name.clone().or(name),
        })
    }
}

/// The upstream connection's state.
pub enum State {
    /// Not handshaken yet: the hand-off's connection, or none (reconnect).
    Fresh(Option<TcpStream>),
    /// HTTP/1.1.
    H1(http1::SendRequest<ProxyBody>),
    /// HTTP/2.
    H2(http2::SendRequest<ProxyBody>),
}

/// Where a session's idle connections go, and under which key (its TLS name is added per
/// connection).
pub struct Pooling {
    /// The agent's pool.
    pub pool: Arc<Pool>,
    /// The session's key; `tls_name` is filled in per connection.
    pub key: PoolKey,
}

/// Whether a request may go out on a pooled connection: only safe methods (GET, HEAD, OPTIONS;
/// RFC 9110 §9.2.1), which a client may send again if a server closes an idle connection just as
/// the request reaches it. Others open a connection of their own (and may leave it to the pool).
pub fn reusable(method: &hyper::Method) -> bool {
    matches!(
        *method,
        hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
    )
}

/// The session's upstream.
pub struct Upstream {
    state: Arc<Mutex<State>>,
    connect: Connector,
    tls: Option<UpstreamTls>,
    /// Connection driver tasks, aborted with the session (the current connection's is last).
    drivers: StdMutex<Vec<JoinHandle<()>>>,
    pooling: Option<Pooling>,
    /// The pool key of the current connection.
    current: StdMutex<Option<PoolKey>>,
    /// Cleared when the session's connection must not serve anyone else
    /// (see [`Upstream::keep_private`]).
    poolable: std::sync::atomic::AtomicBool,
    /// Counts the connections the session has had; changed only under the `state` lock.
    epoch: std::sync::atomic::AtomicU64,
}

/// A connection ready for one request.
pub struct Ready {
    conn: ReadyConn,
    /// Taken from the pool for this request: it was idle, and its server may be closing it just
    /// as the request reaches it.
    pooled: bool,
    /// Which of the session's connections this is (see [`Upstream::discard`]).
    epoch: u64,
}

enum ReadyConn {
    /// HTTP/1.1: holds the connection until the request is sent.
    H1(tokio::sync::OwnedMutexGuard<State>),
    /// HTTP/2.
    H2(http2::SendRequest<ProxyBody>),
}

/// A request that failed upstream.
pub struct SendError {
    /// Why.
    pub error: UpstreamError,
    /// The request, when it never left (the connection was closed before it was written): it
    /// may go out on another connection whatever its method, its body untouched.
    pub unsent: Option<Request<ProxyBody>>,
}

impl SendError {
    fn unsent(error: hyper::Error, req: Request<ProxyBody>) -> Self {
        Self {
            error: error.into(),
            unsent: Some(req),
        }
    }
}

impl From<hyper::client::conn::TrySendError<Request<ProxyBody>>> for SendError {
    fn from(mut e: hyper::client::conn::TrySendError<Request<ProxyBody>>) -> Self {
        let unsent = e.take_message();
        Self {
            error: e.into_error().into(),
            unsent,
        }
    }
}

impl Ready {
    /// Whether the request must be shaped for HTTP/2.
    pub fn is_h2(&self) -> bool {
        matches!(self.conn, ReadyConn::H2(_))
    }

    /// Whether the connection came from the pool for this request: it was idle, and its server
    /// may be closing it just as the request reaches it.
    pub fn is_pooled(&self) -> bool {
        self.pooled
    }

    /// Which of the session's connections this is, for [`Upstream::discard`].
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Sends `req`; resolves with the response head.
    pub async fn send(self, req: Request<ProxyBody>) -> Result<Response<Incoming>, SendError> {
        match self.conn {
            ReadyConn::H2(mut s) => {
                if let Err(e) = s.ready().await {
                    return Err(SendError::unsent(e, req));
                }
                Ok(s.try_send_request(req).await?)
            }
            ReadyConn::H1(mut guard) => {
                let State::H1(s) = &mut *guard else {
                    return Err(SendError {
                        error: UpstreamError::Request("connection not ready".into()),
                        unsent: Some(req),
                    });
                };
                if let Err(e) = s.ready().await {
                    return Err(SendError::unsent(e, req));
                }
                let response = s.try_send_request(req);
                drop(guard);
                Ok(response.await?)
            }
        }
    }
}

impl Upstream {
    /// The upstream over `first` (a connection already open) if any, else a connection from the
    /// pool or a new one from `connect`.
    pub fn new(
        first: Option<TcpStream>,
        connect: Connector,
        tls: Option<UpstreamTls>,
        pooling: Option<Pooling>,
    ) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::Fresh(first))),
            connect,
            tls,
            drivers: StdMutex::new(Vec::new()),
            pooling,
            current: StdMutex::new(None),
            poolable: std::sync::atomic::AtomicBool::new(true),
            epoch: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Keeps this session's connections out of the pool: they carry state bound to the connection
    /// (NTLM or Negotiate authenticate a connection, not a request).
    pub fn keep_private(&self) {
        self.poolable
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// The pool key of a connection made for a request to `host`.
    fn key(&self, host: &str) -> Option<PoolKey> {
        let pooling = self.pooling.as_ref()?;
        let mut key = pooling.key.clone();
        key.tls_name = self.tls.as_ref().map(|t| self.tls_name(t, host));
        Some(key)
    }

    /// The name upstream TLS verifies for a request to `host`.
    fn tls_name(&self, t: &UpstreamTls, host: &str) -> String {
        t.name.clone().unwrap_or_else(|| normalize_host(host))
    }

    /// Whether the upstream speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A connection for the next request; `host` (the request's) names the server to verify when
    /// nothing else does. A new connection may come from the pool only when `reuse` (the request
    /// is safe to send on a connection the server may be closing, see [`reusable`]).
    pub async fn ready(&self, host: &str, reuse: bool) -> Result<Ready, UpstreamError> {
        let mut guard = self.state.clone().lock_owned().await;
        let closed = match &*guard {
            State::Fresh(_) => true,
            State::H1(s) => s.is_closed(),
            State::H2(s) => s.is_closed(),
        };
        if closed {
            let tcp = match &mut *guard {
                State::Fresh(first) => first.take(),
                _ => None,
            };
            let key = self.key(host);
            *crate::sync::lock(&self.current) = key.clone();
            if tcp.is_none()
                && reuse
                && let (Some(pooling), Some(key)) = (&self.pooling, &key)
                && let Some((sender, driver)) = pooling.pool.take(key).and_then(Idle::into_conn)
            {
                debug!("upstream connection reused from the pool");
                crate::sync::lock(&self.drivers).push(driver);
                *guard = State::H1(sender);
                let epoch = self.next_epoch();
                return Ok(Ready {
                    conn: ReadyConn::H1(guard),
                    pooled: true,
                    epoch,
                });
            }
            let tcp = match tcp {
                Some(t) => t,
                None => {
                    debug!("upstream connection closed: reconnecting");
                    (self.connect)().await.map_err(UpstreamError::Connect)?
                }
            };
            // A failed handshake leaves `Fresh(None)`: the next request reconnects.
            *guard = State::Fresh(None);
            *guard = self.handshake(tcp, host).await?;
            self.next_epoch();
        }
        let epoch = self.epoch.load(std::sync::atomic::Ordering::Relaxed);
        let conn = match &*guard {
            State::H2(s) => ReadyConn::H2(s.clone()),
            _ => ReadyConn::H1(guard),
        };
        Ok(Ready {
            conn,
            pooled: false,
            epoch,
        })
    }

    /// A new connection is in place (called under the `state` lock).
    fn next_epoch(&self) -> u64 {
        self.epoch
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// Drops connection `epoch` (see [`Ready::epoch`]) when a request failed on it, unless the
    /// session has already replaced it: the next [`Upstream::ready`] opens a new connection (or
    /// takes one from the pool if its caller allows).
    pub async fn discard(&self, epoch: u64) {
        let mut state = self.state.lock().await;
        if self.epoch.load(std::sync::atomic::Ordering::Relaxed) == epoch {
            *state = State::Fresh(None);
        }
    }

    async fn handshake(&self, tcp: TcpStream, host: &str) -> Result<State, UpstreamError> {
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.http(tcp, false).await,
            Some(t) => {
                let name = self.tls_name(t, host);
                let server_name = ServerName::try_from(name.clone())
                    .map_err(|e| UpstreamError::Tls(format!("server name {name:?}: {e}")))?;
                let connect =
                    tokio_rustls::TlsConnector::from(t.config.clone()).connect(server_name, tcp);
                // A server that takes the connection and then stalls would hold the request.
                let stream = tokio::time::timeout(super::tls::HELLO_TIMEOUT, connect)
                    .await
                    .map_err(|_| UpstreamError::Tls(format!("{name}: handshake timed out")))?
                    .map_err(|e| UpstreamError::Tls(format!("{name}: {e}")))?;
                let h2 = stream.get_ref().1.alpn_protocol() == Some(tls::ALPN_H2);
                self.http(stream, h2).await
            }
        }
    }

    async fn http<IO>(&self, io: IO, h2: bool) -> Result<State, UpstreamError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let io = TokioIo::new(io);
        let (state, driver) = if h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .handshake(io)
                .await?;
            let driver = tokio::spawn(async move {
                if let Err(e) = conn.await {
                    debug!(error = %e, "upstream http2 connection ended");
                }
            });
            (State::H2(sender), driver)
        } else {
            let (sender, conn) = http1::Builder::new().handshake(io).await?;
            let driver = tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    debug!(error = %e, "upstream http1 connection ended");
                }
            });
            (State::H1(sender), driver)
        };
        let mut drivers = crate::sync::lock(&self.drivers);
        drivers.retain(|d| !d.is_finished());
        drivers.push(driver);
        Ok(state)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let drivers = self
            .drivers
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        // An idle HTTP/1.1 connection (its last response read to the end, not upgraded) is kept
        // for the next session with the same key; `Pool::put` refuses one that is not idle.
        if let Some(pooling) = &self.pooling
            && *self.poolable.get_mut()
            && let Some(key) = self
                .current
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            && let Ok(mut state) = self.state.try_lock()
            && let State::H1(sender) = std::mem::replace(&mut *state, State::Fresh(None))
            && let Some(driver) = drivers.pop()
        {
            pooling.pool.put(key, Idle::new((sender, driver)));
        }
        for d in drivers.drain(..) {
            d.abort();
        }
    }
}
