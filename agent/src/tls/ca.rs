//! The local CA: created once in the state directory, then loaded; issues short-lived leaves for
//! the names tollgate terminates TLS for (clients trust `ca.pem`).
use std::{
    fmt,
    fs::{self, DirBuilder, OpenOptions},
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Instant,
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::{
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject},
    sign::CertifiedKey,
};
use time::{Duration, OffsetDateTime};
use tracing::{debug, info};

use super::{
    TlsError, files,
    leaf::{self, LeafCache, LeafName},
};

/// Validity of the CA certificate.
const CA_VALIDITY: Duration = Duration::days(3650);
/// Validity of a leaf certificate.
const LEAF_VALIDITY: Duration = Duration::days(30);
/// Certificates start this long before their issuance, for peers whose clock is a little behind.
const BACKDATE: Duration = Duration::hours(1);
/// X.509 upper bound of a common name; a longer first name is left to the SAN only.
const MAX_CN_LEN: usize = 64;

/// The local certificate authority persisted in `<state>/ca/`.
pub struct LocalCa {
    cert_path: PathBuf,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    provider: Arc<CryptoProvider>,
    leaves: Mutex<LeafCache<Arc<CertifiedKey>>>,
}

impl fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCa")
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl LocalCa {
    /// Loads the CA from `<dir>/ca/ca.pem` and `<dir>/ca/ca.key`, creating both on first use
    /// (ECDSA P-256, 10 years, CA:true pathlen 0, keyCertSign + cRLSign; the key 0600, the
    /// certificate 0644). A key file accessible to group or other, or not owned by the agent's
    /// user, is refused; so is one of the two files without the other. A lock file serializes
    /// concurrent first uses.
    pub fn load_or_create(dir: &Path) -> Result<LocalCa, TlsError> {
        let ca_dir = dir.join("ca");
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&ca_dir)
            .map_err(|e| TlsError::CreateDir(ca_dir.clone(), e))?;
        let cert_path = ca_dir.join("ca.pem");
        let key_path = ca_dir.join("ca.key");
        let _lock = lock(&ca_dir.join(".lock"))?;
        match (files::exists(&cert_path)?, files::exists(&key_path)?) {
            (true, true) => {}
            (false, false) => create(&cert_path, &key_path)?,
            (true, false) => {
                return Err(TlsError::CaIncomplete {
                    present: cert_path,
                    missing: key_path,
                });
            }
            (false, true) => {
                return Err(TlsError::CaIncomplete {
                    present: key_path,
                    missing: cert_path,
                });
            }
        }
        load(cert_path, &key_path)
    }

    /// The CA certificate, PEM: what clients must trust (`tollgate ca` prints it).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Where the CA certificate is stored.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The crypto provider the CA's leaves are loaded with.
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// A leaf for `names` (DNS names and/or IP addresses; order and case do not matter): ECDSA
    /// P-256, 30 days, EKU serverAuth, the first name as CN. Issued once per name set and kept
    /// in a bounded cache; reissued when it is 20 days old.
    pub fn issue(&self, names: &[String]) -> Result<Arc<CertifiedKey>, TlsError> {
        let names = leaf::normalize(names)?;
        let key = leaf::key(&names);
        let now = Instant::now();
        let mut cache = crate::sync::lock(&self.leaves);
        if let Some(leaf) = cache.get(&key, now) {
            return Ok(leaf);
        }
        let leaf = Arc::new(self.sign_leaf(&names)?);
        debug!(names = %key.join(","), "issued leaf certificate");
        cache.insert(key, leaf.clone(), now);
        Ok(leaf)
    }

    fn sign_leaf(&self, names: &[LeafName]) -> Result<CertifiedKey, TlsError> {
        let joined = || leaf::key(names).join(",");
        let issue_err = |source| TlsError::Issue {
            names: joined(),
            source,
        };
        let mut params = CertificateParams::default();
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + LEAF_VALIDITY;
        params.distinguished_name = DistinguishedName::new();
        if let Some(first) = names.first().map(LeafName::text)
            && first.len() <= MAX_CN_LEN
        {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        for name in names {
            params.subject_alt_names.push(match name {
                LeafName::Ip(ip) => SanType::IpAddress(*ip),
                LeafName::Dns(dns) => SanType::DnsName(dns.clone().try_into().map_err(issue_err)?),
            });
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(issue_err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(issue_err)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = self
            .provider
            .key_provider
            .load_private_key(der)
            .map_err(|source| TlsError::LeafKey {
                names: joined(),
                source,
            })?;
        Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
    }
}

/// Generates a CA and writes it: key first (0600), then the certificate (0644).
fn create(cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(TlsError::Generate)?;
    let mut params = CertificateParams::default();
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("tollgate local CA {}", hostname()),
    );
    params
        .distinguished_name
        .push(DnType::OrganizationName, "tollgate");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
    files::write_whole(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    files::write_whole(cert_path, cert.pem().as_bytes(), 0o644)?;
    info!(cert = %cert_path.display(), "created the local CA");
    Ok(())
}

/// Loads the CA files, checking the key's ownership and mode and that it matches the certificate.
fn load(cert_path: PathBuf, key_path: &Path) -> Result<LocalCa, TlsError> {
    let cert_bytes = files::read(&cert_path)?;
    let cert_der = CertificateDer::from_pem_slice(&cert_bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoCertificate(cert_path.clone()),
        e => TlsError::Pem(cert_path.clone(), e),
    })?;
    let cert_pem = String::from_utf8(cert_bytes).map_err(|e| {
        TlsError::Read(
            cert_path.clone(),
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    let key_bytes = files::read_private(key_path)?;
    let key_pem = std::str::from_utf8(&key_bytes).map_err(|e| {
        TlsError::Read(
            key_path.to_path_buf(),
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    let key = KeyPair::from_pem(key_pem).map_err(|e| TlsError::CaInvalid(key_path.into(), e))?;
    let provider = super::provider();
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    CertifiedKey::from_der(vec![cert_der.clone()], key_der, &provider).map_err(|source| {
        TlsError::KeyMismatch {
            cert: cert_path.clone(),
            key: key_path.to_path_buf(),
            source,
        }
    })?;
    let issuer = Issuer::from_ca_cert_der(&cert_der, key)
        .map_err(|e| TlsError::CaInvalid(cert_path.clone(), e))?;
    Ok(LocalCa {
        cert_path,
        cert_pem,
        cert_der,
        issuer,
        provider,
        leaves: Mutex::new(LeafCache::new(leaf::CACHE_CAPACITY)),
    })
}

/// Takes an exclusive advisory lock held until the returned value is dropped.
fn lock(path: &Path) -> Result<nix::fcntl::Flock<fs::File>, TlsError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| TlsError::Write(path.to_path_buf(), e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| TlsError::Write(path.to_path_buf(), errno.into()))
}

/// The host name for the CA's common name ("localhost" when it cannot be read).
fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
