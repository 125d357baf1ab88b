//! Policies of the postgres suite, as TOML text in the format of `.notes/PG.md`: the `etl`
//! workload, one `postgres` target with credentials (and optionally masking and upstream TLS),
//! and statement rules that allow reads and some writes, deny DDL (`no-ddl`) and unknown
//! statements (`no-unknown`).
use std::{fmt::Write as _, path::PathBuf};

/// Name of the enrolled workload.
pub const WORKLOAD: &str = "etl";
/// Name of the postgres target.
pub const TARGET: &str = "orders-db";
/// The rule that denies DDL.
pub const NO_DDL: &str = "no-ddl";
/// The rule that denies unknown statements.
pub const NO_UNKNOWN: &str = "no-unknown";
/// The rule allowing reads.
pub const READS: &str = "etl-reads";
/// The rule allowing inserts and `COPY … FROM`.
pub const WRITES: &str = "etl-writes";
/// The rule allowing `COPY … TO`.
pub const COPY_OUT: &str = "etl-copy-out";
/// The rule allowing utility statements, when the test asks ([`TargetSpec::utility`]).
pub const UTILITY: &str = "etl-utility";

/// Tables the `etl` rules name (every table a statement touches must match one).
const TABLES: &[&str] = &[
    "customers",
    "public.customers",
    "accounts",
    "public.accounts",
    "pgbench_*",
    "public.pgbench_*",
    "pg_catalog.*",
    "pg_stat_ssl",
    // A quoted name holding a dot keeps its quotes in the classifier's output.
    "\"my.*\"",
    "public.\"my.*\"",
];

/// The postgres target, as a test wants it.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// `host:port` of the server.
    pub addr: String,
    /// `disable`, `prefer`, `require` or `verify-full`.
    pub upstream_tls: String,
    /// Trust anchor for `verify-full`.
    pub ca_file: Option<PathBuf>,
    /// Name to verify for `verify-full`.
    pub server_name: Option<String>,
    /// `client_tls`, when set.
    pub client_tls: Option<bool>,
    /// Mask `card_number` (last4) and e-mail addresses (redact).
    pub masking: bool,
    /// `binary_results`, when set.
    pub binary_results: Option<String>,
    /// `(role, password file)` credentials.
    pub credentials: Vec<(String, PathBuf)>,
    /// Roles the allow rules pin the workload to (`roles = [...]`), when set.
    pub rule_roles: Option<Vec<String>>,
    /// Databases the allow rules pin the workload to (`databases = [...]`), when set.
    pub rule_databases: Option<Vec<String>>,
    /// Also allow utility statements (`CLOSE`, `DEALLOCATE`, …; rule [`UTILITY`]).
    pub utility: bool,
    /// `max_statement_bytes`, when set.
    pub max_statement_bytes: Option<u64>,
}

impl TargetSpec {
    /// The target's TOML.
    pub fn toml(&self) -> String {
        let mut t = format!(
            "[[target]]\nname = {TARGET:?}\nprotocol = \"postgres\"\naddresses = [{:?}]\n\n\
             [target.postgres]\nupstream_tls = {:?}\n",
            self.addr, self.upstream_tls
        );
        if let Some(ca) = &self.ca_file {
            let _ = writeln!(t, "ca_file = {:?}", ca.display().to_string());
        }
        if let Some(name) = &self.server_name {
            let _ = writeln!(t, "server_name = {name:?}");
        }
        if let Some(on) = self.client_tls {
            let _ = writeln!(t, "client_tls = {on}");
        }
        if let Some(b) = &self.binary_results {
            let _ = writeln!(t, "binary_results = {b:?}");
        }
        if let Some(n) = self.max_statement_bytes {
            let _ = writeln!(t, "max_statement_bytes = {n}");
        }
        for (role, file) in &self.credentials {
            let _ = write!(
                t,
                "\n[[target.postgres.credential]]\nrole = {role:?}\npassword_file = {:?}\n",
                file.display().to_string()
            );
        }
        if self.masking {
            t.push_str(
                "\n[target.postgres.masking]\n\
                 columns = [ { name = \"card_number\", style = \"last4\" } ]\n\
                 detectors = [ { detector = \"email\", style = \"redact\" } ]\n",
            );
        }
        t.push('\n');
        t
    }
}

/// The whole policy: the `etl` workload selected by `cgroup_glob`, the target, and the rules.
pub fn policy(cgroup_glob: &str, target: &TargetSpec) -> String {
    let mut p = format!(
        "# postgres suite: the etl workload and its database\n\
         [[workload]]\nname = {WORKLOAD:?}\nspiffe_id = \"spiffe://test.tollgate/{WORKLOAD}\"\n\
         mode = \"enforce\"\n[workload.selector]\ncgroup = {cgroup_glob:?}\n\n"
    );
    p.push_str(&target.toml());
    let mut pins = String::new();
    if let Some(roles) = &target.rule_roles {
        let _ = writeln!(pins, "roles = {roles:?}");
    }
    if let Some(dbs) = &target.rule_databases {
        let _ = writeln!(pins, "databases = {dbs:?}");
    }
    let own = [
        "accounts",
        "public.accounts",
        "customers",
        "public.customers",
    ];
    for (name, classes, tables) in [
        (READS, &["select", "set", "transaction"][..], TABLES),
        (WRITES, &["insert", "copy_from"][..], &own[..]),
        (COPY_OUT, &["copy_to"][..], &own[..]),
    ] {
        p.push_str(&statement_rule(name, "allow", classes, Some(tables), &pins));
    }
    if target.utility {
        p.push_str(&statement_rule(UTILITY, "allow", &["utility"], None, &pins));
    }
    p.push_str(&statement_rule(NO_DDL, "deny", &["ddl"], None, ""));
    p.push_str(&statement_rule(NO_UNKNOWN, "deny", &["unknown"], None, ""));
    p
}

/// A statement rule of `etl` on the target; `extra` is more TOML for its `[rule.postgres]`.
pub fn statement_rule(
    name: &str,
    action: &str,
    classes: &[&str],
    tables: Option<&[&str]>,
    extra: &str,
) -> String {
    let mut r = format!(
        "[[rule]]\nname = {name:?}\nworkloads = [{WORKLOAD:?}]\ntargets = [{TARGET:?}]\n\
         action = {action:?}\n[rule.postgres]\nclasses = {classes:?}\n"
    );
    if let Some(tables) = tables {
        let _ = writeln!(r, "tables = {tables:?}");
    }
    r.push_str(extra);
    r.push('\n');
    r
}
