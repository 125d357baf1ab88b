//! The comparison proxies of `cargo xtask bench postgres`, from Debian, started on loopback with
//! their own configuration in the work directory and run as `postgres`: pgbouncer (session
//! pooling, SCRAM with its own userlist) and HAProxy (tcp mode). Each reports a counter that
//! proves a round went through it: pgbouncer's `SHOW STATS` transactions, HAProxy's frontend
//! sessions (`show stat` on its admin socket).
use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    os::unix::net::UnixStream,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};

use super::{
    proc::{Daemon, Ids, SIGTERM, Workdir, command_as},
    server::{DATABASE, ROLE},
};

/// The pgbouncer binary.
pub const PGBOUNCER: &str = "/usr/sbin/pgbouncer";
/// The HAProxy binary.
pub const HAPROXY: &str = "/usr/sbin/haproxy";
/// HAProxy's frontend name.
const FRONTEND: &str = "pg_in";

/// A running pgbouncer.
pub struct Pgbouncer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    password: String,
    daemon: Daemon,
}

impl Pgbouncer {
    /// Writes its ini and userlist and starts it; returns once it accepts connections.
    pub fn start(
        work: &Workdir,
        ids: Ids,
        port: u16,
        pg_port: u16,
        password: &str,
    ) -> anyhow::Result<Pgbouncer> {
        let users = work.file(
            "pgbouncer-users.txt",
            &format!("\"{ROLE}\" \"{password}\"\n"),
            ids,
            0o600,
        )?;
        let ini = work.file(
            "pgbouncer.ini",
            &pgbouncer_ini(port, pg_port, &users.display().to_string()),
            ids,
            0o600,
        )?;
        let mut cmd = command_as(PGBOUNCER, ids, &work.path);
        cmd.arg(&ini);
        let mut daemon = Daemon::spawn("pgbouncer", cmd, &work.join("pgbouncer.log"), SIGTERM)?;
        daemon.wait_ready(|| listening(port))?;
        Ok(Pgbouncer {
            port,
            password: password.to_owned(),
            daemon,
        })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// `total_xact_count` of the bench database in `SHOW STATS` (admin console, as the bench
    /// role, a `stats_users` member).
    pub fn transactions(&mut self) -> anyhow::Result<u64> {
        self.daemon.check_alive()?;
        let out = Command::new("psql")
            .args(["-X", "-A", "-F", "|", "-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", ROLE, "-d", "pgbouncer", "-c", "SHOW STATS"])
            .env("PGPASSWORD", &self.password)
            .env("PGSSLMODE", "disable")
            .stdin(Stdio::null())
            .output()
            .context("psql SHOW STATS")?;
        if !out.status.success() {
            bail!(
                "pgbouncer SHOW STATS failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        stats_xacts(&text, DATABASE).with_context(|| format!("unexpected SHOW STATS:\n{text}"))
    }
}

/// pgbouncer's configuration: session pooling of the bench database, SCRAM for clients (and to
/// the server, with the userlist's plain password), no TLS, no per-connection log lines.
fn pgbouncer_ini(port: u16, pg_port: u16, userlist: &str) -> String {
    format!(
        "; cargo xtask bench postgres\n\
         [databases]\n{DATABASE} = host=127.0.0.1 port={pg_port} dbname={DATABASE}\n\n\
         [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
         auth_type = scram-sha-256\nauth_file = {userlist}\npool_mode = session\n\
         max_client_conn = 100\ndefault_pool_size = 20\nstats_users = {ROLE}\n\
         log_connections = 0\nlog_disconnections = 0\n\
         ignore_startup_parameters = extra_float_digits\n"
    )
}

/// `total_xact_count` of `database` in `psql -A -F '|'` output of `SHOW STATS`: 0 while it has
/// no row (pgbouncer adds it with the first pool), `None` when the output is not `SHOW STATS`.
fn stats_xacts(text: &str, database: &str) -> Option<u64> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split('|').collect();
    let db = header.iter().position(|h| *h == "database")?;
    let col = header.iter().position(|h| *h == "total_xact_count")?;
    for line in lines {
        let f: Vec<&str> = line.split('|').collect();
        if f.get(db) == Some(&database) {
            return f.get(col)?.parse().ok();
        }
    }
    Some(0)
}

/// A running HAProxy.
pub struct Haproxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    socket: PathBuf,
    daemon: Daemon,
}

impl Haproxy {
    /// Writes its configuration and starts it in the foreground (`-db`, one process);
    /// returns once it accepts connections.
    pub fn start(work: &Workdir, ids: Ids, port: u16, pg_port: u16) -> anyhow::Result<Haproxy> {
        let socket = work.join("haproxy.sock");
        let cfg = work.file(
            "haproxy.cfg",
            &haproxy_cfg(port, pg_port, &socket.display().to_string()),
            ids,
            0o600,
        )?;
        let mut cmd = command_as(HAPROXY, ids, &work.path);
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

    /// Sessions its frontend has accepted (`stot` of `show stat`).
    pub fn sessions(&mut self) -> anyhow::Result<u64> {
        self.daemon.check_alive()?;
        let mut conn = UnixStream::connect(&self.socket)
            .with_context(|| format!("connecting {}", self.socket.display()))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        conn.write_all(b"show stat\n")?;
        let mut text = String::new();
        conn.read_to_string(&mut text)
            .context("reading HAProxy's show stat")?;
        frontend_sessions(&text, FRONTEND)
            .with_context(|| format!("no {FRONTEND} FRONTEND row in show stat:\n{text}"))
    }
}

/// HAProxy's configuration: one tcp frontend to the server, an admin socket for `show stat`.
fn haproxy_cfg(port: u16, pg_port: u16, socket: &str) -> String {
    format!(
        "# cargo xtask bench postgres\n\
         global\n    maxconn 1000\n    stats socket {socket} mode 600 level admin\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 5m\n\
         \x20   timeout server 5m\n\n\
         frontend {FRONTEND}\n    bind 127.0.0.1:{port}\n    default_backend pg\n\n\
         backend pg\n    server pg1 127.0.0.1:{pg_port}\n"
    )
}

/// `stot` of the FRONTEND row of `proxy` in `show stat` CSV (header `# pxname,svname,...`).
fn frontend_sessions(text: &str, proxy: &str) -> Option<u64> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()?
        .trim_start_matches('#')
        .trim()
        .split(',')
        .collect();
    let col = header.iter().position(|h| *h == "stot")?;
    lines.find_map(|l| {
        let f: Vec<&str> = l.split(',').collect();
        (f.first() == Some(&proxy) && f.get(1) == Some(&"FRONTEND"))
            .then(|| f.get(col)?.parse().ok())
            .flatten()
    })
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbouncer_stats_cases() {
        let text = "database|total_xact_count|total_query_count\n\
                    bench|41918|41918\npgbouncer|2|2\n(2 rows)\n";
        let cases = [
            (text, "bench", Some(41918)),
            (text, "pgbouncer", Some(2)),
            (text, "other", Some(0)),
            ("database|total_xact_count\nbench|x\n", "bench", None),
            ("database|x\nbench|1\n", "bench", None),
            ("", "bench", None),
        ];
        for (text, db, want) in cases {
            assert_eq!(stats_xacts(text, db), want, "{db} in {text:?}");
        }
    }

    #[test]
    fn haproxy_stat_cases() {
        let text = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin\n\
                    pg_in,FRONTEND,,,0,4,1000,17,123\n\
                    pg,pg1,0,0,0,4,,9,100\npg,BACKEND,0,0,0,4,100,9,100\n\n";
        let cases = [
            (text, "pg_in", Some(17)),
            (text, "pg", None),
            ("# pxname,svname\npg_in,FRONTEND\n", "pg_in", None),
            ("", "pg_in", None),
        ];
        for (text, proxy, want) in cases {
            assert_eq!(frontend_sessions(text, proxy), want, "{proxy} in {text:?}");
        }
    }

    #[test]
    fn configurations_name_the_ports() {
        let ini = pgbouncer_ini(6432, 5432, "/w/users.txt");
        for want in [
            "listen_port = 6432",
            "port=5432 dbname=bench",
            "pool_mode = session",
            "auth_file = /w/users.txt",
        ] {
            assert!(ini.contains(want), "{want} in {ini}");
        }
        let cfg = haproxy_cfg(7000, 5432, "/w/h.sock");
        for want in [
            "bind 127.0.0.1:7000",
            "server pg1 127.0.0.1:5432",
            "mode tcp",
            "stats socket /w/h.sock",
        ] {
            assert!(cfg.contains(want), "{want} in {cfg}");
        }
    }
}
