//! The example policies in `policies/` (what `tollgate agent` runs with from the repository):
//! each file loads on its own, the directory loads as a whole, and they stay safe for a dev host.
use std::{fs, path::PathBuf};

use crate::policy::{Host, load_dir, load_str};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_file_loads_on_its_own() {
    let files = example_files();
    assert!(files.len() >= 3, "{files:?}");
    for path in files {
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with('#'),
            "{} must open with a comment saying what it is for",
            path.display()
        );
        if let Err(e) = load_str(&path, &text, None) {
            panic!("{} does not load:\n{e}", path.display());
        }
    }
}

#[test]
fn example_directory_loads_and_stays_on_loopback() {
    let p = load_dir(&examples_dir(), None).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        p.workload("etl").is_some(),
        "`tollgate run --workload etl` needs it"
    );
    assert!(p.cgroup_enrolled("/tollgate.slice/run-etl-1", None));
    assert!(
        p.workloads()
            .iter()
            .any(|w| w.mode == crate::policy::Mode::Audit)
    );
    for t in p.targets() {
        for a in &t.addresses {
            let loopback = match &a.host {
                Host::Ip(ip) => ip.is_loopback(),
                Host::Net(n) => n.network().is_loopback() && n.broadcast().is_loopback(),
                Host::Name(n) => n == "localhost",
            };
            assert!(loopback, "target {} address {a} is not loopback", t.name);
        }
    }
}

/// `30-example-postgres.toml.example` names root-only secret files that a checkout does not
/// have, so it is not a `.toml` the agent loads; it loads with the other examples once its
/// secrets exist (here, in a temporary directory), and decides as its comments say.
#[test]
fn postgres_example_loads_with_its_secrets() {
    use std::os::unix::fs::PermissionsExt;

    use crate::{
        policy::{Protocol, StatementFacts, Verdict},
        postgres::sql::StatementClass,
    };

    let text = fs::read_to_string(examples_dir().join("30-example-postgres.toml.example")).unwrap();
    assert!(
        text.starts_with('#'),
        "the example must open with a comment"
    );
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    fs::create_dir(&secrets).unwrap();
    for (name, content) in [("local-pg-reports", "pw\n"), ("mask.key", "k3y")] {
        let path = secrets.join(name);
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let policies = dir.path().join("policies");
    fs::create_dir(&policies).unwrap();
    for path in example_files() {
        fs::copy(&path, policies.join(path.file_name().unwrap())).unwrap();
    }
    let text = text.replace("/etc/tollgate/secrets/", &format!("{}/", secrets.display()));
    fs::write(policies.join("30-example-postgres.toml"), text).unwrap();

    let p = load_dir(&policies, None).unwrap_or_else(|e| panic!("{e}"));
    let t = p.target("local-pg").unwrap();
    assert_eq!(t.protocol, Protocol::Postgres);
    assert!(
        t.addresses
            .iter()
            .all(|a| a.to_string().starts_with("127.0.0.1:"))
    );
    let pg = t.postgres.as_ref().unwrap();
    assert!(pg.credential("reports").is_some() && pg.masker.is_some());

    let w = p.workload("reports").unwrap();
    let decide = |classes: &[StatementClass], text: &str| {
        let facts = StatementFacts {
            classes,
            tables: &["customers".to_owned()],
            text,
            database: "app",
            role: "reports",
        };
        let d = p.evaluate_statement(w, "local-pg", &facts);
        (d.verdict, d.rule)
    };
    use StatementClass::*;
    assert_eq!(
        decide(&[Select], "select * from customers"),
        (Verdict::Allow, "reports-read-app".into())
    );
    assert_eq!(
        decide(&[Select, Ddl], "select 1; DROP TABLE customers"),
        (Verdict::Deny, "no-drop-on-local-pg".into())
    );
    assert_eq!(
        decide(&[Insert], "insert into customers"),
        (Verdict::Deny, "default-deny".into())
    );
    assert_eq!(
        p.evaluate_login(w, "local-pg", "reports", "app").verdict,
        Verdict::Allow
    );
    assert_eq!(
        p.evaluate_login(w, "local-pg", "reports", "postgres")
            .verdict,
        Verdict::Deny
    );
}
