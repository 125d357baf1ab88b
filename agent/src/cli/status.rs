//! `tollgate status`.
use crate::{
    admin::{self, Request, Response, StatusReport},
    cli::{EXIT_FAILURE, EXIT_NO_AGENT, EXIT_OK, output},
    config::Config,
};

/// Prints the agent's status; exit 0 when ready, 1 when not, 2 when no status could be had.
pub async fn run(config: &Config, json: bool) -> i32 {
    let report = match admin::call(&config.admin_socket(), &Request::Status).await {
        Ok(Response::Status(report)) => report,
        Ok(Response::Error { message }) => {
            eprintln!("tollgate status: the agent refused: {message}");
            return EXIT_NO_AGENT;
        }
        Ok(other) => {
            eprintln!("tollgate status: unexpected answer from the agent: {other:?}");
            return EXIT_NO_AGENT;
        }
        Err(e) => {
            eprintln!("tollgate status: {e}");
            return EXIT_NO_AGENT;
        }
    };
    let text = if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => format!("{text}\n"),
            Err(e) => {
                eprintln!("tollgate status: {e}");
                return EXIT_FAILURE;
            }
        }
    } else {
        render(&report)
    };
    output::emit_or_fail("status", &text, exit_code(&report))
}

/// 0 when ready, 1 otherwise.
pub fn exit_code(report: &StatusReport) -> i32 {
    if report.ready { EXIT_OK } else { EXIT_FAILURE }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

/// The report as aligned text.
pub fn render(r: &StatusReport) -> String {
    let attached = match (r.attached, r.programs.is_empty()) {
        (true, false) => format!("yes ({})", r.programs.join(", ")),
        (a, _) => yes_no(a),
    };
    let mut pairs = vec![
        ("ready", yes_no(r.ready)),
        ("attached", attached),
        ("fail mode", r.fail_mode.clone()),
        ("listen", list(&r.listen)),
        ("cgroup root", r.cgroup_root.clone()),
        ("attach cgroup", r.attach_cgroup.clone()),
        (
            "policy",
            format!(
                "generation {}, fingerprint {}, loaded {}",
                r.policy_generation, r.policy_fingerprint, r.policy_loaded_at
            ),
        ),
    ];
    if let Some(e) = &r.last_reload_error {
        pairs.push(("reload error", e.replace('\n', "; ")));
    }
    pairs.push((
        "workloads",
        format!("{} ({})", r.workloads.len(), list(&r.workloads)),
    ));
    pairs.push(("version", r.version.clone()));
    let mut out = output::fields(&pairs);
    if !r.counters.is_empty() {
        out.push_str("counters:\n");
        let rows: Vec<Vec<String>> = r
            .counters
            .iter()
            .map(|(k, v)| vec![format!("  {k}"), v.to_string()])
            .collect();
        // Skip the header line: the counters need none.
        let table = output::table(&["", ""], &rows);
        out.extend(table.lines().skip(1).map(|l| format!("{l}\n")));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn report() -> StatusReport {
        StatusReport {
            ready: true,
            attached: true,
            programs: vec!["connect4".into(), "connect6".into()],
            fail_mode: "closed".into(),
            listen: vec!["127.0.0.1:915".into(), "[::1]:915".into()],
            cgroup_root: "/sys/fs/cgroup".into(),
            attach_cgroup: "/".into(),
            policy_generation: 3,
            policy_fingerprint: "0123456789abcdef".into(),
            policy_loaded_at: "2024-05-01T12:00:00Z".into(),
            last_reload_error: None,
            workloads: vec!["billing".into(), "ci".into()],
            counters: BTreeMap::from([("connections_accepted".into(), 12), ("denied".into(), 1)]),
            version: "0.1.0".into(),
        }
    }

    #[test]
    fn renders_aligned_text() {
        assert_eq!(
            render(&report()),
            "ready:         yes\n\
             attached:      yes (connect4, connect6)\n\
             fail mode:     closed\n\
             listen:        127.0.0.1:915, [::1]:915\n\
             cgroup root:   /sys/fs/cgroup\n\
             attach cgroup: /\n\
             policy:        generation 3, fingerprint 0123456789abcdef, loaded 2024-05-01T12:00:00Z\n\
             workloads:     2 (billing, ci)\n\
             version:       0.1.0\n\
             counters:\n  \
             connections_accepted  12\n  \
             denied                1\n"
        );
    }

    #[test]
    fn reload_error_and_detached_are_shown() {
        let r = StatusReport {
            ready: false,
            attached: false,
            last_reload_error: Some("a.toml:1:1: bad\nb.toml:2:2: worse".into()),
            counters: BTreeMap::new(),
            ..report()
        };
        let text = render(&r);
        assert!(text.contains("ready:         no\n"), "{text}");
        assert!(text.contains("attached:      no\n"), "{text}");
        assert!(
            text.contains("reload error:  a.toml:1:1: bad; b.toml:2:2: worse\n"),
            "{text}"
        );
        assert!(!text.contains("counters"), "{text}");
    }

    #[test]
    fn exit_code_follows_readiness() {
        assert_eq!(exit_code(&report()), 0);
        let r = StatusReport {
            ready: false,
            ..report()
        };
        assert_eq!(exit_code(&r), 1);
    }

    #[tokio::test]
    async fn no_agent_is_exit_2() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            state_dir: dir.path().to_owned(),
            ..Config::default()
        };
        assert_eq!(run(&config, false).await, EXIT_NO_AGENT);
    }
}
