//! `tollgate ca install | uninstall | show`: the local CA's certificate (`<state_dir>/ca/ca.pem`,
//! created by the agent) in the host's trust store, so that programs using the system store
//! accept the leaves tollgate presents when it terminates TLS.
//!
//! The store is found by its layout: RHEL/Fedora (`/etc/pki/ca-trust/source/anchors/`, then
//! `update-ca-trust extract`) when that directory exists, else Debian/Ubuntu
//! (`/usr/local/share/ca-certificates/`, then `update-ca-certificates`). `--trust-dir DIR` puts
//! the file in another directory and runs no tool; `--dry-run` prints the steps and changes
//! nothing. Planning is pure ([`plan_install`], [`plan_uninstall`]); [`execute`] does the I/O.
use std::{
    fmt::{self, Write as _},
    fs,
    io::{self, Write as _},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use clap::{Args, Subcommand};
use rustls::pki_types::{CertificateDer, pem::PemObject as _};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::{
    cli::{EXIT_FAILURE, EXIT_OK, output},
    config::Config,
    tls::{LocalCa, TlsError},
};

/// File name of the certificate in a trust store (Debian's tool takes only `*.crt`).
pub const ANCHOR_FILE: &str = "tollgate-local-ca.crt";

/// Long help of `tollgate ca`: what trusting the local CA means.
pub const LONG_ABOUT: &str = "\
Put the local CA's certificate in the host's trust store, take it out, or print it.

Trust model: for http targets with tls = \"terminate\" (and postgres targets with client TLS), \
tollgate answers the workload's TLS handshake itself, with a leaf certificate for the name the \
workload asked for, signed by this host's local CA. The agent creates that CA on first start in \
<state_dir>/ca/: ca.pem (public) and ca.key (private, root-only, mode 0600); ECDSA P-256, valid \
10 years, path length 0. A client accepts those leaves only if it trusts ca.pem: per client \
(curl --cacert, Python's cafile, PGSSLROOTCERT, REQUESTS_CA_BUNDLE), which is the narrowest \
choice, or host-wide with `tollgate ca install`, after which every program that uses the system \
store trusts the CA for every name. Whoever holds ca.key can therefore impersonate any server to \
those programs: keep the state directory root-only, never copy the key, and run `tollgate ca \
uninstall` (and remove <state_dir>/ca) when the host stops using tollgate. Towards the real \
server tollgate verifies as a careful client does (the target's ca_file or the system roots, and \
the server name); the workload never sees the server's own certificate. Passthrough targets and \
SNIs are not terminated and need no trust.

install copies ca.pem to /usr/local/share/ca-certificates/tollgate-local-ca.crt and runs \
update-ca-certificates (Debian, Ubuntu), or to /etc/pki/ca-trust/source/anchors/ and runs \
update-ca-trust extract (RHEL, Fedora) when that directory exists; it creates the CA if the agent \
has not yet, and running it again changes nothing. uninstall removes the file and runs the tool \
again. show prints the PEM (with --json: its path and SHA-256 fingerprint too).";

/// `tollgate ca …`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Add the local CA certificate to the host's trust store (as root).
    Install(StoreArgs),
    /// Remove the local CA certificate from the host's trust store (as root).
    Uninstall(StoreArgs),
    /// Print the local CA certificate (PEM).
    Show,
}

/// Options of `ca install` and `ca uninstall`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Use DIR as the trust anchor directory instead of the system store's; no tool is run
    /// (refresh that store yourself).
    #[arg(long, value_name = "DIR")]
    pub trust_dir: Option<PathBuf>,
    /// Print what would be done and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Why a `ca` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The local CA cannot be loaded or created.
    #[error("local CA: {0}")]
    Ca(#[from] TlsError),
    /// No local CA exists yet (and the command does not create one).
    #[error("no local CA at {0} yet: start the agent, or run `tollgate ca install`")]
    NoCa(PathBuf),
    /// The CA file is not a PEM certificate.
    #[error("{0} does not hold a PEM certificate")]
    NotACertificate(PathBuf),
    /// No known trust store layout on this host.
    #[error(
        "no known trust store on this host (neither /etc/pki/ca-trust/source/anchors nor \
         update-ca-certificates): use --trust-dir DIR"
    )]
    NoStore,
    /// A file cannot be read.
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, #[source] io::Error),
    /// A file or directory cannot be written.
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, #[source] io::Error),
    /// A file cannot be removed.
    #[error("cannot remove {0}: {1}")]
    Remove(PathBuf, #[source] io::Error),
    /// The store's tool cannot be started.
    #[error("cannot run {0}: {1}")]
    Spawn(String, #[source] io::Error),
    /// The store's tool failed.
    #[error("{command} failed ({status}): {stderr}")]
    Tool {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
}

/// A trust store: where anchors go and the tool that rebuilds the bundle from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    /// Which layout (`debian`, `rhel`, `custom`).
    pub kind: &'static str,
    /// Directory of the anchor files.
    pub dir: PathBuf,
    /// Command that refreshes the store, if any.
    pub refresh: Option<Vec<String>>,
}

impl Store {
    /// Where the certificate goes in this store.
    pub fn anchor(&self) -> PathBuf {
        self.dir.join(ANCHOR_FILE)
    }
}

/// RHEL/Fedora anchor directory.
const RHEL_DIR: &str = "/etc/pki/ca-trust/source/anchors";
/// Debian/Ubuntu local certificate directory.
const DEBIAN_DIR: &str = "/usr/local/share/ca-certificates";
/// Debian/Ubuntu refresh tool.
const DEBIAN_TOOL: &str = "/usr/sbin/update-ca-certificates";

/// The store of this host, `exists` telling which paths exist: the RHEL layout when its anchor
/// directory exists, else the Debian one when its directory or tool exists. A `trust_dir`
/// overrides both and runs no tool.
pub fn detect(trust_dir: Option<&Path>, exists: impl Fn(&Path) -> bool) -> Option<Store> {
    if let Some(dir) = trust_dir {
        return Some(Store {
            kind: "custom",
            dir: dir.to_path_buf(),
            refresh: None,
        });
    }
    if exists(Path::new(RHEL_DIR)) {
        return Some(Store {
            kind: "rhel",
            dir: RHEL_DIR.into(),
            refresh: Some(vec!["update-ca-trust".into(), "extract".into()]),
        });
    }
    if exists(Path::new(DEBIAN_DIR)) || exists(Path::new(DEBIAN_TOOL)) {
        return Some(Store {
            kind: "debian",
            dir: DEBIAN_DIR.into(),
            refresh: Some(vec!["update-ca-certificates".into()]),
        });
    }
    None
}

/// One step of an install or uninstall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write the certificate to this path (absent, or holding something else).
    Write(PathBuf),
    /// The path already holds the certificate.
    Keep(PathBuf),
    /// Remove this file.
    Remove(PathBuf),
    /// Nothing to remove at this path.
    Absent(PathBuf),
    /// Run this command.
    Run(Vec<String>),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Write(p) => write!(f, "write {}", p.display()),
            Step::Keep(p) => write!(f, "keep {} (already installed)", p.display()),
            Step::Remove(p) => write!(f, "remove {}", p.display()),
            Step::Absent(p) => write!(f, "nothing to remove at {}", p.display()),
            Step::Run(cmd) => write!(f, "run {}", cmd.join(" ")),
        }
    }
}

/// The steps that put `pem` in `store`, whose anchor now holds `current`. The tool runs even when
/// the file is already there: a run interrupted before the tool leaves the bundle stale.
pub fn plan_install(store: &Store, current: Option<&[u8]>, pem: &[u8]) -> Vec<Step> {
    let anchor = store.anchor();
    let mut steps = vec![if current == Some(pem) {
        Step::Keep(anchor)
    } else {
        Step::Write(anchor)
    }];
    steps.extend(store.refresh.clone().map(Step::Run));
    steps
}

/// The steps that take the certificate out of `store` (`present`: its anchor file exists).
pub fn plan_uninstall(store: &Store, present: bool) -> Vec<Step> {
    let anchor = store.anchor();
    let mut steps = vec![if present {
        Step::Remove(anchor)
    } else {
        Step::Absent(anchor)
    }];
    steps.extend(store.refresh.clone().map(Step::Run));
    steps
}

/// Carries out `steps` (writing `pem` where a step says so). Returns whether a file changed.
pub fn execute(steps: &[Step], pem: &[u8]) -> Result<bool, CaError> {
    let mut changed = false;
    for step in steps {
        match step {
            Step::Write(path) => {
                write_anchor(path, pem)?;
                changed = true;
            }
            Step::Remove(path) => {
                match fs::remove_file(path) {
                    Ok(()) => changed = true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(CaError::Remove(path.clone(), e)),
                };
            }
            Step::Keep(_) | Step::Absent(_) => {}
            Step::Run(cmd) => run_tool(cmd)?,
        }
    }
    Ok(changed)
}

/// Writes `pem` to `path` atomically (a temp file beside it, mode 0644, renamed into place),
/// creating the directory (0755) if needed.
fn write_anchor(path: &Path, pem: &[u8]) -> Result<(), CaError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(|e| CaError::Write(dir.to_path_buf(), e))?;
    let tmp = dir.join(format!(".{ANCHOR_FILE}.tmp"));
    let write = || -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(pem)?;
        f.sync_all()?;
        // The umask may have narrowed the mode: every program must be able to read an anchor.
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        CaError::Write(path.to_path_buf(), e)
    })
}

/// Runs a store's tool, its output captured (shown only when it fails).
fn run_tool(cmd: &[String]) -> Result<(), CaError> {
    let line = cmd.join(" ");
    let Some((program, args)) = cmd.split_first() else {
        return Ok(());
    };
    let out = Command::new(program)
        .args(args)
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::null())
        .output()
        .map_err(|e| CaError::Spawn(line.clone(), e))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    Err(CaError::Tool {
        command: line,
        status: out.status.to_string(),
        stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" / "),
    })
}

/// Path of the CA certificate in `state_dir`.
pub fn ca_pem_path(state_dir: &Path) -> PathBuf {
    state_dir.join("ca").join("ca.pem")
}

/// The CA certificate in `state_dir`, `None` when there is none yet; checked to be a PEM
/// certificate.
fn read_ca(state_dir: &Path) -> Result<Option<Vec<u8>>, CaError> {
    let path = ca_pem_path(state_dir);
    match fs::read(&path) {
        Ok(pem) => {
            CertificateDer::from_pem_slice(&pem)
                .map_err(|_| CaError::NotACertificate(path.clone()))?;
            Ok(Some(pem))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CaError::Read(path, e)),
    }
}

/// SHA-256 of the DER certificate in `pem`, as `AB:CD:…` (what `openssl x509 -fingerprint
/// -sha256` prints).
pub fn fingerprint(pem: &[u8]) -> Option<String> {
    let der = CertificateDer::from_pem_slice(pem).ok()?;
    let digest = Sha256::digest(der.as_ref());
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02X}");
    }
    Some(out)
}

/// Runs `tollgate ca <command>`; returns the exit code.
pub fn run(config: &Config, command: &CaCommand, json: bool) -> i32 {
    let (what, result) = match command {
        CaCommand::Show => ("ca show", show(&config.state_dir, json)),
        CaCommand::Install(args) => ("ca install", install(&config.state_dir, args, json)),
        CaCommand::Uninstall(args) => ("ca uninstall", uninstall(args, json)),
    };
    match result {
        Ok(text) => output::emit_or_fail(what, &text, EXIT_OK),
        Err(e) => {
            eprintln!("tollgate {what}: {e}");
            EXIT_FAILURE
        }
    }
}

/// `ca show`: the PEM, or a JSON object with its path and fingerprint.
fn show(state_dir: &Path, json: bool) -> Result<String, CaError> {
    let path = ca_pem_path(state_dir);
    let pem = read_ca(state_dir)?.ok_or_else(|| CaError::NoCa(path.clone()))?;
    if !json {
        return Ok(String::from_utf8_lossy(&pem).into_owned());
    }
    let value = json!({
        "path": path.display().to_string(),
        "sha256": fingerprint(&pem),
        "pem": String::from_utf8_lossy(&pem),
    });
    Ok(format!("{value}\n"))
}

/// `ca install`: the CA (created if absent, unless dry-run) copied into the store.
fn install(state_dir: &Path, args: &StoreArgs, json: bool) -> Result<String, CaError> {
    let store = detect(args.trust_dir.as_deref(), Path::exists).ok_or(CaError::NoStore)?;
    let mut notes = Vec::new();
    let pem = match read_ca(state_dir)? {
        Some(pem) => pem,
        None if args.dry_run => {
            notes.push(format!(
                "create the local CA in {}",
                state_dir.join("ca").display()
            ));
            Vec::new()
        }
        None => {
            let ca = LocalCa::load_or_create(state_dir)?;
            notes.push(format!("created the local CA {}", ca.cert_path().display()));
            ca.cert_pem().as_bytes().to_vec()
        }
    };
    let anchor = store.anchor();
    let current = match fs::read(&anchor) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(CaError::Read(anchor, e)),
    };
    let steps = plan_install(&store, current.as_deref(), &pem);
    report("install", &store, &steps, &notes, &pem, args.dry_run, json)
}

/// `ca uninstall`: the anchor file removed, the store refreshed.
fn uninstall(args: &StoreArgs, json: bool) -> Result<String, CaError> {
    let store = detect(args.trust_dir.as_deref(), Path::exists).ok_or(CaError::NoStore)?;
    let present = fs::symlink_metadata(store.anchor()).is_ok();
    let steps = plan_uninstall(&store, present);
    report("uninstall", &store, &steps, &[], &[], args.dry_run, json)
}

/// Executes `steps` (unless `dry_run`) and describes what was (or would be) done.
fn report(
    action: &str,
    store: &Store,
    steps: &[Step],
    notes: &[String],
    pem: &[u8],
    dry_run: bool,
    json: bool,
) -> Result<String, CaError> {
    let changed = if dry_run {
        steps
            .iter()
            .any(|s| matches!(s, Step::Write(_) | Step::Remove(_)))
    } else {
        execute(steps, pem)?
    };
    let lines: Vec<String> = notes
        .iter()
        .cloned()
        .chain(steps.iter().map(ToString::to_string))
        .collect();
    if json {
        let value = json!({
            "action": action,
            "store": store.kind,
            "file": store.anchor().display().to_string(),
            "dry_run": dry_run,
            "changed": changed,
            "steps": lines,
            "sha256": fingerprint(pem),
        });
        return Ok(format!("{value}\n"));
    }
    let mut text = String::new();
    let prefix = if dry_run { "would " } else { "" };
    for line in &lines {
        let _ = writeln!(text, "{prefix}{line}");
    }
    if store.refresh.is_none() && !dry_run {
        let _ = writeln!(
            text,
            "{} is not a system store: no tool was run",
            store.dir.display()
        );
    }
    let _ = writeln!(
        text,
        "{}{} ({} store)",
        prefix,
        match (action, changed) {
            ("install", true) => "installed",
            ("install", false) => "already installed",
            (_, true) => "uninstalled",
            (_, false) => "was not installed",
        },
        store.kind
    );
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian() -> Store {
        Store {
            kind: "debian",
            dir: DEBIAN_DIR.into(),
            refresh: Some(vec!["update-ca-certificates".into()]),
        }
    }

    #[test]
    fn detect_cases() {
        let only = |paths: &'static [&'static str]| {
            move |p: &Path| paths.iter().any(|q| p == Path::new(q))
        };
        // (existing paths, trust dir, kind and dir expected)
        type Case = (
            &'static [&'static str],
            Option<&'static str>,
            Option<(&'static str, &'static str)>,
        );
        let cases: [Case; 6] = [
            (&[RHEL_DIR], None, Some(("rhel", RHEL_DIR))),
            (&[RHEL_DIR, DEBIAN_DIR], None, Some(("rhel", RHEL_DIR))),
            (&[DEBIAN_DIR], None, Some(("debian", DEBIAN_DIR))),
            (&[DEBIAN_TOOL], None, Some(("debian", DEBIAN_DIR))),
            (&[], None, None),
            (&[RHEL_DIR], Some("/tmp/x"), Some(("custom", "/tmp/x"))),
        ];
        for (paths, trust_dir, want) in cases {
            let got = detect(trust_dir.map(Path::new), only(paths));
            assert_eq!(
                got.as_ref().map(|s| (s.kind, s.dir.to_str().unwrap())),
                want,
                "{paths:?} {trust_dir:?}"
            );
        }
        let rhel = detect(None, only(&[RHEL_DIR])).unwrap();
        assert_eq!(
            rhel.refresh,
            Some(vec!["update-ca-trust".to_owned(), "extract".to_owned()])
        );
        assert_eq!(
            detect(Some(Path::new("/d")), only(&[])).unwrap().refresh,
            None
        );
    }

    #[test]
    fn plans() {
        let store = debian();
        let anchor = store.anchor();
        assert_eq!(
            anchor,
            Path::new("/usr/local/share/ca-certificates/tollgate-local-ca.crt")
        );
        let run = Step::Run(vec!["update-ca-certificates".into()]);
        let cases: [(Option<&[u8]>, Vec<Step>); 3] = [
            (None, vec![Step::Write(anchor.clone()), run.clone()]),
            (Some(b"old"), vec![Step::Write(anchor.clone()), run.clone()]),
            (Some(b"pem"), vec![Step::Keep(anchor.clone()), run.clone()]),
        ];
        for (current, want) in cases {
            assert_eq!(plan_install(&store, current, b"pem"), want, "{current:?}");
        }
        assert_eq!(
            plan_uninstall(&store, true),
            vec![Step::Remove(anchor.clone()), run.clone()]
        );
        assert_eq!(
            plan_uninstall(&store, false),
            vec![Step::Absent(anchor.clone()), run]
        );
        let custom = detect(Some(Path::new("/d")), |_| false).unwrap();
        assert_eq!(
            plan_install(&custom, None, b"pem"),
            vec![Step::Write("/d/tollgate-local-ca.crt".into())]
        );
    }

    #[test]
    fn install_is_idempotent_and_uninstall_removes() {
        let state = tempfile::tempdir().unwrap();
        let trust = tempfile::tempdir().unwrap();
        let args = |dry_run| StoreArgs {
            trust_dir: Some(trust.path().join("anchors")),
            dry_run,
        };
        let anchor = trust.path().join("anchors").join(ANCHOR_FILE);
        // Dry run: nothing created, not even the CA.
        let text = install(state.path(), &args(true), false).unwrap();
        assert!(text.contains("would create the local CA"), "{text}");
        assert!(text.contains("would write"), "{text}");
        assert!(!anchor.exists() && !ca_pem_path(state.path()).exists());
        // First install creates the CA and writes the anchor, mode 0644, same bytes.
        let text = install(state.path(), &args(false), false).unwrap();
        assert!(text.contains("created the local CA"), "{text}");
        assert!(text.contains("installed (custom store)"), "{text}");
        let pem = fs::read(ca_pem_path(state.path())).unwrap();
        assert_eq!(fs::read(&anchor).unwrap(), pem);
        let mode = fs::metadata(&anchor).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        // Again: nothing changes.
        let text = install(state.path(), &args(false), true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["changed"], false, "{v}");
        assert_eq!(v["sha256"].as_str(), fingerprint(&pem).as_deref());
        // A stale anchor (another CA) is replaced.
        fs::write(&anchor, b"stale").unwrap();
        install(state.path(), &args(false), false).unwrap();
        assert_eq!(fs::read(&anchor).unwrap(), pem);
        // Uninstall: dry run keeps it, then it goes, then there is nothing to do.
        let text = uninstall(&args(true), false).unwrap();
        assert!(text.contains("would remove"), "{text}");
        assert!(anchor.exists());
        let text = uninstall(&args(false), false).unwrap();
        assert!(text.contains("uninstalled"), "{text}");
        assert!(!anchor.exists());
        let text = uninstall(&args(false), false).unwrap();
        assert!(text.contains("was not installed"), "{text}");
    }

    #[test]
    fn show_prints_the_pem_or_explains() {
        let state = tempfile::tempdir().unwrap();
        let err = show(state.path(), false).unwrap_err();
        assert!(matches!(err, CaError::NoCa(_)), "{err}");
        let ca = LocalCa::load_or_create(state.path()).unwrap();
        assert_eq!(show(state.path(), false).unwrap(), ca.cert_pem());
        let v: serde_json::Value =
            serde_json::from_str(&show(state.path(), true).unwrap()).unwrap();
        let fp = v["sha256"].as_str().unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
        assert_eq!(fp, fingerprint(ca.cert_pem().as_bytes()).unwrap(), "{v}");
        fs::write(ca_pem_path(state.path()), "not a certificate").unwrap();
        assert!(matches!(
            show(state.path(), false).unwrap_err(),
            CaError::NotACertificate(_)
        ));
    }

    #[test]
    fn the_command_line_parses() {
        use clap::Parser as _;
        let parse = |args: &[&str]| {
            crate::cli::Cli::try_parse_from(std::iter::once("tollgate").chain(args.iter().copied()))
        };
        let cli = parse(&["ca", "install", "--trust-dir", "/x", "--dry-run"]).unwrap();
        match cli.command {
            crate::cli::Command::Ca {
                command: CaCommand::Install(StoreArgs { trust_dir, dry_run }),
            } => assert_eq!(
                (trust_dir.as_deref(), dry_run),
                (Some(Path::new("/x")), true)
            ),
            other => panic!("{other:?}"),
        }
        for ok in [
            &["ca", "show"][..],
            &["ca", "uninstall"],
            &["ca", "show", "--json"],
        ] {
            parse(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in [&["ca"][..], &["ca", "show", "--dry-run"], &["ca", "remove"]] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_failing_tool_is_reported() {
        let err = run_tool(&["false".to_owned()]).unwrap_err();
        assert!(matches!(err, CaError::Tool { .. }), "{err}");
        let err = run_tool(&["/nonexistent/tool".to_owned()]).unwrap_err();
        assert!(matches!(err, CaError::Spawn(..)), "{err}");
        run_tool(&["true".to_owned()]).unwrap();
    }
}
