//! Normalized object names, as PostgreSQL resolves identifiers.
//!
//! An unquoted identifier folds to lower case (ASCII only, as PostgreSQL does in UTF-8); a quoted
//! one keeps its case and loses its quotes. A part that would be ambiguous once joined (it
//! contains `.` or `"`) stays quoted, with `"` doubled. Parts join with `.`:
//! `Public."MyTable"` becomes `public.MyTable`.

use std::borrow::Cow;

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart, TableAlias};

use super::session_names::MAX_NAME_LEN;

/// Leads the name of an identifier sqlparser read from a single-quoted string (`DROP TABLE 'x'`,
/// `SET 'role' = ...`). PostgreSQL rejects a string in a name's place, so such a statement is
/// Unknown (fail closed): its "name" is a literal value, which must never decide a class or a
/// table list (the classification memos rely on that). NUL cannot occur in a real name.
pub(crate) const STRING_NAME: char = '\0';

/// Whether `name` holds a part sqlparser read from a single-quoted string.
pub(crate) fn has_string_part(name: &str) -> bool {
    name.contains(STRING_NAME)
}

/// One identifier, normalized, and cut as PostgreSQL's scanner cuts a longer one, quoted or not
/// (to [`MAX_NAME_LEN`] bytes at a character boundary, as `pg_mbcliplen` does in a UTF-8
/// database): `SELECT * FROM <63 bytes>_anything` reads the table of the first 63.
pub(crate) fn ident(id: &Ident) -> String {
    let value = &id.value[..id.value.floor_char_boundary(MAX_NAME_LEN)];
    match id.quote_style {
        None => value.to_ascii_lowercase(),
        Some('\'') => format!("{STRING_NAME}{}", id.value),
        Some(_) if value.contains(['.', '"']) => {
            format!("\"{}\"", value.replace('"', "\"\""))
        }
        Some(_) => value.to_owned(),
    }
}

/// A possibly qualified name, normalized: `schema.table`.
pub(crate) fn object(name: &ObjectName) -> String {
    let mut out = String::new();
    for (i, part) in name.0.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        match part {
            ObjectNamePart::Identifier(id) => out.push_str(&ident(id)),
            // Not PostgreSQL syntax; keep the text so nothing is silently dropped.
            ObjectNamePart::Function(func) => out.push_str(&func.to_string()),
        }
    }
    out
}

/// The table a `FROM`/target item names, and whether the name is unqualified (so it may be a
/// CTE).
///
/// sqlparser 0.63 reads `ONLY t` in `UPDATE ONLY t`, `DELETE FROM ONLY t` and `FROM ONLY t` as
/// a table named `ONLY` aliased `t`. `ONLY` is reserved in PostgreSQL, so an unquoted table of
/// that name cannot exist: the alias is the real table.
pub(crate) fn relation(name: &ObjectName, alias: Option<&TableAlias>) -> (String, bool) {
    match only_alias(name, alias) {
        Some(table) => (ident(table), true),
        None => (object(name), name.0.len() == 1),
    }
}

/// The real table when `name alias` is sqlparser's reading of `ONLY table` (see [`relation`]).
pub(crate) fn only_alias<'a>(
    name: &ObjectName,
    alias: Option<&'a TableAlias>,
) -> Option<&'a Ident> {
    if let [ObjectNamePart::Identifier(id)] = name.0.as_slice()
        && id.quote_style.is_none()
        && id.value.eq_ignore_ascii_case("only")
        && let Some(alias) = alias
        && !alias.explicit
        && alias.columns.is_empty()
    {
        return Some(&alias.name);
    }
    None
}

/// The last part of a possibly qualified name, normalized: `s.T` gives `t`.
pub(crate) fn last(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(id)) => ident(id),
        Some(ObjectNamePart::Function(func)) => func.to_string(),
        None => String::new(),
    }
}

/// The last part of a name normalized as [`object`] writes it, unquoted: `s."my.table"` gives
/// `my.table`, `public.T` gives `T` (the case is the normalized name's).
pub fn last_part(name: &str) -> Cow<'_, str> {
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in name.char_indices() {
        match c {
            // A doubled `"` inside a quoted part toggles twice: still quoted.
            '"' => quoted = !quoted,
            '.' if !quoted => start = i + 1,
            _ => {}
        }
    }
    let part = &name[start..];
    match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
        Some(inner) if inner.contains("\"\"") => Cow::Owned(inner.replace("\"\"", "\"")),
        Some(inner) => Cow::Borrowed(inner),
        None => Cow::Borrowed(part),
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::ast::{Ident, ObjectName};

    use super::{ident, last_part, object};

    /// Found in review: a table named by 63 bytes and more was looked up whole, while the
    /// server reads the first 63 (and so returned a row whose card column the catalog knew).
    #[test]
    fn identifiers_are_cut_at_63_bytes_as_postgres_cuts_them() {
        let long = format!("{}_anything", "c".repeat(63));
        assert_eq!(ident(&Ident::new(long.to_uppercase())), "c".repeat(63));
        assert_eq!(ident(&Ident::with_quote('"', long)), "c".repeat(63));
        // Cut at a character boundary: 62 ASCII bytes, then a two-byte character.
        let wide = format!("{}é", "c".repeat(62));
        assert_eq!(ident(&Ident::with_quote('"', wide)), "c".repeat(62));
        let dotted = format!("{}.x", "d".repeat(62));
        assert_eq!(
            ident(&Ident::with_quote('"', dotted)),
            format!("\"{}.\"", "d".repeat(62))
        );
    }

    #[test]
    fn the_last_part_of_a_normalized_name_is_unquoted() {
        for (name, part) in [
            ("customers", "customers"),
            ("public.customers", "customers"),
            ("Customers", "Customers"),
            ("\"my.table\"", "my.table"),
            ("s.\"my.table\"", "my.table"),
            ("\"a.b\".\"c.d\"", "c.d"),
            ("\"say \"\"hi.\"\"\"", "say \"hi.\""),
            ("db.s.t", "t"),
        ] {
            assert_eq!(last_part(name), part, "{name}");
        }
    }

    #[test]
    fn identifiers_fold_like_postgres() {
        let cases = [
            (Ident::new("Accounts"), "accounts"),
            (Ident::with_quote('"', "Accounts"), "Accounts"),
            (Ident::with_quote('"', "accounts"), "accounts"),
            (Ident::with_quote('"', "a.b"), "\"a.b\""),
            (Ident::with_quote('"', "say \"hi\""), "\"say \"\"hi\"\"\""),
            // PostgreSQL folds only ASCII letters in UTF-8 databases.
            (Ident::new("ÉTÉ"), "ÉtÉ"),
        ];
        for (id, want) in &cases {
            assert_eq!(ident(id), *want, "{id:?}");
        }
    }

    #[test]
    fn qualified_names_join_with_dots() {
        let name = ObjectName::from(vec![Ident::new("Public"), Ident::with_quote('"', "My Tab")]);
        assert_eq!(object(&name), "public.My Tab");
    }
}
