//! `cargo xtask test`: setup, then formatting, clippy and the whole test suite. The root-only
//! integration tests are part of `cargo test --workspace`; as root (as in CI) they run.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::{
    setup,
    util::{self, cargo, checked, note, step, succeeds, timed},
};

/// Runs the suite; `args` go to `cargo test` (e.g. `config::` or `-- --nocapture`).
pub fn run_suite(args: &[String]) -> anyhow::Result<()> {
    timed("setup", setup::run)?;
    timed("cargo fmt --check", || {
        checked(&mut cargo(["fmt", "--all", "--", "--check"]))
    })?;
    timed("cargo clippy", || {
        checked(&mut cargo([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    timed("cargo test", || {
        step("cargo test");
        let mut test = cargo(["test", "--workspace"]);
        test.args(args);
        if let Some(dir) = system_python_dir()? {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut paths = vec![dir];
            paths.extend(std::env::split_paths(&path));
            test.env("PATH", std::env::join_paths(paths)?);
        }
        checked(&mut test)
    })
}

/// The system Python has the Debian modules the tests use (`python3-psycopg2`); a pyenv or
/// venv `python3` earlier on PATH does not. If so, returns a directory holding a `python3`
/// link to `/usr/bin/python3`, to put first on the tests' PATH.
fn system_python_dir() -> anyhow::Result<Option<PathBuf>> {
    const SYSTEM: &str = "/usr/bin/python3";
    let imports = |python: &str| succeeds(Command::new(python).args(["-c", "import psycopg2"]));
    if imports("python3") || !Path::new(SYSTEM).exists() || !imports(SYSTEM) {
        return Ok(None);
    }
    let dir = util::target_dir().join("xtask").join("python-bin");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let link = dir.join("python3");
    if link.read_link().ok() != Some(PathBuf::from(SYSTEM)) {
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link)?;
        }
        std::os::unix::fs::symlink(SYSTEM, &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
    }
    note(&format!(
        "python3 on PATH lacks psycopg2: tests use {SYSTEM} (via {})",
        dir.display()
    ));
    Ok(Some(dir))
}
