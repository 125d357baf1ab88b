//! State shared by the two pumps of a session: what the server will answer next, the shape of
//! prepared statements and portals (to mask rows by column), and statements awaiting their audit.
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Instant, SystemTime},
};

use super::{catalog::Catalog, lineage::ExprPlan};
use crate::{
    masking::{ColumnMask, MaskCounts, Masker},
    postgres::protocol::{FieldDescription, ObjectKind},
    store::Slot,
};

/// One result column as masking sees it.
#[derive(Debug, Clone)]
pub struct Column {
    /// Whole-value rule for this column, if any.
    pub mask: Option<ColumnMask>,
    /// Binary format.
    pub binary: bool,
    /// A text type whose binary form is its UTF-8 text (text, varchar, char, name, json,
    /// unknown): maskable in either format.
    pub text_like: bool,
}

/// The columns of a result set; `None` where the session could not learn them.
pub type Columns = Arc<Vec<Column>>;

/// A result column not read straight from a table column: an expression (table OID 0) or a
/// whole-row value (the table's OID with column number 0).
fn is_computed(f: &FieldDescription) -> bool {
    f.table_oid == 0 || f.column_attr <= 0
}

/// Type OIDs whose binary representation is the text itself.
const TEXT_LIKE_OIDS: [u32; 6] = [25, 1043, 1042, 19, 114, 705];

/// Builds the masking view of a row description with the formats the client asked for. A
/// column is masked by what it is (table OID and column number, through the catalog, so an alias
/// does not hide it) or by the name it is given, whichever finds a rule.
pub fn columns(
    masker: &Masker,
    catalog: &Catalog,
    fields: &[FieldDescription],
    formats: Option<&[i16]>,
    exprs: Option<&ExprPlan>,
) -> Columns {
    let n = fields.len();
    // Computed columns are masked by what the SQL computes them from.
    let computed = match exprs {
        Some(plan) if fields.iter().any(is_computed) => {
            super::lineage::masks(plan, masker, catalog, n)
        }
        _ => vec![None; n],
    };
    Arc::new(
        fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let by_source = (!is_computed(f))
                    .then(|| catalog.column(f.table_oid, f.column_attr))
                    .flatten()
                    .and_then(|(col, table)| masker.column_style(Some(table), col));
                let by_name = masker.column_style(None, &f.name);
                let computed = is_computed(f)
                    .then(|| computed.get(i).cloned().flatten())
                    .flatten();
                Column {
                    mask: by_source.or(by_name).cloned().or(computed),
                    binary: match formats {
                        None => f.format == 1,
                        Some([]) => false,
                        Some([one]) => *one == 1,
                        Some(all) => all.get(i).copied() == Some(1),
                    },
                    text_like: TEXT_LIKE_OIDS.contains(&f.type_oid),
                }
            })
            .collect(),
    )
}

/// A statement on its way through the server, recorded when it completes.
#[derive(Debug, Clone)]
pub struct StmtAudit {
    /// Order in the session.
    pub seq: u32,
    /// When the client sent it.
    pub started: Instant,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// Text for the audit (literals redacted per policy).
    pub text: String,
    /// Classes of its statements.
    pub classes: Vec<String>,
    /// Tables it touches.
    pub tables: Vec<String>,
    /// Decision label.
    pub decision: String,
    /// Rule.
    pub rule: String,
    /// Values masked in its results.
    pub masked: MaskCounts,
}

/// What a prepared statement is, learned at Parse (policy) and Describe (columns).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Audit template for each execution.
    pub audit: StmtAudit,
    /// How its computed result columns are masked.
    pub exprs: Option<Arc<ExprPlan>>,
    /// Row description from a statement Describe (formats unknown there).
    pub fields: Option<Vec<FieldDescription>>,
}

/// A bound portal.
#[derive(Debug, Clone)]
pub struct Portal {
    /// Its statement.
    pub statement: String,
    /// Result formats from Bind.
    pub formats: Vec<i16>,
    /// How computed result columns are masked (from the statement).
    pub exprs: Option<Arc<ExprPlan>>,
    /// Columns, once known (portal Describe, or the statement's description).
    pub columns: Option<Columns>,
}

/// A response the server owes the client, in order.
#[derive(Debug)]
pub enum Expect {
    /// A simple Query: one result (CommandComplete, EmptyQueryResponse or ErrorResponse) per
    /// statement, then ReadyForQuery.
    Query {
        /// Statements awaiting their result, in order.
        stmts: VecDeque<StmtAudit>,
        /// Columns of the current result set.
        columns: Option<Columns>,
        /// How computed result columns are masked.
        exprs: Option<Arc<ExprPlan>>,
        /// The audit queue's slot held for the record.
        slot: Option<Slot>,
    },
    /// ParseComplete (swallowed when tollgate injected the Parse).
    Parse {
        /// Injected by tollgate: not forwarded.
        swallow: bool,
    },
    /// BindComplete.
    Bind {
        /// Injected by tollgate: not forwarded.
        swallow: bool,
    },
    /// ParameterDescription? then RowDescription or NoData.
    Describe {
        /// Statement or portal.
        kind: ObjectKind,
        /// Its name.
        name: String,
    },
    /// Rows, then CommandComplete / EmptyQueryResponse / PortalSuspended.
    Execute {
        /// Columns of the portal.
        columns: Option<Columns>,
        /// Audit, `None` for tollgate's own raising statement (already audited).
        audit: Option<StmtAudit>,
        /// The audit queue's slot held for the record.
        slot: Option<Slot>,
    },
    /// CloseComplete.
    Close,
    /// ReadyForQuery.
    Sync,
}

/// The shared state.
#[derive(Debug, Default)]
pub struct State {
    /// Responses owed, oldest first.
    pub expect: VecDeque<Expect>,
    /// Prepared statements by name.
    pub prepared: HashMap<String, Prepared>,
    /// Portals by name.
    pub portals: HashMap<String, Portal>,
    /// Next statement sequence number.
    pub next_seq: u32,
    /// In a COPY TO STDOUT stream.
    pub copy_out: bool,
    /// tollgate made the server raise an error in the current extended-protocol batch: the
    /// server skips every message up to the client's Sync, so nothing there waits for the audit
    /// store. Cleared at the Sync.
    pub skipping: bool,
}

impl State {
    /// Notes that tollgate replaces a client message by Parse/Bind/Execute of a raising statement
    /// on the unnamed statement and portal ([`super::deny::extended`]): the responses owed (the
    /// ParseComplete and BindComplete swallowed, the error in place of the Execute), the server
    /// skipping to the Sync, and the client's unnamed statement and portal gone on the server.
    pub fn injected_error(&mut self) {
        self.expect.push_back(Expect::Parse { swallow: true });
        self.expect.push_back(Expect::Bind { swallow: true });
        self.expect.push_back(Expect::Execute {
            columns: None,
            audit: None,
            slot: None,
        });
        self.skipping = true;
        self.prepared.remove("");
        self.portals.remove("");
    }
}

/// A lock around [`State`]; never held across an await.
#[derive(Debug, Default)]
pub struct Shared(Mutex<State>);

impl Shared {
    /// Locks the state.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.0)
    }
}

impl State {
    /// ReadyForQuery: the server has answered everything up to the client's Sync (or the simple
    /// Query it ends). What is still owed before that Sync was skipped after an error: the
    /// server drops messages up to the Sync, and an error handled while the client's batch was
    /// still arriving left the entries of the rest of the batch behind it. They go now, with
    /// the Sync (and the slots held for their records); left, they would be matched with the
    /// responses to later messages (rows masked by another statement's columns, a real
    /// ParseComplete swallowed).
    pub fn ready_for_query(&mut self) {
        while let Some(e) = self.expect.pop_front() {
            if matches!(e, Expect::Sync | Expect::Query { .. }) {
                break;
            }
        }
    }

    /// The next sequence number.
    pub fn seq(&mut self) -> u32 {
        self.next_seq += 1;
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tags of what is owed, in order.
    fn owed(st: &State) -> Vec<&'static str> {
        st.expect
            .iter()
            .map(|e| match e {
                Expect::Query { .. } => "query",
                Expect::Parse { swallow: true } => "parse (injected)",
                Expect::Parse { .. } => "parse",
                Expect::Bind { .. } => "bind",
                Expect::Describe { .. } => "describe",
                Expect::Execute { .. } => "execute",
                Expect::Close => "close",
                Expect::Sync => "sync",
            })
            .collect()
    }

    /// A batch whose error the server sent while the rest of the batch was still arriving: what
    /// was owed for the rest (including tollgate's own injected refusal) goes at the
    /// ReadyForQuery, and the next batch starts in step.
    #[test]
    fn ready_for_query_drops_what_the_server_skipped() {
        let mut st = State::default();
        st.expect.push_back(Expect::Bind { swallow: false });
        st.expect.push_back(Expect::Execute {
            columns: None,
            audit: None,
            slot: Some(crate::store::Slot::detached()),
        });
        st.injected_error();
        st.expect.push_back(Expect::Sync);
        st.expect.push_back(Expect::Parse { swallow: false });
        st.expect.push_back(Expect::Sync);
        st.ready_for_query();
        assert_eq!(owed(&st), ["parse", "sync"]);
        st.expect.pop_front();
        st.ready_for_query();
        assert!(st.expect.is_empty());

        // A simple Query is answered by its own ReadyForQuery.
        st.expect.push_back(Expect::Query {
            stmts: Default::default(),
            columns: None,
            exprs: None,
            slot: None,
        });
        st.expect.push_back(Expect::Parse { swallow: false });
        st.ready_for_query();
        assert_eq!(owed(&st), ["parse"]);
    }
}
