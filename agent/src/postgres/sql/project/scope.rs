//! Name resolution: the `FROM` items of each query level, what a column or whole-row reference
//! resolves to, and the collector that gathers every reference inside an expression.

use std::cell::Cell;
use std::convert::Infallible;
use std::ops::ControlFlow;

use sqlparser::ast::{
    AccessExpr, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    NamedWindowDefinition, ObjectName, Query, Visit, Visitor, WindowType,
};

use super::super::names;
use super::query;
use super::refs::{Kind, Out, Refs, merged};

/// One query level: its `FROM` items, the CTEs its `WITH` defines, its named windows.
pub(super) struct Ctx<'a> {
    parent: Option<&'a Ctx<'a>>,
    /// `FROM` items, in order.
    pub sources: Vec<Source>,
    /// CTEs by name, with their output (`None` while a recursive one is being defined, or when
    /// its body has no result).
    pub ctes: Vec<(String, Option<Vec<Out>>)>,
    /// `WINDOW w AS (...)` definitions of this `SELECT`.
    pub windows: &'a [NamedWindowDefinition],
    /// The derived tables among `sources`, walked already (the collector skips them).
    pub derived: Vec<&'a Query>,
    /// Query walks left for the whole statement (shared by every level).
    budget: &'a Cell<usize>,
}

impl<'a> Ctx<'a> {
    pub fn root(budget: &'a Cell<usize>) -> Self {
        Ctx {
            parent: None,
            sources: Vec::new(),
            ctes: Vec::new(),
            windows: &[],
            derived: Vec::new(),
            budget,
        }
    }

    pub fn child(&'a self) -> Ctx<'a> {
        Ctx {
            parent: Some(self),
            ..Ctx::root(self.budget)
        }
    }

    /// Takes one query walk from the budget; `false` once it is spent.
    pub fn spend(&self) -> bool {
        let left = self.budget.get();
        self.budget.set(left.saturating_sub(1));
        left > 0
    }

    fn levels(&self) -> impl Iterator<Item = &Ctx<'a>> {
        std::iter::successors(Some(self), |ctx| ctx.parent)
    }

    /// The CTE `name` in scope: `Some(None)` when it is known to exist but its output is not.
    pub fn cte(&self, name: &str) -> Option<Option<&[Out]>> {
        self.levels()
            .flat_map(|level| level.ctes.iter())
            .find(|(cte, _)| cte == name)
            .map(|(_, outs)| outs.as_deref())
    }

    /// The `FROM` item named `qualifier`, innermost level first.
    pub fn find(&self, qualifier: &str) -> Option<&Source> {
        self.levels().find_map(|level| {
            level
                .sources
                .iter()
                .find(|s| s.names.iter().any(|n| n == qualifier))
        })
    }

    /// What the (possibly qualified) identifier chain `parts` refers to.
    pub fn resolve(&self, parts: &[Ident]) -> Resolved {
        let parts: Vec<String> = parts.iter().map(names::ident).collect();
        match parts.as_slice() {
            [] => Resolved::plain(Refs::default()),
            [name] => match self.find(name) {
                // A bare item name used as a value is its whole row.
                Some(source) => Resolved {
                    plain: false,
                    refs: source.whole_row(),
                },
                None => self.unqualified(name),
            },
            [first, .., name] => {
                let qualifier = parts[..parts.len() - 1].join(".");
                if let Some(source) = self.find(&qualifier) {
                    return source.column(name, true);
                }
                if let [_, column, _, ..] = parts.as_slice()
                    && let Some(source) = self.find(first)
                {
                    // `t.composite_column.field`: a field of a column, computed.
                    let mut resolved = source.column(column, true);
                    resolved.plain = false;
                    return resolved;
                }
                let mut refs = Refs::default();
                refs.column(name.clone());
                Resolved::plain(refs)
            }
        }
    }

    /// An unqualified column name: the name itself, and whatever a derived table, CTE or
    /// function in scope that may supply it computes it from.
    fn unqualified(&self, name: &str) -> Resolved {
        let mut resolved = Resolved::plain(Refs::default());
        resolved.refs.column(name);
        for source in self.levels().flat_map(|level| level.sources.iter()) {
            if let Some(found) = source.supplies(name) {
                resolved.plain &= found.plain;
                resolved.refs.merge(&found.refs);
            }
        }
        resolved
    }

    /// The whole row `t.*` (or `t` as a value) stands for.
    pub fn whole_row_named(&self, name: &ObjectName) -> Refs {
        let qualifier = names::object(name);
        match self.find(&qualifier) {
            Some(source) => source.whole_row(),
            None => {
                let mut refs = Refs::default();
                refs.whole_row(qualifier);
                refs
            }
        }
    }
}

/// A resolved reference.
pub(super) struct Resolved {
    /// A plain column: the server reports its table and column number.
    pub plain: bool,
    /// What it is computed from.
    pub refs: Refs,
}

impl Resolved {
    fn plain(refs: Refs) -> Self {
        Resolved { plain: true, refs }
    }
}

/// A `FROM` item.
pub(super) struct Source {
    /// The names that qualify its columns: its alias; else a table's unqualified and qualified
    /// names, or a function's name.
    pub names: Vec<String>,
    /// What it is.
    pub kind: SourceKind,
}

/// What a `FROM` item is.
pub(super) enum SourceKind {
    /// A table (or view), normalized as written.
    Table(String),
    /// A derived table, a CTE reference or an aliased join, with its output columns.
    Derived(Vec<Out>),
    /// A function or other row source whose rows are computed.
    Function(FnSource),
}

/// A function (or other computed row source) in `FROM`.
pub(super) struct FnSource {
    /// References in its arguments.
    pub refs: Refs,
    /// Its output column names, when known.
    pub columns: Option<Vec<String>>,
    /// A built-in whose output is computed from its arguments only (`unnest`, `json_each`, ...);
    /// any other function may read tables of its own.
    pub builtin: bool,
    /// The name reported for a whole-row reference to it.
    pub label: String,
}

impl FnSource {
    fn output(&self) -> Refs {
        let mut refs = self.refs.clone();
        refs.opaque |= !self.builtin;
        refs
    }
}

impl Source {
    /// What the row as a value is computed from.
    pub fn whole_row(&self) -> Refs {
        match &self.kind {
            SourceKind::Table(table) => {
                let mut refs = Refs::default();
                refs.whole_row(table.clone());
                refs
            }
            SourceKind::Derived(outs) => merged(outs),
            SourceKind::Function(function) => {
                let mut refs = function.output();
                if !function.builtin {
                    // Its columns are unknown: report it, the mask decision fails closed.
                    refs.whole_row(function.label.clone());
                }
                refs
            }
        }
    }

    /// Column `name` of this item, named explicitly (`t.name`).
    pub fn column(&self, name: &str, qualified: bool) -> Resolved {
        let mut resolved = Resolved::plain(Refs::default());
        resolved.refs.column(name);
        match &self.kind {
            SourceKind::Table(_) => {}
            SourceKind::Derived(outs) => {
                if let Some(found) = derived_column(outs, name, qualified) {
                    resolved.plain = found.plain;
                    resolved.refs.merge(&found.refs);
                }
            }
            SourceKind::Function(function) => {
                resolved.plain = false;
                resolved.refs.merge(&function.output());
            }
        }
        resolved
    }

    /// What this item contributes to an unqualified reference to `name`, if it may supply it.
    fn supplies(&self, name: &str) -> Option<Resolved> {
        match &self.kind {
            SourceKind::Table(_) => None,
            SourceKind::Derived(outs) => derived_column(outs, name, false),
            SourceKind::Function(function) => {
                let supplies = match &function.columns {
                    Some(columns) => columns.iter().any(|c| c == name),
                    None => {
                        !function.refs.columns.is_empty() || !function.refs.whole_rows.is_empty()
                    }
                };
                supplies.then(|| Resolved {
                    plain: false,
                    refs: function.output(),
                })
            }
        }
    }
}

/// Column `name` of a derived table's outputs, `None` when none may supply it. A miss falls back
/// on the outputs whose names are not known (and, for a qualified reference, which PostgreSQL
/// would reject if the names here were right, on every computed output): fail closed.
fn derived_column(outs: &[Out], name: &str, qualified: bool) -> Option<Resolved> {
    let hits: Vec<&Out> = outs
        .iter()
        .filter(|o| o.name.as_deref() == Some(name))
        .collect();
    let hits = if hits.is_empty() {
        outs.iter()
            .filter(|o| match o.kind {
                Kind::ExprStar => true,
                Kind::Expr => qualified || o.name.is_none(),
                Kind::Column => o.name.is_none(),
                Kind::Star => false,
            })
            .collect()
    } else {
        hits
    };
    if hits.is_empty() {
        return None;
    }
    let mut resolved = Resolved::plain(Refs::default());
    for out in hits {
        resolved.plain &= out.kind == Kind::Column;
        resolved.refs.merge(&out.refs);
    }
    Some(resolved)
}

/// Every reference inside `node` (an expression, a clause), resolved in `ctx`; nested queries
/// count whole (any column they reference anywhere).
pub(super) fn refs_of<V: Visit + ?Sized>(ctx: &Ctx<'_>, node: &V) -> Refs {
    let mut collector = Collector::new(ctx);
    let _ = node.visit(&mut collector);
    collector.finish()
}

/// Gathers references at one query level; nested queries are handed to
/// [`query::query_refs`] and their insides skipped.
pub(super) struct Collector<'c> {
    ctx: &'c Ctx<'c>,
    pub refs: Refs,
    depth: usize,
    /// The subquery of an `EXISTS` just seen: its select list carries no data.
    exists: *const Query,
    /// An identifier already resolved as the root of a field selection.
    skip: *const Expr,
    /// A window function named a `WINDOW` definition.
    named_window: bool,
}

impl<'c> Collector<'c> {
    pub fn new(ctx: &'c Ctx<'c>) -> Self {
        Collector {
            ctx,
            refs: Refs::default(),
            depth: 0,
            exists: std::ptr::null(),
            skip: std::ptr::null(),
            named_window: false,
        }
    }

    pub fn finish(mut self) -> Refs {
        if self.named_window {
            self.named_window = false;
            let windows = self.ctx.windows;
            for window in windows {
                let _ = window.visit(&mut self);
            }
        }
        self.refs.dedup();
        self.refs
    }
}

impl Visitor for Collector<'_> {
    type Break = Infallible;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Self::Break> {
        if self.depth == 0 && !self.ctx.derived.iter().any(|d| std::ptr::eq(*d, query)) {
            let exists = std::ptr::eq(self.exists, query);
            let refs = query::query_refs(self.ctx, query, exists);
            self.refs.merge(&refs);
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<Self::Break> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Self::Break> {
        if self.depth > 0 || std::ptr::eq(self.skip, expr) {
            return ControlFlow::Continue(());
        }
        match expr {
            Expr::Identifier(id) => {
                let resolved = self.ctx.resolve(std::slice::from_ref(id));
                self.refs.merge(&resolved.refs);
            }
            Expr::CompoundIdentifier(ids) => {
                let resolved = self.ctx.resolve(ids);
                self.refs.merge(&resolved.refs);
            }
            Expr::QualifiedWildcard(name, _) => {
                let refs = self.ctx.whole_row_named(name);
                self.refs.merge(&refs);
            }
            // `(t).col`: column `col` of item `t`, not its whole row.
            Expr::CompoundFieldAccess { root, access_chain } => {
                let mut inner = root.as_ref();
                while let Expr::Nested(nested) = inner {
                    inner = nested;
                }
                if let Expr::Identifier(id) = inner
                    && let Some(AccessExpr::Dot(Expr::Identifier(field))) = access_chain.first()
                    && let Some(source) = self.ctx.find(&names::ident(id))
                {
                    let resolved = source.column(&names::ident(field), true);
                    self.refs.merge(&resolved.refs);
                    self.skip = inner;
                }
            }
            Expr::Function(function) => {
                if let FunctionArguments::List(list) = &function.args {
                    for arg in &list.args {
                        let (FunctionArg::Unnamed(arg)
                        | FunctionArg::Named { arg, .. }
                        | FunctionArg::ExprNamed { arg, .. }) = arg;
                        if let FunctionArgExpr::QualifiedWildcard(name) = arg {
                            let refs = self.ctx.whole_row_named(name);
                            self.refs.merge(&refs);
                        }
                    }
                }
                if matches!(function.over, Some(WindowType::NamedWindow(_))) {
                    self.named_window = true;
                }
                if let Some(WindowType::WindowSpec(spec)) = &function.over
                    && spec.window_name.is_some()
                {
                    self.named_window = true;
                }
            }
            Expr::Exists { subquery, .. } => self.exists = subquery.as_ref(),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
