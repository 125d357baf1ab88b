//! Root suite: HTTP(S) through tollgate (issue 4). A real nginx per test (Debian's, on loopback:
//! plain, TLS with a test CA, HTTP/2, gzip) and an in-process hyper server (streamed uploads and
//! downloads, WebSocket), reached by real, unmodified clients (curl, the system Python's urllib
//! and a raw-socket WebSocket client, `openssl s_client`) from an enrolled cgroup. tollgate
//! decides each request, injects credentials the clients never had, strips theirs, masks card
//! numbers in responses (gzip included), terminates or originates TLS with upstream
//! verification, and audits every request. Needs root, cgroup v2, bpffs, curl with HTTP/2,
//! nginx, openssl and /usr/bin/python3 (see tests/README.md).
mod harness;
#[path = "http/mod.rs"]
mod web;

use serde_json::Value;
use web::{
    Curl, CurlOut, Fixture, SERVER_NAME,
    backend::{pattern, sha256_hex},
    client::{requests_after, s_client, stalled_form, urllib, websocket},
    nginx::{CARDS, HELLO},
    policy::{
        BACKEND, DEAD_PASSTHROUGH, DEAD_WEB, NO_ADMIN, WEB, WEB_BAD_CA, WEB_ORIGINATE, WEB_READS,
        WEB_TLS, WORKLOAD,
    },
    requests,
};

/// Asserts that a curl run got a response with `status`.
fn assert_status(out: &CurlOut, status: u16) {
    assert_eq!(
        (out.code, out.status),
        (0, status),
        "curl exit {} status {}: {out:?}",
        out.code,
        out.status
    );
}

/// The nginx access log line of the request that reached it from tollgate for `path` (exactly
/// one), checked to come from another port than the client's own (a proxy hop in between).
fn one_line_for(fx: &Fixture, path: &str, client_port: u16) -> String {
    let lines = fx.nginx.wait_requests(&format!(" {path} "), 1);
    assert_eq!(lines.len(), 1, "nginx lines for {path}: {lines:?}");
    let line = lines[0].clone();
    let port: u16 = line
        .split_whitespace()
        .next()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no client port in {line}"));
    assert_ne!(port, client_port, "nginx saw the client's own port: {line}");
    line
}

/// The source port nginx saw for its one request whose line holds `needle`.
fn source_port(fx: &Fixture, needle: &str) -> u16 {
    let lines = fx.nginx.wait_requests(needle, 1);
    assert_eq!(lines.len(), 1, "nginx lines for {needle}: {lines:?}");
    lines[0]
        .split_whitespace()
        .next()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no source port in {}", lines[0]))
}

/// `(method, path, status, decision, rule)` of a recorded request.
fn verdict(r: &Value) -> (String, String, u64, String, String) {
    let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
    (
        s("method"),
        s("path"),
        r["status"].as_u64().unwrap_or(0),
        s("decision"),
        s("rule"),
    )
}

/// Asserts that neither `secret` nor any of `also` appears anywhere in the audit (every
/// session, listed and shown) or in the agent's log.
fn assert_nowhere(fx: &Fixture, secrets: &[&str]) {
    let mut audit = fx.agent.sessions_text();
    for s in fx.agent.sessions() {
        audit.push_str(&fx.show(&s.id()).to_string());
    }
    let log = fx.agent_log();
    for secret in secrets {
        assert!(!audit.contains(secret), "{secret:?} in the audit:\n{audit}");
        assert!(!log.contains(secret), "{secret:?} in the agent log");
    }
}

/// Plain HTTP (`tls = "none"`): curl and Python's urllib reach nginx only through tollgate
/// (nginx sees another source port), get nginx's answer unchanged, and each request is audited
/// in the session's `requests`.
#[test]
fn plain_http_is_proxied_and_every_request_audited() {
    let test = "plain_http_is_proxied_and_every_request_audited";
    let Some(fx) = Fixture::start(test, "http-plain") else {
        return;
    };
    let port = fx.nginx.ports.plain;
    let out = Curl::new(&fx.http(port, "/hello.txt")).run(&fx.app);
    assert_status(&out, 200);
    assert_eq!(out.body, HELLO);
    assert_eq!(out.header("content-length"), Some("17"), "{out:?}");
    let line = one_line_for(&fx, "/hello.txt", out.local_port);
    assert!(
        line.contains("proto=HTTP/1.1") && line.contains("https= "),
        "{line}"
    );

    let session = fx.session_of(out.pid, 1);
    assert_eq!(session["workload"], WORKLOAD, "{session:#}");
    assert_eq!(session["target"], WEB, "{session:#}");
    assert_eq!(session["decision"], "allow", "{session:#}");
    let reqs = requests(&session);
    assert_eq!(reqs.len(), 1, "{session:#}");
    assert_eq!(
        verdict(&reqs[0]),
        (
            "GET".into(),
            "/hello.txt".into(),
            200,
            "allow".into(),
            WEB_READS.into()
        ),
        "{session:#}"
    );
    assert_eq!(reqs[0]["host"], "127.0.0.1", "{session:#}");
    assert_eq!(reqs[0]["bytes_down"], HELLO.len(), "{session:#}");

    // Python: two requests with their query strings (names audited, values not).
    let py = urllib(
        &fx.app,
        &fx.http(port, "/hello.txt?who=python&token=tok-in-query"),
        None,
        &[],
        false,
    );
    assert_eq!(py.status(), 200, "{:?}", py.v);
    assert_eq!(py.body(), HELLO);
    let session = fx.session_of(py.pid, 1);
    let reqs = requests(&session);
    assert_eq!(
        reqs[0]["query"],
        serde_json::json!(["who", "token"]),
        "{session:#}"
    );
    assert!(!session.to_string().contains("tok-in-query"), "{session:#}");
    // The same curl outside the workload goes straight to nginx (its own port in the log).
    let direct = Curl::new(&fx.http(port, "/hello.txt?direct")).run_direct();
    assert_status(&direct, 200);
    let lines = fx.nginx.wait_requests("/hello.txt?direct", 1);
    assert!(
        lines.len() == 1 && lines[0].contains(&format!(":{} ", direct.local_port)),
        "{lines:?}"
    );
}

/// Request rules: a denied path (also reached by `..` or an escape) and a method no rule
/// allows get 403 with a JSON body naming the rule and the workload; nginx never sees them;
/// the audit records the denials. A denial decided by a reading other than the request as sent
/// (an override header) names that reading in the body and the record. An allowed request on
/// the same connection still works.
#[test]
fn denied_requests_get_403_json_and_never_reach_nginx() {
    let test = "denied_requests_get_403_json_and_never_reach_nginx";
    let Some(fx) = Fixture::start(test, "http-deny") else {
        return;
    };
    let port = fx.nginx.ports.plain;
    let method_override = "DELETE 127.0.0.1/hello.txt (method from x-http-method-override)";
    let path_override = "GET 127.0.0.1/admin/secret.txt (path and query from x-original-url)";
    for (path, extra, rule, read_as) in [
        ("/admin/secret.txt", &[][..], NO_ADMIN, None),
        // Sent as is: an upstream that routes before it resolves `..` would act on `/x`.
        (
            "/x/../admin/secret.txt",
            &["--path-as-is"][..],
            "malformed-path",
            None,
        ),
        ("/%61dmin/secret.txt", &[][..], NO_ADMIN, None),
        // nginx reads this Host as `admin.example`, the text after `@` as `hello.example`.
        (
            "/hello.txt",
            &["-H", "Host: admin.example:@hello.example"][..],
            "malformed-host",
            None,
        ),
        ("/hello.txt", &["-X", "DELETE"][..], "default-deny", None),
        // Headers an upstream framework may read as the method, path or host: every reading
        // must be allowed.
        (
            "/hello.txt",
            &["-H", "X-HTTP-Method-Override: DELETE"][..],
            "default-deny",
            Some(method_override),
        ),
        (
            "/hello.txt",
            &["-H", "X-Original-URL: /admin/secret.txt"][..],
            NO_ADMIN,
            Some(path_override),
        ),
        (
            "/hello.txt",
            &["-H", "X-Forwarded-Host: admin.example:@hello.example"][..],
            "malformed-host",
            None,
        ),
    ] {
        let out = Curl::new(&fx.http(port, path)).args(extra).run(&fx.app);
        assert_status(&out, 403);
        assert_eq!(
            out.header("content-type"),
            Some("application/json"),
            "{out:?}"
        );
        let body: Value = serde_json::from_str(&out.body)
            .unwrap_or_else(|e| panic!("403 body is not JSON ({e}): {out:?}"));
        let mut want = serde_json::json!({"error": "denied", "rule": rule, "workload": WORKLOAD});
        let mut error = format!("denied by rule {rule}");
        if let Some(read_as) = read_as {
            want["read_as"] = read_as.into();
            error.push_str(&format!(": read as {read_as}"));
        }
        assert_eq!(body, want, "{path} {extra:?}");
        let session = fx.session_of(out.pid, 1);
        let r = &requests(&session)[0];
        let (_, _, status, decision, got_rule) = verdict(r);
        assert_eq!(
            (status, decision.as_str(), got_rule.as_str()),
            (403, "deny", rule),
            "{session:#}"
        );
        assert_eq!(r["error"], error.as_str(), "{session:#}");
    }
    // Denied, then allowed, on one connection (curl reuses it for the second URL).
    let out = Curl::new(&fx.http(port, "/admin/secret.txt"))
        .args(&[&fx.http(port, "/hello.txt")])
        .run(&fx.app);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.body.ends_with(HELLO), "{out:?}");
    let session = fx.session_of(out.pid, 2);
    let got: Vec<_> = requests(&session).iter().map(verdict).collect();
    assert_eq!(
        got,
        vec![
            (
                "GET".into(),
                "/admin/secret.txt".into(),
                403,
                "deny".into(),
                NO_ADMIN.into()
            ),
            (
                "GET".into(),
                "/hello.txt".into(),
                200,
                "allow".into(),
                WEB_READS.into()
            ),
        ],
        "{session:#}"
    );
    let hello = fx.nginx.wait_requests("/hello.txt", 1);
    let log = fx.nginx.access_log();
    assert!(
        !log.contains("admin") && !log.contains("DELETE"),
        "nginx saw a denied request:\n{log}"
    );
    assert_eq!(hello.len(), 1, "{log}");
}

/// Credentials: tollgate adds the target's bearer token (nginx echoes the Authorization it
/// received) and API key header (the backend records it) to requests that carried none, and
/// replaces the ones a client sends. No credential appears in the audit or the agent's log.
#[test]
fn credentials_are_injected_and_the_clients_own_are_stripped() {
    let test = "credentials_are_injected_and_the_clients_own_are_stripped";
    let Some(fx) = Fixture::start(test, "http-cred") else {
        return;
    };
    let port = fx.nginx.ports.plain;
    // nginx's log shows the credential it received; its answer echoes it, and tollgate redacts
    // it there (`web` masks its bodies).
    let want = "authorization=[Bearer [REDACTED]]";
    let out = Curl::new(&fx.http(port, "/echo-auth")).run(&fx.app);
    assert_status(&out, 200);
    assert!(out.body.starts_with(want), "{out:?}");
    let out = Curl::new(&fx.http(port, "/echo-auth"))
        .args(&[
            "-H",
            "Authorization: Bearer client-token",
            "-H",
            "Proxy-Authorization: Basic Y2xpZW50OnNlY3JldA==",
        ])
        .run(&fx.app);
    assert_status(&out, 200);
    assert!(out.body.starts_with(want), "{out:?}");
    assert!(!out.body.contains("client-token"), "{out:?}");
    let py = urllib(
        &fx.app,
        &fx.http(port, "/echo-auth"),
        None,
        &[("Authorization", "Basic cHk6Y2xpZW50LXB5")],
        false,
    );
    assert_eq!(py.status(), 200, "{:?}", py.v);
    assert!(py.body().starts_with(want), "{:?}", py.v);
    let received = fx.nginx.wait_requests(" /echo-auth ", 3);
    let injected = format!("auth=\"Bearer {}\"", fx.token);
    assert!(
        received.len() == 3 && received.iter().all(|l| l.ends_with(&injected)),
        "{received:?}"
    );

    // The backend's header credential: the client's own X-Api-Key and Authorization removed.
    let out = Curl::new(&fx.backend_url("/headers"))
        .args(&[
            "-H",
            "X-Api-Key: client-key",
            "-H",
            "Authorization: Bearer client-token",
        ])
        .run(&fx.app);
    assert_status(&out, 200);
    let seen = fx.backend.seen_at("/headers");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].header("x-api-key"), Some(fx.api_key.as_str()));
    assert_eq!(seen[0].header("authorization"), None, "{seen:?}");
    assert_eq!(
        seen[0]
            .headers
            .iter()
            .filter(|(n, _)| n == "x-api-key")
            .count(),
        1
    );
    // The audit has the headers curl sent, its credentials redacted (and, below, nowhere).
    let session = fx.session_of(out.pid, 1);
    let headers: Vec<(String, String)> =
        serde_json::from_value(requests(&session)[0]["headers"].clone()).expect("headers");
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(value("x-api-key"), Some("[redacted]"), "{headers:?}");
    assert_eq!(value("authorization"), Some("[redacted]"), "{headers:?}");
    assert!(
        value("user-agent").is_some_and(|v| v.starts_with("curl/")),
        "{headers:?}"
    );
    assert_nowhere(
        &fx,
        &[
            &fx.token,
            &fx.api_key,
            "client-token",
            "client-key",
            "Y2xpZW50OnNlY3JldA",
            "cHk6Y2xpZW50LXB5",
        ],
    );
}

/// Masking: card numbers in a JSON response are masked (by key and by the detector in free
/// text), the length recomputed; a gzip response (nginx compressed it: its log shows the ratio)
/// is decoded, masked and delivered to curl and Python; the audit counts what was masked.
#[test]
fn json_and_gzip_responses_are_masked() {
    let test = "json_and_gzip_responses_are_masked";
    let Some(fx) = Fixture::start(test, "http-mask") else {
        return;
    };
    let port = fx.nginx.ports.plain;
    let masked = ["************1111", "************0004"];
    let check_cards = |body: &str, n: usize| {
        let v: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", &body[..body.len().min(300)]));
        let customers = v["customers"].as_array().expect("customers");
        assert_eq!(customers.len(), n);
        for c in customers {
            assert_eq!(c["card_number"], masked[0], "{c}");
            assert_eq!(c["note"], format!("paid with {}", masked[1]), "{c}");
        }
        for card in CARDS {
            assert!(!body.contains(card), "{card} unmasked");
        }
    };
    let out = Curl::new(&fx.http(port, "/cards.json")).run(&fx.app);
    assert_status(&out, 200);
    check_cards(&out.body, 1);
    assert_eq!(
        out.header("content-length"),
        Some(out.body.len().to_string().as_str()),
        "{out:?}"
    );
    let session = fx.session_of(out.pid, 1);
    let r = &requests(&session)[0];
    assert!(!r["masked"].is_null(), "no masked counts: {session:#}");

    // gzip: curl asks for it; nginx compresses; tollgate decodes, masks and sends identity.
    let out = Curl::new(&fx.http(port, "/gz/cards.json"))
        .args(&["--compressed"])
        .run(&fx.app);
    assert_status(&out, 200);
    check_cards(&out.body, 200);
    assert_eq!(out.header("content-encoding"), None, "{out:?}");
    let line = one_line_for(&fx, "/gz/cards.json", out.local_port);
    let ratio: f64 = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("gzip="))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("nginx did not compress: {line}"));
    assert!(ratio > 2.0, "{line}");
    let session = fx.session_of(out.pid, 1);
    assert!(!requests(&session)[0]["masked"].is_null(), "{session:#}");

    let py = urllib(&fx.app, &fx.http(port, "/gz/cards.json"), None, &[], true);
    assert_eq!(py.status(), 200, "{:?}", py.v);
    check_cards(py.body(), 200);
    let lines = fx.nginx.wait_requests("/gz/cards.json", 2);
    assert_eq!(lines.len(), 2);
    assert!(
        lines.iter().all(|l| !l.contains("gzip=-")),
        "{}",
        fx.nginx.access_log()
    );
}

/// HTTPS terminated by tollgate: curl over HTTP/2 and HTTP/1.1, Python and `openssl s_client`
/// trust tollgate's CA only (nginx's CA and the system store do not verify the leaf they get);
/// tollgate speaks TLS to nginx, verified against nginx's CA, with HTTP/2 when the client chose
/// it; credentials and masking work as in plain HTTP.
#[test]
fn https_terminated_with_http2_and_verified_upstream() {
    let test = "https_terminated_with_http2_and_verified_upstream";
    let Some(fx) = Fixture::start(test, "http-term") else {
        return;
    };
    let port = fx.nginx.ports.tls_h2;
    let ca = fx.tollgate_ca();
    let ca_arg = ca.display().to_string();
    let resolve = Fixture::resolve(port);
    let curl = |path: &str, extra: &[&str]| {
        Curl::new(&fx.https(port, path))
            .args(&[&resolve[0], &resolve[1]])
            .args(extra)
            .run(&fx.app)
    };
    let out = curl("/hello.txt", &["--http2", "--cacert", &ca_arg]);
    assert_status(&out, 200);
    assert_eq!(
        (out.version.as_str(), out.body.as_str()),
        ("2", HELLO),
        "{out:?}"
    );
    let line = one_line_for(&fx, "/hello.txt", out.local_port);
    assert!(
        line.contains("proto=HTTP/2.0") && line.contains("https=on"),
        "upstream not HTTP/2 over TLS: {line}"
    );
    let session = fx.session_of(out.pid, 1);
    assert_eq!(session["target"], WEB_TLS, "{session:#}");
    assert_eq!(
        verdict(&requests(&session)[0]),
        (
            "GET".into(),
            "/hello.txt".into(),
            200,
            "allow".into(),
            "no-request-rules".into()
        ),
        "{session:#}"
    );
    assert_eq!(requests(&session)[0]["host"], SERVER_NAME, "{session:#}");

    let out = curl("/echo-auth", &["--http1.1", "--cacert", &ca_arg]);
    assert_status(&out, 200);
    assert_eq!(out.version, "1.1", "{out:?}");
    // Injected (nginx's log), and redacted where nginx echoes it back.
    assert!(
        out.body.starts_with("authorization=[Bearer [REDACTED]]"),
        "{out:?}"
    );
    let line = one_line_for(&fx, "/echo-auth", out.local_port);
    assert!(
        line.ends_with(&format!("auth=\"Bearer {}\"", fx.token)),
        "{line}"
    );
    assert!(line.contains("proto=HTTP/1.1 "), "{line}");
    let out = curl("/cards.json", &["--http2", "--cacert", &ca_arg]);
    assert_status(&out, 200);
    assert!(
        out.body.contains("************1111") && !out.body.contains(CARDS[0]),
        "{out:?}"
    );

    // The leaf is tollgate's: nginx's CA and the system store do not verify it (exit 60).
    let nginx_ca = fx.certs.ca.display().to_string();
    for extra in [&["--cacert", nginx_ca.as_str()][..], &[][..]] {
        let out = curl("/hello.txt?untrusted", extra);
        assert_eq!(out.code, 60, "{extra:?}: {out:?}");
    }
    assert!(fx.nginx.requests_with("untrusted").is_empty());
    let s = s_client(&fx.app, port, SERVER_NAME, &ca);
    assert!(
        s.text.contains("Verify return code: 0 (ok)")
            && s.text.contains("i:CN = tollgate local CA")
            && s.text.contains(&format!("s:CN = {SERVER_NAME}")),
        "{}",
        s.text
    );
    let s = s_client(&fx.app, port, SERVER_NAME, &fx.certs.ca);
    assert!(!s.text.contains("Verify return code: 0 (ok)"), "{}", s.text);

    // Python, by IP address (no SNI): a leaf for 127.0.0.1, nginx verified by its IP SAN.
    let py = urllib(
        &fx.app,
        &format!("https://127.0.0.1:{port}/hello.txt?python"),
        Some(&ca),
        &[],
        false,
    );
    assert_eq!(py.status(), 200, "{:?}", py.v);
    assert_eq!(py.body(), HELLO);
    assert_eq!(fx.nginx.wait_requests("/hello.txt?python", 1).len(), 1);
}

/// A terminated target whose `ca_file` did not sign nginx's certificate: tollgate refuses the
/// upstream (502 to the client, the reason in the audit) and nginx answers no request.
#[test]
fn an_upstream_that_fails_verification_gets_no_request() {
    let test = "an_upstream_that_fails_verification_gets_no_request";
    let Some(fx) = Fixture::start(test, "http-badca") else {
        return;
    };
    let port = fx.nginx.ports.tls_bad;
    let resolve = Fixture::resolve(port);
    let ca = fx.tollgate_ca().display().to_string();
    let out = Curl::new(&fx.https(port, "/hello.txt"))
        .args(&[&resolve[0], &resolve[1], "--cacert", &ca])
        .run(&fx.app);
    assert_status(&out, 502);
    assert!(
        !out.body.contains(&fx.token) && !out.body.contains("hello"),
        "{out:?}"
    );
    let session = fx.session_of(out.pid, 1);
    assert_eq!(session["target"], WEB_BAD_CA, "{session:#}");
    let r = &requests(&session)[0];
    assert_eq!(r["status"], 502, "{session:#}");
    let error = r["error"].as_str().unwrap_or("");
    assert!(error.contains("upstream"), "{session:#}");
    assert!(
        !fx.nginx.access_log().contains(&format!("port={port} ")),
        "nginx answered a request on the bad-CA port:\n{}",
        fx.nginx.access_log()
    );
}

/// SNI pass-through to an address where nothing listens: tollgate reads the ClientHello, cannot
/// connect, resets the client's connection and records why; the agent serves the next request.
#[test]
fn a_passthrough_target_that_refuses_resets_the_client_and_is_recorded() {
    let test = "a_passthrough_target_that_refuses_resets_the_client_and_is_recorded";
    let Some(fx) = Fixture::start(test, "http-deadpass") else {
        return;
    };
    let port = fx.dead.port();
    let resolve = Fixture::resolve(port);
    let ca = fx.tollgate_ca().display().to_string();
    let out = Curl::new(&fx.https(port, "/hello.txt"))
        .args(&[&resolve[0], &resolve[1], "--cacert", &ca])
        .run(&fx.app);
    assert!(out.code != 0 && out.status == 0, "{out:?}");
    let s = fx
        .agent
        .wait_ended(&format!("pid {}", out.pid), |s| s.pid() == Some(out.pid));
    assert_eq!(s.target(), DEAD_PASSTHROUGH, "{s:?}");
    assert_eq!(s.decision(), "allow", "{s:?}");
    assert_eq!(s.str("end_reason"), Some("upstream-refused"), "{s:?}");
    let next = Curl::new(&fx.http(fx.nginx.ports.plain, "/hello.txt")).run(&fx.app);
    assert_status(&next, 200);
}

/// A plain http target whose upstream refuses: the hand-off lets the client connection in, the
/// request gets a 502 (not a reset) with the reason on its record, and `upstream_failures`
/// counts the failed connect.
#[test]
fn an_unreachable_http_upstream_answers_502_and_is_counted() {
    let test = "an_unreachable_http_upstream_answers_502_and_is_counted";
    let Some(fx) = Fixture::start(test, "http-deadweb") else {
        return;
    };
    let failures = |status: &Value| status["counters"]["upstream_failures"].as_u64();
    let before = failures(&fx.agent.status()).expect("upstream_failures counter");
    let out = Curl::new(&fx.http(fx.dead_web.port(), "/hello.txt")).run(&fx.app);
    assert_status(&out, 502);
    let session = fx.session_of(out.pid, 1);
    assert_eq!(session["target"], DEAD_WEB, "{session:#}");
    let r = &requests(&session)[0];
    assert_eq!(r["status"], 502, "{session:#}");
    assert!(
        r["error"].as_str().unwrap_or("").contains("upstream"),
        "{session:#}"
    );
    let after = failures(&fx.agent.status()).expect("upstream_failures counter");
    assert!(after > before, "upstream_failures {before} -> {after}");
}

/// `audit_failure = "open"`: a connection whose record the audit store could not commit (its
/// database locked past the writer's 5 s busy timeout) is let through unrecorded. Its requests
/// are served, and their records are never sent: they would reference a connection row that
/// does not exist, fail the foreign key, and make the writer retry its batch one record at a
/// time (each counted in `audit_failed`). A `begin` waits for its commit only once a write has
/// failed (before, it is spooled): a first connection, recorded through the spool, makes the
/// writer fail; its records are kept and committed once the lock is gone.
#[test]
fn an_unrecorded_connection_sends_no_request_records() {
    let test = "an_unrecorded_connection_sends_no_request_records";
    let Some(fx) = Fixture::start_configured(test, "http-unrec", "audit_failure = \"open\"\n")
    else {
        return;
    };
    let failed = || {
        fx.agent.status()["counters"]["audit_failed"]
            .as_u64()
            .expect("audit_failed counter")
    };
    let go = fx.agent.scratch().join("go");
    let lock = rusqlite::Connection::open(fx.agent.state_dir.join("audit.db")).expect("open db");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("lock audit db");
    let port = fx.nginx.ports.plain;
    let first = Curl::new(&fx.http(port, "/hello.txt?first")).run(&fx.app);
    assert_status(&first, 200);
    let write_failed = harness::poll(std::time::Duration::from_secs(30), || {
        (fx.agent.status()["counters"]["audit_write_errors"].as_u64() >= Some(1)).then_some(())
    });
    assert!(write_failed.is_some(), "{}", fx.agent.log_tail());
    let (py, let_through, failed_then) = std::thread::scope(|s| {
        let client =
            s.spawn(|| requests_after(&fx.app, port, &go, &["/hello.txt?a", "/hello.txt?b"]));
        let let_through = harness::poll(std::time::Duration::from_secs(30), || {
            fx.agent_log()
                .contains("connection let through (audit_failure = open)")
                .then_some(())
        });
        lock.execute_batch("ROLLBACK").expect("unlock audit db");
        let failed_then = failed();
        std::fs::write(&go, "").expect("go");
        (client.join().expect("client"), let_through, failed_then)
    });
    assert!(
        let_through.is_some(),
        "never let through: {}",
        fx.agent.log_tail()
    );
    assert_eq!(
        py.v["statuses"],
        serde_json::json!([200, 200]),
        "{:?}",
        py.v
    );
    fx.nginx.wait_requests("/hello.txt?b", 1);

    // A recorded connection after it: once its record is in, the writer has taken every
    // record sent before.
    let out = Curl::new(&fx.http(port, "/hello.txt?after")).run(&fx.app);
    assert_status(&out, 200);
    fx.session_of(out.pid, 1);
    assert_eq!(
        failed(),
        failed_then,
        "records of the unrecorded connection were sent"
    );
    assert!(
        !fx.agent_log().contains("audit batch rejected"),
        "{}",
        fx.agent.log_tail()
    );
    assert!(
        fx.agent.sessions().iter().all(|s| s.pid() != Some(py.pid)),
        "{}",
        fx.agent.sessions_text()
    );
    // The first connection's records, kept through the failed writes.
    let session = fx.session_of(first.pid, 1);
    assert_eq!(requests(&session).len(), 1, "{session:#}");
}

/// `audit_failure = "open"`: a request that finds no room in the audit queue for the whole
/// `audit_wait` is served (not refused with 503), with a warning. The test locks the audit
/// database once the connection is recorded, lets the client send its requests on that
/// connection, and lets the lock go once a request was let through that way.
#[test]
fn an_open_store_lets_requests_through_while_it_is_behind() {
    let test = "an_open_store_lets_requests_through_while_it_is_behind";
    let config = "audit_queue = 70\naudit_wait = \"300ms\"\naudit_failure = \"open\"\n";
    let Some(fx) = Fixture::start_configured(test, "http-openbehind", config) else {
        return;
    };
    let counter = |name: &str| {
        fx.agent.status()["counters"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name}"))
    };
    let go = fx.agent.scratch().join("go");
    let port = fx.nginx.ports.plain;
    let paths: Vec<String> = (0..30).map(|i| format!("/hello.txt?n={i}")).collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let (py, let_through) = std::thread::scope(|s| {
        let client = s.spawn(|| requests_after(&fx.app, port, &go, &paths));
        // The connection's row is committed (the writer's first batch) before the lock.
        let begun = harness::poll(std::time::Duration::from_secs(10), || {
            (counter("audit_written") >= 1).then_some(())
        });
        assert!(begun.is_some(), "{}", fx.agent.log_tail());
        let lock =
            rusqlite::Connection::open(fx.agent.state_dir.join("audit.db")).expect("open db");
        lock.execute_batch("BEGIN IMMEDIATE")
            .expect("lock audit db");
        std::fs::write(&go, "").expect("go");
        // Well under the writer's 5 s busy timeout.
        let let_through = harness::poll(std::time::Duration::from_secs(3), || {
            (counter("audit_unheld") >= 1).then_some(())
        });
        lock.execute_batch("ROLLBACK").expect("unlock audit db");
        (client.join().expect("client"), let_through)
    });
    assert!(let_through.is_some(), "none let through unheld: {:?}", py.v);
    assert_eq!(
        py.v["statuses"],
        serde_json::json!(vec![200; 30]),
        "{:?}",
        py.v
    );
    assert!(
        fx.agent_log()
            .contains("work let through without a place for its record"),
        "{}",
        fx.agent.log_tail()
    );
    // The queue (70) had room for every record when its request ended: none is lost.
    let session = fx.session_of(py.pid, 30);
    assert_eq!(requests(&session).len(), 30, "{session:#}");
    assert_eq!(counter("audit_queue_full"), 0);
}

/// Originate: the task speaks plain HTTP to nginx's TLS port (which refuses plain HTTP to a
/// direct client); tollgate speaks TLS to it, verified against nginx's CA for `server_name`.
#[test]
fn originate_speaks_tls_for_a_plain_client() {
    let test = "originate_speaks_tls_for_a_plain_client";
    let Some(fx) = Fixture::start(test, "http-orig") else {
        return;
    };
    let port = fx.nginx.ports.tls;
    let direct = Curl::new(&fx.http(port, "/hello.txt?direct")).run_direct();
    assert_status(&direct, 400);
    assert!(
        direct
            .body
            .contains("plain HTTP request was sent to HTTPS port"),
        "{direct:?}"
    );

    let out = Curl::new(&fx.http(port, "/hello.txt")).run(&fx.app);
    assert_status(&out, 200);
    assert_eq!(out.body, HELLO);
    let line = one_line_for(&fx, "/hello.txt", out.local_port);
    assert!(line.contains("https=on"), "{line}");
    let out = Curl::new(&fx.http(port, "/echo-auth")).run(&fx.app);
    assert!(
        out.body
            .starts_with(&format!("authorization=[Bearer {}]", fx.token)),
        "{out:?}"
    );
    let session = fx.session_of(out.pid, 1);
    assert_eq!(session["target"], WEB_ORIGINATE, "{session:#}");
    let py = urllib(
        &fx.app,
        &fx.http(port, "/hello.txt?python"),
        None,
        &[],
        false,
    );
    assert_eq!((py.status(), py.body()), (200, HELLO), "{:?}", py.v);
}

/// Streaming: a 3 MiB upload of unknown length (curl `-T -`: chunked, `Expect: 100-continue`)
/// and a 5 MiB chunked download pass through intact (SHA-256 on both ends), and the audit
/// counts their bytes.
#[test]
fn chunked_upload_and_download_stream_through() {
    let test = "chunked_upload_and_download_stream_through";
    let Some(fx) = Fixture::start(test, "http-chunk") else {
        return;
    };
    let up = pattern(3 << 20);
    let out = Curl::new(&fx.backend_url("/upload"))
        .args(&["-X", "POST", "-T", "-"])
        .stdin(up.clone())
        .run(&fx.app);
    assert_status(&out, 200);
    let v: Value = serde_json::from_str(&out.body).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(v["bytes"], up.len(), "{v}");
    assert_eq!(v["sha256"], sha256_hex(&up), "{v}");
    assert_eq!(
        v["chunked"], true,
        "the upload reached the backend with a length: {v}"
    );
    assert!(v["frames"].as_u64().unwrap_or(0) > 1, "not streamed: {v}");
    let session = fx.session_of(out.pid, 1);
    let r = &requests(&session)[0];
    assert_eq!(
        (r["method"].as_str(), r["bytes_up"].as_u64()),
        (Some("POST"), Some(up.len() as u64)),
        "{session:#}"
    );

    let n = 5 << 20;
    let file = fx.agent.scratch().join("download.bin");
    let out = Curl::new(&fx.backend_url(&format!("/download?bytes={n}")))
        .args(&["-o", file.to_str().expect("path")])
        .run(&fx.app);
    assert_status(&out, 200);
    assert_eq!(out.header("transfer-encoding"), Some("chunked"), "{out:?}");
    let got = std::fs::read(&file).expect("downloaded file");
    assert_eq!(got.len(), n);
    assert_eq!(sha256_hex(&got), sha256_hex(&pattern(n)));
    let session = fx.session_of(out.pid, 1);
    assert_eq!(
        requests(&session)[0]["bytes_down"].as_u64(),
        Some(n as u64),
        "{session:#}"
    );
    assert_eq!(session["target"], BACKEND, "{session:#}");
}

/// A form's `_method` (Rails, Laravel, Symfony and Express read it as the method) is decided
/// with the request: the backend's rule allows GET and POST, so curl's urlencoded and multipart
/// POSTs that say `_method=DELETE` get tollgate's 403 from the default deny, not the backend's
/// answer; the same forms without it, and a 1 MiB body of one long field, go through.
#[test]
fn a_forms_method_override_is_decided_with_the_request() {
    let test = "a_forms_method_override_is_decided_with_the_request";
    let Some(fx) = Fixture::start(test, "http-form") else {
        return;
    };
    let url = fx.backend_url("/upload");
    let big = vec![b'a'; 1 << 20];
    for (args, status) in [
        (&["-d", "name=x&_method=DELETE"][..], 403),
        (
            &["-F", "file=@/etc/hostname", "-F", "_method=delete"][..],
            403,
        ),
        (&["-d", "name=x&_method=POST"][..], 200),
        (&["-F", "file=@/etc/hostname", "-F", "name=x"][..], 200),
        (&["--data-binary", "@-"][..], 200),
    ] {
        let mut curl = Curl::new(&url).args(args);
        if args.contains(&"@-") {
            curl = curl.stdin(big.clone());
        }
        let out = curl.run(&fx.app);
        assert_status(&out, status);
        let session = fx.session_of(out.pid, 1);
        let r = &requests(&session)[0];
        let (method, _, got, decision, rule) = verdict(r);
        let want = if status == 403 {
            ("deny", "default-deny")
        } else {
            ("allow", "app-backend")
        };
        assert_eq!(
            (method.as_str(), got, decision.as_str(), rule.as_str()),
            ("POST", u64::from(status), want.0, want.1),
            "{args:?}: {session:#}"
        );
        if status == 403 {
            // The record names the reading that was denied: the form's method.
            let error = r["error"].as_str().unwrap_or_default();
            let read_as = error
                .strip_prefix("denied by rule default-deny (a form's _method): read as ")
                .unwrap_or_else(|| panic!("{args:?}: {session:#}"));
            assert!(
                read_as.to_ascii_uppercase().starts_with("DELETE ")
                    && read_as.ends_with("/upload (method from _method)"),
                "{args:?}: {session:#}"
            );
        }
    }
    // A gzip JSON body: Express's `body-parser` inflates it before a getter reads `_method`.
    for (json, status, want) in [
        (r#"{"_method": "DELETE"}"#, 403, ("deny", "default-deny")),
        (r#"{"name": "x"}"#, 200, ("allow", "app-backend")),
    ] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, json.as_bytes()).expect("gzip");
        let out = Curl::new(&url)
            .args(&[
                "-H",
                "Content-Type: application/json",
                "-H",
                "Content-Encoding: gzip",
                "--data-binary",
                "@-",
            ])
            .stdin(gz.finish().expect("gzip"))
            .run(&fx.app);
        assert_status(&out, status);
        let session = fx.session_of(out.pid, 1);
        let (method, _, got, decision, rule) = verdict(&requests(&session)[0]);
        assert_eq!(
            (method.as_str(), got, decision.as_str(), rule.as_str()),
            ("POST", u64::from(status), want.0, want.1),
            "gzip {json}: {session:#}"
        );
    }
}

/// The agent stops while a request's record waits for its form body (the upstream answered
/// at once and reads on; the client holds the rest of the body back): the record is written
/// before the agent exits, with the upstream's status and the error saying the body was still
/// streaming. SIGTERM comes 1 s after the answer: the record's 3 s wait then ends during the
/// drain (2 s in the harness, then 1 s for connections to end), a second before the
/// connection is dropped.
#[test]
fn a_record_waiting_for_its_body_is_written_when_the_agent_stops() {
    use std::io::BufRead as _;
    let test = "a_record_waiting_for_its_body_is_written_when_the_agent_stops";
    let Some(mut fx) = Fixture::start(test, "http-stop") else {
        return;
    };
    let mut client = stalled_form(&fx.app, fx.backend.addr.port(), "/early");
    let mut line = String::new();
    std::io::BufReader::new(client.stdout.take().expect("client stdout"))
        .read_line(&mut line)
        .expect("client output");
    let answered: Value = serde_json::from_str(&line).expect("client JSON");
    assert_eq!(
        answered["status"], 413,
        "the upstream answered early: {line}"
    );
    let pid = u32::try_from(answered["pid"].as_u64().expect("pid")).expect("pid");

    std::thread::sleep(std::time::Duration::from_secs(1));
    let status = fx.agent.terminate();
    assert!(
        status.success(),
        "agent exit: {status}\n{}",
        fx.agent.log_tail()
    );
    drop(client.stdin.take());
    let _ = client.kill();
    let _ = client.wait();

    fx.agent.start();
    let session = fx.session_of(pid, 1);
    let r = &requests(&session)[0];
    let (method, path, got, decision, rule) = verdict(r);
    assert_eq!(
        (
            method.as_str(),
            path.as_str(),
            got,
            decision.as_str(),
            rule.as_str()
        ),
        ("POST", "/early", 413, "allow", "app-backend"),
        "{session:#}"
    );
    assert_eq!(
        r["error"], "request body still streaming after the response: recorded before its end",
        "{session:#}"
    );
}

/// WebSocket: the upgrade request is decided and gets the credential, then tollgate splices
/// the connection: a text and a 70 000-byte binary message come back unchanged, and the close
/// handshake completes.
#[test]
fn websocket_echo_through_the_upgrade() {
    let test = "websocket_echo_through_the_upgrade";
    let Some(fx) = Fixture::start(test, "http-ws") else {
        return;
    };
    let ws = websocket(&fx.app, "127.0.0.1", fx.backend.addr.port(), "/ws");
    assert!(ws.v["error"].is_null(), "{:?}", ws.v);
    assert_eq!(
        ws.v["status_line"], "HTTP/1.1 101 Switching Protocols",
        "{:?}",
        ws.v
    );
    assert_eq!(ws.v["accept_ok"], true, "{:?}", ws.v);
    assert_eq!(
        ws.v["echoes"],
        serde_json::json!([
            {"opcode": 1, "bytes": 22, "same": true},
            {"opcode": 2, "bytes": 70000, "same": true},
        ]),
        "{:?}",
        ws.v
    );
    assert_eq!(ws.v["close"], 8, "{:?}", ws.v);
    let seen = fx.backend.seen_at("/ws");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].header("x-api-key"), Some(fx.api_key.as_str()));
    assert_eq!(seen[0].header("upgrade"), Some("websocket"));
    let session = fx.session_of(ws.pid, 1);
    let (method, path, status, decision, _) = verdict(&requests(&session)[0]);
    assert_eq!(
        (method.as_str(), path.as_str(), status, decision.as_str()),
        ("GET", "/ws", 101, "allow"),
        "{session:#}"
    );
    // Both directions of the spliced bytes count in the session.
    assert!(
        session["bytes_up"].as_u64().unwrap_or(0) > 70_000
            && session["bytes_down"].as_u64().unwrap_or(0) > 70_000,
        "{session:#}"
    );
}

/// Where Debian's tool and its local anchor directory are.
const UPDATE_CA_CERTIFICATES: &str = "/usr/sbin/update-ca-certificates";
/// The anchor `tollgate ca install` writes on Debian.
const DEBIAN_ANCHOR: &str = "/usr/local/share/ca-certificates/tollgate-local-ca.crt";

/// Runs `tollgate <args>` for the fixture's agent and returns (success, stdout, stderr).
fn tollgate(fx: &Fixture, args: &[&str]) -> (bool, String, String) {
    let out = fx.agent.cli(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `tollgate ca`: `show` prints the agent's CA (and its fingerprint, as openssl computes it);
/// `install --dry-run` names the Debian anchor and tool and changes nothing; `install` into a
/// copy of this host's store (Debian's `update-ca-certificates` pointed at temp directories)
/// makes the bundle trust tollgate's leaves, so curl with only that bundle reaches nginx through
/// the terminated target; `uninstall` takes the CA out again. The host's own store is never
/// touched here (see `ca_install_on_this_host`).
#[test]
fn ca_install_and_uninstall_in_a_copy_of_the_debian_store() {
    let test = "ca_install_and_uninstall_in_a_copy_of_the_debian_store";
    let Some(fx) = Fixture::start(test, "http-ca") else {
        return;
    };
    let pem = std::fs::read_to_string(fx.tollgate_ca()).expect("agent's ca.pem");
    let (ok, out, err) = tollgate(&fx, &["ca", "show"]);
    assert!(ok, "{err}");
    assert_eq!(out, pem);
    let (ok, out, err) = tollgate(&fx, &["ca", "show", "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("ca show --json");
    let openssl = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(fx.tollgate_ca())
        .output()
        .expect("openssl x509");
    let fp = String::from_utf8_lossy(&openssl.stdout);
    let fp = fp.trim().rsplit('=').next().unwrap_or("");
    assert_eq!(v["sha256"], fp, "{v}");

    if !std::path::Path::new(UPDATE_CA_CERTIFICATES).is_file()
        || std::path::Path::new("/etc/pki/ca-trust/source/anchors").exists()
    {
        eprintln!("NOTE {test}: not a Debian trust store layout: only `ca show` checked");
        return;
    }
    // Dry run on the real layout: the plan, and no file.
    if !std::path::Path::new(DEBIAN_ANCHOR).exists() {
        let (ok, out, err) = tollgate(&fx, &["ca", "install", "--dry-run"]);
        assert!(ok, "{err}");
        assert!(
            out.contains(&format!("would write {DEBIAN_ANCHOR}"))
                && out.contains("would run update-ca-certificates"),
            "{out}"
        );
        assert!(!std::path::Path::new(DEBIAN_ANCHOR).exists());
    }

    // A copy of the host's store: its certs dir, our anchors dir, no hooks.
    let sim = fx.agent.scratch().join("trust");
    let (local, certs, hooks) = (sim.join("local"), sim.join("certs"), sim.join("hooks"));
    std::fs::create_dir_all(&hooks).expect("hooks dir");
    let cp = std::process::Command::new("cp")
        .args(["-a", "/etc/ssl/certs"])
        .arg(&certs)
        .status()
        .expect("cp");
    assert!(cp.success());
    let refresh = || {
        let out = std::process::Command::new(UPDATE_CA_CERTIFICATES)
            .arg("--localcertsdir")
            .arg(&local)
            .arg("--etccertsdir")
            .arg(&certs)
            .arg("--hooksdir")
            .arg(&hooks)
            .output()
            .expect("update-ca-certificates");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read_to_string(certs.join("ca-certificates.crt")).expect("bundle")
    };
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let in_bundle = |bundle: &str| bundle.lines().collect::<String>().contains(&body);
    let bundle_arg = certs.join("ca-certificates.crt").display().to_string();
    let port = fx.nginx.ports.tls_h2;
    let resolve = Fixture::resolve(port);
    let through = |path: &str| {
        Curl::new(&fx.https(port, path))
            .args(&[&resolve[0], &resolve[1], "--cacert", &bundle_arg])
            .run(&fx.app)
    };
    assert!(!in_bundle(&refresh()));
    assert_eq!(through("/hello.txt?before").code, 60);

    let trust_dir = local.display().to_string();
    let (ok, out, err) = tollgate(&fx, &["ca", "install", "--trust-dir", &trust_dir]);
    assert!(ok && out.contains("installed (custom store)"), "{out}{err}");
    let anchor = local.join("tollgate-local-ca.crt");
    assert_eq!(std::fs::read_to_string(&anchor).expect("anchor"), pem);
    let (ok, out, err) = tollgate(&fx, &["ca", "install", "--trust-dir", &trust_dir]);
    assert!(ok && out.contains("already installed"), "{out}{err}");
    assert!(
        in_bundle(&refresh()),
        "the refreshed bundle lacks tollgate's CA"
    );
    let out = through("/hello.txt?installed");
    assert_status(&out, 200);
    assert_eq!(out.body, HELLO);

    let (ok, out, err) = tollgate(&fx, &["ca", "uninstall", "--trust-dir", &trust_dir]);
    assert!(ok && out.contains("uninstalled"), "{out}{err}");
    assert!(!anchor.exists());
    assert!(
        !in_bundle(&refresh()),
        "the bundle still holds tollgate's CA"
    );
    assert_eq!(through("/hello.txt?uninstalled").code, 60);
    assert_eq!(fx.nginx.wait_requests("/hello.txt?", 1).len(), 1);
}

/// Puts the Debian anchor back the way it was found (absent) and refreshes the store, also
/// when the test fails half-way.
struct HostStoreGuard;

impl Drop for HostStoreGuard {
    fn drop(&mut self) {
        if std::path::Path::new(DEBIAN_ANCHOR).exists() {
            let _ = std::fs::remove_file(DEBIAN_ANCHOR);
            let _ = std::process::Command::new(UPDATE_CA_CERTIFICATES).status();
        }
    }
}

/// `tollgate ca install` and `uninstall` on this host's real Debian store: curl without any
/// `--cacert` then trusts tollgate's leaves, and no longer after the uninstall. It rewrites the
/// system bundle (and runs the store's hooks), so it runs only when
/// `TOLLGATE_TEST_HOST_TRUST_STORE=1`; the anchor is removed again even if the test fails.
#[test]
fn ca_install_on_this_host() {
    let test = "ca_install_on_this_host";
    if std::env::var("TOLLGATE_TEST_HOST_TRUST_STORE").as_deref() != Ok("1") {
        eprintln!(
            "NOTE {test}: set TOLLGATE_TEST_HOST_TRUST_STORE=1 to change this host's trust store"
        );
        return;
    }
    let Some(fx) = Fixture::start(test, "http-hostca") else {
        return;
    };
    assert!(
        std::path::Path::new(UPDATE_CA_CERTIFICATES).is_file(),
        "{test} needs Debian's update-ca-certificates"
    );
    assert!(
        !std::path::Path::new(DEBIAN_ANCHOR).exists(),
        "{DEBIAN_ANCHOR} exists already: not touching a real installation"
    );
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    let before = std::fs::read(bundle).expect("system bundle");
    let _guard = HostStoreGuard;
    let port = fx.nginx.ports.tls_h2;
    let resolve = Fixture::resolve(port);
    let through = |path: &str| {
        Curl::new(&fx.https(port, path))
            .args(&[&resolve[0], &resolve[1]])
            .run(&fx.app)
    };
    assert_eq!(through("/hello.txt?before").code, 60);
    let (ok, out, err) = tollgate(&fx, &["ca", "install"]);
    assert!(ok && out.contains("installed (debian store)"), "{out}{err}");
    let out = through("/hello.txt?installed");
    assert_status(&out, 200);
    let (ok, out, err) = tollgate(&fx, &["ca", "uninstall"]);
    assert!(
        ok && out.contains("uninstalled (debian store)"),
        "{out}{err}"
    );
    assert_eq!(through("/hello.txt?uninstalled").code, 60);
    assert_eq!(
        std::fs::read(bundle).expect("system bundle"),
        before,
        "the system bundle differs from before the install"
    );
}

/// The longest run of consecutive ASCII digits in `text`.
fn longest_digit_run(text: &str) -> usize {
    text.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

/// Byte ranges do not get around masking: a range holding exactly a card number's digits (a
/// bare JSON number once cut out), two ranges that split it, and a multi-range request
/// (`multipart/byteranges`) must not show more than the last four digits, as the full response
/// does.
#[test]
fn range_requests_do_not_bypass_masking() {
    let test = "range_requests_do_not_bypass_masking";
    let Some(fx) = Fixture::start(test, "http-range") else {
        return;
    };
    let port = fx.nginx.ports.plain;
    let full = Curl::new(&fx.http(port, "/cards.json")).run(&fx.app);
    assert_status(&full, 200);
    assert_eq!(longest_digit_run(&full.body), 4, "{full:?}");
    let text = web::nginx::cards_json(1);
    let at = text.find(CARDS[0]).expect("card in cards.json");
    let end = at + CARDS[0].len() - 1;
    let mut leaks = Vec::new();
    for range in [
        format!("{at}-{end}"),
        format!("{at}-{}", at + 9),
        format!("{}-{end}", at + 10),
        format!("0-20,{at}-{end}"),
    ] {
        let out = Curl::new(&fx.http(port, "/cards.json"))
            .args(&["-r", &range])
            .run(&fx.app);
        assert_eq!(out.code, 0, "{out:?}");
        if longest_digit_run(&out.body) > 4 {
            leaks.push(format!(
                "Range: bytes={range} -> {} {:?}",
                out.status, out.body
            ));
        }
    }
    assert!(
        leaks.is_empty(),
        "unmasked card digits through byte ranges:\n{}",
        leaks.join("\n")
    );
}

/// `max_request_header` (64 KiB by default) bounds the request head: a head under it passes,
/// one of 100 KiB is refused by tollgate (431) and never reaches the server.
#[test]
fn an_oversized_request_head_is_refused() {
    let test = "an_oversized_request_head_is_refused";
    let Some(fx) = Fixture::start(test, "http-head") else {
        return;
    };
    let header = |kib: usize, tag: &str| {
        let file = fx.agent.scratch().join(format!("header-{tag}"));
        std::fs::write(&file, format!("X-Big: {}\n", "b".repeat(kib << 10))).expect("header");
        format!("@{}", file.display())
    };
    let small = header(60, "small");
    let out = Curl::new(&fx.backend_url("/headers?small"))
        .args(&["-H", &small])
        .run(&fx.app);
    assert_status(&out, 200);
    let big = header(100, "big");
    let out = Curl::new(&fx.backend_url("/headers?big"))
        .args(&["-H", &big])
        .run(&fx.app);
    assert_eq!(
        out.status, 431,
        "a 100 KiB head was not refused: {}",
        out.status
    );
    assert!(
        fx.backend.seen_at("/headers?big").is_empty(),
        "the 100 KiB head reached the backend"
    );
}

/// A client that opens one connection per request (here two curl processes, one after the other)
/// is served over one upstream connection, as HAProxy and nginx reuse theirs: nginx sees both
/// requests come from the same source port, and each client connection keeps its own audit.
#[test]
fn the_next_client_connection_reuses_the_idle_upstream_connection() {
    let test = "the_next_client_connection_reuses_the_idle_upstream_connection";
    let Some(fx) = Fixture::start(test, "http-reuse") else {
        return;
    };
    let port = fx.nginx.ports.plain;
    for n in 1..=2 {
        let out = Curl::new(&fx.http(port, &format!("/hello.txt?reuse={n}"))).run(&fx.app);
        assert_status(&out, 200);
        assert_eq!(out.body, HELLO);
        // Ended: its upstream connection is back in the pool (kept for 4 s, so the second curl
        // starts right away and the nginx log is read afterwards).
        let session = fx.session_of(out.pid, 1);
        assert_eq!(requests(&session).len(), 1, "{session:#}");
    }
    let ports = [source_port(&fx, "reuse=1"), source_port(&fx, "reuse=2")];
    assert_eq!(
        ports[0], ports[1],
        "the second request came on a new upstream connection"
    );
}
