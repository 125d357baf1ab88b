//! Real, unmodified clients: `curl` and a Python raw-socket HTTP client, started in a chosen
//! cgroup (or in the test's own, outside every attach cgroup).
use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    process::{Command, Stdio},
};

use serde_json::Value;

use super::{cgroup::in_cgroup, server::parse_peer};

/// What one `curl` run showed.
#[derive(Debug, Clone)]
pub struct CurlResult {
    /// Exit code (0 success; 7 refused; 52 empty reply; 56 reset).
    pub code: i32,
    /// Process id of curl.
    pub pid: u32,
    /// `%{remote_ip}:%{remote_port}`: the peer as the task saw it.
    pub remote: Option<SocketAddr>,
    /// `%{local_port}`.
    pub local_port: Option<u16>,
    /// The peer the server saw (from the body).
    pub seen_peer: Option<SocketAddr>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CurlResult {
    /// Reached the server and got its answer.
    pub fn ok(&self) -> bool {
        self.code == 0 && self.seen_peer.is_some()
    }

    /// Refused or reset right after connect, as the contract says (7, 52 or 56).
    pub fn refused(&self) -> bool {
        matches!(self.code, 7 | 52 | 56)
    }

    /// The server saw another source port than curl's own: a proxy hop was in between.
    pub fn via_proxy(&self) -> bool {
        self.ok() && self.seen_peer.map(|p| p.port()) != self.local_port
    }

    /// The server saw curl's own source port: no hop.
    pub fn direct(&self) -> bool {
        self.ok() && self.seen_peer.map(|p| p.port()) == self.local_port
    }
}

/// The curl arguments for `url` (before the URL itself).
pub const CURL_ARGS: &[&str] = &[
    "-sS",
    "-g",
    "--noproxy",
    "*",
    "--max-time",
    "10",
    "-w",
    "\n%{remote_ip} %{remote_port} %{local_port}\n",
];

/// Runs `curl url`, in the cgroup directory `cgroup` when given.
pub fn curl(cgroup: Option<&Path>, url: &str) -> CurlResult {
    let mut cmd = Command::new("curl");
    cmd.args(CURL_ARGS).arg(url).stdin(Stdio::null());
    run_curl(cmd, cgroup)
}

/// Runs a prepared curl command (e.g. under `tollgate run`) and parses what it printed.
pub fn run_curl(mut cmd: Command, cgroup: Option<&Path>) -> CurlResult {
    if let Some(dir) = cgroup {
        in_cgroup(&mut cmd, dir);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (remote, local_port) = parse_write_out(&stdout);
    CurlResult {
        code: out.status.code().unwrap_or(-1),
        pid,
        remote,
        local_port,
        seen_peer: parse_peer(&stdout),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `<remote_ip> <remote_port> <local_port>` on the last line of curl's output.
fn parse_write_out(stdout: &str) -> (Option<SocketAddr>, Option<u16>) {
    let Some(line) = stdout.lines().rev().find(|l| !l.trim().is_empty()) else {
        return (None, None);
    };
    let mut f = line.split_whitespace();
    let (ip, port, local) = (f.next(), f.next(), f.next());
    let remote = match (
        ip.and_then(|i| i.parse::<IpAddr>().ok()),
        port.and_then(|p| p.parse::<u16>().ok()),
    ) {
        (Some(ip), Some(port)) if port != 0 => Some(SocketAddr::new(ip.to_canonical(), port)),
        _ => None,
    };
    let local = local.and_then(|p| p.parse().ok()).filter(|p| *p != 0);
    (remote, local)
}

/// A raw-socket HTTP/1.0 client: connects, reports getpeername/getsockname, sends a request,
/// reads to EOF and prints one JSON object.
const PY_CLIENT: &str = r#"
import json, os, socket, sys
host, port, family = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = {"pid": os.getpid()}
s = socket.socket(socket.AF_INET6 if family == "6" else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(10)
if os.environ.get("TOLLGATE_TEST_MARK"):
    s.setsockopt(socket.SOL_SOCKET, 36, int(os.environ["TOLLGATE_TEST_MARK"]))  # SO_MARK
try:
    s.connect((host, port))
    out["peer"] = list(s.getpeername()[:2])
    out["local"] = list(s.getsockname()[:2])
    s.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    out["response"] = data.decode(errors="replace")
except OSError as e:
    out["error"] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
"#;

/// What the Python client saw.
#[derive(Debug, Clone)]
pub struct PyResult {
    /// `os.getpid()` of the client.
    pub pid: u32,
    /// `getpeername()`: the peer as the task saw it.
    pub peer: Option<SocketAddr>,
    /// `getsockname()`.
    pub local: Option<SocketAddr>,
    /// The whole response, when one was read.
    pub response: String,
    /// The exception, if any.
    pub error: Option<String>,
    /// The peer the server saw.
    pub seen_peer: Option<SocketAddr>,
    /// The raw JSON line, for messages.
    pub raw: String,
}

impl PyResult {
    /// Got the server's answer.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.response.starts_with("HTTP/1.1 200")
            && self.seen_peer.is_some()
    }

    /// Connection refused, reset or closed without any answer.
    pub fn refused(&self) -> bool {
        self.response.is_empty()
            && self.error.as_deref().is_none_or(|e| {
                e.starts_with("ConnectionRefusedError")
                    || e.starts_with("ConnectionResetError")
                    || e.starts_with("PermissionError")
                    || e.starts_with("BrokenPipeError")
            })
    }

    /// The server saw another source port than the client's own.
    pub fn via_proxy(&self) -> bool {
        self.ok() && self.seen_peer.map(|p| p.port()) != self.local.map(|l| l.port())
    }

    /// The server saw the client's own source port.
    pub fn direct(&self) -> bool {
        self.ok() && self.seen_peer.map(|p| p.port()) == self.local.map(|l| l.port())
    }
}

/// Runs the Python client against `host:port` with `family` 4 or 6, in `cgroup` when given.
pub fn python(
    python3: &Path,
    cgroup: Option<&Path>,
    host: &str,
    port: u16,
    family: u8,
) -> PyResult {
    python_via(&[], python3, cgroup, host, port, family)
}

/// Like [`python`], started through `wrapper` (e.g. `ip netns exec NAME`).
pub fn python_via(
    wrapper: &[&str],
    python3: &Path,
    cgroup: Option<&Path>,
    host: &str,
    port: u16,
    family: u8,
) -> PyResult {
    python_with(wrapper, python3, cgroup, (host, port, family), None)
}

/// Like [`python`], its socket marked `mark` (`SO_MARK`) before it connects.
pub fn python_marked(
    python3: &Path,
    cgroup: Option<&Path>,
    host: &str,
    port: u16,
    mark: u32,
) -> PyResult {
    python_with(&[], python3, cgroup, (host, port, 4), Some(mark))
}

fn python_with(
    wrapper: &[&str],
    python3: &Path,
    cgroup: Option<&Path>,
    (host, port, family): (&str, u16, u8),
    mark: Option<u32>,
) -> PyResult {
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(python3);
            cmd
        }
        None => Command::new(python3),
    };
    cmd.args([
        "-c",
        PY_CLIENT,
        host,
        &port.to_string(),
        &family.to_string(),
    ])
    .stdin(Stdio::null());
    if let Some(mark) = mark {
        cmd.env("TOLLGATE_TEST_MARK", mark.to_string());
    }
    if let Some(dir) = cgroup {
        in_cgroup(&mut cmd, dir);
    }
    let out = cmd.output().expect("run python3 client");
    let raw = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let v: Value = serde_json::from_str(&raw).unwrap_or_else(|e| {
        panic!(
            "python client printed no JSON ({e}): {raw} / {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let addr = |key: &str| -> Option<SocketAddr> {
        let ip: IpAddr = v[key][0].as_str()?.parse().ok()?;
        let port = u16::try_from(v[key][1].as_u64()?).ok()?;
        Some(SocketAddr::new(ip.to_canonical(), port))
    };
    let response = v["response"].as_str().unwrap_or("").to_owned();
    PyResult {
        pid: v["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .expect("pid"),
        peer: addr("peer"),
        local: addr("local"),
        seen_peer: parse_peer(&response),
        response,
        error: v["error"].as_str().map(str::to_owned),
        raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_out_cases() {
        let cases = [
            (
                "peer=1.2.3.4:5\n\n127.0.0.1 8080 40000\n",
                Some("127.0.0.1:8080"),
                Some(40000),
            ),
            ("\n::1 80 1234\n", Some("[::1]:80"), Some(1234)),
            ("\n 0 0\n", None, None),
            ("", None, None),
        ];
        for (text, remote, local) in cases {
            let want = remote.map(|r| r.parse().expect("addr"));
            assert_eq!(parse_write_out(text), (want, local), "{text:?}");
        }
    }
}
