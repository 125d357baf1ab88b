//! What a statement does to the session's named objects that the extended protocol shares with
//! SQL: prepared statements (`PREPARE`, `DEALLOCATE`) and portals (cursors: `DECLARE`,
//! `CLOSE`). A client can replace, under a name tollgate knows from its Parse or Bind, what the
//! server runs; tollgate then forgets the name (fail closed) rather than record and mask by what
//! it was.
use sqlparser::ast::{CloseCursor, DiscardObject, Ident, Statement};

/// Which names of one kind a statement makes or drops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Names {
    /// None.
    #[default]
    None,
    /// These (as PostgreSQL folds them: unquoted lower-cased).
    Some(Vec<String>),
    /// Any or all of them.
    All,
}

impl Names {
    /// Adds the object `ident` names. One PostgreSQL would name differently from a plain
    /// ASCII lower-casing (non-ASCII letters, or long enough to be truncated to 63 bytes) makes
    /// it all of them (fail closed).
    fn add_ident(&mut self, ident: &Ident) {
        match folded(ident) {
            Some(name) => self.add(name),
            None => *self = Names::All,
        }
    }

    fn add(&mut self, name: String) {
        match self {
            Names::None => *self = Names::Some(vec![name]),
            Names::Some(names) if !names.contains(&name) => names.push(name),
            Names::Some(_) | Names::All => {}
        }
    }

    /// Whether `name` is among them.
    pub fn holds(&self, name: &str) -> bool {
        match self {
            Names::None => false,
            Names::Some(names) => names.iter().any(|n| n == name),
            Names::All => true,
        }
    }

    fn merge(&mut self, other: &Names) {
        match other {
            Names::None => {}
            Names::All => *self = Names::All,
            Names::Some(names) => {
                for n in names {
                    self.add(n.clone());
                }
            }
        }
    }
}

/// What a statement does to the session's prepared statements and portals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameEffects {
    /// Prepared statements.
    pub statements: Names,
    /// Portals (cursors).
    pub portals: Names,
    /// It runs what a name holds (`FETCH` from a cursor, `EXECUTE` of a prepared statement):
    /// its rows are shaped by what the name holds when it runs, which a Describe of the
    /// statement made earlier does not tell (PostgreSQL describes a utility statement once).
    pub runs_a_name: bool,
}

impl NameEffects {
    /// Anything: a statement whose effect cannot be known.
    pub fn all() -> Self {
        NameEffects {
            statements: Names::All,
            portals: Names::All,
            runs_a_name: true,
        }
    }

    /// Touches no name.
    pub fn is_none(&self) -> bool {
        self.statements == Names::None && self.portals == Names::None
    }

    /// Adds what `other` touches.
    pub fn merge(&mut self, other: &NameEffects) {
        self.statements.merge(&other.statements);
        self.portals.merge(&other.portals);
        self.runs_a_name |= other.runs_a_name;
    }
}

/// What `stmt` does to the session's names.
pub(crate) fn of(stmt: &Statement) -> NameEffects {
    let mut e = NameEffects::default();
    match stmt {
        Statement::Prepare { name, .. } => e.statements.add_ident(name),
        Statement::Deallocate { name, .. } => {
            if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
                e.statements = Names::All;
            } else {
                e.statements.add_ident(name);
            }
        }
        Statement::Declare { stmts } => {
            for declare in stmts {
                for name in &declare.names {
                    e.portals.add_ident(name);
                }
            }
        }
        Statement::Close { cursor } => match cursor {
            CloseCursor::All => e.portals = Names::All,
            CloseCursor::Specific { name } => e.portals.add_ident(name),
        },
        Statement::Discard {
            object_type: DiscardObject::ALL,
        } => e = NameEffects::all(),
        Statement::Fetch { .. } | Statement::Execute { .. } => e.runs_a_name = true,
        _ => {}
    }
    e
}

/// The longest name PostgreSQL keeps whole (`NAMEDATALEN - 1`): a longer one is truncated.
pub const MAX_NAME_LEN: usize = 63;

/// An identifier as PostgreSQL names the object: unquoted ones have ASCII letters lower-cased.
/// `None` where that is not all it does (other letters, truncation).
fn folded(name: &Ident) -> Option<String> {
    if !name.value.is_ascii() || name.value.len() > MAX_NAME_LEN {
        return None;
    }
    Some(if name.quote_style.is_some() {
        name.value.clone()
    } else {
        name.value.to_ascii_lowercase()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::sql::classify;

    fn effects(sql: &str) -> NameEffects {
        let mut e = NameEffects::default();
        for c in classify(sql).iter() {
            e.merge(&c.names);
        }
        e
    }

    fn some(names: &[&str]) -> Names {
        Names::Some(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn statements_that_make_or_drop_names() {
        let cases = [
            ("PREPARE Q1 AS SELECT 1", some(&["q1"]), Names::None),
            ("deallocate \"Q1\"", some(&["Q1"]), Names::None),
            ("DEALLOCATE PREPARE q1", some(&["q1"]), Names::None),
            ("DEALLOCATE ALL", Names::All, Names::None),
            (
                "DECLARE c CURSOR FOR SELECT card_number FROM customers",
                Names::None,
                some(&["c"]),
            ),
            ("CLOSE c; CLOSE \"D\"", Names::None, some(&["c", "D"])),
            ("CLOSE ALL", Names::None, Names::All),
            ("DISCARD ALL", Names::All, Names::All),
            ("DISCARD PLANS", Names::None, Names::None),
            ("DO $$ BEGIN END $$", Names::All, Names::All),
            ("SELEKT 1 FROM", Names::All, Names::All),
            ("SELECT * FROM customers", Names::None, Names::None),
            ("FETCH 10 FROM c", Names::None, Names::None),
            ("CLOSE \"Ä\"", Names::None, Names::All),
            (
                &*format!("CLOSE {}", "c".repeat(64)),
                Names::None,
                Names::All,
            ),
            (
                &*format!("CLOSE {}", "c".repeat(63)),
                Names::None,
                some(&[&"c".repeat(63)]),
            ),
        ];
        for (sql, statements, portals) in cases {
            let e = effects(sql);
            assert_eq!((e.statements, e.portals), (statements, portals), "{sql}");
        }
        // The memo by shape keeps them.
        assert_eq!(effects("CLOSE c").portals, some(&["c"]));
        assert_eq!(effects("CLOSE c").portals, some(&["c"]));
    }

    #[test]
    fn statements_that_run_what_a_name_holds() {
        for (sql, runs) in [
            ("FETCH ALL FROM c", true),
            ("fetch 10 c", true),
            ("EXECUTE q1(1)", true),
            ("DO $$ BEGIN END $$", true),
            ("SELECT 1; FETCH c", true),
            ("DECLARE c CURSOR FOR SELECT 1", false),
            ("SELECT * FROM customers", false),
            ("PREPARE q1 AS SELECT 1", false),
        ] {
            assert_eq!(effects(sql).runs_a_name, runs, "{sql}");
        }
    }
}
