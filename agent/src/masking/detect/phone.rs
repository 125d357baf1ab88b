//! Phone numbers, conservatively: E.164 with a leading `+`, and the North-American forms
//! `(555) 123-4567` and `555-123-4567` (optionally after `1-` or `1 `).
//!
//! E.164: `+`, a country code not starting with 0, 8–15 digits in all, groups separated by a single
//! space or dash, at most one parenthesised group (`+1 (415) 555-2671`, `+44 20 7946 0958`).
//! Numbers without `+` in other layouts (`555 123 4567`, `5551234567`) are not detected: too many
//! other numbers look like them.
use super::scan::{digits_at, is_word, number_ends_free, number_starts_free};
use crate::masking::Span;

const E164_MIN: usize = 8;
const E164_MAX: usize = 15;

/// Finds phone numbers in `text`; spans are sorted and disjoint.
pub fn find(text: &str) -> Vec<Span> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    if b.len() < 9 || !b.iter().any(u8::is_ascii_digit) {
        return out;
    }
    let mut i = 0;
    while i < b.len() {
        let found = match b[i] {
            b'+' => e164_at(b, i).map(|end| (i, end)),
            b'(' => north_american_at(b, i),
            // Only where a run of digits starts: inside one, no number starts free.
            b'0'..=b'9' if i == 0 || !b[i - 1].is_ascii_digit() => north_american_at(b, i),
            _ => None,
        };
        match found {
            Some((start, end)) => {
                // A North-American match may start before `i` (its `1-` prefix): drop what it covers.
                while out.last().is_some_and(|s: &Span| s.end > start) {
                    out.pop();
                }
                out.push(Span::new(start, end));
                i = end;
            }
            None => i += 1,
        }
    }
    out
}

/// End of an E.164 number whose `+` is at `plus`.
fn e164_at(b: &[u8], plus: usize) -> Option<usize> {
    if plus > 0 && (is_word(b[plus - 1]) || matches!(b[plus - 1], b'+' | b')')) {
        return None;
    }
    let mut pos = plus + 1;
    if !matches!(b.get(pos), Some(b'1'..=b'9')) {
        return None;
    }
    let mut digits = 0;
    let mut open = false;
    let mut parens_used = false;
    loop {
        while pos < b.len() && b[pos].is_ascii_digit() {
            digits += 1;
            pos += 1;
        }
        // A separator: `)` closing the group, one space or dash, `(` opening the group; then a digit.
        let mut next = pos;
        let mut close = false;
        let mut opens = false;
        if open && b.get(next) == Some(&b')') {
            next += 1;
            close = true;
        }
        if matches!(b.get(next), Some(b' ' | b'-')) {
            next += 1;
        }
        if !open && !parens_used && b.get(next) == Some(&b'(') {
            next += 1;
            opens = true;
        }
        if next == pos || !b.get(next).is_some_and(u8::is_ascii_digit) {
            break;
        }
        if open && !close && opens {
            return None;
        }
        open = (open && !close) || opens;
        parens_used |= opens;
        pos = next;
    }
    let end = pos;
    (!open && (E164_MIN..=E164_MAX).contains(&digits) && number_ends_free(b, end)).then_some(end)
}

/// A North-American number at `at` (its `(` or first digit): `(NPA) NXX-XXXX`, `(NPA)NXX-XXXX` or
/// `NPA-NXX-XXXX`, area code not starting with 0 or 1. Returns the span, which includes a `1-` or
/// `1 ` prefix when there is one.
fn north_american_at(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let (area, rest) = if b[at] == b'(' {
        if !(digits_at(b, at + 1, 3) && b.get(at + 4) == Some(&b')')) {
            return None;
        }
        let rest = if b.get(at + 5) == Some(&b' ') {
            at + 6
        } else {
            at + 5
        };
        (at + 1, rest)
    } else {
        if !(digits_at(b, at, 3) && b.get(at + 3) == Some(&b'-')) {
            return None;
        }
        (at, at + 4)
    };
    if !(matches!(b[area], b'2'..=b'9')
        && digits_at(b, rest, 3)
        && b.get(rest + 3) == Some(&b'-')
        && digits_at(b, rest + 4, 4))
    {
        return None;
    }
    let end = rest + 8;
    if !number_ends_free(b, end) {
        return None;
    }
    let start = if at >= 2 && b[at - 2] == b'1' && matches!(b[at - 1], b'-' | b' ') {
        at - 2
    } else {
        at
    };
    let free = if b[start] == b'(' {
        start == 0 || !is_word(b[start - 1])
    } else {
        number_starts_free(b, start)
    };
    free.then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::detect::tests::{assert_finds, assert_finds_nothing};

    #[test]
    fn e164_positives() {
        let cases: &[(&str, &[&str])] = &[
            ("+14155552671", &["+14155552671"]),
            ("call +1 (415) 555-2671.", &["+1 (415) 555-2671"]),
            ("+44 20 7946 0958", &["+44 20 7946 0958"]),
            ("+49-30-12345678,", &["+49-30-12345678"]),
            ("+33 1 23 45 67 89", &["+33 1 23 45 67 89"]),
            ("tel:+4930123456", &["+4930123456"]),
            ("\"+861012345678\"", &["+861012345678"]),
            ("+44 (0)20 7946 0958", &["+44 (0)20 7946 0958"]),
            ("+123456789012345", &["+123456789012345"]),
            ("+12345678", &["+12345678"]),
        ];
        for &(text, want) in cases {
            assert_finds(find, text, want);
        }
    }

    #[test]
    fn north_american_positives() {
        let cases: &[(&str, &[&str])] = &[
            ("(555) 123-4567", &["(555) 123-4567"]),
            ("(555)123-4567", &["(555)123-4567"]),
            ("555-123-4567", &["555-123-4567"]),
            ("call 212-555-0187 now", &["212-555-0187"]),
            ("1-800-555-0199", &["1-800-555-0199"]),
            ("1 (800) 555-0199", &["1 (800) 555-0199"]),
            (
                "a: 415-555-2671; b: (212) 555-0187",
                &["415-555-2671", "(212) 555-0187"],
            ),
            ("{\"phone\":\"303-555-0142\"}", &["303-555-0142"]),
        ];
        for &(text, want) in cases {
            assert_finds(find, text, want);
        }
    }

    #[test]
    fn negatives() {
        let cases = [
            "+1234567",          // 7 digits
            "+1234567890123456", // 16 digits
            "+0123456789",       // country code cannot start with 0
            "3+12345678901",     // arithmetic
            "x+12345678901",
            "+1 (415 555-2671",    // unbalanced
            "+1 (415) (555) 2671", // two groups
            "+1  415 555 2671",    // double space: stops after +1
            "+1 415 555 2671.5",
            "055-123-4567", // area code starts with 0
            "155-123-4567",
            "5551234567", // no layout
            "555 123 4567",
            "2555-123-4567", // inside a longer number
            "555-123-45678",
            "555-123-4567-89",
            "x555-123-4567",
            "2024-01-15",
            "12:30:45 +0200", // a time-zone offset
        ];
        for text in cases {
            assert_finds_nothing(find, text);
        }
    }
}
