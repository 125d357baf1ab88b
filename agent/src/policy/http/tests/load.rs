//! Loading `[target.http]` and `[rule.http]`: every key, defaults, credentials and their secrets,
//! strictness, error locations, cross-file checks, fingerprint, and no secret in `Debug`.
use std::{fs, path::Path};

use super::{errors_of, policy, secret_file};
use crate::{
    masking::Detector,
    policy::{
        Compressed, DEFAULT_BODY_CAP, DEFAULT_MAX_BODY_BUFFER, DEFAULT_MAX_REQUEST_HEADER,
        HttpCredential, HttpTarget, HttpTls, JsonStep, PathMatch, Protocol, SecretOrigin,
        Unmaskable, load_dir,
    },
};

/// A valid workload, 5 lines.
const ETL: &str = r#"[[workload]]
name = "etl"
spiffe_id = "spiffe://example.org/etl"
[workload.selector]
uid = 1000
"#;

/// A valid http target, 6 lines (lines 6 to 11 after [`ETL`]; `tls` on line 11).
const API: &str = r#"[[target]]
name = "api"
protocol = "http"
addresses = ["127.0.0.1:8200"]
[target.http]
tls = "none"
"#;

/// A valid tcp target, 4 lines (12 to 15 after [`ETL`] and [`API`]).
const WEB: &str = r#"[[target]]
name = "web"
protocol = "tcp"
addresses = ["127.0.0.1:8080"]
"#;

/// [`ETL`] and [`API`] with `tls` set to `tls` and `extra` lines from line 12 on.
fn api(tls: &str, extra: &str) -> String {
    format!(
        "{ETL}{}{extra}",
        API.replace("tls = \"none\"", &format!("tls = \"{tls}\""))
    )
}

/// [`ETL`], [`API`], [`WEB`] and a rule naming `targets` (line 19) whose `[rule.http]` section
/// (line 21) holds `extra` (from line 22 on).
fn rule(targets: &str, extra: &str) -> String {
    format!(
        "{ETL}{API}{WEB}[[rule]]\nname = \"r\"\nworkloads = [\"etl\"]\ntargets = {targets}\n\
         action = \"allow\"\n[rule.http]\n{extra}"
    )
}

fn http_of(p: &crate::policy::Policy, name: &str) -> std::sync::Arc<HttpTarget> {
    p.target(name).unwrap().http.clone().unwrap()
}

#[test]
fn parses_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = secret_file(d, "token", "file-token-1\n", 0o600);
    let key = secret_file(d, "mask.key", "hash-key-bytes-1", 0o400);
    let client_key = secret_file(d, "client.key", "-----BEGIN PRIVATE KEY-----", 0o600);
    let cert = secret_file(d, "client.crt", "-----BEGIN CERTIFICATE-----", 0o644);
    let ca = secret_file(d, "ca.pem", "-----BEGIN CERTIFICATE-----", 0o644);
    let text = format!(
        r#"{ETL}
[[target]]
name = "vault"
protocol = "http"
addresses = ["127.0.0.1:8200", "vault.internal:443"]
[target.http]
tls = "terminate"
ca_file = "{ca}"
server_name = "vault.internal"
client_cert_file = "{cert}"
client_key_file = "{client_key}"
passthrough_sni = ["*.Bank.example", "*.bank.example"]
credential = {{ bearer_file = "{token}" }}
strip_client_credentials = false
max_request_header = "32KiB"
max_body_buffer = 1048576
compressed = "refuse"
unmaskable = "refuse"
record_bodies = true
body_cap = "1 KiB"
[target.http.masking]
hash_key_file = "{key}"
json_keys = ["ssn", {{ key = "*.card_number", style = "last4" }}, {{ key = "$.data.password", style = "hash" }}]
detectors = [{{ detector = "card", style = "last4" }}, {{ detector = "email", style = "hash" }}]

[[rule]]
name = "reads"
workloads = ["etl"]
targets = ["vault"]
action = "allow"
[rule.http]
methods = ["get", "LIST", "GET"]
hosts = ["Vault.internal", "*.vault.internal"]
paths = ["/v1/secret/data/etl/**", "/v1/secret/data/etl"]
query = {{ version = "*" }}
headers = {{ "X-Request-Kind" = "batch" }}
"#,
        ca = ca.display(),
        cert = cert.display(),
        client_key = client_key.display(),
        token = token.display(),
        key = key.display(),
    );
    let p = policy(&text);
    let t = p.target("vault").unwrap();
    assert_eq!(t.protocol, Protocol::Http);
    assert!(t.postgres.is_none());
    let h = t.http.as_ref().unwrap();
    assert_eq!(h.tls, HttpTls::Terminate);
    assert_eq!(h.ca_file.as_deref(), Some(ca.as_path()));
    assert_eq!(h.server_name.as_deref(), Some("vault.internal"));
    assert_eq!(h.client_cert, Some((cert.clone(), client_key.clone())));
    let sni: Vec<&str> = h.passthrough_sni.iter().map(|p| p.as_str()).collect();
    assert_eq!(sni, ["*.bank.example"]);
    match &h.credential {
        Some(HttpCredential::Bearer(s)) => {
            assert_eq!(s.expose(), b"file-token-1");
            assert_eq!(s.origin(), &SecretOrigin::File(token.clone()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.credential.as_ref().and_then(|c| c.header_name()),
        Some("authorization")
    );
    assert!(!h.strip_client_credentials);
    assert_eq!(
        (h.max_request_header, h.max_body_buffer, h.body_cap),
        (32 << 10, 1 << 20, 1 << 10)
    );
    assert_eq!(
        (h.compressed, h.unmaskable),
        (Compressed::Refuse, Unmaskable::Refuse)
    );
    assert!(h.record_bodies);
    assert_eq!(h.hash_key.as_ref().unwrap().expose(), b"hash-key-bytes-1");
    let m = h.masking.as_ref().unwrap();
    assert!(m.columns.is_empty());
    let dets: Vec<Detector> = m.detectors.iter().map(|d| d.detector).collect();
    assert_eq!(dets, [Detector::Card, Detector::Email]);
    assert!(h.masker.as_ref().is_some_and(|m| !m.is_empty()));
    let keys: Vec<String> = h.json_keys.iter().map(ToString::to_string).collect();
    assert_eq!(
        keys,
        ["ssn redact", "*.card_number last4", "$.data.password hash"]
    );
    // The hash style got its key: hashing gives `tg_...`, not the fail-closed redaction.
    let pw = h
        .json_key(&[JsonStep::Key("data"), JsonStep::Key("password")])
        .unwrap();
    assert!(pw.style().apply("hunter2", None).starts_with("tg_"));

    let r = &p.rules()[0];
    let http = r.http.as_ref().unwrap();
    assert!(r.postgres.is_none());
    assert_eq!(
        http.methods.as_deref(),
        Some(&["GET".to_owned(), "LIST".to_owned()][..])
    );
    assert_eq!(
        http.hosts.as_ref().unwrap().patterns(),
        ["*.vault.internal", "vault.internal"]
    );
    match &http.path {
        Some(PathMatch::Globs(g)) => {
            assert_eq!(
                g.patterns(),
                ["/v1/secret/data/etl", "/v1/secret/data/etl/**"]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(http.query.len(), 1);
    assert_eq!(http.query[0].0, "version");
    assert_eq!(http.headers[0].0, "x-request-kind");
}

#[test]
fn defaults() {
    let p = policy(&api("none", ""));
    let h = http_of(&p, "api");
    assert_eq!(h.tls, HttpTls::None);
    assert!(h.ca_file.is_none() && h.server_name.is_none() && h.client_cert.is_none());
    assert!(h.passthrough_sni.is_empty() && h.credential.is_none());
    assert!(h.strip_client_credentials);
    assert_eq!(h.max_request_header, DEFAULT_MAX_REQUEST_HEADER);
    assert_eq!(h.max_body_buffer, DEFAULT_MAX_BODY_BUFFER);
    assert_eq!(h.body_cap, DEFAULT_BODY_CAP);
    assert_eq!(
        (DEFAULT_MAX_REQUEST_HEADER, DEFAULT_BODY_CAP),
        (65_536, 4096)
    );
    assert_eq!(DEFAULT_MAX_BODY_BUFFER, 8 << 20);
    assert_eq!(
        (h.compressed, h.unmaskable),
        (Compressed::Decode, Unmaskable::Pass)
    );
    assert!(!h.record_bodies);
    assert!(h.masking.is_none() && h.masker.is_none() && h.json_keys.is_empty());
    assert!(!h.masks());
    // An empty [rule.http] is a request rule that matches every request.
    let p = policy(&rule("[\"api\"]", ""));
    let r = p.rules()[0].http.as_ref().unwrap();
    assert!(r.methods.is_none() && r.hosts.is_none() && r.path.is_none());
    assert!(r.query.is_empty() && r.headers.is_empty());
    // Passthrough: no request setting at all.
    let h = http_of(&policy(&api("passthrough", "")), "api");
    assert!(h.passes_through(None));
}

#[test]
fn credentials() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pw = secret_file(d, "pw", "basic-pw-1\n", 0o600);
    let shown = |c: &HttpCredential| match c {
        HttpCredential::Bearer(s) => format!("bearer {}", String::from_utf8_lossy(s.expose())),
        HttpCredential::Basic { user, password } => {
            format!(
                "basic {user} {}",
                String::from_utf8_lossy(password.expose())
            )
        }
        HttpCredential::Header { name, value } => {
            format!("header {name} {}", String::from_utf8_lossy(value.expose()))
        }
        HttpCredential::Query { name, value } => {
            format!("query {name} {}", String::from_utf8_lossy(value.expose()))
        }
    };
    let cases = [
        (
            "{ bearer_env = \"API_TOKEN\" }".to_owned(),
            "bearer env-token-1",
            Some("authorization"),
        ),
        (
            format!(
                "{{ basic_user = \"etl\", basic_password_file = \"{}\" }}",
                pw.display()
            ),
            "basic etl basic-pw-1",
            Some("authorization"),
        ),
        (
            "{ basic_user = \"etl\", basic_password_env = \"API_TOKEN2\" }".to_owned(),
            "basic etl env-token-2",
            Some("authorization"),
        ),
        (
            "{ header = \"X-Vault-Token\", value_env = \"API_TOKEN\" }".to_owned(),
            "header x-vault-token env-token-1",
            Some("x-vault-token"),
        ),
        (
            format!(
                "{{ query = \"api_key\", value_file = \"{}\" }}",
                pw.display()
            ),
            "query api_key basic-pw-1",
            None,
        ),
    ];
    for (cred, want, header) in cases {
        let p = policy(&api(
            "originate",
            &format!("server_name = \"api.internal\"\ncredential = {cred}\n"),
        ));
        let c = http_of(&p, "api").credential.clone().unwrap();
        assert_eq!(shown(&c), want, "{cred}");
        assert_eq!(c.header_name(), header, "{cred}");
        assert!(!format!("{c:?}").contains("env-token") && !format!("{c:?}").contains("basic-pw"));
    }
    // The table form of the section works too.
    let p = policy(&api(
        "none",
        "[target.http.credential]\nheader = \"X-Api-Key\"\nvalue_env = \"API_TOKEN\"\n",
    ));
    assert!(matches!(
        http_of(&p, "api").credential,
        Some(HttpCredential::Header { .. })
    ));
}

#[test]
fn error_locations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let open = secret_file(d, "open", "token", 0o644);
    let open_key = secret_file(d, "open.key", "key", 0o640);
    let cert = secret_file(d, "client.crt", "cert", 0o644);
    let t = |extra: &str| api("none", extra);
    let cases: Vec<(String, (usize, usize), &str)> = vec![
        // TLS settings that do not fit the mode.
        (
            t("ca_file = \"/etc/x.pem\"\n"),
            (12, 11),
            "ca_file is for TLS towards the server",
        ),
        (
            t("server_name = \"x\"\n"),
            (12, 15),
            "server_name is for TLS towards the server",
        ),
        (
            t("passthrough_sni = [\"*.x\"]\n"),
            (12, 19),
            "passthrough_sni is for tls = \"terminate\"",
        ),
        (
            api("passthrough", "passthrough_sni = [\"*.x\"]\n"),
            (12, 19),
            "not tls = \"passthrough\"",
        ),
        (
            api(
                "passthrough",
                "credential = { bearer_env = \"API_TOKEN\" }\n",
            ),
            (12, 14),
            "credential has no effect with tls = \"passthrough\"",
        ),
        (
            api("passthrough", "record_bodies = true\n"),
            (12, 17),
            "record_bodies has no effect",
        ),
        (
            api(
                "passthrough",
                "[target.http.masking]\njson_keys = [\"a\"]\n",
            ),
            (11, 7),
            "[target.http.masking] has no effect",
        ),
        (
            api("terminate", "passthrough_sni = []\n"),
            (12, 19),
            "passthrough_sni is empty",
        ),
        (
            api("terminate", "passthrough_sni = [\"ok.example\", \"a/b\"]\n"),
            (12, 34),
            "must be a DNS name pattern",
        ),
        (
            api("terminate", "passthrough_sni = [\"[a\"]\n"),
            (12, 20),
            "invalid passthrough_sni glob",
        ),
        (
            api("originate", "server_name = \"bad name\"\n"),
            (12, 15),
            "invalid server_name",
        ),
        (
            api("originate", "ca_file = \"/nonexistent/ca.pem\"\n"),
            (12, 11),
            "cannot read ca_file",
        ),
        (
            api(
                "originate",
                &format!(
                    "server_name = \"api.internal\"\nclient_cert_file = \"{}\"\n",
                    cert.display()
                ),
            ),
            (13, 20),
            "client_cert_file and client_key_file go together",
        ),
        (
            api(
                "originate",
                &format!(
                    "server_name = \"api.internal\"\nclient_cert_file = \"{}\"\n\
                     client_key_file = \"{}\"\n",
                    cert.display(),
                    open_key.display()
                ),
            ),
            (14, 19),
            "(mode 0640): chmod 600",
        ),
        (t("tls = \"none\"\n"), (12, 1), "duplicate key `tls`"),
        (
            format!(
                "{ETL}{}",
                API.replace("tls = \"none\"", "record_bodies = true")
            ),
            (10, 1),
            "missing field `tls`",
        ),
        (
            format!("{ETL}{}", API.replace("tls = \"none\"", "tls = \"strip\"")),
            (11, 7),
            "unknown variant `strip`",
        ),
        // The section is required for http and refused for others.
        (
            format!(
                "{ETL}{}",
                API.replace("[target.http]\ntls = \"none\"\n", "")
            ),
            (8, 12),
            "needs a [target.http] section",
        ),
        (
            format!("{ETL}{}[target.http]\ntls = \"none\"\n", WEB),
            (8, 12),
            "protocol \"tcp\" takes no [target.http] section",
        ),
        // Credentials.
        (
            t("credential = { }\n"),
            (12, 14),
            "credential needs one of bearer_file",
        ),
        (
            t(
                "credential = { bearer_env = \"API_TOKEN\", header = \"X-T\", value_env = \"API_TOKEN\" }\n",
            ),
            (12, 51),
            "give only one kind of credential",
        ),
        (
            t(&format!(
                "credential = {{ bearer_file = \"{}\", bearer_env = \"API_TOKEN\" }}\n",
                open.display()
            )),
            (12, 47 + open.display().to_string().len()),
            "give only one of bearer_file, bearer_env",
        ),
        (
            t("credential = { value_env = \"API_TOKEN\" }\n"),
            (12, 28),
            "value_file and value_env go with header or query",
        ),
        (
            t("credential = { basic_password_env = \"API_TOKEN\" }\n"),
            (12, 37),
            "go with basic_user",
        ),
        (
            t("credential = { basic_user = \"a:b\", basic_password_env = \"API_TOKEN\" }\n"),
            (12, 29),
            "without ':'",
        ),
        (
            t("credential = { basic_user = \"u\" }\n"),
            (12, 29),
            "credential needs basic_password_file or basic_password_env",
        ),
        (
            t("credential = { header = \"X Token\", value_env = \"API_TOKEN\" }\n"),
            (12, 25),
            "not a valid HTTP header name",
        ),
        (
            t("credential = { header = \"Content-Length\", value_env = \"API_TOKEN\" }\n"),
            (12, 25),
            "frames the message",
        ),
        (
            t("credential = { header = \"X-Token\" }\n"),
            (12, 25),
            "credential needs value_file or value_env",
        ),
        (
            t("credential = { query = \"api key\", value_env = \"API_TOKEN\" }\n"),
            (12, 24),
            "query parameter name \"api key\"",
        ),
        (
            t("credential = { bearer_env = \"BAD_TOKEN\" }\n"),
            (12, 29),
            "env:BAD_TOKEN holds a control character",
        ),
        (
            t("credential = { header = \"X-T\", value_env = \"BAD_TOKEN\" }\n"),
            (12, 44),
            "holds a control character",
        ),
        (
            t("credential = { bearer_env = \"UNSET_X\" }\n"),
            (12, 29),
            "UNSET_X is not set",
        ),
        (
            t(&format!(
                "credential = {{ bearer_file = \"{}\" }}\n",
                open.display()
            )),
            (12, 30),
            "(mode 0644): chmod 600",
        ),
        (
            t("credential = { bearer_token = \"x\" }\n"),
            (12, 16),
            "unknown field `bearer_token`",
        ),
        // Limits.
        (
            t("max_request_header = \"64KB\"\n"),
            (12, 22),
            "write binary units",
        ),
        (
            t("max_request_header = 100\n"),
            (12, 22),
            "max_request_header must be between 1024 and 1048576 bytes, not 100",
        ),
        (
            t("max_body_buffer = \"2GiB\"\n"),
            (12, 19),
            "must be between",
        ),
        (t("max_body_buffer = -5\n"), (12, 19), "size -5 is negative"),
        (
            t("body_cap = \"16MiB\"\n"),
            (12, 12),
            "larger than max_body_buffer",
        ),
        (
            t("compressed = \"gzip\"\n"),
            (12, 14),
            "unknown variant `gzip`",
        ),
        (t("unmaskable = true\n"), (12, 14), "wanted string or table"),
        // Masking.
        (
            t("[target.http.masking]\njson_keys = [\"ok\", \"$..a\"]\n"),
            (13, 20),
            "invalid json_keys entry \"$..a\": recursive descent",
        ),
        (
            t("[target.http.masking]\njson_keys = [\"a..b\"]\n"),
            (13, 14),
            "empty key name",
        ),
        (
            t("[target.http.masking]\njson_keys = [\"$.a[\"]\n"),
            (13, 14),
            "invalid JSON path at byte 4",
        ),
        (
            t("[target.http.masking]\njson_keys = [{ key = \"ssn\", style = \"hash\" }]\n"),
            (13, 14),
            "json key \"ssn\": style \"hash\" needs a hash key: set hash_key_file",
        ),
        (
            t("[target.http.masking]\njson_keys = [{ key = \"ssn\", style = \"mask\" }]\n"),
            (13, 37),
            "unknown variant `mask`",
        ),
        (
            t("[target.http.masking]\njson_keys = [{ key = \"ssn\", colour = \"x\" }]\n"),
            (13, 29),
            "unknown field `colour`",
        ),
        (
            t("[target.http.masking]\njson_keys = [3]\n"),
            (13, 14),
            "a key glob or JSON path",
        ),
        (
            t(
                "[target.http.masking]\ndetectors = [{ detector = \"email\", style = \"redact\" }, { detector = \"email\", style = \"last4\" }]\n",
            ),
            (13, 56),
            "detector email is configured twice",
        ),
        (
            t("[target.http.masking]\ndetectors = [{ detector = \"card\", style = \"hash\" }]\n"),
            (13, 14),
            "needs a hash key, and none is configured: set hash_key_file",
        ),
        (
            t(&format!(
                "[target.http.masking]\nhash_key_file = \"{}\"\n",
                open_key.display()
            )),
            (13, 17),
            "(mode 0640): chmod 600",
        ),
        (
            t("[target.http.masking]\ncolumns = []\n"),
            (13, 1),
            "unknown field `columns`",
        ),
        // Request rules.
        (
            rule("[\"api\"]", "methods = []\n"),
            (22, 11),
            "methods is empty",
        ),
        (
            rule("[\"api\"]", "methods = [\"GET\", \"BAD METHOD\"]\n"),
            (22, 19),
            "method \"BAD METHOD\" is not an HTTP method name",
        ),
        (rule("[\"api\"]", "hosts = []\n"), (22, 9), "hosts is empty"),
        (
            rule("[\"api\"]", "hosts = [\"vault:8200\"]\n"),
            (22, 10),
            "hosts are matched without the port",
        ),
        (
            rule("[\"api\"]", "hosts = [\"[a\"]\n"),
            (22, 10),
            "invalid hosts glob",
        ),
        (rule("[\"api\"]", "paths = []\n"), (22, 9), "paths is empty"),
        (
            rule("[\"api\"]", "paths = [\"v1/x\"]\n"),
            (22, 10),
            "must start with \"/\"",
        ),
        (
            rule("[\"api\"]", "paths = [\"/v1//x\"]\n"),
            (22, 10),
            "never matches",
        ),
        (
            rule("[\"api\"]", "paths = [\"/v1/../x\"]\n"),
            (22, 10),
            "never matches",
        ),
        (
            rule("[\"api\"]", "paths = [\"/v1/./x\"]\n"),
            (22, 10),
            "never matches",
        ),
        (
            rule("[\"api\"]", "paths = [\"/api;v=2/**\"]\n"),
            (22, 10),
            "holding \";\" is refused",
        ),
        (
            rule("[\"api\"]", "paths = [\"/v1/%73ys\"]\n"),
            (22, 10),
            "never matches",
        ),
        (
            rule("[\"api\"]", "paths = [\"/v1/%3b\"]\n"),
            (22, 10),
            "never matches",
        ),
        (
            rule("[\"api\"]", "paths = [\"/v1/a%2Fb\"]\n"),
            (22, 10),
            "never matches",
        ),
        (
            rule("[\"api\"]", "paths = [\"/v1/%zz\"]\n"),
            (22, 10),
            "must start an escape",
        ),
        (
            rule("[\"api\"]", "paths = [\"/v1/[x\"]\n"),
            (22, 10),
            "invalid paths glob",
        ),
        (
            rule("[\"api\"]", "paths = [\"/a\"]\npath_prefix = [\"/b\"]\n"),
            (23, 15),
            "give only one of paths, path_prefix, path_regex",
        ),
        (
            rule("[\"api\"]", "path_prefix = [\"/b\"]\npath_regex = \"/a\"\n"),
            (23, 14),
            "give only one of paths, path_prefix, path_regex",
        ),
        (
            rule("[\"api\"]", "path_prefix = [\"b\"]\n"),
            (22, 16),
            "must start with \"/\"",
        ),
        (
            rule("[\"api\"]", "path_prefix = []\n"),
            (22, 15),
            "path_prefix is empty",
        ),
        (
            rule("[\"api\"]", "path_regex = \"(\"\n"),
            (22, 14),
            "invalid path_regex",
        ),
        (
            rule("[\"api\"]", "path_regex = \"\\\\w{1000}{1000}\"\n"),
            (22, 14),
            "too large once compiled",
        ),
        (
            rule(
                "[\"api\"]",
                &format!("path_regex = \"{}\"\n", "a".repeat(5000)),
            ),
            (22, 14),
            "longer than 4096",
        ),
        (rule("[\"api\"]", "query = {}\n"), (22, 9), "query is empty"),
        (
            rule("[\"api\"]", "query = { a = \"[\" }\n"),
            (22, 15),
            "invalid query glob",
        ),
        (
            rule("[\"api\"]", "headers = { \"bad header\" = \"x\" }\n"),
            (22, 13),
            "invalid header name \"bad header\"",
        ),
        (
            rule(
                "[\"api\"]",
                "headers = { \"X-A\" = \"1\", \"x-a\" = \"2\" }\n",
            ),
            (22, 26),
            "given twice",
        ),
        (
            rule("[\"api\"]", "verbs = [\"get\"]\n"),
            (22, 1),
            "unknown field `verbs`",
        ),
        (
            rule("[\"api\", \"web\"]", ""),
            (19, 11),
            "it names target \"web\" (tcp) where tollgate sees no request",
        ),
        (
            rule("[\"*\"]", "methods = [\"GET\"]\n"),
            (19, 11),
            "targets = [\"*\"] includes target \"web\" (tcp)",
        ),
        (
            rule("[\"api\"]", "").replace("tls = \"none\"", "tls = \"passthrough\""),
            (19, 11),
            "target \"api\" (http, tls = \"passthrough\") where tollgate sees no request",
        ),
        (
            rule("[\"api\"]", "[rule.postgres]\n"),
            (17, 8),
            "has both [rule.postgres] and [rule.http]",
        ),
    ];
    let mut wrong = Vec::new();
    for (i, (text, (line, column), reason)) in cases.iter().enumerate() {
        let errs = errors_of(text);
        let got: Vec<_> = errs.iter().map(ToString::to_string).collect();
        let ok = matches!(errs.as_slice(), [e] if (e.line, e.column) == (*line, *column)
            && e.reason.contains(reason)
            && !e.to_string().contains('\n'));
        if !ok {
            wrong.push(format!(
                "case {i}: want {line}:{column} {reason:?}, got {got:#?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn secret_errors_never_show_the_secret() {
    let errs = errors_of(&api(
        "none",
        "credential = { bearer_env = \"BAD_TOKEN\" }\n",
    ));
    let shown = format!("{errs:?} {}", crate::policy::PolicyErrors(errs.clone()));
    assert!(
        !shown.contains("line1") && !shown.contains("X-Injected"),
        "{shown}"
    );
}

#[test]
fn request_rule_naming_a_tcp_target_of_another_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("a.toml"), format!("{ETL}{WEB}")).unwrap();
    fs::write(
        d.join("b.toml"),
        format!(
            "{API}[[rule]]\nname = \"r\"\nworkloads = [\"etl\"]\ntargets = [\"api\", \"web\"]\n\
             action = \"allow\"\n[rule.http]\nmethods = [\"GET\"]\n"
        ),
    )
    .unwrap();
    let errs = load_dir(d, None).unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = &errs[0];
    assert_eq!(
        (e.file.as_path(), e.line, e.column),
        (d.join("b.toml").as_path(), 10, 11)
    );
    assert!(
        e.reason.contains("rule \"r\" has a [rule.http] section"),
        "{e}"
    );
}

/// A credential over TLS goes to the server the policy names: without `server_name` the name
/// verified would be the task's SNI or Host, any site on a shared address.
#[test]
fn a_credential_over_tls_needs_server_name() {
    for tls in ["originate", "terminate"] {
        let text = api(tls, "credential = { bearer_env = \"API_TOKEN\" }\n");
        let errs = errors_of(&text);
        assert!(
            errs.iter()
                .any(|e| e.to_string().contains("needs server_name")),
            "{tls}: {errs:?}"
        );
    }
    // A client certificate is tollgate's identity too.
    let dir = tempfile::tempdir().unwrap();
    let cert = secret_file(dir.path(), "c.crt", "-----BEGIN CERTIFICATE-----", 0o644);
    let key = secret_file(dir.path(), "c.key", "-----BEGIN PRIVATE KEY-----", 0o600);
    let mtls = format!(
        "client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let errs = errors_of(&api("originate", &mtls));
    assert!(
        errs.iter()
            .any(|e| e.to_string().contains("a client certificate")),
        "{errs:?}"
    );
    policy(&api(
        "none",
        "credential = { bearer_env = \"API_TOKEN\" }\n",
    ));
    policy(&api(
        "terminate",
        "server_name = \"api.internal\"\ncredential = { bearer_env = \"API_TOKEN\" }\n",
    ));
}

/// A policy whose secrets are in `dir`: a bearer token file and a masking hash key.
fn with_secrets(dir: &Path, token: &str, extra_rule: &str) -> String {
    format!(
        r#"{ETL}
[[target]]
name = "api"
protocol = "http"
addresses = ["127.0.0.1:8200"]
[target.http]
tls = "originate"
server_name = "api.internal"
credential = {{ bearer_file = "{token}" }}
[target.http.masking]
hash_key_file = "{key}"
json_keys = [{{ key = "ssn", style = "hash" }}]

[[rule]]
name = "r"
workloads = ["etl"]
targets = ["api"]
action = "allow"
[rule.http]
methods = ["GET"]
{extra_rule}"#,
        token = dir.join(token).display(),
        key = dir.join("mask.key").display(),
    )
}

#[test]
fn fingerprint_covers_settings_but_not_secret_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    secret_file(d, "token", "file-token-1", 0o600);
    secret_file(d, "token2", "file-token-1", 0o600);
    secret_file(d, "mask.key", "hash-key-bytes-1", 0o600);
    let base = policy(&with_secrets(d, "token", "")).fingerprint();

    // New secret values behind the same sources: same fingerprint.
    secret_file(d, "token", "file-token-2", 0o600);
    secret_file(d, "mask.key", "hash-key-bytes-2", 0o600);
    assert_eq!(policy(&with_secrets(d, "token", "")).fingerprint(), base);

    let s = with_secrets(d, "token", "");
    let changed = [
        with_secrets(d, "token2", ""),
        with_secrets(d, "token", "paths = [\"/a\"]\n"),
        with_secrets(d, "token", "path_prefix = [\"/a\"]\n"),
        with_secrets(d, "token", "path_regex = \"/a\"\n"),
        with_secrets(d, "token", "hosts = [\"a\"]\n"),
        with_secrets(d, "token", "query = { a = \"b\" }\n"),
        with_secrets(d, "token", "headers = { a = \"b\" }\n"),
        s.replace("methods = [\"GET\"]", "methods = [\"GET\", \"HEAD\"]"),
        s.replace("tls = \"originate\"", "tls = \"terminate\""),
        s.replace("style = \"hash\"", "style = \"redact\""),
        s.replace("key = \"ssn\"", "key = \"$.ssn\""),
        s.replace(
            "[target.http.masking]",
            "record_bodies = true\n[target.http.masking]",
        ),
        s.replace(
            "[target.http.masking]",
            "body_cap = 10\n[target.http.masking]",
        ),
        s.replace(
            "[target.http.masking]",
            "compressed = \"refuse\"\n[target.http.masking]",
        ),
        s.replace(
            "[target.http.masking]",
            "strip_client_credentials = false\n[target.http.masking]",
        ),
        s.replace(
            "[target.http.masking]",
            "max_body_buffer = \"1MiB\"\n[target.http.masking]",
        ),
        s.replace(
            "json_keys",
            "detectors = [{ detector = \"card\", style = \"last4\" }]\njson_keys",
        ),
    ];
    for text in &changed {
        assert_ne!(policy(text).fingerprint(), base, "{text}");
    }
    // Order, duplicates and case of case-insensitive lists do not matter.
    let a = with_secrets(d, "token", "hosts = [\"B\", \"a\", \"A\"]\n");
    let b = with_secrets(d, "token", "hosts = [\"a\", \"b\"]\n");
    assert_eq!(policy(&a).fingerprint(), policy(&b).fingerprint());
}

#[test]
fn debug_of_a_policy_shows_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    secret_file(d, "token", "file-token-1\n", 0o600);
    secret_file(d, "mask.key", "hash-key-bytes-1", 0o600);
    let mut texts = vec![with_secrets(d, "token", "")];
    for cred in [
        "{ basic_user = \"u\", basic_password_env = \"API_TOKEN\" }",
        "{ header = \"X-T\", value_env = \"API_TOKEN\" }",
        "{ query = \"k\", value_env = \"API_TOKEN\" }",
        "{ bearer_env = \"API_TOKEN\" }",
    ] {
        texts.push(api("none", &format!("credential = {cred}\n")));
    }
    for text in texts {
        let p = policy(&text);
        for shown in [format!("{p:?}"), format!("{p:#?}")] {
            for secret in ["file-token-1", "env-token-1", "hash-key-bytes-1"] {
                assert!(!shown.contains(secret), "{secret} shown in Debug");
            }
            assert!(shown.contains("<redacted>"));
        }
    }
}
