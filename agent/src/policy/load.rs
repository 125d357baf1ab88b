//! Loading: read the `*.toml` files of a directory, parse and check each one, then check across
//! files (duplicate names, rules naming unknown workloads or targets) and build the [`Policy`].
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use tracing::debug;

use super::{
    compile::{Checked, Defined, Refs, check_file},
    error::{Location, PolicyError, PolicyErrors, Source},
    file::PolicyFile,
    model::{Names, Policy, Protocol, Rule, Target},
    secret::{EnvLookup, process_env},
};

/// Loads every `*.toml` file of `dir` (not hidden ones, not subdirectories), in file name order.
/// `trust_domain`, when set, is the trust domain every workload's SPIFFE ID must belong to.
/// Collects every problem of every file. A directory without policy files gives an empty policy
/// (no workload: nothing is enrolled).
pub fn load_dir(dir: &Path, trust_domain: Option<&str>) -> Result<Policy, PolicyErrors> {
    let mut errors = Vec::new();
    let files = policy_files(dir).map_err(|e| PolicyErrors(vec![e]))?;
    let mut sources = Vec::with_capacity(files.len());
    for path in files {
        match std::fs::read_to_string(&path) {
            Ok(text) => sources.push((path, text)),
            Err(e) => errors.push(PolicyError::whole_file(&path, format!("cannot read: {e}"))),
        }
    }
    let policy = load_sources(&sources, trust_domain, &process_env, errors)?;
    debug!(
        dir = %dir.display(),
        files = sources.len(),
        fingerprint = %policy.fingerprint(),
        "policy loaded"
    );
    Ok(policy)
}

/// Loads one policy file's text; `file` is only used in errors.
pub fn load_str(
    file: &Path,
    text: &str,
    trust_domain: Option<&str>,
) -> Result<Policy, PolicyErrors> {
    load_sources(
        &[(file.to_owned(), text.to_owned())],
        trust_domain,
        &process_env,
        Vec::new(),
    )
}

/// [`load_str`] with `env` standing for the agent's environment (`password_env`).
#[cfg(test)]
pub(super) fn load_str_env(
    file: &Path,
    text: &str,
    env: EnvLookup<'_>,
) -> Result<Policy, PolicyErrors> {
    load_sources(&[(file.to_owned(), text.to_owned())], None, env, Vec::new())
}

/// The policy files of `dir`, sorted: regular files (or links to them) named `*.toml`, not
/// starting with `.`.
fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let unreadable = |e: std::io::Error| {
        PolicyError::whole_file(dir, format!("cannot read the policy directory: {e}"))
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".toml") {
            continue;
        }
        // Follows symlinks; a dangling link is reported when it is read.
        if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

/// Parses and checks `sources` (in order), then links them into a policy.
fn load_sources(
    sources: &[(PathBuf, String)],
    trust_domain: Option<&str>,
    env: EnvLookup<'_>,
    mut errors: Vec<PolicyError>,
) -> Result<Policy, PolicyErrors> {
    let mut all = Checked::default();
    for (path, text) in sources {
        let src = Source { file: path, text };
        let parsed: PolicyFile = match toml::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let at = e.span().unwrap_or(0..0);
                // One error per line: toml's messages may span several.
                let reason: Vec<&str> = e.message().lines().map(str::trim).collect();
                errors.push(src.error(at, reason.join("; ")));
                continue;
            }
        };
        let checked = check_file(&src, parsed, trust_domain, env, &mut errors);
        all.workloads.extend(checked.workloads);
        all.targets.extend(checked.targets);
        all.rules.extend(checked.rules);
    }
    let policy = link(all, &mut errors);
    if errors.is_empty() {
        return Ok(policy);
    }
    // Stable: errors at the same place keep the order they were found in.
    errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    Err(PolicyErrors(errors))
}

/// Cross-file checks: unique names per kind, rules naming defined workloads and targets,
/// statement rules naming postgres targets only, request rules naming http targets that see
/// requests only.
fn link(all: Checked, errors: &mut Vec<PolicyError>) -> Policy {
    let workload_names = unique_names("workload", &all.workloads, errors);
    let target_names = unique_names("target", &all.targets, errors);
    let _ = unique_names("rule", &all.rules, errors);
    let valid_targets: Vec<&Target> = all.targets.iter().filter_map(|d| d.item.as_ref()).collect();

    let mut rules = Vec::new();
    for Defined { name, item, .. } in all.rules {
        let Some(r) = item else { continue };
        let workloads = resolve(&name, "workload", r.workloads, &workload_names, errors);
        let targets = resolve(&name, "target", r.targets, &target_names, errors);
        let (Some(workloads), Some(targets)) = (workloads, targets) else {
            continue;
        };
        let named = match targets {
            Names::All => "targets = [\"*\"] includes",
            Names::Some(_) => "it names",
        };
        let others = |fits: &dyn Fn(&Target) -> bool| -> String {
            valid_targets
                .iter()
                .filter(|t| targets.includes(&t.name) && !fits(t))
                .map(|t| match &t.http {
                    Some(h) => format!("{:?} ({}, tls = \"{}\")", t.name, t.protocol, h.tls),
                    None => format!("{:?} ({})", t.name, t.protocol),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some((_, at)) = &r.postgres {
            let not_pg = others(&|t| t.protocol == Protocol::Postgres);
            if !not_pg.is_empty() {
                errors.push(at.error(format!(
                    "rule {name:?} has a [rule.postgres] section, but {named} target {not_pg} \
                     that is not a postgres target: statement rules apply to postgres targets \
                     only"
                )));
                continue;
            }
        }
        if let Some((_, at)) = &r.http {
            let not_http = others(&|t| t.http.as_ref().is_some_and(|h| h.tls.sees_requests()));
            if !not_http.is_empty() {
                errors.push(at.error(format!(
                    "rule {name:?} has a [rule.http] section, but {named} target {not_http} \
                     where tollgate sees no request: request rules apply to http targets whose \
                     tls is not \"passthrough\""
                )));
                continue;
            }
        }
        rules.push(Rule {
            name,
            workloads,
            targets,
            action: r.action,
            description: r.description,
            postgres: r.postgres.map(|(pg, _)| pg),
            http: r.http.map(|(h, _)| h),
        });
    }
    let workloads = all.workloads.into_iter().filter_map(|d| d.item).collect();
    let targets = all.targets.into_iter().filter_map(|d| d.item).collect();
    Policy::new(workloads, targets, rules)
}

/// Names defined (even with errors), with where first defined; duplicates are errors at the
/// later definition.
fn unique_names<'a, T>(
    kind: &str,
    defs: &'a [Defined<T>],
    errors: &mut Vec<PolicyError>,
) -> HashMap<&'a str, &'a Location> {
    let mut seen: HashMap<&str, &Location> = HashMap::new();
    for d in defs {
        match seen.get(d.name.as_str()) {
            Some(first) => errors.push(d.at.error(format!(
                "duplicate {kind} name {:?} (first defined at {first})",
                d.name
            ))),
            None => {
                seen.insert(&d.name, &d.at);
            }
        }
    }
    seen
}

/// A rule's names, each checked against the defined ones.
fn resolve(
    rule: &str,
    kind: &str,
    refs: Refs,
    defined: &HashMap<&str, &Location>,
    errors: &mut Vec<PolicyError>,
) -> Option<Names> {
    let Refs::Some(refs) = refs else {
        return Some(Names::All);
    };
    let mut ok = true;
    let mut names = Vec::with_capacity(refs.len());
    for (name, at) in refs {
        if defined.contains_key(name.as_str()) {
            names.push(name);
        } else {
            ok = false;
            errors.push(at.error(format!("rule {rule:?} names unknown {kind} {name:?}")));
        }
    }
    names.sort();
    names.dedup();
    ok.then_some(Names::Some(names))
}
