//! The audit spool: every record is copied into a file mapped `MAP_SHARED` before it is queued
//! for the writer, so that a crash of the agent loses none of them. The pages of a shared
//! mapping belong to the kernel's page cache, not to the process: what was copied survives the
//! process, as a WAL commit under `synchronous = NORMAL` does (a power loss may drop either).
//! At the next start the records left are read back ([`recover`]) and written to the store,
//! duplicates of rows already there ignored, before rows left open are closed.
//!
//! The file holds two segments. Records are appended to one until it is full, then to the
//! other, which is taken only once every record in it was committed (each record's
//! [`Ticket`] is given back by the writer, [`Spool::release`]). When neither has room the record
//! is not spooled, and the caller falls back to what holds without a spool: a `begin` waits for
//! its commit.
//!
//! Layout, little-endian. A segment starts with `TGSPOOL1`, its generation (`u64`, 0 when never
//! used) and the segment length (`u64`); then records, each its payload length (`u32`), the low
//! 32 bits of the segment's generation, the CRC-32 of those 4 bytes and the payload, and the
//! payload ([`codec`]). A segment is read up to the first record that is empty, of another
//! generation, longer than the segment or whose checksum fails: records are appended one after
//! the other under a lock, so only the last one can be torn by a crash, and what follows is
//! zeros or an earlier generation's records, all committed before the segment was reused.
pub(crate) mod codec;

use std::{
    io,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

use memmap2::MmapMut;
use tracing::warn;

use super::backend::Op;

const MAGIC: &[u8; 8] = b"TGSPOOL1";
/// Magic, generation, segment length.
const HEADER: usize = 24;
/// Payload length, generation, checksum.
const RECORD_HEADER: usize = 12;

/// The length of each of the two segments of the agent's spool. A record takes its fields'
/// bytes plus a few per field: a connection about 200 bytes, a statement or request about 150
/// plus its text or body (each capped at 64 KiB).
pub(crate) const SEGMENT: usize = 4 << 20;

/// Why the spool cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Reading, creating, sizing or mapping the file failed.
    #[error("audit spool {path}: {what}: {source}")]
    Io {
        /// The spool file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// Another process holds the spool: two agents on one state directory would overwrite each
    /// other's records.
    #[error("audit spool {0} is in use by another process (one agent per state directory)")]
    Locked(PathBuf),
}

/// The spool file, locked (`flock`, exclusive) for as long as this lives: taken before the
/// records left in it are read, so that no other agent reads, replays or reuses it meanwhile.
/// The kernel lets go of the lock when the process dies.
#[derive(Debug)]
pub(crate) struct Locked {
    path: PathBuf,
    file: nix::fcntl::Flock<std::fs::File>,
}

impl Locked {
    /// Opens (creating it, mode 0600, and tightening an existing file to it) and locks the spool
    /// at `path`; [`SpoolError::Locked`] at once if another process holds it.
    pub(crate) fn take(path: &Path) -> Result<Self, SpoolError> {
        use std::os::unix::fs::PermissionsExt as _;
        let err = |what| {
            let path = path.to_owned();
            move |source| SpoolError::Io { path, what, source }
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(err("open"))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err("secure"))?;
        let file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| match errno {
                nix::errno::Errno::EWOULDBLOCK => SpoolError::Locked(path.to_owned()),
                e => err("lock")(io::Error::from(e)),
            })?;
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    /// The records a previous agent left in the spool, oldest first ([`recover`]).
    pub(crate) fn recover(&self) -> Result<Vec<Op>, SpoolError> {
        recover(&self.path)
    }
}

/// A spooled record, given back ([`Spool::release`]) once it is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    segment: u8,
    /// The record is the first of a segment just started: the other segment's records must be
    /// committed before it can be reused.
    first: bool,
}

impl Ticket {
    /// Whether the record started a segment ([`Ticket::first`]).
    pub(crate) fn started_segment(self) -> bool {
        self.first
    }
}

/// Records waiting to be committed, per segment, counted by [`Spool::release`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Released([u64; 2]);

impl Released {
    /// Counts `tickets` (a single `Option<Ticket>` is one or none).
    pub(crate) fn add(&mut self, tickets: impl IntoIterator<Item = Ticket>) {
        for ticket in tickets {
            self.0[usize::from(ticket.segment)] += 1;
        }
    }
}

/// The mapped spool file; appends are serialized by a lock held for one copy.
#[derive(Debug)]
pub(crate) struct Spool {
    state: Mutex<State>,
    /// Held for the spool's life.
    _lock: Locked,
}

#[derive(Debug)]
struct State {
    map: MmapMut,
    segment: usize,
    /// The segment appended to.
    current: usize,
    /// Where the next record goes in it.
    pos: usize,
    /// Each segment's generation.
    generation: [u64; 2],
    /// Records of each segment not yet given back.
    outstanding: [u64; 2],
}

thread_local! {
    /// The record being encoded, outside the spool's lock, kept to save an allocation per
    /// record.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
}

impl Spool {
    /// Sizes the locked spool to two empty segments of `segment` bytes whose blocks are
    /// allocated now (a write to a mapped page of a file without them would crash the agent on
    /// a full disk; copy-on-write filesystems allocate on every overwrite, which this cannot
    /// prevent, see ARCHITECTURE.md), and maps it. Call after the records it held ([`Locked::recover`]) were
    /// written: they are gone.
    pub(crate) fn create(lock: Locked, segment: usize) -> Result<Self, SpoolError> {
        let path = lock.path.clone();
        let err = |what| {
            let path = path.clone();
            move |source| SpoolError::Io { path, what, source }
        };
        let file: &std::fs::File = &lock.file;
        // Above every generation the file held, read before it is resized (a file of another
        // segment length would not be read right after): a record of an earlier one that a new
        // record happens to end right before is never read as a new one.
        let mut old = Vec::new();
        io::Read::read_to_end(&mut &*file, &mut old).map_err(err("read"))?;
        let first = segments(&old)
            .iter()
            .map(|(generation, _)| *generation)
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .unwrap_or(1);
        drop(old);
        let len = 2 * segment;
        let len64 = u64::try_from(len).expect("a spool is far below 2^64 bytes");
        file.set_len(len64).map_err(err("size"))?;
        nix::fcntl::posix_fallocate(file, 0, i64::try_from(len).expect("a small spool"))
            .map_err(|e| err("allocate")(io::Error::from(e)))?;
        // SAFETY: the file is the agent's own (mode 0600 in its state directory), sized above and
        // locked: no other agent maps or truncates it while this one runs. A truncation by
        // another root process would fault the agent's next append (SIGBUS), as it would
        // corrupt SQLite's files.
        let map = unsafe { MmapMut::map_mut(file) }.map_err(err("map"))?;
        let mut state = State {
            map,
            segment,
            current: 0,
            pos: HEADER,
            generation: [first, 0],
            outstanding: [0; 2],
        };
        state.start(0, first);
        state.start(1, 0);
        Ok(Self {
            state: Mutex::new(state),
            _lock: lock,
        })
    }

    /// Copies `op` into the spool, or `None` when it has no room for it (both segments hold
    /// records not yet committed, or the record is larger than a quarter of a segment).
    pub(crate) fn append(&self, op: &Op) -> Option<Ticket> {
        SCRATCH.with_borrow_mut(|payload| {
            payload.clear();
            codec::encode(op, payload);
            self.append_payload(payload)
        })
    }

    /// Copies an encoded record in, under the lock.
    fn append_payload(&self, payload: &[u8]) -> Option<Ticket> {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let s = &mut *guard;
        let need = RECORD_HEADER + payload.len();
        if need > s.segment / 4 {
            return None;
        }
        let first = s.pos + need > s.segment;
        if first {
            let other = 1 - s.current;
            if s.outstanding[other] > 0 {
                return None;
            }
            let generation = s.generation[s.current].checked_add(1).unwrap_or(1);
            s.start(other, generation);
            s.current = other;
            s.pos = HEADER;
        }
        let at = s.current * s.segment + s.pos;
        let generation = (s.generation[s.current] as u32).to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&generation);
        crc.update(payload);
        let len = u32::try_from(payload.len()).expect("a quarter segment fits in u32");
        // A zero header after it first: the read stops there, never at bytes an earlier
        // generation left (a workload's text could hold what looks like a record).
        let after = at + need;
        let stop = (after + RECORD_HEADER).min((s.current + 1) * s.segment);
        s.map[after..stop].fill(0);
        let record = &mut s.map[at..at + need];
        record[RECORD_HEADER..].copy_from_slice(payload);
        record[0..4].copy_from_slice(&len.to_le_bytes());
        record[4..8].copy_from_slice(&generation);
        record[8..12].copy_from_slice(&crc.finalize().to_le_bytes());
        s.pos += need;
        s.outstanding[s.current] += 1;
        Some(Ticket {
            segment: u8::try_from(s.current).expect("two segments"),
            first,
        })
    }

    /// Gives back committed records (or records that can never be written).
    pub(crate) fn release(&self, released: Released) {
        if released.0 == [0; 2] {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for (outstanding, n) in s.outstanding.iter_mut().zip(released.0) {
            *outstanding = outstanding.saturating_sub(n);
        }
    }

    /// Empties the spool if every record in it was given back (the agent stopped cleanly), so
    /// that the next start has nothing to read back. Records appended later still go in.
    pub(crate) fn clear_if_committed(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.outstanding != [0; 2] {
            return false;
        }
        let generation = s
            .generation
            .iter()
            .max()
            .copied()
            .unwrap_or(0)
            .checked_add(1)
            .unwrap_or(1);
        let current = s.current;
        s.start(1 - current, 0);
        s.start(current, generation);
        s.pos = HEADER;
        true
    }

    /// Whether the spool holds records not yet committed.
    #[cfg(test)]
    pub(crate) fn outstanding(&self) -> u64 {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.outstanding.iter().sum()
    }
}

impl State {
    /// Makes segment `i` empty, of `generation` (0: unused): its header, then a zero record
    /// header, so that the records of its previous generation are never read as this one's.
    fn start(&mut self, i: usize, generation: u64) {
        let at = i * self.segment;
        let segment = u64::try_from(self.segment).expect("a small spool");
        let h = &mut self.map[at..at + HEADER + RECORD_HEADER];
        h[..8].copy_from_slice(MAGIC);
        h[8..16].copy_from_slice(&generation.to_le_bytes());
        h[16..24].copy_from_slice(&segment.to_le_bytes());
        h[HEADER..].fill(0);
        self.generation[i] = generation;
        self.outstanding[i] = 0;
    }
}

/// The records a previous agent left in the spool at `path`, oldest first (none if there is no
/// file). A record whose bytes pass the checksum but do not decode (written by another version)
/// is skipped with a warning.
pub(crate) fn recover(path: &Path) -> Result<Vec<Op>, SpoolError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SpoolError::Io {
                path: path.to_owned(),
                what: "read",
                source,
            });
        }
    };
    let mut segments = segments(&bytes);
    if segments.is_empty() && bytes.iter().any(|b| *b != 0) {
        warn!(path = %path.display(), "audit spool has no valid header: nothing read back from it");
    }
    segments.sort_by_key(|(generation, _)| *generation);
    let mut ops = Vec::new();
    let mut skipped = 0_u64;
    for (generation, segment) in segments {
        if generation == 0 {
            continue;
        }
        for payload in records(segment, generation) {
            match codec::decode(payload) {
                Ok(op) => ops.push(op),
                Err(e) => {
                    skipped += 1;
                    warn!(path = %path.display(), error = %e, "audit spool record skipped");
                }
            }
        }
    }
    if skipped > 0 {
        warn!(path = %path.display(), skipped, "audit spool records that could not be read back");
    }
    Ok(ops)
}

/// The segments of a spool file's `bytes` with a valid header, and their generations.
fn segments(bytes: &[u8]) -> Vec<(u64, &[u8])> {
    let mut segments = Vec::new();
    let mut at = 0;
    while let Some((generation, len)) = header(&bytes[at..]) {
        segments.push((generation, &bytes[at..at + len]));
        at += len;
        if segments.len() == 2 {
            break;
        }
    }
    segments
}

/// A segment's generation and length, if `bytes` starts with a valid header.
fn header(bytes: &[u8]) -> Option<(u64, usize)> {
    let h = bytes.get(..HEADER)?;
    if &h[..8] != MAGIC {
        return None;
    }
    let generation = u64::from_le_bytes(h[8..16].try_into().ok()?);
    let len = usize::try_from(u64::from_le_bytes(h[16..24].try_into().ok()?)).ok()?;
    (len >= HEADER + RECORD_HEADER && len <= bytes.len()).then_some((generation, len))
}

/// The payloads of `segment`'s records of `generation`, in order, up to the first that is not.
fn records(segment: &[u8], generation: u64) -> impl Iterator<Item = &[u8]> {
    let tag = (generation as u32).to_le_bytes();
    let mut at = HEADER;
    std::iter::from_fn(move || {
        let h = segment.get(at..at + RECORD_HEADER)?;
        let len = usize::try_from(u32::from_le_bytes(h[0..4].try_into().ok()?)).ok()?;
        if len == 0 || h[4..8] != tag {
            return None;
        }
        let payload = segment.get(at + RECORD_HEADER..at + RECORD_HEADER + len)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&tag);
        crc.update(payload);
        if crc.finalize().to_le_bytes() != h[8..12] {
            return None;
        }
        at += RECORD_HEADER + len;
        Some(payload)
    })
}

#[cfg(test)]
mod tests;
