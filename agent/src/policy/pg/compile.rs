//! Checks of `[target.postgres]` and `[rule.postgres]` within one file: TLS settings, credentials
//! and their secrets (read here, at load), masking, statement conditions. Each problem becomes an
//! error at the offending value.
use std::{
    ops::Range,
    path::{Path, PathBuf},
    sync::Arc,
};

use globset::{GlobBuilder, GlobSetBuilder};
use regex::{Regex, RegexBuilder};
use toml::Spanned;

use super::{
    file::{CredentialDef, MaskingDef, PgRuleDef, PgTargetDef},
    model::{
        Credential, CredentialSecret, DEFAULT_MAX_STATEMENT_BYTES, PostgresTarget,
        STATEMENT_BYTES_RANGE, StatementRule, TableGlobs, UpstreamTls,
    },
};
use crate::{
    masking::{Masker, MaskingConfig, MaskingError, Style},
    policy::{
        address::{Address, Host},
        compile::Check,
        secret::{Secret, open_secret_file, read_secret_env, read_secret_file},
    },
};

/// Longest `regex` of a statement rule, in bytes.
pub const MAX_REGEX_LEN: usize = 4096;
/// Memory bound of a compiled `regex` (and of its lazy DFA), in bytes.
pub(in crate::policy) const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A masking section, compiled: the configuration, its hash key, the masker.
type Masking = (MaskingConfig, Option<Secret>, Masker);

impl Check<'_, '_> {
    /// Checks a postgres target's section; `addresses` are the target's (when valid), to require
    /// `server_name` for verify-full on IP addresses. Reads the secrets it names.
    /// Errors about the section as a whole are reported at the target's `protocol`.
    pub(in crate::policy) fn pg_target(
        &mut self,
        d: PgTargetDef,
        protocol: &Spanned<String>,
        addresses: Option<&[Address]>,
    ) -> Option<PostgresTarget> {
        let before = self.errors.len();
        let upstream_tls = d
            .upstream_tls
            .as_ref()
            .map_or_else(UpstreamTls::default, |t| *t.get_ref());
        let ca_file = d
            .ca_file
            .as_ref()
            .and_then(|p| self.plain_file("ca_file", p));
        let server_name = d.server_name.as_ref().and_then(|n| self.server_name(n));
        if let (Some(tls), None, Some(addresses)) = (&d.upstream_tls, &d.server_name, addresses)
            && upstream_tls == UpstreamTls::VerifyFull
            && addresses.iter().any(|a| !matches!(a.host, Host::Name(_)))
        {
            self.fail::<()>(
                tls.span(),
                "upstream_tls = \"verify-full\" with IP addresses needs server_name: the name \
                 the server certificate must carry",
            );
        }
        if d.credential.is_empty() {
            self.fail::<()>(
                protocol.span(),
                "a postgres target needs at least one [[target.postgres.credential]]",
            );
        }
        let mut credentials: Vec<Credential> = Vec::with_capacity(d.credential.len());
        for c in d.credential {
            let role_span = c.get_ref().role.span();
            let Some(cred) = self.credential(c, upstream_tls) else {
                continue;
            };
            if credentials.iter().any(|c| c.role == cred.role) {
                self.fail::<()>(
                    role_span,
                    format!("role {:?} has two credentials", cred.role),
                );
                continue;
            }
            credentials.push(cred);
        }
        credentials.sort_by(|a, b| a.role.cmp(&b.role));
        let masking = d.masking.map(|m| self.masking(m, protocol.span()));
        let max_statement_bytes = self.size(
            "max_statement_bytes",
            d.max_statement_bytes.as_ref(),
            DEFAULT_MAX_STATEMENT_BYTES,
            STATEMENT_BYTES_RANGE,
        );
        if self.errors.len() != before {
            return None;
        }
        let (masking, hash_key, masker) = match masking.flatten() {
            Some((cfg, key, masker)) => (Some(cfg), key, Some(Arc::new(masker))),
            None => (None, None, None),
        };
        Some(PostgresTarget {
            upstream_tls,
            ca_file,
            server_name,
            client_tls: d.client_tls.unwrap_or(true),
            binary_results: d.binary_results.unwrap_or_default(),
            redact_literals: d.redact_literals.unwrap_or(true),
            max_statement_bytes: usize::try_from(max_statement_bytes).unwrap_or(usize::MAX),
            credentials,
            masking,
            hash_key,
            masker,
        })
    }

    /// A file that is not secret (CA, client certificate): an absolute path to a regular file.
    pub(in crate::policy) fn plain_file(
        &mut self,
        key: &str,
        p: &Spanned<String>,
    ) -> Option<PathBuf> {
        let path = PathBuf::from(p.get_ref());
        if !path.is_absolute() {
            let reason = format!("{key} {:?} must be an absolute path", p.get_ref());
            return self.fail(p.span(), reason);
        }
        let shown = path.display();
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Some(path),
            Ok(_) => self.fail(p.span(), format!("{key} {shown} is not a regular file")),
            Err(e) => self.fail(p.span(), format!("cannot read {key} {shown}: {e}")),
        }
    }

    pub(in crate::policy) fn server_name(&mut self, n: &Spanned<String>) -> Option<String> {
        let name = n.get_ref();
        let ok = !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        if !ok {
            let reason = format!("invalid server_name {name:?}: give a DNS name or an IP address");
            return self.fail(n.span(), reason);
        }
        Some(name.clone())
    }

    fn credential(&mut self, c: Spanned<CredentialDef>, tls: UpstreamTls) -> Option<Credential> {
        let span = c.span();
        let d = c.into_inner();
        let role = d.role.get_ref().clone();
        if role.is_empty() || role.contains('\0') {
            return self.fail(d.role.span(), "role must be a non-empty name");
        }
        // The kinds of secret given, each at where it is written.
        let cert_or_key = d.client_cert_file.as_ref().or(d.client_key_file.as_ref());
        let given: Vec<Range<usize>> = [
            d.password_file.as_ref(),
            d.password_env.as_ref(),
            cert_or_key,
        ]
        .into_iter()
        .flatten()
        .map(Spanned::span)
        .collect();
        match given.as_slice() {
            [] => {
                let reason = format!(
                    "credential for role {role:?} needs one of password_file, password_env, \
                     or client_cert_file with client_key_file"
                );
                return self.fail(span, reason);
            }
            [_] => {}
            [_, second, ..] => {
                let reason = format!(
                    "credential for role {role:?}: give only one of password_file, \
                     password_env, client_cert_file"
                );
                return self.fail(second.clone(), reason);
            }
        }
        let secret = if let Some(p) = &d.password_file {
            CredentialSecret::Password(self.secret_file(p)?)
        } else if let Some(name) = &d.password_env {
            match read_secret_env(name.get_ref(), self.env) {
                Ok(s) => CredentialSecret::Password(s),
                Err(e) => return self.fail(name.span(), e),
            }
        } else {
            self.client_cert(&d, &role, tls)?
        };
        Some(Credential { role, secret })
    }

    fn client_cert(
        &mut self,
        d: &CredentialDef,
        role: &str,
        tls: UpstreamTls,
    ) -> Option<CredentialSecret> {
        let (cert, key) = match (&d.client_cert_file, &d.client_key_file) {
            (Some(cert), Some(key)) => (cert, key),
            (Some(one), None) | (None, Some(one)) => {
                let reason = format!(
                    "credential for role {role:?}: client_cert_file and client_key_file go \
                     together"
                );
                return self.fail(one.span(), reason);
            }
            (None, None) => return None,
        };
        if tls == UpstreamTls::Disable {
            return self.fail(
                cert.span(),
                "a client certificate needs upstream TLS: upstream_tls must not be \"disable\"",
            );
        }
        let cert = self.plain_file("client_cert_file", cert);
        let key_path = PathBuf::from(key.get_ref());
        // Checked (root-only) but not read here: the TLS layer loads it when it connects.
        let key_checked = match open_secret_file(&key_path) {
            Ok(_) => Some(key_path),
            Err(e) => self.fail(key.span(), e),
        };
        Some(CredentialSecret::ClientCert {
            cert: cert?,
            key: key_checked?,
        })
    }

    pub(in crate::policy) fn secret_file(&mut self, p: &Spanned<String>) -> Option<Secret> {
        match read_secret_file(Path::new(p.get_ref())) {
            Ok(s) => Some(s),
            Err(e) => self.fail(p.span(), e),
        }
    }

    /// `[target.postgres.masking]`: read the hash key, compile the configuration once (as the
    /// session will use it) so that a bad one is a load error. `fallback` locates errors that
    /// belong to no particular rule.
    fn masking(&mut self, d: MaskingDef, fallback: Range<usize>) -> Option<Masking> {
        let hash_key = match &d.hash_key_file {
            Some(p) => Some(self.secret_file(p)?),
            None => None,
        };
        let cfg = MaskingConfig {
            columns: d.columns.iter().map(|c| c.get_ref().clone()).collect(),
            detectors: d.detectors.iter().map(|r| r.get_ref().clone()).collect(),
        };
        let e = match Masker::new(&cfg, hash_key.as_ref().map(Secret::expose)) {
            Ok(masker) => return Some((cfg, hash_key, masker)),
            Err(e) => e,
        };
        let at = match &e {
            MaskingError::Glob { index, .. } => d.columns.get(*index).map(Spanned::span),
            MaskingError::DuplicateDetector(det) => d
                .detectors
                .iter()
                .filter(|r| r.get_ref().detector == *det)
                .nth(1)
                .map(Spanned::span),
            MaskingError::BareDigitsNotSsn { detector } => d
                .detectors
                .iter()
                .find(|r| r.get_ref().detector == *detector && r.get_ref().bare_digits)
                .map(Spanned::span),
            // The first rule using the hash style.
            MaskingError::HashKeyMissing { .. } => d
                .columns
                .iter()
                .map(|c| (c.span(), &c.get_ref().style))
                .chain(d.detectors.iter().map(|r| (r.span(), &r.get_ref().style)))
                .find(|(_, style)| matches!(style, Style::Hash { .. }))
                .map(|(span, _)| span),
            _ => d.hash_key_file.as_ref().map(Spanned::span),
        };
        let mut reason = e.to_string();
        if let Some(source) = std::error::Error::source(&e) {
            reason += &format!(": {source}");
        }
        if matches!(e, MaskingError::HashKeyMissing { .. }) {
            reason += ": set hash_key_file in [target.postgres.masking]";
        }
        self.fail(at.unwrap_or(fallback), reason)
    }

    /// Checks a `[rule.postgres]` section.
    pub(in crate::policy) fn pg_rule(&mut self, d: PgRuleDef) -> Option<StatementRule> {
        let before = self.errors.len();
        let classes = d.classes.and_then(|c| {
            if c.get_ref().is_empty() {
                return self.fail(c.span(), "classes is empty: omit it to match any class");
            }
            let mut classes = c.into_inner();
            classes.sort_by_key(|c| c.as_str());
            classes.dedup();
            Some(classes)
        });
        let tables = d.tables.and_then(|t| self.tables(t));
        let regex = d.regex.and_then(|r| self.regex(&r));
        let databases = d.databases.and_then(|l| self.names("databases", l));
        let roles = d.roles.and_then(|l| self.names("roles", l));
        (self.errors.len() == before).then_some(StatementRule {
            classes,
            tables,
            regex,
            databases,
            roles,
        })
    }

    fn tables(&mut self, list: Spanned<Vec<Spanned<String>>>) -> Option<TableGlobs> {
        if list.get_ref().is_empty() {
            return self.fail(list.span(), "tables is empty: omit it to match any table");
        }
        let span = list.span();
        let before = self.errors.len();
        let mut set = GlobSetBuilder::new();
        let mut patterns = Vec::new();
        for t in list.into_inner() {
            let text = t.get_ref();
            if text.is_empty() {
                self.fail::<()>(t.span(), "a table glob must not be empty");
                continue;
            }
            let glob = GlobBuilder::new(text)
                .case_insensitive(true)
                .literal_separator(false)
                .build();
            match glob {
                Ok(g) => {
                    set.add(g);
                    patterns.push(text.to_lowercase());
                }
                Err(e) => {
                    let reason = format!("invalid table glob {text:?}: {}", e.kind());
                    self.fail::<()>(t.span(), reason);
                }
            }
        }
        if self.errors.len() != before {
            return None;
        }
        let set = match set.build() {
            Ok(s) => s,
            Err(e) => return self.fail(span, format!("table globs: {e}")),
        };
        patterns.sort();
        patterns.dedup();
        Some(TableGlobs { patterns, set })
    }

    fn regex(&mut self, r: &Spanned<String>) -> Option<Regex> {
        let text = r.get_ref();
        if text.len() > MAX_REGEX_LEN {
            let reason = format!("regex is longer than {MAX_REGEX_LEN} bytes");
            return self.fail(r.span(), reason);
        }
        let built = RegexBuilder::new(text)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build();
        match built {
            Ok(re) => Some(re),
            Err(e) => self.fail(r.span(), format!("invalid regex: {}", regex_error(&e))),
        }
    }

    /// A non-empty list of non-empty names (databases, roles): sorted, deduplicated.
    fn names(&mut self, key: &str, list: Spanned<Vec<Spanned<String>>>) -> Option<Vec<String>> {
        if list.get_ref().is_empty() {
            return self.fail(list.span(), format!("{key} is empty: omit it to match any"));
        }
        if let Some(empty) = list.get_ref().iter().find(|n| n.get_ref().is_empty()) {
            return self.fail(empty.span(), format!("{key} holds an empty name"));
        }
        let mut names: Vec<String> = list
            .into_inner()
            .into_iter()
            .map(Spanned::into_inner)
            .collect();
        names.sort();
        names.dedup();
        Some(names)
    }
}

/// A regex error on one line: a syntax error's own message (the crate's shows the pattern with a
/// caret over several lines), or the size limit exceeded.
pub(in crate::policy) fn regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(msg) => msg
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or("syntax error")
            .to_owned(),
        regex::Error::CompiledTooBig(limit) => {
            format!("too large once compiled (more than {limit} bytes)")
        }
        other => other.to_string().replace('\n', " "),
    }
}
