//! Which table columns the target's column rules cover, learned once per session from the
//! server's catalog, so that a result column is masked by what it *is* (RowDescription's table OID
//! and column number) and not only by the name it is given (`select card_number as c`).
use std::collections::{HashMap, HashSet};

use bytes::BytesMut;

use crate::{
    masking::ColumnRule,
    postgres::protocol::{BackendMessage, Query},
};

use super::stream::{BoxStream, ReadError, read_backend, send};

/// Most catalog rows read (a bound on memory for huge schemas).
const MAX_ROWS: usize = 100_000;

/// Table columns whose names match a column rule, by (table OID, column number).
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    columns: HashMap<(u32, i16), (String, String)>,
    tables: HashSet<String>,
}

impl Catalog {
    /// (column name, table name) of a table column.
    pub fn column(&self, table_oid: u32, attnum: i16) -> Option<(&str, &str)> {
        self.columns
            .get(&(table_oid, attnum))
            .map(|(c, t)| (c.as_str(), t.as_str()))
    }

    /// Whether `table` (a name as the classifier normalizes it, optionally schema-qualified)
    /// has a masked column. Only its last part counts (any schema's table of that name
    /// matches), and without case: the catalog's names are kept lower-case, and a quoted name
    /// keeps its case (`"Customers"`); a lower-case table of the same name also matches (fail
    /// closed).
    pub fn table_has_masked_columns(&self, table: &str) -> bool {
        self.tables
            .contains(&crate::postgres::sql::last_part(table).to_lowercase())
    }
}

/// Reads the catalog on the freshly logged-in server connection (before the client's first
/// message). The session cannot go on without it (an alias would hide a masked column): the
/// caller refuses it on an error. The query runs in a transaction of its own with the timeouts
/// a client's startup parameters may have set turned off (`statement_timeout=1` would otherwise
/// make it fail at will; `transaction_timeout` too, on PostgreSQL 17 and later, where it
/// exists) and `search_path` at `pg_catalog` alone (a `~~*` of the client's own schema searched
/// first would be its `ILIKE`), and leaves the session as it found it.
pub async fn load(
    server: &mut BoxStream,
    buf: &mut BytesMut,
    rules: &[ColumnRule],
) -> Result<Catalog, ReadError> {
    let mut out = BytesMut::new();
    Query::new(catalog_sql(rules)).encode(&mut out);
    send(server, &out).await?;
    let mut cat = Catalog::default();
    let mut error = None;
    loop {
        let frame = read_backend(server, buf).await?;
        match frame.decode()? {
            BackendMessage::DataRow(row) if cat.columns.len() < MAX_ROWS => {
                let text = |i: usize| {
                    row.values
                        .get(i)
                        .and_then(|v| v.as_ref())
                        .and_then(|b| std::str::from_utf8(b).ok())
                        .map(str::to_owned)
                };
                if let (Some(oid), Some(num), Some(col), Some(table)) =
                    (text(0), text(1), text(2), text(3))
                    && let (Ok(oid), Ok(num)) = (oid.parse::<u32>(), num.parse::<i16>())
                {
                    cat.tables.insert(table.to_lowercase());
                    cat.columns.insert((oid, num), (col, table));
                }
            }
            BackendMessage::ErrorResponse(e) => {
                error = Some(e.message().unwrap_or("catalog query failed").to_owned());
            }
            BackendMessage::ReadyForQuery(_) => break,
            _ => {}
        }
    }
    match error {
        Some(e) => Err(ReadError::Violation(format!("catalog: {e}"))),
        None => Ok(cat),
    }
}

/// The catalog query for `rules`' column name globs (case-insensitive, like the masker).
pub fn catalog_sql(rules: &[ColumnRule]) -> String {
    let patterns: Vec<String> = rules
        .iter()
        .map(|r| format!("a.attname ILIKE '{}'", glob_to_like(&r.name)))
        .collect();
    let filter = if patterns.is_empty() {
        "false".to_owned()
    } else {
        patterns.join(" OR ")
    };
    format!(
        "BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0; \
         SET LOCAL search_path = pg_catalog; \
         SELECT pg_catalog.set_config(name, '0', true) FROM pg_catalog.pg_settings \
         WHERE name = 'transaction_timeout'; \
         SELECT a.attrelid::int8, a.attnum, a.attname, c.relname \
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r','p','v','m','f') \
         AND ({filter}) LIMIT {MAX_ROWS}; COMMIT"
    )
}

/// A glob (`*`, `?`, `[...]`) as a LIKE pattern with `\\` escapes, quoted for a standard string.
fn glob_to_like(glob: &str) -> String {
    let mut out = String::new();
    let mut in_class = false;
    for ch in glob.chars() {
        match ch {
            '[' if !in_class => {
                in_class = true;
                out.push('_');
            }
            ']' if in_class => in_class = false,
            _ if in_class => {}
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            '\'' => out.push_str("''"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_like_patterns() {
        let cases = [
            ("card_number", "card\\_number"),
            ("*card*", "%card%"),
            ("e?ail", "e_ail"),
            ("x[0-9]y", "x_y"),
            ("it's", "it''s"),
            ("100%", "100\\%"),
        ];
        for (glob, like) in cases {
            assert_eq!(glob_to_like(glob), like, "{glob}");
        }
    }

    /// A catalog that knows one table with masked columns.
    fn with_table(name: &str) -> Catalog {
        let mut c = Catalog::default();
        c.tables.insert(name.into());
        c
    }

    #[test]
    fn table_lookup_ignores_schema() {
        let c = with_table("customers");
        assert!(c.table_has_masked_columns("public.customers"));
        assert!(c.table_has_masked_columns("customers"));
        assert!(!c.table_has_masked_columns("orders"));
    }

    /// A quoted name keeps its case in the classifier's output (`FROM "Customers" c`); the
    /// catalog holds it lower-case. Found in review: the whole-row `c` went unmasked.
    #[test]
    fn table_lookup_ignores_case() {
        let c = with_table("customers");
        assert!(c.table_has_masked_columns("Customers"));
        assert!(c.table_has_masked_columns("public.CUSTOMERS"));
    }

    /// A part holding a `.` stays quoted in the classifier's output (`"my.cards"`); splitting at
    /// every dot missed it.
    #[test]
    fn table_lookup_reads_quoted_parts() {
        let c = with_table("my.cards");
        assert!(c.table_has_masked_columns("\"my.cards\""));
        assert!(c.table_has_masked_columns("public.\"My.Cards\""));
        assert!(!c.table_has_masked_columns("cards"));
    }
}
