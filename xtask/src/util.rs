//! Helpers shared by the tasks: the repository root, running commands loudly or quietly.
use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

/// The repository root (the parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

/// The cargo target directory: `$CARGO_TARGET_DIR` or `<repo>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                repo_root().join(dir)
            }
        }
        None => repo_root().join("target"),
    }
}

/// Prints the heading of a step.
pub fn step(what: &str) {
    println!("==> {what}");
}

/// Prints a detail of the current step.
pub fn note(what: &str) {
    println!("    {what}");
}

/// Runs `phase` under a heading and prints how long it took, failed or not.
pub fn timed<T>(name: &str, phase: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let start = std::time::Instant::now();
    let result = phase();
    let outcome = if result.is_ok() { "done" } else { "FAILED" };
    println!(
        "==> {name}: {outcome} in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    result
}

/// A `cargo` command through rustup's proxy on PATH (so `+nightly` and toolchain files work),
/// run from the repository root.
pub fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("cargo");
    cmd.args(args).current_dir(repo_root());
    cmd
}

/// Runs `cmd` with inherited stdio after printing it; fails unless it exits 0.
pub fn checked(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = show(cmd);
    println!("    $ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Whether `cmd` runs and exits 0; its output is discarded.
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Standard output of `cmd` (trimmed) if it exits 0.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let shown = show(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !out.status.success() {
        bail!("`{shown}` failed ({})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Whether this process runs as root (effective uid 0, from `/proc/self/status`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| effective_uid(&s) == Some(0))
}

/// The effective uid from the text of `/proc/<pid>/status` (`Uid: real effective saved fs`).
fn effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
}

/// `cmd` as a shell-like line, environment overrides first.
fn show(cmd: &Command) -> String {
    let envs = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())));
    let words = std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    envs.chain(words).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_uid_is_the_second_field() {
        let cases = [
            ("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t1\t1\t1\t1\n", Some(0)),
            ("Uid:\t0\t1000\t1000\t1000\n", Some(1000)),
            ("Name:\tx\n", None),
            ("Uid:\t0\n", None),
        ];
        for (status, want) in cases {
            assert_eq!(effective_uid(status), want, "{status:?}");
        }
    }

    #[test]
    fn show_puts_env_first() {
        let mut cmd = Command::new("cargo");
        cmd.args(["install", "x"]).env("A", "b");
        assert_eq!(show(&cmd), "A=b cargo install x");
    }

    #[test]
    fn repo_root_holds_the_workspace() {
        assert!(repo_root().join("Cargo.toml").is_file());
        assert!(repo_root().join("xtask").is_dir());
    }
}
