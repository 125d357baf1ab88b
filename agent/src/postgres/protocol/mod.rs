//! PostgreSQL protocol v3 wire codec: framing and typed messages, no I/O.
//!
//! Two steps, kept apart so that pass-through costs nothing:
//!
//! 1. **Framing** ([`next_frontend`], [`next_backend`]) cuts whole messages off a `BytesMut`
//!    read buffer. A frame keeps its raw bytes ([`FrontendFrame::raw`]) and can be forwarded as is.
//!    Lengths are checked as soon as the header is buffered: below the minimum is
//!    [`ProtocolError::BadLength`], above the limit is [`ProtocolError::TooLong`] (before the
//!    body is waited for). Unknown type bytes are refused: a proxy that enforces policy does not
//!    forward what it cannot read.
//! 2. **Decoding** ([`FrontendFrame::decode`], [`BackendFrame::decode`], or each type's
//!    `decode(body)`) turns a body (the bytes after the length word) into a typed message. Each
//!    type's `encode(&mut BytesMut)` writes the whole message, header included.
//!
//! Every read is bounds-checked (see `wire.rs`); no input makes the codec panic.
//!
//! # Text fields
//!
//! PostgreSQL sends text in the session's `client_encoding`. The codec requires **UTF-8** for the
//! fields it must understand to enforce policy: startup parameters, SQL text, statement and
//! portal names, SASL mechanism names, column names, command tags, parameter status, and
//! notification channels and payloads. Anything else is [`ProtocolError::InvalidUtf8`]; the
//! session layer must therefore keep `client_encoding` at `UTF8`. Error and notice field values
//! are decoded lossily (U+FFFD) instead, because the server may send them before
//! `client_encoding` applies (authentication failures) and the proxy must still relay them.
//! Binary payloads (bind parameters, data row values, COPY data, SASL data, passwords) stay
//! [`bytes::Bytes`].
//!
//! # Encoding limits
//!
//! Encoding cannot fail. Strings are cut at their first NUL (a NUL would otherwise end the field
//! early and smuggle further fields), lists stop at `u16::MAX` items, values at `i32::MAX` bytes,
//! and startup parameters with an empty name are skipped (an empty name ends the list).
//!
//! # Secrets
//!
//! `Debug` never prints passwords, SASL data, cancel keys, bind parameters, data row values or
//! COPY data: only their lengths.
pub mod backend;
mod copy_data;
mod empty;
mod error;
mod frame;
pub mod frontend;
mod wire;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod testing;

pub use backend::*;
pub use copy_data::CopyData;
pub use empty::{
    BindComplete, CloseComplete, CopyDone, EmptyQueryResponse, Flush, NoData, ParseComplete,
    PortalSuspended, Sync, Terminate,
};
pub use error::{ProtocolError, Side};
pub use frame::{
    BackendFrame, FrontendFrame, FrontendKind, MAX_AUTH_MESSAGE_LEN, MAX_MESSAGE_LEN,
    MAX_SMALL_MESSAGE_LEN, MAX_STARTUP_LEN, next_backend, next_frontend,
};
pub use frontend::*;

/// Format code of a text value.
pub const FORMAT_TEXT: i16 = 0;
/// Format code of a binary value.
pub const FORMAT_BINARY: i16 = 1;
