//! TLS material of the test's nginx, made with the `openssl` command: a CA (the trust anchor the
//! verifying targets name in `ca_file`), a server certificate it signs for [`SERVER_NAME`] and
//! 127.0.0.1, and a second, unrelated CA (a target that names it must fail to verify nginx).
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

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
    std::fs::create_dir_all(dir).expect("certs dir");
    let p = |name: &str| dir.join(name);
    let s = |path: &Path| path.to_str().expect("utf-8 path").to_owned();
    let certs = Certs {
        ca: p("ca.pem"),
        cert: p("server.crt"),
        key: p("server.key"),
        other_ca: p("other-ca.pem"),
    };
    for (cert, key, cn) in [
        (&certs.ca, p("ca.key"), "tollgate test nginx CA"),
        (
            &certs.other_ca,
            p("other-ca.key"),
            "tollgate test unrelated CA",
        ),
    ] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &s(&key),
            "-out",
            &s(cert),
            "-days",
            "3",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }
    let ext = p("server.ext");
    std::fs::write(
        &ext,
        format!(
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:{SERVER_NAME},IP:127.0.0.1\n"
        ),
    )
    .expect("write ext");
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
