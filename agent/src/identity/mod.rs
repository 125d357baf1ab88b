//! Who is connecting: the cgroup, process and systemd unit behind a redirected socket, turned
//! into a [`Subject`] that policy matches against workloads.
pub mod cgroup;
pub mod process;

use crate::sync::lock;
use std::{collections::HashMap, sync::Mutex};

use agent_common::ConnMeta;

use crate::policy::Subject;
pub use cgroup::{CgroupError, CgroupFs};

/// Bound of the cgroup id → path cache; cleared wholesale when full.
const PATH_CACHE_MAX: usize = 16_384;

/// Resolves connection metadata to a [`Subject`], caching cgroup paths by id.
pub struct Resolver {
    cgroupfs: CgroupFs,
    paths: Mutex<HashMap<u64, String>>,
}

impl Resolver {
    /// A resolver over the given cgroup v2 mount.
    pub fn new(cgroupfs: CgroupFs) -> Self {
        Self {
            cgroupfs,
            paths: Mutex::new(HashMap::new()),
        }
    }

    /// The cgroup v2 mount.
    pub fn cgroupfs(&self) -> &CgroupFs {
        &self.cgroupfs
    }

    /// Path (relative to the cgroup root, leading `/`) of cgroup `id`, learned from the
    /// process `pid` when it still runs, else by walking the hierarchy. The walk (a process
    /// that exited or moved before its connection was accepted) reads every cgroup directory:
    /// it runs on the blocking pool, never on the worker every connection shares.
    pub async fn cgroup_path(&self, id: u64, pid: Option<u32>) -> Option<String> {
        if let Some(p) = lock(&self.paths).get(&id) {
            return Some(p.clone());
        }
        let from_pid = pid
            .and_then(process::cgroup_of)
            .filter(|p| self.cgroupfs.id_of(p).ok() == Some(id));
        let path = match from_pid {
            Some(p) => p,
            None => {
                let fs = self.cgroupfs.clone();
                tokio::task::spawn_blocking(move || fs.find_by_id(id))
                    .await
                    .ok()
                    .flatten()?
            }
        };
        let mut cache = lock(&self.paths);
        if cache.len() >= PATH_CACHE_MAX {
            cache.clear();
        }
        cache.insert(id, path.clone());
        Some(path)
    }

    /// Remembers a path learned elsewhere (a cgroup the agent created itself).
    pub fn remember(&self, id: u64, path: String) {
        lock(&self.paths).insert(id, path);
    }

    /// Forgets a cgroup (removed).
    pub fn forget(&self, id: u64) {
        lock(&self.paths).remove(&id);
    }

    /// The subject behind a redirected connection.
    pub async fn subject(&self, meta: &ConnMeta) -> Subject {
        let cgroup_path = self
            .cgroup_path(meta.cgroup_id, Some(meta.tgid))
            .await
            .unwrap_or_default();
        Subject {
            systemd_unit: process::systemd_unit(&cgroup_path).map(str::to_owned),
            cgroup_path,
            uid: meta.uid,
            gid: meta.gid,
            exe: process::exe_of(meta.tgid),
        }
    }
}
