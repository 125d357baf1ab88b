//! Checks of `[target.http]` and `[rule.http]` within one file: TLS settings, the credential and
//! its secret (read here, at load), limits, masking, request conditions. Each problem becomes an
//! error at the offending value.
use std::{collections::BTreeMap, ops::Range, path::PathBuf};

use globset::{GlobBuilder, GlobSetBuilder};
use regex::{Regex, RegexBuilder};
use toml::Spanned;

use super::{
    file::{HttpCredentialDef, HttpMaskingDef, HttpRuleDef, HttpTargetDef, Size},
    json_key::JsonKey,
    model::{Globs, HttpCredential, HttpTarget, HttpTls, PathMatch, RequestRule},
};
use crate::{
    masking::{HashKey, Masker, MaskingConfig, MaskingError, Style},
    policy::{
        compile::Check,
        pg::compile::{MAX_REGEX_LEN, REGEX_SIZE_LIMIT, regex_error},
        secret::{Secret, open_secret_file, read_secret_env},
        selector::Pattern,
    },
};

/// Default `max_request_header`.
pub const DEFAULT_MAX_REQUEST_HEADER: u64 = 64 << 10;
/// Default `max_body_buffer`.
pub const DEFAULT_MAX_BODY_BUFFER: u64 = 8 << 20;
/// Default `body_cap`.
pub const DEFAULT_BODY_CAP: u64 = 4 << 10;
/// Bounds of `max_request_header`, bytes.
const REQUEST_HEADER_RANGE: (u64, u64) = (1 << 10, 1 << 20);
/// Bounds of `max_body_buffer`, bytes.
const BODY_BUFFER_RANGE: (u64, u64) = (1 << 10, 1 << 30);
/// Headers tollgate cannot inject: they frame the message or the connection.
const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
];

/// A masking section, compiled.
struct Masking {
    config: MaskingConfig,
    hash_key: Option<Secret>,
    masker: Masker,
    json_keys: Vec<JsonKey>,
}

impl Check<'_, '_> {
    /// Checks an http target's section and reads the secrets it names.
    pub(in crate::policy) fn http_target(&mut self, d: HttpTargetDef) -> Option<HttpTarget> {
        let before = self.errors.len();
        let tls = *d.tls.get_ref();
        let tls_span = d.tls.span();
        if !tls.upstream_tls() {
            let upstream = [
                ("ca_file", d.ca_file.as_ref()),
                ("server_name", d.server_name.as_ref()),
                ("client_cert_file", d.client_cert_file.as_ref()),
                ("client_key_file", d.client_key_file.as_ref()),
            ];
            for (key, v) in upstream {
                if let Some(v) = v {
                    self.fail::<()>(
                        v.span(),
                        format!(
                            "{key} is for TLS towards the server, which tollgate does not speak \
                             with tls = \"{tls}\" (only with \"originate\" or \"terminate\")"
                        ),
                    );
                }
            }
        }
        if let Some(sni) = &d.passthrough_sni
            && tls != HttpTls::Terminate
        {
            self.fail::<()>(
                sni.span(),
                format!(
                    "passthrough_sni is for tls = \"terminate\" (with \"passthrough\" every \
                     connection passes through), not tls = \"{tls}\""
                ),
            );
        }
        if tls == HttpTls::Passthrough {
            self.l7_keys_under_passthrough(&d);
        }
        let ca_file = d
            .ca_file
            .as_ref()
            .filter(|_| tls.upstream_tls())
            .and_then(|p| self.plain_file("ca_file", p));
        let server_name = d
            .server_name
            .as_ref()
            .filter(|_| tls.upstream_tls())
            .and_then(|n| self.server_name(n));
        let client_cert = self.http_client_cert(&d);
        let passthrough_sni = match d.passthrough_sni {
            Some(list) if tls == HttpTls::Terminate => self.sni_globs(list),
            _ => Vec::new(),
        };
        // Verified for the client's SNI or Host otherwise: on an address shared by many sites
        // (a CDN, an ingress routing by SNI), the task could have tollgate's credential or
        // client certificate presented to any of them.
        let identities = [
            ("a credential", d.credential.as_ref().map(Spanned::span)),
            (
                "a client certificate",
                d.client_cert_file.as_ref().map(Spanned::span),
            ),
        ];
        for (what, span) in identities {
            if let Some(span) = span
                && tls.upstream_tls()
                && d.server_name.is_none()
            {
                self.fail::<()>(
                    span,
                    format!(
                        "{what} with tls = \"{tls}\" needs server_name: the name the server \
                         must prove, so that it goes to that server only (not to any host the \
                         task names on the same address)"
                    ),
                );
            }
        }
        let credential = d.credential.and_then(|c| self.http_credential(c));
        let max_request_header = self.size(
            "max_request_header",
            d.max_request_header.as_ref(),
            DEFAULT_MAX_REQUEST_HEADER,
            REQUEST_HEADER_RANGE,
        );
        let max_body_buffer = self.size(
            "max_body_buffer",
            d.max_body_buffer.as_ref(),
            DEFAULT_MAX_BODY_BUFFER,
            BODY_BUFFER_RANGE,
        );
        let body_cap = d
            .body_cap
            .as_ref()
            .map_or(DEFAULT_BODY_CAP, |s| s.get_ref().0);
        if let Some(cap) = &d.body_cap
            && body_cap > max_body_buffer
        {
            self.fail::<()>(
                cap.span(),
                format!(
                    "body_cap ({body_cap} bytes) is larger than max_body_buffer \
                     ({max_body_buffer} bytes)"
                ),
            );
        }
        let redact_headers = self.header_names(d.redact_headers);
        let masking = match d.masking {
            Some(m) if tls.sees_requests() => self.http_masking(m, tls_span),
            _ => None,
        };
        if self.errors.len() != before {
            return None;
        }
        let (masking, hash_key, masker, json_keys) = match masking {
            Some(m) => (Some(m.config), m.hash_key, Some(m.masker), m.json_keys),
            None => (None, None, None, Vec::new()),
        };
        let flag = |b: Option<Spanned<bool>>, default| b.map_or(default, Spanned::into_inner);
        Some(HttpTarget {
            tls,
            ca_file,
            server_name,
            client_cert,
            passthrough_sni,
            credential,
            strip_client_credentials: flag(d.strip_client_credentials, true),
            max_request_header,
            max_body_buffer,
            compressed: d.compressed.map(Spanned::into_inner).unwrap_or_default(),
            unmaskable: d.unmaskable.map(Spanned::into_inner).unwrap_or_default(),
            record_bodies: flag(d.record_bodies, false),
            body_cap,
            record_headers: flag(d.record_headers, true),
            redact_headers,
            masking,
            masker,
            json_keys,
            hash_key,
        })
    }

    /// Under `tls = "passthrough"` tollgate sees no request: keys about requests are errors.
    fn l7_keys_under_passthrough(&mut self, d: &HttpTargetDef) {
        let keys = [
            ("credential", d.credential.as_ref().map(Spanned::span)),
            (
                "strip_client_credentials",
                d.strip_client_credentials.as_ref().map(Spanned::span),
            ),
            (
                "max_request_header",
                d.max_request_header.as_ref().map(Spanned::span),
            ),
            (
                "max_body_buffer",
                d.max_body_buffer.as_ref().map(Spanned::span),
            ),
            ("compressed", d.compressed.as_ref().map(Spanned::span)),
            ("unmaskable", d.unmaskable.as_ref().map(Spanned::span)),
            ("record_bodies", d.record_bodies.as_ref().map(Spanned::span)),
            ("body_cap", d.body_cap.as_ref().map(Spanned::span)),
            (
                "record_headers",
                d.record_headers.as_ref().map(Spanned::span),
            ),
            (
                "redact_headers",
                d.redact_headers.as_ref().map(Spanned::span),
            ),
            // Not spanned (see `HttpTargetDef::masking`): reported at `tls`.
            (
                "[target.http.masking]",
                d.masking.as_ref().map(|_| d.tls.span()),
            ),
        ];
        for (key, at) in keys {
            if let Some(at) = at {
                self.fail::<()>(
                    at,
                    format!(
                        "{key} has no effect with tls = \"passthrough\": tollgate sees no request \
                         (use \"terminate\" to decide requests)"
                    ),
                );
            }
        }
    }

    /// `client_cert_file` with `client_key_file`: the certificate must exist, the key be
    /// root-only (checked here, read when connecting).
    fn http_client_cert(&mut self, d: &HttpTargetDef) -> Option<(PathBuf, PathBuf)> {
        if !d.tls.get_ref().upstream_tls() {
            return None;
        }
        let (cert, key) = match (&d.client_cert_file, &d.client_key_file) {
            (Some(cert), Some(key)) => (cert, key),
            (Some(one), None) | (None, Some(one)) => {
                return self.fail(
                    one.span(),
                    "client_cert_file and client_key_file go together",
                );
            }
            (None, None) => return None,
        };
        let cert = self.plain_file("client_cert_file", cert);
        let key_path = PathBuf::from(key.get_ref());
        let key = match open_secret_file(&key_path) {
            Ok(_) => Some(key_path),
            Err(e) => self.fail(key.span(), e),
        };
        Some((cert?, key?))
    }

    /// `redact_headers`: HTTP header names, lowercased.
    fn header_names(&mut self, list: Option<Spanned<Vec<Spanned<String>>>>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in list.map(Spanned::into_inner).unwrap_or_default() {
            let text = name.get_ref();
            if !is_token(text) {
                let reason = format!("redact_headers: {text:?} is not a valid HTTP header name");
                self.fail::<()>(name.span(), reason);
                continue;
            }
            let lower = text.to_ascii_lowercase();
            if !out.contains(&lower) {
                out.push(lower);
            }
        }
        out
    }

    /// `passthrough_sni`: non-empty DNS-name globs, lowercased.
    fn sni_globs(&mut self, list: Spanned<Vec<Spanned<String>>>) -> Vec<Pattern> {
        if list.get_ref().is_empty() {
            self.fail::<()>(
                list.span(),
                "passthrough_sni is empty: omit it to terminate every SNI",
            );
            return Vec::new();
        }
        let mut out: Vec<Pattern> = Vec::new();
        for g in list.into_inner() {
            let text = g.get_ref().to_ascii_lowercase();
            let bad = text.is_empty()
                || text
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | ':' | '@'));
            if bad {
                let reason = format!(
                    "passthrough_sni glob {:?} must be a DNS name pattern, e.g. \"*.bank.example\"",
                    g.get_ref()
                );
                self.fail::<()>(g.span(), reason);
                continue;
            }
            match Pattern::new(&text, false) {
                Ok(p) if !out.iter().any(|o| o.as_str() == p.as_str()) => out.push(p),
                Ok(_) => {}
                Err(e) => {
                    let reason = format!("invalid passthrough_sni glob {text:?}: {}", e.kind());
                    self.fail::<()>(g.span(), reason);
                }
            }
        }
        out
    }

    /// A size setting within `(min, max)`, or its default.
    pub(in crate::policy) fn size(
        &mut self,
        key: &str,
        v: Option<&Spanned<Size>>,
        default: u64,
        range: (u64, u64),
    ) -> u64 {
        let Some(v) = v else { return default };
        let n = v.get_ref().0;
        if n < range.0 || n > range.1 {
            self.fail::<()>(
                v.span(),
                format!(
                    "{key} must be between {} and {} bytes, not {n}",
                    range.0, range.1
                ),
            );
        }
        n
    }

    fn http_credential(&mut self, c: Spanned<HttpCredentialDef>) -> Option<HttpCredential> {
        let span = c.span();
        let d = c.into_inner();
        let first = |a: &Option<Spanned<String>>, b: &Option<Spanned<String>>| {
            a.as_ref().or(b.as_ref()).map(Spanned::span)
        };
        let basic_password = first(&d.basic_password_file, &d.basic_password_env);
        let kinds: Vec<Range<usize>> = [
            first(&d.bearer_file, &d.bearer_env),
            d.basic_user
                .as_ref()
                .map(Spanned::span)
                .or(basic_password.clone()),
            d.header.as_ref().map(Spanned::span),
            d.query.as_ref().map(Spanned::span),
        ]
        .into_iter()
        .flatten()
        .collect();
        const KINDS: &str = "bearer_file, bearer_env, basic_user (with basic_password_file or \
                             basic_password_env), header or query (with value_file or value_env)";
        if d.header.is_none()
            && d.query.is_none()
            && let Some(at) = first(&d.value_file, &d.value_env)
        {
            return self.fail(at, "value_file and value_env go with header or query");
        }
        match kinds.as_slice() {
            [] => return self.fail(span, format!("credential needs one of {KINDS}")),
            [_] => {}
            [_, second, ..] => {
                return self.fail(
                    second.clone(),
                    format!("credential: give only one kind of credential: {KINDS}"),
                );
            }
        }
        if let Some(b) = first(&d.bearer_file, &d.bearer_env) {
            let token = self.one_secret(
                (&d.bearer_file, "bearer_file"),
                (&d.bearer_env, "bearer_env"),
                b.clone(),
            )?;
            return self.header_safe(token, b).map(HttpCredential::Bearer);
        }
        if let Some(at) = d.basic_user.as_ref().map(Spanned::span).or(basic_password) {
            let Some(user) = &d.basic_user else {
                return self.fail(
                    at,
                    "basic_password_file and basic_password_env go with basic_user",
                );
            };
            let name = user.get_ref();
            if name.is_empty() || name.contains(':') || name.chars().any(char::is_control) {
                let reason = format!(
                    "basic_user {name:?} must be a non-empty name without ':' or control characters"
                );
                return self.fail(user.span(), reason);
            }
            let password = self.one_secret(
                (&d.basic_password_file, "basic_password_file"),
                (&d.basic_password_env, "basic_password_env"),
                user.span(),
            )?;
            return Some(HttpCredential::Basic {
                user: name.clone(),
                password,
            });
        }
        let (name, is_header) = match (&d.header, &d.query) {
            (Some(h), _) => (h, true),
            (None, Some(q)) => (q, false),
            (None, None) => return None,
        };
        let text = name.get_ref();
        if is_header {
            let lower = text.to_ascii_lowercase();
            if !is_token(text) {
                let reason = format!("header {text:?} is not a valid HTTP header name");
                return self.fail(name.span(), reason);
            }
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                let reason = format!("header {text:?} frames the message and cannot be injected");
                return self.fail(name.span(), reason);
            }
            let value = self.one_secret(
                (&d.value_file, "value_file"),
                (&d.value_env, "value_env"),
                name.span(),
            )?;
            let at = first(&d.value_file, &d.value_env).unwrap_or_else(|| name.span());
            let value = self.header_safe(value, at)?;
            return Some(HttpCredential::Header { name: lower, value });
        }
        let unreserved = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~');
        if text.is_empty() || !text.chars().all(unreserved) {
            let reason = format!(
                "query parameter name {text:?} must be letters, digits, '-', '.', '_', '~'"
            );
            return self.fail(name.span(), reason);
        }
        let value = self.one_secret(
            (&d.value_file, "value_file"),
            (&d.value_env, "value_env"),
            name.span(),
        )?;
        Some(HttpCredential::Query {
            name: text.clone(),
            value,
        })
    }

    /// Exactly one of a `*_file` and a `*_env` key: the secret it names. `missing` locates the
    /// error when neither is given.
    fn one_secret(
        &mut self,
        (file, file_key): (&Option<Spanned<String>>, &str),
        (env, env_key): (&Option<Spanned<String>>, &str),
        missing: Range<usize>,
    ) -> Option<Secret> {
        match (file, env) {
            (Some(_), Some(e)) => {
                self.fail(e.span(), format!("give only one of {file_key}, {env_key}"))
            }
            (Some(p), None) => self.secret_file(p),
            (None, Some(name)) => match read_secret_env(name.get_ref(), self.env) {
                Ok(s) => Some(s),
                Err(e) => self.fail(name.span(), e),
            },
            (None, None) => self.fail(missing, format!("credential needs {file_key} or {env_key}")),
        }
    }

    /// A secret sent as a header value must hold no control character (a line break would
    /// inject headers). The error, at `at` (the key naming the secret), names where the secret
    /// comes from, never its content.
    fn header_safe(&mut self, s: Secret, at: Range<usize>) -> Option<Secret> {
        let bad = s
            .expose()
            .iter()
            .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f);
        if !bad {
            return Some(s);
        }
        let reason = format!(
            "the secret in {} holds a control character (a line break?): it cannot be sent in a \
             header",
            s.origin()
        );
        self.fail(at, reason)
    }

    /// `[target.http.masking]`: read the hash key, compile the JSON keys and the detectors.
    fn http_masking(&mut self, d: HttpMaskingDef, fallback: Range<usize>) -> Option<Masking> {
        let hash_key = match &d.hash_key_file {
            Some(p) => Some(self.secret_file(p)?),
            None => None,
        };
        let before = self.errors.len();
        let mut json_keys = Vec::with_capacity(d.json_keys.len());
        for k in &d.json_keys {
            let def = k.get_ref();
            let style = match &def.style {
                Style::Hash { key } if !key.is_set() => {
                    let compiled = hash_key.as_ref().map(|s| HashKey::new(s.expose()));
                    match compiled {
                        Some(Ok(key)) => Style::Hash { key },
                        Some(Err(e)) => {
                            self.fail::<()>(k.span(), e.to_string());
                            continue;
                        }
                        None => {
                            let reason = format!(
                                "json key {:?}: style \"hash\" needs a hash key: set hash_key_file \
                                 in [target.http.masking]",
                                def.key
                            );
                            self.fail::<()>(k.span(), reason);
                            continue;
                        }
                    }
                }
                other => other.clone(),
            };
            match JsonKey::new(&def.key, style) {
                Ok(key) => json_keys.push(key),
                Err(e) => {
                    let reason = format!("invalid json_keys entry {:?}: {e}", def.key);
                    self.fail::<()>(k.span(), reason);
                }
            }
        }
        let config = MaskingConfig {
            columns: Vec::new(),
            detectors: d.detectors.iter().map(|r| r.get_ref().clone()).collect(),
        };
        let masker = match Masker::new(&config, hash_key.as_ref().map(Secret::expose)) {
            Ok(m) => m,
            Err(e) => {
                let at = match &e {
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
                    MaskingError::HashKeyMissing { .. } => d
                        .detectors
                        .iter()
                        .find(|r| matches!(r.get_ref().style, Style::Hash { .. }))
                        .map(Spanned::span),
                    _ => d.hash_key_file.as_ref().map(Spanned::span),
                };
                let mut reason = e.to_string();
                if matches!(e, MaskingError::HashKeyMissing { .. }) {
                    reason += ": set hash_key_file in [target.http.masking]";
                }
                return self.fail(at.unwrap_or(fallback), reason);
            }
        };
        (self.errors.len() == before).then_some(Masking {
            config,
            hash_key,
            masker,
            json_keys,
        })
    }

    /// Checks a `[rule.http]` section.
    pub(in crate::policy) fn http_rule(&mut self, d: HttpRuleDef) -> Option<RequestRule> {
        let before = self.errors.len();
        let methods = d.methods.and_then(|m| self.methods(m));
        let hosts = d.hosts.and_then(|h| self.host_globs(h));
        let given: Vec<Range<usize>> = [
            d.paths.as_ref().map(Spanned::span),
            d.path_prefix.as_ref().map(Spanned::span),
            d.path_regex.as_ref().map(Spanned::span),
        ]
        .into_iter()
        .flatten()
        .collect();
        let path = if let [_, second, ..] = given.as_slice() {
            self.fail(
                second.clone(),
                "give only one of paths, path_prefix, path_regex",
            )
        } else if let Some(p) = d.paths {
            self.path_globs(p).map(PathMatch::Globs)
        } else if let Some(p) = d.path_prefix {
            self.path_prefixes(p).map(PathMatch::Prefix)
        } else if let Some(r) = d.path_regex {
            self.path_regex(&r).map(PathMatch::Regex)
        } else {
            None
        };
        let query = d
            .query
            .map(|q| self.value_globs("query", q, false))
            .unwrap_or_default();
        let headers = d
            .headers
            .map(|h| self.value_globs("headers", h, true))
            .unwrap_or_default();
        (self.errors.len() == before).then_some(RequestRule {
            methods,
            hosts,
            path,
            query,
            headers,
        })
    }

    fn methods(&mut self, list: Spanned<Vec<Spanned<String>>>) -> Option<Vec<String>> {
        if list.get_ref().is_empty() {
            return self.fail(list.span(), "methods is empty: omit it to match any method");
        }
        let mut out = Vec::new();
        for m in list.into_inner() {
            if !is_token(m.get_ref()) {
                let reason = format!("method {:?} is not an HTTP method name", m.get_ref());
                self.fail::<()>(m.span(), reason);
                continue;
            }
            out.push(m.get_ref().to_ascii_uppercase());
        }
        out.sort();
        out.dedup();
        Some(out)
    }

    fn host_globs(&mut self, list: Spanned<Vec<Spanned<String>>>) -> Option<Globs> {
        if list.get_ref().is_empty() {
            return self.fail(list.span(), "hosts is empty: omit it to match any host");
        }
        let span = list.span();
        let mut entries = Vec::new();
        for h in list.into_inner() {
            let text = h.get_ref();
            if text.is_empty() || text.contains(['/', '@', ' ']) {
                let reason = format!("hosts glob {text:?} must be a host name pattern (no port)");
                self.fail::<()>(h.span(), reason);
                continue;
            }
            if text.rsplit_once(':').is_some_and(|(h, p)| {
                !h.contains(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
            }) {
                let reason = format!("hosts glob {text:?}: hosts are matched without the port");
                self.fail::<()>(h.span(), reason);
                continue;
            }
            entries.push((h.span(), text.to_ascii_lowercase()));
        }
        self.globs("hosts", span, entries, true, false)
    }

    fn path_globs(&mut self, list: Spanned<Vec<Spanned<String>>>) -> Option<Globs> {
        if list.get_ref().is_empty() {
            return self.fail(list.span(), "paths is empty: omit it to match any path");
        }
        let span = list.span();
        let mut entries = Vec::new();
        for p in list.into_inner() {
            if let Err(reason) = normalized_pattern("path glob", p.get_ref()) {
                self.fail::<()>(p.span(), reason);
                continue;
            }
            entries.push((p.span(), p.get_ref().clone()));
        }
        self.globs("paths", span, entries, false, true)
    }

    fn path_prefixes(&mut self, list: Spanned<Vec<Spanned<String>>>) -> Option<Vec<String>> {
        if list.get_ref().is_empty() {
            return self.fail(
                list.span(),
                "path_prefix is empty: omit it to match any path",
            );
        }
        let mut out = Vec::new();
        for p in list.into_inner() {
            match normalized_pattern("path_prefix", p.get_ref()) {
                Ok(()) => out.push(p.get_ref().clone()),
                Err(reason) => {
                    self.fail::<()>(p.span(), reason);
                }
            }
        }
        out.sort();
        out.dedup();
        Some(out)
    }

    /// `path_regex`, anchored to match the whole path.
    fn path_regex(&mut self, r: &Spanned<String>) -> Option<Regex> {
        let text = r.get_ref();
        if text.len() > MAX_REGEX_LEN {
            let reason = format!("path_regex is longer than {MAX_REGEX_LEN} bytes");
            return self.fail(r.span(), reason);
        }
        let built = RegexBuilder::new(&format!("^(?:{text})$"))
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build();
        match built {
            Ok(re) => Some(re),
            Err(e) => self.fail(r.span(), format!("invalid path_regex: {}", regex_error(&e))),
        }
    }

    /// `query` or `headers`: name → glob on the value; header names are tokens, lowercased.
    fn value_globs(
        &mut self,
        key: &str,
        map: Spanned<BTreeMap<Spanned<String>, Spanned<String>>>,
        headers: bool,
    ) -> Vec<(String, Globs)> {
        if map.get_ref().is_empty() {
            self.fail::<()>(map.span(), format!("{key} is empty: omit it to match any"));
            return Vec::new();
        }
        let mut out: Vec<(String, Globs)> = Vec::new();
        for (name, value) in map.into_inner() {
            let name_span = name.span();
            let text = name.get_ref();
            let ok = if headers {
                is_token(text)
            } else {
                !text.is_empty()
            };
            if !ok {
                let what = if headers { "header" } else { "query parameter" };
                self.fail::<()>(name.span(), format!("invalid {what} name {text:?}"));
                continue;
            }
            let name = if headers {
                text.to_ascii_lowercase()
            } else {
                text.clone()
            };
            if out.iter().any(|(n, _)| *n == name) {
                let reason = format!("header {text:?} is given twice (names are case-insensitive)");
                self.fail::<()>(name_span, reason);
                continue;
            }
            let entries = vec![(value.span(), value.get_ref().clone())];
            if let Some(g) = self.globs(key, value.span(), entries, false, false) {
                out.push((name, g));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Compiles globs, each error at its entry.
    fn globs(
        &mut self,
        key: &str,
        span: Range<usize>,
        entries: Vec<(Range<usize>, String)>,
        case_insensitive: bool,
        paths: bool,
    ) -> Option<Globs> {
        let before = self.errors.len();
        let mut set = GlobSetBuilder::new();
        let mut patterns = Vec::with_capacity(entries.len());
        for (at, text) in entries {
            let glob = GlobBuilder::new(&text)
                .case_insensitive(case_insensitive)
                .literal_separator(paths)
                .backslash_escape(true)
                .build();
            match glob {
                Ok(g) => {
                    set.add(g);
                    patterns.push(text);
                }
                Err(e) => {
                    self.fail::<()>(at, format!("invalid {key} glob {text:?}: {}", e.kind()));
                }
            }
        }
        if self.errors.len() != before {
            return None;
        }
        let set = match set.build() {
            Ok(s) => s,
            Err(e) => return self.fail(span, format!("{key} globs: {e}")),
        };
        patterns.sort();
        patterns.dedup();
        Some(Globs { patterns, set })
    }
}

/// An HTTP token (RFC 9110 `tchar`s): method and header names.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// A path glob or prefix must be written as normalized paths are (see
/// [`normalize_path`](super::path::normalize_path)), or it would never match: starting with `/`,
/// no empty, `.` or `..` segment inside, no escape of an unreserved character, uppercase hex.
fn normalized_pattern(what: &str, p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("{what} {p:?} must start with \"/\""));
    }
    let segments: Vec<&str> = p.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let bad_segment = segments
        .iter()
        .enumerate()
        .any(|(i, s)| matches!(*s, "." | "..") || (s.is_empty() && i != last));
    if bad_segment {
        return Err(format!(
            "{what} {p:?} never matches: request paths are normalized first (no \"//\", \".\" or \
             \"..\" segments)"
        ));
    }
    if p.contains(';') {
        return Err(format!(
            "{what} {p:?} never matches: a request path holding \";\" is refused as malformed"
        ));
    }
    let bytes = p.as_bytes();
    for (i, _) in p.match_indices('%') {
        let escape = bytes.get(i + 1..i + 3).and_then(|h| {
            let h = std::str::from_utf8(h).ok()?;
            u8::from_str_radix(h, 16).ok().map(|v| (h, v))
        });
        let Some((hex, v)) = escape else {
            return Err(format!("{what} {p:?}: \"%\" must start an escape %XX"));
        };
        let unreserved = v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~');
        if unreserved
            || matches!(v, b'/' | b'\\' | 0)
            || hex.bytes().any(|b| b.is_ascii_lowercase())
        {
            return Err(format!(
                "{what} {p:?} never matches: request paths are normalized first (unreserved \
                 characters decoded, other escapes in uppercase, no %2F, %5C or %00)"
            ));
        }
    }
    Ok(())
}
