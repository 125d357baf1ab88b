//! What each result column of a statement is computed from, so that masking by column name also
//! covers computed columns.
//!
//! The session learns each result column from RowDescription. A plain column reference (aliased,
//! or through derived tables and CTEs) comes with its table OID and column number, which the
//! session resolves through the catalog. A computed column (`upper(card_number)`,
//! `card_number || ''`, `to_json(customers)`, `string_agg(...)`, a scalar subquery, a `UNION`
//! column) comes with table OID 0 (a whole-row value with the table's OID and column number 0)
//! and a name of PostgreSQL's choosing, so it would escape a rule on `card_number`.
//! [`projection`] parses the statement and says, per output column, what it is computed from;
//! [`expr_needs_mask`] decides from that whether a computed column must be masked.
//!
//! # Approach
//!
//! - **Scopes as PostgreSQL builds them.** Each query level knows its `FROM` items (tables, CTE
//!   references, derived tables, functions, aliased joins; `LATERAL` items see the ones before
//!   them) and the CTEs in scope (a qualified name is never a CTE; `WITH RECURSIVE` sees all its
//!   CTEs). A reference resolves innermost level first, like a correlated subquery's.
//! - **Derived tables and CTEs are traced, not guessed.** Their output columns are computed once
//!   (name, plain or computed, references), so a reference to one through an outer query (`x.c`,
//!   `upper(c)`, `x.*`, `to_json(x)`) reports the output column's name *and* what it is computed
//!   from: `with w as (select upper(card_number) c from customers) select c || '' from w` gives
//!   `["c", "card_number"]`. An unaliased output column is named as PostgreSQL names it
//!   (`FigureColname`: the column, the function, `case`, `?column?`, ...); where that is not
//!   known for sure, a reference that matches no name falls back on every such column.
//! - **A computed column reports every column it references**, anywhere inside it: function
//!   arguments, `CASE` branches and conditions, casts, aggregates (their `FILTER`, `ORDER BY`),
//!   window specifications (named `WINDOW`s too), and subqueries whole (their `WHERE` included;
//!   the select list of an `EXISTS` is not data and is skipped). Names are lower-cased unless
//!   quoted, unqualified (`x.card_number` gives `card_number`).
//! - **Whole rows.** A bare item name used as a value (`select c from customers c`,
//!   `to_json(customers)`), `t.*` inside an expression (`row(t.*)`, `to_json(t.*)`) and `(t).f`
//!   for an item `t` are resolved to the table, normalized as the classifier normalizes tables
//!   (`public.t` stays qualified). A bare name that is both an item and a column is taken as the
//!   item (PostgreSQL prefers the column): the whole row is the stricter reading unless the
//!   column belongs to another item.
//! - **Set operations and `VALUES`**: each position is computed from that position of every
//!   operand (PostgreSQL reports table OID 0 for them, even for plain columns). When a `*` in an
//!   operand makes positions unknown, the result is one [`Projected::ExprStar`] over everything.
//! - **`*`** over base tables is [`Projected::Star`] (adjacent ones merge: any number of plain
//!   columns); over a derived table or CTE it expands to that item's columns, as PostgreSQL does;
//!   over a function it is an [`Projected::ExprStar`]. A `USING`/`NATURAL` join reorders the
//!   columns `*` expands to: if such a `*` covers computed columns, it is one `ExprStar`.
//! - **Functions in `FROM`.** Known built-ins (`unnest`, `generate_series`, `json_each`,
//!   `jsonb_array_elements`, ... unqualified or `pg_catalog.`) compute their rows from their
//!   arguments: their columns report the arguments' references. Any other function may read
//!   tables of its own: its columns are `opaque`, and a whole-row reference to it is reported by
//!   its alias in `whole_rows`, which [`expr_needs_mask`] treats as masked (fail closed).
//!
//! # Limits
//!
//! - Functions are not resolved: `select leak_cards()`, a view that computes a masked column
//!   under another name, or a function in `FROM` returning such columns under other names are not
//!   seen here (the view's or function's own column names still are, by the session's name rule).
//! - Only the text is known: a table's own columns are not. An unqualified name is reported as
//!   is, and also traced through every derived table, CTE or function in scope that may supply
//!   it.
//! - `TABLE name`, `MERGE`, `SELECT ... INTO`, `EXPLAIN`, `COPY`, `FETCH`, `EXECUTE`, `SHOW` and
//!   every other statement give `None`, as do strings holding more than one statement, and
//!   anything that does not parse.
//!
//! # Robustness
//!
//! Parsing goes through the classifier's guard (`run_guarded`): never a panic, big
//! statements on a large stack, oversized ones not parsed (`None`). Set-operation chains are
//! walked in a loop; other nesting is bounded by sqlparser's recursion limit. Every query node is
//! walked once, so the cost is linear in the statement.

mod colname;
mod from;
mod query;
mod refs;
mod scope;

use sqlparser::ast::Statement;

use super::{lex, run_guarded};
use refs::{Kind, Out, Refs};

/// What one output column (or a `*` run of them) of a statement's result is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projected {
    /// A plain column reference (possibly qualified, aliased, or through derived tables and CTEs
    /// whose column is itself plain): the session resolves it through RowDescription's table OID
    /// and column number.
    Column,
    /// `*` or `t.*` over base tables: any number of plain columns, resolved the same way.
    Star,
    /// A computed column.
    Expr {
        /// Every column name it references, lower-cased unless quoted, unqualified; for a
        /// reference to a derived table's or CTE's column, that output column's name and the
        /// columns it is computed from.
        columns: Vec<String>,
        /// Every table referenced as a whole row (a bare table name or alias used as a value,
        /// `t.*` inside an expression), normalized, schema-qualified if written so; and the
        /// alias of a non-built-in function in `FROM` referenced as a whole row.
        whole_rows: Vec<String>,
        /// It depends on the output of a source whose columns cannot be traced (a function in
        /// `FROM` that is not a known built-in, a recursive CTE being defined).
        opaque: bool,
    },
    /// Any number of computed columns, each computed from at most these references: `*` over a
    /// function in `FROM`, or a set operation whose operands hold a `*`.
    ExprStar {
        /// As [`Projected::Expr`]'s.
        columns: Vec<String>,
        /// As [`Projected::Expr`]'s; includes the tables of `*` runs of plain columns.
        whole_rows: Vec<String>,
        /// As [`Projected::Expr`]'s.
        opaque: bool,
    },
}

impl Projected {
    /// Stands for an unknown number of result columns.
    pub fn is_star(&self) -> bool {
        matches!(self, Projected::Star | Projected::ExprStar { .. })
    }

    fn from_out(out: Out) -> Self {
        let Refs {
            columns,
            whole_rows,
            opaque,
        } = out.refs;
        match out.kind {
            Kind::Column => Projected::Column,
            Kind::Star => Projected::Star,
            Kind::Expr => Projected::Expr {
                columns,
                whole_rows,
                opaque,
            },
            Kind::ExprStar => Projected::ExprStar {
                columns,
                whole_rows,
                opaque,
            },
        }
    }
}

/// For each output column of the statement's top-level result set, in order, what it is
/// computed from (a `*` is one entry). `None` when `sql` is not exactly one statement returning
/// rows that this module models (a `SELECT`, `VALUES`, a set operation, `WITH ... SELECT`, or
/// `INSERT`/`UPDATE`/`DELETE ... RETURNING`), or does not parse. Never panics.
pub fn projection(sql: &str) -> Option<Vec<Projected>> {
    let mut chunks = lex::split(lex::tokenize(sql).ok()?);
    if chunks.len() != 1 {
        return None;
    }
    run_guarded(chunks.pop()?, project)
}

pub(super) fn project(stmt: &Statement) -> Option<Vec<Projected>> {
    let outs = query::statement(stmt)?;
    Some(outs.into_iter().map(Projected::from_out).collect())
}

/// Whether a computed column must be masked: it references a masked column name, a whole row
/// of a table with masked columns, or (fail closed) a whole row of a source whose columns are
/// unknown. `Column` and `Star` entries are plain columns, for the session to resolve through
/// the catalog: `false` here.
pub fn expr_needs_mask(
    p: &Projected,
    is_masked_column: impl Fn(&str) -> bool,
    table_has_masked_columns: impl Fn(&str) -> bool,
) -> bool {
    match p {
        Projected::Column | Projected::Star => false,
        Projected::Expr {
            columns,
            whole_rows,
            opaque,
        }
        | Projected::ExprStar {
            columns,
            whole_rows,
            opaque,
        } => {
            columns.iter().any(|c| is_masked_column(c))
                || whole_rows.iter().any(|t| table_has_masked_columns(t))
                || (*opaque && !whole_rows.is_empty())
        }
    }
}

/// Matches a projection to the `fields` columns of a RowDescription: one entry per field.
/// Entries before the first star and after the last star match fields one to one; the fields
/// in between take that span's entry when it is a single star, else their union (a `Star` when
/// every entry of the span is plain, else an `ExprStar` over all their references). `None` when
/// the counts cannot match (the statement is not what was described): fail closed.
pub fn per_field(projected: &[Projected], fields: usize) -> Option<Vec<Projected>> {
    let Some(first) = projected.iter().position(Projected::is_star) else {
        return (projected.len() == fields).then(|| projected.to_vec());
    };
    let last = projected.iter().rposition(Projected::is_star)?;
    let (before, span, after) = (
        &projected[..first],
        &projected[first..=last],
        &projected[last + 1..],
    );
    let fixed_in_span = span.iter().filter(|p| !p.is_star()).count();
    let span_fields = fields.checked_sub(before.len() + after.len())?;
    if span_fields < fixed_in_span {
        return None;
    }
    let filler = match span {
        [one] => one.clone(),
        _ => union(span),
    };
    let mut out = before.to_vec();
    out.extend(std::iter::repeat_n(filler, span_fields));
    out.extend_from_slice(after);
    Some(out)
}

/// One entry standing for any field of `span`.
fn union(span: &[Projected]) -> Projected {
    let mut refs = Refs::default();
    let mut computed = false;
    for p in span {
        if let Projected::Expr {
            columns,
            whole_rows,
            opaque,
        }
        | Projected::ExprStar {
            columns,
            whole_rows,
            opaque,
        } = p
        {
            computed = true;
            refs.columns.extend(columns.iter().cloned());
            refs.whole_rows.extend(whole_rows.iter().cloned());
            refs.opaque |= opaque;
        }
    }
    if !computed {
        return Projected::Star;
    }
    refs.dedup();
    Projected::ExprStar {
        columns: refs.columns,
        whole_rows: refs.whole_rows,
        opaque: refs.opaque,
    }
}
