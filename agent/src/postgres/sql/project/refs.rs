//! What an output column is computed from, as the walk builds it.

use std::collections::HashSet;

/// The references a value is computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Refs {
    /// Column names, normalized and unqualified.
    pub columns: Vec<String>,
    /// Tables (or unknown sources) referenced as a whole row.
    pub whole_rows: Vec<String>,
    /// Depends on the output of a source whose columns cannot be traced (a function in `FROM`
    /// that is not a known built-in, a recursive CTE being defined).
    pub opaque: bool,
}

impl Refs {
    pub fn column(&mut self, name: impl Into<String>) {
        self.columns.push(name.into());
    }

    pub fn whole_row(&mut self, name: impl Into<String>) {
        self.whole_rows.push(name.into());
    }

    /// Appends `other` (duplicates are removed by [`Refs::dedup`]).
    pub fn merge(&mut self, other: &Refs) {
        self.columns.extend(other.columns.iter().cloned());
        self.whole_rows.extend(other.whole_rows.iter().cloned());
        self.opaque |= other.opaque;
    }

    /// Keeps the first occurrence of each name, in order.
    pub fn dedup(&mut self) {
        dedup(&mut self.columns);
        dedup(&mut self.whole_rows);
    }
}

fn dedup(names: &mut Vec<String>) {
    let mut seen = HashSet::with_capacity(names.len());
    names.retain(|name| seen.insert(name.clone()));
}

/// How an output column reaches the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A plain column reference: the server reports its table and column number.
    Column,
    /// `*` over base tables: any number of plain columns.
    Star,
    /// A computed value.
    Expr,
    /// Any number of computed values (`*` over a function or a set operation of stars).
    ExprStar,
}

impl Kind {
    /// Stands for an unknown number of columns.
    pub fn is_star(self) -> bool {
        matches!(self, Kind::Star | Kind::ExprStar)
    }
}

/// One output column (or star) of a query level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Out {
    /// The column name PostgreSQL gives it, as an outer query refers to it; `None` for stars and
    /// when the name is not known for sure.
    pub name: Option<String>,
    /// How it reaches the result.
    pub kind: Kind,
    /// What it is computed from; for a plain column, its own name (and the columns behind it
    /// when it passes through a derived table or CTE); for a star, the tables it covers.
    pub refs: Refs,
}

impl Out {
    pub fn new(name: Option<String>, kind: Kind, mut refs: Refs) -> Self {
        refs.dedup();
        Out { name, kind, refs }
    }
}

/// Every reference of `outs`, merged.
pub(super) fn merged(outs: &[Out]) -> Refs {
    let mut refs = Refs::default();
    for out in outs {
        refs.merge(&out.refs);
    }
    refs.dedup();
    refs
}
