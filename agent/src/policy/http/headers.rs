//! Which request headers the audit keeps, and how (pure): the headers as the client sent them,
//! names lowercase, in order; a sensitive header's value replaced by [`REDACTED`]; every other
//! value masked by the target's detectors, cut past [`MAX_VALUE`] bytes; at most
//! [`MAX_HEADERS_BYTES`] bytes in all.
//!
//! A header is sensitive when the target names it (`redact_headers`), when it carries the
//! target's injected credential, or when its name holds a word credentials go by
//! ([`SENSITIVE_WORDS`]: `authorization`, `cookie`, `x-api-key`, `x-vault-token`,
//! `x-amz-security-token`, `x-hub-signature`, ...). A name that is none of these is kept, so
//! a secret under a name no one could guess must be listed in `redact_headers`.
use super::model::{HttpCredential, HttpTarget};
use crate::masking::MaskCounts;

/// The value recorded for a sensitive header.
pub const REDACTED: &str = "[redacted]";
/// Longest value recorded, bytes; a longer one is cut and marked.
pub const MAX_VALUE: usize = 512;
/// Most bytes of names and values recorded per request; the headers after are counted, not
/// kept.
pub const MAX_HEADERS_BYTES: usize = 8 * 1024;
/// Words in a header name that make it sensitive (ASCII, lowercase; matched anywhere in the
/// name, so `x-csrftoken` and `private-token` are sensitive too).
pub const SENSITIVE_WORDS: &[&str] = &[
    "auth",
    "token",
    "secret",
    "key",
    "cookie",
    "session",
    "pass",
    "signature",
    "credential",
    "csrf",
    "xsrf",
    "jwt",
    "dpop",
    "ticket",
];
/// The name of the last pair when headers were left out: its value says how many.
pub const LEFT_OUT: &str = "…";
pub(crate) const CUT: &str = "… [cut]";

/// The request headers the audit records for `target`; `None` when it records none
/// (`record_headers = false`).
pub fn recorded(
    headers: &[(String, String)],
    target: &HttpTarget,
) -> Option<Vec<(String, String)>> {
    if !target.record_headers {
        return None;
    }
    let credential = match &target.credential {
        Some(HttpCredential::Header { name, .. }) => Some(name.as_str()),
        _ => None,
    };
    let mut out = Vec::with_capacity(headers.len());
    let mut bytes = 0;
    for (i, (name, value)) in headers.iter().enumerate() {
        let value = if is_sensitive(name, &target.redact_headers, credential) {
            REDACTED.to_owned()
        } else {
            kept_value(value, target)
        };
        bytes += name.len() + value.len();
        if bytes > MAX_HEADERS_BYTES {
            let left = headers.len() - i;
            out.push((LEFT_OUT.to_owned(), format!("{left} more not recorded")));
            break;
        }
        out.push((name.clone(), value));
    }
    Some(out)
}

/// Whether the value of header `name` (lowercase) is never recorded.
pub fn is_sensitive(name: &str, listed: &[String], credential: Option<&str>) -> bool {
    credential == Some(name)
        || listed.iter().any(|l| l == name)
        || SENSITIVE_WORDS.iter().any(|w| name.contains(w))
}

/// `value` masked by the target's detectors, cut past [`MAX_VALUE`] bytes (on a character
/// boundary). Masked before it is cut, so a cut never splits what a detector would find.
fn kept_value(value: &str, target: &HttpTarget) -> String {
    let masked = target
        .masker
        .as_ref()
        .and_then(|m| m.mask_text(value, &mut MaskCounts::default()));
    let mut v = masked.unwrap_or_else(|| value.to_owned());
    if v.len() > MAX_VALUE {
        let mut end = MAX_VALUE;
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        v.truncate(end);
        v.push_str(CUT);
    }
    v
}
