//! Tests of the HTTP parts of policy: loading (keys, secrets, error locations, cross-file
//! checks, fingerprint, no secret in `Debug`) and the decisions (L4, requests).
mod evaluate;
mod headers;
mod load;

use std::{
    ffi::OsString,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use crate::policy::{Policy, PolicyError, PolicyErrors, load::load_str_env};

/// The agent's environment as tests see it.
fn env(name: &str) -> Option<OsString> {
    match name {
        "API_TOKEN" => Some("env-token-1".into()),
        "API_TOKEN2" => Some("env-token-2".into()),
        "BAD_TOKEN" => Some("line1\r\nX-Injected: 1".into()),
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

/// Loads `text`, which must not be valid: its errors.
fn errors_of(text: &str) -> Vec<PolicyError> {
    match load(text) {
        Ok(_) => panic!("should not load:\n{text}"),
        Err(e) => e.0,
    }
}

/// Writes a secret file with `mode` (tests run as root, so it is root-owned).
fn secret_file(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, content).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}
