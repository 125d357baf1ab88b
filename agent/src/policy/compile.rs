//! Checks of one file's definitions on their own (cross-file checks are in `load`): names, SPIFFE
//! IDs, globs, addresses, protocols (the PostgreSQL sections are checked in `pg::compile`, the
//! HTTP ones in `http::compile`). Each problem becomes an error at the offending value.
use toml::Spanned;

use super::{
    address::Address,
    error::{Location, PolicyError, Source},
    file::{Ids, PolicyFile, RuleDef, SelectorDef, TargetDef, WorkloadDef},
    http::model::RequestRule,
    model::{Protocol, Target, Verdict, Workload},
    pg::model::StatementRule,
    secret::EnvLookup,
    selector::{Pattern, Selector},
    spiffe::SpiffeId,
};

/// Longest workload, target or rule name.
pub const MAX_NAME_LEN: usize = 64;
/// Protocols that later versions handle; named in the error so users know it is coming.
const PLANNED_PROTOCOLS: [&str; 1] = ["ssh"];
/// The protocols of this version, as listed in errors.
const PROTOCOLS: &str = "\"tcp\", \"postgres\" or \"http\"";

/// A named definition; `item` is `None` when it has errors (its name is still known, so rules
/// naming it do not add "unknown" errors on top).
pub(super) struct Defined<T> {
    /// Its name as written.
    pub(super) name: String,
    /// Where the name is.
    pub(super) at: Location,
    /// The checked definition.
    pub(super) item: Option<T>,
}

/// Workloads or targets named by a rule, with where each name is written.
pub(super) enum Refs {
    /// `"*"`.
    All,
    /// These names.
    Some(Vec<(String, Location)>),
}

/// A rule whose names are not resolved yet.
pub(super) struct RuleRefs {
    /// Workloads named.
    pub(super) workloads: Refs,
    /// Targets named.
    pub(super) targets: Refs,
    /// What it decides.
    pub(super) action: Verdict,
    /// Free text.
    pub(super) description: Option<String>,
    /// `[rule.postgres]`, checked, with where the rule's `targets` are (for the cross-file check
    /// that every target it applies to is a postgres target).
    pub(super) postgres: Option<(StatementRule, Location)>,
    /// `[rule.http]`, checked, with where the rule's `targets` are (every target it applies to
    /// must be an http target that sees requests).
    pub(super) http: Option<(RequestRule, Location)>,
}

/// One file's checked definitions.
#[derive(Default)]
pub(super) struct Checked {
    /// Workloads.
    pub(super) workloads: Vec<Defined<Workload>>,
    /// Targets.
    pub(super) targets: Vec<Defined<Target>>,
    /// Rules.
    pub(super) rules: Vec<Defined<RuleRefs>>,
}

/// Checks one parsed file, appending its problems to `errors`.
pub(super) fn check_file(
    src: &Source<'_>,
    file: PolicyFile,
    trust_domain: Option<&str>,
    env: EnvLookup<'_>,
    errors: &mut Vec<PolicyError>,
) -> Checked {
    let mut c = Check { src, errors, env };
    Checked {
        workloads: file
            .workload
            .into_iter()
            .map(|w| c.workload(w.into_inner(), trust_domain))
            .collect(),
        targets: file
            .target
            .into_iter()
            .map(|t| c.target(t.into_inner()))
            .collect(),
        rules: file
            .rule
            .into_iter()
            .map(|r| c.rule(r.into_inner()))
            .collect(),
    }
}

/// Checks of one file, collecting errors.
pub(super) struct Check<'a, 'e> {
    /// The file.
    pub(super) src: &'a Source<'a>,
    /// Where problems go.
    pub(super) errors: &'e mut Vec<PolicyError>,
    /// The agent's environment, for `password_env`.
    pub(super) env: EnvLookup<'a>,
}

impl Check<'_, '_> {
    /// Records an error at `span`; returns `None` for use with `?`-style chains.
    pub(super) fn fail<T>(
        &mut self,
        span: std::ops::Range<usize>,
        reason: impl Into<String>,
    ) -> Option<T> {
        self.errors.push(self.src.error(span, reason));
        None
    }

    /// Checks a definition's name; returns it, where it is, and whether it is valid.
    fn name(&mut self, kind: &str, name: &Spanned<String>) -> (String, Location, bool) {
        let n = name.get_ref();
        let bad_char = n
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')));
        let problem = if n.is_empty() || n.len() > MAX_NAME_LEN {
            Some(format!(
                "{kind} name must be 1 to {MAX_NAME_LEN} characters long"
            ))
        } else {
            bad_char.map(|c| {
                format!("{kind} name {n:?}: {c:?} is not allowed (letters, digits, '.', '-', '_')")
            })
        };
        let ok = problem.is_none();
        if let Some(reason) = problem {
            self.fail::<()>(name.span(), reason);
        }
        (n.clone(), self.src.locate(name.span()), ok)
    }

    fn workload(&mut self, w: WorkloadDef, trust_domain: Option<&str>) -> Defined<Workload> {
        let (name, at, name_ok) = self.name("workload", &w.name);
        let spiffe_id = self.spiffe_id(&w.spiffe_id, trust_domain);
        let selector = self.selector(w.selector);
        let item = match (name_ok, spiffe_id, selector) {
            (true, Some(spiffe_id), Some(selector)) => Some(Workload {
                name: name.clone(),
                spiffe_id,
                mode: w.mode,
                priority: w.priority,
                description: w.description,
                selector,
            }),
            _ => None,
        };
        Defined { name, at, item }
    }

    fn spiffe_id(&mut self, s: &Spanned<String>, trust_domain: Option<&str>) -> Option<SpiffeId> {
        let id = match SpiffeId::parse(s.get_ref()) {
            Ok(id) => id,
            Err(e) => {
                return self.fail(
                    s.span(),
                    format!("invalid SPIFFE ID {:?}: {e}", s.get_ref()),
                );
            }
        };
        if id.path().is_empty() {
            return self.fail(
                s.span(),
                format!(
                    "SPIFFE ID {id} names a trust domain, not a workload: add a path, e.g. {id}/etl"
                ),
            );
        }
        if let Some(td) = trust_domain
            && id.trust_domain() != td
        {
            return self.fail(
                s.span(),
                format!(
                    "SPIFFE ID {id} is in trust domain {:?}, but the agent's trust domain is {td:?}",
                    id.trust_domain()
                ),
            );
        }
        Some(id)
    }

    fn selector(&mut self, s: Spanned<SelectorDef>) -> Option<Selector> {
        let span = s.span();
        let d = s.into_inner();
        let given = [
            d.cgroup.is_some(),
            d.systemd_unit.is_some(),
            d.uid.is_some(),
            d.gid.is_some(),
            d.exe.is_some(),
        ];
        if !given.contains(&true) {
            return self.fail(
                span,
                "selector is empty: give at least one of cgroup, systemd_unit, uid, gid, exe",
            );
        }
        let cgroup = d.cgroup.map(|g| self.glob("cgroup", &g, true));
        let systemd_unit = d.systemd_unit.map(|g| self.glob("systemd_unit", &g, false));
        let exe = d.exe.map(|g| self.glob("exe", &g, true));
        let (cgroup, systemd_unit, exe) = (flip(cgroup)?, flip(systemd_unit)?, flip(exe)?);
        Some(Selector {
            cgroup,
            systemd_unit,
            uid: d.uid.map(ids),
            gid: d.gid.map(ids),
            exe,
        })
    }

    /// Compiles a selector glob. Path globs (`paths`) must be absolute; a unit glob holds no `/`.
    fn glob(&mut self, key: &str, g: &Spanned<String>, paths: bool) -> Option<Pattern> {
        let text = g.get_ref();
        if paths && !(text.starts_with('/') || text.starts_with("**")) {
            return self.fail(
                g.span(),
                format!("{key} glob {text:?} must start with \"/\" (or \"**\")"),
            );
        }
        if !paths && (text.is_empty() || text.contains('/')) {
            return self.fail(
                g.span(),
                format!("{key} glob {text:?} must be a non-empty unit name pattern without \"/\""),
            );
        }
        match Pattern::new(text, paths) {
            Ok(p) => Some(p),
            Err(e) => self.fail(
                g.span(),
                format!("invalid {key} glob {text:?}: {}", e.kind()),
            ),
        }
    }

    fn target(&mut self, t: TargetDef) -> Defined<Target> {
        let (name, at, name_ok) = self.name("target", &t.name);
        let protocol = self.protocol(&t.protocol);
        let addresses = self.addresses(t.addresses);
        let postgres = match (protocol, t.postgres) {
            (Some(Protocol::Postgres), Some(pg)) => self
                .pg_target(pg, &t.protocol, addresses.as_deref())
                .map(Some),
            (Some(Protocol::Postgres), None) => self.fail(
                t.protocol.span(),
                "protocol \"postgres\" needs a [target.postgres] section with at least one \
                 [[target.postgres.credential]]",
            ),
            (Some(other), Some(_)) => self.fail(
                t.protocol.span(),
                format!(
                    "protocol \"{other}\" takes no [target.postgres] section (it is for \
                     protocol \"postgres\")"
                ),
            ),
            (None, _) | (Some(_), None) => Some(None),
        };
        let http = match (protocol, t.http) {
            (Some(Protocol::Http), Some(h)) => {
                self.http_target(h).map(|h| Some(std::sync::Arc::new(h)))
            }
            (Some(Protocol::Http), None) => self.fail(
                t.protocol.span(),
                "protocol \"http\" needs a [target.http] section, with at least `tls` (\"none\", \
                 \"originate\", \"terminate\" or \"passthrough\")",
            ),
            (Some(other), Some(_)) => self.fail(
                t.protocol.span(),
                format!(
                    "protocol \"{other}\" takes no [target.http] section (it is for protocol \
                     \"http\")"
                ),
            ),
            (None, _) | (Some(_), None) => Some(None),
        };
        let item = match (name_ok, protocol, addresses, postgres, http) {
            (true, Some(protocol), Some(addresses), Some(postgres), Some(http)) => Some(Target {
                name: name.clone(),
                protocol,
                addresses,
                description: t.description,
                postgres,
                http,
            }),
            _ => None,
        };
        Defined { name, at, item }
    }

    fn protocol(&mut self, p: &Spanned<String>) -> Option<Protocol> {
        match p.get_ref().as_str() {
            "tcp" => Some(Protocol::Tcp),
            "postgres" => Some(Protocol::Postgres),
            "http" => Some(Protocol::Http),
            planned if PLANNED_PROTOCOLS.contains(&planned) => self.fail(
                p.span(),
                format!(
                    "protocol {planned:?} is not supported yet: only {PROTOCOLS} are in this \
                     version"
                ),
            ),
            other => self.fail(
                p.span(),
                format!("unknown protocol {other:?}: expected {PROTOCOLS}"),
            ),
        }
    }

    fn addresses(&mut self, list: Spanned<Vec<Spanned<String>>>) -> Option<Vec<Address>> {
        if list.get_ref().is_empty() {
            return self.fail(
                list.span(),
                "addresses is empty: give at least one HOST:PORTS",
            );
        }
        let parsed: Vec<Option<Address>> = list
            .into_inner()
            .into_iter()
            .map(|a| match a.get_ref().parse::<Address>() {
                Ok(addr) => Some(addr),
                Err(e) => self.fail(a.span(), e.to_string()),
            })
            .collect();
        parsed.into_iter().collect()
    }

    fn rule(&mut self, r: RuleDef) -> Defined<RuleRefs> {
        let (name, at, name_ok) = self.name("rule", &r.name);
        let workloads = self.refs("workloads", r.workloads);
        let targets_at = self.src.locate(r.targets.span());
        let targets = self.refs("targets", r.targets);
        if r.postgres.is_some() && r.http.is_some() {
            self.fail::<()>(
                r.name.span(),
                format!(
                    "rule {:?} has both [rule.postgres] and [rule.http]: a rule decides \
                     statements or requests, write two rules",
                    r.name.get_ref()
                ),
            );
        }
        let postgres = match r.postgres {
            None => Some(None),
            Some(pg) => self.pg_rule(pg).map(|p| Some((p, targets_at.clone()))),
        };
        let http = match r.http {
            None => Some(None),
            Some(h) => self.http_rule(h).map(|h| Some((h, targets_at))),
        };
        let item = match (name_ok, workloads, targets, postgres, http) {
            (true, Some(workloads), Some(targets), Some(postgres), Some(http))
                if postgres.is_none() || http.is_none() =>
            {
                Some(RuleRefs {
                    workloads,
                    targets,
                    action: r.action,
                    description: r.description,
                    postgres,
                    http,
                })
            }
            _ => None,
        };
        Defined { name, at, item }
    }

    /// A rule's `workloads` or `targets` list: names, or `"*"` alone.
    fn refs(&mut self, key: &str, list: Spanned<Vec<Spanned<String>>>) -> Option<Refs> {
        let names = list.get_ref();
        if names.is_empty() {
            return self.fail(
                list.span(),
                format!("{key} is empty: give names, or [\"*\"] for all"),
            );
        }
        if let Some(star) = names.iter().find(|n| n.get_ref() == "*") {
            if names.len() > 1 {
                return self.fail(
                    star.span(),
                    format!("\"*\" in {key} means all and must be the only entry"),
                );
            }
            return Some(Refs::All);
        }
        Some(Refs::Some(
            list.into_inner()
                .into_iter()
                .map(|n| (n.get_ref().clone(), self.src.locate(n.span())))
                .collect(),
        ))
    }
}

/// Turns `key.map(check)` (`None`: key not given, `Some(None)`: check failed) into
/// `Some(value if given)` on success and `None` on failure, for use with `?`.
fn flip<T>(checked: Option<Option<T>>) -> Option<Option<T>> {
    match checked {
        None => Some(None),
        Some(None) => None,
        Some(Some(v)) => Some(Some(v)),
    }
}

/// Sorted, deduplicated ids.
fn ids(s: Spanned<Ids>) -> Vec<u32> {
    let mut v = s.into_inner().0;
    v.sort_unstable();
    v.dedup();
    v
}
