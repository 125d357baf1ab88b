//! Byte spans of matches and how overlapping matches from several detectors are merged.

/// A match inside a text: byte offsets `start..end`, both on `char` boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// Offset of the first byte of the match.
    pub start: usize,
    /// Offset one past the last byte of the match.
    pub end: usize,
}

impl Span {
    /// The span `start..end`.
    pub const fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// Length in bytes.
    pub const fn len(&self) -> usize {
        self.end - self.start
    }

    /// True for a zero-length span (detectors never return one).
    pub const fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// Merges spans found by several rules (`(span, rule index)`) into disjoint spans, sorted by start.
///
/// Spans that overlap (share at least one byte) become one span covering all of them, so nothing a
/// detector found is left partly visible. The merged span is attributed to its longest member; on a
/// tie, to the rule that comes first in the configuration (the lower index). Touching spans
/// (`a.end == b.start`) stay separate.
pub fn merge(mut found: Vec<(Span, usize)>) -> Vec<(Span, usize)> {
    found.sort_unstable_by(|(a, ai), (b, bi)| {
        a.start
            .cmp(&b.start)
            .then(b.end.cmp(&a.end))
            .then(ai.cmp(bi))
    });
    let mut merged: Vec<(Span, usize)> = Vec::with_capacity(found.len());
    // Length and rule of the longest member of the last merged span.
    let mut best = (0usize, usize::MAX);
    for (span, rule) in found {
        match merged.last_mut() {
            Some((last, last_rule)) if span.start < last.end => {
                last.end = last.end.max(span.end);
                if span.len() > best.0 || (span.len() == best.0 && rule < best.1) {
                    best = (span.len(), rule);
                    *last_rule = rule;
                }
            }
            _ => {
                best = (span.len(), rule);
                merged.push((span, rule));
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(start: usize, end: usize) -> Span {
        Span::new(start, end)
    }

    #[test]
    fn merge_table() {
        #[allow(clippy::type_complexity)]
        let cases: &[(&[(Span, usize)], &[(Span, usize)])] = &[
            (&[], &[]),
            (&[(s(0, 4), 0)], &[(s(0, 4), 0)]),
            // Disjoint and touching spans stay apart, sorted by start.
            (
                &[(s(10, 12), 1), (s(0, 4), 0)],
                &[(s(0, 4), 0), (s(10, 12), 1)],
            ),
            (&[(s(0, 4), 0), (s(4, 8), 1)], &[(s(0, 4), 0), (s(4, 8), 1)]),
            // Contained: the longer one wins.
            (&[(s(2, 4), 0), (s(0, 10), 1)], &[(s(0, 10), 1)]),
            // Partial overlap: union, attributed to the longest member.
            (&[(s(0, 6), 0), (s(4, 14), 1)], &[(s(0, 14), 1)]),
            (&[(s(0, 10), 0), (s(8, 12), 1)], &[(s(0, 12), 0)]),
            // Same length: the earlier rule wins, whatever the input order.
            (&[(s(0, 5), 2), (s(0, 5), 1)], &[(s(0, 5), 1)]),
            (&[(s(0, 5), 1), (s(3, 8), 0)], &[(s(0, 8), 0)]),
            // A chain of overlaps becomes one span.
            (
                &[(s(0, 3), 0), (s(2, 6), 1), (s(5, 20), 2), (s(30, 31), 0)],
                &[(s(0, 20), 2), (s(30, 31), 0)],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(merge(input.to_vec()), want.to_vec(), "input {input:?}");
        }
    }
}
