//! The masking configuration, as written in policy: which columns are masked whole, and which
//! detectors look for sensitive values inside text.
use serde::Deserialize;

use super::{Detector, Style};

/// What to mask and how. Nothing is masked unless a rule says so.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    /// Column rules, first match wins: the whole value of a matching column is masked.
    #[serde(default)]
    pub columns: Vec<ColumnRule>,
    /// Detectors run on values of other columns (and on HTTP bodies); each detector at most once.
    #[serde(default)]
    pub detectors: Vec<DetectorRule>,
}

/// Mask every value of the columns whose name (and table) match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRule {
    /// Column name glob, case-insensitive: `"email"`, `"*card*"`.
    pub name: String,
    /// Table glob, case-insensitive; none matches every table. A rule with a table also matches
    /// a column whose table is unknown (computed or unresolved): masking errs on the safe side.
    #[serde(default)]
    pub table: Option<String>,
    /// How values are masked.
    pub style: Style,
}

/// Mask what a detector finds inside values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorRule {
    /// Which detector.
    pub detector: Detector,
    /// How each match is masked.
    pub style: Style,
    /// `ssn` only: also match nine bare digits (`078051121`), not only `AAA-GG-SSSS`. Off by
    /// default: any nine-digit number (ids, amounts) that passes the SSN rules would be masked.
    #[serde(default)]
    pub bare_digits: bool,
}

impl DetectorRule {
    /// A rule with the detector's default options.
    pub fn new(detector: Detector, style: Style) -> Self {
        Self {
            detector,
            style,
            bare_digits: false,
        }
    }
}
