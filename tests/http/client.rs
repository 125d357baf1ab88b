//! Real, unmodified clients started in the enrolled cgroup: `curl` (C, libcurl with OpenSSL and
//! nghttp2), the system Python's `urllib` and a raw-socket WebSocket client (standard library
//! only), and `openssl s_client`.
use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::harness::cgroup::in_cgroup;

/// The system Python (not a shim on PATH).
pub const PYTHON: &str = "/usr/bin/python3";
/// What curl writes after the body (`-w`): status, HTTP version, local port.
const MARK: &str = "\n@@tollgate@@";

/// A curl command line under construction.
#[derive(Debug, Clone)]
pub struct Curl {
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
}

/// What one curl run showed.
#[derive(Debug, Clone)]
pub struct CurlOut {
    /// Exit code (0: a response was received, whatever its status).
    pub code: i32,
    /// Process id of curl (its session in the audit).
    pub pid: u32,
    /// HTTP status of the last response (0: none).
    pub status: u16,
    /// `%{http_version}`: `1.1`, `2`.
    pub version: String,
    /// curl's own source port.
    pub local_port: u16,
    /// Response headers of the last response (names lowercase).
    pub headers: Vec<(String, String)>,
    /// Response body (lossy UTF-8; empty with `-o`).
    pub body: String,
    /// Standard error.
    pub stderr: String,
}

impl CurlOut {
    /// The first value of response header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Curl {
    /// `curl URL` with quiet errors, no proxy, a time limit, headers dumped to stdout.
    pub fn new(url: &str) -> Curl {
        let args = [
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            "20",
            "-D",
            "-",
            "-w",
            &format!("{MARK}%{{http_code}} %{{http_version}} %{{local_port}}"),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(std::iter::once(url.to_owned()))
        .collect();
        Curl { args, stdin: None }
    }

    /// More arguments.
    pub fn args(mut self, args: &[&str]) -> Curl {
        self.args.extend(args.iter().map(|s| (*s).to_owned()));
        self
    }

    /// Bytes for curl's standard input (`-T -` uploads them chunked).
    pub fn stdin(mut self, data: Vec<u8>) -> Curl {
        self.stdin = Some(data);
        self
    }

    /// Runs curl in the cgroup directory `cgroup`.
    pub fn run(self, cgroup: &Path) -> CurlOut {
        self.run_in(Some(cgroup))
    }

    /// Runs curl in the test's own cgroup, outside every workload: straight to the server.
    pub fn run_direct(self) -> CurlOut {
        self.run_in(None)
    }

    fn run_in(self, cgroup: Option<&Path>) -> CurlOut {
        let mut cmd = Command::new("curl");
        cmd.args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = cgroup {
            in_cgroup(&mut cmd, dir);
        }
        let mut child = cmd.spawn().expect("spawn curl");
        let pid = child.id();
        let writer = self.stdin.map(|data| {
            let mut stdin = child.stdin.take().expect("curl stdin");
            std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            })
        });
        let out = child.wait_with_output().expect("wait curl");
        if let Some(w) = writer {
            let _ = w.join();
        }
        parse(
            out.status.code().unwrap_or(-1),
            pid,
            &out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Splits curl's stdout: header blocks (`-D -`; interim ones like `100 Continue` skipped), body,
/// then the `-w` line.
fn parse(code: i32, pid: u32, stdout: &[u8], stderr: String) -> CurlOut {
    let text = String::from_utf8_lossy(stdout).into_owned();
    let (mut rest, write_out) = match text.rfind(MARK) {
        Some(at) => (&text[..at], &text[at + MARK.len()..]),
        None => (text.as_str(), ""),
    };
    let mut headers = Vec::new();
    while rest.starts_with("HTTP/") {
        let Some(end) = rest.find("\r\n\r\n") else {
            break;
        };
        headers = rest[..end]
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        rest = &rest[end + 4..];
    }
    let mut w = write_out.split_whitespace();
    CurlOut {
        code,
        pid,
        status: w.next().and_then(|s| s.parse().ok()).unwrap_or(0),
        version: w.next().unwrap_or("").to_owned(),
        local_port: w.next().and_then(|s| s.parse().ok()).unwrap_or(0),
        headers,
        body: rest.to_owned(),
        stderr,
    }
}

/// A GET (or a request with a body) with `urllib.request`, verifying TLS against a CA file when
/// given; gzip is asked for when `gzip` and decoded by hand. Prints one JSON object.
const PY_URLLIB: &str = r#"
import gzip, json, os, ssl, sys, urllib.error, urllib.request
url, cafile, headers, gz = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] == "1"
out = {"pid": os.getpid()}
ctx = ssl.create_default_context(cafile=cafile) if cafile else None
if gz:
    headers["Accept-Encoding"] = "gzip"
req = urllib.request.Request(url, headers=headers)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
try:
    try:
        resp = opener.open(req, timeout=20)
    except urllib.error.HTTPError as e:
        resp = e
    body = resp.read()
    out["status"] = resp.status
    out["headers"] = {k.lower(): v for k, v in resp.headers.items()}
    out["raw_bytes"] = len(body)
    if resp.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    out["body"] = body.decode(errors="replace")
except Exception as e:
    out["error"] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
"#;

/// What the Python client saw.
#[derive(Debug, Clone)]
pub struct PyOut {
    /// Its pid.
    pub pid: u32,
    /// The whole JSON it printed.
    pub v: Value,
}

impl PyOut {
    /// HTTP status (0: none).
    pub fn status(&self) -> u64 {
        self.v["status"].as_u64().unwrap_or(0)
    }

    /// The (decoded) body.
    pub fn body(&self) -> &str {
        self.v["body"].as_str().unwrap_or("")
    }

    /// A response header (lowercase name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.v["headers"][name].as_str()
    }
}

/// Runs the urllib client in `cgroup`.
pub fn urllib(
    cgroup: &Path,
    url: &str,
    cafile: Option<&Path>,
    headers: &[(&str, &str)],
    gzip: bool,
) -> PyOut {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    let cafile = cafile.map(|p| p.display().to_string()).unwrap_or_default();
    python(
        cgroup,
        PY_URLLIB,
        &[
            url,
            &cafile,
            &Value::Object(headers).to_string(),
            if gzip { "1" } else { "0" },
        ],
    )
}

/// A WebSocket client on a raw socket: handshake (checking `Sec-WebSocket-Accept`), one masked
/// text message, one masked 70 000-byte binary message (64-bit length), each echo compared,
/// then a close. Prints one JSON object.
const PY_WEBSOCKET: &str = r#"
import base64, hashlib, json, os, socket, struct, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = {"pid": os.getpid()}
def frame(opcode, payload):
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n <= 0xffff:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
def exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data
def read_frame(s):
    b0, b1 = exact(s, 2)
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack(">H", exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", exact(s, 8))[0]
    if b1 & 0x80:
        raise ValueError("server frame is masked")
    return b0 & 0x0f, exact(s, n)
try:
    s = socket.create_connection((host, port), timeout=20)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            raise EOFError("closed during the handshake: %r" % head)
        head += chunk
    lines = head.decode().split("\r\n")
    out["status_line"] = lines[0]
    hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    out["accept_ok"] = hdrs.get("sec-websocket-accept") == want
    echoes = []
    for opcode, payload in [(1, "hello through tollgate".encode()), (2, os.urandom(70000))]:
        s.sendall(frame(opcode, payload))
        op, data = read_frame(s)
        echoes.append({"opcode": op, "bytes": len(data), "same": op == opcode and data == payload})
    out["echoes"] = echoes
    s.sendall(frame(8, struct.pack(">H", 1000)))
    op, data = read_frame(s)
    out["close"] = op
except Exception as e:
    out["error"] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
"#;

/// Runs the WebSocket client against `host:port` `path` in `cgroup`.
pub fn websocket(cgroup: &Path, host: &str, port: u16, path: &str) -> PyOut {
    python(cgroup, PY_WEBSOCKET, &[host, &port.to_string(), path])
}

/// Connects to `127.0.0.1:port`, waits until the file `go` exists, then sends a GET for each
/// path on that one connection. Prints the statuses.
const PY_AFTER_GO: &str = r#"
import http.client, json, os, sys, time
port, go, paths = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
out = {"pid": os.getpid()}
try:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.connect()
    while not os.path.exists(go):
        time.sleep(0.02)
    statuses = []
    for path in paths:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        statuses.append(r.status)
    out["statuses"] = statuses
except Exception as e:
    out["error"] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
"#;

/// Runs in `cgroup` a client that connects to `127.0.0.1:port` at once, and sends a GET for
/// each of `paths` on that connection once the file `go` exists.
pub fn requests_after(cgroup: &Path, port: u16, go: &Path, paths: &[&str]) -> PyOut {
    let (port, go) = (port.to_string(), go.display().to_string());
    let mut args = vec![port.as_str(), go.as_str()];
    args.extend_from_slice(paths);
    python(cgroup, PY_AFTER_GO, &args)
}

/// Sends the head of a form POST to `127.0.0.1:port` with the start of a body that holds
/// `_method` further on, prints the response's status, then holds the connection open with
/// the body unfinished until stdin closes.
const PY_STALLED_FORM: &str = r#"
import json, os, socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=30)
body = b"name=" + b"x" * 1000
s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: backend\r\n"
          b"Content-Type: application/x-www-form-urlencoded\r\n"
          b"Content-Length: 100000\r\n\r\n" + body)
head = b""
while b"\r\n" not in head:
    chunk = s.recv(4096)
    if not chunk:
        break
    head += chunk
status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else 0
print(json.dumps({"pid": os.getpid(), "status": status}), flush=True)
sys.stdin.read()
"#;

/// Starts, in `cgroup`, a client that sends a form POST to `path` and stalls before the end of
/// its body (see `PY_STALLED_FORM`); it prints `{"pid", "status"}` once answered and holds
/// the connection until its stdin closes.
pub fn stalled_form(cgroup: &Path, port: u16, path: &str) -> std::process::Child {
    let mut cmd = Command::new(PYTHON);
    cmd.arg("-c")
        .arg(PY_STALLED_FORM)
        .arg(port.to_string())
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    in_cgroup(&mut cmd, cgroup);
    cmd.spawn().expect("run python3")
}

fn python(cgroup: &Path, script: &str, args: &[&str]) -> PyOut {
    let mut cmd = Command::new(PYTHON);
    cmd.arg("-c")
        .arg(script)
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .stdin(Stdio::null());
    in_cgroup(&mut cmd, cgroup);
    let out = cmd.output().expect("run python3");
    let raw = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let v: Value = serde_json::from_str(&raw).unwrap_or_else(|e| {
        panic!(
            "python printed no JSON ({e}): {raw} / {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let pid = v["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .expect("pid");
    PyOut { pid, v }
}

/// What `openssl s_client` printed (the handshake, the chain, the verification result).
#[derive(Debug, Clone)]
pub struct SClient {
    /// Exit code.
    pub code: i32,
    /// Standard output and error together.
    pub text: String,
}

/// `openssl s_client -connect 127.0.0.1:port -servername NAME -CAfile CA -verify_return_error`
/// in `cgroup`, closing right after the handshake.
pub fn s_client(cgroup: &Path, port: u16, servername: &str, ca: &PathBuf) -> SClient {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", servername, "-CAfile"])
        .arg(ca)
        .args(["-verify_return_error", "-alpn", "http/1.1"])
        .stdin(Stdio::null());
    in_cgroup(&mut cmd, cgroup);
    let out = cmd.output().expect("run openssl s_client");
    SClient {
        code: out.status.code().unwrap_or(-1),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_skips_interim_responses() {
        let out = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: b\r\n\r\nbody\n\n@@tollgate@@200 1.1 4242";
        let c = parse(0, 7, out, String::new());
        assert_eq!(
            (c.status, c.version.as_str(), c.local_port),
            (200, "1.1", 4242)
        );
        assert_eq!(c.body, "body\n");
        assert_eq!(c.header("content-type"), Some("text/plain"));
        assert_eq!(c.header("x-a"), Some("b"));
        let c = parse(7, 7, b"\n@@tollgate@@000 0 0", String::new());
        assert_eq!((c.status, c.body.as_str()), (0, ""));
    }
}
