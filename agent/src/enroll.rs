//! Enrollment: which cgroups go through the proxy, and which workload a connection belongs to.
//!
//! A cgroup is *enrolled* when `tollgate run` bound it to a workload, or when some workload's
//! cgroup-level selectors (cgroup glob, systemd unit) could match it. Connections of enrolled
//! cgroups are redirected; the workload itself is decided per connection, because uid, gid and
//! exe selectors are per process.
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

impl Enrollment {
    /// Binds cgroup `id` at `path` to `workload`.
    pub fn bind(&self, id: u64, path: String, workload: String) {
        lock(&self.bindings).insert(id, (path, workload));
    }

    /// Removes a binding; returns its path.
    pub fn unbind_path(&self, path: &str) -> Option<u64> {
        let mut b = lock(&self.bindings);
        let id = b.iter().find(|(_, (p, _))| p == path).map(|(id, _)| *id)?;
        b.remove(&id);
        Some(id)
    }

    /// The workload name `id` is bound to.
    pub fn binding(&self, id: u64) -> Option<String> {
        lock(&self.bindings).get(&id).map(|(_, w)| w.clone())
    }

    /// Whether connections of cgroup `id` at `path` go through the proxy.
    pub fn enrolled(&self, policy: &Policy, id: u64, path: &str) -> bool {
        self.binding(id).is_some() || policy.cgroup_enrolled(path, systemd_unit(path))
    }

    /// The workload of a connection from cgroup `id` by `subject`.
    pub fn workload<'p>(
        &self,
        policy: &'p Policy,
        id: u64,
        subject: &Subject,
    ) -> WorkloadMatch<'p> {
        if let Some(name) = self.binding(id) {
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
