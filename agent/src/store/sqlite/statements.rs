//! SQL of the `statements` table (migration 0002).
use sqlx::{Row as _, sqlite::SqliteRow};

use super::{SqlitePool, to_i64, write::id_text};
use crate::store::{StatementRecord, StatementRow, StoreError, list, time};

/// Served by the primary key's index: a range scan in `seq` order.
const SELECT: &str = "SELECT seq, started_at, duration_us, text, classes, tables, decision, \
    rule, rows, error, masked FROM statements WHERE connection_id = ?1 ORDER BY seq LIMIT ?2";

/// Prepared once per batch by the writer (`write.rs`).
pub(super) const INSERT: &str = "INSERT INTO statements (connection_id, seq, started_at, duration_us, \
    text, classes, tables, decision, rule, rows, error, masked) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// Inserts `rec` with [`INSERT`], prepared on the writer's connection.
pub(super) fn insert(
    insert: &mut rusqlite::Statement<'_>,
    rec: &StatementRecord,
) -> Result<(), rusqlite::Error> {
    let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
    insert.execute(rusqlite::params![
        id_text(&rec.connection_id, &mut buf),
        rec.seq,
        time::to_micros(rec.started_at),
        rec.duration.map(time::duration_micros),
        rec.text,
        list::join(&rec.classes),
        list::join(&rec.tables),
        rec.decision,
        rec.rule,
        rec.rows.map(to_i64),
        rec.error,
        rec.masked.as_ref().map(serde_json::Value::to_string),
    ])?;
    Ok(())
}

/// The first `limit` statements of connection `id` (lowercase hyphenated), in `seq` order.
pub(super) async fn select(
    pool: &SqlitePool,
    id: &str,
    limit: u32,
) -> Result<Vec<StatementRow>, StoreError> {
    let rows = sqlx::query(SELECT)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(|row| statement_row(id, row)).collect()
}

fn statement_row(id: &str, row: &SqliteRow) -> Result<StatementRow, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let bad = |reason: String| StoreError::BadRow {
        id: format!("{id}/{seq}"),
        reason,
    };
    let started_at: i64 = row.try_get("started_at")?;
    let duration_us: Option<i64> = row.try_get("duration_us")?;
    let rows: Option<i64> = row.try_get("rows")?;
    let masked: Option<String> = row.try_get("masked")?;
    let classes: String = row.try_get("classes")?;
    let tables: String = row.try_get("tables")?;
    Ok(StatementRow {
        seq: u32::try_from(seq).map_err(|_| bad(format!("seq = {seq} is out of range")))?,
        started_at: time::format_micros(started_at),
        duration_ms: duration_us.map(|us| us as f64 / 1000.0),
        text: row.try_get("text")?,
        classes: list::split(&classes),
        tables: list::split(&tables),
        decision: row.try_get("decision")?,
        rule: row.try_get("rule")?,
        rows: rows
            .map(|n| u64::try_from(n).map_err(|_| bad(format!("rows = {n} is out of range"))))
            .transpose()?,
        error: row.try_get("error")?,
        masked: masked
            .map(|m| serde_json::from_str(&m).map_err(|e| bad(format!("masked: {e}"))))
            .transpose()?,
    })
}
