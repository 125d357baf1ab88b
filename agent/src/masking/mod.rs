//! Masking of sensitive values inside responses, shared by the PostgreSQL (DataRow) and HTTP
//! (body) handlers. Pure functions, no I/O.
//!
//! - [`MaskingConfig`] (policy) says which columns are masked whole ([`ColumnRule`]) and which
//!   [`Detector`]s look for values inside text ([`DetectorRule`]), each with a [`Style`].
//! - [`Masker::new`] compiles it once (globs, hash key); the [`Masker`] is immutable and shared.
//! - Per value: [`Masker::column_style`] once per result column, then [`Masker::mask_value`] per
//!   value; per body: [`Masker::mask_text`]. Both return `None` when nothing changed, without
//!   allocating, and count what they masked in [`MaskCounts`] for the audit.
mod config;
mod counts;
pub mod detect;
mod error;
mod span;
mod style;

use globset::{GlobBuilder, GlobMatcher};

pub use config::{ColumnRule, DetectorRule, MaskingConfig};
pub use counts::MaskCounts;
pub use detect::Detector;
pub use error::MaskingError;
pub use span::{Span, merge};
pub use style::{HASH_PREFIX, HashKey, LAST4_MIN_ALNUM, REDACTED, Style};

/// A compiled masking configuration.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    columns: Vec<ColumnMask>,
    detectors: Vec<DetectorMask>,
}

/// A compiled column rule: what [`Masker::column_style`] returns and [`Masker::mask_value`] takes.
#[derive(Debug, Clone)]
pub struct ColumnMask {
    name: GlobMatcher,
    table: Option<GlobMatcher>,
    style: Style,
    label: String,
}

impl ColumnMask {
    /// How values of the column are masked.
    pub fn style(&self) -> &Style {
        &self.style
    }

    /// The rule as counted in [`MaskCounts::by_column`]: `name`, or `table.name`.
    pub fn rule(&self) -> &str {
        &self.label
    }

    /// A whole-value redaction counted under `label`, for a result column computed from masked
    /// data whose own rule cannot be told (fail closed).
    pub fn redact(label: &str) -> Self {
        Self {
            name: GlobBuilder::new("*")
                .build()
                .expect("the constant glob `*` compiles")
                .compile_matcher(),
            table: None,
            style: Style::Redact,
            label: label.to_owned(),
        }
    }

    fn matches(&self, table: Option<&str>, column: &str) -> bool {
        self.name.is_match(column)
            && match (&self.table, table) {
                (Some(glob), Some(table)) => glob.is_match(table),
                // No table in the rule, or the column's table is unknown: mask (fail closed).
                _ => true,
            }
    }
}

#[derive(Debug, Clone)]
struct DetectorMask {
    detector: Detector,
    bare_digits: bool,
    style: Style,
}

impl DetectorMask {
    fn find(&self, text: &str) -> Vec<Span> {
        match self.detector {
            Detector::Ssn => detect::ssn::find(text, self.bare_digits),
            other => other.find(text),
        }
    }
}

impl Masker {
    /// Compiles `cfg`. `hash_key` is the secret of the `hash` style: a rule using that style
    /// without a (non-empty) key is an error.
    pub fn new(cfg: &MaskingConfig, hash_key: Option<&[u8]>) -> Result<Self, MaskingError> {
        let keyed = |style: &Style, rule: &str| -> Result<Style, MaskingError> {
            match style {
                Style::Hash { key } if !key.is_set() => {
                    let secret = hash_key.ok_or_else(|| MaskingError::HashKeyMissing {
                        rule: rule.to_owned(),
                    })?;
                    Ok(Style::Hash {
                        key: HashKey::new(secret)?,
                    })
                }
                other => Ok(other.clone()),
            }
        };
        let mut columns = Vec::with_capacity(cfg.columns.len());
        for (index, rule) in cfg.columns.iter().enumerate() {
            let label = match &rule.table {
                Some(table) => format!("{table}.{}", rule.name),
                None => rule.name.clone(),
            };
            columns.push(ColumnMask {
                name: glob(index, "name", &rule.name)?,
                table: rule
                    .table
                    .as_deref()
                    .map(|t| glob(index, "table", t))
                    .transpose()?,
                style: keyed(&rule.style, &label)?,
                label,
            });
        }
        let mut detectors: Vec<DetectorMask> = Vec::with_capacity(cfg.detectors.len());
        for rule in &cfg.detectors {
            if detectors.iter().any(|d| d.detector == rule.detector) {
                return Err(MaskingError::DuplicateDetector(rule.detector));
            }
            if rule.bare_digits && rule.detector != Detector::Ssn {
                return Err(MaskingError::BareDigitsNotSsn {
                    detector: rule.detector,
                });
            }
            detectors.push(DetectorMask {
                detector: rule.detector,
                bare_digits: rule.bare_digits,
                style: keyed(&rule.style, rule.detector.name())?,
            });
        }
        Ok(Self { columns, detectors })
    }

    /// The first column rule matching `column` (and `table`, when the rule names one and the table
    /// is known), to mask that column's values whole. Names match case-insensitively.
    pub fn column_style(&self, table: Option<&str>, column: &str) -> Option<&ColumnMask> {
        self.columns.iter().find(|c| c.matches(table, column))
    }

    /// Masks one value: wholly with the column's rule when there is one, else the spans the
    /// detectors find. `None` when nothing changed (and for an empty value: nothing to hide).
    pub fn mask_value(
        &self,
        column: Option<&ColumnMask>,
        value: &str,
        counts: &mut MaskCounts,
    ) -> Option<String> {
        let Some(column) = column else {
            return self.mask_text(value, counts);
        };
        if value.is_empty() {
            return None;
        }
        let masked = column.style.apply(value, None);
        if masked == value {
            return None;
        }
        counts::bump(&mut counts.by_column, &column.label, 1);
        Some(masked)
    }

    /// Masks what the detectors find in free text (an HTTP body, a value of an unmasked column).
    /// Overlapping matches of several detectors are merged into one span, masked once with the
    /// style of the longest match ([`merge`]). `None` when nothing was found.
    pub fn mask_text(&self, text: &str, counts: &mut MaskCounts) -> Option<String> {
        if text.is_empty() {
            return None;
        }
        let mut found = Vec::new();
        for (index, detector) in self.detectors.iter().enumerate() {
            found.extend(detector.find(text).into_iter().map(|span| (span, index)));
        }
        if found.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut changed = false;
        for (span, index) in merge(found) {
            let rule = &self.detectors[index];
            let name = rule.detector.name();
            let original = &text[span.start..span.end];
            let masked = rule.style.apply(original, Some(name));
            out.push_str(&text[copied..span.start]);
            out.push_str(&masked);
            copied = span.end;
            if masked != original {
                changed = true;
                counts::bump(&mut counts.by_detector, name, 1);
            }
        }
        out.push_str(&text[copied..]);
        changed.then_some(out)
    }

    /// True when no rule is configured: callers can skip masking entirely.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty() && self.detectors.is_empty()
    }

    /// True when at least one column rule is configured (results whose columns are unknown
    /// cannot be masked by name).
    pub fn has_column_rules(&self) -> bool {
        !self.columns.is_empty()
    }

    /// True when at least one detector is configured (free text may need masking).
    pub fn has_detectors(&self) -> bool {
        !self.detectors.is_empty()
    }
}

fn glob(index: usize, field: &'static str, pattern: &str) -> Result<GlobMatcher, MaskingError> {
    GlobBuilder::new(pattern)
        .case_insensitive(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|source| MaskingError::Glob {
            index,
            field,
            pattern: pattern.to_owned(),
            source,
        })
}

#[cfg(test)]
impl Masker {
    /// A masker of one detector in `style` and no column rule (tests).
    pub fn detecting(detector: Detector, style: Style) -> Self {
        Masker::new(
            &MaskingConfig {
                columns: vec![],
                detectors: vec![DetectorRule::new(detector, style)],
            },
            None,
        )
        .expect("one detector")
    }
}

#[cfg(test)]
mod tests;
