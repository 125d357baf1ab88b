//! Tests of the PostgreSQL parts of policy: loading (keys, secrets, error locations, cross-file
//! checks, fingerprint, no secret in `Debug`) and the decisions (L4, login, statements).
mod evaluate;
mod load;

use std::{
    ffi::OsString,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use crate::policy::{Policy, PolicyErrors, load::load_str_env};

/// The agent's environment as tests see it: `PG_PW` and `PG_PW2` are set.
fn env(name: &str) -> Option<OsString> {
    match name {
        "PG_PW" => Some("env-password-1".into()),
        "PG_PW2" => Some("env-password-2".into()),
        _ => None,
    }
}

/// Loads `text` as `p.toml` with [`env`].
fn load(text: &str) -> Result<Policy, PolicyErrors> {
    load_str_env(Path::new("p.toml"), text, &env)
}

/// Loads `text`, which must be valid.
fn policy(text: &str) -> Policy {
    load(text).unwrap_or_else(|e| panic!("policy should load:\n{e}\n{text}"))
}

/// Writes a secret file with `mode` (tests run as root, so it is root-owned).
fn secret_file(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, content).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}
