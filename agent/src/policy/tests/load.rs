//! Loading: strict parsing, errors at the right line and column, every error collected,
//! multi-file checks.
use std::{fs, path::Path};

use super::{load, policy};
use crate::policy::{Mode, Names, PolicyError, Protocol, Verdict, load_dir, load_str};

/// A valid workload, 5 lines, for cases that need one.
const ETL: &str = r#"[[workload]]
name = "etl"
spiffe_id = "spiffe://example.org/etl"
[workload.selector]
cgroup = "/tollgate.slice/run-etl-*"
"#;

/// A valid target, 4 lines.
const DB: &str = r#"[[target]]
name = "db"
protocol = "tcp"
addresses = ["127.0.0.1:5432"]
"#;

fn errors_of(text: &str) -> Vec<PolicyError> {
    match load(text) {
        Ok(_) => panic!("should not load:\n{text}"),
        Err(e) => e.0,
    }
}

#[test]
fn parses_a_full_policy() {
    let p = policy(
        r#"
[[workload]]
name = "etl"
description = "nightly ETL"
spiffe_id = "spiffe://example.org/etl/nightly"
mode = "audit"
priority = 5
[workload.selector]
cgroup = "/tollgate.slice/run-etl-*"
systemd_unit = "etl-*.service"
uid = [1001, 1000, 1000]
gid = 1000
exe = "/usr/bin/python3*"

[[target]]
name = "orders-db"
protocol = "tcp"
addresses = ["10.0.0.5:5432", "10.0.0.0/24:5432", "[fd00::1]:443", "[fd00::/64]:443",
             "orders-db.internal:5432", "127.0.0.1:8000-8100", "10.1.2.3:*"]

[[rule]]
name = "etl-reads-orders"
workloads = ["etl"]
targets = ["orders-db", "orders-db"]
action = "allow"

[[rule]]
name = "nobody-else"
workloads = ["*"]
targets = ["*"]
action = "deny"
"#,
    );
    let w = &p.workloads()[0];
    assert_eq!(
        (w.name.as_str(), w.mode, w.priority),
        ("etl", Mode::Audit, 5)
    );
    assert_eq!(w.spiffe_id.path(), "/etl/nightly");
    assert_eq!(w.selector.uid, Some(vec![1000, 1001]));
    assert_eq!(w.selector.count(), 5);
    let t = &p.targets()[0];
    assert_eq!((t.protocol, t.addresses.len()), (Protocol::Tcp, 7));
    assert_eq!(p.rules()[0].targets, Names::Some(vec!["orders-db".into()]));
    assert_eq!(p.rules()[1].workloads, Names::All);
    assert_eq!(p.rules()[1].action, Verdict::Deny);
    assert_eq!(p.dns_names(), ["orders-db.internal"]);
}

#[test]
fn mode_and_priority_default() {
    let p = policy(ETL);
    assert_eq!(
        (p.workloads()[0].mode, p.workloads()[0].priority),
        (Mode::Enforce, 0)
    );
}

#[test]
fn empty_policy_loads() {
    assert!(policy("# nothing yet\n").workloads().is_empty());
}

/// Each case: policy text, expected (line, column) of its only error, and a part of the reason.
#[test]
fn error_locations() {
    let unknown_key = format!("{ETL}colour = \"blue\"\n");
    let bad_glob = ETL.replace("run-etl-*", "run-etl-[*");
    let relative_cgroup = ETL.replace("\"/tollgate.slice", "\"tollgate.slice");
    let bad_id = ETL.replace("spiffe://example.org/etl", "spiffe://Example.org/etl");
    let td_only = ETL.replace("spiffe://example.org/etl", "spiffe://example.org");
    let bad_mode = ETL.replace("name = \"etl\"\n", "name = \"etl\"\nmode = \"block\"\n");
    let bad_name = ETL.replace("name = \"etl\"", "name = \"etl nightly\"");
    let unit_slash = ETL.replace(
        "cgroup = \"/tollgate.slice/run-etl-*\"",
        "systemd_unit = \"a/b\"",
    );
    let big_uid = ETL.replace(
        "cgroup = \"/tollgate.slice/run-etl-*\"",
        "uid = [1, 4294967295]",
    );
    let empty_uids = ETL.replace("cgroup = \"/tollgate.slice/run-etl-*\"", "uid = []");
    let postgres = DB.replace("\"tcp\"", "\"postgres\"");
    let udp = DB.replace("\"tcp\"", "\"udp\"");
    let multiline = DB.replace(
        "[\"127.0.0.1:5432\"]",
        "[\n  \"127.0.0.1:5432\",\n  \"10.0.0.1/8:5432\",\n]",
    );
    let rule = |w: &str, t: &str| {
        format!(
            "{ETL}{DB}[[rule]]\nname = \"r\"\nworkloads = {w}\ntargets = {t}\naction = \"allow\"\n"
        )
    };
    let unknown_workload = rule("[\"etl\", \"web\"]", "[\"db\"]");
    let unknown_target = rule("[\"etl\"]", "[\"db\", \"cache\"]");
    let star_mixed = rule("[\"etl\"]", "[\"db\", \"*\"]");
    let no_targets = rule("[\"etl\"]", "[]");
    let bad_action = rule("[\"etl\"]", "[\"db\"]").replace("\"allow\"", "\"permit\"");
    let cases: &[(&str, (usize, usize), &str)] = &[
        (&unknown_key, (6, 1), "unknown field `colour`"),
        (
            "[[workload]\n",
            (1, 11),
            "invalid table header; expected `.`, `]]`",
        ),
        (&bad_glob, (5, 10), "invalid cgroup glob"),
        (&relative_cgroup, (5, 10), "must start with \"/\""),
        (&bad_id, (3, 13), "trust domain character 'E'"),
        (&td_only, (3, 13), "add a path"),
        (&bad_mode, (3, 8), "unknown variant `block`"),
        (&bad_name, (2, 8), "' ' is not allowed"),
        (&unit_slash, (5, 16), "without \"/\""),
        (&big_uid, (5, 7), "id 4294967295 is out of range"),
        (&empty_uids, (5, 7), "list of ids is empty"),
        (
            "[[workload]]\nname = \"e\"\nspiffe_id = \"spiffe://td/e\"\n",
            (1, 1),
            "missing field `selector`",
        ),
        (
            "[[workload]]\nname = \"e\"\nspiffe_id = \"spiffe://td/e\"\n[workload.selector]\n",
            (4, 1),
            "selector is empty",
        ),
        (
            "[[workload]]\nname = \"e\"\nspiffe_id = \"spiffe://td/e\"\nselector = {}\n",
            (4, 12),
            "selector is empty",
        ),
        (
            &postgres,
            (3, 12),
            "protocol \"postgres\" needs a [target.postgres] section",
        ),
        (&udp, (3, 12), "unknown protocol \"udp\""),
        (&multiline, (6, 3), "did you mean 10.0.0.0/8"),
        (
            "[[target]]\nname = \"t\"\nprotocol = \"tcp\"\naddresses = []\n",
            (4, 13),
            "addresses is empty",
        ),
        (
            &unknown_workload,
            (12, 21),
            "rule \"r\" names unknown workload \"web\"",
        ),
        (
            &unknown_target,
            (13, 18),
            "rule \"r\" names unknown target \"cache\"",
        ),
        (&star_mixed, (13, 18), "must be the only entry"),
        (&no_targets, (13, 11), "targets is empty"),
        (&bad_action, (14, 10), "unknown variant `permit`"),
    ];
    for (text, (line, column), reason) in cases {
        let errs = errors_of(text);
        let got: Vec<_> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(errs.len(), 1, "{got:#?}\n{text}");
        let e = &errs[0];
        assert_eq!((e.line, e.column), (*line, *column), "{got:#?}\n{text}");
        assert!(e.reason.contains(reason), "{got:#?}\n{text}");
        assert_eq!(e.file, Path::new("p.toml"));
        assert!(!e.to_string().contains('\n'), "one line per error: {e}");
    }
}

#[test]
fn trust_domain_mismatch() {
    let errs = load_str(Path::new("p.toml"), ETL, Some("prod.example.org")).unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    assert_eq!((errs.0[0].line, errs.0[0].column), (3, 13));
    assert!(errs.0[0].reason.contains("\"prod.example.org\""), "{errs}");
    assert!(load_str(Path::new("p.toml"), ETL, Some("example.org")).is_ok());
}

#[test]
fn collects_every_error_in_position_order() {
    let text = r#"[[target]]
name = "t"
protocol = "ssh"
addresses = ["nope", "127.0.0.1:0"]

[[workload]]
name = "w"
spiffe_id = "spiffe://td/w/"
[workload.selector]
exe = "python3"

[[rule]]
name = "r"
workloads = ["w", "ghost"]
targets = ["t"]
action = "deny"
"#;
    let errs = errors_of(text);
    let at: Vec<_> = errs.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(
        at,
        [(3, 12), (4, 14), (4, 22), (8, 13), (10, 7), (14, 19)],
        "{errs:#?}"
    );
    // The invalid workload and target still count as defined: only "ghost" is unknown.
    assert!(errs[5].reason.contains("\"ghost\""));
    let shown = PolicyErrorsDisplay(&errs).to_string();
    assert!(
        shown.starts_with("p.toml:3:12: protocol \"ssh\" is not supported yet"),
        "{shown}"
    );
    assert_eq!(shown.lines().count(), 6);
}

struct PolicyErrorsDisplay<'a>(&'a [PolicyError]);

impl std::fmt::Display for PolicyErrorsDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::policy::PolicyErrors(self.0.to_vec()).fmt(f)
    }
}

#[test]
fn multi_file_duplicates_and_references() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("a.toml"), format!("{ETL}{DB}")).unwrap();
    // b.toml: the same workload name again (line 2), a target "db" again (line 7), a rule
    // using names defined in a.toml, and a duplicate rule name (line 17).
    let b = format!(
        "{ETL}{DB}{}",
        "[[rule]]\nname = \"r\"\nworkloads = [\"etl\"]\ntargets = [\"db\"]\naction = \"allow\"\n\
         [[rule]]\nname = \"r\"\nworkloads = [\"etl\"]\ntargets = [\"db\"]\naction = \"deny\"\n"
    );
    fs::write(d.join("b.toml"), b).unwrap();
    // Not policy files: ignored even though they are not valid.
    fs::write(d.join(".hidden.toml"), "garbage =").unwrap();
    fs::write(d.join("README.md"), "garbage =").unwrap();
    fs::write(d.join("c.toml.bak"), "garbage =").unwrap();
    fs::create_dir(d.join("sub.toml")).unwrap();

    let errs = load_dir(d, None).unwrap_err().0;
    let got: Vec<_> = errs.iter().map(ToString::to_string).collect();
    let a = d.join("a.toml").display().to_string();
    let b = d.join("b.toml").display().to_string();
    assert_eq!(
        got,
        [
            format!("{b}:2:8: duplicate workload name \"etl\" (first defined at {a}:2:8)"),
            format!("{b}:7:8: duplicate target name \"db\" (first defined at {a}:7:8)"),
            format!("{b}:16:8: duplicate rule name \"r\" (first defined at {b}:11:8)"),
        ]
    );

    // Split differently, the same definitions load: rules may name workloads of other files.
    fs::write(
        d.join("b.toml"),
        "[[rule]]\nname = \"r\"\nworkloads = [\"etl\"]\ntargets = [\"db\"]\naction = \"allow\"\n",
    )
    .unwrap();
    let p = load_dir(d, None).unwrap();
    assert_eq!(p.rules().len(), 1);
}

#[test]
fn errors_of_all_files_are_collected() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("1.toml"), "[[workload]\n").unwrap();
    fs::write(dir.path().join("2.toml"), DB.replace("tcp", "ssh")).unwrap();
    let errs = load_dir(dir.path(), None).unwrap_err().0;
    let files: Vec<_> = errs
        .iter()
        .map(|e| e.file.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(files, ["1.toml", "2.toml"], "{errs:#?}");
    assert_eq!((errs[1].line, errs[1].column), (3, 12));
}

#[test]
fn missing_directory_is_an_error() {
    let errs = load_dir(Path::new("/nonexistent/tollgate/policies"), None).unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert!(
        errs.to_string()
            .starts_with("/nonexistent/tollgate/policies: cannot read"),
        "{errs}"
    );
}
