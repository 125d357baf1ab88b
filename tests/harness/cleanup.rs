//! Unique names for everything a test creates on the host, and removal of what a crashed run
//! left behind (names carry the creating process id; a dead id means stale).
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Once,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use super::prereq::Env;

/// Prefix of cgroups and pin directories created by the suites.
pub const PREFIX: &str = "tollgate-test-";
/// Prefix of network namespaces created by the suites.
pub const NETNS_PREFIX: &str = "tgt-";
/// bpffs directory holding the pin directories.
pub const BPFFS: &str = "/sys/fs/bpf";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A number unique within this process.
pub fn next_id() -> u32 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `tollgate-test-<pid>-<n>-<tag>`: unique on the host while this process lives.
pub fn unique_name(tag: &str) -> String {
    format!("{PREFIX}{}-{}-{tag}", std::process::id(), next_id())
}

/// Kills every process in the cgroup tree at `dir` and removes it, deepest first. Missing is
/// fine; returns an error text when something could not be removed.
pub fn remove_cgroup_tree(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    // cgroup.kill (5.14+) kills the whole subtree; fall back to killing listed pids.
    if std::fs::write(dir.join("cgroup.kill"), "1").is_err() {
        kill_listed(dir);
    }
    let mut dirs = Vec::new();
    collect_dirs(dir, &mut dirs);
    let deadline = Instant::now() + Duration::from_secs(5);
    // Children were pushed after their parent: remove in reverse order.
    for d in dirs.iter().rev() {
        loop {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("cannot remove cgroup {}: {e}", d.display()));
                }
                Err(_) => {
                    kill_listed(d);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    Ok(())
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_owned());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

fn kill_listed(dir: &Path) {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Removes leftovers of earlier runs whose process is gone (once per test process).
pub fn sweep_stale(env: &Env) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (dir, prefix) in [
            (env.cgroup_root.as_path(), PREFIX),
            (Path::new(BPFFS), PREFIX),
        ] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !owner_is_dead(&name, prefix) {
                    continue;
                }
                if dir == env.cgroup_root {
                    let _ = remove_cgroup_tree(&e.path());
                } else {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let netns = Command::new("ip")
            .args(["netns", "list"])
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for name in netns.lines().filter_map(|l| l.split_whitespace().next()) {
            if owner_is_dead(name, NETNS_PREFIX) {
                let _ = Command::new("ip")
                    .args(["netns", "del", name])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    });
}

/// Whether `name` is `<prefix><pid>-…` for a process that no longer exists.
fn owner_is_dead(name: &str, prefix: &str) -> bool {
    let Some(pid) = owner_pid(name, prefix) else {
        return false;
    };
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// The creating process id in `<prefix><pid>-…`.
fn owner_pid(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_is_the_first_field() {
        let cases = [
            ("tollgate-test-123-4-x", PREFIX, Some(123)),
            ("tollgate-test-x", PREFIX, None),
            ("tgt-77-1", NETNS_PREFIX, Some(77)),
            ("other", NETNS_PREFIX, None),
        ];
        for (name, prefix, want) in cases {
            assert_eq!(owner_pid(name, prefix), want, "{name}");
        }
    }
}
