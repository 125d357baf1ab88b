//! Processes of `cargo xtask bench postgres`: the work directory, daemons run as the `postgres`
//! user (stopped and reaped on drop, killed by the kernel if the bench dies), and the CPU time
//! of a process from `/proc/<pid>/stat`.
use std::{
    ffi::c_int,
    fs,
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// Prefix of the work directory (then the bench's pid).
const DIR_PREFIX: &str = "tollgate-bench-pg-";

/// `SIGQUIT` on Linux: immediate shutdown of a postmaster.
pub const SIGQUIT: c_int = 3;
/// `SIGTERM` on Linux.
pub const SIGTERM: c_int = 15;
/// `SIGKILL` on Linux.
const SIGKILL: c_int = 9;
/// `PR_SET_PDEATHSIG`.
const PR_SET_PDEATHSIG: c_int = 1;
/// `_SC_CLK_TCK` on Linux.
const SC_CLK_TCK: c_int = 2;

unsafe extern "C" {
    /// kill(2) from the C library std already links.
    fn kill(pid: c_int, sig: c_int) -> c_int;
    /// prctl(2).
    fn prctl(option: c_int, ...) -> c_int;
    /// sysconf(3).
    fn sysconf(name: c_int) -> std::ffi::c_long;
}

/// uid and gid of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// The `postgres` user of `/etc/passwd`.
pub fn postgres_ids() -> anyhow::Result<Ids> {
    let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd_ids(&passwd, "postgres").context("no `postgres` user (install postgresql-15)")
}

/// uid and gid of `user` in `/etc/passwd` text.
fn passwd_ids(passwd: &str, user: &str) -> Option<Ids> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == user).then_some(())?;
        let _password = f.next()?;
        Some(Ids {
            uid: f.next()?.parse().ok()?,
            gid: f.next()?.parse().ok()?,
        })
    })
}

/// The bench's scratch directory `/tmp/tollgate-bench-pg-<pid>`, owned by `postgres` (mode
/// 0700); removed on drop, after everything declared later has been dropped.
pub struct Workdir {
    /// Its path.
    pub path: PathBuf,
}

impl Workdir {
    /// Sweeps the directories of dead earlier runs and creates this run's.
    pub fn create(owner: Ids) -> anyhow::Result<Workdir> {
        sweep_stale();
        let path = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        let dir = Workdir { path };
        dir.chown(&dir.path, owner)?;
        set_mode(&dir.path, 0o700)?;
        Ok(dir)
    }

    /// `<dir>/<name>`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates the directory `<dir>/<name>` owned by `owner` with `mode`.
    pub fn subdir(&self, name: &str, owner: Ids, mode: u32) -> anyhow::Result<PathBuf> {
        let dir = self.join(name);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        self.chown(&dir, owner)?;
        set_mode(&dir, mode)?;
        Ok(dir)
    }

    /// Writes `<dir>/<name>` owned by `owner` with `mode`.
    pub fn file(&self, name: &str, text: &str, owner: Ids, mode: u32) -> anyhow::Result<PathBuf> {
        let path = self.join(name);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        self.chown(&path, owner)?;
        set_mode(&path, mode)?;
        Ok(path)
    }

    fn chown(&self, path: &Path, owner: Ids) -> anyhow::Result<()> {
        std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid))
            .with_context(|| format!("chown {}", path.display()))
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Sets the permission bits of `path`.
pub fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Removes the work directories of runs whose process is gone (their daemons died with them:
/// parent-death signal).
fn sweep_stale() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// `program` run as `ids` in `cwd`, with a clean environment.
pub fn command_as(program: impl AsRef<std::ffi::OsStr>, ids: Ids, cwd: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.uid(ids.uid)
        .gid(ids.gid)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .env("LC_ALL", "C.UTF-8");
    cmd
}

/// A long-running process of the bench (postgres, pgbouncer, haproxy), its output in a log
/// file. Dropped, it gets its stop signal, then SIGKILL after 10 s, and is reaped.
pub struct Daemon {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
    stop_signal: c_int,
}

impl Daemon {
    /// Spawns `cmd` with stdout and stderr appended to `log`; the kernel sends it `stop_signal`
    /// if the bench dies first.
    pub fn spawn(
        name: &'static str,
        mut cmd: Command,
        log: &Path,
        stop_signal: c_int,
    ) -> anyhow::Result<Daemon> {
        let out = fs::File::options().create(true).append(true).open(log)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent. It runs after
        // the uid change, which would otherwise clear the setting.
        unsafe {
            cmd.pre_exec(move || {
                if prctl(PR_SET_PDEATHSIG, stop_signal as std::ffi::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Daemon {
            name,
            child: Some(child),
            log: log.to_owned(),
            stop_signal,
        })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// An error with the log's tail if it has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            self.child = None;
            bail!("{} exited ({status}):\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    /// Polls `ready` every 50 ms for up to 20 s while the process runs.
    pub fn wait_ready(&mut self, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.check_alive()?;
            if ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} not ready after 20 s:\n{}", self.name, self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last 30 lines of its log.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 30)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = c_int::try_from(child.id()).unwrap_or(0);
        // SAFETY: kill(2) on the pid of our own unreaped child: it cannot have been reused.
        unsafe { kill(pid, self.stop_signal) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; harmless if it has exited (still unreaped until `wait`).
        unsafe { kill(pid, SIGKILL) };
        let _ = child.wait();
    }
}

/// The last `n` lines of a text file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `cmd` (stdout and stderr to `out`, appended) and kills it if it takes longer than
/// `limit`; returns its exit status and output.
pub fn run_bounded(
    mut cmd: Command,
    out: &Path,
    limit: Duration,
) -> anyhow::Result<(std::process::ExitStatus, String)> {
    let _ = fs::remove_file(out);
    let file = fs::File::create(out)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{:?} still running after {limit:?}: killed\n{}",
                cmd.get_program(),
                tail(out, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok((status, fs::read_to_string(out).unwrap_or_default()))
}

/// CPU time of a process, in µs: all of it, its system (kernel) part, and the part of its
/// threads named [`WRITER_THREAD`] (tollgate's audit writer).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cpu {
    /// User + system.
    pub total: f64,
    /// System.
    pub system: f64,
    /// User + system of the audit writer thread (0 in a process without one).
    pub writer: f64,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;

    fn sub(self, before: Cpu) -> Cpu {
        Cpu {
            total: self.total - before.total,
            system: self.system - before.system,
            writer: self.writer - before.writer,
        }
    }
}

impl Cpu {
    /// Each figure divided by `n` (at least 1).
    pub fn per(self, n: u64) -> Cpu {
        let n = n.max(1) as f64;
        Cpu {
            total: self.total / n,
            system: self.system / n,
            writer: self.writer / n,
        }
    }
}

impl std::ops::Add for Cpu {
    type Output = Cpu;

    fn add(self, other: Cpu) -> Cpu {
        Cpu {
            total: self.total + other.total,
            system: self.system + other.system,
            writer: self.writer + other.writer,
        }
    }
}

/// The name of tollgate's audit writer thread (`/proc/<pid>/task/<tid>/comm`).
pub const WRITER_THREAD: &str = "audit-writer";

/// [`Cpu`] of process `pid`.
pub fn cpu(pid: u32) -> anyhow::Result<Cpu> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let (user, system) = stat_user_system(&stat).context("malformed /proc/<pid>/stat")?;
    let mut writer = 0;
    // Threads come and go: one unreadable now is skipped.
    for task in fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
        let dir = task.path();
        let named = fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == WRITER_THREAD);
        if let (true, Ok(stat)) = (named, fs::read_to_string(dir.join("stat")))
            && let Some((u, s)) = stat_user_system(&stat)
        {
            writer += u + s;
        }
    }
    let us = |ticks: u64| ticks as f64 * 1e6 / clock_ticks();
    Ok(Cpu {
        total: us(user + system),
        system: us(system),
        writer: us(writer),
    })
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { sysconf(SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// utime and stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The
/// command name (field 2) may hold spaces and parentheses: fields are counted after its last
/// `)`.
fn stat_user_system(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name, field 3 (state) is at index 0: field n is at n - 3.
    Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
}

/// The parent pid (field 4) of a `/proc/<pid>/stat` line.
fn stat_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The pid of a child of this process running `exe` (the agent `BenchAgent` started).
pub fn child_running(exe: &Path) -> anyhow::Result<u32> {
    let me = std::process::id();
    let exe = fs::canonicalize(exe).unwrap_or_else(|_| exe.to_owned());
    for e in fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let ours = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| stat_ppid(&s))
            == Some(me);
        if ours && fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == exe) {
            return Ok(pid);
        }
    }
    bail!("no child process of the bench runs {}", exe.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_cases() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n\
                      broken:x:abc:1::/:/bin/sh\n";
        let cases = [
            ("postgres", Some(Ids { uid: 101, gid: 104 })),
            ("root", Some(Ids { uid: 0, gid: 0 })),
            ("broken", None),
            ("post", None),
            ("nobody", None),
        ];
        for (user, want) in cases {
            assert_eq!(passwd_ids(passwd, user), want, "{user}");
        }
    }

    #[test]
    fn stat_cases() {
        let line = "1234 (tollgate (x) y) S 99 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(stat_user_system(line), Some((250, 75)));
        assert_eq!(stat_ppid(line), Some(99));
        let cases = ["", "1 (x) S 1", "garbage"];
        for bad in cases {
            assert_eq!(stat_user_system(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn own_cpu_time_is_readable() {
        let c = cpu(std::process::id()).expect("own stat");
        assert!(c.total >= c.system && c.system >= 0.0, "{c:?}");
    }

    /// A thread named as the writer is counted in `writer`.
    #[test]
    fn the_writer_threads_time_is_its_own() {
        let spin = |d: Duration| {
            let end = std::time::Instant::now() + d;
            while std::time::Instant::now() < end {
                std::hint::black_box(0u64);
            }
        };
        let before = cpu(std::process::id()).expect("own stat");
        // Read while the thread lives: an exited thread has no task entry.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || {
                spin(Duration::from_millis(300));
                rx.recv().ok();
            })
            .expect("thread");
        std::thread::sleep(Duration::from_millis(400));
        let during = cpu(std::process::id()).expect("own stat");
        tx.send(()).ok();
        t.join().expect("joined");
        let d = during - before;
        assert!(d.writer >= 200_000.0, "{d:?}");
        assert!(d.total >= d.writer && d.total >= d.system, "{d:?}");
    }
}
