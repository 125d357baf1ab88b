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
use std::sync::Arc;

use super::{
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
    },
    /// A portal.
    Portal {
        /// Its name.
        name: String,
        /// The generation the message made (0: a Close, or tollgate's own Bind).
        made: u64,
        /// What the name was.
        before: Option<Portal>,
    },
}

impl Undo {
    /// A Parse of the unnamed statement. When the server fails one, it has dropped the unnamed
    /// statement before (PostgreSQL releases it first), so none is left.
    fn is_unnamed_parse(&self) -> bool {
        matches!(self, Undo::Statement { name, made, .. } if name.is_empty() && *made != 0)
    }

    /// The same kind of object under the same name as `other`.
    fn same_name(&self, other: &Undo) -> bool {
        match (self, other) {
            (Undo::Statement { name: a, .. }, Undo::Statement { name: b, .. })
            | (Undo::Portal { name: a, .. }, Undo::Portal { name: b, .. }) => a == b,
            _ => false,
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

impl State {
    /// The server did not do what `undone` changed, oldest first: the entries it skipped
    /// after an error, and (first) the one the error answers. `failed_first`: the error
    /// answers the first of them (a Parse of the unnamed statement then leaves none).
    ///
    /// Taken back newest first, so each name ends as it was before the oldest of them. A name
    /// changed again by a later batch already sent keeps that change; it now replaces what the
    /// name was before the skipped messages.
    pub fn take_back(&mut self, undone: Vec<Undo>, failed_first: bool) {
        let count = undone.len();
        for (i, mut u) in undone.into_iter().enumerate().rev() {
            if i == 0
                && failed_first
                && u.is_unnamed_parse()
                && let Undo::Statement { before, .. } = &mut u
            {
                *before = None;
            }
            self.take_back_one(u);
        }
        if count > 0 {
            tracing::debug!(count, "changes the server skipped taken back");
        }
    }

    fn take_back_one(&mut self, u: Undo) {
        self.repoint_dependents(&u);
        let later = self
            .expect
            .iter_mut()
            .filter_map(Expect::undo_mut)
            .find(|l| l.same_name(&u));
        match (u, later) {
            (
                Undo::Statement { before, .. },
                Some(Undo::Statement {
                    before: replaced, ..
                }),
            ) => *replaced = before,
            (
                Undo::Portal { before, .. },
                Some(Undo::Portal {
                    before: replaced, ..
                }),
            ) => *replaced = before,
            (Undo::Statement { name, before, .. }, _) => match before {
                Some(p) => {
                    self.prepared.insert(name, p);
                }
                None => {
                    self.prepared.remove(&name);
                }
            },
            (Undo::Portal { name, before, .. }, _) => match before {
                Some(p) => {
                    self.portals.insert(name, p);
                }
                None => {
                    self.portals.remove(&name);
                }
            },
        }
    }

    /// Later entries, already sent, that used what `u`'s message made now use what the server
    /// has under the name instead. With nothing under it, the server fails their Bind or
    /// Execute, and they stay as sent (the attempt is recorded with that error).
    fn repoint_dependents(&mut self, u: &Undo) {
        match u {
            Undo::Statement {
                made,
                before: Some(p),
                ..
            } if *made != 0 => self.repoint_statement(*made, p),
            Undo::Portal {
                made,
                before: Some(p),
                ..
            } if *made != 0 => self.repoint_portal(*made, p),
            _ => {}
        }
    }

    /// Later uses of statement generation `from` use `to`.
    fn repoint_statement(&mut self, from: u64, to: &Prepared) {
        let mut portals = Vec::new();
        for e in &mut self.expect {
            match e {
                Expect::Bind {
                    statement,
                    generation,
                    ..
                } if *statement == from => {
                    *statement = to.generation;
                    portals.push(*generation);
                }
                Expect::Describe {
                    kind: ObjectKind::Statement,
                    generation,
                    ..
                } if *generation == from => *generation = to.generation,
                _ => {}
            }
        }
        for p in self.portals_mut() {
            if portals.contains(&p.generation) {
                p.statement_generation = to.generation;
                p.exprs.clone_from(&to.exprs);
                p.columns = None;
            }
        }
        self.repoint_uses(&portals, to.generation, Some(&to.audit), &to.exprs);
    }

    /// Later uses of portal generation `from` use `to`.
    fn repoint_portal(&mut self, from: u64, to: &Portal) {
        for e in &mut self.expect {
            if let Expect::Describe {
                kind: ObjectKind::Portal,
                generation,
                ..
            }
            | Expect::Execute {
                portal: generation, ..
            } = e
                && *generation == from
            {
                *generation = to.generation;
            }
        }
        // Its statement may be gone from tollgate's view: then its rows are hidden (no
        // columns), and the record stays as sent.
        let audit = self
            .statement_by_generation(to.statement_generation)
            .map(|s| s.audit.clone());
        self.repoint_uses(
            &[to.generation],
            to.statement_generation,
            audit.as_ref(),
            &to.exprs,
        );
    }

    /// Describes and Executes of `portals` are of statement generation `statement`, whose
    /// record is `audit` (`None`: unknown, the record stays as sent) and whose computed
    /// columns are masked by `exprs`. Their rows are hidden until a description of the
    /// portal comes.
    fn repoint_uses(
        &mut self,
        portals: &[u64],
        statement: u64,
        audit: Option<&StmtAudit>,
        exprs: &Option<Arc<ExprPlan>>,
    ) {
        for e in &mut self.expect {
            match e {
                Expect::Describe {
                    kind: ObjectKind::Portal,
                    generation,
                    exprs: planned,
                    ..
                } if portals.contains(generation) => *planned = exprs.clone(),
                Expect::Execute {
                    portal,
                    statement: s,
                    columns,
                    audit: recorded,
                    ..
                } if portals.contains(portal) => {
                    *s = statement;
                    *columns = None;
                    if let (Some(a), Some(audit)) = (recorded, audit) {
                        a.text.clone_from(&audit.text);
                        a.classes.clone_from(&audit.classes);
                        a.tables.clone_from(&audit.tables);
                        a.decision.clone_from(&audit.decision);
                        a.rule.clone_from(&audit.rule);
                    }
                }
                _ => {}
            }
        }
    }

    /// The prepared statement of `generation`: under its name, or what a later message
    /// replaced.
    fn statement_by_generation(&self, generation: u64) -> Option<&Prepared> {
        let pending = self.expect.iter().filter_map(|e| match e {
            Expect::Parse { undo, .. } | Expect::Close { undo } => match undo.as_deref() {
                Some(Undo::Statement {
                    before: Some(p), ..
                }) => Some(p),
                _ => None,
            },
            _ => None,
        });
        self.prepared
            .values()
            .chain(pending)
            .find(|p| p.generation == generation)
    }

    /// Every portal tollgate knows: under its name, or what a later message replaced.
    fn portals_mut(&mut self) -> impl Iterator<Item = &mut Portal> {
        let pending = self.expect.iter_mut().filter_map(|e| match e {
            Expect::Bind { undo, .. } | Expect::Close { undo } => match undo.as_deref_mut() {
                Some(Undo::Portal {
                    before: Some(p), ..
                }) => Some(p),
                _ => None,
            },
            _ => None,
        });
        self.portals.values_mut().chain(pending)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Instant, SystemTime};

    use super::*;
    use crate::postgres::session::state::Columns;

    fn audit(text: &str) -> StmtAudit {
        StmtAudit {
            seq: 0,
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

    /// The client's Parse of `name` as `text`, as the frontend applies it.
    fn parse(st: &mut State, name: &str, text: &str) -> u64 {
        let generation = st.generation();
        let prepared = Prepared {
            audit: audit(text),
            exprs: None,
            fields: None,
            may_copy: false,
            generation,
        };
        let before = st.prepared.insert(name.into(), prepared);
        let undo = Undo::Statement {
            name: name.into(),
            made: generation,
            before,
        };
        st.expect.push_back(Expect::parse(generation, Some(undo)));
        generation
    }

    /// The client's Bind of `portal` to `statement`, with columns known.
    fn bind(st: &mut State, portal: &str, statement: &str) -> u64 {
        let generation = st.generation();
        let statement_generation = st.prepared.get(statement).map_or(0, |p| p.generation);
        let columns: Columns = Arc::new(Vec::new());
        let p = Portal {
            statement: statement.into(),
            formats: Vec::new(),
            exprs: None,
            columns: Some(columns),
            generation,
            statement_generation,
        };
        let before = st.portals.insert(portal.into(), p);
        let undo = Undo::Portal {
            name: portal.into(),
            made: generation,
            before,
        };
        st.expect
            .push_back(Expect::bind(generation, statement_generation, Some(undo)));
        generation
    }

    /// The client's Describe of `portal`.
    fn describe(st: &mut State, portal: &str) {
        let generation = st.portals.get(portal).map_or(0, |p| p.generation);
        st.expect.push_back(Expect::Describe {
            kind: ObjectKind::Portal,
            name: portal.into(),
            generation,
            exprs: None,
        });
    }

    /// The client's Execute of `portal`, recorded as its statement.
    fn execute(st: &mut State, portal: &str) {
        let p = st.portals.get(portal).expect("a portal");
        let (generation, statement_generation) = (p.generation, p.statement_generation);
        let columns = p.columns.clone();
        let audit = st.prepared.get(&p.statement).map(|s| s.audit.clone());
        st.expect.push_back(Expect::Execute {
            portal: generation,
            statement: statement_generation,
            columns,
            audit,
            slot: None,
            copy: None,
        });
    }

    fn close(st: &mut State, name: &str) {
        let before = st.prepared.remove(name);
        let undo = Undo::Statement {
            name: name.into(),
            made: 0,
            before,
        };
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
        let q0 = parse(&mut st, "", "q0");
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
        assert_eq!(text(&st, "").as_deref(), Some("q0"));
        assert_eq!(executes(&st), [("q0".to_owned(), false)]);
        let p = &st.portals[""];
        assert_eq!((p.generation, p.statement_generation), (portal, q0));
        assert!(p.columns.is_none());
        match st.expect.front() {
            Some(Expect::Bind { statement, .. }) => assert_eq!(*statement, q0),
            _ => panic!("the later Bind is owed"),
        }
    }

    /// Without anything under the name on the server, a later Bind of it fails there: it
    /// stays as sent (its Execute is the attempt, recorded with the server's error).
    #[test]
    fn a_later_bind_of_a_name_the_server_lacks_stays_as_sent() {
        let mut st = State::default();
        parse(&mut st, "s", "never made");
        st.client_sync();
        bind(&mut st, "", "s");
        execute(&mut st, "");
        st.client_sync();
        error(&mut st);
        st.ready_for_query().expect("in step");
        assert_eq!(text(&st, "s"), None);
        assert_eq!(executes(&st), [("never made".to_owned(), true)]);
    }
}
