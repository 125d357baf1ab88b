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
    Sync {
        /// Sent after an Execute, with only Syncs, Flushes and CopyData in between: if that
        /// Execute started a COPY FROM STDIN, the server ignores this Sync
        /// ([`State::copy_in_started`]).
        after_execute: bool,
    },
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
    /// The client's messages since its last Execute were only Syncs, Flushes and CopyData: were
    /// that Execute a COPY FROM STDIN, the server would still be copying, and ignoring those
    /// Syncs (tokio-postgres, for one, sends a Sync right after the Execute, and another after
    /// CopyDone).
    pub after_execute: bool,
    /// The server copies in for the client's last Execute (its CopyInResponse came) and the
    /// client has not ended the copy: the Syncs it sends meanwhile are ignored by the server
    /// and owe nothing.
    pub copy_in: bool,
    /// The current extended-protocol batch failed: tollgate made the server raise an error in
    /// it, or the server's own error came before the client sent the batch's Sync. The server
    /// skips every message up to that Sync, so nothing there waits for the audit store. Cleared
    /// at the Sync.
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
            if matches!(e, Expect::Sync { .. } | Expect::Query { .. }) {
                break;
            }
        }
    }

    /// The client sends a Sync: a ReadyForQuery is owed for it, unless the server is copying in
    /// (it ignores the Sync then).
    pub fn client_sync(&mut self, after_execute: bool) {
        if self.copy_in && after_execute {
            return;
        }
        self.skipping = false;
        self.expect.push_back(Expect::Sync { after_execute });
    }

    /// The client's Execute is forwarded: see [`Self::after_execute`].
    pub fn executed(&mut self) {
        self.after_execute = true;
    }

    /// The client sent something other than a Sync, Flush or CopyData after its last Execute:
    /// CopyDone and CopyFail end a copy, anything else makes the server fail it. The Syncs it
    /// sends from now on are answered.
    pub fn copy_over(&mut self) {
        self.after_execute = false;
        self.copy_in = false;
    }

    /// CopyInResponse: the server started a COPY FROM STDIN. For an Execute (owed first), it
    /// ignores the client's Syncs until CopyDone or CopyFail. Those already owed go: they are
    /// the Syncs tagged `after_execute` right behind that Execute (any other entry, or an
    /// untagged Sync, was sent after the copy's end). If nothing was sent after them and the
    /// client has not ended the copy, the Syncs it sends until it does owe nothing.
    pub fn copy_in_started(&mut self) {
        if !matches!(self.expect.front(), Some(Expect::Execute { .. })) {
            // A simple Query's COPY: its client sends no Sync.
            return;
        }
        while matches!(
            self.expect.get(1),
            Some(Expect::Sync {
                after_execute: true
            })
        ) {
            self.expect.remove(1);
        }
        self.copy_in = self.expect.len() == 1 && self.after_execute;
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
                Expect::Sync {
                    after_execute: true,
                } => "sync (after execute)",
                Expect::Sync { .. } => "sync",
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
        st.expect.push_back(Expect::Sync {
            after_execute: true,
        });
        st.expect.push_back(Expect::Parse { swallow: false });
        st.expect.push_back(Expect::Sync {
            after_execute: false,
        });
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

    /// Plays `steps` on a state: the client's messages as the frontend pump forwards them
    /// (`>X`) and the server's responses as the backend pump matches them (`<X`), in the order
    /// the two pumps take the lock. Every ReadyForQuery must find a Sync owed first (nothing
    /// left behind), and nothing may be owed at the end.
    fn play(steps: &str) {
        let mut st = State::default();
        // The frontend's mirror of `after_execute`.
        let mut after_execute = false;
        for step in steps.split_whitespace() {
            let (side, tag) = step.split_at(1);
            let tag = tag.as_bytes()[0];
            if side == ">" {
                if after_execute && !matches!(tag, b'S' | b'H' | b'd') {
                    after_execute = false;
                    st.copy_over();
                }
                match tag {
                    b'P' => st.expect.push_back(Expect::Parse { swallow: false }),
                    b'B' => st.expect.push_back(Expect::Bind { swallow: false }),
                    b'E' => {
                        st.expect.push_back(Expect::Execute {
                            columns: None,
                            audit: None,
                            slot: None,
                        });
                        st.executed();
                        after_execute = true;
                    }
                    b'S' => st.client_sync(after_execute),
                    _ => {} // CopyData, CopyDone, CopyFail, Flush: nothing owed.
                }
                continue;
            }
            match tag {
                b'1' => assert!(
                    matches!(st.expect.pop_front(), Some(Expect::Parse { .. })),
                    "{steps}: at {step}"
                ),
                b'2' => assert!(
                    matches!(st.expect.pop_front(), Some(Expect::Bind { .. })),
                    "{steps}: at {step}"
                ),
                b'C' => assert!(
                    matches!(st.expect.pop_front(), Some(Expect::Execute { .. })),
                    "{steps}: at {step}"
                ),
                b'G' => st.copy_in_started(),
                // An error for the Execute owed first: the server skips to the next Sync.
                b'E' => {
                    st.copy_in = false;
                    st.expect.pop_front();
                    while !matches!(st.expect.front(), Some(Expect::Sync { .. }) | None) {
                        st.expect.pop_front();
                    }
                }
                b'Z' => {
                    assert!(
                        matches!(st.expect.front(), Some(Expect::Sync { .. })),
                        "{steps}: at {step}, owed: {:?}",
                        owed(&st)
                    );
                    st.ready_for_query();
                }
                _ => unreachable!("{step}"),
            }
        }
        assert!(st.expect.is_empty(), "{steps}: owed {:?}", owed(&st));
        assert!(!st.copy_in, "{steps}");
    }

    /// COPY FROM STDIN through the extended protocol: the server ignores the Syncs the client
    /// sends between the Execute and CopyDone or CopyFail, so one ReadyForQuery is owed for
    /// them all with the Sync after the copy, however the two pumps interleave. The next batch
    /// is answered in step.
    #[test]
    fn a_copy_in_owes_one_ready_for_query() {
        let next = ">P >B >E >S <1 <2 <C <Z";
        for steps in [
            // tokio-postgres: Bind, Execute, Sync, then the data once CopyInResponse came.
            ">B >E >S <2 <G >d >d >c >S <C <Z",
            // The CopyInResponse handled before the Sync after the Execute was forwarded.
            ">B >E <2 <G >S >d >c >S <C <Z",
            // A client that does not wait for CopyInResponse: all of it before the response.
            ">B >E >S >d >c >S <2 <G <C <Z",
            // ... up to CopyDone, and the last Sync after the response.
            ">B >E >S >d >c <2 <G >S <C <Z",
            // ... the next Execute too, before the response.
            ">B >E >S >d >c >B >E >S <2 <G <C <2 <C <Z",
            // CopyFail: the server fails the copy and answers the Sync after it.
            ">B >E >S <2 <G >d >f >S <E <Z",
            // A bad row: the copy fails while the client still sends data; the Sync after its
            // CopyDone is answered.
            ">B >E >S <2 <G >d <E >d >c >S <Z",
            // A COPY that never starts (the server fails the Execute): both Syncs are answered.
            ">B >E >S >d >c >S <2 <E <Z <Z",
            // Not a COPY at all.
            ">B >E >S <2 <C <Z",
        ] {
            play(&format!("{steps} {next}"));
        }
    }
}
