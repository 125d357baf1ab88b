//! US social security numbers: `AAA-GG-SSSS`, and nine bare digits when a rule asks for them.
//!
//! Numbers the SSA never issues are rejected: area `000`, `666` and `900`–`999`, group `00`,
//! serial `0000`, and numbers known from advertising and documentation (`078-05-1120`,
//! `219-09-9999`, `123-45-6789`).
use super::scan::{digits_at, has_digits, number, number_ends_free, number_starts_free};
use crate::masking::Span;

/// Published numbers that are not anyone's (Woolworth's wallet card, an SSA pamphlet, the
/// ubiquitous example).
const KNOWN_FAKES: [&[u8; 9]; 3] = [b"078051120", b"219099999", b"123456789"];

/// Finds SSNs in `text`: the dashed form always, nine bare digits only with `bare_digits` (any
/// nine-digit number passing the rules would match: opt-in). Neither inside a longer number.
pub fn find(text: &str, bare_digits: bool) -> Vec<Span> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let min_len = if bare_digits { 9 } else { 11 };
    if b.len() < min_len || !has_digits(b, 9) {
        return out;
    }
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let run = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if let Some(end) = match_at(b, i, run, bare_digits) {
            out.push(Span::new(i, end));
            i = end;
        } else {
            i += run;
        }
    }
    out
}

/// The end of an SSN starting at `start`, a run of `run` digits.
fn match_at(b: &[u8], start: usize, run: usize, bare_digits: bool) -> Option<usize> {
    if !(run == 3 || (bare_digits && run == 9)) || !number_starts_free(b, start) {
        return None;
    }
    let mut digits = [0u8; 9];
    let end = if run == 3
        && b.get(start + 3) == Some(&b'-')
        && digits_at(b, start + 4, 2)
        && b.get(start + 6) == Some(&b'-')
        && digits_at(b, start + 7, 4)
    {
        digits[..3].copy_from_slice(&b[start..start + 3]);
        digits[3..5].copy_from_slice(&b[start + 4..start + 6]);
        digits[5..].copy_from_slice(&b[start + 7..start + 11]);
        start + 11
    } else if bare_digits && run == 9 {
        digits.copy_from_slice(&b[start..start + 9]);
        start + 9
    } else {
        return None;
    };
    (number_ends_free(b, end) && is_issuable(&digits)).then_some(end)
}

/// The SSA's rules for a number that can belong to someone.
fn is_issuable(d: &[u8; 9]) -> bool {
    let area = number(&d[..3]);
    let group = number(&d[3..5]);
    let serial = number(&d[5..]);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 && !KNOWN_FAKES.contains(&d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::detect::tests::{assert_finds, assert_finds_nothing};

    #[test]
    fn dashed_positives() {
        let cases: &[(&str, &[&str])] = &[
            ("078-05-1121", &["078-05-1121"]),
            ("SSN: 536-90-4399.", &["536-90-4399"]),
            ("ssn=001-01-0001&x=1", &["001-01-0001"]),
            ("\"899-99-9999\"", &["899-99-9999"]),
            (
                "665-12-3456 and 667-12-3456",
                &["665-12-3456", "667-12-3456"],
            ),
            ("(123-45-6788)", &["123-45-6788"]),
            ("219-09-9998", &["219-09-9998"]),
            ("tab\t432-10-9876\n", &["432-10-9876"]),
            ("a-123-45-6780", &["123-45-6780"]),
        ];
        for &(text, want) in cases {
            assert_finds(|t| find(t, false), text, want);
            assert_finds(|t| find(t, true), text, want);
        }
    }

    #[test]
    fn dashed_negatives() {
        let cases = [
            "000-12-3456", // area 000
            "666-12-3456", // area 666
            "900-12-3456", // area 9xx
            "999-12-3456",
            "123-00-4567",  // group 00
            "123-45-0000",  // serial 0000
            "078-05-1120",  // Woolworth's
            "219-09-9999",  // SSA pamphlet
            "123-45-6789",  // the example
            "1123-45-6780", // inside a longer number
            "123-45-67801",
            "9-123-45-6780",
            "123-45-6780-1",
            "x123-45-6780",
            "123-45-6780x",
            "123 45 6780", // spaces are not the format
            "1234-5-6780",
            "555-123-4567", // a phone number
            "123456780",    // bare digits need the flag
        ];
        for text in cases {
            assert_finds_nothing(|t| find(t, false), text);
        }
    }

    #[test]
    fn bare_digits_only_with_the_flag() {
        let positives: &[(&str, &[&str])] = &[
            ("078051121", &["078051121"]),
            ("ssn 536904399.", &["536904399"]),
            ("[123456780]", &["123456780"]),
            ("a 001010001 b 899999999", &["001010001", "899999999"]),
        ];
        for &(text, want) in positives {
            assert_finds(|t| find(t, true), text, want);
            assert_finds_nothing(|t| find(t, false), text);
        }
        let negatives = [
            "000123456",
            "666123456",
            "912345678",
            "123004567",
            "123450000",
            "078051120",
            "219099999",
            "123456789",
            "1234567801",  // ten digits
            "12345678",    // eight
            "3.123456780", // a decimal
            "id123456780",
        ];
        for text in negatives {
            assert_finds_nothing(|t| find(t, true), text);
        }
    }
}
