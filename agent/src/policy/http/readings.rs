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
//! a request is allowed only if each is. A form body's `_method` is read as the body streams
//! ([`super::form`]) and decided as a `?_method=` of the request would be.
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
    pub query: Query<'a>,
    /// Where its method, host and path come from.
    pub via: Via,
}

/// Where a reading's method, host, path and query come from: `None` for the request line's and
/// `Host`'s, else the header that gave it (lowercase, as listed here) or `_method`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Via {
    /// The method's source.
    pub method: Option<&'static str>,
    /// The host's source.
    pub host: Option<&'static str>,
    /// The path's source.
    pub path: Option<&'static str>,
    /// The query's source.
    pub query: Option<QueryVia>,
}

/// Where a reading's query comes from, when not the request's as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryVia {
    /// The header that gave the path (`X-Original-URL: /a?b=c`).
    Header(&'static str),
    /// The request's own, split at `;` as well as `&`.
    Semicolons,
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

    /// How this reading differs from the request as sent, for the audit record and the
    /// denial: `DELETE api.example/public/x (method from x-http-method-override)`; `None` for
    /// the request's own reading. Anything but printable ASCII is percent-encoded; query values
    /// are never shown.
    pub fn read_as(&self) -> Option<String> {
        let Via {
            method,
            host,
            path,
            query,
        } = self.via;
        let mut sources: Vec<String> = Vec::new();
        if let Some(h) = method {
            sources.push(format!("method from {h}"));
        }
        if let Some(h) = host {
            sources.push(format!("host from {h}"));
        }
        match (path, query) {
            (Some(p), Some(QueryVia::Header(q))) if p == q => {
                sources.push(format!("path and query from {p}"));
            }
            (path, query) => {
                if let Some(p) = path {
                    sources.push(format!("path from {p}"));
                }
                match query {
                    Some(QueryVia::Header(h)) => sources.push(format!("query from {h}")),
                    Some(QueryVia::Semicolons) => sources.push("query split at ';'".to_owned()),
                    None => {}
                }
            }
        }
        if sources.is_empty() {
            return None;
        }
        Some(format!(
            "{} ({})",
            shown_line(self.method, &self.host, &self.path),
            sources.join(", ")
        ))
    }
}

/// `METHOD hostpath`, each [`shown`]: how a request or a reading is shown to people.
pub fn shown_line(method: &str, host: &str, path: &str) -> String {
    format!("{} {}{}", shown(method), shown(host), shown(path))
}

/// `s` with every byte outside printable ASCII percent-encoded (as a server would read it), so
/// that what is shown of a request is what was sent (a header path may hold spaces or bidi
/// controls).
pub fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a request has no readings to decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unread {
    /// A method a header or `_method` gives is not an RFC 9110 token.
    Method,
    /// A path (the request's or one a header gives) cannot be normalized.
    Path,
    /// A host (the request's or one a header gives) is not plain ([`is_plain_host`]).
    Host,
    /// More than [`MAX_READINGS`] readings.
    TooMany,
}

/// Query parameters, borrowed from the request or parsed from a header.
type Query<'a> = Cow<'a, [(String, String)]>;

/// The methods, hosts and paths found so far, each with its source (`None`: the request's
/// own); each push keeps their product within [`MAX_READINGS`], so a header of thousands of
/// values costs no more than a few.
struct Found<'a> {
    methods: Vec<(&'a str, Option<&'static str>)>,
    hosts: Vec<(String, Option<&'static str>)>,
    paths: Vec<FoundPath<'a>>,
}

/// A path found, with its query and their sources.
type FoundPath<'a> = (String, Query<'a>, Option<&'static str>, Option<QueryVia>);

impl<'a> Found<'a> {
    fn check(&self) -> Result<(), Unread> {
        // No host yet while the path headers are read: it counts as the one it will be.
        let hosts = self.hosts.len().max(1);
        if self.methods.len() * hosts * self.paths.len() > MAX_READINGS {
            return Err(Unread::TooMany);
        }
        Ok(())
    }

    fn method(&mut self, m: &'a str, via: &'static str) -> Result<(), Unread> {
        if !m.bytes().all(is_tchar) {
            return Err(Unread::Method);
        }
        if !self
            .methods
            .iter()
            .any(|(have, _)| have.eq_ignore_ascii_case(m))
        {
            self.methods.push((m, Some(via)));
        }
        self.check()
    }

    fn host(&mut self, raw: &str, via: &'static str) -> Result<(), Unread> {
        let h = plain_host(raw)?;
        if !self.hosts.iter().any(|(have, _)| *have == h) {
            self.hosts.push((h, Some(via)));
        }
        self.check()
    }

    fn path(&mut self, found: FoundPath<'a>) -> Result<(), Unread> {
        let (path, query, ..) = &found;
        if !self
            .paths
            .iter()
            .any(|(p, q, ..)| p == path && **q == **query)
        {
            self.paths.push(found);
        }
        self.check()
    }
}

/// Every reading of `facts` (see the module's documentation): the request as sent first, then
/// each combination of the methods, hosts and paths the headers and `_method` give. Values
/// that repeat a reading's add none. A path a header gives is read with its own query and
/// with the request's (frameworks that route by the header may take parameters from either).
/// A malformed path is reported before a malformed host, as without these headers.
pub fn readings<'a>(facts: &RequestFacts<'a>) -> Result<Vec<Reading<'a>>, Unread> {
    // Each value with the name of the header (as listed) that gave it.
    let header_values = |names: &'static [&'static str]| {
        facts.headers.iter().filter_map(move |(k, v)| {
            let name = names.iter().find(|n| same_header_name(k, n))?;
            Some((v.as_str(), *name))
        })
    };
    let mut found = Found {
        methods: vec![(facts.method, None)],
        hosts: Vec::new(),
        paths: vec![(
            normalize_path(facts.path).ok_or(Unread::Path)?,
            Cow::Borrowed(facts.query),
            None,
            None,
        )],
    };
    for (v, name) in header_values(&PATH_HEADERS) {
        let v = trim_ows(v);
        if v.is_empty() {
            continue;
        }
        // A path, not a URL: a value a framework could read another way is not guessed at (a
        // `#` some cut the value at and others keep).
        if !v.starts_with('/') || v.starts_with("//") || v.contains('#') {
            return Err(Unread::Path);
        }
        let (path, query) = v.split_once('?').unwrap_or((v, ""));
        let path = normalize_path(path).ok_or(Unread::Path)?;
        let own = Cow::Owned(parse_query(query));
        found.path((path.clone(), own, Some(name), Some(QueryVia::Header(name))))?;
        found.path((path, Cow::Borrowed(facts.query), Some(name), None))?;
    }
    if let Some(split) = split_at_semicolons(facts.query) {
        let wire = found.paths[0].0.clone();
        found.path((wire, Cow::Owned(split), None, Some(QueryVia::Semicolons)))?;
    }
    found.hosts.push((plain_host(facts.host)?, None));
    let hosts =
        header_values(&HOST_HEADERS).flat_map(|(v, name)| v.split(',').map(move |h| (h, name)));
    let forwarded = header_values(&[FORWARDED])
        .flat_map(|(v, name)| forwarded_hosts(v).map(move |h| (h, name)));
    for (h, name) in hosts.chain(forwarded) {
        let h = trim_ows(h);
        if !h.is_empty() {
            found.host(h, name)?;
        }
    }
    let params = facts
        .query
        .iter()
        .filter(|(k, _)| is_method_param(k))
        .map(|(_, v)| (v.as_str(), METHOD_PARAM));
    for (m, name) in header_values(&METHOD_HEADERS)
        .chain(params)
        .flat_map(|(v, name)| v.split(',').map(move |m| (m, name)))
    {
        let m = trim_ows(m);
        if !m.is_empty() {
            found.method(m, name)?;
        }
    }

    let Found {
        methods,
        hosts,
        paths,
    } = found;
    let mut out = Vec::with_capacity(methods.len() * hosts.len() * paths.len());
    for (path, query, path_via, query_via) in &paths {
        for (host, host_via) in &hosts {
            for (method, method_via) in &methods {
                out.push(Reading {
                    method,
                    host: host.clone(),
                    path: path.clone(),
                    query: query.clone(),
                    via: Via {
                        method: *method_via,
                        host: *host_via,
                        path: *path_via,
                        query: *query_via,
                    },
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
            .any(|(k, v)| is_method_param(k) || k.contains(';') || v.contains(';'))
}

/// The query as servers that also split it at `;` read it (Go before 1.17, Python before
/// 3.9.2, Rack 2): `a=1;force=1` is `a=1` and `force=1` to them. `None` when no name or value
/// holds a `;`.
fn split_at_semicolons(query: &[(String, String)]) -> Option<Vec<(String, String)>> {
    if !query
        .iter()
        .any(|(k, v)| k.contains(';') || v.contains(';'))
    {
        return None;
    }
    let mut out = Vec::new();
    for (k, v) in query {
        let pair = format!("{k}={v}");
        for piece in pair.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            out.push((k.to_owned(), v.to_owned()));
        }
    }
    Some(out)
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

/// Whether query parameter names `a` and `b` are one name as some upstream reads them: as PHP
/// does, leading spaces dropped, the name cut at a NUL and before `[...]` (array syntax), and
/// ` `, `.` and `[` read as `_` (`?.method=` is `$_GET['_method']`, `?force[]=` is
/// `$_GET['force']`); and case aside, as ASP.NET reads names.
pub fn same_param_name(a: &str, b: &str) -> bool {
    php_name(a).eq(php_name(b))
}

fn php_name(name: &str) -> impl Iterator<Item = u8> + '_ {
    let name = name.trim_start_matches(' ');
    let name = name.split('\0').next().unwrap_or_default();
    // `name[]` and `name[key]` are `name` (an array) to PHP, Rack and Express's `qs`.
    let name = match name.find('[') {
        Some(i) if i > 0 && name[i..].contains(']') => &name[..i],
        _ => name,
    };
    name.bytes().map(|c| match c {
        b' ' | b'.' | b'[' => b'_',
        c => c.to_ascii_lowercase(),
    })
}

/// `_method` as upstreams read parameter names ([`same_param_name`]), and with its brackets
/// dropped (`[_method]` is `_method` to Express's `qs`; `_method]` and `]_method` to Rack 2).
pub(super) fn is_method_param(k: &str) -> bool {
    php_name(k).eq(METHOD_PARAM.bytes())
        || (k.contains(['[', ']']) && php_name(&k.replace(['[', ']'], "")).eq(METHOD_PARAM.bytes()))
}

/// RFC 9110 `tchar`: what a method is made of.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Without the optional white space (spaces and tabs) around a list element, and nothing else:
/// a character some reader trims and another keeps then fails [`is_tchar`] or
/// [`is_plain_host`].
fn trim_ows(v: &str) -> &str {
    v.trim_matches([' ', '\t'])
}

fn plain_host(raw: &str) -> Result<String, Unread> {
    if is_plain_host(raw) {
        Ok(normalize_host(raw))
    } else {
        Err(Unread::Host)
    }
}

/// The hosts a `Forwarded` header may give: each `host=` pair (RFC 7239 §4: elements separated
/// by `,`, pairs by `;`, a value a token or a quoted string), and whatever follows `host=`
/// anywhere in the value up to a `;`, `,` or `"`, as Spring, Vert.x and Reactor Netty read it
/// (`for="host=a"` and `xhost=a` give `a` to them). A quoted value with a `\` or an unterminated
/// quote is given as is, which is not a plain host (refused rather than unescaped).
fn forwarded_hosts(value: &str) -> impl Iterator<Item = &str> {
    let pairs = value
        .split([',', ';'])
        .filter_map(|pair| {
            let (name, v) = pair.split_once('=')?;
            trim_ows(name)
                .eq_ignore_ascii_case("host")
                .then_some(trim_ows(v))
        })
        .map(|v| {
            v.strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .filter(|q| !q.contains(['\\', '"']))
                .unwrap_or(v)
        });
    let anywhere = value
        .as_bytes()
        .windows(5)
        .enumerate()
        .filter(|(_, w)| w.eq_ignore_ascii_case(b"host="))
        .map(move |(i, _)| {
            let rest = &value[i + 5..];
            let rest = rest.strip_prefix('"').unwrap_or(rest);
            rest.split([';', ',', '"']).next().unwrap_or_default()
        });
    pairs.chain(anywhere)
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
        let (query, headers) = (owned(query), owned(headers));
        let facts = facts(method, "API.example:8080", path, &query, &headers);
        let got = readings(&facts)?;
        assert!(has_other_readings(&facts) || got.len() == 1, "{headers:?}");
        Ok(got
            .into_iter()
            .map(|r| (r.method.to_owned(), r.host, r.path))
            .collect())
    }

    fn facts<'a>(
        method: &'a str,
        host: &'a str,
        path: &'a str,
        query: &'a [(String, String)],
        headers: &'a [(String, String)],
    ) -> RequestFacts<'a> {
        RequestFacts {
            method,
            host,
            path,
            query,
            headers,
        }
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
            // A list of methods: each element (Express takes the first); anything that is not
            // a method token is refused, not trimmed.
            (
                &[],
                &[("x-http-method-override", "DELETE, GET")],
                Ok(vec![wire.clone(), r("DELETE", "api.example", "/public/x")]),
            ),
            (
                &[],
                &[("x-http-method-override", "\u{FFFD}DELETE")],
                Err(Unread::Method),
            ),
            (
                &[],
                &[("x-http-method-override", "DE LETE")],
                Err(Unread::Method),
            ),
            // `_method` as PHP reads parameter names.
            (
                &[(".method", "DELETE")],
                &[],
                Ok(vec![wire.clone(), r("DELETE", "api.example", "/public/x")]),
            ),
            (
                &[("  _method\0x", "PUT")],
                &[],
                Ok(vec![wire.clone(), r("PUT", "api.example", "/public/x")]),
            ),
            (&[("_methods", "PUT")], &[], Ok(vec![wire.clone()])),
            // Paths: normalized as the request's own; a query comes with them.
            (
                &[],
                &[("x-original-url", "/%61dmin/y?force=1")],
                // With its own query, then the request's.
                Ok(vec![
                    wire.clone(),
                    r("GET", "api.example", "/admin/y"),
                    r("GET", "api.example", "/admin/y"),
                ]),
            ),
            (&[], &[("x-rewrite-url", "/a/../admin")], Err(Unread::Path)),
            (&[], &[("x-rewrite-url", " ")], Ok(vec![wire.clone()])),
            (
                &[],
                &[("x-original-url", "http://h/admin")],
                Err(Unread::Path),
            ),
            (&[], &[("x-original-url", "//h/admin")], Err(Unread::Path)),
            (
                &[],
                &[("x-original-url", "/public/x#/../admin")],
                Err(Unread::Path),
            ),
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
            // `host=` anywhere, as Spring, Vert.x and Reactor Netty search for it.
            (
                &[],
                &[("forwarded", "xhost=admin.example")],
                Ok(vec![wire.clone(), r("GET", "admin.example", "/public/x")]),
            ),
            (
                &[],
                &[("Forwarded", "for=\"HOST=admin.example\"")],
                Ok(vec![wire.clone(), r("GET", "admin.example", "/public/x")]),
            ),
            (
                &[],
                &[("forwarded", "for=192.0.2.1")],
                Ok(vec![wire.clone()]),
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

    /// Each reading says where its method, host, path and query come from: nothing for the
    /// request's own; never a query value; what is not printable ASCII escaped.
    #[test]
    fn readings_name_their_sources() {
        let read_as = |query: &[(&str, &str)], headers: &[(&str, &str)]| {
            let (query, headers) = (owned(query), owned(headers));
            let facts = facts("GET", "API.example:8080", "/public/x", &query, &headers);
            readings(&facts)
                .expect("readings")
                .iter()
                .map(Reading::read_as)
                .collect::<Vec<_>>()
        };
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(read_as(&[("token", "s3cret")], &[]), vec![None]);
        assert_eq!(
            read_as(&[("_method", "PUT")], &[("X-Forwarded-Host", "b.example")]),
            vec![
                None,
                some("PUT api.example/public/x (method from _method)"),
                some("GET b.example/public/x (host from x-forwarded-host)"),
                some("PUT b.example/public/x (method from _method, host from x-forwarded-host)"),
            ]
        );
        assert_eq!(
            read_as(&[("a", "1")], &[("x-rewrite-url", "/admin?b=2")]),
            vec![
                None,
                some("GET api.example/admin (path and query from x-rewrite-url)"),
                some("GET api.example/admin (path from x-rewrite-url)"),
            ]
        );
        assert_eq!(
            read_as(
                &[("a", "1;force=s3cret")],
                &[("forwarded", "for=x;host=\"c.example\"")]
            ),
            vec![
                None,
                some("GET c.example/public/x (host from forwarded)"),
                some("GET api.example/public/x (query split at ';')"),
                some("GET c.example/public/x (host from forwarded, query split at ';')"),
            ]
        );
        assert_eq!(
            read_as(&[], &[("x-original-url", "/a b\u{202E}x")]),
            vec![
                None,
                some("GET api.example/a%20b%E2%80%AEx (path and query from x-original-url)"),
            ]
        );
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
        // Path headers alone: 9 distinct paths, each read with two queries, make 19 readings.
        let paths: Vec<String> = (0..9).map(|i| format!("/p{i}?q={i}")).collect();
        let headers: Vec<(&str, &str)> = paths
            .iter()
            .map(|p| ("x-original-url", p.as_str()))
            .collect();
        assert_eq!(read("GET", "/", &[], &headers), Err(Unread::TooMany));
        assert_eq!(
            read("GET", "/", &[], &headers[..7]).map(|r| r.len()),
            Ok(15)
        );
        // Thousands of distinct hosts in one header: refused at the 17th.
        let hosts: Vec<String> = (0..20_000).map(|i| format!("h{i}.example")).collect();
        let list = hosts.join(",");
        assert_eq!(
            read("GET", "/", &[], &[("x-forwarded-host", &list)]),
            Err(Unread::TooMany)
        );
    }

    /// A path a header gives is read with its own query and with the request's.
    #[test]
    fn a_header_path_is_read_with_both_queries() {
        let query = owned(&[("force", "1")]);
        let headers = owned(&[("x-original-url", "/admin/x?v=2")]);
        let facts = facts("GET", "api.example", "/items/1", &query, &headers);
        let got: Vec<(String, Vec<(String, String)>)> = readings(&facts)
            .expect("readings")
            .into_iter()
            .map(|r| (r.path, r.query.into_owned()))
            .collect();
        assert_eq!(
            got,
            [
                ("/items/1".to_owned(), query.clone()),
                ("/admin/x".to_owned(), owned(&[("v", "2")])),
                ("/admin/x".to_owned(), query.clone()),
            ]
        );
    }

    /// A query holding `;` is also read as servers that split it there read it.
    #[test]
    fn a_query_is_also_read_split_at_semicolons() {
        let query = owned(&[("a", "1;force=1"), ("b;c", "")]);
        let facts = facts("GET", "api.example", "/items", &query, &[]);
        assert!(has_other_readings(&facts));
        let got: Vec<Vec<(String, String)>> = readings(&facts)
            .expect("readings")
            .into_iter()
            .map(|r| r.query.into_owned())
            .collect();
        assert_eq!(
            got,
            [
                query.clone(),
                owned(&[("a", "1"), ("force", "1"), ("b", ""), ("c", "")])
            ]
        );
    }

    #[test]
    fn name_spellings() {
        assert!(same_header_name("X_Api_Key", "x-api-key"));
        assert!(same_header_name("x-api-key", "X_API_KEY"));
        assert!(!same_header_name("x-api-key", "x-api-keys"));
        assert!(!same_header_name("xapi-key", "x-api-key"));
        assert!(same_param_name(" a.b[c", "a_b_c"));
        assert!(same_param_name("force\0junk", "force"));
        assert!(same_param_name("force[]", "force"));
        assert!(same_param_name("force[x]", "force"));
        assert!(same_param_name("a[b", "a_b"));
        assert!(!same_param_name(".force", "force"));
        assert!(same_param_name("FORCE", "force"));
        assert!(!same_param_name("forc", "force"));
    }
}
