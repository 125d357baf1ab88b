//! One `tollgate agent` under test: its own attach cgroup, run cgroup, pin directory, state
//! and policy directories and port, so that tests run in parallel without seeing each other.
//! Dropping it stops the agent and removes everything it and the test created.
use std::{
    fs::File,
    io::Write as _,
    net::{Ipv6Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::Value;

use super::{
    audit::{Session, parse_lines},
    cleanup::{BPFFS, remove_cgroup_tree, unique_name},
    poll,
    prereq::Env,
};

/// How long the agent may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an audit record may take to appear or to be completed.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What enrolled tasks get while no agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Links are dropped: tasks go direct.
    Open,
    /// Links stay pinned: connections are refused.
    Closed,
}

impl FailMode {
    fn as_str(self) -> &'static str {
        match self {
            FailMode::Open => "open",
            FailMode::Closed => "closed",
        }
    }
}

/// An agent under test (not running until [`Agent::start`]).
pub struct Agent {
    /// Host facts.
    pub env: Env,
    /// Unique name, also the attach cgroup's directory name and the pin directory's name.
    pub name: String,
    /// Main config file.
    pub config: PathBuf,
    /// Policy directory.
    pub policy_dir: PathBuf,
    /// State directory.
    pub state_dir: PathBuf,
    /// Attach cgroup, as a path below the cgroup v2 root (`/tollgate-test-…`).
    pub attach: String,
    /// Run cgroup of `tollgate run`, below the attach cgroup.
    pub run_cgroup: String,
    /// bpffs pin directory.
    pub pin_dir: PathBuf,
    /// Proxy port on loopback.
    pub port: u16,
    dir: tempfile::TempDir,
    log: PathBuf,
    child: Option<Child>,
}

impl Agent {
    /// Prepares directories, config and the attach cgroup for an agent named after `tag`.
    pub fn new(env: &Env, tag: &str, fail_mode: FailMode) -> Agent {
        Agent::with_attach(env, &unique_name(tag), fail_mode)
    }

    /// Like [`Agent::new`] with a given name for the attach cgroup (directly below the root)
    /// and the pin directory; the caller makes it unique.
    pub fn with_attach(env: &Env, name: &str, fail_mode: FailMode) -> Agent {
        let name = name.to_owned();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir()
            .expect("temp dir");
        let policy_dir = dir.path().join("policies");
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(&policy_dir).expect("policy dir");
        let attach = format!("/{name}");
        let run_cgroup = format!("{attach}/run");
        let pin_dir = Path::new(BPFFS).join(&name);
        let port = free_port();
        let config = dir.path().join("tollgate.toml");
        let text = format!(
            "policy_dir = {policy_dir:?}\n\
             state_dir = {state_dir:?}\n\
             listen_port = {port}\n\
             cgroup_root = {cgroup_root:?}\n\
             attach_cgroup = {attach:?}\n\
             run_cgroup = {run_cgroup:?}\n\
             pin_dir = {pin_dir:?}\n\
             fail_mode = {fail_mode:?}\n\
             connect_timeout = \"3s\"\n\
             drain_timeout = \"2s\"\n",
            cgroup_root = env.cgroup_root,
            fail_mode = fail_mode.as_str(),
        );
        std::fs::write(&config, text).expect("write config");
        let agent = Agent {
            env: env.clone(),
            log: dir.path().join("agent.log"),
            name,
            config,
            policy_dir,
            state_dir,
            attach,
            run_cgroup,
            pin_dir,
            port,
            dir,
            child: None,
        };
        super::cgroup::mkdir(&agent.cgroup_dir(""));
        super::cgroup::mkdir(&agent.abs(&agent.run_cgroup));
        agent
    }

    /// Adds `lines` (TOML) to the main config; takes effect at the next [`Agent::start`].
    pub fn add_config(&self, lines: &str) {
        let mut text = std::fs::read_to_string(&self.config).expect("read config");
        text.push_str(lines);
        std::fs::write(&self.config, text).expect("write config");
    }

    /// Absolute directory of the cgroup `<attach>/<sub>` (`sub` empty: the attach cgroup).
    pub fn cgroup_dir(&self, sub: &str) -> PathBuf {
        self.abs(&self.cgroup_path(sub))
    }

    /// Path below the cgroup root of `<attach>/<sub>`, as policy globs see it.
    pub fn cgroup_path(&self, sub: &str) -> String {
        if sub.is_empty() {
            self.attach.clone()
        } else {
            format!("{}/{sub}", self.attach)
        }
    }

    /// Absolute directory of a cgroup path below the root.
    pub fn abs(&self, path: &str) -> PathBuf {
        self.env.cgroup_root.join(path.trim_start_matches('/'))
    }

    /// A scratch directory that lives as long as the agent.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces policy file `file` atomically (write aside, rename into place).
    pub fn write_policy(&self, file: &str, text: &str) {
        let tmp = self.policy_dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).expect("write policy");
        std::fs::rename(&tmp, self.policy_dir.join(file)).expect("rename policy");
    }

    /// Starts the agent and waits until `tollgate status` reports it ready.
    pub fn start(&mut self) {
        self.start_in(None);
    }

    /// [`Agent::start`] with the agent process in the cgroup directory `cgroup` from its first
    /// instruction (its sockets belong there), as under systemd with the default
    /// `attach_cgroup = "/"`, where the agent lies inside the attach cgroup.
    pub fn start_in(&mut self, cgroup: Option<&Path>) {
        assert!(self.child.is_none(), "agent already running");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("agent log");
        let _ = writeln!(&log, "---- tollgate agent starting");
        let mut cmd = Command::new(&self.env.tollgate);
        cmd.arg("agent")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info,tollgate=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        if let Some(dir) = cgroup {
            super::cgroup::in_cgroup(&mut cmd, dir);
        }
        let child = cmd.spawn().expect("spawn tollgate agent");
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("agent exited before ready ({status}):\n{}", self.log_tail());
            }
            if self.cli(&["status"]).status.success() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "agent not ready after {READY_TIMEOUT:?}:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Process id of the running agent.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    /// Sends `signal` to the running agent.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.pid()).expect("pid"));
        nix::sys::signal::kill(pid, signal).expect("signal agent");
    }

    /// SIGTERM, then waits for the agent to exit (SIGKILL after 15 s).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("agent running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().expect("wait agent") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let status = child.wait().expect("wait agent");
                panic!(
                    "agent ignored SIGTERM for 15 s ({status}):\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `tollgate <args> --config <config>` and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.env.tollgate)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .output()
            .expect("run tollgate cli")
    }

    /// `tollgate status --json`.
    pub fn status(&self) -> Value {
        let out = self.cli(&["status", "--json"]);
        assert!(
            out.status.success(),
            "tollgate status --json failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Every audit record (`tollgate sessions list --json`).
    pub fn sessions(&self) -> Vec<Session> {
        let out = self.cli(&["sessions", "list", "--json"]);
        assert!(
            out.status.success(),
            "tollgate sessions list failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        parse_lines(&String::from_utf8_lossy(&out.stdout))
    }

    /// Waits for a record matching `pred` whose end has been written.
    pub fn wait_ended(&self, what: &str, pred: impl Fn(&Session) -> bool) -> Session {
        poll(AUDIT_TIMEOUT, || {
            self.sessions().into_iter().find(|s| pred(s) && s.ended())
        })
        .unwrap_or_else(|| {
            panic!(
                "no completed audit record for {what} after {AUDIT_TIMEOUT:?}; records:\n{}\nagent log:\n{}",
                self.sessions_text(),
                self.log_tail()
            )
        })
    }

    /// Waits until exactly `n` completed records match `pred`, and returns them.
    pub fn wait_ended_count(
        &self,
        what: &str,
        n: usize,
        pred: impl Fn(&Session) -> bool,
    ) -> Vec<Session> {
        let mut last = Vec::new();
        let found = poll(AUDIT_TIMEOUT, || {
            last = self
                .sessions()
                .into_iter()
                .filter(|s| pred(s) && s.ended())
                .collect();
            (last.len() == n).then(|| last.clone())
        });
        found.unwrap_or_else(|| {
            panic!(
                "expected {n} completed records for {what}, found {}; records:
{}
agent log:
{}",
                last.len(),
                self.sessions_text(),
                self.log_tail()
            )
        })
    }

    /// The records as text, for failure messages.
    pub fn sessions_text(&self) -> String {
        let out = self.cli(&["sessions", "list", "--json"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The last lines of the agent's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
            let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- agent {} log (tail):\n{}", self.name, self.log_tail());
        }
        // Unpin first (the pinned links keep the programs attached), then the cgroups.
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        if let Err(e) = remove_cgroup_tree(&self.cgroup_dir("")) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// A TCP port free on both 127.0.0.1 and ::1 right now, below the ephemeral range: a port
/// from that range could meanwhile become some client's source port (or stay held by one in
/// TIME_WAIT), and the agent could not bind it again after a restart.
pub fn free_port() -> u16 {
    let (low, high) = listen_port_range();
    let span = u32::from(high - low);
    let seed = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(super::cleanup::next_id().wrapping_mul(613))
        .wrapping_add(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()),
        );
    for i in 0..span {
        let port = low + u16::try_from((seed.wrapping_add(i)) % span).expect("port in range");
        let Ok(_v4) = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))) else {
            continue;
        };
        if TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))).is_ok() {
            return port;
        }
    }
    panic!("no port free on both loopbacks in {low}..{high}")
}

/// Ports for agents: from 10000 up to the start of the ephemeral range.
fn listen_port_range() -> (u16, u16) {
    let range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let first: u16 = range
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(32768);
    if first > 12_000 {
        (10_000, first)
    } else {
        // An unusual range: use the ports above it instead.
        let last: u16 = range
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(60999);
        (last.saturating_add(1).min(64_000), 65_000)
    }
}
