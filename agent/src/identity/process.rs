//! Facts about a process read from `/proc`, and the systemd unit named by a cgroup path.
use std::path::PathBuf;

/// The cgroup v2 path of a process (`0::/path` in `/proc/PID/cgroup`).
pub fn cgroup_of(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    parse_cgroup_v2_line(&text).map(str::to_owned)
}

/// The executable of a process. Read at accept time: a process that exited (or a reused pid)
/// gives `None` or another program, which is why `exe` selectors are best combined with a
/// cgroup selector.
pub fn exe_of(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

fn parse_cgroup_v2_line(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

/// The systemd unit a cgroup path belongs to: its outermost component that names a unit
/// (`.service` or `.scope`), e.g. `/system.slice/etl.service/worker` → `etl.service`.
///
/// Outermost, because what lies below a unit's cgroup is the unit's to name: a user's own
/// systemd (`user@1000.service`) names its units as the user likes (`systemd-run --user
/// --unit=gitlab-runner.service`), and a service with `Delegate=yes` may create `x.scope` below
/// itself. Taking the innermost name would let either pose as another unit, or leave its own.
pub fn systemd_unit(cgroup_path: &str) -> Option<&str> {
    cgroup_path
        .split('/')
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_from_cgroup_path() {
        let cases = [
            ("/system.slice/etl.service", Some("etl.service")),
            ("/system.slice/etl.service/worker", Some("etl.service")),
            (
                "/user.slice/user-1000.slice/session-3.scope",
                Some("session-3.scope"),
            ),
            // A user's own units are the user manager's.
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/gitlab-runner.service",
                Some("user@1000.service"),
            ),
            // A scope a delegated service makes below itself stays the service's.
            ("/system.slice/ci.service/job-7.scope", Some("ci.service")),
            ("/tollgate.slice/run-etl-1", None),
            ("/", None),
        ];
        for (path, want) in cases {
            assert_eq!(systemd_unit(path), want, "{path}");
        }
    }

    #[test]
    fn cgroup_line_is_the_v2_one() {
        let text = "9:name=systemd:/\n4:memory:/x\n0::/a/b\n";
        assert_eq!(parse_cgroup_v2_line(text), Some("/a/b"));
        assert_eq!(parse_cgroup_v2_line("4:memory:/x\n"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(cgroup_of(pid).is_some());
        assert!(exe_of(pid).is_some());
    }
}
