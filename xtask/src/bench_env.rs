//! The benchmark's host side: cgroups (the bench process moves itself between its own cgroup
//! and cgroups below the attach cgroup, so one client measures both paths), and one
//! `tollgate agent` in `fail_mode = "open"` (stopping it detaches the programs).
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Prefix of the bench's cgroup, pin directory and temp directory (then the pid).
const PREFIX: &str = "tollgate-bench-";

/// Where a cgroup v2 hierarchy may be mounted: unified first, then hybrid.
const CGROUP2_ROOTS: &[&str] = &["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];

/// The cgroup v2 root and the cgroup this process started in.
pub struct Host {
    /// cgroup v2 mount.
    pub cgroup_root: PathBuf,
    /// Absolute directory of this process's own cgroup (outside every attach cgroup).
    pub home: PathBuf,
}

impl Host {
    /// Finds the cgroup v2 root and this process's cgroup.
    pub fn detect() -> anyhow::Result<Host> {
        let cgroup_root = CGROUP2_ROOTS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("cgroup.controllers").is_file())
            .context("no cgroup v2 hierarchy (cgroup.controllers) found")?;
        let own = fs::read_to_string("/proc/self/cgroup")?;
        let path = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .context("no cgroup v2 line in /proc/self/cgroup")?;
        let home = cgroup_root.join(path.trim().trim_start_matches('/'));
        Ok(Host { cgroup_root, home })
    }
}

/// Moves this whole process (every thread) into the cgroup directory `dir`.
fn join(dir: &Path) -> anyhow::Result<()> {
    fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
        .with_context(|| format!("joining cgroup {}", dir.display()))
}

/// While alive, this process is in another cgroup; dropped, it is back home.
pub struct Visit<'a> {
    home: &'a Path,
}

/// Moves this process into `dir` until the returned guard is dropped.
pub fn visit<'a>(host: &'a Host, dir: &Path) -> anyhow::Result<Visit<'a>> {
    join(dir)?;
    Ok(Visit { home: &host.home })
}

impl Drop for Visit<'_> {
    fn drop(&mut self) {
        if let Err(e) = join(self.home) {
            eprintln!("bench: cannot move back to {}: {e:#}", self.home.display());
        }
    }
}

/// The agent under measurement, with its own attach cgroup, pins, state and port.
pub struct BenchAgent {
    bin: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    policy: PathBuf,
    attach_rel: String,
    attach: PathBuf,
    pin_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl BenchAgent {
    /// Prepares directories, config and the attach cgroup (`/tollgate-bench-<pid>`).
    pub fn new(bin: &Path, host: &Host, port: u16) -> anyhow::Result<BenchAgent> {
        sweep_stale(host);
        let name = format!("{PREFIX}{}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("policies"))?;
        let attach_rel = format!("/{name}");
        let attach = host.cgroup_root.join(&name);
        let pin_dir = PathBuf::from("/sys/fs/bpf").join(&name);
        fs::create_dir_all(attach.join("run")).context("creating the attach cgroup")?;
        let config = dir.join("tollgate.toml");
        let text = format!(
            "policy_dir = {policies:?}\nstate_dir = {state:?}\nlisten_port = {port}\n\
             cgroup_root = {root:?}\nattach_cgroup = {attach_rel:?}\n\
             run_cgroup = \"{attach_rel}/run\"\npin_dir = {pin_dir:?}\nfail_mode = \"open\"\n",
            policies = dir.join("policies"),
            state = dir.join("state"),
            root = host.cgroup_root,
        );
        fs::write(&config, text)?;
        Ok(BenchAgent {
            bin: bin.to_owned(),
            policy: dir.join("policies").join("bench.toml"),
            log: dir.join("agent.log"),
            dir,
            config,
            attach_rel,
            attach,
            pin_dir,
            child: None,
        })
    }

    /// Creates (if needed) and returns the cgroup `<attach>/<sub>`.
    pub fn cgroup(&self, sub: &str) -> anyhow::Result<PathBuf> {
        let dir = self.attach.join(sub);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// `<attach>/<sub>` as a path below the cgroup root (for policy globs).
    pub fn cgroup_path(&self, sub: &str) -> String {
        format!("{}/{sub}", self.attach_rel)
    }

    /// Writes the policy file.
    pub fn write_policy(&self, text: &str) -> anyhow::Result<()> {
        fs::write(&self.policy, text).context("writing the bench policy")
    }

    /// Starts the agent and waits until `tollgate status` says it is ready.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let log = fs::File::options()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .arg("agent")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!("agent exited before ready ({status}):\n{}", self.log_tail());
            }
            let ready = Command::new(&self.bin)
                .arg("status")
                .arg("--config")
                .arg(&self.config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("agent not ready after 20 s:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM (through `kill`), then waits; in fail-open mode this detaches the programs.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("agent ignored SIGTERM for 15 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// A counter of `tollgate status --json` (`"name": N` anywhere in it), if present.
    pub fn counter(&self, name: &str) -> Option<u64> {
        let out = Command::new(&self.bin)
            .args(["status", "--json", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        json_number(&String::from_utf8_lossy(&out.stdout), name)
    }

    /// Waits until every audit record the agent took is committed (its writer gathers spooled
    /// records for up to 50 ms): a run's records are then counted, their writing is part of
    /// its CPU time, and it does not slow the next run down.
    pub fn settle(&self) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.counter("audit_pending").unwrap_or(0) > 0 {
            if std::time::Instant::now() > deadline {
                anyhow::bail!("tollgate's audit records were not all committed in 30 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// Whether the agent process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Resident set size of the running agent, in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let pid = self.child.as_ref().context("agent not running")?.id();
        let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
        vm_rss_kib(&status).context("no VmRSS in /proc/<pid>/status")
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for BenchAgent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.pin_dir);
        remove_cgroup_tree(&self.attach);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Removes the cgroups, pins and temp dirs of earlier bench runs whose process is gone (an
/// interrupted run cannot clean up after itself).
fn sweep_stale(host: &Host) {
    let bpffs = PathBuf::from("/sys/fs/bpf");
    let tmp = std::env::temp_dir();
    for dir in [&host.cgroup_root, &bpffs, &tmp] {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(PREFIX)
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            if dir == &host.cgroup_root {
                remove_cgroup_tree(&e.path());
            } else {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// The unsigned number after the first `"key":` in JSON text.
fn json_number(text: &str, key: &str) -> Option<u64> {
    let at = text.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `VmRSS:  1234 kB` → 1234.
fn vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Kills what is left in the cgroup tree and removes it, deepest first.
fn remove_cgroup_tree(dir: &Path) {
    if !dir.exists() {
        return;
    }
    let _ = fs::write(dir.join("cgroup.kill"), "1");
    let mut dirs = vec![dir.to_owned()];
    let mut i = 0;
    while i < dirs.len() {
        if let Ok(entries) = fs::read_dir(&dirs[i]) {
            dirs.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        i += 1;
    }
    for d in dirs.iter().rev() {
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::remove_dir(d).is_err() && d.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A port free on 127.0.0.1 and ::1 right now, below the ephemeral range: the connect loops
/// leave thousands of TIME_WAIT sockets on 127.0.0.1 source ports, and an agent restarted on
/// such a port could not bind it.
pub fn free_port() -> anyhow::Result<u16> {
    let range = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let first: u16 = range
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(32768);
    let low = 10_000u16.min(first.saturating_sub(1000));
    let start = low + (std::process::id() % 997) as u16;
    for port in (start..first).chain(low..start) {
        let Ok(_v4) = std::net::TcpListener::bind(("127.0.0.1", port)) else {
            continue;
        };
        if std::net::TcpListener::bind(("::1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port free on both loopbacks below {first}")
}

/// Whether this process runs with effective uid 0 (`/proc/self/status`).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// The repository root (the parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

/// The cargo target directory: `$CARGO_TARGET_DIR` or `<repo>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => repo_root().join(dir),
        None => repo_root().join("target"),
    }
}

/// Soft limit of open files of this process (`/proc/self/limits`).
pub fn open_files_limit() -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_number_cases() {
        let text = r#"{"counters": {"ebpf_direct": 42, "ebpf_refused":0}, "x": "y"}"#;
        let cases = [
            ("ebpf_direct", Some(42)),
            ("ebpf_refused", Some(0)),
            ("x", None),
            ("z", None),
        ];
        for (key, want) in cases {
            assert_eq!(json_number(text, key), want, "{key}");
        }
    }

    #[test]
    fn vm_rss_cases() {
        let cases = [
            ("Name:\tx\nVmRSS:\t   1234 kB\n", Some(1234)),
            ("VmRSS:\t0 kB", Some(0)),
            ("Name:\tx\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(vm_rss_kib(text), want, "{text:?}");
        }
    }
}
