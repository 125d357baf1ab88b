//! The on-disk format of one policy file, as written (semantic checks are in `compile`).
use std::fmt;

use serde::{
    Deserialize, Deserializer,
    de::{self, SeqAccess, Visitor},
};
use toml::Spanned;

use super::{
    http::file::{HttpRuleDef, HttpTargetDef},
    model::{Mode, Verdict},
    pg::file::{PgRuleDef, PgTargetDef},
};

/// One policy file: any number of workloads, targets and rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyFile {
    /// `[[workload]]` tables.
    #[serde(default)]
    pub(super) workload: Vec<Spanned<WorkloadDef>>,
    /// `[[target]]` tables.
    #[serde(default)]
    pub(super) target: Vec<Spanned<TargetDef>>,
    /// `[[rule]]` tables.
    #[serde(default)]
    pub(super) rule: Vec<Spanned<RuleDef>>,
}

/// `[[workload]]`: a set of processes and the SPIFFE ID they get.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkloadDef {
    /// Unique across all files; `[A-Za-z0-9._-]`, at most 64 characters.
    pub(super) name: Spanned<String>,
    /// Free text.
    pub(super) description: Option<String>,
    /// SPIFFE ID of the workload (with a path; in the agent's trust domain if one is set).
    pub(super) spiffe_id: Spanned<String>,
    /// "enforce" (default) or "audit".
    #[serde(default)]
    pub(super) mode: Mode,
    /// Higher is matched first (default 0).
    #[serde(default)]
    pub(super) priority: i32,
    /// Which processes: every given key must match; at least one key.
    pub(super) selector: Spanned<SelectorDef>,
}

/// `[workload.selector]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SelectorDef {
    /// Glob on the cgroup v2 path, relative to the cgroup root, starting with `/`.
    pub(super) cgroup: Option<Spanned<String>>,
    /// Glob on the systemd unit name.
    pub(super) systemd_unit: Option<Spanned<String>>,
    /// A uid or a list of uids.
    pub(super) uid: Option<Spanned<Ids>>,
    /// A gid or a list of gids.
    pub(super) gid: Option<Spanned<Ids>>,
    /// Glob on the absolute executable path.
    pub(super) exe: Option<Spanned<String>>,
}

/// `[[target]]`: a named set of destinations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TargetDef {
    /// Unique across all files; `[A-Za-z0-9._-]`, at most 64 characters.
    pub(super) name: Spanned<String>,
    /// Free text.
    pub(super) description: Option<String>,
    /// Protocol spoken there: "tcp", "postgres" or "http".
    pub(super) protocol: Spanned<String>,
    /// `HOST:PORTS` strings; at least one.
    pub(super) addresses: Spanned<Vec<Spanned<String>>>,
    /// `[target.postgres]`: required for postgres targets, refused for others. Not `Spanned`:
    /// toml cannot span a table created implicitly (by `[[target.postgres.credential]]` alone).
    pub(super) postgres: Option<PgTargetDef>,
    /// `[target.http]`: required for http targets, refused for others (not `Spanned`, as
    /// `postgres`).
    pub(super) http: Option<HttpTargetDef>,
}

/// `[[rule]]`: what some workloads may do with some targets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleDef {
    /// Unique across all files; `[A-Za-z0-9._-]`, at most 64 characters.
    pub(super) name: Spanned<String>,
    /// Free text.
    pub(super) description: Option<String>,
    /// Workload names, or `["*"]` for all.
    pub(super) workloads: Spanned<Vec<Spanned<String>>>,
    /// Target names, or `["*"]` for all.
    pub(super) targets: Spanned<Vec<Spanned<String>>>,
    /// "allow", "deny" or "approve".
    pub(super) action: Verdict,
    /// `[rule.postgres]`: makes it a statement rule; only for postgres targets. Not `Spanned`
    /// (see `TargetDef::postgres`).
    pub(super) postgres: Option<PgRuleDef>,
    /// `[rule.http]`: makes it a request rule; only for http targets (not `Spanned`, as
    /// `postgres`).
    pub(super) http: Option<HttpRuleDef>,
}

/// A uid/gid or a list of them, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ids(pub(super) Vec<u32>);

impl<'de> Deserialize<'de> for Ids {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IdsVisitor)
    }
}

struct IdsVisitor;

impl<'de> Visitor<'de> for IdsVisitor {
    type Value = Ids;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id (0 to 4294967294) or a list of ids")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ids, E> {
        Ok(Ids(vec![id(v)?]))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ids, E> {
        Ok(Ids(vec![id(i64::try_from(v).unwrap_or(-1))?]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ids, A::Error> {
        let mut ids = Vec::new();
        while let Some(v) = seq.next_element::<i64>()? {
            ids.push(id(v)?);
        }
        if ids.is_empty() {
            return Err(de::Error::custom("the list of ids is empty"));
        }
        Ok(Ids(ids))
    }
}

/// A uid or gid; `u32::MAX` is the kernel's "no id" and not accepted.
fn id<E: de::Error>(v: i64) -> Result<u32, E> {
    match u32::try_from(v) {
        Ok(id) if id != u32::MAX => Ok(id),
        _ => Err(E::custom(format!(
            "id {v} is out of range (0 to 4294967294)"
        ))),
    }
}
