//! Walking queries for their output columns: `WITH`, set operations, `SELECT` lists over their
//! `FROM` items, `VALUES`, and `RETURNING`.

use std::cell::Cell;

use sqlparser::ast::{
    Cte, Delete, Expr, FromTable, Ident, Insert, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableObject, Update, UpdateTableFromKind,
    Values, Visit,
};

use super::super::names;
use super::colname;
use super::from::{add_from, merge_stars, rename, visible_names};
use super::refs::{Kind, Out, Refs, merged};
use super::scope::{Collector, Ctx, Source, SourceKind, refs_of};

/// How many queries (and CTE passes) one statement may walk. Each query is walked once, except
/// in `WITH RECURSIVE` lists, which are walked to a fixed point: this bounds nested ones.
const WALK_BUDGET: usize = 20_000;

/// The output columns of a statement that returns rows; `None` for any other statement, and
/// when the walk budget runs out.
pub(super) fn statement(stmt: &Statement) -> Option<Vec<Out>> {
    let budget = Cell::new(WALK_BUDGET);
    let outs = outputs(&Ctx::root(&budget), stmt);
    outs.filter(|_| budget.get() > 0)
}

fn outputs<'a>(root: &'a Ctx<'a>, stmt: &'a Statement) -> Option<Vec<Out>> {
    match stmt {
        Statement::Query(query) => {
            if let SetExpr::Select(select) = query.body.as_ref()
                && select.into.is_some()
            {
                // `SELECT ... INTO t` creates a table and returns no rows.
                return None;
            }
            self::query(root, query)
        }
        other => dml(root, other),
    }
}

/// The output columns of `query`.
pub(super) fn query<'a>(ctx: &'a Ctx<'a>, query: &'a Query) -> Option<Vec<Out>> {
    if !ctx.spend() {
        return None;
    }
    let level = with_ctes(ctx, query)?;
    set_expr(&level, &query.body)
}

/// Passes over a `WITH RECURSIVE` list before giving up on a fixed point.
const RECURSIVE_PASSES: usize = 8;

/// A level holding the CTEs of `query`'s `WITH`. A CTE sees the ones before it. With
/// `RECURSIVE` it sees all of them, itself included: the list is walked again, each pass with
/// the outputs of the one before (the first with every CTE unknown), until nothing changes;
/// `None` if that takes more than [`RECURSIVE_PASSES`] passes.
fn with_ctes<'a>(ctx: &'a Ctx<'a>, query: &'a Query) -> Option<Ctx<'a>> {
    let mut level = ctx.child();
    let Some(with) = &query.with else {
        return Some(level);
    };
    let walk = |level: &Ctx<'_>, cte: &Cte| {
        self::query(level, &cte.query).map(|mut outs| {
            rename(&mut outs, Some(&cte.alias));
            outs
        })
    };
    if !with.recursive {
        for cte in &with.cte_tables {
            let outs = walk(&level, cte);
            level.ctes.push((names::ident(&cte.alias.name), outs));
        }
        return Some(level);
    }
    level.ctes = with
        .cte_tables
        .iter()
        .map(|cte| (names::ident(&cte.alias.name), None))
        .collect();
    for _ in 0..RECURSIVE_PASSES {
        let next: Vec<Option<Vec<Out>>> = with
            .cte_tables
            .iter()
            .map(|cte| walk(&level, cte))
            .collect();
        let mut changed = false;
        for ((_, outs), new) in level.ctes.iter_mut().zip(next) {
            changed |= *outs != new;
            *outs = new;
        }
        if !changed {
            return Some(level);
        }
    }
    None
}

fn set_expr<'a>(ctx: &'a Ctx<'a>, body: &'a SetExpr) -> Option<Vec<Out>> {
    // Set operations nest to the left without bound: loop down the left spine.
    let mut rights = Vec::new();
    let mut node = body;
    while let SetExpr::SetOperation { left, right, .. } = node {
        rights.push(right.as_ref());
        node = left;
    }
    let first = operand(ctx, node)?;
    if rights.is_empty() {
        return Some(first);
    }
    let mut all = vec![first];
    for right in rights.into_iter().rev() {
        all.push(set_expr(ctx, right)?);
    }
    Some(per_position(all))
}

fn operand<'a>(ctx: &'a Ctx<'a>, body: &'a SetExpr) -> Option<Vec<Out>> {
    match body {
        SetExpr::Select(select) => Some(self::select(ctx, select)),
        SetExpr::Query(query) => self::query(ctx, query),
        SetExpr::Values(values) => Some(self::values(ctx, values)),
        SetExpr::Insert(stmt) | SetExpr::Update(stmt) | SetExpr::Delete(stmt) => dml(ctx, stmt),
        // `TABLE name` (its quoting is lost), `MERGE`, and a set operation (not an operand).
        SetExpr::Table(_) | SetExpr::Merge(_) | SetExpr::SetOperation { .. } => None,
    }
}

/// The result of a set operation (or of `VALUES` rows): each position is computed from that
/// position of every operand. When a `*` makes positions unknown, one `ExprStar` holds all.
fn per_position(operands: Vec<Vec<Out>>) -> Vec<Out> {
    let width = operands.first().map_or(0, Vec::len);
    let aligned = operands
        .iter()
        .all(|outs| outs.len() == width && outs.iter().all(|o| !o.kind.is_star()));
    if !aligned {
        let all: Vec<Out> = operands.into_iter().flatten().collect();
        return vec![Out::new(None, Kind::ExprStar, merged(&all))];
    }
    (0..width)
        .map(|i| {
            let mut refs = Refs::default();
            for outs in &operands {
                refs.merge(&outs[i].refs);
            }
            Out::new(operands[0][i].name.clone(), Kind::Expr, refs)
        })
        .collect()
}

fn values<'a>(ctx: &'a Ctx<'a>, values: &'a Values) -> Vec<Out> {
    let rows: Vec<Vec<Out>> = values
        .rows
        .iter()
        .map(|row| {
            row.content
                .iter()
                .enumerate()
                .map(|(i, expr)| {
                    let name = format!("column{}", i + 1);
                    Out::new(Some(name), Kind::Expr, refs_of(ctx, expr))
                })
                .collect()
        })
        .collect();
    match rows.len() {
        1 => rows.into_iter().flatten().collect(),
        _ => per_position(rows),
    }
}

fn select<'a>(ctx: &'a Ctx<'a>, select: &'a Select) -> Vec<Out> {
    let mut level = ctx.child();
    level.windows = &select.named_window;
    let merges = add_from(&mut level, &select.from);
    items(&level, &select.projection, merges)
}

/// `RETURNING` of an `INSERT`/`UPDATE`/`DELETE`; `None` without one.
fn dml<'a>(ctx: &'a Ctx<'a>, stmt: &'a Statement) -> Option<Vec<Out>> {
    let mut level = ctx.child();
    let (returning, merges) = match stmt {
        Statement::Insert(Insert {
            table,
            table_alias,
            returning,
            ..
        }) => {
            let TableObject::TableName(name) = table else {
                return None;
            };
            let table = names::object(name);
            let names = match table_alias {
                Some(alias) => vec![names::ident(&alias.alias)],
                None => visible_names(name, &table),
            };
            level.sources.push(Source {
                names,
                kind: SourceKind::Table(table),
            });
            (returning.as_ref()?, false)
        }
        Statement::Update(Update {
            table,
            from,
            returning,
            ..
        }) => {
            let mut merges = add_from(&mut level, std::slice::from_ref(table));
            if let Some(
                UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from),
            ) = from
            {
                merges |= add_from(&mut level, from);
            }
            (returning.as_ref()?, merges)
        }
        Statement::Delete(Delete {
            from,
            using,
            returning,
            ..
        }) => {
            let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = from;
            let mut merges = add_from(&mut level, from);
            if let Some(using) = using {
                merges |= add_from(&mut level, using);
            }
            (returning.as_ref()?, merges)
        }
        _ => return None,
    };
    Some(items(&level, returning, merges))
}

/// The outputs of a select (or `RETURNING`) list. `merges`: a `USING`/`NATURAL` join reorders
/// the columns `*` expands to.
fn items(ctx: &Ctx<'_>, items: &[SelectItem], merges: bool) -> Vec<Out> {
    let mut outs = Vec::new();
    for item in items {
        match item {
            SelectItem::Wildcard(_) => {
                let expanded: Vec<Out> = ctx.sources.iter().flat_map(Source::expand).collect();
                if merges && expanded.iter().any(|o| o.kind != Kind::Star) {
                    outs.push(Out::new(None, Kind::ExprStar, merged(&expanded)));
                } else {
                    outs.extend(expanded);
                }
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), _) => {
                let qualifier = names::object(name);
                match ctx.find(&qualifier) {
                    Some(source) => outs.extend(source.expand()),
                    None => {
                        let mut refs = Refs::default();
                        refs.whole_row(qualifier);
                        outs.push(Out::new(None, Kind::Star, refs));
                    }
                }
            }
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::Expr(expr), _) => {
                outs.push(Out::new(None, Kind::ExprStar, refs_of(ctx, expr)));
            }
            SelectItem::UnnamedExpr(expr) => outs.push(item_out(ctx, expr, None)),
            SelectItem::ExprWithAlias { expr, alias } => {
                outs.push(item_out(ctx, expr, Some(alias)))
            }
            SelectItem::ExprWithAliases { expr, .. } => {
                outs.push(Out::new(None, Kind::Expr, refs_of(ctx, expr)));
            }
        }
    }
    merge_stars(outs)
}

fn item_out(ctx: &Ctx<'_>, expr: &Expr, alias: Option<&Ident>) -> Out {
    let name = alias.map(names::ident).or_else(|| colname::name(expr));
    let mut bare = expr;
    while let Expr::Nested(inner) = bare {
        bare = inner;
    }
    let resolved = match bare {
        Expr::Identifier(id) => Some(ctx.resolve(std::slice::from_ref(id))),
        Expr::CompoundIdentifier(ids) => Some(ctx.resolve(ids)),
        _ => None,
    };
    match resolved {
        Some(resolved) if resolved.plain => Out::new(name, Kind::Column, resolved.refs),
        Some(resolved) => Out::new(name, Kind::Expr, resolved.refs),
        None => Out::new(name, Kind::Expr, refs_of(ctx, expr)),
    }
}

/// Every reference anywhere in a nested query (an expression's subquery): its select list
/// (unless under `EXISTS`, where it carries no data), its clauses, and through its `FROM` items
/// the columns it refers to.
pub(super) fn query_refs<'a>(ctx: &'a Ctx<'a>, query: &'a Query, exists: bool) -> Refs {
    let mut refs = Refs::default();
    let level = ctx.spend().then(|| with_ctes(ctx, query)).flatten();
    let Some(level) = level else {
        // Out of budget, or a recursive WITH whose outputs did not settle: fail closed.
        refs.opaque = true;
        refs.whole_row("?with?");
        return refs;
    };
    set_refs(&level, &query.body, exists, &mut refs);
    refs.merge(&refs_of(&level, &query.order_by));
    refs.merge(&refs_of(&level, &query.limit_clause));
    refs.merge(&refs_of(&level, &query.fetch));
    refs.dedup();
    refs
}

fn set_refs<'a>(ctx: &'a Ctx<'a>, body: &'a SetExpr, exists: bool, refs: &mut Refs) {
    let mut rights = Vec::new();
    let mut node = body;
    while let SetExpr::SetOperation { left, right, .. } = node {
        rights.push(right.as_ref());
        node = left;
    }
    match node {
        SetExpr::Select(select) => refs.merge(&select_refs(ctx, select, exists)),
        SetExpr::Query(query) => refs.merge(&query_refs(ctx, query, exists)),
        SetExpr::Table(table) => {
            refs.whole_row(
                table
                    .table_name
                    .clone()
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
            );
        }
        other => refs.merge(&refs_of(ctx, other)),
    }
    for right in rights.into_iter().rev() {
        set_refs(ctx, right, exists, refs);
    }
}

fn select_refs<'a>(ctx: &'a Ctx<'a>, select: &'a Select, exists: bool) -> Refs {
    let mut level = ctx.child();
    level.windows = &select.named_window;
    let merges = add_from(&mut level, &select.from);
    let mut collector = Collector::new(&level);
    if exists {
        let _ = select.from.visit(&mut collector);
        let _ = select.selection.visit(&mut collector);
        let _ = select.group_by.visit(&mut collector);
        let _ = select.having.visit(&mut collector);
        let _ = select.qualify.visit(&mut collector);
        return collector.finish();
    }
    let _ = select.visit(&mut collector);
    let mut refs = collector.finish();
    for item in &select.projection {
        if matches!(
            item,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        ) {
            refs.merge(&merged(&items(&level, std::slice::from_ref(item), merges)));
        }
    }
    refs.dedup();
    refs
}
