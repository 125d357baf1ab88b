//! SPIFFE IDs (`spiffe://trust-domain/path`), parsed per the SPIFFE ID specification
//! (SPIFFE-ID.md, section 2): lowercase trust domain of `[a-z0-9._-]`, no port, user info, query
//! or fragment; path segments non-empty, of `[A-Za-z0-9._-]`, never `.` or `..`; 2048 bytes at
//! most.
use std::{fmt, str::FromStr};

use serde::{Serialize, Serializer};

/// Longest SPIFFE ID accepted, in bytes.
pub const MAX_LEN: usize = 2048;
/// Longest trust domain name accepted, in bytes.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;
const SCHEME: &str = "spiffe://";

/// Why a string is not a SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    /// The string is empty.
    #[error("SPIFFE ID is empty")]
    Empty,
    /// Longer than [`MAX_LEN`].
    #[error("SPIFFE ID is {0} bytes long, at most {MAX_LEN} are allowed")]
    TooLong(usize),
    /// Does not start with `spiffe://`.
    #[error("SPIFFE ID must start with \"spiffe://\"")]
    Scheme,
    /// Nothing between `spiffe://` and the path.
    #[error("SPIFFE ID has no trust domain")]
    MissingTrustDomain,
    /// Trust domain longer than [`MAX_TRUST_DOMAIN_LEN`].
    #[error("trust domain is {0} bytes long, at most {MAX_TRUST_DOMAIN_LEN} are allowed")]
    TrustDomainTooLong(usize),
    /// `host:port` in the authority.
    #[error("SPIFFE ID must not contain a port")]
    Port,
    /// `user@host` in the authority.
    #[error("SPIFFE ID must not contain user info")]
    UserInfo,
    /// `?…` anywhere.
    #[error("SPIFFE ID must not contain a query")]
    Query,
    /// `#…` anywhere.
    #[error("SPIFFE ID must not contain a fragment")]
    Fragment,
    /// A character outside `[a-z0-9._-]` in the trust domain.
    #[error(
        "trust domain character {0:?} is not allowed (lowercase letters, digits, '.', '-', '_')"
    )]
    TrustDomainChar(char),
    /// `//` in the path, or a trailing `/`.
    #[error("SPIFFE ID path must not contain empty segments or end with '/'")]
    EmptySegment,
    /// `.` or `..` segment.
    #[error("SPIFFE ID path must not contain \".\" or \"..\" segments")]
    DotSegment,
    /// A character outside `[A-Za-z0-9._-]` in a path segment.
    #[error("path character {0:?} is not allowed (letters, digits, '.', '-', '_')")]
    PathChar(char),
}

/// A valid SPIFFE ID. Compares byte-wise (the spec makes the ID canonical: lowercase trust domain,
/// case-sensitive path).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    /// The whole ID, `spiffe://td/path`.
    id: String,
    /// Byte offset where the path starts (end of the trust domain).
    path_at: usize,
}

impl SpiffeId {
    /// Parses `s`; see the module doc for the rules.
    pub fn parse(s: &str) -> Result<Self, SpiffeIdError> {
        if s.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if s.len() > MAX_LEN {
            return Err(SpiffeIdError::TooLong(s.len()));
        }
        // Reported before character errors: they are the usual mistake, and clearer.
        if s.contains('?') {
            return Err(SpiffeIdError::Query);
        }
        if s.contains('#') {
            return Err(SpiffeIdError::Fragment);
        }
        let rest = s.strip_prefix(SCHEME).ok_or(SpiffeIdError::Scheme)?;
        let td_len = rest.find('/').unwrap_or(rest.len());
        let (td, path) = rest.split_at(td_len);
        check_trust_domain(td)?;
        check_path(path)?;
        Ok(Self {
            id: s.to_owned(),
            path_at: SCHEME.len() + td_len,
        })
    }

    /// The trust domain, e.g. `example.org`.
    pub fn trust_domain(&self) -> &str {
        &self.id[SCHEME.len()..self.path_at]
    }

    /// The path, empty or starting with `/`, e.g. `/etl/nightly`.
    pub fn path(&self) -> &str {
        &self.id[self.path_at..]
    }

    /// The whole ID as a string.
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

fn check_trust_domain(td: &str) -> Result<(), SpiffeIdError> {
    if td.is_empty() {
        return Err(SpiffeIdError::MissingTrustDomain);
    }
    if td.contains('@') {
        return Err(SpiffeIdError::UserInfo);
    }
    if td.contains(':') {
        return Err(SpiffeIdError::Port);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong(td.len()));
    }
    match td
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_'))
    {
        Some(c) => Err(SpiffeIdError::TrustDomainChar(c)),
        None => Ok(()),
    }
}

fn check_path(path: &str) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    // `path` starts with '/', so the first split item is the empty string before it.
    for segment in path.split('/').skip(1) {
        match segment {
            "" => return Err(SpiffeIdError::EmptySegment),
            "." | ".." => return Err(SpiffeIdError::DotSegment),
            _ => {}
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(SpiffeIdError::PathChar(c));
        }
    }
    Ok(())
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl Serialize for SpiffeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids() {
        let cases = [
            (
                "spiffe://example.org/etl/nightly",
                "example.org",
                "/etl/nightly",
            ),
            ("spiffe://example.org", "example.org", ""),
            ("spiffe://a-b_c.9/x", "a-b_c.9", "/x"),
            ("spiffe://td/A.b-C_d/..x/.y", "td", "/A.b-C_d/..x/.y"),
            ("spiffe://td/...", "td", "/..."),
        ];
        for (s, td, path) in cases {
            let id = SpiffeId::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(id.trust_domain(), td, "{s}");
            assert_eq!(id.path(), path, "{s}");
            assert_eq!(id.to_string(), s);
            assert_eq!(s.parse::<SpiffeId>().as_ref(), Ok(&id));
        }
    }

    #[test]
    fn invalid_ids() {
        use SpiffeIdError::*;
        let long = format!("spiffe://td/{}", "a".repeat(MAX_LEN));
        let long_td = format!("spiffe://{}/x", "a".repeat(256));
        let cases: &[(&str, SpiffeIdError)] = &[
            ("", Empty),
            (&long, TooLong(long.len())),
            (&long_td, TrustDomainTooLong(256)),
            ("http://example.org/x", Scheme),
            ("SPIFFE://example.org/x", Scheme),
            ("spiffe:/example.org/x", Scheme),
            ("example.org/x", Scheme),
            ("spiffe://", MissingTrustDomain),
            ("spiffe:///x", MissingTrustDomain),
            ("spiffe://example.org:8443/x", Port),
            ("spiffe://user@example.org/x", UserInfo),
            ("spiffe://user:pw@example.org/x", UserInfo),
            ("spiffe://example.org/x?y=1", Query),
            ("spiffe://example.org/x#frag", Fragment),
            ("spiffe://Example.org/x", TrustDomainChar('E')),
            ("spiffe://exa mple.org/x", TrustDomainChar(' ')),
            ("spiffe://example.org/", EmptySegment),
            ("spiffe://example.org//x", EmptySegment),
            ("spiffe://example.org/x/", EmptySegment),
            ("spiffe://example.org/./x", DotSegment),
            ("spiffe://example.org/x/..", DotSegment),
            ("spiffe://example.org/x%20y", PathChar('%')),
            ("spiffe://example.org/x y", PathChar(' ')),
            ("spiffe://example.org/é", PathChar('é')),
        ];
        for (s, want) in cases {
            assert_eq!(SpiffeId::parse(s).as_ref(), Err(want), "{s:?}");
        }
    }

    #[test]
    fn max_length_is_inclusive() {
        let prefix = "spiffe://td/";
        let ok = format!("{prefix}{}", "a".repeat(MAX_LEN - prefix.len()));
        assert!(SpiffeId::parse(&ok).is_ok());
    }
}
