//! The contract between the writer task and a database backend (SQLite today, PostgreSQL later).
use std::future::Future;

use tokio::sync::oneshot;

use super::{
    ConnectionEnd, ConnectionRecord, RequestRecord, StatementRecord, StoreError, WriteError,
};

/// One queued write.
#[derive(Debug)]
pub(crate) enum Op {
    /// Insert an open row; `done` is answered once the row is committed (or not).
    Begin {
        /// The connection.
        rec: ConnectionRecord,
        /// The waiter in [`super::AuditSink::begin`].
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Insert a complete row (a connection that never reached upstream).
    Record(ConnectionRecord, ConnectionEnd),
    /// Close an open row.
    Finish(uuid::Uuid, ConnectionEnd),
    /// Insert a statement of a begun connection.
    Statement(StatementRecord),
    /// Insert an HTTP request of a begun connection.
    Request(Box<RequestRecord>),
}

impl Op {
    /// Someone is waiting for this operation's commit.
    pub(crate) fn has_waiter(&self) -> bool {
        matches!(self, Op::Begin { .. })
    }

    /// A record of the high-volume kinds (statements, requests).
    pub(crate) fn is_bulk(&self) -> bool {
        matches!(self, Op::Statement(_) | Op::Request(_))
    }
}

/// What the writer task needs from a database.
pub(crate) trait WriteBackend: Send + 'static {
    /// Applies `ops` in one transaction: all are committed or none is.
    fn write_batch(&mut self, ops: &[Op]) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// Closes the connection cleanly (SQLite checkpoints the WAL if no other connection is
    /// open).
    fn close(self) -> impl Future<Output = ()> + Send;
}
