//! The SQLite backend: every SQL statement of the store lives here (and in its submodules).
mod requests;
mod statements;

use std::{path::Path, sync::LazyLock, time::Duration};

use sqlx::{
    ConnectOptions as _, Connection as _, QueryBuilder, Row as _, Sqlite, SqliteConnection,
    SqlitePool,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
};
use tracing::{info, warn};

use super::{
    ConnectionEnd, ConnectionRecord, RequestRow, SessionFilter, SessionRow, StatementRow,
    StoreError,
    backend::{Op, WriteBackend},
    id::IdQuery,
    time,
};

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections of the reader pool (CLI queries through the admin socket).
const READERS: u32 = 4;
/// `end_reason` of rows left open by an agent that stopped without finishing them.
pub(crate) const AGENT_RESTART: &str = "agent-restart";

const COLUMNS: &str = "id, started_at, workload, spiffe_id, pid, uid, gid, exe, cgroup, \
    cgroup_id, systemd_unit, dst, target, protocol, decision, rule, policy_generation, \
    ended_at, bytes_up, bytes_down, end_reason";

const INSERT_HEAD: &str = "INSERT INTO connections (id, started_at, workload, spiffe_id, pid, \
    uid, gid, exe, cgroup, cgroup_id, systemd_unit, dst, target, protocol, decision, rule, \
    policy_generation, ended_at, bytes_up, bytes_down, end_reason) VALUES ";
const CONNECTION_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// The operations of a batch, grouped by kind in the order they are written.
struct Groups<'a> {
    connections: Vec<(&'a ConnectionRecord, Option<&'a ConnectionEnd>)>,
    statements: Vec<&'a crate::store::StatementRecord>,
    requests: Vec<&'a crate::store::RequestRecord>,
    ends: Vec<(&'a uuid::Uuid, &'a ConnectionEnd)>,
}

impl Groups<'_> {
    async fn write(&self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        for chunk in chunks(&self.connections) {
            insert_connections(INSERT_MANY.get(chunk.len()), chunk)
                .execute(&mut *conn)
                .await?;
        }
        for chunk in chunks(&self.statements) {
            statements::insert_many(chunk).execute(&mut *conn).await?;
        }
        for chunk in chunks(&self.requests) {
            requests::insert_many(chunk).execute(&mut *conn).await?;
        }
        for chunk in chunks(&self.ends) {
            let done = finish_many(FINISH_MANY.get(chunk.len()), chunk)
                .execute(&mut *conn)
                .await?;
            let missed = (chunk.len() as u64).saturating_sub(done.rows_affected());
            if missed > 0 {
                warn!(
                    sessions = missed,
                    "audit finish for sessions that are unknown or already ended"
                );
            }
        }
        Ok(())
    }
}

/// The end of several connections in one UPDATE: `v` holds (id, ended_at, bytes_up,
/// bytes_down, end_reason) rows; a connection that already ended keeps its first end.
static FINISH_MANY: LazyLock<RowsSql> = LazyLock::new(|| {
    RowsSql::new(
        "UPDATE connections SET ended_at = v.column2, bytes_up = v.column3, \
         bytes_down = v.column4, end_reason = v.column5 FROM (VALUES ",
        "(?, ?, ?, ?, ?)",
        ") AS v WHERE connections.id = v.column1 AND connections.end_reason IS NULL",
    )
});

/// Multi-row inserts of connection rows.
static INSERT_MANY: LazyLock<RowsSql> =
    LazyLock::new(|| RowsSql::new(INSERT_HEAD, CONNECTION_ROW, ""));

fn finish_many<'q>(sql: &'q str, ends: &[(&uuid::Uuid, &'q ConnectionEnd)]) -> Query<'q> {
    ends.iter()
        .fold(sqlx::query::<Sqlite>(sql), |q, (id, end)| {
            q.bind(id.hyphenated().to_string())
                .bind(time::to_micros(end.ended_at))
                .bind(to_i64(end.bytes_up))
                .bind(to_i64(end.bytes_down))
                .bind(&end.end_reason)
        })
}

fn insert_connections<'q>(
    sql: &'q str,
    rows: &[(&'q ConnectionRecord, Option<&'q ConnectionEnd>)],
) -> Query<'q> {
    rows.iter()
        .fold(sqlx::query::<Sqlite>(sql), |q, (rec, end)| {
            bind_connection(q, rec, *end)
        })
}

/// The writer's own connection.
#[derive(Debug)]
pub(crate) struct SqliteWriter {
    conn: SqliteConnection,
}

/// A pool of query-only connections.
#[derive(Debug, Clone)]
pub(crate) struct SqliteReader {
    pool: SqlitePool,
}

/// Opens (creating if needed) the database at `path`, migrates it and closes the rows a previous
/// agent left open. Returns the writer connection and the reader pool.
pub(crate) async fn open(path: &Path) -> Result<(SqliteWriter, SqliteReader), StoreError> {
    create_file(path).await?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(BUSY_TIMEOUT)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true);
    let open_err = |e| StoreError::Open(path.to_owned(), e);

    // Only the writer switches to WAL (a persistent setting that needs an exclusive lock).
    let mut conn = options
        .clone()
        .journal_mode(SqliteJournalMode::Wal)
        .connect()
        .await
        .map_err(open_err)?;
    sqlx::migrate!("./migrations")
        .run(&mut conn)
        .await
        .map_err(|e| StoreError::Migrate(path.to_owned(), e))?;
    // Set after the migrations (which may copy whole tables, and should spill to disk): a
    // multi-row insert or update inside a transaction keeps a statement journal (to undo just
    // that statement on a constraint error), and the `VALUES` of a batched update is a temporary
    // table. In memory they cost no file creation, write and unlink per batch.
    sqlx::query("PRAGMA temp_store = MEMORY")
        .execute(&mut conn)
        .await
        .map_err(open_err)?;
    let recovered = sqlx::query("UPDATE connections SET end_reason = ?1 WHERE end_reason IS NULL")
        .bind(AGENT_RESTART)
        .execute(&mut conn)
        .await
        .map_err(|e| StoreError::Recover(path.to_owned(), e))?
        .rows_affected();
    if recovered > 0 {
        warn!(path = %path.display(), rows = recovered, "closed audit rows left open by a previous agent");
    }

    let pool = SqlitePoolOptions::new()
        .max_connections(READERS)
        .connect_with(options.pragma("query_only", "ON"))
        .await
        .map_err(open_err)?;
    info!(path = %path.display(), "audit store open");
    Ok((SqliteWriter { conn }, SqliteReader { pool }))
}

/// Creates the parent directory (0750) if missing, and the database file with mode 0600
/// (tightened to 0600 if it exists). SQLite gives its `-wal` and `-shm` files the same mode.
async fn create_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    let create_err = |p: &Path| {
        let p = p.to_owned();
        move |e| StoreError::Create(p, e)
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !tokio::fs::try_exists(dir).await.map_err(create_err(dir))?
    {
        tokio::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .await
            .map_err(create_err(dir))?;
    }
    tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .await
        .map_err(create_err(path))?;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .await
        .map_err(create_err(path))
}

impl WriteBackend for SqliteWriter {
    /// Writes `ops` in one transaction, as few SQL statements as possible: the operations are
    /// grouped by kind, connection rows first (statements and requests reference them, ends
    /// update them), then statements, requests and ends, each group in multi-row statements.
    /// A batch that comes to one SQL statement runs without BEGIN/COMMIT (SQLite commits a lone
    /// statement atomically): one round trip to SQLite's thread instead of three.
    async fn write_batch(&mut self, ops: &[Op]) -> Result<(), sqlx::Error> {
        let mut connections = Vec::new();
        let mut statement_rows = Vec::new();
        let mut request_rows = Vec::new();
        let mut ends: Vec<(&uuid::Uuid, &ConnectionEnd)> = Vec::new();
        let mut ended = std::collections::HashSet::new();
        for op in ops {
            match op {
                Op::Begin { rec, .. } => connections.push((rec, None)),
                Op::Record(rec, end) => connections.push((rec, Some(end))),
                Op::Statement(rec) => statement_rows.push(rec),
                Op::Request(rec) => request_rows.push(&**rec),
                // The first end of a connection counts (later ones find it ended anyway).
                Op::Finish(id, end) => {
                    if ended.insert(id) {
                        ends.push((id, end));
                    } else {
                        warn!(session = %id, "audit finish for a session that already ended");
                    }
                }
            }
        }
        let queries = chunks(&connections).count()
            + chunks(&statement_rows).count()
            + chunks(&request_rows).count()
            + chunks(&ends).count();
        if queries == 0 {
            return Ok(());
        }
        let groups = Groups {
            connections,
            statements: statement_rows,
            requests: request_rows,
            ends,
        };
        if queries == 1 {
            return groups.write(&mut self.conn).await;
        }
        let mut tx = self.conn.begin().await?;
        groups.write(&mut tx).await?;
        tx.commit().await
    }

    async fn close(self) {
        if let Err(e) = self.conn.close().await {
            warn!(error = %e, "closing the audit writer connection");
        }
    }
}

type Query<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Rows per multi-row insert, largest first: a run of records is written in as few round trips
/// to SQLite's worker thread as these sizes allow, with only this many distinct SQL texts for
/// the prepared-statement cache.
const CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

/// `run` cut into pieces of the [`CHUNKS`] sizes, largest first.
fn chunks<T>(mut run: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if run.is_empty() {
            return None;
        }
        let n = CHUNKS.into_iter().find(|&c| c <= run.len()).unwrap_or(1);
        let (chunk, tail) = run.split_at(n);
        run = tail;
        Some(chunk)
    })
}

/// One multi-row SQL statement for each of the [`CHUNKS`] sizes, built once: `head`, then `n`
/// comma-separated copies of `row`, then `tail`.
struct RowsSql([String; CHUNKS.len()]);

impl RowsSql {
    fn new(head: &str, row: &str, tail: &str) -> Self {
        RowsSql(CHUNKS.map(|n| {
            let mut sql = String::with_capacity(head.len() + n * (row.len() + 2) + tail.len());
            sql.push_str(head);
            for i in 0..n {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(row);
            }
            sql.push_str(tail);
            sql
        }))
    }

    /// The statement for `n` rows, `n` one of the [`CHUNKS`] sizes (what [`chunks`] yields).
    fn get(&self, n: usize) -> &str {
        let i = CHUNKS
            .iter()
            .position(|&c| c == n)
            .expect("a chunk size from `chunks`");
        &self.0[i]
    }
}

fn bind_connection<'q>(
    q: Query<'q>,
    rec: &'q ConnectionRecord,
    end: Option<&'q ConnectionEnd>,
) -> Query<'q> {
    q.bind(rec.id.hyphenated().to_string())
        .bind(time::to_micros(rec.started_at))
        .bind(rec.workload.as_deref())
        .bind(rec.spiffe_id.as_deref())
        .bind(i64::from(rec.pid))
        .bind(i64::from(rec.uid))
        .bind(i64::from(rec.gid))
        .bind(rec.exe.as_deref())
        .bind(&rec.cgroup)
        .bind(to_i64(rec.cgroup_id))
        .bind(rec.systemd_unit.as_deref())
        .bind(rec.dst.to_string())
        .bind(rec.target.as_deref())
        .bind(&rec.protocol)
        .bind(&rec.decision)
        .bind(&rec.rule)
        .bind(to_i64(rec.policy_generation))
        .bind(end.map(|e| time::to_micros(e.ended_at)))
        .bind(end.map(|e| to_i64(e.bytes_up)))
        .bind(end.map(|e| to_i64(e.bytes_down)))
        .bind(end.map(|e| e.end_reason.as_str()))
}

impl SqliteReader {
    /// Sessions selected by `f`, newest first.
    pub(crate) async fn list(&self, f: &SessionFilter) -> Result<Vec<SessionRow>, StoreError> {
        let mut q =
            QueryBuilder::<Sqlite>::new(format!("SELECT {COLUMNS} FROM connections WHERE 1 = 1"));
        if let Some(workload) = &f.workload {
            q.push(" AND workload = ").push_bind(workload.clone());
        }
        if let Some(since) = f.since {
            q.push(" AND started_at >= ")
                .push_bind(time::to_micros(since));
        }
        if let Some(until) = f.until {
            q.push(" AND started_at < ")
                .push_bind(time::to_micros(until));
        }
        q.push(" ORDER BY started_at DESC, id DESC");
        if let Some(limit) = f.limit {
            q.push(" LIMIT ").push_bind(i64::from(limit));
        }
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(session_row).collect()
    }

    /// The first `limit` statements of session `id` (lowercase hyphenated uuid), in `seq` order.
    pub(crate) async fn statements(
        &self,
        id: &str,
        limit: u32,
    ) -> Result<Vec<StatementRow>, StoreError> {
        statements::select(&self.pool, id, limit).await
    }

    /// The first `limit` requests of session `id` (lowercase hyphenated uuid), in `seq` order.
    pub(crate) async fn requests(
        &self,
        id: &str,
        limit: u32,
    ) -> Result<Vec<RequestRow>, StoreError> {
        requests::select(&self.pool, id, limit).await
    }

    /// The session `id` names; [`StoreError::AmbiguousId`] if a prefix names several.
    pub(crate) async fn get(&self, id: &IdQuery) -> Result<Option<SessionRow>, StoreError> {
        let rows = match id {
            IdQuery::Exact(id) => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM connections WHERE id = ?1"))
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?
            }
            IdQuery::Prefix(prefix) => {
                // '~' sorts after every character of a hyphenated uuid: an index range scan.
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM connections WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 2"
                ))
                .bind(prefix)
                .bind(format!("{prefix}~"))
                .fetch_all(&self.pool)
                .await?
            }
        };
        match rows.as_slice() {
            [] => Ok(None),
            [row] => session_row(row).map(Some),
            [_, _, ..] => match id {
                IdQuery::Exact(id) | IdQuery::Prefix(id) => {
                    Err(StoreError::AmbiguousId(id.clone()))
                }
            },
        }
    }
}

fn session_row(row: &SqliteRow) -> Result<SessionRow, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |column: &str, value: i64| StoreError::BadRow {
        id: id.clone(),
        reason: format!("{column} = {value} is out of range"),
    };
    let u32_col = |column: &str| -> Result<u32, StoreError> {
        let v: i64 = row.try_get(column)?;
        u32::try_from(v).map_err(|_| bad(column, v))
    };
    let u64_col = |column: &str| -> Result<Option<u64>, StoreError> {
        let v: Option<i64> = row.try_get(column)?;
        v.map(|v| u64::try_from(v).map_err(|_| bad(column, v)))
            .transpose()
    };
    let started_at: i64 = row.try_get("started_at")?;
    let ended_at: Option<i64> = row.try_get("ended_at")?;
    Ok(SessionRow {
        workload: row.try_get("workload")?,
        spiffe_id: row.try_get("spiffe_id")?,
        pid: u32_col("pid")?,
        uid: u32_col("uid")?,
        gid: u32_col("gid")?,
        exe: row.try_get("exe")?,
        cgroup: row.try_get("cgroup")?,
        systemd_unit: row.try_get("systemd_unit")?,
        dst: row.try_get("dst")?,
        target: row.try_get("target")?,
        protocol: row.try_get("protocol")?,
        decision: row.try_get("decision")?,
        rule: row.try_get("rule")?,
        policy_generation: u64_col("policy_generation")?.unwrap_or_default(),
        bytes_up: u64_col("bytes_up")?,
        bytes_down: u64_col("bytes_down")?,
        started_at: time::format_micros(started_at),
        ended_at: ended_at.map(time::format_micros),
        duration_ms: ended_at.and_then(|end| time::duration_ms(started_at, end)),
        end_reason: row.try_get("end_reason")?,
        id,
    })
}

/// u64 counters are stored as SQLite INTEGER (i64), saturating.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
