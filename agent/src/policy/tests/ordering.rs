//! Workload match order, `match_workload` and `cgroup_enrolled`.
use super::policy;
use crate::policy::Subject;

/// Overlapping workloads: priority, then selector count, then name decide.
const OVERLAPS: &str = r#"
[[workload]]
name = "zz-any-user-1000"
spiffe_id = "spiffe://example.org/user"
[workload.selector]
uid = 1000

[[workload]]
name = "run-etl"
spiffe_id = "spiffe://example.org/etl"
[workload.selector]
cgroup = "/tollgate.slice/run-etl-*"

[[workload]]
name = "etl-python"
spiffe_id = "spiffe://example.org/etl/python"
[workload.selector]
cgroup = "/tollgate.slice/run-etl-*"
exe = "/usr/bin/python3*"

[[workload]]
name = "aa-user-1000"
spiffe_id = "spiffe://example.org/user/aa"
[workload.selector]
uid = [1000]

[[workload]]
name = "ci"
spiffe_id = "spiffe://example.org/ci"
priority = -1
[workload.selector]
systemd_unit = "gitlab-runner*.service"
uid = 1000
gid = 1000

[[workload]]
name = "break-glass"
spiffe_id = "spiffe://example.org/oncall"
priority = 10
[workload.selector]
exe = "/usr/local/bin/break-glass"
"#;

fn subject(cgroup: &str, unit: Option<&str>, uid: u32, exe: Option<&str>) -> Subject {
    Subject {
        cgroup_path: cgroup.into(),
        systemd_unit: unit.map(Into::into),
        uid,
        gid: uid,
        exe: exe.map(Into::into),
    }
}

#[test]
fn workloads_are_in_match_order() {
    let p = policy(OVERLAPS);
    let names: Vec<_> = p.workloads().iter().map(|w| w.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "break-glass",
            "etl-python",
            "aa-user-1000",
            "run-etl",
            "zz-any-user-1000",
            "ci"
        ]
    );
    assert_eq!(p.workload("ci").map(|w| w.priority), Some(-1));
    assert!(p.workload("nope").is_none());
}

#[test]
fn match_workload_takes_the_first_match() {
    let p = policy(OVERLAPS);
    let run = "/tollgate.slice/run-etl-7";
    let ci = "/system.slice/gitlab-runner.service";
    let cases = [
        (
            subject(run, None, 0, Some("/usr/bin/python3.12")),
            Some("etl-python"),
        ),
        (
            subject(run, None, 0, Some("/usr/bin/psql")),
            Some("run-etl"),
        ),
        (
            subject(run, None, 1000, Some("/usr/bin/psql")),
            Some("aa-user-1000"),
        ),
        (
            subject(run, None, 1000, Some("/usr/local/bin/break-glass")),
            Some("break-glass"),
        ),
        (
            subject("/user.slice/u", None, 1000, None),
            Some("aa-user-1000"),
        ),
        (
            subject(ci, Some("gitlab-runner.service"), 1000, None),
            Some("aa-user-1000"),
        ),
        (subject(ci, Some("gitlab-runner.service"), 0, None), None),
        (subject("/user.slice/u", None, 1001, None), None),
    ];
    for (s, want) in cases {
        let got = p.match_workload(&s).map(|w| w.name.as_str());
        assert_eq!(got, want, "{s:?}");
    }
}

#[test]
fn workload_matches_process_ignores_cgroup_selectors() {
    let p = policy(OVERLAPS);
    let w = p.workload("etl-python").unwrap();
    let elsewhere = subject("/user.slice/u", None, 0, Some("/usr/bin/python3"));
    assert!(w.matches_process(&elsewhere));
    assert!(!w.matches(&elsewhere));
    assert!(!w.matches_process(&subject("/x", None, 0, Some("/bin/sh"))));
}

#[test]
fn cgroup_enrolled_checks_cgroup_level_selectors() {
    let scoped = policy(
        r#"
[[workload]]
name = "etl"
spiffe_id = "spiffe://example.org/etl"
[workload.selector]
cgroup = "/tollgate.slice/run-etl-*"
uid = 1000

[[workload]]
name = "ci"
spiffe_id = "spiffe://example.org/ci"
[workload.selector]
systemd_unit = "ci-*.service"
"#,
    );
    let cases = [
        ("/tollgate.slice/run-etl-1", None, true),
        ("/tollgate.slice/run-web-1", None, false),
        ("/system.slice/ci-1.service", Some("ci-1.service"), true),
        ("/system.slice/ci-1.service", None, false),
        ("/user.slice/user-1000.slice", None, false),
    ];
    for (cg, unit, want) in cases {
        assert_eq!(scoped.cgroup_enrolled(cg, unit), want, "{cg} {unit:?}");
    }
    // A workload without cgroup-level selectors could match a process anywhere.
    let everywhere = policy(OVERLAPS);
    assert!(everywhere.cgroup_enrolled("/user.slice/user-1000.slice", None));
    assert!(!policy("").cgroup_enrolled("/", None));
}
