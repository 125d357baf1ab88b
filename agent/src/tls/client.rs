//! Upstream TLS: client configs for connecting to targets, verified (`verify-full`) or not
//! (`prefer`/`require`), optionally with a client certificate. Built configs are cached.
use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
    time::SystemTime,
};

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use tracing::{debug, warn};

use super::{TlsError, files, insecure::NoVerify};

/// How an upstream server's certificate is checked.
///
/// Same semantics as libpq's `sslmode`: `require` and `prefer` ENCRYPT BUT DO NOT VERIFY the
/// server (any certificate, any name: an active attacker on the path can impersonate it);
/// only `verify-full` authenticates the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verify {
    /// `verify-full`: the chain must lead to a trust anchor (the `ca_file` when given, else the
    /// system roots) and the certificate must be valid for the name connected to.
    Full,
    /// `prefer` / `require`: no verification of the chain or the name (the `ca_file` is ignored,
    /// not even read); only the handshake signature by the presented certificate's key is checked.
    Insecure,
}

/// Most cached configs; past it the cache is emptied (a policy has a handful of targets).
const CACHE_CAPACITY: usize = 256;

/// Identity of a file for the cache: a changed file (rotated CA, renewed client certificate)
/// gives a new key, hence a freshly parsed config.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FileStamp {
    path: PathBuf,
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    fn of(path: &Path) -> Result<Self, TlsError> {
        let meta = fs::metadata(path).map_err(|e| TlsError::Read(path.to_path_buf(), e))?;
        Ok(Self {
            path: path.to_path_buf(),
            inode: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    mode: Verify,
    ca_file: Option<FileStamp>,
    client_cert: Option<(FileStamp, FileStamp)>,
}

/// A client config (TLS 1.2 and 1.3, no ALPN) for upstream connections.
///
/// Roots for [`Verify::Full`]: the certificates of `ca_file` (PEM) when given, else the system
/// trust store (read once per distinct config). `client_cert` is `(certificate chain PEM, private
/// key PEM)`; the key file must be private to the agent's user (as the CA key). Configs are cached
/// per (mode, files, their size/mtime/inode), so parsing happens once per file version.
///
/// To offer ALPN (e.g. `postgresql` for PostgreSQL 17 direct SSL), clone the config and set
/// `alpn_protocols`.
pub fn client_config(
    mode: Verify,
    ca_file: Option<&Path>,
    client_cert: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let key = CacheKey {
        mode,
        ca_file: match (mode, ca_file) {
            (Verify::Full, Some(path)) => Some(FileStamp::of(path)?),
            _ => None,
        },
        client_cert: match client_cert {
            Some((cert, key)) => Some((FileStamp::of(cert)?, FileStamp::of(key)?)),
            None => None,
        },
    };
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, Arc<ClientConfig>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(config) = crate::sync::lock(cache).get(&key) {
        return Ok(config.clone());
    }
    let config = Arc::new(build(mode, ca_file, client_cert)?);
    let mut cache = crate::sync::lock(cache);
    if cache.len() >= CACHE_CAPACITY {
        cache.clear();
    }
    cache.insert(key, config.clone());
    Ok(config)
}

fn build(
    mode: Verify,
    ca_file: Option<&Path>,
    client_cert: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let provider = super::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|source| TlsError::Config {
            context: "client protocol versions",
            source,
        })?;
    let builder = match mode {
        Verify::Full => builder.with_root_certificates(roots(ca_file)?),
        Verify::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify::new(&provider))),
    };
    match client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_path, key_path)) => {
            let chain = read_certs(cert_path)?;
            let key_bytes = files::read_private(key_path)?;
            let key = PrivateKeyDer::from_pem_slice(&key_bytes)
                .map_err(|e| TlsError::Pem(key_path.to_path_buf(), e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|source| TlsError::KeyMismatch {
                    cert: cert_path.to_path_buf(),
                    key: key_path.to_path_buf(),
                    source,
                })
        }
    }
}

/// Trust anchors: those of `ca_file`, else the system's.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let (added, ignored) = roots.add_parsable_certificates(read_certs(path)?);
            debug!(ca_file = %path.display(), added, ignored, "loaded upstream trust anchors");
            if added == 0 {
                return Err(TlsError::NoRoots(path.display().to_string()));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                warn!(%error, "error reading the system trust store");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            debug!(added, ignored, "loaded system trust anchors");
            if added == 0 {
                return Err(TlsError::NoRoots("the system trust store".to_string()));
            }
        }
    }
    Ok(roots)
}

/// Every certificate of a PEM file (at least one).
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = files::read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(path.to_path_buf(), e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}
