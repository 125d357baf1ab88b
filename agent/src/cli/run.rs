//! `tollgate run`: enroll a cgroup through the agent, run the command inside it, relay
//! signals, release the cgroup, and exit with the command's status.
mod forward;

use std::{
    ffi::{CString, OsString},
    io::{self, Read},
    os::{
        fd::{AsRawFd, RawFd},
        unix::{
            ffi::OsStrExt,
            process::{CommandExt, ExitStatusExt},
        },
    },
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus},
};

use nix::{
    errno::Errno,
    fcntl::OFlag,
    sys::wait::{Id, WaitPidFlag, waitid},
    unistd::pipe2,
};

pub use self::forward::FORWARDED;
use self::forward::Forwarder;
use crate::{
    admin::{self, Request, Response},
    cli::RunArgs,
    config::Config,
};

/// tollgate itself failed (no agent, refused, cannot enroll): the command did not run.
pub const EXIT_TOLLGATE: i32 = 125;
/// The command was found but could not be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// The command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Why the command could not be run or waited for.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The agent's cgroup path is unusable.
    #[error("the agent returned a cgroup path that is not absolute: {0}")]
    NotAbsolute(PathBuf),
    /// Writing to `<cgroup>/cgroup.procs` failed: the command was not run.
    #[error("cannot enroll into cgroup {cgroup}: {source}")]
    Enroll {
        /// The cgroup directory.
        cgroup: PathBuf,
        /// The write error.
        #[source]
        source: io::Error,
    },
    /// The command could not be executed.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The command.
        program: String,
        /// The exec error.
        #[source]
        source: io::Error,
    },
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] io::Error),
    /// Waiting for the command failed.
    #[error("cannot wait for {program}: {source}")]
    Wait {
        /// The command.
        program: String,
        /// The wait error.
        #[source]
        source: io::Error,
    },
}

impl RunError {
    /// Exit code of `tollgate run` for this error (the shell's 126/127 for exec failures).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                EXIT_NOT_FOUND
            }
            Self::Spawn { .. } => EXIT_CANNOT_EXECUTE,
            _ => EXIT_TOLLGATE,
        }
    }
}

/// Exit code mirroring the child's status: its code, or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => EXIT_TOLLGATE,
    }
}

/// Runs `tollgate run`; returns the exit code.
pub async fn run(config: &Config, args: &RunArgs) -> i32 {
    let socket = config.admin_socket();
    let enroll = Request::RunEnroll {
        workload: args.workload.clone(),
    };
    let cgroup = match admin::call(&socket, &enroll).await {
        Ok(Response::RunEnrolled { cgroup }) => PathBuf::from(cgroup),
        Ok(Response::Error { message }) => {
            eprintln!("tollgate run: the agent refused: {message}; the command was not run");
            return EXIT_TOLLGATE;
        }
        Ok(other) => {
            eprintln!(
                "tollgate run: unexpected answer from the agent: {other:?}; the command was not run"
            );
            return EXIT_TOLLGATE;
        }
        Err(e) => {
            eprintln!("tollgate run: {e}; the command was not run");
            return EXIT_TOLLGATE;
        }
    };
    let command = args.command.clone();
    let dir = cgroup.clone();
    let outcome = tokio::task::spawn_blocking(move || run_in_cgroup(&dir, &command)).await;
    release(&socket, &cgroup).await;
    match outcome {
        Ok(Ok(status)) => exit_code(status),
        Ok(Err(e)) => {
            eprintln!("tollgate run: {e}");
            e.exit_code()
        }
        Err(e) => {
            eprintln!("tollgate run: {e}");
            EXIT_TOLLGATE
        }
    }
}

/// Tells the agent the cgroup may go; a failure is only reported.
async fn release(socket: &Path, cgroup: &Path) {
    let req = Request::RunRelease {
        cgroup: cgroup.display().to_string(),
    };
    match admin::call(socket, &req).await {
        Ok(Response::Ok) => {}
        Ok(Response::Error { message }) => {
            eprintln!(
                "tollgate run: warning: releasing {}: {message}",
                cgroup.display()
            );
        }
        Ok(other) => eprintln!("tollgate run: warning: releasing: unexpected answer {other:?}"),
        Err(e) => eprintln!(
            "tollgate run: warning: cannot release {}: {e}",
            cgroup.display()
        ),
    }
}

/// Runs `command` (program and arguments; stdio, environment and working directory inherited)
/// inside `cgroup`, relaying [`FORWARDED`] signals to it, and waits for it. Blocking.
pub fn run_in_cgroup(cgroup: &Path, command: &[OsString]) -> Result<ExitStatus, RunError> {
    let (program, args) = command.split_first().ok_or_else(|| RunError::Spawn {
        program: String::new(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
    })?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    // Installed before the child exists, so that no signal in between ends this process.
    let forwarder = Forwarder::install().map_err(RunError::Signals)?;
    let mut child = spawn_in_cgroup(cgroup, &mut cmd)?;
    forwarder.start(child.id());
    let waited = wait_exited(child.id());
    // The child is a zombie now: its pid cannot be reused until it is reaped below.
    forwarder.stop();
    drop(forwarder);
    waited
        .and_then(|()| child.wait())
        .map_err(|source| RunError::Wait {
            program: program.to_string_lossy().into_owned(),
            source,
        })
}

/// Blocks until child `pid` has exited, without reaping it.
fn wait_exited(pid: u32) -> io::Result<()> {
    let pid = nix::unistd::Pid::from_raw(pid.try_into().map_err(io::Error::other)?);
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Spawns `cmd` so that it joins `cgroup` (by writing "0" to its `cgroup.procs`) before it
/// execs; if that write fails, the command is not run and [`RunError::Enroll`] is returned.
pub fn spawn_in_cgroup(cgroup: &Path, cmd: &mut Command) -> Result<Child, RunError> {
    if !cgroup.is_absolute() {
        return Err(RunError::NotAbsolute(cgroup.to_owned()));
    }
    let enroll_err = |source| RunError::Enroll {
        cgroup: cgroup.to_owned(),
        source,
    };
    let procs = CString::new(cgroup.join("cgroup.procs").as_os_str().as_bytes())
        .map_err(|e| enroll_err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    // The child writes one byte here when enrollment fails, telling it from an exec failure.
    let (marker_read, marker_write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| enroll_err(e.into()))?;
    let marker = marker_write.as_raw_fd();
    // SAFETY: the hook only makes async-signal-safe syscalls on data prepared before fork.
    unsafe {
        cmd.pre_exec(move || enroll_self(&procs, marker));
    }
    let spawned = cmd.spawn();
    drop(marker_write);
    spawned.map_err(|source| {
        let mut byte = [0u8; 1];
        let enroll_failed = std::fs::File::from(marker_read)
            .read(&mut byte)
            .is_ok_and(|n| n == 1);
        if enroll_failed {
            enroll_err(source)
        } else {
            RunError::Spawn {
                program: cmd.get_program().to_string_lossy().into_owned(),
                source,
            }
        }
    })
}

/// In the forked child, before exec: move this process into the cgroup. Async-signal-safe.
fn enroll_self(procs: &CString, marker: RawFd) -> io::Result<()> {
    // SAFETY: raw syscalls on a valid C string and fds; no allocation after fork.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            let e = io::Error::last_os_error();
            libc::write(marker, b"E".as_ptr().cast(), 1);
            return Err(e);
        }
        let n = libc::write(fd, b"0".as_ptr().cast(), 1);
        let e = io::Error::last_os_error();
        libc::close(fd);
        if n != 1 {
            libc::write(marker, b"E".as_ptr().cast(), 1);
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
