//! The request headers the audit keeps (`policy::http::headers`), for targets loaded from
//! policy text: `record_headers`, `redact_headers` (and their errors), the injected
//! credential's header, masking, the caps.
use super::{errors_of, policy};
use crate::policy::{
    HttpTarget,
    http::headers::{CUT, LEFT_OUT, MAX_HEADERS_BYTES, MAX_VALUE, REDACTED, recorded},
};

/// A policy with one http target whose `[target.http]` holds `extra` (from line 7 on).
fn api(extra: &str) -> String {
    format!(
        "[[target]]\nname = \"api\"\nprotocol = \"http\"\naddresses = [\"127.0.0.1:8200\"]\n\
         [target.http]\ntls = \"none\"\n{extra}"
    )
}

fn target(extra: &str) -> std::sync::Arc<HttpTarget> {
    let p = policy(&api(extra));
    p.target("api").unwrap().http.clone().unwrap()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn credentials_are_redacted_and_the_rest_kept_in_order() {
    let t = target(
        "redact_headers = [\"X-Internal\"]\n\
         credential = { header = \"X-Odd-Name\", value_env = \"API_TOKEN\" }\n",
    );
    assert_eq!(t.redact_headers, ["x-internal"]);
    let got = recorded(
        &pairs(&[
            ("host", "api.example"),
            ("authorization", "Bearer abc"),
            ("proxy-authorization", "Basic eA=="),
            ("cookie", "sid=1"),
            ("x-api-key", "k"),
            ("x-vault-token", "hvs.x"),
            ("x-csrftoken", "c"),
            ("x-amz-security-token", "t"),
            ("x-hub-signature-256", "sha256=x"),
            ("dpop", "eyJ"),
            ("x-internal", "i"),
            ("x-odd-name", "env-token-1"),
            ("user-agent", "curl/8"),
            ("accept", "*/*"),
            // Known names without a credential word.
            (
                "sec-websocket-protocol",
                "base64url.bearer.authorization.k8s.io.dG9r",
            ),
            ("x-registry-config", "eyJhIjoxfQ=="),
            ("x-honeycomb-team", "hc"),
            ("x-github-otp", "123456"),
            ("cb-access-sign", "s"),
            // Credentials by their look, under any name.
            ("x-forwarded-proxy", "Basic dXNlcjpwYXNz"),
            ("x-upstream", "  bearer abc"),
            (
                "x-user",
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
            ),
            ("x-aws", "AKIAIOSFODNN7EXAMPLE"),
            ("x-forwarded-proxy2", "Bearer\tabc"),
            ("x-gh", "token is ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
            // A key that is no secret, a user agent that names a product.
            ("idempotency-key", "retry-7"),
            ("user-agent", "OAuth gem v0.5.8"),
        ]),
        &t,
    )
    .unwrap();
    let kept: Vec<_> = got
        .iter()
        .filter(|(_, v)| v != REDACTED)
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    assert_eq!(
        kept,
        [
            "host=api.example",
            "user-agent=curl/8",
            "accept=*/*",
            "idempotency-key=retry-7",
            "user-agent=OAuth gem v0.5.8"
        ]
    );
    assert_eq!(got.len(), 27, "every header, in order");
    assert_eq!(got[1], ("authorization".into(), REDACTED.into()));
    assert_eq!(got[11], ("x-odd-name".into(), REDACTED.into()));
}

#[test]
fn values_are_masked_then_cut_and_the_total_is_bounded() {
    let t =
        target("[target.http.masking]\ndetectors = [{ detector = \"card\", style = \"last4\" }]\n");
    let long = "é".repeat(400);
    let got = recorded(
        &pairs(&[("x-card", "4111 1111 1111 1111"), ("x-long", &long)]),
        &t,
    )
    .unwrap();
    assert_eq!(got[0].1, "**** **** **** 1111");
    assert!(got[1].1.ends_with(CUT), "{got:?}");
    assert!(got[1].1.len() <= MAX_VALUE + CUT.len());

    // Cut before the URL pass: marked even when what is left is short.
    let long_query = format!("/p?a={}", "x".repeat(5000));
    let got = recorded(&pairs(&[("referer", &long_query)]), &target("")).unwrap();
    assert_eq!(got[0].1, format!("/p?a{CUT}"));

    let many: Vec<_> = (0..100)
        .map(|i| (format!("x-h{i}"), "v".repeat(200)))
        .collect();
    let got = recorded(&many, &target("")).unwrap();
    let kept = got.len() - 1;
    let total: usize = got[..kept].iter().map(|(n, v)| n.len() + v.len()).sum();
    assert!(total <= MAX_HEADERS_BYTES, "{total}");
    assert_eq!(got[kept].0, LEFT_OUT);
    assert_eq!(got[kept].1, format!("{} more not recorded", 100 - kept));
}

#[test]
fn a_target_may_record_no_headers() {
    let t = target("record_headers = false\n");
    assert_eq!(recorded(&pairs(&[("host", "h")]), &t), None);
    assert!(target("").record_headers, "on by default");
}

#[test]
fn a_redact_headers_name_that_is_not_a_header_name_is_refused_at_its_line() {
    let errors = errors_of(&api("redact_headers = [\"ok\", \"not a name\"]\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors[0].to_string();
    assert!(e.contains("p.toml:7"), "{e}");
    assert!(
        e.contains("\"not a name\" is not a valid HTTP header name"),
        "{e}"
    );
}

#[test]
fn a_host_with_userinfo_is_recorded_without_it() {
    let got = recorded(&pairs(&[("host", "u:s3cret@api.example")]), &target("")).unwrap();
    assert_eq!(got[0].1, format!("{REDACTED}@api.example"));
}

#[test]
fn a_user_and_password_without_a_scheme_are_recorded_without_them() {
    let got = recorded(
        &pairs(&[
            ("x-proxy", "admin:s3cret@proxy.internal:3128"),
            ("x-proxy", "admin:p?ss=1@proxy"),
            ("x-proxy", "admin:p#ss@proxy"),
            ("from", "ops@example.org"),
        ]),
        &target(""),
    )
    .unwrap();
    assert_eq!(
        got,
        pairs(&[
            ("x-proxy", "[redacted]@proxy.internal:3128"),
            ("x-proxy", "[redacted]@proxy"),
            ("x-proxy", "[redacted]@proxy"),
            ("from", "ops@example.org"),
        ])
    );
}

#[test]
fn a_word_cut_short_is_not_kept() {
    // Past the first 2 KiB the value is cut; the word the cut falls in is dropped whole, so a
    // secret whose `@` was cut off is not kept either.
    // The 2 KiB cut falls after `admin:s3c`; the URL pass then shortens the query to `?q`.
    let filler = format!("https://h/?q={}", "x".repeat(2025));
    let value = format!("{filler} admin:s3cret@proxy");
    assert_eq!(value.find("ret@"), Some(2048));
    let got = recorded(&pairs(&[("x-proxy", &value)]), &target("")).unwrap();
    assert!(!got[0].1.contains("s3c"), "{got:?}");
    assert!(got[0].1.starts_with("https://h/?q"), "{got:?}");
}
