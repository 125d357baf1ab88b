//! TLS of an http target, the three cases plus plain HTTP:
//!
//! - `terminate`: the ClientHello is peeked (not consumed); an SNI in `passthrough_sni` goes
//!   through as L4, untouched; otherwise tollgate terminates with a leaf of its local CA (ALPN
//!   `h2`, `http/1.1`) and re-originates TLS upstream, verified for `server_name` or the SNI,
//!   offering the protocol the client chose first;
//! - `originate`: the client speaks plain HTTP/1.1, tollgate speaks TLS upstream, verified for
//!   `server_name` or the request's host;
//! - `none`: plain both ways; `passthrough`: L4 only.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tracing::debug;

use super::{
    io::{Counted, Counters},
    sni::{self, Peeked},
    upstream::UpstreamTls,
};
use crate::{
    policy::{HttpTarget, HttpTls},
    tls::{self, ALPN_H2, ALPN_HTTP1, LocalCa, ServerOptions},
};

/// Longest wait for the client's ClientHello; and, apart, for the rest of its handshake (a
/// client that stalls there would hold its connection slot, which every workload shares).
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Any client stream.
pub trait ClientIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ClientIo for T {}

/// Why the client side could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// The client did not send a TLS ClientHello on a `terminate` target.
    #[error("client did not start TLS")]
    NotTls,
    /// Reading the ClientHello or the handshake failed.
    #[error("client TLS handshake: {0}")]
    Handshake(#[source] std::io::Error),
    /// A TLS configuration could not be built.
    #[error("{0}")]
    Config(#[from] tls::TlsError),
}

/// The client side, ready.
pub enum ClientSide {
    /// Copy bytes both ways, untouched (L4).
    Passthrough(TcpStream),
    /// Serve HTTP on `io`.
    Http {
        /// The stream (counted; TLS when terminated).
        io: Box<dyn ClientIo>,
        /// HTTP/2 (negotiated by ALPN).
        h2: bool,
        /// TLS towards the upstream, when tollgate speaks it.
        upstream_tls: Option<UpstreamTls>,
    },
}

/// Sets up the client side of `target` on `client`.
pub async fn accept(
    ca: Arc<LocalCa>,
    target: &HttpTarget,
    dst: SocketAddr,
    client: TcpStream,
    counters: Arc<Counters>,
) -> Result<ClientSide, ClientTlsError> {
    // `TCP_NODELAY` is on: inherited from the listener (`proxy::bind`).
    match target.tls {
        HttpTls::Passthrough => Ok(ClientSide::Passthrough(client)),
        HttpTls::None => Ok(ClientSide::Http {
            io: Box::new(Counted::new(client, counters)),
            h2: false,
            upstream_tls: None,
        }),
        HttpTls::Originate => Ok(ClientSide::Http {
            io: Box::new(Counted::new(client, counters)),
            h2: false,
            upstream_tls: Some(UpstreamTls::new(target, None, vec![ALPN_HTTP1.to_vec()])?),
        }),
        HttpTls::Terminate => {
            let sni = match sni::peek(&client, HELLO_TIMEOUT)
                .await
                .map_err(ClientTlsError::Handshake)?
            {
                Peeked::Hello(sni) => sni,
                Peeked::NotTls | Peeked::NeedMore => return Err(ClientTlsError::NotTls),
            };
            if target.passes_through(sni.as_deref()) {
                debug!(sni = ?sni, "SNI passes through");
                return Ok(ClientSide::Passthrough(client));
            }
            let config = tls::server_config(
                ca,
                ServerOptions {
                    fallback_name: Some(dst.ip().to_string()),
                    alpn: vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()],
                },
            )?;
            let accept =
                tokio_rustls::TlsAcceptor::from(config).accept(Counted::new(client, counters));
            let stream = tokio::time::timeout(HELLO_TIMEOUT, accept)
                .await
                .map_err(|_| {
                    ClientTlsError::Handshake(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client did not finish its handshake in time",
                    ))
                })?
                .map_err(ClientTlsError::Handshake)?;
            let h2 = stream.get_ref().1.alpn_protocol() == Some(ALPN_H2);
            let alpn = if h2 {
                vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()]
            } else {
                vec![ALPN_HTTP1.to_vec()]
            };
            let upstream_tls = UpstreamTls::new(target, sni, alpn)?;
            Ok(ClientSide::Http {
                io: Box::new(stream),
                h2,
                upstream_tls: Some(upstream_tls),
            })
        }
    }
}
