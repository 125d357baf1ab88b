//! The validated policy: workloads in match order, targets and rules sorted by name.
use std::{cmp::Ordering, fmt};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    address::Address,
    http::model::{HttpCredential, HttpTarget, PathMatch, RequestRule},
    pg::model::{CredentialSecret, PostgresTarget, StatementRule},
    selector::{Selector, Subject},
    spiffe::SpiffeId,
};

/// Whether a workload's denials are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Denied (and held) connections are refused.
    #[default]
    Enforce,
    /// Denied (and held) connections are let through and recorded as "audit-deny".
    Audit,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        })
    }
}

/// The protocol a target speaks; decides which handler the proxy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Protocol {
    /// Opaque TCP: L4 policy, bytes copied as they are.
    Tcp,
    /// PostgreSQL: L4 policy at connection time, then login and statement rules, masking.
    Postgres,
    /// HTTP(S): L4 policy at connection time, then request rules, credential injection,
    /// masking (unless the target passes TLS through).
    Http,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Postgres => "postgres",
            Protocol::Http => "http",
        })
    }
}

/// What a rule (or the policy as a whole) decides for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Let it through.
    Allow,
    /// Refuse it.
    Deny,
    /// Hold it until a human approves.
    Approve,
}

impl Verdict {
    /// The verdicts in the order rules decide by: any deny wins, then any approve, then any
    /// allow.
    pub const PRECEDENCE: [Verdict; 3] = [Verdict::Deny, Verdict::Approve, Verdict::Allow];

    /// How strict this verdict is, by [`Self::PRECEDENCE`]: deny 2, approve 1, allow 0.
    pub const fn strictness(self) -> u8 {
        match self {
            Verdict::Deny => 2,
            Verdict::Approve => 1,
            Verdict::Allow => 0,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Approve => "approve",
        })
    }
}

/// A set of process identities with a SPIFFE ID.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Unique name.
    pub name: String,
    /// Identity given to its connections.
    pub spiffe_id: SpiffeId,
    /// Enforce or only audit denials.
    pub mode: Mode,
    /// Higher is matched first.
    pub priority: i32,
    /// Free text from the policy file.
    pub description: Option<String>,
    /// Which processes it covers.
    pub selector: Selector,
}

impl Workload {
    /// Whether every selector field matches `s`.
    pub fn matches(&self, s: &Subject) -> bool {
        self.selector.matches(s)
    }

    /// Whether the process-level selector fields (uid, gid, exe) match `s`, ignoring the
    /// cgroup-level ones: for a cgroup that `tollgate run` bound to this workload.
    pub fn matches_process(&self, s: &Subject) -> bool {
        self.selector.matches_process(s)
    }

    /// Match order: higher priority, then more selector fields, then name ascending.
    pub(crate) fn match_order(a: &Self, b: &Self) -> Ordering {
        b.priority
            .cmp(&a.priority)
            .then_with(|| b.selector.count().cmp(&a.selector.count()))
            .then_with(|| a.name.cmp(&b.name))
    }
}

/// A named set of destinations.
#[derive(Debug, Clone)]
pub struct Target {
    /// Unique name.
    pub name: String,
    /// Protocol spoken there.
    pub protocol: Protocol,
    /// Destinations, as written (normalized).
    pub addresses: Vec<Address>,
    /// Free text from the policy file.
    pub description: Option<String>,
    /// `[target.postgres]`: set exactly when `protocol` is [`Protocol::Postgres`].
    pub postgres: Option<PostgresTarget>,
    /// `[target.http]`: set exactly when `protocol` is [`Protocol::Http`]. Shared: each session
    /// of the target holds it.
    pub http: Option<std::sync::Arc<HttpTarget>>,
}

/// The workloads or targets a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Names {
    /// `"*"`: all of them.
    All,
    /// These names (sorted, deduplicated; each one defined).
    Some(Vec<String>),
}

impl Names {
    /// Whether `name` is included.
    pub fn includes(&self, name: &str) -> bool {
        match self {
            Names::All => true,
            Names::Some(names) => names.binary_search_by(|n| n.as_str().cmp(name)).is_ok(),
        }
    }
}

impl fmt::Display for Names {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Names::All => f.write_str("*"),
            Names::Some(names) => f.write_str(&names.join(",")),
        }
    }
}

/// Which workloads may reach which targets.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name; reported in decisions.
    pub name: String,
    /// Workloads it applies to.
    pub workloads: Names,
    /// Targets it applies to.
    pub targets: Names,
    /// What it decides.
    pub action: Verdict,
    /// Free text from the policy file.
    pub description: Option<String>,
    /// `[rule.postgres]`: with it, a statement rule (its targets are all postgres targets);
    /// without it, an L4 rule.
    pub postgres: Option<StatementRule>,
    /// `[rule.http]`: with it, a request rule (its targets are all http targets that see
    /// requests); without it (and without `postgres`), an L4 rule.
    pub http: Option<RequestRule>,
}

/// A loaded, validated policy. Cheap enough to clone; share it behind an `Arc`/`ArcSwap`.
#[derive(Debug, Clone)]
pub struct Policy {
    /// In match order.
    pub(crate) workloads: Vec<Workload>,
    /// Sorted by name.
    pub(crate) targets: Vec<Target>,
    /// Sorted by name.
    pub(crate) rules: Vec<Rule>,
    /// See [`Policy::fingerprint`].
    pub(crate) fingerprint: String,
}

impl Policy {
    /// Builds a policy from validated parts: sorts them and computes the fingerprint.
    pub(crate) fn new(
        mut workloads: Vec<Workload>,
        mut targets: Vec<Target>,
        mut rules: Vec<Rule>,
    ) -> Self {
        workloads.sort_by(Workload::match_order);
        targets.sort_by(|a, b| a.name.cmp(&b.name));
        rules.sort_by(|a, b| a.name.cmp(&b.name));
        let fingerprint = fingerprint(&normalized(&workloads, &targets, &rules));
        Self {
            workloads,
            targets,
            rules,
            fingerprint,
        }
    }

    /// Workloads, in match order.
    pub fn workloads(&self) -> &[Workload] {
        &self.workloads
    }

    /// The workload called `name`.
    pub fn workload(&self, name: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.name == name)
    }

    /// Targets, sorted by name.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Rules, sorted by name.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// DNS names used by targets (lowercase, no trailing dot), sorted and deduplicated: the keys
    /// the agent should resolve into a [`super::DnsTable`].
    pub fn dns_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .targets
            .iter()
            .flat_map(|t| &t.addresses)
            .filter_map(|a| match &a.host {
                super::Host::Name(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Stable hash (16 hex digits of SHA-256) of the normalized policy: the same rules give the
    /// same fingerprint whatever the file split, key order, comments, descriptions or spelling
    /// of addresses (`10.0.0.5/32` and `10.0.0.5`).
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }
}

/// One line per workload (match order), target and rule (name order), in canonical form.
fn normalized(workloads: &[Workload], targets: &[Target], rules: &[Rule]) -> String {
    let mut out = String::new();
    for w in workloads {
        let (name, id, mode, prio, sel) = (&w.name, &w.spiffe_id, w.mode, w.priority, &w.selector);
        out += &format!("workload {name:?} {id} {mode} {prio} {sel}\n");
    }
    for t in targets {
        let mut addrs: Vec<String> = t.addresses.iter().map(ToString::to_string).collect();
        addrs.sort();
        addrs.dedup();
        out += &format!("target {:?} {} {}\n", t.name, t.protocol, addrs.join(","));
        if let Some(pg) = &t.postgres {
            out += &normalized_pg_target(pg);
        }
        if let Some(http) = &t.http {
            out += &normalized_http_target(http);
        }
    }
    for r in rules {
        let (name, ws, ts, action) = (&r.name, &r.workloads, &r.targets, r.action);
        out += &format!("rule {name:?} {ws} {ts} {action}\n");
        if let Some(pg) = &r.postgres {
            out += &normalized_pg_rule(pg);
        }
        if let Some(http) = &r.http {
            out += &normalized_http_rule(http);
        }
    }
    out
}

/// A postgres target's settings, one line each. Secrets appear by origin (path or variable
/// name), never by value.
fn normalized_pg_target(pg: &PostgresTarget) -> String {
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let mut out = format!(
        "  postgres tls={} ca={:?} server_name={:?} client_tls={} binary={} redact={}\n",
        pg.upstream_tls,
        path(&pg.ca_file),
        pg.server_name,
        pg.client_tls,
        pg.binary_results,
        pg.redact_literals
    );
    for c in &pg.credentials {
        let secret = match &c.secret {
            CredentialSecret::Password(s) => format!("password {}", s.origin()),
            CredentialSecret::ClientCert { cert, key } => {
                format!("cert {:?} {:?}", cert.display(), key.display())
            }
        };
        out += &format!("  credential {:?} {secret}\n", c.role);
    }
    if let Some(m) = &pg.masking {
        let key = pg.hash_key.as_ref().map(|k| k.origin().to_string());
        out += &format!("  masking hash_key={key:?}\n");
        for c in &m.columns {
            let (name, table, style) = (&c.name, &c.table, c.style.name());
            out += &format!("  mask column {name:?} {table:?} {style}\n");
        }
        for d in &m.detectors {
            let (det, style, bare) = (d.detector, d.style.name(), d.bare_digits);
            out += &format!("  mask detector {det} {style} {bare}\n");
        }
    }
    out
}

/// A statement rule's conditions, each list in canonical order.
fn normalized_pg_rule(pg: &StatementRule) -> String {
    let classes = pg
        .classes
        .as_ref()
        .map(|c| c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","));
    let tables = pg.tables.as_ref().map(|t| t.patterns().join(","));
    let regex = pg.regex.as_ref().map(regex::Regex::as_str);
    let (dbs, roles) = (&pg.databases, &pg.roles);
    format!(
        "  postgres classes={classes:?} tables={tables:?} regex={regex:?} databases={dbs:?} roles={roles:?}\n"
    )
}

/// An http target's settings, one line each. Secrets appear by origin, never by value.
fn normalized_http_target(h: &HttpTarget) -> String {
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let cert = h
        .client_cert
        .as_ref()
        .map(|(c, k)| format!("{} {}", c.display(), k.display()));
    let sni: Vec<&str> = h.passthrough_sni.iter().map(|p| p.as_str()).collect();
    let mut out = format!(
        "  http tls={} ca={:?} server_name={:?} cert={cert:?} passthrough_sni={sni:?}\n",
        h.tls,
        path(&h.ca_file),
        h.server_name,
    );
    out += &format!(
        "  http strip={} header={} buffer={} compressed={} unmaskable={} record={} cap={} \
         headers={} redact={:?}\n",
        h.strip_client_credentials,
        h.max_request_header,
        h.max_body_buffer,
        h.compressed,
        h.unmaskable,
        h.record_bodies,
        h.body_cap,
        h.record_headers,
        h.redact_headers,
    );
    if let Some(c) = &h.credential {
        let kind = match c {
            HttpCredential::Bearer(s) => format!("bearer {}", s.origin()),
            HttpCredential::Basic { user, password } => {
                format!("basic {user:?} {}", password.origin())
            }
            HttpCredential::Header { name, value } => format!("header {name:?} {}", value.origin()),
            HttpCredential::Query { name, value } => format!("query {name:?} {}", value.origin()),
        };
        out += &format!("  http credential {kind}\n");
    }
    if let Some(m) = &h.masking {
        let key = h.hash_key.as_ref().map(|k| k.origin().to_string());
        out += &format!("  masking hash_key={key:?}\n");
        for k in &h.json_keys {
            out += &format!("  mask json {k}\n");
        }
        for d in &m.detectors {
            let (det, style, bare) = (d.detector, d.style.name(), d.bare_digits);
            out += &format!("  mask detector {det} {style} {bare}\n");
        }
    }
    out
}

/// A request rule's conditions, each list in canonical order.
fn normalized_http_rule(h: &RequestRule) -> String {
    let hosts = h.hosts.as_ref().map(|g| g.patterns().join(","));
    let path = h.path.as_ref().map(|p| match p {
        PathMatch::Globs(g) => format!("globs {}", g.patterns().join(",")),
        PathMatch::Prefix(p) => format!("prefix {}", p.join(",")),
        PathMatch::Regex(re) => format!("regex {}", re.as_str()),
    });
    let pairs = |l: &[(String, super::http::model::Globs)]| {
        l.iter()
            .map(|(n, g)| format!("{n}={}", g.patterns().join(",")))
            .collect::<Vec<_>>()
    };
    format!(
        "  http methods={:?} hosts={hosts:?} path={path:?} query={:?} headers={:?}\n",
        h.methods,
        pairs(&h.query),
        pairs(&h.headers)
    )
}

fn fingerprint(normalized: &str) -> String {
    let digest = Sha256::digest(normalized.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}
