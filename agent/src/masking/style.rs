//! How a sensitive value is masked: redacted, reduced to its last four characters, or replaced by
//! a keyed hash that keeps equal values equal.
use std::fmt::{self, Write as _};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::MaskingError;

type HmacSha256 = Hmac<Sha256>;

/// Marker for a redacted whole column value.
pub const REDACTED: &str = "[REDACTED]";
/// Prefix of a hashed value: `tg_` and 16 lowercase hex digits (64 bits of HMAC-SHA256).
pub const HASH_PREFIX: &str = "tg_";
/// How many hex digits of the HMAC a hashed value shows.
const HASH_HEX_LEN: usize = 16;
/// `Last4` shows the last four alphanumerics only of values with at least this many; shorter
/// values are masked whole (showing 4 of 5 characters would show nearly everything).
pub const LAST4_MIN_ALNUM: usize = 8;

/// A masking style. In configuration it is a plain name: `"redact"`, `"last4"` or `"hash"`; the
/// hash key never comes from the configuration, it is given to [`Masker::new`](super::Masker::new).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(from = "StyleName", into = "StyleName")]
pub enum Style {
    /// Replace the value with a marker: `[REDACTED]` for a whole column value, `[REDACTED:<kind>]`
    /// (e.g. `[REDACTED:card]`) for a detector match, so the reader knows what was removed.
    Redact,
    /// Keep the last 4 alphanumerics, replace every other alphanumeric with `*` and keep separators:
    /// `4111 1111 1111 1111` → `**** **** **** 1111`. Values with fewer than
    /// [`LAST4_MIN_ALNUM`] alphanumerics are masked whole.
    Last4,
    /// `tg_` + the first 16 hex digits of HMAC-SHA256(key, value bytes): deterministic, so equal
    /// values stay equal (joins, grouping) and different keys give different outputs.
    Hash {
        /// The secret key; never printed.
        key: HashKey,
    },
}

impl Style {
    /// Masks `value`. `kind` names the detector for a span (shown by `Redact`), `None` for a whole
    /// column value. A `Hash` without a key (only possible outside a [`Masker`](super::Masker))
    /// fails closed: the value is redacted.
    pub fn apply(&self, value: &str, kind: Option<&str>) -> String {
        match self {
            Self::Redact => redact(kind),
            Self::Last4 => last4(value),
            Self::Hash { key } => key.hash(value).unwrap_or_else(|| redact(kind)),
        }
    }

    /// The style's name as in configuration.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Redact => "redact",
            Self::Last4 => "last4",
            Self::Hash { .. } => "hash",
        }
    }
}

fn redact(kind: Option<&str>) -> String {
    match kind {
        Some(kind) => format!("[REDACTED:{kind}]"),
        None => REDACTED.to_owned(),
    }
}

fn last4(value: &str) -> String {
    let alnum = value.chars().filter(|c| c.is_alphanumeric()).count();
    let keep_from = if alnum >= LAST4_MIN_ALNUM {
        alnum - 4
    } else {
        alnum
    };
    let mut seen = 0;
    // One '*' (one byte) per masked character: never longer than the value.
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_alphanumeric() {
            seen += 1;
            out.push(if seen > keep_from { c } else { '*' });
        } else {
            out.push(c);
        }
    }
    out
}

/// The secret of the `hash` style: an HMAC-SHA256 state keyed once. Its `Debug` prints
/// `<redacted>` (or `<unset>`), never the key.
#[derive(Clone, Default)]
pub struct HashKey(Option<HmacSha256>);

impl HashKey {
    /// A key; an empty key is refused.
    pub fn new(key: &[u8]) -> Result<Self, MaskingError> {
        if key.is_empty() {
            return Err(MaskingError::EmptyHashKey);
        }
        // HMAC accepts keys of any length; the error is unreachable but typed all the same.
        let mac =
            <HmacSha256 as Mac>::new_from_slice(key).map_err(|_| MaskingError::EmptyHashKey)?;
        Ok(Self(Some(mac)))
    }

    /// No key yet (a style read from configuration).
    pub const fn unset() -> Self {
        Self(None)
    }

    /// True once a key is set.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// `tg_` + 16 hex digits of HMAC-SHA256(key, value), or `None` without a key.
    fn hash(&self, value: &str) -> Option<String> {
        let mut mac = self.0.clone()?;
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(HASH_PREFIX.len() + HASH_HEX_LEN);
        out.push_str(HASH_PREFIX);
        for byte in &digest[..HASH_HEX_LEN / 2] {
            // Writing to a String cannot fail.
            let _ = write!(out, "{byte:02x}");
        }
        Some(out)
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_set() {
            "<redacted>"
        } else {
            "<unset>"
        })
    }
}

/// The configuration form of [`Style`]: its name only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum StyleName {
    Redact,
    Last4,
    Hash,
}

impl From<StyleName> for Style {
    fn from(name: StyleName) -> Self {
        match name {
            StyleName::Redact => Self::Redact,
            StyleName::Last4 => Self::Last4,
            StyleName::Hash => Self::Hash {
                key: HashKey::unset(),
            },
        }
    }
}

impl From<Style> for StyleName {
    fn from(style: Style) -> Self {
        match style {
            Style::Redact => Self::Redact,
            Style::Last4 => Self::Last4,
            Style::Hash { .. } => Self::Hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(key: &[u8]) -> Style {
        Style::Hash {
            key: HashKey::new(key).unwrap(),
        }
    }

    #[test]
    fn redact_table() {
        let cases = [
            ("4111111111111111", Some("card"), "[REDACTED:card]"),
            ("alice@example.com", Some("email"), "[REDACTED:email]"),
            ("anything at all", None, "[REDACTED]"),
            ("x", None, "[REDACTED]"),
        ];
        for (value, kind, want) in cases {
            assert_eq!(Style::Redact.apply(value, kind), want, "{value:?}");
        }
    }

    #[test]
    fn last4_table() {
        let cases = [
            ("4111111111111111", "************1111"),
            ("4111 1111 1111 1111", "**** **** **** 1111"),
            ("4111-1111-1111-1111", "****-****-****-1111"),
            ("078-05-1121", "***-**-1121"),
            ("+1 (415) 555-2671", "+* (***) ***-2671"),
            ("DE89 3704 0044 0532 0130 00", "**** **** **** **** **30 00"),
            ("alice@example.com", "*****@******e.com"),
            // Short values are masked whole.
            ("1234567", "*******"),
            ("ab-cd", "**-**"),
            ("", ""),
            ("--", "--"),
            // Any script counts, one '*' per character.
            ("ÄÖÜäöüßé", "****öüßé"),
        ];
        for (value, want) in cases {
            assert_eq!(Style::Last4.apply(value, Some("x")), want, "{value:?}");
        }
    }

    #[test]
    fn hash_is_deterministic_keyed_and_shaped() {
        let a = hash(b"key-a");
        let b = hash(b"key-b");
        let out = a.apply("alice@example.com", None);
        assert_eq!(out.len(), 3 + 16);
        assert!(out.starts_with("tg_"));
        assert!(
            out[3..]
                .bytes()
                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
            "{out}"
        );
        assert_eq!(
            a.apply("alice@example.com", Some("email")),
            out,
            "kind does not change a hash"
        );
        assert_ne!(a.apply("alice@example.con", None), out);
        assert_ne!(b.apply("alice@example.com", None), out);
    }

    #[test]
    fn hash_matches_hmac_sha256_test_vector() {
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?")
        // = 5bdcc146bf60754e6a042426089575c7 5a003f089d2739839dec58b964ec3843.
        assert_eq!(
            hash(b"Jefe").apply("what do ya want for nothing?", None),
            "tg_5bdcc146bf60754e"
        );
    }

    #[test]
    fn hash_without_key_redacts() {
        let style = Style::Hash {
            key: HashKey::unset(),
        };
        assert_eq!(style.apply("secret", Some("card")), "[REDACTED:card]");
        assert_eq!(style.apply("secret", None), "[REDACTED]");
    }

    #[test]
    fn empty_key_is_refused() {
        assert!(matches!(HashKey::new(b""), Err(MaskingError::EmptyHashKey)));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = b"super-secret-key-material";
        let style = hash(key);
        for text in [format!("{style:?}"), format!("{style:#?}")] {
            assert!(text.contains("<redacted>"), "{text}");
            assert!(!text.contains("super-secret"), "{text}");
            assert!(!text.contains("115, 117, 112"), "{text}"); // "sup" as bytes
        }
        assert_eq!(format!("{:?}", HashKey::unset()), "<unset>");
    }

    #[test]
    fn serde_names() {
        #[derive(Deserialize)]
        struct Doc {
            style: Style,
        }
        for (name, want) in [("redact", "redact"), ("last4", "last4"), ("hash", "hash")] {
            let doc: Doc = toml::from_str(&format!("style = {name:?}")).unwrap();
            assert_eq!(doc.style.name(), want);
            if let Style::Hash { key } = &doc.style {
                assert!(!key.is_set(), "a key never comes from configuration");
            }
        }
        assert!(toml::from_str::<Doc>("style = \"mask\"").is_err());
        assert!(toml::from_str::<Doc>("style = { hash = { key = \"k\" } }").is_err());
        assert_eq!(serde_json::to_string(&hash(b"k")).unwrap(), "\"hash\"");
    }
}
