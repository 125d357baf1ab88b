//! The statement classes and their consequence order.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a statement does, as far as policy is concerned.
///
/// A statement has exactly one class: the most consequential effect found anywhere in it
/// (see [`StatementClass::severity`] for the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementClass {
    /// `SELECT`, `VALUES`, `FETCH`, `DECLARE ... CURSOR FOR <select>`; includes `FOR UPDATE`.
    Select,
    /// `INSERT` (without `ON CONFLICT DO UPDATE`).
    Insert,
    /// `UPDATE ... WHERE`, and `INSERT ... ON CONFLICT DO UPDATE` (it may rewrite rows).
    Update,
    /// `UPDATE` without a `WHERE` clause: every row.
    UpdateNoWhere,
    /// `DELETE ... WHERE`.
    Delete,
    /// `DELETE` without a `WHERE` clause: every row.
    DeleteNoWhere,
    /// `MERGE`.
    Merge,
    /// Schema changes: `CREATE`/`ALTER`/`DROP`/`COMMENT ON`, `CREATE TABLE AS`, `SELECT INTO`.
    Ddl,
    /// Privileges and roles: `GRANT`, `REVOKE`, `CREATE`/`ALTER`/`DROP ROLE|USER`,
    /// `SET ROLE`, `SET SESSION AUTHORIZATION` (and their `RESET`).
    Dcl,
    /// `TRUNCATE`.
    Truncate,
    /// `COPY ... TO` (a read).
    CopyTo,
    /// `COPY ... FROM` (a write, like an insert).
    CopyFrom,
    /// `BEGIN`/`START TRANSACTION`, `COMMIT`/`END`, `ROLLBACK`/`ABORT`, `SAVEPOINT`, `RELEASE`.
    Transaction,
    /// `SET`, `RESET`, `SHOW` of run-time parameters.
    Set,
    /// Statements that touch no row: plain `EXPLAIN`, `VACUUM`, `ANALYZE`, `LISTEN`, `UNLISTEN`,
    /// `NOTIFY`, `DEALLOCATE`, `DISCARD`, `CLOSE`, `LOCK`.
    Utility,
    /// Not understood, or its effect cannot be known from the text (`DO`, `CALL`, `EXECUTE`,
    /// `COPY ... PROGRAM`, unparsable input). Fail closed: it outranks every other class.
    Unknown,
}

impl StatementClass {
    /// Every class, lowest severity first.
    pub const ALL: [StatementClass; 16] = [
        StatementClass::Utility,
        StatementClass::Transaction,
        StatementClass::Set,
        StatementClass::Select,
        StatementClass::CopyTo,
        StatementClass::Insert,
        StatementClass::CopyFrom,
        StatementClass::Merge,
        StatementClass::Update,
        StatementClass::Delete,
        StatementClass::UpdateNoWhere,
        StatementClass::DeleteNoWhere,
        StatementClass::Truncate,
        StatementClass::Ddl,
        StatementClass::Dcl,
        StatementClass::Unknown,
    ];

    /// Rank in the consequence order, higher is more consequential:
    /// Unknown > Dcl > Ddl > Truncate > DeleteNoWhere > UpdateNoWhere > Delete > Update > Merge >
    /// CopyFrom > Insert > CopyTo > Select > Set > Transaction > Utility.
    pub const fn severity(self) -> u8 {
        match self {
            StatementClass::Utility => 0,
            StatementClass::Transaction => 1,
            StatementClass::Set => 2,
            StatementClass::Select => 3,
            StatementClass::CopyTo => 4,
            StatementClass::Insert => 5,
            StatementClass::CopyFrom => 6,
            StatementClass::Merge => 7,
            StatementClass::Update => 8,
            StatementClass::Delete => 9,
            StatementClass::UpdateNoWhere => 10,
            StatementClass::DeleteNoWhere => 11,
            StatementClass::Truncate => 12,
            StatementClass::Ddl => 13,
            StatementClass::Dcl => 14,
            StatementClass::Unknown => 15,
        }
    }

    /// The more consequential of the two (`self` on a tie).
    pub const fn max(self, other: StatementClass) -> StatementClass {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// The snake_case name, as serialized.
    pub const fn as_str(self) -> &'static str {
        match self {
            StatementClass::Select => "select",
            StatementClass::Insert => "insert",
            StatementClass::Update => "update",
            StatementClass::UpdateNoWhere => "update_no_where",
            StatementClass::Delete => "delete",
            StatementClass::DeleteNoWhere => "delete_no_where",
            StatementClass::Merge => "merge",
            StatementClass::Ddl => "ddl",
            StatementClass::Dcl => "dcl",
            StatementClass::Truncate => "truncate",
            StatementClass::CopyTo => "copy_to",
            StatementClass::CopyFrom => "copy_from",
            StatementClass::Transaction => "transaction",
            StatementClass::Set => "set",
            StatementClass::Utility => "utility",
            StatementClass::Unknown => "unknown",
        }
    }
}

impl fmt::Display for StatementClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::StatementClass;

    #[test]
    fn severity_is_a_strict_total_order_matching_all() {
        for pair in StatementClass::ALL.windows(2) {
            assert!(pair[0].severity() < pair[1].severity(), "{pair:?}");
        }
    }

    #[test]
    fn max_picks_the_more_consequential() {
        use StatementClass::*;
        let cases = [
            (Select, Delete, Delete),
            (DeleteNoWhere, Delete, DeleteNoWhere),
            (Ddl, Dcl, Dcl),
            (Unknown, Dcl, Unknown),
            (Utility, Select, Select),
            (Insert, CopyTo, Insert),
            (Set, Transaction, Set),
            (Truncate, UpdateNoWhere, Truncate),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.max(b), want, "{a} max {b}");
            assert_eq!(b.max(a), want, "{b} max {a}");
        }
    }

    #[test]
    fn serde_name_matches_as_str() {
        for class in StatementClass::ALL {
            let json = serde_json::to_string(&class).expect("serialize");
            assert_eq!(json, format!("\"{}\"", class.as_str()));
            let back: StatementClass = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, class);
        }
    }
}
