//! The PostgreSQL 15 server of `cargo xtask bench postgres`, started as the tests start theirs:
//! `initdb` as `postgres` in the work directory, TCP on 127.0.0.1 and 127.0.0.2 (the masked
//! tollgate target) without TLS, SCRAM for the `bench` role over TCP, trust on its own unix
//! socket for setup; `pgbench -i` data and the wide table of the masking measurement.
use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use super::{
    data,
    proc::{Daemon, Ids, SIGQUIT, Workdir, command_as},
};

/// Where Debian installs the PostgreSQL 15 server programs.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The login role of every client, and its database.
pub const ROLE: &str = "bench";
/// The database.
pub const DATABASE: &str = "bench";

/// What `postgresql.conf` gets appended (after the port and socket lines), shown in the report.
pub const SETTINGS: &str = "max_connections = 60\n\
                            shared_buffers = 256MB\n\
                            fsync = off\n\
                            synchronous_commit = off\n\
                            full_page_writes = off\n\
                            ssl = off\n";

/// A running server.
pub struct Postgres {
    /// TCP port on 127.0.0.1 and 127.0.0.2.
    pub port: u16,
    /// The password of [`ROLE`].
    pub password: String,
    sock: PathBuf,
    daemon: Daemon,
}

impl Postgres {
    /// initdb, configure and start; returns once it accepts connections.
    pub fn start(work: &Workdir, ids: Ids, port: u16) -> anyhow::Result<Postgres> {
        let data = work.join("data");
        let sock = work.subdir("sock", ids, 0o755)?;
        let out = command_as(Path::new(PG_BIN).join("initdb"), ids, &work.path)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["-N", "--no-instructions"])
            .stdin(Stdio::null())
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let conf = format!(
            "\n# cargo xtask bench postgres\nlisten_addresses = '127.0.0.1,127.0.0.2'\n\
             port = {port}\nunix_socket_directories = '{}'\n{SETTINGS}",
            sock.display()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .context("appending to postgresql.conf")?;
        let hba = format!(
            "# cargo xtask bench postgres\nlocal all all trust\n\
             host {DATABASE} {ROLE} 127.0.0.0/8 scram-sha-256\n"
        );
        std::fs::write(data.join("pg_hba.conf"), hba).context("writing pg_hba.conf")?;

        let mut cmd = command_as(Path::new(PG_BIN).join("postgres"), ids, &work.path);
        cmd.arg("-D").arg(&data);
        let mut daemon = Daemon::spawn("postgres", cmd, &work.join("postgres.log"), SIGQUIT)?;
        daemon.wait_ready(|| {
            Command::new(Path::new(PG_BIN).join("pg_isready"))
                .arg("-q")
                .arg("-h")
                .arg(&sock)
                .args(["-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })?;
        Ok(Postgres {
            port,
            password: data::random_hex()?,
            sock,
            daemon,
        })
    }

    /// Creates the role and database, `pgbench -i -s <scale>` and the wide table.
    pub fn fill(&self, scale: u32, wide_rows: usize) -> anyhow::Result<()> {
        self.sql(
            "postgres",
            "postgres",
            &format!(
                "SET password_encryption = 'scram-sha-256';\n\
                 CREATE ROLE {ROLE} LOGIN PASSWORD '{}';\n\
                 CREATE DATABASE {DATABASE} OWNER {ROLE};\n",
                self.password
            ),
        )?;
        let out = Command::new("pgbench")
            .args(["-i", "-q", "-s", &scale.to_string(), "-h"])
            .arg(&self.sock)
            .args(["-p", &self.port.to_string(), "-U", ROLE, DATABASE])
            .stdin(Stdio::null())
            .output()
            .context("running pgbench -i")?;
        if !out.status.success() {
            bail!(
                "pgbench -i failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.sql(ROLE, DATABASE, &data::wide_table_sql(wide_rows))?;
        Ok(())
    }

    /// Runs `sql` as `user` over the unix socket (`psql -X -A -t -q`, stop on the first error)
    /// and returns its output.
    pub fn sql(&self, user: &str, db: &str, sql: &str) -> anyhow::Result<String> {
        let mut child = Command::new("psql")
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.sock)
            .args(["-p", &self.port.to_string(), "-U", user, "-d", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running psql")?;
        let mut stdin = child.stdin.take().context("psql stdin")?;
        let input = sql.to_owned();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output()?;
        let _ = writer.join();
        if !out.status.success() {
            bail!(
                "psql failed ({}): {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                sql.chars().take(300).collect::<String>()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// An error with the server log's tail if it has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.daemon.check_alive()
    }
}
