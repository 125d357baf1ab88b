//! Terminating server configs and verified / unverified upstream client configs, end to end.
use std::{fs, sync::Arc};

use rustls::ClientConfig;
use x509_parser::{extensions::GeneralName, parse_x509_certificate};

use super::{exchange, fixed_server, strings};
use crate::tls::{
    ALPN_H2, ALPN_POSTGRESQL, LocalCa, ServerOptions, TlsError, Verify, client_config,
    server_config,
};

fn ca() -> (tempfile::TempDir, Arc<LocalCa>) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Arc::new(LocalCa::load_or_create(dir.path()).unwrap());
    (dir, ca)
}

fn with_alpn(config: Arc<ClientConfig>, alpn: &[u8]) -> Arc<ClientConfig> {
    let mut config = (*config).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

fn options(fallback: Option<&str>, alpn: &[&[u8]]) -> ServerOptions {
    ServerOptions {
        fallback_name: fallback.map(str::to_string),
        alpn: alpn.iter().map(|p| p.to_vec()).collect(),
    }
}

#[tokio::test]
async fn sni_leaf_verified_by_client_trusting_the_ca() {
    let (_dir, ca) = ca();
    let server = server_config(ca.clone(), options(None, &[ALPN_POSTGRESQL])).unwrap();
    let client = client_config(Verify::Full, Some(ca.cert_path()), None).unwrap();
    let client = with_alpn(client, ALPN_POSTGRESQL);
    let (c, s) = exchange(server, client, "db.internal").await;
    let (c, s) = (c.unwrap(), s.unwrap());
    assert_eq!(s.sni.as_deref(), Some("db.internal"));
    assert_eq!(c.alpn.as_deref(), Some(ALPN_POSTGRESQL));
    assert_eq!(s.alpn.as_deref(), Some(ALPN_POSTGRESQL));
    let leaf = parse_x509_certificate(&c.peer_certs[0]).unwrap().1;
    let sans = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .clone();
    assert_eq!(sans, vec![GeneralName::DNSName("db.internal")]);
    // The same leaf the CA's cache holds.
    assert_eq!(
        c.peer_certs[0],
        ca.issue(&strings(&["db.internal"])).unwrap().cert[0]
    );
}

#[tokio::test]
async fn no_sni_uses_fallback_ip_san() {
    let (_dir, ca) = ca();
    let client = client_config(Verify::Full, Some(ca.cert_path()), None).unwrap();
    // An IP server name: rustls sends no SNI, and verifies an IP SAN.
    let server = server_config(ca.clone(), options(Some("127.0.0.1"), &[])).unwrap();
    let (c, s) = exchange(server, client.clone(), "127.0.0.1").await;
    let (c, s) = (c.unwrap(), s.unwrap());
    assert_eq!(s.sni, None);
    let leaf = parse_x509_certificate(&c.peer_certs[0]).unwrap().1;
    let sans = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .clone();
    assert_eq!(sans, vec![GeneralName::IPAddress(&[127, 0, 0, 1])]);

    // Without a fallback the handshake is refused.
    let server = server_config(ca.clone(), options(None, &[])).unwrap();
    let (c, s) = exchange(server, client, "127.0.0.1").await;
    assert!(c.is_err() && s.is_err(), "{c:?} {s:?}");
}

#[tokio::test]
async fn server_refuses_a_foreign_alpn() {
    let (_dir, ca) = ca();
    let server = server_config(ca.clone(), options(None, &[ALPN_POSTGRESQL])).unwrap();
    let client = client_config(Verify::Full, Some(ca.cert_path()), None).unwrap();
    let (c, s) = exchange(
        server.clone(),
        with_alpn(client.clone(), ALPN_H2),
        "db.internal",
    )
    .await;
    assert!(c.is_err() && s.is_err(), "{c:?} {s:?}");
    // A client offering no ALPN is accepted.
    let (c, s) = exchange(server, client, "db.internal").await;
    assert_eq!(c.unwrap().alpn, None);
    s.unwrap();
}

#[tokio::test]
async fn full_rejects_wrong_name_insecure_accepts() {
    let (_dir, ca) = ca();
    let leaf = ca.issue(&strings(&["other.internal"])).unwrap();
    let full = client_config(Verify::Full, Some(ca.cert_path()), None).unwrap();
    let (c, s) = exchange(fixed_server(leaf.clone()), full.clone(), "db.internal").await;
    let err = c.unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    assert!(s.is_err());
    // The right name passes with the same server, so the failure above is the name.
    let (c, _) = exchange(fixed_server(leaf.clone()), full, "other.internal").await;
    c.unwrap();

    let insecure = client_config(Verify::Insecure, None, None).unwrap();
    let (c, s) = exchange(fixed_server(leaf), insecure, "db.internal").await;
    c.unwrap();
    s.unwrap();
}

#[tokio::test]
async fn full_rejects_untrusted_ca_insecure_accepts() {
    let (_dir, ca) = ca();
    let (_other_dir, other) = self::ca();
    let server = server_config(ca.clone(), options(None, &[])).unwrap();
    let full = client_config(Verify::Full, Some(other.cert_path()), None).unwrap();
    let (c, s) = exchange(server.clone(), full, "db.internal").await;
    // Both CAs have the same subject (same host name), so webpki reports the other CA's
    // signature as bad rather than an unknown issuer: a rejection of the chain either way.
    let err = c.unwrap_err();
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    assert!(s.is_err());
    // The system roots do not trust the local CA either.
    let system = client_config(Verify::Full, None, None).unwrap();
    let (c, _) = exchange(server.clone(), system, "db.internal").await;
    assert!(c.is_err());

    let insecure = client_config(Verify::Insecure, Some(other.cert_path()), None).unwrap();
    let (c, s) = exchange(server, insecure, "db.internal").await;
    c.unwrap();
    s.unwrap();
}

#[test]
fn client_configs_are_cached_per_file_version() {
    let (_dir, ca) = ca();
    let (_other_dir, other) = self::ca();
    let file = tempfile::NamedTempFile::new().unwrap();
    fs::write(file.path(), ca.cert_pem()).unwrap();
    let a = client_config(Verify::Full, Some(file.path()), None).unwrap();
    let b = client_config(Verify::Full, Some(file.path()), None).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let insecure = client_config(Verify::Insecure, Some(file.path()), None).unwrap();
    assert!(!Arc::ptr_eq(&a, &insecure));
    // A rotated CA file (two certificates now) gives a new config.
    fs::write(
        file.path(),
        format!("{}{}", ca.cert_pem(), other.cert_pem()),
    )
    .unwrap();
    let c = client_config(Verify::Full, Some(file.path()), None).unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
}

#[test]
fn client_config_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = client_config(Verify::Full, Some(&missing), None).unwrap_err();
    assert!(
        matches!(&err, TlsError::Read(p, _) if *p == missing),
        "{err}"
    );
    let empty = dir.path().join("empty.pem");
    fs::write(&empty, "no pem here\n").unwrap();
    let err = client_config(Verify::Full, Some(&empty), None).unwrap_err();
    assert!(
        matches!(&err, TlsError::NoCertificate(p) if *p == empty),
        "{err}"
    );
    // Insecure never reads the CA file.
    client_config(Verify::Insecure, Some(&missing), None).unwrap();
}
