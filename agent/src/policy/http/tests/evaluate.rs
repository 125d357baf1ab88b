//! `evaluate_request` and the L4 `evaluate` of http targets.
use std::net::SocketAddr;

use super::policy;
use crate::policy::{
    AMBIGUOUS_REQUEST, DEFAULT_DENY, Decision, DnsTable, MALFORMED_HOST, MALFORMED_METHOD,
    MALFORMED_PATH, NO_REQUEST_RULES, Policy, Protocol, RequestFacts, Verdict,
};

/// Workloads: `etl`, `other`, `reporter` enforce, `auditor` audits. Http targets: `vault`
/// (request rules), `open` (L4 rules only), `bank` (TLS passed through). `web` is tcp.
const POLICY: &str = r#"
[[workload]]
name = "etl"
spiffe_id = "spiffe://example.org/etl"
[workload.selector]
uid = 1000

[[workload]]
name = "auditor"
spiffe_id = "spiffe://example.org/auditor"
mode = "audit"
[workload.selector]
uid = 2000

[[workload]]
name = "other"
spiffe_id = "spiffe://example.org/other"
[workload.selector]
uid = 3000

[[workload]]
name = "reporter"
spiffe_id = "spiffe://example.org/reporter"
[workload.selector]
uid = 4000

[[target]]
name = "vault"
protocol = "http"
addresses = ["127.0.0.1:8200"]
[target.http]
tls = "none"

[[target]]
name = "open"
protocol = "http"
addresses = ["127.0.0.1:8300"]
[target.http]
tls = "none"

[[target]]
name = "bank"
protocol = "http"
addresses = ["127.0.0.1:8443"]
[target.http]
tls = "passthrough"

[[target]]
name = "web"
protocol = "tcp"
addresses = ["127.0.0.1:8080"]

[[rule]]
name = "a-read"
workloads = ["etl"]
targets = ["vault"]
action = "allow"
[rule.http]
methods = ["GET", "list", "GET"]
hosts = ["vault.internal", "127.0.0.1"]
paths = ["/v1/secret/data/etl/**", "/v1/secret/data/etl"]

[[rule]]
name = "b-no-sys"
workloads = ["*"]
targets = ["vault"]
action = "deny"
[rule.http]
paths = ["/v1/sys", "/v1/sys/**"]

[[rule]]
name = "c-approve-deletes"
workloads = ["etl"]
targets = ["vault"]
action = "approve"
[rule.http]
methods = ["DELETE"]
path_prefix = ["/v1/secret/data/etl/"]

[[rule]]
name = "d-batch-writes"
workloads = ["etl"]
targets = ["vault"]
action = "allow"
[rule.http]
methods = ["POST", "PUT"]
path_prefix = ["/v1/secret/data/etl/"]
headers = { "X-Request-Kind" = "batch" }

[[rule]]
name = "e-versions"
workloads = ["etl"]
targets = ["vault"]
action = "allow"
[rule.http]
methods = ["GET"]
path_regex = "/v1/secret/metadata/etl/[a-z]+"
query = { version = "[0-9]*" }

[[rule]]
name = "f-no-wrapping"
workloads = ["*"]
targets = ["vault"]
action = "deny"
[rule.http]
headers = { "x-vault-wrap-ttl" = "*" }

[[rule]]
name = "g-audit-reads"
workloads = ["auditor"]
targets = ["vault"]
action = "allow"
[rule.http]
methods = ["GET"]

[[rule]]
name = "h-other-not-at-all"
workloads = ["other"]
targets = ["vault"]
action = "deny"

[[rule]]
name = "i-other-reads"
workloads = ["other"]
targets = ["vault"]
action = "allow"
[rule.http]
methods = ["GET"]

[[rule]]
name = "j-approve-staging-deletes"
workloads = ["etl"]
targets = ["vault"]
action = "approve"
[rule.http]
methods = ["DELETE"]
path_prefix = ["/v1/kv/"]
headers = { "X-Env" = "staging" }

[[rule]]
name = "k-reporter-no-deletes"
workloads = ["reporter"]
targets = ["vault"]
action = "deny"
[rule.http]
methods = ["DELETE"]

[[rule]]
name = "l-open"
workloads = ["etl"]
targets = ["open"]
action = "allow"

[[rule]]
name = "m-bank"
workloads = ["etl"]
targets = ["bank"]
action = "allow"
"#;

/// One request case: who, where, the request, and the expected (verdict, rule, enforced).
struct Case {
    workload: &'static str,
    target: &'static str,
    method: &'static str,
    host: &'static str,
    path: &'static str,
    query: &'static [(&'static str, &'static str)],
    headers: &'static [(&'static str, &'static str)],
    want: (Verdict, &'static str, bool),
}

/// A case of `etl` on `vault`, host `vault.internal:8200`, no query, no header.
const fn etl(
    method: &'static str,
    path: &'static str,
    want: (Verdict, &'static str, bool),
) -> Case {
    Case {
        workload: "etl",
        target: "vault",
        method,
        host: "vault.internal:8200",
        path,
        query: &[],
        headers: &[],
        want,
    }
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Calls `f` with the request of case `c`.
fn with_facts<T>(c: &Case, f: impl FnOnce(&RequestFacts<'_>) -> T) -> T {
    let (query, headers) = (owned(c.query), owned(c.headers));
    f(&RequestFacts {
        method: c.method,
        host: c.host,
        path: c.path,
        query: &query,
        headers: &headers,
    })
}

fn run(p: &Policy, c: &Case) -> Decision {
    with_facts(c, |facts| {
        p.evaluate_request(p.workload(c.workload).unwrap(), c.target, facts)
    })
}

#[test]
fn request_table() {
    use Verdict::*;
    let p = policy(POLICY);
    let dd = DEFAULT_DENY;
    let cases = [
        // Allow: method, host (port stripped) and path glob.
        etl("GET", "/v1/secret/data/etl/db", (Allow, "a-read", true)),
        etl("GET", "/v1/secret/data/etl/a/b/c", (Allow, "a-read", true)),
        etl("GET", "/v1/secret/data/etl", (Allow, "a-read", true)),
        // Methods compare case-insensitively; custom methods are tokens like any other.
        etl("get", "/v1/secret/data/etl/db", (Allow, "a-read", true)),
        etl("LIST", "/v1/secret/data/etl/", (Allow, "a-read", true)),
        etl("HEAD", "/v1/secret/data/etl/db", (Deny, dd, true)),
        etl("GET", "/v1/secret/data/other/db", (Deny, dd, true)),
        etl("GET", "/v1/secret/data/etlx", (Deny, dd, true)),
        // Dot segments are refused whatever they lead to: the request goes upstream as sent,
        // and an upstream that routes before it resolves them would act on another path.
        etl(
            "GET",
            "/v1/secret/data/etl/../../../sys/seal-status",
            (Deny, MALFORMED_PATH, true),
        ),
        etl(
            "GET",
            "/v1/secret/data/etl/%2e%2e/%2E%2E/%2e./sys/raw",
            (Deny, MALFORMED_PATH, true),
        ),
        etl("GET", "//v1//sys//health", (Deny, "b-no-sys", true)),
        etl("GET", "/v1/%73ys/health", (Deny, "b-no-sys", true)),
        etl("GET", "/v1/./sys", (Deny, MALFORMED_PATH, true)),
        etl(
            "GET",
            "/v1/secret/data/etl/..%2F..%2F..%2Fsys",
            (Deny, MALFORMED_PATH, true),
        ),
        etl(
            "GET",
            "/v1/secret/data/etl/..;/x",
            (Deny, MALFORMED_PATH, true),
        ),
        etl(
            "GET",
            "/../v1/secret/data/etl/x",
            (Deny, MALFORMED_PATH, true),
        ),
        etl("GET", "v1/secret/data/etl/x", (Deny, MALFORMED_PATH, true)),
        etl(
            "GET",
            "/v1/secret/data/etl/a/../b",
            (Deny, MALFORMED_PATH, true),
        ),
        etl("GET", "/v1/sys;x/seal", (Deny, MALFORMED_PATH, true)),
        // Hosts: globs on the normalized host.
        Case {
            host: "VAULT.Internal.",
            ..etl("GET", "/v1/secret/data/etl/db", (Allow, "a-read", true))
        },
        Case {
            host: "127.0.0.1:8200",
            ..etl("GET", "/v1/secret/data/etl/db", (Allow, "a-read", true))
        },
        Case {
            host: "evil.example",
            ..etl("GET", "/v1/secret/data/etl/db", (Deny, dd, true))
        },
        Case {
            host: "",
            ..etl("GET", "/v1/secret/data/etl/db", (Deny, dd, true))
        },
        // Approve beats allow; allow without approve.
        etl(
            "DELETE",
            "/v1/secret/data/etl/x",
            (Approve, "c-approve-deletes", true),
        ),
        etl("DELETE", "/v1/secret/data/other", (Deny, dd, true)),
        // Headers: present and, for an allow rule, every value matching.
        Case {
            headers: &[("x-request-kind", "batch")],
            ..etl(
                "POST",
                "/v1/secret/data/etl/x",
                (Allow, "d-batch-writes", true),
            )
        },
        Case {
            headers: &[("X-REQUEST-KIND", "batch")],
            ..etl(
                "PUT",
                "/v1/secret/data/etl/x",
                (Allow, "d-batch-writes", true),
            )
        },
        etl("POST", "/v1/secret/data/etl/x", (Deny, dd, true)),
        Case {
            headers: &[("x-request-kind", "Batch")],
            ..etl("POST", "/v1/secret/data/etl/x", (Deny, dd, true))
        },
        Case {
            headers: &[
                ("x-request-kind", "batch"),
                ("x-request-kind", "interactive"),
            ],
            ..etl("POST", "/v1/secret/data/etl/x", (Deny, dd, true))
        },
        // Query: present and every value matching; the regex matches the whole path.
        Case {
            query: &[("version", "3")],
            ..etl(
                "GET",
                "/v1/secret/metadata/etl/db",
                (Allow, "e-versions", true),
            )
        },
        Case {
            query: &[("version", "3"), ("version", "x")],
            ..etl("GET", "/v1/secret/metadata/etl/db", (Deny, dd, true))
        },
        Case {
            query: &[("Version", "3")],
            ..etl("GET", "/v1/secret/metadata/etl/db", (Deny, dd, true))
        },
        etl("GET", "/v1/secret/metadata/etl/db", (Deny, dd, true)),
        Case {
            query: &[("version", "3")],
            ..etl("GET", "/v1/secret/metadata/etl/db/x", (Deny, dd, true))
        },
        Case {
            query: &[("version", "3")],
            ..etl("GET", "/x/v1/secret/metadata/etl/db", (Deny, dd, true))
        },
        // A deny rule hits on one value of a header among several.
        Case {
            headers: &[("accept", "*/*"), ("X-Vault-Wrap-TTL", "60s")],
            ..etl(
                "GET",
                "/v1/secret/data/etl/db",
                (Deny, "f-no-wrapping", true),
            )
        },
        // A header named with `_` for `-` is that header to a CGI-style upstream.
        Case {
            headers: &[("X_Vault_Wrap_TTL", "60s")],
            ..etl(
                "GET",
                "/v1/secret/data/etl/db",
                (Deny, "f-no-wrapping", true),
            )
        },
        // An allow needs the header as the rule spells it: an upstream that does not fold
        // names does not see `X_Request_Kind`; every spelling's values must match.
        Case {
            headers: &[("X_Request_Kind", "batch")],
            ..etl("POST", "/v1/secret/data/etl/x", (Deny, dd, true))
        },
        Case {
            headers: &[("x-request-kind", "batch"), ("X_Request_Kind", "other")],
            ..etl("POST", "/v1/secret/data/etl/x", (Deny, dd, true))
        },
        Case {
            headers: &[("x-request-kind", "batch")],
            ..etl(
                "POST",
                "/v1/secret/data/etl/x",
                (Allow, "d-batch-writes", true),
            )
        },
        // Parameters as PHP reads their names: for an allow, the rule's spelling must be there
        // and every spelling's values must match.
        Case {
            query: &[("version", "3"), (" version", "x")],
            ..etl("GET", "/v1/secret/metadata/etl/db", (Deny, dd, true))
        },
        // `;` separates parameters for some servers: every value they read must match.
        Case {
            query: &[("version", "3;version=x")],
            ..etl("GET", "/v1/secret/metadata/etl/db", (Deny, dd, true))
        },
        Case {
            query: &[("version", "3"), ("Version", "x")],
            ..etl("GET", "/v1/secret/metadata/etl/db", (Deny, dd, true))
        },
        Case {
            query: &[("version", "3"), ("version[]", "x")],
            ..etl("GET", "/v1/secret/metadata/etl/db", (Deny, dd, true))
        },
        // An approve that grants the request (no allow matches) must match as an allow does.
        Case {
            headers: &[("X-Env", "prod"), ("X_Env", "staging")],
            ..etl("DELETE", "/v1/kv/x", (Deny, dd, true))
        },
        Case {
            headers: &[("X-Env", "staging")],
            ..etl(
                "DELETE",
                "/v1/kv/x",
                (Approve, "j-approve-staging-deletes", true),
            )
        },
        Case {
            headers: &[("X-Env", "staging"), ("X-Env", "prod")],
            ..etl("DELETE", "/v1/kv/x", (Deny, dd, true))
        },
        Case {
            headers: &[("x-http-method-override", "DELETE, PUT")],
            ..etl("GET", "/v1/secret/data/etl/db", (Deny, dd, true))
        },
        Case {
            headers: &[("x-http-method-override", "DEL ETE")],
            ..etl(
                "GET",
                "/v1/secret/data/etl/db",
                (Deny, MALFORMED_METHOD, true),
            )
        },
        // Among denials, the one a rule names is reported, not `default-deny`.
        Case {
            headers: &[("x-original-url", "/v1/sys/seal")],
            ..etl("PATCH", "/v1/secret/data/etl/db", (Deny, "b-no-sys", true))
        },
        // Headers and `_method` an upstream may read as the method, path or host: each
        // reading is decided on, the strictest stands.
        Case {
            headers: &[("X-HTTP-Method-Override", "PUT")],
            ..etl("GET", "/v1/secret/data/etl/db", (Deny, dd, true))
        },
        Case {
            headers: &[("x-http-method-override", "list")],
            ..etl("GET", "/v1/secret/data/etl/db", (Allow, "a-read", true))
        },
        Case {
            headers: &[("x-method-override", "DELETE")],
            ..etl(
                "GET",
                "/v1/secret/data/etl/db",
                (Approve, "c-approve-deletes", true),
            )
        },
        Case {
            query: &[("_method", "DELETE")],
            ..etl(
                "GET",
                "/v1/secret/data/etl/x",
                (Approve, "c-approve-deletes", true),
            )
        },
        // Express's `qs` reads `[_method]` as `_method`, Rack 2 `_method]`.
        Case {
            query: &[("[_method]", "DELETE")],
            ..etl(
                "GET",
                "/v1/secret/data/etl/x",
                (Approve, "c-approve-deletes", true),
            )
        },
        Case {
            query: &[("_method]", "DELETE")],
            ..etl(
                "GET",
                "/v1/secret/data/etl/x",
                (Approve, "c-approve-deletes", true),
            )
        },
        Case {
            headers: &[("X-Original-URL", "/v1/sys/seal")],
            ..etl("GET", "/v1/secret/data/etl/db", (Deny, "b-no-sys", true))
        },
        Case {
            headers: &[("x-rewrite-url", "/v1/secret/data/etl/../../../sys")],
            ..etl(
                "GET",
                "/v1/secret/data/etl/db",
                (Deny, MALFORMED_PATH, true),
            )
        },
        // The path a header gives carries its own query into the decision.
        Case {
            query: &[("version", "3")],
            headers: &[("x-original-url", "/v1/secret/metadata/etl/db?version=x")],
            ..etl("GET", "/v1/secret/metadata/etl/db", (Deny, dd, true))
        },
        Case {
            headers: &[("X-Forwarded-Host", "other.internal")],
            ..etl("GET", "/v1/secret/data/etl/db", (Deny, dd, true))
        },
        Case {
            headers: &[("forwarded", "for=10.0.0.1;host=127.0.0.1:8200")],
            ..etl("GET", "/v1/secret/data/etl/db", (Allow, "a-read", true))
        },
        Case {
            headers: &[("x-host", "vault.internal:@other.internal")],
            ..etl(
                "GET",
                "/v1/secret/data/etl/db",
                (Deny, MALFORMED_HOST, true),
            )
        },
        Case {
            headers: &[
                ("x-http-method-override", "A"),
                ("x-http-method", "B"),
                ("x-method-override", "C"),
                ("x-forwarded-host", "a, b, c, d"),
            ],
            ..etl(
                "GET",
                "/v1/secret/data/etl/db",
                (Deny, AMBIGUOUS_REQUEST, true),
            )
        },
        // Audit mode: recorded, not enforced.
        Case {
            workload: "auditor",
            headers: &[("x-original-url", "/v1/sys/seal")],
            ..etl("GET", "/anything", (Deny, "b-no-sys", false))
        },
        Case {
            workload: "auditor",
            ..etl("DELETE", "/v1/sys/seal", (Deny, "b-no-sys", false))
        },
        Case {
            workload: "auditor",
            ..etl("GET", "/anything", (Allow, "g-audit-reads", false))
        },
        Case {
            workload: "auditor",
            ..etl("GET", "/a/%2F", (Deny, MALFORMED_PATH, false))
        },
        // A request rule decides requests even where an L4 deny refuses the connection.
        Case {
            workload: "other",
            ..etl("GET", "/v1/kv/x", (Allow, "i-other-reads", true))
        },
        // Only deny request rules: nothing is allowed.
        Case {
            workload: "reporter",
            ..etl("GET", "/v1/kv/x", (Deny, dd, true))
        },
        // No request rule for (workload, target): every request, even a malformed path.
        Case {
            target: "open",
            ..etl("DELETE", "/v1/sys/x", (Allow, NO_REQUEST_RULES, true))
        },
        Case {
            target: "open",
            ..etl("GET", "/a%2Fb", (Allow, NO_REQUEST_RULES, true))
        },
        Case {
            target: "open",
            headers: &[("x-http-method-override", "DELETE")],
            ..etl("GET", "/v1/sys/x", (Allow, NO_REQUEST_RULES, true))
        },
    ];
    let mut wrong = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let d = run(&p, c);
        let got = (d.verdict, d.rule.as_str(), d.enforced);
        if got != c.want {
            wrong.push(format!(
                "case {i}: {} {} {} {:?} {:?}: got {got:?}, want {:?}",
                c.workload, c.method, c.path, c.query, c.headers, c.want
            ));
        }
        let t = d.target.unwrap();
        assert_eq!((t.name.as_str(), t.protocol), (c.target, Protocol::Http));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The record and the 403 name the reading that decided, when it is not the request as sent;
/// among readings as strict, the first decides (the request's own comes first).
#[test]
fn the_deciding_reading_is_named() {
    use Verdict::*;
    let p = policy(POLICY);
    let dd = DEFAULT_DENY;
    let data = "/v1/secret/data/etl/db";
    let cases: [(Case, Option<&str>); 7] = [
        (etl("GET", data, (Allow, "a-read", true)), None),
        (etl("HEAD", data, (Deny, dd, true)), None),
        (
            Case {
                headers: &[("x-http-method-override", "DELETE, PUT")],
                ..etl("GET", data, (Deny, dd, true))
            },
            Some("PUT vault.internal/v1/secret/data/etl/db (method from x-http-method-override)"),
        ),
        (
            Case {
                headers: &[("X_Method_Override", "DELETE")],
                ..etl("GET", data, (Approve, "c-approve-deletes", true))
            },
            Some("DELETE vault.internal/v1/secret/data/etl/db (method from x-method-override)"),
        ),
        // The request as sent is denied by default, the header's path by a named rule.
        (
            Case {
                headers: &[("x-original-url", "/v1/sys/seal")],
                ..etl("PATCH", data, (Deny, "b-no-sys", true))
            },
            Some("PATCH vault.internal/v1/sys/seal (path and query from x-original-url)"),
        ),
        // Allowed on every reading: the request's own reading reports.
        (
            Case {
                headers: &[("x-http-method-override", "list")],
                ..etl("GET", data, (Allow, "a-read", true))
            },
            None,
        ),
        // No reading to name: the override is not a method.
        (
            Case {
                headers: &[("x-http-method-override", "DEL ETE")],
                ..etl("GET", data, (Deny, MALFORMED_METHOD, true))
            },
            None,
        ),
    ];
    for (c, want) in &cases {
        let d = with_facts(c, |facts| {
            p.decide_request(p.workload(c.workload).unwrap(), c.target, facts)
        });
        assert_eq!(
            (
                d.decision.verdict,
                d.decision.rule.as_str(),
                d.decision.enforced
            ),
            c.want,
            "{} {:?}",
            c.method,
            c.headers
        );
        assert_eq!(d.decision, run(&p, c), "evaluate_request agrees");
        assert_eq!(d.read_as.as_deref(), *want, "{} {:?}", c.method, c.headers);
    }
}

#[test]
fn request_on_unknown_target_is_denied() {
    let p = policy(POLICY);
    let c = Case {
        target: "nope",
        ..etl("GET", "/", (Verdict::Deny, DEFAULT_DENY, true))
    };
    let d = run(&p, &c);
    assert_eq!(
        (d.verdict, d.rule.as_str(), d.target),
        (Verdict::Deny, DEFAULT_DENY, None)
    );
}

#[test]
fn approve_is_not_permitted_until_approved() {
    let p = policy(POLICY);
    let d = run(
        &p,
        &etl(
            "DELETE",
            "/v1/secret/data/etl/x",
            (Verdict::Approve, "", true),
        ),
    );
    assert!(!d.permits());
    assert_eq!(d.label(), "approve");
}

#[test]
fn l4_with_request_rules() {
    use Verdict::*;
    let p = policy(POLICY);
    let dns = DnsTable::default();
    let cases = [
        // Request allow and approve rules allow the connection; request deny rules do not count.
        ("etl", "127.0.0.1:8200", (Allow, "a-read")),
        ("auditor", "127.0.0.1:8200", (Allow, "g-audit-reads")),
        // An L4 deny wins over request allow rules.
        ("other", "127.0.0.1:8200", (Deny, "h-other-not-at-all")),
        // Only request deny rules: default deny.
        ("reporter", "127.0.0.1:8200", (Deny, DEFAULT_DENY)),
        ("etl", "127.0.0.1:8300", (Allow, "l-open")),
        ("etl", "127.0.0.1:8443", (Allow, "m-bank")),
        ("reporter", "127.0.0.1:8443", (Deny, DEFAULT_DENY)),
    ];
    for (w, dst, want) in cases {
        let dst: SocketAddr = dst.parse().unwrap();
        let d = p.evaluate(p.workload(w).unwrap(), dst, &dns);
        assert_eq!((d.verdict, d.rule.as_str()), want, "{w} -> {dst}");
        assert_eq!(d.target.unwrap().protocol, Protocol::Http);
    }
}

#[test]
fn passthrough_sni_and_masks() {
    let text = r#"
[[target]]
name = "api"
protocol = "http"
addresses = ["127.0.0.1:443"]
[target.http]
tls = "terminate"
passthrough_sni = ["*.Bank.example", "pay.example"]
[target.http.masking]
json_keys = ["ssn"]
"#;
    let p = policy(text);
    let h = p.target("api").unwrap().http.as_ref().unwrap();
    let cases = [
        (Some("www.bank.example"), true),
        (Some("WWW.BANK.EXAMPLE."), true),
        (Some("a.b.bank.example"), true),
        (Some("bank.example"), false),
        (Some("pay.example"), true),
        (Some("api.example"), false),
        (None, false),
    ];
    for (sni, want) in cases {
        assert_eq!(h.passes_through(sni), want, "{sni:?}");
    }
    assert!(h.masks());
    use crate::policy::JsonStep::Key;
    assert_eq!(
        h.json_key(&[Key("a"), Key("SSN")]).map(|k| k.as_str()),
        Some("ssn")
    );
    assert!(h.json_key(&[Key("name")]).is_none());
}

#[test]
fn path_glob_edges() {
    use Verdict::*;
    let text = r#"
[[workload]]
name = "etl"
spiffe_id = "spiffe://example.org/etl"
[workload.selector]
uid = 1000

[[target]]
name = "api"
protocol = "http"
addresses = ["127.0.0.1:8200"]
[target.http]
tls = "none"

[[rule]]
name = "tree"
workloads = ["etl"]
targets = ["api"]
action = "allow"
[rule.http]
paths = ["/tree/**", "/one/*", "/Case"]

[[rule]]
name = "prefix"
workloads = ["etl"]
targets = ["api"]
action = "allow"
[rule.http]
path_prefix = ["/v1/sys"]
"#;
    let p = policy(text);
    let dd = DEFAULT_DENY;
    let cases = [
        ("/tree/a", (Allow, "tree")),
        ("/tree/a/b/c", (Allow, "tree")),
        ("/tree", (Deny, dd)),
        ("/tree/", (Allow, "tree")),
        ("/treex/a", (Deny, dd)),
        ("/one/a", (Allow, "tree")),
        ("/one/", (Allow, "tree")),
        ("/one/a/b", (Deny, dd)),
        ("/Case", (Allow, "tree")),
        ("/case", (Deny, dd)),
        ("/v1/sys", (Allow, "prefix")),
        ("/v1/system", (Allow, "prefix")),
        ("/v1/sy", (Deny, dd)),
    ];
    for (path, want) in cases {
        let c = Case {
            target: "api",
            ..etl("GET", path, (want.0, want.1, true))
        };
        let d = run(&p, &c);
        assert_eq!((d.verdict, d.rule.as_str()), want, "{path}");
    }
}
