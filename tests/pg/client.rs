//! Real, unmodified PostgreSQL clients (`psql`, `pgbench`, Python psycopg2, a raw-socket
//! Python client, and this test binary itself as a tokio-postgres client) started inside an
//! enrolled cgroup, without any password in their environment, with a time limit.
use std::{
    io::{Read as _, Write as _},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::Value;

use crate::harness::cgroup::in_cgroup;

/// The system Python, which has Debian's `python3-psycopg2`.
pub const PYTHON: &str = "/usr/bin/python3";
/// Default time limit of one client run.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the condition of [`Client::signal_when`] is checked.
const SIGNAL_PROBE_EVERY: Duration = Duration::from_millis(100);

/// What one client run did.
#[derive(Debug, Clone)]
pub struct Run {
    /// Process id of the client (the one the audit records).
    pub pid: u32,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time until it exited.
    pub elapsed: Duration,
    /// Killed because it ran past its time limit.
    pub timed_out: bool,
    /// When the signal of [`Client::signal_after`] or [`Client::signal_when`] was sent,
    /// counted from the start; `None`: not sent.
    pub signalled: Option<Duration>,
}

impl Run {
    /// Exited with 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout and stderr, for messages and searches.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// The last line of stdout parsed as JSON (the Python and Rust clients print one object).
    pub fn json(&self) -> Value {
        let line = self.stdout.lines().rev().find(|l| l.starts_with('{'));
        line.and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("client printed no JSON object: {self:?}"))
    }
}

/// A client command, not started yet.
pub struct Client {
    cmd: Command,
    stdin: Option<String>,
    timeout: Duration,
    signal_after: Option<(Duration, Signal)>,
    signal_when: Option<(Box<dyn FnMut() -> bool>, Signal)>,
}

impl Client {
    /// `program args…` with a clean environment: no `PG*` variable but `PGPASSFILE` pointing
    /// to nothing and a connect timeout; no home directory (no `~/.pgpass`, `~/.postgresql`).
    pub fn new(program: &str, args: &[&str]) -> Client {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .env("HOME", "/nonexistent")
            .env("PGPASSFILE", "/nonexistent/pgpass")
            .env("PGCONNECT_TIMEOUT", "10");
        Client {
            cmd,
            stdin: None,
            timeout: CLIENT_TIMEOUT,
            signal_after: None,
            signal_when: None,
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Client {
        self.cmd.env(key, value);
        self
    }

    /// Feeds `input` on standard input (otherwise it is empty).
    pub fn stdin(mut self, input: &str) -> Client {
        self.stdin = Some(input.to_owned());
        self
    }

    /// Changes the time limit.
    pub fn timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Sends `signal` to the client `after` its start.
    pub fn signal_after(mut self, after: Duration, signal: Signal) -> Client {
        self.signal_after = Some((after, signal));
        self
    }

    /// Sends `signal` to the client once `ready` returns true (asked every
    /// [`SIGNAL_PROBE_EVERY`] while the client runs), e.g. once the server runs its query:
    /// a fixed delay may be too short on a loaded machine.
    pub fn signal_when(mut self, ready: impl FnMut() -> bool + 'static, signal: Signal) -> Client {
        self.signal_when = Some((Box::new(ready), signal));
        self
    }

    /// Runs it in the cgroup directory `cgroup` (or the test's own with `None`).
    pub fn run(mut self, cgroup: Option<&Path>) -> Run {
        if let Some(dir) = cgroup {
            in_cgroup(&mut self.cmd, dir);
        }
        let start = Instant::now();
        let mut child = self
            .cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.cmd.get_program()));
        let pid = child.id();
        let writer = child.stdin.take().map(|mut w| {
            let input = self.stdin.take().unwrap_or_default();
            std::thread::spawn(move || {
                let _ = w.write_all(input.as_bytes());
            })
        });
        let read = |r: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf);
                }
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let out = read(child.stdout.take().map(|r| Box::new(r) as _));
        let err = read(child.stderr.take().map(|r| Box::new(r) as _));
        let mut signalled = None;
        let mut timed_out = false;
        let mut next_probe = start;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait client") {
                break status;
            }
            let elapsed = start.elapsed();
            if let Some((after, signal)) = self.signal_after
                && signalled.is_none()
                && elapsed >= after
            {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), signal);
                signalled = Some(elapsed);
            }
            if let Some((ready, signal)) = self.signal_when.as_mut()
                && signalled.is_none()
                && Instant::now() >= next_probe
            {
                if ready() {
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), *signal);
                    signalled = Some(start.elapsed());
                }
                next_probe = Instant::now() + SIGNAL_PROBE_EVERY;
            }
            if elapsed > self.timeout {
                timed_out = true;
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = start.elapsed();
        if let Some(w) = writer {
            let _ = w.join();
        }
        Run {
            pid,
            code: status.code(),
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
            elapsed,
            timed_out,
            signalled,
        }
    }
}

/// A libpq connection string to `127.0.0.1:port`, database `orders`, without any password.
pub fn conninfo(port: u16, user: &str, sslmode: &str) -> String {
    conninfo_at("127.0.0.1", port, user, sslmode)
}

/// A libpq connection string to `host:port`, database `orders`, without any password.
pub fn conninfo_at(host: &str, port: u16, user: &str, sslmode: &str) -> String {
    format!("host={host} port={port} dbname=orders user={user} sslmode={sslmode}")
}

/// `psql -X -w -A -t -F '|' -v VERBOSITY=verbose -d <conninfo> <args…>`: no psqlrc, never
/// prompts for a password, unaligned tuples only, errors with their SQLSTATE.
pub fn psql(conninfo: &str, args: &[&str]) -> Client {
    let mut all = vec![
        "-X",
        "-w",
        "-A",
        "-t",
        "-F",
        "|",
        "-v",
        "VERBOSITY=verbose",
        "-d",
        conninfo,
    ];
    all.extend_from_slice(args);
    Client::new("/usr/bin/psql", &all)
}

/// `python3 -c <script> <args…>` with the system Python.
pub fn python(script: &str, args: &[&str]) -> Client {
    let mut all = vec!["-c", script];
    all.extend_from_slice(args);
    Client::new(PYTHON, &all)
}

/// Environment variable that turns this test binary into the tokio-postgres client.
pub const CHILD_SPEC: &str = "TOLLGATE_PG_CHILD_SPEC";

/// This test binary re-run as the tokio-postgres client ([`crate::rust_driver_child`]), with
/// `spec` (JSON) telling it where to connect and what to do.
pub fn rust_client(spec: &Value) -> Client {
    let exe = std::env::current_exe().expect("current exe");
    let exe = exe.to_str().expect("utf-8 exe path").to_owned();
    Client::new(
        &exe,
        &[
            "--ignored",
            "--exact",
            "rust_driver_child",
            "--nocapture",
            "--test-threads=1",
        ],
    )
    .env(CHILD_SPEC, &spec.to_string())
}
