//! The validated PostgreSQL parts of a policy: a postgres target's connection settings,
//! credentials and masking, and a statement rule's conditions.
use std::{fmt, path::PathBuf, sync::Arc};

use globset::GlobSet;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::{
    masking::{Masker, MaskingConfig},
    policy::secret::Secret,
    postgres::sql::StatementClass,
};

/// TLS towards the upstream server. Never downgraded: with `Require` or `VerifyFull` a failed
/// handshake fails the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTls {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, plain otherwise; the certificate is not verified.
    #[default]
    Prefer,
    /// TLS or fail; the certificate is not verified.
    Require,
    /// TLS or fail; the certificate chain and the server name are verified.
    VerifyFull,
}

impl fmt::Display for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UpstreamTls::Disable => "disable",
            UpstreamTls::Prefer => "prefer",
            UpstreamTls::Require => "require",
            UpstreamTls::VerifyFull => "verify-full",
        })
    }
}

/// What to do when a client asks for results in binary format (masking works on text values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BinaryResults {
    /// When the target masks anything, a statement asking for any result column in binary is
    /// refused (ErrorResponse 0A000).
    #[default]
    Refuse,
    /// Binary results pass for columns that are not masked; a masked column asked for in
    /// binary is refused (ErrorResponse 0A000).
    Allow,
}

impl fmt::Display for BinaryResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinaryResults::Refuse => "refuse",
            BinaryResults::Allow => "allow",
        })
    }
}

/// Default `max_statement_bytes`: 1 MiB (about 100 MiB of memory while it is classified).
pub const DEFAULT_MAX_STATEMENT_BYTES: u64 = 1 << 20;
/// Bounds of `max_statement_bytes`: up to the protocol's message limit.
pub const STATEMENT_BYTES_RANGE: (u64, u64) = (1 << 10, 64 << 20);

/// `[target.postgres]`: how tollgate talks to a PostgreSQL target.
#[derive(Debug, Clone)]
pub struct PostgresTarget {
    /// TLS towards the server.
    pub upstream_tls: UpstreamTls,
    /// Trust anchor (PEM) for `verify-full`; none: the system roots.
    pub ca_file: Option<PathBuf>,
    /// Name the server certificate must carry; none: the host of the address connected to
    /// (always set when `verify-full` is used with IP addresses).
    pub server_name: Option<String>,
    /// Terminate client TLS (client `sslmode=require`) with a leaf of tollgate's local CA.
    pub client_tls: bool,
    /// Binary-format results: see [`BinaryResults`].
    pub binary_results: BinaryResults,
    /// Redact literals in recorded statement text.
    pub redact_literals: bool,
    /// Query text (one Query or Parse message) classified at most, bytes: a longer one is
    /// `unknown` without being read. Tokens and parse trees take about 100 times the text's
    /// size in memory, and the parse holds a thread for as long as it takes.
    pub max_statement_bytes: usize,
    /// Upstream credentials, one per role, sorted by role; at least one.
    pub credentials: Vec<Credential>,
    /// What to mask in results, as written.
    pub masking: Option<MaskingConfig>,
    /// The secret of the masking `hash` style.
    pub hash_key: Option<Secret>,
    /// `masking` compiled once at load with `hash_key` (set exactly when `masking` is); shared
    /// by the target's sessions, and by the blocking jobs that mask their large rows.
    pub masker: Option<Arc<Masker>>,
}

impl PostgresTarget {
    /// The credential for the upstream role `role` (the client's startup `user`).
    pub fn credential(&self, role: &str) -> Option<&Credential> {
        self.credentials.iter().find(|c| c.role == role)
    }
}

/// How tollgate authenticates upstream as one role. The client's own password is never checked
/// nor forwarded.
#[derive(Debug, Clone)]
pub struct Credential {
    /// Upstream role name, which is also the startup `user` a client asks for.
    pub role: String,
    /// The secret used to log in.
    pub secret: CredentialSecret,
}

/// A credential's secret.
#[derive(Debug, Clone)]
pub enum CredentialSecret {
    /// A password (SCRAM-SHA-256, md5 or cleartext, as the server asks).
    Password(Secret),
    /// A client certificate (TLS client authentication upstream). The key file was checked to
    /// be root-only at load; it is read when connecting.
    ClientCert {
        /// Certificate chain, PEM.
        cert: PathBuf,
        /// Private key, PEM.
        key: PathBuf,
    },
}

/// `[rule.postgres]`: the conditions of a statement rule. An absent condition matches anything.
#[derive(Debug, Clone)]
pub struct StatementRule {
    /// Statement classes (sorted by name, deduplicated).
    pub classes: Option<Vec<StatementClass>>,
    /// Table globs, case-insensitive.
    pub tables: Option<TableGlobs>,
    /// Regular expression searched in the statement text.
    pub regex: Option<Regex>,
    /// Database names (sorted, deduplicated).
    pub databases: Option<Vec<String>>,
    /// Role names (sorted, deduplicated).
    pub roles: Option<Vec<String>>,
}

/// Case-insensitive table globs.
#[derive(Debug, Clone)]
pub struct TableGlobs {
    /// As written (lowercased), sorted and deduplicated.
    pub(in crate::policy) patterns: Vec<String>,
    /// Compiled.
    pub(in crate::policy) set: GlobSet,
}

impl TableGlobs {
    /// The globs as written, lowercased.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether some glob matches `table`.
    pub fn matches(&self, table: &str) -> bool {
        self.set.is_match(table)
    }
}

/// What the session knows about one message (a simple Query or a Parse) when asking policy.
#[derive(Debug, Clone, Copy)]
pub struct StatementFacts<'a> {
    /// One class per statement of the message.
    pub classes: &'a [StatementClass],
    /// Every table read or written by the message's statements.
    pub tables: &'a [&'a str],
    /// The message's statement text.
    pub text: &'a str,
    /// The session's database.
    pub database: &'a str,
    /// The session's role (startup `user`).
    pub role: &'a str,
}
