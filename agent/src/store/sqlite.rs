//! The SQLite backend: every SQL statement of the store lives here (and in its submodules).
mod fold;
mod requests;
mod statements;
mod write;

use std::{path::Path, time::Duration};

use sqlx::{
    ConnectOptions as _, Connection as _, QueryBuilder, Row as _, Sqlite, SqlitePool,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
};
use tracing::{info, warn};
pub(crate) use write::{SqliteWriter, is_constraint};

use super::{
    RequestRow, SessionFilter, SessionRow, StatementRow, StoreError, backend::Op, id::IdQuery, time,
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

/// A pool of query-only connections.
#[derive(Debug, Clone)]
pub(crate) struct SqliteReader {
    pool: SqlitePool,
}

/// Opens the database at `path` (made by [`create_file`]) and migrates it, on a connection of
/// its own; then, on the writer's connection, writes `left` (what a previous agent left in its
/// spool) and closes the rows it left open. Returns the writer's connection and the reader pool.
pub(crate) async fn open(
    path: &Path,
    left: Vec<Op>,
) -> Result<(SqliteWriter, SqliteReader), StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(BUSY_TIMEOUT)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true);
    let open_err = |e| StoreError::Open(path.to_owned(), e);

    // This connection switches to WAL (a persistent setting that needs an exclusive lock), so
    // that the writer and the readers find it set.
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
    conn.close().await.map_err(open_err)?;
    // Opened after the migrations: its `temp_store = MEMORY` would keep a migration's table
    // copy in memory.
    let owned = path.to_owned();
    let (writer, recovered) = tokio::task::spawn_blocking(move || {
        let mut writer =
            SqliteWriter::open(&owned).map_err(|e| StoreError::OpenWriter(owned.clone(), e))?;
        let recovered = writer
            .recover(&left)
            .map_err(|e| StoreError::Recover(owned, e))?;
        Ok::<_, StoreError>((writer, recovered))
    })
    .await
    .map_err(|e| StoreError::Writer(format!("opening the writer's connection: {e}")))??;
    if recovered.replayed > 0 || recovered.skipped > 0 {
        warn!(
            path = %path.display(),
            records = recovered.replayed,
            refused = recovered.skipped,
            "wrote the audit records a previous agent left in its spool"
        );
    }
    if recovered.closed > 0 {
        warn!(path = %path.display(), rows = recovered.closed, "closed audit rows left open by a previous agent");
    }

    let pool = SqlitePoolOptions::new()
        .max_connections(READERS)
        .connect_with(options.pragma("query_only", "ON"))
        .await
        .map_err(open_err)?;
    info!(path = %path.display(), "audit store open");
    Ok((writer, SqliteReader { pool }))
}

/// Creates the parent directory (0750) if missing, and the database file with mode 0600
/// (tightened to 0600 if it exists). SQLite gives its `-wal` and `-shm` files the same mode.
pub(crate) async fn create_file(path: &Path) -> Result<(), StoreError> {
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
