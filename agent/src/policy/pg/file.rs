//! The on-disk format of `[target.postgres]` and `[rule.postgres]`, as written (checks are in
//! `compile`).
use serde::Deserialize;
use toml::Spanned;

use super::model::{BinaryResults, UpstreamTls};
use crate::policy::http::file::Size;
use crate::{
    masking::{ColumnRule, DetectorRule},
    postgres::sql::StatementClass,
};

/// `[target.postgres]`: connection settings, credentials and masking of a postgres target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::policy) struct PgTargetDef {
    /// "disable", "prefer" (default), "require" or "verify-full".
    pub(in crate::policy) upstream_tls: Option<Spanned<UpstreamTls>>,
    /// Absolute path of a PEM trust anchor for verify-full.
    pub(in crate::policy) ca_file: Option<Spanned<String>>,
    /// Name the server certificate must carry.
    pub(in crate::policy) server_name: Option<Spanned<String>>,
    /// Terminate client TLS with a leaf from the local CA (default true).
    pub(in crate::policy) client_tls: Option<bool>,
    /// "refuse" (default) or "allow".
    pub(in crate::policy) binary_results: Option<BinaryResults>,
    /// Redact literals in recorded statement text (default true).
    pub(in crate::policy) redact_literals: Option<bool>,
    /// Query text read for classification at most; a longer one is `unknown` unread.
    pub(in crate::policy) max_statement_bytes: Option<Spanned<Size>>,
    /// `[[target.postgres.credential]]`: at least one.
    #[serde(default)]
    pub(in crate::policy) credential: Vec<Spanned<CredentialDef>>,
    /// `[target.postgres.masking]` (not `Spanned`: it may be created implicitly, by dotted
    /// keys, which toml cannot span).
    pub(in crate::policy) masking: Option<MaskingDef>,
}

/// `[[target.postgres.credential]]`: how to log in upstream as one role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::policy) struct CredentialDef {
    /// Upstream role; the client's startup `user`.
    pub(in crate::policy) role: Spanned<String>,
    /// Absolute path of a root-only file holding the password.
    pub(in crate::policy) password_file: Option<Spanned<String>>,
    /// Environment variable of the agent holding the password.
    pub(in crate::policy) password_env: Option<Spanned<String>>,
    /// Absolute path of a PEM client certificate (with `client_key_file`).
    pub(in crate::policy) client_cert_file: Option<Spanned<String>>,
    /// Absolute path of a root-only PEM private key (with `client_cert_file`).
    pub(in crate::policy) client_key_file: Option<Spanned<String>>,
}

/// `[target.postgres.masking]`: `masking::MaskingConfig` plus where its hash key is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::policy) struct MaskingDef {
    /// Absolute path of a root-only file holding the key of the `hash` style.
    pub(in crate::policy) hash_key_file: Option<Spanned<String>>,
    /// Column rules, first match wins.
    #[serde(default)]
    pub(in crate::policy) columns: Vec<Spanned<ColumnRule>>,
    /// Detector rules.
    #[serde(default)]
    pub(in crate::policy) detectors: Vec<Spanned<DetectorRule>>,
}

/// `[rule.postgres]`: conditions on statements; absent keys match anything.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::policy) struct PgRuleDef {
    /// Statement classes, snake_case.
    pub(in crate::policy) classes: Option<Spanned<Vec<StatementClass>>>,
    /// Table globs, case-insensitive.
    pub(in crate::policy) tables: Option<Spanned<Vec<Spanned<String>>>>,
    /// Regular expression searched in the statement text.
    pub(in crate::policy) regex: Option<Spanned<String>>,
    /// Database names.
    pub(in crate::policy) databases: Option<Spanned<Vec<Spanned<String>>>>,
    /// Role names.
    pub(in crate::policy) roles: Option<Spanned<Vec<Spanned<String>>>>,
}
