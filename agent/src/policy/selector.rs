//! Workload selectors: which processes a workload covers, matched against a [`Subject`].
use std::{fmt, path::PathBuf};

use globset::{GlobBuilder, GlobMatcher};

/// What the proxy knows about the connecting process (input of pure matching).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// cgroup v2 path relative to the cgroup root, with a leading `/` (e.g.
    /// `/tollgate.slice/run-etl-42`).
    pub cgroup_path: String,
    /// systemd unit the cgroup belongs to (e.g. `etl-nightly.service`), if any.
    pub systemd_unit: Option<String>,
    /// Real uid of the task that called `connect()`.
    pub uid: u32,
    /// Real gid of the task that called `connect()`.
    pub gid: u32,
    /// Executable path, if it could be read.
    pub exe: Option<PathBuf>,
}

/// A compiled glob and its source text.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The glob as written.
    text: String,
    /// Its matcher.
    matcher: GlobMatcher,
}

impl Pattern {
    /// Compiles a glob (globset syntax). With `paths`, `*`, `?` and `[…]` do not match `/`, and
    /// `**` matches across directories.
    pub fn new(text: &str, paths: bool) -> Result<Self, globset::Error> {
        let glob = GlobBuilder::new(text)
            .literal_separator(paths)
            .backslash_escape(true)
            .build()?;
        Ok(Self {
            text: text.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    /// Whether `s` matches.
    pub fn is_match(&self, s: impl AsRef<std::path::Path>) -> bool {
        self.matcher.is_match(s)
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Which processes a workload covers: every given field must match; at least one is given.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Glob on the cgroup v2 path.
    pub cgroup: Option<Pattern>,
    /// Glob on the systemd unit name.
    pub systemd_unit: Option<Pattern>,
    /// Accepted uids.
    pub uid: Option<Vec<u32>>,
    /// Accepted gids.
    pub gid: Option<Vec<u32>>,
    /// Glob on the executable path.
    pub exe: Option<Pattern>,
}

impl Selector {
    /// Whether the process matches every given field. A field the subject lacks (no unit, no
    /// exe) does not match a selector that asks for it.
    pub fn matches(&self, s: &Subject) -> bool {
        self.matches_cgroup(&s.cgroup_path, s.systemd_unit.as_deref()) && self.matches_process(s)
    }

    /// Whether the process-level fields (`uid`, `gid`, `exe`) match; true when none is given.
    pub fn matches_process(&self, s: &Subject) -> bool {
        self.uid.as_ref().is_none_or(|ids| ids.contains(&s.uid))
            && self.gid.as_ref().is_none_or(|ids| ids.contains(&s.gid))
            && self
                .exe
                .as_ref()
                .is_none_or(|p| s.exe.as_ref().is_some_and(|e| p.is_match(e)))
    }

    /// Whether the cgroup-level fields (`cgroup`, `systemd_unit`) match; true when neither is
    /// given.
    pub fn matches_cgroup(&self, cgroup_path: &str, systemd_unit: Option<&str>) -> bool {
        self.cgroup.as_ref().is_none_or(|p| p.is_match(cgroup_path))
            && self
                .systemd_unit
                .as_ref()
                .is_none_or(|p| systemd_unit.is_some_and(|u| p.is_match(u)))
    }

    /// How many fields are given (a uid or gid list counts once).
    pub fn count(&self) -> usize {
        [
            self.cgroup.is_some(),
            self.systemd_unit.is_some(),
            self.uid.is_some(),
            self.gid.is_some(),
            self.exe.is_some(),
        ]
        .into_iter()
        .filter(|&given| given)
        .count()
    }
}

/// Canonical one-line form, e.g. `cgroup="/a/*" uid=[1000,1001]`.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let globs = [
            ("cgroup", &self.cgroup),
            ("systemd_unit", &self.systemd_unit),
            ("exe", &self.exe),
        ];
        for (key, p) in globs {
            if let Some(p) = p {
                parts.push(format!("{key}={:?}", p.as_str()));
            }
        }
        for (key, ids) in [("uid", &self.uid), ("gid", &self.gid)] {
            if let Some(ids) = ids {
                parts.push(format!("{key}={ids:?}"));
            }
        }
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str, paths: bool) -> Option<Pattern> {
        Some(Pattern::new(s, paths).unwrap())
    }

    fn subject(cgroup: &str, unit: Option<&str>, uid: u32, gid: u32, exe: Option<&str>) -> Subject {
        Subject {
            cgroup_path: cgroup.into(),
            systemd_unit: unit.map(Into::into),
            uid,
            gid,
            exe: exe.map(Into::into),
        }
    }

    #[test]
    fn selector_matching() {
        let run_etl = Selector {
            cgroup: pat("/tollgate.slice/run-etl-*", true),
            ..Default::default()
        };
        let ci = Selector {
            systemd_unit: pat("gitlab-runner*.service", false),
            ..Default::default()
        };
        let uids = Selector {
            uid: Some(vec![1000, 1001]),
            gid: Some(vec![100]),
            ..Default::default()
        };
        let py = Selector {
            cgroup: pat("/user.slice/**", true),
            exe: pat("/usr/bin/python3*", true),
            ..Default::default()
        };
        let etl = subject("/tollgate.slice/run-etl-42", None, 0, 0, None);
        let cases = [
            (&run_etl, etl.clone(), true),
            (
                &run_etl,
                subject("/tollgate.slice/run-etl-42/child", None, 0, 0, None),
                false,
            ),
            (
                &run_etl,
                subject("/tollgate.slice/run-web-1", None, 0, 0, None),
                false,
            ),
            (
                &run_etl,
                subject("tollgate.slice/run-etl-1", None, 0, 0, None),
                false,
            ),
            (
                &ci,
                subject(
                    "/system.slice/gitlab-runner.service",
                    Some("gitlab-runner.service"),
                    0,
                    0,
                    None,
                ),
                true,
            ),
            (
                &ci,
                subject("/system.slice/gitlab-runner.service", None, 0, 0, None),
                false,
            ),
            (
                &ci,
                subject("/system.slice/x.service", Some("x.service"), 0, 0, None),
                false,
            ),
            (&uids, subject("/", None, 1001, 100, None), true),
            (&uids, subject("/", None, 1002, 100, None), false),
            (&uids, subject("/", None, 1000, 101, None), false),
            (
                &py,
                subject(
                    "/user.slice/user-1000.slice/session-2.scope",
                    None,
                    0,
                    0,
                    Some("/usr/bin/python3.12"),
                ),
                true,
            ),
            (
                &py,
                subject(
                    "/user.slice/u/s",
                    None,
                    0,
                    0,
                    Some("/usr/local/bin/python3"),
                ),
                false,
            ),
            (&py, subject("/user.slice/u/s", None, 0, 0, None), false),
            (
                &py,
                subject("/system.slice/s", None, 0, 0, Some("/usr/bin/python3")),
                false,
            ),
        ];
        for (i, (sel, subj, want)) in cases.into_iter().enumerate() {
            assert_eq!(sel.matches(&subj), want, "case {i}: {sel} vs {subj:?}");
        }
    }

    #[test]
    fn cgroup_level_matching() {
        let uid_only = Selector {
            uid: Some(vec![1000]),
            ..Default::default()
        };
        let both = Selector {
            cgroup: pat("/system.slice/*", true),
            systemd_unit: pat("ci-*.service", false),
            ..Default::default()
        };
        let cases = [
            (&uid_only, "/anything", None, true),
            (
                &both,
                "/system.slice/ci-1.service",
                Some("ci-1.service"),
                true,
            ),
            (&both, "/system.slice/ci-1.service", None, false),
            (
                &both,
                "/user.slice/ci-1.service",
                Some("ci-1.service"),
                false,
            ),
        ];
        for (sel, cg, unit, want) in cases {
            assert_eq!(sel.matches_cgroup(cg, unit), want, "{sel} vs {cg} {unit:?}");
        }
    }

    #[test]
    fn count_and_display() {
        let s = Selector {
            cgroup: pat("/a/*", true),
            uid: Some(vec![1, 2]),
            ..Default::default()
        };
        assert_eq!(s.count(), 2);
        assert_eq!(s.to_string(), "cgroup=\"/a/*\" uid=[1, 2]");
        assert!(Pattern::new("/a/[", true).is_err());
    }
}
