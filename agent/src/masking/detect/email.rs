//! Email addresses: a pragmatic subset of RFC 5322, `local@domain.tld`.
//!
//! Local part: ASCII letters, digits and `._%+-`, at most 64 bytes, no leading, trailing or doubled
//! dot. Domain: at least two dot-separated labels of letters, digits and inner hyphens (1–63
//! bytes each), the last one (TLD) letters only (2+) or punycode (`xn--…`). Trailing punctuation
//! (`alice@example.com.` at the end of a sentence) is not part of the match. Quoted local parts,
//! IP-literal domains and non-ASCII addresses are not detected.
use crate::masking::Span;

const MAX_LOCAL: usize = 64;
const MAX_LABEL: usize = 63;

/// Finds email addresses in `text`.
pub fn find(text: &str) -> Vec<Span> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    if b.len() < 6 {
        return out;
    }
    let mut floor = 0;
    for at in memchr::memchr_iter(b'@', b) {
        if at < floor {
            continue;
        }
        let Some(start) = local_start(b, floor, at) else {
            continue;
        };
        let Some(end) = domain_end(b, at + 1) else {
            continue;
        };
        out.push(Span::new(start, end));
        floor = end;
    }
    out
}

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// Start of the local part ending before `at`, not before `floor` (the end of the previous match).
fn local_start(b: &[u8], floor: usize, at: usize) -> Option<usize> {
    if at == 0 || b[at - 1] == b'.' {
        return None;
    }
    let mut start = at;
    // Stop at a doubled dot: the address starts after it.
    while start > floor && is_local(b[start - 1]) && !(b[start - 1] == b'.' && b[start] == b'.') {
        start -= 1;
    }
    while b[start] == b'.' {
        start += 1;
    }
    (start < at && at - start <= MAX_LOCAL).then_some(start)
}

/// End of the longest valid domain starting at `start`: at least two labels, a valid TLD.
fn domain_end(b: &[u8], start: usize) -> Option<usize> {
    let mut best = None;
    let mut labels = 0;
    let mut pos = start;
    loop {
        let label_start = pos;
        while pos < b.len() && (b[pos].is_ascii_alphanumeric() || b[pos] == b'-') {
            pos += 1;
        }
        // A trailing hyphen is punctuation, not part of the label.
        let mut label_end = pos;
        while label_end > label_start && b[label_end - 1] == b'-' {
            label_end -= 1;
        }
        let label = &b[label_start..label_end];
        if label.is_empty() || label.len() > MAX_LABEL || label[0] == b'-' {
            break;
        }
        labels += 1;
        if labels >= 2 && is_tld(label) {
            best = Some(label_end);
        }
        let more = label_end == pos
            && b.get(pos) == Some(&b'.')
            && b.get(pos + 1).is_some_and(u8::is_ascii_alphanumeric);
        if !more {
            break;
        }
        pos += 1;
    }
    best
}

fn is_tld(label: &[u8]) -> bool {
    if let Some(puny) = label.strip_prefix(b"xn--") {
        return !puny.is_empty() && puny.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
    }
    label.len() >= 2 && label.iter().all(u8::is_ascii_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::detect::tests::{assert_finds, assert_finds_nothing};

    #[test]
    fn positives() {
        let cases: &[(&str, &[&str])] = &[
            ("alice@example.com", &["alice@example.com"]),
            (
                "Write to bob.smith+tag@mail.example.co.uk.",
                &["bob.smith+tag@mail.example.co.uk"],
            ),
            (
                "<carol_o-neil@sub-domain.example.org>",
                &["carol_o-neil@sub-domain.example.org"],
            ),
            ("\"dave%ops@example.io\",", &["dave%ops@example.io"]),
            ("mailto:eve@example.net?subject=hi", &["eve@example.net"]),
            ("a@b.co", &["a@b.co"]),
            (
                "x: j.doe@EXAMPLE.COM; y: k@example.de",
                &["j.doe@EXAMPLE.COM", "k@example.de"],
            ),
            (
                "user@xn--bcher-kva.xn--p1ai",
                &["user@xn--bcher-kva.xn--p1ai"],
            ),
            ("(frank@example.com)", &["frank@example.com"]),
            ("grace@example.com-", &["grace@example.com"]),
            ("..heidi@example.com", &["heidi@example.com"]),
            ("ivan..x@example.com", &["x@example.com"]),
            ("ünïcode judy@example.com ✓", &["judy@example.com"]),
            // A trailing numeric label is not a TLD: the address ends before it.
            ("mallory@example.com.123", &["mallory@example.com"]),
        ];
        for &(text, want) in cases {
            assert_finds(find, text, want);
        }
    }

    #[test]
    fn negatives() {
        let cases = [
            "no at sign here",
            "@example.com",
            "alice@",
            "alice@localhost",
            "alice@example",
            "alice@example.c",
            "alice@example.123",
            "alice.@example.com",
            "alice@.example.com",
            "alice@-example.com",
            "alice@@example.com",
            "@@@@@@",
            "price 5 @ 3.50 each",
            "user @ example.com",
            "@mention in a tweet",
            "a@b",
        ];
        for text in cases {
            assert_finds_nothing(find, text);
        }
    }

    #[test]
    fn local_part_is_bounded() {
        let long = format!("{}@example.com", "a".repeat(65));
        assert_finds(find, &long, &[]);
        let ok = format!("{}@example.com", "a".repeat(64));
        assert_finds(find, &ok, &[&ok]);
    }
}
