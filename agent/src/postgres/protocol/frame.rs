//! Framing: cut whole messages off a read buffer, keeping their raw bytes.
//!
//! Pure functions over a `BytesMut` (mini-redis's "buffer, check a frame, then parse"): they
//! return `Ok(None)` until a whole message is buffered and consume nothing in that case.
use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

use super::backend::{self, BackendMessage};
use super::error::{ProtocolError, Side};
use super::frontend::{
    self, CANCEL_REQUEST_CODE, CancelRequest, FrontendMessage, GSSENC_REQUEST_CODE, GssEncRequest,
    ProtocolVersion, SSL_REQUEST_CODE, SslRequest, StartupMessage,
};

/// Default limit on a message's length word: room for large DataRow and CopyData messages.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024 * 1024;
/// Limit on a startup-phase packet (PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_LEN: usize = 10_000;
/// Limit on frontend messages PostgreSQL reads with `PQ_SMALL_MESSAGE_LIMIT` (Sync, Flush,
/// Describe, Close, Execute, CopyDone, CopyFail, Terminate).
pub const MAX_SMALL_MESSAGE_LEN: usize = 10_000;
/// Limit on password and SASL messages (PostgreSQL's `PG_MAX_AUTH_TOKEN_LENGTH`).
pub const MAX_AUTH_MESSAGE_LEN: usize = 65_535;

/// First byte of a TLS handshake record: a client using direct SSL sends it instead of a
/// startup packet.
const TLS_HANDSHAKE: u8 = 0x16;

/// What a frontend frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontendKind {
    /// A StartupMessage asking for this protocol version (startup phase).
    Startup(ProtocolVersion),
    /// An SSLRequest (startup phase).
    SslRequest,
    /// A GSSENCRequest (startup phase).
    GssEncRequest,
    /// A CancelRequest (startup phase, on a fresh connection).
    CancelRequest,
    /// A regular message with this type byte.
    Message(u8),
}

/// One whole frontend message as received.
#[derive(Clone, PartialEq, Eq)]
pub struct FrontendFrame {
    kind: FrontendKind,
    raw: Bytes,
}

impl FrontendFrame {
    /// What the frame is.
    pub fn kind(&self) -> FrontendKind {
        self.kind
    }

    /// The message's protocol name, for logs.
    pub fn name(&self) -> &'static str {
        match self.kind {
            FrontendKind::Startup(_) => StartupMessage::NAME,
            FrontendKind::SslRequest => SslRequest::NAME,
            FrontendKind::GssEncRequest => GssEncRequest::NAME,
            FrontendKind::CancelRequest => CancelRequest::NAME,
            FrontendKind::Message(tag) => frontend::tagged_info(tag).map_or("unknown", |i| i.0),
        }
    }

    /// The bytes exactly as received, header included.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The bytes exactly as received, header included.
    pub fn into_raw(self) -> Bytes {
        self.raw
    }

    /// The body: everything after the length word (for startup packets this starts with the
    /// protocol version or request code).
    pub fn body(&self) -> Bytes {
        let header = match self.kind {
            FrontendKind::Message(_) => 5,
            _ => 4,
        };
        self.raw.slice(header.min(self.raw.len())..)
    }

    /// Decodes the frame into a typed message.
    pub fn decode(&self) -> Result<FrontendMessage, ProtocolError> {
        let body = self.body();
        match self.kind {
            FrontendKind::Startup(_) => StartupMessage::decode(body).map(Into::into),
            FrontendKind::SslRequest => SslRequest::decode(body).map(Into::into),
            FrontendKind::GssEncRequest => GssEncRequest::decode(body).map(Into::into),
            FrontendKind::CancelRequest => CancelRequest::decode(body).map(Into::into),
            FrontendKind::Message(tag) => FrontendMessage::decode_tagged(tag, body),
        }
    }
}

impl fmt::Debug for FrontendFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontendFrame")
            .field("kind", &self.kind)
            .field("len", &self.raw.len())
            .finish()
    }
}

/// One whole backend message as received.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendFrame {
    raw: Bytes,
}

impl BackendFrame {
    /// The message type byte.
    pub fn tag(&self) -> u8 {
        self.raw.first().copied().unwrap_or_default()
    }

    /// The message's protocol name, for logs.
    pub fn name(&self) -> &'static str {
        backend::tagged_info(self.tag()).unwrap_or("unknown")
    }

    /// The bytes exactly as received, header included.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The bytes exactly as received, header included.
    pub fn into_raw(self) -> Bytes {
        self.raw
    }

    /// The body: everything after the type byte and length word.
    pub fn body(&self) -> Bytes {
        self.raw.slice(5.min(self.raw.len())..)
    }

    /// Decodes the frame into a typed message.
    pub fn decode(&self) -> Result<BackendMessage, ProtocolError> {
        BackendMessage::decode_tagged(self.tag(), self.body())
    }
}

impl fmt::Debug for BackendFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendFrame")
            .field("tag", &char::from(self.tag()))
            .field("len", &self.raw.len())
            .finish()
    }
}

/// Cuts the next client message off `buf`.
///
/// In the startup phase (before the StartupMessage, and again after an SSLRequest or
/// GSSENCRequest is answered) packets have no type byte and are limited to
/// [`MAX_STARTUP_LEN`]; afterwards every message starts with a known type byte and is limited to
/// `max_len` (and to PostgreSQL's own lower limits for small and authentication messages).
/// All limits bound the length word, which counts itself.
pub fn next_frontend(
    buf: &mut BytesMut,
    startup_phase: bool,
    max_len: usize,
) -> Result<Option<FrontendFrame>, ProtocolError> {
    if startup_phase {
        return next_startup(buf, max_len);
    }
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    let Some((name, cap)) = frontend::tagged_info(tag) else {
        return Err(ProtocolError::UnknownType {
            side: Side::Frontend,
            tag,
        });
    };
    let Some(raw) = take_tagged(buf, name, max_len.min(cap))? else {
        return Ok(None);
    };
    Ok(Some(FrontendFrame {
        kind: FrontendKind::Message(tag),
        raw,
    }))
}

/// Cuts the next server message off `buf`; `max_len` bounds the length word.
pub fn next_backend(
    buf: &mut BytesMut,
    max_len: usize,
) -> Result<Option<BackendFrame>, ProtocolError> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    let Some(name) = backend::tagged_info(tag) else {
        return Err(ProtocolError::UnknownType {
            side: Side::Backend,
            tag,
        });
    };
    Ok(take_tagged(buf, name, max_len)?.map(|raw| BackendFrame { raw }))
}

fn next_startup(
    buf: &mut BytesMut,
    max_len: usize,
) -> Result<Option<FrontendFrame>, ProtocolError> {
    if buf.first() == Some(&TLS_HANDSHAKE) {
        return Err(ProtocolError::DirectSsl);
    }
    let Some(word) = peek_i32(buf, 0) else {
        return Ok(None);
    };
    let len = check_len("startup packet", word, 8, max_len.min(MAX_STARTUP_LEN))?;
    if buf.len() < len {
        return Ok(None);
    }
    let code = peek_i32(buf, 4).map_or(0, |c| c as u32);
    let kind = classify_startup(code, len)?;
    let raw = buf.split_to(len).freeze();
    Ok(Some(FrontendFrame { kind, raw }))
}

/// What a startup packet is, from its request code; fixed-size requests must have their size.
fn classify_startup(code: u32, len: usize) -> Result<FrontendKind, ProtocolError> {
    let fixed = |kind, message, want: usize| {
        if len == want {
            Ok(kind)
        } else {
            Err(ProtocolError::BadLength {
                message,
                len: len as i64,
            })
        }
    };
    match code {
        SSL_REQUEST_CODE => fixed(FrontendKind::SslRequest, SslRequest::NAME, 8),
        GSSENC_REQUEST_CODE => fixed(FrontendKind::GssEncRequest, GssEncRequest::NAME, 8),
        CANCEL_REQUEST_CODE => {
            if CancelRequest::PACKET_LEN.contains(&len) {
                Ok(FrontendKind::CancelRequest)
            } else {
                Err(ProtocolError::BadLength {
                    message: CancelRequest::NAME,
                    len: len as i64,
                })
            }
        }
        code => {
            let version = ProtocolVersion::from_code(code);
            match version.major {
                3 => Ok(FrontendKind::Startup(version)),
                1234 => Err(ProtocolError::UnknownRequestCode { code }),
                major => Err(ProtocolError::UnsupportedVersion {
                    major,
                    minor: version.minor,
                }),
            }
        }
    }
}

/// Splits off a tagged message once it is whole; checks its length word first.
fn take_tagged(
    buf: &mut BytesMut,
    name: &'static str,
    max: usize,
) -> Result<Option<Bytes>, ProtocolError> {
    let Some(word) = peek_i32(buf, 1) else {
        return Ok(None);
    };
    let len = check_len(name, word, 4, max)?;
    let total = len + 1;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(buf.split_to(total).freeze()))
}

/// The big-endian Int32 at `at`, if buffered.
fn peek_i32(buf: &BytesMut, at: usize) -> Option<i32> {
    let mut word = buf.get(at..at.checked_add(4)?)?;
    Some(word.get_i32())
}

/// Validates a length word against `min..=max`.
fn check_len(
    message: &'static str,
    word: i32,
    min: usize,
    max: usize,
) -> Result<usize, ProtocolError> {
    let bad = ProtocolError::BadLength {
        message,
        len: i64::from(word),
    };
    let len = usize::try_from(word).map_err(|_| bad.clone())?;
    if len < min {
        return Err(bad);
    }
    if len > max {
        return Err(ProtocolError::TooLong { message, len, max });
    }
    Ok(len)
}

#[cfg(test)]
mod tests;
