//! `evaluate_statement`, `evaluate_login` and the L4 `evaluate` of postgres targets.
use std::net::SocketAddr;

use super::policy;
use crate::{
    policy::{
        DEFAULT_DENY, DnsTable, NO_STATEMENT_RULES, Policy, Protocol, StatementFacts,
        UNKNOWN_STATEMENT, Verdict,
    },
    postgres::sql::StatementClass,
};

/// Workloads: `etl` and `other` enforce, `auditor` audits. Postgres targets: `orders` (statement
/// rules), `plain` (L4 rules only), `legacy` (opts in to unknown statements). `web` is tcp.
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
name = "orders"
protocol = "postgres"
addresses = ["127.0.0.1:5432"]
[target.postgres]
[[target.postgres.credential]]
role = "etl"
password_env = "PG_PW"

[[target]]
name = "plain"
protocol = "postgres"
addresses = ["127.0.0.1:5433"]
[[target.postgres.credential]]
role = "etl"
password_env = "PG_PW"

[[target]]
name = "legacy"
protocol = "postgres"
addresses = ["127.0.0.1:5434"]
[[target.postgres.credential]]
role = "etl"
password_env = "PG_PW"

[[target]]
name = "web"
protocol = "tcp"
addresses = ["127.0.0.1:8080"]

[[rule]]
name = "a-read"
workloads = ["etl"]
targets = ["orders"]
action = "allow"
[rule.postgres]
classes = ["select", "set", "transaction", "select"]
tables = ["public.orders", "orders_*"]
databases = ["orders"]
roles = ["etl", "reader"]

[[rule]]
name = "b-no-ddl"
workloads = ["etl"]
targets = ["orders"]
action = "deny"
[rule.postgres]
classes = ["ddl", "truncate"]

[[rule]]
name = "c-approve-deletes"
workloads = ["etl"]
targets = ["orders"]
action = "approve"
[rule.postgres]
classes = ["delete", "delete_no_where"]
tables = ["orders_*"]
roles = ["etl"]

[[rule]]
name = "d-writes"
workloads = ["etl"]
targets = ["orders"]
action = "allow"
[rule.postgres]
classes = ["insert", "update", "delete"]
tables = ["orders_*"]
roles = ["etl"]

[[rule]]
name = "e-no-sleep"
workloads = ["*"]
targets = ["orders"]
action = "deny"
[rule.postgres]
regex = "(?i)pg_sleep"

[[rule]]
name = "f-legacy"
workloads = ["etl"]
targets = ["legacy"]
action = "allow"
[rule.postgres]
classes = ["select", "unknown"]

[[rule]]
name = "g-audit-read"
workloads = ["auditor"]
targets = ["orders"]
action = "allow"
[rule.postgres]
classes = ["select"]

[[rule]]
name = "h-plain"
workloads = ["etl", "auditor"]
targets = ["plain"]
action = "allow"

[[rule]]
name = "i-other-reads"
workloads = ["other"]
targets = ["orders"]
action = "allow"
[rule.postgres]
classes = ["select"]

[[rule]]
name = "j-other-not-at-all"
workloads = ["other"]
targets = ["orders"]
action = "deny"

[[rule]]
name = "k-reporter-no-ddl"
workloads = ["reporter"]
targets = ["orders"]
action = "deny"
[rule.postgres]
classes = ["ddl"]

[[rule]]
name = "l-reporter-held"
workloads = ["reporter"]
targets = ["plain"]
action = "approve"

[[rule]]
name = "m-reporter-plain-reads"
workloads = ["reporter"]
targets = ["plain"]
action = "allow"
[rule.postgres]
classes = ["select"]

[[rule]]
name = "n-reporter-legacy-approve"
workloads = ["reporter"]
targets = ["legacy"]
action = "approve"
[rule.postgres]
classes = ["ddl"]

[[rule]]
name = "o-web"
workloads = ["etl"]
targets = ["web"]
action = "allow"
"#;

/// One statement-evaluation case: who, where, the message, and the expected outcome.
struct Case {
    workload: &'static str,
    target: &'static str,
    classes: &'static [StatementClass],
    tables: &'static [&'static str],
    text: &'static str,
    database: &'static str,
    role: &'static str,
    want: (Verdict, &'static str, bool),
}

/// A case on `orders` as `etl`, role `etl`, database `orders`.
const fn etl(
    classes: &'static [StatementClass],
    tables: &'static [&'static str],
    text: &'static str,
    want: (Verdict, &'static str, bool),
) -> Case {
    Case {
        workload: "etl",
        target: "orders",
        classes,
        tables,
        text,
        database: "orders",
        role: "etl",
        want,
    }
}

fn run(p: &Policy, c: &Case) -> crate::policy::Decision {
    let w = p.workload(c.workload).unwrap();
    let facts = StatementFacts {
        classes: c.classes,
        tables: c.tables,
        text: c.text,
        database: c.database,
        role: c.role,
    };
    p.evaluate_statement(w, c.target, &facts)
}

#[test]
fn statement_table() {
    use StatementClass::*;
    use Verdict::*;
    let p = policy(POLICY);
    let dd = DEFAULT_DENY;
    let cases = [
        // Allow: every class and every table covered, database and role listed.
        etl(
            &[Select],
            &["public.orders"],
            "select 1 from public.orders",
            (Allow, "a-read", true),
        ),
        // Table globs are case-insensitive.
        etl(
            &[Select],
            &["ORDERS_2024"],
            "select * from \"ORDERS_2024\"",
            (Allow, "a-read", true),
        ),
        // No table at all: nothing to refuse.
        etl(&[Select], &[], "select now()", (Allow, "a-read", true)),
        etl(
            &[Transaction, Select, Transaction],
            &["orders_1"],
            "begin; select; commit",
            (Allow, "a-read", true),
        ),
        // Tables: all must match for an allow rule.
        etl(
            &[Select],
            &["public.orders", "customers"],
            "select",
            (Deny, dd, true),
        ),
        // `orders_*` does not match a qualified name.
        etl(&[Select], &["public.orders_1"], "select", (Deny, dd, true)),
        // Deny beats allow, and hits on one statement of a message.
        etl(
            &[Ddl],
            &["orders_x"],
            "drop table orders_x",
            (Deny, "b-no-ddl", true),
        ),
        etl(
            &[Select, Truncate],
            &["public.orders"],
            "select 1; truncate public.orders",
            (Deny, "b-no-ddl", true),
        ),
        // Approve beats allow: d-writes would allow this delete.
        etl(
            &[Delete],
            &["orders_1"],
            "delete from orders_1 where id = 1",
            (Approve, "c-approve-deletes", true),
        ),
        // Approve hits on one table of many.
        etl(
            &[Delete],
            &["customers", "orders_1"],
            "delete ... using",
            (Approve, "c-approve-deletes", true),
        ),
        etl(
            &[Insert, Update],
            &["orders_1", "orders_2"],
            "insert; update",
            (Allow, "d-writes", true),
        ),
        // Classes of a message must all be covered by one allow rule.
        etl(
            &[Insert, Select],
            &["orders_1"],
            "insert; select",
            (Deny, dd, true),
        ),
        etl(
            &[UpdateNoWhere],
            &["orders_1"],
            "update orders_1 set x = 1",
            (Deny, dd, true),
        ),
        // Regex: deny on the text, for every workload.
        etl(
            &[Select],
            &[],
            "SELECT PG_SLEEP(10)",
            (Deny, "e-no-sleep", true),
        ),
        // Unknown is never covered by a rule that does not list it.
        etl(&[Unknown], &[], "do $$ begin end $$", (Deny, dd, true)),
        etl(
            &[Select, Unknown],
            &["public.orders"],
            "select; do",
            (Deny, dd, true),
        ),
        // Databases and roles pin an allow rule.
        Case {
            database: "postgres",
            ..etl(&[Select], &[], "select 1", (Deny, dd, true))
        },
        Case {
            role: "reader",
            ..etl(&[Select], &[], "select 1", (Allow, "a-read", true))
        },
        Case {
            role: "reader",
            ..etl(&[Insert], &["orders_1"], "insert", (Deny, dd, true))
        },
        // No statement rule for (workload, target): everything but unknown.
        Case {
            target: "plain",
            ..etl(
                &[Ddl, Dcl],
                &["x"],
                "drop table x; grant",
                (Allow, NO_STATEMENT_RULES, true),
            )
        },
        Case {
            target: "plain",
            ..etl(
                &[Select, Unknown],
                &[],
                "select; do",
                (Deny, UNKNOWN_STATEMENT, true),
            )
        },
        Case {
            target: "plain",
            ..etl(&[], &[], "", (Allow, NO_STATEMENT_RULES, true))
        },
        // Explicit opt-in to unknown statements.
        Case {
            target: "legacy",
            ..etl(&[Unknown], &[], "do", (Allow, "f-legacy", true))
        },
        Case {
            target: "legacy",
            ..etl(
                &[Unknown, Select],
                &[],
                "do; select",
                (Allow, "f-legacy", true),
            )
        },
        Case {
            target: "legacy",
            ..etl(&[Ddl], &[], "create table t()", (Deny, dd, true))
        },
        // Audit mode: the verdict is recorded, not enforced.
        Case {
            workload: "auditor",
            ..etl(&[Ddl], &[], "drop table x", (Deny, dd, false))
        },
        Case {
            workload: "auditor",
            ..etl(
                &[Select],
                &["any"],
                "select",
                (Allow, "g-audit-read", false),
            )
        },
        Case {
            workload: "auditor",
            ..etl(
                &[Select],
                &[],
                "select pg_sleep(1)",
                (Deny, "e-no-sleep", false),
            )
        },
        // A statement rule decides statements even where an L4 deny refuses the connection.
        Case {
            workload: "other",
            ..etl(&[Select], &[], "select", (Allow, "i-other-reads", true))
        },
        // Only deny statement rules: nothing is allowed.
        Case {
            workload: "reporter",
            ..etl(&[Select], &[], "select", (Deny, dd, true))
        },
        // The L4 approve rule on `plain` is not a statement rule; the allow one decides.
        Case {
            workload: "reporter",
            target: "plain",
            ..etl(
                &[Select],
                &[],
                "select",
                (Allow, "m-reporter-plain-reads", true),
            )
        },
        Case {
            workload: "reporter",
            target: "plain",
            ..etl(&[Insert], &[], "insert", (Deny, dd, true))
        },
        Case {
            workload: "reporter",
            target: "legacy",
            ..etl(
                &[Ddl],
                &[],
                "create",
                (Approve, "n-reporter-legacy-approve", true),
            )
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let d = run(&p, c);
        let got = (d.verdict, d.rule.as_str(), d.enforced);
        assert_eq!(
            got, c.want,
            "case {i}: {} on {} {:?} {:?} {:?}",
            c.workload, c.target, c.classes, c.tables, c.text
        );
        let t = d.target.unwrap();
        assert_eq!(
            (t.name.as_str(), t.protocol),
            (c.target, Protocol::Postgres)
        );
    }
}

#[test]
fn statement_on_unknown_target_is_denied() {
    let p = policy(POLICY);
    let c = Case {
        target: "nope",
        ..etl(
            &[StatementClass::Select],
            &[],
            "select",
            (Verdict::Deny, DEFAULT_DENY, true),
        )
    };
    let d = run(&p, &c);
    assert_eq!(
        (d.verdict, d.rule.as_str(), d.target.clone()),
        (Verdict::Deny, DEFAULT_DENY, None)
    );
    assert_eq!(d.label(), "deny");
}

#[test]
fn audit_label() {
    let p = policy(POLICY);
    let c = Case {
        workload: "auditor",
        ..etl(
            &[StatementClass::Ddl],
            &[],
            "drop",
            (Verdict::Deny, DEFAULT_DENY, false),
        )
    };
    let d = run(&p, &c);
    assert!(d.permits());
    assert_eq!(d.label(), "audit-deny");
}

#[test]
fn login_table() {
    use Verdict::*;
    let p = policy(POLICY);
    let dd = DEFAULT_DENY;
    let cases = [
        // (workload, target, role, database) -> (verdict, rule, enforced)
        (("etl", "orders", "etl", "orders"), (Allow, "a-read", true)),
        (
            ("etl", "orders", "reader", "orders"),
            (Allow, "a-read", true),
        ),
        // a-read pins the database; c-approve-deletes and d-writes pin only the role.
        (
            ("etl", "orders", "etl", "postgres"),
            (Allow, "c-approve-deletes", true),
        ),
        (("etl", "orders", "reader", "postgres"), (Deny, dd, true)),
        (("etl", "orders", "admin", "orders"), (Deny, dd, true)),
        (("etl", "orders", "", "orders"), (Deny, dd, true)),
        // An L4 allow rule pins nothing.
        (("etl", "plain", "anyone", "any"), (Allow, "h-plain", true)),
        (
            ("auditor", "plain", "anyone", "any"),
            (Allow, "h-plain", false),
        ),
        // An L4 approve rule (already approved at connection time) allows the login.
        (
            ("reporter", "plain", "anyone", "any"),
            (Allow, "l-reporter-held", true),
        ),
        // Deny rules never allow a login.
        (("reporter", "orders", "etl", "orders"), (Deny, dd, true)),
        (("auditor", "legacy", "etl", "orders"), (Deny, dd, false)),
        (("etl", "nope", "etl", "orders"), (Deny, dd, true)),
    ];
    for ((w, t, role, db), want) in cases {
        let d = p.evaluate_login(p.workload(w).unwrap(), t, role, db);
        assert_eq!(
            (d.verdict, d.rule.as_str(), d.enforced),
            want,
            "{w} {t} {role:?} {db:?}"
        );
    }
}

#[test]
fn l4_with_statement_rules() {
    use Verdict::*;
    let p = policy(POLICY);
    let dns = DnsTable::default();
    let cases = [
        // A statement allow rule allows the connection; statement deny rules do not count.
        ("etl", "127.0.0.1:5432", (Allow, "a-read")),
        ("auditor", "127.0.0.1:5432", (Allow, "g-audit-read")),
        // An L4 deny wins over statement allow rules.
        ("other", "127.0.0.1:5432", (Deny, "j-other-not-at-all")),
        // Only statement deny rules: default deny.
        ("reporter", "127.0.0.1:5432", (Deny, DEFAULT_DENY)),
        // An L4 approve wins over a statement allow.
        ("reporter", "127.0.0.1:5433", (Approve, "l-reporter-held")),
        // A statement approve rule allows the connection (statements are held, not it).
        (
            "reporter",
            "127.0.0.1:5434",
            (Allow, "n-reporter-legacy-approve"),
        ),
        ("etl", "127.0.0.1:5433", (Allow, "h-plain")),
        ("etl", "127.0.0.1:8080", (Allow, "o-web")),
    ];
    for (w, dst, want) in cases {
        let dst: SocketAddr = dst.parse().unwrap();
        let d = p.evaluate(p.workload(w).unwrap(), dst, &dns);
        assert_eq!((d.verdict, d.rule.as_str()), want, "{w} {dst}");
    }
    let d = p.evaluate(
        p.workload("etl").unwrap(),
        "127.0.0.1:5432".parse().unwrap(),
        &dns,
    );
    assert_eq!(d.target.map(|t| t.protocol), Some(Protocol::Postgres));
}

#[test]
fn target_lookup() {
    let p = policy(POLICY);
    for name in ["legacy", "orders", "plain", "web"] {
        assert_eq!(p.target(name).map(|t| t.name.as_str()), Some(name));
    }
    assert!(p.target("ORDERS").is_none());
    assert!(p.target("").is_none());
    assert!(p.target("web").unwrap().postgres.is_none());
    let pg = p.target("orders").unwrap().postgres.as_ref().unwrap();
    assert!(pg.credential("etl").is_some());
    assert!(pg.credential("other").is_none());
}
