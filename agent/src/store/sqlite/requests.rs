//! SQL of the `requests` table (migrations 0003 and 0004).
use sqlx::{Row as _, sqlite::SqliteRow};

use super::{SqlitePool, to_i64, write::id_text};
use crate::store::{RequestRecord, RequestRow, StoreError, list, time};

/// Prepared once per batch by the writer (`write.rs`).
pub(super) const INSERT: &str = "INSERT INTO requests (connection_id, seq, started_at, duration_us, \
    method, host, path, query, status, bytes_up, bytes_down, decision, rule, masked, error, body, \
    headers) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

/// Served by the primary key's index: a range scan in `seq` order.
const SELECT: &str = "SELECT seq, started_at, duration_us, method, host, path, query, status, \
    bytes_up, bytes_down, decision, rule, masked, error, body, headers FROM requests \
    WHERE connection_id = ?1 ORDER BY seq LIMIT ?2";

/// Inserts `rec` with [`INSERT`], prepared on the writer's connection.
pub(super) fn insert(
    insert: &mut rusqlite::Statement<'_>,
    rec: &RequestRecord,
) -> Result<(), rusqlite::Error> {
    let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
    insert.execute(rusqlite::params![
        id_text(&rec.connection_id, &mut buf),
        rec.seq,
        time::to_micros(rec.started_at),
        rec.duration.map(time::duration_micros),
        rec.method,
        rec.host,
        rec.path,
        list::join(&rec.query),
        rec.status,
        to_i64(rec.bytes_up),
        to_i64(rec.bytes_down),
        rec.decision,
        rec.rule,
        rec.masked.as_ref().map(serde_json::Value::to_string),
        rec.error,
        rec.body,
        rec.headers.as_ref().map(|h| headers_json(h)),
    ])?;
    Ok(())
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
    let headers: Option<String> = row.try_get("headers")?;
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
        headers: headers
            .map(|h| serde_json::from_str(&h).map_err(|e| bad(format!("headers: {e}"))))
            .transpose()?,
    })
}

/// `[[name, value], ...]`.
fn headers_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".to_owned())
}
