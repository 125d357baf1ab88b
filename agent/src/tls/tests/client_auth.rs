//! Upstream client-certificate authentication against a rustls server that requires it.
use std::{fs, os::unix::fs::PermissionsExt, path::PathBuf, sync::Arc};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{
    RootCertStore, ServerConfig, pki_types::CertificateDer, server::WebPkiClientVerifier,
};

use super::{Fixed, exchange, strings};
use crate::tls::{LocalCa, TlsError, Verify, client_config, provider};

/// A client CA and a client certificate ("etl", EKU clientAuth) it signed, written as PEM files.
struct ClientPki {
    ca_der: CertificateDer<'static>,
    cert_der: CertificateDer<'static>,
    cert: PathBuf,
    key: PathBuf,
}

fn client_pki(dir: &std::path::Path) -> ClientPki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test client CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "etl");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();

    let cert_path = dir.join("client.pem");
    let key_path = dir.join("client.key");
    fs::write(&cert_path, cert.pem()).unwrap();
    fs::write(&key_path, key.serialize_pem()).unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    ClientPki {
        ca_der: ca_cert.der().clone(),
        cert_der: cert.der().clone(),
        cert: cert_path,
        key: key_path,
    }
}

/// A server presenting a local-CA leaf for "db.internal" and requiring a client certificate
/// signed by `client_ca`.
fn requiring_server(ca: &LocalCa, client_ca: CertificateDer<'static>) -> Arc<ServerConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(client_ca).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .unwrap();
    let leaf = ca.issue(&strings(&["db.internal"])).unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(Fixed(leaf))),
    )
}

#[tokio::test]
async fn client_certificate_accepted_and_required() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::load_or_create(dir.path()).unwrap();
    let pki = client_pki(dir.path());
    let server = requiring_server(&ca, pki.ca_der.clone());

    for mode in [Verify::Full, Verify::Insecure] {
        let client =
            client_config(mode, Some(ca.cert_path()), Some((&pki.cert, &pki.key))).unwrap();
        let (c, s) = exchange(server.clone(), client, "db.internal").await;
        c.unwrap();
        assert_eq!(
            s.unwrap().peer_certs,
            vec![pki.cert_der.clone()],
            "{mode:?}"
        );
    }

    // Without a client certificate the server refuses the connection.
    let client = client_config(Verify::Full, Some(ca.cert_path()), None).unwrap();
    let (c, s) = exchange(server.clone(), client, "db.internal").await;
    assert!(c.is_err() && s.is_err(), "{c:?} {s:?}");

    // A certificate from another CA is refused too.
    let other_dir = tempfile::tempdir().unwrap();
    let other = client_pki(other_dir.path());
    let client = client_config(
        Verify::Full,
        Some(ca.cert_path()),
        Some((&other.cert, &other.key)),
    )
    .unwrap();
    let (c, s) = exchange(server, client, "db.internal").await;
    assert!(c.is_err() && s.is_err(), "{c:?} {s:?}");
}

#[test]
fn client_key_must_be_private_and_match() {
    let dir = tempfile::tempdir().unwrap();
    let pki = client_pki(dir.path());
    fs::set_permissions(&pki.key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = client_config(Verify::Insecure, None, Some((&pki.cert, &pki.key))).unwrap_err();
    assert!(
        matches!(&err, TlsError::KeyMode { path, .. } if *path == pki.key),
        "{err}"
    );

    let other_dir = tempfile::tempdir().unwrap();
    let other = client_pki(other_dir.path());
    let err = client_config(Verify::Insecure, None, Some((&pki.cert, &other.key))).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
}
