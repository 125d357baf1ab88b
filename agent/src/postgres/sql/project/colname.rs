//! The name PostgreSQL gives an unaliased output column (its `FigureColname`), so that an
//! outer query's reference to a derived table's or CTE's column finds the right one.

use sqlparser::ast::{AccessExpr, Expr, SelectItem, SetExpr, TrimWhereField};

use super::super::names;

/// PostgreSQL's name for an unnamed expression.
const UNNAMED: &str = "?column?";

/// A figured name and how strongly PostgreSQL holds to it (a cast keeps a strong inner name and
/// otherwise takes the type's name).
enum Fig {
    Strong(String),
    Weak(String),
    Unnamed,
    /// Not modeled here (a cast's type name, which PostgreSQL canonicalizes, or an expression
    /// this module does not figure): the caller must not rely on a name.
    Unsure,
}

/// The output name of `expr` without an alias; `None` when not known for sure.
pub(super) fn name(expr: &Expr) -> Option<String> {
    match figure(expr) {
        Fig::Strong(name) | Fig::Weak(name) => Some(name),
        Fig::Unnamed => Some(UNNAMED.to_owned()),
        Fig::Unsure => None,
    }
}

/// The output name of a select item, aliased or not.
pub(super) fn item_name(item: &SelectItem) -> Option<String> {
    match item {
        SelectItem::UnnamedExpr(expr) => name(expr),
        SelectItem::ExprWithAlias { alias, .. } => Some(names::ident(alias)),
        _ => None,
    }
}

fn strong(name: &str) -> Fig {
    Fig::Strong(name.to_owned())
}

fn figure(expr: &Expr) -> Fig {
    match expr {
        Expr::Identifier(id) => Fig::Strong(names::ident(id)),
        Expr::CompoundIdentifier(ids) => match ids.last() {
            Some(id) => Fig::Strong(names::ident(id)),
            None => Fig::Unsure,
        },
        // The last field selected, else the name of what is subscripted.
        Expr::CompoundFieldAccess { root, access_chain } => access_chain
            .iter()
            .rev()
            .find_map(|access| match access {
                AccessExpr::Dot(Expr::Identifier(id)) => Some(Fig::Strong(names::ident(id))),
                _ => None,
            })
            .unwrap_or_else(|| figure(root)),
        Expr::Function(function) => Fig::Strong(names::last(&function.name)),
        Expr::Nested(inner) | Expr::Collate { expr: inner, .. } => figure(inner),
        Expr::Cast { expr, .. } => match figure(expr) {
            strong @ Fig::Strong(_) => strong,
            _ => Fig::Unsure,
        },
        Expr::Case { else_result, .. } => match else_result.as_deref().map(figure) {
            Some(strong @ Fig::Strong(_)) => strong,
            Some(Fig::Unsure) => Fig::Unsure,
            _ => Fig::Weak("case".to_owned()),
        },
        Expr::Exists { .. } => strong("exists"),
        Expr::Subquery(query) => match query.body.as_ref() {
            SetExpr::Select(select) => match select.projection.first().and_then(item_name) {
                Some(name) => Fig::Strong(name),
                None => Fig::Unsure,
            },
            _ => Fig::Unsure,
        },
        Expr::Array(_) => strong("array"),
        Expr::Tuple(_) => strong("row"),
        Expr::Substring { .. } => strong("substring"),
        Expr::Position { .. } => strong("position"),
        Expr::Overlay { .. } => strong("overlay"),
        Expr::Extract { .. } => strong("extract"),
        Expr::Ceil { .. } => strong("ceil"),
        Expr::Floor { .. } => strong("floor"),
        Expr::AtTimeZone { .. } => strong("timezone"),
        Expr::Trim { trim_where, .. } => strong(match trim_where {
            Some(TrimWhereField::Leading) => "ltrim",
            Some(TrimWhereField::Trailing) => "rtrim",
            _ => "btrim",
        }),
        Expr::BinaryOp { .. }
        | Expr::UnaryOp { .. }
        | Expr::Value(_)
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsNotTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotFalse(_)
        | Expr::IsUnknown(_)
        | Expr::IsNotUnknown(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::InList { .. }
        | Expr::InSubquery { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::SimilarTo { .. }
        | Expr::AnyOp { .. }
        | Expr::AllOp { .. } => Fig::Unnamed,
        _ => Fig::Unsure,
    }
}
