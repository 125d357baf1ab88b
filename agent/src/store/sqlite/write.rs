//! The writer's own SQLite connection: synchronous calls on the writer's thread (rusqlite), one
//! prepared statement per kind of row (taken from the connection's cache once per batch, not
//! looked up by its SQL text per row), one transaction per batch.
//!
//! Reads and migrations use sqlx, whose SQLite driver runs each query on a worker thread of its
//! own. For the writer those two thread hops per query (and the wake-ups they take) cost more
//! than the inserts themselves; a connection owned by the writer's thread costs none.
use std::path::Path;

use rusqlite::{CachedStatement, Connection, OpenFlags, Statement, params};
use tracing::warn;

use super::{
    AGENT_RESTART, BUSY_TIMEOUT,
    fold::{self, Fold},
    requests, statements, to_i64,
};
use crate::store::{
    ConnectionEnd, ConnectionRecord, WriteError,
    backend::{Op, WriteBackend},
    time,
};

/// Prepared statements kept by the connection: one per kind of write, with room to spare.
const STATEMENT_CACHE: usize = 8;

const INSERT_CONNECTION: &str = "INSERT INTO connections (id, started_at, workload, spiffe_id, \
    pid, uid, gid, exe, cgroup, cgroup_id, systemd_unit, dst, target, protocol, decision, rule, \
    policy_generation, ended_at, bytes_up, bytes_down, end_reason) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
    ?20, ?21)";

/// A connection that already ended keeps its first end.
const FINISH: &str = "UPDATE connections SET ended_at = ?2, bytes_up = ?3, bytes_down = ?4, \
    end_reason = ?5 WHERE id = ?1 AND end_reason IS NULL";

/// The writer's connection to a database that [`super::open`] has created and migrated.
#[derive(Debug)]
pub(crate) struct SqliteWriter {
    conn: Connection,
}

impl SqliteWriter {
    /// Opens `path` for writing: WAL (set by the migrating connection, and persistent; checked),
    /// `synchronous = NORMAL`, foreign keys on and the busy timeout, as on the store's other
    /// connections, and temporary data in memory (this connection only).
    pub(super) fn open(path: &Path) -> Result<Self, WriteError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Statement journals (to undo one statement of a transaction on a constraint error)
        // in memory: no temporary file created, written and unlinked per batch.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let mode: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(WriteError::journal(mode));
        }
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self { conn })
    }

    /// Applies `ops` in queue order, in one transaction. A `begin` precedes its connection's
    /// statements, requests and end in the queue, so each row finds its parent. A connection
    /// begun and ended in the batch is inserted complete ([`fold`]): its children still find
    /// it, and nothing reads the row before the commit.
    fn write(&mut self, ops: &[Op]) -> Result<(), rusqlite::Error> {
        if !self.conn.is_autocommit() {
            // A transaction a failed ROLLBACK left open would fail every later BEGIN.
            warn!("audit writer found a transaction left open: rolling it back");
            self.conn.execute_batch("ROLLBACK")?;
        }
        let tx = self.conn.transaction()?;
        let mut missed = 0_u64;
        {
            let mut sql = Prepared::new(&tx, Conflict::Fail);
            let folds = fold::fold(ops);
            for (i, op) in ops.iter().enumerate() {
                let written = match (op, folds.get(i)) {
                    (_, Some(Fold::Skip)) => true,
                    (Op::Begin { rec, .. }, Some(Fold::EndAt(_))) => {
                        let end = fold::end_of(ops, &folds, i);
                        insert_connection(sql.get(Sql::Connection)?, rec, end)?;
                        true
                    }
                    _ => apply(&mut sql, op)?,
                };
                if !written {
                    missed += 1;
                }
            }
        }
        tx.commit()?;
        if missed > 0 {
            warn!(
                sessions = missed,
                "audit finish for sessions that are unknown or already ended"
            );
        }
        Ok(())
    }
}

/// What [`SqliteWriter::recover`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Spooled records written (or already there).
    pub(crate) replayed: u64,
    /// Spooled records the database refused.
    pub(crate) skipped: u64,
    /// Rows left open, closed as `agent-restart`.
    pub(crate) closed: u64,
}

impl SqliteWriter {
    /// Writes `left`, the records a previous agent spooled, oldest first: a row already present
    /// stays as it is (it was committed before the crash), an end applies to a row still open
    /// only. Then closes the rows still open with `end_reason = "agent-restart"`. One
    /// transaction; a record the database refuses (a statement of an unknown connection) is
    /// skipped and counted, any other error fails the whole recovery.
    pub(crate) fn recover(&mut self, left: &[Op]) -> Result<Recovered, WriteError> {
        let tx = self.conn.transaction()?;
        let mut done = Recovered::default();
        {
            let mut sql = Prepared::new(&tx, Conflict::Ignore);
            for op in left {
                match apply(&mut sql, op) {
                    Ok(_) => done.replayed += 1,
                    Err(e) if is_constraint(&e) => {
                        done.skipped += 1;
                        warn!(error = %e, "spooled audit record refused");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        done.closed = tx.execute(
            "UPDATE connections SET end_reason = ?1 WHERE end_reason IS NULL",
            [AGENT_RESTART],
        )? as u64;
        tx.commit()?;
        Ok(done)
    }
}

/// Writes one operation; `false` for an end that found no open row.
fn apply(sql: &mut Prepared<'_>, op: &Op) -> Result<bool, rusqlite::Error> {
    match op {
        Op::Begin { rec, .. } => insert_connection(sql.get(Sql::Connection)?, rec, None)?,
        Op::Record(rec, end) => insert_connection(sql.get(Sql::Connection)?, rec, Some(end))?,
        Op::Statement(rec) => statements::insert(sql.get(Sql::Statement)?, rec)?,
        Op::Request(rec) => requests::insert(sql.get(Sql::Request)?, rec)?,
        Op::Finish(id, end) => return Ok(finish(sql.get(Sql::Finish)?, id, end)? > 0),
    }
    Ok(true)
}

/// Whether SQLite refused the data itself (a constraint).
pub(crate) fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl WriteBackend for SqliteWriter {
    async fn write_batch(&mut self, ops: &[Op]) -> Result<(), WriteError> {
        Ok(self.write(ops)?)
    }

    async fn close(self) {
        if let Err((_, e)) = self.conn.close() {
            warn!(error = %e, "closing the audit writer connection");
        }
    }
}

/// The writes of a batch.
#[derive(Clone, Copy)]
enum Sql {
    Connection,
    Finish,
    Statement,
    Request,
}

impl Sql {
    const ALL: usize = 4;

    fn text(self, conflict: Conflict) -> std::borrow::Cow<'static, str> {
        let text = match self {
            Sql::Connection => INSERT_CONNECTION,
            Sql::Finish => FINISH,
            Sql::Statement => statements::INSERT,
            Sql::Request => requests::INSERT,
        };
        match conflict {
            Conflict::Fail => text.into(),
            Conflict::Ignore => text
                .replacen("INSERT INTO", "INSERT OR IGNORE INTO", 1)
                .into(),
        }
    }
}

/// What an insert does with a row whose key is already there.
#[derive(Clone, Copy)]
enum Conflict {
    /// Fails: a repeated record is a fault of its sender.
    Fail,
    /// Keeps the row there: records read back from the spool may have been committed already.
    Ignore,
}

/// A batch's prepared statements, each taken from the connection's cache at its first use in
/// the batch (and back to it at the batch's end).
struct Prepared<'c> {
    conn: &'c Connection,
    conflict: Conflict,
    cached: [Option<CachedStatement<'c>>; Sql::ALL],
}

impl<'c> Prepared<'c> {
    fn new(conn: &'c Connection, conflict: Conflict) -> Self {
        Self {
            conn,
            conflict,
            cached: Default::default(),
        }
    }

    fn get(&mut self, sql: Sql) -> Result<&mut Statement<'c>, rusqlite::Error> {
        let slot = &mut self.cached[sql as usize];
        if slot.is_none() {
            *slot = Some(self.conn.prepare_cached(&sql.text(self.conflict))?);
        }
        Ok(slot.as_mut().expect("prepared just above"))
    }
}

/// The lowercase hyphenated text of `id`, as stored, without allocating.
pub(super) fn id_text<'b>(
    id: &uuid::Uuid,
    buf: &'b mut [u8; uuid::fmt::Hyphenated::LENGTH],
) -> &'b str {
    id.hyphenated().encode_lower(buf)
}

fn insert_connection(
    insert: &mut Statement<'_>,
    rec: &ConnectionRecord,
    end: Option<&ConnectionEnd>,
) -> Result<(), rusqlite::Error> {
    let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
    insert.execute(params![
        id_text(&rec.id, &mut buf),
        time::to_micros(rec.started_at),
        rec.workload,
        rec.spiffe_id,
        rec.pid,
        rec.uid,
        rec.gid,
        rec.exe,
        rec.cgroup,
        to_i64(rec.cgroup_id),
        rec.systemd_unit,
        rec.dst.to_string(),
        rec.target,
        rec.protocol,
        rec.decision,
        rec.rule,
        to_i64(rec.policy_generation),
        end.map(|e| time::to_micros(e.ended_at)),
        end.map(|e| to_i64(e.bytes_up)),
        end.map(|e| to_i64(e.bytes_down)),
        end.map(|e| e.end_reason.as_str()),
    ])?;
    Ok(())
}

/// Rows changed: 0 for an unknown connection or one that already ended.
fn finish(
    update: &mut Statement<'_>,
    id: &uuid::Uuid,
    end: &ConnectionEnd,
) -> Result<usize, rusqlite::Error> {
    let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
    update.execute(params![
        id_text(id, &mut buf),
        time::to_micros(end.ended_at),
        to_i64(end.bytes_up),
        to_i64(end.bytes_down),
        end.end_reason,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_not_in_wal_mode_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.db");
        let conn = Connection::open(&path).expect("create");
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "DELETE", |row| row.get(0))
            .expect("journal mode");
        assert_eq!(mode, "delete");
        drop(conn);
        let e = SqliteWriter::open(&path).expect_err("not WAL");
        assert_eq!(e.to_string(), "journal_mode is delete, not wal");
    }
}
