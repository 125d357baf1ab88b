//! The test server's TLS material, made with the `openssl` command: a CA (the trust anchor a
//! `verify-full` target names in `ca_file`) and a server certificate it signs for
//! [`SERVER_NAME`] and the server's IP address.
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

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
    std::fs::create_dir_all(dir).expect("certs dir");
    let p = |name: &str| dir.join(name);
    let certs = Certs {
        ca: p("ca.pem"),
        cert: p("server.crt"),
        key: p("server.key"),
    };
    let ext = p("server.ext");
    std::fs::write(
        &ext,
        format!(
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:{SERVER_NAME},IP:{ip}\n"
        ),
    )
    .expect("write ext");
    let s = |path: &PathBuf| path.to_str().expect("utf-8 path").to_owned();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &s(&p("ca.key")),
        "-out",
        &s(&certs.ca),
        "-days",
        "3",
        "-subj",
        "/CN=tollgate test postgres CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &s(&certs.key),
        "-out",
        &s(&p("server.csr")),
        "-subj",
        &format!("/CN={SERVER_NAME}"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &s(&p("server.csr")),
        "-CA",
        &s(&certs.ca),
        "-CAkey",
        &s(&p("ca.key")),
        "-CAcreateserial",
        "-out",
        &s(&certs.cert),
        "-days",
        "3",
        "-extfile",
        &s(&ext),
    ]);
    certs
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
