//! Byte streams of a session (plain TCP or TLS on either side) and framed reads on them.
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::postgres::protocol::{
    BackendFrame, FrontendFrame, MAX_MESSAGE_LEN, MAX_STARTUP_LEN, ProtocolError, next_backend,
    next_frontend,
};

/// Either side of a session: a plain or TLS stream.
pub trait PgStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PgStream for T {}

/// A boxed stream.
pub type BoxStream = Box<dyn PgStream>;

/// Read errors of a framed stream.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Malformed bytes.
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
    /// The peer closed the stream.
    #[error("closed")]
    Closed,
    /// A well-formed message at the wrong time, or one the session refuses to read.
    #[error("protocol violation: {0}")]
    Violation(String),
}

/// Free space a read asks for: a whole typical message (and a whole reply of several) in one
/// `recv`, instead of the few bytes left at the end of the buffer.
const READ_SPACE: usize = 8 * 1024;

/// Reads more bytes into `buf`, making room for [`READ_SPACE`] first (a buffer whose frames
/// were split off and dropped is reused from its start). Returns how many bytes came; 0 at end.
pub async fn fill<S: AsyncRead + Unpin + ?Sized>(
    s: &mut S,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < READ_SPACE {
        buf.reserve(READ_SPACE);
    }
    s.read_buf(buf).await
}

/// Reads the next client message (`startup` before the StartupMessage).
pub async fn read_frontend<S: AsyncRead + Unpin + ?Sized>(
    s: &mut S,
    buf: &mut BytesMut,
    startup: bool,
) -> Result<FrontendFrame, ReadError> {
    let max = if startup {
        MAX_STARTUP_LEN
    } else {
        MAX_MESSAGE_LEN
    };
    loop {
        if let Some(f) = next_frontend(buf, startup, max)? {
            return Ok(f);
        }
        if fill(s, buf).await? == 0 {
            return Err(ReadError::Closed);
        }
    }
}

/// Reads the next server message.
pub async fn read_backend<S: AsyncRead + Unpin + ?Sized>(
    s: &mut S,
    buf: &mut BytesMut,
) -> Result<BackendFrame, ReadError> {
    loop {
        if let Some(f) = next_backend(buf, MAX_MESSAGE_LEN)? {
            return Ok(f);
        }
        if fill(s, buf).await? == 0 {
            return Err(ReadError::Closed);
        }
    }
}

/// Reads exactly one byte (the answer to SSLRequest / GSSENCRequest).
pub async fn read_byte<S: AsyncRead + Unpin + ?Sized>(s: &mut S) -> Result<u8, ReadError> {
    let mut b = [0u8; 1];
    match s.read_exact(&mut b).await {
        Ok(_) => Ok(b[0]),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ReadError::Closed),
        Err(e) => Err(e.into()),
    }
}

/// Writes and flushes.
pub async fn send<S: AsyncWrite + Unpin + ?Sized>(s: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    s.write_all(bytes).await?;
    s.flush().await
}
