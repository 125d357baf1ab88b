//! The servers of `cargo xtask bench http`, from Debian, on loopback with their own
//! configuration in the work directory: the origin nginx (a small static file), an nginx
//! reverse proxy (upstream keep-alive) and HAProxy (`mode http`), each with a counter that
//! proves a run went through it (nginx `stub_status` requests, HAProxy's frontend `req_tot`).
//! Also the CPU time of a process and its children (nginx's workers).
use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};

use super::proc::{self, Daemon, Ids, SIGTERM, command_as};

/// The nginx binary.
pub const NGINX: &str = "/usr/sbin/nginx";
/// The HAProxy binary.
pub const HAPROXY: &str = "/usr/sbin/haproxy";
/// The static file every path fetches.
pub const FILE: &str = "/small.txt";
/// Its size in bytes.
pub const FILE_BYTES: usize = 1024;
/// HAProxy's frontend name.
const FRONTEND: &str = "http_in";
/// Everything runs as root (the work directory is root's).
const ROOT: Ids = Ids { uid: 0, gid: 0 };

/// Prefix of the work directory (then the bench's pid).
const DIR_PREFIX: &str = "tollgate-bench-http-";

/// The bench's scratch directory `/tmp/tollgate-bench-http-<pid>` (root's, mode 0755: nginx's
/// workers read the files); removed on drop, after everything declared later has been dropped.
pub struct Workdir {
    /// Its path.
    pub path: PathBuf,
}

impl Workdir {
    /// Removes the directories of dead earlier runs and creates this run's.
    pub fn create() -> anyhow::Result<Workdir> {
        let tmp = std::env::temp_dir();
        for e in std::fs::read_dir(&tmp)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let dead = name
                .strip_prefix(DIR_PREFIX)
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if dead {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let path = tmp.join(format!("{DIR_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        proc::set_mode(&path, 0o755)?;
        Ok(Workdir { path })
    }

    /// `<dir>/<name>`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates the directory `<dir>/<name>` (mode 0755).
    pub fn subdir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        proc::set_mode(&dir, 0o755)?;
        Ok(dir)
    }

    /// Writes `<dir>/<name>` with `mode`.
    pub fn file(&self, name: &str, text: &str, mode: u32) -> anyhow::Result<PathBuf> {
        let path = self.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        proc::set_mode(&path, mode)?;
        Ok(path)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A running nginx (origin or reverse proxy).
pub struct Nginx {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its `stub_status` port on 127.0.0.1.
    pub status_port: u16,
    daemon: Daemon,
}

impl Nginx {
    /// The origin: serves [`FILE`] on `port`.
    pub fn origin(work: &Workdir, port: u16, status_port: u16) -> anyhow::Result<Nginx> {
        let www = work.subdir("www")?;
        std::fs::write(www.join(FILE.trim_start_matches('/')), small_file())?;
        let body = format!("root {};\n", www.display());
        Nginx::start(work, "origin", port, status_port, "", &body)
    }

    /// The reverse proxy: `port` → the origin on `origin_port`, upstream keep-alive.
    pub fn proxy(
        work: &Workdir,
        port: u16,
        status_port: u16,
        origin_port: u16,
    ) -> anyhow::Result<Nginx> {
        let body = "location / {\n            proxy_pass http://origin;\n            \
                    proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n        }\n";
        let upstream = format!(
            "upstream origin {{\n        server 127.0.0.1:{origin_port};\n        keepalive 64;\n    }}\n"
        );
        Nginx::start(work, "proxy", port, status_port, &upstream, body)
    }

    /// Starts nginx `name` with `http_extra` in its `http` block and `server_body` in the
    /// server block of `port`.
    fn start(
        work: &Workdir,
        name: &'static str,
        port: u16,
        status_port: u16,
        http_extra: &str,
        server_body: &str,
    ) -> anyhow::Result<Nginx> {
        let dir = work.subdir(&format!("nginx-{name}"))?;
        for sub in ["tmp", "logs"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let conf = work.file(
            &format!("nginx-{name}/nginx.conf"),
            &nginx_conf(&dir, port, status_port, http_extra, server_body),
            0o644,
        )?;
        let mut cmd = command_as(NGINX, ROOT, &dir);
        cmd.arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("logs/error.log"))
            .arg("-c")
            .arg(&conf);
        let label = if name == "origin" {
            "nginx origin"
        } else {
            "nginx proxy"
        };
        let mut daemon = Daemon::spawn(label, cmd, &dir.join("logs/stderr.log"), SIGTERM)?;
        daemon.wait_ready(|| listening(port) && listening(status_port))?;
        Ok(Nginx {
            port,
            status_port,
            daemon,
        })
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Requests it has handled (`stub_status`; the status request itself counts).
    pub fn requests(&mut self) -> anyhow::Result<u64> {
        self.daemon.check_alive()?;
        let text = http_get(self.status_port, "/status")?;
        stub_requests(&text).with_context(|| format!("unexpected stub_status:\n{text}"))
    }
}

/// A 1 KiB text file.
fn small_file() -> String {
    let line = "tollgate bench: a small static file served by nginx.\n";
    line.repeat(FILE_BYTES / line.len() + 1)[..FILE_BYTES].to_owned()
}

/// nginx's configuration: master and one worker per CPU, no access log (the counters prove
/// the paths), `stub_status` on its own port.
fn nginx_conf(
    dir: &Path,
    port: u16,
    status_port: u16,
    http_extra: &str,
    server_body: &str,
) -> String {
    let d = dir.display();
    format!(
        "# cargo xtask bench http\n\
         daemon off;\nmaster_process on;\nworker_processes auto;\nuser root root;\n\
         pid {d}/nginx.pid;\nerror_log {d}/logs/error.log warn;\n\
         events {{\n    worker_connections 4096;\n}}\n\
         http {{\n    access_log off;\n    sendfile on;\n    tcp_nopush on;\n\
         \x20   keepalive_timeout 65;\n    keepalive_requests 1000000;\n\
         \x20   types {{ text/plain txt; }}\n\
         \x20   client_body_temp_path {d}/tmp/body;\n    proxy_temp_path {d}/tmp/proxy;\n\
         \x20   fastcgi_temp_path {d}/tmp/fastcgi;\n    uwsgi_temp_path {d}/tmp/uwsgi;\n\
         \x20   scgi_temp_path {d}/tmp/scgi;\n\
         \x20   {http_extra}\
         \x20   server {{\n        listen 127.0.0.1:{port} backlog=4096;\n        {server_body}    }}\n\
         \x20   server {{\n        listen 127.0.0.1:{status_port};\n\
         \x20       location = /status {{ stub_status; }}\n    }}\n}}\n"
    )
}

/// The `requests` figure of `stub_status` output.
fn stub_requests(text: &str) -> Option<u64> {
    let mut lines = text.lines();
    lines.find(|l| {
        l.trim_start()
            .starts_with("server accepts handled requests")
    })?;
    lines.next()?.split_whitespace().nth(2)?.parse().ok()
}

/// A running HAProxy.
pub struct Haproxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    socket: PathBuf,
    daemon: Daemon,
}

impl Haproxy {
    /// Writes its configuration and starts it in the foreground (`-db`).
    pub fn start(work: &Workdir, port: u16, origin_port: u16) -> anyhow::Result<Haproxy> {
        let socket = work.join("haproxy.sock");
        let cfg = work.file(
            "haproxy.cfg",
            &haproxy_cfg(port, origin_port, &socket.display().to_string()),
            0o600,
        )?;
        let mut cmd = command_as(HAPROXY, ROOT, &work.path);
        cmd.arg("-db").arg("-f").arg(&cfg);
        let mut daemon = Daemon::spawn("haproxy", cmd, &work.join("haproxy.log"), SIGTERM)?;
        daemon.wait_ready(|| listening(port) && socket.exists())?;
        Ok(Haproxy {
            port,
            socket,
            daemon,
        })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// HTTP requests its frontend has received (`req_tot` of `show stat`).
    pub fn requests(&mut self) -> anyhow::Result<u64> {
        self.daemon.check_alive()?;
        let mut conn = UnixStream::connect(&self.socket)
            .with_context(|| format!("connecting {}", self.socket.display()))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        conn.write_all(b"show stat\n")?;
        let mut text = String::new();
        conn.read_to_string(&mut text)
            .context("reading HAProxy's show stat")?;
        frontend_column(&text, FRONTEND, "req_tot")
            .with_context(|| format!("no {FRONTEND} FRONTEND req_tot in show stat:\n{text}"))
    }
}

/// HAProxy's configuration: `mode http`, keep-alive on both sides, one server.
fn haproxy_cfg(port: u16, origin_port: u16, socket: &str) -> String {
    format!(
        "# cargo xtask bench http\n\
         global\n    maxconn 4096\n    stats socket {socket} mode 600 level admin\n\n\
         defaults\n    mode http\n    option http-keep-alive\n    timeout connect 5s\n\
         \x20   timeout client 1m\n    timeout server 1m\n    timeout http-keep-alive 1m\n\n\
         frontend {FRONTEND}\n    bind 127.0.0.1:{port}\n    default_backend origin\n\n\
         backend origin\n    http-reuse always\n    server o1 127.0.0.1:{origin_port}\n"
    )
}

/// Column `name` of the FRONTEND row of `proxy` in `show stat` CSV.
fn frontend_column(text: &str, proxy: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()?
        .trim_start_matches('#')
        .trim()
        .split(',')
        .collect();
    let col = header.iter().position(|h| *h == name)?;
    lines.find_map(|l| {
        let f: Vec<&str> = l.split(',').collect();
        (f.first() == Some(&proxy) && f.get(1) == Some(&"FRONTEND"))
            .then(|| f.get(col)?.parse().ok())
            .flatten()
    })
}

/// A `GET path` on 127.0.0.1:`port` with HTTP/1.0; the body.
pub fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting 127.0.0.1:{port}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("no HTTP response from 127.0.0.1:{port}: {text:?}");
    };
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("GET {path} on 127.0.0.1:{port}: {head}");
    }
    Ok(body.to_owned())
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// CPU time of `pid` and its direct children (nginx's workers).
pub fn tree_cpu(pid: u32) -> anyhow::Result<proc::Cpu> {
    let mut total = proc::cpu(pid)?;
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let parent = std::fs::read_to_string(format!("/proc/{child}/stat"))
            .ok()
            .and_then(|s| ppid(&s));
        if parent == Some(pid) {
            // A worker that exited meanwhile no longer costs anything.
            total = total + proc::cpu(child).unwrap_or_default();
        }
    }
    Ok(total)
}

/// The parent pid (field 4) of a `/proc/<pid>/stat` line.
fn ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stub_status_cases() {
        let text = "Active connections: 3 \nserver accepts handled requests\n 10 10 4242 \n\
                    Reading: 0 Writing: 1 Waiting: 2 \n";
        assert_eq!(stub_requests(text), Some(4242));
        assert_eq!(stub_requests("Active connections: 3\n"), None);
        assert_eq!(
            stub_requests("server accepts handled requests\n 1 2\n"),
            None
        );
    }

    #[test]
    fn haproxy_stat_cases() {
        let text = "# pxname,svname,qcur,stot,req_tot\n\
                    http_in,FRONTEND,,17,900\norigin,o1,0,9,\norigin,BACKEND,0,9,\n";
        assert_eq!(frontend_column(text, "http_in", "req_tot"), Some(900));
        assert_eq!(frontend_column(text, "http_in", "stot"), Some(17));
        assert_eq!(frontend_column(text, "origin", "req_tot"), None);
        assert_eq!(frontend_column("", "http_in", "req_tot"), None);
    }

    #[test]
    fn configurations_name_the_ports() {
        let conf = nginx_conf(
            Path::new("/w"),
            8080,
            8081,
            "upstream u {}\n",
            "root /w/www;\n",
        );
        for want in [
            "listen 127.0.0.1:8080",
            "listen 127.0.0.1:8081",
            "stub_status",
            "root /w/www;",
            "upstream u {}",
            "access_log off",
        ] {
            assert!(conf.contains(want), "{want} in {conf}");
        }
        let cfg = haproxy_cfg(7000, 8080, "/w/h.sock");
        for want in [
            "mode http",
            "bind 127.0.0.1:7000",
            "server o1 127.0.0.1:8080",
        ] {
            assert!(cfg.contains(want), "{want} in {cfg}");
        }
        assert_eq!(small_file().len(), FILE_BYTES);
    }

    #[test]
    fn ppid_cases() {
        assert_eq!(ppid("12 (nginx: worker (x)) S 7 12 12"), Some(7));
        assert_eq!(ppid("garbage"), None);
    }
}
