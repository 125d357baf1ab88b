//! AWS access key ids: `AKIA` (long-term), `ASIA` (temporary), `ABIA`, `ACCA`, then 16 upper-case
//! letters or digits, not glued to a word on either side.
use super::scan::is_word;
use crate::masking::Span;

const PREFIXES: [&[u8; 4]; 4] = [b"AKIA", b"ASIA", b"ABIA", b"ACCA"];
const LEN: usize = 20;

/// Finds AWS access key ids in `text`.
pub fn find(text: &str) -> Vec<Span> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    if b.len() < LEN {
        return out;
    }
    let mut i = 0;
    while i + LEN <= b.len() {
        if b[i] == b'A' && is_key_at(b, i) {
            out.push(Span::new(i, i + LEN));
            i += LEN;
        } else {
            i += 1;
        }
    }
    out
}

fn is_key_at(b: &[u8], start: usize) -> bool {
    let key = &b[start..start + LEN];
    PREFIXES.iter().any(|p| key.starts_with(*p))
        && key[4..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && (start == 0 || !is_word(b[start - 1]))
        && b.get(start + LEN).is_none_or(|&c| !is_word(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::detect::tests::{assert_finds, assert_finds_nothing};

    #[test]
    fn positives() {
        let cases: &[(&str, &[&str])] = &[
            ("AKIAIOSFODNN7EXAMPLE", &["AKIAIOSFODNN7EXAMPLE"]),
            (
                "aws_access_key_id = AKIAI44QH8DHBEXAMPLE\n",
                &["AKIAI44QH8DHBEXAMPLE"],
            ),
            ("ASIAY34FZKBOKMUTVV7A", &["ASIAY34FZKBOKMUTVV7A"]),
            (
                "{\"AccessKeyId\":\"ASIAJEXAMPLEXEG2JICE\"}",
                &["ASIAJEXAMPLEXEG2JICE"],
            ),
            ("key=ABIA2ABCDEFGHIJKLMNO&x", &["ABIA2ABCDEFGHIJKLMNO"]),
            ("ACCA0123456789ABCDEF", &["ACCA0123456789ABCDEF"]),
            (
                "AKIAIOSFODNN7EXAMPLE,ASIAY34FZKBOKMUTVV7A",
                &["AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A"],
            ),
            (
                "export AWS_ACCESS_KEY_ID='AKIA2E0A8F3B244C9986'",
                &["AKIA2E0A8F3B244C9986"],
            ),
            ("(AKIAZZZZZZZZZZZZZZZZ)", &["AKIAZZZZZZZZZZZZZZZZ"]),
        ];
        for &(text, want) in cases {
            assert_finds(find, text, want);
        }
    }

    #[test]
    fn negatives() {
        let cases = [
            "AKIAIOSFODNN7EXAMPL",   // 19 characters
            "AKIAIOSFODNN7EXAMPLEX", // 21: glued to a word
            "XAKIAIOSFODNN7EXAMPLE",
            "_AKIAIOSFODNN7EXAMPLE",
            "AKIAiosfodnn7example", // lower case
            "akiaIOSFODNN7EXAMPLE",
            "AKIDIOSFODNN7EXAMPLE", // unknown prefix
            "AIDAIOSFODNN7EXAMPLE", // an IAM user id, not a key
            "AKIA-IOSFODNN7EXAMPL",
            "{\"AccessKeyId\":\"ASIAJEXAMPLEXEG2JICEA\"}", // 21
            "AKIAIOSFODNN7EXAMP E",
            "",
        ];
        for text in cases {
            assert_finds_nothing(find, text);
        }
    }
}
