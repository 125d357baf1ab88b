//! Request paths and hosts as policy sees them: one canonical form per resource, so that a rule
//! on `/v1/sys/**` cannot be walked around with `/v1/%73ys` or `/v1//sys`, and none of the forms
//! known to be routed otherwise by some upstream than policy reads them (`/v1/secret/../sys`,
//! `/v1/sys;x/seal`, `Host: admin.example:@api.example`). Pure functions.

/// The canonical form of a request path (the path component of the request target, without
/// `?query`), or `None` when it is malformed or ambiguous (deny it):
///
/// - percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded (`%2e` is `.`,
///   `%73` is `s`); other escapes are kept, with uppercase hex digits;
/// - empty segments are dropped (`//` is `/`); a trailing `/` is kept;
/// - `None` for: a path not starting with `/`; a `.` or `..` segment, raw or encoded (`%2e`):
///   the request is forwarded as sent, and an upstream that routes before it resolves them
///   (Express, a servlet filter, a proxy passing the raw URI) would act on `/admin/../public`
///   as `/admin` while policy read `/public`; a `;` (`/sys;x/seal` is `/sys/seal` to servlet
///   containers); an encoded `/` (`%2F`) or `\` (`%5C`), which servers disagree about; a raw
///   `\`, `?`, `#` or control character, or an encoded NUL; a `%` not followed by two hex
///   digits.
///
/// The result is itself canonical: `normalize_path(normalize_path(p)) == normalize_path(p)`.
pub fn normalize_path(raw: &str) -> Option<String> {
    if !raw.starts_with('/') {
        return None;
    }
    let decoded = decode_unreserved(raw)?;
    let mut segments: Vec<&str> = Vec::new();
    if decoded.contains(';') {
        return None;
    }
    // Whether the path ends with a `/`.
    let mut trailing = false;
    for segment in decoded.split('/').skip(1) {
        trailing = true;
        match segment {
            "" => {}
            "." | ".." => return None,
            s => {
                segments.push(s);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// Decodes the escapes of unreserved characters, uppercases the others; `None` for what
/// [`normalize_path`] refuses at the character level.
fn decode_unreserved(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            let v = hi << 4 | lo;
            if is_unreserved(v) {
                out.push(char::from(v));
            } else if matches!(v, b'/' | b'\\' | 0) {
                return None;
            } else {
                out.push('%');
                out.push(char::from(HEX_UPPER[usize::from(hi)]));
                out.push(char::from(HEX_UPPER[usize::from(lo)]));
            }
            i += 3;
            continue;
        }
        if b.is_ascii_control() || matches!(b, b'\\' | b'?' | b'#') {
            return None;
        }
        // Copy a run of plain characters at once (keeps multi-byte UTF-8 whole).
        let end = bytes[i..]
            .iter()
            .position(|&c| c == b'%' || c.is_ascii_control() || matches!(c, b'\\' | b'?' | b'#'))
            .map_or(bytes.len(), |n| i + n);
        out.push_str(raw.get(i..end)?);
        i = end;
    }
    Some(out)
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 unreserved: `ALPHA / DIGIT / "-" / "." / "_" / "~"`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Whether `raw` (a `Host` header or `:authority`) is a plain `host[:port]` that every server
/// reads alike: a name of ASCII letters, digits, `-`, `.` and `_`, or an IPv4 address, or an
/// IPv6 literal in brackets; then at most one `:` and a port of digits. No `user@`, no second
/// colon, no escapes, no non-ASCII (a name in another form is refused, not guessed at: nginx
/// reads `admin.example:@api.example` as `admin.example`, a reading of the last `@` as
/// `api.example`). Empty (no host) is plain.
pub fn is_plain_host(raw: &str) -> bool {
    // The host, and what follows it: nothing, or `:port`.
    let (host_ok, rest) = match raw.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((v6, rest)) => (
                !v6.is_empty()
                    && v6
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
                rest,
            ),
            None => return false,
        },
        None => {
            let (host, rest) = raw.split_at(raw.find(':').unwrap_or(raw.len()));
            let name = host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            (name && (rest.is_empty() || !host.is_empty()), rest)
        }
    };
    let port_ok = rest.is_empty()
        || rest
            .strip_prefix(':')
            .is_some_and(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// The host of a `Host` header or `:authority` as host rules see it: without the port (and
/// without the brackets of an IPv6 literal), without a trailing dot, lowercase; without any
/// `user@` part.
pub fn normalize_host(raw: &str) -> String {
    let host = raw.rsplit_once('@').map_or(raw, |(_, h)| h).trim();
    let host = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        match host.rsplit_once(':') {
            // A single colon: host:port. Several (a bare IPv6 address): leave it.
            Some((h, _)) if !h.contains(':') => h,
            _ => host,
        }
    };
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// `a=1&b=x+y&c` → `[("a","1"), ("b","x y"), ("c","")]`, percent-decoded.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_query_component(k), decode_query_component(v))
        })
        .collect()
}

/// Percent-decodes a query component (`+` is a space); invalid escapes are kept as they are,
/// bytes that are not UTF-8 replaced.
pub fn decode_query_component(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_hosts() {
        for h in [
            "",
            "api.example",
            "api.example:8443",
            "API.Example.",
            "10.0.0.1:80",
            "[::1]",
            "[fd00::1]:8080",
            "my_host",
        ] {
            assert!(is_plain_host(h), "{h}");
        }
        // Found in review: nginx reads the first of these as admin.example.
        for h in [
            "admin.example:@api.example",
            "user@api.example",
            "admin.example:1:2",
            "::1",
            "api.example:",
            ":80",
            "api.example:8o",
            "caf\u{e9}.example",
            "api%2eexample",
            "[::1]x",
            "[zz]",
            "api.example ",
        ] {
            assert!(!is_plain_host(h), "{h}");
        }
    }

    #[test]
    fn paths() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/", Some("/")),
            ("/v1/secret/data/etl/db", Some("/v1/secret/data/etl/db")),
            ("/v1/secret/", Some("/v1/secret/")),
            // Dot segments.
            ("/v1/secret/../sys", None),
            ("/v1/secret/data/etl/../../../sys/seal", None),
            ("/v1/./sys", None),
            ("/v1/sys/.", None),
            ("/v1/sys/..", None),
            ("/a/b/../..", None),
            ("/..", None),
            ("/../etc/passwd", None),
            ("/a/../../b", None),
            ("/a/%2e%2e/%2E%2E/b", None),
            ("/v1/secret/%2e%2e/sys", None),
            ("/v1/secret/.%2e/sys", None),
            ("/v1/%2e/sys", None),
            // `...` and names starting with dots are plain names.
            ("/a/.../b", Some("/a/.../b")),
            ("/a/..b/.c", Some("/a/..b/.c")),
            // Empty segments.
            ("//v1//sys///x", Some("/v1/sys/x")),
            ("//", Some("/")),
            ("/v1/sys//", Some("/v1/sys/")),
            // Unreserved escapes decoded; others kept, uppercased.
            ("/v1/%73ys/x", Some("/v1/sys/x")),
            ("/a%2Db%5fc%7E", Some("/a-b_c~")),
            ("/a%20b", Some("/a%20b")),
            ("/a%3bb%3F", Some("/a%3Bb%3F")),
            // Found in review: `//..` (dropped, then resolved) and path parameters.
            ("/v1/sys//../seal", None),
            ("/v1/sys;x/seal", None),
            ("/%25", Some("/%25")),
            // Double encoding is decoded once only.
            ("/%252e%252e/x", Some("/%252e%252e/x")),
            // Encoded separators, NUL, backslashes and bad escapes.
            ("/v1/secret%2F..%2Fsys", None),
            ("/a%2fb", None),
            ("/a%5Cb", None),
            ("/a\\..\\b", None),
            ("/a%00", None),
            ("/a%", None),
            ("/a%2", None),
            ("/a%zz", None),
            ("/a%%30", None),
            // Not a path, query or fragment left in, control characters.
            ("", None),
            ("v1/sys", None),
            ("*", None),
            ("http://h/x", None),
            ("/a?b=c", None),
            ("/a#f", None),
            ("/a\tb", None),
            ("/a\nb", None),
            // Servlet path parameters on dot segments.
            ("/v1/secret/..;/sys", None),
            ("/v1/.;x/sys", None),
            ("/v1/a;b/c", None),
            // Non-ASCII passes as it is.
            ("/caf\u{e9}/x", Some("/caf\u{e9}/x")),
        ];
        for (raw, want) in cases {
            let got = normalize_path(raw);
            assert_eq!(got.as_deref(), *want, "{raw:?}");
            if let Some(p) = got {
                assert_eq!(
                    normalize_path(&p).as_deref(),
                    Some(p.as_str()),
                    "idempotent"
                );
            }
        }
    }

    #[test]
    fn hosts() {
        let cases = [
            ("vault.internal", "vault.internal"),
            ("Vault.Internal:8200", "vault.internal"),
            ("vault.internal.", "vault.internal"),
            ("vault.internal.:443", "vault.internal"),
            ("127.0.0.1:8200", "127.0.0.1"),
            ("[::1]:8200", "::1"),
            ("[FD00::1]", "fd00::1"),
            ("::1", "::1"),
            ("user:pw@host:80", "host"),
            ("", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_host(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn query_decoding() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("a", &[("a", "")]),
            ("a=&&b=1", &[("a", ""), ("b", "1")]),
            ("k=%41%zz%", &[("k", "A%zz%")]),
            ("e=%C3%A9", &[("e", "é")]),
            ("x=a=b", &[("x", "a=b")]),
        ];
        for (q, want) in cases {
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(parse_query(q), want, "{q}");
        }
    }
}
