//! Audit store: one record per proxied connection, and one per statement (PostgreSQL) or request
//! (HTTP) of its L7 session.
//!
//! The proxy holds an [`AuditSink`]; every write goes through a bounded queue to ONE writer, on
//! a thread of its own, that commits what is queued (up to [`writer::BATCH_MAX`] operations) in
//! one transaction, on a SQLite connection it owns (`sqlite/write.rs`).
//! Nothing on the data path blocks a thread. A queue without room makes new work wait, up to the
//! sink's wait: statements and requests in [`AuditSink::hold`] (`None` after the wait), a
//! connection in [`AuditSink::begin`] ([`StoreError::QueueFull`] after the wait). The proxy then
//! refuses the statement, request or connection (fail closed). What goes ahead holds a
//! [`Slot`] for its record (a connection, for its end), so that record is never lost to a full
//! queue.
//!
//! - Every record is copied into the spool ([`spool`], a file mapped `MAP_SHARED`) before it is
//!   queued, and the records left there are written at the next start: a crash of the agent
//!   loses none. [`AuditSink::begin`] returns once the open row is **spooled**, or, when the
//!   spool has no room or the last write failed, once it is committed: a connection reaches its
//!   target only after its record is safe. (WAL with `synchronous = NORMAL` and a shared
//!   mapping: both survive a crash of the agent; a power loss may drop the last records.)
//! - [`AuditSink::finish`], [`AuditSink::record`], [`AuditSink::statement`] and
//!   [`AuditSink::request`] are queued without waiting (in their slot, when they have one). A statement or request references its
//!   connection row (a foreign key): record it only after that connection's `begin` returned.
//! - On open, the spooled records are written (rows already there kept), then rows left open
//!   by a crashed agent get `end_reason = "agent-restart"` and keep
//!   `ended_at` NULL: when those connections really ended is unknown, and a made-up end would
//!   give them a false duration.
//! - [`AuditSink::close`] or the drop of every sink makes the writer flush and stop;
//!   [`Store::shutdown`] waits for it.
//!
//! SQL lives in the backend (`sqlite.rs`) behind [`backend::WriteBackend`] and [`StoreReader`], so
//! that a PostgreSQL backend can be added for fleets. Ids are uuid v7 text; times are INTEGER unix
//! microseconds, formatted as RFC 3339 on read.
mod backend;
mod error;
mod id;
mod list;
mod sink;
mod spool;
mod sqlite;
mod time;
mod types;
mod writer;

#[cfg(test)]
mod tests;

use std::path::Path;

use tokio::sync::{mpsc, oneshot};

pub use error::{StoreError, WriteError};
#[cfg(test)]
pub(crate) use sink::Sent;
pub use sink::{AuditSink, SESSION_IN_FLIGHT, SessionBudget, SessionPermit, Slot};
pub use spool::SpoolError;
pub use types::{
    ConnectionEnd, ConnectionRecord, RequestRecord, RequestRow, SessionFilter, SessionRow,
    StatementRecord, StatementRow, StoreStats,
};
pub(crate) use writer::CLOSE_IDLE;

/// Longest statement text stored, in bytes; a longer one is cut at a character boundary and
/// ends with `… [N more bytes]`.
pub const MAX_STATEMENT_TEXT: usize = 64 * 1024;

/// Cuts a statement's text as a session holds it for its records (a prepared statement's, for
/// as long as it lives) to what the store keeps, with room for the `… [N more bytes]` mark: the
/// store then takes it as is, and a session holding many long statements holds only that much.
pub fn cap_statement_text(text: &mut String) {
    // "… [N more bytes]" with a 20-digit N is 37 bytes.
    sink::cap_text(text, MAX_STATEMENT_TEXT - 64);
}

/// Longest recorded request body, in bytes (the target's `body_cap` is usually smaller); cut and
/// marked as statement texts are.
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// Reads sessions back, for the CLI (through the admin socket). Cheap to clone.
#[derive(Debug, Clone)]
pub struct StoreReader {
    db: sqlite::SqliteReader,
}

impl StoreReader {
    /// Sessions selected by `f`, newest first.
    pub async fn list(&self, f: &SessionFilter) -> Result<Vec<SessionRow>, StoreError> {
        self.db.list(f).await
    }

    /// The session with this id: a full uuid or a unique prefix of at least 8 characters of
    /// the hyphenated form. [`StoreError::AmbiguousId`] if the prefix matches several sessions.
    pub async fn get(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        self.db.get(&id::parse_id(id)?).await
    }

    /// Every statement of the session `connection_id` (a full uuid, as [`SessionRow::id`]), in
    /// `seq` order; none for an unknown session.
    pub async fn statements(&self, connection_id: &str) -> Result<Vec<StatementRow>, StoreError> {
        self.first_statements(connection_id, u32::MAX).await
    }

    /// The first `limit` statements of the session `connection_id`, in `seq` order: a bounded
    /// answer for the admin socket.
    pub async fn first_statements(
        &self,
        connection_id: &str,
        limit: u32,
    ) -> Result<Vec<StatementRow>, StoreError> {
        let id = id::parse_full(connection_id)?;
        self.db.statements(&id, limit).await
    }

    /// The first `limit` HTTP requests of the session `connection_id` (a full uuid), in `seq`
    /// order; none for an unknown session or one that is not HTTP.
    pub async fn first_requests(
        &self,
        connection_id: &str,
        limit: u32,
    ) -> Result<Vec<RequestRow>, StoreError> {
        let id = id::parse_full(connection_id)?;
        self.db.requests(&id, limit).await
    }
}

/// Owns the writer thread.
#[derive(Debug)]
pub struct Store {
    shared: std::sync::Arc<sink::Shared>,
    writer: oneshot::Receiver<Result<(), StoreError>>,
}

impl Store {
    /// Closes the queue (as [`AuditSink::close`]), lets the writer commit everything queued and
    /// waits for it to stop. Errors if a final batch could not be written.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        self.shared.close();
        self.writer
            .await
            .map_err(|_| StoreError::Writer("the writer thread ended without a result".into()))?
    }
}

/// Runs the writer on a thread of its own, with a single-threaded runtime: it is never queued
/// behind the busy connection tasks of the agent's runtime (which, under load, slowed the
/// writer below the rate records arrive at, filled the queue and refused connections), and its
/// synchronous SQLite calls block no connection task.
fn spawn_writer<B: backend::WriteBackend>(
    db: B,
    rx: mpsc::Receiver<sink::Queued>,
    shared: std::sync::Arc<sink::Shared>,
    closed: tokio::sync::watch::Receiver<bool>,
) -> Result<oneshot::Receiver<Result<(), StoreError>>, StoreError> {
    let (done, result) = oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| StoreError::Writer(format!("writer runtime: {e}")))?;
    std::thread::Builder::new()
        .name("audit-writer".into())
        .spawn(move || {
            let r = runtime.block_on(writer::run(db, rx, shared, closed));
            let _ = done.send(r);
        })
        .map_err(|e| StoreError::Writer(format!("writer thread: {e}")))?;
    Ok(result)
}

/// Opens the SQLite audit database at `path` (created mode 0600; its directory 0750 if missing),
/// migrates it, writes the records a previous agent left in the spool beside it (`path` with
/// the extension `spool`), closes rows left open, and starts the writer with a queue of
/// `queue_capacity` operations waiting for it (at least 1), beside the slots held by work in
/// flight (see [`AuditSink`]).
pub async fn open_sqlite(
    path: &Path,
    queue_capacity: usize,
) -> Result<(Store, AuditSink, StoreReader), StoreError> {
    open_sqlite_spooled(path, queue_capacity, Some(spool::SEGMENT)).await
}

/// [`open_sqlite`] with spool segments of `segment` bytes, or (tests of the queue alone) no
/// spool, which behaves as a spool that never has room.
pub(crate) async fn open_sqlite_spooled(
    path: &Path,
    queue_capacity: usize,
    segment: Option<usize>,
) -> Result<(Store, AuditSink, StoreReader), StoreError> {
    // The database first (it creates the directory if missing); the spool is locked and read
    // before anything is written: its records are written by the writer's first transaction,
    // and the spool emptied only after it.
    sqlite::create_file(path).await?;
    let spool_path = path.with_extension("spool");
    let (lock, left) = tokio::task::spawn_blocking(move || {
        let lock = spool::Locked::take(&spool_path)?;
        let left = lock.recover()?;
        Ok::<_, spool::SpoolError>((lock, left))
    })
    .await
    .map_err(|e| StoreError::Writer(format!("reading the spool: {e}")))??;
    let (writer_db, reader_db) = sqlite::open(path, left).await?;
    let spool = match segment {
        Some(segment) => Some(
            tokio::task::spawn_blocking(move || spool::Spool::create(lock, segment))
                .await
                .map_err(|e| StoreError::Writer(format!("creating the spool: {e}")))??,
        ),
        None => None,
    };
    let (shared, closed) = sink::Shared::spooled(queue_capacity, sink::IN_FLIGHT, spool);
    let (tx, rx) = mpsc::channel(shared.backlog_max + shared.in_flight_max);
    let writer = spawn_writer(writer_db, rx, shared.clone(), closed)?;
    let sink = AuditSink::new(tx, shared.clone());
    Ok((
        Store { shared, writer },
        sink,
        StoreReader { db: reader_db },
    ))
}
