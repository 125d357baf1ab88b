//! A real nginx (Debian's `/usr/sbin/nginx`) per test, on loopback ports of its own, started in
//! the foreground (`daemon off`, one process) with a config in a temp dir: plain HTTP, TLS with
//! the test CA's certificate (one port with HTTP/2), static files (text, JSON with card
//! numbers, a gzip-compressed location), an echo of the credential headers it received, and an
//! access log that shows what reached it (client port, request, protocol, TLS, gzip ratio).
//! Dropping it stops nginx and removes everything.
use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};

use super::certs::{Certs, SERVER_NAME};
use crate::harness::agent::free_port;

/// The nginx binary.
pub const NGINX: &str = "/usr/sbin/nginx";
/// How long nginx may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Nginx::wait_requests`] waits for an access log line.
const LOG_TIMEOUT: Duration = Duration::from_secs(5);

/// Card numbers (Luhn-valid test numbers) in `/cards.json` and `/gz/cards.json`.
pub const CARDS: [&str; 2] = ["4111111111111111", "5500000000000004"];
/// Body of `/hello.txt`.
pub const HELLO: &str = "hello from nginx\n";

/// nginx's ports on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Plain HTTP/1.1.
    pub plain: u16,
    /// TLS with HTTP/2 and HTTP/1.1 (ALPN): the terminate target.
    pub tls_h2: u16,
    /// TLS, HTTP/1.1 only: the originate target.
    pub tls: u16,
    /// TLS, HTTP/1.1 only: the target whose `ca_file` is the wrong CA.
    pub tls_bad: u16,
}

/// A running nginx.
pub struct Nginx {
    /// Its ports.
    pub ports: Ports,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Nginx {
    /// Writes the config and the files, starts nginx and waits until every port accepts.
    pub fn start(certs: &Certs) -> Nginx {
        let dir = tempfile::Builder::new()
            .prefix("tollgate-http-nginx-")
            .tempdir()
            .expect("temp dir");
        let ports = Ports {
            plain: free_port(),
            tls_h2: free_port(),
            tls: free_port(),
            tls_bad: free_port(),
        };
        write_site(&dir.path().join("www"));
        for sub in ["tmp", "logs"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("nginx dir");
        }
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), ports, certs)).expect("write nginx.conf");
        let mut cmd = Command::new(NGINX);
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("logs/error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; nginx dies with the test process.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn nginx");
        let mut nginx = Nginx {
            ports,
            dir,
            child: Some(child),
        };
        nginx.wait_ready();
        nginx
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let ports = self.ports;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let out = self.child.take().and_then(|c| c.wait_with_output().ok());
                panic!(
                    "nginx exited ({status}): {}\n{}",
                    out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                        .unwrap_or_default(),
                    self.error_log()
                );
            }
            let up = [ports.plain, ports.tls_h2, ports.tls, ports.tls_bad]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx not ready after {READY_TIMEOUT:?}:\n{}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its access log (one line per request it answered; format in [`config`]).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default()
    }

    /// The access log lines holding `needle`, once there are at least `n` of them. nginx
    /// writes a line in its log phase, after the response went out, so a client can finish
    /// before its line exists: wait for it (up to [`LOG_TIMEOUT`]), then return what is there.
    pub fn wait_requests(&self, needle: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + LOG_TIMEOUT;
        loop {
            let lines = self.requests_with(needle);
            if lines.len() >= n || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The access log lines whose request line holds `needle`, as of now.
    pub fn requests_with(&self, needle: &str) -> Vec<String> {
        self.access_log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// Its error log.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }

    /// The directory of its files.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("www")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if std::thread::panicking() {
                let log = self.access_log();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!(
                    "---- nginx access log (last lines, newest first):\n{}\n---- nginx error log:\n{}",
                    tail.join("\n"),
                    self.error_log()
                );
            }
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
            // SIGQUIT: graceful shutdown; SIGKILL after 5 s.
            let _ = nix::sys::signal::kill(pid, Signal::SIGQUIT);
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The JSON of `/cards.json`: card numbers under `card_number` keys and in free text.
pub fn cards_json(copies: usize) -> String {
    let customers: Vec<String> = (0..copies)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"name\":\"customer {i}\",\"card_number\":\"{}\",\
                 \"note\":\"paid with {}\"}}",
                CARDS[0], CARDS[1]
            )
        })
        .collect();
    format!("{{\"customers\":[{}]}}\n", customers.join(","))
}

fn write_site(www: &Path) {
    for sub in ["gz", "admin"] {
        std::fs::create_dir_all(www.join(sub)).expect("www dir");
    }
    let files = [
        ("hello.txt", HELLO.to_owned()),
        ("cards.json", cards_json(1)),
        // Large enough that gzip matters (nginx compresses it about 40 times).
        ("gz/cards.json", cards_json(200)),
        ("admin/secret.txt", "nginx admin page\n".to_owned()),
    ];
    for (name, text) in files {
        std::fs::write(www.join(name), text).expect("write site file");
    }
}

/// The config: one server on four ports; `/echo-auth` answers with the credential headers and
/// the query it received; `/gz/` is gzip-compressed for clients that accept it.
fn config(dir: &Path, p: Ports, certs: &Certs) -> String {
    let d = dir.display();
    format!(
        r#"# tollgate http suite: nginx on loopback
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    types {{ text/plain txt; application/json json; }}
    default_type application/octet-stream;
    log_format tg '$remote_addr:$remote_port "$request" $status proto=$server_protocol port=$server_port https=$https gzip=$gzip_ratio sent=$body_bytes_sent auth="$http_authorization"';
    access_log {d}/logs/access.log tg;
    keepalive_timeout 30;
    server {{
        listen 127.0.0.1:{plain};
        listen 127.0.0.1:{tls_h2} ssl http2;
        listen 127.0.0.1:{tls} ssl;
        listen 127.0.0.1:{tls_bad} ssl;
        server_name {SERVER_NAME} 127.0.0.1;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {d}/www;
        location = /echo-auth {{
            default_type text/plain;
            return 200 "authorization=[$http_authorization] x-api-key=[$http_x_api_key] query=[$args]\n";
        }}
        location /gz/ {{
            gzip on;
            gzip_types application/json;
            gzip_min_length 1;
            gzip_proxied any;
        }}
    }}
}}
"#,
        plain = p.plain,
        tls_h2 = p.tls_h2,
        tls = p.tls,
        tls_bad = p.tls_bad,
        cert = certs.cert.display(),
        key = certs.key.display(),
    )
}
