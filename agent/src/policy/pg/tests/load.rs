//! Loading `[target.postgres]` and `[rule.postgres]`: every key, secrets, strictness, error
//! locations, cross-file checks, fingerprint, and no secret in `Debug`.
use std::{fs, path::Path};

use super::{load, policy, secret_file};
use crate::{
    policy::{
        BinaryResults, CredentialSecret, PolicyError, Protocol, SecretOrigin, UpstreamTls, load_dir,
    },
    postgres::sql::StatementClass,
};

/// A valid workload, 5 lines.
const ETL: &str = r#"[[workload]]
name = "etl"
spiffe_id = "spiffe://example.org/etl"
[workload.selector]
uid = 1000
"#;

/// A valid postgres target, 8 lines (lines 6 to 13 after [`ETL`]).
const PG: &str = r#"[[target]]
name = "db"
protocol = "postgres"
addresses = ["127.0.0.1:5432"]
[target.postgres]
[[target.postgres.credential]]
role = "etl"
password_env = "PG_PW"
"#;

/// A valid tcp target, 4 lines.
const WEB: &str = r#"[[target]]
name = "web"
protocol = "tcp"
addresses = ["127.0.0.1:8080"]
"#;

fn errors_of(text: &str) -> Vec<PolicyError> {
    match load(text) {
        Ok(_) => panic!("should not load:\n{text}"),
        Err(e) => e.0,
    }
}

#[test]
fn parses_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pw = secret_file(d, "pw", "file-password-1\n", 0o600);
    let key = secret_file(d, "mask.key", "hash-key-bytes-1", 0o400);
    let client_key = secret_file(d, "client.key", "-----BEGIN PRIVATE KEY-----", 0o600);
    let cert = secret_file(d, "client.crt", "-----BEGIN CERTIFICATE-----", 0o644);
    let ca = secret_file(d, "ca.pem", "-----BEGIN CERTIFICATE-----", 0o644);
    let text = format!(
        r#"{ETL}
[[target]]
name = "db"
protocol = "postgres"
addresses = ["127.0.0.1:5432", "db.internal:5432"]
[target.postgres]
upstream_tls = "verify-full"
ca_file = "{ca}"
server_name = "db.internal"
client_tls = false
binary_results = "allow"
redact_literals = false
max_statement_bytes = "4MiB"
[[target.postgres.credential]]
role = "etl"
password_file = "{pw}"
[[target.postgres.credential]]
role = "app"
password_env = "PG_PW"
[[target.postgres.credential]]
role = "cert-user"
client_cert_file = "{cert}"
client_key_file = "{client_key}"
[target.postgres.masking]
hash_key_file = "{key}"
columns = [{{ name = "*card*", style = "last4" }}, {{ name = "email", table = "public.*", style = "hash" }}]
detectors = [{{ detector = "email", style = "redact" }}]

[[rule]]
name = "reads"
workloads = ["etl"]
targets = ["db"]
action = "allow"
[rule.postgres]
classes = ["transaction", "select", "copy_to", "select"]
tables = ["Public.Orders", "orders_*", "public.orders"]
regex = "^\\s*(select|begin|commit)"
databases = ["orders", "orders"]
roles = ["etl", "app"]
"#,
        ca = ca.display(),
        pw = pw.display(),
        cert = cert.display(),
        client_key = client_key.display(),
        key = key.display(),
    );
    let p = policy(&text);
    let t = p.target("db").unwrap();
    assert_eq!(t.protocol, Protocol::Postgres);
    let pg = t.postgres.as_ref().unwrap();
    assert_eq!(pg.upstream_tls, UpstreamTls::VerifyFull);
    assert_eq!(pg.ca_file.as_deref(), Some(ca.as_path()));
    assert_eq!(pg.server_name.as_deref(), Some("db.internal"));
    assert!(!pg.client_tls && !pg.redact_literals);
    assert_eq!(pg.binary_results, BinaryResults::Allow);
    assert_eq!(pg.max_statement_bytes, 4 << 20);
    let roles: Vec<&str> = pg.credentials.iter().map(|c| c.role.as_str()).collect();
    assert_eq!(roles, ["app", "cert-user", "etl"]);
    match &pg.credential("etl").unwrap().secret {
        CredentialSecret::Password(s) => {
            assert_eq!(s.expose(), b"file-password-1");
            assert_eq!(s.origin(), &SecretOrigin::File(pw.clone()));
        }
        other => panic!("{other:?}"),
    }
    match &pg.credential("app").unwrap().secret {
        CredentialSecret::Password(s) => {
            assert_eq!(s.expose(), b"env-password-1");
            assert_eq!(s.origin(), &SecretOrigin::Env("PG_PW".into()));
        }
        other => panic!("{other:?}"),
    }
    match &pg.credential("cert-user").unwrap().secret {
        CredentialSecret::ClientCert { cert: c, key: k } => {
            assert_eq!((c, k), (&cert, &client_key));
        }
        other => panic!("{other:?}"),
    }
    let masking = pg.masking.as_ref().unwrap();
    assert_eq!((masking.columns.len(), masking.detectors.len()), (2, 1));
    assert_eq!(pg.hash_key.as_ref().unwrap().expose(), b"hash-key-bytes-1");
    let masker = pg.masker.as_ref().unwrap();
    assert_eq!(
        masker.column_style(None, "CARD_NUMBER").map(|c| c.rule()),
        Some("*card*")
    );

    let r = p.rules()[0].postgres.as_ref().unwrap();
    use StatementClass::*;
    assert_eq!(
        r.classes.as_deref(),
        Some(&[CopyTo, Select, Transaction][..])
    );
    assert_eq!(
        r.tables.as_ref().unwrap().patterns(),
        ["orders_*", "public.orders"]
    );
    assert!(r.tables.as_ref().unwrap().matches("PUBLIC.orders"));
    assert!(r.regex.as_ref().unwrap().is_match("  select 1"));
    assert_eq!(r.databases.as_deref(), Some(&["orders".to_owned()][..]));
    assert_eq!(
        r.roles.as_deref(),
        Some(&["app".to_owned(), "etl".to_owned()][..])
    );
}

#[test]
fn defaults() {
    let p = policy(&format!("{ETL}{PG}"));
    let pg = p.target("db").unwrap().postgres.as_ref().unwrap();
    assert_eq!(pg.upstream_tls, UpstreamTls::Prefer);
    assert_eq!(pg.binary_results, BinaryResults::Refuse);
    assert!(pg.client_tls && pg.redact_literals);
    assert_eq!(pg.max_statement_bytes, 1 << 20);
    assert!(pg.ca_file.is_none() && pg.server_name.is_none());
    assert!(pg.masking.is_none() && pg.hash_key.is_none() && pg.masker.is_none());
    let rule = format!(
        "{ETL}{PG}[[rule]]\nname = \"r\"\nworkloads = [\"etl\"]\ntargets = [\"db\"]\naction = \"allow\"\n[rule.postgres]\n"
    );
    let r = policy(&rule).rules()[0].postgres.clone().unwrap();
    assert!(r.classes.is_none() && r.tables.is_none() && r.regex.is_none());
    assert!(r.databases.is_none() && r.roles.is_none());
    // Dotted keys create the sections implicitly.
    let dotted = format!(
        "{ETL}{}[[rule]]\nname = \"r\"\nworkloads = [\"etl\"]\ntargets = [\"db\"]\n\
         action = \"allow\"\npostgres.classes = [\"select\"]\n",
        PG.replace("[target.postgres]\n", "postgres.client_tls = false\n")
    );
    let p = policy(&dotted);
    assert!(
        !p.target("db")
            .unwrap()
            .postgres
            .as_ref()
            .unwrap()
            .client_tls
    );
    let r = p.rules()[0].postgres.as_ref().unwrap();
    assert_eq!(r.classes.as_deref(), Some(&[StatementClass::Select][..]));
}

/// Each case: policy text, expected (line, column) of its only error, and a part of the reason.
#[test]
fn error_locations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let open_pw = secret_file(d, "open-pw", "pw", 0o644);
    let group_key = secret_file(d, "group.key", "key", 0o640);
    let ok_pw = secret_file(d, "ok-pw", "pw", 0o600);
    let cert = secret_file(d, "c.crt", "cert", 0o644);
    let open_client_key = secret_file(d, "c.key", "key", 0o644);

    // `PG` with `extra` after its credential (line 14 onwards).
    let pg_with = |extra: &str| format!("{ETL}{PG}{extra}");
    // `PG` with its credential's secret line (line 13) replaced.
    let cred = |line: &str| format!("{ETL}{}", PG.replace("password_env = \"PG_PW\"\n", line));
    let rule = |targets: &str, pg: &str| {
        format!(
            "{ETL}{PG}{WEB}[[rule]]\nname = \"r\"\nworkloads = [\"etl\"]\ntargets = {targets}\n\
             action = \"allow\"\n[rule.postgres]\n{pg}"
        )
    };
    let no_section = format!("{ETL}{}", PG.split("[target.postgres]").next().unwrap());
    let tcp_with_section = format!("{ETL}{WEB}[target.postgres]\nclient_tls = true\n");
    let open_file = cred(&format!("password_file = \"{}\"\n", open_pw.display()));
    let two_secrets = cred(&format!(
        "password_file = \"{}\"\npassword_env = \"PG_PW\"\n",
        ok_pw.display()
    ));
    let open_key = cred(&format!(
        "client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
        cert.display(),
        open_client_key.display()
    ));
    let cert_no_tls = format!(
        "{ETL}{}",
        PG.replace(
            "[target.postgres]\n",
            "[target.postgres]\nupstream_tls = \"disable\"\n"
        )
        .replace(
            "password_env = \"PG_PW\"\n",
            &format!(
                "client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
                cert.display(),
                ok_pw.display()
            )
        )
    );
    let verify_ip = format!(
        "{ETL}{}",
        PG.replace(
            "[target.postgres]\n",
            "[target.postgres]\nupstream_tls = \"verify-full\"\n"
        )
    );
    let hash_no_key =
        pg_with("[target.postgres.masking]\ncolumns = [{ name = \"ssn\", style = \"hash\" }]\n");
    let bad_column = pg_with(
        "[target.postgres.masking]\ncolumns = [\n  { name = \"a\", style = \"redact\" },\n  { name = \"[b\", style = \"redact\" },\n]\n",
    );
    let dup_detector = pg_with(
        "[target.postgres.masking]\ndetectors = [\n  { detector = \"email\", style = \"redact\" },\n  { detector = \"email\", style = \"last4\" },\n]\n",
    );
    let open_hash_key = pg_with(&format!(
        "[target.postgres.masking]\nhash_key_file = \"{}\"\n",
        group_key.display()
    ));
    let cases: Vec<(String, (usize, usize), &str)> = vec![
        (
            no_section,
            (8, 12),
            "protocol \"postgres\" needs a [target.postgres] section",
        ),
        (
            tcp_with_section,
            (8, 12),
            "protocol \"tcp\" takes no [target.postgres] section",
        ),
        (
            format!(
                "{ETL}{}",
                PG.replace("[target.postgres]\n", "[target.postgres]\ncolour = 1\n")
            ),
            (11, 1),
            "unknown field `colour`",
        ),
        (
            format!(
                "{ETL}{}",
                PG.replace(
                    "[target.postgres]\n",
                    "[target.postgres]\nmax_statement_bytes = \"128MiB\"\n"
                )
            ),
            (11, 23),
            "max_statement_bytes must be between 1024 and 67108864 bytes",
        ),
        (
            cred("password_env = \"PG_PW\"\nuser = \"x\"\n"),
            (14, 1),
            "unknown field `user`",
        ),
        (
            pg_with("[target.postgres.masking]\ncolour = 1\n"),
            (15, 1),
            "unknown field `colour`",
        ),
        (
            rule("[\"db\"]", "colour = 1\n"),
            (24, 1),
            "unknown field `colour`",
        ),
        (
            rule("[\"db\"]", "classes = [\"select\", \"drop\"]\n"),
            (24, 22),
            "unknown variant `drop`",
        ),
        (
            rule("[\"db\"]", "classes = []\n"),
            (24, 11),
            "classes is empty",
        ),
        (
            rule("[\"db\"]", "tables = [\"a\", \"[b\"]\n"),
            (24, 16),
            "invalid table glob \"[b\"",
        ),
        (
            rule("[\"db\"]", "tables = [\"\"]\n"),
            (24, 11),
            "must not be empty",
        ),
        (
            rule("[\"db\"]", "regex = \"(select\"\n"),
            (24, 9),
            "invalid regex: unclosed group",
        ),
        (
            rule("[\"db\"]", &format!("regex = \"{}\"\n", "a".repeat(5000))),
            (24, 9),
            "longer than 4096",
        ),
        (
            rule("[\"db\"]", "regex = \"\\\\w{1000}{1000}\"\n"),
            (24, 9),
            "invalid regex: too large once compiled",
        ),
        (
            rule("[\"db\"]", "databases = []\n"),
            (24, 13),
            "databases is empty",
        ),
        (
            rule("[\"db\"]", "roles = [\"etl\", \"\"]\n"),
            (24, 17),
            "roles holds an empty name",
        ),
        (
            rule("[\"db\", \"web\"]", ""),
            (21, 11),
            "it names target \"web\" (tcp) that is not a postgres target",
        ),
        (
            rule("[\"*\"]", "classes = [\"select\"]\n"),
            (21, 11),
            "targets = [\"*\"] includes target \"web\" (tcp)",
        ),
        (
            cred(""),
            (11, 1),
            "credential for role \"etl\" needs one of password_file",
        ),
        (
            two_secrets,
            (14, 16),
            "give only one of password_file, password_env",
        ),
        (
            open_file,
            (13, 17),
            "is readable by others (mode 0644): chmod 600",
        ),
        (
            cred("password_file = \"/nonexistent/tollgate/pw\"\n"),
            (13, 17),
            "cannot open secret file",
        ),
        (
            cred("password_file = \"relative/pw\"\n"),
            (13, 17),
            "must be an absolute path",
        ),
        (
            cred("password_env = \"TOLLGATE_TEST_UNSET\"\n"),
            (13, 16),
            "TOLLGATE_TEST_UNSET is not set",
        ),
        (open_key, (14, 19), "(mode 0644): chmod 600"),
        (
            cred(&format!("client_cert_file = \"{}\"\n", cert.display())),
            (13, 20),
            "go together",
        ),
        (cert_no_tls, (14, 20), "must not be \"disable\""),
        (verify_ip, (11, 16), "needs server_name"),
        (
            format!(
                "{ETL}{}",
                PG.replace(
                    "[target.postgres]\n",
                    "[target.postgres]\nupstream_tls = \"verify-ca\"\n"
                )
            ),
            (11, 16),
            "unknown variant `verify-ca`",
        ),
        (
            format!(
                "{ETL}{}",
                PG.replace(
                    "[[target.postgres.credential]]\nrole = \"etl\"\npassword_env = \"PG_PW\"\n",
                    ""
                )
            ),
            (8, 12),
            "needs at least one [[target.postgres.credential]]",
        ),
        (
            pg_with("[[target.postgres.credential]]\nrole = \"etl\"\npassword_env = \"PG_PW2\"\n"),
            (15, 8),
            "role \"etl\" has two credentials",
        ),
        (
            hash_no_key,
            (15, 12),
            "style \"hash\" needs a hash key, and none is configured: set hash_key_file",
        ),
        (bad_column, (17, 3), "invalid name glob \"[b\""),
        (dup_detector, (17, 3), "detector email is configured twice"),
        (open_hash_key, (15, 17), "(mode 0640): chmod 600"),
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
fn ssh_is_not_supported_yet() {
    let errs = errors_of(&WEB.replace("\"tcp\"", "\"ssh\""));
    assert!(errs[0].reason.contains("is not supported yet"), "{errs:?}");
    assert_eq!((errs[0].line, errs[0].column), (3, 12));
}

#[test]
fn statement_rule_naming_a_tcp_target_of_another_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pw = secret_file(d, "pw", "pw", 0o600);
    fs::write(d.join("a.toml"), format!("{ETL}{WEB}")).unwrap();
    fs::write(
        d.join("b.toml"),
        format!(
            "{}[[rule]]\nname = \"r\"\nworkloads = [\"etl\"]\ntargets = [\"web\", \"db\"]\n\
             action = \"deny\"\n[rule.postgres]\nclasses = [\"ddl\"]\n",
            PG.replace(
                "password_env = \"PG_PW\"",
                &format!("password_file = \"{}\"", pw.display())
            )
        ),
    )
    .unwrap();
    let errs = load_dir(d, None).unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = &errs[0];
    assert_eq!(
        (e.file.as_path(), e.line, e.column),
        (d.join("b.toml").as_path(), 12, 11)
    );
    assert!(
        e.reason
            .contains("rule \"r\" has a [rule.postgres] section"),
        "{e}"
    );
}

/// Builds a policy whose secrets are in `dir`: a password file, an env password, a hash key.
fn with_secrets(dir: &Path, pw_file: &str, extra_rule: &str) -> String {
    format!(
        r#"{ETL}
[[target]]
name = "db"
protocol = "postgres"
addresses = ["127.0.0.1:5432"]
[[target.postgres.credential]]
role = "etl"
password_file = "{pw}"
[[target.postgres.credential]]
role = "app"
password_env = "PG_PW"
[target.postgres.masking]
hash_key_file = "{key}"
columns = [{{ name = "ssn", style = "hash" }}]

[[rule]]
name = "r"
workloads = ["etl"]
targets = ["db"]
action = "allow"
[rule.postgres]
classes = ["select"]
{extra_rule}"#,
        pw = dir.join(pw_file).display(),
        key = dir.join("mask.key").display(),
    )
}

#[test]
fn fingerprint_covers_settings_but_not_secret_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    secret_file(d, "pw", "file-password-1", 0o600);
    secret_file(d, "pw2", "file-password-1", 0o600);
    secret_file(d, "mask.key", "hash-key-bytes-1", 0o600);
    let base = policy(&with_secrets(d, "pw", "")).fingerprint();

    // New secret values behind the same sources: same fingerprint.
    secret_file(d, "pw", "file-password-2", 0o600);
    secret_file(d, "mask.key", "hash-key-bytes-2", 0o600);
    assert_eq!(policy(&with_secrets(d, "pw", "")).fingerprint(), base);

    let changed = [
        with_secrets(d, "pw2", ""),
        with_secrets(d, "pw", "tables = [\"t\"]\n"),
        with_secrets(d, "pw", "regex = \"x\"\n"),
        with_secrets(d, "pw", "roles = [\"etl\"]\n"),
        with_secrets(d, "pw", "databases = [\"etl\"]\n"),
        with_secrets(d, "pw", "")
            .replace("classes = [\"select\"]", "classes = [\"select\", \"set\"]"),
        with_secrets(d, "pw", "").replace("\"PG_PW\"", "\"PG_PW2\""),
        with_secrets(d, "pw", "").replace("style = \"hash\"", "style = \"redact\""),
        with_secrets(d, "pw", "").replace(
            "[[target.postgres.credential]]\nrole = \"etl\"",
            "[target.postgres]\nclient_tls = false\n[[target.postgres.credential]]\nrole = \"etl\"",
        ),
    ];
    for text in &changed {
        assert_ne!(policy(text).fingerprint(), base, "{text}");
    }
    // Order and duplicates in lists do not matter.
    let reordered = with_secrets(d, "pw", "tables = [\"b\", \"A\", \"a\"]\n");
    let sorted = with_secrets(d, "pw", "tables = [\"a\", \"b\"]\n");
    assert_eq!(
        policy(&reordered).fingerprint(),
        policy(&sorted).fingerprint()
    );
}

#[test]
fn debug_of_a_policy_shows_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    secret_file(d, "pw", "file-password-1\n", 0o600);
    secret_file(d, "mask.key", "hash-key-bytes-1", 0o600);
    let p = policy(&with_secrets(d, "pw", ""));
    for shown in [format!("{p:?}"), format!("{p:#?}")] {
        for secret in ["file-password-1", "env-password-1", "hash-key-bytes-1"] {
            assert!(!shown.contains(secret), "{secret} shown in Debug");
        }
        assert!(shown.contains("<redacted>"));
    }
    let errs = errors_of(&with_secrets(d, "missing", ""));
    assert!(!format!("{errs:?}").contains("hash-key-bytes-1"));
}
