//! A fast, deliberately narrow scan of a query string that finds its literal values without
//! sqlparser's tokenizer, so that a client inlining its literals (`... WHERE aid = 42`) finds its
//! statement's classification in a memo without tokenizing it each time.
//!
//! The scan understands only the plainest SQL and gives up ([`None`]) on anything else: comments,
//! backslashes or a prefix (`E'`, `U&'`, ...) on a string, dollar quoting, `EXPLAIN` anywhere
//! (its `ANALYZE` value decides what runs) or a word whose literal may decide the class
//! (`reading::value_may_decide`), a `;` inside parentheses or with anything but
//! whitespace after it, a run of more than [`MAX_NUMBER_DIGITS`] digits, an unterminated quote. What it does accept, it splits into text kept verbatim and literals:
//! - a string: `'` ... `'` (a doubled `''` inside), not preceded by an identifier character or `&`;
//! - a number: a run of ASCII digits with no identifier character or `.` on either side.
//!
//! Double-quoted identifiers and `$n` parameters are kept verbatim.
//!
//! # Why a hit is exact
//!
//! The [`Scan::key`] is the text with each literal replaced by a marker of its kind (markers hold
//! NUL, which no query text contains), so two strings share a key only when they are equal
//! outside the literals this scan found. A key is remembered only after the full path has
//! classified that very string and [`Scan::agrees`] with it: one statement, as many literals as
//! sqlparser's tokenizer found, and the same redacted text. Inside a literal of the accepted
//! forms no character can end it early or late (no backslash, and `''` is read alike by both),
//! so any other string with the same key tokenizes to the same tokens with other literal values,
//! and literal values never change a class or a table list (the exceptions, `EXPLAIN
//! (ANALYZE <value>)` and the settings of `reading`, are refused above). Its redacted text is the same too: a redaction is the
//! key with markers replaced by masks. A string sqlparser reads as a name (`DROP TABLE 'x'`) makes
//! the statement Unknown whatever its value (see `names::STRING_NAME`).

use super::lex::{NUMBER_MASK, STRING_MASK};

const STRING_MARK: &str = "\0s\0";
/// Longest number taken as a literal: sqlparser reads some numbers into `u64`/`i64` (a type's
/// length, `LIMIT`, ...), where a longer one fails to parse, so its value would matter.
pub(crate) const MAX_NUMBER_DIGITS: usize = 18;
const NUMBER_MARK: &str = "\0n\0";

/// A query string split into verbatim text and literals.
pub(crate) struct Scan {
    /// The text with literals replaced by markers, trailing `;` and whitespace dropped.
    pub key: String,
    /// How many literals were found.
    pub literals: usize,
}

/// Scans `sql`; `None` when it holds anything this scan does not understand, or when the key
/// would be longer than `max_len` bytes.
pub(crate) fn scan(sql: &str, max_len: usize) -> Option<Scan> {
    let b = sql.as_bytes();
    let mut key = String::with_capacity(sql.len().min(max_len) + 8);
    let mut literals = 0;
    let mut verbatim = 0; // start of the verbatim run not yet copied into `key`
    let mut i = 0;
    let mut end = None; // position of a top-level `;`
    let mut depth = 0usize; // parentheses open (a `;` inside them does not end the statement)
    while i < b.len() {
        if end.is_some() {
            if !b[i].is_ascii_whitespace() {
                return None;
            }
            i += 1;
            continue;
        }
        match b[i] {
            b'\'' => {
                if i > 0 && (is_ident(b[i - 1]) || b[i - 1] == b'&') {
                    return None;
                }
                let close = string_end(b, i + 1)?;
                key.push_str(&sql[verbatim..i]);
                key.push_str(STRING_MARK);
                literals += 1;
                i = close;
                verbatim = i;
            }
            b'"' => {
                if i > 0 && b[i - 1] == b'&' {
                    return None;
                }
                let close = b[i + 1..].iter().position(|&c| c == b'"')?;
                if super::reading::value_may_decide(&sql[i + 1..i + 1 + close]) {
                    return None;
                }
                i += close + 2;
            }
            b'$' => {
                if !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
                i += 1;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            b'\\' => return None,
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b';' if depth > 0 => return None,
            b';' => {
                key.push_str(&sql[verbatim..i]);
                end = Some(i);
                i += 1;
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                let before = start.checked_sub(1).map(|p| b[p]);
                let after = b.get(i).copied();
                let bounded = |c: Option<u8>| c.is_none_or(|c| !is_ident(c) && c != b'.');
                if i - start > MAX_NUMBER_DIGITS {
                    return None;
                }
                if bounded(before) && bounded(after) {
                    key.push_str(&sql[verbatim..start]);
                    key.push_str(NUMBER_MARK);
                    literals += 1;
                    verbatim = i;
                }
            }
            c if c.is_ascii_alphabetic() => {
                let start = i;
                while b.get(i).is_some_and(|&c| is_ident(c)) {
                    i += 1;
                }
                let word = &sql[start..i];
                if word.eq_ignore_ascii_case("explain") || super::reading::value_may_decide(word) {
                    return None;
                }
            }
            _ => i += 1,
        }
        if key.len() > max_len {
            return None;
        }
    }
    if end.is_none() {
        key.push_str(&sql[verbatim..]);
    }
    let trimmed = key
        .trim_end_matches(|c: char| c.is_ascii_whitespace())
        .len();
    key.truncate(trimmed);
    let leading = key.len()
        - key
            .trim_start_matches(|c: char| c.is_ascii_whitespace())
            .len();
    key.drain(..leading);
    (key.len() <= max_len && !key.is_empty()).then_some(Scan { key, literals })
}

impl Scan {
    /// The text with literals masked as [`super::lex::redact`] masks them.
    pub fn redacted(&self) -> String {
        self.key
            .replace(STRING_MARK, STRING_MASK)
            .replace(NUMBER_MARK, NUMBER_MASK)
    }

    /// Whether the full path's reading of the same string matches this scan: one statement whose
    /// redaction equals [`Scan::redacted`], with `literals` literal tokens.
    pub fn agrees(&self, statements: usize, literals: usize, text_redacted: &str) -> bool {
        statements == 1 && literals == self.literals && self.redacted() == text_redacted
    }
}

/// Index just past the `'` closing a string whose body starts at `start`; `None` when the body
/// holds a backslash or the string is unterminated.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    loop {
        match *b.get(i)? {
            b'\\' => return None,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// Bytes that may continue an identifier (any non-ASCII byte counts, to be safe).
fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}
