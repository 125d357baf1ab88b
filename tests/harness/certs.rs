//! Test TLS material made with the `openssl` command: self-signed CAs and server certificates
//! they sign (EC P-256, valid 3 days). Used by the suites whose servers speak TLS.
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// `openssl req` arguments for a new unencrypted EC P-256 key.
const NEW_KEY: &[&str] = &[
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// Creates a self-signed CA with common name `cn` as `<dir>/<stem>.pem` (certificate) and
/// `<dir>/<stem>.key`; returns the certificate's path.
pub fn ca(dir: &Path, stem: &str, cn: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("certs dir");
    let cert = dir.join(format!("{stem}.pem"));
    let (key_path, cert_path, subject) = (
        s(&dir.join(format!("{stem}.key"))),
        s(&cert),
        format!("/CN={cn}"),
    );
    openssl(
        &[
            &["req", "-x509"][..],
            NEW_KEY,
            &[
                "-keyout",
                &key_path,
                "-out",
                &cert_path,
                "-days",
                "3",
                "-subj",
                &subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    cert
}

/// Creates a server certificate for `name` (CN and DNS SAN) and `ip` (IP SAN), signed by the CA
/// `<dir>/<ca_stem>.pem` made by [`ca`], as `<dir>/server.crt` and `<dir>/server.key`; returns
/// (certificate, key).
pub fn server(dir: &Path, ca_stem: &str, name: &str, ip: IpAddr) -> (PathBuf, PathBuf) {
    let p = |file: &str| dir.join(file);
    let (cert, key, csr, ext) = (
        p("server.crt"),
        p("server.key"),
        p("server.csr"),
        p("server.ext"),
    );
    std::fs::write(
        &ext,
        format!(
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:{name},IP:{ip}\n"
        ),
    )
    .expect("write ext");
    let (key_path, csr_path, subject) = (s(&key), s(&csr), format!("/CN={name}"));
    openssl(
        &[
            &["req", "-new"][..],
            NEW_KEY,
            &["-keyout", &key_path, "-out", &csr_path, "-subj", &subject],
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&p(&format!("{ca_stem}.pem"))),
        "-CAkey",
        &s(&p(&format!("{ca_stem}.key"))),
        "-CAcreateserial",
        "-out",
        &s(&cert),
        "-days",
        "3",
        "-extfile",
        &s(&ext),
    ]);
    (cert, key)
}

fn s(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_owned()
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
