//! Policy files for the suites, written as TOML text (the format of `policies/README.md`).
use std::{fmt::Write as _, net::SocketAddr};

/// A policy under construction.
#[derive(Debug, Default, Clone)]
pub struct PolicyText(String);

/// `"<addr>"` as a policy address (`127.0.0.1:80`, `[::1]:80`).
pub fn addr(a: SocketAddr) -> String {
    a.to_string()
}

impl PolicyText {
    /// An empty policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// A workload selected by a cgroup glob; `audit` selects `mode = "audit"`.
    pub fn workload(mut self, name: &str, cgroup_glob: &str, audit: bool) -> Self {
        let mode = if audit { "audit" } else { "enforce" };
        let _ = write!(
            self.0,
            "[[workload]]\nname = {name:?}\nspiffe_id = \"spiffe://test.tollgate/{name}\"\n\
             mode = {mode:?}\n[workload.selector]\ncgroup = {cgroup_glob:?}\n\n"
        );
        self
    }

    /// A workload selected by a systemd unit glob.
    pub fn unit_workload(mut self, name: &str, unit_glob: &str) -> Self {
        let _ = write!(
            self.0,
            "[[workload]]\nname = {name:?}\nspiffe_id = \"spiffe://test.tollgate/{name}\"\n\
             mode = \"enforce\"\n[workload.selector]\nsystemd_unit = {unit_glob:?}\n\n"
        );
        self
    }

    /// A TCP target.
    pub fn target(mut self, name: &str, addresses: &[String]) -> Self {
        let _ = write!(
            self.0,
            "[[target]]\nname = {name:?}\nprotocol = \"tcp\"\naddresses = {addresses:?}\n\n"
        );
        self
    }

    /// A rule (`action`: allow, deny, approve).
    pub fn rule(mut self, name: &str, workloads: &[&str], targets: &[&str], action: &str) -> Self {
        let _ = write!(
            self.0,
            "[[rule]]\nname = {name:?}\nworkloads = {workloads:?}\ntargets = {targets:?}\n\
             action = {action:?}\n\n"
        );
        self
    }

    /// The TOML text.
    pub fn text(&self) -> &str {
        &self.0
    }
}
