//! Tests of the TLS module: real handshakes over loopback with tokio-rustls, and the certificates
//! the local CA writes and issues, inspected with x509-parser.
mod ca;
mod client_auth;
mod handshake;

use std::{io, sync::Arc, time::Duration};

use rustls::{
    ClientConfig, ServerConfig,
    pki_types::{CertificateDer, ServerName},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// What one side of a completed exchange saw.
#[derive(Debug)]
struct Seen {
    /// SNI received (server side).
    sni: Option<String>,
    /// ALPN protocol agreed.
    alpn: Option<Vec<u8>>,
    /// Certificates presented by the peer.
    peer_certs: Vec<CertificateDer<'static>>,
}

fn seen(conn: &rustls::CommonState, sni: Option<&str>) -> Seen {
    Seen {
        sni: sni.map(str::to_string),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        peer_certs: conn
            .peer_certificates()
            .map(<[_]>::to_vec)
            .unwrap_or_default(),
    }
}

/// One TLS connection over loopback: the client connects to `name` (a DNS name, or an IP address
/// which sends no SNI), writes "ping", and expects "pong". Returns (client side, server side).
async fn exchange(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    name: &str,
) -> (io::Result<Seen>, io::Result<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_side = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = TlsAcceptor::from(server).accept(tcp).await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        tls.write_all(b"pong").await?;
        tls.flush().await?;
        let (_, conn) = tls.get_ref();
        Ok::<_, io::Error>(seen(conn, conn.server_name()))
    });
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let client_side = async move {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = TlsConnector::from(client).connect(server_name, tcp).await?;
        tls.write_all(b"ping").await?;
        tls.flush().await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        if &buf != b"pong" {
            return Err(io::Error::other("unexpected reply"));
        }
        let (_, conn) = tls.get_ref();
        Ok(seen(conn, None))
    };
    let both = async {
        let client = client_side.await;
        let server = server_side.await.unwrap();
        (client, server)
    };
    tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("handshake timed out")
}

/// A server certificate resolver that always presents the same leaf, whatever the SNI.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn fixed_server(leaf: Arc<CertifiedKey>) -> Arc<ServerConfig> {
    Arc::new(
        ServerConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(leaf))),
    )
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}
