//! SQL of the `statements` table (migration 0002).
use std::sync::LazyLock;

use sqlx::{Row as _, Sqlite, sqlite::SqliteRow};

use super::{Query, RowsSql, SqlitePool, to_i64};
use crate::store::{StatementRecord, StatementRow, StoreError, list, time};

/// Served by the primary key's index: a range scan in `seq` order.
const SELECT: &str = "SELECT seq, started_at, duration_us, text, classes, tables, decision, \
    rule, rows, error, masked FROM statements WHERE connection_id = ?1 ORDER BY seq LIMIT ?2";

const INSERT_HEAD: &str = "INSERT INTO statements (connection_id, seq, started_at, duration_us, \
    text, classes, tables, decision, rule, rows, error, masked) VALUES ";
const ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Multi-row inserts, one per chunk size.
static INSERT_MANY: LazyLock<RowsSql> = LazyLock::new(|| RowsSql::new(INSERT_HEAD, ROW, ""));

/// The insert of `recs` (a chunk from `chunks`) in one statement.
pub(super) fn insert_many<'q>(recs: &[&'q StatementRecord]) -> Query<'q> {
    recs.iter().fold(
        sqlx::query::<Sqlite>(INSERT_MANY.get(recs.len())),
        |q, rec| bind(q, rec),
    )
}

fn bind<'q>(q: Query<'q>, rec: &'q StatementRecord) -> Query<'q> {
    q.bind(rec.connection_id.hyphenated().to_string())
        .bind(i64::from(rec.seq))
        .bind(time::to_micros(rec.started_at))
        .bind(rec.duration.map(time::duration_micros))
        .bind(&rec.text)
        .bind(list::join(&rec.classes))
        .bind(list::join(&rec.tables))
        .bind(&rec.decision)
        .bind(&rec.rule)
        .bind(rec.rows.map(to_i64))
        .bind(rec.error.as_deref())
        .bind(rec.masked.as_ref().map(serde_json::Value::to_string))
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
