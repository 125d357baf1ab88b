//! `cargo xtask install`: a release build installed on this host. The binary and the systemd
//! unit are replaced; the config file and the policy directory are written only when absent,
//! so a reinstall keeps local changes. Does not run setup (no test packages on a server);
//! building needs the nightly toolchain and bpf-linker that `cargo xtask setup` installs.
use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::util::{self, cargo, checked, note, step};

const BINARY: &str = "/usr/local/bin/tollgate";
const CONFIG: &str = "/etc/tollgate/tollgate.toml";
const POLICY_DIR: &str = "/etc/tollgate/policies.d";
const UNIT: &str = "/etc/systemd/system/tollgate.service";

/// The example main config (every key, defaults commented).
const CONFIG_TEXT: &str = include_str!("../files/tollgate.toml");
/// The systemd unit.
const UNIT_TEXT: &str = include_str!("../files/tollgate.service");

/// Builds and installs.
pub fn install() -> anyhow::Result<()> {
    if !util::is_root() {
        bail!("cargo xtask install writes to /usr/local/bin and /etc: run it as root");
    }
    step("release build");
    checked(&mut cargo(["build", "--release", "-p", "tollgate"]))?;

    step("installing");
    let built = util::target_dir().join("release").join("tollgate");
    let bytes = fs::read(&built).with_context(|| format!("cannot read {}", built.display()))?;
    replace_file(Path::new(BINARY), &bytes, 0o755)?;
    note(BINARY);

    if Path::new(CONFIG).exists() {
        note(&format!("{CONFIG}: exists, kept"));
    } else {
        replace_file(Path::new(CONFIG), CONFIG_TEXT.as_bytes(), 0o644)?;
        note(&format!("{CONFIG}: example written"));
    }

    if Path::new(POLICY_DIR).exists() {
        note(&format!("{POLICY_DIR}: exists, kept"));
    } else {
        let policies = repo_policies()?;
        for src in &policies {
            let name = src.file_name().context("policy file without a name")?;
            let text = fs::read(src).with_context(|| format!("cannot read {}", src.display()))?;
            replace_file(&Path::new(POLICY_DIR).join(name), &text, 0o644)?;
        }
        note(&format!(
            "{POLICY_DIR}: {} example policies from policies/",
            policies.len()
        ));
    }

    if Path::new("/etc/systemd").is_dir() {
        replace_file(Path::new(UNIT), UNIT_TEXT.as_bytes(), 0o644)?;
        note(UNIT);
        // Only where systemd is the running init.
        if Path::new("/run/systemd/system").is_dir() {
            checked(Command::new("systemctl").arg("daemon-reload"))?;
        }
        note("start it with: systemctl enable --now tollgate");
    } else {
        note("no /etc/systemd: no unit installed; start `tollgate agent` from your init system");
    }
    Ok(())
}

/// The `*.toml` files of `<repo>/policies`, sorted.
fn repo_policies() -> anyhow::Result<Vec<PathBuf>> {
    let dir = util::repo_root().join("policies");
    let mut files = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Writes `bytes` to `path` with `mode` through a temporary file and a rename, so that a
/// running binary or a reader never sees half a file. Creates the parent directories.
fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let parent = path.parent().context("path without a parent")?;
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let name = path.file_name().context("path without a file name")?;
    let tmp = parent.join(format!(".{}.xtask-tmp", name.to_string_lossy()));
    fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot move into {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_file_writes_mode_and_content() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-install-{}", std::process::id()));
        let path = dir.join("sub/file");
        replace_file(&path, b"one", 0o640)?;
        replace_file(&path, b"two", 0o755)?;
        assert_eq!(fs::read(&path)?, b"two");
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o755);
        // The temporary file was renamed away.
        assert_eq!(fs::read_dir(dir.join("sub"))?.count(), 1);
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// Every key of the example config, set or commented out, is a field of
    /// `agent/src/config.rs`'s `Config` (which denies unknown keys), and the file is TOML.
    #[test]
    fn example_config_keys_exist_in_config_rs() -> anyhow::Result<()> {
        let config_rs = fs::read_to_string(util::repo_root().join("agent/src/config.rs"))?;
        let parsed: toml::Table = toml::from_str(CONFIG_TEXT)?;
        assert!(parsed.contains_key("fail_mode"));
        let mut keys = 0;
        for line in CONFIG_TEXT.lines() {
            let line = line.trim_start_matches('#').trim();
            let Some((key, value)) = line.split_once(" = ") else {
                continue;
            };
            if !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                continue;
            }
            let uncommented = format!("{key} = {value}");
            toml::from_str::<toml::Table>(&uncommented)
                .unwrap_or_else(|e| panic!("{uncommented}: {e}"));
            assert!(
                config_rs.contains(&format!("pub {key}:")),
                "`{key}` is not a field of Config"
            );
            keys += 1;
        }
        assert!(keys >= 15, "only {keys} keys found");
        Ok(())
    }

    #[test]
    fn unit_file_has_the_essentials() {
        for line in [
            "Type=notify",
            "ExecStart=/usr/local/bin/tollgate agent",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=on-failure",
        ] {
            assert!(UNIT_TEXT.lines().any(|l| l == line), "missing {line}");
        }
        let caps = UNIT_TEXT
            .lines()
            .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
            .expect("a CapabilityBoundingSet= line");
        for cap in [
            "CAP_BPF",
            "CAP_NET_ADMIN",
            "CAP_SYS_ADMIN",
            "CAP_NET_BIND_SERVICE",
        ] {
            assert!(caps.split_whitespace().any(|c| c == cap), "missing {cap}");
        }
    }
}
