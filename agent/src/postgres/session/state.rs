//! State shared by the two pumps of a session: what the server will answer next, the shape of
//! prepared statements and portals (to mask rows by column), and statements awaiting their audit.
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Instant, SystemTime},
};

use tokio::sync::Notify;

use super::{catalog::Catalog, lineage::ExprPlan, undo::Undo};
use crate::{
    masking::{ColumnMask, MaskCounts, Masker},
    postgres::protocol::{FieldDescription, ObjectKind},
    postgres::sql::{NameEffects, Names},
    store::{SessionBudget, Slot},
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

#[cfg(test)]
impl StmtAudit {
    /// The record of `text` let through (a `select`, by rule `r`), for tests.
    pub fn allowed_in_test(seq: u32, text: &str) -> Self {
        StmtAudit {
            seq,
            started: Instant::now(),
            started_at: SystemTime::now(),
            text: text.into(),
            classes: vec!["select".into()],
            tables: Vec::new(),
            decision: "allow".into(),
            rule: "r".into(),
            masked: Default::default(),
        }
    }
}

/// The results of a simple Query's statements so far.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// A statement's result came (CommandComplete, EmptyQueryResponse or ErrorResponse).
    pub answered: bool,
    /// Rows summed over the statements that told them.
    pub rows: Option<u64>,
    /// The first error (the server skips the rest of the message after it).
    pub error: Option<String>,
}

impl Tally {
    /// One statement's result.
    pub fn add(&mut self, rows: Option<u64>, error: Option<&str>) {
        self.answered = true;
        if let Some(n) = rows {
            self.rows = Some(self.rows.unwrap_or(0).saturating_add(n));
        }
        if self.error.is_none() {
            self.error = error.map(str::to_owned);
        }
    }
}

impl Portal {
    /// Bytes it holds, roughly (for the session's budget).
    pub fn weight(&self) -> usize {
        let columns = self.columns.as_ref().map_or(0, |c| c.len() * COLUMN_WEIGHT);
        std::mem::size_of::<Self>() + self.statement.len() + self.formats.len() * 2 + columns
    }
}

/// What a prepared statement is, learned at Parse (policy) and Describe (columns).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Audit template for each execution.
    pub audit: Arc<StmtAudit>,
    /// How its computed result columns are masked.
    pub exprs: Option<Arc<ExprPlan>>,
    /// Row description from a statement Describe (formats unknown there).
    pub fields: Option<Vec<FieldDescription>>,
    /// It may start a COPY FROM STDIN ([`may_copy`]).
    pub may_copy: bool,
    /// Which Parse made it ([`State::generation`]): a Describe answered after the name was
    /// parsed again describes the older statement.
    pub generation: u64,
    /// The prepared statements and portals each execution makes or drops ([`State::forget`]).
    pub names: NameEffects,
    /// What its Parse decided on, to decide again when the policy changed before a Bind (`None`:
    /// nothing to decide, in tests).
    pub decided: Option<Arc<Decided>>,
}

/// A prepared statement's text and statements, as its Parse decided on them.
#[derive(Debug)]
pub struct Decided {
    /// The generation of the policy that decided.
    pub policy: u64,
    /// The Parse's query text.
    pub text: Arc<String>,
    /// Its statements, classified.
    pub statements: Arc<[crate::postgres::sql::Classified]>,
    /// The rule that denies it under that policy (decided again after a reload, and denied):
    /// each later Bind is refused at once, not decided once more.
    pub denial: Option<String>,
}

/// Bytes a described column costs, roughly: its description (a name up to 63 bytes), and its
/// part of a plan or of a portal's columns.
const COLUMN_WEIGHT: usize = 192;

impl Prepared {
    /// Bytes it holds, roughly (for the session's budget).
    pub fn weight(&self) -> usize {
        let text = self.decided.as_ref().map_or(0, |d| d.text.len());
        // By count only: the budget is weighed under the session's lock.
        let fields = self.fields.as_ref().map_or(0, |f| f.len() * COLUMN_WEIGHT);
        std::mem::size_of::<Self>() + self.audit.text.len() + text + fields
    }

    /// The columns its portals return, as its Describe told them: `None` when not described,
    /// or when it runs what a name holds (`FETCH`, `EXECUTE`): PostgreSQL describes such a
    /// statement once, but a portal bound to it later takes its rows' shape from what the name
    /// holds then, which only a Describe of that portal tells.
    pub fn row_fields(&self) -> Option<&[FieldDescription]> {
        if self.names.runs_a_name {
            return None;
        }
        self.fields.as_deref()
    }
}

/// Whether statements may start a COPY FROM STDIN: a `COPY … FROM` (STDIN or not), or a
/// statement that could not be classified.
pub fn may_copy(statements: &[crate::postgres::sql::Classified]) -> bool {
    use crate::postgres::sql::StatementClass;
    statements
        .iter()
        .any(|c| matches!(c.class, StatementClass::CopyFrom | StatementClass::Unknown))
}

/// What statements do to the session's prepared statements and portals, together.
pub fn name_effects(statements: &[crate::postgres::sql::Classified]) -> NameEffects {
    let mut e = NameEffects::default();
    for c in statements {
        e.merge(&c.names);
    }
    e
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
    /// Which Bind made it ([`State::generation`]): a Describe or Execute sent before the name
    /// was bound again is of the older portal.
    pub generation: u64,
    /// The generation of the prepared statement it was bound to (0: unknown).
    pub statement_generation: u64,
    /// That statement's audit template (`None`: tollgate does not know the statement, and
    /// refuses an Execute of the portal). Kept here, as the statement's name may be parsed
    /// again while the portal lives.
    pub audit: Option<Arc<StmtAudit>>,
    /// That statement may start a COPY FROM STDIN ([`may_copy`]).
    pub may_copy: bool,
    /// The prepared statements and portals that statement makes or drops.
    pub names: NameEffects,
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
        /// The copy window it opened ([`CopyWindow::id`]): it may start a COPY FROM STDIN.
        copy: Option<u32>,
        /// Its statements' results so far: its record is written at ReadyForQuery, with them
        /// all.
        tally: Tally,
        /// tollgate's own Query raising a denial ([`Expect::raising`]): an error answering it
        /// may be that denial, shown as it is (`diagnostics::is_own`).
        raising: bool,
    },
    /// ParseComplete (swallowed when tollgate injected the Parse).
    Parse {
        /// Injected by tollgate: not forwarded.
        swallow: bool,
        /// The generation of the prepared statement it makes (0: injected).
        generation: u64,
        /// What the name was, put back if the server does not answer it.
        undo: Option<Box<Undo>>,
    },
    /// BindComplete.
    Bind {
        /// Injected by tollgate: not forwarded.
        swallow: bool,
        /// The generation of the portal it makes (0: injected).
        generation: u64,
        /// The generation of the prepared statement it binds (0: unknown).
        statement: u64,
        /// What the name was, put back if the server does not answer it.
        undo: Option<Box<Undo>>,
    },
    /// ParameterDescription? then RowDescription or NoData.
    Describe {
        /// Statement or portal.
        kind: ObjectKind,
        /// Its name.
        name: String,
        /// The generation of what the name meant when the Describe was sent (0: nothing).
        generation: u64,
        /// A portal's plan for masking computed columns, as bound then.
        exprs: Option<Arc<ExprPlan>>,
    },
    /// Rows, then CommandComplete / EmptyQueryResponse / PortalSuspended.
    Execute {
        /// The generation of its portal (0: unknown portal).
        portal: u64,
        /// The generation of the prepared statement its portal was bound to (0: unknown).
        statement: u64,
        /// Columns of the portal (`None`: not known when it was sent; a Describe of the portal
        /// sent before it may still tell them, [`State::portal_described`]).
        columns: Option<Columns>,
        /// Audit, `None` for tollgate's own raising statement (already audited).
        audit: Option<StmtAudit>,
        /// The audit queue's slot held for the record.
        slot: Option<Slot>,
        /// The copy window it opened ([`CopyWindow::id`]): it may start a COPY FROM STDIN.
        copy: Option<u32>,
        /// tollgate's own raising statement ([`State::injected_error`]): an error answering it
        /// may be that denial, shown as it is (`diagnostics::is_own`).
        raising: bool,
    },
    /// CloseComplete.
    Close {
        /// What the name was, put back if the server does not answer it.
        undo: Option<Box<Undo>>,
    },
    /// ReadyForQuery.
    Sync,
}

impl Expect {
    /// The results owed for the client's simple Query of `stmts` (its one record, written in
    /// `slot`).
    pub fn query(stmts: VecDeque<StmtAudit>, slot: Option<Slot>) -> Self {
        Expect::Query {
            stmts,
            columns: None,
            exprs: None,
            slot,
            copy: None,
            tally: Tally::default(),
            raising: false,
        }
    }

    /// The result owed for tollgate's own simple Query raising a denial in place of the
    /// client's (its record already written): no statements, no slot.
    pub fn raising() -> Self {
        Expect::Query {
            stmts: VecDeque::new(),
            columns: None,
            exprs: None,
            slot: None,
            copy: None,
            tally: Tally::default(),
            raising: true,
        }
    }

    /// Whether this is tollgate's own raising statement (simple or extended).
    pub fn is_raising(&self) -> bool {
        matches!(
            self,
            Expect::Query { raising: true, .. } | Expect::Execute { raising: true, .. }
        )
    }

    /// The ParseComplete owed for the client's Parse making statement `generation`, which
    /// changed what `undo` tells.
    pub fn parse(generation: u64, undo: Option<Undo>) -> Self {
        Expect::Parse {
            swallow: false,
            generation,
            undo: undo.map(Box::new),
        }
    }

    /// The BindComplete owed for the client's Bind making portal `generation` of statement
    /// generation `statement`, which changed what `undo` tells.
    pub fn bind(generation: u64, statement: u64, undo: Option<Undo>) -> Self {
        Expect::Bind {
            swallow: false,
            generation,
            statement,
            undo: undo.map(Box::new),
        }
    }

    /// What the server owes, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Expect::Query { .. } => "the result of a Query",
            Expect::Parse { .. } => "ParseComplete",
            Expect::Bind { .. } => "BindComplete",
            Expect::Describe { .. } => "a description",
            Expect::Execute { .. } => "the result of an Execute",
            Expect::Close { .. } => "CloseComplete",
            Expect::Sync => "ReadyForQuery",
        }
    }

    /// Holds a slot for the record of a statement let through: the server must answer it
    /// (or skip it after an error), never pass over it.
    fn is_live(&self) -> bool {
        match self {
            Expect::Query {
                stmts, slot, tally, ..
            } => slot.is_some() && !stmts.is_empty() && !tally.answered,
            Expect::Execute { slot, .. } => slot.is_some(),
            _ => false,
        }
    }

    /// A Close of a named statement (1, 0) or portal (0, 1) that changed tollgate's view.
    pub fn closes(&self) -> Option<(usize, usize)> {
        match self {
            Expect::Close { undo: Some(u) } => match &**u {
                Undo::Statement { name, .. } if !name.is_empty() => Some((1, 0)),
                Undo::Portal { name, .. } if !name.is_empty() => Some((0, 1)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The copy window this entry opened.
    fn copy(&self) -> Option<u32> {
        match self {
            Expect::Query { copy, .. } | Expect::Execute { copy, .. } => *copy,
            _ => None,
        }
    }
}

/// A response that matches nothing owed: tollgate no longer knows which request the server
/// answers (which statement's columns mask the rows, which record gets the result), so the
/// session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desync {
    /// The server's message.
    pub response: &'static str,
    /// What was owed first; `None`: nothing.
    pub owed: Option<&'static str>,
}

impl std::fmt::Display for Desync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server sent {} while {} was owed",
            self.response,
            self.owed.unwrap_or("nothing")
        )
    }
}

/// What the server does with a statement that may start a COPY FROM STDIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyPhase {
    /// Not known yet: neither its CopyInResponse nor its end has come.
    Pending,
    /// The server copies in (its CopyInResponse came): it ignores the client's Syncs.
    Copying,
    /// The server is not copying for it: it ended without a copy, or its copy failed.
    Over,
}

/// The client's side of a statement that may start a COPY FROM STDIN (a `COPY … FROM`, or a
/// statement tollgate could not classify), from the Query or Execute that sends it to the
/// client's CopyDone or CopyFail (for a Query, to its ReadyForQuery: it may copy several
/// times).
///
/// While the server copies in, it ignores Sync; once a copy fails, it answers the next Sync it
/// reads. Where in the client's stream a copy fails (a bad row, a trigger, a cancel, a
/// timeout) cannot be known, so a Sync forwarded during a copy may or may not be answered. A
/// ReadyForQuery tollgate did not expect, or one it expected that never comes, would match
/// every later response with the wrong request. So no Sync is forwarded in a window unless the
/// server is known not to copy: a Flush goes in its place. Syncs held while the server has not
/// said whether it copies are sent (and owed) if it does not; once it copies, they are dropped,
/// as the server would ignore them (libpq and tokio-postgres send one right after the
/// Execute).
#[derive(Debug)]
pub struct CopyWindow {
    /// Its number, on the entry owed for its statement.
    pub id: u32,
    /// What the server does with it, as far as its responses tell.
    pub phase: CopyPhase,
    /// Syncs held while [`CopyPhase::Pending`].
    pub held: u32,
    /// Opened by a simple Query.
    pub query: bool,
    /// A Query's copies the client ended (CopyDone or CopyFail) before their CopyInResponse
    /// came: those CopyInResponses start a copy that is already over.
    pub ended_early: u32,
}

/// What the frontend does with a client message ([`State::client_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Handle it as usual.
    Forward,
    /// Send the `n` Syncs held first (each owed a ReadyForQuery), then handle it as usual.
    Release(u32),
    /// A Sync that is not forwarded: a Flush goes in its place.
    Hold,
    /// Wait until the server's responses settle the copy window, then ask again.
    Wait,
    /// The server would fail its copy on this message: end the session.
    Refuse,
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
    /// The client's open copy window.
    pub copy: Option<CopyWindow>,
    /// The number of the last copy window.
    pub copies: u32,
    /// The last generation given to a prepared statement or portal.
    pub generations: u64,
    /// Rung when the phase of the open copy window changes (the frontend may wait on it).
    pub copy_changed: Arc<Notify>,
    /// The current extended-protocol batch failed: tollgate made the server raise an error in
    /// it, or the server's own error came before the client sent the batch's Sync. The server
    /// skips every message up to that Sync, so nothing there waits for the audit store. Cleared
    /// at the Sync.
    pub skipping: bool,
    /// Rung when the server's error fails the batch ([`Self::skipping`] set by the backend): a
    /// statement of it already waiting for an audit slot stops waiting.
    pub batch_failed: Arc<Notify>,
    /// The newest portal generation whose Bind the server answered ([`Self::idle`]).
    pub bound: u64,
    /// Syncs forwarded and not answered yet ([`MAX_SYNCS_OWED`]).
    pub syncs: usize,
    /// Closes of named statements and of named portals owed ([`Expect::closes`]): the server
    /// may skip them, and what they closed comes back, so the session's limits count them.
    pub closing: (usize, usize),
    /// Rung when a ReadyForQuery brings [`Self::syncs`] under [`MAX_SYNCS_OWED`].
    pub answered: Arc<Notify>,
}

/// Batches (Syncs) a session may have forwarded and not had answered. A client may pipeline
/// without reading; past this many, its next Sync waits for the server's answers. Each error
/// takes back its batch's changes in time linear in what is owed (`super::undo`): the cap keeps
/// a pipeline of failing batches from costing the agent (which serves every session of the host
/// on few threads) time quadratic in its length.
pub const MAX_SYNCS_OWED: usize = 1024;

impl State {
    /// Notes that tollgate replaces a client message by Parse/Bind/Execute of a raising statement
    /// on the unnamed statement and portal ([`super::deny::extended`]): the responses owed (the
    /// ParseComplete and BindComplete swallowed, the error in place of the Execute), the server
    /// skipping to the Sync, and the client's unnamed statement and portal gone on the server
    /// (unless it skips the raising statement itself, in a batch already failed).
    pub fn injected_error(&mut self) {
        // Skipped in a batch already failed: the server keeps them, so does tollgate.
        let live = !self.skipping;
        let statement =
            live.then(|| Box::new(Undo::statement(String::new(), 0, self.prepared.remove(""))));
        let portal =
            live.then(|| Box::new(Undo::portal(String::new(), 0, self.portals.remove(""))));
        self.expect.push_back(Expect::Parse {
            swallow: true,
            generation: 0,
            undo: statement,
        });
        self.expect.push_back(Expect::Bind {
            swallow: true,
            generation: 0,
            statement: 0,
            undo: portal,
        });
        self.expect.push_back(Expect::Execute {
            portal: 0,
            statement: 0,
            columns: None,
            audit: None,
            slot: None,
            copy: None,
            raising: true,
        });
        self.skipping = true;
    }
}

/// A lock around [`State`]; never held across an await.
#[derive(Debug, Default)]
pub struct Shared {
    state: Mutex<State>,
    /// The audit slots the session may hold at once.
    pub budget: SessionBudget,
}

impl Shared {
    /// Locks the state.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }
}

impl State {
    /// Removes the entry owed first. A statement that opened a copy window has ended (its
    /// result, its error, or skipped after an error): the server is not copying for it.
    pub fn pop(&mut self) -> Option<Expect> {
        let e = self.expect.pop_front()?;
        if let Some((statements, portals)) = e.closes() {
            self.closing.0 = self.closing.0.saturating_sub(statements);
            self.closing.1 = self.closing.1.saturating_sub(portals);
        }
        if let Some(id) = e.copy() {
            self.copy_settled(id);
        }
        Some(e)
    }

    /// The server's error answers the client's Parse or Bind owed first: the statement never
    /// ran (an unknown column fails at Parse, a missing privilege when the portal starts, at
    /// Bind). Takes out the Execute of what that Parse or Bind made, if the same batch sent one
    /// (before its Sync), so that the attempt is recorded with the error, as a failing simple
    /// Query is. Only the first Execute of it: the server skips the rest of the batch.
    pub fn execute_of_failed(&mut self) -> Option<Expect> {
        let (statement, portal) = match self.expect.front()? {
            Expect::Parse {
                swallow: false,
                generation,
                ..
            } if *generation != 0 => (*generation, 0),
            Expect::Bind {
                swallow: false,
                generation,
                ..
            } if *generation != 0 => (0, *generation),
            _ => return None,
        };
        let at = self
            .expect
            .iter()
            .take_while(|e| !matches!(e, Expect::Sync))
            .position(|e| match e {
                Expect::Execute {
                    statement: s,
                    portal: p,
                    ..
                } => (statement != 0 && *s == statement) || (portal != 0 && *p == portal),
                _ => false,
            })?;
        let e = self.expect.remove(at)?;
        if let Some(id) = e.copy() {
            self.copy_settled(id);
        }
        Some(e)
    }

    /// Removes the entry owed first if `fits` it; otherwise the server answers something not
    /// owed (the entry stays, to be recorded when the session ends).
    pub fn take(
        &mut self,
        response: &'static str,
        fits: impl Fn(&Expect) -> bool,
    ) -> Result<Expect, Desync> {
        match self.expect.front() {
            Some(e) if fits(e) => Ok(self.pop().expect("an entry owed")),
            other => Err(Desync {
                response,
                owed: other.map(Expect::name),
            }),
        }
    }

    /// The entry owed first must be `fits` for `response`.
    pub fn expect_front(
        &self,
        response: &'static str,
        fits: impl Fn(&Expect) -> bool,
    ) -> Result<(), Desync> {
        match self.expect.front() {
            Some(e) if fits(e) => Ok(()),
            other => Err(Desync {
                response,
                owed: other.map(Expect::name),
            }),
        }
    }

    /// ReadyForQuery: the server has answered everything up to the client's Sync (or the simple
    /// Query it ends). What is still owed before that Sync was skipped after an error: the
    /// server drops messages up to the Sync, and an error handled while the client's batch was
    /// still arriving left the entries of the rest of the batch behind it. They go now, with
    /// the Sync; left, they would be matched with the responses to later messages (rows masked
    /// by another statement's columns, a real ParseComplete swallowed).
    ///
    /// A skipped entry never holds a slot (those pushed while [`Self::skipping`] get none, and
    /// the server's error takes the others). One that does was let through and not answered:
    /// the server answered a Sync tollgate does not know of, and passing over the statement
    /// would leave it unrecorded. That, and a ReadyForQuery with no Sync owed, is a
    /// [`Desync`]; nothing is removed then.
    pub fn ready_for_query(&mut self) -> Result<(), Desync> {
        let end = self
            .expect
            .iter()
            .position(|e| matches!(e, Expect::Sync | Expect::Query { .. }));
        let desync = |owed: Option<&Expect>| Desync {
            response: "ReadyForQuery",
            owed: owed.map(Expect::name),
        };
        let Some(end) = end else {
            return Err(desync(self.expect.front()));
        };
        if let Some(live) = self.expect.iter().take(end + 1).find(|e| e.is_live()) {
            return Err(desync(Some(live)));
        }
        if matches!(self.expect.get(end), Some(Expect::Sync)) {
            self.syncs = self.syncs.saturating_sub(1);
            if self.syncs + 1 == MAX_SYNCS_OWED {
                self.answered.notify_waiters();
            }
        }
        let mut undone = Vec::new();
        for _ in 0..=end {
            undone.extend(self.pop().as_mut().and_then(Expect::take_undo));
        }
        self.take_back(undone, false);
        Ok(())
    }

    /// The server's error fails the batch: it skips everything up to the client's Sync. What
    /// the client sent of it goes (with the slots held for records), and what its Parses,
    /// Binds and Closes changed is taken back ([`super::undo`]); `parse_failed`: the error
    /// answers the first of them, a Parse.
    pub fn skip_to_sync(&mut self, parse_failed: bool) {
        let mut undone = Vec::new();
        let mut first = true;
        let mut failed_first = false;
        while let Some(e) = self.expect.front() {
            if matches!(e, Expect::Sync) {
                break;
            }
            let undo = self.pop().as_mut().and_then(Expect::take_undo);
            failed_first |= first && parse_failed && undo.is_some();
            first = false;
            undone.extend(undo);
        }
        self.take_back(undone, failed_first);
    }

    /// ReadyForQuery outside a transaction block: the server has ended the transaction, and
    /// its portals with it. So does tollgate, for the portals whose Bind it answered (later ones,
    /// bound in a batch still on its way, live): a client binding named portals in autocommit
    /// does not grow tollgate's view without end.
    pub fn idle(&mut self) {
        let bound = self.bound;
        self.portals.retain(|_, p| p.generation > bound);
        // Nor is one of them put back if the server skips a later Bind or Close of its name.
        for u in self.expect.iter_mut().filter_map(Expect::undo_mut) {
            if let Undo::Portal { before, .. } = u
                && before.as_ref().is_some_and(|p| p.generation <= bound)
            {
                *before = None;
            }
        }
    }

    /// A statement about to be forwarded makes or drops prepared statements or portals by SQL
    /// (`PREPARE`, `DEALLOCATE`, `DECLARE`, `CLOSE`, `DISCARD ALL`, or anything not
    /// understood), which share their names with the protocol's: tollgate forgets those names,
    /// as what the server has under them is no longer what tollgate was told. A Bind of a
    /// forgotten statement or an Execute of a forgotten portal is then refused (fail closed).
    pub fn forget(&mut self, e: &NameEffects) {
        if e.is_none() {
            return;
        }
        // What a pending Parse, Bind or Close would put back if the server skipped it is not
        // to be put back either: the server's name is SQL's now (`super::undo`).
        for u in self.expect.iter_mut().filter_map(Expect::undo_mut) {
            match u {
                Undo::Statement { name, replaced, .. } if e.statements.holds(name) => {
                    *replaced = true
                }
                Undo::Portal { name, replaced, .. } if e.portals.holds(name) => *replaced = true,
                _ => {}
            }
        }
        match &e.statements {
            Names::None => {}
            Names::Some(names) => names.iter().for_each(|n| {
                self.prepared.remove(n);
            }),
            Names::All => self.prepared.clear(),
        }
        match &e.portals {
            Names::None => {}
            Names::Some(names) => names.iter().for_each(|n| {
                self.portals.remove(n);
            }),
            Names::All => self.portals.clear(),
        }
    }

    /// The client sends a Sync that is forwarded: a ReadyForQuery is owed for it, and it ends
    /// a failed batch.
    pub fn client_sync(&mut self) {
        self.skipping = false;
        self.syncs += 1;
        self.expect.push_back(Expect::Sync);
    }

    /// Opens a copy window for a Query (`query`) or Execute about to be forwarded; its number
    /// goes on the entry owed for it.
    pub fn open_copy(&mut self, query: bool) -> u32 {
        self.copies += 1;
        self.copy = Some(CopyWindow {
            id: self.copies,
            phase: CopyPhase::Pending,
            held: 0,
            query,
            ended_early: 0,
        });
        self.copies
    }

    /// What the frontend does with a client message of type `tag` ([`CopyWindow`]). Without
    /// an open window: [`Step::Forward`].
    pub fn client_step(&mut self, tag: u8) -> Step {
        let Some(w) = self.copy.as_mut() else {
            return Step::Forward;
        };
        match (w.phase, tag) {
            (CopyPhase::Over, _) => {
                let held = w.held;
                self.copy = None;
                if held > 0 {
                    Step::Release(held)
                } else {
                    Step::Forward
                }
            }
            (_, b'd' | b'H' | b'X') => Step::Forward,
            (CopyPhase::Pending, b'S') => {
                w.held += 1;
                Step::Hold
            }
            (CopyPhase::Copying, b'S') => Step::Hold,
            // CopyDone or CopyFail: the client's copy ends (an Execute's window with it). A
            // Query may start another.
            (CopyPhase::Copying, b'c' | b'f') => {
                if w.query {
                    w.phase = CopyPhase::Pending;
                } else {
                    self.copy = None;
                }
                Step::Forward
            }
            // Held Syncs precede it: wait to know whether they are sent. A Query's next copy
            // might be waiting for this very message: the session ends instead.
            (CopyPhase::Pending, b'c' | b'f') if w.held > 0 && w.query => Step::Refuse,
            (CopyPhase::Pending, b'c' | b'f') if w.held > 0 => Step::Wait,
            (CopyPhase::Pending, b'c' | b'f') => {
                if w.query {
                    w.ended_early += 1;
                } else {
                    self.copy = None;
                }
                Step::Forward
            }
            (CopyPhase::Pending, _) => Step::Wait,
            (CopyPhase::Copying, _) => Step::Refuse,
        }
    }

    /// The frontend waits for the client while Syncs are held: it must also wake when they
    /// are to be sent (also when the server's answer came just now).
    pub fn holds_syncs(&self) -> bool {
        self.copy
            .as_ref()
            .is_some_and(|w| w.held > 0 && w.phase != CopyPhase::Copying)
    }

    /// The held Syncs to send now that the server is known not to copy; the window closes.
    pub fn release(&mut self) -> u32 {
        match &self.copy {
            Some(w) if w.phase == CopyPhase::Over => {
                let held = w.held;
                self.copy = None;
                held
            }
            _ => 0,
        }
    }

    /// CopyInResponse: the server copies in for the statement owed first, which must be one
    /// that may ([`Expect::copy`]). The Syncs held for its window are dropped: the server would
    /// have ignored them.
    pub fn copy_in_response(&mut self) -> Result<(), Desync> {
        let Some(id) = self.expect.front().and_then(Expect::copy) else {
            return Err(Desync {
                response: "CopyInResponse",
                owed: self.expect.front().map(Expect::name),
            });
        };
        if let Some(w) = self.copy.as_mut()
            && w.id == id
        {
            if w.ended_early > 0 {
                // The client's end of this copy is sent: the server reads it before anything
                // held since, and is not copying then.
                w.ended_early -= 1;
            } else {
                w.phase = CopyPhase::Copying;
                w.held = 0;
                self.copy_changed.notify_one();
            }
        }
        Ok(())
    }

    /// The statement of window `id` ended, or its copy failed: the server is not copying.
    fn copy_settled(&mut self, id: u32) {
        if let Some(w) = self.copy.as_mut()
            && w.id == id
            && w.phase != CopyPhase::Over
        {
            w.phase = CopyPhase::Over;
            self.copy_changed.notify_one();
        }
    }

    /// An error in a simple Query that opened a copy window: the rest of its query string is
    /// not run, so no copy starts or goes on (its ReadyForQuery follows).
    pub fn query_failed(&mut self) {
        if let Some(id) = self.expect.front().and_then(Expect::copy) {
            self.copy_settled(id);
        }
    }

    /// A number for a new prepared statement or portal. Names are reused (the unnamed ones at
    /// every Parse and Bind), and a response comes after the client may have reused the name:
    /// what it describes is known by this number, never by the name.
    pub fn generation(&mut self) -> u64 {
        self.generations += 1;
        self.generations
    }

    /// The RowDescription of portal `generation` came: the Executes of it already sent without
    /// columns take them (libpq's `PQexecParams` sends Parse, Bind, Describe, Execute and Sync
    /// at once; left without columns, every value of the result would be hidden on a target
    /// with column rules).
    pub fn portal_described(&mut self, generation: u64, columns: &Columns) {
        if generation == 0 {
            return;
        }
        for e in &mut self.expect {
            if let Expect::Execute {
                portal,
                columns: c @ None,
                ..
            } = e
                && *portal == generation
            {
                *c = Some(columns.clone());
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
                Expect::Parse { swallow: true, .. } => "parse (injected)",
                Expect::Parse { .. } => "parse",
                Expect::Bind { .. } => "bind",
                Expect::Describe { .. } => "describe",
                Expect::Execute { .. } => "execute",
                Expect::Close { .. } => "close",
                Expect::Sync => "sync",
            })
            .collect()
    }

    /// The Execute of a statement the server refused at its Parse or Bind is found by the
    /// generations it was sent with; never one of another statement, nor past the Sync, nor for
    /// tollgate's own injected refusal.
    #[test]
    fn an_execute_is_found_for_its_failed_parse_or_bind() {
        let parse = |g| Expect::parse(g, None);
        let bind = |g| Expect::bind(g, 0, None);
        let exec = execute_of;
        let found = |entries: Vec<Expect>| {
            let mut st = State::default();
            st.expect.extend(entries);
            let e = st.execute_of_failed();
            let left = st.expect.len();
            (
                e.map(|e| match e {
                    Expect::Execute {
                        portal, statement, ..
                    } => (portal, statement),
                    _ => panic!("not an Execute"),
                }),
                left,
            )
        };
        // P(1) B(2) E: found by its statement, then by its portal.
        let batch = || vec![parse(1), bind(2), exec(2, 1), Expect::Sync];
        assert_eq!(found(batch()), (Some((2, 1)), 3));
        assert_eq!(
            found(batch().into_iter().skip(1).collect()),
            (Some((2, 1)), 2)
        );
        // An older statement bound after the failed Parse is not it.
        assert_eq!(
            found(vec![parse(5), bind(6), exec(6, 3), Expect::Sync]),
            (None, 4)
        );
        // Not past the Sync.
        assert_eq!(
            found(vec![bind(2), Expect::Sync, exec(2, 1), Expect::Sync]),
            (None, 4)
        );
        // Not for an injected refusal (generation 0, swallowed).
        let mut st = State::default();
        st.injected_error();
        st.expect.push_back(exec(0, 0));
        assert!(st.execute_of_failed().is_none());
        // Only the first Execute of the portal.
        assert_eq!(
            found(vec![bind(2), exec(2, 1), exec(2, 1), Expect::Sync]),
            (Some((2, 1)), 3)
        );
    }

    /// An Execute of portal generation `portal`, bound to statement generation `statement`,
    /// without a record or slot.
    fn execute_of(portal: u64, statement: u64) -> Expect {
        Expect::Execute {
            portal,
            statement,
            columns: None,
            audit: None,
            slot: None,
            copy: None,
            raising: false,
        }
    }

    fn execute(slot: Option<Slot>) -> Expect {
        Expect::Execute {
            portal: 0,
            statement: 0,
            columns: None,
            audit: None,
            slot,
            copy: None,
            raising: false,
        }
    }

    fn query(slot: Option<Slot>) -> Expect {
        Expect::query(Default::default(), slot)
    }

    /// A batch whose error the server sent while the rest of the batch was still arriving: what
    /// was owed for the rest (including tollgate's own injected refusal) goes at the
    /// ReadyForQuery, and the next batch starts in step.
    #[test]
    fn ready_for_query_drops_what_the_server_skipped() {
        let mut st = State::default();
        st.expect.push_back(Expect::bind(0, 0, None));
        st.expect.push_back(execute(None));
        st.injected_error();
        st.client_sync();
        st.expect.push_back(Expect::parse(0, None));
        st.client_sync();
        st.ready_for_query().expect("in step");
        assert_eq!(owed(&st), ["parse", "sync"]);
        st.pop();
        st.ready_for_query().expect("in step");
        assert!(st.expect.is_empty());

        // A simple Query is answered by its own ReadyForQuery.
        st.expect.push_back(query(None));
        st.expect.push_back(Expect::parse(0, None));
        st.ready_for_query().expect("in step");
        assert_eq!(owed(&st), ["parse"]);
    }

    /// A ReadyForQuery that would pass over a statement let through (it holds a slot for its
    /// record, and no error came for it), or that comes with no Sync owed, answers a Sync
    /// tollgate does not know of: a desync, and nothing is removed (the session ends, and
    /// what is owed is recorded then).
    #[test]
    fn ready_for_query_never_passes_over_a_statement_let_through() {
        let mut st = State::default();
        st.expect.push_back(Expect::parse(0, None));
        st.expect.push_back(Expect::bind(0, 0, None));
        st.expect.push_back(execute(Some(Slot::detached())));
        st.client_sync();
        let err = st.ready_for_query().expect_err("a desync");
        assert_eq!(
            err,
            Desync {
                response: "ReadyForQuery",
                owed: Some("the result of an Execute")
            }
        );
        assert_eq!(owed(&st), ["parse", "bind", "execute", "sync"]);

        // A simple Query answered before its result.
        let mut st = State::default();
        let mut q = query(Some(Slot::detached()));
        if let Expect::Query { stmts, .. } = &mut q {
            stmts.push_back(StmtAudit::allowed_in_test(1, "select 1"));
        }
        st.expect.push_back(q);
        assert!(st.ready_for_query().is_err());
        assert_eq!(owed(&st), ["query"]);

        // Nothing owed, or no Sync among it.
        let mut st = State::default();
        assert_eq!(
            st.ready_for_query(),
            Err(Desync {
                response: "ReadyForQuery",
                owed: None
            })
        );
        st.expect.push_back(Expect::parse(0, None));
        assert!(st.ready_for_query().is_err());
        assert_eq!(owed(&st), ["parse"]);
    }

    /// Responses are taken only by what they answer.
    #[test]
    fn a_response_takes_only_what_it_answers() {
        let mut st = State::default();
        st.expect.push_back(Expect::bind(0, 0, None));
        let err = st
            .take("CloseComplete", |e| matches!(e, Expect::Close { .. }))
            .expect_err("not owed");
        assert_eq!(
            err.to_string(),
            "the server sent CloseComplete while BindComplete was owed"
        );
        assert_eq!(owed(&st), ["bind"]);
        assert!(
            st.take("BindComplete", |e| matches!(e, Expect::Bind { .. }))
                .is_ok()
        );
        assert!(st.take("BindComplete", |_| true).is_err());
    }

    /// Syncs owed are counted from the client's Sync to its ReadyForQuery; the one that brings
    /// the count under the cap rings the frontend.
    #[test]
    fn syncs_owed_are_counted() {
        let mut st = State::default();
        for _ in 0..MAX_SYNCS_OWED {
            st.client_sync();
        }
        st.expect.push_back(query(None));
        assert_eq!(st.syncs, MAX_SYNCS_OWED);
        let rung = st.answered.clone();
        let notified = rung.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        st.ready_for_query().expect("in step");
        assert_eq!(st.syncs, MAX_SYNCS_OWED - 1);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(notified.as_mut().poll(&mut cx).is_ready(), "rung");
        for _ in 1..MAX_SYNCS_OWED {
            st.ready_for_query().expect("in step");
        }
        // A simple Query's ReadyForQuery answers no Sync.
        st.ready_for_query().expect("in step");
        assert_eq!((st.syncs, st.expect.len()), (0, 0));
    }

    /// Outside a transaction block the server has dropped every portal: so does tollgate, for
    /// those whose Bind it answered, not for one bound in a batch still on its way.
    #[test]
    fn portals_end_with_their_transaction() {
        let mut st = State::default();
        for name in ["", "a", "b"] {
            let generation = st.generation();
            let portal = Portal {
                statement: String::new(),
                formats: Vec::new(),
                exprs: None,
                columns: None,
                generation,
                statement_generation: 0,
                audit: None,
                may_copy: false,
                names: Default::default(),
            };
            st.portals.insert(name.into(), portal);
        }
        st.bound = 2;
        st.idle();
        let mut left: Vec<&str> = st.portals.keys().map(String::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["b"]);
    }

    /// A portal's description reaches the Executes of that portal (by its generation) sent
    /// before it came, not those of a portal bound later under the same name.
    #[test]
    fn a_portal_description_reaches_its_executes_sent_before_it() {
        let of = |portal| execute_of(portal, 0);
        let mut st = State::default();
        st.expect.push_back(of(1));
        st.expect.push_back(of(2));
        st.expect.push_back(Expect::bind(0, 0, None));
        st.expect.push_back(of(1));
        let cols: Columns = Arc::new(vec![Column {
            mask: None,
            binary: false,
            text_like: true,
        }]);
        st.portal_described(1, &cols);
        st.portal_described(0, &cols);
        let known: Vec<bool> = st
            .expect
            .iter()
            .filter_map(|e| match e {
                Expect::Execute { columns, .. } => Some(columns.is_some()),
                _ => None,
            })
            .collect();
        assert_eq!(known, [true, false, true]);
    }
}
