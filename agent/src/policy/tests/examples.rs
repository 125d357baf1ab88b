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
            tables: &["customers"],
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

/// Loads the examples directory together with the example `name` (a `.toml.example`), its
/// `/etc/tollgate/` paths moved to a temporary directory holding `files` (path under
/// `/etc/tollgate/`, content, mode).
fn load_with_example(
    name: &str,
    files: &[(&str, &str, u32)],
) -> (crate::policy::Policy, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt;

    let text = fs::read_to_string(examples_dir().join(name)).unwrap();
    assert!(text.starts_with('#'), "{name} must open with a comment");
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    for (path, content, mode) in files {
        let path = etc.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
    }
    let policies = dir.path().join("policies");
    fs::create_dir(&policies).unwrap();
    for path in example_files() {
        fs::copy(&path, policies.join(path.file_name().unwrap())).unwrap();
    }
    let text = text.replace("/etc/tollgate/", &format!("{}/", etc.display()));
    let installed = name.strip_suffix(".example").unwrap();
    fs::write(policies.join(installed), text).unwrap();
    let p = load_dir(&policies, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    (p, dir)
}

/// Decides `method path?query` for `workload` on `target`: (verdict, rule).
fn request(
    p: &crate::policy::Policy,
    workload: &str,
    target: &str,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
) -> (crate::policy::Verdict, String) {
    let query: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let facts = crate::policy::RequestFacts {
        method,
        host: "127.0.0.1:6443",
        path,
        query: &query,
        headers: &[],
    };
    let d = p.evaluate_request(p.workload(workload).unwrap(), target, &facts);
    (d.verdict, d.rule)
}

/// Method, path, query, and the expected verdict and rule.
type RequestCase = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    (crate::policy::Verdict, &'static str),
);

/// `40-example-kubernetes.toml.example` loads with its token and CA, and decides as its
/// comments say.
#[test]
fn kubernetes_example_loads_with_its_secrets() {
    use crate::policy::{HttpCredential, HttpTls, Protocol, Verdict::*};

    let (p, _dir) = load_with_example(
        "40-example-kubernetes.toml.example",
        &[
            ("secrets/k8s-etl-token", "sa-token-1\n", 0o600),
            ("ca/k8s-ca.pem", "-----BEGIN CERTIFICATE-----\n", 0o644),
        ],
    );
    let t = p.target("k8s-api").unwrap();
    assert_eq!(t.protocol, Protocol::Http);
    let h = t.http.as_ref().unwrap();
    assert_eq!(h.tls, HttpTls::Terminate);
    assert!(h.strip_client_credentials && h.ca_file.is_some());
    assert!(
        matches!(&h.credential, Some(HttpCredential::Bearer(s)) if s.expose() == b"sa-token-1")
    );

    let pods = "k8s-etl-reads-pods";
    let secrets = "k8s-no-secrets";
    let dd = "default-deny";
    let cases: &[RequestCase] = &[
        // get, list, watch pods; get config maps: namespace etl only.
        ("GET", "/api/v1/namespaces/etl/pods", &[], (Allow, pods)),
        (
            "GET",
            "/api/v1/namespaces/etl/pods",
            &[("watch", "true")],
            (Allow, pods),
        ),
        (
            "GET",
            "/api/v1/namespaces/etl/pods/web-1",
            &[],
            (Allow, pods),
        ),
        (
            "GET",
            "/api/v1/namespaces/etl/pods/web-1/log",
            &[],
            (Allow, pods),
        ),
        (
            "GET",
            "/api/v1/namespaces/etl/configmaps/settings",
            &[],
            (Allow, "k8s-etl-reads-configmaps"),
        ),
        ("GET", "/api/v1/namespaces/prod/pods", &[], (Deny, dd)),
        ("GET", "/api/v1/pods", &[], (Deny, dd)),
        // create, update, patch, delete pods: no rule.
        ("POST", "/api/v1/namespaces/etl/pods", &[], (Deny, dd)),
        ("PUT", "/api/v1/namespaces/etl/pods/web-1", &[], (Deny, dd)),
        (
            "PATCH",
            "/api/v1/namespaces/etl/pods/web-1",
            &[],
            (Deny, dd),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/etl/pods/web-1",
            &[],
            (Deny, dd),
        ),
        // Secrets: denied everywhere, however the path is spelled.
        (
            "GET",
            "/api/v1/namespaces/etl/secrets",
            &[],
            (Deny, secrets),
        ),
        (
            "GET",
            "/api/v1/namespaces/etl/secrets/db",
            &[],
            (Deny, secrets),
        ),
        ("GET", "/api/v1/secrets", &[], (Deny, secrets)),
        (
            "GET",
            "/api/v1/watch/namespaces/kube-system/secrets",
            &[],
            (Deny, secrets),
        ),
        (
            "GET",
            "/api/v1/namespaces/etl/pods/../secrets/db",
            &[],
            (Deny, "malformed-path"),
        ),
        (
            "GET",
            "/api/v1/namespaces/etl/%73ecrets",
            &[],
            (Deny, secrets),
        ),
        (
            "GET",
            "/api/v1/namespaces/etl/pods/x%2F..%2F..%2Fsecrets",
            &[],
            (Deny, "malformed-path"),
        ),
        // Other groups: discovery only, and job deletions held for a human.
        ("GET", "/apis/apps/v1", &[], (Allow, "k8s-etl-discovery")),
        (
            "GET",
            "/apis/apps/v1/namespaces/etl/deployments",
            &[],
            (Deny, dd),
        ),
        (
            "DELETE",
            "/apis/batch/v1/namespaces/etl/jobs/nightly",
            &[],
            (Approve, "k8s-etl-deletes-jobs-with-approval"),
        ),
    ];
    for (method, path, query, (verdict, rule)) in cases {
        assert_eq!(
            request(&p, "k8s-etl", "k8s-api", method, path, query),
            (*verdict, (*rule).to_owned()),
            "{method} {path} {query:?}"
        );
    }
    // Another workload of the examples: the connection has no rule at all.
    let dst = "127.0.0.1:6443".parse().unwrap();
    let dns = crate::policy::DnsTable::default();
    assert_eq!(
        p.evaluate(p.workload("k8s-etl").unwrap(), dst, &dns)
            .verdict,
        Allow
    );
    assert_eq!(
        p.evaluate(p.workload("etl").unwrap(), dst, &dns).verdict,
        Deny
    );
}

/// `41-example-vault.toml.example` loads with its token, and decides as its comments say.
#[test]
fn vault_example_loads_with_its_secrets() {
    use crate::policy::{HttpCredential, JsonStep::Key, Protocol, Verdict::*};

    let (p, _dir) = load_with_example(
        "41-example-vault.toml.example",
        &[("secrets/vault-etl-token", "hvs.token-1\n", 0o600)],
    );
    let t = p.target("local-vault").unwrap();
    assert_eq!(t.protocol, Protocol::Http);
    let h = t.http.as_ref().unwrap();
    match &h.credential {
        Some(HttpCredential::Header { name, value }) => {
            assert_eq!(
                (name.as_str(), value.expose()),
                ("x-vault-token", &b"hvs.token-1"[..])
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(h.json_key(&[Key("auth"), Key("client_token")]).is_some());
    assert!(
        h.json_key(&[Key("data"), Key("data"), Key("password")])
            .is_none()
    );

    let read = "vault-etl-reads-secrets";
    let cases = [
        ("GET", "/v1/secret/data/etl/db", (Allow, read)),
        ("GET", "/v1/secret/data/etl/team/app", (Allow, read)),
        ("LIST", "/v1/secret/metadata/etl", (Allow, read)),
        ("GET", "/v1/secret/data/%65tl/db", (Allow, read)),
        ("POST", "/v1/secret/data/etl/db", (Deny, "default-deny")),
        ("GET", "/v1/secret/data/prod/db", (Deny, "default-deny")),
        ("GET", "/v1/sys/seal-status", (Deny, "vault-no-sys")),
        ("PUT", "/v1/sys/policies/acl/etl", (Deny, "vault-no-sys")),
        (
            "GET",
            "/v1/secret/data/etl/../../../sys/seal-status",
            (Deny, "malformed-path"),
        ),
        ("GET", "//v1//sys/health", (Deny, "vault-no-sys")),
        (
            "GET",
            "/v1/secret/data/etl/../../../../../x",
            (Deny, "malformed-path"),
        ),
    ];
    for (method, path, (verdict, rule)) in cases {
        assert_eq!(
            request(&p, "vault-etl", "local-vault", method, path, &[]),
            (verdict, rule.to_owned()),
            "{method} {path}"
        );
    }
}
