//! The test server's TLS material, made with the `openssl` command: a CA (the trust anchor a
//! `verify-full` target names in `ca_file`) and a server certificate it signs for
//! [`SERVER_NAME`] and the server's IP address.
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use crate::harness::certs;

/// The name in the server certificate (CN and DNS SAN).
pub const SERVER_NAME: &str = "pg.tollgate.test";

/// Paths of the generated files.
#[derive(Debug, Clone)]
pub struct Certs {
    /// CA certificate (PEM).
    pub ca: PathBuf,
    /// Server certificate (PEM), signed by the CA.
    pub cert: PathBuf,
    /// Server key (PEM, unencrypted).
    pub key: PathBuf,
}

/// Generates the CA and the server certificate for `ip` in `dir`.
pub fn generate(dir: &Path, ip: Ipv4Addr) -> Certs {
    let ca = certs::ca(dir, "ca", "tollgate test postgres CA");
    let (cert, key) = certs::server(dir, "ca", SERVER_NAME, ip.into());
    Certs { ca, cert, key }
}
