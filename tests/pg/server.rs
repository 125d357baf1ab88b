//! A PostgreSQL 15 server per test: `initdb` in a temp dir owned by `postgres`, TCP on
//! 127.0.0.1 (or on an address inside a second network namespace) with `ssl = on`, a unix socket (trust, for setup and checks), roles for SCRAM, md5
//! and TLS-only logins, the `orders` database with generated rows and `pgbench -i` data.
//! Dropping it shuts the server down (immediate mode) and removes everything.
use std::{
    io::Write as _,
    net::Ipv4Addr,
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};

use super::{
    certs::{self, Certs},
    data::{self, Customer},
};

/// Where Debian installs the PostgreSQL 15 server programs.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// Prefix of the servers' temp dirs (`<prefix><pid>-…`): a dead pid means a stale leftover.
const DIR_PREFIX: &str = "tollgate-pg-";
/// How long the server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The login roles, each allowed by `pg_hba.conf` in one way only over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// SCRAM-SHA-256 password (`host … scram-sha-256`).
    Scram,
    /// md5 password, stored as md5 (`host … md5`).
    Md5,
    /// SCRAM over TLS only (`hostssl … scram-sha-256`).
    Tls,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Scram, Role::Md5, Role::Tls];

    /// The role name in the server.
    pub fn name(self) -> &'static str {
        match self {
            Role::Scram => "scram_user",
            Role::Md5 => "md5_user",
            Role::Tls => "tls_user",
        }
    }
}

/// Where a server listens.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Address it listens on.
    pub host: Ipv4Addr,
    /// Network its TCP clients (tollgate) come from, for `pg_hba.conf` (`127.0.0.1/32`).
    pub clients: String,
    /// Network namespace to run in (`/run/netns/<name>`); `None`: the test's own.
    pub netns: Option<String>,
}

impl Placement {
    /// 127.0.0.1 in the test's namespace.
    pub fn loopback() -> Placement {
        Placement {
            host: Ipv4Addr::LOCALHOST,
            clients: "127.0.0.1/32".into(),
            netns: None,
        }
    }
}

/// A running server.
pub struct PgServer {
    /// Address it listens on.
    pub host: Ipv4Addr,
    /// TCP port.
    pub port: u16,
    /// Directory of the unix socket.
    pub sock: PathBuf,
    /// Data directory.
    pub data: PathBuf,
    /// TLS material (the CA is the trust anchor for `verify-full`).
    pub certs: Certs,
    /// The rows of `customers`.
    pub customers: Vec<Customer>,
    passwords: [String; 3],
    placement: Placement,
    log: PathBuf,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl PgServer {
    /// Creates, starts and fills a server on 127.0.0.1; panics (with the server log) when
    /// anything fails.
    pub fn start() -> PgServer {
        PgServer::start_at(Placement::loopback())
    }

    /// Like [`PgServer::start`], listening where `placement` says.
    pub fn start_at(placement: Placement) -> PgServer {
        sweep_stale();
        let (uid, gid) = postgres_ids();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .expect("temp dir");
        nix::unistd::chown(dir.path(), Some(uid.into()), Some(gid.into())).expect("chown");
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).expect("sock dir");
        nix::unistd::chown(&sock, Some(uid.into()), Some(gid.into())).expect("chown sock");
        let certs = certs::generate(&dir.path().join("certs"), placement.host);
        let port = crate::harness::agent::free_port();
        let mut server = PgServer {
            host: placement.host,
            port,
            sock,
            data,
            certs,
            customers: data::customers(),
            passwords: Role::ALL.map(|r| format!("{}-{}", r.name(), random_hex())),
            placement,
            log: dir.path().join("postgres.log"),
            child: None,
            dir,
        };
        server.initdb();
        server.configure();
        server.launch();
        server.fill();
        server
    }

    /// The password of `role` (for the credential files; clients never get it).
    pub fn password(&self, role: Role) -> &str {
        &self.passwords[role as usize]
    }

    /// `<host>:<port>`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Runs `sql` as the superuser over the unix socket in `db` (`psql -X -A -t`, stop on error)
    /// and returns its output; panics on failure.
    pub fn admin_sql(&self, db: &str, sql: &str) -> String {
        let out = self.admin_psql(db, sql);
        assert!(
            out.status.success(),
            "admin psql failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            sql.chars().take(400).collect::<String>()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Like [`PgServer::admin_sql`] without checking the outcome.
    pub fn admin_psql(&self, db: &str, sql: &str) -> std::process::Output {
        admin_psql_at(self.dir.path(), &self.sock, self.port, db, sql)
    }

    /// A condition for [`super::Client::signal_when`]: true once another backend is running
    /// (`pg_stat_activity` state `active`) a statement whose text holds `needle`. Asked over
    /// the unix socket as the superuser, so it is no session of any workload.
    pub fn running(&self, needle: &str) -> impl FnMut() -> bool + 'static {
        let (dir, sock, port) = (self.dir.path().to_owned(), self.sock.clone(), self.port);
        let sql = format!(
            "select count(*) from pg_stat_activity where state = 'active' \
             and pid <> pg_backend_pid() and strpos(query, '{}') > 0",
            needle.replace('\'', "''")
        );
        move || {
            let out = admin_psql_at(&dir, &sock, port, "postgres", &sql);
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() != "0"
        }
    }

    /// The last lines of the server log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// A command for the PostgreSQL program `name`, run as the `postgres` user.
    fn as_postgres(&self, name: &str) -> Command {
        as_postgres_in(self.dir.path(), name)
    }

    fn initdb(&self) {
        let mut cmd = self.as_postgres("initdb");
        cmd.arg("-D").arg(&self.data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "-N",
            "--no-instructions",
        ]);
        let out = cmd.stdin(Stdio::null()).output().expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn configure(&self) {
        let (uid, gid) = postgres_ids();
        for (from, to) in [
            (&self.certs.cert, "server.crt"),
            (&self.certs.key, "server.key"),
        ] {
            let dst = self.data.join(to);
            std::fs::copy(from, &dst).expect("copy cert");
            nix::unistd::chown(&dst, Some(uid.into()), Some(gid.into())).expect("chown cert");
            set_mode(&dst, 0o600);
        }
        let conf = format!(
            "\n# tollgate test server\n\
             listen_addresses = '{host}'\n\
             port = {port}\n\
             unix_socket_directories = '{sock}'\n\
             ssl = on\n\
             ssl_cert_file = 'server.crt'\n\
             ssl_key_file = 'server.key'\n\
             max_connections = 40\n\
             shared_buffers = 16MB\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             log_connections = on\n\
             log_statement = 'all'\n",
            host = self.host,
            port = self.port,
            sock = self.sock.display(),
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))
            .expect("open postgresql.conf");
        f.write_all(conf.as_bytes()).expect("write postgresql.conf");
        let net = &self.placement.clients;
        let hba = format!(
            "# tollgate test server: each role has exactly one way in over TCP\n\
             local   all  all                trust\n\
             host    all  scram_user  {net}  scram-sha-256\n\
             host    all  md5_user    {net}  md5\n\
             hostssl all  tls_user    {net}  scram-sha-256\n"
        );
        std::fs::write(self.data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(&self.log).expect("server log");
        let (uid, gid) = postgres_ids();
        let mut cmd = Command::new(Path::new(PG_BIN).join("postgres"));
        cmd.arg("-D")
            .arg(&self.data)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        let netns = self.placement.netns.as_ref().map(|name| {
            std::fs::File::open(Path::new("/run/netns").join(name))
                .unwrap_or_else(|e| panic!("open netns {name}: {e}"))
        });
        let netns_fd = netns.as_ref().map(|f| f.as_raw_fd());
        // SAFETY: only async-signal-safe calls (setns, setgroups, setgid, setuid, prctl) on
        // data prepared before the fork. The namespace is joined while still root,
        // then the credentials drop to postgres. The postmaster shuts down (immediate) if the
        // test thread that started it dies without dropping the guard.
        unsafe {
            cmd.pre_exec(move || {
                let check = |rc: libc::c_int| {
                    if rc == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                if let Some(fd) = netns_fd {
                    check(libc::setns(fd, libc::CLONE_NEWNET))?;
                }
                check(libc::setgroups(0, std::ptr::null()))?;
                check(libc::setgid(gid))?;
                check(libc::setuid(uid))?;
                check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT))
            });
        }
        self.child = Some(cmd.spawn().expect("spawn postgres"));
        drop(netns);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("postgres exited ({status}):\n{}", self.log_tail());
            }
            let mut ready = self.as_postgres("pg_isready");
            ready
                .arg("-q")
                .arg("-h")
                .arg(&self.sock)
                .args(["-p", &self.port.to_string()]);
            if ready.status().is_ok_and(|s| s.success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres not ready after {READY_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn fill(&self) {
        let [scram, md5, tls] = &self.passwords;
        self.admin_sql(
            "postgres",
            &format!(
                "CREATE ROLE app NOLOGIN;\n\
                 SET password_encryption = 'scram-sha-256';\n\
                 CREATE ROLE scram_user LOGIN PASSWORD '{scram}' IN ROLE app;\n\
                 CREATE ROLE tls_user LOGIN PASSWORD '{tls}' IN ROLE app;\n\
                 SET password_encryption = 'md5';\n\
                 CREATE ROLE md5_user LOGIN PASSWORD '{md5}' IN ROLE app;\n\
                 CREATE DATABASE orders OWNER app;\n"
            ),
        );
        self.admin_sql(
            "orders",
            &format!("SET ROLE app;\n{}", data::schema_sql(&self.customers)),
        );
        let mut bench = self.as_postgres("pgbench");
        bench.args(["-i", "-q", "-h"]).arg(&self.sock).args([
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "orders",
        ]);
        let out = bench.stdin(Stdio::null()).output().expect("run pgbench -i");
        assert!(
            out.status.success(),
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.admin_sql(
            "orders",
            "ALTER TABLE pgbench_accounts OWNER TO app;\n\
             ALTER TABLE pgbench_branches OWNER TO app;\n\
             ALTER TABLE pgbench_tellers OWNER TO app;\n\
             ALTER TABLE pgbench_history OWNER TO app;\n",
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if std::thread::panicking() {
                eprintln!("---- postgres log (tail):\n{}", self.log_tail());
            }
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
            let _ = nix::sys::signal::kill(pid, Signal::SIGQUIT);
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A command for the PostgreSQL program `name`, run as the `postgres` user in `dir`.
fn as_postgres_in(dir: &Path, name: &str) -> Command {
    let (uid, gid) = postgres_ids();
    let mut cmd = Command::new(Path::new(PG_BIN).join(name));
    cmd.uid(uid)
        .gid(gid)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C.UTF-8");
    cmd
}

/// `psql` as the superuser over the unix socket in `sock` (`-X -A -t`, stop on error) with
/// `sql` on its standard input; the outcome is not checked.
fn admin_psql_at(dir: &Path, sock: &Path, port: u16, db: &str, sql: &str) -> std::process::Output {
    let mut cmd = as_postgres_in(dir, "psql");
    cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(sock)
        .args(["-p", &port.to_string(), "-U", "postgres", "-d", db]);
    run_with_stdin(cmd, sql)
}

/// uid and gid of the `postgres` user.
pub fn postgres_ids() -> (u32, u32) {
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("no `postgres` user (install postgresql-15)");
    (user.uid.as_raw(), user.gid.as_raw())
}

/// 16 random hex digits.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    let mut f = std::fs::File::open("/dev/urandom").expect("open /dev/urandom");
    std::io::Read::read_exact(&mut f, &mut bytes).expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sets the permission bits of `path`.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Runs `cmd` with `input` on its standard input and returns its output.
fn run_with_stdin(mut cmd: Command, input: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    out
}

/// Removes the temp dirs of servers whose test process is gone (their postmaster got SIGQUIT
/// through the parent-death signal).
fn sweep_stale() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(DIR_PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
}
