//! The other readings of a request: headers and a query parameter that some upstream frameworks
//! take as the request's method, path or host instead of the request line's and `Host`'s.
//!
//! Express's `method-override`, ASP.NET, Google's APIs and Laravel read the method from
//! `X-HTTP-Method-Override` (or `X-HTTP-Method`, `X-Method-Override`, a `_method` parameter);
//! IIS, Symfony and Zend route by `X-Original-URL` or `X-Rewrite-URL`; frameworks behind a proxy
//! build their routes and absolute links from `X-Forwarded-Host`, `X-Host` or `Forwarded: host=`.
//! A rule that allows `GET /public/**` must not let `GET /public/x` with
//! `X-HTTP-Method-Override: DELETE` or `X-Original-URL: /admin` through to such an upstream, so
//! the decision takes every reading (see [`Policy::evaluate_request`](crate::policy::Policy)):
//! a request is allowed only if each is. A form body's `_method` is not read (bodies are not
//! part of the decision).
use std::borrow::Cow;

use super::{
    model::RequestFacts,
    path::{is_plain_host, normalize_host, normalize_path, parse_query},
};

/// Headers some frameworks take as the method.
const METHOD_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];
/// The query parameter some frameworks take as the method.
const METHOD_PARAM: &str = "_method";
/// Headers some frameworks take as the path and query.
const PATH_HEADERS: [&str; 2] = ["x-original-url", "x-rewrite-url"];
/// Headers some frameworks take as the host (a comma-separated list: each element counts).
const HOST_HEADERS: [&str; 2] = ["x-forwarded-host", "x-host"];
/// RFC 7239: its `host=` parameters count as hosts.
const FORWARDED: &str = "forwarded";

/// Most readings of one request: a request whose headers make more is refused
/// ([`Unread::TooMany`]), not evaluated reading by reading.
pub const MAX_READINGS: usize = 16;

/// One way an upstream may read a request, normalized as rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading<'a> {
    /// The method.
    pub method: &'a str,
    /// The host, normalized ([`normalize_host`]).
    pub host: String,
    /// The path, normalized ([`normalize_path`]).
    pub path: String,
    /// The query parameters.
    pub query: Cow<'a, [(String, String)]>,
}

impl Reading<'_> {
    /// The facts rules match this reading on.
    pub fn facts<'r>(&'r self, wire: &RequestFacts<'r>) -> RequestFacts<'r> {
        RequestFacts {
            method: self.method,
            host: &self.host,
            path: &self.path,
            query: &self.query,
            headers: wire.headers,
        }
    }
}

/// Why a request has no readings to decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unread {
    /// A path (the request's or one a header gives) cannot be normalized.
    Path,
    /// A host (the request's or one a header gives) is not plain ([`is_plain_host`]).
    Host,
    /// More than [`MAX_READINGS`] readings.
    TooMany,
}

/// Every reading of `facts` (see the module's documentation): the request as sent first, then
/// each combination of the methods, hosts and paths the headers and `_method` give. Values
/// that repeat a reading's add none.
pub fn readings<'a>(facts: &RequestFacts<'a>) -> Result<Vec<Reading<'a>>, Unread> {
    let mut methods = vec![facts.method];
    let header_values = |names: &'static [&'static str]| {
        facts
            .headers
            .iter()
            .filter(move |(k, _)| names.iter().any(|n| same_header_name(k, n)))
            .map(|(_, v)| v.as_str())
    };
    let params = facts
        .query
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(METHOD_PARAM))
        .map(|(_, v)| v.as_str());
    for m in header_values(&METHOD_HEADERS).chain(params) {
        let m = m.trim();
        if !m.is_empty() && !methods.iter().any(|have| have.eq_ignore_ascii_case(m)) {
            methods.push(m);
        }
    }

    let mut hosts = vec![plain_host(facts.host)?];
    let forwarded = header_values(&[FORWARDED]).flat_map(forwarded_hosts);
    for h in header_values(&HOST_HEADERS)
        .flat_map(|v| v.split(','))
        .chain(forwarded)
    {
        let h = h.trim();
        if h.is_empty() {
            continue;
        }
        let h = plain_host(h)?;
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }

    let mut paths = vec![(
        normalize_path(facts.path).ok_or(Unread::Path)?,
        Cow::Borrowed(facts.query),
    )];
    for v in header_values(&PATH_HEADERS) {
        let v = v.trim();
        // A path, not a URL: a value a framework could read another way is not guessed at.
        if !v.starts_with('/') || v.starts_with("//") {
            return Err(Unread::Path);
        }
        let (path, query) = v.split_once('?').unwrap_or((v, ""));
        let path = normalize_path(path).ok_or(Unread::Path)?;
        let query = parse_query(query);
        if !paths.iter().any(|(p, q)| *p == path && **q == *query) {
            paths.push((path, Cow::Owned(query)));
        }
    }

    if methods.len() * hosts.len() * paths.len() > MAX_READINGS {
        return Err(Unread::TooMany);
    }
    let mut out = Vec::with_capacity(methods.len() * hosts.len() * paths.len());
    for (path, query) in &paths {
        for host in &hosts {
            for method in &methods {
                out.push(Reading {
                    method,
                    host: host.clone(),
                    path: path.clone(),
                    query: query.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// Whether any header or parameter of `facts` could give another reading (the common case, a
/// request with none, skips [`readings`]'s work).
pub fn has_other_readings(facts: &RequestFacts<'_>) -> bool {
    let header = facts.headers.iter().any(|(k, _)| {
        METHOD_HEADERS
            .iter()
            .chain(&PATH_HEADERS)
            .chain(&HOST_HEADERS)
            .chain(&[FORWARDED])
            .any(|n| same_header_name(k, n))
    });
    header
        || facts
            .query
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(METHOD_PARAM))
}

/// Whether header names `a` and `b` are one name as a framework reads them: case aside, and
/// with `_` for `-`, since CGI-style servers (Rack, WSGI) turn both into `_`
/// (`X_HTTP_Method_Override` reaches a Rails app as `HTTP_X_HTTP_METHOD_OVERRIDE`).
pub fn same_header_name(a: &str, b: &str) -> bool {
    let fold = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

fn plain_host(raw: &str) -> Result<String, Unread> {
    if is_plain_host(raw) {
        Ok(normalize_host(raw))
    } else {
        Err(Unread::Host)
    }
}

/// The `host=` values of a `Forwarded` header (RFC 7239 §4: elements separated by `,`, pairs by
/// `;`, a value a token or a quoted string). A quoted value with a `\` or an unterminated
/// quote is given as is, which is not a plain host (refused rather than unescaped).
fn forwarded_hosts(value: &str) -> impl Iterator<Item = &str> {
    value
        .split([',', ';'])
        .filter_map(|pair| {
            let (name, v) = pair.split_once('=')?;
            name.trim().eq_ignore_ascii_case("host").then_some(v.trim())
        })
        .map(|v| {
            v.strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .filter(|q| !q.contains(['\\', '"']))
                .unwrap_or(v)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// (method, host, path) of each reading, or why there are none.
    fn read(
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Result<Vec<(String, String, String)>, Unread> {
        let query = owned(query);
        let headers = owned(headers);
        let facts = RequestFacts {
            method,
            host: "API.example:8080",
            path,
            query: &query,
            headers: &headers,
        };
        let got = readings(&facts)?;
        assert!(has_other_readings(&facts) || got.len() == 1, "{headers:?}");
        Ok(got
            .into_iter()
            .map(|r| (r.method.to_owned(), r.host, r.path))
            .collect())
    }

    /// Query, headers, and the readings wanted.
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        Result<Vec<(String, String, String)>, Unread>,
    );

    fn r(m: &str, h: &str, p: &str) -> (String, String, String) {
        (m.into(), h.into(), p.into())
    }

    #[test]
    fn readings_cases() {
        let wire = r("GET", "api.example", "/public/x");
        let cases: Vec<Case<'_>> = vec![
            (&[], &[("accept", "*/*")], Ok(vec![wire.clone()])),
            // The method headers, in any case; a repeat of the method adds nothing.
            (
                &[],
                &[("X-HTTP-Method-Override", " DELETE ")],
                Ok(vec![wire.clone(), r("DELETE", "api.example", "/public/x")]),
            ),
            (
                &[],
                &[("x-http-method", "get"), ("x-method-override", "")],
                Ok(vec![wire.clone()]),
            ),
            // `_` for `-`, as CGI-style servers read names; other names are not these.
            (
                &[],
                &[
                    ("X_HTTP_Method_Override", "DELETE"),
                    ("x-http-method-overrid", "PUT"),
                ],
                Ok(vec![wire.clone(), r("DELETE", "api.example", "/public/x")]),
            ),
            (
                &[("_method", "PUT")],
                &[],
                Ok(vec![wire.clone(), r("PUT", "api.example", "/public/x")]),
            ),
            // Paths: normalized as the request's own; a query comes with them.
            (
                &[],
                &[("x-original-url", "/%61dmin/y?force=1")],
                Ok(vec![wire.clone(), r("GET", "api.example", "/admin/y")]),
            ),
            (&[], &[("x-rewrite-url", "/a/../admin")], Err(Unread::Path)),
            (
                &[],
                &[("x-original-url", "http://h/admin")],
                Err(Unread::Path),
            ),
            (&[], &[("x-original-url", "//h/admin")], Err(Unread::Path)),
            // Hosts: each element of a list, `Forwarded`'s host= (quoted or not).
            (
                &[],
                &[("x-forwarded-host", "admin.example, API.example.")],
                Ok(vec![wire.clone(), r("GET", "admin.example", "/public/x")]),
            ),
            (
                &[],
                &[(
                    "forwarded",
                    "for=192.0.2.1;host=\"admin.example:80\", proto=https",
                )],
                Ok(vec![wire.clone(), r("GET", "admin.example", "/public/x")]),
            ),
            (
                &[],
                &[("forwarded", "host=\"adm\\in.example\"")],
                Err(Unread::Host),
            ),
            (
                &[],
                &[("x-host", "admin.example:@api.example")],
                Err(Unread::Host),
            ),
            // Every combination.
            (
                &[],
                &[
                    ("x-http-method-override", "DELETE"),
                    ("x-forwarded-host", "admin.example"),
                ],
                Ok(vec![
                    wire.clone(),
                    r("DELETE", "api.example", "/public/x"),
                    r("GET", "admin.example", "/public/x"),
                    r("DELETE", "admin.example", "/public/x"),
                ]),
            ),
        ];
        for (query, headers, want) in cases {
            assert_eq!(
                read("GET", "/public/x", query, headers),
                want,
                "{query:?} {headers:?}"
            );
        }
    }

    #[test]
    fn too_many_readings_are_refused() {
        let methods: Vec<(String, String)> = ["A", "B", "C", "D", "E"]
            .iter()
            .map(|m| ("x-http-method-override".to_owned(), (*m).to_owned()))
            .collect();
        let headers: Vec<(&str, &str)> = methods
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([("x-forwarded-host", "a.example, b.example")])
            .collect();
        // 6 methods × 3 hosts = 18 readings.
        assert_eq!(read("GET", "/", &[], &headers), Err(Unread::TooMany));
        // 6 methods × 1 host.
        assert_eq!(read("GET", "/", &[], &headers[..5]).map(|r| r.len()), Ok(6));
    }
}
