//! Client-side TLS termination: a server config whose certificate is a local-CA leaf issued for
//! the name the client asked for (SNI), or for a fallback name when it sent none.
use std::sync::Arc;

use rustls::{
    ServerConfig,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tracing::{debug, warn};

use super::{LocalCa, TlsError};

/// ALPN protocol of PostgreSQL 17+ (required by its direct SSL negotiation).
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";
/// ALPN protocol of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Options of a terminating server config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerOptions {
    /// Name of the leaf when the ClientHello carries no SNI (clients send none for an IP address):
    /// typically the original destination IP, which becomes an IP SAN. `None`: such handshakes
    /// fail.
    pub fallback_name: Option<String>,
    /// ALPN protocols offered, in preference order (e.g. [`ALPN_POSTGRESQL`]). Empty: no ALPN.
    /// When non-empty, a client offering only other protocols is refused (rustls'
    /// `no_application_protocol`); one offering none is accepted.
    pub alpn: Vec<Vec<u8>>,
}

/// A server config for TLS 1.2 and 1.3, without client authentication, whose certificate is issued
/// by `ca` for the ClientHello's SNI (or `options.fallback_name`). Leaves come from the CA's
/// cache, so building one config per connection is cheap.
pub fn server_config(
    ca: Arc<LocalCa>,
    options: ServerOptions,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = ca.provider().clone();
    let resolver = LeafResolver {
        ca,
        fallback: options.fallback_name,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|source| TlsError::Config {
            context: "server protocol versions",
            source,
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = options.alpn;
    Ok(Arc::new(config))
}

/// Issues (or reuses) the leaf for the name of a ClientHello.
#[derive(Debug)]
struct LeafResolver {
    ca: Arc<LocalCa>,
    fallback: Option<String>,
}

impl ResolvesServerCert for LeafResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name();
        let Some(name) = sni.or(self.fallback.as_deref()) else {
            debug!("client sent no SNI and there is no fallback name: refusing the handshake");
            return None;
        };
        match self.ca.issue(&[name.to_string()]) {
            Ok(leaf) => Some(leaf),
            Err(error) => {
                warn!(name, sni = sni.is_some(), %error, "cannot issue a leaf certificate");
                None
            }
        }
    }
}
