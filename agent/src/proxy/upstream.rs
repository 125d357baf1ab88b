//! Connections from the agent to targets: marked so the connect hooks never redirect them.
use std::{io, net::SocketAddr, os::fd::AsRawFd, time::Duration};

use agent_common::TOLLGATE_MARK;
use tokio::net::{TcpSocket, TcpStream};

/// Errors connecting upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Socket setup failed.
    #[error("socket for {0}: {1}")]
    Socket(SocketAddr, #[source] io::Error),
    /// The target refused or was unreachable.
    #[error("connect to {0}: {1}")]
    Connect(SocketAddr, #[source] io::Error),
    /// No answer within the connect timeout.
    #[error("connect to {0}: timed out after {1:?}")]
    Timeout(SocketAddr, Duration),
}

impl UpstreamError {
    /// Short label for the audit record.
    pub fn label(&self) -> String {
        match self {
            Self::Socket(_, e) => format!("upstream-error: {e}"),
            Self::Connect(_, e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                "upstream-refused".into()
            }
            Self::Connect(_, e) => format!("upstream-error: {e}"),
            Self::Timeout(..) => "upstream-timeout".into(),
        }
    }
}

/// [`connect`] with the agent's connect timeout; a failure counts in `upstream_failures`.
pub async fn connect_counted(
    ctx: &super::Context,
    dst: SocketAddr,
) -> Result<TcpStream, UpstreamError> {
    let result = connect(dst, ctx.settings.connect_timeout).await;
    if let Err(e) = &result {
        super::context::Stats::inc(&ctx.stats.upstream_failed);
        tracing::debug!(error = %e, "upstream connect failed");
    }
    result
}

/// Connects to `dst` with `SO_MARK` set and `TCP_NODELAY` on.
pub async fn connect(dst: SocketAddr, timeout: Duration) -> Result<TcpStream, UpstreamError> {
    let sock = match dst {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| UpstreamError::Socket(dst, e))?;
    set_mark(&sock).map_err(|e| UpstreamError::Socket(dst, e))?;
    let stream = tokio::time::timeout(timeout, sock.connect(dst))
        .await
        .map_err(|_| UpstreamError::Timeout(dst, timeout))?
        .map_err(|e| UpstreamError::Connect(dst, e))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn set_mark(sock: &TcpSocket) -> io::Result<()> {
    let mark: libc::c_int = TOLLGATE_MARK as libc::c_int;
    // SAFETY: valid fd, pointer to a c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MARK,
            (&mark as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
