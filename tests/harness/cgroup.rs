//! Putting a child process into a cgroup before it runs anything.
use std::{
    ffi::CString,
    os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _, process::CommandExt as _},
    path::Path,
    process::Command,
};

/// Makes `cmd`'s child join the cgroup directory `dir` between fork and exec, so its very first
/// `connect()` already runs in that cgroup.
pub fn in_cgroup<'a>(cmd: &'a mut Command, dir: &Path) -> &'a mut Command {
    let procs = CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
        .expect("cgroup path without NUL");
    // SAFETY: the closure only calls async-signal-safe functions (open, write, close) on data
    // prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if written != 1 {
                return Err(err);
            }
            Ok(())
        })
    }
}

/// The cgroup v2 id of `dir` (its inode number).
pub fn cgroup_id(dir: &Path) -> u64 {
    std::fs::metadata(dir)
        .unwrap_or_else(|e| panic!("stat {}: {e}", dir.display()))
        .ino()
}

/// Creates the cgroup directory `dir` (and parents).
pub fn mkdir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
}
