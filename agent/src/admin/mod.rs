//! The admin socket: a Unix stream socket (`<state_dir>/admin.sock`, mode 0660) speaking JSON
//! lines, one request → one response. Peers must be root (or the agent's own user) or members
//! of the admin group (checked with `SO_PEERCRED`). The agent serves it ([`serve`]); the CLI
//! calls it ([`call`]).
mod auth;
mod client;
mod framing;
pub mod protocol;
mod server;

use std::{future::Future, path::PathBuf, pin::Pin, time::Duration};

pub use client::call;
pub use framing::{MAX_REQUEST_LINE, MAX_RESPONSE_LINE};
pub use protocol::{Request, Response, SessionQuery, StatusReport};
pub use server::{bind, serve};

/// What the agent exposes on the admin socket.
pub trait AdminApi: Send + Sync + 'static {
    /// Current state, for `Request::Status`.
    fn status(&self) -> StatusReport;
    /// Every request but `Request::Status`.
    fn handle<'a>(&'a self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + 'a>>;
}

/// Errors of the admin socket, on either side.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `admin_group` names no group.
    #[error("admin group {0:?} does not exist")]
    UnknownGroup(String),
    /// The group database could not be read.
    #[error("cannot look up admin group {0:?}: {1}")]
    GroupLookup(String, #[source] nix::Error),
    /// Another agent answers on the socket.
    #[error("{0} is in use: is another `tollgate agent` running?")]
    InUse(PathBuf),
    /// Something that is not a socket sits where the socket goes.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// Creating, securing or placing the socket failed.
    #[error("cannot bind admin socket {0}: {1}")]
    Bind(PathBuf, #[source] std::io::Error),
    /// No agent listens on the socket.
    #[error("no agent at {path}: is `tollgate agent` running? ({reason})")]
    NotRunning {
        /// Socket path.
        path: PathBuf,
        /// "connection refused" or "no socket".
        reason: &'static str,
    },
    /// The socket's permissions keep this user out.
    #[error("permission denied on {0}: run as root or as a member of the admin group")]
    Denied(PathBuf),
    /// Connecting failed otherwise.
    #[error("cannot connect to {0}: {1}")]
    Connect(PathBuf, #[source] std::io::Error),
    /// Sending the request or reading the answer failed.
    #[error("admin socket {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    /// The agent closed the connection without answering.
    #[error("the agent at {0} closed the connection without answering")]
    Closed(PathBuf),
    /// The answer exceeded [`MAX_RESPONSE_LINE`].
    #[error("the agent's answer exceeds {MAX_RESPONSE_LINE} bytes")]
    TooLarge,
    /// The answer is not a [`Response`].
    #[error("cannot decode the agent's answer: {0}")]
    Decode(#[source] serde_json::Error),
    /// No answer in time.
    #[error("the agent at {0} did not answer within {1:?}")]
    Timeout(PathBuf, Duration),
}

#[cfg(test)]
mod tests;
