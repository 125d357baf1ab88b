//! Enrollment: which cgroups go through the proxy, and which workload a connection belongs to.
//!
//! A cgroup is *enrolled* when `tollgate run` bound it (or a cgroup above it) to a workload, or
//! when some workload's cgroup-level selectors (cgroup glob, systemd unit) could match it.
//! Connections of enrolled cgroups are redirected; the workload itself is decided per
//! connection, because uid, gid and exe selectors are per process.
//!
//! A binding lasts as long as its cgroup: it is dropped when `tollgate run`'s command ended and
//! the cgroup (with any cgroup the command made below it) is gone, kept while a process the
//! command left behind still runs there, and made again from the cgroup's name
//! (`run-<workload>-<12 hex digits>`, root's directories only) when the agent starts. A task of
//! a run keeps its workload whether the command exited first or the agent restarted (while no
//! agent runs, `fail_mode` decides, as for every enrolled task).
use crate::sync::lock;
use std::{collections::HashMap, sync::Mutex};

use crate::{
    identity::process::systemd_unit,
    policy::{Policy, Subject, Workload},
};

/// The workload a connection belongs to.
#[derive(Debug)]
pub enum WorkloadMatch<'p> {
    /// A workload matched.
    Workload(&'p Workload),
    /// The cgroup was bound by `tollgate run` to a workload whose other selectors (uid, gid,
    /// exe) do not match this process, or that no longer exists: refused (fail closed).
    BindingMismatch(String),
    /// The cgroup could not be resolved to a path (it vanished): refused (fail closed).
    Unidentified,
    /// No workload: the connection is not subject to policy.
    None,
}

/// Bindings made by `tollgate run`: cgroup id → (cgroup path, workload name).
#[derive(Default)]
pub struct Enrollment {
    bindings: Mutex<HashMap<u64, (String, String)>>,
}

/// The workload a run cgroup's last path component names: `run-<workload>-<12 hex digits>`.
pub fn run_workload(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("run-")?;
    let (workload, id) = rest.rsplit_once('-')?;
    let valid = !workload.is_empty()
        && workload
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && id.len() == 12
        && id.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then_some(workload)
}

impl Enrollment {
    /// The bindings of the run cgroups `tollgate run` made below `run_cgroup` that are still
    /// there (`walk`: `(id, path)` of every cgroup at or below it): each child named
    /// `run-<workload>-<12 hex digits>` is bound to that workload. What a previous agent bound
    /// stays bound across a restart, so its processes never go direct.
    pub fn restore(&self, run_cgroup: &str, walk: &[(u64, String)]) -> usize {
        let parent = run_cgroup.trim_end_matches('/');
        let mut b = lock(&self.bindings);
        let mut n = 0;
        for (id, path) in walk {
            let Some(name) = path
                .strip_prefix(parent)
                .and_then(|r| r.strip_prefix('/'))
                .filter(|r| !r.contains('/'))
            else {
                continue;
            };
            if let Some(workload) = run_workload(name) {
                b.insert(*id, (path.clone(), workload.to_owned()));
                n += 1;
            }
        }
        n
    }

    /// Binds cgroup `id` at `path` to `workload`.
    pub fn bind(&self, id: u64, path: String, workload: String) {
        lock(&self.bindings).insert(id, (path, workload));
    }

    /// The id of the cgroup bound at `path`.
    pub fn bound_at(&self, path: &str) -> Option<u64> {
        lock(&self.bindings)
            .iter()
            .find(|(_, (p, _))| p == path)
            .map(|(id, _)| *id)
    }

    /// The paths of every binding.
    pub fn bound_paths(&self) -> Vec<String> {
        lock(&self.bindings)
            .values()
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Removes a binding; returns its cgroup's id.
    pub fn unbind_path(&self, path: &str) -> Option<u64> {
        let mut b = lock(&self.bindings);
        let id = b.iter().find(|(_, (p, _))| p == path).map(|(id, _)| *id)?;
        b.remove(&id);
        Some(id)
    }

    /// The workload name cgroup `id` at `path` is bound to: its own binding, or that of the
    /// nearest run cgroup above it (a command may make cgroups of its own below its run cgroup).
    pub fn binding(&self, id: u64, path: &str) -> Option<String> {
        let b = lock(&self.bindings);
        if let Some((_, w)) = b.get(&id) {
            return Some(w.clone());
        }
        b.values()
            .filter(|(p, _)| {
                path.len() > p.len()
                    && path.starts_with(p.as_str())
                    && path[p.len()..].starts_with('/')
            })
            .max_by_key(|(p, _)| p.len())
            .map(|(_, w)| w.clone())
    }

    /// Whether connections of cgroup `id` at `path` go through the proxy.
    pub fn enrolled(&self, policy: &Policy, id: u64, path: &str) -> bool {
        self.binding(id, path).is_some() || policy.cgroup_enrolled(path, systemd_unit(path))
    }

    /// The workload of a connection from cgroup `id` by `subject`.
    pub fn workload<'p>(
        &self,
        policy: &'p Policy,
        id: u64,
        subject: &Subject,
    ) -> WorkloadMatch<'p> {
        if let Some(name) = self.binding(id, &subject.cgroup_path) {
            return match policy.workload(&name) {
                Some(w) if w.matches_process(subject) => WorkloadMatch::Workload(w),
                _ => WorkloadMatch::BindingMismatch(name),
            };
        }
        if subject.cgroup_path.is_empty() {
            return WorkloadMatch::Unidentified;
        }
        match policy.match_workload(subject) {
            Some(w) => WorkloadMatch::Workload(w),
            None => WorkloadMatch::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_cgroup_names_give_their_workload() {
        assert_eq!(run_workload("run-etl-0123456789ab"), Some("etl"));
        assert_eq!(
            run_workload("run-etl-nightly-0123456789ab"),
            Some("etl-nightly")
        );
        for name in [
            "run-etl",
            "run--0123456789ab",
            "run-etl-0123",
            "run-e/t-0123456789ab",
            "etl-0123456789ab",
            "run-etl-0123456789xz",
        ] {
            assert_eq!(run_workload(name), None, "{name}");
        }
    }

    #[test]
    fn run_cgroups_are_bound_again_and_bind_the_cgroups_below_them() {
        let e = Enrollment::default();
        let walk = [
            (1, "/tollgate.slice".to_owned()),
            (2, "/tollgate.slice/run-etl-0123456789ab".to_owned()),
            (3, "/tollgate.slice/run-etl-0123456789ab/inner".to_owned()),
            (4, "/tollgate.slice/other".to_owned()),
            (5, "/tollgate.slice/other/run-x-0123456789ab".to_owned()),
        ];
        assert_eq!(e.restore("/tollgate.slice/", &walk), 1);
        assert_eq!(
            e.binding(2, "/tollgate.slice/run-etl-0123456789ab")
                .as_deref(),
            Some("etl")
        );
        // A cgroup the command made below its run cgroup is the run's.
        assert_eq!(
            e.binding(3, "/tollgate.slice/run-etl-0123456789ab/inner")
                .as_deref(),
            Some("etl")
        );
        assert_eq!(
            e.binding(9, "/tollgate.slice/run-etl-0123456789ab/a/b")
                .as_deref(),
            Some("etl")
        );
        // Not a prefix by name alone, nor what is not a run cgroup.
        assert_eq!(e.binding(8, "/tollgate.slice/run-etl-0123456789abc"), None);
        assert_eq!(e.binding(4, "/tollgate.slice/other"), None);
        assert_eq!(
            e.binding(5, "/tollgate.slice/other/run-x-0123456789ab"),
            None
        );
        assert_eq!(e.bound_at("/tollgate.slice/run-etl-0123456789ab"), Some(2));
    }
}
