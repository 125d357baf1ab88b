//! SQL of the `requests` table (migration 0003).
use std::sync::LazyLock;

use sqlx::{Row as _, Sqlite, sqlite::SqliteRow};

use super::{Query, RowsSql, SqlitePool, to_i64};
use crate::store::{RequestRecord, RequestRow, StoreError, list, time};

const INSERT_HEAD: &str = "INSERT INTO requests (connection_id, seq, started_at, duration_us, \
    method, host, path, query, status, bytes_up, bytes_down, decision, rule, masked, error, body) \
    VALUES ";
const ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Served by the primary key's index: a range scan in `seq` order.
const SELECT: &str = "SELECT seq, started_at, duration_us, method, host, path, query, status, \
    bytes_up, bytes_down, decision, rule, masked, error, body FROM requests \
    WHERE connection_id = ?1 ORDER BY seq LIMIT ?2";

/// Multi-row inserts, one per chunk size.
static INSERT_MANY: LazyLock<RowsSql> = LazyLock::new(|| RowsSql::new(INSERT_HEAD, ROW, ""));

/// The insert of `recs` (a chunk from `chunks`) in one statement.
pub(super) fn insert_many<'q>(recs: &[&'q RequestRecord]) -> Query<'q> {
    recs.iter().fold(
        sqlx::query::<Sqlite>(INSERT_MANY.get(recs.len())),
        |q, rec| bind(q, rec),
    )
}

fn bind<'q>(q: Query<'q>, rec: &'q RequestRecord) -> Query<'q> {
    q.bind(rec.connection_id.hyphenated().to_string())
        .bind(i64::from(rec.seq))
        .bind(time::to_micros(rec.started_at))
        .bind(rec.duration.map(time::duration_micros))
        .bind(&rec.method)
        .bind(&rec.host)
        .bind(&rec.path)
        .bind(list::join(&rec.query))
        .bind(rec.status.map(i64::from))
        .bind(to_i64(rec.bytes_up))
        .bind(to_i64(rec.bytes_down))
        .bind(&rec.decision)
        .bind(&rec.rule)
        .bind(rec.masked.as_ref().map(serde_json::Value::to_string))
        .bind(rec.error.as_deref())
        .bind(rec.body.as_deref())
}

/// The first `limit` requests of connection `id` (lowercase hyphenated), in `seq` order.
pub(super) async fn select(
    pool: &SqlitePool,
    id: &str,
    limit: u32,
) -> Result<Vec<RequestRow>, StoreError> {
    let rows = sqlx::query(SELECT)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(|row| request_row(id, row)).collect()
}

fn request_row(id: &str, row: &SqliteRow) -> Result<RequestRow, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let bad = |reason: String| StoreError::BadRow {
        id: format!("{id}/{seq}"),
        reason,
    };
    let count = |column: &str| -> Result<u64, StoreError> {
        let v: i64 = row.try_get(column)?;
        u64::try_from(v).map_err(|_| bad(format!("{column} = {v} is out of range")))
    };
    let started_at: i64 = row.try_get("started_at")?;
    let duration_us: Option<i64> = row.try_get("duration_us")?;
    let status: Option<i64> = row.try_get("status")?;
    let masked: Option<String> = row.try_get("masked")?;
    let query: String = row.try_get("query")?;
    Ok(RequestRow {
        seq: u32::try_from(seq).map_err(|_| bad(format!("seq = {seq} is out of range")))?,
        started_at: time::format_micros(started_at),
        duration_ms: duration_us.map(|us| us as f64 / 1000.0),
        method: row.try_get("method")?,
        host: row.try_get("host")?,
        path: row.try_get("path")?,
        query: list::split(&query),
        status: status
            .map(|s| u16::try_from(s).map_err(|_| bad(format!("status = {s} is out of range"))))
            .transpose()?,
        bytes_up: count("bytes_up")?,
        bytes_down: count("bytes_down")?,
        decision: row.try_get("decision")?,
        rule: row.try_get("rule")?,
        masked: masked
            .map(|m| serde_json::from_str(&m).map_err(|e| bad(format!("masked: {e}"))))
            .transpose()?,
        error: row.try_get("error")?,
        body: row.try_get("body")?,
    })
}
