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

use super::{catalog::Catalog, check::CLASSIFY_INLINE};

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

/// [`plan`], on the blocking pool for text over [`CLASSIFY_INLINE`] bytes (it parses the text
/// again). Work that fails there masks every computed column.
pub async fn plan_of(
    masker: &Masker,
    sql_text: &str,
    statements: &Arc<[Classified]>,
    max: usize,
) -> Option<Arc<ExprPlan>> {
    if !masker.has_column_rules() {
        return None;
    }
    if sql_text.len() <= CLASSIFY_INLINE {
        return plan(masker, sql_text, statements, max);
    }
    let (masker, text, statements) = (masker.clone(), sql_text.to_owned(), statements.clone());
    let work = crate::offload::run(move || plan(&masker, &text, &statements, max));
    match work.await {
        Ok(planned) => planned,
        Err(e) => {
            tracing::warn!(error = %e, "planning computed columns failed");
            Some(Arc::new(ExprPlan::Unknown))
        }
    }
}

/// The plan for `sql_text`, or `None` when the target has no column rules. Text over `max`
/// bytes (the target's `max_statement_bytes`) is not read: every computed column is masked.
pub fn plan(
    masker: &Masker,
    sql_text: &str,
    statements: &[Classified],
    max: usize,
) -> Option<Arc<ExprPlan>> {
    if !masker.has_column_rules() {
        return None;
    }
    if sql_text.len() > max {
        return Some(Arc::new(ExprPlan::Unknown));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        masking::{ColumnRule, MaskingConfig, Style},
        offload::first_poll_ends,
    };

    fn masker() -> Masker {
        Masker::new(
            &MaskingConfig {
                columns: vec![ColumnRule {
                    name: "card".into(),
                    table: None,
                    style: Style::Last4,
                }],
                detectors: vec![],
            },
            None,
        )
        .unwrap()
    }

    /// `select upper(card), 1 as a1, 1 as a2, …` of about `bytes` bytes.
    fn select(bytes: usize) -> String {
        let mut sql = "select upper(card)".to_owned();
        let mut i = 0;
        while sql.len() < bytes {
            i += 1;
            sql.push_str(&format!(", {i} as a{i}"));
        }
        sql + " from customers"
    }

    /// Text over the target's bound is not read: every computed column is masked; text under
    /// it is planned from its projection, on the blocking pool when it is long (the first poll
    /// waits, where planning in place would end), as in place.
    #[tokio::test]
    async fn long_text_is_planned_off_the_worker_and_too_long_text_not_read() {
        let m = masker();
        let long = select(100 << 10);
        let statements = sql::classify(&long);
        assert!(matches!(
            plan(&m, &long, &statements, 1 << 20).as_deref(),
            Some(ExprPlan::Known(_))
        ));
        assert!(matches!(
            plan(&m, &long, &statements, 64 << 10).as_deref(),
            Some(ExprPlan::Unknown)
        ));

        let (ended, planned) = first_poll_ends(plan_of(&m, &long, &statements, 1 << 20)).await;
        assert!(!ended, "planned in place");
        let Some(ExprPlan::Known(off)) = planned.as_deref().cloned() else {
            panic!("planned");
        };
        let Some(ExprPlan::Known(inline)) =
            plan(&m, &long, &statements, 1 << 20).as_deref().cloned()
        else {
            panic!("planned");
        };
        assert_eq!(format!("{off:?}"), format!("{inline:?}"));

        let short = select(100);
        let short_statements = sql::classify(&short);
        let (ended, _) = first_poll_ends(plan_of(&m, &short, &short_statements, 1 << 20)).await;
        assert!(ended);
    }
}
