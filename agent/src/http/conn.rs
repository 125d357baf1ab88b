//! The client side of a session: a hyper server on the client's stream, HTTP/1.1 (keep-alive,
//! `Expect: 100-continue`, upgrades) or HTTP/2 (chosen by ALPN when tollgate terminates TLS),
//! each request handed to [`Session::exchange`]. A request hyper cannot parse is answered by
//! hyper (400, 431) and recorded; the connection ends, the agent goes on.
use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use hyper::{
    server::conn::{http1, http2},
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use super::{audit::Exchange, exchange::Session};
use crate::proxy::copy::CopyEnd;

/// Smallest read buffer hyper accepts for HTTP/1.1.
const MIN_BUF: usize = 8192;
/// How long a WebSocket splice may go on after the agent is told to stop.
const SPLICE_GRACE: Duration = Duration::from_secs(1);

/// Limits of the client side.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head, bytes.
    pub max_request_header: usize,
    /// Longest wait for a request head (also between keep-alive requests).
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
    let svc = {
        let session = session.clone();
        service_fn(move |req| {
            let s = session.clone();
            async move { Ok::<_, Infallible>(s.exchange(req).await) }
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
                return end_after_stop(conn).await;
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
                return end_after_stop(conn).await;
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
    // Upgraded (WebSocket) connections outlive the HTTP connection: wait for them.
    let splices = session.take_splices();
    if !splices.is_empty() {
        tokio::select! {
            _ = futures_join(splices) => {}
            () = &mut stop => return CopyEnd::Shutdown,
        }
    }
    end
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

/// After a graceful shutdown request: let in-flight responses finish, briefly.
async fn end_after_stop<F, E>(conn: std::pin::Pin<&mut F>) -> CopyEnd
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    if let Ok(Err(e)) = tokio::time::timeout(SPLICE_GRACE, conn).await {
        debug!(error = %e, "connection ended during shutdown");
    }
    CopyEnd::Shutdown
}
