//! `cargo xtask run`: setup, then the agent in the foreground with the repository's policies
//! and a state directory (audit database, admin socket) under `<repo>/.state`.
use std::os::unix::process::CommandExt as _;

use anyhow::Context as _;

use crate::{
    setup,
    util::{cargo, repo_root, step},
};

/// Runs the agent; `args` are appended to `tollgate agent`. Does not return on success: the
/// process becomes `cargo run`, so Ctrl-C and the exit status reach the agent directly.
pub fn run_agent(args: &[String]) -> anyhow::Result<()> {
    setup::run()?;
    let root = repo_root();
    let state = root.join(".state");
    std::fs::create_dir_all(&state)
        .with_context(|| format!("cannot create {}", state.display()))?;
    let mut agent = cargo(["run", "--release", "-p", "tollgate", "--", "agent"]);
    agent
        .arg("--policy-dir")
        .arg(root.join("policies"))
        .arg("--state-dir")
        .arg(&state)
        .args(args);
    step("starting the agent (Ctrl-C stops it)");
    let err = agent.exec();
    Err(err).context("cannot start `cargo run -p tollgate`")
}
