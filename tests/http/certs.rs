//! TLS material of the test's nginx, made with the `openssl` command: a CA (the trust anchor the
//! verifying targets name in `ca_file`), a server certificate it signs for [`SERVER_NAME`] and
//! 127.0.0.1, and a second, unrelated CA (a target that names it must fail to verify nginx).
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use crate::harness::certs;

/// The name in nginx's certificate (CN and DNS SAN); clients reach it with `curl --resolve`.
pub const SERVER_NAME: &str = "api.tollgate.test";

/// Paths of the generated files.
#[derive(Debug, Clone)]
pub struct Certs {
    /// nginx's CA certificate (PEM).
    pub ca: PathBuf,
    /// nginx's certificate (PEM), signed by [`Certs::ca`].
    pub cert: PathBuf,
    /// nginx's key (PEM, unencrypted).
    pub key: PathBuf,
    /// A CA that signed nothing nginx has.
    pub other_ca: PathBuf,
}

/// Generates everything in `dir`.
pub fn generate(dir: &Path) -> Certs {
    let ca = certs::ca(dir, "ca", "tollgate test nginx CA");
    let other_ca = certs::ca(dir, "other-ca", "tollgate test unrelated CA");
    let (cert, key) = certs::server(dir, "ca", SERVER_NAME, Ipv4Addr::LOCALHOST.into());
    Certs {
        ca,
        cert,
        key,
        other_ca,
    }
}
