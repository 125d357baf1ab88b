use std::time::{Duration, SystemTime};

use super::*;
use crate::store::ConnectionEnd;

/// A small segment: a few records each.
const SMALL: usize = 4096;

fn finish(n: u64) -> Op {
    Op::Finish(
        uuid::Uuid::from_u128(u128::from(n)),
        ConnectionEnd {
            ended_at: SystemTime::UNIX_EPOCH + Duration::from_secs(n),
            bytes_up: n,
            bytes_down: 0,
            end_reason: "closed".into(),
        },
    )
}

fn ids(ops: &[Op]) -> Vec<u64> {
    ops.iter()
        .map(|op| match op {
            Op::Finish(_, end) => end.bytes_up,
            other => panic!("not a finish: {other:?}"),
        })
        .collect()
}

/// Gives `tickets` back to `spool`.
fn release(spool: &Spool, tickets: impl IntoIterator<Item = Ticket>) {
    let mut released = Released::default();
    released.add(tickets);
    spool.release(released);
}

fn create(path: &Path, segment: usize) -> Spool {
    Spool::create(Locked::take(path).expect("lock"), segment).expect("create")
}

fn spool(dir: &tempfile::TempDir, segment: usize) -> (PathBuf, Spool) {
    let path = dir.path().join("audit.spool");
    let spool = create(&path, segment);
    (path, spool)
}

/// What was appended is read back in order, across a switch of segments, until it is released.
#[test]
fn records_are_read_back_in_order_until_released() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, spool) = spool(&dir, SMALL);
    let tickets: Vec<Ticket> = (1..=100)
        .map(|n| spool.append(&finish(n)).expect("room"))
        .collect();
    assert!(
        tickets.iter().any(|t| t.segment == 1),
        "100 records fill more than one segment"
    );
    let started: Vec<usize> = (0..tickets.len())
        .filter(|&i| tickets[i].started_segment())
        .collect();
    assert_eq!(started.len(), 1, "one switch: {started:?}");
    assert_eq!(tickets[started[0]].segment, 1);
    assert_eq!(tickets[started[0] - 1].segment, 0);
    assert_eq!(
        ids(&recover(&path).expect("recover")),
        (1..=100).collect::<Vec<_>>()
    );
    assert_eq!(spool.outstanding(), 100);

    // Nothing is lost by a clean stop with records outstanding; all released, nothing is left.
    assert!(!spool.clear_if_committed());
    release(&spool, tickets);
    assert!(spool.clear_if_committed());
    assert!(recover(&path).expect("recover").is_empty());
}

/// A segment is reused only once every record in it is released; until then the spool refuses
/// new records, and after reuse the old records are not read back as new ones.
#[test]
fn a_segment_is_reused_only_when_released() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, spool) = spool(&dir, SMALL);
    let mut first = Vec::new();
    let mut n = 0;
    // Fill segment 0, then segment 1.
    let last = loop {
        n += 1;
        match spool.append(&finish(n)) {
            Some(t) => first.push(t),
            None => break n,
        }
    };
    assert!(first.iter().any(|t| t.segment == 1));
    assert_eq!(ids(&recover(&path).expect("recover")).len(), first.len());

    // Releasing segment 1's records does not free segment 0.
    release(&spool, first.iter().copied().filter(|t| t.segment == 1));
    assert!(
        spool.append(&finish(last)).is_none(),
        "segment 0 still held"
    );

    // Releasing segment 0's makes it the next one, emptied.
    release(&spool, first.iter().copied().filter(|t| t.segment == 0));
    let t = spool.append(&finish(1000)).expect("room again");
    assert_eq!(t.segment, 0);
    let back = ids(&recover(&path).expect("recover"));
    let in_one: Vec<u64> = (1..last)
        .skip(first.iter().filter(|t| t.segment == 0).count())
        .collect();
    assert_eq!(
        back,
        [in_one, vec![1000]].concat(),
        "older segment first, no stale records"
    );
}

/// A record torn by a crash (its bytes partly written) ends its segment: it and nothing after
/// it is read back, and what came before is.
#[test]
fn a_torn_record_ends_the_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, spool) = spool(&dir, SMALL);
    for n in 1..=3 {
        spool.append(&finish(n)).expect("room");
    }
    let mut bytes = std::fs::read(&path).expect("read");
    let whole = ids(&recover(&path).expect("recover"));
    assert_eq!(whole, [1, 2, 3]);
    // The third record's last byte.
    let len = |b: &[u8], at: usize| {
        RECORD_HEADER + u32::from_le_bytes(b[at..at + 4].try_into().expect("4")) as usize
    };
    let second = HEADER + len(&bytes, HEADER);
    let third = second + len(&bytes, second);
    let end = third + len(&bytes, third);
    bytes[end - 1] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write");
    assert_eq!(ids(&recover(&path).expect("recover")), [1, 2]);
    bytes[end - 1] ^= 0xff;
    bytes[second + 6] ^= 1; // the second record's generation
    std::fs::write(&path, &bytes).expect("write");
    assert_eq!(ids(&recover(&path).expect("recover")), [1]);
}

/// A missing file, an empty one and one of garbage read back as nothing; a record too large for
/// the spool is refused.
#[test]
fn nothing_to_read_and_records_too_large() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.spool");
    assert!(recover(&path).expect("missing").is_empty());
    std::fs::write(&path, b"").expect("write");
    assert!(recover(&path).expect("empty").is_empty());
    std::fs::write(&path, vec![0x5a; 10_000]).expect("write");
    assert!(recover(&path).expect("garbage").is_empty());

    let spool = create(&path, SMALL);
    assert!(recover(&path).expect("fresh").is_empty());
    let mut big = finish(1);
    if let Op::Finish(_, end) = &mut big {
        end.end_reason = "x".repeat(SMALL / 4);
    }
    assert!(spool.append(&big).is_none());
    assert!(spool.append(&finish(2)).is_some());
}

/// The file is the agent's alone.
#[test]
fn the_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _spool) = spool(&dir, SMALL);
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A spool created over an old one starts above its generations: records of the old one that a
/// new record ends right before (same length) are not read back as new.
#[test]
fn a_new_spool_never_reads_an_old_ones_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, spool) = spool(&dir, SMALL);
    for n in 1..=5 {
        spool.append(&finish(n)).expect("room");
    }
    drop(spool);
    assert_eq!(ids(&recover(&path).expect("recover")), [1, 2, 3, 4, 5]);
    let spool = create(&path, SMALL);
    // The same length as the old first record.
    spool.append(&finish(9)).expect("room");
    assert_eq!(ids(&recover(&path).expect("recover")), [9]);
}

/// One process at a time: a second lock on a spool in use is refused at once, and taken once
/// the first is let go.
#[test]
fn a_spool_in_use_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, spool) = spool(&dir, SMALL);
    let e = Locked::take(&path).expect_err("in use");
    assert!(matches!(e, SpoolError::Locked(_)), "{e}");
    drop(spool);
    Locked::take(&path).expect("free again");
}
