//! The admin socket end to end: a real Unix socket in a tempdir, a fake `AdminApi`.
use std::{
    future::Future,
    io::{BufRead, BufReader, Write},
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use serde_json::json;
use tokio::{sync::watch, task::JoinHandle};

use super::*;

/// Answers from fixed data; echoes what it was asked where useful.
struct FakeApi;

impl AdminApi for FakeApi {
    fn status(&self) -> StatusReport {
        StatusReport {
            ready: true,
            policy_generation: 7,
            version: "test".into(),
            ..Default::default()
        }
    }

    fn handle<'a>(&'a self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + 'a>> {
        Box::pin(async move {
            match req {
                Request::Sessions { filter } => Response::Sessions {
                    sessions: vec![json!({"workload": filter.workload, "limit": filter.limit})],
                },
                Request::Session { id } if id == "known" => Response::Session {
                    session: Some(json!({"id": id})),
                },
                Request::Session { .. } => Response::Session { session: None },
                Request::RunEnroll { workload } => Response::RunEnrolled {
                    cgroup: format!("/sys/fs/cgroup/tollgate.slice/{workload}"),
                },
                Request::RunRelease { .. } => Response::Ok,
                Request::Status => Response::error("status reached handle"),
            }
        })
    }
}

struct Server {
    _dir: tempfile::TempDir,
    path: PathBuf,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn start(admin_group: Option<&str>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    let (listener, gid) = bind(&path, admin_group).unwrap();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, Arc::new(FakeApi), gid, rx));
    Server {
        _dir: dir,
        path,
        stop,
        task,
    }
}

/// True when root; otherwise says why the rest of the test is skipped, and fails in CI
/// (`CI=true`), as the root suites do.
fn is_root(why: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
        "{why} (required in CI)"
    );
    // Straight to the file descriptor: libtest captures only the print macros.
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
    false
}

#[tokio::test]
async fn every_request_gets_its_answer() {
    let s = start(None).await;
    let status = call(&s.path, &Request::Status).await.unwrap();
    let Response::Status(report) = status else {
        panic!("{status:?}")
    };
    assert!(report.ready);
    assert_eq!(report.policy_generation, 7);

    let cases = [
        (
            Request::Sessions {
                filter: SessionQuery {
                    workload: Some("billing".into()),
                    limit: Some(3),
                    ..Default::default()
                },
            },
            Response::Sessions {
                sessions: vec![json!({"workload": "billing", "limit": 3})],
            },
        ),
        (
            Request::Session { id: "known".into() },
            Response::Session {
                session: Some(json!({"id": "known"})),
            },
        ),
        (
            Request::Session { id: "other".into() },
            Response::Session { session: None },
        ),
        (
            Request::RunEnroll {
                workload: "ci".into(),
            },
            Response::RunEnrolled {
                cgroup: "/sys/fs/cgroup/tollgate.slice/ci".into(),
            },
        ),
        (
            Request::RunRelease {
                cgroup: "/sys/fs/cgroup/tollgate.slice/ci".into(),
            },
            Response::Ok,
        ),
    ];
    for (req, want) in cases {
        assert_eq!(call(&s.path, &req).await.unwrap(), want, "{req:?}");
    }
}

/// Speaks the protocol by hand on a blocking socket.
fn raw_exchange(path: &Path, lines: &[&[u8]]) -> Vec<serde_json::Value> {
    let stream = std::os::unix::net::UnixStream::connect(path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    for line in lines {
        // The agent may close early (oversized line): keep what it answered.
        if writer.write_all(line).is_err() {
            break;
        }
    }
    let _ = writer.shutdown(std::net::Shutdown::Write);
    BufReader::new(stream)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn one_connection_many_requests_and_bad_lines() {
    let s = start(None).await;
    let path = s.path.clone();
    let answers = tokio::task::spawn_blocking(move || {
        raw_exchange(
            &path,
            &[
                b"{\"op\":\"session\",\"id\":\"known\"}\n",
                b"\n",
                b"not json\n",
                b"{\"op\":\"reboot\"}\n",
                b"{\"op\":\"run_release\",\"cgroup\":\"/x\"}",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert_eq!(
        answers[0],
        json!({"result": "session", "session": {"id": "known"}})
    );
    for bad in &answers[1..3] {
        assert_eq!(bad["result"], "error");
        let msg = bad["message"].as_str().unwrap();
        assert!(msg.starts_with("invalid request"), "{msg}");
    }
    assert_eq!(answers[3], json!({"result": "ok"}));
}

#[tokio::test]
async fn oversized_request_is_refused_and_closed() {
    let s = start(None).await;
    let path = s.path.clone();
    let answers = tokio::task::spawn_blocking(move || {
        let mut big = vec![b' '; MAX_REQUEST_LINE + 1];
        big.push(b'\n');
        raw_exchange(&path, &[&big, b"{\"op\":\"status\"}\n"])
    })
    .await
    .unwrap();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["result"], "error");
    assert!(
        answers[0]["message"]
            .as_str()
            .unwrap()
            .contains("exceeds 65536 bytes")
    );
}

#[tokio::test]
async fn socket_is_0660_and_takes_the_admin_group() {
    let s = start(None).await;
    let meta = std::fs::metadata(&s.path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), nix::unistd::getegid().as_raw());
    // No temporary socket is left beside it.
    let names: Vec<_> = std::fs::read_dir(s.path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["admin.sock"]);

    if !is_root("chown to another group needs root") {
        return;
    }
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(65534))
        .unwrap()
        .expect("group 65534 (nogroup) exists");
    let g = start(Some(&group.name)).await;
    assert_eq!(std::fs::metadata(&g.path).unwrap().gid(), 65534);
}

#[tokio::test]
async fn bind_refuses_unknown_group_live_socket_and_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    assert!(matches!(
        bind(&path, Some("no-such-group-tollgate")),
        Err(AdminError::UnknownGroup(_))
    ));
    assert!(!path.exists());

    std::fs::write(&path, "keep me").unwrap();
    assert!(matches!(bind(&path, None), Err(AdminError::NotASocket(_))));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    std::fs::remove_file(&path).unwrap();

    let live = start(None).await;
    assert!(matches!(bind(&live.path, None), Err(AdminError::InUse(_))));
    // The live agent still answers.
    assert!(matches!(
        call(&live.path, &Request::Status).await,
        Ok(Response::Status(_))
    ));
}

#[tokio::test]
async fn stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let err = call(&path, &Request::Status).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no agent at {}: is `tollgate agent` running? (connection refused)",
            path.display()
        )
    );
    let (listener, _) = bind(&path, None).unwrap();
    let (_stop, rx) = watch::channel(false);
    tokio::spawn(serve(listener, Arc::new(FakeApi), None, rx));
    assert!(matches!(
        call(&path, &Request::Status).await,
        Ok(Response::Status(_))
    ));
}

#[tokio::test]
async fn missing_socket_says_no_agent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    let err = call(&path, &Request::Status).await.unwrap_err();
    assert!(
        matches!(
            err,
            AdminError::NotRunning {
                reason: "no socket",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("no agent at "), "{err}");
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let s = start(None).await;
    let mut held = tokio::net::UnixStream::connect(&s.path).await.unwrap();
    s.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), s.task)
        .await
        .expect("serve returns on shutdown")
        .unwrap();
    // The open connection is closed too.
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut held, &mut buf),
    )
    .await
    .expect("connection closed on shutdown")
    .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn dropping_the_shutdown_sender_stops_serving() {
    let s = start(None).await;
    drop(s.stop);
    tokio::time::timeout(Duration::from_secs(5), s.task)
        .await
        .expect("serve returns when the shutdown sender is gone")
        .unwrap();
}

/// Connects from a thread whose credentials are switched to `uid`/`gid` with raw syscalls
/// (glibc's setresuid would change every thread of the test process).
fn connect_as(path: &Path, uid: u32, gid: u32) -> std::io::Result<Vec<serde_json::Value>> {
    let path = path.to_owned();
    std::thread::spawn(move || {
        // SAFETY: plain syscalls on the current thread's credentials; the thread exits after.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<u32>()),
                0
            );
            assert_eq!(libc::syscall(libc::SYS_setresgid, gid, gid, gid), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, uid, uid, uid), 0);
        }
        let stream = std::os::unix::net::UnixStream::connect(&path)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        (&stream).write_all(b"{\"op\":\"status\"}\n")?;
        stream.shutdown(std::net::Shutdown::Write)?;
        Ok(BufReader::new(stream)
            .lines()
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect())
    })
    .join()
    .unwrap()
}

#[tokio::test]
async fn peers_must_be_root_or_in_the_admin_group() {
    if !is_root("switching a thread's credentials needs root") {
        return;
    }
    // Root-only socket: the mode keeps others out before any peer check.
    let root_only = start(None).await;
    let dir = root_only.path.parent().unwrap().to_owned();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = root_only.path.clone();
    let err = tokio::task::spawn_blocking(move || connect_as(&p, 65534, 65534))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);

    // Open the mode up: the SO_PEERCRED check alone must refuse uid 65534.
    std::fs::set_permissions(&root_only.path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let p = root_only.path.clone();
    let answers = tokio::task::spawn_blocking(move || connect_as(&p, 65534, 65534))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["result"], "error");
    assert!(
        answers[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("permission denied: uid 65534")
    );

    // Admin group 65534: a peer whose gid is 65534 gets in.
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(65534))
        .unwrap()
        .expect("group 65534 exists");
    let admin = start(Some(&group.name)).await;
    let dir = admin.path.parent().unwrap().to_owned();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = admin.path.clone();
    let answers = tokio::task::spawn_blocking(move || connect_as(&p, 65534, 65534))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["result"], "status", "{answers:?}");
}
