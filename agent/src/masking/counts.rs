//! What masking did to one response, for the audit: how many values each rule masked, never the
//! values.
use std::collections::BTreeMap;

use serde::Serialize;

/// Masked-value counts per column rule and per detector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MaskCounts {
    /// Per column rule (its `name` glob, `table.name` when it has a table): values masked whole.
    pub by_column: BTreeMap<String, u64>,
    /// Per detector name (`card`, `email`...): matches masked inside values and bodies.
    pub by_detector: BTreeMap<String, u64>,
}

impl MaskCounts {
    /// True when nothing was masked.
    pub fn is_empty(&self) -> bool {
        self.by_column.is_empty() && self.by_detector.is_empty()
    }

    /// Adds `other` into `self` (e.g. per-message counts into a session's).
    pub fn add(&mut self, other: &Self) {
        for (rule, n) in &other.by_column {
            bump(&mut self.by_column, rule, *n);
        }
        for (detector, n) in &other.by_detector {
            bump(&mut self.by_detector, detector, *n);
        }
    }
}

/// `map[key] += n`, allocating the key only the first time.
pub(super) fn bump(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    match map.get_mut(key) {
        Some(count) => *count += n,
        None => {
            map.insert(key.to_owned(), n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_serialize() {
        let mut a = MaskCounts::default();
        assert!(a.is_empty());
        bump(&mut a.by_column, "*card*", 2);
        bump(&mut a.by_detector, "email", 1);
        let mut b = MaskCounts::default();
        bump(&mut b.by_column, "*card*", 3);
        bump(&mut b.by_detector, "jwt", 1);
        a.add(&b);
        assert!(!a.is_empty());
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"by_column":{"*card*":5},"by_detector":{"email":1,"jwt":1}}"#
        );
    }
}
