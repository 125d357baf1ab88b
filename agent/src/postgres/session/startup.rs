//! The client side of the startup: TLS when the client asks and the target allows it (leaf from
//! tollgate's local CA), GSS encryption refused, CancelRequests handed back for routing.
use std::sync::Arc;

use bytes::BytesMut;
use tokio::net::TcpStream;

use crate::postgres::protocol::{
    CancelRequest, FrontendKind, FrontendMessage, GSSENC_REFUSED, SSL_ACCEPTED, SSL_REFUSED,
    StartupMessage,
};

use super::stream::{BoxStream, ReadError, read_frontend, send};

/// What the client wants.
pub enum ClientStart {
    /// A session.
    Session {
        /// The client stream (TLS if negotiated).
        stream: BoxStream,
        /// Bytes read past the startup packet.
        buf: BytesMut,
        /// Its startup packet.
        startup: StartupMessage,
        /// Whether the client side is TLS.
        tls: bool,
    },
    /// Cancel a running query of another session.
    Cancel(CancelRequest),
}

/// Reads the client's opening messages.
pub async fn accept(
    mut tcp: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<ClientStart, ReadError> {
    let mut buf = BytesMut::new();
    // Before TLS: plain messages on the socket.
    loop {
        let frame = read_frontend(&mut tcp, &mut buf, true).await?;
        match frame.kind() {
            FrontendKind::SslRequest => {
                let Some(config) = tls.clone() else {
                    send(&mut tcp, &[SSL_REFUSED]).await?;
                    continue;
                };
                if !buf.is_empty() {
                    // Bytes sent before our answer would be read as if they came over TLS.
                    return Err(violation(
                        "data after SSLRequest before the server answered",
                    ));
                }
                send(&mut tcp, &[SSL_ACCEPTED]).await?;
                let stream = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await?;
                let mut stream: BoxStream = Box::new(stream);
                return after_tls(&mut stream, buf)
                    .await
                    .map(|(buf, startup)| match startup {
                        Startup::Session(startup) => ClientStart::Session {
                            stream,
                            buf,
                            startup,
                            tls: true,
                        },
                        Startup::Cancel(c) => ClientStart::Cancel(c),
                    });
            }
            FrontendKind::GssEncRequest => send(&mut tcp, &[GSSENC_REFUSED]).await?,
            FrontendKind::CancelRequest | FrontendKind::Startup(_) => {
                return match decode_startup(&frame.decode()?)? {
                    Startup::Cancel(c) => Ok(ClientStart::Cancel(c)),
                    Startup::Session(startup) => Ok(ClientStart::Session {
                        stream: Box::new(tcp),
                        buf,
                        startup,
                        tls: false,
                    }),
                };
            }
            FrontendKind::Message(_) => return Err(violation("message before startup")),
        }
    }
}

enum Startup {
    Session(StartupMessage),
    Cancel(CancelRequest),
}

async fn after_tls(
    stream: &mut BoxStream,
    mut buf: BytesMut,
) -> Result<(BytesMut, Startup), ReadError> {
    let frame = read_frontend(stream, &mut buf, true).await?;
    match frame.kind() {
        FrontendKind::CancelRequest | FrontendKind::Startup(_) => {
            let s = decode_startup(&frame.decode()?)?;
            Ok((buf, s))
        }
        _ => Err(violation("expected a startup packet after TLS")),
    }
}

fn decode_startup(msg: &FrontendMessage) -> Result<Startup, ReadError> {
    match msg {
        FrontendMessage::CancelRequest(c) => Ok(Startup::Cancel(c.clone())),
        FrontendMessage::StartupMessage(s) if s.version.major == 3 && s.version.minor == 0 => {
            Ok(Startup::Session(s.clone()))
        }
        FrontendMessage::StartupMessage(_) => Err(violation(
            "protocol version other than 3.0 (tollgate speaks 3.0)",
        )),
        _ => Err(violation("expected a startup packet")),
    }
}

fn violation(what: &str) -> ReadError {
    ReadError::Violation(what.into())
}
