//! IBANs: country code, two check digits and a BBAN of the country's length, mod-97-valid.
//!
//! Electronic form (`DE89370400440532013000`) or print form with a single space after every
//! fourth character (`DE89 3704 0044 0532 0130 00`). Upper case only, as ISO 13616 writes them.
use super::scan::is_word;
use crate::masking::Span;

/// IBAN length per country (ISO 13616 registry): EU/EEA, the UK and Switzerland, and a few others
/// often seen in European payment data.
const LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AT", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"CH", 21),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"EE", 20),
    (b"ES", 24),
    (b"FI", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GI", 23),
    (b"GR", 27),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MT", 31),
    (b"NL", 18),
    (b"NO", 15),
    (b"PL", 28),
    (b"PT", 25),
    (b"RO", 24),
    (b"SA", 24),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"TR", 26),
];
const MIN_LEN: usize = 15;
const MAX_LEN: usize = 34;

/// Finds IBANs in `text`, not glued to a word on either side.
pub fn find(text: &str) -> Vec<Span> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    if b.len() < MIN_LEN || !b.iter().any(u8::is_ascii_digit) {
        return out;
    }
    let mut i = 0;
    while i + MIN_LEN <= b.len() {
        if !b[i].is_ascii_uppercase() {
            i += 1;
            continue;
        }
        match match_at(b, i) {
            Some(end) => {
                out.push(Span::new(i, end));
                i = end;
            }
            None => i += 1,
        }
    }
    out
}

fn match_at(b: &[u8], start: usize) -> Option<usize> {
    let head = b.get(start..start + 4)?;
    if !(head[0].is_ascii_uppercase()
        && head[1].is_ascii_uppercase()
        && head[2].is_ascii_digit()
        && head[3].is_ascii_digit())
        || (start > 0 && is_word(b[start - 1]))
    {
        return None;
    }
    let len = country_length([head[0], head[1]])?;
    let grouped = b.get(start + 4) == Some(&b' ');
    let mut iban = [0u8; MAX_LEN];
    iban[..4].copy_from_slice(head);
    let mut count = 4;
    let mut pos = start + 4;
    while count < len {
        if grouped && count % 4 == 0 {
            (b.get(pos) == Some(&b' ')).then_some(())?;
            pos += 1;
        }
        let c = *b.get(pos)?;
        if !(c.is_ascii_uppercase() || c.is_ascii_digit()) {
            return None;
        }
        iban[count] = c;
        count += 1;
        pos += 1;
    }
    let free = b.get(pos).is_none_or(|&c| !is_word(c));
    (free && is_valid(&iban[..len])).then_some(pos)
}

fn country_length(code: [u8; 2]) -> Option<usize> {
    LENGTHS
        .iter()
        .find(|(c, _)| **c == code)
        .map(|&(_, len)| len)
}

/// Check digits 02–98 and the ISO 7064 mod-97-10 check: the number formed by the BBAN, the
/// country code (letters as 10–35) and the check digits leaves remainder 1.
pub fn is_valid(iban: &[u8]) -> bool {
    if iban.len() < 5 || matches!(&iban[2..4], b"00" | b"01" | b"99") {
        return false;
    }
    let mut rem = 0u32;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        rem = match c {
            b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => (rem * 100 + u32::from(c - b'A') + 10) % 97,
            _ => return false,
        };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::detect::tests::{assert_finds, assert_finds_nothing};

    /// Example IBANs published by the national banks / the IBAN registry, one per required country.
    const EXAMPLES: &[&str] = &[
        "DE89370400440532013000",
        "FR1420041010050500013M02606",
        "GB82WEST12345698765432",
        "ES9121000418450200051332",
        "IT60X0542811101000000123456",
        "NL91ABNA0417164300",
        "BE68539007547034",
        "CH9300762011623852957",
        "AT611904300234573201",
        "PL61109010140000071219812874",
        "IE29AIBK93115212345678",
        "PT50000201231234567890154",
        "SE4550000000058398257466",
        "DK5000400440116243",
        "NO9386011117947",
        "FI2112345600000785",
        "LU280019400644750000",
    ];

    /// Print form: a space after every fourth character.
    fn grouped(iban: &str) -> String {
        let chars: Vec<char> = iban.chars().collect();
        chars
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The same IBAN with its last character changed: the mod-97 check fails.
    fn corrupted(iban: &str) -> String {
        let mut bytes = iban.as_bytes().to_vec();
        let last = bytes.last_mut().unwrap();
        *last = if *last == b'9' { b'0' } else { *last + 1 };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn registry_examples_in_both_forms() {
        for iban in EXAMPLES {
            assert_eq!(
                country_length([iban.as_bytes()[0], iban.as_bytes()[1]]),
                Some(iban.len())
            );
            assert_finds(find, &format!("IBAN: {iban}."), &[iban]);
            let print = grouped(iban);
            assert_finds(find, &format!("pay to {print} today"), &[&print]);
            assert_finds_nothing(find, &corrupted(iban));
            assert_finds_nothing(find, &grouped(&corrupted(iban)));
        }
    }

    #[test]
    fn positives() {
        let cases: &[(&str, &[&str])] = &[
            (
                "{\"iban\":\"DE89370400440532013000\"}",
                &["DE89370400440532013000"],
            ),
            (
                "DE89 3704 0044 0532 0130 00\nGB82WEST12345698765432",
                &["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"],
            ),
            ("(NO9386011117947)", &["NO9386011117947"]),
            ("iban=BE68539007547034&x", &["BE68539007547034"]),
        ];
        for &(text, want) in cases {
            assert_finds(find, text, want);
        }
    }

    #[test]
    fn negatives() {
        let cases = [
            "DE89370400440532013001",  // check fails
            "DE8937040044053201300",   // one short
            "DE893704004405320130000", // one long
            "XDE89370400440532013000", // glued to a word
            "DE89370400440532013000X",
            "de89370400440532013000",       // lower case
            "XX89370400440532013000",       // unknown country
            "US64SVBKUS6S3300958879",       // no IBANs in the US
            "DE89 3704 0044 0532013000",    // spaces not every fourth
            "DE89  3704 0044 0532 0130 00", // double space
            "DE8937040044 0532 0130 00",
            "GB00WEST12345698765432", // check digits 00
            "GB01WEST12345698765432",
            "GB99WEST12345698765432",
            "ORDER1234567890123456",
            "",
        ];
        for text in cases {
            assert_finds_nothing(find, text);
        }
    }
}
