//! Payment card numbers (PAN): 13–19 digits of a known brand prefix and length, Luhn-valid,
//! written plain or in groups separated by single spaces or single dashes (one kind per number).
use super::scan::{has_digits, number, number_ends_free, number_starts_free};
use crate::masking::Span;

const MIN_DIGITS: usize = 13;
const MAX_DIGITS: usize = 19;
/// A grouped number's first group has 4 to 6 digits, later groups at most 6.
const FIRST_GROUP: std::ops::RangeInclusive<usize> = 4..=6;
const MAX_GROUP: usize = 6;

/// Finds card numbers in `text`.
///
/// A candidate is a run of digits joined by single spaces or dashes; a card may start at any group
/// of the run and ends at a group boundary (so `4111 1111 1111 1111 123` finds the card), but
/// never inside a group: `41111111111111112` (17 digits, Luhn-invalid) is not a 16-digit card
/// followed by a `2`. Not preceded by a letter, `+` (a phone number) or `digit.` (a decimal).
pub fn find(text: &str) -> Vec<Span> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    if b.len() < MIN_DIGITS || !has_digits(b, MIN_DIGITS) {
        return out;
    }
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let run_end = run_end(b, i);
        // A run shorter than 13 bytes holds fewer than 13 digits.
        if run_end - i < MIN_DIGITS {
            i = run_end;
            continue;
        }
        let run_free = number_starts_free(b, i) && (i == 0 || b[i - 1] != b'+');
        let mut group = i;
        while group < run_end {
            let card = (group != i || run_free)
                .then(|| longest_card_at(b, group, run_end))
                .flatten();
            let next = match card {
                Some(end) => {
                    out.push(Span::new(group, end));
                    end
                }
                None => group_end(b, group),
            };
            // Skip the separator to the next group's first digit.
            group = if next < run_end { next + 1 } else { run_end };
        }
        i = run_end;
    }
    out
}

/// End of the run of digits starting at `start`, groups joined by a single space or dash.
fn run_end(b: &[u8], start: usize) -> usize {
    let mut end = group_end(b, start);
    while end + 1 < b.len() && matches!(b[end], b' ' | b'-') && b[end + 1].is_ascii_digit() {
        end = group_end(b, end + 1);
    }
    end
}

fn group_end(b: &[u8], start: usize) -> usize {
    start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count()
}

/// The end of the longest valid card that starts at the group at `start` and ends at a group
/// boundary of the run `..run_end`.
fn longest_card_at(b: &[u8], start: usize, run_end: usize) -> Option<usize> {
    let mut digits = [0u8; MAX_DIGITS];
    let mut count = 0;
    let mut separator = None;
    let mut first_group = 0;
    let mut best = None;
    let mut pos = start;
    loop {
        let end = group_end(b, pos);
        let len = end - pos;
        if count + len > MAX_DIGITS {
            break;
        }
        digits[count..count + len].copy_from_slice(&b[pos..end]);
        count += len;
        if pos == start {
            first_group = len;
        } else if len > MAX_GROUP || !FIRST_GROUP.contains(&first_group) {
            break;
        }
        let bounded = end < run_end || number_ends_free(b, end);
        if count >= MIN_DIGITS && bounded && is_card(&digits[..count]) {
            best = Some(end);
        }
        if end >= run_end || *separator.get_or_insert(b[end]) != b[end] {
            break;
        }
        pos = end + 1;
    }
    best
}

/// Brand prefix and length, then the Luhn check.
pub fn is_card(digits: &[u8]) -> bool {
    brand_accepts(digits) && luhn(digits)
}

/// Known issuer prefixes (IIN) and the lengths each brand issues.
fn brand_accepts(d: &[u8]) -> bool {
    let len = d.len();
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&len) {
        return false;
    }
    let p2 = number(&d[..2]);
    let p3 = number(&d[..3]);
    let p4 = number(&d[..4]);
    match d[0] {
        b'4' => matches!(len, 13 | 16 | 19), // Visa
        _ if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) => len == 16, // Mastercard
        _ if p2 == 34 || p2 == 37 => len == 15, // Amex
        _ if p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) => len >= 16, // Discover
        _ if (3528..=3589).contains(&p4) => len >= 16, // JCB
        _ if p2 == 36 || p2 == 38 || (300..=305).contains(&p3) => len >= 14, // Diners
        _ if p2 == 62 => len >= 16,          // UnionPay
        _ => false,
    }
}

/// The Luhn (mod 10) check over ASCII digits.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::detect::tests::{assert_finds, assert_finds_nothing};

    /// A Luhn-valid number of `len` digits starting with `prefix`, body from a simple generator.
    fn generate(prefix: &str, len: usize, seed: u64) -> String {
        let mut s = prefix.to_owned();
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        while s.len() < len - 1 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s.push(char::from(b'0' + u8::try_from((x >> 33) % 10).unwrap()));
        }
        for check in b'0'..=b'9' {
            let mut candidate = s.clone();
            candidate.push(char::from(check));
            if luhn(candidate.as_bytes()) {
                return candidate;
            }
        }
        unreachable!("one check digit always fits")
    }

    /// The same number with its last digit off by one: Luhn-invalid.
    fn off_by_one(card: &str) -> String {
        let mut bytes = card.as_bytes().to_vec();
        let last = bytes.last_mut().unwrap();
        *last = if *last == b'9' { b'0' } else { *last + 1 };
        String::from_utf8(bytes).unwrap()
    }

    const BRANDS: &[(&str, &[usize])] = &[
        ("4", &[13, 16, 19]),
        ("51", &[16]),
        ("55", &[16]),
        ("2221", &[16]),
        ("2720", &[16]),
        ("34", &[15]),
        ("37", &[15]),
        ("6011", &[16, 19]),
        ("65", &[16]),
        ("644", &[16]),
        ("649", &[19]),
        ("3528", &[16]),
        ("3589", &[19]),
        ("36", &[14]),
        ("38", &[14]),
        ("300", &[14]),
        ("305", &[16]),
        ("62", &[16, 19]),
    ];

    #[test]
    fn generated_valid_cards_are_found_and_off_by_one_are_not() {
        for (seed, &(prefix, lengths)) in (1u64..).zip(BRANDS) {
            for &len in lengths {
                let card = generate(prefix, len, seed * 31 + len as u64);
                assert_finds(find, &format!("pay with {card} now"), &[&card]);
                assert_finds_nothing(find, &format!("pay with {} now", off_by_one(&card)));
            }
        }
    }

    #[test]
    fn wrong_length_for_brand_or_unknown_prefix() {
        let cases = [
            generate("4", 14, 1), // Visa is 13, 16 or 19
            generate("4", 15, 2),
            generate("51", 15, 3),   // Mastercard is 16
            generate("2721", 16, 4), // past the 2-series range
            generate("2220", 16, 5),
            generate("34", 16, 6),   // Amex is 15
            generate("6012", 16, 7), // not Discover
            generate("3527", 16, 8), // before JCB
            generate("306", 14, 9),  // past Diners 300–305
            generate("1", 16, 10),
            generate("9", 16, 11),
            generate("7", 16, 12),
        ];
        for card in cases {
            assert_finds_nothing(find, &format!("x {card} y"));
        }
    }

    #[test]
    fn positives() {
        let cases: &[(&str, &[&str])] = &[
            ("4111111111111111", &["4111111111111111"]),
            ("card: 4111 1111 1111 1111.", &["4111 1111 1111 1111"]),
            ("4111-1111-1111-1111", &["4111-1111-1111-1111"]),
            ("amex 3782 822463 10005 exp", &["3782 822463 10005"]),
            (
                "5555555555554444,5105105105105100",
                &["5555555555554444", "5105105105105100"],
            ),
            ("{\"pan\":\"2223003122003222\"}", &["2223003122003222"]),
            (
                "6011111111111117 and 3530111333300000",
                &["6011111111111117", "3530111333300000"],
            ),
            ("diners 30569309025904", &["30569309025904"]),
            ("visa13 4222222222222", &["4222222222222"]),
            ("up 6200000000000005", &["6200000000000005"]),
            // A card followed by a CVV or preceded by a quantity in the same run of groups.
            ("4111 1111 1111 1111 123", &["4111 1111 1111 1111"]),
            ("qty 2 4111 1111 1111 1111", &["4111 1111 1111 1111"]),
            ("(4012888888881881)", &["4012888888881881"]),
            ("\t371449635398431\n", &["371449635398431"]),
        ];
        for &(text, want) in cases {
            assert_finds(find, text, want);
        }
    }

    #[test]
    fn negatives() {
        let cases = [
            "4111111111111112",     // Luhn
            "41111111111111111",    // 17 digits: inside a longer run
            "141111111111111111",   // card digits inside a longer run
            "id 4111111111111111x", // glued to a word
            "ref_4111111111111111",
            "0.4111111111111111", // a decimal
            "4111111111111111.5",
            "+4111111111111111",          // a phone-like number
            "4111 1111-1111 1111",        // mixed separators
            "4111  1111  1111  1111",     // double spaces
            "41 11 11 11 11 11 11 11",    // first group too short
            "4111 1111111 11111",         // a later group longer than 6
            "2024-01-15 12:30:45.123456", // a timestamp
            "1234567890123",              // no brand
            "no digits here",
            "",
        ];
        for text in cases {
            assert_finds_nothing(find, text);
        }
    }
}
