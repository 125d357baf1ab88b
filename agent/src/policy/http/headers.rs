//! Which request headers the audit keeps, and how (pure): the headers as the client sent them,
//! names lowercase, in order; a sensitive header's value replaced by [`REDACTED`]; every other
//! value masked by the target's detectors, cut past [`MAX_VALUE`] bytes; at most
//! [`MAX_HEADERS_BYTES`] bytes in all.
//!
//! URLs in kept values (`Referer: https://app/cb?code=...`) lose what the request's own record
//! never keeps either: query and fragment values (names stay) and `user:password@`; so does a
//! `user:password@host` written without a scheme ([`without_bare_userinfo`]).
//!
//! A header is sensitive when the target names it (`redact_headers`), when it carries the
//! target's injected credential, when its name holds a word credentials go by
//! ([`SENSITIVE_WORDS`]: `authorization`, `cookie`, `x-api-key`, `x-vault-token`,
//! `x-amz-security-token`, `x-hub-signature`, ...) or is a known one without such a word
//! ([`SENSITIVE_NAMES`]), or when its value looks like a credential ([`holds_credential`]:
//! an authentication scheme, a known token prefix, a JWT, an AWS key id, a PEM private key).
//! A `Host` loses any `user:password@` ([`without_userinfo`]). Anything else is kept,
//! so a bare secret under a name no one could guess (`X-Pin: 1234`) must be listed in
//! `redact_headers`.
use super::model::{HttpCredential, HttpTarget};
use crate::masking::{MaskCounts, detect};

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
    "otp",
    "hmac",
    "-sign",
];
/// Names that carry a credential without a word of [`SENSITIVE_WORDS`] (Kubernetes sends a
/// bearer token in the WebSocket subprotocol; Docker registry logins, Artifactory, Honeycomb,
/// the AWS load balancer's OIDC JWT, OVH).
pub const SENSITIVE_NAMES: &[&str] = &[
    "sec-websocket-protocol",
    "x-registry-config",
    "x-jfrog-art-api",
    "x-honeycomb-team",
    "x-amzn-oidc-data",
    "x-amzn-oidc-accesstoken",
    "x-ovh-consumer",
    "x-ovh-application",
];
/// Names a word of [`SENSITIVE_WORDS`] would catch that carry no secret (a nonce, a client's
/// retry key): kept, for the evidence they are.
pub const NOT_SENSITIVE: &[&str] = &[
    "idempotency-key",
    "sec-websocket-key",
    "sec-websocket-accept",
];
/// Authentication schemes (lowercase): a value that starts with one, then a space, is a
/// credential whatever the header's name.
const AUTH_SCHEMES: &[&str] = &[
    "basic",
    "bearer",
    "digest",
    "negotiate",
    "ntlm",
    "token",
    "dpop",
    "hoba",
    "mutual",
    "hawk",
    "oauth",
    "gnap",
    "vapid",
    "privatetoken",
    "aws4-hmac-sha256",
    "scram-sha-1",
    "scram-sha-256",
    "apikey",
    "sharedkey",
    "sharedaccesssignature",
    "ssws",
    "splunk",
    "bot",
    "aws",
    "goog4-hmac-sha256",
    "aws4-ecdsa-p256-sha256",
];
/// Prefixes that mark a token whatever the header (GitHub, GitLab, Slack, Stripe, Google API
/// keys, Vault).
const TOKEN_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xapp-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "AIza",
    "hvs.",
    "hvb.",
];
/// The name of the last pair when headers were left out: its value says how many.
pub const LEFT_OUT: &str = "…";
/// Appended to a value that was cut.
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
        let value = if is_sensitive(name, &target.redact_headers, credential)
            || holds_credential(name, value)
        {
            REDACTED.to_owned()
        } else if name == "host" {
            kept_value(&without_userinfo(value), target)
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
        || SENSITIVE_NAMES.contains(&name)
        || (SENSITIVE_WORDS.iter().any(|w| name.contains(w)) && !NOT_SENSITIVE.contains(&name))
}

/// Whether `value` is a credential by its look, whatever its header: it starts with an
/// authentication scheme and a space (`Basic dXNlcjpw`; not in `User-Agent`), holds a token
/// with a known prefix ([`TOKEN_PREFIXES`]), or a JWT, an AWS access key id or a PEM private
/// key (the masking detectors, run whether or not the target masks).
pub fn holds_credential(name: &str, value: &str) -> bool {
    let v = value.trim_start();
    let scheme = v
        .split_once(|c: char| c.is_ascii_whitespace())
        .map_or("", |(s, _)| s);
    // A user agent names products (`OAuth gem v0.5.8`), not schemes.
    (name != "user-agent" && AUTH_SCHEMES.iter().any(|s| scheme.eq_ignore_ascii_case(s)))
        || TOKEN_PREFIXES.iter().any(|p| v.contains(p))
        || !detect::jwt::find(v).is_empty()
        || !detect::aws_access_key::find(v).is_empty()
        || !detect::pem_private_key::find(v).is_empty()
}

/// `value` masked by the target's detectors, cut past [`MAX_VALUE`] bytes (on a character
/// boundary). Masked before it is cut, so a cut never splits what a detector would find.
fn kept_value(value: &str, target: &HttpTarget) -> String {
    // Work on no more than is kept (with room for what masking and the URL pass change).
    let mut head = value.len().min(4 * MAX_VALUE);
    while !value.is_char_boundary(head) {
        head -= 1;
    }
    let cut_early = head < value.len();
    if cut_early {
        // A later word cut short may be a secret the passes below no longer recognize (its
        // `@` cut off), brought within the kept bytes by what they remove before it: drop it.
        if let Some(space) = value[..head].rfind(char::is_whitespace) {
            head = space;
        }
    }
    // Bare userinfo first: the URL pass would take `admin:p?ss=1@proxy` for a query.
    let value = without_bare_userinfo(&value[..head]);
    let value = match without_url_secrets(&value) {
        std::borrow::Cow::Owned(v) => std::borrow::Cow::Owned(v),
        std::borrow::Cow::Borrowed(_) => value,
    };
    let masked = target
        .masker
        .as_ref()
        .and_then(|m| m.mask_text(&value, &mut MaskCounts::default()));
    let mut v = masked.unwrap_or_else(|| value.into_owned());
    if v.len() > MAX_VALUE || cut_early {
        let mut end = MAX_VALUE.min(v.len());
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        v.truncate(end);
        v.push_str(CUT);
    }
    v
}

/// `host` (a `Host` or authority as sent) without what comes before its last `@`: a client
/// may put `user:password@` there, and no host holds an `@`.
pub fn without_userinfo(host: &str) -> std::borrow::Cow<'_, str> {
    match host.rfind('@') {
        Some(at) => format!("{REDACTED}{}", &host[at..]).into(),
        None => host.into(),
    }
}

/// `value` with every query and fragment reduced to its parameter names (`?code=x&state=y` →
/// `?code&state`, `#access_token=t` → `#access_token`) and every URL's `user:password@` (after
/// `//`, up to the last `@` before the path) to `[redacted]@`. A query or fragment runs to a
/// space, `<`, `>` or `"` (commas and quotes are common inside values, so they do not end it);
/// its parameters are split at `&` and `;`.
fn without_url_secrets(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['?', '#', '@']) {
        return value.into();
    }
    let url_end = |c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"');
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(c) = rest.chars().next() {
        if c == '?' || c == '#' {
            let after = &rest[1..];
            let end = after
                .find(|c: char| url_end(c) || (c == '#'))
                .unwrap_or(after.len());
            let names: Vec<&str> = after[..end]
                .split(['&', ';'])
                .map(|p| p.split_once('=').map_or(p, |(name, _)| name))
                .collect();
            out.push(c);
            out.push_str(&names.join("&"));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("//") {
            out.push_str("//");
            let token = after.find(url_end).unwrap_or(after.len());
            let path = after[..token].find('/').unwrap_or(token);
            match after[..path].rfind('@') {
                Some(at) => {
                    out.push_str(REDACTED);
                    rest = &after[at..];
                }
                None => rest = after,
            }
        } else {
            let next = rest[c.len_utf8()..]
                .find(['?', '#', '/'])
                .map_or(rest.len(), |i| i + c.len_utf8());
            out.push_str(&rest[..next]);
            rest = &rest[next..];
        }
    }
    out.into()
}

/// `value` with the `user:password` of every `user:password@host` written without a scheme
/// (`X-Proxy: admin:s3cret@proxy:3128`) reduced to `[redacted]`: in a word (words end at
/// whitespace, `<` and `>`) that is not a URL (`scheme://`, `//`; the URL pass has its
/// userinfo), everything before the last `@` is dropped when a `:` comes before that `@`,
/// with no `/` before the `:` (a path) and no digest after the `@` (`name:tag@sha256:...`).
/// An e-mail address holds no `:` and stays; `mailto:a@b` loses its address part (a colon
/// cannot tell it from a password).
fn without_bare_userinfo(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains('@') {
        return value.into();
    }
    let ends = |c: char| c.is_whitespace() || matches!(c, '<' | '>');
    let mut out = String::with_capacity(value.len());
    let mut changed = false;
    let mut rest = value;
    while !rest.is_empty() {
        let word_end = rest.find(ends).unwrap_or(rest.len());
        let word = &rest[..word_end];
        match bare_userinfo_end(word) {
            Some(at) => {
                out.push_str(REDACTED);
                out.push_str(&word[at..]);
                changed = true;
            }
            None => out.push_str(word),
        }
        rest = &rest[word_end..];
        let sep = rest.find(|c: char| !ends(c)).unwrap_or(rest.len());
        out.push_str(&rest[..sep]);
        rest = &rest[sep..];
    }
    if changed { out.into() } else { value.into() }
}

/// Where the `user:password` of a bare `user:password@host` word ends (at its last `@`).
fn bare_userinfo_end(word: &str) -> Option<usize> {
    let colon = word.find(':')?;
    let at = word.rfind('@')?;
    let url = word.starts_with("//")
        || word.find("://").is_some_and(|i| {
            i > 0
                && word[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        });
    let digest = ["sha256:", "sha384:", "sha512:"]
        .iter()
        .any(|d| word[at + 1..].starts_with(d));
    (colon < at && !url && !word[..colon].contains('/') && !digest).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::{without_bare_userinfo, without_url_secrets, without_userinfo};

    #[test]
    fn bare_userinfo_loses_its_password() {
        for (value, want) in [
            (
                "admin:s3cret@proxy.internal:3128",
                "[redacted]@proxy.internal:3128",
            ),
            ("via a:b@h, c:d@k", "via [redacted]@h, [redacted]@k"),
            ("url=u:p@db:5432/orders", "[redacted]@db:5432/orders"),
            ("<u:p@h>", "<[redacted]@h>"),
            ("mailto:a@b.example", "[redacted]@b.example"),
            // What a password may hold: `/`, `?`, `#`, `,`, `@`, `"`, and a path after.
            ("admin:pa/ss@proxy:3128", "[redacted]@proxy:3128"),
            ("admin:p#ss@proxy", "[redacted]@proxy"),
            ("admin:pa,ss@proxy", "[redacted]@proxy"),
            ("a:b@c@proxy", "[redacted]@proxy"),
            ("\"u:p\"@h", "[redacted]@h"),
            (
                "admin:s3cret@proxy:3128/api//v1",
                "[redacted]@proxy:3128/api//v1",
            ),
            // An e-mail address, a URL (handled by the URL pass), a path, a digest, no `@`.
            ("user@example.org", "user@example.org"),
            ("https://[redacted]@h/x", "https://[redacted]@h/x"),
            ("//h/x@y:z", "//h/x@y:z"),
            ("/a:b/c@d", "/a:b/c@d"),
            ("nginx:1.25@sha256:0a1b", "nginx:1.25@sha256:0a1b"),
            ("h:8080", "h:8080"),
            ("ünï:pä@h ok", "[redacted]@h ok"),
        ] {
            assert_eq!(without_bare_userinfo(value), want, "{value}");
        }
    }

    #[test]
    fn urls_keep_query_names_and_lose_values_and_userinfo() {
        for (value, want) in [
            (
                "https://app.example/cb?code=abc&state=xyz#frag",
                "https://app.example/cb?code&state#frag",
            ),
            ("/p?token=t;x=1", "/p?token&x"),
            (
                "https://u:p@h.example/x?a",
                "https://[redacted]@h.example/x?a",
            ),
            ("https://h.example:8443/a:b", "https://h.example:8443/a:b"),
            ("<https://h/?k=v>; rel=next", "<https://h/?k>; rel=next"),
            ("a?b=1 c?d=2", "a?b c?d"),
            ("no url here", "no url here"),
            ("ünï?cödé=é", "ünï?cödé"),
            ("user@example.org", "user@example.org"),
            // Commas and quotes inside values do not end the query.
            (
                "https://g.example/me?fields=id,name&access_token=EAAB",
                "https://g.example/me?fields&access_token",
            ),
            ("/s?q=it's&code=SECRET", "/s?q&code"),
            // Userinfo with what a password may hold, scheme-relative, before a `?`.
            ("https://u:p,ss@h/x", "https://[redacted]@h/x"),
            ("https://u:pa?ss@h/x?k=v", "https://[redacted]@h/x?k"),
            ("//u:pass@h/x", "//[redacted]@h/x"),
            ("https://h/x?email=a@b.example", "https://h/x?email"),
            ("http://[::1]:8080/x?a=1", "http://[::1]:8080/x?a"),
            // A fragment's parameters, as an OAuth implicit flow sends a token.
            (
                "https://app/#access_token=T&state=s",
                "https://app/#access_token&state",
            ),
        ] {
            assert_eq!(without_url_secrets(value), want, "{value}");
        }
    }

    #[test]
    fn a_host_loses_its_userinfo() {
        for (host, want) in [
            ("u:p@h.example", "[redacted]@h.example"),
            ("a@b@h:80", "[redacted]@h:80"),
            ("h.example:8080", "h.example:8080"),
        ] {
            assert_eq!(without_userinfo(host), want, "{host}");
        }
    }
}
