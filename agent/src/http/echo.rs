//! The target's credential as an upstream may echo it back in a response's headers: a redirect
//! that keeps the query (`Location: /dir/?api_key=…`, as Apache's `DirectorySlash` and Django's
//! `APPEND_SLASH` keep it), a pagination `Link`, a debugging header. The task must never hold
//! the credential, so every spelling of it is redacted from the response headers before they
//! reach it; so is a body tollgate buffers to mask ([`scrub_text`], from `response`). (A
//! `TRACE` answer, which echoes the request whole, is refused outright by the exchange; a body
//! that is not masked is not scanned, see the README.)
use base64::Engine as _;
use hyper::{HeaderMap, header::HeaderValue};
use memchr::memmem;

use crate::{masking::REDACTED, policy::HttpCredential};

/// Secrets shorter than this are not searched for: they would match innocent text, and a
/// credential that short guards nothing.
const MIN_SECRET: usize = 6;

/// The spellings of a credential an upstream may send back, computed once per session. `Debug`
/// prints how many there are, never them.
pub struct Spellings(Vec<Vec<u8>>);

impl Spellings {
    /// The spellings of `cred`: the secret as sent and percent-encoded (a query credential in
    /// a URL), and for Basic the base64 `user:password` and the password.
    pub fn of(cred: &HttpCredential) -> Self {
        Self(spellings(cred))
    }

    /// Whether there is nothing to search for (a secret shorter than [`MIN_SECRET`]).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Spellings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spellings(<{} redacted>)", self.0.len())
    }
}

fn spellings(cred: &HttpCredential) -> Vec<Vec<u8>> {
    let secret = match cred {
        HttpCredential::Bearer(s) => s.expose(),
        HttpCredential::Basic { password, .. } => password.expose(),
        HttpCredential::Header { value, .. } | HttpCredential::Query { value, .. } => {
            value.expose()
        }
    };
    let mut out = vec![secret.to_vec()];
    out.push(super::request::encode_component(secret).into_bytes());
    if let HttpCredential::Basic { user, password } = cred {
        let mut plain = user.as_bytes().to_vec();
        plain.push(b':');
        plain.extend_from_slice(password.expose());
        out.push(
            base64::engine::general_purpose::STANDARD
                .encode(&plain)
                .into_bytes(),
        );
    }
    out.retain(|s| s.len() >= MIN_SECRET);
    out.sort();
    out.dedup();
    // Longest first: a spelling inside another is redacted with it.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

/// `text` with every spelling redacted, and how many there were; `None` when there were none.
pub fn scrub_text(text: &str, spellings: &Spellings) -> Option<(String, u64)> {
    let mut out: Option<String> = None;
    let mut found = 0;
    for s in &spellings.0 {
        // Spellings are visible ASCII or percent- or base64-encoded: valid UTF-8.
        let Ok(s) = std::str::from_utf8(s) else {
            continue;
        };
        let current = out.as_deref().unwrap_or(text);
        let n = current.matches(s).count();
        if n > 0 {
            found += n as u64;
            out = Some(current.replace(s, REDACTED));
        }
    }
    out.map(|o| (o, found))
}

/// Redacts every spelling in `h`'s values; how many values changed.
pub fn scrub(h: &mut HeaderMap, spellings: &Spellings) -> usize {
    if spellings.is_empty() {
        return 0;
    }
    let mut changed = 0;
    for value in h.values_mut() {
        let mut bytes = value.as_bytes().to_vec();
        let mut hit = false;
        for s in &spellings.0 {
            // Searched on past each replacement: a secret inside `[REDACTED]` would otherwise
            // be found in it again, for ever.
            let mut from = 0;
            while let Some(at) = memmem::find(&bytes[from..], s) {
                let at = from + at;
                bytes.splice(at..at + s.len(), REDACTED.bytes());
                from = at + REDACTED.len();
                hit = true;
            }
        }
        if hit {
            let sensitive = value.is_sensitive();
            *value = HeaderValue::from_bytes(&bytes).unwrap_or(HeaderValue::from_static(REDACTED));
            value.set_sensitive(sensitive);
            changed += 1;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Secret;

    fn secret(s: &str) -> Secret {
        Secret::new(s.as_bytes().to_vec())
    }

    #[test]
    fn every_spelling_is_redacted() {
        let query = HttpCredential::Query {
            name: "api_key".into(),
            value: secret("k3y/with+odd&chars"),
        };
        let mut h = HeaderMap::new();
        h.insert(
            "location",
            HeaderValue::from_static(
                "https://api.example/dir/?x=1&api_key=k3y%2Fwith%2Bodd%26chars",
            ),
        );
        h.append(
            "link",
            HeaderValue::from_static("</p2?api_key=k3y/with+odd&chars>; rel=\"next\""),
        );
        h.insert("content-type", HeaderValue::from_static("text/html"));
        assert_eq!(scrub(&mut h, &Spellings::of(&query)), 2);
        assert_eq!(
            h["location"],
            format!("https://api.example/dir/?x=1&api_key={REDACTED}")
        );
        assert_eq!(h["link"], format!("</p2?api_key={REDACTED}>; rel=\"next\""));
        assert_eq!(h["content-type"], "text/html");

        let basic = HttpCredential::Basic {
            user: "svc".into(),
            password: secret("hunter2!!"),
        };
        let mut h = HeaderMap::new();
        // base64("svc:hunter2!!")
        h.insert(
            "x-echo",
            HeaderValue::from_static("Basic c3ZjOmh1bnRlcjIhIQ=="),
        );
        h.insert("x-pass", HeaderValue::from_static("pw=hunter2!!"));
        assert_eq!(scrub(&mut h, &Spellings::of(&basic)), 2);
        assert_eq!(h["x-echo"], format!("Basic {REDACTED}"));
        assert_eq!(h["x-pass"], format!("pw={REDACTED}"));
    }

    #[test]
    fn bodies_are_scrubbed_too() {
        let bearer = HttpCredential::Bearer(secret("tok-3f9a-long"));
        let body = "{\"headers\": {\"Authorization\": \"Bearer tok-3f9a-long\"}, \"n\": 1}";
        let (out, n) = scrub_text(body, &Spellings::of(&bearer)).unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            out,
            format!("{{\"headers\": {{\"Authorization\": \"Bearer {REDACTED}\"}}, \"n\": 1}}")
        );
        assert_eq!(scrub_text("nothing here", &Spellings::of(&bearer)), None);
    }

    #[test]
    fn a_secret_inside_the_mark_is_replaced_once() {
        let cred = HttpCredential::Bearer(secret("REDACTED"));
        let mut h = HeaderMap::new();
        h.insert("x", HeaderValue::from_static("a REDACTED b REDACTED"));
        assert_eq!(scrub(&mut h, &Spellings::of(&cred)), 1);
        assert_eq!(h["x"], format!("a {REDACTED} b {REDACTED}"));
    }

    #[test]
    fn debug_never_shows_a_spelling() {
        let bearer = HttpCredential::Bearer(secret("tok-3f9a-long"));
        let shown = format!("{:?}", Spellings::of(&bearer));
        assert!(!shown.contains("3f9a"), "{shown}");
    }

    #[test]
    fn short_secrets_are_not_searched() {
        let bearer = HttpCredential::Bearer(secret("abc"));
        assert!(Spellings::of(&bearer).is_empty());
        let mut h = HeaderMap::new();
        h.insert("x", HeaderValue::from_static("abc"));
        assert_eq!(scrub(&mut h, &Spellings::of(&bearer)), 0);
    }
}
