//! The CLI side: one connection, one request, one response.
use std::{io, path::Path, time::Duration};

use tokio::{io::BufReader, net::UnixStream};

use super::{
    AdminError,
    framing::{Frame, MAX_RESPONSE_LINE, read_line, write_line},
    protocol::{Request, Response},
};

/// How long a call may take, connect to answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends `req` to the agent listening on `socket` and returns its answer (which may be
/// `Response::Error`).
pub async fn call(socket: &Path, req: &Request) -> Result<Response, AdminError> {
    tokio::time::timeout(CALL_TIMEOUT, exchange(socket, req))
        .await
        .map_err(|_| AdminError::Timeout(socket.to_owned(), CALL_TIMEOUT))?
}

async fn exchange(socket: &Path, req: &Request) -> Result<Response, AdminError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| connect_error(socket, e))?;
    let io_err = |e| AdminError::Io(socket.to_owned(), e);
    let (read, mut write) = stream.into_split();
    write_line(&mut write, req).await.map_err(io_err)?;
    let mut reader = BufReader::new(read);
    match read_line(&mut reader, MAX_RESPONSE_LINE)
        .await
        .map_err(io_err)?
    {
        Frame::Line(line) => serde_json::from_slice(&line).map_err(AdminError::Decode),
        Frame::Eof => Err(AdminError::Closed(socket.to_owned())),
        Frame::TooLong => Err(AdminError::TooLarge),
    }
}

fn connect_error(socket: &Path, e: io::Error) -> AdminError {
    let path = socket.to_owned();
    match e.kind() {
        io::ErrorKind::ConnectionRefused => AdminError::NotRunning {
            path,
            reason: "connection refused",
        },
        io::ErrorKind::NotFound => AdminError::NotRunning {
            path,
            reason: "no socket",
        },
        io::ErrorKind::PermissionDenied => AdminError::Denied(path),
        _ => AdminError::Connect(path, e),
    }
}
