//! `tollgate run` plumbing. Tests that enroll into a real cgroup need root and a cgroup v2
//! mount; without them they say so on stderr, and fail in CI (`CI=true`), as the root suites do.
use std::{
    future::Future,
    io::Write as _,
    path::{Path, PathBuf},
    pin::Pin,
    process::Stdio,
    sync::{Arc, Mutex, atomic::AtomicU32},
    time::{Duration, Instant},
};

use tokio::sync::watch;

use super::*;
use crate::admin::{AdminApi, StatusReport};

/// Tests that install the signal forwarder (or signal this process) run one at a time.
static SIGNALS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// For tests outside a runtime.
fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SIGNALS.blocking_lock()
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// A cgroup v2 directory made for one test, removed on drop.
struct TestCgroup {
    dir: PathBuf,
}

impl TestCgroup {
    /// `None` (with a note) when not root or no cgroup v2 mount; panics then if root tests
    /// are required.
    fn new() -> Option<Self> {
        static N: AtomicU32 = AtomicU32::new(0);
        let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.join("cgroup.controllers").exists());
        let usable = nix::unistd::geteuid().is_root() && root.is_some();
        if !usable {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
                "this test needs root and a cgroup v2 mount (required in CI)"
            );
            // Straight to the file descriptor: libtest captures only the print macros.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: needs root and a cgroup v2 mount"
            );
            return None;
        }
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = root?.join(format!("tollgate-test-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        Some(Self { dir })
    }

    fn name(&self) -> String {
        self.dir.file_name().unwrap().to_string_lossy().into_owned()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("could not remove {}", self.dir.display());
    }
}

#[test]
fn exit_code_mirrors_the_child() {
    // (raw wait status, exit code)
    let cases = [
        (0, 0),
        (3 << 8, 3),
        (255 << 8, 255),
        (libc::SIGKILL, 128 + 9),
        (libc::SIGTERM, 128 + 15),
        (libc::SIGSEGV | 0x80, 128 + 11), // core dumped
    ];
    for (raw, want) in cases {
        assert_eq!(exit_code(ExitStatus::from_raw(raw)), want, "raw {raw:#x}");
    }
}

#[test]
fn run_errors_map_to_exit_codes() {
    let spawn = |kind| RunError::Spawn {
        program: "x".into(),
        source: io::Error::from(kind),
    };
    let cases = [
        (spawn(io::ErrorKind::NotFound), EXIT_NOT_FOUND),
        (spawn(io::ErrorKind::PermissionDenied), EXIT_CANNOT_EXECUTE),
        (
            RunError::Enroll {
                cgroup: "/c".into(),
                source: io::Error::from(io::ErrorKind::NotFound),
            },
            EXIT_TOLLGATE,
        ),
        (RunError::NotAbsolute("c".into()), EXIT_TOLLGATE),
        (
            RunError::Signals(io::Error::from(io::ErrorKind::Other)),
            EXIT_TOLLGATE,
        ),
    ];
    for (err, want) in cases {
        assert_eq!(err.exit_code(), want, "{err}");
    }
}

#[test]
fn failed_enrollment_never_runs_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ran");
    // A directory without cgroup.procs: the pre-exec write fails.
    let mut cmd = Command::new("touch");
    cmd.arg(&marker);
    let err = spawn_in_cgroup(tmp.path(), &mut cmd).unwrap_err();
    assert!(matches!(err, RunError::Enroll { .. }), "{err}");
    assert_eq!(err.exit_code(), EXIT_TOLLGATE);
    assert!(
        err.to_string().contains("cannot enroll into cgroup"),
        "{err}"
    );
    // Even a missing program reports the enrollment, which comes first.
    let mut cmd = Command::new("/nonexistent/tollgate-test-program");
    let err = spawn_in_cgroup(tmp.path(), &mut cmd).unwrap_err();
    assert!(matches!(err, RunError::Enroll { .. }), "{err}");
    assert!(!marker.exists(), "the command ran unenrolled");

    let err = spawn_in_cgroup(Path::new("relative/cg"), &mut Command::new("true")).unwrap_err();
    assert!(matches!(err, RunError::NotAbsolute(_)), "{err}");
}

#[test]
fn child_runs_inside_the_cgroup() {
    let Some(cg) = TestCgroup::new() else { return };
    let mut cmd = Command::new("cat");
    cmd.arg("/proc/self/cgroup").stdout(Stdio::piped());
    let out = spawn_in_cgroup(&cg.dir, &mut cmd)
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let v2 = text.lines().find(|l| l.starts_with("0::")).unwrap();
    assert!(v2.ends_with(&format!("/{}", cg.name())), "{text}");
}

#[test]
fn exec_failures_after_enrollment_are_126_or_127() {
    let Some(cg) = TestCgroup::new() else { return };
    let err = spawn_in_cgroup(
        &cg.dir,
        &mut Command::new("/nonexistent/tollgate-test-program"),
    )
    .unwrap_err();
    assert!(matches!(err, RunError::Spawn { .. }), "{err}");
    assert_eq!(err.exit_code(), EXIT_NOT_FOUND);
    let tmp = tempfile::tempdir().unwrap();
    let err = spawn_in_cgroup(&cg.dir, &mut Command::new(tmp.path())).unwrap_err();
    assert_eq!(err.exit_code(), EXIT_CANNOT_EXECUTE, "{err}");
}

#[test]
fn exit_status_passes_through() {
    let Some(cg) = TestCgroup::new() else { return };
    let _guard = serial();
    let cases = [
        (vec!["true"], 0),
        (vec!["sh", "-c", "exit 3"], 3),
        (vec!["sh", "-c", "kill -TERM $$"], 128 + 15),
    ];
    for (command, want) in cases {
        let status = run_in_cgroup(&cg.dir, &os(&command)).unwrap();
        assert_eq!(exit_code(status), want, "{command:?}");
    }
}

#[test]
fn signals_sent_to_tollgate_run_reach_the_child() {
    let Some(cg) = TestCgroup::new() else { return };
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let script = format!(
        "trap 'exit 42' USR1; trap 'exit 43' TERM; echo $$ > {}; while :; do sleep 0.02; done",
        ready.display()
    );
    for (signal, want) in [(libc::SIGUSR1, 42), (libc::SIGTERM, 43)] {
        let _ = std::fs::remove_file(&ready);
        let dir = cg.dir.clone();
        let command = os(&["sh", "-c", &script]);
        let runner = std::thread::spawn(move || run_in_cgroup(&dir, &command));
        let deadline = Instant::now() + Duration::from_secs(10);
        let child: libc::pid_t = loop {
            if let Some(pid) = std::fs::read_to_string(&ready)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "child never got ready");
            std::thread::sleep(Duration::from_millis(10));
        };
        // To this (test) process, as `kill <pid of tollgate run>` would.
        // SAFETY: plain kill(2); the forwarder handles the signal.
        assert_eq!(unsafe { libc::kill(libc::getpid(), signal) }, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !runner.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !runner.is_finished() {
            // SAFETY: plain kill(2) of the test's own child.
            unsafe { libc::kill(child, libc::SIGKILL) };
            panic!("signal {signal} was not forwarded to the child");
        }
        let status = runner.join().unwrap().unwrap();
        assert_eq!(exit_code(status), want, "signal {signal}");
    }
}

/// Plays the agent's part of `RunEnroll`/`RunRelease` and records the requests.
struct FakeAgent {
    answer: Response,
    seen: Mutex<Vec<Request>>,
}

impl AdminApi for FakeAgent {
    fn status(&self) -> StatusReport {
        StatusReport::default()
    }

    fn handle<'a>(&'a self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + 'a>> {
        Box::pin(async move {
            let answer = match &req {
                Request::RunEnroll { .. } => self.answer.clone(),
                _ => Response::Ok,
            };
            self.seen.lock().unwrap().push(req);
            answer
        })
    }
}

/// Runs `tollgate run -w ci -- CMD` against a fake agent on a real admin socket.
async fn run_with_agent(answer: Response, command: &[&str]) -> (i32, Vec<Request>) {
    let tmp = tempfile::tempdir().unwrap();
    let config = Config {
        state_dir: tmp.path().to_owned(),
        ..Config::default()
    };
    let (listener, gid) = admin::bind(&config.admin_socket(), None).unwrap();
    let fake = Arc::new(FakeAgent {
        answer,
        seen: Mutex::new(Vec::new()),
    });
    let (_stop, rx) = watch::channel(false);
    tokio::spawn(admin::serve(listener, fake.clone(), gid, rx));
    let args = RunArgs {
        workload: "ci".into(),
        command: os(command),
    };
    let code = run(&config, &args).await;
    let seen = fake.seen.lock().unwrap().clone();
    (code, seen)
}

#[tokio::test]
async fn without_an_agent_the_command_does_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ran");
    let config = Config {
        state_dir: tmp.path().to_owned(),
        ..Config::default()
    };
    let args = RunArgs {
        workload: "ci".into(),
        command: os(&["touch", marker.to_str().unwrap()]),
    };
    assert_eq!(run(&config, &args).await, EXIT_TOLLGATE);
    assert!(!marker.exists());
}

#[tokio::test]
async fn a_refusal_or_a_bad_cgroup_does_not_run_the_command() {
    let _guard = SIGNALS.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ran");
    let touch = ["touch", marker.to_str().unwrap()];

    let (code, seen) = run_with_agent(Response::error("no workload named \"ci\""), &touch).await;
    assert_eq!(code, EXIT_TOLLGATE);
    assert_eq!(
        seen,
        [Request::RunEnroll {
            workload: "ci".into()
        }]
    );

    // Enrolled into a directory that is no cgroup: refused, and still released.
    let bogus = tmp.path().display().to_string();
    let (code, seen) = run_with_agent(
        Response::RunEnrolled {
            cgroup: bogus.clone(),
        },
        &touch,
    )
    .await;
    assert_eq!(code, EXIT_TOLLGATE);
    assert_eq!(seen.last(), Some(&Request::RunRelease { cgroup: bogus }));
    assert!(!marker.exists(), "the command ran unenrolled");
}

#[tokio::test]
async fn enrolled_run_passes_the_exit_code_and_releases() {
    let Some(cg) = TestCgroup::new() else { return };
    let cgroup = cg.dir.display().to_string();
    let (code, seen) = {
        let _guard = SIGNALS.lock().await;
        run_with_agent(
            Response::RunEnrolled {
                cgroup: cgroup.clone(),
            },
            &[
                "sh",
                "-c",
                "grep -q \"/$0\\$\" /proc/self/cgroup && exit 7",
                &cg.name(),
            ],
        )
        .await
    };
    assert_eq!(code, 7);
    assert_eq!(
        seen,
        [
            Request::RunEnroll {
                workload: "ci".into()
            },
            Request::RunRelease { cgroup }
        ]
    );
}
