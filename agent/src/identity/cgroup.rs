//! The cgroup v2 hierarchy: where it is mounted, ids (directory inode numbers) and paths.
use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// Errors of this layer.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup v2 hierarchy found.
    #[error("no cgroup v2 mount found (looked at {0:?}); mount cgroup2 or set cgroup_root")]
    NotMounted(Vec<PathBuf>),
    /// A configured root is not a cgroup v2 mount.
    #[error("{0} is not a cgroup v2 mount (no cgroup.controllers)")]
    NotCgroup2(PathBuf),
    /// An I/O operation on a cgroup failed.
    #[error("cgroup {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    /// A path relative to the root is malformed.
    #[error("invalid cgroup path {0:?}: must start with '/' and not contain '..'")]
    BadPath(String),
}

/// A mounted cgroup v2 hierarchy.
#[derive(Debug, Clone)]
pub struct CgroupFs {
    root: PathBuf,
}

/// Where cgroup v2 is looked for, in order: unified hosts, then hybrid hosts.
const CANDIDATES: [&str; 2] = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];

impl CgroupFs {
    /// Uses `root` if given (must be cgroup v2), else detects the mount.
    pub fn detect(root: Option<&Path>) -> Result<Self, CgroupError> {
        if let Some(root) = root {
            if root.join("cgroup.controllers").is_file() {
                return Ok(Self { root: root.into() });
            }
            return Err(CgroupError::NotCgroup2(root.into()));
        }
        CANDIDATES
            .iter()
            .map(Path::new)
            .find(|p| p.join("cgroup.controllers").is_file())
            .map(|p| Self { root: p.into() })
            .ok_or_else(|| CgroupError::NotMounted(CANDIDATES.iter().map(PathBuf::from).collect()))
    }

    /// The mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Absolute directory of a cgroup path (`/a/b` → `<root>/a/b`).
    pub fn dir(&self, path: &str) -> Result<PathBuf, CgroupError> {
        if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
            return Err(CgroupError::BadPath(path.into()));
        }
        Ok(self.root.join(path.trim_start_matches('/')))
    }

    /// The id of a cgroup (the inode number of its directory).
    pub fn id_of(&self, path: &str) -> Result<u64, CgroupError> {
        let dir = self.dir(path)?;
        std::fs::metadata(&dir)
            .map(|m| m.ino())
            .map_err(|e| CgroupError::Io(dir, e))
    }

    /// Creates a cgroup (and parents) and returns its id.
    pub fn create(&self, path: &str) -> Result<u64, CgroupError> {
        let dir = self.dir(path)?;
        std::fs::create_dir_all(&dir).map_err(|e| CgroupError::Io(dir.clone(), e))?;
        self.id_of(path)
    }

    /// Removes an empty cgroup.
    pub fn remove(&self, path: &str) -> Result<(), CgroupError> {
        let dir = self.dir(path)?;
        std::fs::remove_dir(&dir).map_err(|e| CgroupError::Io(dir, e))
    }

    /// Removes a cgroup and the cgroups below it, deepest first; fails (leaving what it could
    /// not remove) while any of them holds a process.
    pub fn remove_tree(&self, path: &str) -> Result<(), CgroupError> {
        let mut below = self.walk(path);
        // Deepest first: longer paths below `path` before their parents.
        below.sort_by_key(|(_, p)| std::cmp::Reverse(p.matches('/').count()));
        for (_, p) in &below {
            self.remove(p)?;
        }
        Ok(())
    }

    /// Finds the path of cgroup `id` by walking the hierarchy (slow path: the process is gone).
    pub fn find_by_id(&self, id: u64) -> Option<String> {
        self.walk("/")
            .into_iter()
            .find(|(i, _)| *i == id)
            .map(|(_, p)| p)
    }

    /// Every cgroup at or below `path`, as (id, path).
    pub fn walk(&self, path: &str) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let Ok(dir) = self.dir(path) else {
            return out;
        };
        let mut stack = vec![(dir, path.trim_end_matches('/').to_owned())];
        while let Some((dir, rel)) = stack.pop() {
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            out.push((
                meta.ino(),
                if rel.is_empty() {
                    "/".into()
                } else {
                    rel.clone()
                },
            ));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    stack.push((entry.path(), format!("{rel}/{name}")));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_rejects_relative_and_dotdot() {
        let fs = CgroupFs {
            root: "/sys/fs/cgroup".into(),
        };
        assert!(fs.dir("a/b").is_err());
        assert!(fs.dir("/a/../b").is_err());
        assert_eq!(fs.dir("/a/b").unwrap(), PathBuf::from("/sys/fs/cgroup/a/b"));
        assert_eq!(fs.dir("/").unwrap(), PathBuf::from("/sys/fs/cgroup/"));
    }

    #[test]
    fn configured_root_must_be_cgroup2() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            CgroupFs::detect(Some(tmp.path())),
            Err(CgroupError::NotCgroup2(_))
        ));
        std::fs::write(tmp.path().join("cgroup.controllers"), "").unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        let fs = CgroupFs::detect(Some(tmp.path())).unwrap();
        let walked: Vec<String> = fs.walk("/").into_iter().map(|(_, p)| p).collect();
        assert!(walked.contains(&"/a/b".to_string()), "{walked:?}");
        let id = fs.id_of("/a/b").unwrap();
        assert_eq!(fs.find_by_id(id).as_deref(), Some("/a/b"));
    }
}
