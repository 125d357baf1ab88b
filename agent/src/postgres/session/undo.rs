//! Taking back what a client's Parse, Bind or Close changed in tollgate's view of prepared
//! statements and portals when the server did not do it.
//!
//! The frontend applies each Parse, Bind and Close as it forwards it: the messages after it in
//! the same write (a Bind of the statement just parsed, an Execute of the portal just bound)
//! are decided and recorded by what it made. The server does it only if it answers it
//! (ParseComplete, BindComplete, CloseComplete). After an error it skips everything up to the
//! client's Sync, and a client that pipelines may have sent those messages, and more batches
//! after them, before the error comes back. So each such message carries what the name was
//! before it ([`Undo`]); the answer drops it, the error puts it back.
//!
//! Putting it back is not enough where a later batch, already sent, used what the skipped
//! message made: a Bind of a statement whose Parse the server skipped binds the statement the
//! server still has under that name. Those later entries are pointed at what the server runs:
//! its record and its masking plan (rows hidden until a description of the portal comes, as
//! for any Execute sent without one).
use std::{collections::HashMap, sync::Arc};

use super::{
    super::sql::NameEffects,
    lineage::ExprPlan,
    state::{Expect, Portal, Prepared, State, StmtAudit},
};
use crate::postgres::protocol::ObjectKind;

/// What a name was before a client's Parse, Bind or Close changed it in tollgate's view.
#[derive(Debug)]
pub enum Undo {
    /// A prepared statement.
    Statement {
        /// Its name.
        name: String,
        /// The generation the message made (0: a Close, or tollgate's own Parse).
        made: u64,
        /// What the name was.
        before: Option<Prepared>,
        /// SQL forwarded since replaced or dropped the name ([`State::forget`]): `before` is
        /// what Binds sent before that SQL bind, not what to put back.
        replaced: bool,
    },
    /// A portal.
    Portal {
        /// Its name.
        name: String,
        /// The generation the message made (0: a Close, or tollgate's own Bind).
        made: u64,
        /// What the name was.
        before: Option<Portal>,
        /// As for a statement.
        replaced: bool,
    },
}

impl Undo {
    /// What a message making (or, `made` 0, dropping) statement `name` changed.
    pub fn statement(name: String, made: u64, before: Option<Prepared>) -> Self {
        Undo::Statement {
            name,
            made,
            before,
            replaced: false,
        }
    }

    /// What a message making (or, `made` 0, dropping) portal `name` changed.
    pub fn portal(name: String, made: u64, before: Option<Portal>) -> Self {
        Undo::Portal {
            name,
            made,
            before,
            replaced: false,
        }
    }
}

impl Expect {
    /// What this entry's message changed, if the server has not done it yet.
    pub fn undo_mut(&mut self) -> Option<&mut Undo> {
        match self {
            Expect::Parse { undo, .. } | Expect::Bind { undo, .. } | Expect::Close { undo } => {
                undo.as_deref_mut()
            }
            _ => None,
        }
    }

    /// Takes what this entry's message changed.
    pub fn take_undo(&mut self) -> Option<Undo> {
        match self {
            Expect::Parse { undo, .. } | Expect::Bind { undo, .. } | Expect::Close { undo } => {
                undo.take().map(|u| *u)
            }
            _ => None,
        }
    }
}

/// What a name was before the skipped messages, and whether SQL replaced it since.
type Was<V> = (Option<V>, bool);

/// What a later Bind binds once the statement it was sent for is taken back.
struct Bound {
    generation: u64,
    audit: Arc<StmtAudit>,
    exprs: Option<Arc<ExprPlan>>,
    may_copy: bool,
    names: NameEffects,
}

impl State {
    /// The server did not do what `undone` changed, oldest first: the entries it skipped
    /// after an error, and (first) the one the error answers. `parse_failed`: the error
    /// answers the first of them, a Parse (of the unnamed statement, it leaves none:
    /// PostgreSQL drops the unnamed statement before parsing, tollgate's own Parse too).
    ///
    /// Each name goes back to what it was before the oldest of them. A name changed again by
    /// a later batch already sent keeps that change, which now replaces what the name was
    /// before. The work is linear in the entries owed (a client may pipeline many).
    pub fn take_back(&mut self, mut undone: Vec<Undo>, parse_failed: bool) {
        if undone.is_empty() {
            return;
        }
        if parse_failed
            && let Some(Undo::Statement { name, before, .. }) = undone.first_mut()
            && name.is_empty()
        {
            *before = None;
        }
        let count = undone.len();
        // Newest first: the oldest's `before` is written last.
        let mut statements: HashMap<String, Was<Prepared>> = HashMap::new();
        let mut portals: HashMap<String, Was<Portal>> = HashMap::new();
        let mut made_statements: HashMap<u64, String> = HashMap::new();
        let mut made_portals: HashMap<u64, String> = HashMap::new();
        for u in undone.into_iter().rev() {
            match u {
                Undo::Statement {
                    name,
                    made,
                    before,
                    replaced,
                } => {
                    if made != 0 {
                        made_statements.insert(made, name.clone());
                    }
                    statements.insert(name, (before, replaced));
                }
                Undo::Portal {
                    name,
                    made,
                    before,
                    replaced,
                } => {
                    if made != 0 {
                        made_portals.insert(made, name.clone());
                    }
                    portals.insert(name, (before, replaced));
                }
            }
        }
        let statement_now = |made: u64| {
            made_statements
                .get(&made)
                .map(|n| statements.get(n).and_then(|(was, _)| was.as_ref()))
        };
        let portal_now = |made: u64| {
            made_portals
                .get(&made)
                .map(|n| portals.get(n).and_then(|(was, _)| was.as_ref()))
        };
        let (rebound, unknown, runs) = self.repoint(statement_now, portal_now);
        if !rebound.is_empty() || !unknown.is_empty() {
            for p in self.portals_mut() {
                if let Some(b) = rebound.get(&p.generation) {
                    p.statement_generation = b.generation;
                    p.audit = Some(b.audit.clone());
                    raise(&mut p.exprs, &b.exprs);
                    p.may_copy = b.may_copy;
                    p.names.clone_from(&b.names);
                    p.columns = None;
                } else if unknown.contains(&p.generation) {
                    // Its Executes are refused from now on: what it runs is not known.
                    p.statement_generation = 0;
                    p.audit = None;
                    p.exprs = unknown_plan();
                    p.columns = None;
                }
            }
        }
        self.put_back(statements, portals);
        if !runs.is_none() {
            // An Execute already sent now runs SQL that makes or drops names (a DECLARE, say):
            // what the entries sent after it run under those names is not known. The rows of
            // every entry still owed are hidden until described, and computed columns masked
            // (fail closed; a rare path, so no finer bound).
            self.forget(&runs);
            for e in &mut self.expect {
                match e {
                    Expect::Execute { columns, audit, .. } => {
                        *columns = None;
                        mark_uncertain(audit.as_mut());
                    }
                    Expect::Describe {
                        kind: ObjectKind::Portal,
                        exprs,
                        ..
                    } => *exprs = unknown_plan(),
                    _ => {}
                }
            }
        }
        tracing::debug!(count, "changes the server skipped taken back");
    }

    /// Later entries, already sent, that used what an undone message made now use what the
    /// server has under the name (`statement_now`, `portal_now` of the generation it made:
    /// `None` for one no undone message made). Where tollgate has nothing under the name, the
    /// server may have nothing (it fails their Bind or Execute) or what SQL made of it: they
    /// are taken as unknown (fail closed): rows hidden, computed columns masked, the record
    /// marked. Returns the later Binds pointed at another statement, by the generation of their
    /// portal, the portals bound to an unknown one, and the names the statements the later
    /// Executes now run make or drop.
    fn repoint<'a>(
        &mut self,
        statement_now: impl Fn(u64) -> Option<Option<&'a Prepared>>,
        portal_now: impl Fn(u64) -> Option<Option<&'a Portal>>,
    ) -> (HashMap<u64, Bound>, Vec<u64>, NameEffects) {
        let mut rebound: HashMap<u64, Bound> = HashMap::new();
        let mut unknown: Vec<u64> = Vec::new();
        let mut runs = NameEffects::default();
        for e in &mut self.expect {
            match e {
                Expect::Bind {
                    statement,
                    generation,
                    ..
                } => match statement_now(*statement) {
                    Some(Some(x)) => {
                        *statement = x.generation;
                        let bound = Bound {
                            generation: x.generation,
                            audit: x.audit.clone(),
                            exprs: x.exprs.clone(),
                            may_copy: x.may_copy,
                            names: x.names.clone(),
                        };
                        rebound.insert(*generation, bound);
                    }
                    Some(None) => {
                        *statement = 0;
                        unknown.push(*generation);
                    }
                    None => {}
                },
                Expect::Describe {
                    kind: ObjectKind::Statement,
                    generation,
                    ..
                } => match statement_now(*generation) {
                    Some(Some(x)) => *generation = x.generation,
                    Some(None) => *generation = 0,
                    None => {}
                },
                Expect::Describe {
                    kind: ObjectKind::Portal,
                    generation,
                    exprs,
                    ..
                } => {
                    if let Some(b) = rebound.get(generation) {
                        raise(exprs, &b.exprs);
                    } else if unknown.contains(generation) {
                        *exprs = unknown_plan();
                    } else {
                        match portal_now(*generation) {
                            Some(Some(p)) => {
                                *generation = p.generation;
                                raise(exprs, &p.exprs);
                            }
                            Some(None) => *exprs = unknown_plan(),
                            None => {}
                        }
                    }
                }
                Expect::Execute {
                    portal,
                    statement,
                    columns,
                    audit,
                    ..
                } => {
                    // Its rows are hidden until a description of the portal comes.
                    if let Some(b) = rebound.get(portal) {
                        *statement = b.generation;
                        *columns = None;
                        rebase(audit.as_mut(), Some(&b.audit));
                        runs.merge(&b.names);
                    } else if unknown.contains(portal) {
                        *statement = 0;
                        *columns = None;
                        mark_uncertain(audit.as_mut());
                    } else {
                        match portal_now(*portal) {
                            Some(Some(p)) => {
                                *portal = p.generation;
                                *statement = p.statement_generation;
                                *columns = None;
                                rebase(audit.as_mut(), p.audit.as_deref());
                                runs.merge(&p.names);
                            }
                            Some(None) => {
                                *columns = None;
                                mark_uncertain(audit.as_mut());
                            }
                            None => {}
                        }
                    }
                }
                _ => {}
            }
        }
        (rebound, unknown, runs)
    }

    /// Each name goes back to what it was, unless a later entry changes it again: then that
    /// entry's `before` is what the name was. A name SQL replaced since (`replaced`) goes back
    /// to nothing: tollgate does not know what SQL made of it. A later entry sent before that
    /// SQL still had the server's old value under the name, one sent after it nothing.
    fn put_back(
        &mut self,
        mut statements: HashMap<String, Was<Prepared>>,
        mut portals: HashMap<String, Was<Portal>>,
    ) {
        for e in &mut self.expect {
            match e.undo_mut() {
                Some(Undo::Statement {
                    name,
                    before,
                    replaced,
                    ..
                }) => {
                    if let Some((was, sql)) = statements.remove(name) {
                        *before = if sql && !*replaced { None } else { was };
                    }
                }
                Some(Undo::Portal {
                    name,
                    before,
                    replaced,
                    ..
                }) => {
                    if let Some((was, sql)) = portals.remove(name) {
                        *before = if sql && !*replaced { None } else { was };
                    }
                }
                None => {}
            }
        }
        for (name, (was, sql)) in statements {
            match was.filter(|_| !sql) {
                Some(p) => self.prepared.insert(name, p),
                None => self.prepared.remove(&name),
            };
        }
        for (name, (was, sql)) in portals {
            match was.filter(|_| !sql) {
                Some(p) => self.portals.insert(name, p),
                None => self.portals.remove(&name),
            };
        }
    }

    /// Every portal tollgate knows: under its name, or what a later message replaced.
    fn portals_mut(&mut self) -> impl Iterator<Item = &mut Portal> {
        let pending = self.expect.iter_mut().filter_map(|e| match e.undo_mut() {
            Some(Undo::Portal {
                before: Some(p), ..
            }) => Some(p),
            _ => None,
        });
        self.portals.values_mut().chain(pending)
    }
}

/// The plan that masks every computed column.
fn unknown_plan() -> Option<Arc<ExprPlan>> {
    Some(Arc::new(ExprPlan::Unknown))
}

/// `exprs` becomes `to`, unless it already masks every computed column: a plan taken as
/// unknown (fail closed) is never lowered by a later take-back.
fn raise(exprs: &mut Option<Arc<ExprPlan>>, to: &Option<Arc<ExprPlan>>) {
    if !matches!(exprs.as_deref(), Some(ExprPlan::Unknown)) {
        exprs.clone_from(to);
    }
}

/// What marks the record of an Execute whose statement tollgate cannot know.
pub const UNCERTAIN_MARK: &str =
    " [tollgate: what ran is not known: SQL or a failed Parse changed the name]";

/// Marks the record of an Execute as of a statement tollgate cannot know (once).
fn mark_uncertain(record: Option<&mut StmtAudit>) {
    if let Some(a) = record
        && !a.text.ends_with(UNCERTAIN_MARK)
    {
        a.text.push_str(UNCERTAIN_MARK);
    }
}

/// The record of an Execute is of statement `to` (unknown: it stays as sent).
fn rebase(record: Option<&mut StmtAudit>, to: Option<&StmtAudit>) {
    if let (Some(a), Some(to)) = (record, to) {
        a.text.clone_from(&to.text);
        a.classes.clone_from(&to.classes);
        a.tables.clone_from(&to.tables);
        a.decision.clone_from(&to.decision);
        a.rule.clone_from(&to.rule);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::session::state::Columns;

    fn audit(text: &str) -> StmtAudit {
        StmtAudit::allowed_in_test(0, text)
    }

    /// The plan of the first portal Describe owed.
    fn described(st: &State) -> Option<Arc<ExprPlan>> {
        st.expect.iter().find_map(|e| match e {
            Expect::Describe {
                kind: ObjectKind::Portal,
                exprs,
                ..
            } => exprs.clone(),
            _ => None,
        })
    }

    /// The client's Parse of `name` as `text`, as the frontend applies it.
    fn parse(st: &mut State, name: &str, text: &str) -> u64 {
        let generation = st.generation();
        let prepared = Prepared {
            audit: Arc::new(audit(text)),
            exprs: Some(plan_of(text)),
            fields: None,
            may_copy: false,
            generation,
            names: Default::default(),
            decided: None,
        };
        let before = st.prepared.insert(name.into(), prepared);
        let undo = Undo::statement(name.into(), generation, before);
        st.expect.push_back(Expect::parse(generation, Some(undo)));
        generation
    }

    /// The masking plan of a statement: every computed column masked if it reads cards.
    fn plan_of(text: &str) -> Arc<ExprPlan> {
        Arc::new(if text.contains("card") {
            ExprPlan::Unknown
        } else {
            ExprPlan::Nothing
        })
    }

    /// Whether `plan` masks every computed column.
    fn masks_all(plan: Option<&Arc<ExprPlan>>) -> bool {
        matches!(plan.map(|p| &**p), Some(ExprPlan::Unknown))
    }

    /// The client's Bind of `portal` to `statement`, with columns known.
    fn bind(st: &mut State, portal: &str, statement: &str) -> u64 {
        let generation = st.generation();
        let s = st.prepared.get(statement);
        let columns: Columns = Arc::new(Vec::new());
        let p = Portal {
            statement: statement.into(),
            formats: Vec::new(),
            exprs: s.and_then(|s| s.exprs.clone()),
            columns: Some(columns),
            generation,
            statement_generation: s.map_or(0, |s| s.generation),
            audit: s.map(|s| s.audit.clone()),
            may_copy: false,
            names: Default::default(),
        };
        let statement_generation = p.statement_generation;
        let before = st.portals.insert(portal.into(), p);
        let undo = Undo::portal(portal.into(), generation, before);
        st.expect
            .push_back(Expect::bind(generation, statement_generation, Some(undo)));
        generation
    }

    /// The client's Describe of `portal`.
    fn describe(st: &mut State, portal: &str) {
        let (generation, exprs) = st
            .portals
            .get(portal)
            .map_or((0, None), |p| (p.generation, p.exprs.clone()));
        st.expect.push_back(Expect::Describe {
            kind: ObjectKind::Portal,
            name: portal.into(),
            generation,
            exprs,
        });
    }

    /// The client's Execute of `portal`, recorded as its statement.
    fn execute(st: &mut State, portal: &str) {
        let p = st.portals.get(portal).expect("a portal");
        let (generation, statement_generation) = (p.generation, p.statement_generation);
        let columns = p.columns.clone();
        let audit = p.audit.as_deref().cloned();
        st.expect.push_back(Expect::Execute {
            portal: generation,
            statement: statement_generation,
            columns,
            audit,
            slot: None,
            copy: None,
            raising: false,
        });
    }

    fn close(st: &mut State, name: &str) {
        let before = st.prepared.remove(name);
        let undo = Undo::statement(name.into(), 0, before);
        st.expect.push_back(Expect::Close {
            undo: Some(Box::new(undo)),
        });
    }

    /// The server answers the entry owed first.
    fn answer(st: &mut State) {
        st.pop().expect("an entry owed");
    }

    /// The server's error answers the entry owed first (an Execute is taken with its result).
    fn error(st: &mut State) {
        let parse_failed = matches!(st.expect.front(), Some(Expect::Parse { .. }));
        if matches!(st.expect.front(), Some(Expect::Execute { .. })) {
            st.pop();
        }
        st.skip_to_sync(parse_failed);
    }

    fn text(st: &State, name: &str) -> Option<String> {
        st.prepared.get(name).map(|p| p.audit.text.clone())
    }

    /// What the Executes owed will be recorded as, and whether their columns are known.
    fn executes(st: &State) -> Vec<(String, bool)> {
        st.expect
            .iter()
            .filter_map(|e| match e {
                Expect::Execute { audit, columns, .. } => Some((
                    audit.as_ref().map(|a| a.text.clone()).unwrap_or_default(),
                    columns.is_some(),
                )),
                _ => None,
            })
            .collect()
    }

    /// A Parse, Bind or Close skipped after an error in its batch changes nothing.
    #[test]
    fn what_the_server_skips_is_taken_back() {
        let mut st = State::default();
        parse(&mut st, "", "q0");
        parse(&mut st, "s", "named");
        answer(&mut st);
        answer(&mut st);
        bind(&mut st, "", "s");
        execute(&mut st, "");
        parse(&mut st, "", "q1");
        close(&mut st, "s");
        st.client_sync();
        answer(&mut st); // BindComplete
        error(&mut st); // the Execute fails: the Parse and Close are skipped
        assert_eq!(text(&st, "").as_deref(), Some("q0"));
        assert_eq!(text(&st, "s").as_deref(), Some("named"));
        assert_eq!(st.portals[""].statement, "s");
        st.ready_for_query().expect("in step");
        assert!(st.expect.is_empty());
    }

    /// A failed Parse of the unnamed statement leaves none (PostgreSQL drops it first); a
    /// failed Parse of a named one leaves it as it was.
    #[test]
    fn a_failed_parse_leaves_what_the_server_has() {
        let mut st = State::default();
        parse(&mut st, "", "q0");
        parse(&mut st, "s", "named");
        answer(&mut st);
        answer(&mut st);
        parse(&mut st, "", "bad");
        st.client_sync();
        error(&mut st);
        st.ready_for_query().expect("in step");
        assert_eq!(text(&st, ""), None);
        parse(&mut st, "s", "again");
        st.client_sync();
        error(&mut st);
        assert_eq!(text(&st, "s").as_deref(), Some("named"));
    }

    /// A later batch, sent before the error came, that parses the name again keeps it; if
    /// that one fails too, the name is what it was before both.
    #[test]
    fn a_later_change_of_the_name_stays() {
        let mut st = State::default();
        parse(&mut st, "", "q0");
        answer(&mut st);
        bind(&mut st, "", "");
        execute(&mut st, "");
        parse(&mut st, "", "skipped");
        st.client_sync();
        parse(&mut st, "", "later");
        bind(&mut st, "", "");
        execute(&mut st, "");
        st.client_sync();
        answer(&mut st); // BindComplete
        error(&mut st);
        assert_eq!(text(&st, "").as_deref(), Some("later"));
        assert_eq!(executes(&st), [("later".to_owned(), true)]);
        st.ready_for_query().expect("in step");
        error(&mut st); // the later Parse fails: an unnamed Parse leaves none
        assert_eq!(text(&st, ""), None);

        let mut st = State::default();
        parse(&mut st, "", "q0");
        answer(&mut st);
        parse(&mut st, "s", "skipped");
        st.client_sync();
        parse(&mut st, "", "later");
        st.client_sync();
        // The first batch fails at a Bind before its Parse of "s": "s" stays unmade, and the
        // later batch's Parse of "" is not part of that batch.
        st.expect.push_front(Expect::bind(0, 0, None));
        error(&mut st);
        assert_eq!(text(&st, "s"), None);
        st.ready_for_query().expect("in step");
        assert_eq!(text(&st, "").as_deref(), Some("later"));
    }

    /// A later batch that binds the name without parsing it again binds what the server has:
    /// its Execute is recorded as that statement, and its rows wait for a description.
    #[test]
    fn a_later_bind_of_a_skipped_parse_runs_what_the_server_has() {
        let mut st = State::default();
        let q0 = parse(&mut st, "", "card q0");
        answer(&mut st);
        bind(&mut st, "", "");
        execute(&mut st, "");
        parse(&mut st, "", "skipped");
        st.client_sync();
        let portal = bind(&mut st, "", "");
        describe(&mut st, "");
        execute(&mut st, "");
        st.client_sync();
        assert_eq!(executes(&st)[1], ("skipped".to_owned(), true));
        answer(&mut st); // BindComplete
        error(&mut st);
        st.ready_for_query().expect("in step");
        assert_eq!(text(&st, "").as_deref(), Some("card q0"));
        assert_eq!(executes(&st), [("card q0".to_owned(), false)]);
        let p = &st.portals[""];
        assert_eq!((p.generation, p.statement_generation), (portal, q0));
        assert!(p.columns.is_none());
        assert!(masks_all(p.exprs.as_ref()), "the portal masks by q0's plan");
        assert_eq!(p.audit.as_ref().map(|a| &*a.text), Some("card q0"));
        let owed: Vec<_> = st.expect.iter().take(2).collect();
        match owed[..] {
            [
                Expect::Bind { statement, .. },
                Expect::Describe {
                    exprs, generation, ..
                },
            ] => {
                assert_eq!((*statement, *generation), (q0, portal));
                assert!(masks_all(exprs.as_ref()), "described by q0's plan");
            }
            _ => panic!("the later Bind and Describe are owed: {owed:?}"),
        }
    }

    /// A later batch's change of a name takes what the name was before the skipped one: a
    /// Close skipped, then a later Parse of the name (which the server then fails, the name
    /// being still in use) leaves the statement from before both.
    #[test]
    fn a_later_change_takes_over_what_the_name_was() {
        let mut st = State::default();
        parse(&mut st, "s", "a");
        answer(&mut st);
        bind(&mut st, "", "s");
        execute(&mut st, "");
        close(&mut st, "s");
        st.client_sync();
        parse(&mut st, "s", "b");
        st.client_sync();
        answer(&mut st); // BindComplete
        error(&mut st); // the Execute fails: the Close is skipped
        assert_eq!(
            text(&st, "s").as_deref(),
            Some("b"),
            "the later Parse stays"
        );
        st.ready_for_query().expect("in step");
        error(&mut st); // 42P05: "s" still exists
        assert_eq!(text(&st, "s").as_deref(), Some("a"));
    }

    /// A name SQL replaced (`DEALLOCATE s; PREPARE s …`, forwarded while a Close of it is
    /// pending) is not put back when the server skips the Close: the server's `s` is the new one.
    #[test]
    fn a_name_replaced_by_sql_is_not_put_back() {
        let mut st = State::default();
        parse(&mut st, "s", "harmless");
        answer(&mut st);
        bind(&mut st, "", "s");
        execute(&mut st, "");
        close(&mut st, "s");
        st.client_sync();
        st.forget(&NameEffects {
            statements: crate::postgres::sql::Names::Some(vec!["s".into()]),
            portals: Default::default(),
            ..Default::default()
        });
        answer(&mut st); // BindComplete
        error(&mut st);
        assert_eq!(text(&st, "s"), None);
    }

    /// SQL that drops a name, sent after a batch whose skipped Parse changed it: a Bind of the
    /// name sent between them binds what the server had (its record and plan), and the name
    /// goes back to nothing.
    #[test]
    fn a_bind_sent_before_sql_replaced_the_name_binds_the_old_statement() {
        let mut st = State::default();
        parse(&mut st, "s", "card a");
        answer(&mut st);
        parse(&mut st, "", "q0");
        answer(&mut st);
        bind(&mut st, "", "");
        execute(&mut st, "");
        parse(&mut st, "s", "harmless");
        st.client_sync();
        bind(&mut st, "", "s");
        describe(&mut st, "");
        execute(&mut st, "");
        st.client_sync();
        st.forget(&NameEffects {
            statements: crate::postgres::sql::Names::Some(vec!["s".into()]),
            portals: Default::default(),
            ..Default::default()
        });
        answer(&mut st); // BindComplete
        error(&mut st);
        assert_eq!(text(&st, "s"), None, "SQL dropped it");
        assert_eq!(executes(&st), [("card a".to_owned(), false)]);
        assert!(masks_all(described(&st).as_ref()), "by card a's plan");
    }

    /// An Execute sent for a statement that turns out, once its batch's Parse is taken back,
    /// to be one that declares a cursor: the cursor's name is forgotten.
    #[test]
    fn an_execute_repointed_to_a_declare_forgets_the_cursor() {
        let mut st = State::default();
        let declare = Prepared {
            audit: Arc::new(audit("declare c")),
            exprs: None,
            fields: None,
            may_copy: false,
            generation: st.generation(),
            names: NameEffects {
                statements: Default::default(),
                portals: crate::postgres::sql::Names::Some(vec!["c".into()]),
                ..Default::default()
            },
            decided: None,
        };
        st.prepared.insert("d".into(), declare);
        parse(&mut st, "", "harmless");
        answer(&mut st);
        bind(&mut st, "c", "");
        answer(&mut st);
        bind(&mut st, "", "");
        execute(&mut st, "");
        parse(&mut st, "d", "harmless too");
        st.client_sync();
        bind(&mut st, "x", "d");
        execute(&mut st, "x");
        execute(&mut st, "c");
        describe(&mut st, "c");
        st.client_sync();
        assert!(st.portals.contains_key("c"));
        answer(&mut st); // BindComplete
        error(&mut st);
        assert_eq!(text(&st, "d").as_deref(), Some("declare c"));
        assert!(
            !st.portals.contains_key("c"),
            "the cursor's name is forgotten"
        );
        // The Execute of "c" sent after it runs the cursor: its rows are hidden, and a
        // description masks every computed column.
        let uncertain = |t: &str| format!("{t}{UNCERTAIN_MARK}");
        assert_eq!(
            executes(&st),
            [
                (uncertain("declare c"), false),
                (uncertain("harmless"), false)
            ]
        );
        assert!(masks_all(described(&st).as_ref()));
    }

    /// Two skipped Parses of one name: it goes back to what it was before the older one.
    #[test]
    fn a_name_changed_twice_goes_back_to_before_both() {
        let mut st = State::default();
        parse(&mut st, "", "q0");
        answer(&mut st);
        bind(&mut st, "", "");
        execute(&mut st, "");
        parse(&mut st, "", "a");
        bind(&mut st, "", "");
        parse(&mut st, "", "b");
        st.client_sync();
        answer(&mut st); // BindComplete
        error(&mut st);
        assert_eq!(text(&st, "").as_deref(), Some("q0"));
        assert_eq!(st.portals[""].audit.as_ref().map(|a| &*a.text), Some("q0"));
    }

    /// An error that answers a Bind: the unnamed Parse skipped after it is put back, not
    /// dropped (only a Parse the error answers leaves no unnamed statement).
    #[test]
    fn a_parse_skipped_after_a_failed_bind_is_put_back() {
        let mut st = State::default();
        parse(&mut st, "", "q0");
        answer(&mut st);
        bind(&mut st, "", "");
        parse(&mut st, "", "skipped");
        st.client_sync();
        error(&mut st);
        assert_eq!(text(&st, "").as_deref(), Some("q0"));
    }

    /// tollgate's own Parse (a refusal) failing, as in an aborted transaction: the server
    /// dropped the unnamed statement first, so none is left; skipped, the statement stays.
    #[test]
    fn an_injected_parse_takes_the_unnamed_statement_with_it() {
        let mut st = State::default();
        parse(&mut st, "", "q0");
        answer(&mut st);
        st.injected_error();
        assert_eq!(text(&st, ""), None);
        st.client_sync();
        error(&mut st);
        assert_eq!(text(&st, ""), None, "failed: dropped");

        let mut st = State::default();
        parse(&mut st, "", "q0");
        answer(&mut st);
        st.expect.push_back(Expect::bind(0, 0, None));
        st.injected_error();
        st.client_sync();
        error(&mut st);
        assert_eq!(text(&st, "").as_deref(), Some("q0"), "skipped: kept");
    }

    /// A skipped Close brings the statement back; a later Bind sent while it was gone stays
    /// without a statement (its Execute is refused: fail closed), while a new Bind of the name
    /// binds it.
    #[test]
    fn a_skipped_close_brings_the_statement_back() {
        let mut st = State::default();
        parse(&mut st, "s", "card s");
        answer(&mut st);
        bind(&mut st, "", "s");
        execute(&mut st, "");
        close(&mut st, "s");
        st.client_sync();
        bind(&mut st, "held", "s");
        st.client_sync();
        answer(&mut st); // BindComplete
        error(&mut st);
        assert_eq!(text(&st, "s").as_deref(), Some("card s"));
        assert!(st.portals["held"].audit.is_none());
        st.ready_for_query().expect("in step");
        bind(&mut st, "again", "s");
        assert_eq!(
            st.portals["again"].audit.as_ref().map(|a| &*a.text),
            Some("card s")
        );
    }

    /// Without anything under the name in tollgate's view, the server has nothing (its Bind
    /// fails) or what SQL made of the name: a later Bind of it is taken as unknown (fail
    /// closed): rows hidden, the record marked, the portal refused from then on.
    #[test]
    fn a_later_bind_of_a_name_tollgate_lacks_is_taken_as_unknown() {
        let mut st = State::default();
        parse(&mut st, "s", "never made");
        st.client_sync();
        bind(&mut st, "", "s");
        describe(&mut st, "");
        execute(&mut st, "");
        st.client_sync();
        error(&mut st);
        st.ready_for_query().expect("in step");
        assert_eq!(text(&st, "s"), None);
        assert_eq!(
            executes(&st),
            [(format!("never made{UNCERTAIN_MARK}"), false)]
        );
        let p = &st.portals[""];
        assert!(p.audit.is_none() && masks_all(p.exprs.as_ref()));
        assert!(masks_all(described(&st).as_ref()));
    }
}
