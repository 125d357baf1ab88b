//! The client side of a session: a hyper server on the client's stream, HTTP/1.1 (keep-alive,
//! `Expect: 100-continue`, upgrades) or HTTP/2 (chosen by ALPN when tollgate terminates TLS),
//! each request handed to [`Session::exchange`]. A request hyper cannot parse is answered by
//! hyper (400, 431) and recorded; the connection ends, the agent goes on. An idle connection is
//! closed after `idle`: by hyper's header read timeout on HTTP/1.1, by [`idle`](super::idle) on
//! HTTP/2 and on a spliced WebSocket.
use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use hyper::{
    server::conn::{http1, http2},
    service::service_fn,
    upgrade::{OnUpgrade, Upgraded},
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use super::{
    audit::Exchange,
    body::boxed,
    exchange::Session,
    idle::{Activity, Held},
    io::Counted,
};
use crate::proxy::copy::CopyEnd;

/// Smallest read buffer hyper accepts for HTTP/1.1.
const MIN_BUF: usize = 8192;
/// How long in-flight responses may go on after the connection is told to close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Limits of the client side.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head, bytes.
    pub max_request_header: usize,
    /// Longest wait for a request head (also between keep-alive requests); how long an HTTP/2
    /// connection or a spliced WebSocket may stay idle.
    pub idle: Duration,
}

/// Serves requests on `io` until the client closes, the idle timeout, or `stop`.
pub async fn serve_client<IO>(
    io: IO,
    h2: bool,
    session: Arc<Session>,
    limits: Limits,
    stop: impl Future<Output = ()>,
) -> CopyEnd
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // HTTP/2: each stream is in flight from its request until its response body is sent.
    let streams = Activity::new();
    let svc = {
        let session = session.clone();
        let streams = streams.clone();
        service_fn(move |req| {
            let s = session.clone();
            let open = h2.then(|| streams.open());
            async move {
                let resp = s.exchange(req).await;
                Ok::<_, Infallible>(match open {
                    Some(open) => resp.map(|body| boxed(Held::new(body, open))),
                    None => resp,
                })
            }
        })
    };
    let io = TokioIo::new(io);
    tokio::pin!(stop);
    let result = if h2 {
        let header_list = u32::try_from(limits.max_request_header).unwrap_or(u32::MAX);
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(header_list)
            .keep_alive_interval(None)
            .serve_connection(io, svc);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            () = &mut stop => {
                conn.as_mut().graceful_shutdown();
                end_after_stop(conn).await;
                return CopyEnd::Shutdown;
            }
            () = streams.idle_for(limits.idle) => {
                debug!("idle http2 connection closed");
                conn.as_mut().graceful_shutdown();
                end_after_stop(conn).await;
                return CopyEnd::IdleTimeout;
            }
        }
    } else {
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.idle)
            .max_buf_size(limits.max_request_header.max(MIN_BUF))
            .keep_alive(true)
            .serve_connection(io, svc)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            () = &mut stop => {
                conn.as_mut().graceful_shutdown();
                end_after_stop(conn).await;
                return CopyEnd::Shutdown;
            }
        }
    };
    let end = match result {
        Ok(()) => CopyEnd::Closed,
        Err(e) => {
            if e.is_parse() || e.is_parse_too_large() {
                let status = if e.is_parse_too_large() { 431 } else { 400 };
                Exchange::malformed(
                    session.connection_id,
                    session.next_seq(),
                    status,
                    format!("malformed request: {e}"),
                    session.recorder.as_ref(),
                );
                CopyEnd::Error(std::io::Error::other(format!("malformed request: {e}")))
            } else if e.is_timeout() {
                CopyEnd::IdleTimeout
            } else if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
                CopyEnd::Closed
            } else {
                CopyEnd::Error(std::io::Error::other(e.to_string()))
            }
        }
    };
    // An upgraded (WebSocket) connection outlives the HTTP connection, which ends with the
    // switch: splice it now.
    match session.take_upgrade() {
        Some((client, server)) => tokio::select! {
            spliced = splice(client, server, limits.idle) => spliced.unwrap_or(end),
            () = &mut stop => CopyEnd::Shutdown,
        },
        None => end,
    }
}

/// Copies both ways between the upgraded client and upstream connections until both close
/// (`None`), or neither moved a byte for `idle`.
async fn splice(client: OnUpgrade, server: OnUpgrade, idle: Duration) -> Option<CopyEnd> {
    let (client, server): (Upgraded, Upgraded) = match tokio::try_join!(client, server) {
        Ok(pair) => pair,
        Err(e) => {
            debug!(error = %e, "upgrade failed");
            return None;
        }
    };
    let activity = Activity::new();
    let mut client = Counted::new(TokioIo::new(client), activity.clone());
    let mut server = Counted::new(TokioIo::new(server), activity.clone());
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut server) => {
            if let Err(e) = copied {
                debug!(error = %e, "upgraded connection ended");
            }
            None
        }
        () = activity.idle_for(idle) => {
            debug!("idle upgraded connection closed");
            Some(CopyEnd::IdleTimeout)
        }
    }
}

/// After a graceful shutdown request: let in-flight responses finish, briefly.
async fn end_after_stop<F, E>(conn: std::pin::Pin<&mut F>)
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    if let Ok(Err(e)) = tokio::time::timeout(CLOSE_GRACE, conn).await {
        debug!(error = %e, "connection ended during shutdown");
    }
}
