//! File helpers for certificates and private keys: key files must be private to the agent's user,
//! and files are written whole (temporary file, then rename).
use std::{
    fs::{self, OpenOptions, Permissions},
    io::{ErrorKind, Read, Write},
    os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use super::TlsError;

/// Reads a private key file after checking, on the opened file, that it is owned by the agent's
/// effective user and not accessible to group or other.
pub(crate) fn read_private(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read_err = |e| TlsError::Read(path.to_path_buf(), e);
    let mut file = fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    check_private(
        path,
        meta.mode(),
        meta.uid(),
        nix::unistd::geteuid().as_raw(),
    )?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(read_err)?;
    Ok(bytes)
}

/// The ownership and mode rule for private key files, separate from I/O for testing.
pub(crate) fn check_private(path: &Path, mode: u32, owner: u32, euid: u32) -> Result<(), TlsError> {
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyMode {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    if owner != euid {
        return Err(TlsError::KeyOwner {
            path: path.to_path_buf(),
            owner,
            expected: euid,
        });
    }
    Ok(())
}

/// Reads a whole (public) file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|e| TlsError::Read(path.to_path_buf(), e))
}

/// Whether `path` exists (a broken symlink or an unreadable parent is an error, not "absent").
pub(crate) fn exists(path: &Path) -> Result<bool, TlsError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(TlsError::Read(path.to_path_buf(), e)),
    }
}

/// Writes `contents` to `<path>.tmp` with exactly `mode` (whatever the umask), syncs it, and
/// renames it over `path`. Returns the temporary path's error context on failure.
pub(crate) fn write_whole(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = tmp_path(path);
    let write_err = |e| TlsError::Write(tmp.clone(), e);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(write_err(e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(write_err)?;
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(write_err)?;
    file.write_all(contents).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    fs::rename(&tmp, path).map_err(|e| TlsError::Write(path.to_path_buf(), e))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_rule() {
        let p = Path::new("/k");
        // (mode, owner, euid, accepted)
        let cases = [
            (0o100600, 0, 0, true),
            (0o100400, 0, 0, true),
            (0o100640, 0, 0, false),
            (0o100604, 0, 0, false),
            (0o100620, 0, 0, false),
            (0o100700, 0, 0, true),
            (0o100600, 1000, 0, false),
            (0o100600, 1000, 1000, true),
        ];
        for (mode, owner, euid, ok) in cases {
            let got = check_private(p, mode, owner, euid);
            assert_eq!(
                got.is_ok(),
                ok,
                "mode {mode:o} owner {owner} euid {euid}: {got:?}"
            );
        }
    }

    #[test]
    fn write_whole_sets_exact_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_whole(&path, b"one", 0o600).unwrap();
        write_whole(&path, b"two", 0o644).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o644);
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!exists(&tmp_path(&path)).unwrap());
        let err = read_private(&path).unwrap_err();
        assert!(
            matches!(err, TlsError::KeyMode { mode: 0o644, .. }),
            "{err}"
        );
    }
}
