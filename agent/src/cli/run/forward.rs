//! Relays the signals `tollgate run` receives to its child, from inside the signal handler
//! (async-signal-safe: atomics and one syscall). The child is addressed by pidfd, so a signal
//! can never reach a recycled pid.
use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicI32, AtomicU64, Ordering::SeqCst},
    },
};

use libc::{c_int, pid_t, siginfo_t};
use signal_hook_registry::{SigId, register_sigaction, unregister};

/// Signals relayed to the child.
pub const FORWARDED: [c_int; 7] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// What to do with one received signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send it to the child.
    Forward,
    /// The child is not started yet: deliver it once it is.
    Hold,
    /// Drop it.
    Skip,
}

/// Decides for a signal with `si_code` `code`, sent by `sender` (when the code carries a
/// sender), while the child is `child` (0: not started yet, negative: gone).
pub fn decide(code: c_int, sender: Option<pid_t>, child: pid_t) -> Action {
    // From the terminal (^C, ^\, window size, hangup): the kernel signalled the whole
    // foreground process group, the child included; relaying would deliver it twice.
    if code == libc::SI_KERNEL {
        return Action::Skip;
    }
    match child {
        0 => Action::Hold,
        c if c < 0 => Action::Skip,
        // The child signalling its parent does not want it back.
        c if sender == Some(c) => Action::Skip,
        _ => Action::Forward,
    }
}

/// Where signals go; shared with the handlers.
#[derive(Debug)]
struct Target {
    /// The child's pid; 0 before start, -1 after stop.
    pid: AtomicI32,
    /// A pidfd of the child, or -1 (kernels before 5.3: plain `kill`).
    pidfd: AtomicI32,
    /// Signals received before the child started, as a bit set.
    pending: AtomicU64,
}

impl Target {
    fn on_signal(&self, info: &siginfo_t) {
        let signo = info.si_signo;
        let code = info.si_code;
        let sender = match code {
            // SAFETY: these codes fill si_pid.
            libc::SI_USER | libc::SI_QUEUE | libc::SI_TKILL => Some(unsafe { info.si_pid() }),
            _ => None,
        };
        match decide(code, sender, self.pid.load(SeqCst)) {
            Action::Skip => {}
            Action::Forward => self.send(signo),
            Action::Hold => {
                if (0..64).contains(&signo) {
                    self.pending.fetch_or(1 << signo, SeqCst);
                }
                // The child may have started meanwhile; whoever takes the bits delivers them.
                if self.pid.load(SeqCst) > 0 {
                    self.flush();
                }
            }
        }
    }

    fn send(&self, signo: c_int) {
        let fd = self.pidfd.load(SeqCst);
        let pid = self.pid.load(SeqCst);
        // SAFETY: plain syscalls, async-signal-safe; failures (child gone) are ignored.
        unsafe {
            if fd >= 0 {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd,
                    signo,
                    std::ptr::null::<siginfo_t>(),
                    0,
                );
            } else if pid > 0 {
                libc::kill(pid, signo);
            }
        }
    }

    fn flush(&self) {
        let bits = self.pending.swap(0, SeqCst);
        for signo in 1..64 {
            if bits & (1 << signo) != 0 {
                self.send(signo);
            }
        }
    }
}

/// Installed handlers; uninstalled on drop.
pub struct Forwarder {
    ids: Vec<SigId>,
    target: Arc<Target>,
}

impl Forwarder {
    /// Installs the handlers: from now on the signals no longer end this process. Signals
    /// arriving before [`Forwarder::start`] are held and delivered then.
    pub fn install() -> io::Result<Self> {
        let target = Arc::new(Target {
            pid: AtomicI32::new(0),
            pidfd: AtomicI32::new(-1),
            pending: AtomicU64::new(0),
        });
        let mut me = Self {
            ids: Vec::with_capacity(FORWARDED.len()),
            target,
        };
        for sig in FORWARDED {
            let t = me.target.clone();
            // SAFETY: the action only uses atomics and async-signal-safe syscalls.
            let id = unsafe { register_sigaction(sig, move |info: &siginfo_t| t.on_signal(info)) }?;
            me.ids.push(id);
        }
        Ok(me)
    }

    /// The child is `pid`: deliver held signals and forward from now on.
    pub fn start(&self, pid: u32) {
        let Ok(pid) = pid_t::try_from(pid) else {
            return;
        };
        // SAFETY: pidfd_open has no memory arguments.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if let Ok(fd) = c_int::try_from(fd) {
            self.target.pidfd.store(fd, SeqCst);
        }
        self.target.pid.store(pid, SeqCst);
        self.target.flush();
    }

    /// The child has exited: forward nothing more.
    pub fn stop(&self) {
        self.target.pid.store(-1, SeqCst);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop();
        for id in self.ids.drain(..) {
            unregister(id);
        }
        let fd = self.target.pidfd.swap(-1, SeqCst);
        if fd >= 0 {
            // SAFETY: the pidfd was opened by `start` and is closed once.
            unsafe { libc::close(fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        use Action::*;
        let child = 4242;
        // (si_code, sender, child, action)
        let cases: [(c_int, Option<pid_t>, pid_t, Action); 9] = [
            (libc::SI_KERNEL, None, child, Skip),
            (libc::SI_KERNEL, None, 0, Skip),
            (libc::SI_USER, Some(1), child, Forward),
            (libc::SI_USER, Some(child), child, Skip),
            (libc::SI_QUEUE, Some(77), child, Forward),
            (libc::SI_TKILL, Some(77), child, Forward),
            (libc::SI_USER, Some(1), 0, Hold),
            (libc::SI_USER, Some(1), -1, Skip),
            (libc::SI_USER, Some(child), 0, Hold),
        ];
        for (code, sender, c, want) in cases {
            assert_eq!(
                decide(code, sender, c),
                want,
                "code {code} sender {sender:?} child {c}"
            );
        }
    }
}
