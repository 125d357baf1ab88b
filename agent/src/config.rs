//! The agent's main configuration (`/etc/tollgate/tollgate.toml`), every field optional.
use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// Default location of the main config file.
pub const DEFAULT_CONFIG: &str = "/etc/tollgate/tollgate.toml";
/// Default policy directory.
pub const DEFAULT_POLICY_DIR: &str = "/etc/tollgate/policies.d";
/// Default state directory (audit store, admin socket).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/tollgate";

/// Errors reading the main config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, #[source] std::io::Error),
    /// The file is not valid TOML for [`Config`].
    #[error("{path}:{line}:{column}: {reason}")]
    Parse {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        reason: String,
    },
}

/// What enrolled tasks get while no agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// The eBPF links are unpinned when the agent stops: enrolled tasks go direct.
    Open,
    /// The eBPF links stay pinned: enrolled (and unclassified) tasks' connections are refused.
    #[default]
    Closed,
}

/// What happens to work of enrolled workloads (new connections, statements, requests) when the
/// audit store cannot keep up, after `audit_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuditFailure {
    /// Refuse it (default): nothing is done unrecorded.
    #[default]
    Closed,
    /// Let it through, with a warning in the log: a connection unrecorded, a statement or
    /// request recorded only if the queue has room when it ends.
    Open,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The main configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory of policy files (`*.toml`), reloaded on change and on SIGHUP.
    pub policy_dir: PathBuf,
    /// State directory: audit database, admin socket. Created if missing (mode 0750).
    pub state_dir: PathBuf,
    /// Loopback port of the proxy. A privileged port (< 1024) by default, so that no
    /// unprivileged process can take it over while the agent is down.
    pub listen_port: u16,
    /// IPv4 loopback address the proxy listens on: `127.0.0.1`, where connect4 redirects
    /// (another address is a load error: the redirected connections would find no proxy).
    #[serde(deserialize_with = "redirect_v4")]
    pub listen_v4: Ipv4Addr,
    /// IPv6 loopback address the proxy listens on: `::1`, where connect6 redirects.
    #[serde(deserialize_with = "redirect_v6")]
    pub listen_v6: Ipv6Addr,
    /// cgroup v2 mount point; detected (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`) if unset.
    pub cgroup_root: Option<PathBuf>,
    /// cgroup (path below the cgroup v2 root) where the programs are attached; every task below
    /// it is subject to classification. `/` covers the whole host.
    pub attach_cgroup: String,
    /// cgroup (path below the cgroup v2 root) under which `tollgate run` creates its cgroups.
    /// Must lie under `attach_cgroup`.
    pub run_cgroup: String,
    /// bpffs directory where links and maps are pinned in `fail_mode = "closed"`.
    pub pin_dir: PathBuf,
    /// What enrolled tasks get while no agent runs.
    pub fail_mode: FailMode,
    /// What happens when the audit store cannot record a new connection.
    pub audit_failure: AuditFailure,
    /// Bound of the audit queue (records waiting to be written).
    pub audit_queue: usize,
    /// How long a statement or request waits for room in the audit queue, and a new connection
    /// for a slot in a full queue, before it is refused, e.g. "2s": a writer that falls behind
    /// slows sessions down first.
    #[serde(with = "humantime_serde_compat")]
    pub audit_wait: Duration,
    /// Unix group (name) allowed on the admin socket besides root.
    pub admin_group: Option<String>,
    /// SPIFFE trust domain every workload's SPIFFE ID must belong to; any if unset.
    pub trust_domain: Option<String>,
    /// Upstream connect timeout, e.g. "5s".
    #[serde(with = "humantime_serde_compat")]
    pub connect_timeout: Duration,
    /// Idle timeout of a proxied connection (no byte either way), e.g. "1h".
    #[serde(with = "humantime_serde_compat")]
    pub idle_timeout: Duration,
    /// How long SIGTERM waits for open connections to finish, e.g. "10s".
    #[serde(with = "humantime_serde_compat")]
    pub drain_timeout: Duration,
    /// How often DNS names of targets are resolved again, e.g. "30s".
    #[serde(with = "humantime_serde_compat")]
    pub dns_refresh: Duration,
    /// Maximum concurrent proxied connections; beyond it new ones are refused and audited.
    pub max_connections: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Async worker threads of the agent; unset: half the CPUs, at least one, so that the
    /// agent leaves most of a small host to the workloads it serves (measured: on 2 CPUs one
    /// worker costs less CPU per proxied PostgreSQL transaction than two). One worker runs a
    /// current-thread runtime on the agent's main thread.
    pub worker_threads: Option<std::num::NonZeroUsize>,
}

impl Config {
    /// Worker threads to start.
    pub fn workers(&self) -> usize {
        self.worker_threads.map(usize::from).unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            policy_dir: DEFAULT_POLICY_DIR.into(),
            state_dir: DEFAULT_STATE_DIR.into(),
            listen_port: 915,
            listen_v4: Ipv4Addr::LOCALHOST,
            listen_v6: Ipv6Addr::LOCALHOST,
            cgroup_root: None,
            attach_cgroup: "/".into(),
            run_cgroup: "/tollgate.slice".into(),
            pin_dir: "/sys/fs/bpf/tollgate".into(),
            fail_mode: FailMode::Closed,
            audit_failure: AuditFailure::Closed,
            audit_queue: 8192,
            audit_wait: Duration::from_secs(2),
            admin_group: None,
            trust_domain: None,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(3600),
            drain_timeout: Duration::from_secs(10),
            dns_refresh: Duration::from_secs(30),
            max_connections: 16_384,
            log_format: LogFormat::Text,
            worker_threads: None,
        }
    }
}

impl Config {
    /// Reads `path`. A missing file gives the defaults only when `must_exist` is false.
    pub fn load(path: &Path, must_exist: bool) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(Self::default());
            }
            Err(e) => return Err(ConfigError::Read(path.to_owned(), e)),
        };
        Self::parse(path, &text)
    }

    /// Parses config text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                reason: e.message().to_owned(),
            }
        })
    }

    /// Path of the admin socket.
    pub fn admin_socket(&self) -> PathBuf {
        self.state_dir.join("admin.sock")
    }

    /// Path of the embedded audit database.
    pub fn audit_db(&self) -> PathBuf {
        self.state_dir.join("audit.db")
    }
}

/// `listen_v4`: the address the eBPF programs redirect to, and no other.
fn redirect_v4<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Ipv4Addr, D::Error> {
    let a = Ipv4Addr::deserialize(d)?;
    if a != Ipv4Addr::LOCALHOST {
        return Err(serde::de::Error::custom(format!(
            "listen_v4 = {a}: must be 127.0.0.1, where the eBPF programs redirect connections"
        )));
    }
    Ok(a)
}

/// `listen_v6`: the address the eBPF programs redirect to, and no other.
fn redirect_v6<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Ipv6Addr, D::Error> {
    let a = Ipv6Addr::deserialize(d)?;
    if a != Ipv6Addr::LOCALHOST {
        return Err(serde::de::Error::custom(format!(
            "listen_v6 = {a}: must be ::1, where the eBPF programs redirect connections"
        )));
    }
    Ok(a)
}

/// 1-based line and column of byte offset `at` in `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(at, |nl| at - nl - 1) + 1;
    (line, column)
}

/// `Duration` as a humantime string ("5s", "1h 30m") in TOML.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_missing() {
        let c = Config::load(Path::new("/nonexistent/tollgate.toml"), false).unwrap();
        assert_eq!(c.listen_port, 915);
        assert!(Config::load(Path::new("/nonexistent/tollgate.toml"), true).is_err());
    }

    #[test]
    fn unknown_key_is_an_error_with_line() {
        let err = Config::parse(Path::new("t.toml"), "listen_port = 1\nbogus = 2\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("t.toml:2:"), "{msg}");
        assert!(msg.contains("bogus"), "{msg}");
    }

    /// No workers at all is refused at load, with its line (tokio would panic at start).
    #[test]
    fn a_listen_address_the_programs_do_not_redirect_to_is_an_error_with_line() {
        let err = Config::parse(
            Path::new("t.toml"),
            "listen_port = 1\nlisten_v4 = \"127.0.0.2\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("t.toml:2:") && err.contains("127.0.0.1"),
            "{err}"
        );
        let err = Config::parse(Path::new("t.toml"), "listen_v6 = \"::2\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t.toml:1:") && err.contains("::1"), "{err}");
        let ok = Config::parse(
            Path::new("t.toml"),
            "listen_v4 = \"127.0.0.1\"\nlisten_v6 = \"::1\"\n",
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn zero_worker_threads_is_an_error_with_line() {
        let err = Config::parse(Path::new("t.toml"), "listen_port = 1\nworker_threads = 0\n")
            .unwrap_err();
        assert!(err.to_string().starts_with("t.toml:2:"), "{err}");
        let c = Config::parse(Path::new("t.toml"), "worker_threads = 3\n").unwrap();
        assert_eq!(c.workers(), 3);
    }

    #[test]
    fn durations_parse() {
        let c = Config::parse(Path::new("t"), "connect_timeout = \"250ms\"\n").unwrap();
        assert_eq!(c.connect_timeout, Duration::from_millis(250));
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 0), (1, 1));
    }
}
