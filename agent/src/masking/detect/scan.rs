//! Byte-level helpers shared by the detectors. Every pattern is ASCII, so every offset where a
//! match starts or ends is a `char` boundary of the (UTF-8) text.

/// Letters, digits and `_`: a byte that would make a match part of a longer word.
pub(super) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Bytes that join two numbers into one (`1.5`, `12-34`, `1/2`).
fn is_joiner(b: u8) -> bool {
    matches!(b, b'.' | b'-' | b'/')
}

/// True when a number starting at `start` is not the continuation of a word or of another
/// number: the byte before is not a word byte, nor a joiner that follows a digit.
pub(super) fn number_starts_free(b: &[u8], start: usize) -> bool {
    match start.checked_sub(1).map(|i| b[i]) {
        None => true,
        Some(p) if is_word(p) => false,
        Some(p) if is_joiner(p) => !(start >= 2 && b[start - 2].is_ascii_digit()),
        Some(_) => true,
    }
}

/// True when a number ending at `end` is not continued by a word or another number.
pub(super) fn number_ends_free(b: &[u8], end: usize) -> bool {
    match b.get(end) {
        None => true,
        Some(&n) if is_word(n) => false,
        Some(&n) if is_joiner(n) => !b.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

/// True when the bytes `b[at..at + n]` exist and are all ASCII digits.
pub(super) fn digits_at(b: &[u8], at: usize, n: usize) -> bool {
    b.get(at..at + n)
        .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
}

/// The number written by ASCII digits (at most 19 of them).
pub(super) fn number(digits: &[u8]) -> u64 {
    digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0'))
}

/// True when `b` holds at least `n` ASCII digits (stops counting at `n`).
pub(super) fn has_digits(b: &[u8], n: usize) -> bool {
    n == 0 || b.iter().filter(|c| c.is_ascii_digit()).nth(n - 1).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        let cases: &[(&str, usize, usize, bool)] = &[
            ("123", 0, 3, true),
            (" 123 ", 1, 4, true),
            ("(123)", 1, 4, true),
            ("x123", 1, 4, false),
            ("123x", 0, 3, false),
            ("_123", 1, 4, false),
            ("1.123", 2, 5, false),
            ("123.4", 0, 3, false),
            ("123. ", 0, 3, true),
            ("a.123", 2, 5, true),
            ("9-123", 2, 5, false),
            ("123-9", 0, 3, false),
            ("123-x", 0, 3, true),
            ("7/123", 2, 5, false),
            ("é123é", 2, 5, true),
        ];
        for &(text, start, end, want) in cases {
            let b = text.as_bytes();
            assert_eq!(
                number_starts_free(b, start) && number_ends_free(b, end),
                want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn helpers() {
        assert!(digits_at(b"ab123", 2, 3));
        assert!(!digits_at(b"ab123", 2, 4));
        assert!(!digits_at(b"ab1x3", 2, 3));
        assert_eq!(number(b"0421"), 421);
        assert!(has_digits(b"a1b2c3", 3));
        assert!(!has_digits(b"a1b2c", 3));
    }
}
