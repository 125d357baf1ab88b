//! `cargo xtask setup`: everything the build and the tests need on this host, installed only
//! where missing so that a second run takes a second or two.
//!
//! 1. Rust: rustfmt and clippy on the active toolchain; a `nightly` toolchain with `rust-src`
//!    (the eBPF programs are built with `-Z build-std=core`).
//! 2. Debian packages used by the tests (PostgreSQL, OpenSSH, nginx, ...), with services kept
//!    from starting during the install.
//! 3. `bpf-linker`, built against the nightly toolchain's own LLVM so that it reads the bitcode
//!    that nightly rustc writes.
//! 4. cgroup v2 present, bpffs mounted at `/sys/fs/bpf`.
use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use crate::util::{self, checked, note, output, step};

/// Debian packages the tests use (some by later protocol handlers).
const PACKAGES: &[&str] = &[
    "build-essential",
    "curl",
    "haproxy",
    "iproute2",
    "nginx",
    "openssh-client",
    "openssh-server",
    "pgbouncer",
    "postgresql-15",
    "postgresql-client-15",
    "procps",
    "python3",
    "python3-psycopg2",
    "wrk",
];

/// Where the cgroup v2 hierarchy may be mounted (unified first, then hybrid).
const CGROUP2_ROOTS: &[&str] = &["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];

/// bpffs mount point used by the agent for pinned links and maps.
const BPFFS: &str = "/sys/fs/bpf";

/// Runs every setup step.
pub fn run() -> anyhow::Result<()> {
    toolchains()?;
    packages()?;
    bpf_linker()?;
    kernel()?;
    step("setup done");
    Ok(())
}

/// rustfmt + clippy on the active toolchain, nightly with rust-src.
fn toolchains() -> anyhow::Result<()> {
    step("Rust toolchains");
    let active = output(Command::new("rustup").args(["component", "list", "--installed"]))?;
    for component in ["rustfmt", "clippy"] {
        if has_component(&active, component) {
            note(&format!("{component}: installed"));
        } else {
            checked(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        checked(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
    }
    let nightly = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if has_component(&nightly, "rust-src") {
        note("nightly with rust-src: installed");
    } else {
        checked(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

/// Whether `rustup component list --installed` output names `component`
/// (`rust-src`, or `clippy-x86_64-unknown-linux-gnu` for `clippy`).
fn has_component(list: &str, component: &str) -> bool {
    list.lines().map(str::trim).any(|l| {
        l == component
            || l.strip_prefix(component)
                .is_some_and(|rest| rest.starts_with('-'))
    })
}

/// Installs the missing Debian packages (none: no `apt-get` at all).
fn packages() -> anyhow::Result<()> {
    step("Debian packages");
    let mut query = Command::new("dpkg-query");
    query
        .arg("-W")
        .arg("-f=${Package} ${Status}\\n")
        .args(PACKAGES);
    // dpkg-query exits 1 when a package is unknown to dpkg; its stdout still lists the others.
    let listed = query
        .output()
        .context("cannot run dpkg-query (not a Debian host?)")?;
    let missing = missing_packages(PACKAGES, &String::from_utf8_lossy(&listed.stdout));
    if missing.is_empty() {
        note(&format!("all {} installed", PACKAGES.len()));
        return Ok(());
    }
    note(&format!("missing: {}", missing.join(" ")));
    if !util::is_root() {
        bail!("installing Debian packages needs root: run `cargo xtask setup` as root");
    }
    let _no_services = NoServiceStarts::new()?;
    checked(
        Command::new("apt-get")
            .args(["update", "-q"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    checked(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(())
}

/// The packages of `wanted` that the `${Package} ${Status}` lines do not show installed.
fn missing_packages<'a>(wanted: &[&'a str], dpkg: &str) -> Vec<&'a str> {
    let installed: BTreeSet<&str> = dpkg
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, status)| status.trim() == "install ok installed")
        .map(|(name, _)| name.split(':').next().unwrap_or(name))
        .collect();
    wanted
        .iter()
        .copied()
        .filter(|p| !installed.contains(p))
        .collect()
}

/// While alive, a `policy-rc.d` that stops package scripts from starting services (PostgreSQL,
/// nginx, sshd...): the tests start their own instances on loopback. Left alone if one exists.
struct NoServiceStarts(Option<PathBuf>);

impl NoServiceStarts {
    const PATH: &str = "/usr/sbin/policy-rc.d";

    fn new() -> anyhow::Result<Self> {
        let path = Path::new(Self::PATH);
        if path.exists() {
            return Ok(Self(None));
        }
        note(&format!(
            "writing {} (exit 101) for the install",
            path.display()
        ));
        fs::write(
            path,
            "#!/bin/sh\n# written by cargo xtask setup\nexit 101\n",
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
        Ok(Self(Some(path.to_owned())))
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if let Some(path) = &self.0
            && let Err(e) = fs::remove_file(path)
        {
            eprintln!("warning: cannot remove {}: {e}", path.display());
        }
    }
}

/// Builds and installs bpf-linker against nightly's LLVM unless a working one is on PATH.
fn bpf_linker() -> anyhow::Result<()> {
    step("bpf-linker");
    if let Some(version) = bpf_linker_version() {
        note(&format!("installed: {version}"));
        return Ok(());
    }
    let sysroot = PathBuf::from(output(
        Command::new("rustc").args(["+nightly", "--print", "sysroot"]),
    )?);
    let libdir = sysroot.join("lib");
    let names = fs::read_dir(&libdir)
        .with_context(|| format!("cannot list {}", libdir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok());
    let Some((lib, major)) = names.filter_map(|n| llvm_major(&n).map(|m| (n, m))).next() else {
        bail!(
            "no libLLVM.so.<major>.<minor>-rust-* in {}",
            libdir.display()
        );
    };
    note(&format!("nightly's LLVM: {lib} (LLVM {major})"));

    // A prefix that outlives this run: the linker's RUNPATH points at it. It holds the name
    // the build links with and the soname the binary loads; when nightly moves on, the link
    // dangles, `--version` fails and the next setup builds the linker again.
    let prefix = cargo_home().join("tollgate-llvm-prefix");
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("cannot create {}", prefix_lib.display()))?;
    for name in ["libLLVM.so", lib.as_str()] {
        let link = prefix_lib.join(name);
        if link.symlink_metadata().is_ok() {
            fs::remove_file(&link).with_context(|| format!("cannot remove {}", link.display()))?;
        }
        std::os::unix::fs::symlink(libdir.join(&lib), &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
    }

    let mut install = util::cargo([
        "install",
        "bpf-linker",
        "--no-default-features",
        "--features",
        &format!("llvm-{major}"),
    ]);
    install.env("LLVM_PREFIX", &prefix);
    if cargo_home().join("bin/bpf-linker").exists() {
        // Same version and features as before: cargo would keep the broken binary.
        install.arg("--force");
    }
    checked(&mut install)?;
    let Some(version) = bpf_linker_version() else {
        bail!(
            "bpf-linker was installed but `bpf-linker --version` fails: is $CARGO_HOME/bin on PATH?"
        );
    };
    note(&format!("installed: {version}"));
    Ok(())
}

/// `bpf-linker --version` if it runs: checked without rustup's `LD_LIBRARY_PATH`, as a shell
/// would run it, so a linker whose LLVM library is gone counts as missing.
fn bpf_linker_version() -> Option<String> {
    let out = Command::new("bpf-linker")
        .arg("--version")
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// LLVM major version of a nightly sysroot's `libLLVM.so.<major>.<minor>-rust-<version>`.
fn llvm_major(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix("libLLVM.so.")?;
    let (version, _) = rest.split_once("-rust-")?;
    version.split('.').next()?.parse().ok()
}

/// `$CARGO_HOME`, by default `~/.cargo`.
fn cargo_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return home.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cargo")
}

/// cgroup v2 must be there; bpffs is mounted if it is not.
fn kernel() -> anyhow::Result<()> {
    step("cgroup v2 and bpffs");
    let Some(cgroup) = CGROUP2_ROOTS
        .iter()
        .find(|r| Path::new(r).join("cgroup.controllers").is_file())
    else {
        bail!("no cgroup v2 hierarchy (looked in {CGROUP2_ROOTS:?}); tollgate needs one");
    };
    note(&format!("cgroup v2 at {cgroup}"));
    let mounts =
        fs::read_to_string("/proc/self/mounts").context("cannot read /proc/self/mounts")?;
    if is_mounted(&mounts, BPFFS, "bpf") {
        note(&format!("bpffs at {BPFFS}"));
        return Ok(());
    }
    if !util::is_root() {
        bail!("bpffs is not mounted at {BPFFS} and mounting it needs root");
    }
    fs::create_dir_all(BPFFS).with_context(|| format!("cannot create {BPFFS}"))?;
    checked(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]))
}

/// Whether `/proc/self/mounts` text has a mount of type `fstype` at `target`.
fn is_mounted(mounts: &str, target: &str, fstype: &str) -> bool {
    mounts.lines().any(|l| {
        let mut fields = l.split_whitespace().skip(1);
        fields.next() == Some(target) && fields.next() == Some(fstype)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components() {
        let list = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\nrust-src\n";
        let cases = [
            ("clippy", true),
            ("rust-src", true),
            ("cargo", true),
            ("rustfmt", false),
            ("rust-std", false),
            ("clip", false),
        ];
        for (component, want) in cases {
            assert_eq!(has_component(list, component), want, "{component}");
        }
    }

    #[test]
    fn missing_from_dpkg_output() {
        let dpkg = "curl install ok installed\n\
                    openssh-server unknown ok not-installed\n\
                    nginx deinstall ok config-files\n\
                    procps:amd64 install ok installed\n";
        let wanted = ["curl", "openssh-server", "nginx", "procps", "wrk"];
        assert_eq!(
            missing_packages(&wanted, dpkg),
            ["openssh-server", "nginx", "wrk"]
        );
        assert!(missing_packages(&["curl"], dpkg).is_empty());
    }

    #[test]
    fn llvm_library_names() {
        let cases = [
            ("libLLVM.so.22.1-rust-1.97.0-nightly", Some(22)),
            ("libLLVM.so.23.0-rust-1.99.0-nightly", Some(23)),
            ("libLLVM-22-rust-1.97.0-nightly.so", None),
            ("libLLVM.so", None),
            ("librustc_driver-b5a965480ee51f9a.so", None),
        ];
        for (name, want) in cases {
            assert_eq!(llvm_major(name), want, "{name}");
        }
    }

    #[test]
    fn bpffs_in_mounts() {
        let mounts = "sysfs /sys sysfs rw 0 0\n\
                      none /sys/fs/bpf bpf rw,relatime 0 0\n\
                      tmpfs /sys/fs/bpfx tmpfs rw 0 0\n";
        assert!(is_mounted(mounts, "/sys/fs/bpf", "bpf"));
        assert!(!is_mounted(mounts, "/sys/fs/bpfx", "bpf"));
        assert!(!is_mounted(
            "sysfs /sys sysfs rw 0 0\n",
            "/sys/fs/bpf",
            "bpf"
        ));
    }
}
