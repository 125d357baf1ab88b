//! `Policy::evaluate`: target choice, rule precedence, default deny, audit mode; fingerprints.
use std::{collections::HashMap, net::SocketAddr, path::Path};

use super::policy;
use crate::policy::{DEFAULT_DENY, Decision, DnsTable, Protocol, TargetMatch, Verdict, load_str};

const POLICY: &str = r#"
[[workload]]
name = "etl"
spiffe_id = "spiffe://example.org/etl"
[workload.selector]
cgroup = "/tollgate.slice/run-etl-*"

[[workload]]
name = "auditor"
spiffe_id = "spiffe://example.org/auditor"
mode = "audit"
[workload.selector]
uid = 2000

[[target]]
name = "orders-db"
protocol = "tcp"
addresses = ["10.0.0.5:5432", "Orders.Internal:5432"]

[[target]]
name = "db-net"
protocol = "tcp"
addresses = ["10.0.0.0/24:*"]

[[target]]
name = "db-net-wide"
protocol = "tcp"
addresses = ["10.0.0.0/16:5432"]

[[target]]
name = "admin-api"
protocol = "tcp"
addresses = ["[fd00::1]:8000-8100"]

[[target]]
name = "b-same"
protocol = "tcp"
addresses = ["192.168.1.1:80"]

[[target]]
name = "a-same"
protocol = "tcp"
addresses = ["192.168.1.1:80"]

[[target]]
name = "bastion"
protocol = "tcp"
addresses = ["192.168.2.2:22"]

[[target]]
name = "everything-v4"
protocol = "tcp"
addresses = ["0.0.0.0/0:*"]

[[rule]]
name = "etl-orders"
workloads = ["etl"]
targets = ["orders-db"]
action = "allow"

[[rule]]
name = "etl-not-db-net"
workloads = ["etl"]
targets = ["db-net"]
action = "deny"

[[rule]]
name = "admin-for-all"
workloads = ["*"]
targets = ["admin-api"]
action = "allow"

[[rule]]
name = "admin-not-etl"
workloads = ["etl"]
targets = ["admin-api"]
action = "deny"

[[rule]]
name = "bastion-allow"
workloads = ["etl"]
targets = ["bastion"]
action = "allow"

[[rule]]
name = "bastion-held"
workloads = ["*"]
targets = ["bastion"]
action = "approve"

[[rule]]
name = "same-a"
workloads = ["etl"]
targets = ["a-same"]
action = "allow"

[[rule]]
name = "same-b"
workloads = ["etl"]
targets = ["b-same"]
action = "deny"

[[rule]]
name = "z-also-orders"
workloads = ["*"]
targets = ["orders-db"]
action = "allow"
"#;

fn dns() -> DnsTable {
    DnsTable(HashMap::from([(
        "orders.internal".to_owned(),
        vec!["10.0.0.9".parse().unwrap()],
    )]))
}

fn decision(verdict: Verdict, enforced: bool, rule: &str, target: Option<&str>) -> Decision {
    Decision {
        verdict,
        enforced,
        rule: rule.into(),
        target: target.map(|name| TargetMatch {
            name: name.into(),
            protocol: Protocol::Tcp,
        }),
    }
}

#[test]
fn evaluate_table() {
    use Verdict::*;
    let p = policy(POLICY);
    let dd = DEFAULT_DENY;
    let cases = [
        // Exact IP beats the /24 that would deny; first allowing rule by name reports.
        (
            "etl",
            "10.0.0.5:5432",
            decision(Allow, true, "etl-orders", Some("orders-db")),
        ),
        // IPv4-mapped IPv6 counts as IPv4.
        (
            "etl",
            "[::ffff:10.0.0.5]:5432",
            decision(Allow, true, "etl-orders", Some("orders-db")),
        ),
        // /24 beats /16.
        (
            "etl",
            "10.0.0.6:5432",
            decision(Deny, true, "etl-not-db-net", Some("db-net")),
        ),
        // Only the /16 matches; no rule names it: default deny, with the target.
        (
            "etl",
            "10.0.1.1:5432",
            decision(Deny, true, dd, Some("db-net-wide")),
        ),
        // A DNS name beats a network.
        (
            "etl",
            "10.0.0.9:5432",
            decision(Allow, true, "etl-orders", Some("orders-db")),
        ),
        (
            "etl",
            "[::ffff:10.0.0.9]:5432",
            decision(Allow, true, "etl-orders", Some("orders-db")),
        ),
        // Not the name's port: the network.
        (
            "etl",
            "10.0.0.9:5433",
            decision(Deny, true, "etl-not-db-net", Some("db-net")),
        ),
        // Deny beats allow.
        (
            "etl",
            "[fd00::1]:8050",
            decision(Deny, true, "admin-not-etl", Some("admin-api")),
        ),
        (
            "auditor",
            "[fd00::1]:8100",
            decision(Allow, false, "admin-for-all", Some("admin-api")),
        ),
        // Approve beats allow.
        (
            "etl",
            "192.168.2.2:22",
            decision(Approve, true, "bastion-held", Some("bastion")),
        ),
        (
            "auditor",
            "192.168.2.2:22",
            decision(Approve, false, "bastion-held", Some("bastion")),
        ),
        // Equally specific targets: the first by name.
        (
            "etl",
            "192.168.1.1:80",
            decision(Allow, true, "same-a", Some("a-same")),
        ),
        // A catch-all target without rules.
        (
            "etl",
            "8.8.8.8:53",
            decision(Deny, true, dd, Some("everything-v4")),
        ),
        // No target at all.
        ("etl", "[fd00::2]:443", decision(Deny, true, dd, None)),
        ("etl", "[fd00::1]:8101", decision(Deny, true, dd, None)),
        ("auditor", "[fd00::2]:443", decision(Deny, false, dd, None)),
        // Rules naming other workloads do not apply.
        (
            "auditor",
            "10.0.0.5:5432",
            decision(Allow, false, "z-also-orders", Some("orders-db")),
        ),
        (
            "auditor",
            "10.0.0.6:5432",
            decision(Deny, false, dd, Some("db-net")),
        ),
    ];
    for (workload, dst, want) in cases {
        let w = p.workload(workload).unwrap();
        let dst: SocketAddr = dst.parse().unwrap();
        assert_eq!(p.evaluate(w, dst, &dns()), want, "{workload} -> {dst}");
    }
}

#[test]
fn dns_names_without_resolution_match_nothing() {
    let p = policy(POLICY);
    let w = p.workload("etl").unwrap();
    let d = p.evaluate(w, "10.0.0.9:5432".parse().unwrap(), &DnsTable::default());
    assert_eq!(
        d,
        decision(Verdict::Deny, true, "etl-not-db-net", Some("db-net"))
    );
    assert_eq!(p.dns_names(), ["orders.internal"]);
}

#[test]
fn label_and_permits() {
    use Verdict::*;
    let cases = [
        (Allow, true, "allow", true),
        (Deny, true, "deny", false),
        (Approve, true, "approve", false),
        (Allow, false, "allow", true),
        (Deny, false, "audit-deny", true),
        (Approve, false, "audit-deny", true),
    ];
    for (verdict, enforced, label, permits) in cases {
        let d = decision(verdict, enforced, "r", None);
        assert_eq!(
            (d.label(), d.permits()),
            (label, permits),
            "{verdict} enforced={enforced}"
        );
    }
}

#[test]
fn fingerprint_ignores_form_and_follows_meaning() {
    let a = policy(
        r#"# one way
[[workload]]
name = "w"
spiffe_id = "spiffe://td/w"
[workload.selector]
uid = [2, 1]
[[target]]
name = "t"
protocol = "tcp"
addresses = ["10.0.0.5/32:80", "DB.internal.:1-9"]
[[rule]]
name = "r"
workloads = ["w"]
targets = ["t"]
action = "allow"
"#,
    );
    let b = policy(
        r#"
[[rule]]
action = "allow"
targets = ["t", "t"]
workloads = ["w"]
name = "r"
[[target]]
description = "another way"
addresses = ["db.internal:1-9", "10.0.0.5:80"]
name = "t"
protocol = "tcp"
[[workload]]
selector = { uid = [1, 2, 2] }
spiffe_id = "spiffe://td/w"
name = "w"
"#,
    );
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.fingerprint().len(), 16);
    let c = load_str(
        Path::new("c"),
        &POLICY.replace("action = \"deny\"", "action = \"allow\""),
        None,
    )
    .unwrap();
    assert_ne!(c.fingerprint(), policy(POLICY).fingerprint());
    let d = policy(&POLICY.replace("uid = 2000", "uid = 2001"));
    assert_ne!(d.fingerprint(), policy(POLICY).fingerprint());
}

#[test]
fn policy_is_shareable() {
    fn assert_traits<T: Send + Sync + std::fmt::Debug + Clone>() {}
    assert_traits::<crate::policy::Policy>();
}
