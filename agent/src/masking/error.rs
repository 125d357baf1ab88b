//! Errors building a [`Masker`](super::Masker) from its configuration.
use super::Detector;

/// Why a masking configuration cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum MaskingError {
    /// A column rule's `name` or `table` is not a valid glob.
    #[error("masking column rule {index}: invalid {field} glob {pattern:?}")]
    Glob {
        /// Position of the rule in `columns` (0-based).
        index: usize,
        /// `"name"` or `"table"`.
        field: &'static str,
        /// The pattern as written.
        pattern: String,
        /// What globset said.
        #[source]
        source: globset::Error,
    },
    /// A rule uses the `hash` style but the agent has no hash key.
    #[error("masking rule {rule}: style \"hash\" needs a hash key, and none is configured")]
    HashKeyMissing {
        /// The rule, as in the audit counts (column pattern or detector name).
        rule: String,
    },
    /// The configured hash key is empty.
    #[error("masking hash key is empty")]
    EmptyHashKey,
    /// `bare_digits` was set on a detector other than `ssn`.
    #[error("masking detector {detector}: bare_digits applies to the ssn detector only")]
    BareDigitsNotSsn {
        /// The detector it was set on.
        detector: Detector,
    },
    /// The same detector appears in two rules.
    #[error("masking detector {0} is configured twice")]
    DuplicateDetector(Detector),
}
