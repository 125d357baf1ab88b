//! The local CA's files, its certificate and the leaves it issues.
use std::{fs, os::unix::fs::PermissionsExt, sync::Arc};

use x509_parser::{
    certificate::X509Certificate, extensions::GeneralName, parse_x509_certificate,
    public_key::PublicKey,
};

use super::strings;
use crate::tls::{LocalCa, TlsError};

const DAY: i64 = 24 * 3600;

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    parse_x509_certificate(der).unwrap().1
}

fn is_p256(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.public_key().parsed().unwrap(), PublicKey::EC(ec) if ec.key_size() == 256)
}

#[test]
fn created_with_modes_then_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::load_or_create(dir.path()).unwrap();
    let cert_path = dir.path().join("ca/ca.pem");
    let key_path = dir.path().join("ca/ca.key");
    assert_eq!(ca.cert_path(), cert_path);
    assert_eq!(mode(&cert_path), 0o644);
    assert_eq!(mode(&key_path), 0o600);
    assert_eq!(fs::read_to_string(&cert_path).unwrap(), ca.cert_pem());
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(!format!("{ca:?}").contains("PRIVATE"));

    let key_before = fs::read(&key_path).unwrap();
    let again = LocalCa::load_or_create(dir.path()).unwrap();
    assert_eq!(again.cert_pem(), ca.cert_pem());
    assert_eq!(fs::read(&key_path).unwrap(), key_before);
    // A leaf issued by the reloaded CA names the same issuer.
    let leaf = again.issue(&strings(&["x.example"])).unwrap();
    let leaf = parse(&leaf.cert[0]);
    assert_eq!(leaf.issuer(), parse(ca.cert_der()).subject());
}

#[test]
fn ca_certificate_fields() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::load_or_create(dir.path()).unwrap();
    let cert = parse(ca.cert_der());
    let cn = cert.subject().iter_common_name().next().unwrap();
    assert!(
        cn.as_str().unwrap().starts_with("tollgate local CA "),
        "{cn:?}"
    );
    let bc = cert.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    assert!(!ku.digital_signature());
    assert!(is_p256(&cert));
    let days = (cert.validity().not_after.timestamp() - now()) / DAY;
    assert!((3648..=3650).contains(&days), "{days} days");
}

#[test]
fn refuses_unsafe_or_incomplete_files() {
    let dir = tempfile::tempdir().unwrap();
    LocalCa::load_or_create(dir.path()).unwrap();
    let key_path = dir.path().join("ca/ca.key");
    let cert_path = dir.path().join("ca/ca.pem");

    for bad in [0o640, 0o604, 0o660] {
        fs::set_permissions(&key_path, fs::Permissions::from_mode(bad)).unwrap();
        let err = LocalCa::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(err, TlsError::KeyMode { mode, .. } if mode == bad),
            "{err}"
        );
    }
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o400)).unwrap();
    LocalCa::load_or_create(dir.path()).unwrap();

    // The key of another CA does not match this certificate.
    let other = tempfile::tempdir().unwrap();
    LocalCa::load_or_create(other.path()).unwrap();
    fs::remove_file(&key_path).unwrap();
    fs::copy(other.path().join("ca/ca.key"), &key_path).unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    let err = LocalCa::load_or_create(dir.path()).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");

    // One file without the other is not silently replaced.
    fs::remove_file(&key_path).unwrap();
    let err = LocalCa::load_or_create(dir.path()).unwrap_err();
    assert!(matches!(err, TlsError::CaIncomplete { .. }), "{err}");
    assert!(cert_path.exists());
    fs::remove_file(&cert_path).unwrap();
    fs::copy(other.path().join("ca/ca.key"), &key_path).unwrap();
    let err = LocalCa::load_or_create(dir.path()).unwrap_err();
    assert!(matches!(err, TlsError::CaIncomplete { .. }), "{err}");

    // A garbage certificate is a parse error naming the file.
    fs::write(&cert_path, "not a certificate").unwrap();
    let err = LocalCa::load_or_create(dir.path()).unwrap_err();
    assert!(
        matches!(&err, TlsError::NoCertificate(p) if *p == cert_path),
        "{err}"
    );
}

#[test]
fn leaf_fields_dns_and_ip() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::load_or_create(dir.path()).unwrap();
    let leaf = ca
        .issue(&strings(&["DB.internal", "10.0.0.7", "::1"]))
        .unwrap();
    assert_eq!(leaf.cert.len(), 1);
    let cert = parse(&leaf.cert[0]);
    let sans = &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert!(
        sans.contains(&GeneralName::DNSName("db.internal")),
        "{sans:?}"
    );
    assert!(
        sans.contains(&GeneralName::IPAddress(&[10, 0, 0, 7])),
        "{sans:?}"
    );
    let mut v6 = [0u8; 16];
    v6[15] = 1;
    assert!(sans.contains(&GeneralName::IPAddress(&v6)), "{sans:?}");
    assert_eq!(sans.len(), 3);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    let bc = cert.basic_constraints().unwrap().map(|b| b.value.ca);
    assert_eq!(bc, Some(false));
    assert!(is_p256(&cert));
    let days = (cert.validity().not_after.timestamp() - now()) / DAY;
    assert!((29..=30).contains(&days), "{days} days");
    assert!(cert.validity().not_before.timestamp() <= now());
    leaf.keys_match().unwrap();
}

#[test]
fn leaves_are_cached_by_name_set() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::load_or_create(dir.path()).unwrap();
    let a = ca.issue(&strings(&["a.example", "b.example"])).unwrap();
    let b = ca
        .issue(&strings(&["B.EXAMPLE", "a.example", "a.example"]))
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let c = ca.issue(&strings(&["a.example"])).unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
    assert_ne!(a.cert[0], c.cert[0]);
    let ip = ca.issue(&strings(&["127.0.0.1"])).unwrap();
    assert!(Arc::ptr_eq(
        &ip,
        &ca.issue(&strings(&["127.0.0.1"])).unwrap()
    ));
}

#[test]
fn issue_rejects_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::load_or_create(dir.path()).unwrap();
    assert!(matches!(ca.issue(&[]), Err(TlsError::NoNames)));
    assert!(matches!(
        ca.issue(&strings(&["ok.example", "not a name"])),
        Err(TlsError::InvalidName(n)) if n == "not a name"
    ));
}
