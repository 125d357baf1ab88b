//! Folding a connection's end into its insert when both are in one batch: a short connection
//! (HTTP with `Connection: close`, a one-query script) then costs one insert instead of an
//! insert and an update of the row and of its indexes. Pure: decides on the batch only.
use std::collections::HashMap;

use crate::store::{ConnectionEnd, backend::Op};

/// What the writer does with each operation of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fold {
    /// Written as it is.
    Keep,
    /// A `Begin` written as a complete row, with the end of the `Finish` at this index.
    EndAt(usize),
    /// A `Finish` already written with its `Begin`.
    Skip,
}

/// For each `Begin` of `ops`, the first `Finish` of its connection later in the batch is folded
/// into it. A later `Finish` of the same connection stays: it finds the row ended and changes
/// nothing, as it would have after the update. Empty when there is nothing to fold (no
/// allocation for a batch of statements or requests only).
pub(super) fn fold(ops: &[Op]) -> Vec<Fold> {
    let begins = ops
        .iter()
        .filter(|op| matches!(op, Op::Begin { .. }))
        .count();
    if begins == 0 || !ops.iter().any(|op| matches!(op, Op::Finish(..))) {
        return Vec::new();
    }
    let mut open: HashMap<uuid::Uuid, usize> = HashMap::with_capacity(begins);
    let mut folds = vec![Fold::Keep; ops.len()];
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Begin { rec, .. } => {
                open.insert(rec.id, i);
            }
            Op::Finish(id, _) => {
                if let Some(begin) = open.remove(id) {
                    folds[begin] = Fold::EndAt(i);
                    folds[i] = Fold::Skip;
                }
            }
            _ => {}
        }
    }
    folds
}

/// The end folded into the operation at `i`, if any.
pub(super) fn end_of<'a>(ops: &'a [Op], folds: &[Fold], i: usize) -> Option<&'a ConnectionEnd> {
    match folds.get(i) {
        Some(Fold::EndAt(j)) => match &ops[*j] {
            Op::Finish(_, end) => Some(end),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;
    use crate::store::tests::{at, end, rec};

    fn begin(n: u128) -> Op {
        let (done, _) = oneshot::channel();
        Op::Begin {
            rec: rec(uuid::Uuid::from_u128(n), Some("w"), at(0, 0)),
            done,
        }
    }

    fn finish(n: u128, reason: &str) -> Op {
        Op::Finish(uuid::Uuid::from_u128(n), end(at(1, 0), reason))
    }

    #[test]
    fn a_begin_takes_the_first_end_of_its_connection_in_the_batch() {
        let ops = [
            begin(1),
            finish(9, "closed"),
            begin(2),
            finish(1, "closed"),
            finish(1, "again"),
            Op::Record(
                rec(uuid::Uuid::from_u128(3), None, at(0, 0)),
                end(at(1, 0), "denied"),
            ),
            finish(3, "closed"),
        ];
        let folds = fold(&ops);
        use Fold::*;
        assert_eq!(folds, [EndAt(3), Keep, Keep, Skip, Keep, Keep, Keep]);
        assert_eq!(
            end_of(&ops, &folds, 0).map(|e| e.end_reason.as_str()),
            Some("closed")
        );
        assert_eq!(end_of(&ops, &folds, 2), None);
    }

    #[test]
    fn nothing_to_fold_allocates_nothing() {
        assert!(fold(&[begin(1), begin(2)]).is_empty());
        assert!(fold(&[finish(1, "closed")]).is_empty());
        assert!(fold(&[]).is_empty());
    }

    #[test]
    fn an_end_before_its_begin_is_not_folded() {
        assert_eq!(
            fold(&[finish(1, "closed"), begin(1)]),
            [Fold::Keep, Fold::Keep]
        );
    }
}
