//! Secrets named by policy (upstream passwords, the masking hash key): read once at load, from a
//! root-only file or from the agent's environment, and never printed.
use std::{
    ffi::OsString,
    fmt,
    fs::File,
    io::Read,
    os::unix::{ffi::OsStringExt, fs::MetadataExt},
    path::{Path, PathBuf},
};

/// Largest secret file read, in bytes: a password or key, not a data file.
pub const MAX_SECRET_LEN: u64 = 64 * 1024;

/// Secret bytes. `Debug` prints `<redacted>`; there is no `Display` and no `Serialize`, so a
/// secret cannot end up in a log line, an audit record or a JSON answer by accident.
#[derive(Clone)]
pub struct Secret {
    bytes: Vec<u8>,
    origin: SecretOrigin,
}

/// Where a secret was read from: what the policy fingerprint and error messages show instead
/// of the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    /// A root-only file.
    File(PathBuf),
    /// An environment variable of the agent.
    Env(String),
    /// Given in code (tests, callers building a policy by hand).
    Given,
}

impl Secret {
    /// A secret given in code.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
            origin: SecretOrigin::Given,
        }
    }

    /// The secret bytes. Hand them to the code that needs them (authentication, HMAC key);
    /// never format them.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// Where it was read from.
    pub fn origin(&self) -> &SecretOrigin {
        &self.origin
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretOrigin::File(p) => write!(f, "file:{}", p.display()),
            SecretOrigin::Env(name) => write!(f, "env:{name}"),
            SecretOrigin::Given => f.write_str("given"),
        }
    }
}

/// Looks up an environment variable of the agent (injected so that tests need not change the
/// process environment).
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// The agent's real environment.
pub(crate) fn process_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// Checks that `path` can hold a secret (absolute, a regular file owned by root with no group or
/// other permission bits) and returns the open file. The error is the reason, in words.
pub(crate) fn open_secret_file(path: &Path) -> Result<File, String> {
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!("secret file {shown} must be an absolute path"));
    }
    let file = File::open(path).map_err(|e| format!("cannot open secret file {shown}: {e}"))?;
    // Checked on the open file, so that the checked file is the one read.
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat secret file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("secret file {shown} is not a regular file"));
    }
    if meta.uid() != 0 {
        return Err(format!(
            "secret file {shown} is owned by uid {}, not root: chown root {shown}",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "secret file {shown} is readable by others (mode {mode:04o}): chmod 600 {shown}"
        ));
    }
    if meta.len() > MAX_SECRET_LEN {
        return Err(format!(
            "secret file {shown} is larger than {MAX_SECRET_LEN} bytes"
        ));
    }
    Ok(file)
}

/// Reads a secret file (see [`open_secret_file`]), without one trailing newline (`\n` or
/// `\r\n`, as `echo` and editors leave). An empty secret is an error.
pub(crate) fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let shown = path.display();
    let mut bytes = Vec::new();
    open_secret_file(path)?
        .take(MAX_SECRET_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read secret file {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_SECRET_LEN {
        return Err(format!(
            "secret file {shown} is larger than {MAX_SECRET_LEN} bytes"
        ));
    }
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(format!("secret file {shown} is empty"));
    }
    Ok(Secret {
        bytes,
        origin: SecretOrigin::File(path.to_owned()),
    })
}

/// Reads a secret from the environment variable `name`, as it is (no newline stripped). Unset or
/// empty is an error.
pub(crate) fn read_secret_env(name: &str, env: EnvLookup<'_>) -> Result<Secret, String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(format!("invalid environment variable name {name:?}"));
    }
    let bytes = env(name)
        .ok_or_else(|| {
            format!("environment variable {name} is not set in the agent's environment")
        })?
        .into_vec();
    if bytes.is_empty() {
        return Err(format!("environment variable {name} is empty"));
    }
    Ok(Secret {
        bytes,
        origin: SecretOrigin::Env(name.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::PermissionsExt};

    use super::*;

    fn write(dir: &Path, name: &str, content: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// File name, content, mode, and the secret read or a part of the error.
    type FileCase = (
        &'static str,
        &'static [u8],
        u32,
        Result<&'static [u8], &'static str>,
    );

    #[test]
    fn file_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cases: &[FileCase] = &[
            ("plain", b"s3cret", 0o600, Ok(b"s3cret")),
            ("newline", b"s3cret\n", 0o400, Ok(b"s3cret")),
            ("crlf", b"s3cret\r\n", 0o600, Ok(b"s3cret")),
            ("two-newlines", b"s3cret\n\n", 0o600, Ok(b"s3cret\n")),
            ("inner", b"a\nb", 0o600, Ok(b"a\nb")),
            ("empty", b"\n", 0o600, Err("is empty")),
            (
                "world",
                b"x",
                0o644,
                Err("is readable by others (mode 0644): chmod 600"),
            ),
            ("group", b"x", 0o640, Err("(mode 0640)")),
            ("other-exec", b"x", 0o601, Err("(mode 0601)")),
        ];
        for (name, content, mode, want) in cases {
            let path = write(d, name, content, *mode);
            match (read_secret_file(&path), want) {
                (Ok(s), Ok(w)) => {
                    assert_eq!(s.expose(), *w, "{name}");
                    assert_eq!(s.origin(), &SecretOrigin::File(path.clone()));
                }
                (Err(e), Err(w)) => assert!(e.contains(w), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn file_secret_errors() {
        let dir = tempfile::tempdir().unwrap();
        let big = write(dir.path(), "big", &vec![b'a'; 70_000], 0o600);
        let cases: &[(PathBuf, &str)] = &[
            (PathBuf::from("relative/key"), "must be an absolute path"),
            (dir.path().join("missing"), "cannot open secret file"),
            (dir.path().to_owned(), "not a regular file"),
            (big, "larger than"),
        ];
        for (path, want) in cases {
            let e = read_secret_file(path).unwrap_err();
            assert!(e.contains(want), "{}: {e}", path.display());
        }
    }

    #[test]
    fn env_secrets() {
        let env = |name: &str| match name {
            "SET" => Some(OsString::from("pw\n")),
            "EMPTY" => Some(OsString::new()),
            _ => None,
        };
        let s = read_secret_env("SET", &env).unwrap();
        assert_eq!(s.expose(), b"pw\n");
        assert_eq!(s.origin().to_string(), "env:SET");
        for (name, want) in [
            ("UNSET", "UNSET is not set"),
            ("EMPTY", "EMPTY is empty"),
            ("A=B", "invalid environment variable name"),
            ("", "invalid environment variable name"),
        ] {
            let e = read_secret_env(name, &env).unwrap_err();
            assert!(e.contains(want), "{name}: {e}");
        }
    }

    #[test]
    fn debug_never_shows_the_bytes() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:#?}", Some(s)), "Some(\n    <redacted>,\n)");
    }
}
