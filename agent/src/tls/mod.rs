//! TLS for tollgate's L7 handlers: a local CA that issues leaves for the names tollgate terminates
//! TLS for ([`LocalCa`]), a server config that terminates client TLS with those leaves
//! ([`server_config`]), and upstream client configs with or without verification
//! ([`client_config`]). rustls with the `ring` provider only.
mod ca;
mod client;
mod error;
mod files;
mod insecure;
mod leaf;
mod server;
#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

pub use ca::LocalCa;
pub use client::{Verify, client_config};
pub use error::TlsError;
pub use server::{ALPN_H2, ALPN_HTTP1, ALPN_POSTGRESQL, ServerOptions, server_config};

/// The crypto provider every tollgate TLS config uses (`ring`), built once. Configs are built
/// with it explicitly, never with a process-wide default.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}
