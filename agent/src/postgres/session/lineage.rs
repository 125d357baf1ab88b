//! Masks for result columns that are *computed* (RowDescription table OID 0): `upper(card)`,
//! `row(t.*)`, `to_json(t)`. Their source cannot be read off the wire, so it is read off the SQL
//! (`postgres::sql::projection`): a computed column that references a masked column, or a whole
//! row of a table with masked columns, is masked whole. Where the SQL cannot tell (unparsable,
//! a cursor `FETCH`, counts that do not line up), every computed column is masked: fail closed.
use std::sync::Arc;

use crate::{
    masking::{ColumnMask, Masker},
    postgres::sql::{self, Classified, Projected, StatementClass},
};

use super::catalog::Catalog;

/// Label under which masks of computed columns without a rule of their own are counted.
pub const COMPUTED_LABEL: &str = "computed-from-masked";

/// What is known of a statement's computed result columns.
#[derive(Debug, Clone)]
pub enum ExprPlan {
    /// Nothing to mask (settings, transaction control).
    Nothing,
    /// The statement's projection, matched to the fields when its RowDescription arrives.
    Known(Vec<Projected>),
    /// Unknown: every computed column is masked.
    Unknown,
}

/// The plan for `sql_text`, or `None` when the target has no column rules.
pub fn plan(masker: &Masker, sql_text: &str, statements: &[Classified]) -> Option<Arc<ExprPlan>> {
    if !masker.has_column_rules() {
        return None;
    }
    // SHOW, SET, transaction control: settings, not data.
    if !statements.is_empty()
        && statements
            .iter()
            .all(|c| matches!(c.class, StatementClass::Set | StatementClass::Transaction))
    {
        return Some(Arc::new(ExprPlan::Nothing));
    }
    Some(Arc::new(match sql::projection(sql_text) {
        Some(p) => ExprPlan::Known(p),
        None => ExprPlan::Unknown,
    }))
}

/// Masks of the `n` fields of a result under `plan` (entries for plain columns are `None`).
pub fn masks(
    plan: &ExprPlan,
    masker: &Masker,
    catalog: &Catalog,
    n: usize,
) -> Vec<Option<ColumnMask>> {
    let redact = || Some(ColumnMask::redact(COMPUTED_LABEL));
    match plan {
        ExprPlan::Nothing => vec![None; n],
        ExprPlan::Unknown => vec![redact(); n],
        ExprPlan::Known(projected) => match sql::per_field(projected, n) {
            None => vec![redact(); n],
            Some(per) => per.iter().map(|p| expr_mask(masker, catalog, p)).collect(),
        },
    }
}

/// The mask a computed column needs: the rule of a masked column it uses, else a redaction.
fn expr_mask(masker: &Masker, catalog: &Catalog, p: &Projected) -> Option<ColumnMask> {
    let masked_column = |col: &str| masker.column_style(None, col).is_some();
    let masked_table = |t: &str| catalog.table_has_masked_columns(t);
    if !sql::expr_needs_mask(p, masked_column, masked_table) {
        return None;
    }
    let by_column = match p {
        Projected::Expr { columns, .. } | Projected::ExprStar { columns, .. } => columns
            .iter()
            .find_map(|c| masker.column_style(None, c).cloned()),
        Projected::Column | Projected::Star => None,
    };
    Some(by_column.unwrap_or_else(|| ColumnMask::redact(COMPUTED_LABEL)))
}
