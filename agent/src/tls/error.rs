//! Errors of the TLS layer: the local CA's files, leaf issuance and upstream configs.
use std::path::PathBuf;

/// Errors of the TLS layer. Every variant names the file or the names it is about; none carries
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A directory cannot be created.
    #[error("cannot create directory {0}: {1}")]
    CreateDir(PathBuf, #[source] std::io::Error),
    /// A file cannot be read (or its metadata cannot be read).
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, #[source] std::io::Error),
    /// A file cannot be written, secured or moved into place.
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, #[source] std::io::Error),
    /// A private key file is accessible to group or other.
    #[error(
        "private key {path} has mode {mode:04o}: it must not be accessible to group or other (chmod 600)"
    )]
    KeyMode {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A private key file is owned by another user than the agent's.
    #[error("private key {path} is owned by uid {owner}, not by the agent's uid {expected}")]
    KeyOwner {
        /// The key file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The agent's effective uid.
        expected: u32,
    },
    /// One of the CA's two files exists without the other: refuse to guess.
    #[error(
        "{present} exists but {missing} does not: restore it, or remove both to create a new CA"
    )]
    CaIncomplete {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// A PEM file cannot be parsed.
    #[error("cannot parse PEM file {0}: {1}")]
    Pem(PathBuf, #[source] rustls::pki_types::pem::Error),
    /// A PEM file holds no certificate.
    #[error("{0} holds no certificate")]
    NoCertificate(PathBuf),
    /// The CA certificate cannot be used as an issuer, or its key does not load.
    #[error("invalid CA in {0}: {1}")]
    CaInvalid(PathBuf, #[source] rcgen::Error),
    /// A certificate and a private key do not belong together (or the key is unsupported).
    #[error("certificate {cert} and key {key} do not match: {source}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls reported.
        #[source]
        source: rustls::Error,
    },
    /// Generating the CA failed.
    #[error("cannot generate the local CA: {0}")]
    Generate(#[source] rcgen::Error),
    /// A leaf certificate was requested for no names at all.
    #[error("a certificate needs at least one name")]
    NoNames,
    /// A requested name is neither a DNS name nor an IP address.
    #[error("invalid certificate name {0:?}")]
    InvalidName(String),
    /// Issuing a leaf certificate failed.
    #[error("cannot issue a certificate for {names}: {source}")]
    Issue {
        /// The names asked for, comma separated.
        names: String,
        /// What rcgen reported.
        #[source]
        source: rcgen::Error,
    },
    /// A freshly issued leaf key cannot be loaded by the crypto provider.
    #[error("cannot load the key of the certificate for {names}: {source}")]
    LeafKey {
        /// The names of the leaf, comma separated.
        names: String,
        /// What rustls reported.
        #[source]
        source: rustls::Error,
    },
    /// No trust anchor could be loaded: from the file when given, else from the system store.
    #[error("no usable trust anchor in {0}")]
    NoRoots(String),
    /// rustls refused a configuration (protocol versions, certificates).
    #[error("invalid TLS configuration ({context}): {source}")]
    Config {
        /// What was being configured.
        context: &'static str,
        /// What rustls reported.
        #[source]
        source: rustls::Error,
    },
}
