//! How a denial reaches the client.
//!
//! A denied statement is not answered by tollgate alone: the upstream is asked to raise the
//! error itself (`DO … RAISE EXCEPTION USING ERRCODE = '42501'`). The client then sees exactly
//! what PostgreSQL does after an error, including inside a transaction block: the transaction is
//! aborted on the server too, so a later `COMMIT` cannot commit the work around the denied
//! statement, and `ReadyForQuery` carries the server's real transaction status.
use bytes::BytesMut;

use crate::postgres::protocol::{Bind, ErrorResponse, Execute, Parse, Query};

/// SQLSTATE of a policy denial (insufficient_privilege).
pub const SQLSTATE_DENIED: &str = "42501";
/// SQLSTATE of a feature tollgate refuses (feature_not_supported).
pub const SQLSTATE_REFUSED: &str = "0A000";

/// The server-side statement that raises `message` with `sqlstate`.
pub fn raise_sql(sqlstate: &str, message: &str) -> String {
    let lit = |s: &str| s.replace('\'', "''").replace('\\', "\\\\");
    format!(
        "DO $tollgate$ BEGIN RAISE EXCEPTION USING ERRCODE = '{}', MESSAGE = E'{}'; END $tollgate$",
        lit(sqlstate),
        lit(message).replace("$tollgate$", "$ tollgate $"),
    )
}

/// Every message tollgate raises starts with this.
pub const MESSAGE_PREFIX: &str = "tollgate: ";

/// Message text of a statement denial.
pub fn denial_message(rule: &str, detail: &str) -> String {
    if detail.is_empty() {
        format!("{MESSAGE_PREFIX}statement denied by rule \"{rule}\"")
    } else {
        format!("{MESSAGE_PREFIX}statement denied by rule \"{rule}\" ({detail})")
    }
}

/// Simple protocol: a Query the upstream answers with the error and ReadyForQuery.
pub fn simple(sqlstate: &str, message: &str, out: &mut BytesMut) {
    Query::new(raise_sql(sqlstate, message)).encode(out);
}

/// Extended protocol: Parse/Bind/Execute of the raising statement on the unnamed statement and
/// portal. The upstream answers ParseComplete, BindComplete (both swallowed by the session) and
/// the error, then skips the client's messages up to its Sync, as PostgreSQL does after an error.
pub fn extended(sqlstate: &str, message: &str, out: &mut BytesMut) {
    Parse {
        name: String::new(),
        query: raise_sql(sqlstate, message),
        param_types: Vec::new(),
    }
    .encode(out);
    Bind {
        portal: String::new(),
        statement: String::new(),
        param_formats: Vec::new(),
        params: Vec::new(),
        result_formats: Vec::new(),
    }
    .encode(out);
    Execute {
        portal: String::new(),
        max_rows: 0,
    }
    .encode(out);
}

/// A FATAL error sent by tollgate itself, before or instead of a session.
pub fn fatal(sqlstate: &str, message: &str, out: &mut BytesMut) {
    ErrorResponse::new("FATAL", sqlstate, message).encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_sql_quotes_the_message() {
        let sql = raise_sql("42501", "it's denied \\ $tollgate$ end");
        assert!(
            sql.contains("E'it''s denied \\\\ $ tollgate $ end'"),
            "{sql}"
        );
        assert!(sql.starts_with("DO $tollgate$ BEGIN RAISE EXCEPTION USING ERRCODE = '42501'"));
        assert_eq!(sql.matches("$tollgate$").count(), 2);
    }

    #[test]
    fn denial_message_names_the_rule() {
        assert_eq!(
            denial_message("no-drop", ""),
            "tollgate: statement denied by rule \"no-drop\""
        );
    }
}
