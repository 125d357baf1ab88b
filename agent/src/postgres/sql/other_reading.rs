//! Query text PostgreSQL could read with other boundaries than tollgate does.
//!
//! Two sources of such text, each made Unknown (fail closed) by [`reads_alike`]:
//!
//! - **sqlparser's tokenizer and PostgreSQL's scanner disagree** on a few forms:
//!   - a dollar-quote tag: PostgreSQL takes any byte from 0x80 up into it, sqlparser only
//!     alphanumeric characters, so `$€$ ... $€$` is a string to the server and a placeholder, a
//!     word and more to tollgate. A `$` not followed by digits (`$n`) nor read as a dollar quote
//!     by sqlparser is therefore Unknown;
//!   - `X'...'`: sqlparser applies backslash escapes there, PostgreSQL never does (and checks the
//!     digits only when the value is used, which a skipped statement never does). A hex or bit
//!     string holding anything but its digits is Unknown (PostgreSQL would refuse it anyway).
//!   - an operator followed by `--` or `/*`: PostgreSQL ends a run of operator characters
//!     before either, which then starts a comment; sqlparser reads `>/*` or `>--` as one
//!     operator, so a quote in what the server takes as a comment opens a string for tollgate
//!     only. An operator token holding `--` or `/*` is Unknown, and so is `?-` followed by a
//!     token starting with `-` (sqlparser's fixed `?-` then `-`, PostgreSQL's `?` then `--`).
//! - **A setting changed where tollgate does not see it.** tollgate reads SQL as the session's
//!   settings say it is read: UTF-8, standard-conforming strings (`reading` keeps a session from
//!   changing either with a statement tollgate sees). A function may still change them inside the
//!   server. The server then reports the change and the session ends (`session::backend`), but a
//!   statement the client pipelined behind that function has already reached the server, which
//!   reads it under the new setting:
//!   - **`standard_conforming_strings` off.** A backslash in a plain `'...'` (or `N'...'`) string
//!     escapes the next character, as in `E'...'`: `'x\'` no longer ends where it did. Text
//!     holding a backslash is tokenized again with backslash escapes in plain strings, and the
//!     two token sequences must match: the same tokens outside literals, literals of the same
//!     kinds in the same places (their values may differ; a value never decides a class where a
//!     backslash can reach it, see [`super::reading`]). Whitespace and comments are not compared:
//!     the parser never sees them.
//!   - **A client encoding with ASCII trail bytes** (SJIS, SHIFT_JIS_2004, BIG5, GBK, GB18030;
//!     UHC's are letters only). The server converts the text from it before reading. A byte of
//!     0x80 or more may then begin a two-byte character whose second byte is `\` (0x5C): the
//!     backslash is part of a character, not an escape. Whether it is depends on the bytes before
//!     it and on the encoding, so a backslash right after any non-ASCII byte makes the text
//!     Unknown, wherever it is. And two different byte strings may convert to the same
//!     characters, so a dollar-quote tag that is not ASCII could close where tollgate sees none:
//!     Unknown too. (No such encoding has `'`, `"`, `$`, `-`, `*`, `/`, `;` or a newline as a
//!     trail byte, and no non-ASCII byte converts to an ASCII character, so quotes, ASCII
//!     dollar-quote tags and comments end alike under every encoding.)
//!
//! Text without a backslash costs one pass over its tokens.

use sqlparser::derive_dialect;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::lex;

derive_dialect!(
    NonConformingPostgreSql,
    PostgreSqlDialect,
    preserve_type_id = true,
    overrides = { supports_string_literal_backslash_escape = true }
);

/// Whether the server reads `sql` (tokenized by tollgate as `tokens`) with the same statement and
/// literal boundaries under every setting a function could switch to (see the module doc).
pub(crate) fn reads_alike(sql: &str, tokens: &[Token]) -> bool {
    if tokens.iter().any(misread) || tokens.windows(2).any(dash_after_question_dash) {
        return false;
    }
    let bytes = sql.as_bytes();
    if !bytes.contains(&b'\\') {
        return true;
    }
    if bytes.windows(2).any(|w| w[0] >= 0x80 && w[1] == b'\\') {
        return false;
    }
    match Tokenizer::new(&NonConformingPostgreSql::new(), sql).tokenize() {
        Ok(other) => same_boundaries(tokens, &other) && !other.iter().any(misread),
        Err(_) => false,
    }
}

/// Whether PostgreSQL may read the text of `token` with other boundaries (see the module doc).
fn misread(token: &Token) -> bool {
    match token {
        Token::Placeholder(p) => p
            .strip_prefix('$')
            .is_some_and(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit())),
        Token::DollarQuotedString(d) => d.tag.as_ref().is_some_and(|t| !t.is_ascii()),
        Token::HexStringLiteral(s) => !s.bytes().all(|b| b.is_ascii_hexdigit()),
        Token::SingleQuotedByteStringLiteral(s) => !s.bytes().all(|b| b == b'0' || b == b'1'),
        Token::CustomBinaryOperator(op) => op.contains("--") || op.contains("/*"),
        _ => false,
    }
}

/// `?-` directly followed by a token starting with `-`: PostgreSQL reads `?` and a comment.
fn dash_after_question_dash(pair: &[Token]) -> bool {
    matches!(pair, [Token::QuestionMarkDash, next] if next.to_string().starts_with('-'))
}

/// Whether two token sequences differ at most in literal values, whitespace and comments.
fn same_boundaries(a: &[Token], b: &[Token]) -> bool {
    let significant = |t: &&Token| !matches!(t, Token::Whitespace(_) | Token::EOF);
    let mut a = a.iter().filter(significant);
    let mut b = b.iter().filter(significant);
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if lex::is_literal(x) || lex::is_literal(y) => {
                if lex::literal_kind(x) != lex::literal_kind(y) {
                    return false;
                }
            }
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reads_alike;
    use crate::postgres::sql::lex;

    fn alike(sql: &str) -> bool {
        let tokens = lex::tokenize(sql).expect("tollgate's reading tokenizes");
        reads_alike(sql, &tokens)
    }

    #[test]
    fn text_without_a_backslash_reads_alike() {
        assert!(alike("SELECT 'it''s', E'x', $$a'b$$ FROM t -- é"));
        assert!(alike("SELECT 'café' FROM \"tablé\""));
    }

    #[test]
    fn backslashes_that_every_reading_splits_alike_pass() {
        for sql in [
            r"SELECT * FROM t WHERE name ~ '\d+\s'",
            r"SELECT * FROM t WHERE path LIKE 'a\_b%'",
            r"SELECT '\\' FROM t",
            r"SELECT E'line\n', E'it\'s' FROM t",
            r"SELECT $$ a\'b $$ FROM t",
            r"SELECT 1 /* \' */ FROM t",
            r"SELECT 1 FROM t -- it\'s",
        ] {
            assert!(alike(sql), "{sql}");
        }
    }

    #[test]
    fn a_backslash_before_a_quote_in_a_plain_string_is_read_otherwise_with_escapes() {
        // With standard_conforming_strings off, the server reads `'x\'; DROP TABLE t; --'` as
        // one literal; tollgate (on) reads a literal, a DROP and a comment. And the reverse.
        for sql in [
            r"SELECT 'x\'; DROP TABLE t; --'",
            r"SELECT 'x\', $$; DROP TABLE t; $$ --'",
            r"SELECT 'C:\'",
            r"SELECT N'x\', 1",
        ] {
            assert!(!alike(sql), "{sql}");
        }
    }

    #[test]
    fn a_backslash_right_after_a_non_ascii_character_is_unknown() {
        // `Á` is C3 81 in UTF-8; in SJIS, 81 5C is one character, so the server would not see
        // this backslash escape the quote, and the DROP would run.
        for sql in [
            "SELECT E'Á\\'; DROP TABLE t; --'",
            "SELECT 'Á\\d' FROM t",
            "SELECT $$Á\\$$",
        ] {
            assert!(!alike(sql), "{sql}");
        }
        assert!(alike("SELECT E'Á \\n' FROM t"));
    }

    /// Found in review, each dropping the table on a PostgreSQL 15 server.
    #[test]
    fn forms_sqlparser_reads_otherwise_than_postgresql_are_unknown() {
        for sql in [
            // PostgreSQL: a dollar string, then the DROP. sqlparser: `$`, a word, a string.
            "SELECT $€$, '$€$; DROP TABLE victim; --'",
            "SELECT $é$ x $é$",
            // Under SJIS, the two tags convert to the same characters.
            "SELECT $É\u{81db}$ $É\u{807f}$; DROP TABLE victim; -- $É\u{81db}$",
            // sqlparser escapes in X'': PostgreSQL reads the hex string `\`, then the DROP.
            r"CREATE TABLE IF NOT EXISTS s (c bit(8) DEFAULT X'\'); DROP TABLE victim; --')",
            "SELECT X'1g'",
            "SELECT B'012'",
            // PostgreSQL: a comment after the operator, then the DROP. sqlparser: `>/*` or
            // `>--`, then a string holding the DROP.
            "SELECT 1 >/* ' */ 0; DROP TABLE victim; -- '",
            "SELECT 1 >-- '\n0; DROP TABLE victim; -- '",
            "SELECT '{\"a\":1}'::jsonb ?-- '\n$$a$$; DROP TABLE victim; --'",
        ] {
            assert!(!alike(sql), "{sql}");
        }
        for sql in [
            "SELECT $1, $23 FROM t",
            "SELECT $$a$$, $tag_1$b$tag_1$, X'1f', x'AB', B'0101', b'' FROM t",
            "SELECT data ? 'key' FROM t",
            "SELECT a->>'b', a #- '{x}', a ?- b, x - -1, 1 >= -1 FROM t",
        ] {
            assert!(alike(sql), "{sql}");
        }
    }
}
