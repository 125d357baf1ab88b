//! The on-disk format of `[target.http]` and `[rule.http]`, as written (checks are in
//! `compile`).
use std::{collections::BTreeMap, fmt};

use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, Visitor, value::MapAccessDeserializer},
};
use toml::Spanned;

use super::model::{Compressed, HttpTls, Unmaskable};
use crate::masking::{DetectorRule, Style};

/// `[target.http]`: TLS handling, credential, limits and masking of an http target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::policy) struct HttpTargetDef {
    /// "none", "originate", "terminate" or "passthrough"; required.
    pub(in crate::policy) tls: Spanned<HttpTls>,
    /// Absolute path of the upstream PEM trust anchor (else the system roots).
    pub(in crate::policy) ca_file: Option<Spanned<String>>,
    /// Upstream name to verify (else the SNI or the Host).
    pub(in crate::policy) server_name: Option<Spanned<String>>,
    /// Absolute path of a PEM client certificate for upstream mTLS (with `client_key_file`).
    pub(in crate::policy) client_cert_file: Option<Spanned<String>>,
    /// Absolute path of its root-only PEM private key.
    pub(in crate::policy) client_key_file: Option<Spanned<String>>,
    /// With "terminate": SNI globs passed through untouched.
    pub(in crate::policy) passthrough_sni: Option<Spanned<Vec<Spanned<String>>>>,
    /// The credential injected into each request.
    pub(in crate::policy) credential: Option<Spanned<HttpCredentialDef>>,
    /// Remove the task's own credentials (default true).
    pub(in crate::policy) strip_client_credentials: Option<Spanned<bool>>,
    /// Largest request head (default "64KiB").
    pub(in crate::policy) max_request_header: Option<Spanned<Size>>,
    /// Largest body held in memory (default "8MiB").
    pub(in crate::policy) max_body_buffer: Option<Spanned<Size>>,
    /// "decode" (default) or "refuse".
    pub(in crate::policy) compressed: Option<Spanned<Compressed>>,
    /// "pass" (default) or "refuse".
    pub(in crate::policy) unmaskable: Option<Spanned<Unmaskable>>,
    /// Record request bodies in the audit (default false).
    pub(in crate::policy) record_bodies: Option<Spanned<bool>>,
    /// Most bytes of a recorded body (default "4KiB").
    pub(in crate::policy) body_cap: Option<Spanned<Size>>,
    /// Record request headers, sensitive values redacted (default true).
    pub(in crate::policy) record_headers: Option<Spanned<bool>>,
    /// More header names whose values are never recorded.
    pub(in crate::policy) redact_headers: Option<Spanned<Vec<Spanned<String>>>>,
    /// `[target.http.masking]` (not `Spanned`: dotted keys may create it implicitly).
    pub(in crate::policy) masking: Option<HttpMaskingDef>,
}

/// `credential = { ... }`: exactly one kind, its secret from a file or the environment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::policy) struct HttpCredentialDef {
    /// Root-only file holding a bearer token.
    pub(in crate::policy) bearer_file: Option<Spanned<String>>,
    /// Environment variable holding a bearer token.
    pub(in crate::policy) bearer_env: Option<Spanned<String>>,
    /// Basic authentication user (with `basic_password_file` or `basic_password_env`).
    pub(in crate::policy) basic_user: Option<Spanned<String>>,
    /// Root-only file holding the basic password.
    pub(in crate::policy) basic_password_file: Option<Spanned<String>>,
    /// Environment variable holding the basic password.
    pub(in crate::policy) basic_password_env: Option<Spanned<String>>,
    /// Header name (with `value_file` or `value_env`).
    pub(in crate::policy) header: Option<Spanned<String>>,
    /// Query parameter name (with `value_file` or `value_env`).
    pub(in crate::policy) query: Option<Spanned<String>>,
    /// Root-only file holding the header or query value.
    pub(in crate::policy) value_file: Option<Spanned<String>>,
    /// Environment variable holding the header or query value.
    pub(in crate::policy) value_env: Option<Spanned<String>>,
}

/// `[target.http.masking]`: what is masked in response bodies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::policy) struct HttpMaskingDef {
    /// Absolute path of a root-only file holding the key of the `hash` style.
    pub(in crate::policy) hash_key_file: Option<Spanned<String>>,
    /// JSON values masked whole: key globs or JSON paths, first match wins.
    #[serde(default)]
    pub(in crate::policy) json_keys: Vec<Spanned<JsonKeyDef>>,
    /// Detectors run on text and JSON string values.
    #[serde(default)]
    pub(in crate::policy) detectors: Vec<Spanned<DetectorRule>>,
}

/// A `json_keys` entry: `"ssn"` (masked with `redact`) or `{ key = "ssn", style = "last4" }`.
#[derive(Debug, Clone)]
pub(in crate::policy) struct JsonKeyDef {
    /// Key glob or JSON path.
    pub(in crate::policy) key: String,
    /// How values are masked.
    pub(in crate::policy) style: Style,
}

/// The table form of a [`JsonKeyDef`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonKeyTable {
    /// Key glob or JSON path.
    key: String,
    /// How values are masked (default "redact").
    #[serde(default = "redact")]
    style: Style,
}

fn redact() -> Style {
    Style::Redact
}

impl<'de> Deserialize<'de> for JsonKeyDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonKeyDef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key glob or JSON path, or { key = \"...\", style = \"...\" }")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<JsonKeyDef, E> {
                Ok(JsonKeyDef {
                    key: v.to_owned(),
                    style: Style::Redact,
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<JsonKeyDef, A::Error> {
                let t = JsonKeyTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(JsonKeyDef {
                    key: t.key,
                    style: t.style,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `[rule.http]`: conditions on requests; absent keys match anything.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::policy) struct HttpRuleDef {
    /// Methods (HTTP tokens).
    pub(in crate::policy) methods: Option<Spanned<Vec<Spanned<String>>>>,
    /// Host globs, case-insensitive.
    pub(in crate::policy) hosts: Option<Spanned<Vec<Spanned<String>>>>,
    /// Path globs.
    pub(in crate::policy) paths: Option<Spanned<Vec<Spanned<String>>>>,
    /// Path prefixes.
    pub(in crate::policy) path_prefix: Option<Spanned<Vec<Spanned<String>>>>,
    /// Regular expression on the whole path.
    pub(in crate::policy) path_regex: Option<Spanned<String>>,
    /// Query parameter name → glob on its value.
    pub(in crate::policy) query: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    /// Header name → glob on its value.
    pub(in crate::policy) headers: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
}

/// A size in bytes: an integer, or a string `"<n>"`, `"<n>B"`, `"<n>KiB"`, `"<n>MiB"`,
/// `"<n>GiB"` (a space before the unit is allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::policy) struct Size(pub(in crate::policy) u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: bytes, or a string such as \"64KiB\" or \"8MiB\"")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("size {v} is negative")))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses `"64KiB"`-style sizes.
pub(in crate::policy) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let unit = unit.trim_start();
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "K" | "KB" | "k" | "kB" | "M" | "MB" | "G" | "GB" => {
            return Err(format!(
                "size {s:?}: write binary units, KiB, MiB or GiB (1KiB = 1024 bytes)"
            ));
        }
        _ => {
            return Err(format!(
                "invalid size {s:?}: expected bytes or a number with KiB, MiB or GiB"
            ));
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number first"))?;
    n.checked_mul(scale)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("0", Ok(0)),
            ("512", Ok(512)),
            ("512B", Ok(512)),
            ("64KiB", Ok(65_536)),
            ("64 KiB", Ok(65_536)),
            (" 8MiB ", Ok(8 << 20)),
            ("1GiB", Ok(1 << 30)),
            ("64KB", Err("write binary units")),
            ("8M", Err("write binary units")),
            ("64kib", Err("invalid size")),
            ("KiB", Err("expected a number")),
            ("", Err("expected a number")),
            ("-1", Err("invalid size")),
            ("1.5MiB", Err("invalid size")),
            ("99999999999999999999", Err("expected a number")),
            ("99999999999GiB", Err("too large")),
        ];
        for (s, want) in cases {
            match (parse_size(s), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, *w, "{s:?}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{s:?}: {e}"),
                (got, want) => panic!("{s:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
