//! What the root suites need from the host, and what happens when it is missing: in CI
//! (`CI=true`) the test fails; elsewhere it prints a loud SKIP line and returns.
use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// One prerequisite of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// `ip` from iproute2 with network namespace support.
    Iproute2,
    /// The `curl` command.
    Curl,
    /// `python3` on PATH.
    Python3,
}

/// What every root test gets once its prerequisites are met.
#[derive(Debug, Clone)]
pub struct Env {
    /// The cgroup v2 mount (the directory holding `cgroup.controllers`).
    pub cgroup_root: PathBuf,
    /// The `tollgate` binary under test.
    pub tollgate: PathBuf,
    /// Absolute path of the Python interpreter (`python3` resolved once).
    pub python3: Option<PathBuf>,
}

/// Where a cgroup v2 hierarchy may be mounted: unified first, then hybrid.
const CGROUP2_ROOTS: &[&str] = &["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];
/// bpffs mount point.
const BPFFS: &str = "/sys/fs/bpf";

/// True when running in CI, where a missing prerequisite is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Checks root, cgroup v2, bpffs and `needs`. Returns `None` (after a loud SKIP line) when
/// something is missing outside CI; panics in CI.
pub fn setup(test: &str, needs: &[Need]) -> Option<Env> {
    match check(needs) {
        Ok(env) => {
            super::cleanup::sweep_stale(&env);
            Some(env)
        }
        Err(missing) if in_ci() => {
            panic!("{test}: prerequisite missing in CI (CI=true): {missing}")
        }
        Err(missing) => {
            // Straight to the file descriptor: libtest captures only the print macros.
            let _ = writeln!(
                std::io::stderr(),
                "\n********** SKIP {test}: {missing} (see tests/README.md) **********\n"
            );
            None
        }
    }
}

fn check(needs: &[Need]) -> Result<Env, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("not running as root".into());
    }
    let cgroup_root = cgroup2_root().ok_or("no cgroup v2 hierarchy mounted")?;
    ensure_bpffs()?;
    let mut python3 = None;
    for need in needs {
        match need {
            Need::Iproute2 => {
                if !runs("ip", &["-V"]) || !runs("ip", &["netns", "list"]) {
                    return Err("`ip` (iproute2) with netns support is missing".into());
                }
            }
            Need::Curl => {
                if !runs("curl", &["--version"]) {
                    return Err("`curl` is missing".into());
                }
            }
            Need::Python3 => python3 = Some(resolve_python()?),
        }
    }
    Ok(Env {
        cgroup_root,
        tollgate: PathBuf::from(env!("CARGO_BIN_EXE_tollgate")),
        python3,
    })
}

/// The cgroup v2 mount: the first candidate holding `cgroup.controllers` and mounted as cgroup2.
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    CGROUP2_ROOTS
        .iter()
        .map(PathBuf::from)
        .find(|p| mounted_as(&mounts, p, "cgroup2") && p.join("cgroup.controllers").is_file())
}

/// Mounts bpffs at `/sys/fs/bpf` when it is not (as `cargo xtask setup` does).
fn ensure_bpffs() -> Result<(), String> {
    let mounted = || {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        mounted_as(&mounts, Path::new(BPFFS), "bpf")
    };
    if mounted() {
        return Ok(());
    }
    let _ = std::fs::create_dir_all(BPFFS);
    let _ = Command::new("mount")
        .args(["-t", "bpf", "bpf", BPFFS])
        .stderr(Stdio::null())
        .status();
    if mounted() {
        Ok(())
    } else {
        Err(format!(
            "bpffs is not mounted at {BPFFS} and mounting it failed"
        ))
    }
}

/// Whether `/proc/self/mounts` text has `dir` mounted with filesystem type `fstype`.
fn mounted_as(mounts: &str, dir: &Path, fstype: &str) -> bool {
    mounts.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (_, mnt, ty) = (f.next(), f.next(), f.next());
        mnt.map(Path::new) == Some(dir) && ty == Some(fstype)
    })
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `python3` from PATH, resolved to the real interpreter (no shim inside enrolled cgroups).
fn resolve_python() -> Result<PathBuf, String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("`python3` is missing: {e}"))?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || path.is_empty() {
        return Err("`python3` does not run".into());
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounted_as_matches_dir_and_type() {
        let mounts = "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\nbpf /sys/fs/bpf bpf rw 0 0\n";
        let cases = [
            ("/sys/fs/cgroup/unified", "cgroup2", true),
            ("/sys/fs/cgroup", "cgroup2", false),
            ("/sys/fs/bpf", "bpf", true),
            ("/sys/fs/bpf", "cgroup2", false),
        ];
        for (dir, ty, want) in cases {
            assert_eq!(mounted_as(mounts, Path::new(dir), ty), want, "{dir} {ty}");
        }
    }
}
