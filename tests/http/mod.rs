//! Harness of the http root suite (`tests/http.rs`): a real nginx per test (plain and TLS with
//! a test CA), an in-process backend (uploads, chunked downloads, WebSocket), the http policy
//! with root-only credentials, and real clients in the enrolled cgroup. Uses the shared root
//! harness (`tests/harness/`) for the agent, cgroups and prerequisites.
#![allow(dead_code)] // each test uses a part

pub mod backend;
pub mod certs;
pub mod client;
pub mod nginx;
pub mod policy;

use std::{
    io::Write as _,
    net::SocketAddr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;

pub use backend::Backend;
pub use certs::{Certs, SERVER_NAME};
pub use client::{Curl, CurlOut, PYTHON};
pub use nginx::Nginx;

use crate::harness::{Agent, FailMode, Need, poll, prereq::in_ci, setup};

/// How long a request audit may take to appear.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks the suite's prerequisites: the shared harness's (root, cgroup v2, bpffs, curl) and
/// nginx, openssl and the system Python. Missing ones fail the test in CI and skip it loudly
/// elsewhere, as the shared harness does.
pub fn prerequisites(test: &str) -> Option<crate::harness::prereq::Env> {
    let env = setup(test, &[Need::Curl])?;
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
    if !Path::new(nginx::NGINX).is_file() {
        return Some(format!("{} is missing (nginx)", nginx::NGINX));
    }
    if !Path::new(PYTHON).is_file() {
        return Some(format!("{PYTHON} is missing (python3)"));
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
    let curl = Command::new("curl")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !curl.contains("HTTP2") {
        return Some("curl without HTTP/2 support".into());
    }
    None
}

/// One test's world: nginx, the backend, an agent whose policy has the seven targets, the
/// enrolled cgroup of the `app` workload and the credentials (which no client ever gets).
pub struct Fixture {
    /// The agent (dropped first: it stops before the servers).
    pub agent: Agent,
    /// nginx.
    pub nginx: Nginx,
    /// The in-process backend.
    pub backend: Backend,
    /// nginx's TLS material.
    pub certs: Certs,
    /// Cgroup directory whose processes are the `app` workload.
    pub app: PathBuf,
    /// The bearer token tollgate injects towards nginx.
    pub token: String,
    /// The API key tollgate injects towards the backend.
    pub api_key: String,
    /// The pass-through target's address, where nothing listens.
    pub dead: SocketAddr,
    /// The `dead-web` target's address, where nothing listens.
    pub dead_web: SocketAddr,
    certs_dir: tempfile::TempDir,
}

impl Fixture {
    /// Starts nginx, the backend and an agent named after `tag`; `None` when a prerequisite is
    /// missing outside CI.
    pub fn start(test: &str, tag: &str) -> Option<Fixture> {
        Fixture::start_configured(test, tag, "")
    }

    /// Like [`Fixture::start`] with `config` (TOML lines) added to the agent's main config.
    pub fn start_configured(test: &str, tag: &str, config: &str) -> Option<Fixture> {
        let env = prerequisites(test)?;
        let certs_dir = tempfile::Builder::new()
            .prefix("tollgate-http-certs-")
            .tempdir()
            .expect("temp dir");
        let certs = certs::generate(certs_dir.path());
        let nginx = Nginx::start(&certs);
        let backend = Backend::start();
        let agent = Agent::new(&env, tag, FailMode::Open);
        agent.add_config(config);
        let app = agent.cgroup_dir("app-1");
        crate::harness::cgroup::mkdir(&app);
        let secrets = agent.scratch().join("secrets");
        std::fs::create_dir_all(&secrets).expect("secrets dir");
        set_mode(&secrets, 0o700);
        let token = format!("tok{}", random_letters(24));
        let api_key = format!("key{}", random_letters(24));
        let bearer_file = secrets.join("bearer");
        let api_key_file = secrets.join("api-key");
        for (file, value) in [(&bearer_file, &token), (&api_key_file, &api_key)] {
            std::fs::write(file, format!("{value}\n")).expect("write secret");
            set_mode(file, 0o600);
        }
        let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let (dead, dead_web) = (closed_port(1), closed_port(2));
        let text = policy::policy(&policy::Spec {
            cgroup_glob: format!("{}/app-*", agent.attach),
            web: at(nginx.ports.plain),
            web_tls: at(nginx.ports.tls_h2),
            web_originate: at(nginx.ports.tls),
            web_bad_ca: at(nginx.ports.tls_bad),
            backend: backend.addr,
            dead,
            dead_web,
            ca: &certs.ca,
            other_ca: &certs.other_ca,
            bearer_file: &bearer_file,
            api_key_file: &api_key_file,
            server_name: SERVER_NAME,
        });
        let mut fixture = Fixture {
            agent,
            nginx,
            backend,
            certs,
            app,
            token,
            api_key,
            dead,
            dead_web,
            certs_dir,
        };
        fixture.agent.write_policy("http.toml", &text);
        fixture.agent.start();
        Some(fixture)
    }

    /// tollgate's CA certificate: the only trust anchor clients of terminated targets need.
    pub fn tollgate_ca(&self) -> PathBuf {
        self.agent.state_dir.join("ca").join("ca.pem")
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn http(&self, port: u16, path: &str) -> String {
        format!("http://127.0.0.1:{port}{path}")
    }

    /// `https://api.tollgate.test:<port><path>` (curl needs [`Fixture::resolve`]).
    pub fn https(&self, port: u16, path: &str) -> String {
        format!("https://{SERVER_NAME}:{port}{path}")
    }

    /// `--resolve` arguments that send [`SERVER_NAME`] to 127.0.0.1 for `port`.
    pub fn resolve(port: u16) -> [String; 2] {
        [
            "--resolve".into(),
            format!("{SERVER_NAME}:{port}:127.0.0.1"),
        ]
    }

    /// The backend's URL for `path`.
    pub fn backend_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.backend.addr)
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

    /// The audit of the session process `pid` opened, once ended and holding at least `n`
    /// requests (`sessions show ID --json`).
    pub fn session_of(&self, pid: u32, n: usize) -> Value {
        let s = self
            .agent
            .wait_ended(&format!("pid {pid}"), |s| s.pid() == Some(pid));
        let mut last = Value::Null;
        poll(AUDIT_TIMEOUT, || {
            last = self.show(&s.id());
            (requests(&last).len() >= n).then(|| last.clone())
        })
        .unwrap_or_else(|| {
            panic!(
                "session of pid {pid} has fewer than {n} requests: {last:#}\nagent log:\n{}",
                self.agent.log_tail()
            )
        })
    }

    /// The agent's whole log.
    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.agent.scratch().join("agent.log")).unwrap_or_default()
    }
}

/// A loopback address where nothing listens: a privileged, unassigned-in-practice low port
/// (1: tcpmux, 2: compressnet), never handed out as an ephemeral port, so no other test can
/// start listening there meanwhile.
fn closed_port(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The `requests` array of a session (empty when absent).
pub fn requests(session: &Value) -> Vec<Value> {
    session["requests"].as_array().cloned().unwrap_or_default()
}

/// Sets the permission bits of `path`.
pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// `n` random lowercase letters (no digits: nothing a card detector could take for a number).
pub fn random_letters(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let mut f = std::fs::File::open("/dev/urandom").expect("open /dev/urandom");
    std::io::Read::read_exact(&mut f, &mut bytes).expect("read /dev/urandom");
    bytes.iter().map(|b| char::from(b'a' + b % 26)).collect()
}
