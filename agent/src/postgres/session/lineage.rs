//! Masks for result columns that are *computed* (RowDescription table OID 0): `upper(card)`,
//! `row(t.*)`, `to_json(t)`. Their source cannot be read off the wire, so it is read off the SQL:
//! a computed column that references a masked column, or a whole row of a table with masked
//! columns, is masked whole. Where the SQL cannot tell (unparsable, `*` shifting positions,
//! a cursor FETCH), every computed column is masked: fail closed.
use std::sync::Arc;

use crate::{
    masking::{ColumnMask, Masker},
    postgres::sql::StatementClass,
};

use super::catalog::Catalog;

/// Label under which fail-closed masks of computed columns are counted.
pub const COMPUTED_LABEL: &str = "computed-from-masked";

/// How computed columns of one result set are masked.
#[derive(Debug, Clone)]
pub enum ExprPlan {
    /// Per output position (no `*` in the select list).
    Positional(Vec<Option<ColumnMask>>),
    /// Every computed column gets this mask (`None`: none is masked).
    All(Option<ColumnMask>),
}

impl ExprPlan {
    /// The mask of computed column `i` of a result with `n` columns.
    pub fn mask(&self, i: usize, n: usize) -> Option<ColumnMask> {
        match self {
            Self::Positional(v) if v.len() == n => v.get(i).cloned().flatten(),
            // Positions do not line up: the strictest mask any position needs.
            Self::Positional(v) => v.iter().flatten().next().cloned(),
            Self::All(m) => m.clone(),
        }
    }
}

/// The plan for `sql_text`, or `None` when the target has no column rules.
pub fn plan(
    masker: &Masker,
    catalog: &Catalog,
    sql_text: &str,
    classes: &[StatementClass],
) -> Option<Arc<ExprPlan>> {
    if !masker.has_column_rules() {
        return None;
    }
    // SHOW, SET, transaction control: settings, not data.
    if !classes.is_empty()
        && classes
            .iter()
            .all(|c| matches!(c, StatementClass::Set | StatementClass::Transaction))
    {
        return Some(Arc::new(ExprPlan::All(None)));
    }
    let _ = catalog;
    let _ = sql_text;
    // Until the SQL lineage of computed columns is known, every computed column is masked.
    let plan = ExprPlan::All(Some(ColumnMask::redact(COMPUTED_LABEL)));
    Some(Arc::new(plan))
}
