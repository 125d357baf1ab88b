//! The `FROM` list of a query level: tables, CTE references, derived tables, functions and
//! joins, as [`Source`]s, and what `*` expands each of them to.

use sqlparser::ast::{
    FunctionArg, JoinConstraint, JoinOperator, ObjectName, TableAlias, TableFactor, TableWithJoins,
};

use super::super::names;
use super::query::query;
use super::refs::{Kind, Out, Refs, merged};
use super::scope::{Ctx, FnSource, Source, SourceKind, refs_of};

/// Built-in set-returning functions whose rows are computed from their arguments only, with
/// their output columns (`None`: one column, named by the alias, else by the function).
const BUILTINS: &[(&str, Option<&[&str]>)] = &[
    ("unnest", None),
    ("generate_series", None),
    ("generate_subscripts", None),
    ("regexp_matches", None),
    ("regexp_split_to_table", None),
    ("string_to_table", None),
    ("json_object_keys", None),
    ("jsonb_object_keys", None),
    ("jsonb_path_query", None),
    ("json_array_elements", Some(&["value"])),
    ("json_array_elements_text", Some(&["value"])),
    ("jsonb_array_elements", Some(&["value"])),
    ("jsonb_array_elements_text", Some(&["value"])),
    ("json_each", Some(&["key", "value"])),
    ("json_each_text", Some(&["key", "value"])),
    ("jsonb_each", Some(&["key", "value"])),
    ("jsonb_each_text", Some(&["key", "value"])),
];

/// Adjacent stars over base tables are one run of plain columns.
pub(super) fn merge_stars(outs: Vec<Out>) -> Vec<Out> {
    let mut merged: Vec<Out> = Vec::with_capacity(outs.len());
    for out in outs {
        match merged.last_mut() {
            Some(last) if last.kind == Kind::Star && out.kind == Kind::Star => {
                last.refs.merge(&out.refs);
                last.refs.dedup();
            }
            _ => merged.push(out),
        }
    }
    merged
}

impl Source {
    /// The outputs `*` expands this item to.
    pub(super) fn expand(&self) -> Vec<Out> {
        match &self.kind {
            SourceKind::Table(_) => vec![Out::new(None, Kind::Star, self.whole_row())],
            SourceKind::Derived(outs) => outs.clone(),
            SourceKind::Function(function) => {
                let mut refs = function.refs.clone();
                refs.opaque |= !function.builtin;
                vec![Out::new(None, Kind::ExprStar, refs)]
            }
        }
    }
}

/// Adds the items of a `FROM` list to `level`, left to right (a `LATERAL` item sees the ones
/// before it). Returns whether a join merges columns (`USING`, `NATURAL`).
pub(super) fn add_from<'a>(level: &mut Ctx<'a>, from: &'a [TableWithJoins]) -> bool {
    let mut merges = false;
    for table in from {
        merges |= add_factor(level, &table.relation);
        for join in &table.joins {
            merges |= merges_columns(&join.join_operator);
            merges |= add_factor(level, &join.relation);
        }
    }
    merges
}

fn add_factor<'a>(level: &mut Ctx<'a>, factor: &'a TableFactor) -> bool {
    let source = match factor {
        TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => relation(level, name, alias.as_ref()),
        TableFactor::Table {
            name,
            alias,
            args: Some(args),
            with_ordinality,
            ..
        } => function(level, name, &args.args, alias.as_ref(), *with_ordinality),
        TableFactor::Function {
            name,
            args,
            alias,
            with_ordinality,
            ..
        } => function(level, name, args, alias.as_ref(), *with_ordinality),
        TableFactor::Derived {
            subquery, alias, ..
        } => {
            let outs = query(level, subquery);
            level.derived.push(subquery);
            let names: Vec<String> = alias.iter().map(|a| names::ident(&a.name)).collect();
            match outs {
                Some(mut outs) => {
                    rename(&mut outs, alias.as_ref());
                    Source {
                        names,
                        kind: SourceKind::Derived(outs),
                    }
                }
                None => unknown(names, "?derived?", Refs::default(), false),
            }
        }
        TableFactor::NestedJoin {
            table_with_joins,
            alias,
        } => {
            let first = level.sources.len();
            let merges = add_from(level, std::slice::from_ref(table_with_joins));
            if let Some(alias) = alias {
                let mut outs: Vec<Out> = level.sources[first..]
                    .iter()
                    .flat_map(Source::expand)
                    .collect();
                if merges && outs.iter().any(|o| o.kind != Kind::Star) {
                    outs = vec![Out::new(None, Kind::ExprStar, merged(&outs))];
                }
                rename(&mut outs, Some(alias));
                level.sources.push(Source {
                    names: vec![names::ident(&alias.name)],
                    kind: SourceKind::Derived(merge_stars(outs)),
                });
            }
            return merges;
        }
        other => {
            // `UNNEST(...)`, `XMLTABLE(...)`, `JSON_TABLE(...)` compute rows from their
            // arguments; anything else is not PostgreSQL and unknown.
            let builtin = matches!(
                other,
                TableFactor::UNNEST { .. }
                    | TableFactor::XmlTable { .. }
                    | TableFactor::JsonTable { .. }
            );
            let alias = factor_alias(other);
            let names: Vec<String> = alias.iter().map(|a| names::ident(&a.name)).collect();
            let label = names
                .first()
                .cloned()
                .unwrap_or_else(|| "?function?".into());
            unknown(names, &label, refs_of(level, other), builtin)
        }
    };
    level.sources.push(source);
    false
}

/// A table, or a CTE when the name is unqualified and one is in scope.
fn relation(ctx: &Ctx<'_>, name: &ObjectName, alias: Option<&TableAlias>) -> Source {
    let (table, alias, unqualified) = match names::only_alias(name, alias) {
        Some(real) => (names::ident(real), None, true),
        None => (names::object(name), alias, name.0.len() == 1),
    };
    let names = match alias {
        Some(alias) => vec![names::ident(&alias.name)],
        None if unqualified => vec![table.clone()],
        None => visible_names(name, &table),
    };
    match unqualified.then(|| ctx.cte(&table)).flatten() {
        Some(Some(outs)) => {
            let mut outs = outs.to_vec();
            rename(&mut outs, alias);
            Source {
                names,
                kind: SourceKind::Derived(outs),
            }
        }
        // A recursive CTE referring to itself, or one without a result.
        Some(None) => unknown(names, &table, Refs::default(), false),
        None => Source {
            names,
            kind: SourceKind::Table(table),
        },
    }
}

/// How an unaliased table is referred to: by its unqualified and its qualified name.
pub(super) fn visible_names(name: &ObjectName, table: &str) -> Vec<String> {
    let last = names::last(name);
    if last == table {
        vec![last]
    } else {
        vec![last, table.to_owned()]
    }
}

/// A function in `FROM`.
fn function(
    ctx: &Ctx<'_>,
    name: &ObjectName,
    args: &[FunctionArg],
    alias: Option<&TableAlias>,
    with_ordinality: bool,
) -> Source {
    let function = names::last(name);
    let qualifier = names::object(name);
    let builtin = BUILTINS
        .iter()
        .find(|(f, _)| *f == function)
        .filter(|_| qualifier == function || qualifier == format!("pg_catalog.{function}"));
    let label = alias.map_or_else(|| function.clone(), |a| names::ident(&a.name));
    let mut columns: Option<Vec<String>> = match builtin {
        Some((_, Some(columns))) => Some(columns.iter().map(|c| (*c).to_owned()).collect()),
        Some((_, None)) => Some(vec![label.clone()]),
        None => None,
    };
    if let Some(alias) = alias
        && !alias.columns.is_empty()
    {
        let named = alias.columns.iter().map(|c| names::ident(&c.name));
        columns.get_or_insert_with(Vec::new).extend(named);
    }
    if with_ordinality && let Some(columns) = &mut columns {
        columns.push("ordinality".into());
    }
    let mut refs = Refs::default();
    for arg in args {
        refs.merge(&refs_of(ctx, arg));
    }
    refs.dedup();
    Source {
        names: vec![label.clone()],
        kind: SourceKind::Function(FnSource {
            refs,
            columns,
            builtin: builtin.is_some(),
            label,
        }),
    }
}

fn unknown(names: Vec<String>, label: &str, refs: Refs, builtin: bool) -> Source {
    Source {
        names,
        kind: SourceKind::Function(FnSource {
            refs,
            columns: None,
            builtin,
            label: label.to_owned(),
        }),
    }
}

fn factor_alias(factor: &TableFactor) -> Option<&TableAlias> {
    match factor {
        TableFactor::Table { alias, .. }
        | TableFactor::Derived { alias, .. }
        | TableFactor::TableFunction { alias, .. }
        | TableFactor::Function { alias, .. }
        | TableFactor::UNNEST { alias, .. }
        | TableFactor::JsonTable { alias, .. }
        | TableFactor::OpenJsonTable { alias, .. }
        | TableFactor::NestedJoin { alias, .. }
        | TableFactor::Pivot { alias, .. }
        | TableFactor::Unpivot { alias, .. }
        | TableFactor::MatchRecognize { alias, .. }
        | TableFactor::XmlTable { alias, .. }
        | TableFactor::SemanticView { alias, .. } => alias.as_ref(),
        _ => None,
    }
}

/// Applies a `name(a, b, ...)` alias's column names to `outs`. Positions from the first star on
/// cannot be matched to names: a star the renaming reaches loses its plain columns' names (an
/// `ExprStar` over the same tables, so that references to it fail closed).
pub(super) fn rename(outs: &mut [Out], alias: Option<&TableAlias>) {
    let Some(alias) = alias else {
        return;
    };
    if alias.columns.is_empty() {
        return;
    }
    let first_star = outs
        .iter()
        .position(|o| o.kind.is_star())
        .unwrap_or(outs.len());
    for (out, column) in outs.iter_mut().zip(&alias.columns).take(first_star) {
        out.name = Some(names::ident(&column.name));
    }
    if alias.columns.len() > first_star {
        for out in &mut outs[first_star..] {
            out.name = None;
            if out.kind == Kind::Star {
                out.kind = Kind::ExprStar;
            }
        }
    }
}

fn merges_columns(op: &JoinOperator) -> bool {
    let constraint = match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c)
        | JoinOperator::StraightJoin(c)
        | JoinOperator::AsOf { constraint: c, .. } => c,
        _ => return false,
    };
    matches!(
        constraint,
        JoinConstraint::Using(_) | JoinConstraint::Natural
    )
}
