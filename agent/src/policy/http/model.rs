//! The validated HTTP parts of a policy: an http target's TLS handling, credential, limits and
//! masking, and a request rule's conditions.
use std::{fmt, path::PathBuf};

use globset::GlobSet;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::json_key::{JsonKey, JsonStep, json_key_for};
use crate::{
    masking::{Masker, MaskingConfig},
    policy::{secret::Secret, selector::Pattern},
};

/// How TLS is handled on an http target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpTls {
    /// Plain HTTP on both sides.
    None,
    /// The task speaks plain HTTP; tollgate speaks TLS upstream, verified.
    Originate,
    /// The task speaks HTTPS; tollgate terminates it with a leaf of its local CA for the SNI and
    /// speaks TLS upstream, verified (except the SNIs of `passthrough_sni`).
    Terminate,
    /// The task speaks HTTPS end to end; tollgate decides the connection only (L4), it sees no
    /// request.
    Passthrough,
}

impl HttpTls {
    /// Whether tollgate speaks TLS to the server itself (and so verifies it).
    pub fn upstream_tls(self) -> bool {
        matches!(self, HttpTls::Originate | HttpTls::Terminate)
    }

    /// Whether tollgate sees the requests (every mode but passthrough).
    pub fn sees_requests(self) -> bool {
        self != HttpTls::Passthrough
    }
}

impl fmt::Display for HttpTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpTls::None => "none",
            HttpTls::Originate => "originate",
            HttpTls::Terminate => "terminate",
            HttpTls::Passthrough => "passthrough",
        })
    }
}

/// Compressed response bodies when masking is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compressed {
    /// gzip, deflate and br bodies are decoded, then masked (and sent uncompressed).
    #[default]
    Decode,
    /// Compressed responses are refused.
    Refuse,
}

impl fmt::Display for Compressed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compressed::Decode => "decode",
            Compressed::Refuse => "refuse",
        })
    }
}

/// Response bodies of a content type masking cannot read (images, protobuf...), when masking is
/// on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmaskable {
    /// Passed unmasked.
    #[default]
    Pass,
    /// Refused.
    Refuse,
}

impl fmt::Display for Unmaskable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unmaskable::Pass => "pass",
            Unmaskable::Refuse => "refuse",
        })
    }
}

/// A credential tollgate adds to every request it forwards. Secrets print as `<redacted>`.
#[derive(Debug, Clone)]
pub enum HttpCredential {
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        /// User name (no `:`).
        user: String,
        /// Password.
        password: Secret,
    },
    /// A header of its own, e.g. `X-Vault-Token: <value>`.
    Header {
        /// Header name, an HTTP token, lowercase.
        name: String,
        /// Its value (no control characters).
        value: Secret,
    },
    /// A query parameter added to the request target, e.g. `?api_key=<value>`.
    Query {
        /// Parameter name (`A-Z a-z 0-9 - . _ ~`).
        name: String,
        /// Its value (percent-encoded by the handler).
        value: Secret,
    },
}

impl HttpCredential {
    /// The header the credential is sent in (lowercase), `None` for a query parameter: what the
    /// handler strips from the task's requests with `strip_client_credentials`.
    pub fn header_name(&self) -> Option<&str> {
        match self {
            HttpCredential::Bearer(_) | HttpCredential::Basic { .. } => Some("authorization"),
            HttpCredential::Header { name, .. } => Some(name),
            HttpCredential::Query { .. } => None,
        }
    }

    /// The secret.
    pub fn secret(&self) -> &Secret {
        match self {
            HttpCredential::Bearer(s) => s,
            HttpCredential::Basic { password, .. } => password,
            HttpCredential::Header { value, .. } | HttpCredential::Query { value, .. } => value,
        }
    }
}

/// `[target.http]`: how tollgate handles an HTTP(S) target.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    /// TLS handling.
    pub tls: HttpTls,
    /// Upstream trust anchor (PEM); none: the system roots. Only with upstream TLS.
    pub ca_file: Option<PathBuf>,
    /// Name the upstream certificate must carry; none: the client's SNI (terminate) or the
    /// request's host (originate). Only with upstream TLS.
    pub server_name: Option<String>,
    /// Upstream client certificate and key (PEM; the key checked root-only at load, read when
    /// connecting). Only with upstream TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// With `terminate`: SNIs (lowercase globs) whose connections pass through untouched (L4
    /// only, no request rule applies to them).
    pub passthrough_sni: Vec<Pattern>,
    /// Credential added to each forwarded request.
    pub credential: Option<HttpCredential>,
    /// Remove the task's own `Authorization`, `Proxy-Authorization` and the credential's header
    /// or query parameter before forwarding.
    pub strip_client_credentials: bool,
    /// Largest request head (request line and headers), bytes.
    pub max_request_header: u64,
    /// Largest body held in memory (masking, body recording), bytes.
    pub max_body_buffer: u64,
    /// Compressed responses, when masking is on.
    pub compressed: Compressed,
    /// Responses masking cannot read, when masking is on.
    pub unmaskable: Unmaskable,
    /// Record request bodies (capped, masked) in the request audit.
    pub record_bodies: bool,
    /// Most bytes of a body recorded.
    pub body_cap: u64,
    /// Record request headers (sensitive values redacted, see `headers`) in the request audit.
    pub record_headers: bool,
    /// Header names (lowercase) whose values are never recorded, beside those `headers` finds
    /// sensitive by itself.
    pub redact_headers: Vec<String>,
    /// `[target.http.masking]` detectors, as written (`columns` is always empty: JSON bodies are
    /// masked by `json_keys`).
    pub masking: Option<MaskingConfig>,
    /// `masking` compiled at load (set exactly when `masking` is).
    pub masker: Option<Masker>,
    /// Which JSON values are masked whole, in order (first match wins).
    pub json_keys: Vec<JsonKey>,
    /// The secret of the masking `hash` style.
    pub hash_key: Option<Secret>,
}

impl HttpTarget {
    /// Whether a connection with this SNI passes through untouched (`tls = "passthrough"`, or an
    /// SNI of `passthrough_sni` under `terminate`). Case-insensitive, trailing dot ignored.
    pub fn passes_through(&self, sni: Option<&str>) -> bool {
        match self.tls {
            HttpTls::Passthrough => true,
            HttpTls::Terminate => sni.is_some_and(|sni| {
                let sni = sni.strip_suffix('.').unwrap_or(sni).to_ascii_lowercase();
                self.passthrough_sni.iter().any(|p| p.is_match(&sni))
            }),
            HttpTls::None | HttpTls::Originate => false,
        }
    }

    /// Whether responses are masked at all.
    pub fn masks(&self) -> bool {
        !self.json_keys.is_empty() || self.masker.as_ref().is_some_and(|m| !m.is_empty())
    }

    /// The first `json_keys` entry selecting the JSON value at `path`.
    pub fn json_key(&self, path: &[JsonStep<'_>]) -> Option<&JsonKey> {
        json_key_for(&self.json_keys, path)
    }
}

/// `[rule.http]`: the conditions of a request rule. An absent condition matches anything.
#[derive(Debug, Clone)]
pub struct RequestRule {
    /// Methods, uppercase, sorted and deduplicated; compared case-insensitively.
    pub methods: Option<Vec<String>>,
    /// Globs on the host (port stripped), case-insensitive.
    pub hosts: Option<Globs>,
    /// Condition on the normalized path.
    pub path: Option<PathMatch>,
    /// Query parameter name → glob on its value; all must match.
    pub query: Vec<(String, Globs)>,
    /// Header name (lowercase) → glob on its value; all must match.
    pub headers: Vec<(String, Globs)>,
}

/// How a request rule matches the path.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// Path globs: `*` within a segment, `**` across segments.
    Globs(Globs),
    /// The path starts with one of these strings (sorted, deduplicated).
    Prefix(Vec<String>),
    /// A regular expression that must match the whole path.
    Regex(Regex),
}

/// Compiled globs and their text.
#[derive(Debug, Clone)]
pub struct Globs {
    /// As written (lowercased when case-insensitive), sorted and deduplicated.
    pub(in crate::policy) patterns: Vec<String>,
    /// Compiled.
    pub(in crate::policy) set: GlobSet,
}

impl Globs {
    /// The globs as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether some glob matches `s`.
    pub fn matches(&self, s: &str) -> bool {
        self.set.is_match(s)
    }
}

/// What the HTTP handler knows about one request when asking policy.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// Method, as sent.
    pub method: &'a str,
    /// `Host` header or `:authority` (a port, brackets, trailing dot and case are normalized by
    /// the evaluation).
    pub host: &'a str,
    /// Path, without the query; normalized by the evaluation (see
    /// [`normalize_path`](super::path::normalize_path)).
    pub path: &'a str,
    /// Query parameters, percent-decoded, in order (a name may repeat).
    pub query: &'a [(String, String)],
    /// Header names and values, in order (a name may repeat; names compared
    /// case-insensitively).
    pub headers: &'a [(String, String)],
}
