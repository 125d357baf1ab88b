//! Statements that would make the server read later SQL otherwise than tollgate reads it.
//!
//! tollgate classifies SQL as UTF-8 with standard-conforming strings (a backslash in `'...'` is
//! an ordinary character). A session that sets `client_encoding` to another encoding, or
//! `standard_conforming_strings` off, makes the server read the next statements with other
//! rules: `'x\''` is then a whole literal to the server and not to tollgate, so a `DROP` can
//! sit where tollgate sees a string. Such a statement is taken as unknown (fail closed): it
//! runs only where a policy allows unknown statements (and then the session ends at the
//! server's report of the change). Setting either to its safe value (or to its default, which
//! tollgate checks at login) stays an ordinary `SET`.
//!
//! Covered: `SET` (every form, `LOCAL` or not), `SET NAMES`, and `set_config(...)` anywhere in
//! a statement (its parameter named by a string literal; any other argument counts as unsafe).
//! A write to `pg_settings` is Unknown too (`walk`). A function that sets them from inside the
//! server is not seen: the session ends at the server's `ParameterStatus` report of the change
//! (`session::backend`); a statement the client pipelined behind that function is already
//! on its way and is read by the server under the new setting, which `other_reading` covers.

use std::convert::Infallible;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName, Set, Statement, Value,
    Visit, Visitor,
};

use super::names;

/// Whether a statement holding the word (a name, quoted or not) may be decided by a literal's
/// value here (`SET client_encoding = '...'`, `set_config('...', ...)`): such statements are
/// never memoized by shape (`lex::cache_key`, `prelex`), as literal values never otherwise
/// decide a class. Wide on purpose: a false match costs a parse, a miss a bypass.
///
/// Runs on every word of every statement the memos are asked about: no allocation.
pub(crate) fn value_may_decide(word: &str) -> bool {
    let has = |needle: &str| {
        word.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    };
    has("encoding")
        || has("conforming")
        || has("set_config")
        || word.eq_ignore_ascii_case("names")
        || word.contains('\\')
}

/// Whether a statement writing `writes` (tables as the walker lists them) writes
/// `pg_settings`, which sets parameters by rule (`set_config`): any of them.
pub(crate) fn writes_settings(writes: &[String]) -> bool {
    writes.iter().any(|t| {
        t.rsplit('.')
            .next()
            .is_some_and(|p| p.eq_ignore_ascii_case("pg_settings"))
    })
}

/// Whether `stmt` may change how the server reads later SQL. (A write to `pg_settings` is
/// [`writes_settings`], asked by the walker: it knows the written tables.)
pub(crate) fn changes_reading(stmt: &Statement) -> bool {
    if let Statement::Set(set) = stmt
        && set_changes_reading(set)
    {
        return true;
    }
    let mut finder = SetConfig(false);
    let _ = stmt.visit(&mut finder);
    finder.0
}

/// Whether the server's report of `parameter` (`ParameterStatus`) leaves SQL read as tollgate
/// reads it. Parameters other than the two are not checked here.
pub fn reported_value_is_safe(parameter: &str, value: &str) -> bool {
    match parameter.to_ascii_lowercase().as_str() {
        "client_encoding" => is_utf8(value),
        "standard_conforming_strings" => is_on(value),
        _ => true,
    }
}

fn set_changes_reading(set: &Set) -> bool {
    match set {
        Set::SingleAssignment {
            variable, values, ..
        } => unsafe_assignment(variable, values),
        // `SET (a, b) = (...)` is not PostgreSQL: any reading parameter in it counts.
        Set::ParenthesizedAssignments { variables, .. } => {
            variables.iter().any(|v| parameter(v).is_some())
        }
        Set::MultipleAssignments { assignments } => assignments
            .iter()
            .any(|a| unsafe_assignment(&a.name, std::slice::from_ref(&a.value))),
        Set::SetNames { charset_name, .. } => !is_utf8(&charset_name.value),
        _ => false,
    }
}

/// The reading parameter `name` is, if it is one. PostgreSQL looks settings up without case,
/// quoted or not; a name spelled as a string counts as one (`?`), and see [`reading_parameter`].
fn parameter(name: &ObjectName) -> Option<&'static str> {
    let name = names::object(name).to_ascii_lowercase();
    if names::has_string_part(&name) {
        return Some("?");
    }
    reading_parameter(&name)
}

/// The reading parameter a setting's lower-cased name (of `SET`, or `set_config`'s first
/// argument) is, if it is one. A name holding a backslash counts as one (`?`): sqlparser reads
/// `U&"..."` escapes as other tokens, and with standard_conforming_strings off (a function may
/// have turned it off unseen, see `other_reading`) `'client\_encoding'` is the setting.
fn reading_parameter(name: &str) -> Option<&'static str> {
    if name.contains('\\') {
        return Some("?");
    }
    match name {
        "client_encoding" => Some("client_encoding"),
        "standard_conforming_strings" => Some("standard_conforming_strings"),
        _ => None,
    }
}

fn unsafe_assignment(name: &ObjectName, values: &[Expr]) -> bool {
    let Some(parameter) = parameter(name) else {
        return false;
    };
    let [value] = values else {
        return true;
    };
    match word(value) {
        _ if parameter == "?" => true,
        Some(v) if v.eq_ignore_ascii_case("default") => false,
        Some(v) => !reported_value_is_safe(parameter, &v),
        None => true,
    }
}

/// A value written as a string, a name or a number.
fn word(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(id) => Some(id.value.clone()),
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            Value::Number(n, _) => Some(n.to_string()),
            Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// Whether an encoding name is UTF-8 (`UTF8`, `utf-8`, `UNICODE`; PostgreSQL ignores case, `-`
/// and `_` in encoding names).
pub fn is_utf8(value: &str) -> bool {
    let v = value.replace(['-', '_'], "");
    v.eq_ignore_ascii_case("utf8") || v.eq_ignore_ascii_case("unicode")
}

fn is_on(value: &str) -> bool {
    ["on", "true", "yes", "1"]
        .iter()
        .any(|on| value.eq_ignore_ascii_case(on))
}

/// Whether a function or relation named `name` may be `set_config`: its last part, without
/// case (a three-part `db.pg_catalog.set_config` is PostgreSQL too), or any name holding a
/// backslash (an escaped `U&"..."` identifier, which sqlparser does not decode).
fn may_be_set_config(name: &ObjectName) -> bool {
    let name = names::object(name).to_ascii_lowercase();
    name.contains('\\') || name.rsplit('.').next() == Some("set_config")
}

/// Finds a `set_config(...)` call whose parameter is a reading one or not a plain string, and
/// `set_config` in a `FROM` list (a set-returning call there), whatever its arguments.
struct SetConfig(bool);

impl Visitor for SetConfig {
    type Break = Infallible;

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Self::Break> {
        self.0 |= may_be_set_config(relation);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Self::Break> {
        if let Expr::Function(f) = expr
            && may_be_set_config(&f.name)
        {
            let first = match &f.args {
                FunctionArguments::List(list) => list.args.first(),
                _ => None,
            };
            let named = match first {
                Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => word(e),
                _ => None,
            };
            let safe = named.is_some_and(|n| reading_parameter(&n.to_ascii_lowercase()).is_none());
            self.0 |= !safe;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::{dialect::PostgreSqlDialect, parser::Parser};

    use super::*;

    fn changes(sql: &str) -> bool {
        let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect(sql);
        changes_reading(&stmts[0])
    }

    #[test]
    fn setting_a_reading_parameter_to_an_unsafe_value_changes_reading() {
        for sql in [
            "SET client_encoding = 'LATIN1'",
            "SET client_encoding TO SJIS",
            "SET SESSION client_encoding = 'EUC_JP'",
            "SET LOCAL client_encoding = 'WIN1252'",
            "SET NAMES 'LATIN1'",
            "SET standard_conforming_strings = off",
            "SET standard_conforming_strings TO 'off'",
            "SET standard_conforming_strings = false",
            "SET standard_conforming_strings = 0",
            "SELECT set_config('standard_conforming_strings', 'off', false)",
            "SELECT set_config('CLIENT_ENCODING', 'LATIN1', false)",
            "SELECT pg_catalog.set_config('client_encoding', 'SJIS', true)",
            "SELECT 1 WHERE set_config($1, $2, false) IS NOT NULL",
            "SELECT * FROM t WHERE a = (SELECT set_config(lower('X'), 'off', false))",
            // Found in review: quoted capitals, FROM, three-part and escaped names.
            "SET \"Standard_Conforming_Strings\" = off",
            "SELECT * FROM set_config('standard_conforming_strings', 'off', false)",
            "SELECT orders.pg_catalog.set_config('standard_conforming_strings', 'off', false)",
            "SELECT U&\"set\\005fconfig\"('standard_conforming_strings', 'off', false)",
            "SELECT \"SET_CONFIG\"('client_encoding', 'SJIS', false)",
            // Found in review: the name the server reads with standard_conforming_strings off.
            r"SELECT set_config('client\_encoding', 'SJIS', false)",
        ] {
            assert!(changes(sql), "{sql}");
        }
    }

    #[test]
    fn safe_values_and_other_parameters_do_not() {
        for sql in [
            "SET client_encoding = 'UTF8'",
            "SET client_encoding TO 'utf-8'",
            "SET client_encoding = UNICODE",
            "SET client_encoding TO DEFAULT",
            "SET NAMES 'UTF8'",
            "SET standard_conforming_strings = on",
            "SET standard_conforming_strings = true",
            "SET search_path = public",
            "SET statement_timeout = 0",
            "SELECT set_config('search_path', 'public', false)",
            "SELECT 'SET client_encoding = LATIN1'",
        ] {
            assert!(!changes(sql), "{sql}");
        }
    }

    /// Classifications are memoized by statement shape (literal values blanked): a safe value
    /// classified first must not decide the class of an unsafe one of the same shape.
    #[test]
    fn a_safe_value_never_primes_a_memo_for_an_unsafe_one() {
        use crate::postgres::sql::{StatementClass as C, classify};
        for (safe, unsafe_) in [
            (
                "SET client_encoding = 'UTF8' /* reading-a */",
                "SET client_encoding = 'LATIN1' /* reading-a */",
            ),
            (
                "SET \"client_encoding\" = 'UTF8'",
                "SET \"client_encoding\" = 'SJIS'",
            ),
            (
                "SET standard_conforming_strings = 1",
                "SET standard_conforming_strings = 0",
            ),
            (
                "SELECT set_config('search_path', 'public', false) AS reading_b",
                "SELECT set_config('standard_conforming_strings', 'off', false) AS reading_b",
            ),
        ] {
            for _ in 0..2 {
                assert_ne!(classify(safe)[0].class, C::Unknown, "{safe}");
            }
            assert_eq!(classify(unsafe_)[0].class, C::Unknown, "{unsafe_}");
        }
    }

    #[test]
    fn reported_values() {
        assert!(reported_value_is_safe("client_encoding", "UTF8"));
        assert!(!reported_value_is_safe("client_encoding", "LATIN1"));
        assert!(reported_value_is_safe("standard_conforming_strings", "on"));
        assert!(!reported_value_is_safe(
            "standard_conforming_strings",
            "off"
        ));
        assert!(reported_value_is_safe("DateStyle", "ISO, MDY"));
    }
}
