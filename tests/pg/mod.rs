//! Harness of the postgres root suite (`tests/postgres.rs`): a real PostgreSQL 15 server per
//! test, its TLS material and rows, postgres policies, and real clients in the enrolled cgroup.
//! Uses the shared root harness (`tests/harness/`) for the agent, cgroups and prerequisites.
#![allow(dead_code)] // each test uses a part

pub mod certs;
pub mod client;
pub mod data;
pub mod driver;
pub mod policy;
pub mod py;
pub mod raw;
pub mod server;

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;

pub use client::{Client, Run, conninfo, psql, python, rust_client};
pub use policy::TargetSpec;
pub use server::{PgServer, Role};

use crate::harness::{Agent, FailMode, Need, poll, prereq::in_ci, setup};

/// How long a policy reload may take to show in `tollgate status`.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an audit record may take to appear.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(10);

/// One test's world: a PostgreSQL server, an agent whose policy has the `orders-db` target on
/// it, the enrolled cgroup of the `etl` workload, and the credential files.
pub struct Fixture {
    /// The agent (dropped first: it stops before the server).
    pub agent: Agent,
    /// The server.
    pub pg: PgServer,
    /// Cgroup directory whose processes are the `etl` workload.
    pub etl: PathBuf,
    /// The target as last written to the policy.
    pub spec: TargetSpec,
}

/// Checks the suite's prerequisites (those of the shared harness, and PostgreSQL 15, psql,
/// pgbench, openssl, the system Python with psycopg2). Missing ones fail the test in CI and
/// skip it loudly elsewhere, as the shared harness does.
pub fn prerequisites(test: &str) -> Option<crate::harness::prereq::Env> {
    let env = setup(test, &[Need::Python3])?;
    let missing = missing_tools();
    match missing {
        None => Some(env),
        Some(m) if in_ci() => panic!("{test}: prerequisite missing in CI (CI=true): {m}"),
        Some(m) => {
            let _ = writeln!(
                std::io::stderr(),
                "\n********** SKIP {test}: {m} (cargo xtask setup installs it) **********\n"
            );
            None
        }
    }
}

fn missing_tools() -> Option<String> {
    for path in [
        "/usr/lib/postgresql/15/bin/initdb",
        "/usr/lib/postgresql/15/bin/postgres",
        "/usr/bin/psql",
        "/usr/bin/pgbench",
    ] {
        if !Path::new(path).is_file() {
            return Some(format!(
                "{path} is missing (postgresql-15, postgresql-client-15)"
            ));
        }
    }
    let ok = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ok("openssl", &["version"]) {
        return Some("`openssl` is missing".into());
    }
    if !ok(client::PYTHON, &["-c", "import psycopg2"]) {
        return Some(format!(
            "{} cannot import psycopg2 (python3-psycopg2)",
            client::PYTHON
        ));
    }
    if nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .is_none()
    {
        return Some("no `postgres` user".into());
    }
    None
}

impl Fixture {
    /// Starts a server and an agent named after `tag` whose target is the default one (no
    /// upstream TLS, SCRAM and md5 credentials, masking on) changed by `adjust`.
    pub fn start(test: &str, tag: &str, adjust: impl FnOnce(&mut TargetSpec)) -> Option<Fixture> {
        Fixture::start_configured(test, tag, "", adjust)
    }

    /// Like [`Fixture::start`] with `config` (TOML lines) added to the agent's main config.
    pub fn start_configured(
        test: &str,
        tag: &str,
        config: &str,
        adjust: impl FnOnce(&mut TargetSpec),
    ) -> Option<Fixture> {
        let env = prerequisites(test)?;
        Some(Fixture::with_server_configured(
            &env,
            PgServer::start(),
            tag,
            config,
            adjust,
        ))
    }

    /// Like [`Fixture::start`] with a server already started (e.g. in another namespace).
    pub fn with_server(
        env: &crate::harness::prereq::Env,
        pg: PgServer,
        tag: &str,
        adjust: impl FnOnce(&mut TargetSpec),
    ) -> Fixture {
        Fixture::with_server_configured(env, pg, tag, "", adjust)
    }

    fn with_server_configured(
        env: &crate::harness::prereq::Env,
        pg: PgServer,
        tag: &str,
        config: &str,
        adjust: impl FnOnce(&mut TargetSpec),
    ) -> Fixture {
        let agent = Agent::new(env, tag, FailMode::Open);
        agent.add_config(config);
        let etl = agent.cgroup_dir("etl-1");
        crate::harness::cgroup::mkdir(&etl);
        let secrets = agent.scratch().join("secrets");
        std::fs::create_dir_all(&secrets).expect("secrets dir");
        server::set_mode(&secrets, 0o700);
        let credentials = Role::ALL
            .iter()
            .map(|&role| {
                let file = secrets.join(role.name());
                std::fs::write(&file, pg.password(role)).expect("write password file");
                server::set_mode(&file, 0o600);
                (role.name().to_owned(), file)
            })
            .collect();
        let mut spec = TargetSpec {
            addr: pg.addr(),
            upstream_tls: "disable".into(),
            ca_file: None,
            server_name: None,
            client_tls: None,
            masking: true,
            binary_results: None,
            credentials,
            rule_roles: None,
            rule_databases: None,
            utility: false,
            max_statement_bytes: None,
        };
        adjust(&mut spec);
        let mut fixture = Fixture {
            agent,
            pg,
            etl,
            spec,
        };
        fixture
            .agent
            .write_policy("pg.toml", &fixture.policy_text());
        fixture.agent.start();
        fixture
    }

    /// The policy for the current [`Fixture::spec`].
    pub fn policy_text(&self) -> String {
        policy::policy(&format!("{}/etl-*", self.agent.attach), &self.spec)
    }

    /// Changes the target and waits until the agent runs the new policy.
    pub fn reload(&mut self, adjust: impl FnOnce(&mut TargetSpec)) {
        adjust(&mut self.spec);
        self.reload_to(&self.spec);
    }

    /// Writes the policy for `spec` (not kept as [`Fixture::spec`]: for a thread that reloads
    /// while another uses the fixture) and waits until the agent runs it.
    pub fn reload_to(&self, spec: &TargetSpec) {
        let text = policy::policy(&format!("{}/etl-*", self.agent.attach), spec);
        let before = generation(&self.agent.status());
        self.agent.write_policy("pg.toml", &text);
        poll(RELOAD_TIMEOUT, || {
            let status = self.agent.status();
            if let Some(err) = status["last_reload_error"].as_str() {
                panic!("policy reload failed: {err}\n{text}");
            }
            (generation(&status) > before).then_some(())
        })
        .unwrap_or_else(|| panic!("policy not reloaded after {RELOAD_TIMEOUT:?}"));
    }

    /// A psql client connecting as `role` with `sslmode`.
    pub fn psql(&self, role: Role, sslmode: &str, args: &[&str]) -> Client {
        psql(&self.conninfo(role.name(), sslmode), args)
    }

    /// `pgbench ARGS…` against the `orders` database as scram_user over loopback, without TLS
    /// or any password (run it in the enrolled cgroup).
    pub fn pgbench(&self, args: &[&str]) -> Client {
        let port = self.pg.port.to_string();
        let mut all = args.to_vec();
        all.extend_from_slice(&["-h", "127.0.0.1", "-p", &port, "-U", "scram_user", "orders"]);
        Client::new("/usr/bin/pgbench", &all).env("PGSSLMODE", "disable")
    }

    /// A connection string to the server for `user` with `sslmode`, without any password.
    pub fn conninfo(&self, user: &str, sslmode: &str) -> String {
        client::conninfo_at(&self.pg.host.to_string(), self.pg.port, user, sslmode)
    }

    /// Runs `sql` with psql (`-c`) in the enrolled cgroup as scram_user, sslmode=disable.
    pub fn psql_c(&self, sql: &str) -> Run {
        self.psql(Role::Scram, "disable", &["-c", sql])
            .run(Some(&self.etl))
    }

    /// The audit record of the session opened by process `pid`, once ended, with its
    /// statements (`tollgate sessions show ID --json`).
    pub fn session_of(&self, pid: u32) -> Value {
        let s = self
            .agent
            .wait_ended(&format!("pid {pid}"), |s| s.pid() == Some(pid));
        self.show(&s.id())
    }

    /// `tollgate sessions show ID --json`, as JSON.
    pub fn show(&self, id: &str) -> Value {
        let out = self.agent.cli(&["sessions", "show", id, "--json"]);
        assert!(
            out.status.success(),
            "sessions show {id} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "sessions show --json is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Waits until the audit of `pid`'s session has at least `n` statements and returns it.
    pub fn statements_of(&self, pid: u32, n: usize) -> Value {
        let mut last = Value::Null;
        poll(AUDIT_TIMEOUT, || {
            last = self.session_of(pid);
            (last["statements"].as_array().map_or(0, Vec::len) >= n).then(|| last.clone())
        })
        .unwrap_or_else(|| panic!("session of pid {pid} has fewer than {n} statements: {last:#}"))
    }

    /// The agent's whole log.
    pub fn agent_log(&self) -> String {
        let log = self.agent.scratch().join("agent.log");
        std::fs::read_to_string(log).unwrap_or_default()
    }
}

fn generation(status: &Value) -> u64 {
    status["policy_generation"]
        .as_u64()
        .unwrap_or_else(|| panic!("status has no numeric policy_generation: {status}"))
}
