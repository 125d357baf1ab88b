//! Lexing a query string: statement boundaries and literal redaction.
//!
//! The whole string is tokenized once with sqlparser's PostgreSQL tokenizer. Statements are the
//! runs of tokens between top-level `;` (a `;` inside parentheses does not split); runs holding
//! only whitespace and comments are not statements. Redaction rebuilds a statement from its
//! tokens with every literal masked and comments dropped.

use std::fmt::Write as _;

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer, TokenizerError, Whitespace};

/// The mask for a string literal of any quoting (`'..'`, `E'..'`, `$$..$$`, `B'..'`, `X'..'`, ...).
pub(crate) const STRING_MASK: &str = "'?'";
/// The mask for a numeric literal.
pub(crate) const NUMBER_MASK: &str = "?";

/// One statement's tokens.
pub(crate) struct Chunk {
    /// The tokens, whitespace and comments included, without the closing `;`.
    pub tokens: Vec<Token>,
    /// How many tokens are neither whitespace nor comments.
    pub significant: usize,
}

/// Tokenizes the whole query string.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<Token>, TokenizerError> {
    Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize()
}

/// Splits tokens into statements at top-level `;`.
pub(crate) fn split(tokens: Vec<Token>) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut current = Chunk {
        tokens: Vec::new(),
        significant: 0,
    };
    let mut depth = 0usize;
    for token in tokens {
        match token {
            Token::SemiColon if depth == 0 => {
                let done = std::mem::replace(
                    &mut current,
                    Chunk {
                        tokens: Vec::new(),
                        significant: 0,
                    },
                );
                if done.significant > 0 {
                    chunks.push(done);
                }
                continue;
            }
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::EOF => continue,
            _ => {}
        }
        if !matches!(token, Token::Whitespace(_)) {
            current.significant += 1;
        }
        current.tokens.push(token);
    }
    if current.significant > 0 {
        chunks.push(current);
    }
    chunks
}

/// The statement text with literals masked (`'?'` for strings, `?` for numbers) and comments
/// replaced by a space. Identifiers, keywords, operators and `$n` parameters are kept.
pub(crate) fn redact(tokens: &[Token]) -> String {
    let mut out = String::new();
    for token in tokens {
        match token {
            Token::Whitespace(
                Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_),
            ) => out.push(' '),
            Token::Number(..) => out.push_str(NUMBER_MASK),
            t if literal_kind(t).is_some() => out.push_str(STRING_MASK),
            Token::EOF => {}
            other => {
                // Writing to a String cannot fail.
                let _ = write!(out, "{other}");
            }
        }
    }
    out.trim().to_owned()
}

/// Whether `token` is a literal (a number or a string of any quoting).
pub(crate) fn is_literal(token: &Token) -> bool {
    literal_kind(token).is_some()
}

/// The name of a literal token's kind (`None` for anything that is not a literal).
pub(crate) fn literal_kind(token: &Token) -> Option<&'static str> {
    Some(match token {
        Token::Number(_, false) => "n",
        Token::Number(_, true) => "nL",
        Token::SingleQuotedString(_) => "s",
        Token::DoubleQuotedString(_) => "ds",
        Token::TripleSingleQuotedString(_) => "ts",
        Token::TripleDoubleQuotedString(_) => "tds",
        Token::DollarQuotedString(_) => "dq",
        Token::SingleQuotedByteStringLiteral(_) => "b",
        Token::DoubleQuotedByteStringLiteral(_) => "db",
        Token::TripleSingleQuotedByteStringLiteral(_) => "tb",
        Token::TripleDoubleQuotedByteStringLiteral(_) => "tdb",
        Token::SingleQuotedRawStringLiteral(_) => "r",
        Token::DoubleQuotedRawStringLiteral(_) => "dr",
        Token::TripleSingleQuotedRawStringLiteral(_) => "tr",
        Token::TripleDoubleQuotedRawStringLiteral(_) => "tdr",
        Token::NationalStringLiteral(_) => "N",
        Token::QuoteDelimitedStringLiteral(_) => "q",
        Token::NationalQuoteDelimitedStringLiteral(_) => "Nq",
        Token::EscapedStringLiteral(_) => "E",
        Token::UnicodeStringLiteral(_) => "U",
        Token::HexStringLiteral(_) => "X",
        _ => return None,
    })
}

/// The key under which a statement's classification may be remembered: its tokens with every
/// literal's value replaced by a marker of the literal's kind, each run of whitespace and
/// comments by one space (none at either end). Two
/// statements with the same key differ only in literal values and comments, which never change
/// their class or tables, with one exception: the value of an `EXPLAIN (ANALYZE <value>)` option
/// decides whether the statement runs, and the value given to `client_encoding` or
/// `standard_conforming_strings` decides whether it is Unknown (`reading`). So a statement
/// holding `EXPLAIN` or such a word has no key (`None`), nor has one whose key would exceed
/// `max_len` bytes.
///
/// Markers start with NUL, which cannot occur in PostgreSQL query text (a Query message is a C
/// string), so a marker never equals any other token's text.
pub(crate) fn cache_key(tokens: &[Token], max_len: usize) -> Option<String> {
    let mut out = String::with_capacity(128);
    for token in tokens {
        match token {
            Token::Word(w) if w.keyword == sqlparser::keywords::Keyword::EXPLAIN => return None,
            // A literal's value may decide the class (see `reading`).
            Token::Word(w) if super::reading::value_may_decide(&w.value) => return None,
            Token::Whitespace(_) => {
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            Token::EOF => {}
            // Its value could decide whether the statement parses (see `prelex`).
            Token::Number(n, _) if n.len() > super::prelex::MAX_NUMBER_DIGITS => return None,
            t => match literal_kind(t) {
                Some(kind) => {
                    out.push('\0');
                    out.push_str(kind);
                    out.push('\0');
                }
                // Writing to a String cannot fail.
                None => {
                    let _ = write!(out, "{t}");
                }
            },
        }
        if out.len() > max_len {
            return None;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    Some(out)
}

/// Best-effort redaction of text the tokenizer rejected (an unterminated string, comment or
/// quoted identifier): strings and dollar-quoted bodies become `'?'` (to the end of the text when
/// unterminated), numbers not inside an identifier become `?`, comments a space. Errs towards
/// masking too much.
pub(crate) fn redact_raw(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' => {
                out.push_str(STRING_MASK);
                i = skip_quoted(&chars, i + 1);
            }
            '"' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '"')
                    .map_or(chars.len(), |p| i + 2 + p);
                out.extend(&chars[i..end]);
                i = end;
            }
            '-' if next == Some('-') => {
                out.push(' ');
                i = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |p| i + p);
            }
            '/' if next == Some('*') => {
                out.push(' ');
                i = chars[i + 2..]
                    .windows(2)
                    .position(|w| w == ['*', '/'])
                    .map_or(chars.len(), |p| i + 4 + p);
            }
            '$' if next.is_some_and(|n| n.is_ascii_digit()) => {
                // A `$n` parameter: keep it.
                let end = chars[i + 1..]
                    .iter()
                    .position(|c| !c.is_ascii_digit())
                    .map_or(chars.len(), |p| i + 1 + p);
                out.extend(&chars[i..end]);
                i = end;
            }
            '$' => match dollar_tag(&chars, i) {
                Some(tag_len) => {
                    out.push_str(STRING_MASK);
                    let tag = &chars[i..i + tag_len];
                    let body = i + tag_len;
                    i = chars[body..]
                        .windows(tag_len)
                        .position(|w| w == tag)
                        .map_or(chars.len(), |p| body + p + tag_len);
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            },
            c if c.is_ascii_digit()
                && !i.checked_sub(1).is_some_and(|p| is_ident_char(chars[p])) =>
            {
                out.push_str(NUMBER_MASK);
                i = chars[i..]
                    .iter()
                    .position(|&c| !(is_ident_char(c) || c == '.'))
                    .map_or(chars.len(), |p| i + p);
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out.trim().to_owned()
}

/// Index just past the closing quote of a string whose body starts at `start` (`''` and a
/// backslash escape both continue the string), or the end of the text.
fn skip_quoted(chars: &[char], start: usize) -> usize {
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '\'' if chars.get(i + 1) == Some(&'\'') => i += 2,
            '\'' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// The length of a dollar-quote opening tag (`$$`, `$tag$`) at `start`, if there is one.
fn dollar_tag(chars: &[char], start: usize) -> Option<usize> {
    let rest = &chars[start + 1..];
    let close = rest.iter().position(|&c| c == '$')?;
    let tag = &rest[..close];
    let valid = tag.first().is_none_or(|c| !c.is_ascii_digit())
        && tag.iter().all(|&c| c.is_alphanumeric() || c == '_');
    valid.then_some(close + 2)
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

#[cfg(test)]
mod tests {
    use super::{redact, redact_raw, split, tokenize};

    fn chunks(sql: &str) -> Vec<String> {
        split(tokenize(sql).expect("tokenize"))
            .iter()
            .map(|c| redact(&c.tokens))
            .collect()
    }

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("  ;; \n ; ", &[]),
            ("-- just a comment", &[]),
            ("SELECT a FROM t", &["SELECT a FROM t"]),
            (
                "BEGIN; SELECT x FROM t;END;",
                &["BEGIN", "SELECT x FROM t", "END"],
            ),
            (
                "SELECT f(';'); SELECT $$;$$",
                &["SELECT f('?')", "SELECT '?'"],
            ),
            ("SELECT (a; b); SELECT c", &["SELECT (a; b)", "SELECT c"]),
        ];
        for (sql, want) in cases {
            assert_eq!(chunks(sql), *want, "{sql:?}");
        }
    }

    #[test]
    fn redacts_every_kind_of_literal() {
        let cases = [
            ("SELECT 'secret', 42, 1.5e3", "SELECT '?', ?, ?"),
            (
                "SELECT E'a\\'b', B'0101', X'1F', U&'d\\0061t', N'x'",
                "SELECT '?', '?', '?', '?', '?'",
            ),
            ("SELECT $tag$ body; 'x' $tag$, $$ y $$", "SELECT '?', '?'"),
            (
                "ALTER ROLE bob PASSWORD 'hunter2'",
                "ALTER ROLE bob PASSWORD '?'",
            ),
            (
                "SELECT a FROM t WHERE aid = $1 -- id 7\n AND b = 3 /* note 9 */",
                "SELECT a FROM t WHERE aid = $1  \n AND b = ?",
            ),
            (
                "SELECT \"Col 1\", t1.c2 FROM \"T\"",
                "SELECT \"Col 1\", t1.c2 FROM \"T\"",
            ),
            (
                "SELECT '2024-01-01'::date + interval '1 day'",
                "SELECT '?'::date + interval '?'",
            ),
        ];
        for (sql, want) in cases {
            let got = chunks(sql);
            assert_eq!(got, [want], "{sql:?}");
        }
    }

    #[test]
    fn raw_redaction_masks_unterminated_input() {
        let cases = [
            ("SELECT 'unterminated secret", "SELECT '?'"),
            (
                "SELECT 'a''b', 12 FROM t2 WHERE x = 'open",
                "SELECT '?', ? FROM t2 WHERE x = '?'",
            ),
            ("SELECT $$ body without end", "SELECT '?'"),
            (
                "SELECT $1, $q$ a $q$, 7 /* open comment 5",
                "SELECT $1, '?', ?",
            ),
            (
                "SELECT \"unterminated ident 5",
                "SELECT \"unterminated ident 5",
            ),
            ("SELECT x -- 42\n, 'it''s", "SELECT x  \n, '?'"),
        ];
        for (sql, want) in cases {
            assert!(tokenize(sql).is_err(), "tokenizer accepted {sql:?}");
            assert_eq!(redact_raw(sql), want, "{sql:?}");
        }
    }
}
