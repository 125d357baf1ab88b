//! Errors of the audit store.
use std::{path::PathBuf, sync::Arc};

/// Errors of the audit store: opening it, queueing records, writing and reading them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The writer's queue is full: the caller must not let the connection through unrecorded.
    #[error("audit queue is full")]
    QueueFull,
    /// The store is closed (shutting down) or its writer has stopped.
    #[error("audit store is closed")]
    Closed,
    /// The state directory or the database file cannot be created or secured.
    #[error("cannot create {0}: {1}")]
    Create(PathBuf, #[source] std::io::Error),
    /// The database cannot be opened.
    #[error("cannot open audit database {0}: {1}")]
    Open(PathBuf, #[source] sqlx::Error),
    /// The embedded migrations failed.
    #[error("cannot migrate audit database {0}: {1}")]
    Migrate(PathBuf, #[source] sqlx::migrate::MigrateError),
    /// Writing the records a previous agent left in the spool, or closing the rows it left
    /// open, failed.
    #[error("cannot recover the records of a previous agent in {0}: {1}")]
    Recover(PathBuf, #[source] WriteError),
    /// The spool cannot be read or set up.
    #[error(transparent)]
    Spool(#[from] super::spool::SpoolError),
    /// The writer's connection cannot be opened.
    #[error("cannot open audit database {0} for writing: {1}")]
    OpenWriter(PathBuf, #[source] WriteError),
    /// A batch of records could not be committed (shared by every waiter of the batch).
    #[error("audit write failed: {0}")]
    Write(#[source] Arc<WriteError>),
    /// A query of the reader failed.
    #[error("audit query failed: {0}")]
    Db(#[from] sqlx::Error),
    /// A session id given to `get` is neither a uuid nor a prefix of at least 8 hex digits.
    #[error("invalid session id {0:?}: give a uuid or a prefix of at least 8 characters")]
    BadId(String),
    /// A session id that must be a full uuid is not one.
    #[error("invalid session id {0:?}: give the full uuid")]
    NotUuid(String),
    /// A session id prefix matches more than one session.
    #[error("session id prefix {0:?} is ambiguous")]
    AmbiguousId(String),
    /// A stored row cannot be read back (corrupt or foreign data).
    #[error("invalid stored row {id}: {reason}")]
    BadRow {
        /// Id of the row.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The writer thread panicked or could not start.
    #[error("audit writer failed: {0}")]
    Writer(String),
}

/// A failed write of the audit writer's connection. Opaque: which database library failed is
/// the backend's business.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct WriteError(#[from] Kind);

#[derive(Debug, thiserror::Error)]
enum Kind {
    /// SQLite refused the write, or the database could not be reached.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database is not in WAL mode, which the store's crash safety and its readers rely on.
    #[error("journal_mode is {0}, not wal")]
    Journal(String),
}

impl From<rusqlite::Error> for WriteError {
    fn from(e: rusqlite::Error) -> Self {
        Self(Kind::Sqlite(e))
    }
}

impl WriteError {
    /// A SQLite database whose journal mode is `mode`, not WAL.
    pub(crate) fn journal(mode: String) -> Self {
        Self(Kind::Journal(mode))
    }

    /// Whether the database refused the data itself (a constraint: a duplicate, a missing
    /// parent, a wrong type), not the write as such (a lock, a full disk).
    pub(crate) fn is_data(&self) -> bool {
        matches!(&self.0, Kind::Sqlite(e) if super::sqlite::is_constraint(e))
    }
}
