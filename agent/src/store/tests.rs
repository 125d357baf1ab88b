//! Store tests against a real SQLite file in a temporary directory.
use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection, sqlite::SqliteConnectOptions};

use super::*;
use crate::config::AuditFailure;
use crate::store::{
    sink::{ROOM, Shared},
    writer::{BATCH_MAX, FULL},
};

const T0: u64 = 1_700_000_000; // 2023-11-14T22:13:20Z
/// How long [`wait_queued`] and [`wait_done`] wait for the writer (a deadline in wall time,
/// not a count of 1 ms sleeps: a loaded machine makes each sleep and commit longer).
const WRITER_WAIT: Duration = Duration::from_secs(10);

pub(in crate::store) fn at(secs: u64, micros: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + secs) + Duration::from_micros(micros)
}

pub(in crate::store) fn rec(
    id: uuid::Uuid,
    workload: Option<&str>,
    started_at: SystemTime,
) -> ConnectionRecord {
    ConnectionRecord {
        id,
        started_at,
        workload: workload.map(str::to_owned),
        spiffe_id: workload.map(|w| format!("spiffe://example.org/{w}")),
        pid: 4242,
        uid: 1000,
        gid: 100,
        exe: Some("/usr/bin/psql".into()),
        cgroup: "/tollgate.slice/run-1.scope".into(),
        cgroup_id: 9876,
        systemd_unit: Some("run-1.scope".into()),
        dst: "[2001:db8::5]:5432".parse().expect("addr"),
        target: Some("db".into()),
        protocol: "tcp".into(),
        decision: "allow".into(),
        rule: "db-readers".into(),
        policy_generation: 7,
    }
}

pub(in crate::store) fn end(ended_at: SystemTime, reason: &str) -> ConnectionEnd {
    ConnectionEnd {
        ended_at,
        bytes_up: 120,
        bytes_down: 4096,
        end_reason: reason.into(),
    }
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state").join("audit.db")
}

/// A connection of its own, outside the store's pools.
async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .expect("raw connection")
}

/// The `end_reason` of connection `id` as a connection opened only now, outside the store, sees
/// it: `None` when the row is not committed.
async fn committed_end(path: &Path, id: uuid::Uuid) -> Option<Option<String>> {
    let mut conn = raw(path).await;
    let found: Option<Option<String>> =
        sqlx::query_scalar("SELECT end_reason FROM connections WHERE id = ?1")
            .bind(id.to_string())
            .fetch_optional(&mut conn)
            .await
            .expect("select");
    conn.close().await.expect("close");
    found
}

async fn count(path: &Path) -> i64 {
    let mut conn = raw(path).await;
    let n = sqlx::query_scalar("SELECT count(*) FROM connections")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    conn.close().await.expect("close");
    n
}

/// Waits until the sink's stats meet `done` (`what` names it in the failure).
async fn wait_stats(sink: &AuditSink, what: &str, done: impl Fn(&StoreStats) -> bool) {
    let deadline = Instant::now() + WRITER_WAIT;
    while Instant::now() < deadline {
        if done(&sink.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{what} not reached in {WRITER_WAIT:?}: {:?}", sink.stats());
}

/// Waits until the writer has taken everything out of the queue but `left`.
async fn wait_queued(sink: &AuditSink, left: usize) {
    wait_stats(sink, &format!("queue of {left}"), |s| s.queued == left).await;
}

/// Waits until the writer is inside a write (stuck on a lock, say): its batch is fixed, and it
/// takes nothing more from the queue until the write ends.
async fn wait_writing(sink: &AuditSink) {
    let deadline = Instant::now() + WRITER_WAIT;
    while !sink.writing_now() {
        assert!(
            Instant::now() < deadline,
            "no write under way in {WRITER_WAIT:?}: {:?}",
            sink.stats()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Holds the database's write lock from another connection until dropped (rolled back).
async fn lock_writes(path: &Path) -> SqliteConnection {
    let mut conn = raw(path).await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .expect("lock");
    conn
}

/// A store without a spool: every `begin` waits for its commit, as when the spool has no room,
/// and records commit as they come, so the tests of the queue's mechanics know what the
/// writer holds.
async fn open_unspooled(
    path: &Path,
    queue: usize,
) -> Result<(Store, AuditSink, StoreReader), StoreError> {
    super::open_sqlite_spooled(path, queue, None).await
}

async fn unlock_writes(mut conn: SqliteConnection) {
    sqlx::query("ROLLBACK")
        .execute(&mut conn)
        .await
        .expect("unlock");
    conn.close().await.expect("close");
}

#[tokio::test]
async fn begin_finish_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_sqlite(&path, 16).await.expect("open");
    let id = uuid::Uuid::now_v7();
    sink.begin(rec(id, Some("billing"), at(0, 123_456)))
        .await
        .expect("begin");
    // Spooled, it returned before its commit.
    wait_done(&sink, 1).await;

    let open = reader
        .get(&id.to_string())
        .await
        .expect("get")
        .expect("row");
    assert_eq!(open.end_reason, None);
    assert_eq!(open.ended_at, None);
    assert_eq!(open.bytes_up, None);
    assert_eq!(open.duration_ms, None);

    sink.finish(id, end(at(2, 623_456), "closed"), None)
        .expect("finish");
    store.shutdown().await.expect("shutdown");

    let want = SessionRow {
        id: id.hyphenated().to_string(),
        workload: Some("billing".into()),
        spiffe_id: Some("spiffe://example.org/billing".into()),
        pid: 4242,
        uid: 1000,
        gid: 100,
        exe: Some("/usr/bin/psql".into()),
        cgroup: "/tollgate.slice/run-1.scope".into(),
        systemd_unit: Some("run-1.scope".into()),
        dst: "[2001:db8::5]:5432".into(),
        target: Some("db".into()),
        protocol: "tcp".into(),
        decision: "allow".into(),
        rule: "db-readers".into(),
        policy_generation: 7,
        bytes_up: Some(120),
        bytes_down: Some(4096),
        started_at: "2023-11-14T22:13:20.123456Z".into(),
        ended_at: Some("2023-11-14T22:13:22.623456Z".into()),
        duration_ms: Some(2500),
        end_reason: Some("closed".into()),
    };
    assert_eq!(
        reader.get(&id.to_string()).await.expect("get"),
        Some(want.clone())
    );
    assert_eq!(
        reader.list(&SessionFilter::default()).await.expect("list"),
        vec![want]
    );
    let stats = sink.stats();
    assert_eq!((stats.written, stats.failed, stats.queued), (2, 0, 0));
}

#[tokio::test]
async fn files_are_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, _reader) = open_sqlite(&path, 16).await.expect("open");
    sink.begin(rec(uuid::Uuid::now_v7(), None, at(0, 0)))
        .await
        .expect("begin");
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&path.with_extension("db-wal")), 0o600);
    // The directory is created 0750, less what the umask removes.
    assert_eq!(mode(path.parent().expect("parent")) & !0o750, 0);
    store.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn list_filters_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_sqlite(&path, 64).await.expect("open");
    // (workload, start second)
    let rows = [
        (Some("a"), 10),
        (Some("b"), 20),
        (Some("a"), 30),
        (None, 40),
        (Some("a"), 50),
    ];
    let mut ids = Vec::new();
    for (workload, secs) in rows {
        let id = uuid::Uuid::now_v7();
        ids.push(id.to_string());
        sink.record(
            rec(id, workload, at(secs, 0)),
            end(at(secs + 1, 0), "denied"),
        )
        .expect("record");
    }
    store.shutdown().await.expect("shutdown");

    let cases: &[(SessionFilter, &[usize])] = &[
        (SessionFilter::default(), &[4, 3, 2, 1, 0]),
        (
            SessionFilter {
                workload: Some("a".into()),
                ..Default::default()
            },
            &[4, 2, 0],
        ),
        (
            SessionFilter {
                workload: Some("zzz".into()),
                ..Default::default()
            },
            &[],
        ),
        (
            SessionFilter {
                since: Some(at(20, 0)),
                ..Default::default()
            },
            &[4, 3, 2, 1],
        ),
        (
            SessionFilter {
                until: Some(at(30, 0)),
                ..Default::default()
            },
            &[1, 0],
        ),
        (
            SessionFilter {
                since: Some(at(15, 0)),
                until: Some(at(45, 0)),
                ..Default::default()
            },
            &[3, 2, 1],
        ),
        (
            SessionFilter {
                limit: Some(2),
                ..Default::default()
            },
            &[4, 3],
        ),
        (
            SessionFilter {
                workload: Some("a".into()),
                since: Some(at(10, 1)),
                limit: Some(1),
                ..Default::default()
            },
            &[4],
        ),
    ];
    for (filter, want) in cases {
        let got: Vec<String> = reader
            .list(filter)
            .await
            .expect("list")
            .into_iter()
            .map(|r| r.id)
            .collect();
        let want: Vec<String> = want.iter().map(|&i| ids[i].clone()).collect();
        assert_eq!(got, want, "{filter:?}");
    }
}

#[tokio::test]
async fn get_by_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_sqlite(&path, 16).await.expect("open");
    let ids = [
        "0190f3a2-7b4c-7000-8000-000000000001",
        "0190f3a2-7b4c-7000-8000-000000000002",
        "0190f3a3-0000-7000-8000-000000000003",
    ];
    for id in ids {
        let id = uuid::Uuid::parse_str(id).expect("uuid");
        sink.record(rec(id, Some("w"), at(0, 0)), end(at(1, 0), "closed"))
            .expect("record");
    }
    store.shutdown().await.expect("shutdown");

    let found = |r: Result<Option<SessionRow>, StoreError>| r.map(|r| r.map(|r| r.id));
    let cases: &[(&str, Result<Option<&str>, &str>)] = &[
        (ids[0], Ok(Some(ids[0]))),
        ("0190F3A2-7B4C-7000-8000-000000000002", Ok(Some(ids[1]))),
        ("0190f3a27b4c70008000000000000002", Ok(Some(ids[1]))),
        ("0190f3a3", Ok(Some(ids[2]))),
        ("0190f3a2-7b4c-7000-8000-00000000000", Err("ambiguous")),
        ("0190f3a2-7b4c-7000-8000-0000000000", Err("ambiguous")),
        ("0190f3a2", Err("ambiguous")),
        ("0190f3a4", Ok(None)),
        ("0190f3a2-7b4c-7000-8000-000000000009", Ok(None)),
        ("0190f3a", Err("bad")),
        ("0190f3a2%", Err("bad")),
    ];
    for (query, want) in cases {
        match (found(reader.get(query).await), want) {
            (Ok(got), Ok(want)) => assert_eq!(got.as_deref(), *want, "{query}"),
            (Err(StoreError::AmbiguousId(_)), Err("ambiguous")) => {}
            (Err(StoreError::BadId(_)), Err("bad")) => {}
            (got, want) => panic!("{query}: got {got:?}, want {want:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_returns_after_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, _reader) = open_unspooled(&path, 16).await.expect("open");
    // While another connection holds the write lock, `begin` cannot commit, so it must not return.
    let lock = lock_writes(&path).await;
    let held = uuid::Uuid::now_v7();
    let waiting = tokio::spawn({
        let sink = sink.clone();
        async move { sink.begin(rec(held, Some("w"), at(0, 0))).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "begin returned before its row was committed"
    );
    unlock_writes(lock).await;
    waiting.await.expect("join").expect("begin");
    assert_eq!(count(&path).await, 1);

    for _ in 0..20 {
        let id = uuid::Uuid::now_v7();
        sink.begin(rec(id, Some("w"), at(0, 0)))
            .await
            .expect("begin");
        // A connection opened only now, outside the store, sees the row: it is committed.
        assert_eq!(committed_end(&path, id).await, Some(None));
    }
    store.shutdown().await.expect("shutdown");
}

/// An agent that dies (the process aborts) once its records are committed: at the next start
/// the row it left open is closed as `agent-restart`, without an end, and the ended one keeps
/// its end.
#[tokio::test]
async fn crash_recovery_closes_open_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let ids = crashed_child("store::tests::child_that_crashes_with_an_open_row", &path).await;
    let [done, open] = ids[..] else {
        panic!("the child's ids: {ids:?}")
    };
    let (store, _sink, reader) = open_sqlite(&path, 16).await.expect("reopen");
    let row = reader
        .get(&open.to_string())
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.end_reason.as_deref(), Some("agent-restart"));
    assert_eq!(
        (row.ended_at, row.duration_ms, row.bytes_up),
        (None, None, None)
    );
    let row = reader
        .get(&done.to_string())
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.end_reason.as_deref(), Some("closed"));
    assert_eq!(row.duration_ms, Some(1000));
    store.shutdown().await.expect("shutdown");
}

/// Run by [`crash_recovery_closes_open_rows`] in a process of its own.
#[tokio::test]
#[ignore = "a child process of crash_recovery_closes_open_rows"]
async fn child_that_crashes_with_an_open_row() {
    let path = PathBuf::from(std::env::var_os(CRASH_DB).expect("run by its parent"));
    let (_store, sink, _reader) = open_sqlite(&path, 16).await.expect("open");
    let (done, open) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    sink.begin(rec(done, Some("w"), at(0, 0)))
        .await
        .expect("begin");
    sink.finish(done, end(at(1, 0), "closed"), None)
        .expect("finish");
    sink.begin(rec(open, Some("w"), at(2, 0)))
        .await
        .expect("begin");
    wait_done(&sink, 3).await;
    println!("ids {done} {open}");
    std::process::abort();
}

/// Runs the ignored test `child` of this test binary in a process of its own, with the store at
/// `path` ([`CRASH_DB`]); it must abort. The ids it printed (`ids A B ...`).
async fn crashed_child(child: &str, path: &Path) -> Vec<uuid::Uuid> {
    let exe = std::env::current_exe().expect("test binary");
    let out = tokio::process::Command::new(exe)
        .args([
            "--exact",
            child,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DB, path)
        .output()
        .await
        .expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGABRT),
        "the child aborts: {}\n{stderr}",
        out.status,
    );
    // The harness prints the test's name on the same line.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once("ids ").map(|(_, ids)| ids))
        .flat_map(|l| l.split(' ').map(|id| id.parse().expect("uuid")))
        .collect()
}

/// Current-thread runtime: once the writer has taken an operation out of the queue, its batch is
/// fixed before the test runs again, so the queue contents below are exact.
#[tokio::test]
async fn full_queue_fails_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_unspooled(&path, 1).await.expect("open");
    let lock = lock_writes(&path).await;

    let ids: Vec<_> = (0..4).map(|_| uuid::Uuid::now_v7()).collect();
    sink.record(rec(ids[0], None, at(0, 0)), end(at(1, 0), "denied"))
        .expect("first");
    wait_queued(&sink, 0).await; // the writer holds it, stuck on the lock
    wait_writing(&sink).await;
    sink.record(rec(ids[1], None, at(0, 0)), end(at(1, 0), "denied"))
        .expect("fills the queue");
    let full = sink.record(rec(ids[2], None, at(0, 0)), end(at(1, 0), "denied"));
    assert!(matches!(full, Err(StoreError::QueueFull)), "{full:?}");
    let begin = tokio::time::timeout(
        Duration::from_millis(100),
        sink.begin(rec(ids[3], None, at(0, 0))),
    )
    .await
    .expect("begin must not wait on a full queue");
    assert!(matches!(begin, Err(StoreError::QueueFull)), "{begin:?}");
    assert_eq!(sink.stats().queue_full, 2);

    unlock_writes(lock).await;
    store.shutdown().await.expect("shutdown");
    for (id, stored) in ids.iter().zip([true, true, false, false]) {
        let row = reader.get(&id.to_string()).await.expect("get");
        assert_eq!(row.is_some(), stored, "{id}");
    }
    let stats = sink.stats();
    assert_eq!((stats.written, stats.failed, stats.queue_full), (2, 0, 2));
}

/// A stuck writer (the database locked) with one operation in hand and one queued: with a
/// queue of 3, a burst needs all 3 slots free, so there is no room. Returns the two records' ids.
async fn stuck_with_one_queued(sink: &AuditSink) -> [uuid::Uuid; 2] {
    let ids = [uuid::Uuid::now_v7(), uuid::Uuid::now_v7()];
    sink.record(rec(ids[0], None, at(0, 0)), end(at(1, 0), "denied"))
        .expect("first");
    wait_queued(sink, 0).await; // the writer holds it, stuck on the lock
    sink.record(rec(ids[1], None, at(0, 0)), end(at(1, 0), "denied"))
        .expect("second");
    assert!(!sink.has_room());
    ids
}

/// `hold()` waits for the writer: it gives up after the sink's wait while the writer is stuck,
/// and answers as soon as the writer drains the queue once it is free again.
#[tokio::test]
async fn room_waits_for_the_writer_then_gives_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, _reader) = open_unspooled(&path, 3).await.expect("open");
    let lock = lock_writes(&path).await;
    stuck_with_one_queued(&sink).await;

    assert!(
        sink.hold().await.is_none(),
        "no wait configured: no room at once"
    );
    let short = sink.clone().with_wait(Duration::from_millis(200));
    let t = Instant::now();
    assert!(
        short.hold().await.is_none(),
        "the writer is stuck for longer than the wait"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );

    let long = sink.clone().with_wait(Duration::from_secs(30));
    let unlock = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        unlock_writes(lock).await;
    });
    let t = Instant::now();
    assert!(
        long.hold().await.is_some(),
        "room once the writer drains the queue"
    );
    assert!(t.elapsed() < WRITER_WAIT, "{:?}", t.elapsed());
    unlock.await.expect("unlock");
    assert_eq!(sink.stats().room_waits, 2, "the zero wait is not counted");
    store.shutdown().await.expect("shutdown");
}

/// What waits to hold a slot takes none: records of work already done still go into the queue
/// while a `hold()` waits, and a `begin` on a queue without room waits instead of failing.
#[tokio::test]
async fn waiting_for_room_takes_no_slot_and_begin_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_unspooled(&path, 3).await.expect("open");
    let sink = sink.with_wait(Duration::from_secs(30));
    let lock = lock_writes(&path).await;
    let ids = stuck_with_one_queued(&sink).await;

    let waiter = tokio::spawn({
        let sink = sink.clone();
        async move { sink.hold().await.is_some() }
    });
    while sink.stats().room_waits == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let third = uuid::Uuid::now_v7();
    sink.record(rec(third, None, at(0, 0)), end(at(1, 0), "denied"))
        .expect("the last slot is still free for a record");
    let begun = uuid::Uuid::now_v7();
    let begin = tokio::spawn({
        let sink = sink.clone();
        async move { sink.begin(rec(begun, Some("etl"), at(0, 0))).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !begin.is_finished() && !waiter.is_finished(),
        "both wait on the stuck writer"
    );

    unlock_writes(lock).await;
    assert!(waiter.await.expect("waiter"));
    begin
        .await
        .expect("begin task")
        .expect("begin committed after the wait");
    assert_eq!(sink.stats().queue_full, 0);
    store.shutdown().await.expect("shutdown");
    for id in ids.iter().chain([&third, &begun]) {
        assert!(
            reader.get(&id.to_string()).await.expect("get").is_some(),
            "{id}"
        );
    }
}

/// A held slot is a reservation: its record goes in however many records without one filled
/// the queue meanwhile. Slots are held only while the backlog leaves the margin for those
/// records free; work in flight does not count as backlog until its record is sent.
#[tokio::test]
async fn a_held_slot_is_kept_through_a_full_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_sqlite(&path, ROOM + 2).await.expect("open");
    let id = uuid::Uuid::now_v7();
    // Its slot is held for the connection's end.
    let ending = sink
        .begin(rec(id, Some("etl"), at(0, 0)))
        .await
        .expect("begin");
    // A spooled begin does not wait for its commit: it must be out of the way first.
    wait_done(&sink, 1).await;
    let lock = lock_writes(&path).await;
    // The writer takes this record (not a bulk one: it does not gather more) and is stuck on
    // the lock: the queue is empty again, and stays as it is below.
    let stuck = uuid::Uuid::now_v7();
    sink.record(rec(stuck, None, at(0, 0)), end(at(1, 0), "denied"))
        .expect("record");
    wait_queued(&sink, 0).await;
    wait_writing(&sink).await;

    let mut held: Vec<_> = (0..5)
        .map(|i| sink.try_hold().unwrap_or_else(|| panic!("hold {i}")))
        .collect();
    assert_eq!((sink.stats().queued, sink.stats().in_flight), (0, 6));
    // Records without a slot: once the backlog leaves fewer than ROOM places, nothing more is
    // held; once it is full, they are refused.
    let mut seq = 10;
    while sink.try_hold().is_some_and(|slot| {
        drop(slot);
        true
    }) {
        sink.statement(stmt(id, seq, "unheld"), None).expect("room");
        seq += 1;
    }
    assert_eq!(seq - 10, 3, "holds stop once the margin is reached");
    while sink.statement(stmt(id, seq, "unheld"), None).is_ok() {
        seq += 1;
    }
    assert_eq!(seq - 10, ROOM as u32 + 2, "the whole backlog filled");
    assert_eq!(
        sink.stats().queue_full,
        1,
        "only the probe that found it full"
    );
    for seq in 1..=2 {
        sink.statement(stmt(id, seq, "held"), held.pop())
            .expect("a held slot always fits");
    }
    sink.finish(id, end(at(2, 0), "client-closed"), Some(ending))
        .expect("a connection's end always fits");
    let stats = sink.stats();
    assert_eq!((stats.queued, stats.in_flight), (ROOM + 5, 3));
    drop(held);
    assert_eq!(sink.stats().in_flight, 0, "unused slots are given back");

    unlock_writes(lock).await;
    store.shutdown().await.expect("shutdown");
    let got = reader
        .statements(&id.to_string())
        .await
        .expect("statements");
    assert_eq!(got.len(), ROOM + 4);
    assert_eq!(&seqs(&got)[..2], [1, 2]);
    assert!(reader.get(&stuck.to_string()).await.expect("get").is_some());
    let row = reader
        .get(&id.to_string())
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.end_reason.as_deref(), Some("client-closed"));
}

/// Slots for work in flight are bounded apart from the backlog: when every one is held, a
/// statement waits, and a slot given back unused (its work failed) wakes it at once, with the
/// writer idle.
#[tokio::test]
async fn a_slot_given_back_wakes_a_waiter() {
    let (shared, _closed) = Shared::new(ROOM, 2);
    let (tx, _rx) = tokio::sync::mpsc::channel(ROOM + 2);
    let sink = AuditSink::new(tx, shared).with_wait(Duration::from_secs(30));
    let first = sink.try_hold().expect("first");
    let _second = sink.try_hold().expect("second");
    assert!(sink.try_hold().is_none(), "every slot in flight is held");
    let waiter = tokio::spawn({
        let sink = sink.clone();
        async move { sink.hold().await.is_some() }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "it waits");
    let t = Instant::now();
    drop(first);
    assert!(waiter.await.expect("waiter"), "it gets the slot given back");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

/// The last quarter of the in-flight budget is kept for connection ends: with every slot that
/// statements and requests may hold taken, new connections still begin (each holding the slot
/// of its end), until the whole budget is held.
#[tokio::test]
async fn connection_ends_keep_a_quarter_of_the_in_flight_budget() {
    let (shared, _closed) = Shared::new(ROOM, 8);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<sink::Queued>(ROOM + 8);
    // A writer that commits every connection at once.
    tokio::spawn(async move {
        while let Some(q) = rx.recv().await {
            if let backend::Op::Begin { done, .. } = q.op {
                let _ = done.send(Ok(()));
            }
        }
    });
    let sink = AuditSink::new(tx, shared);
    let _work: Vec<_> = (0..6)
        .map(|i| sink.try_hold().unwrap_or_else(|| panic!("hold {i}")))
        .collect();
    assert!(sink.try_hold().is_none(), "work may hold three quarters");
    let mut ends = Vec::new();
    for i in 0..2 {
        let end = sink
            .begin(rec(uuid::Uuid::now_v7(), Some("etl"), at(i, 0)))
            .await
            .unwrap_or_else(|e| panic!("connection {i} begins past the work's share: {e}"));
        ends.push(end);
    }
    assert_eq!(sink.stats().in_flight, 8);
    let refused = sink
        .begin(rec(uuid::Uuid::now_v7(), Some("etl"), at(3, 0)))
        .await;
    assert!(
        matches!(refused, Err(StoreError::QueueFull)),
        "the whole budget is held: {refused:?}"
    );
    assert_eq!(sink.stats().queued, 0, "the writer kept up throughout");
}

/// A session holds at most its budget of slots: each slot carries one of its permits, given
/// back when the slot's record is sent or the slot is dropped unused; at the cap the session
/// waits (counted), while other sessions still hold slots.
#[tokio::test]
async fn a_session_holds_at_most_its_budget_of_slots() {
    let (sink, mut sent) = AuditSink::for_tests(64);
    let budget = SessionBudget::new(2);
    let hold = |budget: &SessionBudget| {
        let permit = budget.try_take()?;
        Some(sink.try_hold().expect("room").in_session(permit))
    };
    let first = hold(&budget).expect("one");
    let second = hold(&budget).expect("two");
    assert!(budget.try_take().is_none(), "at the cap");
    let other = SessionBudget::new(2);
    assert!(hold(&other).is_some(), "another session is not held back");

    // At the cap, the session waits until one of its slots is used.
    let waiting = {
        let (budget, sink) = (budget.clone(), sink.clone());
        tokio::spawn(async move { budget.take(&sink).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "waits for a slot of its own");
    sink.statement(stmt(uuid::Uuid::now_v7(), 1, "select 1"), Some(first))
        .expect("sent");
    let permit = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("a used slot gives its permit back")
        .expect("task");
    assert_eq!(sink.stats().session_waits, 1);
    assert_eq!(sent.statements().len(), 1);

    // A slot dropped unused gives its permit back too.
    drop(permit);
    drop(second);
    let both = [budget.try_take(), budget.try_take()];
    assert!(both.iter().all(Option::is_some));
    assert!(budget.try_take().is_none());
}

/// `BATCH_MAX` + 44 begins wait behind a stuck batch, then go in two transactions.
#[tokio::test]
async fn concurrent_begins_are_group_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let extra = 44;
    let (store, sink, _reader) = open_unspooled(&path, BATCH_MAX + extra + 8)
        .await
        .expect("open");
    let lock = lock_writes(&path).await;
    sink.record(
        rec(uuid::Uuid::now_v7(), None, at(0, 0)),
        end(at(1, 0), "denied"),
    )
    .expect("record");
    wait_queued(&sink, 0).await;

    let waiters: Vec<_> = (0..(BATCH_MAX + extra) as u64)
        .map(|i| {
            let sink = sink.clone();
            tokio::spawn(async move {
                sink.begin(rec(uuid::Uuid::now_v7(), Some("w"), at(i, 0)))
                    .await
            })
        })
        .collect();
    wait_queued(&sink, BATCH_MAX + extra).await;
    unlock_writes(lock).await;
    for w in waiters {
        w.await.expect("join").expect("begin");
    }
    let stats = sink.stats();
    assert_eq!(
        (stats.written, stats.commits, stats.failed),
        ((BATCH_MAX + extra + 1) as u64, 3, 0)
    );
    store.shutdown().await.expect("shutdown");
    assert_eq!(count(&path).await, (BATCH_MAX + extra + 1) as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_begins_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_sqlite(&path, 4096).await.expect("open");
    let tasks: Vec<_> = (0..2000)
        .map(|i| {
            let sink = sink.clone();
            tokio::spawn(async move {
                let id = uuid::Uuid::now_v7();
                sink.begin(rec(id, Some("w"), at(i, 0))).await?;
                sink.finish(id, end(at(i + 1, 0), "closed"), None)
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("join").expect("begin and finish");
    }
    store.shutdown().await.expect("shutdown");
    let rows = reader.list(&SessionFilter::default()).await.expect("list");
    assert_eq!(rows.len(), 2000);
    assert!(
        rows.iter()
            .all(|r| r.end_reason.as_deref() == Some("closed"))
    );
    let stats = sink.stats();
    assert_eq!((stats.written, stats.failed), (4000, 0));
    assert!(stats.commits < stats.written, "{stats:?}");
}

/// A duplicate id fails its own `begin` only; the rest of its batch is written.
#[tokio::test]
async fn bad_record_does_not_sink_its_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_unspooled(&path, 16).await.expect("open");
    let lock = lock_writes(&path).await;
    let (a, b, c) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    sink.record(rec(a, None, at(0, 0)), end(at(1, 0), "denied"))
        .expect("record a");
    wait_queued(&sink, 0).await;
    sink.record(rec(b, None, at(0, 0)), end(at(1, 0), "denied"))
        .expect("record b");
    let dup = tokio::spawn({
        let sink = sink.clone();
        async move { sink.begin(rec(b, None, at(5, 0))).await }
    });
    wait_queued(&sink, 2).await;
    sink.record(rec(c, None, at(0, 0)), end(at(1, 0), "denied"))
        .expect("record c");
    unlock_writes(lock).await;

    let dup = dup.await.expect("join");
    assert!(matches!(dup, Err(StoreError::Write(_))), "{dup:?}");
    store.shutdown().await.expect("shutdown");
    for id in [a, b, c] {
        let row = reader
            .get(&id.to_string())
            .await
            .expect("get")
            .expect("row");
        assert_eq!(row.end_reason.as_deref(), Some("denied"));
    }
    let stats = sink.stats();
    assert_eq!((stats.written, stats.failed), (3, 1));
}

#[tokio::test]
async fn close_flushes_and_refuses_new_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_sqlite(&path, 64).await.expect("open");
    let ids: Vec<_> = (0..10).map(|_| uuid::Uuid::now_v7()).collect();
    for id in &ids {
        sink.record(rec(*id, None, at(0, 0)), end(at(1, 0), "denied"))
            .expect("record");
    }
    sink.clone().close();
    let late = sink.record(
        rec(uuid::Uuid::now_v7(), None, at(0, 0)),
        end(at(1, 0), "denied"),
    );
    assert!(matches!(late, Err(StoreError::Closed)), "{late:?}");
    let late = sink.begin(rec(uuid::Uuid::now_v7(), None, at(0, 0))).await;
    assert!(matches!(late, Err(StoreError::Closed)), "{late:?}");
    store.shutdown().await.expect("shutdown");
    assert_eq!(
        reader
            .list(&SessionFilter::default())
            .await
            .expect("list")
            .len(),
        10
    );
}

#[tokio::test]
async fn dropping_every_sink_stops_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, _reader) = open_sqlite(&path, 64).await.expect("open");
    let id = uuid::Uuid::now_v7();
    sink.begin(rec(id, None, at(0, 0))).await.expect("begin");
    sink.finish(id, end(at(1, 0), "agent-shutdown"), None)
        .expect("finish");
    drop(sink);
    tokio::time::timeout(Duration::from_secs(5), store.writer)
        .await
        .expect("writer stops on its own")
        .expect("join")
        .expect("writer");
    let mut conn = raw(&path).await;
    let reason: Option<String> =
        sqlx::query_scalar("SELECT end_reason FROM connections WHERE id = ?1")
            .bind(id.to_string())
            .fetch_one(&mut conn)
            .await
            .expect("select");
    assert_eq!(reason.as_deref(), Some("agent-shutdown"));
}

pub(in crate::store) fn stmt(connection_id: uuid::Uuid, seq: u32, text: &str) -> StatementRecord {
    StatementRecord {
        connection_id,
        seq,
        started_at: at(u64::from(seq), 250),
        duration: Some(Duration::from_micros(1_234)),
        text: text.into(),
        classes: vec!["select".into()],
        tables: vec!["public.orders".into()],
        decision: "allow".into(),
        rule: "etl-reads-orders".into(),
        rows: Some(3),
        error: None,
        masked: None,
    }
}

/// Waits until the writer has committed or failed `n` operations in all.
async fn wait_done(sink: &AuditSink, n: u64) {
    wait_stats(sink, &format!("{n} operations done"), |s| {
        s.written + s.failed == n
    })
    .await;
}

fn seqs(rows: &[StatementRow]) -> Vec<u32> {
    rows.iter().map(|r| r.seq).collect()
}

#[tokio::test]
async fn statements_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_sqlite(&path, 16).await.expect("open");
    let id = uuid::Uuid::now_v7();
    sink.begin(rec(id, Some("etl"), at(0, 0)))
        .await
        .expect("begin");
    sink.statement(
        StatementRecord {
            classes: vec!["select".into(), "set".into()],
            tables: vec!["public.orders".into(), "\"odd,name\"".into()],
            masked: Some(serde_json::json!({"card_number": 12, "email": 1})),
            ..stmt(id, 1, "SELECT * FROM orders WHERE id = $1")
        },
        None,
    )
    .expect("statement 1");
    sink.statement(
        StatementRecord {
            duration: None,
            classes: vec!["delete".into()],
            tables: vec![],
            decision: "deny".into(),
            rule: "default-deny".into(),
            rows: None,
            error: Some("permission denied by rule default-deny".into()),
            ..stmt(id, 2, "DELETE FROM orders\nWHERE id = ?")
        },
        None,
    )
    .expect("statement 2");
    sink.finish(id, end(at(9, 0), "closed"), None)
        .expect("finish");
    store.shutdown().await.expect("shutdown");

    let want = vec![
        StatementRow {
            seq: 1,
            started_at: "2023-11-14T22:13:21.000250Z".into(),
            duration_ms: Some(1.234),
            text: "SELECT * FROM orders WHERE id = $1".into(),
            classes: vec!["select".into(), "set".into()],
            tables: vec!["public.orders".into(), "\"odd,name\"".into()],
            decision: "allow".into(),
            rule: "etl-reads-orders".into(),
            rows: Some(3),
            error: None,
            masked: Some(serde_json::json!({"card_number": 12, "email": 1})),
        },
        StatementRow {
            seq: 2,
            started_at: "2023-11-14T22:13:22.000250Z".into(),
            duration_ms: None,
            text: "DELETE FROM orders\nWHERE id = ?".into(),
            classes: vec!["delete".into()],
            tables: vec![],
            decision: "deny".into(),
            rule: "default-deny".into(),
            rows: None,
            error: Some("permission denied by rule default-deny".into()),
            masked: None,
        },
    ];
    let got = reader
        .statements(&id.to_string())
        .await
        .expect("statements");
    assert_eq!(got, want);
    // The wire form round-trips too (the admin socket carries it).
    let wire = serde_json::to_string(&got).expect("serialize");
    assert_eq!(
        serde_json::from_str::<Vec<StatementRow>>(&wire).expect("deserialize"),
        want
    );
    // Any uuid spelling names the session.
    let simple = id.simple().to_string().to_uppercase();
    assert_eq!(reader.statements(&simple).await.expect("simple"), want);
    let stats = sink.stats();
    assert_eq!((stats.written, stats.failed), (4, 0));
}

#[tokio::test]
async fn statements_come_back_in_seq_order_per_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_sqlite(&path, 64).await.expect("open");
    let (a, b, quiet) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    for id in [a, b, quiet] {
        sink.begin(rec(id, Some("etl"), at(0, 0)))
            .await
            .expect("begin");
    }
    // Queued out of order and interleaved; 10 sorts after 9 (numbers, not text).
    for (id, seq) in [(a, 3), (b, 2), (a, 10), (a, 1), (b, 1), (a, 9), (a, 2)] {
        sink.statement(stmt(id, seq, &format!("select {seq}")), None)
            .expect("statement");
    }
    store.shutdown().await.expect("shutdown");

    let got = reader.statements(&a.to_string()).await.expect("a");
    assert_eq!(seqs(&got), [1, 2, 3, 9, 10]);
    assert_eq!(got[4].text, "select 10");
    let got = reader.statements(&b.to_string()).await.expect("b");
    assert_eq!(seqs(&got), [1, 2]);
    assert_eq!(
        reader.statements(&quiet.to_string()).await.expect("quiet"),
        []
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(reader.statements(&unknown).await.expect("unknown"), []);

    let first = reader
        .first_statements(&a.to_string(), 2)
        .await
        .expect("first");
    assert_eq!(seqs(&first), [1, 2]);
    let none = reader
        .first_statements(&a.to_string(), 0)
        .await
        .expect("zero");
    assert_eq!(none, []);

    // Only a full uuid names a session here (a prefix could name several).
    for bad in [&a.to_string()[..8], "", "orders"] {
        let r = reader.statements(bad).await;
        assert!(matches!(r, Err(StoreError::NotUuid(_))), "{bad:?}: {r:?}");
    }
}

/// A statement of an unknown connection (foreign key) or with a repeated seq (primary key)
/// fails alone; the rest of its batch is written.
#[tokio::test]
async fn bad_statements_fail_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_sqlite(&path, 16).await.expect("open");
    let (id, ghost) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    sink.begin(rec(id, Some("etl"), at(0, 0)))
        .await
        .expect("begin");
    let lock = lock_writes(&path).await;
    sink.statement(stmt(id, 1, "first"), None).expect("queue 1");
    wait_queued(&sink, 0).await; // the writer holds it, stuck on the lock
    wait_writing(&sink).await;
    sink.statement(stmt(ghost, 1, "no such connection"), None)
        .expect("queue ghost");
    sink.statement(stmt(id, 2, "second"), None)
        .expect("queue 2");
    sink.statement(stmt(id, 2, "second again"), None)
        .expect("queue duplicate");
    sink.statement(stmt(id, 3, "third"), None).expect("queue 3");
    unlock_writes(lock).await;
    wait_done(&sink, 6).await;
    store.shutdown().await.expect("shutdown");

    let got = reader
        .statements(&id.to_string())
        .await
        .expect("statements");
    let texts: Vec<&str> = got.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(texts, ["first", "second", "third"]);
    assert_eq!(
        reader.statements(&ghost.to_string()).await.expect("ghost"),
        []
    );
    let stats = sink.stats();
    assert_eq!((stats.written, stats.failed), (4, 2));
}

#[tokio::test]
async fn foreign_keys_are_enforced_on_every_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, _reader) = open_sqlite(&path, 16).await.expect("open");
    sink.statement(stmt(uuid::Uuid::now_v7(), 1, "orphan"), None)
        .expect("queue");
    wait_done(&sink, 1).await;
    store.shutdown().await.expect("shutdown");
    let stats = sink.stats();
    assert_eq!((stats.written, stats.failed), (0, 1));
    let mut conn = raw(&path).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM statements")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(n, 0);
    conn.close().await.expect("close");
}

/// Statements share the connections' queue. The writer is first made to hold a connection
/// record (not a bulk operation, so it does not gather more) while the database is locked:
/// the queue contents below are then exact.
#[tokio::test]
async fn statements_on_a_full_queue_fail_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_sqlite(&path, 1).await.expect("open");
    let id = uuid::Uuid::now_v7();
    sink.begin(rec(id, Some("etl"), at(0, 0)))
        .await
        .expect("begin");
    // A spooled begin does not wait for its commit: it must be out of the way first.
    wait_done(&sink, 1).await;
    let lock = lock_writes(&path).await;
    sink.record(
        rec(uuid::Uuid::now_v7(), None, at(0, 0)),
        end(at(1, 0), "denied"),
    )
    .expect("record");
    wait_queued(&sink, 0).await; // the writer holds it, stuck on the lock
    wait_writing(&sink).await;
    sink.statement(stmt(id, 1, "one"), None)
        .expect("fills the queue");
    let full = sink.statement(stmt(id, 2, "two"), None);
    assert!(matches!(full, Err(StoreError::QueueFull)), "{full:?}");
    let full = sink.finish(id, end(at(1, 0), "closed"), None);
    assert!(matches!(full, Err(StoreError::QueueFull)), "{full:?}");
    assert_eq!(sink.stats().queue_full, 2);

    unlock_writes(lock).await;
    store.shutdown().await.expect("shutdown");
    let got = reader
        .statements(&id.to_string())
        .await
        .expect("statements");
    assert_eq!(seqs(&got), [1]);
    let late = sink.statement(stmt(id, 4, "after close"), None);
    assert!(matches!(late, Err(StoreError::Closed)), "{late:?}");
    let stats = sink.stats();
    assert_eq!((stats.written, stats.failed, stats.queue_full), (3, 0, 2));
}

#[tokio::test]
async fn long_statement_text_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_sqlite(&path, 16).await.expect("open");
    let id = uuid::Uuid::now_v7();
    sink.begin(rec(id, Some("etl"), at(0, 0)))
        .await
        .expect("begin");
    let long = format!("select {}", "x".repeat(MAX_STATEMENT_TEXT));
    sink.statement(stmt(id, 1, &long), None).expect("statement");
    store.shutdown().await.expect("shutdown");
    let got = reader
        .statements(&id.to_string())
        .await
        .expect("statements");
    let text = &got[0].text;
    assert!(text.starts_with("select xxx"), "{}", &text[..20]);
    assert!(
        text.ends_with("… [7 more bytes]"),
        "{}",
        &text[text.len() - 30..]
    );
    assert_eq!(text.len(), MAX_STATEMENT_TEXT + "… [7 more bytes]".len());
}

/// `sessions show` reads a session's statements by a range scan of the primary key's index,
/// already in seq order (no separate index, no sort).
#[tokio::test]
async fn statements_are_read_through_the_primary_key_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, _sink, _reader) = open_sqlite(&path, 16).await.expect("open");
    store.shutdown().await.expect("shutdown");
    let mut conn = raw(&path).await;
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN SELECT seq, text FROM statements WHERE connection_id = ?1 \
         ORDER BY seq LIMIT ?2",
    )
    .bind("x")
    .bind(10_i64)
    .fetch_all(&mut conn)
    .await
    .expect("plan");
    let plan: Vec<String> = plan.into_iter().map(|(_, _, _, detail)| detail).collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("USING INDEX sqlite_autoindex_statements_1 (connection_id=?)"),
        "{plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    conn.close().await.expect("close");
}

pub(in crate::store) fn request(connection_id: uuid::Uuid, seq: u32) -> RequestRecord {
    RequestRecord {
        connection_id,
        seq,
        started_at: at(u64::from(seq), 500),
        duration: Some(Duration::from_micros(2_500)),
        method: "GET".into(),
        host: "vault.internal".into(),
        path: "/v1/secret/data/etl".into(),
        query: vec!["version".into(), "odd,name".into()],
        status: Some(200),
        bytes_up: 0,
        bytes_down: 1234,
        decision: "allow".into(),
        rule: "etl-reads-secrets".into(),
        masked: Some(serde_json::json!({"by_column": {"ssn": 2}})),
        error: None,
        body: None,
        headers: Some(vec![
            ("host".into(), "vault.internal".into()),
            ("authorization".into(), "[redacted]".into()),
            ("x-quote".into(), "\"é\",\\".into()),
        ]),
    }
}

#[tokio::test]
async fn requests_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_sqlite(&path, 16).await.expect("open");
    let id = uuid::Uuid::now_v7();
    sink.begin(rec(id, Some("etl"), at(0, 0)))
        .await
        .expect("begin");
    sink.request(request(id, 1), None).expect("request 1");
    sink.request(
        RequestRecord {
            method: "DELETE".into(),
            path: "/v1/sys/seal".into(),
            query: vec![],
            status: Some(403),
            bytes_down: 80,
            decision: "deny".into(),
            rule: "no-sys".into(),
            masked: None,
            error: Some("denied by rule no-sys".into()),
            duration: None,
            body: Some("x".repeat(crate::store::MAX_REQUEST_BODY + 10)),
            headers: None,
            ..request(id, 2)
        },
        None,
    )
    .expect("request 2");
    sink.finish(id, end(at(9, 0), "closed"), None)
        .expect("finish");
    store.shutdown().await.expect("shutdown");

    let got = reader
        .first_requests(&id.to_string(), 10)
        .await
        .expect("requests");
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0],
        RequestRow {
            seq: 1,
            started_at: "2023-11-14T22:13:21.000500Z".into(),
            duration_ms: Some(2.5),
            method: "GET".into(),
            host: "vault.internal".into(),
            path: "/v1/secret/data/etl".into(),
            query: vec!["version".into(), "odd,name".into()],
            status: Some(200),
            bytes_up: 0,
            bytes_down: 1234,
            decision: "allow".into(),
            rule: "etl-reads-secrets".into(),
            masked: Some(serde_json::json!({"by_column": {"ssn": 2}})),
            error: None,
            body: None,
            headers: Some(vec![
                ("host".into(), "vault.internal".into()),
                ("authorization".into(), "[redacted]".into()),
                ("x-quote".into(), "\"é\",\\".into()),
            ]),
        }
    );
    let second = &got[1];
    assert_eq!(second.headers, None, "recorded none");
    assert_eq!(
        (
            second.seq,
            second.status,
            second.duration_ms,
            second.query.len()
        ),
        (2, Some(403), None, 0)
    );
    // A long body is cut and marked.
    let body = second.body.as_deref().expect("body");
    assert!(
        body.ends_with("… [10 more bytes]"),
        "{}",
        &body[body.len() - 30..]
    );
    // The wire form round-trips (the admin socket carries it).
    let wire = serde_json::to_string(&got).expect("serialize");
    assert_eq!(
        serde_json::from_str::<Vec<RequestRow>>(&wire).expect("deserialize"),
        got
    );
    assert_eq!(
        reader
            .first_requests(&id.to_string(), 1)
            .await
            .expect("1")
            .len(),
        1
    );
    let other = uuid::Uuid::now_v7().to_string();
    assert_eq!(reader.first_requests(&other, 10).await.expect("none"), []);
    assert!(reader.first_requests("not-a-uuid", 10).await.is_err());
}

/// A request of an unknown connection is refused by the foreign key and does not sink others.
#[tokio::test]
async fn request_of_unknown_connection_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, sink, reader) = open_sqlite(&db_path(&dir), 16).await.expect("open");
    let id = uuid::Uuid::now_v7();
    sink.begin(rec(id, Some("etl"), at(0, 0)))
        .await
        .expect("begin");
    sink.request(request(uuid::Uuid::now_v7(), 1), None)
        .expect("ghost");
    sink.request(request(id, 1), None).expect("real");
    wait_done(&sink, 3).await;
    assert_eq!(sink.stats().failed, 1);
    store.shutdown().await.expect("shutdown");
    let got = reader
        .first_requests(&id.to_string(), 10)
        .await
        .expect("requests");
    assert_eq!(got.len(), 1);
}

/// A long run of requests in one batch: every row lands, in order, with its own values.
#[tokio::test]
async fn a_run_of_requests_is_written_whole_and_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, sink, reader) = open_sqlite(&db_path(&dir), 256).await.expect("open");
    let id = uuid::Uuid::now_v7();
    sink.begin(rec(id, Some("etl"), at(0, 0)))
        .await
        .expect("begin");
    for seq in 1..=86 {
        sink.request(
            RequestRecord {
                path: format!("/item/{seq}"),
                ..request(id, seq)
            },
            None,
        )
        .expect("request");
    }
    store.shutdown().await.expect("shutdown");
    let got = reader
        .first_requests(&id.to_string(), 100)
        .await
        .expect("requests");
    let want: Vec<(u32, String)> = (1..=86).map(|s| (s, format!("/item/{s}"))).collect();
    let seen: Vec<(u32, String)> = got.iter().map(|r| (r.seq, r.path.clone())).collect();
    assert_eq!(seen, want);
}

/// Ends of one batch: every connection gets its own end, and a connection ended twice keeps its
/// first end.
#[tokio::test]
async fn ends_of_a_batch_land_on_their_own_rows_and_the_first_end_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, sink, reader) = open_sqlite(&db_path(&dir), 256).await.expect("open");
    let ids: Vec<_> = (0..20).map(|_| uuid::Uuid::now_v7()).collect();
    for (i, id) in ids.iter().enumerate() {
        sink.begin(rec(*id, Some("etl"), at(i as u64, 0)))
            .await
            .expect("begin");
    }
    for (i, id) in ids.iter().enumerate() {
        sink.finish(
            *id,
            end(at(100 + i as u64, 0), &format!("closed-{i}")),
            None,
        )
        .expect("finish");
    }
    sink.finish(ids[0], end(at(999, 0), "second"), None)
        .expect("again");
    store.shutdown().await.expect("shutdown");
    for (i, id) in ids.iter().enumerate() {
        let row = reader
            .get(&id.to_string())
            .await
            .expect("get")
            .expect("row");
        assert_eq!(
            row.end_reason.as_deref(),
            Some(format!("closed-{i}").as_str())
        );
        assert_eq!(row.duration_ms, Some(100_000), "{row:?}");
    }
}

/// A migration that has shipped must never change: sqlx refuses to open a database on which a
/// migration was applied whose file now has another checksum ("previously applied but has been
/// modified"), so an edited migration would stop every upgraded agent from starting. Each file's
/// SHA-384 (sqlx's checksum) is pinned here; a new migration adds a line.
#[test]
fn shipped_migrations_are_unchanged() {
    let pinned: [(i64, &str); 4] = [
        (
            1,
            "f21d0d834f30d1c96fc3c0891c021280659df16fb4ca9c9cf2b52b7f73b4c5a369504c7a40c82fc33683dd17fada81f0",
        ),
        (
            2,
            "fe207ab603e1e0e0ac53736ae9947e11d9c11c5f3e98af24ff13cc54de0cc394dcb787a0ff06db79e6105b5bfe38e16c",
        ),
        (
            3,
            "b630ced3a5983e1d512f62a12ac63a6da386662e1bae0f45eaf1ac617784937c6fa290403296d02647bc8f9aa680fb69",
        ),
        (
            4,
            "2b7c3a8c1366f3e0ed42f8f9aa5cdcd0e8c8b188864b3963223643a94405a7bfa68541d99e479c893834dccbecb52dc4",
        ),
    ];
    let migrator = sqlx::migrate!("./migrations");
    let got: Vec<(i64, String)> = migrator
        .iter()
        .map(|m| {
            let hex: String = m.checksum.iter().map(|b| format!("{b:02x}")).collect();
            (m.version, hex)
        })
        .collect();
    let want: Vec<(i64, String)> = pinned.iter().map(|(v, h)| (*v, (*h).to_owned())).collect();
    assert_eq!(got, want);
}

/// Under `audit_failure = "open"`, `hold()` whose wait runs out lets the work through with a
/// slot that holds no place: its record goes into the queue while there is room, and is lost
/// (counted in `queue_full`) once there is none. Under `closed` the same wait refuses.
#[tokio::test]
async fn an_open_sink_lets_work_through_unheld_when_the_wait_runs_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, _reader) = open_unspooled(&path, 3).await.expect("open");
    let lock = lock_writes(&path).await;
    let ids = stuck_with_one_queued(&sink).await;
    let wait = Duration::from_millis(100);
    let closed = sink.clone().with_wait(wait);
    let open = sink
        .clone()
        .with_wait(wait)
        .with_failure(AuditFailure::Open);

    assert!(closed.hold().await.is_none(), "closed: refused");
    let t = Instant::now();
    let first = open.hold().await.expect("open: let through");
    assert!(t.elapsed() >= wait, "it waited first: {:?}", t.elapsed());
    let second = open.hold().await.expect("open: let through");
    let stats = sink.stats();
    assert_eq!((stats.unheld, stats.in_flight), (2, 0), "{stats:?}");

    // Of a connection recorded before them (queued first): the writer takes them all.
    let id = ids[0];
    let queued = stats.queued;
    open.statement(stmt(id, 1, "select 1"), Some(first))
        .expect("room for it in the queue");
    assert_eq!(sink.stats().queued, queued + 1);
    let mut seq = 10;
    while sink.statement(stmt(id, seq, "filler"), None).is_ok() {
        seq += 1;
    }
    let full = sink.stats().queue_full;
    assert!(matches!(
        open.statement(stmt(id, 2, "select 2"), Some(second)),
        Err(StoreError::QueueFull)
    ));
    assert_eq!(sink.stats().queue_full, full + 1);

    unlock_writes(lock).await;
    store.shutdown().await.expect("shutdown");
}

/// Where a crash child opens its store, given by its parent ([`crashed_child`]).
const CRASH_DB: &str = "TOLLGATE_TEST_SPOOL_CRASH_DB";

/// An agent that crashes (the process aborts) while its writer cannot commit: what it spooled
/// (the begin it did not wait for, a statement, the end, a refused connection) is written at
/// the next start, the end on its row, and nothing is read back twice.
#[tokio::test]
async fn spooled_records_survive_a_crash_of_the_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let ids = crashed_child("store::tests::spooling_child_that_crashes", &path).await;
    let [begun, refused] = ids[..] else {
        panic!("the child's ids: {ids:?}")
    };

    for round in 0..2 {
        let (store, _sink, reader) = open_sqlite(&path, 16).await.expect("reopen");
        let row = reader
            .get(&begun.to_string())
            .await
            .expect("get")
            .expect("the spooled begin is written");
        assert_eq!(row.end_reason.as_deref(), Some("closed"), "round {round}");
        assert_eq!(row.duration_ms, Some(1000));
        let statements = reader
            .statements(&begun.to_string())
            .await
            .expect("statements");
        assert_eq!(seqs(&statements), [1], "round {round}");
        assert_eq!(statements[0].text, "select 1");
        let row = reader
            .get(&refused.to_string())
            .await
            .expect("get")
            .expect("the spooled record is written");
        assert_eq!(row.end_reason.as_deref(), Some("denied"));
        store.shutdown().await.expect("shutdown");
    }
    assert_eq!(count(&path).await, 2);
}

/// Run by [`spooled_records_survive_a_crash_of_the_process`] in a process of its own.
#[tokio::test]
#[ignore = "a child process of spooled_records_survive_a_crash_of_the_process"]
async fn spooling_child_that_crashes() {
    let path = PathBuf::from(std::env::var_os(CRASH_DB).expect("run by its parent"));
    let (_store, sink, _reader) = open_sqlite(&path, 16).await.expect("open");
    // Nothing can commit from here on.
    let _lock = lock_writes(&path).await;
    let (begun, refused) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let slot = tokio::time::timeout(
        Duration::from_secs(2),
        sink.begin(rec(begun, Some("w"), at(0, 0))),
    )
    .await
    .expect("a spooled begin does not wait for its commit")
    .expect("begin");
    sink.statement(stmt(begun, 1, "select 1"), sink.try_hold())
        .expect("statement");
    sink.finish(begun, end(at(1, 0), "closed"), Some(slot))
        .expect("finish");
    sink.record(rec(refused, None, at(0, 0)), end(at(1, 0), "denied"))
        .expect("record");
    assert_eq!(sink.stats().written, 0);
    println!("ids {begun} {refused}");
    std::process::abort();
}

/// When a write fails as such (the database locked past the busy timeout), its spooled records
/// are kept and tried again until they are committed; meanwhile a `begin` waits for its commit,
/// so that a store that cannot write refuses connections (here, the database still locked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_keeps_its_records_and_makes_begin_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = open_sqlite(&path, 16).await.expect("open");
    let lock = lock_writes(&path).await;
    let kept = uuid::Uuid::now_v7();
    sink.record(rec(kept, None, at(0, 0)), end(at(1, 0), "denied"))
        .expect("record");
    wait_stats(&sink, "a write error", |s| s.write_errors > 0).await;
    let refused = sink
        .begin(rec(uuid::Uuid::now_v7(), Some("w"), at(0, 0)))
        .await;
    assert!(matches!(refused, Err(StoreError::Write(_))), "{refused:?}");
    let stats = sink.stats();
    assert_eq!((stats.written, stats.failed, stats.write_errors), (0, 1, 2));
    unlock_writes(lock).await;

    let id = uuid::Uuid::now_v7();
    sink.begin(rec(id, Some("w"), at(0, 0)))
        .await
        .expect("begin");
    // It returned after its commit: a connection opened only now sees the row, and the record
    // kept from the failed writes, committed before it.
    assert_eq!(committed_end(&path, id).await, Some(None));
    assert_eq!(
        committed_end(&path, kept).await,
        Some(Some("denied".into()))
    );
    store.shutdown().await.expect("shutdown");
    let stats = sink.stats();
    assert_eq!((stats.written, stats.failed), (2, 1));
    assert_eq!(
        reader
            .get(&kept.to_string())
            .await
            .expect("get")
            .and_then(|r| r.end_reason),
        Some("denied".into())
    );
}

/// A `begin` that finds no room in the spool (both segments hold records the stuck writer has
/// not committed) waits for its commit, counted in `unspooled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_without_room_in_the_spool_waits_for_its_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, reader) = super::open_sqlite_spooled(&path, 4096, Some(4096))
        .await
        .expect("open");
    let lock = lock_writes(&path).await;
    let mut ids = Vec::new();
    while sink.stats().unspooled == 0 {
        let id = uuid::Uuid::now_v7();
        sink.record(rec(id, None, at(0, 0)), end(at(1, 0), "denied"))
            .expect("record");
        ids.push(id);
        assert!(ids.len() < 100, "a 4 KiB segment holds fewer");
    }
    let begun = uuid::Uuid::now_v7();
    let begin = tokio::spawn({
        let sink = sink.clone();
        async move { sink.begin(rec(begun, Some("w"), at(0, 0))).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!begin.is_finished(), "it waits for its commit");
    assert_eq!(sink.stats().unspooled, 2);
    unlock_writes(lock).await;
    begin.await.expect("join").expect("begin");
    store.shutdown().await.expect("shutdown");
    for id in ids.iter().chain([&begun]) {
        assert!(
            reader.get(&id.to_string()).await.expect("get").is_some(),
            "{id}"
        );
    }
}

/// A clean stop empties the spool once everything in it is committed: the next start has
/// nothing to read back. Before the stop, committed records are still there (an agent that
/// crashed then would write them again, ignored as duplicates).
#[tokio::test]
async fn a_clean_stop_empties_the_spool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let spool = path.with_extension("spool");
    let (store, sink, _reader) = open_sqlite(&path, 16).await.expect("open");
    let id = uuid::Uuid::now_v7();
    let slot = sink
        .begin(rec(id, Some("w"), at(0, 0)))
        .await
        .expect("begin");
    sink.finish(id, end(at(1, 0), "closed"), Some(slot))
        .expect("finish");
    wait_done(&sink, 2).await;
    assert_eq!(super::spool::recover(&spool).expect("recover").len(), 2);
    store.shutdown().await.expect("shutdown");
    assert!(super::spool::recover(&spool).expect("recover").is_empty());
}

/// One agent per state directory: a store in use is not opened a second time (its spool would
/// be read back and reused under the running one); once it is let go, it opens.
#[tokio::test]
async fn a_store_in_use_is_not_opened_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, _reader) = open_sqlite(&path, 16).await.expect("open");
    let second = open_sqlite(&path, 16).await;
    assert!(
        matches!(second, Err(StoreError::Spool(SpoolError::Locked(_)))),
        "{:?}",
        second.map(drop)
    );
    store.shutdown().await.expect("shutdown");
    drop(sink);
    let (store, _sink, _reader) = open_sqlite(&path, 16).await.expect("open again");
    store.shutdown().await.expect("shutdown");
}

/// A write that runs past `STALLED` without failing yet (the database locked, the busy timeout
/// not run out) makes a `begin` wait for its commit instead of going ahead on the spool alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_waits_for_its_commit_while_a_write_is_stalled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, _reader) = open_sqlite(&path, 16).await.expect("open");
    let lock = lock_writes(&path).await;
    sink.record(
        rec(uuid::Uuid::now_v7(), None, at(0, 0)),
        end(at(1, 0), "denied"),
    )
    .expect("record");
    // The writer takes it after its gathering window and blocks on the lock.
    tokio::time::sleep(super::sink::STALLED + Duration::from_millis(300)).await;
    assert_eq!(
        sink.stats().write_errors,
        0,
        "the busy timeout has not run out"
    );
    let id = uuid::Uuid::now_v7();
    let begin = tokio::spawn({
        let sink = sink.clone();
        async move { sink.begin(rec(id, Some("w"), at(0, 0))).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!begin.is_finished(), "it waits for its commit");
    unlock_writes(lock).await;
    begin.await.expect("join").expect("begin");
    assert_eq!(committed_end(&path, id).await, Some(None));
    store.shutdown().await.expect("shutdown");
}

/// A record is pending (`audit_pending`) from its queueing to its commit, also while it sits
/// in the writer's batch (which gathers spooled records for up to 50 ms, or here waits on a
/// locked database); then it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_is_pending_until_its_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (store, sink, _reader) = open_sqlite(&path, 16).await.expect("open");
    let lock = lock_writes(&path).await;
    sink.record(
        rec(uuid::Uuid::now_v7(), None, at(0, 0)),
        end(at(1, 0), "denied"),
    )
    .expect("record");
    wait_queued(&sink, 0).await;
    let stats = sink.stats();
    assert_eq!((stats.queued, stats.pending, stats.written), (0, 1, 0));
    unlock_writes(lock).await;
    wait_stats(&sink, "nothing pending", |s| s.pending == 0).await;
    assert_eq!(sink.stats().written, 1);
    store.shutdown().await.expect("shutdown");
}

/// Senders ask a gathering writer to write each time the records not yet committed reach a
/// multiple of `FULL` (of half the backlog, if that is less), so that a busy agent's queue does
/// not fill while the writer sleeps on its timer; not before.
#[tokio::test]
async fn every_full_batch_of_records_asks_for_a_write() {
    for (backlog, full_at) in [(BATCH_MAX, FULL), (100, 50)] {
        let (shared, _closed) = Shared::new(backlog, 0);
        let asked = || {
            shared
                .flush
                .swap(false, std::sync::atomic::Ordering::Relaxed)
        };
        let queue = || shared.queued(shared.uncommitted_with_one(), None);
        for _ in 1..full_at {
            queue();
        }
        assert!(!asked(), "not before a full batch");
        queue();
        assert!(asked(), "at a full batch of {full_at}");
        shared.done(full_at);
        for _ in 0..full_at {
            queue();
        }
        assert!(asked(), "again at the next");
        // Without a spool, a record without a ticket does not ask by itself.
        queue();
        assert!(!asked());
    }
}

/// A record that starts the spool's other segment (whose records must be committed before it
/// can be reused), and a record the spool has no room for, ask the writer to write at once.
#[tokio::test]
async fn the_spool_asks_for_a_write_when_it_needs_its_other_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lock = super::spool::Locked::take(&dir.path().join("audit.spool")).expect("lock");
    let spool = super::spool::Spool::create(lock, 4096).expect("spool");
    let (shared, _closed) = Shared::spooled(BATCH_MAX, 0, Some(spool));
    let mut asked = Vec::new();
    for n in 0..1000_u128 {
        let ticket = shared.spool(&backend::Op::Finish(
            uuid::Uuid::from_u128(n),
            end(at(1, 0), "closed"),
        ));
        shared.queued(shared.uncommitted_with_one(), ticket);
        if shared
            .flush
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            asked.push((n, ticket.is_some()));
        }
        if ticket.is_none() {
            break;
        }
    }
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(
        asked[0].1,
        "the first record of the second segment: {asked:?}"
    );
    assert!(!asked[1].1, "no room: {asked:?}");
    assert!(asked[0].0 > 0);
}
