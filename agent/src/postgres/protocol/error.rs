//! The codec's error type: every variant names the message and what is wrong with it.
use std::fmt;

use thiserror::Error;

/// Which peer sent a message: the client (frontend) or the server (backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Client to server.
    Frontend,
    /// Server to client.
    Backend,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Frontend => "frontend",
            Side::Backend => "backend",
        })
    }
}

/// A malformed, oversized or unsupported PostgreSQL message.
///
/// `message` is the message's protocol name (`"Bind"`, `"startup packet"`), `field` the part being
/// read when the problem was found.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The body ends before `field` is complete.
    #[error("{message}: truncated at {field}: need {need} bytes, have {have}")]
    Truncated {
        message: &'static str,
        field: &'static str,
        need: usize,
        have: usize,
    },
    /// The length word announces more than the limit for this message.
    #[error("{message}: length {len} exceeds the limit of {max} bytes")]
    TooLong {
        message: &'static str,
        len: usize,
        max: usize,
    },
    /// The length word is below the minimum for this message (or negative), or does not match
    /// the message's fixed size.
    #[error("{message}: invalid length {len}")]
    BadLength { message: &'static str, len: i64 },
    /// A C string runs to the end of the body without a NUL terminator.
    #[error("{message}: {field} is not NUL-terminated")]
    MissingNul {
        message: &'static str,
        field: &'static str,
    },
    /// A text field is not valid UTF-8 (see the module documentation for which fields are text).
    #[error("{message}: {field} is not valid UTF-8")]
    InvalidUtf8 {
        message: &'static str,
        field: &'static str,
    },
    /// A field holds a value the protocol does not allow.
    #[error("{message}: invalid {field} {value}")]
    InvalidValue {
        message: &'static str,
        field: &'static str,
        value: i64,
    },
    /// Bytes remain after the last field of the message.
    #[error("{message}: {count} unexpected bytes after the last field")]
    TrailingBytes { message: &'static str, count: usize },
    /// The type byte names no message this side may send.
    #[error("unknown {side} message type byte {tag:#04x}")]
    UnknownType { side: Side, tag: u8 },
    /// A startup-phase packet carries a request code that is neither a protocol version nor a
    /// known special request.
    #[error("unknown startup request code {code}")]
    UnknownRequestCode { code: u32 },
    /// A StartupMessage asks for a protocol other than 3.x.
    #[error("unsupported protocol version {major}.{minor}")]
    UnsupportedVersion { major: u16, minor: u16 },
    /// A StartupMessage names the same parameter twice (the server would keep the last value
    /// while a naive reader keeps the first, so it is refused).
    #[error("{message}: parameter {name:?} appears twice")]
    DuplicateParameter { message: &'static str, name: String },
    /// A Bind or FunctionCall has a number of format codes other than 0, 1 or its argument count.
    #[error("{message}: {formats} format codes for {values} values")]
    FormatCountMismatch {
        message: &'static str,
        formats: usize,
        values: usize,
    },
    /// The client opened with a TLS record instead of a startup packet (PostgreSQL 17
    /// `sslnegotiation=direct`).
    #[error("startup: client sent a TLS handshake without SSLRequest (direct SSL)")]
    DirectSsl,
}
