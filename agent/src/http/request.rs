//! Requests on their way upstream: the facts policy decides on, the client's credentials removed
//! and the target's added, hop-by-hop headers dropped, and the request target shaped for the
//! upstream's HTTP version. Pure functions over request heads.
use base64::Engine as _;
use hyper::{
    HeaderMap, Method, Uri, Version,
    header::{self, HeaderName, HeaderValue},
    http::{request::Parts, uri::PathAndQuery},
};

use crate::policy::{
    Compressed, HttpCredential, HttpTarget, RequestFacts, decode_query_component, is_plain_host,
    normalize_host, normalize_path, parse_query, same_header_name, same_param_name,
};

/// What policy sees of a request, owned (see [`Facts::as_policy`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Method as sent.
    pub method: String,
    /// `:authority` or `Host`, as sent (empty when there is neither).
    pub host: String,
    /// Path component of the request target as sent (no query).
    pub path: String,
    /// Query parameters, percent-decoded (`+` as a space), in order.
    pub query: Vec<(String, String)>,
    /// Headers, names lowercase, values as text (bytes that are not UTF-8 replaced).
    pub headers: Vec<(String, String)>,
}

impl Facts {
    /// The facts of a request head.
    pub fn of(parts: &Parts) -> Self {
        // The absolute form's authority without any `user:password@` (a `Host` never has one).
        let host = parts
            .uri
            .authority()
            .map(|a| {
                let a = a.as_str();
                a.rsplit_once('@').map_or(a, |(_, host)| host).to_owned()
            })
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            })
            .unwrap_or_default();
        Self {
            method: parts.method.as_str().to_owned(),
            host,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(parse_query).unwrap_or_default(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        }
    }

    /// The borrowed form [`crate::policy::Policy::evaluate_request`] takes.
    pub fn as_policy(&self) -> RequestFacts<'_> {
        RequestFacts {
            method: &self.method,
            host: &self.host,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
        }
    }

    /// Host as recorded: without port, lowercase; as sent when it is not plain (policy refuses
    /// it, and in audit mode it goes upstream as sent).
    pub fn audit_host(&self) -> String {
        if is_plain_host(&self.host) {
            normalize_host(&self.host)
        } else {
            // As sent, but never a `user:password@` a client put in its `Host`.
            crate::policy::without_userinfo(&self.host).into_owned()
        }
    }

    /// Path as recorded: normalized as policy saw it, or as sent when it cannot be.
    pub fn audit_path(&self) -> String {
        normalize_path(&self.path).unwrap_or_else(|| self.path.clone())
    }

    /// Names of the query parameters (never their values).
    pub fn query_names(&self) -> Vec<String> {
        self.query.iter().map(|(k, _)| k.clone()).collect()
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(super) fn encode_component(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a request cannot be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The credential does not make a valid header value or request target (its content is never
    /// shown).
    #[error("the target's credential cannot be sent in a request")]
    Credential,
    /// The request target cannot be rebuilt.
    #[error("invalid request target: {0}")]
    Target(String),
}

/// Whether a request asks to switch to WebSocket: HTTP/1.1 with `Upgrade: websocket` and
/// `Connection: upgrade`. Only WebSocket: after the switch the connection is spliced, so any
/// other protocol (`h2c`, say, whose streams would each be a request) would be a tunnel no rule,
/// masking or record sees. A request asking for another is sent as a plain request, its
/// `Upgrade` dropped ([`strip_hop_by_hop`]); an upstream that switches anyway gets a 502.
pub fn is_upgrade_head(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && is_websocket_upgrade(headers)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// Whether the `Upgrade` headers of `headers` name WebSocket and nothing else.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let mut tokens = headers
        .get_all(header::UPGRADE)
        .iter()
        .map(|v| v.to_str().unwrap_or("\0"))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .peekable();
    tokens.peek().is_some() && tokens.all(|t| t.eq_ignore_ascii_case("websocket"))
}

fn connection_tokens(h: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): `Connection` and the headers it names,
/// `Keep-Alive`, `Proxy-Connection`, `TE` (except `trailers`), `Transfer-Encoding` (hyper frames
/// bodies itself) and, unless `upgrade`, `Upgrade`. An upgrade keeps `Connection: upgrade`.
pub fn strip_hop_by_hop(h: &mut HeaderMap, upgrade: bool) {
    let named: Vec<String> = connection_tokens(h).collect();
    for name in &named {
        if upgrade && name.eq_ignore_ascii_case("upgrade") {
            continue;
        }
        if let Ok(n) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
            h.remove(n);
        }
    }
    h.remove(header::CONNECTION);
    h.remove(KEEP_ALIVE);
    h.remove(PROXY_CONNECTION);
    h.remove(header::TRANSFER_ENCODING);
    let trailers = h
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    h.remove(header::TE);
    if trailers {
        h.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        h.remove(header::UPGRADE);
    }
    // Connection-specific (RFC 7540 §3.2.1): dropped whether `Connection` names it or not.
    h.remove(HTTP2_SETTINGS);
}

/// Applies the target's credential handling to a request head: the client's `Authorization`
/// and `Proxy-Authorization` removed when `strip_client_credentials` (the default); the
/// credential's own header or query parameter always replaced by tollgate's (never two);
/// then the credential added, its header marked sensitive (never logged, HPACK never-indexed).
pub fn credentials(parts: &mut Parts, target: &HttpTarget) -> Result<(), PrepareError> {
    if target.strip_client_credentials {
        parts.headers.remove(header::AUTHORIZATION);
        remove_spellings(&mut parts.headers, header::PROXY_AUTHORIZATION.as_str());
    }
    let Some(cred) = &target.credential else {
        return Ok(());
    };
    if let Some(name) = cred.header_name() {
        remove_spellings(&mut parts.headers, name);
    }
    match cred {
        HttpCredential::Bearer(token) => {
            let mut v = b"Bearer ".to_vec();
            v.extend_from_slice(token.expose());
            set_secret(&mut parts.headers, header::AUTHORIZATION, &v)
        }
        HttpCredential::Basic { user, password } => {
            let mut plain = user.as_bytes().to_vec();
            plain.push(b':');
            plain.extend_from_slice(password.expose());
            let v = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(&plain)
            );
            set_secret(&mut parts.headers, header::AUTHORIZATION, v.as_bytes())
        }
        HttpCredential::Header { name, value } => {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| PrepareError::Credential)?;
            set_secret(&mut parts.headers, name, value.expose())
        }
        HttpCredential::Query { name, value } => {
            let kept = without_param(parts.uri.query(), name);
            let added = format!(
                "{}={}",
                encode_component(name.as_bytes()),
                encode_component(value.expose())
            );
            let query = if kept.is_empty() {
                added
            } else {
                format!("{kept}&{added}")
            };
            let pq = format!("{}?{query}", parts.uri.path());
            set_path_and_query(&mut parts.uri, &pq).map_err(|_| PrepareError::Credential)
        }
    }
}

/// Removes header `name` under every spelling an upstream may read as it ([`same_header_name`]:
/// `X_Api_Key` is `X-Api-Key` to Rack and WSGI).
fn remove_spellings(h: &mut HeaderMap, name: &str) {
    let spellings: Vec<HeaderName> = h
        .keys()
        .filter(|k| same_header_name(k.as_str(), name))
        .cloned()
        .collect();
    for k in spellings {
        h.remove(k);
    }
}

fn set_secret(h: &mut HeaderMap, name: HeaderName, value: &[u8]) -> Result<(), PrepareError> {
    let mut v = HeaderValue::from_bytes(value).map_err(|_| PrepareError::Credential)?;
    v.set_sensitive(true);
    h.insert(name, v);
    Ok(())
}

/// The raw query without parameter `name` under any spelling an upstream may read as it
/// ([`same_param_name`]: `API_KEY`, `api.key`, `api_key[]` are `api_key` to PHP or ASP.NET),
/// nor a `&`-separated piece that holds it after a `;` (`x=1;api_key=…` is two parameters to
/// servers that also split at `;`).
fn without_param(query: Option<&str>, name: &str) -> String {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            !p.split(';').any(|piece| {
                let k = decode_query_component(piece.split_once('=').map_or(piece, |(k, _)| k));
                same_param_name(&k, name)
            })
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn set_path_and_query(uri: &mut Uri, pq: &str) -> Result<(), hyper::http::Error> {
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq)?);
    *uri = Uri::from_parts(parts)?;
    Ok(())
}

/// When masking is on, the codings the client may receive are those tollgate decodes
/// (`compressed = "decode"`), or none (`"refuse"`): asks the upstream for bodies it can mask.
/// Byte ranges are dropped too: a range can cut a sensitive value out of the context that lets
/// it be recognised (a card number without its JSON key), so the whole body is fetched and
/// masked instead.
pub fn accept_encoding(h: &mut HeaderMap, target: &HttpTarget) {
    if !target.masks() {
        return;
    }
    h.remove(header::RANGE);
    h.remove(header::IF_RANGE);
    // Other spellings some servers honour (Apache's `Request-Range`, Azure's `x-ms-range`); a
    // `206` that gets through anyway is refused (`response::plan`).
    h.remove("request-range");
    h.remove("x-ms-range");
    let allowed = match target.compressed {
        Compressed::Refuse => "identity".to_owned(),
        Compressed::Decode => {
            let offered: Vec<String> = h
                .get_all(header::ACCEPT_ENCODING)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|t| t.trim().to_owned())
                .filter(|t| {
                    let name = t.split(';').next().unwrap_or_default().trim();
                    ["gzip", "x-gzip", "deflate", "br", "identity"]
                        .iter()
                        .any(|ok| name.eq_ignore_ascii_case(ok))
                })
                .collect();
            if offered.is_empty() {
                "identity".to_owned()
            } else {
                offered.join(", ")
            }
        }
    };
    h.remove(header::ACCEPT_ENCODING);
    if let Ok(v) = HeaderValue::from_str(&allowed) {
        h.insert(header::ACCEPT_ENCODING, v);
    }
}

/// Size of a request head as the limit counts it: request line and every header line.
pub fn head_size(method: &str, uri: &Uri, h: &HeaderMap) -> usize {
    let line = method.len() + uri.to_string().len() + 12;
    line + h
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
}

/// Shapes the request target for the upstream's HTTP version: HTTP/2 needs an absolute URI
/// (`:scheme`, `:authority`; no `Host`), HTTP/1.1 the origin form and a `Host` header.
/// `authority` is the host policy read ([`Facts::host`]: the absolute form's or `:authority`
/// before `Host`; the session puts the original destination there when the request names
/// none). It replaces any
/// `Host` the client sent (RFC 9112 §3.2.2), so the upstream never picks a virtual host policy
/// did not see (`GET http://api.example/ HTTP/1.1` with `Host: admin.example`, or two `Host`
/// headers).
pub fn for_upstream(
    parts: &mut Parts,
    h2: bool,
    tls: bool,
    authority: &str,
) -> Result<(), PrepareError> {
    let pq = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let bad = |e: &dyn std::fmt::Display| PrepareError::Target(e.to_string());
    if parts.method == Method::CONNECT {
        return Err(PrepareError::Target("CONNECT is not forwarded".into()));
    }
    if h2 {
        let scheme = if tls { "https" } else { "http" };
        parts.uri = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(pq)
            .build()
            .map_err(|e| bad(&e))?;
        parts.headers.remove(header::HOST);
        parts.version = Version::HTTP_2;
    } else {
        parts.uri = Uri::try_from(pq).map_err(|e| bad(&e))?;
        // Bytes, not text: a non-ASCII host (allowed where no request rule applies) goes on.
        let v = HeaderValue::from_bytes(authority.as_bytes()).map_err(|e| bad(&e))?;
        parts.headers.insert(header::HOST, v);
        parts.version = Version::HTTP_11;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use hyper::Request;

    use super::*;
    use crate::policy::Secret;

    fn parts(req: Request<()>) -> Parts {
        req.into_parts().0
    }

    fn get(uri: &str) -> Parts {
        parts(Request::get(uri).body(()).unwrap())
    }

    /// A target with `credential`, built the way policy builds one (through a policy file is
    /// heavier; the fields are plain).
    pub(crate) fn target(credential: Option<HttpCredential>, strip: bool) -> HttpTarget {
        HttpTarget {
            tls: crate::policy::HttpTls::None,
            ca_file: None,
            server_name: None,
            client_cert: None,
            passthrough_sni: vec![],
            credential,
            strip_client_credentials: strip,
            max_request_header: 64 * 1024,
            max_body_buffer: 1 << 20,
            compressed: Compressed::Decode,
            unmaskable: crate::policy::Unmaskable::Pass,
            record_bodies: false,
            body_cap: 4096,
            record_headers: true,
            redact_headers: vec![],
            masking: None,
            masker: None,
            json_keys: vec![],
            hash_key: None,
        }
    }

    /// A `Host` that is not a plain host is recorded as sent, but never with userinfo.
    #[test]
    fn a_recorded_host_never_has_userinfo() {
        let p = parts(
            Request::get("/x")
                .header("Host", "user:s3cret@api.example")
                .body(())
                .unwrap(),
        );
        let facts = Facts::of(&p);
        assert_eq!(facts.audit_host(), "[redacted]@api.example");
    }

    #[test]
    fn facts_extraction() {
        let p = parts(
            Request::post("/v1/secret/data/../etl?version=2&list&a%20b=c+d&version=3")
                .header("Host", "Vault.Internal:8200")
                .header("X-Request-Kind", "batch")
                .header("Authorization", "Bearer t")
                .body(())
                .unwrap(),
        );
        let f = Facts::of(&p);
        assert_eq!(f.method, "POST");
        assert_eq!(f.host, "Vault.Internal:8200");
        assert_eq!(f.path, "/v1/secret/data/../etl");
        assert_eq!(
            f.query,
            vec![
                ("version".into(), "2".into()),
                ("list".into(), "".into()),
                ("a b".into(), "c d".into()),
                ("version".into(), "3".into()),
            ]
        );
        assert!(
            f.headers
                .contains(&("x-request-kind".into(), "batch".into()))
        );
        assert_eq!(f.audit_host(), "vault.internal");
        // A dot segment cannot be normalized (policy refuses it): recorded as sent.
        assert_eq!(f.audit_path(), "/v1/secret/data/../etl");
        assert_eq!(f.query_names(), ["version", "list", "a b", "version"]);
        let pf = f.as_policy();
        assert_eq!((pf.method, pf.path), ("POST", "/v1/secret/data/../etl"));
        // HTTP/2 and absolute-form: the authority of the URI wins over Host.
        let p = parts(
            Request::get("https://api.example:443/x")
                .header("Host", "other")
                .body(())
                .unwrap(),
        );
        assert_eq!(Facts::of(&p).host, "api.example:443");
        // A path policy cannot normalize is recorded as sent.
        assert_eq!(Facts::of(&get("/a/../../b")).audit_path(), "/a/../../b");
    }

    fn with_auth(uri: &str) -> Parts {
        parts(
            Request::get(uri)
                .header("Authorization", "Basic Y2xpZW50OnB3")
                .header("Proxy-Authorization", "x")
                .header("X-Vault-Token", "client-token")
                // The same headers to Rack and WSGI.
                .header("Proxy_Authorization", "y")
                .header("X_Vault_Token", "client-token-2")
                .header("X-Other", "kept")
                .body(())
                .unwrap(),
        )
    }

    #[test]
    fn credential_strip_and_inject_per_kind() {
        let secret = || Secret::new(b"s3cr&t".to_vec());
        // (credential, strip, check)
        type Check = fn(&Parts);
        let cases: Vec<(Option<HttpCredential>, bool, Check)> = vec![
            (None, true, |p| {
                assert!(!p.headers.contains_key("authorization"));
                assert!(!p.headers.contains_key("proxy-authorization"));
                assert!(!p.headers.contains_key("proxy_authorization"));
                assert_eq!(p.headers["x-vault-token"], "client-token");
                assert_eq!(p.headers["x_vault_token"], "client-token-2");
            }),
            (None, false, |p| {
                assert_eq!(p.headers["authorization"], "Basic Y2xpZW50OnB3");
                assert_eq!(p.headers["proxy-authorization"], "x");
                assert_eq!(p.headers["proxy_authorization"], "y");
            }),
            (Some(HttpCredential::Bearer(secret())), true, |p| {
                assert_eq!(p.headers["authorization"], "Bearer s3cr&t");
                assert!(p.headers["authorization"].is_sensitive());
                assert_eq!(p.headers.get_all("authorization").iter().count(), 1);
                assert!(!p.headers.contains_key("proxy-authorization"));
            }),
            // Not stripping still never sends two Authorization headers.
            (Some(HttpCredential::Bearer(secret())), false, |p| {
                assert_eq!(p.headers.get_all("authorization").iter().count(), 1);
                assert_eq!(p.headers["authorization"], "Bearer s3cr&t");
                assert_eq!(p.headers["proxy-authorization"], "x");
            }),
            (
                Some(HttpCredential::Basic {
                    user: "etl".into(),
                    password: secret(),
                }),
                true,
                |p| {
                    // base64("etl:s3cr&t")
                    assert_eq!(p.headers["authorization"], "Basic ZXRsOnMzY3ImdA==");
                },
            ),
            (
                Some(HttpCredential::Header {
                    name: "x-vault-token".into(),
                    value: secret(),
                }),
                true,
                |p| {
                    assert_eq!(p.headers.get_all("x-vault-token").iter().count(), 1);
                    assert_eq!(p.headers["x-vault-token"], "s3cr&t");
                    assert!(!p.headers.contains_key("x_vault_token"));
                    assert!(p.headers["x-vault-token"].is_sensitive());
                    assert!(!p.headers.contains_key("authorization"));
                    assert_eq!(p.headers["x-other"], "kept");
                },
            ),
            (
                Some(HttpCredential::Query {
                    name: "api_key".into(),
                    value: secret(),
                }),
                true,
                |p| {
                    assert_eq!(p.uri.path(), "/x");
                    assert_eq!(p.uri.query(), Some("a=1&b=2&api_key=s3cr%26t"));
                },
            ),
        ];
        for (i, (cred, strip, check)) in cases.into_iter().enumerate() {
            let t = target(cred, strip);
            let mut p = with_auth(
                "/x?a=1&api_key=client&b=2&api%5Fkey=again&API_KEY=case&api.key=dot&api_key[]=arr\
                 &x=1;api_key=semi",
            );
            credentials(&mut p, &t).unwrap_or_else(|e| panic!("case {i}: {e}"));
            check(&p);
        }
        // A query credential on a request without a query.
        let t = target(
            Some(HttpCredential::Query {
                name: "k".into(),
                value: Secret::new(b"v".to_vec()),
            }),
            true,
        );
        let mut p = get("/y");
        credentials(&mut p, &t).unwrap();
        assert_eq!(p.uri.to_string(), "/y?k=v");
        // A secret that cannot be a header value is refused without showing it.
        let t = target(
            Some(HttpCredential::Bearer(Secret::new(b"a\nb".to_vec()))),
            true,
        );
        let mut p = get("/");
        let e = credentials(&mut p, &t).unwrap_err();
        assert!(!e.to_string().contains("a\nb"));
    }

    #[test]
    fn hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("connection", "keep-alive, X-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("te", "gzip, trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            // Not named in `Connection`: dropped all the same.
            ("http2-settings", "AAMAAABkAAQAAP__"),
            ("x-end", "kept"),
        ] {
            h.append(n, HeaderValue::from_static(v));
        }
        let mut plain = h.clone();
        strip_hop_by_hop(&mut plain, false);
        let names: Vec<&str> = plain.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["te", "x-end"]);
        assert_eq!(plain["te"], "trailers");
        let mut up = h;
        strip_hop_by_hop(&mut up, true);
        assert_eq!(up["upgrade"], "websocket");
        assert_eq!(up["connection"], "upgrade");
        assert!(!up.contains_key("x-hop") && !up.contains_key("http2-settings"));
    }

    #[test]
    fn upgrade_detection() {
        let ws = parts(
            Request::get("/ws")
                .header("Connection", "keep-alive, Upgrade")
                .header("Upgrade", "websocket")
                .body(())
                .unwrap(),
        );
        assert!(is_upgrade_head(ws.version, &ws.headers));
        let no = parts(Request::get("/").header("Upgrade", "h2c").body(()).unwrap());
        assert!(!is_upgrade_head(no.version, &no.headers));
        // WebSocket only: another protocol, or a choice of protocols, is no upgrade.
        for (upgrade, want) in [
            ("WebSocket", true),
            ("h2c", false),
            ("websocket, h2c", false),
            ("echo", false),
            ("", false),
        ] {
            let p = parts(
                Request::get("/")
                    .header("Connection", "Upgrade, HTTP2-Settings")
                    .header("Upgrade", upgrade)
                    .body(())
                    .unwrap(),
            );
            assert_eq!(is_upgrade_head(p.version, &p.headers), want, "{upgrade}");
        }
    }

    #[test]
    fn target_shapes() {
        let mut p = parts(
            Request::get("/a?b=1")
                .header("Host", "h.example:8080")
                .body(())
                .unwrap(),
        );
        for_upstream(&mut p, true, true, "h.example:8080").unwrap();
        assert_eq!(p.uri.to_string(), "https://h.example:8080/a?b=1");
        assert!(!p.headers.contains_key("host"));
        assert_eq!(p.version, Version::HTTP_2);
        // HTTP/2 from the client, HTTP/1.1 upstream: origin form and a Host header.
        let mut p = parts(
            Request::get("https://h.example/a")
                .version(Version::HTTP_2)
                .body(())
                .unwrap(),
        );
        for_upstream(&mut p, false, true, "h.example").unwrap();
        assert_eq!(p.uri.to_string(), "/a");
        assert_eq!(p.headers["host"], "h.example");
        assert_eq!(p.version, Version::HTTP_11);
        let mut c = parts(Request::connect("h.example:443").body(()).unwrap());
        assert!(for_upstream(&mut c, false, false, "h.example:443").is_err());
        // Found in review: the absolute form's host is what policy read; the client's Host
        // (one or several) does not reach the upstream.
        let mut p = parts(
            Request::get("http://api.example/x")
                .header("Host", "admin.example")
                .header("Host", "other.example")
                .body(())
                .unwrap(),
        );
        let policy_host = Facts::of(&p).host;
        assert_eq!(policy_host, "api.example");
        for_upstream(&mut p, false, false, &policy_host).unwrap();
        let hosts: Vec<_> = p.headers.get_all("host").iter().collect();
        assert_eq!(hosts, ["api.example"]);
        // Userinfo in the absolute form never reaches the Host header.
        let p = parts(
            Request::get("http://user:pw@api.example:8080/x")
                .body(())
                .unwrap(),
        );
        assert_eq!(Facts::of(&p).host, "api.example:8080");
        let p = parts(Request::get("http://[fd00::1]/x").body(()).unwrap());
        assert_eq!(Facts::of(&p).host, "[fd00::1]");
    }

    #[test]
    fn accept_encoding_follows_masking() {
        use crate::masking::{Detector, DetectorRule, Masker, MaskingConfig, Style};
        let mut t = target(None, true);
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("zstd, br;q=1, gzip"),
        );
        let mut unmasked = h.clone();
        accept_encoding(&mut unmasked, &t);
        assert_eq!(unmasked[header::ACCEPT_ENCODING], "zstd, br;q=1, gzip");
        t.masker = Some(
            Masker::new(
                &MaskingConfig {
                    columns: vec![],
                    detectors: vec![DetectorRule::new(Detector::Card, Style::Redact)],
                },
                None,
            )
            .unwrap(),
        );
        let mut decode = h.clone();
        accept_encoding(&mut decode, &t);
        assert_eq!(decode[header::ACCEPT_ENCODING], "br;q=1, gzip");
        t.compressed = Compressed::Refuse;
        accept_encoding(&mut h, &t);
        assert_eq!(h[header::ACCEPT_ENCODING], "identity");
    }
}
